/*
 * bench_tokenizer.c - encode / decode speed of a tokenizer on a text file.
 *
 * Reports load time, the first (cold word cache) encode, the median of the
 * following encodes (warm cache) and decode, in MB/s and tokens/s.
 *
 * usage: bench_tokenizer TOKENIZER TEXT [reps=5]
 *   e.g. bench_tokenizer ../shared/assets/tokenizers/qwen2.5 ../shared/assets/text/corpus/heldout.txt
 */
#include "llmpress/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER TEXT [reps=5]\n", argv[0]);
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (reps < 1) reps = 1;
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc(len + 1);
    if (!text || fread(text, 1, len, f) != len) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 1;
    }
    fclose(f);

    double t0 = now();
    lp_tokenizer *tok = NULL;
    if (lp_tokenizer_load(argv[1], &tok) != LP_OK) {
        fprintf(stderr, "%s\n", lp_last_error());
        return 1;
    }
    double t_load = now() - t0;

    double *enc = malloc(sizeof(double) * (size_t)reps), t_cold = 0, t_dec = 0;
    int64_t n = 0;
    for (int r = 0; r <= reps; r++) {
        int32_t *ids = NULL;
        t0 = now();
        if (lp_tokenizer_encode(tok, text, len, 0, &ids, &n) != LP_OK) {
            fprintf(stderr, "%s\n", lp_last_error());
            return 1;
        }
        double dt = now() - t0;
        if (r == 0) {
            t_cold = dt;
            char *out = NULL;
            size_t ol = 0;
            t0 = now();
            if (lp_tokenizer_decode(tok, ids, n, &out, &ol) != LP_OK) {
                fprintf(stderr, "%s\n", lp_last_error());
                return 1;
            }
            t_dec = now() - t0;
            free(out);
        } else {
            enc[r - 1] = dt;
        }
        free(ids);
    }
    qsort(enc, (size_t)reps, sizeof(double), cmp);
    double t_warm = enc[reps / 2], mb = (double)len / 1e6;
    printf("%s on %s: %.2f MB, %lld tokens\n", argv[1], argv[2], mb, (long long)n);
    printf("  load          %8.1f ms\n", 1e3 * t_load);
    printf("  encode cold   %8.1f ms  %6.1f MB/s  %8.0f tokens/s\n", 1e3 * t_cold, mb / t_cold, n / t_cold);
    printf("  encode warm   %8.1f ms  %6.1f MB/s  %8.0f tokens/s  (median of %d)\n", 1e3 * t_warm,
           mb / t_warm, n / t_warm, reps);
    printf("  decode        %8.1f ms  %6.1f MB/s\n", 1e3 * t_dec, mb / t_dec);
    free(enc);
    free(text);
    lp_tokenizer_free(tok);
    return 0;
}
