"""The binary family: elementwise losses on logits, probabilities or scores.

The formulas are in ``_math.pxd`` (``binary_point``); this module checks the
arguments once and hands flat arrays to the single loop in ``_binary.pyx``.
"""
import numpy as np

from fastce._kernels.dispatch import kernels

_binary = kernels("_binary")
from fastce._api.validation import (
    as_data, as_values, check_real, check_reduction, check_same_shape, check_small_weight,
    describe_position, finish_reduction, mask_array, output_array, resolve_threads,
)

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "logistic_loss",
    "sigmoid_focal_loss",
    "sigmoid",
    "log_sigmoid",
]


def _weight_layout(weight, shape, dtype, name="weight"):
    """A weight (or pos_weight) as the kernel reads it: ``(array, per_column)``.

    A weight that varies only along the last axis (a scalar, (L,), (1, L), ...)
    stays one value per column, never expanded. Any other broadcast, e.g. a
    per-row (N, 1) weight, is materialised once at the logits' size; a weight
    of the logits' full shape is used as it is.
    """
    array = as_values(weight, name, dtype, contiguous=False)
    try:
        full = np.broadcast_to(array, shape)
    except ValueError:
        raise ValueError(
            f"{name} of shape {array.shape} does not broadcast to the input's shape {shape}"
        ) from None
    n_cols = shape[-1] if shape else 1
    if all(length == 1 for length in array.shape[:-1]) and array.size <= n_cols:
        per_column = np.ascontiguousarray(np.broadcast_to(array.reshape(-1), (n_cols,)))
        return per_column, True
    return np.ascontiguousarray(full), False


def _raise_bad_value(kind, bad, bad_x, x, target, weight, per_column, data_name,
                     pos_weight=None, pos_weight_per_column=True):
    """Turn the kernel's first offending position into a clear ValueError.

    ``target`` and ``weight`` are intact (no output may share their memory),
    so they are read here; ``x`` may have been overwritten in place by the
    gradient, so its value there comes from the kernel (``bad_x``).
    """
    position = describe_position(bad, x.shape)
    value = target.flat[bad].item()
    if kind == _binary.LOGISTIC and value not in (-1.0, 1.0):
        raise ValueError(f"target must be -1 or +1; got {value!r} at position {position}")
    if kind != _binary.LOGISTIC and not 0.0 <= value <= 1.0:
        raise ValueError(f"target must be in [0, 1] (not NaN); got {value!r} at position {position}")
    if weight is not None:
        weight_value = weight.flat[bad % weight.size if per_column else bad].item()
        if not (weight_value >= 0.0 and weight_value < np.inf):
            raise ValueError(f"weight must be finite and non-negative; got {weight_value!r} "
                             f"at position {position}")
    if pos_weight is not None and not pos_weight_per_column:
        pos_value = pos_weight.flat[bad].item()
        if not (pos_value >= 0.0 and pos_value < np.inf):
            raise ValueError(f"pos_weight must be finite and non-negative; got {pos_value!r} "
                             f"at position {position}")
    raise ValueError(f"{data_name} must be in [0, 1] (not NaN); got {bad_x!r} at position "
                     f"{position}")


def _binary_loss(kind, data_name, data, target, weight, pos_weight, reduction,
                 return_grad, grad_out, n_threads, return_hessian=False, alpha=0.0, gamma=0.0,
                 where=None):
    reduction = check_reduction(reduction)
    return_grad = return_grad or return_hessian
    x = as_data(data, data_name)
    y = as_values(target, "target", x.dtype)
    check_same_shape(y, x.shape, "target", data_name)
    n_cols = x.shape[-1] if x.ndim else 1
    weight_array, per_column = None, False
    if weight is not None:
        weight_array, per_column = _weight_layout(weight, x.shape, x.dtype)
    pos_weight_array, pos_weight_per_column = None, True
    if pos_weight is not None:
        pos_weight_array, pos_weight_per_column = _weight_layout(pos_weight, x.shape, x.dtype,
                                                                 "pos_weight")
        if pos_weight_per_column:  # L values: checked here (a full one, by the kernel)
            check_small_weight(pos_weight_array, "pos_weight", x.dtype)
    keep = None if where is None else mask_array(where, x.shape, "the input's shape")
    threads = resolve_threads(n_threads)
    loss_out = np.empty(x.shape, dtype=x.dtype) if reduction == "none" else None
    grad = output_array(grad_out, x.shape, x.dtype, "grad_out",
                        {data_name: data, "target": target, "weight": weight,
                         "pos_weight": pos_weight, "where": where},
                        in_place=data_name) if return_grad else None
    # optax's where: the mean is over the kept elements (a count of the mask's bytes).
    count = x.size if keep is None else int(np.count_nonzero(keep))
    grad_scale = 1.0 / count if reduction == "mean" and count else 1.0

    hess = np.empty(x.shape, dtype=x.dtype) if return_hessian else None

    total, bad, bad_x = _binary.binary_kernel(kind, x, y, weight_array, per_column,
                                              pos_weight_array, loss_out, grad, hess,
                                              grad_scale, max(n_cols, 1), threads, alpha, gamma,
                                              pos_weight_per_column, keep)
    if bad >= 0:
        _raise_bad_value(kind, bad, bad_x, x, y, weight_array, per_column, data_name,
                         pos_weight_array, pos_weight_per_column)
    loss = loss_out if reduction == "none" else finish_reduction(total, reduction, count)
    if return_hessian:
        return loss, grad, hess
    return (loss, grad) if return_grad else loss


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean", return_grad=False, grad_out=None,
                                     n_threads=None, return_hessian=False, where=None):
    """Binary cross-entropy on logits, stable for every finite or infinite z.

    l = (1-y) softplus(z) + pw y softplus(-z), dl/dz = (1-y) sigmoid(z) - pw y sigmoid(-z).

    Parameters
    ----------
    logits : array_like, any shape. float32/float64 computed as given, float16 in
        float32, integers and bools in float64.
    target : array_like, same shape, values in [0, 1] (soft labels allowed); float,
        int or bool. NaN or out-of-range values raise ValueError.
    weight : array_like broadcastable to ``logits``, finite and >= 0. A zero weight
        removes its element exactly (0 loss and gradient, even where z is inf/NaN;
        torch would give NaN there). A weight varying only along the last axis is
        read per column; other broadcasts (e.g. per row) are expanded once to the
        logits' size.
    pos_weight : array_like broadcastable to ``logits`` as torch broadcasts it:
        (L,) or (1, L) (one per label of an (N, L) multi-label problem, read per
        column) or a full (N, L) array; finite and >= 0.
    reduction : "mean" (divides by ``logits.size``, as torch, or by the number of
        True entries of ``where``), "sum" or "none" (one loss per element).
    return_grad : also return the gradient of the returned loss (of the sum, for
        "none"), computed in the same pass.
    grad_out : optional C-contiguous array of the logits' shape and compute dtype to
        receive the gradient; may be ``logits`` itself (in place).
    n_threads : None (OpenMP's default) or an int >= 1.
    return_hessian : return ``(loss, grad, hess)`` from the same pass, whatever
        ``return_grad`` says; ``hess`` is the diagonal of the Hessian of the returned
        loss, weight * sigmoid(z) sigmoid(-z) ((1-y) + pw y) * the reduction's scale.
    where : optional bool mask broadcastable to ``logits`` (optax's ``where``): a
        False element contributes exactly 0 to the loss, gradient and Hessian
        whatever its inputs hold (they are not checked), and leaves the mean's
        denominator. All False gives a "mean" of 0.0.

    Returns the loss (a float64 scalar, or an array for "none"), or (loss, grad).
    """
    return _binary_loss(_binary.BCE_LOGITS, "logits", logits, target, weight, pos_weight,
                        reduction, return_grad, grad_out, n_threads, return_hessian,
                        where=where)


def binary_cross_entropy(probs, target, *, weight=None, reduction="mean", return_grad=False,
                         grad_out=None, n_threads=None, where=None):
    """Binary cross-entropy from probabilities, as torch's ``binary_cross_entropy``.

    l = -(y max(log p, -100) + (1-y) max(log(1-p), -100)); each log is clamped so
    that p in {0, 1} stays finite, and a term whose target factor is 0 contributes
    exactly 0. Gradient (p - y) / max(p (1-p), 1e-12).

    ``probs`` must lie in [0, 1] (NaN is an error); ``target`` in [0, 1]. The other
    keywords (``where`` included) are those of :func:`binary_cross_entropy_with_logits`.
    """
    return _binary_loss(_binary.BCE_PROBS, "probs", probs, target, weight, None,
                        reduction, return_grad, grad_out, n_threads, where=where)


def logistic_loss(scores, target, *, weight=None, reduction="mean", return_grad=False,
                  grad_out=None, n_threads=None, return_hessian=False, where=None):
    """Logistic loss for labels in {-1, +1}: l = log(1 + exp(-y s)) = softplus(-y s).

    Gradient -y sigmoid(-y s); with ``return_hessian`` also the diagonal Hessian
    weight * sigmoid(s) sigmoid(-s) * the reduction's scale. ``target`` must hold
    exactly -1 or +1 (int or float). The other keywords are those of
    :func:`binary_cross_entropy_with_logits`.
    """
    return _binary_loss(_binary.LOGISTIC, "scores", scores, target, weight, None,
                        reduction, return_grad, grad_out, n_threads, return_hessian,
                        where=where)


def sigmoid_focal_loss(logits, target, *, alpha=0.25, gamma=2.0, reduction="mean",
                       return_grad=False, grad_out=None, n_threads=None, where=None):
    """Focal loss of torchvision.ops.sigmoid_focal_loss, computed in log space.

    l = alpha_t (1 - p_t)^gamma BCE(z, y), with p = sigmoid(z), p_t = p y + (1-p)(1-y)
    and alpha_t = alpha y + (1-alpha)(1-y); ``alpha < 0`` turns the alpha factor off.
    (1 - p_t)^gamma is formed as exp(gamma log(1 - p_t)) from log-sigmoids, so the
    loss is finite and NaN-free for every finite logit and every gamma >= 0,
    including gamma < 1 (and 0^0 = 1 for gamma = 0). With gamma = 0 and alpha < 0
    it is binary_cross_entropy_with_logits. The gradient is in closed form:
    alpha_t m^gamma (gamma (dm/dz / m) BCE + sigmoid(z) - y), m = 1 - p_t.

    ``target`` in [0, 1] (soft labels allowed). Unlike torchvision, whose default is
    "none", ``reduction`` defaults to "mean" (over ``logits.size``) like every
    fastce loss. Computed in double precision per element for both dtypes.
    ``where`` is that of :func:`binary_cross_entropy_with_logits`.
    """
    alpha = check_real(alpha, "alpha", "a float")
    gamma = check_real(gamma, "gamma", "a float")
    if not gamma >= 0.0 or gamma == np.inf:
        raise ValueError(f"gamma must be finite and >= 0, got {gamma!r}")
    if not alpha <= 1.0:
        raise ValueError(f"alpha must be <= 1 (or < 0 to turn it off), got {alpha!r}")
    return _binary_loss(_binary.FOCAL, "logits", logits, target, None, None, reduction,
                        return_grad, grad_out, n_threads, False, alpha, gamma, where)


def _elementwise(kind, x, out, n_threads):
    array = as_data(x, "x")
    threads = resolve_threads(n_threads)
    result = output_array(out, array.shape, array.dtype, "out", {"x": x}, in_place="x")
    _binary.binary_kernel(kind, array, None, None, False, None, result, None, None, 1.0,
                          max(array.size, 1), threads)
    return result


def sigmoid(x, *, out=None, n_threads=None):
    """The logistic function 1 / (1 + exp(-x)), without overflow for any x.

    ``out`` may be ``x`` itself. Returns an array of the compute dtype.
    """
    return _elementwise(_binary.SIGMOID, x, out, n_threads)


def log_sigmoid(x, *, out=None, n_threads=None):
    """log(sigmoid(x)) = -softplus(-x), exact for large |x| (no log(0))."""
    return _elementwise(_binary.LOG_SIGMOID, x, out, n_threads)
