/*
 * qgroup_q8.c - the activation quantizer, the scalar reference product and
 * the OpenMP drivers of the q8 products (qgroup_q8.h has the
 * specification; qgroup_q8_avx512vnni.c has the fast kernels).
 *
 * What: lp_qgroup_gemv_q8 = quantize x once into an aligned scratch, then
 * spans of row tiles shared by lp_par_rows, each running the fast kernel
 * or, on CPUs without AVX-512 VNNI, lp_qgroup_q8_gemv_ref;
 * lp_qgroup_gemm_q8 the same for T tokens (quantized on the team, blocks
 * of 16 sharing one lane-order setup), its kernel feeding each unpacked
 * chunk to four tokens.
 * Why here and not in the kernel file: the lane order and the scalar
 * quantizer define what every kernel reads (the kernel file holds a vector
 * copy of the quantizer, tested bit for bit against this one).
 * Design:
 *   - The quantizer works chunk by chunk: the chunk's x is gathered into
 *     the kernel's lane order through a 128-entry table, then max |x| and
 *     x / d rounded, in plain loops of 128 that the compiler vectorizes
 *     (the rounding adds and subtracts 1.5 * 2^23, which is rint for
 *     |v| < 2^22 in the default rounding mode; a libm call per value would
 *     be slower still). Even so it takes ~1.5 ns per column, ~2% of a
 *     2-thread 4096 x 11008 W4 product, so with VNNI the driver runs the
 *     kernel file's vector copy of it (bit-identical, ~6x faster).
 *   - The reference reads xq through the inverse table and the weights with
 *     lp_qgroup_get_block, the scalar definition of the bit layouts.
 *   - Spans of ROW_TILE-row tiles handed out by lp_par_rows (core/par.h),
 *     as for every packed product, so no result depends on the thread count.
 */
#include "format/qgroup_q8.h"

#include "core/cpu.h"
#include "core/half.h"
#include "core/par.h"
#include "core/status_impl.h"
#include "format/qgroup_kernels.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { ROW_TILE = 16 }; /* rows per OpenMP work item, as in qgroup_gemm.c */

/* Chunks per group (the whole row when one group). */
static int64_t chunks_per_group(const lp_qgroup *w, int64_t nchunks) {
    return w->ngroups == 1 ? nchunks : w->group / LP_Q8_CHUNK;
}

bool lp_qgroup_q8_covers(const lp_qgroup *w) {
    const bool bits_ok = w->bits == 2 || w->bits == 3 || w->bits == 4 || w->bits == 8;
    return bits_ok && (w->ngroups == 1 || w->group % LP_Q8_CHUNK == 0);
}

bool lp_qgroup_q8_supported(const lp_qgroup *w) {
    return lp_qgroup_q8_covers(w) && lp_cpu_has_avx512vnni() && lp_cpu_has_gfni();
}

int lp_qgroup_q8_lane_col(int bits, int whole, int p) {
    if (bits == 3 && whole) return p; /* the chunk layout gives the values in column order */
    const int h = p / 64, L = (p % 64) / 4, k = p % 4; /* vector, int32 lane, byte */
    int word, f; /* packed word of the chunk (w words per block) and field in it */
    /* b = 3's last blocks: the order of b = 2, whose 2-bit fields are the
     * low bits; the third bit of each weight joins its byte */
    const int w = bits == 3 ? 2 : bits; /* width of the plane that sets the order */
    switch (w) {
    case 8: word = 16 * h + L, f = k; break;          /* load h holds words 16h .. 16h+15 */
    case 4: word = L, f = 2 * k + h; break;           /* h = 0: low nibbles, 1: high */
    default: word = L % 8, f = 4 * k + 2 * h + L / 8; /* b = 2: shifted by 2 (2h + L/8) */
    }
    /* the plane layout (qgroup.h): field f of word i holds value i mod w + w f of block i / w */
    return LP_QGROUP_BLOCK * (word / w) + word % w + w * f;
}

/* ---- activations ---- */

static size_t align64(size_t n) { return (n + 63) / 64 * 64; }

size_t lp_qgroup_q8_act_bytes(const lp_qgroup *w) {
    const size_t C = (size_t)(lp_qkernels_ldx(w) / LP_Q8_CHUNK);
    return 63 + align64(C * LP_Q8_CHUNK) + align64(C * sizeof(float)) + align64(C * sizeof(int32_t)) +
           align64((size_t)w->ngroups * sizeof(float));
}

void lp_qgroup_q8_act_view(const lp_qgroup *w, void *buf, lp_q8_act *a) {
    const int64_t C = lp_qkernels_ldx(w) / LP_Q8_CHUNK;
    char *p = (char *)(((uintptr_t)buf + 63) & ~(uintptr_t)63);
    a->nchunks = C;
    a->xq = (int8_t *)p;
    p += align64((size_t)C * LP_Q8_CHUNK);
    a->d = (float *)p;
    p += align64((size_t)C * sizeof(float));
    a->sum = (int32_t *)p;
    p += align64((size_t)C * sizeof(int32_t));
    a->dsum = (float *)p;
}

/* rint(v) for |v| <= 2^22 in the default rounding mode: adding 1.5 * 2^23
 * leaves no fraction bits, so the sum is rounded half to even (see the top). */
static inline float round_even(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (v + magic) - magic;
}

/* max |v| over a chunk, as the largest bit pattern of |v|: for finite
 * floats the order of the patterns is the order of the values, and an
 * integer maximum vectorizes where a float one (NaN, -0) does not. */
static float chunk_amax(const float *v) {
    int32_t m = 0;
    for (int i = 0; i < LP_Q8_CHUNK; i++) {
        int32_t b;
        memcpy(&b, &v[i], sizeof b);
        b &= 0x7fffffff;
        m = b > m ? b : m;
    }
    float f;
    memcpy(&f, &m, sizeof f);
    return f;
}

/* One chunk: v = its 128 values of x in lane order (0 past cols); q = xq,
 * *sum = S_c; returns d_c. */
static float quantize_chunk(const float *v, int8_t *q, int32_t *sum) {
    const float d = chunk_amax(v) / 127.0f;
    if (d == 0.0f) {
        memset(q, 0, LP_Q8_CHUNK);
        *sum = 0;
        return 0.0f;
    }
    int32_t s = 0;
    for (int i = 0; i < LP_Q8_CHUNK; i++) {
        float r = round_even(v[i] / d); /* |v / d| <= ~127 unless d is subnormal */
        r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
        q[i] = (int8_t)(int32_t)r;
        s += (int32_t)r;
    }
    *sum = s;
    return d;
}

void lp_qgroup_q8_quantize_ref(const lp_qgroup *w, const float *x, lp_q8_act *a) {
    const int64_t C = a->nchunks, cols = w->cols;
    int col[2][LP_Q8_CHUNK]; /* [whole] */
    for (int p = 0; p < LP_Q8_CHUNK; p++)
        for (int k = 0; k < 2; k++) col[k][p] = lp_qgroup_q8_lane_col(w->bits, k, p);
    for (int64_t c = 0; c < C; c++) {
        const int64_t c0 = c * LP_Q8_CHUNK;
        float pad[LP_Q8_CHUNK], v[LP_Q8_CHUNK]; /* pad: the ragged last chunk, zero-filled */
        const float *cx = x + c0;
        if (c0 + LP_Q8_CHUNK > cols) {
            for (int i = 0; i < LP_Q8_CHUNK; i++) pad[i] = c0 + i < cols ? x[c0 + i] : 0.0f;
            cx = pad;
        }
        const int *cc = col[lp_qgroup_q8_whole(w, c)];
        for (int p = 0; p < LP_Q8_CHUNK; p++) v[p] = cx[cc[p]];
        a->d[c] = quantize_chunk(v, a->xq + c0, &a->sum[c]);
    }
    lp_qgroup_q8_group_sums(w, a);
}

void lp_qgroup_q8_group_sums(const lp_qgroup *w, lp_q8_act *a) {
    const int64_t cpg = chunks_per_group(w, a->nchunks);
    for (int64_t g = 0; g < w->ngroups; g++) a->dsum[g] = 0.0f;
    for (int64_t c = 0; c < a->nchunks; c++) {
        const int64_t g = c / cpg < w->ngroups ? c / cpg : w->ngroups - 1;
        a->dsum[g] += a->d[c] * (float)a->sum[c];
    }
}

void lp_qgroup_q8_quantize(const lp_qgroup *w, const float *x, lp_q8_act *a) {
    if (lp_qgroup_q8_supported(w)) lp_qgroup_q8_quantize_avx512vnni(w, x, a);
    else lp_qgroup_q8_quantize_ref(w, x, a);
}

/* ---- the specification ---- */

/* sum_{j in chunk c} q[r,j] xq_j, exact; pos = the lane position of each column. */
static int32_t chunk_dot_ref(const lp_qgroup *w, int64_t r, const int8_t *xq, const int *pos, int64_t c) {
    const int64_t b0 = c * (LP_Q8_CHUNK / LP_QGROUP_BLOCK);
    int32_t dot = 0;
    for (int64_t b = b0; b < b0 + LP_Q8_CHUNK / LP_QGROUP_BLOCK && b < w->blocks; b++) {
        uint8_t v[LP_QGROUP_BLOCK];
        lp_qgroup_get_block(w, r, b, v);
        for (int j = 0; j < LP_QGROUP_BLOCK; j++) dot += (int32_t)v[j] * xq[pos[(b - b0) * LP_QGROUP_BLOCK + j]];
    }
    return dot;
}

void lp_qgroup_q8_gemv_ref(const lp_qgroup *w, const lp_q8_act *a, float *y, int64_t r0, int64_t r1) {
    const int64_t C = a->nchunks, cpg = chunks_per_group(w, C);
    int pos[2][LP_Q8_CHUNK]; /* [whole]: inverse of lp_qgroup_q8_lane_col */
    for (int p = 0; p < LP_Q8_CHUNK; p++)
        for (int k = 0; k < 2; k++) pos[k][lp_qgroup_q8_lane_col(w->bits, k, p)] = p;
    for (int64_t r = r0; r < r1; r++) {
        float acc = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            const int64_t g = c / cpg < w->ngroups ? c / cpg : w->ngroups - 1;
            const int32_t dot = chunk_dot_ref(w, r, a->xq + c * LP_Q8_CHUNK, pos[lp_qgroup_q8_whole(w, c)], c);
            const float s = lp_f16_to_f32(w->scales[r * w->ngroups + g]);
            acc += (s * a->d[c]) * (float)(dot - lp_qgroup_zero(w, r, g) * a->sum[c]);
        }
        y[r] = acc;
    }
}

/* ---- the driver ---- */

typedef struct {
    const lp_qgroup *w;
    const lp_q8_act *a;
    float *y;
    void (*gemv)(const lp_qgroup *, const lp_q8_act *, float *, int64_t, int64_t);
} q8_job;

static void q8_rows(void *ctx, int64_t r0, int64_t r1) {
    const q8_job *j = ctx;
    j->gemv(j->w, j->a, j->y, r0, r1);
}

lp_status lp_qgroup_gemv_q8(const lp_qgroup *w, const float *x, float *y) {
    if (!lp_qgroup_q8_covers(w))
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "qgroup q8 gemv: bits %d, group %d of %lld columns not covered; expected bits 2, 3, 4 "
                       "or 8 and a group that is a multiple of 128 or per-channel; hint: use lp_qgroup_gemm",
                       w->bits, w->group, (long long)w->cols);
    const size_t bytes = lp_qgroup_q8_act_bytes(w);
    char small[8192]; /* a small layer's activations: no malloc per product */
    void *buf = bytes <= sizeof small ? small : malloc(bytes); /* lp_qgroup_q8_act_view aligns inside it */
    if (!buf) return lp_fail(LP_ERR_NOMEM, "qgroup q8 gemv: cannot allocate %zu bytes of activation scratch", bytes);
    lp_q8_act a;
    lp_qgroup_q8_act_view(w, buf, &a);
    lp_qgroup_q8_quantize(w, x, &a);
    q8_job job = {w, &a, y, lp_qgroup_q8_supported(w) ? lp_qgroup_q8_gemv_avx512vnni : lp_qgroup_q8_gemv_ref};
    /* as gemm_packed: contiguous spans handed out dynamically (a row's result
     * never depends on its thread), no OpenMP region for small layers */
    lp_par_rows(w->rows, ROW_TILE, w->rows * w->cols, q8_rows, &job);
    if (buf != small) free(buf);
    return LP_OK;
}

typedef struct {
    const lp_qgroup *w;
    const lp_q8_act *a;
    int64_t T;
    float *Y;
} q8_gemm_job;

static void q8_gemm_rows(void *ctx, int64_t r0, int64_t r1) {
    const q8_gemm_job *j = ctx;
    if (lp_qgroup_q8_supported(j->w)) {
        lp_qgroup_q8_gemm_avx512vnni(j->w, j->a, j->T, j->Y, j->w->rows, r0, r1);
        return;
    }
    for (int64_t t = 0; t < j->T; t++) lp_qgroup_q8_gemv_ref(j->w, j->a + t, j->Y + t * j->w->rows, r0, r1);
}

lp_status lp_qgroup_gemm_q8(const lp_qgroup *w, const float *X, int64_t T, float *Y) {
    if (!lp_qgroup_q8_covers(w))
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "qgroup q8 gemm: bits %d, group %d of %lld columns not covered; expected bits 2, 3, 4 "
                       "or 8 and a group that is a multiple of 128 or per-channel; hint: use lp_qgroup_gemm",
                       w->bits, w->group, (long long)w->cols);
    if (T < 0) return lp_fail(LP_ERR_ARG, "qgroup q8 gemm: T = %lld tokens, expected >= 0", (long long)T);
    if (T == 0) return LP_OK;
    const size_t per = lp_qgroup_q8_act_bytes(w), bytes = per * (size_t)T;
    char *buf = malloc(bytes);
    lp_q8_act *a = malloc((size_t)T * sizeof *a);
    if (!buf || !a) {
        free(buf);
        free(a);
        return lp_fail(LP_ERR_NOMEM, "qgroup q8 gemm: cannot allocate %zu bytes of activation scratch", bytes);
    }
    for (int64_t t = 0; t < T; t++) lp_qgroup_q8_act_view(w, buf + (size_t)t * per, &a[t]);
    /* the tokens share nothing: blocks of 16 quantized on the team's threads */
    const bool vnni = lp_qgroup_q8_supported(w);
#pragma omp parallel for schedule(static) if (T >= 32 && omp_get_max_threads() > 1)
    for (int64_t t0 = 0; t0 < T; t0 += 16) {
        const int64_t n = T - t0 < 16 ? T - t0 : 16;
        if (vnni) lp_qgroup_q8_quantize_tokens_avx512vnni(w, X + t0 * w->cols, n, a + t0);
        else
            for (int64_t t = t0; t < t0 + n; t++) lp_qgroup_q8_quantize_ref(w, X + t * w->cols, &a[t]);
    }
    q8_gemm_job job = {w, a, T, Y};
    lp_par_rows(w->rows, ROW_TILE, w->rows * w->cols * T, q8_gemm_rows, &job);
    free(buf);
    free(a);
    return LP_OK;
}
