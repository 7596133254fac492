/*
 * bitmap.h - the "bitmap" format: unstructured sparsity, a keep bit per
 * weight and the kept values packed row by row (magnitude pruning, Wanda
 * and SparseGPT at any sparsity).
 *
 * What: W (rows x cols, out x in, row-major; y = x W^T) keeps any subset of
 *   its weights; the others are 0.
 * Storage (words = ceil(cols / 32)):
 *   mask     U32 (rows, words)  keep bit of (r, c): bit c % 32 of word c / 32
 *                               of row r; the bits past cols are 0
 *   offsets  I64 (rows + 1)     offsets[r] = the value index of row r's first
 *                               kept weight: offsets[0] = 0, offsets[r + 1] -
 *                               offsets[r] = row r's popcount, offsets[rows] =
 *                               count (so row tiles start without a scan)
 *   values   count kept values in sparse.h's codec (value offsets[r] + j is
 *            row r's j-th kept weight, columns increasing); for bits < 16
 *            group is cols or a multiple of 32 (a word never straddles two
 *            groups).
 *   Exact bytes: rows * words * 4 + (rows + 1) * 8 + the values' (lp_bitmap_nbytes).
 * Checkpoint: <base>.mask U32 [rows, words], <base>.offsets I64 [1, rows + 1]
 *   and the values' tensors (sparse.h), description {"format":"bitmap",
 *   "bits":16,"dtype":"bf16"} or {"format":"bitmap","bits":B,"group":G}; load
 *   checks everything as untrusted input (padding bits, offsets against the
 *   popcounts, finite values and scales, zeros in range).
 * Products, Y (T x rows) = X (T x cols) W^T:
 *   the reference kernel (bitmap_ref.c, the specification) computes, per row
 *   r and token t, in f32,
 *       y = 0; for each group g (bits 16: one group, the whole row):
 *           s = 0; for each kept weight of the group, columns increasing:
 *                      s += d * x[c]     (d = the 16-bit value as f32, or (float)(q - zero))
 *           y += scale(r, g) * s         (bits 16: y += s)
 *   and the AVX2 / AVX-512 kernels add the same products in per-lane partial
 *   sums (orders in each file), so they match it to rounding (~1e-6 relative
 *   to sum |w x|) for finite x. Fast paths: bits 16 (bf16, f16), 8 and 4;
 *   other widths run a generic path in the same files (a row chunk
 *   dequantized exactly, then a SIMD dot product).
 *   Dequantization: W_hat[r][c] = the value (bits 16) or scale * (float)(q -
 *   zero) where kept, +0 elsewhere; bit-identical at every level.
 * Driver (bitmap.c): rowgemm.h's, as nm.h's. Results do not depend on the
 *   thread count.
 */
#ifndef LP_BITMAP_H
#define LP_BITMAP_H

#include "format/rowgemm.h"
#include "format/sparse.h"

#include <stddef.h>
#include <stdint.h>

#define LP_BITMAP_MAX_T 4 /* tokens per pass of a packed kernel over a row */

typedef struct {
    int64_t rows, cols;
    int64_t words;     /* ceil(cols / 32): uint32 words per row */
    uint32_t *mask;    /* (rows, words) */
    int64_t *offsets;  /* (rows + 1) */
    lp_sparse_store v; /* offsets[rows] values */
    int owns;          /* 1: the arrays are malloc'd and freed by lp_bitmap_free */
} lp_bitmap;

/* Free what w owns and zero it; NULL is a no-op. */
void lp_bitmap_free(lp_bitmap *w);

/* Exact stored bytes: rows * words * 4 + (rows + 1) * 8 + the values'. */
size_t lp_bitmap_nbytes(const lp_bitmap *w);

/* Rows [r0, r1) of W_hat in f32 ((r1 - r0) x cols), with this CPU's kernel
 * (bit-identical at every level), rows split over OpenMP threads. */
void lp_bitmap_dequant(const lp_bitmap *w, int64_t r0, int64_t r1, float *out);

/* Y (T x rows) = X (T x cols) W^T with the kernels of level isa (which this
 * CPU must support: LP_ERR_UNSUPPORTED otherwise): the packed kernel for
 * T < blas_min_tokens, dequantized tiles + sgemm from there on; <= 0 means
 * the level's own threshold. LP_ERR_NOMEM. */
lp_status lp_bitmap_gemm_ex(const lp_bitmap *w, const float *X, int64_t T, float *Y, lp_isa isa,
                            int64_t blas_min_tokens);

/* ---- kernels: serial over rows [r0, r1), no threads inside ----
 * x is (T, ldx) with ldx = words * 32, each token zero-padded past cols;
 * y[t * ldy + r] receives row r for token t, 1 <= T <= LP_BITMAP_MAX_T. */
void lp_bitmap_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                        int64_t r1);
void lp_bitmap_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1);
void lp_bitmap_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                           int64_t r0, int64_t r1);

/* out ((r1 - r0) x cols) = rows [r0, r1) of W_hat, serial. */
void lp_bitmap_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_bitmap_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_bitmap_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out);

/* out (min(32 k1, cols) - 32 k0) = row r's columns of words [k0, k1) of
 * W_hat, whose first kept weight is value i: the scalar definition, also the
 * SIMD kernels' generic path. Returns the value index after them. */
int64_t lp_bitmap_dequant_words(const lp_bitmap *w, int64_t r, int64_t k0, int64_t k1, int64_t i, float *out);

#endif
