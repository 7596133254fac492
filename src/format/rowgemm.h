/*
 * rowgemm.h - the product driver shared by packed formats whose kernels work
 * row by row (qlut, sign, ternary): Y (T x rows) = X (T x cols) W^T.
 *
 * What: a format supplies two serial kernels over a row range [r0, r1):
 *   rows(w, T, x, ldx, y, ldy, r0, r1)  up to max_t tokens at once on x
 *                                        zero-padded to ldx floats per token;
 *                                        y[t * ldy + r] receives row r
 *   dequant(w, r0, r1, out)             rows to f32 ((r1 - r0) x cols)
 *   and, optionally, `extra` (added to a tile's outputs after its rows) and
 *   `extra_dequant` (added to a dequantized tile): qlut's sparse outliers.
 * Design: few tokens (T < blas_min_tokens): x is copied once, zero-padded
 *   (64-byte aligned), then one OpenMP `parallel for` over contiguous
 *   spans of LP_ROWGEMM_TILE-row tiles (core/par.h); a span runs the kernel
 *   once over all its rows when T <= max_t, else tile by tile in passes of
 *   max_t tokens, so a packed row is read once per pass and a token's
 *   result never depends on T. Many tokens: tiles of LP_ROWGEMM_BLAS_TILE rows are
 *   dequantized into per-thread scratch and multiplied with one
 *   lp_sgemm_nt each (core/sgemm.h). Every output is computed by one thread in a
 *   fixed order: the thread count never changes a result.
 */
#ifndef LP_ROWGEMM_H
#define LP_ROWGEMM_H

#include "llmpress/status.h"

#include <stdint.h>

#define LP_ROWGEMM_TILE 16      /* rows per tile of the packed path (spans are whole tiles) */
#define LP_ROWGEMM_BLAS_TILE 64 /* rows dequantized per sgemm call */

typedef void (*lp_rows_fn)(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                           int64_t r1);
typedef void (*lp_rows_dequant_fn)(const void *w, int64_t r0, int64_t r1, float *out);
/* Y's rows [r0, r1) (row stride `rows`) += the extra part's product for X (T x cols). */
typedef void (*lp_rows_extra_fn)(const void *w, const float *X, int64_t T, float *Y, int64_t r0, int64_t r1);

typedef struct {
    const char *name;          /* errors say "<name> gemm: ..." */
    const void *w;             /* the format's data */
    int64_t rows, cols, ldx;   /* ldx >= cols: floats per zero-padded token */
    int max_t;                 /* tokens per kernel pass */
    lp_rows_fn rows_fn;
    lp_rows_dequant_fn dequant;
    lp_rows_extra_fn extra;            /* NULL, or after each packed tile */
    lp_rows_dequant_fn extra_dequant;  /* NULL, or added onto each dequantized tile (out +=) */
} lp_rowgemm;

/* The product: the packed kernels when T < blas_min_tokens, else dequantized
 * tiles and sgemm. LP_ERR_ARG for T < 0 or >= 2^31 on the sgemm path,
 * LP_ERR_NOMEM. */
lp_status lp_rowgemm_run(const lp_rowgemm *g, const float *X, int64_t T, float *Y, int64_t blas_min_tokens);

/* Rows [r0, r1) dequantized ((r1 - r0) x cols), tiles split over OpenMP
 * threads (with extra_dequant added). */
void lp_rowgemm_dequant(const lp_rowgemm *g, int64_t r0, int64_t r1, float *out);

#endif
