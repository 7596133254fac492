/*
 * test_svd.c - the low-rank methods (src/quant/svd.c) on single linears:
 *  - the factors are optimal in the norm each method promises (Eckart-Young):
 *      svd     ||W - B A||_F^2 = the sum of the dropped sigma_i^2 of W,
 *      asvd    ||(W - B A) diag(s)||_F^2 = that of W diag(s), s = absmean^alpha,
 *      svdllm  tr((W - B A) H0 (W - B A)^T) = that of W L, H0 = L L^T,
 *    each against singular values computed here independently (Jacobi);
 *  - --svdllm-update: B is the least-squares fit on H (the gradient
 *    (W - B A) H A^T vanishes) and beats the plain whitened factors on H;
 *  - the rank rule, the stored parameters and bytes of the lowrank part,
 *    --factor-bits (qgroup factors, fewer bytes, error close to the 16-bit
 *    one), a kept fraction of 1 (asvd's plan) leaving the weight as stored;
 *  - bad settings refused.
 */
#include "test.h"
#include "test_linear.h"

#include "format/dense.h"
#include "format/dense16.h"
#include "format/linear.h"
#include "format/lowrank.h"
#include "format/qgroup.h"
#include "quant/method.h"
#include "quant/svd.h"

#include <stdarg.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }

static lp_settings *settings(const char *fmt, ...) {
    char spec[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(spec, sizeof spec, fmt, ap);
    va_end(ap);
    lp_settings *s = NULL;
    CHECKF(lp_settings_parse(spec, &s) == LP_OK, "settings \"%s\": %s", spec, lp_last_error());
    return s;
}

/* Singular values of M (R x C, R >= C) by one-sided Jacobi in double, descending. */
static void jacobi_sv(const double *M, int64_t R, int64_t C, double *sv) {
    double *A = malloc((size_t)(R * C) * sizeof *A);
    memcpy(A, M, (size_t)(R * C) * sizeof *A);
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0.0;
        for (int64_t p = 0; p < C; p++)
            for (int64_t q = p + 1; q < C; q++) {
                double a = 0, b = 0, g = 0;
                for (int64_t i = 0; i < R; i++) {
                    a += A[i * C + p] * A[i * C + p];
                    b += A[i * C + q] * A[i * C + q];
                    g += A[i * C + p] * A[i * C + q];
                }
                if (fabs(g) <= 1e-15 * sqrt(a * b)) continue;
                off += g * g / (a * b);
                const double z = (b - a) / (2 * g), t = (z >= 0 ? 1 : -1) / (fabs(z) + sqrt(1 + z * z));
                const double cs = 1 / sqrt(1 + t * t), sn = cs * t;
                for (int64_t i = 0; i < R; i++) {
                    const double x = A[i * C + p], y = A[i * C + q];
                    A[i * C + p] = cs * x - sn * y;
                    A[i * C + q] = sn * x + cs * y;
                }
            }
        if (off < 1e-28) break;
    }
    for (int64_t j = 0; j < C; j++) {
        double s = 0;
        for (int64_t i = 0; i < R; i++) s += A[i * C + j] * A[i * C + j];
        sv[j] = sqrt(s);
    }
    for (int64_t i = 0; i < C; i++) /* descending */
        for (int64_t j = i + 1; j < C; j++)
            if (sv[j] > sv[i]) {
                const double t = sv[i];
                sv[i] = sv[j];
                sv[j] = t;
            }
    free(A);
}

/* sum over i >= r of sv[i]^2 */
static double tail(const double *sv, int64_t n, int64_t r) {
    double t = 0;
    for (int64_t i = r; i < n; i++) t += sv[i] * sv[i];
    return t;
}

/* W (R x C) with decaying spectrum plus noise; H = X^T X / n of correlated inputs. */
static void make_problem(int64_t R, int64_t C, float *W, float *H, float *absmean) {
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++) W[i * C + j] = (float)(nrand() * (1.0 + 3.0 * (j % 7 == 0)) / sqrt((double)C));
    const int64_t n = 4 * C;
    double *X = malloc((size_t)(n * C) * sizeof *X);
    for (int64_t t = 0; t < n; t++) {
        double common = nrand();
        for (int64_t j = 0; j < C; j++) X[t * C + j] = (0.5 + (j % 5)) * nrand() + 0.7 * common;
    }
    for (int64_t a = 0; a < C; a++) {
        double am = 0;
        for (int64_t t = 0; t < n; t++) am += fabs(X[t * C + a]);
        if (absmean) absmean[a] = (float)(am / (double)n);
        for (int64_t b = 0; b < C; b++) {
            double s = 0;
            for (int64_t t = 0; t < n; t++) s += X[t * C + a] * X[t * C + b];
            H[a * C + b] = (float)(2.0 * s / (double)n);
        }
    }
    free(X);
}

/* tr(D H D^T), D = W - Wh, in double */
static double h_err(const float *W, const float *Wh, const float *H, int64_t R, int64_t C) {
    double e = 0;
    double *d = malloc((size_t)C * sizeof *d);
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

/* Lower Cholesky factor of H (double), for the expected whitened spectrum. */
static void chol(const float *H, int64_t C, double *L) {
    memset(L, 0, (size_t)(C * C) * sizeof *L);
    for (int64_t j = 0; j < C; j++) {
        double s = H[j * C + j];
        for (int64_t k = 0; k < j; k++) s -= L[j * C + k] * L[j * C + k];
        L[j * C + j] = sqrt(s);
        for (int64_t i = j + 1; i < C; i++) {
            double t = H[i * C + j];
            for (int64_t k = 0; k < j; k++) t -= L[i * C + k] * L[j * C + k];
            L[i * C + j] = t / L[j * C + j];
        }
    }
}

/* Compress W with spec (H, H0 / absmean through the extra inputs); Wh its
 * dequantized weight (malloc'd) or NULL on failure. */
static float *run(const char *spec, const float *W, int64_t R, int64_t C, const float *H, const float *H0,
                  const float *absmean, double plan, lp_linear *keep_l) {
    lp_settings *s = settings("%s", spec);
    lp_linear l;
    dense_linear(&l, W, R, C);
    double rel;
    const lp_linear_extra x = {.H0 = H0, .absmean = absmean, .plan = plan};
    float *Wh = NULL;
    if (s) {
        lp_status st = lp_method_compress_linear_ex(s, &l, H, &x, NULL, &rel);
        CHECKF(st == LP_OK, "%s: %s", spec, lp_last_error());
        if (st == LP_OK) Wh = lp_linear_to_f32(&l);
    }
    if (keep_l) *keep_l = l;
    else lp_linear_free(&l);
    lp_settings_free(s);
    return Wh;
}

int main(void) {
    const int64_t R = 48, C = 40;
    float *W = malloc(R * C * sizeof *W), *H = malloc(C * C * sizeof *H), *H0 = malloc(C * C * sizeof *H0);
    float *am = malloc(C * sizeof *am), *amb = malloc(R * C * sizeof *amb);
    make_problem(R, C, W, H0, am);
    make_problem(R, C, amb, H, NULL); /* a second, different input distribution for the update (amb: scratch W) */
    make_problem(R, C, W, H0, am);    /* W, H0 and am of a third draw are what is tested */
    double *M = malloc(R * C * sizeof *M), sv[64];
    const double keep = 0.5;
    const int64_t r = lp_svd_rank(R, C, keep);
    CHECK(r == (int64_t)(0.5 * 48 * 40 / 88.0));

    /* 1. svd: the Frobenius error is the dropped spectrum (factors rounded to f16: 1e-3 relative) */
    for (int64_t i = 0; i < R * C; i++) M[i] = W[i];
    jacobi_sv(M, R, C, sv);
    lp_linear l;
    float *Wh = run("svd keep=0.5", W, R, C, NULL, NULL, NULL, NAN, &l);
    if (Wh) {
        double e = 0;
        for (int64_t i = 0; i < R * C; i++) e += ((double)W[i] - Wh[i]) * ((double)W[i] - Wh[i]);
        const double t = tail(sv, C, r);
        CHECKF(fabs(e - t) <= 2e-3 * t, "svd: ||W - BA||^2 = %g, dropped spectrum %g", e, t);
        const lp_lowrank *lr = lp_linear_data(&l, &lp_format_lowrank);
        CHECK(lr && lr->rank == r);
        CHECK(lp_linear_nparams(&l) == r * (R + C));
        CHECK(lp_linear_nbytes(&l) == (size_t)(r * (R + C) * 2)); /* two dense16 factors */
        free(Wh);
    }
    lp_linear_free(&l);

    /* 2. asvd: error weighted by s = absmean^alpha is the dropped spectrum of W diag(s) */
    for (double alpha = 0.5; alpha <= 1.0; alpha += 0.5) {
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) M[i * C + j] = W[i * C + j] * pow(am[j], alpha);
        jacobi_sv(M, R, C, sv);
        char spec[64];
        snprintf(spec, sizeof spec, "asvd keep=0.5 alpha=%g", alpha);
        Wh = run(spec, W, R, C, H, NULL, am, NAN, NULL);
        if (Wh) {
            double e = 0;
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < C; j++) {
                    const double d = ((double)W[i * C + j] - Wh[i * C + j]) * pow(am[j], alpha);
                    e += d * d;
                }
            const double t = tail(sv, C, r);
            CHECKF(fabs(e - t) <= 2e-3 * t, "asvd alpha %g: weighted error %g, dropped spectrum %g", alpha, e, t);
            free(Wh);
        }
    }

    /* 3. svdllm: the H0-weighted error is the dropped spectrum of W L */
    double *L = malloc(C * C * sizeof *L);
    chol(H0, C, L);
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++) {
            double s = 0;
            for (int64_t k = j; k < C; k++) s += (double)W[i * C + k] * L[k * C + j];
            M[i * C + j] = s;
        }
    jacobi_sv(M, R, C, sv);
    float *Wp = run("svdllm keep=0.5", W, R, C, H, H0, NULL, NAN, NULL);
    if (Wp) {
        const double e = h_err(W, Wp, H0, R, C), t = tail(sv, C, r);
        CHECKF(fabs(e - t) <= 2e-3 * t, "svdllm: tr(D H0 D^T) = %g, dropped spectrum of W L %g", e, t);
        /* whitening beats plain svd and asvd on H0, the loss it targets */
        float *Ws = run("svd keep=0.5", W, R, C, NULL, NULL, NULL, NAN, NULL);
        if (Ws) CHECK(e < h_err(W, Ws, H0, R, C));
        free(Ws);
    }

    /* 4. --svdllm-update: least squares on H (gradient zero), better than no update there */
    lp_linear lu;
    float *Wu = run("svdllm keep=0.5 svdllm-update", W, R, C, H, H0, NULL, NAN, &lu);
    if (Wu && Wp) {
        CHECK(h_err(W, Wu, H, R, C) < h_err(W, Wp, H, R, C));
        const lp_lowrank *lr = lp_linear_data(&lu, &lp_format_lowrank);
        float *A = malloc(r * C * sizeof *A);
        if (lr) CHECK_OK(lr->a.fmt->dequant(lr->a.data, 0, r, A));
        /* G = (W - Wu) H A^T (R x r) relative to W H A^T: zero up to the factors' f16 rounding */
        double g2 = 0, n2 = 0;
        for (int64_t i = 0; lr && i < R; i++)
            for (int64_t k = 0; k < r; k++) {
                double g = 0, n = 0;
                for (int64_t a = 0; a < C; a++) {
                    double ha = 0;
                    for (int64_t b = 0; b < C; b++) ha += (double)H[a * C + b] * A[k * C + b];
                    g += ((double)W[i * C + a] - Wu[i * C + a]) * ha;
                    n += (double)W[i * C + a] * ha;
                }
                g2 += g * g;
                n2 += n * n;
            }
        CHECKF(g2 <= 1e-5 * n2, "svdllm-update: |grad|^2 = %g vs %g", g2, n2);
        free(A);
    }
    free(Wu);
    free(Wp);
    lp_linear_free(&lu);

    /* 5. --factor-bits 4: qgroup factors, fewer bytes, error near the 16-bit one */
    lp_linear lq;
    float *Wq = run("svdllm keep=0.5 factor-bits=4 factor-group=-1", W, R, C, H, H0, NULL, NAN, &lq);
    float *W16 = run("svdllm keep=0.5", W, R, C, H, H0, NULL, NAN, NULL);
    if (Wq && W16) {
        const lp_lowrank *lr = lp_linear_data(&lq, &lp_format_lowrank);
        CHECK(lr && lr->a.fmt == &lp_format_qgroup && lr->b.fmt == &lp_format_qgroup);
        CHECK(lp_linear_nbytes(&lq) < (size_t)(r * (R + C) * 2));
        const double e4 = h_err(W, Wq, H, R, C), e16 = h_err(W, W16, H, R, C);
        CHECKF(e4 < 1.5 * e16, "factor-bits 4: %g vs 16-bit %g", e4, e16);
    }
    free(Wq);
    free(W16);
    lp_linear_free(&lq);

    /* 6. a plan of 1 keeps the weight (f32 source: exactly) */
    Wh = run("asvd keep=0.5", W, R, C, H, H0, am, 1.0, NULL);
    if (Wh) {
        int same = 1;
        for (int64_t i = 0; i < R * C; i++) same &= Wh[i] == W[i];
        CHECK(same);
        free(Wh);
    }

    /* 7. refusals */
    lp_settings *s = NULL;
    CHECK(lp_settings_parse("svd keep=1", &s) == LP_ERR_ARG);
    CHECK(lp_settings_parse("svd keep=0", &s) == LP_ERR_ARG);
    CHECK(lp_settings_parse("svd factor-bits=9", &s) == LP_ERR_ARG);
    CHECK(lp_settings_parse("svd factor-group=48", &s) == LP_ERR_ARG);
    s = settings("svdllm keep=0.5");
    lp_linear lb;
    dense_linear(&lb, W, R, C);
    double rel;
    if (s) {
        CHECK(lp_method_compress_linear(s, &lb, NULL, NULL, &rel) == LP_ERR_ARG);
        CHECK(strstr(lp_last_error(), "calibration") != NULL);
        CHECK(lp_linear_is(&lb, &lp_format_dense));
    }
    lp_settings_free(s);
    lp_linear_free(&lb);

    free(W);
    free(H);
    free(H0);
    free(am);
    free(amb);
    free(M);
    free(L);
    TEST_DONE();
}
