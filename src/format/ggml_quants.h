/*
 * ggml_quants.h - ggml's block types (llama.cpp's GGUF tensor types): their
 * exact byte layout, dequantization, and the grids our quantizers choose
 * codes in.
 *
 * What: for F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K,
 *   Q5_K, Q6_K: dequantize a row bit for bit as ggml does; quantize a row the way
 *   llama.cpp's reference quantizers do (same bytes for the same input,
 *   with and without importance weights - llama.cpp's imatrix path); and a
 *   block's "grid": the parameters (scales, mins, sub-block scales in their
 *   stored precision) fitted to one block, the code a value rounds to in it,
 *   and the packing of codes + parameters into the block's bytes.
 * Why: GGUF export must write files llama.cpp reads exactly, GGUF import must
 *   compute what llama.cpp computes, and GPTQ/AWQ choose codes inside these
 *   grids with error feedback (lp_ggml_grid_code per column) instead of
 *   rounding, which is where our files beat llama.cpp's at the same size.
 * Design: blocks are plain byte arrays laid out as ggml-common.h's structs
 *   (little-endian, f16 fields as IEEE half); a grid covers one whole block
 *   (32 values, or 256 for the K types). lp_ggml_quantize_row(x) ==
 *   for each block: lp_ggml_grid_fit + lp_ggml_grid_code of every value +
 *   lp_ggml_grid_pack, so a caller that changes values between codes (GPTQ)
 *   still writes llama.cpp's layout. The layouts and algorithms follow
 *   ggml-quants.c (c392e50), written anew from its description.
 */
#ifndef LP_GGML_QUANTS_H
#define LP_GGML_QUANTS_H

#include "io/gguf.h"

#include <stdbool.h>
#include <stdint.h>

#define LP_GGML_QK 32      /* values per block of the legacy types */
#define LP_GGML_QK_K 256   /* values per super-block of the K types */
#define LP_GGML_MAX_SUB 16 /* sub-blocks per block (Q2_K, Q3_K, Q6_K: 16 of 16) */

/* Whether we can dequantize type t (every type above plus F32) and quantize to it. */
bool lp_ggml_can_dequant(int t);
bool lp_ggml_can_quant(int t);

/* y[0..n) from the blocks at src (n a multiple of the type's block). */
void lp_ggml_dequant_row(int t, const void *src, float *y, int64_t n);

/* One block of a legacy or K type (32 or 256 values at blk) in integer
 * form: for every value j, lp_ggml_dequant_row's value equals (==, so a
 * -0 may read +0) the f32 sc16[j / 16] * (float)code[j] + mn16[j / 16]
 * (no FMA contraction). code is the stored
 * code minus the type's offset (Q4_0 8, Q5_0 16, Q3_K 4, Q6_K 32; Q8_0 as
 * stored, IQ4_NL its level, the types with a min unsigned), mn16 the min
 * (Q4_1 / Q5_1 m, minus the K types' min; 0 for the rest). The 8-bit
 * activation product (ggml_q8.h) is specified on this form. */
void lp_ggml_block_codes(int t, const void *blk, int8_t *code, float *sc16, float *mn16);

/* dst = n values of x in type t (n a multiple of the block), as llama.cpp's
 * quantize_row_<t>_ref (imp == NULL) or its quantize_<t> with quant_weights
 * = imp (n importance weights, >= 0; types without an imatrix path ignore it). */
void lp_ggml_quantize_row(int t, const float *x, const float *imp, void *dst, int64_t n);

/* The grid of one block. Opaque to callers except for n. */
typedef struct {
    int type;
    int n;                          /* values in the block: 32 or 256 */
    int sub;                        /* values per sub-block */
    float d, dmin;                  /* the block's stored f16 scales, as f32 (dmin: 0 when none) */
    int8_t sc[LP_GGML_MAX_SUB];     /* integer sub-block scales (K types), as stored */
    uint8_t mn[LP_GGML_MAX_SUB];    /* integer sub-block mins (Q2_K, Q4_K, Q5_K) */
    float scale[LP_GGML_MAX_SUB];   /* effective per-sub-block scale, exactly as dequant forms it */
    float min[LP_GGML_MAX_SUB];     /* effective per-sub-block min (0 when none) */
    float rscale[LP_GGML_MAX_SUB];  /* what the final rounding divides by / multiplies with (llama.cpp
                                     * sometimes rounds with the scale before its f16 rounding) */
    float rmin[LP_GGML_MAX_SUB];
    int qmin, qmax;                 /* the stored code range */
} lp_ggml_grid;

/* Fit the grid of one block to its n values x (imp: n importance weights or
 * NULL), exactly as lp_ggml_quantize_row chooses the block's parameters. */
void lp_ggml_grid_fit(int t, const float *x, const float *imp, lp_ggml_grid *g);

/* The grid of the block starting at column j0 (a multiple of the block) of
 * a row of n values x (imp: its n importance weights, or NULL), exactly as
 * lp_ggml_quantize_row(t, x, imp, ., n) fits it. Unlike lp_ggml_grid_fit,
 * which sees one block, this also reads what llama.cpp's quantizer reads of
 * the rest of the row: the mean x^2 that weights Q4_0 / Q4_1 / Q5_0 / Q5_1
 * blocks under an imatrix. */
void lp_ggml_grid_fit_row(int t, const float *x, const float *imp, int64_t n, int64_t j0, lp_ggml_grid *g);

/* The stored code for value x at position j (0 <= j < g->n) of the block,
 * rounded and clamped as llama.cpp's final pass rounds with these parameters;
 * *deq (when not NULL) gets exactly what lp_ggml_dequant_row will return for it. */
int lp_ggml_grid_code(const lp_ggml_grid *g, int j, float x, float *deq);

/* Write the block's bytes from its parameters and n codes (as returned by lp_ggml_grid_code). */
void lp_ggml_grid_pack(const lp_ggml_grid *g, const int *codes, void *block);

#endif
