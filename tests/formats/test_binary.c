/*
 * test_binary.c - the binary format (format/binary.h): sign planes, salient
 * columns, per-(row, block) means or row x column scales, held weights as
 * 8-bit codes (hbits 8) or f16 values (hbits 16).
 *  - every shape combination (ngs 0/1/2 x ngn 1/2 x rc x held none / 8-bit
 *    / f16, block 32, 64, 128 and cols), with a block that has no salient
 *    column, a row with no held weight, signed zeros and subnormal f16
 *    parameters and held values (and the largest finite f16), plus ngs = 2
 *    with no salient column at all and held with no held weight:
 *    dequantization at every level this CPU supports equals lp_binary_value
 *    (the definition) bit for bit;
 *  - products at every level (packed kernels forced, and the sgemm path)
 *    match a double-precision product of the dequantized matrix for
 *    T = 1, 3, 4, 5, 17; each token of a multi-token call is bit-identical to
 *    a one-token call; one or two threads give the same bits;
 *  - nbytes and paper_bits are the exact formulas (2 bytes and 16 paper bits
 *    per f16 held weight, no grid);
 *  - save -> load through a safetensors file gives the same bytes,
 *    description and bit-identical dequantization and products;
 *  - corrupt files (wrong shape, missing plane, NaN or infinite parameter or
 *    column scale, b2 padding bit, codes count mismatch, bad S or Z, NaN or
 *    infinite f16 held value, codes of the wrong dtype for hbits, hbits not
 *    8 or 16, block not dividing cols, unknown ngs, cols not a multiple of
 *    32) fail with
 *    LP_ERR_FORMAT naming the tensor or setting; bad init arguments with
 *    LP_ERR_ARG.
 * Shapes: W is rows x cols (out x in), X is T x cols, Y is T x rows.
 */
#include "test.h"

#include "core/half.h"
#include "format/binary.h"
#include "format/linear.h"

#include <omp.h>
#include <unistd.h>

static char g_dir[256];
static const lp_isa ISAS[] = {LP_ISA_REF, LP_ISA_AVX2, LP_ISA_AVX512};
static void (*const DEQUANT[LP_ISA_N])(const void *, int64_t, int64_t, float *) = {
    lp_binary_dequant_ref, lp_binary_dequant_avx2, lp_binary_dequant_avx512};

static double max_d(double a, double b) { return a > b ? a : b; }
static double unif(unsigned long long *s) { return (double)(test_rand_u64(s) >> 11) / 9007199254740992.0; }

/* A random f16 parameter of about `scale`: sometimes +0, -0 or subnormal. */
static uint16_t rand_param(unsigned long long *s, double scale, bool positive) {
    const unsigned u = (unsigned)(test_rand_u64(s) % 40);
    if (u == 0) return 0x0000;
    if (u == 1) return 0x8000;
    if (u == 2) return (uint16_t)(0x0001 + test_rand_u64(s) % 0x3ff); /* subnormal */
    float v = (float)(scale * test_randn(s));
    return lp_f32_to_f16(positive ? fabsf(v) : v);
}

/* A random f16 held value: as rand_param, sometimes the largest finite f16. */
static uint16_t rand_held16(unsigned long long *s) {
    const unsigned u = (unsigned)(test_rand_u64(s) % 60);
    if (u == 0) return 0x7bff;
    if (u == 1) return 0xfbff;
    return rand_param(s, 0.1, false);
}

static int64_t popcount_words(const uint32_t *p, int64_t n) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        for (uint32_t v = p[i]; v; v &= v - 1) k++;
    return k;
}

enum { NO_SALIENT = 1, NO_HELD = 2 };

/* Random binary weight: ~12% salient columns (none in block 1 when there is
 * one), ~8% held weights (none in row 2). */
static lp_status make_binary(lp_binary *w, int64_t R, int64_t C, lp_binary_shape sh, unsigned flags,
                             unsigned long long *s) {
    const int64_t W = C / 32;
    uint32_t *col = calloc((size_t)W, 4), *hm = calloc((size_t)(R * W), 4);
    if (sh.ngs && !(flags & NO_SALIENT))
        for (int64_t c = 0; c < C; c++)
            if (unif(s) < 0.12 && !(C / sh.block > 1 && c / sh.block == 1)) lp_binary_set(col, c, 1);
    if (sh.held && !(flags & NO_HELD))
        for (int64_t i = 0; i < R * C; i++)
            if (unif(s) < 0.08 && i / C != 2) lp_binary_set(hm, i, 1);
    const int64_t nheld = sh.held ? popcount_words(hm, R * W) : 0;
    lp_status st = lp_binary_init(w, R, C, &sh, sh.ngs ? col : NULL, nheld);
    if (st == LP_OK) {
        for (int64_t i = 0; i < R * W; i++) {
            w->s0[i] = (uint32_t)test_rand_u64(s);
            if (w->b1) w->b1[i] = (uint32_t)test_rand_u64(s);
        }
        for (int64_t r = 0; w->b2 && r < R; r++)
            for (int64_t k = 0; k < w->nsal; k++) lp_binary_set(w->b2 + r * w->words2, k, (int)(test_rand_u64(s) & 1));
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < w->nblocks; j++) {
                uint16_t *P = lp_binary_rp(w, r, j);
                for (int k = 0; k < w->npr; k++) P[k] = rand_param(s, w->rc ? 0.05 : 0.03, false);
            }
        for (int64_t i = 0; w->cp && i < w->ncp * C; i++) w->cp[i] = rand_param(s, 1.0, true);
        if (sh.held && w->hbits == 16) {
            memcpy(w->hmask, hm, (size_t)(R * W) * 4);
            for (int64_t i = 0; i < nheld; i++) w->codes16[i] = rand_held16(s);
        } else if (sh.held) {
            memcpy(w->hmask, hm, (size_t)(R * W) * 4);
            for (int64_t i = 0; i < nheld; i++) w->codes[i] = (uint8_t)test_rand_u64(s);
            for (int64_t r = 0; r < R; r++) {
                w->hq[2 * r] = (float)(0.001 + 0.01 * unif(s));
                w->hq[2 * r + 1] = (float)(test_rand_u64(s) % 256);
            }
        }
        st = lp_binary_finish(w);
    }
    free(col);
    free(hm);
    return st;
}

/* The byte count, from the layout table in binary.h. */
static size_t nbytes_formula(const lp_binary *w) {
    const int64_t R = w->rows, C = w->cols, W = C / 32, NB = C / w->block, ngs = w->ngs, ngn = w->ngn;
    const int64_t npr = w->rc ? 2 * ngs + ngn : 3 * ngs + 2 * ngn, nsal = popcount_words(w->colmask, ngs ? W : 0);
    size_t n = (size_t)(R * W * 4) + (size_t)(R * NB * npr * 2);
    if (ngs > 0 || ngn == 2) n += (size_t)(R * W * 4);
    if (ngs > 0) n += (size_t)(W * 4);
    if (ngs == 2) n += (size_t)(R * ((nsal + 31) / 32) * 4);
    if (w->rc) n += (size_t)((2 * ngs + ngn) * C * 2);
    const size_t nheld = w->held ? (size_t)popcount_words(w->hmask, R * W) : 0;
    if (w->held && w->hbits == 16) n += (size_t)(R * W * 4) + 2 * nheld; /* hmask, codes16 */
    else if (w->held) n += (size_t)(R * W * 4) + nheld + (size_t)(R * 8); /* hmask, codes, hq */
    return n;
}

static void describe_case(const lp_binary *w, char *buf, size_t n) {
    snprintf(buf, n, "binary %lldx%lld b%lld ngs=%d ngn=%d rc=%d held=%d hbits=%d nsal=%lld nheld=%lld",
             (long long)w->rows, (long long)w->cols, (long long)w->block, w->ngs, w->ngn, w->rc, w->held, w->hbits,
             (long long)w->nsal, (long long)w->nheld);
}

/* Dequantization, products, threads, bytes and bits of one weight. */
static void check_kernels(const lp_binary *w, unsigned long long *seed, double *worst) {
    const int64_t R = w->rows, C = w->cols;
    enum { TMAX = 17 };
    char name[200];
    describe_case(w, name, sizeof name);
    float *D = malloc((size_t)(R * C) * sizeof(float)), *E = malloc((size_t)(R * C) * sizeof(float));

    /* dequantization: the definition, then every level bit for bit (from row 3 on too) */
    lp_binary_dequant_ref(w, 0, R, D);
    int64_t bad = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) bad += memcmp(&D[r * C + c], &(float){lp_binary_value(w, r, c)}, 4) != 0;
    CHECKF(bad == 0, "%s: %lld reference dequantized values differ from lp_binary_value", name, (long long)bad);
    for (int i = 1; i < LP_ISA_N; i++) {
        if (!lp_cpu_supports(ISAS[i])) continue;
        const int64_t r0 = R > 3 ? 3 : 0;
        memset(E, 0xff, (size_t)(R * C) * sizeof(float));
        DEQUANT[i](w, r0, R, E + r0 * C);
        bad = 0;
        for (int64_t e = r0 * C; e < R * C; e++) bad += memcmp(&D[e], &E[e], 4) != 0;
        CHECKF(bad == 0, "%s: %s dequantization differs from the reference in %lld values", name,
               lp_isa_name(ISAS[i]), (long long)bad);
    }
    lp_format_binary.dequant(w, 0, R, E); /* the traits row: this CPU's level, threaded */
    CHECKF(!memcmp(D, E, (size_t)(R * C) * sizeof(float)), "%s: the traits row's dequantization differs", name);

    /* products against a double product of D */
    float *X = malloc((size_t)(TMAX * C) * sizeof(float)), *Y = malloc((size_t)(TMAX * R) * sizeof(float));
    float *Y2 = malloc((size_t)(TMAX * R) * sizeof(float));
    double *want = malloc((size_t)(TMAX * R) * sizeof(double)), *mag = malloc((size_t)(TMAX * R) * sizeof(double));
    for (int64_t i = 0; i < TMAX * C; i++) X[i] = test_randn(seed);
    for (int64_t t = 0; t < TMAX; t++)
        for (int64_t r = 0; r < R; r++) {
            double acc = 0, m = 0;
            for (int64_t c = 0; c < C; c++) {
                acc += (double)D[r * C + c] * X[t * C + c];
                m += fabs((double)D[r * C + c] * X[t * C + c]);
            }
            want[t * R + r] = acc;
            mag[t * R + r] = m > 0 ? m : 1;
        }
    static const int64_t Ts[] = {1, 3, 4, 5, 17};
    for (int i = 0; i < LP_ISA_N; i++) {
        if (!lp_cpu_supports(ISAS[i])) {
            CHECK(lp_binary_gemm_ex(w, X, 1, Y, ISAS[i], 0) == LP_ERR_UNSUPPORTED);
            continue;
        }
        for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++) {
            const int64_t T = Ts[ti];
            for (int path = 0; path < 2; path++) { /* 0: packed kernels, 1: dequantized tiles + sgemm */
                CHECK_OK(lp_binary_gemm_ex(w, X, T, Y, ISAS[i], path ? 1 : 1000));
                double e = 0;
                for (int64_t j = 0; j < T * R; j++) e = max_d(e, fabs((double)Y[j] - want[j]) / mag[j]);
                if (i > 0 && !path) *worst = max_d(*worst, e);
                CHECKF(e < 1e-5, "%s: %s %s T=%lld vs double product: %.3g", name, lp_isa_name(ISAS[i]),
                       path ? "sgemm" : "packed", (long long)T, e);
            }
        }
        /* per token, T does not matter; nor does the thread count (both paths) */
        CHECK_OK(lp_binary_gemm_ex(w, X, 5, Y, ISAS[i], 1000));
        for (int64_t t = 0; t < 5; t++) {
            CHECK_OK(lp_binary_gemm_ex(w, X + t * C, 1, Y2, ISAS[i], 1000));
            CHECKF(!memcmp(Y2, Y + t * R, (size_t)R * sizeof(float)), "%s %s: token %lld of 5 differs from T = 1",
                   name, lp_isa_name(ISAS[i]), (long long)t);
        }
        for (int path = 0; path < 2; path++) {
            const int64_t bm = path ? 1 : 1000;
            const int nth = omp_get_max_threads();
            CHECK_OK(lp_binary_gemm_ex(w, X, TMAX, Y, ISAS[i], bm));
            omp_set_num_threads(nth > 1 ? 1 : 2);
            CHECK_OK(lp_binary_gemm_ex(w, X, TMAX, Y2, ISAS[i], bm));
            omp_set_num_threads(nth);
            CHECKF(!memcmp(Y, Y2, (size_t)(TMAX * R) * sizeof(float)), "%s %s %s: the thread count changed the "
                   "result", name, lp_isa_name(ISAS[i]), path ? "sgemm" : "packed");
        }
    }
    /* the traits row's product (this CPU's level, its own threshold) */
    CHECK_OK(lp_format_gemm(&lp_format_binary, lp_cpu_isa())(w, X, TMAX, Y));
    double e = 0;
    for (int64_t j = 0; j < TMAX * R; j++) e = max_d(e, fabs((double)Y[j] - want[j]) / mag[j]);
    CHECKF(e < 1e-5, "%s: traits-row product vs double product: %.3g", name, e);

    /* exact sizes */
    CHECKF(lp_binary_nbytes(w) == nbytes_formula(w) && lp_format_binary.nbytes(w) == nbytes_formula(w),
           "%s: nbytes %zu, formula %zu", name, lp_binary_nbytes(w), nbytes_formula(w));
    /* +7 per 8-bit held weight, +15 per f16 one */
    const double bits = (double)(R * C) + (double)(R * popcount_words(w->colmask, w->ngs ? C / 32 : 0)) +
                        (w->hbits == 16 ? 15.0 : 7.0) * (double)popcount_words(w->hmask, w->held ? R * C / 32 : 0);
    CHECKF(lp_binary_paper_bits(w) == bits && lp_format_binary.paper_bits(w) == bits, "%s: paper bits %.0f, "
           "formula %.0f", name, lp_binary_paper_bits(w), bits);
    free(D), free(E), free(X), free(Y), free(Y2), free(want), free(mag);
}

/* ---- files ---- */

static const char *file_path(const char *name) {
    static char p[4][512];
    static int i = 0;
    char *s = p[i++ & 3];
    snprintf(s, 512, "%s/%s", g_dir, name);
    return s;
}

static lp_status load_file(const char *path, int64_t rows, int64_t cols, lp_linear *l, lp_weights **wts) {
    *wts = NULL;
    memset(l, 0, sizeof *l);
    lp_status st = lp_weights_open(path, wts);
    if (st != LP_OK) return st;
    const lp_fmt_src in = {*wts, path};
    return lp_linear_load_packed(&in, "blk.lin", rows, cols, l);
}

static bool same_array(const void *a, const void *b, size_t n) { return n == 0 || (a && b && !memcmp(a, b, n)); }

/* Save a one-part linear, load it back: same bytes, description, values and outputs. */
static void check_round_trip(lp_binary *w, unsigned long long *seed) {
    const int64_t R = w->rows, C = w->cols, T = 3;
    char name[200];
    describe_case(w, name, sizeof name);
    lp_linear l = {.rows = R, .cols = C};
    lp_linear_set(&l, &lp_format_binary, w); /* borrowed: taken back below */
    lp_st_writer *wr = NULL;
    const char *p = file_path("rt.safetensors");
    CHECK_OK(lp_st_writer_init(&wr));
    CHECK_OK(lp_linear_save(&l, wr, "blk.lin"));
    CHECK_OK(lp_st_writer_save(wr, p));
    lp_st_writer_free(wr);
    lp_linear m;
    lp_weights *wts;
    lp_status st = load_file(p, R, C, &m, &wts);
    CHECKF(st == LP_OK, "%s: load: %s", name, lp_last_error());
    const lp_binary *v = st == LP_OK ? lp_linear_data(&m, &lp_format_binary) : NULL;
    CHECKF(v != NULL, "%s: the loaded linear is not one binary part", name);
    if (v) {
        const size_t plane = (size_t)(R * w->words) * 4;
        CHECKF(v->block == w->block && v->ngs == w->ngs && v->ngn == w->ngn && v->rc == w->rc &&
                   v->held == w->held && v->hbits == w->hbits && v->nsal == w->nsal && v->nheld == w->nheld &&
                   v->owns == 0,
               "%s: loaded shape differs", name);
        CHECKF(same_array(w->s0, v->s0, plane) && (!w->b1 || same_array(w->b1, v->b1, plane)) &&
                   (!w->ngs || same_array(w->colmask, v->colmask, (size_t)w->words * 4)) &&
                   (w->ngs != 2 || same_array(w->b2, v->b2, (size_t)(R * w->words2) * 4)) &&
                   same_array(w->rp, v->rp, (size_t)(R * w->nblocks * w->npr) * 2) &&
                   (!w->rc || same_array(w->cp, v->cp, (size_t)(w->ncp * C) * 2)) &&
                   (!w->held || (same_array(w->hmask, v->hmask, plane) &&
                                 (w->hbits == 16 ? same_array(w->codes16, v->codes16, (size_t)w->nheld * 2) &&
                                                       !v->codes && !v->hq
                                                 : same_array(w->codes, v->codes, (size_t)w->nheld) &&
                                                       same_array(w->hq, v->hq, (size_t)R * 8) && !v->codes16))) &&
                   !memcmp(w->sal_before, v->sal_before, (size_t)(w->nblocks + 1) * 8) &&
                   !memcmp(w->hoff, v->hoff, (size_t)(R + 1) * 8),
               "%s: loaded arrays differ", name);
        CHECK(lp_binary_nbytes(v) == lp_binary_nbytes(w));
        float *D0 = malloc((size_t)(R * C) * sizeof(float)), *D1 = malloc((size_t)(R * C) * sizeof(float));
        lp_binary_dequant(w, 0, R, D0);
        lp_binary_dequant(v, 0, R, D1);
        CHECKF(!memcmp(D0, D1, (size_t)(R * C) * sizeof(float)), "%s: loaded dequantization differs", name);
        float *X = malloc((size_t)(T * C) * sizeof(float)), *Y0 = malloc((size_t)(T * R) * sizeof(float));
        float *Y1 = malloc((size_t)(T * R) * sizeof(float));
        for (int64_t i = 0; i < T * C; i++) X[i] = test_randn(seed);
        CHECK_OK(lp_linear_forward(&l, X, T, Y0));
        CHECK_OK(lp_linear_forward(&m, X, T, Y1));
        CHECKF(!memcmp(Y0, Y1, (size_t)(T * R) * sizeof(float)), "%s: loaded outputs differ", name);
        char d0[200], d1[200];
        lp_linear_describe(&l, d0, sizeof d0);
        lp_linear_describe(&m, d1, sizeof d1);
        CHECKF(!strcmp(d0, d1) && strstr(d0, "binary"), "%s: described as \"%s\" then \"%s\"", name, d0, d1);
        if (w->held)
            CHECKF(strstr(d0, w->hbits == 16 ? "held f16 weights" : "held 8-bit weights") != NULL,
                   "%s: described as \"%s\"", name, d0);
        free(D0), free(D1), free(X), free(Y0), free(Y1);
    }
    l.nparts = 0; /* give the part back to the caller */
    lp_linear_free(&l);
    lp_linear_free(&m);
    lp_weights_close(wts);
    unlink(p);
}

static void check_all_shapes(unsigned long long *seed, double *worst) {
    enum { R = 37, C = 256 };
    static const int64_t blocks[] = {32, 64, 128, C};
    int n = 0;
    for (int ngs = 0; ngs <= 2; ngs++)
        for (int ngn = 1; ngn <= 2; ngn++)
            for (int rc = 0; rc <= 1; rc++)
                for (int held = 0; held <= 2; held++) /* none, 8-bit codes (hbits 0 or 8), f16 values */
                    for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
                        lp_binary w;
                        const int hbits = held == 2 ? 16 : held == 1 && (b & 1) ? 8 : 0;
                        const lp_binary_shape sh = {blocks[b], ngs, ngn, rc, held > 0, hbits};
                        CHECK_OK(make_binary(&w, R, C, sh, 0, seed));
                        CHECK(w.hbits == (held == 2 ? 16 : 8) && !!w.codes16 == (held == 2) &&
                              !!w.codes == (held == 1) && !!w.hq == (held == 1));
                        if (ngs && blocks[b] < C)
                            CHECKF(w.sal_before[2] == w.sal_before[1], "block 1 should have no salient column");
                        if (held) CHECKF(w.hoff[3] == w.hoff[2], "row 2 should have no held weight");
                        check_kernels(&w, seed, worst);
                        check_round_trip(&w, seed);
                        lp_binary_free(&w);
                        n++;
                    }
    CHECK(n == 144);
    /* special cases: bigger rows; one row; ngs = 2 without salient columns; held without held weights */
    static const struct {
        int64_t R, C;
        lp_binary_shape sh;
        unsigned flags;
    } more[] = {
        {40, 1024, {128, 1, 2, false, false, 0}, 0},  {40, 1024, {128, 2, 2, true, true, 0}, 0},
        {1, 96, {32, 2, 1, false, true, 0}, 0},       {5, 64, {64, 2, 2, false, false, 0}, NO_SALIENT},
        {5, 64, {32, 2, 1, true, true, 0}, NO_SALIENT | NO_HELD}, {9, 128, {64, 0, 1, false, true, 0}, NO_HELD},
        {9, 4096, {4096, 1, 1, true, true, 0}, 0},
        /* f16 held values */
        {40, 1024, {128, 2, 2, true, true, 16}, 0}, {1, 96, {32, 2, 1, false, true, 16}, 0},
        {9, 128, {64, 0, 1, false, true, 16}, NO_HELD}, {9, 4096, {4096, 0, 1, false, true, 16}, 0},
        {5, 64, {32, 2, 1, true, true, 16}, NO_SALIENT | NO_HELD},
    };
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
        lp_binary w;
        CHECK_OK(make_binary(&w, more[i].R, more[i].C, more[i].sh, more[i].flags, seed));
        if (more[i].flags & NO_SALIENT) CHECK(w.nsal == 0 && w.words2 == 0);
        if (more[i].flags & NO_HELD) CHECK(w.nheld == 0);
        check_kernels(&w, seed, worst);
        check_round_trip(&w, seed);
        lp_binary_free(&w);
    }
}

/* ---- bad arguments and corrupt files ---- */

static void check_init_errors(void) {
    uint32_t col[8] = {1};
    lp_binary w;
    const struct {
        int64_t R, C;
        lp_binary_shape sh;
        const uint32_t *col;
        int64_t nheld;
    } bad[] = {
        {4, 200, {40, 0, 1, false, false, 0}, NULL, 0},  /* cols not a multiple of 32 */
        {4, 256, {48, 0, 1, false, false, 0}, NULL, 0},  /* block not a multiple of 32 */
        {4, 256, {96, 0, 1, false, false, 0}, NULL, 0},  /* block not dividing cols */
        {4, 256, {512, 0, 1, false, false, 0}, NULL, 0}, /* block > cols */
        {4, 256, {128, 3, 1, false, false, 0}, col, 0},  /* ngs 3 */
        {4, 256, {128, 0, 0, false, false, 0}, NULL, 0}, /* ngn 0 */
        {4, 256, {128, 0, 3, false, false, 0}, NULL, 0}, /* ngn 3 */
        {4, 256, {128, 1, 1, false, false, 0}, NULL, 0}, /* salient groups without colmask */
        {4, 256, {128, 0, 1, false, false, 0}, NULL, 5}, /* held weights without held */
        {4, 256, {128, 0, 1, false, true, 0}, NULL, -1}, /* negative nheld */
        {4, 256, {128, 0, 1, false, true, 12}, NULL, 3}, /* hbits 12 */
        {4, 256, {128, 0, 1, false, true, -16}, NULL, 3}, /* hbits -16 */
        {0, 256, {128, 0, 1, false, false, 0}, NULL, 0}, /* no rows */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        lp_status st = lp_binary_init(&w, bad[i].R, bad[i].C, &bad[i].sh, bad[i].col, bad[i].nheld);
        CHECKF(st == LP_ERR_ARG, "bad init argument %zu: got %s", i, lp_status_name(st));
    }
    /* finish: hmask count not nheld, b2 padding */
    const lp_binary_shape sh = {64, 2, 1, false, true, 0};
    CHECK_OK(lp_binary_init(&w, 3, 256, &sh, col, 2));
    CHECK(w.nsal == 1 && w.words2 == 1);
    lp_binary_set(w.hmask, 5, 1);
    CHECK(lp_binary_finish(&w) == LP_ERR_ARG);
    lp_binary_set(w.hmask, 300, 1);
    CHECK_OK(lp_binary_finish(&w));
    CHECK(w.hoff[0] == 0 && w.hoff[1] == 1 && w.hoff[2] == 2 && w.hoff[3] == 2);
    w.b2[1] = 2u; /* salient bit 1 of row 1: only 1 salient column */
    CHECK(lp_binary_finish(&w) == LP_ERR_ARG);
    lp_binary_free(&w);
    /* hbits 16: codes16 and no grid; without held, hbits means nothing (8) */
    const lp_binary_shape sh16 = {64, 0, 1, false, true, 16}, nh16 = {64, 0, 1, false, false, 16};
    CHECK_OK(lp_binary_init(&w, 3, 256, &sh16, NULL, 2));
    CHECK(w.hbits == 16 && w.codes16 && !w.codes && !w.hq);
    lp_binary_set(w.hmask, 5, 1);
    CHECK(lp_binary_finish(&w) == LP_ERR_ARG);
    lp_binary_set(w.hmask, 300, 1);
    CHECK_OK(lp_binary_finish(&w));
    w.codes16[0] = 0x3c00; /* 1.0 */
    w.codes16[1] = 0x8001; /* the smallest negative subnormal */
    CHECK(lp_binary_value(&w, 0, 5) == 1.0f && lp_binary_value(&w, 1, 44) == -0x1p-24f);
    /* s0, rp (4 blocks x 2 f16 per row), hmask, 2 f16 held values */
    CHECK(lp_binary_nbytes(&w) == (size_t)(3 * 8 * 4) + (size_t)(3 * 4 * 2 * 2) + (size_t)(3 * 8 * 4) + 2 * 2);
    CHECK(lp_binary_paper_bits(&w) == 3.0 * 256 + 15.0 * 2);
    lp_binary_free(&w);
    CHECK_OK(lp_binary_init(&w, 3, 256, &nh16, NULL, 0));
    CHECK(w.hbits == 8 && !w.codes16 && !w.codes && !w.hmask);
    lp_binary_free(&w);
    lp_binary_free(NULL);
}

typedef struct {
    const char *suffix;
    lp_dtype dt;
    int64_t d0, d1;
    const void *data;
} tensor;

static void write_file(const char *path, const tensor *ts, int n, const char *meta) {
    lp_st_writer *w = NULL;
    CHECK_OK(lp_st_writer_init(&w));
    for (int i = 0; i < n; i++)
        if (ts[i].suffix) CHECK_OK(lp_fmt_add(w, "blk.lin", ts[i].suffix, ts[i].dt, ts[i].d0, ts[i].d1, ts[i].data));
    if (meta) CHECK_OK(lp_st_writer_meta(w, "llmpress.linear.blk.lin", meta));
    CHECK_OK(lp_st_writer_save(w, path));
    lp_st_writer_free(w);
}

/* A corrupt file must fail with LP_ERR_FORMAT and say what (need in the message). */
static void expect_corrupt(const char *what, const tensor *ts, int n, const char *meta, int64_t rows, int64_t cols,
                           const char *need) {
    const char *p = file_path("corrupt.safetensors");
    write_file(p, ts, n, meta);
    lp_linear l;
    lp_weights *wts;
    lp_status st = load_file(p, rows, cols, &l, &wts);
    CHECKF(st == LP_ERR_FORMAT && (!need || strstr(lp_last_error(), need)), "%s: got %s: %s", what,
           lp_status_name(st), lp_last_error());
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(p);
}

static void check_corrupt(unsigned long long *seed) {
    /* 6 x 64, block 32, ngs 2, ngn 2, rc, held: every tensor present */
    enum { R = 6, C = 64, W = 2, NB = 2, NPR = 6, NCP = 6 };
    lp_binary w;
    const lp_binary_shape sh = {32, 2, 2, true, true, 0};
    CHECK_OK(make_binary(&w, R, C, sh, 0, seed));
    if (w.nsal % 32 == 0 || w.nheld < 2) { /* the seed gives a ragged b2 and some held weights */
        CHECKF(0, "corrupt-file fixture: nsal %lld nheld %lld", (long long)w.nsal, (long long)w.nheld);
        lp_binary_free(&w);
        return;
    }
    const int64_t W2 = w.words2, NH = w.nheld;
    const char *meta = "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":true}";
    enum { S0, B1, COL, B2, RP, CP, HM, CODES, HQ, N };
    const tensor ok[N] = {{".s0", LP_DT_U32, R, W, w.s0},         {".b1", LP_DT_U32, R, W, w.b1},
                          {".colmask", LP_DT_U32, 1, W, w.colmask}, {".b2", LP_DT_U32, R, W2, w.b2},
                          {".rp", LP_DT_F16, R, NB * NPR, w.rp},   {".cp", LP_DT_F16, NCP, C, w.cp},
                          {".hmask", LP_DT_U32, R, W, w.hmask},    {".codes", LP_DT_U8, 1, NH, w.codes},
                          {".hq", LP_DT_F32, R, 2, w.hq}};
    lp_linear l;
    lp_weights *wts;
    write_file(file_path("ok.safetensors"), ok, N, meta);
    CHECK_OK(load_file(file_path("ok.safetensors"), R, C, &l, &wts));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok.safetensors"));

    tensor t[N];
    memcpy(t, ok, sizeof t);
    t[S0].d1 = W - 1;
    expect_corrupt("s0 of the wrong shape", t, N, meta, R, C, "blk.lin.s0");
    memcpy(t, ok, sizeof t);
    t[RP].d1 = NB * NPR - 1;
    expect_corrupt("rp of the wrong shape", t, N, meta, R, C, "blk.lin.rp");
    memcpy(t, ok, sizeof t);
    t[CP].dt = LP_DT_BF16;
    expect_corrupt("cp of the wrong dtype", t, N, meta, R, C, "blk.lin.cp");
    memcpy(t, ok, sizeof t);
    t[B1].suffix = NULL;
    expect_corrupt("b1 missing", t, N, meta, R, C, "blk.lin.b1\" is missing");
    expect_corrupt("rc description with mean-mode parameters", ok, N,
                   "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":false,\"held\":true}", R, C,
                   "blk.lin.rp");

    uint16_t rp[R * NB * NPR], cp[NCP * C];
    memcpy(rp, w.rp, sizeof rp);
    memcpy(cp, w.cp, sizeof cp);
    memcpy(t, ok, sizeof t);
    t[RP].data = rp;
    rp[NB * NPR + 7] = 0x7e00; /* row 1, parameter 7: NaN */
    expect_corrupt("NaN parameter", t, N, meta, R, C, "blk.lin.rp\": parameter [row, k] [1, 7] is NaN");
    rp[NB * NPR + 7] = 0xfc00;
    expect_corrupt("infinite parameter", t, N, meta, R, C, "infinite");
    memcpy(t, ok, sizeof t);
    t[CP].data = cp;
    cp[3 * C + 5] = 0x7c00;
    expect_corrupt("infinite column scale", t, N, meta, R, C, "blk.lin.cp\": column scale [vector, column] [3, 5]");

    uint32_t b2[R * 2];
    memcpy(b2, w.b2, (size_t)(R * W2) * 4);
    memcpy(t, ok, sizeof t);
    t[B2].data = b2;
    b2[4 * W2 + W2 - 1] |= 1u << 31; /* past nsal in row 4 */
    expect_corrupt("b2 padding bit set", t, N, meta, R, C, "blk.lin.b2\": row 4 has bits set past");

    memcpy(t, ok, sizeof t);
    t[CODES].d1 = NH - 1;
    expect_corrupt("codes count below popcount(hmask)", t, N, meta, R, C, "blk.lin.codes\": holds");
    uint8_t *codes = calloc((size_t)NH + 1, 1);
    t[CODES].d1 = NH + 1;
    t[CODES].data = codes;
    expect_corrupt("codes count above popcount(hmask)", t, N, meta, R, C, "blk.lin.codes");
    free(codes);

    float hq[R * 2];
    memcpy(hq, w.hq, sizeof hq);
    memcpy(t, ok, sizeof t);
    t[HQ].data = hq;
    hq[2 * 3 + 1] = 256.0f;
    expect_corrupt("Z = 256", t, N, meta, R, C, "blk.lin.hq\": the zero point Z of row 3");
    hq[2 * 3 + 1] = 7.5f;
    expect_corrupt("Z = 7.5", t, N, meta, R, C, "blk.lin.hq");
    hq[2 * 3 + 1] = -1.0f;
    expect_corrupt("Z = -1", t, N, meta, R, C, "blk.lin.hq");
    hq[2 * 3 + 1] = NAN;
    expect_corrupt("Z = NaN", t, N, meta, R, C, "blk.lin.hq");
    hq[2 * 3 + 1] = 3.0f;
    hq[2 * 5] = -0.5f;
    expect_corrupt("S < 0", t, N, meta, R, C, "blk.lin.hq\": the scale S of row 5");
    hq[2 * 5] = INFINITY;
    expect_corrupt("S infinite", t, N, meta, R, C, "blk.lin.hq");
    hq[2 * 5] = 3e37f;
    expect_corrupt("255 S overflows", t, N, meta, R, C, "blk.lin.hq");

    expect_corrupt("block not dividing cols", ok, N,
                   "{\"format\":\"binary\",\"block\":48,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":true}", R, C,
                   "block = 48");
    expect_corrupt("unknown ngs", ok, N,
                   "{\"format\":\"binary\",\"block\":32,\"ngs\":3,\"ngn\":2,\"rc\":true,\"held\":true}", R, C, "ngs=3");
    expect_corrupt("ngn 0", ok, N, "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":0,\"rc\":true,\"held\":true}",
                   R, C, "ngn=0");
    expect_corrupt("rc missing", ok, N, "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"held\":true}", R, C,
                   "rc is missing");
    expect_corrupt("held not a boolean", ok, N,
                   "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":1}", R, C, "held");
    expect_corrupt("cols not a multiple of 32", ok, N, meta, R, 60, "multiple of 32");
    /* hbits: 8 written out loads as absent; anything but 8 or 16 is refused */
    write_file(file_path("ok8.safetensors"), ok, N,
               "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":true,\"hbits\":8}");
    CHECK_OK(load_file(file_path("ok8.safetensors"), R, C, &l, &wts));
    CHECK(lp_linear_data(&l, &lp_format_binary) && ((const lp_binary *)lp_linear_data(&l, &lp_format_binary))->hbits == 8);
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok8.safetensors"));
    expect_corrupt("hbits 12", ok, N,
                   "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":true,\"hbits\":12}",
                   R, C, "hbits=12");
    expect_corrupt("hbits 32", ok, N,
                   "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":true,\"hbits\":32}",
                   R, C, "hbits=32");
    expect_corrupt("hbits not a number", ok, N,
                   "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":true,\"hbits\":\"16\"}",
                   R, C, "hbits");
    expect_corrupt("hbits 16 with 8-bit codes", ok, N,
                   "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":true,\"hbits\":16}",
                   R, C, "blk.lin.codes");
    lp_binary_free(&w);

    /* the same with f16 held values: no .hq, .codes F16 */
    const lp_binary_shape sh16 = {32, 2, 2, true, true, 16};
    CHECK_OK(make_binary(&w, R, C, sh16, 0, seed));
    if (w.nheld < 3) {
        CHECKF(0, "corrupt-file fixture (f16): nheld %lld", (long long)w.nheld);
        lp_binary_free(&w);
        return;
    }
    const int64_t NH16 = w.nheld;
    const char *meta16 =
        "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":true,\"hbits\":16}";
    const tensor ok16[N] = {{".s0", LP_DT_U32, R, W, w.s0},         {".b1", LP_DT_U32, R, W, w.b1},
                            {".colmask", LP_DT_U32, 1, W, w.colmask}, {".b2", LP_DT_U32, R, w.words2, w.b2},
                            {".rp", LP_DT_F16, R, NB * NPR, w.rp},   {".cp", LP_DT_F16, NCP, C, w.cp},
                            {".hmask", LP_DT_U32, R, W, w.hmask},    {".codes", LP_DT_F16, 1, NH16, w.codes16},
                            {NULL, LP_DT_F32, R, 2, NULL}};
    write_file(file_path("ok16.safetensors"), ok16, N, meta16);
    CHECK_OK(load_file(file_path("ok16.safetensors"), R, C, &l, &wts));
    const lp_binary *v16 = lp_linear_data(&l, &lp_format_binary);
    CHECK(v16 && v16->hbits == 16 && v16->nheld == NH16 && !v16->hq &&
          !memcmp(v16->codes16, w.codes16, (size_t)NH16 * 2));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok16.safetensors"));
    uint16_t *vals = malloc((size_t)NH16 * 2);
    memcpy(vals, w.codes16, (size_t)NH16 * 2);
    memcpy(t, ok16, sizeof t);
    t[CODES].data = vals;
    vals[2] = 0x7e00;
    expect_corrupt("NaN f16 held value", t, N, meta16, R, C, "blk.lin.codes\": held value [0, k] [0, 2] is NaN");
    vals[2] = 0xfd01; /* a negative signalling NaN */
    expect_corrupt("NaN f16 held value (negative)", t, N, meta16, R, C, "is NaN");
    vals[2] = 0xfc00;
    expect_corrupt("infinite f16 held value", t, N, meta16, R, C, "blk.lin.codes\": held value [0, k] [0, 2] is infinite");
    free(vals);
    memcpy(t, ok16, sizeof t);
    t[CODES].d1 = NH16 - 1;
    expect_corrupt("f16 held values below popcount(hmask)", t, N, meta16, R, C, "blk.lin.codes\": holds");
    memcpy(t, ok16, sizeof t);
    t[CODES].dt = LP_DT_U16;
    expect_corrupt("f16 held values as U16", t, N, meta16, R, C, "blk.lin.codes");
    expect_corrupt("f16 held values without hbits (read as 8-bit codes)", ok16, N,
                   "{\"format\":\"binary\",\"block\":32,\"ngs\":2,\"ngn\":2,\"rc\":true,\"held\":true}", R, C,
                   "blk.lin.codes");
    lp_binary_free(&w);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lp_test_binary_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(lp_format_find("binary") == &lp_format_binary);
    unsigned long long seed = 2024;
    double worst = 0;
    check_all_shapes(&seed, &worst);
    printf("SIMD vs double product, worst |diff| / sum |w x|: %.3g (levels up to %s)\n", worst,
           lp_isa_name(lp_cpu_supports(LP_ISA_AVX512) ? LP_ISA_AVX512
                       : lp_cpu_supports(LP_ISA_AVX2) ? LP_ISA_AVX2 : LP_ISA_REF));
    check_init_errors();
    check_corrupt(&seed);
    rmdir(g_dir);
    TEST_DONE();
}
