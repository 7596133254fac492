/*
 * bitmap_avx512.c - AVX-512 kernels of the bitmap format (bitmap.h).
 *
 * Fast path (bf16, f16, 8- or 4-bit values): a mask word covers 32 columns,
 * two halves of 16. A half's 16 keep bits m are a lane mask: its p =
 * popcount(m) values, the next p stored, are converted to d (the 16-bit
 * float, or (float)(q - z)) and vexpandps puts them in the kept lanes
 * (half_d below); the expanded register is shared by all tokens. All-zero
 * words are skipped.
 * Product order, per row and token: for each group g in order (bits 16: the
 * row), lane L of accumulator G_h adds d x[c] for the kept columns c = 32 k +
 * 16 h + L of the group's words k in order (two independent FMA chains, one
 * per half h; a masked FMA: pruned lanes are left alone); then G = G_0 + G_1
 * and A = fma(scale_g, G, A) (bits 16: A = G); finally y =
 * _mm512_reduce_add_ps(A). Matches the reference to rounding.
 * Dequantization (fast path): the same expansion (times the scale: s *
 * (float)(q - z), one rounding as in the reference), +0 in pruned lanes.
 * Bit-identical to the reference.
 * Generic path (2, 3, 5, 6, 7 bits): each row is dequantized exactly
 * (lp_bitmap_dequant_words) in chunks of 512 columns, and lane L of A adds
 * W_hat[c] x[c] for c = 16 q + L in order; y = _mm512_reduce_add_ps(A).
 * Dequantization is the reference's.
 */
#include "format/bitmap.h"

#include "core/half.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* 16 codes of 4 bits from the low 8 bytes of b (the low nibble first). */
AI __m512i unpack4(__m128i b) {
    const __m128i lo = _mm_and_si128(b, _mm_set1_epi8(0x0f)),
                  hi = _mm_and_si128(_mm_srli_epi16(b, 4), _mm_set1_epi8(0x0f));
    return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
}

/* d of the p values from i on, expanded into the lanes of m (p = popcount(m)),
 * +0 elsewhere. Inside the arrays, 16-bit values are expanded a byte of m at
 * a time (two 256-bit vexpandps, the second byte's values read from i +
 * popcount of the first on: on Zen 4 about 15% faster per token than one
 * 512-bit expand; measured slower for 8-bit codes, which keep the one);
 * codes are read as a whole register; near the arrays' end, masked loads. */
AI __m512 half_d(const lp_sparse_store *v, const int VK, int64_t i, unsigned p, __mmask16 m, __m512i zv) {
    const __mmask16 lo = (__mmask16)((1u << p) - 1u);
    const int in = i + 16 <= v->count;
    __m512 d;
    switch (VK) {
    case LP_SV_BF16:
    case LP_SV_F16: {
        if (in) {
            const unsigned p0 = (unsigned)_mm_popcnt_u32(m & 0xffu);
            const __m128i h0 = _mm_loadu_si128((const __m128i *)(v->v16 + i)),
                          h1 = _mm_loadu_si128((const __m128i *)(v->v16 + i + p0));
            const __m256 a = VK == LP_SV_BF16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h0), 16))
                                              : _mm256_cvtph_ps(h0);
            const __m256 b = VK == LP_SV_BF16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h1), 16))
                                              : _mm256_cvtph_ps(h1);
            return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_maskz_expand_ps((__mmask8)m, a)),
                                      _mm256_maskz_expand_ps((__mmask8)(m >> 8), b), 1);
        }
        const __m256i h = _mm256_maskz_loadu_epi16(lo, v->v16 + i);
        d = VK == LP_SV_BF16 ? _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
                             : _mm512_cvtph_ps(h);
        break;
    }
    case LP_SV_U8: {
        const __m128i b =
            in ? _mm_loadu_si128((const __m128i *)(v->codes + i)) : _mm_maskz_loadu_epi8(lo, v->codes + i);
        d = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(b), zv));
        break;
    }
    default: { /* LP_SV_U4: nibble i on: from byte i / 2, shifted by 4 bits when i is odd */
        const int64_t at = (int64_t)((uint64_t)i >> 1), left = (int64_t)lp_sparse_code_bytes(v->count, 4) - at;
        uint64_t u0, u1 = 0;
        if (left >= 16) {
            memcpy(&u0, v->codes + at, 8);
            memcpy(&u1, v->codes + at + 8, 8);
        } else { /* the last bytes of the array */
            uint8_t tmp[16] = {0};
            memcpy(tmp, v->codes + at, (size_t)left);
            memcpy(&u0, tmp, 8);
            memcpy(&u1, tmp + 8, 8);
        }
        const unsigned sh = 4 * (unsigned)(i & 1);
        const uint64_t u = (u0 >> sh) | (u1 << 1 << (63 - sh)); /* 16 nibbles from nibble i on */
        d = _mm512_cvtepi32_ps(_mm512_sub_epi32(unpack4(_mm_cvtsi64_si128((long long)u)), zv));
        break;
    }
    }
    return _mm512_maskz_expand_ps(m, d);
}

/* Rows are a few KB, too short for the hardware prefetcher to lock on
 * before the next begins: the kernels ask for the values LP_SPARSE_PF_VALUES
 * bytes and the mask LP_SPARSE_PF_INDEX bytes ahead (sparse.h). */
AI void prefetch(const lp_sparse_store *v, const int VK, int64_t i, const void *ix) {
    const char *p = VK <= LP_SV_F16 ? (const char *)(v->v16 + i) : (const char *)v->codes + (VK == LP_SV_U8 ? i : i / 2);
    _mm_prefetch(p + LP_SPARSE_PF_VALUES, _MM_HINT_T0);
    _mm_prefetch((const char *)ix + LP_SPARSE_PF_INDEX, _MM_HINT_T0);
}

AI void rows_fast(const lp_bitmap *w, const int T, const int VK, const float *x, int64_t ldx, float *y, int64_t ldy,
                  int64_t r0, int64_t r1) {
    const lp_sparse_store *v = &w->v;
    const int64_t gw = v->bits == 16 || v->group >= w->cols ? w->words : v->group / 32; /* words per group */
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *mk = w->mask + r * w->words;
        int64_t i = w->offsets[r];
        __m512 acc[LP_BITMAP_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t g = 0; g < v->ngroups; g++) {
            const int64_t k0 = g * gw, k1 = k0 + gw < w->words ? k0 + gw : w->words;
            const __m512i zv = _mm512_set1_epi32(VK >= LP_SV_U8 ? v->zeros[r * v->ngroups + g] : 0);
            __m512 gs[LP_BITMAP_MAX_T][2];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) gs[t][0] = gs[t][1] = _mm512_setzero_ps();
            for (int64_t k = k0; k < k1; k++) {
                prefetch(v, VK, i, mk + k);
                if (!mk[k]) continue;
#pragma GCC unroll 2
                for (int h = 0; h < 2; h++) {
                    const __mmask16 m = (__mmask16)(mk[k] >> (16 * h));
                    const unsigned p = (unsigned)_mm_popcnt_u32(m);
                    const __m512 d = half_d(v, VK, i, p, m, zv);
                    i += p;
                    const float *xs = x + 32 * k + 16 * h;
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++)
                        gs[t][h] = _mm512_mask3_fmadd_ps(d, _mm512_loadu_ps(xs + t * ldx), gs[t][h], m);
                }
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const __m512 s = _mm512_add_ps(gs[t][0], gs[t][1]);
                acc[t] = VK <= LP_SV_F16
                             ? s
                             : _mm512_fmadd_ps(_mm512_set1_ps(lp_f16_to_f32(v->scales[r * v->ngroups + g])), s, acc[t]);
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
    }
}

/* The generic path: exact dequantized chunks of 16 words, then a 16-lane dot product. */
AI void rows_generic(const lp_bitmap *w, const int T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    float buf[512];
    for (int64_t r = r0; r < r1; r++) {
        int64_t i = w->offsets[r];
        __m512 acc[LP_BITMAP_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t k0 = 0; k0 < w->words; k0 += 16) {
            const int64_t k1 = k0 + 16 < w->words ? k0 + 16 : w->words, c0 = 32 * k0;
            const int64_t nc = (32 * k1 < w->cols ? 32 * k1 : w->cols) - c0;
            i = lp_bitmap_dequant_words(w, r, k0, k1, i, buf);
            for (int64_t q = 0; q < nc; q += 16) {
                const __mmask16 km = nc - q >= 16 ? 0xffff : (__mmask16)((1u << (nc - q)) - 1u);
                const __m512 wv = _mm512_maskz_loadu_ps(km, buf + q);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++)
                    acc[t] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(km, x + t * ldx + c0 + q), acc[t]);
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
    }
}

#define BY_T(F, ...)                                                                                                   \
    switch (T) {                                                                                                       \
    case 1: F(w, 1, __VA_ARGS__); break;                                                                               \
    case 2: F(w, 2, __VA_ARGS__); break;                                                                               \
    case 3: F(w, 3, __VA_ARGS__); break;                                                                               \
    default: F(w, 4, __VA_ARGS__); break;                                                                              \
    }

static void fast_bf16(const lp_bitmap *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
    BY_T(rows_fast, LP_SV_BF16, x, ldx, y, ldy, r0, r1)
}
static void fast_f16(const lp_bitmap *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    BY_T(rows_fast, LP_SV_F16, x, ldx, y, ldy, r0, r1)
}
static void fast_u8(const lp_bitmap *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                    int64_t r1) {
    BY_T(rows_fast, LP_SV_U8, x, ldx, y, ldy, r0, r1)
}
static void fast_u4(const lp_bitmap *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                    int64_t r1) {
    BY_T(rows_fast, LP_SV_U4, x, ldx, y, ldy, r0, r1)
}

void lp_bitmap_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                           int64_t r0, int64_t r1) {
    const lp_bitmap *w = w_;
    switch (w->v.kind) {
    case LP_SV_BF16: fast_bf16(w, T, x, ldx, y, ldy, r0, r1); break;
    case LP_SV_F16: fast_f16(w, T, x, ldx, y, ldy, r0, r1); break;
    case LP_SV_U8: fast_u8(w, T, x, ldx, y, ldy, r0, r1); break;
    case LP_SV_U4: fast_u4(w, T, x, ldx, y, ldy, r0, r1); break;
    default: BY_T(rows_generic, x, ldx, y, ldy, r0, r1) break;
    }
}

AI void dequant_fast(const lp_bitmap *w, const int VK, int64_t r0, int64_t r1, float *out) {
    const lp_sparse_store *v = &w->v;
    const int64_t gw = v->bits == 16 || v->group >= w->cols ? w->words : v->group / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *mk = w->mask + r * w->words;
        int64_t i = w->offsets[r];
        float *o = out + (r - r0) * w->cols;
        for (int64_t g = 0; g < v->ngroups; g++) {
            const int64_t k0 = g * gw, k1 = k0 + gw < w->words ? k0 + gw : w->words;
            const __m512i zv = _mm512_set1_epi32(VK >= LP_SV_U8 ? v->zeros[r * v->ngroups + g] : 0);
            const __m512 s = _mm512_set1_ps(VK >= LP_SV_U8 ? lp_f16_to_f32(v->scales[r * v->ngroups + g]) : 1.0f);
            for (int64_t k = k0; k < k1; k++)
                for (int h = 0; h < 2; h++) {
                    const int64_t c0 = 32 * k + 16 * h, left = w->cols - c0;
                    if (left <= 0) break;
                    const __mmask16 m = (__mmask16)(mk[k] >> (16 * h));
                    const unsigned p = (unsigned)_mm_popcnt_u32(m);
                    __m512 d = half_d(v, VK, i, p, m, zv);
                    i += p;
                    if (VK >= LP_SV_U8) d = _mm512_maskz_mul_ps(m, s, d); /* pruned lanes stay +0 */
                    if (left >= 16) _mm512_storeu_ps(o + c0, d);
                    else _mm512_mask_storeu_ps(o + c0, (__mmask16)((1u << left) - 1u), d);
                }
        }
    }
}

void lp_bitmap_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_bitmap *w = w_;
    switch (w->v.kind) {
    case LP_SV_BF16: dequant_fast(w, LP_SV_BF16, r0, r1, out); break;
    case LP_SV_F16: dequant_fast(w, LP_SV_F16, r0, r1, out); break;
    case LP_SV_U8: dequant_fast(w, LP_SV_U8, r0, r1, out); break;
    case LP_SV_U4: dequant_fast(w, LP_SV_U4, r0, r1, out); break;
    default: lp_bitmap_dequant_ref(w, r0, r1, out); break;
    }
}
