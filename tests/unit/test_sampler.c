/*
 * test_sampler.c - sampling: greedy is argmax (lowest id on ties), a seed
 * reproduces a sequence, top-k 1 and a tiny top-p reduce to greedy, top-k
 * never picks outside the k best, and temperature sampling follows
 * softmax(logits / T) (chi-square test over 20,000 draws).
 */
#include "test.h"

#include "llmpress/model.h"

int main(void) {
    enum { V = 8 };
    float logits[V] = {0.5f, 2.0f, -1.0f, 2.0f, 1.5f, 0.0f, -3.0f, 1.0f};
    lp_sampler *s = NULL;
    lp_sampler_params p = lp_sampler_default_params();
    CHECK_OK(lp_sampler_init(&p, V, &s));
    CHECK(lp_sample(s, logits) == 1); /* ties: the lowest id, as torch.argmax */
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
        a[i] = lp_sample(s1, logits);
        b[i] = lp_sample(s2, logits);
        c[i] = lp_sample(s3, logits);
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
    for (int i = 0; i < 50; i++) CHECK(lp_sample(s, logits) == 1);
    lp_sampler_free(s);
    p.top_k = 0;
    p.top_p = 1e-4f;
    CHECK_OK(lp_sampler_init(&p, V, &s));
    for (int i = 0; i < 50; i++) CHECK(lp_sample(s, logits) == 1);
    lp_sampler_free(s);
    p.top_p = 1.0f;
    p.top_k = 3;
    CHECK_OK(lp_sampler_init(&p, V, &s));
    for (int i = 0; i < 500; i++) {
        int32_t t = lp_sample(s, logits);
        CHECK(t == 1 || t == 3 || t == 4);
    }
    lp_sampler_free(s);

    /* Temperature 0.7: frequencies against softmax(logits / 0.7). */
    p.top_k = 0;
    p.temperature = 0.7f;
    CHECK_OK(lp_sampler_init(&p, V, &s));
    enum { N = 20000 };
    int count[V] = {0};
    for (int i = 0; i < N; i++) count[lp_sample(s, logits)]++;
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
    TEST_DONE();
}
