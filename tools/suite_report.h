/*
 * suite_report.h - what `llmpress suite` writes from its cells' results:
 * results.json, results.md (suite_report.c) and report.html (suite_html.c),
 * and the accessors both read the cells' JSON through.
 *
 * What: one number per question (bits per weight, size, perplexity of text
 *       i, KL, task accuracy, speed, peak memory), NAN when a cell's JSON
 *       does not have it, so that every table prints "-" for a missing key
 *       and an older `llmpress eval` (perplexity only) still makes a report.
 * Why:  the children's JSON grows (KL, tasks, speed arrive in eval later);
 *       the reports must neither crash nor lie when a key is absent.
 * Design: the reports are built in memory and written whole (temporary
 *       name, then rename), so an interrupted suite never leaves a half
 *       report; each is rewritten at the end of every run from every cell's
 *       files, so kept cells and new ones appear together.
 */
#ifndef LP_SUITE_REPORT_H
#define LP_SUITE_REPORT_H

#include "suite_cell.h"

#include <stdio.h>

/* The run's context for the reports' headers. */
typedef struct {
    const char *grid_path;
    const char *grid_text;
    char date[64];     /* local time of the report */
    char machine[256]; /* CPU, cores, memory, kernel */
    char commit[80];   /* llmpress's git commit when known, else "" */
} suite_meta;

/* Write results.json, results.md and report.html into x->out. 0, or 1
 * after printing why one could not be written. */
int suite_report_write(const suite_ctx *x, const suite_meta *meta, const suite_result *rs, int n);

/* ---- accessors (NAN / NULL when absent) ---- */
double suite_num(const lp_json *obj, const char *path); /* dotted: "speed.decode_tok_s" */
double suite_bits(const suite_result *r);               /* linear bits per weight */
double suite_total_bytes(const suite_result *r);
double suite_ppl(const suite_result *r, int file);
const lp_json *suite_kl(const suite_result *r, int file); /* results[file].kl */
double suite_compress_seconds(const suite_result *r);
double suite_eval_peak_rss(const suite_result *r);
double suite_quantize_peak_rss(const suite_result *r);
double suite_task(const suite_result *r, const char *task, const char *key); /* "acc", "acc_stderr" */
/* The mean accuracy over the tasks named (NAN unless every one has "acc"). */
double suite_task_mean(const suite_result *r, const char *const *tasks, int ntasks);
/* The union of the task names of the cells, in order of first appearance
 * (at most max; pointers into the cells' documents). */
int suite_task_names(const suite_result *rs, int n, const char **names, int max);
/* The model's uncompressed cell when it finished, else NULL. */
const suite_result *suite_reference(const suite_result *rs, int n, const suite_model *m);
/* The method family ("gptq", "awq+gptq", "uncompressed"), for colours and legends. */
void suite_family(const suite_result *r, char *buf, size_t n);
/* Whether each cell of model m is on its Pareto front of (bits, ppl of the
 * first text): no other finished cell has both fewer or equal bits and lower
 * or equal perplexity, one of them strictly. front[i] for rs[i]. */
void suite_pareto(const suite_result *rs, int n, const suite_model *m, bool *front);
/* A text file's name without its directory. */
const char *suite_basename(const char *path);

/* ---- number formats shared by the tables ("-" for NAN) ---- */
void suite_fmt_ppl(double v, char *buf, size_t n);
void suite_fmt(double v, int decimals, char *buf, size_t n);
void suite_fmt_mb(double bytes, char *buf, size_t n);
void suite_fmt_rate(double v, char *buf, size_t n); /* tokens per second */

/* report.html (suite_html.c) into f. */
void suite_html_write(FILE *f, const suite_ctx *x, const suite_meta *meta, const suite_result *rs, int n);

#endif
