/*
 * test_sampler.c - sampling: greedy is argmax (lowest id on ties), a seed
 * reproduces a sequence, top-k 1 and a tiny top-p reduce to greedy, top-k
 * never picks outside the k best, and temperature sampling follows
 * softmax(logits / T) (chi-square test over 20,000 draws). Non-finite
 * logits (issue 15 item 1: with top-k / top-p no candidate passed the filter
 * and order[-1] was read) are LP_ERR_NUMERIC in every mode, naming the id.
 */
#include "test.h"

#include "llmpress/model.h"

#include <float.h>

/* One draw that must succeed; -1 (and a counted failure) if it does not. */
static int32_t draw(lp_sampler *s, const float *logits) {
    int32_t t = -1;
    CHECK_OK(lp_sample(s, logits, &t));
    return t;
}

/* NaN or Inf logits: refused under greedy, plain temperature, top-k and
 * top-p, with the first bad id in the message, and the sampler stays usable. */
static void test_non_finite(void) {
    enum { V = 8 };
    const float ok[V] = {0.5f, 2.0f, -1.0f, 2.0f, 1.5f, 0.0f, -3.0f, 1.0f};
    const struct { int at; float v; } bad[] = {{5, NAN}, {0, NAN}, {3, INFINITY}, {7, -INFINITY}};
    const lp_sampler_params modes[] = {
        {.temperature = 0.0f, .top_p = 1.0f, .top_k = 0, .seed = 1},   /* greedy */
        {.temperature = 0.8f, .top_p = 1.0f, .top_k = 0, .seed = 1},   /* plain */
        {.temperature = 0.8f, .top_p = 0.9f, .top_k = 0, .seed = 1},   /* top-p */
        {.temperature = 0.8f, .top_p = 1.0f, .top_k = 3, .seed = 1},   /* top-k */
        {.temperature = 0.8f, .top_p = 0.5f, .top_k = 40, .seed = 1},  /* both */
    };
    for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
        lp_sampler *s = NULL;
        CHECK_OK(lp_sampler_init(&modes[m], V, &s));
        if (!s) continue;
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            float l[V];
            memcpy(l, ok, sizeof l);
            l[bad[b].at] = bad[b].v;
            int32_t t = 1234;
            lp_status st = lp_sample(s, l, &t);
            char id[32];
            snprintf(id, sizeof id, "token %d ", bad[b].at);
            CHECKF(st == LP_ERR_NUMERIC && t == -1 && strstr(lp_last_error(), id),
                   "mode %zu, logit %d = %g: status %s, token %d, message: %s", m, bad[b].at, bad[b].v,
                   lp_status_name(st), t, lp_last_error());
        }
        /* Every logit NaN (a model with NaN weights): the same. */
        float all_nan[V];
        for (int i = 0; i < V; i++) all_nan[i] = NAN;
        int32_t t = 1234;
        CHECK(lp_sample(s, all_nan, &t) == LP_ERR_NUMERIC && t == -1);
        int32_t u = draw(s, ok); /* still usable afterwards */
        CHECK(u >= 0 && u < V);
        lp_sampler_free(s);
    }
    /* Extreme but finite logits keep a non-empty candidate set. */
    const float wide[V] = {-FLT_MAX, FLT_MAX, -FLT_MAX, -FLT_MAX, 0, 0, 0, FLT_MAX};
    lp_sampler *s = NULL;
    CHECK_OK(lp_sampler_init(&modes[4], V, &s));
    for (int i = 0; i < 20 && s; i++) {
        int32_t t = draw(s, wide);
        CHECK(t == 1 || t == 7);
    }
    lp_sampler_free(s);
}

int main(void) {
    test_non_finite();
    enum { V = 8 };
    float logits[V] = {0.5f, 2.0f, -1.0f, 2.0f, 1.5f, 0.0f, -3.0f, 1.0f};
    lp_sampler *s = NULL;
    lp_sampler_params p = lp_sampler_default_params();
    CHECK_OK(lp_sampler_init(&p, V, &s));
    CHECK(draw(s, logits) == 1); /* ties: the lowest id, as torch.argmax */
    lp_sampler_free(s);

    /* Reproducible with a seed; different seeds differ somewhere. */
    p.temperature = 1.0f;
    p.seed = 42;
    int32_t a[64], b[64], c[64];
    lp_sampler *s1, *s2, *s3;
    CHECK_OK(lp_sampler_init(&p, V, &s1));
    CHECK_OK(lp_sampler_init(&p, V, &s2));
    p.seed = 43;
    CHECK_OK(lp_sampler_init(&p, V, &s3));
    int same = 1, diff = 0;
    for (int i = 0; i < 64; i++) {
        a[i] = draw(s1, logits);
        b[i] = draw(s2, logits);
        c[i] = draw(s3, logits);
        same &= a[i] == b[i];
        diff |= a[i] != c[i];
    }
    CHECK(same && diff);
    lp_sampler_free(s1);
    lp_sampler_free(s2);
    lp_sampler_free(s3);

    /* top-k 1 and top-p tiny are greedy; top-k 3 stays within {1, 3, 4}. */
    p.seed = 7;
    p.top_k = 1;
    CHECK_OK(lp_sampler_init(&p, V, &s));
    for (int i = 0; i < 50; i++) CHECK(draw(s, logits) == 1);
    lp_sampler_free(s);
    p.top_k = 0;
    p.top_p = 1e-4f;
    CHECK_OK(lp_sampler_init(&p, V, &s));
    for (int i = 0; i < 50; i++) CHECK(draw(s, logits) == 1);
    lp_sampler_free(s);
    p.top_p = 1.0f;
    p.top_k = 3;
    CHECK_OK(lp_sampler_init(&p, V, &s));
    for (int i = 0; i < 500; i++) {
        int32_t t = draw(s, logits);
        CHECK(t == 1 || t == 3 || t == 4);
    }
    lp_sampler_free(s);

    /* Temperature 0.7: frequencies against softmax(logits / 0.7). */
    p.top_k = 0;
    p.temperature = 0.7f;
    CHECK_OK(lp_sampler_init(&p, V, &s));
    enum { N = 20000 };
    int count[V] = {0};
    for (int i = 0; i < N; i++) {
        int32_t t = draw(s, logits);
        if (t >= 0 && t < V) count[t]++;
    }
    double z = 0, prob[V], chi2 = 0;
    for (int i = 0; i < V; i++) z += prob[i] = exp(logits[i] / 0.7);
    for (int i = 0; i < V; i++) {
        double e = N * prob[i] / z;
        chi2 += (count[i] - e) * (count[i] - e) / e;
    }
    CHECKF(chi2 < 24.3, "chi-square %.2f over 7 degrees of freedom (p < 0.001)", chi2);
    lp_sampler_free(s);

    /* Bad parameters are refused. */
    p.temperature = -1;
    CHECK(lp_sampler_init(&p, V, &s) == LP_ERR_ARG);
    p.temperature = 1;
    p.top_p = 0;
    CHECK(lp_sampler_init(&p, V, &s) == LP_ERR_ARG);
    p.top_p = 1;
    p.temperature = INFINITY;
    CHECK(lp_sampler_init(&p, V, &s) == LP_ERR_ARG);
    p.temperature = 1;
    CHECK(lp_sampler_init(&p, 0, &s) == LP_ERR_ARG);
    TEST_DONE();
}
