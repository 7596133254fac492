/*
 * hsum_avx512.h - horizontal sums of four 16-lane f32 vectors at once, for
 * the AVX-512 kernel files (include it only from files built with AVX-512).
 *
 * What: lp_hsum4_avx512(a, b, c, d) = {sum a, sum b, sum c, sum d}.
 * Why: a product kernel ends each row with a horizontal sum; four rows
 * share the shuffles (8 ops where four single sums take ~20).
 * Design: pairs within 128-bit lanes, then the four 128-bit lanes. Each sum
 * is the same tree over its own vector's lanes whatever the other three
 * are, so a row's result never depends on its neighbours (the qgroup
 * kernels rely on it: gemv and gemv_multi group rows differently).
 */
#ifndef LP_HSUM_AVX512_H
#define LP_HSUM_AVX512_H

#include <immintrin.h>

static inline __attribute__((always_inline)) __m128 lp_hsum4_avx512(__m512 a, __m512 b, __m512 c, __m512 d) {
    const __m512 ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    const __m512 cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    const __m512 q = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(q), _mm512_extractf32x8_ps(q, 1));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

#endif
