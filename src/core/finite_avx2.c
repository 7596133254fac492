/*
 * finite_avx2.c - AVX2 scans of finite.h.
 *
 * Each step loads four 256-bit registers (128 bytes: 32 f32 or 64 16-bit
 * words), masks the exponent bits, compares them with the all-ones exponent
 * and ORs the four results; one vptest says whether the step holds a
 * non-finite value. Only then does the reference scan the step for the exact
 * index, so the result equals the reference's. The values before the first
 * 32-byte boundary (tensors in a mapped file start anywhere; a load across
 * two cache lines costs more) and the tail (under one step) go to the
 * reference too.
 */
#include "core/finite.h"

#include <immintrin.h>

static inline __m256i load(const unsigned char *q, int k) { return _mm256_loadu_si256((const __m256i *)q + k); }

/* Values of es bytes before p's next 32-byte boundary (0 when p is not a
 * multiple of es: the loads then stay unaligned), at most n. */
static inline int64_t head(const void *p, int64_t n, size_t es) {
    const uintptr_t a = (uintptr_t)p;
    const int64_t k = a % es ? 0 : (int64_t)((32 - a % 32) % 32 / es);
    return k < n ? k : n;
}

int64_t lp_finite_find32_avx2(const void *p, int64_t n) {
    const unsigned char *b = p;
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    int64_t i = head(p, n, 4);
    const int64_t r0 = lp_finite_find32_ref(b, i);
    if (r0 >= 0) return r0;
    for (; i + 32 <= n; i += 32) {
        const unsigned char *q = b + 4 * i;
        const __m256i m0 = _mm256_cmpeq_epi32(_mm256_and_si256(load(q, 0), e), e);
        const __m256i m1 = _mm256_cmpeq_epi32(_mm256_and_si256(load(q, 1), e), e);
        const __m256i m2 = _mm256_cmpeq_epi32(_mm256_and_si256(load(q, 2), e), e);
        const __m256i m3 = _mm256_cmpeq_epi32(_mm256_and_si256(load(q, 3), e), e);
        const __m256i m = _mm256_or_si256(_mm256_or_si256(m0, m1), _mm256_or_si256(m2, m3));
        if (!_mm256_testz_si256(m, m)) return i + lp_finite_find32_ref(q, 32);
    }
    const int64_t r = lp_finite_find32_ref(b + 4 * i, n - i);
    return r < 0 ? -1 : i + r;
}

int64_t lp_finite_find16_avx2(const void *p, int64_t n, uint16_t exp) {
    const unsigned char *b = p;
    const __m256i e = _mm256_set1_epi16((short)exp);
    int64_t i = head(p, n, 2);
    const int64_t r0 = lp_finite_find16_ref(b, i, exp);
    if (r0 >= 0) return r0;
    for (; i + 64 <= n; i += 64) {
        const unsigned char *q = b + 2 * i;
        const __m256i m0 = _mm256_cmpeq_epi16(_mm256_and_si256(load(q, 0), e), e);
        const __m256i m1 = _mm256_cmpeq_epi16(_mm256_and_si256(load(q, 1), e), e);
        const __m256i m2 = _mm256_cmpeq_epi16(_mm256_and_si256(load(q, 2), e), e);
        const __m256i m3 = _mm256_cmpeq_epi16(_mm256_and_si256(load(q, 3), e), e);
        const __m256i m = _mm256_or_si256(_mm256_or_si256(m0, m1), _mm256_or_si256(m2, m3));
        if (!_mm256_testz_si256(m, m)) return i + lp_finite_find16_ref(q, 64, exp);
    }
    const int64_t r = lp_finite_find16_ref(b + 2 * i, n - i, exp);
    return r < 0 ? -1 : i + r;
}
