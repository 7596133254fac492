/*
 * awq.h - AWQ (Lin, Tang, Tang, Yang, Dang, Gan, Han 2023, "AWQ: Activation-
 * aware Weight Quantization for LLM Compression and Acceleration",
 * arXiv:2306.00978) for one decoder block of the calibrated pipeline, plus
 * the pieces it is built from, exposed for tests.
 *
 * Weights are row-major `out x in` (y = x W^T); "channel" means an input
 * channel, i.e. a column of W. awq.c describes the algorithm.
 */
#ifndef LP_AWQ_H
#define LP_AWQ_H

#include "llmpress/quant.h"
#include "format/qgroup.h"

#include <stdbool.h>
#include <stdint.h>

/* AWQ's settings (its registry row's schema, awq.c). */
typedef struct {
    int bits, group;   /* group -1: per output channel */
    bool sym;
    bool no_scale;     /* skip the scale search (llm-awq always searches) */
    bool no_clip;      /* skip the clipping search */
    int grid;          /* both searches' grid: scale exponents i/grid for i < grid and clipping
                          ranges max|w| * (1 - i/grid) for i < max_shrink * grid (20) */
    double max_shrink; /* deepest clipping tried, as a fraction of max|w| (0.5) */
    int clip_tokens;   /* calibration tokens the clipping search uses, evenly strided (512) */
    int search_samples; /* calibration sequences the scale search runs on (0 = all) */
} lp_awq_settings;

/* AWQ's quantizer (llm-awq quantizer.py pseudo_quantize_tensor) for one group
 * x[0..n): asymmetric: scale = max(max - min, 1e-5) / (2^b - 1),
 * zero = clamp(-round(min / scale), 0, 2^b - 1); the range is NOT widened to
 * hold 0 (unlike GPTQ's lp_qparams_minmax). sym: scale = max(max|x|, 1e-5) /
 * (2^(b-1) - 1), zero = 2^(b-1). The scale is rounded to f16 (what is stored)
 * before zero is computed, as in rtn.c. Values are then
 * q = clamp(round(x / scale) + zero, 0, 2^b - 1) (lp_rtn_quantize_value).
 * LP_ERR_NUMERIC for NaN/Inf in x or a scale beyond f16. */
lp_status lp_awq_qparams(const float *x, int64_t n, int bits, int sym, float *scale, int *zero);

/* out (rows x cols) = dequant(quant(W)) with lp_awq_qparams per group of
 * `group` columns (-1: the whole row). out may equal W. */
lp_status lp_awq_fake_quant(const float *W, int64_t rows, int64_t cols, int bits, int group, int sym,
                            float *out);

/* Quantize W (q->rows x q->cols) into q, set up by lp_qgroup_init; q then
 * dequantizes exactly to lp_awq_fake_quant's output. */
lp_status lp_awq_quantize(const float *W, lp_qgroup *q);

/* auto_clip for one linear (llm-awq auto_clip.py auto_clip_layer): for every
 * (row r, group g), among m = org * (1 - i/grid), i = 0 .. int(max_shrink *
 * grid) - 1, with org = max |W[r, g]|, pick the one minimizing
 * mean_t (X[t, g] . (Q(clamp(W[r, g], -m, m)) - W[r, g]))^2 over the n
 * calibration tokens X (n x cols); i = 0 is no clipping, and a later m is
 * taken only when strictly better. max_val is rows x ngroups; err (may be
 * NULL) receives the chosen error and err0 (may be NULL) the unclipped one. */
lp_status lp_awq_clip_search(const float *W, int64_t rows, int64_t cols, const float *X, int64_t n, int bits,
                             int group, int sym, int grid, double max_shrink, float *max_val, double *err,
                             double *err0);

/* AWQ on decoder block b of m, whose calibration inputs X (N sequences x L
 * tokens x D) the caller computed; ctx is a context of m for L tokens.
 * Unless p->no_scale: search and fold the scales (the model's function does
 *   not change, up to rounding); unless p->no_clip: search and apply clipping;
 * quantize: then replace the block's seven linears by their packed form
 *   (otherwise they stay dense f32, scaled and clipped, owned by the model),
 *   reporting each through qp->progress (qp may be NULL).
 * On return X holds the block's output computed with its ORIGINAL f32
 * weights, as llm-awq's run_awq propagates. Times go to st (added). */
lp_status lp_awq_block(lp_model *m, lp_ctx *ctx, int64_t b, float *X, int64_t N, int64_t L,
                       const lp_awq_settings *p, bool quantize, const lp_quant_params *qp, lp_quant_stats *st);

#endif
