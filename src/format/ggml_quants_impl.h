/*
 * ggml_quants_impl.h - the split of ggml_quants.c: the legacy 32-value types
 * (and the type dispatch) live in ggml_quants.c, the 256-value K types in
 * ggml_kquants.c, which implements these for t in Q2_K .. Q6_K.
 */
#ifndef LP_GGML_QUANTS_IMPL_H
#define LP_GGML_QUANTS_IMPL_H

#include "format/ggml_quants.h"

void lp_ggml_k_dequant_row(int t, const void *src, float *y, int64_t n);
void lp_ggml_k_quantize_row(int t, const float *x, const float *imp, void *dst, int64_t n);
void lp_ggml_k_grid_fit(int t, const float *x, const float *imp, lp_ggml_grid *g);
int lp_ggml_k_grid_code(const lp_ggml_grid *g, int j, float x, float *deq);
void lp_ggml_k_grid_pack(const lp_ggml_grid *g, const int *codes, void *block);

#endif
