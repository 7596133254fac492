/*
 * bench_qgemv.c - speed of packed grouped-integer gemv (and small-batch gemm)
 * against this machine's memory bandwidth.
 *
 * Protocol: W is 4-bit, group 128, asymmetric (GPTQ's default), in both
 * Llama-7B MLP shapes (4096 x 11008 and 11008 x 4096, out x in). Bytes counted
 * per call are the packed weight bytes actually read: q + f16 scales + uint8
 * zeros (lp_qgroup_nbytes). To measure DRAM and not the L3, every call uses
 * the next of several copies of W that together span >= 1 GiB (like a model,
 * whose layers never fit in cache). Each figure is the median of N calls
 * after >= 50 ms of warm-up calls. Bandwidth reference: (a) a read loop over
 * a 1 GiB buffer summed with 8-wide f32 vector adds (GCC vector extensions,
 * target_clones for AVX-512/AVX2), (b) memcpy of 512 MiB, counted as read +
 * written bytes; both per thread count.
 * f32 cblas_sgemv on the same shape (OpenBLAS with the same thread count) is
 * the dense baseline.
 * Then, per shape, the q8 decode product (lp_qgroup_gemv_q8: x rounded to
 * int8 per 128 columns, AVX-512 VNNI dot products; format/qgroup_q8.h)
 * against the f32 avx512 kernel, on W3 g128 asym (two bit planes), W4 g128
 * asym (the weights above) and W8 g128 asym, same protocol; its time
 * includes quantizing x.
 *
 * Usage: bench_qgemv [runs] [gemv]   (every kernel runs, whatever LP_KERNEL
 * says; "gemv" skips the batch table, which takes a minute). The load
 * average is printed first and last: on a shared machine, numbers taken
 * under load are not worth comparing.
 *        bench_qgemv [runs] prefill  the several-token products: lp_qgroup_gemm
 * (f32 activations: packed kernels below its BLAS threshold, dequantized
 * tiles and lp_sgemm_nt above) against lp_qgroup_gemm_q8 (8-bit
 * activations, VNNI), W4 / W3 / W8 g128 asym 4096 x 11008, T = 16, 64 and
 * 512 tokens, 1 and 2 threads; the two alternate call by call (median of
 * runs each), G multiply-adds per second.
 *        bench_qgemv [runs] sched  only the q8 product's thread hand-out, A/B:
 * the library's driver (contiguous spans of row tiles, core/par.h) against
 * the one it replaced (16-row tiles handed out 4 at a time), same kernel,
 * W3 and W4 g128 in both shapes at 2 threads; the two alternate in rounds
 * of 8 calls (median of the rounds' medians), so load on the shared machine
 * hits both alike.
 */
#include "bench_common.h"
#include "core/cpu.h"
#include "format/qgroup_kernels.h"
#include "format/qgroup.h"
#include "format/qgroup_q8.h"

#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int);

/* GB/s of memcpy (bytes read + bytes written), parallel over chunks. */
static double memcpy_bw(float *dst, const float *src, size_t n, int runs) {
    double t[64];
    for (int k = 0; k < runs + 1; k++) {
        double t0 = omp_get_wtime();
        size_t chunks = n / (1 << 20);
#pragma omp parallel for schedule(static)
        for (size_t c = 0; c < chunks; c++) memcpy(dst + c * (1 << 20), src + c * (1 << 20), (1 << 20) * 4);
        if (k > 0) t[k - 1] = omp_get_wtime() - t0;
    }
    return 2.0 * (double)n * 4 / median(t, runs) / 1e9;
}

typedef struct {
    lp_qgroup *w; /* ncopies identical weights at different addresses */
    int ncopies;
    size_t bytes; /* per copy */
} wset;

/* bits-bit, group 128, asymmetric, random q, scales and zeros. */
static wset make_weights(int64_t rows, int64_t cols, int bits) {
    wset s;
    lp_qgroup w0;
    if (lp_qgroup_init(&w0, rows, cols, bits, 128, 0) != LP_OK) {
        fprintf(stderr, "init: %s\n", lp_last_error());
        exit(1);
    }
    s.bytes = lp_qgroup_nbytes(&w0);
    for (int64_t i = 0; i < rows * w0.blocks * bits; i++) w0.q[i] = (uint32_t)rnd();
    for (int64_t i = 0; i < rows * w0.ngroups; i++) {
        w0.scales[i] = (uint16_t)(0x1c00 + rnd() % 0x800); /* ~0.004 .. 0.016 */
        w0.zeros[i] = (uint8_t)(rnd() % (1u << bits));
    }
    s.ncopies = (int)((1ull << 30) / s.bytes + 1);
    s.w = malloc((size_t)s.ncopies * sizeof(lp_qgroup));
    s.w[0] = w0;
    for (int i = 1; i < s.ncopies; i++) {
        lp_qgroup_init(&s.w[i], rows, cols, bits, 128, 0);
        memcpy(s.w[i].q, w0.q, (size_t)(rows * w0.blocks * bits) * 4);
        memcpy(s.w[i].scales, w0.scales, (size_t)(rows * w0.ngroups) * 2);
        memcpy(s.w[i].zeros, w0.zeros, (size_t)(rows * w0.ngroups));
    }
    return s;
}

/* What one timed call runs: a product of W (the next copy) with X into Y. */
typedef struct {
    const lp_qkernels *k; /* NULL: lp_qgroup_gemv_q8 */
    lp_qgemm_params p;
    const float *X;
    int64_t T;
    float *Y;
} bench_call;

static void run_call(const bench_call *b, const lp_qgroup *w) {
    if (b->k) lp_qgroup_gemm_ex(w, b->X, b->T, b->Y, &b->p);
    else if (lp_qgroup_gemv_q8(w, b->X, b->Y) != LP_OK) die("lp_qgroup_gemv_q8");
}

/* Median seconds of one call, rotating copies (best in *best). */
static double time_calls(const bench_call *b, wset *s, int runs, double *best) {
    double t[64];
    int c = 0;
    /* warm-up: wakes idle cores (a VM may take a scheduler tick to) and faults in scratch */
    double tw = omp_get_wtime();
    for (int i = 0; i < 3 || omp_get_wtime() - tw < 0.05; i++) run_call(b, &s->w[c++ % s->ncopies]);
    for (int i = 0; i < runs; i++) {
        const lp_qgroup *w = &s->w[c++ % s->ncopies];
        double t0 = omp_get_wtime();
        run_call(b, w);
        t[i] = omp_get_wtime() - t0;
    }
    double m = median(t, runs); /* sorts t */
    *best = t[0];
    return m;
}

/* Median seconds of one lp_qgroup_gemm_ex call with T tokens, rotating copies;
 * the sgemm path from T >= blas_min. */
static double time_gemm(const lp_qkernels *k, wset *s, const float *X, int64_t T, float *Y, int runs,
                        int64_t blas_min, double *best) {
    bench_call b = {.k = k, .p = lp_qgemm_default_params(), .X = X, .T = T, .Y = Y};
    b.p.kernels = k;
    b.p.blas_min_tokens = blas_min;
    return time_calls(&b, s, runs, best);
}

static void free_weights(wset *s) {
    for (int i = 0; i < s->ncopies; i++) lp_qgroup_free(&s->w[i]);
    free(s->w);
}

/* The q8 table of one shape: q8 and the f32 avx512 kernel on W3, W4 (s4) and W8. */
static void q8_rows(const char *shape, wset *s4, const float *x, float *y, const float *buf, size_t nbw, int maxth,
                    int runs, int bwruns) {
    const lp_qkernels *k512;
    const int have512 = lp_qkernels_select("avx512", &k512) == LP_OK;
    wset s3 = make_weights(s4->w[0].rows, s4->w[0].cols, 3), s8 = make_weights(s4->w[0].rows, s4->w[0].cols, 8);
    wset *sets[3] = {&s3, s4, &s8};
    const char *wnames[3] = {"W3", "W4", "W8"};
    /* pass 0 is an untimed round of every row: right after the W3/W8 copies are
     * allocated, the first row ran at half speed for well over its 50 ms of
     * warm-up (seen on the 2-core VM) */
    for (int pass = 0; pass < 2; pass++)
        for (int nt = 1; nt <= maxth; nt++) {
            omp_set_num_threads(nt);
            double rbw = pass ? read_bw(buf, nbw, bwruns) : 0;
            for (int bi = 0; bi < 3; bi++) {
                wset *s = sets[bi];
                const char *wname = wnames[bi];
                for (int q8 = 0; q8 < 2; q8++) {
                    const char *kname = q8 ? "q8-vnni" : "avx512";
                    if (q8 ? !lp_qgroup_q8_supported(&s->w[0]) : !have512) {
                        if (pass) printf("%-11s %-3s %-8s %3d  SKIP (this CPU lacks it)\n", shape, wname, kname, nt);
                        continue;
                    }
                    bench_call b = {.k = q8 ? NULL : k512, .p = lp_qgemm_default_params(), .X = x, .T = 1, .Y = y};
                    b.p.kernels = b.k;
                    double best, t = time_calls(&b, s, pass ? runs : 3, &best), gbs = (double)s->bytes / t / 1e9;
                    if (pass)
                        printf("%-11s %-3s %-8s %3d %10.1f %6.2f (%5.2f) %9.1f %7.0f%%\n", shape, wname, kname, nt,
                               t * 1e6, gbs, (double)s->bytes / best / 1e9, rbw, 100 * gbs / rbw);
                }
            }
        }
    free_weights(&s3);
    free_weights(&s8);
}

/* The q8 product with the driver lp_qgroup_gemv_q8 had before spans: tiles
 * of 16 rows handed out 4 at a time (scratch: lp_qgroup_q8_act_bytes). */
static void gemv_q8_tiles(const lp_qgroup *w, const float *x, float *y, void *scratch) {
    lp_q8_act a;
    lp_qgroup_q8_act_view(w, scratch, &a);
    lp_qgroup_q8_quantize(w, x, &a);
    const int64_t rows = w->rows, ntiles = (rows + 15) / 16;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < ntiles; i++)
        lp_qgroup_q8_gemv_avx512vnni(w, &a, y, i * 16, i * 16 + 16 < rows ? i * 16 + 16 : rows);
}

/* bench_qgemv sched: spans (the library) against tiles, interleaved. */
static int sched_ab(int maxth) {
    const int64_t shapes[2][2] = {{4096, 11008}, {11008, 4096}};
    enum { ROUNDS = 31, PER = 8 };
    omp_set_num_threads(maxth);
    printf("\nq8 decode product, %d threads: tiles of 16 rows handed out 4 at a time (before) vs contiguous\n"
           "spans of tiles (lp_qgroup_gemv_q8); median of %d rounds, each the median of %d calls of either\n",
           maxth, ROUNDS, PER);
    printf("%-11s %-3s %12s %12s %8s\n", "shape", "W", "tiles us", "spans us", "speedup");
    for (int si = 0; si < 2; si++)
        for (int bits = 3; bits <= 4; bits++) {
            wset s = make_weights(shapes[si][0], shapes[si][1], bits);
            if (!lp_qgroup_q8_supported(&s.w[0])) {
                printf("SKIP: no AVX-512 VNNI\n");
                free_weights(&s);
                return 0;
            }
            const int64_t rows = shapes[si][0], cols = shapes[si][1];
            float *x = malloc((size_t)cols * 4), *y = malloc((size_t)rows * 4);
            void *scratch = malloc(lp_qgroup_q8_act_bytes(&s.w[0]));
            for (int64_t i = 0; i < cols; i++) x[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
            double t[2][ROUNDS];
            int c = 0;
            double tw = omp_get_wtime();
            while (omp_get_wtime() - tw < 0.2) lp_qgroup_gemv_q8(&s.w[c++ % s.ncopies], x, y);
            for (int r = 0; r < ROUNDS; r++)
                for (int v = 0; v < 2; v++) {
                    double tt[PER];
                    for (int i = 0; i < PER; i++) {
                        const lp_qgroup *w = &s.w[c++ % s.ncopies];
                        double t0 = omp_get_wtime();
                        if (v) lp_qgroup_gemv_q8(w, x, y);
                        else gemv_q8_tiles(w, x, y, scratch);
                        tt[i] = omp_get_wtime() - t0;
                    }
                    t[v][r] = median(tt, PER);
                }
            const double a = median(t[0], ROUNDS), b = median(t[1], ROUNDS);
            char shape[32];
            snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);
            printf("%-11s W%d  %12.1f %12.1f %7.2fx\n", shape, bits, a * 1e6, b * 1e6, a / b);
            free(scratch);
            free(x);
            free(y);
            free_weights(&s);
        }
    print_load("at end");
    return 0;
}

/* bench_qgemv prefill: see the top. */
static int prefill_ab(int runs, int maxth) {
    const int64_t rows = 4096, cols = 11008, Ts[] = {16, 64, 512};
    const int bitss[] = {4, 3, 8};
    float *X = malloc((size_t)(512 * cols) * sizeof(float)), *Y = malloc((size_t)(512 * rows) * sizeof(float));
    for (int64_t i = 0; i < 512 * cols; i++) X[i] = (float)(2.0 * unif() - 1.0);
    printf("\nprefill: lp_qgroup_gemm (f32) vs lp_qgroup_gemm_q8 (q8), %lld x %lld g128 asym, G multiply-adds/s,\n"
           "median of %d calls each, alternating\n\n%-4s %5s %3s %10s %10s %7s\n",
           (long long)rows, (long long)cols, runs, "W", "T", "thr", "f32", "q8", "q8/f32");
    for (int bi = 0; bi < 3; bi++) {
        lp_qgroup w;
        if (lp_qgroup_init(&w, rows, cols, bitss[bi], 128, 0) != LP_OK) die("init");
        for (int64_t i = 0; i < rows * w.blocks * w.bits; i++) w.q[i] = (uint32_t)rnd();
        for (int64_t i = 0; i < rows * w.ngroups; i++) {
            w.scales[i] = (uint16_t)(0x1c00 + rnd() % 0x800);
            w.zeros[i] = (uint8_t)(rnd() % (1u << w.bits));
        }
        if (!lp_qgroup_q8_supported(&w)) {
            printf("no AVX-512 VNNI: the q8 product would run its scalar reference; skipped\n");
            return 0;
        }
        for (int ti = 0; ti < 3; ti++)
            for (int nt = 1; nt <= maxth; nt++) {
                omp_set_num_threads(nt);
                openblas_set_num_threads(nt);
                const int64_t T = Ts[ti];
                const int n = T == 512 ? (runs < 5 ? runs : 5) : runs;
                double tf[64], tq[64];
                for (int i = 0; i < n + 1; i++) { /* the first pair warms up */
                    double t0 = omp_get_wtime();
                    if (lp_qgroup_gemm(&w, X, T, Y) != LP_OK) die("lp_qgroup_gemm");
                    double t1 = omp_get_wtime();
                    if (lp_qgroup_gemm_q8(&w, X, T, Y) != LP_OK) die("lp_qgroup_gemm_q8");
                    double t2 = omp_get_wtime();
                    if (i > 0) tf[i - 1] = t1 - t0, tq[i - 1] = t2 - t1;
                }
                const double macs = (double)rows * (double)cols * (double)T, f = median(tf, n), q = median(tq, n);
                printf("W%-3d %5lld %3d %10.1f %10.1f %6.2fx\n", w.bits, (long long)T, nt, macs / f / 1e9, macs / q / 1e9,
                       f / q);
            }
        lp_qgroup_free(&w);
    }
    free(X);
    free(Y);
    print_load("at end");
    return 0;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 30;
    if (runs < 3) runs = 3;
    if (runs > 64) runs = 64;
    int maxth = omp_get_num_procs() < 2 ? omp_get_num_procs() : 2;
    int batches = !(argc > 2 && !strcmp(argv[2], "gemv"));
    int bwruns = runs < 10 ? runs : 10;
    print_load("at start");
    if (argc > 2 && !strcmp(argv[2], "sched")) return sched_ab(maxth);
    if (argc > 2 && !strcmp(argv[2], "prefill")) return prefill_ab(runs, maxth);

    size_t nbw = (1ull << 30) / 4;
    float *buf = malloc(nbw * 4), *buf2 = malloc(nbw * 2);
    for (size_t i = 0; i < nbw; i++) buf[i] = (float)(i & 1023) * 1e-3f;
    memset(buf2, 0, nbw * 2);

    const int64_t shapes[2][2] = {{4096, 11008}, {11008, 4096}};
    const char *knames[] = {"ref", "avx2", "avx512"};
    printf("\npacked W4 g128 asym gemv; GB/s = packed bytes (q + f16 scales + u8 zeros) / time;\n"
           "median (and best) of %d calls, each on the next of several copies of W spanning >= 1 GiB;\n"
           "read-bw = read+sum of a 1 GiB buffer, measured just before each shape/thread block\n",
           runs);
    printf("%-11s %-7s %3s %10s %14s %9s %8s\n", "shape", "kernel", "thr", "time/us", "GB/s (best)", "read-bw", "%read-bw");
    for (int si = 0; si < 2; si++) {
        int64_t rows = shapes[si][0], cols = shapes[si][1];
        if (si > 0) /* the main table's columns again, after the first shape's other tables */
            printf("\n%-11s %-7s %3s %10s %14s %9s %8s\n", "shape", "kernel", "thr", "time/us", "GB/s (best)", "read-bw",
                   "%read-bw");
        wset s = make_weights(rows, cols, 4);
        float *x = malloc((size_t)cols * 4 * 1024), *y = malloc((size_t)rows * 4 * 1024);
        for (int64_t i = 0; i < cols * 1024; i++) x[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        enum { NW = 4 }; /* f32 copies for sgemv: 4 x 180 MB, far beyond the L3 */
        float *W[NW];
        for (int c = 0; c < NW; c++) {
            W[c] = malloc((size_t)(rows * cols) * 4);
            for (int64_t i = 0; i < rows * cols; i++) W[c][i] = (float)(i % 17) * 0.01f;
        }
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);
        for (int nt = 1; nt <= maxth; nt++) {
            omp_set_num_threads(nt);
            openblas_set_num_threads(nt);
            double rbw = read_bw(buf, nbw, bwruns);
            for (int ki = 0; ki < 3; ki++) {
                const lp_qkernels *k;
                if (lp_qkernels_select(knames[ki], &k) != LP_OK) {
                    printf("%-11s %-7s %3d  SKIP (%s)\n", shape, knames[ki], nt, lp_last_error());
                    continue;
                }
                double best;
                double t = time_gemm(k, &s, x, 1, y, ki == 0 ? 3 : runs, INT64_MAX, &best);
                double gbs = (double)s.bytes / t / 1e9;
                printf("%-11s %-7s %3d %10.1f %6.2f (%5.2f) %9.1f %7.0f%%\n", shape, knames[ki], nt, t * 1e6, gbs,
                       (double)s.bytes / best / 1e9, rbw, 100 * gbs / rbw);
            }
            /* dense f32 baseline: 4 bytes per weight, OpenBLAS with nt threads */
            double t[64];
            for (int i = 0; i < 3; i++)
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)cols, 1.0f, W[i % NW], (int)cols, x, 1, 0.0f, y, 1);
            for (int i = 0; i < runs; i++) {
                double t0 = omp_get_wtime();
                cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)rows, (int)cols, 1.0f, W[i % NW], (int)cols, x, 1, 0.0f, y, 1);
                t[i] = omp_get_wtime() - t0;
            }
            double tm = median(t, runs), gbs = (double)(rows * cols) * 4 / tm / 1e9;
            printf("%-11s %-7s %3d %10.1f %6.2f (%5.2f) %9.1f %7.0f%%   (f32 cblas_sgemv, %.0f MB)\n", shape, "sgemv", nt,
                   tm * 1e6, gbs, (double)(rows * cols) * 4 / t[0] / 1e9, rbw, 100 * gbs / rbw,
                   (double)(rows * cols) * 4 / 1e6);
        }
        for (int c = 0; c < NW; c++) free(W[c]);

        /* ---- q8 activations ---- */
        printf("\nq8 decode product on %s, g128 asym: lp_qgroup_gemv_q8 (x to int8 per 128 columns, VNNI)\n"
               "against the f32 avx512 kernel; same protocol (W3, W8: copies of such a weight spanning >= 1 GiB)\n",
               shape);
        printf("%-11s %-3s %-8s %3s %10s %14s %9s %8s\n", "shape", "W", "kernel", "thr", "time/us", "GB/s (best)",
               "read-bw", "%read-bw");
        q8_rows(shape, &s, x, y, buf, nbw, maxth, runs, bwruns);

        /* ---- batches: both gemm paths, time per token ---- */
        if (si == 0 && batches) {
            omp_set_num_threads(maxth);
            openblas_set_num_threads(maxth);
            const lp_qkernels *k = lp_qkernels_default();
            printf("\nlp_qgroup_gemm on %s, kernel %s, %d threads (OpenBLAS %d): us per token, median of %d (3 from T = 128);\n"
                   "the kernel switches to dequant+sgemm from T = %lld\n",
                   shape, k->name, maxth, maxth, bwruns, (long long)k->blas_min_tokens);
            printf("  %5s %14s %16s\n", "T", "packed kernel", "dequant+sgemm");
            const int64_t Ts[] = {1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
            for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++) {
                double best;
                int n = Ts[ti] >= 128 ? 3 : bwruns;
                double tp = time_gemm(k, &s, x, Ts[ti], y, n, INT64_MAX, &best);
                double tb = time_gemm(k, &s, x, Ts[ti], y, n, 1, &best);
                printf("  %5lld %14.1f %16.1f\n", (long long)Ts[ti], tp * 1e6 / (double)Ts[ti], tb * 1e6 / (double)Ts[ti]);
            }
            printf("\n");
        }
        free_weights(&s);
        free(x);
        free(y);
    }

    printf("memory bandwidth, median of %d:\n", bwruns);
    for (int nt = 1; nt <= maxth; nt++) {
        omp_set_num_threads(nt);
        double r = read_bw(buf, nbw, bwruns), c = memcpy_bw(buf2, buf, nbw / 2, bwruns);
        printf("  %d thread%s: read+sum 1 GiB %6.1f GB/s   memcpy 512 MiB (read+write) %6.1f GB/s\n", nt,
               nt > 1 ? "s" : " ", r, c);
    }
    print_load("at end");
    free(buf2);
    free(buf);
    return 0;
}
