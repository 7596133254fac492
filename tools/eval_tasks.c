/*
 * eval_tasks.c - `llmpress eval --tasks LIST --tasks-dir DIR [--limit N]`:
 * zero-shot accuracy in the lm-evaluation-harness 0.4 conventions
 * (include/llmpress/tasks.h).
 *
 * What: turns the task list into names, loads every task file first (a bad
 * line fails before minutes of scoring), scores each task (lp_task_score),
 * computes its metrics and prints a table, or the JSON member "tasks" for
 * the caller's eval object.
 * Design: the JSON is built in memory and written only when every task was
 * scored, so the caller's object is whole or the command fails; non-finite
 * numbers (a standard error of one example) are written as null. Keys per
 * task: n, acc, acc_stderr, then acc_norm, acc_norm_stderr (multiple choice)
 * or ppl (lambada_openai), and seconds.
 */
#include "eval_tasks.h"

#include "cli.h"
#include "llmpress/tasks.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int k, K;       /* task k of K */
    double t0, last; /* start, last print */
    bool quiet;
} progress_state;

static void on_progress(void *ud, int64_t done, int64_t total) {
    progress_state *ps = ud;
    if (ps->quiet) return;
    const double now = cli_now(), el = now - ps->t0;
    if (done < total && now - ps->last < 0.5) return;
    ps->last = now;
    const double eta = done ? el / (double)done * (double)(total - done) : 0;
    fprintf(stderr, "\r[tasks] %d/%d %s: %lld/%lld examples  %.1fs, ETA %.0fs   ", ps->k, ps->K, ps->name,
            (long long)done, (long long)total, el, eta);
    if (done == total) fputc('\n', stderr);
}

static void json_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6f", v);
    else fputs("null", f);
}

/* The selected task indices, in the order given (duplicates once); 0 or 2. */
static int parse_list(const char *list, int *sel, int *nsel) {
    const int NT = lp_task_count();
    *nsel = 0;
    if (!list || !*list) {
        fprintf(stderr, "llmpress eval: --tasks needs a list: all, or names separated by commas\n");
        return 2;
    }
    if (!strcmp(list, "all")) {
        for (int i = 0; i < NT; i++) sel[(*nsel)++] = i;
        return 0;
    }
    for (const char *p = list;;) {
        const char *comma = strchr(p, ',');
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char name[64];
        int idx = -1;
        if (len > 0 && len < sizeof name) {
            memcpy(name, p, len);
            name[len] = '\0';
            idx = lp_task_index(name);
        }
        if (idx < 0) {
            if (len == 0) fprintf(stderr, "llmpress eval: --tasks '%s' has an empty name;", list);
            else fprintf(stderr, "llmpress eval: unknown task '%.*s' in --tasks;", (int)(len > 64 ? 64 : len), p);
            fputs(" known tasks:", stderr);
            for (int i = 0; i < NT; i++) fprintf(stderr, "%s %s", i ? "," : "", lp_task_name(i));
            fputs(" (or all)\n", stderr);
            return 2;
        }
        bool seen = false;
        for (int i = 0; i < *nsel; i++) seen |= sel[i] == idx;
        if (!seen) sel[(*nsel)++] = idx;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

int cli_eval_tasks(const lp_model *m, const lp_tokenizer *tok, const char *list, const char *dir, int64_t limit,
                   bool quiet, FILE *json) {
    int sel[64], nsel = 0;
    int rc = parse_list(list, sel, &nsel);
    if (rc) return rc;
    if (!dir || !*dir) {
        fprintf(stderr, "llmpress eval: --tasks needs --tasks-dir DIR (the directory holding piqa.jsonl, "
                        "hellaswag/hellaswag_val_full.txt, ...)\n");
        return 2;
    }
    if (limit < 0) limit = 0;

    lp_task *tasks[64] = {0};
    lp_task_metrics met[64];
    double secs[64];
    for (int i = 0; i < nsel && rc == 0; i++)
        if (lp_task_load(lp_task_name(sel[i]), dir, limit, &tasks[i]) != LP_OK)
            rc = (fprintf(stderr, "llmpress eval: %s\n", lp_last_error()), 1);
    /* lp_task_score runs examples in parallel with single-threaded forwards.
     * The OpenMP OpenBLAS (openblas_get_parallel() == 2, the build CMake finds
     * on Debian/Ubuntu with libopenblas0-openmp) is single-threaded inside a
     * parallel region by itself; a pthreads OpenBLAS (== 1) would start its
     * own threads in every call (measured, 2 cores: 21.4 s instead of 14.2 s),
     * so it is set to one thread for the scoring and restored after. */
    const bool blas_pthreads = openblas_get_parallel() == 1;
    const int blas_threads = openblas_get_num_threads();
    if (blas_pthreads) openblas_set_num_threads(1);
    for (int i = 0; i < nsel && rc == 0; i++) {
        lp_task *t = tasks[i];
        lp_task_ll *ll = malloc((size_t)t->n_requests * sizeof *ll);
        if (!ll) {
            rc = (fprintf(stderr, "llmpress eval: out of memory\n"), 1);
            break;
        }
        progress_state ps = {t->name, i + 1, nsel, cli_now(), 0, quiet};
        lp_task_params p = lp_task_default_params();
        p.progress = on_progress;
        p.progress_ud = &ps;
        if (lp_task_score(m, tok, t, &p, ll) != LP_OK) {
            if (!quiet) fputc('\n', stderr);
            rc = (fprintf(stderr, "llmpress eval: %s\n", lp_last_error()), 1);
        } else {
            lp_task_metrics_compute(t, ll, &met[i]);
            secs[i] = cli_now() - ps.t0;
        }
        free(ll);
    }
    if (blas_pthreads) openblas_set_num_threads(blas_threads);

    if (rc == 0 && json) {
        char *buf = NULL;
        size_t len = 0;
        FILE *js = open_memstream(&buf, &len);
        if (!js) rc = (fprintf(stderr, "llmpress eval: out of memory\n"), 1);
        if (js) {
            fputs("\"tasks\": {", js);
            for (int i = 0; i < nsel; i++) {
                const lp_task_metrics *r = &met[i];
                fprintf(js, "%s", i ? ", " : "");
                cli_json_string(js, tasks[i]->name);
                fprintf(js, ": {\"n\": %lld, \"acc\": ", (long long)r->n);
                json_num(js, r->acc);
                fputs(", \"acc_stderr\": ", js);
                json_num(js, r->acc_stderr);
                if (tasks[i]->type == LP_TASK_CHOICE) {
                    fputs(", \"acc_norm\": ", js);
                    json_num(js, r->acc_norm);
                    fputs(", \"acc_norm_stderr\": ", js);
                    json_num(js, r->acc_norm_stderr);
                } else if (tasks[i]->type == LP_TASK_LAMBADA) {
                    fputs(", \"ppl\": ", js);
                    json_num(js, r->ppl);
                }
                fprintf(js, ", \"seconds\": %.1f}", secs[i]);
            }
            fputc('}', js);
            if (fclose(js) != 0) rc = (fprintf(stderr, "llmpress eval: out of memory\n"), 1);
            else if (fwrite(buf, 1, len, json) != len) rc = (fprintf(stderr, "llmpress eval: cannot write the JSON\n"), 1);
            free(buf);
        }
    } else if (rc == 0) {
        printf("%-16s %6s  %7s %8s  %8s %8s  %10s %8s\n", "task", "n", "acc", "stderr", "acc_norm", "stderr", "ppl",
               "seconds");
        for (int i = 0; i < nsel; i++) {
            const lp_task_metrics *r = &met[i];
            printf("%-16s %6lld  %7.4f %8.4f  ", tasks[i]->name, (long long)r->n, r->acc, r->acc_stderr);
            if (tasks[i]->type == LP_TASK_CHOICE) printf("%8.4f %8.4f  ", r->acc_norm, r->acc_norm_stderr);
            else printf("%8s %8s  ", "-", "-");
            if (tasks[i]->type == LP_TASK_LAMBADA) printf("%10.3f", r->ppl);
            else printf("%10s", "-");
            printf(" %8.1f\n", secs[i]);
        }
        printf("(lm-evaluation-harness 0.4 conventions, zero-shot%s; stderr = sqrt(p(1-p)/(n-1)))\n",
               limit > 0 ? ", first --limit examples of each task" : "");
    }
    for (int i = 0; i < nsel; i++) lp_task_free(tasks[i]);
    return rc;
}
