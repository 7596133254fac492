/*
 * qlut_ref.c - scalar reference kernels of the lookup-table format (qlut.h):
 * the specification that qlut_avx2.c and qlut_avx512.c are tested against.
 * Per row: the row's table converted to f32 once, then columns in order,
 * f32 accumulation; codes are unpacked with lp_qgroup_unpack_block, the
 * scalar definition of the bit layout.
 */
#include "format/qlut_kernels.h"

#include "core/half.h"
#include "format/qgroup.h"

void lp_qlut_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
    const lp_qlut *w = w_;
    const int bits = w->bits;
    for (int64_t r = r0; r < r1; r++) {
        float lut[16];
        for (int k = 0; k < 1 << bits; k++) lut[k] = lp_f16_to_f32(w->lut[(r << bits) + k]);
        const uint32_t *q = w->q + r * w->blocks * bits;
        float acc[LP_QLUT_MAX_T] = {0};
        for (int64_t b = 0; b < w->blocks; b++) {
            uint8_t v[LP_QGROUP_BLOCK];
            lp_qgroup_unpack_block(q + b * bits, bits, v);
            for (int j = 0; j < LP_QGROUP_BLOCK; j++)
                for (int64_t t = 0; t < T; t++) acc[t] += lut[v[j]] * x[t * ldx + b * LP_QGROUP_BLOCK + j];
        }
        for (int64_t t = 0; t < T; t++) y[t * ldy + r] = acc[t];
    }
}

void lp_qlut_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_qlut *w = w_;
    const int bits = w->bits;
    for (int64_t r = r0; r < r1; r++) {
        float *o = out + (r - r0) * w->cols, lut[16];
        for (int k = 0; k < 1 << bits; k++) lut[k] = lp_f16_to_f32(w->lut[(r << bits) + k]);
        const uint32_t *q = w->q + r * w->blocks * bits;
        for (int64_t b = 0; b < w->blocks; b++) {
            uint8_t v[LP_QGROUP_BLOCK];
            lp_qgroup_unpack_block(q + b * bits, bits, v);
            int64_t n = w->cols - b * LP_QGROUP_BLOCK < LP_QGROUP_BLOCK ? w->cols - b * LP_QGROUP_BLOCK : LP_QGROUP_BLOCK;
            for (int64_t j = 0; j < n; j++) o[b * LP_QGROUP_BLOCK + j] = lut[v[j]];
        }
    }
}
