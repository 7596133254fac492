/*
 * qlut_avx512.c - AVX-512 dense part of the lookup-table format (qlut.h).
 *
 * A row's table (2^b <= 16 f16 values) is widened once into one register.
 * For each half of a 32-code block, every bit plane of the block (qgroup.h's
 * layout) is spread over the 16 lanes with one vpermd (lane L gets the
 * plane's word L mod w), shifted by 16h + w (L div w) and masked: that is
 * 16 consecutive codes' bits of the plane, ORed into place. One vpermps then
 * looks the 16 weights up and one FMA per token accumulates them.
 */
#include "kernels/qlut_kernels.h"

#include "quant/qgroup.h"

#include <immintrin.h>

typedef struct {
    int n;               /* planes: 1 or 2 */
    __m512i idx[2];      /* lane L: o + (L mod w) */
    __m512i shift[2][2]; /* [plane][half]: 16h + w (L div w) */
    __m512i mask[2];     /* 2^w - 1 */
    int off[2];          /* o: the plane's first bit in the code */
} planes;

static void make_planes(int bits, planes *p) {
    p->n = 0;
    for (int w = 8, o = 0; w >= 1; o += (bits & w), w >>= 1) {
        if (!(bits & w)) continue;
        int32_t idx[16], s0[16], s1[16];
        for (int L = 0; L < 16; L++) {
            idx[L] = o + L % w;
            s0[L] = w * (L / w);
            s1[L] = 16 + w * (L / w);
        }
        p->idx[p->n] = _mm512_loadu_si512(idx);
        p->shift[p->n][0] = _mm512_loadu_si512(s0);
        p->shift[p->n][1] = _mm512_loadu_si512(s1);
        p->mask[p->n] = _mm512_set1_epi32((1 << w) - 1);
        p->off[p->n] = o;
        p->n++;
    }
}

void lp_qlut_rows_avx512(const lp_qlut *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                         int64_t r0, int64_t r1) {
    const int bits = w->bits;
    const __mmask16 wmask = (__mmask16)((1u << bits) - 1), lmask = (__mmask16)((1u << (1 << bits)) - 1);
    planes p;
    make_planes(bits, &p);
    for (int64_t r = r0; r < r1; r++) {
        const __m512 lut = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lmask, w->lut + (r << bits)));
        const uint32_t *q = w->q + r * w->blocks * bits;
        __m512 acc[LP_QLUT_MAX_T];
        for (int64_t t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t b = 0; b < w->blocks; b++) {
            const __m512i words = _mm512_maskz_loadu_epi32(wmask, q + b * bits);
            for (int h = 0; h < 2; h++) {
                __m512i code = _mm512_setzero_si512();
                for (int k = 0; k < p.n; k++) {
                    __m512i v = _mm512_permutexvar_epi32(p.idx[k], words);
                    v = _mm512_and_si512(_mm512_srlv_epi32(v, p.shift[k][h]), p.mask[k]);
                    code = _mm512_or_si512(code, _mm512_slli_epi32(v, (unsigned)p.off[k]));
                }
                const __m512 wv = _mm512_permutexvar_ps(code, lut);
                const float *xb = x + b * LP_QGROUP_BLOCK + 16 * h;
                for (int64_t t = 0; t < T; t++) acc[t] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xb + t * ldx), acc[t]);
            }
        }
        for (int64_t t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
    }
}
