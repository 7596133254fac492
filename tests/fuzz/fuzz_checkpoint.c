/*
 * fuzz_checkpoint.c - libFuzzer harness for the compressed-checkpoint reader
 * of one linear: lp_linear_load_packed (format/linear.h) and every format's
 * load behind it (the traits table, format/format.h).
 *
 * Input (seeds: tests/fuzz/seeds/checkpoint/, written by make_seeds_checkpoint.c):
 *   byte 0      rows - 1            (rows 1..256)
 *   bytes 1..2  cols - 1, LE, & 0xfff (cols 1..4096): the caller's shape, as
 *               the model's config gives it; bit 7 of byte 2 asks for the
 *               520-token product check below (slow, so not on every input),
 *               bit 6 for format version 2 (else 1: W3 chunks then go through
 *               the version 1 conversion, format/qgroup.h)
 *   then        the linear's description, JSON as the checkpoint stores it
 *               ({"format":"qgroup","bits":4,...} or {"format":"sum","parts":[..]}),
 *               up to a 0 byte
 *   then        a safetensors file holding the tensors "x.*"
 * The harness writes the description into the file's header the way the
 * checkpoint writer does (__metadata__ {"llmpress.format_version": "1" or
 * "2", "llmpress.linear.x": <description>}), inserted after the header's '{' and
 * padded with spaces so the tensors keep their alignment; a header that
 * does not start with '{' or whose length overruns the file is passed on
 * unchanged. Keeping the description apart lets the fuzzer mutate it as
 * plain JSON rather than as an escaped string inside JSON.
 *
 * The file is parsed from an exactly sized heap copy (lp_st_parse_impl, as
 * fuzz_safetensors.c), so ASan sees any read past its end; lp_weights has no
 * in-memory constructor, so this file includes io/safetensors.c to build one
 * from the parsed file the way weights_single does (the library's copy of
 * safetensors.o is then never linked: every symbol it defines is here).
 *
 * Oracle, beyond "no crash, no ASan/UBSan report, no leak":
 *   - a rejection is LP_ERR_FORMAT or LP_ERR_UNSUPPORTED, leaves the linear
 *     empty, and its message names the checkpoint ("fuzz-ckpt");
 *   - an accepted linear has 1..4 parts of known formats, rows x cols as
 *     asked, a NUL-terminated description;
 *   - each part's rows [r0, rows) dequantize to the same bits as the same
 *     rows of its whole dequantization; lp_linear_to_f32 is the parts' sum;
 *   - every part's product at every kernel level this CPU runs (ref, avx2,
 *     avx512), for one token, a few, and (small weights, when the input
 *     asks) 520 tokens (the dequantize + sgemm path) of unit vectors e_j,
 *     gives column j of that part's dequantized weight (f16 scales times small
 *     integers are exact in f32, so only rows holding a non-finite weight
 *     are skipped); lp_linear_forward runs on random input;
 *   - a lowrank part (W = B A) has its two factors checked as parts of
 *     their own shapes (rank x cols, rows x rank), none of them lowrank; its
 *     dequantized weight is B A within the rounding of an f32 sum
 *     (check_lowrank_dequant) and its product is, bit for bit, B's product
 *     of A's product (check_product).
 * Build and run: see docs/fuzzing.md and scripts/fuzz.sh.
 */
#include "io/safetensors.c" /* struct lp_weights, weights_alloc, ix_insert: see above */

#include "core/cpu.h"
#include "core/status_impl.h"
#include "format/linear.h"
#include "format/lowrank.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME "fuzz-ckpt"                   /* the checkpoint directory errors must name */
#define PATH "fuzz-ckpt/model.safetensors" /* its file */
#define BASE "x"                           /* the linear */
#define NTOK 7                             /* unit vectors per batch: 4 + 3 for the multi-token kernels */
#define BIG_T 520                          /* past every kernel's blas_min_tokens (avx512: 512) */

#define FUZZ_CHECK(x)                                                                  \
    do {                                                                               \
        if (!(x)) {                                                                    \
            fprintf(stderr, "fuzz_checkpoint: check failed at line %d: %s (last error: %s)\n", \
                    __LINE__, #x, lp_last_error());                                    \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static int g_verbose; /* LP_FUZZ_VERBOSE=1: say what happened to each input (for seeds) */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_verbose = getenv("LP_FUZZ_VERBOSE") != NULL;
    return 0;
}

typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *s, size_t n) {
    if (!n) return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* The safetensors image with the checkpoint metadata inserted (see the top). */
static void make_image(const uint8_t *st, size_t n, const char *desc, size_t dlen, int v2, buf *out) {
    uint64_t hlen = 0;
    for (int i = 7; n >= 8 && i >= 0; i--) hlen = hlen << 8 | st[i];
    if (n < 9 || hlen == 0 || hlen > n - 8 || st[8] != '{') {
        put(out, st, n);
        return;
    }
    buf ins = {0};
    static const char head1[] = "\"__metadata__\":{\"llmpress.format_version\":\"1\",\"llmpress.linear." BASE "\":\"";
    static const char head2[] = "\"__metadata__\":{\"llmpress.format_version\":\"2\",\"llmpress.linear." BASE "\":\"";
    put(&ins, v2 ? head2 : head1, sizeof head1 - 1);
    for (size_t i = 0; i < dlen; i++) {
        unsigned char c = (unsigned char)desc[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(&ins, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(&ins, esc, 6);
        } else {
            put(&ins, &c, 1);
        }
    }
    put(&ins, "\"}", 2);
    size_t k = 9;
    while (k < 8 + hlen && (st[k] == ' ' || st[k] == '\n' || st[k] == '\r' || st[k] == '\t')) k++;
    if (k < 8 + hlen && st[k] != '}') put(&ins, ",", 1);
    while (ins.n % 8) put(&ins, " ", 1); /* the buffer start moves by a multiple of 8 */
    uint64_t nh = hlen + ins.n;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(nh >> (8 * i));
    put(out, len8, 8);
    put(out, "{", 1);
    put(out, ins.p, ins.n);
    put(out, st + 9, n - 9);
    free(ins.p);
}

/* lp_weights over a file already in memory: weights_single without the mapping. */
static lp_status weights_from_memory(const void *data, size_t size, lp_weights **out) {
    *out = NULL;
    lp_weights *w = calloc(1, sizeof *w);
    if (!w || !(w->files = calloc(1, sizeof *w->files))) {
        free(w);
        return lp_fail(LP_ERR_NOMEM, "out of memory");
    }
    lp_status st = lp_st_parse_impl(data, size, PATH, &w->files[0]);
    if (st == LP_OK) {
        w->nfiles = 1;
        const lp_st_file *f = w->files[0];
        st = weights_alloc(w, f->n, PATH);
        for (int64_t i = 0; st == LP_OK && i < f->n; i++) {
            w->v[i] = &f->t[i];
            ix_insert(&w->ix, (size_t)i, w_name_at, w);
        }
        if (st == LP_OK) w->n = f->n;
    }
    if (st != LP_OK) {
        lp_weights_close(w);
        return st;
    }
    *out = w;
    return LP_OK;
}

static int row_finite(const float *r, int64_t cols) {
    for (int64_t j = 0; j < cols; j++)
        if (!isfinite(r[j])) return 0;
    return 1;
}

/* Part p's product at kernel level isa, for T tokens that are unit vectors
 * e_j (spread over the columns, first and last included), against its
 * dequantized weight D; for a lowrank part (lr given), against its factors'
 * own products instead, B's product of A's product, bit for bit: the
 * factors are checked as parts of their own, and B's product of a z that is
 * not a unit vector rounds in its format's own way (qgroup folds the zero
 * point into a sum), which no bound from the traits row could cover. */
static void check_product(const lp_part *p, lp_isa isa, const float *D, const lp_lowrank *lr, int64_t rows,
                          int64_t cols, int64_t T) {
    const lp_gemm_fn gemm = lp_format_gemm(p->fmt, isa);
    int64_t *col = malloc((size_t)T * sizeof *col);
    float *X = calloc((size_t)(T * cols), sizeof(float)), *Y = malloc((size_t)(T * rows) * sizeof(float));
    FUZZ_CHECK(col && X && Y);
    for (int64_t t = 0; t < T; t++) {
        col[t] = T == 1 ? 0 : T <= cols ? t * (cols - 1) / (T - 1) : t % cols;
        X[t * cols + col[t]] = 1.0f;
    }
    FUZZ_CHECK(gemm(p->data, X, T, Y) == LP_OK);
    if (lr) {
        float *Z = malloc((size_t)(T * lr->rank) * sizeof(float)), *E = malloc((size_t)(T * rows) * sizeof(float));
        FUZZ_CHECK(Z && E);
        FUZZ_CHECK(lr->a.gemm(lr->a.data, X, T, Z) == LP_OK && lr->b.gemm(lr->b.data, Z, T, E) == LP_OK);
        if (memcmp(Y, E, (size_t)(T * rows) * sizeof(float))) {
            fprintf(stderr, "fuzz_checkpoint: lowrank %s product, %lld token(s): not B's product of A's product\n",
                    lp_isa_name(isa), (long long)T);
            abort();
        }
        free(Z);
        free(E);
        T = 0; /* nothing to compare with D */
    }
    for (int64_t r = 0; r < rows; r++) {
        if (!row_finite(D + r * cols, cols)) continue;
        for (int64_t t = 0; t < T; t++) {
            const float want = D[r * cols + col[t]], got = Y[t * rows + r];
            if (!(fabsf(got - want) <= 1e-6f * fabsf(want))) {
                fprintf(stderr, "fuzz_checkpoint: %s %s product, %lld token(s): y[%lld][%lld] = %.9g, "
                        "W[%lld][%lld] = %.9g\n", p->fmt->name, lp_isa_name(isa), (long long)T, (long long)t,
                        (long long)r, got, (long long)r, (long long)col[t], want);
                abort();
            }
        }
    }
    free(col);
    free(X);
    free(Y);
}

/* A lowrank part's dequantized weight D against B A in double from its
 * factors' f32 values (A: K x cols, B: rows x K), on up to 16 columns spread
 * over the width: within (K + 1) 2u sum_k |B[r][k] A[k][j]| (+ K + 1
 * subnormal units), twice the bound of an f32 sum of K + 1 terms; entries
 * whose sum is not finite or nears the f32 range are skipped. */
static void check_lowrank_dequant(const float *D, const float *A, const float *B, int64_t K, int64_t rows,
                                  int64_t cols) {
    const int64_t n = cols < 16 ? cols : 16;
    for (int64_t i = 0; i < n; i++) {
        const int64_t j = n == 1 ? 0 : i * (cols - 1) / (n - 1);
        for (int64_t r = 0; r < rows; r++) {
            double want = 0, m = 0;
            for (int64_t k = 0; k < K; k++) {
                want += (double)B[r * K + k] * A[k * cols + j];
                m += fabs((double)B[r * K + k] * A[k * cols + j]);
            }
            if (!(m < 1e37) || !isfinite(want)) continue;
            const double tol = 1.2e-7 * (double)(K + 1) * m + 1.5e-45 * (double)(K + 1);
            if (!(fabs(D[r * cols + j] - want) <= tol)) {
                fprintf(stderr, "fuzz_checkpoint: lowrank dequant W[%lld][%lld] = %.9g, B A = %.9g (bound %.3g)\n",
                        (long long)r, (long long)j, D[r * cols + j], want, tol);
                abort();
            }
        }
    }
}

/* One part (rows x cols): D receives its dequantized weight. A lowrank
 * part's factors are checked first, as parts of their own shapes. */
static void check_part(const lp_part *p, int64_t rows, int64_t cols, int big, float *D) {
    int known = 0;
    for (int i = 0; lp_formats[i]; i++) known |= p->fmt == lp_formats[i];
    FUZZ_CHECK(known && p->data && p->gemm == lp_format_gemm(p->fmt, lp_cpu_isa()));
    const lp_lowrank *lr = p->fmt == &lp_format_lowrank ? p->data : NULL;
    FUZZ_CHECK(p->fmt->dequant(p->data, 0, rows, D) == LP_OK);
    if (lr) {
        const int64_t K = lr->rank;
        FUZZ_CHECK(lr->rows == rows && lr->cols == cols && K >= 1 && K <= (rows < cols ? rows : cols));
        FUZZ_CHECK(lr->a.fmt != &lp_format_lowrank && lr->b.fmt != &lp_format_lowrank);
        float *A = malloc((size_t)(K * cols) * sizeof(float)), *B = malloc((size_t)(rows * K) * sizeof(float));
        FUZZ_CHECK(A && B);
        check_part(&lr->a, K, cols, big, A);
        check_part(&lr->b, rows, K, big, B);
        check_lowrank_dequant(D, A, B, K, rows, cols);
        free(A);
        free(B);
    }
    const int64_t r0 = rows / 2;
    float *tail = malloc((size_t)((rows - r0) * cols) * sizeof(float));
    FUZZ_CHECK(tail && p->fmt->dequant(p->data, r0, rows, tail) == LP_OK);
    FUZZ_CHECK(!memcmp(tail, D + r0 * cols, (size_t)((rows - r0) * cols) * sizeof(float)));
    free(tail);
    /* one token (gemv), a few (the multi-token kernels), and, for small
     * weights, enough that every level takes its dequantize + sgemm path */
    for (int isa = LP_ISA_REF; isa <= (int)lp_cpu_isa(); isa++) {
        if (!lp_cpu_supports((lp_isa)isa)) continue;
        check_product(p, (lp_isa)isa, D, lr, rows, cols, 1);
        check_product(p, (lp_isa)isa, D, lr, rows, cols, cols < NTOK ? cols : NTOK);
        if (big && rows * cols <= 4096 && cols <= 512) check_product(p, (lp_isa)isa, D, lr, rows, cols, BIG_T);
    }
}

static void check_linear(const lp_linear *l, int64_t rows, int64_t cols, int big) {
    FUZZ_CHECK(l->nparts >= 1 && l->nparts <= LP_LINEAR_MAX_PARTS && l->rows == rows && l->cols == cols &&
               !l->bias);
    char desc[1024];
    memset(desc, 'z', sizeof desc);
    lp_linear_describe(l, desc, sizeof desc);
    FUZZ_CHECK(memchr(desc, 0, sizeof desc) && desc[0]);
    (void)lp_linear_nbytes(l);
    const size_t n = (size_t)(rows * cols);
    float *sum = malloc(n * sizeof(float)), *D = malloc(n * sizeof(float));
    FUZZ_CHECK(sum && D);
    for (int k = 0; k < l->nparts; k++) {
        check_part(&l->part[k], rows, cols, big, D);
        for (size_t i = 0; i < n; i++) sum[i] = k ? sum[i] + D[i] : D[i];
    }
    float *W = lp_linear_to_f32(l);
    FUZZ_CHECK(W && !memcmp(W, sum, n * sizeof(float)));
    free(W);
    /* the whole linear on random input: it runs; the values may be anything */
    enum { T = 3 };
    float *X = malloc((size_t)(T * cols) * sizeof(float)), *Y = malloc((size_t)(T * rows) * sizeof(float));
    FUZZ_CHECK(X && Y);
    uint32_t s = 12345;
    for (int64_t i = 0; i < T * cols; i++) {
        s = s * 1664525u + 1013904223u;
        X[i] = (float)(s >> 8) / 16777216.0f - 0.5f;
    }
    FUZZ_CHECK(lp_linear_forward(l, X, T, Y) == LP_OK);
    FUZZ_CHECK(lp_linear_forward(l, X, 1, Y) == LP_OK);
    free(X);
    free(Y);
    free(sum);
    free(D);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    const int64_t rows = 1 + data[0], cols = 1 + ((data[1] | data[2] << 8) & 0xfff);
    const char *desc = (const char *)data + 3;
    const uint8_t *end = memchr(desc, 0, size - 3);
    if (!end) return 0;
    const size_t dlen = (size_t)((const char *)end - desc);
    buf img = {0};
    make_image(end + 1, size - 3 - dlen - 1, desc, dlen, data[2] & 0x40, &img);
    /* an exactly sized copy, so ASan sees its end */
    uint8_t *copy = malloc(img.n ? img.n : 1);
    FUZZ_CHECK(copy);
    if (img.n) memcpy(copy, img.p, img.n);
    free(img.p);

    lp_weights *w = NULL;
    lp_status st = weights_from_memory(copy, img.n, &w);
    if (st != LP_OK) { /* the safetensors reader's own fuzzer covers this */
        FUZZ_CHECK(!w && strstr(lp_last_error(), PATH));
        if (g_verbose) fprintf(stderr, "[fuzz_checkpoint] file rejected: %s\n", lp_last_error());
        free(copy);
        return 0;
    }
    lp_linear l;
    memset(&l, 0xa5, sizeof l); /* the loader must set every field */
    const lp_fmt_src in = {w, NAME};
    st = lp_linear_load_packed(&in, BASE, rows, cols, &l);
    if (st != LP_OK) {
        FUZZ_CHECK(st == LP_ERR_FORMAT || st == LP_ERR_UNSUPPORTED);
        FUZZ_CHECK(strstr(lp_last_error(), NAME));
        FUZZ_CHECK(l.nparts == 0);
        if (g_verbose) fprintf(stderr, "[fuzz_checkpoint] linear rejected: %s\n", lp_last_error());
    } else {
        check_linear(&l, rows, cols, data[2] & 0x80);
        if (g_verbose) {
            char d[512];
            lp_linear_describe(&l, d, sizeof d);
            fprintf(stderr, "[fuzz_checkpoint] %lld x %lld: %s, %zu bytes\n", (long long)rows, (long long)cols, d,
                    lp_linear_nbytes(&l));
        }
        lp_linear_free(&l);
    }
    lp_weights_close(w);
    free(copy);
    return 0;
}
