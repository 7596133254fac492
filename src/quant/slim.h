/*
 * slim.h - SliM-LLM (Huang et al. 2024, "SliM-LLM: Salience-Driven
 * Mixed-Precision Quantization for Large Language Models", arXiv:2405.14917)
 * for one linear, with GPTQ as the backend, into the mixed-width format of
 * qmix.h.
 *
 * What (the paper's two parts, and our choices):
 *  - Salience-determined bit allocation (SBA). Group g (a column group, the
 *    same for every row) has salience S_g = sum over its weights of
 *    w^2 / U_jj^2, U the upper Cholesky factor of the damped H^-1 (as the
 *    authors' code computes it). The k most salient groups get bits + 1, the
 *    k least salient bits - 1, the rest bits: the average stays `bits`
 *    exactly and widths stay group-aligned. k is searched from 0 to G/2 on
 *    the layer's output error: each group's round-to-nearest error
 *    e_g(b) = sum_rows dw H_gg dw^T is computed once at b - 1, b and b + 1,
 *    so every k costs O(G). (The authors score k by a KL divergence of the
 *    outputs with all groups quantized together; we use the output squared
 *    error, block-diagonal in H, which is what the layer-wise objective of
 *    GPTQ itself measures, and include k = 0 so mixing is never forced.)
 *  - Salience-weighted quantizer calibration (SQC). The authors search each
 *    group's range factor on an error that weights salient weights more. We
 *    use the clipping search of clip.h at each group's own width: its
 *    objective dw H_gg dw^T weights each weight's error by its input's
 *    energy, the same information w^2 / U_jj^2 carries, and is exact for the
 *    layer's output.
 *  - GPTQ then quantizes the layer with per-group widths (gptq.h: gbits) in
 *    one container, repacked into one qgroup part per width.
 * 1-bit groups (bits = 2) use the asymmetric 1-bit grid of qgroup.h (levels
 * 0 and +-scale), not the authors' mean +- mean|w| binarization, which our
 * formats do not store; the k search sees that error and moves fewer groups
 * down when it hurts.
 */
#ifndef LP_SLIM_H
#define LP_SLIM_H

#include "llmpress/status.h"

#include <stdint.h>

/* Per-group widths for W (rows x cols) with group `group` (< cols) around
 * `bits` (2..7): gbits (ngroups) receives the widths; *k_out the number of
 * groups moved up (and down). H (cols x cols) is read-only. */
lp_status lp_slim_allocate(const float *W, int64_t rows, int64_t cols, const float *H, int bits, int group,
                           int sym, double damp, uint8_t *gbits, int64_t *k_out);

#endif
