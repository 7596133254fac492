/*
 * make_seeds_checkpoint.c - writes the seeds of fuzz_checkpoint.c: one small
 * valid packed linear per format row and setting that changes its layout
 * (dense f32/f16/bf16, qgroup at every bit width, qmix, qlut, sign,
 * ternary, binary in each of its modes) and sums of 2 and 4 parts, in the harness's input layout
 * (fuzz_checkpoint.c's header comment).
 *
 * Each weight is a small random matrix compressed by the method that makes
 * the format, through the same path `llmpress quantize` uses
 * (lp_settings_parse + lp_method_compress_linear; calibrated methods get
 * the Hessian of random inputs), saved with lp_linear_save as linear "x",
 * read back, and split into the description and a safetensors file of the
 * tensors alone (the harness puts the description back in the metadata).
 * Shapes include ragged ones (columns not a multiple of 32 or of the group).
 *
 * Built with the fuzzers (cmake -DLP_FUZZ=ON ..., target
 * make_seeds_checkpoint); run from the repository root:
 *   build-fuzz/make_seeds_checkpoint tests/fuzz/seeds/checkpoint
 */
#include "core/half.h"
#include "core/status_impl.h"
#include "format/dense.h"
#include "format/dense16.h"
#include "format/linear.h"
#include "format/sparse.h"
#include "format/lowrank.h"
#include "io/safetensors.h"
#include "quant/method.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BASE "x"

static unsigned long long g_seed = 20240615;
static int g_uneven; /* weights of the first group 8x larger, of the last 8x smaller: SliM gives them other bits */

static float randn(void) { /* Box-Muller on a 64-bit LCG */
    g_seed = g_seed * 6364136223846793005ull + 1442695040888963407ull;
    double u1 = ((g_seed >> 11) + 1.0) / 9007199254740993.0;
    g_seed = g_seed * 6364136223846793005ull + 1442695040888963407ull;
    double u2 = (g_seed >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void die(const char *what) {
    fprintf(stderr, "make_seeds_checkpoint: %s: %s\n", what, lp_last_error());
    exit(1);
}

/* A dense f32 linear of random weights. */
static void dense_random(int64_t rows, int64_t cols, lp_linear *l) {
    float *w = malloc((size_t)(rows * cols) * sizeof(float));
    if (!w) die("out of memory");
    for (int64_t i = 0; i < rows * cols; i++) {
        const int64_t c = i % cols;
        w[i] = 0.05f * randn() * (g_uneven && c < 32 ? 8.0f : g_uneven && c >= cols - 32 ? 0.125f : 1.0f);
    }
    *l = (lp_linear){.rows = rows, .cols = cols};
    lp_dense *d;
    if (lp_dense_own(rows, cols, w, &d) != LP_OK || lp_linear_add_part(l, &lp_format_dense, d) != LP_OK)
        die("dense");
}

/* W (rows x cols) compressed with the method spec ("rtn bits=4 group=32"). */
static void compress(const char *spec, int64_t rows, int64_t cols, lp_linear *l) {
    lp_settings *s = NULL;
    if (lp_settings_parse(spec, &s) != LP_OK) die(spec);
    dense_random(rows, cols, l);
    float *H = NULL;
    if (lp_settings_needs_calib(s)) { /* H = 2 X^T X / n of n random inputs, plus a little on the diagonal */
        enum { N = 64 };
        float *X = malloc(sizeof(float) * N * (size_t)cols);
        H = calloc((size_t)(cols * cols), sizeof(float));
        if (!X || !H) die("out of memory");
        for (int64_t i = 0; i < N * cols; i++) X[i] = randn();
        for (int64_t a = 0; a < cols; a++)
            for (int64_t b = 0; b < cols; b++) {
                double acc = 0;
                for (int n = 0; n < N; n++) acc += (double)X[n * cols + a] * X[n * cols + b];
                H[a * cols + b] = (float)(2.0 * acc / N) + (a == b ? 0.01f : 0.0f);
            }
        free(X);
    }
    double err;
    if (lp_method_compress_linear(s, l, H, NULL, &err) != LP_OK) die(spec);
    free(H);
    lp_settings_free(s);
}

/* Move src's parts to the end of dst's. */
static void append(lp_linear *dst, lp_linear *src) {
    for (int k = 0; k < src->nparts; k++)
        if (lp_linear_add_part(dst, src->part[k].fmt, src->part[k].data) != LP_OK) die("add part");
    src->nparts = 0;
    lp_linear_free(src);
}

/* The seed for l: [rows-1][cols-1 LE16, bit 15 = the 520-token check][description]\0[safetensors of the tensors]. */
static void write_seed(const char *dir, const char *name, const lp_linear *l) {
    char full[512], bare[512], out[512];
    snprintf(full, sizeof full, "%s/.full.safetensors", dir);
    snprintf(bare, sizeof bare, "%s/.bare.safetensors", dir);
    snprintf(out, sizeof out, "%s/%s.bin", dir, name);
    lp_st_writer *w = NULL;
    if (lp_st_writer_init(&w) != LP_OK || lp_linear_save(l, w, BASE) != LP_OK || lp_st_writer_save(w, full) != LP_OK)
        die(name);
    lp_st_writer_free(w);
    lp_weights *in = NULL;
    if (lp_weights_open(full, &in) != LP_OK) die(full);
    const char *desc = lp_weights_meta(in, "llmpress.linear." BASE);
    if (!desc) die("no description written");
    if (lp_st_writer_init(&w) != LP_OK) die("writer");
    for (int64_t i = 0; i < lp_weights_count(in); i++) {
        const lp_tensor_view *t = lp_weights_at(in, i);
        if (lp_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data) != LP_OK) die(t->name);
    }
    if (lp_st_writer_save(w, bare) != LP_OK) die(bare);
    lp_st_writer_free(w);
    FILE *fb = fopen(bare, "rb"), *fo = fopen(out, "wb");
    if (!fb || !fo) die(out);
    static int nth;
    const unsigned char big = nth++ % 2 ? 0x80 : 0; /* every other seed asks for the 520-token check */
    const unsigned char v2 = 0x40; /* format version 2, as this build writes */
    const unsigned char head[3] = {(unsigned char)(l->rows - 1), (unsigned char)((l->cols - 1) & 0xff),
                                   (unsigned char)(((l->cols - 1) >> 8) | big | v2)};
    fwrite(head, 1, 3, fo);
    fwrite(desc, 1, strlen(desc) + 1, fo);
    char chunk[4096];
    size_t n, total = 3 + strlen(desc) + 1;
    while ((n = fread(chunk, 1, sizeof chunk, fb)) > 0) {
        fwrite(chunk, 1, n, fo);
        total += n;
    }
    fclose(fb);
    if (fclose(fo) != 0) die(out);
    lp_weights_close(in);
    unlink(full);
    unlink(bare);
    char d[256];
    lp_linear_describe(l, d, sizeof d);
    printf("%-28s %3lld x %-4lld %5zu bytes  %s\n", name, (long long)l->rows, (long long)l->cols, total, d);
    if (total > 8192) {
        fprintf(stderr, "make_seeds_checkpoint: %s is over 8 KB\n", out);
        exit(1);
    }
}

static void one(const char *dir, const char *name, const char *spec, int64_t rows, int64_t cols) {
    lp_linear l;
    compress(spec, rows, cols, &l);
    write_seed(dir, name, &l);
    lp_linear_free(&l);
}

/* A dense part stored as 16-bit (dtype F16 or BF16), from random weights. */
static uint16_t *dense16(int64_t rows, int64_t cols, lp_dtype dt, lp_linear *l) {
    uint16_t *raw = malloc((size_t)(rows * cols) * 2);
    if (!raw) die("out of memory");
    for (int64_t i = 0; i < rows * cols; i++) {
        float v = 0.05f * randn();
        raw[i] = dt == LP_DT_F16 ? lp_f32_to_f16(v) : lp_f32_to_bf16(v);
    }
    *l = (lp_linear){.rows = rows, .cols = cols};
    lp_dense *d;
    if (lp_dense_view(rows, cols, NULL, raw, dt, NULL, &d) != LP_OK || lp_linear_add_part(l, &lp_format_dense, d) != LP_OK)
        die("dense16");
    return raw;
}

/* A dense16 weight of random values in dtype dt. */
static void *dense16_random(int64_t rows, int64_t cols, lp_dtype dt) {
    float *w = malloc((size_t)(rows * cols) * sizeof(float));
    if (!w) die("out of memory");
    for (int64_t i = 0; i < rows * cols; i++) w[i] = 0.05f * randn();
    void *d;
    if (lp_dense16_from_f32(rows, cols, w, dt, &d) != LP_OK) die("dense16");
    free(w);
    return d;
}

/* The data of l's only part, taken out of l (its format in *f). */
static void *take_part(lp_linear *l, const lp_format **f) {
    *f = l->part[0].fmt;
    void *d = l->part[0].data;
    l->nparts = 0;
    lp_linear_free(l);
    return d;
}

/* l = the one lowrank part W = B A (a: K x cols in fa, b: rows x K in fb). */
static void lowrank_linear(int64_t rows, int64_t cols, int64_t K, const lp_format *fa, void *a, const lp_format *fb,
                           void *b, lp_linear *l) {
    void *d;
    *l = (lp_linear){.rows = rows, .cols = cols};
    if (lp_lowrank_make(rows, cols, K, fa, a, fb, b, &d) != LP_OK ||
        lp_linear_add_part(l, &lp_format_lowrank, d) != LP_OK)
        die("lowrank");
}

/* A pruned weight made directly, as the pruning methods make it: n of every m
 * columns kept (n = 0: each weight kept with probability 1/2), values in v's
 * encoding (codes, f16-exact scales and zeros for bits < 16). */
static void sparse_linear(int64_t rows, int64_t cols, int n, int m, lp_sparse_values v, lp_linear *l) {
    static uint64_t s = 0x2545f4914f6cdd1dull;
#define NEXT() (s ^= s << 13, s ^= s >> 7, s ^= s << 17, s)
    const int64_t N = rows * cols;
    uint8_t *keep = calloc((size_t)N, 1), *codes = malloc((size_t)N);
    float *W = malloc((size_t)N * sizeof(float)), *sc = malloc((size_t)N * sizeof(float));
    int *z = malloc((size_t)N * sizeof(int));
    if (!keep || !codes || !W || !sc || !z) die("out of memory");
    const unsigned maxq = v.bits < 16 ? (1u << v.bits) - 1u : 255u;
    for (int64_t i = 0; i < N; i++) {
        W[i] = 0.05f * randn();
        codes[i] = (uint8_t)(NEXT() % (maxq + 1));
        sc[i] = lp_f16_to_f32(lp_f32_to_f16(0.01f * randn()));
        z[i] = (int)(NEXT() % (maxq + 1));
        if (!n) keep[i] = NEXT() & 1;
    }
    for (int64_t b = 0; n && b < N / m; b++) /* n distinct positions of each block */
        for (int k = 0; k < n;) {
            const int64_t at = b * m + (int64_t)(NEXT() % (uint64_t)m);
            if (!keep[at]) keep[at] = 1, k++;
        }
#undef NEXT
    void *d;
    lp_status st = n ? lp_nm_make(rows, cols, n, m, keep, &v, W, codes, sc, z, &d)
                     : lp_bitmap_make(rows, cols, keep, &v, W, codes, sc, z, &d);
    *l = (lp_linear){.rows = rows, .cols = cols};
    if (st != LP_OK || lp_linear_add_part(l, n ? &lp_format_nm : &lp_format_bitmap, d) != LP_OK) die("sparse");
    free(keep), free(codes), free(W), free(sc), free(z);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds_checkpoint DIR   (tests/fuzz/seeds/checkpoint)\n");
        return 2;
    }
    const char *dir = argv[1];
    lp_linear l, m;

    /* dense: f32 from memory, f16 and bf16 as stored */
    dense_random(8, 40, &l);
    write_seed(dir, "dense_f32", &l);
    lp_linear_free(&l);
    uint16_t *raw = dense16(6, 64, LP_DT_F16, &l);
    write_seed(dir, "dense_f16", &l);
    lp_linear_free(&l);
    free(raw);
    raw = dense16(5, 33, LP_DT_BF16, &l);
    write_seed(dir, "dense_bf16", &l);
    lp_linear_free(&l);
    free(raw);

    /* qgroup: every bit width (each packs its planes differently), groups, sym/asym, ragged columns */
    one(dir, "qgroup_w1_g32", "rtn bits=1 group=32", 8, 96);
    one(dir, "qgroup_w2_g64_sym", "rtn bits=2 group=64 sym", 8, 128);
    one(dir, "qgroup_w3_g32_ragged", "rtn bits=3 group=32", 7, 100);
    one(dir, "qgroup_w3_g128_chunks", "rtn bits=3 group=128", 5, 300); /* 2 chunks + 2 plane blocks a row */
    one(dir, "qgroup_w3_perchannel_chunk", "rtn bits=3 group=-1", 4, 128);
    one(dir, "qgroup_w4_perchannel", "rtn bits=4 group=-1", 9, 72);
    one(dir, "qgroup_w5_g32_sym", "rtn bits=5 group=32 sym", 4, 64);
    one(dir, "qgroup_w6_g64", "rtn bits=6 group=64", 4, 128);
    one(dir, "qgroup_w7_g32", "rtn bits=7 group=32", 3, 64);
    one(dir, "qgroup_w8_g32_sym", "rtn bits=8 group=32 sym", 4, 96);
    one(dir, "qgroup_gptq_w4_actorder", "gptq bits=4 group=32 act-order", 8, 64);

    /* qmix (SliM-LLM: bits per group), qlut (SqueezeLLM: per-row table + sparse outliers) */
    g_uneven = 1;
    one(dir, "qmix_w3_g32", "slim bits=3 group=32", 8, 128);
    one(dir, "qmix_w2_g32_sym_ragged", "slim bits=2 group=32 sym", 4, 80);
    one(dir, "qmix_w3_g128", "slim bits=3 group=128", 4, 640);
    g_uneven = 0;
    one(dir, "qlut_w3_outliers", "squeezellm bits=3 outliers=0.02 kmeans-iters=5", 8, 64);
    one(dir, "qlut_w2_dense_only", "squeezellm bits=2 outliers=0 kmeans-iters=3", 5, 40);
    one(dir, "qlut_w4", "squeezellm bits=4 outliers=0.01 kmeans-iters=3", 4, 33);

    /* sign (1 bit + row scale), ternary (two bit planes + group scales) */
    one(dir, "sign", "sign", 8, 64);
    one(dir, "sign_ragged", "sign", 7, 70);
    one(dir, "ternary_g32", "ternary group=32", 8, 64);
    one(dir, "ternary_perchannel_ragged", "ternary group=-1", 6, 50);

    /* binary (BiLLM, ARB-LLM, PB-LLM): sign planes, salient columns, column
     * scales (arb-rc), weights held at 8 bits (pbllm) */
    one(dir, "binary_arb_b32", "arb bin-block=32 arb-iters=3", 8, 64);
    one(dir, "binary_billm", "billm bin-block=64", 6, 128);
    one(dir, "binary_arbx", "arb-x bin-block=32 arb-iters=2", 4, 96);
    one(dir, "binary_arbrc", "arb-rc bin-block=64 arb-iters=2", 5, 64);
    one(dir, "binary_pbllm_held8", "pbllm salient=0.1", 8, 64);
    one(dir, "binary_pbllm_magnitude", "pbllm salient=0.05 salient-by=magnitude", 4, 64);

    /* sums: packed + dense residual, two packed parts, and the most parts a linear holds */
    compress("rtn bits=3 group=32", 8, 64, &l);
    dense_random(8, 64, &m);
    append(&l, &m);
    write_seed(dir, "sum_qgroup_dense", &l);
    lp_linear_free(&l);
    compress("sign", 6, 64, &l);
    compress("ternary group=32", 6, 64, &m);
    append(&l, &m);
    write_seed(dir, "sum_sign_ternary", &l);
    lp_linear_free(&l);
    g_uneven = 1;
    compress("slim bits=3 group=32", 4, 96, &l);
    g_uneven = 0;
    compress("squeezellm bits=2 outliers=0.02 kmeans-iters=3", 4, 96, &m);
    append(&l, &m);
    compress("sign", 4, 96, &m);
    append(&l, &m);
    raw = dense16(4, 96, LP_DT_F16, &m);
    append(&l, &m);
    write_seed(dir, "sum_4parts", &l);
    lp_linear_free(&l);
    free(raw);

    /* dense16 (a 16-bit weight multiplied as such) and lowrank (W = B A), made
     * directly so that every kind of factor is covered: dense16, W4 qgroup
     * from RTN (per channel where the rank is the width), dense f32; a sum of
     * lowrank + dense16 residual */
    const lp_format *fa, *fb;
    void *a, *b;
    l = (lp_linear){.rows = 6, .cols = 40};
    if (lp_linear_add_part(&l, &lp_format_dense16, dense16_random(6, 40, LP_DT_BF16)) != LP_OK) die("dense16");
    write_seed(dir, "dense16_bf16_ragged", &l);
    lp_linear_free(&l);
    l = (lp_linear){.rows = 5, .cols = 64};
    if (lp_linear_add_part(&l, &lp_format_dense16, dense16_random(5, 64, LP_DT_F16)) != LP_OK) die("dense16");
    write_seed(dir, "dense16_f16", &l);
    lp_linear_free(&l);
    lowrank_linear(8, 72, 4, &lp_format_dense16, dense16_random(4, 72, LP_DT_BF16), &lp_format_dense16,
                   dense16_random(8, 4, LP_DT_F16), &l);
    write_seed(dir, "lowrank_dense16", &l);
    lp_linear_free(&l);
    compress("rtn bits=4 group=32", 5, 64, &m);
    a = take_part(&m, &fa);
    compress("rtn bits=4 group=-1", 8, 5, &m);
    b = take_part(&m, &fb);
    lowrank_linear(8, 64, 5, fa, a, fb, b, &l);
    write_seed(dir, "lowrank_qgroup_w4", &l);
    lp_linear_free(&l);
    dense_random(3, 40, &m);
    a = take_part(&m, &fa);
    lowrank_linear(7, 40, 3, fa, a, &lp_format_dense16, dense16_random(7, 3, LP_DT_BF16), &l);
    write_seed(dir, "lowrank_dense_f32", &l);
    lp_linear_free(&l);
    lowrank_linear(6, 48, 2, &lp_format_dense16, dense16_random(2, 48, LP_DT_F16), &lp_format_dense16,
                   dense16_random(6, 2, LP_DT_F16), &l);
    if (lp_linear_add_part(&l, &lp_format_dense16, dense16_random(6, 48, LP_DT_BF16)) != LP_OK) die("sum");
    write_seed(dir, "sum_lowrank_dense16", &l);
    lp_linear_free(&l);

    /* nm (N:M) and bitmap (unstructured) pruned weights: 2:4 and 4:8 (the
     * SIMD fast paths), 1:4 and 3:8 (generic), 16-bit values and codes with
     * per-row and grouped grids, ragged widths */
    sparse_linear(8, 64, 2, 4, (lp_sparse_values){16, LP_DT_BF16, -1}, &l);
    write_seed(dir, "nm_2of4_bf16", &l);
    lp_linear_free(&l);
    sparse_linear(6, 96, 4, 8, (lp_sparse_values){4, LP_DT_U8, 32}, &l);
    write_seed(dir, "nm_4of8_w4_g32", &l);
    lp_linear_free(&l);
    sparse_linear(5, 36, 1, 4, (lp_sparse_values){16, LP_DT_F16, -1}, &l);
    write_seed(dir, "nm_1of4_f16_ragged", &l);
    lp_linear_free(&l);
    sparse_linear(4, 40, 3, 8, (lp_sparse_values){3, LP_DT_U8, -1}, &l);
    write_seed(dir, "nm_3of8_w3", &l);
    lp_linear_free(&l);
    sparse_linear(8, 70, 0, 0, (lp_sparse_values){16, LP_DT_BF16, -1}, &l);
    write_seed(dir, "bitmap_bf16_ragged", &l);
    lp_linear_free(&l);
    sparse_linear(6, 64, 0, 0, (lp_sparse_values){8, LP_DT_U8, 32}, &l);
    write_seed(dir, "bitmap_w8_g32", &l);
    lp_linear_free(&l);
    sparse_linear(5, 33, 0, 0, (lp_sparse_values){2, LP_DT_U8, -1}, &l);
    write_seed(dir, "bitmap_w2_ragged", &l);
    lp_linear_free(&l);
    return 0;
}
