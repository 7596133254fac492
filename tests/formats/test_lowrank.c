/*
 * test_lowrank.c - the dense16 format (format/dense16.h) and the lowrank
 * format (format/lowrank.h).
 *  dense16:
 *   - dequantization of every finite bf16 and f16 value (subnormals and
 *     signed zeros included) equals core/half.h's conversion bit for bit at
 *     every level this CPU supports, from any first row; lp_dense16_from_f32
 *     rounds as lp_f32_to_bf16 / lp_f32_to_f16 and gives back exactly the
 *     values it was given when they are representable;
 *   - products at every level (row kernels forced, and the sgemm path) match
 *     the reference kernel and a double-precision product of the dequantized
 *     weight (|diff| / sum |w x| < 1e-5) for T = 1, 2, 3, 4, 5, 17, 64 on
 *     shapes with ragged columns (1, 31, 97, 172, 384, ...); each token of a
 *     multi-token call is bit-identical to a one-token call; one or two
 *     threads give the same bits;
 *   - from_f32 refuses a value that overflows f16 or bf16 or is not finite
 *     (LP_ERR_NUMERIC naming it), a bad dtype or shape (LP_ERR_ARG).
 *  lowrank (W = B A):
 *   - with dense16 factors (bf16, f16, mixed), W4 qgroup factors, and dense
 *     f32 factors: the product equals B (A x) computed in double, dequant
 *     equals B A in double, and any row range gives the same bits as those
 *     rows of the whole (fuzz_checkpoint.c's oracle needs it), nbytes / nparams / paper_bits /
 *     describe are the factors';
 *   - save -> load through a safetensors file (one part, and as a part of a
 *     sum beside a dense16 residual, and with a dense factor stored as a plain
 *     tensor) gives the same description, bit-identical factors, dequantized
 *     values and products;
 *   - corrupt files fail with LP_ERR_FORMAT naming the file, the linear and
 *     what is wrong (rank 0, rank > min(rows, cols), missing "a", "a" not an
 *     object, a nested lowrank or sum factor, an unknown factor format, a
 *     factor tensor of the wrong shape, NaN / Inf in a dense16 tensor, the
 *     wrong dtype, an unknown dense16 dtype, a missing tensor);
 *   - lp_lowrank_make's argument errors (LP_ERR_ARG; the factors are freed,
 *     which the ASan build's leak check sees).
 * Shapes: W is rows x cols (out x in), X is T x cols, Y is T x rows.
 */
#include "test.h"

#include "core/half.h"
#include "format/dense.h"
#include "format/dense16.h"
#include "format/linear.h"
#include "format/lowrank.h"
#include "format/qgroup.h"

#include <float.h>
#include <omp.h>
#include <unistd.h>

static char g_dir[256];
static const lp_isa ISAS[] = {LP_ISA_REF, LP_ISA_AVX2, LP_ISA_AVX512};
static void (*const DEQUANT[LP_ISA_N])(const void *, int64_t, int64_t, float *) = {
    lp_dense16_dequant_ref, lp_dense16_dequant_avx2, lp_dense16_dequant_avx512};

static double max_d(double a, double b) { return a > b ? a : b; }

static const char *file_path(const char *name) {
    static char p[4][512];
    static int i = 0;
    char *s = p[i++ & 3];
    snprintf(s, 512, "%s/%s", g_dir, name);
    return s;
}

/* A dense16 weight of random N(0, scale^2) values; NULL on failure (counted). */
static lp_dense16 *rand_dense16(int64_t rows, int64_t cols, lp_dtype dt, float scale, unsigned long long *s) {
    float *W = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++) W[i] = scale * test_randn(s);
    void *d = NULL;
    CHECK_OK(lp_dense16_from_f32(rows, cols, W, dt, &d));
    free(W);
    return d;
}

/* ---- dense16: conversion ---- */

/* Every finite value of dtype dt, in order of its bits, as a rows x 256 weight. */
static void check_all_values(lp_dtype dt) {
    const int bf = dt == LP_DT_BF16;
    const uint16_t emask = bf ? 0x7f80 : 0x7c00;
    uint16_t *v = malloc(65536 * sizeof(uint16_t));
    int64_t n = 0;
    for (uint32_t h = 0; h < 65536; h++)
        if ((h & emask) != emask) v[n++] = (uint16_t)h;
    CHECK(n == (bf ? 65280 : 63488)); /* 2^16 minus the Inf/NaN patterns */
    const int64_t C = 256, R = n / C;
    void *d = NULL;
    CHECK_OK(lp_dense16_view(R, C, dt, v, (size_t)(R * C) * 2, &d));
    if (!d) {
        free(v);
        return;
    }
    float *want = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) want[i] = bf ? lp_bf16_to_f32(v[i]) : lp_f16_to_f32(v[i]);
    for (int i = 0; i < LP_ISA_N; i++) {
        if (!lp_cpu_supports(ISAS[i])) continue;
        for (int64_t r0 = 0; r0 < 3; r0++) { /* from row 0, 1, 2: the kernels never assume an aligned start */
            memset(got, 0xff, (size_t)n * sizeof(float));
            DEQUANT[i](d, r0, R, got + r0 * C);
            int64_t bad = 0;
            for (int64_t e = r0 * C; e < n; e++) bad += memcmp(&want[e], &got[e], 4) != 0;
            CHECKF(bad == 0, "%s: %s dequantization from row %lld differs from half.h in %lld values",
                   lp_dtype_name(dt), lp_isa_name(ISAS[i]), (long long)r0, (long long)bad);
        }
        /* a ragged count of values: 3 rows of 7 columns */
        lp_dense16 small = {.rows = 3, .cols = 7, .dtype = dt, .w = v + 1000};
        memset(got, 0xff, 21 * sizeof(float));
        DEQUANT[i](&small, 0, 3, got);
        CHECKF(!memcmp(got, want + 1000, 21 * sizeof(float)), "%s: %s dequantization of 21 values differs",
               lp_dtype_name(dt), lp_isa_name(ISAS[i]));
        CHECK(got[21] != got[21]); /* nothing written past the end (0xffffffff is a NaN) */
    }
    lp_format_dense16.dequant(d, 0, R, got); /* the row: this CPU's level, threaded */
    CHECKF(!memcmp(want, got, (size_t)n * sizeof(float)), "%s: the traits row's dequantization differs",
           lp_dtype_name(dt));
    /* from_f32 of exactly representable values gives them back */
    void *e = NULL;
    CHECK_OK(lp_dense16_from_f32(R, C, want, dt, &e));
    if (e) CHECKF(!memcmp(((lp_dense16 *)e)->w, v, (size_t)n * 2), "%s: from_f32 changed representable values",
                  lp_dtype_name(dt));
    lp_dense16_free(e);
    lp_dense16_free(d);
    free(want), free(got), free(v);
}

static void check_from_f32(unsigned long long *s) {
    enum { R = 13, C = 77 };
    float W[R * C];
    for (int i = 0; i < R * C; i++) W[i] = test_randn(s) * (i % 5 == 0 ? 1e-6f : i % 7 == 0 ? 3e3f : 1.0f);
    W[5] = -0.0f;
    W[6] = 65519.0f; /* rounds to 65504, the largest f16 */
    W[7] = 1e-8f;    /* an f16 subnormal... rounded to 0 */
    for (int k = 0; k < 2; k++) {
        const lp_dtype dt = k ? LP_DT_F16 : LP_DT_BF16;
        void *d = NULL;
        CHECK_OK(lp_dense16_from_f32(R, C, W, dt, &d));
        const lp_dense16 *w = d;
        int bad = 0;
        for (int i = 0; w && i < R * C; i++) bad += w->w[i] != (k ? lp_f32_to_f16(W[i]) : lp_f32_to_bf16(W[i]));
        CHECKF(w && bad == 0 && w->owned == w->w && w->rows == R && w->cols == C && w->dtype == dt,
               "%s: from_f32 rounds %d values unlike half.h", lp_dtype_name(dt), bad);
        CHECK(w && lp_dense16_nbytes(w) == (size_t)R * C * 2 && lp_format_dense16.nbytes(w) == (size_t)R * C * 2);
        char buf[64];
        if (w) lp_format_dense16.describe(w, buf, sizeof buf);
        CHECKF(w && !strcmp(buf, k ? "dense16 f16" : "dense16 bf16"), "described as \"%s\"", w ? buf : "");
        lp_dense16_free(d);
    }
    /* values that do not fit, or are not finite */
    const struct {
        float v;
        lp_dtype dt;
        const char *need;
    } bad[] = {
        {70000.0f, LP_DT_F16, "W[2][3] = 70000 overflows f16"},
        {65520.0f, LP_DT_F16, "overflows f16"},
        {-1e6f, LP_DT_F16, "= -1000000 overflows f16"},
        {FLT_MAX, LP_DT_BF16, "overflows bf16"},
        {NAN, LP_DT_BF16, "is not finite"},
        {-INFINITY, LP_DT_F16, "is not finite"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const float keep = W[2 * C + 3];
        W[2 * C + 3] = bad[i].v;
        W[9 * C + 1] = bad[i].v; /* a later one: the first is named */
        void *d = (void *)1;
        lp_status st = lp_dense16_from_f32(R, C, W, bad[i].dt, &d);
        CHECKF(st == LP_ERR_NUMERIC && d == NULL && strstr(lp_last_error(), bad[i].need) &&
                   strstr(lp_last_error(), "W[2][3]"),
               "from_f32 of %g as %s: got %s: %s", (double)bad[i].v, lp_dtype_name(bad[i].dt), lp_status_name(st),
               lp_last_error());
        W[2 * C + 3] = keep;
        W[9 * C + 1] = 0.5f;
    }
    void *d = NULL;
    CHECK(lp_dense16_from_f32(R, C, W, LP_DT_F32, &d) == LP_ERR_ARG && !d);
    CHECK(lp_dense16_from_f32(0, C, W, LP_DT_BF16, &d) == LP_ERR_ARG && !d);
    CHECK(lp_dense16_from_f32(R, -1, W, LP_DT_F16, &d) == LP_ERR_ARG && !d);
    lp_dense16_free(NULL);
}

/* ---- dense16: products ---- */

static void check_products(int64_t R, int64_t C, lp_dtype dt, unsigned long long *s, double *worst) {
    enum { TMAX = 64 };
    char name[64];
    snprintf(name, sizeof name, "dense16 %s %lldx%lld", lp_dtype_name(dt), (long long)R, (long long)C);
    lp_dense16 *w = rand_dense16(R, C, dt, 0.1f, s);
    if (!w) return;
    float *D = malloc((size_t)(R * C) * sizeof(float));
    lp_dense16_dequant_ref(w, 0, R, D);
    float *X = malloc((size_t)(TMAX * C) * sizeof(float)), *Y = malloc((size_t)(TMAX * R) * sizeof(float));
    float *Yref = malloc((size_t)(TMAX * R) * sizeof(float)), *Y2 = malloc((size_t)(TMAX * R) * sizeof(float));
    double *want = malloc((size_t)(TMAX * R) * sizeof(double)), *mag = malloc((size_t)(TMAX * R) * sizeof(double));
    for (int64_t i = 0; i < TMAX * C; i++) X[i] = test_randn(s);
    for (int64_t t = 0; t < TMAX; t++)
        for (int64_t r = 0; r < R; r++) {
            double acc = 0, m = 0;
            for (int64_t c = 0; c < C; c++) {
                acc += (double)D[r * C + c] * X[t * C + c];
                m += fabs((double)D[r * C + c] * X[t * C + c]);
            }
            want[t * R + r] = acc;
            mag[t * R + r] = m > 0 ? m : 1;
        }
    static const int64_t Ts[] = {1, 2, 3, 4, 5, 17, 64};
    for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++) {
        const int64_t T = Ts[ti];
        CHECK_OK(lp_dense16_gemm_ex(w, X, T, Yref, LP_ISA_REF, 1000));
        for (int i = 0; i < LP_ISA_N; i++) {
            if (!lp_cpu_supports(ISAS[i])) {
                CHECK(lp_dense16_gemm_ex(w, X, T, Y, ISAS[i], 0) == LP_ERR_UNSUPPORTED);
                continue;
            }
            for (int path = 0; path < 2; path++) { /* 0: row kernels, 1: converted tiles + sgemm */
                CHECK_OK(lp_dense16_gemm_ex(w, X, T, Y, ISAS[i], path ? 1 : 1000));
                double e = 0, eref = 0;
                for (int64_t j = 0; j < T * R; j++) {
                    e = max_d(e, fabs((double)Y[j] - want[j]) / mag[j]);
                    eref = max_d(eref, fabs((double)Y[j] - Yref[j]) / mag[j]);
                }
                if (i > 0 && !path) *worst = max_d(*worst, e);
                CHECKF(e < 1e-5 && eref < 1e-5, "%s: %s %s T=%lld: vs double %.3g, vs ref %.3g", name,
                       lp_isa_name(ISAS[i]), path ? "sgemm" : "rows", (long long)T, e, eref);
                if (i == 0 && !path) /* the reference path is the reference kernel itself */
                    CHECK(!memcmp(Y, Yref, (size_t)(T * R) * sizeof(float)));
            }
        }
    }
    /* per token, T does not matter on the row path; nor does the thread count (both paths) */
    for (int i = 0; i < LP_ISA_N; i++) {
        if (!lp_cpu_supports(ISAS[i])) continue;
        CHECK_OK(lp_dense16_gemm_ex(w, X, 7, Y, ISAS[i], 1000));
        for (int64_t t = 0; t < 7; t++) {
            CHECK_OK(lp_dense16_gemm_ex(w, X + t * C, 1, Y2, ISAS[i], 1000));
            CHECKF(!memcmp(Y2, Y + t * R, (size_t)R * sizeof(float)), "%s %s: token %lld of 7 differs from T = 1",
                   name, lp_isa_name(ISAS[i]), (long long)t);
        }
        for (int path = 0; path < 2; path++) {
            omp_set_num_threads(1);
            CHECK_OK(lp_dense16_gemm_ex(w, X, 17, Y, ISAS[i], path ? 1 : 1000));
            omp_set_num_threads(2);
            CHECK_OK(lp_dense16_gemm_ex(w, X, 17, Y2, ISAS[i], path ? 1 : 1000));
            CHECKF(!memcmp(Y, Y2, (size_t)(17 * R) * sizeof(float)), "%s %s %s: 1 and 2 threads differ", name,
                   lp_isa_name(ISAS[i]), path ? "sgemm" : "rows");
        }
    }
    /* the traits row (this CPU's level and threshold) */
    CHECK_OK(lp_format_gemm(&lp_format_dense16, lp_cpu_isa())(w, X, 17, Y));
    double e = 0;
    for (int64_t j = 0; j < 17 * R; j++) e = max_d(e, fabs((double)Y[j] - want[j]) / mag[j]);
    CHECKF(e < 1e-5, "%s: the traits row's product: %.3g", name, e);
    CHECK(lp_dense16_gemm_ex(w, X, -1, Y, LP_ISA_REF, 0) == LP_ERR_ARG);
    CHECK_OK(lp_dense16_gemm_ex(w, X, 0, Y, LP_ISA_REF, 0));
    lp_dense16_free(w);
    free(D), free(X), free(Y), free(Yref), free(Y2), free(want), free(mag);
}

/* ---- lowrank ---- */

enum { F_BF16, F_F16, F_MIXED, F_QGROUP, F_DENSE, NFACT };
static const char *const FACT_NAME[NFACT] = {"dense16 bf16", "dense16 f16", "bf16 A + f16 B", "qgroup w4",
                                             "dense f32"};

/* A random W4 g32 asymmetric qgroup weight (scales ~ scale / 8). */
static lp_qgroup *rand_qgroup(int64_t rows, int64_t cols, float scale, unsigned long long *s) {
    lp_qgroup *q = calloc(1, sizeof *q);
    CHECK_OK(lp_qgroup_init(q, rows, cols, 4, 32, 0));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) lp_qgroup_set(q, r, c, (unsigned)(test_rand_u64(s) % 16));
    for (int64_t i = 0; i < rows * q->ngroups; i++) {
        q->scales[i] = lp_f32_to_f16(scale / 8 * (0.5f + (float)(test_rand_u64(s) % 1000) / 1000.0f));
        q->zeros[i] = (uint8_t)(test_rand_u64(s) % 16);
    }
    return q;
}

/* A factor (rows x cols) of kind k; which is 0 for A, 1 for B. */
static void rand_factor(int k, int which, int64_t rows, int64_t cols, unsigned long long *s, const lp_format **f,
                        void **d) {
    const float scale = 1.0f / sqrtf((float)cols);
    if (k == F_QGROUP) {
        *f = &lp_format_qgroup;
        *d = rand_qgroup(rows, cols, scale, s);
    } else if (k == F_DENSE) {
        float *W = malloc((size_t)(rows * cols) * sizeof(float));
        for (int64_t i = 0; i < rows * cols; i++) W[i] = scale * test_randn(s);
        lp_dense *dd = NULL;
        CHECK_OK(lp_dense_own(rows, cols, W, &dd));
        *f = &lp_format_dense;
        *d = dd;
    } else {
        const lp_dtype dt = k == F_BF16 || (k == F_MIXED && which == 0) ? LP_DT_BF16 : LP_DT_F16;
        *f = &lp_format_dense16;
        *d = rand_dense16(rows, cols, dt, scale, s);
    }
}

static lp_lowrank *make_lowrank(int64_t R, int64_t C, int64_t K, int kind, unsigned long long *s) {
    const lp_format *fa, *fb;
    void *a, *b, *w = NULL;
    rand_factor(kind, 0, K, C, s, &fa, &a);
    rand_factor(kind, 1, R, K, s, &fb, &b);
    CHECK_OK(lp_lowrank_make(R, C, K, fa, a, fb, b, &w));
    return w;
}

/* A factor's f32 values (dequantized through its row). */
static float *factor_f32(const lp_part *p, int64_t rows, int64_t cols) {
    float *F = malloc((size_t)(rows * cols) * sizeof(float));
    CHECK_OK(p->fmt->dequant(p->data, 0, rows, F));
    return F;
}

static void check_lowrank_values(const lp_lowrank *w, const char *name, unsigned long long *s) {
    const int64_t R = w->rows, C = w->cols, K = w->rank;
    enum { TMAX = 17 };
    float *A = factor_f32(&w->a, K, C), *B = factor_f32(&w->b, R, K);
    /* dequant == B A (double), over the whole weight and a ragged row range */
    double *BA = malloc((size_t)(R * C) * sizeof(double)), *BAm = malloc((size_t)(R * C) * sizeof(double));
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            double acc = 0, m = 0;
            for (int64_t k = 0; k < K; k++) {
                acc += (double)B[r * K + k] * A[k * C + c];
                m += fabs((double)B[r * K + k] * A[k * C + c]);
            }
            BA[r * C + c] = acc;
            BAm[r * C + c] = m > 0 ? m : 1;
        }
    float *D = malloc((size_t)(R * C) * sizeof(float));
    CHECK_OK(lp_format_lowrank.dequant(w, 0, R, D));
    double e = 0;
    for (int64_t i = 0; i < R * C; i++) e = max_d(e, fabs(D[i] - BA[i]) / BAm[i]);
    CHECKF(e < 1e-5, "%s: dequant vs B A: %.3g", name, e);
    /* a row's values do not depend on where the range starts or ends (fuzz_checkpoint.c relies on it) */
    const int64_t ranges[][2] = {{R / 3, R - 1}, {1, R}, {R / 2, R}, {R - 1, R}, {63, R}, {65, R}, {63, 64}, {64, 65}};
    float *D2 = malloc((size_t)(R * C) * sizeof(float));
    for (size_t i = 0; i < sizeof ranges / sizeof *ranges; i++) {
        const int64_t r0 = ranges[i][0], r1 = ranges[i][1];
        if (!(0 <= r0 && r0 < r1 && r1 <= R)) continue;
        CHECK_OK(lp_format_lowrank.dequant(w, r0, r1, D2));
        CHECKF(!memcmp(D2, D + r0 * C, (size_t)((r1 - r0) * C) * sizeof(float)),
               "%s: dequant rows [%lld, %lld) differ from the same rows of [0, %lld)", name, (long long)r0,
               (long long)r1, (long long)R);
    }
    omp_set_num_threads(1);
    CHECK_OK(lp_format_lowrank.dequant(w, 0, R, D2));
    omp_set_num_threads(2);
    CHECKF(!memcmp(D, D2, (size_t)(R * C) * sizeof(float)), "%s: dequant differs with 1 and 2 threads", name);

    /* product == B (A x) (double); the sum |.| bound: sum_k |B_rk| sum_c |A_kc x_c| */
    float *X = malloc((size_t)(TMAX * C) * sizeof(float)), *Y = malloc((size_t)(TMAX * R) * sizeof(float));
    float *Y2 = malloc((size_t)(TMAX * R) * sizeof(float));
    for (int64_t i = 0; i < TMAX * C; i++) X[i] = test_randn(s);
    const lp_gemm_fn gemm = lp_format_gemm(&lp_format_lowrank, lp_cpu_isa());
    static const int64_t Ts[] = {1, 2, 3, 4, 5, 17};
    for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++) {
        const int64_t T = Ts[ti];
        CHECK_OK(gemm(w, X, T, Y));
        e = 0;
        for (int64_t t = 0; t < T; t++) {
            double *z = malloc((size_t)K * sizeof(double)), *zm = malloc((size_t)K * sizeof(double));
            for (int64_t k = 0; k < K; k++) {
                z[k] = zm[k] = 0;
                for (int64_t c = 0; c < C; c++) {
                    z[k] += (double)A[k * C + c] * X[t * C + c];
                    zm[k] += fabs((double)A[k * C + c] * X[t * C + c]);
                }
            }
            for (int64_t r = 0; r < R; r++) {
                double y = 0, m = 0;
                for (int64_t k = 0; k < K; k++) {
                    y += (double)B[r * K + k] * z[k];
                    m += fabs((double)B[r * K + k]) * zm[k];
                }
                e = max_d(e, fabs(Y[t * R + r] - y) / (m > 0 ? m : 1));
            }
            free(z), free(zm);
        }
        CHECKF(e < 1e-5, "%s: product T=%lld vs B (A x): %.3g", name, (long long)T, e);
    }
    omp_set_num_threads(1);
    CHECK_OK(gemm(w, X, TMAX, Y));
    omp_set_num_threads(2);
    CHECK_OK(gemm(w, X, TMAX, Y2));
    /* dense f32 factors go through the BLAS backend, whose threads may split sums */
    if (w->a.fmt != &lp_format_dense)
        CHECKF(!memcmp(Y, Y2, (size_t)(TMAX * R) * sizeof(float)), "%s: 1 and 2 threads differ", name);
    CHECK(gemm(w, X, -1, Y) == LP_ERR_ARG);
    CHECK_OK(gemm(w, X, 0, Y));
    free(A), free(B), free(BA), free(BAm), free(D), free(D2), free(X), free(Y), free(Y2);
}

static void check_lowrank_sizes(const lp_lowrank *w, int kind, const char *name) {
    const int64_t R = w->rows, C = w->cols, K = w->rank;
    size_t fbytes;
    if (kind == F_QGROUP) /* q + scales + zeros per factor: ceil(n / 32) blocks of 4 words, groups of 32 */
        fbytes = (size_t)(K * ((C + 31) / 32) * 16 + K * ((C + 31) / 32) * 3) +
                 (size_t)(R * ((K + 31) / 32) * 16 + R * ((K + 31) / 32) * 3);
    else fbytes = (size_t)(K * C + R * K) * (kind == F_DENSE ? 4 : 2);
    CHECKF(lp_format_lowrank.nbytes(w) == fbytes, "%s: nbytes %zu, expected %zu", name, lp_format_lowrank.nbytes(w),
           fbytes);
    CHECKF(lp_format_lowrank.nparams(w) == K * (R + C), "%s: nparams %lld, expected %lld", name,
           (long long)lp_format_lowrank.nparams(w), (long long)(K * (R + C)));
    CHECK(lp_format_lowrank.paper_bits(w) == 8.0 * (double)fbytes);
    lp_linear l = {.rows = R, .cols = C};
    lp_linear_set(&l, &lp_format_lowrank, (void *)w); /* borrowed */
    CHECK(lp_linear_nparams(&l) == K * (R + C) && lp_linear_nbytes(&l) == fbytes);
    l.nparts = 0;
    lp_linear_free(&l);
    char buf[200], want[200];
    static const char *const DESC[NFACT] = {"dense16 bf16 + dense16 bf16", "dense16 f16 + dense16 f16",
                                            "dense16 bf16 + dense16 f16", NULL, "dense f32 + dense f32"};
    if (kind == F_QGROUP) /* group 32 of a factor at most 32 wide is one group per row */
        snprintf(want, sizeof want, "lowrank r%lld (qgroup w4 %s asym + qgroup w4 %s asym)", (long long)K,
                 C > 32 ? "g32" : "per-channel", K > 32 ? "g32" : "per-channel");
    else snprintf(want, sizeof want, "lowrank r%lld (%s)", (long long)K, DESC[kind]);
    lp_format_lowrank.describe(w, buf, sizeof buf);
    CHECKF(!strcmp(buf, want), "%s: described as \"%s\", expected \"%s\"", name, buf, want);
}

static lp_status load_file(const char *path, int64_t rows, int64_t cols, lp_linear *l, lp_weights **wts) {
    *wts = NULL;
    memset(l, 0, sizeof *l);
    lp_status st = lp_weights_open(path, wts);
    if (st != LP_OK) return st;
    const lp_fmt_src in = {*wts, path};
    return lp_linear_load_packed(&in, "blk.lin", rows, cols, l);
}

/* Same format and bit-identical values of two factors. */
static bool same_factor(const lp_part *p, const lp_part *q, int64_t rows, int64_t cols) {
    if (p->fmt != q->fmt) return false;
    float *P = factor_f32(p, rows, cols), *Q = factor_f32(q, rows, cols);
    const bool same = !memcmp(P, Q, (size_t)(rows * cols) * sizeof(float));
    free(P), free(Q);
    return same;
}

/* l (whose part `k` is a lowrank) saved and loaded back: same everything. */
static void check_round_trip(const lp_linear *l, int k, const char *name, unsigned long long *s) {
    const int64_t R = l->rows, C = l->cols, T = 5;
    const char *p = file_path("rt.safetensors");
    lp_st_writer *wr = NULL;
    CHECK_OK(lp_st_writer_init(&wr));
    CHECK_OK(lp_linear_save(l, wr, "blk.lin"));
    CHECK_OK(lp_st_writer_save(wr, p));
    lp_st_writer_free(wr);
    lp_linear m;
    lp_weights *wts;
    lp_status st = load_file(p, R, C, &m, &wts);
    CHECKF(st == LP_OK, "%s: load: %s", name, lp_last_error());
    if (st == LP_OK && m.nparts == l->nparts && m.part[k].fmt == &lp_format_lowrank) {
        const lp_lowrank *a = l->part[k].data, *b = m.part[k].data;
        CHECKF(a->rank == b->rank && a->rows == b->rows && a->cols == b->cols, "%s: loaded shape differs", name);
        CHECKF(same_factor(&a->a, &b->a, a->rank, C) && same_factor(&a->b, &b->b, R, a->rank),
               "%s: loaded factors differ", name);
        CHECK(lp_linear_nbytes(l) == lp_linear_nbytes(&m) && lp_linear_nparams(l) == lp_linear_nparams(&m) &&
              lp_linear_paper_bits(l) == lp_linear_paper_bits(&m));
        char d0[300], d1[300];
        lp_linear_describe(l, d0, sizeof d0);
        lp_linear_describe(&m, d1, sizeof d1);
        CHECKF(!strcmp(d0, d1), "%s: described as \"%s\" then \"%s\"", name, d0, d1);
        float *D0 = lp_linear_to_f32(l), *D1 = lp_linear_to_f32(&m);
        CHECKF(D0 && D1 && !memcmp(D0, D1, (size_t)(R * C) * sizeof(float)), "%s: loaded values differ", name);
        float *X = malloc((size_t)(T * C) * sizeof(float)), *Y0 = malloc((size_t)(T * R) * sizeof(float));
        float *Y1 = malloc((size_t)(T * R) * sizeof(float));
        for (int64_t i = 0; i < T * C; i++) X[i] = test_randn(s);
        CHECK_OK(lp_linear_forward(l, X, T, Y0));
        CHECK_OK(lp_linear_forward(&m, X, T, Y1));
        CHECKF(!memcmp(Y0, Y1, (size_t)(T * R) * sizeof(float)), "%s: loaded outputs differ", name);
        free(D0), free(D1), free(X), free(Y0), free(Y1);
    } else if (st == LP_OK) {
        CHECKF(0, "%s: loaded as %d parts, part %d in %s", name, m.nparts, k,
               m.part[k].fmt ? m.part[k].fmt->name : "?");
    }
    lp_linear_free(&m);
    lp_weights_close(wts);
    unlink(p);
}

static void check_lowrank(unsigned long long *s) {
    static const struct {
        int64_t R, C, K;
    } shapes[] = {{48, 97, 8}, {40, 172, 33}, {130, 64, 64}, {7, 5, 1}, {33, 384, 17}};
    for (int kind = 0; kind < NFACT; kind++)
        for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
            const int64_t R = shapes[i].R, C = shapes[i].C, K = shapes[i].K;
            char name[128];
            snprintf(name, sizeof name, "lowrank %s %lldx%lld r%lld", FACT_NAME[kind], (long long)R, (long long)C,
                     (long long)K);
            lp_lowrank *w = make_lowrank(R, C, K, kind, s);
            if (!w) continue;
            check_lowrank_values(w, name, s);
            check_lowrank_sizes(w, kind, name);
            lp_linear l = {.rows = R, .cols = C};
            lp_linear_set(&l, &lp_format_lowrank, w);
            check_round_trip(&l, 0, name, s);
            /* low rank + a dense16 residual: a sum of two parts */
            CHECK_OK(lp_linear_add_part(&l, &lp_format_dense16, rand_dense16(R, C, LP_DT_BF16, 0.01f, s)));
            char sname[160];
            snprintf(sname, sizeof sname, "%s + dense16 residual", name);
            check_round_trip(&l, 0, sname, s);
            lp_linear_free(&l);
        }
    /* a dense factor that is a view of a stored tensor saves as a plain tensor ({"format":"dense"} here) */
    enum { R = 24, C = 40, K = 6 };
    unsigned long long s2 = 99;
    uint16_t raw[K * C];
    for (int i = 0; i < K * C; i++) raw[i] = lp_f32_to_bf16(0.2f * test_randn(&s2));
    const lp_tensor_view tv = {.name = "src.weight", .dtype = LP_DT_BF16, .ndim = 2, .shape = {K, C},
                               .numel = K * C, .data = raw, .nbytes = sizeof raw};
    lp_dense *da = NULL;
    CHECK_OK(lp_dense_view(K, C, NULL, raw, LP_DT_BF16, &tv, &da));
    void *w = NULL;
    CHECK_OK(lp_lowrank_make(R, C, K, &lp_format_dense, da, &lp_format_dense16, rand_dense16(R, K, LP_DT_F16, 0.3f, s),
                             &w));
    if (w) {
        lp_linear l = {.rows = R, .cols = C};
        lp_linear_set(&l, &lp_format_lowrank, w);
        lp_st_writer *wr = NULL;
        char meta[600];
        CHECK_OK(lp_st_writer_init(&wr));
        CHECK_OK(lp_format_lowrank.save(w, wr, "blk.lin", meta, sizeof meta));
        CHECKF(!strcmp(meta, "{\"format\":\"lowrank\",\"rank\":6,\"a\":{\"format\":\"dense\"},"
                             "\"b\":{\"format\":\"dense16\",\"dtype\":\"f16\"}}"),
               "described as %s", meta);
        lp_st_writer_free(wr);
        check_round_trip(&l, 0, "lowrank with a stored dense bf16 factor", s);
        lp_linear_free(&l);
    }
}

/* ---- lowrank: make's arguments ---- */

static void check_make_errors(unsigned long long *s) {
    enum { R = 20, C = 12 };
    const struct {
        int64_t R, C, K;
        const char *need;
    } bad[] = {{R, C, 0, "rank 0"}, {R, C, C + 1, "rank 13"}, {R, C, -3, "rank -3"}, {0, C, 1, "shape 0 x 12"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const int64_t K = bad[i].K > 0 ? bad[i].K : 1;
        void *a = rand_dense16(K, C, LP_DT_BF16, 1, s), *b = rand_dense16(R, K, LP_DT_BF16, 1, s), *w = (void *)1;
        lp_status st = lp_lowrank_make(bad[i].R, bad[i].C, bad[i].K, &lp_format_dense16, a, &lp_format_dense16, b, &w);
        CHECKF(st == LP_ERR_ARG && !w && strstr(lp_last_error(), bad[i].need), "make %zu: got %s: %s", i,
               lp_status_name(st), lp_last_error());
    }
    /* a lowrank factor (composite) is refused; every factor is freed */
    void *inner = make_lowrank(4, C, 2, F_BF16, s), *b = rand_dense16(R, 4, LP_DT_BF16, 1, s), *w = NULL;
    lp_status st = lp_lowrank_make(R, C, 4, &lp_format_lowrank, inner, &lp_format_dense16, b, &w);
    CHECKF(st == LP_ERR_ARG && !w && strstr(lp_last_error(), "\"lowrank\""), "nested lowrank: %s: %s",
           lp_status_name(st), lp_last_error());
    inner = make_lowrank(R, 4, 2, F_F16, s);
    void *a = rand_dense16(4, C, LP_DT_BF16, 1, s);
    st = lp_lowrank_make(R, C, 4, &lp_format_dense16, a, &lp_format_lowrank, inner, &w);
    CHECKF(st == LP_ERR_ARG && strstr(lp_last_error(), "factor b"), "nested lowrank b: %s", lp_last_error());
    a = rand_dense16(4, C, LP_DT_BF16, 1, s);
    st = lp_lowrank_make(R, C, 4, &lp_format_dense16, a, &lp_format_dense16, NULL, &w);
    CHECKF(st == LP_ERR_ARG && strstr(lp_last_error(), "factor b is missing"), "NULL b: %s", lp_last_error());
    /* rank == min(rows, cols) is fine */
    w = make_lowrank(R, C, C, F_BF16, s);
    CHECK(w != NULL);
    lp_lowrank_free(w);
    lp_lowrank_free(NULL);
}

/* ---- corrupt files ---- */

typedef struct {
    const char *name; /* full tensor name, or NULL: left out */
    lp_dtype dt;
    int64_t d0, d1;
    const void *data;
} tensor;

static void write_file(const char *path, const tensor *ts, int n, const char *meta) {
    lp_st_writer *w = NULL;
    CHECK_OK(lp_st_writer_init(&w));
    for (int i = 0; i < n; i++)
        if (ts[i].name)
            CHECK_OK(lp_st_writer_add(w, ts[i].name, ts[i].dt, 2, (int64_t[]){ts[i].d0, ts[i].d1}, ts[i].data));
    if (meta) CHECK_OK(lp_st_writer_meta(w, "llmpress.linear.blk.lin", meta));
    CHECK_OK(lp_st_writer_save(w, path));
    lp_st_writer_free(w);
}

/* A corrupt file must fail with LP_ERR_FORMAT, name the file and the linear, and say what (need). */
static void expect_corrupt(const char *what, const tensor *ts, int n, const char *meta, int64_t rows, int64_t cols,
                           const char *need) {
    const char *p = file_path("corrupt.safetensors");
    write_file(p, ts, n, meta);
    lp_linear l;
    lp_weights *wts;
    lp_status st = load_file(p, rows, cols, &l, &wts);
    const char *e = lp_last_error();
    CHECKF(st == LP_ERR_FORMAT && strstr(e, p) && strstr(e, "blk.lin") && (!need || strstr(e, need)),
           "%s: got %s: %s", what, lp_status_name(st), e);
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(p);
}

static void check_corrupt(unsigned long long *s) {
    enum { R = 12, C = 40, K = 5 };
    uint16_t A[K * C], B[R * K], A2[(K + 1) * C];
    for (int i = 0; i < K * C; i++) A[i] = lp_f32_to_bf16(test_randn(s));
    for (int i = 0; i < R * K; i++) B[i] = lp_f32_to_bf16(test_randn(s));
    memset(A2, 0, sizeof A2);
    enum { TA, TB, N };
    const tensor ok[N] = {{"blk.lin.a.weight", LP_DT_BF16, K, C, A}, {"blk.lin.b.weight", LP_DT_BF16, R, K, B}};
#define D16 "{\"format\":\"dense16\",\"dtype\":\"bf16\"}"
    const char *meta = "{\"format\":\"lowrank\",\"rank\":5,\"a\":" D16 ",\"b\":" D16 "}";
    lp_linear l;
    lp_weights *wts;
    write_file(file_path("ok.safetensors"), ok, N, meta);
    CHECK_OK(load_file(file_path("ok.safetensors"), R, C, &l, &wts));
    CHECK(lp_linear_is(&l, &lp_format_lowrank));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok.safetensors"));

    expect_corrupt("rank 0", ok, N, "{\"format\":\"lowrank\",\"rank\":0,\"a\":" D16 ",\"b\":" D16 "}", R, C,
                   "rank=0; expected an integer in [1, 12]");
    expect_corrupt("rank > min", ok, N, "{\"format\":\"lowrank\",\"rank\":13,\"a\":" D16 ",\"b\":" D16 "}", R, C,
                   "rank=13");
    expect_corrupt("rank missing", ok, N, "{\"format\":\"lowrank\",\"a\":" D16 ",\"b\":" D16 "}", R, C,
                   "rank=missing");
    expect_corrupt("rank 2.5", ok, N, "{\"format\":\"lowrank\",\"rank\":2.5,\"a\":" D16 ",\"b\":" D16 "}", R, C,
                   "rank=2.5");
    expect_corrupt("missing a", ok, N, "{\"format\":\"lowrank\",\"rank\":5,\"b\":" D16 "}", R, C,
                   "lowrank factor \"a\" is missing");
    expect_corrupt("missing b", ok, N, "{\"format\":\"lowrank\",\"rank\":5,\"a\":" D16 "}", R, C,
                   "lowrank factor \"b\" is missing");
    expect_corrupt("a not an object", ok, N, "{\"format\":\"lowrank\",\"rank\":5,\"a\":\"dense16\",\"b\":" D16 "}",
                   R, C, "factor \"a\" is not an object");
    expect_corrupt("nested lowrank", ok, N,
                   "{\"format\":\"lowrank\",\"rank\":5,\"a\":{\"format\":\"lowrank\",\"rank\":2,\"a\":" D16 ",\"b\":"
                   D16 "},\"b\":" D16 "}",
                   R, C, "factor \"a\" has format \"lowrank\"");
    expect_corrupt("sum factor", ok, N,
                   "{\"format\":\"lowrank\",\"rank\":5,\"a\":" D16 ",\"b\":{\"format\":\"sum\",\"parts\":[" D16 "]}}",
                   R, C, "factor \"b\" has format \"sum\"");
    expect_corrupt("unknown factor format", ok, N,
                   "{\"format\":\"lowrank\",\"rank\":5,\"a\":{\"format\":\"zz9\"},\"b\":" D16 "}", R, C,
                   "factor \"a\" has format \"zz9\"");
    expect_corrupt("factor without a format", ok, N,
                   "{\"format\":\"lowrank\",\"rank\":5,\"a\":{\"dtype\":\"bf16\"},\"b\":" D16 "}", R, C,
                   "has format (none)");
    tensor t[N];
    memcpy(t, ok, sizeof t);
    t[TA] = (tensor){"blk.lin.a.weight", LP_DT_BF16, K + 1, C, A2};
    expect_corrupt("A of the wrong shape", t, N, meta, R, C,
                   "blk.lin.a.weight\" is BF16 2D [6, 40]; expected BF16 [5, 40]");
    memcpy(t, ok, sizeof t);
    t[TB].d0 = K, t[TB].d1 = R;
    expect_corrupt("B transposed", t, N, meta, R, C, "blk.lin.b.weight");
    memcpy(t, ok, sizeof t);
    t[TB].name = NULL;
    expect_corrupt("B missing", t, N, meta, R, C, "blk.lin.b.weight\" is missing");
    memcpy(t, ok, sizeof t);
    t[TA].dt = LP_DT_F16;
    expect_corrupt("A stored as F16, described as bf16", t, N, meta, R, C, "expected BF16 [5, 40]");
    expect_corrupt("dense16 dtype f32", ok, N,
                   "{\"format\":\"lowrank\",\"rank\":5,\"a\":{\"format\":\"dense16\",\"dtype\":\"f32\"},\"b\":" D16
                   "}", R, C, "dense16 dtype is \"f32\"");
    expect_corrupt("dense16 dtype missing", ok, N,
                   "{\"format\":\"lowrank\",\"rank\":5,\"a\":" D16 ",\"b\":{\"format\":\"dense16\"}}", R, C,
                   "dense16 dtype is missing");
    uint16_t Bbad[R * K];
    memcpy(Bbad, B, sizeof Bbad);
    memcpy(t, ok, sizeof t);
    t[TB].data = Bbad;
    Bbad[3 * K + 2] = 0x7fc0; /* NaN */
    expect_corrupt("NaN in B", t, N, meta, R, C, "blk.lin.b.weight\": dense16: value [row, col] [3, 2] is NaN");
    Bbad[3 * K + 2] = 0xff80; /* -Inf */
    expect_corrupt("-Inf in B", t, N, meta, R, C, "[3, 2] is infinite");
    /* a factor in the plain dense format (f32) is checked finite too */
    float Af[K * C];
    for (int i = 0; i < K * C; i++) Af[i] = lp_bf16_to_f32(A[i]);
    Af[2 * C + 7] = NAN;
    memcpy(t, ok, sizeof t);
    t[TA] = (tensor){"blk.lin.a.weight", LP_DT_F32, K, C, Af};
    expect_corrupt("NaN in a dense f32 factor", t, N,
                   "{\"format\":\"lowrank\",\"rank\":5,\"a\":{\"format\":\"dense\"},\"b\":" D16 "}", R, C,
                   "blk.lin.a.weight\" holds a NaN or Inf at [2, 7]");
    /* a dense16 linear on its own: the same checks */
    const tensor one[1] = {{"blk.lin.weight", LP_DT_F16, R, C, NULL}};
    uint16_t *W = calloc((size_t)(R * C), 2);
    tensor t1[1] = {one[0]};
    t1[0].data = W;
    write_file(file_path("ok1.safetensors"), t1, 1, "{\"format\":\"dense16\",\"dtype\":\"f16\"}");
    CHECK_OK(load_file(file_path("ok1.safetensors"), R, C, &l, &wts));
    CHECK(lp_linear_is(&l, &lp_format_dense16));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok1.safetensors"));
    W[R * C - 1] = 0x7c00; /* +Inf, the very last value */
    expect_corrupt("Inf in a dense16 linear", t1, 1, "{\"format\":\"dense16\",\"dtype\":\"f16\"}", R, C,
                   "value [row, col] [11, 39] is infinite (f16 0x7c00)");
    W[R * C - 1] = 0;
    expect_corrupt("dense16 described bf16, stored F16", t1, 1, "{\"format\":\"dense16\",\"dtype\":\"bf16\"}", R, C,
                   "blk.lin.weight\" is F16 2D [12, 40]; expected BF16 [12, 40]");
    expect_corrupt("dense16 dtype not a string", t1, 1, "{\"format\":\"dense16\",\"dtype\":16}", R, C,
                   "dense16 dtype is not a string");
    free(W);
#undef D16
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lp_test_lowrank_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(lp_format_find("dense16") == &lp_format_dense16 && lp_format_find("lowrank") == &lp_format_lowrank);
    omp_set_num_threads(2);
    unsigned long long seed = 7;
    check_all_values(LP_DT_BF16);
    check_all_values(LP_DT_F16);
    check_from_f32(&seed);
    double worst = 0;
    static const int64_t shapes[][2] = {{7, 97}, {33, 172}, {64, 384}, {5, 32}, {19, 1}, {3, 31}, {40, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int k = 0; k < 2; k++)
            check_products(shapes[i][0], shapes[i][1], k ? LP_DT_F16 : LP_DT_BF16, &seed, &worst);
    printf("dense16 SIMD vs double product, worst |diff| / sum |w x|: %.3g (levels up to %s)\n", worst,
           lp_isa_name(lp_cpu_supports(LP_ISA_AVX512) ? LP_ISA_AVX512
                       : lp_cpu_supports(LP_ISA_AVX2) ? LP_ISA_AVX2 : LP_ISA_REF));
    check_lowrank(&seed);
    check_make_errors(&seed);
    check_corrupt(&seed);
    rmdir(g_dir);
    TEST_DONE();
}
