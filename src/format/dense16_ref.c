/*
 * dense16_ref.c - scalar reference kernels of the dense16 format
 * (dense16.h): the specification that dense16_avx2.c and dense16_avx512.c
 * are tested against.
 *
 * Product, per row r and token t, in f32 with one accumulator:
 *     y = 0
 *     for c = 0 .. cols - 1:  y += f32(w[r][c]) * x[c]
 * (columns in order; f32(.) is the exact conversion of core/half.h: bf16 is
 * the top half of an f32, f16 is widened with its subnormals normalized).
 * Each product is rounded to f32 and then added, unless the compiler fuses
 * the two into an FMA (allowed: the fast kernels use FMAs, and all levels
 * agree only to rounding).
 * Dequantization: out = f32(w), exact.
 */
#include "format/dense16.h"

#include "core/half.h"

static inline float to_f32(uint16_t h, int bf) { return bf ? lp_bf16_to_f32(h) : lp_f16_to_f32(h); }

void lp_dense16_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1) {
    const lp_dense16 *w = w_;
    const int bf = w->dtype == LP_DT_BF16;
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *wr = w->w + r * w->cols;
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + t * ldx;
            float acc = 0.0f;
            for (int64_t c = 0; c < w->cols; c++) acc += to_f32(wr[c], bf) * xt[c];
            y[t * ldy + r] = acc;
        }
    }
}

void lp_dense16_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_dense16 *w = w_;
    const int bf = w->dtype == LP_DT_BF16;
    const uint16_t *src = w->w + r0 * w->cols;
    const int64_t n = (r1 - r0) * w->cols; /* rows are contiguous: one run of values */
    for (int64_t i = 0; i < n; i++) out[i] = to_f32(src[i], bf);
}
