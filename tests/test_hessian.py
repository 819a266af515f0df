"""Second order (the contract, "Second order"): return_hessian=True on
binary_cross_entropy_with_logits, logistic_loss and cross_entropy (class indices) returns
(loss, grad, hess), hess being the diagonal of the Hessian of the returned loss with
respect to the logits.

Oracles:
- the closed forms, from SciPy's expit and softmax;
- central finite differences of the gradient;
- PyTorch's torch.autograd.functional.hessian where torch is installed (those tests only);
- fastce.reference.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import expit, softmax

import fastce
from fastce import reference

from conftest import FLOAT_DTYPES, REDUCTIONS, word

PROPERTY = settings(max_examples=40, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- problems
#
# A case is (function name, first argument, target, keywords). The keywords cover
# weights, pos_weight, label_smoothing and ignore_index.

BINARY_CASES = ("plain", "weight", "pos_weight", "weight_pos_weight", "zero_weight")
LOGISTIC_CASES = ("plain", "weight", "zero_weight")
CE_CASES = ("plain", "weight", "ignore", "smoothing", "weight_smoothing_ignore",
            "zero_class_weight", "full_smoothing")


def binary_case(case, rng, shape=(6, 4), dtype=np.float64, scale=3.0):
    logits = (scale * rng.standard_normal(shape)).astype(dtype)
    target = rng.choice([0.0, 1.0, 0.25, 0.75], size=shape)        # exact in float32
    kwargs = {}
    if "weight" in case.replace("pos_weight", ""):
        kwargs["weight"] = rng.uniform(0.2, 2.0, shape)
    if case == "zero_weight":
        kwargs["weight"] = rng.uniform(0.2, 2.0, shape)
        kwargs["weight"][1, :] = 0.0
        logits[1, 0] = np.nan                     # silenced by its zero weight
    if "pos_weight" in case:
        kwargs["pos_weight"] = rng.uniform(0.5, 3.0, shape[-1])
    return "binary_cross_entropy_with_logits", logits, target, kwargs


def logistic_case(case, rng, shape=(6, 4), dtype=np.float64, scale=3.0):
    scores = (scale * rng.standard_normal(shape)).astype(dtype)
    target = rng.choice([-1.0, 1.0], size=shape)
    kwargs = {}
    if "weight" in case:
        kwargs["weight"] = rng.uniform(0.2, 2.0, shape[-1])       # broadcast per column
    if case == "zero_weight":
        kwargs["weight"][2] = 0.0
    return "logistic_loss", scores, target, kwargs


def ce_case(case, rng, shape=(7, 5), dtype=np.float64, scale=3.0, axis=-1):
    logits = (scale * rng.standard_normal(shape)).astype(dtype)
    n_classes = shape[axis]
    target_shape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    target = rng.integers(0, n_classes, size=target_shape)
    kwargs = {"axis": axis} if axis != -1 else {}
    if "weight" in case:
        kwargs["weight"] = rng.uniform(0.2, 2.0, n_classes)
    if case == "zero_class_weight":
        kwargs["weight"] = rng.uniform(0.2, 2.0, n_classes)
        kwargs["weight"][1] = 0.0
    if "ignore" in case:
        target.flat[[0, 3]] = -100
    if "smoothing" in case:
        kwargs["label_smoothing"] = 1.0 if case == "full_smoothing" else 0.2
    return "cross_entropy", logits, target, kwargs


def all_cases():
    cases = [("bcewl", c) for c in BINARY_CASES]
    cases += [("logistic", c) for c in LOGISTIC_CASES]
    cases += [("ce", c) for c in CE_CASES]
    return cases


def make(family, case, seed, **kwargs):
    """The (name, first, target, kwargs) problem of `case` in `family`, drawn from
    default_rng(seed): a test's own seed, or a Generator that several problems share."""
    return {"bcewl": binary_case, "logistic": logistic_case, "ce": ce_case}[family](
        case, np.random.default_rng(seed), **kwargs)


def with_hessian(name, first, target, reduction="mean", **kwargs):
    return getattr(fastce, name)(first, target, reduction=reduction, return_hessian=True,
                                 **kwargs)


def reduction_scale(name, first, target, reduction, kwargs):
    """The reduction's scale s: 1, or 1 / (the mean's denominator)."""
    if reduction != "mean":
        return 1.0
    if name != "cross_entropy":
        return 1.0 / first.size
    weight = kwargs.get("weight", np.ones(first.shape[kwargs.get("axis", -1)]))
    kept = target != -100
    return 1.0 / np.sum(weight[target[kept]])


# ----------------------------------------------------------------------------- closed forms

def weight_factor(name, first, target, reduction, kwargs):
    """Everything in the documented diagonal Hessian except sigma(z) sigma(-z) or p_c (1 - p_c):
    the sample's weight factor times the reduction's scale, broadcast to first's shape."""
    scale = reduction_scale(name, first, target, reduction, kwargs)
    shape = np.shape(first)
    if name == "binary_cross_entropy_with_logits":
        pos_weight = kwargs.get("pos_weight", 1.0)
        weight = np.broadcast_to(kwargs.get("weight", 1.0), shape)
        return weight * ((1 - target) + pos_weight * target) * scale
    if name == "logistic_loss":
        return np.broadcast_to(kwargs.get("weight", 1.0), shape) * scale
    axis = kwargs.get("axis", -1)
    n_classes = shape[axis]
    weight = kwargs.get("weight", np.ones(n_classes))
    eps = kwargs.get("label_smoothing", 0.0)
    ignored = target == -100
    y = np.where(ignored, 0, target)
    factor = np.where(ignored, 0.0, (1 - eps) * weight[y] + eps / n_classes * weight.sum())
    return np.broadcast_to(np.expand_dims(factor, axis), shape) * scale


def curvature(name, first, kwargs):
    """sigma(z) sigma(-z), or p_c (1 - p_c) along the class axis, in float64."""
    z = np.asarray(first, dtype=np.float64)
    if name == "cross_entropy":
        p = softmax(z, axis=kwargs.get("axis", -1))
        return p * (1 - p)
    return expit(z) * expit(-z)


def closed_form(name, first, target, reduction, kwargs):
    """The documented diagonal Hessian in float64; a zero factor gives exactly 0, even at a NaN logit."""
    factor = weight_factor(name, first, target, reduction, kwargs)
    with np.errstate(invalid="ignore"):
        return np.where(factor == 0, 0.0, factor * curvature(name, first, kwargs))


@pytest.mark.parametrize("family, case", all_cases())
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_hessian_matches_closed_form(family, case, reduction, dtype):
    name, first, target, kwargs = make(family, case, 1, dtype=dtype)
    loss, grad, hess = with_hessian(name, first, target, reduction, **kwargs)
    assert hess.shape == first.shape and hess.dtype == dtype
    assert grad.shape == first.shape and grad.dtype == dtype
    expected = closed_form(name, first, target, reduction, kwargs)
    if dtype == np.float64:
        assert_allclose(hess, expected, rtol=1e-12, atol=1e-300)
    else:
        assert_allclose(hess, expected, rtol=2e-6, atol=2e-7 * np.max(expected))


@pytest.mark.parametrize("axis, shape", [(0, (5, 6)), (1, (4, 5, 3)), (-1, (4, 3, 5))])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_hessian_along_any_axis(axis, shape, reduction):
    rng = np.random.default_rng(2)
    name, logits, target, kwargs = ce_case("weight_smoothing_ignore", rng, shape=shape,
                                           axis=axis)
    _, _, hess = with_hessian(name, logits, target, reduction, **kwargs)
    assert hess.shape == logits.shape
    assert_allclose(hess, closed_form(name, logits, target, reduction, kwargs), rtol=1e-12,
                    atol=1e-300)


# ----------------------------------------------------------------------------- finite differences

@pytest.mark.parametrize("family, case", all_cases())
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hessian_matches_finite_differences_of_the_gradient(family, case, reduction):
    name, first, target, kwargs = make(family, case, 3, shape=(5, 4))
    _, _, hess = with_hessian(name, first, target, reduction, **kwargs)
    function = getattr(fastce, name)

    def grad_at(z):
        return function(z, target, reduction=reduction, return_grad=True, **kwargs)[1]

    h = 1e-5
    numerical = np.zeros_like(first)
    for index in np.ndindex(*first.shape):
        if np.isnan(first[index]):
            continue
        up, down = first.copy(), first.copy()
        up[index] += h
        down[index] -= h
        numerical[index] = (grad_at(up)[index] - grad_at(down)[index]) / (2 * h)
    scale = reduction_scale(name, first, target, reduction, kwargs)
    finite = ~np.isnan(first)
    assert_allclose(hess[finite], numerical[finite], rtol=1e-6, atol=1e-9 * scale)


# ----------------------------------------------------------------------------- PyTorch

def torch_hessian_diagonal(torch, name, first, target, reduction, kwargs):
    """diag of torch.autograd.functional.hessian of the (summed) loss."""
    F = torch.nn.functional
    y = torch.tensor(target)

    def loss_of(z):
        if name == "binary_cross_entropy_with_logits":
            weight = kwargs.get("weight")
            pos_weight = kwargs.get("pos_weight")
            loss = F.binary_cross_entropy_with_logits(
                z, y, weight=None if weight is None else torch.tensor(weight),
                pos_weight=None if pos_weight is None else torch.tensor(pos_weight),
                reduction=reduction)
        elif name == "logistic_loss":
            weight = torch.tensor(np.broadcast_to(kwargs.get("weight", 1.0), first.shape).copy())
            per_element = weight * F.softplus(-y * z)
            loss = {"none": per_element, "sum": per_element.sum(),
                    "mean": per_element.mean()}[reduction]
        else:
            weight = kwargs.get("weight")
            axis = kwargs.get("axis", -1)
            zc = torch.movedim(z, axis % z.dim(), 1) if z.dim() > 2 else \
                (z.T if axis % 2 == 0 else z)
            loss = F.cross_entropy(zc, y, weight=None if weight is None else torch.tensor(weight),
                                   ignore_index=-100,
                                   label_smoothing=kwargs.get("label_smoothing", 0.0),
                                   reduction=reduction)
        return loss.sum()

    z = torch.tensor(np.asarray(first, dtype=np.float64))
    full = torch.autograd.functional.hessian(loss_of, z)
    n = z.numel()
    return torch.diagonal(full.reshape(n, n)).reshape(first.shape).numpy()


@pytest.mark.parametrize("family, case", [(f, c) for f, c in all_cases() if c != "zero_weight"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hessian_matches_torch_autograd(family, case, reduction):
    torch = pytest.importorskip("torch")
    name, first, target, kwargs = make(family, case, 4, shape=(5, 4))
    _, _, hess = with_hessian(name, first, target, reduction, **kwargs)
    expected = torch_hessian_diagonal(torch, name, first, target, reduction, kwargs)
    assert_allclose(hess, expected, rtol=1e-10, atol=1e-14)


def test_cross_entropy_hessian_with_class_axis_1_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    name, logits, target, kwargs = ce_case("weight_smoothing_ignore", rng, shape=(3, 4, 2),
                                           axis=1)
    for reduction in REDUCTIONS:
        _, _, hess = with_hessian(name, logits, target, reduction, **kwargs)
        expected = torch_hessian_diagonal(torch, name, logits, target, reduction, kwargs)
        assert_allclose(hess, expected, rtol=1e-10, atol=1e-14)


def test_binary_hessian_matches_torch_double_backward():
    """For an elementwise loss the Hessian is diagonal: d(sum of grad)/dz is its diagonal."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(6)
    _, logits, target, kwargs = binary_case("weight_pos_weight", rng, shape=(50, 6))
    z = torch.tensor(logits, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, torch.tensor(target),
                                              weight=torch.tensor(kwargs["weight"]),
                                              pos_weight=torch.tensor(kwargs["pos_weight"]))
    (grad,) = torch.autograd.grad(loss, z, create_graph=True)
    (diagonal,) = torch.autograd.grad(grad.sum(), z)
    got_loss, got_grad, hess = fastce.binary_cross_entropy_with_logits(
        logits, target, return_hessian=True, **kwargs)
    assert_allclose(got_loss, loss.item(), rtol=1e-12)
    assert_allclose(got_grad, grad.detach().numpy(), rtol=1e-12, atol=1e-16)
    assert_allclose(hess, diagonal.numpy(), rtol=1e-10, atol=1e-16)


# ----------------------------------------------------------------------------- API

@pytest.mark.parametrize("family, case", all_cases())
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_same_loss_and_grad_as_return_grad(family, case, reduction, dtype):
    name, first, target, kwargs = make(family, case, 7, dtype=dtype)
    function = getattr(fastce, name)
    loss, grad = function(first, target, reduction=reduction, return_grad=True, **kwargs)
    for return_grad in (False, True):
        result = function(first, target, reduction=reduction, return_grad=return_grad,
                          return_hessian=True, **kwargs)
        assert isinstance(result, tuple) and len(result) == 3
        assert_array_equal(result[0], loss)
        assert_array_equal(result[1], grad)
        assert type(result[0]) is type(loss)
    # return_hessian=False changes nothing.
    assert_array_equal(function(first, target, reduction=reduction, return_hessian=False,
                                **kwargs),
                       function(first, target, reduction=reduction, **kwargs))


@pytest.mark.parametrize("family, case", all_cases())
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_matches_reference(family, case, dtype):
    name, first, target, kwargs = make(family, case, 8, dtype=dtype, scale=10.0)
    for reduction in REDUCTIONS:
        got = with_hessian(name, first, target, reduction, **kwargs)
        expected = getattr(reference, name)(first, target, reduction=reduction,
                                            return_hessian=True, **kwargs)
        rtol = 1e-12 if dtype == np.float64 else 2e-6
        for g, e in zip(got, expected):
            assert np.shape(g) == np.shape(e)
            assert_allclose(g, e, rtol=rtol, atol=1e-300 if dtype == np.float64 else
                            2e-7 * max(1.0, float(np.max(np.abs(e)))))


@pytest.mark.parametrize("family, case", all_cases())
def test_float32_is_close_to_float64(family, case):
    name, first, target, kwargs = make(family, case, 9, dtype=np.float32)
    _, _, hess32 = with_hessian(name, first, target, **kwargs)
    _, _, hess64 = with_hessian(name, first.astype(np.float64), target, **kwargs)
    assert hess32.dtype == np.float32 and hess64.dtype == np.float64
    finite = ~np.isnan(hess64)
    assert_array_equal(np.isnan(hess32), np.isnan(hess64))
    assert_allclose(hess32[finite], hess64[finite], rtol=2e-6,
                    atol=2e-7 * float(np.max(hess64[finite])))


def test_float16_and_integer_logits():
    rng = np.random.default_rng(10)
    logits16 = rng.standard_normal((5, 3)).astype(np.float16)
    labels = rng.integers(0, 3, 5)
    _, grad, hess = fastce.cross_entropy(logits16, labels, return_hessian=True)
    assert grad.dtype == hess.dtype == np.float32
    target = rng.integers(0, 2, (5, 3))
    _, _, hess = fastce.binary_cross_entropy_with_logits(np.arange(15).reshape(5, 3) - 7,
                                                         target, return_hessian=True)
    assert hess.dtype == np.float64
    _, _, hess = fastce.logistic_loss(np.arange(15, dtype=np.int32).reshape(5, 3) - 7,
                                      2 * target - 1, return_hessian=True)
    assert hess.dtype == np.float64


def test_ignored_samples_have_zero_hessian_whatever_their_logits():
    logits = np.array([[1.0, 2.0, 0.5],
                       [np.nan, 1.0, 2.0],
                       [-np.inf, -np.inf, -np.inf],
                       [0.3, -0.2, 4.0]])
    target = np.array([0, 1, 7, 2])
    for reduction in REDUCTIONS:
        loss, grad, hess = fastce.cross_entropy(logits, target, ignore_index=7,
                                                reduction=reduction, return_hessian=True,
                                                label_smoothing=0.1)
        assert_array_equal(hess[2], 0.0)
        assert_array_equal(grad[2], 0.0)
        assert np.all(np.isnan(hess[1]))               # a NaN logit, not ignored
        assert np.all(np.isfinite(hess[[0, 3]]))
    _, _, hess = fastce.cross_entropy(logits, np.array([0, -100, -100, 2]), return_hessian=True)
    assert_array_equal(hess[1:3], 0.0)


def test_mean_over_nothing_gives_zero_hessian():
    logits = np.random.default_rng(11).standard_normal((3, 4))
    loss, grad, hess = fastce.cross_entropy(logits, np.full(3, -100), return_hessian=True)
    assert loss == 0.0
    assert_array_equal(grad, 0.0)
    assert_array_equal(hess, 0.0)
    loss, grad, hess = fastce.cross_entropy(logits, np.array([0, 1, 2]), return_hessian=True,
                                            weight=np.zeros(4))
    assert loss == 0.0
    assert_array_equal(hess, 0.0)
    empty = np.zeros((0, 4))
    for name, target in (("binary_cross_entropy_with_logits", empty),
                         ("logistic_loss", empty + 1.0)):
        loss, grad, hess = getattr(fastce, name)(empty, target, return_hessian=True)
        assert loss == 0.0 and grad.shape == hess.shape == (0, 4)


def test_masked_classes_have_zero_hessian():
    logits = np.array([[1.0, -np.inf, 0.5, -np.inf], [-np.inf, 2.0, 0.0, 1.0]])
    _, grad, hess = fastce.cross_entropy(logits, np.array([0, 3]), return_hessian=True)
    assert hess[0, 1] == hess[0, 3] == hess[1, 0] == 0.0
    assert not np.any(np.isnan(hess))
    p = softmax(np.array([1.0, 0.5]))
    assert_allclose(hess[0, [0, 2]], p * (1 - p) / 2, rtol=1e-14)


@pytest.mark.parametrize("dtype, limit", [(np.float32, 1e4), (np.float64, 1e300)])
def test_extreme_and_infinite_logits(dtype, limit):
    values = np.array([0.0, 1.0, -30.0, 40.0, 100.0, -800.0, limit, -limit, np.inf, -np.inf])
    z = values.astype(dtype)
    target = np.resize([0.0, 1.0, 0.5], z.size)
    _, _, hess = fastce.binary_cross_entropy_with_logits(z, target, reduction="none",
                                                         return_hessian=True)
    assert np.all(np.isfinite(hess)) and np.all(hess >= 0) and np.all(hess <= 0.25)
    assert_array_equal(hess[-2:], 0.0)
    assert_allclose(hess[:-2], (expit(z.astype(np.float64)) * expit(-z.astype(np.float64)))[:-2],
                    rtol=1e-12 if dtype == np.float64 else 2e-6,
                    atol=np.finfo(dtype).tiny)                     # subnormals round coarsely
    _, _, hess = fastce.logistic_loss(z, np.resize([1.0, -1.0], z.size), reduction="none",
                                      return_hessian=True)
    assert np.all(np.isfinite(hess)) and np.all(hess >= 0)
    assert_array_equal(hess[-2:], 0.0)
    rows = np.stack([z, np.zeros_like(z), -z], axis=1)[:-2]     # +inf logits: no softmax
    _, _, hess = fastce.cross_entropy(rows, np.zeros(len(rows), dtype=np.int64), reduction="none",
                                      return_hessian=True)
    assert np.all(np.isfinite(hess)) and np.all(hess >= 0) and np.all(hess <= 0.25)
    # A dominant class: p (1 - p) = rest / (1 + rest)^2 keeps its relative accuracy.
    big = np.array([[40.0, 0.0, 0.0]], dtype=dtype)
    _, _, hess = fastce.cross_entropy(big, np.array([0]), return_hessian=True)
    rest = 2 * np.exp(-40.0)
    assert_allclose(hess[0, 0], rest / (1 + rest) ** 2, rtol=1e-12 if dtype == np.float64 else 2e-6)


def test_nan_logits_give_nan_only_where_they_touch():
    z = np.array([0.5, np.nan, -1.0])
    _, _, hess = fastce.binary_cross_entropy_with_logits(z, np.array([1.0, 0.0, 1.0]),
                                                         reduction="none", return_hessian=True)
    assert np.isnan(hess[1]) and np.all(np.isfinite(hess[[0, 2]]))
    logits = np.array([[0.5, np.nan], [1.0, 2.0]])
    _, _, hess = fastce.cross_entropy(logits, np.array([0, 1]), return_hessian=True)
    assert np.all(np.isnan(hess[0])) and np.all(np.isfinite(hess[1]))


def test_grad_out_receives_the_gradient():
    rng = np.random.default_rng(12)
    for name, first, target, kwargs in (binary_case("weight_pos_weight", rng),
                                        logistic_case("weight", rng),
                                        ce_case("weight_smoothing_ignore", rng)):
        function = getattr(fastce, name)
        _, expected_grad, expected_hess = function(first, target, return_hessian=True, **kwargs)
        out = np.full_like(first, np.nan)
        _, grad, hess = function(first, target, return_hessian=True, grad_out=out, **kwargs)
        assert grad is out and hess is not out
        assert_array_equal(out, expected_grad)
        assert_array_equal(hess, expected_hess)
        in_place = first.copy()
        _, grad, hess = function(in_place, target, return_hessian=True, grad_out=in_place,
                                 **kwargs)
        assert grad is in_place
        assert_array_equal(in_place, expected_grad)
        assert_allclose(hess, expected_hess, rtol=0, atol=0)


def test_probability_targets_reject_return_hessian():
    logits = np.zeros((3, 4))
    soft = np.full((3, 4), 0.25)
    for return_grad in (False, True):
        with pytest.raises(ValueError, match=word("return_hessian")):
            fastce.cross_entropy(logits, soft, return_hessian=True, return_grad=return_grad)
    assert_array_equal(logits, 0.0)
    assert_array_equal(soft, 0.25)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(13)
    for family, case in all_cases():
        name, first, target, kwargs = make(family, case, rng)
        snapshots = [np.array(a, copy=True) for a in (first, target, *kwargs.values())
                     if isinstance(a, np.ndarray)]
        with_hessian(name, first, target, **kwargs)
        arrays = [a for a in (first, target, *kwargs.values()) if isinstance(a, np.ndarray)]
        for array, snapshot in zip(arrays, snapshots):
            assert_array_equal(array, snapshot)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_bitwise_deterministic_across_thread_counts(dtype):
    rng = np.random.default_rng(14)
    logits = (3 * rng.standard_normal((2000, 300))).astype(dtype)
    binary_target = rng.uniform(0, 1, logits.shape)
    labels = rng.integers(0, 300, 2000)
    labels[::7] = -100
    runs = []
    for n_threads in (1, 2, 2):
        results = []
        for reduction in REDUCTIONS:
            results.extend(fastce.binary_cross_entropy_with_logits(
                logits, binary_target, reduction=reduction, return_hessian=True,
                n_threads=n_threads, pos_weight=np.linspace(0.5, 2, 300)))
            results.extend(fastce.logistic_loss(
                logits, np.sign(binary_target - 0.5), reduction=reduction,
                return_hessian=True, n_threads=n_threads))
            results.extend(fastce.cross_entropy(
                logits, labels, reduction=reduction, return_hessian=True, n_threads=n_threads,
                weight=np.linspace(0.1, 1, 300), label_smoothing=0.1))
        runs.append(results)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert_array_equal(np.asarray(a), np.asarray(b), strict=True)


# ----------------------------------------------------------------------------- properties

@PROPERTY
@given(st.sampled_from(all_cases()), st.sampled_from(REDUCTIONS),
       st.sampled_from(FLOAT_DTYPES), st.sampled_from([0.1, 3.0, 50.0, 1e4]),
       st.integers(0, 2**32 - 1))
def test_hessian_is_nonnegative_and_bounded(family_case, reduction, dtype, scale, seed):
    """0 <= hess <= s * (weight factor) / 4 everywhere, and the sum over a row of the
    softmax Hessian's diagonal is at most the weight factor times s (sum p_c (1 - p_c) <= 1)."""
    family, case = family_case
    name, first, target, kwargs = make(family, case, seed, dtype=dtype, scale=scale)
    first = np.nan_to_num(first)
    _, _, hess = with_hessian(name, first, target, reduction, **kwargs)
    assert np.all(hess >= 0)
    # sigma(z) sigma(-z) <= 1/4 and p_c (1 - p_c) <= 1/4.
    bound = 0.25 * weight_factor(name, first, target, reduction, kwargs)
    assert np.all(hess <= bound * (1 + 1e-5))
    if name == "cross_entropy":
        # sum_c p_c (1 - p_c) = 1 - sum_c p_c^2 <= 1 - 1/C.
        n_classes = first.shape[-1]
        row_bound = 4 * bound[..., 0] * (1 - 1 / n_classes)
        assert np.all(hess.astype(np.float64).sum(axis=-1) <= row_bound * (1 + 1e-5) + 1e-300)
