/*
 * dense.c - the dense format's row (dense.h): products through the backend
 * (BLAS sgemv for one token, sgemm for a batch).
 */
#include "format/dense.h"

#include "format/dense16.h"

#include "core/backend.h"
#include "core/finite.h"
#include "core/sgemm.h"
#include "core/half.h"
#include "core/status_impl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static lp_status new_dense(int64_t rows, int64_t cols, lp_dense **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return lp_fail(LP_ERR_NOMEM, "out of memory");
    (*out)->rows = rows;
    (*out)->cols = cols;
    return LP_OK;
}

lp_status lp_dense_view(int64_t rows, int64_t cols, const float *w, const void *raw, lp_dtype dtype,
                        const lp_tensor_view *src, lp_dense **out) {
    LP_ASSERT(w || (raw && (dtype == LP_DT_BF16 || dtype == LP_DT_F16)));
    LP_TRY(new_dense(rows, cols, out));
    (*out)->w = w;
    (*out)->raw = w ? NULL : raw;
    (*out)->dtype = dtype;
    (*out)->src = src;
    return LP_OK;
}

lp_status lp_dense_own(int64_t rows, int64_t cols, float *w, lp_dense **out) {
    lp_status st = new_dense(rows, cols, out);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    (*out)->w = (*out)->w_owned = w;
    (*out)->dtype = LP_DT_F32;
    return LP_OK;
}

/* dst (rows [r0, r1), cols floats each) = the 16-bit stored weight, converted. */
static void convert_raw(const lp_dense *d, int64_t r0, int64_t r1, float *dst) {
    const uint8_t *src = (const uint8_t *)d->raw + 2 * r0 * d->cols;
    const int64_t n = (r1 - r0) * d->cols;
    const int bf = d->dtype == LP_DT_BF16;
#pragma omp parallel for schedule(static) if (n >= (1 << 20))
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2); /* the mapping need not be 2-byte aligned */
        dst[i] = bf ? lp_bf16_to_f32(h) : lp_f16_to_f32(h);
    }
}

static pthread_mutex_t g_materialize = PTHREAD_MUTEX_INITIALIZER;

lp_status lp_dense_materialize(lp_dense *d) {
    if (__atomic_load_n(&d->w, __ATOMIC_ACQUIRE)) return LP_OK;
    LP_ASSERT(d->raw);
    lp_status st = LP_OK;
    pthread_mutex_lock(&g_materialize);
    if (!d->w) {
        float *w = malloc((size_t)(d->rows * d->cols) * sizeof(float));
        if (w) {
            convert_raw(d, 0, d->rows, w);
            d->w_owned = w;
            __atomic_store_n(&d->w, w, __ATOMIC_RELEASE);
        } else {
            st = lp_fail(LP_ERR_NOMEM, "out of memory converting a %lld x %lld weight to f32", (long long)d->rows,
                         (long long)d->cols);
        }
    }
    pthread_mutex_unlock(&g_materialize);
    return st;
}

lp_status lp_dense_writable(lp_dense *d, float **w) {
    if (!d->w_owned || d->src) {
        float *c = malloc((size_t)(d->rows * d->cols) * sizeof(float));
        if (!c) return lp_fail(LP_ERR_NOMEM, "out of memory copying a %lld x %lld weight", (long long)d->rows,
                               (long long)d->cols);
        if (d->w) memcpy(c, d->w, (size_t)(d->rows * d->cols) * sizeof(float));
        else convert_raw(d, 0, d->rows, c);
        free(d->w_owned);
        d->w = d->w_owned = c;
        d->raw = NULL;
    }
    d->src = NULL;
    d->dtype = LP_DT_F32;
    *w = d->w_owned;
    return LP_OK;
}

/* ---- the traits ---- */

static size_t dense_nbytes(const void *data) {
    const lp_dense *d = data;
    return (size_t)(d->rows * d->cols) * lp_dtype_size(d->dtype);
}

static void dense_describe(const void *data, char *buf, size_t n) {
    snprintf(buf, n, "dense %s", lp_dtype_name(((const lp_dense *)data)->dtype));
    for (char *p = buf; *p; p++) *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
}

static lp_status dense_dequant(const void *data, int64_t r0, int64_t r1, float *out) {
    const lp_dense *d = data;
    if (d->w) memcpy(out, d->w + r0 * d->cols, (size_t)((r1 - r0) * d->cols) * sizeof(float));
    else convert_raw(d, r0, r1, out);
    return LP_OK;
}

/* A 16-bit weight not yet converted runs from its stored form with dense16's
 * kernels (half the bytes per token, no f32 copy; converted row tiles and
 * lp_sgemm_nt for many tokens); a converted or f32 one with BLAS's sgemv for
 * one token and lp_sgemm_nt on 64-row tiles for several. */
static lp_status dense_gemm(const void *data, const float *X, int64_t T, float *Y) {
    lp_dense *d = (lp_dense *)data; /* the f32 form is a cache of the stored weight */
    if (!__atomic_load_n(&d->w, __ATOMIC_ACQUIRE)) {
        if (((uintptr_t)d->raw & 1) == 0) {
            const lp_dense16 v = {.rows = d->rows, .cols = d->cols, .dtype = d->dtype, .w = d->raw};
            return lp_dense16_gemm_ex(&v, X, T, Y, lp_cpu_isa(), 0);
        }
        LP_TRY(lp_dense_materialize(d)); /* a mapping that is not 2-byte aligned */
    }
    if (T == 1) {
        lp_backend_default()->sgemv(d->rows, d->cols, d->w, d->cols, X, Y);
        return LP_OK;
    }
    /* tiles of 64 weight rows, one lp_sgemm_nt each (no result depends on
     * the thread count) */
    const int64_t ntiles = (d->rows + 63) / 64;
#pragma omp parallel for schedule(dynamic, 1) if (ntiles > 1 && T * d->rows * d->cols > (1 << 18))
    for (int64_t i = 0; i < ntiles; i++) {
        const int64_t r0 = 64 * i, nr = d->rows - r0 < 64 ? d->rows - r0 : 64;
        lp_sgemm_nt(T, nr, d->cols, X, d->cols, d->w + r0 * d->cols, d->cols, Y + r0, d->rows);
    }
    return LP_OK;
}

static lp_status dense_save(const void *data, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_dense *d = data;
    char name[320];
    snprintf(name, sizeof name, "%s.weight", base);
    if (d->src) { /* exactly as stored */
        meta[0] = 0;
        return lp_st_writer_add(w, name, d->src->dtype, d->src->ndim, d->src->shape, d->src->data);
    }
    snprintf(meta, n, "{\"format\":\"dense\"}");
    if (d->w) return lp_fmt_add(w, base, ".weight", LP_DT_F32, d->rows, d->cols, d->w);
    const int64_t shp[2] = {d->rows, d->cols}; /* a view of a 16-bit tensor that has no name */
    return lp_st_writer_add(w, name, d->dtype, 2, shp, d->raw);
}

static lp_status dense_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                            void **data) {
    char name[320];
    snprintf(name, sizeof name, "%s.weight", base);
    const lp_tensor_view *t = lp_weights_find(in->w, name);
    if (!t) return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is missing", in->name, name);
    const lp_dtype dt = t->dtype;
    if (dt != LP_DT_F32 && dt != LP_DT_BF16 && dt != LP_DT_F16)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" is %s; expected F32, BF16 or F16", in->name, name,
                       lp_dtype_name(dt));
    LP_TRY(lp_fmt_tensor(in, base, ".weight", dt, rows, cols, &t));
    /* a dense part of a packed layout (a sum's part, a low-rank factor) is not
     * seen by the model's guard of plain dense linears: check it here */
    const int64_t bad = lp_finite_find(dt == LP_DT_F32 ? LP_FP_F32 : dt == LP_DT_BF16 ? LP_FP_BF16 : LP_FP_F16,
                                       t->data, rows * cols);
    if (bad >= 0)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor \"%s\" holds a NaN or Inf at [%lld, %lld]; every weight must be "
                       "finite", in->name, name, (long long)(bad / cols), (long long)(bad % cols));
    lp_dense *d;
    LP_TRY(lp_dense_view(rows, cols, dt == LP_DT_F32 ? t->data : NULL, t->data, dt, t, &d));
    *data = d;
    return LP_OK;
}

static void dense_free(void *data) {
    lp_dense *d = data;
    if (!d) return;
    free(d->w_owned);
    free(d);
}

const lp_format lp_format_dense = {
    .name = "dense",
    .nbytes = dense_nbytes,
    .describe = dense_describe,
    .dequant = dense_dequant,
    .gemm = {[LP_ISA_REF] = dense_gemm},
    .save = dense_save,
    .load = dense_load,
    .free = dense_free,
};
