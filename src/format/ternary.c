/*
 * ternary.c - the ternary format (layout and kernels in ternary.h):
 * allocation, checked views of file buffers, the threaded drivers of
 * dequantization and products, and the traits row.
 *
 * Design: the drivers are sign.c's (and qlut.c's): few tokens run the packed
 * kernel over fixed tiles of ROW_TILE rows on a zero-padded copy of x, each
 * packed row read once for up to LP_TERNARY_MAX_T tokens; many tokens
 * dequantize tiles of BLAS_TILE rows into per-thread scratch and multiply
 * them with one single-threaded cblas_sgemm each. One OpenMP `parallel for`
 * per call; each output is computed by one thread in a fixed order, so the
 * thread count never changes a result.
 * Where the paths cross (BY_ISA below): single-threaded, llama-25m shapes,
 * group 128, AMD EPYC (Zen 4): the AVX-512 kernel (~30 GMAC/s from T = 4 on)
 * meets sgemm between T = 32 and 64, the AVX2 kernel (~15 GMAC/s) between
 * T = 8 and 16. The reference keeps the default of 16.
 */
#include "format/ternary.h"

#include "core/half.h"
#include "core/status_impl.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROW_TILE = 16, BLAS_TILE = 64 };

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

void lp_ternary_dequant(const lp_ternary *w, int64_t r0, int64_t r1, float *out) {
    const lp_ternary_dequant_fn dq = BY_ISA[lp_cpu_isa()].dequant;
    const int64_t ntiles = (r1 - r0 + ROW_TILE - 1) / ROW_TILE;
#pragma omp parallel for schedule(static) if (ntiles > 1 && (r1 - r0) * w->cols > (1 << 16))
    for (int64_t i = 0; i < ntiles; i++) {
        int64_t a = r0 + i * ROW_TILE, b = a + ROW_TILE < r1 ? a + ROW_TILE : r1;
        dq(w, a, b, out + (a - r0) * w->cols);
    }
}

/* 64-byte aligned scratch (aligned_alloc wants a multiple of the alignment). */
static float *scratch(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

static lp_status gemm_packed(lp_ternary_rows_fn fn, const lp_ternary *w, const float *X, int64_t T, float *Y) {
    const int64_t ldx = w->words * 32, R = w->rows;
    const size_t bytes = (size_t)(T * ldx) * sizeof(float);
    float *xp = scratch(bytes); /* (T, ldx): X zero-padded to whole words */
    if (!xp) return lp_fail(LP_ERR_NOMEM, "ternary gemm: cannot allocate %zu bytes of input scratch", bytes);
    for (int64_t t = 0; t < T; t++) {
        memcpy(xp + t * ldx, X + t * w->cols, (size_t)w->cols * sizeof(float));
        memset(xp + t * ldx + w->cols, 0, (size_t)(ldx - w->cols) * sizeof(float));
    }
    const int64_t ntiles = (R + ROW_TILE - 1) / ROW_TILE;
#pragma omp parallel for schedule(dynamic, 4) if (ntiles > 1 && R * w->cols * T > (1 << 15))
    for (int64_t i = 0; i < ntiles; i++) {
        const int64_t r0 = i * ROW_TILE, r1 = r0 + ROW_TILE < R ? r0 + ROW_TILE : R;
        for (int64_t t0 = 0; t0 < T; t0 += LP_TERNARY_MAX_T) {
            const int64_t n = T - t0 < LP_TERNARY_MAX_T ? T - t0 : LP_TERNARY_MAX_T;
            fn(w, n, xp + t0 * ldx, ldx, Y + t0 * R, R, r0, r1);
        }
    }
    free(xp);
    return LP_OK;
}

static lp_status gemm_blas(lp_ternary_dequant_fn dq, const lp_ternary *w, const float *X, int64_t T, float *Y) {
    if (T > INT_MAX) return lp_fail(LP_ERR_ARG, "ternary gemm: T = %lld tokens, expected < 2^31", (long long)T);
    const int64_t R = w->rows, C = w->cols, ntiles = (R + BLAS_TILE - 1) / BLAS_TILE;
    const int nth = omp_get_max_threads();
    const size_t per = (size_t)(BLAS_TILE * C); /* floats of one (BLAS_TILE, C) tile */
    float *D = scratch(per * (size_t)nth * sizeof(float));
    if (!D) return lp_fail(LP_ERR_NOMEM, "ternary gemm: cannot allocate %d x %zu bytes for dequantized tiles", nth,
                           per * sizeof(float));
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int64_t i = 0; i < ntiles; i++) {
        const int64_t r0 = i * BLAS_TILE, nr = R - r0 < BLAS_TILE ? R - r0 : BLAS_TILE;
        float *d = D + (size_t)omp_get_thread_num() * per;
        dq(w, r0, r0 + nr, d);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)nr, (int)C, 1.0f, X, (int)C, d, (int)C,
                    0.0f, Y + r0, (int)R);
    }
    free(D);
    return LP_OK;
}

lp_status lp_ternary_gemm_ex(const lp_ternary *w, const float *X, int64_t T, float *Y, lp_isa isa,
                             int64_t blas_min_tokens) {
    if ((int)isa < 0 || isa >= LP_ISA_N || !lp_cpu_supports(isa))
        return lp_fail(LP_ERR_UNSUPPORTED, "ternary gemm: kernel level '%s' is not supported by this CPU",
                       lp_isa_name(isa));
    if (T < 0) return lp_fail(LP_ERR_ARG, "ternary gemm: T = %lld tokens, expected >= 0", (long long)T);
    if (T == 0) return LP_OK;
    if (T < (blas_min_tokens > 0 ? blas_min_tokens : BY_ISA[isa].blas_min_tokens))
        return gemm_packed(BY_ISA[isa].rows, w, X, T, Y);
    return gemm_blas(BY_ISA[isa].dequant, w, X, T, Y);
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
