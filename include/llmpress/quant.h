/*
 * quant.h - compressing a loaded model in place, and saving the result.
 *
 * Methods are applied to the seven decoder linears of every block (q, k, v,
 * o, gate, up, down); embeddings, norms and the LM head stay as stored, as
 * in the papers' own evaluations (REFERENCE.md).
 */
#ifndef LLMPRESS_QUANT_H
#define LLMPRESS_QUANT_H

#include "llmpress/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- methods: one registry row each (src/quant/methods.c) ----
 * Every method declares its settings as a schema of options; the CLI's
 * flags, --help, recipe keys and the resume key are generated from it. */
typedef struct lp_method lp_method;

typedef enum {
    LP_OPT_BOOL = 0,  /* a flag without a value: present = true */
    LP_OPT_INT = 1,
    LP_OPT_FLOAT = 2,
    LP_OPT_CHOICE = 3, /* one word of `arg` ("hessian|magnitude"), held as its index (an int) */
} lp_opt_type;

typedef struct {
    const char *name;     /* the flag without its dashes, the recipe key and the resume word: "bits" */
    lp_opt_type type;
    double min, max, def; /* allowed range and default (bool: 0 or 1) */
    const char *arg;      /* the value's placeholder in --help ("B", "F"); NULL for bool */
    const char *help;     /* one line */
    size_t offset;        /* where the value lives in the method's settings: bool, int or double */
} lp_option;

int lp_method_count(void);
const lp_method *lp_method_at(int i);
const lp_method *lp_method_find(const char *name); /* NULL for an unknown name */
/* Whether a run of m can keep its finished blocks and continue (resume_dir):
 * not the methods that also carry the uncompressed model's activations. */
bool lp_method_resumable(const lp_method *m);
const char *lp_method_name(const lp_method *m);
const char *lp_method_help(const lp_method *m);   /* one line */
/* Whether the method calibrates with its default settings (see lp_settings_needs_calib). */
bool lp_method_calibrated(const lp_method *m);
/* Its options, NULL past the last. */
const lp_option *lp_method_option(const lp_method *m, int i);
const lp_option *lp_method_find_option(const lp_method *m, const char *name);

/* One method's settings, filled with the schema's defaults. */
typedef struct lp_settings lp_settings;
lp_status lp_settings_init(const lp_method *m, lp_settings **out);
/* Word i of a choice option's `arg` into buf ("" when out of range). */
const char *lp_option_choice(const lp_option *o, int i, char *buf, size_t n);
void lp_settings_free(lp_settings *s); /* NULL is a no-op */
const lp_method *lp_settings_method(const lp_settings *s);
/* Set option `name` from text (value NULL for a bool, which sets it true):
 * LP_ERR_ARG naming the method when it has no such option, or naming the
 * allowed range when the value is out of it or not a number. */
lp_status lp_settings_set(lp_settings *s, const char *name, const char *value);
/* An option's value as a double (bool: 0/1); NAN when the method has none. */
double lp_settings_get(const lp_settings *s, const char *name);
/* The method's rules that span options (LP_ERR_ARG saying what is allowed). */
lp_status lp_settings_check(const lp_settings *s);
/* Whether these settings need calibration data (rtn does only with clip). */
bool lp_settings_needs_calib(const lp_settings *s);
/* "name=value" for every option, space-separated, in schema order. */
void lp_settings_describe(const lp_settings *s, char *buf, size_t n);
/* "METHOD [name[=value] ...]", e.g. "gptq bits=3 group=128 act-order". */
lp_status lp_settings_parse(const char *spec, lp_settings **out);

/* Calibration data: nsamples sequences of seqlen token ids, row-major. */
typedef struct {
    const int32_t *tokens;
    int64_t nsamples, seqlen;
} lp_calib;

/* Draw nsamples windows of seqlen tokens at uniformly random offsets of a
 * token stream (GPTQ's sampling), deterministically from seed. *out is
 * malloc'd (nsamples x seqlen). LP_ERR_ARG when the stream is too short. */
lp_status lp_calib_sample(const int32_t *ids, int64_t n, int64_t nsamples, int64_t seqlen,
                          uint64_t seed, int32_t **out);

/* Wall time of a calibrated run, by phase (seconds). */
typedef struct {
    double forward;   /* running blocks on the calibration activations */
    double stats;     /* accumulating Hessians / channel statistics */
    double factorize; /* damping, Cholesky, inverse */
    double quantize;  /* the per-column quantization loop (AWQ: the final rounding) */
    double scale_search; /* AWQ: grid search of the per-channel scales */
    double clip_search;  /* AWQ / --clip: grid search of the clipping ranges */
    double method;       /* method-specific work not counted above (k-means, bit allocation) */
    double total;
    size_t peak_activation_bytes; /* calibration activations + Hessians held at once */
    int64_t resumed_blocks;       /* blocks restored from resume_dir instead of compressed */
} lp_quant_stats;

typedef struct {
    const lp_settings *method;   /* what compresses every decoder linear (required) */
    const lp_settings *prescale; /* NULL, or AWQ's settings: fold its searched scales (and clipping)
                                    into each block first, then compress it with `method`
                                    (recipe "AWQ then GPTQ") */
    const lp_calib *calib; /* required when the settings need calibration */
    lp_quant_stats *stats; /* filled when not NULL */
    /* Called after each linear (may be NULL): layer index, linear name,
     * relative Frobenius error ||W - Q(W)|| / ||W||. */
    void (*progress)(void *ud, int64_t layer, int64_t n_layers, const char *linear, double rel_err);
    void *progress_ud;
    /* Resumable runs (calibrated methods): when resume_dir is set, each finished block's
     * compressed linears (and rescaled norms) and the next block's calibration inputs are
     * written there (temporary name, then rename); a later run with the same model,
     * settings and calibration windows restores them and continues after the last
     * finished block, writing the same checkpoint an uninterrupted run would. State
     * from a different run is refused (LP_ERR_ARG naming the difference). The directory
     * is created if needed (its parent must exist). */
    const char *resume_dir;
    /* Checked between linears (may be NULL): once non-zero, the run stops with
     * LP_ERR_INTERRUPTED; with resume_dir, the finished blocks are kept. A signal
     * handler may set it. */
    const volatile int *interrupt;
} lp_quant_params;

/* Whether a run with p needs calibration data. */
bool lp_quant_needs_calib(const lp_quant_params *p);

/* The settings' own checks plus the composition's (a prescale must be AWQ
 * and the method not): LP_ERR_ARG saying what is allowed. */
lp_status lp_quant_params_check(const lp_quant_params *p);

/* The memory a run with p will hold at its peak, estimated before any work:
 * for a calibrated run (p->calib's nsamples x seqlen; its tokens are not
 * read) the windows, the pipeline's activations and Hessian, AWQ's
 * statistics, the forward context and the weights being compressed in f32;
 * 0 for a run without calibration (one linear at a time). *bytes gets the
 * estimate; LP_ERR_NOMEM, naming it, its parts and the memory this machine
 * has available (MemAvailable, a cgroup limit, or the physical memory), when
 * it does not fit. lp_model_quantize checks it first; callers that prepare
 * the calibration data (tokenizing, drawing windows) call it before that. */
lp_status lp_quant_memory_check(const lp_model *m, const lp_quant_params *p, size_t *bytes);

/* Replace the model's decoder linears with their quantized form. */
lp_status lp_model_quantize(lp_model *m, const lp_quant_params *p);

/* Round the LM head and, when it is a separate tensor, the token embedding
 * to embed_bits / head_bits-bit asymmetric groups of `group` columns (-1: per
 * row) with round-to-nearest (0 bits: keep it). A tied model has one tensor:
 * give either (or both, equal). Run after lp_model_quantize; the packed
 * tensors are saved and loaded like the decoder linears. LP_ERR_ARG for bad
 * bits or group, or a tensor already compressed. */
lp_status lp_model_quantize_embeddings(lp_model *m, int embed_bits, int head_bits, int group);

/* Remove the state files a resumable run left in dir (after its checkpoint is
 * saved), and dir itself when that leaves it empty. A missing dir is fine. */
lp_status lp_resume_clear(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
