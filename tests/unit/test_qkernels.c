/*
 * test_qkernels.c - every qgroup kernel this CPU has against the scalar
 * reference, and the OpenMP entry points against themselves.
 *
 * Checks, on random packed weights (random q, zeros and f16 scales, so every
 * bit pattern occurs) for b = 1..8, sym and asym, groups 32/64/128 and
 * per-channel, ragged widths (1, 7, 33, 100, 172, 4097) and row counts that
 * are not multiples of the kernels' row tiles:
 *   - ref against an exact double-precision sum of dequantized weights;
 *   - each fast kernel's gemv against ref, |y - y_ref| <= 1e-5 * M with
 *     M = sum_c |s| (q + z) |x_c|, the size of the terms the kernels' formula
 *     sum_g s_g (sum q x - z xsum_g) adds up (they only reorder f32 sums;
 *     M rather than sum |w x| because a row with q == z everywhere is exactly
 *     0 but reached by cancellation);
 *   - dequant of every kernel bit-identical to ref;
 *   - garbage in the padding bits of the last block changes nothing;
 *   - lp_qgroup_gemm: on the packed path every token bit-identical to the
 *     same kernel's gemv (lp_qgroup_gemm_ex with T = 1) for any T; on the
 *     sgemm path within tolerance of exact;
 *   - gemv and gemm bit-identical with 1 and 2 OpenMP threads.
 * A kernel the CPU lacks is skipped with a SKIP line.
 */
#include "core/half.h"
#include "format/qgroup_kernels.h"
#include "format/qgroup.h"
#include "test.h"
#include "test_qgroup_pad.h"

#include <omp.h>
#include <stdint.h>

static unsigned long long g_rng = 2024;

/* Random packed weight: every q, zero and scale random (scales f16 in ~[1e-3, 0.1], both signs). */
static void random_weight(lp_qgroup *w, int64_t rows, int64_t cols, int bits, int group, int sym) {
    CHECK_OK(lp_qgroup_init(w, rows, cols, bits, group, sym));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            lp_qgroup_set(w, r, c, (unsigned)(test_rand_u64(&g_rng) & ((1u << bits) - 1)));
    for (int64_t i = 0; i < rows * w->ngroups; i++) {
        float s = 0.001f + 0.1f * (float)(test_rand_u64(&g_rng) % 1000) / 1000.0f;
        if (test_rand_u64(&g_rng) % 8 == 0) s = -s;
        w->scales[i] = lp_f32_to_f16(s);
        if (!sym) w->zeros[i] = (uint8_t)(test_rand_u64(&g_rng) % (1u << bits));
    }
}

static void random_x(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = test_randn(&g_rng);
}

/* Exact (double) y and the magnitude M = sum_c |s| (q + z) |x_c| of each row. */
static void exact_gemv(const lp_qgroup *w, const float *x, double *y, double *mag) {
    for (int64_t r = 0; r < w->rows; r++) {
        double acc = 0, m = 0;
        for (int64_t c = 0; c < w->cols; c++) {
            int64_t g = c / w->group;
            double wv = (double)lp_f16_to_f32(w->scales[r * w->ngroups + g]) *
                        ((int)lp_qgroup_get(w, r, c) - lp_qgroup_zero(w, r, g));
            acc += wv * x[c];
            m += fabs(lp_f16_to_f32(w->scales[r * w->ngroups + g]) * x[c]) *
                 ((int)lp_qgroup_get(w, r, c) + lp_qgroup_zero(w, r, g));
        }
        y[r] = acc;
        mag[r] = m;
    }
}

/* lp_qgroup_gemm with kernel k; sgemm path from T >= blas_min. */
static lp_status gemm_k(const lp_qkernels *k, const lp_qgroup *w, const float *X, int64_t T, float *Y,
                        int64_t blas_min) {
    lp_qgemm_params p = lp_qgemm_default_params();
    p.kernels = k;
    p.blas_min_tokens = blas_min;
    return lp_qgroup_gemm_ex(w, X, T, Y, &p);
}

static lp_status gemv_k(const lp_qkernels *k, const lp_qgroup *w, const float *x, float *y) {
    return gemm_k(k, w, x, 1, y, INT64_MAX);
}

static const lp_qkernels *g_kernels[3];
static int g_nkernels;

static void pick_kernels(void) {
    const char *names[] = {"ref", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        const lp_qkernels *k;
        lp_status st = lp_qkernels_select(names[i], &k);
        if (st == LP_OK) g_kernels[g_nkernels++] = k;
        else printf("SKIP: kernel %s: %s\n", names[i], lp_last_error());
    }
    CHECK(g_nkernels >= 1 && !strcmp(g_kernels[0]->name, "ref"));
    CHECK(lp_qkernels_default() != NULL);
    printf("default kernel: %s\n", lp_qkernels_default()->name);
    const lp_qkernels *k;
    CHECK(lp_qkernels_select("sse9", &k) == LP_ERR_ARG && k == NULL);
}

static void test_gemv_vs_ref(void) {
    const int64_t cols_list[] = {1, 7, 33, 100, 172, 256, 4097};
    const int64_t rows_list[] = {1, 3, 6, 17};
    const int groups[] = {32, 64, 128, -1};
    int configs = 0;
    double worst[3] = {0};
    for (int bits = 1; bits <= 8; bits++)
        for (int sym = 0; sym <= 1; sym++)
            for (size_t ci = 0; ci < sizeof cols_list / sizeof *cols_list; ci++)
                for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++) {
                    int64_t cols = cols_list[ci], rows = rows_list[(ci + gi + bits) % 4];
                    int group = groups[gi];
                    if (group > cols) continue;
                    if (cols == 4097 && bits != 2 && bits != 3 && bits != 4 && bits != 8) continue;
                    lp_qgroup w;
                    random_weight(&w, rows, cols, bits, group, sym);
                    float *x = malloc((size_t)cols * sizeof(float));
                    float *y = malloc((size_t)rows * sizeof(float)), *yref = malloc((size_t)rows * sizeof(float));
                    double *ye = malloc((size_t)rows * sizeof(double)), *mag = malloc((size_t)rows * sizeof(double));
                    float *dref = malloc((size_t)(rows * cols) * sizeof(float)), *d = malloc((size_t)(rows * cols) * sizeof(float));
                    random_x(x, cols);
                    exact_gemv(&w, x, ye, mag);
                    for (int ki = 0; ki < g_nkernels; ki++) {
                        const lp_qkernels *k = g_kernels[ki];
                        CHECK_OK(gemv_k(k, &w, x, ki == 0 ? yref : y));
                        const float *yk = ki == 0 ? yref : y;
                        const float *cmp = yref;
                        for (int64_t r = 0; r < rows; r++) {
                            double err = fabs((double)yk[r] - (ki == 0 ? ye[r] : (double)cmp[r]));
                            double rel = err / (mag[r] + 1e-30);
                            if (rel > worst[ki]) worst[ki] = rel;
                            CHECKF(rel < 1e-5, "%s b=%d sym=%d %lldx%lld g%d row %lld: %g vs %g (exact %g)",
                                   k->name, bits, sym, (long long)rows, (long long)cols, group,
                                   (long long)r, yk[r], cmp[r], ye[r]);
                        }
                        k->dequant(&w, 0, rows, ki == 0 ? dref : d);
                        if (ki > 0)
                            CHECKF(!memcmp(d, dref, (size_t)(rows * cols) * sizeof(float)),
                                   "%s dequant b=%d sym=%d %lldx%lld g%d differs from ref", k->name,
                                   bits, sym, (long long)rows, (long long)cols, group);
                    }
                    /* ref dequant is s * (q - z), value by value */
                    int bad = 0;
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t c = 0; c < cols; c++) {
                            int64_t g = c / w.group;
                            float s = lp_f16_to_f32(w.scales[r * w.ngroups + g]);
                            bad += dref[r * cols + c] != s * (float)((int)lp_qgroup_get(&w, r, c) - lp_qgroup_zero(&w, r, g));
                        }
                    CHECK(bad == 0);
                    /* garbage in the padding bits must not change anything */
                    if (cols % 32) {
                        garble_qgroup_padding(&w, &g_rng);
                        for (int ki = 0; ki < g_nkernels; ki++) {
                            CHECK_OK(gemv_k(g_kernels[ki], &w, x, y));
                            if (ki == 0) CHECK(!memcmp(y, yref, (size_t)rows * sizeof(float)));
                            g_kernels[ki]->dequant(&w, 0, rows, d);
                            CHECK(!memcmp(d, dref, (size_t)(rows * cols) * sizeof(float)));
                        }
                    }
                    free(x); free(y); free(yref); free(ye); free(mag); free(dref); free(d);
                    lp_qgroup_free(&w);
                    configs++;
                }
    printf("gemv vs ref: %d configurations; worst relative error:", configs);
    for (int ki = 0; ki < g_nkernels; ki++) printf(" %s %.2g%s", g_kernels[ki]->name, worst[ki], ki == 0 ? " (vs exact)" : "");
    printf("\n");
}

/* gemm: packed path bit-identical to gemv per token; sgemm path close to exact. */
static void test_gemm(void) {
    const int64_t Ts[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 40};
    const int bits_list[] = {2, 3, 4, 8};
    for (int ki = 0; ki < g_nkernels; ki++)
        for (int bi = 0; bi < 4; bi++) {
            int64_t rows = 37, cols = 300;
            int bits = bits_list[bi];
            lp_qgroup w;
            random_weight(&w, rows, cols, bits, bi % 2 ? 64 : -1, bi == 2);
            for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++) {
                int64_t T = Ts[ti];
                float *X = malloc((size_t)(T * cols) * sizeof(float));
                float *Y = malloc((size_t)(T * rows) * sizeof(float)), *Yb = malloc((size_t)(T * rows) * sizeof(float));
                float *y = malloc((size_t)rows * sizeof(float));
                double *ye = malloc((size_t)rows * sizeof(double)), *mag = malloc((size_t)rows * sizeof(double));
                random_x(X, T * cols);
                CHECK_OK(gemm_k(g_kernels[ki], &w, X, T, Y, INT64_MAX));
                CHECK_OK(gemm_k(g_kernels[ki], &w, X, T, Yb, 1));
                for (int64_t t = 0; t < T; t++) {
                    CHECK_OK(gemv_k(g_kernels[ki], &w, X + t * cols, y));
                    CHECKF(!memcmp(Y + t * rows, y, (size_t)rows * sizeof(float)),
                           "%s gemm T=%lld token %lld differs from gemv", g_kernels[ki]->name,
                           (long long)T, (long long)t);
                    exact_gemv(&w, X + t * cols, ye, mag);
                    for (int64_t r = 0; r < rows; r++)
                        CHECKF(fabs(Yb[t * rows + r] - ye[r]) < 1e-5 * mag[r] + 1e-30,
                               "%s sgemm path T=%lld: %g vs exact %g", g_kernels[ki]->name, (long long)T,
                               Yb[t * rows + r], ye[r]);
                }
                free(X); free(Y); free(Yb); free(y); free(ye); free(mag);
            }
            lp_qgroup_free(&w);
        }
    float x = 1, y = 0;
    lp_qgroup w;
    CHECK_OK(lp_qgroup_init(&w, 1, 1, 4, -1, 1));
    CHECK(lp_qgroup_gemm(&w, &x, 0, &y) == LP_OK);
    CHECK(lp_qgroup_gemm(&w, &x, -1, &y) == LP_ERR_ARG);
    lp_qgroup_free(&w);
}

/* Bit-identical results for 1 and 2 threads: gemv, packed gemm (T = 2 and
 * T = 20), the sgemm path and dequant. */
static void test_threads(void) {
    int64_t rows = 1000, cols = 1100, T = 20;
    size_t ny = (size_t)((3 + 2 * T) * rows);
    for (int ki = 0; ki < g_nkernels; ki++) {
        lp_qgroup w;
        random_weight(&w, rows, cols, 4, 128, 0);
        float *X = malloc((size_t)(T * cols) * sizeof(float));
        random_x(X, T * cols);
        float *Y[2], *D[2];
        for (int nt = 1; nt <= 2; nt++) {
            omp_set_num_threads(nt);
            float *o = Y[nt - 1] = malloc(ny * sizeof(float));
            D[nt - 1] = malloc((size_t)(rows * cols) * sizeof(float));
            CHECK_OK(gemv_k(g_kernels[ki], &w, X, o));
            CHECK_OK(gemm_k(g_kernels[ki], &w, X, 2, o + rows, INT64_MAX));
            CHECK_OK(gemm_k(g_kernels[ki], &w, X, T, o + 3 * rows, INT64_MAX));
            CHECK_OK(gemm_k(g_kernels[ki], &w, X, T, o + (3 + T) * rows, 1));
            if (ki == g_nkernels - 1) lp_qgroup_dequant(&w, 0, rows, D[nt - 1]);
        }
        CHECKF(!memcmp(Y[0], Y[1], ny * sizeof(float)), "%s: results differ for 1 vs 2 threads", g_kernels[ki]->name);
        if (ki == g_nkernels - 1) CHECK(!memcmp(D[0], D[1], (size_t)(rows * cols) * sizeof(float)));
        for (int i = 0; i < 2; i++) {
            free(Y[i]);
            free(D[i]);
        }
        free(X);
        lp_qgroup_free(&w);
    }
    omp_set_num_threads(2);
}

int main(void) {
    pick_kernels();
    test_gemv_vs_ref();
    test_gemm();
    test_threads();
    TEST_DONE();
}
