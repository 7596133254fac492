/*
 * finite.c - the reference scans and the dispatcher of finite.h.
 *
 * The reference reads each word with memcpy (the arrays are views into a
 * mapped file: no alignment is promised) and tests its exponent bits. The
 * dispatcher picks the level's kernels from a table once per call and, for
 * large arrays, scans fixed chunks in parallel (one OpenMP loop, the lowest
 * bad chunk wins: the result is the serial one for any thread count).
 */
#include "core/finite.h"

#include <string.h>

int64_t lp_finite_find32_ref(const void *p, int64_t n) {
    const unsigned char *b = p;
    for (int64_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, b + 4 * i, 4);
        if ((w & 0x7f800000u) == 0x7f800000u) return i;
    }
    return -1;
}

int64_t lp_finite_find16_ref(const void *p, int64_t n, uint16_t e) {
    const unsigned char *b = p;
    for (int64_t i = 0; i < n; i++) {
        uint16_t w;
        memcpy(&w, b + 2 * i, 2);
        if ((w & e) == e) return i;
    }
    return -1;
}

typedef struct {
    int64_t (*w32)(const void *p, int64_t n);
    int64_t (*w16)(const void *p, int64_t n, uint16_t e);
} kernels;

static const kernels KERNELS[LP_ISA_N] = {
    [LP_ISA_REF] = {lp_finite_find32_ref, lp_finite_find16_ref},
    [LP_ISA_AVX2] = {lp_finite_find32_avx2, lp_finite_find16_avx2},
    [LP_ISA_AVX512] = {lp_finite_find32_avx512, lp_finite_find16_avx512},
};

static const uint16_t EXP16[3] = {[LP_FP_BF16] = 0x7f80u, [LP_FP_F16] = 0x7c00u};

static int64_t scan(const kernels *k, lp_fp_type type, const void *p, int64_t n) {
    if (type == LP_FP_F32) return k->w32(p, n);
    return k->w16(p, n, EXP16[type]);
}

/* Values per parallel chunk: 1 MiB of f32, 512 KiB of 16-bit words. Below two
 * chunks the scan stays serial (a thread team costs more than it saves). */
#define CHUNK ((int64_t)1 << 18)

int64_t lp_finite_find_isa(lp_isa isa, lp_fp_type type, const void *p, int64_t n) {
    if (n <= 0) return -1;
    if ((int)isa < 0 || isa >= LP_ISA_N || !lp_cpu_supports(isa)) isa = LP_ISA_REF;
    const kernels *k = &KERNELS[isa];
    const size_t es = type == LP_FP_F32 ? 4 : 2;
    const int64_t nchunks = (n + CHUNK - 1) / CHUNK;
    if (nchunks < 2) return scan(k, type, p, n);
    int64_t first = INT64_MAX; /* lowest bad index over the chunks */
#pragma omp parallel for schedule(static) reduction(min : first)
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t i0 = c * CHUNK, len = n - i0 < CHUNK ? n - i0 : CHUNK;
        const int64_t r = scan(k, type, (const unsigned char *)p + (size_t)i0 * es, len);
        if (r >= 0 && i0 + r < first) first = i0 + r;
    }
    return first == INT64_MAX ? -1 : first;
}

int64_t lp_finite_find(lp_fp_type type, const void *p, int64_t n) {
    return lp_finite_find_isa(lp_cpu_isa(), type, p, n);
}
