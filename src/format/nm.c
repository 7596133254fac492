/*
 * nm.c - the N:M format (layout and kernels in nm.h): making it from a
 * pruning method's arrays, checked loading of checkpoint tensors, the
 * threaded drivers of dequantization and products, and the traits row.
 *
 * Design: products and dequantization run on the shared row-kernel driver
 * (rowgemm.h), up to LP_NM_MAX_T tokens per pass over a packed row.
 * Where the paths cross (BY_ISA below): bench/bench_sparse.c's crossover
 * table, 4096 x 4096, 1 thread, best of 5, AMD EPYC (Zen 4): the packed
 * AVX-512 kernel costs ~430 us per token (2:4 bf16; ~390 with 4-bit codes)
 * from T = 2 on, dequantized 64-row tiles + sgemm 520, 480, 420 at T = 24,
 * 32, 48: they meet at ~48. The AVX2 kernel (~680 us per token) meets
 * sgemm (690 at T = 16) at 16. The scalar reference loses to dequantize +
 * sgemm from 2 tokens on (0.6 G weights/s per token).
 */
#include "format/nm.h"

#include "core/status_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    lp_rows_fn rows;
    lp_rows_dequant_fn dequant;
    int64_t blas_min_tokens; /* from this many tokens on: dequantized tiles + sgemm */
} BY_ISA[LP_ISA_N] = {
    {lp_nm_rows_ref, lp_nm_dequant_ref, 2},
    {lp_nm_rows_avx2, lp_nm_dequant_avx2, 16},
    {lp_nm_rows_avx512, lp_nm_dequant_avx512, 48},
};

static int index_bits(int m) {
    int b = 0;
    while ((1 << b) < m) b++;
    return b;
}

/* Check the shape and n:m (st: LP_ERR_ARG for a caller, LP_ERR_FORMAT for a file). */
static lp_status check_shape(lp_status st, int64_t rows, int64_t cols, int n, int m) {
    if (rows < 1 || cols < 1 || rows > INT_MAX || cols > INT_MAX)
        return lp_fail(st, "nm: shape %lld x %lld, expected 1 .. 2^31 - 1 rows and columns", (long long)rows,
                       (long long)cols);
    if (m < 2 || m > 16 || n < 1 || n >= m)
        return lp_fail(st, "nm: %d:%d, expected n:m with 2 <= m <= 16 and 1 <= n < m", n, m);
    if (cols % m)
        return lp_fail(st, "nm: %d:%d does not divide the width %lld (the columns must be a multiple of m = %d)", n, m,
                       (long long)cols, m);
    return LP_OK;
}

/* The derived members, and whether a SIMD fast path applies (nm.h). */
static void shape(lp_nm *w, int64_t rows, int64_t cols, int n, int m) {
    memset(w, 0, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->n = n;
    w->m = m;
    w->ib = index_bits(m);
    w->kpr = cols / m * n;
    w->ibytes = (w->kpr * w->ib + 7) / 8;
}

static void set_fast(lp_nm *w) {
    const lp_sparse_store *v = &w->v;
    const int half = 2 * w->n == w->m && 32 % w->m == 0;
    w->fast = half && v->kind != LP_SV_OTHER && (v->bits == 16 || v->group % 32 == 0 || v->group >= w->cols) &&
              (v->kind != LP_SV_U4 || w->kpr % 2 == 0);
}

void lp_nm_free(lp_nm *w) {
    if (!w) return;
    if (w->owns) {
        free(w->idx);
        lp_sparse_free(&w->v);
    }
    memset(w, 0, sizeof *w);
}

size_t lp_nm_nbytes(const lp_nm *w) { return (size_t)(w->rows * w->ibytes) + lp_sparse_nbytes(&w->v, w->rows); }

lp_status lp_nm_make(int64_t rows, int64_t cols, int n, int m, const uint8_t *keep, const lp_sparse_values *v,
                     const float *W, const uint8_t *codes, const float *scales, const int *zeros, void **out) {
    *out = NULL;
    LP_TRY(check_shape(LP_ERR_ARG, rows, cols, n, m));
    lp_sparse_values rv;
    LP_TRY(lp_sparse_resolve(v, cols, m, "nm", LP_ERR_ARG, &rv));
    if (!keep) return lp_fail(LP_ERR_ARG, "nm: no keep mask given");
    const int64_t nb = cols / m;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t b = 0; b < nb; b++) {
            int k = 0;
            for (int j = 0; j < m; j++) {
                const uint8_t e = keep[r * cols + b * m + j];
                if (e > 1)
                    return lp_fail(LP_ERR_ARG, "nm: keep[%lld][%lld] = %u, expected 0 or 1", (long long)r,
                                   (long long)(b * m + j), e);
                k += e;
            }
            if (k != n)
                return lp_fail(LP_ERR_ARG, "nm: row %lld, group %lld (columns %lld..%lld) keeps %d weights, expected "
                               "%d (%d:%d)", (long long)r, (long long)b, (long long)(b * m), (long long)(b * m + m - 1),
                               k, n, n, m);
        }
    lp_nm *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "nm: out of memory");
    shape(w, rows, cols, n, m);
    w->owns = 1;
    w->idx = calloc((size_t)(rows * w->ibytes), 1);
    lp_status st = w->idx ? lp_sparse_alloc(&w->v, &rv, rows, cols, rows * w->kpr, "nm")
                          : lp_fail(LP_ERR_NOMEM, "nm: out of memory for the indices of a %lld x %lld weight",
                                    (long long)rows, (long long)cols);
    if (st == LP_OK) st = lp_sparse_fill(&w->v, rows, cols, keep, W, codes, scales, zeros, "nm");
    if (st != LP_OK) {
        lp_nm_free(w);
        free(w);
        return st;
    }
    for (int64_t r = 0; r < rows; r++) { /* LSB-first fields of ib bits, as lp_sparse_code reads them */
        uint8_t *row = w->idx + r * w->ibytes;
        int64_t j = 0;
        for (int64_t c = 0; c < cols; c++) {
            if (!keep[r * cols + c]) continue;
            const unsigned f = (unsigned)(c % m);
            const int64_t p = j * w->ib;
            row[p >> 3] |= (uint8_t)(f << (p & 7));
            if ((p & 7) + w->ib > 8) row[(p >> 3) + 1] |= (uint8_t)(f >> (8 - (p & 7)));
            j++;
        }
    }
    set_fast(w);
    *out = w;
    return LP_OK;
}

/* The row-kernel driver for w at level isa. */
static lp_rowgemm driver(const lp_nm *w, lp_isa isa) {
    return (lp_rowgemm){.name = "nm", .w = w, .rows = w->rows, .cols = w->cols, .ldx = (w->cols + 31) / 32 * 32,
                        .max_t = LP_NM_MAX_T, .rows_fn = BY_ISA[isa].rows, .dequant = BY_ISA[isa].dequant};
}

void lp_nm_dequant(const lp_nm *w, int64_t r0, int64_t r1, float *out) {
    const lp_rowgemm g = driver(w, lp_cpu_isa());
    lp_rowgemm_dequant(&g, r0, r1, out);
}

lp_status lp_nm_gemm_ex(const lp_nm *w, const float *X, int64_t T, float *Y, lp_isa isa, int64_t blas_min_tokens) {
    if ((int)isa < 0 || isa >= LP_ISA_N || !lp_cpu_supports(isa))
        return lp_fail(LP_ERR_UNSUPPORTED, "nm gemm: kernel level '%s' is not supported by this CPU",
                       lp_isa_name(isa));
    const lp_rowgemm g = driver(w, isa);
    return lp_rowgemm_run(&g, X, T, Y, blas_min_tokens > 0 ? blas_min_tokens : BY_ISA[isa].blas_min_tokens);
}

/* ---- checkpoint I/O and the traits row ---- */

static size_t nm_nbytes(const void *d) { return lp_nm_nbytes(d); }

static int64_t nm_nparams(const void *d) { return ((const lp_nm *)d)->v.count; }

static void nm_describe(const void *d, char *buf, size_t n) {
    const lp_nm *w = d;
    char v[48];
    lp_sparse_describe(&w->v, w->cols, v, sizeof v);
    snprintf(buf, n, "nm %d:%d %s", w->n, w->m, v);
}

static lp_status nm_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    lp_nm_dequant(d, r0, r1, out);
    return LP_OK;
}

static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) {
    return lp_nm_gemm_ex(d, X, T, Y, LP_ISA_REF, 0);
}
static lp_status gemm_avx2(const void *d, const float *X, int64_t T, float *Y) {
    return lp_nm_gemm_ex(d, X, T, Y, LP_ISA_AVX2, 0);
}
static lp_status gemm_avx512(const void *d, const float *X, int64_t T, float *Y) {
    return lp_nm_gemm_ex(d, X, T, Y, LP_ISA_AVX512, 0);
}

static lp_status nm_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_nm *t = d;
    LP_TRY(lp_fmt_add(w, base, ".indices", LP_DT_U8, t->rows, t->ibytes, t->idx));
    LP_TRY(lp_sparse_save(&t->v, w, base, t->rows));
    char v[96];
    lp_sparse_meta(&t->v, v, sizeof v);
    snprintf(meta, n, "{\"format\":\"nm\",\"n\":%d,\"m\":%d,%s}", t->n, t->m, v);
    return LP_OK;
}

/* Every index field of the file: < m, strictly increasing within a block,
 * and the bits past a row's last field 0. */
static lp_status check_indices(const lp_fmt_src *in, const char *base, const lp_nm *w) {
    const int64_t nb = w->cols / w->m, used = w->kpr * w->ib;
    for (int64_t r = 0; r < w->rows; r++) {
        for (int64_t b = 0; b < nb; b++) {
            int prev = -1;
            for (int k = 0; k < w->n; k++) {
                const int f = (int)lp_nm_index(w, r, b * w->n + k);
                if (f >= w->m)
                    return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.indices\": row %lld, group %lld (columns "
                                   "%lld..%lld): index %d of %d is %d, expected < m = %d", in->name, base,
                                   (long long)r, (long long)b, (long long)(b * w->m), (long long)(b * w->m + w->m - 1),
                                   k, w->n, f, w->m);
                if (f <= prev)
                    return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.indices\": row %lld, group %lld (columns "
                                   "%lld..%lld): index %d of %d is %d after %d, expected strictly increasing "
                                   "indices", in->name, base, (long long)r, (long long)b, (long long)(b * w->m),
                                   (long long)(b * w->m + w->m - 1), k, w->n, f, prev);
                prev = f;
            }
        }
        const uint8_t last = w->idx[r * w->ibytes + w->ibytes - 1];
        if (used % 8 && (last >> (used % 8)))
            return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.indices\": row %lld's last byte is 0x%02x, bits %d..7 "
                           "past its last index set; expected 0", in->name, base, (long long)r, last,
                           (int)(used % 8));
    }
    return LP_OK;
}

static lp_status nm_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                         void **data) {
    int64_t n, m;
    LP_TRY(lp_fmt_int(in, base, desc, "m", 2, 16, &m));
    LP_TRY(lp_fmt_int(in, base, desc, "n", 1, m - 1, &n));
    lp_status st = check_shape(LP_ERR_FORMAT, rows, cols, (int)n, (int)m);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    lp_sparse_values rv;
    LP_TRY(lp_sparse_load_settings(in, base, desc, cols, (int)m, "nm", &rv));
    lp_nm *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "nm: out of memory");
    shape(w, rows, cols, (int)n, (int)m);
    const lp_tensor_view *t;
    st = lp_fmt_tensor(in, base, ".indices", LP_DT_U8, rows, w->ibytes, &t);
    if (st == LP_OK) {
        w->idx = (uint8_t *)t->data; /* views never write: the const is cast away only to share the struct */
        st = check_indices(in, base, w);
    }
    if (st == LP_OK) st = lp_sparse_load(in, base, &rv, rows, cols, rows * w->kpr, &w->v);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    set_fast(w);
    *data = w;
    return LP_OK;
}

static void nm_free(void *d) {
    lp_nm_free(d);
    free(d);
}

const lp_format lp_format_nm = {
    .name = "nm",
    .nbytes = nm_nbytes,
    .describe = nm_describe,
    .dequant = nm_dequant,
    .gemm = {gemm_ref, gemm_avx2, gemm_avx512},
    .save = nm_save,
    .load = nm_load,
    .free = nm_free,
    .paper_bits = NULL,
    .nparams = nm_nparams,
};
