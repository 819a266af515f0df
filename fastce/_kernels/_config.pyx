"""Build-time facts about the compiled kernels (OpenMP, thread defaults)."""
from fastce._kernels._blocks cimport (
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


cdef extern from "_cpu.h":
    int FASTCE_X86
    int fastce_cpu_has_x86_64_v2()
    int fastce_cpu_has_avx2()
    int fastce_cpu_has_avx512()

IS_X86 = bool(FASTCE_X86)


def cpu_features():
    """Which SIMD builds of the kernels this CPU can run."""
    return {
        "x86-64-v2": bool(fastce_cpu_has_x86_64_v2()),
        "avx2": bool(fastce_cpu_has_avx2()),
        "avx512": bool(fastce_cpu_has_avx512()),
    }
