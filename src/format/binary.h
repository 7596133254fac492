/*
 * binary.h - the "binary" format: about one bit per weight, as BiLLM,
 * ARB-LLM and PB-LLM leave a linear: sign planes, per-(row, block) means and
 * scales for a few groups of weights, a salient-column bitmap, optional
 * column scales, and optionally a few weights held at 8 or 16 bits.
 *
 * What: W (rows x cols, out x in, row-major; y = x W^T; cols a multiple of
 *   32, so no plane has padding bits past cols) is cut into column blocks of
 *   `block` columns (a multiple of 32 that divides cols; block = cols for one
 *   block per row). Within block j of row r each weight belongs
 *   to one group:
 *     salient columns (colmask bit set; the same columns for every row):
 *       group gs = (ngs == 2 ? b2 : 0), two sign planes s0, s1 (s1 = b1);
 *     other columns: group gn = (ngn == 2 ? b1 : 0), one sign plane s0;
 *   s = +1 where the plane's bit is 1, -1 where it is 0. The value is, in f32,
 *   with the f16 parameters P = rp[(r * nblocks + j) * npr ...] converted:
 *     mean mode (rc == false), npr = 3 ngs + 2 ngn:
 *       P = [mu, a0, a1] per salient group, then [mu, a0] per other group;
 *       salient:  v = (s0 a0 + s1 a1) + mu      (products exact: s = +-1)
 *       other:    v = s0 a0 + mu
 *     row-column mode (rc == true, ARB-RC: no means), npr = 2 ngs + ngn:
 *       P = [r0, r1] per salient group, then [r] per other group; the column
 *       scales cp[k * cols + c] (f16), k = 2 gs + plane for salient groups,
 *       2 ngs + gn for the others (ncp = 2 ngs + ngn vectors):
 *       salient:  v = s0 (r0 c0[c]) + s1 (r1 c1[c])
 *       other:    v = s0 (r c[c])
 *     held weights (held == true, PB-LLM's salient weights): where hmask's
 *       bit is set the value is instead, taking the weight's entry k in
 *       row-major order of the set hmask bits,
 *       hbits == 8:  v = S_r (codes[k] - Z_r)   (f32: hq[2 r] = S_r,
 *                    hq[2 r + 1] = Z_r; codes[k] an 8-bit code on the row's
 *                    min-max grid)
 *       hbits == 16: v = f16_to_f32(codes16[k])  (the value itself, f16;
 *                    no grid, no hq)
 *   lp_binary_value below is that definition in code; every kernel's
 *   dequantization is bit-identical to it.
 * Storage (little-endian; words = cols / 32 per row):
 *   s0       uint32 (rows, words)       plane 0, bit c % 32 of word c / 32
 *   b1       uint32 (rows, words)       when ngs > 0 or ngn == 2: s1 on salient
 *                                       columns, the group bit elsewhere
 *   colmask  uint32 (1, words)          when ngs > 0: salient columns
 *   b2       uint32 (rows, words2)      when ngs == 2: the salient group bit of
 *                                       row r's salient columns in column
 *                                       order, nsal = popcount(colmask) bits,
 *                                       words2 = ceil(nsal / 32); padding 0
 *   rp       f16    (rows, nblocks npr) per (row, block) parameters
 *   cp       f16    (ncp, cols)         when rc
 *   hmask    uint32 (rows, words)       when held
 *   codes    uint8  (1, nheld)          when held, hbits 8; nheld =
 *                                       popcount(hmask)
 *   codes16  f16    (1, nheld)          when held, hbits 16 (instead of codes)
 *   hq       f32    (rows, 2)           when held, hbits 8: S_r, Z_r
 *   Exact bytes: the sum of the arrays present (lp_binary_nbytes). Derived
 *   at init/load, not stored: sal_before (nblocks + 1, salient columns before
 *   block j) and hoff (rows + 1, held weights before row r).
 * Checkpoint: tensors <base>.s0, .b1, .colmask, .b2, .rp, .cp, .hmask, .codes,
 *   .hq as present (.b2 is [rows, 0] when nsal = 0, .codes [1, 0] when no
 *   weight is held); with hbits 16, .codes is codes16 (F16 [1, nheld]) and
 *   there is no .hq. Description {"format":"binary","block":B,"ngs":G,
 *   "ngn":N,"rc":bool,"held":bool}, plus "hbits":16 for held f16 weights (no
 *   "hbits": 8, as in files written before hbits existed). Load checks
 *   everything as untrusted input (shapes, cols a multiple of 32, finite
 *   parameters and column scales, b2 padding zero, b1 present as required,
 *   hbits 8 or 16, codes count equal to popcount(hmask); hbits 8: S_r finite
 *   and >= 0 with 255 S_r finite, Z_r an integer in [0, 255]; hbits 16:
 *   every held value finite).
 * Products, Y (T x rows) = X (T x cols) W^T, on the shared row-kernel driver
 *   (rowgemm.h): the reference kernel (binary_ref.c) computes per row r and
 *   token t, in f32, y = sum over c in order of lp_binary_value(r, c) x_c;
 *   the AVX2 / AVX-512 kernels build each (row, block)'s values the same way
 *   (a 16-entry table indexed by s0 | b1 << 1 | b2 << 2 | sal << 3 in mean
 *   mode) and sum in per-lane partial sums: they match the reference to
 *   rounding. Dequantization is bit-identical at every level.
 * Papers' bit count (lp_binary_paper_bits): 1 bit per weight, +1 per weight
 *   of a salient column (the second plane), +(hbits - 1) per held weight (+7
 *   for 8-bit codes, +15 for f16 values: hbits bits in all); scales, means,
 *   bitmaps and indices not counted, as BiLLM / PB-LLM count.
 */
#ifndef LP_BINARY_H
#define LP_BINARY_H

#include "core/half.h"
#include "format/format.h"
#include "format/rowgemm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LP_BINARY_MAX_T 4 /* tokens per pass of a packed kernel over a row */

typedef struct {
    int64_t rows, cols, block, nblocks, words;
    int ngs;   /* salient-column groups: 0 (no salient columns), 1, or 2 (ARB-LLM's column-group bitmap) */
    int ngn;   /* groups of the other columns: 1 or 2 (BiLLM's break point) */
    bool rc;   /* row x column scales, no means (ARB-RC) */
    bool held; /* some weights held at 8 or 16 bits (PB-LLM) */
    int hbits; /* bits of a held weight: 8 (codes on a per-row grid) or 16 (f16 values); 8 when !held */
    int npr, ncp;       /* f16 parameters per (row, block); column-scale vectors */
    int64_t nsal;       /* salient columns (popcount of colmask) */
    int64_t words2;     /* ceil(nsal / 32): b2 words per row */
    int64_t nheld;      /* held weights */
    uint32_t *s0, *b1, *colmask, *b2, *hmask;
    uint16_t *rp, *cp;
    uint8_t *codes;    /* hbits 8 */
    uint16_t *codes16; /* hbits 16: f16 values */
    float *hq;         /* hbits 8 */
    int64_t *sal_before; /* nblocks + 1 (derived) */
    int64_t *hoff;       /* rows + 1 (derived) */
    int owns;            /* 1: the stored arrays are malloc'd (the derived ones always are) */
} lp_binary;

/* The layout of a binary weight, before its contents are known. */
typedef struct {
    int64_t block;
    int ngs, ngn;
    bool rc, held;
    int hbits; /* with held: 8 or 16; 0 means 8 */
} lp_binary_shape;

/* Zero-filled storage for rows x cols with shape sh; colmask (words uint32,
 * copied; ignored when sh->ngs == 0) fixes the salient columns, nheld the
 * number of held weights (codes, or codes16 with hbits 16, allocated, hmask
 * zero: the caller sets hmask, the codes in order, and then calls
 * lp_binary_finish). LP_ERR_ARG for a bad shape (cols not a multiple of 32,
 * block not a multiple of 32 dividing cols, ngs > 2, ngn not 1 or 2, hbits
 * not 0, 8 or 16, colmask NULL with ngs > 0, nheld < 0 or > 0 without held),
 * LP_ERR_NOMEM. */
lp_status lp_binary_init(lp_binary *w, int64_t rows, int64_t cols, const lp_binary_shape *sh,
                         const uint32_t *colmask, int64_t nheld);

/* Recompute the derived arrays (sal_before from colmask, hoff from hmask)
 * after the caller filled the planes; LP_ERR_ARG when popcount(hmask) !=
 * nheld, popcount(colmask) != nsal or a b2 padding bit is set. */
lp_status lp_binary_finish(lp_binary *w);

void lp_binary_free(lp_binary *w); /* NULL is a no-op */

/* Exact stored bytes: every array present. */
size_t lp_binary_nbytes(const lp_binary *w);

/* The papers' weight bits (see above) of the whole weight, in bits:
 * rows cols + rows nsal + (hbits - 1) nheld (divide by rows cols for bits per weight;
 * the traits row's paper_bits returns the same total). */
double lp_binary_paper_bits(const lp_binary *w);

/* Parameter k of (row r, block j). */
static inline uint16_t *lp_binary_rp(const lp_binary *w, int64_t r, int64_t j) {
    return w->rp + (r * w->nblocks + j) * w->npr;
}

static inline int lp_binary_bit(const uint32_t *plane, int64_t i) { return (int)((plane[i >> 5] >> (i & 31)) & 1u); }
static inline void lp_binary_set(uint32_t *plane, int64_t i, int v) {
    if (v) plane[i >> 5] |= 1u << (i & 31);
    else plane[i >> 5] &= ~(1u << (i & 31));
}

/* The weight's value (the format's definition) when its salient group is
 * gs (ignored unless ngs == 2 and column c is salient) and, when it is held,
 * held_index is its index into codes (codes16): what callers that walk a row
 * (and so keep both as running counts) use. */
static inline float lp_binary_value_at(const lp_binary *w, int64_t r, int64_t c, int gs, int64_t held_index) {
    if (w->held && lp_binary_bit(w->hmask + r * w->words, c)) {
        if (w->hbits == 16) return lp_f16_to_f32(w->codes16[held_index]);
        return w->hq[2 * r] * ((float)w->codes[held_index] - w->hq[2 * r + 1]);
    }
    const uint16_t *P = lp_binary_rp(w, r, c / w->block);
    const float s0 = lp_binary_bit(w->s0 + r * w->words, c) ? 1.0f : -1.0f;
    const int b1 = w->b1 ? lp_binary_bit(w->b1 + r * w->words, c) : 0;
    if (w->ngs && lp_binary_bit(w->colmask, c)) {
        if (w->ngs == 1) gs = 0;
        const float s1 = b1 ? 1.0f : -1.0f;
        if (!w->rc)
            return (s0 * lp_f16_to_f32(P[3 * gs + 1]) + s1 * lp_f16_to_f32(P[3 * gs + 2])) + lp_f16_to_f32(P[3 * gs]);
        return s0 * (lp_f16_to_f32(P[2 * gs]) * lp_f16_to_f32(w->cp[(2 * gs) * w->cols + c])) +
               s1 * (lp_f16_to_f32(P[2 * gs + 1]) * lp_f16_to_f32(w->cp[(2 * gs + 1) * w->cols + c]));
    }
    const int gn = w->ngn == 2 ? b1 : 0;
    if (!w->rc) {
        const uint16_t *q = P + 3 * w->ngs + 2 * gn;
        return s0 * lp_f16_to_f32(q[1]) + lp_f16_to_f32(q[0]);
    }
    return s0 * (lp_f16_to_f32(P[2 * w->ngs + gn]) * lp_f16_to_f32(w->cp[(2 * w->ngs + gn) * w->cols + c]));
}

/* The weight's value, looking up its salient group and held index (slow:
 * a walk over the row; for tests and the reference). */
static inline float lp_binary_value(const lp_binary *w, int64_t r, int64_t c) {
    int gs = 0;
    int64_t h = 0;
    if (w->ngs == 2 && lp_binary_bit(w->colmask, c)) {
        int64_t k = 0; /* salient columns before c */
        for (int64_t i = 0; i < c; i++) k += lp_binary_bit(w->colmask, i);
        gs = lp_binary_bit(w->b2 + r * w->words2, k);
    }
    if (w->held) {
        h = w->hoff[r];
        for (int64_t i = 0; i < c; i++) h += lp_binary_bit(w->hmask + r * w->words, i);
    }
    return lp_binary_value_at(w, r, c, gs, h);
}

/* A non-owning view over a checkpoint's tensors is made by the traits row's
 * load (binary.c). */

/* Rows [r0, r1) of W_hat in f32 ((r1 - r0) x cols), this CPU's kernel,
 * rows split over OpenMP threads. */
void lp_binary_dequant(const lp_binary *w, int64_t r0, int64_t r1, float *out);

/* Y (T x rows) = X (T x cols) W^T with the kernels of level isa (which this
 * CPU must support: LP_ERR_UNSUPPORTED otherwise): packed kernels for
 * T < blas_min_tokens (<= 0: the level's own threshold for w's mode, measured:
 * binary.c), dequantized tiles + sgemm from there on. LP_ERR_NOMEM. */
lp_status lp_binary_gemm_ex(const lp_binary *w, const float *X, int64_t T, float *Y, lp_isa isa,
                            int64_t blas_min_tokens);

/* ---- kernels: serial over rows [r0, r1), as rowgemm.h's ---- */
void lp_binary_rows_ref(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                        int64_t r1);
void lp_binary_rows_avx2(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1);
void lp_binary_rows_avx512(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                           int64_t r0, int64_t r1);
void lp_binary_dequant_ref(const void *w, int64_t r0, int64_t r1, float *out);
void lp_binary_dequant_avx2(const void *w, int64_t r0, int64_t r1, float *out);
void lp_binary_dequant_avx512(const void *w, int64_t r0, int64_t r1, float *out);

extern const lp_format lp_format_binary;

#endif
