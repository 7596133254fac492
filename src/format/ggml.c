/*
 * ggml.c - the ggml format (layout in ggml.h): parts made from ggml blocks
 * (views of file bytes, checked as untrusted input) or by quantizing an f32
 * weight, their dequantization and reference product, checkpoint I/O and
 * the traits row.
 *
 * Design: nothing here knows a block's layout beyond where its f16 scales
 *   sit (for validation, from ggml-common.h's structs); values come from
 *   lp_ggml_dequant_row. The reference product dequantizes tiles of rows
 *   and calls sgemm (rowgemm.h's many-token path, used for every T); the
 *   AVX2 and AVX-512 rows take fewer than 16 tokens from the blocks
 *   (ggml_kernels.h).
 */
#include "format/ggml.h"
#include "format/ggml_kernels.h"
#include "format/ggml_q8.h"
#include "llmpress/model.h"

#include "core/cpu.h"
#include "core/half.h"
#include "core/status_impl.h"
#include "format/rowgemm.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shapes and validation ---- */

static const char *type_name(int t) {
    const char *n = lp_ggml_type_of(t).name;
    return n ? n : "unknown";
}

/* Type and shape; st is LP_ERR_ARG for a caller's arguments, LP_ERR_FORMAT
 * for a file's. *row_bytes receives the bytes of one row. */
static lp_status check_shape(lp_status st, int type, int64_t rows, int64_t cols, size_t *row_bytes) {
    if (!lp_ggml_can_dequant(type))
        return lp_fail(st, "ggml: type %d (%s) is not one we handle; expected F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                       "Q5_0, Q5_1, IQ4_NL or Q2_K .. Q6_K", type, type_name(type));
    const lp_ggml_type_info ti = lp_ggml_type_of(type);
    if (rows < 1 || cols < 1 || rows > INT_MAX || cols > INT_MAX || cols % ti.block)
        return lp_fail(st, "ggml %s: shape %lld x %lld; expected 1 .. 2^31 - 1 rows and columns, columns a multiple "
                       "of %d (the type's block)", ti.name, (long long)rows, (long long)cols, ti.block);
    const uint64_t rb = lp_ggml_row_bytes(type, cols);
    if (rb == 0 || (uint64_t)rows > (uint64_t)INT64_MAX / rb)
        return lp_fail(st, "ggml %s: %lld rows of %llu bytes do not fit in memory", ti.name, (long long)rows,
                       (unsigned long long)rb);
    *row_bytes = (size_t)rb;
    return LP_OK;
}

/* Byte offsets of the f16 scales in one block of t (ggml-common.h), -1 ends. */
static const int *scale_offsets(int t) {
    static const int D0[] = {0, -1}, DM0[] = {0, 2, -1}, Q2K[] = {80, 82, -1}, Q3K[] = {108, -1},
                     Q6K[] = {208, -1};
    switch (t) {
    case LP_GGML_Q8_0:
    case LP_GGML_Q4_0:
    case LP_GGML_Q5_0:
    case LP_GGML_IQ4_NL: return D0;
    case LP_GGML_Q4_1:
    case LP_GGML_Q5_1:
    case LP_GGML_Q4_K:
    case LP_GGML_Q5_K: return DM0;
    case LP_GGML_Q2_K: return Q2K;
    case LP_GGML_Q3_K: return Q3K;
    case LP_GGML_Q6_K: return Q6K;
    default: return NULL;
    }
}

/* The first non-finite stored float of the blocks (an f16 scale, or a value
 * of a plain type), as ggml_validate_row_data checks: LP_ERR_FORMAT. */
static lp_status check_finite(const lp_ggml_part *p) {
    const lp_ggml_type_info ti = lp_ggml_type_of(p->type);
    const int64_t nb = p->cols / ti.block; /* blocks (or values) per row */
    const int *off = scale_offsets(p->type);
    for (int64_t r = 0; r < p->rows; r++) {
        const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *blk = row + (size_t)b * (size_t)ti.bytes;
            if (p->type == LP_GGML_F32) {
                float v;
                memcpy(&v, blk, sizeof v);
                if (isfinite(v)) continue;
                return lp_fail(LP_ERR_FORMAT, "ggml F32: value [row, col] [%lld, %lld] is %s; expected a finite number",
                               (long long)r, (long long)b, isnan(v) ? "NaN" : "infinite");
            }
            for (int k = 0; off ? off[k] >= 0 : k < 1; k++) {
                const int o = off ? off[k] : 0;
                const uint16_t h = (uint16_t)(blk[o] | blk[o + 1] << 8);
                const int bf = p->type == LP_GGML_BF16;
                if ((h & (bf ? 0x7f80u : 0x7c00u)) != (bf ? 0x7f80u : 0x7c00u)) continue;
                if (!off)
                    return lp_fail(LP_ERR_FORMAT, "ggml %s: value [row, col] [%lld, %lld] is 0x%04x (%s); expected "
                                   "a finite number", ti.name, (long long)r, (long long)b, h,
                                   (h & (bf ? 0x7fu : 0x3ffu)) ? "NaN" : "infinite");
                return lp_fail(LP_ERR_FORMAT, "ggml %s: row %lld, block %lld: f16 %s at byte %d is 0x%04x (%s); "
                               "expected a finite number", ti.name, (long long)r, (long long)b,
                               k == 0 ? "scale d" : "min dmin", o, h, (h & 0x3ffu) ? "NaN" : "infinite");
            }
        }
    }
    return LP_OK;
}

/* ---- constructors ---- */

static lp_ggml_part *new_part(int type, int64_t rows, int64_t cols, size_t row_bytes) {
    lp_ggml_part *p = calloc(1, sizeof *p);
    if (p) *p = (lp_ggml_part){.type = type, .rows = rows, .cols = cols, .row_bytes = row_bytes};
    return p;
}

lp_status lp_ggml_part_view(int type, int64_t rows, int64_t cols, const void *blocks, lp_ggml_part **out) {
    *out = NULL;
    size_t rb;
    LP_TRY(check_shape(LP_ERR_FORMAT, type, rows, cols, &rb));
    if (!blocks) return lp_fail(LP_ERR_FORMAT, "ggml %s: no blocks", type_name(type));
    lp_ggml_part *p = new_part(type, rows, cols, rb);
    if (!p) return lp_fail(LP_ERR_NOMEM, "out of memory");
    p->blocks = blocks;
    const lp_status st = check_finite(p);
    if (st != LP_OK) {
        free(p);
        return st;
    }
    *out = p;
    return LP_OK;
}

lp_status lp_ggml_part_alloc(int type, int64_t rows, int64_t cols, lp_ggml_part **out) {
    *out = NULL;
    size_t rb;
    if (!lp_ggml_can_quant(type))
        return lp_fail(LP_ERR_ARG, "ggml: cannot quantize to type %d (%s)", type, type_name(type));
    LP_TRY(check_shape(LP_ERR_ARG, type, rows, cols, &rb));
    lp_ggml_part *p = new_part(type, rows, cols, rb);
    uint8_t *b = calloc((size_t)rows, rb);
    if (!p || !b) {
        free(p);
        free(b);
        return lp_fail(LP_ERR_NOMEM, "ggml %s: out of memory for %lld x %lld weights (%zu bytes)", type_name(type),
                       (long long)rows, (long long)cols, (size_t)rows * rb);
    }
    p->blocks = p->owned = b;
    *out = p;
    return LP_OK;
}

uint8_t *lp_ggml_part_row(lp_ggml_part *p, int64_t r) { return p->owned ? p->owned + (size_t)r * p->row_bytes : NULL; }

lp_status lp_ggml_part_quantize(int type, const float *W, const float *imp, int64_t rows, int64_t cols,
                                lp_ggml_part **out) {
    LP_TRY(lp_ggml_part_alloc(type, rows, cols, out));
    lp_ggml_part *p = *out;
#pragma omp parallel for schedule(dynamic, 16) if (rows * cols >= (1 << 16))
    for (int64_t r = 0; r < rows; r++) lp_ggml_quantize_row(type, W + r * cols, imp, lp_ggml_part_row(p, r), cols);
    return LP_OK;
}

void lp_ggml_part_free(lp_ggml_part *p) {
    if (!p) return;
    free(p->owned);
    free(p);
}

size_t lp_ggml_part_nbytes(const lp_ggml_part *p) { return (size_t)p->rows * p->row_bytes; }

/* ---- dequantization and the product ---- */

/* Serial: out ((r1 - r0) x cols) = rows [r0, r1). */
static void dequant_rows(const void *w, int64_t r0, int64_t r1, float *out) {
    const lp_ggml_part *p = w;
    for (int64_t r = r0; r < r1; r++)
        lp_ggml_dequant_row(p->type, p->blocks + (size_t)r * p->row_bytes, out + (r - r0) * p->cols, p->cols);
}

static lp_rowgemm driver(const lp_ggml_part *p) {
    return (lp_rowgemm){.name = "ggml", .w = p, .rows = p->rows, .cols = p->cols, .ldx = p->cols, .max_t = 1,
                        .rows_fn = NULL, .dequant = dequant_rows};
}

void lp_ggml_part_dequant(const lp_ggml_part *p, int64_t r0, int64_t r1, float *out) {
    lp_rowgemm g = driver(p);
    /* the same values by vector code where the CPU has it (ggml_kernels.h): head tiles in
     * scoring and any materialization read whole matrices this way */
    if (lp_ggml_kernels_have(p->type) && lp_cpu_isa() >= LP_ISA_AVX2) g.dequant = lp_ggml_dequant_avx2;
    lp_rowgemm_dequant(&g, r0, r1, out);
}

lp_status lp_ggml_part_gemm(const lp_ggml_part *p, const float *X, int64_t T, float *Y) {
    const lp_rowgemm g = driver(p);
    return lp_rowgemm_run(&g, X, T, Y, 1); /* from one token on: dequantized tiles + sgemm */
}

/* ---- checkpoint I/O and the traits row ---- */

static size_t ggml_nbytes(const void *d) { return lp_ggml_part_nbytes(d); }

static void ggml_describe(const void *d, char *buf, size_t n) {
    snprintf(buf, n, "ggml %s", type_name(((const lp_ggml_part *)d)->type));
}

static lp_status ggml_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    lp_ggml_part_dequant(d, r0, r1, out);
    return LP_OK;
}

static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) { return lp_ggml_part_gemm(d, X, T, Y); }

/* AVX2 / AVX-512: quantized rows (every type but F32 / F16 / BF16) multiplied from their blocks for fewer
 * than 16 tokens (ggml_kernels.h), and from 16 on dequantized by vector code (the reference's values) for
 * the GEMM; plain types as the reference. */
#define GGML_ROWS_MAX_TOKENS 16
static lp_status gemm_rows(const lp_ggml_part *p, const float *X, int64_t T, float *Y, lp_rows_fn rows) {
    if (!lp_ggml_rows_has(p->type, p->cols)) return lp_ggml_part_gemm(p, X, T, Y);
    lp_rowgemm g = driver(p);
    g.rows_fn = rows;
    g.max_t = 4;
    g.dequant = lp_ggml_dequant_avx2; /* the many-token path's tiles, bit for bit the reference's */
    return lp_rowgemm_run(&g, X, T, Y, GGML_ROWS_MAX_TOKENS);
}

static lp_status gemm_avx2(const void *d, const float *X, int64_t T, float *Y) {
    return gemm_rows(d, X, T, Y, lp_ggml_rows_avx2);
}

/* 8-bit activations asked for (lp_activations): every quantized type
 * through ggml_q8.h, one token under q8 and q8-all, several under q8-all;
 * F16 / BF16 / F32 as always. */
static lp_status gemm_avx512(const void *d, const float *X, int64_t T, float *Y) {
    const lp_act act = lp_activations();
    if (act != LP_ACT_F32 && lp_ggml_q8_supported(d)) {
        if (T == 1) return lp_ggml_gemv_q8(d, X, Y);
        if (act == LP_ACT_Q8_ALL) return lp_ggml_gemm_q8(d, X, T, Y);
    }
    return gemm_rows(d, X, T, Y, lp_ggml_rows_avx512);
}

static lp_status ggml_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_ggml_part *p = d;
    LP_TRY(lp_fmt_add(w, base, ".blocks", LP_DT_U8, p->rows, (int64_t)p->row_bytes, p->blocks));
    snprintf(meta, n, "{\"format\":\"ggml\",\"type\":\"%s\"}", type_name(p->type));
    return LP_OK;
}

static lp_status ggml_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                           void **data) {
    *data = NULL;
    const lp_json *v = lp_json_get(desc, "type");
    const char *name = lp_json_str(v, NULL);
    const int type = name ? lp_ggml_type_by_name(name) : -1;
    if (type < 0 || !lp_ggml_can_dequant(type))
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": ggml type is %s%s%s; expected one of F32, F16, BF16, Q8_0, "
                       "Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K", in->name, base,
                       name ? "\"" : "", name ? name : v ? "not a string" : "missing", name ? "\"" : "");
    size_t rb;
    lp_status st = check_shape(LP_ERR_FORMAT, type, rows, cols, &rb);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    const lp_tensor_view *t;
    LP_TRY(lp_fmt_tensor(in, base, ".blocks", LP_DT_U8, rows, (int64_t)rb, &t));
    lp_ggml_part *p;
    st = lp_ggml_part_view(type, rows, cols, t->data, &p);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: tensor \"%s\"", lp_weights_file_of(in->w, t->name), t->name);
    *data = p;
    return LP_OK;
}

static void ggml_free(void *d) { lp_ggml_part_free(d); }

const lp_format lp_format_ggml = {
    .name = "ggml",
    .nbytes = ggml_nbytes,
    .describe = ggml_describe,
    .dequant = ggml_dequant,
    .gemm = {gemm_ref, gemm_avx2, gemm_avx512},
    .save = ggml_save,
    .load = ggml_load,
    .free = ggml_free,
};
