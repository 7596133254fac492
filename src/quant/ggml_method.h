/*
 * ggml_method.h - the "ggml" method (llama.cpp's block types, with
 * llama.cpp's rounding, importance weights, or GPTQ inside the grids) and
 * the type rules GGUF export shares with it.
 */
#ifndef LP_GGML_METHOD_H
#define LP_GGML_METHOD_H

#include "llmpress/quant.h"
#include "format/ggml.h"

#include <stdint.h>

extern const lp_method lp_method_ggml;

/* The type llama.cpp stores a tensor of rows of `cols` values in when asked
 * for type t: t itself when cols is a multiple of its block, else its
 * fallback (Q2_K, Q3_K -> IQ4_NL; Q4_K -> Q5_0; Q5_K -> Q5_1; Q6_K -> Q8_0;
 * F16 when even that does not divide), or -1 for a 32-value type that does
 * not divide (llama.cpp refuses such a tensor). */
int lp_ggml_effective_type(int t, int64_t cols);

/* GPTQ inside type's grids: out (rows x cols, allocated) gets the codes of
 * W; H (cols x cols) is overwritten with scratch; imp (cols) weights each
 * block's fit, or NULL; block: the lazy batch (rounded up to a multiple of
 * the type's block). *loss (may be NULL) gets GPTQ's loss. */
lp_status lp_ggml_quantize_gptq(int type, const float *W, float *H, const float *imp, double damp, int block,
                                lp_ggml_part *out, double *loss);

/* The llama.cpp type s asks for, or -1 when s is not the ggml method's. */
int lp_ggml_method_type(const lp_settings *s);

#endif
