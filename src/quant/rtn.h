/*
 * rtn.h - round-to-nearest (RTN) quantization into the grouped-integer format.
 *
 * What: per group of columns of each row, the min-max grid of grid.h (GPTQ's
 * Quantizer with mse=False), then q = clamp(round(x / scale) + zero, 0, maxq).
 */
#ifndef LP_RTN_H
#define LP_RTN_H

#include "llmpress/status.h"
#include "format/qgroup.h"
#include "quant/grid.h"

#include <math.h>
#include <stdint.h>

/* Quantize W (out->rows x out->cols, row-major f32) into `out`, which the
 * caller has set up with lp_qgroup_init (bits, group, sym chosen there).
 * OpenMP over rows; the result does not depend on the thread count. */
lp_status lp_rtn_quantize(const float *W, lp_qgroup *out);

/* lp_rtn_quantize with each group's range shrunk by clip (rows x ngroups x 2:
 * beta, gamma per group, as lp_clip_search returns); NULL = none. */
lp_status lp_rtn_quantize_clipped(const float *W, const float *clip, lp_qgroup *out);

#endif
