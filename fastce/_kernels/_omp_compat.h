/* OpenMP shim: the kernels call omp_get_max_threads() through this header so
 * that a build without OpenMP (where prange degrades to a serial loop) still
 * compiles and links, and reports itself as serial. */
#ifndef FASTCE_OMP_COMPAT_H
#define FASTCE_OMP_COMPAT_H

#ifdef _OPENMP
#include <omp.h>
#define FASTCE_HAVE_OPENMP 1
#define FASTCE_OPENMP_VERSION _OPENMP
#else
#define FASTCE_HAVE_OPENMP 0
#define FASTCE_OPENMP_VERSION 0
static inline int omp_get_max_threads(void) { return 1; }
#endif

#endif
