/*
 * test_ggml_kquants.c - llama.cpp's K block types Q2_K .. Q6_K
 * (format/ggml_kquants.c, through the lp_ggml_* entry points).
 *  - parity with llama.cpp (tests/data/ggml/<type>.bin and inputs.bin,
 *    written by scripts/ggml_fixtures.sh from llama.cpp c392e50; layout in
 *    that script): on rows of ordinary, heavy-tailed, all-zero,
 *    single-outlier, all-equal, tiny, all-positive and mixed values,
 *    lp_ggml_quantize_row writes llama.cpp's bytes without importance weights
 *    (quantize_row_q*_K_ref) and with them (quantize_q*_K's imatrix path),
 *    and lp_ggml_dequant_row of llama.cpp's bytes is llama.cpp's floats, bit
 *    for bit; the block sizes agree with the GGUF type table;
 *  - hand-built blocks: one block per type written from ggml-common.h's
 *    layout by hand, dequantized values checked against the formula;
 *  - the grid, on random rows of many scales (zero sub-blocks, sub-blocks
 *    1e-5 of their neighbours so the final pass skips them, constant,
 *    all-negative and tiny blocks; weights with zeros): fit + code of every
 *    value + pack == lp_ggml_quantize_row; codes in [qmin, qmax]; *deq ==
 *    the dequantized packed block; every value the final pass rounds lies
 *    within half a step of its dequantized value (or beyond the grid's end
 *    by no more than its distance to it); values changed between codes (as
 *    GPTQ does) still pack to blocks whose dequantization is the codes' *deq;
 *  - the error of a N(0,1) row stays under a per-type bound.
 */
#include "test.h"

#include "core/half.h"
#include "format/ggml_quants.h"
#include "io/gguf.h"

#include <stdint.h>

#define QK_K LP_GGML_QK_K

typedef struct {
    int type;
    const char *name;    /* fixture file stem */
    int bytes, sub, qmax;
    double rmse_bound;   /* relative RMS error on N(0,1), about 1.2x what llama.cpp's rounding gives */
} ktype;

static const ktype KT[] = {
    {LP_GGML_Q2_K, "q2_k", 84, 16, 3, 0.36},  {LP_GGML_Q3_K, "q3_k", 110, 16, 7, 0.185},
    {LP_GGML_Q4_K, "q4_k", 144, 32, 15, 0.086}, {LP_GGML_Q5_K, "q5_k", 176, 32, 31, 0.043},
    {LP_GGML_Q6_K, "q6_k", 210, 16, 63, 0.021},
};
#define NKT (int)(sizeof KT / sizeof KT[0])

/* ---- files ---- */

typedef struct {
    uint8_t *buf;
    size_t size;
} file_buf;

static file_buf read_all(const char *path) {
    file_buf f = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return f;
    fseek(fp, 0, SEEK_END);
    const long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f.buf = malloc(n > 0 ? (size_t)n : 1);
    if (f.buf && n > 0 && fread(f.buf, 1, (size_t)n, fp) == (size_t)n) f.size = (size_t)n;
    fclose(fp);
    return f;
}

static uint32_t u32_at(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void f32s_at(const uint8_t *p, float *out, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = u32_at(p + 4 * i);
        memcpy(&out[i], &u, 4);
    }
}

/* ---- parity with llama.cpp ---- */

static void check_fixture(const ktype *k, int rows, int cols, const float *x, const float *imp) {
    char rel[64];
    snprintf(rel, sizeof rel, "ggml/%s.bin", k->name);
    const char *path = test_data(rel);
    file_buf f = read_all(path);
    const uint8_t *b = f.buf;
    const size_t B = (size_t)cols / QK_K * (size_t)k->bytes;
    const size_t need = 28 + 2 * ((size_t)rows * B + (size_t)rows * cols * 4);
    if (f.size < 28 || memcmp(b, "LPGGMLFX", 8) || u32_at(b + 8) != 1) {
        CHECKF(0, "%s: missing or not a version-1 fixture (make it with scripts/ggml_fixtures.sh)", path);
        free(f.buf);
        return;
    }
    if ((int)u32_at(b + 12) != k->type || (int)u32_at(b + 16) != rows || (int)u32_at(b + 20) != cols ||
        u32_at(b + 24) != B || f.size != need) {
        CHECKF(0, "%s: header (type %u, %u x %u, %u B/row, %zu bytes) does not match type %d, %d x %d, %zu B/row, %zu bytes",
               path, u32_at(b + 12), u32_at(b + 16), u32_at(b + 20), u32_at(b + 24), f.size, k->type, rows, cols, B,
               need);
        free(f.buf);
        return;
    }
    const uint8_t *q = b + 28, *qi = q + rows * B + (size_t)rows * cols * 4;
    float *dq = malloc((size_t)rows * cols * sizeof(float)), *dqi = malloc((size_t)rows * cols * sizeof(float));
    f32s_at(q + rows * B, dq, (size_t)rows * cols);
    f32s_at(qi + rows * B, dqi, (size_t)rows * cols);

    uint8_t *ours = malloc(B);
    float *y = malloc((size_t)cols * sizeof(float));
    int ok_plain = 0, ok_imp = 0, ok_deq = 0;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        for (int w = 0; w < 2; w++) {
            const uint8_t *want = (w ? qi : q) + r * B;
            const float *want_y = (w ? dqi : dq) + (size_t)r * cols;
            lp_ggml_quantize_row(k->type, xr, w ? imp : NULL, ours, cols);
            size_t at = 0;
            while (at < B && ours[at] == want[at]) at++;
            CHECKF(at == B, "%s row %d %s: byte %zu is %02x, llama.cpp wrote %02x", k->name, r,
                   w ? "with importance weights" : "plain", at, at < B ? ours[at] : 0, at < B ? want[at] : 0);
            if (at == B && w) ok_imp++;
            if (at == B && !w) ok_plain++;
            lp_ggml_dequant_row(k->type, want, y, cols);
            int c = 0;
            while (c < cols && !memcmp(&y[c], &want_y[c], 4)) c++;
            CHECKF(c == cols, "%s row %d %s: dequantized value %d is %.9g, llama.cpp's %.9g", k->name, r,
                   w ? "(imp)" : "(plain)", c, c < cols ? y[c] : 0.0, c < cols ? want_y[c] : 0.0);
            if (c == cols) ok_deq++;
        }
    }
    printf("%s: llama.cpp parity on %d rows: bytes %d/%d plain, %d/%d with importance weights; dequant %d/%d bit-exact\n",
           k->name, rows, ok_plain, rows, ok_imp, rows, ok_deq, 2 * rows);
    free(ours);
    free(y);
    free(dq);
    free(dqi);
    free(f.buf);
}

static void check_fixtures(void) {
    const char *path = test_data("ggml/inputs.bin");
    file_buf f = read_all(path);
    if (f.size < 20 || memcmp(f.buf, "LPGGMLIN", 8) || u32_at(f.buf + 8) != 1) {
        CHECKF(0, "%s: missing or not a version-1 inputs fixture (make it with scripts/ggml_fixtures.sh)", path);
        free(f.buf);
        return;
    }
    const int rows = (int)u32_at(f.buf + 12), cols = (int)u32_at(f.buf + 16);
    if (f.size != 20 + ((size_t)rows * cols + cols) * 4 || cols % QK_K) {
        CHECKF(0, "%s: %zu bytes do not hold %d x %d inputs (cols a multiple of 256)", path, f.size, rows, cols);
        free(f.buf);
        return;
    }
    float *x = malloc((size_t)rows * cols * sizeof(float)), *imp = malloc((size_t)cols * sizeof(float));
    f32s_at(f.buf + 20, x, (size_t)rows * cols);
    f32s_at(f.buf + 20 + (size_t)rows * cols * 4, imp, (size_t)cols);
    for (int i = 0; i < NKT; i++) check_fixture(&KT[i], rows, cols, x, imp);
    free(x);
    free(imp);
    free(f.buf);
}

/* ---- hand-built blocks ---- */

static void wr16(uint8_t *p, float v) {
    uint16_t h = lp_f32_to_f16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

/* A code for value v that varies in every bit position. */
static int pattern(int v, int qmax) { return (v * 37 + v / 7) % (qmax + 1); }

/* Each block is written the way ggml-common.h and dequantize_row_q*_K walk it:
 * value index v = n + 32*j + l within the loops there. */
static void check_hand_built(void) {
    uint8_t blk[210];
    float y[QK_K];
    const float d = 0.5f, dmin = 0.25f;

    /* Q2_K: scales[16] (sc | mn << 4), qs[64], d, dmin. */
    memset(blk, 0, sizeof blk);
    for (int s = 0; s < 16; s++) blk[s] = (uint8_t)((s ^ 5) | ((15 - s) << 4));
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) blk[16 + 32 * n + l] |= (uint8_t)(pattern(128 * n + 32 * j + l, 3) << (2 * j));
    wr16(blk + 80, d);
    wr16(blk + 82, dmin);
    lp_ggml_dequant_row(LP_GGML_Q2_K, blk, y, QK_K);
    for (int v = 0; v < QK_K; v++) {
        const int s = v / 16;
        const float want = d * (float)(s ^ 5) * (float)pattern(v, 3) - dmin * (float)(15 - s);
        CHECKF(y[v] == want, "Q2_K hand-built value %d: %g, expected %g", v, y[v], want);
    }

    /* Q3_K: hmask[32], qs[64], scales[12] (6-bit, stored sc + 32), d. */
    memset(blk, 0, sizeof blk);
    int six[16];
    for (int s = 0; s < 16; s++) six[s] = (s * 11 + 3) % 64;
    for (int s = 0; s < 16; s++) {
        blk[96 + (s < 8 ? s : s - 8)] |= (uint8_t)((six[s] & 15) << (s < 8 ? 0 : 4));
        blk[96 + 8 + s % 4] |= (uint8_t)((six[s] >> 4) << (2 * (s / 4)));
    }
    for (int v = 0; v < QK_K; v++) {
        const int c = pattern(v, 7);
        blk[32 + 32 * (v / 128) + v % 32] |= (uint8_t)((c & 3) << (2 * ((v % 128) / 32)));
        blk[v % 32] |= (uint8_t)((c >> 2) << (v / 32));
    }
    wr16(blk + 108, d);
    lp_ggml_dequant_row(LP_GGML_Q3_K, blk, y, QK_K);
    for (int v = 0; v < QK_K; v++) {
        const float want = d * (float)(six[v / 16] - 32) * (float)(pattern(v, 7) - 4);
        CHECKF(y[v] == want, "Q3_K hand-built value %d: %g, expected %g", v, y[v], want);
    }

    /* Q4_K and Q5_K: d, dmin, scales[12] (6-bit sc and mn), [qh[32]], qs[128]. */
    for (int five = 0; five < 2; five++) {
        const int t = five ? LP_GGML_Q5_K : LP_GGML_Q4_K, qmax = five ? 31 : 15, qs = five ? 48 : 16;
        int sc[8], mn[8];
        memset(blk, 0, sizeof blk);
        for (int s = 0; s < 8; s++) {
            sc[s] = (s * 23 + 7) % 64;
            mn[s] = (s * 41 + 60) % 64;
        }
        for (int s = 0; s < 4; s++) {
            blk[4 + s] = (uint8_t)(sc[s] | (sc[s + 4] >> 4) << 6);
            blk[4 + s + 4] = (uint8_t)(mn[s] | (mn[s + 4] >> 4) << 6);
            blk[4 + s + 8] = (uint8_t)((sc[s + 4] & 15) | (mn[s + 4] & 15) << 4);
        }
        for (int v = 0; v < QK_K; v++) {
            const int c = pattern(v, qmax);
            blk[qs + 32 * (v / 64) + v % 32] |= (uint8_t)((c & 15) << (4 * ((v % 64) / 32)));
            if (five) blk[16 + v % 32] |= (uint8_t)((c >> 4) << (v / 32));
        }
        wr16(blk, d);
        wr16(blk + 2, dmin);
        lp_ggml_dequant_row(t, blk, y, QK_K);
        for (int v = 0; v < QK_K; v++) {
            const int s = v / 32;
            const float want = d * (float)sc[s] * (float)pattern(v, qmax) - dmin * (float)mn[s];
            CHECKF(y[v] == want, "%s hand-built value %d: %g, expected %g", five ? "Q5_K" : "Q4_K", v, y[v], want);
        }
    }

    /* Q6_K: ql[128], qh[64], scales[16] (int8), d. */
    memset(blk, 0, sizeof blk);
    for (int s = 0; s < 16; s++) blk[192 + s] = (uint8_t)(int8_t)(s * 17 - 128);
    for (int n = 0; n < 2; n++)
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 32; l++) {
                const int c = pattern(128 * n + 32 * j + l, 63);
                blk[64 * n + l + 32 * (j & 1)] |= (uint8_t)((c & 15) << (4 * (j >> 1)));
                blk[128 + 32 * n + l] |= (uint8_t)((c >> 4) << (2 * j));
            }
    wr16(blk + 208, d);
    lp_ggml_dequant_row(LP_GGML_Q6_K, blk, y, QK_K);
    for (int v = 0; v < QK_K; v++) {
        const float want = d * (float)(v / 16 * 17 - 128) * (float)(pattern(v, 63) - 32);
        CHECKF(y[v] == want, "Q6_K hand-built value %d: %g, expected %g", v, y[v], want);
    }
}

/* ---- the grid on random rows ---- */

#define NKINDS 9

/* One block of kind `kind`; imp gets weights (exp(N(0,1)), some zero). */
static void make_block(int kind, unsigned long long *rs, float *x, float *imp) {
    const float scale = powf(10.0f, (float)(test_rand_u64(rs) % 90) / 10.0f - 6.0f); /* 1e-6 .. 1e3 */
    for (int v = 0; v < QK_K; v++) {
        const float g = test_randn(rs);
        switch (kind) {
        case 0: x[v] = g; break;
        case 1: x[v] = scale * g; break;
        case 2: x[v] = (v / 16) % 3 == 1 ? 0.0f : g; break;          /* all-zero sub-blocks */
        case 3: x[v] = (v / 16) % 4 == 2 ? 1e-5f * g : g * g * g;    /* sub-blocks the final pass skips */ break;
        case 4: x[v] = -fabsf(g) - 0.5f; break;                       /* all negative */
        case 5: x[v] = 0.3f; break;                                   /* constant */
        case 6: x[v] = (v / 32) % 2 ? 1e-9f * g : 1e-6f * g; break;   /* tiny (f16 subnormal scales) */
        case 7: x[v] = v % 61 == 7 ? 40.0f * g : 0.05f * g; break;    /* outliers */
        default: x[v] = (v / 32) % 2 ? fabsf(g) + 1.0f : g - 1.0f; break;
        }
        imp[v] = v % 37 == 5 || (kind == 2 && (v / 16) % 5 == 3) ? 0.0f : expf(test_randn(rs));
    }
}

static void check_grid(const ktype *k) {
    unsigned long long rs = 0x9e3779b97f4a7c15ull ^ (unsigned long long)k->type;
    float x[QK_K], imp[QK_K], y[QK_K], deq[QK_K], x2[QK_K];
    int codes[QK_K];
    uint8_t want[210], got[210];
    int skipped = 0, failures_before = lp_test_failures;
    for (int it = 0; it < 12 * NKINDS; it++) {
        const int kind = it % NKINDS;
        make_block(kind, &rs, x, imp);
        for (int w = 0; w < 2; w++) {
            const float *wt = w ? imp : NULL;
            lp_ggml_quantize_row(k->type, x, wt, want, QK_K);
            lp_ggml_grid g;
            lp_ggml_grid_fit(k->type, x, wt, &g);
            CHECK(g.n == QK_K && g.sub == k->sub && g.qmin == 0 && g.qmax == k->qmax);
            for (int v = 0; v < QK_K; v++) {
                codes[v] = lp_ggml_grid_code(&g, v, x[v], &deq[v]);
                CHECKF(codes[v] >= g.qmin && codes[v] <= g.qmax, "%s: code %d out of range", k->name, codes[v]);
            }
            lp_ggml_grid_pack(&g, codes, got);
            CHECKF(!memcmp(got, want, (size_t)k->bytes), "%s kind %d %s: fit + code + pack != quantize_row", k->name,
                   kind, w ? "imp" : "plain");
            lp_ggml_dequant_row(k->type, got, y, QK_K);
            CHECKF(!memcmp(y, deq, sizeof y), "%s kind %d: the codes' deq != dequantized block", k->name, kind);

            /* The final pass rounds to the nearest value of the sub-block's grid. */
            for (int s = 0; s < QK_K / k->sub; s++) {
                if (g.scale[s] == 0.0f) {
                    skipped++;
                    continue;
                }
                /* the grid's two ends, as dequantization forms them (formulas of ggml_kquants.c) */
                const int off = k->type == LP_GGML_Q3_K ? 4 : k->type == LP_GGML_Q6_K ? 32 : 0;
                const float e0 = g.scale[s] * (float)(0 - off) - g.min[s];
                const float e1 = g.scale[s] * (float)(k->qmax - off) - g.min[s];
                const float lo = fminf(e0, e1), hi = fmaxf(e0, e1);
                for (int v = s * k->sub; v < (s + 1) * k->sub; v++) {
                    const double outside = x[v] < lo ? lo - x[v] : x[v] > hi ? x[v] - hi : 0.0;
                    const double bound = 0.5 * fabs(g.scale[s]) + outside + 1e-6 * (fabs(x[v]) + fabs(lo) + fabs(hi));
                    CHECKF(fabs((double)x[v] - deq[v]) <= bound, "%s kind %d value %d: |%g - %g| > %g", k->name, kind,
                           v, x[v], deq[v], bound);
                }
            }

            /* Values changed between codes (GPTQ's error feedback): still a valid block. */
            for (int v = 0; v < QK_K; v++) {
                x2[v] = x[v] + 0.7f * (fabsf(g.scale[v / k->sub]) + 1e-3f) * test_randn(&rs);
                codes[v] = lp_ggml_grid_code(&g, v, x2[v], &deq[v]);
                CHECKF(codes[v] >= g.qmin && codes[v] <= g.qmax, "%s: code %d out of range", k->name, codes[v]);
            }
            lp_ggml_grid_pack(&g, codes, got);
            lp_ggml_dequant_row(k->type, got, y, QK_K);
            CHECKF(!memcmp(y, deq, sizeof y), "%s kind %d: changed values' deq != dequantized block", k->name, kind);
        }
    }
    CHECKF(skipped > 0, "%s: no sub-block skipped by the final pass was exercised", k->name);
    if (lp_test_failures == failures_before)
        printf("%s: grid == quantize_row on %d random blocks (plain and imp), %d skipped sub-blocks\n", k->name,
               12 * NKINDS, skipped);
}

static void check_error(const ktype *k) {
    enum { N = 16 * QK_K };
    static float x[N], y[N];
    static uint8_t q[16 * 210];
    unsigned long long rs = 12345;
    for (int i = 0; i < N; i++) x[i] = test_randn(&rs);
    lp_ggml_quantize_row(k->type, x, NULL, q, N);
    lp_ggml_dequant_row(k->type, q, y, N);
    double e2 = 0, x2 = 0;
    for (int i = 0; i < N; i++) {
        e2 += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        x2 += (double)x[i] * x[i];
    }
    const double rel = sqrt(e2 / x2);
    CHECKF(rel < k->rmse_bound, "%s: relative RMS error %.4f on N(0,1), bound %.4f", k->name, rel, k->rmse_bound);
    printf("%s: relative RMS error on N(0,1) %.4f (bound %.3f)\n", k->name, rel, k->rmse_bound);
}

int main(void) {
    for (int i = 0; i < NKT; i++) {
        const lp_ggml_type_info ti = lp_ggml_type_of(KT[i].type);
        CHECKF(ti.block == QK_K && ti.bytes == KT[i].bytes, "%s: type table says %d values in %d bytes", KT[i].name,
               ti.block, ti.bytes);
        CHECK(lp_ggml_can_quant(KT[i].type) && lp_ggml_can_dequant(KT[i].type));
    }
    check_hand_built();
    for (int i = 0; i < NKT; i++) check_grid(&KT[i]);
    for (int i = 0; i < NKT; i++) check_error(&KT[i]);
    check_fixtures();
    TEST_DONE();
}
