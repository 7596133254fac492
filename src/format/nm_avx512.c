/*
 * nm_avx512.c - AVX-512 kernels of the N:M format (nm.h).
 *
 * Fast path (nm.h: half patterns 1:2, 2:4, 4:8, 8:16 with bf16, f16, 8- or
 * 4-bit values): a span of 32 columns holds exactly 16 kept weights, whose
 * values are 16 consecutive stored values (one register) and whose index
 * fields are the next 2 ib bytes of the row. Lane k's column in the span is
 * base_k + field_k (base_k = m floor(k / n)), so one vpermt2ps of the two
 * registers of x covering the span gathers the 16 matching inputs; the
 * lanes' columns are built once per span and shared by all tokens.
 * Product order, per row and token: for each group g in order (bits 16: the
 * row), lane k of accumulator G_a adds d_k x[c_k] over the group's spans j
 * (counted from the group's first) with j mod 2 = a, in order (two
 * independent FMA chains), the ragged last span (cols % 32 columns, kc < 16
 * weights) into G_0 with lanes >= kc masked off; then G = G_0 + G_1 and
 * A = fma(scale_g, G, A) (bits 16: A = G); finally y =
 * _mm512_reduce_add_ps(A). Matches the reference to rounding.
 * Dequantization (fast path): per span the 16 values (times the scale:
 * s * (float)(q - z), one rounding as in the reference) are expanded into
 * the span's 32 columns with the keep mask sum_k 2^(base_k + field_k)
 * (the columns increase with k, so vexpandps puts each value in place);
 * the other columns get +0. Bit-identical to the reference.
 * Generic path (every other setting): each row is dequantized exactly
 * (lp_nm_dequant_cols) in chunks of m floor(512 / m) columns, and lane L of
 * A adds W_hat[c] x[c] for the chunk's columns c = c0 + 16 q + L in order,
 * chunk after chunk; y = _mm512_reduce_add_ps(A). Dequantization is the
 * reference's.
 */
#include "format/nm.h"

#include "core/half.h"

#include <immintrin.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* Lane k's column in a span: base_k + the field at bits [ib k, ib k + ib) of
 * the span's index bytes at p (at most 8 are read, none past end). Lanes
 * 0..7 shift the low 32 bits, lanes 8..15 the 32 bits from bit 8 ib on. */
AI __m512i span_cols(const uint8_t *p, const uint8_t *end, int ib, __m512i shift, __m512i fmask, __m512i base) {
    uint64_t u = 0;
    if (end - p >= 8) memcpy(&u, p, 8);
    else memcpy(&u, p, (size_t)(end - p)); /* the last bytes of the array */
    const __m512i lo = _mm512_set1_epi32((int)(uint32_t)u), hi = _mm512_set1_epi32((int)(uint32_t)(u >> (8 * ib)));
    const __m512i f = _mm512_and_si512(_mm512_srlv_epi32(_mm512_mask_blend_epi32(0xff00, lo, hi), shift), fmask);
    return _mm512_add_epi32(f, base);
}

/* 16 codes of 4 bits from 8 bytes (LSB-first: the low nibble first): each
 * byte widened into two lanes, shifted by 0 or 4, masked. */
AI __m512i unpack4(__m128i b) {
    const __m512i q = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));
    return _mm512_and_si512(_mm512_srlv_epi32(q, _mm512_set_epi32(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0)),
                            _mm512_set1_epi32(15));
}

/* d for the kept values i .. i + 15 (lanes outside km are loaded as 0 and
 * must be ignored): the 16-bit float, or (float)(q - z). */
AI __m512 span_d(const lp_sparse_store *v, const int VK, int64_t i, __m512i zv, const int full, __mmask16 km) {
    switch (VK) {
    case LP_SV_BF16: {
        const __m256i h =
            full ? _mm256_loadu_si256((const __m256i *)(v->v16 + i)) : _mm256_maskz_loadu_epi16(km, v->v16 + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case LP_SV_F16: {
        const __m256i h =
            full ? _mm256_loadu_si256((const __m256i *)(v->v16 + i)) : _mm256_maskz_loadu_epi16(km, v->v16 + i);
        return _mm512_cvtph_ps(h);
    }
    case LP_SV_U8: {
        const __m128i b =
            full ? _mm_loadu_si128((const __m128i *)(v->codes + i)) : _mm_maskz_loadu_epi8(km, v->codes + i);
        return _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(b), zv));
    }
    default: { /* LP_SV_U4: i is even (nm.h's fast-path condition) */
        const __m128i b =
            full ? _mm_loadl_epi64((const __m128i *)(v->codes + i / 2))
                 : _mm_maskz_loadu_epi8((__mmask16)((1u << ((_mm_popcnt_u32(km) + 1) / 2)) - 1u), v->codes + i / 2);
        return _mm512_cvtepi32_ps(_mm512_sub_epi32(unpack4(b), zv));
    }
    }
}

/* Rows are a few KB, too short for the hardware prefetcher to lock on
 * before the next begins: each span asks for the values LP_SPARSE_PF_VALUES
 * bytes and the indices LP_SPARSE_PF_INDEX bytes ahead (4096 x 11008, 2:4
 * bf16, one thread: 4.1 -> 2.0 ms per token). */
AI void prefetch(const lp_sparse_store *v, const int VK, int64_t i, const uint8_t *ix) {
    const char *p = VK <= LP_SV_F16 ? (const char *)(v->v16 + i) : (const char *)v->codes + (VK == LP_SV_U8 ? i : i / 2);
    _mm_prefetch(p + LP_SPARSE_PF_VALUES, _MM_HINT_T0);
    _mm_prefetch((const char *)ix + LP_SPARSE_PF_INDEX, _MM_HINT_T0);
}

/* Per-row constants of the fast path. */
typedef struct {
    __m512i shift, fmask, base;
    int64_t nspan, kc, sps; /* full spans, kept weights of the ragged span, spans per group */
} span_consts;

AI span_consts consts(const lp_nm *w) {
    int sh[16], bs[16];
    for (int k = 0; k < 16; k++) sh[k] = w->ib * (k % 8), bs[k] = w->m * (k / w->n);
    const lp_sparse_store *v = &w->v;
    span_consts c = {_mm512_loadu_si512(sh), _mm512_set1_epi32((1 << w->ib) - 1), _mm512_loadu_si512(bs),
                     w->cols / 32, (w->cols % 32) / 2, 0};
    c.sps = v->bits == 16 || v->group >= w->cols ? c.nspan + 1 : v->group / 32;
    return c;
}

/* Accumulators per token: with one, a token's FMAs would form a single
 * chain of 4-cycle latency. The same for every T, so that a token's result
 * does not depend on how many are computed with it. */
#define NACC 2

/* One span's 16 products per token t into gs[t * stride]. */
AI void span_fma(const int T, __m512 d, __m512i cols, const float *xs, int64_t ldx, __m512 *gs, int stride,
                 const int masked, __mmask16 km) {
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        const __m512 xk =
            _mm512_permutex2var_ps(_mm512_loadu_ps(xs + t * ldx), cols, _mm512_loadu_ps(xs + t * ldx + 16));
        gs[t * stride] =
            masked ? _mm512_mask3_fmadd_ps(d, xk, gs[t * stride], km) : _mm512_fmadd_ps(d, xk, gs[t * stride]);
    }
}

AI void rows_fast(const lp_nm *w, const int T, const int VK, const float *x, int64_t ldx, float *y, int64_t ldy,
                  int64_t r0, int64_t r1) {
    const lp_sparse_store *v = &w->v;
    const span_consts k = consts(w);
    const int ib = w->ib, A = NACC;
    const uint8_t *iend = w->idx + w->rows * w->ibytes;
    const __mmask16 km = (__mmask16)((1u << k.kc) - 1u);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *ix = w->idx + r * w->ibytes;
        const int64_t v0 = r * w->kpr;
        __m512 acc[LP_NM_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t g = 0; g < v->ngroups; g++) {
            const int64_t s0 = g * k.sps, s1 = s0 + k.sps < k.nspan ? s0 + k.sps : k.nspan;
            const __m512i zv = _mm512_set1_epi32(VK >= LP_SV_U8 ? v->zeros[r * v->ngroups + g] : 0);
            __m512 gs[LP_NM_MAX_T * NACC]; /* gs[t * A + a]: token t, accumulator a */
#pragma GCC unroll 16
            for (int j = 0; j < T * A; j++) gs[j] = _mm512_setzero_ps();
            for (int64_t sp = s0; sp < s1; sp += A)
#pragma GCC unroll 4
                for (int a = 0; a < A; a++) {
                    if (a > 0 && sp + a >= s1) break;
                    const __m512i cols = span_cols(ix + (sp + a) * 2 * ib, iend, ib, k.shift, k.fmask, k.base);
                    const __m512 d = span_d(v, VK, v0 + 16 * (sp + a), zv, 1, 0xffff);
                    prefetch(v, VK, v0 + 16 * (sp + a), ix + (sp + a) * 2 * ib);
                    span_fma(T, d, cols, x + 32 * (sp + a), ldx, gs + a, A, 0, 0xffff);
                }
            if (g == v->ngroups - 1 && k.kc) { /* the ragged last span, into accumulator 0 */
                const int64_t sp = k.nspan;
                const __m512i cols = span_cols(ix + sp * 2 * ib, iend, ib, k.shift, k.fmask, k.base);
                const __m512 d = span_d(v, VK, v0 + 16 * sp, zv, 0, km);
                span_fma(T, d, cols, x + 32 * sp, ldx, gs, A, 1, km);
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m512 *q = gs + t * A;
                const __m512 s = A == 2 ? _mm512_add_ps(q[0], q[1]) : q[0];
                acc[t] = VK <= LP_SV_F16
                             ? s
                             : _mm512_fmadd_ps(_mm512_set1_ps(lp_f16_to_f32(v->scales[r * v->ngroups + g])), s, acc[t]);
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[t]);
    }
}

/* The generic path: exact dequantized chunks, then a 16-lane dot product. */
AI void rows_generic(const lp_nm *w, const int T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                     int64_t r1) {
    float buf[512];
    const int64_t ch = w->m * (512 / w->m);
    for (int64_t r = r0; r < r1; r++) {
        __m512 acc[LP_NM_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
        for (int64_t c0 = 0; c0 < w->cols; c0 += ch) {
            const int64_t nc = w->cols - c0 < ch ? w->cols - c0 : ch;
            lp_nm_dequant_cols(w, r, c0, c0 + nc, buf);
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

void lp_nm_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
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

/* One span's dequantized 32 columns into o (nc <= 32 of them stored). */
AI void span_out(__m512 wv, __m512i cols, __mmask16 km, float *o, int64_t nc) {
    const uint32_t keep = (uint32_t)_mm512_mask_reduce_or_epi32(km, _mm512_sllv_epi32(_mm512_set1_epi32(1), cols));
    /* the first 16 columns hold 8 kept weights (16 is a multiple of m) */
    const __m512 lo = _mm512_maskz_expand_ps((__mmask16)(keep & 0xffffu), wv);
    const __m512 hi = _mm512_maskz_expand_ps((__mmask16)(keep >> 16), _mm512_shuffle_f32x4(wv, wv, 0xee));
    if (nc == 32) {
        _mm512_storeu_ps(o, lo);
        _mm512_storeu_ps(o + 16, hi);
    } else {
        _mm512_mask_storeu_ps(o, (__mmask16)(nc >= 16 ? 0xffffu : (1u << nc) - 1u), lo);
        if (nc > 16) _mm512_mask_storeu_ps(o + 16, (__mmask16)((1u << (nc - 16)) - 1u), hi);
    }
}

AI void dequant_fast(const lp_nm *w, const int VK, int64_t r0, int64_t r1, float *out) {
    const lp_sparse_store *v = &w->v;
    const span_consts k = consts(w);
    const int ib = w->ib;
    const uint8_t *iend = w->idx + w->rows * w->ibytes;
    const __mmask16 km = (__mmask16)((1u << k.kc) - 1u);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *ix = w->idx + r * w->ibytes;
        const int64_t v0 = r * w->kpr;
        float *o = out + (r - r0) * w->cols;
        for (int64_t g = 0; g < v->ngroups; g++) {
            const int64_t s0 = g * k.sps, s1 = s0 + k.sps < k.nspan ? s0 + k.sps : k.nspan;
            const __m512i zv = _mm512_set1_epi32(VK >= LP_SV_U8 ? v->zeros[r * v->ngroups + g] : 0);
            const __m512 s = _mm512_set1_ps(VK >= LP_SV_U8 ? lp_f16_to_f32(v->scales[r * v->ngroups + g]) : 1.0f);
            for (int64_t sp = s0; sp < s1; sp++) {
                const __m512i cols = span_cols(ix + sp * 2 * ib, iend, ib, k.shift, k.fmask, k.base);
                __m512 d = span_d(v, VK, v0 + 16 * sp, zv, 1, 0xffff);
                if (VK >= LP_SV_U8) d = _mm512_mul_ps(s, d);
                span_out(d, cols, 0xffff, o + 32 * sp, 32);
            }
            if (g == v->ngroups - 1 && k.kc) {
                const int64_t sp = k.nspan;
                const __m512i cols = span_cols(ix + sp * 2 * ib, iend, ib, k.shift, k.fmask, k.base);
                __m512 d = span_d(v, VK, v0 + 16 * sp, zv, 0, km);
                if (VK >= LP_SV_U8) d = _mm512_mul_ps(s, d);
                span_out(d, cols, km, o + 32 * sp, w->cols % 32);
            }
        }
    }
}

void lp_nm_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out) {
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
