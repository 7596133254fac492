/*
 * clip.c - the clipping-range search of clip.h and RTN with searched ranges.
 *
 * Design: per group g of width w, the rows' candidate errors are computed
 * together: D (rows x w) = Q(W_g) - W_g for every row at one candidate
 * factor, E = D H_gg (one sgemm), e_r = sum_j E[r, j] D[r, j]. Each row keeps
 * its own best factor, so one candidate pass serves all rows. Rows are
 * independent (OpenMP over rows for D and e), so the result does not depend
 * on the thread count except through sgemm's rounding.
 */
#include "quant/clip.h"

#include "core/status_impl.h"
#include "quant/method.h"
#include "quant/grid.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* d = Q(x) - x for one group at factors (beta, gamma). */
static lp_status group_delta(const float *x, int64_t w, int bits, int sym, float beta, float gamma, float *d) {
    float s;
    int z;
    LP_TRY(lp_qparams_clipped(x, w, bits, sym, beta, gamma, &s, &z));
    const int maxq = (1 << bits) - 1;
    for (int64_t j = 0; j < w; j++) d[j] = s * (float)(lp_rtn_quantize_value(x[j], s, z, maxq) - z) - x[j];
    return LP_OK;
}

typedef struct {
    const float *W, *Hg; /* Hg: w x w, H's diagonal block of the group */
    int64_t rows, cols, c0, w;
    int bits, sym;
    float *D, *E; /* rows x w */
    double *e;    /* rows */
} group_ctx;

/* e[r] = error of row r at factors (beta[r], gamma[r]) (strided arrays). */
static lp_status eval_candidate(group_ctx *g, const float *beta, const float *gamma, int64_t stride) {
    int64_t bad = g->rows;
#pragma omp parallel for schedule(static) reduction(min : bad) if (g->rows * g->w >= 16384)
    for (int64_t r = 0; r < g->rows; r++)
        if (group_delta(g->W + r * g->cols + g->c0, g->w, g->bits, g->sym, beta[r * stride], gamma[r * stride],
                        g->D + r * g->w) != LP_OK && r < bad)
            bad = r;
    if (bad < g->rows)
        return lp_fail(LP_ERR_NUMERIC, "clip: row %lld, columns %lld..%lld cannot be quantized (non-finite "
                       "weights or a scale beyond f16)", (long long)bad, (long long)g->c0,
                       (long long)(g->c0 + g->w - 1));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->rows, (int)g->w, (int)g->w, 1.0f, g->D,
                (int)g->w, g->Hg, (int)g->w, 0.0f, g->E, (int)g->w);
#pragma omp parallel for schedule(static) if (g->rows * g->w >= 16384)
    for (int64_t r = 0; r < g->rows; r++) {
        double acc = 0;
        for (int64_t j = 0; j < g->w; j++) acc += (double)g->E[r * g->w + j] * g->D[r * g->w + j];
        g->e[r] = acc;
    }
    return LP_OK;
}

lp_status lp_clip_search(const float *W, int64_t rows, int64_t cols, const float *H, int bits, int group, int sym,
                         int grid, double max_shrink, float *clip) {
    LP_ASSERT(rows >= 1 && cols >= 1 && group >= 1 && grid >= 1);
    for (int64_t i = 0; i < cols * cols; i++)
        if (!isfinite(H[i]))
            return lp_fail(LP_ERR_NUMERIC, "clip: Hessian entry [%lld, %lld] is %g; hint: the calibration "
                           "activations overflowed", (long long)(i / cols), (long long)(i % cols), H[i]);
    const int64_t G = (cols + group - 1) / group, gw = group < cols ? group : cols;
    int ncand = (int)(max_shrink * grid);
    ncand = ncand < 1 ? 1 : ncand;
    group_ctx g = {.W = W, .rows = rows, .cols = cols, .bits = bits, .sym = sym};
    float *Hg = malloc((size_t)(gw * gw) * sizeof(float));
    g.D = malloc((size_t)(rows * gw) * sizeof(float));
    g.E = malloc((size_t)(rows * gw) * sizeof(float));
    g.e = malloc((size_t)rows * sizeof(double));
    double *best = malloc((size_t)rows * sizeof(double));
    float *cb = malloc((size_t)rows * 2 * sizeof(float)); /* candidate (beta, gamma) per row */
    lp_status st = Hg && g.D && g.E && g.e && best && cb ? LP_OK : lp_fail(LP_ERR_NOMEM, "clip: out of memory");
    g.Hg = Hg;
    for (int64_t gi = 0; st == LP_OK && gi < G; gi++) {
        g.c0 = gi * group;
        g.w = (g.c0 + group < cols ? g.c0 + group : cols) - g.c0;
        for (int64_t i = 0; i < g.w; i++) memcpy(Hg + i * g.w, H + (g.c0 + i) * cols + g.c0, (size_t)g.w * sizeof(float));
        float *out = clip; /* (r, gi) at out[(r * G + gi) * 2 + {0, 1}] */
        for (int64_t r = 0; r < rows; r++) out[(r * G + gi) * 2] = out[(r * G + gi) * 2 + 1] = 1.0f;
        st = eval_candidate(&g, out + gi * 2, out + gi * 2 + 1, G * 2);
        for (int64_t r = 0; r < rows; r++) best[r] = g.e[r];
        /* pass 0: one shared factor; pass 1: beta alone; pass 2: gamma alone */
        for (int pass = 0; st == LP_OK && pass < 3; pass++) {
            for (int i = 1; st == LP_OK && i < ncand; i++) {
                const float f = (float)(1.0 - (double)i / grid);
                for (int64_t r = 0; r < rows; r++) {
                    cb[2 * r] = pass == 2 ? out[(r * G + gi) * 2] : f;
                    cb[2 * r + 1] = pass == 1 ? out[(r * G + gi) * 2 + 1] : f;
                }
                st = eval_candidate(&g, cb, cb + 1, 2);
                for (int64_t r = 0; st == LP_OK && r < rows; r++)
                    if (g.e[r] < best[r]) {
                        best[r] = g.e[r];
                        out[(r * G + gi) * 2] = cb[2 * r];
                        out[(r * G + gi) * 2 + 1] = cb[2 * r + 1];
                    }
            }
        }
    }
    free(Hg);
    free(g.D);
    free(g.E);
    free(g.e);
    free(best);
    free(cb);
    return st;
}

lp_status lp_clip_for(const float *W, const float *H, const lp_qgroup *q, int grid, double max_shrink,
                      lp_quant_stats *st, float **clip) {
    double t0 = lp_now_s();
    *clip = malloc((size_t)(q->rows * q->ngroups * 2) * sizeof(float));
    lp_status s = *clip ? lp_clip_search(W, q->rows, q->cols, H, q->bits, q->group, q->sym, grid, max_shrink, *clip)
                        : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st) st->clip_search += lp_now_s() - t0;
    return s;
}
