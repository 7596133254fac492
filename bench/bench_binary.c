/*
 * bench_binary.c - speed of the binary format's products (format/binary.h)
 * against packed W4 g128 (qgroup) and dense f32 (cblas), decode and prefill.
 *
 * Protocol: W is rows x cols = out x in (y = x W^T), in both Llama-7B MLP
 * shapes: 11008 x 4096 (gate/up: 4096 inputs) and 4096 x 11008 (down). Binary
 * weights are random in three layouts:
 *   BiLLM-like   ngs 1, ngn 2, block 128, means (no rc), 10% salient columns
 *   ARB-RC-like  ngs 2, ngn 2, block 128, row x column scales, 10% salient
 *   PB-LLM-like  ngs 0, ngn 1, block 128, means, 10% of weights held at 8 bits
 * Bytes counted per call are the stored bytes (lp_binary_nbytes: planes,
 * bitmap, f16 parameters, column scales, held codes; lp_qgroup_nbytes; 4 per
 * f32 weight). Decode (T = 1): every call uses the next of several copies of
 * W that together span >= 1 GiB, so reads come from DRAM as a model's layers
 * do; median (and best) of N calls after >= 50 ms of warm-up. Prefill
 * (T = 512): median of 3 calls on one copy, each format through its own
 * default path (binary and qgroup: dequantized row tiles + sgemm; f32:
 * cblas_sgemm). Figures: GB/s = stored bytes / time, Gw/s = rows x cols x T /
 * time (weights applied per second; G MAC/s for T > 1). Then the crossover
 * of binary's two paths on 4096 x 4096, 1 thread (us per token): what sets
 * blas_min_tokens in binary.c. A read-and-sum loop over 1 GiB gives the
 * memory bandwidth per thread count.
 *
 * Usage: bench_binary [runs] [decode|cross]   ("decode" skips prefill and
 * the crossover, "cross" runs only the crossover). The load average is
 * printed first and last: on a shared machine, numbers taken under load are
 * not worth comparing.
 */
#include "bench_common.h"
#include "format/binary.h"
#include "format/qgroup.h"
#include "format/qgroup_kernels.h"

#include "core/half.h"

#include <cblas.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int);

/* ---- the weights ---- */

enum { BILLM, ARBRC, PBLLM, NKIND };
static const char *const KIND[NKIND] = {"BiLLM-like", "ARB-RC-like", "PB-LLM-like"};
static const lp_binary_shape SHAPE[NKIND] = {
    {128, 1, 2, false, false, 8}, /* BiLLM: salient columns (2 planes), break point splits the rest */
    {128, 2, 2, true, false, 8},  /* ARB-RC: two salient column groups, row x column scales */
    {128, 0, 1, false, true, 8},  /* PB-LLM: 1 bit + held 8-bit weights */
};

/* A random binary weight of kind k (10% salient columns or held weights). */
static void make_binary(lp_binary *w, int kind, int64_t rows, int64_t cols) {
    const lp_binary_shape *sh = &SHAPE[kind];
    const int64_t W = cols / 32;
    uint32_t *col = calloc((size_t)W, 4), *hm = NULL;
    for (int64_t c = 0; sh->ngs && c < cols; c++)
        if (unif() < 0.10) lp_binary_set(col, c, 1);
    int64_t nheld = 0;
    if (sh->held) {
        hm = calloc((size_t)(rows * W), 4);
        for (int64_t i = 0; i < rows * cols; i++)
            if (unif() < 0.10) lp_binary_set(hm, i, 1), nheld++;
    }
    if (lp_binary_init(w, rows, cols, sh, col, nheld) != LP_OK) die("binary init");
    for (int64_t i = 0; i < rows * W; i++) {
        w->s0[i] = (uint32_t)rnd();
        if (w->b1) w->b1[i] = (uint32_t)rnd();
    }
    for (int64_t i = 0; w->b2 && i < rows * w->words2; i++) w->b2[i] = (uint32_t)rnd();
    if (w->b2 && w->nsal % 32) /* padding past nsal stays 0 */
        for (int64_t r = 0; r < rows; r++) w->b2[r * w->words2 + w->words2 - 1] &= ~(~0u << (w->nsal % 32));
    for (int64_t i = 0; i < rows * w->nblocks * w->npr; i++)
        w->rp[i] = lp_f32_to_f16((float)(0.01 + 0.02 * unif()) * (rnd() & 1 ? 1.0f : -1.0f));
    for (int64_t i = 0; w->cp && i < w->ncp * cols; i++) w->cp[i] = lp_f32_to_f16((float)(0.5 + unif()));
    if (sh->held) {
        memcpy(w->hmask, hm, (size_t)(rows * W) * 4);
        for (int64_t i = 0; i < nheld; i++) w->codes[i] = (uint8_t)rnd();
        for (int64_t r = 0; r < rows; r++) w->hq[2 * r] = 0.001f, w->hq[2 * r + 1] = 128.0f;
    }
    if (lp_binary_finish(w) != LP_OK) die("binary finish");
    free(col);
    free(hm);
}

/* dst = a copy of src at other addresses. */
static void copy_binary(const lp_binary *src, lp_binary *dst) {
    const lp_binary_shape sh = {src->block, src->ngs, src->ngn, src->rc, src->held, src->hbits};
    if (lp_binary_init(dst, src->rows, src->cols, &sh, src->colmask, src->nheld) != LP_OK) die("binary init");
    const size_t plane = (size_t)(src->rows * src->words) * 4;
    memcpy(dst->s0, src->s0, plane);
    if (src->b1) memcpy(dst->b1, src->b1, plane);
    if (src->b2) memcpy(dst->b2, src->b2, (size_t)(src->rows * src->words2) * 4);
    memcpy(dst->rp, src->rp, (size_t)(src->rows * src->nblocks * src->npr) * 2);
    if (src->cp) memcpy(dst->cp, src->cp, (size_t)(src->ncp * src->cols) * 2);
    if (src->held) {
        memcpy(dst->hmask, src->hmask, plane);
        if (src->hbits == 16) {
            memcpy(dst->codes16, src->codes16, (size_t)src->nheld * 2);
        } else {
            memcpy(dst->codes, src->codes, (size_t)src->nheld);
            memcpy(dst->hq, src->hq, (size_t)src->rows * 8);
        }
    }
    if (lp_binary_finish(dst) != LP_OK) die("binary finish");
}

/* ---- one benchmarked product: the next copy of W, T tokens ---- */

typedef struct {
    int kind; /* 0..NKIND-1 binary, NKIND: qgroup W4 g128, NKIND + 1: f32 */
    int ncopies;
    lp_binary *b;
    lp_qgroup *q;
    float **f;
    int64_t rows, cols;
    size_t bytes; /* stored bytes of one copy */
    lp_isa isa;   /* binary's kernel level */
    const lp_qkernels *qk;
    int64_t blas_min; /* 0: the format's default */
} subject;

static void call(const subject *s, int copy, const float *X, int64_t T, float *Y) {
    const int c = copy % s->ncopies;
    if (s->kind < NKIND) {
        if (lp_binary_gemm_ex(&s->b[c], X, T, Y, s->isa, s->blas_min) != LP_OK) die("binary gemm");
    } else if (s->kind == NKIND) {
        lp_qgemm_params p = lp_qgemm_default_params();
        p.kernels = s->qk;
        p.blas_min_tokens = s->blas_min;
        if (lp_qgroup_gemm_ex(&s->q[c], X, T, Y, &p) != LP_OK) die("qgroup gemm");
    } else if (T == 1) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)s->rows, (int)s->cols, 1.0f, s->f[c], (int)s->cols, X, 1, 0.0f,
                    Y, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)s->rows, (int)s->cols, 1.0f, X,
                    (int)s->cols, s->f[c], (int)s->cols, 0.0f, Y, (int)s->rows);
    }
}

/* Median seconds of one call with T tokens, rotating copies; *best = fastest. */
static double time_calls(const subject *s, const float *X, int64_t T, float *Y, int runs, double *best) {
    double t[64];
    int c = 0;
    const double tw = omp_get_wtime(); /* warm-up: wakes idle cores, faults in scratch */
    for (int i = 0; i < 2 || (T == 1 && omp_get_wtime() - tw < 0.05); i++) call(s, c++, X, T, Y);
    for (int i = 0; i < runs; i++) {
        const double t0 = omp_get_wtime();
        call(s, c++, X, T, Y);
        t[i] = omp_get_wtime() - t0;
    }
    const double m = median(t, runs); /* sorts t */
    *best = t[0];
    return m;
}

static void free_subject(subject *s) {
    for (int i = 0; i < s->ncopies; i++) {
        if (s->b) lp_binary_free(&s->b[i]);
        if (s->q) lp_qgroup_free(&s->q[i]);
        if (s->f) free(s->f[i]);
    }
    free(s->b), free(s->q), free(s->f);
    memset(s, 0, sizeof *s);
}

/* kind's weights for rows x cols: enough copies to span >= 1 GiB when many. */
static subject make_subject(int kind, int64_t rows, int64_t cols, int many) {
    subject s = {.kind = kind, .rows = rows, .cols = cols, .isa = lp_cpu_isa(), .qk = lp_qkernels_default()};
    if (kind < NKIND) {
        lp_binary w0;
        make_binary(&w0, kind, rows, cols);
        s.bytes = lp_binary_nbytes(&w0);
        s.ncopies = many ? (int)((1ull << 30) / s.bytes + 1) : 1;
        s.b = malloc((size_t)s.ncopies * sizeof *s.b);
        s.b[0] = w0;
        for (int i = 1; i < s.ncopies; i++) copy_binary(&w0, &s.b[i]);
    } else if (kind == NKIND) {
        s.ncopies = 1;
        s.q = malloc(sizeof *s.q);
        if (lp_qgroup_init(&s.q[0], rows, cols, 4, 128, 0) != LP_OK) die("qgroup init");
        lp_qgroup *q = &s.q[0];
        s.bytes = lp_qgroup_nbytes(q);
        for (int64_t i = 0; i < rows * q->blocks * 4; i++) q->q[i] = (uint32_t)rnd();
        for (int64_t i = 0; i < rows * q->ngroups; i++) {
            q->scales[i] = (uint16_t)(0x1c00 + rnd() % 0x800);
            q->zeros[i] = (uint8_t)(rnd() % 16);
        }
        s.ncopies = many ? (int)((1ull << 30) / s.bytes + 1) : 1;
        s.q = realloc(s.q, (size_t)s.ncopies * sizeof *s.q);
        for (int i = 1; i < s.ncopies; i++) {
            if (lp_qgroup_init(&s.q[i], rows, cols, 4, 128, 0) != LP_OK) die("qgroup init");
            memcpy(s.q[i].q, s.q[0].q, (size_t)(rows * s.q[0].blocks * 4) * 4);
            memcpy(s.q[i].scales, s.q[0].scales, (size_t)(rows * s.q[0].ngroups) * 2);
            memcpy(s.q[i].zeros, s.q[0].zeros, (size_t)(rows * s.q[0].ngroups));
        }
    } else {
        s.bytes = (size_t)(rows * cols) * 4;
        s.ncopies = many ? 4 : 1; /* 4 x 180 MB: far beyond the L3 */
        s.f = malloc((size_t)s.ncopies * sizeof *s.f);
        for (int c = 0; c < s.ncopies; c++) {
            s.f[c] = malloc(s.bytes);
            for (int64_t i = 0; i < rows * cols; i++) s.f[c][i] = (float)(i % 17) * 0.01f;
        }
    }
    return s;
}

static const char *subject_name(const subject *s, char *buf, size_t n) {
    if (s->kind < NKIND) snprintf(buf, n, "%s %s", KIND[s->kind], lp_isa_name(s->isa));
    else if (s->kind == NKIND) snprintf(buf, n, "W4 g128 %s", s->qk->name);
    else snprintf(buf, n, "f32 cblas");
    return buf;
}

int main(int argc, char **argv) {
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    if (runs < 3) runs = 3;
    if (runs > 64) runs = 64;
    const int prefill = !(argc > 2 && !strcmp(argv[2], "decode")), cross = argc > 2 && !strcmp(argv[2], "cross");
    const int maxth = omp_get_num_procs();
    print_load("at start");
    size_t nbw = (1ull << 30) / 4;
    float *buf = malloc(nbw * 4);
    for (size_t i = 0; i < nbw; i++) buf[i] = (float)(i & 1023) * 1e-3f;

    enum { TP = 512 };
    const int64_t shapes[2][2] = {{11008, 4096}, {4096, 11008}};
    printf("\nrows x cols = out x in; GB/s = stored bytes / time; Gw/s = rows x cols x T / time;\n"
           "decode: median (best) of %d calls, each on the next of copies spanning >= 1 GiB; prefill T = %d: median "
           "of 3\n", runs, TP);
    printf("%-11s %-20s %6s %3s %5s %10s %14s %8s %8s\n", "shape", "format", "bits/w", "thr", "T", "time/us",
           "GB/s (best)", "Gw/s", "read-bw");
    for (int si = 0; si < (cross ? 0 : 2); si++) {
        const int64_t rows = shapes[si][0], cols = shapes[si][1];
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);
        float *X = malloc((size_t)(TP * cols) * 4), *Y = malloc((size_t)(TP * rows) * 4);
        for (int64_t i = 0; i < TP * cols; i++) X[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        for (int kind = 0; kind < NKIND + 2; kind++) {
            subject s = make_subject(kind, rows, cols, 1);
            /* the levels to time: binary at AVX2 and AVX-512 (as supported), qgroup's default, f32 */
            const int nlev = kind < NKIND ? 2 : 1;
            for (int lev = 0; lev < nlev; lev++) {
                if (kind < NKIND) {
                    s.isa = lev == 0 ? LP_ISA_AVX2 : LP_ISA_AVX512;
                    if (!lp_cpu_supports(s.isa)) continue;
                }
                char name[64];
                subject_name(&s, name, sizeof name);
                const double bpw = 8.0 * (double)s.bytes / (double)(rows * cols);
                for (int nt = 1; nt <= maxth; nt++) {
                    omp_set_num_threads(nt);
                    openblas_set_num_threads(nt);
                    const double rbw = read_bw(buf, nbw, 5);
                    double best, t = time_calls(&s, X, 1, Y, runs, &best);
                    printf("%-11s %-20s %6.2f %3d %5d %10.1f %6.2f (%5.2f) %8.2f %8.1f\n", shape, name, bpw, nt, 1,
                           t * 1e6, (double)s.bytes / t / 1e9, (double)s.bytes / best / 1e9,
                           (double)(rows * cols) / t / 1e9, rbw);
                    if (prefill && (kind >= NKIND || lev == 1 || !lp_cpu_supports(LP_ISA_AVX512))) {
                        t = time_calls(&s, X, TP, Y, 3, &best);
                        printf("%-11s %-20s %6.2f %3d %5d %10.1f %6.2f (%5.2f) %8.2f\n", shape, name, bpw, nt, TP,
                               t * 1e6, (double)s.bytes / t / 1e9, (double)s.bytes / best / 1e9,
                               (double)(rows * cols) * TP / t / 1e9);
                    }
                    fflush(stdout);
                }
            }
            free_subject(&s);
        }
        free(X);
        free(Y);
    }

    if (prefill) { /* where the packed kernels meet dequantized tiles + sgemm */
        const int64_t R = 4096, C = 4096, Ts[] = {1, 2, 4, 8, 12, 16, 24, 32, 64};
        omp_set_num_threads(1);
        openblas_set_num_threads(1);
        float *X = malloc((size_t)(64 * C) * 4), *Y = malloc((size_t)(64 * R) * 4);
        for (int64_t i = 0; i < 64 * C; i++) X[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        printf("\ncrossover, %lldx%lld, 1 thread, us per token (median of 5): packed kernel / dequant + sgemm\n",
               (long long)R, (long long)C);
        printf("%-12s %-7s", "format", "level");
        for (size_t i = 0; i < sizeof Ts / sizeof *Ts; i++) printf(" %13lld", (long long)Ts[i]);
        printf("\n");
        for (int kind = 0; kind < NKIND; kind++) {
            subject s = make_subject(kind, R, C, 0);
            for (int lev = LP_ISA_AVX2; lev <= LP_ISA_AVX512; lev++) {
                if (!lp_cpu_supports((lp_isa)lev)) continue;
                s.isa = (lp_isa)lev;
                printf("%-12s %-7s", KIND[kind], lp_isa_name(s.isa));
                for (size_t i = 0; i < sizeof Ts / sizeof *Ts; i++) {
                    double best, tp, tb;
                    s.blas_min = INT64_MAX;
                    tp = time_calls(&s, X, Ts[i], Y, 5, &best);
                    s.blas_min = 1;
                    tb = time_calls(&s, X, Ts[i], Y, 5, &best);
                    printf(" %6.0f/%-6.0f", tp * 1e6 / (double)Ts[i], tb * 1e6 / (double)Ts[i]);
                    fflush(stdout);
                }
                printf("\n");
            }
            free_subject(&s);
        }
        free(X);
        free(Y);
    }
    printf("\n");
    print_load("at end");
    free(buf);
    return 0;
}
