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

/* ---- KL divergence from a reference model ----
 * MODEL and REF run the same windows (the perplexity protocol p); at every
 * scored position, with P = softmax(REF's logits) and Q = softmax(MODEL's),
 *   KL(P || Q) = sum_v P(v) (log P(v) - log Q(v))       (nats)
 * in double. One window's logits of each model are held at a time; the
 * per-position divergences (one float each) give the quantiles, which are
 * linearly interpolated order statistics (numpy's default). top-1: the
 * largest logit, the first on ties. llama.cpp's --kl-divergence reports the
 * same set. The perplexities are the very numbers lp_perplexity gives. */
typedef struct {
    int64_t tokens;        /* positions compared */
    double mean, mean_stderr, median, p90, p99, p999, max;
    double same_top1;      /* fraction of positions where both models' top-1 tokens agree */
    lp_ppl_result ppl;     /* MODEL's perplexity on those windows */
    lp_ppl_result ppl_ref; /* REF's */
} lp_kl_result;

/* ids: the text tokenized WITHOUT BOS by the (shared) tokenizer. The two
 * models must have the same vocabulary size; the caller checks that their
 * tokenizers agree. p->progress gets MODEL's running NLL. */
lp_status lp_kl_divergence(const lp_model *m, const lp_model *ref, const int32_t *ids, int64_t n,
                           const lp_ppl_params *p, lp_kl_result *res);

/* ---- speed ----
 * llama-bench's pp and tg: prefill of a P-token prompt (one call), and
 * separately decode of N tokens (one token a call, greedy), each in a fresh
 * context after `depth` tokens already cached (0: an empty context, as
 * llama-bench by default), each timed by wall clock; the median of reps
 * runs. The prompt is given (P + depth tokens, the depth first), or made
 * from the vocabulary when NULL. */
typedef struct {
    int64_t prompt_tokens, gen_tokens, depth, reps;
    double prefill_tok_s, decode_tok_s;
} lp_speed_result;
lp_status lp_speed_measure(const lp_model *m, const int32_t *prompt, int64_t P, int64_t N, int64_t depth, int reps,
                           lp_speed_result *res);

/* Peak resident memory of this process so far, in bytes (getrusage). */
int64_t lp_peak_rss_bytes(void);

#ifdef __cplusplus
}
#endif
#endif
