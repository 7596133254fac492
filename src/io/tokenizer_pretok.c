/*
 * tokenizer_pretok.c - regexes, normalizers and pre-tokenizers.
 *
 * What: parses tokenizer.json's "normalizer" and "pre_tokenizer" objects and
 * applies them: NFC/NFD, Prepend, Replace, Strip, ByteLevel normalizers;
 * Split, ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Digits,
 * Punctuation and CharDelimiterSplit pre-tokenizers (Sequence of any).
 * Why:  these decide where words start and end, and so every id.
 * Design: HF compiles its patterns with Oniguruma (Ruby syntax); we use PCRE2
 * in UTF + UCP mode with JIT, after translating the few constructs whose
 * meaning differs: \s (Unicode White_Space in Oniguruma; PCRE2 also counts
 * U+180E), \w (Oniguruma adds marks and connector punctuation), \h (a hex
 * digit in Ruby, horizontal space in PCRE2), (?m) (Ruby's dot-all) and ^/$
 * (always line anchors in Ruby: PCRE2_MULTILINE). Matches are enumerated like
 * Rust onig's find_iter: an empty match right after the previous match is
 * skipped. Splitting follows NormalizedString::split's five behaviours
 * (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous).
 */
#include "io/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

/* Unicode White_Space, as a PCRE2 class body. */
#define WS_CLASS                                                                     \
    "\\t\\n\\x0B\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
    "\\x{202F}\\x{205F}\\x{3000}"
/* Oniguruma's Unicode \w: Letter | Mark | Decimal_Number | Connector_Punctuation. */
#define WORD_CLASS "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"
#define HEX_CLASS "0-9a-fA-F"

/* GPT-2's pre-tokenizer pattern, used by ByteLevel when use_regex is true. */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ------------------------------------------------------------------ regex */

/* Rewrite an Oniguruma (Ruby syntax) pattern into PCRE2 syntax. */
static lp_status translate_onig(const char *p, size_t n, lp_tbuf *o) {
    int in_class = 0;
    for (size_t i = 0; i < n;) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            const char *rep = NULL;
            switch (d) {
            case 's': rep = in_class ? WS_CLASS : "[" WS_CLASS "]"; break;
            case 'S': rep = in_class ? NULL : "[^" WS_CLASS "]"; break;
            case 'w': rep = in_class ? WORD_CLASS : "[" WORD_CLASS "]"; break;
            case 'W': rep = in_class ? NULL : "[^" WORD_CLASS "]"; break;
            case 'h': rep = in_class ? HEX_CLASS : "[" HEX_CLASS "]"; break;
            case 'H': rep = in_class ? NULL : "[^" HEX_CLASS "]"; break;
            default: break;
            }
            if (rep) LP_TRY(lp_tbuf_put(o, rep, strlen(rep)));
            else LP_TRY(lp_tbuf_put(o, p + i, 2));
            i += 2;
            continue;
        }
        if (in_class) {
            if (c == '[' && i + 1 < n && p[i + 1] == ':') { /* POSIX [:alpha:] */
                const char *end = memchr(p + i + 2, ']', n - i - 2);
                size_t k = end ? (size_t)(end - p) + 1 : n;
                LP_TRY(lp_tbuf_put(o, p + i, k - i));
                i = k;
                continue;
            }
            if (c == '[') in_class++; /* Oniguruma nests classes */
            else if (c == ']') in_class--;
            LP_TRY(lp_tbuf_put(o, &c, 1));
            i++;
            continue;
        }
        if (c == '[') {
            in_class = 1;
            LP_TRY(lp_tbuf_put(o, &c, 1));
            i++;
            if (i < n && p[i] == '^') LP_TRY(lp_tbuf_put(o, p + i++, 1));
            if (i < n && p[i] == ']') LP_TRY(lp_tbuf_put(o, p + i++, 1)); /* literal ] */
            continue;
        }
        if (c == '(' && i + 1 < n && p[i + 1] == '?') {
            /* inline options: Ruby's m is PCRE2's s (dot matches newline) */
            LP_TRY(lp_tbuf_put(o, "(?", 2));
            i += 2;
            while (i < n && strchr("imx-", p[i]) && p[i]) {
                char f = p[i] == 'm' ? 's' : p[i];
                LP_TRY(lp_tbuf_put(o, &f, 1));
                i++;
            }
            continue;
        }
        LP_TRY(lp_tbuf_put(o, &c, 1));
        i++;
    }
    return LP_OK;
}

lp_status lp_regex_compile(const char *pat, size_t n, int literal, const char *file,
                           const char *what, lp_regex **out) {
    *out = NULL;
    lp_regex *re = calloc(1, sizeof(*re));
    if (!re) return lp_fail(LP_ERR_NOMEM, "%s: out of memory compiling a regex", file);
    if (literal && n > 0) {
        re->lit = malloc(n);
        if (!re->lit) {
            free(re);
            return lp_fail(LP_ERR_NOMEM, "%s: out of memory compiling a regex", file);
        }
        memcpy(re->lit, pat, n);
        re->lit_len = n;
        *out = re;
        return LP_OK;
    }
    lp_tbuf t = {0};
    lp_status st = LP_OK;
    uint32_t opts = PCRE2_UTF;
    if (literal) {
        opts |= PCRE2_LITERAL;
        st = lp_tbuf_put(&t, pat, n);
    } else {
        opts |= PCRE2_UCP | PCRE2_MULTILINE;
        st = translate_onig(pat, n, &t);
    }
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (st == LP_OK && !cc) st = lp_fail(LP_ERR_NOMEM, "%s: out of memory compiling a regex", file);
    if (st == LP_OK) {
        pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
        int err = 0;
        PCRE2_SIZE eoff = 0;
        re->code = pcre2_compile((PCRE2_SPTR)(t.p ? t.p : ""), t.n, opts, &err, &eoff, cc);
        if (!re->code) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            st = lp_fail(LP_ERR_UNSUPPORTED,
                         "%s: %s pattern \"%.*s\" cannot be compiled: %s (at offset %zu)", file,
                         what, (int)(n > 200 ? 200 : n), pat, (const char *)msg, (size_t)eoff);
        } else {
            (void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* optional speed-up */
        }
    }
    pcre2_compile_context_free(cc);
    lp_tbuf_free(&t);
    if (st != LP_OK) {
        lp_regex_free(re);
        return st;
    }
    *out = re;
    return LP_OK;
}

void lp_regex_free(lp_regex *re) {
    if (!re) return;
    pcre2_code_free(re->code);
    free(re->lit);
    free(re);
}

static lp_status push_span(lp_span **v, size_t *n, size_t *cap, size_t s, size_t e) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        lp_span *p = realloc(*v, c * sizeof(lp_span));
        if (!p) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (%zu spans)", c);
        *v = p;
        *cap = c;
    }
    (*v)[*n].s = s;
    (*v)[*n].e = e;
    (*n)++;
    return LP_OK;
}

lp_status lp_regex_find_all(const lp_regex *re, const char *s, size_t n, lp_tok_scratch *sc) {
    sc->nspans = 0;
    if (!re->code) { /* literal */
        for (size_t pos = 0; pos + re->lit_len <= n;) {
            const char *f = memmem(s + pos, n - pos, re->lit, re->lit_len);
            if (!f) break;
            size_t b = (size_t)(f - s);
            LP_TRY(push_span(&sc->spans, &sc->nspans, &sc->capspans, b, b + re->lit_len));
            pos = b + re->lit_len;
        }
        return LP_OK;
    }
    size_t pos = 0, last_end = 0;
    int have_last = 0;
    while (pos <= n) {
        int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, sc->md, sc->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !sc->jit) {
            /* the default 32 KiB JIT stack is too small for this text: retry
             * with a larger one (created only when needed) */
            sc->mctx = pcre2_match_context_create(NULL);
            sc->jit = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, NULL);
            if (!sc->mctx || !sc->jit)
                return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory (regex stack)");
            pcre2_jit_stack_assign(sc->mctx, NULL, sc->jit);
            continue;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return lp_fail(LP_ERR_UNSUPPORTED,
                           "tokenizer: regex matching failed at byte %zu of a %zu-byte piece: %s",
                           pos, n, (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
        size_t ms = ov[0], me = ov[1];
        if (me < ms) me = ms; /* \K tricks; never in tokenizer patterns */
        if (ms == me && have_last && me == last_end) {
            if (pos >= n) break;
            pos += (size_t)lp_utf8_len((unsigned char)s[pos]);
            continue;
        }
        LP_TRY(push_span(&sc->spans, &sc->nspans, &sc->capspans, ms, me));
        pos = me;
        last_end = me;
        have_last = 1;
    }
    return LP_OK;
}

lp_status lp_pattern_parse(const lp_json *pat, const char *file, const char *what,
                           lp_regex **out) {
    const lp_json *s = lp_json_get(pat, "String"), *r = lp_json_get(pat, "Regex");
    if (s && s->type == LP_JSON_STRING) return lp_regex_compile(s->str, s->len, 1, file, what, out);
    if (r && r->type == LP_JSON_STRING) return lp_regex_compile(r->str, r->len, 0, file, what, out);
    if (pat && pat->type == LP_JSON_STRING) /* a bare string: some writers emit this */
        return lp_regex_compile(pat->str, pat->len, 1, file, what, out);
    return lp_fail(LP_ERR_FORMAT, "%s: %s has no \"pattern\": {\"String\": ...} or {\"Regex\": ...}",
                   file, what);
}

/* ------------------------------------------------------------- splitting */

lp_status lp_split_segments(size_t n, int invert, lp_split_behavior behavior,
                            lp_tok_scratch *sc) {
    /* The alternating (segment, is_match) list covering [0, n), as HF's
     * Pattern::find_matches returns it; is_match flipped when inverted. */
    sc->nsegs = 0;
    size_t prev = 0;
    int prev_match = 0, have = 0;
    size_t k = 0;
#define EMIT(S, E, M)                                                                      \
    do {                                                                                   \
        size_t s_ = (S), e_ = (E);                                                         \
        int m_ = (M) != invert;                                                            \
        switch (behavior) {                                                                \
        case LP_SPLIT_ISOLATED: LP_TRY(push_span(&sc->segs, &sc->nsegs, &sc->capsegs, s_, e_)); break; \
        case LP_SPLIT_REMOVED:                                                             \
            if (!m_) LP_TRY(push_span(&sc->segs, &sc->nsegs, &sc->capsegs, s_, e_));       \
            break;                                                                         \
        case LP_SPLIT_CONTIGUOUS:                                                          \
            if (have && m_ == prev_match) sc->segs[sc->nsegs - 1].e = e_;                  \
            else LP_TRY(push_span(&sc->segs, &sc->nsegs, &sc->capsegs, s_, e_));           \
            break;                                                                         \
        case LP_SPLIT_MERGED_WITH_PREVIOUS:                                                \
            if (m_ && !prev_match && have) sc->segs[sc->nsegs - 1].e = e_;                 \
            else LP_TRY(push_span(&sc->segs, &sc->nsegs, &sc->capsegs, s_, e_));           \
            break;                                                                         \
        case LP_SPLIT_MERGED_WITH_NEXT:                                                    \
            /* a match joins the segment after it: remember it as pending */               \
            if (have && pending_next) sc->segs[sc->nsegs - 1].e = e_;                      \
            else LP_TRY(push_span(&sc->segs, &sc->nsegs, &sc->capsegs, s_, e_));           \
            pending_next = m_;                                                             \
            break;                                                                         \
        }                                                                                  \
        prev_match = m_;                                                                   \
        have = 1;                                                                          \
    } while (0)
    int pending_next = 0;
    if (n == 0) {
        EMIT(0, 0, 0);
    } else {
        for (k = 0; k < sc->nspans; k++) {
            size_t s = sc->spans[k].s, e = sc->spans[k].e;
            if (prev != s) EMIT(prev, s, 0);
            EMIT(s, e, 1);
            prev = e;
        }
        if (prev != n) EMIT(prev, n, 0);
    }
#undef EMIT
    /* drop empty segments (HF filters them when collecting splits) */
    size_t w = 0;
    for (size_t i = 0; i < sc->nsegs; i++)
        if (sc->segs[i].e > sc->segs[i].s) sc->segs[w++] = sc->segs[i];
    sc->nsegs = w;
    return LP_OK;
}
