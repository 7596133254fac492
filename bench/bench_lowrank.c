/*
 * bench_lowrank.c - speed of the dense16 format (format/dense16.h) and of
 * low-rank weights (format/lowrank.h) against dense f32, decode and prefill.
 *
 * Protocol: W is rows x cols = out x in (y = x W^T), in both Llama-7B MLP
 * shapes: 4096 x 11008 (down) and 11008 x 4096 (gate/up). Subjects:
 *   dense f32         the dense format (backend: BLAS sgemv for T = 1, sgemm)
 *   dense16 bf16      the weight kept in bf16, this CPU's kernels
 *   lowrank bf16      W = B A, both factors dense16 bf16, at the ranks that keep
 *                     0.8 and 0.5 of the weights: rank = keep * rows * cols /
 *                     (rows + cols)
 *   lowrank W4        the same ranks, both factors qgroup W4 g128 asymmetric
 * Weights are random (values do not change the speed of these kernels).
 * Bytes counted per call are the stored bytes (the formats' nbytes: 4 per f32
 * weight, 2 per bf16 value, qgroup's packed words, scales and zeros). Decode
 * (T = 1): every call uses the next of several copies of W that together span
 * >= 1 GiB (the f32 weight: 4 copies, 720 MB), so reads come from DRAM as a
 * model's layers do; median (and best) of N calls after >= 50 ms of warm-up.
 * Prefill (T = 512): median of 3 calls on one copy, each through its default
 * path (dense16: converted row tiles + sgemm; lowrank: its factors' paths).
 * Figures: GB/s = stored bytes / time; Gw/s = rows x cols x T / time, the
 * effective weights applied per second (a lowrank weight stands for rows x
 * cols weights; G MAC/s of the full weight for T > 1). Then the crossover of
 * dense16's two paths on 4096 x 4096, 1 thread (us per token): what sets
 * blas_min_tokens in dense16.c. A read-and-sum loop over 1 GiB gives the
 * memory bandwidth per thread count.
 *
 * Usage: bench_lowrank [runs] [decode|cross]   ("decode" skips prefill and
 * the crossover, "cross" runs only the crossover). The load average is
 * printed first and last: numbers taken under load are not worth comparing.
 */
#include "bench_common.h"
#include "format/dense.h"
#include "format/dense16.h"
#include "format/lowrank.h"
#include "format/qgroup.h"

#include "core/half.h"

#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int);

/* ---- the weights: one (format, data) per copy ---- */

static float *rand_f32(int64_t n, float scale) {
    float *w = malloc((size_t)n * sizeof(float));
    if (!w) die("out of memory");
    for (int64_t i = 0; i < n; i++) w[i] = scale * ((float)(rnd() % 2001) / 1000.0f - 1.0f);
    return w;
}

static void *make_dense16(int64_t rows, int64_t cols) {
    float *w = rand_f32(rows * cols, 0.05f);
    void *d;
    if (lp_dense16_from_f32(rows, cols, w, LP_DT_BF16, &d) != LP_OK) die("dense16");
    free(w);
    return d;
}

static void *make_qgroup(int64_t rows, int64_t cols) {
    lp_qgroup *q = calloc(1, sizeof *q);
    if (!q || lp_qgroup_init(q, rows, cols, 4, 128, 0) != LP_OK) die("qgroup init");
    for (int64_t i = 0; i < rows * q->blocks * 4; i++) q->q[i] = (uint32_t)rnd();
    for (int64_t i = 0; i < rows * q->ngroups; i++) {
        q->scales[i] = (uint16_t)(0x1c00 + rnd() % 0x800);
        q->zeros[i] = (uint8_t)(rnd() % 16);
    }
    return q;
}

/* A copy of data (rows x cols in format f) at other addresses. */
static void *copy_data(const lp_format *f, const void *data) {
    if (f == &lp_format_dense16) {
        const lp_dense16 *s = data;
        lp_dense16 *d = malloc(sizeof *d);
        const size_t n = lp_dense16_nbytes(s);
        if (!d) die("out of memory");
        *d = *s;
        if (!(d->owned = malloc(n))) die("out of memory");
        memcpy(d->owned, s->w, n);
        d->w = d->owned;
        return d;
    }
    if (f == &lp_format_qgroup) {
        const lp_qgroup *s = data;
        lp_qgroup *d = calloc(1, sizeof *d);
        if (!d || lp_qgroup_init(d, s->rows, s->cols, s->bits, s->group, s->sym) != LP_OK) die("qgroup init");
        memcpy(d->q, s->q, (size_t)(s->rows * s->blocks * s->bits) * 4);
        memcpy(d->scales, s->scales, (size_t)(s->rows * s->ngroups) * 2);
        memcpy(d->zeros, s->zeros, (size_t)(s->rows * s->ngroups));
        return d;
    }
    if (f == &lp_format_dense) {
        const lp_dense *s = data;
        const size_t n = (size_t)(s->rows * s->cols) * sizeof(float);
        float *w = malloc(n);
        lp_dense *d;
        if (!w) die("out of memory");
        memcpy(w, s->w, n);
        if (lp_dense_own(s->rows, s->cols, w, &d) != LP_OK) die("dense");
        return d;
    }
    const lp_lowrank *s = data;
    void *d;
    if (lp_lowrank_make(s->rows, s->cols, s->rank, s->a.fmt, copy_data(s->a.fmt, s->a.data), s->b.fmt,
                        copy_data(s->b.fmt, s->b.data), &d) != LP_OK)
        die("lowrank");
    return d;
}

enum { DENSE, DENSE16, LR_BF16, LR_W4, NKIND };

typedef struct {
    int kind;
    double keep; /* lowrank: the share of the weights kept */
    int64_t rows, cols, rank;
    const lp_format *f;
    int ncopies;
    void **d;
    lp_gemm_fn gemm; /* f's product at this CPU's level */
    size_t bytes;    /* stored bytes of one copy */
} subject;

static subject make_subject(int kind, double keep, int64_t rows, int64_t cols, int many) {
    subject s = {.kind = kind, .keep = keep, .rows = rows, .cols = cols};
    void *d0;
    if (kind == DENSE) {
        lp_dense *d;
        if (lp_dense_own(rows, cols, rand_f32(rows * cols, 0.05f), &d) != LP_OK) die("dense");
        s.f = &lp_format_dense;
        d0 = d;
    } else if (kind == DENSE16) {
        s.f = &lp_format_dense16;
        d0 = make_dense16(rows, cols);
    } else {
        s.rank = (int64_t)(keep * (double)(rows * cols) / (double)(rows + cols));
        const lp_format *ff = kind == LR_BF16 ? &lp_format_dense16 : &lp_format_qgroup;
        void *a = kind == LR_BF16 ? make_dense16(s.rank, cols) : make_qgroup(s.rank, cols);
        void *b = kind == LR_BF16 ? make_dense16(rows, s.rank) : make_qgroup(rows, s.rank);
        if (lp_lowrank_make(rows, cols, s.rank, ff, a, ff, b, &d0) != LP_OK) die("lowrank");
        s.f = &lp_format_lowrank;
    }
    s.bytes = s.f->nbytes(d0);
    s.ncopies = !many ? 1 : kind == DENSE ? 4 : (int)((1ull << 30) / s.bytes + 1);
    s.d = malloc((size_t)s.ncopies * sizeof *s.d);
    s.d[0] = d0;
    for (int i = 1; i < s.ncopies; i++) s.d[i] = copy_data(s.f, d0);
    s.gemm = lp_format_gemm(s.f, lp_cpu_isa());
    return s;
}

static void free_subject(subject *s) {
    for (int i = 0; i < s->ncopies; i++) s->f->free(s->d[i]);
    free(s->d);
    memset(s, 0, sizeof *s);
}

static const char *subject_name(const subject *s, char *buf, size_t n) {
    switch (s->kind) {
    case DENSE: snprintf(buf, n, "dense f32"); break;
    case DENSE16: snprintf(buf, n, "dense16 bf16"); break;
    default:
        snprintf(buf, n, "lowrank %s %.1f r%lld", s->kind == LR_BF16 ? "bf16" : "W4", s->keep, (long long)s->rank);
    }
    return buf;
}

/* Median seconds of one call with T tokens, rotating copies; *best = fastest. */
static double time_calls(const subject *s, const float *X, int64_t T, float *Y, int runs, double *best) {
    double t[64];
    int c = 0;
    const double tw = omp_get_wtime(); /* warm-up: wakes idle cores, faults in scratch */
    for (int i = 0; i < 2 || (T == 1 && omp_get_wtime() - tw < 0.05); i++)
        if (s->gemm(s->d[c++ % s->ncopies], X, T, Y) != LP_OK) die("gemm");
    for (int i = 0; i < runs; i++) {
        const double t0 = omp_get_wtime();
        if (s->gemm(s->d[c++ % s->ncopies], X, T, Y) != LP_OK) die("gemm");
        t[i] = omp_get_wtime() - t0;
    }
    const double m = median(t, runs); /* sorts t */
    *best = t[0];
    return m;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    if (runs < 3) runs = 3;
    if (runs > 64) runs = 64;
    const int prefill = !(argc > 2 && !strcmp(argv[2], "decode")), cross = argc > 2 && !strcmp(argv[2], "cross");
    const int maxth = omp_get_num_procs() < 2 ? omp_get_num_procs() : 2;
    print_load("at start");
    printf("kernel level %s\n", lp_isa_name(lp_cpu_isa()));
    size_t nbw = (1ull << 30) / 4;
    float *buf = malloc(nbw * 4);
    for (size_t i = 0; i < nbw; i++) buf[i] = (float)(i & 1023) * 1e-3f;

    enum { TP = 512 };
    const int64_t shapes[2][2] = {{4096, 11008}, {11008, 4096}};
    const struct {
        int kind;
        double keep;
    } subjects[] = {{DENSE, 1}, {DENSE16, 1}, {LR_BF16, 0.8}, {LR_BF16, 0.5}, {LR_W4, 0.8}, {LR_W4, 0.5}};
    printf("\nrows x cols = out x in; GB/s = stored bytes / time; Gw/s = rows x cols x T / time;\n"
           "decode: median (best) of %d calls, each on the next of copies spanning >= 1 GiB (f32: 4 copies); "
           "prefill T = %d: median of 3\n", runs, TP);
    printf("%-11s %-22s %6s %6s %3s %5s %10s %14s %8s %8s\n", "shape", "format", "bits/w", "params", "thr", "T",
           "time/us", "GB/s (best)", "Gw/s", "read-bw");
    for (int si = 0; si < (cross ? 0 : 2); si++) {
        const int64_t rows = shapes[si][0], cols = shapes[si][1];
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);
        float *X = rand_f32(TP * cols, 1.0f), *Y = malloc((size_t)(TP * rows) * 4);
        for (size_t k = 0; k < sizeof subjects / sizeof *subjects; k++) {
            subject s = make_subject(subjects[k].kind, subjects[k].keep, rows, cols, 1);
            char name[64];
            subject_name(&s, name, sizeof name);
            const double bpw = 8.0 * (double)s.bytes / (double)(rows * cols);
            const double kept = s.f->nparams ? (double)s.f->nparams(s.d[0]) / (double)(rows * cols) : 1.0;
            for (int nt = 1; nt <= maxth; nt++) {
                omp_set_num_threads(nt);
                openblas_set_num_threads(nt);
                const double rbw = read_bw(buf, nbw, 5);
                double best, t = time_calls(&s, X, 1, Y, runs, &best);
                printf("%-11s %-22s %6.2f %6.3f %3d %5d %10.1f %6.2f (%5.2f) %8.2f %8.1f\n", shape, name, bpw, kept,
                       nt, 1, t * 1e6, (double)s.bytes / t / 1e9, (double)s.bytes / best / 1e9,
                       (double)(rows * cols) / t / 1e9, rbw);
                if (prefill) {
                    t = time_calls(&s, X, TP, Y, 3, &best);
                    printf("%-11s %-22s %6.2f %6.3f %3d %5d %10.1f %6.2f (%5.2f) %8.2f\n", shape, name, bpw, kept, nt,
                           TP, t * 1e6, (double)s.bytes / t / 1e9, (double)s.bytes / best / 1e9,
                           (double)(rows * cols) * TP / t / 1e9);
                }
                fflush(stdout);
            }
            free_subject(&s);
        }
        free(X);
        free(Y);
    }

    if (prefill) { /* where dense16's row kernels meet converted tiles + sgemm */
        const int64_t R = 4096, C = 4096, Ts[] = {1, 2, 4, 8, 12, 16, 24, 32, 64};
        omp_set_num_threads(1);
        openblas_set_num_threads(1);
        float *X = rand_f32(64 * C, 1.0f), *Y = malloc((size_t)(64 * R) * 4);
        lp_dense16 *w = make_dense16(R, C);
        printf("\ncrossover, dense16 bf16 %lldx%lld, 1 thread, us per token (median of 5): row kernels / "
               "converted tiles + sgemm\n", (long long)R, (long long)C);
        printf("%-7s", "level");
        for (size_t i = 0; i < sizeof Ts / sizeof *Ts; i++) printf(" %13lld", (long long)Ts[i]);
        printf("\n");
        for (int lev = LP_ISA_AVX2; lev <= LP_ISA_AVX512; lev++) {
            if (!lp_cpu_supports((lp_isa)lev)) continue;
            printf("%-7s", lp_isa_name((lp_isa)lev));
            for (size_t i = 0; i < sizeof Ts / sizeof *Ts; i++) {
                double t[2];
                for (int path = 0; path < 2; path++) {
                    double v[5];
                    for (int k = 0; k < 7; k++) {
                        const double t0 = omp_get_wtime();
                        if (lp_dense16_gemm_ex(w, X, Ts[i], Y, (lp_isa)lev, path ? 1 : INT64_MAX) != LP_OK)
                            die("dense16 gemm");
                        if (k >= 2) v[k - 2] = omp_get_wtime() - t0;
                    }
                    t[path] = median(v, 5);
                }
                printf(" %6.0f/%-6.0f", t[0] * 1e6 / (double)Ts[i], t[1] * 1e6 / (double)Ts[i]);
                fflush(stdout);
            }
            printf("\n");
        }
        lp_dense16_free(w);
        free(X);
        free(Y);
    }
    printf("\n");
    print_load("at end");
    free(buf);
    return 0;
}
