"""Tests of fastce.softmax_losses (the softmax family): cross_entropy, log_softmax,
softmax, logsumexp. Sections at the end: a class axis that is not the last, long rows
(the split-row kernels) and property tests (hypothesis).

Oracles, from the loosest to the strictest:
- fastce.reference, the executable spec;
- scipy.special for the building blocks;
- torch.nn.functional.cross_entropy where PyTorch is installed (those tests only);
- central finite differences for every gradient;
- an mpmath oracle at 50 digits for the accuracy contract ("Numerics").
"""
import numpy as np
import pytest
import scipy.special
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import fastce
from fastce import reference

from conftest import FLOAT_DTYPES, LABEL_DTYPES, REDUCTIONS, numerical_gradient, total

# Two implementations of the same formula, in the same compute dtype.
LOOSE = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
# fastce against PyTorch: float32 kernels differ in summation order.
TORCH = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


# ----------------------------------------------------------------------------- helpers

def _scalar_loss(value):
    """A scalar loss is a Python float (numpy.float64 is one)."""
    assert isinstance(value, float), type(value)
    return float(value)


def _compare(got, expected, tol):
    """Loss (scalar or per sample) and gradient, both in one call."""
    got_loss, got_grad = got
    exp_loss, exp_grad = expected
    if np.ndim(exp_loss) == 0 and not isinstance(exp_loss, np.ndarray):
        assert_allclose(_scalar_loss(got_loss), exp_loss, **tol)
    else:
        assert np.shape(got_loss) == np.shape(exp_loss)
        assert_allclose(got_loss, exp_loss, **tol)
    assert got_grad.shape == exp_grad.shape
    assert got_grad.dtype == exp_grad.dtype
    assert_allclose(got_grad, exp_grad, **tol)


INT_CASES = (
    "plain", "weight", "weight_with_zero", "ignore", "ignore_index_in_range",
    "smoothing", "smoothing_weight", "smoothing_weight_ignore", "full_smoothing",
)
PROB_CASES = (
    "prob", "prob_unnormalised", "prob_weight", "prob_smoothing", "prob_weight_smoothing",
)
ALL_CASES = INT_CASES + PROB_CASES


def make_case(case, dtype=np.float64, shape=(16, 7), class_axis=-1, seed=0, scale=3.0):
    """Logits, target and keywords for one named configuration.

    shape is the logits' shape; class_axis is where the classes are.
    """
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(shape) * scale).astype(dtype)
    n_classes = shape[class_axis]
    kwargs = {}
    if "weight" in case:
        weight = rng.uniform(0.2, 2.0, n_classes)
        if case == "weight_with_zero":
            weight[1] = 0.0
        kwargs["weight"] = weight.astype(dtype)
    if "smoothing" in case:
        kwargs["label_smoothing"] = 1.0 if case == "full_smoothing" else 0.15
    if case.startswith("prob"):
        target = rng.uniform(0.0, 1.0, shape)
        if case != "prob_unnormalised":
            target /= target.sum(axis=class_axis, keepdims=True)
        return logits, target.astype(dtype), kwargs
    sample_shape = tuple(np.delete(np.array(shape), class_axis % len(shape)))
    target = rng.integers(0, n_classes, sample_shape)
    if "ignore" in case:
        if case == "ignore_index_in_range":
            kwargs["ignore_index"] = 1
            target.flat[::3] = 1
        else:
            target.flat[rng.random(target.size) < 0.3] = -100
        target.flat[0] = 0   # never all ignored
    return logits, target, kwargs


def _fastce(logits, target, reduction, **kwargs):
    return fastce.cross_entropy(logits, target, reduction=reduction, return_grad=True, **kwargs)


def _reference(logits, target, reduction, **kwargs):
    return reference.cross_entropy(logits, target, reduction=reduction, return_grad=True, **kwargs)


def _torch_cross_entropy(logits, target, reduction, weight=None, ignore_index=-100,
                         label_smoothing=0.0):
    """torch's loss and the gradient of the returned loss (of its sum for "none")."""
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(np.array(logits)).requires_grad_(True)
    if np.asarray(target).dtype.kind == "f":
        t = torch.from_numpy(np.array(target))
    else:
        t = torch.from_numpy(np.array(target, dtype=np.int64))
    w = None if weight is None else torch.from_numpy(np.array(weight, dtype=logits.dtype))
    loss = torch.nn.functional.cross_entropy(
        x, t, weight=w, ignore_index=ignore_index, reduction=reduction,
        label_smoothing=label_smoothing)
    (loss.sum() if reduction == "none" else loss).backward()
    loss = loss.detach().numpy()
    if reduction != "none":
        loss = float(loss)
    return loss, x.grad.numpy()


# ----------------------------------------------------------------------------- reference

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", ALL_CASES)
def test_cross_entropy_matches_reference(case, dtype, reduction):
    logits, target, kwargs = make_case(case, dtype)
    _compare(_fastce(logits, target, reduction, **kwargs),
             _reference(logits, target, reduction, **kwargs), LOOSE[dtype])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ("plain", "smoothing_weight_ignore", "prob_weight_smoothing"))
def test_cross_entropy_without_return_grad_matches_reference(case, reduction):
    logits, target, kwargs = make_case(case)
    got = fastce.cross_entropy(logits, target, reduction=reduction, **kwargs)
    expected = reference.cross_entropy(logits, target, reduction=reduction, **kwargs)
    if reduction == "none":
        assert got.dtype == np.float64 and got.shape == expected.shape
        assert_allclose(got, expected, **LOOSE[np.float64])
    else:
        assert_allclose(_scalar_loss(got), expected, **LOOSE[np.float64])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ("plain", "smoothing_weight_ignore", "prob_weight_smoothing"))
@pytest.mark.parametrize("shape,axis", [
    ((7, 16), 0), ((16, 7), -1), ((16, 7), 1),
    ((4, 7, 5), 1), ((7, 4, 5), 0), ((4, 5, 7), 2), ((4, 5, 7), -1), ((4, 7, 5), -2),
])
def test_cross_entropy_axis_matches_reference(shape, axis, case, reduction):
    logits, target, kwargs = make_case(case, shape=shape, class_axis=axis)
    got = _fastce(logits, target, reduction, axis=axis, **kwargs)
    _compare(got, _reference(logits, target, reduction, axis=axis, **kwargs),
             LOOSE[np.float64])
    # The same problem with the classes moved last.
    moved_target = target if target.dtype.kind != "f" else np.moveaxis(target, axis, -1)
    loss, grad = _fastce(np.moveaxis(logits, axis, -1), moved_target, reduction, **kwargs)
    _compare(got, (loss, np.moveaxis(grad, -1, axis)), LOOSE[np.float64])


@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_building_blocks_match_scipy(dtype, axis):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((9, 13)) * 4).astype(dtype)
    tol = LOOSE[dtype]
    expected_lse = scipy.special.logsumexp(x.astype(np.float64), axis=axis)
    expected_log_softmax = scipy.special.log_softmax(x.astype(np.float64), axis=axis)
    expected_softmax = scipy.special.softmax(x.astype(np.float64), axis=axis)
    lse = fastce.logsumexp(x, axis=axis)
    log_probs = fastce.log_softmax(x, axis=axis)
    probs = fastce.softmax(x, axis=axis)
    for got, expected in ((lse, expected_lse), (log_probs, expected_log_softmax),
                          (probs, expected_softmax)):
        assert got.dtype == dtype
        assert got.shape == expected.shape
        assert_allclose(got, expected, **tol)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_building_blocks_3d_match_scipy_and_reference(axis):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 5)) * 5
    x[0, 0, 0] = -np.inf
    for name, expected in (("logsumexp", scipy.special.logsumexp(x, axis=axis)),
                           ("log_softmax", scipy.special.log_softmax(x, axis=axis)),
                           ("softmax", scipy.special.softmax(x, axis=axis))):
        got = getattr(fastce, name)(x, axis=axis)
        assert_allclose(got, expected, rtol=1e-13, atol=1e-15)
        assert_allclose(got, getattr(reference, name)(x, axis=axis), rtol=1e-13, atol=1e-15)


# ----------------------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", ALL_CASES)
def test_cross_entropy_matches_torch(case, dtype, reduction):
    logits, target, kwargs = make_case(case, dtype)
    expected = _torch_cross_entropy(logits, target, reduction, **kwargs)
    _compare(_fastce(logits, target, reduction, **kwargs), expected, TORCH[dtype])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("case", ALL_CASES)
def test_cross_entropy_spatial_axis1_matches_torch(case, dtype, reduction):
    """(N, C, d1) input with the classes on axis 1, torch's layout."""
    logits, target, kwargs = make_case(case, dtype, shape=(5, 6, 4), class_axis=1, seed=3)
    expected = _torch_cross_entropy(logits, target, reduction, **kwargs)
    _compare(_fastce(logits, target, reduction, axis=1, **kwargs), expected, TORCH[dtype])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ("plain", "smoothing_weight_ignore", "prob_weight_smoothing"))
def test_cross_entropy_2d_axis1_matches_torch(case, reduction):
    logits, target, kwargs = make_case(case, np.float64, seed=4)
    expected = _torch_cross_entropy(logits, target, reduction, **kwargs)
    _compare(_fastce(logits, target, reduction, axis=1, **kwargs), expected,
             TORCH[np.float64])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ("plain", "smoothing_weight", "prob_weight_smoothing"))
def test_cross_entropy_unbatched_matches_torch(case, reduction):
    """1-D logits (C,) with a 0-d target (or a (C,) probability target)."""
    logits, target, kwargs = make_case(case, np.float64, shape=(1, 6), seed=5)
    logits, target = logits[0], target[0]
    expected = _torch_cross_entropy(logits, target, reduction, **kwargs)
    _compare(_fastce(logits, target, reduction, **kwargs), expected, TORCH[np.float64])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("use_weight", [False, True])
def test_cross_entropy_masked_logits_match_torch(use_weight, reduction):
    """-inf masks on non-target classes: finite loss, zero gradient there."""
    logits, target, kwargs = make_case("weight" if use_weight else "plain", seed=6)
    masked = np.zeros(logits.shape, dtype=bool)
    masked[::2, 2] = True
    masked[1::4, 5] = True
    masked[np.arange(len(target)), target] = False
    logits[masked] = -np.inf
    expected = _torch_cross_entropy(logits, target, reduction, **kwargs)
    got = _fastce(logits, target, reduction, **kwargs)
    _compare(got, expected, TORCH[np.float64])
    assert np.all(np.isfinite(got[0]))
    assert np.all(got[1][masked] == 0)


# ----------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ALL_CASES)
def test_cross_entropy_gradient_finite_differences(case, reduction):
    logits, target, kwargs = make_case(case, shape=(6, 5), seed=7, scale=2.0)
    loss, grad = _fastce(logits, target, reduction, **kwargs)
    numeric = numerical_gradient(
        lambda x: total(fastce.cross_entropy(x, target, reduction=reduction, **kwargs)), logits)
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    if "ignore" in case and case != "ignore_index_in_range":
        ignored = target == -100
        assert np.all(grad[ignored] == 0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ("smoothing_weight_ignore", "prob_weight_smoothing"))
@pytest.mark.parametrize("shape,axis", [((5, 4), 0), ((3, 4, 2), 1), ((2, 3, 4), 2)])
def test_cross_entropy_gradient_finite_differences_axis(shape, axis, case, reduction):
    logits, target, kwargs = make_case(case, shape=shape, class_axis=axis, seed=8)
    loss, grad = _fastce(logits, target, reduction, axis=axis, **kwargs)
    numeric = numerical_gradient(
        lambda x: total(fastce.cross_entropy(x, target, reduction=reduction, axis=axis,
                                              **kwargs)), logits)
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_cross_entropy_gradient_finite_differences_unbatched():
    logits = np.array([0.3, -1.2, 2.0, 0.5])
    target = np.array(2)
    kwargs = dict(weight=np.array([1.0, 2.0, 0.5, 1.5]), label_smoothing=0.2)
    loss, grad = _fastce(logits, target, "mean", **kwargs)
    assert grad.shape == logits.shape
    numeric = numerical_gradient(
        lambda x: total(fastce.cross_entropy(x, target, **kwargs)), logits)
    assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_cross_entropy_gradient_formula_with_smoothing_and_weights():
    """Contract: g_c = s_n·[(1−ε)·w_y·(p_c − [c=y]) + (ε/C)·(W·p_c − w_c)]."""
    logits, target, kwargs = make_case("smoothing_weight_ignore", seed=9)
    weight, eps = kwargs["weight"], kwargs["label_smoothing"]
    n_classes = logits.shape[1]
    loss, grad = _fastce(logits, target, "mean", **kwargs)
    valid = target != -100
    safe_target = np.where(valid, target, 0)
    probs = scipy.special.softmax(logits, axis=1)
    onehot = np.eye(n_classes)[safe_target]
    w_y = weight[safe_target][:, None]
    scale = 1.0 / weight[safe_target][valid].sum()
    expected = scale * ((1 - eps) * w_y * (probs - onehot)
                        + eps / n_classes * (weight.sum() * probs - weight))
    expected[~valid] = 0.0
    assert_allclose(grad, expected, rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------- edge cases

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_extreme_logits_float32(reduction):
    logits = np.array([[1e4, -1e4, 0.0],
                       [-1e4, 1e4, 1e4 - 1],
                       [1e4, 1e4, 1e4],
                       [-1e4, -1e4 + 2, -1e4 + 5]], dtype=np.float32)
    target = np.array([1, 2, 0, 0])
    loss, grad = _fastce(logits, target, reduction)
    exp_loss, exp_grad = _reference(logits.astype(np.float64), target, reduction)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert grad.dtype == np.float32
    assert_allclose(loss, exp_loss, rtol=2e-6, atol=2e-7)
    assert_allclose(grad, exp_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_extreme_logits_float64(reduction):
    big = 1e300
    logits = np.array([[big, -big, 0.0],
                       [-big, big, big],
                       [big, big, -big],
                       [-big, -big, -big]])
    target = np.array([1, 2, 0, 2])
    losses = np.array([2 * big, np.log(2), np.log(2), np.log(3)])
    grads = np.array([[1.0, -1.0, 0.0],
                      [0.0, 0.5, -0.5],
                      [-0.5, 0.5, 0.0],
                      [1 / 3, 1 / 3, -2 / 3]])
    loss, grad = _fastce(logits, target, reduction)
    if reduction == "none":
        assert_allclose(loss, losses, rtol=1e-14)
    elif reduction == "sum":
        assert_allclose(_scalar_loss(loss), losses.sum(), rtol=1e-14)
    else:
        assert_allclose(_scalar_loss(loss), losses.sum() / 4, rtol=1e-14)
        grads = grads / 4
    assert_allclose(grad, grads, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("dtype,big", [(np.float32, 1e4), (np.float64, 1e300)])
def test_extreme_logits_building_blocks(dtype, big):
    x = np.array([[big, big], [big, -big], [-big, -big], [-big, big]], dtype=dtype)
    half = np.float64(0.5)
    assert_allclose(fastce.softmax(x), [[half, half], [1, 0], [half, half], [0, 1]],
                    rtol=1e-6, atol=0)
    expected_log_softmax = [[-np.log(2)] * 2, [0, -2.0 * big], [-np.log(2)] * 2, [-2.0 * big, 0]]
    assert_allclose(fastce.log_softmax(x), expected_log_softmax, rtol=1e-6, atol=0)
    expected_lse = np.array([big + np.log(2), big, -big + np.log(2), big])
    assert_allclose(fastce.logsumexp(x), expected_lse.astype(dtype), rtol=1e-7, atol=0)


def test_masked_non_target_classes():
    """-inf logits are masks: finite loss, zero probability, zero gradient, no NaN."""
    rng = np.random.default_rng(10)
    logits = rng.standard_normal((6, 5)) * 2
    target = np.array([0, 1, 2, 3, 4, 0])
    weight = np.array([1.0, 2.0, 0.5, 1.5, 1.0])
    masked = np.zeros(logits.shape, dtype=bool)
    masked[0, [1, 2]] = True
    masked[1, 4] = True
    masked[3, [0, 1, 2, 4]] = True     # only the target left: loss 0, gradient 0
    masked[5, 1:] = True
    logits[masked] = -np.inf

    expected_loss = np.zeros(6)
    expected_grad = np.zeros_like(logits)
    for n in range(6):
        keep = ~masked[n]
        log_probs = scipy.special.log_softmax(logits[n, keep])
        y = np.flatnonzero(keep).tolist().index(target[n])
        expected_loss[n] = -weight[target[n]] * log_probs[y]
        row = np.exp(log_probs)
        row[y] -= 1
        expected_grad[n, keep] = weight[target[n]] * row

    loss, grad = _fastce(logits, target, "none", weight=weight)
    assert np.all(np.isfinite(loss)) and not np.any(np.isnan(grad))
    assert loss[3] == 0 and loss[5] == 0
    assert np.all(grad[masked] == 0)
    assert np.all(grad[3] == 0)
    assert_allclose(loss, expected_loss, rtol=1e-13, atol=1e-15)
    assert_allclose(grad, expected_grad, rtol=1e-13, atol=1e-15)

    mean_loss, mean_grad = _fastce(logits, target, "mean", weight=weight)
    total_weight = weight[target].sum()
    assert_allclose(_scalar_loss(mean_loss), expected_loss.sum() / total_weight, rtol=1e-13)
    assert_allclose(mean_grad, expected_grad / total_weight, rtol=1e-13, atol=1e-15)

    probs = fastce.softmax(logits)
    log_probs = fastce.log_softmax(logits)
    assert np.all(probs[masked] == 0)
    assert np.all(log_probs[masked] == -np.inf)
    assert not np.any(np.isnan(probs)) and not np.any(np.isnan(log_probs))
    assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-14)
    assert np.all(np.isfinite(fastce.logsumexp(logits)))


def _assert_inf_rows(loss, grad, reduction, inf_rows, row_1, rtol):
    """The samples `inf_rows` put target mass on a masked class: their loss is +inf, and so
    is every reduction; sample 1 is finite and equals `row_1`. No gradient is NaN."""
    if reduction == "none":
        assert np.all(loss[inf_rows] == np.inf)
        assert np.isfinite(loss[1])
        assert_allclose(loss[1], row_1, rtol=rtol)
    else:
        assert _scalar_loss(loss) == np.inf
    assert not np.any(np.isnan(grad))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_masked_target_class_gives_inf(reduction, dtype):
    logits = np.array([[0.5, -np.inf, 1.0], [0.1, 0.2, 0.3], [1.0, 2.0, -np.inf]], dtype=dtype)
    target = np.array([1, 0, 2])
    loss, grad = _fastce(logits, target, reduction)
    row_1 = -scipy.special.log_softmax(logits[1].astype(np.float64))[0]
    _assert_inf_rows(loss, grad, reduction, [0, 2], row_1, rtol=1e-6)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_smoothing_with_masked_class_gives_inf(reduction):
    """label_smoothing > 0 puts target mass on a masked class: +inf (torch agrees)."""
    logits = np.array([[0.5, -np.inf, 1.0], [0.1, 0.2, 0.3]])
    target = np.array([0, 2])
    loss, grad = _fastce(logits, target, reduction, label_smoothing=0.1)
    row_1 = reference.cross_entropy(logits[1:], target[1:], label_smoothing=0.1,
                                    reduction="none")[0]
    _assert_inf_rows(loss, grad, reduction, [0], row_1, rtol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_smoothing_with_masked_zero_weight_class_is_finite(reduction):
    """A zero class weight makes its term exactly 0, even where it would be inf."""
    logits = np.array([[0.5, -np.inf, 1.0], [0.1, 0.2, 0.3]])
    target = np.array([0, 2])
    weight = np.array([1.0, 0.0, 2.0])
    loss, grad = _fastce(logits, target, reduction, weight=weight, label_smoothing=0.1)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    # The smoothing term by hand, over the unmasked classes.
    eps, n_classes = 0.1, 3
    expected = []
    for n in range(2):
        keep = np.isfinite(logits[n])
        nll = np.full(3, 0.0)
        nll[keep] = -scipy.special.log_softmax(logits[n, keep])
        smooth = sum(weight[c] * nll[c] for c in range(3) if keep[c])
        expected.append((1 - eps) * weight[target[n]] * nll[target[n]] + eps / n_classes * smooth)
    expected = np.array(expected)
    if reduction == "none":
        assert_allclose(loss, expected, rtol=1e-13)
    elif reduction == "sum":
        assert_allclose(_scalar_loss(loss), expected.sum(), rtol=1e-13)
    else:
        assert_allclose(_scalar_loss(loss), expected.sum() / weight[target].sum(), rtol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_minus_inf_row_gives_nan(reduction):
    logits = np.array([[0.5, 0.1, 1.0], [-np.inf, -np.inf, -np.inf], [0.1, 0.2, 0.3]])
    target = np.array([0, 1, 2])
    loss, grad = _fastce(logits, target, reduction)
    clean = logits.copy()
    clean[1] = 0.0
    clean_loss, clean_grad = _fastce(clean, target, reduction)
    if reduction == "none":
        assert np.isnan(loss[1])
        assert_allclose(loss[[0, 2]], clean_loss[[0, 2]], rtol=1e-15)
    else:
        assert np.isnan(_scalar_loss(loss))
    assert_allclose(grad[[0, 2]], clean_grad[[0, 2]], rtol=1e-15, atol=0)
    # The building blocks: no distribution in that row.
    assert np.all(np.isnan(fastce.softmax(logits)[1]))
    assert np.all(np.isnan(fastce.log_softmax(logits)[1]))
    assert fastce.logsumexp(logits)[1] == -np.inf


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("bad", ["nan_row", "one_nan", "minus_inf_row", "plus_inf"])
@pytest.mark.parametrize("kwargs", [{}, {"weight": np.array([1.0, 2.0, 0.5, 3.0]),
                                         "label_smoothing": 0.2}], ids=["plain", "smoothing"])
def test_ignored_row_contributes_exactly_zero(kwargs, bad, reduction):
    rng = np.random.default_rng(11)
    clean = rng.standard_normal((5, 4))
    target = np.array([0, -100, 3, 2, -100])
    logits = clean.copy()
    if bad == "nan_row":
        logits[1] = np.nan
    elif bad == "one_nan":
        logits[1, 2] = np.nan
    elif bad == "minus_inf_row":
        logits[1] = -np.inf
    else:
        logits[1, 0] = np.inf
    logits[4] = -np.inf
    loss, grad = _fastce(logits, target, reduction, **kwargs)
    clean_loss, clean_grad = _fastce(clean, target, reduction, **kwargs)
    assert np.all(grad[[1, 4]] == 0)
    assert not np.any(np.isnan(grad))
    if reduction == "none":
        assert loss[1] == 0 and loss[4] == 0
        assert_allclose(loss, clean_loss, rtol=1e-15, atol=0)
    else:
        assert_allclose(_scalar_loss(loss), clean_loss, rtol=1e-14, atol=0)
    assert_allclose(grad, clean_grad, rtol=1e-14, atol=0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("where", ["non_target", "target"])
def test_nan_logit_stays_in_its_row(where, reduction):
    rng = np.random.default_rng(12)
    clean = rng.standard_normal((5, 4))
    target = np.array([0, 1, 3, 2, 1])
    logits = clean.copy()
    logits[2, 3 if where == "target" else 0] = np.nan
    loss, grad = _fastce(logits, target, reduction)
    clean_loss, clean_grad = _fastce(clean, target, reduction)
    others = [0, 1, 3, 4]
    if reduction == "none":
        assert np.isnan(loss[2])
        assert_allclose(loss[others], clean_loss[others], rtol=1e-15, atol=0)
    else:
        assert np.isnan(_scalar_loss(loss))
    assert np.all(np.isnan(grad[2]))
    assert_allclose(grad[others], clean_grad[others], rtol=1e-15, atol=0)
    probs = fastce.softmax(logits)
    assert np.all(np.isnan(probs[2])) and not np.any(np.isnan(probs[others]))
    lse = fastce.logsumexp(logits)
    assert np.isnan(lse[2]) and not np.any(np.isnan(lse[others]))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_all_ignored(label_smoothing, dtype):
    logits = np.array([[0.5, np.nan, 1.0], [-np.inf, -np.inf, -np.inf]], dtype=dtype)
    target = np.array([-100, -100])
    kwargs = dict(label_smoothing=label_smoothing)
    for reduction in ("mean", "sum"):
        loss, grad = _fastce(logits, target, reduction, **kwargs)
        assert _scalar_loss(loss) == 0.0
        assert grad.dtype == dtype and np.all(grad == 0)
        assert _scalar_loss(fastce.cross_entropy(logits, target, reduction=reduction,
                                                 **kwargs)) == 0.0
    loss, grad = _fastce(logits, target, "none", **kwargs)
    assert loss.dtype == dtype and loss.shape == (2,) and np.all(loss == 0)
    assert np.all(grad == 0)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_zero_total_weight_mean(label_smoothing):
    """Every target's class has weight 0: the mean is over nothing, so 0.0."""
    rng = np.random.default_rng(13)
    logits = rng.standard_normal((4, 3))
    target = np.array([1, 1, -100, 1])
    weight = np.array([1.0, 0.0, 2.0])
    loss, grad = _fastce(logits, target, "mean", weight=weight, label_smoothing=label_smoothing)
    assert _scalar_loss(loss) == 0.0
    assert np.all(grad == 0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("target_kind", ["int", "prob"])
def test_empty_batch(target_kind, dtype):
    logits = np.zeros((0, 5), dtype=dtype)
    target = np.zeros(0, dtype=np.int64) if target_kind == "int" else np.zeros((0, 5), dtype)
    for reduction in ("mean", "sum"):
        loss, grad = _fastce(logits, target, reduction)
        assert _scalar_loss(loss) == 0.0
        assert grad.shape == (0, 5) and grad.dtype == dtype
        assert _scalar_loss(fastce.cross_entropy(logits, target, reduction=reduction)) == 0.0
    loss, grad = _fastce(logits, target, "none")
    assert loss.shape == (0,) and loss.dtype == dtype
    assert grad.shape == (0, 5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ("plain", "smoothing_weight", "prob_weight_smoothing"))
def test_unbatched_equals_batch_of_one(case, reduction):
    logits, target, kwargs = make_case(case, shape=(1, 6), seed=14)
    loss, grad = _fastce(logits[0], target[0], reduction, **kwargs)
    batch_loss, batch_grad = _fastce(logits, target, reduction, **kwargs)
    assert grad.shape == (6,)
    assert_allclose(grad, batch_grad[0], rtol=1e-15, atol=0)
    if reduction == "none":
        assert np.shape(loss) == ()
        assert_allclose(loss, batch_loss[0], rtol=1e-15)
    else:
        assert_allclose(_scalar_loss(loss), batch_loss, rtol=1e-15)


# ----------------------------------------------------------------------------- building blocks

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logsumexp_all_minus_inf_row(dtype):
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]], dtype=dtype)
    lse = fastce.logsumexp(x)
    assert lse[0] == -np.inf
    assert lse[1] == 0.0
    assert fastce.logsumexp(x[0]) == -np.inf


@pytest.mark.parametrize("dtype", (np.float16, np.float32, np.float64, np.int64))
def test_logsumexp_scalar_result(dtype):
    x = np.array([1, 2, 3], dtype=dtype)
    lse = fastce.logsumexp(x)
    compute = np.float32 if dtype == np.float16 else (np.float64 if dtype == np.int64 else dtype)
    assert np.ndim(lse) == 0
    assert np.asarray(lse).dtype == compute
    assert_allclose(lse, scipy.special.logsumexp([1.0, 2.0, 3.0]), rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_rows_sum_to_one(axis, dtype):
    rng = np.random.default_rng(15)
    x = (rng.standard_normal((30, 17)) * 10).astype(dtype)
    probs = fastce.softmax(x, axis=axis)
    assert probs.dtype == dtype
    assert np.all(probs >= 0) and np.all(probs <= 1)
    assert_allclose(probs.sum(axis=axis), 1.0, rtol=30 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_log_softmax_is_x_minus_logsumexp(axis, dtype):
    rng = np.random.default_rng(16)
    x = (rng.standard_normal((6, 7, 8)) * 5).astype(dtype)
    log_probs = fastce.log_softmax(x, axis=axis)
    lse = fastce.logsumexp(x, axis=axis)
    assert lse.shape == tuple(np.delete(np.array(x.shape), axis))
    expected = x - np.expand_dims(lse, axis)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    assert_allclose(log_probs, expected, **tol)
    assert np.all(log_probs <= 0)
    assert_allclose(np.exp(log_probs.astype(np.float64)), fastce.softmax(x, axis=axis),
                    **(dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else
                       dict(rtol=1e-13, atol=1e-16)))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, -1])
def test_out_argument(axis, name, dtype):
    rng = np.random.default_rng(17)
    x = (rng.standard_normal((5, 6)) * 3).astype(dtype)
    before = x.copy()
    function = getattr(fastce, name)
    out = np.full(x.shape, np.nan, dtype=dtype)
    result = function(x, axis=axis, out=out)
    assert result is out
    assert_array_equal(out, function(x, axis=axis))
    assert_array_equal(x, before)


def test_out_argument_in_place():
    """out may be the input itself."""
    rng = np.random.default_rng(18)
    x = rng.standard_normal((5, 6))
    for name in ("softmax", "log_softmax"):
        expected = getattr(fastce, name)(x)
        buffer = x.copy()
        assert getattr(fastce, name)(buffer, out=buffer) is buffer
        assert_allclose(buffer, expected, rtol=1e-15, atol=0)


# ----------------------------------------------------------------------------- accuracy (mpmath)

def _mp():
    mpmath = pytest.importorskip("mpmath")
    return mpmath.mp


def _mp_nll(row, y):
    """lse(row) − row[y] = log1p(Σ_{c≠y} exp(row_c − row_y)), to 50 digits."""
    mp = _mp()
    with mp.workdps(50):
        z_y = mp.mpf(float(row[y]))
        rest = mp.fsum(mp.exp(mp.mpf(float(v)) - z_y) for c, v in enumerate(row) if c != y)
        return mp.log1p(rest)


def _mp_logsumexp(row):
    """(lse, row max), to 50 digits."""
    mp = _mp()
    top = int(np.argmax(row))
    with mp.workdps(50):
        return mp.mpf(float(row[top])) + _mp_nll(row, top), mp.mpf(float(row[top]))


def _accuracy_failures(got, exact, dtype, scale=None):
    """Entries outside the accuracy bounds (README, Accuracy).

    float64: relative error <= 1e-13 (results below the smallest normal number cannot be
    relative-accurate, so an absolute error of that size is accepted there).
    float32: relative <= 2e-6, or absolute <= 2e-7 when |exact| < 0.1.
    scale replaces |exact| in the relative bound (logsumexp, see its test).
    """
    mp = _mp()
    failures = []
    for index, (value, truth) in enumerate(zip(np.ravel(got), exact)):
        with mp.workdps(50):
            size = abs(truth) if scale is None else scale[index]
            if not np.isfinite(value):
                failures.append((index, float(value), float(truth)))
                continue
            error = abs(mp.mpf(float(value)) - truth)
            if dtype == np.float64:
                ok = error <= 1e-13 * size or error <= np.finfo(np.float64).tiny
            else:
                ok = error <= 2e-6 * size or (abs(truth) < 0.1 and error <= 2e-7)
        if not ok:
            failures.append((index, float(value), float(truth)))
    return failures


def _accuracy_rows(dtype):
    """(logits, target) batches: random rows and the hard cases."""
    rng = np.random.default_rng(19)
    batches = []
    for scale in (1.0, 20.0, 1e4):
        for n_classes in (2, 5, 17, 40):
            logits = rng.uniform(-scale, scale, (12, n_classes))
            batches.append((logits, rng.integers(0, n_classes, 12)))
    # target is the argmax by a gap: tiny losses, which need log1p.
    for n_classes in (2, 3, 10, 32):
        logits = rng.uniform(-1, 1, (16, n_classes))
        target = rng.integers(0, n_classes, 16)
        gap = rng.uniform(0, 60, 16)
        logits[np.arange(16), target] = logits.max(axis=1) + gap
        batches.append((logits, target))
    # Large offsets with small differences.
    for offset in (1e4, -1e4):
        logits = offset + rng.standard_normal((16, 6)) * 3
        batches.append((logits, rng.integers(0, 6, 16)))
    hard = [
        ([0.0, -25.0, -30.0], 0),        # loss ~1.4e-11
        ([0.0, -40.0], 0),
        ([0.0, -100.0, -100.0], 0),
        ([0.0, -700.0], 0),
        ([0.0, -25.0, -30.0], 2),
        ([1e4, 1e4 - 30, 1e4 - 35], 0),
        ([1e4, 1e4 - 1], 1),
        ([1e4, 1e4 - 1], 0),
        ([1e4, 1e4], 0),
        ([1e4, -1e4], 1),
        ([1e4, -1e4], 0),
        ([-1e4, -1e4 - 20, -1e4 + 0.5], 2),
    ]
    if dtype == np.float64:
        big = 1e300
        after = np.nextafter(big, np.inf)
        hard += [
            ([big, big, -big], 1),
            ([big, -big], 1),
            ([big, -big], 0),
            ([big, after], 0),
            ([big, after], 1),
            ([-big, -big, -big], 0),
            ([big, big - 1e285, big], 1),
        ]
        logits = rng.uniform(-big, big, (16, 5))
        batches.append((logits, rng.integers(0, 5, 16)))
    for row, y in hard:
        batches.append((np.array([row]), np.array([y])))
    return [(logits.astype(dtype), target) for logits, target in batches]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cross_entropy_accuracy_vs_mpmath(dtype):
    failures = []
    for logits, target in _accuracy_rows(dtype):
        loss = fastce.cross_entropy(logits, target, reduction="none")
        assert loss.dtype == dtype
        exact = [_mp_nll(row, y) for row, y in zip(logits, target)]
        failures += [(logits[i].tolist(), int(target[i]), got, want)
                     for i, got, want in _accuracy_failures(loss, exact, dtype)]
    assert not failures, f"{len(failures)} losses out of bounds, e.g. {failures[:5]}"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_log_softmax_accuracy_vs_mpmath(dtype):
    failures = []
    for logits, _ in _accuracy_rows(dtype):
        log_probs = fastce.log_softmax(logits)
        assert log_probs.dtype == dtype
        exact = [-_mp_nll(row, c) for row in logits for c in range(len(row))]
        for i, got, want in _accuracy_failures(log_probs, exact, dtype):
            row, c = divmod(i, logits.shape[1])
            failures.append((logits[row].tolist(), c, got, want))
    assert not failures, f"{len(failures)} entries out of bounds, e.g. {failures[:5]}"


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logsumexp_accuracy_vs_mpmath(dtype):
    """The relative bound is taken against |max| + log Σexp(x − max), which is |lse| when
    max >= 0. When max < 0 the two terms cancel, and no algorithm is relative-accurate
    in lse itself (its condition number is unbounded there)."""
    failures = []
    for logits, _ in _accuracy_rows(dtype):
        lse = fastce.logsumexp(logits)
        assert lse.dtype == dtype
        exact, scale = [], []
        for row in logits:
            value, top = _mp_logsumexp(row)
            exact.append(value)
            scale.append(abs(top) + (value - top))
        for i, got, want in _accuracy_failures(lse, exact, dtype, scale):
            failures.append((logits[i].tolist(), got, want))
    assert not failures, f"{len(failures)} values out of bounds, e.g. {failures[:5]}"


# ----------------------------------------------------------------------------- dtypes

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ("plain", "smoothing_weight_ignore", "prob_weight_smoothing"))
def test_float16_logits_computed_in_float32(case, reduction):
    logits, target, kwargs = make_case(case, np.float16, seed=20)
    if "weight" in kwargs:
        kwargs["weight"] = kwargs["weight"].astype(np.float32)
    if target.dtype == np.float16:
        target = target.astype(np.float32)
    loss, grad = _fastce(logits, target, reduction, **kwargs)
    assert grad.dtype == np.float32
    if reduction == "none":
        assert loss.dtype == np.float32
    expected = _fastce(logits.astype(np.float32), target, reduction, **kwargs)
    _compare((loss, grad), expected, dict(rtol=1e-6, atol=1e-7))


@pytest.mark.parametrize("name", ["log_softmax", "softmax", "logsumexp"])
def test_float16_building_blocks_computed_in_float32(name):
    x = (np.random.default_rng(21).standard_normal((4, 9)) * 3).astype(np.float16)
    got = getattr(fastce, name)(x)
    assert got.dtype == np.float32
    assert_allclose(got, getattr(fastce, name)(x.astype(np.float32)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", (np.int8, np.int32, np.int64, np.uint8, np.bool_))
def test_integer_and_bool_logits_computed_in_float64(dtype, reduction):
    rng = np.random.default_rng(22)
    logits = rng.integers(0, 2 if dtype == np.bool_ else 50, (8, 5)).astype(dtype)
    target = rng.integers(0, 5, 8)
    loss, grad = _fastce(logits, target, reduction)
    assert grad.dtype == np.float64
    if reduction == "none":
        assert loss.dtype == np.float64
    expected = _fastce(logits.astype(np.float64), target, reduction)
    _compare((loss, grad), expected, dict(rtol=1e-15, atol=0))
    for name in ("log_softmax", "softmax", "logsumexp"):
        got = getattr(fastce, name)(logits)
        assert got.dtype == np.float64
        assert_allclose(got, getattr(fastce, name)(logits.astype(np.float64)), rtol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_every_label_dtype(label_dtype, reduction):
    rng = np.random.default_rng(23)
    logits = rng.standard_normal((12, 6))
    target = rng.integers(0, 6, 12)
    kwargs = dict(weight=rng.uniform(0.5, 2.0, 6), label_smoothing=0.1)
    expected = _fastce(logits, target, reduction, **kwargs)
    got = _fastce(logits, target.astype(label_dtype), reduction, **kwargs)
    _compare(got, expected, dict(rtol=1e-15, atol=0))
    # Ignoring: -100 where the dtype holds it, an in-range ignore_index otherwise.
    if np.iinfo(label_dtype).min <= -100:
        target = target.copy()
        target[::4] = -100
    else:
        kwargs["ignore_index"] = 3
    got = _fastce(logits, target.astype(label_dtype), reduction, **kwargs)
    _compare(got, _fastce(logits, target, reduction, **kwargs), dict(rtol=1e-15, atol=0))
    _compare(got, _reference(logits, target, reduction, **kwargs), LOOSE[np.float64])


def test_inputs_are_not_modified():
    logits, target, kwargs = make_case("smoothing_weight_ignore", seed=24)
    copies = [logits.copy(), target.copy(), kwargs["weight"].copy()]
    _fastce(logits, target, "mean", **kwargs)
    for name in ("log_softmax", "softmax", "logsumexp"):
        getattr(fastce, name)(logits)
    for array, copy in zip((logits, target, kwargs["weight"]), copies):
        assert_array_equal(array, copy)


# =============================================================================
# A class axis that is not the last (formerly test_class_axis.py)
# A class axis that is not the last: the column kernels read torch's
# (N, C, d1, ...) layout in place. They must agree with the reference (which
# moves the axis), with torch's spatial cross-entropy, and with themselves
# across thread counts; ignored positions stay exactly 0.
# =============================================================================

def spatial_problem(dtype, shape=(3, 5, 9, 11), seed=0):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(shape) * 3).astype(dtype)
    n, c = shape[:2]
    target = rng.integers(0, c, (n,) + shape[2:])
    target[0, 0, :4] = -100           # ignored positions
    logits[0, :, 0, 0] = np.nan       # ... whose logits are NaN: still exactly 0
    logits[1, 2, :, 3] = -np.inf      # masked class at some positions
    target[1, :, 3] = 0               # never the masked class there
    weight = rng.random(c) + 0.25
    return logits, target, weight


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 3e-6)])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_reference(dtype, rtol, smoothing, use_weight, reduction):
    logits, target, weight = spatial_problem(dtype)
    if smoothing:  # smoothing puts mass on masked classes (+inf): unmask here
        logits = np.where(np.isneginf(logits), -20.0, logits).astype(dtype)
    kwargs = dict(axis=1, label_smoothing=smoothing, reduction=reduction,
                  weight=weight if use_weight else None)
    loss, grad, hess = fastce.cross_entropy(logits, target, return_hessian=True, **kwargs)
    ref_loss, ref_grad, ref_hess = reference.cross_entropy(logits, target, return_hessian=True,
                                                           **kwargs)
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol, atol=1e-6 if dtype == np.float32 else 0)
    np.testing.assert_allclose(grad, ref_grad, rtol=rtol, atol=1e-7 if dtype == np.float32 else 1e-15)
    np.testing.assert_allclose(hess, ref_hess, rtol=rtol, atol=1e-7 if dtype == np.float32 else 1e-15)
    assert grad.shape == logits.shape and grad.flags.c_contiguous
    ignored = target == -100
    assert not np.any(np.moveaxis(grad, 1, -1)[ignored])
    assert not np.any(np.moveaxis(hess, 1, -1)[ignored])


def test_same_as_rows_after_moving_the_axis():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 7, 130)) * 3  # 3 tiles of positions, the last partial
    target = rng.integers(0, 7, (2, 130))
    target[1, ::9] = -100
    weight = rng.random(7) + 0.25
    loss, grad = fastce.cross_entropy(logits, target, axis=1, weight=weight, reduction="none",
                                      return_grad=True)
    moved = np.ascontiguousarray(np.moveaxis(logits, 1, -1))
    row_loss, row_grad = fastce.cross_entropy(moved, target, weight=weight, reduction="none",
                                              return_grad=True)
    np.testing.assert_allclose(loss, row_loss, rtol=1e-13, atol=0)
    np.testing.assert_allclose(grad, np.moveaxis(row_grad, -1, 1), rtol=1e-12, atol=1e-16)


def test_in_place_gradient():
    logits, target, _ = spatial_problem(np.float32)
    expected_loss, expected_grad = fastce.cross_entropy(logits, target, axis=1, return_grad=True)
    buffer = logits.copy()
    loss, grad = fastce.cross_entropy(buffer, target, axis=1, return_grad=True, grad_out=buffer)
    assert grad is buffer and loss == expected_loss
    assert np.array_equal(grad, expected_grad)


def test_bitwise_the_same_for_every_thread_count():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((4, 21, 64, 65)).astype(np.float32)
    target = rng.integers(0, 21, (4, 64, 65))
    runs = [fastce.cross_entropy(logits, target, axis=1, return_grad=True, n_threads=t)
            for t in (1, 2, 3)]
    for loss, grad in runs[1:]:
        assert loss == runs[0][0] and np.array_equal(grad, runs[0][1])


def test_matches_torch_spatial():
    torch = pytest.importorskip("torch")
    logits, target, weight = spatial_problem(np.float64)
    logits = np.where(np.isnan(logits), 0.0, logits)  # torch's ignored gradient is NaN there
    tensor = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(tensor, torch.tensor(target),
                                                 weight=torch.tensor(weight),
                                                 label_smoothing=0.1)
    expected.backward()
    loss, grad = fastce.cross_entropy(logits, target, axis=1, weight=weight,
                                      label_smoothing=0.1, return_grad=True)
    finite = np.isfinite(tensor.grad.numpy())
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(grad[finite], tensor.grad.numpy()[finite], rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("function", ["log_softmax", "softmax", "logsumexp"])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 3e-6)])
def test_normalizers_on_any_axis(function, axis, dtype, rtol):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((6, 7, 70)) * 4).astype(dtype)
    x[2, :, 5] = -np.inf if axis == 1 else x[2, :, 5]
    ours = getattr(fastce, function)(x, axis=axis)
    theirs = getattr(reference, function)(x, axis=axis)
    both_nan = np.isnan(ours) & np.isnan(theirs)
    np.testing.assert_allclose(np.where(both_nan, 0, ours), np.where(both_nan, 0, theirs),
                               rtol=rtol, atol=1e-30)


def test_softmax_in_place_on_axis_1():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 5, 80))
    expected = fastce.softmax(x, axis=1)
    result = fastce.softmax(x, axis=1, out=x)
    assert result is x and np.array_equal(x, expected)


# =============================================================================
# Long rows (the split-row kernels) (formerly test_long_rows.py)
# Few, very long rows (C >= 65536, fewer than 64 rows) take the split-row
# kernels: each row's passes run in parallel over segments whose (max, sum)
# are merged in a fixed order. They must agree with the reference and be
# bitwise the same for every thread count.
# =============================================================================

N_CLASSES = 70_001  # five segments, the last one partial


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((3, N_CLASSES)) * 4
    logits[1, ::7] = -np.inf  # masks
    logits[2, 12_345] = 60.0  # one dominating class: tiny loss
    target = np.array([3, 69_999, 12_345])
    weight = rng.random(N_CLASSES) + 0.5
    return logits, target, weight


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("use_weight", [False, True])
def test_long_rows_cross_entropy_matches_reference(batch, dtype, rtol, smoothing, use_weight):
    logits, target, weight = batch
    logits = logits.astype(dtype)
    weight = weight if use_weight else None
    if smoothing:  # smoothing puts mass on the masked classes: +inf by design
        logits = np.where(np.isinf(logits), -30.0, logits).astype(dtype)
    kwargs = dict(weight=weight, label_smoothing=smoothing, reduction="none")
    loss, grad, hess = fastce.cross_entropy(logits, target, return_hessian=True, **kwargs)
    ref_loss, ref_grad = reference.cross_entropy(logits, target, return_grad=True, **kwargs)
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol, atol=1e-30)
    np.testing.assert_allclose(grad, ref_grad, rtol=rtol, atol=1e-12 if dtype == np.float64 else 1e-7)
    assert np.all(hess >= 0) and np.all(np.isfinite(hess))


def test_tiny_loss_keeps_its_digits(batch):
    logits, target, _ = batch
    loss = fastce.cross_entropy(logits[2:], target[2:], reduction="none")[0]
    expected = reference.cross_entropy(logits[2:], target[2:], reduction="none")[0]
    assert loss > 0 and abs(loss - expected) <= 1e-12 * expected


@pytest.mark.parametrize("function", ["log_softmax", "softmax", "logsumexp"])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_normalizers_match_reference(batch, function, dtype, rtol):
    logits = batch[0].astype(dtype)
    ours = getattr(fastce, function)(logits)
    theirs = getattr(reference, function)(logits)
    finite = np.isfinite(theirs)
    assert np.array_equal(finite, np.isfinite(ours))
    np.testing.assert_allclose(ours[finite], theirs[finite], rtol=rtol, atol=1e-30)


def test_long_rows_bitwise_the_same_for_every_thread_count(batch):
    logits, target, weight = batch
    results = []
    for threads in (1, 2, 3):
        loss, grad = fastce.cross_entropy(logits, target, weight=weight, return_grad=True,
                                          n_threads=threads)
        lse = fastce.logsumexp(logits, n_threads=threads)
        results.append((loss, grad, lse))
    for loss, grad, lse in results[1:]:
        assert loss == results[0][0]
        assert np.array_equal(grad, results[0][1])
        assert np.array_equal(lse, results[0][2])


def test_in_place_gradient_and_ignored_rows(batch):
    logits, target, _ = batch
    target = target.copy()
    target[0] = -100
    expected_loss, expected_grad = fastce.cross_entropy(logits, target, return_grad=True)
    buffer = logits.copy()
    loss, grad = fastce.cross_entropy(buffer, target, return_grad=True, grad_out=buffer)
    assert grad is buffer and loss == expected_loss
    assert np.array_equal(grad, expected_grad)
    assert not np.any(grad[0])


# =============================================================================
# Property tests (hypothesis) (formerly test_properties.py)
# Property tests (hypothesis) for the softmax family: invariants that hold for every
# shape, dtype and value, rather than for chosen fixtures.
# =============================================================================

# No example database: the run leaves no files behind.
PROPERTY = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

LOGIT_DTYPES = (np.float16, np.float32, np.float64, np.int32)


def compute_dtype(dtype):
    if dtype == np.float16:
        return np.float32
    if np.dtype(dtype).kind in "biu":
        return np.float64
    return np.dtype(dtype).type


def loose(dtype):
    """Tolerance for two ways of computing the same thing in a compute dtype."""
    return dict(rtol=2e-5, atol=2e-6) if compute_dtype(dtype) == np.float32 else \
        dict(rtol=1e-12, atol=1e-13)


@st.composite
def problems(draw, dtypes=LOGIT_DTYPES, prob_targets=True, weights=True, smoothing=True,
             ignore=True, max_abs=(1.0, 30.0, 1e4)):
    """A random cross_entropy problem: logits (N, C), target, keywords.

    N in 0..50, C in 1..40. The values come from a drawn seed, so large batches stay fast.
    """
    n_samples = draw(st.integers(0, 50))
    n_classes = draw(st.integers(1, 40))
    dtype = draw(st.sampled_from(dtypes))
    scale = draw(st.sampled_from(max_abs))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    values = rng.uniform(-scale, scale, (n_samples, n_classes))
    if draw(st.booleans()):   # ties and repeated values
        values = np.round(values / scale * 3) * scale / 3
    if np.dtype(dtype).kind in "iu":
        values = np.round(values)
    logits = values.astype(dtype)
    kwargs = {}
    if weights and draw(st.booleans()):
        # On a grid of 1/64, so the weights are exact in every compute dtype.
        weight = np.round(rng.uniform(0.0, 3.0, n_classes) * 64) / 64
        weight[rng.random(n_classes) < 0.2] = 0.0
        kwargs["weight"] = weight
    if smoothing and draw(st.booleans()):
        kwargs["label_smoothing"] = draw(st.sampled_from([0.05, 0.3, 1.0]))
    if prob_targets and draw(st.booleans()):
        target = rng.uniform(0.0, 1.0, (n_samples, n_classes))
        if draw(st.booleans()):
            target /= target.sum(axis=1, keepdims=True)
        return logits, target, kwargs
    target = rng.integers(0, n_classes, n_samples)
    if ignore and draw(st.booleans()):
        target[rng.random(n_samples) < draw(st.sampled_from([0.3, 1.0]))] = -100
    return logits, target, kwargs


def _per_sample(logits, target, **kwargs):
    return fastce.cross_entropy(logits, target, reduction="none", **kwargs)


@PROPERTY
@given(problems(), st.sampled_from(REDUCTIONS))
def test_loss_is_finite_and_nonnegative(problem, reduction):
    logits, target, kwargs = problem
    loss = fastce.cross_entropy(logits, target, reduction=reduction, **kwargs)
    assert np.all(np.isfinite(loss))
    assert np.all(np.asarray(loss) >= 0)
    if reduction == "none":
        assert loss.shape == (logits.shape[0],)
        assert loss.dtype == compute_dtype(logits.dtype)
    else:
        assert isinstance(loss, float)


@PROPERTY
@given(problems())
def test_sum_is_sum_of_none(problem):
    logits, target, kwargs = problem
    total = fastce.cross_entropy(logits, target, reduction="sum", **kwargs)
    per_sample = _per_sample(logits, target, **kwargs)
    rtol = 1e-6 if compute_dtype(logits.dtype) == np.float32 else 1e-12
    assert_allclose(total, np.sum(per_sample, dtype=np.float64), rtol=rtol, atol=1e-300)


@PROPERTY
@given(problems())
def test_mean_is_sum_over_total_weight(problem):
    logits, target, kwargs = problem
    total = fastce.cross_entropy(logits, target, reduction="sum", **kwargs)
    mean = fastce.cross_entropy(logits, target, reduction="mean", **kwargs)
    if target.dtype.kind == "f":
        denominator = float(len(target))   # probability targets: a mean over samples
    else:
        weight = kwargs.get("weight", np.ones(logits.shape[1]))
        kept = target[target != -100]
        denominator = float(np.sum(weight[kept]))
    if denominator == 0:
        assert mean == 0.0
    else:
        assert_allclose(mean, total / denominator, rtol=1e-12, atol=1e-300)


@PROPERTY
@given(problems(prob_targets=False, weights=False, smoothing=False),
       st.sampled_from(["sum", "mean"]), st.integers(0, 2**32 - 1))
def test_class_weight_equals_repeating_samples(problem, reduction, seed):
    """An integer class weight k on sample n equals having sample n k times."""
    logits, target, _ = problem
    rng = np.random.default_rng(seed)
    weight = rng.integers(0, 4, logits.shape[1]).astype(np.float64)
    repeats = np.where(target == -100, 1, weight[np.where(target == -100, 0, target)])
    repeats = repeats.astype(np.int64)
    rows = np.repeat(np.arange(len(target)), repeats)

    loss, grad = fastce.cross_entropy(logits, target, weight=weight, reduction=reduction,
                                      return_grad=True)
    loss_rep, grad_rep = fastce.cross_entropy(logits[rows], target[rows], reduction=reduction,
                                              return_grad=True)
    tol = loose(logits.dtype)
    assert_allclose(loss, loss_rep, rtol=tol["rtol"], atol=tol["atol"])
    summed = np.zeros(grad.shape, dtype=np.float64)
    np.add.at(summed, rows, grad_rep.astype(np.float64))
    assert_allclose(grad, summed, **tol)


@PROPERTY
@given(st.data())
def test_shift_invariance(data):
    """Adding a constant to a row leaves the loss and gradient unchanged.

    Logits sit on a grid of 1/8 and the shifts are integers, so the shifted input is
    exact in every dtype; what is left is the kernel's own rounding."""
    dtype = data.draw(st.sampled_from(LOGIT_DTYPES))
    bound = 100 if dtype == np.float16 else 10_000
    logits, target, kwargs = data.draw(problems(dtypes=(dtype,), max_abs=(float(bound),)))
    logits = (np.round(logits.astype(np.float64) * 8) / 8).astype(dtype)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    shift = rng.integers(-bound, bound + 1, (logits.shape[0], 1))
    shifted = (logits.astype(np.float64) + shift).astype(dtype)
    assert np.array_equal(shifted.astype(np.float64), logits.astype(np.float64) + shift)
    reduction = data.draw(st.sampled_from(REDUCTIONS))
    loss, grad = fastce.cross_entropy(logits, target, reduction=reduction, return_grad=True,
                                      **kwargs)
    loss_s, grad_s = fastce.cross_entropy(shifted, target, reduction=reduction,
                                          return_grad=True, **kwargs)
    tol = loose(dtype)
    assert_allclose(loss_s, loss, **tol)
    assert_allclose(grad_s, grad, **tol)


@PROPERTY
@given(problems())
def test_softmax_is_a_distribution(problem):
    logits = problem[0]
    probs = fastce.softmax(logits)
    log_probs = fastce.log_softmax(logits)
    dtype = compute_dtype(logits.dtype)
    assert probs.dtype == dtype and probs.shape == logits.shape
    assert np.all(probs >= 0) and np.all(probs <= 1)
    assert np.all(log_probs <= 0)
    n_classes = logits.shape[1]
    assert_allclose(probs.sum(axis=1, dtype=np.float64), 1.0,
                    rtol=0, atol=4 * (n_classes + 1) * np.finfo(dtype).eps)
    lse = fastce.logsumexp(logits)
    assert lse.shape == (logits.shape[0],)
    assert np.all(lse >= logits.astype(dtype).max(axis=1, initial=-np.inf))


@PROPERTY
@given(problems(dtypes=(np.float32,)))
def test_float32_close_to_float64(problem):
    logits, target, kwargs = problem
    loss32, grad32 = fastce.cross_entropy(logits, target, reduction="none", return_grad=True,
                                          **kwargs)
    loss64, grad64 = fastce.cross_entropy(logits.astype(np.float64), target, reduction="none",
                                          return_grad=True, **kwargs)
    assert loss32.dtype == np.float32 and grad32.dtype == np.float32
    if target.dtype.kind != "f" and not kwargs:
        # The float32 accuracy bound: relative 2e-6, or absolute 2e-7 below 0.1.
        error = np.abs(loss32.astype(np.float64) - loss64)
        ok = (error <= 2e-6 * np.abs(loss64)) | ((np.abs(loss64) < 0.1) & (error <= 2e-7))
        assert np.all(ok), (loss32[~ok], loss64[~ok])
    else:
        # A sum of up to 40 weighted terms, each as accurate as above.
        assert_allclose(loss32, loss64, rtol=1e-5, atol=1e-6)
    assert_allclose(grad32, grad64, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(grad64).max(initial=0)))


@PROPERTY
@given(problems(weights=False), st.sampled_from(REDUCTIONS), st.floats(0.1, 5.0))
def test_gradient_rows_sum_to_zero(problem, reduction, uniform_weight):
    """With uniform class weights every gradient row sums to 0 (softmax is shift
    invariant); the same holds with label smoothing and for probability targets."""
    logits, target, kwargs = problem
    n_samples, n_classes = logits.shape
    weight = np.full(n_classes, uniform_weight)
    _, grad = fastce.cross_entropy(logits, target, weight=weight, reduction=reduction,
                                   return_grad=True, **kwargs)
    # The size of the terms that cancel in each row: s·w·(Σp + Σq) = 2·s·w·Σq.
    if target.dtype.kind == "f":
        mass = target.sum(axis=1)
        count = n_samples
    else:
        mass = (target != -100).astype(np.float64)
        count = mass.sum() * uniform_weight
    scale = 1.0 / count if reduction == "mean" and count > 0 else 1.0
    row_scale = 2 * scale * uniform_weight * mass
    eps = np.finfo(compute_dtype(logits.dtype)).eps
    row_sums = np.abs(grad.sum(axis=1, dtype=np.float64))
    assert np.all(row_sums <= 8 * (n_classes + 1) * eps * row_scale + 1e-300), \
        (row_sums.max(initial=0), row_scale)


@PROPERTY
@given(problems(), st.sampled_from(REDUCTIONS))
def test_return_grad_loss_equals_plain_loss_bitwise(problem, reduction):
    logits, target, kwargs = problem
    plain = fastce.cross_entropy(logits, target, reduction=reduction, **kwargs)
    fused, grad = fastce.cross_entropy(logits, target, reduction=reduction, return_grad=True,
                                       **kwargs)
    if reduction == "none":
        assert plain.dtype == fused.dtype
        assert_array_equal(plain, fused)
    else:
        assert plain == fused or (np.isnan(plain) and np.isnan(fused))
    assert grad.shape == logits.shape and grad.dtype == compute_dtype(logits.dtype)


@PROPERTY
@given(problems(), st.sampled_from(REDUCTIONS))
def test_grad_out_in_place_equals_out_of_place_bitwise(problem, reduction):
    logits, target, kwargs = problem
    logits = logits.astype(compute_dtype(logits.dtype))
    loss, grad = fastce.cross_entropy(logits, target, reduction=reduction, return_grad=True,
                                      **kwargs)
    buffer = logits.copy()
    loss_in_place, grad_in_place = fastce.cross_entropy(
        buffer, target, reduction=reduction, return_grad=True, grad_out=buffer, **kwargs)
    assert grad_in_place is buffer
    assert_array_equal(grad_in_place, grad)
    if reduction == "none":
        assert_array_equal(loss_in_place, loss)
    else:
        assert loss_in_place == loss
    # A separate preallocated buffer, too.
    out = np.full(logits.shape, np.nan, dtype=logits.dtype)
    _, grad_out = fastce.cross_entropy(logits, target, reduction=reduction, return_grad=True,
                                       grad_out=out, **kwargs)
    assert grad_out is out
    assert_array_equal(out, grad)


@PROPERTY
@given(problems(dtypes=(np.float32, np.float64)), st.sampled_from(REDUCTIONS),
       st.sampled_from([0, 1]))
def test_axis_equals_moved_axis(problem, reduction, axis):
    """Classes along axis 0 of the transposed logits give the same answer."""
    logits, target, kwargs = problem
    moved = np.ascontiguousarray(logits.T)
    moved_target = target.T.copy() if target.dtype.kind == "f" else target
    loss, grad = fastce.cross_entropy(logits, target, reduction=reduction, return_grad=True,
                                      **kwargs)
    if axis == 0:
        loss_t, grad_t = fastce.cross_entropy(moved, moved_target, reduction=reduction,
                                              axis=0, return_grad=True, **kwargs)
        grad_t = grad_t.T
    else:
        loss_t, grad_t = fastce.cross_entropy(logits, target, reduction=reduction, axis=1,
                                              return_grad=True, **kwargs)
    tol = loose(logits.dtype)
    assert_allclose(loss_t, loss, **tol)
    assert_allclose(grad_t, grad, **tol)


# --------------------------------------------------------------- the small-call fast path

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 10), (64, 10), (7, 31), (300, 100),
                                   (600, 100)])  # (the last one runs on threads)
def test_small_call_fast_path_matches_full_path_bitwise(rng, dtype, reduction, shape):
    """The common small call (checked in C) gives the full path's value bit for bit
    (labels given as a list take the full path: the fast one needs arrays)."""
    logits = (rng.standard_normal(shape) * 4).astype(dtype)
    target = rng.integers(0, shape[1], shape[0])
    target[::5] = -100  # ignored rows leave the mean's denominator
    fast = fastce.cross_entropy(logits, target, reduction=reduction)
    full = fastce.cross_entropy(logits, target.tolist(), reduction=reduction)
    assert type(fast) is np.float64
    assert fast.tobytes() == full.tobytes()
    expected = reference.cross_entropy(logits, target, reduction=reduction)
    assert_allclose(fast, expected, rtol=2e-6 if dtype == np.float32 else 1e-13)


def test_small_call_fast_path_edge_cases(rng):
    logits = rng.standard_normal((8, 5)).astype(np.float32)
    # Every row ignored: a mean over nothing is 0.0.
    assert fastce.cross_entropy(logits, np.full(8, -100)) == 0.0
    # Calls the fast path leaves to the full one: the same values.
    target = rng.integers(0, 5, 8)
    value = fastce.cross_entropy(logits, target.tolist())
    assert fastce.cross_entropy(logits, target) == value
    assert fastce.cross_entropy(logits, target, n_threads=2) == value
    assert fastce.cross_entropy(np.asfortranarray(logits), target) == value
    assert fastce.cross_entropy(logits, target.astype(np.int32)) == value
    for other in (logits.astype(">f4"), logits.tolist()):  # (computed in another dtype)
        assert_allclose(fastce.cross_entropy(other, target), value, rtol=2e-6)
    # A bad label still gets the full path's explanation.
    target[3] = 5
    with pytest.raises(ValueError, match=r"class index 5 at position \(3,\)"):
        fastce.cross_entropy(logits, target)
    with pytest.raises(ValueError, match="out of range"):
        fastce.cross_entropy(logits, np.zeros(8, np.int64), ignore_index=2**63)
    for bad_threads in (0, -1, 2.0, True):
        with pytest.raises((TypeError, ValueError), match="n_threads"):
            fastce.cross_entropy(logits, np.zeros(8, np.int64), n_threads=bad_threads)
