/*
 * qlut_avx512.c - AVX-512 dense part of the lookup-table format (qlut.h).
 *
 * A row's table (2^b <= 16 f16 values) is widened once into one register.
 * Each bit plane of a 32-code block (qgroup.h's layout) is spread over the
 * 16 lanes by one broadcast load (lane L gets the plane's word L mod w);
 * shifting by 16h + w (L div w) and masking gives the plane's bits of codes
 * 16h .. 16h + 15, ORed into place. One vpermps then looks the 16 weights
 * up and one FMA per token accumulates them.
 */
#include "format/qlut_kernels.h"

#include "format/qgroup.h"

#include <immintrin.h>
#include <string.h>

/* The plane of width w starting at word o of a block, spread over 16 lanes
 * (lane L gets word o + L mod w) by a broadcast load: no shuffle needed. */
static inline __attribute__((always_inline)) __m512i spread(const uint32_t *blk, int w) {
    switch (w) {
    case 1: return _mm512_set1_epi32((int)blk[0]);
    case 2: {
        uint64_t v;
        memcpy(&v, blk, 8);
        return _mm512_set1_epi64((long long)v);
    }
    default: return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)blk));
    }
}

/* The body with bits and T known at compile time (always inlined into the
 * dispatch below): the plane and token loops unroll and the accumulators
 * stay in registers. Planes of b <= 4: 1, 2, 2+1, 4 (qgroup.h). */
static inline __attribute__((always_inline)) void rows_impl(const lp_qlut *w, const int bits, const int64_t T,
                                                            const float *x, int64_t ldx, float *y, int64_t ldy,
                                                            int64_t r0, int64_t r1) {
    const int w0 = bits == 3 ? 2 : bits, w1 = bits == 3 ? 1 : 0; /* plane widths */
    const __mmask16 lmask = (__mmask16)((1u << (1 << bits)) - 1);
    int32_t s[2][2][16];
    for (int L = 0; L < 16; L++) {
        s[0][0][L] = w0 * (L / w0);
        s[0][1][L] = 16 + w0 * (L / w0);
        s[1][0][L] = w1 ? w1 * (L / w1) : 0;
        s[1][1][L] = w1 ? 16 + w1 * (L / w1) : 0;
    }
    const __m512i sh00 = _mm512_loadu_si512(s[0][0]), sh01 = _mm512_loadu_si512(s[0][1]);
    const __m512i sh10 = _mm512_loadu_si512(s[1][0]), sh11 = _mm512_loadu_si512(s[1][1]);
    const __m512i m0 = _mm512_set1_epi32((1 << w0) - 1), m1 = _mm512_set1_epi32(1);
    for (int64_t r = r0; r < r1; r++) {
        const __m512 lut = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lmask, w->lut + (r << bits)));
        const uint32_t *q = w->q + r * w->blocks * bits;
        __m512 acc[LP_QLUT_MAX_T];
        for (int64_t t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t b = 0; b < w->blocks; b++) {
            const uint32_t *blk = q + b * bits;
            const __m512i p0 = spread(blk, w0);
            __m512i c0 = _mm512_and_si512(_mm512_srlv_epi32(p0, sh00), m0);
            __m512i c1 = _mm512_and_si512(_mm512_srlv_epi32(p0, sh01), m0);
            if (w1) {
                const __m512i p1 = _mm512_set1_epi32((int)blk[2]);
                c0 = _mm512_or_si512(c0, _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(p1, sh10), m1), 2));
                c1 = _mm512_or_si512(c1, _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(p1, sh11), m1), 2));
            }
            const __m512 v0 = _mm512_permutexvar_ps(c0, lut), v1 = _mm512_permutexvar_ps(c1, lut);
            const float *xb = x + b * LP_QGROUP_BLOCK;
            for (int64_t t = 0; t < T; t++) {
                acc[t] = _mm512_fmadd_ps(v0, _mm512_loadu_ps(xb + t * ldx), acc[t]);
                acc[t] = _mm512_fmadd_ps(v1, _mm512_loadu_ps(xb + t * ldx + 16), acc[t]);
            }
        }
        for (int64_t t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
    }
}

void lp_qlut_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1) {
    const lp_qlut *w = w_;
    LP_QLUT_DISPATCH(rows_impl)
}

/* Dense part of rows [r0, r1) to f32 (out: (r1 - r0) x cols): the same
 * table lookups as lp_qlut_dequant, so bit-identical; outliers not added. */
static inline __attribute__((always_inline)) void dequant_impl(const lp_qlut *w, const int bits, int64_t r0,
                                                               int64_t r1, float *out) {
    const int w0 = bits == 3 ? 2 : bits, w1 = bits == 3 ? 1 : 0;
    const __mmask16 lmask = (__mmask16)((1u << (1 << bits)) - 1);
    int32_t s[2][2][16];
    for (int L = 0; L < 16; L++) {
        s[0][0][L] = w0 * (L / w0);
        s[0][1][L] = 16 + w0 * (L / w0);
        s[1][0][L] = w1 ? w1 * (L / w1) : 0;
        s[1][1][L] = w1 ? 16 + w1 * (L / w1) : 0;
    }
    const __m512i sh00 = _mm512_loadu_si512(s[0][0]), sh01 = _mm512_loadu_si512(s[0][1]);
    const __m512i sh10 = _mm512_loadu_si512(s[1][0]), sh11 = _mm512_loadu_si512(s[1][1]);
    const __m512i m0 = _mm512_set1_epi32((1 << w0) - 1), m1 = _mm512_set1_epi32(1);
    const int64_t C = w->cols, full = C / LP_QGROUP_BLOCK;
    for (int64_t r = r0; r < r1; r++) {
        const __m512 lut = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lmask, w->lut + (r << bits)));
        const uint32_t *q = w->q + r * w->blocks * bits;
        float *o = out + (r - r0) * C;
        for (int64_t b = 0; b < w->blocks; b++) {
            const uint32_t *blk = q + b * bits;
            const __m512i p0 = spread(blk, w0);
            __m512i c0 = _mm512_and_si512(_mm512_srlv_epi32(p0, sh00), m0);
            __m512i c1 = _mm512_and_si512(_mm512_srlv_epi32(p0, sh01), m0);
            if (w1) {
                const __m512i p1 = _mm512_set1_epi32((int)blk[2]);
                c0 = _mm512_or_si512(c0, _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(p1, sh10), m1), 2));
                c1 = _mm512_or_si512(c1, _mm512_slli_epi32(_mm512_and_si512(_mm512_srlv_epi32(p1, sh11), m1), 2));
            }
            const __m512 v0 = _mm512_permutexvar_ps(c0, lut), v1 = _mm512_permutexvar_ps(c1, lut);
            if (b < full) {
                _mm512_storeu_ps(o + b * LP_QGROUP_BLOCK, v0);
                _mm512_storeu_ps(o + b * LP_QGROUP_BLOCK + 16, v1);
            } else { /* the ragged last block */
                int64_t n = C - b * LP_QGROUP_BLOCK;
                _mm512_mask_storeu_ps(o + b * LP_QGROUP_BLOCK, (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1), v0);
                if (n > 16) _mm512_mask_storeu_ps(o + b * LP_QGROUP_BLOCK + 16, (__mmask16)((1u << (n - 16)) - 1), v1);
            }
        }
    }
}

void lp_qlut_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_qlut *w = w_;
    switch (w->bits) {
    case 1: dequant_impl(w, 1, r0, r1, out); break;
    case 2: dequant_impl(w, 2, r0, r1, out); break;
    case 3: dequant_impl(w, 3, r0, r1, out); break;
    default: dequant_impl(w, 4, r0, r1, out); break;
    }
}
