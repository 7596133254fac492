/*
 * gguf_export.c - a model as one GGUF file for llama.cpp.
 *
 * What: lp_export_gguf writes the hyper-parameters under llama.cpp's keys,
 *   the tokenizer (tokenizer_gguf.c), and every tensor under llama.cpp's
 *   names: token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v,
 *   attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm,
 *   output (untied heads), rope_freqs (Llama 3 rope scaling).
 * Why: llama.cpp / ollama run GGUF; writing it ourselves lets the
 *   calibrated quantizers choose the codes (quant/ggml_method.c) while the
 *   file stays exactly what llama.cpp expects.
 * Design:
 *   - Types. A decoder linear already in a "ggml" part (quantized by the
 *     ggml method: RTN, importance-weighted or GPTQ) is written as stored;
 *     a dense one is rounded here with llama.cpp's own quantizer into the
 *     asked type, after llama.cpp's fallback for widths that are not a
 *     multiple of the type's block (lp_ggml_effective_type). The output
 *     tensor (and a tied embedding, which llama.cpp then uses as output)
 *     follows llama-quantize's preset: Q6_K for quantized types (Q8_0 when
 *     the width does not divide, or for Q8_0), F16 for F16; an untied
 *     embedding takes the asked type. Norms and biases are F32.
 *   - Rotary layout: llama.cpp's "llama" architecture rotates adjacent
 *     pairs, Hugging Face's Llama rotates halves, so q and k rows are
 *     permuted per head (row h*hd + 2j + k of the file = row h*hd + k*hd/2 + j
 *     of the checkpoint). Qwen2 ("qwen2", rotate-half in llama.cpp too)
 *     keeps its rows and gains its biases.
 *   - Memory: quantized tensors are made one at a time into buffers the
 *     writer keeps until the file is written (the file's size in RAM).
 */
#include "llmpress/export.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "format/dense.h"
#include "format/ggml.h"
#include "format/ggml_quants.h"
#include "io/gguf.h"
#include "model/model_impl.h"
#include "quant/ggml_method.h"
#include "tokenizer/tokenizer_gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lp_gguf_options lp_gguf_default_options(void) { return (lp_gguf_options){.type = "Q4_K"}; }

/* ---- buffers the writer points into ---- */

typedef struct {
    void **p;
    size_t n, cap;
} bufs;

static void *keep(bufs *b, void *p) {
    if (!p) return NULL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        void **np = realloc(b->p, cap * sizeof *np);
        if (!np) {
            free(p);
            return NULL;
        }
        b->p = np;
        b->cap = cap;
    }
    return b->p[b->n++] = p;
}

static void bufs_free(bufs *b) {
    for (size_t i = 0; i < b->n; i++) free(b->p[i]);
    free(b->p);
}

/* ---- types ---- */

/* llama-quantize's preset for the output tensor (and a tied embedding). */
static int output_type(int t, int64_t cols) {
    if (t == LP_GGML_F16 || t == LP_GGML_F32) return t;
    int out = cols % lp_ggml_type_of(t).block ? LP_GGML_Q8_0 : t == LP_GGML_Q8_0 ? LP_GGML_Q8_0 : LP_GGML_Q6_K;
    return lp_ggml_effective_type(out, cols);
}

/* llama.cpp's general.file_type for a "pure" file of type t. */
static uint32_t file_type(int t) {
    switch (t) {
    case LP_GGML_F32: return 0;
    case LP_GGML_F16: return 1;
    case LP_GGML_Q4_0: return 2;
    case LP_GGML_Q4_1: return 3;
    case LP_GGML_Q8_0: return 7;
    case LP_GGML_Q5_0: return 8;
    case LP_GGML_Q5_1: return 9;
    case LP_GGML_Q2_K: return 10;
    case LP_GGML_Q3_K: return 11; /* Q3_K_S: every tensor Q3_K */
    case LP_GGML_Q4_K: return 14; /* Q4_K_S */
    case LP_GGML_Q5_K: return 16; /* Q5_K_S */
    case LP_GGML_Q6_K: return 18;
    case LP_GGML_IQ4_NL: return 25;
    default: return 1;
    }
}

static int parse_type(const char *name, const char *what, int *out) {
    static const int ok[] = {LP_GGML_F16, LP_GGML_Q8_0, LP_GGML_Q4_0, LP_GGML_Q4_1, LP_GGML_Q5_0, LP_GGML_Q5_1,
                             LP_GGML_IQ4_NL, LP_GGML_Q2_K, LP_GGML_Q3_K, LP_GGML_Q4_K, LP_GGML_Q5_K, LP_GGML_Q6_K,
                             LP_GGML_F32};
    int t = name ? lp_ggml_type_by_name(name) : -1;
    for (size_t i = 0; t >= 0 && i < sizeof ok / sizeof *ok; i++)
        if (ok[i] == t) {
            *out = t;
            return 0;
        }
    lp_fail(LP_ERR_ARG, "%s type \"%s\" is not one we write (F32, F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, "
            "Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)", what, name ? name : "(none)");
    return -1;
}

/* rows x cols f32 -> type t, rows in the order perm (NULL: as they are). */
static lp_status quantize_matrix(int t, const float *W, int64_t rows, int64_t cols, const int64_t *perm, bufs *b,
                                 void **out) {
    const uint64_t rb = lp_ggml_row_bytes(t, cols);
    uint8_t *dst = keep(b, malloc((size_t)(rb * (uint64_t)rows)));
    if (!dst) return lp_fail(LP_ERR_NOMEM, "gguf: out of memory for a %lld x %lld tensor", (long long)rows,
                             (long long)cols);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        const float *src = W + (perm ? perm[r] : r) * cols;
        uint8_t *d = dst + (uint64_t)r * rb;
        if (t == LP_GGML_F32) memcpy(d, src, (size_t)cols * sizeof(float));
        else lp_ggml_quantize_row(t, src, NULL, d, cols);
    }
    *out = dst;
    return LP_OK;
}

/* The file's row r is the checkpoint's row perm[r] (llama's q/k rotary layout). */
static int64_t *rope_perm(int64_t heads, int64_t hd) {
    int64_t *p = malloc((size_t)(heads * hd) * sizeof *p);
    if (!p) return NULL;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t j = 0; j < hd / 2; j++)
            for (int k = 0; k < 2; k++) p[h * hd + 2 * j + k] = h * hd + k * (hd / 2) + j;
    return p;
}

/* ---- one linear ---- */

typedef struct {
    lp_model *m;
    lp_gguf_writer *w;
    bufs b;
    int type; /* the asked type */
    int llama_rope;
    int verbose;
} exporter;

static lp_status add_tensor(exporter *x, const char *name, int64_t rows, int64_t cols, int type, const void *data) {
    const int64_t ne[2] = {cols, rows};
    if (x->verbose)
        fprintf(stderr, "[export] %-28s %6lld x %-6lld %s\n", name, (long long)rows, (long long)cols,
                lp_ggml_type_of(type).name);
    return lp_gguf_add_tensor(x->w, name, rows == 1 ? 1 : 2, ne, type, data);
}

static lp_status add_f32(exporter *x, const char *name, const float *v, int64_t n) {
    const int64_t ne[1] = {n};
    return lp_gguf_add_tensor(x->w, name, 1, ne, LP_GGML_F32, v);
}

static lp_status add_linear(exporter *x, const lp_linear *l, const char *ckpt_name, const char *name, int64_t heads,
                            int64_t hd, int type) {
    int64_t *perm = heads ? rope_perm(heads, hd) : NULL;
    if (heads && !perm) return lp_fail(LP_ERR_NOMEM, "gguf: out of memory");
    lp_status st = LP_OK;
    void *data = NULL;
    int t = type;
    if (l->nparts == 1 && l->part[0].fmt == &lp_format_ggml) {
        /* as the ggml method stored it: copy the rows (permuted for rope) */
        const lp_ggml_part *p = l->part[0].data;
        t = p->type;
        const uint64_t rb = lp_ggml_row_bytes(t, l->cols);
        uint8_t *d = keep(&x->b, malloc((size_t)(rb * (uint64_t)l->rows)));
        if (!d) st = lp_fail(LP_ERR_NOMEM, "gguf: out of memory");
        for (int64_t r = 0; st == LP_OK && r < l->rows; r++)
            memcpy(d + (uint64_t)r * rb, p->blocks + (uint64_t)(perm ? perm[r] : r) * p->row_bytes, (size_t)rb);
        data = d;
    } else if (l->nparts == 1 && l->part[0].fmt == &lp_format_dense) {
        t = lp_ggml_effective_type(type, l->cols);
        if (t < 0) {
            st = lp_fail(LP_ERR_ARG, "gguf: %s has rows of %lld values, not a multiple of %s's block of %d: "
                         "llama.cpp cannot store it in that type", ckpt_name, (long long)l->cols,
                         lp_ggml_type_of(type).name, lp_ggml_type_of(type).block);
        } else {
            lp_dense *d = l->part[0].data;
            st = lp_dense_materialize(d);
            if (st == LP_OK) st = quantize_matrix(t, d->w, l->rows, l->cols, perm, &x->b, &data);
        }
    } else {
        char desc[160];
        lp_linear_describe(l, desc, sizeof desc);
        st = lp_fail(LP_ERR_ARG, "gguf: %s is stored as %s; a GGUF file holds llama.cpp's types only: export the "
                     "original model (with --method gptq|awq|rtn), or quantize with --method ggml first",
                     ckpt_name, desc);
    }
    if (st == LP_OK) st = add_tensor(x, name, l->rows, l->cols, t, data);
    free(perm);
    return st;
}

/* A bias, its rows permuted as the weight's (heads > 0: llama's q/k layout). */
static lp_status add_bias(exporter *x, const lp_linear *l, const char *name, int64_t heads, int64_t hd) {
    if (!heads) return add_f32(x, name, l->bias, l->rows);
    int64_t *perm = rope_perm(heads, hd);
    float *b = keep(&x->b, malloc((size_t)l->rows * sizeof *b));
    if (!perm || !b) {
        free(perm);
        return lp_fail(LP_ERR_NOMEM, "gguf: out of memory");
    }
    for (int64_t r = 0; r < l->rows; r++) b[r] = l->bias[perm[r]];
    free(perm);
    return add_f32(x, name, b, l->rows);
}

/* ---- hyper-parameters ---- */

static lp_status write_hparams(exporter *x, const char *arch, const char *model_name) {
    const lp_config *c = &x->m->cfg;
    lp_gguf_writer *w = x->w;
    char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s." s, arch), k)
    LP_TRY(lp_gguf_set_str(w, "general.architecture", arch));
    LP_TRY(lp_gguf_set_str(w, "general.name", model_name));
    LP_TRY(lp_gguf_set_u32(w, "general.file_type", file_type(x->type)));
    LP_TRY(lp_gguf_set_u32(w, "general.quantization_version", 2));
    LP_TRY(lp_gguf_set_u32(w, KEY("vocab_size"), (uint32_t)c->vocab));
    LP_TRY(lp_gguf_set_u32(w, KEY("context_length"), (uint32_t)c->max_pos));
    LP_TRY(lp_gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->dim));
    LP_TRY(lp_gguf_set_u32(w, KEY("block_count"), (uint32_t)c->n_layers));
    LP_TRY(lp_gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->ffn));
    LP_TRY(lp_gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_heads));
    LP_TRY(lp_gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads));
    LP_TRY(lp_gguf_set_f32(w, KEY("rope.freq_base"), (float)c->rope_theta));
    LP_TRY(lp_gguf_set_f32(w, KEY("attention.layer_norm_rms_epsilon"), c->norm_eps));
    LP_TRY(lp_gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)c->head_dim));
    if (c->head_dim * c->n_heads != c->dim) {
        LP_TRY(lp_gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim));
        LP_TRY(lp_gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim));
    }
    if (c->rope_type == LP_ROPE_LINEAR) {
        LP_TRY(lp_gguf_set_str(w, KEY("rope.scaling.type"), "linear"));
        LP_TRY(lp_gguf_set_f32(w, KEY("rope.scaling.factor"), (float)c->rope_factor));
    }
#undef KEY
    return LP_OK;
}

/* Llama 3's rope scaling as llama.cpp takes it: one divisor per frequency. */
static lp_status add_rope_freqs(exporter *x) {
    const lp_config *c = &x->m->cfg;
    const int64_t half = c->head_dim / 2;
    float *f = keep(&x->b, malloc((size_t)half * sizeof *f));
    if (!f) return lp_fail(LP_ERR_NOMEM, "gguf: out of memory");
    const double lo_wavelen = (double)c->rope_orig_max / c->rope_low_freq;
    const double hi_wavelen = (double)c->rope_orig_max / c->rope_high_freq;
    for (int64_t i = 0; i < half; i++) {
        double freq = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)c->head_dim);
        double wavelen = 2.0 * M_PI / freq;
        if (wavelen < hi_wavelen) f[i] = 1.0f;
        else if (wavelen > lo_wavelen) f[i] = (float)c->rope_factor;
        else {
            double smooth = ((double)c->rope_orig_max / wavelen - c->rope_low_freq) /
                            (c->rope_high_freq - c->rope_low_freq);
            f[i] = (float)(1.0 / ((1.0 - smooth) / c->rope_factor + smooth));
        }
    }
    return add_f32(x, "rope_freqs.weight", f, half);
}

/* ---- the embedding ---- */

static lp_status add_embedding(exporter *x, int type) {
    lp_model *m = x->m;
    const int64_t V = m->cfg.vocab, D = m->cfg.dim;
    float *E = malloc((size_t)(V * D) * sizeof *E);
    int32_t *ids = malloc((size_t)V * sizeof *ids);
    lp_status st = E && ids ? LP_OK : lp_fail(LP_ERR_NOMEM, "gguf: out of memory for the %lld x %lld embedding",
                                              (long long)V, (long long)D);
    void *data = NULL;
    if (st == LP_OK) {
        for (int64_t i = 0; i < V; i++) ids[i] = (int32_t)i;
        lp_embed_tokens(m, ids, V, E);
        st = quantize_matrix(type, E, V, D, NULL, &x->b, &data);
    }
    if (st == LP_OK) st = add_tensor(x, "token_embd.weight", V, D, type, data);
    free(E);
    free(ids);
    return st;
}

lp_status lp_gguf_options_check(const lp_gguf_options *o) {
    int t;
    if (parse_type(o->type, "GGUF", &t)) return LP_ERR_ARG;
    if (o->embed_type && parse_type(o->embed_type, "the embedding's", &t)) return LP_ERR_ARG;
    if (o->head_type && parse_type(o->head_type, "the head's", &t)) return LP_ERR_ARG;
    return LP_OK;
}

lp_status lp_export_gguf(lp_model *m, const lp_tokenizer *tok, const lp_gguf_options *o, const char *path) {
    const lp_config *c = &m->cfg;
    const char *arch = c->arch == LP_ARCH_QWEN2 ? "qwen2" : "llama";
    exporter x = {.m = m, .llama_rope = c->arch != LP_ARCH_QWEN2, .verbose = o->verbose};
    if (parse_type(o->type, "GGUF", &x.type)) return LP_ERR_ARG;
    int embed_t, head_t;
    const int head_default = output_type(x.type, c->dim);
    const int embed_default = c->tied ? head_default : lp_ggml_effective_type(x.type, c->dim);
    if (o->head_type ? parse_type(o->head_type, "the head's", &head_t) : (head_t = head_default, 0)) return LP_ERR_ARG;
    if (o->embed_type ? parse_type(o->embed_type, "the embedding's", &embed_t) : (embed_t = embed_default, 0))
        return LP_ERR_ARG;
    if (c->tied && o->head_type && o->embed_type && head_t != embed_t)
        return lp_fail(LP_ERR_ARG, "gguf: the model ties its head to its embedding: one tensor, one type (%s or %s)",
                       o->head_type, o->embed_type);
    if (c->tied && o->head_type) embed_t = head_t;
    if (embed_t < 0 || head_t < 0 || c->dim % lp_ggml_type_of(embed_t).block || c->dim % lp_ggml_type_of(head_t).block)
        return lp_fail(LP_ERR_ARG, "gguf: the embedding's rows of %lld values do not divide into blocks of the "
                       "type asked for it", (long long)c->dim);
    if (c->sliding_window > 0 && c->sliding_window < c->max_pos)
        return lp_fail(LP_ERR_UNSUPPORTED, "gguf: a sliding attention window (%lld) is not written", (long long)c->sliding_window);
    if (c->head_dim % 2) return lp_fail(LP_ERR_UNSUPPORTED, "gguf: an odd head_dim %lld", (long long)c->head_dim);

    LP_TRY(lp_gguf_writer_init(&x.w));
    const char *base = strrchr(m->dir, '/');
    base = base && base[1] ? base + 1 : m->dir;
    lp_status st = write_hparams(&x, arch, base);
    if (st == LP_OK) st = lp_tokenizer_gguf_write(tok, c->vocab, x.w);
    if (st == LP_OK) st = add_embedding(&x, embed_t);
    if (st == LP_OK && c->rope_type == LP_ROPE_LLAMA3) st = add_rope_freqs(&x);
    static const char *const names[LP_NLIN] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up",
                                               "ffn_down"};
    char ck[160], nm[96];
    for (int64_t l = 0; st == LP_OK && l < c->n_layers; l++) {
        lp_layer *L = &m->layers[l];
        snprintf(nm, sizeof nm, "blk.%lld.attn_norm.weight", (long long)l);
        st = add_f32(&x, nm, L->attn_norm, c->dim);
        for (int k = 0; st == LP_OK && k < LP_NLIN; k++) {
            lp_linear_name(l, k, ck, sizeof ck);
            snprintf(nm, sizeof nm, "blk.%lld.%s.weight", (long long)l, names[k]);
            const int64_t heads = !x.llama_rope ? 0 : k == LP_Q ? c->n_heads : k == LP_K ? c->n_kv_heads : 0;
            st = add_linear(&x, &L->lin[k], ck, nm, heads, c->head_dim, x.type);
            if (st == LP_OK && L->lin[k].bias) {
                snprintf(nm, sizeof nm, "blk.%lld.%s.bias", (long long)l, names[k]);
                st = add_bias(&x, &L->lin[k], nm, heads, c->head_dim);
            }
        }
        snprintf(nm, sizeof nm, "blk.%lld.ffn_norm.weight", (long long)l);
        if (st == LP_OK) st = add_f32(&x, nm, L->ffn_norm, c->dim);
    }
    if (st == LP_OK) st = add_f32(&x, "output_norm.weight", m->norm, c->dim);
    if (st == LP_OK && !c->tied) st = add_linear(&x, &m->head, "lm_head", "output.weight", 0, 0, head_t);
    if (st == LP_OK) st = lp_gguf_writer_save(x.w, path);
    lp_gguf_writer_free(x.w);
    bufs_free(&x.b);
    return st;
}
