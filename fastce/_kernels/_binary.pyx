"""Array loops of the binary family (elementwise losses), one for all kinds.

The formulas live in _math_binary_impl.h (``fastce_binary_point``) and its vectorised
chunk loop; this module walks the arrays: blocks of ``BLOCK_ELEMENTS`` flat
elements run in ``prange``, each block in chunks of ``FASTCE_BINARY_CHUNK``
with a float64 partial sum and the value check folded into the same pass.
"""
from cython cimport floating
cimport numpy as cnp
from libc.string cimport memcpy

from fastce._kernels._arrays cimport array_data, float_typenum

from fastce._kernels._blocks cimport BLOCK_ELEMENTS, BlockResult, BlockTotals, run_blocks
from fastce._kernels._vecmath cimport (
    FASTCE_BCE_LOGITS, FASTCE_BCE_PROBS, FASTCE_FOCAL, FASTCE_LOGISTIC, FASTCE_SIGMOID,
    FASTCE_LOG_SIGMOID, FASTCE_BINARY_CHUNK, binary_chunk, fastce_binary_valid,
    fastce_is_valid_weight,
    fastce_exp, fastce_expf, fastce_log1p_unit, fastce_log1pf_unit, fastce_log_normal,
    unary_chunk,
)

# The numpy C-API table (PyArray_SIZE & co. in _arrays.pxd go through it).
cnp.import_array()

BCE_LOGITS = FASTCE_BCE_LOGITS
BCE_PROBS = FASTCE_BCE_PROBS
LOGISTIC = FASTCE_LOGISTIC
SIGMOID = FASTCE_SIGMOID
LOG_SIGMOID = FASTCE_LOG_SIGMOID
FOCAL = FASTCE_FOCAL


cdef inline void _cycle_columns(floating* out, const floating* per_column,
                                Py_ssize_t first_col, Py_ssize_t n_cols,
                                Py_ssize_t n) noexcept nogil:
    """Expand a per-column vector (pos_weight, a (L,) weight) over a chunk."""
    cdef Py_ssize_t i, col = first_col
    for i in range(n):
        out[i] = per_column[col]
        col += 1
        if col == n_cols:
            col = 0


cdef inline const floating* _chunk_values(const floating* values, bint per_column,
                                          floating* chunk, const floating* ones,
                                          Py_ssize_t chunk_start, Py_ssize_t n_cols,
                                          Py_ssize_t n) noexcept nogil:
    """A chunk's weights: ones when absent, the columns' values cycled over the
    chunk when given per column, else the chunk's slice of a full array."""
    if values == NULL:
        return ones
    if per_column:
        _cycle_columns(chunk, values, chunk_start % n_cols, n_cols, n)
        return chunk
    return values + chunk_start


cdef enum:
    # Extra bytes between the chunk buffers of _binary_block (see there): with
    # 1 KiB (float) or 2 KiB (double) buffers, a 192-byte gap keeps every pair
    # of the five at least 384 bytes away from a multiple of 4096.
    CHUNK_GAP_BYTES = 192
    CHUNK_SPACING_BYTES = FASTCE_BINARY_CHUNK * 8 + CHUNK_GAP_BYTES


cdef struct BinaryTask:
    # The arguments of one binary-family call; arrays in the compute dtype.
    int kind
    bint is_double
    const void* x
    const void* target
    const void* weight
    bint weight_per_column
    const void* pos_weight
    bint pos_weight_per_column
    const unsigned char* keep
    Py_ssize_t n_cols
    void* loss
    void* grad
    void* hess
    double grad_scale
    double alpha
    double gamma


cdef inline size_t _phase_distance(size_t a, size_t b) noexcept nogil:
    cdef size_t d = (a - b) & 4095
    return d if d < 4096 - d else 4096 - d


cdef inline floating* _block_sink(void* thread_scratch, const floating* x,
                                  const floating* y) noexcept nogil:
    """Where a block writes the outputs the caller does not keep: this
    thread's scratch, at an address 2 KiB (or 1 or 3 KiB, away from y) from
    x's modulo 4096. A fixed stack buffer would meet the input streams at the
    same address modulo 4096 once every few chunks, and each such load waits
    on a false dependency on the stores ("4K aliasing"): BCE forward took
    1.6x the time of forward+gradient that way."""
    cdef size_t base = (<size_t>thread_scratch + 4095) & ~(<size_t>4095)
    cdef size_t x_phase = <size_t>x & 4095, y_phase = <size_t>y & 4095
    cdef size_t phase = (x_phase + 2048) & 4095, other
    if _phase_distance(phase, y_phase) < 768:
        phase = (x_phase + 1024) & 4095
        other = (x_phase + 3072) & 4095
        if _phase_distance(other, y_phase) > _phase_distance(phase, y_phase):
            phase = other
    return <floating*>(base + phase)


cdef double _binary_block(const floating* x__e, const BinaryTask* task, Py_ssize_t start,
                          Py_ssize_t stop, void* thread_scratch,
                          BlockResult* result) noexcept nogil:
    """Elements [start, stop) of a flat problem with ``task.n_cols`` per row.

    Absent inputs read from a chunk of ones and absent outputs go to the
    block's sink, so the vectorised loop has no branches on them. ``weight`` and
    ``pos_weight`` are either per element (flat, like x) or per column.
    ``keep`` (optional, per element) is optax's ``where``: a False element
    gets weight 0 and, in the chunk's copy, neutral valid inputs, so it adds
    exactly 0 and is never reported, whatever it holds. Returns the float64
    sum; the first invalid element's position and its x go to ``result`` (in
    place, x itself is overwritten by then).
    """
    cdef int kind = task.kind
    cdef const floating* target__e = <const floating*>task.target
    cdef const floating* weight = <const floating*>task.weight
    cdef const floating* pos_weight = <const floating*>task.pos_weight
    cdef const unsigned char* keep__e = task.keep
    cdef floating* loss__e = <floating*>task.loss
    cdef floating* grad__e = <floating*>task.grad
    cdef floating* hess__e = <floating*>task.hess
    cdef Py_ssize_t n_cols = task.n_cols
    # The task's scalars as locals: read through the pointer, they could alias
    # the stores of the chunk loop and be reloaded for every chunk.
    cdef bint weight_per_column = task.weight_per_column
    cdef bint pos_weight_per_column = task.pos_weight_per_column
    cdef double grad_scale = task.grad_scale, alpha = task.alpha, gamma = task.gamma
    # The chunk buffers, carved from one stack area at a spacing that is no
    # multiple of 4 KiB: loads from one buffer (ones, the copies) and stores
    # to another (the discarded outputs) at the same address modulo 4096 stall
    # on a false store-to-load dependency ("4K aliasing"). Measured with the
    # buffers side by side, BCE forward lost 14% to it (129 ms against 111 ms
    # on one thread).
    cdef char area[5 * CHUNK_SPACING_BYTES + 64]
    cdef char* base = <char*>((<size_t>area + 63) & ~(<size_t>63))
    cdef size_t spacing = FASTCE_BINARY_CHUNK * sizeof(floating) + CHUNK_GAP_BYTES
    cdef floating* ones = <floating*>(base)
    cdef floating* weight_chunk = <floating*>(base + spacing)
    cdef floating* pos_weight_chunk = <floating*>(base + 2 * spacing)
    cdef floating* x_chunk = <floating*>(base + 3 * spacing)
    cdef floating* target_chunk = <floating*>(base + 4 * spacing)
    cdef floating* sink = _block_sink(thread_scratch, x__e + start,
                                      target__e + start if target__e != NULL else x__e + start)
    cdef const unsigned char* keep
    cdef const floating* x
    cdef floating* hess
    cdef const floating* w
    cdef const floating* pw
    cdef const floating* y
    cdef floating* loss
    cdef floating* grad
    cdef Py_ssize_t i, chunk_start, n
    cdef double block_loss = 0.0, n_bad
    cdef bint pw_per_element = pos_weight != NULL and not pos_weight_per_column, pw_bad
    for i in range(FASTCE_BINARY_CHUNK):
        ones[i] = 1
    chunk_start = start
    while chunk_start < stop:
        n = min(<Py_ssize_t>FASTCE_BINARY_CHUNK, stop - chunk_start)
        if kind == FASTCE_SIGMOID or kind == FASTCE_LOG_SIGMOID:
            unary_chunk(kind, x__e + chunk_start, loss__e + chunk_start, n)
            chunk_start += n
            continue
        x = x__e + chunk_start
        if grad__e == x__e:
            # In place (grad_out is the data argument): the chunk's inputs are
            # kept, so that the value check below reads them and not the
            # gradient written over them. 1-2 KiB from L1 per chunk.
            memcpy(x_chunk, x, n * sizeof(floating))
            x = x_chunk
        y = target__e + chunk_start
        w = _chunk_values(weight, weight_per_column, weight_chunk, ones, chunk_start, n_cols, n)
        pw = _chunk_values(pos_weight, pos_weight_per_column, pos_weight_chunk, ones,
                           chunk_start, n_cols, n)
        if keep__e != NULL:
            keep = keep__e + chunk_start
            for i in range(n):  # x may already be x_chunk: same index, read first
                x_chunk[i] = x[i] if keep[i] else <floating>0.5
                target_chunk[i] = y[i] if keep[i] else <floating>1
                weight_chunk[i] = w[i] if keep[i] else <floating>0
            x = x_chunk
            y = target_chunk
            w = weight_chunk
        # Outputs the caller does not keep all go to the block's sink, which
        # advances with the chunk like a real output (see _block_sink).
        loss = loss__e + chunk_start if loss__e != NULL else sink + (chunk_start - start)
        grad = grad__e + chunk_start if grad__e != NULL else sink + (chunk_start - start)
        hess = hess__e + chunk_start if hess__e != NULL else sink + (chunk_start - start)
        n_bad = 0.0
        pw_bad = False
        if pw_per_element:
            # A pos_weight of the input's size is data: checked here, in the pass.
            for i in range(n):
                if not fastce_is_valid_weight(pw[i]) and w[i] != 0:
                    pw_bad = True
        block_loss += binary_chunk(kind, x, y, w, pw, loss, grad, hess,
                                   grad_scale, alpha, gamma, n, &n_bad)
        if (n_bad != 0.0 or pw_bad) and result.bad < 0:
            for i in range(n):
                if (not fastce_binary_valid(kind, x[i], y[i], w[i])
                        or (pw_per_element and w[i] != 0
                            and not fastce_is_valid_weight(pw[i]))):
                    result.bad = chunk_start + i
                    result.bad_value = x[i]
                    break
        chunk_start += n
    return block_loss


cdef double _binary_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                         void* thread_scratch, BlockResult* result) noexcept nogil:
    cdef const BinaryTask* binary = <const BinaryTask*>task
    if binary.is_double:
        return _binary_block(<const double*>binary.x, binary, start, stop, thread_scratch,
                             result)
    return _binary_block(<const float*>binary.x, binary, start, stop, thread_scratch, result)


def binary_kernel(int kind, x, target, weight, bint weight_per_column, pos_weight,
                  loss_out, grad_out, hess_out, double grad_scale, Py_ssize_t n_cols,
                  int n_threads, double alpha=0.0, double gamma=0.0,
                  bint pos_weight_per_column=True, where=None):
    """Run one elementwise loss over ``x`` (C-contiguous, ``n_cols`` per row).

    All arrays share x's dtype (float32 or float64) and are C-contiguous;
    ``weight`` has x's size, or ``n_cols`` values when ``weight_per_column``;
    ``pos_weight`` has ``n_cols`` values, or x's size when not
    ``pos_weight_per_column``; ``where`` is an optional uint8 mask of x's size.
    ``None`` may be passed for any optional
    array (``target`` is unused by sigmoid/log_sigmoid, which write into
    ``loss_out``). ``hess_out`` receives the diagonal Hessian (BCE with logits,
    logistic); ``alpha`` and ``gamma`` are the focal loss's. Returns
    ``(loss_sum, first_bad_flat_position, x_there)``, the position -1 when
    every value was valid.
    The GIL is released for the whole pass.
    """
    cdef int typenum = float_typenum(x)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef BinaryTask task
    cdef BlockTotals totals
    if n == 0:
        return 0.0, -1, 0.0
    task.kind = kind
    task.is_double = typenum == cnp.NPY_FLOAT64
    task.x = array_data(x, typenum, n, False)
    task.target = array_data(target, typenum, n, False)
    task.weight = array_data(weight, typenum, n_cols if weight_per_column else n, False)
    task.weight_per_column = weight_per_column
    task.pos_weight = array_data(pos_weight, typenum, n_cols if pos_weight_per_column else n,
                                 False)
    task.pos_weight_per_column = pos_weight_per_column
    task.keep = <const unsigned char*>array_data(where, cnp.NPY_UINT8, n, False)
    task.n_cols = n_cols
    task.loss = array_data(loss_out, typenum, n, True)
    task.grad = array_data(grad_out, typenum, n, True)
    task.hess = array_data(hess_out, typenum, n, True)
    task.grad_scale = grad_scale
    task.alpha = alpha
    task.gamma = gamma
    with nogil:
        # Per thread: a block's worth of sink for the outputs not kept (the
        # unary kinds write straight into their output), and 8 KiB to place it.
        run_blocks(_binary_body, &task, n, BLOCK_ELEMENTS, n, n_threads,
                   BLOCK_ELEMENTS * (8 if task.is_double else 4) + 8192, &totals)
    return totals.loss, totals.bad, totals.bad_value


cdef void _elementary_f64(int which, const double* x, double* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if which == 2:
        for i in range(n):
            out[i] = fastce_log_normal(x[i])
        return
    for i in range(n):
        out[i] = fastce_exp(x[i]) if which == 0 else fastce_log1p_unit(x[i])


cdef void _elementary_f32(int which, const float* x, float* out, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        out[i] = fastce_expf(x[i]) if which == 0 else fastce_log1pf_unit(x[i])


def elementary(str name, x, out):
    """Test hook: the library's own elementary functions, elementwise.

    ``name`` is "exp" (any input), "log1p_unit" (inputs in [0, 1]) or
    "log_normal" (float64 only: positive, finite, normal inputs); ``x`` and
    ``out`` are C-contiguous float32 or float64 arrays of one size. The
    float32 versions are the float polynomials, not the double ones.
    """
    cdef int typenum = float_typenum(x)
    cdef Py_ssize_t n = cnp.PyArray_SIZE(x)
    cdef int which
    if name == "exp":
        which = 0
    elif name == "log1p_unit":
        which = 1
    elif name == "log_normal":
        if typenum != cnp.NPY_FLOAT64:
            raise ValueError("log_normal is a float64 function; got x of dtype "
                             f"{x.dtype}")
        which = 2
    else:
        raise ValueError(f"unknown elementary function {name!r}")
    if n == 0:
        return out
    cdef void* x_ptr = array_data(x, typenum, n, False)
    cdef void* out_ptr = array_data(out, typenum, n, True)
    if typenum == cnp.NPY_FLOAT32:
        _elementary_f32(which, <const float*>x_ptr, <float*>out_ptr, n)
    else:
        _elementary_f64(which, <const double*>x_ptr, <double*>out_ptr, n)
    return out
