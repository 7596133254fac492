/*
 * sign_avx2.c - AVX2 kernels of the sign format (sign.h).
 *
 * Product: a word of a row covers 32 columns, four registers of 8 lanes.
 * Broadcasting ~b and shifting lane L of chunk h left by 31 - (8h + L) moves
 * the complement of column 8h + L's bit to the sign position; masked to
 * 0x80000000 it flips x's sign by XOR (exact negation) where b = 0, so every
 * term equals the reference's b ? x : -x. These masks are built once per word
 * and shared by all tokens. Order of the sum, per row and token: lane L of
 * accumulator A0 adds columns 32k + L, then 32k + 16 + L, and lane L of A1
 * columns 32k + 8 + L, then 32k + 24 + L, for words k = 0, 1, ... in order
 * (padding columns hold x = 0 and add -0; two accumulators per token keep
 * four tokens' sums in registers); then s = A0 + A1, its two 128-bit halves
 * added, then lanes (0+2, 1+3), then those two, and y = alpha * s. Matches the reference to rounding (another summation order).
 * Dequantization: the same shift puts b itself at the sign position and
 * blendv picks +alpha or -alpha, bit-identical to the reference.
 */
#include "format/sign.h"

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

static inline __attribute__((always_inline)) void rows_impl(const lp_sign *w, const int T, const float *x, int64_t ldx,
                                                            float *y, int64_t ldy, int64_t r0, int64_t r1) {
    __m256i sh[4];
    make_shifts(sh);
    const __m256i sb = _mm256_set1_epi32((int)0x80000000u);
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *row = w->signs + r * w->words;
        __m256 acc[LP_SIGN_MAX_T][2];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        for (int64_t k = 0; k < w->words; k++) {
            const __m256i nb = _mm256_set1_epi32((int)~row[k]);
            const float *xk = x + 32 * k;
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) {
                const __m256 f = _mm256_castsi256_ps(_mm256_and_si256(_mm256_sllv_epi32(nb, sh[h]), sb));
#pragma GCC unroll 4
                for (int t = 0; t < T; t++)
                    acc[t][h & 1] = _mm256_add_ps(acc[t][h & 1], _mm256_xor_ps(_mm256_loadu_ps(xk + t * ldx + 8 * h), f));
            }
        }
        const float alpha = lp_f16_to_f32(w->scales[r]);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            y[t * ldy + r] = alpha * hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
    }
}

void lp_sign_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
    const lp_sign *w = w_;
    switch (T) {
    case 1: rows_impl(w, 1, x, ldx, y, ldy, r0, r1); break;
    case 2: rows_impl(w, 2, x, ldx, y, ldy, r0, r1); break;
    case 3: rows_impl(w, 3, x, ldx, y, ldy, r0, r1); break;
    default: rows_impl(w, 4, x, ldx, y, ldy, r0, r1); break;
    }
}

void lp_sign_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_sign *w = w_;
    __m256i sh[4];
    make_shifts(sh);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int64_t C = w->cols;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *row = w->signs + r * w->words;
        const float alpha = lp_f16_to_f32(w->scales[r]);
        const __m256 pos = _mm256_set1_ps(alpha), neg = _mm256_set1_ps(-alpha);
        float *o = out + (r - r0) * C;
        for (int64_t k = 0; k < w->words; k++) {
            const __m256i b = _mm256_set1_epi32((int)row[k]);
#pragma GCC unroll 4
            for (int h = 0; h < 4; h++) {
                const int64_t c0 = 32 * k + 8 * h, n = C - c0; /* columns left from this chunk on */
                if (n <= 0) break;
                const __m256 v = _mm256_blendv_ps(neg, pos, _mm256_castsi256_ps(_mm256_sllv_epi32(b, sh[h])));
                if (n >= 8) _mm256_storeu_ps(o + c0, v);
                else _mm256_maskstore_ps(o + c0, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), lane), v);
            }
        }
    }
}
