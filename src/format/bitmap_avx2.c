/*
 * bitmap_avx2.c - AVX2 kernels of the bitmap format (bitmap.h).
 *
 * Fast path (bf16, f16, 8- or 4-bit values): a mask byte b covers 8
 * columns. The next 8 stored values (read whole while they lie inside the
 * array, copied out near its end) are converted to d (the 16-bit float, or
 * (float)(q - z)); sparse.h's table entry for b is a vpermps index that puts
 * value j in the lane of b's j-th set bit and a blend mask (its sign bit)
 * that leaves +0 in the others; then popcount(b) values are consumed. The
 * expanded register is shared by all tokens; all-zero words are skipped.
 * Product order, per row and token: for each group g in order (bits 16: the
 * row), lane L of accumulator G_a adds w x[c] for the columns c = 32 k + 8 j
 * + L of the group's words k and bytes j with j mod 2 = a, in order (two
 * independent FMA chains; w = +0 where pruned, so an infinite x there gives
 * NaN, as the dequantize + sgemm path does); then G = G_0 + G_1 and
 * A = fma(scale_g, G, A) (bits 16: A = G); finally y = A's two 128-bit
 * halves added, then lanes (0+2, 1+3), then those two. Matches the
 * reference to rounding for finite x.
 * Dequantization (fast path): the same expansion (times the scale first:
 * s * (float)(q - z), one rounding as in the reference). Bit-identical to
 * the reference.
 * Generic path (2, 3, 5, 6, 7 bits): each row is dequantized exactly
 * (lp_bitmap_dequant_words) in chunks of 512 columns, and lane L of A adds
 * W_hat[c] x[c] for c = 8 q + L in order; y is reduced as above.
 * Dequantization is the reference's.
 */
#include "format/bitmap.h"

#include "core/half.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* d of the 8 values from i on. safe: they (and, 4-bit, the 8 bytes read)
 * lie inside the arrays; otherwise what lies past the end is read as 0. */
AI __m256 load_d(const lp_sparse_store *v, const int VK, int64_t i, __m256i zv, const int safe) {
    uint8_t tmp[16] = {0};
    switch (VK) {
    case LP_SV_BF16:
    case LP_SV_F16: {
        const void *p = v->v16 + i;
        if (!safe && i + 8 > v->count) p = memcpy(tmp, p, (size_t)(v->count - i) * 2);
        const __m128i h = _mm_loadu_si128((const __m128i *)p);
        return VK == LP_SV_BF16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                                : _mm256_cvtph_ps(h);
    }
    case LP_SV_U8: {
        const void *p = v->codes + i;
        if (!safe && i + 8 > v->count) p = memcpy(tmp, p, (size_t)(v->count - i));
        return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)), zv));
    }
    default: { /* LP_SV_U4: nibble i on: from byte i / 2, shifted by 4 bits when i is odd */
        const int64_t at = (int64_t)((uint64_t)i >> 1), left = (int64_t)lp_sparse_code_bytes(v->count, 4) - at;
        uint64_t u = 0;
        if (safe || left >= 8) memcpy(&u, v->codes + at, 8);
        else memcpy(&u, v->codes + at, (size_t)left);
        u >>= 4 * (i & 1);
        const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)(uint32_t)u),
                                                             _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                           _mm256_set1_epi32(15));
        return _mm256_cvtepi32_ps(_mm256_sub_epi32(q, zv));
    }
    }
}

/* Whether the loads of a whole word from value i on stay inside the arrays
 * (its 4 bytes read at most 8 values, or 8 code bytes, from i + 24 on). */
AI int word_safe(const lp_sparse_store *v, const int VK, int64_t i) {
    return VK == LP_SV_U4 ? (i + 24) / 2 + 8 <= (int64_t)lp_sparse_code_bytes(v->count, 4) : i + 32 <= v->count;
}

/* d placed in the kept lanes of byte b, +0 elsewhere. */
AI __m256 expand8(__m256 d, unsigned b) {
    const __m256i e = _mm256_load_si256((const __m256i *)lp_sparse_expand8[b]);
    return _mm256_blendv_ps(_mm256_setzero_ps(), _mm256_permutevar8x32_ps(d, e), _mm256_castsi256_ps(e));
}

/* Rows are a few KB, too short for the hardware prefetcher to lock on
 * before the next begins: the kernels ask for the values LP_SPARSE_PF_VALUES
 * bytes and the mask LP_SPARSE_PF_INDEX bytes ahead (sparse.h). */
AI void prefetch(const lp_sparse_store *v, const int VK, int64_t i, const void *ix) {
    const char *p = VK <= LP_SV_F16 ? (const char *)(v->v16 + i) : (const char *)v->codes + (VK == LP_SV_U8 ? i : i / 2);
    _mm_prefetch(p + LP_SPARSE_PF_VALUES, _MM_HINT_T0);
    _mm_prefetch((const char *)ix + LP_SPARSE_PF_INDEX, _MM_HINT_T0);
}

/* One word's 32 columns (4 bytes, byte j into accumulator j mod 2) for T tokens. */
AI void word_fma(const lp_sparse_store *v, const int T, const int VK, uint32_t word, int64_t *i, __m256i zv,
                 const float *xs, int64_t ldx, __m256 gs[][2], const int safe) {
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const unsigned b = (word >> (8 * j)) & 0xffu;
        const __m256 wv = expand8(load_d(v, VK, *i, zv, safe), b);
        *i += __builtin_popcount(b);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++)
            gs[t][j & 1] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xs + t * ldx + 8 * j), gs[t][j & 1]);
    }
}

AI void rows_fast(const lp_bitmap *w, const int T, const int VK, const float *x, int64_t ldx, float *y, int64_t ldy,
                  int64_t r0, int64_t r1) {
    const lp_sparse_store *v = &w->v;
    const int64_t gw = v->bits == 16 || v->group >= w->cols ? w->words : v->group / 32; /* words per group */
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *mk = w->mask + r * w->words;
        int64_t i = w->offsets[r];
        __m256 acc[LP_BITMAP_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
        for (int64_t g = 0; g < v->ngroups; g++) {
            const int64_t k0 = g * gw, k1 = k0 + gw < w->words ? k0 + gw : w->words;
            const __m256i zv = _mm256_set1_epi32(VK >= LP_SV_U8 ? v->zeros[r * v->ngroups + g] : 0);
            __m256 gs[LP_BITMAP_MAX_T][2];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) gs[t][0] = gs[t][1] = _mm256_setzero_ps();
            for (int64_t k = k0; k < k1; k++) {
                const uint32_t word = mk[k];
                prefetch(v, VK, i, mk + k);
                if (!word) continue;
                if (word_safe(v, VK, i)) word_fma(v, T, VK, word, &i, zv, x + 32 * k, ldx, gs, 1);
                else word_fma(v, T, VK, word, &i, zv, x + 32 * k, ldx, gs, 0); /* near the arrays' end */
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const __m256 s = _mm256_add_ps(gs[t][0], gs[t][1]);
                acc[t] = VK <= LP_SV_F16
                             ? s
                             : _mm256_fmadd_ps(_mm256_set1_ps(lp_f16_to_f32(v->scales[r * v->ngroups + g])), s, acc[t]);
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum(acc[t]);
    }
}

/* The generic path: exact dequantized chunks of 16 words, then an 8-lane dot product. */
AI void rows_generic(const lp_bitmap *w, const int T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    float buf[512];
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t r = r0; r < r1; r++) {
        int64_t i = w->offsets[r];
        __m256 acc[LP_BITMAP_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
        for (int64_t k0 = 0; k0 < w->words; k0 += 16) {
            const int64_t k1 = k0 + 16 < w->words ? k0 + 16 : w->words, c0 = 32 * k0;
            const int64_t nc = (32 * k1 < w->cols ? 32 * k1 : w->cols) - c0;
            i = lp_bitmap_dequant_words(w, r, k0, k1, i, buf);
            int64_t q = 0;
            for (; q + 8 <= nc; q += 8) {
                const __m256 wv = _mm256_loadu_ps(buf + q);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) acc[t] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + t * ldx + c0 + q), acc[t]);
            }
            if (q < nc) {
                const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(nc - q)), lane);
                const __m256 wv = _mm256_maskload_ps(buf + q, live);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++)
                    acc[t] = _mm256_fmadd_ps(wv, _mm256_maskload_ps(x + t * ldx + c0 + q, live), acc[t]);
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum(acc[t]);
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

void lp_bitmap_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1) {
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
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *mk = w->mask + r * w->words;
        int64_t i = w->offsets[r];
        float *o = out + (r - r0) * w->cols;
        for (int64_t g = 0; g < v->ngroups; g++) {
            const int64_t k0 = g * gw, k1 = k0 + gw < w->words ? k0 + gw : w->words;
            const __m256i zv = _mm256_set1_epi32(VK >= LP_SV_U8 ? v->zeros[r * v->ngroups + g] : 0);
            const __m256 s = _mm256_set1_ps(VK >= LP_SV_U8 ? lp_f16_to_f32(v->scales[r * v->ngroups + g]) : 1.0f);
            for (int64_t k = k0; k < k1; k++)
                for (int j = 0; j < 4; j++) {
                    const int64_t c0 = 32 * k + 8 * j, left = w->cols - c0;
                    if (left <= 0) break;
                    const unsigned b = (mk[k] >> (8 * j)) & 0xffu;
                    __m256 d = load_d(v, VK, i, zv, 0);
                    i += __builtin_popcount(b);
                    if (VK >= LP_SV_U8) d = _mm256_mul_ps(s, d);
                    d = expand8(d, b);
                    if (left >= 8) _mm256_storeu_ps(o + c0, d);
                    else _mm256_maskstore_ps(o + c0, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), lane), d);
                }
        }
    }
}

void lp_bitmap_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_bitmap *w = w_;
    switch (w->v.kind) {
    case LP_SV_BF16: dequant_fast(w, LP_SV_BF16, r0, r1, out); break;
    case LP_SV_F16: dequant_fast(w, LP_SV_F16, r0, r1, out); break;
    case LP_SV_U8: dequant_fast(w, LP_SV_U8, r0, r1, out); break;
    case LP_SV_U4: dequant_fast(w, LP_SV_U4, r0, r1, out); break;
    default: lp_bitmap_dequant_ref(w, r0, r1, out); break;
    }
}
