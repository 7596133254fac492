/*
 * ternary.h - the "ternary" format: weights in {-a, 0, +a} with one f16
 * scale a per (row, group of columns), as Ternary Weight Networks (Li et al.
 * 2016, arXiv:1605.04711) produce them, group-wise.
 *
 * What: W (rows x cols, out x in, row-major; y = x W^T) is stored as
 *     W_hat[r][c] = m(r, c) ? (n(r, c) ? -a[r][g] : +a[r][g]) : 0,   g = c / group
 *   with two bit planes: m = "nonzero" and n = "negative" (n only where m).
 * Storage (little-endian; words = ceil(cols / 32), ngroups = ceil(cols / group)):
 *   nonzero   uint32 (rows, words)    m(r, c) is bit c % 32 of word c / 32 of row r
 *   negative  uint32 (rows, words)    n(r, c), same layout; n implies m
 *   scales    f16    (rows, ngroups)  a[r][g], finite
 *   The bits past cols in a row's last word are 0 in both planes. group is a
 *   multiple of 32 (so a word never straddles two groups) or, per output
 *   channel, cols itself (-1 and any group >= cols are resolved to cols).
 *   Exact bytes: 2 * rows * words * 4 + rows * ngroups * 2 (lp_ternary_nbytes).
 * Checkpoint: tensors <base>.nonzero U32 [rows, words], <base>.negative U32
 *   [rows, words], <base>.scales F16 [rows, ngroups], description
 *   {"format":"ternary","group":G} (G resolved); load checks them as
 *   untrusted input (shapes, finite scales, zero padding, n only where m).
 * Products, Y (T x rows) = X (T x cols) W^T:
 *   the reference kernel (ternary_ref.c, the specification) computes, per row
 *   r and token t, in f32,
 *       y = 0; for g = 0, 1, ...:
 *           s = sum over the group's columns c in order of (m ? (n ? -x_c : x_c) : 0)
 *           y += a[r][g] * s
 *   and the AVX2 / AVX-512 kernels add the same terms (x with its sign bit
 *   flipped where n, an exact negation, and masked by m) in per-lane partial
 *   sums, scale each group's partial sums by a with an FMA, and reduce the
 *   lanes once per row (orders documented in each file): they match the
 *   reference to rounding (~1e-6 relative to sum |a x|). Dequantization is
 *   exact and bit-identical at every level (zeros are +0).
 * Driver (ternary.c): as sign.h's; below a token count set per level
 *   (ternary.c, measured) the packed kernel runs on fixed row tiles, one
 *   OpenMP `parallel for` (a token's result does not depend on T there);
 *   from it on, row tiles are dequantized and multiplied with sgemm. Results
 *   do not depend on the thread count.
 */
#ifndef LP_TERNARY_H
#define LP_TERNARY_H

#include "format/format.h"
#include "format/rowgemm.h"

#include <stddef.h>
#include <stdint.h>

#define LP_TERNARY_MAX_T 4            /* tokens per pass of a packed kernel over a row */

typedef struct {
    int64_t rows, cols;
    int group;          /* columns per scale: a multiple of 32, or cols (per output channel) */
    int64_t words;      /* ceil(cols / 32): uint32 words per row and plane */
    int64_t ngroups;    /* ceil(cols / group) */
    int64_t gwords;     /* words per group: ceil(group / 32) */
    uint32_t *nonzero;  /* (rows, words) */
    uint32_t *negative; /* (rows, words) */
    uint16_t *scales;   /* (rows, ngroups) f16 */
    int owns;           /* 1: the arrays are malloc'd and freed by lp_ternary_free */
} lp_ternary;

/* Zero-filled storage (every weight 0). group: a multiple of 32, -1 or
 * >= cols (per output channel). LP_ERR_ARG for a bad shape or group,
 * LP_ERR_NOMEM. */
lp_status lp_ternary_init(lp_ternary *w, int64_t rows, int64_t cols, int group);

/* A non-owning view over a file's buffers, checked as untrusted input
 * (LP_ERR_FORMAT naming the bad value): group, sizes, alignment, finite
 * scales, zero padding bits, negative bits only where nonzero. */
lp_status lp_ternary_view(lp_ternary *w, int64_t rows, int64_t cols, int group, const void *nonzero,
                          size_t nonzero_bytes, const void *negative, size_t negative_bytes, const void *scales,
                          size_t scales_bytes);

void lp_ternary_free(lp_ternary *w); /* NULL is a no-op */

/* Exact stored bytes: 2 * rows * words * 4 + rows * ngroups * 2. */
size_t lp_ternary_nbytes(const lp_ternary *w);

/* Rows [r0, r1) of W_hat in f32 ((r1 - r0) x cols), with this CPU's kernel
 * (bit-identical at every level), rows split over OpenMP threads. */
void lp_ternary_dequant(const lp_ternary *w, int64_t r0, int64_t r1, float *out);

/* Y (T x rows) = X (T x cols) W^T with the kernels of level isa (which this
 * CPU must support: LP_ERR_UNSUPPORTED otherwise): the packed kernel for
 * T < blas_min_tokens, dequantized tiles + sgemm from there on; <= 0 means
 * the level's own threshold. LP_ERR_NOMEM. */
lp_status lp_ternary_gemm_ex(const lp_ternary *w, const float *X, int64_t T, float *Y, lp_isa isa,
                             int64_t blas_min_tokens);

/* ---- kernels: serial over rows [r0, r1), no threads inside ----
 * x is (T, ldx) with ldx >= words * 32, each token zero-padded past cols;
 * y[t * ldy + r] receives row r for token t, 1 <= T <= LP_TERNARY_MAX_T. */
typedef lp_rows_fn lp_ternary_rows_fn;
void lp_ternary_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                         int64_t r0, int64_t r1);
void lp_ternary_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                          int64_t r0, int64_t r1);
void lp_ternary_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                            int64_t r0, int64_t r1);

/* out ((r1 - r0) x cols) = rows [r0, r1) of W_hat, serial. */
typedef lp_rows_dequant_fn lp_ternary_dequant_fn;
void lp_ternary_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_ternary_dequant_avx2(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_ternary_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out);

/* The traits row (format.c lists it). */
extern const lp_format lp_format_ternary;

#endif
