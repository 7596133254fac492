/*
 * grid.c - the min-max integer grid every grouped-integer method rounds to
 * (grid.h): GPTQ's Quantizer.find_params (IST-DASLab/gptq quant.py,
 * mse=False), used by RTN, GPTQ's error feedback, the clipping search and
 * SliM-LLM.
 *
 * Per group x of n values, maxq = 2^b - 1:
 *   xmin = min(min(x), 0), xmax = max(max(x), 0)        the grid holds 0
 *   sym:  xmax = max(|xmin|, xmax); xmin = -xmax if xmin < 0
 *         (an all-nonnegative group keeps xmin = 0: GPTQ's quirk, kept)
 *   xmin == xmax == 0: xmin = -1, xmax = 1
 *   scale = (xmax - xmin) / maxq
 *   zero  = sym ? (maxq + 1) / 2 : round(-xmin / scale)
 * Our one deviation: scales are stored as f16, so the scale is rounded to f16
 * first and zero is computed with that rounded scale; the stored weight then
 * dequantizes exactly to what was chosen. A scale that underflows f16
 * becomes its smallest subnormal (2^-24); one that overflows is an error.
 */
#include "quant/grid.h"

#include "core/half.h"
#include "core/status_impl.h"

#include <math.h>

lp_status lp_qparams_minmax(const float *x, int64_t n, int bits, int sym, float *scale, int *zero) {
    LP_ASSERT(bits >= 1 && bits <= 8 && n >= 1);
    int maxq = (1 << bits) - 1;
    float xmin = 0.0f, xmax = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return lp_fail(LP_ERR_NUMERIC, "rtn: value %lld of the group is %g, expected a finite "
                           "number; hint: the weights are corrupt or overflowed", (long long)i, x[i]);
        xmin = x[i] < xmin ? x[i] : xmin;
        xmax = x[i] > xmax ? x[i] : xmax;
    }
    if (sym) {
        xmax = fabsf(xmin) > xmax ? fabsf(xmin) : xmax;
        if (xmin < 0.0f) xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) {
        xmin = -1.0f;
        xmax = 1.0f;
    }
    float s = (xmax - xmin) / (float)maxq;
    uint16_t h = lp_f32_to_f16(s);
    if ((h & 0x7fffu) == 0x7c00u || !isfinite(s))
        return lp_fail(LP_ERR_NUMERIC, "rtn: group range [%g, %g] needs scale %g, which exceeds "
                       "f16's 65504; expected weights within about +-%g at %d bits",
                       xmin, xmax, s, 65504.0 * maxq / 2, bits);
    if (h == 0) h = 1; /* underflow: smallest positive f16, 2^-24 */
    s = lp_f16_to_f32(h);
    int z;
    if (sym) {
        z = (maxq + 1) / 2;
    } else {
        float zf = rintf(-xmin / s);
        z = zf > (float)maxq ? maxq : (int)zf; /* > maxq only by f16 rounding of s */
    }
    *scale = s;
    *zero = z;
    return LP_OK;
}

lp_status lp_qparams_clipped(const float *x, int64_t n, int bits, int sym, float beta, float gamma, float *scale,
                             int *zero) {
    float mm[2] = {INFINITY, -INFINITY};
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) return lp_qparams_minmax(x + i, 1, bits, sym, scale, zero); /* its message */
        mm[0] = x[i] < mm[0] ? x[i] : mm[0];
        mm[1] = x[i] > mm[1] ? x[i] : mm[1];
    }
    mm[0] *= beta; /* min-max params see only the extremes (and 0) */
    mm[1] *= gamma;
    return lp_qparams_minmax(mm, 2, bits, sym, scale, zero);
}
