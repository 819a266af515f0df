/* Vectorisable elementary functions and row kernels of fastce.
 *
 * Why this header exists: glibc's exp/log1p are scalar calls (about 0.45 G/s
 * per core), and GCC will not vectorise a loop that calls them without
 * -ffast-math, which fastce must not use (it breaks NaN/inf semantics). The
 * functions below are range reduction plus a polynomial in plain arithmetic
 * that GCC inlines and vectorises, and the row loops that use them are here
 * because Cython cannot emit the `omp simd reduction` pragmas they need.
 *
 * Row exps run in the row's own precision (float rows: 4-16 lanes a vector),
 * and every sum is accumulated in double. The elementwise binary losses are
 * computed in double for both dtypes.
 */
#ifndef FASTCE_VECMATH_H
#define FASTCE_VECMATH_H

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

/* exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln2 / 2, and a Taylor
 * polynomial: degree 13 for double (truncation < 5e-18 relative), degree 7
 * for float (< 5e-9). n is rounded by adding 1.5 * 2^52 (1.5 * 2^23), exact
 * without -ffast-math; 2^n is applied as two normal factors 2^(n/2) 2^(n-n/2)
 * so that subnormal results come out right and nothing overflows early.
 * The clamp keeps n in range; past it the products round to 0 or inf by
 * themselves. NaN propagates (comparisons with NaN are false), -inf gives 0,
 * +inf gives inf. */
static inline double fastce_exp(double x)
{
    const double log2e = 1.4426950408889634;
    const double ln2_hi = 6.93147180369123816490e-01; /* trailing zeros: n*ln2_hi exact */
    const double ln2_lo = 1.90821492927058770002e-10;
    const double shifter = 6755399441055744.0;        /* 1.5 * 2^52 */
    double clamped = x < -746.0 ? -746.0 : x;
    clamped = clamped > 710.0 ? 710.0 : clamped;
    double shifted = clamped * log2e + shifter;
    double n = shifted - shifter;
    double r = (clamped - n * ln2_hi) - n * ln2_lo;
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
    p = p * r + 1.0;
    int64_t shifted_bits, n_int, half_bits, rest_bits;
    double half_scale, rest_scale;
    memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
    /* The low mantissa bits of `shifted` hold n in two's complement. */
    n_int = shifted_bits - (int64_t)0x4338000000000000LL;
    half_bits = ((n_int >> 1) + 1023) << 52;
    rest_bits = ((n_int - (n_int >> 1)) + 1023) << 52;
    memcpy(&half_scale, &half_bits, sizeof half_scale);
    memcpy(&rest_scale, &rest_bits, sizeof rest_scale);
    return (p * half_scale) * rest_scale;
}

static inline float fastce_expf(float x)
{
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693359375f;                 /* 9 bits: n*ln2_hi exact */
    const float ln2_lo = -2.12194440e-4f;
    const float shifter = 12582912.0f;                 /* 1.5 * 2^23 */
    float clamped = x < -104.0f ? -104.0f : x;
    clamped = clamped > 89.0f ? 89.0f : clamped;
    float shifted = clamped * log2e + shifter;
    float n = shifted - shifter;
    float r = (clamped - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t shifted_bits, n_int, half_bits, rest_bits;
    float half_scale, rest_scale;
    memcpy(&shifted_bits, &shifted, sizeof shifted_bits);
    n_int = shifted_bits - (int32_t)0x4B400000;
    half_bits = ((n_int >> 1) + 127) << 23;
    rest_bits = ((n_int - (n_int >> 1)) + 127) << 23;
    memcpy(&half_scale, &half_bits, sizeof half_scale);
    memcpy(&rest_scale, &rest_bits, sizeof rest_scale);
    return (p * half_scale) * rest_scale;
}

/* exp of a row's (z - row_max) <= 0. Terms below the smallest normal are
 * returned as exactly 0 (masked -inf entries give 0 as they must): next to
 * the row's largest term, 1, they cannot change any rounded sum, and forming
 * subnormals would slow the loop several times. */
static inline double fastce_row_exp_f64(double shifted)
{
    double clamped = shifted < -708.0 ? -708.0 : shifted;
    double value = fastce_exp(clamped);
    return shifted < -708.0 ? 0.0 : value;
}

static inline float fastce_row_exp_f32(float shifted)
{
    float clamped = shifted < -87.0f ? -87.0f : shifted;
    float value = fastce_expf(clamped);
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

/* log1p(x) for x >= 0, vectorisable (a row's log of its sum of exps, in the
 * short-row kernels where one libm call per row was 18% of the time).
 * With u = 1 + x rounded, log1p(x) = log(u) * x / (u - 1) (exact correction
 * of the rounding of u); log(u) = k ln2 + 2 atanh(s), u = m 2^k with
 * m in [sqrt(1/2), sqrt(2)), s = (m-1)/(m+1), |s| <= 0.1716, the series
 * to s^21 (truncation < 3e-17). NaN and +inf pass through. */
static inline double fastce_log1p_nonneg(double x)
{
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    double u = 1.0 + x;
    int64_t bits, k;
    memcpy(&bits, &u, sizeof bits);
    /* Exponent of u relative to [sqrt(1/2), sqrt(2)): shift by the offset of
     * sqrt(1/2)'s mantissa so that m lands in that interval. */
    bits -= (int64_t)0x3fe6a09e667f3bcdLL;
    k = bits >> 52;
    bits = (bits & (int64_t)0x000fffffffffffffLL) + (int64_t)0x3fe6a09e667f3bcdLL;
    double m;
    memcpy(&m, &bits, sizeof m);
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
    double kd = (double)k;
    double log_u = kd * ln2_hi + (2.0 * s * p + kd * ln2_lo);
    double result = u == 1.0 ? x : log_u * (x / (u - 1.0));
    return (x != x || x == INFINITY) ? x : result;
}

/* ---------------------------------------------------------------------------
 * The binary family, one element at a time. These are the library's binary
 * loss formulas, in one place. They are instantiated for float and double
 * (FASTCE_DEFINE_BINARY_MATH below), each in its own precision with its own
 * exp/log1p, so float32 data runs 16 lanes a vector on AVX-512.
 */
enum {
    FASTCE_BCE_LOGITS = 0,
    FASTCE_BCE_PROBS = 1,
    FASTCE_LOGISTIC = 2,
    FASTCE_SIGMOID = 3,
    FASTCE_LOG_SIGMOID = 4,
    FASTCE_FOCAL = 5
};

/* torch clamps log(p) at -100 in binary_cross_entropy so that p in {0, 1}
 * gives a finite loss, and floors p(1-p) at 1e-12 in its gradient. */
#define FASTCE_LOG_CLAMP (-100.0)
#define FASTCE_BCE_GRAD_EPS 1e-12

/* Non-negative and finite; false for NaN. */
static inline int fastce_is_valid_weight(double w) { return w >= 0.0 && w < INFINITY; }

/* Is this element's target (and, for probs, its input) acceptable? */
static inline int fastce_binary_valid(int kind, double x, double target, double weight)
{
    int valid = fastce_is_valid_weight(weight);
    if (kind == FASTCE_LOGISTIC)
        valid = valid && (target == 1.0 || target == -1.0);
    else
        valid = valid && target >= 0.0 && target <= 1.0;
    if (kind == FASTCE_BCE_PROBS)
        valid = valid && x >= 0.0 && x <= 1.0;
    return valid;
}

/* binary_cross_entropy from probabilities, in double for both dtypes:
 * l = -(y max(log p, -100) + (1-y) max(log(1-p), -100)), a term whose target
 * factor is 0 being exactly 0; dl/dp = (p - y) / max(p (1-p), 1e-12).
 * Scalar libm logs: this loop is not vectorised (logits are the hot path). */
static inline double fastce_bce_probs_point(double p, double target, double *grad)
{
    double log_p = log(p), log_not_p = log1p(-p);
    double loss = 0.0;
    if (target != 0.0)
        loss -= target * (log_p > FASTCE_LOG_CLAMP ? log_p : FASTCE_LOG_CLAMP);
    if (target != 1.0)
        loss -= (1.0 - target) * (log_not_p > FASTCE_LOG_CLAMP ? log_not_p : FASTCE_LOG_CLAMP);
    double curvature = p * (1.0 - p);
    *grad = (p - target) / (curvature > FASTCE_BCE_GRAD_EPS ? curvature : FASTCE_BCE_GRAD_EPS);
    return loss;
}

/* sigmoid_focal_loss (torchvision), in double for both dtypes:
 *   l = alpha_t (1 - p_t)^gamma BCE(z, y),  p_t = p y + (1-p)(1-y),  p = sigmoid(z),
 *   alpha_t = alpha y + (1-alpha)(1-y), or 1 when alpha < 0.
 * Computed in log space: m = 1 - p_t = y sigmoid(-z) + (1-y) sigmoid(z) and
 * log m = logaddexp(log y + log sigmoid(-z), log(1-y) + log sigmoid(z)), so
 * m^gamma = exp(gamma log m) is finite and NaN-free for every finite z and
 * gamma >= 0, gamma < 1 and 0^0 = 1 included.
 *   dl/dz = alpha_t m^gamma (gamma (dm/dz / m) BCE + sigmoid(z) - y),
 *   dm/dz / m = (1-2y) sigmoid(z) sigmoid(-z) / m, which is -sigmoid(z) for
 *   y = 1 and sigmoid(-z) for y = 0 (no 0/0 where m underflows). */
static inline double fastce_focal_point(double z, double y, double alpha, double gamma,
                                        double *grad)
{
    double e = exp(-fabs(z));
    double log_term = log1p(e);
    double r = 1.0 / (1.0 + e);
    double sig_pos = z >= 0.0 ? r : e * r;
    double sig_neg = z >= 0.0 ? e * r : r;
    double softplus_pos = (z < 0.0 ? 0.0 : z) + log_term;   /* -log sigmoid(-z) */
    double softplus_neg = (-z < 0.0 ? 0.0 : -z) + log_term; /* -log sigmoid(z) */
    double bce = (y != 1.0 ? (1.0 - y) * softplus_pos : 0.0)
               + (y != 0.0 ? y * softplus_neg : 0.0);
    double log_m, ratio;
    if (y == 1.0) {
        log_m = -softplus_pos;
        ratio = -sig_pos;
    } else if (y == 0.0) {
        log_m = -softplus_neg;
        ratio = sig_neg;
    } else {
        double a = log(y) - softplus_pos, b = log1p(-y) - softplus_neg;
        double hi = a > b ? a : b, lo = a > b ? b : a;
        log_m = hi + log1p(exp(lo - hi));
        ratio = (1.0 - 2.0 * y) * sig_pos * sig_neg / exp(log_m);
    }
    double m_pow = gamma == 0.0 ? 1.0 : exp(gamma * log_m);
    double alpha_t = alpha < 0.0 ? 1.0 : alpha * y + (1.0 - alpha) * (1.0 - y);
    /* A zero factor is exactly 0, also against an infinite BCE (z = -inf, y = 1). */
    double focus = (gamma == 0.0 || ratio == 0.0) ? 0.0 : gamma * ratio * bce;
    /* sigmoid(z) - y as (1-y) sigmoid(z) - y sigmoid(-z): no cancellation near 1. */
    double slope = (y != 1.0 ? (1.0 - y) * sig_pos : 0.0) - (y != 0.0 ? y * sig_neg : 0.0);
    *grad = alpha_t * m_pow * (focus + slope);
    return alpha_t * m_pow * bce;
}

/* Information measures, one term of a row's sum (double, scalar libm logs).
 * Conventions (the library's contract): 0 log 0 = 0; a KL term with p = 0 is 0 and with
 * q = 0 < p is +inf; logs of q in the cross-entropy are clamped at -100. */
enum {
    FASTCE_ENTROPY = 0,
    FASTCE_KL = 1,
    FASTCE_JS = 2,
    FASTCE_CATEGORICAL_CE = 3
};

static inline double fastce_information_term(int kind, double p, double q)
{
    if (kind == FASTCE_ENTROPY)
        return p > 0.0 ? -p * log(p) : 0.0;
    if (kind == FASTCE_KL) {
        if (!(p > 0.0))
            return p == 0.0 ? 0.0 : p; /* p = 0 adds nothing; NaN stays NaN */
        if (!(q > 0.0))
            return q == 0.0 ? INFINITY : q;
        /* As scipy's rel_entr: near p = q, log(p) - log(q) cancels, while
         * p - q is exact there (Sterbenz) and log1p((p - q) / q) keeps its
         * digits. */
        double ratio = p / q;
        if (ratio > 0.5 && ratio < 2.0)
            return p * log1p((p - q) / q);
        return p * (log(p) - log(q)); /* p / q may overflow or underflow */
    }
    if (kind == FASTCE_JS) {
        /* p / m as 2p / (p + q): the midpoint m itself can underflow to 0
         * for subnormal p, the sum never does. */
        double total = p + q;
        double term = 0.0;
        if (p > 0.0)
            term += 0.5 * p * log((2.0 * p) / total);
        if (q > 0.0)
            term += 0.5 * q * log((2.0 * q) / total);
        return term;
    }
    /* FASTCE_CATEGORICAL_CE */
    if (p == 0.0)
        return 0.0;
    double log_q = log(q);
    return -p * (log_q > FASTCE_LOG_CLAMP ? log_q : FASTCE_LOG_CLAMP);
}

/* CT: the compute type; EXP / LOG1P_UNIT: its exp and log1p on [0, 1].
 *
 * softplus_parts: one exp serves softplus(+-t) and sigmoid(+-t). With
 *   e = exp(-|t|) <= 1 nothing overflows, softplus(+-t) = max(+-t, 0) +
 *   log1p(e), and sigmoid(-t) is formed from e, never as 1 - sigmoid(t)
 *   (which cancels). NaN t gives NaN everywhere (t >= 0 is false, e is NaN).
 *
 * binary_point: loss of one element, and its derivative w.r.t. x in *grad.
 * FASTCE_BCE_LOGITS: l = (1-y) softplus(z) + pw y softplus(-z),
 *                    dl/dz = (1-y) sigmoid(z) - pw y sigmoid(-z).
 *   Not torch's (1-y) z + (1+(pw-1)y) softplus(-z): that form cancels for
 *   y = 0 and z << 0. A term whose factor is 0 is exactly 0 (no 0*inf = NaN),
 *   so z = +inf with y = 1 gives l = 0, and z = -inf with y = 0 gives l = 0.
 * FASTCE_LOGISTIC: y in {-1, +1}: l = softplus(-y s), dl/ds = -y sigmoid(-y s).
 * FASTCE_SIGMOID, FASTCE_LOG_SIGMOID: sigmoid(x), log sigmoid(x) = -softplus(-x).
 */
#define FASTCE_DEFINE_BINARY_MATH(CT, SUFFIX, EXP, LOG1P_UNIT)                      \
static inline CT fastce_positive_part_##SUFFIX(CT t)                                \
{                                                                                   \
    return t < (CT)0 ? (CT)0 : t; /* max(t, 0) that keeps NaN */                    \
}                                                                                   \
                                                                                    \
static inline CT fastce_softplus_parts_##SUFFIX(CT t, CT *sig_pos, CT *sig_neg)     \
{                                                                                   \
    CT e = EXP(t < (CT)0 ? t : -t);                                                 \
    CT r = (CT)1 / ((CT)1 + e);                                                     \
    *sig_pos = t >= (CT)0 ? r : e * r;                                              \
    *sig_neg = t >= (CT)0 ? e * r : r;                                              \
    return LOG1P_UNIT(e);                                                           \
}                                                                                   \
                                                                                    \
static inline CT fastce_binary_point_##SUFFIX(int kind, CT x, CT target,            \
                                              CT pos_weight, double alpha,          \
                                              double gamma, CT *grad, CT *curv)     \
{                                                                                   \
    CT sig_pos, sig_neg, log_term;                                                  \
    *curv = (CT)0;                                                                  \
    if (kind == FASTCE_BCE_LOGITS) {                                                \
        log_term = fastce_softplus_parts_##SUFFIX(x, &sig_pos, &sig_neg);           \
        CT neg_factor = (CT)1 - target;                                             \
        CT pos_factor = pos_weight * target;                                        \
        CT neg_term = neg_factor * (fastce_positive_part_##SUFFIX(x) + log_term);   \
        CT pos_term = pos_factor * (fastce_positive_part_##SUFFIX(-x) + log_term);  \
        *grad = (neg_factor != (CT)0 ? neg_factor * sig_pos : (CT)0)                \
              - (pos_factor != (CT)0 ? pos_factor * sig_neg : (CT)0);               \
        *curv = (neg_factor + pos_factor) * sig_pos * sig_neg;                      \
        return (neg_factor != (CT)0 ? neg_term : (CT)0)                             \
             + (pos_factor != (CT)0 ? pos_term : (CT)0);                            \
    }                                                                               \
    if (kind == FASTCE_LOGISTIC) {                                                  \
        CT neg_margin = -target * x;                                                \
        log_term = fastce_softplus_parts_##SUFFIX(neg_margin, &sig_pos, &sig_neg);  \
        *grad = -target * sig_pos;                                                  \
        *curv = sig_pos * sig_neg;                                                  \
        return fastce_positive_part_##SUFFIX(neg_margin) + log_term;                \
    }                                                                               \
    if (kind == FASTCE_FOCAL) {                                                     \
        double slope;                                                               \
        double loss = fastce_focal_point((double)x, (double)target, alpha, gamma,   \
                                         &slope);                                   \
        *grad = (CT)slope;                                                          \
        return (CT)loss;                                                            \
    }                                                                               \
    if (kind == FASTCE_BCE_PROBS) {                                                 \
        double slope;                                                               \
        double loss = fastce_bce_probs_point((double)x, (double)target, &slope);    \
        *grad = (CT)slope;                                                          \
        return (CT)loss;                                                            \
    }                                                                               \
    log_term = fastce_softplus_parts_##SUFFIX(x, &sig_pos, &sig_neg);               \
    *grad = (CT)0;                                                                  \
    if (kind == FASTCE_SIGMOID)                                                     \
        return sig_pos;                                                             \
    return -(fastce_positive_part_##SUFFIX(-x) + log_term);                         \
}

FASTCE_DEFINE_BINARY_MATH(float, f32, fastce_expf, fastce_log1pf_unit)
FASTCE_DEFINE_BINARY_MATH(double, f64, fastce_exp, fastce_log1p_unit)

/* The logistic-regression terms of a block of rows: from margins z_i,
 * labels y_i in {0, 1} and sample weights sw_i, set residual_i =
 * sw_i (sigmoid(z_i) - y_i) and add sum sw l, sum sw, sum of residuals and
 * the number of invalid rows (which contribute 0) to sums; a NaN margin
 * gives NaN sums. The elementwise
 * part is one vectorised loop without reductions into a per-row scratch;
 * the sums follow in a plain loop. (Folded into one `omp simd reduction`
 * loop, GCC 12's AVX2/AVX-512 code summed the losses wrongly for n >= 16.) */
static inline void fastce_logistic_terms(const double *margin, const double *label,
                                         const double *weight, double *residual,
                                         double *loss, ptrdiff_t n, double *sums)
{
    FASTCE_SIMD
    for (ptrdiff_t i = 0; i < n; ++i) {
        double slope, curvature;
        double value = fastce_binary_point_f64(FASTCE_BCE_LOGITS, margin[i], label[i], 1.0,
                                               0.0, 0.0, &slope, &curvature);
        int valid = (label[i] == 0.0 || label[i] == 1.0) && fastce_is_valid_weight(weight[i]);
        int active = valid && weight[i] != 0.0;
        residual[i] = active ? weight[i] * slope : 0.0;
        loss[i] = active ? weight[i] * value : 0.0;
    }
    for (ptrdiff_t i = 0; i < n; ++i) {
        /* An invalid row is reported and contributes 0. Validity is decided
         * from the label and weight alone: a NaN margin (NaN in X, coef or
         * the intercept) is data and propagates into the sums. */
        if (!((label[i] == 0.0 || label[i] == 1.0) && fastce_is_valid_weight(weight[i]))) {
            sums[3] += 1.0;
            continue;
        }
        sums[0] += loss[i];
        sums[1] += weight[i];
        sums[2] += residual[i];
    }
}


#define FASTCE_BINARY_CHUNK 256

/* Rows taken together by the short-row kernels (at most; see _vecmath.pxd). */
#define FASTCE_SHORT_RUN_ROWS 128

/* Positions processed together by the column kernels (class axis not last). */
#define FASTCE_COLS_TILE 256

/* The elementwise loop of a binary loss over one chunk, for a constant kind
 * so that fastce_binary_point folds to one formula. Invalid elements and
 * zero weights contribute exactly 0; `invalid` counts the former, and the
 * caller rescans a chunk only when it is not 0. x and grad may alias (each
 * element is read before its gradient is stored), which `omp simd` allows. */
#define FASTCE_BINARY_LOOP(T, SUFFIX, KIND)                                                  \
    FASTCE_SIMD_REDUCTION(+ : total, invalid)                                       \
    for (ptrdiff_t i = 0; i < n; ++i) {                                             \
        T x_i = x[i], y_i = y[i], w_i = w[i];                                       \
        T slope, curv;                                                              \
        T value = fastce_binary_point_##SUFFIX(KIND, x_i, y_i, pw[i], alpha, gamma, \
                                               &slope, &curv);                      \
        int valid = fastce_binary_valid(KIND, x_i, y_i, w_i);                       \
        int active = valid && w_i != (T)0;                                          \
        value = active ? w_i * value : (T)0;                                        \
        slope = active ? w_i * slope : (T)0;                                        \
        curv = active ? w_i * curv : (T)0;                                          \
        total += (double)value;                                                     \
        invalid += valid ? 0.0 : 1.0;                                               \
        loss[i] = value;                                                            \
        grad[i] = (T)(slope * (T)grad_scale);                                       \
        hess[i] = (T)(curv * (T)grad_scale);                                        \
    }

/* Row kernels, written once and instantiated for float and double rows.
 *
 * row_max: the largest entry, NaN entries skipped (they surface as NaN in the
 *   exp pass instead); -inf for an all -inf (or all-NaN) row.
 * row_exp_sum: the sum of exp(z_c - row_max) over the entries below row_max,
 *   and (in *n_at_max_out) how many entries equal it; a part of a long row
 *   (split across threads) is summed this way, row_exp_rest combines them.
 * row_exp_rest: sum_c exp(z_c - row_max) - 1, written into exp_out when it
 *   is not NULL (it may alias z). Entries equal to the maximum are counted,
 *   not summed (each is exactly 1) and one is left out, so log1p(rest) keeps
 *   full relative accuracy when one class dominates.
 * row_scale: out_c = in_c * scale - shift_c * shift_scale (shift may be NULL,
 *   in may be out).
 * rows_exp_rest: row_max and row_exp_rest for a run of short rows (fewer
 *   classes than a vector has lanes, where per-row loops would run in their
 *   scalar remainders): the shifts z - row_max are laid out flat and ONE long
 *   vectorised loop takes all the exps. exp_out must not alias z; the sums
 *   follow the same rules as row_exp_rest.
 */
#define FASTCE_DEFINE_ROW_KERNELS(T, SUFFIX)                                        \
static inline double fastce_row_max_##SUFFIX(const T *z, ptrdiff_t n_classes)       \
{                                                                                   \
    T best = -INFINITY;                                                             \
    FASTCE_SIMD_REDUCTION(max : best)                                               \
    for (ptrdiff_t c = 0; c < n_classes; ++c)                                       \
        best = z[c] > best ? z[c] : best;                                           \
    return (double)best;                                                            \
}                                                                                   \
                                                                                    \
static inline double fastce_row_exp_sum_##SUFFIX(const T *z, T *exp_out,            \
                                                 ptrdiff_t n_classes,               \
                                                 double row_max,                    \
                                                 ptrdiff_t *n_at_max_out)           \
{                                                                                   \
    /* In the row's own type: the max is one of its entries, so z - max and */  \
    /* the tie test are exact; only the sum is widened to double.            */  \
    const T best = (T)row_max;                                                      \
    double rest = 0.0;                                                              \
    ptrdiff_t n_at_max = 0;                                                         \
    if (exp_out != NULL) {                                                          \
        FASTCE_SIMD_REDUCTION(+ : rest, n_at_max)                                   \
        for (ptrdiff_t c = 0; c < n_classes; ++c) {                                 \
            T value = z[c];                                                         \
            T scaled = fastce_row_exp_##SUFFIX(value - best);                       \
            exp_out[c] = scaled;                                                    \
            int at_max = value == best;                                             \
            n_at_max += at_max;                                                     \
            rest += at_max ? 0.0 : (double)scaled;                                  \
        }                                                                           \
    } else {                                                                        \
        FASTCE_SIMD_REDUCTION(+ : rest, n_at_max)                                   \
        for (ptrdiff_t c = 0; c < n_classes; ++c) {                                 \
            T value = z[c];                                                         \
            T scaled = fastce_row_exp_##SUFFIX(value - best);                       \
            int at_max = value == best;                                             \
            n_at_max += at_max;                                                     \
            rest += at_max ? 0.0 : (double)scaled;                                  \
        }                                                                           \
    }                                                                               \
    *n_at_max_out = n_at_max;                                                       \
    return rest;                                                                    \
}                                                                                   \
                                                                                    \
static inline double fastce_row_exp_rest_##SUFFIX(const T *z, T *exp_out,           \
                                                  ptrdiff_t n_classes,              \
                                                  double row_max)                   \
{                                                                                   \
    ptrdiff_t n_at_max;                                                             \
    double rest = fastce_row_exp_sum_##SUFFIX(z, exp_out, n_classes, row_max,       \
                                              &n_at_max);                           \
    return rest + (double)(n_at_max - 1);                                           \
}                                                                                   \
                                                                                    \
static inline void fastce_row_scale_##SUFFIX(T *out, const T *in,                   \
                                             ptrdiff_t n_classes, double scale,     \
                                             const T *shift, double shift_scale)    \
{                                                                                   \
    if (shift == NULL) {                                                            \
        FASTCE_SIMD                                                                 \
        for (ptrdiff_t c = 0; c < n_classes; ++c)                                   \
            out[c] = (T)((double)in[c] * scale - shift_scale);                      \
    } else {                                                                        \
        FASTCE_SIMD                                                                 \
        for (ptrdiff_t c = 0; c < n_classes; ++c)                                   \
            out[c] = (T)((double)in[c] * scale - (double)shift[c] * shift_scale);   \
    }                                                                               \
}                                                                                   \
                                                                                    \
static inline void fastce_row_hessian_##SUFFIX(T *hess, const T *exp_row,           \
                                               ptrdiff_t n_classes, double inv_sum, \
                                               double rest, double scale)           \
{                                                                                   \
    /* p (1 - p) with p = e / (1 + rest); for an entry at the max (e = 1) */     \
    /* 1 - p = rest / (1 + rest) exactly, instead of a cancelling 1 - p.   */     \
    FASTCE_SIMD                                                                     \
    for (ptrdiff_t c = 0; c < n_classes; ++c) {                                     \
        double prob = (double)exp_row[c] * inv_sum;                                 \
        double complement = exp_row[c] == (T)1 ? rest * inv_sum : 1.0 - prob;       \
        hess[c] = (T)(scale * prob * complement);                                   \
    }                                                                               \
}                                                                                   \
                                                                                    \
/* Column kernels: a class axis that is not the last one, as in torch's     */ \
/* (N, C, d1, ...) layout. For one n, z[c * class_stride + w] holds class c */ \
/* at position w; a tile of `width` contiguous positions is processed at   */ \
/* once, vectorised across positions, with per-position max / rest arrays.  */ \
/* Same rules as the row kernels (max, ties, exps in the row's own type).  */ \
static inline void fastce_cols_max_##SUFFIX(const T *z, ptrdiff_t class_stride,       \
                                            ptrdiff_t n_classes, ptrdiff_t width,   \
                                            double *col_max)                        \
{                                                                                   \
    T best[FASTCE_COLS_TILE];                                                       \
    for (ptrdiff_t w = 0; w < width; ++w)                                           \
        best[w] = -INFINITY;                                                        \
    for (ptrdiff_t c = 0; c < n_classes; ++c) {                                     \
        const T *z_c = z + c * class_stride;                                        \
        FASTCE_SIMD                                                                 \
        for (ptrdiff_t w = 0; w < width; ++w)                                       \
            best[w] = z_c[w] > best[w] ? z_c[w] : best[w];                          \
    }                                                                               \
    for (ptrdiff_t w = 0; w < width; ++w)                                           \
        col_max[w] = (double)best[w];                                               \
}                                                                                   \
                                                                                    \
static inline void fastce_cols_exp_rest_##SUFFIX(const T *z, T *exp_out,             \
                                                 ptrdiff_t class_stride,            \
                                                 ptrdiff_t n_classes,               \
                                                 ptrdiff_t width,                   \
                                                 const double *col_max,             \
                                                 double *col_rest)                  \
{                                                                                   \
    T best[FASTCE_COLS_TILE];                                                       \
    double n_at_max[FASTCE_COLS_TILE];                                              \
    for (ptrdiff_t w = 0; w < width; ++w) {                                         \
        best[w] = (T)col_max[w];                                                    \
        col_rest[w] = 0.0;                                                          \
        n_at_max[w] = 0.0;                                                          \
    }                                                                               \
    for (ptrdiff_t c = 0; c < n_classes; ++c) {                                     \
        const T *z_c = z + c * class_stride;                                        \
        T *exp_c = exp_out != NULL ? exp_out + c * class_stride : NULL;             \
        if (exp_c != NULL) {                                                        \
            FASTCE_SIMD                                                             \
            for (ptrdiff_t w = 0; w < width; ++w) {                                 \
                T value = z_c[w];                                                   \
                T scaled = fastce_row_exp_##SUFFIX(value - best[w]);                \
                exp_c[w] = scaled;                                                  \
                int at_max = value == best[w];                                      \
                n_at_max[w] += at_max ? 1.0 : 0.0;                                  \
                col_rest[w] += at_max ? 0.0 : (double)scaled;                       \
            }                                                                       \
        } else {                                                                    \
            FASTCE_SIMD                                                             \
            for (ptrdiff_t w = 0; w < width; ++w) {                                 \
                T value = z_c[w];                                                   \
                T scaled = fastce_row_exp_##SUFFIX(value - best[w]);                \
                int at_max = value == best[w];                                      \
                n_at_max[w] += at_max ? 1.0 : 0.0;                                  \
                col_rest[w] += at_max ? 0.0 : (double)scaled;                       \
            }                                                                       \
        }                                                                           \
    }                                                                               \
    for (ptrdiff_t w = 0; w < width; ++w)                                           \
        col_rest[w] += n_at_max[w] - 1.0;                                           \
}                                                                                   \
                                                                                    \
/* out[c, w] = in[c, w] * scale[w] - shift_c * shift_scale[w], shift_c = 1  */   \
/* without class weights; in may be out.                                    */   \
static inline void fastce_cols_scale_##SUFFIX(T *out, const T *in,                   \
                                              ptrdiff_t class_stride,               \
                                              ptrdiff_t n_classes, ptrdiff_t width, \
                                              const double *scale, const T *shift,  \
                                              const double *shift_scale)            \
{                                                                                   \
    for (ptrdiff_t c = 0; c < n_classes; ++c) {                                     \
        T *out_c = out + c * class_stride;                                          \
        const T *in_c = in + c * class_stride;                                      \
        double shift_c = shift != NULL ? (double)shift[c] : 1.0;                    \
        FASTCE_SIMD                                                                 \
        for (ptrdiff_t w = 0; w < width; ++w)                                       \
            out_c[w] = (T)((double)in_c[w] * scale[w] - shift_c * shift_scale[w]);  \
    }                                                                               \
}                                                                                   \
                                                                                    \
static inline void fastce_cols_log_softmax_##SUFFIX(const T *z, T *out,              \
                                                    ptrdiff_t class_stride,         \
                                                    ptrdiff_t n_classes,            \
                                                    ptrdiff_t width,                \
                                                    const double *col_max,          \
                                                    const double *log_sum)          \
{                                                                                   \
    for (ptrdiff_t c = 0; c < n_classes; ++c) {                                     \
        const T *z_c = z + c * class_stride;                                        \
        T *out_c = out + c * class_stride;                                          \
        FASTCE_SIMD                                                                 \
        for (ptrdiff_t w = 0; w < width; ++w)                                       \
            out_c[w] = (T)(((double)z_c[w] - col_max[w]) - log_sum[w]);             \
    }                                                                               \
}                                                                                   \
                                                                                    \
static inline void fastce_cols_hessian_##SUFFIX(T *hess, const T *exp_in,            \
                                                ptrdiff_t class_stride,             \
                                                ptrdiff_t n_classes,                \
                                                ptrdiff_t width,                    \
                                                const double *inv_sum,              \
                                                const double *rest,                 \
                                                const double *scale)                \
{                                                                                   \
    for (ptrdiff_t c = 0; c < n_classes; ++c) {                                     \
        const T *exp_c = exp_in + c * class_stride;                                 \
        T *hess_c = hess + c * class_stride;                                        \
        FASTCE_SIMD                                                                 \
        for (ptrdiff_t w = 0; w < width; ++w) {                                     \
            double prob = (double)exp_c[w] * inv_sum[w];                            \
            double complement = exp_c[w] == (T)1 ? rest[w] * inv_sum[w] : 1.0 - prob; \
            hess_c[w] = (T)(scale[w] * prob * complement);                          \
        }                                                                           \
    }                                                                               \
}                                                                                   \
                                                                                    \
/* Linear models: x . w and acc += a x, in double (the reduction lets GCC  */ \
/* vectorise the dot product; its order is fixed by the code).             */ \
static inline double fastce_dot_##SUFFIX(const T *x, const T *w, ptrdiff_t n)       \
{                                                                                   \
    double total = 0.0;                                                             \
    FASTCE_SIMD_REDUCTION(+ : total)                                                \
    for (ptrdiff_t j = 0; j < n; ++j)                                               \
        total += (double)x[j] * (double)w[j];                                       \
    return total;                                                                   \
}                                                                                   \
                                                                                    \
static inline double fastce_dot_mixed_##SUFFIX(const T *x, const double *w,         \
                                               ptrdiff_t n)                         \
{                                                                                   \
    double total = 0.0;                                                             \
    FASTCE_SIMD_REDUCTION(+ : total)                                                \
    for (ptrdiff_t j = 0; j < n; ++j)                                               \
        total += (double)x[j] * w[j];                                               \
    return total;                                                                   \
}                                                                                   \
                                                                                    \
static inline void fastce_axpy_##SUFFIX(double *acc, double a, const T *x,           \
                                        ptrdiff_t n)                                \
{                                                                                   \
    FASTCE_SIMD                                                                     \
    for (ptrdiff_t j = 0; j < n; ++j)                                               \
        acc[j] += a * (double)x[j];                                                 \
}                                                                                   \
                                                                                    \
static inline void fastce_rows_exp_rest_##SUFFIX(const T *z, T *exp_out,            \
                                                 ptrdiff_t n_rows,                  \
                                                 ptrdiff_t n_classes,               \
                                                 double *row_max, double *row_rest, \
                                                 double *row_log_sum)               \
{                                                                                   \
    /* The per-row max and sum loops run class by class across all rows:   */     \
    /* a 10-long row's own loop is one dependent chain of adds, while the  */     \
    /* rows' chains are independent. Each row still sums in class order.  */     \
    T best[FASTCE_SHORT_RUN_ROWS];                                                  \
    ptrdiff_t n_total = n_rows * n_classes;                                         \
    for (ptrdiff_t r = 0; r < n_rows; ++r)                                          \
        best[r] = -INFINITY;                                                        \
    for (ptrdiff_t c = 0; c < n_classes; ++c)                                       \
        for (ptrdiff_t r = 0; r < n_rows; ++r) {                                    \
            T value = z[r * n_classes + c];                                         \
            best[r] = value > best[r] ? value : best[r];                            \
        }                                                                           \
    for (ptrdiff_t r = 0; r < n_rows; ++r) {                                        \
        row_max[r] = (double)best[r];                                               \
        for (ptrdiff_t c = 0; c < n_classes; ++c)                                   \
            exp_out[r * n_classes + c] = z[r * n_classes + c] - best[r];            \
    }                                                                               \
    FASTCE_SIMD                                                                     \
    for (ptrdiff_t i = 0; i < n_total; ++i)                                         \
        exp_out[i] = fastce_row_exp_##SUFFIX(exp_out[i]);                           \
    /* row_log_sum holds the count of entries at the max until the end. */       \
    for (ptrdiff_t r = 0; r < n_rows; ++r) {                                        \
        row_rest[r] = 0.0;                                                          \
        row_log_sum[r] = 0.0;                                                       \
    }                                                                               \
    for (ptrdiff_t c = 0; c < n_classes; ++c)                                       \
        for (ptrdiff_t r = 0; r < n_rows; ++r) {                                    \
            int at_max = z[r * n_classes + c] == best[r];                           \
            row_log_sum[r] += at_max ? 1.0 : 0.0;                                   \
            row_rest[r] += at_max ? 0.0 : (double)exp_out[r * n_classes + c];       \
        }                                                                           \
    for (ptrdiff_t r = 0; r < n_rows; ++r)                                          \
        row_rest[r] += row_log_sum[r] - 1.0;                                        \
    FASTCE_SIMD                                                                     \
    for (ptrdiff_t r = 0; r < n_rows; ++r)                                          \
        row_log_sum[r] = fastce_log1p_nonneg(row_rest[r]);                          \
}                                                                                   \
                                                                                    \
static inline double fastce_binary_chunk_##SUFFIX(int kind, const T *x, const T *y,    \
                                                  const T *w, const T *pw, T *loss,   \
                                                  T *grad, T *hess, double grad_scale,\
                                                  double alpha, double gamma,         \
                                                  ptrdiff_t n, double *n_bad)         \
{                                                                                   \
    double total = 0.0, invalid = 0.0;                                              \
    switch (kind) {                                                                 \
    case FASTCE_BCE_LOGITS: FASTCE_BINARY_LOOP(T, SUFFIX, FASTCE_BCE_LOGITS); break;           \
    case FASTCE_LOGISTIC: FASTCE_BINARY_LOOP(T, SUFFIX, FASTCE_LOGISTIC); break;               \
    case FASTCE_FOCAL: FASTCE_BINARY_LOOP(T, SUFFIX, FASTCE_FOCAL); break;           \
    default: FASTCE_BINARY_LOOP(T, SUFFIX, FASTCE_BCE_PROBS); break;                           \
    }                                                                               \
    *n_bad = invalid;                                                               \
    return total;                                                                   \
}                                                                                   \
                                                                                    \
static inline void fastce_unary_chunk_##SUFFIX(int kind, const T *x, T *out,         \
                                               ptrdiff_t n)                         \
{                                                                                   \
    T unused, unused_curv;                                                          \
    if (kind == FASTCE_SIGMOID) {                                                   \
        FASTCE_SIMD                                                                 \
        for (ptrdiff_t i = 0; i < n; ++i)                                           \
            out[i] = fastce_binary_point_##SUFFIX(FASTCE_SIGMOID, x[i], (T)0, (T)1, \
                                                  0.0, 0.0, &unused, &unused_curv); \
    } else {                                                                        \
        FASTCE_SIMD                                                                 \
        for (ptrdiff_t i = 0; i < n; ++i)                                           \
            out[i] = fastce_binary_point_##SUFFIX(FASTCE_LOG_SIGMOID, x[i], (T)0,   \
                                                  (T)1, 0.0, 0.0, &unused,          \
                                                  &unused_curv);                    \
    }                                                                               \
}                                                                                   \
                                                                                    \
static inline void fastce_row_log_softmax_##SUFFIX(const T *z, T *out,              \
                                                   ptrdiff_t n_classes,             \
                                                   double row_max, double log_sum)  \
{                                                                                   \
    FASTCE_SIMD                                                                     \
    for (ptrdiff_t c = 0; c < n_classes; ++c)                                       \
        out[c] = (T)(((double)z[c] - row_max) - log_sum);                           \
}

FASTCE_DEFINE_ROW_KERNELS(float, f32)
FASTCE_DEFINE_ROW_KERNELS(double, f64)

#endif
