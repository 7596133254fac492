/*
 * bench_forward.c - prefill and decode speed of a model (original or
 * compressed): tokens/s for a P-token prefill and for D decode steps after
 * it, median of several repetitions.
 *
 * usage: bench_forward MODEL [threads=2] [prefill=512] [decode=128] [reps=3]
 */
#include "llmpress/model.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
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
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [threads=2] [prefill=512] [decode=128] [reps=3]\n", argv[0]);
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    int P = argc > 3 ? atoi(argv[3]) : 512, D = argc > 4 ? atoi(argv[4]) : 128;
    int reps = argc > 5 ? atoi(argv[5]) : 3;
    if (reps > 15) reps = 15;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    lp_model *m = NULL;
    if (lp_model_load(argv[1], &m) != LP_OK) {
        fprintf(stderr, "%s\n", lp_last_error());
        return 1;
    }
    const lp_config *c = lp_model_config(m);
    lp_ctx *ctx = NULL;
    if (lp_ctx_init(m, P + D, P, &ctx) != LP_OK) {
        fprintf(stderr, "%s\n", lp_last_error());
        return 1;
    }
    int32_t *ids = malloc((size_t)(P + D) * sizeof *ids);
    for (int i = 0; i < P + D; i++) ids[i] = (int32_t)((i * 7919 + 13) % c->vocab);
    float *logits = malloc((size_t)c->vocab * sizeof(float));
    double pre[16], dec[16];
    for (int r = 0; r <= reps; r++) { /* r = 0 is a warm-up */
        lp_ctx_reset(ctx);
        double t0 = now();
        lp_forward(ctx, ids, P, logits, false);
        double t1 = now();
        for (int i = 0; i < D; i++) lp_forward(ctx, ids + P + i, 1, logits, false);
        double t2 = now();
        if (r) {
            pre[r - 1] = P / (t1 - t0);
            dec[r - 1] = D / (t2 - t1);
        }
    }
    qsort(pre, (size_t)reps, sizeof(double), cmp);
    qsort(dec, (size_t)reps, sizeof(double), cmp);
    lp_model_size sz;
    lp_model_size_get(m, &sz);
    printf("%s | %s | threads %d | prefill %d tok: %.1f tok/s | decode %d tok: %.1f tok/s (median of %d)\n",
           argv[1], sz.formats, threads, P, pre[reps / 2], D, dec[reps / 2], reps);
    free(ids);
    free(logits);
    lp_ctx_free(ctx);
    lp_model_free(m);
    return 0;
}
