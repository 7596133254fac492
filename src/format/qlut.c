/*
 * qlut.c - the lookup-table-plus-outliers format (layout in qlut.h):
 * allocation, checked views of file buffers, dequantization, and products.
 *
 * Design: products run on the shared row-kernel driver (rowgemm.h). Few
 * tokens: rows in fixed tiles, one OpenMP loop over tiles, the dense kernel
 * reads each packed row once for up to LP_QLUT_MAX_T tokens, then the tile's
 * outliers are added in CSR order. Many tokens: tiles of rows are
 * dequantized (outliers included) and multiplied with cblas_sgemm. Each
 * output is computed by one thread in a fixed order, so the thread count
 * never changes a result.
 */
#include "format/qlut.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "format/qlut_kernels.h"
#include "format/qgroup.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { BLAS_MIN_TOKENS = 16 }; /* from this many tokens on: dequantized tiles + sgemm */

static int64_t nblocks(int64_t cols) { return (cols + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK; }

size_t lp_qlut_q_bytes(int64_t rows, int64_t cols, int bits) {
    return (size_t)rows * (size_t)nblocks(cols) * (size_t)bits * 4u;
}

static lp_status check_shape(lp_status st, int64_t rows, int64_t cols, int bits, int64_t nnz) {
    if (bits < 1 || bits > LP_QLUT_MAX_BITS) return lp_fail(st, "qlut: bits = %d, expected 1..4", bits);
    if (rows < 1 || cols < 1 || rows > INT32_MAX || cols > INT32_MAX)
        return lp_fail(st, "qlut: shape %lld x %lld, expected 1 .. 2^31 - 1 each", (long long)rows, (long long)cols);
    if (nnz < 0 || nnz > INT32_MAX || nnz > rows * cols)
        return lp_fail(st, "qlut: %lld outliers for a %lld x %lld weight", (long long)nnz, (long long)rows,
                       (long long)cols);
    return LP_OK;
}

static void fill(lp_qlut *w, int64_t rows, int64_t cols, int bits, int64_t nnz) {
    memset(w, 0, sizeof *w);
    w->bits = bits;
    w->rows = rows;
    w->cols = cols;
    w->blocks = nblocks(cols);
    w->nnz = nnz;
}

lp_status lp_qlut_init(lp_qlut *w, int64_t rows, int64_t cols, int bits, int64_t nnz) {
    memset(w, 0, sizeof *w);
    LP_TRY(check_shape(LP_ERR_ARG, rows, cols, bits, nnz));
    fill(w, rows, cols, bits, nnz);
    w->owns = 1;
    w->q = calloc(1, lp_qlut_q_bytes(rows, cols, bits));
    w->lut = calloc((size_t)rows << bits, sizeof(uint16_t));
    w->row_ptr = calloc((size_t)rows + 1, sizeof(int32_t));
    w->col_idx = calloc(nnz ? (size_t)nnz : 1, sizeof(int32_t));
    w->vals = calloc(nnz ? (size_t)nnz : 1, sizeof(uint16_t));
    if (!w->q || !w->lut || !w->row_ptr || !w->col_idx || !w->vals) {
        lp_qlut_free(w);
        return lp_fail(LP_ERR_NOMEM, "qlut: out of memory for a %lld x %lld weight", (long long)rows, (long long)cols);
    }
    return LP_OK;
}

static lp_status want(const char *what, const void *p, size_t got, size_t need, size_t align) {
    if (got != need)
        return lp_fail(LP_ERR_FORMAT, "qlut: %s has %zu bytes, expected %zu", what, got, need);
    if (need && (!p || (uintptr_t)p % align))
        return lp_fail(LP_ERR_FORMAT, "qlut: %s is not aligned to %zu bytes", what, align);
    return LP_OK;
}

lp_status lp_qlut_view(lp_qlut *w, int64_t rows, int64_t cols, int bits, int64_t nnz, const void *q, size_t q_bytes,
                       const void *lut, size_t lut_bytes, const void *row_ptr, size_t row_ptr_bytes,
                       const void *col_idx, size_t col_idx_bytes, const void *vals, size_t vals_bytes) {
    memset(w, 0, sizeof *w);
    LP_TRY(check_shape(LP_ERR_FORMAT, rows, cols, bits, nnz));
    LP_TRY(want("q", q, q_bytes, lp_qlut_q_bytes(rows, cols, bits), 4));
    LP_TRY(want("lut", lut, lut_bytes, ((size_t)rows << bits) * 2, 2));
    LP_TRY(want("row_ptr", row_ptr, row_ptr_bytes, ((size_t)rows + 1) * 4, 4));
    LP_TRY(want("col_idx", col_idx, col_idx_bytes, (size_t)nnz * 4, 4));
    LP_TRY(want("vals", vals, vals_bytes, (size_t)nnz * 2, 2));
    const uint16_t *L = lut, *V = vals;
    const int32_t *rp = row_ptr, *ci = col_idx;
    for (int64_t i = 0; i < rows << bits; i++)
        if (!isfinite(lp_f16_to_f32(L[i])))
            return lp_fail(LP_ERR_FORMAT, "qlut: table entry %lld of row %lld is not finite", (long long)(i & ((1 << bits) - 1)),
                           (long long)(i >> bits));
    if (rp[0] != 0 || rp[rows] != nnz)
        return lp_fail(LP_ERR_FORMAT, "qlut: row_ptr runs from %d to %d, expected 0 to %lld", rp[0], rp[rows],
                       (long long)nnz);
    /* the whole of row_ptr first: non-decreasing and inside [0, nnz], so no
     * row's range reads past col_idx or vals */
    for (int64_t r = 0; r < rows; r++)
        if (rp[r + 1] < rp[r] || rp[r + 1] > nnz)
            return lp_fail(LP_ERR_FORMAT, "qlut: row_ptr at row %lld goes from %d to %d; expected non-decreasing "
                           "offsets in 0..%lld", (long long)r, rp[r], rp[r + 1], (long long)nnz);
    for (int64_t r = 0; r < rows; r++) {
        for (int32_t k = rp[r]; k < rp[r + 1]; k++) {
            if (ci[k] < 0 || ci[k] >= cols || (k > rp[r] && ci[k] <= ci[k - 1]))
                return lp_fail(LP_ERR_FORMAT, "qlut: outlier %d of row %lld has column %d; expected increasing "
                               "columns in 0..%lld", k, (long long)r, ci[k], (long long)cols - 1);
            if (!isfinite(lp_f16_to_f32(V[k])))
                return lp_fail(LP_ERR_FORMAT, "qlut: outlier %d (row %lld) is not finite", k, (long long)r);
        }
    }
    fill(w, rows, cols, bits, nnz);
    w->q = (uint32_t *)q;
    w->lut = (uint16_t *)lut;
    w->row_ptr = (int32_t *)row_ptr;
    w->col_idx = (int32_t *)col_idx;
    w->vals = (uint16_t *)vals;
    return LP_OK;
}

void lp_qlut_free(lp_qlut *w) {
    if (!w) return;
    if (w->owns) {
        free(w->q);
        free(w->lut);
        free(w->row_ptr);
        free(w->col_idx);
        free(w->vals);
    }
    memset(w, 0, sizeof *w);
}

size_t lp_qlut_nbytes(const lp_qlut *w) {
    return lp_qlut_q_bytes(w->rows, w->cols, w->bits) + ((size_t)w->rows << w->bits) * 2 +
           ((size_t)w->rows + 1) * 4 + (size_t)w->nnz * 6;
}

/* out += the outliers of rows [r0, r1) (out holds those rows only). */
static void add_outliers(const void *wv, int64_t r0, int64_t r1, float *out) {
    const lp_qlut *w = wv;
    for (int64_t r = r0; r < r1; r++)
        for (int32_t k = w->row_ptr[r]; k < w->row_ptr[r + 1]; k++)
            out[(r - r0) * w->cols + w->col_idx[k]] += lp_f16_to_f32(w->vals[k]);
}

/* Y's rows [r0, r1) += the outliers' product, in CSR order per row. */
static void outlier_product(const void *wv, const float *X, int64_t T, float *Y, int64_t r0, int64_t r1) {
    const lp_qlut *w = wv;
    for (int64_t r = r0; r < r1; r++)
        for (int32_t k = w->row_ptr[r]; k < w->row_ptr[r + 1]; k++) {
            const float v = lp_f16_to_f32(w->vals[k]);
            for (int64_t t = 0; t < T; t++) Y[t * w->rows + r] += v * X[t * w->cols + w->col_idx[k]];
        }
}

/* The dense part's kernels of each level (AVX2 has no dequantization of its own). */
static const struct {
    lp_qlut_rows_fn rows;
    lp_qlut_dequant_fn dequant;
} BY_ISA[LP_ISA_N] = {
    {lp_qlut_rows_ref, lp_qlut_dequant_ref},
    {lp_qlut_rows_avx2, lp_qlut_dequant_ref},
    {lp_qlut_rows_avx512, lp_qlut_dequant_avx512},
};

/* The row-kernel driver for w at level isa: the dense part's kernels plus
 * the outliers. */
static lp_rowgemm driver(const lp_qlut *w, lp_isa isa) {
    return (lp_rowgemm){.name = "qlut", .w = w, .rows = w->rows, .cols = w->cols, .ldx = w->blocks * LP_QGROUP_BLOCK,
                        .max_t = LP_QLUT_MAX_T, .rows_fn = BY_ISA[isa].rows, .dequant = BY_ISA[isa].dequant,
                        .extra = outlier_product, .extra_dequant = add_outliers};
}

void lp_qlut_dequant(const lp_qlut *w, int64_t r0, int64_t r1, float *out) {
    const lp_rowgemm g = driver(w, lp_cpu_isa());
    lp_rowgemm_dequant(&g, r0, r1, out);
}

static lp_status gemm_isa(const lp_qlut *w, const float *X, int64_t T, float *Y, lp_isa isa, int64_t blas_min_tokens) {
    const lp_rowgemm g = driver(w, isa);
    return lp_rowgemm_run(&g, X, T, Y, blas_min_tokens > 0 ? blas_min_tokens : BLAS_MIN_TOKENS);
}

lp_status lp_qlut_gemm_ex(const lp_qlut *w, const float *X, int64_t T, float *Y, const char *kernel,
                          int64_t blas_min_tokens) {
    lp_isa isa = lp_cpu_isa();
    if (kernel) {
        lp_status st = lp_isa_from_name(kernel, &isa);
        if (st != LP_OK) return lp_fail_ctx(st, "qlut");
    }
    return gemm_isa(w, X, T, Y, isa, blas_min_tokens);
}

/* ---- checkpoint I/O and the traits row ---- */

static size_t qlut_nbytes(const void *d) { return lp_qlut_nbytes(d); }

static void qlut_describe(const void *d, char *buf, size_t n) {
    const lp_qlut *t = d;
    snprintf(buf, n, "qlut w%d + %.2f%% sparse outliers", t->bits, 100.0 * (double)t->nnz / (double)(t->rows * t->cols));
}

static lp_status qlut_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    lp_qlut_dequant(d, r0, r1, out);
    return LP_OK;
}

static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) {
    return gemm_isa(d, X, T, Y, LP_ISA_REF, 0);
}
static lp_status gemm_avx2(const void *d, const float *X, int64_t T, float *Y) {
    return gemm_isa(d, X, T, Y, LP_ISA_AVX2, 0);
}
static lp_status gemm_avx512(const void *d, const float *X, int64_t T, float *Y) {
    return gemm_isa(d, X, T, Y, LP_ISA_AVX512, 0);
}

static lp_status qlut_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_qlut *t = d;
    LP_TRY(lp_fmt_add(w, base, ".qweight", LP_DT_U32, t->rows, t->blocks * t->bits, t->q));
    LP_TRY(lp_fmt_add(w, base, ".lut", LP_DT_F16, t->rows, (int64_t)1 << t->bits, t->lut));
    LP_TRY(lp_fmt_add(w, base, ".row_ptr", LP_DT_I32, 1, t->rows + 1, t->row_ptr));
    LP_TRY(lp_fmt_add(w, base, ".col_idx", LP_DT_I32, 1, t->nnz, t->col_idx));
    LP_TRY(lp_fmt_add(w, base, ".vals", LP_DT_F16, 1, t->nnz, t->vals));
    snprintf(meta, n, "{\"format\":\"qlut\",\"bits\":%d,\"nnz\":%lld}", t->bits, (long long)t->nnz);
    return LP_OK;
}

static lp_status qlut_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                           void **data) {
    int64_t bits, nnz;
    LP_TRY(lp_fmt_int(in, base, desc, "bits", 1, LP_QLUT_MAX_BITS, &bits));
    LP_TRY(lp_fmt_int(in, base, desc, "nnz", 0, rows * cols < INT32_MAX ? rows * cols : INT32_MAX, &nnz));
    const lp_tensor_view *q, *lut, *rp, *ci, *v;
    LP_TRY(lp_fmt_tensor(in, base, ".qweight", LP_DT_U32, rows, nblocks(cols) * bits, &q));
    LP_TRY(lp_fmt_tensor(in, base, ".lut", LP_DT_F16, rows, (int64_t)1 << bits, &lut));
    LP_TRY(lp_fmt_tensor(in, base, ".row_ptr", LP_DT_I32, 1, rows + 1, &rp));
    LP_TRY(lp_fmt_tensor(in, base, ".col_idx", LP_DT_I32, 1, nnz, &ci));
    LP_TRY(lp_fmt_tensor(in, base, ".vals", LP_DT_F16, 1, nnz, &v));
    lp_qlut *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_qlut_view(w, rows, cols, (int)bits, nnz, q->data, q->nbytes, lut->data, lut->nbytes, rp->data,
                                rp->nbytes, ci->data, ci->nbytes, v->data, v->nbytes);
    if (st != LP_OK) {
        free(w);
        return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    }
    *data = w;
    return LP_OK;
}

static void qlut_free(void *d) {
    lp_qlut_free(d);
    free(d);
}

const lp_format lp_format_qlut = {
    .name = "qlut",
    .nbytes = qlut_nbytes,
    .describe = qlut_describe,
    .dequant = qlut_dequant,
    .gemm = {gemm_ref, gemm_avx2, gemm_avx512},
    .save = qlut_save,
    .load = qlut_load,
    .free = qlut_free,
};
