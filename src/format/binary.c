/*
 * binary.c - the binary format (layout, values and kernels in binary.h):
 * allocation, the derived arrays, exact byte and paper-bit counts, the
 * threaded drivers of dequantization and products, checkpoint save/load with
 * every untrusted value checked, and the traits row.
 *
 * Design: products and dequantization run on the shared row-kernel driver
 * (rowgemm.h: x zero-padded to ldx = cols, fixed row tiles under one OpenMP
 * loop, up to LP_BINARY_MAX_T tokens per pass over a packed row; dequantized
 * tiles + sgemm for many tokens), so the thread count never changes a result.
 * A loaded weight is a view: its planes and parameters point into the
 * checkpoint's mapping; only the derived arrays (sal_before, hoff) are
 * malloc'd.
 * Where the paths cross (BY_ISA below): bench_binary's crossover table
 * (docs/benchmarks.md), single-threaded, 4096 x 4096 (out x in), block 128,
 * 2-core AMD EPYC VM (family 26, Zen 5), microseconds per token of the
 * packed kernel (flat from T = 4 on) against dequantized tiles + sgemm
 * (falling with T):
 *   AVX-512: means only (BiLLM-like, 476 us) meets sgemm near T = 28, held
 *     weights (PB-LLM-like, 790 us) near 14, row x column scales (ARB-RC-
 *     like, 1265 us) near 8;
 *   AVX2: 862 us near 11, 1135 us near 8, 2280 us near 5.
 * The reference is the specification, not a fast path: it keeps the default
 * of 16 that sign and ternary use.
 */
#include "format/binary.h"

#include "core/status_impl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each level's kernels; every level is bit-identical in dequantization. */
static const struct {
    lp_rows_fn rows;
    lp_rows_dequant_fn dequant;
    /* from this many tokens on: dequantized tiles + sgemm; per mode, as the
     * packed kernels' cost per weight differs (means only / held weights /
     * row x column scales) */
    int64_t blas_min_mean, blas_min_held, blas_min_rc;
} BY_ISA[LP_ISA_N] = {
    {lp_binary_rows_ref, lp_binary_dequant_ref, 16, 16, 16},
    {lp_binary_rows_avx2, lp_binary_dequant_avx2, 10, 8, 6},
    {lp_binary_rows_avx512, lp_binary_dequant_avx512, 32, 14, 8},
};

static int64_t blas_min(const lp_binary *w, lp_isa isa) {
    return w->rc ? BY_ISA[isa].blas_min_rc : w->held ? BY_ISA[isa].blas_min_held : BY_ISA[isa].blas_min_mean;
}

static int64_t popcount32(uint32_t v) {
    int64_t n = 0;
    for (; v; v &= v - 1) n++;
    return n;
}

static int64_t popcount_words(const uint32_t *p, int64_t n) {
    int64_t s = 0;
    for (int64_t i = 0; i < n; i++) s += popcount32(p[i]);
    return s;
}

/* Check rows, cols and the shape; fill w's sizes (nothing allocated). st is
 * the code to fail with: LP_ERR_ARG for a caller's arguments, LP_ERR_FORMAT
 * for a file's (the caller adds the file and linear). */
static lp_status check_shape(lp_status st, lp_binary *w, int64_t rows, int64_t cols, const lp_binary_shape *sh) {
    memset(w, 0, sizeof *w);
    if (rows < 1 || cols < 32 || rows > INT_MAX || cols > INT_MAX || cols % 32)
        return lp_fail(st, "binary: shape %lld x %lld, expected 1 .. 2^31 - 1 rows and a multiple of 32 columns "
                       "(hint: the binary format packs whole 32-column words)", (long long)rows, (long long)cols);
    if (sh->block < 32 || sh->block % 32 || sh->block > cols || cols % sh->block)
        return lp_fail(st, "binary: block = %lld with cols = %lld, expected a multiple of 32 that divides cols",
                       (long long)sh->block, (long long)cols);
    if (sh->ngs < 0 || sh->ngs > 2)
        return lp_fail(st, "binary: ngs = %d salient-column groups, expected 0, 1 or 2", sh->ngs);
    if (sh->ngn < 1 || sh->ngn > 2)
        return lp_fail(st, "binary: ngn = %d groups of the other columns, expected 1 or 2", sh->ngn);
    if (sh->hbits != 0 && sh->hbits != 8 && sh->hbits != 16)
        return lp_fail(st, "binary: hbits = %d bits per held weight, expected 8 (codes on a per-row grid) or 16 "
                       "(f16 values)", sh->hbits);
    w->rows = rows;
    w->cols = cols;
    w->block = sh->block;
    w->nblocks = cols / sh->block;
    w->words = cols / 32;
    w->ngs = sh->ngs;
    w->ngn = sh->ngn;
    w->rc = sh->rc;
    w->held = sh->held;
    w->hbits = sh->held && sh->hbits == 16 ? 16 : 8;
    w->npr = w->rc ? 2 * w->ngs + w->ngn : 3 * w->ngs + 2 * w->ngn;
    w->ncp = w->rc ? 2 * w->ngs + w->ngn : 0;
    return LP_OK;
}

/* Set nsal and words2 from colmask (w->colmask set, or ngs == 0). */
static void set_salient(lp_binary *w) {
    w->nsal = w->ngs ? popcount_words(w->colmask, w->words) : 0;
    w->words2 = (w->nsal + 31) / 32;
}

static bool has_b1(const lp_binary *w) { return w->ngs > 0 || w->ngn == 2; }

/* The derived arrays, allocated (sal_before, hoff) and filled. */
static lp_status derive(lp_binary *w) {
    if (!w->sal_before) w->sal_before = malloc((size_t)(w->nblocks + 1) * sizeof(int64_t));
    if (!w->hoff) w->hoff = malloc((size_t)(w->rows + 1) * sizeof(int64_t));
    if (!w->sal_before || !w->hoff)
        return lp_fail(LP_ERR_NOMEM, "binary: out of memory for the index arrays of a %lld x %lld weight",
                       (long long)w->rows, (long long)w->cols);
    const int64_t bw = w->block / 32;
    w->sal_before[0] = 0;
    for (int64_t j = 0; j < w->nblocks; j++)
        w->sal_before[j + 1] = w->sal_before[j] + (w->ngs ? popcount_words(w->colmask + j * bw, bw) : 0);
    w->hoff[0] = 0;
    for (int64_t r = 0; r < w->rows; r++)
        w->hoff[r + 1] = w->hoff[r] + (w->held ? popcount_words(w->hmask + r * w->words, w->words) : 0);
    return LP_OK;
}

/* calloc that never returns NULL for an empty array (b2 with no salient
 * column, codes or codes16 with no held weight). */
static void *zalloc(int64_t n, size_t size) { return calloc(n > 0 ? (size_t)n : 1, size); }

lp_status lp_binary_init(lp_binary *w, int64_t rows, int64_t cols, const lp_binary_shape *sh, const uint32_t *colmask,
                         int64_t nheld) {
    LP_TRY(check_shape(LP_ERR_ARG, w, rows, cols, sh));
    if (w->ngs && !colmask) {
        memset(w, 0, sizeof *w);
        return lp_fail(LP_ERR_ARG, "binary: ngs = %d needs the salient-column bitmap, got NULL", sh->ngs);
    }
    if (nheld < 0 || (!w->held && nheld) || nheld > rows * cols) {
        memset(w, 0, sizeof *w);
        return lp_fail(LP_ERR_ARG, "binary: nheld = %lld with held = %s, expected 0 .. %lld held weights (0 "
                       "without held)", (long long)nheld, sh->held ? "true" : "false", (long long)(rows * cols));
    }
    w->owns = 1;
    const int64_t rw = rows * w->words;
    w->s0 = zalloc(rw, sizeof(uint32_t));
    bool ok = w->s0 != NULL;
    if (has_b1(w)) ok &= (w->b1 = zalloc(rw, sizeof(uint32_t))) != NULL;
    if (w->ngs) {
        ok &= (w->colmask = zalloc(w->words, sizeof(uint32_t))) != NULL;
        if (w->colmask) memcpy(w->colmask, colmask, (size_t)w->words * sizeof(uint32_t));
    }
    if (ok) set_salient(w);
    if (w->ngs == 2) ok &= (w->b2 = zalloc(rows * w->words2, sizeof(uint32_t))) != NULL;
    ok &= (w->rp = zalloc(rows * w->nblocks * w->npr, sizeof(uint16_t))) != NULL;
    if (w->rc) ok &= (w->cp = zalloc((int64_t)w->ncp * cols, sizeof(uint16_t))) != NULL;
    if (w->held) {
        w->nheld = nheld;
        ok &= (w->hmask = zalloc(rw, sizeof(uint32_t))) != NULL;
        if (w->hbits == 16) {
            ok &= (w->codes16 = zalloc(nheld, sizeof(uint16_t))) != NULL;
        } else {
            ok &= (w->codes = zalloc(nheld, 1)) != NULL;
            ok &= (w->hq = zalloc(2 * rows, sizeof(float))) != NULL;
        }
    }
    if (!ok) {
        lp_binary_free(w);
        return lp_fail(LP_ERR_NOMEM, "binary: out of memory for a %lld x %lld weight", (long long)rows,
                       (long long)cols);
    }
    lp_status st = derive(w); /* hmask is all zero until the caller fills it and calls finish */
    if (st != LP_OK) lp_binary_free(w);
    return st;
}

lp_status lp_binary_finish(lp_binary *w) {
    if (w->ngs) {
        const int64_t n = popcount_words(w->colmask, w->words);
        if (n != w->nsal)
            return lp_fail(LP_ERR_ARG, "binary: the salient-column bitmap has %lld columns, but the weight was made "
                           "for %lld (colmask is fixed at init)", (long long)n, (long long)w->nsal);
    }
    if (w->ngs == 2 && w->nsal % 32) {
        const uint32_t pad = ~0u << (w->nsal % 32);
        for (int64_t r = 0; r < w->rows; r++)
            if (w->b2[r * w->words2 + w->words2 - 1] & pad)
                return lp_fail(LP_ERR_ARG, "binary: b2 row %lld has bits set past its %lld salient columns",
                               (long long)r, (long long)w->nsal);
    }
    if (w->held) {
        const int64_t n = popcount_words(w->hmask, w->rows * w->words);
        if (n != w->nheld)
            return lp_fail(LP_ERR_ARG, "binary: hmask marks %lld held weights, expected nheld = %lld (the codes "
                           "allocated at init)", (long long)n, (long long)w->nheld);
    }
    return derive(w);
}

void lp_binary_free(lp_binary *w) {
    if (!w) return;
    if (w->owns) {
        free(w->s0);
        free(w->b1);
        free(w->colmask);
        free(w->b2);
        free(w->hmask);
        free(w->rp);
        free(w->cp);
        free(w->codes);
        free(w->codes16);
        free(w->hq);
    }
    free(w->sal_before);
    free(w->hoff);
    memset(w, 0, sizeof *w);
}

size_t lp_binary_nbytes(const lp_binary *w) {
    const size_t plane = (size_t)(w->rows * w->words) * 4;
    size_t n = plane + (size_t)(w->rows * w->nblocks * w->npr) * 2; /* s0, rp */
    if (has_b1(w)) n += plane;
    if (w->ngs) n += (size_t)w->words * 4;
    if (w->ngs == 2) n += (size_t)(w->rows * w->words2) * 4;
    if (w->rc) n += (size_t)((int64_t)w->ncp * w->cols) * 2;
    if (w->held) {
        if (w->hbits == 16) n += plane + (size_t)w->nheld * 2;                /* hmask, codes16 */
        else n += plane + (size_t)w->nheld + (size_t)w->rows * 8;            /* hmask, codes, hq */
    }
    return n;
}

double lp_binary_paper_bits(const lp_binary *w) {
    return (double)w->rows * (double)w->cols + (double)w->rows * (double)w->nsal +
           (double)(w->hbits - 1) * (double)w->nheld;
}

/* The row-kernel driver for w at level isa (cols is a multiple of 32: x
 * needs no padding beyond it). */
static lp_rowgemm driver(const lp_binary *w, lp_isa isa) {
    return (lp_rowgemm){.name = "binary", .w = w, .rows = w->rows, .cols = w->cols, .ldx = w->cols,
                        .max_t = LP_BINARY_MAX_T, .rows_fn = BY_ISA[isa].rows, .dequant = BY_ISA[isa].dequant};
}

void lp_binary_dequant(const lp_binary *w, int64_t r0, int64_t r1, float *out) {
    const lp_rowgemm g = driver(w, lp_cpu_isa());
    lp_rowgemm_dequant(&g, r0, r1, out);
}

lp_status lp_binary_gemm_ex(const lp_binary *w, const float *X, int64_t T, float *Y, lp_isa isa,
                            int64_t blas_min_tokens) {
    if ((int)isa < 0 || isa >= LP_ISA_N || !lp_cpu_supports(isa))
        return lp_fail(LP_ERR_UNSUPPORTED, "binary gemm: kernel level '%s' is not supported by this CPU",
                       lp_isa_name(isa));
    const lp_rowgemm g = driver(w, isa);
    return lp_rowgemm_run(&g, X, T, Y, blas_min_tokens > 0 ? blas_min_tokens : blas_min(w, isa));
}

/* ---- checkpoint I/O and the traits row ---- */

static size_t binary_nbytes(const void *d) { return lp_binary_nbytes(d); }

static double binary_paper_bits(const void *d) { return lp_binary_paper_bits(d); }

static void binary_describe(const void *d, char *buf, size_t n) {
    const lp_binary *w = d;
    /* the layout only (the same for every linear of a model; the salient
     * and held fractions differ per linear and are in the exact bytes) */
    const char *held = !w->held ? "" : w->hbits == 16 ? ", held f16 weights" : ", held 8-bit weights";
    if (w->block == w->cols)
        snprintf(buf, n, "binary per row, %d+%d groups%s%s", w->ngs, w->ngn, w->rc ? ", row x column scales" : "",
                 held);
    else
        snprintf(buf, n, "binary b%lld, %d+%d groups%s%s", (long long)w->block, w->ngs, w->ngn,
                 w->rc ? ", row x column scales" : "", held);
}

static lp_status binary_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    lp_binary_dequant(d, r0, r1, out);
    return LP_OK;
}

static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) {
    return lp_binary_gemm_ex(d, X, T, Y, LP_ISA_REF, 0);
}
static lp_status gemm_avx2(const void *d, const float *X, int64_t T, float *Y) {
    return lp_binary_gemm_ex(d, X, T, Y, LP_ISA_AVX2, 0);
}
static lp_status gemm_avx512(const void *d, const float *X, int64_t T, float *Y) {
    return lp_binary_gemm_ex(d, X, T, Y, LP_ISA_AVX512, 0);
}

static lp_status binary_save(const void *d, lp_st_writer *wr, const char *base, char *meta, size_t n) {
    const lp_binary *w = d;
    LP_TRY(lp_fmt_add(wr, base, ".s0", LP_DT_U32, w->rows, w->words, w->s0));
    if (has_b1(w)) LP_TRY(lp_fmt_add(wr, base, ".b1", LP_DT_U32, w->rows, w->words, w->b1));
    if (w->ngs) LP_TRY(lp_fmt_add(wr, base, ".colmask", LP_DT_U32, 1, w->words, w->colmask));
    if (w->ngs == 2) LP_TRY(lp_fmt_add(wr, base, ".b2", LP_DT_U32, w->rows, w->words2, w->b2));
    LP_TRY(lp_fmt_add(wr, base, ".rp", LP_DT_F16, w->rows, w->nblocks * w->npr, w->rp));
    if (w->rc) LP_TRY(lp_fmt_add(wr, base, ".cp", LP_DT_F16, w->ncp, w->cols, w->cp));
    if (w->held) {
        LP_TRY(lp_fmt_add(wr, base, ".hmask", LP_DT_U32, w->rows, w->words, w->hmask));
        if (w->hbits == 16) {
            LP_TRY(lp_fmt_add(wr, base, ".codes", LP_DT_F16, 1, w->nheld, w->codes16));
        } else {
            LP_TRY(lp_fmt_add(wr, base, ".codes", LP_DT_U8, 1, w->nheld, w->codes));
            LP_TRY(lp_fmt_add(wr, base, ".hq", LP_DT_F32, w->rows, 2, w->hq));
        }
    }
    /* "hbits" only for f16 held weights: 8-bit files stay as they were */
    snprintf(meta, n, "{\"format\":\"binary\",\"block\":%lld,\"ngs\":%d,\"ngn\":%d,\"rc\":%s,\"held\":%s%s}",
             (long long)w->block, w->ngs, w->ngn, w->rc ? "true" : "false", w->held ? "true" : "false",
             w->held && w->hbits == 16 ? ",\"hbits\":16" : "");
    return LP_OK;
}

/* "<file>: tensor \"<base><suffix>\"" for messages about a tensor's content. */
static const char *where(const lp_fmt_src *in, const char *base, const char *suffix, char *buf, size_t n) {
    char name[320];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    const char *file = lp_weights_file_of(in->w, name);
    snprintf(buf, n, "%s: tensor \"%s\"", file ? file : in->name, name);
    return buf;
}

/* Every f16 in p[0 .. n) finite; what = the tensor's name, rowlen = values
 * per row of it (for the message). */
static lp_status check_f16(const lp_fmt_src *in, const char *base, const char *suffix, const uint16_t *p, int64_t n,
                           int64_t rowlen, const char *unit) {
    for (int64_t i = 0; i < n; i++)
        if ((p[i] & 0x7c00u) == 0x7c00u) {
            char buf[400];
            return lp_fail(LP_ERR_FORMAT, "%s: %s [%lld, %lld] is %s (f16 0x%04x), expected a finite number",
                           where(in, base, suffix, buf, sizeof buf), unit, (long long)(i / rowlen),
                           (long long)(i % rowlen), (p[i] & 0x3ffu) ? "NaN" : "infinite", p[i]);
        }
    return LP_OK;
}

static lp_status load_tensors(const lp_fmt_src *in, const char *base, lp_binary *w) {
    const lp_tensor_view *t;
    char buf[400];
    const int64_t R = w->rows, W = w->words;
    LP_TRY(lp_fmt_tensor(in, base, ".s0", LP_DT_U32, R, W, &t));
    w->s0 = (uint32_t *)t->data; /* views never write: the const is cast away only to share the struct */
    if (has_b1(w)) {
        LP_TRY(lp_fmt_tensor(in, base, ".b1", LP_DT_U32, R, W, &t));
        w->b1 = (uint32_t *)t->data;
    }
    if (w->ngs) {
        LP_TRY(lp_fmt_tensor(in, base, ".colmask", LP_DT_U32, 1, W, &t));
        w->colmask = (uint32_t *)t->data;
    }
    set_salient(w);
    if (w->ngs == 2) {
        LP_TRY(lp_fmt_tensor(in, base, ".b2", LP_DT_U32, R, w->words2, &t));
        w->b2 = (uint32_t *)t->data;
        const uint32_t pad = w->nsal % 32 ? ~0u << (w->nsal % 32) : 0u;
        for (int64_t r = 0; pad && r < R; r++) {
            const uint32_t last = w->b2[r * w->words2 + w->words2 - 1];
            if (last & pad)
                return lp_fail(LP_ERR_FORMAT, "%s: row %lld has bits set past its %lld salient columns (last word "
                               "0x%08x, padding mask 0x%08x), expected 0", where(in, base, ".b2", buf, sizeof buf),
                               (long long)r, (long long)w->nsal, last, pad);
        }
    }
    LP_TRY(lp_fmt_tensor(in, base, ".rp", LP_DT_F16, R, w->nblocks * w->npr, &t));
    w->rp = (uint16_t *)t->data;
    LP_TRY(check_f16(in, base, ".rp", w->rp, R * w->nblocks * w->npr, w->nblocks * w->npr, "parameter [row, k]"));
    if (w->rc) {
        LP_TRY(lp_fmt_tensor(in, base, ".cp", LP_DT_F16, w->ncp, w->cols, &t));
        w->cp = (uint16_t *)t->data;
        LP_TRY(check_f16(in, base, ".cp", w->cp, (int64_t)w->ncp * w->cols, w->cols, "column scale [vector, column]"));
    }
    if (w->held) {
        LP_TRY(lp_fmt_tensor(in, base, ".hmask", LP_DT_U32, R, W, &t));
        w->hmask = (uint32_t *)t->data;
        w->nheld = popcount_words(w->hmask, R * W);
        char name[320];
        snprintf(name, sizeof name, "%s.codes", base);
        const lp_dtype cdt = w->hbits == 16 ? LP_DT_F16 : LP_DT_U8;
        const lp_tensor_view *c = lp_weights_find(in->w, name);
        if (c && c->dtype == cdt && c->ndim == 2 && c->shape[0] == 1 && c->shape[1] != w->nheld)
            return lp_fail(LP_ERR_FORMAT, "%s: holds %lld %s, but .hmask marks %lld held weights; expected one "
                           "per held weight", where(in, base, ".codes", buf, sizeof buf), (long long)c->shape[1],
                           w->hbits == 16 ? "f16 values" : "codes", (long long)w->nheld);
        LP_TRY(lp_fmt_tensor(in, base, ".codes", cdt, 1, w->nheld, &t));
        if (w->hbits == 16) {
            w->codes16 = (uint16_t *)t->data;
            LP_TRY(check_f16(in, base, ".codes", w->codes16, w->nheld, w->nheld > 0 ? w->nheld : 1,
                             "held value [0, k]"));
            return derive(w);
        }
        w->codes = (uint8_t *)t->data;
        LP_TRY(lp_fmt_tensor(in, base, ".hq", LP_DT_F32, R, 2, &t));
        w->hq = (float *)t->data;
        for (int64_t r = 0; r < R; r++) {
            const float S = w->hq[2 * r], Z = w->hq[2 * r + 1];
            if (!isfinite(S) || !(S >= 0.0f) || !isfinite(S * 255.0f))
                return lp_fail(LP_ERR_FORMAT, "%s: the scale S of row %lld is %g, expected a finite S >= 0 with "
                               "255 S finite", where(in, base, ".hq", buf, sizeof buf), (long long)r, (double)S);
            if (!(Z >= 0.0f && Z <= 255.0f) || Z != floorf(Z))
                return lp_fail(LP_ERR_FORMAT, "%s: the zero point Z of row %lld is %g, expected an integer in "
                               "[0, 255]", where(in, base, ".hq", buf, sizeof buf), (long long)r, (double)Z);
        }
    }
    return derive(w);
}

static lp_status binary_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows,
                             int64_t cols, void **data) {
    int64_t block, ngs, ngn, hbits = 8;
    bool rc, held;
    LP_TRY(lp_fmt_int(in, base, desc, "block", 1, INT32_MAX, &block));
    LP_TRY(lp_fmt_int(in, base, desc, "ngs", 0, 2, &ngs));
    LP_TRY(lp_fmt_int(in, base, desc, "ngn", 1, 2, &ngn));
    LP_TRY(lp_fmt_bool(in, base, desc, "rc", &rc));
    LP_TRY(lp_fmt_bool(in, base, desc, "held", &held));
    if (lp_json_get(desc, "hbits")) { /* absent: 8 (files written before hbits existed) */
        LP_TRY(lp_fmt_int(in, base, desc, "hbits", 8, 16, &hbits));
        if (hbits != 8 && hbits != 16)
            return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": hbits=%lld; expected 8 (codes on a per-row grid) or "
                           "16 (f16 values)", in->name, base, (long long)hbits);
    }
    const lp_binary_shape sh = {.block = block, .ngs = (int)ngs, .ngn = (int)ngn, .rc = rc, .held = held,
                                .hbits = (int)hbits};
    lp_binary *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = check_shape(LP_ERR_FORMAT, w, rows, cols, &sh);
    if (st != LP_OK) {
        free(w);
        return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    }
    st = load_tensors(in, base, w); /* w->owns = 0: a view */
    if (st != LP_OK) {
        lp_binary_free(w);
        free(w);
        return st;
    }
    *data = w;
    return LP_OK;
}

static void binary_free(void *d) {
    lp_binary_free(d);
    free(d);
}

const lp_format lp_format_binary = {
    .name = "binary",
    .nbytes = binary_nbytes,
    .describe = binary_describe,
    .dequant = binary_dequant,
    .gemm = {gemm_ref, gemm_avx2, gemm_avx512},
    .save = binary_save,
    .load = binary_load,
    .free = binary_free,
    .paper_bits = binary_paper_bits,
};
