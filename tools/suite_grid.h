/*
 * suite_grid.h - the grid file of `llmpress suite`: models x cells, read and
 * checked whole before any work.
 *
 * What: a grid is a recipe-syntax text file (one setting per line, "name
 *       [value ...]", a flag without its dashes, '#' comments). Top-level
 *       lines name the models, the calibration and the evaluation; each
 *       "[name]" section is a cell whose lines are quantize settings exactly
 *       as in a recipe. A line with several values ("bits 4 3 2") expands its
 *       section into one cell per value (the cross product over such lines).
 * Why:  a benchmark of dozens of runs must fail on a typo before the first
 *       hour of work, naming GRID:line, not in cell 17.
 * Design: every method setting is checked against the method registry
 *       (lp_settings_set, lp_quant_params_check) for every expanded cell, and
 *       every path is resolved (relative to the grid's own directory) and
 *       checked to exist. The parsed grid owns all its strings.
 */
#ifndef LP_SUITE_GRID_H
#define LP_SUITE_GRID_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *path; /* resolved, absolute */
    const char *name; /* the models axis: the directory's name, or the line's second word */
    int line;
} suite_model;

/* One quantize setting of a cell: the flag's name without dashes and its
 * value (NULL for a flag such as "act-order" or "awq-prescale"). */
typedef struct {
    const char *name, *value;
    int line;
} suite_setting;

typedef struct {
    const char *id;      /* the section's name and the values that vary: "gptq-bits3" */
    const char *section; /* "gptq" */
    int line;            /* of the "[gptq]" line */
    const char *method;  /* NULL: the uncompressed model (a section without settings) */
    suite_setting *sets; /* the method's settings in file order (not method, not calibration) */
    int nsets;
    bool calibrated;     /* quantize needs --calib for these settings */
    bool resumable;      /* calibrated, and quantize --resume works for the method */
    /* this cell's calibration (a section may override the grid's); 0 = quantize's default */
    const char *calib;
    int64_t nsamples, seqlen, seed;
    bool has_seed;
} suite_cell;

typedef struct {
    char *path;           /* the grid file as given */
    char *text;           /* its text, for the report */
    suite_model *models;
    int nmodels;
    /* evaluation (llmpress eval); 0 / NULL = eval's default, not passed */
    const char **ppl;     /* resolved text files */
    int nppl;
    int64_t ctx, windows, limit, threads;
    const char *protocol, *tasks, *tasks_dir;
    bool kl;              /* every compressed cell against its model: --kl MODEL */
    const char **eval_flags; /* "eval-flags" words appended to every eval command */
    int neval_flags;
    suite_cell *cells;
    int ncells;
    /* every string above, freed by suite_grid_free */
    char **owned;
    int nowned, capowned;
} suite_grid;

/* Read, check and expand GRID. Returns 0, or after printing the problem
 * ("llmpress suite: GRID:LINE: ...") 2 for a bad grid, 1 when it could not
 * be read or memory ran out. */
int suite_grid_load(const char *path, suite_grid *g);
void suite_grid_free(suite_grid *g);

/* A safe file name: [A-Za-z0-9._+-], not starting with '.'; other bytes
 * become '_'. Writes at most n-1 characters. */
void suite_safe_name(const char *s, char *out, int n);

#endif
