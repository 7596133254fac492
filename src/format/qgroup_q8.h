/*
 * qgroup_q8.h - products of grouped-integer weights (qgroup.h) with 8-bit
 * quantized activations and integer dot products, like llama.cpp's Q8
 * activations: decode (T = 1) and, under q8-all, prefill.
 *
 * What: y = W x for one token, where x is first rounded to int8 per chunk
 * of 128 columns and each chunk's sum of q * xq is an exact int32 (AVX-512
 * VNNI vpdpbusd: u8 weights x s8 activations, 4 products per int32 lane).
 * Why: the f32 kernel (qgroup_avx512.c) needs an AND, a convert and an FMA
 * per 16 weights and tops out near 50 G weights/s per core, about half of
 * what DRAM delivers at W4; with vpdpbusd one op handles 64 weights, so
 * the product is bound by memory, not by the vector ports. The price is the
 * activation rounding below (the error of llama.cpp's Q8_0/Q8_K
 * activations), so results differ from lp_qgroup_gemm by up to that bound;
 * callers choose which one to run.
 *
 * Specification (C = ceil(ldx / 128) chunks, ldx = lp_qkernels_ldx(w);
 * W is rows x cols, out x in, row-major; chunk c = columns [128c, 128c+128),
 * x taken as 0 past cols):
 *
 *   d_c  = max_{j in c} |x_j| / 127                          (f32)
 *   xq_j = clamp(rint(x_j / d_c), -127, 127)                 (int8; all 0 when d_c = 0)
 *   S_c  = sum_{j in c} xq_j                                 (int32)
 *   y[r] = sum_{c = 0..C-1, in order}  (s_g * d_c) * (float)( sum_{j in c} q[r,j] xq_j - z_g S_c )
 *
 * with g = g(c) the group that holds chunk c, s_g its f16 scale and z_g its
 * zero point (2^(b-1) when symmetric); the parenthesis is exact int32 and
 * the rest f32. rint rounds half to even; x_j / d_c is a correctly rounded
 * f32 division (not a multiply by 1 / d_c, which overflows when d_c is
 * subnormal); the clamp only acts when d_c is subnormal. Hence for every
 * chunk whose d_c is a normal float (max |x| >= 127 * FLT_MIN ~ 1.5e-36):
 *
 *   |x_j - d_c xq_j| <= d_c (1/2 + 2^-17)
 *
 * (2^-17 bounds the rounding of the division x_j / d_c, whose magnitude is
 * at most ~127), so y is dequant(W) . dequant(xq) up to f32 rounding, and
 * differs from the exact W x by at most sum_c d_c (1/2 + 2^-17)
 * sum_{j in c} |w_rj| plus that rounding. x must be finite, and each term
 * (|s_g| max|x| 128 * 255 at most) must stay below FLT_MAX: |x| < 1e30 is
 * fine for |s| < 1. lp_qgroup_q8_gemv_ref is this formula term by term.
 *
 * Coverage: weights of bits 2, 4 and 8 (one plane) and 3 (chunks of 128
 * columns) whose groups are a multiple of 128 columns or one group per row (then every chunk lies in
 * one group: the f32 kernel's "chunk mode"). Other shapes are refused with
 * LP_ERR_UNSUPPORTED (use lp_qgroup_gemm).
 *
 * Activation layout: the fast kernel reads a chunk's packed words with one
 * 64-byte load (b = 4; two at b = 8, one 32-byte load broadcast at b = 2,
 * a 32- and a 16-byte broadcast at b = 3) and splits it into two vectors of
 * 64 bytes, each byte one weight: for b = 4 the low and high nibbles (AND,
 * shift+AND), for b = 8 the words as they are, for b = 2 two variable
 * shifts + AND, for b = 3 three bit-matrix ops and an OR (qgroup.h), which
 * give the columns in order (lane_col is the identity; a row's last 1-3
 * blocks, in the plane layout, take b = 2's bytes with the third bit joined
 * in, so b = 2's order). Byte
 * p = 64h + 4L + k (vector h, int32 lane L, byte k) then holds the weight of
 * column lp_qgroup_q8_lane_col(bits, whole, p) of the chunk, and xq is stored in
 * that same order, 128 bytes per chunk, so vpdpbusd pairs each weight with
 * its own activation and no byte is ever shuffled.
 *
 * Threads: lp_qgroup_gemv_q8 quantizes x once (serially; ~3 us for 11008
 * columns with the vector quantizer, <0.5% of a 2-thread call), then runs one
 * OpenMP `parallel for` over fixed tiles of rows; each y[r] is computed by
 * one thread in a fixed order, so results are bit-identical for any thread
 * count. lp_qgroup_gemm_q8 (several tokens: prefill under q8-all)
 * quantizes its tokens on the team, then shares rows the same way.
 */
#ifndef LP_QGROUP_Q8_H
#define LP_QGROUP_Q8_H

#include "format/qgroup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LP_Q8_CHUNK 128 /* columns per activation scale (4 packed blocks) */

/* One token's quantized activations (pointers into one scratch buffer). */
typedef struct {
    int64_t nchunks; /* C = lp_qkernels_ldx(w) / 128 */
    int8_t *xq;      /* (C, 128) xq in lane order (see the top), 64-byte aligned */
    float *d;        /* (C) d_c */
    int32_t *sum;    /* (C) S_c */
    float *dsum;     /* (G) sum over the chunks c of group g, in order, of d_c * (float)S_c
                        (f32): the fast kernel's zero-point term is sum_g s_g z_g dsum_g */
} lp_q8_act;

/* True when the q8 product covers w's layout (bits 2, 3, 4, 8; groups a
 * multiple of 128 or one per row). */
bool lp_qgroup_q8_covers(const lp_qgroup *w);

/* True when w is covered and this CPU runs the fast kernel (AVX-512 VNNI
 * and LP_KERNEL allowing avx512, core/cpu.h). Otherwise lp_qgroup_gemv_q8
 * still works for covered layouts but runs the scalar _ref (slow). */
bool lp_qgroup_q8_supported(const lp_qgroup *w);

/* y (rows) = W x (x: cols floats) with x quantized as specified above.
 * LP_ERR_UNSUPPORTED for a layout not covered, LP_ERR_NOMEM. */
lp_status lp_qgroup_gemv_q8(const lp_qgroup *w, const float *x, float *y);

/* Y (T, rows) = X (T, cols) W^T, each token's x quantized as specified above
 * (T products of lp_qgroup_gemv_q8's, each row's result independent of the
 * thread count). LP_ERR_UNSUPPORTED, LP_ERR_ARG (T < 0), LP_ERR_NOMEM. */
lp_status lp_qgroup_gemm_q8(const lp_qgroup *w, const float *X, int64_t T, float *Y);

/* ---- the pieces (tests and benches call them directly) ---- */

/* Column (0..127) inside its chunk of the weight at byte p (0..127) of the
 * fast kernel's two unpacked vectors, for bits 2, 3, 4, 8 (see the top).
 * whole: the chunk has all 4 blocks (only a row's last chunk may not); at
 * b = 3 a whole chunk is in column order, a partial one in bits 2's. */
int lp_qgroup_q8_lane_col(int bits, int whole, int p);

/* 1 when chunk c of w's rows has all 4 blocks (the lane order above). */
static inline int lp_qgroup_q8_whole(const lp_qgroup *w, int64_t c) { return 4 * (c + 1) <= w->blocks; }

/* Bytes of one token's lp_q8_act for w, including alignment slack. */
size_t lp_qgroup_q8_act_bytes(const lp_qgroup *w);

/* Lay an lp_q8_act over buf (lp_qgroup_q8_act_bytes(w) bytes, any alignment). */
void lp_qgroup_q8_act_view(const lp_qgroup *w, void *buf, lp_q8_act *a);

/* a = x (cols floats) quantized as specified above, w covered: _ref in
 * scalar C, _avx512vnni (only when lp_qgroup_q8_supported(w)) with vectors,
 * bit-identical; lp_qgroup_q8_quantize runs the fastest this CPU has. */
void lp_qgroup_q8_quantize(const lp_qgroup *w, const float *x, lp_q8_act *a);
void lp_qgroup_q8_quantize_ref(const lp_qgroup *w, const float *x, lp_q8_act *a);
void lp_qgroup_q8_quantize_avx512vnni(const lp_qgroup *w, const float *x, lp_q8_act *a);
/* T tokens (X: T x cols) into a[0 .. T-1] (views already laid), as T calls
 * of lp_qgroup_q8_quantize_avx512vnni with its setup done once. */
void lp_qgroup_q8_quantize_tokens_avx512vnni(const lp_qgroup *w, const float *X, int64_t T, lp_q8_act *a);
/* a->dsum from a->d and a->sum (the quantizers' last step, shared). */
void lp_qgroup_q8_group_sums(const lp_qgroup *w, lp_q8_act *a);

/* y[r] for r in [r0, r1): serial kernels over a row range. _ref is the
 * specification; _avx512vnni computes the same sum in another order (f32
 * per-group partial sums, or at group 128 one factor s_g d_c per chunk;
 * the zero-point term from dsum), so it matches
 * _ref to f32 rounding, not bitwise. Call _avx512vnni only when
 * lp_qgroup_q8_supported(w). */
void lp_qgroup_q8_gemv_ref(const lp_qgroup *w, const lp_q8_act *a, float *y, int64_t r0, int64_t r1);
void lp_qgroup_q8_gemv_avx512vnni(const lp_qgroup *w, const lp_q8_act *a, float *y, int64_t r0, int64_t r1);

/* Y[t * ldy + r] for T tokens (a[0 .. T-1], each quantized as specified
 * above) and r in [r0, r1): the same product per token, with one unpacked
 * weight chunk feeding up to four tokens (prefill). Matches the _ref per
 * token as the gemv kernel does (f32 rounding of the terms, not bitwise). */
void lp_qgroup_q8_gemm_avx512vnni(const lp_qgroup *w, const lp_q8_act *a, int64_t T, float *Y, int64_t ldy, int64_t r0,
                                  int64_t r1);

#endif
