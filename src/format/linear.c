/*
 * linear.c - Y = X W^T + b over the parts of W, and their checkpoint I/O
 * (linear.h). Every format-specific step goes through the part's traits row.
 */
#include "format/linear.h"

#include "core/status_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lp_status lp_linear_add_part(lp_linear *l, const lp_format *fmt, void *data) {
    if (l->nparts == LP_LINEAR_MAX_PARTS) {
        fmt->free(data);
        return lp_fail(LP_ERR_ARG, "a linear holds at most %d parts", LP_LINEAR_MAX_PARTS);
    }
    l->part[l->nparts++] = (lp_part){fmt, data, lp_format_gemm(fmt, lp_cpu_isa())};
    return LP_OK;
}

static void free_parts(lp_linear *l);

void lp_linear_set(lp_linear *l, const lp_format *fmt, void *data) {
    free_parts(l);
    l->part[0] = (lp_part){fmt, data, lp_format_gemm(fmt, lp_cpu_isa())};
    l->nparts = 1;
}

lp_status lp_linear_forward(const lp_linear *l, const float *X, int64_t T, float *Y) {
    LP_ASSERT(l->nparts >= 1);
    LP_TRY(l->part[0].gemm(l->part[0].data, X, T, Y));
    if (l->nparts > 1) {
        const size_t n = (size_t)(T * l->rows);
        float *tmp = malloc(n * sizeof(float));
        if (!tmp) return lp_fail(LP_ERR_NOMEM, "out of memory for a %lld x %lld product", (long long)T,
                                 (long long)l->rows);
        for (int k = 1; k < l->nparts; k++) {
            lp_status st = l->part[k].gemm(l->part[k].data, X, T, tmp);
            if (st != LP_OK) {
                free(tmp);
                return st;
            }
            for (size_t i = 0; i < n; i++) Y[i] += tmp[i];
        }
        free(tmp);
    }
    if (l->bias)
        for (int64_t t = 0; t < T; t++)
            for (int64_t r = 0; r < l->rows; r++) Y[t * l->rows + r] += l->bias[r];
    return LP_OK;
}

bool lp_linear_is(const lp_linear *l, const lp_format *fmt) { return l->nparts == 1 && l->part[0].fmt == fmt; }

void *lp_linear_data(const lp_linear *l, const lp_format *fmt) {
    return lp_linear_is(l, fmt) ? l->part[0].data : NULL;
}

size_t lp_linear_nbytes(const lp_linear *l) {
    size_t n = 0;
    for (int k = 0; k < l->nparts; k++) n += l->part[k].fmt->nbytes(l->part[k].data);
    return n;
}

double lp_linear_paper_bits(const lp_linear *l) {
    double b = 0.0;
    for (int k = 0; k < l->nparts; k++)
        b += l->part[k].fmt->paper_bits ? l->part[k].fmt->paper_bits(l->part[k].data)
                                        : 8.0 * (double)l->part[k].fmt->nbytes(l->part[k].data);
    return b;
}

int64_t lp_linear_nparams(const lp_linear *l) {
    int64_t n = 0;
    for (int i = 0; i < l->nparts; i++) {
        const lp_format *f = l->part[i].fmt;
        n += f->nparams ? f->nparams(l->part[i].data) : l->rows * l->cols;
    }
    return n;
}

lp_status lp_linear_dequant_rows(const lp_linear *l, int64_t r0, int64_t r1, float *out, float *tmp) {
    LP_TRY(l->part[0].fmt->dequant(l->part[0].data, r0, r1, out));
    const size_t n = (size_t)((r1 - r0) * l->cols);
    for (int k = 1; k < l->nparts; k++) {
        LP_TRY(l->part[k].fmt->dequant(l->part[k].data, r0, r1, tmp));
        for (size_t i = 0; i < n; i++) out[i] += tmp[i];
    }
    return LP_OK;
}

float *lp_linear_to_f32(const lp_linear *l) {
    const size_t n = (size_t)(l->rows * l->cols);
    float *w = malloc(n * sizeof(float)), *tmp = l->nparts > 1 ? malloc(n * sizeof(float)) : NULL;
    if (!w || (l->nparts > 1 && !tmp) || lp_linear_dequant_rows(l, 0, l->rows, w, tmp) != LP_OK) {
        free(w);
        w = NULL;
    }
    free(tmp);
    return w;
}

static void free_parts(lp_linear *l) {
    for (int k = 0; k < l->nparts; k++) l->part[k].fmt->free(l->part[k].data);
    memset(l->part, 0, sizeof l->part);
    l->nparts = 0;
}

void lp_linear_take_parts(lp_linear *dst, lp_linear *src) {
    LP_ASSERT(dst->rows == src->rows && dst->cols == src->cols);
    free_parts(dst);
    memcpy(dst->part, src->part, sizeof dst->part);
    dst->nparts = src->nparts;
    memset(src->part, 0, sizeof src->part);
    src->nparts = 0;
}

double lp_linear_rel_error(const lp_linear *l, const float *W) {
    float *D = lp_linear_to_f32(l);
    if (!D) return NAN;
    double num = 0, den = 0;
    for (int64_t i = 0; i < l->rows * l->cols; i++) {
        double d = (double)W[i] - D[i];
        num += d * d;
        den += (double)W[i] * W[i];
    }
    free(D);
    return den > 0 ? sqrt(num / den) : 0.0;
}

void lp_linear_free(lp_linear *l) {
    free_parts(l);
    free(l->bias_owned);
    memset(l, 0, sizeof *l);
}

void lp_linear_describe(const lp_linear *l, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < l->nparts && k < n; i++) {
        if (i) k += (size_t)snprintf(buf + k, n - k, " + ");
        if (k < n) l->part[i].fmt->describe(l->part[i].data, buf + k, n - k);
        k += strlen(buf + k);
    }
}

/* ---- checkpoint I/O ---- */

#define META_BYTES 512

lp_status lp_linear_save(const lp_linear *l, lp_st_writer *w, const char *base) {
    char key[320], meta[META_BYTES];
    snprintf(key, sizeof key, "llmpress.linear.%s", base);
    if (l->nparts == 1) {
        LP_TRY(l->part[0].fmt->save(l->part[0].data, w, base, meta, sizeof meta));
        return meta[0] ? lp_st_writer_meta(w, key, meta) : LP_OK;
    }
    char all[LP_LINEAR_MAX_PARTS * META_BYTES + 64];
    size_t k = (size_t)snprintf(all, sizeof all, "{\"format\":\"sum\",\"parts\":[");
    for (int i = 0; i < l->nparts; i++) {
        char pb[320];
        snprintf(pb, sizeof pb, "%s.p%d", base, i);
        LP_TRY(l->part[i].fmt->save(l->part[i].data, w, pb, meta, sizeof meta));
        k += (size_t)snprintf(all + k, sizeof all - k, "%s%s", i ? "," : "", meta[0] ? meta : "{\"format\":\"dense\"}");
    }
    snprintf(all + k, sizeof all - k, "]}");
    return lp_st_writer_meta(w, key, all);
}

/* One part described by d, its tensors under base. */
static lp_status load_part(const lp_fmt_src *in, const char *base, const lp_json *d, int64_t rows, int64_t cols,
                           lp_linear *out) {
    const char *name = lp_json_str(lp_json_get(d, "format"), "(none)");
    const lp_format *f = lp_format_find(name);
    if (!f || !strcmp(name, "sum"))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: linear \"%s\" has format \"%s\", which this version of llmpress "
                       "does not know", in->name, base, name);
    void *data = NULL;
    lp_status st = f->load(in, base, d, rows, cols, &data);
    if (st != LP_OK) return st;
    return lp_linear_add_part(out, f, data);
}

lp_status lp_linear_load_packed(const lp_fmt_src *in, const char *base, int64_t rows, int64_t cols, lp_linear *out) {
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = cols;
    char key[320];
    snprintf(key, sizeof key, "llmpress.linear.%s", base);
    const char *meta = lp_weights_meta(in->w, key);
    if (!meta) return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.weight\" is missing from the checkpoint", in->name, base);
    lp_json_doc *doc = NULL;
    lp_status st = lp_json_parse(meta, strlen(meta), key, &doc);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: safetensors metadata", in->name);
    const lp_json *d = lp_json_root(doc);
    if (!strcmp(lp_json_str(lp_json_get(d, "format"), ""), "sum")) {
        const lp_json *parts = lp_json_get(d, "parts");
        if (!parts || parts->type != LP_JSON_ARRAY || parts->n < 1 || parts->n > LP_LINEAR_MAX_PARTS)
            st = lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": a sum needs \"parts\", an array of 1 to %d "
                         "descriptions", in->name, base, LP_LINEAR_MAX_PARTS);
        for (int64_t i = 0; st == LP_OK && i < parts->n; i++) {
            char pb[320];
            snprintf(pb, sizeof pb, "%s.p%lld", base, (long long)i);
            st = load_part(in, pb, &parts->items[i], rows, cols, out);
        }
    } else {
        st = load_part(in, base, d, rows, cols, out);
    }
    lp_json_free(doc);
    if (st != LP_OK) lp_linear_free(out);
    return st;
}
