/*
 * format.c - the format table and the helpers formats share for their
 * checkpoint tensors (format.h).
 */
#include "format/format.h"

#include "core/status_impl.h"

#include <stdio.h>
#include <string.h>

extern const lp_format lp_format_dense, lp_format_qgroup, lp_format_qmix, lp_format_qlut;
extern const lp_format lp_format_sign, lp_format_ternary, lp_format_binary;
extern const lp_format lp_format_dense16, lp_format_lowrank;
extern const lp_format lp_format_nm, lp_format_bitmap;
extern const lp_format lp_format_ggml;
extern const lp_format lp_format_gptq;

/* One row per format. Names are written into checkpoints: never rename one. */
const lp_format *const lp_formats[] = {
    &lp_format_dense, &lp_format_qgroup, &lp_format_qmix, &lp_format_qlut,
    &lp_format_sign, &lp_format_ternary, &lp_format_binary,
    &lp_format_dense16, &lp_format_lowrank,
    &lp_format_nm, &lp_format_bitmap,
    &lp_format_ggml,
    &lp_format_gptq,
    NULL,
};

const lp_format *lp_format_find(const char *name) {
    for (int i = 0; name && lp_formats[i]; i++)
        if (!strcmp(lp_formats[i]->name, name)) return lp_formats[i];
    return NULL;
}

lp_gemm_fn lp_format_gemm(const lp_format *f, lp_isa isa) {
    for (int i = isa; i >= 0; i--)
        if (f->gemm[i]) return f->gemm[i];
    LP_ASSERT(!"a format without a reference product");
    return NULL;
}

lp_status lp_fmt_tensor(const lp_fmt_src *in, const char *base, const char *suffix, lp_dtype dt, int64_t d0,
                        int64_t d1, const lp_tensor_view **out) {
    char name[320];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    const lp_tensor_view *t = lp_weights_find(in->w, name);
    if (!t) return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is missing", in->name, name);
    if (t->dtype != dt || t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is %s %dD [%lld, %lld]; expected %s [%lld, %lld]",
                       lp_weights_file_of(in->w, name), name, lp_dtype_name(t->dtype), t->ndim,
                       (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0), lp_dtype_name(dt),
                       (long long)d0, (long long)d1);
    if ((uintptr_t)t->data % lp_dtype_size(dt))
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is not aligned to %zu bytes", lp_weights_file_of(in->w, name),
                       name, lp_dtype_size(dt));
    *out = t;
    return LP_OK;
}

int lp_fmt_version(const lp_fmt_src *in) {
    const char *v = in->w ? lp_weights_meta(in->w, "llmpress.format_version") : NULL;
    return v && !strcmp(v, "1") ? 1 : LP_FORMAT_VERSION;
}

lp_status lp_fmt_add(lp_st_writer *w, const char *base, const char *suffix, lp_dtype dt, int64_t d0, int64_t d1,
                     const void *data) {
    char name[320];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    const int64_t shp[2] = {d0, d1};
    return lp_st_writer_add(w, name, dt, 2, shp, data);
}

lp_status lp_fmt_int(const lp_fmt_src *in, const char *base, const lp_json *desc, const char *key, int64_t lo,
                     int64_t hi, int64_t *out) {
    const lp_json *v = lp_json_get(desc, key);
    if (!v || v->type != LP_JSON_NUMBER || !v->is_int || v->i64 < lo || v->i64 > hi) {
        char got[64];
        if (!v) snprintf(got, sizeof got, "missing");
        else if (v->type == LP_JSON_NUMBER) snprintf(got, sizeof got, "%.17g", v->num);
        else snprintf(got, sizeof got, "not a number");
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": %s=%s; expected an integer in [%lld, %lld]", in->name, base,
                       key, got, (long long)lo, (long long)hi);
    }
    *out = v->i64;
    return LP_OK;
}

lp_status lp_fmt_bool(const lp_fmt_src *in, const char *base, const lp_json *desc, const char *key, bool *out) {
    const lp_json *v = lp_json_get(desc, key);
    if (!v || v->type != LP_JSON_BOOL)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": %s is %s; expected true or false", in->name, base, key,
                       v ? "not a boolean" : "missing");
    *out = v->boolean;
    return LP_OK;
}
