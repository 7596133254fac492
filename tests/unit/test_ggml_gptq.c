/*
 * test_ggml_gptq.c - GPTQ inside llama.cpp's grids (quant/ggml_method.c).
 *
 * For Q4_0, Q8_0, Q4_K, Q3_K and Q6_K on a 48 x 512 weight whose inputs are
 * correlated (X = Z M, a random mixing), with H = 2 X^T X / n:
 *   - GPTQ's output loss tr((W - Q) H (W - Q)^T) is below llama.cpp's
 *     rounding's (lp_ggml_part_quantize) for the same type;
 *   - every block GPTQ wrote dequantizes to finite values;
 *   - with the identity Hessian (a diagonal inverse: no error is pushed onto
 *     other columns) GPTQ writes exactly llama.cpp's bytes, the blocks fitted
 *     to unchanged values and every value rounded as llama.cpp rounds.
 */
#include "test.h"

#include "format/ggml.h"
#include "format/ggml_quants.h"
#include "quant/ggml_method.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { R = 48, C = 512, N = 2048 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }

/* tr((W - Q) H (W - Q)^T) in double. */
static double loss(const float *W, const lp_ggml_part *p, const float *H) {
    float *Q = malloc(sizeof(float) * R * C);
    lp_ggml_part_dequant(p, 0, R, Q);
    double s = 0;
    double *e = malloc(sizeof(double) * C);
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < C; c++) e[c] = (double)W[r * C + c] - Q[r * C + c];
        for (int i = 0; i < C; i++) {
            double a = 0;
            for (int j = 0; j < C; j++) a += H[i * C + j] * e[j];
            s += e[i] * a;
        }
    }
    free(e);
    free(Q);
    return s;
}

/* Every value of every row finite. */
static int valid_rows(const lp_ggml_part *p) {
    float *q = malloc(sizeof(float) * C);
    int ok = 1;
    for (int r = 0; r < R && ok; r++) {
        lp_ggml_dequant_row(p->type, p->blocks + (size_t)r * p->row_bytes, q, C);
        for (int c = 0; c < C; c++) ok &= isfinite(q[c]);
    }
    free(q);
    return ok;
}

static void run(int type, const float *W, const float *H, double *l_rtn, double *l_gptq, int *same) {
    lp_ggml_part *a = NULL, *b = NULL;
    CHECK_OK(lp_ggml_part_quantize(type, W, NULL, R, C, &a));
    CHECK_OK(lp_ggml_part_alloc(type, R, C, &b));
    float *Hc = malloc(sizeof(float) * C * C);
    memcpy(Hc, H, sizeof(float) * C * C);
    if (a && b) {
        CHECK_OK(lp_ggml_quantize_gptq(type, W, Hc, NULL, 0.01, 128, b, NULL));
        CHECKF(valid_rows(b), "%s: a GPTQ block dequantizes to a non-finite value", lp_ggml_type_of(type).name);
        *l_rtn = loss(W, a, H);
        *l_gptq = loss(W, b, H);
        *same = !memcmp(a->blocks, b->blocks, (size_t)R * a->row_bytes);
    }
    free(Hc);
    lp_ggml_part_free(a);
    lp_ggml_part_free(b);
}

int main(void) {
    float *W = malloc(sizeof(float) * R * C), *H = calloc((size_t)C * C, sizeof(float));
    float *X = malloc(sizeof(float) * N * C), *I = calloc((size_t)C * C, sizeof(float));
    for (int i = 0; i < R * C; i++) W[i] = (float)(0.02 * nrand());
    /* correlated inputs: x = z + 0.8 * (z shifted by one column), plus a few loud channels */
    for (int n = 0; n < N; n++) {
        double prev = nrand();
        for (int c = 0; c < C; c++) {
            double z = nrand();
            X[n * C + c] = (float)((z + 0.8 * prev) * (c % 61 == 0 ? 6.0 : 1.0));
            prev = z;
        }
    }
    for (int i = 0; i < C; i++)
        for (int j = i; j < C; j++) {
            double s = 0;
            for (int n = 0; n < N; n++) s += (double)X[n * C + i] * X[n * C + j];
            H[i * C + j] = H[j * C + i] = (float)(2 * s / N);
        }
    for (int i = 0; i < C; i++) I[i * C + i] = 1.0f;
    const int types[] = {LP_GGML_Q4_0, LP_GGML_Q8_0, LP_GGML_Q4_K, LP_GGML_Q3_K, LP_GGML_Q6_K};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        const char *name = lp_ggml_type_of(types[k]).name;
        double lr = 0, lg = 0, ir = 0, ig = 0;
        int same = 0;
        run(types[k], W, H, &lr, &lg, &same);
        CHECKF(lg < 0.95 * lr, "%s: GPTQ's output loss %.4g is not below rounding's %.4g", name, lg, lr);
        run(types[k], W, I, &ir, &ig, &same);
        CHECKF(same, "%s: with H = I, GPTQ's blocks differ from llama.cpp's rounding", name);
        printf("%-5s output loss: rounding %.4g, GPTQ %.4g (%.1f%%); with H = I: %.4g, %.4g\n", name, lr, lg,
               100.0 * lg / lr, ir, ig);
    }
    free(W), free(H), free(X), free(I);
    if (lp_test_failures) {
        fprintf(stderr, "%d check(s) failed\n", lp_test_failures);
        return 1;
    }
    printf("OK\n");
    return 0;
}
