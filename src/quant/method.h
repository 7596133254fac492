/*
 * method.h - the method registry's row, and what a method's code gets.
 *
 * What: a compression method is one file with one lp_method row: its name
 *   and help line, its scope, its own settings struct described by a schema
 *   of options (include/llmpress/quant.h: lp_option), its checks, and its
 *   compress function. methods.c lists the rows; the CLI, recipes, the
 *   resume key and the JSON summary are generated from the schemas.
 * Scopes:
 *   LP_SCOPE_LINEAR  one linear at a time from its weight W and, when
 *                    calibrated, its input Hessian H = 2 X^T X / n
 *                    (pipeline.c computes H in true-sequential order);
 *                    the method adds its parts to `out` (format/linear.h);
 *   LP_SCOPE_BLOCK   a whole decoder block with a block-output loss (AWQ):
 *                    the method runs the block itself through forward.c's
 *                    hooks.
 * How to add a method: docs/architecture.md.
 */
#ifndef LP_METHOD_H
#define LP_METHOD_H

#include "core/clock.h"
#include "llmpress/quant.h"

#include "format/dense.h"
#include "format/linear.h"
#include "format/qgroup.h"
#include "model/model_impl.h"

#include <stddef.h>

typedef enum { LP_SCOPE_LINEAR = 0, LP_SCOPE_BLOCK = 1 } lp_scope;

/* What a LINEAR method's compress gets for one linear. */
typedef struct {
    const float *W;        /* rows x cols f32 (out x in), finite; read-only */
    int64_t rows, cols;
    const float *H;        /* cols x cols, full symmetric, read-only; NULL without calibration */
    const void *settings;  /* the method's own settings struct */
    lp_quant_stats *stats; /* add the method's time here (never NULL) */
    lp_dtype dtype;        /* how W was stored (F32, BF16, F16): parts that keep 16-bit values use its
                            * 16-bit type (F16 for an F32 checkpoint) */
    const float *H0;       /* dual_inputs methods: H of the same input in the uncompressed model
                            * (2 X0^T X0 / n), else NULL */
    const float *absmean;  /* dual_inputs methods: cols, mean |x_j| of that input in the uncompressed
                            * model (ASVD's scaling), else NULL */
    double plan;           /* what a planning step chose for this linear (plan_model / plan_block:
                            * a kept fraction, a sparsity); NAN when none ran */
} lp_compress_args;

/* What the pipeline hands a linear beyond W and H (lp_compress_linear_ex). */
typedef struct {
    const float *H0;      /* cols x cols, or NULL */
    const float *absmean; /* cols, or NULL */
    double plan;          /* NAN when none */
} lp_linear_extra;

/* What a block planner (plan_block) sees: block b of m calibrated on its
 * input X (N x L x D) and the four Hessians H[g] (g: q/k/v, o, gate/up,
 * down; cols[g] x cols[g], full symmetric, 2 X^T X / n). */
typedef struct {
    lp_model *m;
    lp_ctx *ctx;
    int64_t b, N, L;
    const float *X;
    const float *H[4];
    int64_t cols[4];
    const lp_quant_params *p;
} lp_block_plan_in;

/* Build the compressed weight of one linear as parts of out (rows and cols
 * set, no parts yet); on error out's parts are freed by the caller. */
typedef lp_status (*lp_compress_fn)(const lp_compress_args *a, lp_linear *out);

struct lp_method {
    const char *name, *help;
    lp_scope scope;
    bool calibrated;                     /* needs calibration data ... */
    bool (*calib_when)(const void *s);   /* ... or, when set, only when this says so */
    /* Where a LINEAR method's H comes from: false = true-sequential (each
     * linear sees the inputs left by the linears before it, compressed: GPTQ's
     * order); true = the block's input (every linear of a block calibrated on
     * the uncompressed block, as the BiLLM / PB-LLM / ARB-LLM drivers do). */
    bool block_input;
    /* With block_input: the pipeline also carries the uncompressed model's
     * activations X0 beside the compressed model's X and gives each linear
     * H0 and mean |x| of its input in the uncompressed model (ASVD and
     * SVD-LLM profile the original model; SVD-LLM's update fits to X). */
    bool dual_inputs;
    size_t settings_size;
    const lp_option *options;            /* terminated by a {0} row */
    lp_status (*check)(const void *s);   /* rules spanning options; may be NULL */
    /* whether a rows x cols linear can be compressed with these settings
     * (checked for every linear before any work); may be NULL */
    lp_status (*check_shape)(const void *s, int64_t rows, int64_t cols);
    lp_compress_fn compress;             /* LP_SCOPE_LINEAR */
    /* Optional, LP_SCOPE_LINEAR with calibration: before the pipeline, one
     * value per decoder linear (plan[b * LP_NLIN + k], NAN = none) from the
     * whole model (ASVD's sensitivity-based rank allocation); handed to
     * compress as lp_compress_args.plan. */
    lp_status (*plan_model)(lp_model *m, const lp_quant_params *p, const void *s, double *plan, lp_quant_stats *st);
    /* Optional, block_input methods: before block b's linears are
     * compressed, one value per linear of the block (plan[k], NAN = none;
     * --allocate's per-linear sparsity); overrides plan_model's. May return
     * early with every plan NAN when its settings ask for no planning. */
    lp_status (*plan_block)(const lp_block_plan_in *in, const void *s, double plan[LP_NLIN], lp_quant_stats *st);
    /* LP_SCOPE_BLOCK: block b of m, X = its calibration inputs (N x L x D),
     * ctx a context of m for L tokens; quantize = 0 only folds what the
     * method searched into the block's dense weights (a prescale). X holds
     * the inputs of block b + 1 on return. */
    lp_status (*block)(lp_model *m, lp_ctx *ctx, int64_t b, float *X, int64_t N, int64_t L, const void *s,
                       bool quantize, const lp_quant_params *p, lp_quant_stats *st);
};

struct lp_settings {
    const lp_method *m;
    void *data; /* m->settings_size bytes: the method's settings struct */
};

/* The settings struct behind s (for the method that owns it). */
static inline const void *lp_settings_data(const lp_settings *s) { return s->data; }

/* Compress dense linear l with fn and settings: W = l's weight in f32
 * (checked finite), fn builds the parts, which then replace l's weight (the
 * bias stays); *rel_err = ||W - W_hat|| / ||W||. On error l is unchanged.
 * The one path every method's weights take into their formats. */
lp_status lp_compress_linear(lp_compress_fn fn, const void *settings, lp_linear *l, const float *H,
                             lp_quant_stats *st, double *rel_err);

/* lp_compress_linear with the extra inputs x (NULL: none). */
lp_status lp_compress_linear_ex(lp_compress_fn fn, const void *settings, lp_linear *l, const float *H,
                                const lp_linear_extra *x, lp_quant_stats *st, double *rel_err);

/* lp_compress_linear with s's method. */
lp_status lp_method_compress_linear(const lp_settings *s, lp_linear *l, const float *H, lp_quant_stats *st,
                                    double *rel_err);

/* lp_method_compress_linear with the extra inputs x (NULL: none). */
lp_status lp_method_compress_linear_ex(const lp_settings *s, lp_linear *l, const float *H, const lp_linear_extra *x,
                                       lp_quant_stats *st, double *rel_err);


/* ---- options several methods share (one definition each) ----
 * T is the method's settings struct; each needs the matching field. */
#define LP_OPTION_BITS(T, lo, hi) \
    {"bits", LP_OPT_INT, lo, hi, 4, "B", "bits per weight", offsetof(T, bits)}
#define LP_OPTION_GROUP(T) \
    {"group", LP_OPT_INT, -1, 1 << 30, 128, "G", "columns per scale: 32, 64, 128, ... or -1 per output channel", \
     offsetof(T, group)}
#define LP_OPTION_SYM(T) {"sym", LP_OPT_BOOL, 0, 1, 0, NULL, "symmetric (implicit zero point)", offsetof(T, sym)}
#define LP_OPTION_DAMP(T) \
    {"damp", LP_OPT_FLOAT, 1e-9, 0.999, 0.01, "D", "dampening, a fraction of the mean Hessian diagonal", \
     offsetof(T, damp)}
#define LP_OPTION_ACT_ORDER(T) \
    {"act-order", LP_OPT_BOOL, 0, 1, 0, NULL, "quantize columns by decreasing Hessian diagonal (static groups)", \
     offsetof(T, act_order)}
#define LP_OPTION_GPTQ_BLOCK(T) \
    {"gptq-block", LP_OPT_INT, 1, 1 << 20, 128, "N", "columns per lazy batch of the error feedback", \
     offsetof(T, gptq_block)}
#define LP_OPTION_CLIP_GRID(T) \
    {"clip-grid", LP_OPT_INT, 1, 1000, 20, "N", "clipping search: range factors 1 - i/N", offsetof(T, clip_grid)}
#define LP_OPTION_CLIP_MAX_SHRINK(T) \
    {"clip-max-shrink", LP_OPT_FLOAT, 0, 0.99, 0.5, "F", "clipping search: deepest shrink tried", \
     offsetof(T, clip_max_shrink)}

/* The usual checks of bits, group and sym for the grouped-integer format:
 * LP_ERR_ARG with a message naming the method and what is allowed. */
lp_status lp_check_grouped(const char *method, int bits, int group, bool sym);

#endif
