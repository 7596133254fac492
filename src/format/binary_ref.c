/*
 * binary_ref.c - scalar reference kernels of the binary format (binary.h):
 * the specification that binary_avx2.c and binary_avx512.c are tested
 * against.
 *
 * Both walk a row in column order keeping two running counts: k, the salient
 * columns before c (so column c's salient group is bit k of the row's compact
 * b2 plane), and h, the held weights before c (its index into codes or
 * codes16, starting at hoff[r]); each weight's value is lp_binary_value_at,
 * the definition.
 * Product, per row r and token t, in f32:
 *     s = 0; for c = 0 .. cols - 1: s += v(r, c) * x[c];   y = s
 * (columns in order, one accumulator, no fused multiply-add: this file is
 * compiled without -mfma).
 * Dequantization: out[c] = v(r, c).
 */
#include "format/binary.h"

/* The row's values in column order, v[c] for c < cols (the walk above). */
static void row_values(const lp_binary *w, int64_t r, float *v) {
    const uint32_t *b2 = w->ngs == 2 ? w->b2 + r * w->words2 : NULL;
    const uint32_t *hm = w->held ? w->hmask + r * w->words : NULL;
    int64_t k = 0, h = w->held ? w->hoff[r] : 0;
    for (int64_t c = 0; c < w->cols; c++) {
        const int sal = w->ngs && lp_binary_bit(w->colmask, c);
        const int gs = b2 && sal ? lp_binary_bit(b2, k) : 0;
        v[c] = lp_binary_value_at(w, r, c, gs, h);
        k += sal;
        if (hm) h += lp_binary_bit(hm, c);
    }
}

void lp_binary_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                        int64_t r1) {
    const lp_binary *w = w_;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *b2 = w->ngs == 2 ? w->b2 + r * w->words2 : NULL;
        const uint32_t *hm = w->held ? w->hmask + r * w->words : NULL;
        float s[LP_BINARY_MAX_T] = {0};
        int64_t k = 0, h = w->held ? w->hoff[r] : 0;
        for (int64_t c = 0; c < w->cols; c++) {
            const int sal = w->ngs && lp_binary_bit(w->colmask, c);
            const int gs = b2 && sal ? lp_binary_bit(b2, k) : 0;
            const float v = lp_binary_value_at(w, r, c, gs, h);
            k += sal;
            if (hm) h += lp_binary_bit(hm, c);
            for (int64_t t = 0; t < T; t++) s[t] += v * x[t * ldx + c];
        }
        for (int64_t t = 0; t < T; t++) y[t * ldy + r] = s[t];
    }
}

void lp_binary_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_binary *w = w_;
    for (int64_t r = r0; r < r1; r++) row_values(w, r, out + (r - r0) * w->cols);
}
