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


from libc.stdlib cimport calloc, free
from cython.parallel cimport prange, threadid


# ------------------------------------------------------------- the runner
#
# Every array loop runs through run_blocks: it owns the determinism (fixed
# blocks, float64 partials added in block order), the serial threshold, the
# scratch (per block and per thread) and the first-bad-position rule. A
# family supplies a task (a struct of its arguments, with the compute dtype)
# and a block body, which computes blocks [start, stop) of its items.

cdef struct BlockResult:
    # What one block reports besides its loss sum: a second float64 sum (the
    # "mean" denominator), its first offending position (-1 when none) and a
    # value to report with it (the input there, when an output may overwrite it).
    double weight
    Py_ssize_t bad
    double bad_value


ctypedef double (*BlockBody)(const void* task, Py_ssize_t start, Py_ssize_t stop,
                             void* thread_scratch, BlockResult* result) noexcept nogil


cdef struct BlockTotals:
    double loss
    double weight
    Py_ssize_t bad
    double bad_value


cdef inline int run_blocks(BlockBody body, const void* task, Py_ssize_t n_items,
                           Py_ssize_t block_items, Py_ssize_t n_elements, int n_threads,
                           size_t thread_scratch_bytes, BlockTotals* totals) except -1 nogil:
    """Run ``body`` over ``n_items`` in blocks of ``block_items`` (a function
    of the shape only), on up to ``n_threads`` threads when the call has at
    least PARALLEL_MIN_ELEMENTS elements (``n_elements``). ``thread_scratch_bytes``
    of scratch are given to each thread. The totals are bitwise the same for
    every thread count."""
    cdef Py_ssize_t n_blocks = n_blocks_for(n_items, block_items)
    cdef int threads = threads_for(n_elements, n_threads)
    cdef Py_ssize_t block, start
    cdef double* losses = <double*>calloc(n_blocks + 1, sizeof(double))
    cdef BlockResult* results = <BlockResult*>calloc(n_blocks + 1, sizeof(BlockResult))
    cdef char* thread_scratch = NULL
    if thread_scratch_bytes:
        thread_scratch = <char*>calloc(threads * thread_scratch_bytes + 1, 1)
    if losses == NULL or results == NULL or (thread_scratch_bytes and thread_scratch == NULL):
        free(losses)
        free(results)
        free(thread_scratch)
        with gil:
            raise MemoryError()
    for block in prange(n_blocks, num_threads=threads, schedule="static",
                        use_threads_if=threads > 1):
        start = block * block_items
        results[block].bad = -1
        losses[block] = body(task, start, min(start + block_items, n_items),
                             thread_scratch + threadid() * thread_scratch_bytes
                             if thread_scratch != NULL else NULL, &results[block])
    totals.loss = 0.0
    totals.weight = 0.0
    totals.bad = -1
    totals.bad_value = 0.0
    for block in range(n_blocks):
        # Blocks cover increasing positions: the first flagged block holds the
        # first offending position of the whole array.
        totals.loss += losses[block]
        totals.weight += results[block].weight
        if totals.bad < 0 and results[block].bad >= 0:
            totals.bad = results[block].bad
            totals.bad_value = results[block].bad_value
    free(losses)
    free(results)
    free(thread_scratch)
    return 0
