/*
 * gptqpack.c - the "gptq" format (gptqpack.h): views over GPTQ checkpoint
 * tensors checked as untrusted input, conversion to and from qgroup, the
 * reference dequantization and product, and the traits row.
 *
 * Design: every access to a packed value goes through lp_gptqpack_field (the
 * bit stream rule of gptqpack.h), so 3-bit's words that straddle need no
 * special case. Conversions work one 32-column block at a time: a qgroup
 * block and the GPTQ words of the same 32 input columns (b words per output)
 * cover each other exactly, so blocks are independent and run under one
 * OpenMP `parallel for` with results independent of the thread count.
 */
#include "format/gptqpack.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "format/rowgemm.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bits_ok(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

const char *lp_gptqpack_axis_problem(int64_t n, int bits) {
    if (n < 1 || n > INT_MAX) return "needs 1 to 2^31 - 1 values";
    if (bits == 3 && n % 32) return "needs a multiple of 32 at 3 bits (values cross words in groups of 32)";
    if ((n * bits) % 32) return "does not fill whole int32 words (n * bits must be a multiple of 32)";
    return NULL;
}

/* OR value v (b bits) into stream position i of w[0], w[stride], ...: the
 * inverse of lp_gptqpack_field on zero-filled words. */
static void put_field(uint32_t *w, int64_t stride, int64_t i, int bits, unsigned v) {
    const int64_t bit = i * bits, word = bit >> 5;
    const int sh = (int)(bit & 31);
    w[word * stride] |= (uint32_t)((uint64_t)v << sh);
    if (sh + bits > 32) w[(word + 1) * stride] |= (uint32_t)(v >> (32 - sh));
}

/* ---- views ---- */

lp_status lp_gptqpack_view(lp_gptqpack *w, const char *file, const char *base, int64_t rows, int64_t cols,
                           int bits, int64_t ngroups, int zero_offset, const void *qweight, size_t qweight_bytes,
                           const void *qzeros, size_t qzeros_bytes, const void *scales, size_t scales_bytes,
                           const void *g_idx, size_t g_idx_bytes) {
    memset(w, 0, sizeof *w);
    if (!bits_ok(bits))
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": bits = %d; a GPTQ checkpoint holds 2, 3, 4 or 8 bits", file,
                       base, bits);
    if (zero_offset != 0 && zero_offset != 1)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": zero offset %d, expected 0 (gptq_v2) or 1 (gptq)", file,
                       base, zero_offset);
    const char *why = lp_gptqpack_axis_problem(cols, bits);
    if (why)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.qweight\": %lld input features at %d bits: %s", file, base,
                       (long long)cols, bits, why);
    why = lp_gptqpack_axis_problem(rows, bits);
    if (why)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.qzeros\": %lld output features at %d bits: %s", file, base,
                       (long long)rows, bits, why);
    if (ngroups < 1 || ngroups > INT_MAX)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.scales\": %lld groups, expected 1 to 2^31 - 1", file, base,
                       (long long)ngroups);
    /* rows, cols, ngroups < 2^31: the products below fit in 64 bits */
    const size_t qw = (size_t)(cols * bits / 32) * (size_t)rows * 4;
    const size_t qz = (size_t)ngroups * (size_t)(rows * bits / 32) * 4;
    const size_t sc = (size_t)ngroups * (size_t)rows * 2, gi = (size_t)cols * 4;
    if (qweight_bytes != qw || qzeros_bytes != qz || scales_bytes != sc || g_idx_bytes != gi)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": tensors of %zu/%zu/%zu/%zu bytes (qweight/qzeros/scales/"
                       "g_idx), expected %zu/%zu/%zu/%zu for %lld x %lld at %d bits in %lld groups", file, base,
                       qweight_bytes, qzeros_bytes, scales_bytes, g_idx_bytes, qw, qz, sc, gi, (long long)rows,
                       (long long)cols, bits, (long long)ngroups);
    if (!qweight || !qzeros || !scales || !g_idx || ((uintptr_t)qweight & 3u) || ((uintptr_t)qzeros & 3u) ||
        ((uintptr_t)g_idx & 3u) || ((uintptr_t)scales & 1u))
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": a tensor is missing or misaligned (int32 to 4 bytes, "
                       "f16 to 2)", file, base);
    const int32_t *gi32 = g_idx;
    for (int64_t k = 0; k < cols; k++)
        if (gi32[k] < 0 || gi32[k] >= ngroups)
            return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.g_idx\": entry %lld (input column %lld) is %d, expected "
                           "a group in [0, %lld) (scales has %lld rows)", file, base, (long long)k, (long long)k,
                           (int)gi32[k], (long long)ngroups, (long long)ngroups);
    const uint16_t *s = scales;
    for (int64_t i = 0; i < ngroups * rows; i++)
        if ((s[i] & 0x7c00u) == 0x7c00u)
            return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.scales\": group %lld output %lld is %s (f16 0x%04x), "
                           "expected a finite number", file, base, (long long)(i / rows), (long long)(i % rows),
                           (s[i] & 0x3ffu) ? "NaN" : "infinite", s[i]);
    if (zero_offset) {
        const unsigned maxq = (1u << bits) - 1u;
        const int64_t words = rows * bits / 32;
        for (int64_t g = 0; g < ngroups; g++)
            for (int64_t n = 0; n < rows; n++) {
                unsigned f = lp_gptqpack_field((const uint32_t *)qzeros + g * words, 1, n, bits);
                if (f == maxq)
                    return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.qzeros\": group %lld output %lld stores %u, which "
                                   "GPTQ v1 (zero - 1 stored) makes the zero point %u, outside [0, %u]; readers "
                                   "disagree on such a value; hint: a v1 packer cannot store a zero of 0 - re-export "
                                   "the model with checkpoint_format \"gptq_v2\"", file, base, (long long)g,
                                   (long long)n, f, maxq + 1, maxq);
            }
    }
    *w = (lp_gptqpack){.bits = bits, .zero_offset = zero_offset, .rows = rows, .cols = cols, .ngroups = ngroups,
                       .qweight = qweight, .qzeros = qzeros, .scales = scales, .g_idx = g_idx};
    return LP_OK;
}

void lp_gptqpack_free(lp_gptqpack *w) {
    if (!w) return;
    free(w->owned);
    memset(w, 0, sizeof *w);
}

size_t lp_gptqpack_nbytes(const lp_gptqpack *w) {
    const size_t N = (size_t)w->rows, K = (size_t)w->cols, G = (size_t)w->ngroups, b = (size_t)w->bits;
    return 4 * (K * b / 32 * N + G * (N * b / 32) + K) + 2 * G * N;
}

/* ---- conversions ---- */

lp_status lp_gptqpack_from_qgroup(const lp_qgroup *q, int zero_offset, lp_gptqpack *out) {
    memset(out, 0, sizeof *out);
    const int64_t N = q->rows, K = q->cols, G = q->ngroups;
    const int bits = q->bits;
    if (!bits_ok(bits)) return lp_fail(LP_ERR_ARG, "gptq: %d-bit weights; GPTQ stores 2, 3, 4 or 8 bits", bits);
    const char *why = lp_gptqpack_axis_problem(K, bits);
    if (why) return lp_fail(LP_ERR_ARG, "gptq: %lld input features at %d bits: %s", (long long)K, bits, why);
    why = lp_gptqpack_axis_problem(N, bits);
    if (why) return lp_fail(LP_ERR_ARG, "gptq: %lld output features at %d bits: %s", (long long)N, bits, why);
    if (zero_offset && !q->sym)
        for (int64_t i = 0; i < N * G; i++)
            if (q->zeros[i] == 0)
                return lp_fail(LP_ERR_ARG, "gptq: row %lld group %lld has zero point 0, which GPTQ v1 (zero - 1 "
                               "stored) cannot hold; write checkpoint_format gptq_v2", (long long)(i / G),
                               (long long)(i % G));
    const int64_t kw = K * bits / 32, nw = N * bits / 32;
    const size_t b_qw = (size_t)(kw * N) * 4, b_qz = (size_t)(G * nw) * 4, b_gi = (size_t)K * 4,
                 b_sc = (size_t)(G * N) * 2;
    unsigned char *blk = calloc(1, b_qw + b_qz + b_gi + b_sc);
    if (!blk) return lp_fail(LP_ERR_NOMEM, "gptq: cannot allocate %zu bytes", b_qw + b_qz + b_gi + b_sc);
    uint32_t *qw = (uint32_t *)blk, *qz = (uint32_t *)(blk + b_qw);
    int32_t *gi = (int32_t *)(blk + b_qw + b_qz);
    uint16_t *sc = (uint16_t *)(blk + b_qw + b_qz + b_gi);
    /* codes: qgroup block k (columns 32k..32k+31) -> GPTQ words [k*bits, (k+1)*bits) of every output */
#pragma omp parallel for schedule(static) if (N * K > (1 << 16))
    for (int64_t k = 0; k < q->blocks; k++) {
        uint8_t v[LP_QGROUP_BLOCK];
        for (int64_t n = 0; n < N; n++) {
            lp_qgroup_get_block(q, n, k, v);
            for (int64_t j = 0; j < LP_QGROUP_BLOCK && 32 * k + j < K; j++)
                put_field(qw + n, N, 32 * k + j, bits, v[j]);
        }
    }
    for (int64_t g = 0; g < G; g++)
        for (int64_t n = 0; n < N; n++) {
            put_field(qz + g * nw, 1, n, bits, (unsigned)(lp_qgroup_zero(q, n, g) - zero_offset));
            sc[g * N + n] = q->scales[n * G + g];
        }
    for (int64_t c = 0; c < K; c++) gi[c] = (int32_t)(c / q->group);
    *out = (lp_gptqpack){.bits = bits, .zero_offset = zero_offset, .rows = N, .cols = K, .ngroups = G, .qweight = qw,
                         .qzeros = qz, .scales = sc, .g_idx = gi, .owned = blk};
    return LP_OK;
}

lp_status lp_gptqpack_to_qgroup(const lp_gptqpack *w, const char *file, const char *base, int group, int sym,
                                lp_qgroup *out) {
    const int64_t N = w->rows, K = w->cols;
    const int bits = w->bits;
    LP_TRY(lp_qgroup_init(out, N, K, bits, group, sym));
    const int64_t G = out->ngroups;
    LP_ASSERT(G == w->ngroups); /* the caller checked g_idx = k / group */
    for (int64_t g = 0; g < G; g++)
        for (int64_t n = 0; n < N; n++) {
            const int z = lp_gptqpack_zero(w, g, n);
            if (sym && z != 1 << (bits - 1)) {
                lp_qgroup_free(out);
                return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.qzeros\": group %lld output %lld has zero point %d, "
                               "but quantization_config says sym (every zero is %d at %d bits)", file, base,
                               (long long)g, (long long)n, z, 1 << (bits - 1), bits);
            }
            LP_ASSERT(z >= 0 && z < 1 << bits); /* the view refused the others */
            if (!sym) out->zeros[n * G + g] = (uint8_t)z;
            out->scales[n * G + g] = w->scales[g * N + n];
        }
    /* four blocks per work item: at b = 3 they share one chunk, which
     * put_block rewrites */
#pragma omp parallel for schedule(static) if (N * K > (1 << 16))
    for (int64_t k4 = 0; k4 < out->blocks; k4 += 4) {
        uint8_t v[LP_QGROUP_BLOCK];
        for (int64_t k = k4; k < k4 + 4 && k < out->blocks; k++)
            for (int64_t n = 0; n < N; n++) {
                memset(v, 0, sizeof v); /* padding past K stays 0, as qgroup requires */
                for (int64_t j = 0; j < LP_QGROUP_BLOCK && 32 * k + j < K; j++)
                    v[j] = (uint8_t)lp_gptqpack_field(w->qweight + n, N, 32 * k + j, bits);
                lp_qgroup_put_block(out, n, k, v);
            }
    }
    return LP_OK;
}

/* ---- dequantization and the product ---- */

void lp_gptqpack_dequant(const lp_gptqpack *w, int64_t r0, int64_t r1, float *out) {
    const int64_t N = w->rows, K = w->cols;
    for (int64_t n = r0; n < r1; n++) {
        float *o = out + (n - r0) * K;
        for (int64_t k = 0; k < K; k++) {
            const int64_t g = w->g_idx[k];
            const int q = (int)lp_gptqpack_field(w->qweight + n, N, k, w->bits);
            o[k] = lp_f16_to_f32(w->scales[g * N + n]) * (float)(q - lp_gptqpack_zero(w, g, n));
        }
    }
}

static void rows_dequant(const void *d, int64_t r0, int64_t r1, float *out) { lp_gptqpack_dequant(d, r0, r1, out); }

/* The specification: tiles of rows dequantized, then sgemm (rowgemm's BLAS
 * path for every T: blas_min_tokens = 0). */
static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) {
    const lp_gptqpack *w = d;
    const lp_rowgemm g = {.name = "gptq", .w = w, .rows = w->rows, .cols = w->cols, .ldx = w->cols, .max_t = 1,
                          .dequant = rows_dequant};
    return lp_rowgemm_run(&g, X, T, Y, 0);
}

static lp_status gptq_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    const lp_gptqpack *w = d;
    const lp_rowgemm g = {.name = "gptq", .w = w, .rows = w->rows, .cols = w->cols, .ldx = w->cols, .max_t = 1,
                          .dequant = rows_dequant};
    lp_rowgemm_dequant(&g, r0, r1, out);
    return LP_OK;
}

/* ---- the traits row ---- */

static size_t gptq_nbytes(const void *d) { return lp_gptqpack_nbytes(d); }

static void gptq_describe(const void *d, char *buf, size_t n) {
    const lp_gptqpack *w = d;
    snprintf(buf, n, "gptq w%d %lld groups%s", w->bits, (long long)w->ngroups, w->zero_offset ? "" : " v2");
}

static lp_status gptq_save(const void *d, lp_st_writer *st, const char *base, char *meta, size_t n) {
    const lp_gptqpack *w = d;
    const int64_t K = w->cols, N = w->rows, G = w->ngroups;
    LP_TRY(lp_fmt_add(st, base, ".qweight", LP_DT_I32, K * w->bits / 32, N, w->qweight));
    LP_TRY(lp_fmt_add(st, base, ".qzeros", LP_DT_I32, G, N * w->bits / 32, w->qzeros));
    LP_TRY(lp_fmt_add(st, base, ".scales", LP_DT_F16, G, N, w->scales));
    char name[320];
    snprintf(name, sizeof name, "%s.g_idx", base);
    LP_TRY(lp_st_writer_add(st, name, LP_DT_I32, 1, &K, w->g_idx));
    snprintf(meta, n, "{\"format\":\"gptq\",\"bits\":%d,\"groups\":%lld,\"zero_offset\":%d}", w->bits, (long long)G,
             w->zero_offset);
    return LP_OK;
}

lp_status lp_gptqpack_load_tensors(const lp_fmt_src *in, const char *base, int64_t rows, int64_t cols, int bits,
                                   int64_t ngroups, int zero_offset, lp_gptqpack *w) {
    memset(w, 0, sizeof *w);
    if (!bits_ok(bits))
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": bits = %d; a GPTQ checkpoint holds 2, 3, 4 or 8 bits",
                       in->name, base, bits);
    const char *why = lp_gptqpack_axis_problem(cols, bits);
    if (why)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.qweight\": %lld input features at %d bits: %s", in->name, base,
                       (long long)cols, bits, why);
    why = lp_gptqpack_axis_problem(rows, bits);
    if (why)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s.qzeros\": %lld output features at %d bits: %s", in->name, base,
                       (long long)rows, bits, why);
    char name[320];
    snprintf(name, sizeof name, "%s.scales", base);
    const lp_tensor_view *qw, *qz, *sc, *gi;
    if (ngroups < 0) { /* from the scales tensor: [G, rows] */
        const lp_tensor_view *t = lp_weights_find(in->w, name);
        ngroups = t && t->ndim == 2 ? t->shape[0] : 1; /* a bad one is reported just below */
    }
    LP_TRY(lp_fmt_tensor(in, base, ".scales", LP_DT_F16, ngroups, rows, &sc));
    LP_TRY(lp_fmt_tensor(in, base, ".qweight", LP_DT_I32, cols * bits / 32, rows, &qw));
    LP_TRY(lp_fmt_tensor(in, base, ".qzeros", LP_DT_I32, ngroups, rows * bits / 32, &qz));
    snprintf(name, sizeof name, "%s.g_idx", base);
    gi = lp_weights_find(in->w, name);
    if (!gi) return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is missing", in->name, name);
    if (gi->dtype != LP_DT_I32 || gi->ndim != 1 || gi->shape[0] != cols)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is %s %dD [%lld%s]; expected I32 [%lld]",
                       lp_weights_file_of(in->w, name), name, lp_dtype_name(gi->dtype), gi->ndim,
                       (long long)(gi->ndim ? gi->shape[0] : 0), gi->ndim > 1 ? ", ..." : "", (long long)cols);
    return lp_gptqpack_view(w, lp_weights_file_of(in->w, name), base, rows, cols, bits, ngroups, zero_offset, qw->data,
                            qw->nbytes, qz->data, qz->nbytes, sc->data, sc->nbytes, gi->data, gi->nbytes);
}

static lp_status gptq_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                           void **data) {
    int64_t bits, groups, off;
    LP_TRY(lp_fmt_int(in, base, desc, "bits", 2, 8, &bits));
    LP_TRY(lp_fmt_int(in, base, desc, "groups", 1, INT32_MAX, &groups));
    LP_TRY(lp_fmt_int(in, base, desc, "zero_offset", 0, 1, &off));
    lp_gptqpack *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_gptqpack_load_tensors(in, base, rows, cols, (int)bits, groups, (int)off, w);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    *data = w;
    return LP_OK;
}

static void gptq_free(void *d) {
    lp_gptqpack_free(d);
    free(d);
}

const lp_format lp_format_gptq = {
    .name = "gptq",
    .nbytes = gptq_nbytes,
    .describe = gptq_describe,
    .dequant = gptq_dequant,
    .gemm = {gemm_ref, NULL, NULL},
    .save = gptq_save,
    .load = gptq_load,
    .free = gptq_free,
};
