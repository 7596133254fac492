/*
 * tokenizer_bpe.c - the BPE merge algorithm, its hash maps and word cache.
 *
 * What: turns one pre-token (a "word") into token ids the way Hugging Face
 * tokenizers' BPE model does (models/bpe/model.rs merge_word + word.rs
 * merge_all), plus the small containers the tokenizer shares.
 * Why:  parity is only exact if every corner matches: unknown characters,
 * byte fallback, fuse_unk, continuing_subword_prefix / end_of_word_suffix,
 * ignore_merges and the order in which equal-rank merges are applied.
 * Design (Sennrich et al. 2016, "Neural Machine Translation of Rare Words
 * with Subword Units"; HF's priority-queue formulation):
 *   1. split the word into characters; each becomes a symbol with the id of
 *      that character (with prefix/suffix if configured). A character not in
 *      the vocabulary becomes its <0xNN> byte tokens (byte_fallback) or the
 *      unk token (runs of unknowns fused into one when fuse_unk);
 *   2. push every adjacent pair that has a merge rule into a min-heap keyed
 *      by (rank, position): the lowest rank wins, ties go to the leftmost;
 *   3. pop; skip entries made stale by an earlier merge (the pair now at that
 *      position no longer produces the entry's token); otherwise merge the
 *      right symbol into the left one and push the two new neighbour pairs.
 * Symbols form a doubly linked list over an array, so each merge is O(log n).
 * Results are cached per word string (HF keeps the same kind of cache), which
 * makes a typical corpus mostly cache hits.
 */
#include "tokenizer/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

/* Words longer than this are not cached (HF uses the same bound), nor are
 * new words once the cache holds this many. */
#define LP_WCACHE_MAX_WORD 256
#define LP_WCACHE_MAX_ENTRIES (1 << 18)

/* ---------------------------------------------------------------- buffers */

lp_status lp_tbuf_reserve(lp_tbuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return LP_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return LP_OK;
}

lp_status lp_tbuf_put(lp_tbuf *b, const void *s, size_t n) {
    LP_TRY(lp_tbuf_reserve(b, n));
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return LP_OK;
}

void lp_tbuf_free(lp_tbuf *b) {
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static lp_status ivec_reserve(lp_ivec *a, int64_t extra) {
    if (a->n + extra <= a->cap) return LP_OK;
    int64_t cap = a->cap ? a->cap : 64;
    while (cap < a->n + extra) cap *= 2;
    int32_t *p = realloc(a->v, (size_t)cap * sizeof(int32_t));
    if (!p) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (%lld ids)", (long long)cap);
    a->v = p;
    a->cap = cap;
    return LP_OK;
}

lp_status lp_ivec_push(lp_ivec *a, int32_t x) {
    if (a->n == a->cap) LP_TRY(ivec_reserve(a, 1));
    a->v[a->n++] = x;
    return LP_OK;
}

lp_status lp_ivec_append(lp_ivec *a, const int32_t *x, int64_t n) {
    LP_TRY(ivec_reserve(a, n));
    if (n) memcpy(a->v + a->n, x, (size_t)n * sizeof(int32_t));
    a->n += n;
    return LP_OK;
}

void lp_ivec_free(lp_ivec *a) {
    free(a->v);
    memset(a, 0, sizeof(*a));
}

lp_status lp_stage_push(lp_stage *st, const char *s, size_t len, int32_t id, int origin) {
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 64;
        lp_piece *v = realloc(st->v, cap * sizeof(lp_piece));
        if (!v) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (%zu pieces)", cap);
        st->v = v;
        st->cap = cap;
    }
    lp_piece *p = &st->v[st->n];
    p->off = st->buf.n;
    p->len = id >= 0 ? 0 : len;
    p->id = id;
    p->origin = (uint8_t)(origin != 0);
    if (id < 0) LP_TRY(lp_tbuf_put(&st->buf, s, len));
    st->n++;
    return LP_OK;
}

void lp_stage_reset(lp_stage *st) {
    st->n = 0;
    st->buf.n = 0;
}

void lp_stage_free(lp_stage *st) {
    lp_tbuf_free(&st->buf);
    free(st->v);
    memset(st, 0, sizeof(*st));
}

/* ---------------------------------------------------------- string map */

static uint64_t hash_bytes(const char *k, size_t n) {
    /* FNV-1a with a final avalanche; tokens are short, so this is cheap. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 31;
    h *= 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    return h | 1; /* 0 marks an empty slot */
}

lp_status lp_smap_init(lp_smap *m, size_t expect) {
    memset(m, 0, sizeof(*m));
    size_t cap = 16;
    while (cap < 2 * expect) cap *= 2;
    m->slots = calloc(cap, sizeof(lp_smap_slot));
    if (!m->slots) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (map of %zu)", cap);
    m->mask = cap - 1;
    return LP_OK;
}

void lp_smap_free(lp_smap *m) {
    free(m->slots);
    lp_tbuf_free(&m->keys);
    memset(m, 0, sizeof(*m));
}

static lp_smap_slot *smap_find(const lp_smap *m, const char *k, size_t n, uint64_t h) {
    size_t i = (size_t)h & m->mask;
    for (;;) {
        lp_smap_slot *s = &m->slots[i];
        if (!s->hash) return s;
        if (s->hash == h && s->len == n && !memcmp(m->keys.p + s->off, k, n)) return s;
        i = (i + 1) & m->mask;
    }
}

int32_t lp_smap_get(const lp_smap *m, const char *k, size_t n) {
    if (!m->slots) return -1;
    lp_smap_slot *s = smap_find(m, k, n, hash_bytes(k, n));
    return s->hash ? s->val : -1;
}

static lp_status smap_grow(lp_smap *m) {
    size_t cap = 2 * (m->mask + 1);
    lp_smap_slot *slots = calloc(cap, sizeof(lp_smap_slot));
    if (!slots) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (map of %zu)", cap);
    for (size_t i = 0; i <= m->mask; i++) {
        lp_smap_slot *s = &m->slots[i];
        if (!s->hash) continue;
        size_t j = (size_t)s->hash & (cap - 1);
        while (slots[j].hash) j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->mask = cap - 1;
    return LP_OK;
}

lp_status lp_smap_put(lp_smap *m, const char *k, size_t n, int32_t val) {
    if (n > UINT32_MAX || m->keys.n + n > UINT32_MAX)
        return lp_fail(LP_ERR_FORMAT, "tokenizer: vocabulary strings exceed 4 GiB");
    if (2 * (m->count + 1) > m->mask + 1) LP_TRY(smap_grow(m));
    uint64_t h = hash_bytes(k, n);
    lp_smap_slot *s = smap_find(m, k, n, h);
    if (s->hash) {
        s->val = val;
        return LP_OK;
    }
    uint32_t off = (uint32_t)m->keys.n;
    LP_TRY(lp_tbuf_put(&m->keys, k, n));
    s->hash = h;
    s->off = off;
    s->len = (uint32_t)n;
    s->val = val;
    m->count++;
    return LP_OK;
}

/* ------------------------------------------------------------ pair map */

static size_t pair_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xFF51AFD7ED558CCDull;
    key ^= key >> 33;
    return (size_t)key;
}

lp_status lp_pmap_init(lp_pmap *m, size_t expect) {
    memset(m, 0, sizeof(*m));
    size_t cap = 16;
    while (cap < 2 * expect) cap *= 2;
    m->slots = malloc(cap * sizeof(lp_pmap_slot));
    if (!m->slots) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (merge map of %zu)", cap);
    for (size_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->mask = cap - 1;
    return LP_OK;
}

void lp_pmap_free(lp_pmap *m) {
    free(m->slots);
    memset(m, 0, sizeof(*m));
}

const lp_pmap_slot *lp_pmap_get(const lp_pmap *m, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = pair_hash(key) & m->mask;
    for (;;) {
        const lp_pmap_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        i = (i + 1) & m->mask;
    }
}

lp_status lp_pmap_put(lp_pmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id) {
    if (2 * (m->count + 1) > m->mask + 1) {
        lp_pmap old = *m;
        LP_TRY(lp_pmap_init(m, 2 * (old.mask + 1)));
        for (size_t i = 0; i <= old.mask; i++) {
            if (old.slots[i].key == UINT64_MAX) continue;
            size_t j = pair_hash(old.slots[i].key) & m->mask;
            while (m->slots[j].key != UINT64_MAX) j = (j + 1) & m->mask;
            m->slots[j] = old.slots[i];
            m->count++;
        }
        lp_pmap_free(&old);
    }
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = pair_hash(key) & m->mask;
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != key) i = (i + 1) & m->mask;
    if (m->slots[i].key == UINT64_MAX) m->count++;
    /* a repeated pair keeps the later rank, as HF's HashMap collect does */
    m->slots[i].key = key;
    m->slots[i].rank = rank;
    m->slots[i].id = id;
    return LP_OK;
}

/* ------------------------------------------------------------- scratch */

lp_status lp_scratch_init(lp_tok_scratch *sc) {
    memset(sc, 0, sizeof(*sc));
    sc->md = pcre2_match_data_create(1, NULL);
    if (!sc->md) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (regex match data)");
    return LP_OK;
}

void lp_scratch_free(lp_tok_scratch *sc) {
    pcre2_match_data_free(sc->md);
    pcre2_match_context_free(sc->mctx);
    pcre2_jit_stack_free(sc->jit);
    free(sc->spans);
    free(sc->segs);
    lp_tbuf_free(&sc->t1);
    lp_tbuf_free(&sc->t2);
    lp_tbuf_free(&sc->t3);
    free(sc->cps);
    free(sc->syms);
    free(sc->heap);
    memset(sc, 0, sizeof(*sc));
}

/* ------------------------------------------------------------- the heap */

static int merge_less(const lp_bpe_merge *a, const lp_bpe_merge *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(lp_bpe_merge *h, size_t *n, lp_bpe_merge x) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(&x, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = x;
}

static lp_bpe_merge heap_pop(lp_bpe_merge *h, size_t *n) {
    lp_bpe_merge top = h[0], x = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && merge_less(&h[c + 1], &h[c])) c++;
        if (!merge_less(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = x;
    return top;
}

/* ------------------------------------------------------------- BPE */

static void merge_all(const lp_bpe *m, lp_bpe_sym *sym, size_t ns, lp_bpe_merge *heap) {
    size_t nh = 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        const lp_pmap_slot *p = lp_pmap_get(&m->merges, sym[i].id, sym[i + 1].id);
        if (p) heap_push(heap, &nh, (lp_bpe_merge){p->rank, (uint32_t)i, p->id});
    }
    while (nh) {
        lp_bpe_merge top = heap_pop(heap, &nh);
        lp_bpe_sym *s = &sym[top.pos];
        if (s->len == 0 || s->next < 0) continue;
        lp_bpe_sym *r = &sym[s->next];
        /* stale entry: the pair here changed since it was queued. HF compares
         * the produced token, not the rank, and so do we. */
        const lp_pmap_slot *p = lp_pmap_get(&m->merges, s->id, r->id);
        if (!p || p->id != top.new_id) continue;
        s->id = top.new_id;
        s->len += r->len;
        s->next = r->next;
        r->len = 0;
        if (s->next >= 0) sym[s->next].prev = (int32_t)top.pos;
        if (s->prev >= 0) {
            p = lp_pmap_get(&m->merges, sym[s->prev].id, s->id);
            if (p) heap_push(heap, &nh, (lp_bpe_merge){p->rank, (uint32_t)s->prev, p->id});
        }
        if (s->next >= 0) {
            p = lp_pmap_get(&m->merges, s->id, sym[s->next].id);
            if (p) heap_push(heap, &nh, (lp_bpe_merge){p->rank, top.pos, p->id});
        }
    }
}

static void add_sym(lp_bpe_sym *sym, size_t *ns, int32_t id, size_t len) {
    size_t i = (*ns)++;
    sym[i].id = id;
    sym[i].len = (uint32_t)len;
    sym[i].prev = (int32_t)i - 1;
    sym[i].next = -1;
    if (i > 0) sym[i - 1].next = (int32_t)i;
}

lp_status lp_bpe_word(const lp_bpe *m, const char *w, size_t n, lp_tok_scratch *sc,
                      lp_wcache *cache, lp_ivec *out) {
    if (n == 0) return LP_OK;
    if (m->ignore_merges) {
        int32_t id = lp_smap_get(&m->vocab, w, n);
        if (id >= 0) return lp_ivec_push(out, id);
    }
    if (cache) {
        int32_t off = lp_smap_get(&cache->map, w, n);
        if (off >= 0) return lp_ivec_append(out, cache->ids.v + off + 1, cache->ids.v[off]);
    }
    if (n > INT32_MAX / 4)
        return lp_fail(LP_ERR_ARG, "tokenizer: a single pre-token of %zu bytes is too long", n);

    /* 1. characters -> symbols (at most one symbol per byte, plus prefix and
     * suffix bytes when byte fallback spells them out) */
    size_t need = n * (1 + m->prefix_len + m->suffix_len) + 1;
    if (sc->capsyms < need) {
        lp_bpe_sym *p = realloc(sc->syms, need * sizeof(lp_bpe_sym));
        if (!p) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (word of %zu bytes)", n);
        sc->syms = p;
        sc->capsyms = need;
    }
    if (sc->capheap < 3 * need) {
        lp_bpe_merge *p = realloc(sc->heap, 3 * need * sizeof(lp_bpe_merge));
        if (!p) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (word of %zu bytes)", n);
        sc->heap = p;
        sc->capheap = 3 * need;
    }
    lp_bpe_sym *sym = sc->syms;
    size_t ns = 0;
    int32_t unk_id = -1; /* pending unk symbol */
    size_t unk_len = 0;
    for (size_t i = 0; i < n;) {
        size_t cl = (size_t)lp_utf8_len((unsigned char)w[i]);
        if (i + cl > n) cl = n - i;
        const char *s = w + i;
        size_t sl = cl;
        int decorate = (m->prefix && i > 0) || (m->suffix && i + cl == n);
        if (decorate) {
            sc->t3.n = 0;
            if (m->prefix && i > 0) LP_TRY(lp_tbuf_put(&sc->t3, m->prefix, m->prefix_len));
            LP_TRY(lp_tbuf_put(&sc->t3, s, cl));
            if (m->suffix && i + cl == n) LP_TRY(lp_tbuf_put(&sc->t3, m->suffix, m->suffix_len));
            s = sc->t3.p;
            sl = sc->t3.n;
        }
        int32_t id = lp_smap_get(&m->vocab, s, sl);
        if (id >= 0) {
            if (unk_id >= 0) add_sym(sym, &ns, unk_id, unk_len);
            unk_id = -1;
            add_sym(sym, &ns, id, cl);
            i += cl;
            continue;
        }
        if (m->byte_fallback) {
            size_t k = 0;
            while (k < sl && m->byte_ids[(unsigned char)s[k]] >= 0) k++;
            if (k == sl) {
                /* HF adds the bytes before flushing a pending unk; keep that */
                for (k = 0; k < sl; k++) add_sym(sym, &ns, m->byte_ids[(unsigned char)s[k]], 1);
                i += cl;
                continue;
            }
        }
        if (m->unk_id >= 0) {
            if (unk_id >= 0 && m->fuse_unk) {
                unk_len += cl;
            } else {
                if (unk_id >= 0) add_sym(sym, &ns, unk_id, unk_len);
                unk_id = m->unk_id;
                unk_len = cl;
            }
        } else if (m->unk_id == -2) {
            return lp_fail(LP_ERR_FORMAT,
                           "tokenizer: the BPE model's unk_token is not in its vocabulary "
                           "(needed for a character it cannot encode)");
        }
        /* no unk token: the character is dropped, as in HF */
        i += cl;
    }
    if (unk_id >= 0) add_sym(sym, &ns, unk_id, unk_len);

    /* 2-3. merges */
    merge_all(m, sym, ns, sc->heap);

    int64_t start = out->n;
    for (size_t i = 0; i < ns; i++)
        if (sym[i].len) LP_TRY(lp_ivec_push(out, sym[i].id));

    if (cache && n < LP_WCACHE_MAX_WORD && cache->map.count < LP_WCACHE_MAX_ENTRIES &&
        cache->ids.n + (out->n - start) + 1 < INT32_MAX) {
        int32_t off = (int32_t)cache->ids.n;
        LP_TRY(lp_ivec_push(&cache->ids, (int32_t)(out->n - start)));
        if (out->n > start) LP_TRY(lp_ivec_append(&cache->ids, out->v + start, out->n - start));
        LP_TRY(lp_smap_put(&cache->map, w, n, off));
    }
    return LP_OK;
}

/* ------------------------------------------------- long pieces, split */

/* Why this is exact: a merge joins two adjacent symbols into a vocabulary
 * token whose string is their concatenation, so a token covering the
 * boundary between characters c1 and c2 contains c1c2 as a substring. If no
 * vocabulary token contains c1c2 (and both are plain one-character symbols,
 * not byte-fallback or unk), nothing ever merges across that boundary: the
 * two sides are merged independently, in the same relative order, as the
 * heap would have done on the whole. Llama-style tokenizers without a
 * pre-tokenizer thus become word-sized pieces that hit the word cache. */
lp_status lp_bpe_build_charpairs(lp_bpe *m) {
    if (m->prefix || m->suffix || m->ignore_merges) return LP_OK; /* decorated symbols: skip */
    LP_TRY(lp_pmap_init(&m->charpairs, m->vocab.count * 2));
    for (size_t i = 0; i <= m->vocab.mask; i++) {
        const lp_smap_slot *s = &m->vocab.slots[i];
        if (!s->hash) continue;
        const char *k = m->vocab.keys.p + s->off;
        if (!lp_utf8_valid(k, s->len, NULL)) continue;
        size_t j = 0;
        uint32_t prev = 0;
        for (int first = 1; j < s->len; first = 0) {
            uint32_t c = lp_utf8_next(k, &j);
            if (!first && !lp_pmap_get(&m->charpairs, (int32_t)prev, (int32_t)c))
                LP_TRY(lp_pmap_put(&m->charpairs, (int32_t)prev, (int32_t)c, 0, 0));
            prev = c;
        }
        if (s->len == 1 && (unsigned char)k[0] < 128) m->ascii_tok[(unsigned char)k[0]] = 1;
    }
    m->has_charpairs = 1;
    return LP_OK;
}

/* Is the character s[0..len) a vocabulary token on its own? */
static int char_is_token(const lp_bpe *m, const char *s, size_t len) {
    if (len == 1 && (unsigned char)s[0] < 128) return m->ascii_tok[(unsigned char)s[0]];
    return lp_smap_get(&m->vocab, s, len) >= 0;
}

lp_status lp_bpe_piece(const lp_bpe *m, const char *w, size_t n, lp_tok_scratch *sc,
                       lp_wcache *cache, lp_ivec *out) {
    if (!m->has_charpairs || n < 64) return lp_bpe_word(m, w, n, sc, cache, out);
    size_t start = 0, i = 0;
    uint32_t prev = 0;
    int prev_tok = 0;
    while (i < n) {
        size_t at = i, cl = (size_t)lp_utf8_len((unsigned char)w[i]);
        uint32_t c = lp_utf8_next(w, &i); /* pieces are valid UTF-8 */
        int tok = char_is_token(m, w + at, cl);
        if (at > start && prev_tok && tok && !lp_pmap_get(&m->charpairs, (int32_t)prev, (int32_t)c)) {
            LP_TRY(lp_bpe_word(m, w + start, at - start, sc, cache, out));
            start = at;
        }
        prev = c;
        prev_tok = tok;
    }
    return lp_bpe_word(m, w + start, n - start, sc, cache, out);
}

void lp_bpe_free(lp_bpe *m) {
    lp_smap_free(&m->vocab);
    lp_pmap_free(&m->merges);
    lp_pmap_free(&m->charpairs);
    free(m->prefix);
    free(m->suffix);
    memset(m, 0, sizeof(*m));
}
