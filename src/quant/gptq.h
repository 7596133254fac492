/*
 * gptq.h - GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate
 * Post-Training Quantization for Generative Pre-trained Transformers") for
 * one linear layer, into the grouped-integer format of qgroup.h.
 *
 * What: given W (out x in, row-major) and the layer's input Hessian
 * H = 2 X^T X / n (in x in, X = n calibration tokens x in), choose the
 * integers column by column and push each column's rounding error onto the
 * columns not yet quantized so that tr((W - Q) H (W - Q)^T) stays small.
 * Why: at 3-4 bits this is far below round-to-nearest's error for the same
 * format and the same cost at inference; only quantization gets slower.
 * The semantics follow the reference implementation (IST-DASLab/gptq,
 * gptq.py fasterquant); gptq.c lists where and why we differ.
 */
#ifndef LP_GPTQ_H
#define LP_GPTQ_H

#include "llmpress/status.h"
#include "format/qgroup.h"

#include <stdint.h>

typedef struct {
    double damp;      /* relative dampening: damp * mean(diag H) is added to diag H (0.01) */
    int block;        /* lazy-batch block of columns (128); any value >= 1 gives the same
                       * result up to float rounding, except for the group-parameter quirk
                       * described in gptq.c when group < block */
    int act_order;    /* 1: quantize columns in decreasing diag(H) order (static groups) */
    const float *clip; /* NULL, or (rows x ngroups x 2) factors (beta, gamma) shrinking each group's
                        * min and max before its scale is found (clip.h: lp_clip_search) */
    const uint8_t *gbits; /* NULL, or a width per group (ngroups entries, each 1..out->bits):
                           * group g's codes use gbits[g] bits inside the wider container `out`
                           * (mixed precision, qmix.h: lp_qmix_repack); grouped only */
    int damp_retries; /* times the factorization is retried with 10x the damping when
                       * H + damp is not positive definite (4) */
} lp_gptq_params;

lp_gptq_params lp_gptq_default_params(void);

/* Filled by lp_gptq_quantize when the caller passes a non-NULL pointer. */
typedef struct {
    double loss;       /* sum of (w - q)^2 / d^2 / 2: the reference's printed 'error' */
    double damp;       /* relative damping actually used (damp after any retries) */
    double damp_abs;   /* the value added to the diagonal: damp * mean(diag H) */
    int damp_retries;  /* retries needed (0 when the first factorization succeeded) */
    int64_t dead;      /* inputs with H[i,i] == 0, whose weights were set to 0 */
    double t_factor;   /* seconds: checks, permutation, damping, Cholesky, inverse */
    double t_loop;     /* seconds: the blocked quantization loop and packing */
} lp_gptq_stats;

/* Quantize W (out->rows x out->cols, row-major out x in) into `out`, which
 * the caller has set up with lp_qgroup_init (bits, group, sym chosen there;
 * group == cols means per output channel). H (cols x cols) must be symmetric
 * (not checked) and is overwritten with scratch: its contents are
 * unspecified afterwards. W is not modified.
 * Errors: LP_ERR_ARG for bad params, LP_ERR_NUMERIC for NaN/Inf in W or H,
 * an H that stays indefinite after all damping retries, or a scale out of
 * f16 range; LP_ERR_NOMEM. On error `out` is left partially written.
 * OpenMP over rows plus multi-threaded BLAS/LAPACK. The result is the same
 * for any number of OpenMP threads; OpenBLAS may round differently with a
 * different number of BLAS threads (a rare code can change; see gptq.c). */
lp_status lp_gptq_quantize(const float *W, float *H, const lp_gptq_params *p, lp_qgroup *out,
                           lp_gptq_stats *stats);

#endif
