/*
 * test_gptq.c - GPTQ for one linear (src/quant/gptq.c).
 *
 * Checks:
 *  1. parity with a plain re-implementation written below: unblocked (every
 *     column's error is pushed onto all later columns at once), in double,
 *     with an explicit inverse from a hand-written Cholesky. It follows
 *     gptq.py fasterquant step by step, including the group-parameter quirk
 *     (params of a group starting at column c come from W as it was at the
 *     start of c's block of `block` columns). Only the min-max quantizer is
 *     shared (lp_qparams_minmax, tested in test_qgroup.c against its own
 *     re-implementation). Over bits 2/3/4/8, groups 32/64/per-channel,
 *     sym/asym, act_order off/on, two shapes: >= 99.5% of the integer codes
 *     agree and the H-weighted error tr((W-Q) H (W-Q)^T) within 1e-3 relative;
 *     the same for several block sizes;
 *  2. GPTQ's H-weighted error is below RTN's in every configuration;
 *  3. dead inputs (zero rows/columns of H) give exactly zero weights there;
 *  4. an indefinite H takes the damping fallback (and damp = 0 too), with
 *     finite scales and weights; too few retries is LP_ERR_NUMERIC;
 *  5. NaN in W, Inf in H, bad params are rejected with a message;
 *  6. the same bits with 1 and 2 OpenMP threads; with 1 and 2 OpenBLAS
 *     threads >= 99.9% of the codes and the loss within 1e-4 (OpenBLAS
 *     rounds differently with its thread count; see test_threads).
 */
#include "core/half.h"
#include "core/status_impl.h"
#include "quant/gptq.h"
#include "format/qgroup.h"
#include "quant/rtn.h"
#include "test.h"

#include <cblas.h>
#include <omp.h>
#include <stdint.h>

/* R = rows (outputs), C = cols (inputs); W is R x C row-major, H is C x C. */

/* ---------------- test data ---------------- */

/* Correlated inputs X (n x C): neighbouring channels share noise, four
 * shared factors, and per-channel scales spread over ~e^+-1 so that diag(H)
 * varies and act_order matters. Returns H = 2 X^T X / n as float. */
static float *make_hessian(int64_t C, int64_t n, unsigned long long seed) {
    unsigned long long s = seed;
    double *Xt = malloc((size_t)(n * C) * sizeof *Xt); /* X transposed: C x n */
    float *sc = malloc((size_t)C * sizeof *sc);
    for (int64_t c = 0; c < C; c++) sc[c] = expf(0.5f * test_randn(&s));
    for (int64_t t = 0; t < n; t++) {
        float f[4], prev = 0.0f;
        for (int k = 0; k < 4; k++) f[k] = test_randn(&s);
        for (int64_t c = 0; c < C; c++) {
            float z = test_randn(&s);
            Xt[c * n + t] = sc[c] * (z + 0.7f * prev + 0.5f * f[c % 4]);
            prev = z;
        }
    }
    float *H = malloc((size_t)(C * C) * sizeof *H);
    for (int64_t a = 0; a < C; a++)
        for (int64_t b = a; b < C; b++) {
            double acc = 0.0;
            for (int64_t t = 0; t < n; t++) acc += Xt[a * n + t] * Xt[b * n + t];
            H[a * C + b] = H[b * C + a] = (float)(2.0 * acc / (double)n);
        }
    free(Xt);
    free(sc);
    return H;
}

static float *make_weights(int64_t R, int64_t C, unsigned long long seed) {
    unsigned long long s = seed;
    float *W = malloc((size_t)(R * C) * sizeof *W);
    for (int64_t i = 0; i < R * C; i++) {
        W[i] = 0.02f * test_randn(&s);
        if (test_rand_u64(&s) % 97 == 0) W[i] *= 6.0f; /* a few outliers */
    }
    return W;
}

static float *dup_f(const float *a, int64_t n) {
    float *b = malloc((size_t)n * sizeof *b);
    memcpy(b, a, (size_t)n * sizeof *b);
    return b;
}

/* tr((W - Q) H (W - Q)^T) in double; Q is double or float (one is NULL). */
static double h_error(const float *W, const double *Qd, const float *Qf, const float *H, int64_t R,
                      int64_t C) {
    double tot = 0.0, *d = malloc((size_t)C * sizeof *d);
    for (int64_t r = 0; r < R; r++) {
        for (int64_t c = 0; c < C; c++)
            d[c] = (double)W[r * C + c] - (Qd ? Qd[r * C + c] : (double)Qf[r * C + c]);
        for (int64_t a = 0; a < C; a++) {
            double acc = 0.0;
            for (int64_t b = 0; b < C; b++) acc += (double)H[a * C + b] * d[b];
            tot += d[a] * acc;
        }
    }
    free(d);
    return tot;
}

/* ---------------- the plain re-implementation ---------------- */

/* Lower Cholesky factor of the n x n SPD matrix A (in place, row-major;
 * the upper triangle is zeroed). Returns 0 if A is not positive definite. */
static int naive_cholesky(double *A, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double d = A[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= A[j * n + k] * A[j * n + k];
        if (!(d > 0.0)) return 0;
        d = sqrt(d);
        A[j * n + j] = d;
        for (int64_t i = j + 1; i < n; i++) {
            double v = A[i * n + j];
            for (int64_t k = 0; k < j; k++) v -= A[i * n + k] * A[j * n + k];
            A[i * n + j] = v / d;
        }
        for (int64_t i = 0; i < j; i++) A[i * n + j] = 0.0;
    }
    return 1;
}

/* U (upper) with A^-1 = U^T U, from scratch: L = chol(A), Y = L^-1 by
 * forward substitution (kept transposed, Yt = Y^T, for contiguous loops),
 * A^-1 = Y^T Y, then U = chol(A^-1)^T. */
static int naive_hinv(const double *A, int64_t n, double *U) {
    double *L = malloc((size_t)(n * n) * sizeof *L), *Yt = calloc((size_t)(n * n), sizeof *Yt);
    memcpy(L, A, (size_t)(n * n) * sizeof *L);
    int ok = naive_cholesky(L, n);
    if (ok) {
        for (int64_t col = 0; col < n; col++) /* solve L y = e_col; y = Yt[col][.] */
            for (int64_t i = col; i < n; i++) {
                double v = i == col ? 1.0 : 0.0;
                for (int64_t k = col; k < i; k++) v -= L[i * n + k] * Yt[col * n + k];
                Yt[col * n + i] = v / L[i * n + i];
            }
        for (int64_t a = 0; a < n; a++) /* Ainv[a][b] = sum_k Y[k][a] Y[k][b], into L */
            for (int64_t b = a; b < n; b++) {
                double acc = 0.0;
                for (int64_t k = b; k < n; k++) acc += Yt[a * n + k] * Yt[b * n + k];
                L[a * n + b] = L[b * n + a] = acc;
            }
        ok = naive_cholesky(L, n);
        for (int64_t a = 0; a < n; a++)
            for (int64_t b = 0; b < n; b++) U[a * n + b] = L[b * n + a];
    }
    free(L);
    free(Yt);
    return ok;
}

/* fasterquant without lazy batches, in double. codes/Q in original column
 * order; group = -1 for per-channel. Returns 0 if the factorization fails. */
static int naive_gptq(const float *W, const float *H, int64_t R, int64_t C, int bits, int group,
                      int sym, int act_order, double damp, int block, int *codes, double *Q,
                      double *loss) {
    if (group < 0 || group >= C) group = (int)C;
    int grouped = group < C, maxq = (1 << bits) - 1;
    int64_t G = (C + group - 1) / group;
    double *Wd = malloc((size_t)(R * C) * sizeof *Wd), *Hd = malloc((size_t)(C * C) * sizeof *Hd);
    double *Wp = malloc((size_t)(R * C) * sizeof *Wp), *Hp = malloc((size_t)(C * C) * sizeof *Hp);
    double *U = malloc((size_t)(C * C) * sizeof *U), *S = malloc((size_t)(R * C) * sizeof *S);
    float *gs = malloc((size_t)(R * G) * sizeof *gs), *tmp = malloc((size_t)C * sizeof *tmp);
    int *gz = malloc((size_t)(R * G) * sizeof *gz);
    float *cur_s = malloc((size_t)R * sizeof *cur_s);
    int *cur_z = malloc((size_t)R * sizeof *cur_z);
    int64_t *perm = malloc((size_t)C * sizeof *perm);
    for (int64_t i = 0; i < R * C; i++) Wd[i] = W[i];
    for (int64_t i = 0; i < C * C; i++) Hd[i] = H[i];

    /* per-channel params: the original rows, before the dead columns go */
    if (!grouped)
        for (int64_t r = 0; r < R; r++)
            LP_ASSERT(lp_qparams_minmax(W + r * C, C, bits, sym, &cur_s[r], &cur_z[r]) == LP_OK);
    for (int64_t i = 0; i < C; i++)
        if (Hd[i * C + i] == 0.0) {
            Hd[i * C + i] = 1.0;
            for (int64_t r = 0; r < R; r++) Wd[r * C + i] = 0.0;
        }
    if (grouped && act_order) /* static groups of the (dead-zeroed) original columns */
        for (int64_t r = 0; r < R; r++)
            for (int64_t g = 0; g < G; g++) {
                int64_t c0 = g * group, n = C - c0 < group ? C - c0 : group;
                for (int64_t c = 0; c < n; c++) tmp[c] = (float)Wd[r * C + c0 + c];
                LP_ASSERT(lp_qparams_minmax(tmp, n, bits, sym, &gs[r * G + g], &gz[r * G + g]) ==
                          LP_OK);
            }
    for (int64_t i = 0; i < C; i++) perm[i] = i;
    if (act_order) /* insertion sort: stable, diag descending */
        for (int64_t i = 1; i < C; i++) {
            int64_t v = perm[i], j = i;
            while (j > 0 && Hd[perm[j - 1] * C + perm[j - 1]] < Hd[v * C + v]) {
                perm[j] = perm[j - 1];
                j--;
            }
            perm[j] = v;
        }
    double mean = 0.0;
    for (int64_t i = 0; i < C; i++) mean += Hd[i * C + i] / (double)C;
    for (int64_t a = 0; a < C; a++)
        for (int64_t b = 0; b < C; b++) Hp[a * C + b] = Hd[perm[a] * C + perm[b]];
    for (int64_t a = 0; a < C; a++) Hp[a * C + a] += damp * mean;
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++) Wp[r * C + k] = Wd[r * C + perm[k]];
    int ok = naive_hinv(Hp, C, U);
    *loss = 0.0;
    for (int64_t i = 0; ok && i < C; i++) {
        if (i % block == 0) memcpy(S, Wp, (size_t)(R * C) * sizeof *S); /* W at block start */
        double d = U[i * C + i];
        for (int64_t r = 0; r < R; r++) {
            float s;
            int z;
            if (!grouped) {
                s = cur_s[r];
                z = cur_z[r];
            } else if (act_order) {
                s = gs[r * G + perm[i] / group];
                z = gz[r * G + perm[i] / group];
            } else {
                if (i % group == 0) {
                    int64_t n = C - i < group ? C - i : group;
                    for (int64_t c = 0; c < n; c++) tmp[c] = (float)S[r * C + i + c];
                    LP_ASSERT(lp_qparams_minmax(tmp, n, bits, sym, &cur_s[r], &cur_z[r]) == LP_OK);
                }
                s = cur_s[r];
                z = cur_z[r];
            }
            double w = Wp[r * C + i], qi = rint(w / s) + z;
            qi = qi < 0 ? 0 : qi > maxq ? maxq : qi;
            double q = s * (qi - z), err = (w - q) / d;
            *loss += (w - q) * (w - q) / (d * d) / 2;
            for (int64_t j = i + 1; j < C; j++) Wp[r * C + j] -= err * U[i * C + j];
            codes[r * C + perm[i]] = (int)qi;
            Q[r * C + perm[i]] = q;
        }
    }
    free(Wd); free(Hd); free(Wp); free(Hp); free(U); free(S);
    free(gs); free(tmp); free(gz); free(cur_s); free(cur_z); free(perm);
    return ok;
}

/* ---------------- 1 + 2: parity with the plain version, and RTN ---------------- */

typedef struct {
    double agree, err_lib, err_naive, err_rtn, loss_lib, loss_naive;
} run_result;

static int run_one(const float *W, const float *H, int64_t R, int64_t C, int bits, int group,
                   int sym, int act_order, int block, run_result *res) {
    lp_qgroup q, qr;
    if (lp_qgroup_init(&q, R, C, bits, group, sym) != LP_OK) return 0;
    CHECK_OK(lp_qgroup_init(&qr, R, C, bits, group, sym));
    lp_gptq_params p = lp_gptq_default_params();
    p.act_order = act_order;
    p.block = block;
    lp_gptq_stats st;
    float *Hw = dup_f(H, C * C);
    lp_status s = lp_gptq_quantize(W, Hw, &p, &q, &st);
    CHECKF(s == LP_OK, "%s", lp_last_error());
    float *Ql = malloc((size_t)(R * C) * sizeof *Ql);
    double *Qn = malloc((size_t)(R * C) * sizeof *Qn);
    int *codes = malloc((size_t)(R * C) * sizeof *codes);
    lp_qgroup_dequant(&q, 0, R, Ql);
    CHECK(naive_gptq(W, H, R, C, bits, group, sym, act_order, p.damp, block, codes, Qn,
                     &res->loss_naive));
    int64_t same = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) same += (int)lp_qgroup_get(&q, r, c) == codes[r * C + c];
    res->agree = (double)same / (double)(R * C);
    res->err_lib = h_error(W, NULL, Ql, H, R, C);
    res->err_naive = h_error(W, Qn, NULL, H, R, C);
    res->loss_lib = st.loss;
    CHECK_OK(lp_rtn_quantize(W, &qr));
    lp_qgroup_dequant(&qr, 0, R, Ql);
    res->err_rtn = h_error(W, NULL, Ql, H, R, C);
    free(Hw); free(Ql); free(Qn); free(codes);
    lp_qgroup_free(&q);
    lp_qgroup_free(&qr);
    return s == LP_OK;
}

static void test_parity_and_rtn(void) {
    const int64_t shapes[2][2] = {{48, 160}, {64, 256}};
    const int bitss[4] = {2, 3, 4, 8}, groups[3] = {32, 64, -1};
    double worst_agree = 1.0, worst_rel = 0.0, worst_ratio = 0.0;
    int n = 0;
    for (int sh = 0; sh < 2; sh++) {
        int64_t R = shapes[sh][0], C = shapes[sh][1];
        float *H = make_hessian(C, 2 * C, 1000 + (unsigned long long)sh);
        float *W = make_weights(R, C, 2000 + (unsigned long long)sh);
        for (int bi = 0; bi < 4; bi++)
            for (int gi = 0; gi < 3; gi++)
                for (int sym = 0; sym <= 1; sym++)
                    for (int ao = 0; ao <= 1; ao++) {
                        run_result x;
                        int b = bitss[bi], g = groups[gi];
                        if (!run_one(W, H, R, C, b, g, sym, ao, 128, &x)) continue;
                        double rel = fabs(x.err_lib - x.err_naive) / x.err_naive;
                        CHECKF(x.agree >= 0.995, "%lldx%lld b%d g%d sym%d ao%d: codes agree %.4f",
                               (long long)R, (long long)C, b, g, sym, ao, x.agree);
                        CHECKF(rel <= 1e-3, "%lldx%lld b%d g%d sym%d ao%d: H-error %.6g vs %.6g",
                               (long long)R, (long long)C, b, g, sym, ao, x.err_lib, x.err_naive);
                        CHECKF(fabs(x.loss_lib - x.loss_naive) <= 1e-3 * x.loss_naive,
                               "%lldx%lld b%d g%d sym%d ao%d: loss %.6g vs %.6g", (long long)R,
                               (long long)C, b, g, sym, ao, x.loss_lib, x.loss_naive);
                        CHECKF(x.err_lib < x.err_rtn, "%lldx%lld b%d g%d sym%d ao%d: GPTQ %.6g "
                               ">= RTN %.6g", (long long)R, (long long)C, b, g, sym, ao,
                               x.err_lib, x.err_rtn);
                        worst_agree = x.agree < worst_agree ? x.agree : worst_agree;
                        worst_rel = rel > worst_rel ? rel : worst_rel;
                        double ratio = x.err_lib / x.err_rtn;
                        worst_ratio = ratio > worst_ratio ? ratio : worst_ratio;
                        n++;
                    }
        free(H);
        free(W);
    }
    CHECK(n == 96);
    printf("parity: %d configs, min code agreement %.4f, max rel H-error diff %.2e, "
           "max GPTQ/RTN H-error %.3f\n", n, worst_agree, worst_rel, worst_ratio);
}

/* Other lazy-batch sizes: the blocked loop must still match (the naive
 * version models the block-dependent group quirk). */
static void test_block_sizes(void) {
    int64_t R = 40, C = 192;
    float *H = make_hessian(C, 2 * C, 31), *W = make_weights(R, C, 32);
    const int blocks[5] = {1, 17, 32, 100, 1000};
    for (int k = 0; k < 5; k++)
        for (int g = 0; g < 2; g++) {
            run_result x;
            int group = g ? 64 : -1;
            run_one(W, H, R, C, 3, group, 0, 0, blocks[k], &x);
            double rel = fabs(x.err_lib - x.err_naive) / x.err_naive;
            CHECKF(x.agree >= 0.995 && rel <= 1e-3, "block %d g%d: agree %.4f, H-error %.6g vs %.6g",
                   blocks[k], group, x.agree, x.err_lib, x.err_naive);
        }
    free(H);
    free(W);
}

/* ---------------- 3: dead inputs ---------------- */

static void test_dead_columns(void) {
    int64_t R = 32, C = 128;
    float *H = make_hessian(C, 2 * C, 41), *W = make_weights(R, C, 42);
    const int64_t dead[4] = {0, 5, 63, 127};
    for (int k = 0; k < 4; k++)
        for (int64_t j = 0; j < C; j++) H[dead[k] * C + j] = H[j * C + dead[k]] = 0.0f;
    for (int ao = 0; ao <= 1; ao++)
        for (int g = 0; g < 2; g++)
            for (int sym = 0; sym <= 1; sym++) {
                int group = g ? 32 : -1;
                lp_qgroup q;
                CHECK_OK(lp_qgroup_init(&q, R, C, 4, group, sym));
                lp_gptq_params p = lp_gptq_default_params();
                p.act_order = ao;
                lp_gptq_stats st;
                float *Hw = dup_f(H, C * C), *Q = malloc((size_t)(R * C) * sizeof *Q);
                CHECK_OK(lp_gptq_quantize(W, Hw, &p, &q, &st));
                CHECK(st.dead == 4 && st.damp_retries == 0 && isfinite(st.loss));
                lp_qgroup_dequant(&q, 0, R, Q);
                int64_t nonzero = 0, nonfinite = 0;
                for (int64_t r = 0; r < R; r++) {
                    for (int k = 0; k < 4; k++) nonzero += Q[r * C + dead[k]] != 0.0f;
                    for (int64_t c = 0; c < C; c++) nonfinite += !isfinite(Q[r * C + c]);
                }
                CHECKF(nonzero == 0 && nonfinite == 0, "ao%d g%d sym%d: %lld nonzero dead weights",
                       ao, group, sym, (long long)nonzero);
                /* and the rest still matches the plain version */
                int *codes = malloc((size_t)(R * C) * sizeof *codes);
                double *Qn = malloc((size_t)(R * C) * sizeof *Qn), ln;
                CHECK(naive_gptq(W, H, R, C, 4, group, sym, ao, p.damp, p.block, codes, Qn, &ln));
                int64_t same = 0;
                for (int64_t i = 0; i < R * C; i++) same += (int)lp_qgroup_get(&q, i / C, i % C) == codes[i];
                CHECKF(same >= (int64_t)(0.995 * (double)(R * C)), "dead ao%d g%d: agree %lld/%lld",
                       ao, group, (long long)same, (long long)(R * C));
                free(codes); free(Qn); free(Hw); free(Q);
                lp_qgroup_free(&q);
            }
    free(H);
    free(W);
}

/* ---------------- 4: damping fallback ---------------- */

/* A singular PSD H (rank C/4) minus 0.05 * mean(diag) * I: indefinite with
 * lambda_min = -0.05 m, so damp 0.01 (of the new mean 0.95 m) fails and 0.1
 * succeeds. */
static float *indefinite_hessian(int64_t C) {
    float *H = make_hessian(C, C / 4, 51);
    double m = 0.0;
    for (int64_t i = 0; i < C; i++) m += H[i * C + i] / (double)C;
    for (int64_t i = 0; i < C; i++) H[i * C + i] -= (float)(0.05 * m);
    return H;
}

static void check_finite_result(const lp_qgroup *q, const char *what) {
    float *Q = malloc((size_t)(q->rows * q->cols) * sizeof *Q);
    lp_qgroup_dequant(q, 0, q->rows, Q);
    int64_t bad = 0;
    for (int64_t i = 0; i < q->rows * q->ngroups; i++) {
        float s = lp_f16_to_f32(q->scales[i]);
        bad += !(isfinite(s) && s > 0.0f);
    }
    for (int64_t i = 0; i < q->rows * q->cols; i++) bad += !isfinite(Q[i]);
    CHECKF(bad == 0, "%s: %lld non-finite scales or weights", what, (long long)bad);
    free(Q);
}

static void test_damping_fallback(void) {
    int64_t R = 24, C = 128;
    float *H = indefinite_hessian(C), *W = make_weights(R, C, 52);
    lp_qgroup q;
    lp_gptq_stats st;
    for (int g = 0; g < 2; g++) {
        CHECK_OK(lp_qgroup_init(&q, R, C, 3, g ? 32 : -1, 0));
        lp_gptq_params p = lp_gptq_default_params();
        float *Hw = dup_f(H, C * C);
        CHECK_OK(lp_gptq_quantize(W, Hw, &p, &q, &st));
        CHECKF(st.damp_retries == 1 && fabs(st.damp - 0.1) < 1e-12 && isfinite(st.loss),
               "retries %d damp %g loss %g", st.damp_retries, st.damp, st.loss);
        check_finite_result(&q, "indefinite H");
        /* damp = 0: 0 -> 1e-3 -> 1e-2 -> 1e-1 */
        memcpy(Hw, H, (size_t)(C * C) * sizeof *Hw);
        p.damp = 0.0;
        CHECK_OK(lp_gptq_quantize(W, Hw, &p, &q, &st));
        CHECKF(st.damp_retries == 3 && fabs(st.damp - 0.1) < 1e-12, "damp 0: retries %d damp %g",
               st.damp_retries, st.damp);
        check_finite_result(&q, "indefinite H, damp 0");
        /* not enough retries: a clear error */
        memcpy(Hw, H, (size_t)(C * C) * sizeof *Hw);
        p = lp_gptq_default_params();
        p.damp_retries = 0;
        lp_status s = lp_gptq_quantize(W, Hw, &p, &q, &st);
        CHECK(s == LP_ERR_NUMERIC && strstr(lp_last_error(), "positive definite"));
        free(Hw);
        lp_qgroup_free(&q);
    }
    /* merely singular (rank C/4): the default damping is enough */
    float *Hs = make_hessian(C, C / 4, 53);
    CHECK_OK(lp_qgroup_init(&q, R, C, 4, 64, 1));
    CHECK_OK(lp_gptq_quantize(W, Hs, NULL, &q, &st));
    CHECK(st.damp_retries == 0 && isfinite(st.loss));
    check_finite_result(&q, "singular H");
    lp_qgroup_free(&q);
    free(Hs);
    free(H);
    free(W);
}

/* ---------------- 5: bad input ---------------- */

static void test_bad_input(void) {
    int64_t R = 8, C = 64;
    float *H = make_hessian(C, 2 * C, 61), *W = make_weights(R, C, 62), *Hw = dup_f(H, C * C);
    lp_qgroup q;
    CHECK_OK(lp_qgroup_init(&q, R, C, 4, 32, 0));
    W[3 * C + 7] = NAN;
    CHECK(lp_gptq_quantize(W, Hw, NULL, &q, NULL) == LP_ERR_NUMERIC);
    CHECK(strstr(lp_last_error(), "W[3][7]") != NULL);
    W[3 * C + 7] = 0.1f;
    Hw[10 * C + 11] = INFINITY;
    CHECK(lp_gptq_quantize(W, Hw, NULL, &q, NULL) == LP_ERR_NUMERIC);
    CHECK(strstr(lp_last_error(), "H[10][11]") != NULL);
    lp_gptq_params p = lp_gptq_default_params();
    memcpy(Hw, H, (size_t)(C * C) * sizeof *Hw);
    p.block = 0;
    CHECK(lp_gptq_quantize(W, Hw, &p, &q, NULL) == LP_ERR_ARG);
    p = lp_gptq_default_params();
    p.damp = -1.0;
    CHECK(lp_gptq_quantize(W, Hw, &p, &q, NULL) == LP_ERR_ARG);
    /* a zero Hessian: nothing to weigh the error with */
    memset(Hw, 0, (size_t)(C * C) * sizeof *Hw);
    for (int64_t i = 0; i < C; i++) Hw[i * C + i] = -1.0f;
    CHECK(lp_gptq_quantize(W, Hw, NULL, &q, NULL) == LP_ERR_NUMERIC);
    /* stats may be NULL on success */
    memcpy(Hw, H, (size_t)(C * C) * sizeof *Hw);
    CHECK_OK(lp_gptq_quantize(W, Hw, NULL, &q, NULL));
    lp_qgroup_free(&q);
    free(H); free(W); free(Hw);
}

/* ---------------- 6: thread-count independence ---------------- */

typedef struct {
    lp_qgroup q;
    lp_gptq_stats st;
} threaded_run;

static void run_threads(const float *W, const float *H, int64_t R, int64_t C, int ao, int omp_n,
                        int blas_n, threaded_run *out) {
    lp_gptq_params p = lp_gptq_default_params();
    p.act_order = ao;
    CHECK_OK(lp_qgroup_init(&out->q, R, C, 4, 128, 0));
    float *Hw = dup_f(H, C * C);
    omp_set_num_threads(omp_n);
    openblas_set_num_threads(blas_n);
    CHECK_OK(lp_gptq_quantize(W, Hw, &p, &out->q, &out->st));
    free(Hw);
}

static int same_bits(const threaded_run *a, const threaded_run *b) {
    size_t qb, sb, zb;
    CHECK_OK(lp_qgroup_sizes(a->q.rows, a->q.cols, a->q.bits, a->q.group, a->q.sym, &qb, &sb, &zb));
    return memcmp(a->q.q, b->q.q, qb) == 0 && memcmp(a->q.scales, b->q.scales, sb) == 0 &&
           (zb == 0 || memcmp(a->q.zeros, b->q.zeros, zb) == 0) && a->st.loss == b->st.loss;
}

/* Our own loops (OpenMP over rows) give the same bits for any thread count.
 * OpenBLAS does not: its sgemm/dpotrf/dtrtri split work by thread count and
 * round differently (measured with 0.3.21), so with the BLAS thread count
 * changed too we can only require near-identical results. */
static void test_threads(void) {
    /* large enough that OpenBLAS threads its gemm and potrf */
    int64_t R = 256, C = 1024;
    float *H = make_hessian(C, 1200, 71), *W = make_weights(R, C, 72);
    for (int ao = 0; ao <= 1; ao++) {
        threaded_run a, b, c;
        run_threads(W, H, R, C, ao, 1, 2, &a);
        run_threads(W, H, R, C, ao, 2, 2, &b);
        run_threads(W, H, R, C, ao, 1, 1, &c);
        CHECKF(same_bits(&a, &b), "act_order %d: 1 and 2 OpenMP threads differ (loss %.17g vs "
               "%.17g)", ao, a.st.loss, b.st.loss);
        int64_t same = 0;
        for (int64_t r = 0; r < R; r++)
            for (int64_t col = 0; col < C; col++)
                same += lp_qgroup_get(&b.q, r, col) == lp_qgroup_get(&c.q, r, col);
        double agree = (double)same / (double)(R * C);
        double rel = fabs(b.st.loss - c.st.loss) / c.st.loss;
        CHECKF(agree >= 0.999 && rel <= 1e-4, "act_order %d: BLAS 1 vs 2 threads: codes agree "
               "%.5f, loss %.9g vs %.9g", ao, agree, c.st.loss, b.st.loss);
        printf("threads (act_order %d): OpenMP 1 vs 2 %s; BLAS 1 vs 2 threads: %lld of %lld "
               "codes differ, loss rel diff %.1e\n", ao, same_bits(&a, &b) ? "bit-identical" :
               "DIFFER", (long long)(R * C - same), (long long)(R * C), rel);
        lp_qgroup_free(&a.q);
        lp_qgroup_free(&b.q);
        lp_qgroup_free(&c.q);
    }
    omp_set_num_threads(2);
    openblas_set_num_threads(2);
    free(H);
    free(W);
}

int main(void) {
    /* Small problems: OpenBLAS's idle threads would only spin (test_threads
     * sets the thread counts it compares). */
    openblas_set_num_threads(1);
    test_parity_and_rtn();
    test_block_sizes();
    test_dead_columns();
    test_damping_fallback();
    test_bad_input();
    test_threads();
    TEST_DONE();
}
