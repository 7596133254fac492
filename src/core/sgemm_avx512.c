/*
 * sgemm_avx512.c - lp_sgemm_nt with AVX-512 (sgemm.h states the result:
 * every C element one in-order fma chain over k, as lp_sgemm_nt_ref).
 *
 * Register tile: MR = 12 rows of A by NR = 32 columns of C (two zmm), 24
 * accumulators; per k, two loads of the packed B panel and 12 FMAs with an
 * embedded broadcast of A[i][k] each (two FMA pipes: 12 cycles per k, the
 * loads fit beside). Each accumulator lane is one C element and sees its
 * products in k order, so blocking never changes a bit.
 * Blocking: K in blocks of KC = 256; for each block and each panel of 32 B
 * rows, the panel is packed k-major (Bp[k][0..31], rows past N zero) into a
 * 32 KB per-call buffer, then every 12-row strip of A runs over it (A read
 * in place: 12 rows x KC floats, 12 KB, stay in L1 across the panel's
 * steps). Between K blocks C holds the partial chains (stored, reloaded).
 * Edges: rows past M use a tile with fewer rows (the same code, MR a
 * compile-time constant per instance); columns past N are computed on the
 * zero padding and not stored (masked stores).
 */
#include "core/sgemm.h"

#include <immintrin.h>

enum { MR = 12, NR = 32, KC = 256 };

#define INLINE static inline __attribute__((always_inline))

/* C[0..mr) x [0..32) (masked by m0, m1) = or += A[0..mr) x Bp over kc steps. */
INLINE void tile(const int mr, int64_t kc, const float *A, int64_t lda, const float *Bp, float *C, int64_t ldc,
                 int first, __mmask16 m0, __mmask16 m1) {
    __m512 c0[MR], c1[MR];
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        if (first) {
            c0[i] = _mm512_setzero_ps();
            c1[i] = _mm512_setzero_ps();
        } else {
            c0[i] = _mm512_maskz_loadu_ps(m0, C + i * ldc);
            c1[i] = _mm512_maskz_loadu_ps(m1, C + i * ldc + 16);
        }
    }
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(Bp + k * NR), b1 = _mm512_load_ps(Bp + k * NR + 16);
#pragma GCC unroll 12
        for (int i = 0; i < mr; i++) {
            const __m512 a = _mm512_set1_ps(A[i * lda + k]);
            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < mr; i++) {
        _mm512_mask_storeu_ps(C + i * ldc, m0, c0[i]);
        _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c1[i]);
    }
}

/* The strip of the remaining mr (< MR) rows, one instance per count. */
static void tile_rest(int mr, int64_t kc, const float *A, int64_t lda, const float *Bp, float *C, int64_t ldc,
                      int first, __mmask16 m0, __mmask16 m1) {
    switch (mr) {
#define REST(R) case R: tile(R, kc, A, lda, Bp, C, ldc, first, m0, m1); break;
        REST(1) REST(2) REST(3) REST(4) REST(5) REST(6) REST(7) REST(8) REST(9) REST(10) REST(11)
#undef REST
    default: break;
    }
}

/* Bp (kc x 32) = B rows [0, nr) columns [0, kc), transposed; rows past nr 0. */
static void pack_panel(const float *B, int64_t ldb, int64_t nr, int64_t kc, float *Bp) {
    for (int64_t j = 0; j < NR; j++) {
        if (j < nr) {
            const float *b = B + j * ldb;
            for (int64_t k = 0; k < kc; k++) Bp[k * NR + j] = b[k];
        } else {
            for (int64_t k = 0; k < kc; k++) Bp[k * NR + j] = 0.0f;
        }
    }
}

/* Bp (kc x 32) = B rows [0, kc) columns [0, nr) as they are (B is K x N);
 * columns past nr 0. */
static void pack_panel_nn(const float *B, int64_t ldb, int64_t nr, int64_t kc, float *Bp) {
    const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffffu : (1u << nr) - 1u);
    const __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffffu : nr > 16 ? (1u << (nr - 16)) - 1u : 0u);
    for (int64_t k = 0; k < kc; k++) {
        _mm512_store_ps(Bp + k * NR, _mm512_maskz_loadu_ps(m0, B + k * ldb));
        _mm512_store_ps(Bp + k * NR + 16, _mm512_maskz_loadu_ps(m1, B + k * ldb + 16));
    }
}

/* The blocked product; trans: B is N x K (pack_panel), else K x N. */
INLINE void product(const int trans, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                    int64_t ldb, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    _Alignas(64) float Bp[KC * NR]; /* 32 KB */
    if (K <= 0) { /* empty sums */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) C[i * ldc + j] = 0.0f;
        return;
    }
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = K - k0 < KC ? K - k0 : KC;
        const int first = k0 == 0;
        for (int64_t j0 = 0; j0 < N; j0 += NR) {
            const int64_t nr = N - j0 < NR ? N - j0 : NR;
            const __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xffffu : (1u << nr) - 1u);
            const __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xffffu : nr > 16 ? (1u << (nr - 16)) - 1u : 0u);
            if (trans) pack_panel(B + j0 * ldb + k0, ldb, nr, kc, Bp);
            else pack_panel_nn(B + k0 * ldb + j0, ldb, nr, kc, Bp);
            int64_t i = 0;
            for (; i + MR <= M; i += MR) tile(MR, kc, A + i * lda + k0, lda, Bp, C + i * ldc + j0, ldc, first, m0, m1);
            if (i < M) tile_rest((int)(M - i), kc, A + i * lda + k0, lda, Bp, C + i * ldc + j0, ldc, first, m0, m1);
        }
    }
}

void lp_sgemm_nt_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float *C, int64_t ldc) {
    product(1, M, N, K, A, lda, B, ldb, C, ldc);
}

void lp_sgemm_nn_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                        float *C, int64_t ldc) {
    product(0, M, N, K, A, lda, B, ldb, C, ldc);
}
