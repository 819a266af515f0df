/* Information measures (entropy, KL, Jensen-Shannon, categorical
 * cross-entropy): one term of a row's sum.
 *
 * Part of _vecmath.h (the umbrella that the .pxd files include).
 */
#ifndef FASTCE_MATH_INFORMATION_H
#define FASTCE_MATH_INFORMATION_H

#include "_math_scalar.h"

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

#endif
