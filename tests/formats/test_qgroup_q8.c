/*
 * test_qgroup_q8.c - the q8 decode product (format/qgroup_q8.h): quantizer,
 * scalar reference, AVX-512 VNNI kernel and OpenMP driver.
 *
 * Checks, on random packed weights (random q, zeros and f16 scales of both
 * signs) for b = 2, 3 (two planes), 4, 8, sym and asym, groups 128 / 256 / per-channel,
 * cols 172 / 384 / 1024 / 4000 / 4001 / 4100 (ragged chunks and blocks) and
 * rows 1 / 2 / 13 (not multiples of the kernel's 4-row pass):
 *   - the quantizer (_ref; the vector one must give the same bits): every |xq| <= 127, max |xq| = 127 in each nonzero
 *     chunk, S_c = sum xq, and for every column j (found through the lane
 *     order, so a wrong order fails) |x_j - d_c xq_j| <= d_c (1/2 + 2^-17);
 *   - _ref against the exact (double) product of dequant(W) with the
 *     ORIGINAL x, within the bound derived from that rounding:
 *     sum_c d_c (1/2 + 2^-17) sum_{j in c} |w_rj|  +  (C + 3) 2^-24 M,
 *     M = sum_j |s| |q - z| |d_c xq_j| (the _ref's own f32 rounding);
 *   - the VNNI kernel against _ref: |y - y_ref| <= 1e-6 M' with
 *     M' = sum_j |s| (q + z) |d_c xq_j|, the size of the terms the kernel
 *     adds (it splits q xq - z S into two f32 sums, so a row whose integer
 *     parenthesis cancels is reached by cancellation); the largest ratio
 *     seen is printed;
 *   - a row range [r0, r1) writes exactly those rows; garbage in the padding
 *     values of the last block changes nothing; weights that end right
 *     before an unmapped page are read without a fault (masked loads);
 *   - the several-token kernel (prefill) the same way, five tokens at once,
 *     each against _ref, and a row range writing only its rows;
 *   - the driver (W3 and W4): bit-identical with 1 and 2 OpenMP threads and
 *     to its kernel called directly; x = 0 gives y = 0 exactly; x scaled by 1e30
 *     and 1e-30 and chunks of very different sizes stay within the bounds;
 *     subnormal x (d_c rounded so that x / d_c exceeds 127) is clamped, gives
 *     finite y and the same bits from both quantizers; shapes not covered
 *     are refused; lp_qgroup_gemm_q8 at 1 and 2 threads the same bits as
 *     its kernel per token.
 * Without AVX-512 VNNI the kernel checks print SKIP and the rest runs.
 */
#include "core/cpu.h"
#include "core/half.h"
#include "format/qgroup_q8.h"
#include "test.h"
#include "test_qgroup_pad.h"

#include <float.h>
#include <omp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static unsigned long long g_rng = 8088;
static double g_worst_kernel = 0.0; /* largest |y - y_ref| / M' seen */

static void random_weight(lp_qgroup *w, int64_t rows, int64_t cols, int bits, int group, int sym) {
    CHECK_OK(lp_qgroup_init(w, rows, cols, bits, group, sym));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            lp_qgroup_set(w, r, c, (unsigned)(test_rand_u64(&g_rng) & ((1u << bits) - 1)));
    for (int64_t i = 0; i < rows * w->ngroups; i++) {
        float s = 0.001f + 0.1f * (float)(test_rand_u64(&g_rng) % 1000) / 1000.0f;
        if (test_rand_u64(&g_rng) % 8 == 0) s = -s;
        w->scales[i] = lp_f32_to_f16(s);
        if (!sym) w->zeros[i] = (uint8_t)(test_rand_u64(&g_rng) % (1u << bits));
    }
}

/* Random values in the padding of each row's last block (chunk at b = 3). */
static void garble_padding(lp_qgroup *w) { garble_qgroup_padding(w, &g_rng); }

static int64_t group_of(const lp_qgroup *w, int64_t col) { return col / w->group; }

static double wval(const lp_qgroup *w, int64_t r, int64_t c) {
    const int64_t g = group_of(w, c);
    return (double)lp_f16_to_f32(w->scales[r * w->ngroups + g]) * ((int)lp_qgroup_get(w, r, c) - lp_qgroup_zero(w, r, g));
}

/* The quantizer's invariants (see the top); pos[col] = lane position. */
static void check_quantizer(const lp_qgroup *w, const float *x, const lp_q8_act *a) {
    int pos2[2][LP_Q8_CHUNK]; /* [whole] */
    for (int p = 0; p < LP_Q8_CHUNK; p++)
        for (int k = 0; k < 2; k++) pos2[k][lp_qgroup_q8_lane_col(w->bits, k, p)] = p;
    int bad = 0;
    for (int64_t c = 0; c < a->nchunks; c++) {
        const int *pos = pos2[lp_qgroup_q8_whole(w, c)];
        const int8_t *q = a->xq + c * LP_Q8_CHUNK;
        int32_t s = 0;
        int qmax = 0;
        for (int p = 0; p < LP_Q8_CHUNK; p++) {
            s += q[p];
            qmax = abs(q[p]) > qmax ? abs(q[p]) : qmax;
            bad += q[p] < -127;
        }
        bad += s != a->sum[c];
        bad += a->d[c] != 0.0f && a->d[c] >= FLT_MIN && qmax != 127;
        for (int i = 0; i < LP_Q8_CHUNK; i++) {
            const int64_t j = c * LP_Q8_CHUNK + i;
            const double xj = j < w->cols ? x[j] : 0.0, d = a->d[c];
            if (d >= FLT_MIN) bad += fabs(xj - d * q[pos[i]]) > d * (0.5 + 0x1p-17);
            else bad += q[pos[i]] != 0 && d == 0.0;
        }
    }
    CHECKF(bad == 0, "quantizer: %d violations (b=%d group=%d cols=%lld)", bad, w->bits, w->group, (long long)w->cols);
}

/* Exact y (double, original x), the activation-rounding bound of each row,
 * and the magnitudes M (|q - z|) and M' (q + z) of the terms. */
static void exact_and_bounds(const lp_qgroup *w, const float *x, const lp_q8_act *a, int64_t r, double *ex,
                             double *bound, double *m, double *m2) {
    int pos[2][LP_Q8_CHUNK]; /* [whole] */
    for (int p = 0; p < LP_Q8_CHUNK; p++)
        for (int k = 0; k < 2; k++) pos[k][lp_qgroup_q8_lane_col(w->bits, k, p)] = p;
    double e = 0, b = 0, mm = 0, mm2 = 0;
    for (int64_t j = 0; j < w->cols; j++) {
        const int64_t c = j / LP_Q8_CHUNK, g = group_of(w, j);
        const double wv = wval(w, r, j), s = fabs((double)lp_f16_to_f32(w->scales[r * w->ngroups + g]));
        const double xq = (double)a->d[c] * a->xq[c * LP_Q8_CHUNK + pos[lp_qgroup_q8_whole(w, c)][j % LP_Q8_CHUNK]];
        const int q = (int)lp_qgroup_get(w, r, j), z = lp_qgroup_zero(w, r, g);
        e += wv * x[j];
        b += (double)a->d[c] * (0.5 + 0x1p-17) * fabs(wv);
        mm += s * abs(q - z) * fabs(xq);
        mm2 += s * (q + z) * fabs(xq);
    }
    *ex = e;
    *bound = b + (double)(a->nchunks + 3) * 0x1p-24 * mm;
    *m = mm;
    *m2 = mm2;
}

/* The several-token kernel (prefill): T = 5 tokens (x rotated and scaled
 * per token), each against _ref within the kernel bound, a row range
 * writing only its rows of every token. */
static double g_worst_tokens = 0.0;
static void check_tokens(const lp_qgroup *w, const float *x, const char *what) {
    enum { T = 5 };
    const int64_t rows = w->rows, cols = w->cols;
    const size_t per = lp_qgroup_q8_act_bytes(w);
    char *buf = malloc(per * T);
    float *xt = malloc((size_t)(T * cols) * sizeof(float));
    float *Y = malloc((size_t)(T * rows) * sizeof(float)), *Yp = malloc((size_t)(T * rows) * sizeof(float));
    float *yr = malloc((size_t)rows * sizeof(float));
    lp_q8_act a[T];
    for (int t = 0; t < T; t++) {
        for (int64_t j = 0; j < cols; j++) xt[t * cols + j] = x[(j + 37 * t) % cols] * (1.0f + 0.3f * (float)t);
        lp_qgroup_q8_act_view(w, buf + (size_t)t * per, &a[t]);
        lp_qgroup_q8_quantize_ref(w, xt + t * cols, &a[t]);
    }
    lp_qgroup_q8_gemm_avx512vnni(w, a, T, Y, rows, 0, rows);
    int bad = 0;
    for (int t = 0; t < T; t++) {
        lp_qgroup_q8_gemv_ref(w, &a[t], yr, 0, rows);
        for (int64_t r = 0; r < rows; r++) {
            double ex, bound, m, m2;
            exact_and_bounds(w, xt + t * cols, &a[t], r, &ex, &bound, &m, &m2);
            const double err = fabs((double)Y[t * rows + r] - yr[r]);
            if (m2 > 0 && err / m2 > g_worst_tokens) g_worst_tokens = err / m2;
            if (!(err <= 1e-6 * m2) && !bad++)
                fprintf(stderr, "  %s token %d row %lld: gemm %.9g ref %.9g M' %.3g\n", what, t, (long long)r,
                        Y[t * rows + r], yr[r], m2);
        }
    }
    CHECKF(bad == 0, "%s: several-token kernel vs ref (b=%d sym=%d group=%d cols=%lld rows=%lld)", what, w->bits,
           w->sym, w->group, (long long)cols, (long long)rows);
    if (rows >= 6) {
        for (int64_t i = 0; i < T * rows; i++) Yp[i] = -7.0f;
        lp_qgroup_q8_gemm_avx512vnni(w, a, T, Yp, rows, 1, rows - 2);
        int diff = 0;
        for (int t = 0; t < T; t++)
            for (int64_t r = 0; r < rows; r++)
                diff += (r >= 1 && r < rows - 2) ? Yp[t * rows + r] != Y[t * rows + r] : Yp[t * rows + r] != -7.0f;
        CHECKF(diff == 0, "%s: several-token row range wrote wrong rows (%d)", what, diff);
    }
    free(buf);
    free(xt);
    free(Y);
    free(Yp);
    free(yr);
}

/* One shape and one x: quantizer, ref vs exact, kernel vs ref, row ranges. */
static void check_case(const lp_qgroup *w, const float *x, const char *what) {
    const int64_t rows = w->rows;
    void *buf = malloc(lp_qgroup_q8_act_bytes(w));
    lp_q8_act a;
    lp_qgroup_q8_act_view(w, buf, &a);
    lp_qgroup_q8_quantize_ref(w, x, &a);
    CHECK(((uintptr_t)a.xq & 63) == 0);
    check_quantizer(w, x, &a);
    if (lp_qgroup_q8_supported(w)) { /* the vector quantizer: the same bits */
        void *buf2 = malloc(lp_qgroup_q8_act_bytes(w));
        lp_q8_act b;
        lp_qgroup_q8_act_view(w, buf2, &b);
        lp_qgroup_q8_quantize_avx512vnni(w, x, &b);
        const int64_t C = a.nchunks;
        CHECKF(!memcmp(a.xq, b.xq, (size_t)C * LP_Q8_CHUNK) && !memcmp(a.d, b.d, (size_t)C * sizeof(float)) &&
                   !memcmp(a.sum, b.sum, (size_t)C * sizeof(int32_t)) &&
                   !memcmp(a.dsum, b.dsum, (size_t)w->ngroups * sizeof(float)),
               "%s: vector quantizer differs from _ref (b=%d group=%d cols=%lld)", what, w->bits, w->group,
               (long long)w->cols);
        free(buf2);
    }
    float *yr = malloc((size_t)rows * sizeof(float)), *yk = malloc((size_t)(rows + 2) * sizeof(float));
    lp_qgroup_q8_gemv_ref(w, &a, yr, 0, rows);
    int bad_ref = 0, bad_k = 0;
    for (int64_t r = 0; r < rows; r++) {
        double ex, bound, m, m2;
        exact_and_bounds(w, x, &a, r, &ex, &bound, &m, &m2);
        if (!(fabs(yr[r] - ex) <= bound)) {
            if (!bad_ref++) fprintf(stderr, "  %s row %lld: ref %.9g exact %.9g bound %.3g\n", what, (long long)r, yr[r], ex, bound);
        }
    }
    CHECKF(bad_ref == 0, "%s: ref vs exact out of bound in %d rows (b=%d sym=%d group=%d cols=%lld)", what, bad_ref,
           w->bits, w->sym, w->group, (long long)w->cols);
    if (lp_qgroup_q8_supported(w)) {
        for (int64_t r = 0; r < rows + 2; r++) yk[r] = -7.0f; /* sentinels */
        lp_qgroup_q8_gemv_avx512vnni(w, &a, yk, 0, rows);
        for (int64_t r = 0; r < rows; r++) {
            double ex, bound, m, m2;
            exact_and_bounds(w, x, &a, r, &ex, &bound, &m, &m2);
            const double err = fabs((double)yk[r] - yr[r]);
            if (m2 > 0 && err / m2 > g_worst_kernel) g_worst_kernel = err / m2;
            if (!(err <= 1e-6 * m2)) {
                if (!bad_k++) fprintf(stderr, "  %s row %lld: vnni %.9g ref %.9g M' %.3g\n", what, (long long)r, yk[r], yr[r], m2);
            }
        }
        CHECKF(bad_k == 0, "%s: vnni vs ref in %d rows (b=%d sym=%d group=%d cols=%lld rows=%lld)", what, bad_k, w->bits,
               w->sym, w->group, (long long)w->cols, (long long)rows);
        CHECK(yk[rows] == -7.0f && yk[rows + 1] == -7.0f);
        check_tokens(w, x, what);
        /* a range inside: only its rows written, each as in the full call */
        if (rows >= 6) {
            float *yp = malloc((size_t)rows * sizeof(float));
            for (int64_t r = 0; r < rows; r++) yp[r] = -7.0f;
            lp_qgroup_q8_gemv_avx512vnni(w, &a, yp, 1, rows - 2);
            int diff = 0;
            for (int64_t r = 0; r < rows; r++) diff += (r >= 1 && r < rows - 2) ? yp[r] != yk[r] : yp[r] != -7.0f;
            CHECKF(diff == 0, "%s: row range [1, %lld) wrote wrong rows (%d)", what, (long long)rows - 2, diff);
            free(yp);
        }
    }
    free(yr);
    free(yk);
    free(buf);
}

static void check_shapes(void) {
    const int bitss[] = {2, 3, 4, 8}, groups[] = {128, 256, -1};
    const int64_t colss[] = {172, 384, 1024, 4000, 4001, 4100}, rowss[] = {1, 2, 13};
    for (int bi = 0; bi < 4; bi++)
        for (int sym = 0; sym < 2; sym++)
            for (int gi = 0; gi < 3; gi++)
                for (int ci = 0; ci < 6; ci++) {
                    const int64_t rows = rowss[(bi + gi + ci) % 3], cols = colss[ci];
                    lp_qgroup w;
                    random_weight(&w, rows, cols, bitss[bi], groups[gi], sym);
                    CHECK(lp_qgroup_q8_covers(&w));
                    CHECK(lp_qgroup_q8_supported(&w) == (lp_cpu_has_avx512vnni() && lp_cpu_has_gfni()));
                    float *x = malloc((size_t)cols * sizeof(float));
                    for (int64_t j = 0; j < cols; j++) x[j] = test_randn(&g_rng);
                    check_case(&w, x, "randn");
                    garble_padding(&w);
                    check_case(&w, x, "garbled padding");
                    if (bitss[bi] == 4 && ci == 3) { /* W4, 4000 columns: extreme and mixed magnitudes */
                        float *xs = malloc((size_t)cols * sizeof(float));
                        for (int64_t j = 0; j < cols; j++) xs[j] = x[j] * 1e30f;
                        check_case(&w, xs, "x * 1e30");
                        for (int64_t j = 0; j < cols; j++) xs[j] = x[j] * 1e-30f;
                        check_case(&w, xs, "x * 1e-30");
                        /* chunk k: scale 10^(k mod 7 - 3), every 5th chunk zero */
                        for (int64_t j = 0; j < cols; j++) {
                            const int64_t k = j / LP_Q8_CHUNK;
                            xs[j] = k % 5 == 4 ? 0.0f : x[j] * powf(10.0f, (float)(k % 7) - 3.0f);
                        }
                        check_case(&w, xs, "mixed chunks");
                        free(xs);
                    }
                    free(x);
                    lp_qgroup_free(&w);
                }
}

/* The kernel never reads past a row's last valid word: the packed weights
 * end exactly at an unmapped page (a view), with a ragged last chunk. */
static void check_guard_page(int bits) {
    const int64_t rows = 5, cols = 4100; /* 129 blocks: the last chunk has one */
    lp_qgroup src, v;
    random_weight(&src, rows, cols, bits, 128, 0);
    size_t qb, sb, zb;
    CHECK_OK(lp_qgroup_sizes(rows, cols, bits, 128, 0, &qb, &sb, &zb));
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE), span = (qb + pg - 1) / pg * pg;
    char *m = mmap(NULL, span + pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    if (m == MAP_FAILED) return;
    CHECK(mprotect(m + span, pg, PROT_NONE) == 0);
    memcpy(m + span - qb, src.q, qb);
    CHECK_OK(lp_qgroup_view(&v, rows, cols, bits, 128, 0, m + span - qb, qb, src.scales, sb, src.zeros, zb));
    float *x = malloc((size_t)cols * sizeof(float));
    for (int64_t j = 0; j < cols; j++) x[j] = test_randn(&g_rng);
    check_case(&v, x, "guard page");
    free(x);
    lp_qgroup_free(&v);
    munmap(m, span + pg);
    lp_qgroup_free(&src);
}

/* The driver on a bits-bit weight w (101 rows, 1100 columns) and x: the
 * same bits with 1 and 2 OpenMP threads and from its kernel called directly
 * (y1, y2: scratch of 101 floats). */
static void check_threads(const lp_qgroup *w, const float *x, float *y1, float *y2) {
    const int nth = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK_OK(lp_qgroup_gemv_q8(w, x, y1));
    omp_set_num_threads(2);
    CHECK_OK(lp_qgroup_gemv_q8(w, x, y2));
    omp_set_num_threads(nth);
    CHECKF(memcmp(y1, y2, 101 * sizeof(float)) == 0, "b=%d: 1 and 2 threads differ", w->bits);
    void *buf = malloc(lp_qgroup_q8_act_bytes(w));
    lp_q8_act a;
    lp_qgroup_q8_act_view(w, buf, &a);
    lp_qgroup_q8_quantize(w, x, &a);
    if (lp_qgroup_q8_supported(w)) lp_qgroup_q8_gemv_avx512vnni(w, &a, y2, 0, 101);
    else lp_qgroup_q8_gemv_ref(w, &a, y2, 0, 101);
    CHECKF(memcmp(y1, y2, 101 * sizeof(float)) == 0, "b=%d: driver differs from its kernel", w->bits);
    free(buf);
}

/* The OpenMP driver: thread counts, its kernel, x = 0, subnormal x, refusals. */
static void check_driver(void) {
    lp_qgroup w;
    float *x = malloc(1100 * sizeof(float)), *y1 = malloc(101 * sizeof(float)), *y2 = malloc(101 * sizeof(float));
    for (int j = 0; j < 1100; j++) x[j] = test_randn(&g_rng);
    random_weight(&w, 101, 1100, 3, 128, 1); /* 7 tiles: the parallel loop runs */
    check_threads(&w, x, y1, y2);
    lp_qgroup_free(&w);
    random_weight(&w, 101, 1100, 4, 128, 0);
    check_threads(&w, x, y1, y2);
    void *buf = malloc(lp_qgroup_q8_act_bytes(&w));
    lp_q8_act a;
    lp_qgroup_q8_act_view(&w, buf, &a);

    for (int j = 0; j < 1100; j++) x[j] = 0.0f;
    CHECK_OK(lp_qgroup_gemv_q8(&w, x, y1));
    lp_qgroup_q8_quantize(&w, x, &a);
    lp_qgroup_q8_gemv_ref(&w, &a, y2, 0, 101);
    int nz = 0;
    for (int r = 0; r < 101; r++) nz += y1[r] != 0.0f || y2[r] != 0.0f;
    CHECKF(nz == 0, "x = 0 gave %d nonzero outputs", nz);

    /* subnormal x: d_c = 190 * 2^-149 / 127 rounds to 2^-149, x / d_c reaches
     * 190 and is clamped; y finite, both quantizers the same bits */
    for (int j = 0; j < 1100; j++) x[j] = ldexpf((float)(j % 381 - 190), -149);
    CHECK_OK(lp_qgroup_gemv_q8(&w, x, y1));
    lp_qgroup_q8_quantize_ref(&w, x, &a);
    int bad = 0, clamped = 0;
    for (int r = 0; r < 101; r++) bad += !isfinite(y1[r]);
    for (int64_t p = 0; p < a.nchunks * LP_Q8_CHUNK; p++) bad += a.xq[p] < -127, clamped += abs(a.xq[p]) == 127;
    CHECKF(bad == 0 && clamped > 20, "subnormal x: %d non-finite outputs or xq = -128, %d at +-127", bad, clamped);
    if (lp_qgroup_q8_supported(&w)) {
        void *buf2 = malloc(lp_qgroup_q8_act_bytes(&w));
        lp_q8_act b;
        lp_qgroup_q8_act_view(&w, buf2, &b);
        lp_qgroup_q8_quantize_avx512vnni(&w, x, &b);
        CHECK(!memcmp(a.xq, b.xq, (size_t)a.nchunks * LP_Q8_CHUNK) && !memcmp(a.d, b.d, (size_t)a.nchunks * 4));
        free(buf2);
    }
    free(buf);
    lp_qgroup_free(&w);

    /* lp_qgroup_gemm_q8: 7 tokens (quantized in parallel), 1 and 2 threads
     * the same bits, equal to its kernel (or, without VNNI, the _ref) per token */
    random_weight(&w, 101, 1100, 3, 128, 0);
    {
        enum { T = 7 };
        float *X = malloc(T * 1100 * sizeof(float)), *Y1 = malloc(T * 101 * sizeof(float));
        float *Y2 = malloc(T * 101 * sizeof(float)), *Yk = malloc(T * 101 * sizeof(float));
        for (int i = 0; i < T * 1100; i++) X[i] = test_randn(&g_rng);
        omp_set_num_threads(1);
        CHECK_OK(lp_qgroup_gemm_q8(&w, X, T, Y1));
        omp_set_num_threads(2);
        CHECK_OK(lp_qgroup_gemm_q8(&w, X, T, Y2));
        CHECK(!memcmp(Y1, Y2, T * 101 * sizeof(float)));
        const size_t per = lp_qgroup_q8_act_bytes(&w);
        char *abuf = malloc(per * T);
        lp_q8_act acts[T];
        for (int t = 0; t < T; t++) {
            lp_qgroup_q8_act_view(&w, abuf + (size_t)t * per, &acts[t]);
            lp_qgroup_q8_quantize(&w, X + t * 1100, &acts[t]);
        }
        if (lp_qgroup_q8_supported(&w)) lp_qgroup_q8_gemm_avx512vnni(&w, acts, T, Yk, 101, 0, 101);
        else
            for (int t = 0; t < T; t++) lp_qgroup_q8_gemv_ref(&w, &acts[t], Yk + t * 101, 0, 101);
        CHECK(!memcmp(Y1, Yk, T * 101 * sizeof(float)));
        CHECK(lp_qgroup_gemm_q8(&w, X, -1, Y1) == LP_ERR_ARG);
        CHECK_OK(lp_qgroup_gemm_q8(&w, X, 0, Y1));
        free(abuf);
        free(X), free(Y1), free(Y2), free(Yk);
    }
    lp_qgroup_free(&w);

    const int shapes[][2] = {{4, 64}, {3, 32}, {6, 128}, {1, 128}, {5, -1}}; /* bits, group: not covered */
    for (int i = 0; i < 5; i++) {
        random_weight(&w, 4, 1100, shapes[i][0], shapes[i][1], 1);
        CHECK(!lp_qgroup_q8_covers(&w) && !lp_qgroup_q8_supported(&w));
        CHECK(lp_qgroup_gemv_q8(&w, x, y1) == LP_ERR_UNSUPPORTED);
        CHECK(lp_qgroup_gemm_q8(&w, x, 1, y1) == LP_ERR_UNSUPPORTED);
        lp_qgroup_free(&w);
    }
    free(x);
    free(y1);
    free(y2);
}

int main(void) {
    if (!lp_cpu_has_avx512vnni()) printf("SKIP: no AVX-512 VNNI (or LP_KERNEL below avx512): kernel checks skipped\n");
    /* the layout is a permutation of the chunk's columns */
    const int bitss[] = {2, 3, 4, 8};
    for (int bi = 0; bi < 4; bi++)
        for (int whole = 0; whole < 2; whole++) {
            const int b = bitss[bi];
            int seen[LP_Q8_CHUNK] = {0};
            for (int p = 0; p < LP_Q8_CHUNK; p++) seen[lp_qgroup_q8_lane_col(b, whole, p)]++;
            int ok = 1;
            for (int i = 0; i < LP_Q8_CHUNK; i++) ok &= seen[i] == 1;
            CHECKF(ok, "lane order of b=%d (whole %d) is not a permutation", b, whole);
        }
    if (lp_test_failures) TEST_DONE(); /* the checks below index through the order */
    check_shapes();
    for (int bi = 0; bi < 4; bi++) check_guard_page(bitss[bi]);
    check_driver();
    printf("largest |vnni - ref| / M' = %.3g, several tokens %.3g (bound 1e-6)\n", g_worst_kernel, g_worst_tokens);
    TEST_DONE();
}
