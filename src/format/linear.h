/*
 * linear.h - one linear layer, stored as a sum of parts in any formats.
 *
 * What: an lp_linear computes Y = X W^T + b for a batch X of T rows, with
 *   the `out x in` weight W (row-major, rows x cols) held as the sum of
 *   parts W = W_0 + W_1 + ...: usually one part (dense, or one packed
 *   format), or several when a method composes formats (packed + sparse f16
 *   outliers, binary + salient weights, low rank + residual). Each part is
 *   {traits row, data, product}: nothing here knows any format.
 * Why: composite methods are compositions, not new formats or switch arms.
 * Design: the product of part 0 writes Y, later parts go through scratch and
 *   are added in part order, then the bias (f32). Sizes are exact:
 *   lp_linear_nbytes is the sum of the parts' stored bytes (bias excluded: it
 *   stays as stored and is counted with the model's other small tensors).
 *   Checkpoints: a linear that is one dense part from the checkpoint is
 *   written back as the plain tensor "<base>.weight"; one packed part as
 *   "<base>.*" tensors plus the metadata entry "llmpress.linear.<base>" =
 *   its description; several parts as {"format":"sum","parts":[desc, ...]}
 *   with part k's tensors under "<base>.p<k>".
 */
#ifndef LP_LINEAR_H
#define LP_LINEAR_H

#include "format/format.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LP_LINEAR_MAX_PARTS 4

typedef struct {
    const lp_format *fmt;
    void *data;      /* owned: fmt->free */
    lp_gemm_fn gemm; /* fmt's product for this CPU, chosen when the part was added */
} lp_part;

typedef struct {
    int64_t rows, cols; /* out x in */
    int nparts;
    lp_part part[LP_LINEAR_MAX_PARTS];
    const float *bias; /* rows, or NULL */
    float *bias_owned;
} lp_linear;

/* Append a part (rows x cols like l) in format fmt; ownership of data moves
 * to l, also on failure (LP_ERR_ARG when l already has the maximum parts). */
lp_status lp_linear_add_part(lp_linear *l, const lp_format *fmt, void *data);

/* Replace l's weight by one part in fmt (ownership of data moves to l); the
 * bias stays. */
void lp_linear_set(lp_linear *l, const lp_format *fmt, void *data);

/* Y (T x rows) = X (T x cols) W^T + b. LP_ERR_NOMEM (scratch, or a 16-bit
 * dense weight's first conversion). */
lp_status lp_linear_forward(const lp_linear *l, const float *X, int64_t T, float *Y);

/* True when l is exactly one part in `fmt`. */
bool lp_linear_is(const lp_linear *l, const lp_format *fmt);

/* The data of l's only part when it is in fmt, else NULL. */
void *lp_linear_data(const lp_linear *l, const lp_format *fmt);

/* Exact stored bytes of W (all parts). */
size_t lp_linear_nbytes(const lp_linear *l);
/* The bits the parts' papers count (format.h's paper_bits; every stored bit
 * for a format without one). */
double lp_linear_paper_bits(const lp_linear *l);

/* Weight values the parts store (format.h's nparams; rows x cols for a
 * part without one): what pruning and low rank keep. */
int64_t lp_linear_nparams(const lp_linear *l);

/* out ((r1 - r0) x cols) = rows [r0, r1) of W, the sum of the parts'
 * dequantized rows (no bias); tmp (same size) is needed when nparts > 1.
 * Inside a parallel region it runs on the calling thread alone. LP_ERR_NOMEM. */
lp_status lp_linear_dequant_rows(const lp_linear *l, int64_t r0, int64_t r1, float *out, float *tmp);

/* A dense f32 copy of W (rows x cols), malloc'd; NULL when out of memory. */
float *lp_linear_to_f32(const lp_linear *l);

/* Replace dst's weight by src's parts (src is left empty); dst's bias stays. */
void lp_linear_take_parts(lp_linear *dst, lp_linear *src);

/* ||W - W_hat||_F / ||W||_F of l's weight W_hat against W (rows x cols), in
 * double; NAN when out of memory. */
double lp_linear_rel_error(const lp_linear *l, const float *W);

/* Free what the linear owns and zero it. */
void lp_linear_free(lp_linear *l);

/* Short description, e.g. "dense bf16", "qgroup w4 g128 asym", or the parts'
 * descriptions joined by " + ". */
void lp_linear_describe(const lp_linear *l, char *buf, size_t n);

/* Checkpoint I/O (layout at the top). save writes the weight's tensors and
 * metadata (not the bias); load reads linear `base` as its metadata
 * describes it (l->rows/cols given), failing with LP_ERR_FORMAT when there
 * is none. */
lp_status lp_linear_save(const lp_linear *l, lp_st_writer *w, const char *base);
lp_status lp_linear_load_packed(const lp_fmt_src *in, const char *base, int64_t rows, int64_t cols, lp_linear *out);

#endif
