"""Array loops of the binary family (elementwise losses), one for all kinds.

The formulas live in _math.pxd; this module only walks the arrays: blocks of
``BLOCK_ELEMENTS`` flat elements run in ``prange``, each with a float64 partial
sum, a value check folded into the same pass, and the loss, the gradient, or
both written as it goes.
"""
from cython cimport floating
from cython.parallel cimport prange

from fastce._blocks cimport (
    BLOCK_ELEMENTS, BlockScratch, first_bad_position, n_blocks_for,
    scratch_alloc, scratch_free, sum_in_block_order, threads_for,
)
from fastce._math cimport (
    KIND_BCE_LOGITS, KIND_BCE_PROBS, KIND_LOGISTIC, KIND_SIGMOID, KIND_LOG_SIGMOID,
    binary_point, is_unit_interval, is_valid_binary_target, is_valid_weight,
)

BCE_LOGITS = KIND_BCE_LOGITS
BCE_PROBS = KIND_BCE_PROBS
LOGISTIC = KIND_LOGISTIC
SIGMOID = KIND_SIGMOID
LOG_SIGMOID = KIND_LOG_SIGMOID


cdef double _binary_block(
    int kind,
    const floating* x__e,
    const floating* target__e,
    const floating* weight__rc,
    Py_ssize_t weight_row_stride,
    Py_ssize_t weight_col_stride,
    const floating* pos_weight__c,
    floating* loss__e,
    floating* grad__e,
    double grad_scale,
    Py_ssize_t start,
    Py_ssize_t stop,
    Py_ssize_t n_cols,
    Py_ssize_t* bad_position,
) noexcept nogil:
    """Elements [start, stop) of a flat (n_rows, n_cols) problem.

    ``x__e`` and ``grad__e`` may be the same buffer (grad_out=logits): each
    element is read before its gradient is written. The weight is a strided
    (rows, cols) view so that a per-label or per-row weight is never expanded
    to the full shape. A NULL pointer means "absent" (weight 1, no output).
    """
    cdef Py_ssize_t i
    cdef Py_ssize_t row = start // n_cols
    cdef Py_ssize_t col = start - row * n_cols
    cdef double block_loss = 0.0
    cdef double value, slope, x
    cdef double target = 0.0, weight = 1.0, pos_weight = 1.0
    bad_position[0] = -1
    for i in range(start, stop):
        x = x__e[i]
        if target__e != NULL:
            target = target__e[i]
        if weight__rc != NULL:
            weight = weight__rc[row * weight_row_stride + col * weight_col_stride]
        if pos_weight__c != NULL:
            pos_weight = pos_weight__c[col]
        slope = 0.0
        if ((target__e != NULL and not is_valid_binary_target(kind, target))
                or not is_valid_weight(weight)
                or (kind == KIND_BCE_PROBS and not is_unit_interval(x))):
            # Reported by the wrapper; the element itself contributes nothing.
            if bad_position[0] < 0:
                bad_position[0] = i
            value = 0.0
        elif weight == 0.0:
            # A zero weight removes the element, even where its loss is inf/NaN.
            value = 0.0
        else:
            value = weight * binary_point(kind, x, target, pos_weight, &slope)
            slope = weight * slope
        block_loss += value
        if loss__e != NULL:
            loss__e[i] = <floating>value
        if grad__e != NULL:
            grad__e[i] = <floating>(slope * grad_scale)
        col += 1
        if col == n_cols:
            col = 0
            row += 1
    return block_loss


def binary_kernel(
    int kind,
    const floating[::1] x,
    const floating[::1] target,
    const floating[:, :] weight,
    const floating[::1] pos_weight,
    floating[::1] loss_out,
    floating[::1] grad_out,
    double grad_scale,
    Py_ssize_t n_cols,
    int n_threads,
):
    """Run one elementwise loss over ``x`` (flat, C order, n_cols per row).

    Returns ``(loss_sum, first_bad_position)``; the position is -1 when every
    target, weight and probability was valid. ``None`` may be passed for any
    optional array. The GIL is released for the whole pass.
    """
    cdef Py_ssize_t n = x.shape[0]
    cdef Py_ssize_t n_blocks = n_blocks_for(n, BLOCK_ELEMENTS)
    cdef Py_ssize_t block, start, stop
    cdef int threads = threads_for(n, n_threads)
    cdef const floating* x_ptr = NULL
    cdef const floating* target_ptr = NULL
    cdef const floating* weight_ptr = NULL
    cdef const floating* pos_weight_ptr = NULL
    cdef floating* loss_ptr = NULL
    cdef floating* grad_ptr = NULL
    cdef Py_ssize_t weight_row_stride = 0, weight_col_stride = 0
    cdef BlockScratch scratch
    cdef double total
    cdef Py_ssize_t bad
    if n == 0:
        return 0.0, -1
    x_ptr = &x[0]
    if target is not None:
        target_ptr = &target[0]
    if weight is not None:
        weight_ptr = &weight[0, 0]
        weight_row_stride = weight.strides[0] // <Py_ssize_t>sizeof(floating)
        weight_col_stride = weight.strides[1] // <Py_ssize_t>sizeof(floating)
    if pos_weight is not None:
        pos_weight_ptr = &pos_weight[0]
    if loss_out is not None:
        loss_ptr = &loss_out[0]
    if grad_out is not None:
        grad_ptr = &grad_out[0]
    if not scratch_alloc(&scratch, n_blocks):
        scratch_free(&scratch)
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, num_threads=threads, schedule="static"):
            start = block * BLOCK_ELEMENTS
            stop = min(start + BLOCK_ELEMENTS, n)
            scratch.loss[block] = _binary_block(
                kind, x_ptr, target_ptr, weight_ptr, weight_row_stride,
                weight_col_stride, pos_weight_ptr, loss_ptr, grad_ptr,
                grad_scale, start, stop, n_cols, &scratch.bad[block])
        total = sum_in_block_order(scratch.loss, n_blocks)
        bad = first_bad_position(scratch.bad, n_blocks)
    scratch_free(&scratch)
    return total, bad
