"""Build-time facts about the compiled kernels (OpenMP, thread defaults), and
the streaming read that measures the memory roofline."""
cimport numpy as cnp
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


cdef extern from "_bandwidth.h" nogil:
    double fastce_read_sum(const float* data, Py_ssize_t n, int n_threads)

cnp.import_array()


def read_sum(data, int n_threads):
    """Sum of a C-contiguous float32 array, read once on ``n_threads`` OpenMP
    threads (``omp parallel for simd``): time it for the read bandwidth. The
    order of the additions is unspecified, so the value is for timing only."""
    cdef cnp.ndarray array = <cnp.ndarray?>data
    cdef const float* pointer
    cdef Py_ssize_t n = cnp.PyArray_SIZE(array)
    cdef double total
    if cnp.PyArray_TYPE(array) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(array):
        raise ValueError("read_sum needs a C-contiguous float32 array")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    pointer = <const float*>cnp.PyArray_DATA(array)
    with nogil:
        total = fastce_read_sum(pointer, n, n_threads)
    return total
