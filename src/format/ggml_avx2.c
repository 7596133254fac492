/*
 * ggml_avx2.c - AVX2 row kernels of the ggml format (ggml.h) for the legacy
 * 32-value types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and IQ4_NL: a few tokens
 * against the packed blocks, nothing dequantized to memory (the K types are
 * in ggml_k_avx2.c).
 *
 * Per row and token, block by block (32 values, f16 scale d, for Q4_1 /
 * Q5_1 also an f16 min m): the block's 32 codes become 32 int8 in one
 * vector (Q8_0: as stored; Q4_0 / Q5_0: nibbles with the fifth bit, minus
 * 8 / 16; Q4_1 / Q5_1: 0..31; IQ4_NL: its 16 levels looked up with pshufb),
 * then four vectors of 8 f32, each multiplied with its 8 activations into a
 * block sum with FMAs; the row's accumulator then adds d times that sum (one
 * more FMA), and for Q4_1 / Q5_1 a second one m times the block's sum of x.
 * Finally the accumulators' lanes are added. The reference multiplies the
 * dequantized values with sgemm: the same products up to rounding (another
 * summation order, the scale applied to a block's sum rather than to each
 * value), which tests/formats/test_ggml_quants.c bounds.
 */
#include "format/ggml_kernels.h"
#include "format/ggml_unpack.h"


#include <immintrin.h>
#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) __m256 cvt8(__m128i b8) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b8)); /* the low 8 bytes, sign-extended */
}

/* One row's dot with x, type t known at compile time (LP_GGML_DEFINE_LEGACY_ROWS). */
static inline __attribute__((always_inline)) float dot_row(const int t, const uint8_t *row, const float *x,
                                                           int64_t nb) {
    const int64_t bytes = lp_ggml_type_of(t).bytes;
    const int has_min = lp_ggml_has_min(t);
    __m256 acc = _mm256_setzero_ps(), macc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, row += bytes, x += 32) {
        const __m256i q = lp_ggml_codes32(t, row);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        const __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
        const __m256 x2 = _mm256_loadu_ps(x + 16), x3 = _mm256_loadu_ps(x + 24);
        __m256 s = _mm256_mul_ps(cvt8(lo), x0);
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(lo, 8)), x1, s);
        s = _mm256_fmadd_ps(cvt8(hi), x2, s);
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(hi, 8)), x3, s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(lp_ggml_f16at(row)), s, acc);
        if (has_min) /* + m * sum of the block's x */
            macc = _mm256_fmadd_ps(_mm256_set1_ps(lp_ggml_f16at(row + 2)),
                                   _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3)), macc);
    }
    return lp_ggml_hsum8(has_min ? _mm256_add_ps(acc, macc) : acc);
}

LP_GGML_DEFINE_LEGACY_ROWS(dot_row)

void lp_ggml_rows_avx2(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
    const lp_ggml_part *p = w;
    const lp_ggml_rows_of_fn rows = legacy_rows(p->type);
    if (rows) rows(p, T, x, ldx, y, ldy, r0, r1);
    else lp_ggml_k_rows_avx2(w, T, x, ldx, y, ldy, r0, r1);
}

void lp_ggml_dequant_avx2(const void *w, int64_t r0, int64_t r1, float *out) {
    lp_ggml_dequant_rows_simd(w, r0, r1, out);
}
