/*
 * checkpoint.c - the llmpress compressed checkpoint: load and save.
 *
 * What: a compressed model is an ordinary Hugging Face directory (config.json
 * and tokenizer files copied verbatim) whose model.safetensors holds every
 * uncompressed tensor as it was, and every compressed linear `<base>` as the
 * tensors of its parts plus a metadata entry describing them:
 *   __metadata__["llmpress.format_version"] = "2"   (format/format.h; "1" is read too)
 *   __metadata__["llmpress.linear.<base>"]  = {"format":"qgroup","bits":4,"group":128,"sym":false}
 *   <base>.qweight, <base>.scales, ...        (each format's own tensors)
 * and beside it llmpress_quantize.json, how the model was made
 * ({"method":"gptq","bits":4,...,"seconds":12.3}): a side file, so that
 * model.safetensors stays the same bytes for the same inputs, however long
 * the run took. Each format writes and validates its own tensors (its traits row,
 * format/format.h; the layouts are in docs/formats.md); a linear of several
 * parts is described as {"format":"sum","parts":[...]} (format/linear.h).
 * This file does the model's part: which linears, norms, embeddings and
 * biases go where, the side files, the version, and the atomic write.
 * Why: self-describing (every linear names its format, so mixed recipes need
 * no side file), versioned, and loadable in place: packed tensors are used
 * straight from the mapping, never copied.
 * Design: the output directory is whole or absent (core/fileio.h,
 * lp_outdir_*): every file is written into a temporary directory beside
 * OUT, which then takes OUT's place in one step, so no side file of an
 * earlier model survives and no reader ever sees a mix. lp_model_save_check
 * makes every check that can fail before the long work (not the source,
 * parent writable, OUT replaceable, free space for an upper bound of the
 * size) and takes OUT's lock, so a second writer is refused at once.
 */
#include "llmpress/model.h"

#include "core/fileio.h"
#include "core/status_impl.h"
#include "format/dense.h"
#include "format/format.h"
#include "model/gptq_import.h"
#include "model/model_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A file from a newer llmpress may mean anything: refuse it by version.
 * Version 1 files are read (format.h: what changed is converted on load). */
static lp_status check_version(const lp_weights *w, const char *name) {
    const char *ver = lp_weights_meta(w, "llmpress.format_version");
    if (ver && strcmp(ver, LP_FORMAT_VERSION_STR) && strcmp(ver, "1"))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: llmpress.format_version \"%s\" in the safetensors "
                       "metadata; this llmpress reads versions \"1\" and \"%s\" (hint: upgrade llmpress)",
                       name, ver, LP_FORMAT_VERSION_STR);
    return LP_OK;
}

lp_status lp_ckpt_load_packed(const lp_weights *w, const char *name, const char *base, int64_t rows,
                              int64_t cols, lp_linear *out) {
    memset(out, 0, sizeof *out);
    LP_TRY(check_version(w, name));
    char key[256];
    snprintf(key, sizeof key, "llmpress.linear.%s", base);
    if (!lp_weights_meta(w, key))
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.weight\" is missing from the checkpoint", name, base);
    if (!lp_weights_meta(w, "llmpress.format_version"))
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\" is described by llmpress metadata, but the "
                       "safetensors metadata has no llmpress.format_version", name, base);
    const lp_fmt_src in = {w, name};
    return lp_linear_load_packed(&in, base, rows, cols, out);
}

lp_status lp_ckpt_load_linear(lp_model *m, const char *base, int64_t rows, int64_t cols, lp_linear *out) {
    memset(out, 0, sizeof *out);
    char key[256];
    /* llmpress metadata describes every stored linear but a plain dense one,
     * including formats whose tensor is "<base>.weight" too (dense16) */
    snprintf(key, sizeof key, "llmpress.linear.%s", base);
    const bool packed = lp_weights_meta(m->weights, key) != NULL;
    snprintf(key, sizeof key, "%s.weight", base);
    const lp_tensor_view *t = lp_weights_find(m->weights, key);
    if (!t && !packed && lp_ckpt_is_gptq(m, base)) return lp_ckpt_load_gptq(m, base, rows, cols, out);
    if (!t || packed) return lp_ckpt_load_packed(m->weights, m->dir, base, rows, cols, out);
    LP_TRY(check_version(m->weights, m->dir)); /* lp_ckpt_load_packed checks it otherwise */
    *out = (lp_linear){.rows = rows, .cols = cols};
    lp_dense *d;
    if ((t->dtype == LP_DT_BF16 || t->dtype == LP_DT_F16) && t->ndim == 2 && t->shape[0] == rows &&
        t->shape[1] == cols) {
        LP_TRY(lp_dense_view(rows, cols, NULL, t->data, t->dtype, t, &d)); /* converted on first use */
    } else {
        const int64_t shp[2] = {rows, cols};
        const float *w;
        lp_dtype stored;
        LP_TRY(lp_model_tensor_f32(m, key, 2, shp, &w, &stored));
        LP_TRY(lp_dense_view(rows, cols, w, NULL, stored, t, &d));
    }
    return lp_linear_add_part(out, &lp_format_dense, d);
}

/* ---- saving ---- */

static lp_status add_raw(lp_st_writer *w, lp_model *m, const char *name) {
    const lp_tensor_view *t = lp_weights_find(m->weights, name);
    if (!t) return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is missing", m->dir, name);
    return lp_st_writer_add(w, name, t->dtype, t->ndim, t->shape, t->data);
}

static lp_status add_linear(lp_st_writer *w, lp_model *m, const char *base, const lp_linear *l,
                            bool with_bias) {
    LP_TRY(lp_linear_save(l, w, base));
    if (with_bias) {
        char name[256];
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
        if (lp_linear_is(&L->lin[k], &lp_format_dense)) continue;
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
        lp_linear_take_parts(dst, &got); /* biases are the source's (not in the file) */
    }
    return LP_OK;
}

static lp_status build_writer(lp_model *m, lp_st_writer *w) {
    const lp_config *c = &m->cfg;
    char base[200];
    LP_TRY(lp_st_writer_meta(w, "format", "pt"));
    LP_TRY(lp_st_writer_meta(w, "llmpress.format_version", LP_FORMAT_VERSION_STR));
    if (m->embed_q.nparts) /* packed by lp_model_quantize_embeddings */
        LP_TRY(lp_linear_save(&m->embed_q, w, "model.embed_tokens"));
    else if (c->tied && !lp_linear_is(&m->head, &lp_format_dense))
        LP_TRY(lp_linear_save(&m->head, w, "model.embed_tokens"));
    else
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

/* Side files copied verbatim from the source, when it has them. */
static const char *const k_side_files[] = {
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "tokenizer.model", "tok512.bin",
};
#define N_SIDE_FILES (sizeof k_side_files / sizeof *k_side_files)

/* The source's side file i: its path (malloc'd, NULL when absent) and
 * size. Only a regular file is copied: reading a FIFO would block. */
static lp_status side_file(const lp_model *m, size_t i, char **path, uint64_t *size) {
    *path = NULL;
    *size = 0;
    char *p = lp_path_join(m->dir, k_side_files[i]);
    if (!p) return lp_fail(LP_ERR_NOMEM, "out of memory");
    struct stat st;
    if (stat(p, &st) != 0) {
        free(p);
        return LP_OK;
    }
    if (!S_ISREG(st.st_mode)) {
        lp_status rc = lp_fail(LP_ERR_IO, "%s: not a regular file, cannot be copied into the output", p);
        free(p);
        return rc;
    }
    *path = p;
    *size = (uint64_t)st.st_size;
    return LP_OK;
}

/* An upper bound of the output's size: the model's tensors as they are now
 * (a compressed output is smaller than the source's), the side files, and
 * a megabyte for the safetensors header. */
static lp_status output_estimate(const lp_model *m, uint64_t *bytes) {
    lp_model_size sz;
    lp_model_size_get(m, &sz);
    uint64_t total = (uint64_t)sz.total_bytes + (1u << 20);
    for (size_t i = 0; i < N_SIDE_FILES; i++) {
        char *p;
        uint64_t n;
        LP_TRY(side_file(m, i, &p, &n));
        free(p);
        total += n;
    }
    *bytes = total;
    return LP_OK;
}

static lp_status write_whole(const char *to, const void *data, size_t n) {
    lp_atomic_file af;
    LP_TRY(lp_atomic_open(to, &af));
    lp_status st = lp_atomic_write(&af, data, n);
    if (st == LP_OK) st = lp_atomic_commit(&af);
    else lp_atomic_abort(&af);
    return st;
}

static lp_status copy_file(const char *from, const char *to) {
    char *data = NULL;
    size_t n = 0;
    LP_TRY(lp_read_file(from, &data, &n));
    lp_status st = write_whole(to, data, n);
    free(data);
    return st;
}

/* Not the source directory, under any spelling ("dir/", "./dir", a
 * symlink): replacing it would pull the mapped weights from under us. */
static lp_status check_not_source(const lp_model *m, const char *out_dir) {
    if (m->gguf)
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: a model read from a GGUF file is not written as a checkpoint "
                       "(quantize the original Hugging Face checkpoint instead)", m->dir);
    struct stat so, sm;
    bool same = !strcmp(out_dir, m->dir) || (stat(out_dir, &so) == 0 && stat(m->dir, &sm) == 0 &&
                                             so.st_dev == sm.st_dev && so.st_ino == sm.st_ino);
    if (same)
        return lp_fail(LP_ERR_ARG, "%s: refusing to write a model over the checkpoint it was loaded "
                       "from (its weights are memory-mapped); choose another output directory", out_dir);
    return LP_OK;
}

lp_status lp_model_save_check(const lp_model *m, const char *out_dir) {
    uint64_t bytes;
    LP_TRY(check_not_source(m, out_dir));
    LP_TRY(output_estimate(m, &bytes));
    /* parent writable, OUT replaceable, free space; then OUT's lock */
    return lp_outdir_prepare(out_dir, bytes);
}

/* Write the checkpoint's files into the temporary directory o. */
static lp_status write_files(lp_model *m, lp_outdir *o) {
    for (size_t i = 0; i < N_SIDE_FILES; i++) {
        char *from, *to = NULL;
        uint64_t n;
        LP_TRY(side_file(m, i, &from, &n));
        if (!from) continue;
        lp_status st = lp_outdir_file(o, k_side_files[i], &to);
        if (st == LP_OK) st = copy_file(from, to);
        free(from);
        free(to);
        LP_TRY(st);
    }
    const char *prov = lp_model_provenance(m);
    if (prov) {
        char *to = NULL;
        lp_status st = lp_outdir_file(o, LP_PROVENANCE_FILE, &to);
        if (st == LP_OK) st = write_whole(to, prov, strlen(prov));
        free(to);
        LP_TRY(st);
    }
    lp_st_writer *w = NULL;
    LP_TRY(lp_st_writer_init(&w));
    lp_status st = build_writer(m, w);
    char *path = NULL;
    if (st == LP_OK) st = lp_outdir_file(o, "model.safetensors", &path);
    if (st == LP_OK) st = lp_st_writer_save(w, path);
    free(path);
    lp_st_writer_free(w);
    return st;
}

lp_status lp_model_save(lp_model *m, const char *out_dir) {
    uint64_t bytes = 0;
    lp_outdir *o = NULL;
    lp_status st = check_not_source(m, out_dir);
    if (st == LP_OK) st = output_estimate(m, &bytes); /* the compressed size by now */
    if (st == LP_OK) st = lp_outdir_begin(out_dir, bytes, &o); /* the checks again, the lock */
    if (st != LP_OK) {
        lp_outdir_release(out_dir); /* a lock lp_model_save_check took earlier */
        return st;
    }
    st = write_files(m, o);
    if (st != LP_OK) {
        lp_outdir_abort(o);
        return st;
    }
    return lp_outdir_commit(o);
}
