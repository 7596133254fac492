/*
 * cmd_tokenize.c - `llmpress tokenize`: print the token ids of a text.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char *const HELP =
    "usage: llmpress tokenize MODEL (-p TEXT | -f FILE) [--bos] [--count] [--pieces]\n"
    "\n"
    "Token ids of TEXT under MODEL's tokenizer (MODEL may also be a tokenizer.json).\n"
    "  --bos      add the tokenizer's special prefix (BOS) as the model would\n"
    "  --count    print only the number of tokens\n"
    "  --pieces   print `id<TAB>piece` lines instead of ids\n";

int cmd_tokenize(int argc, char **argv) {
    cli_args a = {argc, 1, argv, "tokenize"};
    const char *path = NULL, *prompt = NULL, *file = NULL;
    bool bos = false, count = false, pieces = false;
    for (; a.i < argc; a.i++) {
        const char *f = argv[a.i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            fputs(HELP, stdout);
            return 0;
        } else if (!strcmp(f, "-p") || !strcmp(f, "--prompt")) {
            if (!(prompt = cli_value(&a))) return 2;
        } else if (!strcmp(f, "-f") || !strcmp(f, "--file")) {
            if (!(file = cli_value(&a))) return 2;
        } else if (!strcmp(f, "--bos")) {
            bos = true;
        } else if (!strcmp(f, "--count")) {
            count = true;
        } else if (!strcmp(f, "--pieces")) {
            pieces = true;
        } else if (f[0] == '-') {
            return cli_usage_error(&a, "unknown flag '%s'", f);
        } else if (!path) {
            path = f;
        } else {
            return cli_usage_error(&a, "unexpected argument '%s'", f);
        }
    }
    if (!path) return cli_usage_error(&a, "no MODEL directory or tokenizer file given");
    if (!prompt == !file) return cli_usage_error(&a, "give exactly one of -p TEXT or -f FILE");
    lp_tokenizer *tok = NULL;
    lp_status st = strstr(path, ".json") || strstr(path, ".bin") ? lp_tokenizer_load(path, &tok)
                                                                 : cli_load_tokenizer(path, &tok);
    if (st != LP_OK) return cli_lib_error("tokenize", NULL);
    char *text = NULL;
    size_t len = 0;
    if (file) {
        if (cli_read_text(file, &text, &len) != LP_OK) {
            lp_tokenizer_free(tok);
            return cli_lib_error("tokenize", NULL);
        }
    } else {
        text = strdup(prompt);
        len = strlen(prompt);
    }
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = 0;
    if (lp_tokenizer_encode(tok, text, len, bos, &ids, &n) != LP_OK) {
        fprintf(stderr, "llmpress tokenize: %s: %s\n", file ? file : "prompt", lp_last_error());
        rc = 1;
    } else if (count) {
        printf("%lld\n", (long long)n);
    } else {
        for (int64_t i = 0; i < n; i++) {
            if (pieces) {
                size_t pl = 0;
                const char *p = lp_tokenizer_token_text(tok, ids[i], &pl);
                printf("%d\t%.*s\n", ids[i], (int)pl, p ? p : "");
            } else {
                printf("%s%d", i ? " " : "", ids[i]);
            }
        }
        if (!pieces) printf("\n");
    }
    free(ids);
    free(text);
    lp_tokenizer_free(tok);
    return rc;
}
