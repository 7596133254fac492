/*
 * bench_sparse.c - speed of the pruned formats' products (format/nm.h,
 * format/bitmap.h) against dense f32 (cblas) and packed W4 g128 (qgroup),
 * decode and prefill.
 *
 * Protocol: W is rows x cols = out x in (y = x W^T), in both Llama-7B MLP
 * shapes: 11008 x 4096 (gate/up) and 4096 x 11008 (down). Subjects:
 *   f32 cblas       the backend's sgemv (T = 1) / sgemm
 *   W4 g128         qgroup, 4-bit asymmetric, group 128, its default kernels
 *   nm 2:4 bf16     2 of every 4 kept, values bf16
 *   nm 2:4 w4       2 of every 4 kept, 4-bit codes on one grid per row
 *   bitmap 50% bf16 each weight kept with probability 1/2, values bf16
 * (random weights, keep patterns, codes and grids: speed does not depend on
 * the values). The sparse formats run at AVX2 and AVX-512 (as supported).
 * Bytes counted per call are the stored bytes (the traits rows' exact
 * nbytes: indices or bitmap + offsets + values + scales + zeros; qgroup's;
 * 4 per f32 weight). Decode (T = 1): every call uses the next of several
 * copies of W that together span >= 1 GiB, so reads come from DRAM as a
 * model's layers do; median (and best) of N calls after >= 50 ms of warm-up.
 * Prefill (T = 512): median of 3 calls on one copy, each format through its
 * default path (sparse and qgroup: dequantized row tiles + sgemm; f32:
 * cblas_sgemm). Figures: GB/s = stored bytes / time, Gw/s = rows x cols x T
 * / time (ORIGINAL weights applied per second, pruned ones included). Then
 * the crossover of the sparse formats' two paths on 4096 x 4096, 1 thread
 * (us per token, best of 5: robust to a busy machine): what sets
 * blas_min_tokens in nm.c and bitmap.c. A
 * read-and-sum loop over 1 GiB gives the memory bandwidth per thread count.
 *
 * Usage: bench_sparse [runs] [decode|cross]   ("decode" skips prefill and
 * the crossover, "cross" runs only the crossover); threads 1 .. the
 * processors (OMP_NUM_THREADS caps them). The load average is printed first
 * and last: numbers taken under load are not worth comparing.
 */
#include "bench_common.h"
#include "format/bitmap.h"
#include "format/nm.h"
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

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* ---- the weights ---- */

enum { K_F32, K_W4, K_NM_BF16, K_NM_W4, K_BM_BF16, NKIND };
static const char *const KIND[NKIND] = {"f32 cblas", "W4 g128", "nm 2:4 bf16", "nm 2:4 w4", "bitmap 50% bf16"};

/* A sparse weight of kind k through the makers the methods call. */
static void *make_sparse(int kind, int64_t rows, int64_t cols) {
    const int64_t n = rows * cols;
    uint8_t *keep = xmalloc((size_t)n), *codes = xmalloc((size_t)n);
    float *W = xmalloc((size_t)n * sizeof(float)), *scales = xmalloc((size_t)rows * sizeof(float));
    int *zeros = xmalloc((size_t)rows * sizeof(int));
    for (int64_t i = 0; i < n; i += 4) { /* 2 of 4 for nm: one of the 6 patterns; bitmap: 4 coin flips */
        static const uint8_t PAT[6] = {0x3, 0x5, 0x6, 0x9, 0xa, 0xc};
        const uint64_t u = rnd();
        const unsigned p = kind == K_BM_BF16 ? (unsigned)(u & 0xf) : PAT[(u >> 8) % 6];
        for (int j = 0; j < 4; j++) {
            keep[i + j] = (uint8_t)((p >> j) & 1);
            codes[i + j] = (uint8_t)((u >> (16 + 4 * j)) & 15);
            W[i + j] = (float)((int64_t)(u >> (40 + 4 * j) & 15) - 8) * 0.003f;
        }
    }
    for (int64_t r = 0; r < rows; r++) scales[r] = lp_f16_to_f32((uint16_t)(0x1c00 + rnd() % 0x800)), zeros[r] = 8;
    void *d = NULL;
    lp_status st;
    if (kind == K_BM_BF16) {
        st = lp_bitmap_make(rows, cols, keep, &(lp_sparse_values){16, LP_DT_BF16, -1}, W, NULL, NULL, NULL, &d);
    } else {
        const lp_sparse_values v = kind == K_NM_BF16 ? (lp_sparse_values){16, LP_DT_BF16, -1}
                                                     : (lp_sparse_values){4, LP_DT_U8, -1};
        st = lp_nm_make(rows, cols, 2, 4, keep, &v, W, codes, scales, zeros, &d);
    }
    if (st != LP_OK) die("sparse make");
    free(keep), free(codes), free(W), free(scales), free(zeros);
    return d;
}

static void *dup(const void *p, size_t n) { return p ? memcpy(xmalloc(n), p, n) : NULL; }

static void copy_store(const lp_sparse_store *a, lp_sparse_store *b, int64_t rows) {
    *b = *a;
    b->v16 = a->bits == 16 ? dup(a->v16, (size_t)a->count * 2) : NULL;
    if (a->bits < 16) {
        b->codes = dup(a->codes, lp_sparse_code_bytes(a->count, a->bits));
        b->scales = dup(a->scales, (size_t)(rows * a->ngroups) * 2);
        b->zeros = dup(a->zeros, (size_t)(rows * a->ngroups));
    }
}

/* A copy at other addresses (owned: freed by the format's free). */
static void *copy_sparse(int kind, const void *src) {
    if (kind == K_BM_BF16) {
        const lp_bitmap *a = src;
        lp_bitmap *b = xmalloc(sizeof *b);
        *b = *a;
        b->mask = dup(a->mask, (size_t)(a->rows * a->words) * 4);
        b->offsets = dup(a->offsets, (size_t)(a->rows + 1) * 8);
        copy_store(&a->v, &b->v, a->rows);
        return b;
    }
    const lp_nm *a = src;
    lp_nm *b = xmalloc(sizeof *b);
    *b = *a;
    b->idx = dup(a->idx, (size_t)(a->rows * a->ibytes));
    copy_store(&a->v, &b->v, a->rows);
    return b;
}

static const lp_format *format_of(int kind) { return kind == K_BM_BF16 ? &lp_format_bitmap : &lp_format_nm; }

/* ---- one benchmarked product: the next copy of W, T tokens ---- */

typedef struct {
    int kind;
    int ncopies;
    void **sp;     /* sparse copies */
    lp_qgroup *q;  /* W4 copies */
    float **f;     /* f32 copies */
    int64_t rows, cols;
    size_t bytes;  /* stored bytes of one copy */
    lp_isa isa;    /* the sparse formats' kernel level */
    int64_t blas_min; /* 0: the format's default */
} subject;

static void call(const subject *s, int copy, const float *X, int64_t T, float *Y) {
    const int c = copy % s->ncopies;
    lp_status st = LP_OK;
    if (s->kind == K_F32) {
        if (T == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)s->rows, (int)s->cols, 1.0f, s->f[c], (int)s->cols, X, 1,
                        0.0f, Y, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)s->rows, (int)s->cols, 1.0f, X,
                        (int)s->cols, s->f[c], (int)s->cols, 0.0f, Y, (int)s->rows);
    } else if (s->kind == K_W4) {
        lp_qgemm_params p = lp_qgemm_default_params();
        p.blas_min_tokens = s->blas_min;
        st = lp_qgroup_gemm_ex(&s->q[c], X, T, Y, &p);
    } else if (s->kind == K_BM_BF16) {
        st = lp_bitmap_gemm_ex(s->sp[c], X, T, Y, s->isa, s->blas_min);
    } else {
        st = lp_nm_gemm_ex(s->sp[c], X, T, Y, s->isa, s->blas_min);
    }
    if (st != LP_OK) die(KIND[s->kind]);
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
        if (s->sp) format_of(s->kind)->free(s->sp[i]);
        if (s->q) lp_qgroup_free(&s->q[i]);
        if (s->f) free(s->f[i]);
    }
    free(s->sp), free(s->q), free(s->f);
    memset(s, 0, sizeof *s);
}

/* kind's weights for rows x cols: enough copies to span >= 1 GiB when many. */
static subject make_subject(int kind, int64_t rows, int64_t cols, int many) {
    subject s = {.kind = kind, .rows = rows, .cols = cols, .isa = lp_cpu_isa()};
    if (kind == K_F32) {
        s.bytes = (size_t)(rows * cols) * 4;
        s.ncopies = many ? 4 : 1; /* 4 x 180 MB: far beyond the L3 */
        s.f = xmalloc((size_t)s.ncopies * sizeof *s.f);
        for (int c = 0; c < s.ncopies; c++) {
            s.f[c] = xmalloc(s.bytes);
            for (int64_t i = 0; i < rows * cols; i++) s.f[c][i] = (float)(i % 17) * 0.01f;
        }
    } else if (kind == K_W4) {
        lp_qgroup q0;
        if (lp_qgroup_init(&q0, rows, cols, 4, 128, 0) != LP_OK) die("qgroup init");
        for (int64_t i = 0; i < rows * q0.blocks * 4; i++) q0.q[i] = (uint32_t)rnd();
        for (int64_t i = 0; i < rows * q0.ngroups; i++) {
            q0.scales[i] = (uint16_t)(0x1c00 + rnd() % 0x800);
            q0.zeros[i] = (uint8_t)(rnd() % 16);
        }
        s.bytes = lp_qgroup_nbytes(&q0);
        s.ncopies = many ? (int)((1ull << 30) / s.bytes + 1) : 1;
        s.q = xmalloc((size_t)s.ncopies * sizeof *s.q);
        s.q[0] = q0;
        for (int i = 1; i < s.ncopies; i++) {
            if (lp_qgroup_init(&s.q[i], rows, cols, 4, 128, 0) != LP_OK) die("qgroup init");
            memcpy(s.q[i].q, q0.q, (size_t)(rows * q0.blocks * 4) * 4);
            memcpy(s.q[i].scales, q0.scales, (size_t)(rows * q0.ngroups) * 2);
            memcpy(s.q[i].zeros, q0.zeros, (size_t)(rows * q0.ngroups));
        }
    } else {
        void *d0 = make_sparse(kind, rows, cols);
        s.bytes = format_of(kind)->nbytes(d0);
        s.ncopies = many ? (int)((1ull << 30) / s.bytes + 1) : 1;
        s.sp = xmalloc((size_t)s.ncopies * sizeof *s.sp);
        s.sp[0] = d0;
        for (int i = 1; i < s.ncopies; i++) s.sp[i] = copy_sparse(kind, d0);
    }
    return s;
}

int main(int argc, char **argv) {
    g_rng = 0x9e3779b97f4a7c15ull; /* this benchmark's stream */
    int runs = argc > 1 ? atoi(argv[1]) : 20;
    if (runs < 3) runs = 3;
    if (runs > 64) runs = 64;
    const int prefill = !(argc > 2 && !strcmp(argv[2], "decode")), cross = argc > 2 && !strcmp(argv[2], "cross");
    const int maxth = omp_get_max_threads();
    print_load("at start");
    const size_t nbw = (1ull << 30) / 4;
    float *buf = xmalloc(nbw * 4);
    for (size_t i = 0; i < nbw; i++) buf[i] = (float)(i & 1023) * 1e-3f;

    enum { TP = 512 };
    const int64_t shapes[2][2] = {{11008, 4096}, {4096, 11008}};
    printf("\nrows x cols = out x in; GB/s = stored bytes / time; Gw/s = rows x cols x T / time (original weights);\n"
           "decode: median (best) of %d calls, each on the next of copies spanning >= 1 GiB; prefill T = %d: median "
           "of 3\n", runs, TP);
    printf("%-11s %-24s %6s %3s %5s %10s %14s %8s %8s\n", "shape", "format", "bits/w", "thr", "T", "time/us",
           "GB/s (best)", "Gw/s", "read-bw");
    for (int si = 0; si < (cross ? 0 : 2); si++) {
        const int64_t rows = shapes[si][0], cols = shapes[si][1];
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)rows, (long long)cols);
        float *X = xmalloc((size_t)(TP * cols) * 4), *Y = xmalloc((size_t)(TP * rows) * 4);
        for (int64_t i = 0; i < TP * cols; i++) X[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        for (int kind = 0; kind < NKIND; kind++) {
            subject s = make_subject(kind, rows, cols, 1);
            const int nlev = kind >= K_NM_BF16 ? 2 : 1; /* the sparse formats at AVX2 and AVX-512 */
            for (int lev = 0; lev < nlev; lev++) {
                if (kind >= K_NM_BF16) {
                    s.isa = lev == 0 ? LP_ISA_AVX2 : LP_ISA_AVX512;
                    if (!lp_cpu_supports(s.isa)) continue;
                }
                char name[64];
                if (kind >= K_NM_BF16) snprintf(name, sizeof name, "%s %s", KIND[kind], lp_isa_name(s.isa));
                else snprintf(name, sizeof name, "%s", KIND[kind]);
                const double bpw = 8.0 * (double)s.bytes / (double)(rows * cols);
                for (int nt = 1; nt <= maxth; nt++) {
                    omp_set_num_threads(nt);
                    openblas_set_num_threads(nt);
                    const double rbw = read_bw(buf, nbw, 5);
                    double best, t = time_calls(&s, X, 1, Y, runs, &best);
                    printf("%-11s %-24s %6.2f %3d %5d %10.1f %6.2f (%5.2f) %8.2f %8.1f\n", shape, name, bpw, nt, 1,
                           t * 1e6, (double)s.bytes / t / 1e9, (double)s.bytes / best / 1e9,
                           (double)(rows * cols) / t / 1e9, rbw);
                    /* prefill at the best level only: both levels share dequantize + sgemm there */
                    if (prefill && (kind < K_NM_BF16 || lev == 1 || !lp_cpu_supports(LP_ISA_AVX512))) {
                        t = time_calls(&s, X, TP, Y, 3, &best);
                        printf("%-11s %-24s %6.2f %3d %5d %10.1f %6.2f (%5.2f) %8.2f\n", shape, name, bpw, nt, TP,
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
        const int64_t R = 4096, C = 4096, Ts[] = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64};
        const int nT = (int)(sizeof Ts / sizeof *Ts);
        omp_set_num_threads(1);
        openblas_set_num_threads(1);
        float *X = xmalloc((size_t)(64 * C) * 4), *Y = xmalloc((size_t)(64 * R) * 4);
        for (int64_t i = 0; i < 64 * C; i++) X[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        printf("\ncrossover, %lldx%lld, 1 thread, us per token (best of 5): packed kernel / dequant + sgemm\n",
               (long long)R, (long long)C);
        printf("%-16s %-7s", "format", "level");
        for (int i = 0; i < nT; i++) printf(" %13lld", (long long)Ts[i]);
        printf("\n");
        for (int kind = K_NM_BF16; kind < NKIND; kind++) {
            subject s = make_subject(kind, R, C, 0);
            for (int lev = LP_ISA_AVX2; lev <= LP_ISA_AVX512; lev++) {
                if (!lp_cpu_supports((lp_isa)lev)) continue;
                s.isa = (lp_isa)lev;
                printf("%-16s %-7s", KIND[kind], lp_isa_name(s.isa));
                for (int i = 0; i < nT; i++) {
                    double tp, tb;
                    s.blas_min = INT64_MAX;
                    time_calls(&s, X, Ts[i], Y, 5, &tp);
                    s.blas_min = 1;
                    time_calls(&s, X, Ts[i], Y, 5, &tb);
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
