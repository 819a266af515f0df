"""Array loops of the information measures (entropy, KL, JS, cross-entropy
of probabilities). The per-term formulas live in _vecmath.h
(``fastce_information_term``); each row's terms are summed in float64 and
the values checked (in [0, 1], not NaN) in the same pass.
"""
from cython cimport floating
from cython.parallel cimport prange
cimport numpy as cnp
from libc.math cimport exp, log, INFINITY

from fastce._arrays cimport array_data, float_typenum
from fastce._blocks cimport (
    BLOCK_ELEMENTS, BlockScratch, first_bad_position, n_blocks_for, rows_per_block,
    scratch_alloc, scratch_free, sum_in_block_order, threads_for,
)
from fastce._vecmath cimport (
    FASTCE_CATEGORICAL_CE, FASTCE_ENTROPY, FASTCE_JS, FASTCE_KL, fastce_information_term,
)

# The numpy C-API table (PyArray_SIZE & co. in _arrays.pxd go through it).
cnp.import_array()

ENTROPY = FASTCE_ENTROPY
KL = FASTCE_KL
JS = FASTCE_JS
CATEGORICAL_CE = FASTCE_CATEGORICAL_CE


cdef double _information_rows(
    int kind, const floating* p__nc, const floating* q__nc, Py_ssize_t n_classes,
    double scale, floating* value__n, Py_ssize_t row_start, Py_ssize_t row_stop,
    Py_ssize_t* bad_position,
) noexcept nogil:
    """Rows [row_start, row_stop): value_n = scale * sum_c term(p_nc, q_nc).

    ``q__nc`` is NULL for the entropy. A row with an invalid value (outside
    [0, 1], or NaN) is reported and counted as 0.
    """
    cdef Py_ssize_t row, c, index
    cdef double total = 0.0, row_value, p, q = 0.0
    bad_position[0] = -1
    for row in range(row_start, row_stop):
        row_value = 0.0
        for c in range(n_classes):
            index = row * n_classes + c
            p = p__nc[index]
            if q__nc != NULL:
                q = q__nc[index]
            if not (p >= 0.0 and p <= 1.0 and q >= 0.0 and q <= 1.0):
                if bad_position[0] < 0:
                    bad_position[0] = index
                row_value = 0.0
                break
            row_value += fastce_information_term(kind, p, q)
        row_value = row_value * scale
        total += row_value
        if value__n != NULL:
            value__n[row] = <floating>row_value
    return total


cdef object _run_information(int kind, const floating* p, const floating* q,
                             Py_ssize_t n_rows, Py_ssize_t n_classes, double scale,
                             floating* value_out, int n_threads):
    cdef Py_ssize_t block_rows = rows_per_block(n_classes)
    cdef Py_ssize_t n_blocks = n_blocks_for(n_rows, block_rows)
    cdef int threads = threads_for(n_rows * n_classes, n_threads)
    cdef Py_ssize_t block, start, stop, bad
    cdef double total
    cdef BlockScratch scratch
    if not scratch_alloc(&scratch, n_blocks):
        scratch_free(&scratch)
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, num_threads=threads, schedule="static",
                            use_threads_if=threads > 1):
            start = block * block_rows
            stop = min(start + block_rows, n_rows)
            scratch.loss[block] = _information_rows(
                kind, p, q, n_classes, scale, value_out, start, stop, &scratch.bad[block])
        total = sum_in_block_order(scratch.loss, n_blocks)
        bad = first_bad_position(scratch.bad, n_blocks)
    scratch_free(&scratch)
    return total, bad


def information_kernel(int kind, p, q, Py_ssize_t n_classes, double scale, value_out,
                       int n_threads):
    """One information measure per row of C-contiguous (rows, n_classes) ``p``
    (and ``q``, None for the entropy), times ``scale`` (1/log(base)).

    ``value_out`` (one per row, or None) has p's dtype. Returns
    ``(sum_of_row_values, first_bad_flat_position)``.
    """
    cdef int typenum = float_typenum(p)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(p)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    if n_rows == 0:
        return 0.0, -1
    cdef void* p_ptr = array_data(p, typenum, size, False)
    cdef void* q_ptr = array_data(q, typenum, size, False)
    cdef void* value_ptr = array_data(value_out, typenum, n_rows, True)
    if typenum == cnp.NPY_FLOAT32:
        return _run_information(kind, <const float*>p_ptr, <const float*>q_ptr, n_rows,
                                n_classes, scale, <float*>value_ptr, n_threads)
    return _run_information(kind, <const double*>p_ptr, <const double*>q_ptr, n_rows,
                            n_classes, scale, <double*>value_ptr, n_threads)


# ------------------------------------------------ torch's elementwise kl_div

cdef double _kl_div_block(const floating* input__e, const floating* target__e,
                          bint log_target, floating* loss__e, floating* grad__e,
                          double grad_scale, Py_ssize_t start, Py_ssize_t stop,
                          Py_ssize_t* bad_position) noexcept nogil:
    """Elements [start, stop): t (log t - x), or exp(t) (t - x) with
    ``log_target``; the gradient -s t. A zero target term is exactly 0 (and
    its gradient), even where x is -inf or NaN. Each element is read before
    its gradient is written, so ``grad__e`` may alias ``input__e``."""
    cdef Py_ssize_t i
    cdef double x, t, probability, value, total = 0.0
    cdef bint valid
    bad_position[0] = -1
    for i in range(start, stop):
        x = input__e[i]
        t = target__e[i]
        if log_target:
            valid = t < INFINITY  # False for NaN
            probability = exp(t) if valid else 0.0
            value = probability * (t - x) if probability > 0.0 else 0.0
        else:
            valid = t >= 0.0 and t < INFINITY
            probability = t if valid else 0.0
            value = t * (log(t) - x) if probability > 0.0 else 0.0
        if not valid and bad_position[0] < 0:
            bad_position[0] = i
        total += value
        if loss__e != NULL:
            loss__e[i] = <floating>value
        if grad__e != NULL:
            grad__e[i] = <floating>(-grad_scale * probability) if probability > 0.0 else 0
    return total


cdef object _run_kl_div(const floating* x, const floating* target, bint log_target,
                        floating* loss_out, floating* grad_out, double grad_scale,
                        Py_ssize_t n, int n_threads):
    cdef Py_ssize_t n_blocks = n_blocks_for(n, BLOCK_ELEMENTS)
    cdef int threads = threads_for(n, n_threads)
    cdef Py_ssize_t block, start, bad
    cdef double total
    cdef BlockScratch scratch
    if not scratch_alloc(&scratch, n_blocks):
        scratch_free(&scratch)
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, num_threads=threads, schedule="static",
                            use_threads_if=threads > 1):
            start = block * BLOCK_ELEMENTS
            scratch.loss[block] = _kl_div_block(x, target, log_target, loss_out, grad_out,
                                                grad_scale, start,
                                                min(start + BLOCK_ELEMENTS, n),
                                                &scratch.bad[block])
        total = sum_in_block_order(scratch.loss, n_blocks)
        bad = first_bad_position(scratch.bad, n_blocks)
    scratch_free(&scratch)
    return total, bad


def kl_div_kernel(x, target, bint log_target, loss_out, grad_out, double grad_scale,
                  int n_threads):
    """torch's elementwise kl_div over C-contiguous arrays of one dtype and
    size. Returns ``(sum, first_bad_flat_position)``."""
    cdef int typenum = float_typenum(x)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    if n == 0:
        return 0.0, -1
    cdef void* x_ptr = array_data(x, typenum, n, False)
    cdef void* target_ptr = array_data(target, typenum, n, False)
    cdef void* loss_ptr = array_data(loss_out, typenum, n, True)
    cdef void* grad_ptr = array_data(grad_out, typenum, n, True)
    if typenum == cnp.NPY_FLOAT32:
        return _run_kl_div(<const float*>x_ptr, <const float*>target_ptr, log_target,
                           <float*>loss_ptr, <float*>grad_ptr, grad_scale, n, n_threads)
    return _run_kl_div(<const double*>x_ptr, <const double*>target_ptr, log_target,
                       <double*>loss_ptr, <double*>grad_ptr, grad_scale, n, n_threads)
