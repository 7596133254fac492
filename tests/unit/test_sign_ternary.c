/*
 * test_sign_ternary.c - the sign and ternary formats (format/sign.h,
 * format/ternary.h) and the methods that fill them (quant/sign.c,
 * quant/ternary.c):
 *  - dequantization equals the definition, read bit by bit here, and every
 *    level this CPU supports dequantizes bit for bit like the reference;
 *  - the reference product matches a double-precision product, each SIMD
 *    product matches the reference (T = 1..5, ragged widths and groups), each
 *    token of a multi-token call is bit-identical to a one-token call, the
 *    sgemm path and the traits row's product agree with dequantize-then-
 *    multiply, and one or two threads give the same bits;
 *  - nbytes is the exact formula;
 *  - save -> load through a safetensors file gives the same bytes and outputs;
 *  - corrupt files (wrong shape or dtype, non-finite scale, padding bits,
 *    negative bits on zero weights, bad group) fail with LP_ERR_FORMAT;
 *  - the sign method's scale is the row's mean |w| rounded to f16 and zeros
 *    take +alpha; the ternary method follows TWN's threshold rule on
 *    hand-made groups and on random rows; the ternary group option is checked.
 * Shapes: W is rows x cols (out x in), X is T x cols, Y is T x rows.
 */
#include "test.h"
#include "test_linear.h"

#include "core/half.h"
#include "format/dense.h"
#include "format/linear.h"
#include "format/sign.h"
#include "format/ternary.h"
#include "quant/method.h"

#include <omp.h>
#include <unistd.h>

static char g_dir[256];
static const lp_isa ISAS[] = {LP_ISA_REF, LP_ISA_AVX2, LP_ISA_AVX512};

static int bit_at(const uint32_t *row, int64_t c) { return (int)((row[c / 32] >> (c % 32)) & 1u); }

static uint16_t random_scale(unsigned long long *seed) {
    return lp_f32_to_f16((float)(0.01 + 0.1 * fabs(test_randn(seed))));
}

/* ---- random weights of each format ---- */

static void make_sign(lp_sign *w, int64_t rows, int64_t cols, unsigned long long *seed) {
    CHECK_OK(lp_sign_init(w, rows, cols));
    for (int64_t r = 0; r < rows; r++) {
        w->scales[r] = random_scale(seed);
        for (int64_t c = 0; c < cols; c++)
            if (test_rand_u64(seed) & 1) w->signs[r * w->words + c / 32] |= 1u << (c % 32);
    }
}

static void make_ternary(lp_ternary *w, int64_t rows, int64_t cols, int group, unsigned long long *seed) {
    CHECK_OK(lp_ternary_init(w, rows, cols, group));
    for (int64_t i = 0; i < rows * w->ngroups; i++) w->scales[i] = random_scale(seed);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            unsigned v = (unsigned)(test_rand_u64(seed) % 3); /* 0: zero, 1: +a, 2: -a */
            if (v) w->nonzero[r * w->words + c / 32] |= 1u << (c % 32);
            if (v == 2) w->negative[r * w->words + c / 32] |= 1u << (c % 32);
        }
}

/* The definitions, read independently of the library's kernels. */
static float sign_def(const lp_sign *w, int64_t r, int64_t c) {
    float a = lp_f16_to_f32(w->scales[r]);
    return bit_at(w->signs + r * w->words, c) ? a : -a;
}
static float ternary_def(const lp_ternary *w, int64_t r, int64_t c) {
    float a = lp_f16_to_f32(w->scales[r * w->ngroups + c / w->group]);
    if (!bit_at(w->nonzero + r * w->words, c)) return 0.0f;
    return bit_at(w->negative + r * w->words, c) ? -a : a;
}

/* ---- one format, behind a small table so both run the same checks ---- */

typedef struct {
    const char *name;
    const lp_format *fmt;
    void *w;
    int64_t rows, cols;
    float (*def)(const void *w, int64_t r, int64_t c);
    void (*dequant[LP_ISA_N])(const void *w, int64_t r0, int64_t r1, float *out);
    lp_status (*gemm)(const void *w, const float *X, int64_t T, float *Y, lp_isa isa, int64_t blas_min);
    size_t nbytes_formula;
} fmt_case;

static float sign_def_v(const void *w, int64_t r, int64_t c) { return sign_def(w, r, c); }
static float ternary_def_v(const void *w, int64_t r, int64_t c) { return ternary_def(w, r, c); }
static void sdq_ref(const void *w, int64_t a, int64_t b, float *o) { lp_sign_dequant_ref(w, a, b, o); }
static void sdq_avx2(const void *w, int64_t a, int64_t b, float *o) { lp_sign_dequant_avx2(w, a, b, o); }
static void sdq_avx512(const void *w, int64_t a, int64_t b, float *o) { lp_sign_dequant_avx512(w, a, b, o); }
static void tdq_ref(const void *w, int64_t a, int64_t b, float *o) { lp_ternary_dequant_ref(w, a, b, o); }
static void tdq_avx2(const void *w, int64_t a, int64_t b, float *o) { lp_ternary_dequant_avx2(w, a, b, o); }
static void tdq_avx512(const void *w, int64_t a, int64_t b, float *o) { lp_ternary_dequant_avx512(w, a, b, o); }
static lp_status sgemm_v(const void *w, const float *X, int64_t T, float *Y, lp_isa isa, int64_t bm) {
    return lp_sign_gemm_ex(w, X, T, Y, isa, bm);
}
static lp_status tgemm_v(const void *w, const float *X, int64_t T, float *Y, lp_isa isa, int64_t bm) {
    return lp_ternary_gemm_ex(w, X, T, Y, isa, bm);
}

static double max_d(double a, double b) { return a > b ? a : b; }

/* Kernels, dequantization, products, threads and nbytes of one case. */
static void check_kernels(const fmt_case *k, unsigned long long *seed, double *worst_simd) {
    const int64_t R = k->rows, C = k->cols;
    enum { T = 5 };
    float *D = malloc((size_t)(R * C) * sizeof(float)), *E = malloc((size_t)(R * C) * sizeof(float));

    /* dequantization: the definition, then every level bit for bit (rows from 3 on too) */
    k->dequant[LP_ISA_REF](k->w, 0, R, D);
    int64_t bad = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) bad += memcmp(&D[r * C + c], &(float){k->def(k->w, r, c)}, 4) != 0;
    CHECKF(bad == 0, "%s %lldx%lld: %lld dequantized values differ from the definition", k->name, (long long)R,
           (long long)C, (long long)bad);
    for (int i = 1; i < LP_ISA_N; i++) {
        if (!lp_cpu_supports(ISAS[i])) continue;
        memset(E, 0xff, (size_t)(R * C) * sizeof(float));
        int64_t r0 = R > 3 ? 3 : 0;
        k->dequant[i](k->w, r0, R, E + r0 * C);
        CHECKF(!memcmp(D + r0 * C, E + r0 * C, (size_t)((R - r0) * C) * sizeof(float)),
               "%s %lldx%lld: %s dequantization differs from the reference", k->name, (long long)R, (long long)C,
               lp_isa_name(ISAS[i]));
    }
    k->fmt->dequant(k->w, 0, R, E); /* the traits row: this CPU's level, threaded */
    CHECKF(!memcmp(D, E, (size_t)(R * C) * sizeof(float)), "%s: the traits row's dequantization differs", k->name);

    /* products */
    float *X = malloc(T * C * sizeof(float)), *Yr = malloc(T * R * sizeof(float)), *Y = malloc(T * R * sizeof(float));
    float *Y1 = malloc(R * sizeof(float));
    double *want = malloc(T * R * sizeof(double)), *mag = malloc(T * R * sizeof(double));
    for (int64_t i = 0; i < T * C; i++) X[i] = test_randn(seed);
    for (int64_t t = 0; t < T; t++)
        for (int64_t r = 0; r < R; r++) {
            double acc = 0, m = 0;
            for (int64_t c = 0; c < C; c++) {
                acc += (double)D[r * C + c] * X[t * C + c];
                m += fabs((double)D[r * C + c] * X[t * C + c]);
            }
            want[t * R + r] = acc;
            mag[t * R + r] = m > 0 ? m : 1;
        }
    for (int64_t n = 1; n <= T; n++) {
        CHECK_OK(k->gemm(k->w, X, n, Yr, LP_ISA_REF, 1000));
        double e = 0;
        for (int64_t i = 0; i < n * R; i++) e = max_d(e, fabs(Yr[i] - want[i]) / mag[i]);
        CHECKF(e < 1e-5, "%s %lldx%lld T=%lld: reference vs double product: %.3g", k->name, (long long)R,
               (long long)C, (long long)n, e);
        for (int i = 1; i < LP_ISA_N; i++) {
            lp_status st = k->gemm(k->w, X, n, Y, ISAS[i], 1000);
            if (st == LP_ERR_UNSUPPORTED) continue;
            CHECK_OK(st);
            e = 0;
            for (int64_t j = 0; j < n * R; j++) e = max_d(e, fabs((double)Y[j] - Yr[j]) / mag[j]);
            *worst_simd = max_d(*worst_simd, e);
            CHECKF(e < 1e-5, "%s %lldx%lld T=%lld: %s vs reference: %.3g", k->name, (long long)R, (long long)C,
                   (long long)n, lp_isa_name(ISAS[i]), e);
        }
    }
    for (int i = 0; i < LP_ISA_N; i++) { /* per token, T does not matter; nor does the thread count */
        if (!lp_cpu_supports(ISAS[i])) continue;
        CHECK_OK(k->gemm(k->w, X, T, Y, ISAS[i], 1000));
        for (int64_t t = 0; t < T; t++) {
            CHECK_OK(k->gemm(k->w, X + t * C, 1, Y1, ISAS[i], 1000));
            CHECKF(!memcmp(Y1, Y + t * R, (size_t)R * sizeof(float)), "%s %s: token %lld of %d differs from T = 1",
                   k->name, lp_isa_name(ISAS[i]), (long long)t, T);
        }
        const int nth = omp_get_max_threads();
        omp_set_num_threads(nth > 1 ? 1 : 2);
        CHECK_OK(k->gemm(k->w, X, T, Yr, ISAS[i], 1000));
        omp_set_num_threads(nth);
        CHECKF(!memcmp(Y, Yr, (size_t)(T * R) * sizeof(float)), "%s %s: the thread count changed the result",
               k->name, lp_isa_name(ISAS[i]));
    }
    /* many tokens: dequantized tiles + sgemm, and the traits row's product (this CPU's level) */
    CHECK_OK(k->gemm(k->w, X, T, Y, lp_cpu_isa(), 1));
    double e = 0;
    for (int64_t i = 0; i < T * R; i++) e = max_d(e, fabs(Y[i] - want[i]) / mag[i]);
    CHECKF(e < 1e-5, "%s: sgemm path vs double product: %.3g", k->name, e);
    CHECK_OK(lp_format_gemm(k->fmt, lp_cpu_isa())(k->w, X, T, Y));
    e = 0;
    for (int64_t i = 0; i < T * R; i++) e = max_d(e, fabs(Y[i] - want[i]) / mag[i]);
    CHECKF(e < 1e-5, "%s: traits-row product vs dequantize-then-multiply: %.3g", k->name, e);

    CHECKF(k->fmt->nbytes(k->w) == k->nbytes_formula, "%s: nbytes %zu, formula %zu", k->name, k->fmt->nbytes(k->w),
           k->nbytes_formula);
    free(D), free(E), free(X), free(Yr), free(Y), free(Y1), free(want), free(mag);
}

/* ---- files ---- */

typedef struct {
    const char *suffix;
    lp_dtype dt;
    int64_t d0, d1;
    const void *data;
} tensor;

static const char *file_path(const char *name) {
    static char p[4][512];
    static int i = 0;
    char *s = p[i++ & 3];
    snprintf(s, 512, "%s/%s", g_dir, name);
    return s;
}

/* A file holding linear "blk.lin" as the given tensors and description. */
static void write_file(const char *path, const tensor *ts, int n, const char *meta) {
    lp_st_writer *w = NULL;
    CHECK_OK(lp_st_writer_init(&w));
    for (int i = 0; i < n; i++) CHECK_OK(lp_fmt_add(w, "blk.lin", ts[i].suffix, ts[i].dt, ts[i].d0, ts[i].d1, ts[i].data));
    if (meta) CHECK_OK(lp_st_writer_meta(w, "llmpress.linear.blk.lin", meta));
    CHECK_OK(lp_st_writer_save(w, path));
    lp_st_writer_free(w);
}

/* Load "blk.lin" from path; *wts must be closed after the linear is freed. */
static lp_status load_file(const char *path, int64_t rows, int64_t cols, lp_linear *l, lp_weights **wts) {
    *wts = NULL;
    memset(l, 0, sizeof *l);
    lp_status st = lp_weights_open(path, wts);
    if (st != LP_OK) return st;
    const lp_fmt_src in = {*wts, path};
    return lp_linear_load_packed(&in, "blk.lin", rows, cols, l);
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

/* Save a one-part linear, load it back: same format, bytes and outputs. */
static void check_round_trip(const fmt_case *k, unsigned long long *seed) {
    const int64_t R = k->rows, C = k->cols, T = 3;
    lp_linear l = {.rows = R, .cols = C};
    lp_linear_set(&l, k->fmt, k->w); /* borrowed: taken back below */
    lp_st_writer *w = NULL;
    const char *p = file_path("rt.safetensors");
    CHECK_OK(lp_st_writer_init(&w));
    CHECK_OK(lp_linear_save(&l, w, "blk.lin"));
    CHECK_OK(lp_st_writer_save(w, p));
    lp_st_writer_free(w);
    lp_linear m;
    lp_weights *wts;
    CHECK_OK(load_file(p, R, C, &m, &wts));
    if (lp_linear_is(&m, k->fmt)) {
        float *X = malloc((size_t)(T * C) * sizeof(float)), *Y0 = malloc((size_t)(T * R) * sizeof(float));
        float *Y1 = malloc((size_t)(T * R) * sizeof(float));
        for (int64_t i = 0; i < T * C; i++) X[i] = test_randn(seed);
        CHECK_OK(lp_linear_forward(&l, X, T, Y0));
        CHECK_OK(lp_linear_forward(&m, X, T, Y1));
        CHECKF(!memcmp(Y0, Y1, (size_t)(T * R) * sizeof(float)), "%s: loaded outputs differ", k->name);
        CHECK(k->fmt->nbytes(m.part[0].data) == k->nbytes_formula);
        if (k->fmt == &lp_format_sign) {
            const lp_sign *a = k->w, *b = m.part[0].data;
            CHECKF(!memcmp(a->signs, b->signs, (size_t)(R * a->words) * 4) &&
                       !memcmp(a->scales, b->scales, (size_t)R * 2),
                   "sign: loaded bytes differ");
        } else {
            const lp_ternary *a = k->w, *b = m.part[0].data;
            CHECKF(a->group == b->group && !memcmp(a->nonzero, b->nonzero, (size_t)(R * a->words) * 4) &&
                       !memcmp(a->negative, b->negative, (size_t)(R * a->words) * 4) &&
                       !memcmp(a->scales, b->scales, (size_t)(R * a->ngroups) * 2),
                   "ternary g%d: loaded bytes differ", a->group);
        }
        char d0[128], d1[128];
        lp_linear_describe(&l, d0, sizeof d0);
        lp_linear_describe(&m, d1, sizeof d1);
        CHECKF(!strcmp(d0, d1), "%s: described as \"%s\" then \"%s\"", k->name, d0, d1);
        free(X), free(Y0), free(Y1);
    } else {
        CHECKF(0, "%s: loaded linear is not one %s part", k->name, k->name);
    }
    l.nparts = 0; /* give the part back to the caller */
    lp_linear_free(&l);
    lp_linear_free(&m);
    lp_weights_close(wts);
    unlink(p);
}

static void check_sign_format(unsigned long long *seed, double *worst) {
    static const int64_t shapes[][2] = {{37, 200}, {16, 32}, {5, 1}, {33, 97}, {64, 384}, {3, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t R = shapes[s][0], C = shapes[s][1];
        lp_sign w;
        make_sign(&w, R, C, seed);
        const fmt_case k = {"sign", &lp_format_sign, &w, R, C, sign_def_v, {sdq_ref, sdq_avx2, sdq_avx512}, sgemm_v,
                            (size_t)(R * ((C + 31) / 32) * 4 + R * 2)};
        check_kernels(&k, seed, worst);
        check_round_trip(&k, seed);
        lp_sign_free(&w);
    }

    /* corrupt files: a 6 x 40 weight (2 words per row, 8 bits of padding) */
    enum { R = 6, C = 40, W = 2 };
    lp_sign w;
    make_sign(&w, R, C, seed);
    const char *meta = "{\"format\":\"sign\"}";
    tensor ok[2] = {{".signs", LP_DT_U32, R, W, w.signs}, {".scales", LP_DT_F16, R, 1, w.scales}};
    lp_linear l;
    lp_weights *wts;
    write_file(file_path("ok.safetensors"), ok, 2, meta);
    CHECK_OK(load_file(file_path("ok.safetensors"), R, C, &l, &wts));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok.safetensors"));

    tensor t[2];
    memcpy(t, ok, sizeof t);
    t[0].d1 = W - 1;
    expect_corrupt("sign: signs of the wrong shape", t, 2, meta, R, C, "blk.lin.signs");
    memcpy(t, ok, sizeof t);
    t[1].d1 = 2;
    uint16_t sc2[2 * R] = {0};
    t[1].data = sc2;
    expect_corrupt("sign: scales of the wrong shape", t, 2, meta, R, C, "blk.lin.scales");
    memcpy(t, ok, sizeof t);
    t[1].dt = LP_DT_BF16;
    expect_corrupt("sign: scales of the wrong dtype", t, 2, meta, R, C, "blk.lin.scales");
    expect_corrupt("sign: scales missing", ok, 1, meta, R, C, "missing");
    uint16_t sc[R];
    memcpy(sc, w.scales, sizeof sc);
    memcpy(t, ok, sizeof t);
    t[1].data = sc;
    sc[4] = 0x7e00; /* NaN */
    expect_corrupt("sign: NaN scale", t, 2, meta, R, C, "NaN");
    sc[4] = 0xfc00; /* -inf */
    expect_corrupt("sign: infinite scale", t, 2, meta, R, C, "infinite");
    uint32_t b[R * W];
    memcpy(b, w.signs, sizeof b);
    b[3 * W + 1] |= 1u << 8; /* column 40 of row 3: padding */
    memcpy(t, ok, sizeof t);
    t[0].data = b;
    expect_corrupt("sign: padding bit set", t, 2, meta, R, C, "past column 39");
    CHECK(lp_sign_view(&(lp_sign){0}, R, C, b, sizeof b, w.scales, R * 2) == LP_ERR_FORMAT);
    CHECK(lp_sign_view(&(lp_sign){0}, R, C, w.signs, sizeof b - 4, w.scales, R * 2) == LP_ERR_FORMAT);
    lp_sign_free(&w);
}

static void check_ternary_format(unsigned long long *seed, double *worst) {
    static const int64_t shapes[][3] = {{37, 200, 64}, {37, 200, -1}, {20, 256, 32}, {9, 70, 96},
                                        {7, 300, 128}, {4, 1, -1},    {64, 384, 128}, {3, 1000, 32}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int64_t R = shapes[s][0], C = shapes[s][1];
        const int G = (int)shapes[s][2];
        lp_ternary w;
        make_ternary(&w, R, C, G, seed);
        const int g = G == -1 || G >= C ? (int)C : G;
        CHECKF(w.group == g, "ternary %lldx%lld group %d resolved to %d", (long long)R, (long long)C, G, w.group);
        const fmt_case k = {"ternary", &lp_format_ternary, &w, R, C, ternary_def_v,
                            {tdq_ref, tdq_avx2, tdq_avx512}, tgemm_v,
                            (size_t)(2 * R * ((C + 31) / 32) * 4 + R * ((C + g - 1) / g) * 2)};
        check_kernels(&k, seed, worst);
        check_round_trip(&k, seed);
        lp_ternary_free(&w);
    }
    CHECK(lp_ternary_init(&(lp_ternary){0}, 4, 200, 48) == LP_ERR_ARG);
    CHECK(lp_ternary_init(&(lp_ternary){0}, 4, 200, 0) == LP_ERR_ARG);

    /* corrupt files: 6 x 72, group 32 (3 words and 3 groups per row, 24 bits of padding) */
    enum { R = 6, C = 72, W = 3, NG = 3 };
    lp_ternary w;
    make_ternary(&w, R, C, 32, seed);
    const char *meta = "{\"format\":\"ternary\",\"group\":32}";
    const tensor ok[3] = {{".nonzero", LP_DT_U32, R, W, w.nonzero},
                          {".negative", LP_DT_U32, R, W, w.negative},
                          {".scales", LP_DT_F16, R, NG, w.scales}};
    lp_linear l;
    lp_weights *wts;
    write_file(file_path("ok.safetensors"), ok, 3, meta);
    CHECK_OK(load_file(file_path("ok.safetensors"), R, C, &l, &wts));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok.safetensors"));

    tensor t[3];
    memcpy(t, ok, sizeof t);
    t[2].d1 = 1; /* per-channel scales for a group-32 description */
    expect_corrupt("ternary: scales of the wrong shape", t, 3, meta, R, C, "blk.lin.scales");
    memcpy(t, ok, sizeof t);
    t[1].d0 = R - 1;
    expect_corrupt("ternary: negative plane of the wrong shape", t, 3, meta, R, C, "blk.lin.negative");
    expect_corrupt("ternary: group 48", ok, 3, "{\"format\":\"ternary\",\"group\":48}", R, C, "group = 48");
    expect_corrupt("ternary: group missing", ok, 3, "{\"format\":\"ternary\"}", R, C, "group");
    expect_corrupt("ternary: group 64 with group-32 tensors", ok, 3, "{\"format\":\"ternary\",\"group\":64}", R, C,
                   "blk.lin.scales");
    uint16_t sc[R * NG];
    memcpy(sc, w.scales, sizeof sc);
    memcpy(t, ok, sizeof t);
    t[2].data = sc;
    sc[7] = 0x7c01; /* NaN */
    expect_corrupt("ternary: NaN scale", t, 3, meta, R, C, "row 2 group 1 is NaN");
    uint32_t m[R * W], n[R * W];
    memcpy(m, w.nonzero, sizeof m);
    memcpy(n, w.negative, sizeof n);
    memcpy(t, ok, sizeof t);
    t[0].data = m;
    t[1].data = n;
    m[1 * W + 2] |= 1u << 31; /* padding in the nonzero plane */
    n[1 * W + 2] |= 1u << 31;
    expect_corrupt("ternary: padding bit set", t, 3, meta, R, C, "past column 71");
    m[1 * W + 2] &= ~(1u << 31);
    expect_corrupt("ternary: padding bit set in the negative plane only", t, 3, meta, R, C, "past column 71");
    n[1 * W + 2] &= ~(1u << 31);
    int64_t z = 0; /* a zero weight */
    while (bit_at(m, z)) z++;
    n[z / 32] |= 1u << (z % 32);
    expect_corrupt("ternary: negative bit on a zero weight", t, 3, meta, R, C, "negative bits only on nonzero");
    lp_ternary_free(&w);
}

/* ---- the methods ---- */

/* A dense linear owning a copy of W (rows x cols). */
static void compress(const char *spec, const float *W, int64_t rows, int64_t cols, lp_linear *l, double *err) {
    lp_settings *s = NULL;
    CHECKF(lp_settings_parse(spec, &s) == LP_OK, "\"%s\": %s", spec, lp_last_error());
    dense_linear(l, W, rows, cols);
    if (s) CHECKF(lp_method_compress_linear(s, l, NULL, NULL, err) == LP_OK, "\"%s\": %s", spec, lp_last_error());
    lp_settings_free(s);
}

static void check_sign_method(unsigned long long *seed) {
    enum { R = 24, C = 200 };
    float *W = malloc(R * C * sizeof(float));
    for (int i = 0; i < R * C; i++) W[i] = (float)(0.02 * test_randn(seed)) * (float)(1 + i / C);
    W[5] = 0.0f; /* exact zeros take +alpha */
    W[C + 7] = -0.0f;
    lp_linear l;
    double err = -1;
    compress("sign", W, R, C, &l, &err);
    const lp_sign *w = lp_linear_data(&l, &lp_format_sign);
    CHECK(w != NULL);
    if (w) {
        int bad_scale = 0, bad_sign = 0;
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int c = 0; c < C; c++) s += fabs((double)W[r * C + c]);
            s /= C;
            const float a = lp_f16_to_f32(w->scales[r]);
            bad_scale += w->scales[r] != lp_f32_to_f16((float)s) || fabs(a - s) > s * 0x1p-11;
            for (int c = 0; c < C; c++) bad_sign += bit_at(w->signs + r * w->words, c) != (W[r * C + c] >= 0.0f);
        }
        CHECKF(bad_scale == 0, "sign: %d row scales are not mean |w| rounded to f16", bad_scale);
        CHECKF(bad_sign == 0, "sign: %d bits are not w >= 0", bad_sign);
        CHECK(bit_at(w->signs, 5) && bit_at(w->signs + w->words, 7));
        CHECK((w->signs[w->words - 1] >> (C % 32)) == 0); /* padding */
        /* Gaussian rows: ||w - mean|w| sign(w)|| / ||w|| = sqrt(1 - 2/pi) = 0.603 */
        CHECKF(err > 0.55 && err < 0.65, "sign: relative error %.4f, expected about 0.603", err);
        char d[64];
        lp_linear_describe(&l, d, sizeof d);
        CHECKF(strstr(d, "sign") != NULL, "described as \"%s\"", d);
    }
    lp_linear_free(&l);
    lp_settings *s = NULL;
    CHECK(lp_settings_parse("sign group=64", &s) == LP_ERR_ARG && s == NULL);
    W[3] = 1e8f; /* mean |w| of row 0 (5e5) above f16's range */
    dense_linear(&l, W, R, C);
    CHECK_OK(lp_settings_parse("sign", &s));
    if (s) CHECK(lp_method_compress_linear(s, &l, NULL, NULL, &err) == LP_ERR_NUMERIC && lp_linear_is(&l, &lp_format_dense));
    lp_settings_free(s);
    lp_linear_free(&l);
    free(W);
}

/* TWN on one group, in double, as the header states it: w_hat (n). */
static void twn(const float *x, int64_t n, float *out) {
    double s = 0, k = 0;
    int64_t nk = 0;
    for (int64_t i = 0; i < n; i++) s += fabs((double)x[i]);
    const double delta = 0.7 * s / (double)n;
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > delta) k += fabs((double)x[i]), nk++;
    const float a = lp_f16_to_f32(lp_f32_to_f16(nk ? (float)(k / (double)nk) : 0.0f));
    for (int64_t i = 0; i < n; i++) out[i] = fabs((double)x[i]) > delta && a != 0 ? (x[i] < 0 ? -a : a) : 0.0f;
}

static void check_ternary_method(unsigned long long *seed) {
    /* Hand-made row of four groups of 32 (group=32):
     *  g0: 8 x +-1.0, 8 x +-0.5, 16 x 0: mean 0.375, delta 0.2625 -> the 16 kept, a = 12/16 = 0.75
     *  g1: 3.2 and 31 x -0.1: mean 0.196875, delta 0.1378 -> only 3.2 kept, a = f16(3.2) = 3.19921875
     *  g2: all 0 -> a = 0, all 0
     *  g3: 16 x -0.2, 16 x 0.3: mean 0.25, delta 0.175 -> all kept, a = 0.25 */
    enum { C = 128 };
    float row[C] = {0}, want[C] = {0};
    for (int i = 0; i < 8; i++) row[i] = i & 1 ? -1.0f : 1.0f, want[i] = i & 1 ? -0.75f : 0.75f;
    for (int i = 8; i < 16; i++) row[i] = i & 1 ? 0.5f : -0.5f, want[i] = i & 1 ? 0.75f : -0.75f;
    row[32] = 3.2f, want[32] = 3.19921875f;
    for (int i = 33; i < 64; i++) row[i] = -0.1f;
    for (int i = 96; i < 112; i++) row[i] = -0.2f, want[i] = -0.25f;
    for (int i = 112; i < 128; i++) row[i] = 0.3f, want[i] = 0.25f;
    lp_linear l;
    double err;
    compress("ternary group=32", row, 1, C, &l, &err);
    const lp_ternary *w = lp_linear_data(&l, &lp_format_ternary);
    CHECK(w != NULL && w->group == 32 && w->ngroups == 4);
    float got[C];
    if (w) {
        lp_ternary_dequant(w, 0, 1, got);
        int bad = 0;
        for (int i = 0; i < C; i++) bad += got[i] != want[i];
        CHECKF(bad == 0, "ternary: %d of the hand-made group's weights differ from TWN's rule", bad);
        CHECK(lp_f16_to_f32(w->scales[0]) == 0.75f && lp_f16_to_f32(w->scales[2]) == 0.0f);
        CHECK(w->nonzero[2] == 0 && w->negative[2] == 0);
    }
    lp_linear_free(&l);

    /* random rows: per-channel, group 64 on a ragged width, group 128 */
    enum { R = 9, CC = 200 };
    float *W = malloc(R * CC * sizeof(float)), *D = malloc(R * CC * sizeof(float)), *E = malloc(R * CC * sizeof(float));
    for (int i = 0; i < R * CC; i++) W[i] = (float)(0.05 * test_randn(seed));
    static const char *const specs[] = {"ternary group=-1", "ternary group=64", "ternary"};
    static const int groups[] = {CC, 64, 128};
    for (int s = 0; s < 3; s++) {
        compress(specs[s], W, R, CC, &l, &err);
        const lp_ternary *t = lp_linear_data(&l, &lp_format_ternary);
        CHECKF(t && t->group == groups[s], "%s: group %d", specs[s], t ? t->group : 0);
        if (!t) continue;
        lp_ternary_dequant(t, 0, R, D);
        for (int r = 0; r < R; r++)
            for (int c0 = 0; c0 < CC; c0 += groups[s])
                twn(W + r * CC + c0, CC - c0 < groups[s] ? CC - c0 : groups[s], E + r * CC + c0);
        int bad = 0;
        for (int i = 0; i < R * CC; i++) bad += D[i] != E[i];
        CHECKF(bad == 0, "%s: %d weights differ from TWN's rule", specs[s], bad);
        /* Gaussian: TWN keeps about 58% of the weights and leaves about 0.44 of the norm */
        CHECKF(err > 0.3 && err < 0.6, "%s: relative error %.4f", specs[s], err);
        lp_linear_free(&l);
    }
    free(W), free(D), free(E);

    lp_settings *s = NULL;
    CHECK(lp_settings_parse("ternary group=48", &s) == LP_ERR_ARG && s == NULL);
    CHECK(lp_settings_parse("ternary group=0", &s) == LP_ERR_ARG && s == NULL);
    CHECK_OK(lp_settings_parse("ternary group=64", &s));
    CHECK(s && lp_settings_get(s, "group") == 64);
    lp_settings_free(s);
    CHECK_OK(lp_settings_parse("ternary", &s));
    CHECK(s && lp_settings_get(s, "group") == 128 && !lp_settings_needs_calib(s));
    lp_settings_free(s);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lp_test_sign_ternary_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(lp_format_find("sign") == &lp_format_sign && lp_format_find("ternary") == &lp_format_ternary);
    unsigned long long seed = 2016;
    double worst_sign = 0, worst_ternary = 0;
    check_sign_format(&seed, &worst_sign);
    check_ternary_format(&seed, &worst_ternary);
    printf("SIMD vs reference, worst |diff| / sum |w x|: sign %.3g, ternary %.3g (levels up to %s)\n", worst_sign,
           worst_ternary, lp_isa_name(lp_cpu_supports(LP_ISA_AVX512) ? LP_ISA_AVX512 : lp_cpu_supports(LP_ISA_AVX2) ? LP_ISA_AVX2 : LP_ISA_REF));
    check_sign_method(&seed);
    check_ternary_method(&seed);
    rmdir(g_dir);
    TEST_DONE();
}
