/*
 * score.c - log-probabilities of given next tokens from final hidden states,
 * without a rows x vocabulary matrix of logits.
 *
 * What: lp_head_score(m, xn, R, tgt, out): for each of R rows of normalized
 *   final hidden states, log softmax(head · xn_r)[tgt_r] (in double) and
 *   whether tgt_r is the first argmax of those logits (greedy).
 * Why: perplexity and zero-shot scoring need one number per row, yet the
 *   logits are R x V floats (65 MB for 512 tokens of a 32000-token
 *   vocabulary, 262 MB at 128k), written once and read twice; and a head
 *   in a 16-bit or packed form would otherwise be multiplied through its
 *   row kernels, made for few tokens.
 * Design: the vocabulary is cut into tiles of VT head rows. Each tile is
 *   dequantized into a per-thread f32 panel (any format, through its
 *   traits row; a few hundred KB, cache-sized) and multiplied with the
 *   rows, RB rows at a time, by lp_sgemm_nt; per (tile, row) we keep
 *   the tile's maximum, its first argmax and sum exp(z - max) in double
 *   (lp_sum_exp: a vector double exp within 2 ulp of libm's, which had
 *   been a fifth of a perplexity run),
 *   and the target's logit from the tile holding it. The tiles are combined
 *   per row in vocabulary order (the result is the same whatever the
 *   thread count):
 *       M = max_k mx_k,  lse = M + log sum_k se_k exp(mx_k - M).
 *   Tiles run in an OpenMP loop, one lp_sgemm_nt per tile and row block.
 */
#include "model/model_impl.h"

#include "core/sgemm.h"
#include "core/status_impl.h"
#include "core/vexp.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

enum {
    VT = 256, /* head rows (vocabulary entries) per tile */
    RB = 128, /* hidden-state rows per sgemm */
};

typedef struct {
    float *mx;   /* (ntiles, R) tile maximum */
    int32_t *am; /* (ntiles, R) its first index */
    double *se;  /* (ntiles, R) sum of exp(z - mx) over the tile */
    float *zy;   /* (R) the target's logit */
} tile_stats;

/* Statistics of rows [0, n) of Z (n x nv logits of vocabulary entries v0 ..)
 * into slot k; rows r0.. of the call. */
static void tile_rows(const float *Z, int64_t n, int64_t nv, int64_t v0, int64_t r0, int64_t R, int64_t k,
                      const int32_t *tgt, tile_stats *s) {
    for (int64_t i = 0; i < n; i++) {
        const float *z = Z + i * nv;
        float mx = z[0];
        int32_t am = 0;
        for (int64_t v = 1; v < nv; v++)
            if (z[v] > mx) mx = z[v], am = (int32_t)v;
        const double se = lp_sum_exp(z, nv, mx); /* sum of exp(z - mx), in double (core/vexp.h) */
        const int64_t r = r0 + i;
        s->mx[k * R + r] = mx;
        s->am[k * R + r] = (int32_t)v0 + am;
        s->se[k * R + r] = se;
        if (tgt[r] >= v0 && tgt[r] < v0 + nv) s->zy[r] = z[tgt[r] - v0];
    }
}

lp_status lp_head_score(const lp_model *m, const float *xn, int64_t R, const int32_t *tgt, lp_token_score *out) {
    if (R <= 0) return LP_OK;
    const int64_t D = m->cfg.dim, V = m->cfg.vocab, ntiles = (V + VT - 1) / VT;
    const lp_linear *head = &m->head;
    const int nth = omp_get_max_threads();
    const int64_t rb = R < RB ? R : RB;
    const size_t per = (size_t)(VT * D + rb * VT + (head->nparts > 1 ? VT * D : 0)); /* floats per thread */
    tile_stats s = {malloc((size_t)(ntiles * R) * sizeof(float)), malloc((size_t)(ntiles * R) * sizeof(int32_t)),
                    malloc((size_t)(ntiles * R) * sizeof(double)), malloc((size_t)R * sizeof(float))};
    float *scratch = malloc(per * (size_t)nth * sizeof(float));
    lp_status st = s.mx && s.am && s.se && s.zy && scratch
                       ? LP_OK
                       : lp_fail(LP_ERR_NOMEM, "out of memory scoring %lld rows against a %lld-token vocabulary",
                                 (long long)R, (long long)V);
    int failed = 0;
    if (st != LP_OK) goto done;
    for (int64_t r = 0; r < R; r++) s.zy[r] = NAN;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nth) reduction(| : failed)
    for (int64_t k = 0; k < ntiles; k++) {
        float *W = scratch + (size_t)omp_get_thread_num() * per, *Z = W + VT * D, *tmp = Z + rb * VT;
        const int64_t v0 = k * VT, nv = V - v0 < VT ? V - v0 : VT;
        if (lp_linear_dequant_rows(head, v0, v0 + nv, W, tmp) != LP_OK) {
            failed = 1;
            continue;
        }
        for (int64_t r0 = 0; r0 < R; r0 += rb) {
            const int64_t n = R - r0 < rb ? R - r0 : rb;
            lp_sgemm_nt(n, nv, D, xn + r0 * D, D, W, D, Z, nv);
            if (head->bias)
                for (int64_t i = 0; i < n; i++)
                    for (int64_t v = 0; v < nv; v++) Z[i * nv + v] += head->bias[v0 + v];
            tile_rows(Z, n, nv, v0, r0, R, k, tgt, &s);
        }
    }
    if (failed) {
        st = lp_fail(LP_ERR_NOMEM, "out of memory dequantizing the head's rows");
        goto done;
    }
#pragma omp parallel for schedule(static) if (R > 16)
    for (int64_t r = 0; r < R; r++) {
        int64_t best = 0; /* the first tile holding the maximum */
        for (int64_t k = 1; k < ntiles; k++)
            if (s.mx[k * R + r] > s.mx[best * R + r]) best = k;
        const double M = s.mx[best * R + r];
        double sum = 0.0;
        for (int64_t k = 0; k < ntiles; k++) sum += s.se[k * R + r] * exp((double)s.mx[k * R + r] - M);
        const bool scored = tgt[r] >= 0 && tgt[r] < V;
        out[r].logprob = scored ? (double)s.zy[r] - M - log(sum) : 0.0;
        out[r].greedy = scored && s.am[best * R + r] == tgt[r];
    }
done:
    free(s.mx);
    free(s.am);
    free(s.se);
    free(s.zy);
    free(scratch);
    return st;
}
