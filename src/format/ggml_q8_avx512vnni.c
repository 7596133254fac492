/*
 * ggml_q8_avx512vnni.c - the AVX-512 VNNI kernel of GGUF Q4_0 / Q8_0 with
 * 8-bit activations (ggml_q8.h has the specification; lp_ggml_q8_gemv_ref
 * in ggml_q8.c is the reference it is tested against).
 *
 * Design, per pass of four rows (short rows: they share each activation
 * load and the horizontal sums) or one (rows of 64+ blocks: one sequential
 * stream, as the q8 qgroup kernel's long rows, qgroup_q8_avx512vnni.c):
 *   - per 16 blocks: their f16 scales (a masked gather of the dword at each
 *     block's start; the low half is the scale), times d_b of x, give the
 *     factors f_b; the correction OFF f_b s_b is subtracted from the row's
 *     accumulator lane-wise (one FMA);
 *   - per pair of blocks, 64 weights as unsigned bytes u = c + OFF in column
 *     order, A's 32 then B's: Q8_0 two 32-byte loads XOR 0x80 (OFF = 128);
 *     Q4_0 the two 16-byte nibble arrays, each copied to two 128-bit lanes,
 *     the second copy shifted by 4, AND 0x0f (values 0-15, then 16-31;
 *     OFF = 8); one vpdpbusd with the pair's 64 activations gives 8 partial
 *     sums of A in lanes 0-7 and of B in 8-15, converted and multiplied by
 *     (f_A x 8, f_B x 8) (one vpermps of the 16 factors) into the row's
 *     accumulator;
 *   - y = the accumulator's horizontal sum (core/hsum_avx512.h for four).
 *   A row with an odd number of blocks ends in a pair whose second block is
 *   not loaded (masked to zero); the activations' padding block is zero.
 *   Each pair's load prefetches 8 KB ahead in a one-row pass, and in a
 *   four-row pass the same place whole passes down, at least 8 KB.
 */
#include "format/ggml_q8.h"

#include "core/hsum_avx512.h"
#include "format/ggml_quants.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

enum { QK = LP_GGML_QK, PF_AHEAD = 8192 };

/* Blocks bA and bA + 1 (the second only when hasB) of a row as 64 unsigned
 * bytes u = c + OFF, in column order. */
INLINE __m512i pair_bytes(const int type, const uint8_t *a, const uint8_t *b, int hasB) {
    if (type == LP_GGML_Q8_0) {
        const __m256i qa = _mm256_loadu_si256((const __m256i *)(a + 2));
        const __m256i qb = _mm256_maskz_loadu_epi8(hasB ? 0xffffffffu : 0u, b + 2);
        return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1), _mm512_set1_epi8((char)0x80));
    }
    const __m128i qa = _mm_loadu_si128((const __m128i *)(a + 2));
    const __m128i qb = _mm_maskz_loadu_epi8(hasB ? 0xffffu : 0u, b + 2);
    const __m512i t = _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(qa), qb, 1));
    const __m512i v = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), t); /* A A B B */
    return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), _mm512_set1_epi8(0x0f));
}

/* Rows r0 .. r0 + nr - 1 (nr = 1 or 4; rows past r1 repeat r1 - 1 and are
 * not stored). The correction OFF f_b s_b is subtracted lane-wise from the
 * accumulator, so a row ends in one horizontal sum, four rows' together. */
INLINE void pass(const int type, const int nr, const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0,
                 int64_t r1) {
    const int bs = type == LP_GGML_Q4_0 ? 2 + QK / 2 : 2 + QK;
    const float off = type == LP_GGML_Q4_0 ? 8.0f : 128.0f;
    const int64_t nb = p->cols / QK;
    const __m512i offs = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(bs));
    const __m512i pair_sel = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    /* one stream: 8 KB ahead; four rows: the same place in a later pass, at
     * least 8 KB ahead (short rows: the next pass alone is too close to
     * cover the DRAM latency) */
    const size_t pass_bytes = 4 * p->row_bytes;
    const size_t ahead = nr == 1 ? PF_AHEAD : (PF_AHEAD + pass_bytes - 1) / pass_bytes * pass_bytes;
    const uint8_t *rp[4];
    __m512 acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        rp[i] = p->blocks + (size_t)(r0 + i < r1 ? r0 + i : r1 - 1) * p->row_bytes;
        acc[i] = _mm512_setzero_ps();
    }
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int64_t n = nb - b0 < 16 ? nb - b0 : 16;
        const __mmask16 m = (__mmask16)(n == 16 ? 0xffffu : (1u << n) - 1u);
        const size_t o0 = (size_t)b0 * (size_t)bs;
        const __m512 dx = _mm512_maskz_loadu_ps(m, a->d + b0);
        const __m512 sx = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, a->sum + b0));
        __m512 f[4];
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) {
            const __m512i dw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offs, rp[i] + o0, 1);
            f[i] = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw)), dx);
            acc[i] = _mm512_fnmadd_ps(_mm512_mul_ps(f[i], _mm512_set1_ps(off)), sx, acc[i]);
        }
        for (int64_t k = 0; 2 * k < n; k++) {
            const size_t o = o0 + (size_t)(2 * k) * (size_t)bs;
            const __m512i x = _mm512_load_si512(a->xq + (b0 + 2 * k) * QK);
            const __m512i sel = _mm512_add_epi32(_mm512_set1_epi32((int)(2 * k)), pair_sel);
#pragma GCC unroll 4
            for (int i = 0; i < nr; i++) {
                _mm_prefetch((const char *)rp[i] + o + ahead, _MM_HINT_T0);
                const __m512i u = pair_bytes(type, rp[i] + o, rp[i] + o + bs, 2 * k + 1 < n);
                const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, x));
                acc[i] = _mm512_fmadd_ps(dot, _mm512_permutexvar_ps(sel, f[i]), acc[i]);
            }
        }
    }
    if (nr == 1) {
        y[r0] = _mm512_reduce_add_ps(acc[0]);
        return;
    }
    const int64_t cnt = r1 - r0 < 4 ? r1 - r0 : 4;
    _mm_mask_storeu_ps(y + r0, (__mmask8)((1u << cnt) - 1u), lp_hsum4_avx512(acc[0], acc[1], acc[2], acc[3]));
}

/* Rows of at least 64 blocks (2048 columns) one at a time, one sequential
 * stream each; shorter rows four at a time, sharing each activation load
 * and the horizontal sums. */
#define DEFINE_TYPE(NAME, TYPE)                                                                              \
    static void rows_##NAME(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1) { \
        if (p->cols / QK >= 64)                                                                              \
            for (int64_t r = r0; r < r1; r++) pass(TYPE, 1, p, a, y, r, r1);                                 \
        else                                                                                                 \
            for (int64_t r = r0; r < r1; r += 4) pass(TYPE, 4, p, a, y, r, r1);                              \
    }
DEFINE_TYPE(q4_0, LP_GGML_Q4_0)
DEFINE_TYPE(q8_0, LP_GGML_Q8_0)

void lp_ggml_q8_gemv_avx512vnni(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1) {
    if (p->type == LP_GGML_Q4_0) rows_q4_0(p, a, y, r0, r1);
    else rows_q8_0(p, a, y, r0, r1);
}
