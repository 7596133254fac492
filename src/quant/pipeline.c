/*
 * pipeline.c - block-wise calibrated compression, as GPTQ's llama.py drives it.
 *
 * What: the calibration windows are embedded into X (N sequences x L tokens
 *   x D); then for each decoder block b, in order:
 *     for each stage of linears, in true-sequential order
 *         {q, k, v} | {o} | {gate, up} | {down}:
 *       run block b on every sequence of X, with the stages already done
 *       quantized, only as far as the stage's input, accumulating
 *       H = 2 X_s^T X_s / n over all n calibration tokens (cblas_ssyrk);
 *       compress each linear of the stage with H (GPTQ);
 *     X = block b, fully compressed, applied to X (errors propagate).
 * Why: each linear is fitted to the inputs it will really see once the
 *   linears before it are compressed - the order GPTQ's results depend on.
 * AWQ (awq.c) plugs in per block instead of the four GPTQ stages.
 * Design: the capture hook of lp_block_forward stops the block right after
 *   the stage's input is known, so the four stages cost about three block
 *   passes rather than four full ones. Memory: X (N*L*D floats) + one
 *   Hessian (cols^2) + one linear in f32; never the whole model in f32.
 */
#include "quant/pipeline.h"

#include "core/status_impl.h"
#include "model/model_impl.h"
#include "quant/awq.h"
#include "quant/gptq.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The Hessian accumulator behind the capture hook. */
typedef struct {
    int want;     /* capture id of the stage: LP_Q, LP_O, LP_GATE or LP_DOWN */
    float *H;     /* cols x cols, upper triangle accumulated */
    int64_t cols;
    int64_t ntok;
    double t_stats;
} hess_acc;

static int capture_hessian(void *ud, int k, const float *X, int64_t T, int64_t cols) {
    hess_acc *a = ud;
    if (k != a->want) return 0;
    LP_ASSERT(cols == a->cols);
    double t0 = now_s();
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)cols, (int)T, 1.0f, X, (int)cols, 1.0f, a->H,
                (int)cols);
    a->ntok += T;
    a->t_stats += now_s() - t0;
    return 1; /* the rest of the block is not needed for this stage */
}

static const struct {
    int capture;     /* whose input the stage needs */
    int lin[3];      /* the linears compressed with it (-1 = none) */
} STAGES[4] = {
    {LP_Q, {LP_K, LP_V, LP_Q}},
    {LP_O, {LP_O, -1, -1}},
    {LP_GATE, {LP_UP, LP_GATE, -1}},
    {LP_DOWN, {LP_DOWN, -1, -1}},
};

static double rel_error(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)a[i] * a[i];
    }
    return den > 0 ? sqrt(num / den) : 0.0;
}

/* Compress one dense linear with H (cols x cols, full symmetric; not changed). */
static lp_status compress_linear(lp_linear *l, const float *H, const lp_quant_params *p, lp_quant_stats *st,
                                 double *err) {
    if (l->fmt != LP_LINEAR_DENSE)
        return lp_fail(LP_ERR_ARG, "linear is already compressed; quantize the original checkpoint");
    const int64_t rows = l->rows, cols = l->cols;
    float *W = lp_linear_to_f32(l);
    float *Hc = malloc((size_t)(cols * cols) * sizeof(float));
    lp_qgroup *q = calloc(1, sizeof *q);
    lp_status s = (W && Hc && q) ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (s == LP_OK) {
        memcpy(Hc, H, (size_t)(cols * cols) * sizeof(float));
        s = lp_qgroup_init(q, rows, cols, p->bits, p->group, p->sym);
    }
    if (s == LP_OK) {
        lp_gptq_params gp = lp_gptq_default_params();
        gp.damp = p->damp;
        gp.block = p->gptq_block;
        gp.act_order = p->act_order;
        lp_gptq_stats gs = {0};
        s = lp_gptq_quantize(W, Hc, &gp, q, &gs);
        st->factorize += gs.t_factor;
        st->quantize += gs.t_loop;
    }
    if (s == LP_OK) {
        float *D = malloc((size_t)(rows * cols) * sizeof(float));
        *err = NAN;
        if (D) {
            lp_qgroup_dequant(q, 0, rows, D);
            *err = rel_error(W, D, rows * cols);
            free(D);
        }
        lp_linear_set_qgroup(l, q);
        q = NULL;
    }
    if (q) {
        lp_qgroup_free(q);
        free(q);
    }
    free(Hc);
    free(W);
    return s;
}

lp_status lp_quantize_calibrated(lp_model *m, const lp_quant_params *p) {
    const lp_config *c = &m->cfg;
    const lp_calib *cal = p->calib;
    const int64_t N = cal->nsamples, L = cal->seqlen, D = c->dim;
    lp_quant_stats st = {0};
    double t_start = now_s();
    for (int64_t i = 0; i < N * L; i++)
        if (cal->tokens[i] < 0 || cal->tokens[i] >= c->vocab)
            return lp_fail(LP_ERR_ARG, "calibration token %d outside the vocabulary", cal->tokens[i]);
    if (L > c->max_pos)
        return lp_fail(LP_ERR_ARG, "calibration --seqlen %lld exceeds the model's context %lld", (long long)L,
                       (long long)c->max_pos);

    int64_t maxcols = c->ffn > c->dim ? c->ffn : c->dim;
    if (c->n_heads * c->head_dim > maxcols) maxcols = c->n_heads * c->head_dim;
    float *X = malloc((size_t)(N * L * D) * sizeof(float));
    float *H = malloc((size_t)(maxcols * maxcols) * sizeof(float));
    lp_ctx *ctx = NULL;
    lp_status s = (X && H) ? lp_ctx_init(m, L, L, &ctx)
                           : lp_fail(LP_ERR_NOMEM, "out of memory for %lld x %lld calibration activations",
                                     (long long)N, (long long)L);
    st.peak_activation_bytes = (size_t)(N * L * D + maxcols * maxcols) * sizeof(float);
    for (int64_t i = 0; s == LP_OK && i < N; i++) lp_embed_tokens(m, cal->tokens + i * L, L, X + i * L * D);

    char name[256];
    for (int64_t b = 0; s == LP_OK && b < c->n_layers; b++) {
        lp_layer *Lb = &m->layers[b];
        if (p->method == LP_METHOD_AWQ) { /* its own per-block steps; X becomes the f32 block's output */
            s = lp_awq_block(m, ctx, b, X, N, L, p, true, &st);
            continue;
        }
        for (int sg = 0; s == LP_OK && sg < 4; sg++) {
            const int64_t cols = Lb->lin[STAGES[sg].lin[0]].cols;
            hess_acc acc = {.want = STAGES[sg].capture, .H = H, .cols = cols};
            memset(H, 0, (size_t)(cols * cols) * sizeof(float));
            double t0 = now_s();
            for (int64_t i = 0; s == LP_OK && i < N; i++)
                s = lp_block_forward(ctx, b, X + i * L * D, L, capture_hessian, &acc);
            st.forward += now_s() - t0 - acc.t_stats;
            st.stats += acc.t_stats;
            if (s != LP_OK) break;
            /* Mirror the upper triangle and scale: H = 2 X^T X / n. */
            const float scale = 2.0f / (float)acc.ntok;
            for (int64_t i = 0; i < cols; i++) {
                for (int64_t j = i; j < cols; j++) H[i * cols + j] *= scale;
                for (int64_t j = 0; j < i; j++) H[i * cols + j] = H[j * cols + i];
            }
            for (int k = 0; k < 3 && STAGES[sg].lin[k] >= 0; k++) {
                const int li = STAGES[sg].lin[k];
                double err = 0;
                s = compress_linear(&Lb->lin[li], H, p, &st, &err);
                if (s != LP_OK) {
                    lp_linear_name(b, li, name, sizeof name);
                    s = lp_fail_ctx(s, "%s", name);
                    break;
                }
                if (p->progress) p->progress(p->progress_ud, b, c->n_layers, lp_linear_names[li], err);
            }
        }
        /* Inputs of the next block: this block, compressed, on this block's inputs. */
        double t0 = now_s();
        for (int64_t i = 0; s == LP_OK && i < N; i++) s = lp_block_forward(ctx, b, X + i * L * D, L, NULL, NULL);
        st.forward += now_s() - t0;
        for (int64_t i = 0; s == LP_OK && i < N * L * D; i++)
            if (!isfinite(X[i]))
                s = lp_fail(LP_ERR_NUMERIC, "block %lld produced non-finite activations after compression",
                            (long long)b);
    }
    st.total = now_s() - t_start;
    if (p->stats) *p->stats = st;
    lp_ctx_free(ctx);
    free(H);
    free(X);
    return s;
}
