/*
 * model.h - decoder-only transformer models: configuration, weights, forward.
 *
 * What: loads a Llama-family Hugging Face checkpoint directory (Llama 1/2/3.x,
 * Mistral, Qwen2/2.5, and compressed checkpoints written by llmpress) and runs
 * it: batched prefill on BLAS, KV-cache decode, logits.
 * Conventions (used everywhere in llmpress):
 *   every weight matrix is row-major `out x in` (PyTorch's nn.Linear layout),
 *   and a linear computes y = x W^T (+ b).
 *   T = tokens in a call, L = positions in the KV cache, D = hidden size,
 *   H = query heads, KV = key/value heads, hd = head size, F = MLP size,
 *   V = vocabulary size.
 */
#ifndef LLMPRESS_MODEL_H
#define LLMPRESS_MODEL_H

#include "llmpress/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_ARCH_LLAMA = 0,
    LP_ARCH_MISTRAL = 1,
    LP_ARCH_QWEN2 = 2,
} lp_arch;

typedef enum {
    LP_ROPE_DEFAULT = 0,
    LP_ROPE_LINEAR = 1,
    LP_ROPE_LLAMA3 = 2,
} lp_rope_type;

typedef struct {
    lp_arch arch;
    char arch_name[64];     /* as written in config.json "architectures" */
    int64_t vocab;          /* V */
    int64_t dim;            /* D, hidden_size */
    int64_t ffn;            /* F, intermediate_size */
    int64_t n_layers;
    int64_t n_heads;        /* H */
    int64_t n_kv_heads;     /* KV */
    int64_t head_dim;       /* hd (explicit, or D / H) */
    int64_t max_pos;        /* max_position_embeddings */
    int64_t sliding_window; /* 0 = none */
    float norm_eps;
    double rope_theta;
    lp_rope_type rope_type;
    double rope_factor, rope_low_freq, rope_high_freq; /* llama3 / linear scaling */
    int64_t rope_orig_max;                             /* llama3 original_max_position_embeddings */
    bool tied;              /* lm_head shares the embedding matrix */
    bool qkv_bias;          /* q/k/v projections carry a bias (Qwen2, attention_bias) */
    bool o_bias;            /* o projection carries a bias (attention_bias) */
    int32_t bos, eos;       /* -1 when absent */
    char dtype[16];         /* dtype as stored: "float32", "bfloat16", "float16" */
} lp_config;

/* Parse <dir>/config.json (or a path to a config file). Unsupported
 * architectures, activations or rope types are LP_ERR_UNSUPPORTED naming them. */
lp_status lp_config_load(const char *path, lp_config *cfg);

typedef struct lp_model lp_model;

/* Load a checkpoint directory: config.json + model.safetensors or shards.
 * Works for original Hugging Face checkpoints and llmpress-compressed ones. */
lp_status lp_model_load(const char *dir, lp_model **out);
void lp_model_free(lp_model *m); /* NULL is a no-op */
const lp_config *lp_model_config(const lp_model *m);
const char *lp_model_dir(const lp_model *m);

/* How a compressed checkpoint was made: a JSON object (method, settings,
 * calibration, compression seconds) kept beside its weights as
 * llmpress_quantize.json. Set before lp_model_save (copied); read back after
 * loading: NULL when the checkpoint has none (an original model). */
lp_status lp_model_set_provenance(lp_model *m, const char *json);
const char *lp_model_provenance(const lp_model *m);

/* Exact sizes, counted from the stored formats. */
typedef struct {
    int64_t linear_params;  /* weights of the decoder linears (q,k,v,o,gate,up,down) */
    int64_t linear_stored_params; /* weight values they store: fewer when pruned (kept weights)
                                   * or factorized (the factors' entries) */
    int64_t linear_bytes;   /* their exact storage: packed ints, scales, zeros, ... */
    double linear_paper_bits; /* the bits the methods' papers count (BiLLM, PB-LLM leave scales,
                               * bitmaps and indices out); = 8 linear_bytes for other formats */
    int64_t total_params;   /* every parameter, embeddings and norms included */
    int64_t total_bytes;    /* as stored in the checkpoint */
    int64_t disk_bytes;     /* the model directory's files (weights, config, tokenizer), -1
                               when unknown */
    int n_compressed;       /* linears in a compressed format */
    char formats[160];      /* e.g. "dense bf16" or "qgroup w4 g128 asym" */
} lp_model_size;
void lp_model_size_get(const lp_model *m, lp_model_size *sz);

/* One decoder linear as stored: linear i of lp_model_linear_count(m), in
 * layer order, q k v o gate up down within a layer. */
typedef struct {
    char name[96];          /* "model.layers.3.mlp.down_proj" */
    char format[128];       /* e.g. "nm 2:4 bf16" or "lowrank r96 (dense16 bf16 + dense16 bf16)" */
    int64_t rows, cols;     /* the weight's shape */
    int64_t stored_params;  /* weight values stored (kept weights, factor entries) */
    int64_t bytes;          /* exact storage */
} lp_linear_info;
int64_t lp_model_linear_count(const lp_model *m);
void lp_model_linear_info(const lp_model *m, int64_t i, lp_linear_info *out);

/* Write m into out_dir: config.json and tokenizer files copied from the
 * source, model.safetensors with packed linears. The directory is whole or
 * absent: written under a temporary name beside it (".<name>.tmp.<pid>")
 * and put in place in one step, replacing an earlier out_dir as a whole. */
lp_status lp_model_save(lp_model *m, const char *out_dir);

/* The checks lp_model_save makes before writing (not the source directory,
 * parent exists and is writable, out_dir absent or a model directory, free
 * space for the estimated size), so a caller can fail before long work.
 * It also takes out_dir's lock (".<name>.lock" beside it: a second writer
 * is refused), held until lp_model_save returns or the process ends. */
lp_status lp_model_save_check(const lp_model *m, const char *out_dir);

/* ---- running ---- */
typedef struct lp_ctx lp_ctx;

/* A context holds the KV cache for up to max_tokens positions and scratch for
 * calls of up to max_batch tokens. */
lp_status lp_ctx_init(const lp_model *m, int64_t max_tokens, int64_t max_batch, lp_ctx **out);
void lp_ctx_free(lp_ctx *c);
void lp_ctx_reset(lp_ctx *c); /* forget the cache: next token is at position 0 */
int64_t lp_ctx_pos(const lp_ctx *c);
/* Forget the cached positions from pos on (0 <= pos <= lp_ctx_pos): the next
 * token is at position pos. Scoring several continuations of one context
 * runs the context once and rewinds to its end before each. */
lp_status lp_ctx_rewind(lp_ctx *c, int64_t pos);

/* Run T tokens at positions pos..pos+T-1, appending them to the KV cache.
 * logits: T x V when all_logits, else V (the last token's), or NULL. */
lp_status lp_forward(lp_ctx *c, const int32_t *tokens, int64_t T, float *logits, bool all_logits);
/* The same, with logits (k x V) for the last k of the T tokens only (k = 0:
 * none, logits may be NULL): the head, the largest matrix, runs on those
 * rows alone. */
lp_status lp_forward_tail(lp_ctx *c, const int32_t *tokens, int64_t T, int64_t k, float *logits);

/* 8-bit activations where a format has such a product (grouped integers at
 * 2, 3, 4 or 8 bits, GGUF's quantized types; a CPU with AVX-512 VNNI): x is
 * rounded to int8 per 128 (GGUF: 32) columns and the dot products are exact
 * integers, as llama.cpp's Q8 activations. Faster, no longer the f32
 * reference. LP_ACT_F32 (the default): every product in f32. LP_ACT_Q8:
 * decode steps (one token per product); prefill, perplexity and scoring
 * stay f32. LP_ACT_Q8_ALL: every product, prefill, perplexity and scoring
 * too, llama.cpp's arithmetic. LP_ACT=q8 / q8-all in the environment sets
 * it too (read on first use; another value means f32). Process-wide. lp_set_q8_activations(on) is lp_set_activations(on ?
 * LP_ACT_Q8 : LP_ACT_F32), lp_q8_activations() whether decode steps use it. */
typedef enum { LP_ACT_F32 = 0, LP_ACT_Q8 = 1, LP_ACT_Q8_ALL = 2 } lp_act;
void lp_set_activations(lp_act a);
lp_act lp_activations(void);                 /* the setting in use */
const char *lp_act_name(lp_act a);           /* "f32", "q8", "q8-all" */
bool lp_act_from_name(const char *s, lp_act *out); /* false for another name */
void lp_set_q8_activations(bool on);
bool lp_q8_activations(void);

/* A next-token target scored: log p(target) under the model (double) and
 * whether the target is the distribution's first argmax. */
typedef struct {
    double logprob;
    bool greedy;
} lp_token_score;

/* lp_forward_tail, scoring instead of returning logits: out[j] for the
 * distribution after token T - k + j is targets[j]'s score (targets[j] < 0:
 * not scored, logprob 0). The head runs in vocabulary tiles with a running
 * log-sum-exp, so no k x V logits are ever stored (perplexity, zero-shot
 * tasks). */
lp_status lp_forward_score(lp_ctx *c, const int32_t *tokens, int64_t T, int64_t k, const int32_t *targets,
                           lp_token_score *out);

/* ---- sampling ---- */
typedef struct {
    float temperature; /* 0 = greedy */
    float top_p;       /* 1 = off */
    int top_k;         /* 0 = off */
    uint64_t seed;
} lp_sampler_params;
lp_sampler_params lp_sampler_default_params(void);
typedef struct lp_sampler lp_sampler;
lp_status lp_sampler_init(const lp_sampler_params *p, int64_t vocab, lp_sampler **out);
void lp_sampler_free(lp_sampler *s);
/* Choose the next token from V logits into *token. Non-finite logits (NaN or
 * Inf anywhere) are LP_ERR_NUMERIC naming the first such id, *token = -1. */
lp_status lp_sample(lp_sampler *s, const float *logits, int32_t *token);

#ifdef __cplusplus
}
#endif
#endif
