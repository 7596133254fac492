/*
 * backend.h - the dense matrix products of the forward pass, behind one
 * small interface.
 *
 * What: every f32 matrix product the model runs (dense linears, attention's
 * Q K^T and P V) goes through an lp_backend, so a GPU backend is one more
 * implementation of these two functions rather than edits in the forward
 * pass. Packed formats run their own kernels (src/format).
 * Conventions: row-major; C (M x N) = alpha * A (M x K) op(B) + beta * C with
 * op(B) = B^T when transb (B is N x K) else B (K x N).
 * Design: the CPU backend is OpenBLAS (cblas_sgemm / cblas_sgemv), exactly
 * the calls the forward pass made before the interface existed.
 */
#ifndef LP_BACKEND_H
#define LP_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

typedef struct lp_backend {
    const char *name;
    void (*sgemm)(bool transb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
    /* y (M) = A (M x K) x */
    void (*sgemv)(int64_t M, int64_t K, const float *A, int64_t lda, const float *x, float *y);
    /* y (K) = A (M x K)^T x */
    void (*sgemv_t)(int64_t M, int64_t K, const float *A, int64_t lda, const float *x, float *y);
} lp_backend;

/* The backend in use (today: the CPU, through BLAS). */
const lp_backend *lp_backend_default(void);

#endif
