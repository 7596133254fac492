/*
 * ggml_kquants.c - llama.cpp's "K" block types Q2_K, Q3_K, Q4_K, Q5_K, Q6_K:
 * their byte layout, dequantization, quantization, and the grid of one block.
 *
 * What: a K block holds 256 values ("super-block") cut into sub-blocks of 16
 *   (Q2_K, Q3_K, Q6_K) or 32 (Q4_K, Q5_K) values. Each sub-block s has an
 *   integer scale sc[s] (and, for Q2_K/Q4_K/Q5_K, an integer min mn[s]),
 *   themselves scaled by the block's f16 d (and dmin). A value with stored
 *   code q dequantizes to
 *
 *       Q2_K, Q4_K, Q5_K:  (d * sc[s]) * q - (dmin * mn[s])    q in 0 .. 2^b - 1
 *       Q3_K:              (d * sc[s]) * (q - 4)                q in 0 .. 7, sc in -32 .. 31
 *       Q6_K:              (d * sc[s]) * (q - 32)               q in 0 .. 63, sc in -128 .. 127
 *
 *   each product and difference rounded to f32 in exactly that order, as
 *   ggml's dequantize_row_q*_K does (there is no fused multiply-add: see
 *   "Float order" below).
 * Why: GGUF export must write the bytes llama.cpp's quantizers write (so our
 *   files and llama.cpp's are interchangeable and comparable), GGUF import
 *   must dequantize as llama.cpp does, and GPTQ picks codes inside the same
 *   grids (fit, then code column by column with error feedback, then pack).
 *
 * Byte layouts (ggml-common.h, c392e50; v = value index 0..255, f16 little-endian):
 *   Q2_K  84 B: scales[16] (low nibble sc, high nibble mn), qs[64], d, dmin.
 *               code v: bits 2*((v%128)/32) of qs[32*(v/128) + v%32].
 *   Q3_K 110 B: hmask[32], qs[64], scales[12], d.
 *               low 2 bits of v as Q2_K's qs; bit 2 = bit v/32 of hmask[v%32].
 *               scales: sixteen 6-bit values sc+32; low nibbles of s = 0..7 in
 *               scales[s] bits 0-3, of s = 8..15 in scales[s-8] bits 4-7; the
 *               top two bits of s in scales[8 + s%4] at bits 2*(s/4).
 *   Q4_K 144 B: d, dmin, scales[12], qs[128].
 *               code v: nibble (v%64)/32 of qs[32*(v/64) + v%32].
 *               scales: eight 6-bit sc and mn ("k4" packing): s < 4: sc in
 *               scales[s] bits 0-5, mn in scales[s+4] bits 0-5; s >= 4: low
 *               nibbles in scales[s+4] (sc bits 0-3, mn bits 4-7), top two
 *               bits of sc in scales[s-4] bits 6-7, of mn in scales[s] bits 6-7.
 *   Q5_K 176 B: d, dmin, scales[12] (as Q4_K), qh[32], qs[128].
 *               low 4 bits of v as Q4_K's qs; bit 4 = bit v/32 of qh[v%32].
 *   Q6_K 210 B: ql[128], qh[64], scales[16] (int8), d.
 *               v = 128h + 32k + l: low 4 bits = nibble k/2 of ql[64h + 32(k%2) + l],
 *               top 2 bits = bits 2k..2k+1 of qh[32h + l].
 *   Every layout uses every bit, so bytes <-> (d, dmin, sc, mn, codes) is a
 *   bijection; fit builds the scale bytes exactly as llama.cpp does (even the
 *   odd bytes of its degenerate cases) and then reads them back, so pack
 *   reproduces them.
 *
 * Quantization (llama.cpp's quantize_row_q*_K_ref, and quantize_row_q*_K_impl
 * when importance weights are given), per block:
 *   1. Fit each sub-block on its own: an affine fit (scale, min <= 0) for the
 *      types with mins - a few candidate scales around (max - min)/qmax, each
 *      followed by a weighted least-squares solve for scale and min, keeping
 *      the one with the smallest weighted error (make_qkx2/qkx3_quants); a
 *      symmetric fit for Q3_K/Q6_K - candidate scales around max|x|/nmax and
 *      least squares (make_qx_quants), or for Q3_K without weights a
 *      coordinate descent over the codes (make_q3_quants).
 *   2. Quantize the sub-block scales (and mins) to their stored integers
 *      against the largest one (plain rounding), or, with importance weights,
 *      by a weighted fit of their own (make_qp_quants / make_qx_quants).
 *   3. Round d and dmin to f16 and re-round every value with the stored
 *      parameters: q = clamp(nearest((x + dmin*mn) / (d*sc))) - the "final
 *      pass". A sub-block whose d*sc is 0 is skipped by that pass and keeps
 *      the codes of step 1.
 *
 * The grid (lp_ggml_grid) of a K block: d, dmin, sc[], mn[] as stored (Q3_K's
 *   sc is the signed scale: its stored 6 bits are sc + 32); scale[s] = d*sc[s], min[s] =
 *   dmin*mn[s] (0 for Q3_K/Q6_K) as dequantization forms them. For a sub-block
 *   with scale[s] != 0, rscale[s] == scale[s], rmin[s] == min[s] and
 *       code(x) = clamp(nearest((x + rmin[s]) / rscale[s]))     (Q3_K/Q6_K: x / rscale[s])
 *   For a sub-block with scale[s] == 0 (skipped by the final pass; its values
 *   all dequantize to -min[s], so its codes matter only for the bytes):
 *       Q2_K/Q4_K/Q5_K: rscale[s], rmin[s] = the multiplier and offset step 1
 *                       rounded with: code(x) = clamp(nearest(rscale * (x + rmin)));
 *       Q6_K:           rscale[s] = step 1's multiplier, rmin[s] = its code
 *                       offset (32, or 0 for an all-zero sub-block whose codes
 *                       are all 0): code(x) = rmin + clamp(nearest(rscale * x));
 *       Q3_K:           step 1's codes themselves (make_q3_quants' descent
 *                       is no per-value rule), eight 3-bit codes per float
 *                       as an exact integer < 2^24: codes 0..7 of the
 *                       sub-block in rscale[s], 8..15 in rmin[s].
 *   So fit + code of the block's own values + pack == quantize_row exactly
 *   (quantize_row is written that way), and a caller changing values between
 *   codes still gets llama.cpp's rounding rule for the changed values (in a
 *   skipped Q3_K sub-block the code ignores x; its value is -min either way).
 *
 * Float order: ggml-base (ggml-quants.c) is built without -march, so on
 *   x86-64 no a*b+c is fused; GCC's default -ffp-contract=fast (gnu17) would
 *   fuse them in this file whenever FMA is enabled (LP_NATIVE), hence the
 *   pragma below. Every sum is accumulated in llama.cpp's order and every
 *   product keeps its operand order (w*l*x is (w*l)*x). ggml's nearest_int
 *   (add 1.5*2^23 and read the mantissa: round half to even, valid for
 *   |x| < 2^22) is reproduced bit for bit, NaN included (it gives 0).
 */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "format/ggml_quants_impl.h"

#include "core/half.h"
#include "core/status_impl.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define QK_K LP_GGML_QK_K
#define EPS_ZERO 1e-15f /* ggml's GROUP_MAX_EPS: a sub-block with max |x| below it is all zero */

/* ---------------------------------------------------------------- helpers */

/* ggml's nearest_int: round half to even through the f32 adder. */
static inline int nearest(float v) {
    float t = v + 12582912.0f; /* 1.5 * 2^23: the low 23 bits of t are 2^22 + round(v) */
    int32_t i;
    memcpy(&i, &t, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline void wr16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* ---------------------------------------------------------------- the types */

/* A first fit of one block (step 1 and 2's by-products that the grid keeps
 * for sub-blocks the final pass skips). */
typedef struct {
    float iscale[LP_GGML_MAX_SUB]; /* multiplier the sub-block's step-1 codes were rounded with */
    float shift[LP_GGML_MAX_SUB];  /* added before multiplying (-min), or the code offset (Q6_K) */
    uint8_t L[QK_K];               /* step-1 codes (used for Q3_K) */
} first_fit;

typedef struct kinfo {
    int type;
    int bytes;                   /* bytes per block */
    int sub;                     /* values per sub-block */
    int qmax;                    /* codes 0 .. qmax */
    int off;                     /* code offset of the symmetric types (value = code - off) */
    bool has_min;                /* Q2_K, Q4_K, Q5_K */
    int at_d, at_dmin, at_scales; /* byte offsets of d, dmin (-1: none), the scale bytes */
    /* Steps 1-2 for one block: writes d, dmin and the scale bytes into blk
     * (its other bytes are left alone) and the first fit into ff. */
    void (*fit)(const float *x, const float *imp, uint8_t *blk, first_fit *ff);
} kinfo;

static void fit_q2_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff);
static void fit_q3_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff);
static void fit_q4_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff);
static void fit_q5_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff);
static void fit_q6_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff);

static const kinfo KTYPES[] = {
    {LP_GGML_Q2_K, 84, 16, 3, 0, true, 80, 82, 0, fit_q2_k},
    {LP_GGML_Q3_K, 110, 16, 7, 4, false, 108, -1, 96, fit_q3_k},
    {LP_GGML_Q4_K, 144, 32, 15, 0, true, 0, 2, 4, fit_q4_k},
    {LP_GGML_Q5_K, 176, 32, 31, 0, true, 0, 2, 4, fit_q5_k},
    {LP_GGML_Q6_K, 210, 16, 63, 32, false, 208, -1, 192, fit_q6_k},
};

static const kinfo *kinfo_of(int t) {
    LP_ASSERT(t >= LP_GGML_Q2_K && t <= LP_GGML_Q6_K);
    return &KTYPES[t - LP_GGML_Q2_K];
}

/* ---------------------------------------------------------------- scale bytes */

/* Q3_K: all sixteen 6-bit values (each 0..63) into 12 bytes. */
static void q3_scales_put(uint8_t *b, const int *six) {
    memset(b, 0, 12);
    for (int s = 0; s < 16; s++) {
        if (s < 8)
            b[s] |= (uint8_t)(six[s] & 0xF);
        else
            b[s - 8] |= (uint8_t)((six[s] & 0xF) << 4);
        b[8 + s % 4] |= (uint8_t)((six[s] >> 4) << (2 * (s / 4)));
    }
}

/* Q4_K/Q5_K: the 12 bytes built the way llama.cpp builds them. For values up
 * to 63 this is the exact inverse of k4_get; llama.cpp's imatrix Q4_K path
 * does not clamp, and a larger value spills into the neighbouring bits just
 * as it does there. */
static void k4_put(uint8_t *b, const uint8_t *ls, const uint8_t *lm) {
    for (int s = 0; s < 4; s++) {
        b[s] = ls[s];
        b[s + 4] = lm[s];
    }
    for (int s = 4; s < 8; s++) {
        b[s + 4] = (uint8_t)((ls[s] & 0xF) | ((lm[s] & 0xF) << 4));
        b[s - 4] = (uint8_t)(b[s - 4] | ((ls[s] >> 4) << 6));
        b[s] = (uint8_t)(b[s] | ((lm[s] >> 4) << 6));
    }
}

/* d, dmin, sc, mn, scale, min of one block (everything of the grid but the
 * rounding parameters); the one reading of the scale bytes, shared by
 * dequantization and fit. */
static void unpack_params(const kinfo *k, const uint8_t *blk, lp_ggml_grid *g) {
    memset(g, 0, sizeof *g);
    g->type = k->type;
    g->n = QK_K;
    g->sub = k->sub;
    g->qmin = 0;
    g->qmax = k->qmax;
    g->d = lp_f16_to_f32(rd16(blk + k->at_d));
    g->dmin = k->at_dmin >= 0 ? lp_f16_to_f32(rd16(blk + k->at_dmin)) : 0.0f;
    const uint8_t *b = blk + k->at_scales;
    const int nsub = QK_K / k->sub;
    for (int s = 0; s < nsub; s++) {
        int sc = 0, mn = 0;
        switch (k->type) {
        case LP_GGML_Q2_K: sc = b[s] & 0xF; mn = b[s] >> 4; break;
        case LP_GGML_Q3_K: sc = lp_ggml_q3_scale(b, s) - 32; break;
        case LP_GGML_Q4_K:
        case LP_GGML_Q5_K: lp_ggml_k4_scale_min(b, s, &sc, &mn); break;
        case LP_GGML_Q6_K: sc = (int8_t)b[s]; break;
        }
        g->sc[s] = (int8_t)sc;
        g->mn[s] = (uint8_t)mn;
        g->scale[s] = g->d * (float)sc;
        g->min[s] = k->has_min ? g->dmin * (float)mn : 0.0f;
    }
}

/* The inverse of unpack_params: d, dmin and scale bytes from a grid. */
static void pack_params(const kinfo *k, const lp_ggml_grid *g, uint8_t *blk) {
    wr16(blk + k->at_d, lp_f32_to_f16(g->d));
    if (k->at_dmin >= 0) wr16(blk + k->at_dmin, lp_f32_to_f16(g->dmin));
    uint8_t *b = blk + k->at_scales;
    switch (k->type) {
    case LP_GGML_Q2_K:
        for (int s = 0; s < 16; s++) b[s] = (uint8_t)((g->sc[s] & 0xF) | ((g->mn[s] & 0xF) << 4));
        break;
    case LP_GGML_Q3_K: {
        int six[16];
        for (int s = 0; s < 16; s++) six[s] = (g->sc[s] + 32) & 63;
        q3_scales_put(b, six);
        break;
    }
    case LP_GGML_Q4_K:
    case LP_GGML_Q5_K: {
        uint8_t ls[8], lm[8];
        for (int s = 0; s < 8; s++) {
            ls[s] = (uint8_t)(g->sc[s] & 63);
            lm[s] = (uint8_t)(g->mn[s] & 63);
        }
        k4_put(b, ls, lm);
        break;
    }
    case LP_GGML_Q6_K:
        for (int s = 0; s < 16; s++) b[s] = (uint8_t)g->sc[s];
        break;
    }
}

/* ---------------------------------------------------------------- code bytes */

/* The 256 stored codes of a block (one loop per type: dequantization runs
 * through here for every value of an imported model). */
static void unpack_codes(const kinfo *k, const uint8_t *blk, int *q) {
    switch (k->type) {
    case LP_GGML_Q2_K:
        for (int v = 0; v < QK_K; v++) q[v] = (blk[16 + 32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3;
        break;
    case LP_GGML_Q3_K:
        for (int v = 0; v < QK_K; v++)
            q[v] = ((blk[32 + 32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3) |
                   ((blk[v % 32] >> (v / 32)) & 1) << 2;
        break;
    case LP_GGML_Q4_K:
        for (int v = 0; v < QK_K; v++) q[v] = (blk[16 + 32 * (v / 64) + v % 32] >> (4 * ((v % 64) / 32))) & 0xF;
        break;
    case LP_GGML_Q5_K:
        for (int v = 0; v < QK_K; v++)
            q[v] = ((blk[48 + 32 * (v / 64) + v % 32] >> (4 * ((v % 64) / 32))) & 0xF) |
                   ((blk[16 + v % 32] >> (v / 32)) & 1) << 4;
        break;
    case LP_GGML_Q6_K:
        for (int v = 0; v < QK_K; v++) {
            const int h = v / 128, kk = (v % 128) / 32, l = v % 32;
            q[v] = ((blk[64 * h + 32 * (kk % 2) + l] >> (4 * (kk / 2))) & 0xF) |
                   ((blk[128 + 32 * h + l] >> (2 * kk)) & 3) << 4;
        }
        break;
    }
}

/* OR the 256 codes (each 0..qmax) into a block whose code bytes are zero. */
static void pack_codes(const kinfo *k, const int *q, uint8_t *blk) {
    switch (k->type) {
    case LP_GGML_Q2_K:
        for (int v = 0; v < QK_K; v++)
            blk[16 + 32 * (v / 128) + v % 32] |= (uint8_t)((q[v] & 3) << (2 * ((v % 128) / 32)));
        break;
    case LP_GGML_Q3_K:
        for (int v = 0; v < QK_K; v++) {
            blk[32 + 32 * (v / 128) + v % 32] |= (uint8_t)((q[v] & 3) << (2 * ((v % 128) / 32)));
            blk[v % 32] |= (uint8_t)(((q[v] >> 2) & 1) << (v / 32));
        }
        break;
    case LP_GGML_Q4_K:
        for (int v = 0; v < QK_K; v++)
            blk[16 + 32 * (v / 64) + v % 32] |= (uint8_t)((q[v] & 0xF) << (4 * ((v % 64) / 32)));
        break;
    case LP_GGML_Q5_K:
        for (int v = 0; v < QK_K; v++) {
            blk[48 + 32 * (v / 64) + v % 32] |= (uint8_t)((q[v] & 0xF) << (4 * ((v % 64) / 32)));
            blk[16 + v % 32] |= (uint8_t)(((q[v] >> 4) & 1) << (v / 32));
        }
        break;
    case LP_GGML_Q6_K:
        for (int v = 0; v < QK_K; v++) {
            const int h = v / 128, kk = (v % 128) / 32, l = v % 32;
            blk[64 * h + 32 * (kk % 2) + l] |= (uint8_t)((q[v] & 0xF) << (4 * (kk / 2)));
            blk[128 + 32 * h + l] |= (uint8_t)(((q[v] >> 4) & 3) << (2 * kk));
        }
        break;
    }
}

/* What dequantization returns for code q with these sub-block parameters. */
static inline float value_of(const kinfo *k, float scale, float min, int q) {
    if (k->has_min) return scale * (float)q - min;
    return scale * (float)(q - k->off);
}

/* ---------------------------------------------------------------- sub-block fits (step 1) */

/*
 * Affine fit of n values to codes 0..nmax: x ~ scale * L + min, min <= 0,
 * minimizing sum w * |err| (use_mad) or sum w * err^2 (llama.cpp's
 * make_qkx2_quants / make_qkx3_quants, which differ only for NaN input).
 * Candidates: the range's own scale, then nstep + 1 multipliers
 * (nmax + rmin + rdelta*is) / (max - min), each refined by solving the 2x2
 * weighted least squares for (scale, min) on its codes. Returns scale;
 * *neg_min = -min. *r_iscale, *r_shift: the multiplier and offset the
 * returned codes were rounded with (L = clamp(nearest(r_iscale * (x + r_shift)))).
 */
static float fit_affine(int n, int nmax, const float *x, const float *w, float rmin, float rdelta, int nstep,
                        bool use_mad, uint8_t *L, float *neg_min, float *r_iscale, float *r_shift) {
    float lo = x[0], hi = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *neg_min = -lo;
        *r_iscale = 0.0f;
        *r_shift = 0.0f;
        return 0.0f;
    }
    float iscale = nmax / (hi - lo);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest(iscale * (x[i] - lo)), 0, nmax);
        float diff = scale * L[i] + lo - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best += w[i] * diff;
    }
    *r_iscale = iscale;
    *r_shift = -lo;
    uint8_t Laux[32];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale * (x[i] - lo)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float err = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                err += w[i] * diff;
            }
            if (err < best) {
                memcpy(L, Laux, (size_t)n);
                *r_iscale = iscale;
                *r_shift = -lo; /* these codes were rounded against the old min */
                best = err;
                scale = this_scale;
                lo = this_min;
            }
        }
    }
    *neg_min = -lo;
    return scale;
}

/*
 * Symmetric fit of n values to codes -nmax .. nmax-1 (stored + nmax),
 * weights w (NULL: x^2), llama.cpp's make_qx_quants with rmse_type 1: the
 * multiplier -nmax/max (max: the value of largest magnitude, so it maps to
 * -nmax) and 18 neighbours -(nmax + 0.1 is)/max, each scored by the least
 * squares scale of its codes; keeps the best. Returns that scale (0 for an
 * all-zero input, whose codes are all 0 - not nmax). *r_iscale, *r_off: the
 * winning multiplier and the code offset (nmax, or 0 when all zero).
 */
static float fit_sym(int n, int nmax, const float *x, int8_t *L, const float *w, float *r_iscale, float *r_off) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < EPS_ZERO) {
        memset(L, 0, (size_t)n);
        *r_iscale = 0.0f;
        *r_off = 0.0f;
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float wi = w ? w[i] : x[i] * x[i];
        sumlx += wi * x[i] * l;
        suml2 += wi * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    *r_iscale = iscale;
    *r_off = (float)nmax;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        float iscale_is = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(iscale_is * x[i]), -nmax, nmax - 1);
            float wi = w ? w[i] : x[i] * x[i];
            sumlx += wi * x[i] * l;
            suml2 += wi * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest(iscale_is * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
            *r_iscale = iscale_is;
        }
    }
    return scale;
}

/*
 * Symmetric fit with weights x^2 by coordinate descent (llama.cpp's
 * make_q3_quants, do_rmse): start from the codes of -nmax/max, then up to 5
 * sweeps that move each code to the one best for the least-squares scale of
 * all the others, keeping a move only if it raises (sum w x l)^2 / sum w l^2.
 * Codes in L are stored (+ nmax; all 0 for an all-zero input); returns the
 * least-squares scale.
 */
static float fit_sym_descent(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < EPS_ZERO) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                int l = clampi(nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (l != L[i]) {
                    slx += w * x[i] * l;
                    sl2 += w * l * l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

/*
 * Codes 0..nmax for n non-negative values (sub-block scales or mins) with
 * weights w (llama.cpp's make_qp_quants): the best of the multipliers
 * (nmax + 0.1 is)/max, is = -4..4, by weighted squared error, then up to 5
 * coordinate-descent sweeps as in fit_sym_descent. Returns the scale.
 * L is uint8_t as in llama.cpp: a negative input's code wraps around in the
 * first rounding, and that wrapped value takes part in the error sum and the
 * sweeps, exactly as there.
 */
static float fit_pos(int n, int nmax, const float *x, uint8_t *L, const float *w) {
    float max = 0;
    for (int i = 0; i < n; i++) max = max > x[i] ? max : x[i];
    if (!max) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)nearest(iscale * x[i]);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * L[i];
        best += w[i] * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) continue;
        float iscale_is = (0.1f * is + nmax) / max;
        float scale_is = 1 / iscale_is;
        float err = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest(iscale_is * x[i]);
            if (l > nmax) l = nmax;
            float diff = x[i] - scale_is * l;
            err += w[i] * diff * diff;
        }
        if (err < best) {
            best = err;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest(iscale * x[i]);
        if (l > nmax) l = nmax;
        L[i] = (uint8_t)l;
        sumlx += w[i] * x[i] * l; /* the int l, not the stored byte */
        suml2 += w[i] * l * l;
    }
    for (int sweep = 0; sweep < 5; sweep++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float slx = sumlx - w[i] * x[i] * L[i];
            float sl2 = suml2 - w[i] * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int l = nearest(x[i] * sl2 / slx);
                if (l > nmax) l = nmax;
                if (l != L[i]) {
                    slx += w[i] * x[i] * l;
                    sl2 += w[i] * l * l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return sumlx / suml2;
}

/* Sum of squares of n values, in order. */
static float sum_sq(const float *x, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

/* Importance weights of a sub-block as llama.cpp's imatrix paths form them:
 * imp * sqrt(sigma2 + x^2); returns their sum. */
static float imp_weights(const float *x, const float *imp, float sigma2, int n, float *w) {
    float sum = 0;
    for (int i = 0; i < n; i++) w[i] = imp[i] * sqrtf(sigma2 + x[i] * x[i]);
    for (int i = 0; i < n; i++) sum += w[i];
    return sum;
}

/* ---------------------------------------------------------------- block fits (steps 1-2) */

/* Q2_K: 16 affine sub-blocks of 16, codes 0..3, 4-bit scales and mins. */
static void fit_q2_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff) {
    const kinfo *k = kinfo_of(LP_GGML_Q2_K);
    float scales[16], mins[16], w[16];
    uint8_t *b = blk + k->at_scales;
    uint16_t d16, dmin16;
    if (!imp) {
        float max_scale = 0, max_min = 0; /* the scales are >= 0 as the min is taken out */
        for (int s = 0; s < 16; s++) {
            for (int i = 0; i < 16; i++) w[i] = fabsf(x[16 * s + i]);
            scales[s] = fit_affine(16, 3, x + 16 * s, w, -0.5f, 0.1f, 15, true, ff->L + 16 * s, &mins[s],
                                   &ff->iscale[s], &ff->shift[s]);
            if (scales[s] > max_scale) max_scale = scales[s];
            if (mins[s] > max_min) max_min = mins[s];
        }
        memset(b, 0, 16);
        d16 = lp_f32_to_f16(0.0f);
        dmin16 = lp_f32_to_f16(0.0f);
        if (max_scale > 0) {
            float iscale = 15.f / max_scale;
            for (int s = 0; s < 16; s++) b[s] = (uint8_t)nearest(iscale * scales[s]);
            d16 = lp_f32_to_f16(max_scale / 15.f);
        }
        if (max_min > 0) {
            float iscale = 15.f / max_min;
            for (int s = 0; s < 16; s++) b[s] = (uint8_t)(b[s] | ((unsigned)nearest(iscale * mins[s]) << 4));
            dmin16 = lp_f32_to_f16(max_min / 15.f);
        }
    } else {
        float sw[16];
        uint8_t Ls[16], Lm[16];
        float sigma2 = sum_sq(x, QK_K) / QK_K;
        for (int s = 0; s < 16; s++) {
            sw[s] = imp_weights(x + 16 * s, imp + 16 * s, sigma2, 16, w);
            scales[s] = fit_affine(16, 3, x + 16 * s, w, -0.9f, 0.05f, 36, false, ff->L + 16 * s, &mins[s],
                                   &ff->iscale[s], &ff->shift[s]);
        }
        float dm = fit_pos(16, 15, scales, Ls, sw);
        float mm = fit_pos(16, 15, mins, Lm, sw);
        d16 = lp_f32_to_f16(dm);
        dmin16 = lp_f32_to_f16(mm);
        for (int s = 0; s < 16; s++) b[s] = (uint8_t)(Ls[s] | (Lm[s] << 4));
    }
    wr16(blk + k->at_d, d16);
    wr16(blk + k->at_dmin, dmin16);
}

/* Q3_K: 16 symmetric sub-blocks of 16, codes -4..3, 6-bit signed scales. */
static void fit_q3_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff) {
    const kinfo *k = kinfo_of(LP_GGML_Q3_K);
    float scales[16];
    int8_t L[QK_K];
    int six[16];
    uint16_t d16;
    if (!imp) {
        float max_scale = 0, amax = 0;
        for (int s = 0; s < 16; s++) {
            scales[s] = fit_sym_descent(16, 4, x + 16 * s, L + 16 * s);
            float a = fabsf(scales[s]);
            if (a > amax) {
                amax = a;
                max_scale = scales[s];
            }
        }
        memset(six, 0, sizeof six);
        d16 = lp_f32_to_f16(0.0f);
        if (max_scale != 0) { /* NaN counts as nonzero here, as in llama.cpp */
            float iscale = -32.f / max_scale;
            for (int s = 0; s < 16; s++) {
                int8_t l = (int8_t)nearest(iscale * scales[s]);
                six[s] = clampi(l, -32, 31) + 32;
            }
            d16 = lp_f32_to_f16(1 / iscale);
        }
    } else {
        float w[16], sw[16], r_unused, off_unused;
        int8_t Ls[16];
        float sigma2 = 2 * sum_sq(x, QK_K) / QK_K;
        for (int s = 0; s < 16; s++) {
            sw[s] = imp_weights(x + 16 * s, imp + 16 * s, sigma2, 16, w);
            scales[s] = fit_sym(16, 4, x + 16 * s, L + 16 * s, w, &r_unused, &off_unused);
        }
        float d_block = fit_sym(16, 32, scales, Ls, sw, &r_unused, &off_unused);
        for (int s = 0; s < 16; s++) six[s] = Ls[s];
        d16 = lp_f32_to_f16(d_block);
    }
    for (int v = 0; v < QK_K; v++) ff->L[v] = (uint8_t)L[v];
    q3_scales_put(blk + k->at_scales, six);
    wr16(blk + k->at_d, d16);
}

/* Q4_K / Q5_K: 8 affine sub-blocks of 32, codes 0..nmax, 6-bit scales and mins. */
static void fit_q45_k(const kinfo *k, int nmax, const float *x, const float *imp, uint8_t *blk, first_fit *ff) {
    float scales[8], mins[8], w[32];
    uint8_t ls[8], lm[8];
    uint16_t d16, dmin16;
    if (!imp) {
        float max_scale = 0, max_min = 0;
        for (int s = 0; s < 8; s++) {
            const float *xs = x + 32 * s;
            float av_x = sqrtf(sum_sq(xs, 32) / 32);
            for (int i = 0; i < 32; i++) w[i] = av_x + fabsf(xs[i]);
            if (nmax == 15)
                scales[s] = fit_affine(32, 15, xs, w, -1.f, 0.1f, 20, false, ff->L + 32 * s, &mins[s], &ff->iscale[s],
                                       &ff->shift[s]);
            else
                scales[s] = fit_affine(32, 31, xs, w, -0.5f, 0.1f, 15, false, ff->L + 32 * s, &mins[s], &ff->iscale[s],
                                       &ff->shift[s]);
            if (scales[s] > max_scale) max_scale = scales[s];
            if (mins[s] > max_min) max_min = mins[s];
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int s = 0; s < 8; s++) {
            ls[s] = (uint8_t)nearest(inv_scale * scales[s]); /* a negative one wraps, then clamps to 63 */
            lm[s] = (uint8_t)nearest(inv_min * mins[s]);
            if (ls[s] > 63) ls[s] = 63;
            if (lm[s] > 63) lm[s] = 63;
        }
        d16 = lp_f32_to_f16(max_scale / 63.f);
        dmin16 = lp_f32_to_f16(max_min / 63.f);
    } else {
        float sw[8];
        float sigma2 = 2 * sum_sq(x, QK_K) / QK_K;
        for (int s = 0; s < 8; s++) {
            sw[s] = imp_weights(x + 32 * s, imp + 32 * s, sigma2, 32, w);
            scales[s] = fit_affine(32, nmax, x + 32 * s, w, -0.9f, 0.05f, 36, false, ff->L + 32 * s, &mins[s],
                                   &ff->iscale[s], &ff->shift[s]);
        }
        float d_block = fit_pos(8, 63, scales, ls, sw);
        float m_block = fit_pos(8, 63, mins, lm, sw);
        if (nmax == 31) { /* llama.cpp clamps here for Q5_K only */
            for (int s = 0; s < 8; s++) {
                if (ls[s] > 63) ls[s] = 63;
                if (lm[s] > 63) lm[s] = 63;
            }
        }
        d16 = lp_f32_to_f16(d_block);
        dmin16 = lp_f32_to_f16(m_block);
    }
    k4_put(blk + k->at_scales, ls, lm);
    wr16(blk + k->at_d, d16);
    wr16(blk + k->at_dmin, dmin16);
}

static void fit_q4_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff) {
    fit_q45_k(kinfo_of(LP_GGML_Q4_K), 15, x, imp, blk, ff);
}

static void fit_q5_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff) {
    fit_q45_k(kinfo_of(LP_GGML_Q5_K), 31, x, imp, blk, ff);
}

/* Q6_K: 16 symmetric sub-blocks of 16, codes -32..31, int8 scales. Importance
 * weights enter the sub-block fits as they are (llama.cpp's Q6_K path). */
static void fit_q6_k(const float *x, const float *imp, uint8_t *blk, first_fit *ff) {
    const kinfo *k = kinfo_of(LP_GGML_Q6_K);
    float scales[16];
    int8_t L[16];
    float max_scale = 0, max_abs = 0;
    for (int s = 0; s < 16; s++) {
        scales[s] = fit_sym(16, 32, x + 16 * s, L, imp ? imp + 16 * s : NULL, &ff->iscale[s], &ff->shift[s]);
        float a = fabsf(scales[s]);
        if (a > max_abs) {
            max_abs = a;
            max_scale = scales[s];
        }
    }
    int8_t *b = (int8_t *)(blk + k->at_scales);
    if (max_abs < EPS_ZERO) { /* llama.cpp zeroes the whole block: every code 0 */
        memset(b, 0, 16);
        wr16(blk + k->at_d, lp_f32_to_f16(0.0f));
        for (int s = 0; s < 16; s++) ff->iscale[s] = ff->shift[s] = 0.0f;
        return;
    }
    float iscale = -128.f / max_scale;
    for (int s = 0; s < 16; s++) {
        int l = nearest(iscale * scales[s]);
        b[s] = (int8_t)(l < 127 ? l : 127);
    }
    wr16(blk + k->at_d, lp_f32_to_f16(1 / iscale));
}

/* ---------------------------------------------------------------- the grid */

/* Q3_K's skipped sub-blocks keep their step-1 codes in rscale/rmin: eight
 * 3-bit codes per float, an exact integer below 2^24. */
static float q3_codes_put(const uint8_t *L) {
    uint32_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint32_t)(L[i] & 7) << (3 * i);
    return (float)u;
}

static int q3_code_get(float packed, int i) { return (int)(((uint32_t)packed >> (3 * i)) & 7); }

void lp_ggml_k_grid_fit(int t, const float *x, const float *imp, lp_ggml_grid *g) {
    const kinfo *k = kinfo_of(t);
    uint8_t blk[210];
    first_fit ff;
    memset(blk, 0, sizeof blk);
    memset(&ff, 0, sizeof ff);
    k->fit(x, imp, blk, &ff);
    unpack_params(k, blk, g); /* what the final pass (and dequantization) reads back */
    const int nsub = QK_K / k->sub;
    for (int s = 0; s < nsub; s++) {
        if (g->scale[s] != 0.0f) { /* llama.cpp's `if (!d) continue;` (NaN is not skipped) */
            g->rscale[s] = g->scale[s];
            g->rmin[s] = g->min[s];
        } else if (t == LP_GGML_Q3_K) {
            g->rscale[s] = q3_codes_put(ff.L + 16 * s);
            g->rmin[s] = q3_codes_put(ff.L + 16 * s + 8);
        } else {
            g->rscale[s] = ff.iscale[s];
            g->rmin[s] = ff.shift[s];
        }
    }
}

int lp_ggml_k_grid_code(const lp_ggml_grid *g, int j, float x, float *deq) {
    const kinfo *k = kinfo_of(g->type);
    LP_ASSERT(j >= 0 && j < QK_K);
    const int s = j / k->sub;
    const float rs = g->rscale[s], rm = g->rmin[s];
    int q;
    if (g->scale[s] != 0.0f) { /* the final pass */
        if (k->has_min)
            q = clampi(nearest((x + rm) / rs), 0, k->qmax);
        else
            q = clampi(nearest(x / rs), -k->off, k->off - 1) + k->off;
    } else if (k->has_min) { /* skipped: step 1's rounding */
        q = clampi(nearest(rs * (x + rm)), 0, k->qmax);
    } else if (g->type == LP_GGML_Q6_K) {
        q = (int)rm + clampi(nearest(rs * x), -32, 31);
    } else { /* Q3_K: step 1's codes */
        int i = j % 16;
        q = q3_code_get(i < 8 ? rs : rm, i % 8);
    }
    if (deq) *deq = value_of(k, g->scale[s], g->min[s], q);
    return q;
}

void lp_ggml_k_grid_pack(const lp_ggml_grid *g, const int *codes, void *block) {
    const kinfo *k = kinfo_of(g->type);
    uint8_t *blk = block;
    memset(blk, 0, (size_t)k->bytes);
    for (int v = 0; v < QK_K; v++) LP_ASSERT(codes[v] >= 0 && codes[v] <= k->qmax);
    pack_params(k, g, blk);
    pack_codes(k, codes, blk);
}

/* ---------------------------------------------------------------- rows */

void lp_ggml_k_dequant_row(int t, const void *src, float *y, int64_t n) {
    const kinfo *k = kinfo_of(t);
    LP_ASSERT(n % QK_K == 0);
    const uint8_t *blk = src;
    lp_ggml_grid g;
    int q[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++, blk += k->bytes, y += QK_K) {
        unpack_params(k, blk, &g);
        unpack_codes(k, blk, q);
        for (int s = 0; s < QK_K / k->sub; s++)
            for (int v = s * k->sub; v < (s + 1) * k->sub; v++) y[v] = value_of(k, g.scale[s], g.min[s], q[v]);
    }
}

void lp_ggml_k_block_codes(int t, const void *blk, int8_t *code, float *sc16, float *mn16) {
    const kinfo *k = kinfo_of(t);
    lp_ggml_grid g;
    int q[QK_K];
    unpack_params(k, blk, &g);
    unpack_codes(k, blk, q);
    for (int v = 0; v < QK_K; v++) code[v] = (int8_t)(k->has_min ? q[v] : q[v] - k->off);
    for (int u = 0; u < QK_K / 16; u++) { /* value_of: scale q - min, or scale (q - off) */
        sc16[u] = g.scale[u * 16 / k->sub];
        mn16[u] = k->has_min ? -g.min[u * 16 / k->sub] : 0.0f;
    }
}

void lp_ggml_k_quantize_row(int t, const float *x, const float *imp, void *dst, int64_t n) {
    const kinfo *k = kinfo_of(t);
    LP_ASSERT(n % QK_K == 0);
    uint8_t *blk = dst;
    lp_ggml_grid g;
    int q[QK_K];
    for (int64_t b = 0; b < n / QK_K; b++, blk += k->bytes) {
        const float *xb = x + b * QK_K;
        const float *ib = imp ? imp + b * QK_K : NULL;
        lp_ggml_k_grid_fit(t, xb, ib, &g);
        for (int v = 0; v < QK_K; v++) q[v] = lp_ggml_k_grid_code(&g, v, xb[v], NULL);
        lp_ggml_k_grid_pack(&g, q, blk);
    }
}
