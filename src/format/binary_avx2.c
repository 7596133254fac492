/*
 * binary_avx2.c - AVX2 kernels of the binary format (binary.h).
 *
 * Values: a row is walked word by word (32 columns), each word as four chunks
 * h of 8 lanes (columns 32k + 8h + L).
 *   Mean mode: each (row, block) gets a table of lp_binary_value_at's values,
 *     entries computed in 8 lanes at once as (S0 A0 + S1 A1) + MU with
 *     per-lane signs S0, S1 = +-1 and parameters A0, A1, MU picked from the
 *     block's converted f16 parameters (two permutes and a blend; A1 = -0
 *     with S1 = +1 for the other columns adds nothing): the definition's f32
 *     expressions with exact products, so bit-identical to it. With no second
 *     salient group (ngs <= 1) the table has 8 entries, idx = s0 | b1 << 1 |
 *     sal << 2, and a chunk's values are one vpermps; with ngs = 2 it has
 *     16, idx = s0 | b1 << 1 | b2 << 2 | sal << 3, as two 8-entry halves: two
 *     vpermps and a blend on the sal bit. A chunk's indices come from one
 *     32-bit word whose nibble L holds lane L's bits, built from the planes'
 *     bytes with a 256-entry spreading table (bit i -> bit 4i) and split
 *     over the lanes by one variable shift (vpermps reads the low 3 bits;
 *     a second shift puts the sal bit at the blend's sign position).
 *   Row-column mode: each plane's word is broadcast and shifted left by
 *     31 - (8h + L), putting column 8h + L's bit at the sign position; the
 *     f16 column scales are converted and multiplied by the (row, block)'s
 *     row scale of the lane's group (r c first, as the definition), the
 *     group picked by blendv, the sign applied by XOR with 0x80000000 where
 *     s0 (s1) is 0 (exact), and the two planes' terms added for salient lanes:
 *     the definition's operations in its order, so bit-identical.
 *   b2: the compact per-row plane is expanded into the word's salient column
 *     positions by a loop over the colmask word's set bits (no pdep: the
 *     dispatcher does not check BMI2, and it is slow on Zen 1/2).
 *   Held weights (PB-LLM): a chunk's held codes are the row's next ones:
 *     hbits 8: 8 bytes loaded, widened, moved to their lanes by vpermd with
 *     each lane's rank among the chunk's held bits (a 256-entry table of
 *     nibbles), converted and computed as S (code - Z) in
 *     lp_binary_value_at's order; hbits 16: 8 f16 values loaded, converted
 *     by vcvtph2ps (exact, as lp_f16_to_f32) and moved to their lanes by
 *     the same rank permute; either blended in where the hmask bit is set.
 * Product: order of the sum, per row and token: lane L of A0 adds columns
 *   32k + L, then 32k + 16 + L, and lane L of A1 columns 32k + 8 + L, then
 *   32k + 24 + L, each term v * x by FMA, for words k = 0, 1, ... in order;
 *   then s = A0 + A1, its two 128-bit halves added, then lanes (0+2, 1+3),
 *   then those two: y = s. Matches the reference to rounding (another
 *   summation order); every token's sum is independent of the others.
 * Dequantization: the same values stored: bit-identical to
 *   lp_binary_value_at.
 */
#include "format/binary.h"

#include <immintrin.h>

/* SPREAD4[b]: bit i of b moved to bit 4i. */
#define S4(b)                                                                                                  \
    (((b) & 1u) | ((b) & 2u) << 3 | ((b) & 4u) << 6 | ((b) & 8u) << 9 | ((b) & 16u) << 12 | ((b) & 32u) << 15 | \
     ((b) & 64u) << 18 | ((b) & 128u) << 21)
#define R4(b) S4(b), S4((b) + 1u), S4((b) + 2u), S4((b) + 3u)
#define R16(b) R4(b), R4((b) + 4u), R4((b) + 8u), R4((b) + 12u)
#define R64(b) R16(b), R16((b) + 16u), R16((b) + 32u), R16((b) + 48u)
static const uint32_t SPREAD4[256] = {R64(0u), R64(64u), R64(128u), R64(192u)};

/* RANK4[b]: nibble L = the number of set bits of b below bit L (where lane
 * L's code sits among a chunk's held codes); POP8[b]: all of them. */
#define C8(b) (((b) & 1u) + ((b) >> 1 & 1u) + ((b) >> 2 & 1u) + ((b) >> 3 & 1u) + ((b) >> 4 & 1u) + ((b) >> 5 & 1u) + \
               ((b) >> 6 & 1u) + ((b) >> 7 & 1u))
#define K4(b) \
    (C8((b) & 1u) << 4 | C8((b) & 3u) << 8 | C8((b) & 7u) << 12 | C8((b) & 15u) << 16 | C8((b) & 31u) << 20 | \
     C8((b) & 63u) << 24 | C8((b) & 127u) << 28)
#undef R4
#define R4(b) K4(b), K4((b) + 1u), K4((b) + 2u), K4((b) + 3u)
static const uint32_t RANK4[256] = {R64(0u), R64(64u), R64(128u), R64(192u)};
#undef R4
#define R4(b) C8(b), C8((b) + 1u), C8((b) + 2u), C8((b) + 3u)
static const uint8_t POP8[256] = {R64(0u), R64(64u), R64(128u), R64(192u)};

/* Mean mode: where the entries of table half n (0, or 1 when ngs = 2) take
 * their parameters. */
typedef struct {
    __m256i ia0[2], ia1[2], imu[2]; /* index into the block's parameters (15: -0) */
    __m256 s0[2], s1[2];            /* +-1 */
} lanes8;

static void make_lanes(const lp_binary *w, lanes8 *L) {
    int32_t a0[16], a1[16], mu[16];
    float s0[16], s1[16];
    for (int i = 0; i < 16; i++) {
        /* the index's bits: s0 b1 b2 sal with ngs = 2, else s0 b1 sal (8 entries) */
        const int bs0 = i & 1, b1 = (i >> 1) & 1;
        const int b2 = w->ngs == 2 ? (i >> 2) & 1 : 0, sal = w->ngs == 2 ? i >> 3 : (i >> 2) & 1;
        s0[i] = bs0 ? 1.0f : -1.0f;
        if (sal && w->ngs) { /* (s0 a0 + s1 a1) + mu of salient group gs */
            const int gs = w->ngs == 2 ? b2 : 0;
            mu[i] = 3 * gs, a0[i] = 3 * gs + 1, a1[i] = 3 * gs + 2, s1[i] = b1 ? 1.0f : -1.0f;
        } else { /* s0 a + mu of group gn */
            const int gn = w->ngn == 2 ? b1 : 0, q = 3 * w->ngs + 2 * gn;
            mu[i] = q, a0[i] = q + 1, a1[i] = 15, s1[i] = 1.0f;
        }
    }
    for (int n = 0; n < 2; n++) {
        L->ia0[n] = _mm256_loadu_si256((const __m256i *)(a0 + 8 * n));
        L->ia1[n] = _mm256_loadu_si256((const __m256i *)(a1 + 8 * n));
        L->imu[n] = _mm256_loadu_si256((const __m256i *)(mu + 8 * n));
        L->s0[n] = _mm256_loadu_ps(s0 + 8 * n);
        L->s1[n] = _mm256_loadu_ps(s1 + 8 * n);
    }
}

/* The parameters of one (row, block), ready for its words. */
typedef struct {
    __m256 tab[2];   /* mean mode: table halves (one when ngs <= 1) */
    __m256 rs[2][2]; /* rc: salient group gs, plane p: r broadcast */
    __m256 rn[2];    /* rc: other columns' group gn: r broadcast */
} blockp;

/* Entry I (0..15) of the 16 parameters lo | hi, per lane. */
static inline __m256 pick(__m256 lo, __m256 hi, __m256i I) {
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, I), _mm256_permutevar8x32_ps(hi, I),
                            _mm256_castsi256_ps(_mm256_slli_epi32(I, 28)));
}

static inline __attribute__((always_inline)) void block_params(const lp_binary *w, const lanes8 *L, int64_t r,
                                                               int64_t j, const int RC, const int NGS, blockp *B) {
    const uint16_t *P = lp_binary_rp(w, r, j);
    if (!RC) {
        /* 16 f16 from P (npr <= 10 are used); past the end of rp, from a copy */
        uint16_t tmp[16] = {0};
        const uint16_t *src = P;
        if ((P - w->rp) + 16 > w->rows * w->nblocks * w->npr) {
            for (int i = 0; i < w->npr; i++) tmp[i] = P[i];
            src = tmp;
        }
        const __m256 lo = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)src));
        const __m256 hi = _mm256_blend_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 8))),
                                          _mm256_set1_ps(-0.0f), 0x80);
        for (int n = 0; n < (NGS == 2 ? 2 : 1); n++) {
            const __m256 a0 = pick(lo, hi, L->ia0[n]), a1 = pick(lo, hi, L->ia1[n]), mu = pick(lo, hi, L->imu[n]);
            B->tab[n] = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(L->s0[n], a0), _mm256_mul_ps(L->s1[n], a1)), mu);
        }
        return;
    }
    for (int g = 0; g < NGS; g++)
        for (int p = 0; p < 2; p++) B->rs[g][p] = _mm256_set1_ps(_cvtsh_ss(P[2 * g + p]));
    for (int g = 0; g < 2; g++) B->rn[g] = _mm256_set1_ps(_cvtsh_ss(P[2 * NGS + (g < w->ngn ? g : 0)]));
}

/* Bits of the row's compact b2 plane from *o on, deposited at the set bits
 * of m (salient columns of this word) in order; *o advances past them. */
static inline uint32_t expand_b2(uint32_t m, const uint32_t *b2, int64_t *o) {
    uint32_t v = 0;
    int64_t p = *o;
    for (; m; m &= m - 1, p++) v |= ((b2[p >> 5] >> (p & 31)) & 1u) << __builtin_ctz(m);
    *o = p;
    return v;
}

/* Column scale vector k at columns c .. c + 7, in f32. */
static inline __m256 colscale(const lp_binary *w, int k, int64_t c) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w->cp + (int64_t)k * w->cols + c)));
}

/* One word's planes, broadcast (rc mode and held weights). */
typedef struct {
    uint32_t s0, b1, b2, sal, hm;
} wordbits;

/* The 8 values of chunk h of a word (held lanes not cleared yet). */
static inline __attribute__((always_inline)) __m256 values8(const lp_binary *w, const blockp *B, int64_t k, int h,
                                                            const wordbits *b, const int RC, const int NGS) {
    const int sh = 8 * h;
    if (!RC) {
        uint32_t u = SPREAD4[(b->s0 >> sh) & 0xffu] | SPREAD4[(b->b1 >> sh) & 0xffu] << 1;
        if (NGS == 2) u |= SPREAD4[(b->b2 >> sh) & 0xffu] << 2 | SPREAD4[(b->sal >> sh) & 0xffu] << 3;
        else if (NGS) u |= SPREAD4[(b->sal >> sh) & 0xffu] << 2;
        const __m256i U = _mm256_set1_epi32((int)u);
        const __m256i idx = _mm256_srlv_epi32(U, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
        if (NGS < 2) return _mm256_permutevar8x32_ps(B->tab[0], idx);
        const __m256 sal = _mm256_castsi256_ps(_mm256_sllv_epi32(U, _mm256_setr_epi32(28, 24, 20, 16, 12, 8, 4, 0)));
        return _mm256_blendv_ps(_mm256_permutevar8x32_ps(B->tab[0], idx), _mm256_permutevar8x32_ps(B->tab[1], idx),
                                sal);
    }
    /* rc: bit 8h + L of a word to the sign position of lane L */
    const __m256i shifts = _mm256_setr_epi32(31 - sh, 30 - sh, 29 - sh, 28 - sh, 27 - sh, 26 - sh, 25 - sh, 24 - sh);
    const __m256i sb = _mm256_set1_epi32((int)0x80000000u);
    const int64_t c = 32 * k + sh;
    const __m256i m0 = _mm256_sllv_epi32(_mm256_set1_epi32((int)b->s0), shifts);
    const __m256i m1 = _mm256_sllv_epi32(_mm256_set1_epi32((int)b->b1), shifts);
    const __m256 f0 = _mm256_castsi256_ps(_mm256_andnot_si256(m0, sb)); /* sign bit where s0 = 0 */
    __m256 pn = _mm256_mul_ps(B->rn[0], colscale(w, 2 * NGS, c));
    if (w->ngn == 2)
        pn = _mm256_blendv_ps(pn, _mm256_mul_ps(B->rn[1], colscale(w, 2 * NGS + 1, c)), _mm256_castsi256_ps(m1));
    __m256 v = _mm256_xor_ps(pn, f0);
    if (NGS) { /* salient: s0 (r0 c0) + s1 (r1 c1) of group gs; no branch on the bits (they are random) */
        __m256 p0 = _mm256_mul_ps(B->rs[0][0], colscale(w, 0, c));
        __m256 p1 = _mm256_mul_ps(B->rs[0][1], colscale(w, 1, c));
        if (NGS == 2) {
            const __m256 m2 = _mm256_castsi256_ps(_mm256_sllv_epi32(_mm256_set1_epi32((int)b->b2), shifts));
            p0 = _mm256_blendv_ps(p0, _mm256_mul_ps(B->rs[1][0], colscale(w, 2, c)), m2);
            p1 = _mm256_blendv_ps(p1, _mm256_mul_ps(B->rs[1][1], colscale(w, 3, c)), m2);
        }
        const __m256 f1 = _mm256_castsi256_ps(_mm256_andnot_si256(m1, sb));
        const __m256 vs = _mm256_add_ps(_mm256_xor_ps(p0, f0), _mm256_xor_ps(p1, f1));
        v = _mm256_blendv_ps(v, vs, _mm256_castsi256_ps(_mm256_sllv_epi32(_mm256_set1_epi32((int)b->sal), shifts)));
    }
    return v;
}

/* One row's planes and running counts. */
typedef struct {
    const uint32_t *s0, *b1, *b2, *hm;
    int64_t o; /* salient columns walked: the next bit of b2 */
    int64_t h; /* held weights walked: the next code */
    __m256 S, Z; /* the row's grid (hbits 8) */
} rowp;

static inline void row_start(const lp_binary *w, int64_t r, rowp *R) {
    R->s0 = w->s0 + r * w->words;
    R->b1 = w->b1 ? w->b1 + r * w->words : NULL;
    R->b2 = w->ngs == 2 ? w->b2 + r * w->words2 : NULL;
    R->hm = w->held ? w->hmask + r * w->words : NULL;
    R->o = 0;
    R->h = w->held ? w->hoff[r] : 0;
    R->S = _mm256_set1_ps(w->hq ? w->hq[2 * r] : 0.0f); /* hq: held, hbits 8 */
    R->Z = _mm256_set1_ps(w->hq ? w->hq[2 * r + 1] : 0.0f);
}

/* v with chunk h's held weights (the word's held bits hm) put in: their
 * codes, the next ones of the row, spread over the held lanes by a rank
 * permute and computed as S (code - Z), or (hbits 16) their f16 values
 * converted, as lp_binary_value_at does. */
static inline __m256 put_held(const lp_binary *w, rowp *R, __m256 v, uint32_t hm, int h) {
    const int sh = 8 * h;
    const uint32_t hb = (hm >> sh) & 0xffu;
    const __m256i rank = _mm256_srlv_epi32(_mm256_set1_epi32((int)RANK4[hb]), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
    __m256 hv;
    if (w->hbits == 16) {
        __m128i q;
        if (R->h + 8 <= w->nheld) q = _mm_loadu_si128((const __m128i *)(w->codes16 + R->h));
        else { /* the row's last values: no reading past the array */
            uint16_t tmp[8] = {0};
            for (int i = 0; i < POP8[hb]; i++) tmp[i] = w->codes16[R->h + i];
            q = _mm_loadu_si128((const __m128i *)tmp);
        }
        hv = _mm256_permutevar8x32_ps(_mm256_cvtph_ps(q), rank);
    } else {
        __m128i q;
        if (R->h + 8 <= w->nheld) q = _mm_loadl_epi64((const __m128i *)(w->codes + R->h));
        else { /* the row's last codes: no reading past the array */
            uint8_t tmp[8] = {0};
            for (int i = 0; i < POP8[hb]; i++) tmp[i] = w->codes[R->h + i];
            q = _mm_loadl_epi64((const __m128i *)tmp);
        }
        const __m256i code = _mm256_permutevar8x32_epi32(_mm256_cvtepu8_epi32(q), rank);
        hv = _mm256_mul_ps(R->S, _mm256_sub_ps(_mm256_cvtepi32_ps(code), R->Z));
    }
    const __m256i shifts = _mm256_setr_epi32(31 - sh, 30 - sh, 29 - sh, 28 - sh, 27 - sh, 26 - sh, 25 - sh, 24 - sh);
    R->h += POP8[hb];
    return _mm256_blendv_ps(v, hv, _mm256_castsi256_ps(_mm256_sllv_epi32(_mm256_set1_epi32((int)hm), shifts)));
}

static inline __attribute__((always_inline)) void word_bits(const lp_binary *w, rowp *R, int64_t k, const int NGS,
                                                            wordbits *b) {
    b->s0 = R->s0[k];
    b->b1 = R->b1 ? R->b1[k] : 0u;
    b->sal = NGS ? w->colmask[k] : 0u;
    b->b2 = NGS == 2 && b->sal ? expand_b2(b->sal, R->b2, &R->o) : 0u;
    b->hm = R->hm ? R->hm[k] : 0u;
}

static inline __attribute__((always_inline)) float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The body with T, RC and NGS known at compile time. */
static inline __attribute__((always_inline)) void rows_impl(const lp_binary *w, const int T, const int RC,
                                                            const int NGS, const float *x, int64_t ldx, float *y,
                                                            int64_t ldy, int64_t r0, int64_t r1) {
    lanes8 L;
    if (!RC) make_lanes(w, &L);
    const int64_t bw = w->block / 32;
    for (int64_t r = r0; r < r1; r++) {
        rowp R;
        row_start(w, r, &R);
        __m256 acc[LP_BINARY_MAX_T][2];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
        for (int64_t j = 0; j < w->nblocks; j++) {
            blockp B;
            block_params(w, &L, r, j, RC, NGS, &B);
            for (int64_t k = j * bw; k < (j + 1) * bw; k++) {
                wordbits b;
                word_bits(w, &R, k, NGS, &b);
                const float *xk = x + 32 * k;
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) {
                    __m256 v = values8(w, &B, k, h, &b, RC, NGS);
                    if (b.hm) v = put_held(w, &R, v, b.hm, h);
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++)
                        acc[t][h & 1] = _mm256_fmadd_ps(v, _mm256_loadu_ps(xk + t * ldx + 8 * h), acc[t][h & 1]);
                }
            }
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
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

void lp_binary_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1) {
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
    lanes8 L;
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
                wordbits b;
                word_bits(w, &R, k, NGS, &b);
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++) {
                    __m256 v = values8(w, &B, k, h, &b, RC, NGS);
                    if (b.hm) v = put_held(w, &R, v, b.hm, h);
                    _mm256_storeu_ps(o + 32 * k + 8 * h, v);
                }
            }
        }
    }
}

void lp_binary_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out) {
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
