/*
 * cpu.c - CPU feature detection and the process-wide kernel level (cpu.h).
 *
 * The library never prints: an unknown or unsupported LP_KERNEL is ignored
 * here (the best level is used); callers that want to report it use
 * lp_isa_from_name().
 */
#include "core/cpu.h"

#include "core/status_impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[LP_ISA_N] = {"ref", "avx2", "avx512"};

bool lp_cpu_supports(lp_isa isa) {
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                      __builtin_cpu_supports("f16c");
    switch (isa) {
    case LP_ISA_REF: return true;
    case LP_ISA_AVX2: return avx2;
    case LP_ISA_AVX512:
        return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    default: return false;
    }
}

bool lp_cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return lp_cpu_isa() == LP_ISA_AVX512 && __builtin_cpu_supports("avx512vnni");
}

bool lp_cpu_has_gfni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("gfni");
}

const char *lp_isa_name(lp_isa isa) { return (int)isa >= 0 && isa < LP_ISA_N ? NAMES[isa] : "?"; }

lp_status lp_isa_from_name(const char *name, lp_isa *out) {
    for (int i = 0; i < LP_ISA_N; i++) {
        if (!name || strcmp(name, NAMES[i])) continue;
        if (!lp_cpu_supports((lp_isa)i))
            return lp_fail(LP_ERR_UNSUPPORTED, "kernel '%s': this CPU lacks the instructions it needs; hint: "
                           "use %s", name, lp_cpu_supports(LP_ISA_AVX2) ? "avx2 or ref" : "ref");
        *out = (lp_isa)i;
        return LP_OK;
    }
    return lp_fail(LP_ERR_ARG, "kernel '%s' is unknown; expected ref, avx2 or avx512", name ? name : "(null)");
}

static lp_isa g_isa; /* written once under g_once, then read-only */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    const char *env = getenv("LP_KERNEL");
    for (int i = LP_ISA_N - 1; i >= 0; i--) {
        if (env && strcmp(env, NAMES[i])) continue;
        if (lp_cpu_supports((lp_isa)i)) {
            g_isa = (lp_isa)i;
            return;
        }
    }
    /* LP_KERNEL unknown or unsupported: the best level */
    g_isa = lp_cpu_supports(LP_ISA_AVX512) ? LP_ISA_AVX512 : lp_cpu_supports(LP_ISA_AVX2) ? LP_ISA_AVX2 : LP_ISA_REF;
}

lp_isa lp_cpu_isa(void) {
    pthread_once(&g_once, choose);
    return g_isa;
}
