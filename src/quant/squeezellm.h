/*
 * squeezellm.h - SqueezeLLM (Kim et al. 2023, "SqueezeLLM: Dense-and-Sparse
 * Quantization", arXiv:2306.07629) for one linear, into the lookup-table
 * format of qlut.h.
 *
 * What:
 *  - Dense-and-sparse: a fraction `outlier_frac` of the layer's weights is
 *    kept exactly (f16) in a sparse matrix: eight ninths of them the largest
 *    |w| (the paper's outliers), one ninth the largest H_jj w^2 among the
 *    rest (its "sensitive values"; the paper's 0.45% = 0.40% + 0.05%).
 *  - Sensitivity-weighted non-uniform quantization: each row's remaining
 *    weights are clustered into 2^bits centroids by weighted k-means,
 *    minimizing sum_j s_j (w_j - c(w_j))^2. The paper weights by the Fisher
 *    information of the model's loss (squared gradients); without a
 *    backward pass we use the layer-wise equivalent, s_j = H_jj of the
 *    layer's input Hessian H = 2 X^T X / n: the diagonal of the layer output
 *    error's quadratic form, the same for every row.
 *  - k-means is Lloyd's algorithm in one dimension on the sorted row: each
 *    iteration assigns by the midpoints between centroids and moves each
 *    centroid to its cluster's weighted mean (prefix sums), from weighted
 *    quantile starting points, deterministically; it stops when no centroid
 *    moves or after kmeans_iters iterations. Centroids are stored as f16 and
 *    every weight takes the code of the nearest stored centroid.
 */
#ifndef LP_SQUEEZELLM_H
#define LP_SQUEEZELLM_H

#include "format/qlut.h"

/* Compress W (rows x cols, finite) with sensitivities s (cols, >= 0) into
 * out (allocated here with lp_qlut_init). */
lp_status lp_squeezellm_quantize(const float *W, int64_t rows, int64_t cols, const float *s, int bits,
                                 double outlier_frac, int iters, lp_qlut *out);

/* Weighted 1-D k-means of n values v (sorted ascending) with weights wt:
 * k (1..16) centroids (ascending) into c; work holds 2 (n + 1) doubles.
 * Returns the iterations run. */
int lp_kmeans_1d(const float *v, const double *wt, int64_t n, int k, int iters, float *c, double *work);

#endif
