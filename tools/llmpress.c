/*
 * llmpress.c - the command-line tool: dispatch to a subcommand, plus the
 * helpers every subcommand shares (cli.h).
 */
#include "cli.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <omp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fileio.h"

static const char *const USAGE =
    "llmpress - compress LLMs after training, run them, and measure what was lost\n"
    "\n"
    "usage: llmpress COMMAND MODEL [flags]      (MODEL: a Hugging Face checkpoint directory or a .gguf file)\n"
    "\n"
    "commands:\n"
    "  quantize   compress a model:      llmpress quantize MODEL --method rtn --bits 4 --group 128 -o OUT\n"
    "  eval       what was lost:         llmpress eval MODEL --ppl wiki.test.raw --kl ORIGINAL --tasks all ...\n"
    "  export     GGUF / GPTQ files:     llmpress export MODEL --to gguf --type Q4_K -o model.gguf\n"
    "  bench      prefill/decode speed:  llmpress bench MODEL -p 512 -n 128\n"
    "  logprobs   per-token log-probs:   llmpress logprobs MODEL -f text.txt\n"
    "  run        generate text:         llmpress run MODEL -p \"Once upon a time\" -n 64\n"
    "  info       sizes and formats:     llmpress info MODEL\n"
    "  tokenize   text to token ids:     llmpress tokenize MODEL -p \"Hello world\"\n"
    "  suite      a grid of methods:     llmpress suite grids/llama-25m.txt -o results/  (GRID, not MODEL)\n"
    "\n"
    "Run `llmpress COMMAND --help` for the flags of one command.\n";

/* SIGINT/SIGTERM: remove what the library has half written (a temporary
 * output directory, a *.tmp.<pid> file, an output's lock), then die of the
 * same signal so the caller sees it. Only async-signal-safe calls: unlink
 * and rmdir of paths listed beforehand, signal, raise. A resumable quantize
 * installs its own handler for the compression (it stops cleanly instead)
 * and puts this one back. */
static void on_fatal_signal(int sig) {
    lp_temp_remove_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* A command that fails after taking an output's lock leaves no lock file. */
static void remove_temporaries(void) { lp_temp_remove_all(); }

static int dispatch(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "suite")) return cmd_suite(argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "logprobs")) return cmd_logprobs(argc - 1, argv + 1);
    fprintf(stderr, "llmpress: unknown command '%s'\n\n%s", cmd, USAGE);
    return 2;
}

/* Every command's stdout is checked here, once: a write that failed (a full
 * disk, /dev/full, a closed descriptor) fails the run, exit 1 with a message
 * on stderr, instead of exit 0 with the output lost. stdout is buffered, so
 * most write errors only show at this final flush. Closing it (as gnulib's
 * close_stdout does) also reports errors a file system defers to close; a
 * stdout that was closed before we started and never written is fine. */
static int close_stdout(int rc) {
    errno = 0;
    bool failed = fflush(stdout) != 0 || ferror(stdout);
    int err = errno;
    if (fclose(stdout) != 0 && errno != EBADF) {
        failed = true;
        if (!err) err = errno;
    }
    if (!failed) return rc;
    fprintf(stderr, "llmpress: error writing to standard output%s%s\n", err ? ": " : "", err ? strerror(err) : "");
    return rc ? rc : 1;
}

int main(int argc, char **argv) {
    /* a signal ignored by whoever started us (nohup, a background job of a
     * script) stays ignored */
    if (signal(SIGINT, on_fatal_signal) == SIG_IGN) signal(SIGINT, SIG_IGN);
    if (signal(SIGTERM, on_fatal_signal) == SIG_IGN) signal(SIGTERM, SIG_IGN);
    atexit(remove_temporaries);
    return close_stdout(dispatch(argc, argv));
}

int cli_usage_error(const cli_args *a, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "llmpress %s: ", a->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    /* a->cmd may carry a location ("quantize: recipe F, line N"): the hint names the command */
    fprintf(stderr, "\n(see `llmpress %.*s --help`)\n", (int)strcspn(a->cmd, ":"), a->cmd);
    return 2;
}

int cli_lib_error(const char *cmd, const char *what) {
    fprintf(stderr, "llmpress %s: %s%s%s\n", cmd, what ? what : "", what ? ": " : "", lp_last_error());
    return 1;
}

const char *cli_value(cli_args *a) {
    if (a->i + 1 >= a->argc) {
        cli_usage_error(a, "flag %s needs a value", a->argv[a->i]);
        return NULL;
    }
    return a->argv[++a->i];
}

bool cli_parse_i64(cli_args *a, const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!s) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_usage_error(a, "%s expects an integer in [%lld, %lld], got '%s'", a->argv[a->i - 1],
                        (long long)lo, (long long)hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_f64(cli_args *a, const char *s, double lo, double hi, double *out) {
    if (!s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        cli_usage_error(a, "%s expects a number in [%g, %g], got '%s'", a->argv[a->i - 1], lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

void cli_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

lp_status cli_read_text(const char *path, char **text, size_t *len) {
    return lp_read_file(path, text, len);
}

lp_status cli_load_tokenizer(const char *dir, lp_tokenizer **out) {
    const size_t n = strlen(dir);
    if (n > 5 && !strcmp(dir + n - 5, ".gguf")) return lp_tokenizer_load(dir, out); /* the file's own tokenizer */
    char *p = lp_path_join(dir, "tokenizer.json");
    if (p && lp_file_exists(p)) {
        lp_status st = lp_tokenizer_load(p, out);
        free(p);
        return st;
    }
    free(p);
    /* llama2.c checkpoints ship tokenizer.bin or tok<N>.bin */
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            size_t n = strlen(e->d_name);
            if (n > 4 && !strcmp(e->d_name + n - 4, ".bin") &&
                (!strncmp(e->d_name, "tok", 3))) {
                char *q = lp_path_join(dir, e->d_name);
                closedir(d);
                lp_status st = lp_tokenizer_load(q, out);
                free(q);
                return st;
            }
        }
        closedir(d);
    }
    return lp_tokenizer_load(dir, out); /* its error names what is missing */
}

int cli_load_calibration(const char *cmd, const char *model_dir, const char *file, int64_t nsamples, int64_t seqlen,
                         uint64_t seed, int32_t **windows) {
    lp_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = 1;
    if (cli_load_tokenizer(model_dir, &tok) != LP_OK) {
        cli_lib_error(cmd, "loading the tokenizer");
    } else if (cli_read_text(file, &text, &len) != LP_OK) {
        cli_lib_error(cmd, NULL);
    } else if (lp_tokenizer_encode(tok, text, len, 0, &ids, &n) != LP_OK) {
        fprintf(stderr, "llmpress %s: %s: %s\n", cmd, file, lp_last_error());
    } else if (lp_calib_sample(ids, n, nsamples, seqlen, seed, windows) != LP_OK) {
        fprintf(stderr, "llmpress %s: %s: %s\n", cmd, file, lp_last_error());
    } else {
        rc = 0;
    }
    free(ids);
    free(text);
    lp_tokenizer_free(tok);
    return rc;
}

void cli_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
