/*
 * test_clip.c - the clipping-range search (clip.h) and RTN / GPTQ with it:
 *  - factors (1, 1) reproduce plain min-max RTN and plain GPTQ bit for bit;
 *  - every group's output error e(g) = dw H_gg dw^T with the searched factors
 *    is never above the unclipped one, and strictly below it in total on
 *    heavy-tailed weights;
 *  - the factors come from the grid and stay in (0, 1];
 *  - non-finite H is refused.
 */
#include "test.h"

#include "core/half.h"
#include "quant/clip.h"
#include "quant/gptq.h"
#include "quant/rtn.h"

enum { R = 48, C = 160, GS = 64 }; /* 3 groups per row, the last one 32 wide */

/* A random SPD Hessian with correlated inputs and uneven channel scales. */
static void make_h(float *H, unsigned long long *seed) {
    const int n = 4 * C;
    float *X = malloc((size_t)(n * C) * sizeof(float));
    for (int t = 0; t < n; t++)
        for (int c = 0; c < C; c++) {
            double v = test_randn(seed) * (1.0 + 4.0 * (c % 17 == 0));
            X[t * C + c] = (float)(c > 0 ? 0.5 * v + 0.5 * X[t * C + c - 1] : v);
        }
    for (int i = 0; i < C; i++)
        for (int j = 0; j < C; j++) {
            double acc = 0;
            for (int t = 0; t < n; t++) acc += (double)X[t * C + i] * X[t * C + j];
            H[i * C + j] = (float)(2.0 * acc / n);
        }
    free(X);
}

/* e(r, g) for a packed q against W. */
static double group_err(const lp_qgroup *q, const float *W, const float *H, int64_t r, int64_t g) {
    float *D = malloc((size_t)C * sizeof(float));
    lp_qgroup_dequant(q, r, r + 1, D);
    const int64_t c0 = g * q->group, c1 = c0 + q->group < C ? c0 + q->group : C;
    double e = 0;
    for (int64_t i = c0; i < c1; i++)
        for (int64_t j = c0; j < c1; j++)
            e += ((double)D[i] - W[r * C + i]) * H[i * C + j] * ((double)D[j] - W[r * C + j]);
    free(D);
    return e;
}

int main(void) {
    unsigned long long seed = 17;
    float *W = malloc((size_t)(R * C) * sizeof(float));
    float *H = malloc((size_t)(C * C) * sizeof(float));
    for (int i = 0; i < R * C; i++) { /* Student-t-like tails: a few large weights per group */
        double v = test_randn(&seed);
        W[i] = (float)(0.02 * v * (test_rand_u64(&seed) % 50 == 0 ? 6.0 : 1.0));
    }
    make_h(H, &seed);

    for (int bits = 2; bits <= 4; bits++) {
        for (int sym = 0; sym <= 1; sym++) {
            lp_qgroup plain = {0}, ones = {0}, clipped = {0};
            CHECK_OK(lp_qgroup_init(&plain, R, C, bits, GS, sym));
            CHECK_OK(lp_qgroup_init(&ones, R, C, bits, GS, sym));
            CHECK_OK(lp_qgroup_init(&clipped, R, C, bits, GS, sym));
            const int64_t G = plain.ngroups;
            float *unit = malloc((size_t)(R * G * 2) * sizeof(float)), *cl = malloc((size_t)(R * G * 2) * sizeof(float));
            for (int64_t i = 0; i < R * G * 2; i++) unit[i] = 1.0f;
            CHECK_OK(lp_rtn_quantize(W, &plain));
            CHECK_OK(lp_rtn_quantize_clipped(W, unit, &ones));
            CHECK(!memcmp(plain.q, ones.q, (size_t)(R * plain.blocks * bits) * 4) &&
                  !memcmp(plain.scales, ones.scales, (size_t)(R * G) * 2));

            CHECK_OK(lp_clip_search(W, R, C, H, bits, GS, sym, 20, 0.5, cl));
            int on_grid = 1;
            for (int64_t i = 0; i < R * G * 2; i++) {
                double k = (1.0 - cl[i]) * 20.0;
                on_grid &= cl[i] > 0.5f - 1e-6f && cl[i] <= 1.0f && fabs(k - rint(k)) < 1e-4;
            }
            CHECK(on_grid);
            CHECK_OK(lp_rtn_quantize_clipped(W, cl, &clipped));
            double e0 = 0, e1 = 0;
            int64_t worse = 0;
            for (int64_t r = 0; r < R; r++)
                for (int64_t g = 0; g < G; g++) {
                    double a = group_err(&plain, W, H, r, g), b = group_err(&clipped, W, H, r, g);
                    e0 += a;
                    e1 += b;
                    worse += b > a * (1 + 1e-4) + 1e-12;
                }
            CHECKF(worse == 0, "w%d sym=%d: %lld groups got worse with clipping", bits, sym, (long long)worse);
            CHECKF(e1 < e0 * 0.98, "w%d sym=%d: clipping error %.4g not clearly below min-max %.4g", bits, sym, e1, e0);
            printf("w%d %s: output error, min-max %.5g, searched clipping %.5g (%.1f%% lower)\n", bits,
                   sym ? "sym " : "asym", e0, e1, 100.0 * (1 - e1 / e0));

            /* GPTQ with unit factors is GPTQ */
            lp_qgroup g0 = {0}, g1 = {0};
            CHECK_OK(lp_qgroup_init(&g0, R, C, bits, GS, sym));
            CHECK_OK(lp_qgroup_init(&g1, R, C, bits, GS, sym));
            float *Hc = malloc((size_t)(C * C) * sizeof(float));
            lp_gptq_params gp = lp_gptq_default_params();
            memcpy(Hc, H, (size_t)(C * C) * sizeof(float));
            CHECK_OK(lp_gptq_quantize(W, Hc, &gp, &g0, NULL));
            gp.clip = unit;
            memcpy(Hc, H, (size_t)(C * C) * sizeof(float));
            CHECK_OK(lp_gptq_quantize(W, Hc, &gp, &g1, NULL));
            CHECK(!memcmp(g0.q, g1.q, (size_t)(R * g0.blocks * bits) * 4) &&
                  !memcmp(g0.scales, g1.scales, (size_t)(R * G) * 2));
            free(Hc);
            lp_qgroup_free(&g0);
            lp_qgroup_free(&g1);
            free(unit);
            free(cl);
            lp_qgroup_free(&plain);
            lp_qgroup_free(&ones);
            lp_qgroup_free(&clipped);
        }
    }

    /* per-channel (group = cols) works too */
    float *cl = malloc((size_t)(R * 2) * sizeof(float));
    CHECK_OK(lp_clip_search(W, R, C, H, 3, C, 0, 20, 0.5, cl));

    /* non-finite H is refused */
    H[5 * C + 7] = NAN;
    CHECK(lp_clip_search(W, R, C, H, 3, GS, 0, 20, 0.5, cl) == LP_ERR_NUMERIC &&
          strstr(lp_last_error(), "Hessian"));
    free(cl);
    free(W);
    free(H);
    TEST_DONE();
}
