/* The scalar building blocks of fastce's math: vectorisable exp / log1p, the
 * row exps, the constants shared by several families, and the helpers that
 * spell the SIMD pragmas.
 *
 * Why these functions exist: glibc's exp/log1p are scalar calls (about
 * 0.45 G/s per core), and GCC will not vectorise a loop that calls them
 * without -ffast-math, which fastce must not use (it breaks NaN/inf
 * semantics). The functions below are range reduction plus a polynomial in
 * plain arithmetic that GCC inlines and vectorises.
 *
 * Part of _vecmath.h (the umbrella that the .pxd files include).
 */
#ifndef FASTCE_MATH_SCALAR_H
#define FASTCE_MATH_SCALAR_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stddef.h>

/* setup.py compiles with -fopenmp-simd (or -fopenmp), which honours these
 * pragmas even in a build without OpenMP threads. The reduction clause lets
 * GCC reassociate that one sum or max into vector lanes; the order is fixed
 * by the code, so results stay bitwise identical for every thread count. */
#define FASTCE_STR(...) #__VA_ARGS__
#define FASTCE_SIMD_REDUCTION(...) _Pragma(FASTCE_STR(omp simd reduction(__VA_ARGS__)))
#define FASTCE_SIMD _Pragma("omp simd")

/* Forces a helper inline, so that a constant argument (a loss kind, a dtype
 * flag) folds at each call site into one specialised, vectorised copy. */
#if defined(_MSC_VER)
#define FASTCE_ALWAYS_INLINE __forceinline
#define FASTCE_NOINLINE __declspec(noinline)
#else
#define FASTCE_ALWAYS_INLINE inline __attribute__((always_inline))
#define FASTCE_NOINLINE __attribute__((noinline))
#endif

/* A hint to fetch the cache lines of [start, start + n_bytes) ahead of use (a row
 * kernel fetches the next row while it computes the exps of this one, so that
 * memory and arithmetic overlap). A prefetch never faults, even past an array. */
#if defined(__GNUC__) || defined(__clang__)
static inline void fastce_prefetch(const void *start, size_t n_bytes)
{
    for (size_t offset = 0; offset < n_bytes; offset += 64)
        __builtin_prefetch((const char *)start + offset, 0, 3);
}
#else
static inline void fastce_prefetch(const void *start, size_t n_bytes)
{
    (void)start;
    (void)n_bytes;
}
#endif

/* torch clamps log(p) at -100 (binary_cross_entropy; the information
 * measures' cross-entropy follows it) so that p in {0, 1} gives a finite
 * loss. */
#define FASTCE_LOG_CLAMP (-100.0)

/* exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln2 / 2, and a Taylor
 * polynomial: degree 13 for double (truncation < 5e-18 relative), degree 7
 * for float (< 5e-9). n is rounded by adding 1.5 * 2^52 (1.5 * 2^23), exact
 * without -ffast-math, and read back from the low mantissa bits of that sum.
 * NaN propagates (comparisons with NaN are false).
 *
 * The steps are written once: reduce (x -> r and the shifted n), the
 * polynomial, and 2^n as an exponent field. fastce_exp / fastce_expf clamp
 * and apply 2^n as two normal factors 2^(n/2) 2^(n-n/2), so that subnormal
 * results come out right and nothing overflows early: past the clamp the
 * products round to 0 or inf by themselves, -inf gives 0, +inf gives inf.
 * The row exps (below) need neither. */
static inline double fastce_exp_reduce(double x, int64_t *n_out)
{
    const double log2e = 1.4426950408889634;
    const double ln2_hi = 6.93147180369123816490e-01; /* trailing zeros: n*ln2_hi exact */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double shifter = 6755399441055744.0;        /* 1.5 * 2^52 */
    double shifted = x * log2e + shifter;
    double n = shifted - shifter;
    int64_t shifted_bits;
    memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
    /* The low mantissa bits of `shifted` hold n in two's complement. */
    *n_out = shifted_bits - (int64_t)0x4338000000000000LL;
    return (x - n * ln2_hi) - n * ln2_lo;
}

static inline double fastce_exp_poly(double r)
{
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    return p * r + 1.0;
}

static inline double fastce_exp2_int(int64_t n) /* 2^n, for a normal 2^n */
{
    int64_t bits = (n + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale;
}

static inline double fastce_exp(double x)
{
    double clamped = x < -746.0 ? -746.0 : x;
    clamped = clamped > 710.0 ? 710.0 : clamped;
    int64_t n;
    double p = fastce_exp_poly(fastce_exp_reduce(clamped, &n));
    return (p * fastce_exp2_int(n >> 1)) * fastce_exp2_int(n - (n >> 1));
}

static inline float fastce_expf_reduce(float x, int32_t *n_out)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;                 /* 9 bits: n*ln2_hi exact */
    const float ln2_lo = -2.12194440e-4f;
    const float shifter = 12582912.0f;                 /* 1.5 * 2^23 */
    float shifted = x * log2e + shifter;
    float n = shifted - shifter;
    int32_t shifted_bits;
    memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
    *n_out = shifted_bits - (int32_t)0x4B400000;
    return (x - n * ln2_hi) - n * ln2_lo;
}

static inline float fastce_expf_poly(float r)
{
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    return p * r + 1.0f;
}

static inline float fastce_exp2f_int(int32_t n) /* 2^n, for a normal 2^n */
{
    int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return scale;
}

static inline float fastce_expf(float x)
{
    float clamped = x < -104.0f ? -104.0f : x;
    clamped = clamped > 89.0f ? 89.0f : clamped;
    int32_t n;
    float p = fastce_expf_poly(fastce_expf_reduce(clamped, &n));
    return (p * fastce_exp2f_int(n >> 1)) * fastce_exp2f_int(n - (n >> 1));
}

/* exp of a row's (z - row_max) <= 0. Terms below the smallest normal are
 * returned as exactly 0 (masked -inf entries give 0 as they must): next to
 * the row's largest term, 1, they cannot change any rounded sum, and forming
 * subnormals would slow the loop several times. On [-708, 0] ([-87, 0]) every
 * result is normal, so 2^n is one factor: the same value as fastce_exp's, with
 * one clamp and one multiply less. NaN propagates. */
static inline double fastce_row_exp_f64(double shifted)
{
    double clamped = shifted < -708.0 ? -708.0 : shifted;
    int64_t n;
    double value = fastce_exp_poly(fastce_exp_reduce(clamped, &n)) * fastce_exp2_int(n);
    return shifted < -708.0 ? 0.0 : value;
}

static inline float fastce_row_exp_f32(float shifted)
{
    float clamped = shifted < -87.0f ? -87.0f : shifted;
    int32_t n;
    float value = fastce_expf_poly(fastce_expf_reduce(clamped, &n)) * fastce_exp2f_int(n);
    return shifted < -87.0f ? 0.0f : value;
}

/* log1p(u) for u in [0, 1] (as u = exp(-|t|) in softplus): with
 * s = u / (2 + u) in [0, 1/3], log1p(u) = 2 atanh(s) = 2 (s + s^3/3 + ...).
 * Terms up to s^35 bring the truncation under 1e-17 relative; the series
 * keeps full relative accuracy as u -> 0. NaN propagates. */
static inline double fastce_log1p_unit(double u)
{
    double s = u / (2.0 + u);
    double s2 = s * s;
    double p = 1.0 / 35.0;
    p = p * s2 + 1.0 / 33.0;
    p = p * s2 + 1.0 / 31.0;
    p = p * s2 + 1.0 / 29.0;
    p = p * s2 + 1.0 / 27.0;
    p = p * s2 + 1.0 / 25.0;
    p = p * s2 + 1.0 / 23.0;
    p = p * s2 + 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    /* Below 2^-54, log1p(u) = u - u^2/2 rounds to u. Returned as it is, since
     * for a subnormal u (softplus of a large |t|) the halving in s would
     * round away its last bit. */
    return u < 0x1p-54 ? u : 2.0 * s * p;
}

/* The same series to s^17 for float: truncation < 3e-9 relative. */
static inline float fastce_log1pf_unit(float u)
{
    float s = u / (2.0f + u);
    float s2 = s * s;
    float p = 1.0f / 17.0f;
    p = p * s2 + 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return u < 0x1p-25f ? u : 2.0f * s * p; /* as above */
}

/* log(u) for a positive, finite, normal u, vectorisable: u = m 2^k with m in
 * [sqrt(1/2), sqrt(2)), s = (m-1)/(m+1), |s| <= 0.1716, log(u) = k ln2 +
 * 2 atanh(s), the series to s^21 (truncation < 3e-17). */
static inline double fastce_log_normal(double u)
{
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    uint64_t bits, k_field;
    memcpy(&bits, &u, sizeof bits);
    /* Exponent of u relative to [sqrt(1/2), sqrt(2)): shift by the offset of
     * sqrt(1/2)'s mantissa so that m lands in that interval. */
    bits -= (uint64_t)0x3fe6a09e667f3bcdULL;
    /* k = the signed top 12 bits of bits, as a double. Formed with logical
     * shifts and an exponent-field trick (k + 2048 placed in the mantissa of
     * 2^52), never an int64 -> double conversion or a 64-bit arithmetic shift:
     * AVX2 has neither, and with them GCC left this function scalar there. */
    k_field = ((bits ^ ((uint64_t)1 << 63)) >> 52) | (uint64_t)0x4330000000000000ULL;
    bits = (bits & (uint64_t)0x000fffffffffffffULL) + (uint64_t)0x3fe6a09e667f3bcdULL;
    double m, k_biased;
    memcpy(&m, &bits, sizeof m);
    memcpy(&k_biased, &k_field, sizeof k_biased);
    double s = (m - 1.0) / (m + 1.0);
    double s2 = s * s;
    double p = 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    double kd = k_biased - (0x1p52 + 2048.0); /* exact: k + 2048 - 2048 */
    return kd * ln2_hi + (2.0 * s * p + kd * ln2_lo);
}

/* log1p(x) for x > -1 with 1 + x normal, vectorisable: with u = 1 + x rounded,
 * log1p(x) = log(u) * x / (u - 1), the exact correction of the rounding of u. */
static inline double fastce_log1p_normal(double x)
{
    double u = 1.0 + x;
    return u == 1.0 ? x : fastce_log_normal(u) * (x / (u - 1.0));
}

/* log1p(x) for x >= 0 (a row's log of its sum of exps, in the short-row
 * kernels, where one libm call per row was 18% of the time). NaN and +inf
 * pass through. */
static inline double fastce_log1p_nonneg(double x)
{
    double result = fastce_log1p_normal(x);
    return (x != x || x == INFINITY) ? x : result;
}

#endif
