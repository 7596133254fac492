/*
 * cmd_run.c - `llmpress run`: generate text (batched prefill, then KV-cache
 * decode), streaming the continuation to stdout and speed to stderr.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress run MODEL -p PROMPT [flags]\n"
    "\n"
    "Generate a continuation of PROMPT with MODEL (original or compressed).\n"
    "  -p, --prompt TEXT   the prompt\n"
    "  -f, --file FILE     read the prompt from a file instead\n"
    "  -n N                tokens to generate (default 64)\n"
    "  --temp T            temperature; 0 = greedy (default 0)\n"
    "  --top-p P           nucleus sampling threshold (default 1 = off)\n"
    "  --top-k K           keep the K most probable tokens (default 0 = off)\n"
    "  --seed S            random seed for sampling (default 1234)\n"
    "  --no-bos            do not add the tokenizer's special prefix (BOS)\n"
    "  --ignore-eos        keep generating after the end-of-sequence token\n"
    "  --threads N         threads (default: all cores)\n"
    "  --quiet             no speed report on stderr\n"
    "\n"
    "example: llmpress run ../shared/assets/models/llama-25m -p \"The history of the city\" -n 64\n";

/* Print the part of decode(ids[0..n)) past `printed` bytes; returns the new
 * count. Decoding the whole sequence each time keeps SentencePiece spaces and
 * multi-byte characters split over byte tokens right. */
static size_t emit(const lp_tokenizer *tok, const int32_t *ids, int64_t n, size_t printed, bool final) {
    /* The special prefix (BOS) the tokenizer added is not part of the text. */
    while (n > 0 && lp_tokenizer_is_special(tok, ids[0])) ids++, n--;
    char *s = NULL;
    size_t len = 0;
    if (lp_tokenizer_decode(tok, ids, n, &s, &len) != LP_OK) return printed;
    /* Hold back a trailing U+FFFD (EF BF BD): the character may be incomplete. */
    if (!final && len >= 3 && !memcmp(s + len - 3, "\xef\xbf\xbd", 3)) len -= 3;
    if (len > printed) {
        fwrite(s + printed, 1, len - printed, stdout);
        fflush(stdout);
        printed = len;
    }
    free(s);
    return printed;
}

int cmd_run(int argc, char **argv) {
    cli_args a = {argc, 1, argv, "run"};
    const char *model_dir = NULL, *prompt = NULL, *file = NULL;
    int64_t n_gen = 64, threads = 0, v;
    double d;
    lp_sampler_params sp = lp_sampler_default_params();
    bool bos = true, quiet = false, ignore_eos = false;
    for (; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(f, "-p") || !strcmp(f, "--prompt")) {
            if (!(prompt = cli_value(&a))) return 2;
        } else if (!strcmp(f, "-f") || !strcmp(f, "--file")) {
            if (!(file = cli_value(&a))) return 2;
        } else if (!strcmp(f, "-n")) {
            if (!cli_parse_i64(&a, cli_value(&a), 0, 1 << 24, &n_gen)) return 2;
        } else if (!strcmp(f, "--temp")) {
            if (!cli_parse_f64(&a, cli_value(&a), 0, 100, &d)) return 2;
            sp.temperature = (float)d;
        } else if (!strcmp(f, "--top-p")) {
            if (!cli_parse_f64(&a, cli_value(&a), 1e-6, 1, &d)) return 2;
            sp.top_p = (float)d;
        } else if (!strcmp(f, "--top-k")) {
            if (!cli_parse_i64(&a, cli_value(&a), 0, 1 << 30, &v)) return 2;
            sp.top_k = (int)v;
        } else if (!strcmp(f, "--seed")) {
            if (!cli_parse_i64(&a, cli_value(&a), 0, INT64_MAX, &v)) return 2;
            sp.seed = (uint64_t)v;
        } else if (!strcmp(f, "--threads")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1024, &threads)) return 2;
        } else if (!strcmp(f, "--no-bos")) {
            bos = false;
        } else if (!strcmp(f, "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(f, "--quiet") || !strcmp(f, "-q")) {
            quiet = true;
        } else if (f[0] == '-') {
            return cli_usage_error(&a, "unknown flag '%s'", f);
        } else if (!model_dir) {
            model_dir = f;
        } else {
            return cli_usage_error(&a, "unexpected argument '%s'", f);
        }
    }
    if (!model_dir) return cli_usage_error(&a, "no MODEL directory given");
    if (!prompt && !file) return cli_usage_error(&a, "no prompt: give -p TEXT or -f FILE");
    if (prompt && file) return cli_usage_error(&a, "give either -p or -f, not both");
    cli_set_threads((int)threads);

    char *text = NULL;
    size_t tlen = 0;
    if (file) {
        if (cli_read_text(file, &text, &tlen) != LP_OK) return cli_lib_error("run", NULL);
    } else {
        text = strdup(prompt);
        tlen = strlen(prompt);
    }
    lp_model *m = NULL;
    lp_tokenizer *tok = NULL;
    lp_ctx *ctx = NULL;
    lp_sampler *smp = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    int64_t n = 0;
    int rc = 1;
    if (lp_model_load(model_dir, &m) != LP_OK) { cli_lib_error("run", NULL); goto done; }
    if (cli_load_tokenizer(model_dir, &tok) != LP_OK) { cli_lib_error("run", "loading the tokenizer"); goto done; }
    if (lp_tokenizer_encode(tok, text, tlen, bos, &ids, &n) != LP_OK) {
        fprintf(stderr, "llmpress run: %s: %s\n", file ? file : "prompt", lp_last_error());
        goto done;
    }
    const lp_config *c = lp_model_config(m);
    if (n == 0) { fprintf(stderr, "llmpress run: the prompt is empty\n"); goto done; }
    int64_t total = n + n_gen;
    if (total > c->max_pos) {
        fprintf(stderr, "llmpress run: prompt (%lld tokens) + -n %lld exceeds the model's context of %lld\n",
                (long long)n, (long long)n_gen, (long long)c->max_pos);
        goto done;
    }
    int32_t *grown = realloc(ids, (size_t)total * sizeof *ids);
    if (!grown) { fprintf(stderr, "llmpress run: out of memory\n"); goto done; }
    ids = grown;
    logits = malloc((size_t)c->vocab * sizeof(float));
    if (!logits || lp_ctx_init(m, total, n, &ctx) != LP_OK || lp_sampler_init(&sp, c->vocab, &smp) != LP_OK) {
        cli_lib_error("run", NULL);
        goto done;
    }
    size_t printed = emit(tok, ids, n, 0, false);
    double t0 = cli_now();
    if (lp_forward(ctx, ids, n, logits, false) != LP_OK) { cli_lib_error("run", NULL); goto done; }
    double t_prefill = cli_now() - t0;
    int64_t made = 0;
    t0 = cli_now();
    while (made < n_gen) {
        int32_t next;
        if (lp_sample(smp, logits, &next) != LP_OK) {
            fprintf(stderr, "llmpress run: %s: generated token %lld: %s\n", model_dir, (long long)made + 1,
                    lp_last_error());
            goto done;
        }
        ids[n + made++] = next;
        printed = emit(tok, ids, n + made, printed, false);
        if (ferror(stdout)) break; /* output lost (disk full, ...): main reports it, exit 1 */
        if (next == c->eos && !ignore_eos) break;
        if (made == n_gen) break;
        if (lp_forward(ctx, &next, 1, logits, false) != LP_OK) { cli_lib_error("run", NULL); goto done; }
    }
    double t_decode = cli_now() - t0;
    emit(tok, ids, n + made, printed, true);
    printf("\n");
    fflush(stdout);
    if (!quiet)
        fprintf(stderr, "[run] prompt %lld tokens in %.3fs (%.1f tok/s), generated %lld tokens in %.3fs (%.1f tok/s)\n",
                (long long)n, t_prefill, (double)n / t_prefill, (long long)made, t_decode,
                made ? (double)made / t_decode : 0.0);
    rc = 0;
done:
    free(text);
    free(ids);
    free(logits);
    lp_sampler_free(smp);
    lp_ctx_free(ctx);
    lp_tokenizer_free(tok);
    lp_model_free(m);
    return rc;
}
