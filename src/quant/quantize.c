/*
 * quantize.c - applying a compression method to a whole model.
 *
 * Design: the method's settings say whether it calibrates. Calibrated runs
 * go through the block-wise pipeline (pipeline.c); the others compress each
 * dense linear in turn through lp_method_compress_linear (its f32 copy is
 * the only full-precision weight alive at a time). Either way the result is
 * scanned for NaN/Inf before anyone can save it.
 */
#include "llmpress/quant.h"

#include "core/status_impl.h"
#include "model/model_impl.h"
#include "quant/pipeline.h"
#include "quant/method.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool lp_quant_needs_calib(const lp_quant_params *p) {
    return p->prescale || (p->method && lp_settings_needs_calib(p->method));
}

lp_status lp_quant_params_check(const lp_quant_params *p) {
    if (!p->method) return lp_fail(LP_ERR_ARG, "no compression method given");
    const lp_method *m = lp_settings_method(p->method);
    LP_TRY(lp_settings_check(p->method));
    if (p->prescale) {
        const lp_method *pre = lp_settings_method(p->prescale);
        if (pre != lp_method_find("awq"))
            return lp_fail(LP_ERR_ARG, "only AWQ's scales can be folded in before another method, not %s",
                           lp_method_name(pre));
        if (m->scope != LP_SCOPE_LINEAR)
            return lp_fail(LP_ERR_ARG, "--awq-prescale composes AWQ with a per-linear method; --method %s already "
                           "runs whole blocks", lp_method_name(m));
        LP_TRY(lp_settings_check(p->prescale));
    }
    return LP_OK;
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
    const char *name = lp_method_name(lp_settings_method(p->method));
    if (lp_quant_needs_calib(p)) {
        if (!p->calib || !p->calib->tokens || p->calib->nsamples <= 0 || p->calib->seqlen <= 0)
            return lp_fail(LP_ERR_ARG, "%s%s needs calibration data (--calib FILE)", name,
                           p->prescale ? " with AWQ's scales folded in" : "");
        LP_TRY(lp_quantize_calibrated(m, p));
        return check_finite(m);
    }
    /* No calibration: linear by linear; the only f32 copy alive is one linear's. */
    lp_quant_stats st = {0};
    const double t0 = lp_now_s();
    char lname[256];
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        for (int k = 0; k < LP_NLIN; k++) {
            if (p->interrupt && *p->interrupt)
                return lp_fail(LP_ERR_INTERRUPTED, "interrupted in block %lld", (long long)l + 1);
            double err = 0;
            lp_status s = lp_method_compress_linear(p->method, &m->layers[l].lin[k], NULL, &st, &err);
            if (s != LP_OK) {
                lp_linear_name(l, k, lname, sizeof lname);
                return lp_fail_ctx(s, "quantizing %s", lname);
            }
            if (p->progress) p->progress(p->progress_ud, l, m->cfg.n_layers, lp_linear_names[k], err);
        }
    }
    st.total = lp_now_s() - t0;
    if (p->stats) *p->stats = st;
    return check_finite(m);
}
