/*
 * cli.h - shared helpers of the llmpress command-line tool: strict flag
 * parsing, loading a model with its tokenizer, reading text files, JSON
 * string output. The commands themselves live in cmd_*.c; each is a thin
 * layer over the library that parses flags, calls it and prints.
 */
#ifndef LP_CLI_H
#define LP_CLI_H

#include "llmpress/eval.h"
#include "llmpress/model.h"
#include "llmpress/quant.h"
#include "llmpress/status.h"
#include "llmpress/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Flag cursor: argv[i] is the current word. */
typedef struct {
    int argc, i;
    char **argv;
    const char *cmd;
} cli_args;

/* Print "llmpress CMD: message" to stderr and return 2 (usage) or 1. */
int cli_usage_error(const cli_args *a, const char *fmt, ...);
int cli_lib_error(const char *cmd, const char *what); /* prints lp_last_error() */

/* Value of the current flag (argv[i+1]); advances. NULL (after printing an
 * error) when missing. */
const char *cli_value(cli_args *a);
bool cli_parse_i64(cli_args *a, const char *s, int64_t lo, int64_t hi, int64_t *out);
bool cli_parse_f64(cli_args *a, const char *s, double lo, double hi, double *out);

/* --threads N: OpenMP and BLAS threads. */
void cli_set_threads(int n);

/* Load a whole text file, naming it in any error. */
lp_status cli_read_text(const char *path, char **text, size_t *len);

/* Tokenizer of a model directory: tokenizer.json, else a llama2.c tok*.bin. */
lp_status cli_load_tokenizer(const char *dir, lp_tokenizer **out);

/* Tokenize a calibration text with the model's tokenizer and draw nsamples
 * windows of seqlen tokens (lp_calib_sample). Prints its own errors as
 * "llmpress CMD: ..."; returns 0 on success. */
int cli_load_calibration(const char *cmd, const char *model_dir, const char *file, int64_t nsamples, int64_t seqlen,
                         uint64_t seed, int32_t **windows);
void cli_json_string(FILE *f, const char *s);
double cli_now(void);

int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_suite(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_logprobs(int argc, char **argv);

#endif
