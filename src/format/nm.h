/*
 * nm.h - the "nm" format: N:M semi-structured sparsity along the input
 * columns, as SparseGPT (Frantar & Alistarh 2023) and Wanda (Sun et al.
 * 2023) prune for 2:4 / 4:8 sparse tensor cores.
 *
 * What: W (rows x cols, out x in, row-major; y = x W^T) with cols % m == 0:
 *   in every block b of m consecutive columns [b m, b m + m) of a row
 *   exactly n weights are kept (1 <= n < m, 2 <= m <= 16), the others are 0.
 * Storage (ib = ceil(log2 m) bits per index, kpr = cols / m * n kept per row):
 *   indices  U8 (rows, ibytes)   ibytes = ceil(kpr * ib / 8); field j of row
 *                                r (bits [j ib, j ib + ib) of the row's bytes,
 *                                LSB-first) is the position in its block of
 *                                the row's j-th kept weight: fields
 *                                [b n, b n + n) are block b's, each < m and
 *                                strictly increasing; the bits past the last
 *                                field of a row are 0. 2:4 -> 2-bit indices,
 *                                4 per byte; 4:8 -> 3-bit, 4 per 12 bits.
 *   values   rows x kpr kept values in sparse.h's codec (value r kpr + j is
 *            row r's j-th kept weight); for bits < 16 group is cols or a
 *            multiple of m.
 *   Exact bytes: rows * ibytes + the values' (lp_nm_nbytes).
 * Checkpoint: <base>.indices U8 [rows, ibytes] and the values' tensors
 *   (sparse.h), description {"format":"nm","n":N,"m":M,"bits":16,"dtype":
 *   "bf16"} or {"format":"nm","n":N,"m":M,"bits":B,"group":G}; load checks
 *   everything as untrusted input.
 * Products, Y (T x rows) = X (T x cols) W^T:
 *   the reference kernel (nm_ref.c, the specification) computes, per row r
 *   and token t, in f32,
 *       y = 0; for each group g (bits 16: one group, the whole row):
 *           s = 0; for each kept weight of the group, columns increasing:
 *                      s += d * x[c]     (d = the 16-bit value as f32, or (float)(q - zero))
 *           y += scale(r, g) * s         (bits 16: y += s)
 *   and the AVX2 / AVX-512 kernels add the same products in per-lane
 *   partial sums (orders in each file), so they match it to rounding
 *   (~1e-6 relative to sum |w x|) for finite x. Fast paths: "half" patterns
 *   (2n == m, m | 32: 1:2, 2:4, 4:8, 8:16) with bits 16 (bf16, f16), 8 and 4,
 *   when a grid's group is cols or a multiple of 32 (and, 4-bit, kpr is
 *   even); every other setting runs a generic path in the same files (a row
 *   chunk dequantized exactly, then a SIMD dot product).
 *   Dequantization: W_hat[r][c] = the value (bits 16) or scale * (float)(q -
 *   zero) at kept positions, +0 elsewhere; bit-identical at every level.
 * Driver (nm.c): rowgemm.h's: below a token count set per level (nm.c,
 *   measured) the packed kernel runs on fixed row tiles (a token's result
 *   does not depend on T there); from it on, row tiles are dequantized and
 *   multiplied with sgemm. Results do not depend on the thread count.
 */
#ifndef LP_NM_H
#define LP_NM_H

#include "format/rowgemm.h"
#include "format/sparse.h"

#include <stddef.h>
#include <stdint.h>

#define LP_NM_MAX_T 4 /* tokens per pass of a packed kernel over a row */

typedef struct {
    int64_t rows, cols;
    int n, m;          /* n kept in every m columns */
    int ib;            /* bits per index: ceil(log2 m) */
    int64_t kpr;       /* kept per row: cols / m * n */
    int64_t ibytes;    /* index bytes per row: ceil(kpr * ib / 8) */
    uint8_t *idx;      /* (rows, ibytes) */
    lp_sparse_store v; /* rows * kpr values */
    int fast;          /* derived: a SIMD fast path applies (the header's conditions) */
    int owns;          /* 1: the arrays are malloc'd and freed by lp_nm_free */
} lp_nm;

/* Free what w owns and zero it; NULL is a no-op. */
void lp_nm_free(lp_nm *w);

/* Exact stored bytes: rows * ibytes + the values'. */
size_t lp_nm_nbytes(const lp_nm *w);

/* Index field j of row r (the position of the row's j-th kept weight in its block). */
static inline unsigned lp_nm_index(const lp_nm *w, int64_t r, int64_t j) {
    return lp_sparse_code(w->idx + r * w->ibytes, w->ib, j);
}

/* Rows [r0, r1) of W_hat in f32 ((r1 - r0) x cols), with this CPU's kernel
 * (bit-identical at every level), rows split over OpenMP threads. */
void lp_nm_dequant(const lp_nm *w, int64_t r0, int64_t r1, float *out);

/* Y (T x rows) = X (T x cols) W^T with the kernels of level isa (which this
 * CPU must support: LP_ERR_UNSUPPORTED otherwise): the packed kernel for
 * T < blas_min_tokens, dequantized tiles + sgemm from there on; <= 0 means
 * the level's own threshold. LP_ERR_NOMEM. */
lp_status lp_nm_gemm_ex(const lp_nm *w, const float *X, int64_t T, float *Y, lp_isa isa, int64_t blas_min_tokens);

/* ---- kernels: serial over rows [r0, r1), no threads inside ----
 * x is (T, ldx) with ldx = cols rounded up to 32, each token zero-padded
 * past cols; y[t * ldy + r] receives row r for token t, 1 <= T <= LP_NM_MAX_T. */
void lp_nm_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                    int64_t r1);
void lp_nm_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                     int64_t r1);
void lp_nm_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                       int64_t r1);

/* out ((r1 - r0) x cols) = rows [r0, r1) of W_hat, serial. */
void lp_nm_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_nm_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_nm_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out);

/* out (c1 - c0) = columns [c0, c1) of row r of W_hat (c0 and c1 multiples
 * of m, or c1 = cols): the scalar definition, also the SIMD kernels'
 * generic path. */
void lp_nm_dequant_cols(const lp_nm *w, int64_t r, int64_t c0, int64_t c1, float *out);

#endif
