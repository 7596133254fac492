/*
 * eval.h - measuring what compression lost: perplexity under named protocols.
 *
 * Protocols (print the protocol next to every number, DESIGN.md section 4):
 *   LP_PPL_GPTQ:     the whole text tokenized without BOS, cut into
 *                    consecutive non-overlapping windows of ctx tokens (the
 *                    shorter tail dropped), each scored on tokens 2..ctx;
 *                    ppl = exp(mean NLL). This is GPTQ's and REFERENCE.md's.
 *   LP_PPL_LLAMACPP: llama.cpp's llama-perplexity: BOS + text, windows of ctx,
 *                    each window's first token replaced by BOS, only the
 *                    second half of each window scored (ctx >= 3, so
 *                    that at least one token is).
 * A setting that would score no token is LP_ERR_ARG, never a NaN result.
 */
#ifndef LLMPRESS_EVAL_H
#define LLMPRESS_EVAL_H

#include "llmpress/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_PPL_GPTQ = 0,
    LP_PPL_LLAMACPP = 1,
} lp_ppl_protocol;

typedef struct {
    lp_ppl_protocol protocol;
    int64_t ctx;         /* window length in tokens */
    int64_t max_windows; /* 0 = every window */
    /* Called after each window (may be NULL). */
    void (*progress)(void *ud, int64_t done, int64_t total, double nll_sum, int64_t count);
    void *progress_ud;
} lp_ppl_params;

lp_ppl_params lp_ppl_default_params(void);

typedef struct {
    double nll_sum;   /* total negative log-likelihood, nats */
    int64_t count;    /* tokens scored */
    int64_t windows;  /* windows evaluated */
    double ppl;       /* exp(nll_sum / count) */
    double seconds;   /* wall time of the evaluation */
} lp_ppl_result;

/* ids: the text tokenized WITHOUT BOS (the protocol adds it where it says so).
 * window_nll (optional, `windows` entries): each window's NLL sum. */
lp_status lp_perplexity(const lp_model *m, const int32_t *ids, int64_t n, const lp_ppl_params *p,
                        lp_ppl_result *res, double *window_nll);

const char *lp_ppl_protocol_name(lp_ppl_protocol p);

#ifdef __cplusplus
}
#endif
#endif
