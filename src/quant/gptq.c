/*
 * gptq.c - GPTQ: Hessian-guided rounding with error feedback for one linear
 * (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training
 * Quantization for Generative Pre-trained Transformers", arXiv:2210.17323;
 * reference: IST-DASLab/gptq, gptq.py fasterquant).
 *
 * Shapes: R = rows (outputs), C = cols (inputs); W is R x C row-major (out x
 * in), H = 2 X^T X / n is C x C, Hinv is the C x C upper-triangular Cholesky
 * factor of (H + damp I)^-1, i.e. (H + damp I)^-1 = Hinv^T Hinv.
 *
 * Algorithm (OBQ's column-by-column form with lazy batches):
 *   1. dead inputs (H[i,i] == 0): H[i,i] = 1 and W[:,i] = 0.
 *   2. act_order: perm = columns by diag(H) descending; W, H permuted.
 *   3. damp = damp_rel * mean(diag H) added to the diagonal; Hinv as above.
 *   4. for each block [i1, i2) of `block` columns, with W1 = W[:, i1:i2]:
 *        for i in i1 .. i2-1:   (d = Hinv[i,i])
 *          q = dequant(quant(W1[:,i]))           per row, with its group's params
 *          loss += (W1[:,i] - q)^2 / d^2 / 2
 *          E[:,i] = (W1[:,i] - q) / d
 *          W1[:, i+1:i2] -= E[:,i] Hinv[i, i+1:i2]   (error feedback in the block)
 *        W[:, i2:] -= E Hinv[i1:i2, i2:]         (one sgemm: the "lazy" update)
 *   Step 4's inner loop is the exact OBS update for the remaining columns,
 *   because row i of the Cholesky factor of H^-1 is H_F^-1's i-th row scaled
 *   by 1/sqrt([H_F^-1]_ii) once columns < i are removed (paper, section 3).
 *
 * Design: steps 1-4 are the shared error-feedback loop (obs.c); this file
 * is GPTQ's per-column step - round the column to its group's grid - plus
 * where the group parameters come from, and packing.
 * - Group parameters (lp_qparams_minmax = the reference's Quantizer.find_params
 *   with the scale rounded to f16):
 *     per-channel (group == cols): once per row from the ORIGINAL row (the
 *       reference calls find_params before zeroing the dead columns);
 *     grouped, in order: when column c starts a group, from the outer W's
 *       columns [c, c + group). The reference reads the outer W there, which
 *       has every earlier block's lazy update but not the updates made inside
 *       the current block, so with group < block (g64 in a 128 block) the
 *       second group's range comes from partially updated weights. Kept as is
 *       for parity: the loop never writes the outer W during a block either;
 *     grouped with act_order: the reference's static_groups form. Our format
 *       stores contiguous groups of ORIGINAL columns (no g_idx), so each
 *       group's params are computed up front from W (dead columns zeroed), and
 *       column perm[k] uses the params of group perm[k] / group.
 *   A column reads its (s, z) back from the stored f16 scale and uint8 zero:
 *   both hold the chosen values exactly.
 * - Threads: our loops give the same bits for any OpenMP thread count (each
 *   row is one thread's work in a fixed order; per-row losses are summed
 *   serially). OpenBLAS does not promise that for its own thread count: with
 *   0.3.21, sgemm, dpotrf and dtrtri round differently with 1 and 2 threads
 *   (its partition picks different edge kernels), which can flip a rare code;
 *   test_gptq measures both.
 *
 * Other deviations from the reference: act_order sorts stably (ties by
 * column index; torch.argsort's tie order is unspecified); group == cols is
 * always per-channel, even when the caller asked for that group size; the
 * loss is summed in double; the factorization runs in double (obs.c).
 */
#include "quant/gptq.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "quant/clip.h"
#include "quant/method.h"
#include "quant/obs.h"
#include "quant/grid.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define LP_GPTQ_PAR_MIN_ELEMS (1 << 18) /* below this many weights a loop runs on one thread */

lp_gptq_params lp_gptq_default_params(void) {
    return (lp_gptq_params){.damp = 0.01, .block = 128, .act_order = 0, .damp_retries = 4};
}

/* ---- the step ---- */

typedef struct {
    const float *W;     /* R x C, the original weight */
    lp_qgroup *out;
    const lp_gptq_params *p;
    int64_t *perm;      /* copy of the loop's order (packing needs it afterwards) */
    uint8_t *codes;     /* R x C, in processing order */
    int grouped;        /* group < cols */
    int dynamic;        /* grouped and not act_order: params found during the loop */
} gptq_step;

/* Width and zero point of group g: per-group widths (mixed precision) give
 * symmetric groups their own width's implicit zero. */
static inline int gwidth(const lp_qgroup *out, const uint8_t *gbits, int64_t g) {
    return gbits ? gbits[g] : out->bits;
}
static inline int gzero(const lp_qgroup *out, const uint8_t *gbits, int64_t r, int64_t g) {
    return out->sym ? 1 << (gwidth(out, gbits, g) - 1) : out->zeros[r * out->ngroups + g];
}

/* Static and per-channel group parameters, once the order is known. */
static lp_status gptq_prepare(void *ud, const int64_t *perm, const uint8_t *dead) {
    gptq_step *x = ud;
    lp_qgroup *out = x->out;
    const lp_gptq_params *p = x->p;
    const int64_t R = out->rows, C = out->cols;
    memcpy(x->perm, perm, (size_t)C * sizeof *perm);
    if (x->dynamic) return LP_OK;
    int64_t bad_row = INT64_MAX;
#pragma omp parallel for schedule(static) reduction(min : bad_row) if (R * C >= LP_GPTQ_PAR_MIN_ELEMS)
    for (int64_t r = 0; r < R; r++) {
        const float *wr = x->W + r * C;
        for (int64_t g = 0; g < out->ngroups; g++) {
            int64_t c0 = g * out->group, c1 = c0 + out->group < C ? c0 + out->group : C;
            float s;
            int z;
            lp_status gs;
            if (!x->grouped) {
                /* per-channel: the whole original row, dead columns included */
                gs = p->clip ? lp_qparams_clipped(wr, C, out->bits, out->sym, p->clip[r * 2], p->clip[r * 2 + 1], &s,
                                                  &z)
                             : lp_qparams_minmax(wr, C, out->bits, out->sym, &s, &z);
            } else {
                /* static group of W with dead columns zeroed. Min-max params
                 * see a group only through min(x, 0) and max(x, 0), so pass
                 * those two values instead of a zeroed copy of the group. */
                float mm[2] = {0.0f, 0.0f};
                for (int64_t c = c0; c < c1; c++) {
                    float v = dead[c] ? 0.0f : wr[c];
                    mm[0] = v < mm[0] ? v : mm[0];
                    mm[1] = v > mm[1] ? v : mm[1];
                }
                if (p->clip) {
                    mm[0] *= p->clip[(r * out->ngroups + g) * 2];
                    mm[1] *= p->clip[(r * out->ngroups + g) * 2 + 1];
                }
                gs = lp_qparams_minmax(mm, 2, gwidth(out, p->gbits, g), out->sym, &s, &z);
            }
            if (gs != LP_OK) { /* only a scale beyond f16: W is finite */
                bad_row = r < bad_row ? r : bad_row;
                break;
            }
            out->scales[r * out->ngroups + g] = lp_f32_to_f16(s); /* exact */
            if (!out->sym) out->zeros[r * out->ngroups + g] = (uint8_t)z;
        }
    }
    if (bad_row != INT64_MAX)
        return lp_fail(LP_ERR_NUMERIC, "gptq: row %lld of %lld x %lld: the weights need a scale beyond f16's 65504 "
                       "at %d bits; hint: the weights are corrupt", (long long)bad_row, (long long)R, (long long)C,
                       out->bits);
    return LP_OK;
}

/* Dynamic params of the group starting at processing column c, from the outer W. */
static lp_status group_params(const gptq_step *x, int64_t r, int64_t c, const float *outer) {
    lp_qgroup *out = x->out;
    const int64_t C = out->cols, G = out->ngroups, g = c / out->group;
    const int64_t len = C - c < out->group ? C - c : out->group;
    const float *cl = x->p->clip ? x->p->clip + (r * G + g) * 2 : NULL;
    float s;
    int z;
    LP_TRY(lp_qparams_clipped(outer + c, len, gwidth(out, x->p->gbits, g), out->sym, cl ? cl[0] : 1.0f,
                              cl ? cl[1] : 1.0f, &s, &z));
    out->scales[r * G + g] = lp_f32_to_f16(s); /* exact */
    if (!out->sym) out->zeros[r * G + g] = (uint8_t)z;
    return LP_OK;
}

static int gptq_column(void *ud, int64_t r, int64_t c, float w, const float *outer, float *qv) {
    const gptq_step *x = ud;
    const lp_qgroup *out = x->out;
    const int64_t G = out->ngroups;
    int64_t g = 0; /* the group whose params this column uses */
    if (x->dynamic) {
        g = c / out->group;
        if (c % out->group == 0 && group_params(x, r, c, outer) != LP_OK) return 1;
    } else if (x->grouped) {
        g = x->perm[c] / out->group; /* static: the original column's group */
    }
    const float s = lp_f16_to_f32(out->scales[r * G + g]);
    const int z = x->grouped ? gzero(out, x->p->gbits, r, g) : lp_qgroup_zero(out, r, 0);
    const int maxq = (1 << (x->grouped ? gwidth(out, x->p->gbits, g) : out->bits)) - 1;
    const int code = lp_rtn_quantize_value(w, s, z, maxq);
    x->codes[r * out->cols + c] = (uint8_t)code;
    *qv = s * (float)(code - z);
    return 0;
}

static lp_status gptq_explain(void *ud, int64_t r, int64_t c, const float *outer) {
    return group_params(ud, r, c, outer); /* the only step that fails: a range beyond f16 */
}

lp_status lp_gptq_quantize(const float *W, float *H, const lp_gptq_params *p, lp_qgroup *out,
                           lp_gptq_stats *stats) {
    LP_ASSERT(W && H && out && out->q && out->scales && (out->sym || out->zeros));
    lp_gptq_params dp = lp_gptq_default_params();
    if (!p) p = &dp;
    if (p->gbits) {
        if (out->group >= out->cols)
            return lp_fail(LP_ERR_ARG, "gptq: per-group widths need groups, not per-channel");
        for (int64_t g = 0; g < out->ngroups; g++)
            if (p->gbits[g] < 1 || p->gbits[g] > out->bits)
                return lp_fail(LP_ERR_ARG, "gptq: group %lld has %d bits, expected 1..%d (the container's "
                               "width)", (long long)g, p->gbits[g], out->bits);
    }
    const int64_t R = out->rows, C = out->cols;
    gptq_step x = {.W = W, .out = out, .p = p, .grouped = out->group < C};
    x.dynamic = x.grouped && !p->act_order;
    x.perm = malloc((size_t)C * sizeof *x.perm);
    x.codes = malloc((size_t)R * (size_t)C);
    int64_t *inv = malloc((size_t)C * sizeof *inv);
    if (!x.perm || !x.codes || !inv) {
        free(x.perm);
        free(x.codes);
        free(inv);
        return lp_fail(LP_ERR_NOMEM, "gptq: out of memory for a %lld x %lld layer", (long long)R, (long long)C);
    }
    lp_obs_params op = {.who = "gptq", .damp = p->damp, .block = p->block, .act_order = p->act_order,
                        .damp_retries = p->damp_retries};
    const lp_obs_step step = {.ud = &x, .prepare = gptq_prepare, .column = gptq_column, .explain = gptq_explain};
    lp_obs_stats os = {0};
    lp_status st = lp_obs_run(W, R, C, H, &op, &step, &os);
    double t2 = omp_get_wtime();
    if (st == LP_OK) {
        /* Pack in original column order: original column perm[k] holds codes[k]. */
        for (int64_t k = 0; k < C; k++) inv[x.perm[k]] = k;
#pragma omp parallel for schedule(static) if (R * C >= LP_GPTQ_PAR_MIN_ELEMS)
        for (int64_t r = 0; r < R; r++) {
            for (int64_t b = 0; b < out->blocks; b++) {
                uint8_t v[LP_QGROUP_BLOCK] = {0}; /* padding past cols stays 0 */
                int64_t c0 = b * LP_QGROUP_BLOCK;
                int64_t nv = C - c0 < LP_QGROUP_BLOCK ? C - c0 : LP_QGROUP_BLOCK;
                for (int64_t j = 0; j < nv; j++) v[j] = x.codes[r * C + inv[c0 + j]];
                lp_qgroup_put_block(out, r, b, v);
            }
        }
        if (stats)
            *stats = (lp_gptq_stats){.loss = os.loss, .damp = os.damp, .damp_abs = os.damp_abs,
                                     .damp_retries = os.damp_retries, .dead = os.dead, .t_factor = os.t_factor,
                                     .t_loop = os.t_loop + omp_get_wtime() - t2};
    }
    free(x.perm);
    free(x.codes);
    free(inv);
    return st;
}

/* ---- the registry row ---- */

typedef struct {
    int bits, group;
    bool sym, act_order;
    double damp;
    int gptq_block;
    bool clip;
    int clip_grid;
    double clip_max_shrink;
} gptq_settings;

static const lp_option OPTIONS[] = {
    LP_OPTION_BITS(gptq_settings, 1, 8),
    LP_OPTION_GROUP(gptq_settings),
    LP_OPTION_SYM(gptq_settings),
    LP_OPTION_ACT_ORDER(gptq_settings),
    LP_OPTION_DAMP(gptq_settings),
    LP_OPTION_GPTQ_BLOCK(gptq_settings),
    {"clip", LP_OPT_BOOL, 0, 1, 0, NULL, "search each group's min/max shrink factors on the layer's output error",
     offsetof(gptq_settings, clip)},
    LP_OPTION_CLIP_GRID(gptq_settings),
    LP_OPTION_CLIP_MAX_SHRINK(gptq_settings),
    {0},
};

static lp_status check(const void *p) {
    const gptq_settings *s = p;
    return lp_check_grouped("gptq", s->bits, s->group, s->sym);
}

static lp_status compress(const lp_compress_args *a, lp_linear *out) {
    const gptq_settings *s = a->settings;
    if (!a->H) return lp_fail(LP_ERR_ARG, "gptq needs calibration data");
    const int64_t rows = a->rows, cols = a->cols;
    float *Hc = malloc((size_t)(cols * cols) * sizeof(float));
    float *clip = NULL;
    lp_qgroup *q = calloc(1, sizeof *q);
    lp_status st = (Hc && q) ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK) st = lp_qgroup_init(q, rows, cols, s->bits, s->group, s->sym);
    if (st == LP_OK && s->clip) st = lp_clip_for(a->W, a->H, q, s->clip_grid, s->clip_max_shrink, a->stats, &clip);
    if (st == LP_OK) {
        memcpy(Hc, a->H, (size_t)(cols * cols) * sizeof(float));
        lp_gptq_params gp = lp_gptq_default_params();
        gp.damp = s->damp;
        gp.block = s->gptq_block;
        gp.act_order = s->act_order;
        gp.clip = clip;
        lp_gptq_stats gs = {0};
        st = lp_gptq_quantize(a->W, Hc, &gp, q, &gs);
        a->stats->factorize += gs.t_factor;
        a->stats->quantize += gs.t_loop;
    }
    if (st == LP_OK) {
        lp_linear_set(out, &lp_format_qgroup, q);
    } else if (q) {
        lp_qgroup_free(q);
        free(q);
    }
    free(clip);
    free(Hc);
    return st;
}

const lp_method lp_method_gptq = {
    .name = "gptq",
    .help = "GPTQ: Hessian-guided error feedback, block by block (grouped integers)",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .settings_size = sizeof(gptq_settings),
    .options = OPTIONS,
    .check = check,
    .compress = compress,
};
