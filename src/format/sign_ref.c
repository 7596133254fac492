/*
 * sign_ref.c - scalar reference kernels of the sign format (sign.h): the
 * specification that sign_avx2.c and sign_avx512.c are tested against.
 *
 * Product, per row r and token t, in f32:
 *     s = 0; for c = 0 .. cols - 1: s += b(r, c) ? x[c] : -x[c];
 *     y = alpha_r * s
 * (columns in order, one accumulator, the scale applied once at the end).
 * Dequantization: W_hat[r][c] = b ? alpha_r : -alpha_r, exact.
 */
#include "format/sign.h"

#include "core/half.h"

static inline int bit_of(const uint32_t *row, int64_t c) { return (int)((row[c >> 5] >> (c & 31)) & 1u); }

void lp_sign_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
    const lp_sign *w = w_;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *row = w->signs + r * w->words;
        const float alpha = lp_f16_to_f32(w->scales[r]);
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + t * ldx;
            float s = 0.0f;
            for (int64_t c = 0; c < w->cols; c++) s += bit_of(row, c) ? xt[c] : -xt[c];
            y[t * ldy + r] = alpha * s;
        }
    }
}

void lp_sign_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_sign *w = w_;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *row = w->signs + r * w->words;
        const float alpha = lp_f16_to_f32(w->scales[r]);
        float *o = out + (r - r0) * w->cols;
        for (int64_t c = 0; c < w->cols; c++) o[c] = bit_of(row, c) ? alpha : -alpha;
    }
}
