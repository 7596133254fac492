/*
 * cmd_logprobs.c - `llmpress logprobs`: the log-probability of every token
 * of a text (or of given token ids) under MODEL, one forward over the whole
 * sequence, log-softmax in double.
 *
 * Why: per-token comparison with another runtime on the same file
 * (tests/llamacpp/logprobs.mjs prints the same JSON from llama.cpp), and a
 * plain way to see where a compressed model loses probability.
 */
#include "cli.h"

#include "io/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress logprobs MODEL (-f TEXT | --tokens IDS.json) [--bos] [--threads N]\n"
    "\n"
    "One JSON object: {\"tokens\": [...], \"logprobs\": [log p(token[i] | tokens before it), i >= 1]}.\n"
    "  -f, --file TEXT    tokenize this text with MODEL's tokenizer\n"
    "  --tokens IDS.json  a JSON array of ids (or an object with a \"tokens\" array), used as given\n"
    "  --bos              prefix the tokenizer's BOS to the text (as the model's tokenizer would)\n"
    "  --threads N        threads (default: all cores)\n"
    "\n"
    "example: llmpress logprobs llama-25m-q4_0.gguf -f ../shared/assets/text/corpus/heldout.txt\n";

/* The ids of a JSON array, or of {"tokens": [...]}; prints its own errors. */
static int read_ids(const char *path, int64_t vocab, int32_t **ids, int64_t *n) {
    char *text = NULL;
    size_t len = 0;
    if (cli_read_text(path, &text, &len) != LP_OK) return cli_lib_error("logprobs", NULL);
    lp_json_doc *doc = NULL;
    int rc = 0;
    if (lp_json_parse(text, len, path, &doc) != LP_OK) {
        rc = cli_lib_error("logprobs", NULL);
    } else {
        const lp_json *r = lp_json_root(doc);
        if (r->type == LP_JSON_OBJECT) r = lp_json_get(r, "tokens");
        if (!r || r->type != LP_JSON_ARRAY || r->n < 2) {
            fprintf(stderr, "llmpress logprobs: %s: expected a JSON array of at least 2 token ids\n", path);
            rc = 1;
        } else if (!(*ids = malloc((size_t)r->n * sizeof **ids))) {
            fprintf(stderr, "llmpress logprobs: out of memory\n");
            rc = 1;
        } else {
            for (int64_t i = 0; i < r->n && !rc; i++) {
                const lp_json *v = &r->items[i];
                if (v->type != LP_JSON_NUMBER || !v->is_int || v->i64 < 0 || v->i64 >= vocab) {
                    fprintf(stderr, "llmpress logprobs: %s: token %lld is not an id in [0, %lld)\n", path,
                            (long long)i, (long long)vocab);
                    rc = 1;
                }
                (*ids)[i] = (int32_t)v->i64;
            }
            *n = r->n;
        }
    }
    lp_json_free(doc);
    free(text);
    return rc;
}

int cmd_logprobs(int argc, char **argv) {
    cli_args a = {argc, 1, argv, "logprobs"};
    const char *model = NULL, *file = NULL, *tokens = NULL;
    int64_t threads = 0;
    bool bos = false;
    for (; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(f, "-f") || !strcmp(f, "--file")) {
            if (!(file = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--tokens")) {
            if (!(tokens = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--bos")) {
            bos = true;
        } else if (!strcmp(f, "--threads")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1024, &threads)) return 2;
        } else if (f[0] == '-') {
            return cli_usage_error(&a, "unknown flag '%s'", f);
        } else if (!model) {
            model = f;
        } else {
            return cli_usage_error(&a, "unexpected argument '%s'", f);
        }
    }
    if (!model) return cli_usage_error(&a, "no MODEL given");
    if (!file == !tokens) return cli_usage_error(&a, "give one of -f TEXT and --tokens IDS.json");
    if (tokens && bos) return cli_usage_error(&a, "--bos is for -f TEXT (--tokens are used as given)");
    cli_set_threads((int)threads);
    lp_model *m = NULL;
    if (lp_model_load(model, &m) != LP_OK) return cli_lib_error("logprobs", NULL);
    const lp_config *c = lp_model_config(m);
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = 0;
    if (tokens) {
        rc = read_ids(tokens, c->vocab, &ids, &n);
    } else {
        lp_tokenizer *tok = NULL;
        char *text = NULL;
        size_t len = 0;
        if (cli_load_tokenizer(model, &tok) != LP_OK) rc = cli_lib_error("logprobs", "loading the tokenizer");
        else if (cli_read_text(file, &text, &len) != LP_OK) rc = cli_lib_error("logprobs", NULL);
        else if (lp_tokenizer_encode(tok, text, len, bos, &ids, &n) != LP_OK) rc = cli_lib_error("logprobs", file);
        else if (n < 2) rc = cli_usage_error(&a, "%s holds fewer than 2 tokens", file);
        free(text);
        lp_tokenizer_free(tok);
    }
    if (!rc && n > c->max_pos)
        rc = cli_usage_error(&a, "%lld tokens exceed %s's %lld positions", (long long)n, model, (long long)c->max_pos);
    float *logits = NULL;
    lp_ctx *ctx = NULL;
    if (!rc) {
        logits = malloc((size_t)n * (size_t)c->vocab * sizeof *logits);
        if (!logits) rc = cli_usage_error(&a, "out of memory for %lld x %lld logits", (long long)n, (long long)c->vocab);
    }
    if (!rc && (lp_ctx_init(m, n, n, &ctx) != LP_OK || lp_forward(ctx, ids, n, logits, true) != LP_OK))
        rc = cli_lib_error("logprobs", NULL);
    if (!rc) {
        printf("{\"model\": ");
        cli_json_string(stdout, model);
        printf(", \"tokens\": [");
        for (int64_t i = 0; i < n; i++) printf("%s%d", i ? ", " : "", ids[i]);
        printf("], \"logprobs\": [");
        for (int64_t i = 1; i < n; i++) {
            const float *row = logits + (i - 1) * c->vocab;
            double mx = row[0], s = 0;
            for (int64_t v = 1; v < c->vocab; v++) mx = row[v] > mx ? row[v] : mx;
            for (int64_t v = 0; v < c->vocab; v++) s += exp((double)row[v] - mx);
            printf("%s%.9g", i > 1 ? ", " : "", (double)row[ids[i]] - mx - log(s));
        }
        printf("]}\n");
    }
    lp_ctx_free(ctx);
    free(logits);
    free(ids);
    lp_model_free(m);
    return rc;
}
