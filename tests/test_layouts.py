"""Memory layouts, in-place gradients, determinism and threading.

For both families: any strides, memory order or a read-only memmap give the same
result as a C-contiguous copy; inputs are never modified; grad_out may be the logits
array itself; results are bitwise identical for every n_threads; the GIL is released
while the kernels run.
"""
import sys
import threading
import time

import numpy as np
import pytest

import fastce

from conftest import LABEL_DTYPES

# --------------------------------------------------------------------------
# Problems: a function and the arrays it takes, all 2-D with the classes or
# labels on the last axis.
# --------------------------------------------------------------------------
class Problem:
    def __init__(self, name, fn, arrays, kwargs=None, has_grad=True):
        self.name, self.fn = name, fn
        self.arrays = arrays  # dict: keyword (or positional "arg0", "arg1") -> ndarray
        self.kwargs = kwargs or {}
        self.has_grad = has_grad

    def call(self, arrays, **extra):
        positional = [arrays[key] for key in ("arg0", "arg1") if key in arrays]
        keyword = {key: value for key, value in arrays.items() if not key.startswith("arg")}
        result = self.fn(*positional, **keyword, **self.kwargs, **extra)
        return result if isinstance(result, tuple) else (result,)

    def variants(self):
        """Keyword sets the problem is run with."""
        if not self.has_grad:
            return [{}]
        return [dict(reduction=reduction, return_grad=True)
                for reduction in ("none", "mean", "sum")]


def make_problems(n_rows=50, n_cols=7, dtype=np.float64, seed=0):
    """Problems whose arrays have shape (n_rows, n_cols), (n_cols,) or (n_rows,)."""
    rng = np.random.default_rng(seed)
    logits = (3.0 * rng.standard_normal((n_rows, n_cols))).astype(dtype)
    soft = rng.uniform(size=(n_rows, n_cols)).astype(dtype)
    probs = rng.uniform(0.01, 0.99, size=(n_rows, n_cols)).astype(dtype)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_rows, n_cols)).astype(dtype)
    element_weight = rng.uniform(0.0, 2.0, size=(n_rows, n_cols)).astype(dtype)
    label_weight = rng.uniform(0.5, 2.0, size=n_cols).astype(dtype)
    labels = rng.integers(0, n_cols, size=n_rows)
    labels[::7] = -100
    class_probs = rng.uniform(size=(n_rows, n_cols)).astype(dtype)
    class_probs /= class_probs.sum(axis=1, keepdims=True)
    return [
        Problem("bcewl", fastce.binary_cross_entropy_with_logits,
                dict(arg0=logits, arg1=soft, weight=element_weight, pos_weight=label_weight)),
        Problem("bce", fastce.binary_cross_entropy,
                dict(arg0=probs, arg1=soft, weight=element_weight)),
        Problem("logistic", fastce.logistic_loss,
                dict(arg0=logits, arg1=signs, weight=element_weight)),
        Problem("sigmoid", fastce.sigmoid, dict(arg0=logits), has_grad=False),
        Problem("log_sigmoid", fastce.log_sigmoid, dict(arg0=logits), has_grad=False),
        Problem("cross_entropy-labels", fastce.cross_entropy,
                dict(arg0=logits, arg1=labels, weight=label_weight),
                kwargs=dict(label_smoothing=0.1)),
        Problem("cross_entropy-probs", fastce.cross_entropy,
                dict(arg0=logits, arg1=class_probs, weight=label_weight),
                kwargs=dict(label_smoothing=0.05)),
        Problem("log_softmax", fastce.log_softmax, dict(arg0=logits), has_grad=False),
        Problem("softmax", fastce.softmax, dict(arg0=logits), has_grad=False),
        Problem("logsumexp", fastce.logsumexp, dict(arg0=logits), has_grad=False),
        Problem("log_softmax-axis0", fastce.log_softmax, dict(arg0=logits),
                kwargs=dict(axis=0), has_grad=False),
        Problem("logsumexp-axis0", fastce.logsumexp, dict(arg0=logits), kwargs=dict(axis=0),
                has_grad=False),
        Problem("cross_entropy-axis0", fastce.cross_entropy,
                dict(arg0=np.ascontiguousarray(logits.T), arg1=labels.copy(),
                     weight=label_weight), kwargs=dict(axis=0)),
    ]


PROBLEM_NAMES = [problem.name for problem in make_problems()]


def problem_named(name, **kwargs):
    return next(p for p in make_problems(**kwargs) if p.name == name)


def as_bits(value):
    """The bytes of a result, so that comparisons are bitwise (also for -0.0 and NaN)."""
    array = np.asarray(value)
    return array.dtype.str, array.shape, np.ascontiguousarray(array).tobytes()


def assert_identical(results, expected):
    assert len(results) == len(expected)
    for got, want in zip(results, expected):
        assert type(got) is type(want)
        assert as_bits(got) == as_bits(want)


# --------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------
def strided_copy(array):
    """The same values as a view with a step of 2 along the last axis (and the first
    axis for 1-D arrays)."""
    if array.ndim == 0:
        return array
    wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
    wide[..., ::2] = array
    wide[..., 1::2] = 12345  # garbage between the elements
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    return view


def strided_rows(array):
    """A view with a step of 2 along the first axis."""
    wide = np.zeros((2 * array.shape[0],) + array.shape[1:], dtype=array.dtype)
    wide[::2] = array
    wide[1::2] = 7
    return wide[::2]


def fortran_copy(array):
    return np.asfortranarray(array)


def reversed_view(array):
    """Negative strides: a reversed copy, reversed back as a view."""
    return array[::-1].copy()[::-1] if array.ndim else array


@pytest.mark.parametrize("layout", [strided_copy, strided_rows, fortran_copy, reversed_view],
                         ids=["strided", "strided_rows", "fortran", "negative_strides"])
@pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
def test_layout_gives_the_result_of_a_c_contiguous_copy(problem_name, layout):
    problem = problem_named(problem_name)
    converted = {key: layout(value) for key, value in problem.arrays.items()}
    for key, value in converted.items():
        assert np.array_equal(value, problem.arrays[key])
    contiguous = {key: np.ascontiguousarray(value) for key, value in converted.items()}
    for variant in problem.variants():
        assert_identical(problem.call(converted, **variant),
                         problem.call(contiguous, **variant))


@pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
def test_read_only_memmap_inputs(problem_name, tmp_path):
    problem = problem_named(problem_name)
    mapped = {}
    for key, value in problem.arrays.items():
        path = tmp_path / f"{key}.bin"
        value.tofile(path)
        mapped[key] = np.memmap(path, dtype=value.dtype, mode="r", shape=value.shape)
        assert not mapped[key].flags.writeable
    for variant in problem.variants():
        assert_identical(problem.call(mapped, **variant), problem.call(problem.arrays, **variant))


@pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
def test_read_only_arrays(problem_name):
    problem = problem_named(problem_name)
    frozen = {}
    for key, value in problem.arrays.items():
        frozen[key] = value.copy()
        frozen[key].flags.writeable = False
    for variant in problem.variants():
        assert_identical(problem.call(frozen, **variant), problem.call(problem.arrays, **variant))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("problem_name", PROBLEM_NAMES)
def test_inputs_are_not_modified(problem_name, dtype):
    problem = problem_named(problem_name, dtype=dtype)
    arrays = problem.arrays
    if problem_name != "bce":  # NaN probabilities are an error, NaN logits are data
        arrays["arg0"][0, 0] = np.nan
    before = {key: value.copy() for key, value in arrays.items()}
    for variant in problem.variants():
        problem.call(arrays, **variant)
        for key, value in arrays.items():
            assert as_bits(value) == as_bits(before[key]), f"{key} was modified"


def test_cross_entropy_class_axis_1_of_3d_logits_matches_moved_axis():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 6, 3))  # (N, C, d), torch layout
    labels = rng.integers(0, 6, size=(5, 3))
    moved = np.ascontiguousarray(np.moveaxis(logits, 1, -1))
    for reduction in ("none", "mean"):
        loss, grad = fastce.cross_entropy(logits, labels, axis=1, reduction=reduction,
                                          return_grad=True)
        loss_moved, grad_moved = fastce.cross_entropy(moved, labels, reduction=reduction,
                                                      return_grad=True)
        assert grad.shape == logits.shape
        np.testing.assert_allclose(loss, loss_moved, rtol=1e-15)
        np.testing.assert_allclose(grad, np.moveaxis(grad_moved, -1, 1), rtol=1e-15)


# --------------------------------------------------------------------------
# grad_out and out, including in place
# --------------------------------------------------------------------------
GRAD_PROBLEMS = [name for name in PROBLEM_NAMES
                 if problem_named(name).has_grad]
OUT_PROBLEMS = ["sigmoid", "log_sigmoid", "log_softmax", "softmax", "log_softmax-axis0"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("problem_name", GRAD_PROBLEMS)
def test_grad_out_in_place(problem_name, reduction, dtype):
    problem = problem_named(problem_name, dtype=dtype)
    expected_loss, expected_grad = problem.call(problem.arrays, reduction=reduction,
                                                return_grad=True)
    first = problem.arrays["arg0"]
    in_place = dict(problem.arrays, arg0=first.copy())
    loss, grad = problem.call(in_place, reduction=reduction, return_grad=True,
                              grad_out=in_place["arg0"])
    assert grad is in_place["arg0"]
    assert_identical((loss, grad), (expected_loss, expected_grad))


@pytest.mark.parametrize("problem_name", GRAD_PROBLEMS)
def test_grad_out_preallocated(problem_name):
    problem = problem_named(problem_name)
    expected = problem.call(problem.arrays, reduction="mean", return_grad=True)
    grad_out = np.full_like(problem.arrays["arg0"], np.nan)
    loss, grad = problem.call(problem.arrays, reduction="mean", return_grad=True,
                              grad_out=grad_out)
    assert grad is grad_out
    assert_identical((loss, grad), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("problem_name", OUT_PROBLEMS)
def test_out_in_place_and_preallocated(problem_name, dtype):
    problem = problem_named(problem_name, dtype=dtype)
    (expected,) = problem.call(problem.arrays)
    out = np.full_like(expected, np.nan)
    (result,) = problem.call(problem.arrays, out=out)
    assert result is out
    assert_identical((result,), (expected,))
    in_place = dict(arg0=problem.arrays["arg0"].copy())
    (result,) = problem.call(in_place, out=in_place["arg0"])
    assert result is in_place["arg0"]
    assert_identical((result,), (expected,))


def test_grad_out_float16_logits_takes_float32():
    logits = np.linspace(-4, 4, 40).reshape(8, 5).astype(np.float16)
    labels = np.arange(8) % 5
    grad_out = np.empty((8, 5), dtype=np.float32)
    loss, grad = fastce.cross_entropy(logits, labels, return_grad=True, grad_out=grad_out)
    assert grad is grad_out
    assert_identical((loss, grad), fastce.cross_entropy(logits, labels, return_grad=True))


# --------------------------------------------------------------------------
# Determinism across n_threads
# --------------------------------------------------------------------------
def large_binary_problems(dtype):
    rng = np.random.default_rng(2)
    shape = (600, 500)  # 300_000 elements
    logits = (4.0 * rng.standard_normal(shape)).astype(dtype)
    soft = rng.uniform(size=shape).astype(dtype)
    return [
        Problem("bcewl", fastce.binary_cross_entropy_with_logits,
                dict(arg0=logits, arg1=soft,
                     weight=rng.uniform(0.0, 2.0, size=(600, 1)).astype(dtype),
                     pos_weight=rng.uniform(0.5, 3.0, size=500).astype(dtype))),
        Problem("bce", fastce.binary_cross_entropy,
                dict(arg0=rng.uniform(0.0, 1.0, size=shape).astype(dtype), arg1=soft)),
        Problem("logistic", fastce.logistic_loss,
                dict(arg0=logits,
                     arg1=rng.choice(np.array([-1, 1], dtype=np.int8), size=shape))),
        Problem("sigmoid", fastce.sigmoid, dict(arg0=logits), has_grad=False),
        Problem("log_sigmoid", fastce.log_sigmoid, dict(arg0=logits), has_grad=False),
    ]


def large_softmax_problems(dtype):
    rng = np.random.default_rng(3)
    n_rows, n_classes = 4096, 300
    logits = (3.0 * rng.standard_normal((n_rows, n_classes))).astype(dtype)
    labels = rng.integers(0, n_classes, size=n_rows)
    labels[::11] = -100
    class_probs = rng.uniform(size=(n_rows, n_classes)).astype(dtype)
    class_probs /= class_probs.sum(axis=1, keepdims=True)
    class_weight = rng.uniform(0.1, 2.0, size=n_classes).astype(dtype)
    return [
        Problem("cross_entropy-labels", fastce.cross_entropy,
                dict(arg0=logits, arg1=labels, weight=class_weight),
                kwargs=dict(label_smoothing=0.1)),
        Problem("cross_entropy-plain", fastce.cross_entropy, dict(arg0=logits, arg1=labels)),
        Problem("cross_entropy-probs", fastce.cross_entropy,
                dict(arg0=logits, arg1=class_probs)),
        Problem("log_softmax", fastce.log_softmax, dict(arg0=logits), has_grad=False),
        Problem("softmax", fastce.softmax, dict(arg0=logits), has_grad=False),
        Problem("logsumexp", fastce.logsumexp, dict(arg0=logits), has_grad=False),
    ]


def assert_same_for_every_thread_count(problem):
    for variant in problem.variants():
        expected = problem.call(problem.arrays, n_threads=1, **variant)
        for n_threads in (1, 2, 3, 4, None):
            assert_identical(problem.call(problem.arrays, n_threads=n_threads, **variant),
                             expected)
        # Without the gradient, the loss is the same too.
        if problem.has_grad:
            loss_only = problem.call(problem.arrays, n_threads=3,
                                     reduction=variant["reduction"])
            assert_identical(loss_only, problem.call(problem.arrays, n_threads=1,
                                                     reduction=variant["reduction"]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_family_is_deterministic_across_threads(dtype):
    for problem in large_binary_problems(dtype):
        assert_same_for_every_thread_count(problem)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family_is_deterministic_across_threads(dtype):
    for problem in large_softmax_problems(dtype):
        assert_same_for_every_thread_count(problem)


def test_default_thread_count_is_accepted():
    logits = np.zeros((10, 3))
    assert fastce.cross_entropy(logits, np.zeros(10, dtype=np.int64), n_threads=None) \
        == pytest.approx(np.log(3.0))


# --------------------------------------------------------------------------
# The GIL is released while the kernel runs
# --------------------------------------------------------------------------
def test_kernels_release_the_gil():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((20_000, 1000), dtype=np.float32)
    labels = rng.integers(0, 1000, size=20_000)
    grad_out = np.empty_like(logits)
    elementwise = rng.standard_normal(5_000_000)
    soft = rng.uniform(size=5_000_000)

    state = {"count": 0, "stop": False}

    def count():
        while not state["stop"]:
            state["count"] += 1
            time.sleep(0)  # lets the main thread take the GIL back after the kernel

    # A long switch interval: the counter advances during a call only if the call
    # releases the GIL itself, not because the interpreter forces a switch.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    counter = threading.Thread(target=count, daemon=True)
    counter.start()
    try:
        time.sleep(0.01)
        advanced = {"cross_entropy": [], "bcewl": []}
        for _ in range(3):
            before = state["count"]
            fastce.cross_entropy(logits, labels, return_grad=True, grad_out=grad_out)
            advanced["cross_entropy"].append(state["count"] - before)
            before = state["count"]
            fastce.binary_cross_entropy_with_logits(elementwise, soft, return_grad=True)
            advanced["bcewl"].append(state["count"] - before)
    finally:
        state["stop"] = True
        counter.join()
        sys.setswitchinterval(old_interval)
    assert all(steps > 0 for steps in advanced["cross_entropy"]), advanced
    assert all(steps > 0 for steps in advanced["bcewl"]), advanced


# --------------------------------------------------------------------------
# Integer label dtypes
# --------------------------------------------------------------------------
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_every_integer_label_dtype_gives_the_same_cross_entropy(label_dtype):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((64, 10))
    labels = rng.integers(0, 10, size=64)
    weight = rng.uniform(0.5, 2.0, size=10)
    for reduction in ("none", "mean", "sum"):
        for kwargs in ({}, dict(weight=weight, label_smoothing=0.2)):
            expected = fastce.cross_entropy(logits, labels, reduction=reduction,
                                            return_grad=True, **kwargs)
            got = fastce.cross_entropy(logits, labels.astype(label_dtype), reduction=reduction,
                                       return_grad=True, **kwargs)
            assert_identical(got, expected)


@pytest.mark.parametrize("label_dtype", [np.int8, np.int16, np.int32, np.int64])
def test_signed_label_dtypes_with_ignore_index(label_dtype):
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((64, 10))
    labels = rng.integers(0, 10, size=64)
    labels[::5] = -100
    for reduction in ("none", "mean"):
        expected = fastce.cross_entropy(logits, labels, reduction=reduction, return_grad=True)
        got = fastce.cross_entropy(logits, labels.astype(label_dtype), reduction=reduction,
                                   return_grad=True)
        assert_identical(got, expected)


@pytest.mark.parametrize("label_dtype", [np.uint8, np.uint16])
def test_unsigned_labels_with_a_representable_ignore_index(label_dtype):
    rng = np.random.default_rng(7)
    logits = rng.standard_normal((64, 10))
    labels = rng.integers(0, 10, size=64)
    labels[::5] = 255
    expected = fastce.cross_entropy(logits, labels, ignore_index=255, return_grad=True)
    got = fastce.cross_entropy(logits, labels.astype(label_dtype), ignore_index=255,
                               return_grad=True)
    assert_identical(got, expected)


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------
def test_show_config_reports_openmp(capsys):
    returned = fastce.show_config()
    printed = capsys.readouterr().out
    text = printed + ("" if returned is None else str(returned))
    assert "openmp" in text.lower(), text
    assert "thread" in text.lower(), text
    version = getattr(fastce, "__version__", None)
    if version is not None:
        assert str(version) in text, text
