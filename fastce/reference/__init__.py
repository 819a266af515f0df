"""Pure-NumPy reference for fastce: the documented contract in executable form.

Every function here has the signature of its compiled counterpart in ``fastce``.
It is the oracle the kernels are tested against and the baseline they are
benchmarked against, and it is written for clarity, not speed:

* Inputs are cast up to float64, and every formula is evaluated there in its
  numerically stable form: max-shifted log-sum-exp, softplus through
  exp(-|t|), and the xlogy rule that a zero factor gives exactly 0, even
  against inf or NaN. There are no eps fudges.
* Per-sample losses, gradients and outputs are then cast to the compute dtype:
  float32 and float64 as given, float16 -> float32, integer and bool -> float64.
  A scalar loss (reduction "mean" or "sum") is a numpy.float64.
* ``return_grad=True`` returns ``(loss, grad)``. ``grad`` is the derivative of the
  returned loss with respect to the first argument (for ``reduction="none"``, of
  the sum of the per-sample losses).
* ``return_hessian=True`` (binary_cross_entropy_with_logits, logistic_loss and
  cross_entropy with class indices) returns ``(loss, grad, hess)``, whatever
  ``return_grad`` says: ``hess`` is the diagonal of the Hessian of the returned loss
  with respect to the first argument.
* ``grad_out`` and ``out``, when given, receive the result via np.copyto and are
  returned. ``n_threads`` is accepted and ignored.
* A "mean" over nothing (empty batch, every target ignored, zero total weight,
  every element masked out by ``where``) is 0.0 with a zero gradient. PyTorch gives NaN.
* ``sample_weight`` (cross_entropy, kl_divergence_with_logits) is one finite, non-negative
  weight per sample, of the per-sample loss shape. It multiplies the per-sample loss and its
  derivatives; a zero sample weight gives exactly 0 even where the logits are inf or NaN.
* ``where`` (optax's semantics) is a bool mask. False elements (or samples) contribute exactly
  0 to the loss and the gradient whatever the inputs hold there, are not validated, and leave
  the mean's denominator.

Validation is light. The compiled package does the full checking.
"""

import functools
import math
import operator

import numpy as np

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "logistic_loss",
    "sigmoid_focal_loss",
    "cross_entropy",
    "log_softmax",
    "softmax",
    "logsumexp",
    "sigmoid",
    "log_sigmoid",
    "entropy",
    "kl_divergence",
    "kl_divergence_with_logits",
    "js_divergence",
    "categorical_cross_entropy",
    "nll_loss",
    "kl_div",
]

_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------
# Plumbing: dtypes, reductions, outputs
# --------------------------------------------------------------------------

def _quiet(function):
    """Run `function` with NumPy's floating-point warnings off: inf and NaN are legitimate values here."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)
    return wrapper


def _compute_dtype(array, name):
    """float32/float64 as given, float16 -> float32, integer/bool -> float64; anything else is a TypeError."""
    dtype = array.dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype == np.bool_ or np.issubdtype(dtype, np.integer):
        return np.dtype(np.float64)
    raise TypeError(f"{name}: unsupported dtype {dtype}")


def _check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _times(factor, value):
    """factor * value, where a zero factor gives exactly 0 even if value is inf or NaN (as 0·log 0 = 0)."""
    return np.where(factor == 0, 0.0, factor * value)


def _deliver(result, dtype, out, name):
    """Cast a float64 array to the compute dtype in C order; when `out` is given, copy into it and return it."""
    result = np.asarray(result, dtype=dtype, order="C")
    if out is None:
        return result
    if out.shape != result.shape or out.dtype != dtype:
        raise ValueError(f"{name} must have shape {result.shape} and dtype {dtype}, "
                         f"got shape {out.shape} and dtype {out.dtype}")
    np.copyto(out, result)
    return out


def _reduce(loss, grad, reduction, count, dtype, grad_out, hess=None):
    """Apply `reduction` to the float64 per-sample `loss`, its gradient `grad` and the
    diagonal of its Hessian `hess` (None: not asked for).

    "mean" divides all three by `count`. A mean over nothing (count 0) is 0.0 with a zero
    gradient and Hessian. Returns loss, (loss, grad) or, when `hess` is given, (loss, grad, hess).
    """
    if reduction == "none":
        result = np.asarray(loss, dtype=dtype)
    elif reduction == "sum":
        result = np.float64(np.sum(loss))
    elif count == 0:
        result = np.float64(0.0)
        grad = None if grad is None else np.zeros_like(grad)
        hess = None if hess is None else np.zeros_like(hess)
    else:
        result = np.float64(np.sum(loss) / count)
        grad = None if grad is None else grad / count
        hess = None if hess is None else hess / count
    if grad is None:
        return result
    grad = _deliver(grad, dtype, grad_out, "grad_out")
    if hess is None:
        return result, grad
    return result, grad, _deliver(hess, dtype, None, "hess")


def _where_mask(where, shape):
    """The bool mask `where` broadcast to `shape` (read-only), or None when not given."""
    if where is None:
        return None
    mask = np.asarray(where)
    if mask.dtype != np.bool_:
        raise TypeError(f"where must be a bool array, got dtype {mask.dtype}")
    try:
        return np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(f"where of shape {mask.shape} does not broadcast to the shape "
                         f"{shape}") from None


def _sample_weights(sample_weight, shape, used=None):
    """sample_weight as float64 of the per-sample `shape`, 0 where `used` is False; None if not given.

    Only the used samples are checked: each must be finite and >= 0.
    """
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight)
    _compute_dtype(sw, "sample_weight")
    sw = sw.astype(np.float64)
    if sw.shape != tuple(shape):
        raise ValueError(f"sample_weight must have the per-sample loss shape {tuple(shape)}, "
                         f"got {sw.shape}")
    checked = sw if used is None else sw[used]
    if not np.all(np.isfinite(checked) & (checked >= 0)):
        raise ValueError("sample_weight must be finite and >= 0 (and not NaN)")
    return sw if used is None else np.where(used, sw, 0.0)


def _normalize_axes(axis, ndim):
    """`axis` (an int, a tuple of ints, or None for all axes) as a tuple of distinct axes in
    [0, ndim). A 0-d array is one element along one implicit axis: -1, 0, None and () all
    name it, and the result is ()."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    axes = tuple(operator.index(a) for a in axes)
    if ndim == 0:
        if all(a in (-1, 0) for a in axes):
            return ()
        raise np.exceptions.AxisError(f"axis {axis!r} is out of bounds for a 0-d array")
    return np.lib.array_utils.normalize_axis_tuple(axes, ndim)


def _group_axes(x, axes):
    """x with `axes` moved last and merged into one axis of their total size.

    Returns (grouped, ungroup): grouped has the other axes (in order) then the merged one;
    ungroup(values) maps an array of grouped's shape back to x's layout.
    """
    kept = [a for a in range(x.ndim) if a not in axes]
    order = kept + list(axes)
    moved = np.transpose(x, order)
    size = math.prod(x.shape[a] for a in axes)
    grouped = moved.reshape(moved.shape[:len(kept)] + (size,))

    def ungroup(values):
        return np.transpose(np.reshape(values, moved.shape), np.argsort(order))
    return grouped, ungroup


# --------------------------------------------------------------------------
# Scalar math, elementwise
# --------------------------------------------------------------------------

def _softplus(t):
    """softplus(t) = log(1 + exp(t)) = max(t, 0) + log1p(exp(-|t|)).

    exp never overflows, and log1p keeps full relative accuracy where the result is tiny (t << 0).
    softplus(+inf) = inf, softplus(-inf) = 0, NaN propagates.
    """
    return np.maximum(t, 0.0) + np.log1p(np.exp(-np.abs(t)))


def _sigmoid(t):
    """σ(t) = 1 / (1 + exp(-t)), through e = exp(-|t|) <= 1: 1/(1+e) for t >= 0 and e/(1+e) for t < 0."""
    e = np.exp(-np.abs(t))
    return np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# --------------------------------------------------------------------------
# Row math: softmax along the last axis
# --------------------------------------------------------------------------

def _softmax_parts(logits):
    """The pieces of a stable softmax along the last axis, all with keepdims.

    Returns (row_max, shifted, exp_shifted, rest, top):
      shifted = logits - row_max <= 0 and exp_shifted = exp(shifted);
      top is the index of one row maximum, whose exp_shifted is exactly 1;
      rest is the sum of exp_shifted over every other class.
    So sum(exp(shifted)) = 1 + rest, log_softmax = shifted - log1p(rest) and
    logsumexp = row_max + log1p(rest). log1p(rest) keeps full relative accuracy when one
    class dominates (a loss near 0), where log(1 + rest) would round to 0.
    A row of all -inf has row_max = -inf and shifted = NaN: it has no distribution.
    """
    n_classes = logits.shape[-1]
    row_max = np.max(logits, axis=-1, keepdims=True, initial=-np.inf)
    shifted = logits - row_max
    exp_shifted = np.exp(shifted)
    if n_classes > 0:
        top = np.argmax(logits, axis=-1, keepdims=True)
    else:
        top = np.zeros(logits.shape[:-1] + (1,), dtype=np.intp)
    is_top = np.arange(n_classes) == top
    rest = np.sum(np.where(is_top, 0.0, exp_shifted), axis=-1, keepdims=True)
    return row_max, shifted, exp_shifted, rest, top


# --------------------------------------------------------------------------
# Binary family (elementwise, any shape)
# --------------------------------------------------------------------------

def _masked(mask, values, fill):
    """values where mask is True, `fill` elsewhere (values itself when there is no mask)."""
    return values if mask is None else np.where(mask, values, fill)


def _distribution_pair(p, q, axis):
    """(p's compute dtype, p and q as float64 distributions with `axis` last)."""
    dtype = _compute_dtype(np.asarray(p), "p")
    x = _distributions(p, "p", axis)
    _same_shape(p, q, "p", "q")
    return dtype, x, _distributions(q, "q", axis)


def _classes_last(x, name, axis, weight):
    """x in float64 with its class axis moved last, and the class weights (ones if None)."""
    values = np.moveaxis(x.astype(np.float64), axis, -1)
    n_classes = values.shape[-1]
    if n_classes == 0:
        raise ValueError(f"{name}: the class axis is empty")
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    if w.shape != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},), got {w.shape}")
    return values, w


def _elementwise_inputs(x, name, target, where, target_fill):
    """(compute dtype, x and target in float64, the where mask) of an elementwise loss.

    Masked elements get the neutral value 0.0 in x and `target_fill` in the target,
    so that they pass the value checks and contribute 0.
    """
    x = np.asarray(x)
    dtype = _compute_dtype(x, name)
    values = x.astype(np.float64)
    y = np.asarray(target, dtype=np.float64)
    if y.shape != values.shape:
        raise ValueError(f"target must have the {name}' shape {values.shape}, got {y.shape}")
    mask = _where_mask(where, values.shape)
    return dtype, _masked(mask, values, 0.0), _masked(mask, y, target_fill), mask


def _masked_count(mask, size):
    """The mean's denominator of an elementwise loss: the number of unmasked elements."""
    return size if mask is None else int(np.count_nonzero(mask))


@_quiet
def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean", return_grad=False, grad_out=None,
                                     n_threads=None, return_hessian=False, where=None):
    """Binary cross-entropy from logits z and targets y in [0, 1], elementwise.

    loss = (1 - y)·softplus(z) + pw·y·softplus(-z)
    grad = (1 - y)·σ(z) - pw·y·σ(-z)
    both times `weight` (broadcast to the logits' shape); `pos_weight` pw broadcasts to the
    logits' shape as in torch: a scalar, (L,), (1, L), (N, L), ... A term whose factor (1 - y,
    pw·y, or weight) is 0 contributes exactly 0, so a zero weight silences even a NaN logit.
    "mean" divides by logits.size, as torch does.
    This is torch's (1 - y)·z + (1 + (pw - 1)·y)·softplus(-z) without its cancellation.
    With return_hessian: hess = weight·σ(z)·σ(-z)·((1 - y) + pw·y), the derivative of grad.
    `where` (bool, broadcast to the logits' shape): False elements give exactly 0 loss,
    gradient and Hessian whatever z, y and the weights hold there, and "mean" divides by the
    number of True elements instead.
    """
    _check_reduction(reduction)
    dtype, z, y, mask = _elementwise_inputs(logits, "logits", target, where, 0.0)
    pw = 1.0
    if pos_weight is not None:
        pos_weight = np.asarray(pos_weight, np.float64)
        try:
            pw = np.broadcast_to(pos_weight, z.shape)
        except ValueError:
            raise ValueError(f"pos_weight of shape {pos_weight.shape} does not broadcast to "
                             f"the logits' shape {z.shape}") from None
    w = 1.0 if weight is None else np.broadcast_to(np.asarray(weight, np.float64), z.shape)

    negative_factor = 1.0 - y
    positive_factor = pw * y
    loss = _times(w, _times(negative_factor, _softplus(z)) + _times(positive_factor, _softplus(-z)))
    grad = hess = None
    if return_grad or return_hessian:
        grad = _times(w, _times(negative_factor, _sigmoid(z)) - _times(positive_factor, _sigmoid(-z)))
    if return_hessian:
        hess = _times(w, _times(negative_factor + positive_factor, _sigmoid(z) * _sigmoid(-z)))
    loss, grad, hess = (None if a is None else _masked(mask, a, 0.0) for a in (loss, grad, hess))
    return _reduce(loss, grad, reduction, _masked_count(mask, z.size), dtype, grad_out, hess)


@_quiet
def binary_cross_entropy(probs, target, *, weight=None, reduction="mean", return_grad=False,
                         grad_out=None, n_threads=None, where=None):
    """Binary cross-entropy from probabilities p in [0, 1] and targets y in [0, 1], elementwise.

    loss = -(y·max(log p, -100) + (1 - y)·max(log(1 - p), -100))
    grad = (p - y) / max(p·(1 - p), 1e-12)
    both times `weight`. The clamps (torch's) keep the loss finite at p in {0, 1}; a term whose
    target factor is 0 contributes exactly 0. log(1 - p) is evaluated as log1p(-p).
    "mean" divides by probs.size. `where` (bool, broadcast to the probs' shape): False elements
    give exactly 0 loss and gradient, are not checked, and "mean" divides by the True count.
    """
    _check_reduction(reduction)
    probs = np.asarray(probs)
    dtype = _compute_dtype(probs, "probs")
    p = probs.astype(np.float64)
    mask = _where_mask(where, p.shape)
    p = _masked(mask, p, 0.5)
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probs must lie in [0, 1] (and not be NaN)")
    y = np.asarray(target, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"target must have the probs' shape {p.shape}, got {y.shape}")
    y = _masked(mask, y, 0.0)
    w = 1.0 if weight is None else np.broadcast_to(np.asarray(weight, np.float64), p.shape)

    log_p = np.maximum(np.log(p), -100.0)
    log_one_minus_p = np.maximum(np.log1p(-p), -100.0)
    loss = _masked(mask, _times(w, -(_times(y, log_p) + _times(1.0 - y, log_one_minus_p))), 0.0)
    grad = None
    if return_grad:
        grad = _masked(mask, _times(w, (p - y) / np.maximum(p * (1.0 - p), 1e-12)), 0.0)
    return _reduce(loss, grad, reduction, _masked_count(mask, p.size), dtype, grad_out)


@_quiet
def logistic_loss(scores, target, *, weight=None, reduction="mean", return_grad=False,
                  grad_out=None, n_threads=None, return_hessian=False, where=None):
    """Logistic loss for scores s and labels y in {-1, +1}, elementwise.

    loss = log(1 + exp(-y·s)) = softplus(-y·s)
    grad = -y·σ(-y·s)
    both times `weight` (a zero weight gives exactly 0). "mean" divides by scores.size.
    With return_hessian: hess = weight·σ(s)·σ(-s) (y² = 1).
    `where` (bool, broadcast to the scores' shape): False elements give exactly 0 loss,
    gradient and Hessian, are not checked, and "mean" divides by the number of True elements.
    """
    _check_reduction(reduction)
    dtype, s, y, mask = _elementwise_inputs(scores, "scores", target, where, 1.0)
    if not np.all((y == 1) | (y == -1)):
        raise ValueError("target: logistic_loss labels must be -1 or +1")
    w = 1.0 if weight is None else np.broadcast_to(np.asarray(weight, np.float64), s.shape)

    margin = y * s
    loss = _times(w, _softplus(-margin))
    grad = hess = None
    if return_grad or return_hessian:
        grad = _times(w, -y * _sigmoid(-margin))
    if return_hessian:
        hess = _times(w, _sigmoid(s) * _sigmoid(-s))
    loss, grad, hess = (None if a is None else _masked(mask, a, 0.0) for a in (loss, grad, hess))
    return _reduce(loss, grad, reduction, _masked_count(mask, s.size), dtype, grad_out, hess)


@_quiet
def sigmoid_focal_loss(logits, target, *, alpha=0.25, gamma=2.0, reduction="mean",
                       return_grad=False, grad_out=None, n_threads=None, where=None):
    """Focal loss of torchvision.ops.sigmoid_focal_loss for logits z and targets y in [0, 1].

    p = σ(z), p_t = p·y + (1 - p)·(1 - y), m = 1 - p_t = y·σ(-z) + (1 - y)·σ(z)
    ce = (1 - y)·softplus(z) + y·softplus(-z)              (BCE with logits, the documented form)
    loss = α_t·m^γ·ce,  α_t = α·y + (1 - α)·(1 - y) when α >= 0, else 1
    grad = α_t·m^γ·(γ·(1 - 2y)·r·ce + σ(z) - y),  r = σ(z)·σ(-z) / m = dm/dz / ((1 - 2y)·m)

    m^γ is exp(γ·log m) with log m = logaddexp(log y + log σ(-z), log(1 - y) + log σ(z)), a term
    with y = 0 or y = 1 dropping out (log 0 = -inf), so m^γ neither underflows m first nor
    forms 0·inf: the loss is finite and NaN-free for every finite z and every γ >= 0, and
    γ = 0 gives m^0 = 1 exactly, even where m = 0. r is 1 / (y·(1 + e^-z) + (1 - y)·(1 + e^z)),
    a sum of non-negative terms >= 1; σ(z) - y is (1 - y)·σ(z) - y·σ(-z), without cancellation.
    ±inf logits give the limits. "mean" divides by logits.size. Unlike torchvision (whose default
    reduction is "none"), the default reduction is "mean", like every fastce loss.
    gamma must be finite and >= 0, alpha <= 1 (alpha < 0: no alpha factor).
    `where` (bool, broadcast to the logits' shape): False elements give exactly 0 loss and
    gradient, are not checked, and "mean" divides by the number of True elements.
    """
    _check_reduction(reduction)
    alpha, gamma = float(alpha), float(gamma)
    if not 0.0 <= gamma < np.inf:
        raise ValueError(f"gamma must be finite and >= 0, got {gamma!r}")
    if not alpha <= 1.0:
        raise ValueError(f"alpha must be <= 1 (or < 0 to turn the alpha factor off), got {alpha!r}")
    _compute_dtype(np.asarray(logits), "logits")
    _compute_dtype(np.asarray(target), "target")  # (the others take any real target)
    dtype, z, y, mask = _elementwise_inputs(logits, "logits", target, where, 0.0)
    if not np.all((y >= 0) & (y <= 1)):
        raise ValueError("target must lie in [0, 1] (and not be NaN)")

    log_sigmoid_z, log_sigmoid_minus_z = -_softplus(-z), -_softplus(z)
    ce = _times(1.0 - y, -log_sigmoid_minus_z) + _times(y, -log_sigmoid_z)
    log_m = np.logaddexp(np.log(y) + log_sigmoid_minus_z, np.log1p(-y) + log_sigmoid_z)
    modulating = np.ones_like(z) if gamma == 0 else np.exp(gamma * log_m)
    alpha_t = alpha * y + (1.0 - alpha) * (1.0 - y) if alpha >= 0 else np.ones_like(z)
    loss = _masked(mask, _times(alpha_t, _times(modulating, ce)), 0.0)

    grad = None
    if return_grad:
        r = 1.0 / (_times(y, 1.0 + np.exp(-z)) + _times(1.0 - y, 1.0 + np.exp(z)))
        sigmoid_minus_y = _times(1.0 - y, _sigmoid(z)) - _times(y, _sigmoid(-z))
        focusing = _times(gamma * (1.0 - 2.0 * y), _times(r, ce))
        grad = _masked(mask, _times(alpha_t, _times(modulating, focusing + sigmoid_minus_y)), 0.0)
    return _reduce(loss, grad, reduction, _masked_count(mask, z.size), dtype, grad_out)


# --------------------------------------------------------------------------
# Softmax family (classes along `axis`)
# --------------------------------------------------------------------------

@_quiet
def cross_entropy(logits, target, *, weight=None, ignore_index=-100, label_smoothing=0.0,
                  reduction="mean", axis=-1, return_grad=False, grad_out=None, n_threads=None,
                  return_hessian=False, sample_weight=None, where=None):
    """Softmax cross-entropy along `axis`, with torch.nn.functional.cross_entropy's semantics.

    Notation: p = softmax(z), lse = logsumexp(z), ε = label_smoothing, C classes,
    class weights w (default 1), W = Σ_c w_c, sample weights sw (default 1),
    s = the reduction's scale.

    Integer target y (class indices; the logits' shape minus `axis`):
        loss = sw·[(1-ε)·w_y·(lse - z_y) + (ε/C)·Σ_c w_c·(lse - z_c)]
        grad_c = s·sw·[(1-ε)·w_y·(p_c - [c=y]) + (ε/C)·(W·p_c - w_c)]
      A sample with y == ignore_index contributes exactly 0 to the loss and the gradient,
      whatever its logits hold. "mean" divides by Σ sw·w_y over the other samples (torch's
      Σ w_y, combined with scikit-learn's sample-weighted mean).
    Float target y (class probabilities; the logits' shape):
        y' = (1-ε)·y + ε/C,  loss = -sw·Σ_c w_c·y'_c·log p_c,
        grad_c = s·sw·[(Σ_k w_k·y'_k)·p_c - w_c·y'_c]
      "mean" divides by Σ sw over the samples (the number of samples without sample_weight).

    return_hessian (class indices only; probability targets raise ValueError) also returns the
    diagonal of the Hessian, hess_c = s·sw·p_c·(1 - p_c)·((1-ε)·w_y + (ε/C)·W), 0 for ignored
    samples (for "none", of the sum of the per-sample losses).

    sample_weight: one finite weight >= 0 per sample (the per-sample loss shape). A sample with
    sw = 0 contributes exactly 0 to the loss, gradient and Hessian, even with NaN logits.

    where (bool): if where.ndim == logits.ndim it masks logits (broadcast to the logits' shape),
    otherwise samples (broadcast to the per-sample loss shape).
      Per sample: a False sample gives exactly 0 loss and gradient, is not checked (its label
      and sample weight are not read), and leaves the mean's denominator.
      Per logit: a False entry is exactly a -inf logit, whatever value it holds; its gradient
      is what a -inf logit gets. A row with no True entry is left out like a False sample.

    -inf logits are masks: p_c = 0. The loss is +inf only when target mass (y, or smoothing
    with w_c > 0) falls on a masked class. A term whose factor is 0 contributes exactly 0, so
    a zero class weight or ε = 0 silences a masked class (torch gives NaN for 0·inf there).
    A non-ignored row of all -inf has no distribution: its loss is NaN.
    A "mean" over zero total weight is 0.0 with a zero gradient (torch gives NaN).
    """
    _check_reduction(reduction)
    logits = np.asarray(logits)
    target = np.asarray(target)
    dtype = _compute_dtype(logits, "logits")
    z, w = _classes_last(logits, "logits", axis, weight)
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")

    class_indices = np.issubdtype(target.dtype, np.integer)
    if return_hessian and not class_indices:
        raise ValueError("return_hessian needs class-index targets; probability targets have a "
                         "dense Hessian, whose diagonal alone is not returned")

    # used: the samples that take part (None: all of them). Masked logits become -inf.
    z, used = _cross_entropy_where(where, z, logits.shape, axis)
    sw = _sample_weights(sample_weight, z.shape[:-1], used)
    if used is not None:
        z = np.where(used[..., None], z, 0.0)  # rows left out are never read

    _, shifted, exp_shifted, rest, top = _softmax_parts(z)
    log_probs = shifted - np.log1p(rest)
    probs = exp_shifted / (1.0 + rest)

    if class_indices:
        loss, grad, hess, count = _cross_entropy_class_indices(
            log_probs, probs, rest, top, target, w, eps, ignore_index,
            return_grad or return_hessian, return_hessian, used, sw)
    else:
        if target.shape != logits.shape:
            raise ValueError(f"target: probability targets must have the logits' shape "
                             f"{logits.shape}, got {target.shape}")
        y = np.moveaxis(target.astype(np.float64), axis, -1)
        checked = y if used is None else y[used]
        if not np.all(np.isfinite(checked) & (checked >= 0)):
            raise ValueError("target: probability targets must be finite and >= 0")
        if used is not None:
            y = np.where(used[..., None], y, 0.0)
        loss, grad, count = _cross_entropy_probabilities(log_probs, probs, y, w, eps,
                                                         return_grad, used, sw)
        hess = None

    if grad is not None:
        grad = np.moveaxis(grad, -1, axis)
    if hess is not None:
        hess = np.moveaxis(hess, -1, axis)
    return _reduce(loss, grad, reduction, count, dtype, grad_out, hess)


def _cross_entropy_where(where, z, logits_shape, axis):
    """Apply cross_entropy's `where` to z (classes last): returns (z, used).

    A per-logit mask (where.ndim == logits.ndim) turns the masked logits into -inf, and `used` is
    False for the rows without a True entry; a per-sample mask is `used` itself.
    used is None when there is no mask.
    """
    if where is None:
        return z, None
    mask = np.asarray(where)
    if mask.dtype != np.bool_:
        raise TypeError(f"where must be a bool array, got dtype {mask.dtype}")
    if mask.ndim == len(logits_shape):
        logit_mask = np.moveaxis(_where_mask(mask, logits_shape), axis, -1)
        return np.where(logit_mask, z, -np.inf), np.any(logit_mask, axis=-1)
    return z, np.array(_where_mask(mask, z.shape[:-1]))


def _cross_entropy_class_indices(log_probs, probs, rest, top, target, w, eps, ignore_index,
                                 want_grad, want_hess=False, used=None, sw=None):
    """Per-sample loss, gradient and Hessian diagonal (classes last, or None), and the mean's
    denominator Σ sw·w_y. Samples with `used` False are left out unchecked, like ignored ones."""
    n_classes = log_probs.shape[-1]
    if target.shape != log_probs.shape[:-1]:
        raise ValueError(f"target: class indices must have the logits' shape without the class "
                         f"axis {log_probs.shape[:-1]}, got {target.shape}")
    ignored = target == ignore_index
    if used is not None:
        ignored = ignored | ~used
    ignored = ignored[..., None]
    out_of_range = ~ignored[..., 0] & ((target < 0) | (target >= n_classes))
    if np.any(out_of_range):
        position = tuple(int(i) for i in np.argwhere(out_of_range)[0])
        raise ValueError(f"target: class index {target[position]} at position {position} "
                         f"is out of range [0, {n_classes})")
    y = np.where(ignored, 0, target[..., None]).astype(np.intp)  # any valid class; masked below
    w_y = w[y]
    nll_factor = (1.0 - eps) * w_y
    smoothing_factor = eps / n_classes
    sample_factor = 1.0 if sw is None else sw[..., None]

    nll = -np.take_along_axis(log_probs, y, axis=-1)                        # lse - z_y
    smoothing = np.sum(_times(w, -log_probs), axis=-1, keepdims=True)       # Σ_c w_c·(lse - z_c)
    loss = _times(nll_factor, nll) + _times(smoothing_factor, smoothing)
    loss = np.where(ignored, 0.0, _times(sample_factor, loss))[..., 0]
    count = np.sum(np.where(ignored, 0.0, _times(sample_factor, w_y)))

    grad = None
    if want_grad:
        # p_c - [c = y]. At c = y = top, p_y = 1/(1 + rest) and p_y - 1 = -rest/(1 + rest):
        # subtracting 1 from p_y ≈ 1 would lose exactly the digits that matter.
        p_y = np.take_along_axis(probs, y, axis=-1)
        probs_minus_onehot = probs.copy()
        np.put_along_axis(probs_minus_onehot, y,
                          np.where(y == top, -rest / (1.0 + rest), p_y - 1.0), axis=-1)
        grad = (_times(nll_factor, probs_minus_onehot)
                + _times(smoothing_factor, _times(w.sum(), probs) - w))
        grad = np.where(ignored, 0.0, _times(sample_factor, grad))
    hess = None
    if want_hess:
        # 1 - p_c is the mass of the other classes; for the top class that is rest/(1 + rest),
        # which 1 - p_top would round away when the top class dominates.
        is_top = np.arange(n_classes) == top
        one_minus_probs = np.where(is_top, rest / (1.0 + rest), 1.0 - probs)
        hess = _times(nll_factor + smoothing_factor * w.sum(), probs * one_minus_probs)
        hess = np.where(ignored, 0.0, _times(sample_factor, hess))
    return loss, grad, hess, count


def _cross_entropy_probabilities(log_probs, probs, y, w, eps, want_grad, used=None, sw=None):
    """Per-sample loss, gradient (classes last, or None) and the mean's denominator: Σ sw over
    the used samples (their number without sample weights)."""
    n_classes = log_probs.shape[-1]
    smoothed = (1.0 - eps) * y + eps / n_classes
    coef = w * smoothed                                                     # w_c·y'_c
    loss = np.sum(_times(coef, -log_probs), axis=-1)
    grad = None
    if want_grad:
        grad = _times(np.sum(coef, axis=-1, keepdims=True), probs) - coef
    if sw is not None:
        loss = _times(sw, loss)
        grad = None if grad is None else _times(sw[..., None], grad)
    if used is not None:
        loss = np.where(used, loss, 0.0)
        grad = None if grad is None else np.where(used[..., None], grad, 0.0)
    if sw is not None:
        count = np.sum(sw)          # 0 where not used
    elif used is not None:
        count = int(np.count_nonzero(used))
    else:
        count = loss.size
    return loss, grad, count


@_quiet
def log_softmax(x, *, axis=-1, out=None, n_threads=None):
    """log_softmax(x)_c = x_c - logsumexp(x) = (x_c - max x) - log1p(rest), along `axis`.

    `axis` is an int, a tuple of ints or None (all axes): the normalisation runs over the
    joint set of those axes, as scipy.special.log_softmax. A 0-d input gives 0.0.
    -inf entries give -inf; a set of all -inf gives NaN (no distribution).
    """
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    logits, ungroup = _group_axes(x.astype(np.float64), _normalize_axes(axis, x.ndim))
    _, shifted, _, rest, _ = _softmax_parts(logits)
    return _deliver(ungroup(shifted - np.log1p(rest)), dtype, out, "out")


@_quiet
def softmax(x, *, axis=-1, out=None, n_threads=None):
    """softmax(x)_c = exp(x_c - max x) / Σ_k exp(x_k - max x), along `axis`.

    `axis` is an int, a tuple of ints or None (all axes): the normalisation runs over the
    joint set of those axes, as scipy.special.softmax. A 0-d input gives 1.0.
    -inf entries give 0; a set of all -inf gives NaN (no distribution).
    """
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    logits, ungroup = _group_axes(x.astype(np.float64), _normalize_axes(axis, x.ndim))
    _, _, exp_shifted, rest, _ = _softmax_parts(logits)
    return _deliver(ungroup(exp_shifted / (1.0 + rest)), dtype, out, "out")


@_quiet
def logsumexp(x, *, axis=-1, b=None, keepdims=False, return_sign=False, n_threads=None):
    """logsumexp(x) = log |Σ b·exp(x)| over `axis`, with scipy.special.logsumexp's semantics.

    `axis`: an int, a tuple of ints, or None (all axes); a 0-d input is one element (axis -1,
    0, None or ()). Without b: max x + log1p(rest), the top term being exactly 1.
    With b (broadcast to x's shape; terms with b == 0 are left out, even where x is +inf or
    NaN): m = max x over the other terms, top = one term at m,
        r = Σ_{k != top} b_k·exp(x_k - m) / b_top,
        result = m + log|b_top| + log|1 + r|   (log1p(r) for r > -1),
        sign = sign(b_top)·sign(1 + r)
    (log|Σ b·exp(x - m)| + m where r overflows).
    return_sign=True returns (result, sign), sign in {-1, 0, +1}: a zero sum (all terms -inf,
    or cancelling, or none) gives (-inf, 0). Without it a negative sum gives NaN.
    +inf terms: +inf with the sign of their b (NaN if their b have both signs); NaN
    propagates (NaN sign). keepdims keeps the reduced axes with length 1.
    The result (and sign) have the compute dtype (float32 for float32 x, float64 for float64);
    a 0-d result is a NumPy scalar.
    """
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    axes = _normalize_axes(axis, x.ndim)
    values, _ = _group_axes(x.astype(np.float64), axes)
    if b is None:
        row_max, _, _, rest, _ = _softmax_parts(values)
        # An infinite row_max is the answer itself; shifting by it would give inf - inf.
        result = np.where(np.isinf(row_max), row_max, row_max + np.log1p(rest))[..., 0]
        sign = np.where(np.isnan(result), np.nan, np.where(result == -np.inf, 0.0, 1.0))
    else:
        b = np.asarray(b)
        _compute_dtype(b, "b")
        try:
            scale = np.broadcast_to(b.astype(np.float64), x.shape)
        except ValueError:
            raise ValueError(f"b of shape {b.shape} does not broadcast to x's shape "
                             f"{x.shape}") from None
        result, sign = _signed_logsumexp(values, _group_axes(scale, axes)[0])
    if not return_sign:
        result = np.where(sign < 0, np.nan, result)
    if keepdims:
        result, sign = np.expand_dims(result, axes), np.expand_dims(sign, axes)
    result = result.astype(dtype)[()]
    return (result, sign.astype(dtype)[()]) if return_sign else result


def _signed_logsumexp(x, b):
    """(log|Σ b·exp(x)|, sign of the sum) along the last axis, terms with b == 0 left out."""
    active = b != 0
    x = np.where(active, x, -np.inf)
    b = np.where(active, b, 0.0)
    has_nan = np.any(np.isnan(x) | np.isnan(b), axis=-1)
    x = np.where(np.isnan(x), -np.inf, x)
    m = np.max(x, axis=-1, keepdims=True, initial=-np.inf)
    finite_m = np.isfinite(m)

    # Finite maximum: the top term is b_top exactly; the others are scaled by it.
    safe_m = np.where(finite_m, m, 0.0)
    top = np.argmax(x, axis=-1)[..., None] if x.shape[-1] else np.zeros(m.shape, np.intp)
    b_top = np.take_along_axis(b, top, axis=-1) if x.shape[-1] else np.zeros(m.shape)
    terms = b * np.exp(x - safe_m)
    terms = np.where(np.arange(x.shape[-1]) == top, 0.0, terms)
    rest = np.sum(terms, axis=-1, keepdims=True)
    r = rest / b_top
    log_one_plus_r = np.where(r > -1, np.log1p(r), np.log(-1.0 - r))
    result = safe_m + np.log(np.abs(b_top)) + log_one_plus_r
    sign = np.sign(b_top) * np.sign(1.0 + r)
    total = b_top + rest                                  # where r overflows (tiny b_top)
    overflow = ~np.isfinite(r)
    result = np.where(overflow, safe_m + np.log(np.abs(total)), result)
    sign = np.where(overflow, np.sign(total), sign)
    result = np.where(sign == 0, -np.inf, result)

    # +inf maximum: the sign of the b at the +inf terms, NaN if they disagree.
    at_inf = x == np.inf
    positive = np.any(at_inf & (b > 0), axis=-1, keepdims=True)
    negative = np.any(at_inf & (b < 0), axis=-1, keepdims=True)
    inf_sign = np.where(positive & negative, np.nan, np.where(positive, 1.0, -1.0))
    result = np.where(m == np.inf, np.where(np.isnan(inf_sign), np.nan, np.inf), result)
    sign = np.where(m == np.inf, inf_sign, sign)
    # -inf maximum (no term left, or all -inf): an empty sum.
    result = np.where(m == -np.inf, -np.inf, result)
    sign = np.where(m == -np.inf, 0.0, sign)

    result, sign = result[..., 0], sign[..., 0]
    return np.where(has_nan, np.nan, result), np.where(has_nan, np.nan, sign)


@_quiet
def sigmoid(x, *, out=None, n_threads=None):
    """σ(x) = 1 / (1 + exp(-x)), through exp(-|x|) so that nothing overflows."""
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    return _deliver(_sigmoid(x.astype(np.float64)), dtype, out, "out")


@_quiet
def log_sigmoid(x, *, out=None, n_threads=None):
    """log σ(x) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)); accurate for x >> 0 and x << 0."""
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    return _deliver(-_softplus(-x.astype(np.float64)), dtype, out, "out")


# --------------------------------------------------------------------------
# Information measures (distributions along `axis`; "mean" is the mean over rows)
# --------------------------------------------------------------------------

def _distributions(p, name, axis):
    """p as float64 with the distribution axis last, after checking p in [0, 1] (NaN is an error)."""
    p = np.asarray(p)
    _compute_dtype(p, name)
    x = np.moveaxis(p.astype(np.float64), axis, -1)
    if not np.all((x >= 0) & (x <= 1)):
        raise ValueError(f"{name} must lie in [0, 1] (and not be NaN)")
    return x


def _same_shape(first, second, first_name, second_name):
    if np.shape(second) != np.shape(first):
        raise ValueError(f"{second_name} must have the shape of {first_name} {np.shape(first)}, "
                         f"got {np.shape(second)}")


def _log_base(base):
    """log(base), the divisor that turns nats into units of `base`; None means nats."""
    if base is None:
        return 1.0
    base = float(base)
    if not (0.0 < base < np.inf) or base == 1.0:
        raise ValueError(f"base must be positive, finite and not 1, got {base!r}")
    return np.log(base)


def _log_ratio(numerator, denominator):
    """log(numerator / denominator) for non-negative arguments, accurate when they are close.

    Where numerator is within half of denominator, their difference is exact (Sterbenz) and
    log1p(difference / denominator) keeps full relative accuracy near 0. Elsewhere log - log,
    which cannot overflow or underflow the way the quotient can (1 / 1e-310).
    """
    close = np.abs(numerator - denominator) <= 0.5 * denominator
    return np.where(close, np.log1p((numerator - denominator) / denominator),
                    np.log(numerator) - np.log(denominator))


def _relative_entropy_terms(p, q):
    """p·log(p / q) per term: 0 where p = 0 (even where q = 0), +inf where q = 0 < p."""
    return _times(p, _log_ratio(p, q))


@_quiet
def entropy(p, *, axis=-1, base=None, reduction="none", n_threads=None):
    """Shannon entropy H(p) = -Σ p·log p of each distribution along `axis`, with 0·log 0 = 0.

    Rows are taken as given, not renormalised (scipy.stats.entropy renormalises). p must lie in
    [0, 1]. `base` (None: nats) divides by log(base). "none" (the default here, as scipy) returns
    p's shape without `axis`; "mean" is the mean over rows.
    """
    _check_reduction(reduction)
    dtype = _compute_dtype(np.asarray(p), "p")
    x = _distributions(p, "p", axis)
    divisor = _log_base(base)
    rows = -np.sum(_times(x, np.log(x)), axis=-1) / divisor
    return _reduce(rows, None, reduction, rows.size, dtype, None)


@_quiet
def kl_divergence(p, q, *, axis=-1, base=None, reduction="mean", n_threads=None):
    """Kullback-Leibler divergence KL(p || q) = Σ p·(log p - log q) along `axis`.

    A term with p = 0 is 0 (even where q = 0); q = 0 < p gives +inf. Each term is p·log(p/q)
    evaluated by _log_ratio, exact to rounding also where p ≈ q. Rows are not renormalised
    (for normalised rows, the terms are scipy.special.rel_entr's). p and q must lie in [0, 1] and
    have the same shape; the compute dtype is p's. "mean" is the mean over rows.
    """
    _check_reduction(reduction)
    dtype, x, y = _distribution_pair(p, q, axis)
    divisor = _log_base(base)
    rows = np.sum(_relative_entropy_terms(x, y), axis=-1) / divisor
    return _reduce(rows, None, reduction, rows.size, dtype, None)


@_quiet
def kl_divergence_with_logits(p, logits, *, axis=-1, reduction="mean", return_grad=False,
                              grad_out=None, n_threads=None, sample_weight=None,
                              log_target=False):
    """KL(p || softmax(logits)) = Σ p·(log p - log_softmax(logits)) along `axis`, for distillation.

    grad (with respect to logits) = s·sw·((Σ p)·softmax(logits) - p), s = 1/Σ sw for "mean"
    (1/n_rows without sample weights: torch's kl_div(log_softmax(logits), p,
    reduction="batchmean") for 2-D input), else 1.
    sample_weight sw (one finite weight >= 0 per row, the per-row loss shape) multiplies each
    row's loss and gradient; a row with sw = 0 gives exactly 0, even with NaN logits.
    log_target=True: p holds log-probabilities (<= 0, -inf allowed, not NaN); the terms are
    exp(p)·(p - log_softmax(logits)), the same as passing exp(p).
    A term with p = 0 is 0. -inf logits are masks: a masked class with p = 0 contributes 0 to
    the loss and the gradient; with p > 0 the loss is +inf. A row of all -inf logits has no
    distribution (NaN). p must lie in [0, 1], with the logits' shape; the logits set the dtype.
    """
    _check_reduction(reduction)
    logits = np.asarray(logits)
    dtype = _compute_dtype(logits, "logits")
    if log_target:
        log_p = np.asarray(p)
        _compute_dtype(log_p, "p")
        log_x = np.moveaxis(log_p.astype(np.float64), axis, -1)
        if not np.all(log_x <= 0):
            raise ValueError("p: log-probabilities (log_target=True) must be <= 0 (and not NaN)")
        x = np.exp(log_x)
    else:
        x = _distributions(p, "p", axis)
        log_x = np.log(x)
    _same_shape(logits, p, "logits", "p")
    z = np.moveaxis(logits.astype(np.float64), axis, -1)
    sw = _sample_weights(sample_weight, z.shape[:-1])

    _, shifted, exp_shifted, rest, _ = _softmax_parts(z)
    log_q = shifted - np.log1p(rest)
    rows = np.sum(_times(x, log_x - log_q), axis=-1)
    grad = None
    if return_grad:
        probs = exp_shifted / (1.0 + rest)
        grad = _times(np.sum(x, axis=-1, keepdims=True), probs) - x
    count = rows.size
    if sw is not None:
        rows = _times(sw, rows)
        grad = None if grad is None else _times(sw[..., None], grad)
        count = np.sum(sw)
    if grad is not None:
        grad = np.moveaxis(grad, -1, axis)
    return _reduce(rows, grad, reduction, count, dtype, grad_out)


@_quiet
def js_divergence(p, q, *, axis=-1, base=None, reduction="mean", n_threads=None):
    """Jensen-Shannon divergence ½·KL(p || m) + ½·KL(q || m), m = (p + q)/2, along `axis`.

    The terms use p / m = 2p / (p + q), which (unlike m) cannot underflow to 0 for a subnormal p;
    a term with p = 0 is 0, and m > 0 wherever p > 0 or q > 0, so JS is always finite. For
    normalised rows, 0 <= JS <= log 2, and JS = scipy.spatial.distance.jensenshannon(p, q)**2.
    p and q must lie in [0, 1] and have the same shape; the compute dtype is p's.
    """
    _check_reduction(reduction)
    dtype, x, y = _distribution_pair(p, q, axis)
    divisor = _log_base(base)
    both = x + y
    terms = _times(x, _log_ratio(2.0 * x, both)) + _times(y, _log_ratio(2.0 * y, both))
    rows = 0.5 * np.sum(terms, axis=-1) / divisor
    return _reduce(rows, None, reduction, rows.size, dtype, None)


@_quiet
def categorical_cross_entropy(p, q, *, axis=-1, reduction="mean", n_threads=None):
    """Cross-entropy H(p, q) = -Σ p·max(log q, -100) of probabilities, along `axis`.

    The clamp at -100 is torch's (binary_cross_entropy): a term with q = 0 < p gives 100·p, not
    inf. A term with p = 0 is 0. Wherever no term is clamped, it equals entropy(p) +
    kl_divergence(p, q). p and q must lie in [0, 1] and have the same shape; the compute dtype is p's.
    """
    _check_reduction(reduction)
    dtype, x, y = _distribution_pair(p, q, axis)
    rows = -np.sum(_times(x, np.maximum(np.log(y), -100.0)), axis=-1)
    return _reduce(rows, None, reduction, rows.size, dtype, None)


# --------------------------------------------------------------------------
# torch's nll_loss and kl_div (inputs already log-probabilities)
# --------------------------------------------------------------------------

@_quiet
def nll_loss(log_probs, target, *, weight=None, ignore_index=-100, reduction="mean", axis=-1,
             return_grad=False, grad_out=None, n_threads=None):
    """Negative log-likelihood of class indices y on log-probabilities x along `axis`: torch's nll_loss.

    loss = -w_y·x_y            (0 for y == ignore_index, whatever x holds; also 0 where w_y = 0)
    grad_c = -s·w_y·[c = y]    (s = 1/Σ w_y for "mean", else 1)
    "mean" divides by Σ w_y over the non-ignored samples (0.0 over nothing). x is taken as
    given (not checked to be normalised or <= 0): -inf at the target gives +inf. torch's class
    axis is 1: pass axis=1 for its (N, C, d1, ...) layout. Labels outside [0, C) other than
    ignore_index raise ValueError; target must be integer (else TypeError).
    """
    _check_reduction(reduction)
    log_probs = np.asarray(log_probs)
    target = np.asarray(target)
    dtype = _compute_dtype(log_probs, "log_probs")
    if not np.issubdtype(target.dtype, np.integer):
        raise TypeError(f"target: nll_loss needs integer class indices, got dtype {target.dtype}")
    x, w = _classes_last(log_probs, "log_probs", axis, weight)
    n_classes = x.shape[-1]
    if target.shape != x.shape[:-1]:
        raise ValueError(f"target: class indices must have the log_probs' shape without the "
                         f"class axis {x.shape[:-1]}, got {target.shape}")
    ignored = target == ignore_index
    out_of_range = ~ignored & ((target < 0) | (target >= n_classes))
    if np.any(out_of_range):
        position = tuple(int(i) for i in np.argwhere(out_of_range)[0])
        raise ValueError(f"target: class index {target[position]} at position {position} "
                         f"is out of range [0, {n_classes})")
    y = np.where(ignored, 0, target)[..., None].astype(np.intp)
    w_y = np.where(ignored, 0.0, w[y[..., 0]])
    picked = np.take_along_axis(x, y, axis=-1)[..., 0]
    loss = _times(w_y, -picked)
    grad = None
    if return_grad:
        grad = np.zeros_like(x)
        np.put_along_axis(grad, y, -w_y[..., None], axis=-1)
        grad = np.moveaxis(grad, -1, axis)
    return _reduce(loss, grad, reduction, np.sum(w_y), dtype, grad_out)


_KL_DIV_REDUCTIONS = ("mean", "sum", "none", "batchmean")


@_quiet
def kl_div(input, target, *, reduction="mean", log_target=False, return_grad=False,
           grad_out=None, n_threads=None):
    """torch's elementwise kl_div: `input` x holds log-probabilities, `target` t probabilities.

    pointwise = t·(log t - x)             (log_target=True: exp(t)·(t - x))
    grad      = -s·t                      (log_target=True: -s·exp(t))
    with s the reduction's scale. A term with t = 0 (log_target: exp(t) = 0, e.g. t = -inf) is
    exactly 0 with a zero gradient, even where x is -inf or NaN (torch gives NaN for NaN x).
    reduction: "none" (the pointwise terms, input's shape), "sum", "mean" (sum / input.size)
    or "batchmean" (sum / input.shape[0], 1 for a 0-d input); a mean over nothing is 0.0.
    target must have input's shape, be finite and >= 0 (log_target: not NaN and < +inf).
    """
    if not isinstance(reduction, str) or reduction not in _KL_DIV_REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'batchmean', 'sum' or 'none', "
                         f"got {reduction!r}")
    x_in = np.asarray(input)
    dtype = _compute_dtype(x_in, "input")
    t_in = np.asarray(target)
    _compute_dtype(t_in, "target")
    if t_in.shape != x_in.shape:
        raise ValueError(f"target must have the input's shape {x_in.shape}, got {t_in.shape}")
    x = x_in.astype(np.float64)
    t = t_in.astype(np.float64)
    if log_target:
        if not np.all(t < np.inf):
            raise ValueError("target: log-probabilities (log_target=True) must be < +inf "
                             "(and not NaN)")
        factor, log_t = np.exp(t), t
    else:
        if not np.all(np.isfinite(t) & (t >= 0)):
            raise ValueError("target must be finite and >= 0 (and not NaN)")
        factor, log_t = t, np.log(t)
    pointwise = _times(factor, log_t - x)
    grad = np.where(factor == 0, 0.0, -factor) if return_grad else None
    if reduction == "batchmean":
        reduction, count = "mean", (x.shape[0] if x.ndim else 1)
    else:
        count = x.size
    return _reduce(pointwise, grad, reduction, count, dtype, grad_out)


def __getattr__(name):
    """``fastce.reference.linear`` (the linear models' reference), imported on
    first access like fastce's other submodules."""
    if name == "linear":
        import importlib
        return importlib.import_module("fastce.reference.linear")
    raise AttributeError(f"module 'fastce.reference' has no attribute {name!r}")
