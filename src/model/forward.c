/*
 * forward.c - the decoder forward pass in f32: prefill and KV-cache decode.
 *
 * What: x = embed[tokens]; per block
 *     x += Wo · attn(rope(Wq·rmsnorm(x)), rope(Wk·rmsnorm(x)), Wv·rmsnorm(x))
 *     x += Wdown · (silu(Wgate·h) * (Wup·h)),   h = rmsnorm(x)
 *   then logits = Whead · rmsnorm(x). This is Hugging Face's LlamaModel /
 *   MistralModel / Qwen2Model, which differ only in biases and windows.
 * Why f32: it is the reference the compressed models are measured against
 *   (REFERENCE.md upcasts bf16 weights to f32 and computes in f32).
 * Design: a call processes T tokens at once (T = 1 is decode). Every matrix
 *   product is a lp_linear_forward (the backend's sgemm for dense weights,
 *   packed kernels for compressed ones); attention runs per (query head,
 *   chunk of 128 queries) as two products against that head's slice of the
 *   cache, Q K^T then P V (lp_sgemm_nt / lp_sgemm_nn, or the backend's sgemv
 *   for a few queries), with the scale, the causal (and sliding-window) mask
 *   and the softmax (vectorized exp, core/vexp.h) applied between them; the
 *   items are spread over threads, so scores are at most 128 x L per thread.
 *   The head runs only on the rows whose logits are asked for; scoring
 *   (lp_forward_score, score.c) runs it in vocabulary tiles instead of
 *   making rows x V logits.
 *   The block is written once, here: the forward pass, the calibration
 *   pipeline (its pieces: lp_block_norm, lp_block_attention,
 *   lp_block_residual, lp_mlp_act) and AWQ's searches (lp_block_forward with
 *   hooks that capture a linear's input, stop the block, or run it with a
 *   candidate's linears) all go through the functions below.
 *   RoPE follows HF's rotate_half convention: dimension i pairs with i + hd/2,
 *   angles computed in f32 as pos * inv_freq like HF, then cos/sin.
 *   KV cache: (layer, KV, max_tokens, hd), so a head's keys are one
 *   contiguous L x hd matrix.
 */
#include "model/model_impl.h"

#include "core/backend.h"
#include "core/half.h"
#include "core/sgemm.h"
#include "core/vexp.h"
#include "core/status_impl.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum {
    QCHUNK = 128,     /* queries per attention work item: a chunk sees keys [0, its last position] */
    FEW_QUERIES = 4,  /* up to this many queries, attention runs as matrix-vector products */
};

struct lp_ctx {
    const lp_model *m;
    int64_t max_tokens, max_batch, pos;
    float *kcache, *vcache; /* (layer, KV, max_tokens, hd) */
    float *cos, *sin;       /* (max_tokens, hd/2) */
    /* scratch, sized for max_batch tokens: */
    float *x;      /* T x D, the residual stream */
    float *xn;     /* T x D, normalized */
    float *q;      /* T x H*hd */
    float *kv;     /* T x KV*hd, new keys then new values */
    float *att;    /* T x H*hd, attention output */
    float *tmp;    /* T x D */
    float *gate;   /* T x F */
    float *up;     /* T x F */
    float *scores; /* nth x QCHUNK x max_tokens: each thread's attention scores */
    int nth;       /* threads the scores were sized for */
    const lp_block_hooks *hooks; /* lp_block_forward's, else NULL */
    bool stopped;                /* a hook stopped the block */
};

/* Layer l's linear k, or the hooks' stand-in for it. */
static const lp_linear *lin(const lp_ctx *c, int64_t l, int k) {
    return c->hooks && c->hooks->lin[k] ? c->hooks->lin[k] : &c->m->layers[l].lin[k];
}

/* Show the hooks linear group k's input; true when they stop the block. */
static bool capture(lp_ctx *c, int k, const float *X, int64_t T, int64_t cols) {
    if (c->hooks && c->hooks->capture && c->hooks->capture(c->hooks->ud, k, X, T, cols)) c->stopped = true;
    return c->stopped;
}

/* Rotary inverse frequencies, HF's _compute_default_rope_parameters and
 * _compute_llama3_parameters, in f32 as PyTorch computes them. */
static void rope_inv_freq(const lp_model *m, float *inv) {
    const lp_config *c = &m->cfg;
    const int64_t half = c->head_dim / 2;
    for (int64_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)c->head_dim;
        float p = (float)pow((double)(float)c->rope_theta, (double)e);
        inv[i] = 1.0f / p;
    }
    if (m->rope_factors) { /* a GGUF file's rope_freqs: llama.cpp divides each frequency by its factor */
        for (int64_t i = 0; i < half; i++) inv[i] /= m->rope_factors[i];
        return;
    }
    if (c->rope_type == LP_ROPE_LINEAR) {
        for (int64_t i = 0; i < half; i++) inv[i] = (float)(inv[i] / c->rope_factor);
    } else if (c->rope_type == LP_ROPE_LLAMA3) {
        const double f = c->rope_factor, lo = c->rope_low_freq, hi = c->rope_high_freq;
        const double old = (double)c->rope_orig_max;
        const double lo_wavelen = old / lo, hi_wavelen = old / hi;
        for (int64_t i = 0; i < half; i++) {
            double wavelen = 2.0 * M_PI / inv[i];
            double v = wavelen > lo_wavelen ? inv[i] / f : inv[i];
            if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) {
                double smooth = (old / wavelen - lo) / (hi - lo);
                v = (1.0 - smooth) * v / f + smooth * v;
            }
            inv[i] = (float)v;
        }
    }
}

lp_status lp_ctx_init(const lp_model *m, int64_t max_tokens, int64_t max_batch, lp_ctx **out) {
    *out = NULL;
    const lp_config *c = &m->cfg;
    if (max_tokens <= 0 || max_batch <= 0)
        return lp_fail(LP_ERR_ARG, "context size %lld and batch %lld must be positive",
                       (long long)max_tokens, (long long)max_batch);
    if (max_batch > max_tokens) max_batch = max_tokens;
    lp_ctx *x = calloc(1, sizeof *x);
    if (!x) return lp_fail(LP_ERR_NOMEM, "out of memory");
    x->m = m;
    x->max_tokens = max_tokens;
    x->max_batch = max_batch;
    const int64_t hd = c->head_dim, B = max_batch;
    const size_t cache = (size_t)(c->n_layers * c->n_kv_heads * max_tokens * hd);
    x->kcache = malloc(cache * sizeof(float));
    x->vcache = malloc(cache * sizeof(float));
    x->cos = malloc((size_t)(max_tokens * hd / 2) * sizeof(float));
    x->sin = malloc((size_t)(max_tokens * hd / 2) * sizeof(float));
    x->x = malloc((size_t)(B * c->dim) * sizeof(float));
    x->xn = malloc((size_t)(B * c->dim) * sizeof(float));
    x->q = malloc((size_t)(B * c->n_heads * hd) * sizeof(float));
    x->kv = malloc((size_t)(2 * B * c->n_kv_heads * hd) * sizeof(float));
    x->att = malloc((size_t)(B * c->n_heads * hd) * sizeof(float));
    x->tmp = malloc((size_t)(B * c->dim) * sizeof(float));
    x->gate = malloc((size_t)(B * c->ffn) * sizeof(float));
    x->up = malloc((size_t)(B * c->ffn) * sizeof(float));
    x->nth = omp_get_max_threads();
    x->scores = malloc((size_t)x->nth * (size_t)((B < QCHUNK ? B : QCHUNK) * max_tokens) * sizeof(float));
    if (!x->kcache || !x->vcache || !x->cos || !x->sin || !x->x || !x->xn || !x->q || !x->kv ||
        !x->att || !x->tmp || !x->gate || !x->up || !x->scores) {
        lp_ctx_free(x);
        return lp_fail(LP_ERR_NOMEM, "out of memory for a %lld-token context", (long long)max_tokens);
    }
    float *inv = malloc((size_t)(hd / 2) * sizeof(float));
    if (!inv) {
        lp_ctx_free(x);
        return lp_fail(LP_ERR_NOMEM, "out of memory");
    }
    rope_inv_freq(m, inv);
    for (int64_t p = 0; p < max_tokens; p++) {
        for (int64_t i = 0; i < hd / 2; i++) {
            float ang = (float)p * inv[i]; /* f32 product, as HF's inv_freq @ position_ids */
            x->cos[p * (hd / 2) + i] = (float)cos((double)ang);
            x->sin[p * (hd / 2) + i] = (float)sin((double)ang);
        }
    }
    free(inv);
    *out = x;
    return LP_OK;
}

void lp_ctx_free(lp_ctx *c) {
    if (!c) return;
    free(c->kcache); free(c->vcache); free(c->cos); free(c->sin); free(c->x); free(c->xn);
    free(c->q); free(c->kv); free(c->att); free(c->tmp); free(c->gate); free(c->up);
    free(c->scores);
    free(c);
}

void lp_ctx_reset(lp_ctx *c) { c->pos = 0; }
lp_status lp_ctx_rewind(lp_ctx *c, int64_t pos) {
    if (pos < 0 || pos > c->pos)
        return lp_fail(LP_ERR_ARG, "lp_ctx_rewind: position %lld is outside the %lld cached", (long long)pos,
                       (long long)c->pos);
    c->pos = pos; /* later positions are overwritten by the next call */
    return LP_OK;
}
int64_t lp_ctx_pos(const lp_ctx *c) { return c->pos; }

/* An OpenMP region costs ~1 us even when its if() clause is false (the
 * runtime still sets up a team of one), tens of times per decode step; the
 * row loops below enter one only when there are enough rows to share. */
enum { PAR_ROWS = 8 };

/* Row t of rmsnorm: out = x / sqrt(mean(x^2) + eps) * w. */
static void rmsnorm_row(float *o, const float *xr, const float *w, int64_t D, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
    float r = 1.0f / sqrtf((float)(ss / (double)D) + eps);
    for (int64_t i = 0; i < D; i++) o[i] = w[i] * (xr[i] * r);
}

/* out (T x D) = rmsnorm of each row of x. */
static void rmsnorm(float *out, const float *x, const float *w, int64_t T, int64_t D, float eps) {
    if (T <= PAR_ROWS) {
        for (int64_t t = 0; t < T; t++) rmsnorm_row(out + t * D, x + t * D, w, D, eps);
        return;
    }
#pragma omp parallel for
    for (int64_t t = 0; t < T; t++) rmsnorm_row(out + t * D, x + t * D, w, D, eps);
}

/* Rotate n_heads heads of hd values in each of T rows (row stride n_heads*hd),
 * token t at position pos0 + t. */
static void rope(float *v, int64_t T, int64_t n_heads, int64_t hd, int64_t pos0, const float *cs,
                 const float *sn) {
    const int64_t half = hd / 2;
    for (int64_t t = 0; t < T; t++) {
        const float *c = cs + (pos0 + t) * half, *s = sn + (pos0 + t) * half;
        for (int64_t h = 0; h < n_heads; h++) {
            float *a = v + (t * n_heads + h) * hd;
            for (int64_t i = 0; i < half; i++) {
                float x1 = a[i], x2 = a[i + half];
                a[i] = x1 * c[i] - x2 * s[i];
                a[i + half] = x2 * c[i] + x1 * s[i];
            }
        }
    }
}

/* Row t of S (T x Lk) times scale, then its causal softmax: query t sits at
 * position pos0+t and sees keys j <= pos0+t (and j > pos0+t-window when a
 * window is set); the rest of the row becomes 0. */
static void masked_softmax_row(float *row, int64_t t, int64_t Lk, int64_t pos0, int64_t window, float scale) {
    int64_t hi = pos0 + t + 1; /* keys [lo, hi) are visible */
    int64_t lo = window > 0 && hi > window ? hi - window : 0;
    float mx = -INFINITY;
    for (int64_t j = lo; j < hi; j++) {
        row[j] *= scale;
        mx = row[j] > mx ? row[j] : mx;
    }
    const double sum = lp_softmax_exp(row + lo, hi - lo, mx); /* core/vexp.h */
    float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < lo; j++) row[j] = 0;
    for (int64_t j = lo; j < hi; j++) row[j] *= inv;
    for (int64_t j = hi; j < Lk; j++) row[j] = 0;
}

static void masked_softmax(float *S, int64_t T, int64_t Lk, int64_t pos0, int64_t window, float scale) {
    if (T <= PAR_ROWS) {
        for (int64_t t = 0; t < T; t++) masked_softmax_row(S + t * Lk, t, Lk, pos0, window, scale);
        return;
    }
#pragma omp parallel for
    for (int64_t t = 0; t < T; t++) masked_softmax_row(S + t * Lk, t, Lk, pos0, window, scale);
}

/* Attention work item `it` of layer l (T new tokens, their q in c->q and
 * keys/values already in the cache): query head h = it / nchunk and the
 * chunk of QCHUNK queries t0 = (it mod nchunk) QCHUNK, which sees keys
 * [0, pos0 + t0 + n) only (a long prefill skips most of the masked upper
 * triangle, and scores are never T x T but n x lk in thread tid's scratch).
 * One thread, single-threaded BLAS calls: no result depends on the thread
 * count. */
static void attend_item(lp_ctx *c, int64_t l, int64_t T, int64_t it, int tid) {
    const lp_config *cf = &c->m->cfg;
    const lp_backend *be = lp_backend_default();
    const int64_t H = cf->n_heads, KV = cf->n_kv_heads, hd = cf->head_dim, pos0 = c->pos;
    const int64_t nchunk = (T + QCHUNK - 1) / QCHUNK, h = it / nchunk, t0 = (it % nchunk) * QCHUNK;
    const int64_t g = h / (H / KV); /* HF repeat_kv: query head h reads kv head h / rep */
    const float *K = c->kcache + ((l * KV + g) * c->max_tokens) * hd; /* Lk x hd */
    const float *V = c->vcache + ((l * KV + g) * c->max_tokens) * hd;
    const int64_t n = T - t0 < QCHUNK ? T - t0 : QCHUNK, lk = pos0 + t0 + n;
    float *S = c->scores + (size_t)tid * (size_t)((T < QCHUNK ? T : QCHUNK) * c->max_tokens); /* n x lk */
    const float *Q = c->q + (t0 * H + h) * hd;
    float *O = c->att + (t0 * H + h) * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    if (n <= FEW_QUERIES) { /* S = K q, then O = V^T softmax(scale S), query by query */
        for (int64_t i = 0; i < n; i++) be->sgemv(lk, hd, K, hd, Q + i * H * hd, S + i * lk);
        masked_softmax(S, n, lk, pos0 + t0, cf->sliding_window, scale);
        for (int64_t i = 0; i < n; i++) be->sgemv_t(lk, hd, V, hd, S + i * lk, O + i * H * hd);
        return;
    }
    /* S (n x lk) = Q_h K^T, then att_h (n x hd) = softmax(scale S) V */
    lp_sgemm_nt(n, lk, hd, Q, H * hd, K, hd, S, lk);
    masked_softmax(S, n, lk, pos0 + t0, cf->sliding_window, scale);
    lp_sgemm_nn(n, hd, lk, S, lk, V, hd, O, H * hd);
}

/* c->att (T x H*hd) = the heads' attention output for c->x, before o. */
static lp_status attention_heads(lp_ctx *c, int64_t l, int64_t T) {
    const lp_model *m = c->m;
    const lp_config *cf = &m->cfg;
    const lp_layer *L = &m->layers[l];
    const int64_t D = cf->dim, H = cf->n_heads, KV = cf->n_kv_heads, hd = cf->head_dim;
    const int64_t pos0 = c->pos;
    float *kn = c->kv, *vn = c->kv + T * KV * hd;

    rmsnorm(c->xn, c->x, L->attn_norm, T, D, cf->norm_eps);
    if (capture(c, LP_Q, c->xn, T, D)) return LP_OK; /* also k, v's input */
    LP_TRY(lp_linear_forward(lin(c, l, LP_Q), c->xn, T, c->q));
    LP_TRY(lp_linear_forward(lin(c, l, LP_K), c->xn, T, kn));
    LP_TRY(lp_linear_forward(lin(c, l, LP_V), c->xn, T, vn));
    rope(c->q, T, H, hd, pos0, c->cos, c->sin);
    rope(kn, T, KV, hd, pos0, c->cos, c->sin);

    /* Append the new keys and values to this layer's cache. */
    for (int64_t g = 0; g < KV; g++) {
        float *kc = c->kcache + ((l * KV + g) * c->max_tokens) * hd;
        float *vc = c->vcache + ((l * KV + g) * c->max_tokens) * hd;
        for (int64_t t = 0; t < T; t++) {
            memcpy(kc + (pos0 + t) * hd, kn + (t * KV + g) * hd, (size_t)hd * sizeof(float));
            memcpy(vc + (pos0 + t) * hd, vn + (t * KV + g) * hd, (size_t)hd * sizeof(float));
        }
    }

    /* Work items: (head, chunk of QCHUNK queries), spread over threads when
     * there is enough work (not in a decode step at a short context). */
    const int64_t items = H * ((T + QCHUNK - 1) / QCHUNK);
    if (items == 1 || T * (pos0 + T) * hd * H <= (1 << 16)) {
        for (int64_t it = 0; it < items; it++) attend_item(c, l, T, it, 0);
        return LP_OK;
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(c->nth)
    for (int64_t it = 0; it < items; it++) attend_item(c, l, T, it, omp_get_thread_num());
    return LP_OK;
}

/* out (T x D) = res + W in, tmp (T x D) scratch; out may be res or in. */
static lp_status residual(const lp_linear *W, const float *in, int64_t T, const float *res, float *out, float *tmp) {
    LP_TRY(lp_linear_forward(W, in, T, tmp));
    for (int64_t i = 0; i < T * W->rows; i++) out[i] = res[i] + tmp[i];
    return LP_OK;
}

static lp_status attention_block(lp_ctx *c, int64_t l, int64_t T) {
    const lp_config *cf = &c->m->cfg;
    LP_TRY(attention_heads(c, l, T));
    if (c->stopped || capture(c, LP_O, c->att, T, cf->n_heads * cf->head_dim)) return LP_OK;
    return residual(lin(c, l, LP_O), c->att, T, c->x, c->x, c->tmp);
}

lp_status lp_mlp_act(const lp_linear *gate, const lp_linear *up, const float *xn, int64_t T, float *act, float *u) {
    const int64_t F = gate->rows;
    LP_TRY(lp_linear_forward(gate, xn, T, act));
    LP_TRY(lp_linear_forward(up, xn, T, u));
    if (T <= PAR_ROWS) {
        lp_silu_mul(act, u, T * F);
        return LP_OK;
    }
#pragma omp parallel for
    for (int64_t t = 0; t < T; t++) lp_silu_mul(act + t * F, u + t * F, F);
    return LP_OK;
}

/* c->gate (T x F) = silu(gate(h)) * up(h), h = rmsnorm(c->x): down's input. */
static lp_status mlp_act(lp_ctx *c, int64_t l, int64_t T) {
    const lp_config *cf = &c->m->cfg;
    rmsnorm(c->xn, c->x, c->m->layers[l].ffn_norm, T, cf->dim, cf->norm_eps);
    if (capture(c, LP_GATE, c->xn, T, cf->dim)) return LP_OK; /* also up's */
    return lp_mlp_act(lin(c, l, LP_GATE), lin(c, l, LP_UP), c->xn, T, c->gate, c->up);
}

static lp_status mlp_block(lp_ctx *c, int64_t l, int64_t T) {
    LP_TRY(mlp_act(c, l, T));
    if (c->stopped || capture(c, LP_DOWN, c->gate, T, c->m->cfg.ffn)) return LP_OK;
    return residual(lin(c, l, LP_DOWN), c->gate, T, c->x, c->x, c->tmp);
}

/* Run T tokens; for the last k, logits (k x V) or, when logits is NULL and
 * scores is not, the scores of targets (k). */
static lp_status run_tokens(lp_ctx *c, const int32_t *tokens, int64_t T, int64_t k, float *logits,
                            const int32_t *targets, lp_token_score *scores) {
    const lp_model *m = c->m;
    const lp_config *cf = &m->cfg;
    const int64_t D = cf->dim, V = cf->vocab;
    if (T <= 0) return lp_fail(LP_ERR_ARG, "lp_forward: no tokens given");
    if (k < 0 || k > T || (k > 0 && !logits && !(targets && scores)))
        return lp_fail(LP_ERR_ARG, "lp_forward: logits of the last %lld of %lld tokens asked for", (long long)k,
                       (long long)T);
    if (c->pos + T > c->max_tokens)
        return lp_fail(LP_ERR_ARG, "context full: %lld cached + %lld new tokens exceed the context "
                       "size %lld", (long long)c->pos, (long long)T, (long long)c->max_tokens);
    for (int64_t t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= cf->vocab)
            return lp_fail(LP_ERR_ARG, "token id %d at index %lld is outside the vocabulary [0, %lld)",
                           tokens[t], (long long)t, (long long)cf->vocab);
    /* Long inputs are processed in chunks of max_batch tokens; the head runs
     * only on the chunk's rows at or after T - k. */
    for (int64_t done = 0; done < T;) {
        const int64_t n = T - done < c->max_batch ? T - done : c->max_batch;
        lp_embed_tokens(m, tokens + done, n, c->x);
        for (int64_t l = 0; l < cf->n_layers; l++) {
            LP_TRY(attention_block(c, l, n));
            LP_TRY(mlp_block(c, l, n));
        }
        c->pos += n;
        const int64_t first = T - k > done ? T - k : done; /* first row with logits */
        if (first < done + n) {
            const int64_t r = done + n - first, o = first - (T - k);
            rmsnorm(c->xn, c->x + (first - done) * D, m->norm, r, D, cf->norm_eps);
            if (logits) LP_TRY(lp_linear_forward(&m->head, c->xn, r, logits + o * V));
            else LP_TRY(lp_head_score(m, c->xn, r, targets + o, scores + o));
        }
        done += n;
    }
    return LP_OK;
}

lp_status lp_forward_tail(lp_ctx *c, const int32_t *tokens, int64_t T, int64_t k, float *logits) {
    return run_tokens(c, tokens, T, k, logits, NULL, NULL);
}

lp_status lp_forward_score(lp_ctx *c, const int32_t *tokens, int64_t T, int64_t k, const int32_t *targets,
                           lp_token_score *out) {
    if (k > 0 && (!targets || !out)) return lp_fail(LP_ERR_ARG, "lp_forward_score: no targets or output given");
    return run_tokens(c, tokens, T, k, NULL, targets, out);
}

lp_status lp_forward(lp_ctx *c, const int32_t *tokens, int64_t T, float *logits, bool all_logits) {
    return lp_forward_tail(c, tokens, T, !logits ? 0 : all_logits ? T : 1, logits);
}

void lp_final_norm(const lp_model *m, const float *x, int64_t T, float *out) {
    rmsnorm(out, x, m->norm, T, m->cfg.dim, m->cfg.norm_eps);
}

lp_status lp_hidden_nll(const lp_model *m, const float *x, int64_t T, const int32_t *next, double *nll) {
    *nll = 0.0;
    if (T <= 0) return LP_OK;
    float *xn = malloc((size_t)(T * m->cfg.dim) * sizeof *xn);
    lp_token_score *sc = malloc((size_t)T * sizeof *sc);
    lp_status s = xn && sc ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory for %lld hidden states", (long long)T);
    if (s == LP_OK) {
        lp_final_norm(m, x, T, xn);
        s = lp_head_score(m, xn, T, next, sc);
    }
    for (int64_t t = 0; s == LP_OK && t < T; t++)
        if (next[t] >= 0) *nll -= sc[t].logprob;
    free(xn);
    free(sc);
    return s;
}

static lp_status block_args(const lp_ctx *c, int64_t l, int64_t T) {
    if (l < 0 || l >= c->m->cfg.n_layers) return lp_fail(LP_ERR_ARG, "block %lld does not exist", (long long)l);
    if (T <= 0 || T > c->max_batch || T > c->max_tokens)
        return lp_fail(LP_ERR_ARG, "block forward: %lld tokens do not fit the context (%lld)", (long long)T,
                       (long long)c->max_batch);
    return LP_OK;
}

lp_status lp_block_forward(lp_ctx *c, int64_t l, float *x, int64_t T, const lp_block_hooks *hooks) {
    const lp_config *cf = &c->m->cfg;
    LP_TRY(block_args(c, l, T));
    c->pos = 0;
    c->hooks = hooks;
    c->stopped = false;
    memcpy(c->x, x, (size_t)(T * cf->dim) * sizeof(float));
    lp_status st = attention_block(c, l, T);
    if (st == LP_OK && !c->stopped) st = mlp_block(c, l, T);
    if (st == LP_OK && !c->stopped) memcpy(x, c->x, (size_t)(T * cf->dim) * sizeof(float));
    c->hooks = NULL;
    c->stopped = false;
    c->pos = 0;
    return st;
}

lp_status lp_block_attention(lp_ctx *c, int64_t l, const float *x, int64_t T, float *att) {
    LP_TRY(block_args(c, l, T));
    const lp_config *cf = &c->m->cfg;
    c->pos = 0;
    memcpy(c->x, x, (size_t)(T * cf->dim) * sizeof(float));
    LP_TRY(attention_heads(c, l, T));
    memcpy(att, c->att, (size_t)(T * cf->n_heads * cf->head_dim) * sizeof(float));
    return LP_OK;
}

lp_status lp_block_mlp_act(lp_ctx *c, int64_t l, const float *h, int64_t T, float *act) {
    LP_TRY(block_args(c, l, T));
    const lp_config *cf = &c->m->cfg;
    memcpy(c->x, h, (size_t)(T * cf->dim) * sizeof(float));
    LP_TRY(mlp_act(c, l, T));
    memcpy(act, c->gate, (size_t)(T * cf->ffn) * sizeof(float));
    return LP_OK;
}

lp_status lp_block_residual(const lp_model *m, int64_t l, int k, const float *in, int64_t T, const float *res,
                            float *out, float *tmp) {
    LP_ASSERT(k == LP_O || k == LP_DOWN);
    return residual(&m->layers[l].lin[k], in, T, res, out, tmp);
}

void lp_block_norm(const lp_model *m, int64_t l, int which, const float *x, int64_t T, float *out) {
    const lp_layer *L = &m->layers[l];
    rmsnorm(out, x, which ? L->ffn_norm : L->attn_norm, T, m->cfg.dim, m->cfg.norm_eps);
}

void lp_embed_tokens(const lp_model *m, const int32_t *ids, int64_t T, float *x) {
    const int64_t D = m->cfg.dim;
    for (int64_t t = 0; t < T; t++) {
        float *dst = x + t * D;
        if (m->embed) {
            memcpy(dst, m->embed + (int64_t)ids[t] * D, (size_t)D * sizeof(float));
            continue;
        }
        if (!m->embed_raw) { /* packed, one part (the loaders make sure): the row as its format dequantizes it */
            const lp_linear *e = m->cfg.tied ? &m->head : &m->embed_q;
            (void)e->part[0].fmt->dequant(e->part[0].data, ids[t], ids[t] + 1, dst); /* a row needs no memory */
            continue;
        }
        const uint16_t *src = (const uint16_t *)m->embed_raw + (int64_t)ids[t] * D;
        if (m->embed_dtype == LP_DT_BF16)
            for (int64_t i = 0; i < D; i++) dst[i] = lp_bf16_to_f32(src[i]);
        else
            for (int64_t i = 0; i < D; i++) dst[i] = lp_f16_to_f32(src[i]);
    }
}
