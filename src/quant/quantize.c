/*
 * quantize.c - applying a weight-quantization method to a whole model.
 *
 * Design: linear by linear, block by block. Each dense linear is copied to
 * f32 (the only full-precision copy alive at a time: peak extra memory is one
 * linear), quantized into a fresh lp_qgroup, and swapped in; the old dense
 * weight was a view into the mapped checkpoint or a load-time copy owned by
 * the model, so nothing is freed here. Calibrated methods (GPTQ, AWQ) will
 * plug in beside RTN with the block-wise pipeline.
 */
#include "llmpress/quant.h"

#include "core/status_impl.h"
#include "model/model_impl.h"
#include "quant/pipeline.h"
#include "quant/rtn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lp_quant_params lp_quant_default_params(void) {
    return (lp_quant_params){.method = LP_METHOD_RTN, .bits = 4, .group = 128, .sym = false,
                             .damp = 0.01, .gptq_block = 128, .awq_scale = true, .awq_clip = true,
                             .awq_grid = 20, .awq_max_shrink = 0.5, .awq_clip_tokens = 512,
                             .clip_grid = 20, .clip_max_shrink = 0.5, .outlier_frac = 0.0045,
                             .kmeans_iters = 50};
}

static const char *const METHOD_NAMES[] = {"rtn", "gptq", "awq", "squeezellm", "slim"};
#define N_METHODS ((int)(sizeof METHOD_NAMES / sizeof METHOD_NAMES[0]))

const char *lp_method_name(lp_method m) {
    return (int)m >= 0 && (int)m < N_METHODS ? METHOD_NAMES[m] : NULL;
}

int lp_method_from_name(const char *name) {
    for (int i = 0; i < N_METHODS; i++)
        if (!strcmp(name, METHOD_NAMES[i])) return i;
    return -1;
}

lp_status lp_quant_params_check(const lp_quant_params *p) {
    if (!lp_method_name(p->method))
        return lp_fail(LP_ERR_ARG, "unknown quantization method %d", (int)p->method);
    if (p->method == LP_METHOD_GPTQ) {
        if (!(p->damp > 0 && p->damp < 1))
            return lp_fail(LP_ERR_ARG, "--damp %g must be in (0, 1)", p->damp);
        if (p->gptq_block < 1)
            return lp_fail(LP_ERR_ARG, "GPTQ block size %d must be positive", p->gptq_block);
    }
    if (p->method == LP_METHOD_AWQ) {
        if (p->awq_grid < 1 || p->awq_grid > 1000)
            return lp_fail(LP_ERR_ARG, "AWQ grid %d must be in 1..1000 (the paper uses 20)", p->awq_grid);
        if (!(p->awq_max_shrink >= 0 && p->awq_max_shrink < 1))
            return lp_fail(LP_ERR_ARG, "AWQ max shrink %g must be in [0, 1) (the paper uses 0.5)",
                           p->awq_max_shrink);
        if (p->awq_clip_tokens < 1)
            return lp_fail(LP_ERR_ARG, "AWQ clip tokens %d must be positive (the paper uses 512)",
                           p->awq_clip_tokens);
    }
    if (p->clip) {
        if (p->method != LP_METHOD_RTN && p->method != LP_METHOD_GPTQ)
            return lp_fail(LP_ERR_ARG, "--clip works with rtn and gptq (awq has its own clipping search; "
                           "squeezellm and slim choose their own ranges)");
        if (p->clip_grid < 1 || p->clip_grid > 1000)
            return lp_fail(LP_ERR_ARG, "clip grid %d must be in 1..1000 (20 is usual)", p->clip_grid);
        if (!(p->clip_max_shrink >= 0 && p->clip_max_shrink < 1))
            return lp_fail(LP_ERR_ARG, "clip max shrink %g must be in [0, 1)", p->clip_max_shrink);
    }
    if (p->awq_prescale && p->method == LP_METHOD_AWQ)
        return lp_fail(LP_ERR_ARG, "--awq-prescale composes AWQ with another method (gptq, rtn, squeezellm, "
                       "slim); --method awq already is AWQ");
    if (p->method == LP_METHOD_SQUEEZELLM) {
        if (!(p->outlier_frac >= 0 && p->outlier_frac <= 0.1))
            return lp_fail(LP_ERR_ARG, "--outliers %g must be a fraction in [0, 0.1] (SqueezeLLM keeps "
                           "0.0005 to 0.005)", p->outlier_frac);
        if (p->kmeans_iters < 1)
            return lp_fail(LP_ERR_ARG, "k-means iterations %d must be positive", p->kmeans_iters);
        if (p->bits > 4)
            return lp_fail(LP_ERR_ARG, "squeezellm --bits %d: lookup tables of 1 to 4 bits are supported",
                           p->bits);
    }
    if (p->method == LP_METHOD_SLIM) {
        if (p->bits < 2 || p->bits > 7)
            return lp_fail(LP_ERR_ARG, "slim --bits %d: the average must leave room for one bit less and one "
                           "more (2 to 7)", p->bits);
        if (p->group == -1)
            return lp_fail(LP_ERR_ARG, "slim allocates bits per column group: give --group (e.g. 128), "
                           "not per-channel");
    }
    if (p->bits < 1 || p->bits > 8)
        return lp_fail(LP_ERR_ARG, "--bits %d is not supported: use 1 to 8 (2, 3, 4 and 8 are the "
                       "usual choices)", p->bits);
    if (!(p->group == -1 || (p->group > 0 && p->group % 32 == 0)))
        return lp_fail(LP_ERR_ARG, "--group %d is not supported: use a positive multiple of 32 "
                       "(32, 64, 128, ...) or -1 for one group per output channel", p->group);
    if (p->sym && p->bits == 1)
        return lp_fail(LP_ERR_ARG, "--sym with --bits 1 leaves a single level; use asymmetric 1-bit "
                       "or 2+ bits");
    return LP_OK;
}

static lp_status quantize_linear(lp_linear *l, const lp_quant_params *p, double *err) {
    if (l->fmt != LP_LINEAR_DENSE)
        return lp_fail(LP_ERR_ARG, "linear is already compressed; quantize the original checkpoint");
    float *W = lp_linear_to_f32(l);
    if (!W) return lp_fail(LP_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < l->rows * l->cols; i++)
        if (!isfinite(W[i])) {
            const char *what = isnan(W[i]) ? "NaN" : "infinite";
            free(W);
            return lp_fail(LP_ERR_NUMERIC, "weight [%lld, %lld] is %s", (long long)(i / l->cols),
                           (long long)(i % l->cols), what);
        }
    lp_qgroup *q = calloc(1, sizeof *q);
    lp_status st = q ? lp_qgroup_init(q, l->rows, l->cols, p->bits, p->group, p->sym)
                     : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK) st = lp_rtn_quantize(W, q);
    if (st == LP_OK) {
        lp_linear_set_qgroup(l, q);
        *err = lp_linear_rel_error(l, W);
    } else if (q) {
        lp_qgroup_free(q);
        free(q);
    }
    free(W);
    return st;
}

/* The compressed model must never hold NaN or Inf: every linear is expanded
 * once (one linear at a time) and scanned. A method that produced one is a
 * bug or a numerical breakdown; either way nothing is written. */
static lp_status check_finite(const lp_model *m) {
    char name[256];
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        const lp_layer *L = &m->layers[l];
        for (int64_t i = 0; L->norms_changed && i < m->cfg.dim; i++)
            if (!isfinite(L->attn_norm[i]) || !isfinite(L->ffn_norm[i]))
                return lp_fail(LP_ERR_NUMERIC, "model.layers.%lld: a rescaled RMSNorm weight [%lld] is not "
                               "finite; nothing was written", (long long)l, (long long)i);
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_linear *lin = &m->layers[l].lin[k];
            float *W = lp_linear_to_f32(lin);
            if (!W) return lp_fail(LP_ERR_NOMEM, "out of memory");
            int64_t bad = -1;
            for (int64_t i = 0; i < lin->rows * lin->cols && bad < 0; i++)
                if (!isfinite(W[i])) bad = i;
            free(W);
            if (bad >= 0) {
                lp_linear_name(l, k, name, sizeof name);
                return lp_fail(LP_ERR_NUMERIC, "%s: the compressed weight [%lld, %lld] is not finite; nothing "
                               "was written", name, (long long)(bad / lin->cols), (long long)(bad % lin->cols));
            }
        }
    }
    return LP_OK;
}

lp_status lp_model_quantize(lp_model *m, const lp_quant_params *p) {
    LP_TRY(lp_quant_params_check(p));
    if (p->method != LP_METHOD_RTN || p->clip || p->awq_prescale) {
        if (!p->calib || !p->calib->tokens || p->calib->nsamples <= 0 || p->calib->seqlen <= 0)
            return lp_fail(LP_ERR_ARG, "%s%s needs calibration data (--calib FILE)", lp_method_name(p->method),
                           p->clip ? " with clipping search" : "");
        LP_TRY(lp_quantize_calibrated(m, p));
        return check_finite(m);
    }
    char name[256];
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        for (int k = 0; k < LP_NLIN; k++) {
            double err = 0;
            lp_linear_name(l, k, name, sizeof name);
            lp_status st = quantize_linear(&m->layers[l].lin[k], p, &err);
            if (st != LP_OK) return lp_fail_ctx(st, "quantizing %s", name);
            if (p->progress) p->progress(p->progress_ud, l, m->cfg.n_layers, lp_linear_names[k], err);
        }
    }
    return check_finite(m);
}
