/*
 * asvd_plan.c - ASVD's rank allocation (Yuan et al. 2023, arXiv:2312.05821,
 * section 3.3): how much of each decoder linear to keep so that the model
 * keeps a fraction --keep of the linears' parameters with the least loss.
 *
 * What (the method's plan_model, before the pipeline runs):
 *   1. on the first --asvd-windows calibration windows, block by block with
 *      the uncompressed model, the mean |x| of every linear's input (the
 *      scaling of svd.c's asvd);
 *   2. sensitivity: for every linear and kept fraction k in 0.4, 0.5, ...,
 *      0.9 (the authors' candidates: their code dropped 0.1-0.3, which let a
 *      linear that looks harmless alone fall so low that its error combines
 *      badly with the others'), the perplexity of those windows with
 *      only that linear replaced by its ASVD factors at k (the rest of the
 *      model uncompressed);
 *   3. the (linear, k, perplexity) entries sorted by perplexity, highest
 *      first; a threshold position t gives every linear the smallest k among
 *      the entries from t on (k = 1, uncompressed, when it has none); the
 *      smallest t whose exact kept parameters reach --keep is chosen by
 *      binary search (the authors' binary_search_truncation_rank, with
 *      exact counts instead of nominal ratios).
 * Cost: 6 x 7 perplexities per block, each running the blocks from the
 *   linear's own to the head on the windows (the head on every 4th position,
 *   ppl_from; the block's input is kept, so earlier blocks are not rerun);
 *   the SVD of each linear is done once and truncated per candidate.
 */
#include "quant/svd.h"

#include "core/status_impl.h"
#include "format/dense.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NCAND 6 /* kept fractions 0.4 .. 0.9 */

typedef struct {
    int lin;     /* b * LP_NLIN + k */
    double keep; /* candidate */
    double ppl;
} entry;

static int cmp_entry(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->ppl != y->ppl) return x->ppl > y->ppl ? -1 : 1; /* highest first */
    if (x->lin != y->lin) return x->lin < y->lin ? -1 : 1;
    return x->keep < y->keep ? -1 : x->keep > y->keep;
}

typedef struct {
    lp_model *m;
    lp_ctx *ctx;
    const int32_t *tok; /* nw x L */
    int64_t nw, L;
    float *T;           /* L x D */
    int32_t *next;      /* L */
} sens;

/* Perplexity of the windows whose block-b inputs are X (nw x L x D), block
 * b run with hooks, the later blocks as they are. Every position runs
 * through the blocks; the head and log-softmax score every STRIDE-th
 * (positions STRIDE-1, 2 STRIDE-1, ...), the same ones for every entry, so
 * the comparisons stay paired: an unbiased estimate of the same mean loss at
 * a quarter of the head's cost, spent instead on more windows (tokens of one
 * window are correlated; other windows are not). */
#define STRIDE 4
static lp_status ppl_from(sens *S, int64_t b, const float *X, const lp_block_hooks *hooks, double *ppl) {
    const int64_t D = S->m->cfg.dim, L = S->L;
    double nll = 0.0;
    int64_t count = 0;
    lp_status st = LP_OK;
    for (int64_t w = 0; st == LP_OK && w < S->nw; w++) {
        memcpy(S->T, X + w * L * D, (size_t)(L * D) * sizeof *S->T);
        st = lp_block_forward(S->ctx, b, S->T, L, hooks);
        for (int64_t l = b + 1; st == LP_OK && l < S->m->cfg.n_layers; l++) st = lp_block_forward(S->ctx, l, S->T, L, NULL);
        const int64_t stride = L > 2 * STRIDE ? STRIDE : 1; /* short windows: every position */
        int64_t n = 0;
        for (int64_t t = stride - 1; t + 1 < L; t += stride, n++) {
            memmove(S->T + n * D, S->T + t * D, (size_t)D * sizeof *S->T); /* n <= t: rows move down */
            S->next[n] = S->tok[w * L + t + 1];
        }
        double part = 0.0;
        if (st == LP_OK) st = lp_hidden_nll(S->m, S->T, n, S->next, &part);
        nll += part;
        count += n;
    }
    *ppl = exp(nll / (double)count);
    return st;
}

static int absmean_hook(void *ud, int k, const float *X, int64_t T, int64_t cols) {
    float **am = ud;
    const int g = k == LP_Q ? 0 : k == LP_O ? 1 : k == LP_GATE ? 2 : 3;
    for (int64_t t = 0; t < T; t++)
        for (int64_t j = 0; j < cols; j++) am[g][j] += fabsf(X[t * cols + j]);
    return 0;
}

/* Step 2 for block b (input X): the entries of its seven linears. */
static lp_status block_sensitivity(sens *S, const lp_svd_settings *s, int64_t b, const float *X, float *const am[4],
                                   entry *out) {
    lp_status st = LP_OK;
    for (int k = 0; st == LP_OK && k < LP_NLIN; k++) {
        const lp_linear *l = &S->m->layers[b].lin[k];
        const int64_t R = l->rows, C = l->cols, full = R < C ? R : C;
        const int g = k == LP_Q || k == LP_K || k == LP_V ? 0 : k == LP_O ? 1 : k == LP_DOWN ? 3 : 2;
        float *W = lp_linear_to_f32(l), *A = NULL, *B = NULL;
        st = W ? lp_svd_factor_scaled(W, R, C, am[g], s->alpha, full, &A, &B) : lp_fail(LP_ERR_NOMEM, "out of memory");
        for (int c = 0; st == LP_OK && c < NCAND; c++) {
            const double keep = 0.1 * (c + 4);
            const int64_t r = lp_svd_rank(R, C, keep);
            float *Wc = malloc((size_t)(R * C) * sizeof *Wc);
            if (!Wc) {
                st = lp_fail(LP_ERR_NOMEM, "out of memory");
                break;
            }
            /* Wc = B[:, :r] A[:r, :] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)C, (int)r, 1.0f, B, (int)full, A,
                        (int)C, 0.0f, Wc, (int)C);
            lp_dense *d = NULL;
            st = lp_dense_own(R, C, Wc, &d);
            if (st != LP_OK) break;
            lp_linear cand = {.rows = R, .cols = C, .bias = l->bias};
            lp_linear_set(&cand, &lp_format_dense, d);
            lp_block_hooks hooks = {0};
            hooks.lin[k] = &cand;
            double ppl = NAN;
            st = ppl_from(S, b, X, &hooks, &ppl);
            lp_linear_free(&cand);
            out[k * NCAND + c] = (entry){(int)(b * LP_NLIN + k), keep, ppl};
        }
        free(W);
        free(A);
        free(B);
    }
    return st;
}

/* Step 3: each linear's kept fraction for threshold position t. */
static void assign(const entry *e, int64_t n, int64_t t, int64_t nlin, double *keep) {
    for (int64_t i = 0; i < nlin; i++) keep[i] = 1.0;
    for (int64_t i = t; i < n; i++)
        if (e[i].keep < keep[e[i].lin]) keep[e[i].lin] = e[i].keep;
}

static double kept_fraction(const lp_model *m, const double *keep) {
    double kept = 0.0, total = 0.0;
    for (int64_t b = 0; b < m->cfg.n_layers; b++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_linear *l = &m->layers[b].lin[k];
            const double rc = (double)(l->rows * l->cols), q = keep[b * LP_NLIN + k];
            total += rc;
            kept += q >= 1.0 ? rc : (double)(lp_svd_rank(l->rows, l->cols, q) * (l->rows + l->cols));
        }
    return kept / total;
}

lp_status lp_asvd_plan(lp_model *m, const lp_quant_params *p, const void *sp, double *plan, lp_quant_stats *st) {
    const lp_svd_settings *s = sp;
    const double t0 = lp_now_s();
    const lp_config *c = &m->cfg;
    const int64_t L = p->calib->seqlen, D = c->dim, A = c->n_heads * c->head_dim, F = c->ffn;
    const int64_t nw = p->calib->nsamples < s->asvd_windows ? p->calib->nsamples : s->asvd_windows;
    const int64_t nlin = c->n_layers * LP_NLIN, nent = nlin * NCAND;
    sens S = {.m = m, .tok = p->calib->tokens, .nw = nw, .L = L};
    float *X = malloc((size_t)(nw * L * D) * sizeof *X), *amb = malloc((size_t)(2 * D + A + F) * sizeof *amb);
    entry *e = malloc((size_t)nent * sizeof *e);
    double *keep = malloc((size_t)nlin * sizeof *keep);
    S.T = malloc((size_t)(L * D) * sizeof *S.T);
    S.next = malloc((size_t)L * sizeof *S.next);
    lp_status r = X && amb && e && keep && S.T && S.next ? lp_ctx_init(m, L, L, &S.ctx)
                                                           : lp_fail(LP_ERR_NOMEM, "asvd: out of memory");
    for (int64_t w = 0; r == LP_OK && w < nw; w++) lp_embed_tokens(m, S.tok + w * L, L, X + w * L * D);
    float *am[4] = {amb, amb + D, amb + D + A, amb + 2 * D + A};
    for (int64_t b = 0; r == LP_OK && b < c->n_layers; b++) {
        if (p->interrupt && *p->interrupt) {
            r = lp_fail(LP_ERR_INTERRUPTED, "interrupted while measuring ASVD's sensitivity (block %lld)",
                        (long long)b + 1);
            break;
        }
        /* 1. mean |x| of the block's inputs on a copy (X stays the block's input) */
        memset(amb, 0, (size_t)(2 * D + A + F) * sizeof *amb);
        lp_block_hooks cap = {.capture = absmean_hook, .ud = am};
        for (int64_t w = 0; r == LP_OK && w < nw; w++) {
            memcpy(S.T, X + w * L * D, (size_t)(L * D) * sizeof *S.T);
            r = lp_block_forward(S.ctx, b, S.T, L, &cap);
        }
        for (int64_t j = 0; j < 2 * D + A + F; j++) amb[j] /= (float)(nw * L);
        /* 2. the block's sensitivities, then X through the uncompressed block */
        if (r == LP_OK) r = block_sensitivity(&S, s, b, X, am, e + b * LP_NLIN * NCAND);
        for (int64_t w = 0; r == LP_OK && w < nw; w++) r = lp_block_forward(S.ctx, b, X + w * L * D, L, NULL);
        if (r == LP_OK && p->progress) p->progress(p->progress_ud, b, c->n_layers, "asvd sensitivity", NAN);
    }
    /* 3. the threshold */
    if (r == LP_OK) {
        qsort(e, (size_t)nent, sizeof *e, cmp_entry);
        int64_t lo = 0, hi = nent;
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            assign(e, nent, mid, nlin, keep);
            if (kept_fraction(m, keep) >= s->keep) hi = mid;
            else lo = mid + 1;
        }
        assign(e, nent, lo, nlin, keep);
        memcpy(plan, keep, (size_t)nlin * sizeof *plan);
    }
    lp_ctx_free(S.ctx);
    free(X);
    free(amb);
    free(e);
    free(keep);
    free(S.T);
    free(S.next);
    st->method += lp_now_s() - t0;
    return r;
}
