/*
 * test_vexp.c - the vectorized exp (core/vexp.h): the AVX-512 softmax
 * exponentials and SiLU equal the scalar specification bit for bit (values
 * and the softmax sum), on random rows of every length from 0 to 40 and on
 * the edges (NaN, +-inf, the underflow and overflow thresholds, 0, -0,
 * subnormal arguments); and the specification is exp: within 2 ulp of
 * libm's double exp rounded to f32 over the normal range.
 */
#include "core/cpu.h"
#include "core/vexp.h"
#include "test.h"

#include <math.h>
#include <string.h>

static double ulps_d(double a, double b) {
    if (a == b) return 0;
    return fabs(a - b) / (nextafter(fabs(b), INFINITY) - fabs(b));
}

static float ulps(float a, float b) { /* distance in units of b's last place */
    if (a == b) return 0;
    return fabsf(a - b) / (nextafterf(fabsf(b), INFINITY) - fabsf(b));
}

int main(void) {
    /* the specification against libm over [-87, 88] */
    float worst = 0;
    for (int64_t i = 0; i <= 2000000; i++) {
        const float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        const float e = ulps(lp_expf_ref(x), (float)exp((double)x));
        worst = e > worst ? e : worst;
    }
    CHECKF(worst <= 2.0f, "lp_expf_ref is %g ulp off exp", worst);
    CHECK(lp_expf_ref(0.0f) == 1.0f && lp_expf_ref(-0.0f) == 1.0f);
    CHECK(isnan(lp_expf_ref(NAN)) && lp_expf_ref(INFINITY) == INFINITY && lp_expf_ref(-INFINITY) == 0.0f);
    CHECK(lp_expf_ref(-100.0f) == 0.0f && lp_expf_ref(100.0f) == INFINITY);

    double worst_d = 0; /* the double specification against libm over [-708, 709] */
    for (int64_t i = 0; i <= 2000000; i++) {
        const double x = -708.0 + 1417.0 * (double)i / 2000000.0, e = ulps_d(lp_exp_ref(x), exp(x));
        worst_d = e > worst_d ? e : worst_d;
    }
    CHECKF(worst_d <= 2.0, "lp_exp_ref is %g ulp off exp", worst_d);
    CHECK(lp_exp_ref(0.0) == 1.0 && lp_exp_ref(-0.0) == 1.0);
    CHECK(isnan(lp_exp_ref(NAN)) && lp_exp_ref(INFINITY) == INFINITY && lp_exp_ref(-INFINITY) == 0.0);
    CHECK(lp_exp_ref(-708.5) == 0.0 && lp_exp_ref(709.5) == INFINITY);
    CHECKF(ulps_d(lp_exp_ref(-708.0), exp(-708.0)) <= 2.0 && ulps_d(lp_exp_ref(709.0), exp(709.0)) <= 2.0,
           "the edges: %g, %g ulp", ulps_d(lp_exp_ref(-708.0), exp(-708.0)), ulps_d(lp_exp_ref(709.0), exp(709.0)));

    if (!lp_cpu_supports(LP_ISA_AVX512)) {
        printf("no AVX-512: the kernels are not compared\n");
        TEST_DONE();
    }
    unsigned long long rng = 5;
    const float edges[] = {NAN, INFINITY, -INFINITY, -87.33654f, -87.33655f, 88.37626f, 88.37627f, 0.0f, -0.0f,
                           1e-40f, -1e-40f, -87.0f, 88.0f, 1.0f, -1.0f, 0.5f};
    for (int64_t n = 0; n <= 40; n++) {
        float a[48], b[48], ua[48], sa[48], sb[48];
        for (int64_t i = 0; i < n; i++) {
            a[i] = 8.0f * test_randn(&rng);
            if (i < 16 && n % 3 == 0) a[i] = edges[i];
            ua[i] = test_randn(&rng);
        }
        memcpy(b, a, sizeof a);
        memcpy(sa, a, sizeof a);
        memcpy(sb, a, sizeof a);
        const double s1 = lp_softmax_exp_ref(a, n, 3.0f), s2 = lp_softmax_exp_avx512(b, n, 3.0f);
        CHECKF(!memcmp(a, b, sizeof(float) * (size_t)n) && (s1 == s2 || (isnan(s1) && isnan(s2))),
               "softmax exp, n = %lld", (long long)n);
        lp_silu_mul_ref(sa, ua, n);
        lp_silu_mul_avx512(sb, ua, n);
        CHECKF(!memcmp(sa, sb, sizeof(float) * (size_t)n), "silu, n = %lld", (long long)n);
    }
    /* the vocabulary sum: logits around a shift, some far below it, edges */
    static float z[32000];
    const int64_t ns[] = {255, 256, 257, 32000};
    for (int64_t k = 0; k < 45; k++) {
        const int64_t n = k <= 40 ? k : ns[k - 41];
        for (int64_t i = 0; i < n; i++) z[i] = 6.0f * test_randn(&rng) - (i % 13 == 5 ? 800.0f : 0.0f);
        if (n > 3) z[1] = 20.0f, z[2] = -INFINITY, z[3] = 7.5f;
        const double s1 = lp_sum_exp_ref(z, n, 20.0f), s2 = lp_sum_exp_avx512(z, n, 20.0f);
        CHECKF(s1 == s2, "sum exp, n = %lld: %.17g vs %.17g", (long long)n, s1, s2);
        if (n == 32000) { /* and it is the sum of exp */
            double e = 0;
            for (int64_t i = 0; i < n; i++) e += exp((double)z[i] - 20.0);
            CHECKF(fabs(s1 - e) <= 1e-14 * e, "sum exp: %.17g vs libm %.17g", s1, e);
        }
    }
    CHECK(isnan(lp_sum_exp_avx512((const float[]){NAN, 1.0f}, 2, 0.0f)) && isnan(lp_sum_exp_ref((const float[]){NAN, 1.0f}, 2, 0.0f)));
    TEST_DONE();
}
