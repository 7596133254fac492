/*
 * suite_grid.c - reading a grid file for `llmpress suite` (suite_grid.h).
 *
 * What: the grid's text -> models, calibration, evaluation settings and the
 *       expanded cells, every problem reported as "GRID:LINE: ..." (exit 2)
 *       before any work.
 * Why:  a grid describes hours of runs; each one must be known to start
 *       before the first does (a typo in "act-ordr" or "bits 9" would
 *       otherwise fail cell 17 after cell 16's hour).
 * Design: two passes. The first reads lines: top-level keys are parsed and
 *       checked at once (numbers in range, paths resolved against the grid's
 *       directory and required to exist); a section's lines are kept raw.
 *       The second expands each section (cross product over its multi-valued
 *       lines) and checks every resulting cell against the method registry
 *       exactly as `quantize --recipe` would: the method exists, each setting
 *       is the method's (or AWQ's with awq-prescale), values are in range,
 *       the composition is allowed, calibration text is there when needed.
 *       Cell ids are the section's name and the varying values ("gptq-bits3")
 *       and must be unique, since they name the cells' directories.
 */
#include "suite_grid.h"

#include "cli.h"
#include "core/fileio.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_CELLS 4096  /* per grid: a cross product beyond this is a typo */
#define MAX_VALUES 32   /* per line */
#define MAX_LINES 64    /* per section */

/* A section's line as read: "name v1 v2 ..." */
typedef struct {
    char *name;
    char *values[MAX_VALUES];
    int n, line;
} raw_line;

typedef struct {
    char *name;
    int line;
    raw_line lines[MAX_LINES];
    int nlines;
} raw_section;

/* The grid-wide keys and how many values each takes. Calibration keys may
 * also appear in a section (an override for its cells). */
static const struct {
    const char *name;
    int min, max; /* values */
    bool in_section;
    const char *help;
} TOP[] = {
    {"model", 1, 2, false, "model PATH [NAME]"},
    {"calib", 1, 1, true, "calib FILE"},
    {"nsamples", 1, MAX_VALUES, true, "nsamples N"},
    {"seqlen", 1, MAX_VALUES, true, "seqlen N"},
    {"seed", 1, MAX_VALUES, true, "seed N"},
    {"ppl", 1, MAX_VALUES, false, "ppl FILE [FILE ...]"},
    {"ctx", 1, 1, false, "ctx N"},
    {"windows", 1, 1, false, "windows N"},
    {"protocol", 1, 1, false, "protocol gptq|llamacpp"},
    {"kl", 0, 0, false, "kl"},
    {"tasks", 1, 1, false, "tasks LIST"},
    {"tasks-dir", 1, 1, false, "tasks-dir DIR"},
    {"limit", 1, 1, false, "limit N"},
    {"threads", 1, 1, false, "threads N"},
    {"eval-flags", 1, MAX_VALUES, false, "eval-flags --FLAG [VALUE] ..."},
};
#define N_TOP ((int)(sizeof TOP / sizeof *TOP))

static int top_find(const char *name) {
    for (int i = 0; i < N_TOP; i++)
        if (!strcmp(TOP[i].name, name)) return i;
    return -1;
}

static bool is_calib_key(const char *name) {
    return !strcmp(name, "calib") || !strcmp(name, "nsamples") || !strcmp(name, "seqlen") || !strcmp(name, "seed");
}

/* ---- errors and memory ---- */

static int gerr(const suite_grid *g, int line, const char *fmt, ...) {
    va_list ap;
    if (line > 0) fprintf(stderr, "llmpress suite: %s:%d: ", g->path, line);
    else fprintf(stderr, "llmpress suite: %s: ", g->path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

/* Take ownership of p (freed by suite_grid_free); NULL when p is NULL or the
 * list cannot grow (p is freed then). */
static void *own(suite_grid *g, void *p) {
    if (!p) return NULL;
    if (g->nowned == g->capowned) {
        int cap = g->capowned ? 2 * g->capowned : 64;
        char **o = realloc(g->owned, (size_t)cap * sizeof *o);
        if (!o) {
            free(p);
            return NULL;
        }
        g->owned = o;
        g->capowned = cap;
    }
    g->owned[g->nowned++] = p;
    return p;
}

static char *gdup(suite_grid *g, const char *s) { return own(g, strdup(s)); }

static int oom(void) {
    fprintf(stderr, "llmpress suite: out of memory reading the grid\n");
    return 1;
}

void suite_grid_free(suite_grid *g) {
    if (!g) return;
    for (int i = 0; i < g->nowned; i++) free(g->owned[i]);
    free(g->owned);
    free(g->models); /* the arrays (their strings are owned) */
    free(g->ppl);
    free(g->eval_flags);
    free(g->cells);
    free(g->path);
    free(g->text);
    memset(g, 0, sizeof *g);
}

void suite_safe_name(const char *s, char *out, int n) {
    int k = 0;
    for (; *s && k < n - 1; s++, k++) {
        const char c = *s;
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                        c == '_' || c == '+' || (c == '.' && k > 0);
        out[k] = ok ? c : '_';
    }
    out[k] = '\0';
}

/* ---- values ---- */

static bool parse_int(const suite_grid *g, int line, const char *key, const char *s, int64_t lo, int64_t hi,
                      int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        gerr(g, line, "'%s' expects an integer in [%lld, %lld], got '%s'", key, (long long)lo, (long long)hi, s);
        return false;
    }
    *out = v;
    return true;
}

/* The range of a numeric calibration or evaluation key. */
static void int_range(const char *key, int64_t *lo, int64_t *hi) {
    *lo = 1;
    *hi = INT64_MAX;
    if (!strcmp(key, "nsamples")) *hi = 1 << 20;
    else if (!strcmp(key, "seqlen") || !strcmp(key, "ctx")) *lo = 2, *hi = 1 << 20;
    else if (!strcmp(key, "seed")) *lo = 0;
    else if (!strcmp(key, "threads")) *hi = 1024;
}

/* The directory holding the grid file ("." when it has none), malloc'd. */
static char *grid_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

/* A path from the grid, relative to the grid's directory, resolved to an
 * absolute one that must exist: a directory (want_dir; with a config.json
 * when `model`) or a regular file. NULL after printing the problem. */
static const char *resolve(suite_grid *g, int line, const char *key, const char *value, bool want_dir,
                           bool model) {
    char *dir = grid_dir(g->path);
    char *joined = dir ? lp_path_join(dir, value) : NULL;
    free(dir);
    if (!joined) return (oom(), NULL);
    char *abs = realpath(joined, NULL);
    if (!abs) {
        const int e = errno;
        gerr(g, line, "%s '%s': %s%s%s (a relative path is taken from the grid's directory)", key, value,
             value[0] == '/' ? "" : joined, value[0] == '/' ? "" : ": ", strerror(e));
        free(joined);
        return NULL;
    }
    free(joined);
    struct stat st;
    const bool ok = stat(abs, &st) == 0 && (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
    if (!ok) {
        gerr(g, line, "%s '%s': %s is not a %s", key, value, abs, want_dir ? "directory" : "regular file");
        free(abs);
        return NULL;
    }
    if (model) {
        char *cfg = lp_path_join(abs, "config.json");
        const bool has = cfg && lp_file_exists(cfg);
        free(cfg);
        if (!has) {
            gerr(g, line, "model '%s': %s has no config.json (a model is a Hugging Face checkpoint directory)", value,
                 abs);
            free(abs);
            return NULL;
        }
    }
    return own(g, abs);
}

/* ---- the text ---- */

/* The first byte that makes the text not UTF-8 text (NUL, a control other
 * than tab/CR/LF, DEL, a bad sequence): its offset, or -1 when clean. */
static long long first_non_text(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const unsigned char c = s[i];
        if (c == '\t' || c == '\n' || c == '\r' || (c >= 0x20 && c < 0x7f)) {
            i++;
            continue;
        }
        const size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (!len || i + len > n) return (long long)i;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return (long long)i;
        i += len;
    }
    return -1;
}

/* A top-level line: checked and stored at once. */
static int top_line(suite_grid *g, int k, char **w, int n, int line, int *seen) {
    const char *key = TOP[k].name;
    if (n < TOP[k].min || n > TOP[k].max) {
        if (TOP[k].max == 0) return gerr(g, line, "'%s' is a flag: it takes no value", key);
        return gerr(g, line, "'%s' takes %s value%s (%s), got %d", key,
                    TOP[k].min == TOP[k].max ? "one" : TOP[k].max == 2 ? "one or two" : "one or more",
                    TOP[k].max == 1 ? "" : "s", TOP[k].help, n);
    }
    /* single-valued keys once; model, ppl and eval-flags accumulate */
    const bool repeatable = !strcmp(key, "model") || !strcmp(key, "ppl") || !strcmp(key, "eval-flags");
    if (!repeatable && seen[k]) return gerr(g, line, "'%s' is set twice (first at line %d)", key, seen[k]);
    seen[k] = line;
    if (!strcmp(key, "model")) {
        suite_model *m = realloc(g->models, (size_t)(g->nmodels + 1) * sizeof *m);
        if (!m) return oom();
        g->models = m;
        const char *path = resolve(g, line, "model", w[0], true, true);
        if (!path) return 2;
        /* the name: the second word, else the directory's own name as written */
        char base[256], name[128];
        snprintf(base, sizeof base, "%s", w[0]);
        for (size_t L = strlen(base); L > 1 && base[L - 1] == '/'; L--) base[L - 1] = '\0';
        const char *b = strrchr(base, '/') ? strrchr(base, '/') + 1 : base;
        if (!strcmp(b, ".") || !strcmp(b, "..") || !*b) b = strrchr(path, '/') + 1;
        suite_safe_name(n == 2 ? w[1] : b, name, sizeof name);
        if (!*name) return gerr(g, line, "model '%s': give it a name: 'model PATH NAME'", w[0]);
        for (int i = 0; i < g->nmodels; i++)
            if (!strcmp(g->models[i].name, name))
                return gerr(g, line, "model name '%s' is also the name of line %d's model; name one: "
                            "'model PATH NAME'", name, g->models[i].line);
        const char *nm = gdup(g, name);
        if (!nm) return oom();
        g->models[g->nmodels++] = (suite_model){path, nm, line};
    } else if (is_calib_key(key)) {
        /* the caller keeps the grid-wide calibration: it is each cell's default */
    } else if (!strcmp(key, "ppl")) {
        if (g->nppl + n > 32) return gerr(g, line, "at most 32 'ppl' files (llmpress eval's limit)");
        const char **p = realloc(g->ppl, (size_t)(g->nppl + n) * sizeof *p);
        if (!p) return oom();
        g->ppl = p;
        for (int i = 0; i < n; i++)
            if (!(g->ppl[g->nppl++] = resolve(g, line, "ppl", w[i], false, false))) return 2;
    } else if (!strcmp(key, "kl")) {
        g->kl = true;
    } else if (!strcmp(key, "protocol")) {
        if (strcmp(w[0], "gptq") && strcmp(w[0], "llamacpp"))
            return gerr(g, line, "'protocol' must be gptq or llamacpp, got '%s'", w[0]);
        if (!(g->protocol = gdup(g, w[0]))) return oom();
    } else if (!strcmp(key, "tasks")) {
        if (!(g->tasks = gdup(g, w[0]))) return oom();
    } else if (!strcmp(key, "tasks-dir")) {
        if (!(g->tasks_dir = resolve(g, line, "tasks-dir", w[0], true, false))) return 2;
    } else if (!strcmp(key, "eval-flags")) {
        const char **f = realloc(g->eval_flags, (size_t)(g->neval_flags + n) * sizeof *f);
        if (!f) return oom();
        g->eval_flags = f;
        for (int i = 0; i < n; i++)
            if (!(g->eval_flags[g->neval_flags++] = gdup(g, w[i]))) return oom();
    } else { /* ctx, windows, limit, threads */
        int64_t lo, hi, v;
        int_range(key, &lo, &hi);
        if (!parse_int(g, line, key, w[0], lo, hi, &v)) return 2;
        if (!strcmp(key, "ctx")) g->ctx = v;
        else if (!strcmp(key, "windows")) g->windows = v;
        else if (!strcmp(key, "limit")) g->limit = v;
        else g->threads = v;
    }
    return 0;
}

/* ---- cells ---- */

/* The methods whose schema has `name`, comma-separated. */
static void owners(const char *name, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < lp_method_count() && k < n; i++)
        if (lp_method_find_option(lp_method_at(i), name))
            k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? ", " : "", lp_method_name(lp_method_at(i)));
}

/* A line of the section by name, or NULL. */
static const raw_line *sec_find(const raw_section *s, const char *name) {
    for (int i = 0; i < s->nlines; i++)
        if (!strcmp(s->lines[i].name, name)) return &s->lines[i];
    return NULL;
}

/* One cell of section s with value pick[i] of each line i: its settings
 * checked against the registry, stored in g->cells. */
static int make_cell(suite_grid *g, const raw_section *s, const int *pick, const char *calib_default,
                     const int64_t *cal_default, const bool *cal_given) {
    suite_cell c = {.section = s->name, .line = s->line, .calib = calib_default};
    /* the id: the section and the value of every line that varies */
    char id[256];
    int k = snprintf(id, sizeof id, "%s", s->name);
    for (int i = 0; i < s->nlines && k < (int)sizeof id; i++) {
        const raw_line *l = &s->lines[i];
        if (l->n < 2) continue;
        char v[96];
        suite_safe_name(l->values[pick[i]], v, sizeof v);
        k += snprintf(id + k, sizeof id - (size_t)k, "-%s%s", strcmp(l->name, "method") ? l->name : "", v);
    }
    if (k >= (int)sizeof id) return gerr(g, s->line, "[%s]: the cell id '%.60s...' is too long", s->name, id);
    for (int i = 0; i < g->ncells; i++)
        if (!strcmp(g->cells[i].id, id))
            return gerr(g, s->line, "cell id '%s' is also made by the section at line %d; rename a section", id,
                        g->cells[i].line);
    if (!(c.id = gdup(g, id))) return oom();

    int64_t cal[3] = {cal_default[0], cal_default[1], cal_default[2]};
    bool has_seed = cal_given[2];
    const raw_line *ml = sec_find(s, "method");
    int nsets = 0;
    suite_setting *sets = own(g, calloc((size_t)s->nlines + 1, sizeof *sets));
    if (!sets) return oom();
    bool prescale = false;
    for (int i = 0; i < s->nlines; i++) {
        const raw_line *l = &s->lines[i];
        const char *v = l->n ? l->values[pick[i]] : NULL;
        if (!strcmp(l->name, "method")) continue;
        if (!strcmp(l->name, "calib")) {
            if (!(c.calib = resolve(g, l->line, "calib", v, false, false))) return 2;
        } else if (is_calib_key(l->name)) {
            const int j = !strcmp(l->name, "nsamples") ? 0 : !strcmp(l->name, "seqlen") ? 1 : 2;
            int64_t lo, hi;
            int_range(l->name, &lo, &hi);
            if (!parse_int(g, l->line, l->name, v, lo, hi, &cal[j])) return 2;
            if (j == 2) has_seed = true;
        } else {
            if (!strcmp(l->name, "awq-prescale")) {
                if (l->n) return gerr(g, l->line, "'awq-prescale' is a flag: it takes no value");
                prescale = true;
            }
            sets[nsets++] = (suite_setting){l->name, v, l->line};
        }
    }
    c.sets = sets;
    c.nsets = nsets;
    c.nsamples = cal[0];
    c.seqlen = cal[1];
    c.seed = cal[2];
    c.has_seed = has_seed;
    if (!ml) {
        if (nsets)
            return gerr(g, sets[0].line, "[%s] has settings but no 'method' line; a section without settings is the "
                        "uncompressed model", s->name);
    } else {
        c.method = ml->values[pick[ml - s->lines]];
        const lp_method *m = lp_method_find(c.method);
        if (!m) {
            char list[512];
            size_t n = 0;
            for (int i = 0; i < lp_method_count() && n < sizeof list; i++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? ", " : "",
                                      lp_method_name(lp_method_at(i)));
            return gerr(g, ml->line, "method '%s' is not available (available: %s)", c.method, list);
        }
        lp_settings *ms = NULL, *ps = NULL;
        int rc = 0;
        if (lp_settings_init(m, &ms) != LP_OK || (prescale && lp_settings_init(lp_method_find("awq"), &ps) != LP_OK))
            rc = oom();
        for (int i = 0; rc == 0 && i < nsets; i++) {
            const suite_setting *q = &sets[i];
            if (!strcmp(q->name, "awq-prescale")) continue;
            const lp_option *om = lp_method_find_option(m, q->name);
            const lp_option *op = ps ? lp_method_find_option(lp_settings_method(ps), q->name) : NULL;
            const lp_option *o = om ? om : op;
            if (!o) {
                char who[256];
                owners(q->name, who, sizeof who);
                rc = *who ? gerr(g, q->line, "'%s' is not a setting of %s%s (it is one of %s)", q->name, c.method,
                                 ps ? " or of awq (awq-prescale)" : "", who)
                          : gerr(g, q->line, "unknown setting '%s' (grid-wide settings: model, calib, nsamples, "
                                 "seqlen, seed, ppl, ctx, windows, protocol, kl, tasks, tasks-dir, limit, threads, "
                                 "eval-flags; a section holds the method's settings: see `llmpress quantize --help`)",
                                 q->name);
            } else if (o->type == LP_OPT_BOOL && q->value) {
                rc = gerr(g, q->line, "'%s' is a flag: it takes no value (leave the line out to turn it off)",
                          q->name);
            } else if (o->type != LP_OPT_BOOL && !q->value) {
                rc = gerr(g, q->line, "'%s' needs a value", q->name);
            } else if ((om && lp_settings_set(ms, q->name, q->value) != LP_OK) ||
                       (op && lp_settings_set(ps, q->name, q->value) != LP_OK)) {
                rc = gerr(g, q->line, "%s", lp_last_error());
            }
        }
        if (rc == 0) {
            lp_quant_params qp = {.method = ms, .prescale = ps};
            if (lp_quant_params_check(&qp) != LP_OK) rc = gerr(g, s->line, "[%s] cell %s: %s", s->name, id,
                                                               lp_last_error());
            c.calibrated = lp_quant_needs_calib(&qp);
            /* ASVD and SVD-LLM cannot resume (the pipeline refuses --resume) */
            c.resumable = c.calibrated && lp_method_resumable(m);
        }
        lp_settings_free(ms);
        lp_settings_free(ps);
        if (rc) return rc;
        if (c.calibrated && !c.calib)
            return gerr(g, s->line, "cell %s: %s%s needs calibration text: add 'calib FILE' above the first section "
                        "(or in this one)", id, c.method, prescale ? " with awq-prescale" : "");
    }
    if (!c.calibrated) c.calib = NULL; /* quantize refuses --calib for a method that does not calibrate */
    if (g->ncells == MAX_CELLS) return gerr(g, s->line, "more than %d cells: is a line's list of values a typo?",
                                            MAX_CELLS);
    suite_cell *cells = realloc(g->cells, (size_t)(g->ncells + 1) * sizeof *cells);
    if (!cells) return oom();
    g->cells = cells;
    g->cells[g->ncells++] = c;
    return 0;
}

/* Every cell of section s: the cross product over its multi-valued lines. */
static int expand(suite_grid *g, const raw_section *s, const char *calib, const int64_t *cal, const bool *given) {
    int pick[MAX_LINES] = {0};
    for (;;) {
        int rc = make_cell(g, s, pick, calib, cal, given);
        if (rc) return rc;
        /* next combination: the last varying line turns fastest */
        int i = s->nlines - 1;
        for (; i >= 0; i--) {
            if (s->lines[i].n < 2) continue;
            if (++pick[i] < s->lines[i].n) break;
            pick[i] = 0;
        }
        if (i < 0) return 0;
    }
}

/* ---- the file ---- */

int suite_grid_load(const char *path, suite_grid *g) {
    memset(g, 0, sizeof *g);
    if (!(g->path = strdup(path))) return oom();
    if (lp_is_dir(path)) return gerr(g, 0, "is a directory; a grid is a text file (see `llmpress suite --help`)");
    size_t len = 0;
    if (lp_read_file(path, &g->text, &len) != LP_OK) {
        fprintf(stderr, "llmpress suite: reading the grid: %s\n", lp_last_error());
        return 2;
    }
    const long long bad = first_non_text((const unsigned char *)g->text, len);
    if (bad >= 0) {
        int line = 1;
        for (long long i = 0; i < bad; i++) line += g->text[i] == '\n';
        return gerr(g, line, "byte %lld (0x%02X) is not text; a grid is a text file of settings, one per line "
                    "(\"model PATH\", \"[gptq]\", \"bits 4 3\")", bad, (unsigned char)g->text[bad]);
    }
    char *work = own(g, strdup(g->text));
    raw_section *secs = NULL;
    int nsecs = 0, rc = 0, seen[N_TOP] = {0};
    if (!work) return oom();
    /* grid-wide calibration, as given (0 = quantize's default) */
    const char *calib = NULL;
    int64_t cal[3] = {0, 0, 0};
    bool given[3] = {false, false, false};
    int lineno = 0;
    for (char *line = work; rc == 0 && line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char *w[MAX_VALUES + 2], *save = NULL;
        int n = 0;
        for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
            if (n == MAX_VALUES + 1) {
                rc = gerr(g, lineno, "more than %d values on one line", MAX_VALUES);
                break;
            }
            w[n++] = t;
        }
        line = next;
        if (rc || n == 0) continue;
        if (w[0][0] == '[') { /* a section */
            const size_t L = strlen(w[0]);
            char name[96];
            if (n > 1 || L < 3 || w[0][L - 1] != ']') {
                rc = gerr(g, lineno, "a section line is '[name]' alone, got '%s%s'", w[0], n > 1 ? " ..." : "");
                break;
            }
            w[0][L - 1] = '\0';
            suite_safe_name(w[0] + 1, name, sizeof name);
            if (strcmp(name, w[0] + 1) || L - 2 > 64) {
                rc = gerr(g, lineno, "section name '%s': use up to 64 of A-Z a-z 0-9 . _ + - (not starting with "
                          "'.'); it names the cell's directory", w[0] + 1);
                break;
            }
            for (int i = 0; i < nsecs; i++)
                if (!strcmp(secs[i].name, name)) rc = gerr(g, lineno, "section [%s] is also at line %d", name,
                                                            secs[i].line);
            if (rc) break;
            raw_section *s = realloc(secs, (size_t)(nsecs + 1) * sizeof *s);
            if (!s) {
                rc = oom();
                break;
            }
            secs = s;
            memset(&secs[nsecs], 0, sizeof *secs);
            secs[nsecs].name = w[0] + 1;
            secs[nsecs].line = lineno;
            nsecs++;
            continue;
        }
        char *key = w[0] + strspn(w[0], "-"); /* "--bits" is accepted as "bits", as in recipes */
        const int k = top_find(key);
        if (nsecs == 0) { /* grid-wide */
            if (k < 0) {
                char who[256];
                owners(key, who, sizeof who);
                if (!strcmp(key, "method") || !strcmp(key, "awq-prescale") || *who)
                    rc = gerr(g, lineno, "'%s' is a method setting: put it in a section ('[name]' then its "
                              "settings, one cell per section)", key);
                else
                    rc = gerr(g, lineno, "unknown grid setting '%s' (grid-wide: model, calib, nsamples, seqlen, "
                              "seed, ppl, ctx, windows, protocol, kl, tasks, tasks-dir, limit, threads, "
                              "eval-flags; then [sections] of method settings)", key);
                break;
            }
            if (is_calib_key(key) && n - 1 > 1) {
                rc = gerr(g, lineno, "'%s' takes one value above the sections (several values go in a section, "
                          "where they make one cell each)", key);
                break;
            }
            rc = top_line(g, k, w + 1, n - 1, lineno, seen);
            if (rc) break;
            if (!strcmp(key, "calib") && !(calib = resolve(g, lineno, "calib", w[1], false, false))) rc = 2;
            else if (is_calib_key(key) && strcmp(key, "calib")) {
                const int j = !strcmp(key, "nsamples") ? 0 : !strcmp(key, "seqlen") ? 1 : 2;
                int64_t lo, hi;
                int_range(key, &lo, &hi);
                if (!parse_int(g, lineno, key, w[1], lo, hi, &cal[j])) rc = 2;
                given[j] = true;
            }
            continue;
        }
        /* inside a section: method settings (and calibration overrides) */
        raw_section *s = &secs[nsecs - 1];
        if (k >= 0 && !TOP[k].in_section) {
            rc = gerr(g, lineno, "'%s' is a grid-wide setting: put it above the first section (line %d)", key,
                      secs[0].line);
            break;
        }
        if (!*key) {
            rc = gerr(g, lineno, "'%s' is not a setting", w[0]);
            break;
        }
        const raw_line *dup = sec_find(s, key);
        if (dup) {
            rc = gerr(g, lineno, "'%s' is set twice in [%s] (first at line %d); several values go on one line "
                      "(\"bits 4 3 2\")", key, s->name, dup->line);
            break;
        }
        if (s->nlines == MAX_LINES) {
            rc = gerr(g, lineno, "more than %d lines in [%s]", MAX_LINES, s->name);
            break;
        }
        if (!strcmp(key, "method") && n == 1) {
            rc = gerr(g, lineno, "'method' needs a value (method rtn, method gptq, ...)");
            break;
        }
        if (!strcmp(key, "calib") && n > 2) {
            rc = gerr(g, lineno, "'calib' takes one file");
            break;
        }
        if (is_calib_key(key) && n == 1) {
            rc = gerr(g, lineno, "'%s' needs a value", key);
            break;
        }
        raw_line *l = &s->lines[s->nlines++];
        l->name = key;
        l->n = n - 1;
        l->line = lineno;
        for (int i = 1; i < n; i++) l->values[i - 1] = w[i];
        for (int i = 1; i < n && rc == 0; i++)
            for (int j = 1; j < i; j++)
                if (!strcmp(w[i], w[j])) {
                    rc = gerr(g, lineno, "'%s' lists the value '%s' twice", key, w[i]);
                    break;
                }
    }
    if (rc == 0 && !g->nmodels) rc = gerr(g, 0, "no model: add 'model PATH' (a checkpoint directory)");
    if (rc == 0 && !g->nppl && !g->tasks)
        rc = gerr(g, 0, "nothing to evaluate: add 'ppl FILE' (a text to score) or 'tasks LIST'");
    if (rc == 0 && g->kl && !g->nppl)
        rc = gerr(g, seen[top_find("kl")], "'kl' compares on the 'ppl' texts: add 'ppl FILE'");
    if (rc == 0 && !nsecs)
        rc = gerr(g, 0, "no cells: add sections, e.g. '[f32]' (the uncompressed model) and '[rtn]' with "
                  "'method rtn' and 'bits 4 3'");
    for (int i = 0; rc == 0 && i < nsecs; i++) rc = expand(g, &secs[i], calib, cal, given);
    free(secs);
    return rc;
}
