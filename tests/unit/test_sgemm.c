/*
 * test_sgemm.c - lp_sgemm_nt and lp_sgemm_nn (core/sgemm.h): the AVX-512 kernels equal the
 * scalar fmaf specification bit for bit, on shapes that hit every edge (M
 * not a multiple of the 12-row tile, N not a multiple of 32, K across the
 * 256 blocking, K = 1, strides wider than the matrices), and the
 * specification is the product to rounding.
 */
#include "core/cpu.h"
#include "core/sgemm.h"
#include "test.h"

#include <math.h>
#include <string.h>

static void check(int64_t M, int64_t N, int64_t K, unsigned long long *rng) {
    const int64_t lda = K + 3, ldb = K + 5, ldc = N + 7;
    float *A = malloc(sizeof(float) * (size_t)(M * lda)), *B = malloc(sizeof(float) * (size_t)(N * ldb));
    float *C = malloc(sizeof(float) * (size_t)(M * ldc)), *R = malloc(sizeof(float) * (size_t)(M * ldc));
    for (int64_t i = 0; i < M * lda; i++) A[i] = test_randn(rng);
    for (int64_t i = 0; i < N * ldb; i++) B[i] = test_randn(rng);
    for (int64_t i = 0; i < M * ldc; i++) C[i] = R[i] = -7.0f; /* the gaps between rows stay untouched */
    lp_sgemm_nt_ref(M, N, K, A, lda, B, ldb, R, ldc);
    if (lp_cpu_supports(LP_ISA_AVX512)) {
        lp_sgemm_nt_avx512(M, N, K, A, lda, B, ldb, C, ldc);
        CHECKF(!memcmp(C, R, sizeof(float) * (size_t)(M * ldc)), "%lld x %lld x %lld: avx512 != ref", (long long)M,
               (long long)N, (long long)K);
    }
    double worst = 0; /* the reference against a double-precision product */
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, a = 0;
            for (int64_t k = 0; k < K; k++) {
                s += (double)A[i * lda + k] * B[j * ldb + k];
                a += fabs((double)A[i * lda + k] * B[j * ldb + k]);
            }
            const double e = fabs(R[i * ldc + j] - s) / (a + 1e-30);
            worst = e > worst ? e : worst;
        }
    CHECKF(worst < 1e-5, "%lld x %lld x %lld: ref off the product by %.3g", (long long)M, (long long)N, (long long)K,
           worst);
    /* nn: B^T laid out K x N (ldb2 wider than N) gives the same chains, the same bits */
    const int64_t ldb2 = N + 9;
    float *Bt = malloc(sizeof(float) * (size_t)(K * ldb2)), *D = malloc(sizeof(float) * (size_t)(M * ldc));
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < ldb2; j++) Bt[k * ldb2 + j] = j < N ? B[j * ldb + k] : NAN; /* never read */
    for (int64_t i = 0; i < M * ldc; i++) D[i] = -7.0f;
    lp_sgemm_nn_ref(M, N, K, A, lda, Bt, ldb2, D, ldc);
    CHECKF(!memcmp(D, R, sizeof(float) * (size_t)(M * ldc)), "%lld x %lld x %lld: nn ref != nt ref", (long long)M,
           (long long)N, (long long)K);
    if (lp_cpu_supports(LP_ISA_AVX512)) {
        for (int64_t i = 0; i < M * ldc; i++) D[i] = -7.0f;
        lp_sgemm_nn_avx512(M, N, K, A, lda, Bt, ldb2, D, ldc);
        CHECKF(!memcmp(D, R, sizeof(float) * (size_t)(M * ldc)), "%lld x %lld x %lld: nn avx512 != ref", (long long)M,
               (long long)N, (long long)K);
    }
    free(Bt);
    free(D);
    free(A);
    free(B);
    free(C);
    free(R);
}

int main(void) {
    unsigned long long rng = 11;
    const int64_t shapes[][3] = {{1, 1, 1},    {12, 32, 256}, {13, 33, 257}, {5, 7, 3},     {24, 64, 512},
                                 {37, 100, 600}, {11, 31, 255}, {64, 16, 1000}, {3, 200, 64}, {100, 1, 384}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) check(shapes[s][0], shapes[s][1], shapes[s][2], &rng);
    TEST_DONE();
}
