/*
 * model_impl.h - the in-memory model, shared by the loader, the forward pass,
 * the compression pipeline and the writers. Not part of the public API.
 */
#ifndef LP_MODEL_IMPL_H
#define LP_MODEL_IMPL_H

#include "llmpress/model.h"
#include "format/dense.h"
#include "format/linear.h"
#include "io/safetensors.h"

/* The seven decoder linears of a block, in the order they are computed. */
enum { LP_Q, LP_K, LP_V, LP_O, LP_GATE, LP_UP, LP_DOWN, LP_NLIN };
extern const char *const lp_linear_names[LP_NLIN]; /* "self_attn.q_proj", ... */

typedef struct {
    const float *attn_norm; /* D */
    const float *ffn_norm;  /* D */
    bool norms_changed;     /* a method rescaled a norm: save writes them from memory (F32) */
    lp_linear lin[LP_NLIN]; /* q (H*hd x D), k, v (KV*hd x D), o (D x H*hd),
                               gate, up (F x D), down (D x F) */
} lp_layer;

struct lp_model {
    lp_config cfg;
    char *dir;
    lp_weights *weights;   /* the mapped checkpoint; dense views point into it */
    const float *embed;    /* V x D f32, or NULL when stored in 16 bits: rows are then
                              converted from embed_raw as tokens are embedded */
    const void *embed_raw; /* V x D BF16/F16, a view into the mapping (when embed is NULL) */
    const float *norm;     /* D */
    lp_linear head;        /* V x D; when tied, a dense view of the embedding (lazy, as any
                              16-bit dense linear: converted on its first forward) */
    lp_layer *layers;      /* n_layers */
    lp_dtype embed_dtype;  /* as stored */
    void **owned;          /* f32 copies made at load, freed with the model */
    int64_t n_owned, cap_owned;
    char *provenance;      /* how it was made (LP_PROVENANCE_FILE, or lp_model_set_provenance's
                              copy), else NULL */
    lp_weights **aux;      /* further mapped files packed linears point into (resume state) */
    int64_t n_aux;
    struct lp_gguf *gguf;  /* the mapped GGUF file of a model read from one (weights is then NULL) */
    const float *rope_factors; /* head_dim / 2 divisors of the rotary frequencies (a GGUF file's
                                  rope_freqs.weight: Llama 3 scaling), else NULL */
    lp_linear embed_q;     /* an untied embedding kept packed (V x D; rows dequantized as tokens are
                              embedded), when embed and embed_raw are NULL; a tied one is the head */
};

/* A model from a GGUF file (gguf_model.c); lp_model_load calls it for a path ending in .gguf. */
lp_status lp_model_load_gguf(const char *path, lp_model **out);

/* The checkpoint's side file recording how it was made (checkpoint.c). */
#define LP_PROVENANCE_FILE "llmpress_quantize.json"

/* Fetch a tensor as f32 with the expected shape (ndim entries); the result is
 * a view into the mapping or a converted copy owned by the model. Errors name
 * the tensor, its file and the expected vs actual shape. */
lp_status lp_model_tensor_f32(lp_model *m, const char *name, int ndim, const int64_t *shape,
                              const float **out, lp_dtype *stored);

/* A writable f32 copy of layer l's input norm (which = 0) or post-attention
 * norm (which = 1), made on first use and owned by the model; marks the
 * layer's norms as changed so lp_model_save writes them from memory.
 * Methods that fold scales into norms (AWQ, SmoothQuant) use it. */
lp_status lp_model_norm_mut(lp_model *m, int64_t l, int which, float **out);

/* Record a malloc'd block to be freed with the model. */
lp_status lp_model_own(lp_model *m, void *p);

/* Keep w open for the model's lifetime (closed by lp_model_free); on failure
 * (LP_ERR_NOMEM) w is closed. */
lp_status lp_model_keep_weights(lp_model *m, lp_weights *w);

/* Name of layer l's linear k: "model.layers.<l>.<lp_linear_names[k]>". */
void lp_linear_name(int64_t l, int k, char *buf, size_t n);
/* Name of layer l's input norm (which = 0) or post-attention norm (1) weight:
 * "model.layers.<l>.input_layernorm.weight", ... */
void lp_norm_name(int64_t l, int which, char *buf, size_t n);

/* Checkpoint hooks (checkpoint.c): load linear `base` from
 * the weights, dense (<base>.weight) or in a compressed format. */
lp_status lp_ckpt_load_linear(lp_model *m, const char *base, int64_t rows, int64_t cols,
                              lp_linear *out);
/* Linear `base` in a packed format described by w's llmpress metadata (views
 * into w's mapping: w must outlive it); name is the file errors name. */
lp_status lp_ckpt_load_packed(const lp_weights *w, const char *name, const char *base, int64_t rows,
                              int64_t cols, lp_linear *out);
/* Block l's state as a method left it, for the resume files (quant/resume.c):
 * its packed linears and, when a method rescaled them, its norms (F32); dense
 * linears, biases and unchanged norms are the source checkpoint's and are not
 * written. lp_ckpt_load_layer_state installs what such a file holds into
 * layer l (its packed linears then point into w's mapping). */
lp_status lp_ckpt_add_layer_state(lp_st_writer *w, lp_model *m, int64_t l);
lp_status lp_ckpt_load_layer_state(lp_model *m, int64_t l, const lp_weights *w, const char *name);

/* ---- the block, piece by piece, for calibration (forward.c) ----
 * Hooks of lp_block_forward: `capture` sees the input of each group of
 * linears as it is computed: k = LP_Q (input of q, k and v), LP_O, LP_GATE
 * (gate and up), LP_DOWN; X is T x cols, valid only during the call; a
 * non-zero return stops the block there (x is then left unchanged), so
 * calibration that only needs q/k/v's input need not run the rest. `lin[k]`,
 * when not NULL, runs instead of the layer's linear k (a search's candidate
 * weights), leaving the model untouched. */
typedef struct {
    int (*capture)(void *ud, int k, const float *X, int64_t T, int64_t cols);
    void *ud;
    const lp_linear *lin[LP_NLIN];
} lp_block_hooks;

/* Run block l alone on one sequence of T tokens at positions 0..T-1: x (T x D)
 * is replaced by the block's output (unless a hook stopped it). hooks may be
 * NULL. The context's cache is used as scratch (reset before and after). */
lp_status lp_block_forward(lp_ctx *c, int64_t l, float *x, int64_t T, const lp_block_hooks *hooks);

/* The summed negative log-likelihood of next[t] after hidden states x
 * (T x D, a final block's output) for the t with next[t] >= 0: the final
 * RMSNorm, then lp_head_score. LP_ERR_NOMEM. */
lp_status lp_hidden_nll(const lp_model *m, const float *x, int64_t T, const int32_t *next, double *nll);

/* out[r] = the score of tgt[r] (< 0: not scored) under softmax(head xn_r)
 * for R rows of final-normalized hidden states xn (R x D), the head run in
 * vocabulary tiles (score.c); never R x V logits. LP_ERR_NOMEM. */
lp_status lp_head_score(const lp_model *m, const float *xn, int64_t R, const int32_t *tgt, lp_token_score *out);

/* out (T x D) = the final RMSNorm of x. */
void lp_final_norm(const lp_model *m, const float *x, int64_t T, float *out);

/* The pieces of block l, for pipelines that keep the intermediate states
 * (T <= the context's batch; the context's cache is scratch):
 *   att (T x H*hd) = the attention heads' output before o, for input x;
 *   act (T x F) = silu(gate(n)) * up(n), n = post-attention RMSNorm of h
 *                 (h = x + o(att)): down's input;
 *   out (T x D) = RMSNorm of x with the block's input norm (which = 0) or
 *                 post-attention norm (which = 1): q/k/v's or gate/up's input;
 *   out (T x D) = res + W_k in for k = LP_O or LP_DOWN: the residual adds
 *                 (tmp: T x D scratch; out may alias res or in). */
lp_status lp_block_attention(lp_ctx *c, int64_t l, const float *x, int64_t T, float *att);
lp_status lp_block_mlp_act(lp_ctx *c, int64_t l, const float *h, int64_t T, float *act);
void lp_block_norm(const lp_model *m, int64_t l, int which, const float *x, int64_t T, float *out);
lp_status lp_block_residual(const lp_model *m, int64_t l, int k, const float *in, int64_t T, const float *res,
                            float *out, float *tmp);

/* act (T x F) = silu(gate(xn)) * up(xn) for the MLP's normalized input xn
 * (T x D), u (T x F) scratch: the MLP's activation, for any gate and up
 * (AWQ runs candidates through it). */
lp_status lp_mlp_act(const lp_linear *gate, const lp_linear *up, const float *xn, int64_t T, float *act, float *u);

/* x (T x D) = embedding rows of ids (ids must be valid), converted from the
 * stored 16-bit rows when the embedding is kept in its stored form. */
void lp_embed_tokens(const lp_model *m, const int32_t *ids, int64_t T, float *x);

#endif
