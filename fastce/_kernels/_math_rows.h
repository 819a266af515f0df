/* Row kernels (the class axis last): row max, exp-sum and exp-rest, scale,
 * hessian, log_softmax, and the multi-row kernel for short rows. The row
 * loops are here because Cython cannot emit the `omp simd reduction` pragmas
 * they need. Row exps run in the row's own precision (float rows: 4-16 lanes
 * a vector); sums run in the row's type over chunks of FASTCE_ROW_CHUNK
 * classes, and in double across them.
 *
 * Part of _vecmath.h (the umbrella that the .pxd files include).
 */
#ifndef FASTCE_MATH_ROWS_H
#define FASTCE_MATH_ROWS_H

#include "_math_scalar.h"

/* Classes whose exps row_exp_sum adds in the row's own type, in vector lanes,
 * before it widens their sum to double and adds it to the row's: a float sum of
 * at most 16 terms a lane (AVX-512), so its relative error stays below 1.2e-6 in
 * the worst case, while the float exps need no conversion. Also the span of the
 * next row that it prefetches at a time. */
#define FASTCE_ROW_CHUNK 256
/* A row's last entries are taken as one padded block of this many (a multiple
 * of every vector width: 16 floats or 8 doubles on AVX-512). */
#define FASTCE_ROW_TAIL 16

/* Rows taken together by the short-row kernels (at most), and the classes below
 * which a row is short (see _vecmath.pxd). */
#define FASTCE_SHORT_RUN_ROWS 128
#define FASTCE_SHORT_ROW_CLASSES 32

/* The kernels, written once in _math_rows_impl.h. Names formed
 * (FASTCE_TYPED(name)): fastce_<name>_f32 for float rows, fastce_<name>_f64
 * for double rows, name one of row_max, row_exp_sum, row_exp_rest,
 * row_scale, row_hessian, rows_exp_rest, rows_rest, row_log_softmax. */
#define FASTCE_TYPED_BODY "_math_rows_impl.h"
#include "_math_typed.h"

#endif
