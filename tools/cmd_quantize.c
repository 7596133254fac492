/*
 * cmd_quantize.c - `llmpress quantize`: compress a checkpoint and save it.
 */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fixed part of --help; methods and their settings are generated from
 * the registry (print_help). */
static const char *const HELP_HEAD =
    "usage: llmpress quantize MODEL --method M [settings] [--calib FILE] [flags] -o OUT\n"
    "       llmpress quantize MODEL --recipe FILE [flags] -o OUT\n"
    "\n"
    "Compress the decoder linears (q,k,v,o,gate,up,down) of MODEL and write a\n"
    "compressed checkpoint directory OUT that `eval`, `run` and `info` read directly.\n"
    "  --method M      the method (default rtn); the methods:\n";

static const char *const HELP_TAIL =
    "composing:\n"
    "  --awq-prescale  fold AWQ's searched scales (and clipping) into each block, then compress\n"
    "                  it with --method (AWQ then GPTQ: --method gptq --awq-prescale); the awq\n"
    "                  settings above apply to that step\n"
    "  --recipe FILE   settings from a file, one per line as a flag without its dashes\n"
    "                  (\"method gptq\", \"bits 3\", \"awq-prescale\", \"clip\"; '#' comments);\n"
    "                  flags on the command line override it\n"
    "calibration:\n"
    "  --calib FILE    calibration text\n"
    "  --nsamples N    windows drawn at random offsets (default 128)\n"
    "  --seqlen L      tokens per window (default 512)\n"
    "  --seed S        seed for drawing the windows (default 0)\n"
    "embedding and head (left in 16 bits by default, as the papers do):\n"
    "  --embed-bits B  round the token embedding to B-bit asymmetric groups (2..8)\n"
    "  --head-bits B   the same for the LM head (a tied model has one tensor: give either)\n"
    "  --embed-group G columns per group for both (default 128; -1 per row)\n"
    "resuming (calibrated methods):\n"
    "  --resume DIR    keep each finished block and the calibration state in DIR; rerunning the\n"
    "                  same command continues after the last finished block. Ctrl-C stops cleanly\n"
    "                  after the current linear (awq: block); DIR's state files are removed once\n"
    "                  OUT is written\n"
    "output:\n"
    "  -o, --out DIR   output directory, written beside it and put in place whole (an earlier\n"
    "                  model there is replaced; one writer at a time)\n"
    "  --threads N     threads (default: all cores)\n"
    "  --json          print a JSON summary on stdout\n"
    "  --quiet         no progress on stderr\n"
    "\n"
    "example: llmpress quantize ../shared/assets/models/llama-25m --method gptq --bits 3 --group 128 \\\n"
    "           --calib ../shared/assets/text/corpus/calib.txt -o llama-25m-w3\n";

/* --help: the methods, then every setting once with the methods that take it. */
static void print_help(void) {
    fputs(HELP_HEAD, stdout);
    for (int i = 0; i < lp_method_count(); i++) {
        const lp_method *m = lp_method_at(i);
        printf("                  %-11s %s%s\n", lp_method_name(m), lp_method_help(m),
               lp_method_calibrated(m) ? " [--calib]" : "");
    }
    printf("settings (each applies to the methods listed after it):\n");
    for (int i = 0; i < lp_method_count(); i++) {
        for (int k = 0; lp_method_option(lp_method_at(i), k); k++) {
            const lp_option *o = lp_method_option(lp_method_at(i), k);
            bool seen = false; /* listed with an earlier method */
            for (int j = 0; j < i && !seen; j++) seen = lp_method_find_option(lp_method_at(j), o->name) != NULL;
            if (seen) continue;
            char flag[64];
            snprintf(flag, sizeof flag, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
            printf("  %-22s %s", flag, o->help);
            if (o->type == LP_OPT_INT) printf(" (default %.0f)", o->def);
            else if (o->type == LP_OPT_FLOAT) printf(" (default %g)", o->def);
            else if (o->type == LP_OPT_CHOICE) {
                char w[64];
                printf(" (default %s)", lp_option_choice(o, (int)o->def, w, sizeof w));
            }
            printf("\n  %-22s [", "");
            for (int j = i, first = 1; j < lp_method_count(); j++) {
                const lp_option *oj = lp_method_find_option(lp_method_at(j), o->name);
                if (!oj) continue;
                printf("%s%s", first ? "" : ", ", lp_method_name(lp_method_at(j)));
                if (oj->type == LP_OPT_CHOICE) printf(" %s", oj->arg);
                else if (oj->type != LP_OPT_BOOL) printf(" %.10g..%.10g", oj->min, oj->max);
                first = 0;
            }
            printf("]\n");
        }
    }
    fputs(HELP_TAIL, stdout);
}

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

/* Set by SIGINT/SIGTERM while a resumable run is going: the library stops
 * after the current linear and keeps the finished blocks. */
static volatile int g_interrupt;
static void on_signal(int sig) {
    (void)sig;
    g_interrupt = 1;
}

/* A method setting as given (flag name without dashes, value or NULL),
 * applied once the method is known. */
typedef struct {
    const char *name, *value;
} qset;

#define MAX_SETS 256

typedef struct {
    const char *model_dir, *out, *calib_file, *recipe, *resume, *method;
    int64_t nsamples, seqlen, seed, threads, embed_bits, head_bits, embed_group;
    bool json, quiet, awq_prescale;
    qset sets[MAX_SETS];
    int nsets;
} qopts;

/* The first registry option named `name` (any method), or NULL. */
static const lp_option *any_option(const char *name) {
    for (int i = 0; i < lp_method_count(); i++) {
        const lp_option *o = lp_method_find_option(lp_method_at(i), name);
        if (o) return o;
    }
    return NULL;
}

/* Parse the flag at a->argv[a->i] (advancing past its value). Returns 0 when
 * parsed, 2 after printing a usage error, -1 after printing --help. Recipe
 * lines (in_recipe) take the method's settings only: no MODEL, output,
 * nested recipe or output-format flags. Method settings come from the
 * registry's schemas; their values are checked as numbers here and against
 * the method's ranges once the method is known. */
static int parse_flag(qopts *o, cli_args *a, bool in_recipe) {
    const char *f = a->argv[a->i];
    const lp_option *opt = strncmp(f, "--", 2) ? NULL : any_option(f + 2);
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
        if (in_recipe) return cli_usage_error(a, "--help is not a recipe setting");
        print_help();
        return -1;
    } else if (!strcmp(f, "--method")) {
        if (!(o->method = cli_value(a))) return 2;
    } else if (opt) {
        const char *v = NULL;
        if (opt->type != LP_OPT_BOOL) {
            if (!(v = cli_value(a))) return 2;
            char *end = NULL;
            errno = 0;
            if (opt->type == LP_OPT_INT) (void)strtoll(v, &end, 10);
            else if (opt->type == LP_OPT_FLOAT) (void)strtod(v, &end);
            else end = (char *)v + strlen(v); /* a choice: checked by lp_settings_set */
            if (end == v || *end || errno)
                return cli_usage_error(a, "%s expects %s, got '%s'", f, opt->type == LP_OPT_INT ? "an integer" : "a number",
                                       v);
        }
        if (o->nsets == MAX_SETS) return cli_usage_error(a, "more than %d settings", MAX_SETS);
        o->sets[o->nsets++] = (qset){opt->name, v};
    } else if (!strcmp(f, "--awq-prescale")) {
        o->awq_prescale = true;
    } else if (!strcmp(f, "--calib")) {
        if (!(o->calib_file = cli_value(a))) return 2;
    } else if (!strcmp(f, "--nsamples")) {
        if (!cli_parse_i64(a, cli_value(a), 1, 1 << 20, &o->nsamples)) return 2;
    } else if (!strcmp(f, "--seqlen")) {
        if (!cli_parse_i64(a, cli_value(a), 2, 1 << 20, &o->seqlen)) return 2;
    } else if (!strcmp(f, "--seed")) {
        if (!cli_parse_i64(a, cli_value(a), 0, INT64_MAX, &o->seed)) return 2;
    } else if (!strcmp(f, "--threads")) {
        if (!cli_parse_i64(a, cli_value(a), 1, 1024, &o->threads)) return 2;
    } else if (!strcmp(f, "--embed-bits")) {
        if (!cli_parse_i64(a, cli_value(a), 2, 8, &o->embed_bits)) return 2;
    } else if (!strcmp(f, "--head-bits")) {
        if (!cli_parse_i64(a, cli_value(a), 2, 8, &o->head_bits)) return 2;
    } else if (!strcmp(f, "--embed-group")) {
        if (!cli_parse_i64(a, cli_value(a), -1, 1 << 30, &o->embed_group)) return 2;
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

/* The methods whose schema has `name`, comma-separated, into buf. */
static void owners(const char *name, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < lp_method_count() && k < n; i++)
        if (lp_method_find_option(lp_method_at(i), name))
            k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? ", " : "", lp_method_name(lp_method_at(i)));
}

/* Build the method's (and the prescale's) settings from the flags given, in
 * order: each setting goes to every one of the two that has it. */
static int make_settings(const qopts *o, const cli_args *a, lp_settings **method, lp_settings **prescale) {
    *method = *prescale = NULL;
    const char *mname = o->method ? o->method : "rtn";
    const lp_method *m = lp_method_find(mname);
    if (!m) {
        char list[256];
        size_t k = 0;
        for (int i = 0; i < lp_method_count() && k < sizeof list; i++)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", lp_method_name(lp_method_at(i)));
        return cli_usage_error(a, "--method '%s' is not available (available: %s)", mname, list);
    }
    if (lp_settings_init(m, method) != LP_OK) return cli_lib_error("quantize", NULL);
    if (o->awq_prescale && lp_settings_init(lp_method_find("awq"), prescale) != LP_OK)
        return cli_lib_error("quantize", NULL);
    for (int i = 0; i < o->nsets; i++) {
        const qset *q = &o->sets[i];
        const bool in_m = lp_method_find_option(m, q->name) != NULL;
        const bool in_p = *prescale && lp_method_find_option(lp_settings_method(*prescale), q->name);
        if (!in_m && !in_p) {
            char who[256];
            owners(q->name, who, sizeof who);
            return cli_usage_error(a, "--%s is not a setting of %s%s (it is one of %s)", q->name, mname,
                                   *prescale ? " or of awq (--awq-prescale)" : "", who);
        }
        if ((in_m && lp_settings_set(*method, q->name, q->value) != LP_OK) ||
            (in_p && lp_settings_set(*prescale, q->name, q->value) != LP_OK))
            return cli_usage_error(a, "%s", lp_last_error());
    }
    return 0;
}

/* Length of the printable character at s (n bytes left): 1 for printable
 * ASCII, 2..4 for a valid UTF-8 sequence that is not a C1 control
 * (U+0080..U+009F, which terminals act on like ESC); 0 for anything else. */
static size_t printable_len(const unsigned char *s, size_t n) {
    if (s[0] >= 0x20 && s[0] < 0x7f) return 1;
    const size_t len = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
                       : s[0] >= 0xf0 && s[0] <= 0xf4                                 ? 4
                                                                                       : 0;
    if (!len || len > n) return 0;
    uint32_t cp = s[0] & (0x7fu >> len); /* the lead byte's payload bits */
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    /* no overlong forms (0xc0/0xc1 are excluded above), surrogates or C1 controls */
    const bool ok = len == 2   ? cp >= 0xa0
                    : len == 3 ? cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff)
                               : cp >= 0x10000 && cp <= 0x10ffff;
    return ok ? len : 0;
}

/* A word of a recipe as a message may show it: printable characters as they
 * are, every other byte as \xNN (at most ~60 characters; "..." after). true
 * when nothing needed escaping. A binary file given as a recipe must not
 * send its control bytes to the terminal. */
static bool escape_word(const char *w, char *buf, size_t n) {
    const unsigned char *s = (const unsigned char *)w;
    const size_t len = strlen(w);
    size_t k = 0;
    bool clean = true;
    for (size_t i = 0; i < len;) {
        if (k + 8 >= n || k > 60) { /* shortened for the message; only bytes make it unclean */
            snprintf(buf + k, n - k, "...");
            while (clean && i < len) {
                const size_t c = printable_len(s + i, len - i);
                clean = c > 0;
                i += c;
            }
            return clean;
        }
        const size_t c = printable_len(s + i, len - i);
        if (c) {
            memcpy(buf + k, s + i, c);
            k += c;
            i += c;
        } else {
            k += (size_t)snprintf(buf + k, n - k, "\\x%02X", s[i++]);
            clean = false;
        }
    }
    buf[k] = '\0';
    return clean;
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
    /* a NUL would silently end a line (or the recipe) early: a recipe is text */
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        fprintf(stderr, "llmpress quantize: recipe %s: byte %lld is NUL; a recipe is a text file of settings, one "
                "per line (\"bits 4\")\n", o->recipe, (long long)(nul - text));
        return 2;
    }
    for (char *line = text; rc == 0 && line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        const int first = nwords;
        for (char *w = strtok(line, " \t\r"); w; w = strtok(NULL, " \t\r")) {
            char shown[96];
            if (!escape_word(w, shown, sizeof shown)) { /* never echo control bytes */
                fprintf(stderr, "llmpress quantize: recipe %s, line %d: '%s' holds bytes that are not printable "
                        "text (shown as \\xNN); a recipe is a text file of settings, one per line (\"bits 4\")\n",
                        o->recipe, lineno, shown);
                return 2;
            }
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

/* The settings as JSON members: ", \"bits\": 4, \"act_order\": false, ..." (dashes become underscores). */
static void print_settings_json(FILE *f, const lp_settings *s) {
    const lp_method *m = lp_settings_method(s);
    for (int k = 0; lp_method_option(m, k); k++) {
        const lp_option *o = lp_method_option(m, k);
        char key[64];
        snprintf(key, sizeof key, "%s", o->name);
        for (char *c = key; *c; c++) *c = *c == '-' ? '_' : *c;
        const double v = lp_settings_get(s, o->name);
        if (o->type == LP_OPT_BOOL) fprintf(f, ", \"%s\": %s", key, v != 0 ? "true" : "false");
        else if (o->type == LP_OPT_INT) fprintf(f, ", \"%s\": %.0f", key, v);
        else if (o->type == LP_OPT_CHOICE) {
            char w[64];
            fprintf(f, ", \"%s\": \"%s\"", key, lp_option_choice(o, (int)v, w, sizeof w));
        }
        else fprintf(f, ", \"%s\": %.17g", key, v);
    }
}

/* What the checkpoint records of how it was made (lp_model_set_provenance):
 * {"method", its settings, "awq_prescale", "calib": {...} or null,
 * "seconds"}; `llmpress eval` reports it. */
static bool set_provenance(lp_model *m, const qopts *o, const char *mname, const lp_settings *ms, bool prescale,
                           double secs) {
    const char *calib_file = o->calib_file;
    const int64_t nsamples = o->nsamples, seqlen = o->seqlen, seed = o->seed;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return false;
    fprintf(f, "{\"method\": \"%s\"", mname);
    print_settings_json(f, ms);
    fprintf(f, ", \"awq_prescale\": %s", prescale ? "true" : "false");
    if (o->embed_bits || o->head_bits)
        fprintf(f, ", \"embed_bits\": %lld, \"head_bits\": %lld, \"embed_group\": %lld", (long long)o->embed_bits,
                (long long)o->head_bits, (long long)(o->embed_group ? o->embed_group : 128));
    fputs(", \"calib\": ", f);
    if (calib_file) {
        const char *base = strrchr(calib_file, '/') ? strrchr(calib_file, '/') + 1 : calib_file;
        fputs("{\"file\": ", f);
        cli_json_string(f, base);
        fprintf(f, ", \"nsamples\": %lld, \"seqlen\": %lld, \"seed\": %lld}", (long long)nsamples,
                (long long)seqlen, (long long)seed);
    } else {
        fputs("null", f);
    }
    fprintf(f, ", \"seconds\": %.3f}", secs);
    const bool ok = fclose(f) == 0 && lp_model_set_provenance(m, buf) == LP_OK;
    free(buf);
    return ok;
}

static int run_with(const qopts *o, const cli_args *a, lp_settings *ms, lp_settings *ps);

/* The settings from the flags, then run_with. */
static int run_quantize(const qopts *o, const cli_args *a) {
    if (!o->model_dir || !o->out)
        return cli_usage_error(a, !o->model_dir ? "no MODEL directory given" : "no output directory: give -o OUT");
    lp_settings *ms = NULL, *ps = NULL;
    int rc = make_settings(o, a, &ms, &ps);
    if (rc == 0) rc = run_with(o, a, ms, ps);
    lp_settings_free(ms);
    lp_settings_free(ps);
    return rc;
}

/* Load, quantize, save and report, with the settings made. */
static int run_with(const qopts *o, const cli_args *a, lp_settings *ms, lp_settings *ps) {
    const char *model_dir = o->model_dir, *out = o->out, *calib_file = o->calib_file;
    const int64_t nsamples = o->nsamples, seqlen = o->seqlen, seed = o->seed, threads = o->threads;
    const bool json = o->json, quiet = o->quiet;
    lp_quant_params qp = {.method = ms, .prescale = ps};
    const char *mname = lp_method_name(lp_settings_method(ms));
    if (lp_quant_params_check(&qp) != LP_OK) return cli_usage_error(a, "%s", lp_last_error());
    const bool calibrated = lp_quant_needs_calib(&qp);
    if (!calibrated && calib_file)
        return cli_usage_error(a, "--calib is for calibrated methods; %s with these settings uses no calibration "
                              "data", mname);
    if (calibrated && !calib_file)
        return cli_usage_error(a, "--method %s%s%s needs calibration text: give --calib FILE", mname,
                              lp_settings_get(ms, "clip") == 1 ? " --clip" : "", ps ? " --awq-prescale" : "");
    if (o->resume && !calibrated)
        return cli_usage_error(a, "--resume is for calibrated methods, which run block by block; %s without "
                              "calibration takes seconds", mname);
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
    /* the library estimates what the run will hold and refuses what cannot fit,
     * before the text is tokenized and the windows are drawn */
    size_t need = 0;
    if (lp_quant_memory_check(m, &qp, &need) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", NULL);
    }
    if (need && !(quiet || json))
        fprintf(stderr, "[quantize] calibration on %lld x %lld tokens will hold about %.1f MB\n", (long long)nsamples,
                (long long)seqlen, (double)need / 1e6);
    if (calib_file && cli_load_calibration("quantize", model_dir, calib_file, nsamples, seqlen, (uint64_t)seed, &windows) != 0) {
        lp_model_free(m);
        return 1;
    }
    cal.tokens = windows;
    qstate qs = {quiet || json, cli_now()};
    qp.progress = on_linear;
    qp.progress_ud = &qs;
    void (*old_int)(int) = SIG_DFL, (*old_term)(int) = SIG_DFL;
    if (o->resume) {
        qp.resume_dir = o->resume;
        qp.interrupt = &g_interrupt;
        old_int = signal(SIGINT, on_signal);
        old_term = signal(SIGTERM, on_signal);
    }
    double t0 = cli_now();
    lp_status qst = lp_model_quantize(m, &qp);
    free(windows);
    if (o->resume) { /* back to main's: a signal while saving removes the temporaries */
        signal(SIGINT, old_int);
        signal(SIGTERM, old_term);
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
    if ((o->embed_bits || o->head_bits) &&
        lp_model_quantize_embeddings(m, (int)o->embed_bits, (int)o->head_bits,
                                     o->embed_group ? (int)o->embed_group : 128) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", "rounding the embedding / head");
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
    if (!set_provenance(m, o, mname, ms, ps != NULL, tq)) {
        lp_model_free(m);
        fprintf(stderr, "llmpress quantize: out of memory\n");
        return 1;
    }
    if (lp_model_save(m, out) != LP_OK) {
        lp_model_free(m);
        return cli_lib_error("quantize", "saving");
    }
    if (o->resume && lp_resume_clear(o->resume) != LP_OK)
        fprintf(stderr, "llmpress quantize: warning: %s (the checkpoint %s is complete)\n", lp_last_error(), out);
    lp_model_size sz;
    lp_model_size_get(m, &sz);
    double bpw = 8.0 * (double)sz.linear_bytes / (double)sz.linear_params;
    double pbpw = sz.linear_paper_bits / (double)sz.linear_params;
    if (json) {
        printf("{\"model\": ");
        cli_json_string(stdout, model_dir);
        printf(", \"out\": ");
        cli_json_string(stdout, out);
        printf(", \"method\": \"%s\"", mname);
        print_settings_json(stdout, ms);
        /* "clip" is always reported (scripts read it): false for methods without the search */
        if (!lp_method_find_option(lp_settings_method(ms), "clip")) printf(", \"clip\": false");
        printf(", \"awq_prescale\": %s, \"seconds\": %.3f, \"time\": {\"forward\": %.3f, "
               "\"statistics\": %.3f, \"factorization\": %.3f, \"quantization\": %.3f, \"scale_search\": %.3f, "
               "\"clip_search\": %.3f, \"method_specific\": %.3f}, \"peak_activation_bytes\": %zu, "
               "\"resumed_blocks\": %lld, \"linear_bits_per_weight\": %.4f, "
               "\"linear_paper_bits_per_weight\": %.4f, \"linear_params\": %lld, \"linear_stored_params\": %lld, "
               "\"linear_kept_fraction\": %.6f, \"linear_bytes\": %lld, \"total_bytes\": %lld}\n",
               ps ? "true" : "false", tq,
               stats.forward, stats.stats, stats.factorize, stats.quantize, stats.scale_search, stats.clip_search,
               stats.method, stats.peak_activation_bytes, (long long)stats.resumed_blocks, bpw, pbpw,
               (long long)sz.linear_params, (long long)sz.linear_stored_params,
               (double)sz.linear_stored_params / (double)sz.linear_params, (long long)sz.linear_bytes,
               (long long)sz.total_bytes);
    } else {
        char paper[64] = "";
        if (fabs(pbpw - bpw) > 1e-9) snprintf(paper, sizeof paper, " (%.4f as the method's paper counts)", pbpw);
        char kept[64] = "";
        if (sz.linear_stored_params != sz.linear_params)
            snprintf(kept, sizeof kept, ", %.4f of their weights kept",
                     (double)sz.linear_stored_params / (double)sz.linear_params);
        printf("wrote %s: %s, %.4f bits per weight in the decoder linears%s%s, %.2f MB in all (%.1f s)\n",
               out, sz.formats, bpw, paper, kept, (double)sz.total_bytes / 1e6, tq);
    }
    lp_model_free(m);
    return 0;
}

static qopts qopts_default(void) { return (qopts){.nsamples = 128, .seqlen = 512}; }

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

