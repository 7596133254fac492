/*
 * linear.c - Y = X W^T + b for every stored format of W.
 *
 * Dense f32 goes to BLAS (sgemv for one token, sgemm for a batch); packed
 * formats go to their kernels, which never materialize the whole f32 matrix.
 */
#include "format/linear.h"

#include "core/half.h"
#include "core/status_impl.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dst (n floats) = the 16-bit stored weight, converted. */
static void convert_raw(const lp_linear *l, float *dst) {
    const uint8_t *src = l->raw;
    const int64_t n = l->rows * l->cols;
    const int bf = l->stored_dtype == LP_DT_BF16;
#pragma omp parallel for schedule(static) if (n >= (1 << 20))
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2); /* the mapping need not be 2-byte aligned */
        dst[i] = bf ? lp_bf16_to_f32(h) : lp_f16_to_f32(h);
    }
}

static pthread_mutex_t g_materialize = PTHREAD_MUTEX_INITIALIZER;

lp_status lp_linear_materialize(lp_linear *l) {
    if (l->fmt != LP_LINEAR_DENSE || __atomic_load_n(&l->w, __ATOMIC_ACQUIRE)) return LP_OK;
    LP_ASSERT(l->raw && (l->stored_dtype == LP_DT_BF16 || l->stored_dtype == LP_DT_F16));
    lp_status st = LP_OK;
    pthread_mutex_lock(&g_materialize);
    if (!l->w) {
        float *w = malloc((size_t)(l->rows * l->cols) * sizeof(float));
        if (w) {
            convert_raw(l, w);
            l->w_owned = w;
            __atomic_store_n(&l->w, w, __ATOMIC_RELEASE);
        } else {
            st = lp_fail(LP_ERR_NOMEM, "out of memory converting a %lld x %lld weight to f32", (long long)l->rows,
                         (long long)l->cols);
        }
    }
    pthread_mutex_unlock(&g_materialize);
    return st;
}

void lp_linear_forward(const lp_linear *l, const float *X, int64_t T, float *Y) {
    switch (l->fmt) {
    case LP_LINEAR_DENSE:
        /* The f32 form is a cache of the stored weight: filling it does not
         * change what the linear computes, hence the cast. */
        if (!__atomic_load_n(&l->w, __ATOMIC_ACQUIRE) && lp_linear_materialize((lp_linear *)l) != LP_OK) {
            fprintf(stderr, "llmpress: %s\n", lp_last_error());
            abort();
        }
        if (T == 1)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)l->rows, (int)l->cols, 1.0f, l->w,
                        (int)l->cols, X, 1, 0.0f, Y, 1);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)l->rows, (int)l->cols,
                        1.0f, X, (int)l->cols, l->w, (int)l->cols, 0.0f, Y, (int)l->rows);
        break;
    case LP_LINEAR_QGROUP:
        lp_qgroup_gemm(l->q, X, T, Y);
        break;
    case LP_LINEAR_QMIX:
        lp_qmix_gemm(l->mix, X, T, Y);
        break;
    case LP_LINEAR_QLUT:
        lp_qlut_gemm(l->lut, X, T, Y);
        break;
    default:
        LP_ASSERT(!"unknown linear format");
    }
    if (l->bias)
        for (int64_t t = 0; t < T; t++)
            for (int64_t r = 0; r < l->rows; r++) Y[t * l->rows + r] += l->bias[r];
}

size_t lp_linear_nbytes(const lp_linear *l) {
    switch (l->fmt) {
    case LP_LINEAR_DENSE: return (size_t)(l->rows * l->cols) * lp_dtype_size(l->stored_dtype);
    case LP_LINEAR_QGROUP: return lp_qgroup_nbytes(l->q);
    case LP_LINEAR_QMIX: return lp_qmix_nbytes(l->mix);
    case LP_LINEAR_QLUT: return lp_qlut_nbytes(l->lut);
    }
    return 0;
}

float *lp_linear_to_f32(const lp_linear *l) {
    float *w = malloc((size_t)(l->rows * l->cols) * sizeof(float));
    if (!w) return NULL;
    lp_status s = LP_OK;
    switch (l->fmt) {
    case LP_LINEAR_DENSE:
        if (l->w) memcpy(w, l->w, (size_t)(l->rows * l->cols) * sizeof(float));
        else convert_raw(l, w);
        break;
    case LP_LINEAR_QGROUP: lp_qgroup_dequant(l->q, 0, l->rows, w); break;
    case LP_LINEAR_QMIX: s = lp_qmix_dequant(l->mix, 0, l->rows, w); break;
    case LP_LINEAR_QLUT: lp_qlut_dequant(l->lut, 0, l->rows, w); break;
    }
    if (s != LP_OK) {
        free(w);
        return NULL;
    }
    return w;
}

/* Drop the dense weight of l before it takes a packed format. */
static void drop_dense(lp_linear *l, lp_linear_format fmt) {
    LP_ASSERT(l->fmt == LP_LINEAR_DENSE);
    free(l->w_owned);
    l->w_owned = NULL;
    l->w = NULL;
    l->raw = NULL;
    l->fmt = fmt;
}

void lp_linear_set_qgroup(lp_linear *l, lp_qgroup *q) {
    drop_dense(l, LP_LINEAR_QGROUP);
    l->q = q;
}

void lp_linear_set_qmix(lp_linear *l, lp_qmix *mix) {
    drop_dense(l, LP_LINEAR_QMIX);
    l->mix = mix;
}

void lp_linear_set_qlut(lp_linear *l, lp_qlut *lut) {
    drop_dense(l, LP_LINEAR_QLUT);
    l->lut = lut;
}

double lp_linear_rel_error(const lp_linear *l, const float *W) {
    float *D = lp_linear_to_f32(l);
    if (!D) return NAN;
    double num = 0, den = 0;
    for (int64_t i = 0; i < l->rows * l->cols; i++) {
        double d = (double)W[i] - D[i];
        num += d * d;
        den += (double)W[i] * W[i];
    }
    free(D);
    return den > 0 ? sqrt(num / den) : 0.0;
}

void lp_linear_free(lp_linear *l) {
    free(l->w_owned);
    free(l->bias_owned);
    if (l->q) {
        lp_qgroup_free(l->q);
        free(l->q);
    }
    if (l->mix) {
        lp_qmix_free(l->mix);
        free(l->mix);
    }
    if (l->lut) {
        lp_qlut_free(l->lut);
        free(l->lut);
    }
    memset(l, 0, sizeof *l);
}

void lp_linear_describe(const lp_linear *l, char *buf, size_t n) {
    if (l->fmt == LP_LINEAR_DENSE) {
        const char *dt = lp_dtype_name(l->stored_dtype);
        snprintf(buf, n, "dense %s", dt);
        for (char *p = buf; *p; p++) *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    } else if (l->fmt == LP_LINEAR_QMIX) {
        const lp_qmix *x = l->mix;
        int64_t cnt[9] = {0};
        for (int64_t g = 0; g < x->ngroups; g++) cnt[x->gbits[g]]++;
        size_t k = (size_t)snprintf(buf, n, "qmix w%.2f g%d %s (groups:", lp_qmix_mean_bits(x), x->group,
                                    x->sym ? "sym" : "asym");
        for (int b = 1; b <= 8 && k < n; b++)
            if (cnt[b]) k += (size_t)snprintf(buf + k, n - k, " %lld x w%d", (long long)cnt[b], b);
        if (k < n) snprintf(buf + k, n - k, ")");
    } else if (l->fmt == LP_LINEAR_QLUT) {
        const lp_qlut *t = l->lut;
        snprintf(buf, n, "qlut w%d + %.2f%% sparse outliers", t->bits,
                 100.0 * (double)t->nnz / (double)(t->rows * t->cols));
    } else {
        const lp_qgroup *q = l->q;
        if (q->group >= q->cols)
            snprintf(buf, n, "qgroup w%d per-channel %s", q->bits, q->sym ? "sym" : "asym");
        else
            snprintf(buf, n, "qgroup w%d g%d %s", q->bits, q->group, q->sym ? "sym" : "asym");
    }
}
