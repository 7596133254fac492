/*
 * dense_export.c - a compressed model as a plain Hugging Face checkpoint:
 * every decoder linear (and a compressed head) replaced by its dequantized
 * weight in f32, everything else as stored.
 *
 * Why: any tool reads it (transformers, llama.cpp's converter), and it is
 * the reference an independent dequantizer of our GPTQ or GGUF files is
 * checked against, bit for bit (scripts/gptq_verify.py).
 */
#include "llmpress/export.h"

#include "core/status_impl.h"
#include "format/dense.h"
#include "model/model_impl.h"

#include <stdlib.h>

/* l's weight as one dense f32 part (its bias stays). */
static lp_status to_dense(lp_linear *l, const char *what) {
    if (l->nparts == 1 && l->part[0].fmt == &lp_format_dense) return LP_OK;
    float *w = lp_linear_to_f32(l);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory for %s's %lld x %lld weight", what, (long long)l->rows,
                           (long long)l->cols);
    lp_dense *d;
    LP_TRY(lp_dense_own(l->rows, l->cols, w, &d));
    lp_linear tmp = {.rows = l->rows, .cols = l->cols};
    LP_TRY(lp_linear_add_part(&tmp, &lp_format_dense, d));
    lp_linear_take_parts(l, &tmp);
    return LP_OK;
}

lp_status lp_export_dense(lp_model *m, const char *dir) {
    LP_TRY(lp_model_save_check(m, dir));
    char name[160];
    for (int64_t l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            lp_linear_name(l, k, name, sizeof name);
            LP_TRY(to_dense(&m->layers[l].lin[k], name));
        }
    if (!m->cfg.tied) LP_TRY(to_dense(&m->head, "lm_head"));
    return lp_model_save(m, dir);
}
