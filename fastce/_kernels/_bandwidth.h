/* The memory roofline's measuring stick: a streaming read of a float32
 * array on the kernels' own OpenMP threads. The sum is split over 32 float
 * lanes (8 independent vector chains even at SSE2 width), so the loop runs at
 * the memory's speed rather than at one dependent add per cycle; its order
 * does not matter, only the time is used. */
#ifndef FASTCE_BANDWIDTH_H
#define FASTCE_BANDWIDTH_H

#include <stddef.h>
#include "_omp_compat.h"

#define FASTCE_READ_LANES 32
#define FASTCE_READ_BLOCK 65536

static inline double fastce_read_block(const float *data, ptrdiff_t n)
{
    float lanes[FASTCE_READ_LANES] = {0};
    ptrdiff_t i = 0;
    double total = 0.0;
    for (; i + FASTCE_READ_LANES <= n; i += FASTCE_READ_LANES) {
#pragma omp simd
        for (int lane = 0; lane < FASTCE_READ_LANES; ++lane)
            lanes[lane] += data[i + lane];
    }
    for (; i < n; ++i)
        total += data[i];
    for (int lane = 0; lane < FASTCE_READ_LANES; ++lane)
        total += lanes[lane];
    return total;
}

static inline double fastce_read_sum(const float *data, ptrdiff_t n, int n_threads)
{
    ptrdiff_t n_blocks = (n + FASTCE_READ_BLOCK - 1) / FASTCE_READ_BLOCK;
    double total = 0.0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(static) reduction(+ : total)
#endif
    for (ptrdiff_t block = 0; block < n_blocks; ++block) {
        ptrdiff_t start = block * FASTCE_READ_BLOCK;
        ptrdiff_t stop = start + FASTCE_READ_BLOCK < n ? start + FASTCE_READ_BLOCK : n;
        total += fastce_read_block(data + start, stop - start);
    }
    (void)n_threads;
    return total;
}

#endif
