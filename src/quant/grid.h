/*
 * grid.h - the min-max integer grid (scale and zero point per group) that
 * RTN, GPTQ, the clipping search and SliM-LLM round to; grid.c gives the
 * rule. Exposed on its own because GPTQ calls it per group while it updates
 * the weights.
 */
#ifndef LP_GRID_H
#define LP_GRID_H

#include "llmpress/status.h"

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

/* Scale and zero point of a group whose min-max range is shrunk to
 * [beta min(x), gamma max(x)] (clip.h's factors); (1, 1) is lp_qparams_minmax. */
lp_status lp_qparams_clipped(const float *x, int64_t n, int bits, int sym, float beta, float gamma, float *scale,
                             int *zero);

#endif
