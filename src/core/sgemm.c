/*
 * sgemm.c - lp_sgemm_nt / lp_sgemm_nn: the reference and the dispatch (sgemm.h).
 */
#include "core/sgemm.h"

#include "core/cpu.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>

/* The specification with B addressed by strides: element (k, j) of op(B) at
 * B[k * sk + j * sj] (nt: sk = 1, sj = ldb; nn: sk = ldb, sj = 1). */
static void ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t sk, int64_t sj,
                float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float c = 0.0f;
            for (int64_t k = 0; k < K; k++) c = fmaf(A[i * lda + k], B[k * sk + j * sj], c);
            C[i * ldc + j] = c;
        }
}

void lp_sgemm_nt_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                     float *C, int64_t ldc) {
    ref(M, N, K, A, lda, B, 1, ldb, C, ldc);
}

void lp_sgemm_nn_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                     float *C, int64_t ldc) {
    ref(M, N, K, A, lda, B, ldb, 1, C, ldc);
}

/* AVX-512 where the CPU has it, else BLAS (another summation order). */
static void product(bool trans, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                    int64_t ldb, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (lp_cpu_isa() >= LP_ISA_AVX512) {
        (trans ? lp_sgemm_nt_avx512 : lp_sgemm_nn_avx512)(M, N, K, A, lda, B, ldb, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
                (int)lda, B, (int)ldb, 0.0f, C, (int)ldc);
}

void lp_sgemm_nt(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                 int64_t ldc) {
    product(true, M, N, K, A, lda, B, ldb, C, ldc);
}

void lp_sgemm_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                 int64_t ldc) {
    product(false, M, N, K, A, lda, B, ldb, C, ldc);
}
