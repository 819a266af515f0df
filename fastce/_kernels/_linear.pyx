"""Array loops of fastce.linear: the logistic-regression objective and its
gradient in ONE pass over X.

Each row's margin z = x.w + b, loss and residual r = sigmoid(z) - y are
formed while the row is in cache, and sw r x is added to the gradient of the
row's chunk right away, so X is read once (NumPy's version reads it twice,
X w and then X^T r). Rows are split into a number of chunks that depends on
the shape only (run by _blocks.pxd's run_blocks); each chunk keeps float64
partial sums and its own gradient, combined in chunk order: the result is
bitwise the same for every thread count. The per-element loss is the binary family's (_math_binary_impl.h).
"""
import numpy as np

from cython cimport floating
cimport numpy as cnp
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free

from fastce._kernels._arrays cimport array_data, float_typenum
from fastce._kernels._blocks cimport BlockResult, BlockTotals, run_blocks
from fastce._kernels._vecmath cimport (
    axpy, dot, dot_mixed, fastce_is_valid_weight, fastce_logistic_terms,
)

# The numpy C-API table (PyArray_SIZE & co. in _arrays.pxd go through it).
cnp.import_array()

cdef enum:
    # Rows handled together: their margins first, then their loss terms in one
    # vectorised loop, then the gradient from the same (still cached) rows.
    BLOCK_ROWS = 64
    MAX_CHUNKS = 64
    MIN_CHUNK_ROWS = 1024


cdef void _logistic_chunk(
    const floating* X, bint f_order, const floating* data, const int64_t* indices,
    const int64_t* indptr, Py_ssize_t n_samples, Py_ssize_t n_features,
    const floating* y, const floating* sample_weight, const floating* coef, double intercept,
    double* grad, Py_ssize_t start, Py_ssize_t stop, double* sums, Py_ssize_t* bad_row,
) noexcept nogil:
    """Rows [start, stop), in blocks of BLOCK_ROWS rows that stay in cache:
    (1) the margins of the block's rows, (2) their loss terms and residuals,
    vectorised across rows, (3) grad += sum sw r x from the same rows.
    sums = (sum sw l, sum sw, sum sw r, number of invalid rows)."""
    cdef Py_ssize_t row, j, k, block_start, block_rows, b
    cdef double coef_j, label, weight
    cdef double margins[BLOCK_ROWS]
    cdef double residuals[BLOCK_ROWS]
    cdef double labels[BLOCK_ROWS]
    cdef double weights[BLOCK_ROWS]
    cdef double losses[BLOCK_ROWS]
    cdef double invalid_before
    cdef const floating* column
    bad_row[0] = -1
    sums[0] = sums[1] = sums[2] = sums[3] = 0.0
    block_start = start
    while block_start < stop:
        block_rows = min(<Py_ssize_t>BLOCK_ROWS, stop - block_start)
        # (1) margins z = x . coef + intercept
        if f_order:
            for b in range(block_rows):
                margins[b] = intercept
            for j in range(n_features):
                column = X + j * n_samples + block_start
                coef_j = coef[j]
                for b in range(block_rows):
                    margins[b] += <double>column[b] * coef_j
        elif data != NULL:
            for b in range(block_rows):
                row = block_start + b
                margins[b] = intercept
                for k in range(indptr[row], indptr[row + 1]):
                    margins[b] += <double>data[k] * coef[indices[k]]
        else:
            for b in range(block_rows):
                margins[b] = intercept + dot(X + (block_start + b) * n_features, coef,
                                             n_features)
        # (2) loss terms and residuals, checking y and the weights on the way
        for b in range(block_rows):
            labels[b] = y[block_start + b]
            weights[b] = sample_weight[block_start + b] if sample_weight != NULL else 1.0
        invalid_before = sums[3]
        fastce_logistic_terms(margins, labels, weights, residuals, losses, block_rows, sums)
        if sums[3] != invalid_before and bad_row[0] < 0:
            for b in range(block_rows):
                label, weight = labels[b], weights[b]
                if not ((label == 0.0 or label == 1.0) and fastce_is_valid_weight(weight)):
                    bad_row[0] = block_start + b
                    break
        # (3) the gradient, from the rows just read
        if grad != NULL:
            if f_order:
                for j in range(n_features):
                    grad[j] += dot_mixed(X + j * n_samples + block_start, residuals,
                                         block_rows)
            elif data != NULL:
                for b in range(block_rows):
                    row = block_start + b
                    for k in range(indptr[row], indptr[row + 1]):
                        grad[indices[k]] += residuals[b] * <double>data[k]
            else:
                for b in range(block_rows):
                    if residuals[b] != 0.0:
                        axpy(grad, residuals[b], X + (block_start + b) * n_features,
                             n_features)
        block_start += block_rows


cdef struct LogisticTask:
    # One logistic-objective pass; float arrays in the compute dtype. Each
    # chunk of ``chunk_rows`` rows writes its 4 sums and its gradient into
    # ``sums`` and ``grads`` at its own index, combined in chunk order after.
    bint is_double
    const void* X
    bint f_order
    const void* data
    const int64_t* indices
    const int64_t* indptr
    Py_ssize_t n_samples
    Py_ssize_t n_features
    const void* y
    const void* sample_weight
    const void* coef
    double intercept
    double* grads
    double* sums
    Py_ssize_t chunk_rows


cdef double _logistic_typed(const floating* X, const LogisticTask* task, Py_ssize_t start,
                            Py_ssize_t stop, BlockResult* result) noexcept nogil:
    cdef Py_ssize_t chunk = start // task.chunk_rows
    _logistic_chunk(X, task.f_order, <const floating*>task.data, task.indices, task.indptr,
                    task.n_samples, task.n_features, <const floating*>task.y,
                    <const floating*>task.sample_weight, <const floating*>task.coef,
                    task.intercept,
                    task.grads + chunk * task.n_features if task.grads != NULL else NULL,
                    start, stop, task.sums + 4 * chunk, &result.bad)
    return 0.0


cdef double _logistic_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                           void* thread_scratch, BlockResult* result) noexcept nogil:
    cdef const LogisticTask* logistic = <const LogisticTask*>task
    if logistic.is_double:
        return _logistic_typed(<const double*>logistic.X, logistic, start, stop, result)
    return _logistic_typed(<const float*>logistic.X, logistic, start, stop, result)


def logistic_kernel(X, bint f_order, data, indices, indptr, Py_ssize_t n_samples,
                    Py_ssize_t n_features, y, sample_weight, coef, double intercept,
                    bint with_grad, int n_threads):
    """One pass of the logistic objective over dense X (C order, or F order
    passed as its C-ordered transpose with ``f_order``) or CSR (data, int64
    indices and indptr; X None). All float arrays share one dtype.

    Returns ``(sum sw l, sum sw, grad or None, sum sw r, first_bad_row)`` with
    grad = sum sw r x as float64 (n_features,).
    """
    cdef object reference = X if X is not None else data
    cdef int typenum = float_typenum(reference)
    cdef LogisticTask task
    cdef BlockTotals totals
    cdef Py_ssize_t n_chunks = max(1, min(<Py_ssize_t>MAX_CHUNKS, n_samples // MIN_CHUNK_ROWS))
    cdef Py_ssize_t chunk, j
    cdef double loss_sum = 0.0, weight_sum = 0.0, residual_sum = 0.0
    cdef cnp.ndarray grad_total
    cdef double* grad_out
    task.is_double = typenum == cnp.NPY_FLOAT64
    task.X = array_data(X, typenum, n_samples * n_features, False)
    task.f_order = f_order
    task.data = array_data(data, typenum, cnp.PyArray_SIZE(data) if data is not None else 0,
                           False)
    task.indices = <const int64_t*>array_data(
        indices, cnp.NPY_INT64, cnp.PyArray_SIZE(indices) if indices is not None else 0, False)
    task.indptr = <const int64_t*>array_data(
        indptr, cnp.NPY_INT64, n_samples + 1 if indptr is not None else 0, False)
    task.n_samples = n_samples
    task.n_features = n_features
    task.y = array_data(y, typenum, n_samples, False)
    task.sample_weight = array_data(sample_weight, typenum, n_samples, False)
    task.coef = array_data(coef, typenum, n_features, False)
    task.intercept = intercept
    if data is not None and task.data == NULL:
        task.data = task.coef  # an all-zero CSR matrix: a non-NULL marker, never read
    if n_samples == 0:
        return 0.0, 0.0, np.zeros(n_features, dtype=np.float64), 0.0, -1
    task.chunk_rows = (n_samples + n_chunks - 1) // n_chunks
    grad_total = np.zeros(n_features, dtype=np.float64)
    grad_out = <double*>cnp.PyArray_DATA(grad_total)
    task.sums = <double*>calloc(4 * n_chunks, sizeof(double))
    task.grads = NULL
    if with_grad:
        task.grads = <double*>calloc(n_chunks * max(n_features, 1), sizeof(double))
    if task.sums == NULL or (with_grad and task.grads == NULL):
        free(task.sums)
        free(task.grads)
        raise MemoryError()
    with nogil:
        run_blocks(_logistic_body, &task, n_samples, task.chunk_rows,
                   n_samples * max(n_features, 1), n_threads, 0, &totals)
        for chunk in range(n_chunks):
            loss_sum += task.sums[4 * chunk]
            weight_sum += task.sums[4 * chunk + 1]
            residual_sum += task.sums[4 * chunk + 2]
            if task.grads != NULL:
                for j in range(n_features):
                    grad_out[j] += task.grads[chunk * n_features + j]
    free(task.sums)
    free(task.grads)
    return loss_sum, weight_sum, grad_total if with_grad else None, residual_sum, totals.bad
