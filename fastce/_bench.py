"""Side-by-side benchmark runner: ``fastce bench`` / ``python -m fastce bench``.

Every contender runs in this one process, minutes apart at most, so the
ratios between them hold even on a noisy shared machine; the absolute times
do not travel. Contenders: fastce, fastce.reference (NumPy), torch (with
``torch.set_num_threads`` equal to ours) and sklearn's private ``_loss``
module, each when installed. The memory roofline is the bytes a kernel must
move divided by the read bandwidth measured in the same run, by an OpenMP
read loop on the same threads.
"""
import json
import os
import platform
import time

import numpy as np

import fastce
from fastce import reference
from fastce._kernels import _config

# the benchmark shapes: name -> (kind, shape, dtype)
SHAPES = {
    "ce-1k": ("softmax", (65_536, 1_000), np.float32),
    "ce-10": ("softmax", (1_048_576, 10), np.float32),
    "ce-32k": ("softmax", (8_192, 32_000), np.float32),
    "ce-1k-f64": ("softmax", (65_536, 1_000), np.float64),
    "bce": ("binary", (33_554_432,), np.float32),
    "focal": ("focal", (33_554_432,), np.float32),
    # fused_linear_cross_entropy: hidden (N, H), weight (V, H); bound by the matmuls,
    # so it has no memory roofline.
    "linear": ("linear", (4_096, 512, 8_192), np.float32),
    "tiny": ("softmax", (64, 10), np.float32),
}
FOCAL = {"alpha": 0.25, "gamma": 2.0}


def _median_seconds(function, repeats, min_time=0.0):
    function()  # warm up: page faults, thread pool start
    times = []
    deadline = time.perf_counter() + min_time
    while len(times) < repeats or time.perf_counter() < deadline:
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
        if len(times) >= 10_000:
            break
    return float(np.median(times))


def _interleaved_medians(calls, repeats, batch=1):
    """Median seconds per call of each contender, timed in rounds that visit
    every contender in turn, so a slow spell of a shared machine lands on all
    of them rather than on one (the ratios are what the table reports).
    ``batch`` calls are timed together for calls too short for the clock."""
    for call in calls.values():
        call()  # warm up: page faults, thread pools
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(batch):
                call()
            samples[name].append((time.perf_counter() - start) / batch)
    return {name: float(np.median(times)) for name, times in samples.items()}


def _cpu_model():
    """The CPU's model name (Linux), to name the machine with every figure."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def read_bandwidth(repeats=5, n_threads=None):
    """Bytes/s of a streaming read of 256 MiB on the kernels' OpenMP threads
    (an ``omp parallel for simd`` sum, the honest ceiling for a kernel that
    reads its input once), and of a NumPy sum of the same array, which runs on
    one thread and under-states it: ``(openmp, numpy)``."""
    data = np.ones(256 * 1024 * 1024 // 4, dtype=np.float32)
    threads = n_threads or _config.max_threads()
    openmp = data.nbytes / _median_seconds(lambda: _config.read_sum(data, threads), repeats)
    numpy_sum = data.nbytes / _median_seconds(lambda: data.sum(), repeats)
    return openmp, numpy_sum


def _torch_contenders(n_threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(n_threads)
    functional = torch.nn.functional

    def softmax_forward(logits, target):
        return functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(target))

    def softmax_backward(logits, target):
        tensor = torch.from_numpy(logits).requires_grad_()
        functional.cross_entropy(tensor, torch.from_numpy(target)).backward()
        return tensor.grad

    def binary_forward(logits, target):
        return functional.binary_cross_entropy_with_logits(
            torch.from_numpy(logits), torch.from_numpy(target))

    def binary_backward(logits, target):
        tensor = torch.from_numpy(logits).requires_grad_()
        functional.binary_cross_entropy_with_logits(tensor, torch.from_numpy(target)).backward()
        return tensor.grad

    def focal(logits, target):
        # torchvision.ops.sigmoid_focal_loss, written out in torch.
        target = torch.from_numpy(target)
        p = torch.sigmoid(logits)
        ce = functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p_t = p * target + (1 - p) * (1 - target)
        alpha_t = FOCAL["alpha"] * target + (1 - FOCAL["alpha"]) * (1 - target)
        return (alpha_t * ce * (1 - p_t) ** FOCAL["gamma"]).mean()

    def focal_forward(logits, target):
        return focal(torch.from_numpy(logits), target)

    def focal_backward(logits, target):
        tensor = torch.from_numpy(logits).requires_grad_()
        focal(tensor, target).backward()
        return tensor.grad

    def linear_forward(hidden, weight, target):
        return functional.cross_entropy(torch.from_numpy(hidden) @ torch.from_numpy(weight).T,
                                        torch.from_numpy(target))

    def linear_backward(hidden, weight, target):
        hidden_tensor = torch.from_numpy(hidden).requires_grad_()
        weight_tensor = torch.from_numpy(weight).requires_grad_()
        functional.cross_entropy(hidden_tensor @ weight_tensor.T,
                                 torch.from_numpy(target)).backward()
        return hidden_tensor.grad, weight_tensor.grad

    return {"softmax": (softmax_forward, softmax_backward),
            "binary": (binary_forward, binary_backward),
            "focal": (focal_forward, focal_backward),
            "linear": (linear_forward, linear_backward)}


def _sklearn_contenders(n_threads):
    try:
        from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss
    except ImportError:
        return None

    def softmax_forward(logits, target):
        loss = HalfMultinomialLoss(n_classes=logits.shape[1])
        return loss(target.astype(logits.dtype), logits, n_threads=n_threads)

    def softmax_backward(logits, target):
        loss = HalfMultinomialLoss(n_classes=logits.shape[1])
        return loss.loss_gradient(target.astype(logits.dtype), logits, n_threads=n_threads)

    def binary_forward(logits, target):
        return HalfBinomialLoss()(target, logits, n_threads=n_threads)

    def binary_backward(logits, target):
        return HalfBinomialLoss().loss_gradient(target, logits, n_threads=n_threads)

    return {"softmax": (softmax_forward, softmax_backward),
            "binary": (binary_forward, binary_backward)}


def _ours(library, n_threads):
    def softmax_forward(logits, target):
        return library.cross_entropy(logits, target, n_threads=n_threads)

    def softmax_backward(logits, target):
        return library.cross_entropy(logits, target, return_grad=True, n_threads=n_threads)

    def binary_forward(logits, target):
        return library.binary_cross_entropy_with_logits(logits, target, n_threads=n_threads)

    def binary_backward(logits, target):
        return library.binary_cross_entropy_with_logits(logits, target, return_grad=True,
                                                        n_threads=n_threads)

    def focal_forward(logits, target):
        return library.sigmoid_focal_loss(logits, target, **FOCAL, n_threads=n_threads)

    def focal_backward(logits, target):
        return library.sigmoid_focal_loss(logits, target, **FOCAL, return_grad=True,
                                          n_threads=n_threads)

    linear = fastce.linear if library is fastce else reference.linear

    def linear_forward(hidden, weight, target):
        return linear.fused_linear_cross_entropy(hidden, weight, target, n_threads=n_threads)

    def linear_backward(hidden, weight, target):
        return linear.fused_linear_cross_entropy(hidden, weight, target, return_grad=True,
                                                 n_threads=n_threads)

    return {"softmax": (softmax_forward, softmax_backward),
            "binary": (binary_forward, binary_backward),
            "focal": (focal_forward, focal_backward),
            "linear": (linear_forward, linear_backward)}


def _make_inputs(kind, shape, dtype, rng):
    """The call's arguments, and the bytes its forward pass must read."""
    if kind == "linear":
        n_rows, n_hidden, n_classes = shape
        hidden = rng.standard_normal((n_rows, n_hidden)).astype(dtype)
        weight = (rng.standard_normal((n_classes, n_hidden)) / np.sqrt(n_hidden)).astype(dtype)
        return (hidden, weight, rng.integers(0, n_classes, n_rows)), None
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    if kind == "softmax":
        return (logits, rng.integers(0, shape[1], shape[0])), logits.nbytes
    return (logits, (rng.random(shape) < 0.3).astype(dtype)), logits.nbytes


def run(quick=False, n_threads=None, shapes=None, repeats=None, skip_reference=False):
    n_threads = n_threads or _config.max_threads()
    repeats = repeats or (3 if quick else 7)
    scale = 0.125 if quick else 1.0
    rng = np.random.default_rng(0)
    bandwidth, numpy_bandwidth = read_bandwidth(3 if quick else 5, n_threads)
    contenders = {"fastce": _ours(fastce, n_threads)}
    if not skip_reference:
        contenders["numpy"] = _ours(reference, n_threads)
    torch_functions = _torch_contenders(n_threads)
    if torch_functions:
        contenders["torch"] = torch_functions
    sklearn_functions = _sklearn_contenders(n_threads)
    if sklearn_functions:
        contenders["sklearn"] = sklearn_functions
    rows = []
    for name in shapes or SHAPES:
        kind, shape, dtype = SHAPES[name]
        if name != "tiny":
            shape = (max(1, int(shape[0] * scale)),) + shape[1:]
        arguments, read_bytes = _make_inputs(kind, shape, dtype, rng)
        for direction, index in (("fwd", 0), ("fwd+grad", 1)):
            if name == "tiny" and direction != "fwd":
                continue
            # Forward reads the logits once; forward+gradient also writes them once.
            moved = None if read_bytes is None else read_bytes * (1 if index == 0 else 2)
            record = {"shape": name, "dims": list(shape), "dtype": np.dtype(dtype).name,
                      "pass": direction, "bytes": moved, "times": {}}
            calls = {contender: (lambda function=functions[kind][index]: function(*arguments))
                     for contender, functions in contenders.items() if kind in functions}
            record["times"] = _interleaved_medians(calls, repeats,
                                                   batch=2000 if name == "tiny" else 1)
            ours = record["times"]["fastce"]
            if moved is not None:
                record["roofline_seconds"] = moved / bandwidth
                record["gbps"] = moved / ours / 1e9
                record["roofline_percent"] = 100.0 * record["roofline_seconds"] / ours
            record["speedup"] = {other: seconds / ours
                                 for other, seconds in record["times"].items() if other != "fastce"}
            rows.append(record)
    return {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "n_threads": n_threads,
                    "cpu_model": _cpu_model(),
                    "read_bandwidth_gbps": bandwidth / 1e9,
                    "numpy_sum_bandwidth_gbps": numpy_bandwidth / 1e9},
        "config": fastce.show_config(print_out=False),
        "quick": quick,
        "results": rows,
    }


# The profiling benchmark: a model's logits over a dataset.
PROFILE_SHAPE = (1_000_000, 100)


def _profile_inputs(shape, rng):
    """Logits of a model that is right most of the time, and labels with 5% noise."""
    n_rows, n_classes = shape
    truth = rng.integers(0, n_classes, n_rows)
    logits = rng.standard_normal(shape, dtype=np.float32)
    logits[np.arange(n_rows), truth] += 3.0
    labels = truth.copy()
    noisy = rng.random(n_rows) < 0.05
    labels[noisy] = rng.integers(0, n_classes, int(noisy.sum()))
    return logits, labels


def _user_pipeline(logits, labels):
    """What a user writes today: softmax, then scikit-learn's metrics and
    cleanlab's in-memory find_label_issues."""
    from cleanlab.filter import find_label_issues
    from scipy.special import softmax
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss

    probs = softmax(logits.astype(np.float64), axis=1)
    predicted = probs.argmax(axis=1)
    log_loss(labels, probs, labels=np.arange(logits.shape[1]))
    accuracy_score(labels, predicted)
    confusion_matrix(labels, predicted)
    calibration_curve(predicted == labels, probs.max(axis=1), n_bins=15)
    find_label_issues(labels, probs, filter_by="confident_learning")


def run_profile(quick=False, n_threads=None, repeats=None):
    """fastce.profile against cross_entropy(reduction="none") on the same
    array, the sklearn + cleanlab pipeline, and reading the same .npy file."""
    import tempfile

    n_threads = n_threads or _config.max_threads()
    repeats = repeats or (3 if quick else 5)
    shape = (PROFILE_SHAPE[0] // (8 if quick else 1), PROFILE_SHAPE[1])
    logits, labels = _profile_inputs(shape, np.random.default_rng(0))
    calls = {
        "cross_entropy(reduction='none')": lambda: fastce.cross_entropy(
            logits, labels, reduction="none", n_threads=n_threads),
        "profile, pass 1 (no label issues)": lambda: fastce.profile(
            logits, labels, label_issues=False, n_threads=n_threads, progress=False),
        "profile, with label issues": lambda: fastce.profile(
            logits, labels, n_threads=n_threads, progress=False),
    }
    times = _interleaved_medians(calls, repeats)
    try:
        times["numpy + sklearn + cleanlab"] = _median_seconds(
            lambda: _user_pipeline(logits, labels), 1)
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "logits.npy")
        np.save(path, logits)
        label_path = os.path.join(directory, "labels.npy")
        np.save(label_path, labels)

        def read_file():
            mapped = np.load(path, mmap_mode="r")
            step = max(1, (64 << 20) // (shape[1] * 4))
            for start in range(0, shape[0], step):
                np.asarray(mapped[start:start + step]).sum()

        file_times = _interleaved_medians({
            "read the .npy (64 MiB chunks)": read_file,
            "profile the .npy, pass 1": lambda: fastce.profile(
                path, label_path, label_issues=False, n_threads=n_threads, progress=False),
            "profile the .npy, with label issues": lambda: fastce.profile(
                path, label_path, n_threads=n_threads, progress=False),
        }, repeats)
    times.update(file_times)
    return {"shape": list(shape), "dtype": "float32", "n_threads": n_threads, "times": times,
            "bytes": logits.nbytes}


def format_profile_table(result):
    times = result["times"]
    base = times["cross_entropy(reduction='none')"]
    file_base = times["read the .npy (64 MiB chunks)"]
    lines = [f"Profile of {result['shape'][0]:,} x {result['shape'][1]} float32 logits "
             f"({result['n_threads']} threads)", "",
             "| what | time | vs cross_entropy | vs reading the file | GB/s |",
             "|---|---|---|---|---|"]
    for name, seconds in times.items():
        lines.append(f"| {name} | {_format_seconds(seconds)} | {seconds / base:.2f}x | "
                     f"{seconds / file_base:.2f}x | {result['bytes'] / seconds / 1e9:.1f} |")
    return "\n".join(lines)


def _format_seconds(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.1f} ms"


def format_table(report):
    contenders = []
    for row in report["results"]:
        contenders += [name for name in row["times"] if name not in contenders]
    head = ["shape", "pass"] + contenders + [f"vs {c}" for c in contenders[1:]] + ["GB/s", "% roofline"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report["results"]:
        times, speedup = row["times"], row["speedup"]
        cells = [row["shape"], row["pass"]]
        cells += [_format_seconds(times[c]) if c in times else "—" for c in contenders]
        cells += [f"{speedup[c]:.1f}x" if c in speedup else "—" for c in contenders[1:]]
        if "gbps" in row:
            cells += [f"{row['gbps']:.1f}", f"{row['roofline_percent']:.0f}%"]
        else:
            cells += ["—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    machine = report["machine"]
    lines.append("")
    numpy_sum = machine.get("numpy_sum_bandwidth_gbps")
    lines.append(f"Machine: {machine.get('cpu_model') or machine['platform']}, "
                 f"{machine['cpu_count']} CPUs, {machine['n_threads']} threads, read bandwidth "
                 f"{machine['read_bandwidth_gbps']:.1f} GB/s (OpenMP read loop over 256 MiB"
                 + (f"; a NumPy sum reads {numpy_sum:.1f} GB/s" if numpy_sum else "")
                 + f"), SIMD: {report['config']['simd']}. "
                 "Times are medians; ratios = other / fastce.")
    return "\n".join(lines)


def plot(report, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = report["results"]
    contenders = []
    for row in rows:
        contenders += [name for name in row["times"] if name not in contenders]
    labels = [f"{r['shape']} {r['pass']}" for r in rows]
    positions = np.arange(len(rows))
    width = 0.8 / len(contenders)
    figure, axis = plt.subplots(figsize=(max(8, len(rows) * 1.1), 4.5))
    for i, contender in enumerate(contenders):
        axis.bar(positions + i * width,
                 [r["times"].get(contender, np.nan) * 1e3 for r in rows], width,
                 label=contender)
    axis.set_xticks(positions + width * (len(contenders) - 1) / 2, labels, rotation=30, ha="right")
    axis.set_ylabel("median time (ms, log scale)")
    axis.set_yscale("log")
    axis.legend()
    axis.set_title("fastce side by side (lower is better)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return True


def main(args):
    shapes = args.shapes.split(",") if args.shapes else list(SHAPES) + ["profile"]
    loss_shapes = [name for name in shapes if name != "profile"]
    report = run(quick=args.quick, n_threads=args.threads, shapes=loss_shapes) if loss_shapes \
        else {"results": [], "machine": {}, "config": fastce.show_config(print_out=False)}
    if loss_shapes:
        print(format_table(report))
    if "profile" in shapes:
        report["profile"] = run_profile(quick=args.quick, n_threads=args.threads)
        print()
        print(format_profile_table(report["profile"]))
    with open(args.json, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"\nwrote {args.json}")
    if args.png and report["results"] and plot(report, args.png):
        print(f"wrote {args.png}")
    return 0
