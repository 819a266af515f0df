"""The parity keywords through every kernel path, against fastce.reference.

test_parity.py checks the semantics against the peers on small inputs, which
run one block on one thread. These tests take the same keywords through the
paths a large call takes: many blocks on several threads (bitwise the same
for every thread count), short rows (the multi-row kernel), long rows split
across threads, the column tiles of a class axis that is not last, the
per-logit mask's block copies, and the gradient written in place.
"""
import numpy as np
import pytest

import fastce
from fastce import reference

from conftest import FLOAT_DTYPES

def tolerance(dtype):
    return dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)


def _case(rng, shape, dtype, class_axis=-1):
    n_classes = shape[class_axis]
    logits = (3 * rng.standard_normal(shape)).astype(dtype)
    loss_shape = tuple(np.delete(np.array(shape), class_axis))
    labels = rng.integers(0, n_classes, loss_shape)
    labels.flat[::7] = -100
    sample_weight = rng.random(loss_shape)
    sample_weight.flat[::5] = 0.0
    return logits, labels, sample_weight


# (rows, classes): short rows (< 32 classes), rows of one block, rows longer
# than a block, and few rows of a vocabulary long enough to be split.
SHAPES = [(20000, 10), (3000, 300), (9, 20000), (3, 70000)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_sample_weight_every_row_path(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    logits, labels, sample_weight = _case(rng, shape, dtype)
    class_weight = rng.random(shape[1]) + 0.1
    for smoothing in (0.0, 0.2):
        keywords = dict(weight=class_weight, label_smoothing=smoothing,
                        sample_weight=sample_weight)
        loss, grad = fastce.cross_entropy(logits, labels, return_grad=True, **keywords)
        expected, expected_grad = reference.cross_entropy(logits, labels, return_grad=True,
                                                          **keywords)
        np.testing.assert_allclose(loss, expected, **tolerance(dtype))
        np.testing.assert_allclose(grad, expected_grad, **tolerance(dtype))
        per_sample = fastce.cross_entropy(logits, labels, reduction="none", **keywords)
        np.testing.assert_allclose(per_sample, reference.cross_entropy(
            logits, labels, reduction="none", **keywords), **tolerance(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_logit_mask_every_row_path(dtype, shape):
    rng = np.random.default_rng(sum(shape) + 1)
    logits, labels, _ = _case(rng, shape, dtype)
    keep = rng.random(shape) > 0.3
    keep[np.arange(shape[0]), np.where(labels >= 0, labels, 0)] = True  # finite losses
    keep[0] = False  # a row with no logit left: ignored
    poisoned = logits.copy()
    poisoned[~keep] = np.nan  # never read
    loss, grad = fastce.cross_entropy(poisoned, labels, where=keep, return_grad=True)
    expected, expected_grad = reference.cross_entropy(logits, labels, where=keep,
                                                      return_grad=True)
    np.testing.assert_allclose(loss, expected, **tolerance(dtype))
    np.testing.assert_allclose(grad, expected_grad, **tolerance(dtype))
    assert not np.isnan(grad).any() and not grad[0].any()
    # probability targets through the same block copies
    target = rng.random(shape).astype(dtype) * keep
    loss, grad = fastce.cross_entropy(poisoned, target, where=keep, return_grad=True)
    expected, expected_grad = reference.cross_entropy(logits, target, where=keep,
                                                      return_grad=True)
    np.testing.assert_allclose(loss, expected, **tolerance(dtype))
    np.testing.assert_allclose(grad, expected_grad, **tolerance(dtype))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("where_kind", ["sample", "logit"])
def test_class_axis_one(dtype, where_kind):
    """torch's (N, C, d) layout: column tiles (per sample) or a copy into rows
    (per logit), the gradient and Hessian back in the caller's layout."""
    rng = np.random.default_rng(3)
    logits, labels, sample_weight = _case(rng, (40, 7, 300), dtype, class_axis=1)
    if where_kind == "sample":
        where = rng.random(labels.shape) > 0.2
    else:
        where = rng.random(logits.shape) > 0.2
        np.put_along_axis(where, np.where(labels >= 0, labels, 0)[:, None, :], True, axis=1)
    keywords = dict(axis=1, sample_weight=sample_weight, where=where)
    loss, grad, hess = fastce.cross_entropy(logits, labels, return_hessian=True, **keywords)
    expected, expected_grad, expected_hess = reference.cross_entropy(
        logits, labels, return_hessian=True, **keywords)
    np.testing.assert_allclose(loss, expected, **tolerance(dtype))
    np.testing.assert_allclose(grad, expected_grad, **tolerance(dtype))
    np.testing.assert_allclose(hess, expected_hess, **tolerance(dtype))


@pytest.mark.parametrize("call", ["labels", "logit_mask", "probs", "kl", "bce", "nll",
                                  "kl_div"])
def test_bitwise_the_same_for_every_thread_count(call):
    rng = np.random.default_rng(4)
    logits, labels, sample_weight = _case(rng, (30000, 12), np.float32)
    keep = rng.random(logits.shape) > 0.2
    target = rng.dirichlet(np.ones(12), 30000).astype(np.float32)

    def run(threads):
        if call == "labels":
            return fastce.cross_entropy(logits, labels, sample_weight=sample_weight,
                                        where=sample_weight > 0.1, return_grad=True,
                                        n_threads=threads)
        if call == "logit_mask":
            return fastce.cross_entropy(logits, labels, where=keep, return_grad=True,
                                        n_threads=threads)
        if call == "probs":
            return fastce.cross_entropy(logits, target, sample_weight=sample_weight,
                                        where=keep, return_grad=True, n_threads=threads)
        if call == "kl":
            return fastce.kl_divergence_with_logits(target, logits, sample_weight=sample_weight,
                                                    return_grad=True, n_threads=threads)
        if call == "bce":
            return fastce.binary_cross_entropy_with_logits(
                logits, (target > 0.1).astype(np.float32), pos_weight=target + 0.5, where=keep,
                return_grad=True, n_threads=threads)
        if call == "nll":
            return fastce.nll_loss(logits, labels, return_grad=True, n_threads=threads)
        return fastce.kl_div(logits, target, reduction="batchmean", return_grad=True,
                             n_threads=threads)

    one = run(1)
    for threads in (2, 3, 8):
        other = run(threads)
        assert one[0].tobytes() == other[0].tobytes()
        assert one[1].tobytes() == other[1].tobytes()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_gradient_in_place_with_masks(dtype):
    rng = np.random.default_rng(5)
    logits, labels, sample_weight = _case(rng, (5000, 10), dtype)
    keep = rng.random(logits.shape) > 0.2
    keep[np.arange(5000), np.where(labels >= 0, labels, 0)] = True
    expected, expected_grad = reference.cross_entropy(logits, labels, where=keep,
                                                      sample_weight=sample_weight,
                                                      return_grad=True)
    buffer = logits.copy()
    loss, grad = fastce.cross_entropy(buffer, labels, where=keep, sample_weight=sample_weight,
                                      return_grad=True, grad_out=buffer)
    assert grad is buffer
    np.testing.assert_allclose(loss, expected, **tolerance(dtype))
    np.testing.assert_allclose(grad, expected_grad, **tolerance(dtype))
    target = (rng.random(logits.shape) > 0.5).astype(dtype)
    expected, expected_grad = reference.binary_cross_entropy_with_logits(
        logits, target, where=keep, pos_weight=sample_weight[:, None] + 0.5, return_grad=True)
    buffer = logits.copy()
    loss, grad = fastce.binary_cross_entropy_with_logits(
        buffer, target, where=keep, pos_weight=sample_weight[:, None] + 0.5, return_grad=True,
        grad_out=buffer)
    np.testing.assert_allclose(loss, expected, **tolerance(dtype))
    np.testing.assert_allclose(grad, expected_grad, **tolerance(dtype))
    log_probs = reference.log_softmax(logits)
    expected, expected_grad = reference.nll_loss(log_probs, labels, return_grad=True)
    loss, grad = fastce.nll_loss(log_probs, labels, return_grad=True, grad_out=log_probs)
    np.testing.assert_allclose(loss, expected, **tolerance(dtype))
    np.testing.assert_array_equal(grad, expected_grad)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_bad_values_found_in_a_late_block(dtype):
    """Values are checked inside the pass: the first bad one, wherever it is."""
    rng = np.random.default_rng(6)
    logits, labels, sample_weight = _case(rng, (50000, 10), dtype)
    sample_weight[41234] = -0.5
    with pytest.raises(ValueError, match=r"sample_weight .*-0\.5 at position \(41234,\)"):
        fastce.cross_entropy(logits, labels, sample_weight=sample_weight)
    with pytest.raises(ValueError, match=r"sample_weight .*-0\.5 at position \(41234,\)"):
        fastce.cross_entropy(logits, labels, sample_weight=sample_weight, return_grad=True)
    # not checked where the sample is left out by where=
    where = np.ones(50000, bool)
    where[41234] = False
    fastce.cross_entropy(logits, labels, sample_weight=sample_weight, where=where)
    pos_weight = np.ones(logits.shape, dtype)
    pos_weight[45000, 3] = np.nan
    with pytest.raises(ValueError, match=r"pos_weight .*nan at position \(45000, 3\)"):
        fastce.binary_cross_entropy_with_logits(logits, np.zeros_like(logits),
                                                pos_weight=pos_weight)
    target = np.full(logits.shape, 0.1, dtype)
    target[47000, 9] = np.inf
    with pytest.raises(ValueError, match=r"target .*inf at position \(47000, 9\)"):
        fastce.kl_div(logits, target)
    labels[48000] = 10
    with pytest.raises(ValueError, match=r"class index 10 at position \(48000,\)"):
        fastce.nll_loss(logits, labels)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_weighted_logsumexp_many_rows(dtype):
    rng = np.random.default_rng(7)
    x = (5 * rng.standard_normal((4000, 37))).astype(dtype)
    b = rng.standard_normal((4000, 37)).astype(dtype)
    b[:, ::4] = 0
    result, sign = fastce.logsumexp(x, b=b, return_sign=True)
    expected, expected_sign = reference.logsumexp(x, b=b, return_sign=True)
    np.testing.assert_array_equal(sign, expected_sign)
    np.testing.assert_allclose(result, expected, rtol=1e-12 if dtype == np.float64 else 2e-6,
                               atol=1e-12 if dtype == np.float64 else 1e-5)
