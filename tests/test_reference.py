"""Tests of fastce.reference itself, against independent oracles.

- SciPy (scipy.special: log_softmax, softmax, logsumexp, expit, log_expit, xlogy);
- PyTorch in float64 (forward values and autograd gradients), where installed;
- mpmath at 50 digits for the accuracy rule (relative error <= 1e-13 in float64);
- central finite differences for every gradient;
- the special values and edge cases that the contract fixes.
"""

import mpmath
import numpy as np
import pytest
import scipy.special as sc

from fastce import reference as ref

from conftest import REDUCTIONS, numerical_gradient, total

RNG_SEED = 20240611  # the rng fixture's seed (conftest)

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def to_numpy(tensor):
    return tensor.detach().numpy()


# --------------------------------------------------------------------------
# Building blocks against SciPy
# --------------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_family_matches_scipy(rng, axis):
    x = 10 * rng.standard_normal((3, 4, 5))
    x[0, 1, 2] = -np.inf
    x[2, 0, 0] = -np.inf
    np.testing.assert_allclose(ref.log_softmax(x, axis=axis), sc.log_softmax(x, axis=axis),
                               rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(ref.softmax(x, axis=axis), sc.softmax(x, axis=axis),
                               rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(ref.logsumexp(x, axis=axis), sc.logsumexp(x, axis=axis),
                               rtol=1e-13)
    assert np.all(ref.softmax(x, axis=axis)[np.isneginf(x)] == 0)


def test_softmax_family_float32_and_extremes(rng):
    x = (100 * rng.standard_normal((6, 7))).astype(np.float32)
    x64 = x.astype(np.float64)
    # atol: near log p = 0, scipy's log(sum) loses what the reference's log1p(rest) keeps
    for name, atol in [("log_softmax", 1e-13), ("softmax", 1e-30)]:
        got = getattr(ref, name)(x)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, getattr(sc, name)(x64, axis=-1), rtol=2e-6, atol=atol)
    assert ref.logsumexp(x).dtype == np.float32
    huge = np.array([[1e300, -1e300, 1e300], [-1e300, -1e300, 0.0]])
    np.testing.assert_allclose(ref.logsumexp(huge), sc.logsumexp(huge, axis=-1), rtol=1e-15)
    np.testing.assert_allclose(ref.log_softmax(huge), sc.log_softmax(huge, axis=-1), rtol=1e-15)


def test_softmax_family_special_rows():
    rows = np.array([[-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0], [np.nan, 0.0, 1.0],
                     [0.0, 1.0, 2.0]])
    lse = ref.logsumexp(rows)
    assert lse[0] == -np.inf and lse[1] == np.inf and np.isnan(lse[2])
    np.testing.assert_allclose(lse[3], sc.logsumexp(rows[3]), rtol=1e-15)
    for name in ["log_softmax", "softmax"]:
        result = getattr(ref, name)(rows)
        assert np.all(np.isnan(result[[0, 2]])) and np.isnan(result[1, 0])
        assert np.all(np.isfinite(result[3]))
    assert isinstance(ref.logsumexp(np.array([1.0, 2.0])), np.float64)


def test_sigmoid_and_log_sigmoid_match_scipy():
    x = np.concatenate([np.linspace(-800, 800, 4001), [-1e300, 1e300, -np.inf, np.inf, 0.0]])
    # atol: for x < -709 the reference keeps subnormal values that scipy flushes to 0
    np.testing.assert_allclose(ref.sigmoid(x), sc.expit(x), rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(ref.log_sigmoid(x), sc.log_expit(x), rtol=1e-15, atol=0)
    assert np.isnan(ref.sigmoid(np.array([np.nan]))[0])
    assert np.isnan(ref.log_sigmoid(np.array([np.nan]))[0])
    x32 = x[np.abs(x) < 1e4].astype(np.float32)
    assert ref.sigmoid(x32).dtype == np.float32
    # atol: float32 rounds results below its smallest normal number (1.2e-38) coarsely
    np.testing.assert_allclose(ref.log_sigmoid(x32), sc.log_expit(x32.astype(np.float64)),
                               rtol=2e-7, atol=1e-37)


def test_probability_targets_match_xlogy(rng):
    logits = rng.standard_normal((4, 5))
    logits[1, 3] = -np.inf                   # masked class, no target mass on it
    target = rng.random((4, 5))
    target[1, 3] = 0.0
    weight = rng.random(5) + 0.5
    loss = ref.cross_entropy(logits, target, weight=weight, reduction="none")
    expected = -np.sum(weight * sc.xlogy(target, sc.softmax(logits, axis=-1)), axis=-1)
    np.testing.assert_allclose(loss, expected, rtol=1e-13)


# --------------------------------------------------------------------------
# Against PyTorch (float64): forward and autograd
# --------------------------------------------------------------------------

def torch_loss_and_grad(torch, function, first, *args, **kwargs):
    first = torch.tensor(first, requires_grad=True)
    loss = function(first, *args, **kwargs)
    loss.sum().backward()
    return to_numpy(loss), to_numpy(first.grad)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
@pytest.mark.parametrize("ignore_index", [-100, 2])
def test_cross_entropy_class_indices_match_torch(torch, rng, reduction, weighted,
                                                 label_smoothing, ignore_index):
    logits = 3 * rng.standard_normal((8, 5))
    target = rng.integers(0, 5, size=8)
    target[[1, 6]] = ignore_index
    weight = rng.random(5) + 0.2 if weighted else None
    kwargs = dict(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)
    loss, grad = ref.cross_entropy(logits, target, weight=weight, return_grad=True, **kwargs)
    expected_loss, expected_grad = torch_loss_and_grad(
        torch, torch.nn.functional.cross_entropy, logits, torch.tensor(target),
        weight=None if weight is None else torch.tensor(weight), **kwargs)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_probabilities_match_torch(torch, rng, reduction, label_smoothing):
    logits = 3 * rng.standard_normal((6, 4))
    target = sc.softmax(rng.standard_normal((6, 4)), axis=-1)
    weight = rng.random(4) + 0.2
    kwargs = dict(label_smoothing=label_smoothing, reduction=reduction)
    loss, grad = ref.cross_entropy(logits, target, weight=weight, return_grad=True, **kwargs)
    expected_loss, expected_grad = torch_loss_and_grad(
        torch, torch.nn.functional.cross_entropy, logits, torch.tensor(target),
        weight=torch.tensor(weight), **kwargs)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("axis", [1, -1])
def test_cross_entropy_class_axis_matches_torch(torch, rng, axis):
    """torch puts classes on dim 1; axis=-1 is the same problem with the axis moved."""
    logits_nc = 2 * rng.standard_normal((3, 4, 5, 2))          # classes on dim 1
    target = rng.integers(0, 4, size=(3, 5, 2))
    target[0, 1, 1] = -100
    weight = rng.random(4) + 0.5
    kwargs = dict(weight=weight, label_smoothing=0.1, reduction="mean", return_grad=True)
    expected_loss, expected_grad = torch_loss_and_grad(
        torch, torch.nn.functional.cross_entropy, logits_nc, torch.tensor(target),
        weight=torch.tensor(weight), label_smoothing=0.1)
    logits = logits_nc if axis == 1 else np.moveaxis(logits_nc, 1, -1)
    loss, grad = ref.cross_entropy(logits, target, axis=axis, **kwargs)
    if axis == -1:
        grad = np.moveaxis(grad, -1, 1)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-13)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)
    assert ref.cross_entropy(logits, target, axis=axis, reduction="none").shape == target.shape


def test_cross_entropy_masks_match_torch(torch):
    """-inf logits: finite loss and zero gradient off target; inf when target mass is masked."""
    inf = np.inf
    logits = np.array([[0.5, -inf, 1.0, -inf], [2.0, 0.0, -inf, 1.0], [-inf, 1.0, 0.0, 3.0]])
    target = np.array([2, 0, 0])
    weight = np.array([1.0, 2.0, 0.5, 1.5])
    for label_smoothing in [0.0, 0.1]:
        kwargs = dict(label_smoothing=label_smoothing, reduction="none")
        loss, grad = ref.cross_entropy(logits, target, weight=weight, return_grad=True, **kwargs)
        expected_loss, expected_grad = torch_loss_and_grad(
            torch, torch.nn.functional.cross_entropy, logits, torch.tensor(target),
            weight=torch.tensor(weight), **kwargs)
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-13)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)
        assert not np.any(np.isnan(grad))
    loss = ref.cross_entropy(logits, target, weight=weight, reduction="none")
    assert np.all(np.isfinite(loss[:2])) and loss[2] == inf


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_torch(torch, rng, reduction):
    logits = 4 * rng.standard_normal((5, 3))
    target = rng.random((5, 3))
    target[0] = [0.0, 1.0, 1.0]
    weight = rng.random((5, 1)) + 0.1             # broadcast along the labels
    pos_weight = np.array([0.5, 1.0, 3.0])         # one per label, the last axis
    kwargs = dict(weight=weight, pos_weight=pos_weight, reduction=reduction)
    loss, grad = ref.binary_cross_entropy_with_logits(logits, target, return_grad=True, **kwargs)
    expected_loss, expected_grad = torch_loss_and_grad(
        torch, torch.nn.functional.binary_cross_entropy_with_logits, logits,
        torch.tensor(target), weight=torch.tensor(weight), pos_weight=torch.tensor(pos_weight),
        reduction=reduction)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_matches_torch(torch, rng, reduction):
    probs = rng.random((4, 6))
    probs[0, :4] = [0.0, 1.0, 1e-50, 1 - 1e-16]    # the -100 clamps
    target = rng.random((4, 6))
    target[0, :4] = [1.0, 0.0, 1.0, 0.0]
    weight = rng.random((4, 6)) + 0.1
    kwargs = dict(weight=weight, reduction=reduction)
    loss, grad = ref.binary_cross_entropy(probs, target, return_grad=True, **kwargs)
    expected_loss, expected_grad = torch_loss_and_grad(
        torch, torch.nn.functional.binary_cross_entropy, probs, torch.tensor(target),
        weight=torch.tensor(weight), reduction=reduction)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-13, atol=1e-15)
    # Where the gradient's clamp max(p(1-p), 1e-12) is active, torch clamps at float32(1e-12),
    # 4e-9 relative below the 1e-12 accuracy bound.
    clamped = probs * (1 - probs) < 1e-12
    np.testing.assert_allclose(grad[~clamped], expected_grad[~clamped], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad[clamped], expected_grad[clamped], rtol=1e-8)
    assert np.all(np.isfinite(ref.binary_cross_entropy(probs, target, reduction="none")))


def test_logistic_loss_matches_its_oracles(rng):
    scores = 5 * rng.standard_normal(20)
    labels = rng.choice([-1, 1], size=20)
    loss = ref.logistic_loss(scores, labels, reduction="none")
    np.testing.assert_allclose(loss, -sc.log_expit(labels * scores), rtol=1e-15)
    loss, grad = ref.logistic_loss(scores, labels, return_grad=True)
    expected = ref.binary_cross_entropy_with_logits(scores, (labels + 1) / 2, return_grad=True)
    np.testing.assert_allclose(loss, expected[0], rtol=1e-15)
    np.testing.assert_allclose(grad, expected[1], rtol=1e-15)


# --------------------------------------------------------------------------
# Every gradient against central finite differences
# --------------------------------------------------------------------------

def check_fd(function, first, *args, **kwargs):
    _, grad = function(first, *args, return_grad=True, **kwargs)
    expected = numerical_gradient(lambda x: total(function(x, *args, **kwargs)), first)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradients_match_finite_differences(rng, reduction):
    logits = 2 * rng.standard_normal((4, 3))
    check_fd(ref.binary_cross_entropy_with_logits, logits, rng.random((4, 3)),
             weight=rng.random(3), pos_weight=np.array([0.5, 2.0, 1.0]), reduction=reduction)
    check_fd(ref.binary_cross_entropy, 0.05 + 0.9 * rng.random((4, 3)), rng.random((4, 3)),
             weight=rng.random((4, 3)), reduction=reduction)
    check_fd(ref.logistic_loss, logits, rng.choice([-1.0, 1.0], size=(4, 3)),
             weight=rng.random((4, 3)), reduction=reduction)
    class_weight = rng.random(4) + 0.5
    check_fd(ref.cross_entropy, 2 * rng.standard_normal((5, 4)),
             np.array([0, 3, -100, 1, 3]), weight=class_weight, label_smoothing=0.2,
             reduction=reduction)
    check_fd(ref.cross_entropy, 2 * rng.standard_normal((2, 4, 3)),
             np.array([[0, 3, 2], [1, 1, -100]]), weight=class_weight, label_smoothing=0.1,
             axis=1, reduction=reduction)
    check_fd(ref.cross_entropy, 2 * rng.standard_normal((3, 4)), rng.random((3, 4)),
             weight=class_weight, label_smoothing=0.3, reduction=reduction)


# --------------------------------------------------------------------------
# Accuracy against a 50-digit oracle
# --------------------------------------------------------------------------

def mp_log_softmax(row):
    """log softmax(row) at 50 digits, shifted by the (exact) maximum so that 1e300 + log 2 survives."""
    with mpmath.workdps(50):
        shifted = [mpmath.mpf(v) - mpmath.mpf(max(row)) for v in row]
        log_norm = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in shifted))
        return [v - log_norm for v in shifted]


@pytest.mark.parametrize("row, label", [
    ([0.0, -40.0, -50.0], 0),          # loss ~ 4e-18, where log(1 + rest) rounds to 0
    ([0.0, -40.0, -50.0], 2),
    ([1e4, -1e4, 0.5], 0),
    ([1e300, -1e300, 1e300], 1),
    ([3.0, 3.0, -700.0, 2.5], 1),      # tied maximum
    ([1e-3, 2e-3, -1e-3], 2),
])
def test_cross_entropy_accuracy_against_mpmath(row, label):
    loss, grad = ref.cross_entropy(np.array([row]), np.array([label]), reduction="none",
                                   return_grad=True)
    log_probs = mp_log_softmax(row)
    expected = -float(log_probs[label])
    assert abs(loss[0] - expected) <= 1e-13 * expected
    with mpmath.workdps(50):
        expected_grad = [float(mpmath.exp(v) - (c == label)) for c, v in enumerate(log_probs)]
    np.testing.assert_allclose(grad[0], expected_grad, rtol=1e-13, atol=1e-300)


def test_binary_accuracy_against_mpmath():
    logits = np.array([-745.0, -40.0, -1e-10, 0.0, 1e-10, 1.0, 40.0, 700.0, 1e4])
    for y in [0.0, 1.0]:
        loss, grad = ref.binary_cross_entropy_with_logits(
            logits, np.full_like(logits, y), reduction="none", return_grad=True)
        with mpmath.workdps(50):
            for z, got, got_grad in zip(logits, loss, grad):
                z = mpmath.mpf(z)
                expected = mpmath.log1p(mpmath.exp(z if y == 0 else -z))
                # σ(z) - y, written so that 50 digits suffice: σ(z) - 1 = -σ(-z)
                expected_grad = 1 / (1 + mpmath.exp(-z)) if y == 0 else -1 / (1 + mpmath.exp(z))
                assert abs(got - float(expected)) <= 1e-13 * float(expected) + 1e-320
                assert abs(got_grad - float(expected_grad)) <= 1e-13 * abs(float(expected_grad))


# --------------------------------------------------------------------------
# Special values and edge cases fixed by the contract
# --------------------------------------------------------------------------

def test_mean_over_nothing_is_zero_with_zero_gradient():
    logits = np.array([[np.nan, 1.0], [-np.inf, -np.inf]])
    for target in [np.array([-100, -100]), np.array([0, 1])]:
        weight = np.array([0.0, 0.0])           # the second case: zero total weight
        loss, grad = ref.cross_entropy(logits, target, weight=weight, return_grad=True)
        assert loss == 0.0 and type(loss) is np.float64
        assert np.all(grad == 0)
    loss, grad = ref.cross_entropy(np.zeros((0, 3)), np.zeros(0, dtype=int), return_grad=True)
    assert loss == 0.0 and grad.shape == (0, 3)
    loss, grad = ref.cross_entropy(np.zeros((0, 3)), np.zeros((0, 3)), return_grad=True)
    assert loss == 0.0 and grad.shape == (0, 3)
    for function in [ref.binary_cross_entropy_with_logits, ref.binary_cross_entropy,
                     ref.logistic_loss]:
        loss, grad = function(np.zeros(0), np.zeros(0), return_grad=True)
        assert loss == 0.0 and grad.shape == (0,)


def test_ignored_samples_contribute_exactly_zero():
    inf, nan = np.inf, np.nan
    logits = np.array([[nan, 0.0, 1.0], [-inf, -inf, -inf], [0.5, 1.0, -1.0]])
    target = np.array([-100, -100, 1])
    for label_smoothing in [0.0, 0.3]:
        loss, grad = ref.cross_entropy(logits, target, label_smoothing=label_smoothing,
                                       reduction="none", return_grad=True)
        assert np.all(loss[:2] == 0) and np.all(grad[:2] == 0)
        expected = ref.cross_entropy(logits[2:], target[2:], label_smoothing=label_smoothing,
                                     reduction="none", return_grad=True)
        assert loss[2] == expected[0][0] and np.array_equal(grad[2], expected[1][0])


def test_cross_entropy_special_values():
    inf, nan = np.inf, np.nan
    logits = np.array([[-inf, -inf, -inf],      # no distribution: NaN
                       [nan, 0.0, 1.0],         # NaN propagates to its own row only
                       [0.0, -inf, 1.0],        # masked target: inf
                       [0.0, -inf, 1.0]])       # masked non-target: finite
    target = np.array([0, 1, 1, 2])
    loss, grad = ref.cross_entropy(logits, target, reduction="none", return_grad=True)
    assert np.isnan(loss[0]) and np.isnan(loss[1]) and loss[2] == inf and np.isfinite(loss[3])
    assert np.all(np.isnan(grad[:2])) and not np.any(np.isnan(grad[2:]))
    assert grad[3, 1] == 0 and grad[2, 1] == -1.0
    # smoothing puts mass on the masked class: inf, unless that class has zero weight
    smoothed = ref.cross_entropy(logits[3:], target[3:], label_smoothing=0.1, reduction="none")
    assert smoothed[0] == inf
    silenced, grad = ref.cross_entropy(logits[3:], target[3:], label_smoothing=0.1,
                                       weight=np.array([1.0, 0.0, 1.0]), reduction="none",
                                       return_grad=True)
    assert np.isfinite(silenced[0]) and grad[0, 1] == 0
    # a zero class weight on a masked target gives exactly 0 (torch: 0·inf = NaN)
    zero, grad = ref.cross_entropy(logits[2:3], target[2:3], weight=np.array([1.0, 0.0, 1.0]),
                                   reduction="sum", return_grad=True)
    assert zero == 0.0 and np.all(grad == 0)


def test_binary_special_values():
    inf, nan = np.inf, np.nan
    logits = np.array([inf, -inf, inf, -inf, nan, 1.0])
    target = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.5])
    loss, grad = ref.binary_cross_entropy_with_logits(logits, target, reduction="none",
                                                      return_grad=True)
    np.testing.assert_array_equal(loss[:4], [0.0, 0.0, inf, inf])
    np.testing.assert_array_equal(grad[:4], [0.0, 0.0, 1.0, -1.0])
    assert np.isnan(loss[4]) and np.isnan(grad[4]) and np.all(np.isfinite(loss[5:]))
    # a zero weight silences NaN and inf; pos_weight 0 silences the positive term
    weight = np.array([1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    loss, grad = ref.binary_cross_entropy_with_logits(logits, target, weight=weight,
                                                      reduction="none", return_grad=True)
    assert np.all(loss[2:5] == 0) and np.all(grad[2:5] == 0)
    loss = ref.binary_cross_entropy_with_logits(np.array([-inf]), np.array([1.0]),
                                                pos_weight=np.array([0.0]), reduction="sum")
    assert loss == 0.0
    # torch's cancelling form loses y=0, z << 0 entirely; the documented form keeps it
    tiny = ref.binary_cross_entropy_with_logits(np.array([-50.0]), np.array([0.0]),
                                                reduction="sum")
    np.testing.assert_allclose(tiny, np.log1p(np.exp(-50.0)), rtol=1e-15)
    scores_loss, scores_grad = ref.logistic_loss(np.array([inf, -inf, inf]),
                                                 np.array([1, -1, -1]), reduction="none",
                                                 return_grad=True)
    np.testing.assert_array_equal(scores_loss, [0.0, 0.0, inf])
    np.testing.assert_array_equal(scores_grad, [0.0, 0.0, 1.0])


# --------------------------------------------------------------------------
# Contract plumbing: dtypes, outputs, consistency, errors
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, compute", [(np.float64, np.float64), (np.float32, np.float32),
                                            (np.float16, np.float32), (np.int64, np.float64),
                                            (np.bool_, np.float64)])
def test_compute_dtype(dtype, compute):
    logits = np.array([[1, 0, 1], [0, 1, 1]]).astype(dtype)
    target = np.array([[1, 0, 0], [0, 1, 1]])
    for function, first in [(ref.binary_cross_entropy_with_logits, logits),
                            (ref.cross_entropy, logits)]:
        labels = target if function is not ref.cross_entropy else np.array([0, 2])
        loss, grad = function(first, labels, reduction="none", return_grad=True)
        assert loss.dtype == compute and grad.dtype == compute
        loss, grad = function(first, labels, return_grad=True)
        assert type(loss) is np.float64 and grad.dtype == compute and grad.flags.c_contiguous
    for name in ["log_softmax", "softmax", "sigmoid", "log_sigmoid"]:
        assert getattr(ref, name)(logits).dtype == compute


def test_grad_out_and_out_are_filled_and_returned(rng):
    logits = rng.standard_normal((4, 3)).astype(np.float32)
    target = np.array([0, 2, 1, 1])
    expected_loss, expected_grad = ref.cross_entropy(logits, target, return_grad=True)
    grad_out = np.empty_like(logits)
    loss, grad = ref.cross_entropy(logits, target, return_grad=True, grad_out=grad_out)
    assert grad is grad_out and np.array_equal(grad, expected_grad) and loss == expected_loss
    in_place = logits.copy()
    loss, grad = ref.cross_entropy(in_place, target, return_grad=True, grad_out=in_place)
    assert grad is in_place and np.array_equal(in_place, expected_grad)
    out = np.empty_like(logits)
    assert ref.softmax(logits, out=out) is out and np.array_equal(out, ref.softmax(logits))
    with pytest.raises(ValueError, match="grad_out"):
        ref.cross_entropy(logits, target, return_grad=True, grad_out=np.empty((4, 3)))


def test_inputs_are_not_modified(rng):
    logits = rng.standard_normal((4, 3))
    target = np.array([0, 2, -100, 1])
    weight = np.array([1.0, 0.0, 2.0])
    copies = [a.copy() for a in (logits, target, weight)]
    ref.cross_entropy(logits, target, weight=weight, label_smoothing=0.1, return_grad=True)
    ref.log_softmax(logits, axis=0)
    for original, copy in zip((logits, target, weight), copies):
        assert np.array_equal(original, copy)


def test_loss_alone_equals_loss_with_grad_and_properties(rng):
    logits = rng.standard_normal((6, 4))
    target = rng.integers(0, 4, size=6)
    weight = rng.random(4) + 0.1
    for reduction in REDUCTIONS:
        alone = ref.cross_entropy(logits, target, weight=weight, reduction=reduction)
        fused, _ = ref.cross_entropy(logits, target, weight=weight, reduction=reduction,
                                     return_grad=True)
        np.testing.assert_array_equal(alone, fused)
    # class indices are one-hot probabilities ("sum" shares the normaliser)
    onehot = np.eye(4)[target]
    for label_smoothing in [0.0, 0.25]:
        kwargs = dict(weight=weight, label_smoothing=label_smoothing, reduction="sum",
                      return_grad=True)
        by_index = ref.cross_entropy(logits, target, **kwargs)
        by_probability = ref.cross_entropy(logits, onehot, **kwargs)
        np.testing.assert_allclose(by_index[0], by_probability[0], rtol=1e-14)
        np.testing.assert_allclose(by_index[1], by_probability[1], rtol=1e-12, atol=1e-16)
    # a weight of 2 is the sample repeated
    z, y = rng.standard_normal(5), rng.random(5)
    weighted = ref.binary_cross_entropy_with_logits(z, y, weight=np.array([2.0, 1, 1, 1, 1]),
                                                    reduction="sum")
    repeated = ref.binary_cross_entropy_with_logits(np.r_[z, z[0]], np.r_[y, y[0]],
                                                    reduction="sum")
    np.testing.assert_allclose(weighted, repeated, rtol=1e-14)
    # the 1-D case: one sample, a 0-d target
    single = ref.cross_entropy(logits[0], target[0], weight=weight, reduction="none")
    np.testing.assert_allclose(single, ref.cross_entropy(logits[:1], target[:1], weight=weight,
                                                         reduction="none")[0], rtol=1e-15)


def test_errors():
    logits, target = np.zeros((2, 3)), np.array([0, 1])
    calls = [lambda r: ref.cross_entropy(logits, target, reduction=r),
             lambda r: ref.binary_cross_entropy_with_logits(logits, logits, reduction=r),
             lambda r: ref.binary_cross_entropy(logits, logits, reduction=r),
             lambda r: ref.logistic_loss(logits, np.ones((2, 3)), reduction=r)]
    for call in calls:
        with pytest.raises(ValueError, match="reduction"):
            call("avg")
    with pytest.raises(ValueError, match=r"target.*3.*\(1,\)"):
        ref.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="label_smoothing"):
        ref.cross_entropy(logits, target, label_smoothing=1.5)
    with pytest.raises(ValueError, match="probs"):
        ref.binary_cross_entropy(np.array([1.5]), np.array([1.0]))
    with pytest.raises(ValueError, match="target"):
        ref.logistic_loss(np.array([1.0]), np.array([0.0]))
    with pytest.raises(TypeError, match="logits"):
        ref.cross_entropy(logits.astype(complex), target)
