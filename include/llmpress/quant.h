/*
 * quant.h - compressing a loaded model in place, and saving the result.
 *
 * Methods are applied to the seven decoder linears of every block (q, k, v,
 * o, gate, up, down); embeddings, norms and the LM head stay as stored, as
 * in the papers' own evaluations (REFERENCE.md).
 */
#ifndef LLMPRESS_QUANT_H
#define LLMPRESS_QUANT_H

#include "llmpress/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_METHOD_RTN = 0, /* round to nearest, min-max per group (no calibration) */
} lp_method;

typedef struct {
    lp_method method;
    int bits;  /* 1..8 */
    int group; /* columns per group: a positive multiple of 32, or -1 = per output channel */
    bool sym;  /* symmetric (implicit zero point) */
    /* Called after each linear (may be NULL): layer index, linear name,
     * relative Frobenius error ||W - Q(W)|| / ||W||. */
    void (*progress)(void *ud, int64_t layer, int64_t n_layers, const char *linear, double rel_err);
    void *progress_ud;
} lp_quant_params;

lp_quant_params lp_quant_default_params(void); /* RTN W4 g128 asymmetric */

/* Check bits/group: LP_ERR_ARG with a message saying what is allowed. */
lp_status lp_quant_params_check(const lp_quant_params *p);

/* Replace the model's decoder linears with their quantized form. */
lp_status lp_model_quantize(lp_model *m, const lp_quant_params *p);

/* Write m into out_dir (created if needed): config.json and tokenizer files
 * copied from the source, model.safetensors with packed linears. Files are
 * written under temporary names and renamed when complete. */
lp_status lp_model_save(lp_model *m, const char *out_dir);

/* The checks lp_model_save makes before writing (not the source directory,
 * not a file, parent exists), so a caller can fail before long work. */
lp_status lp_model_save_check(const lp_model *m, const char *out_dir);

#ifdef __cplusplus
}
#endif
#endif
