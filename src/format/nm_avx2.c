/*
 * nm_avx2.c - AVX2 kernels of the N:M format (nm.h).
 *
 * Fast path (nm.h: half patterns 1:2, 2:4, 4:8, 8:16 with bf16, f16, 8- or
 * 4-bit values): a span of 16 columns holds exactly 8 kept weights, 8
 * consecutive stored values (one register), index fields in the next ib
 * bytes of the row. Lane k's column in the span is c_k = base_k + field_k
 * (base_k = m floor(k / n), c_k < 16); vpermps picks x[c_k & 7] from both
 * registers of x covering the span and a blend on bit 3 of c_k chooses one,
 * so the 8 matching inputs are gathered with the columns built once per span
 * and shared by all tokens.
 * Product order, per row and token: for each group g in order (bits 16: the
 * row), lane k of accumulator G_a adds d_k x[c_k] over the group's spans j
 * (counted from the group's first) with j mod 2 = a, in order (two
 * independent FMA chains); the ragged last span (cols % 16 columns, kc < 8
 * weights, d = +0 in lanes >= kc, pointed at x's zero padding) goes to G_0;
 * then G = G_0 + G_1 and A = fma(scale_g, G, A) (bits 16: A = G); finally
 * y = A's two 128-bit halves added, then lanes (0+2, 1+3), then those two.
 * Matches the reference to rounding.
 * Dequantization (fast path): per span the 8 values (times the scale:
 * s * (float)(q - z), one rounding as in the reference) are put in place
 * with sparse.h's expansion table, one byte of the span's keep mask
 * sum_k 2^c_k at a time; the other columns get +0. Bit-identical to the
 * reference.
 * Generic path (every other setting): each row is dequantized exactly
 * (lp_nm_dequant_cols) in chunks of m floor(512 / m) columns, and lane L of
 * A adds W_hat[c] x[c] for the chunk's columns c = c0 + 8 q + L in order,
 * chunk after chunk; y is reduced as above. Dequantization is the
 * reference's.
 */
#include "format/nm.h"

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

/* Lane k's column in a span: base_k + the field at bits [ib k, ib k + ib)
 * of the span's index bytes at p (at most 4 are read, none past end). */
AI __m256i span_cols(const uint8_t *p, const uint8_t *end, __m256i shift, __m256i fmask, __m256i base) {
    uint32_t u = 0;
    if (end - p >= 4) memcpy(&u, p, 4);
    else memcpy(&u, p, (size_t)(end - p)); /* the last bytes of the array */
    return _mm256_add_epi32(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)u), shift), fmask), base);
}

/* d for 8 values from their storage at p (bf16/f16: 8 halves; U8: 8 bytes;
 * U4: 4 bytes, the low nibble first): the 16-bit float, or (float)(q - z). */
AI __m256 load_d(const int VK, const void *p, __m256i zv) {
    switch (VK) {
    case LP_SV_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    case LP_SV_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    case LP_SV_U8:
        return _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)), zv));
    default: {
        uint32_t u;
        memcpy(&u, p, 4);
        const __m256i q = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)u),
                                                             _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                           _mm256_set1_epi32(15));
        return _mm256_cvtepi32_ps(_mm256_sub_epi32(q, zv));
    }
    }
}

/* Byte address and size of values i .. i + n - 1 in the store. */
AI const uint8_t *val_ptr(const lp_sparse_store *v, const int VK, int64_t i) {
    return VK <= LP_SV_F16 ? (const uint8_t *)(v->v16 + i) : VK == LP_SV_U8 ? v->codes + i : v->codes + i / 2;
}
AI size_t val_bytes(const int VK, int64_t n) {
    return VK <= LP_SV_F16 ? 2 * (size_t)n : VK == LP_SV_U8 ? (size_t)n : (size_t)(n + 1) / 2;
}

/* d for the kc < 8 values from i on: copied out (no read past the arrays),
 * lanes >= kc set to +0. */
AI __m256 tail_d(const lp_sparse_store *v, const int VK, int64_t i, int64_t kc, __m256i zv) {
    uint8_t tmp[16] = {0};
    memcpy(tmp, val_ptr(v, VK, i), val_bytes(VK, kc));
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)kc), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_and_ps(load_d(VK, tmp, zv), _mm256_castsi256_ps(live));
}

/* Rows are a few KB, too short for the hardware prefetcher to lock on
 * before the next begins: the kernels ask for the values LP_SPARSE_PF_VALUES
 * bytes and the indices LP_SPARSE_PF_INDEX bytes ahead (sparse.h). */
AI void prefetch(const lp_sparse_store *v, const int VK, int64_t i, const void *ix) {
    const char *p = VK <= LP_SV_F16 ? (const char *)(v->v16 + i) : (const char *)v->codes + (VK == LP_SV_U8 ? i : i / 2);
    _mm_prefetch(p + LP_SPARSE_PF_VALUES, _MM_HINT_T0);
    _mm_prefetch((const char *)ix + LP_SPARSE_PF_INDEX, _MM_HINT_T0);
}

typedef struct {
    __m256i shift, fmask, base;
    int64_t nspan, kc, sps; /* full spans of 16 columns, kept weights of the ragged span, spans per group */
} span_consts;

AI span_consts consts(const lp_nm *w) {
    int sh[8], bs[8];
    for (int k = 0; k < 8; k++) sh[k] = w->ib * k, bs[k] = w->m * (k / w->n);
    const lp_sparse_store *v = &w->v;
    span_consts c = {_mm256_loadu_si256((const __m256i *)sh), _mm256_set1_epi32((1 << w->ib) - 1),
                     _mm256_loadu_si256((const __m256i *)bs), w->cols / 16, (w->cols % 16) / 2, 0};
    c.sps = v->bits == 16 || v->group >= w->cols ? c.nspan + 1 : v->group / 16;
    return c;
}

/* The inputs of lane k: x[c_k] from the span's 16 inputs at xs. */
AI __m256 gather16(const float *xs, __m256i cols, __m256 hi) {
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(xs), cols),
                            _mm256_permutevar8x32_ps(_mm256_loadu_ps(xs + 8), cols), hi);
}

/* Accumulators per token (two independent FMA chains), the same for every T
 * so that a token's result does not depend on how many are computed with it. */
#define NACC 2

AI void rows_fast(const lp_nm *w, const int T, const int VK, const float *x, int64_t ldx, float *y, int64_t ldy,
                  int64_t r0, int64_t r1) {
    const lp_sparse_store *v = &w->v;
    const span_consts k = consts(w);
    const int ib = w->ib;
    const uint8_t *iend = w->idx + w->rows * w->ibytes;
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k.kc), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *ix = w->idx + r * w->ibytes;
        const int64_t v0 = r * w->kpr;
        __m256 acc[LP_NM_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
        for (int64_t g = 0; g < v->ngroups; g++) {
            const int64_t s0 = g * k.sps, s1 = s0 + k.sps < k.nspan ? s0 + k.sps : k.nspan;
            const __m256i zv = _mm256_set1_epi32(VK >= LP_SV_U8 ? v->zeros[r * v->ngroups + g] : 0);
            __m256 gs[LP_NM_MAX_T][NACC];
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) gs[t][0] = gs[t][1] = _mm256_setzero_ps();
            for (int64_t sp = s0; sp < s1; sp += NACC)
#pragma GCC unroll 2
                for (int a = 0; a < NACC; a++) {
                    if (a > 0 && sp + a >= s1) break;
                    const __m256i cols = span_cols(ix + (sp + a) * ib, iend, k.shift, k.fmask, k.base);
                    const __m256 hi = _mm256_castsi256_ps(_mm256_slli_epi32(cols, 28));
                    const __m256 d = load_d(VK, val_ptr(v, VK, v0 + 8 * (sp + a)), zv);
                    prefetch(v, VK, v0 + 8 * (sp + a), ix + (sp + a) * ib);
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++)
                        gs[t][a] = _mm256_fmadd_ps(d, gather16(x + t * ldx + 16 * (sp + a), cols, hi), gs[t][a]);
                }
            if (g == v->ngroups - 1 && k.kc) { /* the ragged last span, into accumulator 0 */
                const int64_t sp = k.nspan;
                __m256i cols = span_cols(ix + sp * ib, iend, k.shift, k.fmask, k.base);
                /* lanes >= kc: the bytes past the row's fields; point them at x's zero padding */
                cols = _mm256_add_epi32(_mm256_and_si256(_mm256_sub_epi32(cols, k.base), live), k.base);
                const __m256 hi = _mm256_castsi256_ps(_mm256_slli_epi32(cols, 28));
                const __m256 d = tail_d(v, VK, v0 + 8 * sp, k.kc, zv);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++)
                    gs[t][0] = _mm256_fmadd_ps(d, gather16(x + t * ldx + 16 * sp, cols, hi), gs[t][0]);
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

/* The generic path: exact dequantized chunks, then an 8-lane dot product. */
AI void rows_generic(const lp_nm *w, const int T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    float buf[512];
    const int64_t ch = w->m * (512 / w->m);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t r = r0; r < r1; r++) {
        __m256 acc[LP_NM_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
        for (int64_t c0 = 0; c0 < w->cols; c0 += ch) {
            const int64_t nc = w->cols - c0 < ch ? w->cols - c0 : ch;
            lp_nm_dequant_cols(w, r, c0, c0 + nc, buf);
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

static void fast_bf16(const lp_nm *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                      int64_t r1) {
    BY_T(rows_fast, LP_SV_BF16, x, ldx, y, ldy, r0, r1)
}
static void fast_f16(const lp_nm *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    BY_T(rows_fast, LP_SV_F16, x, ldx, y, ldy, r0, r1)
}
static void fast_u8(const lp_nm *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                    int64_t r1) {
    BY_T(rows_fast, LP_SV_U8, x, ldx, y, ldy, r0, r1)
}
static void fast_u4(const lp_nm *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                    int64_t r1) {
    BY_T(rows_fast, LP_SV_U4, x, ldx, y, ldy, r0, r1)
}

void lp_nm_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    const lp_nm *w = w_;
    if (!w->fast) {
        BY_T(rows_generic, x, ldx, y, ldy, r0, r1)
        return;
    }
    switch (w->v.kind) {
    case LP_SV_BF16: fast_bf16(w, T, x, ldx, y, ldy, r0, r1); break;
    case LP_SV_F16: fast_f16(w, T, x, ldx, y, ldy, r0, r1); break;
    case LP_SV_U8: fast_u8(w, T, x, ldx, y, ldy, r0, r1); break;
    default: fast_u4(w, T, x, ldx, y, ldy, r0, r1); break;
    }
}

/* 8 columns from the next values of wv (table entry e, offset by the values
 * of the byte before), +0 where not kept; nc of them stored at o. */
AI void put8(__m256 wv, uint32_t byte, int before, float *o, int64_t nc) {
    const __m256i e =
        _mm256_add_epi32(_mm256_load_si256((const __m256i *)lp_sparse_expand8[byte]), _mm256_set1_epi32(before));
    const __m256 v = _mm256_blendv_ps(_mm256_setzero_ps(), _mm256_permutevar8x32_ps(wv, e), _mm256_castsi256_ps(e));
    if (nc >= 8) _mm256_storeu_ps(o, v);
    else if (nc > 0)
        _mm256_maskstore_ps(
            o, _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nc), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), v);
}

/* One span's dequantized 16 columns into o (nc <= 16 of them stored). */
AI void span_out(__m256 wv, __m256i cols, __m256i live, float *o, int64_t nc) {
    __m256i b = _mm256_and_si256(_mm256_sllv_epi32(_mm256_set1_epi32(1), cols), live);
    b = _mm256_or_si256(b, _mm256_permute2x128_si256(b, b, 1));
    b = _mm256_or_si256(b, _mm256_shuffle_epi32(b, 0x4e));
    b = _mm256_or_si256(b, _mm256_shuffle_epi32(b, 0xb1));
    const uint32_t keep = (uint32_t)_mm256_cvtsi256_si32(b);
    put8(wv, keep & 0xffu, 0, o, nc);
    put8(wv, keep >> 8, __builtin_popcount(keep & 0xffu), o + 8, nc - 8);
}

AI void dequant_fast(const lp_nm *w, const int VK, int64_t r0, int64_t r1, float *out) {
    const lp_sparse_store *v = &w->v;
    const span_consts k = consts(w);
    const int ib = w->ib;
    const uint8_t *iend = w->idx + w->rows * w->ibytes;
    const __m256i all = _mm256_set1_epi32(-1);
    const __m256i live = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k.kc), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *ix = w->idx + r * w->ibytes;
        const int64_t v0 = r * w->kpr;
        float *o = out + (r - r0) * w->cols;
        for (int64_t g = 0; g < v->ngroups; g++) {
            const int64_t s0 = g * k.sps, s1 = s0 + k.sps < k.nspan ? s0 + k.sps : k.nspan;
            const __m256i zv = _mm256_set1_epi32(VK >= LP_SV_U8 ? v->zeros[r * v->ngroups + g] : 0);
            const __m256 s = _mm256_set1_ps(VK >= LP_SV_U8 ? lp_f16_to_f32(v->scales[r * v->ngroups + g]) : 1.0f);
            for (int64_t sp = s0; sp < s1; sp++) {
                const __m256i cols = span_cols(ix + sp * ib, iend, k.shift, k.fmask, k.base);
                __m256 d = load_d(VK, val_ptr(v, VK, v0 + 8 * sp), zv);
                if (VK >= LP_SV_U8) d = _mm256_mul_ps(s, d);
                span_out(d, cols, all, o + 16 * sp, 16);
            }
            if (g == v->ngroups - 1 && k.kc) {
                const int64_t sp = k.nspan;
                const __m256i cols = span_cols(ix + sp * ib, iend, k.shift, k.fmask, k.base);
                __m256 d = tail_d(v, VK, v0 + 8 * sp, k.kc, zv);
                if (VK >= LP_SV_U8) d = _mm256_mul_ps(s, d);
                span_out(d, cols, live, o + 16 * sp, w->cols % 16);
            }
        }
    }
}

void lp_nm_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_nm *w = w_;
    if (!w->fast) {
        lp_nm_dequant_ref(w, r0, r1, out);
        return;
    }
    switch (w->v.kind) {
    case LP_SV_BF16: dequant_fast(w, LP_SV_BF16, r0, r1, out); break;
    case LP_SV_F16: dequant_fast(w, LP_SV_F16, r0, r1, out); break;
    case LP_SV_U8: dequant_fast(w, LP_SV_U8, r0, r1, out); break;
    default: dequant_fast(w, LP_SV_U4, r0, r1, out); break;
    }
}
