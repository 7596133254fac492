/*
 * speed.c - how fast a model runs here: prefill and decode tokens per second,
 * and the process's peak resident memory.
 *
 * What: lp_speed_measure times, as llama-bench's pp and tg tests, a P-token
 *   prefill (one lp_forward, last logits only, as a generator does) and
 *   separately N decode steps (one token a call, the greedy choice of the
 *   previous logits), each from the same state: a context holding `depth`
 *   tokens (0: empty), reps times, and reports the median rate of each. lp_peak_rss_bytes reads getrusage.
 * Why: compression is bought for speed and memory as much as size; every
 *   eval reports them beside the quality figures (llama-bench's pp/tg pair).
 * Design: a fresh KV cache per repetition; a prompt made from the vocabulary
 *   when none is given (ids spread over [0, V) by a fixed stride), so the
 *   figure does not depend on a text.
 */
#include "llmpress/eval.h"

#include "core/argmax.h"
#include "core/clock.h"
#include "core/status_impl.h"

#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int64_t lp_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (int64_t)ru.ru_maxrss * 1024; /* kilobytes on Linux */
}

/* Cache the first `depth` ids of the context (in calls of at most `batch`). */
static lp_status fill_depth(lp_ctx *cx, const int32_t *ids, int64_t depth, int64_t batch) {
    lp_ctx_reset(cx);
    for (int64_t d = 0; d < depth; d += batch)
        LP_TRY(lp_forward(cx, ids + d, depth - d < batch ? depth - d : batch, NULL, false));
    return LP_OK;
}

lp_status lp_speed_measure(const lp_model *m, const int32_t *prompt, int64_t P, int64_t N, int64_t depth, int reps,
                           lp_speed_result *res) {
    const lp_config *c = lp_model_config(m);
    const int64_t V = c->vocab;
    const int64_t span = depth + (P > N ? P : N); /* positions the longer test reaches */
    if (P < 1 || N < 0 || depth < 0 || reps < 1 || span > c->max_pos)
        return lp_fail(LP_ERR_ARG, "speed: a %lld-token prompt and %lld generated tokens after %lld cached (%d runs) "
                       "do not fit the model's %lld positions", (long long)P, (long long)N, (long long)depth, reps,
                       (long long)c->max_pos);
    *res = (lp_speed_result){.prompt_tokens = P, .gen_tokens = N, .depth = depth, .reps = reps};
    int32_t *ids = malloc((size_t)(depth + P) * sizeof *ids);
    float *logits = malloc((size_t)V * sizeof *logits);
    double *pre = malloc((size_t)reps * sizeof *pre), *dec = malloc((size_t)reps * sizeof *dec);
    lp_ctx *cx = NULL;
    lp_status st = ids && logits && pre && dec ? lp_ctx_init(m, span, P, &cx)
                                               : lp_fail(LP_ERR_NOMEM, "speed: out of memory");
    for (int64_t t = 0; st == LP_OK && t < depth + P; t++)
        ids[t] = prompt ? prompt[t] : (int32_t)((t * 7919 + 3) % V);
    for (int r = 0; st == LP_OK && r < reps; r++) {
        st = fill_depth(cx, ids, depth, P);
        double t0 = lp_now_s();
        if (st == LP_OK) st = lp_forward(cx, ids + depth, P, logits, false);
        pre[r] = lp_now_s() - t0;
        if (st == LP_OK) st = fill_depth(cx, ids, depth, P);
        int32_t next = ids[depth]; /* the first token; then each step's greedy choice */
        t0 = lp_now_s();
        for (int64_t i = 0; st == LP_OK && i < N; i++) {
            st = lp_forward(cx, &next, 1, logits, false);
            next = (int32_t)lp_argmax(logits, V);
        }
        dec[r] = lp_now_s() - t0;
    }
    if (st == LP_OK) {
        qsort(pre, (size_t)reps, sizeof *pre, cmp_double);
        qsort(dec, (size_t)reps, sizeof *dec, cmp_double);
        res->prefill_tok_s = (double)P / pre[reps / 2];
        res->decode_tok_s = N ? (double)N / dec[reps / 2] : 0;
    }
    lp_ctx_free(cx);
    free(ids);
    free(logits);
    free(pre);
    free(dec);
    return st;
}
