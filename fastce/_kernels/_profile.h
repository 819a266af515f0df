/* Dataset profiling: exact sums and the per-sample statistics of one row.
 *
 * Why exact sums: a profile is accumulated over chunks of rows, by threads,
 * and on a cluster over blocks merged in any order. Floating-point addition
 * is not associative, so a float64 running sum would change with the
 * chunking. An exact sum is the same integer whatever the order, and its
 * rounding to double at the end is a function of that integer alone: the
 * report is bitwise identical for every chunking, thread count and merge tree.
 *
 * The per-sample formulas of the profile are here, in one place; the exps use
 * the library's vectorisable fastce_exp (_vecmath.h).
 */
#ifndef FASTCE_PROFILE_H
#define FASTCE_PROFILE_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <stddef.h>

#include "_vecmath.h"

/* `omp simd` with several reduction clauses (of different operators). */
#define FASTCE_SIMD_CLAUSES(...) _Pragma(FASTCE_STR(omp simd __VA_ARGS__))

/* ---------------------------------------------------------------------------
 * Exact sums of doubles (a "superaccumulator").
 *
 * A finite double is m 2^(p - 1074) with an integer m < 2^53 and p in
 * [0, 2045] (p = biased exponent - 1, subnormals at p = 0). The sum is kept
 * as signed 64-bit limbs of 32 bits each: limb i weighs 2^(32 i - 1074).
 * Adding a double puts m 2^(p mod 32) (< 2^85) into three consecutive limbs,
 * each piece below 2^32, so 2^31 additions fit before a limb could overflow;
 * fastce_exact_normalize propagates the carries (it runs after every chunk).
 * NaN and infinities are counted in three extra slots.
 */
#define FASTCE_EXACT_LIMBS 68
#define FASTCE_EXACT_NAN FASTCE_EXACT_LIMBS
#define FASTCE_EXACT_POS_INF (FASTCE_EXACT_LIMBS + 1)
#define FASTCE_EXACT_NEG_INF (FASTCE_EXACT_LIMBS + 2)
#define FASTCE_EXACT_SIZE (FASTCE_EXACT_LIMBS + 3)

static inline void fastce_exact_add(int64_t *acc, double value)
{
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    int biased = (int)((bits >> 52) & 0x7ff);
    uint64_t mantissa = bits & 0x000fffffffffffffULL;
    int negative = (int)(bits >> 63);
    if (biased == 0x7ff) {
        if (mantissa)
            acc[FASTCE_EXACT_NAN] += 1;
        else
            acc[negative ? FASTCE_EXACT_NEG_INF : FASTCE_EXACT_POS_INF] += 1;
        return;
    }
    if (biased)
        mantissa |= 0x0010000000000000ULL;
    else
        biased = 1;
    int position = biased - 1;
    int limb = position >> 5, shift = position & 31;
    /* m 2^shift < 2^85 in three pieces of 32 bits (the left shift may drop
     * high bits, but only its low 32 bits are kept). */
    uint64_t low = (mantissa << shift) & 0xffffffffULL;
    uint64_t rest = mantissa >> (32 - shift);
    uint64_t middle = rest & 0xffffffffULL, high = rest >> 32;
    if (negative) {
        acc[limb] -= (int64_t)low;
        acc[limb + 1] -= (int64_t)middle;
        acc[limb + 2] -= (int64_t)high;
    } else {
        acc[limb] += (int64_t)low;
        acc[limb + 1] += (int64_t)middle;
        acc[limb + 2] += (int64_t)high;
    }
}

/* Carries into the next limb, so that limbs 0..LIMBS-2 lie in [0, 2^32) and
 * the top limb carries the sign: the canonical (unique) form of the sum. */
static inline void fastce_exact_normalize(int64_t *acc)
{
    for (int i = 0; i < FASTCE_EXACT_LIMBS - 1; ++i) {
        int64_t carry = acc[i] >> 32; /* arithmetic shift: floor division */
        acc[i] -= carry * ((int64_t)1 << 32);
        acc[i + 1] += carry;
    }
}

static inline void fastce_exact_merge(int64_t *into, const int64_t *other)
{
    for (int i = 0; i < FASTCE_EXACT_SIZE; ++i)
        into[i] += other[i];
    fastce_exact_normalize(into);
}

/* The sum rounded to double: the 64 bits below the magnitude's leading one,
 * with a sticky bit for everything under them, are rounded once by the
 * conversion (correctly, but for a second rounding of subnormal sums). A
 * function of the exact sum only, hence of no order of additions. */
static inline double fastce_exact_value(const int64_t *acc)
{
    if (acc[FASTCE_EXACT_NAN] || (acc[FASTCE_EXACT_POS_INF] && acc[FASTCE_EXACT_NEG_INF]))
        return NAN;
    if (acc[FASTCE_EXACT_POS_INF])
        return INFINITY;
    if (acc[FASTCE_EXACT_NEG_INF])
        return -INFINITY;
    int64_t limbs[FASTCE_EXACT_LIMBS];
    memcpy(limbs, acc, sizeof limbs);
    fastce_exact_normalize(limbs);
    int negative = limbs[FASTCE_EXACT_LIMBS - 1] < 0;
    if (negative) {
        for (int i = 0; i < FASTCE_EXACT_LIMBS; ++i)
            limbs[i] = -limbs[i];
        fastce_exact_normalize(limbs);
    }
    int top = FASTCE_EXACT_LIMBS - 1;
    while (top > 0 && limbs[top] == 0)
        --top;
    if (limbs[top] == 0)
        return 0.0;
    uint64_t l2 = (uint64_t)limbs[top];
    uint64_t l1 = top >= 1 ? (uint64_t)limbs[top - 1] : 0;
    uint64_t l0 = top >= 2 ? (uint64_t)limbs[top - 2] : 0;
    int lead = 31;
    while (!((l2 >> lead) & 1))
        --lead;
    uint64_t window = (l2 << (63 - lead)) | (l1 << (31 - lead)) | (l0 >> (lead + 1));
    int sticky = (l0 & ((((uint64_t)1) << (lead + 1)) - 1)) != 0;
    for (int i = top - 3; i >= 0 && !sticky; --i)
        sticky = limbs[i] != 0;
    double value = ldexp((double)(window | (uint64_t)sticky), 32 * (top - 2) - 1074 + lead + 1);
    return negative ? -value : value;
}

/* ---------------------------------------------------------------------------
 * One sample's statistics. p = softmax(z) for logits, or p as given.
 *   loss = -log p_y, clamped at 100 (log p_y >= -100, torch's clamp)
 *   prediction = argmax (ties: lowest index); confidence = max p;
 *   margin = p(1) - p(2); entropy = -sum p log p; self_confidence = p_y;
 *   brier = sum_c (p_c - [c = y])^2 = sum p^2 - 2 p_y + 1;
 *   n_above = #{c : p_c > p_y} (y is in the top k when n_above < k).
 */
typedef struct {
    double loss, confidence, margin, entropy, self_confidence, brier;
    int64_t prediction, n_above;
} fastce_sample_stats;

#define FASTCE_LOSS_CLAMP 100.0

/* Element c of a float or double row. The row functions below are written
 * once for both dtypes with an is_f32 flag; each is forced inline into a
 * small dispatcher that calls it with a constant flag, so the compiler
 * specialises one vectorised copy per dtype (a run-time flag inside the
 * loops measured 2x slower: both loads were if-converted). FASTCE_ALWAYS_INLINE
 * is defined in _math_scalar.h. */

static FASTCE_ALWAYS_INLINE double fastce_load(const void *row, int is_f32, ptrdiff_t c)
{
    return is_f32 ? (double)((const float *)row)[c] : ((const double *)row)[c];
}

/* Rows shorter than this take the same loops unvectorised (`if(simd: ...)`):
 * for a few classes the vector prologue, masks and the horizontal reductions
 * of seven sums cost more than the arithmetic. */
#define FASTCE_PROFILE_SIMD_MIN 16

/* The loss kernels' row max, in the row's own type (16 float lanes); a
 * plain loop for short rows. NaN entries are skipped. */
static FASTCE_ALWAYS_INLINE double fastce_row_max_any(const void *row, int is_f32,
                                                    ptrdiff_t n_classes)
{
    if (n_classes < FASTCE_PROFILE_SIMD_MIN) {
        double best = -INFINITY;
        for (ptrdiff_t c = 0; c < n_classes; ++c) {
            double z = fastce_load(row, is_f32, c);
            best = z > best ? z : best;
        }
        return best;
    }
    return is_f32 ? fastce_row_max_f32((const float *)row, n_classes)
                  : fastce_row_max_f64((const double *)row, n_classes);
}

/* With the row's max known, one vectorised pass gives its first index (a
 * min-reduction of indices, no scalar scan) and the largest entry at another
 * index: the max itself when it occurs twice, else the largest entry below
 * it (-inf when there is none). NaN entries are skipped. */
static FASTCE_ALWAYS_INLINE void fastce_row_top2(const void *row, int is_f32, ptrdiff_t n_classes,
                                                 double *best_out, ptrdiff_t *argmax_out,
                                                 double *second_out)
{
    double best = fastce_row_max_any(row, is_f32, n_classes);
    double second = -INFINITY, n_at_max = 0.0;
    ptrdiff_t argmax = n_classes;
    FASTCE_SIMD_CLAUSES(reduction(max : second) reduction(min : argmax) reduction(+ : n_at_max))
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        double z = fastce_load(row, is_f32, c);
        int at_max = z == best;
        argmax = at_max && c < argmax ? c : argmax;
        n_at_max += at_max ? 1.0 : 0.0;
        double below = z < best ? z : -INFINITY;
        second = below > second ? below : second;
    }
    *best_out = best;
    *argmax_out = argmax < n_classes ? argmax : 0;
    *second_out = n_at_max >= 2.0 ? best : second;
}

/* Logits: a max pass and one exp pass over the cached row:
 * S = sum e_c, T = sum e_c (z_c - max), Q = sum e_c^2 with e_c = exp(z_c - max);
 * then lse = max + log S, entropy = log S - T / S, sum p^2 = Q / S^2.
 * A -inf entry has e_c = 0 and adds nothing (no 0 * inf). A row of all -inf
 * has no distribution and gives NaN statistics; NaN entries give NaN. */
/* Classes a run of the logits' exp pass takes at once: their exps go to a
 * stack buffer in the row's own type (16 float lanes on AVX-512), and a
 * second loop over that L1-resident buffer forms the double sums. One loop
 * doing both runs at the width of double (8 lanes): measured 10-15% slower
 * for float rows (1,000,000 x 100, one thread). */
#define FASTCE_PROFILE_RUN 256

static FASTCE_ALWAYS_INLINE void fastce_logits_row_stats_typed(
    const void *row, int is_f32, ptrdiff_t n_classes, int64_t label, fastce_sample_stats *out)
{
    /* Two passes over the row, as the loss kernels: the max, then the exps
     * and everything else from the cached row (the exps' sums, the first
     * argmax, the label's and the runner-up's exp). */
    double best = fastce_row_max_any(row, is_f32, n_classes);
    float best_f32 = (float)best;
    double z_label = fastce_load(row, is_f32, label);
    double total = 0.0, tilted = 0.0, squares = 0.0, n_above = 0.0;
    double e_label = 0.0, e_second = 0.0, n_at_max = 0.0;
    ptrdiff_t argmax = n_classes;
    float exps_f32[FASTCE_PROFILE_RUN];
    double exps_f64[FASTCE_PROFILE_RUN];
    for (ptrdiff_t run = 0; run < n_classes; run += FASTCE_PROFILE_RUN) {
        ptrdiff_t length = n_classes - run < FASTCE_PROFILE_RUN ? n_classes - run
                                                                : FASTCE_PROFILE_RUN;
        if (is_f32) {
            const float *z = (const float *)row + run;
            FASTCE_SIMD_CLAUSES(if(simd : length >= FASTCE_PROFILE_SIMD_MIN))
            for (ptrdiff_t i = 0; i < length; ++i)
                exps_f32[i] = fastce_row_exp_f32(z[i] - best_f32);
        } else {
            const double *z = (const double *)row + run;
            FASTCE_SIMD_CLAUSES(if(simd : length >= FASTCE_PROFILE_SIMD_MIN))
            for (ptrdiff_t i = 0; i < length; ++i)
                exps_f64[i] = fastce_row_exp_f64(z[i] - best);
        }
        FASTCE_SIMD_CLAUSES(reduction(+ : total, tilted, squares, n_above, n_at_max, e_label)
                            reduction(max : e_second) reduction(min : argmax)
                            if(simd : length >= FASTCE_PROFILE_SIMD_MIN))
        for (ptrdiff_t i = 0; i < length; ++i) {
            ptrdiff_t c = run + i;
            double z = fastce_load(row, is_f32, c);
            double e = is_f32 ? (double)exps_f32[i] : exps_f64[i];
            double shifted = z - best;
            total += e;
            tilted += e > 0.0 ? e * shifted : 0.0;
            squares += e * e;
            n_above += z > z_label ? 1.0 : 0.0;
            e_label += c == label ? e : 0.0;
            int at_max = z == best;
            argmax = at_max && c < argmax ? c : argmax;
            n_at_max += at_max ? 1.0 : 0.0;
            double below = z < best ? e : 0.0;
            e_second = below > e_second ? below : e_second;
        }
    }
    if (n_at_max >= 2.0)
        e_second = 1.0;
    double log_total = log(total);
    double inv_total = 1.0 / total;
    double loss = (best - z_label) + log_total;
    double p_label = e_label * inv_total;
    if (total != total)  /* NaN in the row: NaN throughout, as the sums */
        p_label = NAN;
    out->loss = loss < FASTCE_LOSS_CLAMP ? loss : (loss != loss ? loss : FASTCE_LOSS_CLAMP);
    out->confidence = inv_total;
    out->margin = (1.0 - e_second) * inv_total;
    out->entropy = log_total - tilted * inv_total;
    out->self_confidence = p_label;
    out->brier = squares * inv_total * inv_total - 2.0 * p_label + 1.0;
    out->prediction = argmax < n_classes ? argmax : 0;
    out->n_above = (int64_t)n_above;
}

/* Probabilities as given (checked in [0, 1] by the caller's pass): no exp. */
static FASTCE_ALWAYS_INLINE void fastce_probs_row_stats_typed(
    const void *row, int is_f32, ptrdiff_t n_classes, int64_t label, fastce_sample_stats *out)
{
    double best, second;
    ptrdiff_t argmax;
    fastce_row_top2(row, is_f32, n_classes, &best, &argmax, &second);
    double p_label = fastce_load(row, is_f32, label);
    double entropy = 0.0, squares = 0.0, n_above = 0.0;
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        double p = fastce_load(row, is_f32, c);
        entropy -= p > 0.0 ? p * log(p) : 0.0;
        squares += p * p;
        n_above += p > p_label ? 1.0 : 0.0;
    }
    double log_p = log(p_label);
    out->loss = -(log_p > -FASTCE_LOSS_CLAMP ? log_p : -FASTCE_LOSS_CLAMP);
    out->confidence = best;
    out->margin = best - (second > -INFINITY ? second : 0.0);
    out->entropy = entropy;
    out->self_confidence = p_label;
    out->brier = squares - 2.0 * p_label + 1.0;
    out->prediction = argmax;
    out->n_above = (int64_t)n_above;
}

/* Any entry outside [0, 1] (NaN included)? Returns its class, or -1. */
static inline ptrdiff_t fastce_probs_row_invalid(const void *row, int is_f32,
                                                 ptrdiff_t n_classes)
{
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        double p = fastce_load(row, is_f32, c);
        if (!(p >= 0.0 && p <= 1.0))
            return c;
    }
    return -1;
}

/* A binary sample as the two classes [1 - p, p]: from a logit z through the
 * binary family's formulas (softplus and sigmoid without cancellation), or
 * from p. label is 0 or 1. */
static inline void fastce_binary_stats(double x, int is_logit, int64_t label,
                                       fastce_sample_stats *out)
{
    double p, not_p, loss;
    if (is_logit) {
        double slope, curvature, unused, unused_curv;
        loss = fastce_binary_point_f64(FASTCE_BCE_LOGITS, x, (double)label, 1.0, 0.0, 0.0,
                                       &slope, &curvature);
        p = fastce_binary_point_f64(FASTCE_SIGMOID, x, 0.0, 1.0, 0.0, 0.0, &unused,
                                    &unused_curv);
        not_p = fastce_binary_point_f64(FASTCE_SIGMOID, -x, 0.0, 1.0, 0.0, 0.0, &unused,
                                        &unused_curv);
    } else {
        p = x;
        not_p = 1.0 - x;
        double log_p = log(label ? p : not_p);
        loss = -(log_p > -FASTCE_LOSS_CLAMP ? log_p : -FASTCE_LOSS_CLAMP);
    }
    double p_label = label ? p : not_p;
    int predicted = is_logit ? x > 0.0 : p > not_p; /* a tie predicts class 0 */
    double entropy = (p > 0.0 ? -p * log(p) : 0.0) + (not_p > 0.0 ? -not_p * log(not_p) : 0.0);
    double residual = label ? not_p : p; /* |p - y| without cancellation */
    out->loss = loss < FASTCE_LOSS_CLAMP ? loss : (loss != loss ? loss : FASTCE_LOSS_CLAMP);
    out->confidence = predicted ? p : not_p;
    out->margin = predicted ? p - not_p : not_p - p;
    out->entropy = entropy;
    out->self_confidence = p_label;
    out->brier = 2.0 * residual * residual;
    out->prediction = predicted;
    out->n_above = (label ? not_p > p : p > not_p) ? 1 : 0;
    if (x != x) {
        out->margin = out->confidence = out->entropy = out->brier = NAN;
        out->self_confidence = NAN;
    }
}

/* ---------------------------------------------------------------------------
 * Confident learning, second pass (cleanlab's find_label_issues with
 * filter_by="confident_learning"). Class k is confident for a sample when
 * p_k >= t_k - 1e-6 (cleanlab's tolerance), t_k the mean self-confidence of
 * class k from the first pass. A sample is an issue when it has a confident
 * class, its guessed true label (the confident class; the argmax when
 * several are confident) differs from its label, and cleanlab's final filter
 * keeps it: the argmax of p with p_y raised by 1e-6 is not y.
 * ``threshold`` holds t_k - 1e-6 (probabilities), or log(t_k - 1e-6)
 * (logits: p_k >= t <=> z_k >= lse + log t, no exp per element).
 * Returns 1 for an issue and sets *self_confidence to p_y.
 */
#define FASTCE_CL_TOLERANCE 1e-6

static FASTCE_ALWAYS_INLINE int fastce_label_issue_typed(
    const void *row, int is_f32, int is_logit, ptrdiff_t n_classes, int64_t label,
    const double *threshold, double *self_confidence)
{
    /* A sample whose label holds the row's largest value is never an issue:
     * cleanlab's final filter (p_y raised by 1e-6 is the argmax) removes it.
     * That takes one max pass; most samples of a useful model stop here. */
    double best = fastce_row_max_any(row, is_f32, n_classes);
    double label_value = fastce_load(row, is_f32, label);
    *self_confidence = NAN;
    if (!(label_value < best))
        return 0;
    /* Otherwise the argmax is another class, the first at the max (the
     * rival of the final filter), and for logits lse = max + log S. */
    double total = 0.0;
    ptrdiff_t argmax = n_classes;
    FASTCE_SIMD_CLAUSES(reduction(+ : total) reduction(min : argmax)
                        if(simd : n_classes >= FASTCE_PROFILE_SIMD_MIN))
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        double v = fastce_load(row, is_f32, c);
        argmax = v == best && c < argmax ? c : argmax;
        if (is_logit) /* in double: the thresholds compare against it */
            total += fastce_row_exp_f64(v - best);
    }
    double lse = is_logit ? best + log(total) : 0.0;
    ptrdiff_t n_confident = 0, first_confident = n_classes;
    FASTCE_SIMD_CLAUSES(reduction(+ : n_confident) reduction(min : first_confident)
                        if(simd : n_classes >= FASTCE_PROFILE_SIMD_MIN))
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        double v = fastce_load(row, is_f32, c);
        int confident = is_logit ? v - lse >= threshold[c] : v >= threshold[c];
        n_confident += confident;
        first_confident = confident && c < first_confident ? c : first_confident;
    }
    double p_label = is_logit ? fastce_exp(label_value - lse) : label_value;
    *self_confidence = p_label;
    if (n_confident == 0)
        return 0;
    ptrdiff_t guess = n_confident > 1 ? argmax : first_confident;
    if (guess == label)
        return 0;
    /* cleanlab's final filter: the argmax of p after p_y += 1e-6, first index
     * on ties; the rival is the argmax (p = 1 / S for logits). */
    double raised = p_label + FASTCE_CL_TOLERANCE;
    double rival_p = is_logit ? 1.0 / total : best;
    if (raised > rival_p || (raised == rival_p && label < argmax))
        return 0;
    return 1;
}

/* The dispatchers: one specialised copy of each row function per dtype and kind
   (each _typed call below has constant flags, so it inlines into its own copy). */
static inline void fastce_row_stats(const void *row, int is_f32, int is_logit,
                                    ptrdiff_t n_classes, int64_t label,
                                    fastce_sample_stats *out)
{
    if (is_logit) {
        if (is_f32)
            fastce_logits_row_stats_typed(row, 1, n_classes, label, out);
        else
            fastce_logits_row_stats_typed(row, 0, n_classes, label, out);
    } else if (is_f32) {
        fastce_probs_row_stats_typed(row, 1, n_classes, label, out);
    } else {
        fastce_probs_row_stats_typed(row, 0, n_classes, label, out);
    }
}

static inline int fastce_label_issue(const void *row, int is_f32, int is_logit,
                                     ptrdiff_t n_classes, int64_t label,
                                     const double *threshold, double *self_confidence)
{
    if (is_f32)
        return is_logit ? fastce_label_issue_typed(row, 1, 1, n_classes, label, threshold,
                                                   self_confidence)
                        : fastce_label_issue_typed(row, 1, 0, n_classes, label, threshold,
                                                   self_confidence);
    return is_logit ? fastce_label_issue_typed(row, 0, 1, n_classes, label, threshold,
                                               self_confidence)
                    : fastce_label_issue_typed(row, 0, 0, n_classes, label, threshold,
                                               self_confidence);
}

#endif
