/*
 * squeezellm.c - SqueezeLLM: sparse outliers, then per-row
 * sensitivity-weighted k-means lookup tables (the method and our choices
 * are described in squeezellm.h).
 *
 * Design: outliers are picked with two selections (quickselect for the
 * thresholds, so the cost is linear in the layer's size); rows are then
 * independent (OpenMP over rows): sort the row's kept weights, run the 1-D
 * weighted k-means on prefix sums, round the centroids to f16, code every
 * weight (outliers too) by its nearest stored centroid, and store each
 * outlier as its difference from that centroid.
 */
#include "quant/squeezellm.h"

#include "core/half.h"
#include "format/qgroup.h"
#include "core/status_impl.h"
#include "quant/method.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- weighted 1-D k-means ---- */

/* First index in v[0..n) with v[i] > x. */
static int64_t upper_bound(const float *v, int64_t n, float x) {
    int64_t lo = 0, hi = n;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (v[mid] > x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

int lp_kmeans_1d(const float *v, const double *wt, int64_t n, int k, int iters, float *c, double *work) {
    LP_ASSERT(k >= 1 && k <= 16);
    if (n == 0) {
        for (int j = 0; j < k; j++) c[j] = 0.0f;
        return 0;
    }
    double *P0 = work, *P1 = work + n + 1;
    P0[0] = P1[0] = 0.0;
    for (int64_t i = 0; i < n; i++) {
        P0[i + 1] = P0[i] + wt[i];
        P1[i + 1] = P1[i] + wt[i] * (double)v[i];
    }
    /* start: weighted quantiles (k + 1/2) / k of the cumulative weight */
    for (int j = 0, i = 0; j < k; j++) {
        double target = (j + 0.5) / k * P0[n];
        while (i < n - 1 && P0[i + 1] < target) i++;
        c[j] = v[i];
    }
    int it = 0;
    for (; it < iters; it++) {
        int changed = 0;
        int64_t s = 0, end[16];
        for (int j = 0; j < k; j++) /* assignment: by the midpoints of the current centroids */
            end[j] = j == k - 1 ? n : upper_bound(v, n, 0.5f * (c[j] + c[j + 1]));
        for (int j = 0; j < k; j++) {
            int64_t e = end[j] < s ? s : end[j];
            double m = P0[e] - P0[s];
            if (m > 0) {
                float nc = (float)((P1[e] - P1[s]) / m);
                changed |= nc != c[j];
                c[j] = nc;
            }
            s = e;
        }
        if (!changed) break;
    }
    return it;
}

/* ---- outliers ---- */

/* The m-th largest (0-based) of a[0..n), reordering a. */
static float select_desc(float *a, int64_t n, int64_t m) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float piv = a[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > piv) i++;
            while (a[j] < piv) j--;
            if (i <= j) {
                float t = a[i];
                a[i] = a[j];
                a[j] = t;
                i++;
                j--;
            }
        }
        if (m <= j) hi = j;
        else if (m >= i) lo = i;
        else return a[m];
    }
    return a[m];
}

/* Mark (mask = 1) the `count` unmarked entries with the largest score: above
 * the threshold, then equal to it in index order. scratch has n floats. */
static void mark_top(const float *score, const uint8_t *skip, int64_t n, int64_t count, uint8_t *mask,
                     float *scratch) {
    if (count <= 0) return;
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (!skip[i]) scratch[m++] = score[i];
    if (m == 0) return;
    if (count > m) count = m;
    float thr = select_desc(scratch, m, count - 1);
    int64_t got = 0;
    for (int64_t i = 0; i < n; i++)
        if (!skip[i] && score[i] > thr) {
            mask[i] = 1;
            got++;
        }
    for (int64_t i = 0; i < n && got < count; i++)
        if (!skip[i] && !mask[i] && score[i] == thr) {
            mask[i] = 1;
            got++;
        }
}

/* ---- the layer ---- */

typedef struct {
    float v;
    double w;
} pair;

static int cmp_pair(const void *a, const void *b) {
    const pair *x = a, *y = b;
    return (x->v > y->v) - (x->v < y->v);
}

/* Code of the stored centroid nearest to x (lut ascending, k entries). */
static int nearest(const float *lut, int k, float x) {
    int best = 0;
    float bd = fabsf(x - lut[0]);
    for (int j = 1; j < k; j++) {
        float d = fabsf(x - lut[j]);
        if (d < bd) {
            bd = d;
            best = j;
        }
    }
    return best;
}

lp_status lp_squeezellm_quantize(const float *W, int64_t rows, int64_t cols, const float *s, int bits,
                                 double outlier_frac, int iters, lp_qlut *out) {
    const int64_t n = rows * cols;
    const int K = 1 << bits;
    if (bits < 1 || bits > LP_QLUT_MAX_BITS || !(outlier_frac >= 0 && outlier_frac <= 0.1) || iters < 1)
        return lp_fail(LP_ERR_ARG, "squeezellm: bits %d (1..4), outliers %g ([0, 0.1]), iterations %d (>= 1)", bits,
                       outlier_frac, iters);
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(W[i]))
            return lp_fail(LP_ERR_NUMERIC, "squeezellm: W[%lld][%lld] is %g, expected a finite number",
                           (long long)(i / cols), (long long)(i % cols), W[i]);
    double smean = 0.0;
    for (int64_t j = 0; j < cols; j++) {
        if (!(s[j] >= 0) || !isfinite(s[j]))
            return lp_fail(LP_ERR_NUMERIC, "squeezellm: sensitivity of input %lld is %g, expected finite and >= 0",
                           (long long)j, s[j]);
        smean += s[j];
    }
    smean /= (double)cols;
    const double eps = smean > 0 ? 1e-6 * smean : 1.0; /* dead inputs still place their weights */

    /* 1. outliers: 8/9 by |w|, then 1/9 by s_j w^2 among the rest */
    uint8_t *mask = calloc((size_t)n, 1), *none = calloc((size_t)n, 1);
    float *score = calloc((size_t)n, sizeof(float)), *scratch = malloc((size_t)n * sizeof(float));
    if (!mask || !none || !score || !scratch) {
        free(mask), free(none), free(score), free(scratch);
        return lp_fail(LP_ERR_NOMEM, "squeezellm: out of memory for a %lld x %lld layer", (long long)rows,
                       (long long)cols);
    }
    int64_t total = (int64_t)llround(outlier_frac * (double)n), by_mag = total - total / 9;
    for (int64_t i = 0; i < n; i++) score[i] = fabsf(W[i]);
    mark_top(score, none, n, by_mag, mask, scratch);
    for (int64_t i = 0; i < n; i++) score[i] = s[i % cols] * W[i] * W[i];
    mark_top(score, mask, n, total - by_mag, mask, scratch);
    free(none);
    free(score);
    free(scratch);
    int64_t nnz = 0;
    for (int64_t i = 0; i < n; i++) nnz += mask[i];

    lp_status st = lp_qlut_init(out, rows, cols, bits, nnz);
    if (st != LP_OK) {
        free(mask);
        return st;
    }
    for (int64_t r = 0, k = 0; r < rows; r++) {
        out->row_ptr[r] = (int32_t)k;
        for (int64_t j = 0; j < cols; j++) k += mask[r * cols + j];
        out->row_ptr[r + 1] = (int32_t)k;
    }

    /* 2. per row: weighted k-means of the kept weights, codes, outliers */
    const int nth = omp_get_max_threads();
    size_t per = (size_t)cols * (sizeof(pair) + sizeof(float) + 3 * sizeof(double)) + 2 * sizeof(double) +
                 (size_t)(out->blocks * 32);
    per = (per + 63) / 64 * 64; /* each thread's pairs and doubles stay aligned */
    char *buf = calloc((size_t)nth, per);
    if (!buf) {
        free(mask);
        lp_qlut_free(out);
        return lp_fail(LP_ERR_NOMEM, "squeezellm: out of memory for %d row buffers", nth);
    }
#pragma omp parallel for schedule(dynamic, 8) num_threads(nth)
    for (int64_t r = 0; r < rows; r++) {
        char *b0 = buf + per * (size_t)omp_get_thread_num();
        pair *pr = (pair *)b0;                            /* cols */
        double *wt = (double *)(pr + cols);               /* cols */
        double *work = wt + cols;                         /* 2 (cols + 1) */
        float *v = (float *)(work + 2 * (cols + 1));      /* cols */
        uint8_t *codes = (uint8_t *)(v + cols);           /* blocks * 32, padding stays 0 */
        const float *w = W + r * cols;
        const uint8_t *mk = mask + r * cols;
        int64_t m = 0;
        for (int64_t j = 0; j < cols; j++)
            if (!mk[j]) pr[m++] = (pair){w[j], (double)s[j] + eps};
        qsort(pr, (size_t)m, sizeof *pr, cmp_pair);
        for (int64_t i = 0; i < m; i++) {
            v[i] = pr[i].v;
            wt[i] = pr[i].w;
        }
        float c[16], lut[16];
        lp_kmeans_1d(v, wt, m, K, iters, c, work);
        for (int j = 0; j < K; j++) {
            out->lut[(r << bits) + j] = lp_f32_to_f16(c[j]);
            lut[j] = lp_f16_to_f32(out->lut[(r << bits) + j]);
        }
        int32_t k = out->row_ptr[r];
        for (int64_t j = 0; j < cols; j++) {
            codes[j] = (uint8_t)nearest(lut, K, w[j]);
            if (mk[j]) {
                out->col_idx[k] = (int32_t)j;
                out->vals[k++] = lp_f32_to_f16(w[j] - lut[codes[j]]);
            }
        }
        uint32_t *q = out->q + r * out->blocks * bits;
        for (int64_t b = 0; b < out->blocks; b++) lp_qgroup_pack_block(codes + b * 32, bits, q + b * bits);
    }
    free(buf);
    free(mask);
    return LP_OK;
}

/* ---- the registry row ---- */

typedef struct {
    int bits;
    double outliers;
    int kmeans_iters;
} squeezellm_settings;

static const lp_option OPTIONS[] = {
    LP_OPTION_BITS(squeezellm_settings, 1, 4),
    {"outliers", LP_OPT_FLOAT, 0, 0.1, 0.0045, "F", "fraction of weights kept exactly in sparse f16 (0 = dense-only)",
     offsetof(squeezellm_settings, outliers)},
    {"kmeans-iters", LP_OPT_INT, 1, 10000, 50, "N", "weighted k-means iterations per row",
     offsetof(squeezellm_settings, kmeans_iters)},
    {0},
};

static lp_status compress(const lp_compress_args *a, lp_linear *out) {
    const squeezellm_settings *p = a->settings;
    if (!a->H) return lp_fail(LP_ERR_ARG, "squeezellm needs calibration data");
    const int64_t rows = a->rows, cols = a->cols;
    float *s = malloc((size_t)cols * sizeof(float));
    lp_qlut *q = calloc(1, sizeof *q);
    lp_status ok = (s && q) ? LP_OK : lp_fail(LP_ERR_NOMEM, "out of memory");
    double t0 = omp_get_wtime();
    if (ok == LP_OK) {
        for (int64_t j = 0; j < cols; j++) s[j] = a->H[j * cols + j];
        ok = lp_squeezellm_quantize(a->W, rows, cols, s, p->bits, p->outliers, p->kmeans_iters, q);
    }
    a->stats->method += omp_get_wtime() - t0;
    if (ok == LP_OK) {
        lp_linear_set(out, &lp_format_qlut, q);
    } else {
        if (q) lp_qlut_free(q);
        free(q);
    }
    free(s);
    return ok;
}

const lp_method lp_method_squeezellm = {
    .name = "squeezellm",
    .help = "SqueezeLLM: sensitivity-weighted k-means lookup tables + sparse outliers",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .settings_size = sizeof(squeezellm_settings),
    .options = OPTIONS,
    .compress = compress,
};
