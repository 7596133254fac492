/*
 * kl.c - KL divergence of a compressed model from its original, token by
 * token, over a perplexity protocol's windows (definitions in eval.h).
 *
 * What: for each window both models run the same tokens as one prefill
 *   (exactly as lp_perplexity does, so the perplexities reported beside the
 *   divergence are lp_perplexity's); at every scored position the reference's
 *   distribution P and the model's Q give KL(P || Q), whether their top-1
 *   tokens agree, and each model's NLL of the true next token.
 * Why: perplexity averages away where a compressed model goes wrong; the
 *   divergence's tail (p99, p99.9) and the top-1 agreement show it
 *   (llama.cpp's --kl-divergence reports the same figures).
 * Design: one window's logits of each model at a time (2 x ctx x V floats),
 *   never all of them; one float per scored position is kept for the
 *   quantiles (sorted at the end). Positions are independent, so the rows of
 *   a window are shared among threads; sums are in double.
 */
#include "llmpress/eval.h"

#include "core/argmax.h"
#include "core/clock.h"
#include "core/status_impl.h"
#include "eval/windows.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted x[0..n): linear between order statistics. */
static double quantile(const float *x, int64_t n, double q) {
    const double pos = q * (double)(n - 1);
    const int64_t i = (int64_t)floor(pos);
    if (i + 1 >= n) return x[n - 1];
    return (double)x[i] + (pos - (double)i) * ((double)x[i + 1] - (double)x[i]);
}

typedef struct {
    double nll, nll_ref, kl_sum;
    int64_t same;
} window_sums;

/* One window: the divergence at each scored position into kl[], and sums. */
static window_sums score_window(const float *zq, const float *zp, const int32_t *win, int64_t T, int64_t V,
                                int64_t first, float *kl) {
    double nll = 0, nll_ref = 0, kl_sum = 0;
    int64_t same = 0;
    /* the NLL sums keep lp_perplexity's loop (window_nll): same order, same result */
#pragma omp parallel for reduction(+ : nll)
    for (int64_t t = first; t < T - 1; t++) {
        float mx;
        nll += lp_row_lse(zq + t * V, V, &mx) - (double)zq[t * V + win[t + 1]];
    }
#pragma omp parallel for reduction(+ : nll_ref, kl_sum, same)
    for (int64_t t = first; t < T - 1; t++) {
        const float *q = zq + t * V, *p = zp + t * V;
        float mq, mp;
        const double lq = lp_row_lse(q, V, &mq), lpp = lp_row_lse(p, V, &mp);
        double d = 0;
        for (int64_t v = 0; v < V; v++) {
            const double a = (double)p[v] - lpp; /* log P(v) */
            d += exp(a) * (a - ((double)q[v] - lq));
        }
        d = d > 0 ? d : 0; /* rounding can leave a tiny negative for identical rows */
        kl[t - first] = (float)d;
        kl_sum += d;
        nll_ref += lpp - (double)p[win[t + 1]];
        same += lp_argmax(q, V) == lp_argmax(p, V);
    }
    return (window_sums){nll, nll_ref, kl_sum, same};
}

lp_status lp_kl_divergence(const lp_model *m, const lp_model *ref, const int32_t *ids, int64_t n,
                           const lp_ppl_params *p, lp_kl_result *res) {
    memset(res, 0, sizeof *res);
    const lp_config *c = lp_model_config(m), *cr = lp_model_config(ref);
    if (c->vocab != cr->vocab)
        return lp_fail(LP_ERR_ARG, "KL divergence: the model's vocabulary has %lld tokens and the reference's "
                       "%lld; they must be the same", (long long)c->vocab, (long long)cr->vocab);
    lp_windows wp;
    LP_TRY(lp_windows_plan(c, n, p, &wp));
    if (wp.ctx > cr->max_pos)
        return lp_fail(LP_ERR_ARG, "KL divergence: --ctx %lld exceeds the reference's max_position_embeddings "
                       "%lld", (long long)wp.ctx, (long long)cr->max_pos);
    const int64_t ctx = wp.ctx, V = c->vocab, per = ctx - 1 - wp.first, total = wp.nwin * per;
    lp_ctx *cq = NULL, *cp = NULL;
    float *zq = malloc((size_t)(ctx * V) * sizeof *zq), *zp = malloc((size_t)(ctx * V) * sizeof *zp);
    float *kl = malloc((size_t)total * sizeof *kl);
    int32_t *win = malloc((size_t)ctx * sizeof *win);
    lp_status st = zq && zp && kl && win ? LP_OK
                                         : lp_fail(LP_ERR_NOMEM, "KL divergence: out of memory for 2 x %lld x %lld "
                                                   "logits", (long long)ctx, (long long)V);
    if (st == LP_OK) st = lp_ctx_init(m, ctx, ctx, &cq);
    if (st == LP_OK) st = lp_ctx_init(ref, ctx, ctx, &cp);
    const double t0 = lp_now_s();
    double secs_ref = 0, kl_sum = 0;
    int64_t same = 0;
    for (int64_t w = 0; st == LP_OK && w < wp.nwin; w++) {
        lp_windows_fill(&wp, ids, w, win);
        lp_ctx_reset(cq);
        lp_ctx_reset(cp);
        st = lp_forward(cq, win, ctx, zq, true);
        const double tr = lp_now_s();
        if (st == LP_OK) st = lp_forward(cp, win, ctx, zp, true);
        secs_ref += lp_now_s() - tr;
        if (st != LP_OK) break;
        const window_sums s = score_window(zq, zp, win, ctx, V, wp.first, kl + w * per);
        if (!isfinite(s.nll) || !isfinite(s.nll_ref) || !isfinite(s.kl_sum)) {
            st = lp_fail(LP_ERR_NUMERIC, "KL divergence: window %lld produced a non-finite value (NaN/Inf in %s "
                         "output)", (long long)w, isfinite(s.nll_ref) ? "the model's" : "the reference's");
            break;
        }
        res->ppl.nll_sum += s.nll;
        res->ppl_ref.nll_sum += s.nll_ref;
        res->ppl.count += per;
        res->ppl.windows = w + 1;
        kl_sum += s.kl_sum;
        same += s.same;
        if (p->progress) p->progress(p->progress_ud, w + 1, wp.nwin, res->ppl.nll_sum, res->ppl.count);
    }
    if (st == LP_OK) {
        const int64_t N = total;
        res->tokens = N;
        res->mean = kl_sum / (double)N;
        double ss = 0;
        for (int64_t i = 0; i < N; i++) ss += ((double)kl[i] - res->mean) * ((double)kl[i] - res->mean);
        res->mean_stderr = N > 1 ? sqrt(ss / (double)(N - 1) / (double)N) : 0;
        qsort(kl, (size_t)N, sizeof *kl, cmp_float);
        res->median = quantile(kl, N, 0.5);
        res->p90 = quantile(kl, N, 0.9);
        res->p99 = quantile(kl, N, 0.99);
        res->p999 = quantile(kl, N, 0.999);
        res->max = kl[N - 1];
        res->same_top1 = (double)same / (double)N;
        res->ppl_ref.count = res->ppl.count;
        res->ppl_ref.windows = res->ppl.windows;
        res->ppl.ppl = exp(res->ppl.nll_sum / (double)res->ppl.count);
        res->ppl_ref.ppl = exp(res->ppl_ref.nll_sum / (double)res->ppl_ref.count);
        res->ppl_ref.seconds = secs_ref;
        res->ppl.seconds = lp_now_s() - t0 - secs_ref;
    }
    lp_ctx_free(cq);
    lp_ctx_free(cp);
    free(zq);
    free(zp);
    free(kl);
    free(win);
    return st;
}
