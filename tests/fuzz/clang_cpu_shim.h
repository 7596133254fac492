/*
 * clang_cpu_shim.h - lets src/core/cpu.c build with clang < 16 for the
 * fuzzers (CMakeLists.txt force-includes it into that one file when LP_FUZZ
 * is on; nothing else sees it).
 *
 * Why: cpu.c asks __builtin_cpu_supports("f16c"), which clang only knows
 * from version 16; clang 14 (Debian 12's) stops with "invalid cpu feature
 * string for builtin". Here every feature cpu.c asks for is read with CPUID
 * instead, with the OS check GCC's builtin makes (XGETBV: the OS saves the
 * AVX, and for AVX-512 the opmask/ZMM, state). Delete this file once cpu.c
 * stops using the builtin for f16c.
 */
#ifndef LP_CLANG_CPU_SHIM_H
#define LP_CLANG_CPU_SHIM_H
#if defined(__clang__) && __clang_major__ < 16 && (defined(__x86_64__) || defined(__i386__))

#include <cpuid.h>
#include <stdbool.h>
#include <string.h>

static inline bool lp_shim_cpu_supports(const char *f) {
    unsigned a, b, c, d, b7 = 0, c1 = 0;
    if (!__get_cpuid(1, &a, &b, &c1, &d)) return false;
    if (__get_cpuid_max(0, NULL) >= 7) __cpuid_count(7, 0, a, b7, c, d);
    unsigned long long xcr0 = 0;
    if (c1 & bit_OSXSAVE) {
        unsigned lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = (unsigned long long)hi << 32 | lo;
    }
    const bool os_avx = (xcr0 & 0x6) == 0x6, os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
    if (!strcmp(f, "fma")) return os_avx && (c1 & bit_FMA);
    if (!strcmp(f, "f16c")) return os_avx && (c1 & bit_F16C);
    if (!strcmp(f, "avx2")) return os_avx && (b7 & bit_AVX2);
    if (!strcmp(f, "avx512f")) return os_avx512 && (b7 & bit_AVX512F);
    if (!strcmp(f, "avx512bw")) return os_avx512 && (b7 & bit_AVX512BW);
    if (!strcmp(f, "avx512vl")) return os_avx512 && (b7 & bit_AVX512VL);
    if (!strcmp(f, "avx512dq")) return os_avx512 && (b7 & bit_AVX512DQ);
    return false; /* a feature this shim does not know: the generic code */
}

#define __builtin_cpu_init() ((void)0)
#define __builtin_cpu_supports(f) lp_shim_cpu_supports(f)

#endif
#endif
