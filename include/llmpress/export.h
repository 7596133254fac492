/*
 * export.h - write a model in the formats other runtimes load.
 *
 * What: GGUF files for llama.cpp / ollama (lp_export_gguf) and GPTQ
 *   checkpoints for vLLM / transformers (lp_export_gptq). Both are written
 *   whole or not at all (temporary name, renamed when complete).
 * Why: a compressed model is only useful where people run it; both files
 *   are read back by llmpress too (lp_model_load of a .gguf file, or of a
 *   directory whose config.json carries a GPTQ quantization_config), so the
 *   tools can be compared on identical bytes.
 */
#ifndef LLMPRESS_EXPORT_H
#define LLMPRESS_EXPORT_H

#include "llmpress/model.h"
#include "llmpress/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "llmpress/tokenizer.h"

typedef struct {
    const char *type;       /* "F16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q2_K", "Q3_K", "Q4_K",
                             * "Q5_K", "Q6_K" (case-insensitive) */
    const char *embed_type; /* NULL: as llama-quantize's presets type token_embd.weight */
    const char *head_type;  /* NULL: as llama-quantize's presets type output.weight */
    int verbose;            /* one line per tensor on stderr */
} lp_gguf_options;

lp_gguf_options lp_gguf_default_options(void);

/* LP_ERR_ARG naming a type we do not write (before any work). */
lp_status lp_gguf_options_check(const lp_gguf_options *o);

/* Write m with tokenizer tok as one GGUF file (version 3, architecture
 * "llama", or "qwen2" for Qwen2) at path. Each decoder linear is dense
 * (rounded here into o->type exactly as llama.cpp's quantizer rounds) or a
 * "ggml" part (lp_model_quantize with the ggml method: importance-weighted
 * or GPTQ codes inside the type's grids), written as stored. Errors:
 * LP_ERR_ARG (an unknown type, a linear in another format, a width the type
 * cannot store), LP_ERR_UNSUPPORTED (a tokenizer or architecture llama.cpp
 * cannot take, naming it), LP_ERR_IO naming the path. */
lp_status lp_export_gguf(lp_model *m, const lp_tokenizer *tok, const lp_gguf_options *o, const char *path);

/* Write m as a GPTQ checkpoint directory (config.json with
 * quantization_config, quantize_config.json, model.safetensors with
 * qweight / qzeros / scales / g_idx per linear, the tokenizer files copied).
 * Every decoder linear must be one grouped-integer part of 2, 3, 4 or 8 bits
 * (llmpress quantize --method rtn|gptq|awq writes such); embedding, norms
 * and head are written in 16 bits. */
lp_status lp_export_gptq(const lp_model *m, const char *dir);

/* Write m as a plain Hugging Face checkpoint directory: every compressed
 * decoder linear (and head) dequantized to f32, the rest as stored. m's
 * linears are replaced in memory. */
lp_status lp_export_dense(lp_model *m, const char *dir);

#ifdef __cplusplus
}
#endif
#endif
