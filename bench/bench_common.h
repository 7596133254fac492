/*
 * bench_common.h - what the kernel benchmarks (bench_qgemv, bench_binary,
 * bench_sparse, bench_lowrank) share: the median of timings, a xorshift
 * generator for random weights, the machine's read bandwidth as the yardstick
 * for GB/s figures, and the load average printed beside each table.
 * Header-only (static functions): each benchmark is one program.
 */
#ifndef LP_BENCH_COMMON_H
#define LP_BENCH_COMMON_H

#include "llmpress/status.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* xorshift64; a benchmark may set g_rng first for its own stream */
static uint64_t g_rng = 88172645463325252ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static inline double unif(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

static inline void die(const char *what) {
    fprintf(stderr, "%s: %s\n", what, lp_last_error());
    exit(1);
}

typedef float v8f __attribute__((vector_size(32)));

/* GB/s of a parallel read-and-sum over buf (n floats, n a multiple of 4096),
 * median of runs after a warm-up. Compiled for AVX-512, AVX2 and baseline
 * (GCC picks by CPU at load time): with SSE2 only, some cores cannot add as
 * fast as memory delivers and the figure would be low. */
__attribute__((target_clones("avx512f", "avx2", "default"), unused)) static double read_bw(const float *buf, size_t n,
                                                                                   int runs) {
    double t[64];
    if (runs > 64) runs = 64;
    volatile float sink = 0;
    for (int k = 0; k < runs + 1; k++) {
        double t0 = omp_get_wtime();
        float tot = 0;
        size_t chunks = n / 4096;
#pragma omp parallel for schedule(static) reduction(+ : tot)
        for (size_t c = 0; c < chunks; c++) {
            v8f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
            const v8f *p = (const v8f *)(buf + c * 4096);
            for (int i = 0; i < 4096 / 8; i += 4) {
                s0 += p[i];
                s1 += p[i + 1];
                s2 += p[i + 2];
                s3 += p[i + 3];
            }
            v8f s = (s0 + s1) + (s2 + s3);
            for (int i = 0; i < 8; i++) tot += s[i];
        }
        sink += tot;
        if (k > 0) t[k - 1] = omp_get_wtime() - t0;
    }
    (void)sink;
    return (double)n * 4 / median(t, runs) / 1e9;
}

static inline void print_load(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    printf("load average %s: %s\n", when, buf);
}

#endif
