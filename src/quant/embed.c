/*
 * embed.c - the token embedding and the LM head in grouped integers.
 *
 * What: lp_model_quantize_embeddings rounds the head (V x D) and, when it is
 *   a separate tensor, the embedding to b-bit asymmetric groups (qgroup,
 *   round to nearest with min-max ranges, as llama.cpp rounds its output
 *   tensor). A tied model has one tensor: the head's packed form then also
 *   serves the embedding (rows dequantized as tokens are embedded).
 * Why: in small models the vocabulary matrices are most of the bytes (the
 *   tied 32000 x 384 head is half of llama-25m), and the decoder-only
 *   methods leave them in 16 bits.
 * Design: after the decoder linears, so calibration saw the original
 *   embedding; the packed tensors are saved like any packed linear under
 *   "model.embed_tokens" and "lm_head" (checkpoint.c) and loaded back by
 *   model.c.
 */
#include "core/status_impl.h"
#include "format/dense.h"
#include "format/qgroup.h"
#include "model/model_impl.h"
#include "quant/rtn.h"

#include <stdlib.h>

/* W (rows x cols f32) as one qgroup part of out (rows and cols set, no parts). */
static lp_status round_into(const float *W, int bits, int group, lp_linear *out) {
    lp_qgroup *q = calloc(1, sizeof *q);
    if (!q) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_qgroup_init(q, out->rows, out->cols, bits, group < out->cols ? group : -1, 0);
    if (st == LP_OK) st = lp_rtn_quantize(W, q);
    if (st == LP_OK) return lp_linear_add_part(out, &lp_format_qgroup, q);
    lp_qgroup_free(q);
    free(q);
    return st;
}

lp_status lp_model_quantize_embeddings(lp_model *m, int embed_bits, int head_bits, int group) {
    const lp_config *c = &m->cfg;
    if (embed_bits < 0 || embed_bits == 1 || embed_bits > 8 || head_bits < 0 || head_bits == 1 || head_bits > 8)
        return lp_fail(LP_ERR_ARG, "embedding and head bits must be 2 .. 8 (0 keeps them)");
    if (group != -1 && (group < 32 || group % 32))
        return lp_fail(LP_ERR_ARG, "embedding and head group %d: a multiple of 32, or -1 per row", group);
    if (c->tied && embed_bits && head_bits && embed_bits != head_bits)
        return lp_fail(LP_ERR_ARG, "the model ties its head to its embedding (one tensor): --embed-bits %d and "
                       "--head-bits %d must agree", embed_bits, head_bits);
    if (c->tied && !head_bits) head_bits = embed_bits;
    if (m->gguf) return lp_fail(LP_ERR_UNSUPPORTED, "%s: a GGUF model's tensors keep their types", m->dir);
    const int64_t V = c->vocab, D = c->dim;
    float *W = malloc((size_t)(V * D) * sizeof *W);
    if (!W) return lp_fail(LP_ERR_NOMEM, "out of memory for the %lld x %lld embedding", (long long)V, (long long)D);
    lp_status st = LP_OK;
    if (embed_bits && !c->tied) {
        if (m->embed_q.nparts) {
            st = lp_fail(LP_ERR_ARG, "the embedding is already quantized");
        } else {
            int32_t *ids = malloc((size_t)V * sizeof *ids);
            if (!ids) st = lp_fail(LP_ERR_NOMEM, "out of memory");
            for (int64_t i = 0; ids && i < V; i++) ids[i] = (int32_t)i;
            if (ids) lp_embed_tokens(m, ids, V, W);
            free(ids);
            lp_linear e = {.rows = V, .cols = D};
            if (st == LP_OK) st = round_into(W, embed_bits, group, &e);
            if (st == LP_OK) {
                m->embed_q = e;
                m->embed = NULL; /* rows now come from the packed form */
                m->embed_raw = NULL;
            } else {
                lp_linear_free(&e);
            }
        }
    }
    if (st == LP_OK && head_bits) {
        if (!lp_linear_is(&m->head, &lp_format_dense)) {
            st = lp_fail(LP_ERR_ARG, "the head is already compressed");
        } else {
            lp_dense *d = m->head.part[0].data;
            st = lp_dense_materialize(d);
            lp_linear h = {.rows = V, .cols = D};
            if (st == LP_OK) st = round_into(d->w, head_bits, group, &h);
            if (st == LP_OK) {
                lp_linear_take_parts(&m->head, &h);
                if (c->tied) m->embed = NULL, m->embed_raw = NULL; /* the packed head is the embedding */
            } else {
                lp_linear_free(&h);
            }
        }
    }
    free(W);
    return st;
}
