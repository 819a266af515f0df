/* The row kernels' typed body: instantiated for float and double rows by
 * _math_rows.h through _math_typed.h (FT, FASTCE_TYPED(name) ->
 * fastce_<name>_f32 / fastce_<name>_f64). No include guard: included once
 * per dtype.
 *
 * row_max: the largest entry, NaN entries skipped (they surface as NaN in the
 *   exp pass instead); -inf for an all -inf (or all-NaN) row.
 * row_exp_sum: the sum of exp(z_c - row_max) over the entries below row_max
 *   (in the row's type over chunks of FASTCE_ROW_CHUNK, in double across them),
 *   and (in *n_at_max_out) how many entries equal it; a part of a long row
 *   (split across threads) is summed this way, row_exp_rest combines them.
 * row_exp_rest: sum_c exp(z_c - row_max) - 1, written into exp_out when it
 *   is not NULL (it may alias z). Entries equal to the maximum are counted,
 *   not summed (each is exactly 1) and one is left out, so log1p(rest) keeps
 *   full relative accuracy when one class dominates.
 * row_scale: out_c = in_c * scale - shift_c * shift_scale (shift may be NULL,
 *   in may be out).
 * rows_rest: row_max, row_exp_rest and log1p(rest) for a run of short rows
 *   (fewer classes than a vector has lanes, where per-row loops would run in
 *   their scalar remainders), computed across the rows, a row a vector lane;
 *   the sums follow the same rules as row_exp_rest. A loss or a log-softmax
 *   needs no more.
 * rows_exp_rest: rows_rest, and the run's exps written to exp_out (for a
 *   gradient or a softmax; it must not alias z).
 */

static inline double FASTCE_TYPED(row_max)(const FT *z, ptrdiff_t n_classes)
{
    FT best = -INFINITY;
    FASTCE_SIMD_REDUCTION(max : best)
    for (ptrdiff_t c = 0; c < n_classes; ++c)
        best = z[c] > best ? z[c] : best;
    return (double)best;
}

/* The exps of one chunk's entries (count of them, a multiple of the vector
 * width or not), added in FT lanes to *chunk_rest, and the ties counted. */
static FASTCE_ALWAYS_INLINE void FASTCE_TYPED(chunk_exp_sum)(const FT *chunk, FT *chunk_out,
                                                             ptrdiff_t count, FT best,
                                                             FT *chunk_rest,
                                                             int *chunk_at_max)
{
    FT rest = 0;
    int at_max_count = 0;
    if (chunk_out != NULL) {
        FASTCE_SIMD_REDUCTION(+ : rest, at_max_count)
        for (ptrdiff_t c = 0; c < count; ++c) {
            FT value = chunk[c];
            FT scaled = FASTCE_TYPED(row_exp)(value - best);
            chunk_out[c] = scaled;
            int at_max = value == best;
            at_max_count += at_max;
            rest += at_max ? (FT)0 : scaled;
        }
    } else {
        FASTCE_SIMD_REDUCTION(+ : rest, at_max_count)
        for (ptrdiff_t c = 0; c < count; ++c) {
            FT value = chunk[c];
            FT scaled = FASTCE_TYPED(row_exp)(value - best);
            int at_max = value == best;
            at_max_count += at_max;
            rest += at_max ? (FT)0 : scaled;
        }
    }
    *chunk_rest += rest;
    *chunk_at_max += at_max_count;
}

static inline double FASTCE_TYPED(row_exp_sum)(const FT *z, FT *exp_out,
                                               ptrdiff_t n_classes,
                                               double row_max,
                                               ptrdiff_t *n_at_max_out)
{
    /* In the row's own type: the max is one of its entries, so z - max and
     * the tie test are exact. Each chunk's sum runs in FT lanes and is widened
     * to double (see FASTCE_ROW_CHUNK); chunks are added in order. */
    const FT best = (FT)row_max;
    double rest = 0.0;
    ptrdiff_t n_at_max = 0;
    for (ptrdiff_t start = 0; start < n_classes; start += FASTCE_ROW_CHUNK) {
        const FT *chunk = z + start;
        ptrdiff_t count = n_classes - start;
        count = count < FASTCE_ROW_CHUNK ? count : FASTCE_ROW_CHUNK;
        ptrdiff_t whole = count - count % FASTCE_ROW_TAIL;
        FT chunk_rest = 0;
        int chunk_at_max = 0;
        /* The same classes of the next row (rows are contiguous): read from
         * memory while this chunk computes, found in cache by its max pass. */
        fastce_prefetch(chunk + n_classes, (size_t)count * sizeof(FT));
        FASTCE_TYPED(chunk_exp_sum)(chunk, exp_out != NULL ? exp_out + start : NULL, whole,
                                    best, &chunk_rest, &chunk_at_max);
        if (whole < count) {
            /* The last few entries, padded to FASTCE_ROW_TAIL with copies of an
             * entry at the max (exp 1, a tie) whose ties and exps are taken back
             * out: a whole vector instead of a scalar remainder loop, which took
             * a fifth of a 1000-class row's time. */
            FT tail[FASTCE_ROW_TAIL], tail_exp[FASTCE_ROW_TAIL];
            ptrdiff_t n_tail = count - whole;
            for (ptrdiff_t c = 0; c < FASTCE_ROW_TAIL; ++c)
                tail[c] = c < n_tail ? chunk[whole + c] : best;
            FT tail_rest = 0;
            int tail_at_max = 0;
            FASTCE_TYPED(chunk_exp_sum)(tail, tail_exp, FASTCE_ROW_TAIL, best, &tail_rest,
                                        &tail_at_max);
            chunk_rest += tail_rest;
            chunk_at_max += tail_at_max - (int)(FASTCE_ROW_TAIL - n_tail);
            if (exp_out != NULL)
                for (ptrdiff_t c = 0; c < n_tail; ++c)
                    exp_out[start + whole + c] = tail_exp[c];
        }
        rest += (double)chunk_rest;
        n_at_max += chunk_at_max;
    }
    *n_at_max_out = n_at_max;
    return rest;
}

static inline double FASTCE_TYPED(row_exp_rest)(const FT *z, FT *exp_out,
                                                ptrdiff_t n_classes,
                                                double row_max)
{
    ptrdiff_t n_at_max;
    double rest = FASTCE_TYPED(row_exp_sum)(z, exp_out, n_classes, row_max, &n_at_max);
    return rest + (double)(n_at_max - 1);
}

static inline void FASTCE_TYPED(row_scale)(FT *out, const FT *in,
                                           ptrdiff_t n_classes, double scale,
                                           const FT *shift, double shift_scale)
{
    if (shift == NULL) {
        FASTCE_SIMD
        for (ptrdiff_t c = 0; c < n_classes; ++c)
            out[c] = (FT)((double)in[c] * scale - shift_scale);
    } else {
        FASTCE_SIMD
        for (ptrdiff_t c = 0; c < n_classes; ++c)
            out[c] = (FT)((double)in[c] * scale - (double)shift[c] * shift_scale);
    }
}

static inline void FASTCE_TYPED(row_hessian)(FT *hess, const FT *exp_row,
                                             ptrdiff_t n_classes, double inv_sum,
                                             double rest, double scale)
{
    /* p (1 - p) with p = e / (1 + rest); for an entry at the max (e = 1)
     * 1 - p = rest / (1 + rest) exactly, instead of a cancelling 1 - p. */
    FASTCE_SIMD
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        double prob = (double)exp_row[c] * inv_sum;
        double complement = exp_row[c] == (FT)1 ? rest * inv_sum : 1.0 - prob;
        hess[c] = (FT)(scale * prob * complement);
    }
}

static inline void FASTCE_TYPED(rows_rest)(const FT *z, ptrdiff_t n_rows,
                                           ptrdiff_t n_classes, double *row_max,
                                           double *row_rest, double *row_log_sum)
{
    /* The run is transposed first (by_class[c * FASTCE_SHORT_RUN_ROWS + r]), so
     * that the max and sum loops run across rows, one row a vector lane: a
     * 10-long row's own loops would be scalar chains and remainders. Each row's sum
     * still runs over its classes in order, in double, and its ties are
     * counted, not summed (each exp at the max is exactly 1): the same values,
     * bit for bit, as each row summed on its own. */
    FT by_class[FASTCE_SHORT_RUN_ROWS * FASTCE_SHORT_ROW_CLASSES];
    FT best[FASTCE_SHORT_RUN_ROWS];
    double rest[FASTCE_SHORT_RUN_ROWS];
    int32_t n_at_max[FASTCE_SHORT_RUN_ROWS];
    for (ptrdiff_t r = 0; r < n_rows; ++r)
        for (ptrdiff_t c = 0; c < n_classes; ++c)
            by_class[c * FASTCE_SHORT_RUN_ROWS + r] = z[r * n_classes + c];
    FASTCE_SIMD
    for (ptrdiff_t r = 0; r < n_rows; ++r) {
        best[r] = -INFINITY;
        rest[r] = 0.0;
        n_at_max[r] = 0;
    }
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        const FT *column = by_class + c * FASTCE_SHORT_RUN_ROWS;
        FASTCE_SIMD
        for (ptrdiff_t r = 0; r < n_rows; ++r)
            best[r] = column[r] > best[r] ? column[r] : best[r];
    }
    for (ptrdiff_t c = 0; c < n_classes; ++c) {
        const FT *column = by_class + c * FASTCE_SHORT_RUN_ROWS;
        FASTCE_SIMD
        for (ptrdiff_t r = 0; r < n_rows; ++r) {
            FT value = column[r];
            FT scaled = FASTCE_TYPED(row_exp)(value - best[r]);
            int at_max = value == best[r];
            n_at_max[r] += at_max;
            rest[r] += at_max ? 0.0 : (double)scaled;
        }
    }
    FASTCE_SIMD
    for (ptrdiff_t r = 0; r < n_rows; ++r) {
        row_max[r] = (double)best[r];
        row_rest[r] = rest[r] + (double)(n_at_max[r] - 1);
        row_log_sum[r] = fastce_log1p_nonneg(row_rest[r]);
    }
}

static inline void FASTCE_TYPED(rows_exp_rest)(const FT *z, FT *exp_out,
                                               ptrdiff_t n_rows,
                                               ptrdiff_t n_classes,
                                               double *row_max, double *row_rest,
                                               double *row_log_sum)
{
    /* The sums as rows_rest forms them, then the exps in the rows' own layout
     * for their readers: the shifts z - row_max laid out flat and ONE long
     * vectorised loop over them (cheaper than transposing rows_rest's exps
     * back, which cost 6-9% of a 10-class gradient). */
    FASTCE_TYPED(rows_rest)(z, n_rows, n_classes, row_max, row_rest, row_log_sum);
    for (ptrdiff_t r = 0; r < n_rows; ++r) {
        const FT best = (FT)row_max[r]; /* exact: one of the row's entries */
        for (ptrdiff_t c = 0; c < n_classes; ++c)
            exp_out[r * n_classes + c] = z[r * n_classes + c] - best;
    }
    ptrdiff_t n_total = n_rows * n_classes;
    FASTCE_SIMD
    for (ptrdiff_t i = 0; i < n_total; ++i)
        exp_out[i] = FASTCE_TYPED(row_exp)(exp_out[i]);
}

static inline void FASTCE_TYPED(row_log_softmax)(const FT *z, FT *out,
                                                 ptrdiff_t n_classes,
                                                 double row_max, double log_sum)
{
    FASTCE_SIMD
    for (ptrdiff_t c = 0; c < n_classes; ++c)
        out[c] = (FT)(((double)z[c] - row_max) - log_sum);
}
