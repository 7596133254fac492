/*
 * ggml_k_avx2.c - AVX2 row kernels of the ggml format (ggml.h) for the
 * 256-value K types Q2_K .. Q6_K: a few tokens against the packed blocks,
 * nothing dequantized to memory.
 *
 * What: y[t, r] = row r of W . x_t for the rows of a tile (lp_rows_fn's
 * contract), W in ggml's K blocks (layouts in ggml_kquants.c, which is the
 * specification: lp_ggml_dequant_row, then sgemm).
 * Why: the reference path dequantizes tiles of rows and multiplies with
 * sgemm at every T; for one token that reads each weight, converts it
 * scalar and writes it back as f32: Q4_K llama-25m decoded at ~24 tokens/s.
 * Design, per block of 256 values:
 *   - unpack: the block's codes become 256 int8 (code minus the type's
 *     offset: Q3_K 4, Q6_K 32; the others keep 0..31) with 32-byte vector
 *     ops into a stack buffer in L1, and its scales become 16 f32 factors
 *     sc16 and mins mn16, one per 16 values (a 32-value sub-block's repeated);
 *     the scale bytes are read by ggml_quants_impl.h's readers, as the
 *     reference reads them;
 *   - dot: per 16 values, two vpmovsxbd loads, converts and FMAs with x,
 *     then one FMA with the broadcast factor into the row's accumulator
 *     (two accumulators, even and odd groups, for latency);
 *   - mins: value = scale q - min, so a row's sum is sum scale q x minus
 *     sum min * xs16, where xs16 are x's sums over each 16 columns, made
 *     once per token and tile (ggml does the same with its bsums).
 * This reorders the reference's sums (per-value products with d sc q - dm m
 * there), so it matches to f32 rounding relative to sum |x w|, not bitwise:
 * tests/formats/test_ggml_quants.c bounds it, on quantized and on random
 * block bytes.
 */
#include "format/ggml_kernels.h"
#include "format/ggml_quants_impl.h"

#include "core/half.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

enum { QK = 256 };

typedef struct {
    _Alignas(32) int8_t q[QK]; /* codes minus offset, value order */
    float sc16[16], mn16[16];  /* per 16 values: the factor of q and the min */
} kblock;

static inline float f16(const uint8_t *p) { return lp_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }

INLINE __m256i load32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
INLINE void store32(int8_t *q, __m256i v) { _mm256_store_si256((__m256i *)q, v); }

/* Bits [s, s + n) of every byte of v moved down to bit 0 (a 16-bit shift:
 * the mask drops what crossed from the neighbouring byte). */
INLINE __m256i field(__m256i v, int s, int mask) {
    return _mm256_and_si256(_mm256_srli_epi16(v, s), _mm256_set1_epi8((char)mask));
}

/* Q4_K / Q5_K: d, dmin at 0, 2; scales at 4; 32-value sub-blocks. */
static void k4_params(const uint8_t *b, kblock *k) {
    const float d = f16(b), dmin = f16(b + 2);
    for (int s = 0; s < 8; s++) {
        int sc, mn;
        lp_ggml_k4_scale_min(b + 4, s, &sc, &mn);
        k->sc16[2 * s] = k->sc16[2 * s + 1] = d * (float)sc;
        k->mn16[2 * s] = k->mn16[2 * s + 1] = dmin * (float)mn;
    }
}

/* Q2_K (84 bytes): scales (low nibble sc, high mn) at 0, 2-bit codes at 16
 * (value 128h + 32j + l: bits 2j of byte 16 + 32h + l), d, dmin at 80, 82. */
static void unpack_q2_k(const uint8_t *b, kblock *k) {
    const float d = f16(b + 80), dmin = f16(b + 82);
    for (int s = 0; s < 16; s++) {
        k->sc16[s] = d * (float)(b[s] & 0xF);
        k->mn16[s] = dmin * (float)(b[s] >> 4);
    }
    for (int h = 0; h < 2; h++) {
        const __m256i v = load32(b + 16 + 32 * h);
        for (int j = 0; j < 4; j++) store32(k->q + 128 * h + 32 * j, field(v, 2 * j, 3));
    }
}

/* Q3_K (110 bytes): high bits at 0 (bit 4h + j of byte l), 2-bit codes at
 * 32 (as Q2_K), 6-bit scales at 96, d at 108; code - 4. */
static void unpack_q3_k(const uint8_t *b, kblock *k) {
    const float d = f16(b + 108);
    for (int s = 0; s < 16; s++) {
        k->sc16[s] = d * (float)(lp_ggml_q3_scale(b + 96, s) - 32);
        k->mn16[s] = 0.0f;
    }
    const __m256i hm = load32(b), four = _mm256_set1_epi8(4);
    for (int h = 0; h < 2; h++) {
        const __m256i v = load32(b + 32 + 32 * h);
        for (int j = 0; j < 4; j++) {
            const __m256i hi = _mm256_slli_epi16(field(hm, 4 * h + j, 1), 2);
            store32(k->q + 128 * h + 32 * j, _mm256_sub_epi8(_mm256_or_si256(field(v, 2 * j, 3), hi), four));
        }
    }
}

/* Q4_K (144 bytes): codes at 16 (value 64j + l: low nibble of byte 16 + 32j
 * + l, 64j + 32 + l its high nibble). */
static void unpack_q4_k(const uint8_t *b, kblock *k) {
    k4_params(b, k);
    for (int j = 0; j < 4; j++) {
        const __m256i v = load32(b + 16 + 32 * j);
        store32(k->q + 64 * j, field(v, 0, 0xF));
        store32(k->q + 64 * j + 32, field(v, 4, 0xF));
    }
}

/* Q5_K (176 bytes): fifth bits at 16 (bit s of byte l for sub-block s),
 * low nibbles at 48 as Q4_K's. */
static void unpack_q5_k(const uint8_t *b, kblock *k) {
    k4_params(b, k);
    const __m256i qh = load32(b + 16);
    for (int j = 0; j < 4; j++) {
        const __m256i v = load32(b + 48 + 32 * j);
        store32(k->q + 64 * j, _mm256_or_si256(field(v, 0, 0xF), _mm256_slli_epi16(field(qh, 2 * j, 1), 4)));
        store32(k->q + 64 * j + 32, _mm256_or_si256(field(v, 4, 0xF), _mm256_slli_epi16(field(qh, 2 * j + 1, 1), 4)));
    }
}

/* Q6_K (210 bytes): low nibbles at 0 (value 128h + 32j + l: byte 64h +
 * 32 (j % 2) + l, nibble j / 2), high 2 bits at 128 (bits 2j of byte
 * 128 + 32h + l), int8 scales at 192, d at 208; code - 32. */
static void unpack_q6_k(const uint8_t *b, kblock *k) {
    const float d = f16(b + 208);
    for (int s = 0; s < 16; s++) {
        k->sc16[s] = d * (float)(int8_t)b[192 + s];
        k->mn16[s] = 0.0f;
    }
    const __m256i off = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; h++) {
        const __m256i qh = load32(b + 128 + 32 * h);
        for (int j = 0; j < 4; j++) {
            const __m256i lo = field(load32(b + 64 * h + 32 * (j % 2)), 4 * (j / 2), 0xF);
            const __m256i hi = _mm256_slli_epi16(field(qh, 2 * j, 3), 4);
            store32(k->q + 128 * h + 32 * j, _mm256_sub_epi8(_mm256_or_si256(lo, hi), off));
        }
    }
}

typedef void (*unpack_fn)(const uint8_t *, kblock *);

INLINE __m256 cvt8(const int8_t *q) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)));
}

/* acc[0..1] += the block's sum sc q x (16 values a step); returns sum mn xs16. */
INLINE float block_dot(const kblock *k, const float *x, const float *xs16, __m256 acc[2]) {
    float m = 0.0f;
#pragma GCC unroll 16
    for (int s = 0; s < 16; s++) {
        __m256 p = _mm256_mul_ps(cvt8(k->q + 16 * s), _mm256_loadu_ps(x + 16 * s));
        p = _mm256_fmadd_ps(cvt8(k->q + 16 * s + 8), _mm256_loadu_ps(x + 16 * s + 8), p);
        acc[s % 2] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&k->sc16[s]), acc[s % 2]);
        m += k->mn16[s] * xs16[s];
    }
    return m;
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static unpack_fn unpacker(int t) {
    switch (t) {
    case LP_GGML_Q2_K: return unpack_q2_k;
    case LP_GGML_Q3_K: return unpack_q3_k;
    case LP_GGML_Q4_K: return unpack_q4_k;
    case LP_GGML_Q5_K: return unpack_q5_k;
    default: return unpack_q6_k;
    }
}

void lp_ggml_k_rows_avx2(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1) {
    const lp_ggml_part *p = w;
    const int64_t nb = p->cols / QK, bytes = lp_ggml_type_of(p->type).bytes;
    const unpack_fn unpack = unpacker(p->type);
    float xs16[LP_GGML_K_ROWS_MAX_COLS / 16];
    kblock k;
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * ldx;
        for (int64_t i = 0; i < p->cols / 16; i++) {
            __m256 v = _mm256_add_ps(_mm256_loadu_ps(xt + 16 * i), _mm256_loadu_ps(xt + 16 * i + 8));
            xs16[i] = hsum(v);
        }
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
            __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
            float m = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                unpack(row + b * bytes, &k);
                m += block_dot(&k, xt + b * QK, xs16 + b * 16, acc);
            }
            y[t * ldy + r] = hsum(_mm256_add_ps(acc[0], acc[1])) - m;
        }
    }
}
