"""Information measures: entropy, KL and JS divergences, cross-entropy of
probabilities, and KL against logits (distillation) with a fused gradient.

Distributions lie along ``axis`` (default -1). As in the softmax family, a
class axis other than the last, or a non-C-contiguous input, is copied once
into (rows, classes) order. ``"mean"`` is the batch mean over distributions.
"""
import math

import numpy as np

from fastce._kernels import _information
from fastce._kernels.dispatch import kernels
from fastce._api.layout import rows_view
from fastce._api.validation import (
    as_data, as_values, check_real, check_reduction, check_same_shape, describe_position,
    finish_reduction, normalize_axis, output_array, raise_bad_sample_weight, resolve_threads,
    sample_weight_array,
)

_softmax = kernels("_softmax")

__all__ = ["entropy", "kl_divergence", "kl_divergence_with_logits", "js_divergence",
           "categorical_cross_entropy", "kl_div"]


def _log_base_scale(base):
    if base is None:
        return 1.0
    value = check_real(base, "base", "a positive number")
    if not (value > 0.0 and value != 1.0 and math.isfinite(value)):
        raise ValueError(f"base must be positive, finite and not 1, got {base!r}")
    return 1.0 / math.log(value)


def _raise_bad_probability(bad, arrays, names, moved_shape, axis):
    row, cls = divmod(bad, moved_shape[-1])
    position = describe_position(row, moved_shape[:-1])
    position = position[:axis] + (cls,) + position[axis:]
    for array, name in zip(arrays, names):
        value = array.flat[bad].item()
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must hold probabilities in [0, 1] (not NaN); got "
                             f"{value!r} at position {position}")


def _measure(kind, arrays, names, axis, base, reduction, n_threads):
    reduction = check_reduction(reduction)
    scale = _log_base_scale(base)
    first = as_data(arrays[0], names[0])
    if first.ndim == 0:
        raise ValueError(f"{names[0]} must have at least one dimension")
    converted = [first] + [as_values(a, n, first.dtype) for a, n in zip(arrays[1:], names[1:])]
    for array, name in zip(converted[1:], names[1:]):
        check_same_shape(array, first.shape, name, names[0])
    class_axis = normalize_axis(axis, first.ndim)
    threads = resolve_threads(n_threads)
    rows = [rows_view(array, class_axis) for array in converted]
    moved_shape = rows[0].shape
    n_classes = moved_shape[-1]
    values = np.zeros(moved_shape[:-1], dtype=first.dtype) if reduction == "none" else None
    total, bad = 0.0, -1
    if n_classes:
        total, bad = _information.information_kernel(
            kind, rows[0], rows[1] if len(rows) > 1 else None, n_classes, scale, values,
            threads)
    if bad >= 0:
        _raise_bad_probability(bad, rows, names, moved_shape, class_axis)
    if reduction == "none":
        return values[()] if values.ndim == 0 else values
    return finish_reduction(total, reduction, math.prod(moved_shape[:-1]))


def entropy(p, *, axis=-1, base=None, reduction="none", n_threads=None):
    """Shannon entropy -sum p log p of each distribution along ``axis``, 0 log 0 = 0.

    Rows are taken as given, not renormalised (``scipy.stats.entropy`` renormalises).
    ``p`` must hold probabilities in [0, 1]; NaN is an error. ``base`` divides by
    log(base). ``reduction`` defaults to "none": one value per distribution.
    """
    return _measure(_information.ENTROPY, [p], ["p"], axis, base, reduction, n_threads)


def kl_divergence(p, q, *, axis=-1, base=None, reduction="mean", n_threads=None):
    """KL(p || q) = sum p (log p - log q) along ``axis`` (``scipy.special.rel_entr``).

    A term with p = 0 is 0 (even where q = 0); q = 0 < p gives +inf. Both must hold
    probabilities in [0, 1]. "mean" is the mean over distributions (torch's
    "batchmean" for 2-D input).
    """
    return _measure(_information.KL, [p, q], ["p", "q"], axis, base, reduction, n_threads)


def js_divergence(p, q, *, axis=-1, base=None, reduction="mean", n_threads=None):
    """Jensen-Shannon divergence 0.5 KL(p || m) + 0.5 KL(q || m), m = (p + q) / 2.

    Finite for any probabilities; at most log 2 (1 in base 2) for normalised rows.
    ``scipy.spatial.distance.jensenshannon`` returns its square root.
    """
    return _measure(_information.JS, [p, q], ["p", "q"], axis, base, reduction, n_threads)


def categorical_cross_entropy(p, q, *, axis=-1, reduction="mean", n_threads=None):
    """H(p, q) = -sum p log q from probabilities, log q clamped at >= -100.

    A term with p = 0 is 0. Where both are finite it equals
    ``entropy(p) + kl_divergence(p, q)``.
    """
    return _measure(_information.CATEGORICAL_CE, [p, q], ["p", "q"], axis, None, reduction,
                    n_threads)


def kl_divergence_with_logits(p, logits, *, axis=-1, reduction="mean", return_grad=False,
                              grad_out=None, n_threads=None, sample_weight=None,
                              log_target=False):
    """KL(p || softmax(logits)) along ``axis``, as in distillation, with a fused gradient.

    Computed as sum p log p + sum p (max - z) + (sum p) log sum exp(z - max) in one
    pass over the logits (one exp per element); the gradient with respect to
    ``logits`` is s sw ((sum p) softmax(logits) - p), s = 1 / sum sw for "mean"
    (torch's ``kl_div(log_softmax(logits), p, reduction="batchmean")`` without
    sample weights, where sum sw is the number of rows), 1 otherwise.
    -inf logits are masks: a masked class with p = 0 adds 0, with p > 0 gives +inf.
    ``grad_out`` may be ``logits`` itself (class axis last). ``p`` in [0, 1].

    sample_weight : optional, one finite weight >= 0 per distribution (the shape
        without ``axis``); each row's KL and gradient are multiplied by it, and
        "mean" is sum sw KL / sum sw. A zero weight removes its row exactly.
    log_target : ``p`` holds log-probabilities (<= 0, -inf for p = 0), as torch's
        ``log_target=True``; the result is that of ``exp(p)``.
    """
    reduction = check_reduction(reduction)
    x = as_data(logits, "logits")
    if x.ndim == 0:
        raise ValueError("logits must have at least one dimension")
    target = as_values(p, "p", x.dtype)
    check_same_shape(target, x.shape, "p", "logits")
    class_axis = normalize_axis(axis, x.ndim)
    threads = resolve_threads(n_threads)
    if not isinstance(log_target, (bool, np.bool_)):
        raise TypeError(f"log_target must be a bool, got {log_target!r}")
    rows, target_rows = rows_view(x, class_axis), rows_view(target, class_axis)
    moved_shape = rows.shape
    n_classes = moved_shape[-1]
    n_rows = math.prod(moved_shape[:-1])
    row_weight = sample_weight_array(sample_weight, moved_shape[:-1])
    grad_rows = None
    if return_grad:
        if grad_out is not None:
            output_array(grad_out, x.shape, x.dtype, "grad_out",
                         {"logits": logits, "p": p, "sample_weight": sample_weight},
                         in_place="logits")
        if class_axis == x.ndim - 1:
            grad_rows = grad_out if grad_out is not None else np.empty(x.shape, dtype=x.dtype)
        else:
            grad_rows = np.empty(moved_shape, dtype=x.dtype)
    values = np.zeros(moved_shape[:-1], dtype=x.dtype) if reduction == "none" else None
    denominator = n_rows
    if row_weight is not None and return_grad and reduction == "mean":
        denominator, bad = _softmax.label_weight_total(None, None, n_classes, 0, False, threads,
                                                       sample_weight=row_weight, n_rows=n_rows)
        if bad >= 0:
            raise_bad_sample_weight(row_weight, bad, moved_shape[:-1])
    grad_scale = 1.0 / denominator if reduction == "mean" and denominator else 1.0
    total, weight_sum, bad = 0.0, 0.0, -1
    if n_classes:
        total, weight_sum, bad = _softmax.cross_entropy_probs(
            rows, target_rows, None, n_classes, 0.0, values, grad_rows, grad_scale, threads,
            True, bool(log_target), sample_weight=row_weight)
    elif grad_rows is not None:
        grad_rows.fill(0)
    if bad >= 0:
        _raise_bad_kl_target(bad, target_rows, row_weight, moved_shape, class_axis,
                             bool(log_target))
    if row_weight is not None:
        denominator = weight_sum
    loss = (values[()] if values.ndim == 0 else values) if reduction == "none" else \
        finish_reduction(total, reduction, denominator)
    if not return_grad:
        return loss
    if class_axis == x.ndim - 1:
        return loss, grad_rows
    grad = np.moveaxis(grad_rows, -1, class_axis)
    if grad_out is None:
        return loss, grad
    np.copyto(grad_out, grad)
    return loss, grad_out


def _raise_bad_kl_target(bad, target_rows, row_weight, moved_shape, axis, log_target):
    row, cls = divmod(bad, moved_shape[-1])
    value = target_rows.flat[bad].item()
    valid = value <= 0.0 if log_target else 0.0 <= value <= 1.0
    if valid:  # the row's targets are valid: its sample weight is not
        raise_bad_sample_weight(row_weight, row, moved_shape[:-1])
    position = describe_position(row, moved_shape[:-1])
    position = position[:axis] + (cls,) + position[axis:]
    what = "log-probabilities <= 0 (not NaN)" if log_target else \
        "probabilities in [0, 1] (not NaN)"
    raise ValueError(f"p must hold {what}; got {value!r} at position {position}")


_KL_DIV_REDUCTIONS = ("mean", "batchmean", "sum", "none")


def kl_div(input, target, *, reduction="mean", log_target=False, return_grad=False,
           grad_out=None, n_threads=None):
    """torch's elementwise ``kl_div`` on log-probability ``input``.

    Pointwise l = t (log t - x), or exp(t) (t - x) with ``log_target`` (``target``
    then holds log-probabilities). ``reduction``: "none" (the input's shape),
    "sum", "mean" (over every element, torch's default) or "batchmean" (the sum
    divided by ``input.shape[0]``, the KL divergence per sample; 1 for a 0-d
    input). The gradient with respect to ``input`` is -t times the reduction's
    scale (of the sum for "none"); ``grad_out`` may be ``input`` itself.

    A term with t = 0 is exactly 0, with a zero gradient, even where x is -inf or
    NaN (torch gives NaN for 0 * NaN there). ``target`` must be finite and >= 0 (any
    value < +inf, not NaN, with ``log_target``); shapes must match.
    """
    if not isinstance(reduction, str) or reduction not in _KL_DIV_REDUCTIONS:
        raise ValueError(f"reduction must be one of {_KL_DIV_REDUCTIONS}, got {reduction!r}")
    if not isinstance(log_target, (bool, np.bool_)):
        raise TypeError(f"log_target must be a bool, got {log_target!r}")
    x = as_data(input, "input")
    t = as_values(target, "target", x.dtype)
    check_same_shape(t, x.shape, "target", "input")
    threads = resolve_threads(n_threads)
    denominator = {"mean": x.size, "batchmean": x.shape[0] if x.ndim else 1}.get(reduction, 1)
    grad_scale = 1.0 / denominator if denominator else 1.0
    loss_out = np.empty(x.shape, dtype=x.dtype) if reduction == "none" else None
    grad = None
    if return_grad:
        grad = output_array(grad_out, x.shape, x.dtype, "grad_out",
                            {"input": input, "target": target}, in_place="input")
    total, bad = _information.kl_div_kernel(x, t, bool(log_target), loss_out, grad,
                                            grad_scale, threads)
    if bad >= 0:
        what = "log-probabilities below +inf (not NaN)" if log_target else \
            "finite non-negative probabilities"
        raise ValueError(f"target must hold {what}; got {t.flat[bad].item()!r} at position "
                         f"{describe_position(bad, x.shape)}")
    if reduction == "none":
        loss = loss_out
    elif reduction == "sum":
        loss = np.float64(total)
    else:
        loss = finish_reduction(total, "mean", denominator)
    return (loss, grad) if return_grad else loss
