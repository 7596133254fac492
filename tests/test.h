/*
 * test.h - a minimal test harness: CHECK macros that count failures and keep
 * going, asset lookup that skips (exit 77) when ../shared/assets is missing.
 */
#ifndef LP_TEST_H
#define LP_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int lp_test_failures = 0;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            lp_test_failures++;                                                   \
        }                                                                         \
    } while (0)

#define CHECKF(cond, ...)                                                         \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fprintf(stderr, "\n");                                                \
            lp_test_failures++;                                                   \
        }                                                                         \
    } while (0)

/* An lp_status call expected to succeed; prints lp_last_error() if not. */
#define CHECK_OK(expr)                                                            \
    do {                                                                          \
        lp_status st_ = (expr);                                                   \
        if (st_ != LP_OK) {                                                       \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, lp_last_error()); \
            lp_test_failures++;                                                   \
        }                                                                         \
    } while (0)

#define TEST_DONE()                                                               \
    do {                                                                          \
        if (lp_test_failures) {                                                   \
            fprintf(stderr, "FAILED: %d check(s)\n", lp_test_failures);           \
            return 1;                                                             \
        }                                                                         \
        printf("OK\n");                                                           \
        return 0;                                                                 \
    } while (0)

/* Path under the shared assets, or exit 77 (skip) when they are absent -- unless
 * checks have already failed: then exit 1, so a missing asset never turns
 * earlier failures into a skip. */
static inline const char *test_asset(const char *rel) {
    static char buf[4][4096];
    static int k = 0;
    const char *root = getenv("LP_ASSETS");
    if (!root) root = "../shared/assets";
    char *p = buf[k++ & 3];
    snprintf(p, 4096, "%s/%s", root, rel);
    FILE *f = fopen(p, "rb");
    if (!f) {
        if (lp_test_failures) {
            fprintf(stderr, "asset %s not found (set LP_ASSETS)\n", p);
            fprintf(stderr, "FAILED: %d check(s) before the missing asset\n", lp_test_failures);
            exit(1);
        }
        printf("SKIP: asset %s not found (set LP_ASSETS)\n", p);
        exit(77);
    }
    fclose(f);
    return p;
}

/* Path under tests/data. */
static inline const char *test_data(const char *rel) {
    static char buf[4][4096];
    static int k = 0;
    const char *root = getenv("LP_TESTDATA");
    if (!root) root = "tests/data";
    char *p = buf[k++ & 3];
    snprintf(p, 4096, "%s/%s", root, rel);
    return p;
}

/* Deterministic xorshift random numbers for tests. */
static inline unsigned long long test_rand_u64(unsigned long long *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
static inline float test_randn(unsigned long long *s) { /* ~N(0,1), Box-Muller */
    double u1 = ((test_rand_u64(s) >> 11) + 1.0) / 9007199254740993.0;
    double u2 = (test_rand_u64(s) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#endif
