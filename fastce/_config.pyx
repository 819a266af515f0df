"""Build-time facts about the compiled kernels (OpenMP, thread defaults)."""
from fastce._blocks cimport (
    FASTCE_HAVE_OPENMP, FASTCE_OPENMP_VERSION, PARALLEL_MIN_ELEMENTS,
    BLOCK_ELEMENTS, omp_get_max_threads,
)

HAVE_OPENMP = bool(FASTCE_HAVE_OPENMP)
OPENMP_VERSION = int(FASTCE_OPENMP_VERSION)
PARALLEL_THRESHOLD = int(PARALLEL_MIN_ELEMENTS)
BLOCK_SIZE = int(BLOCK_ELEMENTS)


def max_threads():
    """omp_get_max_threads(): follows OMP_NUM_THREADS and threadpoolctl."""
    return omp_get_max_threads()
