/*
 * dense16.h - the "dense16" format: a weight kept in 16 bits (bfloat16 or
 * IEEE binary16) and multiplied from that form.
 *
 * What: W (rows x cols, out x in, row-major; y = x W^T) stored as one 16-bit
 *   value per weight, every value finite. Products convert each weight to f32
 *   exactly (bf16: shift left 16; f16: F16C / the scalar conversion, exact
 *   for subnormals too) inside the kernel and multiply-add in f32: the weight
 *   is never held as a whole f32 copy, and x is never rounded (no bf16 dot
 *   product instructions, which would round x to bf16).
 * Why: the factors of a low-rank weight (lowrank.h) and any weight a method
 *   keeps in half precision; the "dense" format instead converts a 16-bit
 *   tensor to an f32 copy on its first product (2x the memory, 2x the bytes
 *   read per token).
 * Storage: w  uint16 (rows, cols)  row-major, no padding;
 *   exact bytes rows * cols * 2 (lp_dense16_nbytes).
 * Checkpoint: tensor <base>.weight, BF16 or F16 [rows, cols], description
 *   {"format":"dense16","dtype":"bf16"} (or "f16"); load checks the dtype
 *   against the description, the shape, and that every value is finite.
 * Products, Y (T x rows) = X (T x cols) W^T:
 *   the reference kernel (dense16_ref.c, the specification) computes, per row
 *   r and token t, in f32 with one accumulator,
 *       y = 0; for c = 0 .. cols - 1 in order: y += f32(w[r][c]) * x[c]
 *   and the AVX2 / AVX-512 kernels add the same products with FMAs in
 *   per-lane partial sums over 32 columns at a time, reduced once per row
 *   (orders documented in each file): they match the reference to rounding
 *   (~1e-6 relative to sum |w x|). Dequantization is the exact conversion,
 *   bit-identical at every level.
 * Driver (dense16.c): the row-kernel driver of rowgemm.h; below a token
 *   count set per level (dense16.c, measured) the kernel runs on fixed row
 *   tiles with up to LP_DENSE16_MAX_T tokens per pass over a row (a token's
 *   result does not depend on T there); from it on, row tiles are converted
 *   to f32 and multiplied with sgemm. Results do not depend on the thread
 *   count.
 */
#ifndef LP_DENSE16_H
#define LP_DENSE16_H

#include "format/format.h"
#include "format/rowgemm.h"

#include <stddef.h>
#include <stdint.h>

#define LP_DENSE16_MAX_T 4 /* tokens per pass of a kernel over a row */

typedef struct {
    int64_t rows, cols;
    lp_dtype dtype;     /* LP_DT_BF16 or LP_DT_F16 */
    const uint16_t *w;  /* (rows, cols) */
    uint16_t *owned;    /* w when it was made here (freed with the struct), else NULL */
} lp_dense16;

/* W (rows x cols f32) rounded to nearest even in dtype (LP_DT_BF16 or
 * LP_DT_F16); *out is an lp_dense16 (free it with lp_dense16_free or the
 * row's free). LP_ERR_ARG for a bad shape or dtype, LP_ERR_NUMERIC naming
 * the first value (row, column) that is not finite or does not fit (|w| >=
 * 65520 in f16, beyond the bf16 range), LP_ERR_NOMEM. */
lp_status lp_dense16_from_f32(int64_t rows, int64_t cols, const float *W, lp_dtype dtype, void **out);

/* A non-owning view over stored values (a checkpoint tensor: nbytes of them
 * at data), checked as untrusted input (LP_ERR_FORMAT naming the bad value):
 * dtype BF16/F16, the byte count, 2-byte alignment, every value finite. The
 * data must outlive the view. LP_ERR_NOMEM. */
lp_status lp_dense16_view(int64_t rows, int64_t cols, lp_dtype dtype, const void *data, size_t nbytes, void **out);

void lp_dense16_free(lp_dense16 *w); /* the struct and what it owns; NULL is a no-op */

/* Exact stored bytes: rows * cols * 2. */
size_t lp_dense16_nbytes(const lp_dense16 *w);

/* Rows [r0, r1) of W in f32 ((r1 - r0) x cols), exact, rows split over
 * OpenMP threads. */
void lp_dense16_dequant(const lp_dense16 *w, int64_t r0, int64_t r1, float *out);

/* Y (T x rows) = X (T x cols) W^T with the kernels of level isa (which this
 * CPU must support: LP_ERR_UNSUPPORTED otherwise): the row kernels for
 * T < blas_min_tokens, converted tiles + sgemm from there on; <= 0 means the
 * level's own threshold. LP_ERR_NOMEM. */
lp_status lp_dense16_gemm_ex(const lp_dense16 *w, const float *X, int64_t T, float *Y, lp_isa isa,
                             int64_t blas_min_tokens);

/* ---- kernels: serial over rows [r0, r1), no threads inside ----
 * x is (T, ldx) with ldx >= cols rounded up to 32, each token zero-padded
 * past cols; y[t * ldy + r] receives row r for token t,
 * 1 <= T <= LP_DENSE16_MAX_T. */
void lp_dense16_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1);
void lp_dense16_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                          int64_t r0, int64_t r1);
void lp_dense16_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                            int64_t r0, int64_t r1);

/* out ((r1 - r0) x cols) = rows [r0, r1) of W converted to f32, serial. */
void lp_dense16_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_dense16_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_dense16_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out);

/* The traits row (format.c lists it). */
extern const lp_format lp_format_dense16;

#endif
