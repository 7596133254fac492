/*
 * gptq_import.c - the linears of a GPTQ checkpoint directory (gptq_import.h).
 *
 * What: a directory written by AutoGPTQ, GPTQModel, optimum or llmpress's
 *   own lp_export_gptq: config.json with
 *     "quantization_config": {"quant_method": "gptq", "bits": b,
 *        "group_size": g (-1: per-channel), "desc_act": bool, "sym": bool,
 *        "checkpoint_format": "gptq" | "gptq_v2"}
 *   and per linear <base>.qweight / .qzeros / .scales / .g_idx (layout in
 *   format/gptqpack.h); embeddings, norms, biases and head are ordinary
 *   16-bit tensors that the loader reads as for any checkpoint.
 * Why: so that llmpress runs (and compares) exactly the bytes vLLM and
 *   transformers run, and reads back what it exported.
 * Design: each linear is checked as untrusted input (the config's values,
 *   every tensor's dtype and shape, g_idx in range, zero points, finite
 *   scales). When g_idx is the trivial k / group and the group suits qgroup
 *   (a multiple of 32, or per-channel), the codes, scales and zeros are
 *   repacked into an owned qgroup (the same dequantized bits, qgroup's fast
 *   kernels); otherwise the linear stays in the "gptq" format, viewing the
 *   mapped tensors. Where the file's metadata and its tensors could be read
 *   two ways (sym with zero points other than 2^(b-1), desc_act false with a
 *   g_idx other than k / group: kernels such as Marlin or vLLM's exllama path
 *   then ignore the stored values), the linear is refused rather than run as
 *   one reader would and another would not.
 *   config.json is parsed once per linear (a few KB; loading is dominated by
 *   the repacking), which keeps the hook into the loader to one call.
 */
#include "model/gptq_import.h"

#include "core/fileio.h"
#include "core/status_impl.h"
#include "format/gptqpack.h"
#include "format/qgroup.h"
#include "io/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    int bits;
    int64_t group; /* group_size: -1 (per-channel) or >= 1 */
    bool sym, desc_act;
    int zero_offset; /* 1: checkpoint_format "gptq" (v1), 0: "gptq_v2" */
} gptq_cfg;

bool lp_ckpt_is_gptq(const lp_model *m, const char *base) {
    char name[256];
    snprintf(name, sizeof name, "%s.qweight", base);
    return lp_weights_find(m->weights, name) != NULL;
}

static lp_status cfg_bool(const lp_json *q, const char *key, const char *path, bool def, bool *out) {
    const lp_json *v = lp_json_get(q, key);
    if (!v || v->type == LP_JSON_NULL) return *out = def, LP_OK;
    if (v->type != LP_JSON_BOOL)
        return lp_fail(LP_ERR_FORMAT, "%s: quantization_config.%s must be true or false", path, key);
    *out = v->boolean;
    return LP_OK;
}

static lp_status parse_cfg(const lp_json *root, const char *path, const char *base, gptq_cfg *c) {
    const lp_json *q = lp_json_get(root, "quantization_config");
    const char *method = lp_json_str(lp_json_get(q, "quant_method"), NULL);
    if (!q || q->type != LP_JSON_OBJECT || !method || strcasecmp(method, "gptq"))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: linear \"%s\" is stored as packed tensors (%s.qweight) without "
                       "llmpress metadata, but quantization_config %s%s%s; expected quant_method \"gptq\" (hint: "
                       "AWQ and other packed layouts are not read)", path, base, base,
                       !q ? "is missing" : method ? "has quant_method \"" : "has no quant_method",
                       q && method ? method : "", q && method ? "\"" : "");
    const lp_json *b = lp_json_get(q, "bits");
    if (!b || b->type != LP_JSON_NUMBER)
        return lp_fail(LP_ERR_FORMAT, "%s: quantization_config.bits is %s; expected 2, 3, 4 or 8", path,
                       b ? "not a number" : "missing");
    if (!b->is_int || (b->i64 != 2 && b->i64 != 3 && b->i64 != 4 && b->i64 != 8))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: quantization_config.bits is %.17g; expected 2, 3, 4 or 8", path,
                       b->num);
    c->bits = (int)b->i64;
    const lp_json *g = lp_json_get(q, "group_size");
    if (!g || g->type != LP_JSON_NUMBER)
        return lp_fail(LP_ERR_FORMAT, "%s: quantization_config.group_size is %s; expected -1 (per-channel) or a "
                       "positive integer", path, g ? "not a number" : "missing");
    if (!g->is_int || g->i64 == 0 || g->i64 < -1 || g->i64 > INT32_MAX)
        return lp_fail(LP_ERR_FORMAT, "%s: quantization_config.group_size is %.17g; expected -1 (per-channel) or a "
                       "positive integer", path, g->num);
    c->group = g->i64;
    LP_TRY(cfg_bool(q, "sym", path, true, &c->sym));
    LP_TRY(cfg_bool(q, "desc_act", path, false, &c->desc_act));
    const lp_json *f = lp_json_get(q, "checkpoint_format");
    if (!f || f->type == LP_JSON_NULL) f = lp_json_get(q, "format"); /* GPTQModel's quantize_config spelling */
    const char *fmt = f && f->type != LP_JSON_NULL ? lp_json_str(f, "?") : "gptq";
    if (!strcmp(fmt, "gptq")) c->zero_offset = 1;
    else if (!strcmp(fmt, "gptq_v2")) c->zero_offset = 0;
    else
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: quantization_config.checkpoint_format is \"%s\"; llmpress reads "
                       "\"gptq\" (zero - 1 stored) and \"gptq_v2\" (hint: repacked layouts such as marlin are "
                       "kernel-specific)", path, fmt);
    const char *pack = lp_json_str(lp_json_get(q, "pack_dtype"), "int32");
    if (strcmp(pack, "int32"))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: quantization_config.pack_dtype is \"%s\"; llmpress reads int32 words",
                       path, pack);
    return LP_OK;
}

static lp_status read_cfg(const lp_model *m, const char *base, gptq_cfg *c) {
    char *path = lp_path_join(m->dir, "config.json");
    if (!path) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_json_doc *doc = NULL;
    lp_status st = lp_json_parse_file(path, &doc);
    if (st == LP_OK) st = parse_cfg(lp_json_root(doc), path, base, c);
    lp_json_free(doc);
    free(path);
    return st;
}

lp_status lp_ckpt_load_gptq(lp_model *m, const char *base, int64_t rows, int64_t cols, lp_linear *out) {
    memset(out, 0, sizeof *out);
    out->rows = rows;
    out->cols = cols;
    gptq_cfg c = {0};
    LP_TRY(read_cfg(m, base, &c));
    const lp_fmt_src in = {m->weights, m->dir};
    lp_gptqpack *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_gptqpack_load_tensors(&in, base, rows, cols, c.bits, -1, c.zero_offset, w);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    char name[256];
    snprintf(name, sizeof name, "%s.g_idx", base);
    const char *file = lp_weights_file_of(m->weights, name);
    /* the group of the trivial g_idx: group_size, or every column (-1, or a group as wide as the layer) */
    const int64_t gs = c.group < 0 || c.group >= cols ? cols : c.group;
    bool trivial = w->ngroups == (cols + gs - 1) / gs;
    int64_t bad = -1;
    for (int64_t k = 0; trivial && k < cols; k++)
        if (w->g_idx[k] != k / gs) trivial = false, bad = k;
    if (!trivial && !c.desc_act) {
        st = bad >= 0 ? lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\": entry %lld is %d, but quantization_config has "
                                "desc_act false and group_size %lld, which make it %lld (kernels that trust desc_act "
                                "ignore g_idx); hint: the config does not match the weights", file, name,
                                (long long)bad, (int)w->g_idx[bad], (long long)c.group, (long long)(bad / gs))
                      : lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.scales\" has %lld groups, but quantization_config "
                                "has desc_act false and group_size %lld, which make %lld for %lld input features",
                                file, base, (long long)w->ngroups, (long long)c.group,
                                (long long)((cols + gs - 1) / gs), (long long)cols);
    }
    for (int64_t g = 0; st == LP_OK && c.sym && g < w->ngroups; g++)
        for (int64_t n = 0; st == LP_OK && n < rows; n++)
            if (lp_gptqpack_zero(w, g, n) != 1 << (c.bits - 1))
                st = lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.qzeros\": group %lld output %lld has zero point %d, but "
                             "quantization_config says sym (every zero %d at %d bits; kernels such as Marlin ignore "
                             "the stored zeros then)", file, base, (long long)g, (long long)n,
                             lp_gptqpack_zero(w, g, n), 1 << (c.bits - 1), c.bits);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    if (trivial && (gs == cols || gs % LP_QGROUP_BLOCK == 0)) {
        lp_qgroup *q = calloc(1, sizeof *q);
        st = q ? lp_gptqpack_to_qgroup(w, file, base, gs == cols ? -1 : (int)gs, c.sym, q)
               : lp_fail(LP_ERR_NOMEM, "out of memory");
        free(w); /* a view: owns nothing */
        if (st != LP_OK) {
            free(q);
            return st;
        }
        return lp_linear_add_part(out, &lp_format_qgroup, q);
    }
    return lp_linear_add_part(out, &lp_format_gptq, w); /* views into m->weights, which outlives the linears */
}
