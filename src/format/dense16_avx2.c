/*
 * dense16_avx2.c - AVX2 kernels of the dense16 format (dense16.h).
 *
 * Conversion: 8 stored values (16 bytes) to 8 f32 lanes, exactly: bf16 is
 * zero-extended to 32 bits and shifted left by 16 (vpmovzxwd + vpslld), f16
 * goes through vcvtph2ps (F16C; exact, subnormals included). x is never
 * rounded: the products are f32 FMAs.
 * Product, per row and token: a block of 32 columns is four chunks h of 8
 * lanes; lane L of A0 accumulates columns 32k + L, then 32k + 16 + L, and
 * lane L of A1 columns 32k + 8 + L, then 32k + 24 + L, over the blocks k in
 * order, each with one FMA (a = fma(w, x, a)). The ragged last block is
 * copied into a zero-filled block of 32 values first (missing columns are +0,
 * and x is zero-padded there, so they add +0). Finally y = (A0 + A1)'s two
 * 128-bit halves added, then lanes (0+2, 1+3), then those two. Matches the
 * reference to rounding (another summation order, fused multiply-adds).
 * Dequantization: the same conversion, 8 values at a time, the tail with the
 * scalar conversion of core/half.h (the same exact values): bit-identical to
 * the reference.
 */
#include "format/dense16.h"

#include "core/half.h"

#include <immintrin.h>
#include <string.h>

static inline __attribute__((always_inline)) __m256 load8(const uint16_t *p, const int bf) {
    const __m128i h = _mm_loadu_si128((const __m128i *)p);
    return bf ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
}

static inline __attribute__((always_inline)) float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The FMAs of one block of 32 columns (weights at wb, x at column c). */
static inline __attribute__((always_inline)) void block(const uint16_t *wb, const int T, const int bf,
                                                        const float *x, int64_t ldx, int64_t c,
                                                        __m256 a[][2]) {
#pragma GCC unroll 4
    for (int h = 0; h < 4; h++) {
        const __m256 wv = load8(wb + 8 * h, bf);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            a[t][h & 1] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * ldx + c + 8 * h), a[t][h & 1]);
    }
}

static inline __attribute__((always_inline)) void rows_impl(const lp_dense16 *w, const int T, const int bf,
                                                            const float *x, int64_t ldx, float *y, int64_t ldy,
                                                            int64_t r0, int64_t r1) {
    const int64_t C = w->cols, full = C / 32 * 32, left = C - full;
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *wr = w->w + r * C;
        __m256 a[LP_DENSE16_MAX_T][2];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) a[t][0] = a[t][1] = _mm256_setzero_ps();
        for (int64_t c = 0; c < full; c += 32) block(wr + c, T, bf, x, ldx, c, a);
        if (left) {
            uint16_t tail[32] = {0}; /* +0 in both encodings */
            memcpy(tail, wr + full, (size_t)left * sizeof(uint16_t));
            block(tail, T, bf, x, ldx, full, a);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum(_mm256_add_ps(a[t][0], a[t][1]));
    }
}

void lp_dense16_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                          int64_t r0, int64_t r1) {
    const lp_dense16 *w = w_;
    const int bf = w->dtype == LP_DT_BF16;
    /* T and the dtype are compile-time constants inside rows_impl */
    switch (T) {
    case 1: bf ? rows_impl(w, 1, 1, x, ldx, y, ldy, r0, r1) : rows_impl(w, 1, 0, x, ldx, y, ldy, r0, r1); break;
    case 2: bf ? rows_impl(w, 2, 1, x, ldx, y, ldy, r0, r1) : rows_impl(w, 2, 0, x, ldx, y, ldy, r0, r1); break;
    case 3: bf ? rows_impl(w, 3, 1, x, ldx, y, ldy, r0, r1) : rows_impl(w, 3, 0, x, ldx, y, ldy, r0, r1); break;
    default: bf ? rows_impl(w, 4, 1, x, ldx, y, ldy, r0, r1) : rows_impl(w, 4, 0, x, ldx, y, ldy, r0, r1); break;
    }
}

void lp_dense16_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_dense16 *w = w_;
    const int bf = w->dtype == LP_DT_BF16;
    const uint16_t *src = w->w + r0 * w->cols;
    const int64_t n = (r1 - r0) * w->cols; /* rows are contiguous: one run of values */
    int64_t i = 0;
    if (bf)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(src + i, 1));
    else
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8(src + i, 0));
    for (; i < n; i++) out[i] = bf ? lp_bf16_to_f32(src[i]) : lp_f16_to_f32(src[i]);
}
