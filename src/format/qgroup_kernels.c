/*
 * qkernels.c - choose the qgroup kernel table once, from the CPU's features.
 *
 * Design: the choice is made on first use under pthread_once and never
 * changes afterwards (stb's stbi__setup_jpeg, ggml's type_traits_cpu). The
 * LP_KERNEL environment variable forces a kernel so tests and benches can
 * compare; an unknown or unsupported name is ignored here (the library does
 * not print) - callers who want to report it use lp_qkernels_select().
 */
#include "format/qgroup_kernels.h"

#include "core/status_impl.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

static int cpu_has_avx512(void) {
    __builtin_cpu_init();
    return cpu_has_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq");
}

lp_status lp_qkernels_select(const char *name, const lp_qkernels **out) {
    *out = NULL;
    if (!name) return lp_fail(LP_ERR_ARG, "qgroup kernel: no name given; expected ref, avx2 or avx512");
    if (!strcmp(name, "ref")) {
        *out = &lp_qkernels_ref;
    } else if (!strcmp(name, "avx2")) {
        if (!cpu_has_avx2())
            return lp_fail(LP_ERR_UNSUPPORTED, "qgroup kernel 'avx2': this CPU lacks AVX2/FMA/F16C");
        *out = &lp_qkernels_avx2;
    } else if (!strcmp(name, "avx512")) {
        if (!cpu_has_avx512())
            return lp_fail(LP_ERR_UNSUPPORTED,
                           "qgroup kernel 'avx512': this CPU lacks AVX-512 F/BW/VL/DQ; hint: use avx2 or ref");
        *out = &lp_qkernels_avx512;
    } else {
        return lp_fail(LP_ERR_ARG, "qgroup kernel '%s' is unknown; expected ref, avx2 or avx512", name);
    }
    return LP_OK;
}

static const lp_qkernels *g_default; /* written once under g_once, then read-only */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void choose_default(void) {
    const char *env = getenv("LP_KERNEL");
    const lp_qkernels *k = NULL;
    if (env) { /* no lp_fail here: a bad LP_KERNEL must not clobber the caller's error */
        if (!strcmp(env, "ref")) k = &lp_qkernels_ref;
        else if (!strcmp(env, "avx2") && cpu_has_avx2()) k = &lp_qkernels_avx2;
        else if (!strcmp(env, "avx512") && cpu_has_avx512()) k = &lp_qkernels_avx512;
    }
    if (k) {
        g_default = k;
        return;
    }
    g_default = cpu_has_avx512() ? &lp_qkernels_avx512
              : cpu_has_avx2()   ? &lp_qkernels_avx2
                                 : &lp_qkernels_ref;
}

const lp_qkernels *lp_qkernels_default(void) {
    pthread_once(&g_once, choose_default);
    return g_default;
}
