/*
 * bitmap.c - the unstructured sparse format (layout and kernels in
 * bitmap.h): making it from a pruning method's arrays, checked loading of
 * checkpoint tensors, the threaded drivers of dequantization and products,
 * and the traits row.
 *
 * Design: products and dequantization run on the shared row-kernel driver
 * (rowgemm.h), up to LP_BITMAP_MAX_T tokens per pass over a packed row; the
 * per-row offsets let any row tile start without a scan.
 * Where the paths cross (BY_ISA below): bench/bench_sparse.c's crossover
 * table, 4096 x 4096 at 50%, bf16, 1 thread, best of 5, AMD EPYC (Zen 4):
 * the packed AVX-512 kernel costs ~555 us per token from T = 4 on,
 * dequantized 64-row tiles + sgemm 640 and 530 at T = 16 and 24: they meet
 * at ~24; the AVX2 kernel (~710 us) meets sgemm (690 at T = 16) at 16. The
 * scalar reference loses to dequantize + sgemm from 2 tokens on.
 */
#include "format/bitmap.h"

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
    {lp_bitmap_rows_ref, lp_bitmap_dequant_ref, 2},
    {lp_bitmap_rows_avx2, lp_bitmap_dequant_avx2, 16},
    {lp_bitmap_rows_avx512, lp_bitmap_dequant_avx512, 24},
};

static lp_status check_shape(lp_status st, int64_t rows, int64_t cols) {
    if (rows < 1 || cols < 1 || rows > INT_MAX || cols > INT_MAX)
        return lp_fail(st, "bitmap: shape %lld x %lld, expected 1 .. 2^31 - 1 rows and columns", (long long)rows,
                       (long long)cols);
    return LP_OK;
}

/* The bits of a row's last word that lie past cols (must be 0). */
static uint32_t pad_mask(int64_t cols) { return cols % 32 ? ~0u << (cols % 32) : 0u; }

void lp_bitmap_free(lp_bitmap *w) {
    if (!w) return;
    if (w->owns) {
        free(w->mask);
        free(w->offsets);
        lp_sparse_free(&w->v);
    }
    memset(w, 0, sizeof *w);
}

size_t lp_bitmap_nbytes(const lp_bitmap *w) {
    return (size_t)(w->rows * w->words) * 4 + (size_t)(w->rows + 1) * 8 + lp_sparse_nbytes(&w->v, w->rows);
}

lp_status lp_bitmap_make(int64_t rows, int64_t cols, const uint8_t *keep, const lp_sparse_values *v,
                         const float *W, const uint8_t *codes, const float *scales, const int *zeros, void **out) {
    *out = NULL;
    LP_TRY(check_shape(LP_ERR_ARG, rows, cols));
    lp_sparse_values rv;
    LP_TRY(lp_sparse_resolve(v, cols, 32, "bitmap", LP_ERR_ARG, &rv));
    if (!keep) return lp_fail(LP_ERR_ARG, "bitmap: no keep mask given");
    lp_bitmap *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "bitmap: out of memory");
    w->rows = rows;
    w->cols = cols;
    w->words = (cols + 31) / 32;
    w->owns = 1;
    w->mask = calloc((size_t)(rows * w->words), 4);
    w->offsets = calloc((size_t)rows + 1, 8);
    lp_status st = w->mask && w->offsets ? LP_OK
                                         : lp_fail(LP_ERR_NOMEM, "bitmap: out of memory for the mask of a %lld x %lld "
                                                   "weight", (long long)rows, (long long)cols);
    for (int64_t r = 0; st == LP_OK && r < rows; r++) {
        int64_t k = 0;
        for (int64_t c = 0; c < cols; c++) {
            const uint8_t e = keep[r * cols + c];
            if (e > 1) {
                st = lp_fail(LP_ERR_ARG, "bitmap: keep[%lld][%lld] = %u, expected 0 or 1", (long long)r, (long long)c,
                             e);
                break;
            }
            w->mask[r * w->words + c / 32] |= (uint32_t)e << (c % 32);
            k += e;
        }
        w->offsets[r + 1] = w->offsets[r] + k;
    }
    if (st == LP_OK) st = lp_sparse_alloc(&w->v, &rv, rows, cols, w->offsets[rows], "bitmap");
    if (st == LP_OK) st = lp_sparse_fill(&w->v, rows, cols, keep, W, codes, scales, zeros, "bitmap");
    if (st != LP_OK) {
        lp_bitmap_free(w);
        free(w);
        return st;
    }
    *out = w;
    return LP_OK;
}

/* The row-kernel driver for w at level isa. */
static lp_rowgemm driver(const lp_bitmap *w, lp_isa isa) {
    return (lp_rowgemm){.name = "bitmap", .w = w, .rows = w->rows, .cols = w->cols, .ldx = w->words * 32,
                        .max_t = LP_BITMAP_MAX_T, .rows_fn = BY_ISA[isa].rows, .dequant = BY_ISA[isa].dequant};
}

void lp_bitmap_dequant(const lp_bitmap *w, int64_t r0, int64_t r1, float *out) {
    const lp_rowgemm g = driver(w, lp_cpu_isa());
    lp_rowgemm_dequant(&g, r0, r1, out);
}

lp_status lp_bitmap_gemm_ex(const lp_bitmap *w, const float *X, int64_t T, float *Y, lp_isa isa,
                            int64_t blas_min_tokens) {
    if ((int)isa < 0 || isa >= LP_ISA_N || !lp_cpu_supports(isa))
        return lp_fail(LP_ERR_UNSUPPORTED, "bitmap gemm: kernel level '%s' is not supported by this CPU",
                       lp_isa_name(isa));
    const lp_rowgemm g = driver(w, isa);
    return lp_rowgemm_run(&g, X, T, Y, blas_min_tokens > 0 ? blas_min_tokens : BY_ISA[isa].blas_min_tokens);
}

/* ---- checkpoint I/O and the traits row ---- */

static size_t bitmap_nbytes(const void *d) { return lp_bitmap_nbytes(d); }

static int64_t bitmap_nparams(const void *d) { return ((const lp_bitmap *)d)->v.count; }

static void bitmap_describe(const void *d, char *buf, size_t n) {
    const lp_bitmap *w = d;
    char v[48];
    lp_sparse_describe(&w->v, w->cols, v, sizeof v);
    snprintf(buf, n, "bitmap %.1f%% kept %s", 100.0 * (double)w->v.count / (double)(w->rows * w->cols), v);
}

static lp_status bitmap_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    lp_bitmap_dequant(d, r0, r1, out);
    return LP_OK;
}

static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) {
    return lp_bitmap_gemm_ex(d, X, T, Y, LP_ISA_REF, 0);
}
static lp_status gemm_avx2(const void *d, const float *X, int64_t T, float *Y) {
    return lp_bitmap_gemm_ex(d, X, T, Y, LP_ISA_AVX2, 0);
}
static lp_status gemm_avx512(const void *d, const float *X, int64_t T, float *Y) {
    return lp_bitmap_gemm_ex(d, X, T, Y, LP_ISA_AVX512, 0);
}

static lp_status bitmap_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_bitmap *t = d;
    LP_TRY(lp_fmt_add(w, base, ".mask", LP_DT_U32, t->rows, t->words, t->mask));
    LP_TRY(lp_fmt_add(w, base, ".offsets", LP_DT_I64, 1, t->rows + 1, t->offsets));
    LP_TRY(lp_sparse_save(&t->v, w, base, t->rows));
    char v[96];
    lp_sparse_meta(&t->v, v, sizeof v);
    snprintf(meta, n, "{\"format\":\"bitmap\",%s}", v);
    return LP_OK;
}

/* The mask's padding bits and the offsets against its popcounts. */
static lp_status check_mask(const lp_fmt_src *in, const char *base, const lp_bitmap *w) {
    const uint32_t pad = pad_mask(w->cols);
    if (w->offsets[0] != 0)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.offsets\": offsets[0] = %lld, expected 0", in->name, base,
                       (long long)w->offsets[0]);
    for (int64_t r = 0; r < w->rows; r++) {
        const uint32_t *mk = w->mask + r * w->words;
        if (mk[w->words - 1] & pad)
            return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.mask\": row %lld has bits set past column %lld (last word "
                           "0x%08x, padding mask 0x%08x), expected 0", in->name, base, (long long)r,
                           (long long)w->cols - 1, mk[w->words - 1], pad);
        int64_t k = 0;
        for (int64_t j = 0; j < w->words; j++) k += __builtin_popcount(mk[j]);
        /* offsets[r] is checked already (0 <= it <= r cols): the difference cannot overflow */
        if (w->offsets[r + 1] < w->offsets[r] || w->offsets[r + 1] - w->offsets[r] != k)
            return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.offsets\": offsets[%lld] = %lld after offsets[%lld] = "
                           "%lld, expected %lld (row %lld keeps %lld weights)", in->name, base, (long long)(r + 1),
                           (long long)w->offsets[r + 1], (long long)r, (long long)w->offsets[r],
                           (long long)(w->offsets[r] + k), (long long)r, (long long)k);
    }
    return LP_OK;
}

static lp_status bitmap_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows,
                             int64_t cols, void **data) {
    lp_status st = check_shape(LP_ERR_FORMAT, rows, cols);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    lp_sparse_values rv;
    LP_TRY(lp_sparse_load_settings(in, base, desc, cols, 32, "bitmap", &rv));
    lp_bitmap *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "bitmap: out of memory");
    w->rows = rows;
    w->cols = cols;
    w->words = (cols + 31) / 32;
    const lp_tensor_view *tm, *to;
    st = lp_fmt_tensor(in, base, ".mask", LP_DT_U32, rows, w->words, &tm);
    if (st == LP_OK) st = lp_fmt_tensor(in, base, ".offsets", LP_DT_I64, 1, rows + 1, &to);
    if (st == LP_OK) {
        /* views never write: the const is cast away only to share the struct */
        w->mask = (uint32_t *)tm->data;
        w->offsets = (int64_t *)to->data;
        st = check_mask(in, base, w);
    }
    if (st == LP_OK) st = lp_sparse_load(in, base, &rv, rows, cols, w->offsets[rows], &w->v);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    *data = w;
    return LP_OK;
}

static void bitmap_free(void *d) {
    lp_bitmap_free(d);
    free(d);
}

const lp_format lp_format_bitmap = {
    .name = "bitmap",
    .nbytes = bitmap_nbytes,
    .describe = bitmap_describe,
    .dequant = bitmap_dequant,
    .gemm = {gemm_ref, gemm_avx2, gemm_avx512},
    .save = bitmap_save,
    .load = bitmap_load,
    .free = bitmap_free,
    .paper_bits = NULL,
    .nparams = bitmap_nparams,
};
