/*
 * binary_avx512.c - AVX-512 kernels of the binary format (binary.h).
 *
 * Values: a row is walked word by word (32 columns, two halves of 16 lanes);
 * each plane's 32-bit word is a lane mask.
 *   Mean mode: each (row, block) gets a 16-entry f32 table, entry
 *     idx = s0 | b1 << 1 | b2 << 2 | sal << 3, computed in 16 lanes at once
 *     as (S0 A0 + S1 A1) + MU with per-lane signs S0, S1 = +-1 and the
 *     parameters A0, A1, MU picked from the block's converted f16 parameters
 *     by vpermps (A1 = -0 with S1 = +1 for the other columns, which adds
 *     nothing, not even to a -0): lp_binary_value_at's f32 expressions, whose
 *     products are exact (a sign), so every entry is bit-identical to it.
 *     A word's 32 indices are built as bytes (a masked move and masked adds
 *     with 32-bit masks), widened to two vectors of 16 dwords, and looked up
 *     with one vpermps per 16 weights.
 *   Row-column mode: per 16 columns the f16 column scales are converted,
 *     multiplied by the (row, block)'s broadcast row scale of the lane's group
 *     (r c first, as the definition), the group picked by a masked blend, the
 *     sign applied by a masked XOR with 0x80000000 where the sign bit is 0
 *     (exact),
 *     and for salient lanes the two planes' terms added: the definition's
 *     operations in its order, so bit-identical again.
 *   b2: the bits of the compact per-row plane that belong to a word are a
 *     32-bit window at the row's running salient count; vpexpandd spreads
 *     them over the word's salient lanes (no pdep: the dispatcher does not
 *     check BMI2); a 256-entry table counts the salient columns of each half
 *     (no popcnt either).
 *   Held weights (PB-LLM): the codes of a half are consecutive in `codes`
 *     (`codes16`): hbits 8: a masked byte load, widened and spread over the
 *     held lanes by vpexpandd, converted and computed as S (code - Z) in
 *     lp_binary_value_at's order; hbits 16: a masked load of f16 values,
 *     converted by vcvtph2ps (exact, as lp_f16_to_f32) and spread by
 *     vexpandps; either then blended into the half's values.
 * Product: order of the sum, per row and token: lane L of A0 adds columns
 *   32k + L and lane L of A1 columns 32k + 16 + L, each term v * x by FMA,
 *   for words k = 0, 1, ... in order; then y = _mm512_reduce_add_ps(A0 + A1)
 *   (a fixed tree). Matches the reference to rounding (another summation
 *   order); every token's sum is independent of the others.
 * Dequantization: the same values stored: bit-identical to
 *   lp_binary_value_at.
 */
#include "format/binary.h"

#include <immintrin.h>

/* POP8[b]: the number of set bits of b. */
#define P2(n) n, n + 1, n + 1, n + 2
#define P4(n) P2(n), P2(n + 1), P2(n + 1), P2(n + 2)
#define P6(n) P4(n), P4(n + 1), P4(n + 1), P4(n + 2)
static const uint8_t POP8[256] = {P6(0), P6(1), P6(1), P6(2)};

static inline int pop16(uint32_t v) { return POP8[v & 0xffu] + POP8[(v >> 8) & 0xffu]; }

/* Mean mode: where each of the 16 table entries takes its parameters. */
typedef struct {
    __m512i ia0, ia1, imu; /* index into the block's parameters (15: -0) */
    __m512 s0, s1;         /* +-1 */
} lanes16;

static void make_lanes(const lp_binary *w, lanes16 *L) {
    int32_t a0[16], a1[16], mu[16];
    float s0[16], s1[16];
    for (int i = 0; i < 16; i++) {
        const int bs0 = i & 1, b1 = (i >> 1) & 1, b2 = (i >> 2) & 1, sal = i >> 3;
        s0[i] = bs0 ? 1.0f : -1.0f;
        if (sal && w->ngs) { /* (s0 a0 + s1 a1) + mu of salient group gs */
            const int gs = w->ngs == 2 ? b2 : 0;
            mu[i] = 3 * gs, a0[i] = 3 * gs + 1, a1[i] = 3 * gs + 2, s1[i] = b1 ? 1.0f : -1.0f;
        } else { /* s0 a + mu of group gn; lanes with b2 set are never looked up */
            const int gn = w->ngn == 2 ? b1 : 0, q = 3 * w->ngs + 2 * gn;
            mu[i] = q, a0[i] = q + 1, a1[i] = 15, s1[i] = 1.0f;
        }
    }
    L->ia0 = _mm512_loadu_si512(a0);
    L->ia1 = _mm512_loadu_si512(a1);
    L->imu = _mm512_loadu_si512(mu);
    L->s0 = _mm512_loadu_ps(s0);
    L->s1 = _mm512_loadu_ps(s1);
}

/* The parameters of one (row, block), ready for its words. */
typedef struct {
    __m512 tab;          /* mean mode: the 16 values */
    __m512 rs[2][2];     /* rc: salient group gs, plane p: r broadcast */
    __m512 rn[2];        /* rc: other columns' group gn: r broadcast */
} blockp;

static inline __attribute__((always_inline)) void block_params(const lp_binary *w, const lanes16 *L, int64_t r,
                                                               int64_t j, const int RC, const int NGS, blockp *B) {
    const uint16_t *P = lp_binary_rp(w, r, j);
    if (!RC) {
        /* npr <= 10 parameters; the masked load reads no further */
        __m512 p = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((__mmask16)((1u << w->npr) - 1u), P));
        p = _mm512_mask_mov_ps(p, (__mmask16)0x8000, _mm512_set1_ps(-0.0f));
        const __m512 a0 = _mm512_permutexvar_ps(L->ia0, p), a1 = _mm512_permutexvar_ps(L->ia1, p);
        const __m512 mu = _mm512_permutexvar_ps(L->imu, p);
        B->tab = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(L->s0, a0), _mm512_mul_ps(L->s1, a1)), mu);
        return;
    }
    for (int g = 0; g < NGS; g++)
        for (int p = 0; p < 2; p++) B->rs[g][p] = _mm512_set1_ps(_cvtsh_ss(P[2 * g + p]));
    for (int g = 0; g < 2; g++) B->rn[g] = _mm512_set1_ps(_cvtsh_ss(P[2 * NGS + (g < w->ngn ? g : 0)]));
}

/* 32 bits of the row's compact b2 plane (words2 words) from bit o on. */
static inline uint32_t b2_window(const uint32_t *b2, int64_t words2, int64_t o) {
    const int64_t q = o >> 5;
    uint64_t v = b2[q];
    if (q + 1 < words2) v |= (uint64_t)b2[q + 1] << 32;
    return (uint32_t)(v >> (o & 31));
}

/* Column scale vector k at columns c .. c + 15, in f32. */
static inline __m512 colscale(const lp_binary *w, int k, int64_t c) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w->cp + (int64_t)k * w->cols + c)));
}

/* v negated (its sign bit flipped: exact) in the lanes of m. */
static inline __m512 neg(__m512 v, __mmask16 m) {
    return _mm512_mask_xor_ps(v, m, v, _mm512_castsi512_ps(_mm512_set1_epi32((int)0x80000000u)));
}

/* Row-column mode: the 16 values at columns c .. c + 15 whose plane bits
 * are the masks. */
static inline __attribute__((always_inline)) __m512 rc_values16(const lp_binary *w, const blockp *B, int64_t c,
                                                                __mmask16 s0, __mmask16 b1, __mmask16 b2,
                                                                __mmask16 sal, const int NGS) {
    /* other columns: s0 (r_gn c_gn) */
    __m512 pn = _mm512_mul_ps(B->rn[0], colscale(w, 2 * NGS, c));
    if (w->ngn == 2) pn = _mm512_mask_blend_ps(b1, pn, _mm512_mul_ps(B->rn[1], colscale(w, 2 * NGS + 1, c)));
    __m512 v = neg(pn, (__mmask16)~s0);
    if (NGS) { /* salient: s0 (r0 c0) + s1 (r1 c1) of group gs; no branch on the bits (they are random) */
        __m512 p0 = _mm512_mul_ps(B->rs[0][0], colscale(w, 0, c));
        __m512 p1 = _mm512_mul_ps(B->rs[0][1], colscale(w, 1, c));
        if (NGS == 2) {
            p0 = _mm512_mask_blend_ps(b2, p0, _mm512_mul_ps(B->rs[1][0], colscale(w, 2, c)));
            p1 = _mm512_mask_blend_ps(b2, p1, _mm512_mul_ps(B->rs[1][1], colscale(w, 3, c)));
        }
        const __m512 vs = _mm512_add_ps(neg(p0, (__mmask16)~s0), neg(p1, (__mmask16)~b1));
        v = _mm512_mask_blend_ps(sal, v, vs);
    }
    return v;
}

/* One row's planes and running counts. */
typedef struct {
    const uint32_t *s0, *b1, *b2, *hm;
    int64_t o; /* salient columns walked: the next bit of b2 */
    int64_t h; /* held weights walked: the next code */
    __m512 S, Z; /* the row's grid (hbits 8) */
} rowp;

static inline void row_start(const lp_binary *w, int64_t r, rowp *R) {
    R->s0 = w->s0 + r * w->words;
    R->b1 = w->b1 ? w->b1 + r * w->words : NULL;
    R->b2 = w->ngs == 2 ? w->b2 + r * w->words2 : NULL;
    R->hm = w->held ? w->hmask + r * w->words : NULL;
    R->o = 0;
    R->h = w->held ? w->hoff[r] : 0;
    R->S = _mm512_set1_ps(w->hq ? w->hq[2 * r] : 0.0f); /* hq: held, hbits 8 */
    R->Z = _mm512_set1_ps(w->hq ? w->hq[2 * r + 1] : 0.0f);
}

/* The held values of n consecutive codes from p spread over the lanes of m:
 * S (code - Z), as lp_binary_value_at computes it. */
static inline __m512 held16(const rowp *R, const uint8_t *p, int n, __mmask16 m) {
    const __m128i q = _mm_maskz_loadu_epi8((__mmask16)((1u << n) - 1u), p);
    const __m512 f = _mm512_cvtepi32_ps(_mm512_maskz_expand_epi32(m, _mm512_cvtepu8_epi32(q)));
    return _mm512_mul_ps(R->S, _mm512_sub_ps(f, R->Z));
}

/* The held values of n consecutive f16 values from p spread over the lanes
 * of m (hbits 16): converted, as lp_binary_value_at does. */
static inline __m512 held16_f16(const uint16_t *p, int n, __mmask16 m) {
    const __m256i q = _mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1u), p);
    return _mm512_maskz_expand_ps(m, _mm512_cvtph_ps(q));
}

/* Word k's 32 values as two halves. */
static inline __attribute__((always_inline)) void word_values(const lp_binary *w, const blockp *B, rowp *R, int64_t k,
                                                              const int RC, const int NGS, __m512 *v0, __m512 *v1) {
    const uint32_t s = R->s0[k], b1 = R->b1 ? R->b1[k] : 0u, sal = NGS ? w->colmask[k] : 0u;
    uint32_t b2 = 0; /* RC: the b2 bits at the word's salient columns */
    __m512i e0 = _mm512_setzero_si512(), e1 = e0; /* mean: 4 at salient lanes whose b2 is 1 */
    if (NGS == 2 && sal) {
        const uint32_t win = b2_window(R->b2, w->words2, R->o);
        const int n0 = pop16(sal);
        const __m512i four = _mm512_set1_epi32(4);
        e0 = _mm512_maskz_expand_epi32((__mmask16)sal, _mm512_maskz_mov_epi32((__mmask16)win, four));
        e1 = _mm512_maskz_expand_epi32((__mmask16)(sal >> 16), _mm512_maskz_mov_epi32((__mmask16)(win >> n0), four));
        if (RC) b2 = _mm512_test_epi32_mask(e0, e0) | (uint32_t)_mm512_test_epi32_mask(e1, e1) << 16;
        R->o += n0 + pop16(sal >> 16);
    }
    if (!RC) { /* the word's 32 indices as bytes, then two vectors of dwords */
        __m256i ib = _mm256_maskz_mov_epi8((__mmask32)s, _mm256_set1_epi8(1));
        ib = _mm256_mask_add_epi8(ib, (__mmask32)b1, ib, _mm256_set1_epi8(2));
        if (NGS) ib = _mm256_mask_add_epi8(ib, (__mmask32)sal, ib, _mm256_set1_epi8(8));
        const __m512i i0 = _mm512_or_si512(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(ib)), e0);
        const __m512i i1 = _mm512_or_si512(_mm512_cvtepu8_epi32(_mm256_extracti128_si256(ib, 1)), e1);
        *v0 = _mm512_permutexvar_ps(i0, B->tab);
        *v1 = _mm512_permutexvar_ps(i1, B->tab);
    } else {
        *v0 = rc_values16(w, B, 32 * k, (__mmask16)s, (__mmask16)b1, (__mmask16)b2, (__mmask16)sal, NGS);
        *v1 = rc_values16(w, B, 32 * k + 16, (__mmask16)(s >> 16), (__mmask16)(b1 >> 16), (__mmask16)(b2 >> 16),
                          (__mmask16)(sal >> 16), NGS);
    }
    const uint32_t hw = R->hm ? R->hm[k] : 0u;
    if (hw) { /* held weights: their codes (values) are the next ones */
        const int n0 = pop16(hw), n1 = pop16(hw >> 16);
        if (w->hbits == 16) {
            const uint16_t *p = w->codes16 + R->h;
            *v0 = _mm512_mask_mov_ps(*v0, (__mmask16)hw, held16_f16(p, n0, (__mmask16)hw));
            *v1 = _mm512_mask_mov_ps(*v1, (__mmask16)(hw >> 16), held16_f16(p + n0, n1, (__mmask16)(hw >> 16)));
        } else {
            const uint8_t *p = w->codes + R->h;
            *v0 = _mm512_mask_mov_ps(*v0, (__mmask16)hw, held16(R, p, n0, (__mmask16)hw));
            *v1 = _mm512_mask_mov_ps(*v1, (__mmask16)(hw >> 16), held16(R, p + n0, n1, (__mmask16)(hw >> 16)));
        }
        R->h += n0 + n1;
    }
}

/* The body with T, RC and NGS known at compile time. */
static inline __attribute__((always_inline)) void rows_impl(const lp_binary *w, const int T, const int RC,
                                                            const int NGS, const float *x, int64_t ldx, float *y,
                                                            int64_t ldy, int64_t r0, int64_t r1) {
    lanes16 L;
    if (!RC) make_lanes(w, &L);
    const int64_t bw = w->block / 32;
    for (int64_t r = r0; r < r1; r++) {
        rowp R;
        row_start(w, r, &R);
        __m512 a0[LP_BINARY_MAX_T], a1[LP_BINARY_MAX_T];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) a0[t] = a1[t] = _mm512_setzero_ps();
        for (int64_t j = 0; j < w->nblocks; j++) {
            blockp B;
            block_params(w, &L, r, j, RC, NGS, &B);
            for (int64_t k = j * bw; k < (j + 1) * bw; k++) {
                __m512 v0, v1;
                word_values(w, &B, &R, k, RC, NGS, &v0, &v1);
                const float *xk = x + 32 * k;
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    a0[t] = _mm512_fmadd_ps(v0, _mm512_loadu_ps(xk + t * ldx), a0[t]);
                    a1[t] = _mm512_fmadd_ps(v1, _mm512_loadu_ps(xk + t * ldx + 16), a1[t]);
                }
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(_mm512_add_ps(a0[t], a1[t]));
    }
}

#define BY_MODE(T_)                                                                     \
    switch ((w->rc ? 3 : 0) + w->ngs) {                                                 \
    case 0: rows_impl(w, T_, 0, 0, x, ldx, y, ldy, r0, r1); break;                      \
    case 1: rows_impl(w, T_, 0, 1, x, ldx, y, ldy, r0, r1); break;                      \
    case 2: rows_impl(w, T_, 0, 2, x, ldx, y, ldy, r0, r1); break;                      \
    case 3: rows_impl(w, T_, 1, 0, x, ldx, y, ldy, r0, r1); break;                      \
    case 4: rows_impl(w, T_, 1, 1, x, ldx, y, ldy, r0, r1); break;                      \
    default: rows_impl(w, T_, 1, 2, x, ldx, y, ldy, r0, r1); break;                     \
    }

void lp_binary_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                           int64_t r0, int64_t r1) {
    const lp_binary *w = w_;
    switch (T) {
    case 1: BY_MODE(1); break;
    case 2: BY_MODE(2); break;
    case 3: BY_MODE(3); break;
    default: BY_MODE(4); break;
    }
}

static inline __attribute__((always_inline)) void dequant_impl(const lp_binary *w, const int RC, const int NGS,
                                                               int64_t r0, int64_t r1, float *out) {
    lanes16 L;
    if (!RC) make_lanes(w, &L);
    const int64_t bw = w->block / 32;
    for (int64_t r = r0; r < r1; r++) {
        rowp R;
        row_start(w, r, &R);
        float *o = out + (r - r0) * w->cols;
        for (int64_t j = 0; j < w->nblocks; j++) {
            blockp B;
            block_params(w, &L, r, j, RC, NGS, &B);
            for (int64_t k = j * bw; k < (j + 1) * bw; k++) {
                __m512 v0, v1;
                word_values(w, &B, &R, k, RC, NGS, &v0, &v1);
                _mm512_storeu_ps(o + 32 * k, v0);
                _mm512_storeu_ps(o + 32 * k + 16, v1);
            }
        }
    }
}

void lp_binary_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out) {
    const lp_binary *w = w_;
    switch ((w->rc ? 3 : 0) + w->ngs) {
    case 0: dequant_impl(w, 0, 0, r0, r1, out); break;
    case 1: dequant_impl(w, 0, 1, r0, r1, out); break;
    case 2: dequant_impl(w, 0, 2, r0, r1, out); break;
    case 3: dequant_impl(w, 1, 0, r0, r1, out); break;
    case 4: dequant_impl(w, 1, 1, r0, r1, out); break;
    default: dequant_impl(w, 1, 2, r0, r1, out); break;
    }
}
