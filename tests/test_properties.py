"""Property tests (hypothesis) for the softmax family: invariants that hold for every
shape, dtype and value, rather than for chosen fixtures."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import fastce

from conftest import REDUCTIONS

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
        # SPEC's float32 accuracy: relative 2e-6, or absolute 2e-7 below 0.1.
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
