/*
 * qgroup_q8_avx512vnni.c - the AVX-512 VNNI kernel of the q8 decode product
 * (qgroup_q8.h has the specification and the activation layout;
 * lp_qgroup_q8_gemv_ref in qgroup_q8.c is the reference it is tested against).
 *
 * What: y[r] for a row range, W packed (bits 2, 3, 4, 8), x as int8 per chunk
 * of 128 columns. Why: memory bound instead of ALU bound (qgroup_q8.h).
 *
 * Design, per pass of R = 4 rows (they share every activation load) or, for
 * long group-128 rows but at b = 3, of one row (see pass_g1):
 *   - a chunk (4 blocks, 128 weights) of a row is one 64-byte load at b = 4
 *     (two at b = 8, a 32-byte load broadcast to both halves at b = 2);
 *     it becomes two vectors of 64 unsigned bytes, one weight per byte:
 *     b = 4: v & 0x0f.., (v >> 4) & 0x0f..; b = 8: as loaded; b = 2:
 *     (v >> per-lane counts) & 0x03.. twice. No shift moves a field across
 *     a lane, so the quantizer placed each activation at its weight's byte.
 *   - b = 3, a whole chunk (qgroup.h's chunk layout: A = 32 bytes, B = 16):
 *     A broadcast to both 256-bit halves and B to all four 128-bit lanes
 *     (broadcast loads: no shuffle uop), then per-qword bit matrices
 *     (GF2P8AFFINEQB, x -> M x over GF(2) per byte): one takes A's bits 0-2
 *     (qwords 0-3) or 3-5 (4-7) to bits 0-2, which is vector 0 (columns
 *     0..63); one takes B's field k / 16 of byte k to bits 0-1, one A's bit
 *     6 + k / 32 to bit 2, and an OR makes vector 1 (columns 64..127). 4 ops
 *     for 128 weights where the plane layout took 8 (a 256 x 11008 W3 g128
 *     product in cache, one thread: 28-32 us against 36-40), and the columns
 *     stay in order, so the quantizer's lane order is the identity.
 *   - b = 3, a row's last 1-3 blocks (plane layout: per block 2-bit words
 *     3j, 3j+1, then 1-bit word 3j+2; one masked load): b = 2's bytes, one
 *     vpermd gathering the two-bit words into b = 2's broadcast layout, and
 *     a shift by 2 (L / 8) puts byte k's two fields (those of vectors 0 and
 *     1) at bits 0-1 and 4-5. Their third bits are bits 8k + s and 8k + s + 4
 *     (s = L mod 2 + 2 (L / 8)) of the block's 1-bit word, which a second
 *     vpermd places in lane L and a rotate by s - 2 moves to bits 2 and 6
 *     of byte k (a rotate, unlike a shift, loses no bit when s < 2). One
 *     vpternlogd takes bits 0, 1, 4, 5 from the first and the rest from the
 *     second: each byte holds two 3-bit weights, split as at b = 4 (AND
 *     0x07, shift by 4 + AND): 8 ops, in b = 2's lane order.
 *   - two vpdpbusd (u8 weights x s8 activations, 4 products summed into
 *     each of 16 int32 lanes; at most 8 * 255 * 127 per lane, no overflow)
 *     give the chunk's exact integer dot in 16 partial sums;
 *   - per chunk: convert to f32 and FMA with the broadcast d_c into the
 *     group's f32 partial sums; per group: FMA with the broadcast s_g into
 *     the row's accumulator (scales converted from f16 16 groups at a time);
 *     at group 128 (one chunk per group, pass_g1) a single FMA with the
 *     factor s_g d_c, made 16 chunks at a time, and no per-group loop;
 *   - the zero-point term sum_g s_g z_g dsum_g (dsum from the quantizer) is
 *     subtracted from the same accumulator, 16 groups per FNMADD, so a row
 *     ends with one reduction, and the 4 rows of a pass share it
 *     (core/hsum_avx512.h).
 *   This reorders the specification's f32 sums (and splits its exact
 *   parenthesis into two f32 terms), so it matches the _ref to f32
 *   rounding relative to the size of the terms, not bitwise.
 *   - Memory: each chunk load prefetches ahead: in a 4-row pass the same
 *     place 4 rows down, the rows of the next pass (a row is a few KB, too
 *     short for the hardware prefetcher to lock on), as qgroup_avx512.c
 *     does, or whole passes further to reach 8 KB ahead (short rows). So
 *     do the loads of 16 scales and zeros (their arrays are two more
 *     streams; prefetching them gained 5-15% on Zen 5). Prefetching 8, 12
 *     or 16 rows down measured slower, L2 hints (_MM_HINT_T1/T2) and
 *     non-temporal ones no better.
 *
 * Several tokens (lp_qgroup_q8_gemm_avx512vnni, prefill under q8-all):
 *   pass_tokens runs four rows x up to four tokens (16 accumulators): each
 *   chunk of a row is unpacked once and fed to every token, each token's
 *   activations loaded once for the four rows; per chunk one FMA per (row,
 *   token) with s_g(c) d_tc, the zero-point terms per 16 groups first. Rows
 *   go in 64-row tiles (a tile's weights stay in L2 while every token
 *   passes), tokens four at a time (their activations stay in L1).
 * Also here: the vector copy of the activation quantizer (bit-identical to
 * lp_qgroup_q8_quantize_ref, ~6x faster), so that the serial quantization
 * stays well under 1% of a 2-thread product.
 *   - Rows past r1 in the last pass repeat row r1 - 1 and are not stored;
 *     a row's last chunk loads only its valid words (masked), so the end of
 *     the array is never read.
 */
#include "format/qgroup_q8.h"

#include "core/half.h"
#include "core/hsum_avx512.h"

#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

enum { R = 4 }; /* rows per pass */

/* Word masks of a chunk's loads: nb valid blocks (1..4) of w words each;
 * m1 covers words 16..31 (b = 8 only). */
typedef struct {
    __mmask16 m0, m1;
    int whole; /* nb == 4: at b = 3 the chunk layout, else the plane layout */
} chunk_masks;

INLINE chunk_masks chunk_load_masks(int bits, int64_t nb) {
    const unsigned n = (unsigned)(bits * nb);
    chunk_masks cm;
    cm.whole = nb == 4;
    cm.m0 = (__mmask16)(n >= 16 ? 0xffffu : (1u << n) - 1u);
    cm.m1 = (__mmask16)(n > 16 ? (n >= 32 ? 0xffffu : (1u << (n - 16)) - 1u) : 0u);
    return cm;
}

/* The chunk's 128 weights as unsigned bytes, in the two vectors' lane
 * order (see the top). */
INLINE void chunk_bytes(const int bits, const uint32_t *p, chunk_masks cm, __m512i *lo_, __m512i *hi_) {
    __m512i lo, hi;
    if (bits == 8) {
        lo = _mm512_maskz_loadu_epi32(cm.m0, p);
        hi = _mm512_maskz_loadu_epi32(cm.m1, p + 16);
    } else if (bits == 4) {
        const __m512i v = _mm512_maskz_loadu_epi32(cm.m0, p), nib = _mm512_set1_epi8(0x0f);
        lo = _mm512_and_si512(v, nib);
        hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), nib);
    } else if (bits == 3 && cm.whole) { /* the chunk's 128 values in column order (qgroup.h) */
        const __m512i a = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p)); /* byte k: A[k mod 32] */
        const __m512i b = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(p + 8))); /* B[k mod 16] */
        /* bit matrices per qword (row of output bit i = byte 7 - i): bits 0-2 (qwords 0-3) or 3-5
         * (4-7) to 0-2; B's field k / 16 to bits 0-1; A's bit 6 + k / 32 to bit 2 */
        const __m512i mu = _mm512_set_epi64(0x0810200000000000ll, 0x0810200000000000ll, 0x0810200000000000ll,
                                            0x0810200000000000ll, 0x0102040000000000ll, 0x0102040000000000ll,
                                            0x0102040000000000ll, 0x0102040000000000ll);
        const __m512i mv = _mm512_set_epi64(0x4080000000000000ll, 0x4080000000000000ll, 0x1020000000000000ll,
                                            0x1020000000000000ll, 0x0408000000000000ll, 0x0408000000000000ll,
                                            0x0102000000000000ll, 0x0102000000000000ll);
        const __m512i mt = _mm512_set_epi64(0x0000800000000000ll, 0x0000800000000000ll, 0x0000800000000000ll,
                                            0x0000800000000000ll, 0x0000400000000000ll, 0x0000400000000000ll,
                                            0x0000400000000000ll, 0x0000400000000000ll);
        lo = _mm512_gf2p8affine_epi64_epi8(a, mu, 0);
        hi = _mm512_or_si512(_mm512_gf2p8affine_epi64_epi8(b, mv, 0), _mm512_gf2p8affine_epi64_epi8(a, mt, 0));
    } else if (bits == 3) { /* a row's last 1-3 blocks, plane layout: b = 2's bytes with the third bit joined in */
        const __m512i v = _mm512_maskz_loadu_epi32(cm.m0, p); /* block j: 2-bit words 3j, 3j+1, 1-bit word 3j+2 */
        const __m512i w2 = _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 1, 3, 4, 6, 7, 9, 10, 0, 1, 3, 4, 6, 7, 9, 10), v);
        const __m512i w1 = _mm512_permutexvar_epi32(_mm512_setr_epi32(2, 2, 5, 5, 8, 8, 11, 11, 2, 2, 5, 5, 8, 8, 11, 11), v);
        /* lane L: 2-bit word L mod 8 shifted by t = 2 (L / 8): fields at bits 8k, 8k + 4 of byte k */
        const __m512i a = _mm512_srlv_epi32(w2, _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2));
        /* their third bits (1-bit word bits 8k + L%2 + t, + 4) rotated to bits 8k + 2, 8k + 6 */
        const __m512i b =
            _mm512_rorv_epi32(w1, _mm512_setr_epi32(30, 31, 30, 31, 30, 31, 30, 31, 0, 1, 0, 1, 0, 1, 0, 1));
        /* bits 0, 1, 4, 5 of each byte from a, the others from b (0xe4: c ? a : b, with a
         * first so that it, not the constant, is the register overwritten): two 3-bit weights per byte */
        const __m512i n = _mm512_ternarylogic_epi32(a, b, _mm512_set1_epi8(0x33), 0xe4);
        const __m512i low3 = _mm512_set1_epi8(0x07);
        lo = _mm512_and_si512(n, low3);
        hi = _mm512_and_si512(_mm512_srli_epi32(n, 4), low3);
    } else { /* lane L holds word L mod 8, shifted by 2 (2h + L / 8) for vector h */
        const __m512i v = _mm512_broadcast_i32x8(_mm256_maskz_loadu_epi32((__mmask8)cm.m0, p));
        const __m512i two = _mm512_set1_epi8(0x03);
        const __m512i s0 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
        lo = _mm512_and_si512(_mm512_srlv_epi32(v, s0), two);
        hi = _mm512_and_si512(_mm512_srlv_epi32(v, _mm512_add_epi32(s0, _mm512_set1_epi32(4))), two);
    }
    *lo_ = lo;
    *hi_ = hi;
}

/* The chunk's exact int32 dot with xq (xlo = bytes 0..63, xhi = 64..127 of
 * the chunk's activations), as 16 partial sums. */
INLINE __m512i chunk_dot(const int bits, const uint32_t *p, chunk_masks cm, __m512i xlo, __m512i xhi) {
    __m512i lo, hi;
    chunk_bytes(bits, p, cm, &lo, &hi);
    return _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo), hi, xhi);
}

/* The rows of a pass (nr = 1 or R): their packed weights, scales and zeros,
 * and where to prefetch. Rows past r1 repeat r1 - 1. */
typedef struct {
    const uint32_t *q[R];
    const uint16_t *s[R];
    const uint8_t *z[R]; /* NULL when symmetric */
    const char *pf[R];   /* may lie past the array: only prefetched */
    int64_t pfs;         /* the next pass's scales and zeros: nr * ngroups further on */
} pass_rows;

enum { PF_MIN = 8192 }; /* prefetches reach at least this many bytes ahead */

/* Each load prefetches the same place in a later pass: the next one, or as
 * many passes on as make PF_MIN bytes (short rows: one pass ahead is too
 * close to cover the DRAM latency; llama-25m's W8 head, 384 columns, decoded
 * 7-16% faster at 8 KB than at 1.5 KB ahead). */
INLINE void pass_rows_init(const lp_qgroup *w, const int nr, int64_t r0, int64_t r1, pass_rows *p) {
    const int64_t words = lp_qgroup_row_words(w), G = w->ngroups; /* per row */
    const size_t row_bytes = (size_t)words * sizeof(uint32_t);
    const size_t pass_bytes = (size_t)nr * row_bytes; /* whole passes ahead, at least PF_MIN bytes */
    const size_t ahead = (PF_MIN + pass_bytes - 1) / pass_bytes * pass_bytes;
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++) {
        const int64_t r = r0 + i < r1 ? r0 + i : r1 - 1;
        p->q[i] = w->q + r * words;
        p->s[i] = w->scales + r * G;
        p->z[i] = w->sym ? NULL : w->zeros + r * G;
        p->pf[i] = (const char *)p->q[i] + ahead;
    }
    p->pfs = nr * G;
}

/* Groups g .. g+15 (those below G) of the pass's rows: their f32 scales
 * into sc[i], and their zero-point term sum s_g z_g dsum_g subtracted from
 * acc[i]; prefetches the next pass's scales and zeros. */
INLINE void scales16(const lp_qgroup *w, const int bits, const int nr, const lp_q8_act *a, const pass_rows *p,
                     int64_t g, __m512 sc[R], __m512 acc[R]) {
    const int64_t G = w->ngroups;
    const __mmask16 m = (__mmask16)(G - g >= 16 ? 0xffffu : (1u << (G - g)) - 1u);
    const __m512 ds = _mm512_maskz_loadu_ps(m, a->dsum + g);
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++) {
        _mm_prefetch((const char *)(p->s[i] + p->pfs + g), _MM_HINT_T0);
        if (!w->sym) _mm_prefetch((const char *)(p->z[i] + p->pfs + g), _MM_HINT_T0);
        sc[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p->s[i] + g));
        const __m512 z = w->sym ? _mm512_set1_ps((float)(1 << (bits - 1)))
                                : _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p->z[i] + g)));
        acc[i] = _mm512_fnmadd_ps(_mm512_mul_ps(sc[i], z), ds, acc[i]);
    }
}

/* Row i's dot with chunk c as 16 f32 partial sums (exact integers), and
 * the prefetch ahead of it. */
INLINE __m512 chunk_f32(const int bits, const pass_rows *p, int i, int64_t c, chunk_masks cm, __m512i xlo, __m512i xhi) {
    const size_t off = (size_t)(c * 4 * bits) * sizeof(uint32_t);
    _mm_prefetch(p->pf[i] + off, _MM_HINT_T0);
    if (bits == 8) _mm_prefetch(p->pf[i] + off + 64, _MM_HINT_T0);
    return _mm512_cvtepi32_ps(chunk_dot(bits, p->q[i] + c * 4 * bits, cm, xlo, xhi));
}

/* Chunk c of the pass's rows, each times its factor f[i][k] (s_c d_c),
 * added to acc[i]. */
INLINE void chunk_g1(const int bits, const int nr, const pass_rows *p, const lp_q8_act *a, int64_t c, chunk_masks cm,
                     const float (*f)[16], int64_t k, __m512 *acc) {
    const __m512i xlo = _mm512_load_si512(a->xq + c * LP_Q8_CHUNK);
    const __m512i xhi = _mm512_load_si512(a->xq + c * LP_Q8_CHUNK + 64);
#pragma GCC unroll 4
    for (int i = 0; i < nr; i++)
        acc[i] = _mm512_fmadd_ps(chunk_f32(bits, p, i, c, cm, xlo, xhi), _mm512_set1_ps(f[i][k]), acc[i]);
}

/* pass() for groups of exactly one chunk (group 128, the common case):
 * s_g d_c is one factor per chunk, made 16 chunks at a time, so a chunk
 * costs one FMA instead of two and no per-group loop. The loop runs over
 * blocks of 16 chunks, full chunks with constant load masks (unrolled by
 * two) and the row's ragged last chunk apart (no mask or branch per chunk:
 * in L1, 8% faster than a chunk per iteration with a mask each; a second
 * accumulator for odd chunks, written out by hand, measured 20% slower).
 * Rows per pass (gemv_b*): nr = 1 reads one sequential stream, from DRAM
 * ~22% faster at W4 and 10-14% at W8 (4096 x 11008 and 11008 x 4096, one
 * thread; also ahead at two) than four rows' streams side by side, and no
 * slower in L1. W3's unpacking costs more ALU work, and there the four
 * rows sharing each activation load win (nr = R). */
INLINE void pass_g1(const lp_qgroup *w, const int bits, const int nr, const lp_q8_act *a, float *y, int64_t r0,
                    int64_t r1) {
    const int64_t B = w->blocks, C = a->nchunks; /* C == ngroups */
    pass_rows p;
    pass_rows_init(w, nr, r0, r1, &p);
    __m512 acc[R];
    float sd[R][16]; /* s_c d_c of chunks c0 .. c0+15 */
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
    const chunk_masks full = chunk_load_masks(bits, 4);
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
        __m512 sc[R];
        scales16(w, bits, nr, a, &p, c0, sc, acc);
        const __m512 d = _mm512_maskz_loadu_ps((__mmask16)(C - c0 >= 16 ? 0xffffu : (1u << (C - c0)) - 1u), a->d + c0);
#pragma GCC unroll 4
        for (int i = 0; i < nr; i++) _mm512_storeu_ps(sd[i], _mm512_mul_ps(sc[i], d));
        const int64_t c1 = c0 + 16 < C ? c0 + 16 : C, cf = c1 < C ? c1 : C - 1; /* [c0, cf): full chunks */
#pragma GCC unroll 2
        for (int64_t c = c0; c < cf; c++) chunk_g1(bits, nr, &p, a, c, full, (const float(*)[16])sd, c - c0, acc);
        if (cf < c1)
            chunk_g1(bits, nr, &p, a, cf, chunk_load_masks(bits, B - 4 * cf), (const float(*)[16])sd, cf - c0, acc);
    }
    if (nr == 1) {
        y[r0] = _mm512_reduce_add_ps(acc[0]);
        return;
    }
    const int64_t n = r1 - r0 < R ? r1 - r0 : R;
    _mm_mask_storeu_ps(y + r0, (__mmask8)((1u << n) - 1u), lp_hsum4_avx512(acc[0], acc[1], acc[2], acc[3]));
}

/* y[r0 .. r0+3] (those below r1). */
INLINE void pass(const lp_qgroup *w, const int bits, const lp_q8_act *a, float *y, int64_t r0, int64_t r1) {
    const int64_t B = w->blocks, G = w->ngroups, C = a->nchunks;
    const int64_t cpg = G == 1 ? C : w->group / LP_Q8_CHUNK; /* chunks per group */
    pass_rows p;
    pass_rows_init(w, R, r0, r1, &p);
    __m512 acc[R];
    float sf[R][16]; /* f32 scales of groups g & ~15 .. +15 */
#pragma GCC unroll 4
    for (int i = 0; i < R; i++) acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < G; g++) {
        if (g % 16 == 0) { /* scales of 16 groups */
            __m512 sc[R];
            scales16(w, bits, R, a, &p, g, sc, acc);
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) _mm512_storeu_ps(sf[i], sc[i]);
        }
        const int64_t c0 = g * cpg, c1 = c0 + cpg < C ? c0 + cpg : C;
        __m512 ga[R]; /* sum over the group's chunks of d_c * dot_c */
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) ga[i] = _mm512_setzero_ps();
        for (int64_t c = c0; c < c1; c++) {
            const int64_t b = 4 * c;
            const chunk_masks cm = chunk_load_masks(bits, B - b >= 4 ? 4 : B - b);
            const __m512i xlo = _mm512_load_si512(a->xq + c * LP_Q8_CHUNK);
            const __m512i xhi = _mm512_load_si512(a->xq + c * LP_Q8_CHUNK + 64);
            const __m512 d = _mm512_set1_ps(a->d[c]);
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) ga[i] = _mm512_fmadd_ps(chunk_f32(bits, &p, i, c, cm, xlo, xhi), d, ga[i]);
        }
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) acc[i] = _mm512_fmadd_ps(ga[i], _mm512_set1_ps(sf[i][g % 16]), acc[i]);
    }
    const int64_t n = r1 - r0 < R ? r1 - r0 : R;
    _mm_mask_storeu_ps(y + r0, (__mmask8)((1u << n) - 1u), lp_hsum4_avx512(acc[0], acc[1], acc[2], acc[3]));
}

/* ---- several tokens (prefill with 8-bit activations) ---- */

enum { NTMAX = 4 }; /* tokens per pass: R x NTMAX = 16 accumulators */

/* The factors s_g(c) of chunks c0 .. c0+15 (those below C) of the row whose
 * scales start at s: 16 scales at group 128, else each chunk's group's. */
INLINE __m512 chunk_scales16(const lp_qgroup *w, const uint16_t *s, int64_t C, int64_t cpg, int64_t c0) {
    const __mmask16 m = (__mmask16)(C - c0 >= 16 ? 0xffffu : (1u << (C - c0)) - 1u);
    if (cpg == 1) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, s + c0));
    float f[16];
    for (int k = 0; k < 16; k++) {
        const int64_t c = c0 + k < C ? c0 + k : C - 1, g = c / cpg < w->ngroups ? c / cpg : w->ngroups - 1;
        f[k] = lp_f16_to_f32(s[g]);
    }
    return _mm512_maskz_loadu_ps(m, f);
}

/* Rows r0 .. r0+3 (those below r1) for nt tokens (activations a[0 .. nt-1],
 * Y[t * ldy + r]): each (row, token) pair adds, per chunk, the exact dot as
 * 16 f32 partial sums times s_g(c) d_tc (one FMA), and per 16 groups its
 * zero-point term s_g z_g dsum_tg lane-wise; one unpacked chunk of a row
 * feeds all nt tokens, one activation load all four rows. */
INLINE void pass_tokens(const lp_qgroup *w, const int bits, const int nt, const lp_q8_act *a, float *Y, int64_t ldy,
                        int64_t r0, int64_t r1) {
    const int64_t B = w->blocks, G = w->ngroups, C = a[0].nchunks;
    const int64_t cpg = G == 1 ? C : w->group / LP_Q8_CHUNK;
    pass_rows p;
    pass_rows_init(w, R, r0, r1, &p);
    __m512 acc[R][NTMAX];
#pragma GCC unroll 4
    for (int i = 0; i < R; i++)
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) acc[i][t] = _mm512_setzero_ps();
    for (int64_t g0 = 0; g0 < G; g0 += 16) { /* zero-point terms */
        const __mmask16 m = (__mmask16)(G - g0 >= 16 ? 0xffffu : (1u << (G - g0)) - 1u);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            const __m512 z = w->sym ? _mm512_set1_ps((float)(1 << (bits - 1)))
                                    : _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, p.z[i] + g0)));
            const __m512 sz = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p.s[i] + g0)), z);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) acc[i][t] = _mm512_fnmadd_ps(sz, _mm512_maskz_loadu_ps(m, a[t].dsum + g0), acc[i][t]);
        }
    }
    float f[R][NTMAX][16]; /* s_g(c) d_tc of chunks c0 .. c0+15 */
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
        const __mmask16 m = (__mmask16)(C - c0 >= 16 ? 0xffffu : (1u << (C - c0)) - 1u);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            const __m512 sc = chunk_scales16(w, p.s[i], C, cpg, c0);
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) _mm512_storeu_ps(f[i][t], _mm512_mul_ps(sc, _mm512_maskz_loadu_ps(m, a[t].d + c0)));
        }
        const int64_t c1 = c0 + 16 < C ? c0 + 16 : C;
        for (int64_t c = c0; c < c1; c++) {
            const chunk_masks cm = chunk_load_masks(bits, B - 4 * c >= 4 ? 4 : B - 4 * c);
            __m512i xlo[NTMAX], xhi[NTMAX];
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                xlo[t] = _mm512_load_si512(a[t].xq + c * LP_Q8_CHUNK);
                xhi[t] = _mm512_load_si512(a[t].xq + c * LP_Q8_CHUNK + 64);
            }
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                const size_t off = (size_t)(c * 4 * bits) * sizeof(uint32_t);
                _mm_prefetch(p.pf[i] + off, _MM_HINT_T0);
                if (bits == 8) _mm_prefetch(p.pf[i] + off + 64, _MM_HINT_T0);
                __m512i lo, hi;
                chunk_bytes(bits, p.q[i] + c * 4 * bits, cm, &lo, &hi);
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    const __m512i dot = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xlo[t]), hi, xhi[t]);
                    acc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(f[i][t][c - c0]), acc[i][t]);
                }
            }
        }
    }
    const int64_t n = r1 - r0 < R ? r1 - r0 : R;
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        _mm_mask_storeu_ps(Y + t * ldy + r0, (__mmask8)((1u << n) - 1u),
                           lp_hsum4_avx512(acc[0][t], acc[1][t], acc[2][t], acc[3][t]));
}

/* Rows [r0, r1) for T tokens: 64-row tiles (their weights stay in L2 while
 * every token passes), tokens four at a time (their activations stay in
 * L1 across the tile's passes of four rows). */
#define DEFINE_TOKENS(NB)                                                                                         \
    static void gemm_b##NB(const lp_qgroup *w, const lp_q8_act *a, int64_t T, float *Y, int64_t ldy, int64_t r0,  \
                           int64_t r1) {                                                                          \
        for (int64_t q0 = r0; q0 < r1; q0 += 64) {                                                             \
            const int64_t q1 = q0 + 64 < r1 ? q0 + 64 : r1;                                                    \
            for (int64_t t = 0; t < T; t += NTMAX) {                                                              \
                const int64_t n = T - t < NTMAX ? T - t : NTMAX;                                                  \
                for (int64_t r = q0; r < q1; r += R) switch (n) {                                               \
                    case 1: pass_tokens(w, NB, 1, a + t, Y + t * ldy, ldy, r, q1); break;                        \
                    case 2: pass_tokens(w, NB, 2, a + t, Y + t * ldy, ldy, r, q1); break;                        \
                    case 3: pass_tokens(w, NB, 3, a + t, Y + t * ldy, ldy, r, q1); break;                        \
                    default: pass_tokens(w, NB, 4, a + t, Y + t * ldy, ldy, r, q1); break;                       \
                    }                                                                                             \
            }                                                                                                     \
        }                                                                                                         \
    }
DEFINE_TOKENS(2)
DEFINE_TOKENS(3)
DEFINE_TOKENS(4)
DEFINE_TOKENS(8)

void lp_qgroup_q8_gemm_avx512vnni(const lp_qgroup *w, const lp_q8_act *a, int64_t T, float *Y, int64_t ldy, int64_t r0,
                                  int64_t r1) {
    switch (w->bits) {
    case 2: gemm_b2(w, a, T, Y, ldy, r0, r1); break;
    case 3: gemm_b3(w, a, T, Y, ldy, r0, r1); break;
    case 4: gemm_b4(w, a, T, Y, ldy, r0, r1); break;
    default: gemm_b8(w, a, T, Y, ldy, r0, r1); break;
    }
}

/* Column order -> lane order without gathers: lane l of output vector m
 * (0..7) is column col = lp_qgroup_q8_lane_col(bits, whole, 16m + l) of the
 * chunk, i.e. element col & 31 of block col / 32 (two vectors). Per block
 * that vector m uses, one two-source permute and a masked move; none for
 * the identity (b = 3's whole chunks). */
typedef struct {
    __m512i idx[8];      /* col & 31 of each lane */
    __mmask16 in[8][4];  /* lanes of vector m taken from block j */
    int ident;           /* lane order == column order */
} lane_perm;

static void make_lane_perm(int bits, int whole, lane_perm *lp) {
    lp->ident = 1;
    for (int p = 0; p < LP_Q8_CHUNK; p++) lp->ident &= lp_qgroup_q8_lane_col(bits, whole, p) == p;
    for (int m = 0; m < 8; m++) {
        int32_t idx[16];
        for (int j = 0; j < 4; j++) lp->in[m][j] = 0;
        for (int l = 0; l < 16; l++) {
            const int col = lp_qgroup_q8_lane_col(bits, whole, 16 * m + l);
            idx[l] = col & 31;
            lp->in[m][col / 32] |= (__mmask16)(1u << l);
        }
        lp->idx[m] = _mm512_loadu_si512(idx);
    }
}

/* lp[whole]: the orders of w's partial and whole chunks (the same but at
 * b = 3; the partial one only when w's rows end in one). */
static void make_lane_perms(const lp_qgroup *w, lane_perm lp[2]) {
    make_lane_perm(w->bits, 1, &lp[1]);
    if (w->bits == 3 && w->blocks % 4) make_lane_perm(w->bits, 0, &lp[0]);
    else lp[0] = lp[1];
}

INLINE __m512 to_lanes(const __m512 v[8], const lane_perm *lp, int m) {
    if (lp->ident) return v[m];
    __m512 r = _mm512_setzero_ps();
    for (int j = 0; j < 4; j++) /* b = 4, 8: one block per vector; b = 2: two */
        if (lp->in[m][j]) r = _mm512_mask_mov_ps(r, lp->in[m][j], _mm512_permutex2var_ps(v[2 * j], lp->idx[m], v[2 * j + 1]));
    return r;
}

/* The scalar quantizer (qgroup_q8.c) with vectors, bit for bit: the same
 * division, the same rounding (vrndscaleps to nearest even = rint), the same
 * clamp, the same maximum (of finite values), the same integer sums, and
 * dsum from the same scalar function. */
static void quantize_one(const lp_qgroup *w, const lane_perm lpp[2], const float *x, lp_q8_act *a) {
    const int64_t C = a->nchunks, cols = w->cols;
    for (int64_t c = 0; c < C; c++) {
        const lane_perm *lp = &lpp[lp_qgroup_q8_whole(w, c)];
        const int64_t c0 = c * LP_Q8_CHUNK;
        __m512 v[8], u[8], amax = _mm512_setzero_ps();
        for (int m = 0; m < 8; m++) { /* column order; zero past cols */
            const int64_t n = cols - c0 - 16 * m;
            const __mmask16 k = (__mmask16)(n >= 16 ? 0xffffu : n <= 0 ? 0u : (1u << n) - 1u);
            v[m] = _mm512_maskz_loadu_ps(k, x + c0 + 16 * m);
            amax = _mm512_max_ps(amax, _mm512_abs_ps(v[m]));
        }
        for (int m = 0; m < 8; m++) u[m] = to_lanes(v, lp, m);
        const float d = _mm512_reduce_max_ps(amax) / 127.0f;
        __m512i s = _mm512_setzero_si512();
        for (int m = 0; m < 8; m++) {
            __m512 r = d == 0.0f ? _mm512_setzero_ps()
                                 : _mm512_roundscale_ps(_mm512_div_ps(u[m], _mm512_set1_ps(d)),
                                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-127.0f)), _mm512_set1_ps(127.0f));
            const __m512i q = _mm512_cvtps_epi32(r);
            s = _mm512_add_epi32(s, q);
            _mm_store_si128((__m128i *)(a->xq + c0 + 16 * m), _mm512_cvtepi32_epi8(q));
        }
        a->d[c] = d;
        a->sum[c] = _mm512_reduce_add_epi32(s);
    }
    lp_qgroup_q8_group_sums(w, a); /* in qgroup_q8.c: here -mfma would contract it into an FMA */
}

void lp_qgroup_q8_quantize_avx512vnni(const lp_qgroup *w, const float *x, lp_q8_act *a) {
    lane_perm lp[2];
    make_lane_perms(w, lp);
    quantize_one(w, lp, x, a);
}

void lp_qgroup_q8_quantize_tokens_avx512vnni(const lp_qgroup *w, const float *X, int64_t T, lp_q8_act *a) {
    lane_perm lp[2]; /* once for all the tokens: ~130 lane lookups, a third of a short row's quantization */
    make_lane_perms(w, lp);
    for (int64_t t = 0; t < T; t++) quantize_one(w, lp, X + t * w->cols, &a[t]);
}

/* One function per bits value so that the unpacking is compile-time.
 * Group 128 rows of at least 16 chunks run one row per pass but at b = 3
 * (pass_g1); shorter rows lie close together anyway, and four rows per
 * pass share more of each pass's fixed work. */
#define DEFINE_BITS(NB)                                                                                     \
    static void gemv_b##NB(const lp_qgroup *w, const lp_q8_act *a, float *y, int64_t r0, int64_t r1) {     \
        const bool g1 = w->ngroups > 1 && w->group == LP_Q8_CHUNK;                                          \
        if (g1 && NB != 3 && a->nchunks >= 16)                                                              \
            for (int64_t r = r0; r < r1; r++) pass_g1(w, NB, 1, a, y, r, r1);                               \
        else                                                                                                \
            for (int64_t r = r0; r < r1; r += R)                                                            \
                if (g1) pass_g1(w, NB, R, a, y, r, r1);                                                     \
                else pass(w, NB, a, y, r, r1);                                                              \
    }
DEFINE_BITS(2)
DEFINE_BITS(3)
DEFINE_BITS(4)
DEFINE_BITS(8)

void lp_qgroup_q8_gemv_avx512vnni(const lp_qgroup *w, const lp_q8_act *a, float *y, int64_t r0, int64_t r1) {
    switch (w->bits) {
    case 2: gemv_b2(w, a, y, r0, r1); break;
    case 3: gemv_b3(w, a, y, r0, r1); break;
    case 4: gemv_b4(w, a, y, r0, r1); break;
    default: gemv_b8(w, a, y, r0, r1); break;
    }
}
