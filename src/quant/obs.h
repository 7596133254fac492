/*
 * obs.h - the error-feedback loop shared by GPTQ-style methods: Optimal
 * Brain Surgeon updates over columns with lazy blocks (Frantar et al.,
 * "GPTQ", arXiv:2210.17323, section 3; SparseGPT, arXiv:2301.00774).
 *
 * What: W (R x C, out x in) is processed column by column in the order
 *   perm; each column is replaced by what a per-column STEP keeps (a grid
 *   value, a pruned zero, a sign times a scale, a salient weight kept as
 *   is), and the column's error, scaled by the inverse Hessian, is pushed
 *   onto the columns not yet processed, so tr((W - Q) H (W - Q)^T) stays
 *   small. The loop knows nothing of what the step keeps: GPTQ quantizes to
 *   a grid, SparseGPT prunes, PB-LLM / BiLLM / ARB-X binarize - one loop.
 * The loop (H = 2 X^T X / n, C x C):
 *   1. dead inputs (H[i,i] == 0): H[i,i] = 1 and W[:,i] = 0;
 *   2. act_order: perm = columns by diag(H) descending (stable), else identity;
 *   3. damp * mean(diag H) added to the diagonal (retried x10 while not
 *      positive definite); Hinv = upper Cholesky factor of (H + damp I)^-1;
 *   4. for each block [i1, i2) of `block` columns, per row r (in parallel):
 *        step->block_begin(r, i1, i2, ...)             (optional)
 *        for c in i1 .. i2-1:  d = Hinv[c,c]
 *          q = step->column(r, c, w)                   (w: the updated value)
 *          loss += ((w - q) / d)^2 / 2
 *          e = (w - q) / d;  W1[r, c+1:i2] -= e Hinv[c, c+1:i2]
 *      then W[:, i2:] -= E Hinv[i1:i2, i2:]            (one sgemm: the lazy update)
 *   (step->block_all(i1, i2, W, Hinv) runs first, once per block, when set;
 *   with no_inner the update of W1[r, c+1:i2] is skipped: BiLLM's loop.)
 * Design: rows never interact, so each row's block is one thread's work in a
 *   fixed order: results do not depend on the OpenMP thread count (OpenBLAS's
 *   own threads can round sgemm/dpotrf differently: see gptq.c). The outer
 *   W handed to the step is not written during a block (GPTQ reads group
 *   ranges there, as its reference does).
 */
#ifndef LP_OBS_H
#define LP_OBS_H

#include "llmpress/status.h"

#include <stdint.h>

typedef struct {
    const char *who;  /* names the caller in errors ("gptq") */
    double damp;      /* relative dampening (0.01) */
    int block;        /* lazy-batch block of columns (128) */
    int act_order;    /* 1: columns in decreasing diag(H) order */
    int damp_retries; /* factorization retries with 10x the damping (4) */
    int no_inner;     /* 1: a column's error reaches only later blocks, never the
                       * rest of its own block (BiLLM / ARB-LLM quantize a block
                       * at once from its values at the block's start) */
} lp_obs_params;

lp_obs_params lp_obs_default_params(const char *who);

typedef struct {
    void *ud;
    /* Once the order and dead inputs are known, before the factorization
     * (may be NULL): perm[k] is the original column processed k-th, dead[c]
     * marks original column c dead. A step that fixes parameters up front
     * (static groups) does it here. */
    lp_status (*prepare)(void *ud, const int64_t *perm, const uint8_t *dead);
    /* Before the columns [i1, i2) of row r (may be NULL): w1 holds the row's
     * current values there, hinv is Hinv (C x C, row-major upper; column c's
     * d is hinv[c * C + c]) - what a step that chooses a mask or salient set
     * per block needs. Returns 0, or non-zero when the row cannot continue. */
    int (*block_begin)(void *ud, int64_t r, int64_t i1, int64_t i2, const float *w1, const float *hinv);
    /* Before the columns [i1, i2) of every row, serially (may be NULL; it may
     * use threads inside): Wp is the working W (R x C, row-major, permuted,
     * dead inputs zeroed) with every earlier block's error already pushed in,
     * hinv as above - what a step that chooses columns or masks from the
     * whole block (BiLLM's salient columns) needs. */
    lp_status (*block_all)(void *ud, int64_t i1, int64_t i2, const float *Wp, const float *hinv);
    /* The value kept at processing position c (original column perm[c]) of
     * row r, given its current value w; outer is row r of the working W
     * (permuted, dead inputs zeroed) as of the start of this block. Returns
     * 0, or non-zero when the row cannot continue. Runs on several threads
     * (different rows) at once. */
    int (*column)(void *ud, int64_t r, int64_t c, float w, const float *outer, float *q);
    /* Before column c of row r (may be NULL): cur[0 .. n) are the row's
     * current values of processing positions c .. i2 - 1 of this block (with
     * every earlier column's error already pushed in): what SparseGPT's N:M
     * mask, chosen at each group's first column, needs. Returns 0, or
     * non-zero when the row cannot continue. */
    int (*ahead)(void *ud, int64_t r, int64_t c, const float *cur, int64_t n);
    /* After a failure at (r, c): set the error message (lp_fail) saying
     * why, serially (may be NULL). */
    lp_status (*explain)(void *ud, int64_t r, int64_t c, const float *outer);
} lp_obs_step;

typedef struct {
    double loss;      /* sum of ((w - q) / d)^2 / 2: GPTQ's printed 'error' */
    double damp;      /* relative damping used (after retries) */
    double damp_abs;  /* damp * mean(diag H) */
    int damp_retries;
    int64_t dead;     /* inputs with H[i,i] == 0 */
    double t_factor;  /* seconds: checks, permutation, damping, Cholesky, inverse */
    double t_loop;    /* seconds: the column loop */
} lp_obs_stats;

/* Run the loop on W (R x C, read-only) and H (C x C, symmetric, overwritten
 * with scratch). Errors: LP_ERR_ARG for bad params, LP_ERR_NUMERIC for
 * NaN/Inf in W or H, an H still indefinite after the retries, or a step or
 * loss that diverged (naming the row and column); LP_ERR_NOMEM. stats may
 * be NULL. */
lp_status lp_obs_run(const float *W, int64_t R, int64_t C, float *H, const lp_obs_params *p, const lp_obs_step *step,
                     lp_obs_stats *stats);

#endif
