"""Command line: ``python -m fastce [demo|bench|config]`` (also the ``fastce`` script).

``demo`` (the default) generates classification batches, computes the losses
and gradients with fastce and with the NumPy reference, and prints both with
their times and the speed-up, measured side by side in this one run.
"""
import argparse
import math
import sys
import time

import numpy as np

import fastce
from fastce import reference


def _median_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _demo_cases(scale):
    rng = np.random.default_rng(0)
    n_rows = max(1, int(65_536 * scale))
    logits_1k = rng.standard_normal((n_rows, 1000), dtype=np.float32) * 3
    labels_1k = rng.integers(0, 1000, n_rows)
    labels_1k[::17] = -100  # some ignored samples
    n_rows_10 = max(1, int(1_048_576 * scale))
    logits_10 = rng.standard_normal((n_rows_10, 10), dtype=np.float32) * 3
    labels_10 = rng.integers(0, 10, n_rows_10)
    n_bce = max(1, int(33_554_432 * scale))
    logits_bce = rng.standard_normal(n_bce, dtype=np.float32) * 4
    target_bce = (rng.random(n_bce) < 0.3).astype(np.float32)
    return [
        (f"cross_entropy {logits_1k.shape[0]}x1000 float32 (smoothing 0.1)",
         lambda lib, grad: lib.cross_entropy(logits_1k, labels_1k, label_smoothing=0.1,
                                             return_grad=grad)),
        (f"cross_entropy {logits_10.shape[0]}x10 float32",
         lambda lib, grad: lib.cross_entropy(logits_10, labels_10, return_grad=grad)),
        (f"binary_cross_entropy_with_logits {n_bce} float32",
         lambda lib, grad: lib.binary_cross_entropy_with_logits(logits_bce, target_bce,
                                                                return_grad=grad)),
    ]


def demo(scale=0.25, repeats=3):
    print("fastce demo: losses on generated data, fastce against the NumPy reference")
    print(f"(the benchmark shapes scaled by {scale}; median of {repeats} runs each)\n")
    fastce.show_config()
    print()
    header = f"{'case':<58} {'fastce loss':>16} {'reference loss':>16} {'fastce':>9} {'numpy':>9} {'speed-up':>8}"
    print(header)
    print("-" * len(header))
    for name, run in _demo_cases(scale):
        for with_grad in (False, True):
            label = name + (" +grad" if with_grad else "")
            ours = run(fastce, with_grad)
            theirs = run(reference, with_grad)
            loss_ours = ours[0] if with_grad else ours
            loss_ref = theirs[0] if with_grad else theirs
            if with_grad:
                grad_error = float(np.max(np.abs(ours[1].astype(np.float64) - theirs[1])))
            time_ours = _median_time(lambda: run(fastce, with_grad), repeats)
            time_ref = _median_time(lambda: run(reference, with_grad), repeats)
            print(f"{label:<58} {loss_ours:16.9f} {loss_ref:16.9f} {time_ours * 1e3:7.1f}ms "
                  f"{time_ref * 1e3:7.1f}ms {time_ref / time_ours:7.1f}x")
            if with_grad:
                print(f"{'':<58} max |grad - reference grad| = {grad_error:.2e}")
    print("\nStable where the naive formula is not:")
    logits = np.array([[1e4, 0.0, -1e4]], dtype=np.float32)
    with np.errstate(all="ignore"):
        naive = -np.log(np.exp(logits[0, 1]) / np.exp(logits).sum())
    print(f"  cross_entropy([[1e4, 0, -1e4]], target=[1]): fastce {fastce.cross_entropy(logits, [1]):.1f}, "
          f"naive softmax {naive}")
    tiny = fastce.cross_entropy(np.array([[0.0, -25.0, -30.0]]), [0])
    exact = math.log1p(math.exp(-25.0) + math.exp(-30.0))
    with np.errstate(all="ignore"):
        naive_tiny = np.log(np.exp([0.0, -25.0, -30.0]).sum())
    print(f"  cross_entropy([[0, -25, -30]], target=[0]) = {tiny:.12e}; exact {exact:.12e}; "
          f"log(sum(exp)) gives {naive_tiny:.12e}")
    _demo_profile(scale)


def _demo_profile(scale):
    """A dataset profile of a generated model with 5% of its labels replaced."""
    rng = np.random.default_rng(0)
    n_rows, n_classes = max(1000, int(400_000 * scale)), 10
    truth = rng.integers(0, n_classes, n_rows)
    logits = rng.standard_normal((n_rows, n_classes)).astype(np.float32)
    logits[np.arange(n_rows), truth] += 2.5
    labels = truth.copy()
    replaced = rng.random(n_rows) < 0.05
    labels[replaced] = rng.integers(0, n_classes, int(replaced.sum()))
    start = time.perf_counter()
    report = fastce.profile(logits, labels, progress=False)
    seconds = time.perf_counter() - start
    flagged = np.asarray(report.label_issues["index"], dtype=np.int64)
    wrong = replaced & (labels != truth)
    caught = int(np.count_nonzero(wrong[flagged])) if flagged.size else 0
    print(f"\nfastce.profile of {n_rows:,} x {n_classes} logits in {seconds * 1e3:.0f} ms "
          f"(fastce profile FILE LABELS does this for files; see README):")
    print(f"  loss {report.loss_mean:.4f}, accuracy {report.accuracy:.4f}, "
          f"ECE {report.ece:.4f}; {flagged.size:,} label issues flagged, "
          f"{caught:,} of the {int(wrong.sum()):,} labels really replaced among them")


def _profile_command(args):
    """fastce profile: the summary on stdout, the report in --out, errors on stderr."""
    from fastce.profiling import profile

    try:
        if args.dask is not None or args.dask_workers is not None:
            report = _profile_on_dask(args)
        else:
            report = profile(args.predictions, args.labels,
                             kind="probs" if args.probs else "logits",
                             task=args.task, sample_weight=args.sample_weight,
                             chunk_size=args.chunk_size, top_k=args.top_k,
                             label_issues=not args.no_label_issues,
                             progress=not args.no_progress, n_threads=args.threads)
    except (ValueError, TypeError, KeyError, OSError, ImportError) as error:
        print(f"fastce profile: error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    if args.out is not None:
        written = report.save(args.out)
        print(f"\nwrote {len(written)} files to {args.out}: {', '.join(written)}")
    return 0


def _profile_on_dask(args):
    """fastce profile --dask ADDRESS / --dask-workers N: the inputs are opened
    lazily on the workers (fastce.dask.profile), the report is the same."""
    import distributed

    import fastce.dask

    cluster = None
    if args.dask_workers is not None:
        if args.dask_workers < 1:
            raise ValueError(f"--dask-workers must be >= 1, got {args.dask_workers}")
        cluster = distributed.LocalCluster(n_workers=args.dask_workers, threads_per_worker=1,
                                           host="127.0.0.1", processes=True,
                                           dashboard_address=None)
    try:
        with distributed.Client(cluster if cluster is not None else args.dask, timeout=60):
            return fastce.dask.profile(args.predictions, args.labels,
                                       kind="probs" if args.probs else "logits",
                                       task=args.task, sample_weight=args.sample_weight,
                                       chunk_size=args.chunk_size, top_k=args.top_k,
                                       label_issues=not args.no_label_issues,
                                       n_threads=args.threads)
    finally:
        if cluster is not None:
            cluster.close(timeout=30)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastce", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    demo_parser = sub.add_parser("demo", help="losses on generated data vs the NumPy reference")
    demo_parser.add_argument("--scale", type=float, default=0.25,
                             help="fraction of the benchmark shapes to use (default 0.25)")
    demo_parser.add_argument("--repeats", type=int, default=3)
    sub.add_parser("config", help="print the build configuration")
    bench_parser = sub.add_parser("bench", help="the benchmark shapes side by side: fastce, "
                                  "NumPy reference, torch and sklearn when installed")
    bench_parser.add_argument("--quick", action="store_true",
                              help="1/8 of the sizes, fewer repeats (about a minute)")
    bench_parser.add_argument("--threads", type=int, default=None,
                              help="threads for fastce, torch and sklearn (default: OpenMP's)")
    bench_parser.add_argument("--shapes", default=None,
                              help="comma-separated subset of ce-1k,ce-10,ce-32k,ce-1k-f64,bce,focal,linear,tiny,"
                              "profile")
    bench_parser.add_argument("--json", default="fastce-bench.json")
    bench_parser.add_argument("--png", default="fastce-bench.png",
                              help="bar chart, written when matplotlib is installed")
    profile_parser = sub.add_parser(
        "profile", help="profile a model's predictions over a dataset: loss, calibration, "
        "per-class tables, hardest samples, label issues")
    profile_parser.add_argument("predictions", help="(N, C) logits or probabilities: .npy, "
                                ".npz:KEY, .h5:DATASET or .zarr")
    profile_parser.add_argument("labels", help="(N,) labels (or (N, L) for multilabel), "
                                "same formats")
    profile_parser.add_argument("--probs", action="store_true",
                                help="the predictions are probabilities, not logits")
    profile_parser.add_argument("--task", default="multiclass",
                                choices=["multiclass", "binary", "multilabel"])
    profile_parser.add_argument("--out", default=None,
                                help="directory for report.json, report.html and the figures "
                                "(written only when the profile finished)")
    profile_parser.add_argument("--chunk-size", type=int, default=None,
                                help="rows a read (default: about 64 MiB)")
    profile_parser.add_argument("--top-k", type=int, default=100,
                                help="hardest samples to list (default 100)")
    profile_parser.add_argument("--no-label-issues", action="store_true",
                                help="skip the second pass (confident learning)")
    profile_parser.add_argument("--sample-weight", default=None,
                                help="(N,) sample weights, same formats")
    profile_parser.add_argument("--threads", type=int, default=None)
    profile_parser.add_argument("--no-progress", action="store_true",
                                help="no progress bar on stderr")
    dask_group = profile_parser.add_mutually_exclusive_group()
    dask_group.add_argument("--dask", metavar="ADDRESS", default=None,
                            help="run on the Dask scheduler at ADDRESS (fastce.dask.profile; "
                            "the workers read the files)")
    dask_group.add_argument("--dask-workers", metavar="N", type=int, default=None,
                            help="run on a local Dask cluster of N single-threaded worker "
                            "processes, closed afterwards")
    args = parser.parse_args(argv)
    if args.command == "profile":
        return _profile_command(args)
    if args.command == "config":
        fastce.show_config()
    elif args.command == "bench":
        from fastce import _bench
        return _bench.main(args)
    else:
        demo(getattr(args, "scale", 0.25), getattr(args, "repeats", 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
