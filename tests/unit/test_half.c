/*
 * test_half.c - f16 and bf16 conversions (core/half.h).
 *
 * f16: all 65536 values f16 -> f32 -> f16 round trip bit-exactly (NaNs stay
 * NaN with their sign); f16 -> f32 and f32 -> f16 (round to nearest even)
 * agree with the CPU's F16C instructions on every f16 value, every rounding
 * boundary (midpoints between neighbours and one ulp either side), edge cases
 * and millions of random and swept f32 bit patterns.
 * bf16: the same round trip, and f32 -> bf16 against a reference that rounds
 * to nearest even by comparing exact distances in double.
 */
#include "core/half.h"
#include "test.h"

#include <float.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86 1
#endif

static uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static int f16_is_nan(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu); }
static int bf16_is_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x7fu); }

/* ---- hardware reference (F16C) ---- */

#ifdef HAVE_X86
static int have_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c >> 29) & 1; /* CPUID.1:ECX.F16C[bit 29] */
}

/* The only function compiled for F16C; called only when the CPU has it. */
__attribute__((target("f16c"))) static void f16c_convert(const float *x, uint16_t *h_out,
                                                          const uint16_t *h, float *f_out, int n) {
    for (int i = 0; i < n; i++) {
        h_out[i] = (uint16_t)_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
        f_out[i] = _cvtsh_ss(h[i]);
    }
}
#endif

/* f32 -> f16 of one value against the hardware. */
typedef struct {
    float *x;
    int n, cap;
} fvec;

static void fv_push(fvec *v, float x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1 << 16;
        v->x = realloc(v->x, (size_t)v->cap * sizeof *v->x);
        if (!v->x) exit(1);
    }
    v->x[v->n++] = x;
}

/* Every f16 boundary: each finite value, the midpoint to its upper
 * neighbour (exact in f32: 12 significant bits), and one f32 ulp around
 * both; then edge cases, random bit patterns and a sweep over all of f32. */
static void collect_f32_inputs(fvec *v) {
    for (uint32_t h = 0; h < 0x7c00u; h++) {
        for (int s = 0; s < 2; s++) {
            float sign = s ? -1.0f : 1.0f;
            float a = lp_f16_to_f32((uint16_t)h), b = lp_f16_to_f32((uint16_t)(h + 1));
            float mid = (float)(((double)a + (double)b) / 2); /* exact */
            const float pts[] = {a, mid};
            for (int k = 0; k < 2; k++) {
                fv_push(v, sign * pts[k]);
                fv_push(v, sign * nextafterf(pts[k], INFINITY));
                fv_push(v, sign * nextafterf(pts[k], -INFINITY));
            }
        }
    }
    const float edges[] = {0.0f, -0.0f, INFINITY, -INFINITY, FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN,
                           FLT_TRUE_MIN, -FLT_TRUE_MIN, 65504.0f, 65519.99f, 65520.0f, 65536.0f,
                           1e10f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f, 0x1.8p-25f, 0x1.8p-24f,
                           0x1p-14f, 0x1.ff8p-15f, 0x1.ffcp-15f, 1.0f, 1.0009765625f, 2048.5f,
                           NAN, -NAN, u2f(0x7f800001u), u2f(0xffc00001u), u2f(0x7fa00000u)};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) fv_push(v, edges[i]);
    unsigned long long seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 2000000; i++) fv_push(v, u2f((uint32_t)test_rand_u64(&seed)));
    /* Random values in the f16 range, where rounding is exercised hardest. */
    for (int i = 0; i < 2000000; i++) fv_push(v, test_randn(&seed) * 100.0f);
    for (uint64_t u = 0; u <= 0xffffffffull; u += 1021) fv_push(v, u2f((uint32_t)u));
}

static void test_f16_roundtrip(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lp_f16_to_f32((uint16_t)h);
        uint16_t back = lp_f32_to_f16(f);
        if (f16_is_nan((uint16_t)h)) {
            if (!isnan(f) || !f16_is_nan(back) || (back & 0x8000u) != (h & 0x8000u)) bad++;
        } else if (back != h) {
            if (bad++ < 5) fprintf(stderr, "f16 0x%04x -> %a -> 0x%04x\n", h, (double)f, back);
        }
    }
    CHECKF(bad == 0, "%d f16 values do not round-trip", bad);
    /* A few known values. */
    CHECK(lp_f16_to_f32(0x3c00) == 1.0f);
    CHECK(lp_f16_to_f32(0xc000) == -2.0f);
    CHECK(lp_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(lp_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(lp_f16_to_f32(0x7c00) == INFINITY);
    CHECK(lp_f32_to_f16(65520.0f) == 0x7c00); /* tie at the top rounds to even = inf */
    CHECK(lp_f32_to_f16(0x1p-25f) == 0x0000); /* tie between 0 and 2^-24 -> 0 */
    CHECK(lp_f32_to_f16(0x1.8p-24f) == 0x0002); /* tie between 1 and 2 ulps -> 2 */
}

static void test_f16_vs_f16c(void) {
#ifdef HAVE_X86
    if (!have_f16c()) {
        printf("note: CPU lacks F16C, hardware comparison skipped\n");
        return;
    }
    /* f16 -> f32 on all 65536 values. */
    static float xs[65536], hw_f[65536];
    static uint16_t hs[65536], hw_h[65536];
    for (int i = 0; i < 65536; i++) {
        hs[i] = (uint16_t)i;
        xs[i] = 0.0f;
    }
    f16c_convert(xs, hw_h, hs, hw_f, 65536);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        float f = lp_f16_to_f32((uint16_t)i);
        if (f16_is_nan((uint16_t)i) ? !isnan(hw_f[i]) || !isnan(f) : f2u(f) != f2u(hw_f[i])) bad++;
    }
    CHECKF(bad == 0, "%d f16 -> f32 conversions differ from F16C", bad);

    /* f32 -> f16 on every boundary and many random/swept values. */
    fvec v = {0};
    collect_f32_inputs(&v);
    uint16_t *out = malloc((size_t)v.n * sizeof *out);
    uint16_t *dummy_h = calloc((size_t)v.n, sizeof *dummy_h);
    float *dummy_f = malloc((size_t)v.n * sizeof *dummy_f);
    if (!out || !dummy_h || !dummy_f) exit(1);
    f16c_convert(v.x, out, dummy_h, dummy_f, v.n);
    bad = 0;
    for (int i = 0; i < v.n; i++) {
        uint16_t mine = lp_f32_to_f16(v.x[i]);
        int ok = isnan(v.x[i]) ? f16_is_nan(mine) && f16_is_nan(out[i]) &&
                                     (mine & 0x8000u) == (out[i] & 0x8000u)
                               : mine == out[i];
        if (!ok && bad++ < 5)
            fprintf(stderr, "f32 %a (0x%08x) -> 0x%04x, F16C gives 0x%04x\n", (double)v.x[i],
                    f2u(v.x[i]), mine, out[i]);
    }
    CHECKF(bad == 0, "%d of %d f32 -> f16 conversions differ from F16C", bad, v.n);
    CHECK(v.n > 8000000);
    free(out);
    free(dummy_h);
    free(dummy_f);
    free(v.x);
#else
    printf("note: not x86, F16C comparison skipped\n");
#endif
}

/* ---- bf16 ---- */

/* Round to nearest even by exact distances: the two bf16 candidates are the
 * truncation (toward zero) and the next value away from zero; past the
 * largest finite bf16 the "next value" is 2^128, which rounds to infinity. */
static uint16_t bf16_ref(float x) {
    uint32_t u = f2u(x);
    uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
    double vx = fabs((double)x), vlo = fabs((double)u2f(lo));
    double vhi = ((hi & 0x7f800000u) == 0x7f800000u) ? 0x1p128 : fabs((double)u2f(hi));
    double dlo = vx - vlo, dhi = vhi - vx;
    if (dlo < dhi) return (uint16_t)(lo >> 16);
    if (dhi < dlo) return (uint16_t)(hi >> 16);
    return (lo >> 16) & 1 ? (uint16_t)(hi >> 16) : (uint16_t)(lo >> 16);
}

static void test_bf16(void) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lp_bf16_to_f32((uint16_t)h);
        CHECK(f2u(f) == h << 16);
        uint16_t back = lp_f32_to_bf16(f);
        if (bf16_is_nan((uint16_t)h) ? !bf16_is_nan(back) || (back & 0x8000u) != (h & 0x8000u)
                                     : back != h)
            bad++;
    }
    CHECKF(bad == 0, "%d bf16 values do not round-trip", bad);

    bad = 0;
    int n = 0;
    unsigned long long seed = 12345;
    for (int i = 0; i < 6000000; i++) {
        uint32_t u;
        if (i < 2000000) {
            u = (uint32_t)test_rand_u64(&seed);
        } else if (i < 4000000) {
            /* exact midpoints (low half 0x8000) and one ulp around them */
            u = ((uint32_t)test_rand_u64(&seed) & 0xffff0000u) | 0x8000u;
            u += (uint32_t)(i % 3) - 1u;
        } else {
            u = f2u(test_randn(&seed) * 3.0f);
        }
        float x = u2f(u);
        uint16_t mine = lp_f32_to_bf16(x);
        n++;
        if (isnan(x)) {
            if (!bf16_is_nan(mine) || (mine & 0x8000u) != ((u >> 16) & 0x8000u)) bad++;
        } else if (mine != bf16_ref(x)) {
            if (bad++ < 5) fprintf(stderr, "bf16(0x%08x) = 0x%04x, ref 0x%04x\n", u, mine, bf16_ref(x));
        }
    }
    CHECKF(bad == 0, "%d of %d f32 -> bf16 conversions wrong", bad, n);
    CHECK(lp_f32_to_bf16(FLT_MAX) == 0x7f80);          /* rounds up to inf */
    CHECK(lp_f32_to_bf16(u2f(0x3f808000u)) == 0x3f80); /* tie -> even (down) */
    CHECK(lp_f32_to_bf16(u2f(0x3f818000u)) == 0x3f82); /* tie -> even (up) */
    CHECK(lp_f32_to_bf16(u2f(0x3f808001u)) == 0x3f81);
    CHECK(bf16_is_nan(lp_f32_to_bf16(u2f(0x7f800001u)))); /* payload only in low bits: stays NaN */
}

int main(void) {
    test_f16_roundtrip();
    test_f16_vs_f16c();
    test_bf16();
    TEST_DONE();
}
