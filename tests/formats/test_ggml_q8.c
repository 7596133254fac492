/*
 * test_ggml_q8.c - GGUF's quantized types with 8-bit activations
 * (format/ggml_q8.h), every legacy and K type:
 *   - the quantizer against its definition written with libm (d = max|x| /
 *     127, nearbyintf, clamp, sums of blocks and halves), zero blocks and
 *     the padding block; the vector copy of it bit for bit;
 *   - lp_ggml_block_codes (the integer form the product is specified on):
 *     sc16 * code + mn16 == the dequantized value for every weight;
 *   - the reference product against the f32 product of the dequantized
 *     weights (lp_ggml_part_dequant) with x rounded: equal to f32 rounding,
 *     so the reference reads the blocks as the format stores them;
 *   - the AVX-512 VNNI kernel against the reference within f32 rounding of
 *     the terms' size, on weights llama.cpp's quantizer made and on random
 *     block bytes (every code pattern), for even and odd block counts, one
 *     to 129 blocks, rows 1, 3 and 17;
 *   - the driver (row spans over 1 and 2 threads) bit for bit the kernel;
 *   - the several-token kernel (prefill under q8-all): five tokens at once,
 *     each against the reference, row ranges, its driver at 1 and 2 threads;
 *   - the switch: one token through the format's traits row runs this
 *     product when lp_set_q8_activations(true), never for several tokens;
 *     under q8-all several tokens run lp_ggml_gemm_q8.
 */
#include "core/cpu.h"
#include "core/half.h"
#include "format/ggml.h"
#include "format/ggml_q8.h"
#include "format/ggml_quants.h"
#include "format/linear.h"
#include "llmpress/model.h"
#include "test.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void check_quantizer(unsigned long long *rng) {
    const int64_t cols = 32 * 7;
    float x[32 * 7];
    for (int64_t i = 0; i < cols; i++) x[i] = test_randn(rng) * (i < 64 ? 1e-3f : 3.0f);
    for (int j = 64; j < 96; j++) x[j] = 0.0f; /* a zero block: d = 0 */
    x[100] = -1e4f;                            /* a large outlier */
    void *buf = malloc(lp_ggml_q8_act_bytes(cols));
    lp_ggml_q8_act a;
    lp_ggml_q8_act_view(cols, buf, &a);
    CHECK(a.nblocks == 8); /* 7 rounded up to a pair */
    CHECK(((uintptr_t)a.xq & 63) == 0);
    memset(a.xq, 0x55, (size_t)a.nblocks * 32);
    lp_ggml_q8_quantize(x, cols, &a);
    for (int64_t b = 0; b < 7; b++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[b * 32 + j]));
        const float d = amax / 127.0f;
        CHECKF(a.d[b] == d, "block %lld: d %g, expected %g", (long long)b, a.d[b], d);
        int32_t s = 0;
        for (int j = 0; j < 32; j++) {
            const float r = d == 0.0f ? 0.0f : fminf(127.0f, fmaxf(-127.0f, nearbyintf(x[b * 32 + j] / d)));
            CHECKF(a.xq[b * 32 + j] == (int8_t)r, "block %lld value %d: %d, expected %g", (long long)b, j,
                   a.xq[b * 32 + j], r);
            s += (int32_t)r;
        }
        CHECK(a.sum[b] == s);
        int32_t h = 0;
        for (int j = 0; j < 16; j++) h += a.xq[b * 32 + j];
        CHECK(a.sum16[2 * b] == h && a.sum16[2 * b + 1] == s - h);
    }
    for (int j = 0; j < 32; j++) CHECK(a.xq[7 * 32 + j] == 0); /* the padding block */
    CHECK(a.d[7] == 0.0f && a.sum[7] == 0 && a.sum16[14] == 0 && a.sum16[15] == 0);
    free(buf);
}

/* The vector quantizer bit for bit the scalar one: random scales per block
 * (1e-30 .. 1e4), zero blocks, halves exactly at .5 of a step (ties to even). */
static void check_quantizer_copy(unsigned long long *rng) {
    if (!lp_cpu_has_avx512vnni()) return;
    const int64_t cols = 32 * 61;
    float *x = malloc((size_t)cols * sizeof(float));
    for (int64_t b = 0; b < cols / 32; b++) {
        const float sc = powf(10.0f, (float)(test_rand_u64(rng) % 35) - 30.0f);
        for (int j = 0; j < 32; j++) x[b * 32 + j] = b % 9 == 4 ? 0.0f : test_randn(rng) * sc;
        if (b % 7 == 3) { /* ties: x = (k + 0.5) d with d = 127 / 127 */
            x[b * 32] = 127.0f;
            for (int j = 1; j < 32; j++) x[b * 32 + j] = (float)((int)(test_rand_u64(rng) % 200) - 100) + 0.5f;
        }
    }
    void *b1 = malloc(lp_ggml_q8_act_bytes(cols)), *b2 = malloc(lp_ggml_q8_act_bytes(cols));
    lp_ggml_q8_act r, v;
    lp_ggml_q8_act_view(cols, b1, &r);
    lp_ggml_q8_act_view(cols, b2, &v);
    lp_ggml_q8_quantize_ref(x, cols, &r);
    lp_ggml_q8_quantize_avx512vnni(x, cols, &v);
    const int64_t nb = r.nblocks;
    CHECK(!memcmp(r.xq, v.xq, (size_t)nb * 32));
    CHECK(!memcmp(r.d, v.d, (size_t)nb * sizeof(float)));
    CHECK(!memcmp(r.sum, v.sum, (size_t)nb * sizeof(int32_t)));
    CHECK(!memcmp(r.sum16, v.sum16, (size_t)nb * 2 * sizeof(int32_t)));
    free(b1);
    free(b2);
    free(x);
}

/* Byte offsets of a block's f16 fields (scales and mins), -1 past the last. */
static void f16_fields(int type, int at[2]) {
    at[0] = 0, at[1] = -1;
    switch (type) {
    case LP_GGML_Q4_1: case LP_GGML_Q5_1: case LP_GGML_Q4_K: case LP_GGML_Q5_K: at[1] = 2; break;
    case LP_GGML_Q2_K: at[0] = 80, at[1] = 82; break;
    case LP_GGML_Q3_K: at[0] = 108; break;
    case LP_GGML_Q6_K: at[0] = 208; break;
    default: break;
    }
}

/* A part of `type`: llama.cpp's quantization of random weights, or random
 * block bytes with finite f16 fields (every code and sub-scale pattern). */
static lp_ggml_part *make_part(int type, int64_t rows, int64_t cols, int random_bytes, unsigned long long *rng) {
    lp_ggml_part *p = NULL;
    if (!random_bytes) {
        float *W = malloc((size_t)(rows * cols) * sizeof(float));
        for (int64_t i = 0; i < rows * cols; i++) W[i] = test_randn(rng) * 0.05f;
        CHECK_OK(lp_ggml_part_quantize(type, W, NULL, rows, cols, &p));
        free(W);
        return p;
    }
    CHECK_OK(lp_ggml_part_alloc(type, rows, cols, &p));
    const size_t bs = (size_t)lp_ggml_type_of(type).bytes;
    int at[2];
    f16_fields(type, at);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = lp_ggml_part_row(p, r);
        for (size_t i = 0; i < p->row_bytes; i++) row[i] = (uint8_t)test_rand_u64(rng);
        for (size_t b = 0; b < p->row_bytes / bs; b++)
            for (int f = 0; f < 2 && at[f] >= 0; f++) {
                const uint16_t d = lp_f32_to_f16((test_randn(rng) + 0.1f) * 0.01f);
                memcpy(row + b * bs + at[f], &d, 2);
            }
    }
    return p;
}

/* Size of the terms the kernel sums (ggml_q8.h, with OFF at its largest,
 * 128): sum_u |sc_u d_b| (sum_j |code_j + 128| |xq_j| + 128 |t_u|) + |mn_u d_b| |t_u|;
 * and lp_ggml_block_codes checked against the dequantized row W on the way. */
static double term_size(const lp_ggml_part *p, const lp_ggml_q8_act *a, int64_t r, const float *W) {
    const lp_ggml_type_info ti = lp_ggml_type_of(p->type);
    const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
    int8_t code[256];
    float sc[16], mn[16];
    double t = 0;
    for (int64_t k = 0; k < p->cols / ti.block; k++) {
        lp_ggml_block_codes(p->type, row + (size_t)k * (size_t)ti.bytes, code, sc, mn);
        for (int u = 0; u < ti.block / 16; u++) {
            const int64_t u0 = k * ti.block + 16 * u;
            const double d = a->d[u0 / 32], ts = fabs((double)a->sum16[u0 / 16]);
            double dot = 0;
            for (int j = 0; j < 16; j++) {
                const float v = sc[u] * (float)code[16 * u + j] + mn[u];
                CHECKF(v == W[u0 + j], "type %d row %lld column %lld: codes give %g, dequantized %g", p->type,
                       (long long)r, (long long)(u0 + j), v, W[u0 + j]);
                dot += fabs((double)code[16 * u + j] + 128) * fabs((double)a->xq[u0 + j]);
            }
            t += fabs(sc[u] * d) * (dot + 128 * ts) + fabs(mn[u] * d) * ts;
        }
    }
    return t;
}

/* The several-token kernel: T = 5 tokens (x rotated and scaled per token)
 * each against the reference within the kernel's bound, a row range
 * writing only its rows; the driver at 1 and 2 threads the kernel's bits. */
static void check_tokens(const lp_ggml_part *p, const float *x, const float *W, unsigned long long *rng) {
    enum { T = 5 };
    const int64_t rows = p->rows, cols = p->cols;
    const size_t per = lp_ggml_q8_act_bytes(cols);
    char *buf = malloc(per * T);
    float *X = malloc((size_t)(T * cols) * sizeof(float)), *Y = malloc((size_t)(T * rows) * sizeof(float));
    float *Yp = malloc((size_t)(T * rows) * sizeof(float)), *yr = malloc((size_t)rows * sizeof(float));
    lp_ggml_q8_act a[T];
    for (int t = 0; t < T; t++) {
        for (int64_t j = 0; j < cols; j++) X[t * cols + j] = x[(j + 37 * t) % cols] * (1.0f + 0.3f * (float)t);
        if (t == 3) X[t * cols] = 50.0f * test_randn(rng); /* an outlier in one block */
        lp_ggml_q8_act_view(cols, buf + (size_t)t * per, &a[t]);
        lp_ggml_q8_quantize(X + t * cols, cols, &a[t]);
    }
    lp_ggml_q8_gemm_avx512vnni(p, a, T, Y, rows, 0, rows);
    for (int t = 0; t < T; t++) {
        lp_ggml_q8_gemv_ref(p, &a[t], yr, 0, rows);
        for (int64_t r = 0; r < rows; r++) {
            const double tol = 4e-6 * term_size(p, &a[t], r, W + r * cols) + 1e-30;
            CHECKF(fabs((double)Y[t * rows + r] - yr[r]) <= tol,
                   "type %d %lldx%lld token %d row %lld: gemm %.9g, ref %.9g (tol %g)", p->type, (long long)rows,
                   (long long)cols, t, (long long)r, Y[t * rows + r], yr[r], tol);
        }
    }
    if (rows >= 6) {
        for (int64_t i = 0; i < T * rows; i++) Yp[i] = -7.0f;
        lp_ggml_q8_gemm_avx512vnni(p, a, T, Yp, rows, 1, rows - 2);
        int diff = 0;
        for (int t = 0; t < T; t++)
            for (int64_t r = 0; r < rows; r++)
                diff += (r >= 1 && r < rows - 2) ? Yp[t * rows + r] != Y[t * rows + r] : Yp[t * rows + r] != -7.0f;
        CHECKF(diff == 0, "type %d: several-token row range wrote wrong rows (%d)", p->type, diff);
    }
    for (int nt = 1; nt <= 2; nt++) {
        omp_set_num_threads(nt);
        CHECK_OK(lp_ggml_gemm_q8(p, X, T, Yp));
        CHECK(!memcmp(Yp, Y, (size_t)(T * rows) * sizeof(float)));
    }
    free(buf), free(X), free(Y), free(Yp), free(yr);
}

static void check_shape(int type, int64_t rows, int64_t cols, int random_bytes, unsigned long long *rng) {
    lp_ggml_part *p = make_part(type, rows, cols, random_bytes, rng);
    float *x = malloc((size_t)cols * sizeof(float)), *xr = malloc((size_t)cols * sizeof(float));
    float *W = malloc((size_t)(rows * cols) * sizeof(float));
    float *yr = malloc((size_t)rows * sizeof(float)), *yk = malloc((size_t)rows * sizeof(float));
    float *yd = malloc((size_t)rows * sizeof(float));
    for (int64_t i = 0; i < cols; i++) x[i] = test_randn(rng);
    if (cols >= 64)
        for (int j = 32; j < 64; j++) x[j] = 0.0f;
    void *buf = malloc(lp_ggml_q8_act_bytes(cols));
    lp_ggml_q8_act a;
    lp_ggml_q8_act_view(cols, buf, &a);
    lp_ggml_q8_quantize(x, cols, &a);
    for (int64_t i = 0; i < cols; i++) xr[i] = a.d[i / 32] * (float)a.xq[i]; /* x as rounded */
    lp_ggml_part_dequant(p, 0, rows, W);
    lp_ggml_q8_gemv_ref(p, &a, yr, 0, rows);
    for (int64_t r = 0; r < rows; r++) { /* the reference reads the format's values */
        double e = 0, mag = 0;
        for (int64_t c = 0; c < cols; c++) {
            e += (double)W[r * cols + c] * xr[c];
            mag += fabs((double)W[r * cols + c] * xr[c]);
        }
        CHECKF(fabs(yr[r] - e) <= 1e-5 * mag + 1e-30, "type %d %lldx%lld row %lld: ref %g, exact %g", type,
               (long long)rows, (long long)cols, (long long)r, yr[r], e);
    }
    if (lp_cpu_has_avx512vnni()) {
        lp_ggml_q8_gemv_avx512vnni(p, &a, yk, 0, rows);
        for (int64_t r = 0; r < rows; r++) {
            const double tol = 4e-6 * term_size(p, &a, r, W + r * cols) + 1e-30;
            CHECKF(fabs((double)yk[r] - yr[r]) <= tol, "type %d %lldx%lld%s row %lld: kernel %.9g, ref %.9g (tol %g)",
                   type, (long long)rows, (long long)cols, random_bytes ? " random bytes" : "", (long long)r, yk[r],
                   yr[r], tol);
        }
        for (int nt = 1; nt <= 2; nt++) { /* the driver: spans of rows, the same values */
            omp_set_num_threads(nt);
            CHECK_OK(lp_ggml_gemv_q8(p, x, yd));
            CHECK(!memcmp(yd, yk, (size_t)rows * sizeof(float)));
        }
        check_tokens(p, x, W, rng);
    } else {
        CHECK_OK(lp_ggml_gemv_q8(p, x, yd));
        CHECK(!memcmp(yd, yr, (size_t)rows * sizeof(float)));
    }
    free(buf);
    free(x);
    free(xr);
    free(W);
    free(yr);
    free(yk);
    free(yd);
    lp_ggml_part_free(p);
}

static void check_switch(unsigned long long *rng) {
    const int64_t rows = 40, cols = 256, T = 3;
    lp_ggml_part *p = make_part(LP_GGML_Q4_0, rows, cols, 0, rng);
    lp_linear l = {.rows = rows, .cols = cols};
    lp_linear_set(&l, &lp_format_ggml, p);
    float x[3 * 256], y[3 * 40], yf[3 * 40], yq[40], yt[3 * 40];
    for (int64_t i = 0; i < T * cols; i++) x[i] = test_randn(rng);
    lp_set_q8_activations(false);
    CHECK_OK(lp_linear_forward(&l, x, 1, yf));
    CHECK_OK(lp_linear_forward(&l, x, T, yt));
    lp_set_q8_activations(true);
    CHECK_OK(lp_linear_forward(&l, x, 1, y));
    if (lp_ggml_q8_supported(p) && lp_cpu_isa() >= LP_ISA_AVX512) {
        CHECK_OK(lp_ggml_gemv_q8(p, x, yq));
        CHECK(!memcmp(y, yq, sizeof(float) * rows)); /* on: this product, exactly */
        CHECK(memcmp(y, yf, sizeof(float) * rows));  /* which is not the f32 one */
    } else {
        CHECK(!memcmp(y, yf, sizeof(float) * rows));
    }
    CHECK_OK(lp_linear_forward(&l, x, T, y)); /* several tokens: the f32 product */
    CHECK(!memcmp(y, yt, sizeof(float) * T * rows));
    lp_set_activations(LP_ACT_Q8_ALL); /* q8-all: several tokens through lp_ggml_gemm_q8 */
    CHECK_OK(lp_linear_forward(&l, x, T, y));
    if (lp_ggml_q8_supported(p) && lp_cpu_isa() >= LP_ISA_AVX512) {
        float yg[3 * 40];
        CHECK_OK(lp_ggml_gemm_q8(p, x, T, yg));
        CHECK(!memcmp(y, yg, sizeof(float) * T * rows));
        CHECK(memcmp(y, yt, sizeof(float) * T * rows));
    } else {
        CHECK(!memcmp(y, yt, sizeof(float) * T * rows));
    }
    lp_set_q8_activations(false);
    lp_linear_free(&l);
}

int main(void) {
    unsigned long long rng = 11;
    check_quantizer(&rng);
    check_quantizer_copy(&rng);
    const int types[] = {LP_GGML_Q4_0, LP_GGML_Q4_1, LP_GGML_Q5_0, LP_GGML_Q5_1, LP_GGML_Q8_0, LP_GGML_IQ4_NL,
                         LP_GGML_Q2_K, LP_GGML_Q3_K, LP_GGML_Q4_K, LP_GGML_Q5_K, LP_GGML_Q6_K};
    const int64_t colss[] = {32, 64, 96, 384, 1056, 4128}, kcolss[] = {256, 512, 2304, 4352}, rowss[] = {1, 3, 17};
    int cases = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const int k = lp_ggml_type_of(types[ti]).block == 256;
        for (size_t ci = 0; ci < (k ? 4 : sizeof colss / sizeof *colss); ci++)
            for (size_t ri = 0; ri < sizeof rowss / sizeof *rowss; ri++)
                for (int rb = 0; rb < 2; rb++, cases++)
                    check_shape(types[ti], rowss[ri], k ? kcolss[ci] : colss[ci], rb, &rng);
    }
    check_switch(&rng);
    CHECK(lp_ggml_q8_covers(LP_GGML_Q4_K) && lp_ggml_q8_covers(LP_GGML_IQ4_NL));
    CHECK(!lp_ggml_q8_covers(LP_GGML_F16) && !lp_ggml_q8_covers(LP_GGML_BF16) && !lp_ggml_q8_covers(LP_GGML_F32));
    printf("ggml q8 product: quantizer, reference and kernel on %d shapes%s\n", cases,
           lp_cpu_has_avx512vnni() ? "" : " (no AVX-512 VNNI: the kernel skipped)");
    TEST_DONE();
}
