/* The binary family's typed body: instantiated for float and double by
 * _math_binary.h through _math_typed.h (FT, FASTCE_TYPED(name) ->
 * fastce_<name>_f32 / fastce_<name>_f64, FASTCE_TYPED_EXP,
 * FASTCE_TYPED_LOG1P_UNIT). Each dtype runs in its own precision with its own
 * exp/log1p, so float32 data runs 16 lanes a vector on AVX-512.
 *
 * softplus_parts: one exp serves softplus(+-t) and sigmoid(+-t). With
 *   e = exp(-|t|) <= 1 nothing overflows, softplus(+-t) = max(+-t, 0) +
 *   log1p(e), and sigmoid(-t) is formed from e, never as 1 - sigmoid(t)
 *   (which cancels). NaN t gives NaN everywhere (t >= 0 is false, e is NaN).
 *
 * The per-kind points: loss of one element, and its derivative w.r.t. x in
 * *grad (and the second derivative in *curv where the kind has one).
 * bce_logits_point: l = (1-y) softplus(z) + pw y softplus(-z),
 *                   dl/dz = (1-y) sigmoid(z) - pw y sigmoid(-z).
 *   Not torch's (1-y) z + (1+(pw-1)y) softplus(-z): that form cancels for
 *   y = 0 and z << 0. A term whose factor is 0 is exactly 0 (no 0*inf = NaN),
 *   so z = +inf with y = 1 gives l = 0, and z = -inf with y = 0 gives l = 0.
 * logistic_point: y in {-1, +1}: l = softplus(-y s), dl/ds = -y sigmoid(-y s).
 * sigmoid_point, log_sigmoid_point: sigmoid(x), log sigmoid(x) = -softplus(-x).
 * Focal and probabilities are computed in double for both dtypes
 * (fastce_focal_point, fastce_bce_probs_point in _math_binary.h).
 *
 * No include guard: included once per dtype.
 */

static inline FT FASTCE_TYPED(positive_part)(FT t)
{
    return t < (FT)0 ? (FT)0 : t; /* max(t, 0) that keeps NaN */
}

static inline FT FASTCE_TYPED(softplus_parts)(FT t, FT *sig_pos, FT *sig_neg)
{
    FT e = FASTCE_TYPED_EXP(t < (FT)0 ? t : -t);
    FT r = (FT)1 / ((FT)1 + e);
    *sig_pos = t >= (FT)0 ? r : e * r;
    *sig_neg = t >= (FT)0 ? e * r : r;
    return FASTCE_TYPED_LOG1P_UNIT(e);
}

static FASTCE_ALWAYS_INLINE FT FASTCE_TYPED(bce_logits_point)(FT x, FT target, FT pos_weight,
                                                              FT *grad, FT *curv)
{
    FT sig_pos, sig_neg;
    FT log_term = FASTCE_TYPED(softplus_parts)(x, &sig_pos, &sig_neg);
    FT neg_factor = (FT)1 - target;
    FT pos_factor = pos_weight * target;
    FT neg_term = neg_factor * (FASTCE_TYPED(positive_part)(x) + log_term);
    FT pos_term = pos_factor * (FASTCE_TYPED(positive_part)(-x) + log_term);
    *grad = (neg_factor != (FT)0 ? neg_factor * sig_pos : (FT)0)
          - (pos_factor != (FT)0 ? pos_factor * sig_neg : (FT)0);
    *curv = (neg_factor + pos_factor) * sig_pos * sig_neg;
    return (neg_factor != (FT)0 ? neg_term : (FT)0)
         + (pos_factor != (FT)0 ? pos_term : (FT)0);
}

static FASTCE_ALWAYS_INLINE FT FASTCE_TYPED(logistic_point)(FT x, FT target, FT *grad,
                                                            FT *curv)
{
    FT sig_pos, sig_neg;
    FT neg_margin = -target * x;
    FT log_term = FASTCE_TYPED(softplus_parts)(neg_margin, &sig_pos, &sig_neg);
    *grad = -target * sig_pos;
    *curv = sig_pos * sig_neg;
    return FASTCE_TYPED(positive_part)(neg_margin) + log_term;
}

static FASTCE_ALWAYS_INLINE FT FASTCE_TYPED(sigmoid_point)(FT x)
{
    FT sig_pos, sig_neg;
    FASTCE_TYPED(softplus_parts)(x, &sig_pos, &sig_neg);
    return sig_pos;
}

static FASTCE_ALWAYS_INLINE FT FASTCE_TYPED(log_sigmoid_point)(FT x)
{
    FT sig_pos, sig_neg;
    FT log_term = FASTCE_TYPED(softplus_parts)(x, &sig_pos, &sig_neg);
    return -(FASTCE_TYPED(positive_part)(-x) + log_term);
}

/* Any kind through one signature (the curvature is 0 where a kind has none).
 * Forced inline: the chunk loop calls it with a constant kind, which folds
 * the dispatch to one formula. */
static FASTCE_ALWAYS_INLINE FT FASTCE_TYPED(binary_point_kind)(int kind, FT x, FT target,
                                                               FT pos_weight, double alpha,
                                                               double gamma, FT *grad,
                                                               FT *curv)
{
    *curv = (FT)0;
    if (kind == FASTCE_BCE_LOGITS)
        return FASTCE_TYPED(bce_logits_point)(x, target, pos_weight, grad, curv);
    if (kind == FASTCE_LOGISTIC)
        return FASTCE_TYPED(logistic_point)(x, target, grad, curv);
    if (kind == FASTCE_FOCAL || kind == FASTCE_FOCAL_HARD || kind == FASTCE_FOCAL_SQUARE) {
        double slope;
        double loss = fastce_focal_point(kind, (double)x, (double)target, alpha, gamma,
                                         &slope);
        *grad = (FT)slope;
        return (FT)loss;
    }
    if (kind == FASTCE_BCE_PROBS) {
        double slope;
        double loss = fastce_bce_probs_point((double)x, (double)target, &slope);
        *grad = (FT)slope;
        return (FT)loss;
    }
    *grad = (FT)0;
    if (kind == FASTCE_SIGMOID)
        return FASTCE_TYPED(sigmoid_point)(x);
    return FASTCE_TYPED(log_sigmoid_point)(x);
}

/* The exported any-kind point (_vecmath.pxd, _profile.h), for callers whose
 * kind is a run-time value or who want loss, slope and curvature at once. */
static inline FT FASTCE_TYPED(binary_point)(int kind, FT x, FT target, FT pos_weight,
                                            double alpha, double gamma, FT *grad, FT *curv)
{
    return FASTCE_TYPED(binary_point_kind)(kind, x, target, pos_weight, alpha, gamma, grad,
                                           curv);
}

/* The elementwise loop of a binary loss over one chunk, for a constant kind
 * so that the point folds to one formula (binary_chunk calls it once per
 * kind, with a literal). Invalid elements and zero weights contribute
 * exactly 0; *n_invalid counts the former, and the caller rescans a chunk
 * only when it is not 0. x and grad may alias (each element is read before
 * its gradient is stored), which `omp simd` allows. Returns the sum of the
 * weighted losses. */
static FASTCE_ALWAYS_INLINE double FASTCE_TYPED(binary_loop)(int kind, const FT *x,
                                                             const FT *y, const FT *w,
                                                             const FT *pw, FT *loss,
                                                             FT *grad, FT *hess,
                                                             double grad_scale,
                                                             double alpha, double gamma,
                                                             ptrdiff_t n,
                                                             double *n_invalid)
{
    double total = 0.0, invalid = 0.0;
    FASTCE_SIMD_REDUCTION(+ : total, invalid)
    for (ptrdiff_t i = 0; i < n; ++i) {
        FT x_i = x[i], y_i = y[i], w_i = w[i];
        FT slope, curv;
        FT value = FASTCE_TYPED(binary_point_kind)(kind, x_i, y_i, pw[i], alpha, gamma,
                                                   &slope, &curv);
        int valid = fastce_binary_valid(kind, x_i, y_i, w_i);
        int active = valid && w_i != (FT)0;
        value = active ? w_i * value : (FT)0;
        slope = active ? w_i * slope : (FT)0;
        curv = active ? w_i * curv : (FT)0;
        total += (double)value;
        invalid += valid ? 0.0 : 1.0;
        loss[i] = value;
        grad[i] = (FT)(slope * (FT)grad_scale);
        hess[i] = (FT)(curv * (FT)grad_scale);
    }
    *n_invalid = invalid;
    return total;
}

/* Whether every target of a chunk is 0 or 1 (the focal loop's hard forms). */
static inline int FASTCE_TYPED(all_hard_targets)(const FT *y, ptrdiff_t n)
{
    int soft = 0;
    FASTCE_SIMD_REDUCTION(| : soft)
    for (ptrdiff_t i = 0; i < n; ++i)
        soft |= !(y[i] == (FT)0 || y[i] == (FT)1);
    return !soft;
}

/* The focal loop for any targets, kept out of line: inlined into binary_chunk
 * next to its hard-target forms, GCC 12 ran it in its scalar version. */
static FASTCE_NOINLINE double FASTCE_TYPED(focal_loop)(const FT *x, const FT *y, const FT *w,
                                                     const FT *pw, FT *loss, FT *grad,
                                                     FT *hess, double grad_scale,
                                                     double alpha, double gamma, ptrdiff_t n,
                                                     double *n_invalid)
{
    return FASTCE_TYPED(binary_loop)(FASTCE_FOCAL, x, y, w, pw, loss, grad, hess, grad_scale,
                                     alpha, gamma, n, n_invalid);
}

static inline double FASTCE_TYPED(binary_chunk)(int kind, const FT *x, const FT *y,
                                                const FT *w, const FT *pw, FT *loss,
                                                FT *grad, FT *hess, double grad_scale,
                                                double alpha, double gamma,
                                                ptrdiff_t n, double *n_bad)
{
    double total, invalid;
    switch (kind) {
    case FASTCE_BCE_LOGITS:
        total = FASTCE_TYPED(binary_loop)(FASTCE_BCE_LOGITS, x, y, w, pw, loss, grad, hess,
                                          grad_scale, alpha, gamma, n, &invalid);
        break;
    case FASTCE_LOGISTIC:
        total = FASTCE_TYPED(binary_loop)(FASTCE_LOGISTIC, x, y, w, pw, loss, grad, hess,
                                          grad_scale, alpha, gamma, n, &invalid);
        break;
    case FASTCE_FOCAL:
        if (!FASTCE_TYPED(all_hard_targets)(y, n))
            total = FASTCE_TYPED(focal_loop)(x, y, w, pw, loss, grad, hess, grad_scale,
                                             alpha, gamma, n, &invalid);
        else if (gamma == 2.0)
            total = FASTCE_TYPED(binary_loop)(FASTCE_FOCAL_SQUARE, x, y, w, pw, loss, grad,
                                              hess, grad_scale, alpha, gamma, n, &invalid);
        else
            total = FASTCE_TYPED(binary_loop)(FASTCE_FOCAL_HARD, x, y, w, pw, loss, grad, hess,
                                              grad_scale, alpha, gamma, n, &invalid);
        break;
    default:
        total = FASTCE_TYPED(binary_loop)(FASTCE_BCE_PROBS, x, y, w, pw, loss, grad, hess,
                                          grad_scale, alpha, gamma, n, &invalid);
        break;
    }
    *n_bad = invalid;
    return total;
}

/* sigmoid(x) or log sigmoid(x), elementwise. */
static inline void FASTCE_TYPED(unary_chunk)(int kind, const FT *x, FT *out, ptrdiff_t n)
{
    if (kind == FASTCE_SIGMOID) {
        FASTCE_SIMD
        for (ptrdiff_t i = 0; i < n; ++i)
            out[i] = FASTCE_TYPED(sigmoid_point)(x[i]);
    } else {
        FASTCE_SIMD
        for (ptrdiff_t i = 0; i < n; ++i)
            out[i] = FASTCE_TYPED(log_sigmoid_point)(x[i]);
    }
}
