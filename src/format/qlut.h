/*
 * qlut.h - "lookup-table codes plus sparse outliers": SqueezeLLM's
 * dense-and-sparse non-uniform format.
 *
 * What: W (rows x cols, out x in) = D + S. D's entry (r, c) is
 * lut[r][q(r, c)]: a b-bit code (b = 1..4) indexing the row's table of 2^b
 * f16 values (the k-means centroids). S is sparse, in CSR by row, with f16
 * values: the outliers SqueezeLLM keeps exactly, stored as the difference
 * between the weight and D at that position (so D + S is the weight up to
 * f16 rounding of that difference).
 *
 * Storage (little-endian):
 *   q        uint32 (rows, blocks, bits)  codes in qgroup.h's block layout
 *   lut      f16    (rows, 2^bits)
 *   row_ptr  int32  (rows + 1)            row_ptr[0] = 0, nondecreasing,
 *                                         row_ptr[rows] = nnz (< 2^31)
 *   col_idx  int32  (nnz)                 strictly increasing within a row
 *   vals     f16    (nnz)
 * Bits per weight count all of it (lp_qlut_nbytes).
 *
 * Why: per-row tables follow each output channel's own weight distribution
 * (SqueezeLLM, Kim et al. 2023, arXiv:2306.07629); codes reuse the qgroup
 * bit planes so one broadcast, shift and AND unpack 16 codes, and with
 * b <= 4 a row's whole table fits one AVX-512 register, so a vpermps turns
 * 16 codes into 16 weights.
 *
 * Kernels: a scalar reference (the specification) and an AVX-512 one, chosen
 * by core/cpu.h's level (LP_KERNEL=ref forces the reference). Per output, the dense
 * part is summed over columns, then S's entries of the row are added in
 * CSR order; the AVX-512 kernel sums the dense part in another order
 * (matches to ~1e-6 relative).
 */
#ifndef LP_QLUT_H
#define LP_QLUT_H

#include "format/format.h"

#include <stddef.h>
#include <stdint.h>

#define LP_QLUT_MAX_BITS 4

typedef struct {
    int bits;          /* 1..4 */
    int64_t rows, cols;
    int64_t blocks;    /* ceil(cols / 32) */
    int64_t nnz;       /* outliers */
    uint32_t *q;       /* (rows, blocks, bits) */
    uint16_t *lut;     /* (rows, 2^bits) f16 */
    int32_t *row_ptr;  /* rows + 1 */
    int32_t *col_idx;  /* nnz */
    uint16_t *vals;    /* nnz, f16 */
    int owns;          /* 1: the arrays are malloc'd and freed by lp_qlut_free */
} lp_qlut;

/* Allocate zero-filled storage for nnz outliers (row_ptr all 0 but for the
 * caller to fill). LP_ERR_ARG for a bad shape, LP_ERR_NOMEM. */
lp_status lp_qlut_init(lp_qlut *w, int64_t rows, int64_t cols, int bits, int64_t nnz);

/* A non-owning view over a file's buffers, checked as untrusted input
 * (LP_ERR_FORMAT naming the bad value): sizes, alignment, finite table and
 * outlier values, row_ptr monotone from 0 to nnz, columns in range and
 * increasing within each row. */
lp_status lp_qlut_view(lp_qlut *w, int64_t rows, int64_t cols, int bits, int64_t nnz, const void *q, size_t q_bytes,
                       const void *lut, size_t lut_bytes, const void *row_ptr, size_t row_ptr_bytes,
                       const void *col_idx, size_t col_idx_bytes, const void *vals, size_t vals_bytes);

void lp_qlut_free(lp_qlut *w);

/* Exact stored bytes of all five arrays. */
size_t lp_qlut_nbytes(const lp_qlut *w);

/* Byte sizes of q and lut for a shape. */
size_t lp_qlut_q_bytes(int64_t rows, int64_t cols, int bits);

/* Rows [r0, r1) of W = D + S in f32 ((r1 - r0) x cols). */
void lp_qlut_dequant(const lp_qlut *w, int64_t r0, int64_t r1, float *out);

/* Y (T x rows) = X (T x cols) W^T. Few tokens: the packed kernel (each
 * token bit-identical to T = 1); many: dequantized row tiles and sgemm.
 * `kernel` NULL or "ref"/"avx512" (tests compare them); LP_ERR_UNSUPPORTED
 * when this CPU lacks the one named. */
lp_status lp_qlut_gemm_ex(const lp_qlut *w, const float *X, int64_t T, float *Y, const char *kernel,
                          int64_t blas_min_tokens);

/* The traits row: {"format":"qlut","bits":B,"nnz":N}, tensors as above
 * (<base>.qweight, .lut, .row_ptr, .col_idx, .vals). */
extern const lp_format lp_format_qlut;

#endif
