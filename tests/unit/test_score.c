/*
 * test_score.c - scoring next tokens without a rows x vocabulary matrix
 * (lp_forward_score, model/score.c) against the plain way: log-softmax of
 * each row of lp_forward_tail's logits, in double, and its first argmax.
 *
 * Models: the tiny Llama 3 (tied 16-bit head), Qwen2 (a vocabulary of 300
 * rows, so the last tile is ragged, and biases) and the Llama 3 with its head
 * packed to 4 bits (a quantized head is dequantized tile by tile). Targets
 * include skipped rows (-1), and rows whose target is the argmax (greedy).
 * Chunked runs (a context whose batch is smaller than the input) must agree
 * with one call.
 */
#include "llmpress/eval.h"
#include "llmpress/quant.h"
#include "test.h"

#include <math.h>

static lp_model *load(const char *name) {
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(test_data(name), &m));
    if (!m) exit(1);
    return m;
}

/* log softmax(z)[y] in double and the first argmax, the plain way. */
static double plain_logprob(const float *z, int64_t V, int32_t y, int64_t *arg) {
    int64_t a = 0;
    for (int64_t v = 1; v < V; v++)
        if (z[v] > z[a]) a = v;
    double s = 0;
    for (int64_t v = 0; v < V; v++) s += exp((double)z[v] - (double)z[a]);
    *arg = a;
    return (double)z[y] - (double)z[a] - log(s);
}

static void check_model(lp_model *m, int64_t batch) {
    const int64_t V = lp_model_config(m)->vocab, T = 40, k = 33;
    int32_t ids[40], tgt[33];
    for (int64_t t = 0; t < T; t++) ids[t] = (int32_t)((t * 977 + 5) % V);
    float *z = malloc((size_t)(k * V) * sizeof *z);
    lp_ctx *c = NULL;
    CHECK_OK(lp_ctx_init(m, T, T, &c));
    CHECK_OK(lp_forward_tail(c, ids, T, k, z));
    for (int64_t j = 0; j < k; j++) {
        int64_t a;
        plain_logprob(z + j * V, V, 0, &a);
        tgt[j] = j % 7 == 3 ? -1 : j % 5 == 0 ? (int32_t)a : (int32_t)((j * 31 + 1) % V);
    }
    lp_token_score sc[33];
    lp_ctx *cb = NULL;
    CHECK_OK(lp_ctx_init(m, T, batch, &cb));
    CHECK_OK(lp_forward_score(cb, ids, T, k, tgt, sc));
    int64_t greedy = 0;
    for (int64_t j = 0; j < k; j++) {
        if (tgt[j] < 0) {
            CHECK(sc[j].logprob == 0.0 && !sc[j].greedy);
            continue;
        }
        int64_t a;
        const double want = plain_logprob(z + j * V, V, tgt[j], &a);
        CHECKF(fabs(sc[j].logprob - want) <= 1e-5 * (1.0 + fabs(want)), "row %lld: %.9g vs %.9g", (long long)j,
               sc[j].logprob, want);
        CHECKF(sc[j].greedy == (a == tgt[j]), "row %lld: greedy %d, argmax %lld, target %d", (long long)j,
               sc[j].greedy, (long long)a, tgt[j]);
        greedy += sc[j].greedy;
    }
    CHECK(greedy >= 5); /* the rows whose target was set to the argmax */
    /* bad arguments */
    lp_ctx_reset(cb);
    CHECK(lp_forward_score(cb, ids, T, k, NULL, sc) == LP_ERR_ARG);
    CHECK(lp_forward_score(cb, ids, T, T + 1, tgt, sc) == LP_ERR_ARG);
    lp_ctx_free(c);
    lp_ctx_free(cb);
    free(z);
}

int main(void) {
    lp_model *m = load("models/tiny-llama3");
    check_model(m, 40);
    check_model(m, 16); /* three chunks of the batch, the head on the last two */
    CHECK_OK(lp_model_quantize_embeddings(m, 0, 4, 32));
    check_model(m, 40);
    lp_model_free(m);
    m = load("models/tiny-qwen2");
    check_model(m, 40);
    lp_model_free(m);
    TEST_DONE();
}
