/*
 * ternary.c - the ternary format (layout and kernels in ternary.h):
 * allocation, checked views of file buffers, the threaded drivers of
 * dequantization and products, and the traits row.
 *
 * Design: products and dequantization run on the shared row-kernel driver
 * (rowgemm.h), as sign's and qlut's do; up to LP_TERNARY_MAX_T tokens per
 * pass over a packed row.
 * Where the paths cross (BY_ISA below): single-threaded, llama-25m shapes,
 * group 128, AMD EPYC (Zen 4): the AVX-512 kernel (~30 GMAC/s from T = 4 on)
 * meets sgemm between T = 32 and 64, the AVX2 kernel (~15 GMAC/s) between
 * T = 8 and 16. The reference keeps the default of 16.
 */
#include "format/ternary.h"

#include "core/half.h"
#include "core/status_impl.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    lp_ternary_rows_fn rows;
    lp_ternary_dequant_fn dequant;
    int64_t blas_min_tokens; /* from this many tokens on: dequantized tiles + sgemm */
} BY_ISA[LP_ISA_N] = {
    {lp_ternary_rows_ref, lp_ternary_dequant_ref, 16},
    {lp_ternary_rows_avx2, lp_ternary_dequant_avx2, 16},
    {lp_ternary_rows_avx512, lp_ternary_dequant_avx512, 48},
};

static int64_t nwords(int64_t cols) { return (cols + 31) / 32; }

/* The bits of a row's last word that lie past cols (must be 0). */
static uint32_t pad_mask(int64_t cols) { return cols % 32 ? ~0u << (cols % 32) : 0u; }

/* Validate a shape and resolve the group (-1 or >= cols: cols). st is the
 * code to fail with: LP_ERR_ARG for a caller's arguments, LP_ERR_FORMAT for a
 * file's. */
static lp_status check_shape(lp_status st, int64_t rows, int64_t cols, int group, int *resolved) {
    if (rows < 1 || cols < 1 || rows > INT_MAX || cols > INT_MAX)
        return lp_fail(st, "ternary: shape %lld x %lld, expected 1 .. 2^31 - 1 rows and columns", (long long)rows,
                       (long long)cols);
    if (group == -1 || group >= cols) group = (int)cols;
    else if (group < 32 || group % 32)
        return lp_fail(st, "ternary: group = %d with cols = %lld, expected a positive multiple of 32, -1 (per "
                       "output channel) or cols", group, (long long)cols);
    *resolved = group;
    return LP_OK;
}

static void fill(lp_ternary *w, int64_t rows, int64_t cols, int group) {
    memset(w, 0, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->group = group;
    w->words = nwords(cols);
    w->ngroups = (cols + group - 1) / group;
    w->gwords = nwords(group);
}

lp_status lp_ternary_init(lp_ternary *w, int64_t rows, int64_t cols, int group) {
    memset(w, 0, sizeof *w);
    int g;
    LP_TRY(check_shape(LP_ERR_ARG, rows, cols, group, &g));
    fill(w, rows, cols, g);
    w->owns = 1;
    w->nonzero = calloc((size_t)(rows * w->words), sizeof(uint32_t));
    w->negative = calloc((size_t)(rows * w->words), sizeof(uint32_t));
    w->scales = calloc((size_t)(rows * w->ngroups), sizeof(uint16_t));
    if (!w->nonzero || !w->negative || !w->scales) {
        lp_ternary_free(w);
        return lp_fail(LP_ERR_NOMEM, "ternary: out of memory for a %lld x %lld weight", (long long)rows,
                       (long long)cols);
    }
    return LP_OK;
}

static lp_status want(const char *what, const void *p, size_t got, size_t need, size_t align) {
    if (got != need || !p || (uintptr_t)p % align)
        return lp_fail(LP_ERR_FORMAT, "ternary: %s has %zu bytes at %p, expected %zu, %zu-byte aligned", what, got, p,
                       need, align);
    return LP_OK;
}

lp_status lp_ternary_view(lp_ternary *w, int64_t rows, int64_t cols, int group, const void *nonzero,
                          size_t nonzero_bytes, const void *negative, size_t negative_bytes, const void *scales,
                          size_t scales_bytes) {
    memset(w, 0, sizeof *w);
    int g;
    LP_TRY(check_shape(LP_ERR_FORMAT, rows, cols, group, &g));
    lp_ternary s; /* the shape, to size the buffers */
    fill(&s, rows, cols, g);
    LP_TRY(want(".nonzero", nonzero, nonzero_bytes, (size_t)(rows * s.words) * 4, 4));
    LP_TRY(want(".negative", negative, negative_bytes, (size_t)(rows * s.words) * 4, 4));
    LP_TRY(want(".scales", scales, scales_bytes, (size_t)(rows * s.ngroups) * 2, 2));
    const uint16_t *a = scales;
    for (int64_t i = 0; i < rows * s.ngroups; i++)
        if ((a[i] & 0x7c00u) == 0x7c00u)
            return lp_fail(LP_ERR_FORMAT, "ternary: .scales: the scale of row %lld group %lld is %s (f16 0x%04x), "
                           "expected a finite number", (long long)(i / s.ngroups), (long long)(i % s.ngroups),
                           (a[i] & 0x3ffu) ? "NaN" : "infinite", a[i]);
    const uint32_t *m = nonzero, *n = negative, pad = pad_mask(cols);
    for (int64_t r = 0; r < rows; r++) {
        const int64_t last = r * s.words + s.words - 1;
        if ((m[last] | n[last]) & pad)
            return lp_fail(LP_ERR_FORMAT, "ternary: %s: row %lld has bits set past column %lld (last word 0x%08x, "
                           "padding mask 0x%08x), expected 0", (m[last] & pad) ? ".nonzero" : ".negative",
                           (long long)r, (long long)cols - 1, (m[last] & pad) ? m[last] : n[last], pad);
        for (int64_t k = r * s.words; k <= last; k++)
            if (n[k] & ~m[k])
                return lp_fail(LP_ERR_FORMAT, "ternary: .negative: row %lld word %lld marks zero weights negative "
                               "(bits 0x%08x not in .nonzero), expected negative bits only on nonzero weights",
                               (long long)r, (long long)(k - r * s.words), n[k] & ~m[k]);
    }
    *w = s;
    /* Views never write: the const is cast away only to share the struct. */
    w->nonzero = (uint32_t *)nonzero;
    w->negative = (uint32_t *)negative;
    w->scales = (uint16_t *)scales;
    return LP_OK;
}

void lp_ternary_free(lp_ternary *w) {
    if (!w) return;
    if (w->owns) {
        free(w->nonzero);
        free(w->negative);
        free(w->scales);
    }
    memset(w, 0, sizeof *w);
}

size_t lp_ternary_nbytes(const lp_ternary *w) {
    return 2 * (size_t)(w->rows * w->words) * 4 + (size_t)(w->rows * w->ngroups) * 2;
}

/* The row-kernel driver for w at level isa. */
static lp_rowgemm driver(const lp_ternary *w, lp_isa isa) {
    return (lp_rowgemm){.name = "ternary", .w = w, .rows = w->rows, .cols = w->cols, .ldx = w->words * 32,
                        .max_t = LP_TERNARY_MAX_T, .rows_fn = BY_ISA[isa].rows, .dequant = BY_ISA[isa].dequant};
}

void lp_ternary_dequant(const lp_ternary *w, int64_t r0, int64_t r1, float *out) {
    const lp_rowgemm g = driver(w, lp_cpu_isa());
    lp_rowgemm_dequant(&g, r0, r1, out);
}

lp_status lp_ternary_gemm_ex(const lp_ternary *w, const float *X, int64_t T, float *Y, lp_isa isa,
                             int64_t blas_min_tokens) {
    if ((int)isa < 0 || isa >= LP_ISA_N || !lp_cpu_supports(isa))
        return lp_fail(LP_ERR_UNSUPPORTED, "ternary gemm: kernel level '%s' is not supported by this CPU",
                       lp_isa_name(isa));
    const lp_rowgemm g = driver(w, isa);
    return lp_rowgemm_run(&g, X, T, Y, blas_min_tokens > 0 ? blas_min_tokens : BY_ISA[isa].blas_min_tokens);
}

/* ---- checkpoint I/O and the traits row ---- */

static size_t ternary_nbytes(const void *d) { return lp_ternary_nbytes(d); }

static void ternary_describe(const void *d, char *buf, size_t n) {
    const lp_ternary *w = d;
    if (w->group >= w->cols) snprintf(buf, n, "ternary per-channel");
    else snprintf(buf, n, "ternary g%d", w->group);
}

static lp_status ternary_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    lp_ternary_dequant(d, r0, r1, out);
    return LP_OK;
}

static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) {
    return lp_ternary_gemm_ex(d, X, T, Y, LP_ISA_REF, 0);
}
static lp_status gemm_avx2(const void *d, const float *X, int64_t T, float *Y) {
    return lp_ternary_gemm_ex(d, X, T, Y, LP_ISA_AVX2, 0);
}
static lp_status gemm_avx512(const void *d, const float *X, int64_t T, float *Y) {
    return lp_ternary_gemm_ex(d, X, T, Y, LP_ISA_AVX512, 0);
}

static lp_status ternary_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_ternary *t = d;
    LP_TRY(lp_fmt_add(w, base, ".nonzero", LP_DT_U32, t->rows, t->words, t->nonzero));
    LP_TRY(lp_fmt_add(w, base, ".negative", LP_DT_U32, t->rows, t->words, t->negative));
    LP_TRY(lp_fmt_add(w, base, ".scales", LP_DT_F16, t->rows, t->ngroups, t->scales));
    snprintf(meta, n, "{\"format\":\"ternary\",\"group\":%d}", t->group);
    return LP_OK;
}

static lp_status ternary_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows,
                              int64_t cols, void **data) {
    int64_t group;
    LP_TRY(lp_fmt_int(in, base, desc, "group", 1, INT32_MAX, &group));
    int g;
    lp_status st = check_shape(LP_ERR_FORMAT, rows, cols, (int)group, &g);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    const int64_t words = nwords(cols), ngroups = (cols + g - 1) / g;
    const lp_tensor_view *m, *n, *s;
    LP_TRY(lp_fmt_tensor(in, base, ".nonzero", LP_DT_U32, rows, words, &m));
    LP_TRY(lp_fmt_tensor(in, base, ".negative", LP_DT_U32, rows, words, &n));
    LP_TRY(lp_fmt_tensor(in, base, ".scales", LP_DT_F16, rows, ngroups, &s));
    lp_ternary *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    st = lp_ternary_view(w, rows, cols, g, m->data, m->nbytes, n->data, n->nbytes, s->data, s->nbytes);
    if (st != LP_OK) {
        free(w);
        return lp_fail_ctx(st, "%s: tensors \"%s.*\"", lp_weights_file_of(in->w, m->name), base);
    }
    *data = w;
    return LP_OK;
}

static void ternary_free(void *d) {
    lp_ternary_free(d);
    free(d);
}

const lp_format lp_format_ternary = {
    .name = "ternary",
    .nbytes = ternary_nbytes,
    .describe = ternary_describe,
    .dequant = ternary_dequant,
    .gemm = {gemm_ref, gemm_avx2, gemm_avx512},
    .save = ternary_save,
    .load = ternary_load,
    .free = ternary_free,
};
