/*
 * test_forward_parity.c - logits of our f32 forward pass against Hugging Face
 * transformers (f32, eager attention) on five checkpoints: llama-25m and
 * stories260k from the shared assets, and three random-weight checkpoints
 * (Mistral f16, Qwen2 bf16 sharded with qkv bias, Llama-3-style f32 with
 * llama3 rope scaling, explicit head_dim and attention bias) committed in
 * tests/data/models. Fixtures: tests/data/parity/<model>.safetensors, made by
 * scripts/make_fixtures.py.
 *
 * Also checks that the KV cache gives the same logits as one full forward,
 * token by token and in uneven chunks.
 */
#include "test.h"

#include "io/safetensors.h"
#include "llmpress/model.h"

static double rel_err(const float *a, const float *b, int64_t n, double *maxdiff) {
    double num = 0, den = 0, md = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
        if (fabs(d) > md) md = fabs(d);
    }
    if (maxdiff) *maxdiff = md;
    return sqrt(num / (den > 0 ? den : 1));
}

static void check_model(const char *model_dir, const char *fixture) {
    lp_model *m = NULL;
    lp_st_file *fx = NULL;
    CHECK_OK(lp_model_load(model_dir, &m));
    CHECK_OK(lp_st_open(fixture, &fx));
    if (!m || !fx) return;
    const lp_config *c = lp_model_config(m);
    const lp_tensor_view *ids_t = lp_st_find(fx, "input_ids"), *pos_t = lp_st_find(fx, "positions");
    const lp_tensor_view *lg_t = lp_st_find(fx, "logits"), *mx_t = lp_st_find(fx, "max");
    const lp_tensor_view *am_t = lp_st_find(fx, "argmax"), *lse_t = lp_st_find(fx, "lse");
    CHECK(ids_t && pos_t && lg_t && mx_t && am_t && lse_t);
    if (!(ids_t && pos_t && lg_t && mx_t && am_t && lse_t)) return;
    const int64_t T = ids_t->numel, V = c->vocab, P = pos_t->numel;
    const int32_t *ids = ids_t->data, *pos = pos_t->data, *am = am_t->data;
    const float *ref = lg_t->data, *mx = mx_t->data, *lse = lse_t->data;
    CHECK(lg_t->shape[1] == V);

    float *out = malloc((size_t)(T * V) * sizeof(float));
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, T, T, &ctx));
    CHECK_OK(lp_forward(ctx, ids, T, out, true));

    /* Full logits at the chosen positions. */
    double worst = 0, worst_md = 0;
    for (int64_t p = 0; p < P; p++) {
        double md;
        double e = rel_err(out + pos[p] * V, ref + p * V, V, &md);
        if (e > worst) worst = e;
        if (md > worst_md) worst_md = md;
    }
    CHECKF(worst < 1e-4, "%s: logits relative error %.3g >= 1e-4", model_dir, worst);
    /* Every position: max logit, argmax (unless a near-tie), logsumexp. */
    int bad = 0;
    for (int64_t t = 0; t < T; t++) {
        const float *row = out + t * V;
        int64_t a = 0;
        double s = 0;
        for (int64_t i = 1; i < V; i++) a = row[i] > row[a] ? i : a;
        for (int64_t i = 0; i < V; i++) s += exp((double)row[i] - row[a]);
        double my_lse = row[a] + log(s);
        if (fabs(row[a] - mx[t]) > 1e-4 * (1 + fabs(mx[t]))) bad++;
        if (a != am[t] && fabs(row[a] - row[am[t]]) > 1e-4 * (1 + fabs(mx[t]))) bad++;
        if (fabs(my_lse - lse[t]) > 1e-4 * (1 + fabs(lse[t]))) bad++;
    }
    CHECKF(bad == 0, "%s: %d per-position mismatches (max/argmax/logsumexp)", model_dir, bad);
    printf("%-40s TENSOR OK? %s  rel err %.3g, maxdiff %.3g over %lld positions x %lld\n", model_dir,
           worst < 1e-4 && !bad ? "yes" : "NO", worst, worst_md, (long long)P, (long long)V);

    /* Decode with the KV cache, token by token, against the full forward. */
    float *one = malloc((size_t)V * sizeof(float));
    lp_ctx_reset(ctx);
    double kv_worst = 0;
    for (int64_t t = 0; t < T; t++) {
        CHECK_OK(lp_forward(ctx, ids + t, 1, one, false));
        double e = rel_err(one, out + t * V, V, NULL);
        if (e > kv_worst) kv_worst = e;
    }
    CHECKF(kv_worst < 1e-5, "%s: KV-cache decode differs from the full forward by %.3g", model_dir, kv_worst);
    /* Uneven chunks: 1, 2, 5, then the rest; all logits requested. */
    lp_ctx_reset(ctx);
    float *chunked = malloc((size_t)(T * V) * sizeof(float));
    int64_t cuts[] = {0, 1, 3, 8, T};
    for (int k = 0; k < 4; k++)
        CHECK_OK(lp_forward(ctx, ids + cuts[k], cuts[k + 1] - cuts[k], chunked + cuts[k] * V, true));
    double ch = rel_err(chunked, out, T * V, NULL);
    CHECKF(ch < 1e-5, "%s: chunked prefill differs by %.3g", model_dir, ch);
    CHECK(lp_ctx_pos(ctx) == T);
    /* A full context refuses more tokens instead of overflowing. */
    CHECK(lp_forward(ctx, ids, 1, one, false) == LP_ERR_ARG);

    free(chunked);
    free(one);
    free(out);
    lp_ctx_free(ctx);
    lp_st_close(fx);
    lp_model_free(m);
}

int main(void) {
    const char *tiny[] = {"tiny-mistral", "tiny-qwen2", "tiny-llama3"};
    char dir[512], fx[512];
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof dir, "%s", test_data("models/"));
        strncat(dir, tiny[i], sizeof dir - strlen(dir) - 1);
        snprintf(fx, sizeof fx, "%s/parity/%s.safetensors", getenv("LP_TESTDATA") ? getenv("LP_TESTDATA") : "tests/data", tiny[i]);
        check_model(dir, fx);
    }
    /* Real models from the shared assets (skipped when absent). */
    const char *real[] = {"llama-25m", "stories260k"};
    for (int i = 0; i < 2; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/%s/config.json", real[i]);
        const char *cfg = test_asset(rel);
        snprintf(dir, sizeof dir, "%.*s", (int)(strlen(cfg) - strlen("/config.json")), cfg);
        snprintf(fx, sizeof fx, "%s/parity/%s.safetensors", getenv("LP_TESTDATA") ? getenv("LP_TESTDATA") : "tests/data", real[i]);
        check_model(dir, fx);
    }
    TEST_DONE();
}
