/*
 * tokenizer.c - loading tokenizer.json, added tokens, the encode pipeline.
 *
 * What: lp_tokenizer_load / _encode / _decode and the small accessors.
 * Why:  see llmpress/tokenizer.h; this file is the HF `Tokenizer` itself
 * (tokenizer/mod.rs encode_single_sequence, added_vocabulary.rs), the other
 * tokenizer_*.c files are its components.
 * Design: encode runs HF's steps in HF's order on "stages" (tokenizer_impl.h):
 *   1. split the raw text on added tokens with normalized=false
 *      (leftmost-longest, honouring single_word / lstrip / rstrip);
 *   2. normalize every remaining piece on its own (so Llama's Prepend("▁")
 *      applies after each special token too, exactly like HF), then split
 *      on added tokens with normalized=true, matched in normalized form;
 *   3. run each pre-tokenizer over every text piece;
 *   4. BPE each piece (word cache), emit added tokens' ids as they are;
 *   5. with add_special, wrap the ids as the post_processor says.
 * Decoding maps ids to strings (an added token by its content) and runs the
 * decoder chain.
 */
#include "tokenizer/tokenizer_impl.h"
#include "tokenizer/tokenizer_gguf.h"

#include "core/fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids at or above this are rejected as corrupt (no real vocabulary is near). */
#define LP_TOK_MAX_ID (1 << 26)

/* -------------------------------------------------------------- helpers */

lp_status lp_tok_set_text(lp_tokenizer *t, int32_t id, const char *s, size_t n) {
    LP_ASSERT(id >= 0 && id < t->n_vocab);
    if (t->text.n + n > UINT32_MAX - 1)
        return lp_fail(LP_ERR_FORMAT, "%s: vocabulary strings exceed 4 GiB", t->path);
    t->text_off[id] = (uint32_t)t->text.n;
    t->text_len[id] = (uint32_t)n;
    return lp_tbuf_put(&t->text, s, n);
}

static lp_status alloc_vocab(lp_tokenizer *t, int64_t n) {
    t->n_vocab = n;
    t->text_off = calloc((size_t)n + 1, sizeof(uint32_t));
    t->text_len = malloc(((size_t)n + 1) * sizeof(uint32_t));
    t->flags = calloc((size_t)n + 1, 1);
    if (!t->text_off || !t->text_len || !t->flags)
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory for %lld tokens", t->path, (long long)n);
    for (int64_t i = 0; i <= n; i++) t->text_len[i] = UINT32_MAX;
    return LP_OK;
}

void lp_tok_json_show(const lp_json *v, char *buf, size_t n) {
    if (!v) {
        snprintf(buf, n, "(missing)");
        return;
    }
    switch (v->type) {
    case LP_JSON_NUMBER:
        if (v->is_int) {
            snprintf(buf, n, "%lld", (long long)v->i64);
        } else { /* the shortest of 15 or 17 digits that reads back the same */
            snprintf(buf, n, "%.15g", v->num);
            if (strtod(buf, NULL) != v->num) snprintf(buf, n, "%.17g", v->num);
            if (!strpbrk(buf, ".eEn")) { /* integral but written with a fraction or exponent */
                size_t k = strlen(buf);
                if (k + 2 < n) memcpy(buf + k, ".0", 3);
            }
        }
        break;
    case LP_JSON_STRING: {
        size_t k = 0;
        if (n < 4) {
            if (n) buf[0] = '\0';
            break;
        }
        buf[k++] = '"';
        for (size_t i = 0; i < v->len && i < 40 && k + 2 < n; i++) {
            const unsigned char c = (unsigned char)v->str[i];
            buf[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
        }
        buf[k++] = '"';
        buf[k] = '\0';
        break;
    }
    case LP_JSON_NULL: snprintf(buf, n, "null"); break;
    case LP_JSON_BOOL: snprintf(buf, n, "%s", v->boolean ? "true" : "false"); break;
    case LP_JSON_ARRAY: snprintf(buf, n, "an array"); break;
    case LP_JSON_OBJECT: snprintf(buf, n, "an object"); break;
    }
}

static const char *jstr(const lp_json *obj, const char *key) {
    return lp_json_str(lp_json_get(obj, key), NULL);
}

/* --------------------------------------------------------- BPE model load */

/* The model's vocabulary: token string -> id (ids checked, max id found). */
static lp_status load_vocab(lp_tokenizer *t, const lp_json *model, int64_t *max_id) {
    const char *file = t->path;
    const char *type = jstr(model, "type");
    const lp_json *vocab = lp_json_get(model, "vocab"), *merges = lp_json_get(model, "merges");
    if (!type && merges) type = "BPE"; /* very old files omit the type */
    if (!type) return lp_fail(LP_ERR_FORMAT, "%s: \"model\" has no \"type\"", file);
    if (strcmp(type, "BPE"))
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "%s: model type '%s' is not supported (only BPE; WordPiece, Unigram and "
                       "WordLevel models are not implemented)",
                       file, type);
    if (!vocab || vocab->type != LP_JSON_OBJECT)
        return lp_fail(LP_ERR_FORMAT, "%s: BPE model has no \"vocab\" object", file);
    if (!merges || merges->type != LP_JSON_ARRAY)
        return lp_fail(LP_ERR_FORMAT, "%s: BPE model has no \"merges\" array", file);
    const lp_json *dropout = lp_json_get(model, "dropout");
    if (dropout && dropout->type == LP_JSON_NUMBER && dropout->num > 0.0)
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "%s: BPE dropout %g is not supported (it makes encoding random)", file,
                       dropout->num);
    *max_id = -1;
    LP_TRY(lp_smap_init(&t->bpe.vocab, (size_t)vocab->n));
    for (int64_t i = 0; i < vocab->n; i++) {
        const lp_json *v = &vocab->items[i];
        if (v->type != LP_JSON_NUMBER || !v->is_int || v->i64 < 0 || v->i64 >= LP_TOK_MAX_ID) {
            char shown[64];
            lp_tok_json_show(v, shown, sizeof shown);
            return lp_fail(LP_ERR_FORMAT, "%s: vocab entry \"%.80s\" has id %s, expected an integer "
                           "in [0, %d)", file, vocab->keys[i], shown, LP_TOK_MAX_ID);
        }
        if (v->i64 > *max_id) *max_id = v->i64;
        /* a repeated key keeps the last id, as serde's map does */
        LP_TRY(lp_smap_put(&t->bpe.vocab, vocab->keys[i], vocab->key_lens[i], (int32_t)v->i64));
    }
    return LP_OK;
}

/* The rest of the BPE model (after alloc_vocab): id -> text, options, merges. */
static lp_status load_bpe(lp_tokenizer *t, const lp_json *model) {
    const char *file = t->path;
    const lp_json *vocab = lp_json_get(model, "vocab"), *merges = lp_json_get(model, "merges");
    lp_bpe *m = &t->bpe;
    for (int64_t i = 0; i < vocab->n; i++) {
        /* skip a repeated key's earlier id; the map holds the last */
        int32_t id = (int32_t)vocab->items[i].i64;
        if (lp_smap_get(&m->vocab, vocab->keys[i], vocab->key_lens[i]) != id) continue;
        LP_TRY(lp_tok_set_text(t, id, vocab->keys[i], vocab->key_lens[i]));
    }

    const char *prefix = jstr(model, "continuing_subword_prefix");
    const char *suffix = jstr(model, "end_of_word_suffix");
    if (prefix) {
        m->prefix_len = strlen(prefix);
        m->prefix = strdup(prefix);
    }
    if (suffix) {
        m->suffix_len = strlen(suffix);
        m->suffix = strdup(suffix);
    }
    if ((prefix && !m->prefix) || (suffix && !m->suffix))
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory", file);
    m->fuse_unk = lp_json_bool(lp_json_get(model, "fuse_unk"), 0);
    m->byte_fallback = lp_json_bool(lp_json_get(model, "byte_fallback"), 0);
    m->ignore_merges = lp_json_bool(lp_json_get(model, "ignore_merges"), 0);
    const lp_json *unk = lp_json_get(model, "unk_token");
    m->unk_id = -1;
    if (unk && unk->type == LP_JSON_STRING) {
        m->unk_id = lp_smap_get(&m->vocab, unk->str, unk->len);
        if (m->unk_id < 0) m->unk_id = -2; /* an error only if ever needed, as in HF */
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        m->byte_ids[b] = lp_smap_get(&m->vocab, name, 6);
    }

    /* merges: "a b" strings or [a, b] pairs; rank = position */
    LP_TRY(lp_pmap_init(&m->merges, (size_t)merges->n));
    lp_tbuf buf = {0};
    lp_status st = LP_OK;
    uint32_t rank = 0;
    for (int64_t i = 0; i < merges->n && st == LP_OK; i++) {
        const lp_json *e = &merges->items[i];
        const char *a, *b;
        size_t al, bl;
        if (e->type == LP_JSON_STRING) {
            if (!strncmp(e->str, "#version", 8)) continue; /* merges.txt header */
            const char *sp = memchr(e->str, ' ', e->len);
            if (!sp || memchr(sp + 1, ' ', e->len - (size_t)(sp + 1 - e->str))) {
                st = lp_fail(LP_ERR_FORMAT, "%s: merges[%lld] = \"%.80s\" is not two tokens separated "
                             "by one space", file, (long long)i, e->str);
                break;
            }
            a = e->str;
            al = (size_t)(sp - e->str);
            b = sp + 1;
            bl = e->len - al - 1;
        } else if (e->type == LP_JSON_ARRAY && e->n == 2 && e->items[0].type == LP_JSON_STRING &&
                   e->items[1].type == LP_JSON_STRING) {
            a = e->items[0].str;
            al = e->items[0].len;
            b = e->items[1].str;
            bl = e->items[1].len;
        } else {
            st = lp_fail(LP_ERR_FORMAT, "%s: merges[%lld] is neither \"a b\" nor [\"a\", \"b\"]", file,
                         (long long)i);
            break;
        }
        int32_t ia = lp_smap_get(&m->vocab, a, al), ib = lp_smap_get(&m->vocab, b, bl);
        if (bl < m->prefix_len) ib = -1;
        buf.n = 0;
        if (ia >= 0 && ib >= 0) {
            st = lp_tbuf_put(&buf, a, al);
            if (st == LP_OK) st = lp_tbuf_put(&buf, b + m->prefix_len, bl - m->prefix_len);
        }
        int32_t im = ia >= 0 && ib >= 0 ? lp_smap_get(&m->vocab, buf.p, buf.n) : -1;
        if (st == LP_OK && im < 0)
            st = lp_fail(LP_ERR_FORMAT, "%s: merges[%lld] (\"%.*s\" + \"%.*s\") uses or makes a token "
                         "that is not in the vocabulary", file, (long long)i, (int)(al > 80 ? 80 : al),
                         a, (int)(bl > 80 ? 80 : bl), b);
        if (st == LP_OK) st = lp_pmap_put(&m->merges, ia, ib, rank++, im);
    }
    lp_tbuf_free(&buf);
    return st;
}

/* ------------------------------------------------------------ added tokens */

static lp_status build_index(lp_tokenizer *t, lp_added_index *ix, int normalized) {
    size_t cnt[257] = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        const lp_added *a = &t->added[i];
        size_t len = normalized ? a->norm_len : a->len;
        if (a->normalized != normalized || len == 0) continue;
        cnt[(unsigned char)(normalized ? a->norm : a->content)[0]]++;
    }
    ix->start[0] = 0;
    for (int b = 0; b < 256; b++) ix->start[b + 1] = ix->start[b] + (uint32_t)cnt[b];
    ix->any = ix->start[256] > 0;
    ix->order = malloc((ix->start[256] + 1) * sizeof(uint32_t));
    if (!ix->order) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
    uint32_t fill[256];
    memcpy(fill, ix->start, sizeof(fill));
    for (size_t i = 0; i < t->n_added; i++) {
        const lp_added *a = &t->added[i];
        size_t len = normalized ? a->norm_len : a->len;
        if (a->normalized != normalized || len == 0) continue;
        ix->order[fill[(unsigned char)(normalized ? a->norm : a->content)[0]]++] = (uint32_t)i;
    }
    /* longest first inside each bucket (insertion sort; buckets are small) */
    for (int b = 0; b < 256; b++) {
        for (uint32_t i = ix->start[b] + 1; i < ix->start[b + 1]; i++) {
            uint32_t x = ix->order[i], j = i;
            size_t lx = normalized ? t->added[x].norm_len : t->added[x].len;
            while (j > ix->start[b]) {
                uint32_t y = ix->order[j - 1];
                size_t ly = normalized ? t->added[y].norm_len : t->added[y].len;
                if (ly >= lx) break;
                ix->order[j] = y;
                j--;
            }
            ix->order[j] = x;
        }
    }
    return LP_OK;
}

/* Parse "added_tokens" and give each its id the way HF's
 * AddedVocabulary::add_tokens does (the "id" field is NOT used): a content
 * already added keeps that id (its flags are replaced), a content in the
 * model vocabulary takes that id, anything else the next id counting from
 * the model's vocabulary size. Empty contents are ignored. */
static lp_status parse_added(lp_tokenizer *t, const lp_json *added, int64_t *max_id) {
    if (!added) return LP_OK;
    t->added = calloc((size_t)added->n + 1, sizeof(lp_added));
    if (!t->added) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
    LP_TRY(lp_smap_init(&t->added_map, (size_t)added->n));
    int64_t next_id = (int64_t)t->bpe.vocab.count;
    for (int64_t i = 0; i < added->n; i++) {
        const lp_json *e = &added->items[i], *c = lp_json_get(e, "content");
        if (!c || c->type != LP_JSON_STRING)
            return lp_fail(LP_ERR_FORMAT, "%s: added_tokens[%lld] has no \"content\" string", t->path,
                           (long long)i);
        if (!lp_utf8_valid(c->str, c->len, NULL))
            return lp_fail(LP_ERR_FORMAT, "%s: added_tokens[%lld] is not valid UTF-8", t->path,
                           (long long)i);
        /* HF reads "id" as a u32 (and then assigns ids itself, below): an id
         * that is not one is a corrupt file, not a value to round */
        const lp_json *fid = lp_json_get(e, "id");
        if (fid && (fid->type != LP_JSON_NUMBER || !fid->is_int || fid->i64 < 0 || fid->i64 >= LP_TOK_MAX_ID)) {
            char shown[64];
            lp_tok_json_show(fid, shown, sizeof shown);
            return lp_fail(LP_ERR_FORMAT, "%s: added_tokens[%lld] has id %s, expected an integer in [0, %d)",
                           t->path, (long long)i, shown, LP_TOK_MAX_ID);
        }
        if (c->len == 0) continue;
        lp_added x;
        memset(&x, 0, sizeof(x));
        x.special = lp_json_bool(lp_json_get(e, "special"), 0);
        x.lstrip = lp_json_bool(lp_json_get(e, "lstrip"), 0);
        x.rstrip = lp_json_bool(lp_json_get(e, "rstrip"), 0);
        x.single_word = lp_json_bool(lp_json_get(e, "single_word"), 0);
        x.normalized = lp_json_bool(lp_json_get(e, "normalized"), !x.special);
        int32_t prev = lp_smap_get(&t->added_map, c->str, c->len);
        lp_added *a = NULL;
        if (prev >= 0) {
            for (size_t k = 0; k < t->n_added && !a; k++)
                if (t->added[k].id == prev) a = &t->added[k];
            LP_ASSERT(a);
            x.id = prev;
            x.content = a->content; /* keep the string, replace the flags */
            x.len = a->len;
            *a = x;
            continue;
        }
        int32_t vid = lp_smap_get(&t->bpe.vocab, c->str, c->len);
        x.id = vid >= 0 ? vid : (int32_t)next_id++;
        if (x.id >= LP_TOK_MAX_ID)
            return lp_fail(LP_ERR_FORMAT, "%s: too many added tokens", t->path);
        x.content = malloc(c->len + 1);
        if (!x.content) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
        memcpy(x.content, c->str, c->len + 1);
        x.len = c->len;
        x.norm = x.content;
        x.norm_len = x.len;
        t->added[t->n_added++] = x;
        LP_TRY(lp_smap_put(&t->added_map, x.content, x.len, x.id));
        if (x.id > *max_id) *max_id = x.id;
    }
    return LP_OK;
}

/* After the vocabulary exists and the normalizers are parsed: id -> text,
 * flags, the normalized forms, the match indexes. */
static lp_status finish_added(lp_tokenizer *t) {
    lp_tok_scratch sc;
    LP_TRY(lp_scratch_init(&sc));
    lp_status st = LP_OK;
    for (size_t i = 0; i < t->n_added && st == LP_OK; i++) {
        lp_added *a = &t->added[i];
        a->norm = a->content;
        a->norm_len = a->len;
        if (a->normalized && t->n_norms) {
            const char *r;
            size_t rl;
            int origin = 1;
            st = lp_norms_apply(t->norms, t->n_norms, a->content, a->len, &r, &rl, &origin, &sc);
            if (st == LP_OK && (rl != a->len || memcmp(r, a->content, rl))) {
                a->norm = malloc(rl + 1);
                if (!a->norm) {
                    a->norm = a->content;
                    st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
                    break;
                }
                memcpy(a->norm, r, rl);
                a->norm[rl] = 0;
                a->norm_len = rl;
                t->flags[a->id] |= LP_TOKF_NORMDEC;
            }
        }
        if (st == LP_OK) st = lp_tok_set_text(t, a->id, a->content, a->len);
        t->flags[a->id] |= LP_TOKF_ADDED | (a->special ? LP_TOKF_SPECIAL : 0);
        if (a->single_word && !t->word_re && st == LP_OK)
            st = lp_regex_compile("^[\\p{L}\\p{M}\\p{Nd}\\p{Pc}]", 25, 0, t->path, "single_word",
                                  &t->word_re);
    }
    lp_scratch_free(&sc);
    LP_TRY(st);
    LP_TRY(build_index(t, &t->idx_raw, 0));
    return build_index(t, &t->idx_norm, 1);
}

/* Is the character starting at s[i] (or, with before, ending at s[i]) a
 * word character (Rust regex \w)? */
static int word_char_at(const lp_tokenizer *t, const char *s, size_t n, size_t i, int before,
                        lp_tok_scratch *sc) {
    if (before) {
        if (i == 0) return 0;
        i--;
        while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    } else if (i >= n) {
        return 0;
    }
    size_t len = (size_t)lp_utf8_len((unsigned char)s[i]);
    int rc = pcre2_match(t->word_re->code, (PCRE2_SPTR)(s + i), len, 0, PCRE2_NO_UTF_CHECK, sc->md,
                         NULL);
    return rc >= 0;
}

/* HF's AddedVocabulary::find_matches + split_with_indices on one piece. */
static lp_status split_added(const lp_tokenizer *t, const lp_added_index *ix, int normalized,
                             const char *s, size_t n, int origin, lp_stage *out,
                             lp_tok_scratch *sc) {
    if (n == 0) return LP_OK;
    if (!ix->any) return lp_stage_push(out, s, n, -1, origin);
    size_t start_offset = 0, pos = 0;
    while (pos < n) {
        /* leftmost-longest match at or after pos */
        const lp_added *hit = NULL;
        size_t i = pos;
        for (; i < n && !hit; i++) {
            unsigned char b = (unsigned char)s[i];
            for (uint32_t k = ix->start[b]; k < ix->start[b + 1]; k++) {
                const lp_added *a = &t->added[ix->order[k]];
                const char *c = normalized ? a->norm : a->content;
                size_t l = normalized ? a->norm_len : a->len;
                if (l <= n - i && !memcmp(s + i, c, l)) {
                    hit = a;
                    break;
                }
            }
        }
        if (!hit) break;
        size_t start = i - 1, stop = start + (normalized ? hit->norm_len : hit->len);
        pos = stop; /* the automaton resumes after the raw match */
        if (hit->single_word) {
            int start_space = start == 0 || !word_char_at(t, s, n, start, 1, sc);
            int stop_space = stop == n || !word_char_at(t, s, n, stop, 0, sc);
            if (!start_space || !stop_space) continue;
        }
        if (hit->lstrip) {
            size_t ns = start; /* start of the whitespace run ending at start */
            while (ns > 0) {
                size_t j = ns - 1;
                while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
                size_t q = j;
                if (!lp_unicode_is_space(lp_utf8_next(s, &q))) break;
                ns = j;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (hit->rstrip) {
            while (stop < n) {
                size_t q = stop;
                if (!lp_unicode_is_space(lp_utf8_next(s, &q))) break;
                stop = q;
            }
        }
        if (start_offset < start)
            LP_TRY(lp_stage_push(out, s + start_offset, start - start_offset, -1,
                                 origin && start_offset == 0));
        LP_TRY(lp_stage_push(out, NULL, 0, hit->id, 0));
        start_offset = stop;
    }
    if (start_offset < n)
        LP_TRY(lp_stage_push(out, s + start_offset, n - start_offset, -1, origin && start_offset == 0));
    return LP_OK;
}

/* ------------------------------------------------------- post-processor */

static lp_status post_parse(lp_tokenizer *t, const lp_json *j, int depth) {
    if (!j || j->type == LP_JSON_NULL) return LP_OK;
    const char *type = jstr(j, "type");
    if (!type) return lp_fail(LP_ERR_FORMAT, "%s: post_processor has no \"type\"", t->path);
    if (depth > 16) return lp_fail(LP_ERR_FORMAT, "%s: post_processor nests too deep", t->path);
    lp_ivec pre = {0}, post = {0};
    lp_status st = LP_OK;
    if (!strcmp(type, "ByteLevel")) {
        return LP_OK; /* only adjusts offsets */
    } else if (!strcmp(type, "Sequence")) {
        const lp_json *a = lp_json_get(j, "processors");
        if (!a || a->type != LP_JSON_ARRAY)
            return lp_fail(LP_ERR_FORMAT, "%s: post_processor Sequence has no \"processors\"", t->path);
        for (int64_t i = 0; i < a->n; i++) LP_TRY(post_parse(t, &a->items[i], depth + 1));
        return LP_OK;
    } else if (!strcmp(type, "TemplateProcessing")) {
        const lp_json *single = lp_json_get(j, "single"), *sp = lp_json_get(j, "special_tokens");
        if (!single || single->type != LP_JSON_ARRAY)
            return lp_fail(LP_ERR_FORMAT, "%s: TemplateProcessing has no \"single\" template", t->path);
        int seen_seq = 0;
        for (int64_t i = 0; i < single->n && st == LP_OK; i++) {
            const lp_json *it = &single->items[i], *tok = lp_json_get(it, "SpecialToken");
            if (lp_json_get(it, "Sequence")) {
                seen_seq = 1;
                continue;
            }
            const char *name = jstr(tok, "id");
            const lp_json *ids = lp_json_get(lp_json_get(sp, name ? name : ""), "ids");
            if (!name || !ids || ids->type != LP_JSON_ARRAY) {
                st = lp_fail(LP_ERR_FORMAT, "%s: TemplateProcessing item %lld names special token '%s' "
                             "that is not in \"special_tokens\"", t->path, (long long)i,
                             name ? name : "?");
                break;
            }
            for (int64_t k = 0; k < ids->n && st == LP_OK; k++) {
                int64_t id = lp_json_int(&ids->items[k], -1);
                if (id < 0 || id >= t->n_vocab) {
                    char shown[64];
                    lp_tok_json_show(&ids->items[k], shown, sizeof shown);
                    st = lp_fail(LP_ERR_FORMAT, "%s: TemplateProcessing token '%s' has id %s, expected an "
                                 "integer in [0, %lld) (the vocabulary)", t->path, name, shown, (long long)t->n_vocab);
                } else {
                    st = lp_ivec_push(seen_seq ? &post : &pre, (int32_t)id);
                }
            }
        }
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        const lp_json *cls = lp_json_get(j, "cls"), *sep = lp_json_get(j, "sep");
        if (!cls || !sep || cls->type != LP_JSON_ARRAY || sep->type != LP_JSON_ARRAY || cls->n != 2 ||
            sep->n != 2)
            return lp_fail(LP_ERR_FORMAT, "%s: %s needs \"cls\" and \"sep\" as [token, id]", t->path,
                           type);
        int64_t c = lp_json_int(&cls->items[1], -1), s = lp_json_int(&sep->items[1], -1);
        if (c < 0 || c >= t->n_vocab || s < 0 || s >= t->n_vocab) {
            char cs[64], ss[64];
            lp_tok_json_show(&cls->items[1], cs, sizeof cs);
            lp_tok_json_show(&sep->items[1], ss, sizeof ss);
            return lp_fail(LP_ERR_FORMAT, "%s: %s cls/sep ids %s/%s, expected integers in [0, %lld) (the "
                           "vocabulary)", t->path, type, cs, ss, (long long)t->n_vocab);
        }
        st = lp_ivec_push(&pre, (int32_t)c);
        if (st == LP_OK) st = lp_ivec_push(&post, (int32_t)s);
    } else {
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "%s: post_processor type '%s' is not supported (supported: "
                       "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence)",
                       t->path, type);
    }
    /* a later processor wraps the output of the earlier ones:
     * pre = new_pre + old_pre, post = old_post + new_post */
    lp_ivec np = {0};
    if (st == LP_OK) st = lp_ivec_append(&pre, t->post_pre.v, t->post_pre.n);
    if (st == LP_OK) st = lp_ivec_append(&np, t->post_post.v, t->post_post.n);
    if (st == LP_OK) st = lp_ivec_append(&np, post.v, post.n);
    lp_ivec_free(&post);
    if (st != LP_OK) {
        lp_ivec_free(&pre);
        lp_ivec_free(&np);
        return st;
    }
    lp_ivec_free(&t->post_pre);
    lp_ivec_free(&t->post_post);
    t->post_pre = pre;
    t->post_post = np;
    return LP_OK;
}

/* ----------------------------------------------------------------- load */

/* A bos_token / eos_token entry of tokenizer_config.json: "str" or
 * {"content": "str", ...}. */
static int32_t config_token(const lp_tokenizer *t, const lp_json *cfg, const char *key) {
    const lp_json *v = lp_json_get(cfg, key);
    if (v && v->type == LP_JSON_OBJECT) v = lp_json_get(v, "content");
    if (!v || v->type != LP_JSON_STRING) return -1;
    return lp_tokenizer_token_id(t, v->str, v->len);
}

static void find_bos_eos(lp_tokenizer *t, int config) {
    t->bos = t->eos = -1;
    /* tokenizer_config.json next to the file names them */
    const char *slash = strrchr(t->path, '/');
    size_t dl = slash ? (size_t)(slash - t->path) : 0;
    char *dir = config ? malloc(dl + 2) : NULL;
    if (dir) {
        if (slash) memcpy(dir, t->path, dl);
        else dir[dl++] = '.';
        dir[dl] = 0;
        char *cfgp = lp_path_join(dir, "tokenizer_config.json");
        lp_json_doc *doc = NULL;
        if (cfgp && lp_file_exists(cfgp) && lp_json_parse_file(cfgp, &doc) == LP_OK) {
            t->bos = config_token(t, lp_json_root(doc), "bos_token");
            t->eos = config_token(t, lp_json_root(doc), "eos_token");
        }
        lp_json_free(doc);
        free(cfgp);
        free(dir);
    }
    /* otherwise: the template's leading special token, and a usual name */
    if (t->bos < 0 && t->post_pre.n > 0) t->bos = t->post_pre.v[0];
    static const char *eos_names[] = {"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>"};
    for (size_t i = 0; t->eos < 0 && i < sizeof(eos_names) / sizeof(eos_names[0]); i++) {
        int32_t id = lp_tokenizer_token_id(t, eos_names[i], strlen(eos_names[i]));
        if (id >= 0 && (t->flags[id] & LP_TOKF_SPECIAL)) t->eos = id; /* only a special token */
    }
}

static lp_status load_json(lp_tokenizer *t, const char *data, size_t size) {
    lp_json_doc *doc = NULL;
    LP_TRY(lp_json_parse(data, size, t->path, &doc));
    const lp_json *root = lp_json_root(doc);
    lp_status st = LP_OK;
    const lp_json *model = lp_json_get(root, "model"), *added = lp_json_get(root, "added_tokens");
    if (!root || root->type != LP_JSON_OBJECT || !model || model->type != LP_JSON_OBJECT)
        st = lp_fail(LP_ERR_FORMAT, "%s: not a tokenizer.json (no \"model\" object)", t->path);
    if (st == LP_OK && added && added->type != LP_JSON_ARRAY && added->type != LP_JSON_NULL)
        st = lp_fail(LP_ERR_FORMAT, "%s: \"added_tokens\" is not an array", t->path);
    if (st == LP_OK && added && added->type == LP_JSON_NULL) added = NULL;
    int64_t max_id = -1;
    if (st == LP_OK) st = load_vocab(t, model, &max_id);
    if (st == LP_OK) st = parse_added(t, added, &max_id);
    if (st == LP_OK && max_id < 0) st = lp_fail(LP_ERR_FORMAT, "%s: the vocabulary is empty", t->path);
    if (st == LP_OK) st = alloc_vocab(t, max_id + 1);
    if (st == LP_OK) st = load_bpe(t, model);
    if (st == LP_OK) st = lp_norms_parse(lp_json_get(root, "normalizer"), t->path, &t->norms, &t->n_norms);
    if (st == LP_OK)
        st = lp_pretoks_parse(lp_json_get(root, "pre_tokenizer"), t->path, &t->pretoks, &t->n_pretoks);
    if (st == LP_OK) {
        const lp_json *d = lp_json_get(root, "decoder");
        t->has_decoder = d && d->type != LP_JSON_NULL;
        st = lp_decoders_parse(d, t->path, &t->decs, &t->n_decs);
    }
    if (st == LP_OK) st = finish_added(t);
    /* without a splitting pre-tokenizer, pieces can be whole texts: prepare
     * the safe split points that keep BPE on them fast (lp_bpe_piece) */
    int splits = 0;
    for (size_t i = 0; i < t->n_pretoks; i++)
        splits |= t->pretoks[i].kind == LP_PRE_SPLIT ||
                  (t->pretoks[i].kind == LP_PRE_BYTELEVEL && t->pretoks[i].use_regex) ||
                  (t->pretoks[i].kind == LP_PRE_METASPACE && t->pretoks[i].split);
    if (st == LP_OK && !splits) st = lp_bpe_build_charpairs(&t->bpe);
    if (st == LP_OK) st = post_parse(t, lp_json_get(root, "post_processor"), 0);
    lp_json_free(doc);
    return st;
}

/* Parse data (tokenizer.json text or llama2.c bytes) into t; t->path is set. */
static lp_status load_data(lp_tokenizer *t, const char *data, size_t size, int config) {
    lp_status st;
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r')) i++;
    if (i < size && data[i] == '{') {
        t->kind = LP_TOK_HF_BPE;
        st = load_json(t, data, size);
    } else {
        t->kind = LP_TOK_LLAMA2C;
        st = lp_l2c_load(t, data, size);
    }
    if (st == LP_OK && t->kind == LP_TOK_HF_BPE) {
        t->cache = calloc(1, sizeof(lp_wcache));
        if (!t->cache) st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
        else st = lp_smap_init(&t->cache->map, 4096);
        if (st == LP_OK) find_bos_eos(t, config);
    }
    return st;
}

static lp_tokenizer *tok_new(void) {
    lp_tokenizer *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    pthread_mutex_init(&t->cache_mu, NULL);
    t->bos = t->eos = -1;
    return t;
}

/* A GGUF file: the tokenizer its tokenizer.ggml.* keys describe. */
static lp_status load_gguf(const char *path, lp_tokenizer **out) {
    lp_gguf *g = NULL;
    LP_TRY(lp_gguf_open(path, &g));
    lp_status st = lp_tokenizer_from_gguf(g, out);
    lp_gguf_close(g);
    return st;
}

lp_status lp_tokenizer_load(const char *path, lp_tokenizer **out) {
    if (!path || !out) return lp_fail(LP_ERR_ARG, "lp_tokenizer_load: NULL argument");
    *out = NULL;
    const size_t plen = strlen(path);
    if (plen > 5 && !strcmp(path + plen - 5, ".gguf") && !lp_is_dir(path)) return load_gguf(path, out);
    lp_tokenizer *t = tok_new();
    if (!t) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    lp_status st = LP_OK;
    if (lp_is_dir(path)) {
        t->path = lp_path_join(path, "tokenizer.json");
        if (t->path && !lp_file_exists(t->path)) {
            char *bin = lp_path_join(path, "tokenizer.bin");
            if (bin && lp_file_exists(bin)) {
                free(t->path);
                t->path = bin;
            } else {
                free(bin);
                st = lp_fail(LP_ERR_IO, "%s: no tokenizer.json (or llama2.c tokenizer.bin) in this "
                             "directory", path);
            }
        }
    } else {
        t->path = strdup(path);
    }
    if (st == LP_OK && !t->path) st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    char *data = NULL;
    size_t size = 0;
    if (st == LP_OK) st = lp_read_file(t->path, &data, &size);
    if (st == LP_OK) st = load_data(t, data, size, 1);
    free(data);
    if (st != LP_OK) {
        lp_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LP_OK;
}

lp_status lp_tokenizer_load_buffer(const char *data, size_t size, const char *name,
                                   lp_tokenizer **out) {
    if ((!data && size) || !out) return lp_fail(LP_ERR_ARG, "lp_tokenizer_load_buffer: NULL argument");
    *out = NULL;
    lp_tokenizer *t = tok_new();
    if (!t) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory");
    t->path = strdup(name ? name : "<tokenizer buffer>");
    lp_status st = t->path ? load_data(t, data ? data : "", size, 0)
                           : lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory");
    if (st != LP_OK) {
        lp_tokenizer_free(t);
        return st;
    }
    *out = t;
    return LP_OK;
}

void lp_tokenizer_free(lp_tokenizer *t) {
    if (!t) return;
    free(t->path);
    lp_tbuf_free(&t->text);
    free(t->text_off);
    free(t->text_len);
    free(t->flags);
    lp_bpe_free(&t->bpe);
    for (size_t i = 0; i < t->n_added; i++) {
        if (t->added[i].norm != t->added[i].content) free(t->added[i].norm);
        free(t->added[i].content);
    }
    free(t->added);
    lp_smap_free(&t->added_map);
    free(t->idx_raw.order);
    free(t->idx_norm.order);
    lp_regex_free(t->word_re);
    lp_norms_free(t->norms, t->n_norms);
    lp_pretoks_free(t->pretoks, t->n_pretoks);
    lp_decoders_free(t->decs, t->n_decs);
    lp_ivec_free(&t->post_pre);
    lp_ivec_free(&t->post_post);
    free(t->scores);
    lp_smap_free(&t->l2c_vocab);
    if (t->cache) {
        lp_smap_free(&t->cache->map);
        lp_ivec_free(&t->cache->ids);
        free(t->cache);
    }
    pthread_mutex_destroy(&t->cache_mu);
    free(t);
}

/* --------------------------------------------------------------- encode */

static lp_status encode_hf(const lp_tokenizer *t, const char *text, size_t len, int add_special,
                           lp_ivec *out, lp_tok_scratch *sc, lp_stage *a, lp_stage *b) {
    /* 1. added tokens in the raw text */
    LP_TRY(split_added(t, &t->idx_raw, 0, text, len, 1, a, sc));
    /* 2. normalize each remaining piece; added tokens in normalized form */
    if (t->n_norms || t->idx_norm.any) {
        lp_stage_reset(b);
        for (size_t i = 0; i < a->n; i++) {
            const lp_piece *p = &a->v[i];
            if (p->id >= 0) {
                LP_TRY(lp_stage_push(b, NULL, 0, p->id, 0));
                continue;
            }
            const char *s;
            size_t n;
            int origin = p->origin;
            LP_TRY(lp_norms_apply(t->norms, t->n_norms, a->buf.p + p->off, p->len, &s, &n, &origin, sc));
            LP_TRY(split_added(t, &t->idx_norm, 1, s, n, origin, b, sc));
        }
        lp_stage x = *a;
        *a = *b;
        *b = x;
    }
    /* 3. pre-tokenizers */
    for (size_t k = 0; k < t->n_pretoks; k++) {
        LP_TRY(lp_pretok_apply(&t->pretoks[k], a, b, sc));
        lp_stage x = *a;
        *a = *b;
        *b = x;
    }
    /* 4. the model, with the word cache if no other thread holds it (the
     * mutex lives in a heap object, so taking it through a const pointer is
     * fine: it is the one mutable part of a loaded tokenizer) */
    if (add_special) LP_TRY(lp_ivec_append(out, t->post_pre.v, t->post_pre.n));
    pthread_mutex_t *mu = (pthread_mutex_t *)&t->cache_mu;
    int locked = pthread_mutex_trylock(mu) == 0;
    lp_status st = LP_OK;
    for (size_t i = 0; i < a->n && st == LP_OK; i++) {
        const lp_piece *p = &a->v[i];
        if (p->id >= 0) st = lp_ivec_push(out, p->id);
        else st = lp_bpe_piece(&t->bpe, a->buf.p + p->off, p->len, sc, locked ? t->cache : NULL, out);
    }
    if (locked) pthread_mutex_unlock(mu);
    LP_TRY(st);
    /* 5. post-processor */
    if (add_special) LP_TRY(lp_ivec_append(out, t->post_post.v, t->post_post.n));
    return LP_OK;
}

lp_status lp_tokenizer_encode(const lp_tokenizer *t, const char *text, size_t len,
                              int add_special, int32_t **ids, int64_t *n) {
    if (!t || !ids || !n || (!text && len))
        return lp_fail(LP_ERR_ARG, "lp_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n = 0;
    size_t bad = 0;
    if (!lp_utf8_valid(text, len, &bad))
        return lp_fail(LP_ERR_FORMAT,
                       "invalid UTF-8 at byte offset %zu (byte 0x%02X); the tokenizer needs UTF-8 text",
                       bad, (unsigned char)text[bad]);
    lp_ivec out = {0};
    lp_status st;
    if (t->kind == LP_TOK_LLAMA2C) {
        st = lp_l2c_encode(t, text ? text : "", len, add_special, &out);
    } else {
        lp_tok_scratch sc;
        lp_stage a = {0}, b = {0};
        st = lp_scratch_init(&sc);
        if (st == LP_OK) st = encode_hf(t, text ? text : "", len, add_special, &out, &sc, &a, &b);
        lp_scratch_free(&sc);
        lp_stage_free(&a);
        lp_stage_free(&b);
    }
    if (st != LP_OK) {
        lp_ivec_free(&out);
        return st;
    }
    *ids = out.v;
    *n = out.n;
    return LP_OK;
}

/* --------------------------------------------------------------- decode */

lp_status lp_tokenizer_decode(const lp_tokenizer *t, const int32_t *ids, int64_t n, char **text,
                              size_t *len) {
    if (!t || !text || (!ids && n > 0) || n < 0)
        return lp_fail(LP_ERR_ARG, "lp_tokenizer_decode: NULL or negative argument");
    *text = NULL;
    if (len) *len = 0;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return lp_fail(LP_ERR_ARG, "%s: cannot decode id %d at position %lld: outside the "
                           "vocabulary (%lld ids)", t->path, ids[i], (long long)i, (long long)t->n_vocab);
    lp_tbuf res = {0};
    lp_status st = LP_OK;
    if (t->kind == LP_TOK_LLAMA2C) {
        st = lp_l2c_decode(t, ids, n, &res);
    } else {
        lp_tok_scratch sc;
        lp_stage a = {0}, b = {0};
        st = lp_scratch_init(&sc);
        for (int64_t i = 0; i < n && st == LP_OK; i++) {
            int32_t id = ids[i];
            if (t->text_len[id] == UINT32_MAX) continue; /* an id with no token: HF drops it */
            const char *s = t->text.p + t->text_off[id];
            size_t l = t->text_len[id];
            if (t->flags[id] & LP_TOKF_NORMDEC) {
                for (size_t k = 0; k < t->n_added; k++)
                    if (t->added[k].id == id) {
                        s = t->added[k].norm;
                        l = t->added[k].norm_len;
                        break;
                    }
            }
            if (!t->has_decoder && i > 0) st = lp_stage_push(&a, " ", 1, -1, 0); /* HF joins with " " */
            if (st == LP_OK) st = lp_stage_push(&a, s, l, -1, 0);
        }
        if (st == LP_OK) st = lp_decoders_apply(t->decs, t->n_decs, &a, &b, &sc);
        if (st == LP_OK) st = lp_tbuf_put(&res, a.buf.p ? a.buf.p : "", a.buf.n);
        lp_scratch_free(&sc);
        lp_stage_free(&a);
        lp_stage_free(&b);
    }
    if (st == LP_OK && !res.p) st = lp_tbuf_put(&res, "", 0);
    if (st != LP_OK) {
        lp_tbuf_free(&res);
        return st;
    }
    *text = res.p;
    if (len) *len = res.n;
    return LP_OK;
}

/* ------------------------------------------------------------ accessors */

const char *lp_tokenizer_token_text(const lp_tokenizer *t, int32_t id, size_t *len) {
    if (!t || id < 0 || id >= t->n_vocab || t->text_len[id] == UINT32_MAX) return NULL;
    if (len) *len = t->text_len[id];
    return t->text.p + t->text_off[id];
}

int32_t lp_tokenizer_token_id(const lp_tokenizer *t, const char *text, size_t len) {
    if (!t || !text) return -1;
    int32_t id = lp_smap_get(&t->added_map, text, len);
    if (id >= 0) return id;
    return lp_smap_get(t->kind == LP_TOK_LLAMA2C ? &t->l2c_vocab : &t->bpe.vocab, text, len);
}

int64_t lp_tokenizer_vocab_size(const lp_tokenizer *t) { return t ? t->n_vocab : 0; }
int32_t lp_tokenizer_bos(const lp_tokenizer *t) { return t ? t->bos : -1; }
int32_t lp_tokenizer_eos(const lp_tokenizer *t) { return t ? t->eos : -1; }

int lp_tokenizer_is_special(const lp_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_vocab) return 0;
    return (t->flags[id] & LP_TOKF_SPECIAL) != 0;
}
