/*
 * test_obs.c - the shared error-feedback loop (quant/obs.h) with steps other
 * than GPTQ's (GPTQ's own step is checked against a naive GPTQ in
 * test_gptq.c):
 *  - a step that keeps every value: zero loss, the weight comes back as is;
 *  - SparseGPT-style 2:4 pruning: the step picks, at each block's start, the
 *    two of every four columns with the smallest w^2 / d^2 and zeroes them;
 *    the result is exactly 2:4 sparse, and its output error tr(dW H dW^T)
 *    is below that of zeroing the same positions without error feedback
 *    (the loop's whole point), for any block size and with act_order;
 *  - a failing step is reported with its row and column, nothing else
 *    crashes; bad parameters are LP_ERR_ARG.
 */
#include "quant/obs.h"

#include "core/status_impl.h"
#include "test.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { R = 24, C = 96, N = 384 };

typedef struct {
    int64_t perm[C];
    float out[R * C];   /* the kept value of each (row, original column) */
    uint8_t mask[R * C]; /* 1 = pruned, by processing position */
    int fail_row;       /* -1, or the row whose column 5 fails */
} rec;

static lp_status prepare(void *ud, const int64_t *perm, const uint8_t *dead) {
    rec *x = ud;
    memcpy(x->perm, perm, sizeof x->perm);
    return LP_OK;
}

static int keep(void *ud, int64_t r, int64_t c, float w, const float *outer, float *q) {
    rec *x = ud;
    if (r == x->fail_row && c == 5) return 1;
    *q = w;
    x->out[r * C + x->perm[c]] = w;
    return 0;
}

static lp_status explain(void *ud, int64_t r, int64_t c, const float *outer) {
    return lp_fail(LP_ERR_NUMERIC, "test step refused row %lld", (long long)r);
}

/* 2:4 along processing positions: in each aligned quad of the block, the two
 * smallest w^2 / d^2 (SparseGPT's saliency) are pruned. */
static int nm_block(void *ud, int64_t r, int64_t i1, int64_t i2, const float *w1, const float *hinv) {
    rec *x = ud;
    for (int64_t q0 = i1; q0 < i2; q0 += 4) {
        float s[4];
        for (int j = 0; j < 4; j++) {
            const float d = hinv[(q0 + j) * C + q0 + j];
            s[j] = w1[q0 - i1 + j] * w1[q0 - i1 + j] / (d * d);
        }
        for (int j = 0; j < 4; j++) {
            int rank = 0; /* how many are smaller (ties by index) */
            for (int k = 0; k < 4; k++) rank += s[k] < s[j] || (s[k] == s[j] && k < j);
            x->mask[r * C + q0 + j] = rank < 2;
        }
    }
    return 0;
}

static int nm_column(void *ud, int64_t r, int64_t c, float w, const float *outer, float *q) {
    rec *x = ud;
    *q = x->mask[r * C + c] ? 0.0f : w;
    x->out[r * C + x->perm[c]] = *q;
    return 0;
}

/* tr(dW H dW^T) for dW = A - W. */
static double out_err(const float *A, const float *W, const float *H) {
    float *D = malloc(sizeof(float) * R * C), *M = malloc(sizeof(float) * R * C);
    for (int i = 0; i < R * C; i++) D[i] = A[i] - W[i];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, R, C, C, 1.0f, D, C, H, C, 0.0f, M, C);
    double e = 0;
    for (int i = 0; i < R * C; i++) e += (double)D[i] * M[i];
    free(D);
    free(M);
    return e;
}

int main(void) {
    unsigned long long seed = 42;
    float *W = malloc(sizeof(float) * R * C), *X = malloc(sizeof(float) * N * C), *H = malloc(sizeof(float) * C * C),
          *Hc = malloc(sizeof(float) * C * C), *naive = malloc(sizeof(float) * R * C);
    rec *x = calloc(1, sizeof *x);
    for (int i = 0; i < R * C; i++) W[i] = test_randn(&seed);
    /* correlated inputs, as a layer's are (a few shared directions plus noise):
     * with a diagonal H the feedback would have nothing to push errors onto */
    enum { K = 12 };
    float *Z = malloc(sizeof(float) * N * K), *A = malloc(sizeof(float) * K * C);
    for (int i = 0; i < N * K; i++) Z[i] = test_randn(&seed);
    for (int i = 0; i < K * C; i++) A[i] = test_randn(&seed);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, K, 1.0f, Z, K, A, C, 0.0f, X, C);
    for (int i = 0; i < N * C; i++) X[i] += 0.1f * test_randn(&seed);
    free(Z);
    free(A);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, C, N, 2.0f / N, X, C, X, C, 0.0f, H, C);

    /* keep everything: zero loss, W back as is */
    lp_obs_params p = lp_obs_default_params("test");
    lp_obs_step keep_step = {.ud = x, .prepare = prepare, .column = keep, .explain = explain};
    lp_obs_stats st;
    x->fail_row = -1;
    memcpy(Hc, H, sizeof(float) * C * C);
    CHECK_OK(lp_obs_run(W, R, C, Hc, &p, &keep_step, &st));
    CHECK(st.loss == 0.0 && st.dead == 0 && st.damp == 0.01);
    CHECK(!memcmp(x->out, W, sizeof(float) * R * C));

    /* 2:4 with error feedback vs the same positions zeroed without it */
    const int blocks[3] = {128, 32, 8};
    for (int ao = 0; ao <= 1; ao++) {
        for (int b = 0; b < 3; b++) {
            p.block = blocks[b];
            p.act_order = ao;
            lp_obs_step nm = {.ud = x, .prepare = prepare, .block_begin = nm_block, .column = nm_column};
            memcpy(Hc, H, sizeof(float) * C * C);
            CHECK_OK(lp_obs_run(W, R, C, Hc, &p, &nm, &st));
            int64_t zeros_ok = 0;
            for (int r = 0; r < R; r++)
                for (int q0 = 0; q0 < C; q0 += 4) {
                    int z = 0;
                    for (int j = 0; j < 4; j++) z += x->mask[r * C + q0 + j];
                    zeros_ok += z == 2;
                }
            CHECKF(zeros_ok == R * C / 4, "block %d act_order %d: %lld of %d quads are 2:4", blocks[b], ao,
                   (long long)zeros_ok, R * C / 4);
            for (int r = 0; r < R; r++)
                for (int c = 0; c < C; c++) {
                    const int pruned = x->mask[r * C + c];
                    naive[r * C + x->perm[c]] = pruned ? 0.0f : W[r * C + x->perm[c]];
                    if (pruned) CHECK(x->out[r * C + x->perm[c]] == 0.0f);
                }
            const double e_obs = out_err(x->out, W, H), e_naive = out_err(naive, W, H);
            CHECKF(e_obs < 0.8 * e_naive, "block %d act_order %d: error feedback %g vs none %g", blocks[b], ao, e_obs,
                   e_naive);
            printf("2:4, block %3d, act_order %d: output error %.4g with feedback, %.4g without\n", blocks[b], ao,
                   e_obs, e_naive);
        }
    }

    /* a failing step names the row and the column */
    p = lp_obs_default_params("test");
    x->fail_row = 7;
    memcpy(Hc, H, sizeof(float) * C * C);
    lp_status s = lp_obs_run(W, R, C, Hc, &p, &keep_step, &st);
    CHECK(s == LP_ERR_NUMERIC && strstr(lp_last_error(), "row 7") && strstr(lp_last_error(), "column 5") &&
          strstr(lp_last_error(), "refused"));
    x->fail_row = -1;

    /* bad parameters and inputs */
    p.block = 0;
    CHECK(lp_obs_run(W, R, C, Hc, &p, &keep_step, &st) == LP_ERR_ARG);
    p = lp_obs_default_params("test");
    p.damp = -1;
    CHECK(lp_obs_run(W, R, C, Hc, &p, &keep_step, &st) == LP_ERR_ARG);
    p = lp_obs_default_params("test");
    memcpy(Hc, H, sizeof(float) * C * C);
    Hc[3 * C + 4] = NAN;
    CHECK(lp_obs_run(W, R, C, Hc, &p, &keep_step, &st) == LP_ERR_NUMERIC && strstr(lp_last_error(), "H["));
    memset(Hc, 0, sizeof(float) * C * C); /* all inputs dead: mean diag 1 after the fix, W zeroed */
    CHECK_OK(lp_obs_run(W, R, C, Hc, &p, &keep_step, &st));
    CHECK(st.dead == C && x->out[0] == 0.0f);

    free(W);
    free(X);
    free(H);
    free(Hc);
    free(naive);
    free(x);
    TEST_DONE();
}
