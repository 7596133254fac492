/*
 * qgroup_ref.c - scalar reference kernels for grouped-integer weights: the
 * specification that qgroup_avx2.c and qgroup_avx512.c are tested against.
 *
 * y[r] = sum_c s_g(c) * (q[r,c] - z_g(c)) * x[c] is computed group by group as
 *     y[r] = sum_g s_g * (sum_{c in g} q[r,c] * x[c]  -  z_g * xsum_g)
 * so the zero point costs one multiply per group instead of one subtract per
 * weight (xsum_g = sum of x over group g, computed once per call by the
 * caller). Sums run left to right in f32. Blocks are unpacked with
 * lp_qgroup_get_block, the scalar definition of the bit layouts.
 */
#include "format/qgroup_kernels.h"

#include "core/half.h"

/* The reference form of x is x itself, zero-padded. */
static void prep_x_ref(const lp_qgroup *w, const float *x, float *xp) {
    int64_t n = lp_qkernels_ldx(w);
    for (int64_t c = 0; c < n; c++) xp[c] = c < w->cols ? x[c] : 0.0f;
}

static float row_dot_ref(const lp_qgroup *w, int64_t r, const float *xp, const float *xsum) {
    int64_t bpg = (w->group + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK; /* blocks per group */
    float acc = 0.0f;
    for (int64_t g = 0; g < w->ngroups; g++) {
        int64_t b1 = (g + 1) * bpg < w->blocks ? (g + 1) * bpg : w->blocks;
        float dot = 0.0f;
        for (int64_t b = g * bpg; b < b1; b++) {
            uint8_t v[LP_QGROUP_BLOCK];
            lp_qgroup_get_block(w, r, b, v);
            for (int j = 0; j < LP_QGROUP_BLOCK; j++) dot += (float)v[j] * xp[b * LP_QGROUP_BLOCK + j];
        }
        float s = lp_f16_to_f32(w->scales[r * w->ngroups + g]);
        acc += s * (dot - (float)lp_qgroup_zero(w, r, g) * xsum[g]);
    }
    return acc;
}

static void gemv_ref(const lp_qgroup *w, const float *xp, const float *xsum, float *y,
                     int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = row_dot_ref(w, r, xp, xsum);
}

static void gemv_multi_ref(const lp_qgroup *w, int64_t T, const float *xp, const float *xsum,
                           float *y, int64_t ldy, int64_t r0, int64_t r1) {
    int64_t ldx = lp_qkernels_ldx(w);
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < T; t++)
            y[t * ldy + r] = row_dot_ref(w, r, xp + t * ldx, xsum + t * w->ngroups);
}

static void dequant_ref(const lp_qgroup *w, int64_t r0, int64_t r1, float *out) {
    int64_t bpg = (w->group + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    for (int64_t r = r0; r < r1; r++) {
        float *o = out + (r - r0) * w->cols;
        for (int64_t b = 0; b < w->blocks; b++) {
            int64_t g = b / bpg;
            float s = lp_f16_to_f32(w->scales[r * w->ngroups + g]);
            int z = lp_qgroup_zero(w, r, g);
            uint8_t v[LP_QGROUP_BLOCK];
            lp_qgroup_get_block(w, r, b, v);
            for (int j = 0; j < LP_QGROUP_BLOCK && b * LP_QGROUP_BLOCK + j < w->cols; j++)
                o[b * LP_QGROUP_BLOCK + j] = s * (float)((int)v[j] - z);
        }
    }
}

const lp_qkernels lp_qkernels_ref = {
    .name = "ref",
    .prep_x = prep_x_ref,
    .gemv = gemv_ref,
    .gemv_multi = gemv_multi_ref,
    .dequant = dequant_ref,
    .blas_min_tokens = 2, /* the scalar kernel loses to sgemm from 2 tokens on */
};
