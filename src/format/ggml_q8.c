/*
 * ggml_q8.c - the activation quantizer, the scalar reference product and
 * the driver of GGUF's quantized types with 8-bit activations (ggml_q8.h
 * has the specification; ggml_q8_avx512vnni.c is the fast kernel).
 *
 * Design: the quantizer is plain loops of 32 the compiler vectorizes, with
 * the rounding of qgroup_q8.c (adding and subtracting 1.5 * 2^23 is rint
 * for |v| < 2^22 in the default rounding mode); with VNNI the driver runs
 * the kernel file's vector copy of it (bit for bit, ~3% of a llama-25m
 * decode step before). The driver quantizes x on
 * the calling thread into a stack buffer (a heap one past 16 KB of
 * activations) and shares contiguous spans of rows (core/par.h); each row's
 * result depends only on the row, never on the thread count.
 */
#include "format/ggml_q8.h"

#include "core/cpu.h"
#include "core/half.h"
#include "core/par.h"
#include "core/status_impl.h"
#include "format/ggml_quants.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { QK = LP_GGML_QK, ROW_TILE = 16 };

bool lp_ggml_q8_covers(int type) {
    return lp_ggml_can_dequant(type) && type != LP_GGML_F32 && type != LP_GGML_F16 && type != LP_GGML_BF16;
}

bool lp_ggml_q8_supported(const lp_ggml_part *p) { return lp_ggml_q8_covers(p->type) && lp_cpu_has_avx512vnni(); }

static int64_t padded_blocks(int64_t cols) { return (cols / QK + 1) / 2 * 2; }

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

size_t lp_ggml_q8_act_bytes(int64_t cols) {
    const size_t nb = (size_t)padded_blocks(cols);
    return 63 + align64(nb * QK) + align64(nb * sizeof(float)) + align64(nb * sizeof(int32_t)) +
           align64(2 * nb * sizeof(int32_t));
}

void lp_ggml_q8_act_view(int64_t cols, void *buf, lp_ggml_q8_act *a) {
    const int64_t nb = padded_blocks(cols);
    char *p = (char *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    a->nblocks = nb;
    a->xq = (int8_t *)p;
    p += align64((size_t)nb * QK);
    a->d = (float *)p;
    p += align64((size_t)nb * sizeof(float));
    a->sum = (int32_t *)p;
    p += align64((size_t)nb * sizeof(int32_t));
    a->sum16 = (int32_t *)p;
}

/* rint(v) for |v| <= 2^22 in the default rounding mode (see the top). */
static inline float round_even(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (v + magic) - magic;
}

void lp_ggml_q8_quantize_ref(const float *x, int64_t cols, lp_ggml_q8_act *a) {
    const int64_t nb = cols / QK;
    for (int64_t b = 0; b < nb; b++) {
        const float *v = x + b * QK;
        int8_t *q = a->xq + b * QK;
        /* max |v| as the largest bit pattern of |v| (finite floats order as their patterns) */
        int32_t m = 0;
        for (int j = 0; j < QK; j++) {
            int32_t bits;
            memcpy(&bits, &v[j], sizeof bits);
            bits &= 0x7fffffff;
            m = bits > m ? bits : m;
        }
        float amax;
        memcpy(&amax, &m, sizeof amax);
        const float d = amax / 127.0f;
        int32_t s = 0, h = 0; /* h: the first half's sum */
        if (d == 0.0f) {
            memset(q, 0, QK);
        } else {
            for (int j = 0; j < QK; j++) {
                float r = round_even(v[j] / d);
                r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
                q[j] = (int8_t)(int32_t)r;
                s += (int32_t)r;
                if (j == QK / 2 - 1) h = s;
            }
        }
        a->d[b] = d;
        a->sum[b] = s;
        a->sum16[2 * b] = h;
        a->sum16[2 * b + 1] = s - h;
    }
    for (int64_t b = nb; b < a->nblocks; b++) { /* the padding block */
        memset(a->xq + b * QK, 0, QK);
        a->d[b] = 0.0f;
        a->sum[b] = a->sum16[2 * b] = a->sum16[2 * b + 1] = 0;
    }
}

void lp_ggml_q8_quantize(const float *x, int64_t cols, lp_ggml_q8_act *a) {
    if (lp_cpu_has_avx512vnni()) lp_ggml_q8_quantize_avx512vnni(x, cols, a);
    else lp_ggml_q8_quantize_ref(x, cols, a);
}

/* ---- the specification ---- */

void lp_ggml_q8_gemv_ref(const lp_ggml_part *p, const lp_ggml_q8_act *a, float *y, int64_t r0, int64_t r1) {
    const lp_ggml_type_info ti = lp_ggml_type_of(p->type);
    const int64_t n = (int64_t)ti.block, nblk = p->cols / n; /* values and blocks of a row */
    const size_t bs = (size_t)ti.bytes;
    int8_t code[LP_GGML_QK_K];
    float sc[LP_GGML_QK_K / 16], mn[LP_GGML_QK_K / 16];
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
        float acc = 0.0f;
        for (int64_t k = 0; k < nblk; k++) {
            lp_ggml_block_codes(p->type, row + (size_t)k * bs, code, sc, mn);
            for (int64_t u = 0; u < n / 16; u++) {
                const int64_t u0 = k * n + 16 * u; /* the sub-block's first column */
                const float d = a->d[u0 / QK];
                int32_t dot = 0;
                for (int j = 0; j < 16; j++) dot += (int32_t)code[16 * u + j] * a->xq[u0 + j];
                const float dotf = (sc[u] * d) * (float)dot, minf = (mn[u] * d) * (float)a->sum16[u0 / 16];
                acc += dotf + minf;
            }
        }
        y[r] = acc;
    }
}

/* ---- the driver ---- */

typedef struct {
    const lp_ggml_part *p;
    const lp_ggml_q8_act *a;
    float *y;
    void (*gemv)(const lp_ggml_part *, const lp_ggml_q8_act *, float *, int64_t, int64_t);
} q8_job;

static void q8_rows(void *ctx, int64_t r0, int64_t r1) {
    const q8_job *j = ctx;
    j->gemv(j->p, j->a, j->y, r0, r1);
}

lp_status lp_ggml_gemv_q8(const lp_ggml_part *p, const float *x, float *y) {
    if (!lp_ggml_q8_covers(p->type))
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "ggml q8 gemv: type %d has no 8-bit activation product (the quantized block types do)", p->type);
    const size_t bytes = lp_ggml_q8_act_bytes(p->cols);
    char small[16384]; /* a decode step's activations: no malloc per product */
    void *buf = bytes <= sizeof small ? small : malloc(bytes);
    if (!buf) return lp_fail(LP_ERR_NOMEM, "ggml q8 gemv: cannot allocate %zu bytes of activation scratch", bytes);
    lp_ggml_q8_act a;
    lp_ggml_q8_act_view(p->cols, buf, &a);
    lp_ggml_q8_quantize(x, p->cols, &a);
    q8_job job = {p, &a, y, lp_ggml_q8_supported(p) ? lp_ggml_q8_gemv_avx512vnni : lp_ggml_q8_gemv_ref};
    lp_par_rows(p->rows, ROW_TILE, p->rows * p->cols, q8_rows, &job);
    if (buf != small) free(buf);
    return LP_OK;
}

typedef struct {
    const lp_ggml_part *p;
    const lp_ggml_q8_act *a;
    int64_t T;
    float *Y;
} q8_gemm_job;

static void q8_gemm_rows(void *ctx, int64_t r0, int64_t r1) {
    const q8_gemm_job *j = ctx;
    if (lp_ggml_q8_supported(j->p)) {
        lp_ggml_q8_gemm_avx512vnni(j->p, j->a, j->T, j->Y, j->p->rows, r0, r1);
        return;
    }
    for (int64_t t = 0; t < j->T; t++) lp_ggml_q8_gemv_ref(j->p, j->a + t, j->Y + t * j->p->rows, r0, r1);
}

lp_status lp_ggml_gemm_q8(const lp_ggml_part *p, const float *X, int64_t T, float *Y) {
    if (!lp_ggml_q8_covers(p->type))
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "ggml q8 gemm: type %d has no 8-bit activation product (the quantized block types do)", p->type);
    if (T < 0) return lp_fail(LP_ERR_ARG, "ggml q8 gemm: T = %lld tokens, expected >= 0", (long long)T);
    if (T == 0) return LP_OK;
    const size_t per = lp_ggml_q8_act_bytes(p->cols), bytes = per * (size_t)T;
    char *buf = malloc(bytes);
    lp_ggml_q8_act *a = malloc((size_t)T * sizeof *a);
    if (!buf || !a) {
        free(buf);
        free(a);
        return lp_fail(LP_ERR_NOMEM, "ggml q8 gemm: cannot allocate %zu bytes of activation scratch", bytes);
    }
    /* the tokens share nothing: quantized on the team's threads */
#pragma omp parallel for schedule(static) if (T >= 32 && omp_get_max_threads() > 1)
    for (int64_t t = 0; t < T; t++) {
        lp_ggml_q8_act_view(p->cols, buf + (size_t)t * per, &a[t]);
        lp_ggml_q8_quantize(X + t * p->cols, p->cols, &a[t]);
    }
    q8_gemm_job job = {p, a, T, Y};
    lp_par_rows(p->rows, ROW_TILE, p->rows * p->cols * T, q8_gemm_rows, &job);
    free(buf);
    free(a);
    return LP_OK;
}
