/* Column-tile kernels: the class axis is not the last one (torch's
 * (N, C, d1, ...) layout), vectorised across a tile of positions.
 *
 * Part of _vecmath.h (the umbrella that the .pxd files include).
 */
#ifndef FASTCE_MATH_COLS_H
#define FASTCE_MATH_COLS_H

#include "_math_scalar.h"

/* Positions processed together by the column kernels (class axis not last). */
#define FASTCE_COLS_TILE 256

/* The kernels, written once in _math_cols_impl.h. Names formed
 * (FASTCE_TYPED(name)): fastce_<name>_f32 for float, fastce_<name>_f64 for
 * double, name one of cols_max, cols_exp_rest, cols_scale, cols_log_softmax,
 * cols_hessian. */
#define FASTCE_TYPED_BODY "_math_cols_impl.h"
#include "_math_typed.h"

#endif
