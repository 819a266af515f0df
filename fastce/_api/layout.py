"""The array layouts the kernels read, shared by the softmax family, the
information measures and the linear models."""
import numpy as np

from fastce._api.validation import describe_position

_INT64_MAX = np.iinfo(np.int64).max


def rows_view(array, axis):
    """``array`` with ``axis`` moved last, C-contiguous: the array itself when
    it already is (axis last, C order), one copy otherwise."""
    if axis == array.ndim - 1 and array.flags.c_contiguous:
        return array
    return np.ascontiguousarray(np.moveaxis(array, axis, -1))


def int64_labels(labels, name, n_classes):
    """Integer class indices as the flat C-contiguous int64 array the kernels
    read (``n_classes`` for the message, or None). uint64 values above int64's range would wrap to negative indices in
    the conversion, so they are reported here; every other range check is the
    kernel's, in its own pass."""
    if labels.dtype == np.uint64 and labels.size and labels.max() > _INT64_MAX:
        bad = int(np.argmax(labels > _INT64_MAX))
        where = (f"outside [0, {n_classes})" if n_classes is not None
                 else "too large")
        raise ValueError(f"{name} holds class index {labels.flat[bad]} at position "
                         f"{describe_position(bad, labels.shape)}, {where}")
    if labels.dtype == np.int64 and labels.flags.c_contiguous:
        return labels
    return np.asarray(labels, dtype=np.int64, order="C")
