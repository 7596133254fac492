/*
 * test_slim.c - mixed widths per column group (qmix.h), GPTQ with per-group
 * widths, and SliM-LLM's allocation (slim.h):
 *  - repacking a wide container into one qgroup part per width keeps every
 *    value (asymmetric: equal to the container's dequantization; symmetric:
 *    each part uses its own width's zero), for maps with a short last group;
 *  - the product through the parts matches a dense product of the
 *    dequantized weight, for one and many tokens;
 *  - adopting parts that disagree with the width map is a format error;
 *  - GPTQ with every group at the container's width is plain GPTQ, bit for
 *    bit; with all groups one bit narrower than the container it gives the
 *    same values as plain GPTQ at that width;
 *  - the allocation keeps the average exactly, moves the most salient group
 *    up and the least salient down when one group dominates the output
 *    error, and stays uniform on homogeneous weights;
 *  - SliM-LLM's compressor (lp_method_compress_linear with "slim" settings)
 *    gives a result never worse on the layer's output error than
 *    than the uniform GPTQ + clipping result it is checked against.
 */
#include "test.h"

#include "core/half.h"
#include "format/linear.h"
#include "quant/gptq.h"
#include "format/qmix.h"
#include "quant/method.h"
#include "quant/slim.h"

enum { R = 24, C = 200, GS = 64 }; /* 4 groups: 64, 64, 64, 8 */

static void check_qmix(int sym, unsigned long long *seed) {
    const uint8_t gbits[4] = {3, 1, 4, 3};
    const int G = 4, maxb = 4;
    lp_qgroup wide;
    CHECK_OK(lp_qgroup_init(&wide, R, C, maxb, GS, sym));
    for (int r = 0; r < R; r++) {
        for (int g = 0; g < G; g++) {
            wide.scales[r * G + g] = lp_f32_to_f16((float)(0.01 + 0.05 * fabs(test_randn(seed))));
            if (!sym) wide.zeros[r * G + g] = (uint8_t)(test_rand_u64(seed) % (1u << gbits[g]));
        }
        for (int c = 0; c < C; c++) lp_qgroup_set(&wide, r, c, (unsigned)(test_rand_u64(seed) % (1u << gbits[c / GS])));
    }
    lp_qmix mix;
    CHECK_OK(lp_qmix_init(&mix, R, C, GS, sym, gbits));
    CHECK(mix.nparts == 3 && mix.part[0].bits == 1 && mix.part[1].bits == 3 && mix.part[2].bits == 4);
    CHECK(mix.part[1].cols == 72 && mix.part[0].cols == 64 && mix.part[2].cols == 64);
    CHECK_OK(lp_qmix_repack(&mix, &wide));
    float *D = malloc(R * C * sizeof(float));
    CHECK_OK(lp_qmix_dequant(&mix, 0, R, D));
    int bad = 0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            int g = c / GS, z = sym ? 1 << (gbits[g] - 1) : wide.zeros[r * G + g];
            float want = lp_f16_to_f32(wide.scales[r * G + g]) * (float)((int)lp_qgroup_get(&wide, r, c) - z);
            bad += D[r * C + c] != want;
        }
    CHECKF(bad == 0, "%s: %d values changed by repacking", sym ? "sym" : "asym", bad);
    CHECK((double)lp_qmix_mean_bits(&mix) == (3.0 * 64 + 64 + 4.0 * 64 + 3.0 * 8) / C);

    for (int T = 1; T <= 40; T += 39) {
        float *X = malloc((size_t)(T * C) * sizeof(float)), *Y = malloc((size_t)(T * R) * sizeof(float));
        for (int i = 0; i < T * C; i++) X[i] = (float)test_randn(seed);
        CHECK_OK(lp_qmix_gemm(&mix, X, T, Y));
        double worst = 0;
        for (int t = 0; t < T; t++)
            for (int r = 0; r < R; r++) {
                double acc = 0, mag = 0;
                for (int c = 0; c < C; c++) {
                    acc += (double)D[r * C + c] * X[t * C + c];
                    mag += fabs((double)D[r * C + c] * X[t * C + c]);
                }
                double e = fabs(acc - Y[t * R + r]) / (mag > 0 ? mag : 1);
                worst = e > worst ? e : worst;
            }
        CHECKF(worst < 1e-5, "T=%d: qmix product vs dense: %.3g", T, worst);
        free(X);
        free(Y);
    }

    /* parts that do not match the map */
    lp_qgroup parts[3] = {mix.part[0], mix.part[1], mix.part[2]};
    lp_qmix bad_mix;
    const uint8_t other[4] = {3, 2, 4, 3};
    CHECK(lp_qmix_adopt(&bad_mix, R, C, GS, sym, other, parts, 3) == LP_ERR_FORMAT);
    CHECK(lp_qmix_adopt(&bad_mix, R, C, GS, sym, gbits, parts, 2) == LP_ERR_FORMAT);
    const uint8_t nine[4] = {3, 9, 4, 3};
    CHECK(lp_qmix_check(LP_ERR_FORMAT, R, C, GS, nine) == LP_ERR_FORMAT);
    free(D);
    lp_qmix_free(&mix);
    lp_qgroup_free(&wide);
}

static void make_h(float *H, int cols, const double *chan, unsigned long long *seed) {
    const int n = 3 * cols;
    float *X = malloc((size_t)(n * cols) * sizeof(float));
    for (int t = 0; t < n; t++)
        for (int c = 0; c < cols; c++) X[t * cols + c] = (float)(test_randn(seed) * chan[c]);
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < cols; j++) {
            double acc = 0;
            for (int t = 0; t < n; t++) acc += (double)X[t * cols + i] * X[t * cols + j];
            H[i * cols + j] = (float)(2.0 * acc / n);
        }
    free(X);
}

/* tr(dW H dW^T) of a dequantized weight D against W. */
static double out_err(const float *D, const float *W, const float *H, int rows, int cols) {
    double e = 0;
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < cols; i++) {
            double di = (double)D[r * cols + i] - W[r * cols + i], acc = 0;
            for (int j = 0; j < cols; j++) acc += H[i * cols + j] * ((double)D[r * cols + j] - W[r * cols + j]);
            e += di * acc;
        }
    return e;
}

static void check_gptq_widths(unsigned long long *seed) {
    enum { CC = 256, G = CC / GS };
    float *W = malloc(R * CC * sizeof(float)), *H = malloc(CC * CC * sizeof(float)), *Hc = malloc(CC * CC * sizeof(float));
    double chan[CC];
    for (int c = 0; c < CC; c++) chan[c] = 1.0 + (c % 13 == 0 ? 3.0 : 0.0);
    make_h(H, CC, chan, seed);
    for (int i = 0; i < R * CC; i++) W[i] = (float)(0.02 * test_randn(seed));
    for (int b = 2; b <= 4; b++) {
        lp_qgroup plain, same, wide;
        uint8_t gb[G];
        memset(gb, b, G);
        CHECK_OK(lp_qgroup_init(&plain, R, CC, b, GS, 0));
        CHECK_OK(lp_qgroup_init(&same, R, CC, b, GS, 0));
        CHECK_OK(lp_qgroup_init(&wide, R, CC, b + 1, GS, 0));
        lp_gptq_params p = lp_gptq_default_params();
        memcpy(Hc, H, CC * CC * sizeof(float));
        CHECK_OK(lp_gptq_quantize(W, Hc, &p, &plain, NULL));
        p.gbits = gb;
        memcpy(Hc, H, CC * CC * sizeof(float));
        CHECK_OK(lp_gptq_quantize(W, Hc, &p, &same, NULL));
        CHECKF(!memcmp(plain.q, same.q, (size_t)(R * plain.blocks * b) * 4) &&
                   !memcmp(plain.scales, same.scales, R * G * 2) && !memcmp(plain.zeros, same.zeros, R * G),
               "w%d: gbits at the container's width changed GPTQ", b);
        memcpy(Hc, H, CC * CC * sizeof(float));
        CHECK_OK(lp_gptq_quantize(W, Hc, &p, &wide, NULL));
        lp_qmix mix;
        CHECK_OK(lp_qmix_init(&mix, R, CC, GS, 0, gb));
        CHECK_OK(lp_qmix_repack(&mix, &wide));
        float *A = malloc(R * CC * sizeof(float)), *B = malloc(R * CC * sizeof(float));
        lp_qgroup_dequant(&plain, 0, R, A);
        CHECK_OK(lp_qmix_dequant(&mix, 0, R, B));
        CHECKF(!memcmp(A, B, R * CC * sizeof(float)), "w%d in a w%d container differs from plain GPTQ", b, b + 1);
        gb[0] = (uint8_t)(b + 2); /* wider than the container */
        memcpy(Hc, H, CC * CC * sizeof(float));
        CHECK(lp_gptq_quantize(W, Hc, &p, &plain, NULL) == LP_ERR_ARG);
        free(A), free(B);
        lp_qmix_free(&mix);
        lp_qgroup_free(&plain), lp_qgroup_free(&same), lp_qgroup_free(&wide);
    }
    free(W), free(H), free(Hc);
}

static void check_allocation(unsigned long long *seed) {
    enum { CC = 512, G = CC / GS };
    float *W = malloc(R * CC * sizeof(float)), *H = malloc(CC * CC * sizeof(float));
    double chan[CC];
    uint8_t gb[G];
    int64_t k = -1;
    /* homogeneous: uniform stays best */
    for (int c = 0; c < CC; c++) chan[c] = 1.0;
    make_h(H, CC, chan, seed);
    for (int i = 0; i < R * CC; i++) W[i] = (float)(0.02 * test_randn(seed));
    CHECK_OK(lp_slim_allocate(W, R, CC, H, 3, GS, 0, 0.01, gb, &k));
    CHECKF(k == 0, "homogeneous weights: k = %lld, want 0", (long long)k);
    /* group 5 carries huge inputs, group 2 almost none: 5 goes up, 2 down */
    for (int c = 0; c < CC; c++) chan[c] = c / GS == 5 ? 30.0 : c / GS == 2 ? 0.05 : 1.0;
    make_h(H, CC, chan, seed);
    CHECK_OK(lp_slim_allocate(W, R, CC, H, 3, GS, 0, 0.01, gb, &k));
    int sum = 0;
    for (int g = 0; g < G; g++) sum += gb[g];
    CHECKF(k >= 1 && gb[5] == 4 && gb[2] == 2 && sum == 3 * G, "k = %lld, widths of groups 5 and 2: %d %d, sum %d",
           (long long)k, gb[5], gb[2], sum);

    /* the compressor: never worse than uniform GPTQ + clipping on the output error */
    lp_linear l = {.rows = R, .cols = CC};
    lp_dense *dw = NULL;
    CHECK_OK(lp_dense_view(R, CC, W, NULL, LP_DT_F32, NULL, &dw)); /* W stays the test's */
    if (dw) CHECK_OK(lp_linear_add_part(&l, &lp_format_dense, dw));
    lp_settings *slim = NULL;
    char spec[64];
    snprintf(spec, sizeof spec, "slim bits=3 group=%d", (int)GS);
    CHECK_OK(lp_settings_parse(spec, &slim));
    double rel = 0;
    if (slim && l.nparts == 1) CHECK_OK(lp_method_compress_linear(slim, &l, H, NULL, &rel));
    CHECK(lp_linear_is(&l, &lp_format_qmix) && rel > 0 && rel < 0.5);
    lp_settings_free(slim);
    float *D = lp_linear_to_f32(&l);
    double e_slim = D ? out_err(D, W, H, R, CC) : INFINITY;
    lp_qgroup q;
    CHECK_OK(lp_qgroup_init(&q, R, CC, 3, GS, 0));
    float *Hc = malloc(CC * CC * sizeof(float));
    memcpy(Hc, H, CC * CC * sizeof(float));
    lp_gptq_params gp = lp_gptq_default_params();
    CHECK_OK(lp_gptq_quantize(W, Hc, &gp, &q, NULL));
    float *Du = malloc(R * CC * sizeof(float));
    lp_qgroup_dequant(&q, 0, R, Du);
    double e_gptq = out_err(Du, W, H, R, CC);
    CHECKF(e_slim < e_gptq, "slim output error %.4g not below plain GPTQ %.4g", e_slim, e_gptq);
    printf("skewed inputs: k = %lld, output error slim %.4g, plain GPTQ %.4g\n", (long long)k, e_slim, e_gptq);
    lp_qgroup_free(&q);
    lp_linear_free(&l);
    free(D), free(Du), free(Hc), free(W), free(H);
}

int main(void) {
    unsigned long long seed = 5;
    check_qmix(0, &seed);
    check_qmix(1, &seed);
    check_gptq_widths(&seed);
    check_allocation(&seed);
    TEST_DONE();
}
