"""Linear models (the contract, "Linear models"): fastce.linear's logistic_regression_loss,
softmax_regression_loss and fused_linear_cross_entropy.

Oracles:
- fastce.reference.linear, the NumPy reference (float64 inside);
- PyTorch autograd in float64 where torch is installed (those tests only);
- central finite differences of the float64 objective;
- scikit-learn's LogisticRegression (binary and multinomial), refitted here with
  scipy.optimize's L-BFGS-B on fastce's objective and gradient, l2 = 1/(C·Σ sw);
- the objective's own identities: a sample weight of 2 is a repeated row, zero total
  weight leaves only the penalty, chunk_size changes nothing but rounding, the
  thread count changes nothing at all.
The peak-memory check of the fused loss runs in a subprocess, reading ru_maxrss.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

import fastce
from fastce import linear
from fastce.reference import linear as reference

from conftest import FLOAT_DTYPES, REDUCTIONS, numerical_gradient, word

LAYOUTS = ("C", "F", "csr", "csc")

# fastce against the reference (float64 inside, on the same rounded inputs) or torch (float64).
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-10, atol=1e-13)}


def tol(dtype):
    return TOL[np.dtype(dtype).type]


def layout(X, kind):
    """X (dense, C order) in one of LAYOUTS."""
    if kind == "C":
        return np.ascontiguousarray(X)
    if kind == "F":
        return np.asfortranarray(X)
    if kind == "csr":
        return sp.csr_matrix(X)
    if kind == "csc":
        return sp.csc_matrix(X)
    raise AssertionError(kind)


def sparse_design(rng, n_samples, n_features, dtype, density=0.3):
    """A dense array with ~70% exact zeros, so that the sparse layouts really are sparse."""
    X = rng.standard_normal((n_samples, n_features))
    X[rng.random(X.shape) > density] = 0.0
    return X.astype(dtype)


def dense(X):
    return X.toarray() if sp.issparse(X) else np.asarray(X)


def as_float(value):
    """A scalar loss is a Python float (numpy.float64 is one)."""
    assert isinstance(value, float), type(value)
    return float(value)


def snapshot(*arrays):
    return [a.copy() for a in arrays]


def assert_unchanged(before, arrays):
    for old, new in zip(before, arrays):
        if sp.issparse(new):
            old, new = old.toarray(), new.toarray()
        assert_array_equal(old, new)


def assert_matches_finite_differences(loss, X, y, coef, intercept, as_intercept=None, **kwargs):
    """A linear model's gradients (coef and intercept) against central differences."""
    as_intercept = as_intercept or (lambda b: b)
    _, grad_coef, grad_intercept = loss(X, y, coef, intercept, return_grad=True, **kwargs)
    numeric_coef = numerical_gradient(lambda w: loss(X, y, w, intercept, **kwargs), coef)
    numeric_intercept = numerical_gradient(
        lambda b: loss(X, y, coef, as_intercept(b), **kwargs), intercept)
    assert_allclose(grad_coef, numeric_coef, rtol=1e-6, atol=1e-9)
    assert_allclose(grad_intercept, numeric_intercept, rtol=1e-6, atol=1e-9)


# ============================================================================ logistic regression

def logistic_problem(n_samples=3001, n_features=17, dtype=np.float64, kind="C", seed=0,
                     weighted=True):
    rng = np.random.default_rng(seed)
    X = sparse_design(rng, n_samples, n_features, dtype)
    coef = (rng.standard_normal(n_features) * 0.7).astype(dtype)
    intercept = 0.3
    z = X.astype(np.float64) @ coef + intercept
    y = (rng.random(n_samples) < 1 / (1 + np.exp(-z))).astype(np.int64)
    sw = rng.uniform(0.0, 3.0, n_samples) if weighted else None
    return layout(X, kind), y, coef, intercept, sw


def assert_linear_close(got, expected, dtype, coef_dtype):
    """(loss, grad_coef, grad_intercept) against the oracle's; the logistic model's
    intercept gradient is a float, the softmax model's an array (or None without one)."""
    loss, grad_coef, grad_intercept = got
    exp_loss, exp_coef, exp_intercept = expected
    assert_allclose(as_float(loss), exp_loss, **tol(dtype))
    assert grad_coef.shape == exp_coef.shape
    assert grad_coef.dtype == coef_dtype
    assert_allclose(grad_coef, exp_coef, **tol(dtype))
    if exp_intercept is None:
        assert grad_intercept is None
    elif np.ndim(exp_intercept) == 0:
        assert_allclose(as_float(grad_intercept), exp_intercept, **tol(dtype))
    else:
        assert grad_intercept.shape == exp_intercept.shape
        assert_allclose(grad_intercept, exp_intercept, **tol(dtype))


@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logistic_matches_reference(dtype, kind, weighted, l2):
    X, y, coef, intercept, sw = logistic_problem(dtype=dtype, kind=kind, weighted=weighted)
    kwargs = dict(sample_weight=sw, l2=l2)
    before = snapshot(X, y, coef) + ([] if sw is None else [sw.copy()])
    got = linear.logistic_regression_loss(X, y, coef, intercept, return_grad=True, **kwargs)
    assert_unchanged(before, [X, y, coef] + ([] if sw is None else [sw]))
    expected = reference.logistic_regression_loss(X, y, coef, intercept, return_grad=True,
                                                  **kwargs)
    assert_linear_close(got, expected, dtype, coef.dtype)
    loss_only = linear.logistic_regression_loss(X, y, coef, intercept, **kwargs)
    assert_allclose(as_float(loss_only), got[0], rtol=1e-12 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logistic_matches_torch(dtype, kind):
    torch = pytest.importorskip("torch")
    X, y, coef, intercept, sw = logistic_problem(dtype=dtype, kind=kind, seed=1)
    l2 = 0.02
    got = linear.logistic_regression_loss(X, y, coef, intercept, sample_weight=sw, l2=l2,
                                          return_grad=True)
    # The oracle sees exactly the compute-dtype values, in float64.
    Xt = torch.tensor(dense(X), dtype=torch.float64)
    w = torch.tensor(coef, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(float(np.asarray(intercept, dtype=dtype)), dtype=torch.float64,
                     requires_grad=True)
    swt = torch.tensor(np.asarray(sw, dtype=dtype), dtype=torch.float64)
    z = Xt @ w + b
    data = torch.nn.functional.binary_cross_entropy_with_logits(
        z, torch.tensor(y, dtype=torch.float64), weight=swt, reduction="sum") / swt.sum()
    objective = data + 0.5 * l2 * (w * w).sum()
    objective.backward()
    expected = (objective.item(), w.grad.numpy(), b.grad.item())
    assert_linear_close(got, expected, dtype, coef.dtype)


@pytest.mark.parametrize("kind", ("C", "csr"))
def test_logistic_finite_differences(kind):
    X, y, coef, intercept, sw = logistic_problem(n_samples=200, n_features=6, kind=kind, seed=2)
    # the logistic model's intercept is a float
    assert_matches_finite_differences(linear.logistic_regression_loss, X, y, coef, intercept,
                                      as_intercept=float, sample_weight=sw, l2=0.1)


@pytest.mark.parametrize("kind", ("C", "F", "csr"))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logistic_bitwise_the_same_for_every_thread_count(dtype, kind):
    X, y, coef, intercept, sw = logistic_problem(n_samples=20000, n_features=50, dtype=dtype,
                                                 kind=kind, seed=3)
    runs = [linear.logistic_regression_loss(X, y, coef, intercept, sample_weight=sw, l2=0.01,
                                            return_grad=True, n_threads=t) for t in (1, 2, 3)]
    for loss, grad_coef, grad_intercept in runs[1:]:
        assert loss == runs[0][0]
        assert_array_equal(grad_coef, runs[0][1])
        assert grad_intercept == runs[0][2]
    again = linear.logistic_regression_loss(X, y, coef, intercept, sample_weight=sw, l2=0.01,
                                            return_grad=True, n_threads=2)
    assert again[0] == runs[0][0] and np.array_equal(again[1], runs[0][1])


def test_logistic_layouts_agree():
    X, y, coef, intercept, sw = logistic_problem(seed=4)
    results = [linear.logistic_regression_loss(layout(X, kind), y, coef, intercept,
                                               sample_weight=sw, l2=0.1, return_grad=True)
               for kind in LAYOUTS]
    for loss, grad_coef, grad_intercept in results[1:]:
        assert_allclose(loss, results[0][0], rtol=1e-12)
        assert_allclose(grad_coef, results[0][1], rtol=1e-10, atol=1e-14)
        assert_allclose(grad_intercept, results[0][2], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("label_dtype", (np.int8, np.int32, np.int64, np.uint8, np.bool_,
                                         np.float32, np.float64))
def test_logistic_label_dtypes(label_dtype):
    X, y, coef, intercept, sw = logistic_problem(n_samples=300, n_features=5, seed=5)
    expected = linear.logistic_regression_loss(X, y, coef, intercept, sample_weight=sw,
                                               return_grad=True)
    got = linear.logistic_regression_loss(X, y.astype(label_dtype), coef, intercept,
                                          sample_weight=sw, return_grad=True)
    assert got[0] == expected[0]
    assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]


@pytest.mark.parametrize("bad", [2, -1, 0.5, np.nan, np.inf])
@pytest.mark.parametrize("return_grad", [False, True])
def test_logistic_rejects_labels_outside_0_1(bad, return_grad):
    X, y, coef, intercept, _ = logistic_problem(n_samples=100, n_features=4, seed=6)
    y = y.astype(np.float64)
    y[37] = bad
    before = snapshot(X, y, coef)
    with pytest.raises(ValueError, match=word("y")):
        linear.logistic_regression_loss(X, y, coef, intercept, return_grad=return_grad)
    assert_unchanged(before, [X, y, coef])


@pytest.mark.parametrize("bad", [-1.0, -1e-300, np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("kind", ("C", "csr"))
def test_logistic_rejects_bad_sample_weight(bad, kind):
    X, y, coef, intercept, sw = logistic_problem(n_samples=100, n_features=4, kind=kind, seed=7)
    sw[41] = bad
    before = snapshot(sw, coef)
    with pytest.raises(ValueError, match=word("sample_weight")):
        linear.logistic_regression_loss(X, y, coef, intercept, sample_weight=sw,
                                        return_grad=True)
    assert_unchanged(before, [sw, coef])


def test_logistic_rejects_sample_weight_of_wrong_shape():
    X, y, coef, intercept, sw = logistic_problem(n_samples=100, n_features=4, seed=7)
    with pytest.raises(ValueError, match=word("sample_weight")):
        linear.logistic_regression_loss(X, y, coef, intercept, sample_weight=sw[:-1])


@pytest.mark.parametrize("kind", ("C", "csr"))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logistic_weight_two_is_a_repeated_row(dtype, kind):
    X, y, coef, intercept, _ = logistic_problem(n_samples=400, n_features=7, dtype=dtype,
                                                kind="C", seed=8)
    sw = np.ones(len(y))
    doubled = [3, 100, 399]
    sw[doubled] = 2.0
    rows = np.concatenate([np.arange(len(y)), doubled])
    weighted = linear.logistic_regression_loss(layout(X, kind), y, coef, intercept,
                                               sample_weight=sw, l2=0.1, return_grad=True)
    repeated = linear.logistic_regression_loss(layout(X[rows], kind), y[rows], coef, intercept,
                                               l2=0.1, return_grad=True)
    assert_linear_close(weighted, repeated, dtype, coef.dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_logistic_zero_total_weight(dtype):
    X, y, coef, intercept, _ = logistic_problem(n_samples=50, n_features=5, dtype=dtype, seed=9)
    l2 = 0.3
    loss, grad_coef, grad_intercept = linear.logistic_regression_loss(
        X, y, coef, intercept, sample_weight=np.zeros(len(y)), l2=l2, return_grad=True)
    w = coef.astype(np.float64)
    assert_allclose(as_float(loss), 0.5 * l2 * np.dot(w, w), **tol(dtype))
    assert_allclose(grad_coef, l2 * w, **tol(dtype))
    assert as_float(grad_intercept) == 0.0
    assert as_float(linear.logistic_regression_loss(
        X, y, coef, intercept, sample_weight=np.zeros(len(y)))) == 0.0


def test_logistic_zero_weight_rows_are_dropped():
    X, y, coef, intercept, sw = logistic_problem(n_samples=300, n_features=6, seed=10)
    sw[::3] = 0.0
    keep = sw > 0
    got = linear.logistic_regression_loss(X, y, coef, intercept, sample_weight=sw, l2=0.2,
                                          return_grad=True)
    expected = linear.logistic_regression_loss(X[keep], y[keep], coef, intercept,
                                               sample_weight=sw[keep], l2=0.2, return_grad=True)
    assert_linear_close(got, expected, np.float64, coef.dtype)


@pytest.mark.parametrize("x_dtype, coef_dtype", [(np.float32, np.float64),
                                                 (np.float64, np.float32)])
def test_logistic_gradient_has_coef_dtype(x_dtype, coef_dtype):
    X, y, coef, intercept, sw = logistic_problem(n_samples=300, n_features=6, seed=11)
    X = X.astype(x_dtype)
    coef = coef.astype(coef_dtype)
    got = linear.logistic_regression_loss(X, y, coef, intercept, sample_weight=sw, l2=0.1,
                                          return_grad=True)
    expected = reference.logistic_regression_loss(X, y, coef, intercept, sample_weight=sw,
                                                  l2=0.1, return_grad=True)
    # The compute dtype is X's: float32 when either X is float32.
    assert_linear_close(got, expected, np.float32, np.dtype(coef_dtype))


def test_logistic_extreme_scores_are_finite():
    """|z| up to 1e3: softplus by the |z| form, no overflow, gradients in [-1, 1]."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((64, 3)) * 300
    y = rng.integers(0, 2, 64)
    coef = np.array([1.0, -2.0, 0.5])
    got = linear.logistic_regression_loss(X, y, coef, 1.0, return_grad=True)
    expected = reference.logistic_regression_loss(X, y, coef, 1.0, return_grad=True)
    assert np.isfinite(got[0]) and np.all(np.isfinite(got[1]))
    assert_linear_close(got, expected, np.float64, coef.dtype)


# ---------------------------------------------------------------------------- against sklearn

def fit_lbfgs(objective, x0):
    result = scipy.optimize.minimize(
        objective, x0, jac=True, method="L-BFGS-B",
        options=dict(maxiter=10000, maxfun=20000, gtol=1e-12, ftol=1e-16))
    _, grad = objective(result.x)
    assert np.max(np.abs(grad)) < 1e-7, (result.message, np.max(np.abs(grad)))
    return result.x


def test_logistic_lbfgs_matches_sklearn():
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(13)
    n_samples, n_features = 2000, 10
    X = rng.standard_normal((n_samples, n_features)) * rng.uniform(0.5, 2.0, n_features)
    true_coef = rng.standard_normal(n_features)
    y = (rng.random(n_samples) < 1 / (1 + np.exp(-(X @ true_coef - 0.5)))).astype(np.int64)
    sw = rng.uniform(0.2, 3.0, n_samples)
    sw[::17] = 0.0
    C = 0.5
    l2 = 1.0 / (C * sw.sum())

    def objective(params):
        loss, grad_coef, grad_intercept = linear.logistic_regression_loss(
            X, y, params[:-1], params[-1], sample_weight=sw, l2=l2, return_grad=True)
        return loss, np.append(grad_coef, grad_intercept)

    params = fit_lbfgs(objective, np.zeros(n_features + 1))
    model = sklearn_linear.LogisticRegression(C=C, tol=1e-10, max_iter=10000)
    model.fit(X, y, sample_weight=sw)
    assert_allclose(params[:-1], model.coef_[0], rtol=0, atol=1e-4)
    assert_allclose(params[-1], model.intercept_[0], rtol=0, atol=1e-4)


def test_softmax_lbfgs_matches_sklearn_multinomial():
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(14)
    n_samples, n_features, n_classes = 2000, 10, 3
    X = rng.standard_normal((n_samples, n_features)) * rng.uniform(0.5, 2.0, n_features)
    true_coef = rng.standard_normal((n_classes, n_features))
    logits = X @ true_coef.T + np.array([0.5, -0.5, 0.0])
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    y = (rng.random((n_samples, 1)) > np.cumsum(probs, axis=1)).sum(axis=1).astype(np.int64)
    sw = rng.uniform(0.2, 3.0, n_samples)
    C = 0.5
    l2 = 1.0 / (C * sw.sum())
    size = n_classes * n_features

    def objective(params):
        loss, grad_coef, grad_intercept = linear.softmax_regression_loss(
            X, y, params[:size].reshape(n_classes, n_features), params[size:],
            sample_weight=sw, l2=l2, return_grad=True)
        return loss, np.concatenate([grad_coef.ravel(), grad_intercept])

    params = fit_lbfgs(objective, np.zeros(size + n_classes))
    coef, intercept = params[:size].reshape(n_classes, n_features), params[size:]
    model = sklearn_linear.LogisticRegression(C=C, tol=1e-10, max_iter=10000)
    model.fit(X, y, sample_weight=sw)
    assert model.coef_.shape == (n_classes, n_features)  # multinomial, not one-vs-rest
    assert_allclose(coef, model.coef_, rtol=0, atol=1e-4)
    # The intercept is unpenalised: identified only up to a common shift.
    assert_allclose(intercept - intercept.mean(), model.intercept_ - model.intercept_.mean(),
                    rtol=0, atol=1e-4)


# ============================================================================ softmax regression

def softmax_problem(n_samples=1501, n_features=13, n_classes=5, dtype=np.float64, kind="C",
                    seed=20, weighted=True, with_intercept=True):
    rng = np.random.default_rng(seed)
    X = sparse_design(rng, n_samples, n_features, dtype)
    coef = (rng.standard_normal((n_classes, n_features)) * 0.8).astype(dtype)
    intercept = rng.standard_normal(n_classes).astype(dtype) if with_intercept else None
    y = rng.integers(0, n_classes, n_samples)
    sw = rng.uniform(0.0, 3.0, n_samples) if weighted else None
    return layout(X, kind), y, coef, intercept, sw


@pytest.mark.parametrize("l2", [0.0, 0.05])
@pytest.mark.parametrize("with_intercept", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_softmax_matches_reference(dtype, kind, weighted, with_intercept, l2):
    X, y, coef, intercept, sw = softmax_problem(dtype=dtype, kind=kind, weighted=weighted,
                                                with_intercept=with_intercept)
    kwargs = dict(sample_weight=sw, l2=l2)
    before = snapshot(X, y, coef)
    got = linear.softmax_regression_loss(X, y, coef, intercept, return_grad=True, **kwargs)
    assert_unchanged(before, [X, y, coef])
    expected = reference.softmax_regression_loss(X, y, coef, intercept, return_grad=True,
                                                 **kwargs)
    assert_linear_close(got, expected, dtype, coef.dtype)
    loss_only = linear.softmax_regression_loss(X, y, coef, intercept, **kwargs)
    assert_allclose(as_float(loss_only), got[0], rtol=1e-12 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("with_intercept", [False, True])
@pytest.mark.parametrize("kind", ("C", "F", "csr"))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_softmax_matches_torch(dtype, kind, with_intercept):
    torch = pytest.importorskip("torch")
    X, y, coef, intercept, sw = softmax_problem(dtype=dtype, kind=kind, seed=21,
                                                with_intercept=with_intercept)
    l2 = 0.03
    got = linear.softmax_regression_loss(X, y, coef, intercept, sample_weight=sw, l2=l2,
                                         return_grad=True)
    Xt = torch.tensor(dense(X), dtype=torch.float64)
    W = torch.tensor(coef, dtype=torch.float64, requires_grad=True)
    logits = Xt @ W.T
    if with_intercept:
        b = torch.tensor(intercept, dtype=torch.float64, requires_grad=True)
        logits = logits + b
    swt = torch.tensor(np.asarray(sw, dtype=dtype), dtype=torch.float64)
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="none")
    objective = (swt * ce).sum() / swt.sum() + 0.5 * l2 * (W * W).sum()
    objective.backward()
    expected = (objective.item(), W.grad.numpy(), b.grad.numpy() if with_intercept else None)
    assert_linear_close(got, expected, dtype, coef.dtype)


@pytest.mark.parametrize("kind", ("C", "csr"))
def test_softmax_finite_differences(kind):
    X, y, coef, intercept, sw = softmax_problem(n_samples=150, n_features=5, n_classes=4,
                                                kind=kind, seed=22)
    assert_matches_finite_differences(linear.softmax_regression_loss, X, y, coef, intercept,
                                      sample_weight=sw, l2=0.1)


def test_softmax_intercept_none_is_a_zero_intercept():
    X, y, coef, _, sw = softmax_problem(seed=23)
    without = linear.softmax_regression_loss(X, y, coef, None, sample_weight=sw, l2=0.1,
                                             return_grad=True)
    zero = linear.softmax_regression_loss(X, y, coef, np.zeros(coef.shape[0]), sample_weight=sw,
                                          l2=0.1, return_grad=True)
    assert without[2] is None
    assert zero[2] is not None and zero[2].shape == (coef.shape[0],)
    assert_allclose(without[0], zero[0], rtol=1e-13)
    assert_allclose(without[1], zero[1], rtol=1e-12, atol=1e-15)


def test_softmax_intercept_is_not_penalised():
    X, y, coef, intercept, sw = softmax_problem(n_samples=300, seed=24)
    l2 = 0.7
    plain = linear.softmax_regression_loss(X, y, coef, intercept, sample_weight=sw,
                                           return_grad=True)
    penalised = linear.softmax_regression_loss(X, y, coef, intercept, sample_weight=sw, l2=l2,
                                               return_grad=True)
    assert_allclose(penalised[0] - plain[0], 0.5 * l2 * np.sum(coef ** 2), rtol=1e-10)
    assert_allclose(penalised[1] - plain[1], l2 * coef, rtol=1e-9, atol=1e-13)
    assert_allclose(penalised[2], plain[2], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ("C", "csr"))
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_softmax_bitwise_the_same_for_every_thread_count(dtype, kind):
    X, y, coef, intercept, sw = softmax_problem(n_samples=20000, n_features=50, n_classes=7,
                                                dtype=dtype, kind=kind, seed=25)
    runs = [linear.softmax_regression_loss(X, y, coef, intercept, sample_weight=sw, l2=0.01,
                                           return_grad=True, n_threads=t) for t in (1, 2, 3)]
    for loss, grad_coef, grad_intercept in runs[1:]:
        assert loss == runs[0][0]
        assert_array_equal(grad_coef, runs[0][1])
        assert_array_equal(grad_intercept, runs[0][2])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_softmax_weight_two_is_a_repeated_row(dtype):
    X, y, coef, intercept, _ = softmax_problem(n_samples=400, dtype=dtype, seed=26)
    sw = np.ones(len(y))
    doubled = [0, 17, 399]
    sw[doubled] = 2.0
    rows = np.concatenate([np.arange(len(y)), doubled])
    weighted = linear.softmax_regression_loss(X, y, coef, intercept, sample_weight=sw, l2=0.1,
                                              return_grad=True)
    repeated = linear.softmax_regression_loss(X[rows], y[rows], coef, intercept, l2=0.1,
                                              return_grad=True)
    assert_linear_close(weighted, repeated, dtype, coef.dtype)


def test_softmax_zero_total_weight():
    X, y, coef, intercept, _ = softmax_problem(n_samples=50, seed=27)
    l2 = 0.3
    loss, grad_coef, grad_intercept = linear.softmax_regression_loss(
        X, y, coef, intercept, sample_weight=np.zeros(len(y)), l2=l2, return_grad=True)
    assert_allclose(as_float(loss), 0.5 * l2 * np.sum(coef ** 2), rtol=1e-13)
    assert_allclose(grad_coef, l2 * coef, rtol=1e-13)
    assert_array_equal(grad_intercept, np.zeros_like(intercept))


@pytest.mark.parametrize("bad", [5, -1, 100])
def test_softmax_rejects_class_out_of_range(bad):
    X, y, coef, intercept, _ = softmax_problem(n_samples=60, seed=28)
    y[33] = bad
    before = snapshot(X, y, coef, intercept)
    with pytest.raises(ValueError, match=word("y")):
        linear.softmax_regression_loss(X, y, coef, intercept, return_grad=True)
    assert_unchanged(before, [X, y, coef, intercept])


def test_softmax_rejects_bad_sample_weight():
    X, y, coef, intercept, sw = softmax_problem(n_samples=60, seed=29)
    sw[5] = np.nan
    with pytest.raises(ValueError, match=word("sample_weight")):
        linear.softmax_regression_loss(X, y, coef, intercept, sample_weight=sw)
    sw[5] = -2.0
    with pytest.raises(ValueError, match=word("sample_weight")):
        linear.softmax_regression_loss(X, y, coef, intercept, sample_weight=sw,
                                       return_grad=True)


# ============================================================================ fused linear + CE

def fused_problem(n_samples=150, n_hidden=33, n_classes=301, dtype=np.float64, seed=40,
                  ignored=True):
    rng = np.random.default_rng(seed)
    hidden = rng.standard_normal((n_samples, n_hidden)).astype(dtype)
    weight = (rng.standard_normal((n_classes, n_hidden)) / np.sqrt(n_hidden) * 2).astype(dtype)
    bias = rng.standard_normal(n_classes).astype(dtype)
    target = rng.integers(0, n_classes, n_samples)
    if ignored:
        target[::7] = -100
    return hidden, weight, bias, target


def assert_fused_close(got, expected, dtype, reduction, tolerance=None):
    tolerance = tolerance or tol(dtype)
    assert len(got) == len(expected)
    loss, exp_loss = got[0], expected[0]
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.shape == np.shape(exp_loss)
        assert loss.dtype == dtype
        assert_allclose(loss, exp_loss, **tolerance)
    else:
        assert_allclose(as_float(loss), exp_loss, **tolerance)
    for grad, exp_grad in zip(got[1:], expected[1:]):
        assert grad.shape == np.shape(exp_grad)
        assert grad.dtype == dtype
        assert_allclose(grad, exp_grad, **tolerance)


@pytest.mark.parametrize("chunk_size", [None, 7])
@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fused_matches_reference(dtype, reduction, smoothing, use_bias, chunk_size):
    hidden, weight, bias, target = fused_problem(dtype=dtype)
    kwargs = dict(bias=bias if use_bias else None, label_smoothing=smoothing,
                  reduction=reduction, chunk_size=chunk_size)
    before = snapshot(hidden, weight, bias, target)
    got = linear.fused_linear_cross_entropy(hidden, weight, target, return_grad=True, **kwargs)
    assert_unchanged(before, [hidden, weight, bias, target])
    expected = reference.fused_linear_cross_entropy(hidden, weight, target, return_grad=True,
                                                    **kwargs)
    assert_fused_close(got, expected, dtype, reduction)
    loss_only = linear.fused_linear_cross_entropy(hidden, weight, target, **kwargs)
    assert_allclose(loss_only, got[0], rtol=1e-12 if dtype == np.float64 else 1e-6)


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fused_matches_torch(dtype, reduction, smoothing, use_bias):
    torch = pytest.importorskip("torch")
    hidden, weight, bias, target = fused_problem(dtype=dtype, seed=41)
    got = linear.fused_linear_cross_entropy(
        hidden, weight, target, bias=bias if use_bias else None, label_smoothing=smoothing,
        reduction=reduction, chunk_size=16, return_grad=True)
    h = torch.tensor(hidden, dtype=torch.float64, requires_grad=True)
    W = torch.tensor(weight, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float64, requires_grad=True) if use_bias else None
    loss = torch.nn.functional.cross_entropy(
        torch.nn.functional.linear(h, W, b), torch.tensor(target), ignore_index=-100,
        label_smoothing=smoothing, reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    expected = [loss.detach().numpy() if reduction == "none" else loss.item(),
                h.grad.numpy(), W.grad.numpy()]
    if use_bias:
        expected.append(b.grad.numpy())
    assert_fused_close(got, expected, dtype, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_fused_custom_ignore_index_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    hidden, weight, bias, target = fused_problem(n_classes=20, seed=42, ignored=False)
    target[::5] = 3  # a class in range, ignored
    got = linear.fused_linear_cross_entropy(hidden, weight, target, bias=bias, ignore_index=3,
                                            label_smoothing=0.1, reduction=reduction,
                                            return_grad=True)
    h = torch.tensor(hidden, requires_grad=True)
    W = torch.tensor(weight, requires_grad=True)
    b = torch.tensor(bias, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(
        torch.nn.functional.linear(h, W, b), torch.tensor(target), ignore_index=3,
        label_smoothing=0.1, reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    expected = [loss.detach().numpy() if reduction == "none" else loss.item(),
                h.grad.numpy(), W.grad.numpy(), b.grad.numpy()]
    assert_fused_close(got, expected, np.float64, reduction)
    assert np.all(got[1][target == 3] == 0)


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fused_chunk_size_changes_only_rounding(dtype, reduction, use_bias):
    hidden, weight, bias, target = fused_problem(n_samples=61, dtype=dtype, seed=43)
    kwargs = dict(bias=bias if use_bias else None, label_smoothing=0.05, reduction=reduction,
                  return_grad=True)
    runs = [linear.fused_linear_cross_entropy(hidden, weight, target, chunk_size=c, **kwargs)
            for c in (None, 1, 7, 61, 64, 1000)]
    rounding = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5,
                                                                              atol=1e-6)
    for run in runs[1:]:
        assert_fused_close(run, runs[0], dtype, reduction, rounding)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_fused_rejects_bad_chunk_size(bad):
    hidden, weight, _, target = fused_problem(n_samples=10, n_classes=11)
    with pytest.raises((ValueError, TypeError), match=word("chunk_size")):
        linear.fused_linear_cross_entropy(hidden, weight, target, chunk_size=bad)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fused_bitwise_the_same_for_every_thread_count(dtype):
    hidden, weight, bias, target = fused_problem(n_samples=1000, n_hidden=40, n_classes=500,
                                                 dtype=dtype, seed=44)
    runs = [linear.fused_linear_cross_entropy(hidden, weight, target, bias=bias,
                                              label_smoothing=0.1, chunk_size=64,
                                              return_grad=True, n_threads=t) for t in (1, 2, 3)]
    for run in runs[1:]:
        assert run[0] == runs[0][0]
        for grad, first in zip(run[1:], runs[0][1:]):
            assert_array_equal(grad, first)


@pytest.mark.parametrize("use_bias", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fused_all_ignored_mean_is_zero(dtype, smoothing, use_bias):
    hidden, weight, bias, target = fused_problem(n_samples=20, n_classes=30, dtype=dtype,
                                                 seed=45)
    target[:] = -100
    got = linear.fused_linear_cross_entropy(hidden, weight, target,
                                            bias=bias if use_bias else None,
                                            label_smoothing=smoothing, chunk_size=6,
                                            return_grad=True)
    assert as_float(got[0]) == 0.0
    assert len(got) == (4 if use_bias else 3)
    for grad, like in zip(got[1:], (hidden, weight, bias)):
        assert grad.shape == like.shape and grad.dtype == dtype
        assert not np.any(grad)
    assert as_float(linear.fused_linear_cross_entropy(hidden, weight, target)) == 0.0
    summed = linear.fused_linear_cross_entropy(hidden, weight, target, reduction="sum")
    assert as_float(summed) == 0.0


def test_fused_finite_differences():
    hidden, weight, bias, target = fused_problem(n_samples=9, n_hidden=4, n_classes=6, seed=46)
    kwargs = dict(label_smoothing=0.1, chunk_size=4)
    _, grad_hidden, grad_weight, grad_bias = linear.fused_linear_cross_entropy(
        hidden, weight, target, bias=bias, return_grad=True, **kwargs)

    def loss(h=hidden, w=weight, b=bias):
        return linear.fused_linear_cross_entropy(h, w, target, bias=b, **kwargs)

    assert_allclose(grad_hidden, numerical_gradient(lambda h: loss(h=h), hidden),
                    rtol=1e-6, atol=1e-9)
    assert_allclose(grad_weight, numerical_gradient(lambda w: loss(w=w), weight),
                    rtol=1e-6, atol=1e-9)
    assert_allclose(grad_bias, numerical_gradient(lambda b: loss(b=b), bias),
                    rtol=1e-6, atol=1e-9)


def test_fused_equals_cross_entropy_of_the_logits():
    hidden, weight, bias, target = fused_problem(n_samples=40, seed=47)
    logits = hidden @ weight.T + bias
    for reduction in REDUCTIONS:
        expected = fastce.cross_entropy(logits, target, label_smoothing=0.1, reduction=reduction)
        got = linear.fused_linear_cross_entropy(hidden, weight, target, bias=bias,
                                                label_smoothing=0.1, reduction=reduction)
        assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


PEAK_MEMORY_SCRIPT = textwrap.dedent("""
    import resource
    import numpy as np
    from fastce import linear

    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((4096, 64), dtype=np.float32)
    weight = rng.standard_normal((50000, 64), dtype=np.float32) * np.float32(0.125)
    target = rng.integers(0, 50000, 4096)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loss, grad_hidden, grad_weight = linear.fused_linear_cross_entropy(
        hidden, weight, target, return_grad=True, chunk_size=256)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert np.isfinite(loss) and grad_weight.shape == weight.shape
    print(before, after)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc (Linux)")
def test_fused_peak_memory_is_far_below_the_full_logits(tmp_path):
    """N x V float32 logits would be 4096 * 50000 * 4 B = 819 MB; chunks of 256 rows are 51 MB.

    The subprocess runs in tmp_path: `python -c` puts its working directory first
    on sys.path, and from the project root that would be the uncompiled source tree."""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastce.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    completed = subprocess.run([sys.executable, "-c", PEAK_MEMORY_SCRIPT], env=env,
                               capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    before_kb, after_kb = map(int, completed.stdout.split())
    increase = (after_kb - before_kb) * 1024
    full_logits = 4096 * 50000 * 4
    print(f"peak RSS increase: {increase / 1e6:.1f} MB (full logits {full_logits / 1e6:.0f} MB)")
    assert increase < 300e6, increase
