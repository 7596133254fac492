/*
 * slim.c - SliM-LLM: salience-driven bit allocation per column group, the
 * clipping search at each group's width, and GPTQ with per-group widths
 * (the method and our choices are described in slim.h).
 *
 * Design: the allocation needs only H's diagonal blocks and one Cholesky
 * factor (for U's diagonal); each group's error at the three candidate
 * widths is one rows x group x group sgemm, so the search over k is a sum
 * over precomputed numbers. Everything else is reused: lp_clip_search on
 * each group's columns, lp_gptq_quantize with gbits into a container of the
 * widest width, lp_qmix_repack into one qgroup part per width.
 */
#include "quant/slim.h"

#include "core/status_impl.h"
#include "quant/method.h"
#include "quant/clip.h"
#include "quant/gptq.h"
#include "format/qmix.h"
#include "quant/grid.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int bits, group;
    bool sym, act_order;
    double damp;
    int gptq_block, clip_grid;
    double clip_max_shrink;
} slim_settings;

static int64_t glen(int64_t cols, int group, int64_t g) {
    return cols - g * group < group ? cols - g * group : group;
}

/* u2[j] = U_jj^2 for H^-1 = U^T U (U upper), H damped by damp * mean(diag H)
 * with dead inputs (H_jj = 0) set to 1, as GPTQ does. With J the index
 * reversal, J H J = R^T R gives U = J R^-T J, so U_jj = 1 / R_(C-1-j). */
static lp_status chol_diag(const float *H, int64_t C, double damp, double *u2) {
    double mean = 0.0;
    for (int64_t i = 0; i < C; i++) mean += H[i * C + i] == 0.0f ? 1.0 : H[i * C + i];
    mean /= (double)C;
    double *B = malloc((size_t)(C * C) * sizeof(double));
    if (!B) return lp_fail(LP_ERR_NOMEM, "slim: out of memory for a %lld x %lld factor", (long long)C, (long long)C);
    for (int tries = 0; tries <= 4; tries++, damp = damp > 0 ? damp * 10 : 1e-3) {
        /* B(r, c) column-major = H[C-1-r][C-1-c]: the flat array reversed. */
        for (int64_t i = 0; i < C * C; i++) B[C * C - 1 - i] = H[i];
        for (int64_t i = 0; i < C; i++) {
            double *d = &B[(C - 1 - i) * (C + 1)];
            *d = (H[i * C + i] == 0.0f ? 1.0 : *d) + damp * mean;
        }
        if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'U', (lapack_int)C, B, (lapack_int)C) == 0) {
            for (int64_t j = 0; j < C; j++) {
                double r = B[(C - 1 - j) * (C + 1)];
                u2[j] = 1.0 / (r * r);
            }
            free(B);
            return LP_OK;
        }
    }
    free(B);
    return lp_fail(LP_ERR_NUMERIC, "slim: H + damp I is not positive definite even with 10^4 x the damping; hint: H "
                   "must be 2 X^T X / n of the layer's inputs");
}

/* Sum over rows of dw H_gg dw^T for round-to-nearest of group g at `bits`. */
static double group_error(const float *W, int64_t rows, int64_t cols, const float *H, int group, int64_t g,
                          int bits, int sym, float *D, float *M, float *Hg) {
    const int64_t c0 = g * group, n = glen(cols, group, g);
    for (int64_t i = 0; i < n; i++) memcpy(Hg + i * n, H + (c0 + i) * cols + c0, (size_t)n * sizeof(float));
    const int maxq = (1 << bits) - 1;
    for (int64_t r = 0; r < rows; r++) {
        const float *w = W + r * cols + c0;
        float s;
        int z;
        lp_status st = lp_qparams_minmax(w, n, bits, sym, &s, &z);
        for (int64_t i = 0; i < n; i++)
            D[r * n + i] = st == LP_OK ? s * (float)(lp_rtn_quantize_value(w[i], s, z, maxq) - z) - w[i] : INFINITY;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)n, (int)n, 1.0f, D, (int)n, Hg, (int)n,
                0.0f, M, (int)n);
    double e = 0.0;
    for (int64_t i = 0; i < rows * n; i++) e += (double)D[i] * M[i];
    return e;
}

typedef struct {
    double s;
    int64_t g;
} sal_entry;

static int cmp_sal(const void *a, const void *b) {
    const sal_entry *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return x->g < y->g ? -1 : x->g > y->g; /* ascending, ties by index */
}

lp_status lp_slim_allocate(const float *W, int64_t rows, int64_t cols, const float *H, int bits, int group,
                           int sym, double damp, uint8_t *gbits, int64_t *k_out) {
    if (bits < 2 || bits > 7 || group < LP_QGROUP_BLOCK || group % LP_QGROUP_BLOCK || group >= cols)
        return lp_fail(LP_ERR_ARG, "slim: bits %d, group %d for %lld columns: expected bits 2..7 and a group that is "
                       "a multiple of 32 below the column count", bits, group, (long long)cols);
    const int64_t G = (cols + group - 1) / group;
    double *u2 = malloc((size_t)cols * sizeof *u2);
    sal_entry *sal = malloc((size_t)G * sizeof *sal);
    double *err = malloc((size_t)(3 * G) * sizeof *err); /* err[3g + i]: width bits - 1 + i */
    float *D = malloc((size_t)(rows * group) * sizeof(float)), *M = malloc((size_t)(rows * group) * sizeof(float));
    float *Hg = malloc((size_t)group * (size_t)group * sizeof(float));
    lp_status s = (u2 && sal && err && D && M && Hg) ? LP_OK : lp_fail(LP_ERR_NOMEM, "slim: out of memory");
    if (s == LP_OK) s = chol_diag(H, cols, damp, u2);
    if (s == LP_OK) {
        for (int64_t g = 0; g < G; g++) {
            double acc = 0.0;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t c = g * group; c < g * group + glen(cols, group, g); c++) {
                    double w = H[c * cols + c] == 0.0f ? 0.0 : W[r * cols + c]; /* dead inputs: w = 0 */
                    acc += w * w / u2[c];
                }
            sal[g] = (sal_entry){acc, g};
            for (int i = 0; i < 3; i++)
                err[3 * g + i] = group_error(W, rows, cols, H, group, g, bits - 1 + i, sym, D, M, Hg);
        }
        qsort(sal, (size_t)G, sizeof *sal, cmp_sal);
        /* k = 0 .. G/2: the k least salient at bits - 1, the k most at bits + 1. */
        double best = INFINITY;
        int64_t bestk = 0;
        for (int64_t k = 0; k <= G / 2; k++) {
            double e = 0.0;
            for (int64_t i = 0; i < G; i++) e += err[3 * sal[i].g + (i < k ? 0 : i >= G - k ? 2 : 1)];
            if (e < best) {
                best = e;
                bestk = k;
            }
        }
        for (int64_t i = 0; i < G; i++)
            gbits[sal[i].g] = (uint8_t)(i < bestk ? bits - 1 : i >= G - bestk ? bits + 1 : bits);
        if (k_out) *k_out = bestk;
        if (!isfinite(best)) s = lp_fail(LP_ERR_NUMERIC, "slim: the allocation's error is not finite; the weights "
                                         "or the calibration activations overflowed");
    }
    free(u2);
    free(sal);
    free(err);
    free(D);
    free(M);
    free(Hg);
    return s;
}

/* SQC: clip (rows x G x 2) from the clipping search of each group at its width. */
static lp_status group_clip(const float *W, int64_t rows, int64_t cols, const float *H, int group,
                            const uint8_t *gbits, int sym, const slim_settings *p, float *clip) {
    const int64_t G = (cols + group - 1) / group;
    float *Wg = malloc((size_t)(rows * group) * sizeof(float));
    float *Hg = malloc((size_t)group * (size_t)group * sizeof(float));
    float *cg = malloc((size_t)rows * 2 * sizeof(float));
    lp_status s = (Wg && Hg && cg) ? LP_OK : lp_fail(LP_ERR_NOMEM, "slim: out of memory");
    for (int64_t g = 0; s == LP_OK && g < G; g++) {
        const int64_t c0 = g * group, n = glen(cols, group, g);
        for (int64_t r = 0; r < rows; r++) memcpy(Wg + r * n, W + r * cols + c0, (size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) memcpy(Hg + i * n, H + (c0 + i) * cols + c0, (size_t)n * sizeof(float));
        s = lp_clip_search(Wg, rows, n, Hg, gbits[g], (int)n, sym, p->clip_grid, p->clip_max_shrink, cg);
        for (int64_t r = 0; s == LP_OK && r < rows; r++) {
            clip[(r * G + g) * 2] = cg[r * 2];
            clip[(r * G + g) * 2 + 1] = cg[r * 2 + 1];
        }
    }
    free(Wg);
    free(Hg);
    free(cg);
    return s;
}

/* The layer-output error tr(dW H dW^T) of mix against W, in double. */
static double output_error(const lp_qmix *mix, const float *W, const float *H, int64_t rows, int64_t cols) {
    float *D = malloc((size_t)(rows * cols) * sizeof(float)), *M = malloc((size_t)(rows * cols) * sizeof(float));
    double e = NAN;
    if (D && M && lp_qmix_dequant(mix, 0, rows, D) == LP_OK) {
        for (int64_t i = 0; i < rows * cols; i++) D[i] -= W[i];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)cols, (int)cols, 1.0f, D, (int)cols, H,
                    (int)cols, 0.0f, M, (int)cols);
        e = 0.0;
        for (int64_t i = 0; i < rows * cols; i++) e += (double)D[i] * M[i];
    }
    free(D);
    free(M);
    return e;
}

/* SQC and GPTQ for one width map: *out (initialized here) and its output error. */
static lp_status quantize_map(const float *W, const float *H, int64_t rows, int64_t cols, const uint8_t *gbits,
                              const slim_settings *p, lp_quant_stats *st, lp_qmix *out, double *err) {
    const int64_t G = (cols + p->group - 1) / p->group;
    float *Hc = malloc((size_t)(cols * cols) * sizeof(float));
    float *clip = malloc((size_t)(rows * G * 2) * sizeof(float));
    lp_qgroup wide = {0};
    memset(out, 0, sizeof *out);
    lp_status s = (Hc && clip) ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    double t0 = omp_get_wtime();
    if (s == LP_OK) s = group_clip(W, rows, cols, H, p->group, gbits, p->sym, p, clip);
    if (st) st->clip_search += omp_get_wtime() - t0;
    int maxb = 1;
    for (int64_t g = 0; g < G; g++) maxb = gbits[g] > maxb ? gbits[g] : maxb;
    if (s == LP_OK) s = lp_qgroup_init(&wide, rows, cols, maxb, p->group, p->sym);
    if (s == LP_OK) s = lp_qmix_init(out, rows, cols, p->group, p->sym, gbits);
    if (s == LP_OK) {
        memcpy(Hc, H, (size_t)(cols * cols) * sizeof(float));
        lp_gptq_params gp = lp_gptq_default_params();
        gp.damp = p->damp;
        gp.block = p->gptq_block;
        gp.act_order = p->act_order;
        gp.clip = clip;
        gp.gbits = gbits;
        lp_gptq_stats gs = {0};
        s = lp_gptq_quantize(W, Hc, &gp, &wide, &gs);
        if (s == LP_OK) s = lp_qmix_repack(out, &wide);
        if (st) {
            st->factorize += gs.t_factor;
            st->quantize += gs.t_loop;
        }
    }
    if (s == LP_OK) {
        double t1 = omp_get_wtime();
        *err = output_error(out, W, H, rows, cols);
        if (st) st->method += omp_get_wtime() - t1;
        if (isnan(*err)) s = lp_fail(LP_ERR_NOMEM, "out of memory");
    }
    if (s != LP_OK) lp_qmix_free(out);
    lp_qgroup_free(&wide);
    free(clip);
    free(Hc);
    return s;
}

static lp_status compress(const lp_compress_args *a, lp_linear *out) {
    const slim_settings *p = a->settings;
    const float *W = a->W, *H = a->H;
    lp_quant_stats *st = a->stats;
    const int64_t rows = a->rows, cols = a->cols;
    if (!H) return lp_fail(LP_ERR_ARG, "slim needs calibration data");
    if (p->group < 0 || p->group >= cols)
        return lp_fail(LP_ERR_ARG, "slim: --group %d leaves a %lld-column linear one group per row; give a group "
                       "below its width", p->group, (long long)cols);
    const int64_t G = (cols + p->group - 1) / p->group;
    uint8_t *gbits = malloc((size_t)G), *uniform = malloc((size_t)G);
    lp_qmix *mix = calloc(1, sizeof *mix), alt;
    lp_status s = (gbits && uniform && mix) ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    int64_t k = 0;
    double t0 = omp_get_wtime(), e_mix = 0.0, e_uni = 0.0;
    if (s == LP_OK) s = lp_slim_allocate(W, rows, cols, H, p->bits, p->group, p->sym, p->damp, gbits, &k);
    st->method += omp_get_wtime() - t0;
    if (s == LP_OK) s = quantize_map(W, H, rows, cols, gbits, p, st, mix, &e_mix);
    if (s == LP_OK && k > 0) {
        /* The allocation's estimate ignores GPTQ's error feedback and the
         * cross-group terms of H: keep the mixed result only if it beats the
         * uniform one on the layer's actual output error. */
        memset(uniform, p->bits, (size_t)G);
        s = quantize_map(W, H, rows, cols, uniform, p, st, &alt, &e_uni);
        if (s == LP_OK && e_uni <= e_mix) {
            lp_qmix_free(mix);
            *mix = alt;
        } else if (s == LP_OK) {
            lp_qmix_free(&alt);
        }
    }
    if (s == LP_OK) {
        lp_linear_set(out, &lp_format_qmix, mix);
    } else if (mix) {
        lp_qmix_free(mix);
        free(mix);
    }
    free(gbits);
    free(uniform);
    return s;
}

/* ---- the registry row ---- */

static const lp_option OPTIONS[] = {
    LP_OPTION_BITS(slim_settings, 2, 7),
    LP_OPTION_GROUP(slim_settings),
    LP_OPTION_SYM(slim_settings),
    LP_OPTION_ACT_ORDER(slim_settings),
    LP_OPTION_DAMP(slim_settings),
    LP_OPTION_GPTQ_BLOCK(slim_settings),
    LP_OPTION_CLIP_GRID(slim_settings),
    LP_OPTION_CLIP_MAX_SHRINK(slim_settings),
    {0},
};

static lp_status check(const void *v) {
    const slim_settings *s = v;
    if (s->group == -1)
        return lp_fail(LP_ERR_ARG, "slim allocates bits per column group: give --group (e.g. 128), not per-channel");
    return lp_check_grouped("slim", s->bits, s->group, s->sym);
}

const lp_method lp_method_slim = {
    .name = "slim",
    .help = "SliM-LLM: salience-driven mixed bits per column group around --bits, GPTQ backend",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .settings_size = sizeof(slim_settings),
    .options = OPTIONS,
    .check = check,
    .compress = compress,
};
