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

typedef enum {
    LP_METHOD_RTN = 0,  /* round to nearest, min-max per group (no calibration) */
    LP_METHOD_GPTQ = 1, /* GPTQ: Hessian-guided error feedback (needs calibration) */
    LP_METHOD_AWQ = 2,  /* AWQ: activation-aware scales and clipping (needs calibration) */
    LP_METHOD_SQUEEZELLM = 3, /* SqueezeLLM: sensitivity-weighted k-means per-row lookup tables
                                 plus a sparse f16 outlier matrix (needs calibration) */
    LP_METHOD_SLIM = 4, /* SliM-LLM: salience-driven mixed bits per column group around
                           `bits` on average, GPTQ as the backend (needs calibration) */
} lp_method;

/* "rtn", "gptq", "awq", "squeezellm", "slim"; NULL for an unknown value. */
const char *lp_method_name(lp_method m);
/* The inverse; -1 for an unknown name. */
int lp_method_from_name(const char *name);

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
    lp_method method;
    int bits;  /* 1..8 */
    int group; /* columns per group: a positive multiple of 32, or -1 = per output channel */
    bool sym;  /* symmetric (implicit zero point) */
    /* GPTQ */
    double damp;       /* dampening, fraction of the mean Hessian diagonal (0.01) */
    int gptq_block;    /* lazy-batch block size (128) */
    bool act_order;    /* quantize columns in decreasing Hessian-diagonal order */
    /* AWQ (llm-awq's run_awq defaults) */
    bool awq_scale;        /* search and fold per-input-channel scales (true) */
    bool awq_clip;         /* search and apply per-group clipping ranges (true) */
    int awq_grid;          /* both searches' grid: scale exponents i/grid for i < grid and
                              clipping ranges max|w| * (1 - i/grid) for i < max_shrink * grid (20) */
    double awq_max_shrink; /* deepest clipping tried, as a fraction of max|w| (0.5) */
    int awq_clip_tokens;   /* calibration tokens the clipping search uses, evenly strided (512) */
    int awq_search_samples; /* calibration sequences the scale search runs on (0 = all) */
    bool awq_prescale;     /* recipe "AWQ then M": fold AWQ's searched scales (and clipping,
                              when awq_clip) into each block, then compress it with M */
    /* Clipping search (OmniQuant's learnable weight clipping, gradient-free): per group,
       the clip ratio of the min-max range that minimizes the layer's output error on the
       calibration inputs. For RTN (needs calibration then) and GPTQ. */
    bool clip;
    int clip_grid;          /* ratios 1 - i/clip_grid for i < clip_max_shrink * clip_grid (20) */
    double clip_max_shrink; /* (0.5) */
    /* SqueezeLLM */
    double outlier_frac;    /* fraction of each linear's weights kept exactly in sparse f16,
                               chosen by magnitude (0.0045; 0 = dense-only) */
    int kmeans_iters;       /* weighted k-means (Lloyd) iterations per row (50) */
    const lp_calib *calib; /* required by calibrated methods */
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

lp_quant_params lp_quant_default_params(void); /* RTN W4 g128 asymmetric */

/* Check bits/group: LP_ERR_ARG with a message saying what is allowed. */
lp_status lp_quant_params_check(const lp_quant_params *p);

/* Replace the model's decoder linears with their quantized form. */
lp_status lp_model_quantize(lp_model *m, const lp_quant_params *p);

/* Remove the state files a resumable run left in dir (after its checkpoint is
 * saved), and dir itself when that leaves it empty. A missing dir is fine. */
lp_status lp_resume_clear(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
