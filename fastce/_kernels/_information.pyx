"""Array loops of the information measures (entropy, KL, JS, cross-entropy
of probabilities). The per-term formulas live in _math_information.h
(``fastce_information_term``); each row's terms are summed in float64 and
the values checked (in [0, 1], not NaN) in the same pass.
"""
from cython cimport floating
cimport numpy as cnp
from libc.math cimport exp, log, INFINITY

from fastce._kernels._arrays cimport array_data, float_typenum
from fastce._kernels._blocks cimport (
    BLOCK_ELEMENTS, BlockResult, BlockTotals, rows_per_block, run_blocks,
)
from fastce._kernels._vecmath cimport (
    FASTCE_CATEGORICAL_CE, FASTCE_ENTROPY, FASTCE_JS, FASTCE_KL, fastce_information_term,
)

# The numpy C-API table (PyArray_SIZE & co. in _arrays.pxd go through it).
cnp.import_array()

ENTROPY = FASTCE_ENTROPY
KL = FASTCE_KL
JS = FASTCE_JS
CATEGORICAL_CE = FASTCE_CATEGORICAL_CE
# InformationTask.kind of an elementwise kl_div call (the measures' kinds are >= 0).
cdef enum:
    _ELEMENTWISE_KL_DIV = -1


cdef struct InformationTask:
    # One information-measure call (``q`` NULL for the entropy), or one
    # elementwise kl_div call (``q`` is its target); arrays in the compute dtype.
    int kind
    bint is_double
    const void* p
    const void* q
    Py_ssize_t n_classes
    double scale
    void* values
    void* grad
    bint log_target


cdef double _information_rows(const floating* p__nc, const InformationTask* task,
                              Py_ssize_t row_start, Py_ssize_t row_stop,
                              BlockResult* result) noexcept nogil:
    """Rows [row_start, row_stop): value_n = scale * sum_c term(p_nc, q_nc).

    ``q`` is NULL for the entropy. A row with an invalid value (outside
    [0, 1], or NaN) is reported and counted as 0.
    """
    cdef const floating* q__nc = <const floating*>task.q
    cdef floating* value__n = <floating*>task.values
    cdef Py_ssize_t n_classes = task.n_classes
    cdef Py_ssize_t row, c, index
    cdef double total = 0.0, row_value, p, q = 0.0
    for row in range(row_start, row_stop):
        row_value = 0.0
        for c in range(n_classes):
            index = row * n_classes + c
            p = p__nc[index]
            if q__nc != NULL:
                q = q__nc[index]
            if not (p >= 0.0 and p <= 1.0 and q >= 0.0 and q <= 1.0):
                if result.bad < 0:
                    result.bad = index
                row_value = 0.0
                break
            row_value += fastce_information_term(task.kind, p, q)
        row_value = row_value * task.scale
        total += row_value
        if value__n != NULL:
            value__n[row] = <floating>row_value
    return total


def information_kernel(int kind, p, q, Py_ssize_t n_classes, double scale, value_out,
                       int n_threads):
    """One information measure per row of C-contiguous (rows, n_classes) ``p``
    (and ``q``, None for the entropy), times ``scale`` (1/log(base)).

    ``value_out`` (one per row, or None) has p's dtype. Returns
    ``(sum_of_row_values, first_bad_flat_position)``.
    """
    cdef Py_ssize_t size = cnp.PyArray_SIZE(p)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    cdef InformationTask task
    if n_rows == 0:
        return 0.0, -1
    task.kind = kind
    task.n_classes = n_classes
    task.scale = scale
    return _run(&task, p, q, value_out, None, n_rows, rows_per_block(n_classes), n_threads)


# ------------------------------------------------ torch's elementwise kl_div

cdef double _kl_div_block(const floating* input__e, const InformationTask* task,
                          Py_ssize_t start, Py_ssize_t stop, BlockResult* result) noexcept nogil:
    """Elements [start, stop): t (log t - x), or exp(t) (t - x) with
    ``log_target``; the gradient -s t. A zero target term is exactly 0 (and
    its gradient), even where x is -inf or NaN. Each element is read before
    its gradient is written, so the gradient may alias the input."""
    cdef const floating* target__e = <const floating*>task.q
    cdef floating* loss__e = <floating*>task.values
    cdef floating* grad__e = <floating*>task.grad
    cdef Py_ssize_t i
    cdef double x, t, probability, value, total = 0.0
    cdef bint valid
    for i in range(start, stop):
        x = input__e[i]
        t = target__e[i]
        if task.log_target:
            valid = t < INFINITY  # False for NaN
            probability = exp(t) if valid else 0.0
            value = probability * (t - x) if probability > 0.0 else 0.0
        else:
            valid = t >= 0.0 and t < INFINITY
            probability = t if valid else 0.0
            value = t * (log(t) - x) if probability > 0.0 else 0.0
        if not valid and result.bad < 0:
            result.bad = i
        total += value
        if loss__e != NULL:
            loss__e[i] = <floating>value
        if grad__e != NULL:
            grad__e[i] = <floating>(-task.scale * probability) if probability > 0.0 else 0
    return total


cdef double _information_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                              void* thread_scratch, BlockResult* result) noexcept nogil:
    """The block body of both calls: rows of a measure, or elements of kl_div."""
    cdef const InformationTask* measure = <const InformationTask*>task
    if measure.kind == _ELEMENTWISE_KL_DIV:
        if measure.is_double:
            return _kl_div_block(<const double*>measure.p, measure, start, stop, result)
        return _kl_div_block(<const float*>measure.p, measure, start, stop, result)
    if measure.is_double:
        return _information_rows(<const double*>measure.p, measure, start, stop, result)
    return _information_rows(<const float*>measure.p, measure, start, stop, result)


def kl_div_kernel(x, target, bint log_target, loss_out, grad_out, double grad_scale,
                  int n_threads):
    """torch's elementwise kl_div over C-contiguous arrays of one dtype and
    size. Returns ``(sum, first_bad_flat_position)``."""
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef InformationTask task
    if n == 0:
        return 0.0, -1
    task.kind = _ELEMENTWISE_KL_DIV
    task.log_target = log_target
    task.scale = grad_scale
    return _run(&task, x, target, loss_out, grad_out, n, BLOCK_ELEMENTS, n_threads)


cdef tuple _run(InformationTask* task, p, q, values_out, grad_out, Py_ssize_t n_values,
                Py_ssize_t block, int n_threads):
    """Point ``task`` at the arrays (p's dtype and size; ``n_values`` rows or elements
    of ``values_out``) and run it. Returns ``(sum, first_bad_flat_position)``."""
    cdef int typenum = float_typenum(p)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(p)
    cdef BlockTotals totals
    task.is_double = typenum == cnp.NPY_FLOAT64
    task.p = array_data(p, typenum, size, False)
    task.q = array_data(q, typenum, size, False)
    task.values = array_data(values_out, typenum, n_values, True)
    task.grad = array_data(grad_out, typenum, size, True)
    with nogil:
        run_blocks(_information_body, task, n_values, block, size, n_threads, 0, &totals)
    return totals.loss, totals.bad
