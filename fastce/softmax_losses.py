"""The softmax family: cross-entropy, log_softmax, softmax and logsumexp.

Classes lie along ``axis`` (default -1). The kernels in ``_softmax.pyx`` read
C-contiguous logits as (outer, classes, inner): rows of classes when the class
axis is last, torch's (N, C, d1, ...) layout otherwise, without a transposed
copy. Only probability targets with a class axis other than the last are
copied into row order (stated in the docstring); a non-C-contiguous input is
copied once.
"""
import math

import numpy as np

from fastce._dispatch import kernels

_softmax = kernels("_softmax")
from fastce._validation import (
    as_array, as_data, as_values, check_fraction, check_int, check_reduction, check_same_shape,
    check_small_weight, describe_position, finish_reduction, normalize_axis,
    output_array, resolve_threads,
)

__all__ = ["cross_entropy", "log_softmax", "softmax", "logsumexp"]

_INT64_MAX = np.iinfo(np.int64).max


def _rows_view(x, axis):
    """``x`` with ``axis`` moved last, C-contiguous, and its shape. When the
    class axis is already last (x is C-contiguous here) that is x itself; other
    axes cost one copy."""
    if axis == x.ndim - 1:
        return x, x.shape
    moved = np.ascontiguousarray(np.moveaxis(x, axis, -1))
    return moved, moved.shape


def _class_labels(target, logits_shape, axis, n_classes, ignore_index):
    """Integer class indices as a flat C-contiguous int64 array."""
    expected = logits_shape[:axis] + logits_shape[axis + 1:]
    check_same_shape(target, expected, "target", "logits without its class axis")
    if target.dtype == np.uint64 and target.size and target.max() > _INT64_MAX:
        # int64 conversion would wrap these to negative indices.
        bad = int(np.argmax(target > _INT64_MAX))
        raise ValueError(
            f"target holds class index {target.flat[bad]} at position "
            f"{describe_position(bad, target.shape)}, outside [0, {n_classes})"
        )
    if target.dtype == np.int64 and target.flags.c_contiguous:
        return target
    return np.asarray(target, dtype=np.int64, order="C")


def _grad_in_caller_layout(grad_rows, axis, grad_out):
    """A gradient computed with the class axis last, moved back to ``axis``;
    copied into ``grad_out`` when one was given."""
    grad = np.moveaxis(grad_rows, -1, axis)
    if grad_out is None:
        return grad
    np.copyto(grad_out, grad)
    return grad_out


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, label_smoothing=0.0,
                  reduction="mean", axis=-1, return_grad=False, grad_out=None, n_threads=None,
                  return_hessian=False):
    """Softmax cross-entropy with the semantics of ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    logits : array_like (..., C, ...) with the classes along ``axis`` (default -1,
        the last axis; torch uses axis 1). -inf entries are masks: zero probability,
        zero gradient. float16 computes in float32, integers in float64.
    target : either integer class indices of the logits' shape without the class
        axis (any integer dtype; ``ignore_index`` marks samples to skip), or float
        class probabilities of the logits' shape (finite, >= 0; need not sum to 1).
    weight : optional (C,) class weights, finite and >= 0.
    ignore_index : class index whose samples contribute exactly 0 loss and 0
        gradient, whatever their logits hold (NaN, -inf). Unused for probabilities.
    label_smoothing : eps in [0, 1]. With weights, torch's formula
        l = (1-eps) w_y (lse - z_y) + (eps/C) sum_c w_c (lse - z_c).
    reduction : "mean": sum of losses / sum of w[target] over non-ignored samples
        (integer targets) or / number of samples (probabilities); "sum"; "none"
        (logits' shape without the class axis).
        Unlike torch, a "mean" over zero total weight (an empty batch, every target
        ignored) is 0.0 with a zero gradient, not NaN.
    return_grad : also return d(loss)/d(logits), from the same fused pass (one exp
        per element); for "none", the gradient of the sum.
    grad_out : optional C-contiguous array of the logits' shape and compute dtype;
        may be ``logits`` itself (in place, no extra N x C memory).
    n_threads : None (OpenMP's default) or an int >= 1. Results are bitwise the
        same for every value.
    return_hessian : integer targets only: return ``(loss, grad, hess)`` from the same
        pass, whatever ``return_grad`` says. ``hess`` is the diagonal of the Hessian
        of the returned loss, p_c (1 - p_c) ((1-eps) w_y + (eps/C) W) times the
        reduction's scale (0 for ignored samples).

    Notes
    -----
    Class indices read the logits in place for any ``axis`` (torch's spatial
    (N, C, d1, ...) layout included); probability targets with a class axis other
    than the last are copied once into (rows, classes) order, and so is a
    non-C-contiguous ``logits``. A zero class weight removes
    its samples' (or classes') terms exactly, where torch could produce 0*inf = NaN.
    With "mean" and ``return_grad``, the sum of w[target] needed to scale the
    gradient is taken from the labels (N integers) before the fused pass.
    """
    reduction = check_reduction(reduction)
    smoothing = check_fraction(label_smoothing, "label_smoothing")
    return_grad = return_grad or return_hessian
    x = as_data(logits, "logits")
    if x.ndim == 0:
        raise ValueError("logits must have at least one dimension (the classes)")
    class_axis = normalize_axis(axis, x.ndim)
    n_classes = x.shape[class_axis]
    target_array = as_array(target, "target")
    ignore = check_int(ignore_index, "ignore_index")
    if target_array.dtype.kind == "b":
        raise TypeError("target of dtype bool is ambiguous; pass integer class indices "
                        "or float probabilities")
    threads = resolve_threads(n_threads)
    class_weight = None
    if weight is not None:
        if np.shape(weight) != (n_classes,):
            raise ValueError(f"weight must have shape ({n_classes},) (one per class), "
                             f"got {np.shape(weight)}")
        class_weight = check_small_weight(weight, "weight", x.dtype)
    integer_target = target_array.dtype.kind in "iu"
    if return_hessian and not integer_target:
        raise ValueError("return_hessian=True needs integer class targets; probability "
                         "targets have no diagonal-Hessian form here")
    if integer_target:
        # Class indices read the logits in place whatever the class axis: the
        # column kernels take torch's (N, C, d1, ...) layout as it is.
        rows, kernel_shape, in_caller_layout = x, x.shape, True
        inner = math.prod(x.shape[class_axis + 1:])
        loss_shape = x.shape[:class_axis] + x.shape[class_axis + 1:]
    else:
        rows, kernel_shape = _rows_view(x, class_axis)
        in_caller_layout = class_axis == x.ndim - 1
        inner, loss_shape = 1, kernel_shape[:-1]
    n_rows = math.prod(loss_shape)
    grad_rows = None
    if return_grad:
        if grad_out is not None:
            output_array(grad_out, x.shape, x.dtype, "grad_out",
                         {"logits": logits, "target": target, "weight": weight},
                         in_place="logits")
        # Write straight into grad_out when its layout is the kernel's.
        if in_caller_layout:
            grad_rows = grad_out if grad_out is not None else np.empty(x.shape, dtype=x.dtype)
        else:
            grad_rows = np.empty(kernel_shape, dtype=x.dtype)
    loss_rows = np.empty(loss_shape, dtype=x.dtype) if reduction == "none" else None
    hess_rows = np.empty(kernel_shape, dtype=x.dtype) if return_hessian else None

    if target_array.dtype.kind in "iu":
        labels = _class_labels(target_array, x.shape, class_axis, n_classes, ignore_index)
        if n_classes == 0 and n_rows and np.any(labels != ignore_index):
            raise ValueError("logits has 0 classes, so no class index is valid")
        weight_total = float(class_weight.sum(dtype=np.float64)) if class_weight is not None \
            else float(n_classes)
        grad_scale = 1.0
        denominator = None
        if grad_rows is not None and reduction == "mean":
            denominator, bad = _softmax.label_weight_total(
                labels, None if class_weight is None else class_weight.astype(np.float64),
                n_classes, ignore, True, threads)
            if bad >= 0:
                _raise_bad_label(labels, bad, target_array.shape, n_classes)
            grad_scale = 1.0 / denominator if denominator else 0.0
        if n_classes == 0:
            total, label_weight_sum, bad = 0.0, 0.0, -1
            for array in (grad_rows, loss_rows, hess_rows):
                if array is not None:
                    array.fill(0)
        else:
            total, label_weight_sum, bad = _softmax.cross_entropy_labels(
                rows, labels, class_weight, weight_total, n_classes, ignore, True, smoothing,
                loss_rows, grad_rows, grad_scale, threads, hess_rows, inner)
        if bad >= 0:
            _raise_bad_label(labels, bad, target_array.shape, n_classes)
        if denominator is None:
            denominator = label_weight_sum
        if grad_rows is not None and reduction == "mean" and denominator == 0:
            grad_rows.fill(0)  # "mean" over nothing: a zero gradient, never NaN
            if hess_rows is not None:
                hess_rows.fill(0)
    elif target_array.dtype.kind == "f":
        y = as_values(target_array, "target", x.dtype)
        check_same_shape(y, x.shape, "target", "logits (probability targets)")
        target_rows, _ = _rows_view(y, class_axis)
        denominator = n_rows
        grad_scale = 1.0 / n_rows if reduction == "mean" and n_rows else 1.0
        total, bad = (0.0, -1) if n_classes == 0 else _softmax.cross_entropy_probs(
            rows, target_rows, class_weight, n_classes, smoothing, loss_rows, grad_rows,
            grad_scale, threads)
        if n_classes == 0 and grad_rows is not None:
            grad_rows.fill(0)
        if n_classes == 0 and loss_rows is not None:
            loss_rows.fill(0)
        if bad >= 0:
            row, cls = divmod(bad, n_classes)
            position = describe_position(row, kernel_shape[:-1])
            position = position[:class_axis] + (cls,) + position[class_axis:]
            raise ValueError(
                "target probabilities must be finite and non-negative; got "
                f"{target_rows.reshape(-1, n_classes)[row, cls].item()!r} at position {position}"
            )
    else:
        raise TypeError(f"target has unsupported dtype {target_array.dtype}; expected integer "
                        "class indices or float probabilities")

    if reduction == "none":
        loss = loss_rows[()] if loss_rows.ndim == 0 else loss_rows
    else:
        loss = finish_reduction(total, reduction, denominator)
    if not return_grad:
        return loss
    grad = grad_rows if in_caller_layout else _grad_in_caller_layout(grad_rows, class_axis,
                                                                     grad_out)
    if return_hessian:
        return loss, grad, hess_rows
    return loss, grad


def _raise_bad_label(labels, bad_row, target_shape, n_classes):
    raise ValueError(
        f"target holds class index {int(labels.flat[bad_row])} at position "
        f"{describe_position(bad_row, target_shape)}, outside [0, {n_classes}) "
        "and not ignore_index"
    )


def _normalize(mode, x, axis, out, n_threads, out_is_rows):
    """log_softmax/softmax/logsumexp along ``axis``, read in place: a class axis
    that is not last goes to the column kernels, (outer, C, inner) as it is."""
    array = as_data(x, "x")
    if array.ndim == 0:
        raise ValueError("x must have at least one dimension")
    class_axis = normalize_axis(axis, array.ndim)
    threads = resolve_threads(n_threads)
    n_classes = array.shape[class_axis]
    inner = math.prod(array.shape[class_axis + 1:])
    if out_is_rows:
        result = output_array(out, array.shape, array.dtype, "out", {"x": x}, in_place="x")
        _softmax.normalize(mode, array, result, n_classes, threads, inner)
        return result
    # logsumexp: one value per position; an empty class axis sums to 0, so -inf.
    shape = array.shape[:class_axis] + array.shape[class_axis + 1:]
    if n_classes == 0:
        result = np.full(shape, -np.inf, dtype=array.dtype)
    else:
        result = np.empty(shape, dtype=array.dtype)
        _softmax.normalize(mode, array, result, n_classes, threads, inner)
    return result[()] if result.ndim == 0 else result


def log_softmax(x, *, axis=-1, out=None, n_threads=None):
    """log softmax along ``axis``: z - max - log1p(sum exp(z - max) - 1), stable.

    A row of all -inf has no distribution and gives NaN (as SciPy). ``out`` (the
    input's shape and compute dtype, C-contiguous) may be ``x`` itself. Any class
    axis is read in place (no transposed copy); a non-C-contiguous ``x`` is copied.
    """
    return _normalize(_softmax.LOG_SOFTMAX, x, axis, out, n_threads, True)


def softmax(x, *, axis=-1, out=None, n_threads=None):
    """softmax along ``axis``: exp(z - max) / sum, one exp per element.

    -inf entries get probability 0; an all -inf row gives NaN. ``out`` may be ``x``.
    """
    return _normalize(_softmax.SOFTMAX, x, axis, out, n_threads, True)


def logsumexp(x, *, axis=-1, n_threads=None):
    """log sum exp along ``axis`` (max-shifted). Returns x's shape without ``axis``
    (a numpy scalar for 1-D input). An all -inf row, or an empty axis, gives -inf."""
    return _normalize(_softmax.LOGSUMEXP, x, axis, None, n_threads, False)
