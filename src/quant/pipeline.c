/*
 * pipeline.c - block-wise calibrated compression, as GPTQ's llama.py drives it.
 *
 * What: the calibration windows are embedded into X (N sequences x L tokens
 *   x D); then for each decoder block b, in order, in true-sequential order:
 *     1. H = 2 Xn^T Xn / n, Xn = input RMSNorm of X      -> compress q, k, v
 *     2. A = attention heads of X (compressed q, k, v)
 *        H = 2 A^T A / n                                 -> compress o
 *        Y = X + o(A)                   (the residual stream after attention)
 *     3. H from Yn = post-attention RMSNorm of Y         -> compress gate, up
 *     4. Z = silu(gate(Yn)) * up(Yn), H from Z           -> compress down
 *     X = Y + down(Z): the compressed block's output, the next block's input.
 *   Each linear is compressed by the method's per-linear compressor
 *   (lp_compress_linear_fn) from its weight and H alone.
 * Why: each linear is fitted to the inputs it will really see once the
 *   linears before it are compressed - the order GPTQ's results depend on.
 * Design: the intermediate states are kept instead of re-running the block
 *   from its input for every stage (as GPTQ's llama.py does with hooks), so a
 *   block costs one attention pass, one o, one down and one or two gate/up
 *   passes. Memory: X and Y (2 N L max(D, H hd) floats), one Hessian
 *   (cols^2), one linear in f32 inside the compressor, and Z (N L F floats)
 *   when that stays under LP_PIPE_KEEP_ACT_BYTES (else Z is computed twice,
 *   for step 4 and for the output). Never the whole model in f32.
 *   AWQ (awq.c) runs its own per-block search instead of the four stages;
 *   with p->awq_prescale its scales are folded in first and the block is
 *   then compressed by the four stages here (recipe "AWQ then GPTQ").
 *   With p->resume_dir every finished block and X are saved (resume.c), and
 *   a rerun starts after the last saved block.
 */
#include "quant/pipeline.h"

#include "core/status_impl.h"
#include "model/model_impl.h"
#include "quant/awq.h"
#include "quant/clip.h"
#include "quant/gptq.h"
#include "quant/resume.h"
#include "quant/rtn.h"
#include "quant/slim.h"
#include "quant/squeezellm.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LP_PIPE_KEEP_ACT_BYTES ((size_t)1 << 30) /* keep down's inputs when they fit in 1 GiB */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the per-linear compressors ---- */

/* On success swap q into l and measure its error against W; else free q. */
static lp_status install(lp_linear *l, const float *W, lp_qgroup *q, lp_status s, double *err) {
    if (s == LP_OK) {
        lp_linear_set_qgroup(l, q);
        *err = lp_linear_rel_error(l, W);
    } else if (q) {
        lp_qgroup_free(q);
        free(q);
    }
    return s;
}

/* *clip (malloc'd, rows x ngroups x 2) = the searched clipping factors for q's format. */
static lp_status search_clip(const float *W, const float *H, const lp_qgroup *q, const lp_quant_params *p,
                             lp_quant_stats *st, float **clip) {
    double t0 = now_s();
    *clip = malloc((size_t)(q->rows * q->ngroups * 2) * sizeof(float));
    lp_status s = *clip ? lp_clip_search(W, q->rows, q->cols, H, q->bits, q->group, q->sym, p->clip_grid,
                                         p->clip_max_shrink, *clip)
                        : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st) st->clip_search += now_s() - t0;
    return s;
}

/* GPTQ (optionally with searched clipping ranges) into qgroup. */
static lp_status compress_gptq(lp_linear *l, const float *H, const lp_quant_params *p, lp_quant_stats *st,
                               double *err) {
    const int64_t rows = l->rows, cols = l->cols;
    float *W = lp_linear_to_f32(l);
    float *Hc = malloc((size_t)(cols * cols) * sizeof(float));
    float *clip = NULL;
    lp_qgroup *q = calloc(1, sizeof *q);
    lp_status s = (W && Hc && q) ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (s == LP_OK) s = lp_qgroup_init(q, rows, cols, p->bits, p->group, p->sym);
    if (s == LP_OK && p->clip) s = search_clip(W, H, q, p, st, &clip);
    if (s == LP_OK) {
        memcpy(Hc, H, (size_t)(cols * cols) * sizeof(float));
        lp_gptq_params gp = lp_gptq_default_params();
        gp.damp = p->damp;
        gp.block = p->gptq_block;
        gp.act_order = p->act_order;
        gp.clip = clip;
        lp_gptq_stats gs = {0};
        s = lp_gptq_quantize(W, Hc, &gp, q, &gs);
        if (st) {
            st->factorize += gs.t_factor;
            st->quantize += gs.t_loop;
        }
    }
    s = install(l, W, q, s, err);
    free(clip);
    free(Hc);
    free(W);
    return s;
}

/* Round to nearest with clipping ranges searched on H (RTN --clip). */
static lp_status compress_rtn_clip(lp_linear *l, const float *H, const lp_quant_params *p, lp_quant_stats *st,
                                   double *err) {
    const int64_t rows = l->rows, cols = l->cols;
    float *W = lp_linear_to_f32(l);
    float *clip = NULL;
    lp_qgroup *q = calloc(1, sizeof *q);
    lp_status s = (W && q) ? lp_qgroup_init(q, rows, cols, p->bits, p->group, p->sym)
                           : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (s == LP_OK) s = search_clip(W, H, q, p, st, &clip);
    if (s == LP_OK) {
        double t0 = now_s();
        s = lp_rtn_quantize_clipped(W, clip, q);
        if (st) st->quantize += now_s() - t0;
    }
    s = install(l, W, q, s, err);
    free(clip);
    free(W);
    return s;
}

static lp_compress_linear_fn compressor(const lp_quant_params *p) {
    switch (p->method) {
    case LP_METHOD_RTN: return compress_rtn_clip; /* calibrated RTN = RTN --clip */
    case LP_METHOD_GPTQ: return compress_gptq;
    case LP_METHOD_SQUEEZELLM: return lp_squeezellm_linear;
    case LP_METHOD_SLIM: return lp_slim_linear;
    default: return NULL;
    }
}

/* ---- the pipeline ---- */

typedef struct {
    lp_model *m;
    const lp_quant_params *p;
    lp_quant_stats st;
    float *H; /* maxcols^2 */
    int64_t ntok;
} pipe;

/* H = 0 before a stage's accumulation. */
static void hess_reset(pipe *P, int64_t cols) {
    memset(P->H, 0, (size_t)(cols * cols) * sizeof(float));
    P->ntok = 0;
}

/* H += X^T X (upper triangle), X: T x cols. */
static void hess_add(pipe *P, const float *X, int64_t T, int64_t cols) {
    double t0 = now_s();
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)T, 1.0f, X, (int)cols, 1.0f, P->H,
                (int)cols);
    P->ntok += T;
    P->st.stats += now_s() - t0;
}

/* H = 2 H / n, mirrored to a full symmetric matrix; then compress the stage's
 * linears (lin[], -1 terminated) of block b with it. */
static lp_status compress_stage(pipe *P, int64_t b, int64_t cols, const int *lin) {
    double t0 = now_s();
    float *H = P->H;
    const float scale = 2.0f / (float)P->ntok;
    for (int64_t i = 0; i < cols; i++) {
        for (int64_t j = i; j < cols; j++) H[i * cols + j] *= scale;
        for (int64_t j = 0; j < i; j++) H[i * cols + j] = H[j * cols + i];
    }
    P->st.stats += now_s() - t0;
    lp_compress_linear_fn fn = compressor(P->p);
    LP_ASSERT(fn);
    char name[256];
    for (int k = 0; lin[k] >= 0; k++) {
        if (P->p->interrupt && *P->p->interrupt)
            return lp_fail(LP_ERR_INTERRUPTED, "interrupted in block %lld", (long long)b + 1);
        double err = NAN;
        lp_linear *l = &P->m->layers[b].lin[lin[k]];
        lp_status s = l->fmt == LP_LINEAR_DENSE
                          ? fn(l, H, P->p, &P->st, &err)
                          : lp_fail(LP_ERR_ARG, "linear is already compressed; quantize the original checkpoint");
        if (s != LP_OK) {
            lp_linear_name(b, lin[k], name, sizeof name);
            return lp_fail_ctx(s, "%s", name);
        }
        if (P->p->progress) P->p->progress(P->p->progress_ud, b, P->m->cfg.n_layers, lp_linear_names[lin[k]], err);
    }
    return LP_OK;
}

/* The four stages of block b: X (N x L x D) in, the compressed block's
 * output out (in X); Y (N x L x max(D, A)) and Z (N x L x F, or NULL: then
 * one L x F slab) are scratch; T is L x max(D, A, F) scratch. */
static lp_status run_block(pipe *P, lp_ctx *ctx, int64_t b, float *X, float *Y, float *Z, bool keep_z, float *T,
                           int64_t N, int64_t L) {
    static const int QKV[] = {LP_K, LP_V, LP_Q, -1}, O[] = {LP_O, -1}, GU[] = {LP_UP, LP_GATE, -1},
                     DOWN[] = {LP_DOWN, -1};
    const lp_config *c = &P->m->cfg;
    const int64_t D = c->dim, A = c->n_heads * c->head_dim, F = c->ffn, S = D > A ? D : A;
    lp_layer *Lb = &P->m->layers[b];
    lp_status s = LP_OK;
    double t0;

    /* 1. q, k, v from the input RMSNorm */
    hess_reset(P, D);
    for (int64_t i = 0; i < N; i++) {
        t0 = now_s();
        lp_block_norm(P->m, b, 0, X + i * L * D, L, T);
        P->st.forward += now_s() - t0;
        hess_add(P, T, L, D);
    }
    LP_TRY(compress_stage(P, b, D, QKV));

    /* 2. o from the attention heads; then Y = X + o(A) */
    hess_reset(P, A);
    for (int64_t i = 0; s == LP_OK && i < N; i++) {
        t0 = now_s();
        s = lp_block_attention(ctx, b, X + i * L * D, L, Y + i * L * S);
        P->st.forward += now_s() - t0;
        if (s == LP_OK) hess_add(P, Y + i * L * S, L, A);
    }
    LP_TRY(s);
    LP_TRY(compress_stage(P, b, A, O));
    t0 = now_s();
    for (int64_t i = 0; i < N; i++) {
        float *y = Y + i * L * S;
        const float *x = X + i * L * D;
        lp_linear_forward(&Lb->lin[LP_O], y, L, T);
        for (int64_t j = 0; j < L * D; j++) y[j] = x[j] + T[j];
    }
    P->st.forward += now_s() - t0;

    /* 3. gate, up from the post-attention RMSNorm */
    hess_reset(P, D);
    for (int64_t i = 0; i < N; i++) {
        t0 = now_s();
        lp_block_norm(P->m, b, 1, Y + i * L * S, L, T);
        P->st.forward += now_s() - t0;
        hess_add(P, T, L, D);
    }
    LP_TRY(compress_stage(P, b, D, GU));

    /* 4. down from silu(gate) * up */
    hess_reset(P, F);
    for (int64_t i = 0; s == LP_OK && i < N; i++) {
        float *z = keep_z ? Z + i * L * F : Z;
        t0 = now_s();
        s = lp_block_mlp_act(ctx, b, Y + i * L * S, L, z);
        P->st.forward += now_s() - t0;
        if (s == LP_OK) hess_add(P, z, L, F);
    }
    LP_TRY(s);
    LP_TRY(compress_stage(P, b, F, DOWN));

    /* the block's output: X = Y + down(Z) */
    t0 = now_s();
    for (int64_t i = 0; s == LP_OK && i < N; i++) {
        float *z = keep_z ? Z + i * L * F : Z;
        if (!keep_z) s = lp_block_mlp_act(ctx, b, Y + i * L * S, L, z);
        if (s != LP_OK) break;
        lp_linear_forward(&Lb->lin[LP_DOWN], z, L, T);
        const float *y = Y + i * L * S;
        float *x = X + i * L * D;
        for (int64_t j = 0; j < L * D; j++) x[j] = y[j] + T[j];
    }
    P->st.forward += now_s() - t0;
    return s;
}

lp_status lp_quantize_calibrated(lp_model *m, const lp_quant_params *p) {
    const lp_config *c = &m->cfg;
    const lp_calib *cal = p->calib;
    const int64_t N = cal->nsamples, L = cal->seqlen, D = c->dim, A = c->n_heads * c->head_dim, F = c->ffn;
    const int64_t S = D > A ? D : A, TW = S > F ? S : F;
    pipe P = {.m = m, .p = p};
    double t_start = now_s();
    for (int64_t i = 0; i < N * L; i++)
        if (cal->tokens[i] < 0 || cal->tokens[i] >= c->vocab)
            return lp_fail(LP_ERR_ARG, "calibration token %d outside the vocabulary", cal->tokens[i]);
    if (L > c->max_pos)
        return lp_fail(LP_ERR_ARG, "calibration --seqlen %lld exceeds the model's context %lld", (long long)L,
                       (long long)c->max_pos);
    if (p->method != LP_METHOD_AWQ && !compressor(p))
        return lp_fail(LP_ERR_ARG, "method %s has no calibrated form", lp_method_name(p->method));

    const bool awq_only = p->method == LP_METHOD_AWQ;
    const int64_t maxcols = awq_only ? 0 : TW;
    const bool keep_z = !awq_only && (size_t)(N * L * F) * sizeof(float) <= LP_PIPE_KEEP_ACT_BYTES;
    const int64_t ysz = awq_only ? 0 : N * L * S; /* S >= D: also holds the AWQ pre-scaling copy of X */
    const int64_t zsz = awq_only ? 0 : keep_z ? N * L * F : L * F;
    float *X = malloc((size_t)(N * L * D) * sizeof(float));
    float *Y = ysz ? malloc((size_t)ysz * sizeof(float)) : NULL;
    float *Z = zsz ? malloc((size_t)zsz * sizeof(float)) : NULL;
    float *T = awq_only ? NULL : malloc((size_t)(L * TW) * sizeof(float));
    P.H = maxcols ? malloc((size_t)(maxcols * maxcols) * sizeof(float)) : NULL;
    lp_ctx *ctx = NULL;
    lp_status s = X && (Y || !ysz) && (Z || !zsz) && (T || awq_only) && (P.H || !maxcols)
                      ? lp_ctx_init(m, L, L, &ctx)
                      : lp_fail(LP_ERR_NOMEM, "out of memory for %lld x %lld calibration activations",
                                (long long)N, (long long)L);
    P.st.peak_activation_bytes = (size_t)(N * L * D + ysz + zsz + (T ? L * TW : 0) + maxcols * maxcols) * sizeof(float);
    for (int64_t i = 0; s == LP_OK && i < N; i++) lp_embed_tokens(m, cal->tokens + i * L, L, X + i * L * D);
    char *key = NULL;
    int64_t b0 = 0;
    if (s == LP_OK && p->resume_dir) {
        s = lp_resume_key(m, p, &key);
        if (s == LP_OK) s = lp_resume_load(p->resume_dir, key, m, X, N * L * D, &b0);
        P.st.resumed_blocks = b0;
    }

    for (int64_t b = b0; s == LP_OK && b < c->n_layers; b++) {
        if (p->interrupt && *p->interrupt) {
            s = lp_fail(LP_ERR_INTERRUPTED, "interrupted before block %lld", (long long)b + 1);
            break;
        }
        if (awq_only) { /* its own per-block steps; X becomes the f32 block's output */
            s = lp_awq_block(m, ctx, b, X, N, L, p, true, &P.st);
        } else {
            if (p->awq_prescale) { /* fold AWQ's scales (and clipping) in; keep X, the block's inputs */
                memcpy(Y, X, (size_t)(N * L * D) * sizeof(float));
                s = lp_awq_block(m, ctx, b, Y, N, L, p, false, &P.st);
            }
            if (s == LP_OK) s = run_block(&P, ctx, b, X, Y, Z, keep_z, T, N, L);
        }
        for (int64_t i = 0; s == LP_OK && i < N * L * D; i++)
            if (!isfinite(X[i]))
                s = lp_fail(LP_ERR_NUMERIC, "block %lld produced non-finite activations after compression",
                            (long long)b);
        if (s == LP_OK && p->resume_dir) s = lp_resume_save(p->resume_dir, key, m, b, X, N * L * D);
    }
    free(key);
    P.st.total = now_s() - t_start;
    if (p->stats) *p->stats = P.st;
    lp_ctx_free(ctx);
    free(P.H);
    free(T);
    free(Z);
    free(Y);
    free(X);
    return s;
}
