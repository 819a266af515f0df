"""pytest-benchmark suite for fastce.linear (the contract, "Linear models").

- Logistic regression objective + gradient: fastce's one pass over X against the
  usual NumPy two passes (z = X @ w + b; r = σ(z) − y; g = Xᵀ r / n), on
  1,000,000 x 100 float32 rows scaled by FASTCE_BENCH_SCALE.
- Fused linear cross-entropy (N=4096 scaled, H=256, V=32000, float32) against the
  unfused chain: logits = hidden @ weightᵀ, fastce.cross_entropy, then the two GEMMs.

Each case is measured for every implementation in the same session, so the ratio
between them is what to read; nothing here asserts a timing.
"""
import numpy as np
import pytest

import fastce
from fastce import linear
from fastce.reference import linear as reference_linear

from conftest import SCALE, scaled_rows

LOGISTIC_SHAPE = (1_000_000, 100)
FUSED_SHAPE = (4096, 256, 32_000)  # N, H, V


# ----------------------------------------------------------------------------- logistic

def numpy_logistic_two_gemv(X, y, coef, intercept):
    """The textbook NumPy objective and gradient: one GEMV for z, one for Xᵀ r."""
    n_samples = X.shape[0]
    z = X @ coef + intercept
    loss = np.mean(np.logaddexp(0, z) - y * z)
    residual = 0.5 * (1.0 + np.tanh(0.5 * z)) - y  # σ(z) − y, without overflow
    grad_coef = X.T @ residual / n_samples
    return loss, grad_coef, residual.sum() / n_samples


LOGISTIC_IMPLEMENTATIONS = {
    "fastce": lambda X, y, coef, b: linear.logistic_regression_loss(X, y, coef, b,
                                                                    return_grad=True),
    "numpy-two-gemv": numpy_logistic_two_gemv,
    "reference": lambda X, y, coef, b: reference_linear.logistic_regression_loss(
        X, y, coef, b, return_grad=True),
}


@pytest.fixture(scope="module")
def logistic_case():
    rng = np.random.default_rng(0)
    rows, n_features = LOGISTIC_SHAPE
    rows = scaled_rows(rows)
    X = rng.standard_normal((rows, n_features), dtype=np.float32)
    coef = (rng.standard_normal(n_features) * 0.1).astype(np.float32)
    y = (rng.random(rows) < 0.4).astype(np.float32)
    return X, y, coef, np.float32(0.1)


@pytest.mark.parametrize("impl", list(LOGISTIC_IMPLEMENTATIONS))
def test_logistic_objective_and_gradient(benchmark, logistic_case, impl):
    X, y, coef, intercept = logistic_case
    benchmark.group = f"logistic objective+grad {X.shape[0]}x{X.shape[1]} f32 (scale {SCALE})"
    benchmark(LOGISTIC_IMPLEMENTATIONS[impl], X, y, coef, intercept)


@pytest.mark.parametrize("order", ["C", "F"])
def test_logistic_objective_and_gradient_layout(benchmark, logistic_case, order):
    X, y, coef, intercept = logistic_case
    X = np.asarray(X, order=order)
    benchmark.group = f"logistic objective+grad, memory order (scale {SCALE})"
    benchmark(linear.logistic_regression_loss, X, y, coef, intercept, return_grad=True)


# ----------------------------------------------------------------------------- fused linear CE

def unfused_linear_cross_entropy(hidden, weight, target):
    """logits = hidden @ weightᵀ (N x V held whole), fastce's CE gradient in place, two GEMMs."""
    logits = hidden @ weight.T
    loss, grad_logits = fastce.cross_entropy(logits, target, return_grad=True, grad_out=logits)
    return loss, grad_logits @ weight, grad_logits.T @ hidden


def unfused_forward(hidden, weight, target):
    return fastce.cross_entropy(hidden @ weight.T, target)


# pass: {implementation: function of (hidden, weight, target)}
FUSED_PASSES = {
    "forward+grad": {
        "fused": lambda h, w, t: linear.fused_linear_cross_entropy(h, w, t, return_grad=True),
        "unfused": unfused_linear_cross_entropy,
    },
    "forward": {
        "fused": lambda h, w, t: linear.fused_linear_cross_entropy(h, w, t),
        "unfused": unfused_forward,
    },
}


@pytest.fixture(scope="module")
def fused_case():
    rng = np.random.default_rng(1)
    n_samples, n_hidden, n_classes = FUSED_SHAPE
    n_samples = scaled_rows(n_samples)
    hidden = rng.standard_normal((n_samples, n_hidden), dtype=np.float32)
    weight = rng.standard_normal((n_classes, n_hidden), dtype=np.float32) / np.float32(16.0)
    target = rng.integers(0, n_classes, n_samples)
    return hidden, weight, target


@pytest.mark.parametrize("pass_name, impl",
                         [(p, impl) for p in FUSED_PASSES for impl in FUSED_PASSES[p]])
def test_fused_linear_cross_entropy(benchmark, fused_case, pass_name, impl):
    hidden, weight, target = fused_case
    benchmark.group = (f"linear CE {pass_name} N={hidden.shape[0]} H={hidden.shape[1]} "
                       f"V={weight.shape[0]} f32 (scale {SCALE})")
    benchmark(FUSED_PASSES[pass_name][impl], hidden, weight, target)
