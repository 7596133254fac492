/*
 * ggml_fixtures.c - writes the ggml quantization fixtures (tests/data/ggml/)
 * from llama.cpp's own ggml-quants.c. Built and run by ggml_fixtures.sh,
 * which documents the file layout; not part of the library or its build.
 *
 * What: for fixed pseudo-random inputs (rows of ordinary, heavy-tailed,
 *   all-zero, single-outlier, all-equal, tiny, all-positive and tie-making
 *   values; importance weights with a few zeros) it records, per ggml type,
 *   llama.cpp's quantized bytes without and with importance weights and
 *   llama.cpp's dequantization of those bytes.
 * Why: our ggml_quants.c / ggml_kquants.c claim byte-for-byte and
 *   bit-for-bit parity; the only trustworthy witness is llama.cpp itself.
 * Design: compiled against ggml-quants.c alone (-O1, no -march: no FMA
 *   contraction, as ggml-base is built). The few ggml.c functions it needs
 *   (row sizes, type names, abort, the f16 table) are supplied here. The
 *   quantizer called is quantize_<t>(x, dst, rows, cols, imp) - what
 *   llama-quantize's ggml_quantize_chunk calls - with imp = NULL for the
 *   "plain" half; for every type but IQ4_NL that is quantize_row_<t>_ref,
 *   which is checked here.
 */
#include "ggml-quants.h"
#include "ggml-impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 8
#define COLS 256

/* ---- the pieces of ggml.c that ggml-quants.c links against ---- */

float ggml_table_f32_f16[1 << 16];

void ggml_abort(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

typedef struct {
    enum ggml_type type;
    const char *name; /* the fixture's file name (lower case) */
    int block;
    size_t bytes;
} type_row;

static const type_row TYPES[] = {
    {GGML_TYPE_F16, "f16", 1, 2},
    {GGML_TYPE_BF16, "bf16", 1, 2},
    {GGML_TYPE_Q8_0, "q8_0", QK8_0, sizeof(block_q8_0)},
    {GGML_TYPE_Q4_0, "q4_0", QK4_0, sizeof(block_q4_0)},
    {GGML_TYPE_Q4_1, "q4_1", QK4_1, sizeof(block_q4_1)},
    {GGML_TYPE_Q5_0, "q5_0", QK5_0, sizeof(block_q5_0)},
    {GGML_TYPE_Q5_1, "q5_1", QK5_1, sizeof(block_q5_1)},
    {GGML_TYPE_IQ4_NL, "iq4_nl", QK4_NL, sizeof(block_iq4_nl)},
    {GGML_TYPE_Q2_K, "q2_k", QK_K, sizeof(block_q2_K)},
    {GGML_TYPE_Q3_K, "q3_k", QK_K, sizeof(block_q3_K)},
    {GGML_TYPE_Q4_K, "q4_k", QK_K, sizeof(block_q4_K)},
    {GGML_TYPE_Q5_K, "q5_k", QK_K, sizeof(block_q5_K)},
    {GGML_TYPE_Q6_K, "q6_k", QK_K, sizeof(block_q6_K)},
};
#define NTYPES (sizeof TYPES / sizeof TYPES[0])

static const type_row *type_of(enum ggml_type t) {
    for (size_t i = 0; i < NTYPES; i++)
        if (TYPES[i].type == t) return &TYPES[i];
    ggml_abort(__FILE__, __LINE__, "type %d is not in the fixture table", (int)t);
    return NULL;
}

size_t ggml_type_size(enum ggml_type t) { return type_of(t)->bytes; }
int64_t ggml_blck_size(enum ggml_type t) { return type_of(t)->block; }
size_t ggml_row_size(enum ggml_type t, int64_t ne) { return ggml_type_size(t) * (size_t)ne / (size_t)type_of(t)->block; }
const char *ggml_type_name(enum ggml_type t) { return type_of(t)->name; }

/* ---- inputs ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double rng_unit(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; }

static float rng_normal(void) { return (float)(sqrt(-2.0 * log(rng_unit())) * cos(6.283185307179586 * rng_unit())); }

static void make_inputs(float *x, float *imp) {
    for (int r = 0; r < ROWS; r++) {
        float *xr = x + r * COLS;
        for (int c = 0; c < COLS; c++) {
            switch (r) {
            case 0: xr[c] = rng_normal(); break;                                 /* ordinary */
            case 1: {                                                            /* heavy tails, a scale per 32 */
                const float g = rng_normal(), s = (float)(0.05 + 0.3 * ((c / 32) % 5));
                xr[c] = s * g * g * g;
                break;
            }
            case 2: xr[c] = 0.0f; break;                                         /* all zero */
            case 3: xr[c] = c == 77 ? 37.5f : 0.0f; break;                       /* one outlier */
            case 4: xr[c] = 0.3f; break;                                         /* all equal */
            case 5: xr[c] = rng_normal() * (c < COLS / 2 ? 1e-6f : 1e-9f); break; /* tiny */
            case 6: xr[c] = (float)(0.5 + 1.5 * rng_unit()); break;              /* all positive */
            default: { /* ties: half-integers under an extreme that makes 1/d exact */
                const int blk = c / 32, j = c % 32, even = blk % 2 == 0;
                const float top = even ? 127.0f : -8.0f; /* Q8_0: d = 127/127; Q4_0: d = -8/-8 */
                const int span = even ? 126 : 7;
                const int k = (int)(rng_next() % (uint64_t)(2 * span + 1)) - span; /* -span .. span */
                xr[c] = j == 3 * blk % 32 ? (blk % 4 >= 2 ? -top : top)
                        : j % 9 == 4      ? 0.0f
                                          : (float)k + (k < 0 ? -0.5f : 0.5f);
                break;
            }
            }
        }
    }
    for (int c = 0; c < COLS; c++) imp[c] = c % 37 == 5 ? 0.0f : (float)exp(rng_normal());
}

/* ---- llama.cpp's quantizers and dequantizers by type ---- */

static void quantize(enum ggml_type t, const float *x, void *dst, const float *imp) {
    switch (t) {
    case GGML_TYPE_F16:
        for (int i = 0; i < ROWS * COLS; i++) ((ggml_fp16_t *)dst)[i] = GGML_FP32_TO_FP16(x[i]);
        return;
    case GGML_TYPE_BF16:
        for (int i = 0; i < ROWS * COLS; i++) ((ggml_bf16_t *)dst)[i] = GGML_FP32_TO_BF16(x[i]);
        return;
    case GGML_TYPE_Q8_0: quantize_q8_0(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_Q4_0: quantize_q4_0(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_Q4_1: quantize_q4_1(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_Q5_0: quantize_q5_0(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_Q5_1: quantize_q5_1(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_IQ4_NL: quantize_iq4_nl(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_Q2_K: quantize_q2_K(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_Q3_K: quantize_q3_K(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_Q4_K: quantize_q4_K(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_Q5_K: quantize_q5_K(x, dst, ROWS, COLS, imp); return;
    case GGML_TYPE_Q6_K: quantize_q6_K(x, dst, ROWS, COLS, imp); return;
    default: ggml_abort(__FILE__, __LINE__, "no quantizer for type %d", (int)t);
    }
}

/* quantize_row_<t>_ref, where it exists and is what quantize_<t>(NULL) should equal; 0 when not. */
static int quantize_ref(enum ggml_type t, const float *x, void *dst) {
    const int64_t n = (int64_t)ROWS * COLS;
    switch (t) {
    case GGML_TYPE_Q8_0: quantize_row_q8_0_ref(x, dst, n); return 1;
    case GGML_TYPE_Q4_0: quantize_row_q4_0_ref(x, dst, n); return 1;
    case GGML_TYPE_Q4_1: quantize_row_q4_1_ref(x, dst, n); return 1;
    case GGML_TYPE_Q5_0: quantize_row_q5_0_ref(x, dst, n); return 1;
    case GGML_TYPE_Q5_1: quantize_row_q5_1_ref(x, dst, n); return 1;
    case GGML_TYPE_Q2_K: quantize_row_q2_K_ref(x, dst, n); return 1;
    case GGML_TYPE_Q3_K: quantize_row_q3_K_ref(x, dst, n); return 1;
    case GGML_TYPE_Q4_K: quantize_row_q4_K_ref(x, dst, n); return 1;
    case GGML_TYPE_Q5_K: quantize_row_q5_K_ref(x, dst, n); return 1;
    case GGML_TYPE_Q6_K: quantize_row_q6_K_ref(x, dst, n); return 1;
    default: return 0; /* F16 / BF16: one conversion; IQ4_NL: its _ref is a different (cruder) search */
    }
}

static void dequantize(enum ggml_type t, const void *src, float *y) {
    const int64_t n = (int64_t)ROWS * COLS;
    switch (t) {
    case GGML_TYPE_F16:
        for (int64_t i = 0; i < n; i++) y[i] = GGML_FP16_TO_FP32(((const ggml_fp16_t *)src)[i]);
        return;
    case GGML_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = GGML_BF16_TO_FP32(((const ggml_bf16_t *)src)[i]);
        return;
    case GGML_TYPE_Q8_0: dequantize_row_q8_0(src, y, n); return;
    case GGML_TYPE_Q4_0: dequantize_row_q4_0(src, y, n); return;
    case GGML_TYPE_Q4_1: dequantize_row_q4_1(src, y, n); return;
    case GGML_TYPE_Q5_0: dequantize_row_q5_0(src, y, n); return;
    case GGML_TYPE_Q5_1: dequantize_row_q5_1(src, y, n); return;
    case GGML_TYPE_IQ4_NL: dequantize_row_iq4_nl(src, y, n); return;
    case GGML_TYPE_Q2_K: dequantize_row_q2_K(src, y, n); return;
    case GGML_TYPE_Q3_K: dequantize_row_q3_K(src, y, n); return;
    case GGML_TYPE_Q4_K: dequantize_row_q4_K(src, y, n); return;
    case GGML_TYPE_Q5_K: dequantize_row_q5_K(src, y, n); return;
    case GGML_TYPE_Q6_K: dequantize_row_q6_K(src, y, n); return;
    default: ggml_abort(__FILE__, __LINE__, "no dequantizer for type %d", (int)t);
    }
}

/* ---- output ---- */

static void put_u32(FILE *f, uint32_t v) {
    const uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    fwrite(b, 1, 4, f);
}

/* f32 arrays little-endian (this driver runs on a little-endian host: checked in main) */
static void put_f32s(FILE *f, const float *v, size_t n) { fwrite(v, sizeof(float), n, f); }

static FILE *open_out(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) ggml_abort(__FILE__, __LINE__, "cannot write %s", path);
    return f;
}

static void close_out(FILE *f) {
    if (ferror(f) || fclose(f)) ggml_abort(__FILE__, __LINE__, "write failed");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    const uint32_t one = 1;
    if (*(const uint8_t *)&one != 1) ggml_abort(__FILE__, __LINE__, "expected a little-endian host");
    for (int i = 0; i < (1 << 16); i++) ggml_table_f32_f16[i] = GGML_COMPUTE_FP16_TO_FP32((uint16_t)i);

    static float x[ROWS * COLS], imp[COLS], y[ROWS * COLS];
    make_inputs(x, imp);

    FILE *f = open_out(argv[1], "inputs");
    fwrite("LPGGMLIN", 1, 8, f);
    put_u32(f, 1);
    put_u32(f, ROWS);
    put_u32(f, COLS);
    put_f32s(f, x, ROWS * COLS);
    put_f32s(f, imp, COLS);
    close_out(f);

    for (size_t k = 0; k < NTYPES; k++) {
        const type_row *t = &TYPES[k];
        const size_t row_bytes = ggml_row_size(t->type, COLS);
        uint8_t *q = calloc(ROWS, row_bytes), *q2 = calloc(ROWS, row_bytes);
        if (!q || !q2) ggml_abort(__FILE__, __LINE__, "out of memory");
        f = open_out(argv[1], t->name);
        fwrite("LPGGMLFX", 1, 8, f);
        put_u32(f, 1);
        put_u32(f, (uint32_t)t->type);
        put_u32(f, ROWS);
        put_u32(f, COLS);
        put_u32(f, (uint32_t)row_bytes);
        for (int with_imp = 0; with_imp < 2; with_imp++) {
            quantize(t->type, x, q, with_imp ? imp : NULL);
            if (!with_imp && quantize_ref(t->type, x, q2) && memcmp(q, q2, ROWS * row_bytes))
                ggml_abort(__FILE__, __LINE__, "%s: quantize_%s(NULL) differs from quantize_row_%s_ref", t->name,
                           t->name, t->name);
            dequantize(t->type, q, y);
            fwrite(q, 1, ROWS * row_bytes, f);
            put_f32s(f, y, ROWS * COLS);
        }
        close_out(f);
        free(q);
        free(q2);
        printf("%-7s %4zu bytes per row\n", t->name, row_bytes);
    }
    return 0;
}
