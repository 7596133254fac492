/*
 * test_sparse.c - the pruned formats "nm" and "bitmap" (format/sparse.h,
 * format/nm.h, format/bitmap.h):
 *  - the storage layout on hand-made rows (2:4 indices, 4- and 3-bit code
 *    streams, bitmap words and offsets);
 *  - random weights made with lp_nm_make / lp_bitmap_make for n:m 2:4, 4:8,
 *    1:4, 3:8, 1:2, 8:16, 3:4 and bitmap densities from 0 to 1 (empty and
 *    full rows), widths not a multiple of 32 or 64, values as bf16, f16 and
 *    codes of 8, 4, 3 and 2 bits with per-row and grouped grids (groups of
 *    32, 64, 96 and, N:M, of m itself, the generic path):
 *    dequantization equals the definition computed here from the make
 *    arguments (values rounded to the dtype, f16 scale x (code - zero), +0
 *    where pruned) bit for bit, at every level this CPU supports;
 *    nparams is the kept count and nbytes the exact formula;
 *  - products for T = 1, 2, 3, 4, 5, 17, 64: the reference and each SIMD
 *    level (packed kernels forced) against a double-precision product of the
 *    dequantized weight, each level against the reference (|diff| / sum
 *    |w x| < 1e-5); each token of a multi-token call is bit-identical to a
 *    one-token call; one or two threads give the same bits; the sgemm path
 *    and the traits row's product against the double product;
 *  - save -> load through a safetensors file: same bytes, description,
 *    outputs;
 *  - corrupt files fail with LP_ERR_FORMAT naming the file, tensor and value
 *    (index order, index >= m, index padding bits, bitmap padding bit,
 *    offsets wrong, NaN value, NaN scale, zero > maxq, code padding bits,
 *    wrong tensor size or dtype, missing tensor, bad description);
 *  - make's argument errors (2:4 with 1030 columns, wrong keep counts, keep
 *    values other than 0/1, bad bits / dtype / group, scales not exact in
 *    f16, zeros or codes out of range, values that overflow f16).
 * Shapes: W is rows x cols (out x in), X is T x cols, Y is T x rows.
 */
#include "test.h"

#include "core/half.h"
#include "format/bitmap.h"
#include "format/linear.h"
#include "format/nm.h"
#include "format/sparse.h"

#include <omp.h>
#include <unistd.h>

static char g_dir[256];
static const lp_isa ISAS[] = {LP_ISA_REF, LP_ISA_AVX2, LP_ISA_AVX512};
static void (*const NM_DQ[LP_ISA_N])(const void *, int64_t, int64_t, float *) = {
    lp_nm_dequant_ref, lp_nm_dequant_avx2, lp_nm_dequant_avx512};
static void (*const BM_DQ[LP_ISA_N])(const void *, int64_t, int64_t, float *) = {
    lp_bitmap_dequant_ref, lp_bitmap_dequant_avx2, lp_bitmap_dequant_avx512};

static double max_d(double a, double b) { return a > b ? a : b; }
static double unif(unsigned long long *s) { return (double)(test_rand_u64(s) >> 11) / 9007199254740992.0; }

/* ---- one case: the make arguments, the definition, the made weight ---- */

typedef struct {
    int n, m;           /* 0, 0: bitmap */
    int64_t R, C;
    lp_sparse_values v; /* as given to make */
    double density;     /* bitmap */
} spec;

typedef struct {
    spec s;
    int64_t G, ngroups, kept; /* G: resolved group (cols for bits 16) */
    uint8_t *keep, *codes;
    float *W, *scales, *def; /* def (R x C): the definition */
    int *zeros;
    const lp_format *fmt;
    void *data;
} made;

static const char *case_name(const spec *s, char *buf, size_t n) {
    const char *vt = s->v.bits == 16 ? (s->v.dtype == LP_DT_BF16 ? "bf16" : "f16") : "codes";
    if (s->n) snprintf(buf, n, "nm %d:%d %lldx%lld bits %d %s group %d", s->n, s->m, (long long)s->R, (long long)s->C,
                       s->v.bits, vt, s->v.group);
    else snprintf(buf, n, "bitmap %.2f %lldx%lld bits %d %s group %d", s->density, (long long)s->R, (long long)s->C,
                  s->v.bits, vt, s->v.group);
    return buf;
}

/* Random make arguments for s, the definition, and the weight (must succeed). */
static int make_case(const spec *s, unsigned long long *seed, made *k) {
    memset(k, 0, sizeof *k);
    k->s = *s;
    const int64_t R = s->R, C = s->C;
    const int bits = s->v.bits;
    k->G = bits == 16 || s->v.group == -1 || s->v.group >= C ? C : s->v.group;
    k->ngroups = bits == 16 ? 1 : (C + k->G - 1) / k->G;
    k->keep = calloc((size_t)(R * C), 1);
    k->W = malloc((size_t)(R * C) * sizeof(float));
    k->codes = malloc((size_t)(R * C));
    k->scales = malloc((size_t)(R * k->ngroups) * sizeof(float));
    k->zeros = malloc((size_t)(R * k->ngroups) * sizeof(int));
    k->def = malloc((size_t)(R * C) * sizeof(float));
    const unsigned maxq = bits == 16 ? 0 : (1u << bits) - 1u;
    for (int64_t r = 0; r < R; r++) {
        if (s->n) { /* n random positions in each block of m */
            for (int64_t b = 0; b < C / s->m; b++) {
                int pos[16];
                for (int j = 0; j < s->m; j++) pos[j] = j;
                for (int j = 0; j < s->n; j++) {
                    int q = j + (int)(test_rand_u64(seed) % (unsigned)(s->m - j)), t = pos[j];
                    pos[j] = pos[q], pos[q] = t;
                    k->keep[r * C + b * s->m + pos[j]] = 1;
                }
            }
        } else {
            const double d = r == 1 ? 0.0 : r == 2 ? 1.0 : s->density; /* an empty and a full row */
            for (int64_t c = 0; c < C; c++) k->keep[r * C + c] = unif(seed) < d;
        }
    }
    for (int64_t i = 0; i < R * C; i++) {
        k->W[i] = (float)(0.05 * test_randn(seed)) * (i % 97 == 5 ? 40.0f : 1.0f);
        k->codes[i] = (uint8_t)(maxq ? test_rand_u64(seed) % (maxq + 1) : 0);
        k->kept += k->keep[i];
    }
    for (int64_t i = 0; i < R * k->ngroups; i++) {
        k->scales[i] = lp_f16_to_f32(lp_f32_to_f16((float)(0.01 * test_randn(seed))));
        k->zeros[i] = maxq ? (int)(test_rand_u64(seed) % (maxq + 1)) : 0;
    }
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            const int64_t i = r * C + c, g = r * k->ngroups + c / k->G;
            float d = 0.0f;
            if (k->keep[i] && bits == 16)
                d = s->v.dtype == LP_DT_BF16 ? lp_bf16_to_f32(lp_f32_to_bf16(k->W[i]))
                                             : lp_f16_to_f32(lp_f32_to_f16(k->W[i]));
            else if (k->keep[i])
                d = k->scales[g] * (float)((int)k->codes[i] - k->zeros[g]);
            k->def[i] = d;
        }
    lp_status st;
    if (s->n) {
        k->fmt = &lp_format_nm;
        st = lp_nm_make(R, C, s->n, s->m, k->keep, &s->v, bits == 16 ? k->W : NULL, k->codes, k->scales, k->zeros,
                        &k->data);
    } else {
        k->fmt = &lp_format_bitmap;
        st = lp_bitmap_make(R, C, k->keep, &s->v, bits == 16 ? k->W : NULL, k->codes, k->scales, k->zeros, &k->data);
    }
    char nm[128];
    CHECKF(st == LP_OK, "%s: make: %s", case_name(s, nm, sizeof nm), lp_last_error());
    return st == LP_OK;
}

static void free_case(made *k) {
    if (k->data) k->fmt->free(k->data);
    free(k->keep), free(k->W), free(k->codes), free(k->scales), free(k->zeros), free(k->def);
    memset(k, 0, sizeof *k);
}

static lp_status gemm_at(const made *k, const float *X, int64_t T, float *Y, lp_isa isa, int64_t bm) {
    return k->s.n ? lp_nm_gemm_ex(k->data, X, T, Y, isa, bm) : lp_bitmap_gemm_ex(k->data, X, T, Y, isa, bm);
}

/* The exact stored bytes, from the spec. */
static size_t nbytes_formula(const made *k) {
    const int64_t R = k->s.R, C = k->s.C, bits = k->s.v.bits;
    size_t b = bits == 16 ? (size_t)k->kept * 2 : (size_t)((k->kept * bits + 7) / 8) + (size_t)(R * k->ngroups) * 3;
    if (k->s.n) {
        int ib = 0;
        while ((1 << ib) < k->s.m) ib++;
        b += (size_t)(R * ((C / k->s.m * k->s.n * ib + 7) / 8));
    } else {
        b += (size_t)(R * ((C + 31) / 32)) * 4 + (size_t)(R + 1) * 8;
    }
    return b;
}

/* Dequantization, products, threads, nbytes and nparams of one case. */
static void check_kernels(const made *k, unsigned long long *seed, double *worst) {
    const int64_t R = k->s.R, C = k->s.C;
    static const int64_t Ts[] = {1, 2, 3, 4, 5, 17, 64};
    enum { TMAX = 64 };
    char name[128];
    case_name(&k->s, name, sizeof name);
    float *D = malloc((size_t)(R * C) * sizeof(float)), *E = malloc((size_t)(R * C) * sizeof(float));
    void (*const *dq)(const void *, int64_t, int64_t, float *) = k->s.n ? NM_DQ : BM_DQ;

    /* dequantization: the definition, bit for bit, at every level (rows from 3 on too) */
    for (int i = 0; i < LP_ISA_N; i++) {
        if (!lp_cpu_supports(ISAS[i])) continue;
        const int64_t r0 = i == 0 || R <= 3 ? 0 : 3;
        memset(E, 0xff, (size_t)(R * C) * sizeof(float));
        dq[i](k->data, r0, R, E + r0 * C);
        int64_t bad = 0, first = -1;
        for (int64_t j = r0 * C; j < R * C; j++)
            if (memcmp(&E[j], &k->def[j], 4)) bad++, first = first < 0 ? j : first;
        CHECKF(bad == 0, "%s: %s dequantization: %lld values differ from the definition (first at row %lld col %lld: "
               "%g, expected %g)", name, lp_isa_name(ISAS[i]), (long long)bad, (long long)(first / C),
               (long long)(first % C), first >= 0 ? E[first] : 0.0, first >= 0 ? k->def[first] : 0.0);
    }
    CHECK_OK(k->fmt->dequant(k->data, 0, R, D)); /* the traits row: this CPU's level, threaded */
    CHECKF(!memcmp(D, k->def, (size_t)(R * C) * sizeof(float)), "%s: the traits row's dequantization differs", name);
    CHECKF(k->fmt->nbytes(k->data) == nbytes_formula(k), "%s: nbytes %zu, formula %zu", name,
           k->fmt->nbytes(k->data), nbytes_formula(k));
    CHECKF(k->fmt->nparams(k->data) == k->kept, "%s: nparams %lld, kept %lld", name,
           (long long)k->fmt->nparams(k->data), (long long)k->kept);

    /* products */
    float *X = malloc((size_t)(TMAX * C) * sizeof(float)), *Yr = malloc((size_t)(TMAX * R) * sizeof(float));
    float *Y = malloc((size_t)(TMAX * R) * sizeof(float)), *Y1 = malloc((size_t)R * sizeof(float));
    double *want = malloc((size_t)(TMAX * R) * sizeof(double)), *mag = malloc((size_t)(TMAX * R) * sizeof(double));
    for (int64_t i = 0; i < TMAX * C; i++) X[i] = test_randn(seed);
    for (int64_t t = 0; t < TMAX; t++)
        for (int64_t r = 0; r < R; r++) {
            double acc = 0, m = 0;
            for (int64_t c = 0; c < C; c++) {
                acc += (double)k->def[r * C + c] * X[t * C + c];
                m += fabs((double)k->def[r * C + c] * X[t * C + c]);
            }
            want[t * R + r] = acc;
            mag[t * R + r] = m > 0 ? m : 1;
        }
    for (size_t ti = 0; ti < sizeof Ts / sizeof *Ts; ti++) {
        const int64_t n = Ts[ti];
        CHECK_OK(gemm_at(k, X, n, Yr, LP_ISA_REF, 1000));
        double e = 0;
        for (int64_t i = 0; i < n * R; i++) e = max_d(e, fabs(Yr[i] - want[i]) / mag[i]);
        CHECKF(e < 1e-5, "%s T=%lld: reference vs double product: %.3g", name, (long long)n, e);
        for (int i = 1; i < LP_ISA_N; i++) {
            if (!lp_cpu_supports(ISAS[i])) continue;
            CHECK_OK(gemm_at(k, X, n, Y, ISAS[i], 1000));
            double er = 0, ed = 0;
            for (int64_t j = 0; j < n * R; j++) {
                er = max_d(er, fabs((double)Y[j] - Yr[j]) / mag[j]);
                ed = max_d(ed, fabs((double)Y[j] - want[j]) / mag[j]);
            }
            *worst = max_d(*worst, er);
            CHECKF(er < 1e-5 && ed < 1e-5, "%s T=%lld: %s vs reference %.3g, vs double product %.3g", name,
                   (long long)n, lp_isa_name(ISAS[i]), er, ed);
        }
    }
    enum { TT = 5 };
    for (int i = 0; i < LP_ISA_N; i++) { /* per token, T does not matter; nor does the thread count */
        if (!lp_cpu_supports(ISAS[i])) continue;
        CHECK_OK(gemm_at(k, X, TT, Y, ISAS[i], 1000));
        for (int64_t t = 0; t < TT; t++) {
            CHECK_OK(gemm_at(k, X + t * C, 1, Y1, ISAS[i], 1000));
            CHECKF(!memcmp(Y1, Y + t * R, (size_t)R * sizeof(float)), "%s %s: token %lld of %d differs from T = 1",
                   name, lp_isa_name(ISAS[i]), (long long)t, TT);
        }
        const int nth = omp_get_max_threads();
        omp_set_num_threads(nth > 1 ? 1 : 2);
        CHECK_OK(gemm_at(k, X, TT, Yr, ISAS[i], 1000));
        omp_set_num_threads(nth);
        CHECKF(!memcmp(Y, Yr, (size_t)(TT * R) * sizeof(float)), "%s %s: the thread count changed the result", name,
               lp_isa_name(ISAS[i]));
    }
    /* many tokens: dequantized tiles + sgemm, and the traits row's product (this CPU's level, default path) */
    CHECK_OK(gemm_at(k, X, 17, Y, lp_cpu_isa(), 1));
    double e = 0;
    for (int64_t i = 0; i < 17 * R; i++) e = max_d(e, fabs(Y[i] - want[i]) / mag[i]);
    CHECKF(e < 1e-5, "%s: sgemm path vs double product: %.3g", name, e);
    CHECK_OK(lp_format_gemm(k->fmt, lp_cpu_isa())(k->data, X, TMAX, Y));
    e = 0;
    for (int64_t i = 0; i < TMAX * R; i++) e = max_d(e, fabs(Y[i] - want[i]) / mag[i]);
    CHECKF(e < 1e-5, "%s: traits-row product vs double product: %.3g", name, e);
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
    static int k;
    char *b = p[k++ & 3];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

static void write_file(const char *path, const tensor *ts, int n, const char *meta) {
    lp_st_writer *w = NULL;
    CHECK_OK(lp_st_writer_init(&w));
    for (int i = 0; i < n; i++)
        CHECK_OK(lp_fmt_add(w, "blk.lin", ts[i].suffix, ts[i].dt, ts[i].d0, ts[i].d1, ts[i].data));
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

/* A corrupt file must fail with LP_ERR_FORMAT, name the file and say what (need in the message). */
static void expect_corrupt(const char *what, const tensor *ts, int n, const char *meta, int64_t rows, int64_t cols,
                           const char *need) {
    const char *p = file_path("corrupt.safetensors");
    write_file(p, ts, n, meta);
    lp_linear l;
    lp_weights *wts;
    lp_status st = load_file(p, rows, cols, &l, &wts);
    CHECKF(st == LP_ERR_FORMAT && strstr(lp_last_error(), p) && (!need || strstr(lp_last_error(), need)),
           "%s: got %s: %s", what, lp_status_name(st), lp_last_error());
    CHECKF(l.nparts == 0, "%s: a rejected linear has %d parts", what, l.nparts);
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(p);
}

static int same_store(const lp_sparse_store *a, const lp_sparse_store *b, int64_t rows) {
    if (a->bits != b->bits || a->dtype != b->dtype || a->group != b->group || a->count != b->count) return 0;
    if (a->bits == 16) return !memcmp(a->v16, b->v16, (size_t)a->count * 2);
    return !memcmp(a->codes, b->codes, lp_sparse_code_bytes(a->count, a->bits)) &&
           !memcmp(a->scales, b->scales, (size_t)(rows * a->ngroups) * 2) &&
           !memcmp(a->zeros, b->zeros, (size_t)(rows * a->ngroups));
}

/* Save a one-part linear, load it back: same format, bytes, description and outputs. */
static void check_round_trip(const made *k, unsigned long long *seed) {
    const int64_t R = k->s.R, C = k->s.C, T = 3;
    char name[128];
    case_name(&k->s, name, sizeof name);
    lp_linear l = {.rows = R, .cols = C};
    lp_linear_set(&l, k->fmt, k->data); /* borrowed: taken back below */
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
        CHECKF(!memcmp(Y0, Y1, (size_t)(T * R) * sizeof(float)), "%s: loaded outputs differ", name);
        CHECK(k->fmt->nbytes(m.part[0].data) == nbytes_formula(k));
        CHECK(lp_linear_nparams(&m) == k->kept);
        if (k->s.n) {
            const lp_nm *a = k->data, *b = m.part[0].data;
            CHECKF(a->n == b->n && a->m == b->m && a->fast == b->fast &&
                       !memcmp(a->idx, b->idx, (size_t)(R * a->ibytes)) && same_store(&a->v, &b->v, R),
                   "%s: loaded bytes differ", name);
        } else {
            const lp_bitmap *a = k->data, *b = m.part[0].data;
            CHECKF(!memcmp(a->mask, b->mask, (size_t)(R * a->words) * 4) &&
                       !memcmp(a->offsets, b->offsets, (size_t)(R + 1) * 8) && same_store(&a->v, &b->v, R),
                   "%s: loaded bytes differ", name);
        }
        char d0[128], d1[128];
        lp_linear_describe(&l, d0, sizeof d0);
        lp_linear_describe(&m, d1, sizeof d1);
        CHECKF(!strcmp(d0, d1), "%s: described as \"%s\" then \"%s\"", name, d0, d1);
        free(X), free(Y0), free(Y1);
    } else {
        CHECKF(0, "%s: loaded linear is not one %s part", name, k->fmt->name);
    }
    l.nparts = 0; /* give the part back to the caller */
    lp_linear_free(&l);
    lp_linear_free(&m);
    lp_weights_close(wts);
    unlink(p);
}

/* ---- the layout, by hand ---- */

static void check_layout(void) {
    /* 2:4, one row of 8: kept columns 0, 3 | 5, 6 -> fields 0, 3, 1, 2 -> 0b10'01'11'00 = 0x9c; 4-bit codes */
    const uint8_t keep[8] = {1, 0, 0, 1, 0, 1, 1, 0}, codes[8] = {1, 9, 9, 2, 9, 3, 15, 9};
    const float scale = 0.5f;
    const int zero = 3;
    void *d = NULL;
    CHECK_OK(lp_nm_make(1, 8, 2, 4, keep, &(lp_sparse_values){4, LP_DT_U8, -1}, NULL, codes, &scale, &zero, &d));
    const lp_nm *w = d;
    if (w) {
        CHECKF(w->ib == 2 && w->ibytes == 1 && w->idx[0] == 0x9c, "2:4 indices 0x%02x, expected 0x9c", w->idx[0]);
        CHECKF(w->v.codes[0] == 0x21 && w->v.codes[1] == 0xf3, "4-bit codes 0x%02x 0x%02x, expected 0x21 0xf3",
               w->v.codes[0], w->v.codes[1]);
        CHECK(w->fast && lp_nm_index(w, 0, 1) == 3 && lp_nm_index(w, 0, 2) == 1);
        float out[8];
        lp_nm_dequant_ref(w, 0, 1, out);
        CHECK(out[0] == -1.0f && out[3] == -0.5f && out[5] == 0.0f && out[6] == 6.0f && out[1] == 0.0f &&
              !signbit(out[1]));
        lp_format_nm.free(d);
    }
    /* 3-bit codes 5, 6, 7 in a bitmap row: 101 | 110 << 3 | 111 << 6 -> 0xf5 0x01 */
    const uint8_t keep2[40] = {[0] = 1, [9] = 1, [33] = 1}, codes2[40] = {[0] = 5, [9] = 6, [33] = 7};
    CHECK_OK(lp_bitmap_make(1, 40, keep2, &(lp_sparse_values){3, LP_DT_U8, -1}, NULL, codes2, &scale, &zero, &d));
    const lp_bitmap *b = d;
    if (b) {
        CHECK(b->words == 2 && b->mask[0] == 0x201u && b->mask[1] == 2u);
        CHECK(b->offsets[0] == 0 && b->offsets[1] == 3 && b->v.count == 3);
        CHECKF(b->v.codes[0] == 0xf5 && b->v.codes[1] == 0x01, "3-bit codes 0x%02x 0x%02x, expected 0xf5 0x01",
               b->v.codes[0], b->v.codes[1]);
        lp_format_bitmap.free(d);
    }
}

/* ---- random cases ---- */

static void run_cases(unsigned long long *seed, double *worst_nm, double *worst_bm) {
    const lp_sparse_values V[] = {
        {16, LP_DT_BF16, -1}, {16, LP_DT_F16, -1}, {8, LP_DT_U8, -1}, {4, LP_DT_U8, -1},
        {4, LP_DT_U8, 64},    {8, LP_DT_U8, 32},   {3, LP_DT_U8, -1}, {2, LP_DT_U8, 96},
    };
    const int NV = (int)(sizeof V / sizeof *V);
    /* n:m with two widths each: one ragged against 32 (and 64), one not */
    static const int64_t NM[][4] = {{2, 4, 37, 200}, {2, 4, 9, 1028}, {4, 8, 20, 256}, {4, 8, 7, 72},
                                    {1, 4, 7, 100},  {3, 8, 6, 104},  {1, 2, 5, 34},   {8, 16, 4, 80},
                                    {3, 4, 5, 44}};
    for (size_t s = 0; s < sizeof NM / sizeof *NM; s++)
        for (int vi = 0; vi < NV; vi++) {
            spec sp = {(int)NM[s][0], (int)NM[s][1], NM[s][2], NM[s][3], V[vi], 0};
            const int m = sp.m;
            if (sp.v.bits < 16 && sp.v.group > 0 && sp.v.group % m) sp.v.group = -1;
            made k;
            if (make_case(&sp, seed, &k)) {
                /* the fast paths must be the ones tested for 2:4 and 4:8 (nm.h's conditions) */
                const int want_fast = 2 * sp.n == sp.m && sp.m <= 8 && sp.v.bits != 3 && sp.v.bits != 2 &&
                                      (sp.v.bits == 16 || sp.v.group % 32 == 0 || sp.v.group == -1);
                if (sp.m == 4 || sp.m == 8) CHECKF(((lp_nm *)k.data)->fast == want_fast, "nm %d:%d bits %d group %d: "
                                                   "fast = %d", sp.n, sp.m, sp.v.bits, sp.v.group, want_fast);
                check_kernels(&k, seed, worst_nm);
                check_round_trip(&k, seed);
            }
            free_case(&k);
        }
    /* N:M groups of m itself (the generic path of the SIMD files) */
    const spec gm[] = {{2, 4, 6, 72, {4, LP_DT_U8, 4}, 0}, {4, 8, 5, 40, {8, LP_DT_U8, 8}, 0},
                       {2, 4, 3, 64, {4, LP_DT_U8, 12}, 0}};
    for (size_t s = 0; s < sizeof gm / sizeof *gm; s++) {
        made k;
        if (make_case(&gm[s], seed, &k)) {
            CHECK(!((lp_nm *)k.data)->fast);
            check_kernels(&k, seed, worst_nm);
            check_round_trip(&k, seed);
        }
        free_case(&k);
    }
    static const int64_t BM[][2] = {{37, 200}, {16, 32}, {5, 1}, {33, 97}, {8, 384}, {3, 1000}};
    static const double DENS[] = {0.5, 0.1, 0.9, 0.0, 1.0, 0.3};
    for (size_t s = 0; s < sizeof BM / sizeof *BM; s++)
        for (int vi = 0; vi < NV; vi++) {
            spec sp = {0, 0, BM[s][0], BM[s][1], V[vi], DENS[(s + (size_t)vi) % 6]};
            made k;
            if (make_case(&sp, seed, &k)) {
                check_kernels(&k, seed, worst_bm);
                check_round_trip(&k, seed);
            }
            free_case(&k);
        }
}

/* ---- corrupt files ---- */

static void check_corrupt_nm(unsigned long long *seed) {
    /* 2:4, 6 x 36, bf16: 18 fields of 2 bits per row = 5 bytes with 4 padding bits; 108 values */
    enum { R = 6, C = 36, IB = 5, NV = R * C / 2 };
    made k;
    spec sp = {2, 4, R, C, {16, LP_DT_BF16, -1}, 0};
    if (!make_case(&sp, seed, &k)) return;
    const lp_nm *w = k.data;
    const char *meta = "{\"format\":\"nm\",\"n\":2,\"m\":4,\"bits\":16,\"dtype\":\"bf16\"}";
    uint8_t idx[R * IB];
    uint16_t val[NV + 1];
    memcpy(idx, w->idx, sizeof idx);
    memcpy(val, w->v.v16, NV * 2);
    val[NV] = 0;
    tensor ok[2] = {{".indices", LP_DT_U8, R, IB, idx}, {".values", LP_DT_BF16, 1, NV, val}};
    lp_linear l;
    lp_weights *wts;
    write_file(file_path("ok.safetensors"), ok, 2, meta);
    CHECK_OK(load_file(file_path("ok.safetensors"), R, C, &l, &wts));
    CHECK(lp_linear_is(&l, &lp_format_nm));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok.safetensors"));

    /* row 2, group 3: its two fields (bits 12..15 of the row) swapped -> decreasing */
    const int f0 = (idx[2 * IB + 1] >> 4) & 3, f1 = (idx[2 * IB + 1] >> 6) & 3;
    idx[2 * IB + 1] = (uint8_t)((idx[2 * IB + 1] & 0x0f) | f1 << 4 | f0 << 6);
    expect_corrupt("nm: index order", ok, 2, meta, R, C, "row 2, group 3");
    idx[2 * IB + 1] = w->idx[2 * IB + 1];
    /* two equal fields */
    idx[0] = (uint8_t)((idx[0] & 0xf0) | 0x5);
    expect_corrupt("nm: repeated index", ok, 2, meta, R, C, "strictly increasing");
    idx[0] = w->idx[0];
    idx[3 * IB + 4] |= 0x40; /* a padding bit of row 3 */
    expect_corrupt("nm: index padding bit", ok, 2, meta, R, C, "row 3's last byte");
    idx[3 * IB + 4] = w->idx[3 * IB + 4];
    val[17] = 0x7fc0; /* NaN */
    expect_corrupt("nm: NaN value", ok, 2, meta, R, C, "value 17 is NaN");
    val[17] = 0xff80; /* -inf */
    expect_corrupt("nm: infinite value", ok, 2, meta, R, C, "infinite");
    val[17] = w->v.v16[17];
    tensor t[2];
    memcpy(t, ok, sizeof t);
    t[1].d1 = NV + 1;
    expect_corrupt("nm: values of the wrong size", t, 2, meta, R, C, "blk.lin.values");
    memcpy(t, ok, sizeof t);
    t[1].dt = LP_DT_F16;
    expect_corrupt("nm: values of the wrong dtype", t, 2, meta, R, C, "blk.lin.values");
    memcpy(t, ok, sizeof t);
    t[0].d1 = IB + 1;
    uint8_t idx2[R * (IB + 1)] = {0};
    t[0].data = idx2;
    expect_corrupt("nm: indices of the wrong shape", t, 2, meta, R, C, "blk.lin.indices");
    expect_corrupt("nm: values missing", ok, 1, meta, R, C, "missing");
    expect_corrupt("nm: indices missing", ok + 1, 1, meta, R, C, "missing");
    expect_corrupt("nm: n missing", ok, 2, "{\"format\":\"nm\",\"m\":4,\"bits\":16,\"dtype\":\"bf16\"}", R, C,
                   "n=missing");
    expect_corrupt("nm: m = 17", ok, 2, "{\"format\":\"nm\",\"n\":2,\"m\":17,\"bits\":16,\"dtype\":\"bf16\"}", R, C,
                   "m=17");
    expect_corrupt("nm: n = m", ok, 2, "{\"format\":\"nm\",\"n\":4,\"m\":4,\"bits\":16,\"dtype\":\"bf16\"}", R, C,
                   "n=4");
    expect_corrupt("nm: bits 9", ok, 2, "{\"format\":\"nm\",\"n\":2,\"m\":4,\"bits\":9,\"group\":-1}", R, C,
                   "bits = 9");
    expect_corrupt("nm: dtype f32", ok, 2, "{\"format\":\"nm\",\"n\":2,\"m\":4,\"bits\":16,\"dtype\":\"f32\"}", R, C,
                   "\"f32\"");
    expect_corrupt("nm: no dtype", ok, 2, "{\"format\":\"nm\",\"n\":2,\"m\":4,\"bits\":16}", R, C, "dtype is missing");
    expect_corrupt("nm: 2:4 of 38 columns", ok, 2, meta, R, 38, "does not divide the width 38");
    free_case(&k);

    /* 1:3, 4 x 12: 2-bit fields can say 3 >= m */
    spec s3 = {1, 3, 4, 12, {16, LP_DT_F16, -1}, 0};
    if (!make_case(&s3, seed, &k)) return;
    w = k.data;
    uint8_t i3[4];
    memcpy(i3, w->idx, 4);
    const char *meta3 = "{\"format\":\"nm\",\"n\":1,\"m\":3,\"bits\":16,\"dtype\":\"f16\"}";
    tensor ok3[2] = {{".indices", LP_DT_U8, 4, 1, i3}, {".values", LP_DT_F16, 1, 16, w->v.v16}};
    i3[1] |= 0x30; /* row 1, field 2 = 3 */
    expect_corrupt("nm: index >= m", ok3, 2, meta3, 4, 12, "index 0 of 1 is 3, expected < m = 3");
    free_case(&k);

    /* 4:8, 5 x 40, 4-bit codes, group 8: the grid */
    spec s4 = {4, 8, 5, 40, {4, LP_DT_U8, 8}, 0};
    if (!make_case(&s4, seed, &k)) return;
    w = k.data;
    enum { NG = 5, NC = 5 * 20 / 2 }; /* 20 kept per row: 60 index bits = 8 bytes per row */
    const char *meta4 = "{\"format\":\"nm\",\"n\":4,\"m\":8,\"bits\":4,\"group\":8}";
    uint8_t z[5 * NG], cd[NC];
    uint16_t sc[5 * NG];
    memcpy(z, w->v.zeros, sizeof z);
    memcpy(sc, w->v.scales, sizeof sc);
    memcpy(cd, w->v.codes, sizeof cd);
    CHECK(w->ibytes == 8);
    tensor ok4[4] = {{".indices", LP_DT_U8, 5, 8, w->idx}, {".codes", LP_DT_U8, 1, NC, cd},
                     {".scales", LP_DT_F16, 5, NG, sc}, {".zeros", LP_DT_U8, 5, NG, z}};
    write_file(file_path("ok.safetensors"), ok4, 4, meta4);
    CHECK_OK(load_file(file_path("ok.safetensors"), 5, 40, &l, &wts));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok.safetensors"));
    z[7] = 16;
    expect_corrupt("nm: zero > maxq", ok4, 4, meta4, 5, 40, "zero of row 1 group 2 is 16");
    z[7] = w->v.zeros[7];
    sc[11] = 0x7e00;
    expect_corrupt("nm: NaN scale", ok4, 4, meta4, 5, 40, "scale of row 2 group 1 is NaN");
    sc[11] = w->v.scales[11];
    tensor t4[4];
    memcpy(t4, ok4, sizeof t4);
    t4[1].d1 = NC - 1;
    expect_corrupt("nm: codes of the wrong size", t4, 4, meta4, 5, 40, "blk.lin.codes");
    expect_corrupt("nm: zeros missing", ok4, 3, meta4, 5, 40, "missing");
    expect_corrupt("nm: group 12", ok4, 4, "{\"format\":\"nm\",\"n\":4,\"m\":8,\"bits\":4,\"group\":12}", 5, 40,
                   "group = 12");
    expect_corrupt("nm: group missing", ok4, 4, "{\"format\":\"nm\",\"n\":4,\"m\":8,\"bits\":4}", 5, 40,
                   "group=missing");
    free_case(&k);

    /* 3-bit codes whose count does not fill the last byte: a padding bit set */
    spec s5 = {1, 4, 3, 12, {3, LP_DT_U8, -1}, 0}; /* 9 codes = 27 bits: 5 padding bits */
    if (!make_case(&s5, seed, &k)) return;
    w = k.data;
    uint8_t c5[4];
    memcpy(c5, w->v.codes, 4);
    tensor ok5[4] = {{".indices", LP_DT_U8, 3, 1, w->idx}, {".codes", LP_DT_U8, 1, 4, c5},
                     {".scales", LP_DT_F16, 3, 1, w->v.scales}, {".zeros", LP_DT_U8, 3, 1, w->v.zeros}};
    c5[3] |= 0x80;
    expect_corrupt("nm: code padding bit", ok5, 4, "{\"format\":\"nm\",\"n\":1,\"m\":4,\"bits\":3,\"group\":12}", 3, 12,
                   "past the last code");
    free_case(&k);
}

static void check_corrupt_bitmap(unsigned long long *seed) {
    /* 6 x 72 (3 words per row, 24 padding bits), bf16 */
    enum { R = 6, C = 72, W = 3 };
    made k;
    spec sp = {0, 0, R, C, {16, LP_DT_BF16, -1}, 0.5};
    if (!make_case(&sp, seed, &k)) return;
    const lp_bitmap *w = k.data;
    const int64_t NV = w->v.count;
    const char *meta = "{\"format\":\"bitmap\",\"bits\":16,\"dtype\":\"bf16\"}";
    uint32_t mk[R * W];
    int64_t off[R + 1];
    uint16_t *val = calloc((size_t)NV + 1, 2);
    memcpy(mk, w->mask, sizeof mk);
    memcpy(off, w->offsets, sizeof off);
    memcpy(val, w->v.v16, (size_t)NV * 2);
    tensor ok[3] = {{".mask", LP_DT_U32, R, W, mk}, {".offsets", LP_DT_I64, 1, R + 1, off},
                    {".values", LP_DT_BF16, 1, NV, val}};
    lp_linear l;
    lp_weights *wts;
    write_file(file_path("ok.safetensors"), ok, 3, meta);
    CHECK_OK(load_file(file_path("ok.safetensors"), R, C, &l, &wts));
    CHECK(lp_linear_is(&l, &lp_format_bitmap));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(file_path("ok.safetensors"));

    mk[4 * W + 2] |= 1u << 20; /* column 84 of row 4 */
    expect_corrupt("bitmap: padding bit", ok, 3, meta, R, C, "past column 71");
    mk[4 * W + 2] = w->mask[4 * W + 2];
    off[3] += 1;
    expect_corrupt("bitmap: an offset off by one", ok, 3, meta, R, C, "offsets[3]");
    off[3] = w->offsets[3];
    off[0] = 1;
    expect_corrupt("bitmap: offsets[0] = 1", ok, 3, meta, R, C, "offsets[0] = 1");
    off[0] = 0;
    off[R] = INT64_MAX;
    expect_corrupt("bitmap: a huge last offset", ok, 3, meta, R, C, "offsets[6]");
    off[R] = w->offsets[R];
    mk[0] ^= 1u; /* a weight more or less in row 0: every later offset is off */
    expect_corrupt("bitmap: mask and offsets disagree", ok, 3, meta, R, C, "offsets[1]");
    mk[0] = w->mask[0];
    val[NV - 1] = 0x7f81; /* NaN */
    expect_corrupt("bitmap: NaN value", ok, 3, meta, R, C, "NaN");
    val[NV - 1] = w->v.v16[NV - 1];
    tensor t[3];
    memcpy(t, ok, sizeof t);
    t[2].d1 = NV + 1;
    expect_corrupt("bitmap: values of the wrong size", t, 3, meta, R, C, "blk.lin.values");
    memcpy(t, ok, sizeof t);
    t[1].dt = LP_DT_I32;
    int32_t off32[2 * (R + 1)] = {0};
    t[1].data = off32;
    expect_corrupt("bitmap: offsets of the wrong dtype", t, 3, meta, R, C, "blk.lin.offsets");
    memcpy(t, ok, sizeof t);
    t[0].d1 = W - 1;
    expect_corrupt("bitmap: mask of the wrong shape", t, 3, meta, R, C, "blk.lin.mask");
    t[0] = ok[1];
    t[1] = ok[2];
    expect_corrupt("bitmap: mask missing", t, 2, meta, R, C, "missing");
    expect_corrupt("bitmap: values missing", ok, 2, meta, R, C, "missing");
    expect_corrupt("bitmap: group 48", ok, 3, "{\"format\":\"bitmap\",\"bits\":2,\"group\":48}", R, C, "group = 48");
    free(val);
    free_case(&k);

    /* 2-bit codes, group 32 */
    spec s2 = {0, 0, 4, 64, {2, LP_DT_U8, 32}, 0.4};
    if (!make_case(&s2, seed, &k)) return;
    w = k.data;
    const char *meta2 = "{\"format\":\"bitmap\",\"bits\":2,\"group\":32}";
    uint8_t z[8];
    memcpy(z, w->v.zeros, sizeof z);
    const int64_t nb = (int64_t)lp_sparse_code_bytes(w->v.count, 2);
    tensor ok2[5] = {{".mask", LP_DT_U32, 4, 2, w->mask}, {".offsets", LP_DT_I64, 1, 5, w->offsets},
                     {".codes", LP_DT_U8, 1, nb, w->v.codes}, {".scales", LP_DT_F16, 4, 2, w->v.scales},
                     {".zeros", LP_DT_U8, 4, 2, z}};
    z[5] = 4;
    expect_corrupt("bitmap: zero > maxq", ok2, 5, meta2, 4, 64, "zero of row 2 group 1 is 4");
    z[5] = w->v.zeros[5];
    tensor t2[5];
    memcpy(t2, ok2, sizeof t2);
    t2[3].d1 = 1;
    expect_corrupt("bitmap: scales of the wrong shape", t2, 5, meta2, 4, 64, "blk.lin.scales");
    expect_corrupt("bitmap: group 64 with group-32 tensors", ok2, 5, "{\"format\":\"bitmap\",\"bits\":2,\"group\":64}",
                   4, 64, "blk.lin.scales");
    free_case(&k);
}

/* ---- make's argument errors ---- */

/* A make call expected to fail with LP_ERR_ARG, leave *out NULL and say what (need in the message). */
#define EXPECT_ARG(what, call, need)                                                                              \
    do {                                                                                                          \
        d = (void *)&d;                                                                                           \
        const lp_status st_ = (call);                                                                             \
        CHECKF(st_ == LP_ERR_ARG && d == NULL && strstr(lp_last_error(), need), "%s: got %s: %s", what,           \
               lp_status_name(st_), lp_last_error());                                                             \
    } while (0)

static void check_make_errors(void) {
    enum { R = 3, C = 1032 };
    uint8_t *keep = calloc(R * C, 1), *codes = calloc(R * C, 1);
    float *W = calloc(R * C, sizeof(float)), scales[R * 2] = {0.5f, 0.25f, 1.0f, 2.0f, 0.125f, 4.0f};
    int zeros[R * 2] = {1, 2, 3, 4, 5, 6};
    for (int i = 0; i < R * C; i++) keep[i] = i % 4 < 2, W[i] = 0.01f * (float)(i % 13);
    void *d = (void *)1;
    const lp_sparse_values bf = {16, LP_DT_BF16, -1}, f16 = {16, LP_DT_F16, -1};
    EXPECT_ARG("2:4 of 1030 columns", lp_nm_make(R, 1030, 2, 4, keep, &bf, W, NULL, NULL, NULL, &d),
               "2:4 does not divide the width 1030");
    CHECK_OK(lp_nm_make(R, C, 2, 4, keep, &bf, W, NULL, NULL, NULL, &d));
    lp_format_nm.free(d);
    keep[1 * C + 10] = 1; /* row 1, group 2 keeps 3 */
    EXPECT_ARG("a group keeping 3 of 4", lp_nm_make(R, C, 2, 4, keep, &bf, W, NULL, NULL, NULL, &d),
               "row 1, group 2 (columns 8..11) keeps 3 weights, expected 2");
    keep[1 * C + 10] = 0;
    keep[2 * C + 1] = 0;
    EXPECT_ARG("a group keeping 1 of 4", lp_nm_make(R, C, 2, 4, keep, &bf, W, NULL, NULL, NULL, &d),
               "row 2, group 0");
    keep[2 * C + 1] = 1;
    keep[5] = 2;
    EXPECT_ARG("keep value 2", lp_nm_make(R, C, 2, 4, keep, &bf, W, NULL, NULL, NULL, &d), "expected 0 or 1");
    EXPECT_ARG("keep value 2 (bitmap)", lp_bitmap_make(R, C, keep, &bf, W, NULL, NULL, NULL, &d), "expected 0 or 1");
    keep[5] = 1;
    EXPECT_ARG("4:4", lp_nm_make(R, C, 4, 4, keep, &bf, W, NULL, NULL, NULL, &d), "4:4");
    EXPECT_ARG("1:32", lp_nm_make(R, C, 1, 32, keep, &bf, W, NULL, NULL, NULL, &d), "1:32");
    EXPECT_ARG("bits 9", lp_nm_make(R, C, 2, 4, keep, &(lp_sparse_values){9, LP_DT_U8, -1}, NULL, codes, scales,
                                    zeros, &d), "bits = 9");
    EXPECT_ARG("bits 1", lp_bitmap_make(R, C, keep, &(lp_sparse_values){1, LP_DT_U8, -1}, NULL, codes, scales, zeros,
                                        &d), "bits = 1");
    EXPECT_ARG("dtype F32", lp_nm_make(R, C, 2, 4, keep, &(lp_sparse_values){16, LP_DT_F32, -1}, W, NULL, NULL, NULL,
                                       &d), "dtype F32");
    EXPECT_ARG("group 6 for 2:4", lp_nm_make(R, C, 2, 4, keep, &(lp_sparse_values){4, LP_DT_U8, 6}, NULL, codes,
                                             scales, zeros, &d), "multiple of 4");
    EXPECT_ARG("group 48 for bitmap", lp_bitmap_make(R, C, keep, &(lp_sparse_values){4, LP_DT_U8, 48}, NULL, codes,
                                                     scales, zeros, &d), "multiple of 32");
    EXPECT_ARG("no W", lp_nm_make(R, C, 2, 4, keep, &bf, NULL, NULL, NULL, NULL, &d), "needs the values");
    EXPECT_ARG("no zeros", lp_bitmap_make(R, C, keep, &(lp_sparse_values){4, LP_DT_U8, -1}, NULL, codes, scales, NULL,
                                          &d), "no zeros");
    const lp_sparse_values q4 = {4, LP_DT_U8, 1024}; /* 2 groups per row */
    CHECK_OK(lp_nm_make(R, C, 2, 4, keep, &q4, NULL, codes, scales, zeros, &d));
    lp_format_nm.free(d);
    scales[3] = 0.1f; /* not an f16 */
    EXPECT_ARG("scale not in f16", lp_nm_make(R, C, 2, 4, keep, &q4, NULL, codes, scales, zeros, &d),
               "row 1 group 1 is 0.1");
    scales[3] = NAN;
    EXPECT_ARG("NaN scale", lp_bitmap_make(R, C, keep, &q4, NULL, codes, scales, zeros, &d), "row 1 group 1");
    scales[3] = 2.0f;
    zeros[4] = 16;
    EXPECT_ARG("zero 16 at 4 bits", lp_nm_make(R, C, 2, 4, keep, &q4, NULL, codes, scales, zeros, &d),
               "zero of row 2 group 0 is 16");
    zeros[4] = -1;
    EXPECT_ARG("zero -1", lp_bitmap_make(R, C, keep, &q4, NULL, codes, scales, zeros, &d), "is -1");
    zeros[4] = 5;
    codes[2 * C + 1] = 16;
    EXPECT_ARG("code 16 at 4 bits", lp_nm_make(R, C, 2, 4, keep, &q4, NULL, codes, scales, zeros, &d),
               "code at row 2 column 1 is 16");
    codes[2 * C + 1] = 0;
    codes[2 * C + 2] = 200; /* a pruned position: not read */
    CHECK_OK(lp_nm_make(R, C, 2, 4, keep, &q4, NULL, codes, scales, zeros, &d));
    lp_format_nm.free(d);
    W[C + 4] = 1e6f;
    EXPECT_ARG("1e6 in f16", lp_nm_make(R, C, 2, 4, keep, &f16, W, NULL, NULL, NULL, &d),
               "row 1 column 4 is 1000000, which overflows in F16");
    CHECK_OK(lp_nm_make(R, C, 2, 4, keep, &bf, W, NULL, NULL, NULL, &d)); /* bf16 holds it */
    lp_format_nm.free(d);
    W[C + 4] = NAN;
    EXPECT_ARG("NaN weight", lp_bitmap_make(R, C, keep, &bf, W, NULL, NULL, NULL, &d), "not finite");
    W[C + 6] = NAN; /* a pruned position: not read */
    W[C + 4] = 0.0f;
    CHECK_OK(lp_bitmap_make(R, C, keep, &bf, W, NULL, NULL, NULL, &d));
    lp_format_bitmap.free(d);
    EXPECT_ARG("0 rows", lp_bitmap_make(0, C, keep, &bf, W, NULL, NULL, NULL, &d), "shape");
    free(keep), free(codes), free(W);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lp_test_sparse_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(lp_format_find("nm") == &lp_format_nm && lp_format_find("bitmap") == &lp_format_bitmap);
    unsigned long long seed = 20230102;
    double worst_nm = 0, worst_bm = 0;
    check_layout();
    run_cases(&seed, &worst_nm, &worst_bm);
    printf("SIMD vs reference, worst |diff| / sum |w x|: nm %.3g, bitmap %.3g (levels up to %s)\n", worst_nm, worst_bm,
           lp_isa_name(lp_cpu_supports(LP_ISA_AVX512) ? LP_ISA_AVX512
                       : lp_cpu_supports(LP_ISA_AVX2) ? LP_ISA_AVX2
                                                      : LP_ISA_REF));
    check_corrupt_nm(&seed);
    check_corrupt_bitmap(&seed);
    check_make_errors();
    rmdir(g_dir);
    TEST_DONE();
}
