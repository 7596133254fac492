/*
 * braq.c - binarizers and group searches over one column block (braq.h).
 *
 * Row-wise binarizers (braq, arb, arbx) work on one row's masked weights;
 * the RC binarizer couples rows through its column scales and works on the
 * whole block. Means over a group are over its weights in the row (0 for an
 * empty group), sums in double, values in f32, in the authors' order of
 * operations.
 */
#include "quant/braq.h"

#include "core/status_impl.h"

#include <math.h>
#include <omp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define UP_LIM 50       /* salient-column candidates (BiLLM's up_lim) */
#define N_QUANTILES 81  /* break points at quantiles 0.10, 0.11, ..., 0.90 */

static inline float sgnf(float d) { return d >= 0.0f ? 1.0f : -1.0f; }
static inline int in_set(const uint8_t *G, int64_t i, unsigned set) { return (set >> G[i]) & 1u; }

/* ---- row-wise: BRAQ, ARB, ARB-X ---- */

typedef struct {
    float mu, a0, a1;
} row_fit;

/* BRAQ on row x (n) over m: order passes; q (n) gets the fit at m, s0/s1 the signs. */
static row_fit braq_row(const float *x, const uint8_t *m, int64_t n, int order, float *q, int8_t *s0, int8_t *s1) {
    row_fit f = {0};
    int64_t cnt = 0;
    for (int64_t j = 0; j < n; j++)
        if (m[j]) {
            q[j] = 0.0f;
            cnt++;
        }
    for (int o = 0; o < order; o++) {
        double s = 0.0;
        for (int64_t j = 0; j < n; j++)
            if (m[j]) s += (double)(x[j] - q[j]);
        const float mu = cnt ? (float)(s / (double)cnt) : 0.0f;
        double sa = 0.0;
        for (int64_t j = 0; j < n; j++)
            if (m[j]) sa += fabs((double)(x[j] - q[j] - mu));
        const float a = cnt ? (float)(sa / (double)cnt) : 0.0f;
        int8_t *sg = o == 0 ? s0 : s1;
        for (int64_t j = 0; j < n; j++)
            if (m[j]) {
                const float d = x[j] - q[j] - mu, sj = sgnf(d);
                if (sg) sg[j] = (int8_t)sj;
                q[j] += sj * a + mu;
            }
        f.mu += mu;
        if (o == 0) f.a0 = a;
        else f.a1 = a;
    }
    return f;
}

static int64_t count(const uint8_t *m, int64_t n) {
    int64_t k = 0;
    for (int64_t j = 0; j < n; j++) k += m[j];
    return k;
}

/* The mean of x - q over the cnt weights of m: ARB's mean correction. */
static float resid_mean(const float *x, const float *q, const uint8_t *m, int64_t n, int64_t cnt) {
    double d = 0.0;
    for (int64_t j = 0; j < n; j++)
        if (m[j]) d += (double)(x[j] - q[j]);
    return (float)(d / (double)cnt);
}

/* ARB (order 1): BRAQ's fit, then iters rounds of mean, scale, signs. */
static row_fit arb1_row(const float *x, const uint8_t *m, int64_t n, int iters, float *q, int8_t *s0) {
    row_fit f = braq_row(x, m, n, 1, q, s0, NULL);
    const int64_t cnt = count(m, n);
    if (!cnt) return f;
    for (int it = 0; it < iters; it++) {
        f.mu += resid_mean(x, q, m, n, cnt);
        double num = 0.0;
        for (int64_t j = 0; j < n; j++)
            if (m[j]) num += (double)s0[j] * (double)(x[j] - f.mu);
        f.a0 = (float)(num / ((double)cnt + 1e-8));
        for (int64_t j = 0; j < n; j++)
            if (m[j]) {
                s0[j] = (int8_t)sgnf(x[j] - f.mu);
                q[j] = (float)s0[j] * f.a0 + f.mu;
            }
    }
    return f;
}

/* The closest of (mu + {-a0-a1, -a0+a1, a0-a1, a0+a1}) to x (the first on ties). */
static inline void nearest2(float t, float a0, float a1, int8_t *b0, int8_t *b1) {
    const float v[4] = {-a0 - a1, -a0 + a1, a0 - a1, a0 + a1};
    int k = 0;
    float best = fabsf(t - v[0]);
    for (int i = 1; i < 4; i++) {
        const float e = fabsf(t - v[i]);
        if (e < best) {
            best = e;
            k = i;
        }
    }
    *b0 = k >= 2 ? 1 : -1;
    *b1 = (k & 1) ? 1 : -1;
}

/* ARB (order 2): BRAQ order 2 (one mean), then iters rounds. */
static row_fit arb2_row(const float *x, const uint8_t *m, int64_t n, int iters, float *q, int8_t *s0, int8_t *s1) {
    row_fit f = braq_row(x, m, n, 2, q, s0, s1);
    const int64_t cnt = count(m, n);
    if (!cnt) return f;
    for (int it = 0; it < iters; it++) {
        f.mu += resid_mean(x, q, m, n, cnt);
        double num = 0.0;
        for (int64_t j = 0; j < n; j++)
            if (m[j]) num += (double)s0[j] * (double)((x[j] - f.mu) - f.a1 * (float)s1[j]);
        f.a0 = (float)(num / ((double)cnt + 1e-8));
        num = 0.0;
        for (int64_t j = 0; j < n; j++)
            if (m[j]) num += (double)s1[j] * (double)((x[j] - f.mu) - f.a0 * (float)s0[j]);
        f.a1 = (float)(num / ((double)cnt + 1e-8));
        for (int64_t j = 0; j < n; j++)
            if (m[j]) {
                nearest2(x[j] - f.mu, f.a0, f.a1, &s0[j], &s1[j]);
                q[j] = (f.a0 * (float)s0[j] + f.a1 * (float)s1[j]) + f.mu;
            }
    }
    return f;
}

/* out = S v (S n x n), f32 rows summed in f32 (vectorized). */
static void matvec(const float *S, const float *v, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) {
        const float *s = S + i * n;
        float r = 0.0f;
        for (int64_t j = 0; j < n; j++) r += s[j] * v[j];
        out[i] = r;
    }
}

static double dot(const float *u, const float *v, int64_t n) {
    double t = 0.0;
    for (int64_t i = 0; i < n; i++) t += (double)u[i] * (double)v[i];
    return t;
}

/* ARB-X: the ARB fit, then mu, a0 (and a1) refit against S with the signs
 * fixed (iters rounds of exact coordinate minimization of (w - q)^T S (w - q)). */
static row_fit arbx_row(const float *x, const uint8_t *m, int64_t n, int order, const lp_bin_opts *o, float *q,
                        int8_t *s0, int8_t *s1, float *scratch) {
    row_fit f = order == 1 ? arb1_row(x, m, n, o->iters, q, s0) : arb2_row(x, m, n, o->iters, q, s0, s1);
    float *w = scratch, *mm = w + n, *b0 = mm + n, *b1 = b0 + n, *Sm = b1 + n, *Sb0 = Sm + n, *Sb1 = Sb0 + n;
    int64_t cnt = 0;
    for (int64_t j = 0; j < n; j++) {
        w[j] = m[j] ? x[j] : 0.0f;
        mm[j] = m[j] ? 1.0f : 0.0f;
        b0[j] = m[j] ? (float)s0[j] : 0.0f;
        b1[j] = m[j] && order == 2 ? (float)s1[j] : 0.0f;
        cnt += m[j];
    }
    if (!cnt) return f;
    matvec(o->S, mm, n, Sm);
    matvec(o->S, b0, n, Sb0);
    if (order == 2) matvec(o->S, b1, n, Sb1);
    else memset(Sb1, 0, (size_t)n * sizeof *Sb1);
    const double wm = dot(w, Sm, n), b0m = dot(b0, Sm, n), b1m = dot(b1, Sm, n);
    const double mmm = dot(mm, Sm, n) + 1e-10, b0b0 = dot(b0, Sb0, n) + 1e-10, b1b1 = dot(b1, Sb1, n) + 1e-10;
    const double b0w = dot(w, Sb0, n), b1w = dot(w, Sb1, n), b0b1 = dot(b1, Sb0, n);
    double mu = f.mu, a0 = f.a0, a1 = order == 2 ? f.a1 : 0.0;
    for (int it = 0; it < o->iters_x; it++) {
        mu = (wm - a0 * b0m - a1 * b1m) / mmm;
        a0 = (b0w - mu * b0m - a1 * b0b1) / b0b0;
        if (order == 2) a1 = (b1w - mu * b1m - a0 * b0b1) / b1b1;
    }
    f.mu = (float)mu;
    f.a0 = (float)a0;
    f.a1 = (float)a1;
    for (int64_t j = 0; j < n; j++)
        if (m[j])
            q[j] = order == 1 ? (float)s0[j] * f.a0 + f.mu : (f.a0 * (float)s0[j] + f.a1 * (float)s1[j]) + f.mu;
    return f;
}

/* ---- RC: row and column scales, no mean (whole block) ---- */

/* One pass of alternating row then column scales for plane B against Wt,
 * both over the group (m); r (R), c (n). */
static void rc_update(const float *Wt, const uint8_t *m, const int8_t *B, int64_t R, int64_t n, float *r, float *c) {
    for (int64_t i = 0; i < R; i++) {
        double num = 0.0, den = 0.0;
        for (int64_t j = 0; j < n; j++)
            if (m[i * n + j]) {
                const double g = (double)c[j] * B[i * n + j];
                num += g * Wt[i * n + j];
                den += g * g;
            }
        r[i] = (float)(num / (den + 1e-8));
    }
    for (int64_t j = 0; j < n; j++) {
        double num = 0.0, den = 0.0;
        for (int64_t i = 0; i < R; i++)
            if (m[i * n + j]) {
                const double h = (double)r[i] * B[i * n + j];
                num += h * Wt[i * n + j];
                den += h * h;
            }
        c[j] = (float)(num / (den + 1e-8));
    }
}

/* RC's initial scales of A over m: r = mean |A| per row, c = mean over rows of |A / r|. */
static void rc_init(const float *A, const uint8_t *m, int64_t R, int64_t n, float *r, float *c, int8_t *B) {
    for (int64_t i = 0; i < R; i++) {
        double s = 0.0;
        int64_t k = 0;
        for (int64_t j = 0; j < n; j++)
            if (m[i * n + j]) {
                s += fabs((double)A[i * n + j]);
                k++;
                B[i * n + j] = (int8_t)sgnf(A[i * n + j]);
            }
        r[i] = k ? (float)(s / (double)k) : 0.0f;
    }
    for (int64_t j = 0; j < n; j++) {
        double s = 0.0;
        int64_t k = 0;
        for (int64_t i = 0; i < R; i++)
            if (m[i * n + j] && r[i] != 0.0f) {
                s += fabs((double)(A[i * n + j] / r[i]));
                k++;
            }
        c[j] = k ? (float)(s / (double)k) : 0.0f;
    }
}

/* RC at order 1 or 2 over the block's group m (R x n, contiguous copies). */
static lp_status rc_fit(const float *X, const uint8_t *m, int64_t R, int64_t n, int order, int iters, float *Q,
                        lp_bin_fit *fit, int8_t *s0, int8_t *s1) {
    float *A = calloc((size_t)(R * n), sizeof *A), *Wt = calloc((size_t)(R * n), sizeof *Wt);
    float *r0 = calloc((size_t)R, sizeof *r0), *r1 = calloc((size_t)R, sizeof *r1);
    float *c0 = calloc((size_t)n, sizeof *c0), *c1 = calloc((size_t)n, sizeof *c1);
    int8_t *B0 = calloc((size_t)(R * n), 1), *B1 = calloc((size_t)(R * n), 1);
    lp_status st = LP_OK;
    if (!A || !Wt || !r0 || !r1 || !c0 || !c1 || !B0 || !B1) {
        st = lp_fail(LP_ERR_NOMEM, "out of memory for a %lld x %lld block", (long long)R, (long long)n);
        goto done;
    }
    memcpy(A, X, (size_t)(R * n) * sizeof *A);
    rc_init(A, m, R, n, r0, c0, B0);
    if (order == 1) {
        for (int it = 0; it < iters; it++) rc_update(X, m, B0, R, n, r0, c0);
    } else {
        for (int64_t i = 0; i < R * n; i++) A[i] = m[i] ? X[i] - ((float)B0[i] * r0[i / n]) * c0[i % n] : 0.0f;
        rc_init(A, m, R, n, r1, c1, B1);
        for (int it = 0; it < iters; it++) {
            for (int64_t i = 0; i < R * n; i++) Wt[i] = X[i] - (c1[i % n] * r1[i / n]) * (float)B1[i];
            rc_update(Wt, m, B0, R, n, r0, c0);
            for (int64_t i = 0; i < R * n; i++) Wt[i] = X[i] - (c0[i % n] * r0[i / n]) * (float)B0[i];
            rc_update(Wt, m, B1, R, n, r1, c1);
            for (int64_t i = 0; i < R * n; i++)
                if (m[i]) nearest2(X[i], r0[i / n] * c0[i % n], r1[i / n] * c1[i % n], &B0[i], &B1[i]);
        }
    }
    for (int64_t i = 0; i < R * n; i++) {
        if (!m[i]) continue;
        const float p0 = r0[i / n] * c0[i % n];
        Q[i] = order == 1 ? (float)B0[i] * p0 : (float)B0[i] * p0 + (float)B1[i] * (r1[i / n] * c1[i % n]);
        if (s0) s0[i] = B0[i];
        if (s1 && order == 2) s1[i] = B1[i];
    }
    if (fit) {
        memcpy(fit->a0, r0, (size_t)R * sizeof *r0);
        if (order == 2) memcpy(fit->a1, r1, (size_t)R * sizeof *r1);
        if (fit->mu) memset(fit->mu, 0, (size_t)R * sizeof *fit->mu);
        if (fit->c0) memcpy(fit->c0, c0, (size_t)n * sizeof *c0);
        if (fit->c1 && order == 2) memcpy(fit->c1, c1, (size_t)n * sizeof *c1);
    }
done:
    free(A);
    free(Wt);
    free(r0);
    free(r1);
    free(c0);
    free(c1);
    free(B0);
    free(B1);
    return st;
}

/* ---- the fit of a set ---- */

/* Rows [r0, r1) of lp_bin_fit_set, serially. */
static void fit_rows(const float *X, int64_t n, int64_t ld, const uint8_t *G, unsigned set, int order,
                     const lp_bin_opts *o, float *Q, lp_bin_fit *fit, int8_t *s0, int8_t *s1, int64_t r0, int64_t r1) {
    if (n <= 0) return;
    uint8_t *m = malloc((size_t)n);
    float *q = malloc((size_t)n * sizeof *q);
    int8_t *t0 = malloc((size_t)n), *t1 = malloc((size_t)n);
    float *scratch = malloc((size_t)(7 * n) * sizeof *scratch);
    for (int64_t i = r0; m && q && t0 && t1 && scratch && i < r1; i++) {
        const float *x = X + i * ld;
        for (int64_t j = 0; j < n; j++) m[j] = (uint8_t)in_set(G, i * n + j, set);
        memset(t0, 1, (size_t)n);
        memset(t1, 1, (size_t)n);
        row_fit f;
        switch (o->kind) {
        case LP_BIN_ARB: f = order == 1 ? arb1_row(x, m, n, o->iters, q, t0) : arb2_row(x, m, n, o->iters, q, t0, t1); break;
        case LP_BIN_ARBX: f = arbx_row(x, m, n, order, o, q, t0, t1, scratch); break;
        default: f = braq_row(x, m, n, order, q, t0, t1); break;
        }
        for (int64_t j = 0; j < n; j++)
            if (m[j]) {
                Q[i * n + j] = q[j];
                if (s0) s0[i * n + j] = t0[j];
                if (s1) s1[i * n + j] = t1[j];
            }
        if (fit) {
            fit->mu[i] = f.mu;
            fit->a0[i] = f.a0;
            fit->a1[i] = f.a1;
        }
    }
    free(m);
    free(q);
    free(t0);
    free(t1);
    free(scratch);
}

void lp_bin_fit_set(const float *X, int64_t R, int64_t n, int64_t ld, const uint8_t *G, unsigned set, int order,
                    const lp_bin_opts *o, float *Q, lp_bin_fit *fit, int8_t *s0, int8_t *s1, int par) {
    if (o->kind == LP_BIN_RC) {
        float *Xc = malloc((size_t)(R * n) * sizeof *Xc), *Qc = malloc((size_t)(R * n) * sizeof *Qc);
        uint8_t *m = malloc((size_t)(R * n));
        if (Xc && Qc && m) {
            for (int64_t i = 0; i < R; i++)
                for (int64_t j = 0; j < n; j++) {
                    Xc[i * n + j] = X[i * ld + j];
                    m[i * n + j] = (uint8_t)in_set(G, i * n + j, set);
                }
            /* out of memory leaves Q unchanged: the caller's check of Q catches it */
            if (rc_fit(Xc, m, R, n, order, o->iters, Qc, fit, s0, s1) == LP_OK)
                for (int64_t i = 0; i < R * n; i++)
                    if (m[i]) Q[i] = Qc[i];
        }
        free(Xc);
        free(Qc);
        free(m);
        return;
    }
if (!par) {
        fit_rows(X, n, ld, G, set, order, o, Q, fit, s0, s1, 0, R);
        return;
    }
#pragma omp parallel
    {
        const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
        fit_rows(X, n, ld, G, set, order, o, Q, fit, s0, s1, R * t / nt, R * (t + 1) / nt);
    }
}

/* ---- searches ---- */

/* sum of (T - Q)^2 over the set's positions, in double */
static double sq_err(const float *T, const float *Q, const uint8_t *G, unsigned set, int64_t N) {
    double e = 0.0;
    for (int64_t i = 0; i < N; i++)
        if (in_set(G, i, set)) {
            const double d = (double)T[i] - (double)Q[i];
            e += d * d;
        }
    return e;
}

/* tr(D S D^T), D = T - Q (R x n); d: 2 n scratch */
static double s_err(const float *T, const float *Q, const float *S, int64_t R, int64_t n, float *d) {
    double e = 0.0;
    for (int64_t i = 0; i < R; i++) {
        for (int64_t j = 0; j < n; j++) d[j] = T[i * n + j] - Q[i * n + j];
        matvec(S, d, n, d + n);
        e += dot(d, d + n, n);
    }
    return e;
}

typedef struct {
    int64_t col;
    double score;
} col_score;

static int cmp_score_desc(const void *a, const void *b) {
    const col_score *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return x->col < y->col ? -1 : x->col > y->col;
}

/* Squared error of BRAQ at order 2 over the contiguous values x[0..len),
 * the fit computed as braq_row does (f32 values, double sums). */
static double braq2_err(const float *x, int64_t len, float *q) {
    if (len <= 0) return 0.0;
    for (int64_t j = 0; j < len; j++) q[j] = 0.0f;
    for (int o = 0; o < 2; o++) {
        double s = 0.0;
        for (int64_t j = 0; j < len; j++) s += (double)(x[j] - q[j]);
        const float mu = (float)(s / (double)len);
        double sa = 0.0;
        for (int64_t j = 0; j < len; j++) sa += fabs((double)(x[j] - q[j] - mu));
        const float a = (float)(sa / (double)len);
        for (int64_t j = 0; j < len; j++) q[j] += sgnf(x[j] - q[j] - mu) * a + mu;
    }
    double e = 0.0;
    for (int64_t j = 0; j < len; j++) {
        const double d = (double)x[j] - (double)q[j];
        e += d * d;
    }
    return e;
}

int64_t lp_braq_salient(const float *T, int64_t R, int64_t n, uint8_t *G) {
    const int64_t N = R * n;
    col_score *cs = malloc((size_t)n * sizeof *cs);
    float *Tp = malloc((size_t)N * sizeof *Tp);
    double *err = malloc((size_t)(UP_LIM + 1) * sizeof *err);
    int64_t up = n - 1 < UP_LIM ? n - 1 : UP_LIM;
    if (!cs || !Tp || !err || up < 2) { /* a block of 1-2 columns (or no memory): its first column */
        free(cs);
        free(Tp);
        free(err);
        for (int64_t i = 0; i < N; i++) G[i] = i % n == 0 ? LP_G_SAL_HI : LP_G_HI;
        return 1;
    }
    for (int64_t j = 0; j < n; j++) {
        double sc = 0.0;
        for (int64_t i = 0; i < R; i++) sc += fabs((double)T[i * n + j]);
        cs[j] = (col_score){j, sc};
    }
    qsort(cs, (size_t)n, sizeof *cs, cmp_score_desc);
    /* columns in rank order: candidate k's salient set is ranks [0, k) */
    for (int64_t i = 0; i < R; i++)
        for (int64_t t = 0; t < n; t++) Tp[i * n + t] = T[i * n + cs[t].col];
#pragma omp parallel
    {
        float *q = malloc((size_t)n * sizeof *q);
#pragma omp for schedule(dynamic, 1)
        for (int64_t k = 1; k < up; k++) {
            double e = 0.0;
            for (int64_t i = 0; q && i < R; i++)
                e += braq2_err(Tp + i * n, k, q) + braq2_err(Tp + i * n + k, n - k, q);
            err[k] = q ? e : INFINITY;
        }
        free(q);
    }
    int64_t best = 1;
    for (int64_t k = 2; k < up; k++)
        if (err[k] < err[best]) best = k;
    for (int64_t i = 0; i < N; i++) G[i] = LP_G_HI;
    for (int64_t t = 0; t < best; t++)
        for (int64_t i = 0; i < R; i++) G[i * n + cs[t].col] = LP_G_SAL_HI;
    free(err);
    free(Tp);
    free(cs);
    return best;
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The 81 quantiles of v (sorted in place, nv values), numpy's linear rule. */
static void quantiles(float *v, int64_t nv, double *p) {
    qsort(v, (size_t)nv, sizeof *v, cmp_float);
    for (int i = 0; i < N_QUANTILES; i++) {
        const double q = 0.10 + 0.01 * i, h = (double)(nv - 1) * q;
        const int64_t lo = (int64_t)floor(h);
        const double g = h - (double)lo;
        const double a = v[lo], b = v[lo + 1 < nv ? lo + 1 : lo];
        p[i] = g < 0.5 ? a + (b - a) * g : b - (b - a) * (1.0 - g);
    }
}

/* The best of the candidate split points p[] for the weights of `set` in G:
 * each candidate moves |T| < p to group lo, the rest to hi; base holds the
 * fit of the weights outside the set; the error is over the whole block. */
static lp_status best_split(const float *T, int64_t R, int64_t n, uint8_t *G, unsigned set, int hi, int lo, int order,
                            const double *p, const float *base, const lp_bin_opts *o, double *best_p) {
    const int64_t N = R * n;
    double err[N_QUANTILES];
    const lp_bin_opts bo = {.kind = LP_BIN_BRAQ};
    int oom = 0;
#pragma omp parallel
    {
        uint8_t *g = malloc((size_t)N);
        float *Q = malloc((size_t)N * sizeof *Q);
        float *d = malloc((size_t)(2 * n) * sizeof *d);
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < N_QUANTILES; c++) {
            if (!g || !Q || !d) {
                err[c] = INFINITY;
#pragma omp atomic write
                oom = 1;
                continue;
            }
            memcpy(Q, base, (size_t)N * sizeof *Q);
            for (int64_t i = 0; i < N; i++)
                g[i] = in_set(G, i, set) ? (uint8_t)(fabsf(T[i]) >= (float)p[c] ? hi : lo) : G[i];
            lp_bin_fit_set(T, R, n, n, g, LP_SET(lo), order, &bo, Q, NULL, NULL, NULL, 0);
            lp_bin_fit_set(T, R, n, n, g, LP_SET(hi), order, &bo, Q, NULL, NULL, NULL, 0);
            err[c] = o && o->kind == LP_BIN_ARBX && o->S ? s_err(T, Q, o->S, R, n, d) : sq_err(T, Q, g, 0xFu, N);
        }
        free(g);
        free(Q);
        free(d);
    }
    if (oom) return lp_fail(LP_ERR_NOMEM, "out of memory for the break-point search");
    int best = 0;
    for (int c = 1; c < N_QUANTILES; c++)
        if (err[c] < err[best] || !(err[best] == err[best])) best = c;
    *best_p = p[best];
    for (int64_t i = 0; i < N; i++)
        if (in_set(G, i, set)) G[i] = (uint8_t)(fabsf(T[i]) >= (float)p[best] ? hi : lo);
    return LP_OK;
}

/* Index of the first of v[lo, hi) (ascending) that is >= x. */
static int64_t lower_bound(const float *v, int64_t lo, int64_t hi, double x) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if ((double)v[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* BRAQ order 1's squared error over the ascending values v[a0, a1) and
 * v[b0, b1) together (a1 <= b0) with prefix sums S1, S2 (S[i] = sum of
 * v[0, i)): with mu the mean and a the mean |v - mu|,
 * sum (v - mu - a sgn)^2 = sum (v - mu)^2 - cnt a^2. */
static double braq1_err_sorted(const float *v, const double *S1, const double *S2, int64_t a0, int64_t a1,
                               int64_t b0, int64_t b1) {
    const int64_t cnt = (a1 - a0) + (b1 - b0);
    if (cnt <= 0) return 0.0;
    const double s1 = (S1[a1] - S1[a0]) + (S1[b1] - S1[b0]), s2 = (S2[a1] - S2[a0]) + (S2[b1] - S2[b0]);
    const double mu = s1 / (double)cnt;
    /* the values below mu: a prefix of each range */
    const int64_t ka = lower_bound(v, a0, a1, mu), kb = lower_bound(v, b0, b1, mu);
    const double below = (S1[ka] - S1[a0]) + (S1[kb] - S1[b0]);
    const int64_t nbelow = (ka - a0) + (kb - b0);
    const double dev = (mu * (double)nbelow - below) + ((s1 - below) - mu * (double)(cnt - nbelow));
    const double a = dev / (double)cnt, var = s2 - (double)cnt * mu * mu;
    const double e = var - (double)cnt * a * a;
    return e > 0.0 ? e : 0.0;
}

/* The break point when the error is plain squared error: per row the
 * non-salient values sorted once; a candidate p puts (-p, p) low, the rest
 * high (|T| < p, compared in f32 as the masks are); each group's order-1 fit
 * error in closed form (O(log n) per row and candidate). The salient part's
 * error is the same for every candidate and left out. Returns false when
 * memory is short (the caller then runs the general search). */
static bool split_sorted(const float *T, int64_t R, int64_t n, uint8_t *G, const double *p) {
    float *v = malloc((size_t)(R * n) * sizeof *v);
    double *S1 = malloc((size_t)(R * (n + 1)) * sizeof *S1), *S2 = malloc((size_t)(R * (n + 1)) * sizeof *S2);
    int64_t *cnt = malloc((size_t)R * sizeof *cnt);
    double err[N_QUANTILES];
    if (!v || !S1 || !S2 || !cnt) {
        free(v);
        free(S1);
        free(S2);
        free(cnt);
        return false;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < R; i++) {
        float *vr = v + i * n;
        int64_t m = 0;
        for (int64_t j = 0; j < n; j++)
            if (!in_set(G, i * n + j, LP_SET_SAL)) vr[m++] = T[i * n + j];
        qsort(vr, (size_t)m, sizeof *vr, cmp_float);
        double *s1 = S1 + i * (n + 1), *s2 = S2 + i * (n + 1);
        s1[0] = s2[0] = 0.0;
        for (int64_t j = 0; j < m; j++) {
            s1[j + 1] = s1[j] + (double)vr[j];
            s2[j + 1] = s2[j] + (double)vr[j] * (double)vr[j];
        }
        cnt[i] = m;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int c = 0; c < N_QUANTILES; c++) {
        const float pc = (float)p[c];
        double e = 0.0;
        for (int64_t i = 0; i < R; i++) {
            const float *vr = v + i * n;
            const double *s1 = S1 + i * (n + 1), *s2 = S2 + i * (n + 1);
            int64_t lo = 0, hi = cnt[i]; /* i1: the first v > -p */
            while (lo < hi) {
                const int64_t mid = lo + (hi - lo) / 2;
                if (vr[mid] <= -pc) lo = mid + 1;
                else hi = mid;
            }
            const int64_t i1 = lo;
            hi = cnt[i]; /* i2: the first v >= p */
            while (lo < hi) {
                const int64_t mid = lo + (hi - lo) / 2;
                if (vr[mid] < pc) lo = mid + 1;
                else hi = mid;
            }
            const int64_t i2 = lo;
            e += braq1_err_sorted(vr, s1, s2, i1, i2, i2, i2) + braq1_err_sorted(vr, s1, s2, 0, i1, i2, cnt[i]);
        }
        err[c] = e;
    }
    int best = 0;
    for (int c = 1; c < N_QUANTILES; c++)
        if (err[c] < err[best]) best = c;
    for (int64_t i = 0; i < R * n; i++)
        if (!in_set(G, i, LP_SET_SAL)) G[i] = (uint8_t)(fabsf(T[i]) >= (float)p[best] ? LP_G_HI : LP_G_LO);
    free(v);
    free(S1);
    free(S2);
    free(cnt);
    return true;
}

lp_status lp_braq_split(const float *T, int64_t R, int64_t n, uint8_t *G, const lp_bin_opts *o) {
    const int64_t N = R * n;
    float *v = malloc((size_t)N * sizeof *v), *base = calloc((size_t)N, sizeof *base);
    if (!v || !base) {
        free(v);
        free(base);
        return lp_fail(LP_ERR_NOMEM, "out of memory for the break-point search");
    }
    for (int64_t i = 0; i < N; i++) v[i] = in_set(G, i, LP_SET_SAL) ? 0.0f : fabsf(T[i]);
    double p[N_QUANTILES], bp;
    quantiles(v, N, p);
    /* plain squared error: the salient part's fit is the same for every
     * candidate, and the rest has a closed form on sorted values */
    if (o->kind != LP_BIN_ARBX && split_sorted(T, R, n, G, p)) {
        free(v);
        free(base);
        return LP_OK;
    }
    /* the salient part's fit, the same for every candidate */
    lp_bin_opts so = *o;
    if (so.kind == LP_BIN_ARBX) so.kind = LP_BIN_ARB; /* ARB-X searches with ARB's fit of the salient part */
    lp_bin_fit_set(T, R, n, n, G, LP_SET_SAL, 2, &so, base, NULL, NULL, NULL, 1);
    lp_status st = best_split(T, R, n, G, LP_SET_OTHER, LP_G_HI, LP_G_LO, 1, p, base, o, &bp);
    free(v);
    free(base);
    return st;
}

lp_status lp_braq_cgb(const float *T, int64_t R, int64_t n, uint8_t *G) {
    /* the salient columns (the same for every row) gathered: the split sees
     * only them; the other columns contribute T^2 whatever the split */
    int64_t k = 0;
    for (int64_t j = 0; j < n; j++) k += in_set(G, j, LP_SET_SAL);
    if (k == 0) return LP_OK;
    const int64_t N = R * k;
    float *Ts = malloc((size_t)N * sizeof *Ts), *v = malloc((size_t)N * sizeof *v);
    float *base = calloc((size_t)N, sizeof *base);
    uint8_t *Gs = malloc((size_t)N);
    if (!Ts || !v || !base || !Gs) {
        free(Ts);
        free(v);
        free(base);
        free(Gs);
        return lp_fail(LP_ERR_NOMEM, "out of memory for the column-group search");
    }
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0, t = 0; j < n; j++)
            if (in_set(G, j, LP_SET_SAL)) {
                Ts[i * k + t] = T[i * n + j];
                Gs[i * k + t++] = LP_G_SAL_HI;
            }
    int64_t nv = 0;
    for (int64_t i = 0; i < N; i++)
        if (Ts[i] != 0.0f) v[nv++] = fabsf(Ts[i]);
    lp_status st = LP_OK;
    if (nv > 0) {
        double p[N_QUANTILES], bp;
        quantiles(v, nv, p);
        st = best_split(Ts, R, k, Gs, LP_SET_SAL, LP_G_SAL_HI, LP_G_SAL_LO, 2, p, base, NULL, &bp);
        for (int64_t i = 0; st == LP_OK && i < R; i++)
            for (int64_t j = 0, t = 0; j < n; j++)
                if (in_set(G, j, LP_SET_SAL)) G[i * n + j] = Gs[i * k + t++];
    }
    free(Ts);
    free(v);
    free(base);
    free(Gs);
    return st;
}
