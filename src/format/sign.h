/*
 * sign.h - the "sign" format: one bit per weight and one f16 scale per row
 * (1-bit binarization, as in BinaryConnect / XNOR-Net's alpha * sign(W)).
 *
 * What: W (rows x cols, out x in, row-major; y = x W^T) is stored as
 *     W_hat[r][c] = alpha_r * (b(r, c) ? +1 : -1)
 *   with one sign bit b per weight and one f16 scale alpha_r per row.
 * Storage (little-endian; words = ceil(cols / 32)):
 *   signs   uint32 (rows, words)  b(r, c) is bit c % 32 of word c / 32 of row r;
 *                                 the bits past cols in a row's last word are 0
 *   scales  f16    (rows, 1)      alpha_r, finite
 *   Exact bytes: rows * words * 4 + rows * 2 (lp_sign_nbytes), so a row of
 *   cols weights costs 1 + (16 + padding bits) / cols bits per weight.
 * Checkpoint: tensors <base>.signs U32 [rows, words] and <base>.scales F16
 *   [rows, 1], description {"format":"sign"}; load checks them as untrusted
 *   input (shapes, finite scales, zero padding bits).
 * Products, Y (T x rows) = X (T x cols) W^T:
 *   the reference kernel (sign_ref.c, the specification) computes, per row r
 *   and token t, in f32,
 *       s = sum over c = 0, 1, ..., cols - 1 in this order of (b(r, c) ? x_c : -x_c)
 *       y = alpha_r * s
 *   and the AVX2 / AVX-512 kernels compute the same terms (x with its sign
 *   bit flipped where b = 0, an exact negation) summed in another fixed order
 *   (per-lane partial sums, documented in each file), so they match it to
 *   rounding (~1e-6 relative to sum |x|). Dequantization is exact and
 *   bit-identical at every level.
 * Driver (sign.c): below a token count set per level (sign.c, measured) the
 *   packed kernel runs on fixed tiles of rows under one OpenMP `parallel
 *   for`, each packed row read once for up to LP_SIGN_MAX_T tokens (so a
 *   token's result does not depend on T on that path); from it on, tiles of
 *   rows are dequantized and multiplied with sgemm. Every output is computed
 *   by one thread in a fixed order: results do not depend on the thread
 *   count.
 */
#ifndef LP_SIGN_H
#define LP_SIGN_H

#include "format/format.h"
#include "format/rowgemm.h"

#include <stddef.h>
#include <stdint.h>

#define LP_SIGN_MAX_T 4            /* tokens per pass of a packed kernel over a row */

typedef struct {
    int64_t rows, cols;
    int64_t words;    /* ceil(cols / 32): uint32 words per row */
    uint32_t *signs;  /* (rows, words) */
    uint16_t *scales; /* (rows) f16 */
    int owns;         /* 1: the arrays are malloc'd and freed by lp_sign_free */
} lp_sign;

/* Zero-filled storage (every bit 0, every scale 0). LP_ERR_ARG for a bad
 * shape, LP_ERR_NOMEM. */
lp_status lp_sign_init(lp_sign *w, int64_t rows, int64_t cols);

/* A non-owning view over a file's buffers, checked as untrusted input
 * (LP_ERR_FORMAT naming the bad value): sizes, alignment, finite scales, and
 * zero padding bits. */
lp_status lp_sign_view(lp_sign *w, int64_t rows, int64_t cols, const void *signs, size_t signs_bytes,
                       const void *scales, size_t scales_bytes);

void lp_sign_free(lp_sign *w); /* NULL is a no-op */

/* Exact stored bytes: rows * words * 4 + rows * 2. */
size_t lp_sign_nbytes(const lp_sign *w);

/* Rows [r0, r1) of W_hat in f32 ((r1 - r0) x cols), with this CPU's kernel
 * (bit-identical at every level), rows split over OpenMP threads. */
void lp_sign_dequant(const lp_sign *w, int64_t r0, int64_t r1, float *out);

/* Y (T x rows) = X (T x cols) W^T with the kernels of level isa (which this
 * CPU must support: LP_ERR_UNSUPPORTED otherwise): the packed kernel for
 * T < blas_min_tokens, dequantized tiles + sgemm from there on; <= 0 means
 * the level's own threshold (tests raise it to force the packed kernels).
 * LP_ERR_NOMEM. */
lp_status lp_sign_gemm_ex(const lp_sign *w, const float *X, int64_t T, float *Y, lp_isa isa,
                          int64_t blas_min_tokens);

/* ---- kernels: serial over rows [r0, r1), no threads inside ----
 * x is (T, ldx) with ldx >= words * 32, each token zero-padded past cols, so
 * padding bits (0) only ever add -0; y[t * ldy + r] receives row r for token
 * t, 1 <= T <= LP_SIGN_MAX_T. */
typedef lp_rows_fn lp_sign_rows_fn;
void lp_sign_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                      int64_t r1);
void lp_sign_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                       int64_t r1);
void lp_sign_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                         int64_t r0, int64_t r1);

/* out ((r1 - r0) x cols) = rows [r0, r1) of W_hat, serial. */
typedef lp_rows_dequant_fn lp_sign_dequant_fn;
void lp_sign_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_sign_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_sign_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out);

/* The traits row (format.c lists it). */
extern const lp_format lp_format_sign;

#endif
