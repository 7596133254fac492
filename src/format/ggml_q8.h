/*
 * ggml_q8.h - the decode product of GGUF's quantized blocks (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, IQ4_NL and the K types Q2_K .. Q6_K) with 8-bit
 * activations: what `--act q8` / LP_ACT=q8 selects for these types, as
 * qgroup_q8.h does for grouped integers, and how llama.cpp multiplies them.
 *
 * What (specification; x has cols floats, nb = cols / 32 blocks):
 *   activations, per block b of 32 columns in column order:
 *     d_b = max_j |x_j| / 127,  xq_j = clamp(rint(x_j / d_b), -127, 127)
 *     (all 0 when d_b = 0),  s_b = sum_j xq_j, and the sums t_u of its two
 *     halves of 16 (u = 2b, 2b + 1);
 *   the weights in the integer form of lp_ggml_block_codes (ggml_quants.h):
 *     per 16 values u of a row, value = sc_u * code + mn_u;
 *   y_r = sum over u in order of
 *     (sc_u * d_b) * (float)(sum_{j in u} code_j * xq_j) + (mn_u * d_b) * (float)t_u
 *   (b = u / 2), the integer sums exact and the rest f32 without FMA
 *   contraction. lp_ggml_q8_gemv_ref is that formula term by term.
 * Why: a decode step reads every weight once; with f32 activations the
 *   product of a 4-bit block costs more ALU work than its bytes cost memory
 *   time (ggml_avx512.c), with int8 activations AVX-512 VNNI multiplies 64
 *   weights per vpdpbusd. Rounding x to 8 bits per 32 columns costs what it
 *   costs llama.cpp: a relative error of about 2^-8 per block of x.
 * Design: the kernel (ggml_q8_avx512vnni.c) takes 64 codes per vector as
 *   unsigned bytes u = code + OFF (vpdpbusd multiplies unsigned by signed
 *   bytes; OFF = 8 for Q4_0's nibbles, 0 for the types with a min, else
 *   128) and takes OFF back through x's sums (s_b, or t_u for the K types'
 *   16-value scales); it reorders the f32 sums, so it matches the reference
 *   to f32 rounding relative to the size of the terms
 *   (sum_u |sc_u d_b| (|sum_j u_j xq_j| + OFF |t_u|) + |mn_u d_b| |t_u|),
 *   not bitwise. The activations are quantized once per product on the
 *   calling thread (x of one token; several tokens' on the team), then
 *   spans of rows are shared (core/par.h). lp_ggml_gemm_q8 is T such
 *   products at once (prefill under q8-all), each decoded block feeding
 *   four tokens.
 */
#ifndef LP_GGML_Q8_H
#define LP_GGML_Q8_H

#include "format/ggml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t nblocks; /* cols / 32, rounded up to even: the kernel reads blocks in pairs */
    int8_t *xq;      /* nblocks * 32, 64-byte aligned; the padding block is zero */
    float *d;        /* nblocks */
    int32_t *sum;    /* nblocks */
    int32_t *sum16;  /* 2 * nblocks: the sums of each block's halves */
} lp_ggml_q8_act;

/* Whether the type has this product (the legacy and K types; not F16 /
 * BF16 / F32), and whether this CPU runs its kernel (AVX-512 VNNI, and
 * LP_KERNEL allowing avx512). */
bool lp_ggml_q8_covers(int type);
bool lp_ggml_q8_supported(const lp_ggml_part *p);

/* Bytes of one token's activations for cols columns (alignment included),
 * and the view of them over buf. */
size_t lp_ggml_q8_act_bytes(int64_t cols);
void lp_ggml_q8_act_view(int64_t cols, void *buf, lp_ggml_q8_act *a);

/* The activation quantizer of the specification (cols a multiple of 32):
 * _ref in plain C, _avx512vnni its vector copy (bit for bit; only where
 * lp_cpu_has_avx512vnni()), and the one of the two this CPU runs. */
void lp_ggml_q8_quantize(const float *x, int64_t cols, lp_ggml_q8_act *a);
void lp_ggml_q8_quantize_ref(const float *x, int64_t cols, lp_ggml_q8_act *a);
void lp_ggml_q8_quantize_avx512vnni(const float *x, int64_t cols, lp_ggml_q8_act *a);

/* y[r] for r in [r0, r1): the specification term by term, and the VNNI
 * kernel (only when lp_ggml_q8_supported(p)). */
void lp_ggml_q8_gemv_ref(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1);
void lp_ggml_q8_gemv_avx512vnni(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1);

/* Y[t * ldy + r] for T tokens (a[0 .. T-1]) and r in [r0, r1): the product
 * of each token as specified, one decoded block feeding up to four tokens
 * (prefill); matches the reference per token as the one-token kernel does. */
void lp_ggml_q8_gemm_avx512vnni(const lp_ggml_part *p, const lp_ggml_q8_act *a, int64_t T, float *Y, int64_t ldy,
                                int64_t r0, int64_t r1);

/* y (rows) = W x through 8-bit activations: the kernel where supported,
 * else the reference. LP_ERR_UNSUPPORTED for other types, LP_ERR_NOMEM. */
lp_status lp_ggml_gemv_q8(const lp_ggml_part *p, const float *x, float *y);

/* Y (T, rows) = X (T, cols) W^T through 8-bit activations, each token as
 * lp_ggml_gemv_q8 specifies (the kernel where supported, else the
 * reference per token). LP_ERR_UNSUPPORTED, LP_ERR_ARG (T < 0), LP_ERR_NOMEM. */
lp_status lp_ggml_gemm_q8(const lp_ggml_part *p, const float *X, int64_t T, float *Y);

#endif
