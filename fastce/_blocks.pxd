# Work partitioning shared by every array loop.
#
# The loops run ``prange`` over fixed-size blocks of rows (or elements). The
# block size depends only on the problem shape, never on the thread count, and
# each block keeps its own float64 partial sum; the partials are then added in
# block order. That makes every result bitwise identical for any n_threads.

cdef extern from "_omp_compat.h":
    int omp_get_max_threads() noexcept nogil
    int FASTCE_HAVE_OPENMP
    int FASTCE_OPENMP_VERSION

cdef enum:
    # Elements per block: large enough to amortise the scheduling, small
    # enough (64 KiB of float32) that a block's rows stay in L2 between the
    # passes of a row kernel and that 2 threads get balanced work.
    BLOCK_ELEMENTS = 16384
    # Below this many elements a call runs on one thread: waking the OpenMP
    # team costs more than the work. Measured: at 2 blocks (32768 elements)
    # 2 threads already win for ce-10 and BCE (e.g. 185 vs 356 us); below,
    # there is only one block anyway.
    PARALLEL_MIN_ELEMENTS = 32768
    # Rows at least this long, when there are fewer than LONG_ROW_MAX_ROWS of
    # them, are split across threads in segments of BLOCK_ELEMENTS classes.
    LONG_ROW_CLASSES = 65536
    LONG_ROW_MAX_ROWS = 64
    # Rows per block of the loops that read one value per sample (labels,
    # sample weights): the per-row work is a few instructions.
    LABEL_BLOCK_ROWS = 4096


# Every prange passes use_threads_if=threads > 1: with one thread no OpenMP
# region is entered at all (num_threads=1 still starts one, which measured
# 0.5 us of a 64 x 10 call's 2.4 us in the kernel).
cdef inline int threads_for(Py_ssize_t n_elements, int n_threads) noexcept nogil:
    if n_elements < PARALLEL_MIN_ELEMENTS:
        return 1
    return n_threads


cdef inline Py_ssize_t rows_per_block(Py_ssize_t n_cols) noexcept nogil:
    if n_cols >= BLOCK_ELEMENTS:
        return 1
    return BLOCK_ELEMENTS // n_cols


cdef inline Py_ssize_t n_blocks_for(Py_ssize_t n_items, Py_ssize_t block) noexcept nogil:
    return (n_items + block - 1) // block


cdef inline double sum_in_block_order(const double* partials, Py_ssize_t n_blocks) noexcept nogil:
    cdef double total = 0.0
    cdef Py_ssize_t block
    for block in range(n_blocks):
        total += partials[block]
    return total


cdef inline Py_ssize_t first_bad_position(const Py_ssize_t* bad, Py_ssize_t n_blocks) noexcept nogil:
    # Blocks cover increasing positions, so the first flagged block holds the
    # first offending position of the whole array.
    cdef Py_ssize_t block
    for block in range(n_blocks):
        if bad[block] >= 0:
            return bad[block]
    return -1


from libc.stdlib cimport calloc, free


cdef struct BlockScratch:
    # Per-block float64 partials (two sums: loss and weight) and the first
    # offending position found by each block (-1 when none).
    double* loss
    double* weight
    Py_ssize_t* bad


cdef inline bint scratch_alloc(BlockScratch* scratch, Py_ssize_t n_blocks) noexcept nogil:
    # +1 so that zero blocks still allocate.
    scratch.loss = <double*>calloc(n_blocks + 1, sizeof(double))
    scratch.weight = <double*>calloc(n_blocks + 1, sizeof(double))
    scratch.bad = <Py_ssize_t*>calloc(n_blocks + 1, sizeof(Py_ssize_t))
    return scratch.loss != NULL and scratch.weight != NULL and scratch.bad != NULL


cdef inline void scratch_free(BlockScratch* scratch) noexcept nogil:
    free(scratch.loss)
    free(scratch.weight)
    free(scratch.bad)
