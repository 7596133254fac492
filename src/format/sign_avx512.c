/*
 * sign_avx512.c - AVX-512 kernels of the sign format (sign.h).
 *
 * Product: each 32-bit word of a row covers 32 columns, two registers of 16
 * lanes. The word's low and high 16 bits are the two lane masks; where a bit
 * is 0 a register of sign bits (0x80000000, built once per word and shared by
 * all tokens) flips x's sign by XOR, an exact negation, so every term equals
 * the reference's b ? x : -x. Order of the sum, per row and token: lane L of
 * accumulator A0 adds columns 32k + L and lane L of A1 columns 32k + 16 + L,
 * for words k = 0, 1, ... in order (padding columns hold x = 0 and add -0);
 * then y = alpha * reduce(A0 + A1), reduce being _mm512_reduce_add_ps's fixed
 * tree. Matches the reference to rounding (another summation order).
 * Dequantization: one masked blend of {-alpha, +alpha} per 16 columns,
 * bit-identical to the reference.
 */
#include "format/sign.h"

#include "core/half.h"

#include <immintrin.h>

/* The body with T known at compile time (1..LP_SIGN_MAX_T): the token loop
 * unrolls and the 2T accumulators stay in registers. */
static inline __attribute__((always_inline)) void rows_impl(const lp_sign *w, const int T, const float *x, int64_t ldx,
                                                            float *y, int64_t ldy, int64_t r0, int64_t r1) {
    const __m512i sb = _mm512_set1_epi32((int)0x80000000u);
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *row = w->signs + r * w->words;
        __m512 a0[LP_SIGN_MAX_T], a1[LP_SIGN_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) a0[t] = a1[t] = _mm512_setzero_ps();
        for (int64_t k = 0; k < w->words; k++) {
            const uint32_t b = row[k];
            /* sign bits where b = 0: those terms are -x */
            const __m512 f0 = _mm512_castsi512_ps(_mm512_maskz_mov_epi32((__mmask16)~(b & 0xffffu), sb));
            const __m512 f1 = _mm512_castsi512_ps(_mm512_maskz_mov_epi32((__mmask16)~(b >> 16), sb));
            const float *xk = x + 32 * k;
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                a0[t] = _mm512_add_ps(a0[t], _mm512_xor_ps(_mm512_loadu_ps(xk + t * ldx), f0));
                a1[t] = _mm512_add_ps(a1[t], _mm512_xor_ps(_mm512_loadu_ps(xk + t * ldx + 16), f1));
            }
        }
        const float alpha = lp_f16_to_f32(w->scales[r]);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = alpha * _mm512_reduce_add_ps(_mm512_add_ps(a0[t], a1[t]));
    }
}

void lp_sign_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                         int64_t r0, int64_t r1) {
    const lp_sign *w = w_;
    switch (T) {
    case 1: rows_impl(w, 1, x, ldx, y, ldy, r0, r1); break;
    case 2: rows_impl(w, 2, x, ldx, y, ldy, r0, r1); break;
    case 3: rows_impl(w, 3, x, ldx, y, ldy, r0, r1); break;
    default: rows_impl(w, 4, x, ldx, y, ldy, r0, r1); break;
    }
}

void lp_sign_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_sign *w = w_;
    const int64_t C = w->cols;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *row = w->signs + r * w->words;
        const float alpha = lp_f16_to_f32(w->scales[r]);
        const __m512 pos = _mm512_set1_ps(alpha), neg = _mm512_set1_ps(-alpha);
        float *o = out + (r - r0) * C;
        for (int64_t k = 0; k < w->words; k++) {
            const uint32_t b = row[k];
            const __m512 v0 = _mm512_mask_blend_ps((__mmask16)(b & 0xffffu), neg, pos);
            const __m512 v1 = _mm512_mask_blend_ps((__mmask16)(b >> 16), neg, pos);
            const int64_t n = C - 32 * k; /* columns left from this word on */
            if (n >= 32) {
                _mm512_storeu_ps(o + 32 * k, v0);
                _mm512_storeu_ps(o + 32 * k + 16, v1);
            } else { /* the ragged last word */
                _mm512_mask_storeu_ps(o + 32 * k, (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u), v0);
                if (n > 16) _mm512_mask_storeu_ps(o + 32 * k + 16, (__mmask16)((1u << (n - 16)) - 1u), v1);
            }
        }
    }
}
