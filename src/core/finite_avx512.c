/*
 * finite_avx512.c - AVX-512 scans of finite.h.
 *
 * Each step loads four 512-bit registers (256 bytes: 64 f32 or 128 16-bit
 * words). Per lane, (w & E) + (E & -E) carries into the sign bit exactly when
 * the exponent bits E are all ones (0x7f800000 + 0x00800000 = 0x80000000;
 * any smaller exponent stays below it; likewise 0x7f80 + 0x0080 and 0x7c00 +
 * 0x0400 in 16-bit lanes), so OR-ing the four sums and testing their sign
 * bits says whether the step holds a non-finite value - all in vector
 * registers. Only then does the reference scan the step for the exact index,
 * so the result equals the reference's. The values before the first 64-byte
 * boundary (tensors in a mapped file start anywhere; a 64-byte load across two
 * cache lines costs about half again) and the tail (under one step) go to the
 * reference too. 16-bit adds need AVX-512BW, which LP_ISA_AVX512 includes.
 */
#include "core/finite.h"

#include <immintrin.h>

static inline __m512i load(const unsigned char *q, int k) { return _mm512_loadu_si512((const __m512i *)q + k); }

/* Values of es bytes before p's next 64-byte boundary (0 when p is not a
 * multiple of es: the loads then stay unaligned), at most n. */
static inline int64_t head(const void *p, int64_t n, size_t es) {
    const uintptr_t a = (uintptr_t)p;
    const int64_t k = a % es ? 0 : (int64_t)((64 - a % 64) % 64 / es);
    return k < n ? k : n;
}

/* sign bits of (w & e) + u, OR-ed over the step's four registers */
#define STEP(add)                                                                                                  \
    _mm512_ternarylogic_epi32(_mm512_or_si512(add(_mm512_and_si512(load(q, 0), e), u),                             \
                                              add(_mm512_and_si512(load(q, 1), e), u)),                            \
                              add(_mm512_and_si512(load(q, 2), e), u), add(_mm512_and_si512(load(q, 3), e), u), 0xfe)

int64_t lp_finite_find32_avx512(const void *p, int64_t n) {
    const unsigned char *b = p;
    const __m512i e = _mm512_set1_epi32(0x7f800000), u = _mm512_set1_epi32(0x00800000);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    int64_t i = head(p, n, 4);
    const int64_t r0 = lp_finite_find32_ref(b, i);
    if (r0 >= 0) return r0;
    for (; i + 64 <= n; i += 64) {
        const unsigned char *q = b + 4 * i;
        if (_mm512_test_epi32_mask(STEP(_mm512_add_epi32), sign)) return i + lp_finite_find32_ref(q, 64);
    }
    const int64_t r = lp_finite_find32_ref(b + 4 * i, n - i);
    return r < 0 ? -1 : i + r;
}

int64_t lp_finite_find16_avx512(const void *p, int64_t n, uint16_t exp) {
    const unsigned char *b = p;
    const __m512i e = _mm512_set1_epi16((short)exp), u = _mm512_set1_epi16((short)(exp & -exp));
    const __m512i sign = _mm512_set1_epi16((short)0x8000);
    int64_t i = head(p, n, 2);
    const int64_t r0 = lp_finite_find16_ref(b, i, exp);
    if (r0 >= 0) return r0;
    for (; i + 128 <= n; i += 128) {
        const unsigned char *q = b + 2 * i;
        if (_mm512_test_epi16_mask(STEP(_mm512_add_epi16), sign)) return i + lp_finite_find16_ref(q, 128, exp);
    }
    const int64_t r = lp_finite_find16_ref(b + 2 * i, n - i, exp);
    return r < 0 ? -1 : i + r;
}
