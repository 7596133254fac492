/*
 * test_qlut.c - the lookup-table format (qlut.h) and SqueezeLLM
 * (squeezellm.h):
 *  - dequantization equals the definition lut[r][code] + outlier, built from
 *    independently generated codes, for 1..4 bits on a ragged width;
 *  - the reference kernel matches a double-precision product, the AVX-512
 *    kernel matches the reference, each token of a multi-token call is
 *    bit-identical to a one-token call, and the tile + sgemm path agrees;
 *  - views reject every kind of corrupt buffer with LP_ERR_FORMAT, and a
 *    row_ptr that runs past nnz before any outlier is read (the fuzzer's
 *    qlut-row-ptr finding, docs/fuzzing.md);
 *  - 1-D weighted k-means finds separated clusters and follows the weights;
 *  - SqueezeLLM keeps exactly the requested outliers (the largest |w| among
 *    them), reproduces them to f16 rounding, beats per-row uniform RTN on the
 *    sensitivity-weighted error, and weighting by sensitivity lowers that
 *    error compared with unweighted clustering.
 */
#include "test.h"

#include "core/half.h"
#include "format/qgroup_kernels.h"
#include "format/qlut_kernels.h"
#include "format/qgroup.h"
#include "format/qlut.h"
#include "quant/rtn.h"
#include "quant/squeezellm.h"

enum { R = 37, C = 200 }; /* 7 blocks, the last one 8 wide */

/* A random qlut with known codes (R x C) and a few outliers per row. */
static void make_random(lp_qlut *w, int bits, uint8_t *codes, unsigned long long *seed) {
    const int K = 1 << bits;
    int64_t nnz = 0;
    int per_row[R];
    for (int r = 0; r < R; r++) nnz += per_row[r] = (int)(test_rand_u64(seed) % 4);
    CHECK_OK(lp_qlut_init(w, R, C, bits, nnz));
    int32_t k = 0;
    for (int r = 0; r < R; r++) {
        for (int j = 0; j < K; j++) w->lut[r * K + j] = lp_f32_to_f16((float)(0.1 * test_randn(seed)));
        uint8_t v[7 * 32] = {0};
        for (int c = 0; c < C; c++) v[c] = codes[r * C + c] = (uint8_t)(test_rand_u64(seed) % (unsigned)K);
        for (int b = 0; b < 7; b++) lp_qgroup_pack_block(v + b * 32, bits, w->q + (r * 7 + b) * bits);
        w->row_ptr[r] = k;
        for (int i = 0; i < per_row[r]; i++) { /* increasing columns */
            w->col_idx[k] = 50 * i + (int32_t)(test_rand_u64(seed) % 50);
            w->vals[k++] = lp_f32_to_f16((float)test_randn(seed));
        }
    }
    w->row_ptr[R] = k;
}

static void check_kernels(int bits, unsigned long long *seed) {
    lp_qlut w;
    uint8_t *codes = malloc(R * C);
    make_random(&w, bits, codes, seed);
    const int K = 1 << bits;

    /* dequant == definition */
    float *D = malloc((size_t)(R * C) * sizeof(float));
    lp_qlut_dequant(&w, 0, R, D);
    int bad = 0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float want = lp_f16_to_f32(w.lut[r * K + codes[r * C + c]]);
            for (int32_t k = w.row_ptr[r]; k < w.row_ptr[r + 1]; k++)
                if (w.col_idx[k] == c) want += lp_f16_to_f32(w.vals[k]);
            bad += D[r * C + c] != want;
        }
    CHECKF(bad == 0, "w%d: %d dequantized values differ from the definition", bits, bad);
    const lp_qkernels *k512;
    if (lp_qkernels_select("avx512", &k512) == LP_OK) { /* the dense part, bit for bit */
        float *A = malloc((size_t)(R * C) * sizeof(float)), *B = malloc((size_t)(R * C) * sizeof(float));
        lp_qlut_dequant_ref(&w, 0, R, A);
        lp_qlut_dequant_avx512(&w, 3, R, B + 3 * C);
        memcpy(B, A, 3 * C * sizeof(float));
        CHECKF(!memcmp(A, B, (size_t)(R * C) * sizeof(float)), "w%d: AVX-512 dequantization differs", bits);
        free(A);
        free(B);
    }

    /* products: T = 1..6 tokens */
    enum { T = 6 };
    float *X = malloc(T * C * sizeof(float)), *Yr = malloc(T * R * sizeof(float)), *Y = malloc(T * R * sizeof(float));
    float *Y1 = malloc(R * sizeof(float));
    double *mags = malloc(T * R * sizeof(double)); /* sum of |terms| per output: the scale of rounding */
    for (int i = 0; i < T * C; i++) X[i] = (float)test_randn(seed);
    CHECK_OK(lp_qlut_gemm_ex(&w, X, T, Yr, "ref", 1000));
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) {
            double acc = 0, mag = 0;
            for (int c = 0; c < C; c++) {
                acc += (double)D[r * C + c] * X[t * C + c];
                mag += fabs((double)D[r * C + c] * X[t * C + c]);
            }
            mags[t * R + r] = mag > 0 ? mag : 1;
            double e = fabs(acc - Yr[t * R + r]) / mags[t * R + r];
            worst = e > worst ? e : worst;
        }
    CHECKF(worst < 1e-5, "w%d: ref kernel vs double product: %.3g", bits, worst);

    const char *kernels[] = {"ref", "avx2", "avx512"};
    for (int ki = 0; ki < 3; ki++) {
        lp_status st = lp_qlut_gemm_ex(&w, X, T, Y, kernels[ki], 1000);
        if (st == LP_ERR_UNSUPPORTED) continue;
        CHECK_OK(st);
        worst = 0;
        for (int i = 0; i < T * R; i++) {
            double e = fabs((double)Y[i] - Yr[i]) / mags[i];
            worst = e > worst ? e : worst;
        }
        CHECKF(worst < 1e-5, "w%d: %s vs ref: %.3g", bits, kernels[ki], worst);
        for (int t = 0; t < T; t++) { /* per token, T does not matter */
            CHECK_OK(lp_qlut_gemm_ex(&w, X + t * C, 1, Y1, kernels[ki], 1000));
            CHECKF(!memcmp(Y1, Y + t * R, R * sizeof(float)), "w%d %s: token %d of %d differs from T = 1", bits,
                   kernels[ki], t, T);
        }
    }
    CHECK_OK(lp_qlut_gemm_ex(&w, X, T, Y, NULL, 1)); /* tiles + sgemm */
    worst = 0;
    for (int i = 0; i < T * R; i++) {
        double e = fabs((double)Y[i] - Yr[i]) / mags[i];
        worst = e > worst ? e : worst;
    }
    CHECKF(worst < 1e-5, "w%d: sgemm path vs ref: %.3g", bits, worst);
    CHECK(lp_qlut_nbytes(&w) == (size_t)(R * 7 * bits * 4 + R * K * 2 + (R + 1) * 4 + w.nnz * 6));

    /* corrupt views */
    const size_t qb = lp_qlut_q_bytes(R, C, bits), lb = (size_t)R * K * 2, pb = (R + 1) * 4;
    const size_t cb = (size_t)w.nnz * 4, vb = (size_t)w.nnz * 2;
    lp_qlut v;
    CHECK_OK(lp_qlut_view(&v, R, C, bits, w.nnz, w.q, qb, w.lut, lb, w.row_ptr, pb, w.col_idx, cb, w.vals, vb));
    CHECK(lp_qlut_view(&v, R, C, bits, w.nnz, w.q, qb - 4, w.lut, lb, w.row_ptr, pb, w.col_idx, cb, w.vals, vb) ==
          LP_ERR_FORMAT);
    CHECK(lp_qlut_view(&v, R, C, 5, w.nnz, w.q, qb, w.lut, lb, w.row_ptr, pb, w.col_idx, cb, w.vals, vb) ==
          LP_ERR_FORMAT);
    uint16_t l0 = w.lut[3];
    w.lut[3] = 0x7e00; /* f16 NaN */
    CHECK(lp_qlut_view(&v, R, C, bits, w.nnz, w.q, qb, w.lut, lb, w.row_ptr, pb, w.col_idx, cb, w.vals, vb) ==
              LP_ERR_FORMAT && strstr(lp_last_error(), "not finite"));
    w.lut[3] = l0;
    int r1 = 0;
    while (w.row_ptr[r1 + 1] - w.row_ptr[r1] < 2) r1++; /* a row with two outliers */
    int32_t k0 = w.row_ptr[r1], c0 = w.col_idx[k0];
    w.col_idx[k0] = w.col_idx[k0 + 1]; /* not increasing */
    CHECK(lp_qlut_view(&v, R, C, bits, w.nnz, w.q, qb, w.lut, lb, w.row_ptr, pb, w.col_idx, cb, w.vals, vb) ==
              LP_ERR_FORMAT && strstr(lp_last_error(), "increasing"));
    w.col_idx[k0] = C; /* out of range */
    CHECK(lp_qlut_view(&v, R, C, bits, w.nnz, w.q, qb, w.lut, lb, w.row_ptr, pb, w.col_idx, cb, w.vals, vb) ==
          LP_ERR_FORMAT);
    w.col_idx[k0] = c0;
    int32_t p0 = w.row_ptr[r1 + 1];
    w.row_ptr[r1 + 1] = w.row_ptr[r1] - 1; /* decreasing */
    CHECK(lp_qlut_view(&v, R, C, bits, w.nnz, w.q, qb, w.lut, lb, w.row_ptr, pb, w.col_idx, cb, w.vals, vb) ==
          LP_ERR_FORMAT);
    w.row_ptr[r1 + 1] = p0;
    w.row_ptr[R]--; /* does not end at nnz */
    CHECK(lp_qlut_view(&v, R, C, bits, w.nnz, w.q, qb, w.lut, lb, w.row_ptr, pb, w.col_idx, cb, w.vals, vb) ==
          LP_ERR_FORMAT);
    w.row_ptr[R]++;
    uint16_t v0 = w.vals[k0];
    w.vals[k0] = 0x7c00; /* +inf */
    CHECK(lp_qlut_view(&v, R, C, bits, w.nnz, w.q, qb, w.lut, lb, w.row_ptr, pb, w.col_idx, cb, w.vals, vb) ==
          LP_ERR_FORMAT);
    w.vals[k0] = v0;

    free(X), free(Y), free(Yr), free(Y1), free(D), free(codes), free(mags);
    lp_qlut_free(&w);
}

/* Regression (fuzz_checkpoint's qlut-row-ptr finding, docs/fuzzing.md):
 * lp_qlut_view walked row r's outliers col_idx[row_ptr[r] .. row_ptr[r+1])
 * before it had bounded row_ptr by nnz, so a row_ptr rising past nnz and
 * falling back to it read past col_idx and vals. Both inputs must now be
 * refused with LP_ERR_FORMAT naming row_ptr. col_idx and vals lie in larger
 * buffers (the view is told nnz entries): the unfixed loop's reads past nnz
 * then stay in memory the test owns, and find a column that does not
 * increase (0 after 0, 0 after 999), so it failed with "outlier k of row r
 * has column 0", which does not name row_ptr. */
static void check_row_ptr_bounds(void) {
    struct {
        const char *what;
        int64_t rows, cols;
        int bits;
        int64_t nnz;
        int32_t row_ptr[5];
    } cases[] = {
        {"[0, 0, 0, 65, 1], nnz 1 (the fuzzer's input)", 4, 33, 4, 1, {0, 0, 0, 65, 1}},
        {"[0, 2147483647, 1000], nnz 1000 (a checkpoint that read past its mapping)", 2, 4096, 1, 1000,
         {0, 2147483647, 1000}},
    };
    enum { PAD = 128 }; /* entries past nnz the unfixed loop reads (65 - 1 or 1001 - 1000) */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t rows = cases[i].rows, cols = cases[i].cols, nnz = cases[i].nnz;
        const int bits = cases[i].bits;
        const size_t qb = lp_qlut_q_bytes(rows, cols, bits), lb = ((size_t)rows << bits) * 2;
        uint32_t *q = calloc(1, qb);
        uint16_t *lut = calloc(1, lb), *vals = calloc((size_t)nnz + PAD, sizeof *vals); /* f16 zeros: finite */
        int32_t *ci = calloc((size_t)nnz + PAD, sizeof *ci), rp[5];
        for (int64_t k = 0; k < nnz; k++) ci[k] = (int32_t)k; /* increasing within any one row */
        const size_t pb = (size_t)(rows + 1) * 4, cb = (size_t)nnz * 4, vb = (size_t)nnz * 2;
        lp_qlut v;
        /* the same buffers with all the outliers in the last row are a valid view */
        for (int64_t r = 0; r < rows; r++) rp[r] = 0;
        rp[rows] = (int32_t)nnz;
        CHECK_OK(lp_qlut_view(&v, rows, cols, bits, nnz, q, qb, lut, lb, rp, pb, ci, cb, vals, vb));
        memcpy(rp, cases[i].row_ptr, pb);
        memset(&v, 0xa5, sizeof v);
        const lp_status st = lp_qlut_view(&v, rows, cols, bits, nnz, q, qb, lut, lb, rp, pb, ci, cb, vals, vb);
        CHECKF(st == LP_ERR_FORMAT && strstr(lp_last_error(), "row_ptr"),
               "row_ptr %s: status %d, message '%s'; expected LP_ERR_FORMAT naming row_ptr", cases[i].what, (int)st,
               st == LP_OK ? "" : lp_last_error());
        CHECKF(!v.q && !v.col_idx && v.nnz == 0, "row_ptr %s: a refused view is not left empty", cases[i].what);
        free(q), free(lut), free(vals), free(ci);
    }
}

/* sum_j s_j (w - w_hat)^2 over the whole matrix. */
static double weighted_err(const float *W, const float *Wq, const float *s, int64_t rows, int64_t cols) {
    double e = 0;
    for (int64_t i = 0; i < rows * cols; i++) e += s[i % cols] * ((double)W[i] - Wq[i]) * ((double)W[i] - Wq[i]);
    return e;
}

static void check_kmeans(unsigned long long *seed) {
    /* four separated clusters */
    enum { N = 400 };
    float v[N], c[4];
    double wt[N];
    const float centers[4] = {-3.0f, -1.0f, 0.5f, 2.0f};
    for (int i = 0; i < N; i++) {
        v[i] = centers[i / 100] + (float)(0.05 * test_randn(seed));
        wt[i] = 1.0;
    }
    for (int i = 1; i < N; i++) /* insertion sort: clusters barely overlap */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            float t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    double work[2 * (N + 1)];
    lp_kmeans_1d(v, wt, N, 4, 50, c, work);
    for (int k = 0; k < 4; k++) CHECKF(fabsf(c[k] - centers[k]) < 0.02f, "centroid %d: %g, want %g", k, c[k], centers[k]);
    /* one cluster of two points, one weighted 9x: the centroid sits at 0.9 */
    float v2[2] = {0.0f, 1.0f};
    double w2[2] = {1.0, 9.0};
    lp_kmeans_1d(v2, w2, 2, 1, 10, c, work);
    CHECKF(fabsf(c[0] - 0.9f) < 1e-6f, "weighted mean %g, want 0.9", c[0]);
}

static void check_squeezellm(unsigned long long *seed) {
    enum { RR = 64, CC = 256 };
    float *W = malloc(RR * CC * sizeof(float)), *s = malloc(CC * sizeof(float)), *ones = malloc(CC * sizeof(float));
    float *D = malloc(RR * CC * sizeof(float));
    for (int i = 0; i < RR * CC; i++) {
        double g = test_randn(seed);
        W[i] = (float)(0.02 * g * (test_rand_u64(seed) % 100 == 0 ? 8.0 : 1.0)); /* heavy tail */
    }
    for (int j = 0; j < CC; j++) {
        s[j] = (float)(j % 16 == 0 ? 50.0 : 0.5 + (j % 7) * 0.1); /* a few very sensitive inputs */
        ones[j] = 1.0f;
    }
    for (int bits = 2; bits <= 4; bits++) {
        lp_qlut q, qu, q0;
        const double frac = 0.01;
        CHECK_OK(lp_squeezellm_quantize(W, RR, CC, s, bits, frac, 50, &q));
        CHECKF(q.nnz == (int64_t)llround(frac * RR * CC), "w%d: %lld outliers, want %lld", bits, (long long)q.nnz,
               (long long)llround(frac * RR * CC));
        lp_qlut_dequant(&q, 0, RR, D);
        /* the largest |w| (8/9 of the budget) are all outliers, reproduced to f16 rounding */
        float *mag = malloc(RR * CC * sizeof(float));
        for (int i = 0; i < RR * CC; i++) mag[i] = fabsf(W[i]);
        int64_t nmag = q.nnz - q.nnz / 9, missing = 0, inexact = 0;
        for (int64_t n = 0; n < nmag; n++) {
            int best = 0;
            for (int i = 1; i < RR * CC; i++) best = mag[i] > mag[best] ? i : best;
            mag[best] = -1.0f;
            int r = best / CC, c = best % CC, found = 0;
            for (int32_t k = q.row_ptr[r]; k < q.row_ptr[r + 1]; k++) found |= q.col_idx[k] == c;
            missing += !found;
            inexact += fabsf(D[best] - W[best]) > 1e-3f * fabsf(W[best]);
        }
        free(mag);
        CHECKF(missing == 0 && inexact == 0, "w%d: %lld of the largest weights are not outliers, %lld inexact", bits,
               (long long)missing, (long long)inexact);
        double e_sq = weighted_err(W, D, s, RR, CC);

        /* sensitivity weighting helps the weighted error */
        CHECK_OK(lp_squeezellm_quantize(W, RR, CC, ones, bits, frac, 50, &qu));
        lp_qlut_dequant(&qu, 0, RR, D);
        double e_unw = weighted_err(W, D, s, RR, CC);
        CHECKF(e_sq < e_unw, "w%d: weighted %.4g not below unweighted %.4g", bits, e_sq, e_unw);

        /* non-uniform tables beat per-row uniform RTN with the same code bits, even without outliers */
        CHECK_OK(lp_squeezellm_quantize(W, RR, CC, s, bits, 0.0, 50, &q0));
        CHECK(q0.nnz == 0);
        lp_qlut_dequant(&q0, 0, RR, D);
        double e_noout = weighted_err(W, D, s, RR, CC);
        lp_qgroup rq;
        CHECK_OK(lp_qgroup_init(&rq, RR, CC, bits, -1, 0));
        CHECK_OK(lp_rtn_quantize(W, &rq));
        lp_qgroup_dequant(&rq, 0, RR, D);
        double e_rtn = weighted_err(W, D, s, RR, CC);
        CHECKF(e_noout < e_rtn && e_sq < e_noout, "w%d: k-means %.4g, with outliers %.4g, RTN %.4g", bits, e_noout,
               e_sq, e_rtn);
        printf("w%d: weighted error  RTN %.4g  k-means %.4g  + outliers %.4g  (unweighted k-means + outliers %.4g)\n",
               bits, e_rtn, e_noout, e_sq, e_unw);
        lp_qgroup_free(&rq);
        lp_qlut_free(&q);
        lp_qlut_free(&qu);
        lp_qlut_free(&q0);
    }
    W[5] = NAN;
    lp_qlut q;
    CHECK(lp_squeezellm_quantize(W, RR, CC, s, 3, 0.01, 50, &q) == LP_ERR_NUMERIC);
    free(W), free(s), free(ones), free(D);
}

int main(void) {
    unsigned long long seed = 99;
    for (int bits = 1; bits <= 4; bits++) check_kernels(bits, &seed);
    check_row_ptr_bounds();
    check_kmeans(&seed);
    check_squeezellm(&seed);
    TEST_DONE();
}
