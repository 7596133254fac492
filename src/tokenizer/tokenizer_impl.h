/*
 * tokenizer_impl.h - private structures shared by the tokenizer_*.c files.
 *
 * What: buffers, hash maps, the BPE model, normalizer / pre-tokenizer /
 * decoder descriptions and the lp_tokenizer struct itself.
 * Why:  the tokenizer is split by concern (tokenizer.c: loading and the
 * pipeline; tokenizer_bpe.c: the merge algorithm and maps;
 * tokenizer_pretok.c: regexes, normalizers, pre-tokenizers;
 * tokenizer_decode.c: decoders; tokenizer_unicode.c: UTF-8 and NFC;
 * tokenizer_llama2c.c: llama2.c's tokenizer.bin), and they share these types.
 * Design: text flows through "stages": one byte buffer plus a list of pieces
 * (spans of that buffer, or an added token already resolved to an id). Each
 * pipeline step reads one stage and writes the next, like HF's
 * PreTokenizedString splits but without offset tracking (we never need
 * offsets), which keeps it simple and fast.
 */
#ifndef LP_TOKENIZER_IMPL_H
#define LP_TOKENIZER_IMPL_H

#include "llmpress/tokenizer.h"
#include "core/status_impl.h"
#include "io/json.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- buffers */

typedef struct {
    char *p;
    size_t n, cap;
} lp_tbuf;

lp_status lp_tbuf_reserve(lp_tbuf *b, size_t extra);
lp_status lp_tbuf_put(lp_tbuf *b, const void *s, size_t n);
void lp_tbuf_free(lp_tbuf *b);

typedef struct {
    int32_t *v;
    int64_t n, cap;
} lp_ivec;

lp_status lp_ivec_push(lp_ivec *a, int32_t x);
lp_status lp_ivec_append(lp_ivec *a, const int32_t *x, int64_t n);
void lp_ivec_free(lp_ivec *a);

/* One piece of text: a span of a stage's buffer, or an added token (id >= 0,
 * span unused). `origin` is 1 when the piece starts at byte 0 of the input
 * (HF's offsets_original().0 == 0, used by Metaspace prepend_scheme=first). */
typedef struct {
    size_t off, len;
    int32_t id;
    uint8_t origin;
} lp_piece;

typedef struct {
    lp_tbuf buf;
    lp_piece *v;
    size_t n, cap;
} lp_stage;

/* Append a text piece (copying s) or, with id >= 0, a token piece. */
lp_status lp_stage_push(lp_stage *st, const char *s, size_t len, int32_t id, int origin);
void lp_stage_reset(lp_stage *st);
void lp_stage_free(lp_stage *st);

/* --------------------------------------------------------------- hash maps */

/* string -> int32, open addressing; keys are copied into an owned arena. */
typedef struct {
    uint64_t hash; /* 0 = empty slot */
    uint32_t off, len;
    int32_t val;
} lp_smap_slot;

typedef struct {
    lp_smap_slot *slots;
    size_t mask, count;
    lp_tbuf keys;
} lp_smap;

lp_status lp_smap_init(lp_smap *m, size_t expect);
void lp_smap_free(lp_smap *m);
int32_t lp_smap_get(const lp_smap *m, const char *k, size_t n); /* -1 if absent */
/* Insert or overwrite. */
lp_status lp_smap_put(lp_smap *m, const char *k, size_t n, int32_t val);

/* (left id, right id) -> (rank, merged id), the BPE merge table. */
typedef struct {
    uint64_t key; /* UINT64_MAX = empty slot */
    uint32_t rank;
    int32_t id;
} lp_pmap_slot;

typedef struct {
    lp_pmap_slot *slots;
    size_t mask, count;
} lp_pmap;

lp_status lp_pmap_init(lp_pmap *m, size_t expect);
void lp_pmap_free(lp_pmap *m);
const lp_pmap_slot *lp_pmap_get(const lp_pmap *m, int32_t a, int32_t b);
lp_status lp_pmap_put(lp_pmap *m, int32_t a, int32_t b, uint32_t rank, int32_t id);

/* ---------------------------------------------------------------- scratch */

typedef struct {
    size_t s, e;
} lp_span;

/* One BPE symbol (a run of the word being merged) and a queued merge. */
typedef struct {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    uint32_t len;       /* bytes of the word it covers; 0 once merged away */
} lp_bpe_sym;

typedef struct {
    uint32_t rank, pos;
    int32_t new_id;
} lp_bpe_merge;

/* Per-encode-call scratch: nothing here outlives one lp_tokenizer_encode. */
typedef struct {
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    lp_span *spans; /* regex matches */
    size_t nspans, capspans;
    lp_span *segs; /* split results */
    size_t nsegs, capsegs;
    lp_tbuf t1, t2, t3;
    uint32_t *cps;
    size_t capcps;
    lp_bpe_sym *syms;
    size_t capsyms;
    lp_bpe_merge *heap;
    size_t capheap;
} lp_tok_scratch;

lp_status lp_scratch_init(lp_tok_scratch *sc);
void lp_scratch_free(lp_tok_scratch *sc);

/* ------------------------------------------------- JSON values in errors */

/* A JSON value as an error message shows it, into buf: a number as written
 * (3.5 stays "3.5", never rounded to 4; 3.0 stays "3.0"), a string quoted
 * (its first 40 bytes, control bytes as '?'), anything else by its kind
 * ("an object", "null", ...); "(missing)" for NULL. */
void lp_tok_json_show(const lp_json *v, char *buf, size_t n);

/* ------------------------------------------------------- unicode, UTF-8 */

/* 1 if valid UTF-8 (no surrogates, no overlongs, <= U+10FFFF); otherwise 0
 * and *bad = offset of the first invalid byte. */
int lp_utf8_valid(const char *s, size_t n, size_t *bad);
/* Decode the code point at s[*i] of VALID UTF-8 and advance *i. */
uint32_t lp_utf8_next(const char *s, size_t *i);
/* Bytes of the character starting with lead byte c (1 for junk). */
int lp_utf8_len(unsigned char c);
/* Encode cp into out (4 bytes room); returns the byte count. */
int lp_utf8_put(char *out, uint32_t cp);
/* Unicode White_Space (Rust char::is_whitespace). */
int lp_unicode_is_space(uint32_t cp);
/* Append the NFC (compose=1) or NFD (compose=0) form of valid UTF-8. */
lp_status lp_unicode_normalize(const char *s, size_t n, int compose, lp_tbuf *out,
                               lp_tok_scratch *sc);
/* Append bytes as UTF-8, each ill-formed subsequence replaced by U+FFFD
 * (Rust's String::from_utf8_lossy). */
lp_status lp_utf8_lossy(const char *s, size_t n, lp_tbuf *out);

/* ------------------------------------------------------------- regex */

typedef struct {
    pcre2_code *code; /* NULL for a non-empty literal, matched with memmem */
    char *lit;
    size_t lit_len;
} lp_regex;

/* Compile an HF pattern: literal (a "String" pattern) or an Oniguruma-syntax
 * regex (a "Regex" pattern), translated where PCRE2 differs. `file` and
 * `what` go into error messages. */
lp_status lp_regex_compile(const char *pat, size_t n, int literal, const char *file,
                           const char *what, lp_regex **out);
void lp_regex_free(lp_regex *re);
/* All non-overlapping matches of re in s, as Rust's onig find_iter yields
 * them, into sc->spans / sc->nspans. */
lp_status lp_regex_find_all(const lp_regex *re, const char *s, size_t n, lp_tok_scratch *sc);
/* Compile an HF pattern object {"String": s} or {"Regex": r}. */
lp_status lp_pattern_parse(const lp_json *pat, const char *file, const char *what,
                           lp_regex **out);

/* ---------------------------------------------- normalizers, pre-tokenizers */

typedef enum {
    LP_NORM_NFC,
    LP_NORM_NFD,
    LP_NORM_PREPEND,
    LP_NORM_REPLACE,
    LP_NORM_STRIP,
    LP_NORM_BYTELEVEL,
} lp_norm_kind;

typedef struct {
    lp_norm_kind kind;
    char *str; /* Prepend: the prefix; Replace: the replacement content */
    size_t str_len;
    lp_regex *re; /* Replace: the pattern */
    int left, right; /* Strip */
} lp_norm;

typedef enum {
    LP_SPLIT_REMOVED,
    LP_SPLIT_ISOLATED,
    LP_SPLIT_MERGED_WITH_PREVIOUS,
    LP_SPLIT_MERGED_WITH_NEXT,
    LP_SPLIT_CONTIGUOUS,
} lp_split_behavior;

typedef enum {
    LP_PRE_SPLIT,     /* Split, Whitespace, WhitespaceSplit, Digits, Punctuation, CharDelimiterSplit */
    LP_PRE_BYTELEVEL, /* ByteLevel */
    LP_PRE_METASPACE, /* Metaspace */
} lp_pretok_kind;

typedef enum { LP_PREPEND_ALWAYS, LP_PREPEND_FIRST, LP_PREPEND_NEVER } lp_prepend_scheme;

typedef struct {
    lp_pretok_kind kind;
    lp_regex *re;               /* Split pattern; ByteLevel's GPT-2 regex when use_regex */
    lp_split_behavior behavior; /* Split */
    int invert;                 /* Split */
    int add_prefix_space;       /* ByteLevel */
    int use_regex;              /* ByteLevel */
    char repl[5];               /* Metaspace replacement, UTF-8 */
    size_t repl_len;
    lp_prepend_scheme scheme; /* Metaspace */
    int split;                /* Metaspace */
} lp_pretok;

/* Parse `normalizer` / `pre_tokenizer` (JSON null gives n = 0). */
lp_status lp_norms_parse(const lp_json *j, const char *file, lp_norm **out, size_t *n);
void lp_norms_free(lp_norm *v, size_t n);
/* Run every normalizer over s, leaving the result in *res (which points into
 * sc's buffers or at s itself). *origin is cleared when text at the start
 * was deleted (the result then no longer starts at original offset 0). */
lp_status lp_norms_apply(const lp_norm *v, size_t nv, const char *s, size_t n,
                         const char **res, size_t *res_len, int *origin, lp_tok_scratch *sc);

lp_status lp_pretoks_parse(const lp_json *j, const char *file, lp_pretok **out, size_t *n);
void lp_pretoks_free(lp_pretok *v, size_t n);
/* Apply one pre-tokenizer to every text piece of `in`, writing `out`. */
lp_status lp_pretok_apply(const lp_pretok *p, const lp_stage *in, lp_stage *out,
                          lp_tok_scratch *sc);
/* HF's NormalizedString::split: from the matches in sc->spans over a string
 * of n bytes, compute the kept, non-empty segments into sc->segs. */
lp_status lp_split_segments(size_t n, int invert, lp_split_behavior behavior,
                            lp_tok_scratch *sc);

/* GPT-2's byte -> code point alphabet and its inverse (-1: not a byte char). */
uint32_t lp_bytelevel_cp(unsigned char b);
int lp_bytelevel_byte(uint32_t cp);

/* ---------------------------------------------------------------- decoders */

typedef enum {
    LP_DEC_REPLACE,
    LP_DEC_BYTEFALLBACK,
    LP_DEC_FUSE,
    LP_DEC_STRIP,
    LP_DEC_BYTELEVEL,
    LP_DEC_METASPACE,
    LP_DEC_BPE,
} lp_dec_kind;

typedef struct {
    lp_dec_kind kind;
    lp_regex *re;  /* Replace */
    char *str;     /* Replace: content; BPE: suffix */
    size_t str_len;
    uint32_t cp;   /* Strip content, Metaspace replacement */
    int start, stop; /* Strip */
    lp_prepend_scheme scheme; /* Metaspace */
} lp_decoder;

lp_status lp_decoders_parse(const lp_json *j, const char *file, lp_decoder **out, size_t *n);
void lp_decoders_free(lp_decoder *v, size_t n);
/* Run the decoder chain over the token strings in `toks` (pieces of its
 * buffer); `tmp` is scratch. The result is the concatenation of the final
 * pieces of *toks. */
lp_status lp_decoders_apply(const lp_decoder *v, size_t nv, lp_stage *toks, lp_stage *tmp,
                            lp_tok_scratch *sc);

/* -------------------------------------------------------------- BPE model */

typedef struct {
    lp_smap vocab; /* token string -> id */
    lp_pmap merges;
    int32_t unk_id; /* -1: no unk token */
    int fuse_unk, byte_fallback, ignore_merges;
    char *prefix, *suffix; /* continuing_subword_prefix, end_of_word_suffix */
    size_t prefix_len, suffix_len;
    int32_t byte_ids[256]; /* "<0xNN>" ids, -1 when absent */
    /* Safe split points for long pieces (see lp_bpe_piece): every pair of
     * adjacent characters (c1, c2) inside some vocabulary token. */
    int has_charpairs;
    lp_pmap charpairs;
    uint8_t ascii_tok[128]; /* 1 when the ASCII char is a vocabulary token */
} lp_bpe;

/* The word cache: pre-token string -> ids (HF caches words the same way).
 * Entries are never evicted; past a size cap new words are not cached. */
typedef struct {
    lp_smap map; /* word -> offset into ids, where ids[off] = count */
    lp_ivec ids;
} lp_wcache;

/* Encode one pre-token with the BPE model, appending ids to out. */
lp_status lp_bpe_word(const lp_bpe *m, const char *w, size_t n, lp_tok_scratch *sc,
                      lp_wcache *cache, lp_ivec *out);
/* Encode one pre-token that may be long (a whole text when there is no
 * pre-tokenizer): cut it where no merge can ever cross, then lp_bpe_word
 * each part. Gives exactly lp_bpe_word's result. */
lp_status lp_bpe_piece(const lp_bpe *m, const char *w, size_t n, lp_tok_scratch *sc,
                       lp_wcache *cache, lp_ivec *out);
/* Build m->charpairs from the vocabulary (call after the vocab is loaded). */
lp_status lp_bpe_build_charpairs(lp_bpe *m);
void lp_bpe_free(lp_bpe *m);

/* ------------------------------------------------------------- tokenizer */

typedef enum { LP_TOK_HF_BPE, LP_TOK_LLAMA2C } lp_tok_kind;

typedef struct {
    char *content; /* original text */
    size_t len;
    char *norm; /* normalized form when normalized=true (else == content) */
    size_t norm_len;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
} lp_added;

/* Added tokens bucketed by first byte, longest first, for leftmost-longest
 * matching (HF uses an Aho-Corasick automaton with the same semantics). */
typedef struct {
    uint32_t start[257]; /* tokens with first byte b: order[start[b] .. start[b+1]) */
    uint32_t *order;     /* indices into lp_tokenizer.added */
    int any;
} lp_added_index;

struct lp_tokenizer {
    lp_tok_kind kind;
    char *path;

    /* id -> string (vocab and added tokens), in one arena */
    int64_t n_vocab;
    lp_tbuf text;
    uint32_t *text_off, *text_len; /* text_len == UINT32_MAX: no token */
    uint8_t *flags;                /* LP_TOKF_* */

    lp_bpe bpe;
    lp_added *added;
    size_t n_added;
    lp_smap added_map; /* content -> id */
    lp_added_index idx_raw, idx_norm;
    lp_regex *word_re; /* a word character, for single_word tokens */

    lp_norm *norms;
    size_t n_norms;
    lp_pretok *pretoks;
    size_t n_pretoks;
    lp_decoder *decs;
    size_t n_decs;
    int has_decoder;

    lp_ivec post_pre, post_post; /* ids the post-processor adds around the text */
    int32_t bos, eos;

    /* llama2.c tokenizer.bin */
    float *scores;
    lp_smap l2c_vocab;

    pthread_mutex_t cache_mu;
    lp_wcache *cache;
};

#define LP_TOKF_ADDED 1
#define LP_TOKF_SPECIAL 2
#define LP_TOKF_NORMDEC 4 /* an added token decoded by its normalized form */

/* llama2.c format (tokenizer_llama2c.c). */
lp_status lp_l2c_load(lp_tokenizer *t, const char *data, size_t size);
lp_status lp_l2c_encode(const lp_tokenizer *t, const char *text, size_t len, int add_special,
                        lp_ivec *out);
lp_status lp_l2c_decode(const lp_tokenizer *t, const int32_t *ids, int64_t n, lp_tbuf *out);

/* Register id -> string (used by loaders). */
lp_status lp_tok_set_text(lp_tokenizer *t, int32_t id, const char *s, size_t n);

#endif
