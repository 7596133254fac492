/*
 * test_kl.c - the KL divergence, the speed measurement and the forward pass's
 * tail/rewind entry points they and the task scorer rely on.
 *
 * KL: a tiny model against its own 2-bit RTN copy; every figure is
 * recomputed here the plain way (whole-vocabulary softmax of each model's
 * logits from a fresh context, KL as sum p log p - sum p log q, quantiles from
 * a sorted copy) and must agree; the perplexities must be lp_perplexity's to
 * rounding; a model against itself diverges by exactly 0 with every
 * top-1 shared; mismatched vocabularies are refused.
 */
#include "llmpress/eval.h"
#include "llmpress/quant.h"
#include "test.h"

static lp_model *load(const char *name) {
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(test_data(name), &m));
    if (!m) exit(1);
    return m;
}

static float *logits_of(const lp_model *m, const int32_t *ids, int64_t T) {
    const int64_t V = lp_model_config(m)->vocab;
    float *out = malloc((size_t)(T * V) * sizeof *out);
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, T, T, &ctx));
    if (ctx) CHECK_OK(lp_forward(ctx, ids, T, out, true));
    lp_ctx_free(ctx);
    return out;
}

static int cmpf(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static double q_of(const float *s, int64_t n, double q) {
    const double pos = q * (double)(n - 1);
    const int64_t i = (int64_t)pos;
    return i + 1 < n ? s[i] + (pos - (double)i) * (s[i + 1] - s[i]) : s[n - 1];
}

static bool close_rel(double a, double b, double tol) { return fabs(a - b) <= tol * fmax(fabs(b), 1e-12); }

static void test_kl_against_plain(void) {
    lp_model *m = load("models/tiny-llama3"), *ref = load("models/tiny-llama3");
    lp_settings *s = NULL;
    CHECK_OK(lp_settings_parse("rtn bits=2 group=32", &s));
    lp_quant_params qp = {.method = s};
    CHECK_OK(lp_model_quantize(m, &qp));
    lp_settings_free(s);

    const int64_t V = lp_model_config(m)->vocab, ctx = 48, nwin = 3, n = ctx * nwin + 7;
    int32_t ids[3 * 48 + 7];
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 131 + i * i % 17) % V);
    lp_ppl_params pp = lp_ppl_default_params();
    pp.ctx = ctx;
    lp_kl_result r;
    CHECK_OK(lp_kl_divergence(m, ref, ids, n, &pp, &r));

    /* the plain way */
    const int64_t per = ctx - 1, N = nwin * per;
    float *kl = malloc((size_t)N * sizeof *kl);
    double sum = 0, nllq = 0, nllp = 0;
    int64_t same = 0;
    for (int64_t w = 0; w < nwin; w++) {
        float *zq = logits_of(m, ids + w * ctx, ctx), *zp = logits_of(ref, ids + w * ctx, ctx);
        for (int64_t t = 0; t < per; t++) {
            const float *q = zq + t * V, *p = zp + t * V;
            double zsq = 0, zsp = 0, mq = q[0], mp = p[0];
            int64_t aq = 0, ap = 0;
            for (int64_t v = 0; v < V; v++) {
                if (q[v] > q[aq]) aq = v;
                if (p[v] > p[ap]) ap = v;
            }
            mq = q[aq], mp = p[ap];
            for (int64_t v = 0; v < V; v++) zsq += exp(q[v] - mq), zsp += exp(p[v] - mp);
            double plogp = 0, plogq = 0;
            for (int64_t v = 0; v < V; v++) {
                const double pv = exp(p[v] - mp) / zsp;
                plogp += pv * log(pv);
                plogq += pv * (q[v] - mq - log(zsq));
            }
            const double d = plogp - plogq;
            kl[w * per + t] = (float)(d > 0 ? d : 0);
            sum += d > 0 ? d : 0;
            same += aq == ap;
            const int32_t y = ids[w * ctx + t + 1];
            nllq += mq + log(zsq) - q[y];
            nllp += mp + log(zsp) - p[y];
        }
        free(zq);
        free(zp);
    }
    qsort(kl, (size_t)N, sizeof *kl, cmpf);
    CHECK(r.tokens == N);
    CHECKF(close_rel(r.mean, sum / (double)N, 1e-6), "mean %.9g vs %.9g", r.mean, sum / (double)N);
    CHECK(r.mean > 1e-4); /* 2-bit weights do change the distribution */
    CHECKF(close_rel(r.median, q_of(kl, N, 0.5), 1e-5), "median %.9g vs %.9g", r.median, q_of(kl, N, 0.5));
    CHECKF(close_rel(r.p99, q_of(kl, N, 0.99), 1e-5), "p99 %.9g vs %.9g", r.p99, q_of(kl, N, 0.99));
    CHECKF(close_rel(r.p999, q_of(kl, N, 0.999), 1e-5), "p999 %.9g vs %.9g", r.p999, q_of(kl, N, 0.999));
    CHECKF(close_rel(r.max, kl[N - 1], 1e-5), "max %.9g vs %.9g", r.max, (double)kl[N - 1]);
    CHECK(r.median <= r.p90 && r.p90 <= r.p99 && r.p99 <= r.p999 && r.p999 <= r.max);
    CHECKF(r.same_top1 == (double)same / (double)N, "top-1 %.6f vs %lld/%lld", r.same_top1, (long long)same,
           (long long)N);
    CHECK(r.same_top1 < 1.0 && r.same_top1 > 0.0);
    CHECKF(close_rel(r.ppl.ppl, exp(nllq / (double)N), 1e-6), "ppl %.9g vs %.9g", r.ppl.ppl, exp(nllq / (double)N));
    CHECKF(close_rel(r.ppl_ref.ppl, exp(nllp / (double)N), 1e-6), "ref ppl %.9g", r.ppl_ref.ppl);
    /* the perplexities are lp_perplexity's to rounding: the KL report takes
     * them from whole logits rows, lp_perplexity from vocabulary tiles with a
     * running log-sum-exp (score.c) */
    lp_ppl_result a, b;
    CHECK_OK(lp_perplexity(m, ids, n, &pp, &a, NULL));
    CHECK_OK(lp_perplexity(ref, ids, n, &pp, &b, NULL));
    CHECKF(close_rel(a.nll_sum, r.ppl.nll_sum, 1e-7) && close_rel(a.ppl, r.ppl.ppl, 1e-7), "%.17g vs %.17g",
           a.nll_sum, r.ppl.nll_sum);
    CHECKF(close_rel(b.nll_sum, r.ppl_ref.nll_sum, 1e-7), "%.17g vs %.17g", b.nll_sum, r.ppl_ref.nll_sum);
    CHECK(a.count == r.ppl.count && r.ppl.windows == nwin);

    /* the llama.cpp protocol scores the second half only */
    pp.protocol = LP_PPL_LLAMACPP;
    CHECK_OK(lp_kl_divergence(m, ref, ids, n, &pp, &r));
    CHECK_OK(lp_perplexity(m, ids, n, &pp, &a, NULL));
    CHECK(r.tokens == a.count && close_rel(r.ppl.nll_sum, a.nll_sum, 1e-7));

    /* against itself: exactly nothing lost */
    pp.protocol = LP_PPL_GPTQ;
    CHECK_OK(lp_kl_divergence(ref, ref, ids, n, &pp, &r));
    CHECK(r.mean == 0 && r.max == 0 && r.same_top1 == 1.0 && r.ppl.nll_sum == r.ppl_ref.nll_sum);

    /* settings that score nothing, and other vocabularies, are refused */
    pp.ctx = 1000;
    CHECK(lp_kl_divergence(m, ref, ids, n, &pp, &r) == LP_ERR_ARG);
    lp_model *other = load("models/tiny-qwen2");
    pp.ctx = ctx;
    if (lp_model_config(other)->vocab != V) {
        CHECK(lp_kl_divergence(m, other, ids, n, &pp, &r) == LP_ERR_ARG && strstr(lp_last_error(), "vocabulary"));
    }
    lp_model_free(other);
    free(kl);
    lp_model_free(m);
    lp_model_free(ref);
}

/* lp_forward_tail gives lp_forward's last k rows; a rewound context scores a
 * continuation as the whole sequence does. */
static void test_tail_and_rewind(void) {
    lp_model *m = load("models/tiny-llama3");
    const int64_t V = lp_model_config(m)->vocab, T = 30;
    int32_t ids[30];
    for (int64_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 53 + 5) % V);
    float *all = logits_of(m, ids, T), *tail = malloc((size_t)(10 * V) * sizeof *tail);
    lp_ctx *c = NULL;
    CHECK_OK(lp_ctx_init(m, T, 8, &c)); /* chunks of 8: the tail spans two of them */
    CHECK_OK(lp_forward_tail(c, ids, T, 5, tail));
    float worst = 0;
    for (int64_t i = 0; i < 5 * V; i++) worst = fmaxf(worst, fabsf(tail[i] - all[(T - 5) * V + i]));
    CHECKF(worst < 1e-4f, "tail vs all: %g", worst);
    /* context 20 tokens, then two continuations from a rewind */
    lp_ctx_reset(c);
    CHECK_OK(lp_forward_tail(c, ids, 20, 0, NULL));
    CHECK(lp_ctx_pos(c) == 20);
    int32_t other[10];
    for (int i = 0; i < 10; i++) other[i] = (int32_t)((i * 7 + 1) % V);
    CHECK_OK(lp_forward_tail(c, other, 10, 10, tail));
    CHECK_OK(lp_ctx_rewind(c, 20));
    CHECK_OK(lp_forward_tail(c, ids + 20, 10, 5, tail));
    worst = 0;
    for (int64_t i = 0; i < 5 * V; i++) worst = fmaxf(worst, fabsf(tail[i] - all[(T - 5) * V + i]));
    CHECKF(worst < 1e-4f, "rewound vs whole: %g", worst);
    CHECK(lp_ctx_rewind(c, 31) == LP_ERR_ARG);
    CHECK(lp_forward_tail(c, ids, 3, 4, tail) == LP_ERR_ARG);
    CHECK(lp_forward_tail(c, ids, 3, 1, NULL) == LP_ERR_ARG);
    lp_ctx_free(c);
    free(all);
    free(tail);
    lp_model_free(m);
}

static void test_speed(void) {
    lp_model *m = load("models/tiny-llama3");
    lp_speed_result r;
    CHECK_OK(lp_speed_measure(m, NULL, 16, 8, 0, 3, &r));
    CHECK(r.prefill_tok_s > 0 && isfinite(r.prefill_tok_s) && r.decode_tok_s > 0 && r.reps == 3);
    CHECK_OK(lp_speed_measure(m, NULL, 16, 8, 20, 1, &r)); /* after 20 cached tokens */
    CHECK(r.depth == 20 && r.decode_tok_s > 0);
    const int64_t maxp = lp_model_config(m)->max_pos;
    CHECK_OK(lp_speed_measure(m, NULL, maxp, 1, 0, 1, &r)); /* pp and tg each fill the context alone */
    CHECK(lp_speed_measure(m, NULL, maxp + 1, 1, 0, 1, &r) == LP_ERR_ARG); /* past max_position_embeddings */
    CHECK(lp_speed_measure(m, NULL, maxp, 1, 1, 1, &r) == LP_ERR_ARG);
    CHECK(lp_peak_rss_bytes() > 1 << 20);
    lp_model_free(m);
}

int main(void) {
    test_kl_against_plain();
    test_tail_and_rewind();
    test_speed();
    TEST_DONE();
}
