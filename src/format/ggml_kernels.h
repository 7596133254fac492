/*
 * ggml_kernels.h - the ggml format's SIMD row kernels (ggml_avx2.c), used by
 * ggml.c's product for few tokens (rowgemm.h's packed path).
 */
#ifndef LP_GGML_KERNELS_H
#define LP_GGML_KERNELS_H

#include "format/ggml.h"

#include <stdint.h>

/* Whether the row kernels take type t (Q8_0, Q4_0). */
static inline int lp_ggml_rows_has(int t) { return t == LP_GGML_Q8_0 || t == LP_GGML_Q4_0; }

/* y[t * ldy + r] = row r of W . x[t * ldx ...] for t < T, r in [r0, r1); lp_rows_fn's contract. */
void lp_ggml_rows_avx2(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                       int64_t r1);

#endif
