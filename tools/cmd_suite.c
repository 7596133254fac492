/*
 * cmd_suite.c - `llmpress suite GRID -o DIR`: run a grid of models x
 * methods x settings and report quality against size.
 *
 * What: reads the grid (suite_grid.c), runs every cell as child processes of
 *       this very binary (suite_cell.c: quantize, info, eval), shows progress
 *       with an ETA on stderr, and writes DIR/results.json, DIR/results.md
 *       and DIR/report.html (suite_report.c, suite_html.c).
 * Why:  one command turns a list of methods into a comparable table and
 *       plot, survives a night of runs being interrupted, and never redoes a
 *       finished cell.
 * Design: everything the grid says is checked before DIR is touched (exit 2,
 *       nothing written). DIR carries a marker file (.llmpress-suite): an
 *       existing directory without it is refused, so a typo in -o cannot
 *       scribble into a model directory; the marker is also locked (flock)
 *       while a suite runs, so two runs never share DIR. The first SIGINT or
 *       SIGTERM stops the running child (suite_proc.c), keeps every finished
 *       cell, writes the reports of what is done and exits 130; the next run
 *       continues. A failed cell is recorded and the suite goes on; the exit
 *       status is then 1.
 */
#include "cli.h"
#include "core/fileio.h"
#include "suite_cell.h"
#include "suite_grid.h"
#include "suite_proc.h"
#include "suite_report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define MARKER ".llmpress-suite"

static const char *const HELP =
    "usage: llmpress suite GRID -o DIR [--keep-models] [--threads N] [--quiet]\n"
    "       llmpress suite GRID --list\n"
    "\n"
    "Run every cell of GRID (models x methods x settings) with `llmpress quantize` and\n"
    "`llmpress eval` as child processes, then write DIR/results.json, DIR/results.md and\n"
    "DIR/report.html (quality vs bits per weight with the Pareto front, per-task accuracy,\n"
    "KL, speed and memory; one self-contained file, viewable offline), rewritten after every cell.\n"
    "Rerunning the same command keeps finished cells, retries failed ones, redoes cells\n"
    "whose settings changed and continues an interrupted calibrated quantize where it stopped.\n"
    "Ctrl-C (or SIGTERM) stops the running cell and writes the reports of what is done (exit 130).\n"
    "\n"
    "  -o, --out DIR   the suite's directory: new, empty, or one an earlier run made\n"
    "  --keep-models   keep each cell's compressed model (DIR/cells/MODEL/CELL/model)\n"
    "  --threads N     threads of every child process (over the grid's 'threads'; finished\n"
    "                  cells are kept: results do not depend on it)\n"
    "  --list          print the cells and their commands; run and write nothing\n"
    "  --report-only   write the reports from the cells already in DIR; run nothing\n"
    "  --quiet         no progress on stderr\n"
    "\n"
    "GRID, one setting per line as in a quantize recipe ('#' comments; paths are relative to\n"
    "the grid file's directory):\n"
    "  model PATH [NAME]  a checkpoint (repeatable: the models axis; NAME defaults to its directory)\n"
    "  calib FILE         calibration text for calibrated cells; nsamples N, seqlen N, seed N\n"
    "  ppl FILE ...       texts to score (repeatable); ctx N, windows N, protocol gptq|llamacpp\n"
    "  kl                 KL divergence of every compressed cell from its uncompressed model\n"
    "  tasks LIST         zero-shot tasks; tasks-dir DIR, limit N\n"
    "  threads N          threads of every child; eval-flags --FLAG ... (more flags for eval)\n"
    "  [name]             starts a cell; its lines are quantize settings (method, bits, group,\n"
    "                     act-order, awq-prescale, ...; calib/nsamples/seqlen/seed override);\n"
    "                     a section without settings is the uncompressed model. A line with\n"
    "                     several values ('bits 4 3 2') makes one cell per value: gptq-bits4, ...\n"
    "\n"
    "example grid:\n"
    "  model ../shared/assets/models/llama-25m\n"
    "  calib ../shared/assets/text/corpus/calib.txt\n"
    "  ppl ../shared/assets/text/wikitext-2-raw/wiki.test.raw\n"
    "  ctx 512\n"
    "  [f32]\n"
    "  [rtn]\n"
    "  method rtn\n"
    "  bits 4 3 2\n"
    "  group 128\n"
    "  [gptq]\n"
    "  method gptq\n"
    "  bits 4 3 2\n"
    "  group 128\n"
    "\n"
    "example: llmpress suite grids/llama-25m.txt -o runs/llama-25m   (then open runs/llama-25m/report.html)\n";

typedef struct {
    const char *grid, *out;
    bool keep_models, list, report_only, quiet;
    int64_t threads;
} sopts;

/* ---- the output directory ---- */

static bool dir_is_empty(const char *p) {
    int n = 0;
    DIR *d = opendir(p);
    if (!d) return false;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n == 0;
}

/* Check DIR before anything is written: 0, or 2 after printing why not. */
static int check_out(const cli_args *a, const char *out, bool must_exist) {
    struct stat st;
    if (!*out) return cli_usage_error(a, "-o needs a directory");
    if (stat(out, &st) != 0) {
        if (must_exist) return cli_usage_error(a, "-o %s: %s (--report-only reads a suite's directory)", out,
                                               strerror(errno));
        char *parent = strdup(out);
        if (!parent) return 1;
        char *slash = strrchr(parent, '/');
        while (slash && slash > parent && slash[1] == '\0') { /* "dir/" */
            *slash = '\0';
            slash = strrchr(parent, '/');
        }
        const char *pd = !slash ? "." : slash == parent ? "/" : (*slash = '\0', parent);
        const bool ok = lp_is_dir(pd) && access(pd, W_OK | X_OK) == 0;
        if (!ok) {
            cli_usage_error(a, "-o %s: its parent %s is not a writable directory", out, pd);
            free(parent);
            return 2;
        }
        free(parent);
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) return cli_usage_error(a, "-o %s exists and is not a directory", out);
    char *marker = lp_path_join(out, MARKER);
    const bool has = marker && lp_file_exists(marker);
    free(marker);
    if (!has && (must_exist || !dir_is_empty(out)))
        return cli_usage_error(a, "-o %s is a directory that no llmpress suite made (it has no %s file); give a new "
                               "or empty directory, or the directory of an earlier suite run", out, MARKER);
    return 0;
}

/* Create DIR (when new) and its marker, and lock the marker for this run.
 * Returns the locked descriptor (kept open until exit), or -1. */
static int open_out(const char *out, const char *grid) {
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "llmpress suite: cannot create %s: %s\n", out, strerror(errno));
        return -1;
    }
    char *marker = lp_path_join(out, MARKER);
    if (!marker) return -1;
    if (!lp_file_exists(marker)) {
        char text[4200];
        snprintf(text, sizeof text, "This directory is written by `llmpress suite` (grid %s).\n"
                 "Rerun the same command to continue; the reports are results.json, results.md, report.html.\n",
                 grid);
        lp_atomic_file af;
        lp_status st = lp_atomic_open(marker, &af);
        if (st == LP_OK) st = lp_atomic_write(&af, text, strlen(text));
        if (st == LP_OK) st = lp_atomic_commit(&af);
        else lp_atomic_abort(&af);
        if (st != LP_OK) {
            fprintf(stderr, "llmpress suite: %s\n", lp_last_error());
            free(marker);
            return -1;
        }
    }
    const int fd = open(marker, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        const bool busy = fd >= 0 && errno == EWOULDBLOCK;
        fprintf(stderr, "llmpress suite: %s: %s\n", out,
                busy ? "another llmpress suite is running on this directory" : strerror(errno));
        if (fd >= 0) close(fd);
        free(marker);
        return -1;
    }
    free(marker);
    return fd;
}

/* ---- the reports' header ---- */

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r')) s[--n] = '\0';
}

static void machine_text(char *buf, size_t n) {
    char cpu[160] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
                trim(cpu);
                break;
            }
        fclose(f);
    }
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const double mem = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    struct utsname u;
    const bool un = uname(&u) == 0;
    snprintf(buf, n, "%s, %ld cores, %.1f GB memory%s%s%s%s", cpu, cores, mem / 1e9, un ? ", " : "",
             un ? u.sysname : "", un ? " " : "", un ? u.release : "");
}

/* llmpress's commit: the source tree CMake built this binary from (its
 * CMakeCache.txt beside the binary), asked to git; "" when unknown. */
static void commit_text(const char *self, char *buf, size_t n) {
    buf[0] = '\0';
#ifdef LLMPRESS_COMMIT
    snprintf(buf, n, "%s", LLMPRESS_COMMIT);
    return;
#endif
    if (!self) return;
    char dir[4096], src[4200] = "";
    snprintf(dir, sizeof dir, "%s", self);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    snprintf(slash, sizeof dir - (size_t)(slash - dir), "/CMakeCache.txt");
    FILE *f = fopen(dir, "r");
    if (!f) return;
    char line[4200];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "CMAKE_HOME_DIRECTORY:INTERNAL=", 30)) {
            snprintf(src, sizeof src, "%s", line + 30);
            trim(src);
        }
    fclose(f);
    if (!*src) return;
    char out[256], dirty[64];
    char *log[] = {"git", "-C", src, "log", "-1", "--format=%h (%cs)", NULL};
    if (!suite_proc_capture(log, out, sizeof out)) return;
    trim(out);
    char *status[] = {"git", "-C", src, "status", "--porcelain", "--untracked-files=no", NULL};
    const bool changed = suite_proc_capture(status, dirty, sizeof dirty) && dirty[0];
    snprintf(buf, n, "%s%s", out, changed ? ", with uncommitted changes" : "");
}

/* The header's facts, before any cell runs: once a stop signal has come,
 * every child (git's too) is stopped as soon as it starts. */
static void make_meta(const sopts *o, const suite_grid *g, const char *self, suite_meta *meta) {
    memset(meta, 0, sizeof *meta);
    meta->grid_path = o->grid;
    meta->grid_text = g->text;
    machine_text(meta->machine, sizeof meta->machine);
    commit_text(self, meta->commit, sizeof meta->commit);
}

/* The report's date: when it is written. */
static void stamp_meta(suite_meta *meta) {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(meta->date, sizeof meta->date, "%Y-%m-%d %H:%M %Z", &tm);
}

/* ---- running ---- */

static int parse_flags(int argc, char **argv, sopts *o, cli_args *a) {
    for (; a->i < argc; a->i++) {
        const char *f = argv[a->i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return -1;
        } else if (!strcmp(f, "-o") || !strcmp(f, "--out")) {
            if (!(o->out = cli_value(a))) return 2;
        } else if (!strcmp(f, "--threads")) {
            if (!cli_parse_i64(a, cli_value(a), 1, 1024, &o->threads)) return 2;
        } else if (!strcmp(f, "--keep-models")) {
            o->keep_models = true;
        } else if (!strcmp(f, "--list")) {
            o->list = true;
        } else if (!strcmp(f, "--report-only")) {
            o->report_only = true;
        } else if (!strcmp(f, "--quiet") || !strcmp(f, "-q")) {
            o->quiet = true;
        } else if (f[0] == '-' && f[1]) {
            return cli_usage_error(a, "unknown flag '%s'", f);
        } else if (!o->grid) {
            o->grid = f;
        } else {
            return cli_usage_error(a, "unexpected argument '%s' (one GRID file)", f);
        }
    }
    if (!o->grid) return cli_usage_error(a, "no GRID file given");
    if (!o->out && !o->list) return cli_usage_error(a, "no output directory: give -o DIR");
    if (o->list && o->report_only) return cli_usage_error(a, "--list and --report-only do not go together");
    return 0;
}

/* --list: the cells and their commands. */
static void list_cells(const suite_ctx *x) {
    const suite_grid *g = x->g;
    printf("%d cells: %d model%s x %d grid cell%s\n", g->nmodels * g->ncells, g->nmodels, g->nmodels == 1 ? "" : "s",
           g->ncells, g->ncells == 1 ? "" : "s");
    for (int mi = 0; mi < g->nmodels; mi++)
        for (int ci = 0; ci < g->ncells; ci++) {
            const suite_cell *c = &g->cells[ci];
            printf("%s/%s  (%s, %s line %d)\n", g->models[mi].name, c->id, c->method ? c->method : "uncompressed",
                   g->path, c->line);
            suite_cell_print_commands(x, &g->models[mi], c);
        }
}

/* Run every cell that is not finished, rewriting the reports after each
 * (report.html shows a long run's progress); returns the exit status. */
static int run_cells(const suite_ctx *x, suite_result *rs, int n, suite_meta *meta, bool *stopped) {
    int kept = 0, failed = 0, ran = 0, rc = 0;
    for (int i = 0; i < n; i++) kept += rs[i].status == SUITE_OK;
    if (!x->quiet)
        fprintf(stderr, "[suite] %d cells (%d model%s x %d): %d finished earlier, %d to run; results in %s\n", n,
                x->g->nmodels, x->g->nmodels == 1 ? "" : "s", x->g->ncells, kept, n - kept, x->out);
    double spent = 0;
    for (int i = 0; i < n && !*stopped && rc == 0; i++) {
        suite_result *r = &rs[i];
        if (r->status == SUITE_OK) {
            if (!x->quiet)
                fprintf(stderr, "[suite] cell %d/%d %s (%s): kept\n", i + 1, n, r->cell->id, r->model->name);
            continue;
        }
        if (!x->quiet) fprintf(stderr, "[suite] cell %d/%d %s (%s): ", i + 1, n, r->cell->id, r->model->name);
        const double t0 = cli_now();
        if (suite_cell_run(x, r) != 0) {
            rc = 1;
            break;
        }
        if (r->status == SUITE_PENDING) { /* interrupted */
            *stopped = true;
            break;
        }
        spent += cli_now() - t0;
        ran++;
        stamp_meta(meta);
        if (suite_report_write(x, meta, rs, n) != 0) {
            rc = 1;
            break;
        }
        failed += r->status == SUITE_FAILED;
        int left = 0;
        for (int j = i + 1; j < n; j++) left += rs[j].status != SUITE_OK;
        if (!x->quiet && r->status == SUITE_OK) {
            char d[32];
            suite_fmt_duration(spent / ran * left, d, sizeof d);
            if (left) fprintf(stderr, "; %d to go, ETA %s\n", left, d);
            else fputc('\n', stderr);
        }
        if (suite_proc_stop_signal()) *stopped = true;
    }
    if (rc) return rc;
    if (!x->quiet && *stopped)
        fprintf(stderr, "[suite] stopped by signal %d: finished cells are kept; run the same command again to "
                "continue\n", suite_proc_stop_signal());
    return failed ? 1 : 0;
}

int cmd_suite(int argc, char **argv) {
    sopts o = {0};
    cli_args a = {argc, 1, argv, "suite"};
    int rc = parse_flags(argc, argv, &o, &a);
    if (rc) return rc < 0 ? 0 : rc;
    suite_grid g;
    rc = suite_grid_load(o.grid, &g);
    if (rc) {
        suite_grid_free(&g);
        return rc;
    }
    char *self = suite_proc_self();
    suite_ctx x = {.g = &g, .self = self ? self : "llmpress", .out = o.out, .keep_models = o.keep_models,
                   .quiet = o.quiet, .threads = o.threads};
    if (o.list) {
        list_cells(&x);
        suite_grid_free(&g);
        free(self);
        return 0;
    }
    if (!self) {
        fprintf(stderr, "llmpress suite: cannot find this program's own path (/proc/self/exe)\n");
        suite_grid_free(&g);
        return 1;
    }
    rc = check_out(&a, o.out, o.report_only);
    const int lock = rc ? -1 : open_out(o.out, o.grid);
    if (!rc && lock < 0) rc = 1;
    const int n = g.nmodels * g.ncells;
    suite_result *rs = rc ? NULL : calloc((size_t)n, sizeof *rs);
    if (!rc && !rs) rc = (fprintf(stderr, "llmpress suite: out of memory\n"), 1);
    for (int i = 0; rc == 0 && i < n; i++) rc = suite_cell_open(&x, &g.models[i / g.ncells], &g.cells[i % g.ncells],
                                                                &rs[i]);
    bool stopped = false;
    const double t0 = cli_now();
    if (rc == 0) {
        suite_meta meta;
        make_meta(&o, &g, self, &meta);
        if (!o.report_only) {
            suite_proc_signals();
            rc = run_cells(&x, rs, n, &meta, &stopped);
        }
        stamp_meta(&meta);
        if (suite_report_write(&x, &meta, rs, n) != 0) rc = 1;
        else if (!o.quiet) {
            int ok = 0, failed = 0;
            for (int i = 0; i < n; i++) ok += rs[i].status == SUITE_OK, failed += rs[i].status == SUITE_FAILED;
            char d[32];
            suite_fmt_duration(cli_now() - t0, d, sizeof d);
            fprintf(stderr, "[suite] %d ok, %d failed, %d pending (%s); wrote %s/report.html, results.md, "
                    "results.json\n", ok, failed, n - ok - failed, d, o.out);
        }
    }
    for (int i = 0; rs && i < n; i++) suite_result_free(&rs[i]);
    free(rs);
    if (lock >= 0) close(lock);
    suite_grid_free(&g);
    free(self);
    if (stopped) return 130;
    return rc;
}
