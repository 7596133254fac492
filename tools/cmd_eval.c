/*
 * cmd_eval.c - `llmpress eval`: what a model (original or compressed) lost:
 * perplexity on text files, KL divergence from a reference, zero-shot task
 * accuracy, and what it costs to run (speed, memory, size).
 *
 * --json prints one whole JSON object or nothing: it is built in memory and
 * written only when every measurement succeeded (a failure goes to stderr
 * with a non-zero exit), and a non-finite number is written as null, never
 * as the invalid bare nan/inf. The object:
 *   {"model", "protocol", "ctx",
 *    "results": [{"file", "ppl", "nll_sum", "tokens_scored", "windows",
 *                 "text_tokens", "seconds",
 *                 "kl": {"ref", "tokens", "mean", "mean_stderr", "median", "p90",
 *                        "p99", "p999", "max", "same_top1", "ppl_ref"}}],   (with --kl)
 *    "tasks": {...},                                (with --tasks, eval_tasks.h)
 *    "speed": {"prefill_tok_s", "decode_tok_s", "prompt_tokens", "gen_tokens",
 *              "reps", "threads"} or null,
 *    "peak_rss_bytes", "disk_bytes", "total_bytes", "bits_per_weight",
 *    "linear_bits_per_weight", "compress": the checkpoint's record of how it
 *    was made (method, settings, "seconds") or null}
 * peak_rss_bytes is the process's peak, read last (with --kl it holds both
 * models).
 */
#include "cli.h"
#include "eval_tasks.h"
#include "io/json.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress eval MODEL [--ppl FILE ...] [--kl REF] [--tasks LIST --tasks-dir DIR] [flags]\n"
    "\n"
    "What MODEL (original or compressed) lost, and what it costs to run.\n"
    "  --ppl FILE          a text file to score: perplexity (repeatable)\n"
    "  --ctx N             window length in tokens (default 512; GPTQ papers use 2048)\n"
    "  --protocol P        gptq (default): no BOS, non-overlapping windows, every token scored\n"
    "                      llamacpp: BOS per window, second half scored (as llama-perplexity)\n"
    "  --windows N         score only the first N windows (default: all)\n"
    "  --kl REF            also run REF (the original model) on the same windows: KL(REF || MODEL)\n"
    "                      mean, median, p90/p99/p99.9, max, and same top-1 %; REF must share\n"
    "                      MODEL's tokenizer\n"
    "  --tasks LIST        zero-shot tasks: all, or names from arc_easy, arc_challenge, piqa,\n"
    "                      boolq, hellaswag, winogrande, openbook_qa, copa, siqa, lambada_openai\n"
    "  --tasks-dir DIR     where the task files are (as ../shared/assets/zeroshot)\n"
    "  --limit N           score the first N examples of each task\n"
    "  --speed-prompt N    speed: prefill a prompt of N tokens (default 128)\n"
    "  --speed-gen N       speed: then decode N tokens (default 32)\n"
    "  --speed-reps N      speed: median of N runs (default 3; 0 skips the measurement)\n"
    "  --threads N         threads for BLAS and kernels (default: all cores)\n"
    "  --json              print one JSON object on stdout\n"
    "  --quiet             no progress on stderr\n"
    "\n"
    "example: llmpress eval w4 --ppl ../shared/assets/text/wikitext-2-raw/wiki.test.raw \\\n"
    "           --kl ../shared/assets/models/llama-25m --tasks piqa,arc_easy \\\n"
    "           --tasks-dir ../shared/assets/zeroshot --limit 200\n";

#define MAX_FILES 32

typedef struct {
    const char *model_dir, *ref_dir, *tasks, *tasks_dir;
    const char *files[MAX_FILES];
    int nfiles;
    lp_ppl_params pp;
    int64_t threads, limit, speed_prompt, speed_gen, speed_reps;
    bool json, quiet;
} eopts;

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

static int parse(int argc, char **argv, eopts *o) {
    cli_args a = {argc, 1, argv, "eval"};
    for (; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return -1;
        } else if (!strcmp(f, "--ppl")) {
            const char *s = cli_value(&a);
            if (!s) return 2;
            if (o->nfiles == MAX_FILES) return cli_usage_error(&a, "at most %d --ppl files", MAX_FILES);
            o->files[o->nfiles++] = s;
        } else if (!strcmp(f, "--ctx")) {
            if (!cli_parse_i64(&a, cli_value(&a), 2, 1 << 20, &o->pp.ctx)) return 2;
        } else if (!strcmp(f, "--windows")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, INT64_MAX, &o->pp.max_windows)) return 2;
        } else if (!strcmp(f, "--threads")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1024, &o->threads)) return 2;
        } else if (!strcmp(f, "--limit")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, INT64_MAX, &o->limit)) return 2;
        } else if (!strcmp(f, "--speed-prompt")) {
            if (!cli_parse_i64(&a, cli_value(&a), 1, 1 << 20, &o->speed_prompt)) return 2;
        } else if (!strcmp(f, "--speed-gen")) {
            if (!cli_parse_i64(&a, cli_value(&a), 0, 1 << 20, &o->speed_gen)) return 2;
        } else if (!strcmp(f, "--speed-reps")) {
            if (!cli_parse_i64(&a, cli_value(&a), 0, 100, &o->speed_reps)) return 2;
        } else if (!strcmp(f, "--kl")) {
            if (!(o->ref_dir = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--tasks")) {
            if (!(o->tasks = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--tasks-dir")) {
            if (!(o->tasks_dir = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--protocol")) {
            const char *s = cli_value(&a);
            if (!s) return 2;
            if (!strcmp(s, "gptq")) o->pp.protocol = LP_PPL_GPTQ;
            else if (!strcmp(s, "llamacpp") || !strcmp(s, "llama.cpp")) o->pp.protocol = LP_PPL_LLAMACPP;
            else return cli_usage_error(&a, "--protocol must be gptq or llamacpp, got '%s'", s);
        } else if (!strcmp(f, "--json")) {
            o->json = true;
        } else if (!strcmp(f, "--quiet") || !strcmp(f, "-q")) {
            o->quiet = true;
        } else if (f[0] == '-') {
            return cli_usage_error(&a, "unknown flag '%s'", f);
        } else if (!o->model_dir) {
            o->model_dir = f;
        } else {
            return cli_usage_error(&a, "unexpected argument '%s'", f);
        }
    }
    if (!o->model_dir) return cli_usage_error(&a, "no MODEL directory given");
    if (!o->nfiles && !o->tasks)
        return cli_usage_error(&a, "nothing to evaluate: give --ppl FILE and/or --tasks LIST");
    if (o->ref_dir && !o->nfiles)
        return cli_usage_error(&a, "--kl compares the models on the --ppl text: give --ppl FILE");
    if (o->tasks && !o->tasks_dir)
        return cli_usage_error(&a, "--tasks needs --tasks-dir DIR (the task files, as ../shared/assets/zeroshot)");
    if (!o->tasks && (o->tasks_dir || o->limit))
        return cli_usage_error(&a, "%s is for zero-shot tasks: give --tasks LIST", o->limit ? "--limit" : "--tasks-dir");
    return 0;
}

/* The reference must read text as the model does: the same ids for the
 * same text (its tokenizer may be another file with the same content). */
static int check_ref_tokens(const char *file, const int32_t *ids, int64_t n, const int32_t *rids, int64_t rn,
                            const char *ref_dir) {
    int64_t i = 0;
    while (i < n && i < rn && ids[i] == rids[i]) i++;
    if (i == n && i == rn) return 0;
    if (i < n && i < rn)
        fprintf(stderr, "llmpress eval: --kl %s: its tokenizer differs from the model's: on %s, token %lld is "
                "%d for the model and %d for the reference; a KL divergence compares the same tokens\n",
                ref_dir, file, (long long)i, ids[i], rids[i]);
    else
        fprintf(stderr, "llmpress eval: --kl %s: its tokenizer differs from the model's: %s is %lld tokens for "
                "the model and %lld for the reference\n", ref_dir, file, (long long)n, (long long)rn);
    return 2;
}

/* Score one text file: perplexity, or with a reference the KL divergence
 * (whose pass also gives the perplexity). */
static int eval_file(const eopts *o, int i, lp_model *m, lp_tokenizer *tok, lp_model *ref, lp_tokenizer *rtok,
                     FILE *js, int32_t **first_ids, int64_t *first_n) {
    const char *path = o->files[i];
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL, *rids = NULL;
    int64_t n = 0, rn = 0;
    if (cli_read_text(path, &text, &len) != LP_OK) return cli_lib_error("eval", NULL);
    if (lp_tokenizer_encode(tok, text, len, 0, &ids, &n) != LP_OK ||
        (ref && lp_tokenizer_encode(rtok, text, len, 0, &rids, &rn) != LP_OK)) {
        fprintf(stderr, "llmpress eval: %s: %s\n", path, lp_last_error());
        free(text);
        free(ids);
        return 1;
    }
    free(text);
    int rc = ref ? check_ref_tokens(path, ids, n, rids, rn, o->ref_dir) : 0;
    free(rids);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    progress_state ps = {base, cli_now(), o->quiet || o->json};
    lp_ppl_params pp = o->pp;
    pp.progress = on_progress;
    pp.progress_ud = &ps;
    lp_ppl_result r = {0};
    lp_kl_result kl = {0};
    if (rc == 0) {
        lp_status st = ref ? lp_kl_divergence(m, ref, ids, n, &pp, &kl) : lp_perplexity(m, ids, n, &pp, &r, NULL);
        if (st != LP_OK) rc = (fprintf(stderr, "llmpress eval: %s: %s\n", path, lp_last_error()), 1);
        if (ref) r = kl.ppl;
    }
    if (rc == 0 && js) {
        fprintf(js, "%s{\"file\": ", i ? ", " : "");
        cli_json_string(js, path);
        fputs(", \"ppl\": ", js);
        json_num(js, r.ppl, 6);
        fputs(", \"nll_sum\": ", js);
        json_num(js, r.nll_sum, 6);
        fprintf(js, ", \"tokens_scored\": %lld, \"windows\": %lld, \"text_tokens\": %lld, \"seconds\": ",
                (long long)r.count, (long long)r.windows, (long long)n);
        json_num(js, r.seconds, 3);
        if (ref) {
            fputs(", \"kl\": {\"ref\": ", js);
            cli_json_string(js, o->ref_dir);
            fprintf(js, ", \"tokens\": %lld", (long long)kl.tokens);
            const char *keys[] = {"mean", "mean_stderr", "median", "p90", "p99", "p999", "max", "same_top1"};
            const double vals[] = {kl.mean, kl.mean_stderr, kl.median, kl.p90, kl.p99, kl.p999, kl.max, kl.same_top1};
            for (size_t k = 0; k < sizeof vals / sizeof *vals; k++) {
                fprintf(js, ", \"%s\": ", keys[k]);
                json_num(js, vals[k], 8);
            }
            fputs(", \"ppl_ref\": ", js);
            json_num(js, kl.ppl_ref.ppl, 6);
            fputs(", \"seconds_ref\": ", js);
            json_num(js, kl.ppl_ref.seconds, 3);
            fputc('}', js);
        }
        fputc('}', js);
    } else if (rc == 0) {
        printf("%-24s ppl %10.4f   (%lld tokens scored in %lld windows of %lld; %s; %.1f s)\n", base, r.ppl,
               (long long)r.count, (long long)r.windows, (long long)o->pp.ctx, lp_ppl_protocol_name(o->pp.protocol),
               r.seconds);
        if (ref)
            printf("%-24s KL(ref || model) mean %.6f +- %.6f, median %.6f, p90 %.6f, p99 %.6f, p99.9 %.6f, max "
                   "%.4f; same top-1 %.3f%%; reference ppl %.4f (%lld tokens)\n", "", kl.mean, kl.mean_stderr,
                   kl.median, kl.p90, kl.p99, kl.p999, kl.max, 100.0 * kl.same_top1, kl.ppl_ref.ppl,
                   (long long)kl.tokens);
    }
    if (rc == 0 && !*first_ids) {
        *first_ids = ids;
        *first_n = n;
    } else {
        free(ids);
    }
    return rc;
}

/* Speed, memory and size: the members after "tasks" (JSON) or a few lines. */
static int report_costs(const eopts *o, const lp_model *m, const int32_t *ids, int64_t n, FILE *js) {
    lp_speed_result sp = {0};
    const lp_config *c = lp_model_config(m);
    int64_t P = o->speed_prompt, N = o->speed_gen;
    if (N > c->max_pos / 2) N = c->max_pos / 2; /* a short model window: what fits */
    if (P + N > c->max_pos) P = c->max_pos - N;
    if (o->speed_reps > 0) {
        if (lp_speed_measure(m, ids && n >= P ? ids : NULL, P, N, 0, (int)o->speed_reps, &sp) != LP_OK)
            return cli_lib_error("eval", "measuring speed");
    }
    lp_model_size sz;
    lp_model_size_get(m, &sz);
    const double bpw = 8.0 * (double)sz.total_bytes / (double)sz.total_params;
    const double lbpw = 8.0 * (double)sz.linear_bytes / (double)sz.linear_params;
    const char *prov = lp_model_provenance(m);
    lp_json_doc *pdoc = NULL;
    if (prov && lp_json_parse(prov, strlen(prov), "llmpress.quantize", &pdoc) != LP_OK) {
        fprintf(stderr, "llmpress eval: warning: %s: the record of how the model was made is not JSON (%s); "
                "reported as null\n", o->model_dir, lp_last_error());
        prov = NULL;
    }
    const lp_json *cs = pdoc ? lp_json_get(lp_json_root(pdoc), "seconds") : NULL;
    const double csec = cs ? lp_json_num(cs, NAN) : NAN;
    lp_json_free(pdoc);
    const int64_t rss = lp_peak_rss_bytes();
    if (js) {
        if (o->speed_reps > 0) {
            fputs(", \"speed\": {\"prefill_tok_s\": ", js);
            json_num(js, sp.prefill_tok_s, 2);
            fputs(", \"decode_tok_s\": ", js);
            json_num(js, sp.decode_tok_s, 2);
            fprintf(js, ", \"prompt_tokens\": %lld, \"gen_tokens\": %lld, \"reps\": %lld, \"threads\": %d}",
                    (long long)sp.prompt_tokens, (long long)sp.gen_tokens, (long long)sp.reps, omp_get_max_threads());
        } else {
            fputs(", \"speed\": null", js);
        }
        fprintf(js, ", \"peak_rss_bytes\": %lld, \"disk_bytes\": %lld, \"total_bytes\": %lld, \"bits_per_weight\": ",
                (long long)rss, (long long)sz.disk_bytes, (long long)sz.total_bytes);
        json_num(js, bpw, 4);
        fputs(", \"linear_bits_per_weight\": ", js);
        json_num(js, lbpw, 4);
        fprintf(js, ", \"compress\": %s", prov ? prov : "null");
        return 0;
    }
    if (o->speed_reps > 0)
        printf("speed                    prefill %.1f tok/s (%lld-token prompt), decode %.1f tok/s (%lld tokens), "
               "%d threads, median of %lld\n", sp.prefill_tok_s, (long long)sp.prompt_tokens, sp.decode_tok_s,
               (long long)sp.gen_tokens, omp_get_max_threads(), (long long)sp.reps);
    printf("size                     %.2f MB on disk, %.4f bits per weight (%.4f in the decoder linears)\n",
           (double)sz.disk_bytes / 1e6, bpw, lbpw);
    printf("memory                   peak resident %.1f MB\n", (double)rss / 1e6);
    if (isfinite(csec)) printf("compression              %.1f s (recorded in the checkpoint)\n", csec);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    eopts o = {.pp = lp_ppl_default_params(), .speed_prompt = 128, .speed_gen = 32, .speed_reps = 3};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    cli_set_threads((int)o.threads);

    lp_model *m = NULL, *ref = NULL;
    lp_tokenizer *tok = NULL, *rtok = NULL;
    if (lp_model_load(o.model_dir, &m) != LP_OK) return cli_lib_error("eval", NULL);
    if (cli_load_tokenizer(o.model_dir, &tok) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("eval", "loading the tokenizer");
    }
    if (o.ref_dir && (lp_model_load(o.ref_dir, &ref) != LP_OK || cli_load_tokenizer(o.ref_dir, &rtok) != LP_OK)) {
        rc = cli_lib_error("eval", "loading the --kl reference");
    } else if (ref && lp_model_config(ref)->vocab != lp_model_config(m)->vocab) {
        fprintf(stderr, "llmpress eval: --kl %s: its vocabulary has %lld tokens and the model's %lld; a KL "
                "divergence compares the same vocabulary\n", o.ref_dir, (long long)lp_model_config(ref)->vocab,
                (long long)lp_model_config(m)->vocab);
        rc = 2;
    }
    char *jbuf = NULL;
    size_t jlen = 0;
    FILE *js = o.json && rc == 0 ? open_memstream(&jbuf, &jlen) : NULL;
    if (o.json && rc == 0 && !js) rc = (fprintf(stderr, "llmpress eval: out of memory\n"), 1);
    if (js) fprintf(js, "{\"model\": "), cli_json_string(js, o.model_dir),
            fprintf(js, ", \"protocol\": \"%s\", \"ctx\": %lld, \"results\": [",
                    o.pp.protocol == LP_PPL_GPTQ ? "gptq" : "llamacpp", (long long)o.pp.ctx);
    int32_t *ids = NULL;
    int64_t n = 0;
    for (int i = 0; i < o.nfiles && rc == 0; i++) rc = eval_file(&o, i, m, tok, ref, rtok, js, &ids, &n);
    if (js) fputc(']', js);
    /* the reference is not needed further: free it before the tasks */
    lp_model_free(ref);
    lp_tokenizer_free(rtok);
    if (rc == 0 && o.tasks) {
        if (js) fputs(", ", js);
        rc = cli_eval_tasks(m, tok, o.tasks, o.tasks_dir, o.limit, o.quiet || o.json, js);
    }
    if (rc == 0) rc = report_costs(&o, m, ids, n, js);
    free(ids);
    if (js) {
        fputs("}\n", js);
        if (fclose(js) != 0 && rc == 0) rc = (fprintf(stderr, "llmpress eval: out of memory\n"), 1);
        if (rc == 0) fwrite(jbuf, 1, jlen, stdout);
        free(jbuf);
    }
    lp_tokenizer_free(tok);
    lp_model_free(m);
    return rc;
}
