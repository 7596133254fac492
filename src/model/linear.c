/*
 * linear.c - Y = X W^T + b for every stored format of W.
 *
 * Dense f32 goes to BLAS (sgemv for one token, sgemm for a batch); packed
 * formats go to their kernels, which never materialize the whole f32 matrix.
 */
#include "model/linear.h"

#include "core/status_impl.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lp_linear_forward(const lp_linear *l, const float *X, int64_t T, float *Y) {
    switch (l->fmt) {
    case LP_LINEAR_DENSE:
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
    }
    return 0;
}

float *lp_linear_to_f32(const lp_linear *l) {
    float *w = malloc((size_t)(l->rows * l->cols) * sizeof(float));
    if (!w) return NULL;
    if (l->fmt == LP_LINEAR_DENSE) memcpy(w, l->w, (size_t)(l->rows * l->cols) * sizeof(float));
    else lp_qgroup_dequant(l->q, 0, l->rows, w);
    return w;
}

void lp_linear_set_qgroup(lp_linear *l, lp_qgroup *q) {
    free(l->w_owned);
    l->w_owned = NULL;
    l->w = NULL;
    l->fmt = LP_LINEAR_QGROUP;
    l->q = q;
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
    memset(l, 0, sizeof *l);
}

void lp_linear_describe(const lp_linear *l, char *buf, size_t n) {
    if (l->fmt == LP_LINEAR_DENSE) {
        const char *dt = lp_dtype_name(l->stored_dtype);
        snprintf(buf, n, "dense %s", dt);
        for (char *p = buf; *p; p++) *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    } else {
        const lp_qgroup *q = l->q;
        if (q->group >= q->cols)
            snprintf(buf, n, "qgroup w%d per-channel %s", q->bits, q->sym ? "sym" : "asym");
        else
            snprintf(buf, n, "qgroup w%d g%d %s", q->bits, q->group, q->sym ? "sym" : "asym");
    }
}
