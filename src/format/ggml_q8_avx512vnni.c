/*
 * ggml_q8_avx512vnni.c - the AVX-512 VNNI kernel of GGUF's quantized types
 * with 8-bit activations (ggml_q8.h has the specification;
 * lp_ggml_q8_gemv_ref in ggml_q8.c is the reference it is tested against).
 *
 * Design, 32-value types, per pass of four rows (short rows: they share
 * each activation load and the horizontal sums) or one (rows of 64+
 * blocks: one sequential stream, as the q8 qgroup kernel's long rows,
 * qgroup_q8_avx512vnni.c):
 *   - per 16 blocks: their f16 scales (a masked gather of the dword at each
 *     block's start; the low half is the scale, the high half Q4_1 / Q5_1's
 *     min), times d_b of x, give the factors f_b; the correction
 *     (m_b - OFF D_b) d_b s_b is added to the row's accumulator lane-wise
 *     (one FMA, two with a min);
 *   - per pair of blocks, 64 codes as unsigned bytes u = code + OFF in
 *     column order, A's 32 then B's: Q8_0 two 32-byte loads XOR 0x80
 *     (OFF = 128); Q4_0 the two 16-byte nibble arrays, each copied to two
 *     128-bit lanes, the second copy shifted by 4, AND 0x0f (values 0-15,
 *     then 16-31; OFF = 8); Q4_1, Q5_0, Q5_1, IQ4_NL each block's codes as
 *     the f32 row kernels unpack them (ggml_unpack.h), XOR 0x80 for the
 *     signed ones (OFF = 128, 0 with a min); one vpdpbusd with the pair's
 *     64 activations gives 8 partial sums of A in lanes 0-7 and of B in
 *     8-15, converted and multiplied by (f_A x 8, f_B x 8) (one vpermps of
 *     the 16 factors) into the row's accumulator;
 *   - y = the accumulator's horizontal sum (core/hsum_avx512.h for four).
 *   A row with an odd number of blocks ends in a pair whose second block is
 *   not loaded (zero); the activations' padding block is zero.
 *   Each pair's load prefetches 8 KB ahead in a one-row pass, and in a
 *   four-row pass the same place whole passes down, at least 8 KB.
 * K types, a row at a time, per 256-value block: its codes and per-16
 *   factors as the f32 row kernels unpack them (ggml_unpack.h: codes into
 *   an L1 buffer), then four vectors of 64 codes, each XOR 0x80 and one
 *   vpdpbusd with 64 activations: lanes 4i .. 4i+3 hold sub-block i's
 *   partial sums, times its factor sc16 * d_b (one vpermps); per block one
 *   FMA takes OFF back with the min, (128 sc16 + mn16) d_b t_u, from the 16
 *   half-block sums of x.
 */
#include "format/ggml_q8.h"

#include "core/hsum_avx512.h"
#include "format/ggml_quants.h"
#include "format/ggml_unpack.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

enum { QK = LP_GGML_QK, PF_AHEAD = 8192 };

/* Whether the type's codes are unsigned with a min (value = d code + m). */
INLINE int has_min(int type) { return type == LP_GGML_Q4_1 || type == LP_GGML_Q5_1; }

/* OFF of the specification's u = code + OFF. */
INLINE float type_off(int type) { return type == LP_GGML_Q4_0 ? 8.0f : has_min(type) ? 0.0f : 128.0f; }

/* Blocks bA and bA + 1 (the second only when hasB) of a row as 64 unsigned
 * bytes u = code + OFF, in column order. */
INLINE __m512i pair_bytes(const int type, const uint8_t *a, const uint8_t *b, int hasB) {
    if (type == LP_GGML_Q8_0) {
        const __m256i qa = _mm256_loadu_si256((const __m256i *)(a + 2));
        const __m256i qb = _mm256_maskz_loadu_epi8(hasB ? 0xffffffffu : 0u, b + 2);
        return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(qa), qb, 1), _mm512_set1_epi8((char)0x80));
    }
    if (type == LP_GGML_Q4_0) {
        const __m128i qa = _mm_loadu_si128((const __m128i *)(a + 2));
        const __m128i qb = _mm_maskz_loadu_epi8(hasB ? 0xffffu : 0u, b + 2);
        const __m512i t = _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(qa), qb, 1));
        const __m512i v = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3), t); /* A A B B */
        return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4)), _mm512_set1_epi8(0x0f));
    }
    const __m256i ca = lp_ggml_codes32(type, a), cb = hasB ? lp_ggml_codes32(type, b) : _mm256_setzero_si256();
    const __m512i c = _mm512_inserti64x4(_mm512_castsi256_si512(ca), cb, 1);
    return has_min(type) ? c : _mm512_xor_si512(c, _mm512_set1_epi8((char)0x80));
}

/* Rows r0 .. r0 + nr - 1 (nr = 1 or 4; rows past r1 repeat r1 - 1 and are
 * not stored). The correction OFF f_b s_b is subtracted lane-wise from the
 * accumulator, so a row ends in one horizontal sum, four rows' together. */
INLINE void pass(const int type, const int nr, const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0,
                 int64_t r1) {
    const int bs = lp_ggml_type_of(type).bytes;
    const float off = type_off(type);
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
            if (has_min(type)) { /* + m_b d_b s_b: the min's half of the dword */
                const __m512 m = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dw, 16)));
                acc[i] = _mm512_fmadd_ps(_mm512_mul_ps(m, dx), sx, acc[i]);
            } else {
                acc[i] = _mm512_fnmadd_ps(_mm512_mul_ps(f[i], _mm512_set1_ps(off)), sx, acc[i]);
            }
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

/* Row r of a K type: see the top. */
INLINE void row_k(const int type, const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r) {
    const int64_t nsb = p->cols / LP_GGML_QK_K;
    const size_t bs = (size_t)lp_ggml_type_of(type).bytes;
    const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
    const __m512i half = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7); /* sub-block -> x block */
    __m512i quarter[4]; /* lane L of vector v: sub-block 4v + L / 4 */
    for (int v = 0; v < 4; v++)
        quarter[v] = _mm512_add_epi32(_mm512_set1_epi32(4 * v),
                                      _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 acc = _mm512_setzero_ps();
    lp_ggml_kblock kb;
    for (int64_t k = 0; k < nsb; k++) {
        const uint8_t *blk = row + (size_t)k * bs;
        for (size_t o = 0; o < bs; o += 64) _mm_prefetch((const char *)blk + PF_AHEAD + o, _MM_HINT_T0);
        switch (type) { /* the inline unpacker, not a call through lp_ggml_kunpacker */
        case LP_GGML_Q2_K: lp_ggml_unpack_q2_k(blk, &kb); break;
        case LP_GGML_Q3_K: lp_ggml_unpack_q3_k(blk, &kb); break;
        case LP_GGML_Q4_K: lp_ggml_unpack_q4_k(blk, &kb); break;
        case LP_GGML_Q5_K: lp_ggml_unpack_q5_k(blk, &kb); break;
        default: lp_ggml_unpack_q6_k(blk, &kb); break;
        }
        const __m512 dx = _mm512_permutexvar_ps(half, _mm512_castps256_ps512(_mm256_loadu_ps(a->d + 8 * k)));
        const __m512 sc = _mm512_loadu_ps(kb.sc16), g = _mm512_mul_ps(sc, dx);
        const __m512 t = _mm512_cvtepi32_ps(_mm512_loadu_si512(a->sum16 + 16 * k));
        /* value = sc16 code - mn16 and code = u - 128: take (128 sc16 + mn16) d_b t_u back */
        acc = _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_fmadd_ps(sc, _mm512_set1_ps(128.0f), _mm512_loadu_ps(kb.mn16)), dx),
                               t, acc);
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) { /* 32-byte loads, as the unpacker stored them (store forwarding) */
            const __m256i lo = _mm256_load_si256((const __m256i *)(kb.q + 64 * v));
            const __m256i hi = _mm256_load_si256((const __m256i *)(kb.q + 64 * v + 32));
            const __m512i u = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), flip);
            const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u,
                                                    _mm512_load_si512(a->xq + k * LP_GGML_QK_K + 64 * v));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(quarter[v], g), acc);
        }
    }
    y[r] = _mm512_reduce_add_ps(acc);
}

/* 32-value types: rows of at least 64 blocks (2048 columns) one at a time,
 * one sequential stream each; shorter rows four at a time, sharing each
 * activation load and the horizontal sums. */
#define DEFINE_TYPE(NAME, TYPE)                                                                              \
    static void rows_##NAME(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1) { \
        if (p->cols / QK >= 64)                                                                              \
            for (int64_t r = r0; r < r1; r++) pass(TYPE, 1, p, a, y, r, r1);                                 \
        else                                                                                                 \
            for (int64_t r = r0; r < r1; r += 4) pass(TYPE, 4, p, a, y, r, r1);                              \
    }
DEFINE_TYPE(q4_0, LP_GGML_Q4_0)
DEFINE_TYPE(q4_1, LP_GGML_Q4_1)
DEFINE_TYPE(q5_0, LP_GGML_Q5_0)
DEFINE_TYPE(q5_1, LP_GGML_Q5_1)
DEFINE_TYPE(q8_0, LP_GGML_Q8_0)
DEFINE_TYPE(iq4_nl, LP_GGML_IQ4_NL)

#define DEFINE_K(NAME, TYPE)                                                                                 \
    static void rows_##NAME(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1) { \
        for (int64_t r = r0; r < r1; r++) row_k(TYPE, p, a, y, r);                                           \
    }
DEFINE_K(q2_k, LP_GGML_Q2_K)
DEFINE_K(q3_k, LP_GGML_Q3_K)
DEFINE_K(q4_k, LP_GGML_Q4_K)
DEFINE_K(q5_k, LP_GGML_Q5_K)
DEFINE_K(q6_k, LP_GGML_Q6_K)

void lp_ggml_q8_gemv_avx512vnni(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1) {
    switch (p->type) {
    case LP_GGML_Q4_0: rows_q4_0(p, a, y, r0, r1); break;
    case LP_GGML_Q4_1: rows_q4_1(p, a, y, r0, r1); break;
    case LP_GGML_Q5_0: rows_q5_0(p, a, y, r0, r1); break;
    case LP_GGML_Q5_1: rows_q5_1(p, a, y, r0, r1); break;
    case LP_GGML_Q8_0: rows_q8_0(p, a, y, r0, r1); break;
    case LP_GGML_IQ4_NL: rows_iq4_nl(p, a, y, r0, r1); break;
    case LP_GGML_Q2_K: rows_q2_k(p, a, y, r0, r1); break;
    case LP_GGML_Q3_K: rows_q3_k(p, a, y, r0, r1); break;
    case LP_GGML_Q4_K: rows_q4_k(p, a, y, r0, r1); break;
    case LP_GGML_Q5_K: rows_q5_k(p, a, y, r0, r1); break;
    default: rows_q6_k(p, a, y, r0, r1); break;
    }
}
