/*
 * tokenizer_gguf.c - a tokenizer to and from GGUF's tokenizer.ggml.* keys.
 *
 * What: lp_tokenizer_gguf_write puts a loaded tokenizer into a GGUF file as
 *   llama.cpp reads it; lp_tokenizer_load_gguf builds our tokenizer from a
 *   GGUF file's keys, tokenizing as llama.cpp does on that file.
 * Why: a GGUF file carries its tokenizer; llama.cpp and llmpress must split
 *   the same text into the same ids for their log-probabilities to compare.
 * Design: two families, as llama.cpp knows them:
 *   "llama" (SentencePiece BPE with byte fallback: Llama 2, Mistral,
 *     llama2.c): tokens, scores, token types. llama.cpp merges the adjacent
 *     pair whose concatenation is a token of the highest score. A
 *     tokenizer.json holds ranked merges instead of scores, so a merged
 *     token's score is minus the rank of the first merge making it (every
 *     pair becomes a token at the same priority in both); llama2.c's
 *     tokenizer.bin has real scores. Back from GGUF, every split of a token
 *     into two tokens becomes a merge ranked by the token's score.
 *   "gpt2" (byte-level BPE: Llama 3, Qwen2, GPT-2, SmolLM): tokens, token
 *     types, merges "a b", and `pre`, llama.cpp's name for the
 *     pre-tokenizer: our tokenizer.json's pre-tokenizer is matched against
 *     the patterns of the names we know (llama-bpe, qwen2, gpt-2, smollm);
 *     anything else is refused rather than written under a wrong name.
 *   Import writes the equivalent tokenizer.json in memory and loads it with
 *   the usual loader, so one tokenizer implementation serves both.
 */
#include "tokenizer/tokenizer_gguf.h"
#include "tokenizer/tokenizer_impl.h"

#include "io/gguf.h"
#include "io/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's token types (llama_token_type). */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* ---- the pre-tokenizer's name ---- */

#define RE_LLAMA3                                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"      \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                                    \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"           \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* The pre-tokenizers of a tokenizer.json as a short signature:
 * "S:<regex>" for a Split, "B1"/"B0" for ByteLevel with/without its regex,
 * "D1" for Digits(individual), joined by '|'. */
static void pre_signature(const lp_json *p, lp_tbuf *sig) {
    if (!p || p->type != LP_JSON_OBJECT) return;
    const char *type = lp_json_str(lp_json_get(p, "type"), "");
    if (!strcmp(type, "Sequence")) {
        const lp_json *v = lp_json_get(p, "pretokenizers");
        for (int64_t i = 0; v && v->type == LP_JSON_ARRAY && i < v->n; i++) pre_signature(&v->items[i], sig);
        return;
    }
    if (sig->n) lp_tbuf_put(sig, "|", 1);
    if (!strcmp(type, "Split")) {
        const char *re = lp_json_str(lp_json_get(lp_json_get(p, "pattern"), "Regex"), "?");
        lp_tbuf_put(sig, "S:", 2);
        lp_tbuf_put(sig, re, strlen(re));
    } else if (!strcmp(type, "ByteLevel")) {
        lp_tbuf_put(sig, lp_json_bool(lp_json_get(p, "use_regex"), true) ? "B1" : "B0", 2);
    } else if (!strcmp(type, "Digits")) {
        lp_tbuf_put(sig, lp_json_bool(lp_json_get(p, "individual_digits"), false) ? "D1" : "D0", 2);
    } else {
        lp_tbuf_put(sig, type, strlen(type));
    }
}

static const struct {
    const char *sig, *pre;
} PRE_NAMES[] = {
    {"S:" RE_LLAMA3 "|B0", "llama-bpe"},
    {"S:" RE_QWEN2 "|B0", "qwen2"},
    {"B1", "gpt-2"},
    {"D1|B1", "smollm"},
};

/* ---- writing ---- */

static int is_byte_token(const char *s, size_t n) {
    return n == 6 && s[0] == '<' && s[1] == '0' && s[2] == 'x' && s[5] == '>';
}

typedef struct {
    uint32_t rank;
    int32_t a, b, id;
} merge_row;

static int by_rank(const void *x, const void *y) {
    const merge_row *p = x, *q = y;
    return p->rank < q->rank ? -1 : p->rank > q->rank;
}

/* The merges in rank order (malloc'd; *n of them). */
static lp_status sorted_merges(const lp_tokenizer *t, merge_row **out, size_t *n) {
    const lp_pmap *m = &t->bpe.merges;
    merge_row *v = malloc((m->count ? m->count : 1) * sizeof *v);
    if (!v) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
    size_t k = 0;
    for (size_t i = 0; m->slots && i <= m->mask; i++) {
        const lp_pmap_slot *s = &m->slots[i];
        if (s->key == UINT64_MAX) continue;
        v[k++] = (merge_row){.rank = s->rank, .a = (int32_t)(s->key >> 32), .b = (int32_t)(uint32_t)s->key,
                             .id = s->id};
    }
    qsort(v, k, sizeof *v, by_rank);
    *out = v;
    *n = k;
    return LP_OK;
}

/* Does the tokenizer.json family look like SentencePiece (llama) or byte-level (gpt2)? */
static int byte_level(const lp_tokenizer *t) {
    for (size_t i = 0; i < t->n_pretoks; i++)
        if (t->pretoks[i].kind == LP_PRE_BYTELEVEL) return 1;
    for (size_t i = 0; i < t->n_norms; i++)
        if (t->norms[i].kind == LP_NORM_BYTELEVEL) return 1;
    return 0;
}

/* A dummy prefix: a Prepend("▁") normalizer or a Metaspace that prepends. */
static int space_prefix(const lp_tokenizer *t) {
    for (size_t i = 0; i < t->n_norms; i++)
        if (t->norms[i].kind == LP_NORM_PREPEND) return 1;
    for (size_t i = 0; i < t->n_pretoks; i++)
        if (t->pretoks[i].kind == LP_PRE_METASPACE && t->pretoks[i].scheme != LP_PREPEND_NEVER) return 1;
    return 0;
}

/* Whether id i has a token (ids past the tokenizer's, up to the model's rows, do not). */
static int has(const lp_tokenizer *t, int64_t i) { return i < t->n_vocab && t->text_len[i] != UINT32_MAX; }

static lp_status write_common(const lp_tokenizer *t, lp_gguf_writer *w, int64_t n, const int32_t *types,
                              const float *scores) {
    const char **s = malloc((size_t)n * sizeof *s);
    size_t *len = malloc((size_t)n * sizeof *len);
    lp_status st = s && len ? LP_OK : lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
    for (int64_t i = 0; st == LP_OK && i < n; i++) {
        if (!has(t, i)) { /* a gap in the ids, or past them: llama.cpp needs every id */
            s[i] = NULL;
            len[i] = 0;
        } else {
            s[i] = t->text.p + t->text_off[i];
            len[i] = t->text_len[i];
        }
    }
    /* llama2.c's tokenizer.bin writes SentencePiece's "▁" as a space and its
     * BOS / EOS as "\n<s>\n" / "\n</s>\n": back to what llama.cpp expects */
    char **l2c = NULL;
    if (st == LP_OK && t->kind == LP_TOK_LLAMA2C) {
        l2c = calloc((size_t)n, sizeof *l2c);
        if (!l2c) st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
        for (int64_t i = 0; st == LP_OK && i < n; i++) {
            if (!s[i]) continue;
            const char *src = s[i];
            size_t sl = len[i];
            if ((i == 1 || i == 2) && sl > 2 && src[0] == '\n' && src[sl - 1] == '\n') src++, sl -= 2;
            char *d = malloc(sl * 3 + 1);
            if (!d) {
                st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
                break;
            }
            size_t k = 0;
            for (size_t j = 0; j < sl; j++) {
                if (src[j] == ' ') memcpy(d + k, "\xe2\x96\x81", 3), k += 3;
                else d[k++] = src[j];
            }
            l2c[i] = d;
            s[i] = d;
            len[i] = k;
        }
    }
    /* gaps get a unique placeholder each, as llama.cpp's converter does */
    char *gaps = NULL;
    if (st == LP_OK) {
        int64_t ngap = 0;
        for (int64_t i = 0; i < n; i++) ngap += s[i] == NULL;
        gaps = ngap ? malloc((size_t)ngap * 32) : NULL;
        if (ngap && !gaps) st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
        for (int64_t i = 0, k = 0; st == LP_OK && i < n; i++)
            if (!s[i]) {
                int m = snprintf(gaps + k * 32, 32, "[PAD%lld]", (long long)i);
                s[i] = gaps + k * 32;
                len[i] = (size_t)m;
                k++;
            }
    }
    if (st == LP_OK) st = lp_gguf_set_arr_str(w, "tokenizer.ggml.tokens", s, len, (uint64_t)n);
    if (st == LP_OK && scores) st = lp_gguf_set_arr_f32(w, "tokenizer.ggml.scores", scores, (uint64_t)n);
    if (st == LP_OK) st = lp_gguf_set_arr_i32(w, "tokenizer.ggml.token_type", types, (uint64_t)n);
    if (st == LP_OK && t->bos >= 0) st = lp_gguf_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    if (st == LP_OK && t->eos >= 0) st = lp_gguf_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
    if (st == LP_OK && t->bpe.unk_id >= 0)
        st = lp_gguf_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)t->bpe.unk_id);
    int add_bos = t->kind == LP_TOK_LLAMA2C || (t->post_pre.n > 0 && t->post_pre.v[0] == t->bos && t->bos >= 0);
    int add_eos = t->post_post.n > 0 && t->post_post.v[t->post_post.n - 1] == t->eos && t->eos >= 0;
    if (st == LP_OK) st = lp_gguf_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
    if (st == LP_OK) st = lp_gguf_set_bool(w, "tokenizer.ggml.add_eos_token", add_eos);
    for (int64_t i = 0; l2c && i < n; i++) free(l2c[i]);
    free(l2c);
    free(gaps);
    free(s);
    free(len);
    return st;
}

static lp_status write_llama(const lp_tokenizer *t, lp_gguf_writer *w, int64_t n) {
    float *scores = calloc((size_t)n, sizeof *scores);
    int32_t *types = malloc((size_t)n * sizeof *types);
    merge_row *mr = NULL;
    size_t nm = 0;
    lp_status st = scores && types ? LP_OK : lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
    if (st == LP_OK && t->kind == LP_TOK_HF_BPE) st = sorted_merges(t, &mr, &nm);
    if (st == LP_OK) {
        if (t->kind == LP_TOK_LLAMA2C) {
            memcpy(scores, t->scores, (size_t)t->n_vocab * sizeof *scores);
        } else {
            /* a merged token's priority: minus the rank of its first merge */
            for (int64_t i = 0; i < n; i++) scores[i] = 0.0f;
            uint8_t *seen = calloc((size_t)n, 1);
            if (!seen) st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
            for (size_t k = 0; seen && k < nm; k++)
                if (mr[k].id >= 0 && mr[k].id < n && !seen[mr[k].id]) {
                    seen[mr[k].id] = 1;
                    scores[mr[k].id] = -(float)(k + 1);
                }
            free(seen);
        }
        for (int64_t i = 0; i < n; i++) {
            types[i] = TT_NORMAL;
            if (!has(t, i)) {
                types[i] = TT_UNUSED;
                continue;
            }
            const char *s = t->text.p + t->text_off[i];
            size_t len = t->text_len[i];
            if (i == t->bpe.unk_id || (t->kind == LP_TOK_LLAMA2C && i == 0)) types[i] = TT_UNKNOWN;
            else if (t->flags[i] & LP_TOKF_SPECIAL) types[i] = TT_CONTROL;
            else if (t->kind == LP_TOK_LLAMA2C && (i == 1 || i == 2)) types[i] = TT_CONTROL;
            else if (t->flags[i] & LP_TOKF_ADDED) types[i] = TT_USER;
            else if (is_byte_token(s, len)) types[i] = TT_BYTE;
        }
    }
    if (st == LP_OK) st = lp_gguf_set_str(w, "tokenizer.ggml.model", "llama");
    if (st == LP_OK) st = lp_gguf_set_str(w, "tokenizer.ggml.pre", "default");
    if (st == LP_OK) st = write_common(t, w, n, types, scores);
    if (st == LP_OK)
        st = lp_gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", t->kind == LP_TOK_LLAMA2C || space_prefix(t));
    free(mr);
    free(scores);
    free(types);
    return st;
}

static lp_status write_gpt2(const lp_tokenizer *t, lp_gguf_writer *w, int64_t n) {
    /* the pre-tokenizer's name, from the file's own description */
    lp_json_doc *doc = NULL;
    LP_TRY(lp_json_parse_file(t->path, &doc));
    lp_tbuf sig = {0};
    pre_signature(lp_json_get(lp_json_root(doc), "pre_tokenizer"), &sig);
    lp_json_free(doc);
    const char *pre = NULL;
    for (size_t i = 0; i < sizeof PRE_NAMES / sizeof *PRE_NAMES; i++)
        if (sig.p && strlen(PRE_NAMES[i].sig) == sig.n && !memcmp(PRE_NAMES[i].sig, sig.p, sig.n)) pre = PRE_NAMES[i].pre;
    if (!pre) {
        lp_status e = lp_fail(LP_ERR_UNSUPPORTED, "%s: llama.cpp has no pre-tokenizer name for this one (%.*s%s); "
                              "known: Llama 3 (llama-bpe), Qwen2 (qwen2), GPT-2 (gpt-2), SmolLM (smollm)", t->path,
                              (int)(sig.n > 120 ? 120 : sig.n), sig.p ? sig.p : "none", sig.n > 120 ? "..." : "");
        lp_tbuf_free(&sig);
        return e;
    }
    lp_tbuf_free(&sig);
    int32_t *types = malloc((size_t)n * sizeof *types);
    merge_row *mr = NULL;
    size_t nm = 0;
    lp_status st = types ? LP_OK : lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
    if (st == LP_OK) st = sorted_merges(t, &mr, &nm);
    for (int64_t i = 0; st == LP_OK && i < n; i++)
        types[i] = !has(t, i)                               ? TT_UNUSED
                   : (t->flags[i] & LP_TOKF_SPECIAL) ? TT_CONTROL
                   : (t->flags[i] & LP_TOKF_ADDED)   ? TT_USER
                                                     : TT_NORMAL;
    /* merges as "left right" */
    char **ms = st == LP_OK ? malloc((nm ? nm : 1) * sizeof *ms) : NULL;
    size_t *ml = st == LP_OK ? malloc((nm ? nm : 1) * sizeof *ml) : NULL;
    if (st == LP_OK && (!ms || !ml)) st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
    size_t made = 0;
    for (; st == LP_OK && made < nm; made++) {
        const merge_row *r = &mr[made];
        size_t la = t->text_len[r->a], lb = t->text_len[r->b];
        ms[made] = malloc(la + lb + 2);
        if (!ms[made]) {
            st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", t->path);
            break;
        }
        memcpy(ms[made], t->text.p + t->text_off[r->a], la);
        ms[made][la] = ' ';
        memcpy(ms[made] + la + 1, t->text.p + t->text_off[r->b], lb);
        ml[made] = la + lb + 1;
    }
    if (st == LP_OK) st = lp_gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (st == LP_OK) st = lp_gguf_set_str(w, "tokenizer.ggml.pre", pre);
    if (st == LP_OK) st = write_common(t, w, n, types, NULL);
    if (st == LP_OK)
        st = lp_gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)ms, ml, (uint64_t)nm);
    for (size_t i = 0; ms && i < made; i++) free(ms[i]);
    free(ms);
    free(ml);
    free(mr);
    free(types);
    return st;
}

lp_status lp_tokenizer_gguf_write(const lp_tokenizer *t, int64_t n_vocab, lp_gguf_writer *w) {
    if (n_vocab < t->n_vocab)
        return lp_fail(LP_ERR_ARG, "%s: the tokenizer has %lld ids, the model's embedding only %lld rows", t->path,
                       (long long)t->n_vocab, (long long)n_vocab);
    if (t->kind == LP_TOK_LLAMA2C) return write_llama(t, w, n_vocab);
    if (byte_level(t)) return write_gpt2(t, w, n_vocab);
    if (!t->bpe.byte_fallback)
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: a BPE tokenizer that is neither byte-level nor SentencePiece-style "
                       "with byte fallback: llama.cpp has no family for it", t->path);
    return write_llama(t, w, n_vocab);
}

/* ---- reading: a tokenizer.json in memory ---- */

static void put_str(lp_tbuf *b, const char *s, size_t n) {
    lp_tbuf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            lp_tbuf_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            lp_tbuf_put(b, esc, 6);
        } else {
            lp_tbuf_put(b, (const char *)&s[i], 1);
        }
    }
    lp_tbuf_put(b, "\"", 1);
}

static void put(lp_tbuf *b, const char *s) { lp_tbuf_put(b, s, strlen(s)); }

typedef struct {
    const lp_gguf *g;
    const char *path;
    uint64_t n;
    lp_gguf_str *tok;
    int32_t *type;
    float *score;
} gvocab;

static lp_status read_vocab(const lp_gguf *g, gvocab *v) {
    lp_gguf_vtype et;
    LP_TRY(lp_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &v->n));
    if (et != LP_GGUF_STRING || v->n == 0 || v->n > (1u << 24))
        return lp_fail(LP_ERR_FORMAT, "%s: tokenizer.ggml.tokens is not a list of 1 .. 2^24 strings", v->path);
    v->tok = malloc(v->n * sizeof *v->tok);
    v->type = malloc(v->n * sizeof *v->type);
    v->score = malloc(v->n * sizeof *v->score);
    if (!v->tok || !v->type || !v->score) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", v->path);
    uint64_t nt = 0, ns = 0;
    bool has_types = lp_gguf_has(g, "tokenizer.ggml.token_type"), has_scores = lp_gguf_has(g, "tokenizer.ggml.scores");
    if (has_types) LP_TRY(lp_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &nt));
    if (has_scores) LP_TRY(lp_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &ns));
    if ((has_types && nt != v->n) || (has_scores && ns != v->n))
        return lp_fail(LP_ERR_FORMAT, "%s: tokenizer.ggml.token_type / scores do not have one entry per token (%llu)",
                       v->path, (unsigned long long)v->n);
    for (uint64_t i = 0; i < v->n; i++) {
        LP_TRY(lp_gguf_arr_str(g, "tokenizer.ggml.tokens", i, &v->tok[i]));
        int64_t ty = TT_NORMAL;
        double sc = 0;
        if (has_types) LP_TRY(lp_gguf_arr_int(g, "tokenizer.ggml.token_type", i, &ty));
        if (has_scores) LP_TRY(lp_gguf_arr_num(g, "tokenizer.ggml.scores", i, &sc));
        v->type[i] = (int32_t)ty;
        v->score[i] = (float)sc;
    }
    return LP_OK;
}

static int32_t opt_id(const lp_gguf *g, const char *key, uint64_t n) {
    uint32_t id;
    if (!lp_gguf_has(g, key) || lp_gguf_get_u32(g, key, &id) != LP_OK || id >= n) return -1;
    return (int32_t)id;
}

static int opt_bool(const lp_gguf *g, const char *key, int def) {
    bool b;
    if (!lp_gguf_has(g, key) || lp_gguf_get_bool(g, key, &b) != LP_OK) return def;
    return b;
}

/* "added_tokens": control and user-defined tokens. */
static void put_added(lp_tbuf *b, const gvocab *v) {
    put(b, "\"added_tokens\":[");
    int first = 1;
    char num[32];
    for (uint64_t i = 0; i < v->n; i++) {
        if (v->type[i] != TT_CONTROL && v->type[i] != TT_USER && v->type[i] != TT_UNKNOWN) continue;
        if (!first) put(b, ",");
        first = 0;
        snprintf(num, sizeof num, "%llu", (unsigned long long)i);
        put(b, "{\"id\":");
        put(b, num);
        put(b, ",\"content\":");
        put_str(b, v->tok[i].s, v->tok[i].n);
        put(b, ",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":");
        put(b, v->type[i] == TT_USER ? "false}" : "true}");
    }
    put(b, "],");
}

static void put_vocab(lp_tbuf *b, const gvocab *v) {
    put(b, "\"vocab\":{");
    char num[32];
    for (uint64_t i = 0; i < v->n; i++) {
        if (i) put(b, ",");
        put_str(b, v->tok[i].s, v->tok[i].n);
        snprintf(num, sizeof num, ":%llu", (unsigned long long)i);
        put(b, num);
    }
    put(b, "}");
}

static void put_post(lp_tbuf *b, const gvocab *v, int32_t bos, int32_t eos, int add_bos, int add_eos) {
    if (!(add_bos && bos >= 0) && !(add_eos && eos >= 0)) {
        put(b, "\"post_processor\":null,");
        return;
    }
    put(b, "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[");
    if (add_bos && bos >= 0) {
        put(b, "{\"SpecialToken\":{\"id\":");
        put_str(b, v->tok[bos].s, v->tok[bos].n);
        put(b, ",\"type_id\":0}},");
    }
    put(b, "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}");
    if (add_eos && eos >= 0) {
        put(b, ",{\"SpecialToken\":{\"id\":");
        put_str(b, v->tok[eos].s, v->tok[eos].n);
        put(b, ",\"type_id\":0}}");
    }
    put(b, "],\"pair\":[],\"special_tokens\":{");
    int32_t ids[2] = {add_bos ? bos : -1, add_eos ? eos : -1};
    int first = 1;
    for (int k = 0; k < 2; k++) {
        if (ids[k] < 0 || (k == 1 && ids[1] == ids[0])) continue;
        char num[32];
        if (!first) put(b, ",");
        first = 0;
        put_str(b, v->tok[ids[k]].s, v->tok[ids[k]].n);
        put(b, ":{\"id\":");
        put_str(b, v->tok[ids[k]].s, v->tok[ids[k]].n);
        snprintf(num, sizeof num, ",\"ids\":[%d],\"tokens\":[", ids[k]);
        put(b, num);
        put_str(b, v->tok[ids[k]].s, v->tok[ids[k]].n);
        put(b, "]}");
    }
    put(b, "}},");
}

typedef struct {
    float score;
    uint32_t tok;  /* the merged token */
    uint32_t a, b; /* its two halves */
} smerge;

static int by_score(const void *x, const void *y) {
    const smerge *p = x, *q = y;
    if (p->score != q->score) return p->score > q->score ? -1 : 1;
    if (p->tok != q->tok) return p->tok < q->tok ? -1 : 1;
    return p->a < q->a ? -1 : p->a > q->a;
}

/* SentencePiece: every split of a normal token into two tokens, best score first. */
static lp_status spm_merges(const gvocab *v, lp_tbuf *b) {
    lp_smap ix;
    LP_TRY(lp_smap_init(&ix, (size_t)v->n * 2));
    lp_status st = LP_OK;
    for (uint64_t i = 0; st == LP_OK && i < v->n; i++)
        if (v->type[i] == TT_NORMAL || v->type[i] == TT_USER) st = lp_smap_put(&ix, v->tok[i].s, v->tok[i].n, (int32_t)i);
    smerge *m = NULL;
    size_t nm = 0, cap = 0;
    for (uint64_t i = 0; st == LP_OK && i < v->n; i++) {
        if (v->type[i] != TT_NORMAL) continue;
        const char *s = v->tok[i].s;
        size_t n = v->tok[i].n;
        for (size_t k = 1; k < n; k++) {
            if (((unsigned char)s[k] & 0xc0) == 0x80) continue; /* split at character boundaries only */
            int32_t a = lp_smap_get(&ix, s, k), c = lp_smap_get(&ix, s + k, n - k);
            if (a < 0 || c < 0) continue;
            if (nm == cap) {
                cap = cap ? cap * 2 : 1024;
                smerge *nmv = realloc(m, cap * sizeof *m);
                if (!nmv) {
                    st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", v->path);
                    break;
                }
                m = nmv;
            }
            m[nm++] = (smerge){.score = v->score[i], .tok = (uint32_t)i, .a = (uint32_t)a, .b = (uint32_t)c};
        }
    }
    if (st == LP_OK) {
        qsort(m, nm, sizeof *m, by_score);
        put(b, ",\"merges\":[");
        for (size_t k = 0; k < nm; k++) {
            if (k) put(b, ",");
            put(b, "[");
            put_str(b, v->tok[m[k].a].s, v->tok[m[k].a].n);
            put(b, ",");
            put_str(b, v->tok[m[k].b].s, v->tok[m[k].b].n);
            put(b, "]");
        }
        put(b, "]");
    }
    free(m);
    lp_smap_free(&ix);
    return st;
}

static lp_status gpt2_merges(const lp_gguf *g, const gvocab *v, lp_tbuf *b) {
    lp_gguf_vtype et;
    uint64_t n = 0;
    LP_TRY(lp_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n));
    if (et != LP_GGUF_STRING) return lp_fail(LP_ERR_FORMAT, "%s: tokenizer.ggml.merges is not a list of strings", v->path);
    put(b, ",\"merges\":[");
    for (uint64_t i = 0; i < n; i++) {
        lp_gguf_str s;
        LP_TRY(lp_gguf_arr_str(g, "tokenizer.ggml.merges", i, &s));
        const char *sp = s.n ? memchr(s.s + 1, ' ', s.n - 1) : NULL; /* the first space after a non-empty left */
        if (!sp)
            return lp_fail(LP_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] is not \"left right\"", v->path,
                           (unsigned long long)i);
        if (i) put(b, ",");
        put(b, "[");
        put_str(b, s.s, (size_t)(sp - s.s));
        put(b, ",");
        put_str(b, sp + 1, s.n - (size_t)(sp - s.s) - 1);
        put(b, "]");
    }
    put(b, "]");
    return LP_OK;
}

static const char *pre_regex(const char *pre) {
    if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3") || !strcmp(pre, "falcon3") ||
        !strcmp(pre, "dbrx") || !strcmp(pre, "smaug-bpe"))
        return RE_LLAMA3;
    if (!strcmp(pre, "qwen2") || !strcmp(pre, "deepseek-r1-qwen") || !strcmp(pre, "stablelm2")) return RE_QWEN2;
    return NULL;
}

static lp_status build_json(const lp_gguf *g, const gvocab *v, lp_tbuf *b) {
    lp_gguf_str model;
    LP_TRY(lp_gguf_get_str(g, "tokenizer.ggml.model", &model));
    const int spm = model.n == 5 && !memcmp(model.s, "llama", 5);
    const int gpt2 = model.n == 4 && !memcmp(model.s, "gpt2", 4);
    if (!spm && !gpt2)
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model \"%.*s\" is not supported (llama, gpt2)", v->path,
                       (int)(model.n > 40 ? 40 : model.n), model.s);
    const int32_t bos = opt_id(g, "tokenizer.ggml.bos_token_id", v->n);
    const int32_t eos = opt_id(g, "tokenizer.ggml.eos_token_id", v->n);
    int32_t unk = opt_id(g, "tokenizer.ggml.unknown_token_id", v->n);
    const int add_bos = opt_bool(g, "tokenizer.ggml.add_bos_token", spm);
    const int add_eos = opt_bool(g, "tokenizer.ggml.add_eos_token", 0);
    put(b, "{\"version\":\"1.0\",");
    put_added(b, v);
    if (spm) {
        const int prefix = opt_bool(g, "tokenizer.ggml.add_space_prefix", 1);
        if (unk < 0)
            for (uint64_t i = 0; i < v->n && unk < 0; i++)
                if (v->type[i] == TT_UNKNOWN) unk = (int32_t)i;
        put(b, prefix ? "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
                        "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
                      : "\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"},");
        put(b, "\"pre_tokenizer\":null,");
        put_post(b, v, bos, eos, add_bos, add_eos);
        put(b, "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96\x81\"},"
               "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}");
        put(b, prefix ? ",{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}," : "]},");
        put(b, "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":");
        if (unk >= 0) put_str(b, v->tok[unk].s, v->tok[unk].n);
        else put(b, "null");
        put(b, ",\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":true,\"byte_fallback\":true,"
               "\"ignore_merges\":false,");
        put_vocab(b, v);
        LP_TRY(spm_merges(v, b));
    } else {
        lp_gguf_str pre = {"default", 7};
        if (lp_gguf_has(g, "tokenizer.ggml.pre")) LP_TRY(lp_gguf_get_str(g, "tokenizer.ggml.pre", &pre));
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(pre.n < 63 ? pre.n : 63), pre.s);
        const char *re = pre_regex(name);
        put(b, "\"normalizer\":null,\"pre_tokenizer\":");
        if (re) {
            put(b, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":");
            put_str(b, re, strlen(re));
            put(b, "},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                   "\"trim_offsets\":false,\"use_regex\":false}]},");
        } else if (!strcmp(name, "smollm")) {
            put(b, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
                   "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}]},");
        } else if (!strcmp(name, "gpt-2") || !strcmp(name, "default")) {
            put(b, "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true},");
        } else {
            return lp_fail(LP_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre \"%s\" is not supported (llama-bpe, qwen2, "
                           "gpt-2, smollm, default)", v->path, name);
        }
        put_post(b, v, bos, eos, add_bos, add_eos);
        put(b, "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},");
        put(b, "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,"
               "\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,");
        put_vocab(b, v);
        LP_TRY(gpt2_merges(g, v, b));
    }
    put(b, "}}");
    return LP_OK;
}

lp_status lp_tokenizer_from_gguf(const lp_gguf *g, lp_tokenizer **out) {
    *out = NULL;
    gvocab v = {.g = g, .path = lp_gguf_path(g)};
    lp_tbuf b = {0};
    lp_status st = read_vocab(g, &v);
    if (st == LP_OK) st = build_json(g, &v, &b);
    if (st == LP_OK) st = lp_tokenizer_load_buffer(b.p, b.n, v.path, out);
    if (st == LP_OK) {
        int32_t bos = opt_id(g, "tokenizer.ggml.bos_token_id", v.n), eos = opt_id(g, "tokenizer.ggml.eos_token_id", v.n);
        if (bos >= 0) (*out)->bos = bos;
        if (eos >= 0) (*out)->eos = eos;
    }
    lp_tbuf_free(&b);
    free(v.tok);
    free(v.type);
    free(v.score);
    return st;
}
