/*
 * sign.c - the sign format (layout and kernels in sign.h): allocation,
 * checked views of file buffers, the threaded drivers of dequantization and
 * products, and the traits row.
 *
 * Design: as qlut.c. Few tokens: x is copied once into a zero-padded buffer
 * xp (T, words * 32), so kernels read whole words and never see a ragged
 * row end; rows are cut into fixed tiles of ROW_TILE, one OpenMP `parallel
 * for` over the tiles, and in each tile the kernel reads each packed row once
 * for up to LP_SIGN_MAX_T tokens. Many tokens: tiles of BLAS_TILE rows are
 * dequantized into per-thread scratch and multiplied by one single-threaded
 * cblas_sgemm each, inside our loop (see qgroup_gemm.c). Tile boundaries are
 * fixed from row 0 and each output is computed by one thread in a fixed
 * order, so the thread count never changes a result.
 * Where the paths cross (BY_ISA below): single-threaded, llama-25m shapes
 * (1024 x 384, 384 x 1024), AMD EPYC (Zen 4): the AVX-512 kernel holds about
 * 40-45 GMAC/s from T = 4 on and sgemm only overtakes it near T = 128; the
 * AVX2 kernel (~23 GMAC/s) near T = 24. The reference is the specification,
 * not a fast path: it keeps the default of 16.
 */
#include "format/sign.h"

#include "core/half.h"
#include "core/status_impl.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROW_TILE = 16, BLAS_TILE = 64 };

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

void lp_sign_dequant(const lp_sign *w, int64_t r0, int64_t r1, float *out) {
    const lp_sign_dequant_fn dq = BY_ISA[lp_cpu_isa()].dequant;
    const int64_t ntiles = (r1 - r0 + ROW_TILE - 1) / ROW_TILE;
#pragma omp parallel for schedule(static) if (ntiles > 1 && (r1 - r0) * w->cols > (1 << 16))
    for (int64_t i = 0; i < ntiles; i++) {
        int64_t a = r0 + i * ROW_TILE, b = a + ROW_TILE < r1 ? a + ROW_TILE : r1;
        dq(w, a, b, out + (a - r0) * w->cols);
    }
}

/* 64-byte aligned scratch (aligned_alloc wants a multiple of the alignment). */
static float *scratch(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

static lp_status gemm_packed(lp_sign_rows_fn fn, const lp_sign *w, const float *X, int64_t T, float *Y) {
    const int64_t ldx = w->words * 32, R = w->rows;
    const size_t bytes = (size_t)(T * ldx) * sizeof(float);
    float *xp = scratch(bytes); /* (T, ldx): X zero-padded to whole words */
    if (!xp) return lp_fail(LP_ERR_NOMEM, "sign gemm: cannot allocate %zu bytes of input scratch", bytes);
    for (int64_t t = 0; t < T; t++) {
        memcpy(xp + t * ldx, X + t * w->cols, (size_t)w->cols * sizeof(float));
        memset(xp + t * ldx + w->cols, 0, (size_t)(ldx - w->cols) * sizeof(float));
    }
    const int64_t ntiles = (R + ROW_TILE - 1) / ROW_TILE;
#pragma omp parallel for schedule(dynamic, 4) if (ntiles > 1 && R * w->cols * T > (1 << 15))
    for (int64_t i = 0; i < ntiles; i++) {
        const int64_t r0 = i * ROW_TILE, r1 = r0 + ROW_TILE < R ? r0 + ROW_TILE : R;
        for (int64_t t0 = 0; t0 < T; t0 += LP_SIGN_MAX_T) {
            const int64_t n = T - t0 < LP_SIGN_MAX_T ? T - t0 : LP_SIGN_MAX_T;
            fn(w, n, xp + t0 * ldx, ldx, Y + t0 * R, R, r0, r1);
        }
    }
    free(xp);
    return LP_OK;
}

static lp_status gemm_blas(lp_sign_dequant_fn dq, const lp_sign *w, const float *X, int64_t T, float *Y) {
    if (T > INT_MAX) return lp_fail(LP_ERR_ARG, "sign gemm: T = %lld tokens, expected < 2^31", (long long)T);
    const int64_t R = w->rows, C = w->cols, ntiles = (R + BLAS_TILE - 1) / BLAS_TILE;
    const int nth = omp_get_max_threads();
    const size_t per = (size_t)(BLAS_TILE * C); /* floats of one (BLAS_TILE, C) tile */
    float *D = scratch(per * (size_t)nth * sizeof(float));
    if (!D) return lp_fail(LP_ERR_NOMEM, "sign gemm: cannot allocate %d x %zu bytes for dequantized tiles", nth,
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

lp_status lp_sign_gemm_ex(const lp_sign *w, const float *X, int64_t T, float *Y, lp_isa isa,
                          int64_t blas_min_tokens) {
    if ((int)isa < 0 || isa >= LP_ISA_N || !lp_cpu_supports(isa))
        return lp_fail(LP_ERR_UNSUPPORTED, "sign gemm: kernel level '%s' is not supported by this CPU",
                       lp_isa_name(isa));
    if (T < 0) return lp_fail(LP_ERR_ARG, "sign gemm: T = %lld tokens, expected >= 0", (long long)T);
    if (T == 0) return LP_OK;
    if (T < (blas_min_tokens > 0 ? blas_min_tokens : BY_ISA[isa].blas_min_tokens))
        return gemm_packed(BY_ISA[isa].rows, w, X, T, Y);
    return gemm_blas(BY_ISA[isa].dequant, w, X, T, Y);
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
