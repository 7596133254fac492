/*
 * ternary_avx512.c - AVX-512 kernels of the ternary format (ternary.h).
 *
 * Product: a word of a row covers 32 columns, two registers of 16 lanes; its
 * low and high 16 bits of the "nonzero" plane are the lane masks of a masked
 * add, and a register of sign bits built from the "negative" plane (once per
 * word, shared by all tokens) flips x's sign by XOR, an exact negation, so
 * every term equals the reference's m ? (n ? -x : x) : 0. Order of the sum,
 * per row and token: for each group g in order, lane L of G0 adds columns
 * 32k + L and lane L of G1 columns 32k + 16 + L over the group's words k in
 * order (padding columns are masked out); then A = fma(a_g, G0 + G1, A), lane
 * by lane; finally y = _mm512_reduce_add_ps(A) (a fixed tree). Matches the
 * reference to rounding (another summation order, fused scaling).
 * Dequantization: per 16 columns a blend of {+a, -a} by the negative bits,
 * zeroed by the nonzero bits: bit-identical to the reference.
 */
#include "format/ternary.h"

#include "core/half.h"

#include <immintrin.h>

static inline __attribute__((always_inline)) void rows_impl(const lp_ternary *w, const int T, const float *x,
                                                            int64_t ldx, float *y, int64_t ldy, int64_t r0,
                                                            int64_t r1) {
    const __m512i sb = _mm512_set1_epi32((int)0x80000000u);
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *m = w->nonzero + r * w->words, *n = w->negative + r * w->words;
        const uint16_t *a = w->scales + r * w->ngroups;
        __m512 acc[LP_TERNARY_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t g = 0; g < w->ngroups; g++) {
            const int64_t k0 = g * w->gwords, k1 = k0 + w->gwords < w->words ? k0 + w->gwords : w->words;
            __m512 g0[LP_TERNARY_MAX_T], g1[LP_TERNARY_MAX_T];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) g0[t] = g1[t] = _mm512_setzero_ps();
            for (int64_t k = k0; k < k1; k++) {
                const uint32_t mk = m[k], nk = n[k];
                const __mmask16 m0 = (__mmask16)(mk & 0xffffu), m1 = (__mmask16)(mk >> 16);
                const __m512 f0 = _mm512_castsi512_ps(_mm512_maskz_mov_epi32((__mmask16)(nk & 0xffffu), sb));
                const __m512 f1 = _mm512_castsi512_ps(_mm512_maskz_mov_epi32((__mmask16)(nk >> 16), sb));
                const float *xk = x + 32 * k;
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    g0[t] = _mm512_mask_add_ps(g0[t], m0, g0[t], _mm512_xor_ps(_mm512_loadu_ps(xk + t * ldx), f0));
                    g1[t] = _mm512_mask_add_ps(g1[t], m1, g1[t],
                                               _mm512_xor_ps(_mm512_loadu_ps(xk + t * ldx + 16), f1));
                }
            }
            const __m512 s = _mm512_set1_ps(lp_f16_to_f32(a[g]));
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[t] = _mm512_fmadd_ps(s, _mm512_add_ps(g0[t], g1[t]), acc[t]);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
    }
}

void lp_ternary_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                            int64_t r0, int64_t r1) {
    const lp_ternary *w = w_;
    switch (T) {
    case 1: rows_impl(w, 1, x, ldx, y, ldy, r0, r1); break;
    case 2: rows_impl(w, 2, x, ldx, y, ldy, r0, r1); break;
    case 3: rows_impl(w, 3, x, ldx, y, ldy, r0, r1); break;
    default: rows_impl(w, 4, x, ldx, y, ldy, r0, r1); break;
    }
}

void lp_ternary_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_ternary *w = w_;
    const int64_t C = w->cols;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *m = w->nonzero + r * w->words, *n = w->negative + r * w->words;
        const uint16_t *a = w->scales + r * w->ngroups;
        float *o = out + (r - r0) * C;
        for (int64_t k = 0; k < w->words; k++) {
            const float s = lp_f16_to_f32(a[k / w->gwords]);
            const __m512 pos = _mm512_set1_ps(s), neg = _mm512_set1_ps(-s);
            const uint32_t mk = m[k], nk = n[k];
            const __m512 v0 =
                _mm512_maskz_mov_ps((__mmask16)(mk & 0xffffu), _mm512_mask_blend_ps((__mmask16)(nk & 0xffffu), pos, neg));
            const __m512 v1 = _mm512_maskz_mov_ps((__mmask16)(mk >> 16), _mm512_mask_blend_ps((__mmask16)(nk >> 16), pos, neg));
            const int64_t left = C - 32 * k; /* columns left from this word on */
            if (left >= 32) {
                _mm512_storeu_ps(o + 32 * k, v0);
                _mm512_storeu_ps(o + 32 * k + 16, v1);
            } else { /* the ragged last word */
                _mm512_mask_storeu_ps(o + 32 * k, (__mmask16)(left >= 16 ? 0xffffu : (1u << left) - 1u), v0);
                if (left > 16) _mm512_mask_storeu_ps(o + 32 * k + 16, (__mmask16)((1u << (left - 16)) - 1u), v1);
            }
        }
    }
}
