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

from fastce._kernels.dispatch import kernels

_softmax = kernels("_softmax")
from fastce._api.layout import int64_labels, rows_view
from fastce._api.validation import (
    as_array, as_data, as_values, check_fraction, check_int, check_reduction, check_same_shape,
    check_small_weight, describe_position, finish_reduction, mask_array, normalize_axis,
    output_array, raise_bad_sample_weight, resolve_threads, sample_weight_array,
)

__all__ = ["cross_entropy", "nll_loss", "log_softmax", "softmax", "logsumexp"]



def _rows_view(x, axis):
    """``x`` (C-contiguous here) with ``axis`` moved last, and its shape."""
    rows = rows_view(x, axis)
    return rows, rows.shape


def _class_labels(target, logits_shape, axis, n_classes, ignore_index):
    """Integer class indices as a flat C-contiguous int64 array."""
    expected = logits_shape[:axis] + logits_shape[axis + 1:]
    check_same_shape(target, expected, "target", "logits without its class axis")
    return int64_labels(target, "target", n_classes)


def _grad_in_caller_layout(grad_rows, axis, grad_out):
    """A gradient computed with the class axis last, moved back to ``axis``;
    copied into ``grad_out`` when one was given."""
    grad = np.moveaxis(grad_rows, -1, axis)
    if grad_out is None:
        return grad
    np.copyto(grad_out, grad)
    return grad_out


class _LossCall:
    """The checked arguments of one softmax-family loss call, in kernel layout.

    ``rows`` is what the kernel reads: the logits themselves (class indices,
    any class axis, read as (outer, C, inner)) or a (rows, C) copy with the
    class axis last. The per-sample arrays are in the loss's C order, which
    is the kernel's in both layouts; ``logit_mask`` is in ``rows``' layout.
    """
    __slots__ = ("x", "class_axis", "n_classes", "reduction", "threads", "class_weight",
                 "smoothing", "rows", "kernel_shape", "inner", "in_caller_layout",
                 "loss_shape", "sample_weight", "sample_mask", "logit_mask")


def _prepare_loss_call(logits, integer_target, weight, label_smoothing, reduction, axis,
                       n_threads, sample_weight, where):
    call = _LossCall()
    call.reduction = check_reduction(reduction)
    call.smoothing = check_fraction(label_smoothing, "label_smoothing")
    x = call.x = as_data(logits, "logits")
    if x.ndim == 0:
        raise ValueError("logits must have at least one dimension (the classes)")
    class_axis = call.class_axis = normalize_axis(axis, x.ndim)
    n_classes = call.n_classes = x.shape[class_axis]
    call.threads = resolve_threads(n_threads)
    call.class_weight = None
    if weight is not None:
        if np.shape(weight) != (n_classes,):
            raise ValueError(f"weight must have shape ({n_classes},) (one per class), "
                             f"got {np.shape(weight)}")
        call.class_weight = check_small_weight(weight, "weight", x.dtype)
    call.loss_shape = x.shape[:class_axis] + x.shape[class_axis + 1:]
    call.sample_weight = sample_weight_array(sample_weight, call.loss_shape)
    call.sample_mask = call.logit_mask = None
    if where is not None:
        if np.ndim(where) == x.ndim:
            call.logit_mask = mask_array(where, x.shape, "the logits' shape")
        else:
            call.sample_mask = mask_array(where, call.loss_shape, "the per-sample loss's shape")
    last_axis = class_axis == x.ndim - 1
    if integer_target and (last_axis or call.logit_mask is None):
        # Class indices read the logits in place whatever the class axis: the
        # column kernels take torch's (N, C, d1, ...) layout as it is.
        call.rows, call.kernel_shape, call.in_caller_layout = x, x.shape, True
        call.inner = math.prod(x.shape[class_axis + 1:])
    else:
        call.rows, call.kernel_shape = _rows_view(x, class_axis)
        call.in_caller_layout, call.inner = last_axis, 1
        if call.logit_mask is not None and not last_axis:
            call.logit_mask = np.ascontiguousarray(np.moveaxis(call.logit_mask, class_axis, -1))
    return call


def _has_sample_options(call):
    return (call.sample_weight is not None or call.sample_mask is not None
            or call.logit_mask is not None)


def _gradient_buffers(call, arguments, grad_out, return_grad, return_hessian):
    """The kernel's gradient (written straight into ``grad_out`` when its layout
    is the kernel's) and Hessian buffers, or None."""
    if not return_grad:
        return None, None
    x = call.x
    if grad_out is not None:
        output_array(grad_out, x.shape, x.dtype, "grad_out", arguments(), in_place="logits")
    if call.in_caller_layout:
        grad_rows = grad_out if grad_out is not None else np.empty(x.shape, dtype=x.dtype)
    else:
        grad_rows = np.empty(call.kernel_shape, dtype=x.dtype)
    hess_rows = np.empty(call.kernel_shape, dtype=x.dtype) if return_hessian else None
    return grad_rows, hess_rows


def _class_index_loss(call, target_array, ignore_index, loss_rows, grad_rows, hess_rows):
    """The kernel pass for class indices: ``(loss_sum, denominator)``."""
    n_classes, threads = call.n_classes, call.threads
    ignore = ignore_index
    labels = _class_labels(target_array, call.x.shape, call.class_axis, n_classes,
                           ignore_index)
    n_rows = labels.size
    if n_classes == 0 and n_rows and np.any(labels != ignore_index):
        raise ValueError("logits has 0 classes, so no class index is valid")
    class_weight = call.class_weight
    weight_total = float(class_weight.sum(dtype=np.float64)) if class_weight is not None \
        else float(n_classes)
    grad_scale, denominator = 1.0, None
    if grad_rows is not None and call.reduction == "mean":
        denominator, bad = _softmax.label_weight_total(
            labels, None if class_weight is None else class_weight.astype(np.float64),
            n_classes, ignore, True, threads, call.sample_weight, call.sample_mask,
            call.logit_mask)
        if bad >= 0:
            _raise_bad_sample(labels, call.sample_weight, bad, target_array.shape, n_classes,
                              ignore)
        grad_scale = 1.0 / denominator if denominator else 0.0
    if n_classes == 0:
        total, label_weight_sum, bad = 0.0, 0.0, -1
        for array in (grad_rows, loss_rows, hess_rows):
            if array is not None:
                array.fill(0)
    else:
        total, label_weight_sum, bad = _softmax.cross_entropy_labels(
            call.rows, labels, class_weight, weight_total, n_classes, ignore, True,
            call.smoothing, loss_rows, grad_rows, grad_scale, threads, hess_rows, call.inner,
            call.sample_weight, call.sample_mask, call.logit_mask)
    if bad >= 0:
        _raise_bad_sample(labels, call.sample_weight, bad, target_array.shape, n_classes,
                          ignore)
    if denominator is None:
        denominator = label_weight_sum
    if grad_rows is not None and call.reduction == "mean" and denominator == 0:
        grad_rows.fill(0)  # "mean" over nothing: a zero gradient, never NaN
        if hess_rows is not None:
            hess_rows.fill(0)
    return total, denominator


def _probability_loss(call, target_array, loss_rows, grad_rows):
    """The kernel pass for probability targets: ``(loss_sum, denominator)``."""
    x, n_classes = call.x, call.n_classes
    y = as_values(target_array, "target", x.dtype)
    check_same_shape(y, x.shape, "target", "logits (probability targets)")
    target_rows, _ = _rows_view(y, call.class_axis)
    n_rows = math.prod(call.kernel_shape[:-1])
    samples = (call.sample_weight, call.sample_mask, call.logit_mask)
    denominator = n_rows
    if grad_rows is not None and call.reduction == "mean" and _has_sample_options(call):
        denominator, bad = _softmax.label_weight_total(None, None, n_classes, 0, False,
                                                       call.threads, *samples, n_rows)
        if bad >= 0:
            raise_bad_sample_weight(call.sample_weight, bad, call.loss_shape)
    grad_scale = 1.0 / denominator if call.reduction == "mean" and denominator else 1.0
    if n_classes == 0:
        total, weight_sum, bad = 0.0, 0.0, -1
        for array in (grad_rows, loss_rows):
            if array is not None:
                array.fill(0)
    else:
        total, weight_sum, bad = _softmax.cross_entropy_probs(
            call.rows, target_rows, call.class_weight, n_classes, call.smoothing, loss_rows,
            grad_rows, grad_scale, call.threads, False, False, *samples)
    if bad >= 0:
        row, cls = divmod(bad, n_classes)
        value = target_rows.reshape(-1, n_classes)[row, cls].item()
        if value >= 0 and value < np.inf:  # the targets are valid: the sample weight is not
            raise_bad_sample_weight(call.sample_weight, row, call.loss_shape)
        position = describe_position(row, call.kernel_shape[:-1])
        position = position[:call.class_axis] + (cls,) + position[call.class_axis:]
        raise ValueError("target probabilities must be finite and non-negative; got "
                         f"{value!r} at position {position}")
    if _has_sample_options(call):
        denominator = weight_sum
    return total, denominator


def cross_entropy(logits, target, *, weight=None, ignore_index=-100, label_smoothing=0.0,
                  reduction="mean", axis=-1, return_grad=False, grad_out=None, n_threads=None,
                  return_hessian=False, sample_weight=None, where=None):
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
    reduction : "mean": sum of losses / sum of sw w[target] over the samples that
        count (integer targets) or / sum of sw (probabilities); "sum"; "none"
        (logits' shape without the class axis).
        Unlike torch, a "mean" over zero total weight (an empty batch, every target
        ignored or masked) is 0.0 with a zero gradient, not NaN.
    return_grad : also return d(loss)/d(logits), from the same fused pass (one exp
        per element); for "none", the gradient of the sum.
    grad_out : optional C-contiguous array of the logits' shape and compute dtype;
        may be ``logits`` itself (in place, no extra N x C memory).
    n_threads : None (OpenMP's default) or an int >= 1. Results are bitwise the
        same for every value.
    return_hessian : integer targets only: return ``(loss, grad, hess)`` from the same
        pass, whatever ``return_grad`` says. ``hess`` is the diagonal of the Hessian
        of the returned loss, sw p_c (1 - p_c) ((1-eps) w_y + (eps/C) W) times the
        reduction's scale (0 for ignored samples).
    sample_weight : optional weights sw, one per sample (the loss's shape, or
        broadcastable to it), finite and >= 0. Each sample's loss, gradient and
        Hessian are multiplied by sw; "mean" is sum sw w_y l / sum sw w_y with class
        indices (scikit-learn's weighted mean with torch's class weights) and
        sum sw l / sum sw with probabilities. A zero sw removes its sample exactly,
        whatever its logits hold.
    where : optional bool mask, as optax's ``where``. Of the loss's shape (or
        broadcastable to it, fewer dimensions than the logits): per sample, a False
        sample contributes exactly 0 and leaves the mean's denominator; its label
        and sample weight are not checked. Of the logits' dimensions: per logit, a
        False entry acts exactly as a -inf logit (its value is never used), so a
        masked target class, or smoothing or target mass on a masked class, gives
        +inf; a row with no True entry is ignored (0 loss, zero gradient, out of
        the denominator). With a per-logit mask, a class axis other than the last
        is copied once into rows, as for probability targets.

    Notes
    -----
    Class indices read the logits in place for any ``axis`` (torch's spatial
    (N, C, d1, ...) layout included); probability targets with a class axis other
    than the last are copied once into (rows, classes) order, and so is a
    non-C-contiguous ``logits``. A zero class weight removes
    its samples' (or classes') terms exactly, where torch could produce 0*inf = NaN.
    With "mean" and ``return_grad``, the denominator needed to scale the gradient
    is summed from the labels and per-sample arrays (N values, and the mask's bytes
    with a per-logit ``where``) before the fused pass.
    """
    if (sample_weight is None and where is None and weight is None and grad_out is None
            and not return_grad and not return_hessian
            and (n_threads is None or (type(n_threads) is int and n_threads >= 1))
            and type(logits) is np.ndarray and type(target) is np.ndarray):
        loss = _softmax.plain_labels_loss(logits, target, ignore_index, label_smoothing,
                                          reduction, axis, n_threads)  # checked in C
        if loss is not None:
            return loss
    return_grad = return_grad or return_hessian
    target_array = as_array(target, "target")
    kind = target_array.dtype.kind
    if kind == "b":
        raise TypeError("target of dtype bool is ambiguous; pass integer class indices "
                        "or float probabilities")
    if kind not in "iuf":
        raise TypeError(f"target has unsupported dtype {target_array.dtype}; expected integer "
                        "class indices or float probabilities")
    integer_target = kind in "iu"
    call = _prepare_loss_call(logits, integer_target, weight, label_smoothing, reduction, axis,
                              n_threads, sample_weight, where)
    if return_hessian and not integer_target:
        raise ValueError("return_hessian=True needs integer class targets; probability "
                         "targets have no diagonal-Hessian form here")
    ignore_index = check_int(ignore_index, "ignore_index")

    def arguments():  # for the aliasing check of grad_out
        return {"logits": logits, "target": target, "weight": weight,
                "sample_weight": sample_weight, "where": where}
    grad_rows, hess_rows = _gradient_buffers(call, arguments, grad_out, return_grad,
                                             return_hessian)
    loss_rows = np.empty(call.loss_shape, dtype=call.x.dtype) if call.reduction == "none" \
        else None
    if integer_target:
        total, denominator = _class_index_loss(call, target_array, ignore_index, loss_rows,
                                               grad_rows, hess_rows)
    else:
        total, denominator = _probability_loss(call, target_array, loss_rows, grad_rows)
    return _finish_loss(call, total, denominator, loss_rows, grad_rows, hess_rows, grad_out,
                        return_grad, return_hessian)


def _finish_loss(call, total, denominator, loss_rows, grad_rows, hess_rows, grad_out,
                 return_grad, return_hessian):
    """The scalar or per-sample loss, and the gradient in the caller's layout."""
    if call.reduction == "none":
        loss = loss_rows[()] if loss_rows.ndim == 0 else loss_rows
    else:
        loss = finish_reduction(total, call.reduction, denominator)
    if not return_grad:
        return loss
    grad = grad_rows if call.in_caller_layout else _grad_in_caller_layout(
        grad_rows, call.class_axis, grad_out)
    if return_hessian:
        hess = hess_rows if call.in_caller_layout else np.moveaxis(hess_rows, -1,
                                                                   call.class_axis)
        return loss, grad, hess
    return loss, grad


def _raise_bad_sample(labels, sample_weight, bad_row, target_shape, n_classes, ignore_index):
    """The kernel flagged ``bad_row``: its label is out of range, or else its
    sample weight is invalid."""
    label = int(labels.flat[bad_row])
    if label != ignore_index and not 0 <= label < n_classes:
        _raise_bad_label(labels, bad_row, target_shape, n_classes)
    raise_bad_sample_weight(sample_weight, bad_row, target_shape)


def _raise_bad_label(labels, bad_row, target_shape, n_classes):
    raise ValueError(
        f"target holds class index {int(labels.flat[bad_row])} at position "
        f"{describe_position(bad_row, target_shape)}, outside [0, {n_classes}) "
        "and not ignore_index"
    )


def _reduced_axes(axis, ndim):
    """``axis`` (an int, a tuple of ints, or None for all) as a sorted tuple of
    distinct non-negative axes; () reduces nothing (each element on its own,
    as NumPy and SciPy). A 0-d array is one element along axis -1, 0, None
    or ()."""
    if ndim == 0:
        if not (axis is None or isinstance(axis, tuple) and not axis):
            for single in axis if isinstance(axis, tuple) else (axis,):
                normalize_axis(single, 1)
        return ()
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, tuple):
        axes = tuple(normalize_axis(a, ndim) for a in axis)
        if len(set(axes)) != len(axes):
            raise ValueError(f"axis={axis!r} repeats an axis")
        return tuple(sorted(axes))
    return (normalize_axis(axis, ndim),)


def _axes_last(array, axes):
    """``array`` with ``axes`` moved last and merged into one, C-contiguous
    (a view when they already are the last axes of a C-contiguous array), and
    the moved shape. No axes give a last axis of length 1."""
    if not axes:
        return np.ascontiguousarray(array).reshape(array.shape + (1,)), array.shape + (1,)
    moved = np.moveaxis(array, axes, tuple(range(array.ndim - len(axes), array.ndim)))
    merged = moved.shape[:array.ndim - len(axes)] + (math.prod(moved.shape[array.ndim
                                                                           - len(axes):]),)
    return np.ascontiguousarray(moved).reshape(merged), moved.shape


def _normalize(mode, x, axis, out, n_threads, out_is_rows):
    """log_softmax/softmax/logsumexp along ``axis``, read in place: a class axis
    that is not last goes to the column kernels, (outer, C, inner) as it is.
    Several axes (or a 0-d input) are merged into one last axis first."""
    array = as_data(x, "x")
    axes = _reduced_axes(axis, array.ndim)
    threads = resolve_threads(n_threads)
    if len(axes) != 1:
        return _normalize_merged(mode, array, x, axes, out, threads, out_is_rows)
    class_axis = axes[0]
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
    return result


def _normalize_merged(mode, array, x, axes, out, threads, out_is_rows):
    """_normalize over several axes (or none, for 0-d): they are moved last
    and merged (one copy unless they already are last), normalised as one."""
    if out_is_rows:
        result = output_array(out, array.shape, array.dtype, "out", {"x": x}, in_place="x")
    rows, moved_shape = _axes_last(array, axes)
    n_classes = rows.shape[-1]
    if not out_is_rows:
        if n_classes == 0:
            return np.full(rows.shape[:-1], -np.inf, dtype=array.dtype)
        values = np.empty(rows.shape[:-1], dtype=array.dtype)
        _softmax.normalize(mode, rows, values, n_classes, threads, 1)
        return values
    values = np.empty(rows.shape, dtype=array.dtype)
    if n_classes:
        _softmax.normalize(mode, rows, values, n_classes, threads, 1)
    if not axes:
        np.copyto(result, values.reshape(array.shape))
        return result
    kept = len(moved_shape) - len(axes)
    back = np.moveaxis(values.reshape(moved_shape), tuple(range(kept, len(moved_shape))), axes)
    np.copyto(result, back)
    return result


def log_softmax(x, *, axis=-1, out=None, n_threads=None):
    """log softmax along ``axis``: z - max - log1p(sum exp(z - max) - 1), stable.

    ``axis`` may be a tuple of axes (or None, all of them): the normalisation is
    over their joint set, as ``scipy.special.log_softmax``; those axes are then
    copied into one last axis. A 0-d input is one element (log_softmax 0.0).
    A row of all -inf has no distribution and gives NaN (as SciPy). ``out`` (the
    input's shape and compute dtype, C-contiguous) may be ``x`` itself. Any single
    class axis is read in place (no transposed copy); a non-C-contiguous ``x`` is
    copied.
    """
    return _normalize(_softmax.LOG_SOFTMAX, x, axis, out, n_threads, True)


def softmax(x, *, axis=-1, out=None, n_threads=None):
    """softmax along ``axis``: exp(z - max) / sum, one exp per element.

    ``axis`` may be a tuple (or None) as in :func:`log_softmax`; a 0-d input gives
    1.0. -inf entries get probability 0; an all -inf row gives NaN. ``out`` may be
    ``x``.
    """
    return _normalize(_softmax.SOFTMAX, x, axis, out, n_threads, True)


def logsumexp(x, *, axis=-1, b=None, keepdims=False, return_sign=False, n_threads=None):
    """log sum exp along ``axis`` (max-shifted), with scipy.special.logsumexp's
    ``b``, ``keepdims`` and ``return_sign``.

    ``axis`` is an int, a tuple of ints or None (all axes); a 0-d input is one
    element. Returns x's shape without ``axis`` (a numpy scalar when nothing is
    left), or with length-1 axes there when ``keepdims``. An all -inf row, or an
    empty axis, gives -inf.

    b : optional scale factors broadcastable to ``x``: log |sum b exp(x)|. Terms
        with b = 0 are left out, whatever x holds there (inf, NaN). Without
        ``return_sign`` a negative sum gives NaN, as in SciPy. ``b`` is brought to
        x's shape and layout once (a copy unless it already is), and the result
        has x's compute dtype (SciPy promotes to b's).
    return_sign : also return the sign of the sum, +1, -1, or 0 for a sum of 0
        (all -inf, all b = 0, or an empty axis; SciPy gives -1 for an empty axis),
        NaN where the result is NaN.
    """
    if not isinstance(keepdims, (bool, np.bool_)) or not isinstance(return_sign,
                                                                    (bool, np.bool_)):
        raise TypeError("keepdims and return_sign must be bools")
    array = as_data(x, "x")
    axes = _reduced_axes(axis, array.ndim)
    if b is None:
        result = _normalize(_softmax.LOGSUMEXP, x, axis, None, n_threads, False)
        sign = None
        if return_sign:
            sign = np.where(result == -np.inf, 0.0, 1.0).astype(array.dtype)
            sign[np.isnan(result)] = np.nan
    else:
        result, sign = _weighted_logsumexp(array, b, axes, resolve_threads(n_threads))
        if not return_sign:
            result[sign < 0] = np.nan
    result = _keep_dims(result, array.ndim, axes) if keepdims else result
    if not return_sign:
        return result[()] if result.ndim == 0 else result
    sign = _keep_dims(sign, array.ndim, axes) if keepdims else sign
    if result.ndim == 0:
        return result[()], sign[()]
    return result, sign


def _keep_dims(values, ndim, axes):
    return np.expand_dims(values, axes) if ndim and axes else values


def _weighted_logsumexp(array, b, axes, threads):
    scale = as_values(b, "b", array.dtype, contiguous=False)
    try:
        scale = np.broadcast_to(scale, array.shape)
    except ValueError:
        raise ValueError(f"b of shape {scale.shape} does not broadcast to x's shape "
                         f"{array.shape}") from None
    rows, _ = _axes_last(array, axes)
    scale_rows, _ = _axes_last(scale, axes)
    result = np.empty(rows.shape[:-1], dtype=array.dtype)
    sign = np.empty(rows.shape[:-1], dtype=array.dtype)
    if rows.shape[-1] == 0:
        result.fill(-np.inf)
        sign.fill(0)
    else:
        _softmax.weighted_logsumexp(rows, scale_rows, result, sign, rows.shape[-1], threads)
    return result, sign


def nll_loss(log_probs, target, *, weight=None, ignore_index=-100, reduction="mean", axis=-1,
             return_grad=False, grad_out=None, n_threads=None):
    """torch's ``nll_loss`` on log-probabilities the caller gives.

    l = -w_y log_probs[y] for each sample whose label is not ``ignore_index``; "mean"
    divides by sum w_y over those samples (0.0 over nothing, where torch gives NaN),
    "sum" adds, "none" returns one loss per sample (0 for ignored ones). The classes
    lie along ``axis`` (default -1; torch's is 1), read in place for any axis.
    The gradient is -s w_y at each target entry and 0 elsewhere; ``grad_out`` may be
    ``log_probs`` itself. Only the target entries are read, so NaN elsewhere does
    not propagate; -inf at a target gives +inf. Class indices outside [0, C) that
    are not ``ignore_index`` raise ValueError. A zero class weight removes its
    samples exactly.
    """
    reduction = check_reduction(reduction)
    x = as_data(log_probs, "log_probs")
    if x.ndim == 0:
        raise ValueError("log_probs must have at least one dimension (the classes)")
    class_axis = normalize_axis(axis, x.ndim)
    n_classes = x.shape[class_axis]
    threads = resolve_threads(n_threads)
    ignore = check_int(ignore_index, "ignore_index")
    target_array = as_array(target, "target")
    if target_array.dtype.kind not in "iu":
        raise TypeError(f"target must hold integer class indices, got dtype "
                        f"{target_array.dtype}")
    labels = _class_labels(target_array, x.shape, class_axis, n_classes, ignore_index)
    class_weight = None
    if weight is not None:
        if np.shape(weight) != (n_classes,):
            raise ValueError(f"weight must have shape ({n_classes},) (one per class), "
                             f"got {np.shape(weight)}")
        class_weight = check_small_weight(weight, "weight", x.dtype)
    inner = math.prod(x.shape[class_axis + 1:])
    grad = None
    if return_grad:
        grad = output_array(grad_out, x.shape, x.dtype, "grad_out",
                            {"log_probs": log_probs, "target": target, "weight": weight},
                            in_place="log_probs")
    loss_rows = np.empty(labels.shape, dtype=x.dtype) if reduction == "none" else None
    grad_scale, denominator = 1.0, None
    if grad is not None and reduction == "mean":
        denominator, bad = _softmax.label_weight_total(
            labels, None if class_weight is None else class_weight.astype(np.float64),
            n_classes, ignore, True, threads)
        if bad >= 0:
            _raise_bad_label(labels, bad, target_array.shape, n_classes)
        grad_scale = 1.0 / denominator if denominator else 0.0
    if n_classes == 0 and labels.size and np.any(labels != ignore):
        raise ValueError("log_probs has 0 classes, so no class index is valid")
    total, weight_sum, bad = _softmax.nll_labels(x, labels, class_weight, n_classes, ignore,
                                                 loss_rows, grad, grad_scale, threads, inner) \
        if n_classes else (0.0, 0.0, -1)
    if bad >= 0:
        _raise_bad_label(labels, bad, target_array.shape, n_classes)
    if n_classes == 0:
        for array in (grad, loss_rows):
            if array is not None:
                array.fill(0)
    if reduction == "none":
        loss = loss_rows[()] if loss_rows.ndim == 0 else loss_rows
    else:
        loss = finish_reduction(total, reduction,
                                weight_sum if denominator is None else denominator)
    return (loss, grad) if return_grad else loss
