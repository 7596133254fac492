/*
 * ggml_unpack.h - a ggml block's codes as int8 vectors, shared by the row
 * kernels (ggml_avx2.c, ggml_k_avx2.c, ggml_avx512.c).
 *
 * What: the 32-value types' block -> one vector of 32 int8 codes
 * (lp_ggml_codes32) and a K type's 256-value block -> 256 int8 codes in an
 * L1 buffer plus one f32 factor and min per 16 values (lp_ggml_kblock).
 * Codes are the stored value minus the type's offset (Q4_0 8, Q5_0 16,
 * Q3_K 4, Q6_K 32; IQ4_NL its level), so value = d * code (+ m) for the
 * 32-value types and value = sc16 * code - mn16 for the K types: the same
 * factors, made the same way, as the reference (ggml_quants.c,
 * ggml_kquants.c) applies to each value; lp_ggml_dequant_rows_simd turns
 * them into the reference's floats bit for bit.
 * Why a header of static inline functions: the unpacking is AVX2 (32-byte
 * vectors) and the same for every kernel level; each kernel file, compiled
 * with its own -m flags, includes it. Only kernel files may include it.
 */
#ifndef LP_GGML_UNPACK_H
#define LP_GGML_UNPACK_H

#include "format/ggml.h"
#include "format/ggml_quants_impl.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define LP_GGML_INLINE static inline __attribute__((always_inline))

/* The f16 at p as f32 with F16C (exactly lp_f16_to_f32 for every finite
 * value, and the loaders reject non-finite scales), one instruction instead
 * of the portable bit manipulation. */
LP_GGML_INLINE float lp_ggml_f16at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* 8 int8 codes at q as 8 f32. */
LP_GGML_INLINE __m256 lp_ggml_cvt8(const int8_t *q) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)q)));
}

/* The sum of v's 8 lanes. */
LP_GGML_INLINE float lp_ggml_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* ---- the 32-value types: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL ---- */

/* The 32 bytes of a 5-bit type's high bits as 0x10 (bit j of the 32-bit word
 * qh -> byte j): each byte picks its source byte, tests its bit. */
LP_GGML_INLINE __m256i lp_ggml_fifth_bits(const uint8_t *qh) {
    uint32_t h;
    memcpy(&h, qh, 4);
    const __m256i sel = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h),
                                            _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202,
                                                               0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(sel, bit), bit), _mm256_set1_epi8(0x10));
}

/* 16 bytes of nibbles as 32 values: low nibbles (values 0..15), then high. */
LP_GGML_INLINE __m256i lp_ggml_nibbles(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs), m4 = _mm_set1_epi8(0x0f);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
}

/* The block's 32 codes (layouts in ggml_quants.c). */
LP_GGML_INLINE __m256i lp_ggml_codes32(int t, const uint8_t *b) {
    switch (t) {
    case LP_GGML_Q8_0: return _mm256_loadu_si256((const __m256i *)(b + 2));
    case LP_GGML_Q4_0: return _mm256_sub_epi8(lp_ggml_nibbles(b + 2), _mm256_set1_epi8(8));
    case LP_GGML_Q4_1: return lp_ggml_nibbles(b + 4);
    case LP_GGML_Q5_0:
        return _mm256_sub_epi8(_mm256_or_si256(lp_ggml_nibbles(b + 6), lp_ggml_fifth_bits(b + 2)), _mm256_set1_epi8(16));
    case LP_GGML_Q5_1: return _mm256_or_si256(lp_ggml_nibbles(b + 8), lp_ggml_fifth_bits(b + 4));
    default: { /* IQ4_NL: the levels, by nibble */
        const __m256i lv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lp_ggml_iq4nl_levels));
        return _mm256_shuffle_epi8(lv, lp_ggml_nibbles(b + 2));
    }
    }
}

/* Whether the block has a min m (value = d * code + m). */
LP_GGML_INLINE int lp_ggml_has_min(int t) { return t == LP_GGML_Q4_1 || t == LP_GGML_Q5_1; }

typedef void (*lp_ggml_rows_of_fn)(const lp_ggml_part *p, int64_t T, const float *x, int64_t ldx, float *y,
                                   int64_t ldy, int64_t r0, int64_t r1);

/* lp_rows_fn's loop for a 32-value type: every row of the tile, every token,
 * with the kernel file's DOT_ROW inlined (no call per row). */
#define LP_GGML_LEGACY_ROWS_BODY(DOT_ROW, T_)                                                               \
    {                                                                                                       \
        const int64_t nb = p->cols / LP_GGML_QK;                                                            \
        for (int64_t r = r0; r < r1; r++) {                                                                 \
            const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;                                      \
            for (int64_t t = 0; t < T; t++) y[t * ldy + r] = DOT_ROW(T_, row, x + t * ldx, nb);            \
        }                                                                                                   \
    }

/* In a kernel file: from its inline DOT_ROW(t, row, x, nblocks) (t a
 * compile-time constant), one row loop per 32-value type and
 * legacy_rows(t) choosing among them (NULL for other types). */
#define LP_GGML_DEFINE_LEGACY_ROWS(DOT_ROW)                                                                  \
    LP_GGML_LEGACY_ROWS_FN(DOT_ROW, LP_GGML_Q8_0, rows_q8_0)                                                 \
    LP_GGML_LEGACY_ROWS_FN(DOT_ROW, LP_GGML_Q4_0, rows_q4_0)                                                 \
    LP_GGML_LEGACY_ROWS_FN(DOT_ROW, LP_GGML_Q4_1, rows_q4_1)                                                 \
    LP_GGML_LEGACY_ROWS_FN(DOT_ROW, LP_GGML_Q5_0, rows_q5_0)                                                 \
    LP_GGML_LEGACY_ROWS_FN(DOT_ROW, LP_GGML_Q5_1, rows_q5_1)                                                 \
    LP_GGML_LEGACY_ROWS_FN(DOT_ROW, LP_GGML_IQ4_NL, rows_iq4_nl)                                             \
    static lp_ggml_rows_of_fn legacy_rows(int t) {                                                          \
        switch (t) {                                                                                        \
        case LP_GGML_Q8_0: return rows_q8_0;                                                                \
        case LP_GGML_Q4_0: return rows_q4_0;                                                                \
        case LP_GGML_Q4_1: return rows_q4_1;                                                                \
        case LP_GGML_Q5_0: return rows_q5_0;                                                                \
        case LP_GGML_Q5_1: return rows_q5_1;                                                                \
        case LP_GGML_IQ4_NL: return rows_iq4_nl;                                                            \
        default: return NULL;                                                                               \
        }                                                                                                   \
    }

#define LP_GGML_LEGACY_ROWS_FN(DOT_ROW, T_, name)                                                           \
    static void name(const lp_ggml_part *p, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,  \
                     int64_t r0, int64_t r1) LP_GGML_LEGACY_ROWS_BODY(DOT_ROW, T_)

/* ---- the K types: Q2_K .. Q6_K ---- */

typedef struct {
    _Alignas(32) int8_t q[LP_GGML_QK_K]; /* codes minus offset, value order */
    float sc16[16], mn16[16];            /* per 16 values: the factor of q and the min */
} lp_ggml_kblock;

LP_GGML_INLINE __m256i lp_ggml_load32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
LP_GGML_INLINE void lp_ggml_store32(int8_t *q, __m256i v) { _mm256_store_si256((__m256i *)q, v); }

/* Bits [s, s + n) of every byte of v moved down to bit 0 (a 16-bit shift:
 * the mask drops what crossed from the neighbouring byte). */
LP_GGML_INLINE __m256i lp_ggml_field(__m256i v, int s, int mask) {
    return _mm256_and_si256(_mm256_srli_epi16(v, s), _mm256_set1_epi8((char)mask));
}

/* Q4_K / Q5_K: d, dmin at 0, 2; scales at 4; 32-value sub-blocks. */
LP_GGML_INLINE void lp_ggml_k4_params(const uint8_t *b, lp_ggml_kblock *k) {
    const float d = lp_ggml_f16at(b), dmin = lp_ggml_f16at(b + 2);
    for (int s = 0; s < 8; s++) {
        int sc, mn;
        lp_ggml_k4_scale_min(b + 4, s, &sc, &mn);
        k->sc16[2 * s] = k->sc16[2 * s + 1] = d * (float)sc;
        k->mn16[2 * s] = k->mn16[2 * s + 1] = dmin * (float)mn;
    }
}

/* Q2_K (84 bytes): scales (low nibble sc, high mn) at 0, 2-bit codes at 16
 * (value 128h + 32j + l: bits 2j of byte 16 + 32h + l), d, dmin at 80, 82. */
LP_GGML_INLINE void lp_ggml_unpack_q2_k(const uint8_t *b, lp_ggml_kblock *k) {
    const float d = lp_ggml_f16at(b + 80), dmin = lp_ggml_f16at(b + 82);
    for (int s = 0; s < 16; s++) {
        k->sc16[s] = d * (float)(b[s] & 0xF);
        k->mn16[s] = dmin * (float)(b[s] >> 4);
    }
    for (int h = 0; h < 2; h++) {
        const __m256i v = lp_ggml_load32(b + 16 + 32 * h);
        for (int j = 0; j < 4; j++) lp_ggml_store32(k->q + 128 * h + 32 * j, lp_ggml_field(v, 2 * j, 3));
    }
}

/* Q3_K (110 bytes): high bits at 0 (bit 4h + j of byte l), 2-bit codes at
 * 32 (as Q2_K), 6-bit scales at 96, d at 108; code - 4. */
LP_GGML_INLINE void lp_ggml_unpack_q3_k(const uint8_t *b, lp_ggml_kblock *k) {
    const float d = lp_ggml_f16at(b + 108);
    for (int s = 0; s < 16; s++) {
        k->sc16[s] = d * (float)(lp_ggml_q3_scale(b + 96, s) - 32);
        k->mn16[s] = 0.0f;
    }
    const __m256i hm = lp_ggml_load32(b), four = _mm256_set1_epi8(4);
    for (int h = 0; h < 2; h++) {
        const __m256i v = lp_ggml_load32(b + 32 + 32 * h);
        for (int j = 0; j < 4; j++) {
            const __m256i hi = _mm256_slli_epi16(lp_ggml_field(hm, 4 * h + j, 1), 2);
            const __m256i lo = lp_ggml_field(v, 2 * j, 3);
            lp_ggml_store32(k->q + 128 * h + 32 * j, _mm256_sub_epi8(_mm256_or_si256(lo, hi), four));
        }
    }
}

/* Q4_K (144 bytes): codes at 16 (value 64j + l: low nibble of byte 16 + 32j
 * + l, 64j + 32 + l its high nibble). */
LP_GGML_INLINE void lp_ggml_unpack_q4_k(const uint8_t *b, lp_ggml_kblock *k) {
    lp_ggml_k4_params(b, k);
    for (int j = 0; j < 4; j++) {
        const __m256i v = lp_ggml_load32(b + 16 + 32 * j);
        lp_ggml_store32(k->q + 64 * j, lp_ggml_field(v, 0, 0xF));
        lp_ggml_store32(k->q + 64 * j + 32, lp_ggml_field(v, 4, 0xF));
    }
}

/* Q5_K (176 bytes): fifth bits at 16 (bit s of byte l for sub-block s),
 * low nibbles at 48 as Q4_K's. */
LP_GGML_INLINE void lp_ggml_unpack_q5_k(const uint8_t *b, lp_ggml_kblock *k) {
    lp_ggml_k4_params(b, k);
    const __m256i qh = lp_ggml_load32(b + 16);
    for (int j = 0; j < 4; j++) {
        const __m256i v = lp_ggml_load32(b + 48 + 32 * j);
        const __m256i h0 = _mm256_slli_epi16(lp_ggml_field(qh, 2 * j, 1), 4); /* fifth bits, at bit 4 */
        const __m256i h1 = _mm256_slli_epi16(lp_ggml_field(qh, 2 * j + 1, 1), 4);
        lp_ggml_store32(k->q + 64 * j, _mm256_or_si256(lp_ggml_field(v, 0, 0xF), h0));
        lp_ggml_store32(k->q + 64 * j + 32, _mm256_or_si256(lp_ggml_field(v, 4, 0xF), h1));
    }
}

/* Q6_K (210 bytes): low nibbles at 0 (value 128h + 32j + l: byte 64h +
 * 32 (j % 2) + l, nibble j / 2), high 2 bits at 128 (bits 2j of byte
 * 128 + 32h + l), int8 scales at 192, d at 208; code - 32. */
LP_GGML_INLINE void lp_ggml_unpack_q6_k(const uint8_t *b, lp_ggml_kblock *k) {
    const float d = lp_ggml_f16at(b + 208);
    for (int s = 0; s < 16; s++) {
        k->sc16[s] = d * (float)(int8_t)b[192 + s];
        k->mn16[s] = 0.0f;
    }
    const __m256i off = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; h++) {
        const __m256i qh = lp_ggml_load32(b + 128 + 32 * h);
        for (int j = 0; j < 4; j++) {
            const __m256i lo = lp_ggml_field(lp_ggml_load32(b + 64 * h + 32 * (j % 2)), 4 * (j / 2), 0xF);
            const __m256i hi = _mm256_slli_epi16(lp_ggml_field(qh, 2 * j, 3), 4);
            lp_ggml_store32(k->q + 128 * h + 32 * j, _mm256_sub_epi8(_mm256_or_si256(lo, hi), off));
        }
    }
}

typedef void (*lp_ggml_kunpack_fn)(const uint8_t *, lp_ggml_kblock *);

/* The unpacker of K type t. */
static inline lp_ggml_kunpack_fn lp_ggml_kunpacker(int t) {
    switch (t) {
    case LP_GGML_Q2_K: return lp_ggml_unpack_q2_k;
    case LP_GGML_Q3_K: return lp_ggml_unpack_q3_k;
    case LP_GGML_Q4_K: return lp_ggml_unpack_q4_k;
    case LP_GGML_Q5_K: return lp_ggml_unpack_q5_k;
    default: return lp_ggml_unpack_q6_k;
    }
}

/* ---- dequantization, bit for bit the reference's ---- */

/* v unchanged, but opaque: a multiply before it is never fused with an add
 * after it (kernel files are built with -mfma, where GNU C may contract; the
 * reference rounds the product and the sum separately). */
LP_GGML_INLINE __m256 lp_ggml_rounded(__m256 v) {
    __asm__("" : "+x"(v));
    return v;
}


/* out ((r1 - r0) x cols) = rows [r0, r1) of a quantized part, equal to
 * lp_ggml_dequant_row bit for bit: (float)code * d (+ m) for the 32-value
 * types, sc16 * (float)code - mn16 for the K types (the reference's
 * scale * q - min, with min 0 where the type has none), 8 values a step. */
static inline void lp_ggml_dequant_rows_simd(const lp_ggml_part *p, int64_t r0, int64_t r1, float *out) {
    const int t = p->type;
    const int64_t bytes = lp_ggml_type_of(t).bytes, cols = p->cols;
    const int is_k = t >= LP_GGML_Q2_K && t <= LP_GGML_Q6_K, has_min = lp_ggml_has_min(t);
    const lp_ggml_kunpack_fn kun = is_k ? lp_ggml_kunpacker(t) : NULL;
    lp_ggml_kblock k;
    _Alignas(32) int8_t q32[32];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
        float *o = out + (r - r0) * cols;
        if (is_k) {
            for (int64_t b = 0; b < cols / LP_GGML_QK_K; b++, o += LP_GGML_QK_K) {
                kun(row + b * bytes, &k);
                for (int s = 0; s < 16; s++)
                    for (int h = 0; h < 2; h++) {
                        const __m256 v = lp_ggml_rounded(
                            _mm256_mul_ps(_mm256_set1_ps(k.sc16[s]), lp_ggml_cvt8(k.q + 16 * s + 8 * h)));
                        _mm256_storeu_ps(o + 16 * s + 8 * h, _mm256_sub_ps(v, _mm256_set1_ps(k.mn16[s])));
                    }
            }
            continue;
        }
        for (int64_t b = 0; b < cols / LP_GGML_QK; b++, o += LP_GGML_QK) {
            const uint8_t *blk = row + b * bytes;
            _mm256_store_si256((__m256i *)q32, lp_ggml_codes32(t, blk));
            const __m256 d = _mm256_set1_ps(lp_ggml_f16at(blk));
            const __m256 m = _mm256_set1_ps(has_min ? lp_ggml_f16at(blk + 2) : 0.0f);
            for (int h = 0; h < 4; h++) {
                const __m256 v = _mm256_mul_ps(lp_ggml_cvt8(q32 + 8 * h), d);
                _mm256_storeu_ps(o + 8 * h, has_min ? _mm256_add_ps(lp_ggml_rounded(v), m) : v);
            }
        }
    }
}

#endif
