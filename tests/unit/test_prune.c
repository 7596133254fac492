/*
 * test_prune.c - the pruning methods (src/quant/prune.c) on single linears:
 *  - magnitude: the whole matrix's smallest |w| go (every pruned |w| <= every
 *    kept one), floor(R C s) of them when there are no ties;
 *  - wanda: per row, the floor(C s) smallest |w| sqrt(H_jj) go, kept weights
 *    unchanged;
 *  - N:M (2:4, 4:8, 1:4): exactly n kept in each group of m, the largest of
 *    the group by the method's metric; stored as the "nm" format, the
 *    unstructured results as "bitmap", with the kept count as nparams;
 *  - sparsegpt: the sparsity reached, pruned weights exactly 0, and its
 *    output error tr(D H D^T) below wanda's at the same sparsity (the
 *    update pays); joint mode (--bits 4 --group -1): every kept weight on
 *    its row's min-max grid of the original row;
 *  - refusals: a width N:M does not divide, sparsity outside (0, 1),
 *    --bits 9, --allocate with --nm, no calibration for wanda.
 */
#include "test.h"
#include "test_linear.h"

#include "format/dense.h"
#include "format/linear.h"
#include "format/sparse.h"
#include "quant/grid.h"
#include "quant/method.h"

#include <stdarg.h>

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static double urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }

/* Compress W with spec; the dequantized result (malloc'd) or NULL; *out keeps the linear when given. */
static float *run(const char *spec, const float *W, int64_t R, int64_t C, const float *H, lp_linear *out) {
    lp_settings *s = NULL;
    lp_status ps = lp_settings_parse(spec, &s);
    CHECKF(ps == LP_OK, "\"%s\": %s", spec, lp_last_error());
    lp_linear l;
    dense_linear(&l, W, R, C);
    float *Wh = NULL;
    double rel;
    if (s) {
        lp_status st = lp_method_compress_linear(s, &l, H, NULL, &rel);
        CHECKF(st == LP_OK, "%s: %s", spec, lp_last_error());
        if (st == LP_OK) Wh = lp_linear_to_f32(&l);
    }
    if (out) *out = l;
    else lp_linear_free(&l);
    lp_settings_free(s);
    return Wh;
}

static double h_err(const float *W, const float *Wh, const float *H, int64_t R, int64_t C) {
    double e = 0, *d = malloc((size_t)C * sizeof *d);
    for (int64_t i = 0; i < R; i++) {
        for (int64_t j = 0; j < C; j++) d[j] = (double)W[i * C + j] - (double)Wh[i * C + j];
        for (int64_t a = 0; a < C; a++) {
            double s = 0;
            for (int64_t b = 0; b < C; b++) s += (double)H[a * C + b] * d[b];
            e += d[a] * s;
        }
    }
    free(d);
    return e;
}

static void check_nm(const char *spec, const float *W, const float *H, int64_t R, int64_t C, int n, int m, int wanda) {
    lp_linear l;
    float *Wh = run(spec, W, R, C, H, &l);
    if (!Wh) return;
    CHECKF(lp_linear_is(&l, &lp_format_nm), "%s: not stored as nm", spec);
    CHECK(lp_linear_nparams(&l) == R * C / m * n);
    int bad = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t g = 0; g < C; g += m) {
            int kept = 0;
            double min_kept = INFINITY, max_pruned = -INFINITY;
            for (int j = 0; j < m; j++) {
                const int64_t i = r * C + g + j;
                const double met = fabs(W[i]) * (wanda ? sqrt(H[(g + j) * C + g + j]) : 1.0);
                if (Wh[i] != 0.0f) {
                    kept++;
                    bad += fabsf(Wh[i] - W[i]) > 1e-3f * fabsf(W[i]) + 1e-7f; /* 16-bit rounding only */
                    min_kept = met < min_kept ? met : min_kept;
                } else {
                    max_pruned = met > max_pruned ? met : max_pruned;
                }
            }
            bad += kept != n || max_pruned > min_kept;
        }
    CHECKF(bad == 0, "%s: %d groups or values wrong", spec, bad);
    free(Wh);
    lp_linear_free(&l);
}

int main(void) {
    const int64_t R = 24, C = 256;
    float *W = malloc(R * C * sizeof *W), *H = calloc(C * C, sizeof *H);
    for (int64_t i = 0; i < R * C; i++) W[i] = (float)(nrand() * 0.05);
    /* H = 2 X^T X / n of correlated inputs with varied scales */
    const int64_t n = 2 * C;
    double *X = malloc(n * C * sizeof *X);
    for (int64_t t = 0; t < n; t++) {
        const double common = nrand();
        for (int64_t j = 0; j < C; j++) X[t * C + j] = (0.3 + (j % 9)) * nrand() + 0.8 * common;
    }
    for (int64_t a = 0; a < C; a++)
        for (int64_t b = a; b < C; b++) {
            double s = 0;
            for (int64_t t = 0; t < n; t++) s += X[t * C + a] * X[t * C + b];
            H[a * C + b] = H[b * C + a] = (float)(2 * s / n);
        }
    free(X);

    /* magnitude, unstructured: the matrix's smallest */
    lp_linear l;
    float *Wh = run("magnitude sparsity=0.5", W, R, C, NULL, &l);
    if (Wh) {
        CHECK(lp_linear_is(&l, &lp_format_bitmap));
        int64_t pruned = 0;
        float max_p = 0, min_k = INFINITY;
        for (int64_t i = 0; i < R * C; i++) {
            if (Wh[i] == 0.0f) {
                pruned++;
                max_p = fabsf(W[i]) > max_p ? fabsf(W[i]) : max_p;
            } else {
                min_k = fabsf(W[i]) < min_k ? fabsf(W[i]) : min_k;
            }
        }
        CHECKF(pruned == R * C / 2 + 1, "magnitude: %lld pruned", (long long)pruned); /* <= the (N/2)-th value */
        CHECK(max_p <= min_k);
        CHECK(lp_linear_nparams(&l) == R * C - pruned);
        free(Wh);
    }
    lp_linear_free(&l);

    /* wanda, unstructured: per row */
    Wh = run("wanda sparsity=0.25", W, R, C, H, &l);
    if (Wh) {
        int bad = 0;
        for (int64_t r = 0; r < R; r++) {
            int64_t pruned = 0;
            double max_p = 0, min_k = INFINITY;
            for (int64_t j = 0; j < C; j++) {
                const int64_t i = r * C + j;
                const double met = fabs(W[i]) * sqrt(H[j * C + j]);
                if (Wh[i] == 0.0f) {
                    pruned++;
                    max_p = met > max_p ? met : max_p;
                } else {
                    min_k = met < min_k ? met : min_k;
                    bad += fabsf(Wh[i] - W[i]) > 1e-3f * fabsf(W[i]);
                }
            }
            bad += pruned != C / 4 || max_p > min_k;
        }
        CHECKF(bad == 0, "wanda: %d rows wrong", bad);
        free(Wh);
    }
    lp_linear_free(&l);

    /* N:M */
    check_nm("magnitude nm=2:4", W, H, R, C, 2, 4, 0);
    check_nm("magnitude nm=4:8", W, H, R, C, 4, 8, 0);
    check_nm("wanda nm=2:4", W, H, R, C, 2, 4, 1);
    check_nm("wanda nm=1:4", W, H, R, C, 1, 4, 1);

    /* sparsegpt: sparsity reached, error below wanda's */
    float *Wg = run("sparsegpt sparsity=0.5", W, R, C, H, NULL);
    float *Ww = run("wanda sparsity=0.5", W, R, C, H, NULL);
    if (Wg && Ww) {
        int64_t pruned = 0;
        for (int64_t i = 0; i < R * C; i++) pruned += Wg[i] == 0.0f;
        CHECKF(pruned >= R * C / 2 && pruned <= R * C / 2 + 2 * (C / 128), "sparsegpt: %lld pruned", (long long)pruned);
        const double eg = h_err(W, Wg, H, R, C), ew = h_err(W, Ww, H, R, C);
        CHECKF(eg < 0.8 * ew, "sparsegpt %g vs wanda %g", eg, ew);
    }
    free(Wg);
    free(Ww);
    Wg = run("sparsegpt nm=2:4", W, R, C, H, &l);
    Ww = run("wanda nm=2:4", W, R, C, H, NULL);
    if (Wg && Ww) {
        CHECK(lp_linear_is(&l, &lp_format_nm));
        int bad = 0;
        for (int64_t i = 0; i < R * C; i += 4) {
            int k = 0;
            for (int j = 0; j < 4; j++) k += Wg[i + j] != 0.0f;
            bad += k != 2;
        }
        CHECK(bad == 0);
        CHECK(h_err(W, Wg, H, R, C) < h_err(W, Ww, H, R, C));
    }
    free(Wg);
    free(Ww);
    lp_linear_free(&l);

    /* joint mode: kept weights on the row's grid of the original row */
    Wg = run("sparsegpt nm=2:4 bits=4 group=-1", W, R, C, H, &l);
    if (Wg) {
        int bad = 0;
        for (int64_t r = 0; r < R; r++) {
            float s;
            int z;
            CHECK_OK(lp_qparams_minmax(W + r * C, C, 4, 0, &s, &z));
            for (int64_t j = 0; j < C; j++) {
                const float q = Wg[r * C + j] / s + (float)z;
                bad += fabsf(q - rintf(q)) > 1e-3f || q < -1e-3f || q > 15.001f;
            }
        }
        CHECKF(bad == 0, "joint: %d weights off the grid", bad);
        CHECK(lp_linear_nbytes(&l) < (size_t)(R * C / 2 * 2)); /* smaller than 16-bit kept values */
        free(Wg);
    }
    lp_linear_free(&l);

    /* refusals */
    lp_settings *s = NULL;
    CHECK(lp_settings_parse("wanda sparsity=0", &s) == LP_ERR_ARG);
    CHECK(lp_settings_parse("wanda sparsity=1", &s) == LP_ERR_ARG);
    CHECK(lp_settings_parse("sparsegpt bits=9", &s) == LP_ERR_ARG);
    CHECK(lp_settings_parse("wanda nm=2:4 allocate", &s) == LP_ERR_ARG);
    CHECK(lp_settings_parse("wanda nm=3:5", &s) == LP_ERR_ARG);
    const lp_method *mag = lp_method_find("magnitude");
    CHECK(mag && mag->check_shape);
    if (lp_settings_parse("magnitude nm=2:4", &s) == LP_OK && mag) {
        CHECK(mag->check_shape(lp_settings_data(s), 8, 1030) == LP_ERR_ARG);
        CHECK(strstr(lp_last_error(), "does not divide the width 1030") != NULL);
        CHECK(mag->check_shape(lp_settings_data(s), 8, 1032) == LP_OK);
    }
    lp_settings_free(s);
    s = NULL;
    if (lp_settings_parse("wanda", &s) == LP_OK) {
        lp_linear lb;
        dense_linear(&lb, W, R, C);
        double rel;
        CHECK(lp_method_compress_linear(s, &lb, NULL, NULL, &rel) == LP_ERR_ARG);
        CHECK(lp_linear_is(&lb, &lp_format_dense));
        lp_linear_free(&lb);
    }
    lp_settings_free(s);
    free(W);
    free(H);
    TEST_DONE();
}
