/*
 * dense16.c - the dense16 format (layout and kernels in dense16.h): rounding
 * from f32, checked views of file buffers, the threaded drivers of
 * dequantization and products, checkpoint I/O and the traits row.
 *
 * Design: products and dequantization run on the shared row-kernel driver
 * (rowgemm.h), as sign's and ternary's do; up to LP_DENSE16_MAX_T tokens per
 * pass over a row, x zero-padded to a multiple of 32 columns.
 * Where the paths cross (BY_ISA below): bench_lowrank's crossover, 4096 x
 * 4096 bf16, 1 thread, AMD EPYC (Zen 5), us per token, row kernels / converted
 * tiles + sgemm: AVX-512 970 / 7143 at T = 1, 569 / 653 at 16, 527 / 534 at
 * 24, 512 / 499 at 32, 488 / 411 at 64 (the row kernels ~33 G MAC/s once
 * several passes share a tile's reads, sgemm ~41); AVX2 527 / 649 at 16,
 * 490 / 540 at 24, 483 / 499 at 32. Both meet sgemm near T = 32. The
 * reference keeps the default of 16.
 */
#include "format/dense16.h"

#include "core/finite.h"
#include "core/half.h"
#include "core/status_impl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    lp_rows_fn rows;
    lp_rows_dequant_fn dequant;
    int64_t blas_min_tokens; /* from this many tokens on: converted tiles + sgemm */
} BY_ISA[LP_ISA_N] = {
    {lp_dense16_rows_ref, lp_dense16_dequant_ref, 16},
    {lp_dense16_rows_avx2, lp_dense16_dequant_avx2, 32},
    {lp_dense16_rows_avx512, lp_dense16_dequant_avx512, 32},
};

static const char *dtype_word(lp_dtype dt) { return dt == LP_DT_BF16 ? "bf16" : "f16"; }

/* Shape and dtype; st is LP_ERR_ARG for a caller's arguments, LP_ERR_FORMAT for a file's. */
static lp_status check_shape(lp_status st, int64_t rows, int64_t cols, lp_dtype dtype) {
    if (rows < 1 || cols < 1 || rows > INT_MAX || cols > INT_MAX)
        return lp_fail(st, "dense16: shape %lld x %lld, expected 1 .. 2^31 - 1 rows and columns", (long long)rows,
                       (long long)cols);
    if (dtype != LP_DT_BF16 && dtype != LP_DT_F16)
        return lp_fail(st, "dense16: dtype %s, expected BF16 or F16", lp_dtype_name(dtype));
    return LP_OK;
}

static lp_dense16 *new_dense16(int64_t rows, int64_t cols, lp_dtype dtype) {
    lp_dense16 *w = calloc(1, sizeof *w);
    if (w) *w = (lp_dense16){.rows = rows, .cols = cols, .dtype = dtype};
    return w;
}

lp_status lp_dense16_from_f32(int64_t rows, int64_t cols, const float *W, lp_dtype dtype, void **out) {
    *out = NULL;
    LP_TRY(check_shape(LP_ERR_ARG, rows, cols, dtype));
    lp_dense16 *w = new_dense16(rows, cols, dtype);
    uint16_t *v = malloc((size_t)(rows * cols) * sizeof(uint16_t));
    if (!w || !v) {
        free(w);
        free(v);
        return lp_fail(LP_ERR_NOMEM, "dense16: out of memory for a %lld x %lld weight", (long long)rows,
                       (long long)cols);
    }
    const int bf = dtype == LP_DT_BF16;
    const int64_t n = rows * cols;
    int64_t bad = n; /* the first value that is not finite or does not fit */
#pragma omp parallel for schedule(static) reduction(min : bad) if (n >= (1 << 20))
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = bf ? lp_f32_to_bf16(W[i]) : lp_f32_to_f16(W[i]);
        v[i] = h;
        /* all exponent bits set: Inf or NaN, from a non-finite input or an overflow */
        if ((h & (bf ? 0x7f80u : 0x7c00u)) == (bf ? 0x7f80u : 0x7c00u) && i < bad) bad = i;
    }
    if (bad < n) {
        const float x = W[bad];
        const int finite = isfinite(x);
        free(v);
        free(w);
        return lp_fail(LP_ERR_NUMERIC, "dense16: W[%lld][%lld] = %.9g %s; expected a finite value%s",
                       (long long)(bad / cols), (long long)(bad % cols), (double)x,
                       !finite ? "is not finite" : bf ? "overflows bf16" : "overflows f16",
                       finite && !bf ? " with |w| < 65520 (the f16 range; hint: use bf16)" : "");
    }
    w->w = w->owned = v;
    *out = w;
    return LP_OK;
}

lp_status lp_dense16_view(int64_t rows, int64_t cols, lp_dtype dtype, const void *data, size_t nbytes, void **out) {
    *out = NULL;
    LP_TRY(check_shape(LP_ERR_FORMAT, rows, cols, dtype));
    const size_t need = (size_t)(rows * cols) * sizeof(uint16_t);
    if (!data || nbytes != need || (uintptr_t)data % 2)
        return lp_fail(LP_ERR_FORMAT, "dense16: %zu bytes at %p, expected %zu (%lld x %lld values), 2-byte aligned",
                       nbytes, data, need, (long long)rows, (long long)cols);
    const int64_t i = lp_finite_find(dtype == LP_DT_BF16 ? LP_FP_BF16 : LP_FP_F16, data, rows * cols);
    if (i >= 0) {
        const uint16_t h = ((const uint16_t *)data)[i];
        const int nan = dtype == LP_DT_BF16 ? (h & 0x7fu) != 0 : (h & 0x3ffu) != 0;
        return lp_fail(LP_ERR_FORMAT, "dense16: value [row, col] [%lld, %lld] is %s (%s 0x%04x), expected a finite "
                       "number", (long long)(i / cols), (long long)(i % cols), nan ? "NaN" : "infinite",
                       dtype_word(dtype), h);
    }
    lp_dense16 *w = new_dense16(rows, cols, dtype);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    w->w = data;
    *out = w;
    return LP_OK;
}

void lp_dense16_free(lp_dense16 *w) {
    if (!w) return;
    free(w->owned);
    free(w);
}

size_t lp_dense16_nbytes(const lp_dense16 *w) { return (size_t)(w->rows * w->cols) * sizeof(uint16_t); }

/* The row-kernel driver for w at level isa (x padded to whole blocks of 32). */
static lp_rowgemm driver(const lp_dense16 *w, lp_isa isa) {
    return (lp_rowgemm){.name = "dense16", .w = w, .rows = w->rows, .cols = w->cols, .ldx = (w->cols + 31) / 32 * 32,
                        .max_t = LP_DENSE16_MAX_T, .rows_fn = BY_ISA[isa].rows, .dequant = BY_ISA[isa].dequant};
}

void lp_dense16_dequant(const lp_dense16 *w, int64_t r0, int64_t r1, float *out) {
    const lp_rowgemm g = driver(w, lp_cpu_isa());
    lp_rowgemm_dequant(&g, r0, r1, out);
}

lp_status lp_dense16_gemm_ex(const lp_dense16 *w, const float *X, int64_t T, float *Y, lp_isa isa,
                             int64_t blas_min_tokens) {
    if ((int)isa < 0 || isa >= LP_ISA_N || !lp_cpu_supports(isa))
        return lp_fail(LP_ERR_UNSUPPORTED, "dense16 gemm: kernel level '%s' is not supported by this CPU",
                       lp_isa_name(isa));
    const lp_rowgemm g = driver(w, isa);
    return lp_rowgemm_run(&g, X, T, Y, blas_min_tokens > 0 ? blas_min_tokens : BY_ISA[isa].blas_min_tokens);
}

/* ---- checkpoint I/O and the traits row ---- */

static size_t dense16_nbytes(const void *d) { return lp_dense16_nbytes(d); }

static void dense16_describe(const void *d, char *buf, size_t n) {
    snprintf(buf, n, "dense16 %s", dtype_word(((const lp_dense16 *)d)->dtype));
}

static lp_status dense16_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    lp_dense16_dequant(d, r0, r1, out);
    return LP_OK;
}

static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) {
    return lp_dense16_gemm_ex(d, X, T, Y, LP_ISA_REF, 0);
}
static lp_status gemm_avx2(const void *d, const float *X, int64_t T, float *Y) {
    return lp_dense16_gemm_ex(d, X, T, Y, LP_ISA_AVX2, 0);
}
static lp_status gemm_avx512(const void *d, const float *X, int64_t T, float *Y) {
    return lp_dense16_gemm_ex(d, X, T, Y, LP_ISA_AVX512, 0);
}

static lp_status dense16_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_dense16 *v = d;
    LP_TRY(lp_fmt_add(w, base, ".weight", v->dtype, v->rows, v->cols, v->w));
    snprintf(meta, n, "{\"format\":\"dense16\",\"dtype\":\"%s\"}", dtype_word(v->dtype));
    return LP_OK;
}

static lp_status dense16_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows,
                              int64_t cols, void **data) {
    const lp_json *v = lp_json_get(desc, "dtype");
    const char *dt = lp_json_str(v, NULL);
    if (!dt || (strcmp(dt, "bf16") && strcmp(dt, "f16")))
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": dense16 dtype is %s%s%s; expected \"bf16\" or \"f16\"",
                       in->name, base, dt ? "\"" : "", dt ? dt : v ? "not a string" : "missing", dt ? "\"" : "");
    const lp_dtype dtype = strcmp(dt, "bf16") ? LP_DT_F16 : LP_DT_BF16;
    lp_status st = check_shape(LP_ERR_FORMAT, rows, cols, dtype);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    const lp_tensor_view *t;
    LP_TRY(lp_fmt_tensor(in, base, ".weight", dtype, rows, cols, &t));
    st = lp_dense16_view(rows, cols, dtype, t->data, t->nbytes, data);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: tensor \"%s\"", lp_weights_file_of(in->w, t->name), t->name);
    return LP_OK;
}

static void dense16_free(void *d) { lp_dense16_free(d); }

const lp_format lp_format_dense16 = {
    .name = "dense16",
    .nbytes = dense16_nbytes,
    .describe = dense16_describe,
    .dequant = dense16_dequant,
    .gemm = {gemm_ref, gemm_avx2, gemm_avx512},
    .save = dense16_save,
    .load = dense16_load,
    .free = dense16_free,
};
