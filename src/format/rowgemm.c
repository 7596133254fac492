/*
 * rowgemm.c - the row-kernel product driver (rowgemm.h).
 */
#include "format/rowgemm.h"

#include "core/par.h"
#include "core/sgemm.h"
#include "core/status_impl.h"

#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* 64-byte aligned scratch (aligned_alloc wants a multiple of the alignment). */
static float *scratch(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

/* Rows [r0, r1) of Y for all T tokens, max_t at a time (then `extra`). */
static void packed_rows(const lp_rowgemm *g, const float *X, const float *xp, int64_t T, float *Y, int64_t r0,
                        int64_t r1) {
    const int64_t R = g->rows, ldx = g->ldx;
    for (int64_t t0 = 0; t0 < T; t0 += g->max_t) {
        const int64_t n = T - t0 < g->max_t ? T - t0 : g->max_t;
        g->rows_fn(g->w, n, xp + t0 * ldx, ldx, Y + t0 * R, R, r0, r1);
    }
    if (g->extra) g->extra(g->w, X, T, Y, r0, r1);
}

typedef struct {
    const lp_rowgemm *g;
    const float *X, *xp;
    int64_t T;
    float *Y;
} packed_job;

/* Rows [r0, r1): one call over all of them when the tokens fit one pass (the
 * kernel streams the rows, prefetching ahead), else tile by tile, so a
 * tile's weights are still in cache for its next max_t tokens. */
static void packed_span(void *ctx, int64_t r0, int64_t r1) {
    const packed_job *j = ctx;
    const int64_t step = j->T <= j->g->max_t ? r1 - r0 : LP_ROWGEMM_TILE;
    for (int64_t r = r0; r < r1; r += step) packed_rows(j->g, j->X, j->xp, j->T, j->Y, r, r + step < r1 ? r + step : r1);
}

static lp_status run_packed(const lp_rowgemm *g, const float *X, int64_t T, float *Y) {
    const int64_t ldx = g->ldx, R = g->rows, C = g->cols;
    const size_t bytes = (size_t)(T * ldx) * sizeof(float);
    float *xp = scratch(bytes); /* (T, ldx): X zero-padded */
    if (!xp) return lp_fail(LP_ERR_NOMEM, "%s gemm: cannot allocate %zu bytes of input scratch", g->name, bytes);
    for (int64_t t = 0; t < T; t++) {
        memcpy(xp + t * ldx, X + t * C, (size_t)C * sizeof(float));
        memset(xp + t * ldx + C, 0, (size_t)(ldx - C) * sizeof(float));
    }
    /* which thread runs a row never changes its result, so contiguous spans
     * of tiles are handed out dynamically (core/par.h); tiny layers and one
     * thread enter no OpenMP region */
    packed_job job = {g, X, xp, T, Y};
    lp_par_rows(R, LP_ROWGEMM_TILE, R * C * T, packed_span, &job);
    free(xp);
    return LP_OK;
}

static lp_status run_blas(const lp_rowgemm *g, const float *X, int64_t T, float *Y) {
    if (T > INT_MAX) return lp_fail(LP_ERR_ARG, "%s gemm: T = %lld tokens, expected < 2^31", g->name, (long long)T);
    const int64_t R = g->rows, C = g->cols, ntiles = (R + LP_ROWGEMM_BLAS_TILE - 1) / LP_ROWGEMM_BLAS_TILE;
    const int nth = omp_get_max_threads();
    const size_t per = (size_t)(LP_ROWGEMM_BLAS_TILE * C); /* floats of one tile */
    float *D = scratch(per * (size_t)nth * sizeof(float));
    if (!D)
        return lp_fail(LP_ERR_NOMEM, "%s gemm: cannot allocate %d x %zu bytes for dequantized tiles", g->name, nth,
                       per * sizeof(float));
    /* One lp_sgemm_nt per tile (core/sgemm.h: each output an in-order fma
     * chain), so no result depends on the tiling or the thread count. */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int64_t i = 0; i < ntiles; i++) {
        const int64_t r0 = i * LP_ROWGEMM_BLAS_TILE, nr = R - r0 < LP_ROWGEMM_BLAS_TILE ? R - r0 : LP_ROWGEMM_BLAS_TILE;
        float *d = D + (size_t)omp_get_thread_num() * per;
        g->dequant(g->w, r0, r0 + nr, d);
        if (g->extra_dequant) g->extra_dequant(g->w, r0, r0 + nr, d);
        lp_sgemm_nt(T, nr, C, X, C, d, C, Y + r0, R);
    }
    free(D);
    return LP_OK;
}

lp_status lp_rowgemm_run(const lp_rowgemm *g, const float *X, int64_t T, float *Y, int64_t blas_min_tokens) {
    if (T < 0) return lp_fail(LP_ERR_ARG, "%s gemm: T = %lld tokens, expected >= 0", g->name, (long long)T);
    if (T == 0) return LP_OK;
    return T < blas_min_tokens ? run_packed(g, X, T, Y) : run_blas(g, X, T, Y);
}

void lp_rowgemm_dequant(const lp_rowgemm *g, int64_t r0, int64_t r1, float *out) {
    const int64_t ntiles = (r1 - r0 + LP_ROWGEMM_TILE - 1) / LP_ROWGEMM_TILE;
#pragma omp parallel for schedule(static) if (ntiles > 1 && (r1 - r0) * g->cols > (1 << 16))
    for (int64_t i = 0; i < ntiles; i++) {
        const int64_t a = r0 + i * LP_ROWGEMM_TILE, b = a + LP_ROWGEMM_TILE < r1 ? a + LP_ROWGEMM_TILE : r1;
        g->dequant(g->w, a, b, out + (a - r0) * g->cols);
        if (g->extra_dequant) g->extra_dequant(g->w, a, b, out + (a - r0) * g->cols);
    }
}
