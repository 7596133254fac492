/*
 * test_linear.h - for the method tests: a linear holding a dense f32 copy of
 * W, as the pipeline hands one to a method. Include after test.h.
 */
#ifndef LP_TEST_LINEAR_H
#define LP_TEST_LINEAR_H

#include "format/dense.h"
#include "format/linear.h"

#include <stdlib.h>
#include <string.h>

static inline void dense_linear(lp_linear *l, const float *W, int64_t rows, int64_t cols) {
    memset(l, 0, sizeof *l);
    l->rows = rows;
    l->cols = cols;
    float *c = malloc((size_t)(rows * cols) * sizeof(float));
    memcpy(c, W, (size_t)(rows * cols) * sizeof(float));
    lp_dense *d;
    CHECK_OK(lp_dense_own(rows, cols, c, &d));
    CHECK_OK(lp_linear_add_part(l, &lp_format_dense, d));
}

#endif
