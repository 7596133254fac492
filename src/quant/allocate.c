/*
 * allocate.c - --allocate for the pruning methods: a global sparsity spread
 * over the linears of each decoder block so that the block's output changes
 * least (BESA's aim, Xu et al. 2024, arXiv:2402.16880, reached without
 * gradients).
 *
 * What, per block b calibrated on its input X (the method's plan_block):
 *   1. the block's uncompressed output Y on the first LP_ALLOC_WINDOWS
 *      windows of X;
 *   2. for each linear k and each sparsity s on the grid S - 0.2, S - 0.15,
 *      ..., S + 0.2 (clipped to [0, 0.95]): E_k(s) = || block(X) - Y ||^2
 *      with only linear k pruned at s by the method's metric without updates
 *      (|w| for magnitude, |w| ||x|| for wanda and sparsegpt; per output
 *      row, as wanda compares);
 *   3. taking the costs as separable, the cheapest way to remove the
 *      block's S x (its parameters) weights: every linear starts at the
 *      grid's lowest point and the step with the smallest rise of E per
 *      removed parameter is taken, again and again, the last one partially
 *      (linear in s between grid points), so the parameter-weighted mean is
 *      exactly S;
 *   4. the allocation is kept only when the block's output error with every
 *      linear pruned at its s_k is below that of uniform S; else uniform.
 *   The method then prunes linear k at s_k with its own criterion (SparseGPT
 *   with its updates).
 * Why this way: BESA learns per-layer sparsities by gradient descent on the
 *   block reconstruction error; here the same error is measured directly,
 *   7 x 9 block runs on a few windows per block, with no training, and step 4
 *   guarantees the block never does worse than uniform on what was measured.
 */
#include "quant/prune.h"

#include "core/status_impl.h"
#include "format/dense.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LP_ALLOC_WINDOWS 4 /* calibration windows the block errors are measured on */
#define NGRID 9            /* S - 0.2 .. S + 0.2 */
#define GRID_STEP 0.05
#define S_MAX 0.95

typedef struct {
    const lp_block_plan_in *in;
    int kind;
    int64_t nw;     /* windows used */
    float *Y;       /* nw x L x D: the uncompressed block's output */
    float *T;       /* L x D scratch */
    float *W[LP_NLIN];
    int64_t *order[LP_NLIN];
} alloc_job;

/* H of linear k's input group */
static const float *h_of(const lp_block_plan_in *in, int k) {
    return in->H[k == LP_Q || k == LP_K || k == LP_V ? 0 : k == LP_O ? 1 : k == LP_DOWN ? 3 : 2];
}

/* A dense copy of linear k's W pruned at sparsity s into *out. */
static lp_status pruned(const alloc_job *J, int k, double s, lp_linear *out) {
    const lp_linear *l = &J->in->m->layers[J->in->b].lin[k];
    const int64_t R = l->rows, C = l->cols;
    float *W = malloc((size_t)(R * C) * sizeof *W);
    uint8_t *keep = malloc((size_t)(R * C));
    if (!W || !keep) {
        free(W);
        free(keep);
        return lp_fail(LP_ERR_NOMEM, "--allocate: out of memory");
    }
    lp_prune_keep_rows(J->order[k], R, C, s, keep);
    for (int64_t i = 0; i < R * C; i++) W[i] = keep[i] ? J->W[k][i] : 0.0f;
    free(keep);
    lp_dense *d = NULL;
    LP_TRY(lp_dense_own(R, C, W, &d));
    *out = (lp_linear){.rows = R, .cols = C, .bias = l->bias};
    lp_linear_set(out, &lp_format_dense, d);
    return LP_OK;
}

/* ||block(X) - Y||^2 over the windows with s[k] for each linear (NAN: as is). */
static lp_status block_error(alloc_job *J, const double *s, double *err) {
    const lp_block_plan_in *in = J->in;
    const int64_t L = in->L, D = in->m->cfg.dim;
    lp_linear cand[LP_NLIN] = {{0}};
    lp_block_hooks hooks = {0};
    lp_status st = LP_OK;
    for (int k = 0; st == LP_OK && k < LP_NLIN; k++)
        if (!isnan(s[k])) {
            st = pruned(J, k, s[k], &cand[k]);
            hooks.lin[k] = &cand[k];
        }
    double e = 0.0;
    for (int64_t w = 0; st == LP_OK && w < J->nw; w++) {
        memcpy(J->T, in->X + w * L * D, (size_t)(L * D) * sizeof *J->T);
        st = lp_block_forward(in->ctx, in->b, J->T, L, &hooks);
        for (int64_t i = 0; st == LP_OK && i < L * D; i++) {
            const double d = (double)J->T[i] - (double)J->Y[w * L * D + i];
            e += d * d;
        }
    }
    for (int k = 0; k < LP_NLIN; k++) lp_linear_free(&cand[k]);
    *err = e;
    return st;
}

static double grid_at(double S, int g) {
    const double s = S + (g - (NGRID - 1) / 2) * GRID_STEP;
    return s < 0.0 ? 0.0 : s > S_MAX ? S_MAX : s;
}

/* Step 3: the greedy spread of the budget over the separable costs E. */
static void spread(const double E[LP_NLIN][NGRID], const double *n, double S, double *s_out) {
    double budget = 0.0, spent = 0.0;
    int at[LP_NLIN];
    for (int k = 0; k < LP_NLIN; k++) {
        budget += S * n[k];
        at[k] = 0;
        s_out[k] = grid_at(S, 0);
        spent += s_out[k] * n[k];
    }
    while (spent < budget) {
        int best = -1;
        double rate = INFINITY;
        for (int k = 0; k < LP_NLIN; k++) {
            if (at[k] == NGRID - 1) continue;
            const double dn = (grid_at(S, at[k] + 1) - grid_at(S, at[k])) * n[k];
            if (dn <= 0.0) continue;
            const double r = (E[k][at[k] + 1] - E[k][at[k]]) / dn;
            if (r < rate) {
                rate = r;
                best = k;
            }
        }
        if (best < 0) break; /* every linear at the grid's top: S itself is out of reach */
        const double lo = grid_at(S, at[best]), hi = grid_at(S, at[best] + 1), dn = (hi - lo) * n[best];
        if (spent + dn >= budget) {
            s_out[best] = lo + (budget - spent) / n[best];
            spent = budget;
        } else {
            s_out[best] = hi;
            at[best]++;
            spent += dn;
        }
    }
}

lp_status lp_prune_allocate(const lp_block_plan_in *in, const void *sp, double plan[LP_NLIN], lp_quant_stats *st) {
    const lp_prune_settings *s = sp;
    for (int k = 0; k < LP_NLIN; k++) plan[k] = NAN;
    if (!s->allocate) return LP_OK;
    const double t0 = lp_now_s();
    const int64_t L = in->L, D = in->m->cfg.dim;
    alloc_job J = {.in = in, .kind = lp_prune_kind(lp_settings_method(in->p->method))};
    J.nw = in->N < LP_ALLOC_WINDOWS ? in->N : LP_ALLOC_WINDOWS;
    J.Y = malloc((size_t)(J.nw * L * D) * sizeof *J.Y);
    J.T = malloc((size_t)(L * D) * sizeof *J.T);
    lp_status r = J.Y && J.T ? LP_OK : lp_fail(LP_ERR_NOMEM, "--allocate: out of memory");
    double n[LP_NLIN];
    for (int k = 0; r == LP_OK && k < LP_NLIN; k++) {
        const lp_linear *l = &in->m->layers[in->b].lin[k];
        n[k] = (double)(l->rows * l->cols);
        J.W[k] = lp_linear_to_f32(l);
        J.order[k] = malloc((size_t)(l->rows * l->cols) * sizeof *J.order[k]);
        float *metric = malloc((size_t)(l->rows * l->cols) * sizeof *metric);
        if (!J.W[k] || !J.order[k] || !metric) r = lp_fail(LP_ERR_NOMEM, "--allocate: out of memory");
        if (r == LP_OK) {
            /* sparsegpt's own criterion needs its updates; its allocation ranks by wanda's metric */
            lp_prune_metric(J.kind == 0 ? 0 : 1, J.W[k], l->rows, l->cols, h_of(in, k), metric);
            r = lp_prune_rank_rows(metric, l->rows, l->cols, J.order[k]);
        }
        free(metric);
    }
    /* 1. the uncompressed output */
    for (int64_t w = 0; r == LP_OK && w < J.nw; w++) {
        memcpy(J.Y + w * L * D, in->X + w * L * D, (size_t)(L * D) * sizeof *J.Y);
        r = lp_block_forward(in->ctx, in->b, J.Y + w * L * D, L, NULL);
    }
    /* 2. one linear pruned at a time */
    double E[LP_NLIN][NGRID], one[LP_NLIN];
    for (int k = 0; r == LP_OK && k < LP_NLIN; k++)
        for (int g = 0; r == LP_OK && g < NGRID; g++) {
            for (int j = 0; j < LP_NLIN; j++) one[j] = j == k ? grid_at(s->sparsity, g) : NAN;
            r = block_error(&J, one, &E[k][g]);
        }
    /* 3. the spread; 4. kept only when it beats uniform on the block */
    if (r == LP_OK) {
        double alloc[LP_NLIN], uni[LP_NLIN], e_alloc = 0.0, e_uni = 0.0;
        spread(E, n, s->sparsity, alloc);
        for (int k = 0; k < LP_NLIN; k++) uni[k] = s->sparsity;
        r = block_error(&J, alloc, &e_alloc);
        if (r == LP_OK) r = block_error(&J, uni, &e_uni);
        for (int k = 0; r == LP_OK && k < LP_NLIN; k++) plan[k] = e_alloc < e_uni ? alloc[k] : uni[k];
    }
    for (int k = 0; k < LP_NLIN; k++) {
        free(J.W[k]);
        free(J.order[k]);
    }
    free(J.Y);
    free(J.T);
    st->method += lp_now_s() - t0;
    return r;
}
