/*
 * ggml_quants.c - ggml's 32-value ("legacy") block types and the type
 * dispatch of ggml_quants.h; the K types live in ggml_kquants.c.
 *
 * What: F32, F16, BF16 (plain values), Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and
 *   IQ4_NL: their block bytes, dequantization bit for bit as ggml's
 *   dequantize_row_*, quantization byte for byte as llama.cpp's quantizers
 *   (c392e50, ggml/src/ggml-quants.c; written anew from its description),
 *   and the per-block grid (fit / code / pack) those quantizers are made of.
 * Why: see ggml_quants.h - files llama.cpp reads exactly, and grids that
 *   GPTQ/AWQ can choose codes in.
 *
 * Block layouts (little-endian; f16 = IEEE half; value j = 0..31 of the block):
 *   Q8_0   (34 B)  f16 d | int8 q[32]                        x = q * d
 *   Q4_0   (18 B)  f16 d | u8 qs[16]                         x = (q - 8) * d
 *   Q4_1   (20 B)  f16 d, f16 m | u8 qs[16]                  x = q * d + m
 *   Q5_0   (22 B)  f16 d | u8 qh[4] | u8 qs[16]              x = (q - 16) * d
 *   Q5_1   (24 B)  f16 d, f16 m | u8 qh[4] | u8 qs[16]       x = q * d + m
 *   IQ4_NL (18 B)  f16 d | u8 qs[16]                         x = d * K[q]
 *     qs[i] holds value i in its low nibble and value i + 16 in its high one;
 *     qh, read as a u32, holds bit 4 of value j's code at bit j;
 *     K = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69,
 *     89, 113} (IQ4_NL's non-linear levels).
 *   Every product above is one f32 multiply (+ one f32 add) of the code as
 *   f32 and the scale widened from f16: exactly ggml's arithmetic.
 *
 * Quantizers (per block of 32; "ref" = llama.cpp's quantize_<t> with
 * quant_weights NULL, which is quantize_row_<t>_ref for all but IQ4_NL):
 *   Q8_0     d = amax / 127; code = roundf(x / d) (imp ignored).
 *   Q4_0/Q5_0 ref: d = max / -8 (-16), max = the value of largest magnitude;
 *            code = min(15 (31), trunc(x / d + 8.5 (16.5))).
 *   Q4_1/Q5_1 ref: d = (max - min) / 15 (31), m = min;
 *            code = min(15, trunc((x - min) / d + 0.5)).
 *   Q4_0/Q5_0 imp: weights w = imp * sqrt(sigma2 + x^2) (sigma2 = mean x^2
 *            over the ROW); the inverse scales -(nmax + 0.1 k) / max,
 *            k = 0, -9..9, are tried and the one maximizing (sum w x l)^2 /
 *            sum w l^2 keeps its codes l = round(x * iscale); d = the
 *            weighted least-squares scale of those codes.
 *   Q4_1/Q5_1 imp: the same weights; a min/scale search over 37 inverse
 *            scales (nmax - 0.9 + 0.05 k) / (max - min) that refits scale
 *            and min by weighted least squares and keeps the lowest
 *            weighted squared error (llama.cpp's make_qkx3_quants).
 *   IQ4_NL   (with or without imp: llama.cpp's quantize_iq4_nl, ntry 7)
 *            weights imp * sqrt(sigma2 + x^2) (sigma2 = 2 mean x^2 over the
 *            block) or x^2; d = best of 16 scales by the same criterion,
 *            codes = the level nearest to x / d. Without imp this is what
 *            llama-quantize writes, NOT quantize_row_iq4_nl_ref: that one
 *            (ntry -1) is a cruder search llama.cpp uses for nothing it
 *            saves, and it leaves an all-zero block's codes uninitialized.
 *   "x / d" is always llama.cpp's x * (1 / d) with d before f16 rounding.
 *
 * The grid of a legacy block (ggml_quants.h's lp_ggml_grid, one sub-block):
 *   d, dmin     the stored f16 scale and min (Q4_1/Q5_1's m; else 0) as f32
 *   scale[0], min[0]  the same (x = (code - offset) * scale + min)
 *   rscale[0]   the multiplier of the final rounding (1/d before f16
 *               rounding, or the search's winning inverse scale),
 *   rmin[0]     what is subtracted first (Q4_1/Q5_1: the min of the
 *               rounding; else 0): code = rule((x - rmin) * rscale)
 *   sc[0]       the rule: 0 = the "ref" rounding above, 1 = the imatrix
 *               search's round-to-nearest-even
 *   qmin, qmax  the code range; an all-zero block of the Q4_0/Q5_0 search
 *               stores code 0 everywhere (llama.cpp's L = 0): qmin = qmax = 0.
 *   Plain types have a grid of n = 1: the code is the stored bits.
 *
 * Design: lp_ggml_quantize_row IS fit + code + pack for every legacy block,
 *   so the grid reproduces llama.cpp by construction; the one row-level
 *   input, the Q4_0/Q4_1/Q5_0/Q5_1 imatrix sigma2 (mean x^2 over the whole
 *   row), is why lp_ggml_grid_fit_row exists (ggml.h): lp_ggml_grid_fit sees
 *   one block and uses that block's mean, which equals llama.cpp only for
 *   32-value rows.
 *   Exactness rests on doing llama.cpp's f32 operations in its order: no
 *   FMA contraction in this file (the pragmas below; -march=native would
 *   otherwise fuse q * d + m), f16 rounding to nearest even (core/half.h),
 *   and the same comparisons, so even NaN comes out alike (an IQ4_NL block
 *   whose weights are all zero gets llama.cpp's NaN scale and codes).
 *   Deliberate differences: codes are clamped to the code range before
 *   conversion where llama.cpp converts out-of-range floats (undefined
 *   behaviour it never reaches on its own inputs, but error feedback can);
 *   F16 dequantization keeps a signaling NaN's payload where ggml's
 *   conversion quiets it (NaN scales never pass lp_ggml_part_view anyway).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "format/ggml_quants.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "format/ggml.h"
#include "format/ggml_quants_impl.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f /* llama.cpp: a block whose largest |x| is below this is all zero */

enum { RULE_REF = 0, RULE_IMP = 1 }; /* g->sc[0] of a legacy grid */

const int8_t lp_ggml_iq4nl_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

static bool is_k(int t) { return t >= LP_GGML_Q2_K && t <= LP_GGML_Q6_K; }
static bool is_plain(int t) { return t == LP_GGML_F32 || t == LP_GGML_F16 || t == LP_GGML_BF16; }
static bool is_legacy(int t) {
    return t == LP_GGML_Q8_0 || t == LP_GGML_Q4_0 || t == LP_GGML_Q4_1 || t == LP_GGML_Q5_0 ||
           t == LP_GGML_Q5_1 || t == LP_GGML_IQ4_NL;
}

bool lp_ggml_can_dequant(int t) { return is_plain(t) || is_legacy(t) || is_k(t); }
bool lp_ggml_can_quant(int t) { return lp_ggml_can_dequant(t); }

/* Bytes of one legacy block (ggml-common.h's sizeof(block_<t>)). */
static int legacy_bytes(int t) {
    switch (t) {
    case LP_GGML_Q8_0: return 34;
    case LP_GGML_Q4_0: return 18;
    case LP_GGML_Q4_1: return 20;
    case LP_GGML_Q5_0: return 22;
    case LP_GGML_Q5_1: return 24;
    case LP_GGML_IQ4_NL: return 18;
    default: LP_ASSERT(!"not a legacy type"); return 0;
    }
}

/* Code offset of the symmetric types (x = (code - offset) * d). */
static int legacy_offset(int t) { return t == LP_GGML_Q4_0 ? 8 : t == LP_GGML_Q5_0 ? 16 : 0; }

static float f16_round(float v) { return lp_f16_to_f32(lp_f32_to_f16(v)); }

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* llama.cpp's nearest_int: round half to even through the 1.5 * 2^23 trick
 * (its result for NaN is 0). Its argument is asserted to be below 2^22 in
 * magnitude; ours is clamped there first (codes are clamped far below). */
static int nearest_int(float v) {
    if (v > 4194303.0f) v = 4194303.0f;
    else if (v < -4194303.0f) v = -4194303.0f;
    const float t = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

/* trunc(v) clamped to [0, hi], as llama.cpp's (int8_t) / (uint8_t) casts of
 * in-range values and its MIN(hi, .); NaN and negatives give 0. */
static int trunc_clamp(float v, int hi) {
    if (!(v >= 0.0f)) return 0;
    if (v >= (float)hi) return hi;
    return (int)v;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The IQ4_NL level nearest to v (ties to the upper level), by llama.cpp's
 * bisection, comparisons in its order (a NaN v ends at level 15 as there). */
static int iq4nl_index(float v) {
    const int8_t *K = lp_ggml_iq4nl_levels;
    if (v <= K[0]) return 0;
    if (v >= K[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < K[mid]) hi = mid;
        else lo = mid;
    }
    return v - K[hi - 1] < K[hi] - v ? hi - 1 : hi;
}

/* ---- dequantization ---- */

static void dequant_legacy_block(int t, const uint8_t *b, float *y) {
    const float d = lp_f16_to_f32(rd16(b));
    switch (t) {
    case LP_GGML_Q8_0:
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
        return;
    case LP_GGML_Q4_0:
    case LP_GGML_IQ4_NL:
        for (int j = 0; j < 16; j++) {
            const int lo = b[2 + j] & 15, hi = b[2 + j] >> 4;
            if (t == LP_GGML_Q4_0) {
                y[j] = (float)(lo - 8) * d;
                y[j + 16] = (float)(hi - 8) * d;
            } else {
                y[j] = d * (float)lp_ggml_iq4nl_levels[lo];
                y[j + 16] = d * (float)lp_ggml_iq4nl_levels[hi];
            }
        }
        return;
    case LP_GGML_Q4_1: {
        const float m = lp_f16_to_f32(rd16(b + 2));
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(b[4 + j] & 15) * d + m;
            y[j + 16] = (float)(b[4 + j] >> 4) * d + m;
        }
        return;
    }
    case LP_GGML_Q5_0:
    case LP_GGML_Q5_1: {
        const int one = t == LP_GGML_Q5_1;
        const float m = one ? lp_f16_to_f32(rd16(b + 2)) : 0.0f;
        const uint8_t *qh = b + 2 + 2 * one, *qs = qh + 4;
        const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
        for (int j = 0; j < 32; j++) {
            const int q = ((j < 16 ? qs[j] & 15 : qs[j - 16] >> 4) | (int)((h >> j) & 1u) << 4);
            y[j] = one ? (float)q * d + m : (float)(q - 16) * d;
        }
        return;
    }
    default: LP_ASSERT(!"not a legacy type");
    }
}

void lp_ggml_block_codes(int t, const void *blk, int8_t *code, float *sc16, float *mn16) {
    if (is_k(t)) {
        lp_ggml_k_block_codes(t, blk, code, sc16, mn16);
        return;
    }
    LP_ASSERT(is_legacy(t));
    const uint8_t *b = blk;
    const float d = lp_f16_to_f32(rd16(b));
    const int one = t == LP_GGML_Q4_1 || t == LP_GGML_Q5_1; /* value = d q + m */
    sc16[0] = sc16[1] = d;
    mn16[0] = mn16[1] = one ? lp_f16_to_f32(rd16(b + 2)) : 0.0f;
    for (int j = 0; j < 32; j++) {
        int c;
        switch (t) {
        case LP_GGML_Q8_0: c = (int8_t)b[2 + j]; break;
        case LP_GGML_Q4_0:
        case LP_GGML_Q4_1:
        case LP_GGML_IQ4_NL: {
            const uint8_t *qs = b + (t == LP_GGML_Q4_1 ? 4 : 2);
            const int nib = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
            c = t == LP_GGML_Q4_0 ? nib - 8 : t == LP_GGML_Q4_1 ? nib : lp_ggml_iq4nl_levels[nib];
            break;
        }
        default: { /* Q5_0, Q5_1: the fifth bit j of the word at qh */
            const uint8_t *qh = b + 2 + 2 * one, *qs = qh + 4;
            const int hi = (qh[j / 8] >> (j % 8)) & 1;
            c = ((j < 16 ? qs[j] & 15 : qs[j - 16] >> 4) | hi << 4) - (one ? 0 : 16);
        }
        }
        code[j] = (int8_t)c;
    }
}

void lp_ggml_dequant_row(int t, const void *src, float *y, int64_t n) {
    const uint8_t *s = src;
    if (is_k(t)) {
        lp_ggml_k_dequant_row(t, src, y, n);
        return;
    }
    switch (t) {
    case LP_GGML_F32: memcpy(y, src, (size_t)n * sizeof(float)); return;
    case LP_GGML_F16:
        for (int64_t i = 0; i < n; i++) y[i] = lp_f16_to_f32(rd16(s + 2 * i));
        return;
    case LP_GGML_BF16:
        for (int64_t i = 0; i < n; i++) y[i] = lp_bf16_to_f32(rd16(s + 2 * i));
        return;
    default: break;
    }
    LP_ASSERT(is_legacy(t) && n % LP_GGML_QK == 0);
    const int bytes = legacy_bytes(t);
    for (int64_t i = 0; i < n / LP_GGML_QK; i++) dequant_legacy_block(t, s + i * bytes, y + i * LP_GGML_QK);
}

/* ---- fitting one legacy block ---- */

static void grid_init(lp_ggml_grid *g, int t, int rule, int qmin, int qmax) {
    memset(g, 0, sizeof *g);
    g->type = t;
    g->n = g->sub = LP_GGML_QK;
    g->sc[0] = (int8_t)rule;
    g->qmin = qmin;
    g->qmax = qmax;
}

/* Store the block's scale (and min), rounded to f16, and the rounding's parameters. */
static void grid_set(lp_ggml_grid *g, float d, float m, float rscale, float rmin) {
    g->d = g->scale[0] = f16_round(d);
    g->dmin = g->min[0] = f16_round(m);
    g->rscale[0] = rscale;
    g->rmin[0] = rmin;
}

/* Q8_0 (both paths): d = amax / 127, codes round(x / d) half away from zero. */
static void fit_q8_0(const float *x, lp_ggml_grid *g) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
    const float d = amax / 127;
    grid_init(g, LP_GGML_Q8_0, RULE_REF, -128, 127);
    grid_set(g, d, 0.0f, d ? 1.0f / d : 0.0f, 0.0f);
}

/* Q4_0 / Q5_0 reference: the value of largest magnitude maps to code 0. */
static void fit_sym_ref(int t, const float *x, lp_ggml_grid *g) {
    const int half = legacy_offset(t);
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    const float d = max / (float)-half;
    grid_init(g, t, RULE_REF, 0, 2 * half - 1);
    grid_set(g, d, 0.0f, d ? 1.0f / d : 0.0f, 0.0f);
}

/* Q4_1 / Q5_1 reference: min .. max spread over the codes. */
static void fit_asym_ref(int t, const float *x, lp_ggml_grid *g) {
    const int nmax = t == LP_GGML_Q4_1 ? 15 : 31;
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
    const float d = (max - min) / (float)nmax;
    grid_init(g, t, RULE_REF, 0, nmax);
    grid_set(g, d, min, d ? 1.0f / d : 0.0f, min);
}

/* llama.cpp's imatrix weights of the 32-value types: imp * sqrt(sigma2 + x^2). */
static void imp_weights(const float *x, const float *imp, float sigma2, float *w) {
    for (int j = 0; j < 32; j++) w[j] = imp[j] * sqrtf(sigma2 + x[j] * x[j]);
}

/* Weighted sums of x l and l^2 for codes l = round(x * iscale) in [-nmax, nmax - 1]. */
static void sym_sums(const float *x, const float *w, int nmax, float iscale, float *sumlx, float *suml2) {
    float a = 0.0f, b = 0.0f;
    for (int j = 0; j < 32; j++) {
        const int l = clampi(nearest_int(iscale * x[j]), -nmax, nmax - 1);
        a += w[j] * x[j] * (float)l;
        b += w[j] * (float)l * (float)l;
    }
    *sumlx = a;
    *suml2 = b;
}

/* Q4_0 / Q5_0 with importance weights (llama.cpp's make_qx_quants, rmse_type 1). */
static void fit_sym_imp(int t, const float *x, const float *imp, float sigma2, lp_ggml_grid *g) {
    const int nmax = legacy_offset(t);
    float w[32];
    imp_weights(x, imp, sigma2, w);
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    grid_init(g, t, RULE_IMP, 0, 2 * nmax - 1);
    if (amax < GROUP_MAX_EPS) { /* all zero: d = 0 and every code 0 */
        g->qmax = 0;
        grid_set(g, 0.0f, 0.0f, 0.0f, 0.0f);
        return;
    }
    float iscale = (float)-nmax / max, best_is = iscale, sumlx, suml2;
    sym_sums(x, w, nmax, iscale, &sumlx, &suml2);
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sym_sums(x, w, nmax, iscale, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            best_is = iscale;
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    grid_set(g, scale, 0.0f, best_is, 0.0f);
}

/* Q4_1 / Q5_1 with importance weights (llama.cpp's make_qkx3_quants with
 * rmin -0.9, rdelta 0.05, 36 steps, squared error). Note that an improving
 * step's min is used by the steps after it, as there. */
static void fit_asym_imp(int t, const float *x, const float *imp, float sigma2, lp_ggml_grid *g) {
    const int nmax = t == LP_GGML_Q4_1 ? 15 : 31;
    float w[32];
    imp_weights(x, imp, sigma2, w);
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int j = 1; j < 32; j++) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
        sum_w += w[j];
        sum_x += w[j] * x[j];
    }
    if (min > 0) min = 0;
    grid_init(g, t, RULE_IMP, 0, nmax);
    if (max <= min) { /* all equal and <= 0: codes 0, the value in m */
        grid_set(g, 0.0f, min, 0.0f, min);
        return;
    }
    float iscale = (float)nmax / (max - min), scale = 1 / iscale, best_mad = 0.0f;
    float best_is = iscale, best_rmin = min;
    for (int j = 0; j < 32; j++) {
        const int l = clampi(nearest_int(iscale * (x[j] - min)), 0, nmax);
        float diff = scale * (float)l + min - x[j];
        diff = diff * diff;
        best_mad += w[j] * diff;
    }
    uint8_t L[32];
    for (int is = 0; is <= 36; is++) {
        iscale = (-0.9f + 0.05f * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int j = 0; j < 32; j++) {
            const int l = clampi(nearest_int(iscale * (x[j] - min)), 0, nmax);
            L[j] = (uint8_t)l;
            sum_l += w[j] * (float)l;
            sum_l2 += w[j] * (float)l * (float)l;
            sum_xl += w[j] * (float)l * x[j];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0.0f;
            for (int j = 0; j < 32; j++) {
                float diff = this_scale * (float)L[j] + this_min - x[j];
                diff = diff * diff;
                mad += w[j] * diff;
            }
            if (mad < best_mad) {
                best_mad = mad;
                best_is = iscale;   /* the codes were rounded with this iscale ... */
                best_rmin = min;    /* ... and this min */
                scale = this_scale;
                min = this_min;
            }
        }
    }
    grid_set(g, scale, min, best_is, best_rmin);
}

/* IQ4_NL, with or without importance weights (llama.cpp's quantize_iq4_nl:
 * one 32-value super-block, 7 tries each side). */
static void fit_iq4_nl(const float *x, const float *imp, lp_ggml_grid *g) {
    const int8_t *K = lp_ggml_iq4nl_levels;
    float sigma2 = 0.0f, w[32];
    for (int j = 0; j < 32; j++) sigma2 += x[j] * x[j];
    sigma2 *= 2.0f / 32;
    for (int j = 0; j < 32; j++) w[j] = imp ? imp[j] * sqrtf(sigma2 + x[j] * x[j]) : x[j] * x[j];
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    float d = 0.0f;
    if (amax >= GROUP_MAX_EPS) {
        d = -max / (float)K[0];
        float id = 1 / d, sumqx = 0.0f, sumq2 = 0.0f;
        for (int j = 0; j < 32; j++) {
            const float q = (float)K[iq4nl_index(id * x[j])];
            sumqx += w[j] * q * x[j];
            sumq2 += w[j] * q * q;
        }
        d = sumqx / sumq2;
        float best = d * sumqx;
        for (int itry = -7; itry <= 7; itry++) {
            id = (float)(itry + K[0]) / max;
            sumqx = sumq2 = 0.0f;
            for (int j = 0; j < 32; j++) {
                const float q = (float)K[iq4nl_index(id * x[j])];
                sumqx += w[j] * q * x[j];
                sumq2 += w[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
    }
    grid_init(g, LP_GGML_IQ4_NL, RULE_REF, 0, 15);
    grid_set(g, d, 0.0f, d ? 1 / d : 0.0f, 0.0f);
}

/* Mean x^2 of a row, as llama.cpp's legacy imatrix quantizers form sigma2. */
static float row_sigma2(const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t j = 0; j < n; j++) s += x[j] * x[j];
    return s / (float)n;
}

/* The grid of block x (32 values) of a row whose sigma2 is given (legacy types with imp). */
static void fit_legacy(int t, const float *x, const float *imp, float sigma2, lp_ggml_grid *g) {
    switch (t) {
    case LP_GGML_Q8_0: fit_q8_0(x, g); return;
    case LP_GGML_Q4_0:
    case LP_GGML_Q5_0:
        if (imp) fit_sym_imp(t, x, imp, sigma2, g);
        else fit_sym_ref(t, x, g);
        return;
    case LP_GGML_Q4_1:
    case LP_GGML_Q5_1:
        if (imp) fit_asym_imp(t, x, imp, sigma2, g);
        else fit_asym_ref(t, x, g);
        return;
    case LP_GGML_IQ4_NL: fit_iq4_nl(x, imp, g); return;
    default: LP_ASSERT(!"not a legacy type");
    }
}

/* Does type t's imatrix path read sigma2 of the whole row? */
static bool uses_row_sigma2(int t, const float *imp) {
    return imp && (t == LP_GGML_Q4_0 || t == LP_GGML_Q4_1 || t == LP_GGML_Q5_0 || t == LP_GGML_Q5_1);
}

static void fit_plain(int t, lp_ggml_grid *g) {
    memset(g, 0, sizeof *g);
    g->type = t;
    g->n = g->sub = 1;
    g->d = g->scale[0] = 1.0f;
    g->qmin = t == LP_GGML_F32 ? INT32_MIN : 0;
    g->qmax = t == LP_GGML_F32 ? INT32_MAX : 0xffff;
}

void lp_ggml_grid_fit(int t, const float *x, const float *imp, lp_ggml_grid *g) {
    if (is_k(t)) lp_ggml_k_grid_fit(t, x, imp, g);
    else if (is_plain(t)) fit_plain(t, g);
    else fit_legacy(t, x, imp, uses_row_sigma2(t, imp) ? row_sigma2(x, LP_GGML_QK) : 0.0f, g);
}

void lp_ggml_grid_fit_row(int t, const float *x, const float *imp, int64_t n, int64_t j0, lp_ggml_grid *g) {
    if (uses_row_sigma2(t, imp)) fit_legacy(t, x + j0, imp + j0, row_sigma2(x, n), g);
    else lp_ggml_grid_fit(t, x + j0, imp ? imp + j0 : NULL, g);
}

/* ---- codes ---- */

static int code_plain(const lp_ggml_grid *g, float x, float *deq) {
    if (g->type == LP_GGML_F32) {
        int32_t c;
        memcpy(&c, &x, sizeof c);
        if (deq) *deq = x;
        return c;
    }
    const uint16_t h = g->type == LP_GGML_F16 ? lp_f32_to_f16(x) : lp_f32_to_bf16(x);
    if (deq) *deq = g->type == LP_GGML_F16 ? lp_f16_to_f32(h) : lp_bf16_to_f32(h);
    return h;
}

static int code_legacy(const lp_ggml_grid *g, float x) {
    const float v = (x - g->rmin[0]) * g->rscale[0];
    const int t = g->type;
    if (t == LP_GGML_IQ4_NL) return iq4nl_index(v);
    if (t == LP_GGML_Q8_0) {
        const float r = roundf(v);
        return r != r ? 0 : r <= -128.0f ? -128 : r >= 127.0f ? 127 : (int)r;
    }
    if (g->sc[0] == RULE_IMP) return clampi(legacy_offset(t) + nearest_int(v), g->qmin, g->qmax);
    const float u = v + ((float)legacy_offset(t) + 0.5f); /* x / d + 8.5, 16.5 or 0.5 */
    return trunc_clamp(u, g->qmax);
}

static float deq_legacy(const lp_ggml_grid *g, int q) {
    switch (g->type) {
    case LP_GGML_IQ4_NL: return g->scale[0] * (float)lp_ggml_iq4nl_levels[q];
    case LP_GGML_Q4_1:
    case LP_GGML_Q5_1: return (float)q * g->scale[0] + g->min[0];
    default: return (float)(q - legacy_offset(g->type)) * g->scale[0];
    }
}

int lp_ggml_grid_code(const lp_ggml_grid *g, int j, float x, float *deq) {
    if (is_k(g->type)) return lp_ggml_k_grid_code(g, j, x, deq);
    if (is_plain(g->type)) return code_plain(g, x, deq);
    const int q = code_legacy(g, x);
    if (deq) *deq = deq_legacy(g, q);
    return q;
}

/* ---- packing ---- */

void lp_ggml_grid_pack(const lp_ggml_grid *g, const int *codes, void *block) {
    const int t = g->type;
    uint8_t *b = block;
    if (is_k(t)) {
        lp_ggml_k_grid_pack(g, codes, block);
        return;
    }
    if (t == LP_GGML_F32) {
        memcpy(b, &codes[0], 4);
        return;
    }
    if (is_plain(t)) {
        wr16(b, (uint16_t)codes[0]);
        return;
    }
    wr16(b, lp_f32_to_f16(g->d));
    if (t == LP_GGML_Q8_0) {
        for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)codes[j];
        return;
    }
    const int has_m = t == LP_GGML_Q4_1 || t == LP_GGML_Q5_1, five = t == LP_GGML_Q5_0 || t == LP_GGML_Q5_1;
    if (has_m) wr16(b + 2, lp_f32_to_f16(g->dmin));
    uint8_t *p = b + 2 + 2 * has_m;
    if (five) {
        uint32_t h = 0;
        for (int j = 0; j < 32; j++) h |= (uint32_t)((codes[j] >> 4) & 1) << j;
        for (int k = 0; k < 4; k++) p[k] = (uint8_t)(h >> 8 * k);
        p += 4;
    }
    for (int j = 0; j < 16; j++) p[j] = (uint8_t)((codes[j] & 15) | (codes[j + 16] & 15) << 4);
}

/* ---- whole rows ---- */

void lp_ggml_quantize_row(int t, const float *x, const float *imp, void *dst, int64_t n) {
    uint8_t *d = dst;
    if (is_k(t)) {
        lp_ggml_k_quantize_row(t, x, imp, dst, n);
        return;
    }
    switch (t) {
    case LP_GGML_F32: memcpy(dst, x, (size_t)n * sizeof(float)); return;
    case LP_GGML_F16:
        for (int64_t i = 0; i < n; i++) wr16(d + 2 * i, lp_f32_to_f16(x[i]));
        return;
    case LP_GGML_BF16:
        for (int64_t i = 0; i < n; i++) wr16(d + 2 * i, lp_f32_to_bf16(x[i]));
        return;
    default: break;
    }
    LP_ASSERT(is_legacy(t) && n % LP_GGML_QK == 0);
    const float sigma2 = uses_row_sigma2(t, imp) ? row_sigma2(x, n) : 0.0f;
    const int bytes = legacy_bytes(t);
    for (int64_t i = 0; i < n / LP_GGML_QK; i++) {
        const float *xb = x + i * LP_GGML_QK;
        lp_ggml_grid g;
        int codes[LP_GGML_QK];
        fit_legacy(t, xb, imp ? imp + i * LP_GGML_QK : NULL, sigma2, &g);
        for (int j = 0; j < LP_GGML_QK; j++) codes[j] = code_legacy(&g, xb[j]);
        lp_ggml_grid_pack(&g, codes, d + i * bytes);
    }
}
