/* The binary family: BCE with logits, BCE on probabilities, logistic, focal,
 * sigmoid / log_sigmoid. These are the library's binary loss formulas, in one
 * place: the kinds, the validity rules, the double-precision points (focal,
 * probabilities), the typed points and chunk loops (_math_binary_impl.h), and
 * the logistic-regression terms of the linear models.
 *
 * Part of _vecmath.h (the umbrella that the .pxd files include).
 */
#ifndef FASTCE_MATH_BINARY_H
#define FASTCE_MATH_BINARY_H

#include "_math_scalar.h"

enum {
    FASTCE_BCE_LOGITS = 0,
    FASTCE_BCE_PROBS = 1,
    FASTCE_LOGISTIC = 2,
    FASTCE_SIGMOID = 3,
    FASTCE_LOG_SIGMOID = 4,
    FASTCE_FOCAL = 5,
    /* Forms of the focal loop that binary_chunk picks for a chunk whose targets
     * are all 0 or 1 (any gamma; gamma = 2): without the soft-target logaddexp,
     * and for gamma = 2 with m^2 = m m instead of exp(2 log m). */
    FASTCE_FOCAL_HARD = 6,
    FASTCE_FOCAL_SQUARE = 7
};

/* Elements a binary chunk takes at once (the .pyx loops' chunking). */
#define FASTCE_BINARY_CHUNK 256

/* torch floors p(1-p) at 1e-12 in binary_cross_entropy's gradient (and
 * clamps log(p) at FASTCE_LOG_CLAMP, _math_scalar.h). */
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
 *   y = 1 and sigmoid(-z) for y = 0 (no 0/0 where m underflows).
 * Every exp and log is fastce's vectorisable one (the arguments of exp are
 * <= 0, those of the logs in (0, 1]), so the chunk loop runs in vector lanes;
 * double keeps m^gamma accurate where gamma log m is large. `form` (a constant
 * at each call): FASTCE_FOCAL for any target, FASTCE_FOCAL_HARD and
 * FASTCE_FOCAL_SQUARE for targets known to be 0 or 1 (see the enum). */
static FASTCE_ALWAYS_INLINE double fastce_focal_point(int form, double z, double y,
                                                     double alpha, double gamma,
                                                     double *grad)
{
    double e = fastce_exp(-fabs(z));
    double log_term = fastce_log1p_unit(e);
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
    } else if (y == 0.0 || form != FASTCE_FOCAL) {
        log_m = -softplus_neg;
        ratio = sig_neg;
    } else {
        /* 0 < y < 1 (the caller checked the target): both logs are of normal numbers. */
        double y_soft = y > 0.0 && y < 1.0 ? y : 0.5; /* (the lanes of y in {0, 1}) */
        double a = fastce_log_normal(y_soft) - softplus_pos;
        double b = fastce_log1p_normal(-y_soft) - softplus_neg;
        double hi = a > b ? a : b, lo = a > b ? b : a;
        log_m = hi + fastce_log1p_unit(fastce_exp(lo - hi));
        ratio = (1.0 - 2.0 * y) * sig_pos * sig_neg / fastce_exp(log_m);
    }
    double m = y == 1.0 ? sig_neg : sig_pos; /* (for a target of 0 or 1) */
    double m_pow = form == FASTCE_FOCAL_SQUARE ? m * m
                 : gamma == 0.0 ? 1.0 : fastce_exp(gamma * log_m);
    double alpha_t = alpha < 0.0 ? 1.0 : alpha * y + (1.0 - alpha) * (1.0 - y);
    /* A zero factor is exactly 0, also against an infinite BCE (z = -inf, y = 1). */
    double focus = (gamma == 0.0 || ratio == 0.0) ? 0.0 : gamma * ratio * bce;
    /* sigmoid(z) - y as (1-y) sigmoid(z) - y sigmoid(-z): no cancellation near 1. */
    double slope = (y != 1.0 ? (1.0 - y) * sig_pos : 0.0) - (y != 0.0 ? y * sig_neg : 0.0);
    *grad = alpha_t * m_pow * (focus + slope);
    return alpha_t * m_pow * bce;
}

/* The typed points and chunk loops. Names formed (FASTCE_TYPED(name) in
 * _math_binary_impl.h): fastce_<name>_f32 for float, fastce_<name>_f64 for
 * double, name one of positive_part, softplus_parts, bce_logits_point,
 * logistic_point, sigmoid_point, log_sigmoid_point, binary_point_kind, all_hard_targets,
 * binary_point, binary_loop, binary_chunk, unary_chunk. */
#define FASTCE_TYPED_BODY "_math_binary_impl.h"
#include "_math_typed.h"

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
    /* Through the any-kind point, not fastce_bce_logits_point_f64: both give
     * the same values, but GCC 12 vectorised this loop differently (an extra
     * AVX2 epilogue) when called through the narrower one. */
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

#endif
