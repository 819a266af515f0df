/* The linear models' typed body: instantiated for float and double by
 * _math_linear.h through _math_typed.h (FT, FASTCE_TYPED(name) ->
 * fastce_<name>_f32 / fastce_<name>_f64). No include guard: included once
 * per dtype.
 *
 * Linear models: x . w and acc += a x, in double (the reduction lets GCC
 * vectorise the dot product; its order is fixed by the code). */

static inline double FASTCE_TYPED(dot)(const FT *x, const FT *w, ptrdiff_t n)
{
    double total = 0.0;
    FASTCE_SIMD_REDUCTION(+ : total)
    for (ptrdiff_t j = 0; j < n; ++j)
        total += (double)x[j] * (double)w[j];
    return total;
}

static inline double FASTCE_TYPED(dot_mixed)(const FT *x, const double *w,
                                             ptrdiff_t n)
{
    double total = 0.0;
    FASTCE_SIMD_REDUCTION(+ : total)
    for (ptrdiff_t j = 0; j < n; ++j)
        total += (double)x[j] * w[j];
    return total;
}

static inline void FASTCE_TYPED(axpy)(double *acc, double a, const FT *x,
                                      ptrdiff_t n)
{
    FASTCE_SIMD
    for (ptrdiff_t j = 0; j < n; ++j)
        acc[j] += a * (double)x[j];
}
