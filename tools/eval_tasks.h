/*
 * eval_tasks.h - the zero-shot part of `llmpress eval` (--tasks, --tasks-dir,
 * --limit): load the named tasks, score them, print a table or JSON.
 */
#ifndef LP_EVAL_TASKS_H
#define LP_EVAL_TASKS_H

#include "llmpress/model.h"
#include "llmpress/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* list: "all" or comma-separated task names (lp_task_name); dir: the tasks
 * directory; limit > 0 scores the first limit examples of each task (0: all).
 * Every task file is read before any scoring, so bad data fails at once.
 * With json, writes exactly `"tasks": {"<name>": {"n": .., "acc": .., ...}, ...}`
 * to it (no leading comma, no newline) and nothing on stdout; without, a table
 * on stdout. Progress with ETA on stderr unless quiet. Returns 0; or prints
 * "llmpress eval: <message>" on stderr and returns 1 (bad data, a missing
 * file, a failure) or 2 (bad usage: an unknown task name, an empty list);
 * json is written only on success. */
int cli_eval_tasks(const lp_model *m, const lp_tokenizer *tok, const char *list, const char *dir, int64_t limit,
                   bool quiet, FILE *json);

#endif
