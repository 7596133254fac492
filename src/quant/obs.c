/*
 * obs.c - the error-feedback loop (obs.h): dead inputs, order, damped
 * Cholesky of H^-1, and the blocked column loop that calls the step.
 *
 * Factorization in double for robustness (float32 in GPTQ's reference).
 * With J the index reversal, P = J H J = R^T R (LAPACK dpotrf, upper R)
 * gives H = U' U'^T with U' = J R^T J upper, so H^-1 = U^T U with
 * U = U'^-1 = J R^-T J: upper with a positive diagonal, hence exactly the
 * reference's cholesky(cholesky_inverse(cholesky(H)), upper=True), for one
 * Cholesky plus one triangular inverse (dtrtri): 2/3 C^3 flops, not 4/3. In
 * column-major storage both reversals are plain reversals of the flat array
 * (see factorize), so no transposes are needed. If dpotrf finds H + damp
 * not positive definite, damping is multiplied by 10 (0 -> 1e-3) and the
 * factorization retried, up to p->damp_retries times.
 * Rows never interact: the block's inner loop runs per row (OpenMP over
 * rows) on that row's slice of the E buffer, which starts as a copy of W1
 * and is overwritten column by column with the scaled errors, so W1 and E
 * share one R x block buffer; per-row losses are summed serially.
 */
#include "quant/obs.h"

#include "core/status_impl.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Below these sizes a loop runs on one thread: waking the team costs more
 * than the work, and idle OpenMP threads spin while BLAS runs. Which loops
 * run threaded never changes a result (every row is one thread's work). */
#define LP_OBS_PAR_MIN_ELEMS (1 << 18) /* elements touched by a loop */
#define LP_OBS_PAR_MIN_COLS 512        /* H is C x C */

lp_obs_params lp_obs_default_params(const char *who) {
    return (lp_obs_params){.who = who, .damp = 0.01, .block = 128, .act_order = 0, .damp_retries = 4};
}

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
#pragma omp parallel for schedule(dynamic, 16) if (C >= LP_OBS_PAR_MIN_COLS)
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
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : bad) if (C >= LP_OBS_PAR_MIN_COLS)
    for (int64_t i = 0; i < C; i++) {
        const double *src = B + last - i * C; /* src[-j] = Hinv[i][j] */
        if (!((float)src[-i] > 0.0f) || !isfinite((float)src[-i])) bad++;
        for (int64_t j = i + 1; j < C; j++)
            if (!isfinite((float)src[-j])) bad++;
    }
    if (bad) return 0;
#pragma omp parallel for schedule(dynamic, 16) if (C >= LP_OBS_PAR_MIN_COLS)
    for (int64_t i = 0; i < C; i++) {
        const double *src = B + last - i * C;
        float *dst = Hinv + i * C;
        for (int64_t j = 0; j < i; j++) dst[j] = 0.0f;
        for (int64_t j = i; j < C; j++) dst[j] = (float)src[-j];
    }
    return 1;
}

static lp_status check_finite(const char *who, const float *a, int64_t rows, int64_t cols, const char *what) {
    int64_t first = INT64_MAX; /* flat index of the first non-finite value */
#pragma omp parallel for schedule(static) reduction(min : first) if (rows * cols >= LP_OBS_PAR_MIN_ELEMS)
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            if (!isfinite(a[r * cols + c])) {
                first = r * cols + c < first ? r * cols + c : first;
                break;
            }
        }
    }
    if (first == INT64_MAX) return LP_OK;
    return lp_fail(LP_ERR_NUMERIC, "%s: %s[%lld][%lld] is %g, expected a finite number; hint: "
                   "%s", who, what, (long long)(first / cols), (long long)(first % cols), a[first],
                   what[0] == 'W' ? "the weights are corrupt or overflowed"
                                  : "the calibration activations overflowed");
}

/* Columns [i1, i2) of row r; E (i2 - i1 floats) holds W1's row on entry and
 * the scaled errors on exit. Returns the failing column (>= 0), else -1. */
static int64_t row_block(const lp_obs_step *s, const float *outer, const float *Hinv, int64_t C, int64_t r, int64_t i1,
                         int64_t i2, float *E, double *loss, int no_inner) {
    const int64_t n = i2 - i1;
    if (s->block_begin && s->block_begin(s->ud, r, i1, i2, E, Hinv)) return i1;
    double l = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t c = i1 + i;
        const float *h = Hinv + c * C + i1; /* h[j] = Hinv[c][i1 + j] */
        float d = h[i], w = E[i], q;
        if (s->ahead && s->ahead(s->ud, r, c, E + i, n - i)) return c;
        if (s->column(s->ud, r, c, w, outer, &q)) return c;
        float e = (w - q) / d;
        double dl = (double)(w - q) / (double)d;
        l += dl * dl;
        if (!no_inner)
            for (int64_t j = i + 1; j < n; j++) E[j] -= e * h[j];
        E[i] = e;
    }
    *loss += 0.5 * l;
    return -1;
}

lp_status lp_obs_run(const float *W, int64_t R, int64_t C, float *H, const lp_obs_params *p, const lp_obs_step *s,
                     lp_obs_stats *stats) {
    LP_ASSERT(W && H && p && s && s->column);
    const char *who = p->who ? p->who : "obs";
    if (!(p->damp >= 0.0) || !isfinite(p->damp))
        return lp_fail(LP_ERR_ARG, "%s: damp = %g, expected a finite value >= 0 (default 0.01)", who, p->damp);
    if (p->block < 1) return lp_fail(LP_ERR_ARG, "%s: block = %d, expected >= 1 (default 128)", who, p->block);
    if (p->act_order != 0 && p->act_order != 1)
        return lp_fail(LP_ERR_ARG, "%s: act_order = %d, expected 0 or 1", who, p->act_order);
    if (p->damp_retries < 0)
        return lp_fail(LP_ERR_ARG, "%s: damp_retries = %d, expected >= 0", who, p->damp_retries);

    double t0 = omp_get_wtime();
    size_t b_bytes;
    if (C > INT32_MAX || __builtin_mul_overflow((size_t)C * (size_t)C, sizeof(double), &b_bytes))
        return lp_fail(LP_ERR_ARG, "%s: cols = %lld is too large", who, (long long)C);
    LP_TRY(check_finite(who, W, R, C, "W"));
    LP_TRY(check_finite(who, H, C, C, "H"));

    lp_status st = LP_OK;
    int64_t *perm = malloc((size_t)C * sizeof *perm);
    diag_entry *de = malloc((size_t)C * sizeof *de);
    uint8_t *dead = malloc((size_t)C);
    float *Wp = malloc((size_t)R * (size_t)C * sizeof *Wp);
    float *E = malloc((size_t)R * (size_t)(p->block < C ? p->block : C) * sizeof *E);
    double *rloss = calloc((size_t)R, sizeof *rloss);
    double *B = NULL;
    if (!perm || !de || !dead || !Wp || !E || !rloss) {
        st = lp_fail(LP_ERR_NOMEM, "%s: out of memory for a %lld x %lld layer", who, (long long)R, (long long)C);
        goto done;
    }

    /* 1. dead inputs; 2. order (identity without act_order) */
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
        st = lp_fail(LP_ERR_NUMERIC, "%s: mean of diag(H) is %g, expected > 0; hint: H must "
                     "be 2 X^T X / n of the layer's inputs", who, dmean);
        goto done;
    }
    if (s->prepare && (st = s->prepare(s->ud, perm, dead)) != LP_OK) goto done;

    /* The working W: permuted, dead columns zeroed. */
#pragma omp parallel for schedule(static) if (R * C >= LP_OBS_PAR_MIN_ELEMS)
    for (int64_t r = 0; r < R; r++)
        for (int64_t k = 0; k < C; k++) Wp[r * C + k] = dead[perm[k]] ? 0.0f : W[r * C + perm[k]];

    /* 3. damping and Hinv, with the damping fallback */
    B = malloc(b_bytes);
    if (!B) {
        st = lp_fail(LP_ERR_NOMEM, "%s: out of memory for the %lld x %lld Hessian factor (%zu bytes)", who,
                     (long long)C, (long long)C, b_bytes);
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
        st = lp_fail(LP_ERR_NUMERIC, "%s: H + damp * mean(diag H) * I is not positive definite "
                     "for damp = %g to %g (%d retries); hint: H must be 2 X^T X / n, symmetric "
                     "positive semi-definite", who, p->damp, damp, tries);
        goto done;
    }
    const float *Hinv = H;
    double t1 = omp_get_wtime();

    /* 4. the blocked loop */
    for (int64_t i1 = 0; i1 < C; i1 += p->block) {
        int64_t i2 = i1 + p->block < C ? i1 + p->block : C, n = i2 - i1;
        int64_t bad_row = INT64_MAX, bad_c = -1;
        if (s->block_all && (st = s->block_all(s->ud, i1, i2, Wp, Hinv)) != LP_OK) goto done;
#pragma omp parallel for schedule(static) if (R * n * n >= LP_OBS_PAR_MIN_ELEMS * 16)
        for (int64_t r = 0; r < R; r++) {
            float *er = E + r * n;
            memcpy(er, Wp + r * C + i1, (size_t)n * sizeof *er);
            int64_t c = row_block(s, Wp + r * C, Hinv, C, r, i1, i2, er, &rloss[r], p->no_inner);
            if (c >= 0) {
#pragma omp critical(lp_obs_bad_row)
                if (r < bad_row) {
                    bad_row = r;
                    bad_c = c;
                }
            }
        }
        if (bad_row != INT64_MAX) {
            st = s->explain ? s->explain(s->ud, bad_row, bad_c, Wp + bad_row * C)
                            : lp_fail(LP_ERR_NUMERIC, "the step failed");
            st = lp_fail_ctx(st == LP_OK ? LP_ERR_NUMERIC : st, "%s: the error feedback diverged at row %lld, "
                             "column %lld of %lld x %lld (damp %g); hint: raise the damping", who,
                             (long long)bad_row, (long long)perm[bad_c], (long long)R, (long long)C, damp);
            goto done;
        }
        /* lazy update: W[:, i2:] -= E (R x n) Hinv[i1:i2, i2:] (n x (C - i2)) */
        if (i2 < C)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)(C - i2), (int)n, -1.0f, E, (int)n,
                        Hinv + i1 * C + i2, (int)C, 1.0f, Wp + i2, (int)C);
    }
    double loss = 0.0;
    for (int64_t r = 0; r < R; r++) loss += rloss[r]; /* serial: thread-count independent */
    if (!isfinite(loss)) {
        st = lp_fail(LP_ERR_NUMERIC, "%s: the error feedback diverged (loss %g) on a %lld x %lld layer with damp %g; "
                     "hint: raise the damping", who, loss, (long long)R, (long long)C, damp);
        goto done;
    }
    if (stats)
        *stats = (lp_obs_stats){.loss = loss, .damp = damp, .damp_abs = damp * dmean, .damp_retries = tries,
                                .dead = ndead, .t_factor = t1 - t0, .t_loop = omp_get_wtime() - t1};

done:
    free(B);
    free(perm);
    free(de);
    free(dead);
    free(Wp);
    free(E);
    free(rloss);
    return st;
}
