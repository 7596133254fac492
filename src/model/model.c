/*
 * model.c - loading a checkpoint directory into an lp_model.
 *
 * Design: config.json says what shapes to expect; every tensor is looked up
 * by its Hugging Face name and its shape checked against the config before
 * use, so a checkpoint that contradicts its config is an error naming the
 * tensor, never a crash later. f32 tensors are used in place from the mapped
 * file; 16-bit linears and the embedding stay in the mapping in their stored
 * form (a dense linear converts to f32 on its first product, the embedding
 * row by row as tokens are embedded; the forward pass runs in f32, as the
 * PyTorch reference does). Compressed linears keep their packed form.
 *
 * The model guard: every float tensor the model uses (embedding, norms,
 * dense linears, biases, an untied head; F32, BF16 or F16) is checked finite
 * exactly once, as it is loaded, on its stored words (core/finite.h: a
 * vectorized test of the exponent bits, no conversion); a NaN or Inf is
 * LP_ERR_NUMERIC naming the tensor, its file and the first bad index.
 * Packed formats check their own scales and tables when they load (each
 * format's load in src/format). Writing needs no second scan: lp_model_save
 * writes tensors that were loaded (checked here) or that a method produced,
 * and lp_model_quantize scans every method's output before anyone can save
 * it (quant/quantize.c, check_finite) - so a model that loads and quantizes
 * cleanly writes only finite weights.
 * A checkpoint holding layers beyond config.json's num_hidden_layers is
 * refused: running only its first layers would be a silently different model.
 */
#include "model/model_impl.h"

#include "core/fileio.h"
#include "core/finite.h"
#include "core/half.h"
#include "core/status_impl.h"
#include "io/gguf.h"
#include "io/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

const char *const lp_linear_names[LP_NLIN] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

void lp_linear_name(int64_t l, int k, char *buf, size_t n) {
    snprintf(buf, n, "model.layers.%lld.%s", (long long)l, lp_linear_names[k]);
}

void lp_norm_name(int64_t l, int which, char *buf, size_t n) {
    snprintf(buf, n, "model.layers.%lld.%s.weight", (long long)l,
             which ? "post_attention_layernorm" : "input_layernorm");
}

lp_status lp_model_own(lp_model *m, void *p) {
    if (!p) return lp_fail(LP_ERR_NOMEM, "out of memory while loading %s", m->dir);
    if (m->n_owned == m->cap_owned) {
        int64_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **o = realloc(m->owned, (size_t)cap * sizeof *o);
        if (!o) {
            free(p);
            return lp_fail(LP_ERR_NOMEM, "out of memory while loading %s", m->dir);
        }
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return LP_OK;
}

lp_status lp_model_keep_weights(lp_model *m, lp_weights *w) {
    lp_weights **a = realloc(m->aux, (size_t)(m->n_aux + 1) * sizeof *a);
    if (!a) {
        lp_weights_close(w);
        return lp_fail(LP_ERR_NOMEM, "out of memory");
    }
    m->aux = a;
    m->aux[m->n_aux++] = w;
    return LP_OK;
}

lp_status lp_model_norm_mut(lp_model *m, int64_t l, int which, float **out) {
    lp_layer *L = &m->layers[l];
    const float **slot = which ? &L->ffn_norm : &L->attn_norm;
    bool owned = false;
    for (int64_t i = 0; i < m->n_owned && !owned; i++) owned = m->owned[i] == *slot;
    if (!owned) {
        float *copy = malloc((size_t)m->cfg.dim * sizeof(float));
        LP_TRY(lp_model_own(m, copy));
        memcpy(copy, *slot, (size_t)m->cfg.dim * sizeof(float));
        *slot = copy;
    }
    L->norms_changed = true;
    *out = (float *)*slot; /* owned by the model, so writable */
    return LP_OK;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* The model guard on one stored tensor (F32, BF16 or F16; the callers refuse
 * other dtypes first): LP_ERR_NUMERIC naming the file, the tensor, and the
 * first non-finite element's index and value. */
static lp_status guard_finite(const lp_model *m, const lp_tensor_view *t) {
    LP_ASSERT(t->dtype == LP_DT_F32 || t->dtype == LP_DT_BF16 || t->dtype == LP_DT_F16);
    const lp_fp_type type = t->dtype == LP_DT_F32 ? LP_FP_F32 : t->dtype == LP_DT_BF16 ? LP_FP_BF16 : LP_FP_F16;
    const int64_t bad = lp_finite_find(type, t->data, t->numel);
    if (bad < 0) return LP_OK;
    const unsigned char *at = (const unsigned char *)t->data + (size_t)bad * lp_dtype_size(t->dtype);
    float v;
    if (type == LP_FP_F32) {
        memcpy(&v, at, 4);
    } else {
        uint16_t h;
        memcpy(&h, at, 2);
        v = type == LP_FP_BF16 ? lp_bf16_to_f32(h) : lp_f16_to_f32(h);
    }
    /* the element's index per axis, row-major: [r, c] for a matrix */
    int64_t idx[LP_MAX_DIMS], rest = bad;
    for (int i = t->ndim - 1; i >= 0; i--) {
        idx[i] = t->shape[i] ? rest % t->shape[i] : 0;
        rest = t->shape[i] ? rest / t->shape[i] : 0;
    }
    char where[200];
    size_t k = (size_t)snprintf(where, sizeof where, "[");
    for (int i = 0; i < t->ndim && k < sizeof where; i++)
        k += (size_t)snprintf(where + k, sizeof where - k, "%s%lld", i ? ", " : "", (long long)idx[i]);
    if (k < sizeof where) snprintf(where + k, sizeof where - k, "]");
    return lp_fail(LP_ERR_NUMERIC, "%s: tensor \"%s\" holds %s at %s (element %lld of %lld, %s); every weight "
                   "must be finite; hint: the checkpoint is corrupt or was saved from a diverged run",
                   lp_weights_file_of(m->weights, t->name), t->name, isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf",
                   where, (long long)bad, (long long)t->numel, lp_dtype_name(t->dtype));
}

lp_status lp_model_tensor_f32(lp_model *m, const char *name, int ndim, const int64_t *shape,
                              const float **out, lp_dtype *stored) {
    const lp_tensor_view *t = lp_weights_find(m->weights, name);
    if (!t) return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is missing from the checkpoint", m->dir, name);
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char want[96], got[96];
        shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" has shape %s but config.json implies %s",
                       lp_weights_file_of(m->weights, name), name, got, want);
    }
    if (t->dtype != LP_DT_F32 && t->dtype != LP_DT_BF16 && t->dtype != LP_DT_F16)
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: tensor \"%s\" has dtype %s; expected F32, F16 or BF16",
                       lp_weights_file_of(m->weights, name), name, lp_dtype_name(t->dtype));
    LP_TRY(guard_finite(m, t));
    if (stored) *stored = t->dtype;
    int64_t n = t->numel;
    if (t->dtype == LP_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = t->data;
        return LP_OK;
    }
    float *f = malloc((size_t)(n ? n : 1) * sizeof(float));
    LP_TRY(lp_model_own(m, f));
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case LP_DT_F32: memcpy(f, src, (size_t)n * 4); break;
    case LP_DT_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            f[i] = lp_bf16_to_f32(h);
        }
        break;
    case LP_DT_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            f[i] = lp_f16_to_f32(h);
        }
        break;
    default: LP_ASSERT(!"a dtype refused above");
    }
    *out = f;
    return LP_OK;
}

/* The guard for a dense linear kept in its stored 16-bit form (checkpoint.c
 * maps it without going through lp_model_tensor_f32, which guards F32 ones;
 * packed linears are checked by their format). */
static lp_status guard_dense16(const lp_model *m, const char *base) {
    char key[256];
    snprintf(key, sizeof key, "%s.weight", base);
    const lp_tensor_view *t = lp_weights_find(m->weights, key);
    if (t && (t->dtype == LP_DT_BF16 || t->dtype == LP_DT_F16)) return guard_finite(m, t);
    return LP_OK;
}

static lp_status load_layers(lp_model *m) {
    const lp_config *c = &m->cfg;
    const int64_t D = c->dim, F = c->ffn, hd = c->head_dim;
    const int64_t rows[LP_NLIN] = {c->n_heads * hd, c->n_kv_heads * hd, c->n_kv_heads * hd, D, F, F, D};
    const int64_t cols[LP_NLIN] = {D, D, D, c->n_heads * hd, D, D, F};
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return lp_fail(LP_ERR_NOMEM, "out of memory while loading %s", m->dir);
    char name[256], base[200];
    for (int64_t l = 0; l < c->n_layers; l++) {
        lp_layer *L = &m->layers[l];
        lp_norm_name(l, 0, name, sizeof name);
        LP_TRY(lp_model_tensor_f32(m, name, 1, &D, &L->attn_norm, NULL));
        lp_norm_name(l, 1, name, sizeof name);
        LP_TRY(lp_model_tensor_f32(m, name, 1, &D, &L->ffn_norm, NULL));
        for (int k = 0; k < LP_NLIN; k++) {
            lp_linear_name(l, k, base, sizeof base);
            LP_TRY(lp_ckpt_load_linear(m, base, rows[k], cols[k], &L->lin[k]));
            LP_TRY(guard_dense16(m, base));
            bool want_bias = (k <= LP_V && c->qkv_bias) || (k == LP_O && c->o_bias);
            if (want_bias) {
                snprintf(name, sizeof name, "%s.bias", base);
                LP_TRY(lp_model_tensor_f32(m, name, 1, &rows[k], &L->lin[k].bias, NULL));
            }
        }
    }
    return LP_OK;
}

/* Tensors of layers the config does not have ("model.layers.<l>." with l >=
 * num_hidden_layers): a config that undercounts would otherwise run the
 * first layers only and say nothing. */
static lp_status check_extra_layers(const lp_model *m) {
    static const char pre[] = "model.layers.";
    for (int64_t i = 0; i < lp_weights_count(m->weights); i++) {
        const char *name = lp_weights_at(m->weights, i)->name;
        if (strncmp(name, pre, sizeof pre - 1)) continue;
        const char *p = name + sizeof pre - 1;
        int64_t l = 0;
        bool digits = false;
        for (; *p >= '0' && *p <= '9'; p++, digits = true)
            if (l < INT64_MAX / 10 - 9) l = 10 * l + (*p - '0'); /* saturates: a huge index stays too big */
        if (!digits || *p != '.' || l < m->cfg.n_layers) continue;
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%.200s\" belongs to layer %lld, but config.json has "
                       "num_hidden_layers = %lld (layers 0..%lld); hint: the config does not match the weights",
                       lp_weights_file_of(m->weights, name), name, (long long)l, (long long)m->cfg.n_layers,
                       (long long)m->cfg.n_layers - 1);
    }
    return LP_OK;
}

/* The token embedding: a 16-bit one stays in the mapping (rows are converted
 * as tokens are embedded, so a 128k-token vocabulary costs no f32 copy);
 * anything else goes through lp_model_tensor_f32. */
static lp_status load_embedding(lp_model *m) {
    static const char name[] = "model.embed_tokens.weight";
    const int64_t shp[2] = {m->cfg.vocab, m->cfg.dim};
    if (lp_weights_meta(m->weights, "llmpress.linear.model.embed_tokens")) {
        /* packed (lp_model_quantize_embeddings): rows dequantized as tokens are embedded; when tied,
         * the same linear is the head */
        lp_linear *dst = m->cfg.tied ? &m->head : &m->embed_q;
        LP_TRY(lp_ckpt_load_packed(m->weights, m->dir, "model.embed_tokens", shp[0], shp[1], dst));
        if (dst->nparts != 1)
            return lp_fail(LP_ERR_FORMAT, "%s: the packed embedding has %d parts, expected one", m->dir, dst->nparts);
        return LP_OK;
    }
    const lp_tensor_view *t = lp_weights_find(m->weights, name);
    if (t && (t->dtype == LP_DT_BF16 || t->dtype == LP_DT_F16) && t->ndim == 2 && t->shape[0] == shp[0] &&
        t->shape[1] == shp[1] && (uintptr_t)t->data % 2 == 0) {
        LP_TRY(guard_finite(m, t));
        m->embed_raw = t->data;
        m->embed_dtype = t->dtype;
        return LP_OK;
    }
    return lp_model_tensor_f32(m, name, 2, shp, &m->embed, &m->embed_dtype);
}

/* The record of how a compressed checkpoint was made, when it has one: a
 * JSON object, or the checkpoint is refused as corrupt. */
static lp_status load_provenance(lp_model *m) {
    char *p = lp_path_join(m->dir, LP_PROVENANCE_FILE);
    if (!p) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = LP_OK;
    if (lp_file_exists(p)) {
        size_t n = 0;
        lp_json_doc *doc = NULL;
        st = lp_read_file(p, &m->provenance, &n);
        if (st == LP_OK && (strlen(m->provenance) != n || lp_json_parse(m->provenance, n, p, &doc) != LP_OK ||
                            lp_json_root(doc)->type != LP_JSON_OBJECT))
            st = lp_fail(LP_ERR_FORMAT, "%s: not a JSON object (the record of how the model was made); remove the "
                         "file or compress the model again", p);
        lp_json_free(doc);
    }
    free(p);
    return st;
}

static bool gguf_path(const char *p) {
    size_t n = strlen(p);
    return n > 5 && !strcmp(p + n - 5, ".gguf") && !lp_is_dir(p);
}

lp_status lp_model_load(const char *dir, lp_model **out) {
    *out = NULL;
    if (gguf_path(dir)) return lp_model_load_gguf(dir, out);
    lp_model *m = calloc(1, sizeof *m);
    if (!m) return lp_fail(LP_ERR_NOMEM, "out of memory");
    m->dir = strdup(dir);
    lp_status st = m->dir ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK && !lp_is_dir(dir))
        st = lp_fail(LP_ERR_IO, "%s: %s; expected a checkpoint directory with config.json and "
                     "safetensors weights", dir, lp_file_exists(dir) ? "not a directory" : "no such directory");
    if (st == LP_OK) st = lp_config_load(dir, &m->cfg);
    if (st == LP_OK) st = lp_weights_open(dir, &m->weights);
    if (st == LP_OK) st = load_provenance(m);
    const lp_config *c = &m->cfg;
    if (st == LP_OK) st = load_embedding(m);
    if (st == LP_OK) st = lp_model_tensor_f32(m, "model.norm.weight", 1, &c->dim, &m->norm, NULL);
    if (st == LP_OK) st = load_layers(m);
    if (st == LP_OK) st = check_extra_layers(m);
    if (st == LP_OK) {
        if (c->tied && m->head.nparts) {
            /* the packed embedding is the head */
        } else if (c->tied) {
            m->head = (lp_linear){.rows = c->vocab, .cols = c->dim};
            lp_dense *d;
            st = lp_dense_view(c->vocab, c->dim, m->embed, m->embed_raw, m->embed_dtype, NULL, &d);
            if (st == LP_OK) st = lp_linear_add_part(&m->head, &lp_format_dense, d);
        } else {
            st = lp_ckpt_load_linear(m, "lm_head", c->vocab, c->dim, &m->head);
            if (st == LP_OK) st = guard_dense16(m, "lm_head");
        }
    }
    if (st != LP_OK) {
        lp_model_free(m);
        return st;
    }
    *out = m;
    return LP_OK;
}

void lp_model_free(lp_model *m) {
    if (!m) return;
    if (m->layers)
        for (int64_t l = 0; l < m->cfg.n_layers; l++)
            for (int k = 0; k < LP_NLIN; k++) lp_linear_free(&m->layers[l].lin[k]);
    free(m->layers);
    lp_linear_free(&m->head); /* tied: frees only what its first forward converted */
    lp_linear_free(&m->embed_q);
    for (int64_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    for (int64_t i = 0; i < m->n_aux; i++) lp_weights_close(m->aux[i]);
    free(m->aux);
    lp_weights_close(m->weights);
    lp_gguf_close(m->gguf);
    free(m->dir);
    free(m->provenance);
    free(m);
}

lp_status lp_model_set_provenance(lp_model *m, const char *json) {
    char *c = strdup(json);
    if (!c) return lp_fail(LP_ERR_NOMEM, "out of memory");
    free(m->provenance);
    m->provenance = c;
    return LP_OK;
}

const char *lp_model_provenance(const lp_model *m) { return m->provenance; }

const lp_config *lp_model_config(const lp_model *m) { return &m->cfg; }
const char *lp_model_dir(const lp_model *m) { return m->dir; }

/* Is the tensor part of a decoder linear's weight ("model.layers.<l>.<linear
 * name>.<anything but bias>")? Formats name their tensors freely, so this
 * looks at the linear's name, not at suffixes. */
static bool linear_tensor(const char *name) {
    static const char pre[] = "model.layers.";
    if (strncmp(name, pre, sizeof pre - 1)) return false;
    const char *p = name + sizeof pre - 1;
    while (*p >= '0' && *p <= '9') p++;
    if (*p++ != '.') return false;
    for (int k = 0; k < LP_NLIN; k++) {
        size_t n = strlen(lp_linear_names[k]);
        if (!strncmp(p, lp_linear_names[k], n) && p[n] == '.') return strcmp(p + n, ".bias") != 0;
    }
    return false;
}

int64_t lp_model_linear_count(const lp_model *m) { return m->cfg.n_layers * LP_NLIN; }

void lp_model_linear_info(const lp_model *m, int64_t i, lp_linear_info *out) {
    memset(out, 0, sizeof *out);
    const int64_t l = i / LP_NLIN;
    const int k = (int)(i % LP_NLIN);
    const lp_linear *L = &m->layers[l].lin[k];
    lp_linear_name(l, k, out->name, sizeof out->name);
    lp_linear_describe(L, out->format, sizeof out->format);
    out->rows = L->rows;
    out->cols = L->cols;
    out->stored_params = lp_linear_nparams(L);
    out->bytes = (int64_t)lp_linear_nbytes(L);
}

/* A GGUF file's tensors other than the decoder linears' weights
 * ("blk.<l>.<attn_q|...|ffn_down>.weight"): their elements and bytes. */
static void gguf_other(const lp_gguf *g, int64_t *params, int64_t *bytes) {
    static const char *const lin[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int64_t i = 0; i < lp_gguf_n_tensors(g); i++) {
        const lp_gguf_tensor *t = lp_gguf_tensor_at(g, i);
        const char *p = t->name;
        bool is_lin = false;
        if (!strncmp(p, "blk.", 4)) {
            p += 4;
            while (*p >= '0' && *p <= '9') p++;
            for (size_t k = 0; *p == '.' && k < sizeof lin / sizeof *lin; k++) {
                size_t n = strlen(lin[k]);
                if (!strncmp(p + 1, lin[k], n) && !strcmp(p + 1 + n, ".weight")) is_lin = true;
            }
        }
        if (is_lin) continue;
        int64_t numel = 1;
        for (int d = 0; d < t->n_dims; d++) numel *= t->ne[d];
        *params += numel;
        *bytes += (int64_t)t->nbytes;
    }
}

/* The bytes of the regular files directly in dir (weights, config,
 * tokenizer): what the model takes on disk; -1 when dir cannot be read. */
static int64_t disk_bytes(const char *dir) {
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) return -1;
    int64_t total = 0;
    for (struct dirent *e; (e = readdir(d));) {
        char *p = lp_path_join(dir, e->d_name);
        struct stat st;
        if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode)) total += (int64_t)st.st_size;
        free(p);
    }
    closedir(d);
    return total;
}

void lp_model_size_get(const lp_model *m, lp_model_size *sz) {
    memset(sz, 0, sizeof *sz);
    const lp_config *c = &m->cfg;
    char first[128] = "", d[128];
    bool mixed = false;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_linear *L = &m->layers[l].lin[k];
            sz->linear_params += L->rows * L->cols;
            sz->linear_stored_params += lp_linear_nparams(L);
            sz->linear_bytes += (int64_t)lp_linear_nbytes(L);
            sz->linear_paper_bits += lp_linear_paper_bits(L);
            if (!lp_linear_is(L, &lp_format_dense)) sz->n_compressed++;
            lp_linear_describe(L, d, sizeof d);
            if (!first[0]) snprintf(first, sizeof first, "%s", d);
            else if (strcmp(first, d)) mixed = true;
        }
    }
    snprintf(sz->formats, sizeof sz->formats, "%s%s", first, mixed ? " (mixed)" : "");
    /* Everything else is stored as in the checkpoint: count it from the file. */
    int64_t other_params = 0, other_bytes = 0;
    if (m->gguf) {
        gguf_other(m->gguf, &other_params, &other_bytes);
        sz->total_params = sz->linear_params + other_params;
        sz->total_bytes = sz->linear_bytes + other_bytes;
        sz->disk_bytes = (int64_t)lp_gguf_file_size(m->gguf);
        return;
    }
    /* a packed embedding or head is counted from memory (it may not be in the file yet) */
    const bool embed_packed = m->embed_q.nparts || (c->tied && !lp_linear_is(&m->head, &lp_format_dense));
    const bool head_packed = !c->tied && !lp_linear_is(&m->head, &lp_format_dense);
    if (embed_packed) {
        const lp_linear *e = c->tied ? &m->head : &m->embed_q;
        other_bytes += (int64_t)lp_linear_nbytes(e);
        other_params += e->rows * e->cols;
    }
    if (head_packed) {
        other_bytes += (int64_t)lp_linear_nbytes(&m->head);
        other_params += m->head.rows * m->head.cols;
    }
    for (int64_t i = 0; i < lp_weights_count(m->weights); i++) {
        const lp_tensor_view *t = lp_weights_at(m->weights, i);
        if (linear_tensor(t->name)) continue; /* counted above, whatever its form in the file */
        if (embed_packed && !strncmp(t->name, "model.embed_tokens.", 19)) continue;
        if (head_packed && !strncmp(t->name, "lm_head.", 8)) continue;
        other_bytes += (int64_t)t->nbytes;
        other_params += t->numel;
    }
    sz->total_params = sz->linear_params + other_params;
    sz->total_bytes = sz->linear_bytes + other_bytes;
    sz->disk_bytes = disk_bytes(m->dir);
}
