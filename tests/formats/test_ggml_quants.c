/*
 * test_ggml_quants.c - ggml's legacy block types (format/ggml_quants.c) and
 * the ggml format row (format/ggml.c), against llama.cpp's own output.
 *  - fixtures (tests/data/ggml, written by scripts/ggml_fixtures.sh from
 *    llama.cpp c392e50; layout in that script): for F16, BF16, Q8_0, Q4_0,
 *    Q4_1, Q5_0, Q5_1 and IQ4_NL, on rows of ordinary, heavy-tailed, zero,
 *    single-outlier, all-equal, tiny, positive and tie-making values, without and
 *    with importance weights: lp_ggml_quantize_row writes llama.cpp's bytes
 *    and lp_ggml_dequant_row of those bytes is llama.cpp's floats, bit for bit;
 *  - the grid: per block, lp_ggml_grid_fit_row + lp_ggml_grid_code of every
 *    value + lp_ggml_grid_pack == lp_ggml_quantize_row, and the codes' *deq
 *    == the dequantized block, bit for bit, on the fixture rows and on random
 *    rows of many scales (with zero blocks, zero weights, constant blocks);
 *    lp_ggml_grid_fit on a one-block row is the same;
 *  - the ggml format row, for legacy, plain and K types: describe, nbytes,
 *    the rows' bytes, dequant == lp_ggml_dequant_row, the product against a
 *    double-precision product of the dequantized weight (T = 1, 3, 17, also
 *    through an lp_linear), save -> load gives the same bytes and outputs;
 *    the row kernels (legacy and K types) also on random block bytes
 *    (every code and scale pattern, finite f16 scales) at T = 1, 2, 4, 5,
 *    and at T = 16 (dequantized tiles + GEMM) every level bit for bit the
 *    reference,
 *    and corrupt checkpoints (unknown, unsupported or missing type, wrong
 *    tensor shape or dtype, a missing tensor, cols not a multiple of the
 *    block, a NaN or infinite f16 scale, a non-finite F16 value) fail with
 *    LP_ERR_FORMAT naming the problem; bad constructor arguments with
 *    LP_ERR_ARG / LP_ERR_FORMAT.
 * The K types' fixtures (q2_k .. q6_k.bin) are checked by test_ggml_kquants.c.
 * Shapes: W is rows x cols (out x in), X is T x cols, Y is T x rows.
 */
#include "test.h"

#include "core/half.h"
#include "format/ggml.h"
#include "format/linear.h"

#include <stdint.h>
#include <unistd.h>

static char g_dir[256];

/* ---- fixtures ---- */

static uint8_t *read_all(const char *path, size_t *size) {
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    const long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, fp) == (size_t)n) *size = (size_t)n;
    fclose(fp);
    return b;
}

static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

typedef struct {
    int rows, cols;
    float *x;   /* rows x cols */
    float *imp; /* cols */
} inputs;

static bool load_inputs(inputs *in) {
    const char *path = test_data("ggml/inputs.bin");
    size_t size;
    uint8_t *b = read_all(path, &size);
    bool ok = b && size >= 20 && !memcmp(b, "LPGGMLIN", 8) && u32_at(b + 8) == 1;
    if (ok) {
        in->rows = (int)u32_at(b + 12);
        in->cols = (int)u32_at(b + 16);
        ok = in->rows > 0 && in->cols > 0 && size == 20 + ((size_t)in->rows * in->cols + in->cols) * 4;
    }
    CHECKF(ok, "%s: missing, or not a version 1 inputs fixture of the right size", path);
    if (ok) {
        const size_t nx = (size_t)in->rows * in->cols;
        in->x = malloc(nx * sizeof(float));
        in->imp = malloc((size_t)in->cols * sizeof(float));
        memcpy(in->x, b + 20, nx * 4);
        memcpy(in->imp, b + 20 + nx * 4, (size_t)in->cols * 4);
    }
    free(b);
    return ok;
}

/* ---- the grid ---- */

/* Fit + code + pack of every block of row x (n values) must give want's
 * bytes, and each code's *deq the dequantized block; counts the blocks that
 * do not. one_block: fit with lp_ggml_grid_fit instead (n == the block). */
static int check_grid_row(int t, const float *x, const float *imp, int64_t n, const uint8_t *want, bool one_block,
                          const char *what) {
    const lp_ggml_type_info ti = lp_ggml_type_of(t);
    uint8_t blk[256];
    int codes[LP_GGML_QK_K];
    float deq[LP_GGML_QK_K], y[LP_GGML_QK_K];
    int bad = 0;
    for (int64_t j0 = 0; j0 < n; j0 += ti.block) {
        lp_ggml_grid g;
        if (one_block) lp_ggml_grid_fit(t, x + j0, imp ? imp + j0 : NULL, &g);
        else lp_ggml_grid_fit_row(t, x, imp, n, j0, &g);
        if (g.n != ti.block || g.type != t) {
            CHECKF(0, "%s: grid of %d values of type %d, expected %d of %d", what, g.n, g.type, ti.block, t);
            return 1;
        }
        for (int j = 0; j < g.n; j++) codes[j] = lp_ggml_grid_code(&g, j, x[j0 + j], &deq[j]);
        lp_ggml_grid_pack(&g, codes, blk);
        const uint8_t *w = want + j0 / ti.block * ti.bytes;
        if (memcmp(blk, w, (size_t)ti.bytes)) {
            int k = 0;
            while (blk[k] == w[k]) k++;
            if (bad++ < 3)
                CHECKF(0, "%s: block at column %lld: fit+code+pack byte %d is 0x%02x, quantize_row wrote 0x%02x", what,
                       (long long)j0, k, blk[k], w[k]);
            continue;
        }
        lp_ggml_dequant_row(t, blk, y, g.n);
        if (memcmp(deq, y, (size_t)g.n * sizeof(float))) {
            int k = 0;
            while (!memcmp(&deq[k], &y[k], sizeof(float))) k++;
            if (bad++ < 3)
                CHECKF(0, "%s: value %lld: the code's deq is %.9g, dequant_row gives %.9g", what,
                       (long long)(j0 + k), (double)deq[k], (double)y[k]);
        }
    }
    return bad;
}

static const struct {
    int type;
    const char *file;
} LEGACY[] = {
    {LP_GGML_F16, "f16"},   {LP_GGML_BF16, "bf16"}, {LP_GGML_Q8_0, "q8_0"},    {LP_GGML_Q4_0, "q4_0"},
    {LP_GGML_Q4_1, "q4_1"}, {LP_GGML_Q5_0, "q5_0"}, {LP_GGML_Q5_1, "q5_1"}, {LP_GGML_IQ4_NL, "iq4_nl"},
};
#define NLEGACY (int)(sizeof LEGACY / sizeof LEGACY[0])

/* One type's fixture: our bytes == llama.cpp's, our dequantization of its
 * bytes == its floats, and the grid composes to quantize_row. */
static void check_fixture(int t, const char *file, const inputs *in) {
    char rel[64];
    snprintf(rel, sizeof rel, "ggml/%s.bin", file);
    const char *path = test_data(rel);
    size_t size;
    uint8_t *b = read_all(path, &size);
    const int R = in->rows, C = in->cols;
    const size_t B = (size_t)lp_ggml_row_bytes(t, C);
    const bool ok = b && size == 28 + 2 * ((size_t)R * B + (size_t)R * C * 4) && !memcmp(b, "LPGGMLFX", 8) &&
                    u32_at(b + 8) == 1 && u32_at(b + 12) == (uint32_t)t && u32_at(b + 16) == (uint32_t)R &&
                    u32_at(b + 20) == (uint32_t)C && u32_at(b + 24) == B;
    CHECKF(ok, "%s: missing, or not a version 1 fixture of type %d, %d x %d, %zu bytes per row", path, t, R, C, B);
    if (!ok) {
        free(b);
        return;
    }
    uint8_t *q = malloc(B);
    float *y = malloc((size_t)C * sizeof(float)), *want = malloc((size_t)C * sizeof(float));
    int nq = 0, nd = 0, ng = 0;
    for (int v = 0; v < 2; v++) {
        const uint8_t *fq = b + 28 + (size_t)v * ((size_t)R * B + (size_t)R * C * 4);
        const uint8_t *fd = fq + (size_t)R * B;
        const float *imp = v ? in->imp : NULL;
        for (int r = 0; r < R; r++) {
            const float *x = in->x + (size_t)r * C;
            const uint8_t *wq = fq + (size_t)r * B;
            lp_ggml_quantize_row(t, x, imp, q, C);
            if (memcmp(q, wq, B)) {
                size_t k = 0;
                while (q[k] == wq[k]) k++;
                CHECKF(0, "%s %s, row %d: byte %zu (block %zu) is 0x%02x, llama.cpp wrote 0x%02x", file,
                       v ? "with imatrix" : "plain", r, k, k / (size_t)lp_ggml_type_of(t).bytes, q[k], wq[k]);
                nq++;
            }
            memcpy(want, fd + (size_t)r * C * 4, (size_t)C * 4);
            lp_ggml_dequant_row(t, wq, y, C);
            if (memcmp(y, want, (size_t)C * 4)) {
                int k = 0;
                while (!memcmp(&y[k], &want[k], 4)) k++;
                CHECKF(0, "%s %s, row %d: dequantized value %d is %.9g, llama.cpp's %.9g", file,
                       v ? "with imatrix" : "plain", r, k, (double)y[k], (double)want[k]);
                nd++;
            }
            char what[96];
            snprintf(what, sizeof what, "%s %s, row %d", file, v ? "with imatrix" : "plain", r);
            ng += check_grid_row(t, x, imp, C, q, false, what);
        }
    }
    printf("%-7s %d rows x 2: bytes %s, dequantization %s, grid %s\n", file, R, nq ? "DIFFER" : "match",
           nd ? "DIFFERS" : "matches", ng ? "DIFFERS" : "composes");
    free(q), free(y), free(want), free(b);
}

/* Random rows of many scales with zero, constant and one-value blocks and
 * zero importance weights: the grid composes to quantize_row for every
 * type, row-level (fit_row) and for single blocks (fit). */
static void check_grid_random(unsigned long long *seed) {
    enum { C = 512, ROWS = 24 };
    float x[C], imp[C];
    uint8_t q[C * 4];
    int bad = 0;
    for (int r = 0; r < ROWS; r++) {
        for (int blk = 0; blk < C / 32; blk++) {
            const int kind = (int)(test_rand_u64(seed) % 8);
            const float scale = powf(10.0f, (float)(test_rand_u64(seed) % 13) - 6.0f);
            const float c = test_randn(seed) * scale;
            for (int j = 0; j < 32; j++) {
                float v = test_randn(seed) * scale;
                if (kind == 0) v = 0.0f;                               /* zero block */
                else if (kind == 1) v = c;                             /* constant (either sign) */
                else if (kind == 2) v = j == 7 ? c : 0.0f;             /* one value */
                else if (kind == 3) v = fabsf(v) + scale;              /* all positive */
                else if (kind == 4) v = -fabsf(v);                     /* all non-positive */
                x[blk * 32 + j] = v;
                imp[blk * 32 + j] = kind == 5 && r % 2 ? 0.0f : (float)exp(test_randn(seed));
            }
        }
        for (int i = 0; i < NLEGACY; i++) {
            const int t = LEGACY[i].type;
            for (int v = 0; v < 2; v++) {
                const float *w = v ? imp : NULL;
                char what[96];
                snprintf(what, sizeof what, "random %s %s, row %d", LEGACY[i].file, v ? "with imatrix" : "plain", r);
                lp_ggml_quantize_row(t, x, w, q, C);
                bad += check_grid_row(t, x, w, C, q, false, what);
                for (int j0 = 0; j0 < C; j0 += 32) {
                    lp_ggml_quantize_row(t, x + j0, w ? w + j0 : NULL, q, 32);
                    bad += check_grid_row(t, x + j0, w ? w + j0 : NULL, 32, q, true, what);
                }
            }
        }
    }
    printf("random rows: grid %s for %d types x %d rows x 2\n", bad ? "DIFFERS" : "composes", NLEGACY, ROWS);
}

/* ---- the format row ---- */

static const char *file_path(const char *name) {
    static char p[4][512];
    static int i = 0;
    char *s = p[i++ & 3];
    snprintf(s, 512, "%s/%s", g_dir, name);
    return s;
}

static lp_status load_file(const char *path, int64_t rows, int64_t cols, lp_linear *l, lp_weights **wts) {
    *wts = NULL;
    memset(l, 0, sizeof *l);
    lp_status st = lp_weights_open(path, wts);
    if (st != LP_OK) return st;
    const lp_fmt_src in = {*wts, path};
    return lp_linear_load_packed(&in, "blk.lin", rows, cols, l);
}

/* Y from a part (T x R) against a double product of D (R x C); returns the
 * worst |diff| / sum |x w|. */
static double product_error(const float *X, const float *D, const float *Y, int64_t T, int64_t R, int64_t C) {
    double worst = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t r = 0; r < R; r++) {
            double s = 0, mag = 1e-30;
            for (int64_t c = 0; c < C; c++) {
                s += (double)X[t * C + c] * D[r * C + c];
                mag += fabs((double)X[t * C + c] * D[r * C + c]);
            }
            const double e = fabs(Y[t * R + r] - s) / mag;
            if (e > worst) worst = e;
        }
    return worst;
}

static void check_format_type(int t, unsigned long long *seed) {
    enum { R = 37, C = 512, TMAX = 17 };
    const char *name = lp_ggml_type_of(t).name;
    float *W = malloc(R * C * sizeof(float)), *imp = malloc(C * sizeof(float));
    float *D = malloc(R * C * sizeof(float)), *D2 = malloc(R * C * sizeof(float));
    float *X = malloc(TMAX * C * sizeof(float)), *Y = malloc(TMAX * R * sizeof(float));
    float *Y2 = malloc(TMAX * R * sizeof(float));
    for (int i = 0; i < R * C; i++) W[i] = test_randn(seed) * 0.02f;
    for (int i = 0; i < C; i++) imp[i] = (float)exp(test_randn(seed));
    for (int i = 0; i < TMAX * C; i++) X[i] = test_randn(seed);

    lp_ggml_part *p = NULL;
    CHECK_OK(lp_ggml_part_quantize(t, W, imp, R, C, &p));
    if (!p) goto done;
    const size_t B = (size_t)lp_ggml_row_bytes(t, C);
    CHECKF(p->row_bytes == B && lp_format_ggml.nbytes(p) == R * B && p->owned, "%s: row bytes %zu, nbytes %zu",
           name, p->row_bytes, lp_format_ggml.nbytes(p));
    char desc[64], want_desc[64];
    lp_format_ggml.describe(p, desc, sizeof desc);
    snprintf(want_desc, sizeof want_desc, "ggml %s", name);
    CHECKF(!strcmp(desc, want_desc), "described as \"%s\", expected \"%s\"", desc, want_desc);

    /* rows' bytes and dequantization */
    uint8_t *q = malloc(B);
    int bad_rows = 0;
    for (int r = 0; r < R; r++) {
        lp_ggml_quantize_row(t, W + r * C, imp, q, C);
        bad_rows += memcmp(q, p->blocks + r * B, B) != 0;
        lp_ggml_dequant_row(t, q, D2 + r * C, C);
    }
    free(q);
    CHECKF(!bad_rows, "%s: %d rows of the part differ from lp_ggml_quantize_row", name, bad_rows);
    CHECK_OK(lp_format_ggml.dequant(p, 0, R, D));
    CHECKF(!memcmp(D, D2, R * C * sizeof(float)), "%s: dequant differs from lp_ggml_dequant_row", name);
    CHECK_OK(lp_format_ggml.dequant(p, 5, 21, D2));
    CHECKF(!memcmp(D + 5 * C, D2, 16 * C * sizeof(float)), "%s: dequant of rows [5, 21) differs", name);

    /* products */
    /* every kernel level this CPU has (the AVX2 row kernels of Q8_0 / Q4_0 take T = 1 and 3) */
    double worst = 0;
    for (int isa = LP_ISA_REF; isa <= (int)lp_cpu_isa(); isa++) {
        const lp_gemm_fn gemm = lp_format_gemm(&lp_format_ggml, (lp_isa)isa);
        const int64_t Ts[] = {1, 3, TMAX};
        for (int k = 0; k < 3; k++) {
            CHECK_OK(gemm(p, X, Ts[k], Y));
            const double e = product_error(X, D, Y, Ts[k], R, C);
            if (e > worst) worst = e;
        }
        CHECKF(worst < 1e-5, "%s: product (kernel level %d) vs the dequantized weight: worst |diff| / sum |x w| = "
               "%.3g", name, isa, worst);
    }
    CHECK_OK(lp_format_gemm(&lp_format_ggml, lp_cpu_isa())(p, X, TMAX, Y));
    lp_linear l = {.rows = R, .cols = C};
    lp_linear_set(&l, &lp_format_ggml, p); /* l owns p from here */
    CHECK_OK(lp_linear_forward(&l, X, TMAX, Y2));
    CHECKF(!memcmp(Y, Y2, TMAX * R * sizeof(float)), "%s: lp_linear_forward differs from the part's product", name);

    /* save -> load */
    lp_st_writer *wr = NULL;
    const char *path = file_path("rt.safetensors");
    CHECK_OK(lp_st_writer_init(&wr));
    CHECK_OK(lp_linear_save(&l, wr, "blk.lin"));
    CHECK_OK(lp_st_writer_save(wr, path));
    lp_st_writer_free(wr);
    lp_linear m;
    lp_weights *wts;
    lp_status st = load_file(path, R, C, &m, &wts);
    CHECKF(st == LP_OK, "%s: load: %s", name, lp_last_error());
    const lp_ggml_part *v = st == LP_OK ? lp_linear_data(&m, &lp_format_ggml) : NULL;
    CHECKF(v != NULL, "%s: the loaded linear is not one ggml part", name);
    if (v) {
        CHECKF(v->type == t && v->rows == R && v->cols == C && v->row_bytes == B && !v->owned &&
                   !memcmp(v->blocks, p->blocks, R * B),
               "%s: the loaded part differs", name);
        CHECK_OK(lp_linear_forward(&m, X, TMAX, Y2));
        CHECKF(!memcmp(Y, Y2, TMAX * R * sizeof(float)), "%s: loaded outputs differ", name);
        char d1[64];
        lp_linear_describe(&m, d1, sizeof d1);
        CHECKF(!strcmp(d1, want_desc), "%s: loaded linear described as \"%s\"", name, d1);
    }
    lp_linear_free(&m);
    lp_weights_close(wts);
    unlink(path);
    lp_linear_free(&l);
    printf("format %-6s %d x %d: bytes, dequant, save/load ok; product worst |diff| / sum |x w| %.2g\n", name, R, C,
           worst);
done:
    free(W), free(imp), free(D), free(D2), free(X), free(Y), free(Y2);
}

/* Row kernels on arbitrary block bytes: every code, scale and min pattern a
 * file can hold (not only what our quantizer writes), with finite f16
 * scales; T = 1, 2, 4 and 5 (a pass of 4 plus one), every kernel level,
 * against a double product of the reference dequantization. */
static void check_random_blocks(unsigned long long *seed) {
    enum { R = 19, C = 768, T = 5 };
    const int types[] = {LP_GGML_Q4_0, LP_GGML_Q4_1, LP_GGML_Q5_0, LP_GGML_Q5_1, LP_GGML_Q8_0, LP_GGML_IQ4_NL,
                         LP_GGML_Q2_K, LP_GGML_Q3_K, LP_GGML_Q4_K, LP_GGML_Q5_K, LP_GGML_Q6_K};
    float *D = malloc(R * C * sizeof(float)), *X = malloc(T * C * sizeof(float)), *Y = malloc(T * R * sizeof(float));
    for (int i = 0; i < T * C; i++) X[i] = test_randn(seed);
    double worst = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const int t = types[ti];
        const lp_ggml_type_info info = lp_ggml_type_of(t);
        const size_t B = (size_t)lp_ggml_row_bytes(t, C);
        uint8_t *q = malloc(R * B);
        for (size_t i = 0; i < R * B; i++) q[i] = (uint8_t)test_rand_u64(seed);
        /* the f16 fields (d, dmin) as small finite numbers: 2^-10 .. 2^-6 with random mantissas */
        int at[2] = {0, -1};
        if (t == LP_GGML_Q4_1 || t == LP_GGML_Q5_1 || t == LP_GGML_Q4_K || t == LP_GGML_Q5_K) at[1] = 2;
        if (t == LP_GGML_Q2_K) at[0] = 80, at[1] = 82;
        if (t == LP_GGML_Q3_K) at[0] = 108;
        if (t == LP_GGML_Q6_K) at[0] = 208;
        for (int r = 0; r < R; r++)
            for (int b = 0; b < C / info.block; b++)
                for (int k = 0; k < 2 && at[k] >= 0; k++) {
                    const uint16_t h = (uint16_t)(((5 + test_rand_u64(seed) % 5) << 10) | (test_rand_u64(seed) & 0x3ff));
                    uint8_t *f = q + r * B + (size_t)b * info.bytes + at[k];
                    f[0] = (uint8_t)h, f[1] = (uint8_t)(h >> 8);
                }
        lp_ggml_part *p = NULL;
        CHECK_OK(lp_ggml_part_view(t, R, C, q, &p));
        if (p) {
            for (int r = 0; r < R; r++) lp_ggml_dequant_row(t, q + r * B, D + r * C, C);
            /* from 16 tokens on, the kernel levels dequantize tiles for the same GEMM: equal to the
             * reference's product bit for bit */
            float *Yref = malloc(16 * R * sizeof(float)), *Y16 = malloc(16 * R * sizeof(float));
            float *X16 = malloc(16 * C * sizeof(float));
            for (int i = 0; i < 16 * C; i++) X16[i] = test_randn(seed);
            CHECK_OK(lp_format_gemm(&lp_format_ggml, LP_ISA_REF)(p, X16, 16, Yref));
            for (int isa = LP_ISA_REF + 1; isa <= (int)lp_cpu_isa(); isa++) {
                CHECK_OK(lp_format_gemm(&lp_format_ggml, (lp_isa)isa)(p, X16, 16, Y16));
                CHECKF(!memcmp(Y16, Yref, 16 * R * sizeof(float)),
                       "%s random blocks, kernel level %d, T = 16: differs from the reference's product", info.name,
                       isa);
            }
            free(Yref), free(Y16), free(X16);
            for (int isa = LP_ISA_REF; isa <= (int)lp_cpu_isa(); isa++) {
                const lp_gemm_fn gemm = lp_format_gemm(&lp_format_ggml, (lp_isa)isa);
                const int64_t Ts[] = {1, 2, 4, 5};
                for (int k = 0; k < 4; k++) {
                    CHECK_OK(gemm(p, X, Ts[k], Y));
                    const double e = product_error(X, D, Y, Ts[k], R, C);
                    CHECKF(e < 1e-5, "%s random blocks, kernel level %d, T = %lld: worst |diff| / sum |x w| = %.3g",
                           info.name, isa, (long long)Ts[k], e);
                    if (e > worst) worst = e;
                }
            }
        }
        lp_ggml_part_free(p);
        free(q);
    }
    printf("random block bytes: %zu types, product worst |diff| / sum |x w| %.2g\n",
           sizeof types / sizeof types[0], worst);
    free(D), free(X), free(Y);
}

/* ---- corrupt checkpoints and bad arguments ---- */

static void write_file(const char *path, lp_dtype dt, int64_t d0, int64_t d1, const void *data, const char *meta) {
    lp_st_writer *w = NULL;
    CHECK_OK(lp_st_writer_init(&w));
    if (data) CHECK_OK(lp_fmt_add(w, "blk.lin", ".blocks", dt, d0, d1, data));
    else CHECK_OK(lp_fmt_add(w, "blk.lin", ".other", LP_DT_U8, 1, 1, "")); /* a file needs a tensor */
    if (meta) CHECK_OK(lp_st_writer_meta(w, "llmpress.linear.blk.lin", meta));
    CHECK_OK(lp_st_writer_save(w, path));
    lp_st_writer_free(w);
}

static void expect_corrupt(const char *what, lp_dtype dt, int64_t d0, int64_t d1, const void *data, const char *meta,
                           int64_t rows, int64_t cols, const char *need) {
    const char *p = file_path("corrupt.safetensors");
    write_file(p, dt, d0, d1, data, meta);
    lp_linear l;
    lp_weights *wts;
    lp_status st = load_file(p, rows, cols, &l, &wts);
    CHECKF(st == LP_ERR_FORMAT && (!need || strstr(lp_last_error(), need)), "%s: got %s: %s", what,
           lp_status_name(st), lp_last_error());
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(p);
}

static void check_corrupt(unsigned long long *seed) {
    enum { R = 4, C = 64 };
    float W[R * C];
    for (int i = 0; i < R * C; i++) W[i] = test_randn(seed);
    uint8_t q0[R * 36], q1[R * 40], h[R * C * 2];
    for (int r = 0; r < R; r++) {
        lp_ggml_quantize_row(LP_GGML_Q4_0, W + r * C, NULL, q0 + r * 36, C);
        lp_ggml_quantize_row(LP_GGML_Q4_1, W + r * C, NULL, q1 + r * 40, C);
        lp_ggml_quantize_row(LP_GGML_F16, W + r * C, NULL, h + r * C * 2, C);
    }
    const char *m0 = "{\"format\":\"ggml\",\"type\":\"Q4_0\"}";
    /* the good file loads, with the type in either case */
    const char *p = file_path("ok.safetensors");
    write_file(p, LP_DT_U8, R, 36, q0, "{\"format\":\"ggml\",\"type\":\"q4_0\"}");
    lp_linear l;
    lp_weights *wts;
    CHECK_OK(load_file(p, R, C, &l, &wts));
    lp_linear_free(&l);
    lp_weights_close(wts);
    unlink(p);

    expect_corrupt("unknown type", LP_DT_U8, R, 36, q0, "{\"format\":\"ggml\",\"type\":\"Q4_9\"}", R, C,
                   "ggml type is \"Q4_9\"");
    expect_corrupt("unsupported type", LP_DT_U8, R, 36, q0, "{\"format\":\"ggml\",\"type\":\"Q8_1\"}", R, C,
                   "ggml type is \"Q8_1\"");
    expect_corrupt("missing type", LP_DT_U8, R, 36, q0, "{\"format\":\"ggml\"}", R, C, "ggml type is missing");
    expect_corrupt("type not a string", LP_DT_U8, R, 36, q0, "{\"format\":\"ggml\",\"type\":2}", R, C,
                   "not a string");
    expect_corrupt("short rows", LP_DT_U8, R, 35, q0, m0, R, C, "blk.lin.blocks");
    expect_corrupt("too few rows", LP_DT_U8, R - 1, 36, q0, m0, R, C, "blk.lin.blocks");
    expect_corrupt("I8 blocks", LP_DT_I8, R, 36, q0, m0, R, C, "blk.lin.blocks");
    expect_corrupt("missing tensor", LP_DT_U8, R, 36, NULL, m0, R, C, "blk.lin.blocks");
    expect_corrupt("cols not a multiple of the block", LP_DT_U8, R, 27, q0, m0, R, 48, "multiple of 32");

    uint8_t bad[sizeof q1];
    memcpy(bad, q0, sizeof q0);
    bad[2 * 36 + 18] = 0x00, bad[2 * 36 + 19] = 0x7e; /* row 2, block 1: d = NaN */
    expect_corrupt("NaN scale", LP_DT_U8, R, 36, bad, m0, R, C, "row 2, block 1: f16 scale d");
    memcpy(bad, q1, sizeof q1);
    bad[3 * 40 + 2] = 0x00, bad[3 * 40 + 3] = 0xfc; /* row 3, block 0: m = -inf */
    expect_corrupt("infinite min", LP_DT_U8, R, 40, bad, "{\"format\":\"ggml\",\"type\":\"Q4_1\"}", R, C,
                   "row 3, block 0: f16 min dmin at byte 2 is 0xfc00 (infinite)");
    uint8_t hb[sizeof h];
    memcpy(hb, h, sizeof h);
    hb[2 * (C + 5)] = 0x00, hb[2 * (C + 5) + 1] = 0x7c; /* [1, 5] = inf */
    expect_corrupt("infinite F16 value", LP_DT_U8, R, 2 * C, hb, "{\"format\":\"ggml\",\"type\":\"F16\"}", R, C,
                   "value [row, col] [1, 5]");

    /* constructors */
    lp_ggml_part *part = (lp_ggml_part *)1;
    CHECK(lp_ggml_part_alloc(LP_GGML_Q8_1, R, C, &part) == LP_ERR_ARG && part == NULL);
    CHECK(lp_ggml_part_alloc(LP_GGML_Q4_0, R, 48, &part) == LP_ERR_ARG && part == NULL);
    CHECK(lp_ggml_part_alloc(LP_GGML_Q4_K, R, 128, &part) == LP_ERR_ARG && part == NULL);
    CHECK(lp_ggml_part_quantize(LP_GGML_Q4_0, W, NULL, 0, C, &part) == LP_ERR_ARG && part == NULL);
    CHECK(lp_ggml_part_view(99, R, C, q0, &part) == LP_ERR_FORMAT && part == NULL);
    CHECK(lp_ggml_part_view(LP_GGML_Q4_0, R, C, NULL, &part) == LP_ERR_FORMAT && part == NULL);
    CHECK_OK(lp_ggml_part_view(LP_GGML_Q4_0, R, C, q0, &part));
    CHECK(part && !part->owned && lp_ggml_part_row(part, 0) == NULL);
    lp_ggml_part_free(part);
    lp_ggml_part_free(NULL);
    CHECK_OK(lp_ggml_part_alloc(LP_GGML_Q8_0, R, C, &part));
    CHECK(part && lp_ggml_part_row(part, 1) == part->owned + 68);
    lp_ggml_part_free(part);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lp_test_ggml_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    CHECK(lp_format_find("ggml") == &lp_format_ggml);
    for (int t = 0; t < LP_GGML_TYPE_COUNT; t++) {
        const bool want = t == LP_GGML_F32 || t == LP_GGML_F16 || t == LP_GGML_BF16 || t == LP_GGML_Q8_0 ||
                          t == LP_GGML_Q4_0 || t == LP_GGML_Q4_1 || t == LP_GGML_Q5_0 || t == LP_GGML_Q5_1 ||
                          t == LP_GGML_IQ4_NL || (t >= LP_GGML_Q2_K && t <= LP_GGML_Q6_K);
        CHECKF(lp_ggml_can_dequant(t) == want && lp_ggml_can_quant(t) == want, "type %d", t);
    }
    inputs in = {0};
    if (load_inputs(&in))
        for (int i = 0; i < NLEGACY; i++) check_fixture(LEGACY[i].type, LEGACY[i].file, &in);
    unsigned long long seed = 19;
    check_grid_random(&seed);
    const int fmt_types[] = {LP_GGML_Q4_0, LP_GGML_Q4_1, LP_GGML_Q5_0, LP_GGML_Q5_1, LP_GGML_Q8_0,
                             LP_GGML_IQ4_NL, LP_GGML_F16, LP_GGML_BF16, LP_GGML_F32, LP_GGML_Q2_K,
                             LP_GGML_Q3_K,   LP_GGML_Q4_K, LP_GGML_Q5_K, LP_GGML_Q6_K};
    for (size_t i = 0; i < sizeof fmt_types / sizeof fmt_types[0]; i++) check_format_type(fmt_types[i], &seed);
    check_random_blocks(&seed);
    check_corrupt(&seed);
    free(in.x), free(in.imp);
    rmdir(g_dir);
    TEST_DONE();
}
