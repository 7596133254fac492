/*
 * test_generate.c - golden generation: llama-25m's greedy continuation of a
 * prompt (prefill, then 32 KV-cache decode steps) equals transformers'
 * model.generate(do_sample=False) token for token, and the prompt's ids equal
 * Hugging Face's (tests/data/parity/generate.json).
 */
#include "test.h"

#include "io/json.h"
#include "llmpress/model.h"
#include "llmpress/tokenizer.h"

int main(void) {
    const char *cfg = test_asset("models/llama-25m/config.json");
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(strlen(cfg) - strlen("/config.json")), cfg);
    lp_json_doc *fx = NULL;
    lp_model *m = NULL;
    lp_tokenizer *tok = NULL;
    CHECK_OK(lp_json_parse_file(test_data("parity/generate.json"), &fx));
    CHECK_OK(lp_model_load(dir, &m));
    CHECK_OK(lp_tokenizer_load(dir, &tok));
    if (!fx || !m || !tok) TEST_DONE();
    const lp_json *root = lp_json_root(fx);
    const char *prompt = lp_json_str(lp_json_get(root, "prompt"), "");
    const lp_json *want_prompt = lp_json_get(root, "prompt_ids"), *want = lp_json_get(root, "output_ids");
    int32_t *ids = NULL;
    int64_t n = 0;
    CHECK_OK(lp_tokenizer_encode(tok, prompt, strlen(prompt), 1, &ids, &n)); /* with BOS */
    CHECK(n == want_prompt->n);
    for (int64_t i = 0; i < n && i < want_prompt->n; i++) CHECK(ids[i] == want_prompt->items[i].i64);

    const int64_t total = want->n;
    const lp_config *c = lp_model_config(m);
    lp_ctx *ctx = NULL;
    lp_sampler *s = NULL;
    lp_sampler_params sp = lp_sampler_default_params(); /* greedy */
    CHECK_OK(lp_ctx_init(m, total, n, &ctx));
    CHECK_OK(lp_sampler_init(&sp, c->vocab, &s));
    float *logits = malloc((size_t)c->vocab * sizeof(float));
    int32_t *out = malloc((size_t)total * sizeof(int32_t));
    memcpy(out, ids, (size_t)n * sizeof(int32_t));
    CHECK_OK(lp_forward(ctx, out, n, logits, false));
    for (int64_t t = n; t < total; t++) {
        CHECK_OK(lp_sample(s, logits, &out[t]));
        if (t + 1 < total) CHECK_OK(lp_forward(ctx, &out[t], 1, logits, false));
    }
    int first_diff = -1;
    for (int64_t t = 0; t < total; t++)
        if (out[t] != want->items[t].i64 && first_diff < 0) first_diff = (int)t;
    CHECKF(first_diff < 0, "generation differs from transformers at token %d", first_diff);
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(lp_tokenizer_decode(tok, out + n, total - n, &text, &len));
    printf("generated: %s\n", text ? text : "");
    free(text);
    free(out);
    free(logits);
    free(ids);
    lp_sampler_free(s);
    lp_ctx_free(ctx);
    lp_tokenizer_free(tok);
    lp_model_free(m);
    lp_json_free(fx);
    TEST_DONE();
}
