/*
 * checkpoint.c - the llmpress compressed checkpoint: load and save.
 *
 * What: a compressed model is an ordinary Hugging Face directory (config.json
 * and tokenizer files copied verbatim) whose model.safetensors holds every
 * uncompressed tensor as it was, and every compressed linear `<base>` as
 * packed tensors described by a metadata entry:
 *   __metadata__["llmpress.format_version"] = "1"
 *   __metadata__["llmpress.linear.<base>"]  = {"format":"qgroup","bits":4,"group":128,"sym":false}
 *   <base>.qweight  U32 [rows, blocks*bits]   packed integers (layout: format/qgroup.h)
 *   <base>.scales   F16 [rows, ngroups]
 *   <base>.qzeros   U8  [rows, ngroups]       (asymmetric only)
 * Mixed widths per column group (format/qmix.h), {"format":"qmix","group":128,"sym":false}:
 *   <base>.gbits         U8 [1, ngroups]      width of each column group
 *   <base>.w<b>.qweight, .w<b>.scales, .w<b>.qzeros   one qgroup part per width b
 * Lookup tables plus outliers (format/qlut.h), {"format":"qlut","bits":3,"nnz":N}:
 *   <base>.qweight  U32 [rows, blocks*bits]   codes
 *   <base>.lut      F16 [rows, 2^bits]
 *   <base>.row_ptr  I32 [1, rows + 1]; <base>.col_idx I32 [1, nnz]; <base>.vals F16 [1, nnz]
 * Why: self-describing (every linear names its format, so mixed recipes need
 * no side file), versioned, and loadable in place: packed tensors are used
 * straight from the mapping, never copied.
 * Design: files are written under temporary names and renamed when complete;
 * model.safetensors is renamed last, so a directory without it is visibly
 * incomplete rather than subtly wrong.
 */
#include "llmpress/model.h"

#include "core/fileio.h"
#include "core/status_impl.h"
#include "io/json.h"
#include "model/model_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LP_CKPT_VERSION "1"

/* Where packed tensors are read from: the model's checkpoint, or a resume
 * state file (quant/resume.c); name is what errors call it. */
typedef struct {
    const lp_weights *w;
    const char *name;
} ckpt_in;

/* Find a tensor with an exact dtype and shape, or fail naming it. */
static lp_status want_tensor(const ckpt_in *in, const char *name, lp_dtype dt, int64_t d0, int64_t d1,
                             const lp_tensor_view **out) {
    const lp_tensor_view *t = lp_weights_find(in->w, name);
    if (!t) return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is missing", in->name, name);
    if (t->dtype != dt || t->ndim != 2 || t->shape[0] != d0 || t->shape[1] != d1)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is %s %dD [%lld, %lld]; expected %s [%lld, %lld]",
                       lp_weights_file_of(in->w, name), name, lp_dtype_name(t->dtype), t->ndim,
                       (long long)t->shape[0], (long long)(t->ndim > 1 ? t->shape[1] : 0),
                       lp_dtype_name(dt), (long long)d0, (long long)d1);
    if ((uintptr_t)t->data % lp_dtype_size(dt))
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is not aligned to %zu bytes",
                       lp_weights_file_of(in->w, name), name, lp_dtype_size(dt));
    *out = t;
    return LP_OK;
}

/* A qgroup view of the tensors <base>.qweight/.scales/.qzeros into *w. */
static lp_status view_qgroup(const ckpt_in *in, const char *base, int bits, int group, int sym, int64_t rows,
                             int64_t cols, lp_qgroup *w) {
    size_t qb, sb, zb;
    if (lp_qgroup_sizes(rows, cols, bits, group, sym, &qb, &sb, &zb) != LP_OK)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": invalid qgroup parameters bits=%d group=%d "
                       "for a %lld x %lld weight", in->name, base, bits, group, (long long)rows, (long long)cols);
    const int64_t blocks = (cols + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    const int64_t ngroups = (int64_t)(sb / 2) / rows;
    char name[256];
    const lp_tensor_view *q, *s, *z = NULL;
    snprintf(name, sizeof name, "%s.qweight", base);
    LP_TRY(want_tensor(in, name, LP_DT_U32, rows, blocks * bits, &q));
    snprintf(name, sizeof name, "%s.scales", base);
    LP_TRY(want_tensor(in, name, LP_DT_F16, rows, ngroups, &s));
    if (!sym) {
        snprintf(name, sizeof name, "%s.qzeros", base);
        LP_TRY(want_tensor(in, name, LP_DT_U8, rows, ngroups, &z));
    }
    lp_status st = lp_qgroup_view(w, rows, cols, bits, group, sym, q->data, q->nbytes, s->data,
                                  s->nbytes, z ? z->data : NULL, z ? z->nbytes : 0);
    if (st != LP_OK) return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    return LP_OK;
}

static lp_status load_qgroup(const ckpt_in *in, const char *base, const lp_json *desc, int64_t rows,
                             int64_t cols, lp_linear *out) {
    int bits = (int)lp_json_int(lp_json_get(desc, "bits"), 0);
    int group = (int)lp_json_int(lp_json_get(desc, "group"), 0);
    int sym = lp_json_bool(lp_json_get(desc, "sym"), false);
    lp_qgroup *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = view_qgroup(in, base, bits, group, sym, rows, cols, w);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    *out = (lp_linear){.fmt = LP_LINEAR_QGROUP, .rows = rows, .cols = cols, .q = w};
    return LP_OK;
}

static lp_status load_qmix(const ckpt_in *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                           lp_linear *out) {
    int group = (int)lp_json_int(lp_json_get(desc, "group"), 0);
    int sym = lp_json_bool(lp_json_get(desc, "sym"), false);
    if (group < LP_QGROUP_BLOCK || group % LP_QGROUP_BLOCK || group >= cols)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": qmix group %d for %lld columns, expected a multiple of "
                       "32 below the column count", in->name, base, group, (long long)cols);
    const int64_t G = (cols + group - 1) / group;
    char name[256];
    const lp_tensor_view *gb;
    snprintf(name, sizeof name, "%s.gbits", base);
    LP_TRY(want_tensor(in, name, LP_DT_U8, 1, G, &gb));
    const uint8_t *gbits = gb->data;
    lp_status cs = lp_qmix_check(LP_ERR_FORMAT, rows, cols, group, gbits);
    if (cs != LP_OK) return lp_fail_ctx(cs, "%s: linear \"%s\"", in->name, base);
    lp_qgroup parts[LP_QMIX_MAX_PARTS] = {0};
    int np = 0;
    lp_status st = LP_OK;
    for (int b = 1; b <= 8 && st == LP_OK; b++) {
        int64_t pc = lp_qmix_part_cols(cols, group, gbits, b);
        if (!pc) continue;
        char pb[232];
        snprintf(pb, sizeof pb, "%s.w%d", base, b);
        st = view_qgroup(in, pb, b, group, sym, rows, pc, &parts[np++]);
    }
    lp_qmix *w = st == LP_OK ? calloc(1, sizeof *w) : NULL;
    if (st == LP_OK && !w) st = lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK) st = lp_qmix_adopt(w, rows, cols, group, sym, gbits, parts, np);
    if (st != LP_OK) {
        free(w);
        return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    }
    *out = (lp_linear){.fmt = LP_LINEAR_QMIX, .rows = rows, .cols = cols, .mix = w};
    return LP_OK;
}

static lp_status load_qlut(const ckpt_in *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                           lp_linear *out) {
    int bits = (int)lp_json_int(lp_json_get(desc, "bits"), 0);
    int64_t nnz = lp_json_int(lp_json_get(desc, "nnz"), -1);
    if (bits < 1 || bits > LP_QLUT_MAX_BITS || nnz < 0 || nnz > rows * cols)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": qlut bits %d and nnz %lld, expected bits 1..4 and 0 <= "
                       "nnz <= %lld", in->name, base, bits, (long long)nnz, (long long)(rows * cols));
    const int64_t blocks = (cols + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    char name[256];
    const lp_tensor_view *q, *lut, *rp, *ci, *v;
    snprintf(name, sizeof name, "%s.qweight", base);
    LP_TRY(want_tensor(in, name, LP_DT_U32, rows, blocks * bits, &q));
    snprintf(name, sizeof name, "%s.lut", base);
    LP_TRY(want_tensor(in, name, LP_DT_F16, rows, (int64_t)1 << bits, &lut));
    snprintf(name, sizeof name, "%s.row_ptr", base);
    LP_TRY(want_tensor(in, name, LP_DT_I32, 1, rows + 1, &rp));
    snprintf(name, sizeof name, "%s.col_idx", base);
    LP_TRY(want_tensor(in, name, LP_DT_I32, 1, nnz, &ci));
    snprintf(name, sizeof name, "%s.vals", base);
    LP_TRY(want_tensor(in, name, LP_DT_F16, 1, nnz, &v));
    lp_qlut *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_qlut_view(w, rows, cols, bits, nnz, q->data, q->nbytes, lut->data, lut->nbytes, rp->data,
                                rp->nbytes, ci->data, ci->nbytes, v->data, v->nbytes);
    if (st != LP_OK) {
        free(w);
        return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    }
    *out = (lp_linear){.fmt = LP_LINEAR_QLUT, .rows = rows, .cols = cols, .lut = w};
    return LP_OK;
}

/* A file from a newer llmpress may mean anything: refuse it by version. */
static lp_status check_version(const lp_weights *w, const char *name) {
    const char *ver = lp_weights_meta(w, "llmpress.format_version");
    if (ver && strcmp(ver, LP_CKPT_VERSION))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: llmpress.format_version \"%s\" in the safetensors "
                       "metadata; this llmpress reads version \"%s\" (hint: upgrade llmpress)",
                       name, ver, LP_CKPT_VERSION);
    return LP_OK;
}

lp_status lp_ckpt_load_packed(const lp_weights *w, const char *name, const char *base, int64_t rows,
                              int64_t cols, lp_linear *out) {
    memset(out, 0, sizeof *out);
    LP_TRY(check_version(w, name));
    const ckpt_in in_ = {w, name}, *in = &in_;
    char key[256];
    snprintf(key, sizeof key, "llmpress.linear.%s", base);
    const char *meta = lp_weights_meta(w, key);
    if (!meta)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.weight\" is missing from the checkpoint", name, base);
    if (!lp_weights_meta(w, "llmpress.format_version"))
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\" is described by llmpress metadata, but the "
                       "safetensors metadata has no llmpress.format_version", name, base);
    lp_json_doc *doc = NULL;
    lp_status pst = lp_json_parse(meta, strlen(meta), key, &doc);
    if (pst != LP_OK) return lp_fail_ctx(pst, "%s: safetensors metadata", name);
    const lp_json *d = lp_json_root(doc);
    const char *fmt = lp_json_str(lp_json_get(d, "format"), "(none)");
    lp_status st;
    if (!strcmp(fmt, "qgroup"))
        st = load_qgroup(in, base, d, rows, cols, out);
    else if (!strcmp(fmt, "qmix"))
        st = load_qmix(in, base, d, rows, cols, out);
    else if (!strcmp(fmt, "qlut"))
        st = load_qlut(in, base, d, rows, cols, out);
    else
        st = lp_fail(LP_ERR_UNSUPPORTED, "%s: linear \"%s\" has format \"%s\", which this version of "
                     "llmpress does not know", name, base, fmt);
    lp_json_free(doc);
    return st;
}

lp_status lp_ckpt_load_linear(lp_model *m, const char *base, int64_t rows, int64_t cols, lp_linear *out) {
    memset(out, 0, sizeof *out);
    char key[256];
    snprintf(key, sizeof key, "%s.weight", base);
    const lp_tensor_view *t = lp_weights_find(m->weights, key);
    if (t) {
        LP_TRY(check_version(m->weights, m->dir)); /* lp_ckpt_load_packed checks it otherwise */
        const int64_t shp[2] = {rows, cols};
        *out = (lp_linear){.fmt = LP_LINEAR_DENSE, .rows = rows, .cols = cols};
        if ((t->dtype == LP_DT_BF16 || t->dtype == LP_DT_F16) && t->ndim == 2 && t->shape[0] == rows &&
            t->shape[1] == cols) {
            out->raw = t->data; /* converted on first use (linear.h) */
            out->stored_dtype = t->dtype;
            return LP_OK;
        }
        return lp_model_tensor_f32(m, key, 2, shp, &out->w, &out->stored_dtype);
    }
    return lp_ckpt_load_packed(m->weights, m->dir, base, rows, cols, out);
}

/* ---- saving ---- */

static lp_status add_raw(lp_st_writer *w, lp_model *m, const char *name) {
    const lp_tensor_view *t = lp_weights_find(m->weights, name);
    if (!t) return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is missing", m->dir, name);
    return lp_st_writer_add(w, name, t->dtype, t->ndim, t->shape, t->data);
}

/* <base>.qweight, .scales and (asymmetric) .qzeros of one qgroup. */
static lp_status add_qgroup(lp_st_writer *w, const char *base, const lp_qgroup *q) {
    char name[256];
    int64_t shp[2] = {q->rows, q->blocks * q->bits};
    snprintf(name, sizeof name, "%s.qweight", base);
    LP_TRY(lp_st_writer_add(w, name, LP_DT_U32, 2, shp, q->q));
    shp[1] = q->ngroups;
    snprintf(name, sizeof name, "%s.scales", base);
    LP_TRY(lp_st_writer_add(w, name, LP_DT_F16, 2, shp, q->scales));
    if (!q->sym) {
        snprintf(name, sizeof name, "%s.qzeros", base);
        LP_TRY(lp_st_writer_add(w, name, LP_DT_U8, 2, shp, q->zeros));
    }
    return LP_OK;
}

static lp_status add_linear(lp_st_writer *w, lp_model *m, const char *base, const lp_linear *l,
                            bool with_bias) {
    char name[256], meta[256];
    if (l->fmt == LP_LINEAR_DENSE) {
        snprintf(name, sizeof name, "%s.weight", base);
        LP_TRY(add_raw(w, m, name));
    } else if (l->fmt == LP_LINEAR_QGROUP) {
        const lp_qgroup *q = l->q;
        LP_TRY(add_qgroup(w, base, q));
        snprintf(meta, sizeof meta, "{\"format\":\"qgroup\",\"bits\":%d,\"group\":%d,\"sym\":%s}",
                 q->bits, q->group, q->sym ? "true" : "false");
    } else if (l->fmt == LP_LINEAR_QMIX) {
        const lp_qmix *x = l->mix;
        const int64_t shp[2] = {1, x->ngroups};
        snprintf(name, sizeof name, "%s.gbits", base);
        LP_TRY(lp_st_writer_add(w, name, LP_DT_U8, 2, shp, x->gbits));
        for (int k = 0; k < x->nparts; k++) {
            char pb[232];
            snprintf(pb, sizeof pb, "%s.w%d", base, x->part[k].bits);
            LP_TRY(add_qgroup(w, pb, &x->part[k]));
        }
        snprintf(meta, sizeof meta, "{\"format\":\"qmix\",\"group\":%d,\"sym\":%s}", x->group,
                 x->sym ? "true" : "false");
    } else {
        const lp_qlut *t = l->lut;
        int64_t shp[2] = {t->rows, t->blocks * t->bits};
        snprintf(name, sizeof name, "%s.qweight", base);
        LP_TRY(lp_st_writer_add(w, name, LP_DT_U32, 2, shp, t->q));
        shp[1] = (int64_t)1 << t->bits;
        snprintf(name, sizeof name, "%s.lut", base);
        LP_TRY(lp_st_writer_add(w, name, LP_DT_F16, 2, shp, t->lut));
        shp[0] = 1;
        shp[1] = t->rows + 1;
        snprintf(name, sizeof name, "%s.row_ptr", base);
        LP_TRY(lp_st_writer_add(w, name, LP_DT_I32, 2, shp, t->row_ptr));
        shp[1] = t->nnz;
        snprintf(name, sizeof name, "%s.col_idx", base);
        LP_TRY(lp_st_writer_add(w, name, LP_DT_I32, 2, shp, t->col_idx));
        snprintf(name, sizeof name, "%s.vals", base);
        LP_TRY(lp_st_writer_add(w, name, LP_DT_F16, 2, shp, t->vals));
        snprintf(meta, sizeof meta, "{\"format\":\"qlut\",\"bits\":%d,\"nnz\":%lld}", t->bits, (long long)t->nnz);
    }
    if (l->fmt != LP_LINEAR_DENSE) {
        snprintf(name, sizeof name, "llmpress.linear.%s", base);
        LP_TRY(lp_st_writer_meta(w, name, meta));
    }
    if (with_bias) {
        snprintf(name, sizeof name, "%s.bias", base);
        LP_TRY(add_raw(w, m, name));
    }
    return LP_OK;
}

/* Layer l's two norm weights: from memory (F32) when a method rescaled them,
 * else as stored in the source (or not at all, without `unchanged_too`). */
static lp_status add_norms(lp_st_writer *w, lp_model *m, int64_t l, bool unchanged_too) {
    const lp_layer *L = &m->layers[l];
    const int64_t *D = &m->cfg.dim;
    char name[256];
    for (int which = 0; which < 2; which++) {
        lp_norm_name(l, which, name, sizeof name);
        if (L->norms_changed)
            LP_TRY(lp_st_writer_add(w, name, LP_DT_F32, 1, D, which ? L->ffn_norm : L->attn_norm));
        else if (unchanged_too)
            LP_TRY(add_raw(w, m, name));
    }
    return LP_OK;
}

lp_status lp_ckpt_add_layer_state(lp_st_writer *w, lp_model *m, int64_t l) {
    const lp_layer *L = &m->layers[l];
    char base[200];
    LP_TRY(add_norms(w, m, l, false));
    for (int k = 0; k < LP_NLIN; k++) {
        if (L->lin[k].fmt == LP_LINEAR_DENSE) continue;
        lp_linear_name(l, k, base, sizeof base);
        LP_TRY(add_linear(w, m, base, &L->lin[k], false));
    }
    return LP_OK;
}

lp_status lp_ckpt_load_layer_state(lp_model *m, int64_t l, const lp_weights *w, const char *name) {
    lp_layer *L = &m->layers[l];
    const int64_t D = m->cfg.dim;
    char key[256], base[200];
    for (int which = 0; which < 2; which++) {
        lp_norm_name(l, which, key, sizeof key);
        const lp_tensor_view *t = lp_weights_find(w, key);
        if (!t) continue;
        if (t->dtype != LP_DT_F32 || t->ndim != 1 || t->shape[0] != D)
            return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is not F32 [%lld]", name, key, (long long)D);
        float *nw;
        LP_TRY(lp_model_norm_mut(m, l, which, &nw));
        memcpy(nw, t->data, (size_t)D * sizeof(float));
    }
    for (int k = 0; k < LP_NLIN; k++) {
        lp_linear_name(l, k, base, sizeof base);
        snprintf(key, sizeof key, "llmpress.linear.%s", base);
        if (!lp_weights_meta(w, key)) continue; /* left dense: the source's weights stand */
        lp_linear *dst = &L->lin[k], got;
        LP_TRY(lp_ckpt_load_packed(w, name, base, dst->rows, dst->cols, &got));
        got.bias = dst->bias; /* biases are the source's (not in the file) */
        got.bias_owned = dst->bias_owned;
        dst->bias_owned = NULL;
        lp_linear_free(dst);
        *dst = got;
    }
    return LP_OK;
}

static lp_status build_writer(lp_model *m, lp_st_writer *w) {
    const lp_config *c = &m->cfg;
    char base[200];
    LP_TRY(lp_st_writer_meta(w, "format", "pt"));
    LP_TRY(lp_st_writer_meta(w, "llmpress.format_version", LP_CKPT_VERSION));
    LP_TRY(add_raw(w, m, "model.embed_tokens.weight"));
    LP_TRY(add_raw(w, m, "model.norm.weight"));
    for (int64_t l = 0; l < c->n_layers; l++) {
        LP_TRY(add_norms(w, m, l, true));
        for (int k = 0; k < LP_NLIN; k++) {
            lp_linear_name(l, k, base, sizeof base);
            bool bias = (k <= LP_V && c->qkv_bias) || (k == LP_O && c->o_bias);
            LP_TRY(add_linear(w, m, base, &m->layers[l].lin[k], bias));
        }
    }
    if (!c->tied) LP_TRY(add_linear(w, m, "lm_head", &m->head, false));
    return LP_OK;
}

static lp_status copy_file(const char *from, const char *to) {
    char *data = NULL;
    size_t n = 0;
    LP_TRY(lp_read_file(from, &data, &n));
    lp_atomic_file af;
    lp_status st = lp_atomic_open(to, &af);
    if (st == LP_OK) st = lp_atomic_write(&af, data, n);
    if (st == LP_OK) st = lp_atomic_commit(&af);
    else lp_atomic_abort(&af);
    free(data);
    return st;
}

lp_status lp_model_save_check(const lp_model *m, const char *out_dir) {
    /* Same directory under another spelling ("dir/", "./dir", a symlink)
     * counts too: the rename would replace the source checkpoint. */
    struct stat so, sm;
    bool same = !strcmp(out_dir, m->dir) || (stat(out_dir, &so) == 0 && stat(m->dir, &sm) == 0 &&
                                             so.st_dev == sm.st_dev && so.st_ino == sm.st_ino);
    if (same)
        return lp_fail(LP_ERR_ARG, "%s: refusing to write a model over the checkpoint it was loaded "
                       "from (its weights are memory-mapped); choose another output directory", out_dir);
    if (stat(out_dir, &so) == 0) {
        if (!S_ISDIR(so.st_mode)) return lp_fail(LP_ERR_IO, "%s: exists and is not a directory", out_dir);
        return LP_OK;
    }
    /* It will be created: its parent must exist. */
    char *parent = strdup(out_dir);
    if (!parent) return lp_fail(LP_ERR_NOMEM, "out of memory");
    size_t n = strlen(parent);
    while (n > 1 && parent[n - 1] == '/') parent[--n] = 0;
    char *slash = strrchr(parent, '/');
    lp_status st = LP_OK;
    if (slash) {
        if (slash == parent) slash[1] = 0;
        else *slash = 0;
        if (!lp_is_dir(parent))
            st = lp_fail(LP_ERR_IO, "%s: cannot create the output directory: its parent %s does not "
                         "exist", out_dir, parent);
    }
    free(parent);
    return st;
}

lp_status lp_model_save(lp_model *m, const char *out_dir) {
    LP_TRY(lp_model_save_check(m, out_dir));
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return lp_fail(LP_ERR_IO, "%s: cannot create the output directory: %s", out_dir, strerror(errno));
    if (!lp_is_dir(out_dir))
        return lp_fail(LP_ERR_IO, "%s: exists and is not a directory", out_dir);
    static const char *const side_files[] = {
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "tokenizer.model", "tok512.bin",
    };
    for (size_t i = 0; i < sizeof side_files / sizeof *side_files; i++) {
        char *from = lp_path_join(m->dir, side_files[i]), *to = lp_path_join(out_dir, side_files[i]);
        lp_status st = (!from || !to) ? lp_fail(LP_ERR_NOMEM, "out of memory")
                       : lp_file_exists(from) ? copy_file(from, to) : LP_OK;
        free(from);
        free(to);
        LP_TRY(st);
    }
    /* A stale index from an earlier sharded model in this directory would
     * shadow the single file we write. */
    char *idx = lp_path_join(out_dir, "model.safetensors.index.json");
    if (idx && lp_file_exists(idx)) remove(idx);
    free(idx);

    lp_st_writer *w = NULL;
    LP_TRY(lp_st_writer_init(&w));
    lp_status st = build_writer(m, w);
    char *path = lp_path_join(out_dir, "model.safetensors");
    if (st == LP_OK) st = path ? lp_st_writer_save(w, path) : lp_fail(LP_ERR_NOMEM, "out of memory");
    free(path);
    lp_st_writer_free(w);
    return st;
}
