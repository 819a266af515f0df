/* Instantiates one typed body of kernels for float and for double: CPython's
 * Objects/stringlib pattern. Each kernel is written once, as plain C
 * functions (no backslash-continued macros, so debug line info, perf annotate
 * and go-to-definition see real lines), in terms of:
 *
 *   FT                          the element type: float, then double
 *   FASTCE_TYPED(name)          the kernel's C name: fastce_<name>_f32 for
 *                               float, fastce_<name>_f64 for double (the
 *                               names _vecmath.pxd and _profile.h call)
 *   FASTCE_TYPED_EXP(x)         exp in that type: fastce_expf, fastce_exp
 *   FASTCE_TYPED_LOG1P_UNIT(u)  log1p on [0, 1]: fastce_log1pf_unit,
 *                               fastce_log1p_unit
 *
 * Use: #define FASTCE_TYPED_BODY "_math_rows_impl.h", then
 * #include "_math_typed.h" (which undefines everything again). No include
 * guard: each family's header includes it once, for its own body.
 */
#ifndef FASTCE_TYPED_BODY
#error "define FASTCE_TYPED_BODY (the typed body's file name) before including _math_typed.h"
#endif

/* float: fastce_<name>_f32, float exps (4-16 lanes a vector). */
#define FT float
#define FASTCE_TYPED(name) fastce_##name##_f32
#define FASTCE_TYPED_EXP(x) fastce_expf(x)
#define FASTCE_TYPED_LOG1P_UNIT(u) fastce_log1pf_unit(u)
#include FASTCE_TYPED_BODY
#undef FT
#undef FASTCE_TYPED
#undef FASTCE_TYPED_EXP
#undef FASTCE_TYPED_LOG1P_UNIT

/* double: fastce_<name>_f64. */
#define FT double
#define FASTCE_TYPED(name) fastce_##name##_f64
#define FASTCE_TYPED_EXP(x) fastce_exp(x)
#define FASTCE_TYPED_LOG1P_UNIT(u) fastce_log1p_unit(u)
#include FASTCE_TYPED_BODY
#undef FT
#undef FASTCE_TYPED
#undef FASTCE_TYPED_EXP
#undef FASTCE_TYPED_LOG1P_UNIT

#undef FASTCE_TYPED_BODY
