/*
 * ggml_avx2.c - AVX2 row kernels of the ggml format (ggml.h) for the two
 * types GGUF files use most, Q8_0 and Q4_0: a few tokens against the packed
 * blocks, nothing dequantized to memory.
 *
 * Per row and token, block by block (32 values, f16 scale d): the 32 codes
 * become four vectors of 8 f32 (Q8_0: the int8 codes sign-extended; Q4_0:
 * low nibbles are values 0..15, high nibbles 16..31, minus 8), each
 * multiplied with its 8 activations into a block sum with FMAs; the row's
 * accumulator then adds d times that sum (one more FMA). Finally the
 * accumulator's 8 lanes are added. The reference multiplies the dequantized
 * values d * q with sgemm: the same products up to rounding (another
 * summation order, the scale applied to a block's sum rather than to each
 * value), which tests/formats/test_ggml_quants.c bounds.
 */
#include "format/ggml_kernels.h"

#include "core/half.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __attribute__((always_inline)) __m256 cvt8(__m128i b8) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b8)); /* the low 8 bytes, sign-extended */
}

/* Q8_0: 2 bytes f16 d, 32 int8 codes. */
static float dot_q8_0(const uint8_t *row, const float *x, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, row += 34, x += 32) {
        uint16_t h;
        memcpy(&h, row, 2);
        const __m128i lo = _mm_loadu_si128((const __m128i *)(row + 2));
        const __m128i hi = _mm_loadu_si128((const __m128i *)(row + 18));
        __m256 s = _mm256_mul_ps(cvt8(lo), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(cvt8(hi), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(lp_f16_to_f32(h)), s, acc);
    }
    return hsum(acc);
}

/* Q4_0: 2 bytes f16 d, 16 bytes: value j < 16 is the low nibble of byte j, value 16 + j its high
 * nibble; w = d * (nibble - 8). */
static float dot_q4_0(const uint8_t *row, const float *x, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m128i m4 = _mm_set1_epi8(0x0f), off = _mm_set1_epi8(8);
    for (int64_t b = 0; b < nb; b++, row += 18, x += 32) {
        uint16_t h;
        memcpy(&h, row, 2);
        const __m128i q = _mm_loadu_si128((const __m128i *)(row + 2));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(q, m4), off);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), m4), off);
        __m256 s = _mm256_mul_ps(cvt8(lo), _mm256_loadu_ps(x));
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(lo, 8)), _mm256_loadu_ps(x + 8), s);
        s = _mm256_fmadd_ps(cvt8(hi), _mm256_loadu_ps(x + 16), s);
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(hi, 8)), _mm256_loadu_ps(x + 24), s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(lp_f16_to_f32(h)), s, acc);
    }
    return hsum(acc);
}

void lp_ggml_rows_avx2(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
    const lp_ggml_part *p = w;
    const int64_t nb = p->cols / 32;
    float (*dot)(const uint8_t *, const float *, int64_t) = p->type == LP_GGML_Q8_0 ? dot_q8_0 : dot_q4_0;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
        for (int64_t t = 0; t < T; t++) y[t * ldy + r] = dot(row, x + t * ldx, nb);
    }
}
