/* Run-time CPU feature checks for picking a SIMD build of the kernels.
 * This header is compiled into _config with the compiler's default flags, so
 * it runs on any CPU; non-x86 builds report no x86 features. GCC's
 * __builtin_cpu_supports also checks that the OS saves the vector state. */
#ifndef FASTCE_CPU_H
#define FASTCE_CPU_H

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define FASTCE_X86 1
static inline int fastce_cpu_has_x86_64_v2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt")
        && __builtin_cpu_supports("ssse3");
}
static inline int fastce_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static inline int fastce_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return fastce_cpu_has_avx2() && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl");
}
#else
#define FASTCE_X86 0
static inline int fastce_cpu_has_x86_64_v2(void) { return 0; }
static inline int fastce_cpu_has_avx2(void) { return 0; }
static inline int fastce_cpu_has_avx512(void) { return 0; }
#endif

#endif
