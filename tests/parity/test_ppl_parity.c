/*
 * test_ppl_parity.c - perplexity gate on a real model: llama-25m on the first
 * four 512-token windows of WikiText-2 test, under both protocols, against
 * the NLL sums transformers computed (tests/data/parity/ppl.json, made by
 * scripts/make_fixtures.py). Exercises the tokenizer, the loader, the forward
 * pass and the protocol bookkeeping together. The full-file figures
 * (REFERENCE.md: 99.0015 / 33.9934) take minutes and are measured by
 * bench/results.sh instead.
 */
#include "test.h"

#include "io/json.h"
#include "core/fileio.h"
#include "llmpress/eval.h"
#include "llmpress/tokenizer.h"

static void check_protocol(lp_model *m, const int32_t *ids, int64_t n, lp_ppl_protocol proto,
                           const lp_json *ref) {
    lp_ppl_params p = lp_ppl_default_params();
    p.protocol = proto;
    p.ctx = 512;
    p.max_windows = 4;
    lp_ppl_result r;
    double wnll[4];
    CHECK_OK(lp_perplexity(m, ids, n, &p, &r, wnll));
    double want = lp_json_num(lp_json_get(ref, "nll_sum"), -1);
    int64_t count = lp_json_int(lp_json_get(ref, "count"), -1);
    const lp_json *per = lp_json_get(ref, "per_window");
    CHECKF(r.count == count, "tokens scored %lld, transformers %lld", (long long)r.count, (long long)count);
    CHECKF(fabs(r.nll_sum - want) < 1e-5 * want, "NLL sum %.6f, transformers %.6f", r.nll_sum, want);
    for (int w = 0; w < 4 && per && per->n == 4; w++)
        CHECKF(fabs(wnll[w] - per->items[w].num) < 1e-5 * per->items[w].num, "window %d: %.6f vs %.6f", w,
               wnll[w], per->items[w].num);
    printf("%-10s ppl %.6f (transformers %.6f), NLL rel. diff %.2g over %lld tokens\n",
           proto == LP_PPL_GPTQ ? "gptq" : "llama.cpp", r.ppl, lp_json_num(lp_json_get(ref, "ppl"), 0),
           fabs(r.nll_sum - want) / want, (long long)r.count);
}

int main(void) {
    const char *wiki = test_asset("text/wikitext-2-raw/wiki.test.raw");
    const char *cfg = test_asset("models/llama-25m/config.json");
    char dir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(strlen(cfg) - strlen("/config.json")), cfg);
    lp_json_doc *fx = NULL;
    CHECK_OK(lp_json_parse_file(test_data("parity/ppl.json"), &fx));
    lp_model *m = NULL;
    lp_tokenizer *tok = NULL;
    CHECK_OK(lp_model_load(dir, &m));
    CHECK_OK(lp_tokenizer_load(dir, &tok));
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(lp_read_file(wiki, &text, &len));
    if (!fx || !m || !tok || !text) TEST_DONE();
    int32_t *ids = NULL;
    int64_t n = 0;
    CHECK_OK(lp_tokenizer_encode(tok, text, len, 0, &ids, &n));
    CHECK(n == 335687); /* transformers' count for the whole file */
    const lp_json *root = lp_json_root(fx);
    check_protocol(m, ids, n, LP_PPL_GPTQ, lp_json_get(root, "gptq"));
    check_protocol(m, ids, n, LP_PPL_LLAMACPP, lp_json_get(root, "llamacpp"));
    /* Too short a text is an error, not a NaN. */
    lp_ppl_params p = lp_ppl_default_params();
    lp_ppl_result r;
    CHECK(lp_perplexity(m, ids, 100, &p, &r, NULL) == LP_ERR_ARG);
    p.ctx = 1;
    CHECK(lp_perplexity(m, ids, n, &p, &r, NULL) == LP_ERR_ARG);
    free(ids);
    free(text);
    lp_tokenizer_free(tok);
    lp_model_free(m);
    lp_json_free(fx);
    TEST_DONE();
}
