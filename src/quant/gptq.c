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
 * Design:
 * - Rows never interact: the block's inner loop runs per row (OpenMP over
 *   rows) on that row's slice of the E buffer, which starts as a copy of W1
 *   and is overwritten column by column with the scaled errors, so W1 and E
 *   share one R x block buffer. The outer update is cblas_sgemm.
 * - Group parameters (lp_qparams_minmax = the reference's Quantizer.find_params
 *   with the scale rounded to f16):
 *     per-channel (group == cols): once per row from the ORIGINAL row (the
 *       reference calls find_params before zeroing the dead columns);
 *     grouped, in order: when column c starts a group, from the outer W's
 *       columns [c, c + group). The reference reads the outer W there, which
 *       has every earlier block's lazy update but not the updates made inside
 *       the current block, so with group < block (g64 in a 128 block) the
 *       second group's range comes from partially updated weights. Kept as is
 *       for parity: our outer W is never written during a block either;
 *     grouped with act_order: the reference's static_groups form. Our format
 *       stores contiguous groups of ORIGINAL columns (no g_idx), so each
 *       group's params are computed up front from W (dead columns zeroed), and
 *       column perm[k] uses the params of group perm[k] / group.
 * - Factorization in double for robustness (float32 in the reference).
 *   With J the index reversal, P = J H J = R^T R (LAPACK dpotrf, upper R)
 *   gives H = U' U'^T with U' = J R^T J upper, so H^-1 = U^T U with
 *   U = U'^-1 = J R^-T J: upper with a positive diagonal, hence exactly the
 *   reference's cholesky(cholesky_inverse(cholesky(H)), upper=True), for one
 *   Cholesky plus one triangular inverse (dtrtri): 2/3 C^3 flops, not 4/3.
 *   In column-major storage both reversals are plain reversals of the flat
 *   array (see factorize), so no transposes are needed.
 * - Fallback: if dpotrf finds H + damp not positive definite, damping is
 *   multiplied by 10 (0 -> 1e-3) and the factorization retried, up to
 *   p->damp_retries times; stats report the damping used.
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
 * loss is summed in double.
 */
#include "quant/gptq.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "quant/rtn.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Below these sizes a loop runs on one thread: waking the team costs more
 * than the work, and idle OpenMP threads spin while BLAS runs. Which loops
 * run threaded never changes a result (every row is one thread's work). */
#define LP_GPTQ_PAR_MIN_ELEMS (1 << 18) /* elements touched by a loop */
#define LP_GPTQ_PAR_MIN_COLS 512        /* H is C x C */

lp_gptq_params lp_gptq_default_params(void) {
    return (lp_gptq_params){.damp = 0.01, .block = 128, .act_order = 0, .damp_retries = 4};
}

/* ---- step 1-3: dead inputs, permutation, damping, Hinv ---- */

typedef struct {
    float d;
    int64_t i;
} diag_entry;

static int cmp_diag_desc(const void *a, const void *b) {
    const diag_entry *x = a, *y = b;
    if (x->d != y->d) return x->d > y->d ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* stable: ties by column index */
}

/* Diagonal of H after the dead-input fix (H[i,i] == 0 -> 1). */
static inline float diag_fixed(const float *H, int64_t C, int64_t i) {
    float h = H[i * C + i];
    return h == 0.0f ? 1.0f : h;
}

/* Factor the permuted, damped H into B (C x C doubles, column-major) as
 * described at the top: on success B's upper triangle holds R^-1 with
 * J H J = R^T R. Returns 0, or > 0 when H + damp_abs I is not positive
 * definite. Only the triangle that dpotrf reads is filled. */
static int factorize(const float *H, int64_t C, const int64_t *perm, double damp_abs, double *B) {
    /* Hp[a][b] = H[perm[a]][perm[b]] (+ damp on the diagonal); P = J Hp J in
     * column-major storage: P(r, c) = B[r + c C] = Hp[C-1-r][C-1-c]. For
     * symmetric Hp that is Hp_flat[C^2 - 1 - (r + c C)]: B is Hp's flat array
     * reversed. dpotrf('U') reads r <= c, i.e. Hp's upper triangle a <= b. */
    int64_t last = C * C - 1;
#pragma omp parallel for schedule(dynamic, 16) if (C >= LP_GPTQ_PAR_MIN_COLS)
    for (int64_t a = 0; a < C; a++) {
        const float *hrow = H + perm[a] * C;
        double *dst = B + last - a * C; /* dst[-b] = Hp[a][b] */
        dst[-a] = (double)diag_fixed(H, C, perm[a]) + damp_abs;
        for (int64_t b = a + 1; b < C; b++) dst[-b] = (double)hrow[perm[b]];
    }
    lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)C, B, (lapack_int)C);
    LP_ASSERT(info >= 0);
    if (info > 0) return (int)info;
    info = LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'U', 'N', (lapack_int)C, B, (lapack_int)C);
    LP_ASSERT(info >= 0);
    return (int)info; /* > 0 only for an exactly zero pivot, which potrf excludes */
}

/* Hinv (row-major, float) from B: Hinv = J R^-T J, whose flat array is B's
 * reversed (Hinv[i][j] = R^-1(C-1-j, C-1-i) = B[C^2 - 1 - (i C + j)]). Fails
 * (returns 0) before writing anything if an entry does not fit in float or
 * a diagonal entry is not positive in float. */
static int hinv_to_float(const double *B, int64_t C, float *Hinv) {
    int64_t last = C * C - 1, bad = 0;
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : bad) if (C >= LP_GPTQ_PAR_MIN_COLS)
    for (int64_t i = 0; i < C; i++) {
        const double *src = B + last - i * C; /* src[-j] = Hinv[i][j] */
        if (!((float)src[-i] > 0.0f) || !isfinite((float)src[-i])) bad++;
        for (int64_t j = i + 1; j < C; j++)
            if (!isfinite((float)src[-j])) bad++;
    }
    if (bad) return 0;
#pragma omp parallel for schedule(dynamic, 16) if (C >= LP_GPTQ_PAR_MIN_COLS)
    for (int64_t i = 0; i < C; i++) {
        const double *src = B + last - i * C;
        float *dst = Hinv + i * C;
        for (int64_t j = 0; j < i; j++) dst[j] = 0.0f;
        for (int64_t j = i; j < C; j++) dst[j] = (float)src[-j];
    }
    return 1;
}

/* ---- step 4: the quantization loop ---- */

typedef struct {
    const float *Wp;    /* R x C, permuted, dead columns zeroed: the outer W */
    const float *Hinv;  /* C x C upper */
    const int64_t *perm;
    lp_qgroup *out;
    uint8_t *codes;     /* R x C, permuted column order */
    int grouped;        /* group < cols */
    int dynamic;        /* grouped and not act_order: params found during the loop */
    const float *clip;  /* R x ngroups x 2 range factors (lp_gptq_params.clip), or NULL */
    const uint8_t *gbits; /* per-group widths (lp_gptq_params.gbits), or NULL */
} loop_ctx;

/* Width and zero point of group g: per-group widths (mixed precision) give
 * symmetric groups their own width's implicit zero. */
static inline int gwidth(const lp_qgroup *out, const uint8_t *gbits, int64_t g) {
    return gbits ? gbits[g] : out->bits;
}
static inline int gzero(const lp_qgroup *out, const uint8_t *gbits, int64_t r, int64_t g) {
    return out->sym ? 1 << (gwidth(out, gbits, g) - 1) : out->zeros[r * out->ngroups + g];
}

/* Columns [i1, i2) of row r; E (i2 - i1 floats) holds W1's row on entry and
 * the scaled errors on exit. Per-channel and static params are already in
 * out; dynamic ones are written there. Returns the failing column (>= 0)
 * when find_params fails on a diverged row, else -1. */
static int64_t quantize_row_block(const loop_ctx *x, int64_t r, int64_t i1, int64_t i2, float *E,
                                  double *loss) {
    lp_qgroup *out = x->out;
    int64_t C = out->cols, G = out->ngroups, n = i2 - i1;
    int maxq = (1 << out->bits) - 1;
    float s = 0.0f;
    int z = 0;
    if (!x->grouped) { /* per-channel: group 0 */
        s = lp_f16_to_f32(out->scales[r * G]);
        z = lp_qgroup_zero(out, r, 0);
    } else if (x->dynamic) { /* params of the group holding i1 (found at its start) */
        int64_t g = i1 / out->group;
        s = lp_f16_to_f32(out->scales[r * G + g]);
        z = gzero(out, x->gbits, r, g);
        maxq = (1 << gwidth(out, x->gbits, g)) - 1;
    }
    double l = 0.0;
    for (int64_t i = 0; i < n; i++) {
        int64_t c = i1 + i;
        if (x->dynamic && c % out->group == 0) {
            /* The outer W (not E): see "grouped, in order" at the top. */
            int64_t len = C - c < out->group ? C - c : out->group;
            const float *cl = x->clip ? x->clip + (r * G + c / out->group) * 2 : NULL;
            int gb = gwidth(out, x->gbits, c / out->group);
            maxq = (1 << gb) - 1;
            if (lp_qparams_clipped(x->Wp + r * C + c, len, gb, out->sym, cl ? cl[0] : 1.0f, cl ? cl[1] : 1.0f,
                                   &s, &z) != LP_OK)
                return c;
            out->scales[r * G + c / out->group] = lp_f32_to_f16(s); /* exact */
            if (!out->sym) out->zeros[r * G + c / out->group] = (uint8_t)z;
        } else if (x->grouped && !x->dynamic) { /* static: the original column's group */
            int64_t g = x->perm[c] / out->group;
            s = lp_f16_to_f32(out->scales[r * G + g]);
            z = gzero(out, x->gbits, r, g);
            maxq = (1 << gwidth(out, x->gbits, g)) - 1;
        }
        const float *h = x->Hinv + c * C + i1; /* h[j] = Hinv[c][i1 + j] */
        float d = h[i], w = E[i];
        int code = lp_rtn_quantize_value(w, s, z, maxq);
        float q = s * (float)(code - z);
        float e = (w - q) / d;
        x->codes[r * C + c] = (uint8_t)code;
        double dl = (double)(w - q) / (double)d;
        l += dl * dl;
        for (int64_t j = i + 1; j < n; j++) E[j] -= e * h[j];
        E[i] = e;
    }
    *loss += 0.5 * l;
    return -1;
}

/* ---- checks and the driver ---- */

static lp_status check_finite(const float *a, int64_t rows, int64_t cols, const char *what) {
    int64_t first = INT64_MAX; /* flat index of the first non-finite value */
#pragma omp parallel for schedule(static) reduction(min : first) if (rows * cols >= LP_GPTQ_PAR_MIN_ELEMS)
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            if (!isfinite(a[r * cols + c])) {
                first = r * cols + c < first ? r * cols + c : first;
                break;
            }
        }
    }
    if (first == INT64_MAX) return LP_OK;
    return lp_fail(LP_ERR_NUMERIC, "gptq: %s[%lld][%lld] is %g, expected a finite number; hint: "
                   "%s", what, (long long)(first / cols), (long long)(first % cols), a[first],
                   what[0] == 'W' ? "the weights are corrupt or overflowed"
                                  : "the calibration activations overflowed");
}

lp_status lp_gptq_quantize(const float *W, float *H, const lp_gptq_params *p, lp_qgroup *out,
                           lp_gptq_stats *stats) {
    LP_ASSERT(W && H && out && out->q && out->scales && (out->sym || out->zeros));
    lp_gptq_params dp = lp_gptq_default_params();
    if (!p) p = &dp;
    if (!(p->damp >= 0.0) || !isfinite(p->damp))
        return lp_fail(LP_ERR_ARG, "gptq: damp = %g, expected a finite value >= 0 (default 0.01)",
                       p->damp);
    if (p->block < 1)
        return lp_fail(LP_ERR_ARG, "gptq: block = %d, expected >= 1 (default 128)", p->block);
    if (p->act_order != 0 && p->act_order != 1)
        return lp_fail(LP_ERR_ARG, "gptq: act_order = %d, expected 0 or 1", p->act_order);
    if (p->damp_retries < 0)
        return lp_fail(LP_ERR_ARG, "gptq: damp_retries = %d, expected >= 0", p->damp_retries);
    if (p->gbits) {
        if (out->group >= out->cols)
            return lp_fail(LP_ERR_ARG, "gptq: per-group widths need groups, not per-channel");
        for (int64_t g = 0; g < out->ngroups; g++)
            if (p->gbits[g] < 1 || p->gbits[g] > out->bits)
                return lp_fail(LP_ERR_ARG, "gptq: group %lld has %d bits, expected 1..%d (the container's "
                               "width)", (long long)g, p->gbits[g], out->bits);
    }

    double t0 = omp_get_wtime();
    int64_t R = out->rows, C = out->cols;
    size_t b_bytes;
    if (C > INT32_MAX || __builtin_mul_overflow((size_t)C * (size_t)C, sizeof(double), &b_bytes))
        return lp_fail(LP_ERR_ARG, "gptq: cols = %lld is too large", (long long)C);
    LP_TRY(check_finite(W, R, C, "W"));
    LP_TRY(check_finite(H, C, C, "H"));

    lp_status st = LP_OK;
    int64_t *perm = malloc((size_t)C * sizeof *perm);
    diag_entry *de = malloc((size_t)C * sizeof *de);
    uint8_t *dead = malloc((size_t)C);
    float *Wp = malloc((size_t)R * (size_t)C * sizeof *Wp);
    uint8_t *codes = malloc((size_t)R * (size_t)C);
    float *E = malloc((size_t)R * (size_t)(p->block < C ? p->block : C) * sizeof *E);
    double *rloss = calloc((size_t)R, sizeof *rloss);
    double *B = NULL;
    if (!perm || !de || !dead || !Wp || !codes || !E || !rloss) {
        st = lp_fail(LP_ERR_NOMEM, "gptq: out of memory for a %lld x %lld layer", (long long)R,
                     (long long)C);
        goto done;
    }

    /* 1. dead inputs; 2. permutation (identity without act_order) */
    int64_t ndead = 0;
    double dsum = 0.0;
    for (int64_t i = 0; i < C; i++) {
        dead[i] = H[i * C + i] == 0.0f;
        ndead += dead[i];
        de[i] = (diag_entry){diag_fixed(H, C, i), i};
        dsum += de[i].d;
    }
    if (p->act_order) qsort(de, (size_t)C, sizeof *de, cmp_diag_desc);
    for (int64_t k = 0; k < C; k++) perm[k] = de[k].i;
    double dmean = dsum / (double)C;
    if (!(dmean > 0.0)) {
        st = lp_fail(LP_ERR_NUMERIC, "gptq: mean of diag(H) is %g, expected > 0; hint: H must "
                     "be 2 X^T X / n of the layer's inputs", dmean);
        goto done;
    }

    /* Group parameters that do not depend on the loop (see Design). */
    int grouped = out->group < C, dynamic = grouped && !p->act_order;
    int64_t bad_row = INT64_MAX;
    if (!dynamic) {
#pragma omp parallel for schedule(static) reduction(min : bad_row) if (R * C >= LP_GPTQ_PAR_MIN_ELEMS)
        for (int64_t r = 0; r < R; r++) {
            const float *wr = W + r * C;
            for (int64_t g = 0; g < out->ngroups; g++) {
                int64_t c0 = g * out->group, c1 = c0 + out->group < C ? c0 + out->group : C;
                float s;
                int z;
                lp_status gs;
                if (!grouped) {
                    /* per-channel: the whole original row, dead columns included */
                    gs = p->clip ? lp_qparams_clipped(wr, C, out->bits, out->sym, p->clip[r * 2], p->clip[r * 2 + 1],
                                                      &s, &z)
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
        if (bad_row != INT64_MAX) {
            st = lp_fail(LP_ERR_NUMERIC, "gptq: row %lld of %lld x %lld: the weights need a "
                         "scale beyond f16's 65504 at %d bits; hint: the weights are corrupt",
                         (long long)bad_row, (long long)R, (long long)C, out->bits);
            goto done;
        }
    }

    /* The working W: permuted, dead columns zeroed. */
#pragma omp parallel for schedule(static) if (R * C >= LP_GPTQ_PAR_MIN_ELEMS)
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++)
            Wp[r * C + k] = dead[perm[k]] ? 0.0f : W[r * C + perm[k]];

    /* 3. damping and Hinv, with the damping fallback */
    B = malloc(b_bytes);
    if (!B) {
        st = lp_fail(LP_ERR_NOMEM, "gptq: out of memory for the %lld x %lld Hessian factor "
                     "(%zu bytes)", (long long)C, (long long)C, b_bytes);
        goto done;
    }
    double damp = p->damp;
    int tries = 0, ok = 0;
    for (;; tries++) {
        if (factorize(H, C, perm, damp * dmean, B) == 0 && hinv_to_float(B, C, H)) {
            ok = 1;
            break;
        }
        if (tries == p->damp_retries) break;
        damp = damp > 0.0 ? damp * 10.0 : 1e-3;
    }
    free(B);
    B = NULL;
    if (!ok) {
        st = lp_fail(LP_ERR_NUMERIC, "gptq: H + damp * mean(diag H) * I is not positive definite "
                     "for damp = %g to %g (%d retries); hint: H must be 2 X^T X / n, symmetric "
                     "positive semi-definite", p->damp, damp, tries);
        goto done;
    }
    const float *Hinv = H;
    double t1 = omp_get_wtime();

    /* 4. the blocked loop */
    loop_ctx x = {.Wp = Wp, .Hinv = Hinv, .perm = perm, .out = out, .codes = codes, .clip = p->clip,
                  .gbits = p->gbits, .grouped = grouped, .dynamic = dynamic};
    for (int64_t i1 = 0; i1 < C; i1 += p->block) {
        int64_t i2 = i1 + p->block < C ? i1 + p->block : C, n = i2 - i1;
        int64_t bad_c = -1;
        bad_row = INT64_MAX;
#pragma omp parallel for schedule(static) if (R * n * n >= LP_GPTQ_PAR_MIN_ELEMS * 16)
        for (int64_t r = 0; r < R; r++) {
            float *er = E + r * n;
            memcpy(er, Wp + r * C + i1, (size_t)n * sizeof *er);
            int64_t c = quantize_row_block(&x, r, i1, i2, er, &rloss[r]);
            if (c >= 0) {
#pragma omp critical(lp_gptq_bad_row)
                if (r < bad_row) {
                    bad_row = r;
                    bad_c = c;
                }
            }
        }
        if (bad_row != INT64_MAX) {
            int64_t len = C - bad_c < out->group ? C - bad_c : out->group;
            float s;
            int z;
            st = lp_qparams_minmax(Wp + bad_row * C + bad_c, len, gwidth(out, p->gbits, bad_c / out->group),
                                   out->sym, &s, &z);
            LP_ASSERT(st != LP_OK);
            st = lp_fail_ctx(st, "gptq: the error feedback diverged at row %lld, column %lld of "
                             "%lld x %lld (damp %g); hint: raise the damping",
                             (long long)bad_row, (long long)bad_c, (long long)R, (long long)C, damp);
            goto done;
        }
        /* lazy update: W[:, i2:] -= E (R x n) Hinv[i1:i2, i2:] (n x (C - i2)) */
        if (i2 < C)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)(C - i2), (int)n,
                        -1.0f, E, (int)n, Hinv + i1 * C + i2, (int)C, 1.0f, Wp + i2, (int)C);
    }
    double loss = 0.0;
    for (int64_t r = 0; r < R; r++) loss += rloss[r]; /* serial: thread-count independent */
    if (!isfinite(loss)) {
        st = lp_fail(LP_ERR_NUMERIC, "gptq: the error feedback diverged (loss %g) on a %lld x "
                     "%lld layer with damp %g; hint: raise the damping", loss, (long long)R,
                     (long long)C, damp);
        goto done;
    }

    /* Pack in original column order: original column perm[k] holds codes[k]. */
    for (int64_t k = 0; k < C; k++) de[perm[k]].i = k; /* reuse de[].i as the inverse perm */
#pragma omp parallel for schedule(static) if (R * C >= LP_GPTQ_PAR_MIN_ELEMS)
    for (int64_t r = 0; r < R; r++) {
        uint32_t *qrow = out->q + r * out->blocks * out->bits;
        for (int64_t b = 0; b < out->blocks; b++) {
            uint8_t v[LP_QGROUP_BLOCK] = {0}; /* padding past cols stays 0 */
            int64_t c0 = b * LP_QGROUP_BLOCK;
            int64_t nv = C - c0 < LP_QGROUP_BLOCK ? C - c0 : LP_QGROUP_BLOCK;
            for (int64_t j = 0; j < nv; j++) v[j] = codes[r * C + de[c0 + j].i];
            lp_qgroup_pack_block(v, out->bits, qrow + b * out->bits);
        }
    }
    double t2 = omp_get_wtime();
    if (stats) {
        *stats = (lp_gptq_stats){.loss = loss, .damp = damp, .damp_abs = damp * dmean,
                                 .damp_retries = tries, .dead = ndead, .t_factor = t1 - t0,
                                 .t_loop = t2 - t1};
    }

done:
    free(B);
    free(perm);
    free(de);
    free(dead);
    free(Wp);
    free(codes);
    free(E);
    free(rloss);
    return st;
}
