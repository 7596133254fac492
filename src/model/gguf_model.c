/*
 * gguf_model.c - a model from a GGUF file (llama.cpp's "llama" and "qwen2"
 * architectures), run on the file's own bytes.
 *
 * What: lp_model_load_gguf maps the file, reads the hyper-parameters from
 *   llama.cpp's keys into lp_config, and builds every linear over the
 *   mapped tensors: F32 / F16 / BF16 as dense parts, every ggml block type
 *   as a "ggml" part (format/ggml.h) that computes exactly what llama.cpp's
 *   dequantization gives. The embedding stays in its stored form too; a
 *   model without output.weight uses token_embd as its head, as llama.cpp.
 * Why: eval / run / info of a GGUF file compare llmpress and llama.cpp on
 *   identical bytes (and read files llama.cpp's own quantizer made).
 * Design: llama.cpp's llama architecture rotates adjacent pairs where the
 *   checkpoints we run rotate halves: q and k rows are put back in
 *   Hugging Face order (checkpoint row h*hd + k*hd/2 + j = file row
 *   h*hd + 2j + k) in a copy of those two tensors; everything else is a view
 *   into the mapping. Every F32 / F16 / BF16 value we use is checked
 *   finite, and every block scale (lp_ggml_part_view): a corrupt file is
 *   an error naming the tensor, not NaN logits.
 */
#include "core/finite.h"
#include "core/half.h"
#include "core/status_impl.h"
#include "format/dense.h"
#include "format/ggml.h"
#include "format/ggml_quants.h"
#include "io/gguf.h"
#include "model/model_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    lp_model *m;
    const lp_gguf *g;
    const char *path;
    char arch[32];
} gload;

static lp_status key_i64(const gload *x, const char *suffix, int64_t def, bool required, int64_t *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", x->arch, suffix);
    if (!lp_gguf_has(x->g, k)) {
        if (required) return lp_fail(LP_ERR_FORMAT, "%s: key %s is missing", x->path, k);
        *out = def;
        return LP_OK;
    }
    LP_TRY(lp_gguf_get_i64(x->g, k, out));
    return LP_OK;
}

static lp_status key_f32(const gload *x, const char *suffix, float def, float *out) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", x->arch, suffix);
    if (!lp_gguf_has(x->g, k)) {
        *out = def;
        return LP_OK;
    }
    return lp_gguf_get_f32(x->g, k, out);
}

static lp_status read_config(gload *x) {
    lp_config *c = &x->m->cfg;
    memset(c, 0, sizeof *c);
    lp_gguf_str a;
    LP_TRY(lp_gguf_get_str(x->g, "general.architecture", &a));
    snprintf(x->arch, sizeof x->arch, "%.*s", (int)(a.n < 31 ? a.n : 31), a.s);
    if (strcmp(x->arch, "llama") && strcmp(x->arch, "qwen2"))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: architecture \"%s\" is not supported (llama, qwen2)", x->path, x->arch);
    c->arch = strcmp(x->arch, "qwen2") ? LP_ARCH_LLAMA : LP_ARCH_QWEN2;
    snprintf(c->arch_name, sizeof c->arch_name, "gguf:%s", x->arch);
    snprintf(c->dtype, sizeof c->dtype, "gguf");
    LP_TRY(key_i64(x, "embedding_length", 0, true, &c->dim));
    LP_TRY(key_i64(x, "block_count", 0, true, &c->n_layers));
    LP_TRY(key_i64(x, "feed_forward_length", 0, true, &c->ffn));
    LP_TRY(key_i64(x, "attention.head_count", 0, true, &c->n_heads));
    LP_TRY(key_i64(x, "attention.head_count_kv", c->n_heads, false, &c->n_kv_heads));
    LP_TRY(key_i64(x, "context_length", 2048, false, &c->max_pos));
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_layers > 4096 || c->ffn <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads || c->max_pos <= 0)
        return lp_fail(LP_ERR_FORMAT, "%s: implausible hyper-parameters (embedding %lld, blocks %lld, ffn %lld, "
                       "heads %lld / %lld kv, context %lld)", x->path, (long long)c->dim, (long long)c->n_layers,
                       (long long)c->ffn, (long long)c->n_heads, (long long)c->n_kv_heads, (long long)c->max_pos);
    LP_TRY(key_i64(x, "attention.key_length", c->dim / c->n_heads, false, &c->head_dim));
    int64_t vlen, rope_dim;
    LP_TRY(key_i64(x, "attention.value_length", c->head_dim, false, &vlen));
    LP_TRY(key_i64(x, "rope.dimension_count", c->head_dim, false, &rope_dim));
    if (vlen != c->head_dim || rope_dim != c->head_dim || c->head_dim <= 0 || c->head_dim % 2)
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: head sizes key %lld / value %lld / rotary %lld: only equal, even "
                       "ones are supported", x->path, (long long)c->head_dim, (long long)vlen, (long long)rope_dim);
    float theta, eps;
    LP_TRY(key_f32(x, "rope.freq_base", 10000.0f, &theta));
    LP_TRY(key_f32(x, "attention.layer_norm_rms_epsilon", 1e-5f, &eps));
    if (!(theta > 0) || !(eps > 0)) return lp_fail(LP_ERR_FORMAT, "%s: rope.freq_base and the rms epsilon must be > 0", x->path);
    c->rope_theta = theta;
    c->norm_eps = eps;
    c->rope_type = LP_ROPE_DEFAULT;
    c->rope_factor = 1.0;
    char k[128];
    snprintf(k, sizeof k, "%s.rope.scaling.type", x->arch);
    if (lp_gguf_has(x->g, k)) {
        lp_gguf_str s;
        LP_TRY(lp_gguf_get_str(x->g, k, &s));
        if (s.n == 6 && !memcmp(s.s, "linear", 6)) {
            float f;
            LP_TRY(key_f32(x, "rope.scaling.factor", 1.0f, &f));
            if (!(f > 0)) return lp_fail(LP_ERR_FORMAT, "%s: rope.scaling.factor must be > 0", x->path);
            c->rope_type = LP_ROPE_LINEAR;
            c->rope_factor = f;
        } else if (!(s.n == 4 && !memcmp(s.s, "none", 4))) {
            return lp_fail(LP_ERR_UNSUPPORTED, "%s: rope scaling \"%.*s\" is not supported (none, linear)", x->path,
                           (int)(s.n > 20 ? 20 : s.n), s.s);
        }
    }
    const lp_gguf_tensor *e = lp_gguf_find_tensor(x->g, "token_embd.weight");
    if (!e || e->n_dims != 2 || e->ne[0] != c->dim)
        return lp_fail(LP_ERR_FORMAT, "%s: token_embd.weight is missing or not [%lld, vocab]", x->path, (long long)c->dim);
    c->vocab = e->ne[1];
    c->tied = lp_gguf_find_tensor(x->g, "output.weight") == NULL;
    c->qkv_bias = lp_gguf_find_tensor(x->g, "blk.0.attn_q.bias") != NULL;
    c->o_bias = lp_gguf_find_tensor(x->g, "blk.0.attn_output.bias") != NULL;
    c->bos = c->eos = -1;
    uint32_t id;
    if (lp_gguf_has(x->g, "tokenizer.ggml.bos_token_id") && lp_gguf_get_u32(x->g, "tokenizer.ggml.bos_token_id", &id) == LP_OK)
        c->bos = (int32_t)id;
    if (lp_gguf_has(x->g, "tokenizer.ggml.eos_token_id") && lp_gguf_get_u32(x->g, "tokenizer.ggml.eos_token_id", &id) == LP_OK)
        c->eos = (int32_t)id;
    return LP_OK;
}

/* Tensor `name` with ne = [cols, rows] (rows == 0: a vector of cols). */
static lp_status tensor(const gload *x, const char *name, int64_t rows, int64_t cols, const lp_gguf_tensor **out) {
    const lp_gguf_tensor *t = lp_gguf_find_tensor(x->g, name);
    if (!t) return lp_fail(LP_ERR_FORMAT, "%s: tensor %s is missing", x->path, name);
    const bool ok = rows ? t->n_dims == 2 && t->ne[0] == cols && t->ne[1] == rows : t->n_dims == 1 && t->ne[0] == cols;
    if (!ok)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor %s is [%lld, %lld], expected [%lld, %lld] (ne[0] first)", x->path,
                       name, (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 1), (long long)cols,
                       (long long)(rows ? rows : 1));
    if (!lp_ggml_can_dequant(t->type))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: tensor %s has type %s, which llmpress does not read", x->path, name,
                       lp_ggml_type_of(t->type).name ? lp_ggml_type_of(t->type).name : "?");
    *out = t;
    return LP_OK;
}

/* A vector as f32: a view of an F32 tensor, else a converted copy; finite. */
static lp_status vector_f32(gload *x, const char *name, int64_t n, const float **out) {
    const lp_gguf_tensor *t;
    LP_TRY(tensor(x, name, 0, n, &t));
    const float *v = t->data;
    if (t->type != LP_GGML_F32 || (uintptr_t)t->data % 4) {
        float *c = malloc((size_t)n * sizeof *c);
        if (!c) return lp_fail(LP_ERR_NOMEM, "out of memory");
        lp_ggml_dequant_row(t->type, t->data, c, n);
        LP_TRY(lp_model_own(x->m, c));
        v = c;
    }
    const int64_t bad = lp_finite_find(LP_FP_F32, v, n);
    if (bad >= 0)
        return lp_fail(LP_ERR_NUMERIC, "%s: tensor %s holds a non-finite value at [%lld]; every weight must be finite",
                       x->path, name, (long long)bad);
    *out = v;
    return LP_OK;
}

/* Rows of t's bytes in checkpoint order (llama's q/k): a copy owned by the model. */
static lp_status unpermute(gload *x, const lp_gguf_tensor *t, int64_t rows, int64_t cols, int64_t heads, int64_t hd,
                           const void **out) {
    const uint64_t rb = lp_ggml_row_bytes(t->type, cols);
    if (heads * hd != rows)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor %s has %lld rows, expected %lld heads x %lld", x->path, t->name,
                       (long long)rows, (long long)heads, (long long)hd);
    uint8_t *c = malloc((size_t)(rb * (uint64_t)rows));
    if (!c) return lp_fail(LP_ERR_NOMEM, "out of memory");
    for (int64_t h = 0; h < heads; h++)
        for (int64_t j = 0; j < hd / 2; j++)
            for (int k = 0; k < 2; k++)
                memcpy(c + (uint64_t)(h * hd + k * (hd / 2) + j) * rb,
                       (const uint8_t *)t->data + (uint64_t)(h * hd + 2 * j + k) * rb, (size_t)rb);
    LP_TRY(lp_model_own(x->m, c));
    *out = c;
    return LP_OK;
}

/* F32 / F16 / BF16 values must be finite (a block type's scales are
 * checked by lp_ggml_part_view, as llama.cpp's ggml_validate_row_data). */
static lp_status check_plain(gload *x, const char *name, int type, const void *data, int64_t rows, int64_t cols) {
    const lp_fp_type ft = type == LP_GGML_F32 ? LP_FP_F32 : type == LP_GGML_F16 ? LP_FP_F16 : LP_FP_BF16;
    const int64_t bad = lp_finite_find(ft, data, rows * cols);
    if (bad >= 0)
        return lp_fail(LP_ERR_NUMERIC, "%s: tensor %s holds a non-finite value at [%lld, %lld]; every weight must be "
                       "finite", x->path, name, (long long)(bad / cols), (long long)(bad % cols));
    return LP_OK;
}

/* A linear over tensor `name` (rows x cols); heads > 0: llama's q/k layout. */
static lp_status linear(gload *x, const char *name, int64_t rows, int64_t cols, int64_t heads, int64_t hd,
                        const char *bias, lp_linear *out) {
    const lp_gguf_tensor *t;
    LP_TRY(tensor(x, name, rows, cols, &t));
    const void *data = t->data;
    if (heads) LP_TRY(unpermute(x, t, rows, cols, heads, hd, &data));
    *out = (lp_linear){.rows = rows, .cols = cols};
    const bool plain = t->type == LP_GGML_F32 || t->type == LP_GGML_F16 || t->type == LP_GGML_BF16;
    if (plain) LP_TRY(check_plain(x, name, t->type, data, rows, cols));
    const size_t align = t->type == LP_GGML_F32 ? 4 : 2;
    if (plain && (uintptr_t)data % align == 0) {
        lp_dense *d;
        const lp_dtype dt = t->type == LP_GGML_F32 ? LP_DT_F32 : t->type == LP_GGML_F16 ? LP_DT_F16 : LP_DT_BF16;
        LP_TRY(lp_dense_view(rows, cols, dt == LP_DT_F32 ? data : NULL, dt == LP_DT_F32 ? NULL : data, dt, NULL, &d));
        LP_TRY(lp_linear_add_part(out, &lp_format_dense, d));
    } else {
        lp_ggml_part *p;
        LP_TRY(lp_ggml_part_view(t->type, rows, cols, data, &p));
        LP_TRY(lp_linear_add_part(out, &lp_format_ggml, p));
    }
    if (bias && lp_gguf_find_tensor(x->g, bias)) {
        LP_TRY(vector_f32(x, bias, rows, &out->bias));
        if (heads) { /* the bias rows follow the weight's */
            float *b = malloc((size_t)rows * sizeof *b);
            if (!b) return lp_fail(LP_ERR_NOMEM, "out of memory");
            for (int64_t h = 0; h < heads; h++)
                for (int64_t j = 0; j < hd / 2; j++)
                    for (int k = 0; k < 2; k++) b[h * hd + k * (hd / 2) + j] = out->bias[h * hd + 2 * j + k];
            LP_TRY(lp_model_own(x->m, b));
            out->bias = b;
        }
    }
    return LP_OK;
}

static lp_status load_all(gload *x) {
    lp_model *m = x->m;
    const lp_config *c = &m->cfg;
    const int llama = c->arch != LP_ARCH_QWEN2;
    /* the embedding: 16-bit or f32 rows as stored, else a ggml part whose rows are dequantized as tokens
     * are embedded (the same part is the head when there is no output.weight) */
    lp_linear emb;
    LP_TRY(linear(x, "token_embd.weight", c->vocab, c->dim, 0, 0, NULL, &emb));
    if (c->tied) {
        m->head = emb;
    } else {
        m->embed_q = emb;
        LP_TRY(linear(x, "output.weight", c->vocab, c->dim, 0, 0, NULL, &m->head));
    }
    LP_TRY(vector_f32(x, "output_norm.weight", c->dim, &m->norm));
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return lp_fail(LP_ERR_NOMEM, "out of memory");
    static const char *const names[LP_NLIN] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                               "ffn_down"};
    const int64_t H = c->n_heads, KV = c->n_kv_heads, hd = c->head_dim, D = c->dim, F = c->ffn;
    const int64_t rows[LP_NLIN] = {H * hd, KV * hd, KV * hd, D, F, F, D};
    const int64_t cols[LP_NLIN] = {D, D, D, H * hd, D, D, F};
    char nm[96], bn[96];
    for (int64_t l = 0; l < c->n_layers; l++) {
        lp_layer *L = &m->layers[l];
        snprintf(nm, sizeof nm, "blk.%lld.attn_norm.weight", (long long)l);
        LP_TRY(vector_f32(x, nm, D, &L->attn_norm));
        snprintf(nm, sizeof nm, "blk.%lld.ffn_norm.weight", (long long)l);
        LP_TRY(vector_f32(x, nm, D, &L->ffn_norm));
        for (int k = 0; k < LP_NLIN; k++) {
            snprintf(nm, sizeof nm, "blk.%lld.%s.weight", (long long)l, names[k]);
            snprintf(bn, sizeof bn, "blk.%lld.%s.bias", (long long)l, names[k]);
            const int64_t heads = !llama ? 0 : k == LP_Q ? H : k == LP_K ? KV : 0;
            LP_TRY(linear(x, nm, rows[k], cols[k], heads, hd, bn, &L->lin[k]));
        }
    }
    if (lp_gguf_find_tensor(x->g, "rope_freqs.weight")) {
        LP_TRY(vector_f32(x, "rope_freqs.weight", hd / 2, &m->rope_factors));
        for (int64_t i = 0; i < hd / 2; i++)
            if (!(m->rope_factors[i] > 0))
                return lp_fail(LP_ERR_FORMAT, "%s: rope_freqs.weight[%lld] = %g: the frequency divisors must be > 0",
                               x->path, (long long)i, (double)m->rope_factors[i]);
    }
    snprintf(nm, sizeof nm, "blk.%lld.attn_norm.weight", (long long)c->n_layers);
    if (lp_gguf_find_tensor(x->g, nm))
        return lp_fail(LP_ERR_FORMAT, "%s: tensor %s lies past block_count = %lld", x->path, nm, (long long)c->n_layers);
    return LP_OK;
}

lp_status lp_model_load_gguf(const char *path, lp_model **out) {
    *out = NULL;
    lp_model *m = calloc(1, sizeof *m);
    if (!m) return lp_fail(LP_ERR_NOMEM, "out of memory");
    m->dir = strdup(path);
    lp_status st = m->dir ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK) st = lp_gguf_open(path, &m->gguf);
    gload x = {.m = m, .g = m->gguf, .path = path};
    if (st == LP_OK) st = read_config(&x);
    if (st == LP_OK) st = load_all(&x);
    if (st != LP_OK) {
        lp_model_free(m);
        return st;
    }
    *out = m;
    return LP_OK;
}
