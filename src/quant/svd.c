/*
 * svd.c - the low-rank methods "svd", "asvd" and "svdllm": each decoder
 * linear W (R x C) replaced by two factors, W ~ B A with A (r x C) and
 * B (R x r), stored as the "lowrank" format (format/lowrank.h) with the
 * factors in the checkpoint's 16-bit type ("dense16") or, --factor-bits,
 * quantized ("qgroup").
 *
 * What, for a kept fraction k of a linear's parameters, r = floor(k R C /
 * (R + C)) (the authors' rank rule), every SVD exact (LAPACK dgesdd, in
 * double) and its singular values split evenly, B = U_r S_r^1/2,
 * A = S_r^1/2 V_r^T (right scaling undone):
 *   svd     plain truncated SVD of W, the same k for every linear.
 *   asvd    ASVD (Yuan et al. 2023, arXiv:2312.05821): W diag(s) with
 *           s_j = (mean |x_j|)^alpha from the uncompressed model's
 *           activations (alpha 0.5), the scaling folded into A; k per
 *           linear from its perplexity sensitivity (asvd_plan.c), linears
 *           the allocation leaves at k = 1 stay dense.
 *   svdllm  SVD-LLM (Wang et al. 2024, arXiv:2403.07378): W S with S the
 *           lower Cholesky factor of X0^T X0 (the uncompressed model's
 *           inputs: truncation-aware whitening, so that dropping a singular
 *           value costs exactly its square in output error), A = S_r^1/2
 *           V_r^T S^-1; when X0^T X0 is not positive definite, its smallest
 *           eigenvalue is lifted to 1e-6 x mean(diag), as the authors do.
 *           --svdllm-update: B refitted in closed form to the outputs of the
 *           inputs X the compressed model really feeds the linear,
 *           B = W H A^T (A H A^T)^-1 with H = X^T X (the authors' lstsq).
 *   --rank K (svd, svdllm): every linear at rank K instead of the rank of
 *   --keep; above min(R, C) is an error.
 *   --factor-bits B: A quantized with GPTQ on H (RTN without calibration),
 *   then B with GPTQ on A_q H A_q^T (the input B sees), grouped
 *   (--factor-group) asymmetric integers; --clip (asvd, svdllm) adds the
 *   clipping search of clip.h to each factor's grid.
 * Calibration (asvd, svdllm): block_input with dual_inputs (pipeline.c): H0
 *   and mean |x| from the uncompressed model, H from the compressed one.
 * The authors' code read, not copied: hahnyuan/ASVD4LLM @8630427,
 *   AIoT-MLSys-Lab/SVD-LLM @1c1009a (SVDLLM.py).
 */
#include "quant/svd.h"

#include "core/status_impl.h"
#include "format/dense16.h"
#include "quant/clip.h"
#include "format/lowrank.h"
#include "quant/gptq.h"
#include "quant/rtn.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { KIND_SVD, KIND_ASVD, KIND_SVDLLM };
static const char *NAMES[] = {"svd", "asvd", "svdllm"};

int64_t lp_svd_rank(int64_t rows, int64_t cols, double keep) {
    const int64_t r = (int64_t)(keep * (double)rows * (double)cols / (double)(rows + cols));
    return r < 1 ? 1 : r;
}

/* M = W (R x C) times the right scaling (diag s when s, lower-triangular L
 * when L, else none); its SVD truncated to r; A = S^1/2 V^T scaled back,
 * B = U S^1/2, as f32. */
static lp_status factor(const float *W, int64_t R, int64_t C, const double *s, const double *L, int64_t r, float **Ao,
                        float **Bo) {
    const int64_t k = R < C ? R : C;
    double *M = malloc((size_t)(R * C) * sizeof *M), *U = malloc((size_t)(R * k) * sizeof *U);
    double *VT = malloc((size_t)(k * C) * sizeof *VT), *S = malloc((size_t)k * sizeof *S);
    float *A = malloc((size_t)(r * C) * sizeof *A), *B = malloc((size_t)(R * r) * sizeof *B);
    lp_status st = LP_OK;
    if (!M || !U || !VT || !S || !A || !B) {
        st = lp_fail(LP_ERR_NOMEM, "out of memory for the SVD of a %lld x %lld weight", (long long)R, (long long)C);
        goto done;
    }
    for (int64_t i = 0; i < R * C; i++) M[i] = W[i];
    if (s)
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) M[i * C + j] *= s[j];
    if (L) { /* M = W L: in place, L lower (C x C) */
        cblas_dtrmm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)R, (int)C, 1.0, L, (int)C,
                    M, (int)C);
    }
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)R, (lapack_int)C, M, (lapack_int)C, S, U,
                                     (lapack_int)k, VT, (lapack_int)C);
    if (info != 0) {
        st = lp_fail(LP_ERR_NUMERIC, "the SVD of a %lld x %lld weight failed (LAPACK dgesdd info %d)", (long long)R,
                     (long long)C, (int)info);
        goto done;
    }
    /* A0 = S^1/2 V^T (r x C) in M's space, then scaled back */
    double *A0 = M; /* reuse: r x C <= R x C */
    for (int64_t i = 0; i < r; i++) {
        const double q = sqrt(S[i]);
        for (int64_t j = 0; j < C; j++) A0[i * C + j] = q * VT[i * C + j] / (s ? s[j] : 1.0);
    }
    if (L) /* A = A0 L^-1: solve A L = A0 */
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, (int)r, (int)C, 1.0, L, (int)C,
                    A0, (int)C);
    for (int64_t i = 0; i < r * C; i++) A[i] = (float)A0[i];
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < r; j++) B[i * r + j] = (float)(U[i * k + j] * sqrt(S[j]));
    for (int64_t i = 0; i < r * C && st == LP_OK; i++)
        if (!isfinite(A[i])) st = lp_fail(LP_ERR_NUMERIC, "a low-rank factor is not finite");
done:
    free(M);
    free(U);
    free(VT);
    free(S);
    if (st != LP_OK) {
        free(A);
        free(B);
        A = B = NULL;
    }
    *Ao = A;
    *Bo = B;
    return st;
}

lp_status lp_svd_factor_scaled(const float *W, int64_t rows, int64_t cols, const float *absmean, double alpha,
                               int64_t rank, float **A, float **B) {
    double *s = NULL;
    if (absmean) {
        s = malloc((size_t)cols * sizeof *s);
        if (!s) return lp_fail(LP_ERR_NOMEM, "out of memory");
        for (int64_t j = 0; j < cols; j++) {
            const double v = pow((double)absmean[j], alpha);
            s[j] = v > 0.0 ? v : 1e-6;
        }
    }
    lp_status st = factor(W, rows, cols, s, NULL, rank, A, B);
    free(s);
    return st;
}

/* The lower Cholesky factor of H0 (C x C, double), with the authors'
 * fallback for an H0 that is not positive definite. */
static lp_status whitening(const float *H0, int64_t C, double **Lo) {
    double *L = malloc((size_t)(C * C) * sizeof *L), *E = malloc((size_t)(C * C) * sizeof *E);
    double *ev = malloc((size_t)C * sizeof *ev);
    lp_status st = L && E && ev ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    double dmean = 0.0;
    for (int64_t i = 0; st == LP_OK && i < C * C; i++) L[i] = H0[i];
    for (int64_t i = 0; st == LP_OK && i < C; i++) dmean += L[i * C + i] / (double)C;
    if (st == LP_OK && LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)C, L, (lapack_int)C) != 0) {
        for (int64_t i = 0; i < C * C; i++) E[i] = H0[i];
        if (LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'L', (lapack_int)C, E, (lapack_int)C, ev) != 0) {
            st = lp_fail(LP_ERR_NUMERIC, "svdllm: the eigenvalues of an input's X^T X could not be computed");
        } else {
            const double lift = -ev[0] + 1e-6 * (dmean > 0.0 ? dmean : 1.0);
            for (int64_t i = 0; i < C * C; i++) L[i] = H0[i];
            for (int64_t i = 0; i < C; i++) L[i * C + i] += lift;
            if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)C, L, (lapack_int)C) != 0)
                st = lp_fail(LP_ERR_NUMERIC, "svdllm: an input's X^T X is not positive definite even lifted by %g",
                             lift);
        }
    }
    for (int64_t i = 0; st == LP_OK && i < C; i++) /* dpotrf leaves the upper triangle as it was */
        for (int64_t j = i + 1; j < C; j++) L[i * C + j] = 0.0;
    free(E);
    free(ev);
    if (st != LP_OK) {
        free(L);
        L = NULL;
    }
    *Lo = L;
    return st;
}

/* SVD-LLM's update: B = W H A^T (A H A^T)^-1 (R x r), in double. */
static lp_status update_b(const float *W, int64_t R, int64_t C, const float *H, const float *A, int64_t r, float *B) {
    double *HA = malloc((size_t)(C * r) * sizeof *HA), *N = malloc((size_t)(R * r) * sizeof *N);
    double *G = malloc((size_t)(r * r) * sizeof *G), *Ad = malloc((size_t)(r * C) * sizeof *Ad);
    double *Hd = malloc((size_t)(C * C) * sizeof *Hd), *Wd = malloc((size_t)(R * C) * sizeof *Wd);
    lp_status st = HA && N && G && Ad && Hd && Wd ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK) {
        for (int64_t i = 0; i < r * C; i++) Ad[i] = A[i];
        for (int64_t i = 0; i < C * C; i++) Hd[i] = H[i];
        for (int64_t i = 0; i < R * C; i++) Wd[i] = W[i];
        /* HA = H A^T (C x r); N = W HA (R x r); G = A HA (r x r) */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)C, (int)r, (int)C, 1.0, Hd, (int)C, Ad, (int)C, 0.0,
                    HA, (int)r);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)R, (int)r, (int)C, 1.0, Wd, (int)C, HA, (int)r,
                    0.0, N, (int)r);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)r, (int)C, 1.0, Ad, (int)C, HA, (int)r,
                    0.0, G, (int)r);
        double dmean = 0.0;
        for (int64_t i = 0; i < r; i++) dmean += G[i * r + i] / (double)r;
        /* B G = N  <=>  G B^T = N^T (G symmetric): Cholesky solve, with a whisper of damping when needed */
        int ok = 0;
        for (double damp = 0.0; !ok && damp <= 1e-2; damp = damp > 0.0 ? damp * 10.0 : 1e-8) {
            double *Gc = Ad; /* reuse as scratch: r x r <= r x C */
            for (int64_t i = 0; i < r * r; i++) Gc[i] = G[i];
            for (int64_t i = 0; i < r; i++) Gc[i * r + i] += damp * dmean;
            if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)r, Gc, (lapack_int)r) != 0) continue;
            /* solve for X = B^T (r x R): Gc Gc^T X = N^T; N is R x r row-major = N^T column-major */
            if (LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'U', (lapack_int)r, (lapack_int)R, Gc, (lapack_int)r, N,
                               (lapack_int)r) != 0)
                continue;
            ok = 1;
        }
        if (!ok) st = lp_fail(LP_ERR_NUMERIC, "svdllm --svdllm-update: A H A^T is singular");
        for (int64_t i = 0; ok && i < R * r; i++) B[i] = (float)N[i];
        for (int64_t i = 0; ok && st == LP_OK && i < R * r; i++)
            if (!isfinite(B[i])) st = lp_fail(LP_ERR_NUMERIC, "svdllm --svdllm-update: a factor is not finite");
    }
    free(HA);
    free(N);
    free(G);
    free(Ad);
    free(Hd);
    free(Wd);
    return st;
}

/* A factor (rows x cols f32) as a part: 16-bit floats of dt, or quantized
 * (GPTQ on H when given, else RTN). */
static lp_status factor_part(const lp_svd_settings *s, const float *F, int64_t rows, int64_t cols, lp_dtype dt,
                             const float *H, const lp_format **fmt, void **data, lp_quant_stats *qs) {
    if (s->factor_bits >= 16) {
        *fmt = &lp_format_dense16;
        return lp_dense16_from_f32(rows, cols, F, dt, data);
    }
    lp_qgroup *q = calloc(1, sizeof *q);
    if (!q) return lp_fail(LP_ERR_NOMEM, "out of memory");
    const int group = s->factor_group == -1 || s->factor_group >= cols ? -1 : s->factor_group;
    lp_status st = lp_qgroup_init(q, rows, cols, s->factor_bits, group, 0);
    if (st == LP_OK && H) {
        float *Hc = malloc((size_t)(cols * cols) * sizeof *Hc);
        if (!Hc) st = lp_fail(LP_ERR_NOMEM, "out of memory");
        if (st == LP_OK) {
            memcpy(Hc, H, (size_t)(cols * cols) * sizeof *Hc);
            lp_gptq_params gp = lp_gptq_default_params();
            lp_gptq_stats gs = {0};
            float *clip = NULL;
            if (s->clip) st = lp_clip_for(F, H, q, s->clip_grid, s->clip_max_shrink, qs, &clip);
            gp.clip = clip;
            if (st == LP_OK) st = lp_gptq_quantize(F, Hc, &gp, q, &gs);
            qs->factorize += gs.t_factor;
            qs->quantize += gs.t_loop;
            free(clip);
        }
        free(Hc);
    } else if (st == LP_OK) {
        st = lp_rtn_quantize(F, q);
    }
    if (st != LP_OK) {
        lp_qgroup_free(q);
        free(q);
        return st;
    }
    *fmt = &lp_format_qgroup;
    *data = q;
    return LP_OK;
}

/* H_B = A_q H A_q^T (r x r): the input of B is A_q x. */
static lp_status hessian_b(const lp_format *fa, const void *a, int64_t r, int64_t C, const float *H, float **out) {
    float *Aq = malloc((size_t)(r * C) * sizeof *Aq), *T = malloc((size_t)(r * C) * sizeof *T);
    float *HB = malloc((size_t)(r * r) * sizeof *HB);
    lp_status st = Aq && T && HB ? fa->dequant(a, 0, r, Aq) : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r, (int)C, (int)C, 1.0f, Aq, (int)C, H, (int)C,
                    0.0f, T, (int)C);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)r, (int)r, (int)C, 1.0f, T, (int)C, Aq, (int)C, 0.0f,
                    HB, (int)r);
        for (int64_t i = 0; i < r; i++) /* exact symmetry for the Cholesky */
            for (int64_t j = 0; j < i; j++) HB[i * r + j] = HB[j * r + i] = 0.5f * (HB[i * r + j] + HB[j * r + i]);
    }
    free(Aq);
    free(T);
    if (st != LP_OK) {
        free(HB);
        HB = NULL;
    }
    *out = HB;
    return st;
}

/* The linear unchanged (ASVD's k = 1): W as it was stored. */
static lp_status keep_dense(const lp_compress_args *a, lp_linear *out) {
    void *d = NULL;
    if (a->dtype == LP_DT_BF16 || a->dtype == LP_DT_F16) {
        LP_TRY(lp_dense16_from_f32(a->rows, a->cols, a->W, a->dtype, &d)); /* exact: W came from this type */
        return lp_linear_add_part(out, &lp_format_dense16, d);
    }
    float *W = malloc((size_t)(a->rows * a->cols) * sizeof *W);
    if (!W) return lp_fail(LP_ERR_NOMEM, "out of memory");
    memcpy(W, a->W, (size_t)(a->rows * a->cols) * sizeof *W);
    lp_dense *dd = NULL;
    LP_TRY(lp_dense_own(a->rows, a->cols, W, &dd));
    return lp_linear_add_part(out, &lp_format_dense, dd);
}

static lp_status compress_kind(int kind, const lp_compress_args *a, lp_linear *out) {
    const lp_svd_settings *s = a->settings;
    const int64_t R = a->rows, C = a->cols;
    const double keep = isnan(a->plan) ? s->keep : a->plan;
    if (keep >= 1.0) return keep_dense(a, out);
    if (kind != KIND_SVD && !a->H) return lp_fail(LP_ERR_ARG, "%s needs calibration data (--calib)", NAMES[kind]);
    const int64_t rmax = R < C ? R : C;
    if (s->rank > rmax)
        return lp_fail(LP_ERR_ARG, "%s --rank %d is above min(rows, cols) = %lld of a %lld x %lld linear", NAMES[kind],
                       s->rank, (long long)rmax, (long long)R, (long long)C);
    const int64_t r = s->rank > 0 ? s->rank : lp_svd_rank(R, C, keep);
    const double t0 = lp_now_s();
    float *A = NULL, *B = NULL;
    double *L = NULL;
    lp_status st = LP_OK;
    if (kind == KIND_SVDLLM) {
        st = whitening(a->H0 ? a->H0 : a->H, C, &L);
        if (st == LP_OK) st = factor(a->W, R, C, NULL, L, r, &A, &B);
        if (st == LP_OK && s->update) st = update_b(a->W, R, C, a->H, A, r, B);
    } else {
        st = lp_svd_factor_scaled(a->W, R, C, kind == KIND_ASVD ? a->absmean : NULL, s->alpha, r, &A, &B);
    }
    a->stats->method += lp_now_s() - t0;
    free(L);
    const lp_dtype dt = a->dtype == LP_DT_BF16 ? LP_DT_BF16 : LP_DT_F16;
    const lp_format *fa = NULL, *fb = NULL;
    void *da = NULL, *db = NULL, *lr = NULL;
    float *HB = NULL;
    if (st == LP_OK) st = factor_part(s, A, r, C, dt, a->H, &fa, &da, a->stats);
    if (st == LP_OK && s->factor_bits < 16 && a->H) st = hessian_b(fa, da, r, C, a->H, &HB);
    if (st == LP_OK) st = factor_part(s, B, R, r, dt, HB, &fb, &db, a->stats);
    if (st == LP_OK) {
        st = lp_lowrank_make(R, C, r, fa, da, fb, db, &lr); /* takes da and db */
        da = db = NULL;
        if (st == LP_OK) st = lp_linear_add_part(out, &lp_format_lowrank, lr);
    }
    if (da) fa->free(da);
    if (db) fb->free(db);
    free(HB);
    free(A);
    free(B);
    return st;
}

static lp_status compress_svd(const lp_compress_args *a, lp_linear *o) { return compress_kind(KIND_SVD, a, o); }
static lp_status compress_asvd(const lp_compress_args *a, lp_linear *o) { return compress_kind(KIND_ASVD, a, o); }
static lp_status compress_svdllm(const lp_compress_args *a, lp_linear *o) { return compress_kind(KIND_SVDLLM, a, o); }

static lp_status check(const void *p) {
    const lp_svd_settings *s = p;
    if (s->factor_bits != 16 && (s->factor_bits < 2 || s->factor_bits > 8))
        return lp_fail(LP_ERR_ARG, "--factor-bits %d: expected 16 (16-bit factors) or 2..8 (quantized factors)",
                       s->factor_bits);
    if (s->factor_group != -1 && (s->factor_group < 32 || s->factor_group % 32))
        return lp_fail(LP_ERR_ARG, "--factor-group %d: expected -1 (per row) or a positive multiple of 32",
                       s->factor_group);
    if (s->clip && s->factor_bits >= 16)
        return lp_fail(LP_ERR_ARG, "--clip searches the grid of quantized factors: it needs --factor-bits 2..8");
    return LP_OK;
}

#define OPT_KEEP                                                                                                      \
    {"keep", LP_OPT_FLOAT, 1e-6, 0.999999, 0.9, "R", "fraction of the decoder linears' parameters kept, in (0, 1)",   \
     offsetof(lp_svd_settings, keep)}
#define OPT_FACTOR_BITS                                                                                               \
    {"factor-bits", LP_OPT_INT, 2, 16, 16, "B", "factors as 16-bit floats (16) or quantized to B = 2..8 bits",        \
     offsetof(lp_svd_settings, factor_bits)}
#define OPT_FACTOR_GROUP                                                                                              \
    {"factor-group", LP_OPT_INT, -1, 1 << 30, 128, "G", "columns per scale of quantized factors (-1: per row)",      \
     offsetof(lp_svd_settings, factor_group)}

#define OPT_RANK                                                                                                      \
    {"rank", LP_OPT_INT, 0, 1 << 30, 0, "K", "every linear at rank K instead of --keep (0: from --keep; at most "       \
     "min(rows, cols))", offsetof(lp_svd_settings, rank)}

#define OPT_CLIP                                                                                                      \
    {"clip", LP_OPT_BOOL, 0, 1, 0, NULL, "with --factor-bits: search each group's min/max shrink factors on the "     \
     "factor's output error", offsetof(lp_svd_settings, clip)},                                                      \
        LP_OPTION_CLIP_GRID(lp_svd_settings), LP_OPTION_CLIP_MAX_SHRINK(lp_svd_settings)

static const lp_option OPTIONS_SVD[] = {OPT_KEEP, OPT_RANK, OPT_FACTOR_BITS, OPT_FACTOR_GROUP, {0}};
static const lp_option OPTIONS_ASVD[] = {
    OPT_KEEP,
    {"alpha", LP_OPT_FLOAT, 0, 4, 0.5, "A", "activation scaling exponent: s_j = mean|x_j|^A",
     offsetof(lp_svd_settings, alpha)},
    {"asvd-windows", LP_OPT_INT, 1, 1 << 20, 16, "N", "calibration windows the perplexity sensitivity is measured on, "
     "every 4th position scored (the authors: 32 windows, every position, on a GPU)", offsetof(lp_svd_settings, asvd_windows)},
    OPT_FACTOR_BITS,
    OPT_FACTOR_GROUP,
    OPT_CLIP,
    {0},
};
static const lp_option OPTIONS_SVDLLM[] = {
    OPT_KEEP,
    OPT_RANK,
    {"svdllm-update", LP_OPT_BOOL, 0, 1, 0, NULL, "refit B in closed form to the compressed model's inputs",
     offsetof(lp_svd_settings, update)},
    OPT_FACTOR_BITS,
    OPT_FACTOR_GROUP,
    OPT_CLIP,
    {0},
};

const lp_method lp_method_svd = {
    .name = "svd",
    .help = "plain truncated SVD, the same kept fraction for every linear (no calibration)",
    .scope = LP_SCOPE_LINEAR,
    .settings_size = sizeof(lp_svd_settings),
    .options = OPTIONS_SVD,
    .check = check,
    .compress = compress_svd,
};

const lp_method lp_method_asvd = {
    .name = "asvd",
    .help = "ASVD: activation-aware SVD, ranks allocated by perplexity sensitivity [--calib]",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .block_input = true,
    .dual_inputs = true,
    .settings_size = sizeof(lp_svd_settings),
    .options = OPTIONS_ASVD,
    .check = check,
    .compress = compress_asvd,
    .plan_model = lp_asvd_plan,
};

const lp_method lp_method_svdllm = {
    .name = "svdllm",
    .help = "SVD-LLM: truncation-aware whitening (Cholesky of X^T X), optional closed-form update [--calib]",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .block_input = true,
    .dual_inputs = true,
    .settings_size = sizeof(lp_svd_settings),
    .options = OPTIONS_SVDLLM,
    .check = check,
    .compress = compress_svdllm,
};
