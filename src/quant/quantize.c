/*
 * quantize.c - applying a compression method to a whole model.
 *
 * Design: the method's settings say whether it calibrates. Calibrated runs
 * go through the block-wise pipeline (pipeline.c); the others compress each
 * dense linear in turn through lp_method_compress_linear (its f32 copy is
 * the only full-precision weight alive at a time). Either way the result is
 * scanned for NaN/Inf before anyone can save it. A calibrated run first
 * estimates the memory it will hold (lp_pipeline_memory) and is refused when
 * the machine lacks it, before any window is embedded.
 */
#include "llmpress/quant.h"

#include "core/status_impl.h"
#include "core/sysmem.h"
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
 * bug or a numerical breakdown; either way nothing is written. With the
 * loader's guard (model/model.c: every tensor checked finite as it is
 * loaded) this makes writing safe too: lp_model_save writes only tensors
 * that were loaded or that a method produced and this scan checked. */
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

/* "4.4 TB", "812.3 GB", "14.2 MB", "900 kB": decimal units, as the CLI reports sizes. */
static void human(double bytes, char *buf, size_t n) {
    if (bytes >= 1e12) snprintf(buf, n, "%.1f TB", bytes / 1e12);
    else if (bytes >= 1e9) snprintf(buf, n, "%.1f GB", bytes / 1e9);
    else if (bytes >= 1e6) snprintf(buf, n, "%.1f MB", bytes / 1e6);
    else snprintf(buf, n, "%.0f kB", bytes / 1e3);
}

/* Every linear's shape against the method's settings, before any work. */
static lp_status check_shapes(const lp_model *m, const lp_quant_params *p) {
    const lp_method *meth = lp_settings_method(p->method);
    if (!meth->check_shape) return LP_OK;
    char name[256];
    for (int64_t l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_linear *lin = &m->layers[l].lin[k];
            lp_status s = meth->check_shape(lp_settings_data(p->method), lin->rows, lin->cols);
            if (s != LP_OK) {
                lp_linear_name(l, k, name, sizeof name);
                return lp_fail_ctx(s, "%s (%lld x %lld); nothing was done", name, (long long)lin->rows,
                                   (long long)lin->cols);
            }
        }
    return LP_OK;
}

lp_status lp_quant_memory_check(const lp_model *m, const lp_quant_params *p, size_t *bytes) {
    *bytes = 0;
    LP_TRY(lp_quant_params_check(p));
    LP_TRY(check_shapes(m, p));
    if (!lp_quant_needs_calib(p)) return LP_OK;
    if (!p->calib || p->calib->nsamples <= 0 || p->calib->seqlen <= 0)
        return lp_fail(LP_ERR_ARG, "%s needs calibration data: nsamples and seqlen must be positive",
                       lp_method_name(lp_settings_method(p->method)));
    lp_pipe_memory e;
    lp_pipeline_memory(m, p, &e);
    *bytes = e.total >= (double)SIZE_MAX ? SIZE_MAX : (size_t)e.total;
    size_t avail = 0;
    char source[96];
    if (!lp_sysmem_available(&avail, source, sizeof source) || e.total <= (double)avail) return LP_OK;
    char tot[32], win[32], act[32], hes[32], awq[32], ctx[32], wts[32], have[32];
    human(e.total, tot, sizeof tot);
    human(e.windows, win, sizeof win);
    human(e.activations, act, sizeof act);
    human(e.hessian, hes, sizeof hes);
    human(e.awq, awq, sizeof awq);
    human(e.context, ctx, sizeof ctx);
    human(e.weights, wts, sizeof wts);
    human((double)avail, have, sizeof have);
    return lp_fail(LP_ERR_NOMEM, "calibration on %lld x %lld tokens needs about %s (windows %s, activations %s, "
                   "Hessian %s%s%s, context %s, weights %s), more than the %s this machine has available (%s); "
                   "nothing was done; hint: lower --nsamples or --seqlen (the activations grow with "
                   "nsamples x seqlen)", (long long)p->calib->nsamples, (long long)p->calib->seqlen, tot, win, act,
                   hes, e.awq > 0 ? ", AWQ " : "", e.awq > 0 ? awq : "", ctx, wts, have, source);
}

lp_status lp_model_quantize(lp_model *m, const lp_quant_params *p) {
    LP_TRY(lp_quant_params_check(p));
    LP_TRY(check_shapes(m, p));
    const char *name = lp_method_name(lp_settings_method(p->method));
    if (lp_quant_needs_calib(p)) {
        if (!p->calib || !p->calib->tokens || p->calib->nsamples <= 0 || p->calib->seqlen <= 0)
            return lp_fail(LP_ERR_ARG, "%s%s needs calibration data (--calib FILE)", name,
                           p->prescale ? " with AWQ's scales folded in" : "");
        size_t need;
        LP_TRY(lp_quant_memory_check(m, p, &need));
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
