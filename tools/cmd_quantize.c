/*
 * cmd_quantize.c - `llmpress quantize`: compress a checkpoint and save it.
 */
#include "cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress quantize MODEL --method M --bits B [--group G] [--calib FILE] [flags] -o OUT\n"
    "       llmpress quantize MODEL --recipe FILE [flags] -o OUT\n"
    "\n"
    "Quantize the decoder linears (q,k,v,o,gate,up,down) of MODEL and write a\n"
    "compressed checkpoint directory OUT that `eval`, `run` and `info` read directly.\n"
    "  --method M      rtn         round to nearest, min-max per group\n"
    "                  gptq        Hessian-guided error feedback, block by block\n"
    "                  awq         activation-aware channel scales and clipping\n"
    "                  squeezellm  sensitivity-weighted k-means lookup tables + sparse outliers\n"
    "                  slim        SliM-LLM: salience-driven mixed bits per group, GPTQ backend\n"
    "                  (all but rtn need --calib)\n"
    "  --bits B        bits per weight, 1..8 (default 4; slim: the average; squeezellm: 1..4)\n"
    "  --group G       columns per scale: 32, 64, 128, ... or -1 per output channel (default 128)\n"
    "  --sym           symmetric quantization (default asymmetric, with zero points)\n"
    "  -o, --out DIR   output directory (created; files in it are replaced atomically)\n"
    "  --recipe FILE   settings from a file, one per line as a flag without its dashes\n"
    "                  (\"method gptq\", \"bits 3\", \"awq-prescale\", \"clip\"; '#' comments);\n"
    "                  flags on the command line override it\n"
    "calibration:\n"
    "  --calib FILE    calibration text\n"
    "  --nsamples N    windows drawn at random offsets (default 128)\n"
    "  --seqlen L      tokens per window (default 512)\n"
    "  --seed S        seed for drawing the windows (default 0)\n"
    "gptq, slim:\n"
    "  --act-order     quantize columns by decreasing Hessian diagonal (static groups)\n"
    "  --damp D        dampening, fraction of the mean Hessian diagonal (default 0.01)\n"
    "clipping search (rtn, gptq; OmniQuant-style ranges chosen on the layer output error):\n"
    "  --clip          search each group's min/max shrink factors (needs --calib)\n"
    "  --clip-grid N   factors 1 - i/N (default 20)\n"
    "  --clip-max-shrink F   deepest shrink tried (default 0.5)\n"
    "awq, and composing it:\n"
    "  --awq-prescale  fold AWQ's searched scales (and clipping) into each block, then compress\n"
    "                  it with --method (recipe AWQ then GPTQ: --method gptq --awq-prescale)\n"
    "  --awq-no-clip   skip AWQ's clipping search\n"
    "  --awq-search-samples N   calibration windows the scale search runs on (default 0: all)\n"
    "squeezellm:\n"
    "  --outliers F    fraction of weights kept exactly in sparse f16 (default 0.0045)\n"
    "  --kmeans-iters N  weighted k-means iterations per row (default 50)\n"
    "resuming (calibrated methods):\n"
    "  --resume DIR    keep each finished block and the calibration state in DIR; rerunning the\n"
    "                  same command continues after the last finished block. Ctrl-C stops cleanly\n"
    "                  after the current linear (awq: block); DIR's state files are removed once\n"
    "                  OUT is written\n"
    "output:\n"
    "  --threads N     threads (default: all cores)\n"
    "  --json          print a JSON summary on stdout\n"
    "  --quiet         no progress on stderr\n"
    "\n"
    "example: llmpress quantize ../shared/assets/models/llama-25m --method gptq --bits 3 --group 128 \\\n"
    "           --calib ../shared/assets/text/corpus/calib.txt -o llama-25m-w3\n";

typedef struct {
    bool quiet;
    double t0;
} qstate;

static void on_linear(void *ud, int64_t layer, int64_t n_layers, const char *name, double err) {
    qstate *s = ud;
    if (s->quiet) return;
    fprintf(stderr, "[quantize] layer %lld/%lld %-18s rel. error %.5f  (%.1fs)\n", (long long)layer + 1,
            (long long)n_layers, name, err, cli_now() - s->t0);
}

/* Tokenize the calibration text with the model's tokenizer and draw the
 * windows. Prints its own errors; returns 0 on success. */
static int load_calibration(const char *model_dir, const char *file, int64_t nsamples, int64_t seqlen,
                            uint64_t seed, int32_t **windows) {
    lp_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = 1;
    if (cli_load_tokenizer(model_dir, &tok) != LP_OK) {
        cli_lib_error("quantize", "loading the tokenizer");
    } else if (cli_read_text(file, &text, &len) != LP_OK) {
        cli_lib_error("quantize", NULL);
    } else if (lp_tokenizer_encode(tok, text, len, 0, &ids, &n) != LP_OK) {
        fprintf(stderr, "llmpress quantize: %s: %s\n", file, lp_last_error());
    } else if (lp_calib_sample(ids, n, nsamples, seqlen, seed, windows) != LP_OK) {
        fprintf(stderr, "llmpress quantize: %s: %s\n", file, lp_last_error());
    } else {
        rc = 0;
    }
    free(ids);
    free(text);
    lp_tokenizer_free(tok);
    return rc;
}

/* Set by SIGINT/SIGTERM while a resumable run is going: the library stops
 * after the current linear and keeps the finished blocks. */
static volatile int g_interrupt;
static void on_signal(int sig) {
    (void)sig;
    g_interrupt = 1;
}

typedef struct {
    const char *model_dir, *out, *calib_file, *recipe, *resume;
    int64_t nsamples, seqlen, seed, threads;
    lp_quant_params qp;
    bool json, quiet;
} qopts;

/* Parse the flag at a->argv[a->i] (advancing past its value). Returns 0 when
 * parsed, 2 after printing a usage error, -1 after printing --help. Recipe
 * lines (in_recipe) take the method's settings only: no MODEL, output,
 * nested recipe or output-format flags. */
static int parse_flag(qopts *o, cli_args *a, bool in_recipe) {
    const char *f = a->argv[a->i];
    lp_quant_params *qp = &o->qp;
    int64_t v;
    double d;
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
        if (in_recipe) return cli_usage_error(a, "--help is not a recipe setting");
        fputs(HELP, stdout);
        return -1;
    } else if (!strcmp(f, "--method")) {
        const char *s = cli_value(a);
        if (!s) return 2;
        int mth = lp_method_from_name(s);
        if (mth < 0)
            return cli_usage_error(a, "--method '%s' is not available (available: rtn, gptq, awq, squeezellm, "
                                   "slim)", s);
        qp->method = (lp_method)mth;
    } else if (!strcmp(f, "--calib")) {
        if (!(o->calib_file = cli_value(a))) return 2;
    } else if (!strcmp(f, "--nsamples")) {
        if (!cli_parse_i64(a, cli_value(a), 1, 1 << 20, &o->nsamples)) return 2;
    } else if (!strcmp(f, "--seqlen")) {
        if (!cli_parse_i64(a, cli_value(a), 2, 1 << 20, &o->seqlen)) return 2;
    } else if (!strcmp(f, "--seed")) {
        if (!cli_parse_i64(a, cli_value(a), 0, INT64_MAX, &o->seed)) return 2;
    } else if (!strcmp(f, "--act-order")) {
        qp->act_order = true;
    } else if (!strcmp(f, "--damp")) {
        if (!cli_parse_f64(a, cli_value(a), 1e-9, 0.999, &d)) return 2;
        qp->damp = d;
    } else if (!strcmp(f, "--bits")) {
        if (!cli_parse_i64(a, cli_value(a), 1, 8, &v)) return 2;
        qp->bits = (int)v;
    } else if (!strcmp(f, "--group")) {
        if (!cli_parse_i64(a, cli_value(a), -1, 1 << 30, &v)) return 2;
        qp->group = (int)v;
    } else if (!strcmp(f, "--sym")) {
        qp->sym = true;
    } else if (!strcmp(f, "--clip")) {
        qp->clip = true;
    } else if (!strcmp(f, "--clip-grid")) {
        if (!cli_parse_i64(a, cli_value(a), 1, 1000, &v)) return 2;
        qp->clip_grid = (int)v;
    } else if (!strcmp(f, "--clip-max-shrink")) {
        if (!cli_parse_f64(a, cli_value(a), 0.0, 0.99, &d)) return 2;
        qp->clip_max_shrink = d;
    } else if (!strcmp(f, "--awq-prescale")) {
        qp->awq_prescale = true;
    } else if (!strcmp(f, "--awq-no-clip")) {
        qp->awq_clip = false;
    } else if (!strcmp(f, "--awq-search-samples")) {
        if (!cli_parse_i64(a, cli_value(a), 0, 1 << 20, &v)) return 2;
        qp->awq_search_samples = (int)v;
    } else if (!strcmp(f, "--outliers")) {
        if (!cli_parse_f64(a, cli_value(a), 0.0, 0.1, &d)) return 2;
        qp->outlier_frac = d;
    } else if (!strcmp(f, "--kmeans-iters")) {
        if (!cli_parse_i64(a, cli_value(a), 1, 10000, &v)) return 2;
        qp->kmeans_iters = (int)v;
    } else if (!strcmp(f, "--threads")) {
        if (!cli_parse_i64(a, cli_value(a), 1, 1024, &o->threads)) return 2;
    } else if (in_recipe) {
        return cli_usage_error(a, "'%s' is not a recipe setting (recipes hold method settings: method, bits, "
                               "group, clip, ...)", f);
    } else if (!strcmp(f, "--resume")) {
        if (!(o->resume = cli_value(a))) return 2;
    } else if (!strcmp(f, "--recipe")) {
        if (!(o->recipe = cli_value(a))) return 2;
    } else if (!strcmp(f, "-o") || !strcmp(f, "--out")) {
        if (!(o->out = cli_value(a))) return 2;
    } else if (!strcmp(f, "--json")) {
        o->json = true;
    } else if (!strcmp(f, "--quiet") || !strcmp(f, "-q")) {
        o->quiet = true;
    } else if (f[0] == '-') {
        return cli_usage_error(a, "unknown flag '%s'", f);
    } else if (!o->model_dir) {
        o->model_dir = f;
    } else {
        return cli_usage_error(a, "unexpected argument '%s'", f);
    }
    return 0;
}

/* A recipe file: one setting per line, "name [value]" with the flag's name
 * without its dashes ("method gptq", "bits 3", "clip"); '#' starts a
 * comment. Applied before the command line's flags, which override it.
 * Its storage (text, words) must outlive o: the values point into it. */
static int apply_recipe(qopts *o, char *text, size_t len, char ***words_out) {
    char label[512];
    int rc = 0, nwords = 0, lineno = 0;
    /* every word is at least one char plus a separator; each entry is a
     * malloc'd copy ("name" becomes "--name"), NULL-terminated throughout */
    char **words = calloc(len / 2 + 4, sizeof *words);
    *words_out = words;
    if (!words) {
        fprintf(stderr, "llmpress quantize: out of memory reading the recipe\n");
        return 1;
    }
    for (char *line = text; rc == 0 && line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        const int first = nwords;
        for (char *w = strtok(line, " \t\r"); w; w = strtok(NULL, " \t\r")) {
            const bool is_name = nwords == first;
            if (is_name) w += strspn(w, "-"); /* "--bits" is accepted as "bits" */
            size_t n = strlen(w) + 3;
            char *copy = malloc(n);
            if (!copy) {
                fprintf(stderr, "llmpress quantize: out of memory reading the recipe\n");
                return 1;
            }
            snprintf(copy, n, "%s%s", is_name ? "--" : "", w);
            words[nwords++] = copy;
        }
        if (nwords > first) {
            snprintf(label, sizeof label, "quantize: recipe %s, line %d", o->recipe, lineno);
            cli_args a = {nwords, first, words, label};
            rc = parse_flag(o, &a, true);
            if (rc == 0 && a.i + 1 < nwords)
                rc = cli_usage_error(&a, "'%s' takes no more than one value", words[first]);
        }
        line = next;
    }
    return rc;
}

static void free_recipe(char **words) {
    for (int i = 0; words && words[i]; i++) free(words[i]);
    free(words);
}

/* Load, quantize, save and report, with the parsed options. */
static int run_quantize(const qopts *o, const cli_args *a) {
    const char *model_dir = o->model_dir, *out = o->out, *calib_file = o->calib_file;
    const int64_t nsamples = o->nsamples, seqlen = o->seqlen, seed = o->seed, threads = o->threads;
    lp_quant_params qp = o->qp;
    const bool json = o->json, quiet = o->quiet;
    if (!model_dir || !out)
        return cli_usage_error(a, !model_dir ? "no MODEL directory given" : "no output directory: give -o OUT");
    const bool calibrated = qp.method != LP_METHOD_RTN || qp.clip || qp.awq_prescale;
    if (!calibrated && calib_file)
        return cli_usage_error(a, "--calib is for calibrated methods; plain rtn uses no calibration data "
                              "(rtn --clip does)");
    if (calibrated && !calib_file)
        return cli_usage_error(a, "--method %s%s needs calibration text: give --calib FILE",
                              lp_method_name(qp.method), qp.clip ? " --clip" : qp.awq_prescale ? " --awq-prescale" : "");
    if (lp_quant_params_check(&qp) != LP_OK) return cli_usage_error(a, "%s", lp_last_error());
    if (o->resume && !calibrated)
        return cli_usage_error(a, "--resume is for calibrated methods, which run block by block; plain rtn "
                              "takes seconds");
    lp_calib cal = {NULL, nsamples, seqlen};
    qp.calib = calib_file ? &cal : NULL;
    cli_set_threads((int)threads);

    lp_model *m = NULL;
    int32_t *windows = NULL;
    lp_quant_stats stats = {0};
    qp.stats = &stats;
    if (lp_model_load(model_dir, &m) != LP_OK) return cli_lib_error("quantize", NULL);
    if (lp_model_save_check(m, out) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", NULL);
    }
    if (calib_file && load_calibration(model_dir, calib_file, nsamples, seqlen, (uint64_t)seed, &windows) != 0) {
        lp_model_free(m);
        return 1;
    }
    cal.tokens = windows;
    qstate qs = {quiet || json, cli_now()};
    qp.progress = on_linear;
    qp.progress_ud = &qs;
    if (o->resume) {
        qp.resume_dir = o->resume;
        qp.interrupt = &g_interrupt;
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
    double t0 = cli_now();
    lp_status qst = lp_model_quantize(m, &qp);
    free(windows);
    if (o->resume) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
    }
    if (qst == LP_ERR_INTERRUPTED) {
        fprintf(stderr, "llmpress quantize: %s; the finished blocks are kept in %s: run the same command again "
                "to continue\n", lp_last_error(), o->resume);
        lp_model_free(m);
        return 130;
    }
    if (qst != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", NULL);
    }
    if (stats.resumed_blocks && !(quiet || json))
        fprintf(stderr, "[quantize] resumed: blocks 1..%lld restored from %s\n", (long long)stats.resumed_blocks,
                o->resume);
    double tq = cli_now() - t0;
    if (calibrated && !(quiet || json))
        fprintf(stderr, "[quantize] %.1fs: forward %.1fs, statistics %.1fs, factorization %.1fs, quantization %.1fs, "
                "scale search %.1fs, clip search %.1fs, method %.1fs; calibration activations and statistics "
                "%.1f MB\n", stats.total, stats.forward, stats.stats, stats.factorize, stats.quantize,
                stats.scale_search, stats.clip_search, stats.method, (double)stats.peak_activation_bytes / 1e6);
    if (lp_model_save(m, out) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", "saving");
    }
    if (o->resume && lp_resume_clear(o->resume) != LP_OK)
        fprintf(stderr, "llmpress quantize: warning: %s (the checkpoint %s is complete)\n", lp_last_error(), out);
    lp_model_size sz;
    lp_model_size_get(m, &sz);
    double bpw = 8.0 * (double)sz.linear_bytes / (double)sz.linear_params;
    if (json) {
        printf("{\"model\": ");
        cli_json_string(stdout, model_dir);
        printf(", \"out\": ");
        cli_json_string(stdout, out);
        printf(", \"method\": \"%s\", \"bits\": %d, \"group\": %d, \"sym\": %s, \"act_order\": %s, "
               "\"clip\": %s, \"awq_prescale\": %s, \"seconds\": %.3f, \"time\": {\"forward\": %.3f, "
               "\"statistics\": %.3f, \"factorization\": %.3f, \"quantization\": %.3f, \"scale_search\": %.3f, "
               "\"clip_search\": %.3f, \"method_specific\": %.3f}, \"peak_activation_bytes\": %zu, "
               "\"resumed_blocks\": %lld, \"linear_bits_per_weight\": %.4f, \"linear_bytes\": %lld, "
               "\"total_bytes\": %lld}\n",
               lp_method_name(qp.method), qp.bits, qp.group, qp.sym ? "true" : "false",
               qp.act_order ? "true" : "false", qp.clip ? "true" : "false", qp.awq_prescale ? "true" : "false", tq,
               stats.forward, stats.stats, stats.factorize, stats.quantize, stats.scale_search, stats.clip_search,
               stats.method, stats.peak_activation_bytes, (long long)stats.resumed_blocks, bpw, (long long)sz.linear_bytes,
               (long long)sz.total_bytes);
    } else {
        printf("wrote %s: %s, %.4f bits per weight in the decoder linears, %.2f MB in all (%.1f s)\n",
               out, sz.formats, bpw, (double)sz.total_bytes / 1e6, tq);
    }
    lp_model_free(m);
    return 0;
}

static qopts qopts_default(void) {
    return (qopts){.nsamples = 128, .seqlen = 512, .qp = lp_quant_default_params()};
}

int cmd_quantize(int argc, char **argv) {
    qopts o = qopts_default();
    cli_args a = {argc, 1, argv, "quantize"};
    for (; a.i < argc; a.i++) {
        int rc = parse_flag(&o, &a, false);
        if (rc) return rc < 0 ? 0 : rc;
    }
    char *rtext = NULL, **rwords = NULL;
    size_t rlen = 0;
    if (o.recipe) {
        /* the recipe first, then the command line again so that it wins */
        if (cli_read_text(o.recipe, &rtext, &rlen) != LP_OK) return cli_lib_error("quantize", "reading the recipe");
        const char *model_dir = o.model_dir, *out = o.out;
        qopts r = qopts_default();
        r.recipe = o.recipe;
        int rc = apply_recipe(&r, rtext, rlen, &rwords);
        for (a.i = 1; rc == 0 && a.i < argc; a.i++) rc = parse_flag(&r, &a, false);
        if (rc) {
            free_recipe(rwords);
            free(rtext);
            return rc < 0 ? 0 : rc;
        }
        r.model_dir = model_dir;
        r.out = out;
        o = r;
    }
    int rc = run_quantize(&o, &a);
    free_recipe(rwords);
    free(rtext);
    return rc;
}

