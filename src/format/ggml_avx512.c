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
 *   - 32-value types: the block's 32 int8 codes become two vectors of 16
 *     f32 (vpmovsxbd + convert), multiplied with x into one block sum (a
 *     multiply and an FMA); the row's accumulator adds d times it, and for
 *     Q4_1 / Q5_1 a second one m times the block's sum of x.
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

/* One row's dot with x, 32-value type t known at compile time (LP_GGML_DEFINE_LEGACY_DOTS). */
INLINE float dot_row(const int t, const uint8_t *row, const float *x, int64_t nb) {
    const int64_t bytes = lp_ggml_type_of(t).bytes;
    const int has_min = lp_ggml_has_min(t);
    __m512 acc = _mm512_setzero_ps(), macc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++, row += bytes, x += 32) {
        const __m256i q = lp_ggml_codes32(t, row);
        const __m512 x0 = _mm512_loadu_ps(x), x1 = _mm512_loadu_ps(x + 16);
        __m512 s = _mm512_mul_ps(cvt16(_mm256_castsi256_si128(q)), x0);
        s = _mm512_fmadd_ps(cvt16(_mm256_extracti128_si256(q, 1)), x1, s);
        acc = _mm512_fmadd_ps(_mm512_set1_ps(lp_ggml_f16at(row)), s, acc);
        if (has_min) macc = _mm512_fmadd_ps(_mm512_set1_ps(lp_ggml_f16at(row + 2)), _mm512_add_ps(x0, x1), macc);
    }
    return _mm512_reduce_add_ps(has_min ? _mm512_add_ps(acc, macc) : acc);
}

LP_GGML_DEFINE_LEGACY_DOTS(dot_row)

/* acc[0..3] += the K block's sum sc q x; macc += its mins mn16 . xs16. */
INLINE void block_dot(const lp_ggml_kblock *k, const float *x, const float *xs16, __m512 acc[4], __m512 *macc) {
#pragma GCC unroll 16
    for (int s = 0; s < 16; s++) {
        const __m512 p = _mm512_mul_ps(cvt16(_mm_load_si128((const __m128i *)(k->q + 16 * s))), _mm512_loadu_ps(x + 16 * s));
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
    const lp_ggml_dot_fn dot = legacy_dot(p->type);
    if (dot) lp_ggml_legacy_rows(dot, p, T, x, ldx, y, ldy, r0, r1);
    else k_rows(p, T, x, ldx, y, ldy, r0, r1);
}
