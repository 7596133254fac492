/*
 * suite_cell.c - one cell of `llmpress suite` (suite_cell.h): its commands,
 * running them as child processes, its files, resuming.
 *
 * What: for a compressed cell, `llmpress quantize MODEL <settings> -o
 *       <cell>/model --json`; then for every cell `llmpress info` and
 *       `llmpress eval` on the cell's model (the original one for an
 *       uncompressed cell), each child's stdout kept as <step>.json.
 * Why:  the CLI is the interface the suite measures: running it as it is
 *       used measures what users get (its memory included), and a child's
 *       crash is one failed cell.
 * Design: a step's stdout goes straight into "<step>.json.tmp.<pid>", which
 *       is renamed onto <step>.json only when the child exited 0 and printed
 *       one JSON object; then the suite's record (<step>.run.json) follows.
 *       A step counts as done when both parse and the record's signature is
 *       the current command's, so whatever a kill interrupts is redone and
 *       nothing else. A calibrated quantize runs with --resume <cell>/resume
 *       (resume.sig says for which command) and continues after its last
 *       finished block. The compressed model is kept until eval succeeded,
 *       so a failed eval is retried without quantizing again.
 */
#include "suite_cell.h"

#include "cli.h"
#include "core/fileio.h"
#include "suite_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- commands ---- */

/* A command's words (argv) and its signature's words. */
typedef struct {
    char **argv, **sig;
    int n, nsig, cap;
    bool oom;
} cmd;

static char *xdup(cmd *c, const char *s) {
    char *d = strdup(s);
    if (!d) c->oom = true;
    return d;
}

/* Add a word; sig: the word in the signature (NULL: the same word, "": none). */
static void cmd_add(cmd *c, const char *word, const char *sig) {
    if (c->oom) return;
    if (c->n + 2 > c->cap) {
        const int cap = c->cap ? 2 * c->cap : 32;
        char **a = realloc(c->argv, (size_t)cap * sizeof *a);
        if (a) c->argv = a;
        char **s = realloc(c->sig, (size_t)cap * sizeof *s);
        if (s) c->sig = s;
        if (!a || !s) {
            c->oom = true;
            return;
        }
        c->cap = cap;
    }
    c->argv[c->n++] = xdup(c, word);
    c->argv[c->n] = NULL;
    if (!sig || *sig) c->sig[c->nsig++] = xdup(c, sig ? sig : word);
}

static void cmd_free(cmd *c) {
    for (int i = 0; i < c->n; i++) free(c->argv[i]);
    for (int i = 0; i < c->nsig; i++) free(c->sig[i]);
    free(c->argv);
    free(c->sig);
    memset(c, 0, sizeof *c);
}

/* A word as a POSIX shell would need it. */
static void put_quoted(FILE *f, const char *w) {
    const bool plain = *w && strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./:=,+-@%") ==
                                 strlen(w);
    if (plain) {
        fputs(w, f);
        return;
    }
    fputc('\'', f);
    for (; *w; w++) {
        if (*w == '\'') fputs("'\\''", f);
        else fputc(*w, f);
    }
    fputc('\'', f);
}

static void put_words(FILE *f, char *const *w, int n) {
    for (int i = 0; i < n; i++) {
        if (i) fputc(' ', f);
        put_quoted(f, w[i]);
    }
}

/* The signature: the signature words, quoted, on one line (malloc'd). */
static char *cmd_signature(const cmd *c) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    put_words(f, c->sig, c->nsig);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static char *path2(const char *a, const char *b) { return lp_path_join(a, b); }

static void add_int(cmd *c, const char *flag, int64_t v, bool in_sig) {
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)v);
    cmd_add(c, flag, in_sig ? NULL : "");
    cmd_add(c, s, in_sig ? NULL : "");
}

/* Threads of every child: --threads, else the grid's, else the children's default (all cores). */
static int64_t threads_of(const suite_ctx *x) { return x->threads ? x->threads : x->g->threads; }

static void build_quantize(const suite_ctx *x, const suite_model *m, const suite_cell *cl, const char *dir, cmd *c) {
    char *model = path2(dir, "model"), *resume = path2(dir, "resume");
    if (!model || !resume) c->oom = true;
    cmd_add(c, x->self, "");
    cmd_add(c, "quantize", NULL);
    cmd_add(c, m->path, NULL);
    cmd_add(c, "--method", NULL);
    cmd_add(c, cl->method, NULL);
    for (int i = 0; i < cl->nsets; i++) {
        char flag[96];
        snprintf(flag, sizeof flag, "--%s", cl->sets[i].name);
        cmd_add(c, flag, NULL);
        if (cl->sets[i].value) cmd_add(c, cl->sets[i].value, NULL);
    }
    if (cl->calibrated) {
        cmd_add(c, "--calib", NULL);
        cmd_add(c, cl->calib, NULL);
        if (cl->nsamples) add_int(c, "--nsamples", cl->nsamples, true);
        if (cl->seqlen) add_int(c, "--seqlen", cl->seqlen, true);
        if (cl->has_seed) add_int(c, "--seed", cl->seed, true);
    }
    if (cl->resumable) {
        cmd_add(c, "--resume", NULL);
        cmd_add(c, resume ? resume : "", "<cell>/resume");
    }
    if (threads_of(x)) add_int(c, "--threads", threads_of(x), false);
    cmd_add(c, "-o", NULL);
    cmd_add(c, model ? model : "", "<cell>/model");
    cmd_add(c, "--json", NULL);
    cmd_add(c, "--quiet", NULL);
    free(model);
    free(resume);
}

/* The model a cell evaluates: its compressed one, or the original. */
static void add_eval_model(cmd *c, const suite_model *m, const suite_cell *cl, const char *dir) {
    if (!cl->method) {
        cmd_add(c, m->path, NULL);
        return;
    }
    char *model = path2(dir, "model");
    if (!model) c->oom = true;
    cmd_add(c, model ? model : "", "<cell>/model");
    free(model);
}

static void build_info(const suite_ctx *x, const suite_model *m, const suite_cell *cl, const char *dir, cmd *c) {
    cmd_add(c, x->self, "");
    cmd_add(c, "info", NULL);
    add_eval_model(c, m, cl, dir);
    cmd_add(c, "--json", NULL);
}

static void build_eval(const suite_ctx *x, const suite_model *m, const suite_cell *cl, const char *dir, cmd *c) {
    const suite_grid *g = x->g;
    cmd_add(c, x->self, "");
    cmd_add(c, "eval", NULL);
    add_eval_model(c, m, cl, dir);
    for (int i = 0; i < g->nppl; i++) {
        cmd_add(c, "--ppl", NULL);
        cmd_add(c, g->ppl[i], NULL);
    }
    if (g->ctx) add_int(c, "--ctx", g->ctx, true);
    if (g->windows) add_int(c, "--windows", g->windows, true);
    if (g->protocol) cmd_add(c, "--protocol", NULL), cmd_add(c, g->protocol, NULL);
    if (g->kl && cl->method) cmd_add(c, "--kl", NULL), cmd_add(c, m->path, NULL); /* KL of the model itself is 0 */
    if (g->tasks) cmd_add(c, "--tasks", NULL), cmd_add(c, g->tasks, NULL);
    if (g->tasks_dir) cmd_add(c, "--tasks-dir", NULL), cmd_add(c, g->tasks_dir, NULL);
    if (g->limit) add_int(c, "--limit", g->limit, true);
    if (threads_of(x)) add_int(c, "--threads", threads_of(x), false);
    for (int i = 0; i < g->neval_flags; i++) cmd_add(c, g->eval_flags[i], NULL);
    cmd_add(c, "--json", NULL);
    cmd_add(c, "--quiet", NULL);
}

void suite_cell_print_commands(const suite_ctx *x, const suite_model *m, const suite_cell *cl) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/cells/%s/%s", x->out ? x->out : "DIR", m->name, cl->id);
    void (*build[3])(const suite_ctx *, const suite_model *, const suite_cell *, const char *, cmd *) = {
        build_quantize, build_info, build_eval};
    for (int k = cl->method ? 0 : 1; k < 3; k++) {
        cmd c = {0};
        build[k](x, m, cl, dir, &c);
        if (!c.oom) {
            fputs("  ", stdout);
            put_words(stdout, c.argv, c.n);
            fputc('\n', stdout);
        }
        cmd_free(&c);
    }
}

/* ---- files ---- */

/* Read path as one JSON object: its text and document, or false (both NULL). */
static bool read_json(const char *dir, const char *name, char **text, lp_json_doc **doc) {
    *text = NULL;
    *doc = NULL;
    char *p = path2(dir, name);
    size_t len = 0;
    bool ok = p && lp_read_file(p, text, &len) == LP_OK && lp_json_parse(*text, len, p, doc) == LP_OK &&
              lp_json_root(*doc)->type == LP_JSON_OBJECT;
    free(p);
    if (!ok) {
        lp_json_free(*doc);
        free(*text);
        *doc = NULL;
        *text = NULL;
    }
    return ok;
}

static void drop_json(char **text, lp_json_doc **doc) {
    lp_json_free(*doc);
    free(*text);
    *doc = NULL;
    *text = NULL;
}

static bool signature_is(const lp_json_doc *run, const char *sig) {
    const char *have = run ? lp_json_str(lp_json_get(lp_json_root(run), "signature"), NULL) : NULL;
    return have && sig && !strcmp(have, sig);
}

static void unlink_in(const char *dir, const char *name) {
    char *p = path2(dir, name);
    if (p) unlink(p);
    free(p);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(p) != 0 && errno != ENOENT ? -1 : 0;
}

/* Remove dir/name and everything under it (never following links). */
static void rm_tree_in(const char *dir, const char *name) {
    char *p = path2(dir, name);
    struct stat st;
    if (p && lstat(p, &st) == 0) nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(p);
}

static bool exists_in(const char *dir, const char *name) {
    char *p = path2(dir, name);
    const bool e = p && lp_file_exists(p);
    free(p);
    return e;
}

/* Write text to dir/name whole (temporary name, then rename). */
static int write_whole(const char *dir, const char *name, const char *text) {
    char *p = path2(dir, name);
    lp_atomic_file af;
    lp_status st = p ? lp_atomic_open(p, &af) : LP_ERR_NOMEM;
    if (st == LP_OK) st = lp_atomic_write(&af, text, strlen(text));
    if (st == LP_OK) st = lp_atomic_commit(&af);
    else if (p) lp_atomic_abort(&af);
    free(p);
    if (st != LP_OK) {
        fprintf(stderr, "llmpress suite: %s\n", p ? lp_last_error() : "out of memory");
        return 1;
    }
    return 0;
}

/* mkdir, fine when it exists as a directory. */
static int make_dir(const char *p) {
    if (mkdir(p, 0755) == 0 || (errno == EEXIST && lp_is_dir(p))) return 0;
    fprintf(stderr, "llmpress suite: cannot create the directory %s: %s\n", p, strerror(errno));
    return 1;
}

/* ---- opening a cell ---- */

/* The current signatures of the cell's quantize (NULL when uncompressed) and eval. */
static int signatures(const suite_ctx *x, const suite_result *r, char **qsig, char **esig) {
    cmd q = {0}, e = {0};
    *qsig = *esig = NULL;
    if (r->cell->method) {
        build_quantize(x, r->model, r->cell, r->dir, &q);
        if (!q.oom) *qsig = cmd_signature(&q);
    }
    build_eval(x, r->model, r->cell, r->dir, &e);
    if (!e.oom) *esig = cmd_signature(&e);
    const bool ok = !q.oom && !e.oom && *esig && (*qsig || !r->cell->method);
    cmd_free(&q);
    cmd_free(&e);
    if (!ok) {
        free(*qsig);
        free(*esig);
        *qsig = *esig = NULL;
        fprintf(stderr, "llmpress suite: out of memory\n");
        return 1;
    }
    return 0;
}

/* Load the cell's files, keeping only what the current commands made. */
static void load_files(suite_result *r, const char *qsig, const char *esig) {
    const bool compressed = r->cell->method != NULL;
    if (compressed) {
        read_json(r->dir, "quantize.json", &r->quantize_text, &r->quantize);
        read_json(r->dir, "quantize.run.json", &r->qrun_text, &r->qrun);
        if (!signature_is(r->qrun, qsig)) {
            drop_json(&r->quantize_text, &r->quantize);
            drop_json(&r->qrun_text, &r->qrun);
        }
    }
    read_json(r->dir, "eval.json", &r->eval_text, &r->eval);
    read_json(r->dir, "eval.run.json", &r->erun_text, &r->erun);
    read_json(r->dir, "info.json", &r->info_text, &r->info);
    if (!signature_is(r->erun, esig) || (compressed && !r->quantize)) {
        drop_json(&r->eval_text, &r->eval);
        drop_json(&r->erun_text, &r->erun);
        if (compressed && !r->quantize) drop_json(&r->info_text, &r->info);
    }
}

int suite_cell_open(const suite_ctx *x, const suite_model *m, const suite_cell *c, suite_result *r) {
    memset(r, 0, sizeof *r);
    r->model = m;
    r->cell = c;
    const size_t n = strlen(x->out) + strlen(m->name) + strlen(c->id) + 16;
    if (!(r->dir = malloc(n))) return (fprintf(stderr, "llmpress suite: out of memory\n"), 1);
    snprintf(r->dir, n, "%s/cells/%s/%s", x->out, m->name, c->id);
    char *qsig, *esig;
    if (signatures(x, r, &qsig, &esig)) return 1;
    load_files(r, qsig, esig);
    free(qsig);
    free(esig);
    if (r->eval && r->info) {
        r->status = SUITE_OK;
        r->kept = true;
    } else {
        char *p = path2(r->dir, "error.txt");
        size_t len;
        if (p && lp_read_file(p, &r->error, &len) == LP_OK) r->status = SUITE_FAILED;
        else r->error = NULL;
        free(p);
    }
    return 0;
}

void suite_result_free(suite_result *r) {
    if (!r) return;
    free(r->dir);
    free(r->error);
    drop_json(&r->quantize_text, &r->quantize);
    drop_json(&r->info_text, &r->info);
    drop_json(&r->eval_text, &r->eval);
    drop_json(&r->qrun_text, &r->qrun);
    drop_json(&r->erun_text, &r->erun);
    memset(r, 0, sizeof *r);
}

/* ---- running ---- */

void suite_fmt_duration(double s, char *buf, size_t n) {
    if (!(s >= 0)) s = 0;
    if (s < 10) snprintf(buf, n, "%.1f s", s);
    else if (s < 60) snprintf(buf, n, "%.0f s", s);
    else if (s < 3600) snprintf(buf, n, "%d min %02d s", (int)(s / 60), (int)s % 60);
    else snprintf(buf, n, "%d h %02d min", (int)(s / 3600), (int)(s / 60) % 60);
}

static void iso_now(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%S%z", &tm);
}

/* The last lines of a log (at most ~4 KB), malloc'd; "" when none. */
static char *log_tail(const char *path, int lines) {
    char *text = NULL;
    size_t len = 0;
    if (lp_read_file(path, &text, &len) != LP_OK) return strdup("");
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) text[--len] = '\0';
    size_t start = len, seen = 0;
    while (start > 0 && len - start < 4000) {
        if (text[start - 1] == '\n' && ++seen == (size_t)lines) break;
        start--;
    }
    char *tail = strdup(text + start);
    free(text);
    return tail;
}

typedef enum { STEP_OK, STEP_FAILED, STEP_STOPPED, STEP_FATAL } step_result;

/* Record a failed step in error.txt: a one-line summary first (the step and
 * the child's last line on stderr), then the command and its stderr tail. */
static step_result fail_step(const suite_ctx *x, suite_result *r, const char *step, const cmd *c, const char *why,
                             const char *log_name, double seconds) {
    char *log = path2(r->dir, log_name);
    char *tail = log ? log_tail(log, 30) : strdup("");
    const char *last = tail ? strrchr(tail, '\n') : NULL;
    last = last ? last + 1 : tail ? tail : "";
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f) {
        char d[32];
        suite_fmt_duration(seconds, d, sizeof d);
        fprintf(f, "%s failed (%s)%s%s\n", step, why, *last ? ": " : "", last);
        fprintf(f, "after %s; command:\n  ", d);
        put_words(f, c->argv, c->n);
        fprintf(f, "\n--- the end of its stderr (%s) ---\n%s\n", log ? log : log_name, tail ? tail : "");
    }
    free(log);
    free(tail);
    if (!f || fclose(f) != 0) {
        free(buf);
        buf = strdup("failed (out of memory describing the failure)\n");
    }
    free(r->error);
    r->error = buf;
    r->status = SUITE_FAILED;
    if (!x->quiet) {
        const char *nl = buf ? strchr(buf, '\n') : NULL;
        fprintf(stderr, "FAILED\n[suite]   %.*s\n[suite]   see %s/error.txt\n", nl ? (int)(nl - buf) : 0,
                buf ? buf : "", r->dir);
    }
    return buf && write_whole(r->dir, "error.txt", buf) ? STEP_FATAL : STEP_FAILED;
}

/* Run one step: its stdout becomes dir/json_name (whole, when it is one JSON
 * object), its stderr dir/log_name. */
static step_result run_step(const suite_ctx *x, suite_result *r, const char *step, const cmd *c,
                            const char *json_name, const char *log_name, char **text, lp_json_doc **doc,
                            suite_proc_result *pr) {
    char *jpath = path2(r->dir, json_name), *lpath = path2(r->dir, log_name);
    lp_atomic_file af;
    memset(&af, 0, sizeof af);
    memset(pr, 0, sizeof *pr);
    step_result res = STEP_FATAL;
    int logfd = -1;
    if (!jpath || !lpath || c->oom) {
        fprintf(stderr, "llmpress suite: out of memory\n");
        goto done;
    }
    if (lp_atomic_open(jpath, &af) != LP_OK) {
        fprintf(stderr, "llmpress suite: %s\n", lp_last_error());
        goto done;
    }
    logfd = open(lpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (logfd < 0) {
        fprintf(stderr, "llmpress suite: cannot write %s: %s\n", lpath, strerror(errno));
        lp_atomic_abort(&af);
        goto done;
    }
    if (!x->quiet) fprintf(stderr, "%s ... ", step);
    if (suite_proc_run(c->argv, fileno(af.f), logfd, pr) != 0) {
        char why[256];
        snprintf(why, sizeof why, "could not start %s: %s", c->argv[0], strerror(errno));
        lp_atomic_abort(&af);
        res = fail_step(x, r, step, c, why, log_name, 0);
        goto done;
    }
    if (pr->exit_code != 0) {
        lp_atomic_abort(&af);
        if (suite_proc_stop_signal()) { /* it stopped because we asked it to */
            res = STEP_STOPPED;
            goto done;
        }
        char why[160];
        if (pr->signal == SIGKILL)
            snprintf(why, sizeof why, "killed by signal %d (SIGKILL: out of memory?)", pr->signal);
        else if (pr->signal)
            snprintf(why, sizeof why, "killed by signal %d (%s)", pr->signal, strsignal(pr->signal));
        else snprintf(why, sizeof why, "exit %d", pr->exit_code);
        res = fail_step(x, r, step, c, why, log_name, pr->seconds);
        goto done;
    }
    /* exit 0: its stdout must be one JSON object */
    fflush(af.f);
    size_t len = 0;
    if (lp_read_file(af.tmp_path, text, &len) != LP_OK || lp_json_parse(*text, len, jpath, doc) != LP_OK ||
        lp_json_root(*doc)->type != LP_JSON_OBJECT) {
        char why[600];
        snprintf(why, sizeof why, "exit 0 but its stdout is not one JSON object (%s)",
                 *doc ? "not an object" : lp_last_error());
        drop_json(text, doc);
        lp_atomic_abort(&af);
        res = fail_step(x, r, step, c, why, log_name, pr->seconds);
        goto done;
    }
    if (lp_atomic_commit(&af) != LP_OK) {
        fprintf(stderr, "llmpress suite: %s\n", lp_last_error());
        drop_json(text, doc);
        goto done;
    }
    if (!x->quiet) {
        char d[32];
        suite_fmt_duration(pr->seconds, d, sizeof d);
        fprintf(stderr, "%s; ", d);
    }
    struct stat st;
    if (fstat(logfd, &st) == 0 && st.st_size == 0) unlink(lpath); /* a quiet success leaves no empty log */
    res = STEP_OK;
done:
    if (logfd >= 0) close(logfd);
    free(jpath);
    free(lpath);
    return res;
}

/* The suite's record of a step: {"signature", "argv", "seconds", "peak_rss_bytes", "finished"}. */
static int write_record(const suite_result *r, const char *name, const cmd *c, const char *sig,
                        const suite_proc_result *pr, char **text, lp_json_doc **doc) {
    char *buf = NULL, when[40];
    size_t len = 0;
    iso_now(when, sizeof when);
    FILE *f = open_memstream(&buf, &len);
    if (!f) return (fprintf(stderr, "llmpress suite: out of memory\n"), 1);
    fprintf(f, "{\"signature\": ");
    cli_json_string(f, sig);
    fprintf(f, ", \"argv\": [");
    for (int i = 0; i < c->n; i++) {
        if (i) fputs(", ", f);
        cli_json_string(f, c->argv[i]);
    }
    fprintf(f, "], \"seconds\": %.3f, \"peak_rss_bytes\": %lld, \"finished\": \"%s\"}\n", pr->seconds,
            (long long)pr->peak_rss_bytes, when);
    if (fclose(f) != 0) {
        free(buf);
        return (fprintf(stderr, "llmpress suite: out of memory\n"), 1);
    }
    int rc = write_whole(r->dir, name, buf);
    if (rc == 0 && lp_json_parse(buf, strlen(buf), name, doc) == LP_OK) *text = buf;
    else free(buf);
    return rc;
}

/* The quantize step, unless its output is already there for this command. */
static step_result quantize_step(const suite_ctx *x, suite_result *r, const char *qsig) {
    if (r->quantize && signature_is(r->qrun, qsig) && exists_in(r->dir, "model/config.json")) {
        if (!x->quiet) fprintf(stderr, "quantize kept; ");
        return STEP_OK;
    }
    drop_json(&r->quantize_text, &r->quantize);
    drop_json(&r->qrun_text, &r->qrun);
    unlink_in(r->dir, "quantize.run.json");
    unlink_in(r->dir, "quantize.json");
    /* quantize's resume state is for one command: another one starts afresh */
    if (r->cell->resumable) {
        char *text = NULL;
        size_t len = 0;
        char *p = path2(r->dir, "resume.sig");
        const bool same = p && lp_read_file(p, &text, &len) == LP_OK && !strcmp(text, qsig);
        free(text);
        free(p);
        if (!same) {
            rm_tree_in(r->dir, "resume");
            if (write_whole(r->dir, "resume.sig", qsig)) return STEP_FATAL;
        } else if (!x->quiet && exists_in(r->dir, "resume")) {
            fprintf(stderr, "(resuming) ");
        }
    }
    cmd c = {0};
    build_quantize(x, r->model, r->cell, r->dir, &c);
    suite_proc_result pr;
    step_result s = run_step(x, r, "quantize", &c, "quantize.json", "quantize.log", &r->quantize_text,
                             &r->quantize, &pr);
    if (s == STEP_OK && write_record(r, "quantize.run.json", &c, qsig, &pr, &r->qrun_text, &r->qrun))
        s = STEP_FATAL;
    if (s == STEP_OK) unlink_in(r->dir, "resume.sig"); /* quantize removed its state once OUT was written */
    cmd_free(&c);
    return s;
}

int suite_cell_run(const suite_ctx *x, suite_result *r) {
    char *qsig = NULL, *esig = NULL;
    if (signatures(x, r, &qsig, &esig)) return 1;
    int rc = 0;
    /* DIR/cells/<model>/<id> */
    char *cells = path2(x->out, "cells"), *mdir = cells ? path2(cells, r->model->name) : NULL;
    if (!mdir || make_dir(cells) || make_dir(mdir) || make_dir(r->dir)) {
        rc = 1;
        goto done;
    }
    unlink_in(r->dir, "error.txt");
    free(r->error);
    r->error = NULL;
    r->status = SUITE_PENDING;
    r->kept = false;
    step_result s = STEP_OK;
    if (r->cell->method) s = quantize_step(x, r, qsig);
    if (s == STEP_OK && suite_proc_stop_signal()) s = STEP_STOPPED; /* its output is kept for the next run */
    /* info and eval: always together, for the model quantize made now */
    drop_json(&r->info_text, &r->info);
    drop_json(&r->eval_text, &r->eval);
    drop_json(&r->erun_text, &r->erun);
    if (s == STEP_OK) {
        unlink_in(r->dir, "eval.run.json");
        unlink_in(r->dir, "eval.json");
        unlink_in(r->dir, "info.json");
        cmd c = {0};
        suite_proc_result pr;
        build_info(x, r->model, r->cell, r->dir, &c);
        s = run_step(x, r, "info", &c, "info.json", "info.log", &r->info_text, &r->info, &pr);
        cmd_free(&c);
        if (s == STEP_OK && suite_proc_stop_signal()) s = STEP_STOPPED;
        if (s == STEP_OK) {
            build_eval(x, r->model, r->cell, r->dir, &c);
            s = run_step(x, r, "eval", &c, "eval.json", "eval.log", &r->eval_text, &r->eval, &pr);
            if (s == STEP_OK && write_record(r, "eval.run.json", &c, esig, &pr, &r->erun_text, &r->erun))
                s = STEP_FATAL;
            cmd_free(&c);
        }
    }
    if (s == STEP_OK) {
        if (r->cell->method && !x->keep_models) rm_tree_in(r->dir, "model");
        r->status = SUITE_OK;
        if (!x->quiet) fprintf(stderr, "ok");
    } else if (s == STEP_STOPPED) {
        r->status = SUITE_PENDING;
        if (!x->quiet) fprintf(stderr, "stopped\n");
    } else if (s == STEP_FATAL) {
        rc = 1;
    }
done:
    free(cells);
    free(mdir);
    free(qsig);
    free(esig);
    return rc;
}
