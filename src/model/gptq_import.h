/*
 * gptq_import.h - loading the linears of a GPTQ checkpoint directory
 * (config.json's quantization_config.quant_method "gptq"; AutoGPTQ,
 * GPTQModel, optimum and vLLM write and read it). The loader
 * (checkpoint.c, lp_ckpt_load_linear) calls it for a linear that has
 * "<base>.qweight" but neither "<base>.weight" nor llmpress metadata.
 */
#ifndef LP_GPTQ_IMPORT_H
#define LP_GPTQ_IMPORT_H

#include "model/model_impl.h"

#include <stdbool.h>

/* Is linear `base` stored as GPTQ tensors ("<base>.qweight" present)? */
bool lp_ckpt_is_gptq(const lp_model *m, const char *base);

/* Linear `base` (rows x cols, out x in) from <base>.qweight / .qzeros /
 * .scales / .g_idx, as config.json's quantization_config describes them
 * (bits 2, 3, 4, 8; group_size; sym; checkpoint_format "gptq" = zero - 1
 * stored, "gptq_v2" = zero stored). The trivial g_idx (k / group_size) with a
 * group that qgroup holds (a multiple of 32, or per-channel) becomes an
 * owned qgroup part, losslessly; anything else (act-order, other groups) a
 * "gptq" part viewing the mapped tensors. Every tensor and config value is
 * checked; errors name config.json or the file and tensor. */
lp_status lp_ckpt_load_gptq(lp_model *m, const char *base, int64_t rows, int64_t cols, lp_linear *out);

#endif
