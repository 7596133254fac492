/*
 * qkernels.h - the kernel table for packed grouped-integer weights (qgroup).
 *
 * What: serial functions over a row range [r0, r1) of a packed lp_qgroup.
 * The OpenMP loop lives in the caller (format/qgroup_gemm.c); kernels never spawn
 * threads and each output row is computed in a fixed order, so results do
 * not depend on how rows are split between threads.
 *
 * Why a table: SIMD code lives only in qgroup_avx2.c / qgroup_avx512.c; the
 * table is chosen once from the CPU's features (core/cpu.h; LP_KERNEL=ref|avx2|avx512)
 * and everything else stays generic. qgroup_ref.c is the specification; the
 * fast kernels are tested against it (tests/unit/test_qkernels.c).
 *
 * Shapes (B = blocks, G = ngroups, T = tokens, ldx = lp_qkernels_ldx(w),
 * which is B*32 rounded up to a multiple of 128):
 *   xp    (T, ldx)   the input in the kernel's own form, written by its
 *                    prep_x: zero-padded past cols (so padding q never
 *                    contributes and kernels may read whole blocks), and for
 *                    the SIMD kernels multiplied by a power of two per column
 *                    (see below)
 *   xsum  (T, G)     sum of the original x over each group's real columns
 *   y     (T, ldy)   output; the kernel writes y[t*ldy + r] for r in [r0, r1)
 *
 * Each output is  y[r] = sum_g s_g * (sum_{c in g} q[r,c] x[c] - z_g * xsum_g);
 * the fast kernels compute the same sum in another order (fp32 vectors, the
 * zero term summed separately), so they match ref to rounding (~1e-6
 * relative), not bitwise. Per token, `gemv_multi` computes exactly what
 * `gemv` computes (same operations in the same order), for any T.
 *
 * Why prep_x scales x: for b = 1, 2, 4, 8 the SIMD kernels skip the shift
 * that would move each value's field down to bit 0. They AND the field in
 * place, getting q * 2^k exactly (k = the field's bit position, known per
 * column), convert that to f32 exactly, and multiply by x * 2^-k prepared
 * once per call: the product is q * x exactly as before, one vector op per
 * 16 (8) weights cheaper. (Only |x| < 2^-96 would lose bits, to subnormals.)
 */
#ifndef LP_QKERNELS_H
#define LP_QKERNELS_H

#include "llmpress/status.h"
#include "format/qgroup.h"

#include <stdint.h>

typedef struct lp_qkernels {
    const char *name; /* "ref", "avx2", "avx512" */
    /* xp (ldx floats) = this kernel's form of one input row x (cols). */
    void (*prep_x)(const lp_qgroup *w, const float *x, float *xp);
    /* y[r] for r in [r0, r1), one token (T = 1, ldy unused). */
    void (*gemv)(const lp_qgroup *w, const float *xp, const float *xsum, float *y,
                 int64_t r0, int64_t r1);
    /* T tokens at once, 1 <= T <= LP_QGEMM_MAX_T: each packed block is read
     * once and used for every token. */
    void (*gemv_multi)(const lp_qgroup *w, int64_t T, const float *xp, const float *xsum,
                       float *y, int64_t ldy, int64_t r0, int64_t r1);
    /* out ((r1 - r0) x cols) = dequantized rows [r0, r1); bit-identical in
     * every kernel: s * (float)(q - z). */
    void (*dequant)(const lp_qgroup *w, int64_t r0, int64_t r1, float *out);
    /* From this many tokens on, lp_qgroup_gemm dequantizes tiles and calls
     * sgemm instead of gemv_multi (measured with bench_qgemv). */
    int64_t blas_min_tokens;
} lp_qkernels;

/* Floats per token in xp: cols rounded up to whole 4-block chunks of 128
 * columns (the AVX-512 kernel reads 4 blocks at a time), zero-padded. */
static inline int64_t lp_qkernels_ldx(const lp_qgroup *w) {
    return (w->blocks + 3) / 4 * 4 * LP_QGROUP_BLOCK;
}

/* The table of the process-wide kernel level (core/cpu.h: lp_cpu_isa, which
 * follows LP_KERNEL). */
const lp_qkernels *lp_qkernels_default(void);

/* The table of one level (an lp_isa). */
const lp_qkernels *lp_qkernels_for(int isa);

/* A kernel by name ("ref", "avx2", "avx512"). LP_ERR_UNSUPPORTED when this
 * CPU (or this build) lacks it, LP_ERR_ARG for an unknown name. */
lp_status lp_qkernels_select(const char *name, const lp_qkernels **out);

/* The individual tables (defined in their kernel files). */
extern const lp_qkernels lp_qkernels_ref;
extern const lp_qkernels lp_qkernels_avx2;
extern const lp_qkernels lp_qkernels_avx512;

#endif
