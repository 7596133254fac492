/*
 * tasks.c - scoring zero-shot requests with a model, and the metrics.
 *
 * What: for every request of a task (task_files.c builds them), the summed
 * log-probability of its continuation tokens, their count and whether each
 * was the greedy choice; then acc / acc_norm / ppl and their standard errors
 * (tasks.h states every convention).
 * Why: the harness runs each request as one padded sequence on a GPU; on a
 * CPU the work must be cut to what is scored: a multiple-choice item repeats
 * one context for every choice, and only the continuation rows need the head
 * (the vocabulary projection, the largest matrix: 32000 x 384 for llama-25m).
 *
 * Design, per example:
 *   1. encode each request (task_encode.c) and form its model input
 *      inp = (ctx + cont)[-(W+1):][:-1]; cont is scored by its last |cont| rows.
 *   2. P = the longest common prefix of the inputs of the example's requests,
 *      at most up to each one's first scored row. Run inp[0:P] once with no
 *      logits, then for each request lp_ctx_rewind(P) and run inp[P:]
 *      scoring its last |cont| rows only (lp_forward_score). For a choice
 *      task P is |ctx| - 1: the context runs once and each choice runs its
 *      last context token and its continuation. Winogrande's options share
 *      the words before the blank. With one request (lambada), P = 0.
 *   3. per scored row, log-softmax in double for the target's
 *      log-probability (the head in vocabulary tiles with a running
 *      log-sum-exp, never rows x V logits); greedy = the target is the first
 *      argmax.
 *   Sharing the prefix changes only f32 rounding against running each
 *   request whole (the test checks this to ~1e-4 against full-sequence
 *   lp_forward logits).
 * Parallelism: examples are scored in parallel, one lp_ctx per thread,
 * OpenMP dynamic schedule; inside the region the forward runs on one thread
 * (its own `omp parallel for` are nested, hence inactive, and the OpenMP
 * OpenBLAS runs single-threaded inside a parallel region; a pthreads OpenBLAS
 * must be set to one thread by the caller, as tools/eval_tasks.c does).
 * Measured with llama-25m on 2 cores (taskset, an idle Xeon), the first 60
 * examples of arc_easy, piqa, hellaswag, winogrande and lambada_openai:
 *   2 examples at once, single-threaded forwards         14.2 s, 14.4 s
 *   1 example at a time, 2-thread forwards (OpenMP+BLAS)  23.0 s, 19.3 s
 *   1 thread                                              24.6 s
 * The calls are short (a choice is ~5-30 tokens): too few rows to split well,
 * and OpenBLAS packs the weights on every call whatever the thread count. On
 * a loaded machine the 2-thread forwards degrade much further (their barriers
 * wait on busy cores: 4x slower than one example per thread here). Time goes
 * to the matrix products (~75% in sgemm and its packing); the log-softmax's
 * exp is ~5%.
 * Threads and results: with two or more threads every example runs the same
 * single-threaded arithmetic whichever thread takes it, and the metrics are
 * summed in example order afterwards, so the numbers are identical for any
 * thread count; a one-thread region (threads = 1, or a single example) lets
 * the forward use its own threads, which changes only f32 rounding.
 */
#include "llmpress/tasks.h"

#include "core/status_impl.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

lp_task_params lp_task_default_params(void) {
    return (lp_task_params){.window = 0, .threads = 0, .progress = NULL, .progress_ud = NULL};
}

/* One request's model input: inp[0..len) predicts, at its rows len-C ..
 * len-1, the C continuation tokens tgt[0..C). Both point into `full`. */
typedef struct {
    int32_t *full; /* ctx + cont, owned */
    const int32_t *inp, *tgt;
    int64_t len, C;
} req_input;

/* One thread's state. */
typedef struct {
    lp_ctx *cx;
    int64_t cap;   /* positions cx holds */
    lp_token_score *sc; /* rows */
    int64_t rows;
} worker;

/* A context of at least `need` positions (at most W). It starts small and
 * doubles: the KV cache of a W-position context for every thread (4 GiB each
 * for a 7B model at W = 4096) is rarely needed, most inputs are short. */
static lp_status grow_ctx(worker *w, const lp_model *m, int64_t need, int64_t W) {
    if (w->cx && need <= w->cap) return LP_OK;
    int64_t cap = w->cap ? w->cap : 256;
    while (cap < need) cap *= 2;
    if (cap > W) cap = W;
    lp_ctx_free(w->cx);
    w->cx = NULL;
    w->cap = 0;
    LP_TRY(lp_ctx_init(m, cap, cap < 512 ? cap : 512, &w->cx));
    w->cap = cap;
    return LP_OK;
}

static lp_status grow_scores(worker *w, int64_t rows) {
    if (rows <= w->rows) return LP_OK;
    lp_token_score *l = realloc(w->sc, (size_t)rows * sizeof *l);
    if (!l) return lp_fail(LP_ERR_NOMEM, "out of memory for %lld scores", (long long)rows);
    w->sc = l;
    w->rows = rows;
    return LP_OK;
}

/* The C rows' scores summed: greedy when every target is its row's first argmax. */
static void sum_scores(const lp_token_score *sc, int64_t C, lp_task_ll *out) {
    double lp = 0;
    bool greedy = true;
    for (int64_t j = 0; j < C; j++) {
        lp += sc[j].logprob;
        greedy = greedy && sc[j].greedy;
    }
    out->logprob = lp;
    out->ntok = C;
    out->greedy = greedy;
}

static lp_status score_example(worker *w, const lp_model *m, const lp_tokenizer *tok, const lp_task *t, int64_t e,
                               int64_t W, int32_t eot, lp_task_ll *ll) {
    const lp_task_example *ex = &t->examples[e];
    req_input *in = calloc((size_t)ex->count, sizeof *in);
    if (!in) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = LP_OK;
    /* 1. inputs */
    for (int64_t r = 0; r < ex->count && st == LP_OK; r++) {
        const lp_task_request *rq = &t->requests[ex->first + r];
        int32_t *c = NULL, *k = NULL;
        int64_t nc = 0, nk = 0;
        st = lp_task_encode(tok, rq->context, rq->continuation, eot, &c, &nc, &k, &nk);
        if (st == LP_OK && nk > W)
            st = lp_fail(LP_ERR_ARG, "request %lld: its continuation of %lld tokens does not fit the window of "
                         "%lld", (long long)r, (long long)nk, (long long)W);
        int32_t *full = st == LP_OK ? malloc((size_t)(nc + nk) * sizeof *full) : NULL;
        if (st == LP_OK && !full) st = lp_fail(LP_ERR_NOMEM, "out of memory");
        if (st == LP_OK) {
            memcpy(full, c, (size_t)nc * sizeof *full);
            if (nk) memcpy(full + nc, k, (size_t)nk * sizeof *full);
            const int64_t N = nc + nk, s = N - (W + 1) > 0 ? N - (W + 1) : 0;
            in[r] = (req_input){.full = full, .inp = full + s, .tgt = full + nc, .len = N - 1 - s, .C = nk};
        }
        free(c);
        free(k);
    }
    /* 2. the shared prefix P of the scored requests' inputs */
    int64_t scored = 0, P = INT64_MAX, last = -1;
    for (int64_t r = 0; r < ex->count && st == LP_OK; r++) {
        if (in[r].C == 0) continue;
        if (in[r].len - in[r].C < P) P = in[r].len - in[r].C;
        if (last >= 0) {
            int64_t k = 0;
            while (k < P && in[r].inp[k] == in[last].inp[k]) k++;
            P = k;
        }
        last = r;
        scored++;
    }
    if (scored < 2) P = 0;
    int64_t need = 1;
    for (int64_t r = 0; r < ex->count && st == LP_OK; r++) need = in[r].len > need ? in[r].len : need;
    if (st == LP_OK) st = grow_ctx(w, m, need, W);
    if (st == LP_OK && P > 0) {
        lp_ctx_reset(w->cx);
        st = lp_forward_tail(w->cx, in[last].inp, P, 0, NULL);
    }
    for (int64_t r = 0; r < ex->count && st == LP_OK; r++) {
        lp_task_ll *o = &ll[ex->first + r];
        if (in[r].C == 0) { /* nothing to score (a merge took it): the harness's sum over nothing */
            *o = (lp_task_ll){.logprob = 0, .ntok = 0, .greedy = true};
            continue;
        }
        if ((st = grow_scores(w, in[r].C)) != LP_OK) break;
        if ((st = lp_ctx_rewind(w->cx, P)) != LP_OK) break;
        if ((st = lp_forward_score(w->cx, in[r].inp + P, in[r].len - P, in[r].C, in[r].tgt, w->sc)) != LP_OK)
            break;
        sum_scores(w->sc, in[r].C, o);
        if (!isfinite(o->logprob))
            st = lp_fail(LP_ERR_NUMERIC, "request %lld: a non-finite log-probability (NaN/Inf in the model's "
                         "output)", (long long)r);
    }
    for (int64_t r = 0; r < ex->count; r++) free(in[r].full);
    free(in);
    if (st != LP_OK) return lp_fail_ctx(st, "%s:%lld (%s)", t->path, (long long)ex->line, t->name);
    return LP_OK;
}

lp_status lp_task_score(const lp_model *m, const lp_tokenizer *tok, const lp_task *t, const lp_task_params *p,
                        lp_task_ll *ll) {
    const lp_config *cf = lp_model_config(m);
    const int64_t W = p->window > 0 ? p->window : cf->max_pos;
    if (W > cf->max_pos)
        return lp_fail(LP_ERR_ARG, "tasks: a window of %lld tokens exceeds the model's max_position_embeddings %lld",
                       (long long)W, (long long)cf->max_pos);
    if (W < 1) return lp_fail(LP_ERR_ARG, "tasks: the model's max_position_embeddings is %lld", (long long)W);
    if (lp_tokenizer_vocab_size(tok) > cf->vocab)
        return lp_fail(LP_ERR_ARG, "tasks: the tokenizer has %lld ids, the model's vocabulary %lld: not the model's "
                       "tokenizer", (long long)lp_tokenizer_vocab_size(tok), (long long)cf->vocab);
    const int32_t eot = lp_tokenizer_eos(tok) >= 0 ? lp_tokenizer_eos(tok) : cf->eos;
    const int64_t n = t->n_examples;
    int nth = p->threads > 0 ? p->threads : omp_get_max_threads();
    if (nth > n) nth = (int)n;
    if (nth < 1) nth = 1;

    lp_status err = LP_OK;
    int64_t err_at = INT64_MAX; /* the example whose error is kept: the first in file order seen */
    char err_msg[1024] = "";
    int failed = 0; /* set once anything failed: the others stop taking examples */
    int64_t done = 0;
#pragma omp parallel num_threads(nth)
    {
        worker w = {0};
        lp_status st = LP_OK;
#pragma omp for schedule(dynamic, 1)
        for (int64_t e = 0; e < n; e++) {
            int stop;
#pragma omp atomic read
            stop = failed;
            if (stop) continue;
            st = score_example(&w, m, tok, t, e, W, eot, ll);
            if (st != LP_OK) {
#pragma omp critical(lp_tasks_err)
                if (e < err_at) err = st, err_at = e, snprintf(err_msg, sizeof err_msg, "%s", lp_last_error());
#pragma omp atomic write
                failed = 1;
            }
            int64_t d;
#pragma omp atomic capture
            d = ++done;
            if (p->progress && d < n && omp_get_thread_num() == 0) p->progress(p->progress_ud, d, n);
        }
        free(w.sc);
        lp_ctx_free(w.cx);
    }
    if (err != LP_OK) return lp_fail(err, "%s", err_msg);
    if (p->progress) p->progress(p->progress_ud, n, n); /* the one call with done == total */
    return LP_OK;
}

/* ---- metrics ---- */

/* Standard error of the mean of n values in {0, 1} with mean q: the sample
 * standard deviation (n - 1) over sqrt(n), as the harness's mean_stderr. */
static double stderr01(double q, int64_t n) { return n > 1 ? sqrt(q * (1 - q) / (double)(n - 1)) : NAN; }

void lp_task_metrics_compute(const lp_task *t, const lp_task_ll *ll, lp_task_metrics *out) {
    const int64_t n = t->n_examples;
    int64_t hit = 0, hit_norm = 0;
    double lp_sum = 0;
    for (int64_t e = 0; e < n; e++) {
        const lp_task_example *ex = &t->examples[e];
        const lp_task_ll *l = ll + ex->first;
        if (t->type == LP_TASK_LAMBADA) {
            hit += l[0].greedy;
            lp_sum += l[0].logprob;
            continue;
        }
        /* argmax, the first index on ties (numpy's argmax) */
        int64_t best = 0, best_norm = 0;
        const lp_task_request *rq = t->requests + ex->first;
        for (int64_t i = 1; i < ex->count; i++) {
            if (l[i].logprob > l[best].logprob) best = i;
            if (l[i].logprob / (double)rq[i].chars > l[best_norm].logprob / (double)rq[best_norm].chars) best_norm = i;
        }
        hit += best == ex->gold;
        hit_norm += best_norm == ex->gold;
    }
    const double acc = n ? (double)hit / (double)n : NAN;
    *out = (lp_task_metrics){.n = n, .acc = acc, .acc_stderr = stderr01(acc, n), .acc_norm = NAN,
                             .acc_norm_stderr = NAN, .ppl = NAN};
    if (t->type == LP_TASK_CHOICE) {
        out->acc_norm = n ? (double)hit_norm / (double)n : NAN;
        out->acc_norm_stderr = stderr01(out->acc_norm, n);
    } else if (t->type == LP_TASK_LAMBADA) {
        out->ppl = n ? exp(-lp_sum / (double)n) : NAN;
    }
}
