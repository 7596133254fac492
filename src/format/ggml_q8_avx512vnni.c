/*
 * ggml_q8_avx512vnni.c - the AVX-512 VNNI kernel of GGUF Q4_0 / Q8_0 with
 * 8-bit activations (ggml_q8.h has the specification; lp_ggml_q8_gemv_ref
 * in ggml_q8.c is the reference it is tested against).
 *
 * Design, one row at a time (its blocks are one sequential stream, as the
 * q8 qgroup kernel's long rows: qgroup_q8_avx512vnni.c):
 *   - per 16 blocks: their f16 scales (a masked gather of the dword at each
 *     block's start; the low half is the scale), times d_b of x, give the
 *     factors f_b; the row's correction sum_b f_b s_b takes one FMA;
 *   - per pair of blocks, 64 weights as unsigned bytes u = c + OFF in column
 *     order, A's 32 then B's: Q8_0 two 32-byte loads XOR 0x80 (OFF = 128);
 *     Q4_0 the two 16-byte nibble arrays, each copied to two 128-bit lanes,
 *     the second copy shifted by 4, AND 0x0f (values 0-15, then 16-31;
 *     OFF = 8); one vpdpbusd with the pair's 64 activations gives 8 partial
 *     sums of A in lanes 0-7 and of B in 8-15, converted and multiplied by
 *     (f_A x 8, f_B x 8) (one vpermps of the 16 factors) into the row's
 *     accumulator;
 *   - y = sum(acc) - OFF * sum(corr).
 *   A row with an odd number of blocks ends in a pair whose second block is
 *   not loaded (masked to zero); the activations' padding block is zero.
 *   Each pair's load prefetches 8 KB ahead in the stream.
 */
#include "format/ggml_q8.h"

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

INLINE float row_dot(const int type, const uint8_t *row, const lp_ggml_q8_act *a, int64_t nb) {
    const int bs = type == LP_GGML_Q4_0 ? 2 + QK / 2 : 2 + QK;
    const __m512i offs = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(bs));
    __m512 acc = _mm512_setzero_ps(), corr = _mm512_setzero_ps();
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int64_t n = nb - b0 < 16 ? nb - b0 : 16;
        const __mmask16 m = (__mmask16)(n == 16 ? 0xffffu : (1u << n) - 1u);
        const uint8_t *base = row + (size_t)b0 * (size_t)bs;
        const __m512i dw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offs, base, 1);
        const __m512 f = _mm512_mul_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw)), _mm512_maskz_loadu_ps(m, a->d + b0));
        corr = _mm512_fmadd_ps(f, _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, a->sum + b0)), corr);
        for (int64_t k = 0; 2 * k < n; k++) {
            const uint8_t *pa = base + (size_t)(2 * k) * (size_t)bs;
            _mm_prefetch((const char *)pa + PF_AHEAD, _MM_HINT_T0);
            const __m512i u = pair_bytes(type, pa, pa + bs, 2 * k + 1 < n);
            const __m512i x = _mm512_load_si512(a->xq + (b0 + 2 * k) * QK);
            const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, x));
            const __m512i sel = _mm512_or_si512(_mm512_set1_epi32((int)(2 * k)),
                                                _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
            acc = _mm512_fmadd_ps(dot, _mm512_permutexvar_ps(sel, f), acc);
        }
    }
    const float off = type == LP_GGML_Q4_0 ? 8.0f : 128.0f;
    return _mm512_reduce_add_ps(acc) - off * _mm512_reduce_add_ps(corr);
}

static void rows_q4_0(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = row_dot(LP_GGML_Q4_0, p->blocks + (size_t)r * p->row_bytes, a, p->cols / QK);
}

static void rows_q8_0(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = row_dot(LP_GGML_Q8_0, p->blocks + (size_t)r * p->row_bytes, a, p->cols / QK);
}

void lp_ggml_q8_gemv_avx512vnni(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1) {
    if (p->type == LP_GGML_Q4_0) rows_q4_0(p, a, y, r0, r1);
    else rows_q8_0(p, a, y, r0, r1);
}
