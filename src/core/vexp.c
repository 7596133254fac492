/*
 * vexp.c - the specification of vexp.h and the dispatch to AVX-512.
 */
#include "core/vexp.h"

#include "core/cpu.h"

#include <math.h>
#include <string.h>

float lp_expf_ref(float x) {
    if (!(x >= -87.33654f)) return x != x ? x : 0.0f;
    if (x > 88.37626f) return INFINITY;
    const float k = rintf(x * 1.44269504088896341f);
    float r = fmaf(k, -0.693145751953125f, x); /* ln 2 = 0.693145751953125 + 1.42860682e-6 */
    r = fmaf(k, -1.42860682030941723e-6f, r);
    float p = 1.0f / 5040.0f;
    p = fmaf(p, r, 1.0f / 720.0f);
    p = fmaf(p, r, 1.0f / 120.0f);
    p = fmaf(p, r, 1.0f / 24.0f);
    p = fmaf(p, r, 1.0f / 6.0f);
    p = fmaf(p, r, 0.5f);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    const uint32_t e = (uint32_t)((int32_t)k + 127) << 23; /* 2^k, k in [-126, 127] */
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

double lp_exp_ref(double x) {
    if (!(x >= -708.0)) return x != x ? x : 0.0;
    if (x > 709.0) return INFINITY;
    const double k = rint(x * 1.4426950408889634);
    double r = fma(k, -6.93147180369123816490e-01, x); /* ln 2 = ln2_hi + ln2_lo (fdlibm's split) */
    r = fma(k, -1.90821492927058770002e-10, r);
    double p = 1.0 / 6227020800.0; /* 1 / 13! */
    p = fma(p, r, 1.0 / 479001600.0);
    p = fma(p, r, 1.0 / 39916800.0);
    p = fma(p, r, 1.0 / 3628800.0);
    p = fma(p, r, 1.0 / 362880.0);
    p = fma(p, r, 1.0 / 40320.0);
    p = fma(p, r, 1.0 / 5040.0);
    p = fma(p, r, 1.0 / 720.0);
    p = fma(p, r, 1.0 / 120.0);
    p = fma(p, r, 1.0 / 24.0);
    p = fma(p, r, 1.0 / 6.0);
    p = fma(p, r, 0.5);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    const uint64_t e = (uint64_t)((int64_t)k + 1023) << 52; /* 2^k, k in [-1022, 1023] */
    double s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

double lp_sum_exp_ref(const float *z, int64_t n, float shift) {
    double lane[8] = {0};
    for (int64_t i = 0; i < n; i++) lane[i % 8] += lp_exp_ref((double)z[i] - (double)shift);
    double s = 0;
    for (int l = 0; l < 8; l++) s += lane[l];
    return s;
}

double lp_softmax_exp_ref(float *x, int64_t n, float shift) {
    double lane[16] = {0};
    for (int64_t i = 0; i < n; i++) {
        x[i] = lp_expf_ref(x[i] - shift);
        lane[i % 16] += (double)x[i];
    }
    double s = 0;
    for (int l = 0; l < 16; l++) s += lane[l];
    return s;
}

void lp_silu_mul_ref(float *act, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) act[i] = act[i] / (1.0f + lp_expf_ref(-act[i])) * u[i];
}

double lp_softmax_exp(float *x, int64_t n, float shift) {
    return lp_cpu_isa() >= LP_ISA_AVX512 ? lp_softmax_exp_avx512(x, n, shift) : lp_softmax_exp_ref(x, n, shift);
}

double lp_sum_exp(const float *z, int64_t n, float shift) {
    return lp_cpu_isa() >= LP_ISA_AVX512 ? lp_sum_exp_avx512(z, n, shift) : lp_sum_exp_ref(z, n, shift);
}

void lp_silu_mul(float *act, const float *u, int64_t n) {
    if (lp_cpu_isa() >= LP_ISA_AVX512) lp_silu_mul_avx512(act, u, n);
    else lp_silu_mul_ref(act, u, n);
}
