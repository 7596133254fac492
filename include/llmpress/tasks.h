/*
 * tasks.h - zero-shot task scoring with the conventions of
 * lm-evaluation-harness 0.4 (ARC, PIQA, BoolQ, HellaSwag, WinoGrande,
 * OpenBookQA, COPA, SIQA, LAMBADA).
 *
 * What: loads a task file into examples, each a list of requests (a context
 * text and a continuation text), scores every request as the summed
 * log-probability of its continuation tokens after its context, and turns
 * the scores into the harness's metrics.
 * Why: accuracy on these tasks is what compression papers report beside
 * perplexity; numbers are only comparable when every convention (delimiters,
 * where whitespace goes, how the continuation is tokenized, truncation, the
 * length used by acc_norm) is the harness's, so they are fixed here once.
 *
 * The conventions (an interface: the scripts/zeroshot_torch.py reference
 * implements the same ones independently):
 *   requests  multiple choice: context = query + delimiter, continuation =
 *             choice, one request per choice. The delimiter is "\nAnswer: "
 *             for arc_easy, arc_challenge, piqa and boolq, " " for the others.
 *             hellaswag: context line + " ", one request per ending.
 *             winogrande: context = option + " ", continuation = the shared
 *             continuation, one request per context option.
 *             lambada_openai: context + " ", continuation = the last word.
 *   encoding  (the harness's _encode_pair) the context's trailing whitespace
 *             moves to the front of the continuation ("...\nAnswer:" +
 *             " choice"). Whitespace is Python's str.isspace set: ASCII
 *             \t \n \v \f \r space and \x1c-\x1f, and U+0085, U+00A0, U+1680,
 *             U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
 *             No BOS or other special token is added. ctx = tokens(context),
 *             cont = tokens(context + continuation) after its first |ctx|
 *             tokens (not tokens(continuation): the split is by count, so a
 *             merge across the boundary is the harness's). When ctx is empty
 *             it becomes [EOS] (the harness's end-of-text prefix) and cont =
 *             tokens(continuation).
 *   model     input = (ctx + cont)[-(W+1):][:-1], W = the window
 *             (max_position_embeddings): a long context is cut from the left;
 *             the last |cont| rows of logits score cont.
 *   scores    logprob = sum over cont of log softmax (in double); greedy =
 *             every cont token is its row's argmax (the first on ties).
 *   metrics   acc = mean of [argmax_i logprob_i == gold] (the first index on
 *             ties); acc_norm the same with logprob_i / chars_i, chars_i the
 *             choice's length in Unicode code points (without the delimiter
 *             or moved whitespace); winogrande has acc only; lambada: acc =
 *             mean of greedy, ppl = exp(-mean logprob). stderr of a mean of
 *             0/1 values: sqrt(p (1 - p) / (n - 1)) (NaN when n < 2).
 *
 * Files (DIR = --tasks-dir): DIR/<name>.jsonl, one JSON object a line:
 * {query, choices, gold} (arc_easy arc_challenge piqa boolq openbook_qa copa
 * siqa), {context_options, continuation, gold} (winogrande), {context,
 * continuation} (lambada_openai); DIR/hellaswag/hellaswag_val_full.txt, six
 * lines an item: context, gold index 0..3, four endings. Empty lines of a
 * .jsonl file are skipped; a trailing \r (CRLF files) is dropped from each
 * hellaswag line. Every malformed line is LP_ERR_FORMAT naming file:line.
 */
#ifndef LLMPRESS_TASKS_H
#define LLMPRESS_TASKS_H

#include "llmpress/model.h"
#include "llmpress/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LP_TASK_CHOICE = 0,  /* multiple choice: acc, acc_norm */
    LP_TASK_PARTIAL = 1, /* winogrande: one continuation after each context option; acc */
    LP_TASK_LAMBADA = 2, /* predict the last word: acc (greedy), ppl */
} lp_task_type;

/* ---- the known tasks ---- */
int lp_task_count(void);                /* how many ("all" is every one, in this order) */
const char *lp_task_name(int i);        /* "arc_easy", ...; NULL when i is out of range */
int lp_task_index(const char *name);    /* -1 when unknown */
const char *lp_task_file(int i);        /* its file under the tasks directory */
lp_task_type lp_task_type_of(int i);

/* ---- a loaded task ---- */
typedef struct {
    char *context;      /* query + delimiter, before the whitespace move */
    char *continuation; /* the choice (winogrande: the continuation; lambada: the last word) */
    int64_t chars;      /* code points of continuation: acc_norm's length */
} lp_task_request;

typedef struct {
    int64_t line;         /* 1-based line in the file (hellaswag: the item's first line) */
    int64_t first, count; /* its requests: requests[first .. first + count) */
    int64_t gold;         /* the right request, 0 .. count-1; -1 for lambada */
} lp_task_example;

typedef struct {
    char name[32];
    lp_task_type type;
    char *path; /* the file it came from (for messages) */
    int64_t n_examples, n_requests;
    lp_task_example *examples;
    lp_task_request *requests;
} lp_task;

/* Parse a task file's text. name: a known task (it fixes the format and the
 * delimiter); path: used in messages only; limit > 0 keeps the first limit
 * examples in file order (the rest of the file is not read), 0 keeps all. */
lp_status lp_task_parse(const char *name, const char *text, size_t len, const char *path,
                        int64_t limit, lp_task **out);
/* The same from a file. */
lp_status lp_task_load_file(const char *name, const char *path, int64_t limit, lp_task **out);
/* The same from dir/lp_task_file(name). */
lp_status lp_task_load(const char *name, const char *dir, int64_t limit, lp_task **out);
void lp_task_free(lp_task *t); /* NULL is a no-op */

/* Bytes of trailing whitespace (the str.isspace set above) at the end of
 * s[0..len): the part of a context that moves to its continuation. */
size_t lp_task_trailing_space(const char *s, size_t len);
/* Unicode code points of valid UTF-8 s[0..len), or -1 when it is not valid. */
int64_t lp_task_utf8_chars(const char *s, size_t len);

/* The token ids of one request (the "encoding" convention above): *ctx (nctx
 * ids) and *cont (ncont ids), both malloc'd (free() them; NULL when empty).
 * eot: the id used when the context encodes to nothing (EOS). */
lp_status lp_task_encode(const lp_tokenizer *tok, const char *context, const char *continuation,
                         int32_t eot, int32_t **ctx, int64_t *nctx, int32_t **cont, int64_t *ncont);

/* ---- scoring ---- */
typedef struct {
    double logprob; /* summed log-probability of the continuation tokens */
    int64_t ntok;   /* continuation tokens */
    bool greedy;    /* every one of them is its row's argmax */
} lp_task_ll;

typedef struct {
    int64_t window; /* W; 0 = the model's max_position_embeddings (at most that) */
    int threads;    /* examples scored at once, each forward single-threaded; 0 =
                     * omp_get_max_threads(); 1 = one at a time, the forward using
                     * its own threads (slower: tasks.c has the numbers) */
    /* Called now and then with examples done (may be NULL), from the calling
     * thread; the last call, once, has done == total. */
    void (*progress)(void *ud, int64_t done, int64_t total);
    void *progress_ud;
} lp_task_params;

lp_task_params lp_task_default_params(void);

/* Score every request of t: ll[t->n_requests]. tok must be m's tokenizer.
 * The EOS used for an empty context is the tokenizer's, else config.json's. */
lp_status lp_task_score(const lp_model *m, const lp_tokenizer *tok, const lp_task *t,
                        const lp_task_params *p, lp_task_ll *ll);

typedef struct {
    int64_t n;                        /* examples */
    double acc, acc_stderr;           /* every type */
    double acc_norm, acc_norm_stderr; /* LP_TASK_CHOICE, else NaN */
    double ppl;                       /* LP_TASK_LAMBADA, else NaN */
} lp_task_metrics;

/* The metrics of t from its requests' scores (deterministic: example order). */
void lp_task_metrics_compute(const lp_task *t, const lp_task_ll *ll, lp_task_metrics *out);

#ifdef __cplusplus
}
#endif
#endif
