/*
 * test_tasks_parity.c - zero-shot scoring against PyTorch: llama-25m on the
 * first 30 examples of every task, each request's summed continuation
 * log-probability, token count and greedy flag against what
 * scripts/zeroshot_torch.py computed with transformers in float32 on the GPU
 * machine (tests/data/zeroshot_ref/llama-25m.json, the same script's
 * whole-set metrics alongside). The whole-set figures take many minutes on
 * 2 cores and are compared in docs/eval.md's parity table instead.
 */
#include "test.h"

#include "io/json.h"
#include "llmpress/tasks.h"

#define EXAMPLES 30

int main(void) {
    const char *cfg = test_asset("models/llama-25m/config.json");
    const char *zs = test_asset("zeroshot/copa.jsonl");
    char dir[4096], tdir[4096];
    snprintf(dir, sizeof dir, "%.*s", (int)(strlen(cfg) - strlen("/config.json")), cfg);
    snprintf(tdir, sizeof tdir, "%.*s", (int)(strlen(zs) - strlen("/copa.jsonl")), zs);
    lp_json_doc *fx = NULL;
    CHECK_OK(lp_json_parse_file(test_data("zeroshot_ref/llama-25m.json"), &fx));
    lp_model *m = NULL;
    lp_tokenizer *tok = NULL;
    CHECK_OK(lp_model_load(dir, &m));
    CHECK_OK(lp_tokenizer_load(dir, &tok));
    if (!fx || !m || !tok) TEST_DONE();
    const lp_json *ex = lp_json_get(lp_json_root(fx), "examples");
    double worst = 0;
    int64_t compared = 0;
    for (int i = 0; i < lp_task_count(); i++) {
        const char *name = lp_task_name(i);
        const lp_json *want = lp_json_get(ex, name);
        CHECKF(want && want->n == EXAMPLES, "%s: no %d examples in the fixture", name, EXAMPLES);
        if (!want || want->n != EXAMPLES) continue;
        lp_task *t = NULL;
        CHECK_OK(lp_task_load(name, tdir, EXAMPLES, &t));
        if (!t) continue;
        lp_task_ll *ll = calloc((size_t)t->n_requests, sizeof *ll);
        lp_task_params p = lp_task_default_params();
        CHECK_OK(lp_task_score(m, tok, t, &p, ll));
        double tw = 0;
        for (int64_t e = 0; e < t->n_examples; e++) {
            const lp_json *ch = lp_json_get(&want->items[e], "choices");
            const lp_task_example *x = &t->examples[e];
            CHECKF(ch && ch->n == x->count, "%s example %lld: %lld choices, PyTorch %lld", name, (long long)e,
                   (long long)x->count, ch ? (long long)ch->n : -1LL);
            CHECK(lp_json_int(lp_json_get(&want->items[e], "gold"), -2) == x->gold);
            for (int64_t k = 0; ch && k < ch->n && k < x->count; k++) {
                const lp_task_ll *g = &ll[x->first + k];
                const double lp = lp_json_num(lp_json_get(&ch->items[k], "logprob"), NAN);
                const int64_t nt = lp_json_int(lp_json_get(&ch->items[k], "ntok"), -1);
                const bool gr = lp_json_bool(lp_json_get(&ch->items[k], "greedy"), false);
                CHECKF(g->ntok == nt, "%s example %lld choice %lld: %lld continuation tokens, PyTorch %lld", name,
                       (long long)e, (long long)k, (long long)g->ntok, (long long)nt);
                const double d = fabs(g->logprob - lp);
                CHECKF(d < 5e-4 + 1e-6 * fabs(lp), "%s example %lld choice %lld: log-prob %.6f, PyTorch %.6f", name,
                       (long long)e, (long long)k, g->logprob, lp);
                if (!strcmp(name, "lambada_openai"))
                    CHECKF(g->greedy == gr, "%s example %lld: greedy %d, PyTorch %d", name, (long long)e, g->greedy,
                           gr);
                tw = d > tw ? d : tw;
                compared++;
            }
        }
        printf("%-16s %3lld examples, largest log-prob difference %.2e\n", name, (long long)t->n_examples, tw);
        worst = tw > worst ? tw : worst;
        free(ll);
        lp_task_free(t);
    }
    printf("%lld requests compared with PyTorch, largest difference %.2e nats\n", (long long)compared, worst);
    lp_json_free(fx);
    lp_tokenizer_free(tok);
    lp_model_free(m);
    TEST_DONE();
}
