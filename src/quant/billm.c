/*
 * billm.c - the methods "billm", "arb", "arb-x" and "arb-rc": about one bit
 * per weight by residual binarization of salient columns and a break-point
 * split of the rest, block by block of columns (BiLLM, Huang et al. 2024,
 * arXiv:2402.04291; ARB-LLM, Li et al. 2024, arXiv:2410.03129).
 *
 * What, per linear W (R x C), for each block of `bin-block` columns (128):
 *   1. T = the block's saliency: w^2 / d^2 with d = U[j][j], U the upper
 *      Cholesky factor of (H + damp)^-1 (GPTQ's d; calibrated methods), or
 *      w itself (plain arb: no calibration, the authors' "magnitude" metric);
 *   2. salient columns: the k in 1..49 of the 50 columns with the largest
 *      sum |T| that binarizes T best (braq.h); ARB-LLM's column-group bitmap
 *      then splits the salient weights in two groups; the other columns are
 *      split at the break point (81 quantiles of |T|);
 *   3. the block's weights (their values at the block's start) are fitted
 *      group by group: salient groups with two sign planes, the others with
 *      one: billm by BRAQ (mean, sign x mean |deviation|, residual), arb by
 *      ARB's alternating refinement (--arb-iters rounds), arb-x then refits
 *      mean and scales against S = the block of X^T X, arb-rc with row x
 *      column scales and no mean;
 *   4. calibrated methods push the block's error (w - q) / d onto the later
 *      blocks through the shared error-feedback loop (obs.h, no_inner: the
 *      authors quantize a block at once and propagate only past it).
 *   Stored in the binary format (format/binary.h), parameters in f16; the
 *   values the error feedback sees are the stored ones.
 * Calibration: every linear of a block on the block's input (method.h
 *   block_input), as the authors' drivers do.
 * Differences from the authors' code: sums in double; a sign of an exactly
 *   zero deviation is +1, not 0 (one bit cannot hold 0); BiLLM's two means
 *   of its salient residual are stored as one sum; ties in the column
 *   ranking go to the lower column index.
 */
#include "core/half.h"
#include "core/status_impl.h"
#include "format/binary.h"
#include "quant/braq.h"
#include "quant/method.h"
#include "quant/obs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double damp;
    int block;
    int iters;
} bin_settings;

typedef struct {
    const char *name;
    lp_bin_kind kind;
    bool cgb, calibrated;
} variant;

static const variant BILLM = {"billm", LP_BIN_BRAQ, false, true};
static const variant ARB = {"arb", LP_BIN_ARB, true, false};
static const variant ARBX = {"arb-x", LP_BIN_ARBX, true, true};
static const variant ARBRC = {"arb-rc", LP_BIN_RC, true, true};

/* The work of one linear. */
typedef struct {
    const variant *v;
    const bin_settings *s;
    int64_t R, C, n, nb;
    lp_binary w;       /* the result under construction: colmask grows block by block */
    uint8_t *G;        /* R x C group ids */
    float *S;          /* nb x n x n: blocks of H (ARB-X) */
    float *Q;          /* R x n: the current block's values */
    float *Qall;       /* R x C: every block's values, to check the final packing */
    float *B0, *T;     /* R x n scratch */
    int8_t *s0, *s1;   /* R x n signs */
    float *fit_buf;    /* per group: mu, a0, a1 (R each), c0, c1 (n each) */
    lp_status st;
} bin_job;

static int ngs_of(const variant *v) { return v->cgb ? 2 : 1; }

/* The group's slot in the format: salient gs (0 hi, 1 lo) or other gn (0 hi, 1 lo). */
static int slot_of(int g) { return g == LP_G_SAL_HI || g == LP_G_HI ? 0 : 1; }

/* Fit and store block j (columns i1 .. i1 + n) from B0 (R x n) with
 * saliency T; Q gets the stored values. */
static lp_status do_block(bin_job *J, int64_t j, const float *B0, float *T) {
    const int64_t R = J->R, n = J->n, C = J->C, i1 = j * n;
    uint8_t *Gb = malloc((size_t)(R * n));
    if (!Gb) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", J->v->name);
    lp_bin_opts o = {.kind = J->v->kind, .iters = J->s->iters, .iters_x = J->s->iters,
                     .S = J->S ? J->S + j * n * n : NULL};
    lp_braq_salient(T, R, n, Gb);
    lp_status st = lp_braq_split(T, R, n, Gb, &o);
    if (st == LP_OK && J->v->cgb) st = lp_braq_cgb(T, R, n, Gb);
    if (st != LP_OK) {
        free(Gb);
        return st;
    }
    for (int64_t c = 0; c < n; c++) lp_binary_set(J->w.colmask, i1 + c, Gb[c] == LP_G_SAL_HI || Gb[c] == LP_G_SAL_LO);
    for (int64_t r = 0; r < R; r++) memcpy(J->G + r * C + i1, Gb + r * n, (size_t)n);

    /* fit every group of B0 */
    const int ngs = ngs_of(J->v);
    float *mu = J->fit_buf, *a0 = mu + R, *a1 = a0 + R, *c0 = a1 + R, *c1 = c0 + n;
    static const int groups[4] = {LP_G_SAL_HI, LP_G_SAL_LO, LP_G_HI, LP_G_LO};
    for (int gi = 0; gi < 4; gi++) {
        const int g = groups[gi];
        const bool sal = g == LP_G_SAL_HI || g == LP_G_SAL_LO;
        if (g == LP_G_SAL_LO && !J->v->cgb) continue;
        memset(J->fit_buf, 0, (size_t)(3 * R + 2 * n) * sizeof(float));
        lp_bin_fit f = {mu, a0, a1, c0, c1};
        lp_bin_fit_set(B0, R, n, n, Gb, LP_SET(g), sal ? 2 : 1, &o, J->Q, &f, J->s0, J->s1, 1);
        /* into the format's parameters (f16) */
        const int k = slot_of(g);
        for (int64_t r = 0; r < R; r++) {
            uint16_t *P = lp_binary_rp(&J->w, r, j);
            if (!J->w.rc) {
                uint16_t *q = sal ? P + 3 * k : P + 3 * ngs + 2 * k;
                q[0] = lp_f32_to_f16(mu[r]);
                q[1] = lp_f32_to_f16(a0[r]);
                if (sal) q[2] = lp_f32_to_f16(a1[r]);
            } else {
                uint16_t *q = sal ? P + 2 * k : P + 2 * ngs + k;
                q[0] = lp_f32_to_f16(a0[r]);
                if (sal) q[1] = lp_f32_to_f16(a1[r]);
            }
        }
        if (J->w.rc) {
            const int v0 = sal ? 2 * k : 2 * ngs + k;
            for (int64_t c = 0; c < n; c++) {
                J->w.cp[v0 * C + i1 + c] = lp_f32_to_f16(c0[c]);
                if (sal) J->w.cp[(v0 + 1) * C + i1 + c] = lp_f32_to_f16(c1[c]);
            }
        }
        /* the signs of this group */
        for (int64_t r = 0; r < R; r++)
            for (int64_t c = 0; c < n; c++) {
                if (Gb[r * n + c] != g) continue;
                lp_binary_set(J->w.s0 + r * J->w.words, i1 + c, J->s0[r * n + c] > 0);
                lp_binary_set(J->w.b1 + r * J->w.words, i1 + c, sal ? J->s1[r * n + c] > 0 : g == LP_G_LO);
            }
    }
    /* the stored values: what the error feedback and the model see */
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < n; c++) {
            const uint8_t g = Gb[r * n + c];
            J->Q[r * n + c] = lp_binary_value_at(&J->w, r, i1 + c, g == LP_G_SAL_LO, 0);
            if (!isfinite(J->Q[r * n + c])) st = LP_ERR_NUMERIC;
        }
    for (int64_t r = 0; r < R; r++) memcpy(J->Qall + r * C + i1, J->Q + r * n, (size_t)n * sizeof(float));
    free(Gb);
    if (st != LP_OK)
        return lp_fail(LP_ERR_NUMERIC, "%s: block %lld: a binarization parameter overflowed f16; expected weights of "
                       "ordinary magnitude", J->v->name, (long long)j);
    return LP_OK;
}

/* The saliency of B0 (R x n) at block j: w^2 / d^2, or w without a Hessian. */
static void saliency(const bin_job *J, const float *B0, const float *hinv, int64_t i1, float *T) {
    for (int64_t r = 0; r < J->R; r++)
        for (int64_t c = 0; c < J->n; c++) {
            const float w = B0[r * J->n + c];
            if (!hinv) {
                T[r * J->n + c] = w;
            } else {
                const float d = hinv[(i1 + c) * J->C + i1 + c];
                T[r * J->n + c] = w * w / (d * d);
            }
        }
}

static lp_status block_all(void *ud, int64_t i1, int64_t i2, const float *Wp, const float *hinv) {
    bin_job *J = ud;
    for (int64_t r = 0; r < J->R; r++) memcpy(J->B0 + r * J->n, Wp + r * J->C + i1, (size_t)(i2 - i1) * sizeof(float));
    saliency(J, J->B0, hinv, i1, J->T);
    return do_block(J, i1 / J->n, J->B0, J->T);
}

static int column(void *ud, int64_t r, int64_t c, float w, const float *outer, float *q) {
    (void)w;
    (void)outer;
    const bin_job *J = ud;
    *q = J->Q[r * J->n + c % J->n];
    return 0;
}

/* The final format: the real colmask, the salient groups into b2. */
static lp_status finish(bin_job *J, lp_binary *out) {
    const int ngs = ngs_of(J->v);
    lp_binary_shape sh = {.block = J->n, .ngs = ngs, .ngn = 2, .rc = J->v->kind == LP_BIN_RC, .held = false};
    LP_TRY(lp_binary_init(out, J->R, J->C, &sh, J->w.colmask, 0));
    const size_t plane = (size_t)(J->R * J->w.words) * sizeof(uint32_t);
    memcpy(out->s0, J->w.s0, plane);
    memcpy(out->b1, J->w.b1, plane);
    memcpy(out->rp, J->w.rp, (size_t)(J->R * J->nb * out->npr) * sizeof(uint16_t));
    if (out->rc) memcpy(out->cp, J->w.cp, (size_t)(out->ncp * J->C) * sizeof(uint16_t));
    if (ngs == 2)
        for (int64_t r = 0; r < J->R; r++) {
            int64_t k = 0;
            for (int64_t c = 0; c < J->C; c++) {
                if (!lp_binary_bit(out->colmask, c)) continue;
                lp_binary_set(out->b2 + r * out->words2, k++, J->G[r * J->C + c] == LP_G_SAL_LO);
            }
        }
    /* every stored weight is the value the error feedback used */
    for (int64_t r = 0; r < J->R; r++) {
        int64_t k = 0;
        for (int64_t c = 0; c < J->C; c++) {
            const int sal = ngs == 2 && lp_binary_bit(out->colmask, c);
            const int gs = sal ? lp_binary_bit(out->b2 + r * out->words2, k++) : 0;
            const float v = lp_binary_value_at(out, r, c, gs, 0);
            if (v != J->Qall[r * J->C + c])
                return lp_fail(LP_ERR_NUMERIC, "%s: the stored weight [%lld][%lld] = %g differs from the value the "
                               "error feedback used, %g", J->v->name, (long long)r, (long long)c, v,
                               J->Qall[r * J->C + c]);
        }
    }
    return LP_OK;
}

static lp_status shape_check(const char *name, const bin_settings *s, int64_t rows, int64_t cols) {
    (void)rows;
    if (cols % s->block || s->block % 32)
        return lp_fail(LP_ERR_ARG, "%s: a linear with %lld input columns does not fit --bin-block %d: use a block "
                       "that divides the width and is a multiple of 32", name, (long long)cols, s->block);
    return LP_OK;
}

static lp_status check_billm(const void *s, int64_t r, int64_t c) { return shape_check("billm", s, r, c); }
static lp_status check_arb(const void *s, int64_t r, int64_t c) { return shape_check("arb", s, r, c); }
static lp_status check_arbx(const void *s, int64_t r, int64_t c) { return shape_check("arb-x", s, r, c); }
static lp_status check_arbrc(const void *s, int64_t r, int64_t c) { return shape_check("arb-rc", s, r, c); }

static lp_status compress_variant(const variant *v, const lp_compress_args *a, lp_linear *out) {
    const bin_settings *s = a->settings;
    const int64_t R = a->rows, C = a->cols, n = s->block;
    if (v->calibrated && !a->H) return lp_fail(LP_ERR_ARG, "%s needs calibration data (--calib)", v->name);
    LP_TRY(shape_check(v->name, s, R, C));
    bin_job J = {.v = v, .s = s, .R = R, .C = C, .n = n, .nb = C / n};
    const int ngs = ngs_of(v);
    lp_binary_shape sh = {.block = n, .ngs = ngs, .ngn = 2, .rc = v->kind == LP_BIN_RC, .held = false};
    uint32_t *zero_mask = calloc((size_t)(C / 32), sizeof(uint32_t));
    lp_status st = zero_mask ? lp_binary_init(&J.w, R, C, &sh, zero_mask, 0) : LP_ERR_NOMEM;
    free(zero_mask);
    if (st != LP_OK) return st == LP_ERR_NOMEM ? lp_fail(st, "%s: out of memory", v->name) : st;
    J.G = malloc((size_t)(R * C));
    J.Q = malloc((size_t)(R * n) * sizeof(float));
    J.Qall = malloc((size_t)(R * C) * sizeof(float));
    J.B0 = malloc((size_t)(R * n) * sizeof(float));
    J.T = malloc((size_t)(R * n) * sizeof(float));
    J.s0 = malloc((size_t)(R * n));
    J.s1 = malloc((size_t)(R * n));
    J.fit_buf = malloc((size_t)(3 * R + 2 * n) * sizeof(float));
    float *Hc = v->calibrated ? malloc((size_t)(C * C) * sizeof(float)) : NULL;
    if (v->kind == LP_BIN_ARBX) J.S = malloc((size_t)(C * n) * sizeof(float));
    if (!J.G || !J.Q || !J.Qall || !J.B0 || !J.T || !J.s0 || !J.s1 || !J.fit_buf || (v->calibrated && !Hc) ||
        (v->kind == LP_BIN_ARBX && !J.S)) {
        st = lp_fail(LP_ERR_NOMEM, "%s: out of memory for a %lld x %lld linear", v->name, (long long)R, (long long)C);
        goto done;
    }
    const double t0 = lp_now_s();
    if (v->calibrated) { /* a Hessian offered to plain arb (e.g. with --awq-prescale) is not used */
        memcpy(Hc, a->H, (size_t)(C * C) * sizeof(float));
        if (J.S) /* ARB-X's S: the diagonal blocks of H, before damping */
            for (int64_t j = 0; j < J.nb; j++)
                for (int64_t r = 0; r < n; r++)
                    memcpy(J.S + (j * n + r) * n, a->H + (j * n + r) * C + j * n, (size_t)n * sizeof(float));
        lp_obs_params op = lp_obs_default_params(v->name);
        op.damp = s->damp;
        op.block = (int)n;
        op.no_inner = 1;
        const lp_obs_step step = {.ud = &J, .block_all = block_all, .column = column};
        lp_obs_stats os = {0};
        st = lp_obs_run(a->W, R, C, Hc, &op, &step, &os);
        a->stats->factorize += os.t_factor;
        a->stats->quantize += os.t_loop;
    } else {
        for (int64_t j = 0; st == LP_OK && j < J.nb; j++) {
            for (int64_t r = 0; r < R; r++) memcpy(J.B0 + r * n, a->W + r * C + j * n, (size_t)n * sizeof(float));
            saliency(&J, J.B0, NULL, j * n, J.T);
            st = do_block(&J, j, J.B0, J.T);
        }
        a->stats->quantize += lp_now_s() - t0;
    }
    if (st == LP_OK) {
        lp_binary *b = calloc(1, sizeof *b);
        st = b ? finish(&J, b) : lp_fail(LP_ERR_NOMEM, "out of memory");
        if (st == LP_OK) {
            lp_linear_set(out, &lp_format_binary, b);
        } else if (b) {
            lp_binary_free(b);
            free(b);
        }
    }
done:
    lp_binary_free(&J.w);
    free(J.G);
    free(J.Q);
    free(J.Qall);
    free(J.B0);
    free(J.T);
    free(J.s0);
    free(J.s1);
    free(J.fit_buf);
    free(J.S);
    free(Hc);
    return st;
}

static lp_status compress_billm(const lp_compress_args *a, lp_linear *out) { return compress_variant(&BILLM, a, out); }
static lp_status compress_arb(const lp_compress_args *a, lp_linear *out) { return compress_variant(&ARB, a, out); }
static lp_status compress_arbx(const lp_compress_args *a, lp_linear *out) { return compress_variant(&ARBX, a, out); }
static lp_status compress_arbrc(const lp_compress_args *a, lp_linear *out) { return compress_variant(&ARBRC, a, out); }

#define OPTION_BIN_BLOCK \
    {"bin-block", LP_OPT_INT, 32, 1 << 20, 128, "N", "columns per binarization block (a multiple of 32 dividing the " \
     "width)", offsetof(bin_settings, block)}
#define OPTION_ARB_ITERS \
    {"arb-iters", LP_OPT_INT, 0, 10000, 15, "N", "ARB refinement rounds (the authors' 15)", \
     offsetof(bin_settings, iters)}

static const lp_option OPTIONS_BILLM[] = {LP_OPTION_DAMP(bin_settings), OPTION_BIN_BLOCK, {0}};
static const lp_option OPTIONS_ARB[] = {OPTION_BIN_BLOCK, OPTION_ARB_ITERS, {0}};
static const lp_option OPTIONS_ARBC[] = {LP_OPTION_DAMP(bin_settings), OPTION_BIN_BLOCK, OPTION_ARB_ITERS, {0}};

const lp_method lp_method_billm = {
    .name = "billm",
    .help = "BiLLM: salient columns in two bit planes, the rest split at a break point, Hessian error feedback",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .block_input = true,
    .settings_size = sizeof(bin_settings),
    .options = OPTIONS_BILLM,
    .check_shape = check_billm,
    .compress = compress_billm,
};

const lp_method lp_method_arb = {
    .name = "arb",
    .help = "ARB-LLM's alternating refined binarization with the column-group bitmap (no calibration)",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = false,
    .settings_size = sizeof(bin_settings),
    .options = OPTIONS_ARB,
    .check_shape = check_arb,
    .compress = compress_arb,
};

const lp_method lp_method_arb_x = {
    .name = "arb-x",
    .help = "ARB-LLM_X: ARB refitted on calibration statistics, column-group bitmap, Hessian error feedback",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .block_input = true,
    .settings_size = sizeof(bin_settings),
    .options = OPTIONS_ARBC,
    .check_shape = check_arbx,
    .compress = compress_arbx,
};

const lp_method lp_method_arb_rc = {
    .name = "arb-rc",
    .help = "ARB-LLM_RC: row and column scales, column-group bitmap, Hessian error feedback",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .block_input = true,
    .settings_size = sizeof(bin_settings),
    .options = OPTIONS_ARBC,
    .check_shape = check_arbrc,
    .compress = compress_arbrc,
};
