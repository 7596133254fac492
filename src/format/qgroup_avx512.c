/*
 * qgroup_avx512.c - AVX-512 kernels for grouped-integer weights (see
 * qgroup_ref.c for the specification, format/qgroup.h for the bit layout).
 *
 * Unpack: a block's plane of width w (w words) is broadcast so that lane L
 * holds word L mod w; value j = 16h + L (h = 0 for the first 16 values, 1 for
 * the last) then sits at bit 16h + (L & -w). One vprorvd by that shift
 * (minus the plane's bit offset o) and one AND with ((2^w - 1) << o) put the
 * plane's bits of 16 consecutive values in place; planes after the first are
 * merged with vpternlogd (OR-AND in one op): 2 ops per plane and 16 values.
 * The dot kernels skip the rotate for b = 1, 2, 4, 8 (one plane): the AND
 * with (2^b - 1) << shift leaves q * 2^shift, which vcvtudq2ps converts
 * exactly, and prep_x has multiplied x by 2^-shift (qkernels.h), so one AND
 * per 16 values remains. (Zen 5 runs shifts on the two FMA pipes, so the
 * rotate costs FMA throughput; the AND runs on any of four.)
 *
 * Chunks: with one plane and groups of a multiple of 128 columns (or one
 * group per row), the dot kernels read 4 blocks (128 columns) at a time
 * with one plain 64-byte load (b = 4; two for b = 8, a 32/16-byte broadcast
 * for b = 2/1) instead of a broadcast per block, and split them into 8
 * vectors of 16 values with 8 constant field masks. Each such vector mixes
 * values of the 4 blocks, so prep_x lays x out in the same order
 * (chunk_lane) along with the 2^-shift. This saves the broadcast's shuffle
 * uop (+7% at g128, +20% per-channel in cache). b = 3 with groups of
 * whole chunks reads qgroup.h's chunk layout the same way: 8 vectors of 16
 * values from 3 broadcast loads and 24 ops (chunk3_vectors), their lanes in
 * chunk3_order (a 4 x 4 transpose of each 16 columns, which prep_x applies
 * to x), and a row's last 1-3 blocks block by block. Other groups (32, 64;
 * b = 3 there keeps the plane layout) and b = 5, 6, 7 read block by block.
 *
 * Dot: per group, 16-lane f32 partial sums of q*x (two per row/token chain,
 * lo and hi half, for latency), scaled by s_g into an accumulator once per
 * group; at the end the zero-point terms s_g z_g xsum_g (16 groups per
 * vector) are subtracted lane-wise and four rows' horizontal sums are taken
 * together (core/hsum_avx512.h).
 *
 * Memory: a row of W is only a few KB, too short for the hardware
 * prefetcher to lock on before it ends, so each block (chunk) load also
 * prefetches the same place R rows down (the next pass's rows): single-thread
 * DRAM throughput went from ~12 to ~19 GB/s on Zen 5 (4096 x 11008, W4 g128).
 * Short rows go whole passes further, to at least 8 KB ahead: one pass of
 * llama-25m's W8 head (384 columns) is 1.5 KB, too close for the latency
 * (its W4 decode: 1073-1120 -> 1115-1170 tok/s, 1 thread, alternating).
 *
 * Tiling: R rows x T tokens per pass (R*T <= 4: 8 chains of 4-cycle FMAs keep
 * two FMA pipes busy). gemv (tile) uses R = 4: the four rows share each x
 * load. gemv_multi (tile_multi) uses T = 2..4 tokens, so each unpacked block
 * feeds every token, and walks 16-row tiles in L1-sized column spans. Every
 * (row, token) pair runs the same operations in the same order whatever R
 * and T are, so gemv_multi == gemv bit for bit. Rows past r1 in the last
 * pass repeat row r1 - 1 and are not stored.
 *
 * Speed (Zen 5 at ~3.4 GHz, one core, W4, weights in L2/L3): gemv ~50 G
 * weights/s at g128 and ~59 per-channel (14.5 and 17.5 per cycle; the loop
 * is bound by the 4 vector ALU ports: AND, convert and FMA per 16 weights,
 * plus the scale FMA per group), multi ~55 G weight-tokens/s at T = 4.
 */
#include "format/qgroup_kernels.h"

#include "core/hsum_avx512.h"

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* Broadcast the w words at p so that lane L holds p[L mod w]. */
INLINE __m512i bcast_plane(const uint32_t *p, int w) {
    if (w == 8) return _mm512_broadcast_i32x8(_mm256_loadu_si256((const __m256i *)p));
    if (w == 4) return _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)p));
    if (w == 2) {
        long long v;
        memcpy(&v, p, 8);
        return _mm512_set1_epi64(v);
    }
    return _mm512_set1_epi32((int)p[0]);
}

/* Per-plane constants: rotate counts for the two halves and the mask; for a
 * single plane also the in-place field masks (2^w - 1) << shift per half. */
typedef struct {
    __m512i rot[4][2], mask[4], field[2];
    __m512i cmask[8]; /* chunk mode: (2^w - 1) << shift of each lane of vector m */
} unpack_consts;

INLINE int single_plane(int bits) { return (bits & (bits - 1)) == 0; }

/* Bit position of value j = 16h + L inside its broadcast lane, single plane of width w. */
INLINE __m512i lane_shift(int w, int h) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_add_epi32(_mm512_and_si512(iota, _mm512_set1_epi32(-w)), _mm512_set1_epi32(16 * h));
}

/* Where lane L of chunk vector m (0..7) comes from, for a plane of width w:
 * its column inside the 128-column chunk and the bit position of its field
 * in the lane's word. Lane L holds chunk word L (w = 4), 16 (m / 4) + L
 * (w = 8), L mod 8 (w = 2) or L mod 4 (w = 1); the field index f within that
 * word then runs over the word's 32 / w values exactly once across m. */
static void chunk_lane(int w, int m, int L, int *col, int *shift) {
    int word, f; /* word of the chunk (block = word / w), field in that word */
    switch (w) {
    case 4: word = L, f = m; break;
    case 8: word = 16 * (m / 4) + L, f = m % 4; break;
    case 2: word = L % 8, f = 2 * m + L / 8; break;
    default: word = L % 4, f = 4 * m + L / 4; break;
    }
    *col = LP_QGROUP_BLOCK * (word / w) + word % w + w * f; /* value j = (word mod w) + w f */
    *shift = w * f;
}

INLINE void make_consts(int bits, unpack_consts *k) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    int p = 0;
#pragma GCC unroll 4
    for (int w = 8, o = 0; w >= 1; o += bits & w, w >>= 1) {
        if (!(bits & w)) continue;
        for (int h = 0; h < 2; h++) /* (16h + (L & -w) - o) mod 32 */
            k->rot[p][h] = _mm512_and_si512(
                _mm512_add_epi32(_mm512_and_si512(iota, _mm512_set1_epi32(-w)), _mm512_set1_epi32(16 * h - o + 32)),
                _mm512_set1_epi32(31));
        k->mask[p] = _mm512_set1_epi32(((1 << w) - 1) << o);
        p++;
    }
    if (single_plane(bits)) {
        for (int h = 0; h < 2; h++) k->field[h] = _mm512_sllv_epi32(_mm512_set1_epi32((1 << bits) - 1), lane_shift(bits, h));
        for (int m = 0; m < 8 && bits < 4; m++) { /* b = 4, 8 use constants (chunk_mask) */
            uint32_t lanes[16];
            for (int L = 0; L < 16; L++) {
                int col, sh;
                chunk_lane(bits, m, L, &col, &sh);
                lanes[L] = ((1u << bits) - 1u) << sh;
            }
            k->cmask[m] = _mm512_loadu_si512(lanes);
        }
    }
}

/* Every 4-block chunk inside one group: chunk mode (see the top) for one
 * plane and for b = 3. */
INLINE int chunk_mode(const lp_qgroup *w) {
    int64_t bpg = (w->group + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    return w->ngroups == 1 || bpg % 4 == 0;
}

/* The chunk's words as loaded: lane L of v[0] (and v[1] for w = 8) as in
 * chunk_lane. nb = valid blocks (1..4); the words of missing blocks read as 0
 * (masked loads, so the end of the array is never touched). */
typedef struct {
    __mmask16 m0, m1; /* w = 4, 8: word masks of the two 16-word loads; w = 1, 2: of the one load */
} chunk_masks;

INLINE chunk_masks chunk_load_masks(int w, int64_t nb) {
    unsigned n = (unsigned)(w * nb); /* valid words */
    chunk_masks cm;
    cm.m0 = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
    cm.m1 = (__mmask16)(n > 16 ? (n >= 32 ? 0xffffu : (1u << (n - 16)) - 1u) : 0u);
    return cm;
}

INLINE void chunk_load(const uint32_t *p, int w, chunk_masks cm, __m512i v[2]) {
    if (w == 4) {
        v[0] = _mm512_maskz_loadu_epi32(cm.m0, p);
    } else if (w == 8) {
        v[0] = _mm512_maskz_loadu_epi32(cm.m0, p);
        v[1] = _mm512_maskz_loadu_epi32(cm.m1, p + 16);
    } else if (w == 2) {
        v[0] = _mm512_broadcast_i32x8(_mm256_maskz_loadu_epi32((__mmask8)cm.m0, p));
    } else {
        v[0] = _mm512_broadcast_i32x4(_mm_maskz_loadu_epi32((__mmask8)cm.m0, p));
    }
}

/* Chunk mode's lane order as tables, one per plane width (1, 2, 4, 8; index
 * log2 w): chunk vector m's lane L takes column col[16m + L] of its 128-column
 * chunk times sc[16m + L] = 2^-shift. Built once: rebuilt per call (scalar
 * chunk_lane and ldexpf, ~1 us) they were a large share of a small layer's gemv. */
static struct {
    int32_t col[128];
    float sc[128];
} g_lanes[4];
static pthread_once_t g_lanes_once = PTHREAD_ONCE_INIT;

static void build_lanes(void) {
    for (int lw = 0; lw < 4; lw++)
        for (int i = 0; i < 128; i++) {
            int sh;
            chunk_lane(1 << lw, i / 16, i % 16, &g_lanes[lw].col[i], &sh);
            g_lanes[lw].sc[i] = ldexpf(1.0f, -sh);
        }
}

/* b = 3 chunks' lane order: lane L of a vector of 16 values holds value
 * 4 (L mod 4) + L / 4 of its 16 columns (a 4 x 4 transpose, its own
 * inverse), because unpack_chunk3 takes byte L / 4 of the broadcast dword
 * L mod 4 with one variable shift instead of a zero-extending shuffle. */
INLINE __m512i chunk3_order(void) {
    return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}

/* xp (lp_qkernels_ldx floats) = this kernel's form of x: zero-padded; for one
 * plane times 2^-shift of each value's field, and in chunk mode permuted to
 * the chunk vectors' lane order; at b = 3 the chunks' columns in
 * chunk3_order. */
static void prep_x_avx512(const lp_qgroup *w, const float *x, float *xp) {
    const int64_t ldx = lp_qkernels_ldx(w), cols = w->cols;
    if (single_plane(w->bits) && chunk_mode(w)) { /* 8 gathers per chunk; the last chunk's columns past cols read as 0 */
        pthread_once(&g_lanes_once, build_lanes);
        const int lw = w->bits == 8 ? 3 : w->bits == 4 ? 2 : w->bits - 1;
        const int32_t *col = g_lanes[lw].col;
        const float *sc = g_lanes[lw].sc;
        for (int64_t c0 = 0; c0 < ldx; c0 += 128) {
            const __m512i left = _mm512_set1_epi32((int)(cols - c0 < 128 ? cols - c0 : 128));
            for (int m = 0; m < 8; m++) {
                const __m512i idx = _mm512_loadu_si512(col + 16 * m);
                const __mmask16 in = _mm512_cmplt_epi32_mask(idx, left);
                const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), in, idx, x + c0, 4);
                _mm512_storeu_ps(xp + c0 + 16 * m, _mm512_mul_ps(v, _mm512_loadu_ps(sc + 16 * m)));
            }
        }
        return;
    }
    __m512 sc[2];
    for (int h = 0; h < 2; h++) /* 2^-shift: exponent field 127 - shift */
        sc[h] = single_plane(w->bits)
                    ? _mm512_castsi512_ps(_mm512_slli_epi32(
                          _mm512_sub_epi32(_mm512_set1_epi32(127), lane_shift(w->bits, h)), 23))
                    : _mm512_set1_ps(1.0f);
    const int64_t tr = lp_qgroup_chunk3_blocks(w) * LP_QGROUP_BLOCK; /* b = 3 chunks' columns */
    for (int64_t c = 0; c < ldx; c += 16) {
        int64_t n = cols - c;
        __mmask16 m = (__mmask16)(n >= 16 ? 0xffff : n <= 0 ? 0 : (1u << n) - 1u);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), sc[(c / 16) % 2]);
        if (c < tr) v = _mm512_permutexvar_ps(chunk3_order(), v);
        _mm512_storeu_ps(xp + c, v);
    }
}

/* The three broadcasts a b = 3 chunk (qgroup.h) is unpacked from: A's
 * bytes 0-15 and 16-31 and B's 16 bytes, each to all four 128-bit lanes
 * (loads only, no shuffle uop): lane L holds their dword L mod 4. */
typedef struct {
    __m512i a0, a1, b;
} chunk3_src;

INLINE chunk3_src chunk3_load(const uint32_t *c) {
    chunk3_src r;
    r.a0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)c));
    r.a1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(c + 4)));
    r.b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(c + 8)));
    return r;
}

/* Block s (0..3, a constant) of the chunk as two vectors of 16 int32 in
 * chunk3_order: lane L takes byte L / 4 of its dword (shift 8 (L / 4)).
 * s = 0, 1: A's field at bit 3s; s = 2, 3 (t = s - 2): B's field 2t (first
 * 16 values) or 2t + 1 (last 16) in bits 0-1 and A's bit 6 + t in bit 2
 * (0xe4: c ? a : b, the low two bits from B, the rest from A shifted).
 * 4 or 8 ops; the f32 kernels of the plane layout took about 10. */
INLINE void unpack_chunk3(const chunk3_src *c, const int s, __m512i *lo, __m512i *hi) {
    const __m512i by = _mm512_setr_epi32(0, 0, 0, 0, 8, 8, 8, 8, 16, 16, 16, 16, 24, 24, 24, 24);
    const __m512i seven = _mm512_set1_epi32(7);
    if (s < 2) {
        const __m512i sh = _mm512_add_epi32(by, _mm512_set1_epi32(3 * s));
        *lo = _mm512_and_si512(_mm512_srlv_epi32(c->a0, sh), seven);
        *hi = _mm512_and_si512(_mm512_srlv_epi32(c->a1, sh), seven);
        return;
    }
    const int t = s - 2;
    const __m512i two = _mm512_set1_epi32(3), st = _mm512_add_epi32(by, _mm512_set1_epi32(4 + t));
    const __m512i bl = _mm512_srlv_epi32(c->b, _mm512_add_epi32(by, _mm512_set1_epi32(4 * t)));
    const __m512i bh = _mm512_srlv_epi32(c->b, _mm512_add_epi32(by, _mm512_set1_epi32(4 * t + 2)));
    *lo = _mm512_and_si512(_mm512_ternarylogic_epi32(bl, _mm512_srlv_epi32(c->a0, st), two, 0xe4), seven);
    *hi = _mm512_and_si512(_mm512_ternarylogic_epi32(bh, _mm512_srlv_epi32(c->a1, st), two, 0xe4), seven);
}

/* The 32 values of one block as two vectors of 16 int32 (values 0..15, 16..31). */
INLINE void unpack_block(const uint32_t *blk, int bits, const unpack_consts *k, __m512i *lo, __m512i *hi) {
    int p = 0;
#pragma GCC unroll 4
    for (int w = 8, o = 0; w >= 1; o += bits & w, w >>= 1) {
        if (!(bits & w)) continue;
        __m512i v = bcast_plane(blk + o, w);
        __m512i a = _mm512_rorv_epi32(v, k->rot[p][0]), b = _mm512_rorv_epi32(v, k->rot[p][1]);
        if (p == 0) {
            *lo = _mm512_and_si512(a, k->mask[p]);
            *hi = _mm512_and_si512(b, k->mask[p]);
        } else { /* lo |= a & mask: ternary logic 0xF8 = A | (B & C) */
            *lo = _mm512_ternarylogic_epi32(*lo, a, k->mask[p], 0xF8);
            *hi = _mm512_ternarylogic_epi32(*hi, b, k->mask[p], 0xF8);
        }
        p++;
    }
}

/* The zero-point terms s_g * z_g * xsum_g of one row and token as 16-lane
 * partial sums (16 groups per step), to be subtracted from the row's
 * accumulator before its horizontal sum. */
INLINE __m512 zero_terms(const lp_qgroup *w, int bits, int64_t r, const float *xsum) {
    const int64_t G = w->ngroups;
    const uint16_t *s = w->scales + r * G;
    __m512 za = _mm512_setzero_ps();
    for (int64_t g = 0; g < G; g += 16) {
        __mmask16 m = (__mmask16)(G - g >= 16 ? 0xffff : (1u << (G - g)) - 1u);
        __m512 sg = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, s + g));
        __m512 zg = w->sym ? _mm512_set1_ps((float)(1 << (bits - 1)))
                           : _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, w->zeros + r * G + g)));
        za = _mm512_fmadd_ps(_mm512_mul_ps(sg, zg), _mm512_maskz_loadu_ps(m, xsum + g), za);
    }
    return za;
}

/* Chunk vector m's field masks: constants for b = 4, 8 (the same in every
 * lane, so they can be broadcast operands), the table for b = 1, 2. */
INLINE __m512i chunk_mask(int bits, int m, const unpack_consts *k) {
    if (bits == 4) return _mm512_set1_epi32((int)(15u << (4 * m)));
    if (bits == 8) return _mm512_set1_epi32((int)(255u << (8 * (m % 4))));
    return k->cmask[m];
}

/* The 128 values of a whole b = 3 chunk as 8 vectors of 16 int32 (vector
 * m: columns 16m .. 16m+15 in chunk3_order): 3 broadcast loads, 24 ops. */
INLINE void chunk3_vectors(const uint32_t *c, __m512i f[8]) {
    const chunk3_src src = chunk3_load(c);
#pragma GCC unroll 4
    for (int s = 0; s < 4; s++) unpack_chunk3(&src, s, &f[2 * s], &f[2 * s + 1]);
}

/* tl/th[j][t] += sum over group g of q[row j] * x[token t], as 16-lane
 * partial sums (tl: even vectors, th: odd), for R rows (qr) and T tokens.
 * Each block (chunk) load prefetches the same place at pf[j]. At b = 3
 * `chunked` reads whole chunks with chunk3_vectors and the row's last 1-3
 * blocks with unpack_block: the same sums in the same order as block by
 * block (tl takes each block's first 16 values, th its last 16), so both
 * give the same bits. */
INLINE void group_dot(const int bits, const int R, const int T, const int chunked, const uint32_t *const *qr,
                      const uintptr_t *pf, const float *xp, int64_t ldx, int64_t b0, int64_t b1, int64_t B,
                      const unpack_consts *k, __m512 (*tl)[4], __m512 (*th)[4]) {
    if (bits == 3 && chunked) {
        for (int64_t b = b0; b < b1; b += 4) {
            if (b + 4 > (B & ~(int64_t)3)) { /* the row's last blocks, plane layout */
                for (int64_t bb = b; bb < b1; bb++) {
#pragma GCC unroll 4
                    for (int j = 0; j < R; j++) {
                        __m512i lo, hi;
                        unpack_block(qr[j] + bb * bits, bits, k, &lo, &hi); /* past the chunks: plane layout */
                        const __m512 fl = _mm512_cvtepi32_ps(lo), fh = _mm512_cvtepi32_ps(hi);
#pragma GCC unroll 4
                        for (int t = 0; t < T; t++) {
                            const float *x = xp + t * ldx + bb * LP_QGROUP_BLOCK;
                            tl[j][t] = _mm512_fmadd_ps(fl, _mm512_loadu_ps(x), tl[j][t]);
                            th[j][t] = _mm512_fmadd_ps(fh, _mm512_loadu_ps(x + 16), th[j][t]);
                        }
                    }
                }
                break;
            }
#pragma GCC unroll 4
            for (int j = 0; j < R; j++) {
                _mm_prefetch((const char *)(pf[j] + (uintptr_t)(b * bits) * sizeof(uint32_t)), _MM_HINT_T0);
                __m512i f[8];
                chunk3_vectors(qr[j] + b / 4 * LP_QGROUP_CHUNK3_WORDS, f);
#pragma GCC unroll 8
                for (int m = 0; m < 8; m++) {
                    const __m512 fm = _mm512_cvtepi32_ps(f[m]);
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++) {
                        const __m512 xv = _mm512_loadu_ps(xp + t * ldx + b * LP_QGROUP_BLOCK + 16 * m);
                        if (m % 2) th[j][t] = _mm512_fmadd_ps(fm, xv, th[j][t]);
                        else tl[j][t] = _mm512_fmadd_ps(fm, xv, tl[j][t]);
                    }
                }
            }
        }
        return;
    }
    if (chunked) {
        for (int64_t b = b0; b < b1; b += 4) {
            const chunk_masks cm = B - b >= 4 ? chunk_load_masks(bits, 4) : chunk_load_masks(bits, B - b);
            __m512i v[4][2];
#pragma GCC unroll 4
            for (int j = 0; j < R; j++) {
                _mm_prefetch((const char *)(pf[j] + (uintptr_t)(b * bits) * sizeof(uint32_t)), _MM_HINT_T0);
                if (bits == 8)
                    _mm_prefetch((const char *)(pf[j] + (uintptr_t)(b * bits) * sizeof(uint32_t) + 64), _MM_HINT_T0);
                chunk_load(qr[j] + b * bits, bits, cm, v[j]);
            }
            /* vector-outer: one x vector and one mask live at a time */
#pragma GCC unroll 8
            for (int m = 0; m < 8; m++) {
                const __m512i mask = chunk_mask(bits, m, k);
#pragma GCC unroll 4
                for (int t = 0; t < T; t++) {
                    const __m512 xv = _mm512_loadu_ps(xp + t * ldx + b * LP_QGROUP_BLOCK + 16 * m);
#pragma GCC unroll 4
                    for (int j = 0; j < R; j++) {
                        const __m512 f = _mm512_cvtepu32_ps(_mm512_and_si512(v[j][bits == 8 ? m / 4 : 0], mask));
                        if (m % 2) th[j][t] = _mm512_fmadd_ps(f, xv, th[j][t]);
                        else tl[j][t] = _mm512_fmadd_ps(f, xv, tl[j][t]);
                    }
                }
            }
        }
        return;
    }
    for (int64_t b = b0; b < b1; b++) {
        __m512 xl[4], xh[4];
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            xl[t] = _mm512_loadu_ps(xp + t * ldx + b * LP_QGROUP_BLOCK);
            xh[t] = _mm512_loadu_ps(xp + t * ldx + b * LP_QGROUP_BLOCK + 16);
        }
#pragma GCC unroll 4
        for (int j = 0; j < R; j++) {
            _mm_prefetch((const char *)(pf[j] + (uintptr_t)(b * bits) * sizeof(uint32_t)), _MM_HINT_T0);
            __m512 fl, fh;
            if (single_plane(bits)) { /* q * 2^shift, exact in f32 */
                __m512i v = bcast_plane(qr[j] + b * bits, bits);
                fl = _mm512_cvtepu32_ps(_mm512_and_si512(v, k->field[0]));
                fh = _mm512_cvtepu32_ps(_mm512_and_si512(v, k->field[1]));
            } else {
                __m512i lo, hi;
                unpack_block(qr[j] + b * bits, bits, k, &lo, &hi); /* not chunk mode: no b = 3 chunks */
                fl = _mm512_cvtepi32_ps(lo);
                fh = _mm512_cvtepi32_ps(hi);
            }
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                tl[j][t] = _mm512_fmadd_ps(fl, xl[t], tl[j][t]);
                th[j][t] = _mm512_fmadd_ps(fh, xh[t], th[j][t]);
            }
        }
    }
}

/* gemv: R rows (one token), y[r] for rows r0..r0+R-1 (clamped to r1-1);
 * prefetching R rows ahead (see the top). */
INLINE void tile(const lp_qgroup *w, const int bits, const int R, const int chunked, const float *xp,
                 const float *xsum, float *y, int64_t r0, int64_t r1, const unpack_consts *k) {
    const int64_t B = w->blocks, G = w->ngroups, ldx = lp_qkernels_ldx(w);
    const int64_t bpg = (w->group + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    const uintptr_t pass = (uintptr_t)(R * lp_qgroup_row_words(w)) * sizeof(uint32_t); /* bytes to row + R */
    const uintptr_t next = (8192 + pass - 1) / pass * pass; /* whole passes, >= 8 KB ahead */
    const uint32_t *qr[4];
    const uint16_t *sr[4];
    uintptr_t pf[4];
    int64_t rr[4];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) {
        rr[i] = r0 + i < r1 ? r0 + i : r1 - 1;
        qr[i] = w->q + rr[i] * lp_qgroup_row_words(w);
        sr[i] = w->scales + rr[i] * G;
        pf[i] = (uintptr_t)qr[i] + next; /* may lie past the array: prefetches tolerate that */
    }
    __m512 acc[4][1];
    float sf[4][16]; /* f32 scales of groups g & ~15 .. +15: one conversion per 16 groups */
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) acc[i][0] = _mm512_setzero_ps();
    for (int64_t g = 0; g < G; g++) {
        const int64_t b1 = (g + 1) * bpg < B ? (g + 1) * bpg : B;
        if (g % 16 == 0) {
            const __mmask16 m = (__mmask16)(G - g >= 16 ? 0xffffu : (1u << (G - g)) - 1u);
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) _mm512_storeu_ps(sf[i], _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, sr[i] + g)));
        }
        __m512 tl[4][4], th[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) tl[i][0] = th[i][0] = _mm512_setzero_ps();
        group_dot(bits, R, 1, chunked, qr, pf, xp, ldx, g * bpg, b1, B, k, tl, th);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
            acc[i][0] = _mm512_fmadd_ps(_mm512_add_ps(tl[i][0], th[i][0]), _mm512_set1_ps(sf[i][g % 16]), acc[i][0]);
    }
    __m512 v[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        v[i] = i < R ? _mm512_sub_ps(acc[i][0], zero_terms(w, bits, rr[i], xsum)) : _mm512_setzero_ps();
    const __m128 s = lp_hsum4_avx512(v[0], v[1], v[2], v[3]);
    if (r1 - r0 >= R && R == 4) {
        _mm_storeu_ps(y + r0, s);
    } else {
        float o[4];
        _mm_storeu_ps(o, s);
        for (int i = 0; i < R && r0 + i < r1; i++) y[r0 + i] = o[i];
    }
}

/* Several tokens: up to MT_ROWS rows at a time, walking the columns in spans
 * of whole groups whose x (T tokens x span) fits in L1, rows inside a span;
 * row-outer order would stream T x cols floats from L2 for every row.
 * Between spans the per-(row, token) accumulators wait in acc[]; the
 * operations on each are exactly those of tile(). Each load prefetches the
 * same place in the rows visited next. (A group wider than a span, e.g.
 * per-channel, makes the span that one group: correct, but x from L2.) */
enum { MT_ROWS = 16, MT_XBYTES = 16384 };

INLINE void tile_multi(const lp_qgroup *w, const int bits, const int R, const int T, const int chunked,
                       const float *xp, const float *xsum, float *y, int64_t ldy, int64_t r0, int64_t r1,
                       const unpack_consts *k) {
    const int64_t B = w->blocks, G = w->ngroups, ldx = lp_qkernels_ldx(w);
    const int64_t bpg = (w->group + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    int64_t span = MT_XBYTES / (T * LP_QGROUP_BLOCK * (int64_t)sizeof(float)) / bpg; /* groups */
    if (span < 1) span = 1;
    for (int64_t rt = r0; rt < r1; rt += MT_ROWS) {
        const int64_t nr = r1 - rt < MT_ROWS ? r1 - rt : MT_ROWS;
        __m512 acc[MT_ROWS][4];
        for (int64_t i = 0; i < nr; i++)
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) acc[i][t] = _mm512_setzero_ps();
        for (int64_t g0 = 0; g0 < G; g0 += span) {
            const int64_t g1 = g0 + span < G ? g0 + span : G;
            for (int64_t i = 0; i < nr; i += R) {
                const uint32_t *qr[2];
                const uint16_t *sr[2];
                uintptr_t pf[2];
                __m512 a[2][4];
#pragma GCC unroll 2
                for (int j = 0; j < R; j++) {
                    int64_t rr = i + j < nr ? rt + i + j : rt + nr - 1;
                    qr[j] = w->q + rr * lp_qgroup_row_words(w);
                    sr[j] = w->scales + rr * G;
                    /* the rows R down, or past the tile's last rows its first rows' next span */
                    pf[j] = i + R < nr ? (uintptr_t)qr[j] + (uintptr_t)(R * lp_qgroup_row_words(w)) * sizeof(uint32_t)
                                       : (uintptr_t)(w->q + (rt + j) * lp_qgroup_row_words(w)) +
                                             (uintptr_t)(span * bpg * bits) * sizeof(uint32_t);
#pragma GCC unroll 4
                    for (int t = 0; t < T; t++) a[j][t] = acc[i + j < nr ? i + j : nr - 1][t];
                }
                for (int64_t g = g0; g < g1; g++) {
                    const int64_t b1 = (g + 1) * bpg < B ? (g + 1) * bpg : B;
                    __m512 tl[2][4], th[2][4];
#pragma GCC unroll 8
                    for (int j = 0; j < R * T; j++) tl[j / T][j % T] = th[j / T][j % T] = _mm512_setzero_ps();
                    group_dot(bits, R, T, chunked, qr, pf, xp, ldx, g * bpg, b1, B, k, tl, th);
#pragma GCC unroll 2
                    for (int j = 0; j < R; j++) {
                        const __m512 s = _mm512_cvtph_ps(_mm256_set1_epi16((short)sr[j][g]));
#pragma GCC unroll 4
                        for (int t = 0; t < T; t++) a[j][t] = _mm512_fmadd_ps(_mm512_add_ps(tl[j][t], th[j][t]), s, a[j][t]);
                    }
                }
#pragma GCC unroll 2
                for (int j = 0; j < R; j++)
                    if (i + j < nr)
#pragma GCC unroll 4
                        for (int t = 0; t < T; t++) acc[i + j][t] = a[j][t];
            }
        }
        for (int t = 0; t < T; t++)
            for (int64_t i = 0; i < nr; i += 4) { /* as tile(): acc - zero terms, four sums at once */
                __m512 v[4];
                for (int j = 0; j < 4; j++)
                    v[j] = i + j < nr ? _mm512_sub_ps(acc[i + j][t], zero_terms(w, bits, rt + i + j, xsum + t * G))
                                      : _mm512_setzero_ps();
                float o[4];
                _mm_storeu_ps(o, lp_hsum4_avx512(v[0], v[1], v[2], v[3]));
                for (int j = 0; j < 4 && i + j < nr; j++) y[t * ldy + rt + i + j] = o[j];
            }
    }
}

/* One function per bits value so that the plane structure is compile-time. */
#define DEFINE_BITS(NB)                                                                          \
    static void gemv_b##NB(const lp_qgroup *w, const float *xp, const float *xsum, float *y,     \
                           int64_t r0, int64_t r1) {                                             \
        unpack_consts k;                                                                         \
        make_consts(NB, &k);                                                                     \
        if ((single_plane(NB) || NB == 3) && chunk_mode(w)) /* constant-false for b = 5, 6, 7 */  \
            for (int64_t r = r0; r < r1; r += 4) tile(w, NB, 4, 1, xp, xsum, y, r, r1, &k);      \
        else                                                                                     \
            for (int64_t r = r0; r < r1; r += 4) tile(w, NB, 4, 0, xp, xsum, y, r, r1, &k);      \
    }                                                                                            \
    static void multi_b##NB(const lp_qgroup *w, int64_t T, const float *xp, const float *xsum,   \
                            float *y, int64_t ldy, int64_t r0, int64_t r1) {                     \
        unpack_consts k;                                                                         \
        make_consts(NB, &k);                                                                     \
        const int c = (single_plane(NB) || NB == 3) && chunk_mode(w);                            \
        switch (T) {                                                                             \
        case 1: gemv_b##NB(w, xp, xsum, y, r0, r1); break;                                       \
        case 2:                                                                                  \
            if (c) tile_multi(w, NB, 2, 2, 1, xp, xsum, y, ldy, r0, r1, &k);                     \
            else tile_multi(w, NB, 2, 2, 0, xp, xsum, y, ldy, r0, r1, &k);                       \
            break;                                                                               \
        case 3:                                                                                  \
            if (c) tile_multi(w, NB, 1, 3, 1, xp, xsum, y, ldy, r0, r1, &k);                     \
            else tile_multi(w, NB, 1, 3, 0, xp, xsum, y, ldy, r0, r1, &k);                       \
            break;                                                                               \
        default:                                                                                 \
            if (c) tile_multi(w, NB, 1, 4, 1, xp, xsum, y, ldy, r0, r1, &k);                     \
            else tile_multi(w, NB, 1, 4, 0, xp, xsum, y, ldy, r0, r1, &k);                       \
            break;                                                                               \
        }                                                                                        \
    }                                                                                            \
    static void dequant_b##NB(const lp_qgroup *w, int64_t r0, int64_t r1, float *out) {          \
        unpack_consts k;                                                                         \
        make_consts(NB, &k);                                                                     \
        dequant_rows(w, NB, r0, r1, out, &k);                                                    \
    }

/* out = s * (float)(q - z), the same operations as dequant_ref, so bit-identical. */
INLINE void dequant_rows(const lp_qgroup *w, const int bits, int64_t r0, int64_t r1, float *out,
                         const unpack_consts *k) {
    const int64_t B = w->blocks, G = w->ngroups, cols = w->cols, n3 = lp_qgroup_chunk3_blocks(w);
    const int64_t bpg = (w->group + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    __m512i f3[8]; /* b = 3: the current chunk's values */
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *qrow = w->q + r * lp_qgroup_row_words(w);
        float *o = out + (r - r0) * cols;
        for (int64_t g = 0; g < G; g++) {
            const __m512 s = _mm512_set1_ps(_cvtsh_ss(w->scales[r * G + g]));
            const __m512i z = _mm512_set1_epi32(w->sym ? 1 << (bits - 1) : w->zeros[r * G + g]);
            const int64_t b1 = (g + 1) * bpg < B ? (g + 1) * bpg : B;
            for (int64_t b = g * bpg; b < b1; b++) {
                __m512i lo, hi;
                if (bits == 3 && b < n3) { /* groups hold whole chunks: each unpacked at its first block */
                    if (b % 4 == 0) chunk3_vectors(qrow + b / 4 * LP_QGROUP_CHUNK3_WORDS, f3);
                    lo = _mm512_permutexvar_epi32(chunk3_order(), f3[2 * (b % 4)]); /* back to column order */
                    hi = _mm512_permutexvar_epi32(chunk3_order(), f3[2 * (b % 4) + 1]);
                } else {
                    unpack_block(qrow + b * bits, bits, k, &lo, &hi);
                }
                __m512 fl = _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_sub_epi32(lo, z)));
                __m512 fh = _mm512_mul_ps(s, _mm512_cvtepi32_ps(_mm512_sub_epi32(hi, z)));
                int64_t c = b * LP_QGROUP_BLOCK, n = cols - c;
                if (n >= LP_QGROUP_BLOCK) {
                    _mm512_storeu_ps(o + c, fl);
                    _mm512_storeu_ps(o + c + 16, fh);
                } else { /* ragged end of the row */
                    _mm512_mask_storeu_ps(o + c, (__mmask16)(n >= 16 ? 0xffff : (1u << n) - 1u), fl);
                    if (n > 16) _mm512_mask_storeu_ps(o + c + 16, (__mmask16)((1u << (n - 16)) - 1u), fh);
                }
            }
        }
    }
}

DEFINE_BITS(1)
DEFINE_BITS(2)
DEFINE_BITS(3)
DEFINE_BITS(4)
DEFINE_BITS(5)
DEFINE_BITS(6)
DEFINE_BITS(7)
DEFINE_BITS(8)

typedef void (*gemv_fn)(const lp_qgroup *, const float *, const float *, float *, int64_t, int64_t);
typedef void (*multi_fn)(const lp_qgroup *, int64_t, const float *, const float *, float *, int64_t,
                         int64_t, int64_t);
typedef void (*dequant_fn)(const lp_qgroup *, int64_t, int64_t, float *);

static const gemv_fn k_gemv[9] = {0, gemv_b1, gemv_b2, gemv_b3, gemv_b4, gemv_b5, gemv_b6, gemv_b7, gemv_b8};
static const multi_fn k_multi[9] = {0, multi_b1, multi_b2, multi_b3, multi_b4, multi_b5, multi_b6, multi_b7, multi_b8};
static const dequant_fn k_deq[9] = {0, dequant_b1, dequant_b2, dequant_b3, dequant_b4,
                                    dequant_b5, dequant_b6, dequant_b7, dequant_b8};

static void gemv_avx512(const lp_qgroup *w, const float *xp, const float *xsum, float *y,
                        int64_t r0, int64_t r1) {
    k_gemv[w->bits](w, xp, xsum, y, r0, r1);
}

static void gemv_multi_avx512(const lp_qgroup *w, int64_t T, const float *xp, const float *xsum,
                              float *y, int64_t ldy, int64_t r0, int64_t r1) {
    k_multi[w->bits](w, T, xp, xsum, y, ldy, r0, r1);
}

static void dequant_avx512(const lp_qgroup *w, int64_t r0, int64_t r1, float *out) {
    k_deq[w->bits](w, r0, r1, out);
}

const lp_qkernels lp_qkernels_avx512 = {
    .name = "avx512",
    .prep_x = prep_x_avx512,
    .gemv = gemv_avx512,
    .gemv_multi = gemv_multi_avx512,
    .dequant = dequant_avx512,
    .blas_min_tokens = 48, /* T x 4096 x 4096 W4, 1 thread: packed 310 us/token at T = 48, dequant + lp_sgemm_nt 291 (sgemm ahead from T = 24 on small layers) */
};
