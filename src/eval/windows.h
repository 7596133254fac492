/*
 * windows.h - internal to src/eval: the windows a perplexity protocol scores
 * (eval.h defines the protocols) and the per-row log-sum-exp, shared by
 * perplexity.c and kl.c so that a perplexity measured beside a KL divergence
 * is the very number `lp_perplexity` gives.
 */
#ifndef LP_EVAL_WINDOWS_H
#define LP_EVAL_WINDOWS_H

#include "llmpress/eval.h"

#include <math.h>

typedef struct {
    int64_t ctx;   /* window length */
    int64_t first; /* first scored position: positions [first, ctx-1) predict the next token */
    int64_t nwin;  /* windows to run */
    bool lcpp;     /* llama.cpp protocol: BOS first */
    int32_t bos;
} lp_windows;

/* The windows of n tokens (tokenized without BOS) under p, or LP_ERR_ARG when
 * the setting scores no token. */
lp_status lp_windows_plan(const lp_config *c, int64_t n, const lp_ppl_params *p, lp_windows *w);

/* Window i's ctx tokens into win. */
void lp_windows_fill(const lp_windows *w, const int32_t *ids, int64_t i, int32_t *win);

/* log(sum_v exp(row[v])) in double, around the row's maximum (written to *mx). */
static inline double lp_row_lse(const float *row, int64_t V, float *mx_out) {
    float mx = row[0];
    for (int64_t i = 1; i < V; i++) mx = row[i] > mx ? row[i] : mx;
    double s = 0;
    for (int64_t i = 0; i < V; i++) s += exp((double)row[i] - mx);
    *mx_out = mx;
    return (double)mx + log(s);
}

#endif
