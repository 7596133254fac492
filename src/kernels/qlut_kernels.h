/*
 * qlut_kernels.h - the dense-part kernels of the lookup-table format
 * (quant/qlut.h): serial functions over rows [r0, r1), no threads inside
 * (quant/qlut.c runs the OpenMP loop and adds the sparse outliers).
 *
 * x is (T, ldx), each token zero-padded past cols to blocks * 32 floats, so
 * padding codes never contribute; y[t * ldy + r] receives row r's dense sum
 * for token t, 1 <= T <= LP_QLUT_MAX_T. Per token the result does not depend
 * on T (the same operations in the same order).
 */
#ifndef LP_QLUT_KERNELS_H
#define LP_QLUT_KERNELS_H

#include "quant/qlut.h"

#define LP_QLUT_MAX_T 4

typedef void (*lp_qlut_rows_fn)(const lp_qlut *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                                int64_t r0, int64_t r1);

/* The specification: per row, columns in order, f32 accumulation. */
void lp_qlut_rows_ref(const lp_qlut *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                      int64_t r1);

/* AVX-512: 16 codes per shift/AND, one vpermps per 16 weights (b <= 4). */
void lp_qlut_rows_avx512(const lp_qlut *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                         int64_t r0, int64_t r1);

#endif
