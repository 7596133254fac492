/*
 * sparse.c - the kept values of the pruned formats (sparse.h): settings,
 * storage, filling from a method's arrays with checks, checkpoint tensors
 * and their validation as untrusted input.
 */
#include "format/sparse.h"

#include "core/half.h"
#include "core/status_impl.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dtype_json(lp_dtype dt) { return dt == LP_DT_BF16 ? "bf16" : "f16"; }

lp_status lp_sparse_resolve(const lp_sparse_values *v, int64_t cols, int unit, const char *who, lp_status st,
                            lp_sparse_values *out) {
    if (!v) return lp_fail(st, "%s: no value settings given", who);
    lp_sparse_values r = *v;
    if (v->bits == 16) {
        if (v->dtype != LP_DT_BF16 && v->dtype != LP_DT_F16)
            return lp_fail(st, "%s: bits 16 with dtype %s, expected BF16 or F16", who, lp_dtype_name(v->dtype));
        r.group = (int)cols;
    } else if (v->bits >= 2 && v->bits <= 8) {
        if (v->group == -1 || v->group >= cols) r.group = (int)cols;
        else if (v->group < unit || v->group % unit)
            return lp_fail(st, "%s: group = %d with %lld columns, expected -1 (one grid per row), >= cols or a "
                           "positive multiple of %d", who, v->group, (long long)cols, unit);
        r.dtype = LP_DT_U8;
    } else {
        return lp_fail(st, "%s: bits = %d, expected 16 (16-bit floats) or 2..8 (codes on a grid)", who, v->bits);
    }
    *out = r;
    return LP_OK;
}

static lp_sv_kind kind_of(int bits, lp_dtype dt) {
    if (bits == 16) return dt == LP_DT_BF16 ? LP_SV_BF16 : LP_SV_F16;
    return bits == 8 ? LP_SV_U8 : bits == 4 ? LP_SV_U4 : LP_SV_OTHER;
}

/* The shape part of a store for resolved settings rv. */
static void shape(lp_sparse_store *s, const lp_sparse_values *rv, int64_t cols, int64_t count) {
    memset(s, 0, sizeof *s);
    s->bits = rv->bits;
    s->dtype = rv->bits == 16 ? rv->dtype : LP_DT_U8;
    s->group = rv->group;
    s->ngroups = rv->bits == 16 ? 1 : (cols + rv->group - 1) / rv->group;
    s->count = count;
    s->kind = kind_of(rv->bits, rv->dtype);
}

lp_status lp_sparse_alloc(lp_sparse_store *s, const lp_sparse_values *rv, int64_t rows, int64_t cols, int64_t count,
                          const char *who) {
    shape(s, rv, cols, count);
    int bad;
    if (s->bits == 16) {
        s->v16 = calloc(count ? (size_t)count : 1, 2);
        bad = !s->v16;
    } else {
        s->codes = calloc(count ? lp_sparse_code_bytes(count, s->bits) : 1, 1);
        s->scales = calloc((size_t)(rows * s->ngroups), 2);
        s->zeros = calloc((size_t)(rows * s->ngroups), 1);
        bad = !s->codes || !s->scales || !s->zeros;
    }
    if (bad) {
        lp_sparse_free(s);
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory for %lld kept values", who, (long long)count);
    }
    return LP_OK;
}

void lp_sparse_free(lp_sparse_store *s) {
    free(s->v16);
    free(s->codes);
    free(s->scales);
    free(s->zeros);
    s->v16 = s->scales = NULL;
    s->codes = s->zeros = NULL;
}

size_t lp_sparse_nbytes(const lp_sparse_store *s, int64_t rows) {
    if (s->bits == 16) return (size_t)s->count * 2;
    return lp_sparse_code_bytes(s->count, s->bits) + (size_t)(rows * s->ngroups) * 3;
}

static void put_code(uint8_t *codes, int bits, int64_t i, unsigned q) {
    const int64_t p = i * bits;
    const int sh = (int)(p & 7);
    codes[p >> 3] |= (uint8_t)(q << sh);
    if (sh + bits > 8) codes[(p >> 3) + 1] |= (uint8_t)(q >> (8 - sh));
}

lp_status lp_sparse_fill(lp_sparse_store *s, int64_t rows, int64_t cols, const uint8_t *keep, const float *W,
                         const uint8_t *codes, const float *scales, const int *zeros, const char *who) {
    const unsigned maxq = s->bits == 16 ? 0 : (1u << s->bits) - 1u;
    if (s->bits == 16 && !W) return lp_fail(LP_ERR_ARG, "%s: bits 16 needs the values W (got NULL)", who);
    if (s->bits < 16) {
        if (!codes || !scales || !zeros)
            return lp_fail(LP_ERR_ARG, "%s: bits %d needs codes, scales and zeros (got %s)", who, s->bits,
                           !codes ? "no codes" : !scales ? "no scales" : "no zeros");
        for (int64_t i = 0; i < rows * s->ngroups; i++) {
            const uint16_t h = lp_f32_to_f16(scales[i]);
            if (!isfinite(scales[i]) || lp_f16_to_f32(h) != scales[i] || (h & 0x7c00u) == 0x7c00u)
                return lp_fail(LP_ERR_ARG, "%s: the scale of row %lld group %lld is %.9g, expected a finite number "
                               "exactly representable in f16", who, (long long)(i / s->ngroups),
                               (long long)(i % s->ngroups), (double)scales[i]);
            if (zeros[i] < 0 || (unsigned)zeros[i] > maxq)
                return lp_fail(LP_ERR_ARG, "%s: the zero of row %lld group %lld is %d, expected 0..%u (bits %d)", who,
                               (long long)(i / s->ngroups), (long long)(i % s->ngroups), zeros[i], maxq, s->bits);
            s->scales[i] = h;
            s->zeros[i] = (uint8_t)zeros[i];
        }
    }
    int64_t i = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const int64_t at = r * cols + c;
            if (!keep[at]) continue;
            LP_ASSERT(i < s->count); /* the format counted the kept weights */
            if (s->bits == 16) {
                const uint16_t h = s->dtype == LP_DT_BF16 ? lp_f32_to_bf16(W[at]) : lp_f32_to_f16(W[at]);
                const float back = s->dtype == LP_DT_BF16 ? lp_bf16_to_f32(h) : lp_f16_to_f32(h);
                if (!isfinite(back))
                    return lp_fail(LP_ERR_ARG, "%s: the kept weight at row %lld column %lld is %.9g, %s in %s; "
                                   "expected a finite value%s", who, (long long)r, (long long)c, (double)W[at],
                                   isfinite(W[at]) ? "which overflows" : "not finite", lp_dtype_name(s->dtype),
                                   s->dtype == LP_DT_F16 && isfinite(W[at]) ? " (hint: store bf16)" : "");
                s->v16[i] = h;
            } else {
                if (codes[at] > maxq)
                    return lp_fail(LP_ERR_ARG, "%s: the code at row %lld column %lld is %u, expected 0..%u (bits %d)",
                                   who, (long long)r, (long long)c, codes[at], maxq, s->bits);
                put_code(s->codes, s->bits, i, codes[at]);
            }
            i++;
        }
    LP_ASSERT(i == s->count);
    return LP_OK;
}

void lp_sparse_meta(const lp_sparse_store *s, char *buf, size_t n) {
    if (s->bits == 16) snprintf(buf, n, "\"bits\":16,\"dtype\":\"%s\"", dtype_json(s->dtype));
    else snprintf(buf, n, "\"bits\":%d,\"group\":%d", s->bits, s->group);
}

void lp_sparse_describe(const lp_sparse_store *s, int64_t cols, char *buf, size_t n) {
    if (s->bits == 16) snprintf(buf, n, "%s", dtype_json(s->dtype));
    else if (s->group >= cols) snprintf(buf, n, "w%d per-row", s->bits);
    else snprintf(buf, n, "w%d g%d", s->bits, s->group);
}

lp_status lp_sparse_save(const lp_sparse_store *s, lp_st_writer *w, const char *base, int64_t rows) {
    if (s->bits == 16) return lp_fmt_add(w, base, ".values", s->dtype, 1, s->count, s->v16);
    LP_TRY(lp_fmt_add(w, base, ".codes", LP_DT_U8, 1, (int64_t)lp_sparse_code_bytes(s->count, s->bits), s->codes));
    LP_TRY(lp_fmt_add(w, base, ".scales", LP_DT_F16, rows, s->ngroups, s->scales));
    return lp_fmt_add(w, base, ".zeros", LP_DT_U8, rows, s->ngroups, s->zeros);
}

lp_status lp_sparse_load_settings(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t cols, int unit,
                                  const char *who, lp_sparse_values *out) {
    int64_t bits, group = -1;
    LP_TRY(lp_fmt_int(in, base, desc, "bits", 2, 16, &bits));
    lp_sparse_values v = {.bits = (int)bits, .dtype = LP_DT_U8, .group = -1};
    if (bits > 8 && bits < 16) { /* before asking for a group it would not have */
        lp_status st = lp_sparse_resolve(&v, cols, unit, who, LP_ERR_FORMAT, out);
        return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    }
    if (bits == 16) {
        const lp_json *d = lp_json_get(desc, "dtype");
        const char *name = d && d->type == LP_JSON_STRING ? d->str : NULL;
        if (!name || (strcmp(name, "bf16") && strcmp(name, "f16")))
            return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": dtype is %s%s%s; expected \"bf16\" or \"f16\"", in->name,
                           base, name ? "\"" : "", name ? name : d ? "not a string" : "missing", name ? "\"" : "");
        v.dtype = strcmp(name, "bf16") ? LP_DT_F16 : LP_DT_BF16;
    } else {
        LP_TRY(lp_fmt_int(in, base, desc, "group", 1, INT32_MAX, &group));
        v.group = (int)group;
    }
    lp_status st = lp_sparse_resolve(&v, cols, unit, who, LP_ERR_FORMAT, out);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    return LP_OK;
}

lp_status lp_sparse_load(const lp_fmt_src *in, const char *base, const lp_sparse_values *rv, int64_t rows,
                         int64_t cols, int64_t count, lp_sparse_store *s) {
    shape(s, rv, cols, count);
    const lp_tensor_view *t;
    if (s->bits == 16) {
        LP_TRY(lp_fmt_tensor(in, base, ".values", s->dtype, 1, count, &t));
        const uint16_t *v = t->data, em = s->dtype == LP_DT_BF16 ? 0x7f80u : 0x7c00u;
        const uint16_t mm = s->dtype == LP_DT_BF16 ? 0x007fu : 0x03ffu;
        for (int64_t i = 0; i < count; i++)
            if ((v[i] & em) == em)
                return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.values\": value %lld is %s (%s 0x%04x), expected a "
                               "finite number", in->name, base, (long long)i, (v[i] & mm) ? "NaN" : "infinite",
                               lp_dtype_name(s->dtype), v[i]);
        s->v16 = (uint16_t *)t->data; /* views never write: the const is cast away only to share the struct */
        return LP_OK;
    }
    const size_t nb = lp_sparse_code_bytes(count, s->bits);
    const lp_tensor_view *ts, *tz;
    LP_TRY(lp_fmt_tensor(in, base, ".codes", LP_DT_U8, 1, (int64_t)nb, &t));
    LP_TRY(lp_fmt_tensor(in, base, ".scales", LP_DT_F16, rows, s->ngroups, &ts));
    LP_TRY(lp_fmt_tensor(in, base, ".zeros", LP_DT_U8, rows, s->ngroups, &tz));
    const uint8_t *c = t->data, *z = tz->data;
    const uint16_t *a = ts->data;
    const int used = (int)((count * s->bits) % 8); /* bits of the last byte that hold codes (0: all) */
    if (nb && used && (c[nb - 1] >> used))
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.codes\": the last byte is 0x%02x, bits %d..7 past the last "
                       "code set; expected 0", in->name, base, c[nb - 1], used);
    for (int64_t i = 0; i < rows * s->ngroups; i++) {
        if ((a[i] & 0x7c00u) == 0x7c00u)
            return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.scales\": the scale of row %lld group %lld is %s (f16 "
                           "0x%04x), expected a finite number", in->name, base, (long long)(i / s->ngroups),
                           (long long)(i % s->ngroups), (a[i] & 0x3ffu) ? "NaN" : "infinite", a[i]);
        if (z[i] >> s->bits)
            return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.zeros\": the zero of row %lld group %lld is %u, expected "
                           "0..%u (bits %d)", in->name, base, (long long)(i / s->ngroups),
                           (long long)(i % s->ngroups), z[i], (1u << s->bits) - 1u, s->bits);
    }
    s->codes = (uint8_t *)c;
    s->scales = (uint16_t *)a;
    s->zeros = (uint8_t *)z;
    return LP_OK;
}

float lp_sparse_scale(const lp_sparse_store *s, int64_t r, int64_t g) {
    return s->bits == 16 ? 1.0f : lp_f16_to_f32(s->scales[r * s->ngroups + g]);
}

float lp_sparse_d(const lp_sparse_store *s, int64_t i, int64_t r, int64_t g) {
    if (s->bits == 16) return s->dtype == LP_DT_BF16 ? lp_bf16_to_f32(s->v16[i]) : lp_f16_to_f32(s->v16[i]);
    return (float)((int)lp_sparse_code(s->codes, s->bits, i) - (int)s->zeros[r * s->ngroups + g]);
}

float lp_sparse_value(const lp_sparse_store *s, int64_t i, int64_t r, int64_t g) {
    if (s->bits == 16) return lp_sparse_d(s, i, r, g);
    return lp_sparse_scale(s, r, g) * lp_sparse_d(s, i, r, g);
}

/* lp_sparse_expand8, written out by the preprocessor: E(b, j) for byte b, lane j. */
#define POP8(x) (((x) & 1) + ((x) >> 1 & 1) + ((x) >> 2 & 1) + ((x) >> 3 & 1) + ((x) >> 4 & 1) + ((x) >> 5 & 1) + \
                 ((x) >> 6 & 1) + ((x) >> 7 & 1))
#define E(b, j) (((b) >> (j) & 1) ? 0x80000000u | (unsigned)POP8((b) & ((1 << (j)) - 1)) : 0u)
#define ROW(b) {E(b, 0), E(b, 1), E(b, 2), E(b, 3), E(b, 4), E(b, 5), E(b, 6), E(b, 7)}
#define R4(b) ROW(b), ROW((b) + 1), ROW((b) + 2), ROW((b) + 3)
#define R16(b) R4(b), R4((b) + 4), R4((b) + 8), R4((b) + 12)
#define R64(b) R16(b), R16((b) + 16), R16((b) + 32), R16((b) + 48)
const uint32_t lp_sparse_expand8[256][8] __attribute__((aligned(32))) = {R64(0), R64(64), R64(128), R64(192)};
