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
 *   Each linear is compressed by the method's registry row (method.h,
 *   LP_SCOPE_LINEAR) from its weight and H alone.
 * Why: each linear is fitted to the inputs it will really see once the
 *   linears before it are compressed - the order GPTQ's results depend on.
 * Design: the intermediate states are kept instead of re-running the block
 *   from its input for every stage (as GPTQ's llama.py does with hooks), so a
 *   block costs one attention pass, one o, one down and one or two gate/up
 *   passes. Memory: X and Y (2 N L max(D, H hd) floats), one Hessian
 *   (cols^2), one linear in f32 inside the compressor, and Z (N L F floats)
 *   when that stays under LP_PIPE_KEEP_ACT_BYTES (else Z is computed twice,
 *   for step 4 and for the output). Never the whole model in f32.
 *   A method marked block_input (method.h: BiLLM, PB-LLM, ARB-LLM, as their
 *   authors' drivers do) instead has all four Hessians taken from one run
 *   of the uncompressed block (lp_block_forward with a capture hook), its
 *   seven linears compressed, and X = the compressed block's output.
 *   A method marked dual_inputs (ASVD, SVD-LLM) also has X0, the
 *   uncompressed model's activations, carried block by block beside X: its
 *   Hessians H0 and the mean |x| of each linear's input come from X0, its H
 *   from X (both reach compress through lp_linear_extra); resume is refused
 *   for it (X0 is not saved).
 *   Plans: a method's plan_model runs once after the embedding (ASVD's
 *   kept fraction per linear), its plan_block once per block with the
 *   block's input and Hessians (--allocate's sparsity per linear); each
 *   linear's value reaches compress as `plan` (NaN: the uniform setting).
 *   A block-scope method (AWQ, awq.c) runs its own per-block search instead
 *   of the four stages; with p->prescale AWQ's scales are folded in first
 *   and the block is then compressed by the four stages here (recipe "AWQ
 *   then GPTQ").
 *   With p->resume_dir every finished block and X are saved (resume.c), and
 *   a rerun starts after the last saved block.
 *   Before any of it, lp_model_quantize compares the memory the run will hold
 *   (lp_pipeline_memory: pipe_sizes below, the very figures the run
 *   allocates, plus the windows, the context, AWQ's statistics and the
 *   weights being compressed) with what the machine has, and refuses a run
 *   that cannot fit.
 */
#include "quant/pipeline.h"

#include "core/status_impl.h"
#include "format/dense.h"
#include "model/model_impl.h"
#include "quant/method.h"
#include "quant/resume.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LP_PIPE_KEEP_ACT_BYTES ((size_t)1 << 30) /* keep down's inputs when they fit in 1 GiB */

/* ---- what the pipeline allocates ---- */

/* The pipeline's buffers, in floats, for N windows of L tokens: what
 * lp_quantize_calibrated mallocs and what lp_pipeline_memory reports (one
 * function, so the estimate cannot drift from the allocation). Counted in
 * double: the estimate must survive absurd N and L to refuse them. */
typedef struct {
    bool block_only; /* a block-scope method (AWQ) runs whole blocks itself: X only */
    bool block_input; /* every linear calibrated on the block's input: four Hessians at once */
    bool keep_z;     /* Z holds every window's down input (else one window's) */
    double x, y, z, t, h; /* X (N L D), Y (N L S), Z (N L F or L F), T (L TW), H (TW^2) */
    double x0, h0;        /* dual_inputs: X0 (N L D) and its four Hessians */
} pipe_sizes;

static pipe_sizes pipe_sizes_of(const lp_config *c, const lp_quant_params *p, int64_t N, int64_t L) {
    const int64_t D = c->dim, A = c->n_heads * c->head_dim, F = c->ffn;
    const int64_t S = D > A ? D : A, TW = S > F ? S : F;
    const double n = (double)N * (double)L;
    pipe_sizes z = {.block_only = lp_settings_method(p->method)->scope == LP_SCOPE_BLOCK};
    z.keep_z = !z.block_only && n * (double)F * sizeof(float) <= (double)LP_PIPE_KEEP_ACT_BYTES;
    z.x = n * (double)D;
    if (z.block_only) return z;
    z.y = n * (double)S; /* S >= D: also holds the AWQ pre-scaling copy of X */
    z.z = z.keep_z ? n * (double)F : (double)L * (double)F;
    z.t = (double)L * (double)TW;
    z.block_input = lp_settings_method(p->method)->block_input;
    if (z.block_input) z.z = 0; /* lp_block_forward keeps its own activations */
    z.h = z.block_input ? 2.0 * (double)D * (double)D + (double)A * (double)A + (double)F * (double)F
                        : (double)TW * (double)TW;
    if (z.block_input && lp_settings_method(p->method)->dual_inputs) {
        z.x0 = z.x;
        z.h0 = z.h;
    }
    return z;
}

/* Bytes AWQ's block step holds (awq.c, lp_awq_block: its statistics, then
 * the largest of its searches' scratch) for n calibration tokens, counting
 * the o group's Gram matrix whether or not the layer has one. */
static double awq_block_bytes(const lp_config *c, const lp_settings *s, double n) {
    const double D = (double)c->dim, A = (double)(c->n_heads * c->head_dim), F = (double)c->ffn;
    const double clip_tokens = lp_method_find_option(lp_settings_method(s), "awq-clip-tokens")
                                   ? lp_settings_get(s, "awq-clip-tokens")
                                   : 512;
    const double stride = floor(n / clip_tokens) > 0 ? floor(n / clip_tokens) : 1;
    const double ns = ceil(n / stride), CH = n < 2048 ? n : 2048, R = F > D ? (F > A ? F : A) : (D > A ? D : A);
    const double held = 4 * n * D + (n < A ? n : A) * A + (n < F ? n : F) * F + ns * (2 * D + A + F);
    const double search = 2 * F * D + CH * (2 * F + D), clip = R * (D > F ? D : F) + ns * R;
    return (held + (search > clip ? search : clip)) * sizeof(float);
}

void lp_pipeline_memory(const lp_model *m, const lp_quant_params *p, lp_pipe_memory *e) {
    const lp_config *c = &m->cfg;
    const int64_t N = p->calib->nsamples, L = p->calib->seqlen;
    const pipe_sizes z = pipe_sizes_of(c, p, N, L);
    const double n = (double)N * (double)L, f = sizeof(float);
    const double hd = (double)c->head_dim, A = (double)(c->n_heads * c->head_dim), KV = (double)c->n_kv_heads * hd;
    memset(e, 0, sizeof *e);
    e->windows = n * sizeof(int32_t);
    e->activations = (z.x + z.x0 + z.y + z.z + z.t) * f;
    e->hessian = (z.h + z.h0) * f;
    if (z.block_only) e->awq = awq_block_bytes(c, p->method, n);
    else if (p->prescale) e->awq = awq_block_bytes(c, p->prescale, n);
    /* lp_ctx_init(m, L, L): the K/V cache of every layer, RoPE tables, one batch of L rows */
    e->context = (2 * (double)c->n_layers * KV * (double)L + (double)L * hd +
                  (double)L * (3 * (double)c->dim + 2 * A + 2 * KV + 2 * (double)c->ffn + (double)L)) * f;
    /* the linear being compressed in f32 (a 16-bit dense linear is converted
     * when it is compressed; AWQ converts its whole block first), the
     * method's f32 copy of it and its cols x cols scratch (GPTQ's inverse
     * Hessian) */
    const double D = (double)c->dim, F = (double)c->ffn, big = F * D > A * D ? F * D : A * D;
    const double block = A * D + 2 * KV * D + D * A + 3 * F * D, TW = D > A ? (D > F ? D : F) : (A > F ? A : F);
    e->weights = ((e->awq > 0 ? block : big) + big + TW * TW) * f;
    e->total = e->windows + e->activations + e->hessian + e->awq + e->context + e->weights;
}

/* ---- the pipeline ---- */

typedef struct {
    lp_model *m;
    const lp_quant_params *p;
    lp_quant_stats st;
    float *H; /* maxcols^2 */
    int64_t ntok;
    double *plan; /* n_layers x LP_NLIN from the method's plan_model, or NULL */
} pipe;

/* H = 0 before a stage's accumulation. */
static void hess_reset(pipe *P, int64_t cols) {
    memset(P->H, 0, (size_t)(cols * cols) * sizeof(float));
    P->ntok = 0;
}

/* H += X^T X (upper triangle), X: T x cols. */
static void hess_add_to(pipe *P, float *H, const float *X, int64_t T, int64_t cols) {
    double t0 = lp_now_s();
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)T, 1.0f, X, (int)cols, 1.0f, H, (int)cols);
    P->st.stats += lp_now_s() - t0;
}

static void hess_add(pipe *P, const float *X, int64_t T, int64_t cols) {
    hess_add_to(P, P->H, X, T, cols);
    P->ntok += T;
}

/* H (n tokens) = 2 H / n, mirrored to a full symmetric matrix. */
static void hess_finish(pipe *P, float *H, int64_t ntok, int64_t cols) {
    double t0 = lp_now_s();
    const float scale = 2.0f / (float)ntok;
    for (int64_t i = 0; i < cols; i++) {
        for (int64_t j = i; j < cols; j++) H[i * cols + j] *= scale;
        for (int64_t j = 0; j < i; j++) H[i * cols + j] = H[j * cols + i];
    }
    P->st.stats += lp_now_s() - t0;
}

/* Compress the stage's linears (lin[], -1 terminated) of block b with the
 * finished H; absmean (cols, or NULL) and plan (LP_NLIN, or NULL) are the
 * extra inputs of method.h. */
static lp_status compress_with(pipe *P, const float *H, const float *absmean, const double *plan, int64_t b,
                               const int *lin) {
    char name[256];
    for (int k = 0; lin[k] >= 0; k++) {
        if (P->p->interrupt && *P->p->interrupt)
            return lp_fail(LP_ERR_INTERRUPTED, "interrupted in block %lld", (long long)b + 1);
        double err = NAN;
        lp_linear *l = &P->m->layers[b].lin[lin[k]];
        const lp_linear_extra x = {.absmean = absmean, .plan = plan ? plan[lin[k]] : NAN};
        lp_status s = lp_method_compress_linear_ex(P->p->method, l, H, &x, &P->st, &err);
        if (s != LP_OK) {
            lp_linear_name(b, lin[k], name, sizeof name);
            return lp_fail_ctx(s, "%s", name);
        }
        if (P->p->progress) P->p->progress(P->p->progress_ud, b, P->m->cfg.n_layers, lp_linear_names[lin[k]], err);
    }
    return LP_OK;
}

/* The model-level plan of block b's linears, or NULL. */
static const double *plan_of(const pipe *P, int64_t b) { return P->plan ? P->plan + b * LP_NLIN : NULL; }

static lp_status compress_stage(pipe *P, int64_t b, int64_t cols, const int *lin) {
    hess_finish(P, P->H, P->ntok, cols);
    return compress_with(P, P->H, NULL, plan_of(P, b), b, lin);
}

static const int QKV[] = {LP_K, LP_V, LP_Q, -1}, O[] = {LP_O, -1}, GU[] = {LP_UP, LP_GATE, -1}, DOWN[] = {LP_DOWN, -1};

/* ---- block-input calibration: every linear's H from the uncompressed block ---- */

typedef struct {
    pipe *P;
    float *H[4];       /* the inputs of q/k/v, o, gate/up, down */
    float *absmean[4]; /* their sums of |x| per column, or NULL */
    int64_t cols[4];
} block_input;

static int group_of(int k) { return k == LP_Q ? 0 : k == LP_O ? 1 : k == LP_GATE ? 2 : 3; }

static int capture_h(void *ud, int k, const float *X, int64_t T, int64_t cols) {
    block_input *bi = ud;
    int g = group_of(k);
    LP_ASSERT(cols == bi->cols[g]);
    hess_add_to(bi->P, bi->H[g], X, T, cols);
    if (bi->absmean[g])
        for (int64_t t = 0; t < T; t++)
            for (int64_t j = 0; j < cols; j++) bi->absmean[g][j] += fabsf(X[t * cols + j]);
    return 0;
}

/* The four Hessians (and, when am is set, the sums of |x| there) of block
 * b's uncompressed linears on the windows X (N x L x D), finished (2 X^T X
 * / n, mean |x|). in_place: X becomes the uncompressed block's output;
 * else each window runs on a copy in T. */
static lp_status capture_block(pipe *P, lp_ctx *ctx, int64_t b, float *X, float *T, int64_t N, int64_t L, float *H,
                               float *am, bool in_place, block_input *bi) {
    const lp_config *c = &P->m->cfg;
    const int64_t D = c->dim, A = c->n_heads * c->head_dim, F = c->ffn;
    *bi = (block_input){.P = P, .cols = {D, A, D, F}};
    bi->H[0] = H;
    bi->H[1] = H + D * D;
    bi->H[2] = bi->H[1] + A * A;
    bi->H[3] = bi->H[2] + D * D;
    memset(H, 0, (size_t)(2 * D * D + A * A + F * F) * sizeof(float));
    if (am) {
        memset(am, 0, (size_t)(2 * D + A + F) * sizeof(float));
        bi->absmean[0] = am;
        bi->absmean[1] = am + D;
        bi->absmean[2] = am + D + A;
        bi->absmean[3] = am + 2 * D + A;
    }
    lp_block_hooks hooks = {.capture = capture_h, .ud = bi};
    lp_status s = LP_OK;
    double t0 = lp_now_s();
    for (int64_t i = 0; s == LP_OK && i < N; i++) {
        float *x = X + i * L * D;
        if (!in_place) {
            memcpy(T, x, (size_t)(L * D) * sizeof(float));
            x = T;
        }
        s = lp_block_forward(ctx, b, x, L, &hooks);
    }
    P->st.forward += lp_now_s() - t0;
    for (int g = 0; s == LP_OK && g < 4; g++) {
        hess_finish(P, bi->H[g], N * L, bi->cols[g]);
        for (int64_t j = 0; am && j < bi->cols[g]; j++) bi->absmean[g][j] /= (float)(N * L);
    }
    return s;
}

/* Block b calibrated on its input X (N x L x D): the four Hessians from one
 * run of the uncompressed block per window, the method's block plan
 * (plan_block), the seven linears compressed, then X = the compressed
 * block's output. dual_inputs methods also get H0 and mean |x| from X0 (the
 * uncompressed model's activations, advanced through the uncompressed
 * block here; H0 is its Hessian scratch). */
static lp_status run_block_input(pipe *P, lp_ctx *ctx, int64_t b, float *X, float *X0, float *H0, float *T, int64_t N,
                                 int64_t L) {
    const lp_config *c = &P->m->cfg;
    const lp_method *meth = lp_settings_method(P->p->method);
    const int64_t D = c->dim, A = c->n_heads * c->head_dim, F = c->ffn;
    block_input bi, bi0 = {0};
    float *am = NULL;
    lp_status s = LP_OK;
    if (X0) {
        am = malloc((size_t)(2 * D + A + F) * sizeof *am);
        s = am ? capture_block(P, ctx, b, X0, T, N, L, H0, am, true, &bi0) : lp_fail(LP_ERR_NOMEM, "out of memory");
    }
    if (s == LP_OK) s = capture_block(P, ctx, b, X, T, N, L, P->H, NULL, false, &bi);
    double plan[LP_NLIN];
    const double *pl = plan_of(P, b);
    if (s == LP_OK && meth->plan_block) {
        const lp_block_plan_in in = {.m = P->m, .ctx = ctx, .b = b, .N = N, .L = L, .X = X,
                                     .H = {bi.H[0], bi.H[1], bi.H[2], bi.H[3]}, .cols = {D, A, D, F}, .p = P->p};
        double got[LP_NLIN];
        s = meth->plan_block(&in, lp_settings_data(P->p->method), got, &P->st);
        for (int k = 0; k < LP_NLIN; k++) plan[k] = !isnan(got[k]) ? got[k] : pl ? pl[k] : NAN;
        pl = plan;
    }
    const int *stages[4] = {QKV, O, GU, DOWN};
    char name[256];
    for (int g = 0; s == LP_OK && g < 4; g++)
        for (int k = 0; s == LP_OK && stages[g][k] >= 0; k++) {
            const int lin = stages[g][k];
            if (P->p->interrupt && *P->p->interrupt) {
                s = lp_fail(LP_ERR_INTERRUPTED, "interrupted in block %lld", (long long)b + 1);
                break;
            }
            double err = NAN;
            const lp_linear_extra x = {.H0 = X0 ? bi0.H[g] : NULL, .absmean = X0 ? bi0.absmean[g] : NULL,
                                       .plan = pl ? pl[lin] : NAN};
            s = lp_method_compress_linear_ex(P->p->method, &P->m->layers[b].lin[lin], bi.H[g], &x, &P->st, &err);
            if (s != LP_OK) {
                lp_linear_name(b, lin, name, sizeof name);
                s = lp_fail_ctx(s, "%s", name);
            } else if (P->p->progress) {
                P->p->progress(P->p->progress_ud, b, c->n_layers, lp_linear_names[lin], err);
            }
        }
    free(am);
    if (s != LP_OK) return s;
    /* The block's output with its compressed weights, each expanded to f32
     * once for all windows (a packed product would unpack it per window). */
    double t0 = lp_now_s();
    lp_linear dense[LP_NLIN] = {{0}};
    lp_block_hooks stand = {0};
    for (int k = 0; s == LP_OK && k < LP_NLIN; k++) {
        const lp_linear *l = &P->m->layers[b].lin[k];
        float *W = lp_linear_to_f32(l);
        lp_dense *d = NULL;
        s = W ? lp_dense_own(l->rows, l->cols, W, &d) : lp_fail(LP_ERR_NOMEM, "out of memory");
        if (s != LP_OK) break; /* lp_dense_own took W */
        dense[k] = (lp_linear){.rows = l->rows, .cols = l->cols, .bias = l->bias};
        lp_linear_set(&dense[k], &lp_format_dense, d);
        stand.lin[k] = &dense[k];
    }
    for (int64_t i = 0; s == LP_OK && i < N; i++) s = lp_block_forward(ctx, b, X + i * L * D, L, &stand);
    for (int k = 0; k < LP_NLIN; k++) lp_linear_free(&dense[k]);
    P->st.forward += lp_now_s() - t0;
    return s;
}

/* The four stages of block b: X (N x L x D) in, the compressed block's
 * output out (in X); Y (N x L x max(D, A)) and Z (N x L x F, or NULL: then
 * one L x F slab) are scratch; T is L x max(D, A, F) scratch. */
static lp_status run_block(pipe *P, lp_ctx *ctx, int64_t b, float *X, float *Y, float *Z, bool keep_z, float *T,
                           int64_t N, int64_t L) {
    const lp_config *c = &P->m->cfg;
    const int64_t D = c->dim, A = c->n_heads * c->head_dim, F = c->ffn, S = D > A ? D : A;
    lp_status s = LP_OK;
    double t0;

    /* 1. q, k, v from the input RMSNorm */
    hess_reset(P, D);
    for (int64_t i = 0; i < N; i++) {
        t0 = lp_now_s();
        lp_block_norm(P->m, b, 0, X + i * L * D, L, T);
        P->st.forward += lp_now_s() - t0;
        hess_add(P, T, L, D);
    }
    LP_TRY(compress_stage(P, b, D, QKV));

    /* 2. o from the attention heads; then Y = X + o(A) */
    hess_reset(P, A);
    for (int64_t i = 0; s == LP_OK && i < N; i++) {
        t0 = lp_now_s();
        s = lp_block_attention(ctx, b, X + i * L * D, L, Y + i * L * S);
        P->st.forward += lp_now_s() - t0;
        if (s == LP_OK) hess_add(P, Y + i * L * S, L, A);
    }
    LP_TRY(s);
    LP_TRY(compress_stage(P, b, A, O));
    t0 = lp_now_s();
    for (int64_t i = 0; s == LP_OK && i < N; i++) s = lp_block_residual(P->m, b, LP_O, Y + i * L * S, L, X + i * L * D, Y + i * L * S, T);
    P->st.forward += lp_now_s() - t0;
    LP_TRY(s);

    /* 3. gate, up from the post-attention RMSNorm */
    hess_reset(P, D);
    for (int64_t i = 0; i < N; i++) {
        t0 = lp_now_s();
        lp_block_norm(P->m, b, 1, Y + i * L * S, L, T);
        P->st.forward += lp_now_s() - t0;
        hess_add(P, T, L, D);
    }
    LP_TRY(compress_stage(P, b, D, GU));

    /* 4. down from silu(gate) * up */
    hess_reset(P, F);
    for (int64_t i = 0; s == LP_OK && i < N; i++) {
        float *z = keep_z ? Z + i * L * F : Z;
        t0 = lp_now_s();
        s = lp_block_mlp_act(ctx, b, Y + i * L * S, L, z);
        P->st.forward += lp_now_s() - t0;
        if (s == LP_OK) hess_add(P, z, L, F);
    }
    LP_TRY(s);
    LP_TRY(compress_stage(P, b, F, DOWN));

    /* the block's output: X = Y + down(Z) */
    t0 = lp_now_s();
    for (int64_t i = 0; s == LP_OK && i < N; i++) {
        float *z = keep_z ? Z + i * L * F : Z;
        if (!keep_z) s = lp_block_mlp_act(ctx, b, Y + i * L * S, L, z);
        if (s == LP_OK) s = lp_block_residual(P->m, b, LP_DOWN, z, L, Y + i * L * S, X + i * L * D, T);
    }
    P->st.forward += lp_now_s() - t0;
    return s;
}

lp_status lp_quantize_calibrated(lp_model *m, const lp_quant_params *p) {
    const lp_config *c = &m->cfg;
    const lp_calib *cal = p->calib;
    const int64_t N = cal->nsamples, L = cal->seqlen, D = c->dim;
    pipe P = {.m = m, .p = p};
    double t_start = lp_now_s();
    for (int64_t i = 0; i < N * L; i++)
        if (cal->tokens[i] < 0 || cal->tokens[i] >= c->vocab)
            return lp_fail(LP_ERR_ARG, "calibration token %d outside the vocabulary", cal->tokens[i]);
    if (L > c->max_pos)
        return lp_fail(LP_ERR_ARG, "calibration --seqlen %lld exceeds the model's context %lld", (long long)L,
                       (long long)c->max_pos);
    const lp_method *meth = lp_settings_method(p->method);
    if (p->resume_dir && !lp_method_resumable(meth))
        return lp_fail(LP_ERR_ARG, "%s cannot resume: it carries the uncompressed model's activations beside the "
                       "compressed one's, and a resume state holds only the latter; run it without --resume",
                       lp_method_name(meth));
    /* the sizes lp_pipeline_memory reported, which lp_model_quantize found to fit */
    const pipe_sizes z = pipe_sizes_of(c, p, N, L);
    const bool awq_only = z.block_only, keep_z = z.keep_z;
    float *X = malloc((size_t)z.x * sizeof(float));
    float *Y = z.y > 0 ? malloc((size_t)z.y * sizeof(float)) : NULL;
    float *Z = z.z > 0 ? malloc((size_t)z.z * sizeof(float)) : NULL;
    float *T = z.t > 0 ? malloc((size_t)z.t * sizeof(float)) : NULL;
    P.H = z.h > 0 ? malloc((size_t)z.h * sizeof(float)) : NULL;
    float *X0 = z.x0 > 0 ? malloc((size_t)z.x0 * sizeof(float)) : NULL;
    float *H0 = z.h0 > 0 ? malloc((size_t)z.h0 * sizeof(float)) : NULL;
    lp_ctx *ctx = NULL;
    lp_status s = X && (Y || !z.y) && (Z || !z.z) && (T || !z.t) && (P.H || !z.h) && (X0 || !z.x0) && (H0 || !z.h0)
                      ? lp_ctx_init(m, L, L, &ctx)
                      : lp_fail(LP_ERR_NOMEM, "out of memory for %lld x %lld calibration activations",
                                (long long)N, (long long)L);
    P.st.peak_activation_bytes = (size_t)(z.x + z.x0 + z.y + z.z + z.t + z.h + z.h0) * sizeof(float);
    for (int64_t i = 0; s == LP_OK && i < N; i++) lp_embed_tokens(m, cal->tokens + i * L, L, X + i * L * D);
    if (s == LP_OK && X0) memcpy(X0, X, (size_t)(N * L * D) * sizeof(float));
    if (s == LP_OK && meth->plan_model) {
        P.plan = malloc((size_t)(c->n_layers * LP_NLIN) * sizeof *P.plan);
        if (!P.plan) s = lp_fail(LP_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; s == LP_OK && i < c->n_layers * LP_NLIN; i++) P.plan[i] = NAN;
        if (s == LP_OK) s = meth->plan_model(m, p, lp_settings_data(p->method), P.plan, &P.st);
    }
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
        if (awq_only) { /* its own per-block steps; X becomes what it propagates */
            s = meth->block(m, ctx, b, X, N, L, lp_settings_data(p->method), true, p, &P.st);
        } else {
            if (p->prescale) { /* fold AWQ's scales (and clipping) in; keep X, the block's inputs */
                memcpy(Y, X, (size_t)(N * L * D) * sizeof(float));
                s = lp_settings_method(p->prescale)->block(m, ctx, b, Y, N, L, lp_settings_data(p->prescale), false,
                                                           p, &P.st);
            }
            if (s == LP_OK)
                s = z.block_input ? run_block_input(&P, ctx, b, X, X0, H0, T, N, L)
                                  : run_block(&P, ctx, b, X, Y, Z, keep_z, T, N, L);
        }
        for (int64_t i = 0; s == LP_OK && i < N * L * D; i++)
            if (!isfinite(X[i]))
                s = lp_fail(LP_ERR_NUMERIC, "block %lld produced non-finite activations after compression",
                            (long long)b);
        if (s == LP_OK && p->resume_dir) s = lp_resume_save(p->resume_dir, key, m, b, X, N * L * D);
    }
    free(key);
    free(P.plan);
    free(X0);
    free(H0);
    P.st.total = lp_now_s() - t_start;
    if (p->stats) *p->stats = P.st;
    lp_ctx_free(ctx);
    free(P.H);
    free(T);
    free(Z);
    free(Y);
    free(X);
    return s;
}
