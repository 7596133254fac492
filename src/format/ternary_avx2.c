/*
 * ternary_avx2.c - AVX2 kernels of the ternary format (ternary.h).
 *
 * Product: a word of a row covers 32 columns, four chunks h of 8 lanes.
 * Shifting a broadcast word lane L of chunk h left by 31 - (8h + L) moves
 * column 8h + L's bit to the sign position: from the "negative" plane,
 * masked to 0x80000000, it flips x's sign by XOR (exact negation); from the
 * "nonzero" plane, spread by an arithmetic shift, it masks the term to +0.
 * The masks are built once per word and shared by all tokens, so every term
 * equals the reference's m ? (n ? -x : x) : 0. Order of the sum, per row and
 * token: for each group g in order, lane L of G0 adds columns 32k + L, then
 * 32k + 16 + L, and lane L of G1 columns 32k + 8 + L, then 32k + 24 + L, over
 * the group's words k in order (padding columns add +0); then
 * A = fma(a_g, G0 + G1, A), lane by lane; finally y = A's two 128-bit halves
 * added, then lanes (0+2, 1+3), then those two. Matches the reference to
 * rounding (another summation order, fused scaling).
 * Dequantization: blendv picks -a or +a by the negative bit, AND with the
 * nonzero mask leaves +0 elsewhere: bit-identical to the reference.
 */
#include "format/ternary.h"

#include "core/half.h"

#include <immintrin.h>

/* shifts[h]: lane L gets 31 - (8h + L), moving bit 8h + L of a word to bit 31 */
static inline __attribute__((always_inline)) void make_shifts(__m256i shifts[4]) {
    for (int h = 0; h < 4; h++)
        shifts[h] = _mm256_setr_epi32(31 - 8 * h, 30 - 8 * h, 29 - 8 * h, 28 - 8 * h, 27 - 8 * h, 26 - 8 * h,
                                      25 - 8 * h, 24 - 8 * h);
}

static inline __attribute__((always_inline)) float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) void rows_impl(const lp_ternary *w, const int T, const float *x,
                                                            int64_t ldx, float *y, int64_t ldy, int64_t r0,
                                                            int64_t r1) {
    __m256i sh[4];
    make_shifts(sh);
    const __m256i sb = _mm256_set1_epi32((int)0x80000000u);
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *m = w->nonzero + r * w->words, *n = w->negative + r * w->words;
        const uint16_t *a = w->scales + r * w->ngroups;
        __m256 acc[LP_TERNARY_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
        for (int64_t g = 0; g < w->ngroups; g++) {
            const int64_t k0 = g * w->gwords, k1 = k0 + w->gwords < w->words ? k0 + w->gwords : w->words;
            __m256 gs[LP_TERNARY_MAX_T][2];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) gs[t][0] = gs[t][1] = _mm256_setzero_ps();
            for (int64_t k = k0; k < k1; k++) {
                const __m256i mk = _mm256_set1_epi32((int)m[k]), nk = _mm256_set1_epi32((int)n[k]);
                const float *xk = x + 32 * k;
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) {
                    const __m256 keep = _mm256_castsi256_ps(_mm256_srai_epi32(_mm256_sllv_epi32(mk, sh[h]), 31));
                    const __m256 flip = _mm256_castsi256_ps(_mm256_and_si256(_mm256_sllv_epi32(nk, sh[h]), sb));
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++)
                        gs[t][h & 1] = _mm256_add_ps(
                            gs[t][h & 1], _mm256_and_ps(_mm256_xor_ps(_mm256_loadu_ps(xk + t * ldx + 8 * h), flip), keep));
                }
            }
            const __m256 s = _mm256_set1_ps(lp_f16_to_f32(a[g]));
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[t] = _mm256_fmadd_ps(s, _mm256_add_ps(gs[t][0], gs[t][1]), acc[t]);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum(acc[t]);
    }
}

void lp_ternary_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                          int64_t r0, int64_t r1) {
    const lp_ternary *w = w_;
    switch (T) {
    case 1: rows_impl(w, 1, x, ldx, y, ldy, r0, r1); break;
    case 2: rows_impl(w, 2, x, ldx, y, ldy, r0, r1); break;
    case 3: rows_impl(w, 3, x, ldx, y, ldy, r0, r1); break;
    default: rows_impl(w, 4, x, ldx, y, ldy, r0, r1); break;
    }
}

void lp_ternary_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_ternary *w = w_;
    __m256i sh[4];
    make_shifts(sh);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int64_t C = w->cols;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *m = w->nonzero + r * w->words, *n = w->negative + r * w->words;
        const uint16_t *a = w->scales + r * w->ngroups;
        float *o = out + (r - r0) * C;
        for (int64_t k = 0; k < w->words; k++) {
            const float s = lp_f16_to_f32(a[k / w->gwords]);
            const __m256 pos = _mm256_set1_ps(s), neg = _mm256_set1_ps(-s);
            const __m256i mk = _mm256_set1_epi32((int)m[k]), nk = _mm256_set1_epi32((int)n[k]);
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) {
                const int64_t c0 = 32 * k + 8 * h, left = C - c0; /* columns left from this chunk on */
                if (left <= 0) break;
                const __m256 keep = _mm256_castsi256_ps(_mm256_srai_epi32(_mm256_sllv_epi32(mk, sh[h]), 31));
                const __m256 v = _mm256_and_ps(
                    _mm256_blendv_ps(pos, neg, _mm256_castsi256_ps(_mm256_sllv_epi32(nk, sh[h]))), keep);
                if (left >= 8) _mm256_storeu_ps(o + c0, v);
                else _mm256_maskstore_ps(o + c0, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), lane), v);
            }
        }
    }
}
