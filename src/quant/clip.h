/*
 * clip.h - clipping-range search for grouped integer weights (--clip), in the
 * spirit of OmniQuant's learnable weight clipping (Shao et al. 2023,
 * "OmniQuant: Omnidirectionally Calibrated Quantization for Large Language
 * Models", arXiv:2308.13137), solved by search instead of gradients.
 *
 * What: OmniQuant learns, per group, two factors gamma, beta in (0, 1] that
 * shrink the group's max and min before the min-max scale is computed:
 *     scale = (gamma max(w) - beta min(w)) / (2^b - 1).
 * We choose them per (row, group) to minimize that group's contribution to
 * the layer's output error on the calibration data,
 *     e(g) = dw_g H_gg dw_g^T,  dw_g = Q(w_g) - w_g,  H = 2 X^T X / n,
 * from a grid {1 - i/grid : 0 <= i < max_shrink * grid}: first one shared
 * factor (gamma = beta), then beta with gamma fixed, then gamma with beta
 * fixed. A candidate replaces the current one only when strictly better, and
 * the search starts from (1, 1), so the result is never worse than plain
 * min-max on e(g).
 * Why by search: the objective of one group is a small quadratic form that
 * costs (rows x group^2) per candidate through one sgemm; a 1-D grid gets
 * what OmniQuant's gradient descent gets on it (a few steps from 1), without
 * a backward pass or a learning rate, deterministically.
 * Cross-group terms of H are ignored (as AWQ's clip search and OmniQuant's
 * per-block loss also treat groups independently).
 */
#ifndef LP_CLIP_H
#define LP_CLIP_H

#include "llmpress/status.h"
#include "format/qgroup.h"
#include "llmpress/quant.h"

#include <stdint.h>

/* W is rows x cols (row-major, finite), H cols x cols full symmetric; group
 * is the resolved group width (a multiple of 32, or cols for per-channel).
 * clip (rows x ngroups x 2) receives (beta, gamma): the factors of the
 * group's min and max. LP_ERR_NUMERIC for non-finite W or H. */
lp_status lp_clip_search(const float *W, int64_t rows, int64_t cols, const float *H, int bits, int group, int sym,
                         int grid, double max_shrink, float *clip);

/* *clip (malloc'd, rows x ngroups x 2) = the searched factors for q's shape
 * and format (bits, group, sym) on W (q->rows x q->cols) and H; the search's
 * time is added to st->clip_search. */
lp_status lp_clip_for(const float *W, const float *H, const lp_qgroup *q, int grid, double max_shrink,
                      lp_quant_stats *st, float **clip);

#endif
