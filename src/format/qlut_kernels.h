/*
 * qlut_kernels.h - the dense-part kernels of the lookup-table format
 * (format/qlut.h): serial functions over rows [r0, r1), no threads inside
 * (format/qlut.c runs the OpenMP loop and adds the sparse outliers).
 *
 * x is (T, ldx), each token zero-padded past cols to blocks * 32 floats, so
 * padding codes never contribute; y[t * ldy + r] receives row r's dense sum
 * for token t, 1 <= T <= LP_QLUT_MAX_T. Per token the result does not depend
 * on T (the same operations in the same order).
 */
#ifndef LP_QLUT_KERNELS_H
#define LP_QLUT_KERNELS_H

#include "format/qlut.h"
#include "format/rowgemm.h"

#define LP_QLUT_MAX_T 4

typedef lp_rows_fn lp_qlut_rows_fn;

/* Calls IMPL(w, BITS, T, x, ldx, y, ldy, r0, r1) with BITS = w->bits and T as
 * compile-time constants (1..4 each), so a SIMD kernel's inlined body unrolls
 * its bit planes and keeps its T accumulators in registers. */
#define LP_QLUT_T_CASE(IMPL, B)                                               \
    switch (T) {                                                              \
    case 1: IMPL(w, B, 1, x, ldx, y, ldy, r0, r1); break;                     \
    case 2: IMPL(w, B, 2, x, ldx, y, ldy, r0, r1); break;                     \
    case 3: IMPL(w, B, 3, x, ldx, y, ldy, r0, r1); break;                     \
    default: IMPL(w, B, 4, x, ldx, y, ldy, r0, r1); break;                    \
    }
#define LP_QLUT_DISPATCH(IMPL)                                                \
    switch (w->bits) {                                                        \
    case 1: LP_QLUT_T_CASE(IMPL, 1) break;                                    \
    case 2: LP_QLUT_T_CASE(IMPL, 2) break;                                    \
    case 3: LP_QLUT_T_CASE(IMPL, 3) break;                                    \
    default: LP_QLUT_T_CASE(IMPL, 4) break;                                   \
    }

/* The specification: per row, columns in order, f32 accumulation. */
void lp_qlut_rows_ref(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                      int64_t r1);

/* AVX2: 8 codes per shift/AND, one vpermps (two and a blend at b = 4) per 8. */
void lp_qlut_rows_avx2(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                       int64_t r0, int64_t r1);

/* AVX-512: 16 codes per shift/AND, one vpermps per 16 weights (b <= 4). */
void lp_qlut_rows_avx512(const void *w_, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy,
                         int64_t r0, int64_t r1);

/* The dense part of rows [r0, r1) as f32 ((r1 - r0) x cols), outliers not
 * added: bit-identical to the reference (the same table values). */
typedef lp_rows_dequant_fn lp_qlut_dequant_fn;
void lp_qlut_dequant_ref(const void *w_, int64_t r0, int64_t r1, float *out);
void lp_qlut_dequant_avx512(const void *w_, int64_t r0, int64_t r1, float *out);

#endif
