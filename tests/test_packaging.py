"""What users install: lazy submodules, the source-tree guard, the single version,
and the OpenMP runtime (threadpoolctl control, coexistence with torch's libgomp).

Most checks run in a fresh interpreter (subprocess) from a temporary directory, so
they see the installed package exactly as a user's `import fastce` does.
"""
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import fastce
from fastce._kernels import _config

PACKAGE_DIR = os.path.dirname(os.path.abspath(fastce.__file__))
PACKAGE_PARENT = os.path.dirname(PACKAGE_DIR)


def run_python(code, tmp_path, **env):
    """Run code in a fresh interpreter, from tmp_path, importing this fastce."""
    environment = dict(os.environ, **env)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=300)


def test_submodules_are_lazy_attributes(tmp_path):
    result = run_python("""
        import sys
        import fastce
        assert "fastce.reference" not in sys.modules
        assert "fastce.linear" not in sys.modules
        assert callable(fastce.reference.cross_entropy)
        assert callable(fastce.linear.logistic_regression_loss)
        assert callable(fastce.reference.linear.logistic_regression_loss)
        # the earlier import path of the linear models' reference still works
        assert fastce.reference_linear.logistic_regression_loss is \
            fastce.reference.linear.logistic_regression_loss
        assert "reference" in dir(fastce) and "linear" in dir(fastce)
        assert not hasattr(fastce, "no_such_submodule")
        assert not hasattr(fastce, "_no_such_private_name")
        try:
            fastce.no_such_submodule
        except AttributeError as error:
            assert "no_such_submodule" in str(error)
        print("ok")
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_version_is_defined_once():
    from fastce import _version

    assert fastce.__version__ == _version.__version__
    assert fastce.show_config(print_out=False)["fastce"] == fastce.__version__
    try:
        distribution = importlib.metadata.distribution("fastce")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("fastce is not installed (an in-place build)")
    if os.path.abspath(str(distribution.locate_file("fastce"))) == PACKAGE_DIR:
        assert distribution.version == fastce.__version__


def test_unbuilt_source_tree_says_so(tmp_path):
    """`import fastce` from a source folder with no compiled kernels: a clear
    ImportError that says what to do, not a circular-import message."""
    tree = tmp_path / "src" / "fastce"
    tree.mkdir(parents=True)
    for name in ("__init__.py", "_version.py"):
        shutil.copy(os.path.join(PACKAGE_DIR, name), tree / name)
    (tree / "_kernels").mkdir()
    (tree / "_kernels" / "_config.pyx").write_text("# the uncompiled source\n")
    result = subprocess.run(
        [sys.executable, "-c", "import fastce"], cwd=tmp_path / "src",
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "ImportError: fastce is being imported from its source tree" in result.stderr
    assert "pip install ." in result.stderr
    assert "build_ext --inplace" in result.stderr
    assert "circular import" not in result.stderr.splitlines()[-1]


needs_openmp = pytest.mark.skipif(not _config.HAVE_OPENMP, reason="a serial build")


@needs_openmp
def test_threadpoolctl_controls_fastce_openmp(tmp_path):
    pytest.importorskip("threadpoolctl")
    result = run_python("""
        import json
        import numpy as np
        import fastce
        from threadpoolctl import threadpool_info, threadpool_limits
        fastce.cross_entropy(np.zeros((4096, 16), np.float32), np.zeros(4096, np.int64))
        report = {"info": threadpool_info(),
                  "default": fastce.show_config(print_out=False)["default_threads"]}
        with threadpool_limits(1):
            report["limited"] = fastce.show_config(print_out=False)["default_threads"]
        with threadpool_limits(limits=1, user_api="openmp"):
            report["limited_openmp"] = fastce.show_config(print_out=False)["default_threads"]
        report["restored"] = fastce.show_config(print_out=False)["default_threads"]
        print(json.dumps(report))
    """, tmp_path, OMP_NUM_THREADS="2")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    openmp = [entry for entry in report["info"] if entry["user_api"] == "openmp"]
    assert openmp, report["info"]
    bundled = os.path.join(PACKAGE_PARENT, "fastce.libs")
    if os.path.isdir(bundled):
        # A repaired wheel: the extensions load the libgomp it bundles.
        assert any(os.path.dirname(entry["filepath"]) == bundled for entry in openmp), openmp
    assert report["default"] == 2
    assert report["limited"] == 1
    assert report["limited_openmp"] == 1
    assert report["restored"] == 2


@needs_openmp
def test_threadpoolctl_command_line_lists_fastce_openmp(tmp_path):
    pytest.importorskip("threadpoolctl")
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-m", "threadpoolctl", "-i", "fastce"],
                            cwd=tmp_path, env=environment, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert any(entry["user_api"] == "openmp" for entry in info), info


TORCH_SCRIPT = """
import json, os, sys
import numpy as np


def cpu_ticks_per_thread():
    ticks = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks[tid] = int(fields[11]) + int(fields[12])  # utime + stime
    return ticks


rng = np.random.default_rng(0)
logits = rng.standard_normal((8192, 1000)).astype(np.float32)
target = rng.integers(0, 1000, 8192)
report = {}
if sys.argv[1] == "fastce-first":
    import fastce
    before = fastce.cross_entropy(logits, target, return_grad=True, n_threads=2)
    import torch
else:
    import torch
    import fastce
    before = None
a = torch.ones(512, 512)
torch.mm(a, a).sum()                           # torch's own OpenMP pool has run
report["torch_threads"] = torch.get_num_threads()
after = fastce.cross_entropy(logits, target, return_grad=True, n_threads=2)
if before is not None:
    report["same"] = bool(before[0] == after[0]) and bool(np.array_equal(before[1], after[1]))
report["default_threads"] = fastce.show_config(print_out=False)["default_threads"]
serial = fastce.cross_entropy(logits, target, return_grad=True, n_threads=1)
report["thread_count_invariant"] = bool(serial[0] == after[0]) and bool(
    np.array_equal(serial[1], after[1]))
if os.path.isdir("/proc/self/task"):
    # Which OS threads did fastce's work? CPU time per thread, immune to a busy
    # machine (unlike wall-clock speed-ups).
    # Enough calls (about 1 s of work) that a busy machine's scheduling noise
    # cannot push the second thread below the threshold at 100 ticks a second.
    start = cpu_ticks_per_thread()
    for _ in range(200):
        fastce.cross_entropy(logits, target, return_grad=True, n_threads=2)
    end = cpu_ticks_per_thread()
    deltas = sorted((end[t] - start.get(t, 0) for t in end), reverse=True)
    report["busy_threads"] = sum(1 for d in deltas if d > 0.25 * deltas[0])
    report["ticks"] = deltas[:4]
print(json.dumps(report))
"""


@needs_openmp
@pytest.mark.parametrize("order", ["fastce-first", "torch-first"])
def test_fastce_and_torch_in_one_process(tmp_path, order):
    """torch bundles its own libgomp. With it in the same process (imported before
    or after fastce), results are unchanged and fastce's kernels still run on
    2 threads (torch issue #98836 reports a second libgomp stuck at one)."""
    pytest.importorskip("torch")
    environment = dict(os.environ, OMP_NUM_THREADS="2")
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-c", TORCH_SCRIPT, order], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["default_threads"] == 2
    assert report["thread_count_invariant"]
    if order == "fastce-first":
        assert report["same"]
    if "busy_threads" in report:
        assert report["busy_threads"] == 2, report


def test_read_sum_reads_every_element():
    """The bench's OpenMP read loop (the roofline's measure) sums every value."""
    import numpy as np
    for n in (0, 1, 31, 33, 65536 * 3 + 17):
        data = np.arange(n, dtype=np.float32) % 7
        for threads in (1, 2):
            assert _config.read_sum(data, threads) == float(data.astype(np.float64).sum())
    with pytest.raises(ValueError):
        _config.read_sum(np.zeros(4), 1)
