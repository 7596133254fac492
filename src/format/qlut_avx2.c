/*
 * qlut_avx2.c - AVX2 dense part of the lookup-table format (qlut.h).
 *
 * As the AVX-512 kernel, with 8 lanes: each bit plane of a 32-code block is
 * spread by one broadcast load (lane L gets the plane's word L mod w) and
 * shifted by 8h + w (L div w), h = 0..3, giving codes 8h .. 8h + 7. A row's
 * table of up to 16 values lives in two registers; vpermps looks up the low
 * eight entries in each and bit 3 of the code picks one (one blend), for
 * b = 4 only.
 */
#include "format/qlut_kernels.h"

#include "format/qgroup.h"

#include <immintrin.h>
#include <string.h>

static inline __attribute__((always_inline)) __m256i spread8(const uint32_t *blk, int w) {
    switch (w) {
    case 1: return _mm256_set1_epi32((int)blk[0]);
    case 2: {
        long long v;
        memcpy(&v, blk, 8);
        return _mm256_set1_epi64x(v);
    }
    default: return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)blk));
    }
}

static inline __attribute__((always_inline)) void rows_impl(const lp_qlut *w, const int bits, const int64_t T,
                                                            const float *x, int64_t ldx, float *y, int64_t ldy,
                                                            int64_t r0, int64_t r1) {
    const int w0 = bits == 3 ? 2 : bits, w1 = bits == 3 ? 1 : 0; /* plane widths: 1, 2, 2+1, 4 */
    __m256i sh0[4], sh1[4];
    for (int h = 0; h < 4; h++) {
        int32_t a[8], b[8];
        for (int L = 0; L < 8; L++) {
            a[L] = 8 * h + w0 * (L / w0);
            b[L] = w1 ? 8 * h + w1 * (L / w1) : 0;
        }
        sh0[h] = _mm256_loadu_si256((const __m256i *)a);
        sh1[h] = _mm256_loadu_si256((const __m256i *)b);
    }
    const __m256i m0 = _mm256_set1_epi32((1 << w0) - 1), m1 = _mm256_set1_epi32(1);
    for (int64_t r = r0; r < r1; r++) {
        uint16_t tab[16] = {0};
        memcpy(tab, w->lut + (r << bits), sizeof(uint16_t) << bits);
        const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)tab));
        const __m256 hi = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(tab + 8)));
        const uint32_t *q = w->q + r * w->blocks * bits;
        __m256 acc[LP_QLUT_MAX_T];
        for (int64_t t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
        for (int64_t b = 0; b < w->blocks; b++) {
            const uint32_t *blk = q + b * bits;
            const __m256i p0 = spread8(blk, w0);
            const __m256i p1 = _mm256_set1_epi32(w1 ? (int)blk[2] : 0);
            const float *xb = x + b * LP_QGROUP_BLOCK;
            for (int h = 0; h < 4; h++) {
                __m256i c = _mm256_and_si256(_mm256_srlv_epi32(p0, sh0[h]), m0);
                if (w1) c = _mm256_or_si256(c, _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(p1, sh1[h]), m1), 2));
                __m256 v = _mm256_permutevar8x32_ps(lo, c);
                if (bits == 4)
                    v = _mm256_blendv_ps(v, _mm256_permutevar8x32_ps(hi, c), _mm256_castsi256_ps(_mm256_slli_epi32(c, 28)));
                for (int64_t t = 0; t < T; t++) acc[t] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xb + t * ldx + 8 * h), acc[t]);
            }
        }
        for (int64_t t = 0; t < T; t++) { /* horizontal sum: fixed order */
            __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc[t]), _mm256_extractf128_ps(acc[t], 1));
            s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            s = _mm_add_ss(s, _mm_movehdup_ps(s));
            y[t * ldy + r] = _mm_cvtss_f32(s);
        }
    }
}

void lp_qlut_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
    const lp_qlut *w = w_;
    LP_QLUT_DISPATCH(rows_impl)
}
