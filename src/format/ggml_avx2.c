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
#include "format/ggml_quants_impl.h"

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

/* The 32 bytes of a 5-bit type's high bits as 0x10 (bit j of the 32-bit word
 * qh -> byte j): each byte picks its source byte, tests its bit. */
static inline __attribute__((always_inline)) __m256i fifth_bits(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i sel = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h),
                                            _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202,
                                                               0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(sel, bit), bit), _mm256_set1_epi8(0x10));
}

/* 16 bytes of nibbles as 32 values: low nibbles (values 0..15), then high. */
static inline __attribute__((always_inline)) __m256i nibbles(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
}

/* Block layouts (ggml_quants.c): bytes per block, where the codes start. */
static inline __attribute__((always_inline)) __m256i codes(int t, const uint8_t *b) {
    switch (t) {
    case LP_GGML_Q8_0: return _mm256_loadu_si256((const __m256i *)(b + 2));
    case LP_GGML_Q4_0: return _mm256_sub_epi8(nibbles(b + 2), _mm256_set1_epi8(8));
    case LP_GGML_Q4_1: return nibbles(b + 4);
    case LP_GGML_Q5_0: return _mm256_sub_epi8(_mm256_or_si256(nibbles(b + 6), fifth_bits(b + 2)), _mm256_set1_epi8(16));
    case LP_GGML_Q5_1: return _mm256_or_si256(nibbles(b + 8), fifth_bits(b + 4));
    default: { /* IQ4_NL: the levels, by nibble */
        const __m256i lv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lp_ggml_iq4nl_levels));
        return _mm256_shuffle_epi8(lv, nibbles(b + 2));
    }
    }
}

static inline int block_bytes(int t) {
    switch (t) {
    case LP_GGML_Q8_0: return 34;
    case LP_GGML_Q4_0: return 18;
    case LP_GGML_Q4_1: return 20;
    case LP_GGML_Q5_0: return 22;
    case LP_GGML_Q5_1: return 24;
    default: return 18; /* IQ4_NL */
    }
}

static inline __attribute__((always_inline)) float f16at(const uint8_t *p) {
    return lp_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* One row's dot with x, type t known at compile time (dot_t below). */
static inline __attribute__((always_inline)) float dot_row(const int t, const uint8_t *row, const float *x,
                                                           int64_t nb) {
    const int bytes = block_bytes(t), has_min = t == LP_GGML_Q4_1 || t == LP_GGML_Q5_1;
    __m256 acc = _mm256_setzero_ps(), macc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, row += bytes, x += 32) {
        const __m256i q = codes(t, row);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        const __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 8);
        const __m256 x2 = _mm256_loadu_ps(x + 16), x3 = _mm256_loadu_ps(x + 24);
        __m256 s = _mm256_mul_ps(cvt8(lo), x0);
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(lo, 8)), x1, s);
        s = _mm256_fmadd_ps(cvt8(hi), x2, s);
        s = _mm256_fmadd_ps(cvt8(_mm_srli_si128(hi, 8)), x3, s);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(f16at(row)), s, acc);
        if (has_min) /* + m * sum of the block's x */
            macc = _mm256_fmadd_ps(_mm256_set1_ps(f16at(row + 2)),
                                   _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3)), macc);
    }
    return hsum(has_min ? _mm256_add_ps(acc, macc) : acc);
}

#define DOT(T, name) \
    static float name(const uint8_t *row, const float *x, int64_t nb) { return dot_row(T, row, x, nb); }
DOT(LP_GGML_Q8_0, dot_q8_0)
DOT(LP_GGML_Q4_0, dot_q4_0)
DOT(LP_GGML_Q4_1, dot_q4_1)
DOT(LP_GGML_Q5_0, dot_q5_0)
DOT(LP_GGML_Q5_1, dot_q5_1)
DOT(LP_GGML_IQ4_NL, dot_iq4_nl)

void lp_ggml_rows_avx2(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                       int64_t r1) {
    const lp_ggml_part *p = w;
    float (*dot)(const uint8_t *, const float *, int64_t);
    switch (p->type) {
    case LP_GGML_Q8_0: dot = dot_q8_0; break;
    case LP_GGML_Q4_0: dot = dot_q4_0; break;
    case LP_GGML_Q4_1: dot = dot_q4_1; break;
    case LP_GGML_Q5_0: dot = dot_q5_0; break;
    case LP_GGML_Q5_1: dot = dot_q5_1; break;
    case LP_GGML_IQ4_NL: dot = dot_iq4_nl; break;
    default: lp_ggml_k_rows_avx2(w, T, x, ldx, y, ldy, r0, r1); return;
    }
    const int64_t nb = p->cols / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
        for (int64_t t = 0; t < T; t++) y[t * ldy + r] = dot(row, x + t * ldx, nb);
    }
}
