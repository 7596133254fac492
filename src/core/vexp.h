/*
 * vexp.h - exp over arrays of f32, vectorized, with a scalar specification
 * it equals bit for bit: softmax rows and SiLU.
 *
 * What: lp_expf_ref(x) is the specification, per value:
 *     NaN -> x; x < -87.33654 -> 0 (where expf reaches FLT_MIN); x > 88.37626 -> +inf;
 *     else k = rint(x * log2(e)); r = x - k ln2 (two fmaf, ln2 split in a
 *     high part exact in f32 and the rest); p = Taylor series of e^r to
 *     r^7 / 5040 by Horner in fmaf; result p * 2^k.
 *   Within 2 ulp of the correctly rounded exp on the normal range (the test
 *   sweeps it against libm), 0 where exp is subnormal.
 *   lp_softmax_exp(x, n, shift) sets x[i] = lp_expf_ref(x[i] - shift) and
 *   returns their sum in double as 16 lane sums (lane l takes i = l mod 16,
 *   in order) added lane 0 first; lp_silu_mul(act, u, n) sets
 *   act[i] = act[i] / (1 + lp_expf_ref(-act[i])) * u[i].
 * Why: attention's softmax and the MLP's SiLU call exp once per score and
 *   per hidden unit: with libm's scalar expf they were a fifth of a
 *   512-token prefill once the products ran at AVX-512 speed.
 * Design: the AVX-512 versions (vexp_avx512.c) run the same operations on
 *   16 lanes (vroundscaleps for rint, vfmadd for fmaf, the exponent built in
 *   integer lanes), so every value and the sum's lanes are the ref's bits;
 *   lp_cpu_isa() picks the level.
 */
#ifndef LP_VEXP_H
#define LP_VEXP_H

#include <stdint.h>

float lp_expf_ref(float x);

/* x[i] = exp(x[i] - shift) for i < n; returns the sum (see the top). */
double lp_softmax_exp(float *x, int64_t n, float shift);

/* act[i] = silu(act[i]) * u[i] for i < n. */
void lp_silu_mul(float *act, const float *u, int64_t n);

/* Double precision, for log-sum-exp over a vocabulary (model/score.c):
 * lp_exp_ref(x): NaN -> x; x < -708 -> 0 (exp there is < 2^-1021, below
 * anything a sum of probabilities keeps); x > 709 -> +inf; else k =
 * rint(x * log2(e)), r = x - k ln2 (two fma, ln2 split as fdlibm's
 * ln2_hi + ln2_lo), p = Taylor series of e^r to r^13 / 13! by Horner in fma
 * (|r| <= ln2 / 2: the next term is below 2^-57), result p * 2^k. Within
 * 2 ulp of the correctly rounded exp (the test sweeps it against libm).
 * lp_sum_exp(z, n, shift) = the sum over i of lp_exp_ref((double)z[i] -
 * (double)shift), as 8 lane sums (lane l takes i = l mod 8, in order)
 * added lane 0 first; the AVX-512 version gives the same bits. */
double lp_exp_ref(double x);
double lp_sum_exp(const float *z, int64_t n, float shift);

/* The levels, for tests. */
double lp_softmax_exp_ref(float *x, int64_t n, float shift);
double lp_softmax_exp_avx512(float *x, int64_t n, float shift);
void lp_silu_mul_ref(float *act, const float *u, int64_t n);
double lp_sum_exp_ref(const float *z, int64_t n, float shift);
double lp_sum_exp_avx512(const float *z, int64_t n, float shift);
void lp_silu_mul_avx512(float *act, const float *u, int64_t n);

#endif
