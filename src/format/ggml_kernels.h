/*
 * ggml_kernels.h - the ggml format's SIMD row kernels (ggml_avx2.c: the
 * legacy 32-value types; ggml_k_avx2.c: Q2_K .. Q6_K; ggml_avx512.c: all), used by ggml.c's product for few
 * tokens (rowgemm.h's packed path).
 */
#ifndef LP_GGML_KERNELS_H
#define LP_GGML_KERNELS_H

#include "format/ggml.h"

#include <stdint.h>

/* The K kernels keep x's sums per 16 columns on the stack: rows up to this long. */
#define LP_GGML_K_ROWS_MAX_COLS 65536

/* Whether t is a quantized type (every one but F32 / F16 / BF16): the kernels'
 * dequantization takes it. */
static inline int lp_ggml_kernels_have(int t) {
    return t == LP_GGML_Q8_0 || t == LP_GGML_Q4_0 || t == LP_GGML_Q4_1 || t == LP_GGML_Q5_0 || t == LP_GGML_Q5_1 ||
           t == LP_GGML_IQ4_NL || (t >= LP_GGML_Q2_K && t <= LP_GGML_Q6_K);
}

/* Whether the row kernels take a part of type t with this many columns. */
static inline int lp_ggml_rows_has(int t, int64_t cols) {
    return lp_ggml_kernels_have(t) && (t < LP_GGML_Q2_K || t > LP_GGML_Q6_K || cols <= LP_GGML_K_ROWS_MAX_COLS);
}

/* y[t * ldy + r] = row r of W . x[t * ldx ...] for t < T, r in [r0, r1); lp_rows_fn's contract. */
/* Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL (ggml_avx2.c); the K types go to lp_ggml_k_rows_avx2. */
void lp_ggml_rows_avx2(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                       int64_t r1);

/* Rows [r0, r1) of a quantized part to f32, bit for bit lp_ggml_dequant_row
 * (lp_rows_dequant_fn's contract; ggml_avx2.c, for both kernel levels). */
void lp_ggml_dequant_avx2(const void *w, int64_t r0, int64_t r1, float *out);

/* Every quantized type with AVX-512 (ggml_avx512.c). */
void lp_ggml_rows_avx512(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1);

/* The same for Q2_K .. Q6_K (ggml_k_avx2.c). */
void lp_ggml_k_rows_avx2(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1);

#endif
