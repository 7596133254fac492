/*
 * tokenizer_llama2c.c - Karpathy's llama2.c tokenizer.bin format.
 *
 * What: load tokenizer.bin / tok512.bin and encode / decode like llama2.c's
 * run.c, so the tiny stories models can be run from text.
 * Why:  those models ship no tokenizer.json; their tokenizer is a
 * SentencePiece export with one score per token.
 * Design: the file is `int32 max_token_length` then, per token, `float32
 * score, int32 len, len bytes` (host byte order, little-endian in practice),
 * up to the end of the file. Encoding is run.c's:
 *   - BOS (id 1) when add_special, then the dummy-prefix token " " when the
 *     text is non-empty;
 *   - each UTF-8 character is its token if it has one, else its bytes as the
 *     byte tokens <0xNN> (id = byte + 3);
 *   - repeatedly merge the adjacent pair whose concatenation is a token with
 *     the highest score (leftmost on ties) until none is left.
 * run.c rescans the whole sequence for every merge (quadratic); we keep the
 * candidate pairs in a max-heap keyed by (score, position) and drop stale
 * entries when popped, which selects exactly the same merge at every step.
 * Decoding drops the leading space of a token that follows BOS (run.c) or
 * starts the output (so decode(encode(s)) == s), and turns <0xNN> to a byte.
 */
#include "tokenizer/tokenizer_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

lp_status lp_l2c_load(lp_tokenizer *t, const char *data, size_t size) {
    int32_t maxlen;
    if (size < 4)
        return lp_fail(LP_ERR_FORMAT, "%s: neither a tokenizer.json (no '{') nor a llama2.c tokenizer "
                       "(%zu bytes is too short)", t->path, size);
    memcpy(&maxlen, data, 4);
    if (maxlen <= 0 || maxlen > (1 << 20))
        return lp_fail(LP_ERR_FORMAT, "%s: neither a tokenizer.json (no '{') nor a llama2.c tokenizer "
                       "(max_token_length %d is implausible)", t->path, maxlen);
    /* pass 1: count and check every record against the file size */
    int64_t n = 0;
    for (size_t off = 4; off < size; n++) {
        int32_t len;
        if (size - off < 8)
            return lp_fail(LP_ERR_FORMAT, "%s: llama2.c tokenizer truncated in the header of token %lld",
                           t->path, (long long)n);
        memcpy(&len, data + off + 4, 4);
        if (len < 0 || len > maxlen || (size_t)len > size - off - 8)
            return lp_fail(LP_ERR_FORMAT, "%s: llama2.c token %lld has length %d (max_token_length %d, "
                           "%zu bytes left in the file)", t->path, (long long)n, len, maxlen,
                           size - off - 8);
        off += 8 + (size_t)len;
    }
    if (n < 3)
        return lp_fail(LP_ERR_FORMAT, "%s: llama2.c tokenizer has %lld tokens, expected at least "
                       "<unk>, <s>, </s>", t->path, (long long)n);
    t->n_vocab = n;
    t->text_off = calloc((size_t)n, sizeof(uint32_t));
    t->text_len = calloc((size_t)n, sizeof(uint32_t));
    t->flags = calloc((size_t)n, 1);
    t->scores = malloc((size_t)n * sizeof(float));
    if (!t->text_off || !t->text_len || !t->flags || !t->scores)
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
    LP_TRY(lp_smap_init(&t->l2c_vocab, (size_t)n));
    size_t off = 4;
    for (int64_t i = 0; i < n; i++) {
        int32_t len;
        memcpy(&t->scores[i], data + off, 4);
        memcpy(&len, data + off + 4, 4);
        const char *s = data + off + 8;
        LP_TRY(lp_tok_set_text(t, (int32_t)i, s, (size_t)len));
        /* run.c's lookup is a bsearch over sorted strings; with duplicates
         * any may win, we keep the first */
        if (lp_smap_get(&t->l2c_vocab, s, (size_t)len) < 0)
            LP_TRY(lp_smap_put(&t->l2c_vocab, s, (size_t)len, (int32_t)i));
        off += 8 + (size_t)len;
    }
    t->bos = 1;
    t->eos = 2;
    t->flags[1] |= LP_TOKF_SPECIAL;
    t->flags[2] |= LP_TOKF_SPECIAL;
    return LP_OK;
}

typedef struct {
    float score;
    uint32_t pos;
    int32_t id;
} l2c_cand;

/* higher score first, then leftmost */
static int cand_before(const l2c_cand *a, const l2c_cand *b) {
    return a->score > b->score || (a->score == b->score && a->pos < b->pos);
}

static void cand_push(l2c_cand *h, size_t *n, l2c_cand x) {
    size_t i = (*n)++;
    while (i > 0 && cand_before(&x, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}

static l2c_cand cand_pop(l2c_cand *h, size_t *n) {
    l2c_cand top = h[0], x = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_before(&h[c + 1], &h[c])) c++;
        if (!cand_before(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

/* The token for the concatenation of ids a and b, or -1. */
static int32_t pair_id(const lp_tokenizer *t, int32_t a, int32_t b, lp_tbuf *buf) {
    buf->n = 0;
    if (lp_tbuf_put(buf, t->text.p + t->text_off[a], t->text_len[a]) != LP_OK ||
        lp_tbuf_put(buf, t->text.p + t->text_off[b], t->text_len[b]) != LP_OK)
        return -1;
    return lp_smap_get(&t->l2c_vocab, buf->p, buf->n);
}

lp_status lp_l2c_encode(const lp_tokenizer *t, const char *text, size_t len, int add_special,
                        lp_ivec *out) {
    lp_ivec tok = {0};
    lp_status st = LP_OK;
    if (add_special) st = lp_ivec_push(&tok, 1);
    if (st == LP_OK && len > 0) {
        int32_t sp = lp_smap_get(&t->l2c_vocab, " ", 1);
        if (sp >= 0) st = lp_ivec_push(&tok, sp);
    }
    for (size_t i = 0; i < len && st == LP_OK;) {
        size_t cl = (size_t)lp_utf8_len((unsigned char)text[i]); /* text is valid UTF-8 */
        int32_t id = lp_smap_get(&t->l2c_vocab, text + i, cl);
        if (id >= 0) {
            st = lp_ivec_push(&tok, id);
        } else {
            for (size_t k = 0; k < cl && st == LP_OK; k++) {
                int64_t bid = (int64_t)(unsigned char)text[i + k] + 3;
                if (bid >= t->n_vocab)
                    st = lp_fail(LP_ERR_FORMAT, "%s: byte 0x%02X needs byte token %lld, beyond the "
                                 "%lld-token vocabulary", t->path, (unsigned char)text[i + k],
                                 (long long)bid, (long long)t->n_vocab);
                else st = lp_ivec_push(&tok, (int32_t)bid);
            }
        }
        i += cl;
    }
    /* merges: a linked list over tok, a heap of candidate pairs */
    size_t n = (size_t)tok.n, nh = 0;
    int32_t *next = NULL, *prev = NULL;
    l2c_cand *heap = NULL;
    lp_tbuf buf = {0};
    if (st == LP_OK && n > 1) {
        next = malloc(n * sizeof(int32_t));
        prev = malloc(n * sizeof(int32_t));
        heap = malloc(3 * n * sizeof(l2c_cand));
        if (!next || !prev || !heap) st = lp_fail(LP_ERR_NOMEM, "%s: out of memory encoding", t->path);
    }
    if (st == LP_OK && n > 1) {
        for (size_t i = 0; i < n; i++) {
            next[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
            prev[i] = (int32_t)i - 1;
        }
        /* run.c only takes a merge whose score beats -1e10 */
#define CAND(P)                                                                     \
    do {                                                                            \
        int32_t p_ = (P);                                                           \
        if (p_ >= 0 && next[p_] >= 0) {                                             \
            int32_t m_ = pair_id(t, tok.v[p_], tok.v[next[p_]], &buf);              \
            if (m_ >= 0 && t->scores[m_] > -1e10f)                                  \
                cand_push(heap, &nh, (l2c_cand){t->scores[m_], (uint32_t)p_, m_});  \
        }                                                                           \
    } while (0)
        for (size_t i = 0; i + 1 < n; i++) CAND((int32_t)i);
        while (nh) {
            l2c_cand c = cand_pop(heap, &nh);
            int32_t p = (int32_t)c.pos;
            if (tok.v[p] < 0 || next[p] < 0) continue;
            if (pair_id(t, tok.v[p], tok.v[next[p]], &buf) != c.id) continue; /* stale */
            int32_t r = next[p];
            tok.v[p] = c.id;
            tok.v[r] = -1;
            next[p] = next[r];
            if (next[r] >= 0) prev[next[r]] = p;
            CAND(prev[p]);
            CAND(p);
        }
#undef CAND
    }
    for (size_t i = 0; i < n && st == LP_OK; i++)
        if (tok.v[i] >= 0) st = lp_ivec_push(out, tok.v[i]);
    free(next);
    free(prev);
    free(heap);
    lp_tbuf_free(&buf);
    lp_ivec_free(&tok);
    return st;
}

lp_status lp_l2c_decode(const lp_tokenizer *t, const int32_t *ids, int64_t n, lp_tbuf *out) {
    for (int64_t i = 0; i < n; i++) {
        const char *s = t->text.p + t->text_off[ids[i]];
        size_t l = t->text_len[ids[i]];
        if ((i == 0 || ids[i - 1] == 1) && l && s[0] == ' ') {
            s++;
            l--;
        }
        if (l == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') {
            int v = 0, k = 3;
            for (; k < 5; k++) {
                char c = s[k];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
                        : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d < 0) break;
                v = 16 * v + d;
            }
            if (k == 5) {
                char c = (char)v;
                LP_TRY(lp_tbuf_put(out, &c, 1));
                continue;
            }
        }
        LP_TRY(lp_tbuf_put(out, s, l));
    }
    return LP_OK;
}
