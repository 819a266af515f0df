"""Bad input gives a clear error and touches nothing (the contract, "Bad input").

Every case builds fresh arrays, snapshots every input except grad_out/out, expects the
error with a message naming the argument, and checks that no input was modified.
"""
import re

import numpy as np
import pytest

import fastce

from conftest import word

N_SAMPLES, N_CLASSES = 6, 4
SHAPE = (N_SAMPLES, N_CLASSES)


# --------------------------------------------------------------------------
# Fresh, valid inputs
# --------------------------------------------------------------------------
def logits(shape=SHAPE, dtype=np.float64):
    return np.linspace(-3.0, 3.0, int(np.prod(shape))).reshape(shape).astype(dtype)


def soft_target(shape=SHAPE):
    return np.linspace(0.0, 1.0, int(np.prod(shape))).reshape(shape)


def probs(shape=SHAPE):
    return np.linspace(0.05, 0.95, int(np.prod(shape))).reshape(shape)


def sign_labels(shape=SHAPE):
    return np.where(np.arange(int(np.prod(shape))) % 2 == 0, 1.0, -1.0).reshape(shape)


def class_labels(n_samples=N_SAMPLES, n_classes=N_CLASSES):
    return (np.arange(n_samples) % n_classes).astype(np.int64)


def class_probs(shape=SHAPE):
    target = np.ones(shape)
    return target / target.sum(axis=-1, keepdims=True)


def with_value(array, index, value):
    array = np.array(array)
    array[index] = value
    return array


def read_only(array):
    array = np.array(array)
    array.flags.writeable = False
    return array


BAD_DTYPES = {
    "complex": lambda a: np.asarray(a).astype(np.complex128),
    "object": lambda a: np.asarray(a).astype(object),
    "str": lambda a: np.asarray(a).astype(str),
}


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------
class Case:
    """fn(*args, **kwargs) must raise `error` whose message matches `match`.

    `checked_in_kernel` marks value errors that the fused kernel finds: those are
    run for several reductions and with and without the gradient."""

    def __init__(self, name, fn, build, error, match, checked_in_kernel=False):
        self.name, self.fn, self.build = name, fn, build
        self.error, self.match = error, match
        self.checked_in_kernel = checked_in_kernel


LOSS_FUNCTIONS = {
    # name: (function, first argument name, valid first argument, valid target)
    "binary_cross_entropy_with_logits": (fastce.binary_cross_entropy_with_logits, "logits",
                                         logits, soft_target),
    "binary_cross_entropy": (fastce.binary_cross_entropy, "probs", probs, soft_target),
    "logistic_loss": (fastce.logistic_loss, "scores", logits, sign_labels),
    "cross_entropy": (fastce.cross_entropy, "logits", logits, class_labels),
}


def loss_cases():
    cases = []
    for fn_name in LOSS_FUNCTIONS:
        cases += cases_for_loss(fn_name)
    return cases


def cases_for_loss(fn_name):
    """Cases shared by the four losses, and those of the elementwise family."""
    fn, first_name, make_first, make_target = LOSS_FUNCTIONS[fn_name]
    cases = []

    def add(problem, build, error, match, checked_in_kernel=False):
        cases.append(Case(f"{fn_name}-{problem}", fn, build, error, match, checked_in_kernel))

    def call(first=None, target=None, **kwargs):
        first = make_first() if first is None else first
        target = make_target() if target is None else target
        return (first, target), kwargs

    def add_bad_value(problem, argument, make_valid, index, value):
        """`argument` ("first" or a keyword) valid but for `value` at `index`: a ValueError
        naming it, which only the kernel's pass over the values can find."""
        name = first_name if argument == "first" else argument
        add(problem, lambda: call(**{argument: with_value(make_valid(), index, value)}),
            ValueError, word(name), checked_in_kernel=True)

    for dtype_name, convert in BAD_DTYPES.items():
        add(f"{first_name}-{dtype_name}",
            lambda convert=convert: call(first=convert(make_first())),
            TypeError, word(first_name))
        add(f"target-{dtype_name}",
            lambda convert=convert: call(target=convert(make_target())),
            TypeError, word("target"))
    add("weight-complex",
        lambda: call(weight=np.ones(N_CLASSES, dtype=np.complex128)),
        TypeError, word("weight"))
    add("weight-object", lambda: call(weight=np.ones(N_CLASSES, dtype=object)),
        TypeError, word("weight"))

    # Keywords.
    for bad in (0, -1):
        add(f"n_threads-{bad}", lambda bad=bad: call(n_threads=bad), ValueError,
            word("n_threads"))
    add("n_threads-float", lambda: call(n_threads=1.5), (TypeError, ValueError),
        word("n_threads"))
    for bad in ("avg", "MEAN", "elementwise", ""):
        add(f"reduction-{bad!r}", lambda bad=bad: call(reduction=bad), ValueError,
            word("reduction"))

    # grad_out: wrong shape, dtype, layout, not writable.
    bad_grad_outs = {
        "shape": lambda: np.zeros((N_SAMPLES, N_CLASSES + 1)),
        "shape-transposed": lambda: np.zeros((N_CLASSES, N_SAMPLES)),
        "dtype-float32": lambda: np.zeros(SHAPE, dtype=np.float32),
        "dtype-int64": lambda: np.zeros(SHAPE, dtype=np.int64),
        "fortran": lambda: np.asfortranarray(np.zeros(SHAPE)),
        "strided": lambda: np.zeros((N_SAMPLES, 2 * N_CLASSES))[:, ::2],
        "read-only": lambda: read_only(np.zeros(SHAPE)),
    }
    for problem, make_grad_out in bad_grad_outs.items():
        add(f"grad_out-{problem}",
            lambda mg=make_grad_out: call(return_grad=True, grad_out=mg()),
            ValueError, word("grad_out"))

    if fn_name == "cross_entropy":
        return cases

    # Elementwise family: target of another shape.
    for target_shape in ((N_SAMPLES, N_CLASSES + 1), (N_CLASSES, N_SAMPLES),
                         (N_SAMPLES * N_CLASSES,), (N_CLASSES,), (N_SAMPLES, 1)):
        add(f"target-shape-{target_shape}",
            lambda ts=target_shape: call(
                target=np.resize(make_target(), ts)),
            ValueError, word("target"))
    # Weight: wrong shape, negative, not finite.
    for weight_shape in ((N_SAMPLES + 1, N_CLASSES), (N_CLASSES + 1,), (N_SAMPLES,),
                         (2, N_SAMPLES, N_CLASSES)):
        add(f"weight-shape-{weight_shape}",
            lambda ws=weight_shape: call(weight=np.ones(ws)), ValueError, word("weight"))
    for bad in (-1.0, -1e-300, np.nan, np.inf, -np.inf):
        add_bad_value(f"weight-{bad}", "weight", lambda: np.ones(SHAPE), (3, 2), bad)
        add_bad_value(f"weight-broadcast-{bad}", "weight", lambda: np.ones(N_CLASSES), 1, bad)

    if fn_name == "binary_cross_entropy_with_logits":
        for bad in (1.5, -0.5, 2.0, np.nan, np.inf, -np.inf):
            add_bad_value(f"target-{bad}", "target", soft_target, (4, 1), bad)
        add_bad_value("target-int-2", "target", lambda: np.zeros(SHAPE, dtype=np.int64),
                      (0, 3), 2)
        add_bad_value("target-int-negative", "target", lambda: np.zeros(SHAPE, dtype=np.int8),
                      (5, 0), -1)
        add("pos_weight-complex",
            lambda: call(pos_weight=np.ones(N_CLASSES, dtype=np.complex128)),
            TypeError, word("pos_weight"))
        for pw_shape in ((N_CLASSES + 1,), (N_CLASSES - 1,), (2, N_SAMPLES, N_CLASSES)):
            add(f"pos_weight-shape-{pw_shape}",
                lambda ps=pw_shape: call(pos_weight=np.ones(ps)),
                ValueError, word("pos_weight"))
        for bad in (-1.0, np.nan, np.inf):
            add_bad_value(f"pos_weight-{bad}", "pos_weight", lambda: np.ones(N_CLASSES), 2, bad)

    if fn_name == "binary_cross_entropy":
        for bad in (1.5, -0.1, -1e-300, 1.0 + 1e-15, np.nan, np.inf, -np.inf):
            add_bad_value(f"probs-{bad}", "first", probs, (2, 3), bad)
        for bad in (1.5, -0.5, np.nan, np.inf):
            add_bad_value(f"target-{bad}", "target", soft_target, (1, 1), bad)

    if fn_name == "logistic_loss":
        for bad in (0.0, 0.5, 2.0, -2.0, -1.0000001, np.nan, np.inf):
            add_bad_value(f"target-{bad}", "target", sign_labels, (5, 3), bad)
        add_bad_value("target-int-0", "target", lambda: np.ones(SHAPE, dtype=np.int64),
                      (0, 0), 0)
        add("target-01-labels",
            lambda: call(target=(sign_labels() > 0).astype(np.int64)),
            ValueError, word("target"), checked_in_kernel=True)
    return cases


def cross_entropy_cases():
    cases = []

    def add(problem, build, error, match, checked_in_kernel=False):
        cases.append(Case(f"cross_entropy-{problem}", fastce.cross_entropy, build, error,
                          match, checked_in_kernel))

    def call(first=None, target=None, **kwargs):
        first = logits() if first is None else first
        target = class_labels() if target is None else target
        return (first, target), kwargs

    # Target shapes: class indices need the logits' shape minus the class axis, class
    # probabilities need the logits' shape.
    add("int-target-shape-long", lambda: call(target=class_labels(N_SAMPLES + 1)),
        ValueError, word("target"))
    add("int-target-shape-short", lambda: call(target=class_labels(N_SAMPLES - 1)),
        ValueError, word("target"))
    add("int-target-full-shape", lambda: call(target=np.zeros(SHAPE, dtype=np.int64)),
        ValueError, word("target"))
    add("int-target-2d", lambda: call(target=np.zeros((N_SAMPLES, 2), dtype=np.int64)),
        ValueError, word("target"))
    add("float-target-shape", lambda: call(target=class_probs((N_SAMPLES, N_CLASSES + 1))),
        ValueError, word("target"))
    add("float-target-batch-shape", lambda: call(target=np.zeros(N_SAMPLES)),
        ValueError, word("target"))
    add("int-target-axis0", lambda: call(target=class_labels(), axis=0),
        ValueError, word("target"))

    # Class indices out of [0, C) that are not ignore_index.
    for bad in (N_CLASSES, 100, -1, -101, 2**40):
        add(f"class-{bad}",
            lambda bad=bad: call(target=with_value(class_labels(), 3, bad)),
            ValueError, word("target"), checked_in_kernel=True)
    add("class-uint8-255",
        lambda: call(target=with_value(class_labels().astype(np.uint8), 3, 255)),
        ValueError, word("target"), checked_in_kernel=True)
    add("class-uint64-max",
        lambda: call(target=with_value(class_labels().astype(np.uint64), 3, 2**64 - 1)),
        ValueError, word("target"), checked_in_kernel=True)
    add("class-default-ignore-with-other-ignore_index",
        lambda: call(target=with_value(class_labels(), 2, -100), ignore_index=-1),
        ValueError, word("target"), checked_in_kernel=True)

    # Probability targets.
    for bad in (-0.25, -1e-300, np.nan, np.inf, -np.inf):
        add(f"prob-target-{bad}",
            lambda bad=bad: call(target=with_value(class_probs(), (4, 1), bad)),
            ValueError, word("target"), checked_in_kernel=True)

    for bad in (-0.1, 1.5, -1e-300, np.nan, np.inf):
        add(f"label_smoothing-{bad}", lambda bad=bad: call(label_smoothing=bad), ValueError,
            word("label_smoothing"))
        add(f"label_smoothing-probs-{bad}",
            lambda bad=bad: call(target=class_probs(), label_smoothing=bad), ValueError,
            word("label_smoothing"))

    for weight_shape in ((N_CLASSES + 1,), (N_CLASSES - 1,), (1,), SHAPE, ()):
        add(f"weight-shape-{weight_shape}",
            lambda ws=weight_shape: call(weight=np.ones(ws)), ValueError, word("weight"))
    for bad in (-1.0, np.nan, np.inf):
        add(f"weight-{bad}",
            lambda bad=bad: call(weight=with_value(np.ones(N_CLASSES), 2, bad)),
            ValueError, word("weight"))
        add(f"weight-probs-{bad}",
            lambda bad=bad: call(target=class_probs(),
                                 weight=with_value(np.ones(N_CLASSES), 2, bad)),
            ValueError, word("weight"))

    for bad in (2, -3, 5):
        add(f"axis-{bad}", lambda bad=bad: call(axis=bad), ValueError, word("axis"))
    add("grad_out-probs-shape",
        lambda: call(target=class_probs(), return_grad=True,
                     grad_out=np.zeros((N_SAMPLES, N_CLASSES + 1))),
        ValueError, word("grad_out"))
    add("grad_out-float16-logits",
        lambda: call(first=logits(dtype=np.float16), return_grad=True,
                     grad_out=np.zeros(SHAPE, dtype=np.float16)),
        ValueError, word("grad_out"))
    add("grad_out-int-logits-float32",
        lambda: call(first=np.zeros(SHAPE, dtype=np.int64), return_grad=True,
                     grad_out=np.zeros(SHAPE, dtype=np.float32)),
        ValueError, word("grad_out"))
    return cases


def building_block_cases():
    cases = []
    x_word = word("x")

    def add(fn_name, problem, build, error, match):
        cases.append(Case(f"{fn_name}-{problem}", getattr(fastce, fn_name), build, error,
                          match))

    for fn_name in ("log_softmax", "softmax", "logsumexp", "sigmoid", "log_sigmoid"):
        for dtype_name, convert in BAD_DTYPES.items():
            add(fn_name, f"x-{dtype_name}",
                lambda convert=convert: ((convert(logits()),), {}), TypeError, x_word)
        for bad in (0, -4):
            add(fn_name, f"n_threads-{bad}", lambda bad=bad: ((logits(),), {"n_threads": bad}),
                ValueError, word("n_threads"))
        if fn_name in ("log_softmax", "softmax", "logsumexp"):
            for bad in (2, -3, 7):
                add(fn_name, f"axis-{bad}", lambda bad=bad: ((logits(),), {"axis": bad}),
                    ValueError, word("axis"))
        if fn_name == "logsumexp":
            continue
        bad_outs = {
            "shape": lambda: np.zeros((N_SAMPLES, N_CLASSES + 1)),
            "shape-transposed": lambda: np.zeros((N_CLASSES, N_SAMPLES)),
            "dtype": lambda: np.zeros(SHAPE, dtype=np.float32),
            "fortran": lambda: np.asfortranarray(np.zeros(SHAPE)),
            "strided": lambda: np.zeros((N_SAMPLES, 2 * N_CLASSES))[:, ::2],
            "read-only": lambda: read_only(np.zeros(SHAPE)),
        }
        for problem, make_out in bad_outs.items():
            add(fn_name, f"out-{problem}", lambda mo=make_out: ((logits(),), {"out": mo()}),
                ValueError, word("out"))
    return cases


ALL_CASES = loss_cases() + cross_entropy_cases() + building_block_cases()
KERNEL_VARIANTS = [("mean", False), ("none", False), ("sum", True), ("none", True)]


def expanded_cases():
    for case in ALL_CASES:
        if case.checked_in_kernel:
            for reduction, return_grad in KERNEL_VARIANTS:
                yield pytest.param(case, reduction, return_grad,
                                   id=f"{case.name}-{reduction}-grad{int(return_grad)}")
        else:
            yield pytest.param(case, None, None, id=case.name)


def snapshot(values):
    return [np.array(value, copy=True) if isinstance(value, np.ndarray) else value
            for value in values]


def assert_unchanged(before, after):
    for old, new in zip(before, after):
        if isinstance(old, np.ndarray):
            assert new.dtype == old.dtype and new.shape == old.shape
            if old.dtype.kind in "fc":
                assert np.array_equal(new, old, equal_nan=True), "an input was modified"
            else:
                assert np.array_equal(new, old), "an input was modified"


@pytest.mark.parametrize("case, reduction, return_grad", list(expanded_cases()))
def test_bad_input_raises_and_touches_nothing(case, reduction, return_grad):
    args, kwargs = case.build()
    if reduction is not None:
        kwargs = dict(kwargs, reduction=reduction, return_grad=return_grad)
    inputs = list(args) + [value for key, value in kwargs.items()
                           if key not in ("grad_out", "out")]
    before = snapshot(inputs)
    with pytest.raises(case.error, match=case.match):
        case.fn(*args, **kwargs)
    assert_unchanged(before, inputs)


# --------------------------------------------------------------------------
# Messages that carry the value and its position
# --------------------------------------------------------------------------
def error_message(fn, *args, **kwargs):
    with pytest.raises(ValueError) as info:
        fn(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.int8, np.uint8, np.uint64])
def test_class_index_message_has_value_and_position(label_dtype):
    target = np.array([0, 1, 2, 7, 1, 0], dtype=label_dtype)
    message = error_message(fastce.cross_entropy, logits(), target)
    assert re.search(word("target"), message)
    assert re.search(word("7"), message), message
    assert re.search(word("3"), message), message


def test_class_index_message_has_multi_dimensional_position():
    batch_logits = logits((2, 3, N_CLASSES))
    target = np.zeros((2, 3), dtype=np.int64)
    target[1, 2] = 9
    message = error_message(fastce.cross_entropy, batch_logits, target)
    assert re.search(word("9"), message), message
    assert re.search(r"[(\[]1, 2[)\]]", message), message


def test_class_index_message_for_class_axis_1():
    # torch layout: (N, C, d) with the classes on axis 1, target (N, d).
    batch_logits = logits((2, N_CLASSES, 3))
    target = np.zeros((2, 3), dtype=np.int64)
    target[0, 2] = -5
    message = error_message(fastce.cross_entropy, batch_logits, target, axis=1)
    assert re.search(r"-5\b", message), message
    assert re.search(r"[(\[]0, 2[)\]]", message), message


def test_class_index_message_shows_large_unsigned_value():
    target = class_labels().astype(np.uint64)
    target[4] = 2**64 - 1
    message = error_message(fastce.cross_entropy, logits(), target)
    assert "18446744073709551615" in message, message
    assert re.search(word("4"), message), message


def test_first_offending_class_index_is_reported():
    target = class_labels()
    target[2] = 11
    target[5] = 13
    message = error_message(fastce.cross_entropy, logits(), target, n_threads=1)
    assert re.search(word("11"), message), message
    assert not re.search(word("13"), message), message


@pytest.mark.parametrize("n_threads", [None, 1, 4])
@pytest.mark.parametrize("return_grad", [False, True])
def test_bad_value_at_the_end_of_a_large_batch(n_threads, return_grad):
    """The checks cover every element, also in the parallel pass."""
    n_samples = 100_003
    big_logits = np.zeros((n_samples, 3))
    target = np.zeros(n_samples, dtype=np.int64)
    target[-1] = 3
    message = error_message(fastce.cross_entropy, big_logits, target, n_threads=n_threads,
                            return_grad=return_grad)
    assert re.search(word("target"), message) and re.search(word("3"), message)
    assert re.search(word(str(n_samples - 1)), message), message

    elementwise = np.zeros(300_001)
    soft = np.full(300_001, 0.5)
    soft[-1] = 1.25
    message = error_message(fastce.binary_cross_entropy_with_logits, elementwise, soft,
                            n_threads=n_threads, return_grad=return_grad)
    assert re.search(word("target"), message), message
    labels = np.ones(300_001)
    labels[-1] = 0.0
    message = error_message(fastce.logistic_loss, elementwise, labels, n_threads=n_threads,
                            return_grad=return_grad)
    assert re.search(word("target"), message), message
    bad_probs = np.full(300_001, 0.5)
    bad_probs[-1] = np.nan
    message = error_message(fastce.binary_cross_entropy, bad_probs, soft.clip(0, 1),
                            n_threads=n_threads, return_grad=return_grad)
    assert re.search(word("probs"), message), message


@pytest.mark.parametrize("fn_name", ["binary_cross_entropy_with_logits", "logistic_loss",
                                     "binary_cross_entropy"])
def test_value_error_shows_the_offending_value(fn_name):
    fn, first_name, make_first, make_target = LOSS_FUNCTIONS[fn_name]
    target = make_target()
    target[2, 1] = 7.5
    message = error_message(fn, make_first(), target)
    assert re.search(word("target"), message)
    assert "7.5" in message, message


@pytest.mark.parametrize("bad", [-0.5, 1.5])
def test_label_smoothing_message_shows_value(bad):
    message = error_message(fastce.cross_entropy, logits(), class_labels(),
                            label_smoothing=bad)
    assert re.search(word("label_smoothing"), message)
    assert str(bad) in message, message


def test_reduction_message_shows_value():
    message = error_message(fastce.binary_cross_entropy_with_logits, logits(), soft_target(),
                            reduction="avg")
    assert re.search(word("reduction"), message)
    assert "avg" in message


# --------------------------------------------------------------------------
# Data is not validated: NaN in logits propagates, it is not an error
# --------------------------------------------------------------------------
def test_nan_in_logits_is_not_an_error():
    x = logits()
    x[1, 2] = np.nan
    assert np.isnan(fastce.binary_cross_entropy_with_logits(x, soft_target()))
    assert np.isnan(fastce.logistic_loss(x, sign_labels()))
    assert np.isnan(fastce.cross_entropy(x, class_labels()))
    assert np.isnan(fastce.cross_entropy(x, class_probs()))
    assert np.isnan(fastce.softmax(x)[1]).all()
    assert np.isnan(fastce.sigmoid(x)[1, 2])


def test_ignore_index_is_not_out_of_range():
    target = class_labels()
    target[1] = -100
    assert np.isfinite(fastce.cross_entropy(logits(), target))
    target[1] = 17
    assert np.isfinite(fastce.cross_entropy(logits(), target, ignore_index=17))


@pytest.mark.parametrize("fn_name", ["binary_cross_entropy_with_logits", "logistic_loss",
                                     "binary_cross_entropy", "cross_entropy"])
def test_failed_call_with_grad_out_leaves_inputs_intact(fn_name):
    """After a failed call with grad_out, the inputs still hold their values."""
    fn, _, make_first, make_target = LOSS_FUNCTIONS[fn_name]
    first, target = make_first(), make_target()
    if fn_name == "cross_entropy":
        target[-1] = 99
    elif fn_name == "logistic_loss":
        target[-1, -1] = 0.0
    else:
        target[-1, -1] = 3.0
    first_copy, target_copy = first.copy(), target.copy()
    grad_out = np.zeros_like(first)
    with pytest.raises(ValueError, match=word("target")):
        fn(first, target, return_grad=True, grad_out=grad_out)
    assert np.array_equal(first, first_copy) and np.array_equal(target, target_copy)
