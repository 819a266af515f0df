"""Parity with the peers: the "parity" features checked on fastce.reference AND fastce.

Every test runs on both implementations (the ``impl`` fixture); a missing function or
keyword, or a probe call that raises, fails the test on either.

Oracles:
- PyTorch in float64 (values; gradients through autograd): cross_entropy, nll_loss, kl_div,
  binary_cross_entropy_with_logits with pos_weight of every broadcast shape;
- scikit-learn's HalfMultinomialLoss for sample_weight;
- SciPy's logsumexp (b, keepdims, return_sign, tuple axes, 0-d), softmax and log_softmax;
- optax's `where` semantics written out: the loss on the selected elements/rows only, or the
  same call with the masked logits replaced by -inf;
- central finite differences (float64) for the gradients and the Hessian diagonal.

Tolerances: float64 against float64 oracles, rtol 1e-12; float32 against a float64 oracle
fed the same float32 inputs, rtol 2e-6 and atol 2e-7.

Sections: plumbing | sample_weight (cross_entropy, kl_divergence_with_logits) | pos_weight |
where, binary family | where, cross_entropy | nll_loss | kl_div | logsumexp / softmax |
bad input.
"""

import contextlib
import importlib
import inspect

import numpy as np
import pytest
import scipy.special as sc

from conftest import FLOAT_DTYPES, REDUCTIONS, numerical_gradient, total

try:
    import torch
    F = torch.nn.functional
except ImportError:  # the torch oracle tests skip; the others still run
    torch = F = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

# torch warns that kl_div's "mean" will change meaning; "mean" is exactly what is compared.
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")

RNG_SEED = 20250117  # the rng fixture's seed (conftest)
IGNORE = -100


# --------------------------------------------------------------------------
# Plumbing
# --------------------------------------------------------------------------

@pytest.fixture(params=["fastce.reference", "fastce"])
def impl(request):
    """The implementation under test, imported lazily."""
    return importlib.import_module(request.param)


def is_reference(impl):
    return impl.__name__ == "fastce.reference"


def api(impl, name, *keywords):
    """impl.<name>, after checking that it takes `keywords` (a gap fails the test)."""
    function = getattr(impl, name, None)
    missing = [] if function is not None else [name]
    if function is not None:
        parameters = inspect.signature(function).parameters
        missing = [k for k in keywords if k not in parameters]
    if missing:
        pytest.fail(f"{impl.__name__}.{name} lacks {missing}")
    return function


def requires(impl, probe, what):
    """Fail with a clear message when `probe()` raises: `what` is not supported."""
    try:
        probe()
    except Exception as error:  # noqa: BLE001 - any failure means "not supported"
        pytest.fail(f"{impl.__name__} does not support {what}: {error!r}")


def tolerances(dtype):
    return (1e-12, 1e-14) if np.dtype(dtype) == np.float64 else (2e-6, 2e-7)


def assert_close(actual, expected, dtype):
    rtol, atol = tolerances(dtype)
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64),
                               np.asarray(expected, dtype=np.float64), rtol=rtol, atol=atol)


def assert_result_dtype(result, dtype, reduction):
    """Per-sample results have the compute dtype, reduced ones are float64 scalars."""
    if reduction == "none":
        assert np.asarray(result).dtype == dtype
    else:
        assert np.ndim(result) == 0


def assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype):
    """A (loss, grad) result against the oracle's, at the dtype's tolerances."""
    assert_close(loss, expected, dtype)
    assert_close(grad, expected_grad, dtype)


def assert_masked_close(loss, grad, expected, expected_grad, kept, dtype, reduction):
    """Outside `kept`, the per-sample loss and the gradient are exactly 0; inside (or reduced),
    they match `expected`, the same call on the kept elements alone."""
    if reduction == "none":
        assert np.all(loss[~kept] == 0)
        assert_close(loss[kept], expected, dtype)
    else:
        assert_close(loss, expected, dtype)
    assert np.all(grad[~kept] == 0)
    assert_close(grad[kept], expected_grad, dtype)


def every_dtype_and_reduction(test):
    """Parametrize `test` over FLOAT_DTYPES x REDUCTIONS (ids: reduction, then dtype)."""
    test = pytest.mark.parametrize("reduction", REDUCTIONS)(test)
    return pytest.mark.parametrize("dtype", FLOAT_DTYPES)(test)


def as64(array):
    return np.asarray(array, dtype=np.float64)


def tensor(array, grad=False):
    return torch.tensor(as64(array), requires_grad=grad)


def torch_value_and_grad(function, x):
    """function(x) on a float64 tensor and the autograd gradient of its sum."""
    xt = tensor(x, grad=True)
    value = function(xt)
    value.sum().backward()
    return value.detach().numpy(), xt.grad.numpy()


def reduce_like(per_sample, reduction, denominator):
    """Apply a reduction to oracle per-sample losses (torch tensors or arrays)."""
    if reduction == "none":
        return per_sample
    total = per_sample.sum()
    return total if reduction == "sum" else total / denominator


@contextlib.contextmanager
def unmodified(*arrays):
    """Assert that the block does not write into `arrays` (NaN-aware)."""
    copies = [np.array(a, copy=True) for a in arrays]
    yield
    for before, after in zip(copies, arrays):
        np.testing.assert_array_equal(np.asarray(after), before)


def class_labels(rng, shape, n_classes, n_ignored=0):
    labels = rng.integers(0, n_classes, size=shape)
    flat = labels.reshape(-1)
    flat[rng.choice(flat.size, size=n_ignored, replace=False)] = IGNORE
    return labels


def probability_targets(rng, shape, axis=-1):
    y = rng.random(shape) ** 2
    return y / y.sum(axis=axis, keepdims=True)


# --------------------------------------------------------------------------
# sample_weight: cross_entropy with class indices
# --------------------------------------------------------------------------

N, C = 8, 5


@pytest.fixture
def logits(rng, dtype):
    """(N, C) logits of spread 3 in the test's dtype: the first draw from the test's rng."""
    return (3 * rng.standard_normal((N, C))).astype(dtype)


def ce_sample_weight_case(rng, dtype):
    logits = (3 * rng.standard_normal((N, C))).astype(dtype)
    labels = class_labels(rng, N, C, n_ignored=2)
    weight = rng.uniform(0.5, 2.0, C).astype(dtype)
    sw = rng.uniform(0.0, 3.0, N).astype(dtype)
    sw[3] = 0.0
    return logits, labels, weight, sw


def torch_weighted_ce(logits, labels, weight, sw, reduction, eps=0.0, axis_is_1=True):
    """torch's cross_entropy per sample, times sw, reduced with Σ sw·w_y as the mean's divisor."""
    labels_t = torch.tensor(labels)
    weight_t = tensor(weight)
    sw_t = tensor(sw)
    kept = labels != IGNORE
    w_y = np.where(kept, as64(weight)[np.where(kept, labels, 0)], 0.0)
    denominator = float(np.sum(as64(sw) * w_y))

    def function(z):
        per_sample = F.cross_entropy(z, labels_t, weight=weight_t, ignore_index=IGNORE,
                                     label_smoothing=eps, reduction="none") * sw_t
        return reduce_like(per_sample, reduction, denominator)
    return torch_value_and_grad(function, logits)


@needs_torch
@every_dtype_and_reduction
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_ce_sample_weight_matches_torch(impl, rng, dtype, reduction, eps):
    cross_entropy = api(impl, "cross_entropy", "sample_weight")
    logits, labels, weight, sw = ce_sample_weight_case(rng, dtype)
    expected, expected_grad = torch_weighted_ce(logits, labels, weight, sw, reduction, eps)
    with unmodified(logits, labels, weight, sw):
        loss, grad = cross_entropy(logits, labels, weight=weight, sample_weight=sw,
                                   label_smoothing=eps, reduction=reduction, return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)
    assert_result_dtype(loss, dtype, reduction)
    assert grad.dtype == dtype


@every_dtype_and_reduction
def test_ce_sample_weight_matches_sklearn(impl, rng, dtype, reduction, logits):
    """No class weights: sklearn's Σ sw·ℓ / Σ sw is fastce's mean."""
    from sklearn._loss.loss import HalfMultinomialLoss

    cross_entropy = api(impl, "cross_entropy", "sample_weight")
    labels = rng.integers(0, C, N)
    sw = rng.uniform(0.0, 3.0, N).astype(dtype)
    sw[[1, 5]] = 0.0
    oracle = HalfMultinomialLoss(n_classes=C)
    z64, y64, sw64 = np.ascontiguousarray(as64(logits)), labels.astype(np.float64), as64(sw)
    per_sample = oracle.loss(y_true=y64, raw_prediction=z64, sample_weight=sw64)
    gradient = oracle.gradient(y_true=y64, raw_prediction=z64, sample_weight=sw64)
    expected = reduce_like(per_sample, reduction, sw64.sum())
    expected_grad = gradient / sw64.sum() if reduction == "mean" else gradient

    loss, grad = cross_entropy(logits, labels, sample_weight=sw, reduction=reduction,
                               return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)
    if reduction == "mean":  # sklearn's own weighted mean
        assert_close(loss, oracle(y64, z64, sample_weight=sw64), dtype)


@every_dtype_and_reduction
def test_ce_zero_sample_weight_silences_nan_rows(impl, rng, dtype, reduction):
    cross_entropy = api(impl, "cross_entropy", "sample_weight")
    logits, labels, weight, sw = ce_sample_weight_case(rng, dtype)
    labels[:] = rng.integers(0, C, N)
    logits[3] = np.nan
    logits[6, 1] = np.inf
    sw[6] = 0.0
    kept = sw != 0
    loss, grad = cross_entropy(logits, labels, weight=weight, sample_weight=sw,
                               reduction=reduction, return_grad=True)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    clean_loss, clean_grad = cross_entropy(logits[kept], labels[kept], weight=weight,
                                           sample_weight=sw[kept], reduction=reduction,
                                           return_grad=True)
    assert_masked_close(loss, grad, clean_loss, clean_grad, kept, dtype, reduction)


@needs_torch
@every_dtype_and_reduction
def test_ce_sample_weight_probability_targets_match_torch(impl, rng, dtype, reduction, logits):
    cross_entropy = api(impl, "cross_entropy", "sample_weight")
    target = probability_targets(rng, (N, C)).astype(dtype)
    weight = rng.uniform(0.5, 2.0, C).astype(dtype)
    sw = rng.uniform(0.0, 3.0, N).astype(dtype)
    sw[0] = 0.0
    logits[0] = np.nan  # a zero sample weight silences it

    def function(z):
        per_sample = F.cross_entropy(z, tensor(target), weight=tensor(weight),
                                     label_smoothing=0.1, reduction="none") * tensor(sw)
        return reduce_like(per_sample, reduction, float(as64(sw).sum()))
    clean = np.where(sw[:, None] == 0, 0.0, as64(logits))
    expected, expected_grad = torch_value_and_grad(function, clean)
    with unmodified(logits, target, sw):
        loss, grad = cross_entropy(logits, target, weight=weight, sample_weight=sw,
                                   label_smoothing=0.1, reduction=reduction, return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)


@needs_torch
@every_dtype_and_reduction
def test_ce_sample_weight_class_axis_1_matches_torch(impl, rng, dtype, reduction):
    """(N, C, d) with axis=1, torch's layout; sample_weight has the per-sample shape (N, d)."""
    cross_entropy = api(impl, "cross_entropy", "sample_weight")
    logits = (3 * rng.standard_normal((4, C, 3))).astype(dtype)
    labels = class_labels(rng, (4, 3), C, n_ignored=2)
    weight = rng.uniform(0.5, 2.0, C).astype(dtype)
    sw = rng.uniform(0.0, 3.0, (4, 3)).astype(dtype)
    expected, expected_grad = torch_weighted_ce(logits, labels, weight, sw, reduction)
    loss, grad = cross_entropy(logits, labels, weight=weight, sample_weight=sw, axis=1,
                               reduction=reduction, return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_ce_sample_weight_grad_and_hessian_finite_differences(impl, rng, reduction, eps):
    cross_entropy = api(impl, "cross_entropy", "sample_weight", "return_hessian")
    logits, labels, weight, sw = ce_sample_weight_case(rng, np.float64)
    kwargs = dict(weight=weight, sample_weight=sw, label_smoothing=eps, reduction=reduction)

    def loss_at(z):
        return total(cross_entropy(z, labels, **kwargs))

    def grad_at(z):
        return cross_entropy(z, labels, return_grad=True, **kwargs)[1]

    loss, grad, hess = cross_entropy(logits, labels, return_hessian=True, **kwargs)
    np.testing.assert_allclose(grad, numerical_gradient(loss_at, logits), rtol=1e-6, atol=1e-8)
    h = 1e-6
    diagonal = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        step = np.zeros_like(logits)
        step[index] = h
        diagonal[index] = (grad_at(logits + step)[index] - grad_at(logits - step)[index]) / (2 * h)
    np.testing.assert_allclose(hess, diagonal, rtol=1e-6, atol=1e-8)
    # Without the mean's divisor, the Hessian is exactly sw times the unweighted one.
    if reduction != "mean":
        plain = cross_entropy(logits, labels, weight=weight, label_smoothing=eps,
                              reduction=reduction, return_hessian=True)[2]
        np.testing.assert_allclose(hess, sw[:, None] * plain, rtol=1e-14, atol=0)


def test_ce_sample_weight_mean_over_zero_weight_is_zero(impl, rng):
    cross_entropy = api(impl, "cross_entropy", "sample_weight")
    logits, labels, _, _ = ce_sample_weight_case(rng, np.float64)
    loss, grad = cross_entropy(logits, labels, sample_weight=np.zeros(N), return_grad=True)
    assert loss == 0.0
    assert np.all(grad == 0)


# --------------------------------------------------------------------------
# sample_weight and log_target: kl_divergence_with_logits
# --------------------------------------------------------------------------

@needs_torch
@every_dtype_and_reduction
def test_kl_with_logits_sample_weight_matches_torch(impl, rng, dtype, reduction, logits):
    kl = api(impl, "kl_divergence_with_logits", "sample_weight")
    p = probability_targets(rng, (N, C)).astype(dtype)
    p[2, 1] = 0.0
    sw = rng.uniform(0.0, 3.0, N).astype(dtype)
    sw[4] = 0.0
    logits[4] = np.nan  # silenced by its zero sample weight

    def function(z):
        rows = F.kl_div(F.log_softmax(z, dim=-1), tensor(p), reduction="none").sum(-1)
        return reduce_like(rows * tensor(sw), reduction, float(as64(sw).sum()))
    expected, expected_grad = torch_value_and_grad(function, np.nan_to_num(as64(logits)))
    with unmodified(p, logits, sw):
        loss, grad = kl(p, logits, sample_weight=sw, reduction=reduction, return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)
    assert np.all(grad[4] == 0)


@needs_torch
@every_dtype_and_reduction
def test_kl_with_logits_log_target(impl, rng, dtype, reduction, logits):
    kl = api(impl, "kl_divergence_with_logits", "log_target")
    p = probability_targets(rng, (N, C))
    log_p = np.log(p).astype(dtype)

    def function(z):
        rows = F.kl_div(F.log_softmax(z, dim=-1), tensor(log_p), reduction="none",
                        log_target=True).sum(-1)
        return reduce_like(rows, reduction, N)
    expected, expected_grad = torch_value_and_grad(function, logits)
    loss, grad = kl(log_p, logits, log_target=True, reduction=reduction, return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)

    # -inf log-probabilities are zero probabilities (torch gives NaN there: 0·inf).
    log_p64 = np.log(p)
    log_p64[1, 2] = -np.inf
    from_log = kl(log_p64, as64(logits), log_target=True, reduction=reduction, return_grad=True)
    from_p = kl(np.exp(log_p64), as64(logits), reduction=reduction, return_grad=True)
    for a, b in zip(from_log, from_p):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


# --------------------------------------------------------------------------
# pos_weight: every shape torch broadcasts
# --------------------------------------------------------------------------

POS_WEIGHT_SHAPES = [(), (4,), (1, 4), (6, 4), (6, 1)]


@needs_torch
@every_dtype_and_reduction
@pytest.mark.parametrize("pw_shape", POS_WEIGHT_SHAPES, ids=str)
def test_bce_pos_weight_shapes_match_torch(impl, rng, dtype, reduction, pw_shape):
    bce = impl.binary_cross_entropy_with_logits
    logits = (3 * rng.standard_normal((6, 4))).astype(dtype)
    target = rng.random((6, 4)).astype(dtype)
    target[0, 0], target[1, 1] = 0.0, 1.0
    pos_weight = rng.uniform(0.0, 3.0, pw_shape).astype(dtype)
    weight = rng.uniform(0.5, 2.0, 4).astype(dtype)
    requires(impl, lambda: bce(logits, target, pos_weight=pos_weight), f"pos_weight {pw_shape}")

    def function(z):
        return F.binary_cross_entropy_with_logits(z, tensor(target), weight=tensor(weight),
                                                  pos_weight=tensor(pos_weight),
                                                  reduction=reduction)
    expected, expected_grad = torch_value_and_grad(function, logits)
    with unmodified(logits, target, pos_weight, weight):
        loss, grad = bce(logits, target, weight=weight, pos_weight=pos_weight,
                         reduction=reduction, return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)
    assert_result_dtype(loss, dtype, reduction)


@needs_torch
def test_bce_pos_weight_3d_and_hessian_finite_differences(impl, rng):
    """(N, d, L) logits with a (d, L) pos_weight; the Hessian against differences of the gradient."""
    bce = impl.binary_cross_entropy_with_logits
    logits = 3 * rng.standard_normal((3, 2, 4))
    target = rng.random((3, 2, 4))
    pos_weight = rng.uniform(0.0, 3.0, (2, 4))
    requires(impl, lambda: bce(logits, target, pos_weight=pos_weight), "pos_weight (d, L)")
    expected = F.binary_cross_entropy_with_logits(tensor(logits), tensor(target),
                                                  pos_weight=tensor(pos_weight))
    loss, grad, hess = bce(logits, target, pos_weight=pos_weight, return_hessian=True)
    assert_close(loss, expected.item(), np.float64)
    grad_at = lambda z: bce(z, target, pos_weight=pos_weight, return_grad=True)[1]  # noqa: E731
    h = 1e-6
    for index in np.ndindex(logits.shape):
        step = np.zeros_like(logits)
        step[index] = h
        diagonal = (grad_at(logits + step)[index] - grad_at(logits - step)[index]) / (2 * h)
        np.testing.assert_allclose(hess[index], diagonal, rtol=1e-6, atol=1e-9)


# --------------------------------------------------------------------------
# where: the binary family (elementwise)
# --------------------------------------------------------------------------

BINARY = ["binary_cross_entropy_with_logits", "binary_cross_entropy", "logistic_loss",
          "sigmoid_focal_loss"]


def binary_case(rng, name, shape, dtype):
    """(data, target, extra kwargs) for one binary loss, valid everywhere."""
    if name == "binary_cross_entropy":
        data = rng.uniform(0.02, 0.98, shape)
    else:
        data = 3 * rng.standard_normal(shape)
    if name == "logistic_loss":
        target = rng.choice([-1.0, 1.0], shape)
    else:
        target = rng.random(shape)
    return data.astype(dtype), target.astype(dtype)


def binary_where(rng, shape):
    where = rng.random(shape) < 0.6
    where.flat[0] = True
    where.flat[-1] = False
    return where


def binary_weights(rng, name, shape, dtype):
    """Per-element weights (full shape, so they can be selected with `where`)."""
    if name in ("binary_cross_entropy_with_logits", "binary_cross_entropy", "logistic_loss"):
        kwargs = {"weight": rng.uniform(0.5, 2.0, shape).astype(dtype)}
        if name == "binary_cross_entropy_with_logits":
            kwargs["pos_weight"] = rng.uniform(0.5, 2.0, shape[-1]).astype(dtype)
        return kwargs
    return {"alpha": 0.3, "gamma": 1.5}


def select(kwargs, where):
    """The keyword arguments restricted to the elements where `where` is True."""
    selected = {}
    for key, value in kwargs.items():
        if isinstance(value, np.ndarray):
            value = np.broadcast_to(value, where.shape)[where]
        selected[key] = value
    return selected


@every_dtype_and_reduction
@pytest.mark.parametrize("name", BINARY)
def test_binary_where_equals_loss_on_selected_elements(impl, rng, dtype, reduction, name):
    function = api(impl, name, "where")
    shape = (6, 5)
    data, target = binary_case(rng, name, shape, dtype)
    where = binary_where(rng, shape)
    kwargs = binary_weights(rng, name, shape, dtype)
    with unmodified(data, target, where):
        loss, grad = function(data, target, where=where, reduction=reduction, return_grad=True,
                              **kwargs)
    # The selected elements alone, through the same implementation and in float64.
    expected, expected_grad = function(
        as64(data[where]), as64(target[where]), reduction=reduction, return_grad=True,
        **{k: (as64(v) if isinstance(v, np.ndarray) else v)
           for k, v in select(kwargs, where).items()})
    assert_masked_close(loss, grad, expected, expected_grad, where, dtype, reduction)
    assert grad.dtype == dtype


@needs_torch
@every_dtype_and_reduction
def test_bce_with_logits_where_matches_torch_on_selected(impl, rng, dtype, reduction):
    bce = api(impl, "binary_cross_entropy_with_logits", "where")
    logits, target = binary_case(rng, "binary_cross_entropy_with_logits", (6, 5), dtype)
    where = binary_where(rng, (6, 5))
    pos_weight = rng.uniform(0.5, 2.0, 5).astype(dtype)
    pw_full = np.broadcast_to(pos_weight, where.shape)

    def function(z):
        per_element = F.binary_cross_entropy_with_logits(
            z, tensor(target), pos_weight=tensor(pw_full), reduction="none")
        per_element = per_element * torch.tensor(where)
        return reduce_like(per_element, reduction, int(where.sum()))
    expected, expected_grad = torch_value_and_grad(function, logits)
    loss, grad = bce(logits, target, pos_weight=pos_weight, where=where, reduction=reduction,
                     return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)


@pytest.mark.parametrize("name", BINARY)
def test_binary_where_masked_garbage_does_not_leak(impl, rng, name):
    """NaN data, out-of-range or NaN targets and NaN weights under False change nothing."""
    function = api(impl, name, "where")
    shape = (5, 4)
    data, target = binary_case(rng, name, shape, np.float64)
    where = binary_where(rng, shape)
    kwargs = binary_weights(rng, name, shape, np.float64)
    dirty_data, dirty_target = data.copy(), target.copy()
    dirty_data[~where] = np.nan
    dirty_target[~where] = np.where(rng.random(np.count_nonzero(~where)) < 0.5, np.nan, 7.0)
    dirty_kwargs = dict(kwargs)
    if "weight" in kwargs:
        dirty_kwargs["weight"] = np.where(where, kwargs["weight"], np.nan)
    for reduction in REDUCTIONS:
        clean = function(data, target, where=where, reduction=reduction, return_grad=True,
                         **kwargs)
        dirty = function(dirty_data, dirty_target, where=where, reduction=reduction,
                         return_grad=True, **dirty_kwargs)
        for a, b in zip(dirty, clean):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", BINARY)
def test_binary_where_all_false(impl, rng, name):
    function = api(impl, name, "where")
    data, target = binary_case(rng, name, (3, 4), np.float64)
    where = np.zeros((3, 4), dtype=bool)
    data[0, 0] = np.nan
    loss, grad = function(data, target, where=where, return_grad=True)
    assert loss == 0.0 and np.all(grad == 0)
    assert function(data, target, where=where, reduction="sum") == 0.0
    assert np.all(function(data, target, where=where, reduction="none") == 0)


@pytest.mark.parametrize("where_shape", [(4,), (3, 1), (1, 4), ()], ids=str)
def test_binary_where_broadcasts(impl, rng, where_shape):
    bce = api(impl, "binary_cross_entropy_with_logits", "where")
    logits, target = binary_case(rng, "binary_cross_entropy_with_logits", (3, 4), np.float64)
    where = rng.random(where_shape) < 0.5
    where.flat[0] = True
    full = np.broadcast_to(where, (3, 4))
    loss, grad = bce(logits, target, where=where, return_grad=True)
    expected, expected_grad = bce(logits, target, where=np.array(full), return_grad=True)
    np.testing.assert_array_equal(loss, expected)
    np.testing.assert_array_equal(grad, expected_grad)
    np.testing.assert_allclose(loss, bce(logits[full], target[full]), rtol=1e-13)


@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "logistic_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_where_hessian(impl, rng, name, reduction):
    function = api(impl, name, "where", "return_hessian")
    data, target = binary_case(rng, name, (5, 4), np.float64)
    where = binary_where(rng, (5, 4))
    _, _, hess = function(data, target, where=where, reduction=reduction, return_hessian=True)
    _, _, expected = function(data[where], target[where], reduction=reduction,
                              return_hessian=True)
    assert np.all(hess[~where] == 0)
    np.testing.assert_allclose(hess[where], expected, rtol=1e-13, atol=1e-16)


# --------------------------------------------------------------------------
# where: cross_entropy (per sample or per logit)
# --------------------------------------------------------------------------

def per_logit_mask(rng, shape, axis=-1):
    """A bool mask with at least one True along `axis` in every row."""
    mask = rng.random(shape) < 0.6
    first = np.moveaxis(mask, axis, -1)
    first[..., 0] |= ~first.any(axis=-1)
    return mask


@every_dtype_and_reduction
@pytest.mark.parametrize("targets", ["indices", "probabilities"])
def test_ce_per_sample_where_equals_selected_rows(impl, rng, dtype, reduction, targets, logits):
    cross_entropy = api(impl, "cross_entropy", "where", "sample_weight")
    if targets == "indices":
        target = class_labels(rng, N, C, n_ignored=1)
    else:
        target = probability_targets(rng, (N, C)).astype(dtype)
    weight = rng.uniform(0.5, 2.0, C).astype(dtype)
    sw = rng.uniform(0.1, 3.0, N).astype(dtype)
    where = np.array([True, False, True, True, False, True, True, False])
    kwargs = dict(weight=weight, label_smoothing=0.1, reduction=reduction, return_grad=True)
    # Garbage in the masked-out samples: NaN logits, a bad label or target, a bad weight.
    dirty_logits, dirty_target, dirty_sw = logits.copy(), target.copy(), sw.copy()
    dirty_logits[1] = np.nan
    dirty_target[4] = C + 3 if targets == "indices" else -1.0
    dirty_sw[7] = -np.inf
    with unmodified(dirty_logits, dirty_target, dirty_sw, where):
        loss, grad = cross_entropy(dirty_logits, dirty_target, sample_weight=dirty_sw,
                                   where=where, **kwargs)
    expected, expected_grad = cross_entropy(as64(logits[where]), target[where] if targets ==
                                            "indices" else as64(target[where]),
                                            sample_weight=as64(sw[where]), **kwargs)
    assert_masked_close(loss, grad, expected, expected_grad, where, dtype, reduction)


@needs_torch
@every_dtype_and_reduction
def test_ce_per_sample_where_matches_torch(impl, rng, dtype, reduction):
    """Without label smoothing: torch's weighted per-sample loss, masked, over Σ w_y of the rest."""
    cross_entropy = api(impl, "cross_entropy", "where")
    logits, labels, weight, _ = ce_sample_weight_case(rng, dtype)
    where = rng.random(N) < 0.6
    where[0] = True
    expected, expected_grad = torch_weighted_ce(logits, labels, weight, where.astype(float),
                                                reduction)
    loss, grad = cross_entropy(logits, labels, weight=weight, where=where, reduction=reduction,
                               return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)


@needs_torch
@every_dtype_and_reduction
def test_ce_per_logit_where_is_neg_inf_logits_like_torch(impl, rng, dtype, reduction, logits):
    cross_entropy = api(impl, "cross_entropy", "where")
    where = per_logit_mask(rng, (N, C))
    labels = np.array([rng.choice(np.flatnonzero(row)) for row in where])
    labels[2] = IGNORE
    weight = rng.uniform(0.5, 2.0, C).astype(dtype)
    masked = np.where(where, as64(logits), -np.inf)
    labels_t = torch.tensor(labels)

    def function(z):
        return F.cross_entropy(z, labels_t, weight=tensor(weight), ignore_index=IGNORE,
                               reduction=reduction)
    expected, expected_grad = torch_value_and_grad(function, masked)
    dirty = logits.copy()
    dirty[~where] = np.nan  # never read
    with unmodified(dirty, where):
        loss, grad = cross_entropy(dirty, labels, weight=weight, where=where,
                                   reduction=reduction, return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)
    # ... and exactly the same call with -inf written into the masked logits.
    as_inf = cross_entropy(np.where(where, logits, -np.inf).astype(dtype), labels,
                           weight=weight, reduction=reduction, return_grad=True)
    for a, b in zip((loss, grad), as_inf):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_ce_per_logit_where_gradient_is_neg_inf_gradient(impl, rng, dtype, eps, logits):
    """With smoothing mass on masked classes the loss is +inf; the gradient is still that of -inf logits."""
    cross_entropy = api(impl, "cross_entropy", "where")
    where = per_logit_mask(rng, (N, C))
    labels = np.array([rng.choice(np.flatnonzero(row)) for row in where])
    loss, grad = cross_entropy(logits, labels, where=where, label_smoothing=eps,
                               reduction="sum", return_grad=True)
    masked = np.where(where, logits, -np.inf).astype(dtype)
    expected, expected_grad = cross_entropy(masked, labels, label_smoothing=eps,
                                            reduction="sum", return_grad=True)
    np.testing.assert_array_equal(loss, expected)
    np.testing.assert_array_equal(grad, expected_grad)
    if eps == 0:
        assert np.isfinite(loss)
    else:
        assert loss == np.inf
        # A -inf logit has p_c = 0: its gradient is -ε/C (the smoothing target mass), per sample.
        assert_close(grad[~where], np.full(np.count_nonzero(~where), -eps / C), dtype)


@needs_torch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ce_per_logit_where_masked_target_is_inf(impl, rng, reduction):
    cross_entropy = api(impl, "cross_entropy", "where")
    logits = 3 * rng.standard_normal((3, C))
    where = np.ones((3, C), dtype=bool)
    where[1, 2] = False
    labels = np.array([0, 2, 4])
    loss = cross_entropy(logits, labels, where=where, reduction=reduction)
    masked = np.where(where, logits, -np.inf)
    torch_loss = F.cross_entropy(tensor(masked), torch.tensor(labels), reduction=reduction)
    if reduction == "none":
        assert loss[1] == np.inf and np.all(np.isfinite(loss[[0, 2]]))
        np.testing.assert_allclose(loss, torch_loss.numpy(), rtol=1e-12)
    else:
        assert loss == np.inf and torch_loss.item() == np.inf


@every_dtype_and_reduction
def test_ce_per_logit_where_all_masked_row_is_left_out(impl, rng, dtype, reduction, logits):
    cross_entropy = api(impl, "cross_entropy", "where", "sample_weight")
    labels = rng.integers(0, C, N)
    sw = rng.uniform(0.1, 2.0, N).astype(dtype)
    where = np.ones((N, C), dtype=bool)
    where[3] = False
    logits[3] = np.nan
    kwargs = dict(reduction=reduction, return_grad=True)
    loss, grad = cross_entropy(logits, labels, where=where, sample_weight=sw, **kwargs)
    rows = np.arange(N) != 3
    expected, expected_grad = cross_entropy(logits[rows], labels[rows], sample_weight=sw[rows],
                                            **kwargs)
    assert_masked_close(loss, grad, expected, expected_grad, rows, dtype, reduction)


@pytest.mark.parametrize("per", ["sample", "logit"])
@pytest.mark.parametrize("targets", ["indices", "probabilities"])
def test_ce_where_all_false(impl, rng, per, targets):
    cross_entropy = api(impl, "cross_entropy", "where")
    logits = np.full((4, C), np.nan)
    target = (rng.integers(0, C, 4) if targets == "indices"
              else probability_targets(rng, (4, C)))
    where = np.zeros(4 if per == "sample" else (4, C), dtype=bool)
    loss, grad = cross_entropy(logits, target, where=where, return_grad=True)
    assert loss == 0.0 and np.all(grad == 0)
    assert cross_entropy(logits, target, where=where, reduction="sum") == 0.0
    assert np.all(cross_entropy(logits, target, where=where, reduction="none") == 0)


@needs_torch
@every_dtype_and_reduction
def test_ce_per_logit_where_probability_targets(impl, rng, dtype, reduction, logits):
    """Targets without mass on masked classes: each row is torch's loss over its True classes."""
    cross_entropy = api(impl, "cross_entropy", "where", "sample_weight")
    where = per_logit_mask(rng, (N, C))
    target = np.where(where, rng.random((N, C)), 0.0)
    target = (target / target.sum(-1, keepdims=True)).astype(dtype)
    weight = rng.uniform(0.5, 2.0, C).astype(dtype)
    sw = rng.uniform(0.1, 3.0, N).astype(dtype)
    dirty = logits.copy()
    dirty[~where] = np.nan
    loss, grad = cross_entropy(dirty, target, weight=weight, sample_weight=sw, where=where,
                               reduction=reduction, return_grad=True)
    # The oracle, row by row on the unmasked classes only.
    per_row, grad_rows = np.zeros(N), np.zeros((N, C))
    for i in range(N):
        keep = where[i]
        value, row_grad = torch_value_and_grad(
            lambda z: F.cross_entropy(z[None], tensor(target[i, keep])[None],
                                      weight=tensor(weight[keep]), reduction="sum")
            * float(sw[i]), logits[i, keep])
        per_row[i] = value
        grad_rows[i, keep] = row_grad
    scale = 1.0 / float(as64(sw).sum()) if reduction == "mean" else 1.0
    assert_close(loss, reduce_like(per_row, reduction, float(as64(sw).sum())), dtype)
    assert_close(grad, grad_rows * scale, dtype)  # 0 at masked classes: no target mass there

    # Target mass on a masked class: +inf.
    row, masked_class = np.argwhere(~where)[0]
    target[row, masked_class] = 0.5
    assert cross_entropy(dirty, target, where=where, reduction="sum") == np.inf


@needs_torch
@every_dtype_and_reduction
@pytest.mark.parametrize("per", ["sample", "logit"])
def test_ce_where_and_sample_weight_class_axis_1(impl, rng, dtype, reduction, per):
    """(N, C, d) logits, axis=1: where is (N, d) per sample or (N, C, d) per logit; vs torch."""
    cross_entropy = api(impl, "cross_entropy", "where", "sample_weight")
    shape = (4, C, 3)
    logits = (3 * rng.standard_normal(shape)).astype(dtype)
    sw = rng.uniform(0.1, 3.0, (4, 3)).astype(dtype)
    weight = rng.uniform(0.5, 2.0, C).astype(dtype)
    if per == "sample":
        where = rng.random((4, 3)) < 0.6
        where[0, 0] = True
        labels = class_labels(rng, (4, 3), C, n_ignored=1)
        oracle_logits, oracle_sw = as64(logits), as64(sw) * where
    else:
        where = per_logit_mask(rng, shape, axis=1)
        labels = np.array([[rng.choice(np.flatnonzero(where[n, :, k])) for k in range(3)]
                           for n in range(4)])
        labels[1, 2] = IGNORE
        oracle_logits, oracle_sw = np.where(where, as64(logits), -np.inf), as64(sw)
    expected, expected_grad = torch_weighted_ce(oracle_logits, labels, weight, oracle_sw,
                                                reduction)
    loss, grad = cross_entropy(logits, labels, weight=weight, sample_weight=sw, where=where,
                               axis=1, reduction=reduction, return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["per-sample", "per-logit", "probabilities"])
def test_ce_where_sample_weight_grad_finite_differences(impl, rng, reduction, case):
    cross_entropy = api(impl, "cross_entropy", "where", "sample_weight")
    logits = 2 * rng.standard_normal((5, 4))
    sw = rng.uniform(0.1, 2.0, 5)
    if case == "per-sample":
        where = np.array([True, False, True, True, True])
        target = np.array([0, 3, IGNORE, 1, 2])
        read = np.broadcast_to(where[:, None], logits.shape)
    else:
        where = per_logit_mask(rng, logits.shape)
        read = where
        if case == "per-logit":
            target = np.array([rng.choice(np.flatnonzero(row)) for row in where])
        else:
            target = np.where(where, rng.random(logits.shape), 0.0)
            target /= target.sum(-1, keepdims=True)
    kwargs = dict(weight=np.array([1.0, 0.5, 2.0, 1.5]), sample_weight=sw, where=where,
                  reduction=reduction)
    _, grad = cross_entropy(logits, target, return_grad=True, **kwargs)
    numeric = numerical_gradient(lambda z: total(cross_entropy(z, target, **kwargs)), logits,
                             where=read)
    np.testing.assert_allclose(grad[read], numeric[read], rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------
# nll_loss
# --------------------------------------------------------------------------

@needs_torch
@every_dtype_and_reduction
@pytest.mark.parametrize("shape", [(7, 5), (3, 5, 2, 3)], ids=str)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss_matches_torch(impl, rng, dtype, reduction, shape, weighted):
    nll_loss = api(impl, "nll_loss")
    log_probs = sc.log_softmax(3 * rng.standard_normal(shape), axis=1)
    sample_shape = shape[:1] + shape[2:]
    labels = class_labels(rng, sample_shape, shape[1], n_ignored=2)
    # -inf off the target (a masked class) changes nothing.
    moved = np.moveaxis(log_probs, 1, -1)
    moved[..., 0] = np.where(np.where(labels == IGNORE, 1, labels) != 0, -np.inf, moved[..., 0])
    log_probs = log_probs.astype(dtype)
    weight = rng.uniform(0.5, 2.0, shape[1]).astype(dtype) if weighted else None
    weight_t = None if weight is None else tensor(weight)

    def function(x):
        return F.nll_loss(x, torch.tensor(labels), weight=weight_t, ignore_index=IGNORE,
                          reduction=reduction)
    expected, expected_grad = torch_value_and_grad(function, log_probs)
    with unmodified(log_probs, labels):
        loss, grad = nll_loss(log_probs, labels, weight=weight, axis=1, reduction=reduction,
                              return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)
    assert_result_dtype(loss, dtype, reduction)
    assert grad.dtype == dtype and grad.shape == shape


def test_nll_loss_special_cases(impl, rng):
    nll_loss = api(impl, "nll_loss")
    log_probs = sc.log_softmax(rng.standard_normal((4, 3)), axis=-1)
    log_probs[1, 2] = -np.inf
    labels = np.array([0, 2, 1, IGNORE])
    assert nll_loss(log_probs, labels) == np.inf                       # -inf at the target
    assert nll_loss(log_probs, labels, reduction="none")[1] == np.inf
    # Ignored samples are not read, even NaN; a mean over nothing is 0.0 with a zero gradient.
    log_probs[3] = np.nan
    loss, grad = nll_loss(log_probs, np.full(4, IGNORE), return_grad=True)
    assert loss == 0.0 and np.all(grad == 0)
    # The default axis is the last one; nll_loss of log_softmax is cross_entropy.
    logits = 3 * rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    np.testing.assert_allclose(nll_loss(sc.log_softmax(logits, axis=-1), labels),
                               impl.cross_entropy(logits, labels), rtol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_grad_finite_differences(impl, rng, reduction):
    nll_loss = api(impl, "nll_loss")
    log_probs = rng.standard_normal((5, 4))
    labels = np.array([0, 3, IGNORE, 1, 1])
    weight = np.array([1.0, 0.5, 2.0, 1.5])
    _, grad = nll_loss(log_probs, labels, weight=weight, reduction=reduction, return_grad=True)
    numeric = numerical_gradient(lambda x: total(nll_loss(x, labels, weight=weight,
                                                      reduction=reduction)), log_probs)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------
# kl_div (torch's elementwise KL on log-probability input)
# --------------------------------------------------------------------------

KL_REDUCTIONS = ["mean", "batchmean", "sum", "none"]


@needs_torch
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4)], ids=str)
def test_kl_div_matches_torch(impl, rng, dtype, reduction, log_target, shape):
    kl_div = api(impl, "kl_div")
    x = sc.log_softmax(2 * rng.standard_normal(shape), axis=-1).astype(dtype)
    p = probability_targets(rng, shape)
    if log_target:
        target = np.log(p).astype(dtype)              # finite: torch gives NaN for -inf
    else:
        p.flat[::4] = 0.0                              # zero terms (torch: xlogy)
        target = p.astype(dtype)

    def function(xt):
        return F.kl_div(xt, tensor(target), reduction=reduction, log_target=log_target)
    expected, expected_grad = torch_value_and_grad(function, x)
    with unmodified(x, target):
        loss, grad = kl_div(x, target, reduction=reduction, log_target=log_target,
                            return_grad=True)
    assert_loss_and_grad_close(loss, grad, expected, expected_grad, dtype)
    assert_result_dtype(loss, dtype, reduction)
    assert grad.dtype == dtype and grad.shape == shape


@needs_torch
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_zero_target_terms_are_zero(impl, rng, log_target):
    """t = 0 (log t = -inf) gives exactly 0 and a zero gradient, even at x = -inf or NaN."""
    kl_div = api(impl, "kl_div")
    x = sc.log_softmax(rng.standard_normal((3, 4)), axis=-1)
    t = probability_targets(rng, (3, 4))
    t[0, 1] = t[2, 3] = t[1, 0] = 0.0
    x[0, 1], x[2, 3] = -np.inf, np.nan
    with np.errstate(divide="ignore"):
        target = np.log(t) if log_target else t
    for reduction in KL_REDUCTIONS:
        loss, grad = kl_div(x, target, reduction=reduction, log_target=log_target,
                            return_grad=True)
        assert np.all(np.isfinite(loss))
        assert grad[0, 1] == 0 and grad[2, 3] == 0 and grad[1, 0] == 0
    pointwise = kl_div(x, target, reduction="none", log_target=log_target)
    assert pointwise[0, 1] == 0 and pointwise[2, 3] == 0
    # Where x is finite, torch agrees (its xlogy rule covers t = 0 without log_target).
    if not log_target:
        x_finite = np.where(np.isfinite(x), x, 0.0)
        np.testing.assert_allclose(kl_div(x_finite, t, reduction="sum"),
                                   F.kl_div(tensor(x_finite), tensor(t), reduction="sum").item(),
                                   rtol=1e-12)


@needs_torch
def test_kl_div_batchmean_and_0d(impl, rng):
    kl_div = api(impl, "kl_div")
    x = np.log(probability_targets(rng, (4, 3)))
    t = probability_targets(rng, (4, 3))
    np.testing.assert_allclose(kl_div(x, t, reduction="batchmean"),
                               kl_div(x, t, reduction="sum") / 4, rtol=1e-14)
    x0, t0 = np.float64(-0.5), np.float64(0.25)
    expected = F.kl_div(tensor(x0), tensor(t0), reduction="batchmean").item()
    np.testing.assert_allclose(kl_div(x0, t0, reduction="batchmean"), expected, rtol=1e-12)
    np.testing.assert_allclose(kl_div(x0, t0, reduction="batchmean"), 0.25 * (np.log(0.25) + 0.5),
                               rtol=1e-14)


@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_grad_finite_differences(impl, rng, reduction, log_target):
    kl_div = api(impl, "kl_div")
    x = rng.standard_normal((3, 4)) - 1.0
    t = probability_targets(rng, (3, 4))
    target = np.log(t) if log_target else t
    kwargs = dict(reduction=reduction, log_target=log_target)
    _, grad = kl_div(x, target, return_grad=True, **kwargs)
    numeric = numerical_gradient(lambda z: total(kl_div(z, target, **kwargs)), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------
# logsumexp, softmax, log_softmax against scipy
# --------------------------------------------------------------------------

AXES = [-1, 0, 1, (0, 2), (2, 0), (1,), None, ()]


def lse_input(rng, dtype):
    x = 4 * rng.standard_normal((3, 4, 5))
    x[0, 1, 2] = x[2, 3, 0] = -np.inf
    return x.astype(dtype)


def scipy_lse(x, **kwargs):
    """scipy's logsumexp on the float64 copy of x, returned as float64 arrays."""
    result = sc.logsumexp(as64(x), **kwargs)
    if kwargs.get("return_sign"):
        return tuple(np.asarray(r, dtype=np.float64) for r in result)
    return np.asarray(result, dtype=np.float64)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_axes_keepdims_match_scipy(impl, rng, dtype, axis, keepdims):
    logsumexp = api(impl, "logsumexp", "keepdims")
    x = lse_input(rng, dtype)
    requires(impl, lambda: logsumexp(x, axis=axis), f"logsumexp axis={axis!r}")
    with unmodified(x):
        result = logsumexp(x, axis=axis, keepdims=keepdims)
    expected = scipy_lse(x, axis=axis, keepdims=keepdims)
    assert np.shape(result) == expected.shape
    assert np.asarray(result).dtype == dtype
    assert_close(result, expected, dtype)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, (0, 2), None], ids=str)
@pytest.mark.parametrize("b_shape", [(3, 4, 5), (5,), (4, 1)], ids=str)
def test_logsumexp_b_and_return_sign_match_scipy(impl, rng, dtype, axis, b_shape):
    logsumexp = api(impl, "logsumexp", "b", "return_sign", "keepdims")
    x = lse_input(rng, dtype)
    b = rng.standard_normal(b_shape)
    b.flat[::3] = 0.0
    b = b.astype(dtype)
    requires(impl, lambda: logsumexp(x, axis=axis), f"logsumexp axis={axis!r}")
    with unmodified(x, b):
        result, sign = logsumexp(x, axis=axis, b=b, return_sign=True)
    expected, expected_sign = scipy_lse(x, axis=axis, b=as64(b), return_sign=True)
    assert_close(result, expected, dtype)
    np.testing.assert_array_equal(sign, expected_sign)
    assert np.asarray(result).dtype == dtype
    # Without return_sign, a negative sum gives NaN (scipy's too).
    plain = logsumexp(x, axis=axis, b=b)
    assert_close(plain, scipy_lse(x, axis=axis, b=as64(b)), dtype)
    assert np.array_equal(np.isnan(plain), expected_sign < 0)


def test_logsumexp_b_zero_excludes_inf_and_nan(impl):
    logsumexp = api(impl, "logsumexp", "b")
    x = np.array([[np.inf, np.nan, 1.0, 2.0], [0.0, 1.0, -np.inf, np.nan]])
    b = np.array([[0.0, 0.0, 1.0, 1.0], [2.0, 1.0, 1.0, 0.0]])
    expected = [np.logaddexp(1.0, 2.0), np.log(2.0 + np.e)]
    np.testing.assert_allclose(logsumexp(x, b=b), expected, rtol=1e-15)
    np.testing.assert_allclose(logsumexp(x, b=b), sc.logsumexp(x, b=b, axis=-1), rtol=1e-15)


@pytest.mark.parametrize("x, b, expected", [
    ([-np.inf, -np.inf], None, (-np.inf, 0.0)),            # an empty sum
    ([0.0, 0.0], [1.0, -1.0], (-np.inf, 0.0)),             # cancelling terms
    ([0.0, 1.0], [1.0, -1.0], (np.log(np.e - 1.0), -1.0)),  # a negative sum
    ([np.inf, 1.0], [-1.0, 1.0], (np.inf, -1.0)),          # +inf with a negative b
    ([np.inf, np.inf], [1.0, -1.0], (np.nan, np.nan)),     # inf - inf
    ([np.nan, 1.0], None, (np.nan, np.nan)),
    ([1.0, np.inf], None, (np.inf, 1.0)),
], ids=["all-neg-inf", "cancel", "negative", "inf-negative-b", "inf-minus-inf", "nan", "inf"])
def test_logsumexp_sign_special_values_match_scipy(impl, x, b, expected):
    logsumexp = api(impl, "logsumexp", "b", "return_sign")
    x = np.array(x)
    b = None if b is None else np.array(b)
    result, sign = logsumexp(x, b=b, return_sign=True)
    np.testing.assert_allclose([result, sign], expected, rtol=1e-15)
    np.testing.assert_allclose([result, sign], sc.logsumexp(x, b=b, return_sign=True),
                               rtol=1e-15)
    plain = logsumexp(x, b=b)  # a negative (or NaN) sum gives NaN without return_sign
    if expected[1] >= 0:
        assert plain == expected[0]
    else:
        assert np.isnan(plain)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, None, ()], ids=str)
def test_logsumexp_0d(impl, dtype, axis):
    logsumexp = api(impl, "logsumexp", "b", "return_sign", "keepdims")
    x = np.array(1.5, dtype=dtype)
    requires(impl, lambda: logsumexp(x, axis=axis), f"logsumexp of a 0-d array, axis={axis!r}")
    result = logsumexp(x, axis=axis)
    assert np.ndim(result) == 0 and np.asarray(result).dtype == dtype and result == x
    if axis != ():  # scipy returns shape (1,) for axis=() on a 0-d array
        np.testing.assert_array_equal(result, sc.logsumexp(x, axis=axis))
    value, sign = logsumexp(x, axis=axis, b=np.array(-2.0, dtype=dtype), return_sign=True)
    assert_close(value, 1.5 + np.log(2.0), dtype)
    assert sign == -1
    assert np.shape(logsumexp(x, axis=axis, keepdims=True)) == ()


def test_logsumexp_dtypes(impl, rng):
    logsumexp = api(impl, "logsumexp", "b", "return_sign")
    for dtype in FLOAT_DTYPES:
        x = rng.standard_normal((3, 4)).astype(dtype)
        assert logsumexp(x).dtype == sc.logsumexp(x, axis=-1).dtype == dtype
        result, sign = logsumexp(x, b=np.ones(4, dtype=dtype), return_sign=True)
        assert result.dtype == dtype
        assert sign.dtype == sc.logsumexp(x, b=np.ones(4, dtype), axis=-1,
                                          return_sign=True)[1].dtype


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 1, (0, 2), (2, 1), (0, 1, 2), None], ids=str)
def test_softmax_tuple_axes_match_scipy(impl, rng, dtype, name, axis):
    function = getattr(impl, name)
    x = lse_input(rng, dtype)
    requires(impl, lambda: function(x, axis=axis), f"{name} axis={axis!r}")
    with unmodified(x):
        result = function(x, axis=axis)
    expected = getattr(sc, name)(as64(x), axis=axis)
    assert result.dtype == dtype and result.shape == x.shape
    assert_close(result, expected, dtype)
    out = np.empty_like(x)
    assert function(x, axis=axis, out=out) is out
    np.testing.assert_array_equal(out, result)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("axis", [-1, 0, None], ids=str)
def test_softmax_0d(impl, dtype, axis):
    x = np.array(3.0, dtype=dtype)
    for name, value in (("softmax", 1.0), ("log_softmax", 0.0)):
        function = getattr(impl, name)
        requires(impl, lambda: function(x, axis=axis), f"{name} of a 0-d array")
        result = function(x, axis=axis)
        assert np.shape(result) == () and result == value
        assert result == getattr(sc, name)(as64(x), axis=axis)
        out = np.empty((), dtype=dtype)
        assert function(x, axis=axis, out=out) is out and out == value


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------

BAD_SAMPLE_WEIGHTS = {
    "negative": np.array([1.0, -0.5, 1.0, 1.0]),
    "nan": np.array([1.0, np.nan, 1.0, 1.0]),
    "inf": np.array([1.0, 1.0, np.inf, 1.0]),
    "wrong-shape": np.ones(3),
    "2-d": np.ones((4, 1)),
}


@pytest.mark.parametrize("bad", list(BAD_SAMPLE_WEIGHTS), ids=str)
@pytest.mark.parametrize("call", ["indices", "probabilities", "kl_with_logits"])
def test_bad_sample_weight_is_value_error(impl, rng, bad, call):
    logits = rng.standard_normal((4, 3))
    sw = BAD_SAMPLE_WEIGHTS[bad]
    if call == "kl_with_logits":
        function = api(impl, "kl_divergence_with_logits", "sample_weight")
        args = (probability_targets(rng, (4, 3)), logits)
    else:
        function = api(impl, "cross_entropy", "sample_weight")
        target = (rng.integers(0, 3, 4) if call == "indices"
                  else probability_targets(rng, (4, 3)))
        args = (logits, target)
    with unmodified(*args, sw), pytest.raises(ValueError, match="sample_weight"):
        function(*args, sample_weight=sw)


@pytest.mark.parametrize("name", ["cross_entropy"] + BINARY)
@pytest.mark.parametrize("bad", ["int", "float", "wrong-shape"])
def test_bad_where(impl, rng, name, bad):
    function = api(impl, name, "where")
    if name == "cross_entropy":
        data, target = rng.standard_normal((4, 3)), rng.integers(0, 3, 4)
    else:
        data, target = binary_case(rng, name, (4, 3), np.float64)
    where = {"int": np.ones((4, 3), dtype=np.int64), "float": np.ones(4),
             "wrong-shape": np.ones((4, 2), dtype=bool)}[bad]
    error = ValueError if bad == "wrong-shape" else TypeError
    with pytest.raises(error, match="where"):
        function(data, target, where=where)


@pytest.mark.parametrize("target, log_target", [
    (-0.1, False), (np.nan, False), (np.inf, False), (np.nan, True), (np.inf, True),
], ids=["negative", "nan", "inf", "log-nan", "log-inf"])
def test_kl_div_bad_target(impl, rng, target, log_target):
    kl_div = api(impl, "kl_div")
    x = np.log(probability_targets(rng, (3, 4)))
    t = probability_targets(rng, (3, 4))
    if log_target:
        t = np.log(t)
    t[1, 2] = target
    with unmodified(x, t), pytest.raises(ValueError, match="target"):
        kl_div(x, t, log_target=log_target)
    with pytest.raises(ValueError):
        kl_div(x, probability_targets(rng, (3, 5)))      # shapes must match exactly
    with pytest.raises(ValueError):
        kl_div(x, probability_targets(rng, (4,)))        # no broadcasting either


@pytest.mark.parametrize("label", [3, -1, 7, -101])
def test_nll_loss_label_out_of_range(impl, rng, label):
    nll_loss = api(impl, "nll_loss")
    log_probs = np.log(probability_targets(rng, (4, 3)))
    labels = np.array([0, label, 2, IGNORE])
    with unmodified(log_probs, labels), pytest.raises(ValueError, match="target"):
        nll_loss(log_probs, labels)


def test_bad_pos_weight_shape(impl, rng):
    bce = impl.binary_cross_entropy_with_logits
    logits, target = rng.standard_normal((4, 3)), rng.random((4, 3))
    with pytest.raises(ValueError, match="pos_weight"):
        bce(logits, target, pos_weight=np.ones(2))
    with pytest.raises(ValueError, match="pos_weight"):
        bce(logits, target, pos_weight=np.ones((3, 3)))
