/*
 * ternary_ref.c - scalar reference kernels of the ternary format
 * (ternary.h): the specification that ternary_avx2.c and ternary_avx512.c
 * are tested against.
 *
 * Product, per row r and token t, in f32:
 *     y = 0
 *     for g = 0 .. ngroups - 1:
 *         s = 0; for c = g * group .. min((g + 1) * group, cols) - 1:
 *                    if m(r, c): s += n(r, c) ? -x[c] : x[c]
 *         y += a[r][g] * s
 * (columns in order within a group, groups in order, one accumulator each).
 * Dequantization: W_hat[r][c] = m ? (n ? -a : a) : +0, exact.
 */
#include "format/ternary.h"

#include "core/half.h"

static inline int bit_of(const uint32_t *row, int64_t c) { return (int)((row[c >> 5] >> (c & 31)) & 1u); }

void lp_ternary_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                         int64_t r0, int64_t r1) {
    const lp_ternary *w = w_;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *m = w->nonzero + r * w->words, *n = w->negative + r * w->words;
        const uint16_t *a = w->scales + r * w->ngroups;
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + t * ldx;
            float acc = 0.0f;
            for (int64_t g = 0; g < w->ngroups; g++) {
                const int64_t c0 = g * w->group, c1 = c0 + w->group < w->cols ? c0 + w->group : w->cols;
                float s = 0.0f;
                for (int64_t c = c0; c < c1; c++)
                    if (bit_of(m, c)) s += bit_of(n, c) ? -xt[c] : xt[c];
                acc += lp_f16_to_f32(a[g]) * s;
            }
            y[t * ldy + r] = acc;
        }
    }
}

void lp_ternary_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_ternary *w = w_;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *m = w->nonzero + r * w->words, *n = w->negative + r * w->words;
        const uint16_t *a = w->scales + r * w->ngroups;
        float *o = out + (r - r0) * w->cols;
        for (int64_t c = 0; c < w->cols; c++) {
            const float s = lp_f16_to_f32(a[c / w->group]);
            o[c] = bit_of(m, c) ? (bit_of(n, c) ? -s : s) : 0.0f;
        }
    }
}
