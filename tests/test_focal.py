"""sigmoid_focal_loss (the contract, "Binary family"): torchvision.ops.sigmoid_focal_loss's
semantics, computed in log space, with a closed-form gradient.

Oracles:
- torchvision's formula written out in float64 NumPy (torchvision itself is not a
  dependency), the naive form, on moderate logits |z| <= 20 where it is accurate to
  about 1e-7 (1 - p_t loses digits as p_t -> 1);
- the same formula in PyTorch for its autograd gradient, where torch is installed;
- fastce.reference and binary_cross_entropy_with_logits (gamma = 0, alpha < 0);
- central finite differences for the gradient;
- mpmath at 50 digits for the accuracy contract.
"""
import math

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit

import fastce
from fastce import reference

from conftest import FLOAT_DTYPES, REDUCTIONS, tolerances, word

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
    """SPEC: finite and NaN-free for *every* finite logit, the largest ones included."""
    big = np.finfo(dtype).max
    logits = np.repeat(np.array([big, -big, big / 2, -big / 2], dtype=dtype)[:, None], 3, axis=1)
    target = np.broadcast_to(np.array([0.0, 1.0, 0.5]), logits.shape).copy()
    loss, grad = fastce.sigmoid_focal_loss(logits, target, gamma=gamma, reduction="none",
                                           return_grad=True)
    # loss <= BCE <= |z| and |grad| <= 1: both representable.
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert np.all(loss >= 0)


def test_infinite_logits_give_the_limits():
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


def test_empty_batch():
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
