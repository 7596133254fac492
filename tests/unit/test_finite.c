/*
 * test_finite.c - the non-finite scan of the model guard (core/finite.h).
 *
 * The reference against the definition: every 16-bit pattern as f16 and as
 * bf16, and f32 patterns with every exponent and sign and many mantissas,
 * are non-finite exactly when isnan/isinf say so after conversion.
 * Every level (ref, AVX2, AVX-512 where this CPU has them) against the
 * reference on random arrays: lengths 0..600 and a few past the parallel
 * chunk (2^18 values), start addresses off by 0..3 bytes (the tensors are
 * views into a mapped file), none, one or two bad values (NaN with any
 * payload or sign, +Inf, -Inf) at random places including the first and last
 * element; finite words use random bits with any exponent but all ones, so
 * the largest finite values and subnormals are among them.
 */
#include "core/finite.h"
#include "core/half.h"
#include "test.h"

#include <stdint.h>

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) { /* xorshift64* */
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return (uint32_t)((g_rng * 0x2545f4914f6cdd1dull) >> 32);
}

static const uint16_t EXP16[3] = {0, 0x7f80u, 0x7c00u}; /* by lp_fp_type */

static void test_reference_definition(void) {
    for (uint32_t u = 0; u < 65536; u++) {
        const uint16_t h = (uint16_t)u;
        const float fh = lp_f16_to_f32(h), fb = lp_bf16_to_f32(h);
        CHECKF((lp_finite_find16_ref(&h, 1, 0x7c00u) == 0) == !isfinite(fh), "f16 0x%04x", u);
        CHECKF((lp_finite_find16_ref(&h, 1, 0x7f80u) == 0) == !isfinite(fb), "bf16 0x%04x", u);
        CHECK((lp_finite_find(LP_FP_F16, &h, 1) == 0) == !isfinite(fh));
        CHECK((lp_finite_find(LP_FP_BF16, &h, 1) == 0) == !isfinite(fb));
    }
    for (uint32_t e = 0; e < 256; e++)
        for (int k = 0; k < 512; k++) {
            const uint32_t m = k < 2 ? (k ? 0x7fffffu : 0u) : rnd() & 0x7fffffu;
            const uint32_t w = (rnd() & 0x80000000u) | (e << 23) | m;
            float f;
            memcpy(&f, &w, 4);
            CHECKF((lp_finite_find32_ref(&w, 1) == 0) == !isfinite(f), "f32 0x%08x", w);
        }
    CHECK(lp_finite_find(LP_FP_F32, NULL, 0) == -1 && lp_finite_find(LP_FP_BF16, NULL, -5) == -1);
}

/* A random finite word of the type: any bits, the exponent not all ones. */
static uint32_t finite_word(lp_fp_type t) {
    for (;;) {
        uint32_t w = rnd();
        if (t == LP_FP_F32 && (w & 0x7f800000u) != 0x7f800000u) return w;
        if (t != LP_FP_F32 && ((w & 0xffffu) & EXP16[t]) != EXP16[t]) return w & 0xffffu;
    }
}

/* A random non-finite word: NaN (any payload, any sign) or +-Inf. */
static uint32_t bad_word(lp_fp_type t) {
    const uint32_t r = rnd();
    if (t == LP_FP_F32) {
        const uint32_t mant = r % 3 == 0 ? 0 : (rnd() & 0x7fffffu) | 1u; /* Inf, or NaN */
        return (r & 0x80000000u) | 0x7f800000u | mant;
    }
    const uint16_t e = EXP16[t], mant_mask = (uint16_t)(~e & 0x7fffu);
    const uint16_t mant = r % 3 == 0 ? 0 : (uint16_t)((rnd() & mant_mask) | 1u);
    return (r & 0x8000u) | e | mant;
}

static void put(unsigned char *p, lp_fp_type t, int64_t i, uint32_t w) {
    if (t == LP_FP_F32) memcpy(p + 4 * i, &w, 4);
    else {
        const uint16_t h = (uint16_t)w;
        memcpy(p + 2 * i, &h, 2);
    }
}

static void check_levels(lp_fp_type t, int64_t n, int off, int nbad) {
    const size_t es = t == LP_FP_F32 ? 4 : 2;
    unsigned char *buf = malloc((size_t)n * es + 8), *p = buf + off;
    for (int64_t i = 0; i < n; i++) put(p, t, i, finite_word(t));
    int64_t want = -1;
    for (int k = 0; k < nbad && n > 0; k++) {
        const uint32_t r = rnd() % 4;
        const int64_t at = r == 0 ? 0 : r == 1 ? n - 1 : (int64_t)(rnd() % (uint32_t)n);
        put(p, t, at, bad_word(t));
        if (want < 0 || at < want) want = at;
    }
    const int64_t ref = t == LP_FP_F32 ? lp_finite_find32_ref(p, n) : lp_finite_find16_ref(p, n, EXP16[t]);
    CHECKF(ref == want, "ref: type %d n %lld off %d: %lld, expected %lld", t, (long long)n, off, (long long)ref,
           (long long)want);
    for (int isa = 0; isa < LP_ISA_N; isa++) {
        if (!lp_cpu_supports((lp_isa)isa)) continue;
        int64_t got = -2;
        if (n <= 4096) { /* the kernel itself, serial */
            if (isa == LP_ISA_AVX2)
                got = t == LP_FP_F32 ? lp_finite_find32_avx2(p, n) : lp_finite_find16_avx2(p, n, EXP16[t]);
            else if (isa == LP_ISA_AVX512)
                got = t == LP_FP_F32 ? lp_finite_find32_avx512(p, n) : lp_finite_find16_avx512(p, n, EXP16[t]);
            else got = ref;
            CHECKF(got == want, "%s kernel: type %d n %lld off %d: %lld, expected %lld", lp_isa_name((lp_isa)isa), t,
                   (long long)n, off, (long long)got, (long long)want);
        }
        got = lp_finite_find_isa((lp_isa)isa, t, p, n); /* through the dispatcher (chunks past 2^18) */
        CHECKF(got == want, "%s: type %d n %lld off %d: %lld, expected %lld", lp_isa_name((lp_isa)isa), t,
               (long long)n, off, (long long)got, (long long)want);
    }
    free(buf);
}

static void test_levels_agree(void) {
    int levels = 0;
    for (int isa = 0; isa < LP_ISA_N; isa++) levels += lp_cpu_supports((lp_isa)isa);
    printf("levels on this CPU: %d (ref%s%s)\n", levels, lp_cpu_supports(LP_ISA_AVX2) ? ", avx2" : "",
           lp_cpu_supports(LP_ISA_AVX512) ? ", avx512" : "");
    for (int t = 0; t < 3; t++)
        for (int64_t n = 0; n <= 600; n++)
            for (int nbad = 0; nbad <= 2; nbad++) check_levels((lp_fp_type)t, n, (int)(rnd() % 4), nbad);
    const int64_t big[] = {(int64_t)1 << 18, ((int64_t)1 << 19) + 37, 3 * ((int64_t)1 << 18) - 1};
    for (int t = 0; t < 3; t++)
        for (size_t b = 0; b < sizeof big / sizeof *big; b++)
            for (int nbad = 0; nbad <= 2; nbad++) check_levels((lp_fp_type)t, big[b], (int)(rnd() % 4), nbad);
    /* a bad value in every chunk: the first one wins, whatever the threads */
    const int64_t n = 5 * ((int64_t)1 << 18);
    float *a = calloc((size_t)n, sizeof *a);
    for (int64_t c = 4; c >= 1; c--) a[c * ((int64_t)1 << 18) + 3] = NAN;
    for (int isa = 0; isa < LP_ISA_N; isa++)
        if (lp_cpu_supports((lp_isa)isa))
            CHECK(lp_finite_find_isa((lp_isa)isa, LP_FP_F32, a, n) == ((int64_t)1 << 18) + 3);
    free(a);
}

int main(void) {
    test_reference_definition();
    test_levels_agree();
    TEST_DONE();
}
