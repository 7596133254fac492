/*
 * svd.h - what the low-rank methods (svd.c: "svd", "asvd", "svdllm") share
 * with ASVD's rank allocation (asvd_plan.c).
 */
#ifndef LP_SVD_H
#define LP_SVD_H

#include "quant/method.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    double keep;         /* fraction of the decoder linears' parameters kept, (0, 1) */
    double alpha;        /* asvd: exponent of the activation scaling */
    int rank;            /* svd, svdllm: > 0, every linear at this rank instead of keep's */
    int asvd_windows;    /* asvd: calibration windows its sensitivity is measured on */
    bool update;         /* svdllm: the closed-form update of B */
    int factor_bits;     /* 16: factors in 16-bit floats; 2..8: quantized (qgroup) */
    int factor_group;    /* columns per scale of quantized factors (-1 per row) */
    bool clip;           /* asvd, svdllm --factor-bits: searched grid shrink factors (clip.h) */
    int clip_grid;
    double clip_max_shrink;
} lp_svd_settings;

/* The rank that keeps a fraction `keep` of a rows x cols weight's
 * parameters: floor(keep rows cols / (rows + cols)), at least 1. */
int64_t lp_svd_rank(int64_t rows, int64_t cols, double keep);

/* ASVD's factors of W (rows x cols) at `rank`: W diag(s) = U S V^T with
 * s_j = absmean_j^alpha (1e-6 where that is 0), then B = U_r S_r^1/2
 * (rows x rank) and A = S_r^1/2 V_r^T diag(s)^-1 (rank x cols), f32,
 * malloc'd. absmean NULL: plain SVD (s = 1). LP_ERR_NUMERIC when the SVD
 * fails, LP_ERR_NOMEM. */
lp_status lp_svd_factor_scaled(const float *W, int64_t rows, int64_t cols, const float *absmean, double alpha,
                               int64_t rank, float **A, float **B);

/* ASVD's plan_model (asvd_plan.c): the kept fraction of every decoder
 * linear from its perplexity sensitivity on calibration windows. */
lp_status lp_asvd_plan(lp_model *m, const lp_quant_params *p, const void *s, double *plan, lp_quant_stats *st);

#endif
