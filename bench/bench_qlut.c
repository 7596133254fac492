/*
 * bench_qlut.c - speed of the lookup-table format (quant/qlut.h) against the
 * grouped-integer one at the same code width, and the mixed-width format
 * (quant/qmix.h) against its uniform equivalent.
 *
 * Usage: build/bench_qlut [ROWS COLS BITS TOKENS REPS]   (default 4096 4096 3 1 50)
 * Prints milliseconds per call (best of REPS) for:
 *   qlut ref / avx2 / avx512 (0.45% outliers) / qgroup (g128, default kernel) /
 *   qmix (a third of the groups at BITS-1, a third at BITS+1) / qmix with one width.
 * Synthetic random weights: speed does not depend on the values.
 */
#include "core/half.h"
#include "format/qgroup.h"
#include "format/qlut.h"
#include "format/qmix.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long rng = 88172645463325252ull;
static unsigned rnd(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

typedef lp_status (*call_fn)(const void *w, const float *X, int64_t T, float *Y, const char *k);

static lp_status call_qlut(const void *w, const float *X, int64_t T, float *Y, const char *k) {
    return lp_qlut_gemm_ex(w, X, T, Y, k, 0);
}
static lp_status call_qgroup(const void *w, const float *X, int64_t T, float *Y, const char *k) {
    (void)k;
    return lp_qgroup_gemm(w, X, T, Y);
}
static lp_status call_qmix(const void *w, const float *X, int64_t T, float *Y, const char *k) {
    (void)k;
    return lp_qmix_gemm(w, X, T, Y);
}

static double best_ms(call_fn f, const void *w, const float *X, int64_t T, float *Y, const char *k, int reps) {
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = omp_get_wtime();
        if (f(w, X, T, Y, k) != LP_OK) return -1;
        double t = (omp_get_wtime() - t0) * 1e3;
        best = t < best ? t : best;
    }
    return best;
}

int main(int argc, char **argv) {
    int64_t R = argc > 1 ? atoll(argv[1]) : 4096, C = argc > 2 ? atoll(argv[2]) : 4096;
    int bits = argc > 3 ? atoi(argv[3]) : 3;
    int64_t T = argc > 4 ? atoll(argv[4]) : 1;
    int reps = argc > 5 ? atoi(argv[5]) : 50;
    if (bits < 2 || bits > 4 || C % 128) {
        fprintf(stderr, "bench_qlut: BITS 2..4 and COLS a multiple of 128\n");
        return 2;
    }
    int64_t nnz = (int64_t)(0.0045 * (double)(R * C));
    lp_qlut lut;
    lp_qgroup qg, wide;
    lp_qmix mix, mix1;
    if (lp_qlut_init(&lut, R, C, bits, nnz) != LP_OK || lp_qgroup_init(&qg, R, C, bits, 128, 0) != LP_OK ||
        lp_qgroup_init(&wide, R, C, bits + 1, 128, 0) != LP_OK) {
        fprintf(stderr, "bench_qlut: %s\n", lp_last_error());
        return 1;
    }
    for (size_t i = 0; i < lp_qlut_q_bytes(R, C, bits) / 4; i++) lut.q[i] = rnd() * 2654435761u;
    for (int64_t i = 0; i < R << bits; i++) lut.lut[i] = lp_f32_to_f16((float)(rnd() % 1000) / 1000.0f - 0.5f);
    for (int64_t r = 0, k = 0; r < R; r++) { /* outliers spread evenly */
        lut.row_ptr[r] = (int32_t)k;
        int64_t end = (r + 1) * nnz / R;
        for (int64_t j = 0; k < end; k++, j++) {
            lut.col_idx[k] = (int32_t)(j * (C / (end - lut.row_ptr[r] + 1)));
            lut.vals[k] = lp_f32_to_f16(0.25f);
        }
    }
    lut.row_ptr[R] = (int32_t)nnz;
    memcpy(qg.q, lut.q, lp_qlut_q_bytes(R, C, bits));
    for (int64_t i = 0; i < R * qg.ngroups; i++) {
        qg.scales[i] = lp_f32_to_f16(0.01f);
        qg.zeros[i] = 1;
    }
    const int64_t G = C / 128;
    uint8_t *gb = malloc((size_t)G), *gu = malloc((size_t)G);
    for (int64_t g = 0; g < G; g++) {
        gb[g] = (uint8_t)(g % 3 == 0 ? bits - 1 : g % 3 == 1 ? bits : bits + 1);
        gu[g] = (uint8_t)bits;
    }
    for (int64_t i = 0; i < R * wide.ngroups; i++) wide.scales[i] = lp_f32_to_f16(0.01f);
    if (lp_qmix_init(&mix, R, C, 128, 0, gb) != LP_OK || lp_qmix_init(&mix1, R, C, 128, 0, gu) != LP_OK) return 1;
    if (lp_qmix_repack(&mix, &wide) != LP_OK) return 1;
    float *X = malloc((size_t)(T * C) * sizeof(float)), *Y = malloc((size_t)(T * R) * sizeof(float));
    for (int64_t i = 0; i < T * C; i++) X[i] = (float)(rnd() % 1000) / 1000.0f;
    printf("%lld x %lld, %d bits, %lld token(s), %d threads: best of %d, ms per call\n", (long long)R, (long long)C,
           bits, (long long)T, omp_get_max_threads(), reps);
    printf("  qlut ref         %8.3f\n", best_ms(call_qlut, &lut, X, T, Y, "ref", reps < 5 ? reps : 5));
    printf("  qlut avx2        %8.3f\n", best_ms(call_qlut, &lut, X, T, Y, "avx2", reps));
    printf("  qlut avx512      %8.3f\n", best_ms(call_qlut, &lut, X, T, Y, "avx512", reps));
    printf("  qgroup g128      %8.3f\n", best_ms(call_qgroup, &qg, X, T, Y, NULL, reps));
    printf("  qmix %d/%d/%d      %8.3f  (mean %.2f bits)\n", bits - 1, bits, bits + 1,
           best_ms(call_qmix, &mix, X, T, Y, NULL, reps), lp_qmix_mean_bits(&mix));
    printf("  qmix uniform     %8.3f\n", best_ms(call_qmix, &mix1, X, T, Y, NULL, reps));
    printf("  bytes: qlut %zu, qgroup %zu, qmix %zu\n", lp_qlut_nbytes(&lut), lp_qgroup_nbytes(&qg),
           lp_qmix_nbytes(&mix));
    lp_qlut_free(&lut), lp_qgroup_free(&qg), lp_qgroup_free(&wide), lp_qmix_free(&mix), lp_qmix_free(&mix1);
    free(X), free(Y), free(gb), free(gu);
    return 0;
}
