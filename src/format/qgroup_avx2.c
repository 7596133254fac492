/*
 * qgroup_avx2.c - AVX2 kernels for grouped-integer weights (see qgroup_ref.c
 * for the specification, format/qgroup.h for the bit layout).
 *
 * Unpack: a block's plane of width w (w words) is broadcast so that lane L
 * holds word L mod w; value j = 8h + L (quarter h = 0..3) then sits at bit
 * 8h + (L & -w). One vpsrlvd by that shift and one AND with 2^w - 1 give 8
 * consecutive values (b = 8: the shift is uniform, an immediate vpsrld).
 * Planes after the first (b = 3, 5, 6, 7) are shifted right by (shift - o)
 * so they land at their bit offset o directly, then ANDed and ORed in; in
 * quarter 0 the shift can be smaller than o, so there the bits are shifted
 * down and back up.
 * The dot kernels skip the variable shift for b = 1, 2, 4, 8 (one plane):
 * the AND with (2^b - 1) << shift leaves q * 2^shift, converted exactly to
 * f32, and prep_x has multiplied x by 2^-shift (qkernels.h). AVX2 converts
 * only signed int32, so quarter 3 (whose fields reach bit 31) is first
 * shifted right by 8 with one immediate shift (by 24 for b = 8, which also
 * makes its AND unnecessary). b = 4: 13 ops per 32 values instead of 17.
 *
 * Dot: per group, 8-lane f32 partial sums of q*x in four chains per
 * row/token (one per quarter, for the 4-cycle FMA latency), scaled by s_g
 * into an accumulator once per group; one horizontal sum per row at the end;
 * the zero-point term sum_g s_g z_g xsum_g is a separate pass over 8 groups
 * at a time. Only 16 ymm registers, so gemv runs 2 rows per pass and
 * gemv_multi 1 row x 2 tokens, in L1-sized column chunks (tile_multi); every
 * (row, token) pair runs the same operations in the same order, so
 * gemv_multi == gemv bit for bit. Rows past r1 in the last pass repeat row
 * r1 - 1 and are not stored. Each block load also prefetches the same block
 * of the rows visited next, as in qgroup_avx512.c.
 *
 * Speed (Zen 5, one core, W4 g128, weights in L2/L3): gemv ~26 G weights/s,
 * multi ~35 G weight-tokens/s.
 */
#include "format/qgroup_kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* Broadcast the w words at p so that lane L holds p[L mod w]. */
INLINE __m256i bcast_plane(const uint32_t *p, int w) {
    if (w == 8) return _mm256_loadu_si256((const __m256i *)p);
    if (w == 4) return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    if (w == 2) {
        long long v;
        memcpy(&v, p, 8);
        return _mm256_set1_epi64x(v);
    }
    return _mm256_set1_epi32((int)p[0]);
}

/* Lane shift 8h + (L & -w) - o for plane width w, quarter h, bit offset o. */
INLINE __m256i plane_shift(int w, int h, int o) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_add_epi32(_mm256_and_si256(iota, _mm256_set1_epi32(-w)), _mm256_set1_epi32(8 * h - o));
}

INLINE int single_plane(int bits) { return (bits & (bits - 1)) == 0; }

/* Where value 8h + L of a single plane of width w sits in lane L after the
 * dot kernel's quarter-3 pre-shift: its field is (2^w - 1) << field_shift. */
INLINE __m256i field_shift(int w, int h) {
    if (h == 3 && w == 8) return _mm256_setzero_si256();
    return plane_shift(w, h == 3 ? 2 : h, 0); /* quarter 3: shifted down by 8 first */
}

/* One block of a single plane as four vectors of q * 2^field_shift in f32. */
INLINE void load_fields(const uint32_t *blk, int w, const __m256i field[4], __m256 f[4]) {
    const __m256i v = bcast_plane(blk, w);
    f[0] = _mm256_cvtepi32_ps(_mm256_and_si256(v, field[0]));
    f[1] = _mm256_cvtepi32_ps(_mm256_and_si256(v, field[1]));
    f[2] = _mm256_cvtepi32_ps(_mm256_and_si256(v, field[2]));
    f[3] = w == 8 ? _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 24))
                  : _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(v, 8), field[3]));
}

/* xp (lp_qkernels_ldx floats) = x zero-padded, times 2^-field_shift of each
 * column for a single plane. */
static void prep_x_avx2(const lp_qgroup *w, const float *x, float *xp) {
    __m256 sc[4];
    for (int h = 0; h < 4; h++) /* 2^-shift: exponent field 127 - shift */
        sc[h] = single_plane(w->bits)
                    ? _mm256_castsi256_ps(_mm256_slli_epi32(
                          _mm256_sub_epi32(_mm256_set1_epi32(127), field_shift(w->bits, h)), 23))
                    : _mm256_set1_ps(1.0f);
    for (int64_t b = 0; b < lp_qkernels_ldx(w) / LP_QGROUP_BLOCK; b++)
        for (int h = 0; h < 4; h++) {
            int64_t c = b * LP_QGROUP_BLOCK + 8 * h, n = w->cols - c;
            __m256 v;
            if (n >= 8) {
                v = _mm256_loadu_ps(x + c);
            } else {
                float tmp[8] = {0};
                for (int64_t j = 0; j < n; j++) tmp[j] = x[c + j]; /* n <= 0: all zero */
                v = _mm256_loadu_ps(tmp);
            }
            _mm256_storeu_ps(xp + c, _mm256_mul_ps(v, sc[h]));
        }
}

/* Block s (0..3) of a b = 3 chunk (qgroup.h) as four vectors of 8 int32:
 * s = 0, 1 are A's fields at bits 3s; s = 2, 3 (t = s - 2) B's field
 * 2t + h / 2 of values 8h .. 8h+7 with A's bit 6 + t as the third bit. */
INLINE void unpack_chunk3(const uint32_t *c, int64_t s, __m256i q[4]) {
    const uint8_t *a = (const uint8_t *)c;
    const __m256i seven = _mm256_set1_epi32(7), two = _mm256_set1_epi32(3);
    const int t = (int)s - 2;
#pragma GCC unroll 4
    for (int h = 0; h < 4; h++) {
        const __m256i ah = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(a + 8 * h)));
        if (s < 2) {
            q[h] = _mm256_and_si256(_mm256_srl_epi32(ah, _mm_cvtsi32_si128((int)(3 * s))), seven);
            continue;
        }
        const __m256i bh = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(a + 32 + 8 * (h % 2))));
        const __m256i f = _mm256_and_si256(_mm256_srl_epi32(bh, _mm_cvtsi32_si128(4 * t + 2 * (h / 2))), two);
        const __m256i top = _mm256_and_si256(_mm256_srl_epi32(ah, _mm_cvtsi32_si128(4 + t)), _mm256_set1_epi32(4));
        q[h] = _mm256_or_si256(f, top);
    }
}

/* The 32 values of block b of a row as four vectors of 8 int32 (values
 * 8h .. 8h+7): at b = 3 from its chunk when it lies in one (b < n3 =
 * lp_qgroup_chunk3_blocks). */
INLINE void unpack_block(const uint32_t *row, int64_t b, int64_t n3, int bits, __m256i q[4]) {
    if (bits == 3 && b < n3) {
        unpack_chunk3(row + b / 4 * LP_QGROUP_CHUNK3_WORDS, b % 4, q);
        return;
    }
    const uint32_t *blk = row + b * bits;
    int first = 1;
#pragma GCC unroll 4
    for (int w = 8, o = 0; w >= 1; o += bits & w, w >>= 1) {
        if (!(bits & w)) continue;
        const __m256i v = bcast_plane(blk + o, w);
        const __m256i m = _mm256_set1_epi32((1 << w) - 1), mo = _mm256_set1_epi32(((1 << w) - 1) << o);
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++) {
            __m256i f;
            if (first) {
                f = w == 8 ? _mm256_srli_epi32(v, 8 * h) : _mm256_srlv_epi32(v, plane_shift(w, h, 0));
                q[h] = h == 3 && w == 8 ? f : _mm256_and_si256(f, m);
            } else {
                if (h > 0) /* 8h >= 8 > o: shift straight to offset o */
                    f = _mm256_and_si256(_mm256_srlv_epi32(v, plane_shift(w, h, o)), mo);
                else
                    f = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(v, plane_shift(w, 0, 0)), m), o);
                q[h] = _mm256_or_si256(q[h], f);
            }
        }
        first = 0;
    }
}

INLINE float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* sum_g s_g * z_g * xsum_g of one row and token: 8 groups per vector step,
 * the last G mod 8 one by one (a small layer has only a few groups, and
 * copying them into zero-filled vectors cost more than the whole sum). */
INLINE float zero_term(const lp_qgroup *w, int bits, int64_t r, const float *xsum) {
    const int64_t G = w->ngroups, G8 = G / 8 * 8;
    const uint16_t *s = w->scales + r * G;
    const uint8_t *z = w->zeros ? w->zeros + r * G : NULL;
    __m256 za = _mm256_setzero_ps();
    for (int64_t g = 0; g < G8; g += 8) {
        __m256 sg = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + g)));
        __m256 zg = !z ? _mm256_set1_ps((float)(1 << (bits - 1)))
                       : _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(z + g))));
        za = _mm256_fmadd_ps(_mm256_mul_ps(sg, zg), _mm256_loadu_ps(xsum + g), za);
    }
    float sum = G8 ? hsum256(za) : 0.0f;
    for (int64_t g = G8; g < G; g++)
        sum += _cvtsh_ss(s[g]) * (float)(z ? z[g] : 1 << (bits - 1)) * xsum[g];
    return sum;
}

/* R rows x T tokens: y[t*ldy + r] for rows r0..r0+R-1 (clamped to r1-1). */
INLINE void tile(const lp_qgroup *w, const int bits, const int c3, const int R, const int T, const float *xp,
                 const float *xsum, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t B = w->blocks, G = w->ngroups, ldx = lp_qkernels_ldx(w), n3 = c3 ? lp_qgroup_chunk3_blocks(w) : 0;
    const int64_t bpg = (w->group + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    const uintptr_t pass = (uintptr_t)(R * lp_qgroup_row_words(w)) * sizeof(uint32_t); /* bytes to row + R */
    const uintptr_t next = (8192 + pass - 1) / pass * pass; /* whole passes, >= 8 KB ahead (qgroup_avx512.c) */
    const uint32_t *qr[2];
    const uint16_t *sr[2];
    int64_t rr[2];
    __m256i field[4];
    if (single_plane(bits))
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++)
            field[h] = _mm256_sllv_epi32(_mm256_set1_epi32((1 << bits) - 1), field_shift(bits, h));
#pragma GCC unroll 2
    for (int i = 0; i < R; i++) {
        rr[i] = r0 + i < r1 ? r0 + i : r1 - 1;
        qr[i] = w->q + rr[i] * lp_qgroup_row_words(w);
        sr[i] = w->scales + rr[i] * G;
    }
    __m256 acc[2][4];
#pragma GCC unroll 8
    for (int i = 0; i < R * T; i++) acc[i / T][i % T] = _mm256_setzero_ps();
    for (int64_t g = 0; g < G; g++) {
        const int64_t b1 = (g + 1) * bpg < B ? (g + 1) * bpg : B;
        __m256 ch[2][4][4]; /* one chain per quarter: 4-cycle FMA latency */
#pragma GCC unroll 32
        for (int i = 0; i < R * T * 4; i++) ch[i / (4 * T)][(i / 4) % T][i % 4] = _mm256_setzero_ps();
        for (int64_t b = g * bpg; b < b1; b++) {
#pragma GCC unroll 2
            for (int i = 0; i < R; i++) {
                /* the same block R rows down (see qgroup_avx512.c) */
                _mm_prefetch((const char *)((uintptr_t)(qr[i] + b * bits) + next), _MM_HINT_T0);
                __m256 f[4];
                if (single_plane(bits)) {
                    load_fields(qr[i] + b * bits, bits, field, f);
                } else {
                    __m256i q[4];
                    unpack_block(qr[i], b, n3, bits, q);
#pragma GCC unroll 4
                    for (int h = 0; h < 4; h++) f[h] = _mm256_cvtepi32_ps(q[h]);
                }
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const float *x = xp + t * ldx + b * LP_QGROUP_BLOCK;
#pragma GCC unroll 4
                    for (int h = 0; h < 4; h++) ch[i][t][h] = _mm256_fmadd_ps(f[h], _mm256_loadu_ps(x + 8 * h), ch[i][t][h]);
                }
            }
        }
#pragma GCC unroll 2
        for (int i = 0; i < R; i++) {
            const __m256 s = _mm256_cvtph_ps(_mm_set1_epi16((short)sr[i][g]));
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                __m256 d = _mm256_add_ps(_mm256_add_ps(ch[i][t][0], ch[i][t][1]), _mm256_add_ps(ch[i][t][2], ch[i][t][3]));
                acc[i][t] = _mm256_fmadd_ps(d, s, acc[i][t]);
            }
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < R; i++) {
        if (r0 + i >= r1) break;
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) y[t * ldy + r0 + i] = hsum256(acc[i][t]) - zero_term(w, bits, rr[i], xsum + t * G);
    }
}

/* Several tokens (T = 1 or 2 here; gemv_multi splits larger T into pairs):
 * up to MT_ROWS rows at a time, walking the columns in chunks of whole
 * groups whose x fits in L1, rows inside a chunk (see qgroup_avx512.c). The
 * per-(row, token) accumulators wait in acc[] between chunks; the operations
 * on each are exactly those of tile(). */
enum { MT_ROWS = 16, MT_XBYTES = 16384 };

INLINE void tile_multi(const lp_qgroup *w, const int bits, const int c3, const int T, const float *xp,
                       const float *xsum, float *y, int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t B = w->blocks, G = w->ngroups, ldx = lp_qkernels_ldx(w), n3 = c3 ? lp_qgroup_chunk3_blocks(w) : 0;
    const int64_t bpg = (w->group + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    int64_t chunk = MT_XBYTES / (T * LP_QGROUP_BLOCK * (int64_t)sizeof(float)) / bpg; /* groups */
    if (chunk < 1) chunk = 1;
    __m256i field[4];
    if (single_plane(bits))
#pragma GCC unroll 4
        for (int h = 0; h < 4; h++)
            field[h] = _mm256_sllv_epi32(_mm256_set1_epi32((1 << bits) - 1), field_shift(bits, h));
    for (int64_t rt = r0; rt < r1; rt += MT_ROWS) {
        const int64_t nr = r1 - rt < MT_ROWS ? r1 - rt : MT_ROWS;
        __m256 acc[MT_ROWS][2];
        for (int64_t i = 0; i < nr; i++)
#pragma GCC unroll 2
            for (int t = 0; t < T; t++) acc[i][t] = _mm256_setzero_ps();
        for (int64_t g0 = 0; g0 < G; g0 += chunk) {
            const int64_t g1 = g0 + chunk < G ? g0 + chunk : G;
            for (int64_t i = 0; i < nr; i++) {
                const uint32_t *qr = w->q + (rt + i) * lp_qgroup_row_words(w);
                const uint16_t *sr = w->scales + (rt + i) * G;
                /* the next row, or past the tile's last row its first row's next chunk */
                const uintptr_t pf = i + 1 < nr ? (uintptr_t)qr + (uintptr_t)lp_qgroup_row_words(w) * sizeof(uint32_t)
                                                : (uintptr_t)(w->q + rt * lp_qgroup_row_words(w)) +
                                                      (uintptr_t)(chunk * bpg * bits) * sizeof(uint32_t);
                __m256 a[2];
#pragma GCC unroll 2
                for (int t = 0; t < T; t++) a[t] = acc[i][t];
                for (int64_t g = g0; g < g1; g++) {
                    const int64_t b1 = (g + 1) * bpg < B ? (g + 1) * bpg : B;
                    __m256 ch[2][4];
#pragma GCC unroll 8
                    for (int j = 0; j < T * 4; j++) ch[j / 4][j % 4] = _mm256_setzero_ps();
                    for (int64_t b = g * bpg; b < b1; b++) {
                        _mm_prefetch((const char *)(pf + (uintptr_t)(b * bits) * sizeof(uint32_t)), _MM_HINT_T0);
                        __m256 f[4];
                        if (single_plane(bits)) {
                            load_fields(qr + b * bits, bits, field, f);
                        } else {
                            __m256i q[4];
                            unpack_block(qr, b, n3, bits, q);
#pragma GCC unroll 4
                            for (int h = 0; h < 4; h++) f[h] = _mm256_cvtepi32_ps(q[h]);
                        }
#pragma GCC unroll 2
                        for (int t = 0; t < T; t++) {
                            const float *x = xp + t * ldx + b * LP_QGROUP_BLOCK;
#pragma GCC unroll 4
                            for (int h = 0; h < 4; h++) ch[t][h] = _mm256_fmadd_ps(f[h], _mm256_loadu_ps(x + 8 * h), ch[t][h]);
                        }
                    }
                    const __m256 s = _mm256_cvtph_ps(_mm_set1_epi16((short)sr[g]));
#pragma GCC unroll 2
                    for (int t = 0; t < T; t++) {
                        __m256 d = _mm256_add_ps(_mm256_add_ps(ch[t][0], ch[t][1]), _mm256_add_ps(ch[t][2], ch[t][3]));
                        a[t] = _mm256_fmadd_ps(d, s, a[t]);
                    }
                }
#pragma GCC unroll 2
                for (int t = 0; t < T; t++) acc[i][t] = a[t];
            }
        }
        for (int64_t i = 0; i < nr; i++)
#pragma GCC unroll 2
            for (int t = 0; t < T; t++)
                y[t * ldy + rt + i] = hsum256(acc[i][t]) - zero_term(w, bits, rt + i, xsum + t * G);
    }
}

/* out = s * (float)(q - z), the same operations as dequant_ref, so bit-identical. */
INLINE void dequant_rows(const lp_qgroup *w, const int bits, const int c3, int64_t r0, int64_t r1, float *out) {
    const int64_t B = w->blocks, G = w->ngroups, cols = w->cols, n3 = c3 ? lp_qgroup_chunk3_blocks(w) : 0;
    const int64_t bpg = (w->group + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *qrow = w->q + r * lp_qgroup_row_words(w);
        float *o = out + (r - r0) * cols;
        for (int64_t g = 0; g < G; g++) {
            const __m256 s = _mm256_set1_ps(_cvtsh_ss(w->scales[r * G + g]));
            const __m256i z = _mm256_set1_epi32(w->sym ? 1 << (bits - 1) : w->zeros[r * G + g]);
            const int64_t b1 = (g + 1) * bpg < B ? (g + 1) * bpg : B;
            for (int64_t b = g * bpg; b < b1; b++) {
                __m256i q[4];
                unpack_block(qrow, b, n3, bits, q);
                float tmp[LP_QGROUP_BLOCK];
                int64_t c = b * LP_QGROUP_BLOCK, n = cols - c;
                float *dst = n >= LP_QGROUP_BLOCK ? o + c : tmp; /* ragged end: via tmp */
#pragma GCC unroll 4
                for (int h = 0; h < 4; h++)
                    _mm256_storeu_ps(dst + 8 * h, _mm256_mul_ps(s, _mm256_cvtepi32_ps(_mm256_sub_epi32(q[h], z))));
                if (n < LP_QGROUP_BLOCK) memcpy(o + c, tmp, (size_t)n * sizeof(float));
            }
        }
    }
}

/* One function per bits value so that the plane structure is compile-time;
 * b = 3 also once per layout (C3: its chunks, lp_qgroup_chunk3_blocks), so
 * that weights of the plane layout run the plane code alone. */
#define DEFINE_LAYOUT(NB, C3, SUF)                                                               \
    static void gemv_b##SUF(const lp_qgroup *w, const float *xp, const float *xsum, float *y,    \
                            int64_t r0, int64_t r1) {                                            \
        for (int64_t r = r0; r < r1; r += 2) tile(w, NB, C3, 2, 1, xp, xsum, y, 0, r, r1);       \
    }                                                                                            \
    static void multi_b##SUF(const lp_qgroup *w, int64_t T, const float *xp, const float *xsum,  \
                             float *y, int64_t ldy, int64_t r0, int64_t r1) {                    \
        if (T == 1) {                                                                            \
            for (int64_t r = r0; r < r1; r += 2) tile(w, NB, C3, 2, 1, xp, xsum, y, ldy, r, r1); \
            return;                                                                              \
        }                                                                                        \
        const int64_t ldx = lp_qkernels_ldx(w);                                                  \
        for (int64_t t = 0; t < T; t += 2) /* pairs: 8 chains fill the 16 registers */          \
            if (T - t >= 2) tile_multi(w, NB, C3, 2, xp + t * ldx, xsum + t * w->ngroups, y + t * ldy, ldy, r0, r1); \
            else tile_multi(w, NB, C3, 1, xp + t * ldx, xsum + t * w->ngroups, y + t * ldy, ldy, r0, r1); \
    }                                                                                            \
    static void dequant_b##SUF(const lp_qgroup *w, int64_t r0, int64_t r1, float *out) {         \
        dequant_rows(w, NB, C3, r0, r1, out);                                                    \
    }
#define DEFINE_BITS(NB) DEFINE_LAYOUT(NB, 0, NB)
DEFINE_LAYOUT(3, 1, 3c)

DEFINE_BITS(1)
DEFINE_BITS(2)
DEFINE_BITS(3)
DEFINE_BITS(4)
DEFINE_BITS(5)
DEFINE_BITS(6)
DEFINE_BITS(7)
DEFINE_BITS(8)

/* b = 3: the chunk-layout functions when w has chunks */
static void gemv_b3x(const lp_qgroup *w, const float *xp, const float *xsum, float *y, int64_t r0, int64_t r1) {
    if (lp_qgroup_chunk3_blocks(w)) gemv_b3c(w, xp, xsum, y, r0, r1);
    else gemv_b3(w, xp, xsum, y, r0, r1);
}
static void multi_b3x(const lp_qgroup *w, int64_t T, const float *xp, const float *xsum, float *y, int64_t ldy,
                      int64_t r0, int64_t r1) {
    if (lp_qgroup_chunk3_blocks(w)) multi_b3c(w, T, xp, xsum, y, ldy, r0, r1);
    else multi_b3(w, T, xp, xsum, y, ldy, r0, r1);
}
static void dequant_b3x(const lp_qgroup *w, int64_t r0, int64_t r1, float *out) {
    if (lp_qgroup_chunk3_blocks(w)) dequant_b3c(w, r0, r1, out);
    else dequant_b3(w, r0, r1, out);
}

typedef void (*gemv_fn)(const lp_qgroup *, const float *, const float *, float *, int64_t, int64_t);
typedef void (*multi_fn)(const lp_qgroup *, int64_t, const float *, const float *, float *, int64_t,
                         int64_t, int64_t);
typedef void (*dequant_fn)(const lp_qgroup *, int64_t, int64_t, float *);

static const gemv_fn k_gemv[9] = {0, gemv_b1, gemv_b2, gemv_b3x, gemv_b4, gemv_b5, gemv_b6, gemv_b7, gemv_b8};
static const multi_fn k_multi[9] = {0, multi_b1, multi_b2, multi_b3x, multi_b4, multi_b5, multi_b6, multi_b7, multi_b8};
static const dequant_fn k_deq[9] = {0, dequant_b1, dequant_b2, dequant_b3x, dequant_b4,
                                    dequant_b5, dequant_b6, dequant_b7, dequant_b8};

static void gemv_avx2(const lp_qgroup *w, const float *xp, const float *xsum, float *y,
                      int64_t r0, int64_t r1) {
    k_gemv[w->bits](w, xp, xsum, y, r0, r1);
}

static void gemv_multi_avx2(const lp_qgroup *w, int64_t T, const float *xp, const float *xsum,
                            float *y, int64_t ldy, int64_t r0, int64_t r1) {
    k_multi[w->bits](w, T, xp, xsum, y, ldy, r0, r1);
}

static void dequant_avx2(const lp_qgroup *w, int64_t r0, int64_t r1, float *out) {
    k_deq[w->bits](w, r0, r1, out);
}

const lp_qkernels lp_qkernels_avx2 = {
    .name = "avx2",
    .prep_x = prep_x_avx2,
    .gemv = gemv_avx2,
    .gemv_multi = gemv_multi_avx2,
    .dequant = dequant_avx2,
    .blas_min_tokens = 64, /* bench_qgemv: even with sgemm at T = 64, ahead above */
};
