/*
 * sign.c - the sign format (layout and kernels in sign.h): allocation,
 * checked views of file buffers, the threaded drivers of dequantization and
 * products, and the traits row.
 *
 * Design: products and dequantization run on the shared row-kernel driver
 * (rowgemm.h: zero-padded x, fixed row tiles under one OpenMP loop, up to
 * LP_SIGN_MAX_T tokens per pass over a packed row; dequantized tiles and
 * sgemm for many tokens), so the thread count never changes a result.
 * Where the paths cross (BY_ISA below): single-threaded, llama-25m shapes
 * (1024 x 384, 384 x 1024), AMD EPYC (Zen 4): the AVX-512 kernel holds about
 * 40-45 GMAC/s from T = 4 on and sgemm only overtakes it near T = 128; the
 * AVX2 kernel (~23 GMAC/s) near T = 24. The reference is the specification,
 * not a fast path: it keeps the default of 16.
 */
#include "format/sign.h"

#include "core/half.h"
#include "core/status_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each level's kernels; every level is bit-identical in dequantization. */
static const struct {
    lp_sign_rows_fn rows;
    lp_sign_dequant_fn dequant;
    int64_t blas_min_tokens; /* from this many tokens on: dequantized tiles + sgemm */
} BY_ISA[LP_ISA_N] = {
    {lp_sign_rows_ref, lp_sign_dequant_ref, 16},
    {lp_sign_rows_avx2, lp_sign_dequant_avx2, 24},
    {lp_sign_rows_avx512, lp_sign_dequant_avx512, 128},
};

static int64_t nwords(int64_t cols) { return (cols + 31) / 32; }

/* The bits of a row's last word that lie past cols (must be 0). */
static uint32_t pad_mask(int64_t cols) { return cols % 32 ? ~0u << (cols % 32) : 0u; }

static lp_status check_shape(lp_status st, int64_t rows, int64_t cols) {
    if (rows < 1 || cols < 1 || rows > INT_MAX || cols > INT_MAX)
        return lp_fail(st, "sign: shape %lld x %lld, expected 1 .. 2^31 - 1 rows and columns", (long long)rows,
                       (long long)cols);
    return LP_OK;
}

static void fill(lp_sign *w, int64_t rows, int64_t cols) {
    memset(w, 0, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->words = nwords(cols);
}

lp_status lp_sign_init(lp_sign *w, int64_t rows, int64_t cols) {
    memset(w, 0, sizeof *w);
    LP_TRY(check_shape(LP_ERR_ARG, rows, cols));
    fill(w, rows, cols);
    w->owns = 1;
    w->signs = calloc((size_t)(rows * w->words), sizeof(uint32_t));
    w->scales = calloc((size_t)rows, sizeof(uint16_t));
    if (!w->signs || !w->scales) {
        lp_sign_free(w);
        return lp_fail(LP_ERR_NOMEM, "sign: out of memory for a %lld x %lld weight", (long long)rows, (long long)cols);
    }
    return LP_OK;
}

lp_status lp_sign_view(lp_sign *w, int64_t rows, int64_t cols, const void *signs, size_t signs_bytes,
                       const void *scales, size_t scales_bytes) {
    memset(w, 0, sizeof *w);
    LP_TRY(check_shape(LP_ERR_FORMAT, rows, cols));
    const int64_t words = nwords(cols);
    if (signs_bytes != (size_t)(rows * words) * 4 || !signs || (uintptr_t)signs % 4)
        return lp_fail(LP_ERR_FORMAT, "sign: .signs has %zu bytes at %p, expected %zu (%lld rows x %lld words x 4), "
                       "4-byte aligned", signs_bytes, signs, (size_t)(rows * words) * 4, (long long)rows,
                       (long long)words);
    if (scales_bytes != (size_t)rows * 2 || !scales || (uintptr_t)scales % 2)
        return lp_fail(LP_ERR_FORMAT, "sign: .scales has %zu bytes at %p, expected %zu (%lld rows x 2), 2-byte "
                       "aligned", scales_bytes, scales, (size_t)rows * 2, (long long)rows);
    const uint16_t *s = scales;
    for (int64_t r = 0; r < rows; r++)
        if ((s[r] & 0x7c00u) == 0x7c00u)
            return lp_fail(LP_ERR_FORMAT, "sign: .scales: the scale of row %lld is %s (f16 0x%04x), expected a "
                           "finite number", (long long)r, (s[r] & 0x3ffu) ? "NaN" : "infinite", s[r]);
    const uint32_t *b = signs, pad = pad_mask(cols);
    for (int64_t r = 0; pad && r < rows; r++)
        if (b[r * words + words - 1] & pad)
            return lp_fail(LP_ERR_FORMAT, "sign: .signs: row %lld has bits set past column %lld (last word 0x%08x, "
                           "padding mask 0x%08x), expected 0", (long long)r, (long long)cols - 1,
                           b[r * words + words - 1], pad);
    fill(w, rows, cols);
    /* Views never write: the const is cast away only to share the struct. */
    w->signs = (uint32_t *)signs;
    w->scales = (uint16_t *)scales;
    return LP_OK;
}

void lp_sign_free(lp_sign *w) {
    if (!w) return;
    if (w->owns) {
        free(w->signs);
        free(w->scales);
    }
    memset(w, 0, sizeof *w);
}

size_t lp_sign_nbytes(const lp_sign *w) { return (size_t)(w->rows * w->words) * 4 + (size_t)w->rows * 2; }

/* The row-kernel driver for w at level isa. */
static lp_rowgemm driver(const lp_sign *w, lp_isa isa) {
    return (lp_rowgemm){.name = "sign", .w = w, .rows = w->rows, .cols = w->cols, .ldx = w->words * 32,
                        .max_t = LP_SIGN_MAX_T, .rows_fn = BY_ISA[isa].rows, .dequant = BY_ISA[isa].dequant};
}

void lp_sign_dequant(const lp_sign *w, int64_t r0, int64_t r1, float *out) {
    const lp_rowgemm g = driver(w, lp_cpu_isa());
    lp_rowgemm_dequant(&g, r0, r1, out);
}

lp_status lp_sign_gemm_ex(const lp_sign *w, const float *X, int64_t T, float *Y, lp_isa isa,
                          int64_t blas_min_tokens) {
    if ((int)isa < 0 || isa >= LP_ISA_N || !lp_cpu_supports(isa))
        return lp_fail(LP_ERR_UNSUPPORTED, "sign gemm: kernel level '%s' is not supported by this CPU",
                       lp_isa_name(isa));
    const lp_rowgemm g = driver(w, isa);
    return lp_rowgemm_run(&g, X, T, Y, blas_min_tokens > 0 ? blas_min_tokens : BY_ISA[isa].blas_min_tokens);
}

/* ---- checkpoint I/O and the traits row ---- */

static size_t sign_nbytes(const void *d) { return lp_sign_nbytes(d); }

static void sign_describe(const void *d, char *buf, size_t n) {
    (void)d;
    snprintf(buf, n, "sign 1-bit, f16 scale per row");
}

static lp_status sign_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    lp_sign_dequant(d, r0, r1, out);
    return LP_OK;
}

static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) {
    return lp_sign_gemm_ex(d, X, T, Y, LP_ISA_REF, 0);
}
static lp_status gemm_avx2(const void *d, const float *X, int64_t T, float *Y) {
    return lp_sign_gemm_ex(d, X, T, Y, LP_ISA_AVX2, 0);
}
static lp_status gemm_avx512(const void *d, const float *X, int64_t T, float *Y) {
    return lp_sign_gemm_ex(d, X, T, Y, LP_ISA_AVX512, 0);
}

static lp_status sign_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_sign *s = d;
    LP_TRY(lp_fmt_add(w, base, ".signs", LP_DT_U32, s->rows, s->words, s->signs));
    LP_TRY(lp_fmt_add(w, base, ".scales", LP_DT_F16, s->rows, 1, s->scales));
    snprintf(meta, n, "{\"format\":\"sign\"}");
    return LP_OK;
}

static lp_status sign_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                           void **data) {
    (void)desc; /* no settings */
    const lp_tensor_view *b, *s;
    LP_TRY(lp_fmt_tensor(in, base, ".signs", LP_DT_U32, rows, nwords(cols), &b));
    LP_TRY(lp_fmt_tensor(in, base, ".scales", LP_DT_F16, rows, 1, &s));
    lp_sign *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_sign_view(w, rows, cols, b->data, b->nbytes, s->data, s->nbytes);
    if (st != LP_OK) {
        free(w);
        return lp_fail_ctx(st, "%s: tensors \"%s.*\"", lp_weights_file_of(in->w, b->name), base);
    }
    *data = w;
    return LP_OK;
}

static void sign_free(void *d) {
    lp_sign_free(d);
    free(d);
}

const lp_format lp_format_sign = {
    .name = "sign",
    .nbytes = sign_nbytes,
    .describe = sign_describe,
    .dequant = sign_dequant,
    .gemm = {gemm_ref, gemm_avx2, gemm_avx512},
    .save = sign_save,
    .load = sign_load,
    .free = sign_free,
};
