/*
 * nm_ref.c - scalar reference kernels of the N:M format (nm.h): the
 * specification that nm_avx2.c and nm_avx512.c are tested against.
 *
 * Product, per row r and token t, in f32 (G = group, or cols for bits 16):
 *     y = 0
 *     for g = 0 .. ngroups - 1:
 *         s = 0
 *         for b = the blocks of m columns in [g G, min(g G + G, cols)), in order:
 *             for k = 0 .. n - 1: c = b m + index(r, b n + k)
 *                                 s += d(r, b n + k) * x[c]
 *         y += scale(r, g) * s          (bits 16: y += s)
 *   d = the kept value as f32 (bits 16) or (float)(q - zero(r, g)).
 * Dequantization: W_hat[r][c] = +0, then at each kept position the value
 *   (bits 16) or scale * (float)(q - zero), exact.
 */
#include "format/nm.h"

#include <string.h>

void lp_nm_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                    int64_t r1) {
    const lp_nm *w = w_;
    const lp_sparse_store *v = &w->v;
    const int64_t G = v->bits == 16 ? w->cols : v->group, m = w->m, n = w->n;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + t * ldx;
            float acc = 0.0f;
            for (int64_t g = 0, c0 = 0; c0 < w->cols; g++, c0 += G) {
                const int64_t c1 = c0 + G < w->cols ? c0 + G : w->cols;
                float s = 0.0f;
                for (int64_t b = c0 / m; b < c1 / m; b++)
                    for (int64_t k = 0; k < n; k++) {
                        const int64_t j = b * n + k, c = b * m + lp_nm_index(w, r, j);
                        s += lp_sparse_d(v, r * w->kpr + j, r, g) * xt[c];
                    }
                acc += v->bits == 16 ? s : lp_sparse_scale(v, r, g) * s;
            }
            y[t * ldy + r] = acc;
        }
}

void lp_nm_dequant_cols(const lp_nm *w, int64_t r, int64_t c0, int64_t c1, float *out) {
    const lp_sparse_store *v = &w->v;
    const int64_t m = w->m, n = w->n;
    memset(out, 0, (size_t)(c1 - c0) * sizeof(float));
    for (int64_t b = c0 / m; b < c1 / m; b++)
        for (int64_t k = 0; k < n; k++) {
            const int64_t j = b * n + k, c = b * m + lp_nm_index(w, r, j);
            out[c - c0] = lp_sparse_value(v, r * w->kpr + j, r, v->bits == 16 ? 0 : c / v->group);
        }
}

void lp_nm_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_nm *w = w_;
    for (int64_t r = r0; r < r1; r++) lp_nm_dequant_cols(w, r, 0, w->cols, out + (r - r0) * w->cols);
}
