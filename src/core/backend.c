/*
 * backend.c - the CPU backend: OpenBLAS (backend.h).
 */
#include "core/backend.h"

#include <cblas.h>

static void cpu_sgemm(bool transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                      const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

static void cpu_sgemv(int64_t M, int64_t K, const float *A, int64_t lda, const float *x, float *y) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)M, (int)K, 1.0f, A, (int)lda, x, 1, 0.0f, y, 1);
}

static void cpu_sgemv_t(int64_t M, int64_t K, const float *A, int64_t lda, const float *x, float *y) {
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)M, (int)K, 1.0f, A, (int)lda, x, 1, 0.0f, y, 1);
}

static const lp_backend CPU = {"cpu", cpu_sgemm, cpu_sgemv, cpu_sgemv_t};

const lp_backend *lp_backend_default(void) { return &CPU; }
