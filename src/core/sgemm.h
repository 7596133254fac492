/*
 * sgemm.h - C = A B^T in f32 with every element one in-order chain of fused
 * multiply-adds: the product the packed formats run on dequantized panels.
 *
 * What: lp_sgemm_nt(M, N, K, A, lda, B, ldb, C, ldc) sets
 *     C[i][j] = fma(A[i][K-1], B[j][K-1], ... fma(A[i][1], B[j][1], A[i][0] B[j][0]) ...)
 *   for i < M, j < N: A is M x K and B is N x K, both row-major with K
 *   contiguous (activations and weight rows), C is M x N. The result of each
 *   element is fixed by that formula alone, so it is the same bits whatever
 *   M, N, the blocking, the thread that runs it, or the instruction set
 *   (lp_sgemm_nt_ref, scalar fmaf, is the specification; the AVX-512 kernel
 *   equals it bit for bit).
 * Why: prefill, perplexity and scoring spend most of their time multiplying
 *   tokens by dequantized weight tiles. OpenBLAS's sgemm is fast but its
 *   kernel is picked when the library loads, and where the environment keeps
 *   it on AVX2 (OPENBLAS_CORETYPE on CPUs whose AVX-512 kernels misbehave in
 *   old builds) it runs at half the FMA width the CPU has. This kernel is
 *   ours: AVX-512 where the CPU has it, and a result that depends on nothing
 *   but the formula.
 * Design (sgemm_avx512.c): K in blocks of KC; per block, B in panels of 32
 *   rows packed k-major (32 floats per k, zero-padded), and A read in place
 *   (a broadcast per row and k); a 12 x 32 register tile of accumulators, C
 *   stored between K blocks (reloaded and continued: the chain is unbroken).
 *   Serial: callers run it per thread on their own tiles. Where the CPU has
 *   no AVX-512 the call goes to BLAS (another summation order).
 */
#ifndef LP_SGEMM_H
#define LP_SGEMM_H

#include <stdint.h>

/* C (M x N, ldc) = A (M x K, lda) B^T, B (N x K, ldb). Serial. */
void lp_sgemm_nt(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                 int64_t ldc);

/* C (M x N, ldc) = A (M x K, lda) B, B (K x N, ldb): the same chains with
 * B[k][j] for B[j][k] (attention's P V). Serial. */
void lp_sgemm_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                 int64_t ldc);

/* The specification (scalar fmaf chains) and the AVX-512 kernel, for tests. */
void lp_sgemm_nt_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                     float *C, int64_t ldc);
void lp_sgemm_nt_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float *C, int64_t ldc);
void lp_sgemm_nn_ref(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                     float *C, int64_t ldc);
void lp_sgemm_nn_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float *C, int64_t ldc);

#endif
