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
 * K types, a row at a time, per 256-value block: its sub-block scales
 *   (and mins) decoded 16 at a time in one vector (shuffles of the scale
 *   bytes), times d and d_b of x: the factors; the codes straight from the
 *   block, four vectors of 64 unsigned bytes (each a broadcast load, shifts
 *   and ANDs per type: the code + OFF of the specification, with OFF the
 *   type's code offset, 0 with a min), one vpdpbusd each with 64
 *   activations: lanes 4i .. 4i+3 hold 16-value sub-block i's partial sums
 *   (lanes 8i .. 8i+7 a 32-value one's), times its factor (one vpermps);
 *   per block one FMA takes OFF and the mins back through x's block or
 *   half-block sums. (Through the f32 kernels' unpacker, codes stored to an
 *   L1 buffer and reloaded, Q4_K ran at a quarter of this speed.) A block
 *   is decoded (decode_k) apart from its product with x (kapply), so the
 *   several-token kernel applies one decoded block to four tokens.
 * Several tokens (lp_ggml_q8_gemm_avx512vnni, prefill under q8-all): the
 *   same arithmetic per (row, token); 64-row tiles, tokens four at a time;
 *   32-value types four rows x four tokens per pass (16 accumulators), each
 *   pair of blocks unpacked once per row and each token's activations
 *   loaded once per pass.
 * Also here: the vector copy of the activation quantizer.
 */
#include "format/ggml_q8.h"

#include "core/hsum_avx512.h"
#include "format/ggml_quants.h"
#include "format/ggml_unpack.h" /* lp_ggml_codes32, lp_ggml_f16at */

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

enum { QK = LP_GGML_QK, PF_AHEAD = 8192 };

/* 16 values of x / d rounded to nearest even and clamped to [-127, 127]. */
INLINE __m512i round16(__m512 v, __m512 d) {
    const __m512 r = _mm512_roundscale_ps(_mm512_div_ps(v, d), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f)));
}

/* lp_ggml_q8_quantize_ref with vectors, bit for bit: the same maximum of
 * |x| (finite values), division, rounding (vrndscaleps to nearest even =
 * rint), clamp and integer sums. */
void lp_ggml_q8_quantize_avx512vnni(const float *x, int64_t cols, lp_ggml_q8_act *a) {
    const int64_t nb = cols / QK;
    for (int64_t b = 0; b < nb; b++) {
        const __m512 v0 = _mm512_loadu_ps(x + b * QK), v1 = _mm512_loadu_ps(x + b * QK + 16);
        const float d = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))) / 127.0f;
        __m512i q0 = _mm512_setzero_si512(), q1 = _mm512_setzero_si512();
        if (d != 0.0f) q0 = round16(v0, _mm512_set1_ps(d)), q1 = round16(v1, _mm512_set1_ps(d));
        _mm_store_si128((__m128i *)(a->xq + b * QK), _mm512_cvtepi32_epi8(q0));
        _mm_store_si128((__m128i *)(a->xq + b * QK + 16), _mm512_cvtepi32_epi8(q1));
        const int32_t h = _mm512_reduce_add_epi32(q0), t = _mm512_reduce_add_epi32(q1);
        a->d[b] = d;
        a->sum[b] = h + t;
        a->sum16[2 * b] = h;
        a->sum16[2 * b + 1] = t;
    }
    for (int64_t b = nb; b < a->nblocks; b++) { /* the padding block */
        _mm256_store_si256((__m256i *)(a->xq + b * QK), _mm256_setzero_si256());
        a->d[b] = 0.0f;
        a->sum[b] = a->sum16[2 * b] = a->sum16[2 * b + 1] = 0;
    }
}

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

/* Four rows (those below r1) for nt tokens (1..4; a[t], Y[t * ldy + r]):
 * pass()'s arithmetic per (row, token), each pair of blocks unpacked once
 * per row and fed to every token, each token's activations loaded once
 * for the four rows. */
INLINE void pass_tokens(const int type, const int nt, const lp_ggml_part *p, const lp_ggml_q8_act *a, float *Y,
                        int64_t ldy, int64_t r0, int64_t r1) {
    const int bs = lp_ggml_type_of(type).bytes;
    const float off = type_off(type);
    const int64_t nb = p->cols / QK;
    const __m512i offs = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32(bs));
    const __m512i pair_sel = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const uint8_t *rp[4];
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        rp[i] = p->blocks + (size_t)(r0 + i < r1 ? r0 + i : r1 - 1) * p->row_bytes;
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) acc[i][t] = _mm512_setzero_ps();
    }
    float f[4][4][16]; /* D_b d_tb of blocks b0 .. b0+15 */
    for (int64_t b0 = 0; b0 < nb; b0 += 16) {
        const int64_t n = nb - b0 < 16 ? nb - b0 : 16;
        const __mmask16 m = (__mmask16)(n == 16 ? 0xffffu : (1u << n) - 1u);
        const size_t o0 = (size_t)b0 * (size_t)bs;
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const __m512i dw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offs, rp[i] + o0, 1);
            const __m512 D = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(dw));
            const __m512 M = has_min(type) ? _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(dw, 16)))
                                           : _mm512_mul_ps(D, _mm512_set1_ps(-off)); /* the s_b term's coefficient */
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const __m512 dx = _mm512_maskz_loadu_ps(m, a[t].d + b0);
                const __m512 sx = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, a[t].sum + b0));
                _mm512_storeu_ps(f[i][t], _mm512_mul_ps(D, dx));
                acc[i][t] = _mm512_fmadd_ps(_mm512_mul_ps(M, dx), sx, acc[i][t]);
            }
        }
        for (int64_t k = 0; 2 * k < n; k++) {
            const size_t o = o0 + (size_t)(2 * k) * (size_t)bs;
            const __m512i sel = _mm512_add_epi32(_mm512_set1_epi32((int)(2 * k)), pair_sel);
            __m512i x[4];
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) x[t] = _mm512_load_si512(a[t].xq + (b0 + 2 * k) * QK);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                _mm_prefetch((const char *)rp[i] + o + PF_AHEAD, _MM_HINT_T0);
                const __m512i u = pair_bytes(type, rp[i] + o, rp[i] + o + bs, 2 * k + 1 < n);
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    const __m512 dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, x[t]));
                    acc[i][t] = _mm512_fmadd_ps(dot, _mm512_permutexvar_ps(sel, _mm512_loadu_ps(f[i][t])), acc[i][t]);
                }
            }
        }
    }
    const int64_t cnt = r1 - r0 < 4 ? r1 - r0 : 4;
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        _mm_mask_storeu_ps(Y + t * ldy + r0, (__mmask8)((1u << cnt) - 1u),
                           lp_hsum4_avx512(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));
}

/* Lane L of vector v (0..3, 64 values) in a K block: its 16-value
 * sub-block 4v + L / 4. */
INLINE __m512i sub16_of(int v) {
    return _mm512_add_epi32(_mm512_set1_epi32(4 * v), _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
}

/* 64 codes (one vector) times 64 activations, converted, times the
 * per-lane factor, into acc. */
INLINE __m512 dot64(__m512i u, const int8_t *xq, __m512 factor, __m512 acc) {
    const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_load_si512(xq));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), factor, acc);
}

/* A K block decoded: its 256 codes as four vectors of 64 unsigned bytes
 * u = code + OFF, and per 16-value sub-block s (lane s) the factor f_s and
 * the coefficient c_s of the activations' half-block sum t_s: the block adds
 * sum_s d_b(s) (f_s dot_s - c_s t_s), d_b(s) the activation scale of s. */
typedef struct {
    __m512i u[4];
    __m512 f, c;
} kdec;

/* The sub-blocks' d_b: lane s takes x block 8k + s / 2. */
INLINE __m512 kblock_dx(const lp_ggml_q8_act *a, int64_t k) {
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7),
                                 _mm512_castps256_ps512(_mm256_loadu_ps(a->d + 8 * k)));
}

/* Block k of a row, decoded, times the activations of one token, into acc. */
INLINE __m512 kapply(const kdec *kd, const lp_ggml_q8_act *a, int64_t k, __m512 acc) {
    const __m512 dx = kblock_dx(a, k), g = _mm512_mul_ps(kd->f, dx);
    acc = _mm512_fnmadd_ps(_mm512_mul_ps(kd->c, dx), _mm512_cvtepi32_ps(_mm512_loadu_si512(a->sum16 + 16 * k)), acc);
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++)
        acc = dot64(kd->u[v], a->xq + k * LP_GGML_QK_K + 64 * v, _mm512_permutexvar_ps(sub16_of(v), g), acc);
    return acc;
}

/* Q4_K / Q5_K: 8 sub-blocks of 32, value = (d sc_s) q - dmin mn_s with q
 * unsigned (OFF = 0). The 6-bit scales and mins come out of their 12 bytes
 * in one 16-byte vector (sc_0..7 then mn_0..7: two shuffles,
 * lp_ggml_k4_scale_min's fields), each spread over its two 16-value lanes;
 * codes straight from the block: 32 bytes of nibbles broadcast to both
 * halves, shifted by 0 / 4, AND 0x0f (Q5_K: the fifth bits of sub-blocks
 * 2v, 2v + 1 from bits 2v, 2v + 1 of its 32 high-bit bytes, at bit 4). */
INLINE void decode_k45(const int type, const uint8_t *blk, kdec *kd) {
    const __m128i b = _mm_loadu_si128((const __m128i *)(blk + 4)); /* 12 scale bytes, then 4 not read */
    const __m128i A = _mm_shuffle_epi8(b, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i B = _mm_shuffle_epi8(b, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    /* low bits: sc_0..3, mn_0..3 the byte & 63; sc_4..7 & 15; mn_4..7 >> 4 */
    const __m128i lo = _mm_mask_blend_epi8(
        (__mmask16)0xf000,
        _mm_and_si128(A, _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0)),
        _mm_and_si128(_mm_srli_epi16(A, 4), _mm_set1_epi8(0x0f)));
    const __m128i six = _mm_or_si128(lo, _mm_and_si128(_mm_srli_epi16(B, 2), _mm_set1_epi8(0x30))); /* (B >> 6) << 4 */
    const __m512 dd = _mm512_mask_blend_ps((__mmask16)0xff00, _mm512_set1_ps(lp_ggml_f16at(blk)),
                                           _mm512_set1_ps(lp_ggml_f16at(blk + 2)));
    const __m512 sm = _mm512_mul_ps(dd, _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(six))); /* d sc_s, dmin mn_s */
    kd->f = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7), sm);
    kd->c = _mm512_permutexvar_ps(_mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15), sm);
    const uint8_t *qs = blk + (type == LP_GGML_Q5_K ? 48 : 16);
    const __m512i nib = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
        const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * v)));
        __m512i u = _mm512_and_si512(_mm512_srlv_epi64(q, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)), nib);
        if (type == LP_GGML_Q5_K) {
            const __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 16)));
            const __m512i sh = _mm512_setr_epi64(2 * v, 2 * v, 2 * v, 2 * v, 2 * v + 1, 2 * v + 1, 2 * v + 1, 2 * v + 1);
            u = _mm512_or_si512(u, _mm512_slli_epi64(_mm512_and_si512(_mm512_srlv_epi64(h, sh), _mm512_set1_epi8(1)), 4));
        }
        kd->u[v] = u;
    }
}

/* Q6_K: 16 sub-blocks of 16, value = (d sc_s) (q - 32), q = 4 low bits |
 * 2 high bits << 4 unsigned (OFF = 32). Vector v holds values 64v .. 64v +
 * 63: the low nibbles (v % 2: the high ones) of 64 bytes at 64 (v / 2), and
 * bits 4 (v % 2) (first 32) and 4 (v % 2) + 2 (last 32) of the 32 high-bit
 * bytes at 128 + 32 (v / 2). */
INLINE void decode_q6_k(const uint8_t *blk, kdec *kd) {
    kd->f = _mm512_mul_ps(_mm512_set1_ps(lp_ggml_f16at(blk + 208)),
                          _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192)))));
    kd->c = _mm512_mul_ps(kd->f, _mm512_set1_ps(32.0f));
    const __m512i nib = _mm512_set1_epi8(0x0f), two = _mm512_set1_epi8(0x03);
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
        const int h = v / 2, par = v % 2;
        const __m512i lo = _mm512_and_si512(_mm512_srli_epi64(_mm512_loadu_si512(blk + 64 * h), 4 * par), nib);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * h)));
        const __m512i sh = _mm512_setr_epi64(4 * par, 4 * par, 4 * par, 4 * par, 4 * par + 2, 4 * par + 2, 4 * par + 2,
                                             4 * par + 2);
        const __m512i hi = _mm512_and_si512(_mm512_srlv_epi64(qh, sh), two);
        kd->u[v] = _mm512_or_si512(lo, _mm512_slli_epi64(hi, 4));
    }
}

/* Q2_K / Q3_K: 16 sub-blocks of 16. Q2_K: value = (d sc_s) q - dmin mn_s,
 * q = 2 bits unsigned (OFF = 0), sc and mn the nibbles of the 16 bytes at
 * 0. Q3_K: value = (d sc_s) (q - 4), q = 2 bits | a high bit << 2
 * (OFF = 4), sc_s the 6-bit value of lp_ggml_q3_scale minus 32 (two
 * shuffles and a per-word shift of its 12 bytes at 96). Vector v holds
 * values 64v .. 64v + 63: bits 4 (v % 2) (first 32) and 4 (v % 2) + 2
 * (last 32) of the 32 code bytes at c0 + 32 (v / 2) (Q3_K: and bits
 * 4 (v / 2) + 2 (v % 2) and + 1 of its 32 high-bit bytes at 0). */
INLINE void decode_k23(const int type, const uint8_t *blk, kdec *kd) {
    const int q2 = type == LP_GGML_Q2_K;
    if (q2) {
        const __m128i b = _mm_loadu_si128((const __m128i *)blk), m4 = _mm_set1_epi8(0x0f);
        const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(b, m4)));
        const __m512 mn = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(b, 4), m4)));
        kd->f = _mm512_mul_ps(_mm512_set1_ps(lp_ggml_f16at(blk + 80)), sc);
        kd->c = _mm512_mul_ps(_mm512_set1_ps(lp_ggml_f16at(blk + 82)), mn);
    } else {
        /* the 16 bytes ending with d: two code bytes, then the 12 scale bytes at 2 (the block's last 16) */
        const __m128i b = _mm_loadu_si128((const __m128i *)(blk + 94));
        const __m128i A = _mm_shuffle_epi8(b, _mm_setr_epi8(2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 8, 9));
        const __m128i B = _mm_shuffle_epi8(b, _mm_setr_epi8(10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13));
        const __m128i m4 = _mm_set1_epi8(0x0f);
        const __m128i lo = _mm_mask_blend_epi8((__mmask16)0xff00, _mm_and_si128(A, m4), _mm_and_si128(_mm_srli_epi16(A, 4), m4));
        const __m128i hi = _mm_and_si128(_mm_slli_epi16(_mm_srlv_epi16(B, _mm_setr_epi16(0, 0, 2, 2, 4, 4, 6, 6)), 4),
                                         _mm_set1_epi8(0x30));
        const __m512i six = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_or_si128(lo, hi)), _mm512_set1_epi32(32));
        kd->f = _mm512_mul_ps(_mm512_set1_ps(lp_ggml_f16at(blk + 108)), _mm512_cvtepi32_ps(six));
        kd->c = _mm512_mul_ps(kd->f, _mm512_set1_ps(4.0f));
    }
    const uint8_t *c0 = blk + (q2 ? 16 : 32);
    const __m512i two = _mm512_set1_epi8(0x03);
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) {
        const int h = v / 2, par = v % 2;
        const __m512i c = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(c0 + 32 * h)));
        const __m512i sh = _mm512_setr_epi64(4 * par, 4 * par, 4 * par, 4 * par, 4 * par + 2, 4 * par + 2, 4 * par + 2,
                                             4 * par + 2);
        __m512i u = _mm512_and_si512(_mm512_srlv_epi64(c, sh), two);
        if (!q2) {
            const __m512i m = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)blk));
            const int b0 = 4 * h + 2 * par;
            const __m512i hs = _mm512_setr_epi64(b0, b0, b0, b0, b0 + 1, b0 + 1, b0 + 1, b0 + 1);
            u = _mm512_or_si512(u, _mm512_slli_epi64(_mm512_and_si512(_mm512_srlv_epi64(m, hs), _mm512_set1_epi8(1)), 2));
        }
        kd->u[v] = u;
    }
}

/* Block blk of K type `type`, decoded (the block's bytes prefetched 8 KB ahead). */
INLINE void decode_k(const int type, const uint8_t *blk, size_t bs, kdec *kd) {
    for (size_t o = 0; o < bs; o += 64) _mm_prefetch((const char *)blk + PF_AHEAD + o, _MM_HINT_T0);
    if (type == LP_GGML_Q4_K || type == LP_GGML_Q5_K) decode_k45(type, blk, kd);
    else if (type == LP_GGML_Q6_K) decode_q6_k(blk, kd);
    else decode_k23(type, blk, kd);
}

/* Row r of a K type for nt tokens (1..4; a[t], Y[t * ldy + r]): each
 * block decoded once, applied to every token. */
INLINE void row_k(const int type, const int nt, const lp_ggml_part *p, const lp_ggml_q8_act *a, float *Y, int64_t ldy,
                  int64_t r) {
    const int64_t nsb = p->cols / LP_GGML_QK_K;
    const size_t bs = (size_t)lp_ggml_type_of(type).bytes;
    const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
    __m512 acc[4];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t k = 0; k < nsb; k++) {
        kdec kd;
        decode_k(type, row + (size_t)k * bs, bs, &kd);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) acc[t] = kapply(&kd, &a[t], k, acc[t]);
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) Y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
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
        for (int64_t r = r0; r < r1; r++) row_k(TYPE, 1, p, a, y, 0, r);                                           \
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


/* Several tokens: 64-row tiles (their blocks stay in L2 while every token
 * passes), tokens four at a time (their activations stay in L1); K types a
 * row at a time, the 32-value types four rows at a time. */
INLINE void gemm_tiles(const int type, const lp_ggml_part *p, const lp_ggml_q8_act *a, int64_t T, float *Y,
                       int64_t ldy, int64_t r0, int64_t r1) {
    const int k = lp_ggml_type_of(type).block == LP_GGML_QK_K;
    for (int64_t q0 = r0; q0 < r1; q0 += 64) {
        const int64_t q1 = q0 + 64 < r1 ? q0 + 64 : r1;
        for (int64_t t = 0; t < T; t += 4) {
            const int64_t n = T - t < 4 ? T - t : 4;
            const lp_ggml_q8_act *at = a + t;
            float *Yt = Y + t * ldy;
            if (k) {
                for (int64_t r = q0; r < q1; r++) switch (n) {
                    case 1: row_k(type, 1, p, at, Yt, ldy, r); break;
                    case 2: row_k(type, 2, p, at, Yt, ldy, r); break;
                    case 3: row_k(type, 3, p, at, Yt, ldy, r); break;
                    default: row_k(type, 4, p, at, Yt, ldy, r); break;
                    }
            } else {
                for (int64_t r = q0; r < q1; r += 4) switch (n) {
                    case 1: pass_tokens(type, 1, p, at, Yt, ldy, r, q1); break;
                    case 2: pass_tokens(type, 2, p, at, Yt, ldy, r, q1); break;
                    case 3: pass_tokens(type, 3, p, at, Yt, ldy, r, q1); break;
                    default: pass_tokens(type, 4, p, at, Yt, ldy, r, q1); break;
                    }
            }
        }
    }
}

void lp_ggml_q8_gemm_avx512vnni(const lp_ggml_part *p, const lp_ggml_q8_act *a, int64_t T, float *Y, int64_t ldy,
                                int64_t r0, int64_t r1) {
    switch (p->type) {
    case LP_GGML_Q4_0: gemm_tiles(LP_GGML_Q4_0, p, a, T, Y, ldy, r0, r1); break;
    case LP_GGML_Q4_1: gemm_tiles(LP_GGML_Q4_1, p, a, T, Y, ldy, r0, r1); break;
    case LP_GGML_Q5_0: gemm_tiles(LP_GGML_Q5_0, p, a, T, Y, ldy, r0, r1); break;
    case LP_GGML_Q5_1: gemm_tiles(LP_GGML_Q5_1, p, a, T, Y, ldy, r0, r1); break;
    case LP_GGML_Q8_0: gemm_tiles(LP_GGML_Q8_0, p, a, T, Y, ldy, r0, r1); break;
    case LP_GGML_IQ4_NL: gemm_tiles(LP_GGML_IQ4_NL, p, a, T, Y, ldy, r0, r1); break;
    case LP_GGML_Q2_K: gemm_tiles(LP_GGML_Q2_K, p, a, T, Y, ldy, r0, r1); break;
    case LP_GGML_Q3_K: gemm_tiles(LP_GGML_Q3_K, p, a, T, Y, ldy, r0, r1); break;
    case LP_GGML_Q4_K: gemm_tiles(LP_GGML_Q4_K, p, a, T, Y, ldy, r0, r1); break;
    case LP_GGML_Q5_K: gemm_tiles(LP_GGML_Q5_K, p, a, T, Y, ldy, r0, r1); break;
    default: gemm_tiles(LP_GGML_Q6_K, p, a, T, Y, ldy, r0, r1); break;
    }
}
