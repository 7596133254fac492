/*
 * ggml_method.c - the "ggml" method: a linear in one of llama.cpp's block
 * types (Q4_0, Q4_K, ...), its codes chosen by rounding as llama.cpp does,
 * by rounding weighted with the layer's input statistics (llama.cpp's
 * importance-matrix path), or by GPTQ's error feedback inside the type's
 * grids.
 *
 * What: compress(W) -> one "ggml" part (format/ggml.h) of the effective type
 *   (lp_ggml_effective_type: llama.cpp's fallbacks for widths that are not a
 *   multiple of 256). rounding=rtn with no calibration gives exactly the
 *   bytes llama-quantize writes from the same f32 weights; imatrix weights
 *   that rounding by diag(H) = 2 mean(x^2) per input, as llama-quantize
 *   --imatrix weights it by mean(x^2); rounding=gptq runs the shared
 *   error-feedback loop (obs.c) with a step that, at each block's first
 *   column, fits the block's grid (ggml_quants.h) to the row's current
 *   values - every earlier column's error already pushed in - and then
 *   rounds each column inside that grid.
 * Why: GGUF export's calibrated path is this method run by the usual
 *   pipeline (true-sequential Hessians, AWQ prescale, resume), and the
 *   result also lives in our own checkpoints; the GGUF writer only copies
 *   blocks.
 * Design: the loop's lazy-batch block is a multiple of the type's block, so
 *   a grid is fitted when all its columns hold their current values (the
 *   `ahead` callback sees the rest of the batch).
 */
#include "quant/ggml_method.h"

#include "core/status_impl.h"
#include "format/ggml.h"
#include "format/ggml_quants.h"
#include "quant/method.h"
#include "quant/obs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- types ---- */

/* The --type choices, in the order of the CHOICE option below. */
static const int TYPES[] = {LP_GGML_Q8_0, LP_GGML_Q4_0, LP_GGML_Q4_1, LP_GGML_Q5_0, LP_GGML_Q5_1, LP_GGML_IQ4_NL,
                            LP_GGML_Q2_K, LP_GGML_Q3_K, LP_GGML_Q4_K, LP_GGML_Q5_K, LP_GGML_Q6_K, LP_GGML_F16};
#define TYPE_CHOICES "q8_0|q4_0|q4_1|q5_0|q5_1|iq4_nl|q2_k|q3_k|q4_k|q5_k|q6_k|f16"

int lp_ggml_effective_type(int t, int64_t cols) {
    const int64_t blk = lp_ggml_type_of(t).block;
    if (blk > 0 && cols % blk == 0) return t;
    int fb;
    switch (t) { /* llama.cpp's fallbacks for K types (llama-quant.cpp) */
    case LP_GGML_Q2_K:
    case LP_GGML_Q3_K: fb = LP_GGML_IQ4_NL; break;
    case LP_GGML_Q4_K: fb = LP_GGML_Q5_0; break;
    case LP_GGML_Q5_K: fb = LP_GGML_Q5_1; break;
    case LP_GGML_Q6_K: fb = LP_GGML_Q8_0; break;
    default: return -1; /* a 32-value type: llama.cpp refuses the tensor too */
    }
    return cols % lp_ggml_type_of(fb).block == 0 ? fb : LP_GGML_F16;
}

/* ---- GPTQ inside the grids ---- */

typedef struct {
    int type;
    int n;            /* the type's block */
    lp_ggml_part *out;
    const float *imp; /* cols importance weights, or NULL */
    lp_ggml_grid *grid; /* one per row: the block being coded */
    int *codes;         /* rows x n */
} gg_step;

static int gg_ahead(void *ud, int64_t r, int64_t c, const float *cur, int64_t n) {
    gg_step *x = ud;
    if (c % x->n) return 0;
    if (n < x->n) return 1; /* cannot happen: the batch is a multiple of the block */
    lp_ggml_grid_fit(x->type, cur, x->imp ? x->imp + c : NULL, &x->grid[r]);
    return 0;
}

static int gg_column(void *ud, int64_t r, int64_t c, float w, const float *outer, float *q) {
    (void)outer;
    gg_step *x = ud;
    const int j = (int)(c % x->n);
    int *codes = x->codes + r * x->n;
    codes[j] = lp_ggml_grid_code(&x->grid[r], j, w, q);
    if (j == x->n - 1) {
        const uint64_t bytes = (uint64_t)lp_ggml_type_of(x->type).bytes;
        lp_ggml_grid_pack(&x->grid[r], codes, lp_ggml_part_row(x->out, r) + (uint64_t)(c / x->n) * bytes);
    }
    return isfinite(*q) ? 0 : 1;
}

static lp_status gg_explain(void *ud, int64_t r, int64_t c, const float *outer) {
    (void)ud, (void)outer;
    return lp_fail(LP_ERR_NUMERIC, "ggml: row %lld, column %lld: the block's grid gave a non-finite value",
                   (long long)r, (long long)c);
}

/* ---- the registry row ---- */

typedef struct {
    int type;     /* index into TYPES */
    int rounding; /* 0 rtn, 1 gptq */
    bool imatrix;
    double damp;
    int gptq_block;
} ggml_settings;

static const lp_option OPTIONS[] = {
    {"type", LP_OPT_CHOICE, 0, 11, 8, TYPE_CHOICES, "llama.cpp block type (K types fall back as llama.cpp does)",
     offsetof(ggml_settings, type)},
    {"rounding", LP_OPT_CHOICE, 0, 1, 0, "rtn|gptq", "how codes are chosen: llama.cpp's rounding, or GPTQ error "
     "feedback inside the grids", offsetof(ggml_settings, rounding)},
    {"imatrix", LP_OPT_BOOL, 0, 1, 0, NULL, "weight each block's fit by the inputs' mean square (llama.cpp's "
     "importance matrix)", offsetof(ggml_settings, imatrix)},
    LP_OPTION_DAMP(ggml_settings),
    LP_OPTION_GPTQ_BLOCK(ggml_settings),
    {0},
};

static bool calib_when(const void *p) {
    const ggml_settings *s = p;
    return s->rounding == 1 || s->imatrix;
}

static lp_status check_shape(const void *p, int64_t rows, int64_t cols) {
    (void)rows;
    const ggml_settings *s = p;
    const int t = TYPES[s->type];
    if (lp_ggml_effective_type(t, cols) < 0)
        return lp_fail(LP_ERR_ARG, "ggml: a linear with %lld inputs cannot be stored as %s: its rows must be a "
                       "multiple of %d values", (long long)cols, lp_ggml_type_of(t).name, lp_ggml_type_of(t).block);
    return LP_OK;
}

/* diag(H) as importance weights (H = 2 X^T X / n: proportional to mean x^2). */
static float *importance(const float *H, int64_t cols) {
    float *imp = malloc((size_t)cols * sizeof *imp);
    if (imp)
        for (int64_t c = 0; c < cols; c++) imp[c] = H[c * cols + c] > 0 ? H[c * cols + c] : 0.0f;
    return imp;
}

lp_status lp_ggml_quantize_gptq(int type, const float *W, float *H, const float *imp, double damp, int block,
                                lp_ggml_part *out, double *loss) {
    const int64_t R = out->rows, C = out->cols;
    const int n = lp_ggml_type_of(type).block;
    gg_step x = {.type = type, .n = n, .out = out, .imp = imp};
    x.grid = malloc((size_t)R * sizeof *x.grid);
    x.codes = malloc((size_t)R * (size_t)n * sizeof *x.codes);
    lp_status st = x.grid && x.codes ? LP_OK : lp_fail(LP_ERR_NOMEM, "ggml: out of memory for GPTQ's state");
    if (st == LP_OK) {
        lp_obs_params op = lp_obs_default_params("ggml");
        op.damp = damp;
        op.block = block < n ? n : (block + n - 1) / n * n; /* a multiple of the type's block */
        const lp_obs_step step = {.ud = &x, .ahead = gg_ahead, .column = gg_column, .explain = gg_explain};
        lp_obs_stats os = {0};
        st = lp_obs_run(W, R, C, H, &op, &step, &os);
        if (loss) *loss = os.loss;
    }
    free(x.grid);
    free(x.codes);
    return st;
}

static lp_status compress(const lp_compress_args *a, lp_linear *out) {
    const ggml_settings *s = a->settings;
    const int type = lp_ggml_effective_type(TYPES[s->type], a->cols);
    if (type < 0) return check_shape(s, a->rows, a->cols);
    if ((s->rounding == 1 || s->imatrix) && !a->H)
        return lp_fail(LP_ERR_ARG, "ggml: rounding=gptq and imatrix need calibration data");
    lp_ggml_part *p = NULL;
    float *imp = s->imatrix && type != LP_GGML_F16 ? importance(a->H, a->cols) : NULL;
    lp_status st = (s->imatrix && type != LP_GGML_F16 && !imp) ? lp_fail(LP_ERR_NOMEM, "out of memory") : LP_OK;
    double t0 = lp_now_s();
    if (st == LP_OK && s->rounding == 1 && type != LP_GGML_F16) {
        float *Hc = malloc((size_t)(a->cols * a->cols) * sizeof(float));
        st = Hc ? lp_ggml_part_alloc(type, a->rows, a->cols, &p) : lp_fail(LP_ERR_NOMEM, "out of memory");
        if (st == LP_OK) {
            memcpy(Hc, a->H, (size_t)(a->cols * a->cols) * sizeof(float));
            st = lp_ggml_quantize_gptq(type, a->W, Hc, imp, s->damp, s->gptq_block, p, NULL);
        }
        free(Hc);
    } else if (st == LP_OK) {
        st = lp_ggml_part_quantize(type, a->W, imp, a->rows, a->cols, &p);
    }
    a->stats->quantize += lp_now_s() - t0;
    free(imp);
    if (st != LP_OK) {
        lp_ggml_part_free(p);
        return st;
    }
    lp_linear_set(out, &lp_format_ggml, p);
    return LP_OK;
}

int lp_ggml_method_type(const lp_settings *s) {
    return lp_settings_method(s) == &lp_method_ggml ? TYPES[((const ggml_settings *)lp_settings_data(s))->type] : -1;
}

const lp_method lp_method_ggml = {
    .name = "ggml",
    .help = "llama.cpp's block types (Q4_0, Q4_K, ...): its rounding, importance-weighted, or GPTQ inside the grids",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = false,
    .calib_when = calib_when,
    .settings_size = sizeof(ggml_settings),
    .options = OPTIONS,
    .check_shape = check_shape,
    .compress = compress,
};
