"""Information measures: entropy, kl_divergence, kl_divergence_with_logits, js_divergence,
categorical_cross_entropy (the contract, "Information measures").

Oracles:
- SciPy: scipy.stats.entropy (which renormalises, so only on normalised rows),
  scipy.special.entr / rel_entr / kl_div / log_softmax (which do not), and
  scipy.spatial.distance.jensenshannon (squared, on normalised rows);
- fastce.reference, the executable spec;
- PyTorch's kl_div(log_softmax(logits), p, reduction="batchmean") and its autograd
  gradient, where torch is installed (those tests only);
- central finite differences for the kl_divergence_with_logits gradient;
- properties: H(p, q) = H(p) + KL(p || q), Gibbs and Pinsker, 0 <= JS <= log 2.
"""
import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import jensenshannon

import fastce
from fastce import reference

from conftest import FLOAT_DTYPES, REDUCTIONS, numerical_gradient, word

PROPERTY = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
# (shape, axis) pairs: every axis of 2-D and 3-D inputs, the distribution axis being `axis`.
SHAPES_AND_AXES = [((6, 5), 0), ((6, 5), 1), ((6, 5), -1),
                   ((3, 4, 5), 0), ((3, 4, 5), 1), ((3, 4, 5), -1)]
# The measures of two probability arrays: name -> function.
PAIR_MEASURES = {
    "kl_divergence": lambda: fastce.kl_divergence,
    "js_divergence": lambda: fastce.js_divergence,
    "categorical_cross_entropy": lambda: fastce.categorical_cross_entropy,
}
DEFAULT_REDUCTION = {"entropy": "none", "kl_divergence": "mean", "js_divergence": "mean",
                     "categorical_cross_entropy": "mean", "kl_divergence_with_logits": "mean"}


# ----------------------------------------------------------------------------- data

def distributions(rng, shape, axis, zeros=True):
    """Normalised distributions along `axis`, with about one entry in six exactly 0."""
    p = rng.dirichlet(np.full(shape[axis], 0.7), size=int(np.prod(shape)) // shape[axis])
    if zeros:
        p[rng.random(p.shape) < 1 / 6] = 0.0
        p[:, 0] = np.maximum(p[:, 0], 0.05)        # no row is all zero
        p /= p.sum(axis=-1, keepdims=True)
    moved = list(shape)
    moved.append(moved.pop(axis % len(shape)))
    return np.moveaxis(p.reshape(moved), -1, axis)


def unnormalised(rng, shape, low=0.0):
    """Values in [low, 1], not summing to 1, with some exact zeros when low = 0."""
    p = rng.uniform(low, 1.0, shape)
    if low == 0.0:
        p[rng.random(shape) < 1 / 6] = 0.0
    return p


def spec_ok(got, expected, dtype):
    """The accuracy contract: float64 relative 1e-12 (a little above its 1e-13, for sums of
    terms); float32 relative 2e-6, or absolute 2e-7 when |value| < 0.1. Infinities and
    NaNs must match exactly."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    finite = np.isfinite(expected)
    assert_array_equal(np.isnan(got), np.isnan(expected))
    assert_array_equal(got[np.isinf(expected)], expected[np.isinf(expected)])
    error = np.abs(got[finite] - expected[finite])
    size = np.abs(expected[finite])
    if np.dtype(dtype) == np.float64:
        ok = error <= 1e-12 * size + 1e-15
    else:
        ok = (error <= 2e-6 * size) | ((size < 0.1) & (error <= 2e-7))
    assert np.all(ok), f"worst error {error.max()} at value {size[np.argmax(error)]}"


def reduce_rows(rows, reduction):
    """The expected result of `reduction` applied to per-row values (float64)."""
    rows = np.asarray(rows, dtype=np.float64)
    if reduction == "none":
        return rows
    if reduction == "sum":
        return math.fsum(rows.ravel()) if np.all(np.isfinite(rows)) else rows.sum()
    if rows.size == 0:
        return 0.0
    return (math.fsum(rows.ravel()) if np.all(np.isfinite(rows)) else rows.sum()) / rows.size


def check_result(got, expected_rows, reduction, dtype):
    """`got` is the reduction of `expected_rows`, with the right type and dtype."""
    expected = reduce_rows(expected_rows, reduction)
    if reduction == "none":
        assert np.shape(got) == np.shape(expected_rows)
        assert np.asarray(got).dtype == dtype
    else:
        assert isinstance(got, float), type(got)
        assert isinstance(got, np.float64)
    spec_ok(got, expected, dtype)


def log_softmax64(logits, axis):
    return scipy.special.log_softmax(np.asarray(logits, dtype=np.float64), axis=axis)


def kl_with_logits_oracle(p, logits, axis):
    """Per-row KL(p || softmax(logits)) and the gradient of their sum, from SciPy."""
    p = np.asarray(p, dtype=np.float64)
    log_q = log_softmax64(logits, axis)
    with np.errstate(invalid="ignore"):
        terms = np.where(p == 0, 0.0, scipy.special.xlogy(p, p) - p * log_q)
    rows = terms.sum(axis=axis)
    grad = p.sum(axis=axis, keepdims=True) * np.exp(log_q) - p
    return rows, grad


def call(name, *args, **kwargs):
    return getattr(fastce, name)(*args, **kwargs)


# ----------------------------------------------------------------------------- against SciPy

@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("base", [None, 2, 10, math.e])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_entropy_matches_scipy_on_normalised_rows(shape, axis, base, dtype):
    rng = np.random.default_rng(1)
    p = distributions(rng, shape, axis).astype(dtype)
    expected = scipy.stats.entropy(p.astype(np.float64), base=base, axis=axis)
    got = fastce.entropy(p, axis=axis, base=base)
    assert got.dtype == dtype and got.shape == expected.shape
    spec_ok(got, expected, dtype)


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_entropy_of_unnormalised_rows_is_the_plain_formula(shape, axis, reduction):
    rng = np.random.default_rng(2)
    p = unnormalised(rng, shape)
    rows = scipy.special.entr(p).sum(axis=axis)          # entr(0) = 0, no renormalising
    check_result(fastce.entropy(p, axis=axis, reduction=reduction), rows, reduction, np.float64)
    check_result(fastce.entropy(p, axis=axis, base=2, reduction=reduction), rows / np.log(2),
                 reduction, np.float64)
    # scipy renormalises: that is a different number on these rows.
    assert not np.allclose(fastce.entropy(p, axis=axis), scipy.stats.entropy(p, axis=axis))


def test_entropy_default_reduction_is_none():
    p = np.full((3, 4), 0.25)
    got = fastce.entropy(p)
    assert isinstance(got, np.ndarray) and got.shape == (3,)
    assert_allclose(got, np.log(4), rtol=1e-15)


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_kl_matches_scipy(shape, axis, reduction, dtype):
    rng = np.random.default_rng(3)
    p = distributions(rng, shape, axis).astype(dtype)
    q = distributions(rng, shape, axis, zeros=False).astype(dtype)
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    rows = scipy.special.rel_entr(p64, q64).sum(axis=axis)
    check_result(fastce.kl_divergence(p, q, axis=axis, reduction=reduction), rows, reduction, dtype)
    # scipy.stats.entropy(p, q) renormalises, a no-op (to rounding) on these rows;
    # kl_div(p, q) = rel_entr - p + q sums to the same on normalised rows.
    # (float32 rows sum to 1 only within float32 rounding.)
    near = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-6, atol=1e-7)
    assert_allclose(rows, scipy.stats.entropy(p64, q64, axis=axis), **near)
    assert_allclose(rows, scipy.special.kl_div(p64, q64).sum(axis=axis), **near)
    got_base2 = fastce.kl_divergence(p, q, axis=axis, base=2, reduction="none")
    spec_ok(got_base2, scipy.stats.entropy(p64, q64, base=2, axis=axis), dtype)


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_kl_of_unnormalised_rows_is_the_sum_of_rel_entr(shape, axis, reduction):
    rng = np.random.default_rng(4)
    p = unnormalised(rng, shape)
    q = unnormalised(rng, shape, low=0.01)
    rows = scipy.special.rel_entr(p, q).sum(axis=axis)
    check_result(fastce.kl_divergence(p, q, axis=axis, reduction=reduction), rows, reduction,
                 np.float64)
    check_result(fastce.kl_divergence(p, q, axis=axis, base=10, reduction=reduction),
                 rows / np.log(10), reduction, np.float64)


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("base", [None, 2])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_js_matches_scipy_jensenshannon_squared(shape, axis, base, dtype):
    rng = np.random.default_rng(5)
    p = distributions(rng, shape, axis).astype(dtype)
    q = distributions(rng, shape, axis).astype(dtype)
    expected = jensenshannon(p.astype(np.float64), q.astype(np.float64), base=base, axis=axis) ** 2
    got = fastce.js_divergence(p, q, axis=axis, base=base, reduction="none")
    assert got.dtype == dtype
    # scipy takes a square root, which costs a few ulps on the way back.
    if dtype == np.float32:
        spec_ok(got, expected, dtype)
    else:
        assert_allclose(got, expected, rtol=1e-11, atol=1e-15)
    for reduction in ("sum", "mean"):
        check_result(fastce.js_divergence(p, q, axis=axis, base=base, reduction=reduction),
                     expected, reduction, dtype)


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_js_of_unnormalised_rows_is_the_formula(shape, axis, reduction):
    rng = np.random.default_rng(6)
    p, q = unnormalised(rng, shape), unnormalised(rng, shape)
    m = (p + q) / 2
    rows = 0.5 * (scipy.special.rel_entr(p, m) + scipy.special.rel_entr(q, m)).sum(axis=axis)
    check_result(fastce.js_divergence(p, q, axis=axis, reduction=reduction), rows, reduction,
                 np.float64)


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_categorical_cross_entropy_is_the_clamped_formula(shape, axis, reduction, dtype):
    rng = np.random.default_rng(7)
    p = unnormalised(rng, shape).astype(dtype)
    q = unnormalised(rng, shape).astype(dtype)          # q = 0 where p > 0: clamped at -100
    p64, q64 = p.astype(np.float64), q.astype(np.float64)
    with np.errstate(divide="ignore"):
        terms = np.where(p64 == 0, 0.0, -p64 * np.maximum(np.log(q64), -100.0))
    rows = terms.sum(axis=axis)
    assert np.any((p64 > 0) & (q64 == 0))
    check_result(fastce.categorical_cross_entropy(p, q, axis=axis, reduction=reduction), rows,
                 reduction, dtype)


@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_kl_with_logits_matches_scipy(shape, axis, reduction, dtype):
    rng = np.random.default_rng(8)
    p = distributions(rng, shape, axis)
    logits = (3 * rng.standard_normal(shape)).astype(dtype)
    rows, grad = kl_with_logits_oracle(p, logits, axis)
    loss, got_grad = fastce.kl_divergence_with_logits(p, logits, axis=axis, reduction=reduction,
                                                      return_grad=True)
    check_result(loss, rows, reduction, dtype)
    assert got_grad.dtype == dtype and got_grad.shape == shape
    scale = 1.0 / rows.size if reduction == "mean" else 1.0
    tol = dict(rtol=1e-12, atol=1e-15) if dtype == np.float64 else dict(rtol=2e-6, atol=2e-7)
    assert_allclose(got_grad, grad * scale, **tol)
    # The loss alone is the loss that comes with the gradient.
    alone = fastce.kl_divergence_with_logits(p, logits, axis=axis, reduction=reduction)
    assert_array_equal(alone, loss)


def test_kl_with_logits_unnormalised_p_gradient_has_the_row_sum():
    rng = np.random.default_rng(9)
    p = unnormalised(rng, (5, 7))
    logits = rng.standard_normal((5, 7))
    rows, grad = kl_with_logits_oracle(p, logits, -1)
    loss, got = fastce.kl_divergence_with_logits(p, logits, reduction="sum", return_grad=True)
    assert_allclose(loss, rows.sum(), rtol=1e-12)
    assert_allclose(got, grad, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- against PyTorch

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("normalised", [True, False])
def test_kl_with_logits_matches_torch_kl_div(reduction, axis, normalised):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(10)
    shape = (9, 6)
    p = distributions(rng, shape, axis) if normalised else unnormalised(rng, shape)
    logits = 2.5 * rng.standard_normal(shape)
    # torch's classes are the last axis: transpose when ours are axis 0.
    as_rows = (lambda a: a.T) if axis == 0 else (lambda a: a)
    logits_t = torch.tensor(as_rows(logits), requires_grad=True)
    p_t = torch.tensor(as_rows(p))
    torch_reduction = {"mean": "batchmean", "sum": "sum", "none": "none"}[reduction]
    loss_t = F.kl_div(F.log_softmax(logits_t, dim=-1), p_t, reduction=torch_reduction,
                      log_target=False)
    if reduction == "none":
        loss_t = loss_t.sum(dim=-1)
    loss_t.sum().backward()

    loss, grad = fastce.kl_divergence_with_logits(p, logits, axis=axis, reduction=reduction,
                                                  return_grad=True)
    assert_allclose(loss, loss_t.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert_allclose(grad, as_rows(logits_t.grad.numpy()), rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_kl_divergence_matches_torch_kl_div_of_log_probabilities(reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    p = distributions(rng, (8, 5), -1)
    q = distributions(rng, (8, 5), -1, zeros=False)
    torch_reduction = {"mean": "batchmean", "sum": "sum", "none": "none"}[reduction]
    expected = F.kl_div(torch.log(torch.tensor(q)), torch.tensor(p), reduction=torch_reduction)
    if reduction == "none":
        expected = expected.sum(dim=-1)
    got = fastce.kl_divergence(p, q, reduction=reduction)
    assert_allclose(got, expected.numpy(), rtol=1e-12, atol=1e-15)


def test_kl_with_logits_float32_matches_torch_float32():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(12)
    p = distributions(rng, (64, 33), -1).astype(np.float32)
    logits = (3 * rng.standard_normal((64, 33))).astype(np.float32)
    logits_t = torch.tensor(logits, requires_grad=True)
    loss_t = F.kl_div(F.log_softmax(logits_t, dim=-1), torch.tensor(p), reduction="batchmean")
    loss_t.backward()
    loss, grad = fastce.kl_divergence_with_logits(p, logits, return_grad=True)
    assert grad.dtype == np.float32
    assert_allclose(loss, loss_t.item(), rtol=2e-5)
    assert_allclose(grad, logits_t.grad.numpy(), rtol=2e-5, atol=2e-7)


# ----------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, axis", [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1)])
@pytest.mark.parametrize("normalised", [True, False])
def test_kl_with_logits_gradient_matches_finite_differences(reduction, shape, axis, normalised):
    rng = np.random.default_rng(13)
    p = distributions(rng, shape, axis) if normalised else unnormalised(rng, shape)
    logits = 2 * rng.standard_normal(shape)
    _, grad = fastce.kl_divergence_with_logits(p, logits, axis=axis, reduction=reduction,
                                               return_grad=True)

    def total(z):
        loss = fastce.kl_divergence_with_logits(p, z, axis=axis, reduction=reduction)
        return float(np.sum(np.asarray(loss, dtype=np.float64)))

    assert_allclose(grad, numerical_gradient(total, logits), rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------- against the reference

def _pair_inputs(rng, shape, axis, dtype):
    p = distributions(rng, shape, axis).astype(dtype)
    q = distributions(rng, shape, axis).astype(dtype)
    return p, q


@pytest.mark.parametrize("name", ["entropy", *PAIR_MEASURES, "kl_divergence_with_logits"])
@pytest.mark.parametrize("shape, axis", SHAPES_AND_AXES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_matches_reference(name, shape, axis, dtype):
    rng = np.random.default_rng(14)
    p, q = _pair_inputs(rng, shape, axis, dtype)
    q[(rng.random(shape) < 0.1) & (p > 0)] = 0.0     # some q = 0 < p: inf in KL, clamp in H(p, q)
    logits = (4 * rng.standard_normal(shape)).astype(dtype)
    for reduction in REDUCTIONS:
        kwargs = dict(axis=axis, reduction=reduction)
        if name == "entropy":
            args = (p,)
        elif name == "kl_divergence_with_logits":
            args = (p, logits)
            kwargs["return_grad"] = True
        else:
            args = (p, q)
        got = call(name, *args, **kwargs)
        expected = getattr(reference, name)(*args, **kwargs)
        if name == "kl_divergence_with_logits":
            (got, got_grad), (expected, expected_grad) = got, expected
            assert got_grad.dtype == expected_grad.dtype == dtype
            tol = dict(rtol=1e-12, atol=1e-15) if dtype == np.float64 else \
                dict(rtol=2e-6, atol=2e-7)
            assert_allclose(got_grad, expected_grad, **tol)
        if reduction == "none":
            assert np.asarray(got).dtype == dtype
        else:
            assert isinstance(got, np.float64)
        spec_ok(got, expected, dtype)


@pytest.mark.parametrize("name", ["entropy", *PAIR_MEASURES, "kl_divergence_with_logits"])
def test_defaults_match_reference(name):
    rng = np.random.default_rng(15)
    p, q = _pair_inputs(rng, (7, 6), -1, np.float64)
    second = 3 * rng.standard_normal((7, 6)) if name == "kl_divergence_with_logits" else q
    args = (p,) if name == "entropy" else (p, second)
    got = call(name, *args)
    expected = getattr(reference, name)(*args)
    assert np.shape(got) == np.shape(expected)
    if DEFAULT_REDUCTION[name] == "none":
        assert isinstance(got, np.ndarray)
    else:
        assert isinstance(got, np.float64)
    spec_ok(got, expected, np.float64)


@pytest.mark.parametrize("dtype, compute", [(np.float16, np.float32), (np.float32, np.float32),
                                            (np.float64, np.float64), (np.int64, np.float64),
                                            (np.bool_, np.float64)])
def test_compute_dtype(dtype, compute):
    """float16 is computed in float32, integers and bools in float64. For the measures of
    probabilities the first argument (p) sets it; for kl_divergence_with_logits the logits."""
    rng = np.random.default_rng(16)
    if np.dtype(dtype).kind in "biu":
        p = np.eye(4, dtype=dtype)[[0, 1, 2, 3, 1]]               # one-hot rows
        logits = rng.integers(-3, 4, (5, 4)).astype(dtype)
    else:
        p = distributions(rng, (5, 4), -1).astype(dtype)
        logits = (2 * rng.standard_normal((5, 4))).astype(dtype)
    q = distributions(rng, (5, 4), -1).astype(p.dtype if p.dtype.kind == "f" else np.float64)
    tol = dict(rtol=1e-12, atol=1e-15) if compute == np.float64 else dict(rtol=2e-6, atol=2e-7)
    p64 = p.astype(np.float64)
    for name, args, args64 in [
        ("entropy", (p,), (p64,)),
        ("kl_divergence", (p, q), (p64, q)),
        ("js_divergence", (p, q), (p64, q)),
        ("categorical_cross_entropy", (p, q), (p64, q)),
    ]:
        got = call(name, *args, reduction="none")
        assert got.dtype == compute, name
        assert_allclose(got, getattr(reference, name)(*args64, reduction="none"), **tol)
    loss, grad = fastce.kl_divergence_with_logits(p64, logits, reduction="none", return_grad=True)
    assert loss.dtype == compute and grad.dtype == compute
    expected_loss, expected_grad = reference.kl_divergence_with_logits(
        p64, logits.astype(np.float64), reduction="none", return_grad=True)
    assert_allclose(loss, expected_loss, **tol)
    assert_allclose(grad, expected_grad, **tol)


def test_dtype_of_mixed_inputs():
    """p sets the compute dtype of the probability measures, logits that of
    kl_divergence_with_logits (the decision recorded in the reference's docstrings)."""
    p32 = np.full((3, 4), 0.25, dtype=np.float32)
    q64 = np.array([[0.1, 0.2, 0.3, 0.4]] * 3)
    assert fastce.kl_divergence(p32, q64, reduction="none").dtype == np.float32
    assert fastce.kl_divergence(q64, p32, reduction="none").dtype == np.float64
    assert fastce.js_divergence(p32, q64, reduction="none").dtype == np.float32
    assert fastce.categorical_cross_entropy(p32, q64, reduction="none").dtype == np.float32
    loss, grad = fastce.kl_divergence_with_logits(q64, np.zeros((3, 4), np.float32),
                                                  reduction="none", return_grad=True)
    assert loss.dtype == grad.dtype == np.float32
    loss, grad = fastce.kl_divergence_with_logits(p32, np.zeros((3, 4)), reduction="none",
                                                  return_grad=True)
    assert loss.dtype == grad.dtype == np.float64


# ----------------------------------------------------------------------------- edge cases

def test_zero_probability_terms_are_zero():
    p = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    q = np.array([[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    assert_array_equal(fastce.entropy(p), [np.log(2), 0.0, 0.0])
    assert_array_equal(fastce.kl_divergence(p, q, reduction="none"), [0.0, 0.0, 0.0])
    assert_array_equal(fastce.js_divergence(p, q, reduction="none")[:2], [0.0, 0.0])
    assert_allclose(fastce.categorical_cross_entropy(p, q, reduction="none"),
                    [np.log(2), 0.0, 0.0], rtol=1e-15)
    assert not np.any(np.isnan(fastce.js_divergence(p, q, reduction="none")))


def test_kl_is_infinite_where_q_is_zero_below_positive_p():
    p = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [1e-300, 1.0 - 1e-300, 0.0]])
    q = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 1.0, 1.0]])
    rows = fastce.kl_divergence(p, q, reduction="none")
    assert rows[0] == np.inf and rows[2] == np.inf
    assert rows[1] == 0.0
    assert fastce.kl_divergence(p, q, reduction="mean") == np.inf
    assert fastce.kl_divergence(p, q, reduction="sum") == np.inf
    assert_array_equal(rows, scipy.special.rel_entr(p, q).sum(axis=-1))
    # Cross-entropy clamps the log at -100 instead: 0.5 * 100 for the first row.
    assert_allclose(fastce.categorical_cross_entropy(p, q, reduction="none")[0], 50.0, rtol=1e-15)
    # JS never is infinite: m > 0 wherever p > 0.
    js = fastce.js_divergence(p, q, reduction="none")
    assert np.all(np.isfinite(js))


def test_js_of_disjoint_supports_is_log_2():
    p = np.array([[1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    q = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.25, 0.75]])
    assert_allclose(fastce.js_divergence(p, q, reduction="none"), np.log(2), rtol=1e-15)
    assert_allclose(fastce.js_divergence(p, q, base=2, reduction="none"), 1.0, rtol=1e-15)


def test_js_survives_subnormal_probabilities():
    tiny = 5e-324
    p = np.array([[tiny, 1.0 - tiny]])
    q = np.array([[0.0, 1.0]])
    js = fastce.js_divergence(p, q, reduction="none")
    assert np.all(np.isfinite(js)) and np.all(js >= 0) and js[0] < 1e-300


def test_kl_with_logits_masks():
    """-inf logits are masks: with p = 0 they contribute 0 to the loss and the gradient;
    with p > 0 the loss is +inf (and nothing is NaN)."""
    logits = np.array([[1.0, -np.inf, 0.5, -np.inf],
                       [0.0, -np.inf, 2.0, 1.0],
                       [3.0, 1.0, -np.inf, 0.0]])
    p = np.array([[0.7, 0.0, 0.3, 0.0],
                  [0.2, 0.3, 0.4, 0.1],          # mass on a masked class: +inf
                  [0.1, 0.2, 0.0, 0.7]])
    loss, grad = fastce.kl_divergence_with_logits(p, logits, reduction="none", return_grad=True)
    finite_logits = np.array([1.0, 0.5])
    expected_0 = scipy.special.rel_entr(p[0, [0, 2]],
                                        scipy.special.softmax(finite_logits)).sum()
    assert_allclose(loss[0], expected_0, rtol=1e-13)
    assert loss[1] == np.inf
    assert np.isfinite(loss[2])
    assert not np.any(np.isnan(grad))
    assert grad[0, 1] == 0.0 and grad[0, 3] == 0.0 and grad[2, 2] == 0.0
    unmasked_grad = scipy.special.softmax(finite_logits) - p[0, [0, 2]]
    assert_allclose(grad[0, [0, 2]], unmasked_grad, rtol=1e-13)
    assert fastce.kl_divergence_with_logits(p, logits) == np.inf
    assert fastce.kl_divergence_with_logits(p[[0, 2]], logits[[0, 2]]) < np.inf


@pytest.mark.parametrize("name", ["entropy", *PAIR_MEASURES, "kl_divergence_with_logits"])
def test_reductions_and_empty_batches(name):
    rng = np.random.default_rng(17)
    p, q = _pair_inputs(rng, (6, 5), -1, np.float64)
    second = rng.standard_normal((6, 5)) if name == "kl_divergence_with_logits" else q
    args = (p,) if name == "entropy" else (p, second)
    rows = call(name, *args, reduction="none")
    assert_allclose(call(name, *args, reduction="sum"), math.fsum(rows), rtol=1e-14)
    assert_allclose(call(name, *args, reduction="mean"), math.fsum(rows) / 6, rtol=1e-14)
    # A mean over no rows is 0.0 (with a zero gradient); "none" is empty.
    empty = tuple(np.zeros((0, 5)) for _ in args)
    assert call(name, *empty, reduction="mean") == 0.0
    assert call(name, *empty, reduction="sum") == 0.0
    assert call(name, *empty, reduction="none").shape == (0,)
    if name == "kl_divergence_with_logits":
        loss, grad = fastce.kl_divergence_with_logits(*empty, return_grad=True)
        assert loss == 0.0 and grad.shape == (0, 5)


def test_one_dimensional_input_is_one_distribution():
    p = np.array([0.2, 0.3, 0.5])
    q = np.array([0.1, 0.6, 0.3])
    h = fastce.entropy(p)
    assert np.shape(h) == ()
    assert_allclose(float(h), scipy.stats.entropy(p), rtol=1e-14)
    assert_allclose(fastce.kl_divergence(p, q), scipy.stats.entropy(p, q), rtol=1e-14)
    assert_allclose(fastce.kl_divergence(p, q, reduction="sum"), scipy.stats.entropy(p, q),
                    rtol=1e-14)
    assert_allclose(fastce.js_divergence(p, q), jensenshannon(p, q) ** 2, rtol=1e-12)


def test_grad_out_is_filled_and_returned_even_in_place():
    rng = np.random.default_rng(18)
    p = distributions(rng, (8, 5), -1)
    logits = rng.standard_normal((8, 5))
    loss, expected = reference.kl_divergence_with_logits(p, logits, return_grad=True)
    out = np.full_like(logits, np.nan)
    got_loss, grad = fastce.kl_divergence_with_logits(p, logits, return_grad=True, grad_out=out)
    assert grad is out
    assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
    in_place = logits.copy()
    got_loss_2, grad = fastce.kl_divergence_with_logits(p, in_place, return_grad=True,
                                                        grad_out=in_place)
    assert grad is in_place
    assert_allclose(in_place, expected, rtol=1e-12, atol=1e-15)
    assert_allclose([got_loss, got_loss_2], loss, rtol=1e-12)


@pytest.mark.parametrize("name", ["entropy", *PAIR_MEASURES, "kl_divergence_with_logits"])
def test_strided_input_equals_contiguous_copy(name):
    rng = np.random.default_rng(19)
    big_p = np.zeros((10, 12))
    big_p[::2, 1::2] = distributions(rng, (5, 6), 0)
    p = big_p[::2, 1::2]                                     # a strided view
    q = np.asfortranarray(distributions(rng, (5, 6), 0))    # Fortran order
    assert not p.flags.c_contiguous and not q.flags.c_contiguous
    second = np.asfortranarray(rng.standard_normal((5, 6))) if \
        name == "kl_divergence_with_logits" else q
    args = (p,) if name == "entropy" else (p, second)
    got = call(name, *args, axis=0, reduction="none")
    expected = call(name, *(np.ascontiguousarray(a) for a in args), axis=0, reduction="none")
    assert_array_equal(got, expected)


# ----------------------------------------------------------------------------- properties

unit_floats = st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False)


@st.composite
def probability_pairs(draw, normalised=True, min_q=0.0):
    n_rows = draw(st.integers(1, 4))
    n_classes = draw(st.integers(1, 12))
    shape = (n_rows, n_classes)
    p = np.array(draw(st.lists(unit_floats, min_size=n_rows * n_classes,
                               max_size=n_rows * n_classes))).reshape(shape)
    q_floats = st.floats(min_q, 1.0, allow_nan=False, allow_subnormal=False)
    q = np.array(draw(st.lists(q_floats, min_size=n_rows * n_classes,
                               max_size=n_rows * n_classes))).reshape(shape)
    if normalised:
        p[:, 0] += 1e-3
        q[:, 0] += 1e-3
        p /= p.sum(axis=-1, keepdims=True)
        q /= q.sum(axis=-1, keepdims=True)
    if draw(st.booleans()):
        q = np.maximum(p, min_q)           # equal rows (when min_q = 0)
    return p, q


@PROPERTY
@given(probability_pairs(normalised=False, min_q=1e-30))
def test_cross_entropy_is_entropy_plus_kl(pair):
    """H(p, q) = H(p) + KL(p || q) wherever no log q is clamped (q >= 1e-30 here)."""
    p, q = pair
    h_pq = fastce.categorical_cross_entropy(p, q, reduction="none")
    h_p = fastce.entropy(p, reduction="none")
    kl = fastce.kl_divergence(p, q, reduction="none")
    scale = (np.sum(np.abs(scipy.special.xlogy(p, q)), axis=-1)
             + np.sum(scipy.special.entr(p), axis=-1))
    assert np.all(np.abs(h_pq - (h_p + kl)) <= 1e-13 * scale + 1e-300)


@PROPERTY
@given(probability_pairs())
def test_kl_is_nonnegative_zero_only_for_equal_rows_and_above_pinsker(pair):
    p, q = pair
    kl = fastce.kl_divergence(p, q, reduction="none")
    equal = np.all(p == q, axis=-1)
    assert np.all(kl[equal] == 0.0)
    l1 = np.abs(p - q).sum(axis=-1)
    # Gibbs, and Pinsker's KL >= ||p - q||_1^2 / 2, up to the rounding of the normalisation.
    assert np.all(kl >= 0.5 * l1 ** 2 - 1e-14)
    assert np.all(kl[l1 > 1e-6] > 0.0)


@PROPERTY
@given(probability_pairs())
def test_js_lies_between_zero_and_log_2(pair):
    p, q = pair
    js = fastce.js_divergence(p, q, reduction="none")
    assert np.all(js >= -1e-15) and np.all(js <= np.log(2) + 1e-15)
    assert np.all(js[np.all(p == q, axis=-1)] == 0.0)
    js2 = fastce.js_divergence(p, q, base=2, reduction="none")
    assert np.all(js2 <= 1.0 + 1e-15)
    # Symmetric.
    assert_allclose(fastce.js_divergence(q, p, reduction="none"), js, rtol=1e-14, atol=1e-16)


@PROPERTY
@given(st.integers(1, 3000), st.sampled_from([np.float32, np.float64]))
def test_entropy_of_uniform_in_base_2_is_log2_of_classes(n_classes, dtype):
    p = np.full((2, n_classes), 1.0 / n_classes, dtype=dtype)
    h = fastce.entropy(p, base=2)
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    assert_allclose(h, np.log2(n_classes), rtol=rtol, atol=1e-14 if dtype == np.float64 else 2e-7)


@PROPERTY
@given(probability_pairs())
def test_kl_with_logits_equals_kl_of_the_softmax(pair):
    p, q = pair
    q = np.maximum(q, 1e-12)
    logits = np.log(q) + 3.0
    got = fastce.kl_divergence_with_logits(p, logits, reduction="none")
    expected = fastce.kl_divergence(p, scipy.special.softmax(logits, axis=-1), reduction="none")
    assert_allclose(got, expected, rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------------------------- bad input

def _valid(name):
    p = np.full((4, 3), 1 / 3)
    q = np.array([[0.2, 0.3, 0.5]] * 4)
    logits = np.linspace(-2, 2, 12).reshape(4, 3)
    return {"entropy": {"p": p}, "kl_divergence": {"p": p, "q": q},
            "js_divergence": {"p": p, "q": q}, "categorical_cross_entropy": {"p": p, "q": q},
            "kl_divergence_with_logits": {"p": p, "logits": logits}}[name]


def _bad_cases():
    cases = []
    for name in ("entropy", *PAIR_MEASURES, "kl_divergence_with_logits"):
        for argument in [a for a in _valid(name) if a in ("p", "q")]:
            for bad in (-0.1, 1.5, -1e-300, 1.0 + 1e-15, np.nan, np.inf, -np.inf):
                cases.append((name, argument, ("value", bad), ValueError))
            cases.append((name, argument, ("dtype", np.complex128), TypeError))
            cases.append((name, argument, ("dtype", object), TypeError))
        if name != "entropy":
            second = "logits" if name == "kl_divergence_with_logits" else "q"
            cases.append((name, second, ("shape", (4, 4)), ValueError))
            cases.append((name, second, ("shape", (3, 4)), ValueError))
        cases.append((name, "reduction", ("keyword", "avg"), ValueError))
        cases.append((name, "axis", ("keyword", 2), ValueError))
        cases.append((name, "axis", ("keyword", -3), ValueError))
        cases.append((name, "n_threads", ("keyword", 0), ValueError))
        if name not in ("categorical_cross_entropy", "kl_divergence_with_logits"):
            for bad in (0, -2, 1, np.nan, np.inf):
                cases.append((name, "base", ("keyword", bad), ValueError))
    return cases


@pytest.mark.parametrize("name, argument, problem, error", _bad_cases(),
                         ids=lambda v: str(v))
def test_bad_input_raises_naming_the_argument_and_modifies_nothing(name, argument, problem,
                                                                   error):
    inputs = _valid(name)
    kwargs = {}
    kind, value = problem
    if kind == "value":
        inputs[argument] = inputs[argument].copy()
        inputs[argument][2, 1] = value
    elif kind == "dtype":
        inputs[argument] = inputs[argument].astype(value)
    elif kind == "shape":
        inputs[argument] = np.full(value, 0.25)
    else:
        kwargs[argument] = value
    snapshots = {key: np.array(array, copy=True) for key, array in inputs.items()}
    match = word(argument)
    if kind == "shape" and argument == "logits":
        match = rf"{word('p')}|{word('logits')}"       # either of the two may be blamed
    with pytest.raises(error, match=match):
        call(name, *inputs.values(), **kwargs)
    for key, array in inputs.items():
        if array.dtype != object:
            assert_array_equal(array, snapshots[key])


def test_kl_with_logits_bad_grad_out():
    p, logits = _valid("kl_divergence_with_logits").values()
    for bad in (np.zeros((4, 4)), np.zeros((4, 3), np.float32), np.zeros((3, 4)).T,
                np.zeros((4, 6))[:, ::2]):
        with pytest.raises(ValueError, match=word("grad_out")):
            fastce.kl_divergence_with_logits(p, logits, return_grad=True, grad_out=bad)


def test_valid_calls_modify_no_input():
    rng = np.random.default_rng(20)
    p, q = _pair_inputs(rng, (6, 5), -1, np.float64)
    logits = rng.standard_normal((6, 5))
    snapshots = [a.copy() for a in (p, q, logits)]
    for reduction in REDUCTIONS:
        fastce.entropy(p, reduction=reduction)
        fastce.kl_divergence(p, q, reduction=reduction)
        fastce.js_divergence(p, q, reduction=reduction)
        fastce.categorical_cross_entropy(p, q, reduction=reduction)
        fastce.kl_divergence_with_logits(p, logits, reduction=reduction, return_grad=True)
    for array, snapshot in zip((p, q, logits), snapshots):
        assert_array_equal(array, snapshot)


# ----------------------------------------------------------------------------- determinism

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("axis", [-1, 0])
def test_bitwise_deterministic_across_thread_counts(dtype, axis):
    rng = np.random.default_rng(21)
    shape = (2000, 300) if axis == -1 else (300, 2000)
    p = rng.dirichlet(np.ones(300), size=2000).astype(dtype)
    q = rng.dirichlet(np.ones(300), size=2000).astype(dtype)
    logits = (3 * rng.standard_normal((2000, 300))).astype(dtype)
    if axis == 0:
        p, q, logits = p.T.copy(), q.T.copy(), logits.T.copy()
    assert p.shape == shape
    runs = []
    for n_threads in (1, 2, 2):
        results = []
        for reduction in REDUCTIONS:
            kw = dict(axis=axis, reduction=reduction, n_threads=n_threads)
            results.append(fastce.entropy(p, **kw))
            results.append(fastce.kl_divergence(p, q, **kw))
            results.append(fastce.js_divergence(p, q, **kw))
            results.append(fastce.categorical_cross_entropy(p, q, **kw))
            results.extend(fastce.kl_divergence_with_logits(p, logits, return_grad=True, **kw))
        runs.append(results)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert_array_equal(np.asarray(a), np.asarray(b), strict=True)
