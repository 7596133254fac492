/*
 * qgroup_gemm.c - Y = X W^T with W in the packed grouped-integer format.
 *
 * What: the product the qgroup format's traits row runs (lp_qgroup_gemm_ex).
 * Why: a decoder step reads every weight once per token, so speed is memory
 * bandwidth; the packed bytes are what is read, never an f32 copy.
 * Design (T = tokens, B = blocks, G = groups):
 *   - x is copied once per call into a zero-padded buffer xp (T, B*32), in
 *     the kernel's form (its prep_x), and its per-group sums xsum (T, G) are
 *     computed once; kernels then read whole blocks and never see the ragged
 *     end of a row.
 *   - T < blas_min_tokens (lp_qgemm_params, by default the kernel's own):
 *     rows are cut into fixed tiles of ROW_TILE rows, one OpenMP `parallel
 *     for` over the tiles; in each tile the kernel reads each packed block
 *     once for up to LP_QGEMM_MAX_T tokens (gemv_multi), so W streams from
 *     DRAM once per call whatever T is.
 *   - T >= blas_min_tokens: tiles of BLAS_TILE rows are dequantized into a
 *     per-thread scratch tile and multiplied with lp_sgemm_nt (core/sgemm.h),
 *     one call per tile in our parallel loop; only a tile of W per thread is
 *     ever f32. On Zen 5 the packed kernel keeps
 *     up with sgemm to a few hundred tokens (both are FMA-bound and the
 *     kernel has no dequantization pass), hence the high SIMD thresholds.
 * Tile boundaries are fixed multiples from row 0 and every output element is
 * computed by one thread in a fixed order, so the thread count never changes
 * a result.
 */
#include "format/qgroup.h"

#include "core/par.h"
#include "core/sgemm.h"
#include "core/status_impl.h"
#include "format/qgroup_kernels.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum {
    ROW_TILE = 16,   /* rows per OpenMP work item in the packed kernels */
    BLAS_TILE = 64,  /* rows dequantized per sgemm call */
};

/* 64-byte aligned scratch (aligned_alloc wants a multiple of the alignment). */
static float *scratch_alloc(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }

/* sum of x[0..n) in 16 lanes (column c into lane c mod 16), then the lanes
 * in order: loops the compiler vectorizes, where one running sum is an
 * add-latency chain (~4 cycles a column, ~1 us for a 384-column row). The
 * order is fixed by the code, not by the ISA. */
static float group_sum(const float *x, int64_t n) {
    float lane[16] = {0};
    int64_t c = 0;
    for (; c + 16 <= n; c += 16)
        for (int l = 0; l < 16; l++) lane[l] += x[c + l];
    for (int l = 0; c + l < n; l++) lane[l] += x[c + l];
    float s = 0.0f;
    for (int l = 0; l < 16; l++) s += lane[l];
    return s;
}

/* xp (T, B*32): X in the kernel's form; xsum (T, G): group sums. */
static void prepare_x(const lp_qkernels *k, const lp_qgroup *w, const float *X, int64_t T, float *xp,
                      float *xsum) {
    int64_t ldx = lp_qkernels_ldx(w);
    for (int64_t t = 0; t < T; t++) {
        const float *x = X + t * w->cols;
        k->prep_x(w, x, xp + t * ldx);
        for (int64_t g = 0; g < w->ngroups; g++) {
            const int64_t c0 = g * w->group, c1 = c0 + w->group < w->cols ? c0 + w->group : w->cols;
            xsum[t * w->ngroups + g] = group_sum(x + c0, c1 - c0);
        }
    }
}

/* Rows [r0, r1) of Y for all T tokens, LP_QGEMM_MAX_T at a time. */
static void packed_rows(const lp_qkernels *k, const lp_qgroup *w, const float *xp, const float *xsum, int64_t T,
                        float *Y, int64_t r0, int64_t r1) {
    const int64_t rows = w->rows, ldx = lp_qkernels_ldx(w);
    for (int64_t t0 = 0; t0 < T; t0 += LP_QGEMM_MAX_T) {
        const int64_t n = T - t0 < LP_QGEMM_MAX_T ? T - t0 : LP_QGEMM_MAX_T;
        if (n == 1) k->gemv(w, xp + t0 * ldx, xsum + t0 * w->ngroups, Y + t0 * rows, r0, r1);
        else k->gemv_multi(w, n, xp + t0 * ldx, xsum + t0 * w->ngroups, Y + t0 * rows, rows, r0, r1);
    }
}

typedef struct {
    const lp_qkernels *k;
    const lp_qgroup *w;
    const float *xp, *xsum;
    int64_t T;
    float *Y;
} packed_job;

/* A span of rows: one kernel call when its tokens fit one pass (the kernel
 * streams the rows, prefetching ahead); with more, tile by tile, so the
 * tile's weights are still in L1/L2 for the next LP_QGEMM_MAX_T tokens. */
static void packed_span(void *ctx, int64_t r0, int64_t r1) {
    const packed_job *j = ctx;
    const int64_t step = j->T <= LP_QGEMM_MAX_T ? r1 - r0 : ROW_TILE;
    for (int64_t r = r0; r < r1; r += step)
        packed_rows(j->k, j->w, j->xp, j->xsum, j->T, j->Y, r, r + step < r1 ? r + step : r1);
}

static lp_status gemm_packed(const lp_qkernels *k, const lp_qgroup *w, const float *X, int64_t T,
                             float *Y) {
    int64_t ldx = lp_qkernels_ldx(w); /* 512-byte rows: every x vector load is aligned */
    size_t bytes = (size_t)(T * (ldx + w->ngroups)) * sizeof(float);
    /* cache-line aligned: misaligned x loads cost ~1/3 at T = 4; a decode
     * step's input (up to 16 KB) lives on the stack, no malloc per product */
    _Alignas(64) float small[4096];
    float *xp = bytes <= sizeof small ? small : scratch_alloc(bytes);
    if (!xp) return lp_fail(LP_ERR_NOMEM, "qgroup gemm: cannot allocate %zu bytes of input scratch", bytes);
    float *xsum = xp + T * ldx;
    prepare_x(k, w, X, T, xp, xsum);
    /* Which thread runs a row never changes its result, so contiguous spans
     * of tiles are handed out dynamically (core/par.h: a core stolen by
     * another process does not stall the call); tiny layers and one thread
     * enter no OpenMP region. */
    packed_job job = {k, w, xp, xsum, T, Y};
    lp_par_rows(w->rows, ROW_TILE, w->rows * w->cols * T, packed_span, &job);
    if (xp != small) free(xp);
    return LP_OK;
}

static lp_status gemm_blas(const lp_qkernels *k, const lp_qgroup *w, const float *X, int64_t T,
                           float *Y) {
    if (T > INT_MAX) return lp_fail(LP_ERR_ARG, "qgroup gemm: T = %lld tokens, expected < 2^31", (long long)T);
    int64_t rows = w->rows, cols = w->cols, ntiles = (rows + BLAS_TILE - 1) / BLAS_TILE;
    int nth = omp_get_max_threads();
    size_t per = (size_t)(BLAS_TILE * cols) * sizeof(float); /* (BLAS_TILE, cols) f32 rows of W */
    float *D = scratch_alloc(per * (size_t)nth);
    if (!D)
        return lp_fail(LP_ERR_NOMEM, "qgroup gemm: cannot allocate %d x %zu bytes for dequantized tiles",
                       nth, per);
    /* One lp_sgemm_nt per tile (core/sgemm.h: each output an in-order fma
     * chain, so no result depends on the tiling or the thread count). */
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth)
    for (int64_t i = 0; i < ntiles; i++) {
        int64_t r0 = i * BLAS_TILE, nr = rows - r0 < BLAS_TILE ? rows - r0 : BLAS_TILE;
        float *d = D + (size_t)omp_get_thread_num() * (per / sizeof(float));
        k->dequant(w, r0, r0 + nr, d);
        lp_sgemm_nt(T, nr, cols, X, cols, d, cols, Y + r0, rows);
    }
    free(D);
    return LP_OK;
}

lp_qgemm_params lp_qgemm_default_params(void) {
    lp_qgemm_params p = {.kernels = NULL, .blas_min_tokens = 0};
    return p;
}

lp_status lp_qgroup_gemm_ex(const lp_qgroup *w, const float *X, int64_t T, float *Y,
                            const lp_qgemm_params *p) {
    lp_qgemm_params d = lp_qgemm_default_params();
    if (!p) p = &d;
    const lp_qkernels *k = p->kernels ? p->kernels : lp_qkernels_default();
    if (T < 0) return lp_fail(LP_ERR_ARG, "qgroup gemm: T = %lld tokens, expected >= 0", (long long)T);
    if (T == 0) return LP_OK;
    int64_t blas_min = p->blas_min_tokens > 0 ? p->blas_min_tokens : k->blas_min_tokens;
    return T < blas_min ? gemm_packed(k, w, X, T, Y) : gemm_blas(k, w, X, T, Y);
}

lp_status lp_qgroup_gemm(const lp_qgroup *w, const float *X, int64_t T, float *Y) {
    return lp_qgroup_gemm_ex(w, X, T, Y, NULL);
}
