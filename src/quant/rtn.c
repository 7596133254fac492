/*
 * rtn.c - round-to-nearest quantization (the baseline of every PTQ paper,
 * and the Quantizer that GPTQ rounds with).
 *
 * Algorithm, per row and per group x of `group` columns (GPTQ quant.py,
 * find_params with mse=False; maxq = 2^b - 1):
 *   xmin = min(min(x), 0), xmax = max(max(x), 0)        the grid holds 0
 *   sym:  xmax = max(|xmin|, xmax); xmin = -xmax if xmin < 0
 *         (an all-nonnegative group keeps xmin = 0: GPTQ's quirk, kept)
 *   xmin == xmax == 0: xmin = -1, xmax = 1
 *   scale = (xmax - xmin) / maxq
 *   zero  = sym ? (maxq + 1) / 2 : round(-xmin / scale)
 *   q     = clamp(round(x / scale) + zero, 0, maxq)     round = half to even
 * Our one deviation: scales are stored as f16, so the scale is rounded to f16
 * first and both zero and q are computed with that rounded scale; the stored
 * weight then dequantizes exactly to what RTN chose. A scale that underflows
 * f16 becomes its smallest subnormal (2^-24); one that overflows is an error.
 */
#include "quant/rtn.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "quant/clip.h"
#include "quant/method.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* One row: params per group (range shrunk by clip when given), then pack
 * block by block. */
static lp_status quantize_row(const float *wr, const float *clip, lp_qgroup *out, int64_t r) {
    int maxq = (1 << out->bits) - 1;
    int64_t cols = out->cols;
    uint32_t *qrow = out->q + r * out->blocks * out->bits;
    for (int64_t g = 0; g < out->ngroups; g++) {
        int64_t c0 = g * out->group, c1 = c0 + out->group < cols ? c0 + out->group : cols;
        float s;
        int z;
        if (clip)
            LP_TRY(lp_qparams_clipped(wr + c0, c1 - c0, out->bits, out->sym, clip[(r * out->ngroups + g) * 2],
                                      clip[(r * out->ngroups + g) * 2 + 1], &s, &z));
        else
            LP_TRY(lp_qparams_minmax(wr + c0, c1 - c0, out->bits, out->sym, &s, &z));
        out->scales[r * out->ngroups + g] = lp_f32_to_f16(s); /* exact: s is an f16 value */
        if (!out->sym) out->zeros[r * out->ngroups + g] = (uint8_t)z;
        /* group is a multiple of 32 (or the whole row), so blocks never span groups */
        for (int64_t c = c0; c < c1; c += LP_QGROUP_BLOCK) {
            uint8_t v[LP_QGROUP_BLOCK] = {0}; /* padding past cols stays 0 */
            int64_t n = c1 - c < LP_QGROUP_BLOCK ? c1 - c : LP_QGROUP_BLOCK;
            for (int64_t j = 0; j < n; j++) v[j] = (uint8_t)lp_rtn_quantize_value(wr[c + j], s, z, maxq);
            lp_qgroup_pack_block(v, out->bits, qrow + (c / LP_QGROUP_BLOCK) * out->bits);
        }
    }
    return LP_OK;
}

lp_status lp_rtn_quantize(const float *W, lp_qgroup *out) { return lp_rtn_quantize_clipped(W, NULL, out); }

lp_status lp_rtn_quantize_clipped(const float *W, const float *clip, lp_qgroup *out) {
    LP_ASSERT(out && out->q && out->scales && (out->sym || out->zeros));
    int64_t bad_row = -1;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < out->rows; r++) {
        if (quantize_row(W + r * out->cols, clip, out, r) != LP_OK) {
#pragma omp critical(lp_rtn_bad_row)
            if (bad_row < 0 || r < bad_row) bad_row = r;
        }
    }
    if (bad_row >= 0) {
        /* Messages are per thread: redo the first failing row here to report it. */
        lp_status st = quantize_row(W + bad_row * out->cols, clip, out, bad_row);
        LP_ASSERT(st != LP_OK);
        return lp_fail_ctx(st, "rtn: row %lld of %lld x %lld", (long long)bad_row,
                           (long long)out->rows, (long long)out->cols);
    }
    return LP_OK;
}

/* ---- the registry row: RTN, optionally with searched clipping ranges ---- */

typedef struct {
    int bits, group;
    bool sym, clip;
    int clip_grid;
    double clip_max_shrink;
} rtn_settings;

static const lp_option OPTIONS[] = {
    LP_OPTION_BITS(rtn_settings, 1, 8),
    LP_OPTION_GROUP(rtn_settings),
    LP_OPTION_SYM(rtn_settings),
    {"clip", LP_OPT_BOOL, 0, 1, 0, NULL, "search each group's min/max shrink factors on the layer's output error "
     "(needs calibration)", offsetof(rtn_settings, clip)},
    LP_OPTION_CLIP_GRID(rtn_settings),
    LP_OPTION_CLIP_MAX_SHRINK(rtn_settings),
    {0},
};

static lp_status check(const void *p) {
    const rtn_settings *s = p;
    return lp_check_grouped("rtn", s->bits, s->group, s->sym);
}

static bool calib_when(const void *p) { return ((const rtn_settings *)p)->clip; }

static lp_status compress(const lp_compress_args *a, lp_linear *out) {
    const rtn_settings *s = a->settings;
    if (s->clip && !a->H) return lp_fail(LP_ERR_ARG, "rtn --clip needs calibration data");
    float *clip = NULL;
    lp_qgroup *q = calloc(1, sizeof *q);
    lp_status st = q ? lp_qgroup_init(q, a->rows, a->cols, s->bits, s->group, s->sym)
                     : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK && s->clip) st = lp_clip_for(a->W, a->H, q, s->clip_grid, s->clip_max_shrink, a->stats, &clip);
    if (st == LP_OK) {
        double t0 = lp_now_s();
        st = lp_rtn_quantize_clipped(a->W, clip, q);
        a->stats->quantize += lp_now_s() - t0;
    }
    if (st == LP_OK) {
        lp_linear_set(out, &lp_format_qgroup, q);
    } else if (q) {
        lp_qgroup_free(q);
        free(q);
    }
    free(clip);
    return st;
}

const lp_method lp_method_rtn = {
    .name = "rtn",
    .help = "round to nearest, min-max per group (grouped integers; no calibration unless --clip)",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = false,
    .calib_when = calib_when,
    .settings_size = sizeof(rtn_settings),
    .options = OPTIONS,
    .check = check,
    .compress = compress,
};
