/*
 * braq.h - binarization primitives over one block of columns, and the
 * searches that split a block into groups, as BiLLM (Huang et al. 2024,
 * arXiv:2402.04291) and ARB-LLM (Li et al. 2024, arXiv:2410.03129) do.
 *
 * What: a block is R rows x n columns (row stride ld). Every weight belongs
 *   to a group g in 0..3: LP_G_SAL_HI, LP_G_SAL_LO (salient columns, split
 *   by ARB-LLM's column-group bitmap, else all LP_G_SAL_HI), LP_G_HI,
 *   LP_G_LO (the other columns, split at BiLLM's break point). A set of
 *   groups is a bit mask over g (LP_SET_SAL = both salient groups).
 *   Per row r and group, a binarizer fits the group's weights x as
 *     mean modes  q = (s0 a0 + s1 a1) + mu   (order 2)  or  s0 a0 + mu
 *     RC modes    q = s0 (r0 c0[j]) + s1 (r1 c1[j])   or  s0 (r c[j])
 *   (s = +-1) and writes q into Q at the group's positions:
 *     braq     BiLLM's residual binarization: order passes of "mean, then
 *              sign times mean |deviation|" (high_order_residual);
 *     arb      ARB-LLM's alternating refinement of mu, a and the signs
 *              (iters rounds; order 1 and 2);
 *     arbx     ARB-X: arb, then mu and a refit with the signs fixed to
 *              minimize (w - q)^T S (w - q), S = the block of X^T X;
 *     rc       ARB-RC: row and column scales, no mean, alternating.
 *   The searches run on a saliency matrix T (BiLLM: w^2 / U_jj^2, U the
 *   upper Cholesky factor of H^-1, i.e. GPTQ's d^2):
 *     lp_braq_salient  how many of the 50 columns with the largest sum |T|
 *                      are salient (the k in 1..49 that binarizes T best);
 *     lp_braq_split    the break point of the other columns (81 quantiles
 *                      of |T| from 0.10 to 0.90, the one whose order-1
 *                      binarization of both halves fits T best);
 *     lp_braq_cgb      ARB-LLM's column-group bitmap: the salient weights
 *                      split the same way.
 * Design: plain loops over rows with double accumulators; searches run their
 *   candidates in parallel (one candidate per thread, its error summed in a
 *   fixed order), so results do not depend on the thread count. A sign
 *   where the deviation is exactly 0 is +1 (torch.sign gives 0, which one
 *   bit cannot hold). The authors' reference: BiLLM @dc137eb binary.py,
 *   utils/structure.py, utils/autosearch.py; ARB-LLM @8512765
 *   binary_arb.py, utils/autosearch_arb.py (read, not copied).
 */
#ifndef LP_BRAQ_H
#define LP_BRAQ_H

#include "llmpress/status.h"

#include <stdint.h>

enum { LP_G_SAL_HI = 0, LP_G_SAL_LO = 1, LP_G_HI = 2, LP_G_LO = 3 };
#define LP_SET(g) (1u << (g))
#define LP_SET_SAL (LP_SET(LP_G_SAL_HI) | LP_SET(LP_G_SAL_LO))
#define LP_SET_OTHER (LP_SET(LP_G_HI) | LP_SET(LP_G_LO))

typedef enum { LP_BIN_BRAQ = 0, LP_BIN_ARB = 1, LP_BIN_ARBX = 2, LP_BIN_RC = 3 } lp_bin_kind;

/* One group's fit: per row (R) mu, a0, a1 (mean modes; RC: r0 in a0, r1 in
 * a1, mu = 0), per column (n) c0, c1 (RC only), per weight the signs s0, s1
 * (int8 +-1, R x n, at the group's positions). */
typedef struct {
    float *mu, *a0, *a1; /* R */
    float *c0, *c1;      /* n (RC) */
} lp_bin_fit;

typedef struct {
    lp_bin_kind kind;
    int iters;       /* ARB / RC refinement rounds (15) */
    int iters_x;     /* ARB-X refit rounds (15) */
    const float *S;  /* n x n (ARB-X): the block of X^T X, any positive scale */
} lp_bin_opts;

/* Fit group set `set` of the block X (R x n, stride ld; G R x n group ids)
 * at `order` (1 or 2) with o's binarizer; write q into Q (R x n, stride n)
 * at the set's positions, the parameters into fit (when not NULL) and the
 * signs into s0 / s1 (R x n, may be NULL). Rows run in parallel when par. */
void lp_bin_fit_set(const float *X, int64_t R, int64_t n, int64_t ld, const uint8_t *G, unsigned set, int order,
                    const lp_bin_opts *o, float *Q, lp_bin_fit *fit, int8_t *s0, int8_t *s1, int par);

/* ---- the searches (on T, R x n contiguous) ---- */

/* Mark the salient columns: G[r][j] = LP_G_SAL_HI on them, LP_G_HI
 * elsewhere; returns their count (1 .. min(49, n - 1)). */
int64_t lp_braq_salient(const float *T, int64_t R, int64_t n, uint8_t *G);

/* Split the non-salient weights at the break point: LP_G_HI where |T| >= p,
 * LP_G_LO below. kind chooses how the salient part is fitted for the
 * comparison (BRAQ order 2, ARB, ARB-X or RC; o->S for ARB-X's error
 * tr((T - Q) S (T - Q)^T), plain squared error otherwise). LP_ERR_NOMEM. */
lp_status lp_braq_split(const float *T, int64_t R, int64_t n, uint8_t *G, const lp_bin_opts *o);

/* ARB-LLM's column-group bitmap: salient weights with |T| < p move to
 * LP_G_SAL_LO, p the best of the quantiles of the nonzero salient |T|
 * (BRAQ order 2 on both halves). LP_ERR_NOMEM. */
lp_status lp_braq_cgb(const float *T, int64_t R, int64_t n, uint8_t *G);

#endif
