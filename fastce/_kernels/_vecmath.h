/* Vectorisable elementary functions and kernels of fastce: the umbrella.
 *
 * The .pxd files and _profile.h include this header by name; the math lives
 * in one header per family:
 *   _math_scalar.h       exp / log1p (vectorisable), row exps, shared
 *                        constants, the SIMD pragma helpers
 *   _math_binary.h       the binary losses (+ _math_binary_impl.h)
 *   _math_rows.h         row kernels, class axis last (+ _math_rows_impl.h)
 *   _math_cols.h         column-tile kernels (+ _math_cols_impl.h)
 *   _math_linear.h       dot, dot_mixed, axpy (+ _math_linear_impl.h)
 *   _math_information.h  the information-measure terms
 * The typed kernels (fastce_<name>_f32 / fastce_<name>_f64) are written once
 * in each *_impl.h and instantiated per dtype by _math_typed.h.
 *
 * Row exps run in the row's own precision (float rows: 4-16 lanes a vector),
 * and every sum is accumulated in double. The elementwise binary losses are
 * computed in each dtype's own precision (focal and probabilities: double).
 */
#ifndef FASTCE_VECMATH_H
#define FASTCE_VECMATH_H

#include "_math_scalar.h"
#include "_math_binary.h"
#include "_math_information.h"
#include "_math_rows.h"
#include "_math_cols.h"
#include "_math_linear.h"

#endif
