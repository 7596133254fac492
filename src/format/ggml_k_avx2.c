/*
 * ggml_k_avx2.c - AVX2 row kernels of the ggml format (ggml.h) for the
 * 256-value K types Q2_K .. Q6_K: a few tokens against the packed blocks,
 * nothing dequantized to memory.
 *
 * What: y[t, r] = row r of W . x_t for the rows of a tile (lp_rows_fn's
 * contract), W in ggml's K blocks (layouts in ggml_kquants.c, which is the
 * specification: lp_ggml_dequant_row, then sgemm).
 * Why: the reference path dequantizes tiles of rows and multiplies with
 * sgemm at every T; for one token that reads each weight, converts it
 * scalar and writes it back as f32: Q4_K llama-25m decoded at ~24 tokens/s.
 * Design, per block of 256 values:
 *   - unpack (ggml_unpack.h): the block's codes become 256 int8 (code minus
 *     the type's offset: Q3_K 4, Q6_K 32; the others keep 0..31) with
 *     32-byte vector ops into a stack buffer in L1, and its scales become
 *     16 f32 factors sc16 and mins mn16, one per 16 values (a 32-value
 *     sub-block's repeated), read as the reference reads them;
 *   - dot: per 16 values, two vpmovsxbd loads, converts and FMAs with x,
 *     then one FMA with the broadcast factor into the row's accumulator
 *     (four accumulators, s mod 4, for the FMA latency);
 *   - mins: value = scale q - min, so a row's sum is sum scale q x minus
 *     sum min * xs16, where xs16 are x's sums over each 16 columns, made
 *     once per token and tile (ggml does the same with its bsums).
 * This reorders the reference's sums (per-value products with d sc q - dm m
 * there), so it matches to f32 rounding relative to sum |x w|, not bitwise:
 * tests/formats/test_ggml_quants.c bounds it, on quantized and on random
 * block bytes.
 */
#include "format/ggml_kernels.h"
#include "format/ggml_unpack.h"

#define INLINE LP_GGML_INLINE

/* acc[0..3] += the block's sum sc q x (16 values a step); returns sum mn xs16. */
INLINE float block_dot(const lp_ggml_kblock *k, const float *x, const float *xs16, __m256 acc[4]) {
    float m = 0.0f;
#pragma GCC unroll 16
    for (int s = 0; s < 16; s++) {
        __m256 p = _mm256_mul_ps(lp_ggml_cvt8(k->q + 16 * s), _mm256_loadu_ps(x + 16 * s));
        p = _mm256_fmadd_ps(lp_ggml_cvt8(k->q + 16 * s + 8), _mm256_loadu_ps(x + 16 * s + 8), p);
        acc[s % 4] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&k->sc16[s]), acc[s % 4]);
        m += k->mn16[s] * xs16[s];
    }
    return m;
}

void lp_ggml_k_rows_avx2(const void *w, int64_t T, const float *x, int64_t ldx, float *y, int64_t ldy, int64_t r0,
                         int64_t r1) {
    const lp_ggml_part *p = w;
    const int64_t nb = p->cols / LP_GGML_QK_K, bytes = lp_ggml_type_of(p->type).bytes;
    const lp_ggml_kunpack_fn unpack = lp_ggml_kunpacker(p->type);
    float xs16[LP_GGML_K_ROWS_MAX_COLS / 16];
    lp_ggml_kblock k;
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * ldx;
        for (int64_t i = 0; i < p->cols / 16; i++) {
            __m256 v = _mm256_add_ps(_mm256_loadu_ps(xt + 16 * i), _mm256_loadu_ps(xt + 16 * i + 8));
            xs16[i] = lp_ggml_hsum8(v);
        }
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = p->blocks + (size_t)r * p->row_bytes;
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            float m = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                unpack(row + b * bytes, &k);
                m += block_dot(&k, xt + b * LP_GGML_QK_K, xs16 + b * 16, acc);
            }
            const __m256 a = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            y[t * ldy + r] = lp_ggml_hsum8(a) - m;
        }
    }
}
