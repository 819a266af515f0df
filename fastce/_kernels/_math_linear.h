/* Linear models' inner products: dot, dot_mixed (float data, double
 * coefficients) and axpy, all accumulated in double.
 *
 * Part of _vecmath.h (the umbrella that the .pxd files include).
 */
#ifndef FASTCE_MATH_LINEAR_H
#define FASTCE_MATH_LINEAR_H

#include "_math_scalar.h"

/* The kernels, written once in _math_linear_impl.h. Names formed
 * (FASTCE_TYPED(name)): fastce_<name>_f32 for float data, fastce_<name>_f64
 * for double, name one of dot, dot_mixed, axpy. */
#define FASTCE_TYPED_BODY "_math_linear_impl.h"
#include "_math_typed.h"

#endif
