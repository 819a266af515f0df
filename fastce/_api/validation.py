"""Checks of shapes, dtypes and keywords, done once in Python.

Values (labels in range, targets in [0, 1], ...) are NOT checked here: the
kernels check them in their own pass and report the first offending position,
which ``describe_position`` turns into a readable message.
"""
import math
import numbers
import operator
import os

import numpy as np

from fastce._kernels import _config

REDUCTIONS = ("mean", "sum", "none")
_COMPUTE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

# dtype kinds that can never be a number of ours.
_REJECTED_KINDS = {"c": "complex", "O": "object", "U": "str", "S": "bytes",
                   "V": "void", "M": "datetime", "m": "timedelta"}


def _reject_unsupported(array, name):
    kind = array.dtype.kind
    if kind in _REJECTED_KINDS:
        raise TypeError(
            f"{name} has unsupported dtype {array.dtype} ({_REJECTED_KINDS[kind]}); "
            "expected a real floating, integer or bool array"
        )


def _reject_masked(x, name):
    # np.asarray drops a mask silently; fastce has no mask semantics for these
    # arguments, so a masked array is refused rather than read unmasked.
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy masked array; fastce does not honour masks. Pass "
            f"{name}.filled(value) or select the unmasked entries first"
        )


def as_array(x, name):
    """``np.asarray(x)`` for any argument, refusing masked arrays and dtypes
    that can never be numbers of ours."""
    if type(x) is np.ndarray:  # the common case: neither masked nor converted
        _reject_unsupported(x, name)
        return x
    _reject_masked(x, name)
    array = np.asarray(x)
    _reject_unsupported(array, name)
    return array


def compute_dtype(dtype):
    """float32/float64 stay; float16 computes in float32; ints and bools in float64."""
    if dtype == np.float32 or dtype == np.float16:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_data(x, name):
    """The logits/scores argument as a C-contiguous array of its compute dtype.

    Returns the input itself when it already qualifies (so grad_out=logits
    really is in place); otherwise a converted copy, which leaves the caller's
    array untouched.
    """
    if type(x) is np.ndarray and x.dtype in _COMPUTE_DTYPES and x.flags.c_contiguous:
        return x  # the common case, without numpy's conversion machinery
    array = as_array(x, name)
    # order="C" rather than ascontiguousarray, which turns 0-d into 1-d.
    return np.asarray(array, dtype=compute_dtype(array.dtype), order="C")


def as_values(x, name, dtype, *, contiguous=True):
    """A target/weight argument converted to the compute dtype."""
    if type(x) is np.ndarray and x.dtype == dtype and (not contiguous or x.flags.c_contiguous):
        return x
    array = as_array(x, name)
    if contiguous:
        return np.asarray(array, dtype=dtype, order="C")
    return array.astype(dtype, copy=False)


def check_same_shape(array, shape, name, reference_name):
    if array.shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {array.shape}, but {reference_name} has shape {tuple(shape)}; "
            "they must match"
        )


def check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


# libgomp is not fork-safe: a child forked after the parent ran an OpenMP
# region hangs in its own first one (measured here). Kernels given one thread
# enter no OpenMP region at all (prange use_threads_if), so forked children
# run serially instead of hanging.
_forked_child = False


def _mark_forked_child():
    global _forked_child
    _forked_child = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mark_forked_child)


def _exact_index(value, message):
    """value as an int, by operator.index (so no float, not even 1.0) and not a bool."""
    if not isinstance(value, (bool, np.bool_)):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise TypeError(f"{message}, got {value!r}")


def resolve_threads(n_threads):
    """n_threads as the kernels take it; always 1 in a forked child (see above)."""
    if n_threads is None:
        return 1 if _forked_child else max(1, _config.max_threads())
    value = _exact_index(n_threads, "n_threads must be an int >= 1 or None")
    if value < 1:
        raise ValueError(f"n_threads must be >= 1 or None, got {n_threads!r}")
    if _forked_child:
        return 1
    # More threads than OpenMP can use changes nothing but the scheduling.
    return min(value, 1 << 12)


def normalize_axis(axis, ndim, name="axis"):
    value = _exact_index(axis, f"{name} must be an int")
    if ndim == 0 or not -ndim <= value < ndim:
        raise ValueError(f"{name}={axis!r} is out of range for an array of {ndim} dimension(s)")
    return value % ndim


def _is_same_view(a, b):
    """Do ``a`` and ``b`` describe exactly the same elements (same memory,
    dtype, shape and strides), e.g. ``x`` and ``x[...]``?"""
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides)


_TooHardError = getattr(getattr(np, "exceptions", np), "TooHardError")


def _overlaps(a, b):
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=1 << 20))
    except _TooHardError:
        return True  # undecided within the work limit: refuse rather than risk it


def check_no_aliasing(out, name, inputs, in_place=None):
    """Refuse an output that shares memory with an input.

    ``inputs`` maps argument names to what the caller passed (non-arrays are
    skipped; a caller's array and its converted copy may both be listed).
    ``in_place`` names the one argument that ``out`` may be exactly (the
    documented in-place use, ``grad_out=logits`` or ``out=x``); any other
    sharing, or a partial overlap with it, raises a ValueError naming both.
    Decided once here, so the kernels may assume that each output is either
    disjoint from every input or the in-place argument itself.
    """
    for input_name, array in inputs.items():
        if not isinstance(array, np.ndarray):
            continue
        if input_name == in_place and _is_same_view(out, array):
            continue
        if _overlaps(out, array):
            allowed = (f", except {name} being {in_place} itself (the very same array)"
                       if in_place else "")
            raise ValueError(f"{name} shares memory with {input_name}; an output may not "
                             f"overlap an input{allowed}")


def output_array(out, shape, dtype, name, inputs=None, in_place=None):
    """Allocate an output, or check a caller's ``out``/``grad_out`` (shape,
    dtype, layout, and that it shares no memory with ``inputs`` beyond the
    allowed in-place use, see :func:`check_no_aliasing`)."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or isinstance(out, np.ma.MaskedArray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype:
        raise ValueError(f"{name} has dtype {out.dtype}, expected the compute dtype {dtype}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    if inputs:
        check_no_aliasing(out, name, inputs, in_place)
    return out


def check_real(value, name, what="a real number"):
    """A numeric keyword as a Python float. Strings, bools and other
    non-numbers raise TypeError (``float("0.1")`` would accept a string)."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {what}, got {value!r} of type {type(value).__name__}")
    return float(value)


def check_int(value, name, what="an int", lowest=np.iinfo(np.int64).min,
              highest=np.iinfo(np.int64).max):
    """An integer keyword as a Python int in [lowest, highest].

    Bools and strings raise TypeError; so do floats, except integral ones
    (1.0); an integer outside the range raises ValueError naming ``name``
    (never OverflowError).
    """
    if type(value) is int and lowest <= value <= highest:
        return value  # the common case, without the checks below
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be {what}, got the bool {value!r}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        number = int(value)
    else:
        raise TypeError(f"{name} must be {what}, got {value!r} of type {type(value).__name__}")
    if not lowest <= number <= highest:
        raise ValueError(f"{name}={value!r} is out of range: it must lie in "
                         f"[{lowest}, {highest}]")
    return number


def check_fraction(value, name):
    number = check_real(value, name, "a float in [0, 1]")
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return number


def check_small_weight(weight, name, dtype):
    """Validate a small per-class/per-label weight vector in Python.

    Its size is C or L, never N x C, so this is not a pass over the data.
    """
    array = as_values(weight, name, dtype)
    if array.size and not (np.all(np.isfinite(array)) and np.all(array >= 0)):
        position = int(np.flatnonzero(~(np.isfinite(array) & (array >= 0)))[0])
        raise ValueError(
            f"{name} must be finite and non-negative; got {array.flat[position].item()!r} "
            f"at index {describe_position(position, array.shape)}"
        )
    return array


def _broadcast_argument(array, shape, name, what):
    try:
        return np.broadcast_to(array, shape)
    except ValueError:
        raise ValueError(f"{name} of shape {array.shape} does not broadcast to {what} "
                         f"{tuple(shape)}") from None


def sample_weight_array(sample_weight, shape, what="the per-sample loss's shape"):
    """``sample_weight`` as a C-contiguous float64 array of ``shape`` (one per
    sample), or None. Its values are checked by the kernel in its own pass."""
    if sample_weight is None:
        return None
    array = as_array(sample_weight, "sample_weight")
    if array.shape != tuple(shape):
        array = _broadcast_argument(array, shape, "sample_weight", what)
    return np.ascontiguousarray(array, dtype=np.float64)


def mask_array(where, shape, what, name="where"):
    """A bool mask broadcast to ``shape``, as the C-contiguous uint8 array the
    kernels read (a view when it already is one)."""
    array = as_array(where, name)
    if array.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array, got dtype {array.dtype}")
    if array.shape != tuple(shape):
        array = _broadcast_argument(array, shape, name, what)
    return np.ascontiguousarray(array).view(np.uint8)


def raise_bad_sample_weight(sample_weight, bad_row, shape):
    """The ValueError for the sample weight a kernel reported at ``bad_row``."""
    value = sample_weight.flat[bad_row].item() if sample_weight is not None else None
    raise ValueError(f"sample_weight must be finite and non-negative; got {value!r} at "
                     f"position {describe_position(bad_row, shape)}")


def describe_position(flat_index, shape):
    return tuple(int(i) for i in np.unravel_index(flat_index, shape)) if shape else ()


def finish_reduction(total, reduction, denominator):
    """The scalar result: a float64; a mean over nothing is 0.0 (not NaN)."""
    if reduction == "sum":
        return np.float64(total)
    if denominator == 0:
        return np.float64(0.0)
    return np.float64(total / denominator)
