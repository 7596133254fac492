/*
 * test_binarize.c - the binarization primitives (quant/braq.h), the methods
 * that use them (billm, arb, arb-x, arb-rc: quant/billm.c; pbllm:
 * quant/pbllm.c) and the pipeline's block-input calibration (pipeline.c):
 *  - BRAQ at order 1 is, per row, mu +- a with mu the mean and a the mean
 *    absolute deviation (checked against a double computation here); order 2
 *    is the same again on the residual; a block with a row stride wider
 *    than the block is read correctly;
 *  - the refinements never lose: ARB's squared error is at most BRAQ's
 *    (orders 1 and 2), ARB-X's S-weighted error at most ARB's, RC's error
 *    after its alternating rounds at most its initial fit's;
 *  - a fit of a group set writes Q (and the signs) only at the set's
 *    positions, and fits only the set's weights;
 *  - the searches: planted salient columns are found, a bimodal block
 *    splits at its gap, the column-group bitmap splits salient weights by
 *    magnitude into two nonempty groups;
 *  - each method through lp_compress_linear: the binary format with the
 *    method's layout, finite weights equal to the format's definition, less
 *    weight error than sign; the calibrated methods less output error
 *    tr(D H D^T) than sign and than themselves given H = I, PB-LLM, ARB-X
 *    and ARB-RC less than the uncalibrated arb (BiLLM does not: see
 *    check_methods); PB-LLM holds the requested fraction (by magnitude:
 *    exactly the largest |w|), more held weights lower the error, and so
 *    does holding them as f16 values (salient-bits=16: 2 bytes and 16 paper
 *    bits each, no grid) instead of 8-bit codes; papers'
 *    bits and exact bytes as the format defines them; bad settings and
 *    widths the block does not divide refused with clear errors;
 *  - the pipeline on tiny-llama3: finite logits closer to the original than
 *    sign's, and PB-LLM's weights equal those of a re-run written here (all
 *    four Hessians of a block from its uncompressed run, then the compressed
 *    block's output as the next block's input).
 * Shapes: W is R x C (out x in, row-major), X is tokens x C, H is C x C; a
 * binarization block is R x n.
 */
#include "test.h"
#include "test_linear.h"

#include "core/half.h"
#include "format/binary.h"
#include "format/dense.h"
#include "format/linear.h"
#include "llmpress/quant.h"
#include "model/model_impl.h"
#include "quant/braq.h"
#include "quant/method.h"

#include <stdarg.h>

/* ---- helpers ---- */

static void randn_fill(float *x, int64_t n, double scale, unsigned long long *seed) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)(scale * test_randn(seed));
}

/* Per-row squared error of Q against X (stride ld) over the block R x n. */
static double row_sq_err(const float *X, int64_t ld, const float *Q, int64_t n, int64_t r) {
    double e = 0;
    for (int64_t j = 0; j < n; j++) {
        const double d = (double)X[r * ld + j] - Q[r * n + j];
        e += d * d;
    }
    return e;
}

/* d^T S d of row r's error (S n x n). */
static double row_s_err(const float *X, const float *Q, const float *S, int64_t n, int64_t r) {
    double e = 0;
    for (int64_t i = 0; i < n; i++) {
        const double di = (double)X[r * n + i] - Q[r * n + i];
        double t = 0;
        for (int64_t j = 0; j < n; j++) t += (double)S[i * n + j] * ((double)X[r * n + j] - Q[r * n + j]);
        e += di * t;
    }
    return e;
}

typedef struct {
    float *mu, *a0, *a1, *c0, *c1;
} fit_buf;

static lp_bin_fit fit_alloc(fit_buf *b, int64_t R, int64_t n) {
    b->mu = calloc((size_t)R, sizeof(float));
    b->a0 = calloc((size_t)R, sizeof(float));
    b->a1 = calloc((size_t)R, sizeof(float));
    b->c0 = calloc((size_t)n, sizeof(float));
    b->c1 = calloc((size_t)n, sizeof(float));
    return (lp_bin_fit){b->mu, b->a0, b->a1, b->c0, b->c1};
}
static void fit_free(fit_buf *b) { free(b->mu), free(b->a0), free(b->a1), free(b->c0), free(b->c1); }

/* ---- 1. BRAQ against its definition ---- */

/* BRAQ of x's masked entries (mask m, NULL = all) at order 1 or 2, in double:
 * q (n) at the masked positions, the parameters, and how many deviations came
 * so close to 0 that float rounding may legitimately pick the other sign
 * (those are not compared). */
static int braq_ref(const float *x, const uint8_t *m, int64_t n, int order, double *q, double *mu_sum, double *a,
                    int8_t *s0, int8_t *s1, uint8_t *skip) {
    int64_t cnt = 0;
    for (int64_t j = 0; j < n; j++) {
        q[j] = 0;
        cnt += !m || m[j];
        skip[j] = 0;
    }
    int nskip = 0;
    *mu_sum = 0;
    for (int o = 0; o < order; o++) {
        double s = 0;
        for (int64_t j = 0; j < n; j++)
            if (!m || m[j]) s += x[j] - q[j];
        const double mu = s / (double)cnt;
        double sa = 0;
        for (int64_t j = 0; j < n; j++)
            if (!m || m[j]) sa += fabs(x[j] - q[j] - mu);
        a[o] = sa / (double)cnt;
        for (int64_t j = 0; j < n; j++) {
            if (m && !m[j]) continue;
            const double d = x[j] - q[j] - mu;
            if (fabs(d) < 1e-5 * a[o] && !skip[j]) skip[j] = 1, nskip++;
            const int8_t sg = d >= 0 ? 1 : -1;
            (o == 0 ? s0 : s1)[j] = sg;
            q[j] += sg * a[o] + mu;
        }
        *mu_sum += mu;
    }
    return nskip;
}

static void check_braq_definition(unsigned long long *seed) {
    enum { R = 16, n = 96, LD = 103 }; /* a row stride wider than the block */
    float *X = malloc(R * LD * sizeof(float)), *Q = malloc(R * n * sizeof(float));
    uint8_t *G = malloc(R * n);
    int8_t *s0 = malloc(R * n), *s1 = malloc(R * n);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < LD; j++) X[r * LD + j] = (float)(0.3 * (r - 8) * 0.01 + 0.05 * test_randn(seed));
    memset(G, LP_G_HI, R * n);
    for (int order = 1; order <= 2; order++) {
        fit_buf fb;
        lp_bin_fit f = fit_alloc(&fb, R, n);
        const lp_bin_opts o = {.kind = LP_BIN_BRAQ};
        lp_bin_fit_set(X, R, n, LD, G, LP_SET(LP_G_HI), order, &o, Q, &f, s0, s1, 1);
        int bad_q = 0, bad_s = 0, bad_p = 0, skipped = 0;
        double worst = 0;
        for (int r = 0; r < R; r++) {
            double q[n], mu, a[2] = {0, 0};
            int8_t t0[n], t1[n];
            uint8_t skip[n];
            skipped += braq_ref(X + r * LD, NULL, n, order, q, &mu, a, t0, t1, skip);
            const double scale = fabs(mu) + a[0] + (order == 2 ? a[1] : 0);
            for (int j = 0; j < n; j++) {
                if (skip[j]) continue;
                const double d = fabs(Q[r * n + j] - q[j]);
                worst = d / scale > worst ? d / scale : worst;
                bad_q += d > 1e-6 * scale;
                bad_s += s0[r * n + j] != t0[j] || (order == 2 && s1[r * n + j] != t1[j]);
            }
            bad_p += fabs(f.mu[r] - mu) > 1e-6 * scale || fabs(f.a0[r] - a[0]) > 1e-6 * a[0] ||
                     (order == 2 && fabs(f.a1[r] - a[1]) > 1e-6 * a[1]);
        }
        CHECKF(bad_q == 0 && bad_s == 0 && bad_p == 0,
               "BRAQ order %d: %d values, %d signs, %d rows' parameters differ from the definition (worst rel. %.3g)",
               order, bad_q, bad_s, bad_p, worst);
        CHECKF(skipped <= 2, "BRAQ order %d: %d deviations within rounding of 0 (expected almost none)", order, skipped);
        printf("BRAQ order %d vs the definition in double: worst relative difference %.3g\n", order, worst);
        fit_free(&fb);
    }
    free(X), free(Q), free(G), free(s0), free(s1);
}

/* ---- 2. the refinements never lose ---- */

static void check_refinements(unsigned long long *seed) {
    enum { R = 16, n = 128, NX = 64 };
    float *X = malloc(R * n * sizeof(float)), *Qb = malloc(R * n * sizeof(float)), *Qa = malloc(R * n * sizeof(float));
    float *Qx = malloc(R * n * sizeof(float)), *Z = malloc(NX * n * sizeof(float)), *S = malloc(n * n * sizeof(float));
    uint8_t *G = malloc(R * n);
    int8_t *s0 = malloc(R * n), *s1 = malloc(R * n);
    memset(G, LP_G_HI, R * n);
    int worse_arb = 0, worse_x = 0, rows = 0, gains_arb = 0, gains_x = 0;
    int worse_rc = 0, gains_rc = 0;
    for (int trial = 0; trial < 4; trial++) {
        /* rows with a nonzero mean and a heavy tail: room for refinement */
        for (int i = 0; i < R * n; i++) {
            const double g = test_randn(seed);
            X[i] = (float)(0.01 * (i / n - 8) + 0.05 * g * (1 + 0.5 * fabs(g)));
        }
        /* S = Z^T Z with correlated columns */
        for (int t = 0; t < NX; t++) {
            double prev = 0;
            for (int j = 0; j < n; j++) {
                prev = 0.7 * prev + test_randn(seed);
                Z[t * n + j] = (float)(prev * (1 + (j % 16 == 3 ? 4 : 0)));
            }
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int t = 0; t < NX; t++) s += (double)Z[t * n + i] * Z[t * n + j];
                S[i * n + j] = (float)s;
            }
        for (int order = 1; order <= 2; order++) {
            const lp_bin_opts ob = {.kind = LP_BIN_BRAQ}, oa = {.kind = LP_BIN_ARB, .iters = 15};
            const lp_bin_opts ox = {.kind = LP_BIN_ARBX, .iters = 15, .iters_x = 15, .S = S};
            lp_bin_fit_set(X, R, n, n, G, LP_SET(LP_G_HI), order, &ob, Qb, NULL, s0, s1, 1);
            lp_bin_fit_set(X, R, n, n, G, LP_SET(LP_G_HI), order, &oa, Qa, NULL, s0, s1, 1);
            lp_bin_fit_set(X, R, n, n, G, LP_SET(LP_G_HI), order, &ox, Qx, NULL, s0, s1, 1);
            for (int r = 0; r < R; r++, rows++) {
                const double eb = row_sq_err(X, n, Qb, n, r), ea = row_sq_err(X, n, Qa, n, r);
                const double sa = row_s_err(X, Qa, S, n, r), sx = row_s_err(X, Qx, S, n, r);
                if (ea > eb * (1 + 1e-5)) {
                    if (!worse_arb) fprintf(stderr, "ARB order %d row %d: error %.6g, BRAQ's %.6g\n", order, r, ea, eb);
                    worse_arb++;
                }
                if (sx > sa * (1 + 1e-5)) {
                    if (!worse_x) fprintf(stderr, "ARB-X order %d row %d: S-error %.6g, ARB's %.6g\n", order, r, sx, sa);
                    worse_x++;
                }
                gains_arb += ea < eb * (1 - 1e-3);
                gains_x += sx < sa * (1 - 1e-3);
            }
            /* RC couples the rows through its column scales: the block's error */
            const lp_bin_opts r0 = {.kind = LP_BIN_RC, .iters = 0}, r15 = {.kind = LP_BIN_RC, .iters = 15};
            lp_bin_fit_set(X, R, n, n, G, LP_SET(LP_G_HI), order, &r0, Qb, NULL, s0, s1, 1);
            lp_bin_fit_set(X, R, n, n, G, LP_SET(LP_G_HI), order, &r15, Qa, NULL, s0, s1, 1);
            double e0 = 0, e15 = 0;
            for (int r = 0; r < R; r++) e0 += row_sq_err(X, n, Qb, n, r), e15 += row_sq_err(X, n, Qa, n, r);
            if (e15 > e0 * (1 + 1e-5)) {
                fprintf(stderr, "RC order %d trial %d: error %.6g after 15 rounds, %.6g before\n", order, trial, e15, e0);
                worse_rc++;
            }
            gains_rc += e15 < e0 * (1 - 1e-3);
        }
    }
    CHECKF(worse_arb == 0, "ARB worse than BRAQ on %d of %d rows", worse_arb, rows);
    CHECKF(worse_x == 0, "ARB-X's S-weighted error worse than ARB's on %d of %d rows", worse_x, rows);
    CHECKF(worse_rc == 0, "RC worse after its rounds on %d of 8 blocks", worse_rc);
    /* and they do something: most rows improve */
    CHECKF(gains_arb > rows / 2 && gains_x > rows / 2 && gains_rc >= 6,
           "refinements rarely help: ARB on %d, ARB-X on %d of %d rows, RC on %d of 8 blocks", gains_arb, gains_x, rows,
           gains_rc);
    free(X), free(Qb), free(Qa), free(Qx), free(Z), free(S), free(G), free(s0), free(s1);
}

/* ---- 3. group sets ---- */

static void check_masks(unsigned long long *seed) {
    enum { R = 12, n = 64 };
    const float SENT = 12345.0f;
    float *X = malloc(R * n * sizeof(float)), *Q = malloc(R * n * sizeof(float)), *S = malloc(n * n * sizeof(float));
    uint8_t *G = malloc(R * n), *m = malloc(n);
    int8_t *s0 = malloc(R * n), *s1 = malloc(R * n);
    randn_fill(X, R * n, 0.1, seed);
    for (int i = 0; i < n * n; i++) S[i] = 0;
    for (int i = 0; i < n; i++) S[i * n + i] = 1.0f + (float)(i % 5);
    for (int i = 0; i < R * n; i++) G[i] = (uint8_t)(test_rand_u64(seed) % 4);
    static const lp_bin_kind kinds[4] = {LP_BIN_BRAQ, LP_BIN_ARB, LP_BIN_ARBX, LP_BIN_RC};
    static const char *const names[4] = {"braq", "arb", "arb-x", "rc"};
    static const unsigned sets[3] = {LP_SET(LP_G_LO), LP_SET_SAL, LP_SET(LP_G_SAL_LO) | LP_SET(LP_G_HI)};
    for (int k = 0; k < 4; k++)
        for (int si = 0; si < 3; si++)
            for (int order = 1; order <= 2; order++) {
                for (int i = 0; i < R * n; i++) Q[i] = SENT, s0[i] = 0, s1[i] = 0;
                const lp_bin_opts o = {.kind = kinds[k], .iters = 5, .iters_x = 5, .S = S};
                fit_buf fb;
                lp_bin_fit f = fit_alloc(&fb, R, n);
                lp_bin_fit_set(X, R, n, n, G, sets[si], order, &o, Q, &f, s0, s1, 1);
                int outside = 0, inside = 0, in_count = 0;
                for (int i = 0; i < R * n; i++) {
                    const int in = (sets[si] >> G[i]) & 1u;
                    in_count += in;
                    if (!in) outside += Q[i] != SENT || s0[i] != 0 || s1[i] != 0;
                    else inside += Q[i] == SENT || !isfinite(Q[i]) || (s0[i] != 1 && s0[i] != -1) ||
                                   (order == 2 && s1[i] != 1 && s1[i] != -1);
                }
                CHECKF(outside == 0 && inside == 0,
                       "%s set 0x%x order %d: %d entries outside the set written, %d inside not written (of %d)",
                       names[k], sets[si], order, outside, inside, in_count);
                /* BRAQ fits only the set's weights: the definition over the masked entries */
                if (kinds[k] == LP_BIN_BRAQ) {
                    int bad = 0;
                    for (int r = 0; r < R; r++) {
                        double q[n], mu, a[2] = {0, 0};
                        int8_t t0[n], t1[n];
                        uint8_t skip[n];
                        for (int j = 0; j < n; j++) m[j] = (uint8_t)((sets[si] >> G[r * n + j]) & 1u);
                        braq_ref(X + r * n, m, n, order, q, &mu, a, t0, t1, skip);
                        for (int j = 0; j < n; j++)
                            if (m[j] && !skip[j]) bad += fabs(Q[r * n + j] - q[j]) > 1e-6 * (fabs(mu) + a[0] + a[1]);
                    }
                    CHECKF(bad == 0, "braq set 0x%x order %d: %d values differ from the fit of the set alone", sets[si],
                           order, bad);
                }
                fit_free(&fb);
            }
    free(X), free(Q), free(S), free(G), free(m), free(s0), free(s1);
}

/* ---- 4. the searches ---- */

static void check_searches(unsigned long long *seed) {
    enum { R = 64, n = 128, N = R * n };
    float *T = malloc(N * sizeof(float));
    uint8_t *G = malloc(N);

    /* five planted salient columns, 10x the rest */
    static const int planted[5] = {3, 17, 50, 90, 127};
    randn_fill(T, N, 1.0, seed);
    for (int p = 0; p < 5; p++)
        for (int r = 0; r < R; r++) T[r * n + planted[p]] *= 10.0f;
    const int64_t k = lp_braq_salient(T, R, n, G);
    int found = 0, consistent = 1, marked = 0;
    for (int p = 0; p < 5; p++) found += G[planted[p]] == LP_G_SAL_HI;
    for (int j = 0; j < n; j++) {
        marked += G[j] == LP_G_SAL_HI;
        for (int r = 0; r < R; r++) {
            consistent &= G[r * n + j] == G[j];
            consistent &= G[r * n + j] == LP_G_SAL_HI || G[r * n + j] == LP_G_HI;
        }
    }
    CHECKF(found == 5 && k >= 5 && k <= 10 && marked == k && consistent,
           "salient columns: %d of 5 planted found, k = %lld, %d columns marked, consistent %d", found, (long long)k,
           marked, consistent);
    printf("salient search: %lld columns salient, the 5 planted among them: %s\n", (long long)k,
           found == 5 ? "yes" : "no");

    /* break point: 4 salient columns (large), of the other 124 x 64 = 7936
     * weights 3840 small (~0.01) and 4096 large (~1): with the salient
     * columns' 256 zeros the 0.50 quantile falls in the gap exactly */
    enum { NSAL = 4, NSMALL = 3840 };
    int *idx = malloc((n - NSAL) * R * sizeof(int));
    int ni = 0;
    for (int i = 0; i < N; i++) {
        const int j = i % n;
        G[i] = j < NSAL ? LP_G_SAL_HI : LP_G_HI;
        if (j >= NSAL) idx[ni++] = i;
    }
    for (int i = ni - 1; i > 0; i--) { /* shuffle: which are small */
        const int t = (int)(test_rand_u64(seed) % (unsigned)(i + 1)), v = idx[i];
        idx[i] = idx[t], idx[t] = v;
    }
    uint8_t *big = calloc(N, 1);
    for (int i = 0; i < ni; i++) {
        const int e = idx[i];
        const float sg = test_rand_u64(seed) & 1 ? 1.0f : -1.0f;
        big[e] = i >= NSMALL;
        T[e] = sg * (float)(i < NSMALL ? 0.01 * (1 + 0.2 * test_randn(seed)) : 1 + 0.2 * test_randn(seed));
    }
    for (int i = 0; i < N; i++)
        if (i % n < NSAL) T[i] = (float)(5 * test_randn(seed));
    const lp_bin_opts bo = {.kind = LP_BIN_BRAQ};
    CHECK_OK(lp_braq_split(T, R, n, G, &bo));
    int wrong = 0, sal_kept = 1;
    for (int i = 0; i < N; i++) {
        if (i % n < NSAL) {
            sal_kept &= G[i] == LP_G_SAL_HI;
            continue;
        }
        wrong += (G[i] == LP_G_HI) != big[i] || (G[i] != LP_G_HI && G[i] != LP_G_LO);
    }
    CHECKF(wrong == 0 && sal_kept, "break point: %d of %d weights on the wrong side of the gap; salient kept %d", wrong,
           ni, sal_kept);

    /* an unaligned gap (2/3 small): within one quantile step (1%) of exact */
    for (int i = 0; i < N; i++)
        if (i % n >= NSAL) {
            const int small = test_rand_u64(seed) % 3 != 0;
            big[i] = !small;
            T[i] = (test_rand_u64(seed) & 1 ? 1.0f : -1.0f) *
                   (float)(small ? 0.01 * (1 + 0.2 * test_randn(seed)) : 1 + 0.2 * test_randn(seed));
            G[i] = LP_G_HI;
        }
    CHECK_OK(lp_braq_split(T, R, n, G, &bo));
    wrong = 0;
    for (int i = 0; i < N; i++)
        if (i % n >= NSAL) wrong += (G[i] == LP_G_HI) != big[i];
    CHECKF(wrong <= N / 100 + 1, "break point, unaligned gap: %d of %d weights on the wrong side", wrong, ni);
    printf("break point: exact on an aligned gap, %d misplaced on an unaligned one (one quantile step: %d)\n", wrong,
           N / 100);

    /* column-group bitmap: bimodal salient weights split by magnitude */
    for (int i = 0; i < N; i++) {
        if (i % n >= NSAL) continue;
        const int large = test_rand_u64(seed) & 1;
        T[i] = (test_rand_u64(seed) & 1 ? 1.0f : -1.0f) * (float)(large ? 5 * (1 + 0.2 * test_randn(seed))
                                                                        : 0.05 * (1 + 0.2 * test_randn(seed)));
        G[i] = LP_G_SAL_HI;
    }
    uint8_t *before = malloc(N);
    memcpy(before, G, N);
    CHECK_OK(lp_braq_cgb(T, R, n, G));
    int nhi = 0, nlo = 0, other_changed = 0;
    float max_lo = 0, min_hi = INFINITY;
    for (int i = 0; i < N; i++) {
        if (i % n >= NSAL) {
            other_changed += G[i] != before[i];
            continue;
        }
        if (G[i] == LP_G_SAL_HI) nhi++, min_hi = fminf(min_hi, fabsf(T[i]));
        else if (G[i] == LP_G_SAL_LO) nlo++, max_lo = fmaxf(max_lo, fabsf(T[i]));
    }
    CHECKF(nhi > 0 && nlo > 0 && nhi + nlo == NSAL * R && max_lo < min_hi && other_changed == 0,
           "column groups: %d high, %d low of %d salient weights, max |T| low %g, min |T| high %g, %d others changed",
           nhi, nlo, NSAL * R, max_lo, min_hi, other_changed);
    free(T), free(G), free(idx), free(big), free(before);
}

/* ---- 5. the methods on one linear ---- */

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

/* tr(D H D^T), D = W - Wh (R x C). */
static double out_err(const float *W, const float *Wh, const float *H, int64_t R, int64_t C) {
    double e = 0;
    double *d = malloc((size_t)C * sizeof *d);
    for (int64_t r = 0; r < R; r++) {
        for (int64_t j = 0; j < C; j++) d[j] = (double)W[r * C + j] - Wh[r * C + j];
        for (int64_t i = 0; i < C; i++) {
            double t = 0;
            for (int64_t j = 0; j < C; j++) t += (double)H[i * C + j] * d[j];
            e += d[i] * t;
        }
    }
    free(d);
    return e;
}

static int popcount_plane(const uint32_t *p, int64_t words) {
    int c = 0;
    for (int64_t i = 0; i < words; i++) c += __builtin_popcount(p[i]);
    return c;
}

/* The binary weight's layout and bytes, from its header fields and the rules
 * of format/binary.h; its dequantization equals lp_binary_value. */
static void check_binary_layout(const char *spec, const lp_binary *b, int ngs, int ngn, bool rc, bool held,
                                int hbits) {
    CHECKF(b->ngs == ngs && b->ngn == ngn && b->rc == rc && b->held == held && b->hbits == hbits,
           "%s: layout ngs %d ngn %d rc %d held %d hbits %d, expected %d %d %d %d %d", spec, b->ngs, b->ngn, b->rc,
           b->held, b->hbits, ngs, ngn, rc, held, hbits);
    const int64_t R = b->rows, C = b->cols, words = C / 32;
    const int npr = b->rc ? 2 * b->ngs + b->ngn : 3 * b->ngs + 2 * b->ngn;
    const int64_t nsal = b->ngs ? popcount_plane(b->colmask, words) : 0, words2 = (nsal + 31) / 32;
    CHECKF(b->words == words && b->npr == npr && b->nblocks == C / b->block && b->nsal == nsal &&
               (b->ngs != 2 || b->words2 == words2) && (!b->rc || b->ncp == 2 * b->ngs + b->ngn),
           "%s: words %lld npr %d nblocks %lld nsal %lld words2 %lld ncp %d disagree with the layout", spec,
           (long long)b->words, b->npr, (long long)b->nblocks, (long long)b->nsal, (long long)b->words2, b->ncp);
    const bool has_b1 = b->ngs > 0 || b->ngn == 2;
    CHECKF(b->s0 && !!b->b1 == has_b1 && !!b->colmask == (b->ngs > 0) && !!b->b2 == (b->ngs == 2) && b->rp &&
               !!b->cp == b->rc && !!b->hmask == b->held && !!b->codes == (b->held && hbits == 8) &&
               !!b->codes16 == (b->held && hbits == 16) && !!b->hq == (b->held && hbits == 8),
           "%s: the arrays present do not follow the layout", spec);
    size_t want = (size_t)(R * words) * 4 + (has_b1 ? (size_t)(R * words) * 4 : 0) +
                  (b->ngs ? (size_t)words * 4 : 0) + (b->ngs == 2 ? (size_t)(R * words2) * 4 : 0) +
                  (size_t)(R * (C / b->block) * npr) * 2 + (b->rc ? (size_t)(b->ncp * C) * 2 : 0) +
                  (b->held ? (size_t)(R * words) * 4 : 0) +           /* hmask */
                  (b->held && hbits == 8 ? (size_t)b->nheld + (size_t)R * 2 * 4 : 0) + /* codes, hq */
                  (b->held && hbits == 16 ? (size_t)b->nheld * 2 : 0);  /* f16 held values */
    CHECKF(lp_binary_nbytes(b) == want, "%s: %zu bytes, the arrays present hold %zu", spec, lp_binary_nbytes(b), want);
    if (b->held) {
        int64_t h = 0;
        for (int64_t r = 0; r < R; r++) h += popcount_plane(b->hmask + r * words, words);
        CHECKF(h == b->nheld, "%s: %lld held bits, nheld %lld", spec, (long long)h, (long long)b->nheld);
    }
}

typedef struct {
    const char *spec;
    bool calibrated;
    int ngs, ngn;
    bool rc, held;
    bool beats_arb;      /* output error below the uncalibrated arb's (see check_methods) */
    bool beats_identity; /* output error below its own with H = I (no calibration information) */
    double rel, out;     /* filled */
    int64_t nheld;       /* filled (pbllm) */
    int hbits;           /* bits of a held weight: 0 means 8 */
} method_case;

/* tr(D H D^T) of spec's result when it is given Hu (evaluated with He). */
static double out_err_with(const char *spec, const float *W, const float *Hu, const float *He, int64_t R, int64_t C) {
    lp_settings *s = settings("%s", spec);
    lp_linear l;
    dense_linear(&l, W, R, C);
    double rel, e = INFINITY;
    if (s && lp_method_compress_linear(s, &l, Hu, NULL, &rel) == LP_OK) {
        float *Wh = lp_linear_to_f32(&l);
        e = out_err(W, Wh, He, R, C);
        free(Wh);
    }
    CHECKF(e < INFINITY, "%s: %s", spec, lp_last_error());
    lp_linear_free(&l);
    lp_settings_free(s);
    return e;
}

/* Compress W (R x C) with H under mc->spec; fills its errors and checks
 * everything that holds for one method alone. */
static void run_method(method_case *mc, const float *W, const float *H, int64_t R, int64_t C) {
    lp_settings *s = settings("%s", mc->spec);
    lp_linear l;
    dense_linear(&l, W, R, C);
    double rel = -1;
    mc->rel = mc->out = INFINITY;
    if (!s) goto done;
    lp_status st = lp_method_compress_linear(s, &l, mc->calibrated ? H : NULL, NULL, &rel);
    CHECKF(st == LP_OK, "%s: %s", mc->spec, lp_last_error());
    if (st != LP_OK) goto done;
    const lp_binary *b = lp_linear_data(&l, &lp_format_binary);
    CHECKF(b != NULL, "%s: the result is not one binary part", mc->spec);
    float *Wh = lp_linear_to_f32(&l);
    int nonfinite = 0, undefined = 0;
    for (int64_t i = 0; i < R * C; i++) nonfinite += !isfinite(Wh[i]);
    CHECKF(nonfinite == 0, "%s: %d dequantized weights are not finite", mc->spec, nonfinite);
    mc->rel = rel;
    mc->out = out_err(W, Wh, H, R, C);
    if (b) {
        const int hbits = mc->hbits ? mc->hbits : 8;
        check_binary_layout(mc->spec, b, mc->ngs, mc->ngn, mc->rc, mc->held, hbits);
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < C; c++) undefined += Wh[r * C + c] != lp_binary_value(b, r, c);
        CHECKF(undefined == 0, "%s: %d dequantized weights differ from lp_binary_value", mc->spec, undefined);
        /* papers' bits: 1 per weight, +1 per weight of a salient column, +7 per 8-bit held weight (+15 f16) */
        const double pb = lp_linear_paper_bits(&l) / (double)(R * C);
        const double want = 1.0 + (double)(b->nsal * R) / (double)(R * C) +
                            (double)(hbits - 1) * (double)b->nheld / (double)(R * C);
        CHECKF(fabs(pb - want) < 1e-9, "%s: %.6f paper bits per weight, expected %.6f (nsal %lld, nheld %lld)",
               mc->spec, pb, want, (long long)b->nsal, (long long)b->nheld);
        CHECKF(lp_linear_nbytes(&l) == lp_binary_nbytes(b), "%s: linear bytes %zu, binary bytes %zu", mc->spec,
               lp_linear_nbytes(&l), lp_binary_nbytes(b));
        if (b->ngs) CHECKF(b->nsal > 0 && b->nsal <= 49 * b->nblocks, "%s: %lld salient columns", mc->spec,
                           (long long)b->nsal);
        mc->nheld = b->nheld;
        /* by magnitude, the held weights are exactly the largest |w| */
        if (mc->held && strstr(mc->spec, "magnitude")) {
            float min_held = INFINITY, max_bin = 0;
            for (int64_t r = 0; r < R; r++)
                for (int64_t c = 0; c < C; c++) {
                    const float a = fabsf(W[r * C + c]);
                    if (lp_binary_bit(b->hmask + r * b->words, c)) min_held = fminf(min_held, a);
                    else max_bin = fmaxf(max_bin, a);
                }
            CHECKF(min_held > max_bin, "%s: a held |w| %g is below a binarized |w| %g", mc->spec, min_held, max_bin);
        }
    }
    free(Wh);
done:
    lp_linear_free(&l);
    lp_settings_free(s);
}

static void check_methods(unsigned long long *seed) {
    enum { R = 64, C = 256, NT = 512 };
    float *W = malloc(R * C * sizeof(float)), *X = malloc(NT * C * sizeof(float)), *H = malloc(C * C * sizeof(float));
    float scale[C];
    for (int j = 0; j < C; j++) scale[j] = (float)exp(0.5 * test_randn(seed)) * (j % 37 == 5 ? 6.0f : 1.0f);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < C; j++) W[r * C + j] = (float)(0.02 * test_randn(seed)) * (j % 53 == 7 ? 3.0f : 1.0f);
    for (int t = 0; t < NT; t++) { /* correlated inputs: a shared factor and an AR(1) walk over channels */
        const double g = test_randn(seed);
        double ar = 0;
        for (int j = 0; j < C; j++) {
            ar = 0.6 * ar + 0.8 * test_randn(seed);
            X[t * C + j] = (float)(scale[j] * (0.5 * g + ar));
        }
    }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double s = 0;
            for (int t = 0; t < NT; t++) s += (double)X[t * C + i] * X[t * C + j];
            H[i * C + j] = (float)(2.0 * s / NT);
        }

    /* sign: the 1-bit baseline */
    lp_settings *ss = settings("sign");
    lp_linear l;
    dense_linear(&l, W, R, C);
    double sign_rel = INFINITY, sign_out = INFINITY;
    if (ss) {
        CHECK_OK(lp_method_compress_linear(ss, &l, NULL, NULL, &sign_rel));
        float *Wh = lp_linear_to_f32(&l);
        sign_out = out_err(W, Wh, H, R, C);
        free(Wh);
    }
    lp_linear_free(&l);
    lp_settings_free(ss);

    /* What the comparisons rest on. Every method has less weight error than
     * sign, every calibrated one less output error. Against the uncalibrated
     * arb, whose format is as rich (a group bit per weight, two planes on
     * salient columns) and whose searches fit w itself, only PB-LLM (GPTQ's
     * full error feedback) wins by a wide margin whatever the data; ARB-X and
     * ARB-RC win here by ~15% (on other random draws by 0.5% to -8%). BiLLM
     * does not: as its authors' code does (BiLLM @f7f9e14 bigptq.py,
     * utils/autosearch.py), it searches salient columns and the break point
     * on T = w^2 / d^2, i.e. it fits T rather than w, and propagates errors
     * only past a whole block (each column's error scaled by its own d), so
     * on these inputs its output error is about twice arb's, and at 128
     * columns per block even about that of BiLLM on H = I. What calibration
     * must do for every method is checked instead: the same method given
     * H = I (no calibration information: T = w^2, no error feedback, S = I)
     * does worse on the real H -- for BiLLM at 32 columns per block, where
     * the margin is wide (at 128 it is -11% to +80% across draws). */
    method_case mc[] = {
        {"arb", false, 2, 2, false, false, false, false, 0, 0, 0, 0},
        {"billm", true, 1, 2, false, false, false, false, 0, 0, 0, 0},
        {"billm bin-block=32", true, 1, 2, false, false, false, true, 0, 0, 0, 0},
        {"arb-x", true, 2, 2, false, false, true, true, 0, 0, 0, 0},
        {"arb-rc", true, 2, 2, true, false, true, true, 0, 0, 0, 0},
        {"pbllm salient=0.1", true, 0, 1, false, true, true, true, 0, 0, 0, 0},
        {"pbllm salient=0.2", true, 0, 1, false, true, true, true, 0, 0, 0, 0},
        {"pbllm salient=0.1 salient-by=magnitude", true, 0, 1, false, true, false, false, 0, 0, 0, 0},
        {"pbllm salient=0.1 salient-bits=16", true, 0, 1, false, true, true, true, 0, 0, 0, 16},
    };
    enum { PB1 = 5, PB2 = 6, PB16 = 8 };
    const int NM = (int)(sizeof mc / sizeof *mc);
    float *I = calloc(C * C, sizeof(float));
    for (int i = 0; i < C; i++) I[i * C + i] = 1.0f;
    printf("%-40s %10s %14s %14s\n", "method (64 x 256)", "rel. err", "tr(D H D^T)", "given H = I");
    printf("%-40s %10.4f %14.6g\n", "sign", sign_rel, sign_out);
    for (int i = 0; i < NM; i++) {
        run_method(&mc[i], W, H, R, C);
        const double id = mc[i].beats_identity ? out_err_with(mc[i].spec, W, I, H, R, C) : NAN;
        printf("%-40s %10.4f %14.6g %14.6g\n", mc[i].spec, mc[i].rel, mc[i].out, id);
        CHECKF(mc[i].rel < sign_rel, "%s: weight error %.4f not below sign's %.4f", mc[i].spec, mc[i].rel, sign_rel);
        if (mc[i].calibrated)
            CHECKF(mc[i].out < sign_out, "%s: output error %.6g not below sign's %.6g", mc[i].spec, mc[i].out, sign_out);
        if (mc[i].beats_arb)
            CHECKF(mc[i].out < mc[0].out, "%s: output error %.6g not below arb's %.6g", mc[i].spec, mc[i].out,
                   mc[0].out);
        if (mc[i].beats_identity)
            CHECKF(mc[i].out < id, "%s: output error %.6g not below its own given H = I, %.6g", mc[i].spec, mc[i].out,
                   id);
    }
    CHECKF(mc[PB2].out < mc[PB1].out, "pbllm: 20%% held gives output error %.6g, not below 10%%'s %.6g", mc[PB2].out,
           mc[PB1].out);
    /* the same held weights at f16 instead of 8-bit codes: a finer grid, so less output error (the held set is
     * chosen before the loop from the same saliencies, so both hold the same count) */
    CHECKF(mc[PB16].out < mc[PB1].out, "pbllm: salient-bits=16 gives output error %.6g, not below 8 bits' %.6g",
           mc[PB16].out, mc[PB1].out);
    CHECKF(mc[PB16].nheld == mc[PB1].nheld, "pbllm: %lld weights held at 16 bits, %lld at 8", (long long)mc[PB16].nheld,
           (long long)mc[PB1].nheld);
    for (int i = PB1; i < NM; i++) {
        const double F = i == PB2 ? 0.2 : 0.1;
        CHECKF(mc[i].nheld >= (int64_t)floor(F * R * C) - 1 && mc[i].nheld <= F * R * C + 1,
               "%s: %lld weights held, expected %.1f", mc[i].spec, (long long)mc[i].nheld, F * R * C);
    }
    free(I);

    /* ---- refused ---- */
    lp_settings *s = NULL;
    static const char *const bad[] = {"pbllm salient=0.6", "pbllm salient=0", "pbllm salient-bits=4",
                                      "pbllm salient-by=foo", "billm bin-block=16", "arb arb-iters=-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lp_status st = lp_settings_parse(bad[i], &s);
        CHECKF(st == LP_ERR_ARG && s == NULL, "\"%s\" accepted (status %d)", bad[i], (int)st);
        lp_settings_free(s);
        s = NULL;
    }
    CHECK(lp_settings_parse("pbllm salient-by=foo", &s) == LP_ERR_ARG && strstr(lp_last_error(), "hessian|magnitude"));
    CHECK(lp_settings_parse("pbllm salient-bits=4", &s) == LP_ERR_ARG && strstr(lp_last_error(), "salient-bits"));

    /* a width the block does not divide: named, the linear left dense */
    enum { C2 = 96 };
    float *W2 = malloc(R * C2 * sizeof(float)), *H2 = malloc(C2 * C2 * sizeof(float));
    for (int i = 0; i < C2 * C2; i++) H2[i] = H[(i / C2) * C + i % C2];
    memcpy(W2, W, R * C2 * sizeof(float)); /* any finite values */
    static const char *const wide[] = {"billm", "arb", "arb-x", "arb-rc", "billm bin-block=64"};
    for (size_t i = 0; i < sizeof wide / sizeof *wide; i++) {
        s = settings("%s", wide[i]);
        dense_linear(&l, W2, R, C2);
        double e;
        lp_status st = s ? lp_method_compress_linear(s, &l, H2, NULL, &e) : LP_ERR_ARG;
        CHECKF(st == LP_ERR_ARG && strstr(lp_last_error(), "96") && strstr(lp_last_error(), "bin-block") &&
                   lp_linear_is(&l, &lp_format_dense),
               "%s on a 64 x 96 linear: status %d, \"%s\"", wide[i], (int)st, lp_last_error());
        lp_linear_free(&l);
        lp_settings_free(s);
    }
    /* ... and one it divides works */
    s = settings("billm bin-block=32");
    dense_linear(&l, W2, R, C2);
    double e2;
    if (s) CHECK_OK(lp_method_compress_linear(s, &l, H2, NULL, &e2));
    CHECK(lp_linear_data(&l, &lp_format_binary) != NULL);
    lp_linear_free(&l);
    lp_settings_free(s);

    /* calibrated methods without a Hessian */
    static const char *const calib[] = {"billm", "arb-x", "arb-rc", "pbllm"};
    for (size_t i = 0; i < sizeof calib / sizeof *calib; i++) {
        s = settings("%s", calib[i]);
        CHECKF(s && lp_settings_needs_calib(s), "%s does not say it needs calibration", calib[i]);
        dense_linear(&l, W, R, C);
        double e;
        lp_status st = s ? lp_method_compress_linear(s, &l, NULL, NULL, &e) : LP_ERR_ARG;
        CHECKF(st == LP_ERR_ARG && strstr(lp_last_error(), "calib") && lp_linear_is(&l, &lp_format_dense),
               "%s without a Hessian: status %d, \"%s\"", calib[i], (int)st, lp_last_error());
        lp_linear_free(&l);
        lp_settings_free(s);
    }
    s = settings("arb");
    CHECK(s && !lp_settings_needs_calib(s));
    lp_settings_free(s);
    free(W), free(X), free(H), free(W2), free(H2);
}

/* ---- 6. the pipeline ---- */

static lp_model *load(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_data("models/"));
    strncat(dir, name, sizeof dir - strlen(dir) - 1);
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(dir, &m));
    return m;
}

/* ||logits - ref|| / ||ref|| on ids; *finite = 0 when any logit is not finite. */
static double logit_err(lp_model *q, const float *ref, const int32_t *ids, int64_t T, int *finite) {
    const lp_config *c = lp_model_config(q);
    float *out = malloc((size_t)(T * c->vocab) * sizeof(float));
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(q, T, T, &ctx));
    CHECK_OK(lp_forward(ctx, ids, T, out, true));
    double num = 0, den = 0;
    *finite = 1;
    for (int64_t i = 0; i < T * c->vocab; i++) {
        *finite &= isfinite(out[i]) != 0;
        num += ((double)out[i] - ref[i]) * ((double)out[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    lp_ctx_free(ctx);
    free(out);
    return sqrt(num / den);
}

/* The block-input pipeline written out: all four Hessians of block b from
 * one run of the uncompressed block per window, then every linear. */
typedef struct {
    double *H[4]; /* q/k/v, o, gate/up, down inputs */
    int64_t cols[4];
} hess4;

static int slot(int k) { return k == LP_Q ? 0 : k == LP_O ? 1 : k == LP_GATE ? 2 : k == LP_DOWN ? 3 : -1; }

static int grab_all(void *ud, int k, const float *X, int64_t T, int64_t cols) {
    hess4 *h = ud;
    const int g = slot(k);
    CHECKF(g >= 0 && cols == h->cols[g], "capture of linear %d with %lld columns", k, (long long)cols);
    if (g < 0 || cols != h->cols[g]) return 1;
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < cols; i++) {
            const double xi = X[t * cols + i];
            for (int64_t j = 0; j < cols; j++) h->H[g][i * cols + j] += xi * X[t * cols + j];
        }
    return 0;
}

static void rerun_block_input(lp_model *m, const lp_calib *cal, const lp_settings *s) {
    static const int lins[4][3] = {{LP_K, LP_V, LP_Q}, {LP_O, -1, -1}, {LP_UP, LP_GATE, -1}, {LP_DOWN, -1, -1}};
    const lp_config *c = lp_model_config(m);
    const int64_t N = cal->nsamples, L = cal->seqlen, D = c->dim;
    float *X = malloc((size_t)(N * L * D) * sizeof(float)), *T = malloc((size_t)(L * D) * sizeof(float));
    for (int64_t i = 0; i < N; i++) lp_embed_tokens(m, cal->tokens + i * L, L, X + i * L * D);
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, L, L, &ctx));
    for (int64_t b = 0; b < c->n_layers && ctx; b++) {
        hess4 h = {{0}, {D, m->layers[b].lin[LP_O].cols, D, m->layers[b].lin[LP_DOWN].cols}};
        for (int g = 0; g < 4; g++) h.H[g] = calloc((size_t)(h.cols[g] * h.cols[g]), sizeof(double));
        const lp_block_hooks hooks = {.capture = grab_all, .ud = &h};
        for (int64_t i = 0; i < N; i++) {
            memcpy(T, X + i * L * D, (size_t)(L * D) * sizeof(float));
            CHECK_OK(lp_block_forward(ctx, b, T, L, &hooks));
        }
        for (int g = 0; g < 4; g++) {
            const int64_t n = h.cols[g];
            float *Hf = malloc((size_t)(n * n) * sizeof(float));
            for (int64_t i = 0; i < n * n; i++) Hf[i] = (float)(2.0 * h.H[g][i] / (double)(N * L));
            for (int k = 0; k < 3 && lins[g][k] >= 0; k++) {
                double err;
                CHECK_OK(lp_method_compress_linear(s, &m->layers[b].lin[lins[g][k]], Hf, NULL, &err));
            }
            free(Hf);
            free(h.H[g]);
        }
        for (int64_t i = 0; i < N; i++) CHECK_OK(lp_block_forward(ctx, b, X + i * L * D, L, NULL));
    }
    lp_ctx_free(ctx);
    free(X);
    free(T);
}

static void check_pipeline(void) {
    lp_model *m = load("tiny-llama3");
    if (!m) return;
    const lp_config cfg = *lp_model_config(m), *c = &cfg;
    unsigned long long seed = 4242;
    int32_t stream[4096], ids[64];
    for (int i = 0; i < 4096; i++) stream[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)c->vocab);
    for (int i = 0; i < 64; i++) ids[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)c->vocab);
    float *ref = malloc((size_t)(64 * c->vocab) * sizeof(float));
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, 64, 64, &ctx));
    CHECK_OK(lp_forward(ctx, ids, 64, ref, true));
    lp_ctx_free(ctx);
    lp_model_free(m);
    int32_t *win = NULL;
    CHECK_OK(lp_calib_sample(stream, 4096, 16, 48, 9, &win));
    lp_calib cal = {win, 16, 48};

    static const char *const specs[] = {"sign",
                                        "billm bin-block=32",
                                        "arb bin-block=32",
                                        "arb-x bin-block=32",
                                        "arb-rc bin-block=32",
                                        "pbllm",
                                        "pbllm salient-by=magnitude"};
    const int NS = (int)(sizeof specs / sizeof *specs);
    double err[8] = {0};
    lp_model *pb = NULL;
    for (int v = 0; v < NS; v++) {
        m = load("tiny-llama3");
        lp_settings *s = settings("%s", specs[v]);
        lp_quant_params p = {.method = s, .calib = &cal};
        lp_status st = s ? lp_model_quantize(m, &p) : LP_ERR_ARG;
        CHECKF(st == LP_OK, "tiny-llama3 %s: %s", specs[v], lp_last_error());
        int finite = 0;
        err[v] = st == LP_OK ? logit_err(m, ref, ids, 64, &finite) : INFINITY;
        CHECKF(finite, "tiny-llama3 %s: non-finite logits", specs[v]);
        if (st == LP_OK && v > 0) {
            int binary = 0;
            double bits = 0;
            for (int64_t l = 0; l < c->n_layers; l++)
                for (int k = 0; k < LP_NLIN; k++) {
                    binary += lp_linear_data(&m->layers[l].lin[k], &lp_format_binary) != NULL;
                    bits += lp_linear_paper_bits(&m->layers[l].lin[k]);
                }
            lp_model_size sz;
            lp_model_size_get(m, &sz);
            CHECKF(binary == 7 * c->n_layers, "%s: %d of %lld linears binary", specs[v], binary,
                   (long long)(7 * c->n_layers));
            CHECKF(fabs(sz.linear_paper_bits - bits) <= 1e-9 * bits,
                   "%s: model size says %.1f paper bits, the linears %.1f", specs[v], sz.linear_paper_bits, bits);
        }
        printf("tiny-llama3 %-28s logits rel. error %.4f\n", specs[v], err[v]);
        if (v > 0) CHECKF(err[v] < err[0], "%s: logits error %.4f not below sign's %.4f", specs[v], err[v], err[0]);
        lp_settings_free(s);
        if (v == 5) pb = m;
        else lp_model_free(m);
    }

    /* PB-LLM's pipeline equals the re-run written above */
    lp_model *r = load("tiny-llama3");
    lp_settings *s = settings("pbllm");
    if (r && s && pb) {
        rerun_block_input(r, &cal, s);
        int64_t diff = 0, total = 0;
        for (int64_t l = 0; l < c->n_layers; l++)
            for (int k = 0; k < LP_NLIN; k++) {
                float *a = lp_linear_to_f32(&pb->layers[l].lin[k]), *b = lp_linear_to_f32(&r->layers[l].lin[k]);
                CHECK(lp_linear_data(&r->layers[l].lin[k], &lp_format_binary) != NULL);
                const int64_t n = r->layers[l].lin[k].rows * r->layers[l].lin[k].cols;
                for (int64_t i = 0; a && b && i < n; i++) diff += a[i] != b[i];
                total += n;
                free(a), free(b);
            }
        CHECKF(diff < total / 100, "pbllm: %lld of %lld weights differ between the pipeline and the re-run",
               (long long)diff, (long long)total);
        printf("pbllm block-input pipeline vs re-run: %lld of %lld weights differ\n", (long long)diff, (long long)total);
    }
    lp_settings_free(s);
    lp_model_free(r);
    lp_model_free(pb);
    free(win);
    free(ref);
}

int main(void) {
    unsigned long long seed = 2402;
    check_braq_definition(&seed);
    check_refinements(&seed);
    check_masks(&seed);
    check_searches(&seed);
    check_methods(&seed);
    check_pipeline();
    TEST_DONE();
}
