"""Tests of fastce.binary_losses: binary_cross_entropy_with_logits,
binary_cross_entropy, logistic_loss, sigmoid and log_sigmoid; sigmoid_focal_loss in
its own section at the end (its oracles are listed there).

Oracles: fastce.reference, SciPy (expit, log_expit, xlogy), an mpmath evaluation
at 50 digits, and PyTorch where it is installed.
"""
import math

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, log_expit, xlogy

import fastce
from fastce import reference

from conftest import FLOAT_DTYPES, REDUCTIONS, tolerances, word

try:
    import torch
except ImportError:  # the other tests run without torch
    torch = None

requires_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

LOSSES = {
    "bcewl": fastce.binary_cross_entropy_with_logits,
    "bce": fastce.binary_cross_entropy,
    "logistic": fastce.logistic_loss,
}
PROPERTY_SETTINGS = settings(max_examples=50, deadline=None, database=None)


# --------------------------------------------------------------------------
# float64 oracles built on SciPy
# --------------------------------------------------------------------------
def softplus(t):
    """log(1 + exp(t)), stable for every t."""
    return -log_expit(-np.asarray(t, dtype=np.float64))


def times(factor, value):
    """factor * value, where a zero factor gives exactly 0 (never 0 * inf = NaN)."""
    factor = np.asarray(factor, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(factor == 0, 0.0, factor * value)


def bcewl_oracle(logits, target, weight=None, pos_weight=None):
    """Per-element loss and gradient of binary_cross_entropy_with_logits."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    pw = 1.0 if pos_weight is None else np.asarray(pos_weight, dtype=np.float64)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    neg_factor = 1.0 - y
    pos_factor = pw * y
    loss = times(neg_factor, softplus(z)) + times(pos_factor, softplus(-z))
    grad = times(neg_factor, expit(z)) - times(pos_factor, expit(-z))
    loss = np.broadcast_to(times(w, loss), z.shape)
    grad = np.broadcast_to(times(w, grad), z.shape)
    return loss, grad


def bce_oracle(probs, target, weight=None):
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p), -100.0)
        log_1mp = np.maximum(np.log1p(-p), -100.0)
    loss = -(times(y, log_p) + times(1.0 - y, log_1mp))
    grad = (p - y) / np.maximum(p * (1.0 - p), 1e-12)
    return np.broadcast_to(times(w, loss), p.shape), np.broadcast_to(times(w, grad), p.shape)


def logistic_oracle(scores, target, weight=None):
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    w = 1.0 if weight is None else np.asarray(weight, dtype=np.float64)
    loss = softplus(-y * s)
    grad = -y * expit(-y * s)
    return np.broadcast_to(times(w, loss), s.shape), np.broadcast_to(times(w, grad), s.shape)


def reduce_oracle(per_element, per_element_grad, reduction):
    """The reduced loss, and the gradient of it, from per-element values."""
    if reduction == "none":
        return per_element, per_element_grad
    total = math.fsum(np.asarray(per_element, dtype=np.float64).ravel())
    if reduction == "sum":
        return total, per_element_grad
    size = per_element.size
    if size == 0:
        return 0.0, per_element_grad
    return total / size, per_element_grad / size


def assert_loss_close(got, expected, dtype, reduction):
    if reduction == "none":
        assert isinstance(got, np.ndarray)
        assert got.dtype == dtype
        assert got.shape == np.shape(expected)
        assert_allclose(got, expected, **tolerances(dtype))
    else:
        assert isinstance(got, float)
        assert isinstance(got, np.float64)
        rtol = 1e-12 if dtype == np.float64 else 2e-6
        assert_allclose(got, expected, rtol=rtol, atol=1e-300)


def assert_grad_close(got, expected, dtype, scale=1.0):
    assert isinstance(got, np.ndarray)
    assert got.dtype == dtype
    assert got.shape == np.shape(expected)
    tol = tolerances(dtype)
    assert_allclose(got, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


def call_with_grad(fn, first, target, **kwargs):
    result = fn(first, target, return_grad=True, **kwargs)
    assert isinstance(result, tuple) and len(result) == 2
    return result


# --------------------------------------------------------------------------
# Problems used by several tests
# --------------------------------------------------------------------------
def multilabel_problem(dtype, seed=0, n_samples=37, n_labels=5):
    rng = np.random.default_rng(seed)
    logits = (4.0 * rng.standard_normal((n_samples, n_labels))).astype(dtype)
    target = rng.uniform(size=(n_samples, n_labels)).astype(dtype)
    target[::3] = np.round(target[::3])  # a mix of hard and soft labels
    weight = rng.uniform(0.0, 2.0, size=(n_samples, 1)).astype(dtype)
    pos_weight = rng.uniform(0.5, 3.0, size=n_labels).astype(dtype)
    return logits, target, weight, pos_weight


def probs_problem(dtype, seed=1, shape=(29, 4)):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.001, 0.999, size=shape).astype(dtype)
    target = rng.uniform(size=shape).astype(dtype)
    target[::2] = np.round(target[::2])
    weight = rng.uniform(0.0, 2.0, size=shape[-1]).astype(dtype)
    return probs, target, weight


def logistic_problem(dtype, seed=2, shape=(41, 3)):
    rng = np.random.default_rng(seed)
    scores = (3.0 * rng.standard_normal(shape)).astype(dtype)
    target = rng.choice(np.array([-1.0, 1.0]), size=shape).astype(dtype)
    weight = rng.uniform(0.0, 2.0, size=shape).astype(dtype)
    return scores, target, weight


def loss_problem(fn_name, dtype, **kwargs):
    """(first argument, target, weight keywords) of the problem above for LOSSES[fn_name]."""
    if fn_name == "bcewl":
        logits, target, weight, pos_weight = multilabel_problem(dtype, **kwargs)
        return logits, target, dict(weight=weight, pos_weight=pos_weight)
    problem = probs_problem if fn_name == "bce" else logistic_problem
    first, target, weight = problem(dtype, **kwargs)
    return first, target, dict(weight=weight)


# --------------------------------------------------------------------------
# Oracles: SciPy and fastce.reference
# --------------------------------------------------------------------------
ORACLES = {"bcewl": bcewl_oracle, "bce": bce_oracle, "logistic": logistic_oracle}
# binary_cross_entropy's gradient (p - y) / (p (1 - p)) reaches 1e3 on probs_problem's
# p in [0.001, 0.999]: its absolute tolerance grows with it.
GRAD_ATOL_SCALE = {"bcewl": 1.0, "bce": 1e3, "logistic": 1.0}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fn_name", list(LOSSES))
def test_matches_scipy_and_reference(fn_name, dtype, reduction, weighted):
    fn = LOSSES[fn_name]
    first, target, weights = loss_problem(fn_name, dtype)
    kwargs = weights if weighted else {}
    expected_loss, expected_grad = reduce_oracle(
        *ORACLES[fn_name](first, target, **kwargs), reduction)
    scale = GRAD_ATOL_SCALE[fn_name]

    loss = fn(first, target, reduction=reduction, **kwargs)
    assert_loss_close(loss, expected_loss, dtype, reduction)
    loss2, grad = call_with_grad(fn, first, target, reduction=reduction, **kwargs)
    assert_loss_close(loss2, expected_loss, dtype, reduction)
    assert_grad_close(grad, expected_grad, dtype, scale=scale)

    ref_loss, ref_grad = getattr(reference, fn.__name__)(
        first, target, reduction=reduction, return_grad=True, **kwargs)
    assert_loss_close(loss2, ref_loss, dtype, reduction)
    assert_grad_close(grad, ref_grad, dtype, scale=scale)


def test_bce_matches_xlogy_form():
    """Away from the clamp, the loss is -(xlogy(y, p) + xlogy(1 - y, 1 - p))."""
    rng = np.random.default_rng(3)
    probs = rng.uniform(0.01, 0.99, size=500)
    target = rng.uniform(size=500)
    target[:100] = 0.0
    target[100:200] = 1.0
    expected = -(xlogy(target, probs) + xlogy(1.0 - target, 1.0 - probs))
    loss = fastce.binary_cross_entropy(probs, target, reduction="none")
    assert_allclose(loss, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sigmoid_and_log_sigmoid_match_scipy_and_reference(dtype):
    rng = np.random.default_rng(4)
    x = (10.0 * rng.standard_normal((13, 7, 3))).astype(dtype)
    x.flat[:6] = [0.0, -0.0, 50.0, -50.0, 700.0 if dtype == np.float64 else 80.0, -80.0]
    tol = tolerances(dtype)

    sig = fastce.sigmoid(x)
    assert sig.dtype == dtype and sig.shape == x.shape
    assert_allclose(sig, expit(x.astype(np.float64)), **tol)
    assert_allclose(sig, reference.sigmoid(x), **tol)

    log_sig = fastce.log_sigmoid(x)
    assert log_sig.dtype == dtype and log_sig.shape == x.shape
    assert_allclose(log_sig, log_expit(x.astype(np.float64)), **tol)
    assert_allclose(log_sig, reference.log_sigmoid(x), **tol)


@pytest.mark.parametrize("fn_name", ["sigmoid", "log_sigmoid"])
def test_sigmoid_out_argument(fn_name):
    fn = getattr(fastce, fn_name)
    x = np.linspace(-30.0, 30.0, 61)
    out = np.empty_like(x)
    result = fn(x, out=out)
    assert result is out
    assert_array_equal(out, fn(x))


# --------------------------------------------------------------------------
# PyTorch, where installed
# --------------------------------------------------------------------------
@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_bcewl_matches_torch(reduction, weighted):
    import torch.nn.functional as F

    logits, target, weight, pos_weight = multilabel_problem(np.float64, seed=5)
    kwargs = dict(weight=weight, pos_weight=pos_weight) if weighted else {}
    logits_t = torch.tensor(logits, requires_grad=True)
    torch_kwargs = {k: torch.tensor(v) for k, v in kwargs.items()}
    loss_t = F.binary_cross_entropy_with_logits(
        logits_t, torch.tensor(target), reduction=reduction, **torch_kwargs)
    loss_t.sum().backward()

    loss, grad = call_with_grad(fastce.binary_cross_entropy_with_logits, logits, target,
                                reduction=reduction, **kwargs)
    # torch's (1 - y) * z + (1 + (pw - 1) * y) * softplus(-z) cancels for y = 0, z << 0:
    # its absolute error is about eps * |z| * pw, hence the atol.
    assert_allclose(loss, loss_t.detach().numpy(), rtol=1e-12, atol=1e-13)
    assert_allclose(grad, logits_t.grad.numpy(), rtol=1e-12, atol=1e-13)


@requires_torch
def test_bcewl_pos_weight_3d_matches_torch():
    import torch.nn.functional as F

    rng = np.random.default_rng(6)
    logits = 3.0 * rng.standard_normal((4, 6, 5))
    target = rng.integers(0, 2, size=(4, 6, 5)).astype(np.float64)
    pos_weight = rng.uniform(0.5, 4.0, size=5)
    logits_t = torch.tensor(logits, requires_grad=True)
    loss_t = F.binary_cross_entropy_with_logits(
        logits_t, torch.tensor(target), pos_weight=torch.tensor(pos_weight))
    loss_t.backward()
    loss, grad = call_with_grad(fastce.binary_cross_entropy_with_logits, logits, target,
                                pos_weight=pos_weight)
    assert_allclose(loss, loss_t.item(), rtol=1e-12)
    assert_allclose(grad, logits_t.grad.numpy(), rtol=1e-12, atol=1e-15)


@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_torch(reduction):
    import torch.nn.functional as F

    probs, target, weight = probs_problem(np.float64, seed=7)
    probs[0, :2] = [0.0, 1.0]  # the clamp at -100
    target[0, :2] = [1.0, 0.0]
    probs_t = torch.tensor(probs, requires_grad=True)
    loss_t = F.binary_cross_entropy(probs_t, torch.tensor(target),
                                    weight=torch.tensor(weight), reduction=reduction)
    loss_t.sum().backward()
    loss, grad = call_with_grad(fastce.binary_cross_entropy, probs, target,
                                weight=weight, reduction=reduction)
    assert_allclose(loss, loss_t.detach().numpy(), rtol=1e-12)
    # torch floors p(1-p) at float(1e-12), 4e-9 away from the 1e-12 of the contract (which
    # test_bce_clamps_logs_at_minus_100 checks), so the two clamped elements differ.
    assert_allclose(grad[0, :2], probs_t.grad.numpy()[0, :2], rtol=1e-8)
    assert_allclose(grad[1:], probs_t.grad.numpy()[1:], rtol=1e-12)
    assert_allclose(grad[0, 2:], probs_t.grad.numpy()[0, 2:], rtol=1e-12)


@requires_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_logistic_matches_torch_soft_margin(reduction):
    import torch.nn.functional as F

    scores, target, _ = logistic_problem(np.float64, seed=8)
    scores_t = torch.tensor(scores, requires_grad=True)
    loss_t = F.soft_margin_loss(scores_t, torch.tensor(target), reduction=reduction)
    loss_t.sum().backward()
    loss, grad = call_with_grad(fastce.logistic_loss, scores, target, reduction=reduction)
    assert_allclose(loss, loss_t.detach().numpy(), rtol=1e-12)
    assert_allclose(grad, scores_t.grad.numpy(), rtol=1e-12, atol=1e-300)


@requires_torch
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sigmoid_and_log_sigmoid_match_torch(dtype):
    x = np.linspace(-60.0, 60.0, 241).astype(dtype)
    x_t = torch.tensor(x)
    tol = tolerances(dtype)
    assert_allclose(fastce.sigmoid(x), torch.sigmoid(x_t).numpy(), **tol)
    assert_allclose(fastce.log_sigmoid(x), torch.nn.functional.logsigmoid(x_t).numpy(), **tol)


# --------------------------------------------------------------------------
# Targets: soft, int, bool; weights and pos_weight semantics
# --------------------------------------------------------------------------
@pytest.mark.parametrize("target_dtype", [np.int8, np.int32, np.int64, np.uint8, np.bool_,
                                          np.float32])
@pytest.mark.parametrize("fn_name", ["bcewl", "bce"])
def test_int_and_bool_targets_equal_float_targets(fn_name, target_dtype):
    rng = np.random.default_rng(9)
    first = rng.uniform(0.01, 0.99, size=(50, 3))
    if fn_name == "bcewl":
        first = 6.0 * first - 3.0
    hard = rng.integers(0, 2, size=(50, 3))
    fn = LOSSES[fn_name]
    for reduction in REDUCTIONS:
        expected = fn(first, hard.astype(np.float64), reduction=reduction, return_grad=True)
        got = fn(first, hard.astype(target_dtype), reduction=reduction, return_grad=True)
        assert_array_equal(got[0], expected[0])
        assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("target_dtype", [np.int8, np.int64, np.float32, np.float64])
def test_logistic_target_dtypes(target_dtype):
    scores, target, _ = logistic_problem(np.float64, seed=10)
    expected = fastce.logistic_loss(scores, target, reduction="none", return_grad=True)
    got = fastce.logistic_loss(scores, target.astype(target_dtype), reduction="none",
                               return_grad=True)
    assert_array_equal(got[0], expected[0])
    assert_array_equal(got[1], expected[1])


def test_logistic_equals_bcewl_with_01_labels():
    scores, target, weight = logistic_problem(np.float64, seed=11)
    for reduction in REDUCTIONS:
        loss, grad = fastce.logistic_loss(scores, target, weight=weight, reduction=reduction,
                                          return_grad=True)
        loss01, grad01 = fastce.binary_cross_entropy_with_logits(
            scores, (target + 1.0) / 2.0, weight=weight, reduction=reduction, return_grad=True)
        assert_allclose(loss, loss01, rtol=1e-15, atol=1e-300)
        assert_allclose(grad, grad01, rtol=1e-15, atol=1e-300)


def test_bce_of_sigmoid_equals_bcewl():
    rng = np.random.default_rng(12)
    logits = rng.uniform(-10.0, 10.0, size=400)
    target = rng.uniform(size=400)
    loss_from_probs = fastce.binary_cross_entropy(expit(logits), target, reduction="none")
    loss_from_logits = fastce.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert_allclose(loss_from_probs, loss_from_logits, rtol=1e-9)


def test_soft_target_minimum_is_at_logit_of_target():
    target = np.array([0.01, 0.1, 0.25, 0.5, 0.7, 0.9, 0.999])
    logits = np.log(target) - np.log1p(-target)
    loss, grad = fastce.binary_cross_entropy_with_logits(logits, target, reduction="none",
                                                         return_grad=True)
    assert np.all(np.abs(grad) < 1e-15)
    # The minimum value is the entropy of the target.
    entropy = -(xlogy(target, target) + xlogy(1.0 - target, 1.0 - target))
    assert_allclose(loss, entropy, rtol=1e-13)
    for shift in (-1e-3, 1e-3):
        assert np.all(fastce.binary_cross_entropy_with_logits(
            logits + shift, target, reduction="none") > loss)


def test_pos_weight_broadcasts_along_last_axis():
    logits, target, _, pos_weight = multilabel_problem(np.float64, seed=13)
    got_loss, got_grad = fastce.binary_cross_entropy_with_logits(
        logits, target, pos_weight=pos_weight, reduction="none", return_grad=True)
    for label in range(logits.shape[1]):
        column_loss, column_grad = fastce.binary_cross_entropy_with_logits(
            logits[:, label].copy(), target[:, label].copy(),
            pos_weight=np.array([pos_weight[label]]), reduction="none", return_grad=True)
        assert_allclose(got_loss[:, label], column_loss, rtol=1e-15)
        assert_allclose(got_grad[:, label], column_grad, rtol=1e-15)
    expected_loss, expected_grad = bcewl_oracle(logits, target, pos_weight=pos_weight)
    assert_allclose(got_loss, expected_loss, rtol=1e-12)
    assert_allclose(got_grad, expected_grad, rtol=1e-12)


def test_pos_weight_on_hard_labels_is_a_weight_on_positives():
    rng = np.random.default_rng(14)
    logits = 3.0 * rng.standard_normal((30, 4))
    target = rng.integers(0, 2, size=(30, 4)).astype(np.float64)
    pos_weight = np.array([0.5, 1.0, 2.0, 7.0])
    as_pos_weight = fastce.binary_cross_entropy_with_logits(
        logits, target, pos_weight=pos_weight, reduction="none", return_grad=True)
    as_weight = fastce.binary_cross_entropy_with_logits(
        logits, target, weight=np.where(target == 1.0, pos_weight, 1.0), reduction="none",
        return_grad=True)
    assert_allclose(as_pos_weight[0], as_weight[0], rtol=1e-15)
    assert_allclose(as_pos_weight[1], as_weight[1], rtol=1e-15)


@pytest.mark.parametrize("weight_shape", [(37, 5), (37, 1), (5,), (1,), ()])
def test_weight_broadcasting(weight_shape):
    logits, target, _, _ = multilabel_problem(np.float64, seed=15)
    weight = np.random.default_rng(16).uniform(0.0, 3.0, size=weight_shape)
    expected_loss, expected_grad = bcewl_oracle(logits, target, weight=weight)
    loss, grad = fastce.binary_cross_entropy_with_logits(logits, target, weight=weight,
                                                         reduction="none", return_grad=True)
    assert_allclose(loss, expected_loss, rtol=1e-12)
    assert_allclose(grad, expected_grad, rtol=1e-12)


def test_mean_divides_by_size_even_when_weighted():
    logits, target, weight, _ = multilabel_problem(np.float64, seed=17)
    total, total_grad = fastce.binary_cross_entropy_with_logits(
        logits, target, weight=weight, reduction="sum", return_grad=True)
    mean, mean_grad = fastce.binary_cross_entropy_with_logits(
        logits, target, weight=weight, reduction="mean", return_grad=True)
    assert_allclose(mean, total / logits.size, rtol=1e-14)
    assert_allclose(mean_grad, total_grad / logits.size, rtol=1e-14)


# --------------------------------------------------------------------------
# Gradients against central finite differences (float64)
# --------------------------------------------------------------------------
def finite_difference_problem(case):
    rng = np.random.default_rng(18)
    shape = (4, 3)
    if case == "bcewl":
        return (fastce.binary_cross_entropy_with_logits, 3.0 * rng.standard_normal(shape),
                rng.uniform(size=shape), {})
    if case == "bcewl_weighted":
        return (fastce.binary_cross_entropy_with_logits, 3.0 * rng.standard_normal(shape),
                rng.uniform(size=shape),
                dict(weight=rng.uniform(0.1, 2.0, size=(4, 1)),
                     pos_weight=rng.uniform(0.5, 3.0, size=3)))
    if case == "bcewl_hard":
        return (fastce.binary_cross_entropy_with_logits, 3.0 * rng.standard_normal(shape),
                rng.integers(0, 2, size=shape), dict(pos_weight=np.array([0.5, 2.0, 4.0])))
    if case == "bce":
        return (fastce.binary_cross_entropy, rng.uniform(0.05, 0.95, size=shape),
                rng.uniform(size=shape), dict(weight=rng.uniform(0.1, 2.0, size=shape)))
    if case == "logistic":
        return (fastce.logistic_loss, 3.0 * rng.standard_normal(shape),
                rng.choice(np.array([-1, 1]), size=shape),
                dict(weight=rng.uniform(0.1, 2.0, size=shape)))
    raise AssertionError(case)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["bcewl", "bcewl_weighted", "bcewl_hard", "bce", "logistic"])
def test_gradient_matches_central_differences(case, reduction):
    fn, x, target, kwargs = finite_difference_problem(case)
    _, grad = fn(x, target, reduction=reduction, return_grad=True, **kwargs)

    def total_loss(values):
        # For "none" the gradient is that of the sum of the per-element losses.
        return math.fsum(np.ravel(fn(values, target, reduction=reduction, **kwargs)))

    numeric = np.empty_like(x)
    for index in np.ndindex(x.shape):
        step = 1e-6 * max(1.0, abs(x[index]))
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        numeric[index] = (total_loss(plus) - total_loss(minus)) / (plus[index] - minus[index])
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------
# Extreme and special values
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, big", [(np.float32, 1e4), (np.float64, 1e4),
                                        (np.float64, 1e300)])
def test_extreme_logits(dtype, big):
    logits = np.array([big, big, -big, -big, big, -big], dtype=dtype)
    target = np.array([0.0, 1.0, 0.0, 1.0, 0.5, 0.5], dtype=dtype)
    big_value = float(dtype(big))
    expected_loss = [big_value, 0.0, 0.0, big_value, big_value / 2, big_value / 2]
    expected_grad = [1.0, 0.0, 0.0, -1.0, 0.5, -0.5]
    loss, grad = fastce.binary_cross_entropy_with_logits(logits, target, reduction="none",
                                                         return_grad=True)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert_allclose(loss, expected_loss, rtol=1e-6 if dtype == np.float32 else 1e-15, atol=0)
    assert_allclose(grad, expected_grad, rtol=0, atol=1e-30)

    total = fastce.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    assert np.isfinite(total)
    assert_allclose(total, 3.0 * big_value, rtol=1e-6)

    labels = np.array([-1.0, 1.0, -1.0, 1.0], dtype=dtype)
    scores = np.array([big, big, -big, -big], dtype=dtype)
    loss, grad = fastce.logistic_loss(scores, labels, reduction="none", return_grad=True)
    assert_allclose(loss, [big_value, 0.0, 0.0, big_value],
                    rtol=1e-6 if dtype == np.float32 else 1e-15, atol=0)
    assert_allclose(grad, [1.0, 0.0, 0.0, -1.0], rtol=0, atol=1e-30)

    x = np.array([big, -big], dtype=dtype)
    assert_array_equal(fastce.sigmoid(x), np.array([1.0, 0.0], dtype=dtype))
    assert_allclose(fastce.log_sigmoid(x), [0.0, -big_value], rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_infinite_logits_give_the_limits(dtype, reduction):
    inf = np.inf
    logits = np.array([inf, -inf, inf, -inf, inf, -inf], dtype=dtype)
    target = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5], dtype=dtype)
    loss, grad = fastce.binary_cross_entropy_with_logits(logits, target, reduction=reduction,
                                                         return_grad=True)
    scale = 1.0 / logits.size if reduction == "mean" else 1.0
    assert grad.dtype == dtype
    # atol=0: the zero limits are exactly 0.
    assert_allclose(grad, np.array([0.0, 0.0, 1.0, -1.0, 0.5, -0.5]) * scale,
                    rtol=4 * np.finfo(dtype).eps, atol=0)
    if reduction == "none":
        assert_array_equal(loss, np.array([0.0, 0.0, inf, inf, inf, inf], dtype=dtype))
    else:
        assert loss == inf

    # Only the two limits that are 0: the loss and gradient are exactly 0.
    loss, grad = fastce.binary_cross_entropy_with_logits(
        logits[:2], target[:2], reduction=reduction, return_grad=True)
    assert np.all(loss == 0.0) and np.all(grad == 0.0)

    # pos_weight and weight keep the limits.
    loss, grad = fastce.binary_cross_entropy_with_logits(
        logits[:4], target[:4], weight=np.array([2.0, 2.0, 3.0, 3.0], dtype=dtype),
        pos_weight=np.array([5.0], dtype=dtype), reduction="none", return_grad=True)
    assert_array_equal(loss, np.array([0.0, 0.0, inf, inf], dtype=dtype))
    assert_array_equal(grad, np.array([0.0, 0.0, 3.0, -15.0], dtype=dtype))

    scores = np.array([inf, -inf, inf, -inf], dtype=dtype)
    labels = np.array([1.0, -1.0, -1.0, 1.0], dtype=dtype)
    loss, grad = fastce.logistic_loss(scores, labels, reduction="none", return_grad=True)
    assert_array_equal(loss, np.array([0.0, 0.0, inf, inf], dtype=dtype))
    assert_array_equal(grad, np.array([0.0, 0.0, 1.0, -1.0], dtype=dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sigmoid_special_values(dtype):
    x = np.array([np.inf, -np.inf, 0.0, np.nan], dtype=dtype)
    sig = fastce.sigmoid(x)
    assert_array_equal(sig[:3], np.array([1.0, 0.0, 0.5], dtype=dtype))
    assert np.isnan(sig[3])
    log_sig = fastce.log_sigmoid(x)
    assert_array_equal(log_sig[:2], np.array([0.0, -np.inf], dtype=dtype))
    assert_allclose(log_sig[2], -np.log(2.0), **tolerances(dtype))
    assert np.isnan(log_sig[3])


def test_zero_factors_contribute_exactly_zero():
    inf = np.inf
    # y = 1: the (1 - y) * softplus(z) term is 0 even at z = +inf.
    # pos_weight = 0: the positive term is 0 even at z = -inf.
    logits = np.array([inf, -inf, inf, np.nan])
    target = np.array([1.0, 1.0, 0.0, 1.0])
    weight = np.array([1.0, 1.0, 0.0, 0.0])  # a zero weight hides inf and NaN
    loss, grad = fastce.binary_cross_entropy_with_logits(
        logits, target, weight=weight, pos_weight=np.array([0.0]), reduction="none",
        return_grad=True)
    assert_array_equal(loss, [0.0, 0.0, 0.0, 0.0])
    assert_array_equal(grad, [0.0, 0.0, 0.0, 0.0])

    loss, grad = fastce.logistic_loss(np.array([inf, np.nan]), np.array([-1.0, 1.0]),
                                      weight=np.array([0.0, 0.0]), reduction="sum",
                                      return_grad=True)
    assert loss == 0.0
    assert_array_equal(grad, [0.0, 0.0])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_clamps_logs_at_minus_100(reduction):
    probs = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    target = np.array([1.0, 0.0, 0.0, 1.0, 0.5, 0.5])
    loss, grad = fastce.binary_cross_entropy(probs, target, reduction=reduction,
                                             return_grad=True)
    expected_loss = np.array([100.0, 100.0, 0.0, 0.0, 50.0, 50.0])
    expected_grad = np.array([-1e12, 1e12, 0.0, 0.0, -0.5e12, 0.5e12])
    expected_loss, expected_grad = reduce_oracle(expected_loss, expected_grad, reduction)
    assert_allclose(loss, expected_loss, rtol=1e-14, atol=0)
    assert_allclose(grad, expected_grad, rtol=1e-14, atol=0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("fn_name", ["bcewl", "logistic"])
def test_nan_logit_only_touches_its_element(fn_name, reduction):
    scores, labels, weight = logistic_problem(np.float64, seed=19, shape=(5, 4))
    if fn_name == "bcewl":
        labels = (labels + 1.0) / 2.0
    scores[2, 1] = np.nan
    loss, grad = LOSSES[fn_name](scores, labels, weight=weight, reduction=reduction,
                                 return_grad=True)
    nan_mask = np.zeros(scores.shape, dtype=bool)
    nan_mask[2, 1] = True
    assert_array_equal(np.isnan(grad), nan_mask)
    if reduction == "none":
        assert_array_equal(np.isnan(loss), nan_mask)
    else:
        assert np.isnan(loss)


@pytest.mark.parametrize("fn_name", ["sigmoid", "log_sigmoid"])
def test_nan_isolation_in_sigmoid(fn_name):
    x = np.linspace(-5.0, 5.0, 11)
    x[4] = np.nan
    result = getattr(fastce, fn_name)(x)
    assert_array_equal(np.isnan(result), np.isnan(x))


# --------------------------------------------------------------------------
# Accuracy against mpmath at 50 digits
# --------------------------------------------------------------------------
def probe_logits(dtype):
    big = 1e4 if dtype == np.float32 else 1e300
    magnitudes = np.concatenate([
        np.logspace(-10.0, np.log10(big), 80),
        [0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 16.0, 17.0, 18.0, 20.0, 30.0, 33.3, 36.0, 37.0,
         40.0, 50.0, 88.0, 89.0, 100.0, 104.0, 700.0, 709.0, 710.0, 745.0, 746.0, 1e4],
    ])
    magnitudes = magnitudes[magnitudes <= big]
    return np.concatenate([[0.0], magnitudes, -magnitudes]).astype(dtype)


def mp_softplus(t):
    return mpmath.log1p(mpmath.exp(t))


def mp_sigmoid(t):
    return 1 / (1 + mpmath.exp(-t))


def assert_accurate(got, inputs, exact, dtype, what):
    """Per element: float64 relative error <= 1e-13 (absolute <= 1e-13 * tiny below the
    normal range); float32 relative error <= 2e-6, or absolute error <= 2e-7 where
    |exact| < 0.1."""
    got = np.asarray(got).ravel()
    assert got.dtype == dtype
    tiny = float(np.finfo(np.float64).tiny)
    failures = []
    for value, exact_value, item in zip(got, exact, inputs):
        value = float(value)
        if mpmath.isinf(exact_value):
            ok = value == float(exact_value)
        elif not math.isfinite(value):
            ok = False
        else:
            error = abs(mpmath.mpf(value) - exact_value)
            if dtype == np.float64:
                # Below the normal range (subnormal results) relative accuracy is out
                # of reach; the bound continues as 1e-13 relative to the smallest
                # normal number.
                ok = error <= 1e-13 * abs(exact_value) or (abs(exact_value) < tiny
                                                          and error <= 1e-13 * tiny)
            else:
                ok = error <= 2e-6 * abs(exact_value) or (abs(exact_value) < 0.1
                                                         and error <= 2e-7)
        if not ok:
            failures.append((item, value, mpmath.nstr(exact_value, 17)))
    assert not failures, f"{what}: {len(failures)} inaccurate values, (input, got, exact): " \
                         f"{failures[:8]}"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("target_value, pos_weight", [(0.0, 1.0), (1.0, 1.0), (0.25, 1.0),
                                                      (0.7, 1.0), (1.0, 3.5), (0.3, 0.2)])
def test_bcewl_accuracy_against_mpmath(dtype, target_value, pos_weight):
    logits = probe_logits(dtype)
    target = np.full_like(logits, target_value)
    pw = np.array([pos_weight], dtype=dtype)
    loss, grad = fastce.binary_cross_entropy_with_logits(
        logits, target, pos_weight=pw, reduction="none", return_grad=True)
    with mpmath.workdps(50):
        y = mpmath.mpf(float(target[0]))
        pw_mp = mpmath.mpf(float(pw[0]))
        exact_loss, exact_grad = [], []
        for z in logits:
            z = mpmath.mpf(float(z))
            exact_loss.append((1 - y) * mp_softplus(z) + pw_mp * y * mp_softplus(-z))
            exact_grad.append((1 - y) * mp_sigmoid(z) - pw_mp * y * mp_sigmoid(-z))
        inputs = [(float(z), float(target[0])) for z in logits]
        assert_accurate(loss, inputs, exact_loss, dtype, "loss")
        if target_value in (0.0, 1.0):
            # Without soft labels the gradient has no cancellation either.
            assert_accurate(grad, inputs, exact_grad, dtype, "gradient")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logistic_accuracy_against_mpmath(dtype):
    scores = probe_logits(dtype)
    scores = np.concatenate([scores, scores])
    labels = np.repeat(np.array([1.0, -1.0], dtype=dtype), scores.size // 2)
    loss, grad = fastce.logistic_loss(scores, labels, reduction="none", return_grad=True)
    with mpmath.workdps(50):
        exact_loss, exact_grad = [], []
        for s, y in zip(scores, labels):
            margin = -mpmath.mpf(float(y)) * mpmath.mpf(float(s))
            exact_loss.append(mp_softplus(margin))
            exact_grad.append(-mpmath.mpf(float(y)) * mp_sigmoid(margin))
        inputs = list(zip(scores.tolist(), labels.tolist()))
        assert_accurate(loss, inputs, exact_loss, dtype, "loss")
        assert_accurate(grad, inputs, exact_grad, dtype, "gradient")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("target_value", [0.0, 1.0, 0.3])
def test_bce_accuracy_against_mpmath(dtype, target_value):
    finfo = np.finfo(dtype)
    small = np.logspace(np.log10(float(finfo.tiny)) + 1, -0.5, 120)
    near_one = 1.0 - np.logspace(np.log10(float(finfo.eps)), -0.5, 60)
    probs = np.concatenate([[0.0, 1.0, 0.5], small, near_one]).astype(dtype)
    target = np.full_like(probs, target_value)
    loss = fastce.binary_cross_entropy(probs, target, reduction="none")
    with mpmath.workdps(50):
        y = mpmath.mpf(float(target[0]))
        exact = []
        for p in probs:
            p = mpmath.mpf(float(p))
            log_p = mpmath.mpf(-100) if p == 0 else max(mpmath.log(p), -100)
            log_1mp = mpmath.mpf(-100) if p == 1 else max(mpmath.log1p(-p), -100)
            exact.append(-((y * log_p if y != 0 else 0) + ((1 - y) * log_1mp if y != 1 else 0)))
        assert_accurate(loss, probs.tolist(), exact, dtype, "loss")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sigmoid_and_log_sigmoid_accuracy_against_mpmath(dtype):
    x = probe_logits(dtype)
    with mpmath.workdps(50):
        exact_sigmoid = [mp_sigmoid(mpmath.mpf(float(v))) for v in x]
        exact_log_sigmoid = [-mp_softplus(-mpmath.mpf(float(v))) for v in x]
        assert_accurate(fastce.sigmoid(x), x.tolist(), exact_sigmoid, dtype, "sigmoid")
        assert_accurate(fastce.log_sigmoid(x), x.tolist(), exact_log_sigmoid, dtype,
                        "log_sigmoid")


# --------------------------------------------------------------------------
# Dtypes
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fn_name", ["bcewl", "bce", "logistic"])
def test_float16_is_computed_in_float32(fn_name):
    first, target, _ = loss_problem(fn_name, np.float16, seed=20)
    fn = LOSSES[fn_name]
    for reduction in REDUCTIONS:
        loss16, grad16 = fn(first, target, reduction=reduction, return_grad=True)
        loss32, grad32 = fn(first.astype(np.float32), target, reduction=reduction,
                            return_grad=True)
        assert grad16.dtype == np.float32
        assert_array_equal(grad16, grad32)
        if reduction == "none":
            assert loss16.dtype == np.float32
        else:
            assert isinstance(loss16, np.float64)
        assert_array_equal(loss16, loss32)


@pytest.mark.parametrize("fn_name", ["sigmoid", "log_sigmoid"])
def test_sigmoid_dtypes(fn_name):
    fn = getattr(fastce, fn_name)
    x16 = np.linspace(-8.0, 8.0, 33).astype(np.float16)
    assert fn(x16).dtype == np.float32
    assert_array_equal(fn(x16), fn(x16.astype(np.float32)))
    for int_dtype in (np.int8, np.int32, np.int64, np.uint8):
        xi = np.arange(0, 20).astype(int_dtype)
        assert fn(xi).dtype == np.float64
        assert_array_equal(fn(xi), fn(xi.astype(np.float64)))
    xb = np.array([True, False, True])
    assert fn(xb).dtype == np.float64
    assert_array_equal(fn(xb), fn(xb.astype(np.float64)))


@pytest.mark.parametrize("logit_dtype", [np.int8, np.int32, np.int64, np.uint16, np.bool_])
def test_int_and_bool_logits_become_float64(logit_dtype):
    rng = np.random.default_rng(21)
    logits = rng.integers(0, 2 if logit_dtype == np.bool_ else 20, size=(10, 3))
    logits = logits.astype(logit_dtype)
    target = rng.uniform(size=(10, 3))
    labels = rng.choice(np.array([-1, 1]), size=(10, 3))
    for reduction in REDUCTIONS:
        for fn, y in ((fastce.binary_cross_entropy_with_logits, target),
                      (fastce.logistic_loss, labels)):
            loss, grad = fn(logits, y, reduction=reduction, return_grad=True)
            loss64, grad64 = fn(logits.astype(np.float64), y, reduction=reduction,
                                return_grad=True)
            assert grad.dtype == np.float64
            assert_array_equal(grad, grad64)
            assert_array_equal(loss, loss64)
            if reduction == "none":
                assert loss.dtype == np.float64
    # Probabilities given as integers or bools (0 and 1).
    probs = rng.integers(0, 2, size=(10, 3))
    for probs_dtype in (np.int64, np.bool_):
        loss, grad = fastce.binary_cross_entropy(probs.astype(probs_dtype), target,
                                                 reduction="none", return_grad=True)
        assert loss.dtype == np.float64 and grad.dtype == np.float64
        expected = fastce.binary_cross_entropy(probs.astype(np.float64), target,
                                               reduction="none", return_grad=True)
        assert_array_equal(loss, expected[0])
        assert_array_equal(grad, expected[1])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("fn_name", ["bcewl", "bce", "logistic"])
def test_outputs_keep_the_compute_dtype_with_float64_weights(dtype, fn_name):
    first = np.full((4, 3), 0.25, dtype=dtype)
    target = np.ones((4, 3), dtype=dtype)
    weight = np.full((4, 3), 2.0)  # float64 weight does not promote float32 logits
    loss, grad = LOSSES[fn_name](first, target, weight=weight, reduction="none",
                                 return_grad=True)
    assert loss.dtype == dtype and grad.dtype == dtype
    assert loss.shape == first.shape and grad.shape == first.shape


# --------------------------------------------------------------------------
# Empty batches
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(0,), (0, 3), (4, 0)])
@pytest.mark.parametrize("fn_name", ["bcewl", "bce", "logistic"])
def test_empty_batch(fn_name, shape, dtype):
    first = np.zeros(shape, dtype=dtype)
    target = np.ones(shape, dtype=dtype)
    fn = LOSSES[fn_name]
    for reduction in ("mean", "sum"):
        loss, grad = fn(first, target, reduction=reduction, return_grad=True)
        assert isinstance(loss, np.float64)
        assert loss == 0.0 and not np.isnan(loss)
        assert grad.shape == shape and grad.dtype == dtype
        assert fn(first, target, reduction=reduction) == 0.0
    loss, grad = fn(first, target, reduction="none", return_grad=True)
    assert loss.shape == shape and loss.dtype == dtype
    assert grad.shape == shape and grad.dtype == dtype


def test_empty_batch_with_weight_and_pos_weight():
    logits = np.zeros((0, 4))
    loss, grad = fastce.binary_cross_entropy_with_logits(
        logits, np.zeros((0, 4)), weight=np.ones(4), pos_weight=np.ones(4), return_grad=True)
    assert loss == 0.0
    assert grad.shape == (0, 4)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_zero_dimensional_inputs(dtype):
    """Elementwise means any shape, 0-d included: "none" keeps the shape ()."""
    z, y = np.array(1.5, dtype=dtype), np.array(0.25, dtype=dtype)
    expected_loss, expected_grad = bcewl_oracle(z, y, weight=np.array(2.0))
    loss, grad = fastce.binary_cross_entropy_with_logits(z, y, weight=np.array(2.0),
                                                         reduction="none", return_grad=True)
    assert loss.shape == () and grad.shape == ()
    assert loss.dtype == dtype and grad.dtype == dtype
    assert_allclose(loss, expected_loss, **tolerances(dtype))
    assert_allclose(grad, expected_grad, **tolerances(dtype))
    for reduction in ("mean", "sum"):
        loss, grad = fastce.binary_cross_entropy_with_logits(z, y, reduction=reduction,
                                                             return_grad=True)
        assert isinstance(loss, np.float64) and grad.shape == ()
    p = np.array(0.25, dtype=dtype)
    assert fastce.binary_cross_entropy(p, y, reduction="none").shape == ()
    assert fastce.logistic_loss(z, np.array(-1.0, dtype=dtype), reduction="none").shape == ()
    for fn in (fastce.sigmoid, fastce.log_sigmoid):
        result = fn(z)
        assert np.shape(result) == () and result.dtype == dtype


@pytest.mark.parametrize("fn_name", ["sigmoid", "log_sigmoid"])
def test_sigmoid_empty(fn_name):
    result = getattr(fastce, fn_name)(np.zeros((0, 5), dtype=np.float32))
    assert result.shape == (0, 5) and result.dtype == np.float32


# --------------------------------------------------------------------------
# Properties (hypothesis)
# --------------------------------------------------------------------------
def element_strategy(dtype, low, high):
    width = 32 if dtype == np.float32 else 64
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=width)


@st.composite
def bcewl_problems(draw, max_side=6):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    # 0-d arrays have their own test, test_zero_dimensional_inputs.
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=max_side))
    bound = 1e4 if dtype == np.float32 else 1e300
    logits = draw(hnp.arrays(dtype, shape, elements=element_strategy(dtype, -bound, bound)))
    target = draw(hnp.arrays(dtype, shape, elements=element_strategy(dtype, 0.0, 1.0)))
    kwargs = {}
    if draw(st.booleans()):
        weight_shape = draw(st.sampled_from([shape, shape[-1:], ()]))
        kwargs["weight"] = draw(hnp.arrays(dtype, weight_shape,
                                           elements=element_strategy(dtype, 0.0, 10.0)))
    if len(shape) >= 1 and draw(st.booleans()):
        kwargs["pos_weight"] = draw(hnp.arrays(dtype, shape[-1:],
                                               elements=element_strategy(dtype, 0.0, 10.0)))
    return logits, target, kwargs


def close_for(dtype):
    return dict(rtol=1e-12, atol=0.0) if dtype == np.float64 else dict(rtol=2e-6, atol=0.0)


@PROPERTY_SETTINGS
@given(bcewl_problems())
def test_property_bcewl_reductions_are_consistent(problem):
    logits, target, kwargs = problem
    dtype = logits.dtype.type
    fn = fastce.binary_cross_entropy_with_logits
    per_element, grad_none = fn(logits, target, reduction="none", return_grad=True, **kwargs)
    assert per_element.shape == logits.shape and per_element.dtype == dtype
    assert np.all(np.isfinite(per_element)) and np.all(per_element >= 0)
    assert np.all(np.isfinite(grad_none))

    total, grad_sum = fn(logits, target, reduction="sum", return_grad=True, **kwargs)
    mean, grad_mean = fn(logits, target, reduction="mean", return_grad=True, **kwargs)
    assert isinstance(total, np.float64) and isinstance(mean, np.float64)
    assert np.isfinite(total) and total >= 0
    exact_total = math.fsum(per_element.astype(np.float64).ravel())
    slack = 0.0 if dtype == np.float64 else 2e-7 * logits.size
    assert_allclose(total, exact_total, rtol=close_for(dtype)["rtol"], atol=slack)
    assert_allclose(mean, total / logits.size if logits.size else 0.0, rtol=1e-14)

    assert_allclose(grad_sum, grad_none, rtol=1e-15 if dtype == np.float64 else 1e-7)
    if logits.size:
        assert_allclose(grad_mean, grad_none / dtype(logits.size),
                        rtol=1e-14 if dtype == np.float64 else 1e-6,
                        atol=1e-300 if dtype == np.float64 else 1e-38)

    # The loss alone equals the loss of the fused pass.
    assert_allclose(fn(logits, target, reduction="none", **kwargs), per_element,
                    rtol=1e-15 if dtype == np.float64 else 1e-7)
    assert_allclose(fn(logits, target, reduction="sum", **kwargs), total, rtol=1e-15)


@PROPERTY_SETTINGS
@given(bcewl_problems())
def test_property_float32_agrees_with_float64(problem):
    logits, target, kwargs = problem
    logits32 = np.clip(logits.astype(np.float64), -1e4, 1e4).astype(np.float32)
    target32 = target.astype(np.float32)
    kwargs32 = {k: v.astype(np.float32) for k, v in kwargs.items()}
    kwargs64 = {k: v.astype(np.float64) for k, v in kwargs32.items()}
    fn = fastce.binary_cross_entropy_with_logits
    loss32, grad32 = fn(logits32, target32, reduction="none", return_grad=True, **kwargs32)
    loss64, grad64 = fn(logits32.astype(np.float64), target32.astype(np.float64),
                        reduction="none", return_grad=True, **kwargs64)
    # Same rule as the accuracy contract: relative 2e-6, or absolute 2e-7 when small.
    small = np.abs(loss64) < 0.1
    error = np.abs(loss32.astype(np.float64) - loss64)
    assert np.all((error <= 2e-6 * np.abs(loss64)) | (small & (error <= 2e-7)))
    # Soft labels cancel in the gradient: allow float32 rounding of the largest term.
    largest_factor = max([1.0] + [float(np.max(v, initial=0.0)) for v in kwargs32.values()]) ** 2
    assert_allclose(grad32, grad64, rtol=1e-5, atol=2e-6 * largest_factor)


@st.composite
def weighted_repeat_problems(draw):
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    size = draw(st.integers(0, 20))
    logits = draw(hnp.arrays(dtype, size, elements=element_strategy(dtype, -50.0, 50.0)))
    target = draw(hnp.arrays(dtype, size, elements=element_strategy(dtype, 0.0, 1.0)))
    repeats = draw(hnp.arrays(np.int64, size, elements=st.integers(0, 4)))
    fn_name = draw(st.sampled_from(["bcewl", "bce", "logistic"]))
    if fn_name == "bce":
        logits = expit(logits.astype(np.float64)).astype(dtype)
    elif fn_name == "logistic":
        target = np.where(target < 0.5, -1.0, 1.0).astype(dtype)
    return fn_name, logits, target, repeats


@PROPERTY_SETTINGS
@given(weighted_repeat_problems())
def test_property_weight_equals_repeating_the_element(problem):
    fn_name, first, target, repeats = problem
    dtype = first.dtype.type
    fn = LOSSES[fn_name]
    weighted, weighted_grad = fn(first, target, weight=repeats.astype(dtype), reduction="sum",
                                 return_grad=True)
    repeated = fn(np.repeat(first, repeats), np.repeat(target, repeats), reduction="sum")
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    assert_allclose(weighted, repeated, rtol=rtol, atol=1e-300)
    _, plain_grad = fn(first, target, reduction="none", return_grad=True)
    assert_allclose(weighted_grad, repeats * plain_grad.astype(np.float64), rtol=rtol,
                    atol=1e-300 if dtype == np.float64 else 1e-30)


@st.composite
def elementwise_problems(draw, fn_name):
    """(first, target) for LOSSES[fn_name] ("logistic" or "bce"): one float dtype, 1 or 2
    dimensions with sides 0 to 8; scores over the dtype's range and labels -1/+1, or
    probabilities and soft targets in [0, 1]."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=8))
    if fn_name == "logistic":
        bound = 1e4 if dtype == np.float32 else 1e300
        first = draw(hnp.arrays(dtype, shape, elements=element_strategy(dtype, -bound, bound)))
        target = draw(hnp.arrays(np.int8, shape, elements=st.sampled_from([-1, 1])))
    else:
        first = draw(hnp.arrays(dtype, shape, elements=element_strategy(dtype, 0.0, 1.0)))
        target = draw(hnp.arrays(dtype, shape, elements=element_strategy(dtype, 0.0, 1.0)))
    return first, target


def checked_per_element(fn, first, target):
    """fn's per-element loss and gradient, after the checks every loss passes: both in the
    input's dtype, the loss finite and >= 0."""
    loss, grad = fn(first, target, reduction="none", return_grad=True)
    assert loss.dtype == first.dtype and grad.dtype == first.dtype
    assert np.all(np.isfinite(loss)) and np.all(loss >= 0)
    return loss, grad


@PROPERTY_SETTINGS
@given(elementwise_problems("logistic"))
def test_property_logistic_loss(problem):
    scores, labels = problem
    loss, grad = checked_per_element(fastce.logistic_loss, scores, labels)
    assert np.all(np.abs(grad) <= 1)
    # The gradient points against the label.
    assert np.all(grad * labels <= 0)
    total = fastce.logistic_loss(scores, labels, reduction="sum")
    assert_allclose(total, math.fsum(loss.astype(np.float64).ravel()),
                    rtol=close_for(scores.dtype)["rtol"], atol=2e-7 * scores.size)
    as_bcewl = fastce.binary_cross_entropy_with_logits(scores, (labels + 1) // 2,
                                                       reduction="none")
    assert_allclose(loss, as_bcewl, rtol=4 * np.finfo(scores.dtype).eps, atol=0)


@PROPERTY_SETTINGS
@given(elementwise_problems("bce"))
def test_property_bce(problem):
    probs, target = problem
    loss, grad = checked_per_element(fastce.binary_cross_entropy, probs, target)
    assert np.all(loss <= 100.0 + 1e-5) and np.all(np.isfinite(grad))
    expected, expected_grad = bce_oracle(probs, target)
    rtol = close_for(probs.dtype)["rtol"]
    assert_allclose(loss, expected, rtol=rtol, atol=2e-7)
    assert_allclose(grad, expected_grad, rtol=rtol, atol=1e-12)
    mean = fastce.binary_cross_entropy(probs, target)
    assert_allclose(mean, math.fsum(loss.astype(np.float64).ravel()) / probs.size
                    if probs.size else 0.0, rtol=rtol, atol=2e-7)


@PROPERTY_SETTINGS
@given(st.sampled_from(FLOAT_DTYPES).flatmap(
    lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0),
                             elements=element_strategy(dtype, -1e4 if dtype == np.float32
                                                       else -1e300,
                                                       1e4 if dtype == np.float32
                                                       else 1e300))))
def test_property_sigmoid_and_log_sigmoid(x):
    dtype = x.dtype.type
    eps = np.finfo(dtype).eps
    sig = fastce.sigmoid(x)
    log_sig = fastce.log_sigmoid(x)
    assert sig.shape == x.shape and sig.dtype == dtype
    assert log_sig.shape == x.shape and log_sig.dtype == dtype
    assert np.all((sig >= 0) & (sig <= 1))
    assert np.all(log_sig <= 0) and np.all(np.isfinite(log_sig))
    assert_allclose(sig + fastce.sigmoid(-x), 1.0, rtol=0, atol=2 * eps)
    # Subnormal results can only be absolutely accurate.
    atol = 16 * float(np.finfo(dtype).smallest_subnormal)
    assert_allclose(sig, expit(x.astype(np.float64)), rtol=4 * eps, atol=atol)
    assert_allclose(log_sig, log_expit(x.astype(np.float64)), rtol=4 * eps, atol=atol)


# =============================================================================
# sigmoid_focal_loss (formerly test_focal.py)
# sigmoid_focal_loss (the contract, "Binary family"): torchvision.ops.sigmoid_focal_loss's
# semantics, computed in log space, with a closed-form gradient.
#
# Oracles:
# - torchvision's formula written out in float64 NumPy (torchvision itself is not a
#   dependency), the naive form, on moderate logits |z| <= 20 where it is accurate to
#   about 1e-7 (1 - p_t loses digits as p_t -> 1);
# - the same formula in PyTorch for its autograd gradient, where torch is installed;
# - fastce.reference and binary_cross_entropy_with_logits (gamma = 0, alpha < 0);
# - central finite differences for the gradient;
# - mpmath at 50 digits for the accuracy contract.
# =============================================================================

GAMMAS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)
ALPHAS = (0.25, -1.0, 0.0, 1.0, 0.75)
SOFT_TARGETS = (0.0, 1.0, 0.5, 0.1, 0.9, 1e-3, 0.999, 0.3)
PROPERTY = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def problem(rng, shape=(40, 7), scale=4.0, dtype=np.float64, soft=True):
    """Logits and targets, both in `dtype`: a float64 soft target such as 0.999 would be
    rounded to float32 by one implementation and not by another (1 - y moves by 1e-5)."""
    logits = (scale * rng.standard_normal(shape)).astype(dtype)
    if soft:
        target = rng.choice(SOFT_TARGETS, size=shape).astype(dtype)
    else:
        target = rng.integers(0, 2, size=shape).astype(dtype)
    return logits, target


def torchvision_focal(logits, target, alpha, gamma):
    """torchvision.ops.sigmoid_focal_loss(reduction="none"), line for line, in float64 NumPy.

    Naive: fine for |z| <= 20; 1 - p_t cancels for large |z|."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(target, dtype=np.float64)
    p = expit(z)
    ce_loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))   # torch's BCE with logits
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * y + (1 - alpha) * (1 - y)
        loss = alpha_t * loss
    return loss


def reduce_elements(per_element, reduction):
    per_element = np.asarray(per_element, dtype=np.float64)
    if reduction == "none":
        return per_element
    total = math.fsum(per_element.ravel())
    if reduction == "sum":
        return total
    return total / per_element.size if per_element.size else 0.0


def scale_of(reduction, size):
    return 1.0 / size if reduction == "mean" and size else 1.0


# ----------------------------------------------------------------------------- torchvision

@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_torchvision_formula(gamma, alpha, reduction):
    rng = np.random.default_rng(1)
    logits = rng.uniform(-20, 20, (50, 8))
    target = rng.choice(SOFT_TARGETS, size=(50, 8))
    expected = reduce_elements(torchvision_focal(logits, target, alpha, gamma), reduction)
    got = fastce.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma, reduction=reduction)
    if reduction == "none":
        assert got.shape == logits.shape and got.dtype == np.float64
    else:
        assert isinstance(got, np.float64)
    # The naive formula's own error is about gamma * 5e-8 at |z| = 20.
    assert_allclose(got, expected, rtol=1e-6, atol=1e-300)


@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [0.25, -1.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_torchvision_formula_in_torch_with_autograd(gamma, alpha, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    logits = rng.uniform(-10, 10, (30, 6))
    target = rng.choice(SOFT_TARGETS, size=(30, 6))
    inputs = torch.tensor(logits, requires_grad=True)
    targets = torch.tensor(target)
    # torchvision/ops/focal_loss.py
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    loss = {"none": loss, "sum": loss.sum(), "mean": loss.mean()}[reduction]
    loss.sum().backward()

    got, grad = fastce.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma,
                                          reduction=reduction, return_grad=True)
    assert_allclose(got, loss.detach().numpy(), rtol=1e-6, atol=1e-300)
    assert_allclose(grad, inputs.grad.numpy(), rtol=1e-6, atol=1e-12 * scale_of(reduction, 180))


# ----------------------------------------------------------------------------- reference

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", [0.25, -1.0, 1.0])
def test_matches_reference(dtype, scale, gamma, alpha):
    rng = np.random.default_rng(3)
    logits, target = problem(rng, scale=scale, dtype=dtype)
    tol = tolerances(dtype)
    for reduction in REDUCTIONS:
        kwargs = dict(alpha=alpha, gamma=gamma, reduction=reduction)
        loss, grad = fastce.sigmoid_focal_loss(logits, target, return_grad=True, **kwargs)
        expected_loss, expected_grad = reference.sigmoid_focal_loss(logits, target,
                                                                    return_grad=True, **kwargs)
        if reduction == "none":
            assert loss.dtype == dtype and loss.shape == logits.shape
        else:
            assert isinstance(loss, np.float64)
        assert_allclose(loss, expected_loss, **tol)
        assert grad.dtype == dtype and grad.shape == logits.shape
        grad_atol = tol["atol"] * scale_of(reduction, logits.size)
        assert_allclose(grad, expected_grad, rtol=tol["rtol"], atol=grad_atol)
        alone = fastce.sigmoid_focal_loss(logits, target, **kwargs)
        assert_array_equal(alone, loss)


def test_defaults_are_torchvisions_alpha_and_gamma_with_mean():
    rng = np.random.default_rng(4)
    logits, target = problem(rng)
    expected = torchvision_focal(logits, target, 0.25, 2.0).mean()
    assert_allclose(fastce.sigmoid_focal_loss(logits, target), expected, rtol=1e-7)
    assert_allclose(fastce.sigmoid_focal_loss(logits, target),
                    reference.sigmoid_focal_loss(logits, target), rtol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("scale", [3.0, 1e4])
def test_gamma_zero_without_alpha_is_bce_with_logits(dtype, reduction, scale):
    rng = np.random.default_rng(5)
    logits, target = problem(rng, scale=scale, dtype=dtype)
    loss, grad = fastce.sigmoid_focal_loss(logits, target, alpha=-1.0, gamma=0.0,
                                           reduction=reduction, return_grad=True)
    expected_loss, expected_grad = fastce.binary_cross_entropy_with_logits(
        logits, target, reduction=reduction, return_grad=True)
    tol = tolerances(dtype)
    assert_allclose(loss, expected_loss, **tol)
    assert grad.dtype == expected_grad.dtype == dtype
    assert_allclose(grad, expected_grad, rtol=tol["rtol"],
                    atol=tol["atol"] * scale_of(reduction, logits.size))


# ----------------------------------------------------------------------------- extremes

@pytest.mark.parametrize("dtype, limit", [(np.float32, 1e4), (np.float64, 1e300)])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_finite_and_nan_free_for_every_logit(dtype, limit, gamma):
    magnitudes = np.concatenate([[0.0, 1e-30, 1e-8, 0.5, 1.0, 17.0, 36.0, 88.0, 89.0, 104.0,
                                  700.0, 709.0, 710.0, 746.0, 1e4],
                                 np.geomspace(1e-3, limit, 60)])
    magnitudes = magnitudes[magnitudes <= limit]
    z = np.concatenate([magnitudes, -magnitudes]).astype(dtype)
    logits = np.repeat(z[:, None], len(SOFT_TARGETS), axis=1)
    target = np.broadcast_to(np.array(SOFT_TARGETS), logits.shape).copy()
    for alpha in (0.25, -1.0):
        loss, grad = fastce.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma,
                                               reduction="none", return_grad=True)
        assert np.all(np.isfinite(loss)), logits[~np.isfinite(loss)]
        assert np.all(np.isfinite(grad)), logits[~np.isfinite(grad)]
        assert np.all(loss >= 0)
        # With a hard target both terms of the gradient have the sign of sigma(z) - y.
        assert np.all(grad[:, target[0] == 0.0] >= 0) and np.all(grad[:, target[0] == 1.0] <= 0)
        total = fastce.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma,
                                          reduction="sum")
        assert np.isfinite(total)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_finite_at_the_largest_finite_logits(dtype, gamma):
    """Contract: finite and NaN-free for *every* finite logit, the largest ones included."""
    big = np.finfo(dtype).max
    logits = np.repeat(np.array([big, -big, big / 2, -big / 2], dtype=dtype)[:, None], 3, axis=1)
    target = np.broadcast_to(np.array([0.0, 1.0, 0.5]), logits.shape).copy()
    loss, grad = fastce.sigmoid_focal_loss(logits, target, gamma=gamma, reduction="none",
                                           return_grad=True)
    # loss <= BCE <= |z| and |grad| <= 1: both representable.
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert np.all(loss >= 0)


def test_focal_infinite_logits_give_the_limits():
    """±inf in the binary family give the limits (the contract, "Numerics")."""
    logits = np.array([np.inf, -np.inf, -np.inf, np.inf, np.nan, 1.0])
    target = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    alpha = 0.25
    for gamma in GAMMAS:
        loss, grad = fastce.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma,
                                               reduction="none", return_grad=True)
        assert_array_equal(loss[:4], [0.0, 0.0, np.inf, np.inf])
        # z -> -inf with y = 1: grad -> alpha_t (sigma(z) - y) = -alpha; z -> +inf, y = 0: 1 - alpha.
        assert_array_equal(grad[:4], [0.0, 0.0, -alpha, 1 - alpha])
        assert np.isnan(loss[4]) and np.isnan(grad[4])
        assert np.isfinite(loss[5]) and np.isfinite(grad[5])


# ----------------------------------------------------------------------------- gradient

@pytest.mark.parametrize("gamma", GAMMAS + (0.1, 3.5))
@pytest.mark.parametrize("alpha", [0.25, -1.0, 1.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_matches_central_finite_differences(gamma, alpha, reduction):
    rng = np.random.default_rng(6)
    logits = rng.uniform(-8, 8, (30, 5))
    target = rng.choice(SOFT_TARGETS + (0.37, 0.71), size=(30, 5))
    _, grad = fastce.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma,
                                        reduction=reduction, return_grad=True)
    # Elementwise loss: perturbing every logit at once gives every partial derivative.
    h = 1e-6 * np.maximum(1.0, np.abs(logits))

    def per_element(z):
        return reference.sigmoid_focal_loss(z, target, alpha=alpha, gamma=gamma,
                                            reduction="none")

    numerical = (per_element(logits + h) - per_element(logits - h)) / (2 * h)
    numerical = numerical * scale_of(reduction, logits.size)
    assert_allclose(grad, numerical, rtol=1e-6, atol=1e-8 * scale_of(reduction, logits.size))
    # And against the function itself, through the reduction.
    index = (3, 2)
    up, down = logits.copy(), logits.copy()
    up[index] += 1e-6
    down[index] -= 1e-6

    def total(z):
        value = fastce.sigmoid_focal_loss(z, target, alpha=alpha, gamma=gamma,
                                          reduction=reduction)
        return math.fsum(np.ravel(value))

    rounding = 1e-15 * max(1.0, abs(total(logits))) / 1e-6
    assert_allclose(grad[index], (total(up) - total(down)) / 2e-6, rtol=1e-5, atol=10 * rounding)


# ----------------------------------------------------------------------------- mpmath

def mp_focal(z, y, alpha, gamma):
    """Loss and gradient at 50 digits, straight from the definitions."""
    with mpmath.workdps(50):
        z, y = mpmath.mpf(float(z)), mpmath.mpf(float(y))
        sigmoid_z = 1 / (1 + mpmath.exp(-z))
        sigmoid_minus_z = 1 / (1 + mpmath.exp(z))
        # -log sigma(t) = log1p(exp(-t)): log(1 - 1e-44) would lose 44 of the 50 digits.
        ce = y * mpmath.log1p(mpmath.exp(-z)) + (1 - y) * mpmath.log1p(mpmath.exp(z))
        m = y * sigmoid_minus_z + (1 - y) * sigmoid_z
        factor = mpmath.mpf(1) if gamma == 0 else m ** mpmath.mpf(gamma)
        alpha_t = alpha * y + (1 - alpha) * (1 - y) if alpha >= 0 else mpmath.mpf(1)
        loss = alpha_t * factor * ce
        dm = (1 - 2 * y) * sigmoid_z * sigmoid_minus_z
        sigmoid_minus_y = (1 - y) * sigmoid_z - y * sigmoid_minus_z     # no cancellation
        grad = alpha_t * (gamma * m ** (gamma - 1) * dm * ce if gamma else 0) + \
            alpha_t * factor * sigmoid_minus_y
        return loss, grad


def mp_points(dtype, n_points, seed):
    rng = np.random.default_rng(seed)
    top = 4 if dtype == np.float32 else 300
    z = (10.0 ** rng.uniform(-8, top, n_points) * rng.choice([-1, 1], n_points)).astype(dtype)
    z[:8] = np.array([0.0, 1.0, -1.0, 20.0, -20.0, 88.0, -88.0, 1e4], dtype=dtype)
    y = rng.choice(SOFT_TARGETS, n_points).astype(dtype)     # exact in the compute dtype
    return z, y


def max_error(got, exact, dtype):
    """Worst error in units of the tolerance (<= 1 passes)."""
    worst = 0.0
    for value, truth in zip(got, exact):
        error = abs(mpmath.mpf(float(value)) - truth)
        if dtype == np.float64:
            units = 0.0 if abs(truth) < 1e-300 else float(error / abs(truth)) / 1e-12
        else:
            units = float(error / abs(truth)) / 2e-6 if truth else float(error) / 2e-7
            if abs(truth) < 0.1:
                units = min(units, float(error) / 2e-7)
        worst = max(worst, units)
    return worst


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_loss_accuracy_against_mpmath(dtype, gamma):
    """float64: relative 1e-12 (values under 1e-300, where the result underflows, excepted);
    float32: relative 2e-6, or absolute 2e-7 where |loss| < 0.1. 6 x 2 x 60 points
    (a correct log-space implementation, the reference, stays under 5e-15 and 6e-8)."""
    z, y = mp_points(dtype, 60, seed=int(gamma * 4) + (0 if dtype == np.float64 else 100))
    for alpha in (0.25, -1.0):
        got = fastce.sigmoid_focal_loss(z, y, alpha=alpha, gamma=gamma, reduction="none")
        exact = [mp_focal(zi, yi, alpha, gamma)[0] for zi, yi in zip(z, y)]
        assert max_error(got, exact, dtype) <= 1.0


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_gradient_accuracy_against_mpmath_for_hard_targets(dtype):
    """With y in {0, 1} the two terms of the gradient have the same sign, so the closed
    form has no cancellation and keeps the loss's accuracy."""
    z, _ = mp_points(dtype, 60, seed=7)
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, z.size).astype(dtype)
    for gamma in (0.0, 0.5, 2.0, 5.0):
        _, grad = fastce.sigmoid_focal_loss(z, y, alpha=0.25, gamma=gamma, reduction="none",
                                            return_grad=True)
        exact = [mp_focal(zi, yi, 0.25, gamma)[1] for zi, yi in zip(z, y)]
        assert max_error(grad, exact, dtype) <= 1.0


# ----------------------------------------------------------------------------- API

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_reductions(dtype):
    rng = np.random.default_rng(9)
    logits, target = problem(rng, shape=(3, 4, 5), dtype=dtype)
    per_element, grad_none = fastce.sigmoid_focal_loss(logits, target, reduction="none",
                                                       return_grad=True)
    assert per_element.shape == (3, 4, 5) and per_element.dtype == dtype
    total, grad_sum = fastce.sigmoid_focal_loss(logits, target, reduction="sum", return_grad=True)
    mean, grad_mean = fastce.sigmoid_focal_loss(logits, target, reduction="mean",
                                                return_grad=True)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    assert_allclose(total, math.fsum(per_element.astype(np.float64).ravel()), rtol=rtol)
    assert_allclose(mean, total / logits.size, rtol=1e-14)
    assert_array_equal(grad_sum, grad_none)
    assert_allclose(grad_mean, grad_none / np.array(logits.size, dtype=dtype), rtol=rtol)


def test_focal_empty_batch():
    empty = np.zeros((0, 3))
    assert fastce.sigmoid_focal_loss(empty, empty) == 0.0
    assert fastce.sigmoid_focal_loss(empty, empty, reduction="sum") == 0.0
    assert fastce.sigmoid_focal_loss(empty, empty, reduction="none").shape == (0, 3)
    loss, grad = fastce.sigmoid_focal_loss(empty, empty, return_grad=True)
    assert loss == 0.0 and grad.shape == (0, 3)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_grad_out_is_filled_and_returned_even_in_place(dtype):
    rng = np.random.default_rng(10)
    logits, target = problem(rng, dtype=dtype)
    loss, expected = reference.sigmoid_focal_loss(logits, target, return_grad=True)
    out = np.full_like(logits, np.nan)
    got_loss, grad = fastce.sigmoid_focal_loss(logits, target, return_grad=True, grad_out=out)
    assert grad is out
    tol = tolerances(dtype)
    assert_allclose(out, expected, rtol=tol["rtol"], atol=tol["atol"] / logits.size)
    in_place = logits.copy()
    got_loss_2, grad = fastce.sigmoid_focal_loss(in_place, target, return_grad=True,
                                                 grad_out=in_place)
    assert grad is in_place
    assert_allclose(in_place, expected, rtol=tol["rtol"], atol=tol["atol"] / logits.size)
    assert_allclose([got_loss, got_loss_2], loss, rtol=tol["rtol"])


@pytest.mark.parametrize("dtype, compute", [(np.float16, np.float32), (np.float32, np.float32),
                                            (np.float64, np.float64), (np.int32, np.float64),
                                            (np.bool_, np.float64)])
def test_compute_dtype_and_target_dtypes(dtype, compute):
    rng = np.random.default_rng(11)
    logits = (3 * rng.standard_normal((6, 5))).astype(dtype)
    for target in (rng.integers(0, 2, (6, 5)), rng.integers(0, 2, (6, 5)).astype(bool),
                   rng.uniform(0, 1, (6, 5)).astype(np.float32)):
        loss, grad = fastce.sigmoid_focal_loss(logits, target, reduction="none",
                                               return_grad=True)
        assert loss.dtype == compute and grad.dtype == compute
        expected_loss, expected_grad = reference.sigmoid_focal_loss(
            logits.astype(compute), target.astype(compute), reduction="none", return_grad=True)
        tol = tolerances(compute)
        assert_allclose(loss, expected_loss, **tol)
        assert_allclose(grad, expected_grad, **tol)


def test_strided_input_equals_contiguous_copy():
    rng = np.random.default_rng(12)
    logits, target = problem(rng, shape=(20, 12))
    view, target_view = logits[::2, 1::3], np.asfortranarray(target[1::2, ::3])
    got = fastce.sigmoid_focal_loss(view, target_view, reduction="none", return_grad=True)
    expected = fastce.sigmoid_focal_loss(np.ascontiguousarray(view),
                                         np.ascontiguousarray(target_view),
                                         reduction="none", return_grad=True)
    assert_array_equal(got[0], expected[0])
    assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_bitwise_deterministic_across_thread_counts(dtype):
    rng = np.random.default_rng(13)
    logits, target = problem(rng, shape=(2000, 300), scale=5.0, dtype=dtype)
    runs = []
    for n_threads in (1, 2, 2):
        results = []
        for reduction in REDUCTIONS:
            results.extend(fastce.sigmoid_focal_loss(logits, target, gamma=1.5,
                                                     reduction=reduction, return_grad=True,
                                                     n_threads=n_threads))
        runs.append(results)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


# ----------------------------------------------------------------------------- properties

@PROPERTY
@given(st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.3, 1.0, 2.0, 4.0]),
       st.sampled_from([0.25, 0.5, 0.0, 1.0]), st.sampled_from([1.0, 10.0, 300.0]))
def test_properties(seed, gamma, alpha, scale):
    """0 <= focal <= alpha_t BCE; more focus (gamma) never raises the loss; swapping the
    classes (z, y, alpha) -> (-z, 1 - y, 1 - alpha) leaves the loss as it is and flips the
    gradient."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal(50)
    target = rng.choice(SOFT_TARGETS + (rng.uniform(),), size=50)
    loss, grad = fastce.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma,
                                           reduction="none", return_grad=True)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    bce = fastce.binary_cross_entropy_with_logits(logits, target, reduction="none")
    assert np.all(loss >= 0)
    tiny = 1e-300                                  # subnormal results round coarsely
    assert np.all(loss <= alpha_t * bce * (1 + 1e-13) + tiny)
    more_focus = fastce.sigmoid_focal_loss(logits, target, alpha=alpha, gamma=gamma + 0.5,
                                           reduction="none")
    assert np.all(more_focus <= loss * (1 + 1e-13) + tiny)
    swapped, swapped_grad = fastce.sigmoid_focal_loss(-logits, 1 - target, alpha=1 - alpha,
                                                      gamma=gamma, reduction="none",
                                                      return_grad=True)
    # 1 - y rounds for soft y, hence a tolerance rather than equality.
    assert_allclose(swapped, loss, rtol=1e-9, atol=1e-300)
    assert_allclose(swapped_grad, -grad, rtol=1e-9, atol=1e-12)     # |grad| <= 1


# ----------------------------------------------------------------------------- bad input

def _bad_cases():
    logits = np.linspace(-3, 3, 12).reshape(4, 3)
    target = np.linspace(0, 1, 12).reshape(4, 3)
    cases = []
    for bad in (-0.5, -1.0, -1e-300, np.nan, -np.inf, np.inf):
        cases.append((f"gamma={bad}", dict(gamma=bad), ValueError, "gamma"))
    for bad in (1.5, 1.0 + 1e-15, np.nan, np.inf):
        cases.append((f"alpha={bad}", dict(alpha=bad), ValueError, "alpha"))
    for bad in (1.5, -0.1, -1e-300, 1.0 + 1e-15, np.nan, np.inf, -np.inf):
        bad_target = target.copy()
        bad_target[2, 1] = bad
        cases.append((f"target={bad}", dict(target=bad_target), ValueError, "target"))
    cases.append(("target-int-2", dict(target=np.full((4, 3), 2)), ValueError, "target"))
    for shape in ((4, 4), (3, 4), (12,), (4, 1)):
        cases.append((f"target-shape-{shape}", dict(target=np.zeros(shape)), ValueError,
                      "target"))
    cases.append(("logits-complex", dict(logits=logits.astype(np.complex128)), TypeError,
                  "logits"))
    cases.append(("target-object", dict(target=target.astype(object)), TypeError, "target"))
    cases.append(("reduction", dict(reduction="avg"), ValueError, "reduction"))
    cases.append(("n_threads", dict(n_threads=0), ValueError, "n_threads"))
    for name, bad in (("shape", np.zeros((4, 4))), ("dtype", np.zeros((4, 3), np.float32)),
                      ("layout", np.zeros((3, 4)).T), ("strided", np.zeros((4, 6))[:, ::2])):
        cases.append((f"grad_out-{name}", dict(return_grad=True, grad_out=bad), ValueError,
                      "grad_out"))
    return [(logits, target) + case for case in cases]


@pytest.mark.parametrize("logits, target, name, kwargs, error, argument", _bad_cases(),
                         ids=[case[2] for case in _bad_cases()])
def test_bad_input_raises_naming_the_argument_and_modifies_nothing(logits, target, name, kwargs,
                                                                   error, argument):
    kwargs = dict(kwargs)
    logits = kwargs.pop("logits", logits).copy()
    target = kwargs.pop("target", target).copy()
    snapshot = (logits.copy(), target.copy())
    with pytest.raises(error, match=word(argument)):
        fastce.sigmoid_focal_loss(logits, target, **kwargs)
    if logits.dtype != object and target.dtype != object:
        assert_array_equal(logits, snapshot[0])
        assert_array_equal(target, snapshot[1])


def test_alpha_below_zero_and_the_boundaries_are_accepted():
    logits = np.linspace(-3, 3, 12).reshape(4, 3)
    target = np.linspace(0, 1, 12).reshape(4, 3)
    for alpha in (-1.0, -1e-300, -np.inf, 0.0, 1.0):
        loss = fastce.sigmoid_focal_loss(logits, target, alpha=alpha, reduction="none")
        expected = reference.sigmoid_focal_loss(logits, target, alpha=alpha, reduction="none")
        assert_allclose(loss, expected, rtol=1e-12, atol=1e-300)
    # alpha < 0 is "off": every negative alpha is the same.
    assert_array_equal(fastce.sigmoid_focal_loss(logits, target, alpha=-1.0),
                       fastce.sigmoid_focal_loss(logits, target, alpha=-0.01))
    # gamma = 0 is allowed and is 0^0 = 1.
    assert np.isfinite(fastce.sigmoid_focal_loss(logits, target, gamma=0.0))


def test_valid_calls_modify_no_input():
    rng = np.random.default_rng(14)
    logits, target = problem(rng)
    snapshot = (logits.copy(), target.copy())
    for reduction in REDUCTIONS:
        fastce.sigmoid_focal_loss(logits, target, reduction=reduction, return_grad=True)
    assert_array_equal(logits, snapshot[0])
    assert_array_equal(target, snapshot[1])


# --------------------------------------------------------------------------
# The forward pass's discarded outputs (the block's sink)

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_forward_equals_the_gradient_pass_bitwise(dtype):
    """The forward pass writes the outputs it does not keep to a per-thread
    sink placed away from the inputs' addresses modulo 4096; the values are
    the same loop's, so every reduction agrees bit for bit with the pass that
    also computes the gradient, over many blocks and threads."""
    rng = np.random.default_rng(11)
    x = (4 * rng.standard_normal(300_001)).astype(dtype)
    y = (rng.random(300_001) > 0.4).astype(dtype)
    for threads in (1, 2):
        with_grad, _ = fastce.binary_cross_entropy_with_logits(
            x, y, reduction="none", return_grad=True, n_threads=threads)
        alone = fastce.binary_cross_entropy_with_logits(x, y, reduction="none",
                                                        n_threads=threads)
        assert alone.tobytes() == with_grad.tobytes()
        total, _ = fastce.binary_cross_entropy_with_logits(x, y, reduction="sum",
                                                           return_grad=True, n_threads=threads)
        assert fastce.binary_cross_entropy_with_logits(
            x, y, reduction="sum", n_threads=threads) == total


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["bce", "focal", "focal-gamma-1.5", "focal-soft", "logistic",
                                  "bce-probs"])
def test_loss_is_bitwise_the_same_with_and_without_the_gradient(rng, dtype, name):
    """A forward-only pass skips the derivatives (or discards them): the loss itself
    must not depend on whether the gradient was asked for."""
    x = (rng.standard_normal(5000) * 4).astype(dtype)
    hard = (rng.random(5000) < 0.4).astype(dtype)
    function, target, keywords = {
        "bce": (fastce.binary_cross_entropy_with_logits, hard, {}),
        "focal": (fastce.sigmoid_focal_loss, hard, {}),
        "focal-gamma-1.5": (fastce.sigmoid_focal_loss, hard, {"gamma": 1.5}),
        "focal-soft": (fastce.sigmoid_focal_loss, rng.random(5000).astype(dtype), {}),
        "logistic": (fastce.logistic_loss, hard * 2 - 1, {}),
        "bce-probs": (fastce.binary_cross_entropy, hard, {}),
    }[name]
    if name == "bce-probs":
        x = rng.random(5000).astype(dtype)
    loss = function(x, target, reduction="none", **keywords)
    with_grad, _ = function(x, target, reduction="none", return_grad=True, **keywords)
    assert loss.tobytes() == with_grad.tobytes()
    total = function(x, target, reduction="sum", **keywords)
    total_with_grad, _ = function(x, target, reduction="sum", return_grad=True, **keywords)
    assert total == total_with_grad


def test_bce_loss_without_gradient_is_bitwise_the_fused_one_on_a_found_case():
    """hypothesis found this case against a forward-only loop that skipped the
    derivatives: GCC contracted the loss differently once they were dead (1 ulp)."""
    logits = np.zeros((4, 4), np.float32)
    logits[0, 0] = 0.8125
    target = np.full((4, 4), 0.25, np.float32)
    total = fastce.binary_cross_entropy_with_logits(logits, target, reduction="sum")
    fused, _ = fastce.binary_cross_entropy_with_logits(logits, target, reduction="sum",
                                                       return_grad=True)
    assert total == fused
