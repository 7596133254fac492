/*
 * test_argmax.c - lp_argmax (core/argmax.h) against its definition, the
 * scalar `if (z[i] > z[best]) best = i` from best = 0: on random rows of
 * every length from 0 to 100 and of 32000, with ties (values drawn from a
 * few levels), NaNs anywhere (first included), infinities, -0 next to 0,
 * and the maximum in the last lanes and in the tail past whole rows.
 */
#include "core/argmax.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

static int64_t spec(const float *z, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (z[i] > z[best]) best = i;
    return best;
}

/* One random value: a few levels (ties), or anything, with specials. */
static float draw(unsigned long long *s, int mode) {
    const unsigned r = (unsigned)(test_rand_u64(s) % 100);
    if (r < 3) return NAN;
    if (r < 5) return r == 3 ? INFINITY : -INFINITY;
    if (r < 7) return r == 5 ? 0.0f : -0.0f;
    return mode ? (float)(test_rand_u64(s) % 4) : test_randn(s);
}

int main(void) {
    unsigned long long seed = 7;
    float *z = malloc(32000 * sizeof(float));
    int cases = 0;
    CHECK(lp_argmax(NULL, 0) == 0);
    for (int rep = 0; rep < 200; rep++)
        for (int64_t n = 1; n <= 100; n++) {
            for (int64_t i = 0; i < n; i++) z[i] = draw(&seed, rep % 2);
            if (rep % 7 == 0) z[n - 1] = 1e30f; /* the maximum in the last place */
            const int64_t got = lp_argmax(z, n), want = spec(z, n);
            CHECKF(got == want, "n = %lld, rep %d: %lld, expected %lld", (long long)n, rep, (long long)got,
                   (long long)want);
            cases++;
        }
    for (int rep = 0; rep < 50; rep++) {
        for (int64_t i = 0; i < 32000; i++) z[i] = draw(&seed, rep % 2);
        const int64_t got = lp_argmax(z, 32000), want = spec(z, 32000);
        CHECKF(got == want, "n = 32000, rep %d: %lld, expected %lld", rep, (long long)got, (long long)want);
        cases++;
    }
    z[0] = NAN, z[1] = 5.0f; /* a NaN first stays the answer, as in the definition */
    CHECK(lp_argmax(z, 2) == 0);
    free(z);
    printf("lp_argmax == the scalar definition on %d rows\n", cases);
    TEST_DONE();
}
