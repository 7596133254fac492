/*
 * suite_cell.h - one cell of `llmpress suite`: its commands, its files, and
 * whether an earlier run already finished it.
 *
 * What: a cell is (model, grid cell). Its directory DIR/cells/<model>/<id>
 *       holds what its child processes printed (quantize.json, info.json,
 *       eval.json: each written whole, under a temporary name first), the
 *       suite's record of each run (quantize.run.json, eval.run.json: the
 *       command's signature, wall time, peak memory), the children's stderr
 *       (*.log), error.txt when it failed, and, while it runs, the compressed
 *       model (model/) and quantize's resume state (resume/).
 * Why:  a cell is finished exactly when eval.json parses and the recorded
 *       signatures match the commands the grid makes now, so a rerun skips
 *       finished cells, redoes a cell whose settings changed, and picks up an
 *       interrupted calibrated quantize after its last finished block.
 * Design: a signature is the command's words with the cell's own paths
 *       written as <cell> and without --threads, the binary's path and the
 *       output flags: moving DIR, rebuilding llmpress or changing the thread
 *       count keeps finished cells.
 */
#ifndef LP_SUITE_CELL_H
#define LP_SUITE_CELL_H

#include "suite_grid.h"

#include "io/json.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    SUITE_PENDING = 0, /* not run yet (or interrupted) */
    SUITE_OK = 1,
    SUITE_FAILED = 2,
} suite_status;

/* What the suite runs with. */
typedef struct {
    const suite_grid *g;
    const char *self; /* our own binary */
    const char *out;  /* DIR */
    bool keep_models; /* keep each cell's compressed model */
    bool quiet;       /* no progress on stderr */
    int64_t threads;  /* --threads: every child's threads, over the grid's (0: the grid's) */
} suite_ctx;

/* A cell's state and results: what the reports read. */
typedef struct {
    const suite_model *model;
    const suite_cell *cell;
    char *dir;           /* DIR/cells/<model>/<id> */
    suite_status status;
    bool kept;           /* finished by an earlier run */
    char *error;         /* failed: error.txt (its first line is a summary) */
    /* each child's JSON as it printed it (embedded in results.json) and parsed */
    char *quantize_text, *info_text, *eval_text;
    lp_json_doc *quantize, *info, *eval;
    /* the suite's records of the quantize and eval runs */
    char *qrun_text, *erun_text;
    lp_json_doc *qrun, *erun;
} suite_result;

/* Fill r for (m, c) and read what an earlier run left in its directory:
 * SUITE_OK (kept) when it is finished for the current grid, SUITE_FAILED
 * with the error when error.txt is there, else SUITE_PENDING. 0, or 1 when
 * memory ran out. */
int suite_cell_open(const suite_ctx *x, const suite_model *m, const suite_cell *c, suite_result *r);

/* Run the cell's missing steps (quantize, info, eval; then remove the
 * compressed model unless keep_models), printing "quantize ... 41 s; " etc.
 * unless quiet. Sets r->status: SUITE_OK, SUITE_FAILED (error.txt written),
 * or SUITE_PENDING when a stop signal interrupted it. Returns 0, or 1 when
 * the suite itself cannot go on (its directory cannot be written). */
int suite_cell_run(const suite_ctx *x, suite_result *r);

/* Print the cell's commands, one per line, shell-quoted (for --list). */
void suite_cell_print_commands(const suite_ctx *x, const suite_model *m, const suite_cell *c);

void suite_result_free(suite_result *r);

/* "41 s", "3 min 20 s", "2 h 05 min" into buf. */
void suite_fmt_duration(double s, char *buf, size_t n);

#endif
