/*
 * dense16_avx512.c - AVX-512 kernels of the dense16 format (dense16.h).
 *
 * Conversion: 16 stored values (32 bytes) to 16 f32 lanes, exactly: bf16 is
 * zero-extended to 32 bits and shifted left by 16 (vpmovzxwd + vpslld), f16
 * goes through vcvtph2ps (exact, subnormals included; MXCSR does not affect
 * it). x is never rounded: the products are f32 FMAs.
 * Product, per row and token: lane L of A0 accumulates columns 32k + L and
 * lane L of A1 columns 32k + 16 + L, k = 0, 1, ... in order, each with one
 * FMA (a = fma(w, x, a)); the ragged last block loads the weights under a
 * mask (missing columns are +0, and x is zero-padded there, so they add +0);
 * finally y = _mm512_reduce_add_ps(A0 + A1) (a fixed tree). Matches the
 * reference to rounding (another summation order, fused multiply-adds).
 * Dequantization: the same conversion over the rows' contiguous values, the
 * tail under a mask: bit-identical to the reference.
 */
#include "format/dense16.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) __m512 widen(__m256i h, const int bf) {
    return bf ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)) : _mm512_cvtph_ps(h);
}

static inline __attribute__((always_inline)) __m512 load16(const uint16_t *p, const int bf) {
    return widen(_mm256_loadu_si256((const __m256i *)p), bf);
}

/* Masked: lanes outside m read nothing (no fault past the row) and are +0. */
static inline __attribute__((always_inline)) __m512 load16_mask(const uint16_t *p, __mmask16 m, const int bf) {
    return widen(_mm256_maskz_loadu_epi16(m, p), bf);
}

static inline __attribute__((always_inline)) void rows_impl(const lp_dense16 *w, const int T, const int bf,
                                                            const float *x, int64_t ldx, float *y, int64_t ldy,
                                                            int64_t r0, int64_t r1) {
    const int64_t C = w->cols, full = C / 32 * 32;
    const int64_t left = C - full; /* 0 .. 31 columns in the ragged last block */
    const __mmask16 m0 = (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1u);
    const __mmask16 m1 = (__mmask16)(left > 16 ? (1u << (left - 16)) - 1u : 0u);
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *wr = w->w + r * C;
        __m512 a0[LP_DENSE16_MAX_T], a1[LP_DENSE16_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) a0[t] = a1[t] = _mm512_setzero_ps();
        for (int64_t c = 0; c < full; c += 32) {
            _mm_prefetch((const char *)(wr + c) + 8192, _MM_HINT_T0); /* 8 KB ahead in the rows' one stream */
            const __m512 w0 = load16(wr + c, bf), w1 = load16(wr + c + 16, bf);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                a0[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + t * ldx + c), a0[t]);
                a1[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + t * ldx + c + 16), a1[t]);
            }
        }
        if (left) {
            const __m512 w0 = load16_mask(wr + full, m0, bf), w1 = load16_mask(wr + full + 16, m1, bf);
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                a0[t] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + t * ldx + full), a0[t]);
                a1[t] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + t * ldx + full + 16), a1[t]);
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(a0[t], a1[t]));
    }
}

void lp_dense16_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
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

static inline __attribute__((always_inline)) void dequant_impl(const uint16_t *src, int64_t n, float *out,
                                                               const int bf) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, load16(src + i, bf));
    if (i < n) {
        const __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(out + i, m, load16_mask(src + i, m, bf));
    }
}

void lp_dense16_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_dense16 *w = w_;
    const uint16_t *src = w->w + r0 * w->cols;
    const int64_t n = (r1 - r0) * w->cols; /* rows are contiguous: one run of values */
    if (w->dtype == LP_DT_BF16) dequant_impl(src, n, out, 1);
    else dequant_impl(src, n, out, 0);
}
