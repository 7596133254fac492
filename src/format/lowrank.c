/*
 * lowrank.c - the lowrank format (lowrank.h): W = B A over two factor parts,
 * its product, dequantization, checkpoint I/O and traits row. Nothing here
 * knows a factor's format: every step goes through the factor's row.
 */
#include "format/lowrank.h"

#include "core/status_impl.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TILE 64       /* rows of B A per sgemm in dequant */
#define META_MAX 512  /* a factor's description (linear.c's META_BYTES) */

/* A format that holds parts of its own: lowrank (a sum is no format row; its name is refused as unknown). */
static bool composite(const lp_format *f) { return f == &lp_format_lowrank; }

lp_status lp_lowrank_make(int64_t rows, int64_t cols, int64_t rank, const lp_format *fa, void *a,
                          const lp_format *fb, void *b, void **out) {
    *out = NULL;
    lp_status st = LP_OK;
    if (!fa || !a || !fb || !b)
        st = lp_fail(LP_ERR_ARG, "lowrank: factor %s is missing (format %s, data %s)", !fa || !a ? "a" : "b",
                     (!fa || !a ? fa : fb) ? "given" : "NULL", (!fa || !a ? a : b) ? "given" : "NULL");
    else if (rows < 1 || cols < 1 || rows > INT_MAX || cols > INT_MAX)
        st = lp_fail(LP_ERR_ARG, "lowrank: shape %lld x %lld, expected 1 .. 2^31 - 1 rows and columns",
                     (long long)rows, (long long)cols);
    else if (rank < 1 || rank > (rows < cols ? rows : cols))
        st = lp_fail(LP_ERR_ARG, "lowrank: rank %lld for a %lld x %lld weight, expected 1 .. %lld", (long long)rank,
                     (long long)rows, (long long)cols, (long long)(rows < cols ? rows : cols));
    else if (composite(fa) || composite(fb))
        st = lp_fail(LP_ERR_ARG, "lowrank: factor %s is in format \"%s\"; a factor must be a plain format "
                     "(dense16, qgroup, dense, ...), not a composite one", composite(fa) ? "a" : "b",
                     composite(fa) ? fa->name : fb->name);
    lp_lowrank *w = st == LP_OK ? calloc(1, sizeof *w) : NULL;
    if (st == LP_OK && !w) st = lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st != LP_OK) {
        if (fa && a) fa->free(a);
        if (fb && b) fb->free(b);
        return st;
    }
    *w = (lp_lowrank){.rows = rows, .cols = cols, .rank = rank,
                      .a = {fa, a, lp_format_gemm(fa, lp_cpu_isa())}, .b = {fb, b, lp_format_gemm(fb, lp_cpu_isa())}};
    *out = w;
    return LP_OK;
}

void lp_lowrank_free(lp_lowrank *w) {
    if (!w) return;
    if (w->a.fmt) w->a.fmt->free(w->a.data);
    if (w->b.fmt) w->b.fmt->free(w->b.data);
    free(w);
}

/* ---- the traits ---- */

static size_t lowrank_nbytes(const void *d) {
    const lp_lowrank *w = d;
    return w->a.fmt->nbytes(w->a.data) + w->b.fmt->nbytes(w->b.data);
}

static int64_t factor_nparams(const lp_part *p, int64_t rows, int64_t cols) {
    return p->fmt->nparams ? p->fmt->nparams(p->data) : rows * cols;
}

static int64_t lowrank_nparams(const void *d) {
    const lp_lowrank *w = d;
    return factor_nparams(&w->a, w->rank, w->cols) + factor_nparams(&w->b, w->rows, w->rank);
}

static double factor_bits(const lp_part *p) {
    return p->fmt->paper_bits ? p->fmt->paper_bits(p->data) : 8.0 * (double)p->fmt->nbytes(p->data);
}

static double lowrank_paper_bits(const void *d) {
    const lp_lowrank *w = d;
    return factor_bits(&w->a) + factor_bits(&w->b);
}

static void lowrank_describe(const void *d, char *buf, size_t n) {
    const lp_lowrank *w = d;
    char da[128], db[128];
    w->a.fmt->describe(w->a.data, da, sizeof da);
    w->b.fmt->describe(w->b.data, db, sizeof db);
    snprintf(buf, n, "lowrank r%lld (%s + %s)", (long long)w->rank, da, db);
}

/* Y (T x rows) = (X A^T) B^T. */
static lp_status lowrank_gemm(const void *d, const float *X, int64_t T, float *Y) {
    const lp_lowrank *w = d;
    if (T < 0) return lp_fail(LP_ERR_ARG, "lowrank gemm: T = %lld tokens, expected >= 0", (long long)T);
    if (T == 0) return LP_OK;
    const size_t bytes = (size_t)(T * w->rank) * sizeof(float);
    float *Z = malloc(bytes); /* (T, rank) */
    if (!Z) return lp_fail(LP_ERR_NOMEM, "lowrank gemm: cannot allocate %zu bytes for X A^T", bytes);
    lp_status st = w->a.gemm(w->a.data, X, T, Z);
    if (st == LP_OK) st = w->b.gemm(w->b.data, Z, T, Y);
    free(Z);
    return st;
}

/* out ((r1 - r0) x cols) = rows [r0, r1) of B A. Tiles are the fixed row
 * blocks [64 i, 64 i + 64) of the whole weight, each computed whole by one
 * single-threaded sgemm (into scratch when [r0, r1) cuts it, then copied):
 * BLAS may round a row differently at another position inside its call, so
 * this keeps every row's bits independent of r0, r1 and the thread count. */
static lp_status lowrank_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    const lp_lowrank *w = d;
    const int64_t R = w->rank, C = w->cols;
    if (r1 <= r0) return LP_OK;
    const int64_t i0 = r0 / TILE, i1 = (r1 - 1) / TILE; /* the tiles touched */
    const int64_t b0 = i0 * TILE, b1 = (i1 + 1) * TILE < w->rows ? (i1 + 1) * TILE : w->rows;
    const int nth = omp_get_max_threads();
    const size_t abytes = (size_t)(R * C) * sizeof(float), bbytes = (size_t)((b1 - b0) * R) * sizeof(float);
    const size_t sbytes = (size_t)nth * TILE * (size_t)C * sizeof(float);
    /* A (R, C), B's rows (b1 - b0, R), and per thread a tile (TILE, C) */
    float *A = malloc(abytes), *B = malloc(bbytes), *S = malloc(sbytes);
    lp_status st = A && B && S ? LP_OK
                               : lp_fail(LP_ERR_NOMEM, "lowrank dequant: cannot allocate %zu bytes of scratch",
                                         abytes + bbytes + sbytes);
    if (st == LP_OK) st = w->a.fmt->dequant(w->a.data, 0, R, A);
    if (st == LP_OK) st = w->b.fmt->dequant(w->b.data, b0, b1, B);
    if (st == LP_OK) {
        /* One sgemm per tile inside our own parallel region, also for one
         * tile: an OpenMP OpenBLAS runs each call on one thread there (as
         * rowgemm.c relies on), while outside it would split the tile. */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
        for (int64_t i = i0; i <= i1; i++) {
            const int64_t t0 = i * TILE, t1 = t0 + TILE < w->rows ? t0 + TILE : w->rows;
            const int64_t lo = t0 > r0 ? t0 : r0, hi = t1 < r1 ? t1 : r1; /* the rows wanted */
            const int whole = lo == t0 && hi == t1;
            float *dst = whole ? out + (t0 - r0) * C : S + (size_t)omp_get_thread_num() * TILE * (size_t)C;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(t1 - t0), (int)C, (int)R, 1.0f,
                        B + (t0 - b0) * R, (int)R, A, (int)C, 0.0f, dst, (int)C);
            if (!whole) memcpy(out + (lo - r0) * C, dst + (lo - t0) * C, (size_t)((hi - lo) * C) * sizeof(float));
        }
    }
    free(A);
    free(B);
    free(S);
    return st;
}

/* A factor's description into buf: its own, or {"format":"dense"} for a
 * plain tensor (what linear.c writes for such a part of a sum). */
static lp_status save_factor(const lp_part *p, lp_st_writer *w, const char *base, const char *key, char *buf,
                             size_t n) {
    char fb[320];
    snprintf(fb, sizeof fb, "%s.%s", base, key);
    LP_TRY(p->fmt->save(p->data, w, fb, buf, n));
    if (!buf[0]) snprintf(buf, n, "{\"format\":\"dense\"}");
    return LP_OK;
}

static lp_status lowrank_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_lowrank *l = d;
    char ma[META_MAX], mb[META_MAX];
    LP_TRY(save_factor(&l->a, w, base, "a", ma, sizeof ma));
    LP_TRY(save_factor(&l->b, w, base, "b", mb, sizeof mb));
    const int k = snprintf(meta, n, "{\"format\":\"lowrank\",\"rank\":%lld,\"a\":%s,\"b\":%s}", (long long)l->rank,
                           ma, mb);
    if (k < 0 || (size_t)k >= n)
        return lp_fail(LP_ERR_ARG, "lowrank: the description of linear \"%s\" needs %d bytes, more than the %zu "
                       "a description may have", base, k, n);
    return LP_OK;
}

/* Factor `key` ("a" or "b", shape rows x cols) of linear base from desc. */
static lp_status load_factor(const lp_fmt_src *in, const char *base, const lp_json *desc, const char *key,
                             int64_t rows, int64_t cols, lp_part *out) {
    const lp_json *d = lp_json_get(desc, key);
    if (!d || d->type != LP_JSON_OBJECT)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": lowrank factor \"%s\" is %s; expected a description "
                       "{\"format\": ...}", in->name, base, key, d ? "not an object" : "missing");
    const char *name = lp_json_str(lp_json_get(d, "format"), NULL);
    const lp_format *f = lp_format_find(name);
    if (!f || composite(f))
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": lowrank factor \"%s\" has format %s%s%s; expected a "
                       "plain format this version of llmpress knows (dense16, qgroup, dense, ...)%s", in->name, base,
                       key, name ? "\"" : "", name ? name : "(none)", name ? "\"" : "",
                       f || (name && !strcmp(name, "sum")) ? ", not a composite one" : "");
    char fb[320];
    snprintf(fb, sizeof fb, "%s.%s", base, key);
    void *data = NULL;
    lp_status st = f->load(in, fb, d, rows, cols, &data);
    if (st != LP_OK)
        return lp_fail_ctx(st, "%s: linear \"%s\": lowrank factor \"%s\" (%lld x %lld, %s)", in->name, base, key,
                           (long long)rows, (long long)cols, f->name);
    *out = (lp_part){f, data, lp_format_gemm(f, lp_cpu_isa())};
    return LP_OK;
}

static lp_status lowrank_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows,
                              int64_t cols, void **data) {
    if (rows < 1 || cols < 1)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": lowrank of shape %lld x %lld, expected at least 1 x 1",
                       in->name, base, (long long)rows, (long long)cols);
    int64_t rank;
    LP_TRY(lp_fmt_int(in, base, desc, "rank", 1, rows < cols ? rows : cols, &rank));
    lp_part a = {0}, b = {0};
    lp_status st = load_factor(in, base, desc, "a", rank, cols, &a);
    if (st == LP_OK) st = load_factor(in, base, desc, "b", rows, rank, &b);
    if (st != LP_OK) {
        if (a.fmt) a.fmt->free(a.data);
        return st;
    }
    return lp_lowrank_make(rows, cols, rank, a.fmt, a.data, b.fmt, b.data, data);
}

static void lowrank_free(void *d) { lp_lowrank_free(d); }

const lp_format lp_format_lowrank = {
    .name = "lowrank",
    .nbytes = lowrank_nbytes,
    .describe = lowrank_describe,
    .dequant = lowrank_dequant,
    .gemm = {[LP_ISA_REF] = lowrank_gemm}, /* the factors' products are chosen per level */
    .save = lowrank_save,
    .load = lowrank_load,
    .free = lowrank_free,
    .paper_bits = lowrank_paper_bits,
    .nparams = lowrank_nparams,
};
