/*
 * cmd_eval.c - `llmpress eval`: perplexity of a model on text files.
 *
 * --json prints one whole JSON object or nothing: it is built in memory and
 * written only when every file was scored (a failure goes to stderr with a
 * non-zero exit), and a non-finite number is written as null, never as the
 * invalid bare nan/inf.
 */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress eval MODEL --ppl FILE [--ppl FILE ...] [flags]\n"
    "\n"
    "Perplexity of MODEL (original or compressed) on each text file.\n"
    "  --ppl FILE          a text file to score (repeatable)\n"
    "  --ctx N             window length in tokens (default 512; GPTQ papers use 2048)\n"
    "  --protocol P        gptq (default): no BOS, non-overlapping windows, every token scored\n"
    "                      llamacpp: BOS per window, second half scored (as llama-perplexity)\n"
    "  --windows N         score only the first N windows (default: all)\n"
    "  --threads N         threads for BLAS and kernels (default: all cores)\n"
    "  --json              print one JSON object on stdout\n"
    "  --quiet             no progress on stderr\n"
    "\n"
    "example: llmpress eval ../shared/assets/models/llama-25m \\\n"
    "           --ppl ../shared/assets/text/wikitext-2-raw/wiki.test.raw --ctx 512\n";

typedef struct {
    const char *name;
    double t0;
    bool quiet;
} progress_state;

static void on_progress(void *ud, int64_t done, int64_t total, double nll, int64_t count) {
    progress_state *ps = ud;
    if (ps->quiet) return;
    double el = cli_now() - ps->t0;
    double eta = done ? el / (double)done * (double)(total - done) : 0;
    fprintf(stderr, "\r[eval] %s: window %lld/%lld  ppl %.4f  %.1fs, ETA %.0fs   ", ps->name,
            (long long)done, (long long)total, exp(nll / (double)count), el, eta);
    if (done == total) fputc('\n', stderr);
}

/* A JSON number with `prec` decimals; null when not finite. */
static void json_num(FILE *f, double v, int prec) {
    if (isfinite(v)) fprintf(f, "%.*f", prec, v);
    else fputs("null", f);
}

int cmd_eval(int argc, char **argv) {
    cli_args a = {argc, 1, argv, "eval"};
    const char *model_dir = NULL;
    const char *files[32];
    int nfiles = 0;
    lp_ppl_params pp = lp_ppl_default_params();
    int64_t threads = 0;
    bool json = false, quiet = false;
    for (; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(f, "--ppl")) {
            const char *s = cli_value(&a);
            if (!s) return 2;
            if (nfiles == 32) return cli_usage_error(&a, "at most 32 --ppl files");
            files[nfiles++] = s;
        } else if (!strcmp(f, "--ctx")) {
            if (!cli_parse_i64(&a, cli_value(&a), 2, 1 << 20, &pp.ctx)) return 2;
        } else if (!strcmp(f, "--windows")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, INT64_MAX, &pp.max_windows)) return 2;
        } else if (!strcmp(f, "--threads")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1024, &threads)) return 2;
        } else if (!strcmp(f, "--protocol")) {
            const char *s = cli_value(&a);
            if (!s) return 2;
            if (!strcmp(s, "gptq")) pp.protocol = LP_PPL_GPTQ;
            else if (!strcmp(s, "llamacpp") || !strcmp(s, "llama.cpp")) pp.protocol = LP_PPL_LLAMACPP;
            else return cli_usage_error(&a, "--protocol must be gptq or llamacpp, got '%s'", s);
        } else if (!strcmp(f, "--json")) {
            json = true;
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
    if (!nfiles) return cli_usage_error(&a, "nothing to evaluate: give --ppl FILE");
    cli_set_threads((int)threads);

    lp_model *m = NULL;
    lp_tokenizer *tok = NULL;
    if (lp_model_load(model_dir, &m) != LP_OK) return cli_lib_error("eval", NULL);
    if (cli_load_tokenizer(model_dir, &tok) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("eval", "loading the tokenizer");
    }
    int rc = 0;
    char *jbuf = NULL;
    size_t jlen = 0;
    FILE *js = json ? open_memstream(&jbuf, &jlen) : NULL;
    if (json && !js) {
        fprintf(stderr, "llmpress eval: out of memory\n");
        lp_tokenizer_free(tok);
        lp_model_free(m);
        return 1;
    }
    if (json) fprintf(js, "{\"model\": "), cli_json_string(js, model_dir),
              fprintf(js, ", \"protocol\": \"%s\", \"ctx\": %lld, \"results\": [",
                      pp.protocol == LP_PPL_GPTQ ? "gptq" : "llamacpp", (long long)pp.ctx);
    for (int i = 0; i < nfiles && rc == 0; i++) {
        char *text = NULL;
        size_t len = 0;
        int32_t *ids = NULL;
        int64_t n = 0;
        if (cli_read_text(files[i], &text, &len) != LP_OK) {
            rc = cli_lib_error("eval", NULL);
            break;
        }
        if (lp_tokenizer_encode(tok, text, len, 0, &ids, &n) != LP_OK) {
            fprintf(stderr, "llmpress eval: %s: %s\n", files[i], lp_last_error());
            free(text);
            rc = 1;
            break;
        }
        free(text);
        const char *base = strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i];
        progress_state ps = {base, cli_now(), quiet || json};
        pp.progress = on_progress;
        pp.progress_ud = &ps;
        lp_ppl_result r;
        if (lp_perplexity(m, ids, n, &pp, &r, NULL) != LP_OK) {
            fprintf(stderr, "llmpress eval: %s: %s\n", files[i], lp_last_error());
            free(ids);
            rc = 1;
            break;
        }
        if (json) {
            fprintf(js, "%s{\"file\": ", i ? ", " : "");
            cli_json_string(js, files[i]);
            fputs(", \"ppl\": ", js);
            json_num(js, r.ppl, 6);
            fputs(", \"nll_sum\": ", js);
            json_num(js, r.nll_sum, 6);
            fprintf(js, ", \"tokens_scored\": %lld, \"windows\": %lld, \"text_tokens\": %lld, \"seconds\": ",
                    (long long)r.count, (long long)r.windows, (long long)n);
            json_num(js, r.seconds, 3);
            fputc('}', js);
        } else {
            printf("%-24s ppl %10.4f   (%lld tokens scored in %lld windows of %lld; %s; %.1f s)\n", base,
                   r.ppl, (long long)r.count, (long long)r.windows, (long long)pp.ctx,
                   lp_ppl_protocol_name(pp.protocol), r.seconds);
        }
        free(ids);
    }
    if (json) {
        fputs("]}\n", js);
        if (fclose(js) != 0 && rc == 0) rc = (fprintf(stderr, "llmpress eval: out of memory\n"), 1);
        if (rc == 0) fwrite(jbuf, 1, jlen, stdout);
        free(jbuf);
    }
    lp_tokenizer_free(tok);
    lp_model_free(m);
    return rc;
}
