/* The column kernels' typed body: instantiated for float and double by
 * _math_cols.h through _math_typed.h (FT, FASTCE_TYPED(name) ->
 * fastce_<name>_f32 / fastce_<name>_f64). No include guard: included once
 * per dtype.
 *
 * Column kernels: a class axis that is not the last one, as in torch's
 * (N, C, d1, ...) layout. For one n, z[c * class_stride + w] holds class c
 * at position w; a tile of `width` contiguous positions is processed at
 * once, vectorised across positions, with per-position max / rest arrays.
 * Same rules as the row kernels (max, ties, exps in the row's own type). */

static inline void FASTCE_TYPED(cols_max)(const FT *z, ptrdiff_t class_stride,
                                          ptrdiff_t n_classes, ptrdiff_t width,
                                          double *col_max)
{
    FT best[FASTCE_COLS_TILE];
    for (ptrdiff_t w = 0; w < width; ++w)
        best[w] = -INFINITY;
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        const FT *z_c = z + c * class_stride;
        FASTCE_SIMD
        for (ptrdiff_t w = 0; w < width; ++w)
            best[w] = z_c[w] > best[w] ? z_c[w] : best[w];
    }
    for (ptrdiff_t w = 0; w < width; ++w)
        col_max[w] = (double)best[w];
}

static inline void FASTCE_TYPED(cols_exp_rest)(const FT *z, FT *exp_out,
                                               ptrdiff_t class_stride,
                                               ptrdiff_t n_classes,
                                               ptrdiff_t width,
                                               const double *col_max,
                                               double *col_rest)
{
    FT best[FASTCE_COLS_TILE];
    double n_at_max[FASTCE_COLS_TILE];
    for (ptrdiff_t w = 0; w < width; ++w) {
        best[w] = (FT)col_max[w];
        col_rest[w] = 0.0;
        n_at_max[w] = 0.0;
    }
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        const FT *z_c = z + c * class_stride;
        FT *exp_c = exp_out != NULL ? exp_out + c * class_stride : NULL;
        if (exp_c != NULL) {
            FASTCE_SIMD
            for (ptrdiff_t w = 0; w < width; ++w) {
                FT value = z_c[w];
                FT scaled = FASTCE_TYPED(row_exp)(value - best[w]);
                exp_c[w] = scaled;
                int at_max = value == best[w];
                n_at_max[w] += at_max ? 1.0 : 0.0;
                col_rest[w] += at_max ? 0.0 : (double)scaled;
            }
        } else {
            FASTCE_SIMD
            for (ptrdiff_t w = 0; w < width; ++w) {
                FT value = z_c[w];
                FT scaled = FASTCE_TYPED(row_exp)(value - best[w]);
                int at_max = value == best[w];
                n_at_max[w] += at_max ? 1.0 : 0.0;
                col_rest[w] += at_max ? 0.0 : (double)scaled;
            }
        }
    }
    for (ptrdiff_t w = 0; w < width; ++w)
        col_rest[w] += n_at_max[w] - 1.0;
}

/* out[c, w] = in[c, w] * scale[w] - shift_c * shift_scale[w], shift_c = 1
 * without class weights; in may be out. */
static inline void FASTCE_TYPED(cols_scale)(FT *out, const FT *in,
                                            ptrdiff_t class_stride,
                                            ptrdiff_t n_classes, ptrdiff_t width,
                                            const double *scale, const FT *shift,
                                            const double *shift_scale)
{
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        FT *out_c = out + c * class_stride;
        const FT *in_c = in + c * class_stride;
        double shift_c = shift != NULL ? (double)shift[c] : 1.0;
        FASTCE_SIMD
        for (ptrdiff_t w = 0; w < width; ++w)
            out_c[w] = (FT)((double)in_c[w] * scale[w] - shift_c * shift_scale[w]);
    }
}

static inline void FASTCE_TYPED(cols_log_softmax)(const FT *z, FT *out,
                                                  ptrdiff_t class_stride,
                                                  ptrdiff_t n_classes,
                                                  ptrdiff_t width,
                                                  const double *col_max,
                                                  const double *log_sum)
{
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        const FT *z_c = z + c * class_stride;
        FT *out_c = out + c * class_stride;
        FASTCE_SIMD
        for (ptrdiff_t w = 0; w < width; ++w)
            out_c[w] = (FT)(((double)z_c[w] - col_max[w]) - log_sum[w]);
    }
}

static inline void FASTCE_TYPED(cols_hessian)(FT *hess, const FT *exp_in,
                                              ptrdiff_t class_stride,
                                              ptrdiff_t n_classes,
                                              ptrdiff_t width,
                                              const double *inv_sum,
                                              const double *rest,
                                              const double *scale)
{
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        const FT *exp_c = exp_in + c * class_stride;
        FT *hess_c = hess + c * class_stride;
        FASTCE_SIMD
        for (ptrdiff_t w = 0; w < width; ++w) {
            double prob = (double)exp_c[w] * inv_sum[w];
            double complement = exp_c[w] == (FT)1 ? rest[w] * inv_sum[w] : 1.0 - prob;
            hess_c[w] = (FT)(scale[w] * prob * complement);
        }
    }
}
