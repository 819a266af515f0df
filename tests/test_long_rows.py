"""Few, very long rows (C >= 65536, fewer than 64 rows) take the split-row
kernels: each row's passes run in parallel over segments whose (max, sum)
are merged in a fixed order. They must agree with the reference and be
bitwise the same for every thread count."""
import numpy as np
import pytest

import fastce
from fastce import reference

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
def test_cross_entropy_matches_reference(batch, dtype, rtol, smoothing, use_weight):
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


def test_bitwise_the_same_for_every_thread_count(batch):
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
