/*
 * rtn.h - round-to-nearest (RTN) quantization into the grouped-integer format.
 *
 * What: per group of columns of each row, a min-max scale and zero point
 * (GPTQ's Quantizer with mse=False, IST-DASLab/gptq quant.py find_params), then
 * q = clamp(round(x / scale) + zero, 0, maxq). lp_qparams_minmax and
 * lp_rtn_quantize_value are exposed on their own because GPTQ calls them per
 * group while it updates the weights.
 */
#ifndef LP_RTN_H
#define LP_RTN_H

#include "llmpress/status.h"
#include "format/qgroup.h"

#include <math.h>
#include <stdint.h>

/* Scale and zero point of one group of n values x[0..n) at `bits` bits.
 * *scale is already rounded to f16 (the stored value, exactly representable
 * in f16) and *zero is in [0, 2^bits - 1] (2^(bits-1) when sym).
 * LP_ERR_NUMERIC when x holds NaN/Inf or the scale does not fit in f16. */
lp_status lp_qparams_minmax(const float *x, int64_t n, int bits, int sym, float *scale, int *zero);

/* q = clamp(round_half_even(x / scale) + zero, 0, maxq), as torch computes it
 * in float32 (division, not multiplication by a reciprocal). */
static inline int lp_rtn_quantize_value(float x, float scale, int zero, int maxq) {
    float q = rintf(x / scale) + (float)zero; /* rintf: round half to even */
    q = q < 0.0f ? 0.0f : q;                  /* NaN falls through to the next line... */
    q = q > (float)maxq ? (float)maxq : q;
    return q == q ? (int)q : 0;               /* ...and maps to 0 */
}

/* Quantize W (out->rows x out->cols, row-major f32) into `out`, which the
 * caller has set up with lp_qgroup_init (bits, group, sym chosen there).
 * OpenMP over rows; the result does not depend on the thread count. */
lp_status lp_rtn_quantize(const float *W, lp_qgroup *out);

/* Scale and zero point of a group whose min-max range is shrunk to
 * [beta min(x), gamma max(x)] (clip.h's factors); (1, 1) is lp_qparams_minmax. */
lp_status lp_qparams_clipped(const float *x, int64_t n, int bits, int sym, float beta, float gamma, float *scale,
                             int *zero);

/* lp_rtn_quantize with each group's range shrunk by clip (rows x ngroups x 2:
 * beta, gamma per group, as lp_clip_search returns); NULL = none. */
lp_status lp_rtn_quantize_clipped(const float *W, const float *clip, lp_qgroup *out);

#endif
