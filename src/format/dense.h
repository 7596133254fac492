/*
 * dense.h - the "dense" format: an f32 weight, or a 16-bit one converted on
 * first use.
 *
 * What: W (rows x cols, out x in, row-major) as loaded from a checkpoint
 *   (f32 used in place from the mapping; bf16/f16 kept as a view of the
 *   mapping and multiplied from it with dense16's kernels, converted to an
 *   owned f32 copy only when a method asks for one: lp_dense_materialize,
 *   lp_dense_writable) or as made in memory by a method (owned f32).
 * Why: the uncompressed linears, the tied head and the low-rank or residual
 *   parts of composite linears all need the same thing; loading converts
 *   nothing, so a model whose linears are all about to be compressed never
 *   holds them all in f32.
 * Storage: a weight loaded from a checkpoint is saved back exactly as it was
 *   stored (same dtype and bytes, "<base>.weight", no llmpress metadata, so
 *   the file stays a Hugging Face checkpoint); one made or changed in memory
 *   is saved as F32 and described as {"format":"dense"}.
 */
#ifndef LP_DENSE_H
#define LP_DENSE_H

#include "format/format.h"

typedef struct {
    int64_t rows, cols;
    const float *w;            /* rows x cols f32, or NULL while only `raw` is held */
    float *w_owned;            /* set when w was converted, copied or made here */
    const void *raw;           /* the stored 16-bit weight (a view), when not f32 */
    lp_dtype dtype;            /* as stored: F32, BF16 or F16 (size accounting) */
    const lp_tensor_view *src; /* the checkpoint tensor it is a view of (saved as is), or NULL */
} lp_dense;

/* A dense part over a stored tensor (src may be NULL for a view that is not
 * saved, e.g. a tied head): f32 `w` used in place, or 16-bit `raw` (dtype
 * BF16/F16) converted on first use. LP_ERR_NOMEM. */
lp_status lp_dense_view(int64_t rows, int64_t cols, const float *w, const void *raw, lp_dtype dtype,
                        const lp_tensor_view *src, lp_dense **out);

/* A dense part that owns w (rows x cols f32, malloc'd; ownership moves in,
 * also on failure). LP_ERR_NOMEM. */
lp_status lp_dense_own(int64_t rows, int64_t cols, float *w, lp_dense **out);

/* Give d its f32 weight (d->w), converting a 16-bit `raw` once, under a
 * lock (threads may race to the first product). LP_ERR_NOMEM. */
lp_status lp_dense_materialize(lp_dense *d);

/* A writable f32 weight: an owned copy when d is a view. It no longer
 * matches the stored tensor, so it will be saved as F32. LP_ERR_NOMEM. */
lp_status lp_dense_writable(lp_dense *d, float **w);

extern const lp_format lp_format_dense;

#endif
