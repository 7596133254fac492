/*
 * perplexity.c - perplexity of a model on a token stream, GPTQ or llama.cpp
 * protocol (see eval.h for their exact definitions).
 *
 * Design: one window at a time: reset the KV cache, run the window as one
 * prefill scoring each scored position's next token (lp_forward_score:
 * the head in vocabulary tiles with a running log-sum-exp, never T x V
 * logits), then
 *   NLL(t) = logsumexp(logits[t]) - logits[t][target(t+1)]
 * accumulated in double. Windows are independent, and no result depends on
 * the thread count.
 */
#include "llmpress/eval.h"

#include "core/clock.h"
#include "core/status_impl.h"
#include "eval/windows.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

lp_ppl_params lp_ppl_default_params(void) {
    return (lp_ppl_params){.protocol = LP_PPL_GPTQ, .ctx = 512, .max_windows = 0};
}

const char *lp_ppl_protocol_name(lp_ppl_protocol p) {
    return p == LP_PPL_LLAMACPP ? "llama.cpp (BOS per window, second half scored)"
                                : "GPTQ (no BOS, non-overlapping windows, all tokens scored)";
}

lp_status lp_windows_plan(const lp_config *c, int64_t n, const lp_ppl_params *p, lp_windows *w) {
    const int64_t ctx = p->ctx;
    const bool lcpp = p->protocol == LP_PPL_LLAMACPP;
    if (ctx < 2) return lp_fail(LP_ERR_ARG, "perplexity: --ctx must be at least 2 (got %lld)", (long long)ctx);
    if (ctx > c->max_pos)
        return lp_fail(LP_ERR_ARG, "perplexity: --ctx %lld exceeds the model's max_position_embeddings %lld",
                       (long long)ctx, (long long)c->max_pos);
    /* Each window scores positions [first, ctx-1). The llama.cpp protocol
     * starts at ctx/2: nothing is left when ctx = 2, and a perplexity over
     * zero tokens is no measurement (it was printed as nan). */
    const int64_t first = lcpp ? ctx / 2 : 0;
    if (ctx - 1 - first < 1)
        return lp_fail(LP_ERR_ARG, "perplexity: --ctx %lld scores no token under the llama.cpp protocol "
                       "(it scores the second half of each window, minus the last position); expected "
                       "--ctx 3 or more", (long long)ctx);
    if (lcpp && c->bos < 0)
        return lp_fail(LP_ERR_ARG, "perplexity: the llama.cpp protocol needs a BOS token, and "
                       "config.json names none");
    const int64_t stream = n + (lcpp ? 1 : 0); /* llama.cpp tokenizes with BOS first */
    int64_t nwin = stream / ctx;
    if (p->max_windows > 0 && nwin > p->max_windows) nwin = p->max_windows;
    if (nwin == 0)
        return lp_fail(LP_ERR_ARG, "perplexity: the text has %lld tokens, fewer than one window of %lld",
                       (long long)n, (long long)ctx);
    *w = (lp_windows){.ctx = ctx, .first = first, .nwin = nwin, .lcpp = lcpp, .bos = (int32_t)c->bos};
    return LP_OK;
}

void lp_windows_fill(const lp_windows *w, const int32_t *ids, int64_t i, int32_t *win) {
    /* window i covers stream[i*ctx, (i+1)*ctx), stream = [BOS] + ids or ids */
    for (int64_t t = 0; t < w->ctx; t++) {
        const int64_t s = i * w->ctx + t;
        win[t] = w->lcpp ? (s == 0 ? w->bos : ids[s - 1]) : ids[s];
    }
    if (w->lcpp) win[0] = w->bos;
}

lp_status lp_perplexity(const lp_model *m, const int32_t *ids, int64_t n, const lp_ppl_params *p,
                        lp_ppl_result *res, double *wnll) {
    memset(res, 0, sizeof *res);
    const lp_config *c = lp_model_config(m);
    lp_windows wp;
    LP_TRY(lp_windows_plan(c, n, p, &wp));
    const int64_t ctx = wp.ctx, first = wp.first, nwin = wp.nwin;

    lp_ctx *cx = NULL;
    LP_TRY(lp_ctx_init(m, ctx, ctx, &cx));
    const int64_t k = ctx - first; /* rows scored: positions first .. ctx-1 (the last has no target) */
    lp_token_score *sc = malloc((size_t)k * sizeof *sc);
    int32_t *win = malloc((size_t)ctx * sizeof(int32_t)), *tgt = malloc((size_t)k * sizeof(int32_t));
    if (!sc || !win || !tgt) {
        free(sc);
        free(win);
        free(tgt);
        lp_ctx_free(cx);
        return lp_fail(LP_ERR_NOMEM, "perplexity: out of memory for a %lld-token window", (long long)ctx);
    }
    double t0 = lp_now_s();
    lp_status st = LP_OK;
    for (int64_t w = 0; w < nwin && st == LP_OK; w++) {
        lp_windows_fill(&wp, ids, w, win);
        for (int64_t j = 0; j < k; j++) tgt[j] = j + 1 < k ? win[first + j + 1] : -1;
        lp_ctx_reset(cx);
        st = lp_forward_score(cx, win, ctx, k, tgt, sc);
        if (st != LP_OK) break;
        double nll = 0;
        for (int64_t j = 0; j + 1 < k; j++) nll -= sc[j].logprob;
        if (!isfinite(nll)) {
            st = lp_fail(LP_ERR_NUMERIC, "perplexity: window %lld produced a non-finite NLL "
                         "(NaN/Inf in the model's output)", (long long)w);
            break;
        }
        if (wnll) wnll[w] = nll;
        res->nll_sum += nll;
        res->count += ctx - 1 - first;
        res->windows = w + 1;
        if (p->progress) p->progress(p->progress_ud, w + 1, nwin, res->nll_sum, res->count);
    }
    res->seconds = lp_now_s() - t0;
    res->ppl = res->count ? exp(res->nll_sum / (double)res->count) : NAN; /* NaN only on failure */
    free(sc);
    free(win);
    free(tgt);
    lp_ctx_free(cx);
    return st;
}
