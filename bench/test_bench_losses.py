"""pytest-benchmark suite: fastce against fastce.reference on the benchmark shapes.

Each case is measured for both implementations in the same session, so the
ratio between them is what to read; nothing here asserts a timing.
"""
import numpy as np
import pytest

import fastce
from fastce import reference

from conftest import BCE_ELEMENTS, SCALE, SOFTMAX_SHAPES, scaled_rows

IMPLEMENTATIONS = {"fastce": fastce, "reference": reference}


@pytest.fixture(scope="module", params=list(SOFTMAX_SHAPES))
def softmax_case(request, rng):
    rows, n_classes, dtype = SOFTMAX_SHAPES[request.param]
    rows = scaled_rows(rows)
    logits = (rng.standard_normal((rows, n_classes)) * 3).astype(dtype)
    target = rng.integers(0, n_classes, rows)
    return request.param, logits, target


@pytest.fixture(scope="module")
def bce_case(rng):
    n = max(1024, int(BCE_ELEMENTS * SCALE))
    logits = (rng.standard_normal(n) * 4).astype(np.float32)
    target = (rng.random(n) < 0.3).astype(np.float32)
    return logits, target


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_cross_entropy_forward(benchmark, softmax_case, impl):
    name, logits, target = softmax_case
    benchmark.group = f"{name} forward (scale {SCALE})"
    benchmark(IMPLEMENTATIONS[impl].cross_entropy, logits, target)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_cross_entropy_forward_grad(benchmark, softmax_case, impl):
    name, logits, target = softmax_case
    benchmark.group = f"{name} forward+grad (scale {SCALE})"
    benchmark(IMPLEMENTATIONS[impl].cross_entropy, logits, target, return_grad=True)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_log_softmax(benchmark, softmax_case, impl):
    name, logits, _ = softmax_case
    benchmark.group = f"{name} log_softmax (scale {SCALE})"
    benchmark(IMPLEMENTATIONS[impl].log_softmax, logits)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_bce_forward(benchmark, bce_case, impl):
    logits, target = bce_case
    benchmark.group = f"bce forward (scale {SCALE})"
    benchmark(IMPLEMENTATIONS[impl].binary_cross_entropy_with_logits, logits, target)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_bce_forward_grad(benchmark, bce_case, impl):
    logits, target = bce_case
    benchmark.group = f"bce forward+grad (scale {SCALE})"
    benchmark(IMPLEMENTATIONS[impl].binary_cross_entropy_with_logits, logits, target,
              return_grad=True)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_tiny_call(benchmark, impl):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((64, 10)).astype(np.float32)
    target = rng.integers(0, 10, 64)
    benchmark.group = "tiny 64x10 (call overhead)"
    benchmark(IMPLEMENTATIONS[impl].cross_entropy, logits, target)


@pytest.fixture(scope="module")
def distribution_case(softmax_case):
    name, logits, _ = softmax_case
    probabilities = reference.softmax(logits.astype(np.float64) * 0.5).astype(logits.dtype)
    return name, logits, probabilities


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_kl_with_logits_forward_grad(benchmark, distribution_case, impl):
    name, logits, probabilities = distribution_case
    benchmark.group = f"{name} kl_divergence_with_logits+grad (scale {SCALE})"
    benchmark(IMPLEMENTATIONS[impl].kl_divergence_with_logits, probabilities, logits,
              return_grad=True)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_entropy(benchmark, distribution_case, impl):
    name, _, probabilities = distribution_case
    benchmark.group = f"{name} entropy (scale {SCALE})"
    benchmark(IMPLEMENTATIONS[impl].entropy, probabilities)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_focal_forward_grad(benchmark, bce_case, impl):
    logits, target = bce_case
    benchmark.group = f"sigmoid_focal_loss+grad (scale {SCALE})"
    benchmark(IMPLEMENTATIONS[impl].sigmoid_focal_loss, logits, target, return_grad=True)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_cross_entropy_hessian(benchmark, softmax_case, impl):
    name, logits, target = softmax_case
    benchmark.group = f"{name} cross_entropy+hessian (scale {SCALE})"
    benchmark(IMPLEMENTATIONS[impl].cross_entropy, logits, target, return_hessian=True)
