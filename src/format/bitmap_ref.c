/*
 * bitmap_ref.c - scalar reference kernels of the bitmap format (bitmap.h):
 * the specification that bitmap_avx2.c and bitmap_avx512.c are tested
 * against.
 *
 * Product, per row r and token t, in f32 (G = group, or cols for bits 16):
 *     y = 0; i = offsets[r]
 *     for g = 0 .. ngroups - 1:
 *         s = 0
 *         for c = g G .. min(g G + G, cols) - 1: if kept(r, c): s += d(i) * x[c]; i += 1
 *         y += scale(r, g) * s          (bits 16: y += s)
 *   d = the kept value as f32 (bits 16) or (float)(q - zero(r, g)).
 * Dequantization: W_hat[r][c] = +0, then at each kept position the value
 *   (bits 16) or scale * (float)(q - zero), exact.
 */
#include "format/bitmap.h"

#include <string.h>

static inline int kept(const uint32_t *row, int64_t c) { return (int)((row[c >> 5] >> (c & 31)) & 1u); }

void lp_bitmap_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                        int64_t r1) {
    const lp_bitmap *w = w_;
    const lp_sparse_store *v = &w->v;
    const int64_t G = v->bits == 16 ? w->cols : v->group;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *mk = w->mask + r * w->words;
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + t * ldx;
            int64_t i = w->offsets[r];
            float acc = 0.0f;
            for (int64_t g = 0, c0 = 0; c0 < w->cols; g++, c0 += G) {
                const int64_t c1 = c0 + G < w->cols ? c0 + G : w->cols;
                float s = 0.0f;
                for (int64_t c = c0; c < c1; c++)
                    if (kept(mk, c)) s += lp_sparse_d(v, i++, r, g) * xt[c];
                acc += v->bits == 16 ? s : lp_sparse_scale(v, r, g) * s;
            }
            y[t * ldy + r] = acc;
        }
    }
}

int64_t lp_bitmap_dequant_words(const lp_bitmap *w, int64_t r, int64_t k0, int64_t k1, int64_t i, float *out) {
    const lp_sparse_store *v = &w->v;
    const uint32_t *mk = w->mask + r * w->words;
    const int64_t c0 = 32 * k0, c1 = 32 * k1 < w->cols ? 32 * k1 : w->cols;
    memset(out, 0, (size_t)(c1 - c0) * sizeof(float));
    for (int64_t c = c0; c < c1; c++)
        if (kept(mk, c)) out[c - c0] = lp_sparse_value(v, i++, r, v->bits == 16 ? 0 : c / v->group);
    return i;
}

void lp_bitmap_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_bitmap *w = w_;
    for (int64_t r = r0; r < r1; r++)
        lp_bitmap_dequant_words(w, r, 0, w->words, w->offsets[r], out + (r - r0) * w->cols);
}
