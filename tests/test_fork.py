"""libgomp is not fork-safe: a child forked after the parent used OpenMP
threads would hang in its first parallel region. fastce runs forked children
serially (no OpenMP region at all), so they finish, with the same result."""
import multiprocessing
import sys

import numpy as np
import pytest

import fastce

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork start method")


def _child(logits, target, queue):
    loss, grad = fastce.cross_entropy(logits, target, return_grad=True, n_threads=2)
    queue.put((float(loss), float(grad.sum()), float(fastce.binary_cross_entropy_with_logits(
        logits, (logits > 0).astype(logits.dtype)))))


def test_forked_child_after_parallel_work_does_not_hang():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((20_000, 100)).astype(np.float32)
    target = rng.integers(0, 100, 20_000)
    # The parent runs parallel regions first (large enough for 2 threads).
    loss, grad = fastce.cross_entropy(logits, target, return_grad=True, n_threads=2)
    bce = fastce.binary_cross_entropy_with_logits(logits, (logits > 0).astype(logits.dtype))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(logits, target, queue))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in its kernel call")
    assert child.exitcode == 0
    child_loss, child_grad_sum, child_bce = queue.get(timeout=10)
    # Bitwise the same for every thread count, so the serial child agrees exactly.
    assert child_loss == float(loss)
    assert child_grad_sum == float(grad.sum())
    assert child_bce == float(bce)
