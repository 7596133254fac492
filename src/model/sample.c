/*
 * sample.c - choosing the next token from logits: greedy, or temperature with
 * optional top-k and nucleus (top-p) truncation.
 *
 * Design: a private splitmix64 stream per sampler, so a seed reproduces a
 * generation exactly. Ties in greedy pick the lowest id, as torch.argmax does.
 * Logits must be finite: a NaN or Inf (a broken model, or activations that
 * overflowed) is LP_ERR_NUMERIC naming the first bad id, in every mode,
 * rather than a token picked from garbage. With finite logits the most
 * probable token always has probability 1 before normalization, so the
 * top-k / top-p candidate set is never empty.
 */
#include "llmpress/model.h"

#include "core/argmax.h"
#include "core/finite.h"
#include "core/status_impl.h"

#include <math.h>
#include <stdlib.h>

struct lp_sampler {
    lp_sampler_params p;
    int64_t vocab;
    uint64_t state;
    float *probs;    /* V */
    int32_t *order;  /* V, candidate ids */
};

lp_sampler_params lp_sampler_default_params(void) {
    return (lp_sampler_params){.temperature = 0.0f, .top_p = 1.0f, .top_k = 0, .seed = 1234};
}

lp_status lp_sampler_init(const lp_sampler_params *p, int64_t vocab, lp_sampler **out) {
    *out = NULL;
    if (!(p->temperature >= 0 && isfinite(p->temperature)) || !(p->top_p > 0 && p->top_p <= 1) || p->top_k < 0)
        return lp_fail(LP_ERR_ARG, "sampler: temperature must be finite and >= 0, top_p in (0, 1], "
                       "top_k >= 0 (got %g, %g, %d)", p->temperature, p->top_p, p->top_k);
    if (vocab < 1 || vocab > INT32_MAX)
        return lp_fail(LP_ERR_ARG, "sampler: vocabulary size %lld must be in [1, %d]", (long long)vocab,
                       INT32_MAX);
    lp_sampler *s = calloc(1, sizeof *s);
    if (!s) return lp_fail(LP_ERR_NOMEM, "out of memory");
    s->p = *p;
    s->vocab = vocab;
    s->state = p->seed;
    s->probs = malloc((size_t)vocab * sizeof(float));
    s->order = malloc((size_t)vocab * sizeof(int32_t));
    if (!s->probs || !s->order) {
        lp_sampler_free(s);
        return lp_fail(LP_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return LP_OK;
}

void lp_sampler_free(lp_sampler *s) {
    if (!s) return;
    free(s->probs);
    free(s->order);
    free(s);
}

static double next_uniform(lp_sampler *s) { /* splitmix64 -> [0, 1) */
    uint64_t z = (s->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) / 9007199254740992.0;
}

static int by_prob_desc(const void *a, const void *b, void *arg) {
    const float *probs = arg;
    float pa = probs[*(const int32_t *)a], pb = probs[*(const int32_t *)b];
    if (pa != pb) return pa < pb ? 1 : -1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

lp_status lp_sample(lp_sampler *s, const float *logits, int32_t *token) {
    const int64_t V = s->vocab;
    *token = -1;
    const int64_t bad = lp_finite_find(LP_FP_F32, logits, V);
    if (bad >= 0)
        return lp_fail(LP_ERR_NUMERIC, "sampler: the logit of token %lld is %s; expected finite "
                       "logits (NaN/Inf in the model's weights or an overflow in its activations)",
                       (long long)bad, isnan(logits[bad]) ? "NaN" : logits[bad] > 0 ? "+Inf" : "-Inf");
    const int32_t best = (int32_t)lp_argmax(logits, V);
    if (s->p.temperature == 0.0f) return *token = best, LP_OK;

    const double invt = 1.0 / s->p.temperature;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        s->probs[i] = (float)exp((logits[i] - logits[best]) * invt);
        sum += s->probs[i];
    }
    /* Candidates: everything, or the top-k / top-p set, most probable first. */
    int64_t n = V;
    for (int64_t i = 0; i < V; i++) s->order[i] = (int32_t)i;
    if (s->p.top_k > 0 || s->p.top_p < 1.0f) {
        /* Keep only ids that can matter before sorting: p >= max_p * 1e-9. */
        int64_t k = 0;
        for (int64_t i = 0; i < V; i++)
            if (s->probs[i] >= 1e-9f) s->order[k++] = (int32_t)i;
        n = k;
        qsort_r(s->order, (size_t)n, sizeof(int32_t), by_prob_desc, s->probs);
        if (s->p.top_k > 0 && n > s->p.top_k) n = s->p.top_k;
        double cum = 0, kept = 0;
        for (int64_t i = 0; i < n; i++) kept += s->probs[s->order[i]];
        if (s->p.top_p < 1.0f) {
            for (int64_t i = 0; i < n; i++) {
                cum += s->probs[s->order[i]] / kept;
                if (cum >= s->p.top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
        sum = 0;
        for (int64_t i = 0; i < n; i++) sum += s->probs[s->order[i]];
    }
    LP_ASSERT(n >= 1); /* probs[best] == 1 passes every filter */
    double r = next_uniform(s) * sum, acc = 0;
    for (int64_t i = 0; i < n; i++) {
        acc += s->probs[s->order[i]];
        if (r < acc) return *token = s->order[i], LP_OK;
    }
    *token = s->order[n - 1]; /* r rounded up to sum */
    return LP_OK;
}
