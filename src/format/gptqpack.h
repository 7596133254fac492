/*
 * gptqpack.h - the "gptq" format: a linear kept exactly as a GPTQ checkpoint
 * (AutoGPTQ / GPTQModel / transformers / vLLM) stores it, and the packing
 * shared by GPTQ export (export/gptq_export.c) and import (model/gptq_import.c).
 *
 * What: W (rows x cols, out x in, row-major, y = x W^T) stored as four arrays
 * (N = rows = out features, K = cols = in features, G = ngroups, b = bits):
 *
 *   qweight  int32 (K*b/32, N)   column n holds the K codes q[n][0..K-1] of
 *                                output n, packed along the input dimension
 *   qzeros   int32 (G, N*b/32)   row g holds the N zero points of group g,
 *                                packed along the outputs
 *   scales   f16   (G, N)        scale of (group g, output n)
 *   g_idx    int32 (K)           the group of input column k, in [0, G)
 *
 *   W[n][k] = scales[g][n] * (float)(q[n][k] - (zq[g][n] + zero_offset)),
 *   g = g_idx[k], computed as f32(scale) times the exact integer difference,
 *   as qgroup does, so a converted qgroup dequantizes to the same bits.
 *
 * Packing (one rule for every b, checked against AutoGPTQ's QuantLinear.pack
 * and its torch dequantization in qlinear_cuda_old.py): the int32 words along
 * the packed axis are one little-endian bit stream and value j occupies bits
 * [j*b, (j+1)*b) of it. For b = 2, 4, 8 no value crosses a word (word i holds
 * values 32i/b .. 32(i+1)/b - 1, the first in the low bits); for b = 3 the
 * 32 values of three consecutive words are v0..v9 at bits 0..29 of word 0,
 * v10 split (low 2 bits at 30..31 of word 0, bit 2 at bit 0 of word 1),
 * v11..v20 at bits 1..30 of word 1, v21 split (bit 0 at bit 31 of word 1,
 * bits 1..2 at bits 0..1 of word 2), v22..v31 at bits 2..31 of word 2.
 * Shapes must hold whole words: K*b and N*b multiples of 32, and K, N
 * multiples of 32 for b = 3 (AutoGPTQ's own rule is K // 32 * b).
 *
 * Zero points: a "gptq" checkpoint ("v1", AutoGPTQ's checkpoint_format
 * "gptq") stores zero - 1 (zero_offset = 1); "gptq_v2" (GPTQModel) stores the
 * zero itself (zero_offset = 0). A v1 field of 2^b - 1 would be the zero 2^b,
 * off the b-bit grid; readers disagree on it (vLLM's and AutoGPTQ's CUDA
 * kernels add 1 and get 2^b, AutoGPTQ's torch path masks to 0, GPTQModel's
 * word-wide addition carries into the next field), so it is refused, and a
 * zero of 0 cannot be written as v1 (export switches to gptq_v2).
 *
 * Why a format of its own: act-order checkpoints (desc_act, a non-monotonic
 * g_idx) and groups that are not multiples of 32 do not fit qgroup; they run
 * from the mapped tensors as stored. Checkpoints with the trivial g_idx
 * (k / group) and a qgroup-sized group are converted to qgroup losslessly at
 * load (lp_gptqpack_to_qgroup) and run on its fast kernels.
 *
 * Products: the reference product dequantizes tiles of rows and multiplies
 * them with sgemm (format/rowgemm.h); there are no SIMD kernels.
 * Checkpoint (llmpress's own, format.h): tensors <base>.qweight I32, .qzeros
 * I32, .scales F16, .g_idx I32 [K] with the shapes above, description
 * {"format":"gptq","bits":b,"groups":G,"zero_offset":0|1}.
 * Exact bytes: 4 (K*b/32*N + G*N*b/32 + K) + 2 G N.
 */
#ifndef LP_GPTQPACK_H
#define LP_GPTQPACK_H

#include "format/format.h"
#include "format/qgroup.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int bits;                /* 2, 3, 4 or 8 */
    int zero_offset;         /* 1: v1 (stored zero - 1), 0: v2 */
    int64_t rows, cols;      /* N x K (out x in) */
    int64_t ngroups;         /* G */
    const uint32_t *qweight; /* (K*b/32, N) */
    const uint32_t *qzeros;  /* (G, N*b/32) */
    const uint16_t *scales;  /* (G, N) f16 */
    const int32_t *g_idx;    /* (K) */
    void *owned;             /* one block holding all four when made here (freed by lp_gptqpack_free), else NULL */
} lp_gptqpack;

/* Value i (b bits) of the little-endian bit stream formed by the words
 * w[0], w[stride], w[2 stride], ... (the packing above). */
static inline unsigned lp_gptqpack_field(const uint32_t *w, int64_t stride, int64_t i, int bits) {
    const int64_t bit = i * bits, word = bit >> 5;
    const int sh = (int)(bit & 31);
    uint64_t v = w[word * stride] >> sh;
    if (sh + bits > 32) v |= (uint64_t)w[(word + 1) * stride] << (32 - sh);
    return (unsigned)(v & ((1u << bits) - 1u));
}

/* Whether a packed axis of n values at b bits fills whole int32 words (the
 * rule above); NULL or a reason ("b = 3 needs a multiple of 32"). */
const char *lp_gptqpack_axis_problem(int64_t n, int bits);

/* A view over a checkpoint's four arrays (byte sizes given), checked as
 * untrusted input: bits in {2, 3, 4, 8}, whole-word shapes, alignment, every
 * g_idx entry in [0, ngroups), every scale finite, every zero field valid for
 * zero_offset. Errors are LP_ERR_FORMAT naming `file`, the tensor
 * ("<base>.g_idx", ...), the bad value and its position. */
lp_status lp_gptqpack_view(lp_gptqpack *w, const char *file, const char *base, int64_t rows, int64_t cols,
                           int bits, int64_t ngroups, int zero_offset, const void *qweight, size_t qweight_bytes,
                           const void *qzeros, size_t qzeros_bytes, const void *scales, size_t scales_bytes,
                           const void *g_idx, size_t g_idx_bytes);

/* The view of a checkpoint's tensors <base>.qweight, .qzeros, .scales (each
 * checked for dtype and exact 2-D shape, errors naming the file and tensor)
 * and .g_idx (I32 [cols]), then lp_gptqpack_view. ngroups < 0 takes G from
 * the scales tensor (a GPTQ file's own group count). */
lp_status lp_gptqpack_load_tensors(const lp_fmt_src *in, const char *base, int64_t rows, int64_t cols, int bits,
                                   int64_t ngroups, int zero_offset, lp_gptqpack *w);

/* The GPTQ arrays of a qgroup weight (owned by out): the trivial g_idx
 * k / group, zeros stored minus zero_offset (sym: 2^(b-1)). LP_ERR_ARG when q
 * has other bits than 2, 3, 4, 8, a shape that does not fill words, or (with
 * zero_offset = 1) a zero point of 0, naming the row and group; LP_ERR_NOMEM. */
lp_status lp_gptqpack_from_qgroup(const lp_qgroup *q, int zero_offset, lp_gptqpack *out);

/* w as a qgroup (owned by out), when its g_idx is k / group: group is -1
 * (per-channel) or a multiple of 32; sym asks for the implicit zero 2^(b-1),
 * which every zero must then equal (else LP_ERR_FORMAT naming file/base, the
 * group and output). LP_ERR_NOMEM. */
lp_status lp_gptqpack_to_qgroup(const lp_gptqpack *w, const char *file, const char *base, int group, int sym,
                                lp_qgroup *out);

/* The zero point of (group g, output n), the stored field plus zero_offset. */
static inline int lp_gptqpack_zero(const lp_gptqpack *w, int64_t g, int64_t n) {
    const int64_t words = w->rows * w->bits / 32;
    return (int)lp_gptqpack_field(w->qzeros + g * words, 1, n, w->bits) + w->zero_offset;
}

/* Rows [r0, r1) dequantized to f32 ((r1 - r0) x cols), by the formula above. */
void lp_gptqpack_dequant(const lp_gptqpack *w, int64_t r0, int64_t r1, float *out);

size_t lp_gptqpack_nbytes(const lp_gptqpack *w);

/* Free what w owns and zero it; NULL and views are fine. */
void lp_gptqpack_free(lp_gptqpack *w);

/* The traits row, name "gptq". */
extern const lp_format lp_format_gptq;

#endif
