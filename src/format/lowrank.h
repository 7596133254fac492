/*
 * lowrank.h - the "lowrank" format: a weight as the product of two factors,
 * W = B A, each factor stored in its own (non-composite) format.
 *
 * What: W (rows x cols, out x in, row-major; y = x W^T) of rank at most R:
 *     A  (R x cols)   in format fa   (dense16 normally, qgroup when a method
 *     B  (rows x R)   in format fb    quantizes the factors, or dense f32)
 *   so W x = B (A x) costs R * (rows + cols) multiply-adds per token instead
 *   of rows * cols, and stores R * (rows + cols) values.
 * Why: SVD-style compression (ASVD, SVD-LLM and their kind) and the low-rank
 *   part of a composite linear ("low rank + residual" is a sum of a lowrank
 *   part and another part, linear.h).
 * Design: a lowrank holds two lp_parts (linear.h: traits row, data, product
 *   chosen once with lp_format_gemm(f, lp_cpu_isa()) when made or loaded).
 *   Product: Z (T x R) = X A^T with A's product into scratch allocated per
 *   call, then Y = Z B^T with B's product; each factor's product keeps its
 *   own guarantees (the packed formats' results do not depend on the thread
 *   count). Dequantization of rows [r0, r1): A (all R rows) and the rows of
 *   B under the tiles touched are converted to f32 into scratch once per
 *   call; the tiles are the fixed blocks of 64 rows of the whole weight, each
 *   computed whole by one single-threaded sgemm inside one OpenMP loop (as
 *   rowgemm.c), a tile cut by [r0, r1) into scratch and copied: BLAS may
 *   round a row differently at another position within its call, so this
 *   keeps a row's bits independent of r0, r1 and the thread count.
 * Sizes: nbytes = A's + B's; nparams = the factors' own (their nparams, else
 *   R * cols and rows * R); paper_bits = the factors' (their paper_bits, else
 *   8 x their bytes).
 * Checkpoint: A's tensors under <base>.a, B's under <base>.b (each factor's
 *   own save with that base), description
 *     {"format":"lowrank","rank":R,"a":{A's description},"b":{B's description}}
 *   where a factor that saves itself as a plain tensor (a dense view of a
 *   checkpoint tensor) is described as {"format":"dense"}. Load checks R in
 *   [1, min(rows, cols)], both descriptions present, their formats known and
 *   not composite (lowrank, sum), and hands the shapes (R, cols) and
 *   (rows, R) to the factors' own loads, which check their tensors.
 */
#ifndef LP_LOWRANK_H
#define LP_LOWRANK_H

#include "format/format.h"
#include "format/linear.h"

#include <stdint.h>

typedef struct {
    int64_t rows, cols, rank;
    lp_part a; /* rank x cols */
    lp_part b; /* rows x rank */
} lp_lowrank;

/* W = B A: a (rank x cols) in format fa, b (rows x rank) in format fb; ownership of a and b moves in, also
 * on failure. 1 <= rank <= min(rows, cols). LP_ERR_ARG (bad rank, a composite or lowrank factor), LP_ERR_NOMEM.
 * The factors' shapes cannot be checked through their traits rows: they are the caller's promise. */
lp_status lp_lowrank_make(int64_t rows, int64_t cols, int64_t rank, const lp_format *fa, void *a,
                          const lp_format *fb, void *b, void **out);

/* The struct and both factors; NULL is a no-op. */
void lp_lowrank_free(lp_lowrank *w);

/* The traits rows (format.c lists them; dense16.h declares lp_format_dense16 too). */
extern const lp_format lp_format_dense16, lp_format_lowrank;

#endif
