# The stable per-element math of fastce, in ONE place.
#
# Every loss formula of the library is here, on scalars, in double precision
# (float32 inputs are widened, so float32 results are correctly rounded in
# practice). The array loops in _binary.pyx and _softmax.pyx only call these.
#
# NaN conventions: data (logits, scores) may be NaN and must propagate, so
# branches are written so that a NaN operand takes a path that keeps it
# (``t > 0`` is false for NaN, and every branch below still uses ``t``).
from libc.math cimport exp, log, log1p, INFINITY


# Kinds of elementwise binary losses, dispatched inside one loop so that the
# loop itself is written once (GCC unswitches the loop on ``kind``).
cdef enum BinaryKind:
    KIND_BCE_LOGITS = 0
    KIND_BCE_PROBS = 1
    KIND_LOGISTIC = 2
    KIND_SIGMOID = 3
    KIND_LOG_SIGMOID = 4

cdef extern from *:
    """
    /* torch clamps log(p) at -100 in binary_cross_entropy so that p in {0, 1}
     * gives a finite loss; SPEC.md adopts the same clamp. */
    #define FASTCE_LOG_CLAMP (-100.0)
    /* torch's floor on p(1-p) in the binary_cross_entropy gradient. */
    #define FASTCE_BCE_GRAD_EPS 1e-12
    """
    double LOG_CLAMP "FASTCE_LOG_CLAMP"
    double BCE_GRAD_EPS "FASTCE_BCE_GRAD_EPS"


cdef inline double log1pexp_and_sigmoids(double t, double* sig_pos,
                                         double* sig_neg) noexcept nogil:
    """Return log1p(exp(-|t|)) and set sigmoid(t), sigmoid(-t).

    One exp serves softplus(t), softplus(-t), sigmoid(t) and sigmoid(-t):
    with e = exp(-|t|) <= 1 nothing overflows, and
    softplus(+-t) = max(+-t, 0) + log1p(e). Forming sigmoid(-t) as 1 - sigmoid(t)
    would cancel for large t, so both come from e directly.
    """
    cdef double e = exp(-abs(t))
    cdef double r = 1.0 / (1.0 + e)
    if t >= 0:
        sig_pos[0] = r
        sig_neg[0] = e * r
    else:
        # NaN lands here: e, r and both sigmoids are NaN.
        sig_pos[0] = e * r
        sig_neg[0] = r
    return log1p(e)


cdef inline double softplus(double t) noexcept nogil:
    """log(1 + e^t), exact for every t: the |t| form never overflows."""
    if t > 0:
        return t + log1p(exp(-t))
    return log1p(exp(t))


cdef inline double sigmoid(double t) noexcept nogil:
    cdef double e
    if t >= 0:
        return 1.0 / (1.0 + exp(-t))
    e = exp(t)  # NaN lands here and propagates
    return e / (1.0 + e)


cdef inline double positive_part(double t) noexcept nogil:
    # max(t, 0) that keeps NaN (fmax would drop it).
    return t if not t < 0 else 0.0


cdef inline bint is_unit_interval(double value) noexcept nogil:
    # False for NaN as well.
    return value >= 0.0 and value <= 1.0


cdef inline bint is_valid_weight(double value) noexcept nogil:
    # Non-negative and finite; False for NaN.
    return value >= 0.0 and value < INFINITY


cdef inline bint is_valid_binary_target(int kind, double value) noexcept nogil:
    if kind == KIND_LOGISTIC:
        return value == 1.0 or value == -1.0
    return is_unit_interval(value)


cdef inline double binary_point(int kind, double x, double target,
                                double pos_weight, double* grad) noexcept nogil:
    """Loss of one element and, into grad[0], its derivative w.r.t. x.

    KIND_BCE_LOGITS: l = (1-y) softplus(z) + pw y softplus(-z),
                     dl/dz = (1-y) sigmoid(z) - pw y sigmoid(-z).
        Not torch's (1-y) z + (1+(pw-1)y) softplus(-z): that form cancels for
        y = 0 and z << 0. A term whose factor is 0 is skipped, so 0*inf never
        turns into NaN (z = +inf with y = 1 gives l = 0).
    KIND_BCE_PROBS:  l = -(y max(log p, -100) + (1-y) max(log(1-p), -100)),
                     dl/dp = (p - y) / max(p (1-p), 1e-12).
    KIND_LOGISTIC:   y in {-1,+1}: l = softplus(-y s), dl/ds = -y sigmoid(-y s).
    KIND_SIGMOID / KIND_LOG_SIGMOID: the value sigmoid(x) / log sigmoid(x);
        grad is not used.
    """
    cdef double sig_pos, sig_neg, log_term, neg_factor, pos_factor
    cdef double loss = 0.0, slope = 0.0
    if kind == KIND_BCE_LOGITS:
        log_term = log1pexp_and_sigmoids(x, &sig_pos, &sig_neg)
        neg_factor = 1.0 - target
        pos_factor = pos_weight * target
        if neg_factor != 0.0:
            loss = neg_factor * (positive_part(x) + log_term)
            slope = neg_factor * sig_pos
        if pos_factor != 0.0:
            loss = loss + pos_factor * (positive_part(-x) + log_term)
            slope = slope - pos_factor * sig_neg
    elif kind == KIND_LOGISTIC:
        # margin m = y s; l = softplus(-m)
        log_term = log1pexp_and_sigmoids(-target * x, &sig_pos, &sig_neg)
        loss = positive_part(-target * x) + log_term
        slope = -target * sig_pos
    elif kind == KIND_BCE_PROBS:
        if target != 0.0:
            loss = -target * max(log(x), LOG_CLAMP)
        if target != 1.0:
            loss = loss - (1.0 - target) * max(log1p(-x), LOG_CLAMP)
        slope = (x - target) / max(x * (1.0 - x), BCE_GRAD_EPS)
    elif kind == KIND_SIGMOID:
        loss = sigmoid(x)
    else:
        loss = -softplus(-x)
    grad[0] = slope
    return loss
