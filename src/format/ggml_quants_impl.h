/*
 * ggml_quants_impl.h - the split of ggml_quants.c: the legacy 32-value types
 * (and the type dispatch) live in ggml_quants.c, the 256-value K types in
 * ggml_kquants.c, which implements these for t in Q2_K .. Q6_K.
 */
#ifndef LP_GGML_QUANTS_IMPL_H
#define LP_GGML_QUANTS_IMPL_H

#include "format/ggml_quants.h"

#include <stdint.h>

/* IQ4_NL's 16 non-linear levels (value = d * level[nibble]). */
extern const int8_t lp_ggml_iq4nl_levels[16];

/* The scale bytes of the K types, read here once for the reference
 * (ggml_kquants.c) and the row kernels (ggml_k_avx2.c). */

/* Q3_K: the 6-bit value of sub-block s (0..15) from the 12 scale bytes b
 * (0..63; the signed scale is this - 32). */
static inline int lp_ggml_q3_scale(const uint8_t *b, int s) {
    int lo = s < 8 ? b[s] & 0xF : b[s - 8] >> 4;
    int hi = (b[8 + s % 4] >> (2 * (s / 4))) & 3;
    return lo | hi << 4;
}

/* Q4_K/Q5_K: scale and min of sub-block s (0..7) from the 12 scale bytes b
 * (ggml's get_scale_min_k4). */
static inline void lp_ggml_k4_scale_min(const uint8_t *b, int s, int *sc, int *mn) {
    if (s < 4) {
        *sc = b[s] & 63;
        *mn = b[s + 4] & 63;
    } else {
        *sc = (b[s + 4] & 0xF) | ((b[s - 4] >> 6) << 4);
        *mn = (b[s + 4] >> 4) | ((b[s] >> 6) << 4);
    }
}

void lp_ggml_k_dequant_row(int t, const void *src, float *y, int64_t n);
void lp_ggml_k_block_codes(int t, const void *blk, int8_t *code, float *sc16, float *mn16);
void lp_ggml_k_quantize_row(int t, const float *x, const float *imp, void *dst, int64_t n);
void lp_ggml_k_grid_fit(int t, const float *x, const float *imp, lp_ggml_grid *g);
int lp_ggml_k_grid_code(const lp_ggml_grid *g, int j, float x, float *deq);
void lp_ggml_k_grid_pack(const lp_ggml_grid *g, const int *codes, void *block);

#endif
