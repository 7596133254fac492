/*
 * prune.c - the pruning methods "magnitude", "wanda" and "sparsegpt": fewer
 * weights, stored sparse (format/sparse.h: "nm" for N:M, "bitmap" for
 * unstructured) with the kept values in the checkpoint's 16-bit type or,
 * SparseGPT's joint mode, quantized in the same pass.
 *
 * What, per linear W (R x C) and, calibrated, H = 2 X^T X / n:
 *   magnitude  prune the smallest |w|: unstructured over the whole matrix
 *              (the weights at or below the value of rank floor(R C s) in
 *              ascending order, as the Wanda repository's prune_magnitude);
 *              N:M: in every m consecutive columns of a row, the m - n
 *              smallest.
 *   wanda      (Sun et al. 2023, arXiv:2306.11695) the metric |w_ij| ||x_j||
 *              (||x_j||^2 proportional to H_jj) compared within each output
 *              row: the floor(C s) smallest of the row (ties by column), or
 *              per N:M group; no update of the kept weights.
 *   sparsegpt  (Frantar & Alistarh 2023, arXiv:2301.00774) the shared
 *              error-feedback loop (obs.h) with its mask chosen per block of
 *              --gptq-block columns: unstructured, the weights of the whole
 *              block (all rows) whose w^2 / d^2 (d = Hinv[c][c], the upper
 *              Cholesky factor of (H + damp)^-1) lies at or below the value
 *              of rank floor(R n s); N:M, at each group's first column, the
 *              m - n smallest w^2 / d^2 of the group's current values. A
 *              pruned weight becomes 0 and its error goes to the columns not
 *              yet processed. --bits B (2..8) quantizes the kept weights in
 *              the same pass (the joint mode): a per-(row, group) asymmetric
 *              min-max grid (grid.h), per row from the original W as
 *              SparseGPT's quantizer finds it (--group -1), or per group of
 *              columns from the working weights at the group's first
 *              column (GPTQ's order); a pruned weight is exactly 0 on it.
 *   N:M here counts kept weights: 2:4 keeps 2 of every 4 (SparseGPT's
 *   --prunen is m - n). --allocate spreads the sparsity over the linears of
 *   each block (allocate.c) and overrides the uniform value per linear.
 * Calibration: block_input (every linear of a block on the block's input,
 *   the next block's input from the pruned block), as the authors' drivers.
 * The authors' code read, not copied: locuslab/wanda @8e8fc87 lib/prune.py,
 *   IST-DASLab/sparsegpt @147d215 sparsegpt.py.
 */
#include "quant/prune.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "format/sparse.h"
#include "quant/clip.h"
#include "quant/grid.h"
#include "quant/method.h"
#include "quant/obs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --nm's choices ("off" first), as kept:group */
static const struct {
    int n, m;
} NM[] = {{0, 0}, {2, 4}, {4, 8}, {1, 4}, {1, 2}, {2, 8}, {3, 4}, {6, 8}, {8, 16}, {4, 16}};
#define NM_CHOICES "off|2:4|4:8|1:4|1:2|2:8|3:4|6:8|8:16|4:16"

enum { KIND_MAGNITUDE, KIND_WANDA, KIND_SPARSEGPT };

int lp_prune_nm_n(const lp_prune_settings *s) { return NM[s->nm].n; }
int lp_prune_nm_m(const lp_prune_settings *s) { return NM[s->nm].m; }

/* ---- masks without updates (magnitude, wanda, and --allocate's search) ---- */

typedef struct {
    float v;
    int64_t i;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* In each group of m columns of row r, drop the m - n smallest metric
 * values (ties: the lower column first). */
static void nm_row(const float *metric, int64_t C, int n, int m, uint8_t *keep) {
    for (int64_t g = 0; g < C; g += m) {
        ranked e[16];
        for (int j = 0; j < m; j++) e[j] = (ranked){metric[g + j], g + j};
        qsort(e, (size_t)m, sizeof e[0], cmp_ranked);
        for (int j = 0; j < m; j++) keep[e[j].i] = j >= m - n;
    }
}

lp_status lp_prune_rank_rows(const float *metric, int64_t R, int64_t C, int64_t *order) {
    ranked *e = malloc((size_t)C * sizeof *e);
    if (!e) return lp_fail(LP_ERR_NOMEM, "out of memory");
    for (int64_t r = 0; r < R; r++) {
        for (int64_t c = 0; c < C; c++) e[c] = (ranked){metric[r * C + c], c};
        qsort(e, (size_t)C, sizeof *e, cmp_ranked);
        for (int64_t c = 0; c < C; c++) order[r * C + c] = e[c].i;
    }
    free(e);
    return LP_OK;
}

void lp_prune_keep_rows(const int64_t *order, int64_t R, int64_t C, double sparsity, uint8_t *keep) {
    const int64_t k = (int64_t)((double)C * sparsity);
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < C; j++) keep[r * C + order[r * C + j]] = j >= k;
}

void lp_prune_metric(int kind, const float *W, int64_t R, int64_t C, const float *H, float *metric) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            const float a = fabsf(W[r * C + c]);
            metric[r * C + c] = kind == KIND_MAGNITUDE || !H ? a : a * sqrtf(H[c * C + c]);
        }
}

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* magnitude, unstructured: the whole matrix's threshold */
static lp_status keep_matrix(const float *metric, int64_t N, double sparsity, uint8_t *keep) {
    float *v = malloc((size_t)N * sizeof *v);
    if (!v) return lp_fail(LP_ERR_NOMEM, "out of memory");
    memcpy(v, metric, (size_t)N * sizeof *v);
    qsort(v, (size_t)N, sizeof *v, cmp_float);
    int64_t k = (int64_t)((double)N * sparsity);
    const float t = v[k < N ? k : N - 1];
    for (int64_t i = 0; i < N; i++) keep[i] = !(metric[i] <= t);
    free(v);
    return LP_OK;
}

/* ---- SparseGPT through the error-feedback loop ---- */

typedef struct {
    const lp_prune_settings *s;
    double sparsity;
    int n, m, maxq;
    int64_t R, C, group; /* group: columns per grid (C: per row) */
    const float *W0;
    const float *hinv; /* set at each block (block_all) */
    uint8_t *keep;     /* R x C */
    float *Q;          /* R x C: the kept values */
    uint8_t *codes;    /* R x C (bits < 16) */
    float *scale;      /* R x ngroups */
    int *zero;
    const float *clip; /* R x ngroups x 2 (beta, gamma) with --clip, else NULL */
    lp_status st;
} sg_job;

static lp_status sg_block(void *ud, int64_t i1, int64_t i2, const float *Wp, const float *hinv) {
    sg_job *J = ud;
    J->hinv = hinv;
    if (J->n) return LP_OK; /* N:M: chosen per group in sg_ahead */
    const int64_t R = J->R, C = J->C, n = i2 - i1, N = R * n;
    float *t = malloc((size_t)N * sizeof *t), *v = malloc((size_t)N * sizeof *v);
    if (!t || !v) {
        free(t);
        free(v);
        return lp_fail(LP_ERR_NOMEM, "sparsegpt: out of memory");
    }
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < n; j++) {
            const float w = Wp[r * C + i1 + j], d = hinv[(i1 + j) * C + i1 + j];
            t[r * n + j] = w * w / (d * d);
        }
    memcpy(v, t, (size_t)N * sizeof *v);
    qsort(v, (size_t)N, sizeof *v, cmp_float);
    int64_t k = (int64_t)((double)N * J->sparsity);
    const float th = v[k < N ? k : N - 1];
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < n; j++) J->keep[r * C + i1 + j] = !(t[r * n + j] <= th);
    free(t);
    free(v);
    return LP_OK;
}

static int sg_ahead(void *ud, int64_t r, int64_t c, const float *cur, int64_t n) {
    sg_job *J = ud;
    if (J->n && c % J->m == 0) {
        if (n < J->m) return 1; /* a group straddles the block: check() prevents it */
        float t[16];
        for (int j = 0; j < J->m; j++) {
            const float d = J->hinv[(c + j) * J->C + c + j];
            t[j] = cur[j] * cur[j] / (d * d);
        }
        nm_row(t, J->m, J->n, J->m, J->keep + r * J->C + c);
    }
    if (J->maxq && J->group < J->C && c % J->group == 0) {
        /* the grid of columns [c, c + group) from their current values */
        const int64_t len = J->C - c < J->group ? J->C - c : J->group;
        const int64_t g = r * ((J->C + J->group - 1) / J->group) + c / J->group;
        const float *cl = J->clip ? J->clip + g * 2 : NULL;
        if (len > n || lp_qparams_clipped(cur, len, J->s->bits, 0, cl ? cl[0] : 1.0f, cl ? cl[1] : 1.0f, &J->scale[g],
                                          &J->zero[g]) != LP_OK)
            return 1;
    }
    return 0;
}

static int sg_column(void *ud, int64_t r, int64_t c, float w, const float *outer, float *q) {
    (void)outer;
    sg_job *J = ud;
    const int64_t i = r * J->C + c;
    if (!J->keep[i]) {
        *q = 0.0f;
        return 0;
    }
    if (J->maxq) {
        const int64_t ng = (J->C + J->group - 1) / J->group, g = r * ng + c / J->group;
        const int code = lp_rtn_quantize_value(w, J->scale[g], J->zero[g], J->maxq);
        J->codes[i] = (uint8_t)code;
        *q = J->scale[g] * (float)(code - J->zero[g]);
    } else {
        *q = w;
    }
    J->Q[i] = *q;
    return !isfinite(*q);
}

static lp_status sg_explain(void *ud, int64_t r, int64_t c, const float *outer) {
    (void)ud;
    (void)outer;
    return lp_fail(LP_ERR_NUMERIC, "sparsegpt: row %lld, column %lld: no finite kept value (or grid) there",
                   (long long)r, (long long)c);
}

/* ---- the part ---- */

/* The sparse part of the kept weights (keep, values Q or codes + grid). */
static lp_status make_part(const lp_compress_args *a, const lp_prune_settings *s, const uint8_t *keep, const float *Q,
                           const uint8_t *codes, const float *scale, const int *zero, int64_t group, lp_linear *out) {
    const int n = NM[s->nm].n, m = NM[s->nm].m;
    lp_sparse_values v = {.bits = codes ? s->bits : 16, .dtype = a->dtype == LP_DT_BF16 ? LP_DT_BF16 : LP_DT_F16,
                          .group = codes ? (group >= a->cols ? -1 : (int)group) : -1};
    void *data = NULL;
    if (n) {
        LP_TRY(lp_nm_make(a->rows, a->cols, n, m, keep, &v, Q, codes, scale, zero, &data));
        return lp_linear_add_part(out, &lp_format_nm, data);
    }
    LP_TRY(lp_bitmap_make(a->rows, a->cols, keep, &v, Q, codes, scale, zero, &data));
    return lp_linear_add_part(out, &lp_format_bitmap, data);
}

static const char *NAMES[] = {"magnitude", "wanda", "sparsegpt"};

static lp_status shape_check(int kind, const lp_prune_settings *s, int64_t rows, int64_t cols) {
    (void)rows;
    const int m = NM[s->nm].m;
    if (m && cols % m)
        return lp_fail(LP_ERR_ARG, "%s --nm %d:%d does not divide the width %lld (a multiple of %d is needed)",
                       NAMES[kind], NM[s->nm].n, m, (long long)cols, m);
    if (kind == KIND_SPARSEGPT && s->bits < 16 && s->group != -1 && s->group < cols) {
        const int unit = m ? m : 32;
        if (s->group % unit)
            return lp_fail(LP_ERR_ARG, "sparsegpt --group %d: the %s values need a group that is a multiple of %d "
                           "(or -1, per row)", s->group, m ? "N:M" : "unstructured", unit);
    }
    return LP_OK;
}

static lp_status compress_kind(int kind, const lp_compress_args *a, lp_linear *out) {
    const lp_prune_settings *s = a->settings;
    const int64_t R = a->rows, C = a->cols, N = R * C;
    const int n = NM[s->nm].n, m = NM[s->nm].m;
    const double sparsity = isnan(a->plan) ? s->sparsity : a->plan;
    LP_TRY(shape_check(kind, s, R, C));
    if (kind != KIND_MAGNITUDE && !a->H) return lp_fail(LP_ERR_ARG, "%s needs calibration data (--calib)", NAMES[kind]);
    uint8_t *keep = calloc((size_t)N, 1);
    float *Q = malloc((size_t)N * sizeof *Q);
    lp_status st = keep && Q ? LP_OK : lp_fail(LP_ERR_NOMEM, "%s: out of memory for a %lld x %lld linear", NAMES[kind],
                                                  (long long)R, (long long)C);
    if (st == LP_OK && kind != KIND_SPARSEGPT) {
        const double t0 = lp_now_s();
        float *metric = Q; /* the metric first, then the kept values */
        lp_prune_metric(kind, a->W, R, C, a->H, metric);
        if (n) {
            for (int64_t r = 0; r < R; r++) nm_row(metric + r * C, C, n, m, keep + r * C);
        } else if (kind == KIND_MAGNITUDE) {
            st = keep_matrix(metric, N, sparsity, keep);
        } else {
            int64_t *order = malloc((size_t)N * sizeof *order);
            st = order ? lp_prune_rank_rows(metric, R, C, order) : lp_fail(LP_ERR_NOMEM, "out of memory");
            if (st == LP_OK) lp_prune_keep_rows(order, R, C, sparsity, keep);
            free(order);
        }
        for (int64_t i = 0; i < N; i++) Q[i] = keep[i] ? a->W[i] : 0.0f;
        a->stats->quantize += lp_now_s() - t0;
        if (st == LP_OK) st = make_part(a, s, keep, Q, NULL, NULL, NULL, C, out);
    } else if (st == LP_OK) {
        const bool quant = s->bits < 16;
        const int64_t group = quant && s->group != -1 && s->group < C ? s->group : C, ng = (C + group - 1) / group;
        sg_job J = {.s = s, .sparsity = sparsity, .n = n, .m = m, .maxq = quant ? (1 << s->bits) - 1 : 0, .R = R,
                    .C = C, .group = group, .W0 = a->W, .keep = keep, .Q = Q};
        float *Hc = malloc((size_t)(C * C) * sizeof *Hc);
        if (quant) {
            J.codes = calloc((size_t)N, 1);
            J.scale = calloc((size_t)(R * ng), sizeof *J.scale);
            J.zero = calloc((size_t)(R * ng), sizeof *J.zero);
        }
        if (!Hc || (quant && (!J.codes || !J.scale || !J.zero)))
            st = lp_fail(LP_ERR_NOMEM, "sparsegpt: out of memory for a %lld x %lld linear", (long long)R, (long long)C);
        /* --clip: shrink factors searched on the unpruned W (the pruning changes the
         * group's values a little; the search is the same as gptq --clip's) */
        float *clip = NULL;
        if (st == LP_OK && quant && s->clip) {
            const double t0 = lp_now_s();
            clip = malloc((size_t)(R * ng * 2) * sizeof *clip);
            st = clip ? lp_clip_search(a->W, R, C, a->H, s->bits, (int)group, 0, s->clip_grid, s->clip_max_shrink, clip)
                      : lp_fail(LP_ERR_NOMEM, "out of memory");
            a->stats->clip_search += lp_now_s() - t0;
            J.clip = clip;
        }
        /* per row (--group -1): the grid from the original row, as SparseGPT's quantizer.find_params(W) */
        for (int64_t r = 0; st == LP_OK && quant && group == C && r < R; r++)
            st = lp_qparams_clipped(a->W + r * C, C, s->bits, 0, clip ? clip[r * 2] : 1.0f, clip ? clip[r * 2 + 1] : 1.0f,
                                    &J.scale[r], &J.zero[r]);
        if (st == LP_OK) {
            memcpy(Hc, a->H, (size_t)(C * C) * sizeof *Hc);
            memset(Q, 0, (size_t)N * sizeof *Q);
            lp_obs_params op = lp_obs_default_params("sparsegpt");
            op.damp = s->damp;
            op.block = s->gptq_block;
            const lp_obs_step step = {.ud = &J, .block_all = sg_block, .ahead = sg_ahead, .column = sg_column,
                                      .explain = sg_explain};
            lp_obs_stats os = {0};
            st = lp_obs_run(a->W, R, C, Hc, &op, &step, &os);
            a->stats->factorize += os.t_factor;
            a->stats->quantize += os.t_loop;
        }
        if (st == LP_OK) st = make_part(a, s, keep, Q, J.codes, J.scale, J.zero, group, out);
        free(Hc);
        free(clip);
        free(J.codes);
        free(J.scale);
        free(J.zero);
    }
    free(keep);
    free(Q);
    return st;
}

static lp_status compress_magnitude(const lp_compress_args *a, lp_linear *o) { return compress_kind(KIND_MAGNITUDE, a, o); }
static lp_status compress_wanda(const lp_compress_args *a, lp_linear *o) { return compress_kind(KIND_WANDA, a, o); }
static lp_status compress_sparsegpt(const lp_compress_args *a, lp_linear *o) { return compress_kind(KIND_SPARSEGPT, a, o); }

static lp_status check_magnitude(const void *s, int64_t r, int64_t c) { return shape_check(KIND_MAGNITUDE, s, r, c); }
static lp_status check_wanda(const void *s, int64_t r, int64_t c) { return shape_check(KIND_WANDA, s, r, c); }
static lp_status check_sparsegpt(const void *s, int64_t r, int64_t c) { return shape_check(KIND_SPARSEGPT, s, r, c); }

static lp_status check_settings(const void *p) {
    const lp_prune_settings *s = p;
    if (s->bits != 16 && (s->bits < 2 || s->bits > 8))
        return lp_fail(LP_ERR_ARG, "sparsegpt --bits %d: expected 16 (the kept weights as 16-bit floats) or 2..8 "
                       "(quantized in the same pass)", s->bits);
    const int m = NM[s->nm].m;
    if (s->bits < 16 && s->group != -1 && s->gptq_block % s->group)
        return lp_fail(LP_ERR_ARG, "sparsegpt --group %d with --gptq-block %d: a group's grid is found at its first "
                       "column from the block's current values, so the block must be a multiple of the group",
                       s->group, s->gptq_block);
    if (m && s->gptq_block % m)
        return lp_fail(LP_ERR_ARG, "sparsegpt --gptq-block %d: N:M groups of %d must not straddle a block (a multiple "
                       "of %d is needed)", s->gptq_block, m, m);
    if (s->allocate && m)
        return lp_fail(LP_ERR_ARG, "--allocate spreads an unstructured sparsity over the linears; with --nm every "
                       "linear keeps n of m already");
    if (s->clip && s->bits >= 16)
        return lp_fail(LP_ERR_ARG, "sparsegpt --clip searches the grid of quantized kept weights: it needs --bits "
                       "2..8");
    return LP_OK;
}

static bool magnitude_calib(const void *s) { return ((const lp_prune_settings *)s)->allocate; }

#define OPT_SPARSITY                                                                                                  \
    {"sparsity", LP_OPT_FLOAT, 1e-6, 0.999999, 0.5, "S", "fraction of weights removed, in (0, 1) (unstructured)",      \
     offsetof(lp_prune_settings, sparsity)}
#define OPT_NM                                                                                                        \
    {"nm", LP_OPT_CHOICE, 0, 9, 0, NM_CHOICES, "N:M sparsity along input columns: n kept in every m (replaces "       \
     "--sparsity)", offsetof(lp_prune_settings, nm)}
#define OPT_ALLOCATE                                                                                                  \
    {"allocate", LP_OPT_BOOL, 0, 1, 0, NULL, "spread --sparsity over each block's linears to lower the block's "      \
     "output error (needs --calib)", offsetof(lp_prune_settings, allocate)}

static const lp_option OPTIONS_SIMPLE[] = {OPT_SPARSITY, OPT_NM, OPT_ALLOCATE, {0}};

static const lp_option OPTIONS_SPARSEGPT[] = {
    OPT_SPARSITY,
    OPT_NM,
    OPT_ALLOCATE,
    {"bits", LP_OPT_INT, 2, 16, 16, "B", "kept weights: 16 = the checkpoint's 16-bit floats, 2..8 = quantized in the "
     "same pass (joint mode)", offsetof(lp_prune_settings, bits)},
    LP_OPTION_GROUP(lp_prune_settings),
    LP_OPTION_DAMP(lp_prune_settings),
    LP_OPTION_GPTQ_BLOCK(lp_prune_settings),
    {"clip", LP_OPT_BOOL, 0, 1, 0, NULL, "with --bits: search each grid's min/max shrink factors on the layer's "
     "output error", offsetof(lp_prune_settings, clip)},
    LP_OPTION_CLIP_GRID(lp_prune_settings),
    LP_OPTION_CLIP_MAX_SHRINK(lp_prune_settings),
    {0},
};

/* defaults the simple methods never read but check_settings does */
static lp_status check_simple(const void *p) {
    const lp_prune_settings *s = p;
    if (s->allocate && NM[s->nm].m)
        return lp_fail(LP_ERR_ARG, "--allocate spreads an unstructured sparsity over the linears; with --nm every "
                       "linear keeps n of m already");
    return LP_OK;
}

const lp_method lp_method_magnitude = {
    .name = "magnitude",
    .help = "magnitude pruning: the smallest |w| removed (unstructured or N:M), stored sparse",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = false,
    .calib_when = magnitude_calib,
    .block_input = true,
    .settings_size = sizeof(lp_prune_settings),
    .options = OPTIONS_SIMPLE,
    .check = check_simple,
    .check_shape = check_magnitude,
    .compress = compress_magnitude,
    .plan_block = lp_prune_allocate,
};

const lp_method lp_method_wanda = {
    .name = "wanda",
    .help = "Wanda: |w| x ||x|| per output row removed (unstructured or N:M), no update, stored sparse",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .block_input = true,
    .settings_size = sizeof(lp_prune_settings),
    .options = OPTIONS_SIMPLE,
    .check = check_simple,
    .check_shape = check_wanda,
    .compress = compress_wanda,
    .plan_block = lp_prune_allocate,
};

const lp_method lp_method_sparsegpt = {
    .name = "sparsegpt",
    .help = "SparseGPT: OBS pruning with error feedback (unstructured or N:M; --bits quantizes the rest in the same pass)",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .block_input = true,
    .settings_size = sizeof(lp_prune_settings),
    .options = OPTIONS_SPARSEGPT,
    .check = check_settings,
    .check_shape = check_sparsegpt,
    .compress = compress_sparsegpt,
    .plan_block = lp_prune_allocate,
};

int lp_prune_kind(const lp_method *m) {
    return m == &lp_method_magnitude ? KIND_MAGNITUDE : m == &lp_method_wanda ? KIND_WANDA : KIND_SPARSEGPT;
}
