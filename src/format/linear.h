/*
 * linear.h - one linear layer in whatever format it is stored.
 *
 * An lp_linear is the unit every compression method produces: the `out x in`
 * weight W (row-major) in one format, plus an optional f32 bias, computing
 * Y = X W^T + b for a batch X of T rows. Dense weights are f32 (a view into
 * the mapped file when it holds aligned f32, else converted once at load);
 * compressed formats keep their packed storage and run through packed
 * kernels. Sizes are exact: lp_linear_nbytes counts every stored byte.
 */
#ifndef LP_LINEAR_H
#define LP_LINEAR_H

#include "io/safetensors.h"
#include "format/qgroup.h"
#include "format/qlut.h"
#include "format/qmix.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    LP_LINEAR_DENSE = 0,
    LP_LINEAR_QGROUP = 1, /* grouped integers (format/qgroup.h) */
    LP_LINEAR_QMIX = 2,   /* grouped integers, a width per column group (format/qmix.h) */
    LP_LINEAR_QLUT = 3,   /* per-row lookup tables plus sparse outliers (format/qlut.h) */
} lp_linear_format;

typedef struct {
    lp_linear_format fmt;
    int64_t rows, cols;     /* out x in */
    const float *w;         /* DENSE: rows x cols f32, or NULL while only `raw` is held */
    float *w_owned;         /* DENSE: set when w was converted or copied */
    const void *raw;        /* DENSE: the stored 16-bit weight (a view), when not f32 */
    lp_dtype stored_dtype;  /* DENSE: dtype in the checkpoint (for size accounting) */
    lp_qgroup *q;           /* QGROUP: packed weights (owned by the linear) */
    lp_qmix *mix;           /* QMIX (owned) */
    lp_qlut *lut;           /* QLUT (owned) */
    const float *bias;      /* rows, or NULL */
    float *bias_owned;
} lp_linear;

/* Y (T x rows) = X (T x cols) W^T + b. A dense 16-bit weight is converted
 * to f32 on first use (under a lock; running out of memory there aborts:
 * call lp_linear_materialize first to get an error instead). */
void lp_linear_forward(const lp_linear *l, const float *X, int64_t T, float *Y);

/* Give a dense linear its f32 weight (l->w), converting a 16-bit `raw` once.
 * No-op for other formats or when w is set. LP_ERR_NOMEM. */
lp_status lp_linear_materialize(lp_linear *l);

/* Exact bytes of the stored weight (bias excluded: it stays f32/f16 in every
 * format and is counted by the model with the other small tensors). */
size_t lp_linear_nbytes(const lp_linear *l);

/* A dense f32 copy of W (rows x cols), malloc'd; NULL when out of memory. */
float *lp_linear_to_f32(const lp_linear *l);

/* Replace a dense linear's weight by a packed one (ownership moves to l);
 * the bias is kept. */
void lp_linear_set_qgroup(lp_linear *l, lp_qgroup *q);
void lp_linear_set_qmix(lp_linear *l, lp_qmix *mix);
void lp_linear_set_qlut(lp_linear *l, lp_qlut *lut);

/* ||W - W_hat||_F / ||W||_F of the linear's (compressed) weight W_hat against
 * the original W (rows x cols), in double; NAN when out of memory. */
double lp_linear_rel_error(const lp_linear *l, const float *W);

/* Free what the linear owns and zero it. */
void lp_linear_free(lp_linear *l);

/* Short description, e.g. "dense bf16" or "qgroup w4 g128 asym". */
void lp_linear_describe(const lp_linear *l, char *buf, size_t n);

#endif
