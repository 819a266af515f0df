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
    """One benchmark shape: its name, logits and class targets, and a distribution over the
    classes (for the information-theory functions)."""
    rows, n_classes, dtype = SOFTMAX_SHAPES[request.param]
    rows = scaled_rows(rows)
    logits = (rng.standard_normal((rows, n_classes)) * 3).astype(dtype)
    target = rng.integers(0, n_classes, rows)
    probabilities = reference.softmax(logits.astype(np.float64) * 0.5).astype(dtype)
    return {"name": request.param, "logits": logits, "target": target,
            "probabilities": probabilities}


@pytest.fixture(scope="module")
def bce_case(rng):
    n = max(1024, int(BCE_ELEMENTS * SCALE))
    logits = (rng.standard_normal(n) * 4).astype(np.float32)
    target = (rng.random(n) < 0.3).astype(np.float32)
    return logits, target


def measure(benchmark, impl, function, args, kwargs, group):
    """Time IMPLEMENTATIONS[impl].<function>(*args, **kwargs) in the group `group`."""
    benchmark.group = f"{group} (scale {SCALE})"
    benchmark(getattr(IMPLEMENTATIONS[impl], function), *args, **kwargs)


# id: (function, the softmax_case arrays it takes, keyword arguments, group label)
SOFTMAX_BENCHMARKS = {
    "cross_entropy_forward": ("cross_entropy", ("logits", "target"), {}, "forward"),
    "cross_entropy_forward_grad": ("cross_entropy", ("logits", "target"),
                                   {"return_grad": True}, "forward+grad"),
    "log_softmax": ("log_softmax", ("logits",), {}, "log_softmax"),
    "kl_with_logits_forward_grad": ("kl_divergence_with_logits", ("probabilities", "logits"),
                                    {"return_grad": True}, "kl_divergence_with_logits+grad"),
    "entropy": ("entropy", ("probabilities",), {}, "entropy"),
    "cross_entropy_hessian": ("cross_entropy", ("logits", "target"),
                              {"return_hessian": True}, "cross_entropy+hessian"),
}
# id: (function of (logits, target), keyword arguments, group label)
BCE_BENCHMARKS = {
    "bce_forward": ("binary_cross_entropy_with_logits", {}, "bce forward"),
    "bce_forward_grad": ("binary_cross_entropy_with_logits", {"return_grad": True},
                         "bce forward+grad"),
    "focal_forward_grad": ("sigmoid_focal_loss", {"return_grad": True},
                           "sigmoid_focal_loss+grad"),
}


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("measured", list(SOFTMAX_BENCHMARKS))
def test_softmax_shapes(benchmark, softmax_case, measured, impl):
    function, arrays, kwargs, label = SOFTMAX_BENCHMARKS[measured]
    measure(benchmark, impl, function, [softmax_case[a] for a in arrays], kwargs,
            f"{softmax_case['name']} {label}")


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize("measured", list(BCE_BENCHMARKS))
def test_bce_elements(benchmark, bce_case, measured, impl):
    function, kwargs, label = BCE_BENCHMARKS[measured]
    measure(benchmark, impl, function, bce_case, kwargs, label)


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_tiny_call(benchmark, impl):
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((64, 10)).astype(np.float32)
    target = rng.integers(0, 10, 64)
    benchmark.group = "tiny 64x10 (call overhead)"
    benchmark(IMPLEMENTATIONS[impl].cross_entropy, logits, target)
