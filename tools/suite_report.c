/*
 * suite_report.c - results.json and results.md of `llmpress suite`, the
 * accessors every report reads the cells through (suite_report.h), and
 * writing the three reports whole.
 *
 * What: results.json embeds each child's JSON as it printed it, beside the
 *       cell's model, id, method, settings and status; results.md holds per
 *       model a quality table (perplexity per text, its change from the
 *       uncompressed model, KL, bits per weight, size, compression time), a
 *       per-task accuracy table with the mean over tasks, and a speed and
 *       memory table.
 * Why:  results.json is for scripts (every number the children reported);
 *       results.md is for a README or a pull request.
 * Design: no number is computed twice: the tables and report.html call the
 *       same accessors, which return NAN for what a cell's JSON lacks.
 */
#include "suite_report.h"

#include "cli.h"
#include "core/fileio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TASKS 64

/* ---- accessors ---- */

double suite_num(const lp_json *obj, const char *path) {
    char key[64];
    const lp_json *v = obj;
    while (v && *path) {
        const size_t k = strcspn(path, ".");
        if (k >= sizeof key) return NAN;
        memcpy(key, path, k);
        key[k] = '\0';
        v = lp_json_get(v, key);
        path += k + (path[k] == '.');
    }
    return v && v->type == LP_JSON_NUMBER && isfinite(v->num) ? v->num : NAN;
}

static const lp_json *root(const lp_json_doc *d) { return d ? lp_json_root(d) : NULL; }

/* The first of the documents that has the key. */
static double first_num(const lp_json_doc *a, const lp_json_doc *b, const lp_json_doc *c, const char *key) {
    const lp_json_doc *d[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        const double v = suite_num(root(d[i]), key);
        if (isfinite(v)) return v;
    }
    return NAN;
}

double suite_bits(const suite_result *r) {
    return first_num(r->info, r->eval, r->quantize, "linear_bits_per_weight");
}

double suite_total_bytes(const suite_result *r) {
    const double v = first_num(r->info, r->quantize, NULL, "total_bytes");
    return isfinite(v) ? v : suite_num(root(r->eval), "disk_bytes");
}

static const lp_json *result_at(const suite_result *r, int file) {
    const lp_json *res = lp_json_get(root(r->eval), "results");
    return res && res->type == LP_JSON_ARRAY && file >= 0 && file < res->n ? &res->items[file] : NULL;
}

double suite_ppl(const suite_result *r, int file) { return suite_num(result_at(r, file), "ppl"); }

const lp_json *suite_kl(const suite_result *r, int file) {
    const lp_json *kl = lp_json_get(result_at(r, file), "kl");
    return kl && kl->type == LP_JSON_OBJECT ? kl : NULL;
}

double suite_compress_seconds(const suite_result *r) {
    const double v = suite_num(root(r->quantize), "seconds");
    return isfinite(v) ? v : suite_num(root(r->eval), "compress.seconds");
}

double suite_eval_peak_rss(const suite_result *r) {
    const double v = suite_num(root(r->eval), "peak_rss_bytes");
    return isfinite(v) ? v : suite_num(root(r->erun), "peak_rss_bytes");
}

double suite_quantize_peak_rss(const suite_result *r) { return suite_num(root(r->qrun), "peak_rss_bytes"); }

double suite_task(const suite_result *r, const char *task, const char *key) {
    const lp_json *t = lp_json_get(lp_json_get(root(r->eval), "tasks"), task);
    return suite_num(t, key);
}

double suite_task_mean(const suite_result *r, const char *const *tasks, int ntasks) {
    double s = 0;
    for (int i = 0; i < ntasks; i++) {
        const double v = suite_task(r, tasks[i], "acc");
        if (!isfinite(v)) return NAN;
        s += v;
    }
    return ntasks ? s / ntasks : NAN;
}

int suite_task_names(const suite_result *rs, int n, const char **names, int max) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        const lp_json *t = lp_json_get(root(rs[i].eval), "tasks");
        if (!t || t->type != LP_JSON_OBJECT) continue;
        for (int j = 0; j < t->n; j++) {
            bool seen = false;
            for (int q = 0; q < k && !seen; q++) seen = !strcmp(names[q], t->keys[j]);
            if (!seen && k < max) names[k++] = t->keys[j];
        }
    }
    return k;
}

const suite_result *suite_reference(const suite_result *rs, int n, const suite_model *m) {
    for (int i = 0; i < n; i++)
        if (rs[i].model == m && !rs[i].cell->method && rs[i].status == SUITE_OK) return &rs[i];
    return NULL;
}

void suite_family(const suite_result *r, char *buf, size_t n) {
    const suite_cell *c = r->cell;
    bool pre = false;
    for (int i = 0; i < c->nsets; i++) pre |= !strcmp(c->sets[i].name, "awq-prescale");
    if (!c->method) snprintf(buf, n, "uncompressed");
    else snprintf(buf, n, "%s%s", pre ? "awq+" : "", c->method);
}

void suite_pareto(const suite_result *rs, int n, const suite_model *m, bool *front) {
    for (int i = 0; i < n; i++) {
        front[i] = false;
        if (rs[i].model != m || rs[i].status != SUITE_OK) continue;
        const double bi = suite_bits(&rs[i]), pi = suite_ppl(&rs[i], 0);
        if (!isfinite(bi) || !isfinite(pi)) continue;
        bool dominated = false;
        for (int j = 0; j < n && !dominated; j++) {
            if (j == i || rs[j].model != m || rs[j].status != SUITE_OK) continue;
            const double bj = suite_bits(&rs[j]), pj = suite_ppl(&rs[j], 0);
            dominated = isfinite(bj) && isfinite(pj) && bj <= bi && pj <= pi && (bj < bi || pj < pi);
        }
        front[i] = !dominated;
    }
}

const char *suite_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- number formats ---- */

void suite_fmt_ppl(double v, char *buf, size_t n) {
    if (!isfinite(v)) snprintf(buf, n, "-");
    else if (v < 10) snprintf(buf, n, "%.3f", v);
    else if (v < 100) snprintf(buf, n, "%.2f", v);
    else if (v < 1000) snprintf(buf, n, "%.1f", v);
    else snprintf(buf, n, "%.0f", v);
}

void suite_fmt(double v, int decimals, char *buf, size_t n) {
    if (!isfinite(v)) snprintf(buf, n, "-");
    else snprintf(buf, n, "%.*f", decimals, v);
}

void suite_fmt_mb(double bytes, char *buf, size_t n) {
    if (!isfinite(bytes)) snprintf(buf, n, "-");
    else if (bytes < 10e6) snprintf(buf, n, "%.2f", bytes / 1e6);
    else if (bytes < 1000e6) snprintf(buf, n, "%.1f", bytes / 1e6);
    else snprintf(buf, n, "%.0f", bytes / 1e6);
}

void suite_fmt_rate(double v, char *buf, size_t n) {
    if (!isfinite(v)) snprintf(buf, n, "-");
    else if (v < 100) snprintf(buf, n, "%.1f", v);
    else snprintf(buf, n, "%.0f", v);
}

static const char *status_word(const suite_result *r) {
    return r->status == SUITE_OK ? "ok" : r->status == SUITE_FAILED ? "failed" : "pending";
}

/* ---- results.json ---- */

/* A child's JSON as printed (already parsed once: valid), or null. */
static void put_raw(FILE *f, const char *text) {
    if (!text) {
        fputs("null", f);
        return;
    }
    size_t len = strlen(text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' ' || text[len - 1] == '\r')) len--;
    fwrite(text, 1, len, f);
}

/* Whether s is a number exactly as JSON writes one: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool is_json_number(const char *s) {
    if (*s == '-') s++;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') s += strspn(s, "0123456789");
    else return false;
    if (*s == '.') {
        const size_t k = strspn(s + 1, "0123456789");
        if (!k) return false;
        s += 1 + k;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        const size_t k = strspn(s, "0123456789");
        if (!k) return false;
        s += k;
    }
    return *s == '\0';
}

/* A setting's value: a number when the whole text is one ("4", "-1", "0.45"),
 * else a string ("2:4"); a flag is true. */
static void put_value(FILE *f, const char *v) {
    if (!v) fputs("true", f);
    else if (is_json_number(v)) fputs(v, f);
    else cli_json_string(f, v);
}

static void results_json(FILE *f, const suite_ctx *x, const suite_meta *meta, const suite_result *rs, int n) {
    fputs("{\"grid\": ", f);
    cli_json_string(f, meta->grid_path);
    fputs(", \"created\": ", f);
    cli_json_string(f, meta->date);
    fputs(", \"machine\": ", f);
    cli_json_string(f, meta->machine);
    fputs(", \"llmpress_commit\": ", f);
    if (*meta->commit) cli_json_string(f, meta->commit);
    else fputs("null", f);
    fputs(",\n \"models\": [", f);
    for (int i = 0; i < x->g->nmodels; i++) {
        fprintf(f, "%s{\"name\": ", i ? ", " : "");
        cli_json_string(f, x->g->models[i].name);
        fputs(", \"path\": ", f);
        cli_json_string(f, x->g->models[i].path);
        fputc('}', f);
    }
    fputs("],\n \"cells\": [", f);
    for (int i = 0; i < n; i++) {
        const suite_result *r = &rs[i];
        const suite_cell *c = r->cell;
        fprintf(f, "%s\n  {\"model\": ", i ? "," : "");
        cli_json_string(f, r->model->name);
        fputs(", \"id\": ", f);
        cli_json_string(f, c->id);
        fputs(", \"section\": ", f);
        cli_json_string(f, c->section);
        fputs(", \"method\": ", f);
        if (c->method) cli_json_string(f, c->method);
        else fputs("null", f);
        fputs(", \"settings\": {", f);
        for (int k = 0; k < c->nsets; k++) {
            fputs(k ? ", " : "", f);
            cli_json_string(f, c->sets[k].name);
            fputs(": ", f);
            put_value(f, c->sets[k].value);
        }
        fputs("}, \"calibration\": ", f);
        if (c->calibrated) {
            fputs("{\"calib\": ", f);
            cli_json_string(f, c->calib);
            if (c->nsamples) fprintf(f, ", \"nsamples\": %lld", (long long)c->nsamples);
            if (c->seqlen) fprintf(f, ", \"seqlen\": %lld", (long long)c->seqlen);
            if (c->has_seed) fprintf(f, ", \"seed\": %lld", (long long)c->seed);
            fputc('}', f);
        } else {
            fputs("null", f);
        }
        fprintf(f, ", \"status\": \"%s\", \"kept\": %s, \"error\": ", status_word(r), r->kept ? "true" : "false");
        if (r->status == SUITE_FAILED && r->error) cli_json_string(f, r->error);
        else fputs("null", f);
        fputs(", \"dir\": \"cells/", f); /* relative to DIR; names are safe (suite_safe_name) */
        fprintf(f, "%s/%s\"", r->model->name, c->id);
        fputs(",\n   \"quantize\": ", f);
        put_raw(f, r->quantize_text);
        fputs(",\n   \"info\": ", f);
        put_raw(f, r->info_text);
        fputs(",\n   \"eval\": ", f);
        put_raw(f, r->eval_text);
        fputs(",\n   \"runs\": {\"quantize\": ", f);
        put_raw(f, r->qrun_text);
        fputs(", \"eval\": ", f);
        put_raw(f, r->erun_text);
        fputs("}}", f);
    }
    fputs("\n]}\n", f);
}

/* ---- results.md ---- */

/* A cell's name in a table: its id, marked when on the Pareto front. */
static void md_cell(FILE *f, const suite_result *r, bool front) {
    fprintf(f, "| %s%s | %s | %s |", r->cell->id, front ? " \xe2\x98\x85" : "",
            r->cell->method ? r->cell->method : "uncompressed", status_word(r));
}

/* A markdown table cell's text: '|' and newlines would break the row. */
static void md_text(FILE *f, const char *s, int max) {
    for (int i = 0; s[i] && i < max; i++) {
        if (s[i] == '\n') break;
        if (s[i] == '|') fputs("\\|", f);
        else fputc(s[i], f);
    }
}

static void md_model(FILE *f, const suite_ctx *x, const suite_model *m, const suite_result *rs, int n) {
    const suite_grid *g = x->g;
    bool *front = calloc((size_t)n, sizeof *front);
    if (front) suite_pareto(rs, n, m, front);
    const suite_result *ref = suite_reference(rs, n, m);
    char a[64], b[64];
    fprintf(f, "\n## %s\n\n`%s`\n\n### Quality\n\n| cell | method | status | bits/weight | size MB |", m->name,
            m->path);
    for (int k = 0; k < g->nppl; k++) fprintf(f, " ppl %s |", suite_basename(g->ppl[k]));
    const bool kl = g->kl;
    if (kl) fputs(" KL mean | KL p99 | same top-1 |", f);
    fputs(" compress s |\n|---|---|---|---:|---:|", f);
    for (int k = 0; k < g->nppl; k++) fputs("---:|", f);
    if (kl) fputs("---:|---:|---:|", f);
    fputs("---:|\n", f);
    for (int i = 0; i < n; i++) {
        const suite_result *r = &rs[i];
        if (r->model != m) continue;
        md_cell(f, r, front && front[i]);
        suite_fmt(suite_bits(r), 3, a, sizeof a);
        suite_fmt_mb(suite_total_bytes(r), b, sizeof b);
        fprintf(f, " %s | %s |", a, b);
        for (int k = 0; k < g->nppl; k++) {
            const double p = suite_ppl(r, k), p0 = ref ? suite_ppl(ref, k) : NAN;
            suite_fmt_ppl(p, a, sizeof a);
            const double d = 100 * (p / p0 - 1);
            if (isfinite(p) && isfinite(p0) && r != ref) fprintf(f, " %s (%+.*f%%) |", a, fabs(d) < 10 ? 1 : 0, d);
            else fprintf(f, " %s |", a);
        }
        if (kl) {
            const lp_json *d = suite_kl(r, 0);
            const double top1 = suite_num(d, "same_top1");
            suite_fmt(suite_num(d, "mean"), 4, a, sizeof a);
            suite_fmt(suite_num(d, "p99"), 3, b, sizeof b);
            fprintf(f, " %s | %s |", a, b);
            suite_fmt(100 * top1, 1, a, sizeof a);
            fprintf(f, " %s%s |", a, isfinite(top1) ? "%" : "");
        }
        suite_fmt(suite_compress_seconds(r), 1, a, sizeof a);
        fprintf(f, " %s |\n", a);
    }
    fputs("\n\xe2\x98\x85 on the Pareto front of bits per weight and perplexity", f);
    if (g->nppl) fprintf(f, " (%s)", suite_basename(g->ppl[0]));
    fputs("; (+x%) perplexity above the uncompressed model's.\n", f);

    /* tasks */
    const char *tasks[MAX_TASKS];
    int nt = 0; /* the union over this model's cells */
    for (int i = 0; i < n; i++) {
        if (rs[i].model != m) continue;
        const char *t[MAX_TASKS];
        const int k = suite_task_names(&rs[i], 1, t, MAX_TASKS);
        for (int j = 0; j < k; j++) {
            bool seen = false;
            for (int q = 0; q < nt && !seen; q++) seen = !strcmp(tasks[q], t[j]);
            if (!seen && nt < MAX_TASKS) tasks[nt++] = t[j];
        }
    }
    if (nt) {
        fputs("\n### Tasks (accuracy, %)\n\n| cell | method | status |", f);
        for (int k = 0; k < nt; k++) fprintf(f, " %s |", tasks[k]);
        fputs(" mean |\n|---|---|---|", f);
        for (int k = 0; k <= nt; k++) fputs("---:|", f);
        fputc('\n', f);
        for (int i = 0; i < n; i++) {
            const suite_result *r = &rs[i];
            if (r->model != m) continue;
            md_cell(f, r, front && front[i]);
            for (int k = 0; k < nt; k++) {
                suite_fmt(100 * suite_task(r, tasks[k], "acc"), 1, a, sizeof a);
                fprintf(f, " %s |", a);
            }
            suite_fmt(100 * suite_task_mean(r, tasks, nt), 1, a, sizeof a);
            fprintf(f, " %s |\n", a);
        }
    }

    /* speed and memory */
    fputs("\n### Speed and memory\n\n| cell | method | status | prefill tok/s | decode tok/s | eval peak RSS MB | "
          "quantize peak RSS MB | quantize wall s | eval wall s |\n|---|---|---|---:|---:|---:|---:|---:|---:|\n", f);
    for (int i = 0; i < n; i++) {
        const suite_result *r = &rs[i];
        if (r->model != m) continue;
        md_cell(f, r, front && front[i]);
        const lp_json *e = root(r->eval);
        suite_fmt_rate(suite_num(e, "speed.prefill_tok_s"), a, sizeof a);
        suite_fmt_rate(suite_num(e, "speed.decode_tok_s"), b, sizeof b);
        fprintf(f, " %s | %s |", a, b);
        suite_fmt_mb(suite_eval_peak_rss(r), a, sizeof a);
        suite_fmt_mb(suite_quantize_peak_rss(r), b, sizeof b);
        fprintf(f, " %s | %s |", a, b);
        suite_fmt(suite_num(root(r->qrun), "seconds"), 1, a, sizeof a);
        suite_fmt(suite_num(root(r->erun), "seconds"), 1, b, sizeof b);
        fprintf(f, " %s | %s |\n", a, b);
    }
    free(front);
}

static void results_md(FILE *f, const suite_ctx *x, const suite_meta *meta, const suite_result *rs, int n) {
    int ok = 0, failed = 0;
    for (int i = 0; i < n; i++) ok += rs[i].status == SUITE_OK, failed += rs[i].status == SUITE_FAILED;
    fprintf(f, "# llmpress suite: %s\n\n", suite_basename(meta->grid_path));
    fprintf(f, "- grid: `%s`\n- date: %s\n- machine: %s\n- llmpress: %s\n- cells: %d ok, %d failed, %d pending\n",
            meta->grid_path, meta->date, meta->machine, *meta->commit ? meta->commit : "unknown", ok, failed,
            n - ok - failed);
    for (int i = 0; i < x->g->nmodels; i++) md_model(f, x, &x->g->models[i], rs, n);
    if (failed) {
        fputs("\n## Failed cells\n\n| model | cell | error |\n|---|---|---|\n", f);
        for (int i = 0; i < n; i++) {
            if (rs[i].status != SUITE_FAILED) continue;
            fprintf(f, "| %s | %s | ", rs[i].model->name, rs[i].cell->id);
            md_text(f, rs[i].error ? rs[i].error : "", 400);
            fprintf(f, " (`%s/error.txt`) |\n", rs[i].dir);
        }
    }
}

/* ---- writing ---- */

typedef void (*report_fn)(FILE *, const suite_ctx *, const suite_meta *, const suite_result *, int);

/* Build one report in memory, then write it whole. */
static int write_report(const suite_ctx *x, const char *name, report_fn fn, const suite_meta *meta,
                        const suite_result *rs, int n) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return (fprintf(stderr, "llmpress suite: out of memory writing %s\n", name), 1);
    fn(f, x, meta, rs, n);
    if (fclose(f) != 0) {
        free(buf);
        return (fprintf(stderr, "llmpress suite: out of memory writing %s\n", name), 1);
    }
    char *path = lp_path_join(x->out, name);
    lp_atomic_file af;
    lp_status st = path ? lp_atomic_open(path, &af) : LP_ERR_NOMEM;
    if (st == LP_OK) st = lp_atomic_write(&af, buf, len);
    if (st == LP_OK) st = lp_atomic_commit(&af);
    else if (path) lp_atomic_abort(&af);
    free(buf);
    free(path);
    if (st != LP_OK) return (fprintf(stderr, "llmpress suite: %s\n", lp_last_error()), 1);
    return 0;
}

int suite_report_write(const suite_ctx *x, const suite_meta *meta, const suite_result *rs, int n) {
    int rc = write_report(x, "results.json", results_json, meta, rs, n);
    rc |= write_report(x, "results.md", results_md, meta, rs, n);
    rc |= write_report(x, "report.html", suite_html_write, meta, rs, n);
    return rc;
}
