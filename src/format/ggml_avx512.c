/*
 * ggml_avx512.c - AVX-512 row kernels of the ggml format (ggml.h): every
 * quantized type, a few tokens against the packed blocks, as the AVX2 ones
 * (ggml_avx2.c, ggml_k_avx2.c) with 16-lane vectors.
 *
 * What: lp_rows_fn's contract (ggml_kernels.h); the reference is ggml.c's
 * dequantized tiles + sgemm.
 * Why: the AVX2 kernels spend a convert and a multiply per 8 values; with
 * full-width AVX-512 (Zen 5, recent Xeons) one op covers 16.
 * Design: the codes come from ggml_unpack.h, the same as the AVX2 kernels'.
 *   - 32-value types: the block's 32 codes become two vectors of 16 f32
 *     (Q8_0 and Q4_0 widened straight from memory, the others from
 *     ggml_unpack.h's int8 codes), multiplied with x into one block sum (a
 *     multiply and an FMA); the row's accumulators (even and odd blocks)
 *     add d times it, and for Q4_1 / Q5_1 others m times the block's sum
 *     of x.
 *   - K types: per 16 values (one sub-block of Q2_K / Q3_K / Q6_K, half of
 *     one of Q4_K / Q5_K) one vector: the product with x, then an FMA with
 *     the broadcast factor sc16 into one of four accumulators (s mod 4,
 *     for the FMA latency); the mins of the whole block, mn16 . xs16, are
 *     one more FMA (16 lanes = the block's 16 groups of 16), xs16 being x's
 *     sums per 16 columns made once per token and tile.
 * Sums are reordered against the reference as in the AVX2 kernels: equal to
 * f32 rounding relative to sum |x w| (tests/formats/test_ggml_quants.c).
 */
#include "format/ggml_kernels.h"
#include "format/ggml_unpack.h"

#define INLINE LP_GGML_INLINE

/* 16 int8 codes as 16 f32. */
INLINE __m512 cvt16(__m128i q) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)); }

/* Block blk's 32 codes times x as 16 partial sums (and x's own 16 partial
 * sums in *xs, for the min of Q4_1 / Q5_1). */
INLINE __m512 block_sum(const int t, const uint8_t *blk, const float *x, __m512 *xs) {
    __m512 q0, q1; /* values 0..15 and 16..31 */
    if (t == LP_GGML_Q8_0) { /* widened straight from memory */
        q0 = cvt16(_mm_loadu_si128((const __m128i *)(blk + 2)));
        q1 = cvt16(_mm_loadu_si128((const __m128i *)(blk + 18)));
    } else if (t == LP_GGML_Q4_0) { /* bytes widened to 32 bits, both nibbles from each lane */
        const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
        const __m512i eight = _mm512_set1_epi32(8);
        q0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, _mm512_set1_epi32(15)), eight));
        q1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight));
    } else {
        const __m256i q = lp_ggml_codes32(t, blk);
        q0 = cvt16(_mm256_castsi256_si128(q));
        q1 = cvt16(_mm256_extracti128_si256(q, 1));
    }
    const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
    if (lp_ggml_has_min(t)) *xs = _mm512_add_ps(x0, x1);
    return _mm512_fmadd_ps(q1, x1, _mm512_mul_ps(q0, x0));
}

/* One row's dot with x, 32-value type t known at compile time
 * (LP_GGML_DEFINE_LEGACY_ROWS): d times each block's sum (and m times x's
 * block sum) into two accumulators, even and odd blocks, so the FMA latency
 * does not bound a short row. */
INLINE float dot_row(const int t, const uint8_t *row, const float *x, int64_t nb) {
    const int64_t bytes = lp_ggml_type_of(t).bytes;
    const int has_min = lp_ggml_has_min(t);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), m0 = _mm512_setzero_ps(), m1 = _mm512_setzero_ps();
    __m512 xs0 = _mm512_setzero_ps(), xs1 = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, row += 2 * bytes, x += 64) {
        const __m512 s0 = block_sum(t, row, x, &xs0), s1 = block_sum(t, row + bytes, x + 32, &xs1);
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(lp_ggml_f16at(row)), s0, a0);
        a1 = _mm512_fmadd_ps(_mm512_set1_ps(lp_ggml_f16at(row + bytes)), s1, a1);
        if (has_min) {
            m0 = _mm512_fmadd_ps(_mm512_set1_ps(lp_ggml_f16at(row + 2)), xs0, m0);
            m1 = _mm512_fmadd_ps(_mm512_set1_ps(lp_ggml_f16at(row + bytes + 2)), xs1, m1);
        }
    }
    if (b < nb) {
        a0 = _mm512_fmadd_ps(_mm512_set1_ps(lp_ggml_f16at(row)), block_sum(t, row, x, &xs0), a0);
        if (has_min) m0 = _mm512_fmadd_ps(_mm512_set1_ps(lp_ggml_f16at(row + 2)), xs0, m0);
    }
    const __m512 a = _mm512_add_ps(a0, a1);
    return _mm512_reduce_add_ps(has_min ? _mm512_add_ps(a, _mm512_add_ps(m0, m1)) : a);
}

LP_GGML_DEFINE_LEGACY_ROWS(dot_row)

/* acc[0..3] += the K block's sum sc q x; macc += its mins mn16 . xs16. */
INLINE void block_dot(const lp_ggml_kblock *k, const float *x, const float *xs16, __m512 acc[4], __m512 *macc) {
#pragma GCC unroll 16
    for (int s = 0; s < 16; s++) {
        const __m128i q = _mm_load_si128((const __m128i *)(k->q + 16 * s));
        const __m512 p = _mm512_mul_ps(cvt16(q), _mm512_loadu_ps(x + 16 * s));
        acc[s % 4] = _mm512_fmadd_ps(p, _mm512_set1_ps(k->sc16[s]), acc[s % 4]);
    }
    *macc = _mm512_fmadd_ps(_mm512_loadu_ps(k->mn16), _mm512_loadu_ps(xs16), *macc);
}

static void k_rows(const lp_ggml_part *p, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                   int64_t r1) {
    const int64_t nb = p->cols / LP_GGML_QK_K, bytes = lp_ggml_type_of(p->type).bytes;
    const lp_ggml_kunpack_fn unpack = lp_ggml_kunpacker(p->type);
    float xs16[LP_GGML_K_ROWS_MAX_COLS / 16];
    lp_ggml_kblock k;
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * ldx;
        for (int64_t i = 0; i < p->cols / 16; i++) xs16[i] = _mm512_reduce_add_ps(_mm512_loadu_ps(xt + 16 * i));
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            __m512 macc = _mm512_setzero_ps();
            for (int64_t b = 0; b < nb; b++) {
                unpack(row + b * bytes, &k);
                block_dot(&k, xt + b * LP_GGML_QK_K, xs16 + b * 16, acc, &macc);
            }
            y[t * ldy + r] = _mm512_reduce_add_ps(
                _mm512_sub_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])), macc));
        }
    }
}

void lp_ggml_rows_avx512(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1) {
    const lp_ggml_part *p = w;
    const lp_ggml_rows_of_fn rows = legacy_rows(p->type);
    if (rows) rows(p, T, x, ldx, y, ldy, r0, r1);
    else k_rows(p, T, x, ldx, y, ldy, r0, r1);
}
