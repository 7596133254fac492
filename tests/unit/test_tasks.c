/*
 * test_tasks.c - zero-shot tasks (include/llmpress/tasks.h): the table; the
 * parsing of each format (requests built with the right delimiter, gold,
 * lines, --limit) and every malformed case, each error naming file:line and
 * the problem; the trailing-whitespace move (Python's str.isspace set) and
 * code point counts; the request encoding on a tokenizer where the context
 * and continuation merge across the boundary (the split is by the context's
 * token count, as the harness's); an empty context scored after EOS; the
 * metrics (ties go to the first index, acc_norm divides by code points, the
 * standard error formula, lambada's greedy acc and ppl); and scoring: every
 * request's summed log-probability against a plain full-sequence
 * recomputation with lp_forward (all logits, no prefix sharing) to 1e-4, on a
 * tiny model (always) with the window cut from the left, and on llama-25m
 * with the real task files (skipped, exit 77, when the assets are absent).
 */
#include "test.h"

#include "llmpress/model.h"
#include "llmpress/tasks.h"
#include "llmpress/tokenizer.h"

#include <stdint.h>

/* ---- helpers ---- */

static lp_task *parse(const char *name, const char *text, int64_t limit) {
    lp_task *t = NULL;
    CHECK_OK(lp_task_parse(name, text, strlen(text), "t.file", limit, &t));
    return t;
}

/* Parsing must fail with LP_ERR_FORMAT and a message holding every needle. */
static void bad(const char *name, const char *text, const char *needle1, const char *needle2) {
    lp_task *t = NULL;
    lp_status st = lp_task_parse(name, text, strlen(text), "t.file", 0, &t);
    const char *msg = lp_last_error();
    CHECKF(st == LP_ERR_FORMAT && !t && strstr(msg, needle1) && (!needle2 || strstr(msg, needle2)),
           "%s %s: status %s, message '%s', expected '%s' and '%s'", name, text, lp_status_name(st), msg, needle1,
           needle2 ? needle2 : "");
    lp_task_free(t);
}

static bool ids_equal(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    if (na != nb) return false;
    for (int64_t i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* ---- the table and parsing ---- */

static void test_table(void) {
    const char *names[] = {"arc_easy", "arc_challenge", "piqa", "boolq", "hellaswag",
                           "winogrande", "openbook_qa", "copa", "siqa", "lambada_openai"};
    CHECK(lp_task_count() == 10);
    for (int i = 0; i < 10; i++) {
        CHECK(lp_task_name(i) && !strcmp(lp_task_name(i), names[i]));
        CHECK(lp_task_index(names[i]) == i);
    }
    CHECK(lp_task_index("mmlu") == -1 && lp_task_index(NULL) == -1 && lp_task_name(10) == NULL);
    CHECK(lp_task_type_of(lp_task_index("winogrande")) == LP_TASK_PARTIAL);
    CHECK(lp_task_type_of(lp_task_index("lambada_openai")) == LP_TASK_LAMBADA);
    CHECK(!strcmp(lp_task_file(lp_task_index("hellaswag")), "hellaswag/hellaswag_val_full.txt"));
    lp_task *t = NULL;
    CHECK(lp_task_parse("mmlu", "", 0, "x", 0, &t) == LP_ERR_ARG && strstr(lp_last_error(), "mmlu"));
}

static void test_parse_formats(void) {
    /* ARC: "\nAnswer: " delimiter; a blank line is skipped but counted */
    lp_task *t = parse("arc_easy",
                       "{\"query\": \"Question: Why?\", \"choices\": [\"A\", \"Bé\"], \"gold\": 1}\n\n"
                       "{\"choices\": [\"x\", \"y\", \"z\"], \"gold\": 0, \"query\": \"Q2\", \"extra\": 3}\n",
                       0);
    if (t) {
        CHECK(t->type == LP_TASK_CHOICE && t->n_examples == 2 && t->n_requests == 5);
        CHECK(t->examples[0].line == 1 && t->examples[0].first == 0 && t->examples[0].count == 2 &&
              t->examples[0].gold == 1);
        CHECK(t->examples[1].line == 3 && t->examples[1].first == 2 && t->examples[1].count == 3 &&
              t->examples[1].gold == 0);
        CHECK(!strcmp(t->requests[0].context, "Question: Why?\nAnswer: "));
        CHECK(!strcmp(t->requests[1].continuation, "Bé") && t->requests[1].chars == 2);
        CHECK(!strcmp(t->requests[4].context, "Q2\nAnswer: ") && !strcmp(t->requests[4].continuation, "z"));
        CHECK(!strcmp(t->path, "t.file") && !strcmp(t->name, "arc_easy"));
    }
    lp_task_free(t);
    /* COPA, SIQA, OpenBookQA: " " delimiter */
    t = parse("copa", "{\"query\": \"It rained, therefore\", \"choices\": [\"wet.\", \"dry.\"], \"gold\": 0}", 0);
    if (t) CHECK(t->n_examples == 1 && !strcmp(t->requests[1].context, "It rained, therefore ") &&
                 !strcmp(t->requests[1].continuation, "dry.") && t->requests[1].chars == 4);
    lp_task_free(t);
    /* WinoGrande: context = option + " ", one shared continuation */
    t = parse("winogrande", "{\"context_options\": [\"S so S\", \"S so M\"], \"continuation\": \"won.\", \"gold\": 1}",
              0);
    if (t) {
        CHECK(t->type == LP_TASK_PARTIAL && t->n_requests == 2 && t->examples[0].gold == 1);
        CHECK(!strcmp(t->requests[0].context, "S so S ") && !strcmp(t->requests[1].context, "S so M "));
        CHECK(!strcmp(t->requests[0].continuation, "won.") && !strcmp(t->requests[1].continuation, "won."));
    }
    lp_task_free(t);
    /* LAMBADA */
    t = parse("lambada_openai", "{\"context\": \"he said\", \"continuation\": \"hello\"}\r\n", 0);
    if (t) CHECK(t->type == LP_TASK_LAMBADA && t->n_requests == 1 && t->examples[0].gold == -1 &&
                 !strcmp(t->requests[0].context, "he said ") && !strcmp(t->requests[0].continuation, "hello"));
    lp_task_free(t);
    /* HellaSwag: 6 lines an item, context + " ", 4 endings; CRLF tolerated */
    t = parse("hellaswag", "Ctx one\n3\ne0\ne1\ne2\ne3\nCtx two\r\n0\r\nf0\r\nf1\r\nf2\r\nf3\r\n", 0);
    if (t) {
        CHECK(t->n_examples == 2 && t->n_requests == 8);
        CHECK(t->examples[0].gold == 3 && t->examples[0].line == 1 && t->examples[1].gold == 0 &&
              t->examples[1].line == 7);
        CHECK(!strcmp(t->requests[0].context, "Ctx one ") && !strcmp(t->requests[3].continuation, "e3"));
        CHECK(!strcmp(t->requests[4].context, "Ctx two ") && !strcmp(t->requests[7].continuation, "f3"));
    }
    lp_task_free(t);
    /* --limit: the first N examples in file order; the rest is not read */
    t = parse("piqa", "{\"query\": \"q1\", \"choices\": [\"a\"], \"gold\": 0}\n"
                      "{\"query\": \"q2\", \"choices\": [\"a\"], \"gold\": 0}\nnot json at all\n", 2);
    if (t) CHECK(t->n_examples == 2 && !strcmp(t->requests[1].context, "q2\nAnswer: "));
    lp_task_free(t);
    t = parse("hellaswag", "c\n1\na\nb\nc\nd\nc2\n9\n", 1); /* a bad second item past the limit */
    if (t) CHECK(t->n_examples == 1 && t->examples[0].gold == 1);
    lp_task_free(t);

    /* from a directory: DIR/<name>.jsonl and DIR/hellaswag/hellaswag_val_full.txt */
    const char *dir = test_data("zeroshot");
    t = NULL;
    CHECK_OK(lp_task_load("piqa", dir, 0, &t));
    if (t) CHECK(t->n_examples == 3 && t->examples[2].line == 4 && strstr(t->path, "zeroshot/piqa.jsonl"));
    lp_task_free(t);
    t = NULL;
    CHECK_OK(lp_task_load("hellaswag", dir, 1, &t));
    if (t) CHECK(t->n_examples == 1 && t->n_requests == 4);
    lp_task_free(t);
    t = NULL;
    lp_status st = lp_task_load("boolq", dir, 0, &t); /* no boolq.jsonl there */
    CHECKF(st == LP_ERR_IO && !t && strstr(lp_last_error(), "zeroshot/boolq.jsonl") &&
               strstr(lp_last_error(), "boolq"), "%s", lp_last_error());
}

static void test_parse_errors(void) {
    const char *ok = "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n";
    char buf[512];
    /* not JSON, on line 2 */
    snprintf(buf, sizeof buf, "%s{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0\n", ok);
    bad("arc_easy", buf, "t.file:2:", "not valid JSON");
    bad("arc_easy", "[1, 2]", "t.file:1:", "expected a JSON object");
    /* missing keys */
    bad("piqa", "{\"choices\": [\"a\"], \"gold\": 0}", "t.file:1:", "missing key \"query\"");
    bad("piqa", "{\"query\": \"q\", \"gold\": 0}", "t.file:1:", "missing key \"choices\"");
    snprintf(buf, sizeof buf, "%s%s{\"query\": \"q\", \"choices\": [\"a\"]}", ok, ok);
    bad("boolq", buf, "t.file:3:", "missing key \"gold\"");
    bad("winogrande", "{\"continuation\": \"c\", \"gold\": 0}", "t.file:1:", "missing key \"context_options\"");
    bad("winogrande", "{\"context_options\": [\"a\"], \"gold\": 0}", "t.file:1:", "missing key \"continuation\"");
    bad("lambada_openai", "{\"continuation\": \"c\"}", "t.file:1:", "missing key \"context\"");
    bad("lambada_openai", "{\"context\": \"c\"}", "t.file:1:", "missing key \"continuation\"");
    /* wrong types */
    bad("siqa", "{\"query\": 3, \"choices\": [\"a\"], \"gold\": 0}", "t.file:1:", "\"query\" must be a string");
    bad("siqa", "{\"query\": \"q\", \"choices\": \"a\", \"gold\": 0}", "t.file:1:", "must be an array");
    bad("siqa", "{\"query\": \"q\", \"choices\": [\"a\", 2], \"gold\": 0}", "t.file:1:", "\"choices\"[1] must be a string");
    /* gold out of range, or not an integer */
    bad("copa", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}", "t.file:1:", "out of range");
    bad("copa", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": -1}", "t.file:1:", "out of range");
    bad("copa", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 1.5}", "t.file:1:", "must be an integer");
    bad("copa", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": \"1\"}", "t.file:1:", "must be an integer");
    bad("winogrande", "{\"context_options\": [\"a\", \"b\"], \"continuation\": \"c\", \"gold\": 2}", "t.file:1:",
        "out of range");
    /* empty choices, an empty choice, empty continuations */
    bad("openbook_qa", "{\"query\": \"q\", \"choices\": [], \"gold\": 0}", "t.file:1:", "\"choices\" is empty");
    bad("openbook_qa", "{\"query\": \"q\", \"choices\": [\"a\", \"\"], \"gold\": 0}", "t.file:1:",
        "\"choices\"[1] is an empty string");
    bad("winogrande", "{\"context_options\": [], \"continuation\": \"c\", \"gold\": 0}", "t.file:1:", "is empty");
    bad("lambada_openai", "{\"context\": \"c\", \"continuation\": \"\"}", "t.file:1:", "empty string");
    /* a NUL inside a string; invalid UTF-8 */
    bad("arc_challenge", "{\"query\": \"q\\u0000\", \"choices\": [\"a\"], \"gold\": 0}", "t.file:1:", "NUL");
    bad("hellaswag", "c\n0\na\nb\xff\nc\nd\n", "t.file:4:", "not valid UTF-8");
    /* hellaswag: truncated item, bad gold line, empty line */
    bad("hellaswag", "c\n0\na\nb\nc\nd\nc2\n1\n", "t.file:7:", "truncated: 2 of its 6 lines");
    bad("hellaswag", "c\n4\na\nb\nc\nd\n", "t.file:2:", "gold index is \"4\", expected an integer 0..3");
    bad("hellaswag", "c\nx\na\nb\nc\nd\n", "t.file:2:", "expected an integer 0..3");
    bad("hellaswag", "c\n1.0\na\nb\nc\nd\n", "t.file:2:", "expected an integer 0..3");
    bad("hellaswag", "c\n1\na\nb\nc\nd\nc\n-1\na\nb\nc\nd\n", "t.file:8:", "expected an integer 0..3");
    bad("hellaswag", "c\n1\na\n\nc\nd\n", "t.file:4:", "ending 1 is an empty line");
    /* nothing */
    bad("piqa", "", "t.file", "no examples");
    bad("piqa", "\n\n  \n", "t.file", "no examples");
}

/* ---- text ---- */

static void test_text(void) {
    struct { const char *s; size_t n; } ws[] = {
        {"abc", 0}, {"", 0}, {"abc \n\t", 3}, {"Answer: ", 1}, {"  ", 2}, {"x\r\v\f", 3}, {"x\x1f\x1c", 2},
        {"x\xC2\xA0", 2},          /* U+00A0 no-break space */
        {"x\xC2\x85", 2},          /* U+0085 next line */
        {"x\xE3\x80\x80 ", 4},     /* U+3000 ideographic space, then a space */
        {"x\xE2\x80\xAF", 3},      /* U+202F */
        {"x\xE2\x80\x8B", 0},      /* U+200B zero width space: not str.isspace */
        {"\xC3\xA9 ", 1},          /* é is not space */
        {"x\xF0\x9F\x98\x80", 0},  /* an emoji */
    };
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        size_t got = lp_task_trailing_space(ws[i].s, strlen(ws[i].s));
        CHECKF(got == ws[i].n, "case %zu: %zu bytes of trailing space, expected %zu", i, got, ws[i].n);
    }
    CHECK(lp_task_utf8_chars("h\xC3\xA9llo", 6) == 5);
    CHECK(lp_task_utf8_chars("\xE6\x97\xA5\xE6\x9C\xAC", 6) == 2);
    CHECK(lp_task_utf8_chars("\xF0\x9F\x98\x80", 4) == 1);
    CHECK(lp_task_utf8_chars("\xC3", 1) == -1);
    CHECK(lp_task_utf8_chars("\xC0\x80", 2) == -1);      /* overlong */
    CHECK(lp_task_utf8_chars("\xED\xA0\x80", 3) == -1);  /* a surrogate */
}

/* s2.json: Metaspace (prefix space), BPE with <unk>=0 ▁=1 a=2 b=3 ▁a=4 ▁b=5 ab=6 ▁ab=7. */
static void test_encode(const lp_tokenizer *tok) {
    int32_t *c = NULL, *k = NULL;
    int64_t nc = 0, nk = 0;
    /* the whitespace move: "a " + "b" -> "a" + " b" */
    CHECK_OK(lp_task_encode(tok, "a ", "b", 99, &c, &nc, &k, &nk));
    CHECK(ids_equal(c, nc, (int32_t[]){4}, 1) && ids_equal(k, nk, (int32_t[]){5}, 1));
    free(c), free(k);
    /* a merge across the boundary: "a" + "b b" is tokens("ab b") = [▁ab, ▁b];
     * the context is [▁a] (1 token), so the continuation is [▁b] - not
     * tokens("b b") = [▁b, ▁b] nor anything ending in [a]/[b]. */
    CHECK_OK(lp_task_encode(tok, "a", "b b", 99, &c, &nc, &k, &nk));
    CHECKF(ids_equal(c, nc, (int32_t[]){4}, 1) && ids_equal(k, nk, (int32_t[]){5}, 1), "nc %lld nk %lld k0 %d",
           (long long)nc, (long long)nk, nk ? k[0] : -1);
    free(c), free(k);
    int32_t *alone = NULL;
    int64_t nalone = 0;
    CHECK_OK(lp_tokenizer_encode(tok, "b b", 3, 0, &alone, &nalone));
    CHECK(nalone == 2); /* so the split above is not tokens(continuation) */
    free(alone);
    /* everything merged: "a" + "b" -> [▁ab]: nothing left to score */
    CHECK_OK(lp_task_encode(tok, "a", "b", 99, &c, &nc, &k, &nk));
    CHECK(ids_equal(c, nc, (int32_t[]){4}, 1) && nk == 0 && !k);
    free(c), free(k);
    /* an empty context (only whitespace) -> [EOS], continuation = tokens(" a") */
    CHECK_OK(lp_task_encode(tok, " ", "a", 99, &c, &nc, &k, &nk));
    int32_t *ref = NULL;
    int64_t nref = 0;
    CHECK_OK(lp_tokenizer_encode(tok, " a", 2, 0, &ref, &nref));
    CHECK(ids_equal(c, nc, (int32_t[]){99}, 1) && ids_equal(k, nk, ref, nref) && nref > 0);
    free(c), free(k), free(ref);
    CHECK(lp_task_encode(tok, "", "a", -1, &c, &nc, &k, &nk) == LP_ERR_ARG && !c && !k);
}

/* ---- metrics ---- */

static void test_metrics(void) {
    /* 4 items of 2 choices; the second choice of item 0 has 1 code point in 2 bytes */
    lp_task *t = parse("arc_easy",
                       "{\"query\": \"q\", \"choices\": [\"ab\", \"\xC3\xA9\"], \"gold\": 0}\n"
                       "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n"
                       "{\"query\": \"q\", \"choices\": [\"a\", \"b\", \"c\"], \"gold\": 1}\n"
                       "{\"query\": \"q\", \"choices\": [\"aaaa\", \"b\"], \"gold\": 1}\n",
                       0);
    if (!t) return;
    lp_task_ll ll[9] = {
        /* item 0: raw picks 1 (-3 > -5): miss; per code point -2.5 (ab) > -3 (é) picks 0 = gold: hit
         * (per byte it would be -2.5 vs -1.5 and pick 1) */
        {-5, 2, false}, {-3, 1, false},
        /* item 1: a tie of 0 and 1: the first index (0) = gold: hit, both ways */
        {-2, 1, false}, {-2, 1, false},
        /* item 2: a tie of 1 and 2 above 0: the first of them (1) = gold: hit, both ways */
        {-3, 1, false}, {-1, 1, false}, {-1, 1, false},
        /* item 3: raw picks 1 = gold: hit; normalized -1 (aaaa: -4/4) > -2 picks 0: miss */
        {-4, 1, false}, {-2, 1, false},
    };
    lp_task_metrics r;
    lp_task_metrics_compute(t, ll, &r);
    /* 3 of 4 right both ways: stderr = sqrt(.75 * .25 / 3) = 0.25 */
    CHECKF(r.n == 4 && r.acc == 0.75 && r.acc_norm == 0.75, "acc %g acc_norm %g", r.acc, r.acc_norm);
    CHECK(fabs(r.acc_stderr - 0.25) < 1e-12 && fabs(r.acc_norm_stderr - 0.25) < 1e-12);
    CHECK(isnan(r.ppl));
    /* item 0 now right raw, item 1 now wrong (gold stays 0, choice 1 wins): 3/4 and 2/4 */
    ll[1] = (lp_task_ll){-6, 1, false};
    ll[3] = (lp_task_ll){-1.5, 1, false};
    lp_task_metrics_compute(t, ll, &r);
    CHECKF(r.acc == 0.75 && r.acc_norm == 0.5 && fabs(r.acc_norm_stderr - sqrt(0.25 / 3)) < 1e-12, "acc %g acc_norm %g",
           r.acc, r.acc_norm);
    lp_task_free(t);

    /* winogrande: acc only */
    t = parse("winogrande", "{\"context_options\": [\"a\", \"b\"], \"continuation\": \"c\", \"gold\": 1}", 0);
    if (t) {
        lp_task_ll w[2] = {{-2, 1, false}, {-1, 1, false}};
        lp_task_metrics_compute(t, w, &r);
        CHECK(r.n == 1 && r.acc == 1 && isnan(r.acc_stderr) && isnan(r.acc_norm) && isnan(r.ppl));
    }
    lp_task_free(t);
    /* lambada: acc = greedy, ppl = exp(-mean logprob) */
    t = parse("lambada_openai", "{\"context\": \"a\", \"continuation\": \"b\"}\n{\"context\": \"a\", \"continuation\": \"c\"}", 0);
    if (t) {
        lp_task_ll w[2] = {{-1, 2, true}, {-3, 1, false}};
        lp_task_metrics_compute(t, w, &r);
        CHECK(r.n == 2 && r.acc == 0.5 && fabs(r.ppl - exp(2.0)) < 1e-12 && fabs(r.acc_stderr - 0.5) < 1e-12);
        CHECK(isnan(r.acc_norm));
    }
    lp_task_free(t);
}

/* ---- scoring against a plain recomputation ---- */

/* The continuation's log-probability from one lp_forward over the whole
 * model input (ctx + cont)[-(W+1):][:-1] with every row's logits. */
static double plain_ll(const lp_model *m, const int32_t *ctx, int64_t nc, const int32_t *cont, int64_t nk, int64_t W,
                       bool *greedy) {
    const int64_t V = lp_model_config(m)->vocab, N = nc + nk;
    int32_t *full = malloc((size_t)N * sizeof *full);
    memcpy(full, ctx, (size_t)nc * sizeof *full);
    memcpy(full + nc, cont, (size_t)nk * sizeof *full);
    const int64_t s = N - (W + 1) > 0 ? N - (W + 1) : 0, len = N - 1 - s;
    float *logits = malloc((size_t)(len * V) * sizeof(float));
    lp_ctx *cx = NULL;
    double lp = NAN;
    *greedy = true;
    CHECK_OK(lp_ctx_init(m, len, len, &cx));
    if (cx && lp_forward(cx, full + s, len, logits, true) == LP_OK) {
        lp = 0;
        for (int64_t j = 0; j < nk; j++) {
            const float *row = logits + (len - nk + j) * V;
            double mx = row[0], sum = 0;
            int64_t arg = 0;
            for (int64_t i = 1; i < V; i++)
                if (row[i] > mx) mx = row[i], arg = i;
            for (int64_t i = 0; i < V; i++) sum += exp(row[i] - mx);
            lp += row[cont[j]] - mx - log(sum);
            *greedy &= arg == cont[j];
        }
    }
    lp_ctx_free(cx);
    free(logits);
    free(full);
    return lp;
}

/* Score t and compare every request with plain_ll; returns requests checked
 * with a non-empty continuation. */
static int64_t check_scores(const lp_model *m, const lp_tokenizer *tok, const lp_task *t, int64_t window, int threads) {
    lp_task_params p = lp_task_default_params();
    p.window = window;
    p.threads = threads;
    const int64_t W = window > 0 ? window : lp_model_config(m)->max_pos;
    lp_task_ll *ll = calloc((size_t)t->n_requests, sizeof *ll);
    lp_status st = lp_task_score(m, tok, t, &p, ll);
    CHECKF(st == LP_OK, "%s: %s", t->name, lp_last_error());
    int64_t checked = 0;
    for (int64_t i = 0; st == LP_OK && i < t->n_requests; i++) {
        int32_t *c = NULL, *k = NULL;
        int64_t nc = 0, nk = 0;
        CHECK_OK(lp_task_encode(tok, t->requests[i].context, t->requests[i].continuation, lp_model_config(m)->eos,
                                &c, &nc, &k, &nk));
        bool greedy = true;
        const double ref = nk ? plain_ll(m, c, nc, k, nk, W, &greedy) : 0;
        CHECKF(fabs(ll[i].logprob - ref) < 1e-4 && ll[i].ntok == nk && ll[i].greedy == greedy,
               "%s request %lld (window %lld, %d threads): logprob %.6f vs plain %.6f, %lld vs %lld tokens, "
               "greedy %d vs %d", t->name, (long long)i, (long long)W, threads, ll[i].logprob, ref,
               (long long)ll[i].ntok, (long long)nk, ll[i].greedy, greedy);
        checked += nk > 0;
        free(c), free(k);
    }
    free(ll);
    return checked;
}

/* The tiny model with the s2 tokenizer (ids < 8 < vocab 256). */
static void test_score_tiny(const lp_tokenizer *tok) {
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(test_data("models/tiny-llama3"), &m));
    if (!m) return;
    const char *dir = test_data("zeroshot");
    const char *names[] = {"piqa", "hellaswag", "winogrande", "lambada_openai"};
    for (int i = 0; i < 4; i++) {
        lp_task *t = NULL;
        CHECK_OK(lp_task_load(names[i], dir, 0, &t));
        if (!t) continue;
        CHECK(check_scores(m, tok, t, 0, 2) > 0);
        CHECK(check_scores(m, tok, t, 0, 1) > 0);
        /* a window of 6: most inputs are cut from the left */
        CHECK(check_scores(m, tok, t, 6, 2) > 0);
        lp_task_free(t);
    }
    /* the cut really happens: a window of 6 changes the score of a long context */
    lp_task *t = parse("copa", "{\"query\": \"a b a b a b a b a b\", \"choices\": [\"a b\", \"b\"], \"gold\": 0}", 0);
    if (t) {
        lp_task_params p = lp_task_default_params();
        lp_task_ll full[2], cut[2];
        CHECK_OK(lp_task_score(m, tok, t, &p, full));
        p.window = 6;
        CHECK_OK(lp_task_score(m, tok, t, &p, cut));
        CHECK(fabs(full[0].logprob - cut[0].logprob) > 1e-3 && fabs(full[1].logprob - cut[1].logprob) > 1e-3);
        p.window = 513; /* past max_position_embeddings 512 */
        CHECK(lp_task_score(m, tok, t, &p, cut) == LP_ERR_ARG && strstr(lp_last_error(), "512"));
        p.window = 2; /* the continuation "a b" (2 tokens) still fits; "a b a" would not */
        CHECK_OK(lp_task_score(m, tok, t, &p, cut));
        lp_task_free(t);
    }
    /* the model's own window (max_position_embeddings 512): a 600-token context */
    char *text = malloc(4096);
    int n = snprintf(text, 4096, "{\"query\": \"");
    for (int i = 0; i < 600; i++) n += snprintf(text + n, 4096 - n, i ? " %c" : "%c", "ab"[i % 3 == 0]);
    snprintf(text + n, 4096 - n, "\", \"choices\": [\"a b a\", \"b b\"], \"gold\": 1}");
    t = parse("copa", text, 0);
    if (t) CHECK(check_scores(m, tok, t, 0, 2) == 2);
    lp_task_free(t);
    free(text);
    lp_model_free(m);
}

/* llama-25m on the first examples of the real files. */
static void test_score_llama25m(void) {
    const char *mdir = test_asset("models/llama-25m/config.json");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", mdir);
    *strrchr(dir, '/') = '\0';
    const char *zs = test_asset("zeroshot/arc_easy.jsonl");
    char zdir[4096];
    snprintf(zdir, sizeof zdir, "%s", zs);
    *strrchr(zdir, '/') = '\0';
    char tokpath[4200];
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", dir);
    lp_model *m = NULL;
    lp_tokenizer *tok = NULL;
    CHECK_OK(lp_model_load(dir, &m));
    CHECK_OK(lp_tokenizer_load(tokpath, &tok));
    if (!m || !tok) goto done;
    /* ARC: the context ends in "Answer:" and the continuation starts with the moved space */
    lp_task *t = NULL;
    CHECK_OK(lp_task_load("arc_easy", zdir, 2, &t));
    if (t) {
        int32_t *c = NULL, *k = NULL;
        int64_t nc = 0, nk = 0;
        CHECK_OK(lp_task_encode(tok, t->requests[0].context, t->requests[0].continuation, 2, &c, &nc, &k, &nk));
        char *dc = NULL, *dk = NULL;
        size_t lc = 0, lk = 0;
        if (nc && nk) {
            CHECK_OK(lp_tokenizer_decode(tok, c, nc, &dc, &lc));
            CHECK_OK(lp_tokenizer_decode(tok, k, nk, &dk, &lk));
            size_t lt = 0;
            const char *t0 = lp_tokenizer_token_text(tok, k[0], &lt);
            CHECKF(dc && lc >= 7 && !strcmp(dc + lc - 7, "Answer:") && t0 && lt >= 3 && !memcmp(t0, "\xE2\x96\x81", 3),
                   "context ends '%s', continuation starts '%.*s'", dc ? dc + (lc > 10 ? lc - 10 : 0) : "", (int)lt,
                   t0 ? t0 : "");
        }
        free(dc), free(dk), free(c), free(k);
        lp_task_free(t);
    }
    const char *names[] = {"arc_easy", "piqa", "hellaswag", "winogrande", "lambada_openai", "boolq"};
    for (int i = 0; i < 6; i++) {
        t = NULL;
        CHECK_OK(lp_task_load(names[i], zdir, i == 5 ? 1 : 3, &t));
        if (!t) continue;
        CHECK(check_scores(m, tok, t, 0, 2) == t->n_requests);
        if (i == 2) CHECK(check_scores(m, tok, t, 64, 2) == t->n_requests); /* cut from the left */
        lp_task_free(t);
    }
done:
    lp_tokenizer_free(tok);
    lp_model_free(m);
}

int main(void) {
    test_table();
    test_parse_formats();
    test_parse_errors();
    test_text();
    test_metrics();
    lp_tokenizer *tok = NULL;
    CHECK_OK(lp_tokenizer_load(test_data("tok_synth/s2.json"), &tok));
    if (tok) {
        test_encode(tok);
        test_score_tiny(tok);
    }
    lp_tokenizer_free(tok);
    test_score_llama25m(); /* last: exits 77 when the assets are absent */
    TEST_DONE();
}
