"""A class axis that is not the last: the column kernels read torch's
(N, C, d1, ...) layout in place. They must agree with the reference (which
moves the axis), with torch's spatial cross-entropy, and with themselves
across thread counts; ignored positions stay exactly 0."""
import numpy as np
import pytest

import fastce
from fastce import reference


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
