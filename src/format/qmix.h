/*
 * qmix.h - grouped integers with a bit width per column group (SliM-LLM's
 * mixed precision), stored as ordinary qgroup parts.
 *
 * What: a weight W (rows x cols, out x in) whose column groups
 * [g*group, (g+1)*group) each have their own bit width gbits[g], the same
 * for every row. Every value dequantizes as in qgroup.h:
 * w = scale * (q - zero), with the group's scale, zero and width.
 *
 * Why this layout: grouping the columns by width makes each width an
 * ordinary qgroup, so the mixed weight runs through the same packed kernels
 * (AVX-512, AVX2, ref) and no kernel learns about mixed widths. Part k holds,
 * in column order, the groups whose width is part[k].bits, as a
 * rows x (their columns) qgroup with the same group size; the last group of
 * W, when shorter than `group`, is the last group of its part. A product
 * Y = X W^T gathers each part's input columns and sums the parts' products.
 *
 * Storage: gbits (uint8, ngroups) plus each part's q, scales and zeros
 * (qgroup.h). Symmetric parts use their own width's implicit zero 2^(b-1).
 * Bits per weight count all of it: lp_qmix_nbytes.
 */
#ifndef LP_QMIX_H
#define LP_QMIX_H

#include "format/qgroup.h"

#define LP_QMIX_MAX_PARTS 8

typedef struct {
    int64_t rows, cols;
    int group;       /* columns per group, a multiple of 32 and < cols */
    int sym;
    int64_t ngroups; /* ceil(cols / group) */
    uint8_t *gbits;  /* ngroups widths in 1..8 (owned) */
    int nparts;      /* distinct widths, ascending */
    lp_qgroup part[LP_QMIX_MAX_PARTS];
} lp_qmix;

/* Check a width map: ngroups = ceil(cols / group) entries in 1..8, group a
 * multiple of 32 below cols. `st` is the code to fail with (LP_ERR_ARG for
 * a caller, LP_ERR_FORMAT for a file). */
lp_status lp_qmix_check(lp_status st, int64_t rows, int64_t cols, int group, const uint8_t *gbits);

/* Columns of the part of width `bits` (0 when no group has it). */
int64_t lp_qmix_part_cols(int64_t cols, int group, const uint8_t *gbits, int bits);

/* Allocate zero-filled parts for the width map (copied). LP_ERR_ARG for a
 * bad map, LP_ERR_NOMEM. */
lp_status lp_qmix_init(lp_qmix *w, int64_t rows, int64_t cols, int group, int sym, const uint8_t *gbits);

/* Take the parts' storage from a wide qgroup `src` (same shape and group,
 * bits >= every gbits[g]) whose group g holds codes < 2^gbits[g], with
 * scales and zeros for that width: the packing used by a quantizer that
 * works at one container width. w must come from lp_qmix_init. LP_ERR_NOMEM. */
lp_status lp_qmix_repack(lp_qmix *w, const lp_qgroup *src);

/* Adopt parts that the caller built (e.g. views of a mapped file): the width
 * map is copied, the parts are moved in. Each part is checked against the
 * map (rows, cols, bits, group, sym): LP_ERR_FORMAT naming the mismatch. */
lp_status lp_qmix_adopt(lp_qmix *w, int64_t rows, int64_t cols, int group, int sym, const uint8_t *gbits,
                        lp_qgroup *parts, int nparts);

void lp_qmix_free(lp_qmix *w);

/* Exact stored bytes: the width map plus every part's q, scales, zeros. */
size_t lp_qmix_nbytes(const lp_qmix *w);

/* Mean code bits per weight (sum of widths x columns / cols). */
double lp_qmix_mean_bits(const lp_qmix *w);

/* Rows [r0, r1) dequantized to f32 ((r1 - r0) x cols). */
lp_status lp_qmix_dequant(const lp_qmix *w, int64_t r0, int64_t r1, float *out);

/* Y (T x rows) = X (T x cols) W^T through each part's qgroup kernels. */
lp_status lp_qmix_gemm(const lp_qmix *w, const float *X, int64_t T, float *Y);

/* The traits row: {"format":"qmix","group":G,"sym":S}; tensors <base>.gbits
 * (U8 [1, ngroups]) and one qgroup part per width b under <base>.w<b>. */
extern const lp_format lp_format_qmix;

#endif
