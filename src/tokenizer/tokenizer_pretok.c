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
#include "tokenizer/tokenizer_impl.h"

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
            /* a match joins the non-match that follows it */                              \
            if (have && pending_next && !m_) sc->segs[sc->nsegs - 1].e = e_;               \
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

/* ------------------------------------------------------------- byte level */

/* GPT-2's table: printable Latin-1 bytes stand for themselves; the other 68
 * bytes (0x00-0x20, 0x7F-0xA0, 0xAD), in increasing order, map to U+0100.. */
uint32_t lp_bytelevel_cp(unsigned char b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    if (b <= 0x20) return 256u + b;
    if (b >= 0x7F && b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    return 256u + 67u; /* 0xAD */
}

int lp_bytelevel_byte(uint32_t cp) {
    if (cp < 256) {
        unsigned char b = (unsigned char)cp;
        return lp_bytelevel_cp(b) == cp ? (int)cp : -1;
    }
    if (cp < 256 + 33) return (int)(cp - 256);
    if (cp < 256 + 67) return (int)(cp - 256 - 33 + 0x7F);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

static lp_status bytelevel_map(const char *s, size_t n, lp_tbuf *o) {
    LP_TRY(lp_tbuf_reserve(o, 2 * n));
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b >= 0x21 && b <= 0x7E) o->p[o->n++] = (char)b;
        else o->n += (size_t)lp_utf8_put(o->p + o->n, lp_bytelevel_cp(b));
    }
    o->p[o->n] = 0;
    return LP_OK;
}

/* ------------------------------------------------------------ normalizers */

static const char *jtype(const lp_json *j) { return lp_json_str(lp_json_get(j, "type"), NULL); }

static lp_status norm_add(lp_norm **v, size_t *n, size_t *cap, lp_norm x) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 4;
        lp_norm *p = realloc(*v, c * sizeof(lp_norm));
        if (!p) return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory");
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return LP_OK;
}

static char *dup_str(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static lp_status norms_parse_one(const lp_json *j, const char *file, int depth, lp_norm **v,
                                 size_t *n, size_t *cap) {
    if (!j || j->type == LP_JSON_NULL) return LP_OK;
    const char *t = jtype(j);
    if (j->type != LP_JSON_OBJECT || !t)
        return lp_fail(LP_ERR_FORMAT, "%s: a normalizer is not an object with a \"type\"", file);
    if (depth > 16) return lp_fail(LP_ERR_FORMAT, "%s: normalizer Sequences nest too deep", file);
    lp_norm x;
    memset(&x, 0, sizeof(x));
    if (!strcmp(t, "Sequence")) {
        const lp_json *a = lp_json_get(j, "normalizers");
        if (!a || a->type != LP_JSON_ARRAY)
            return lp_fail(LP_ERR_FORMAT, "%s: normalizer Sequence has no \"normalizers\" array", file);
        for (int64_t i = 0; i < a->n; i++) LP_TRY(norms_parse_one(&a->items[i], file, depth + 1, v, n, cap));
        return LP_OK;
    } else if (!strcmp(t, "NFC")) {
        x.kind = LP_NORM_NFC;
    } else if (!strcmp(t, "NFD")) {
        x.kind = LP_NORM_NFD;
    } else if (!strcmp(t, "ByteLevel")) {
        x.kind = LP_NORM_BYTELEVEL;
    } else if (!strcmp(t, "Strip")) {
        x.kind = LP_NORM_STRIP;
        x.left = lp_json_bool(lp_json_get(j, "strip_left"), 1);
        x.right = lp_json_bool(lp_json_get(j, "strip_right"), 1);
    } else if (!strcmp(t, "Prepend")) {
        const lp_json *p = lp_json_get(j, "prepend");
        if (!p || p->type != LP_JSON_STRING)
            return lp_fail(LP_ERR_FORMAT, "%s: normalizer Prepend has no \"prepend\" string", file);
        x.kind = LP_NORM_PREPEND;
        x.str = dup_str(p->str, p->len);
        x.str_len = p->len;
        if (!x.str) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", file);
    } else if (!strcmp(t, "Replace")) {
        const lp_json *c = lp_json_get(j, "content");
        if (!c || c->type != LP_JSON_STRING)
            return lp_fail(LP_ERR_FORMAT, "%s: normalizer Replace has no \"content\" string", file);
        x.kind = LP_NORM_REPLACE;
        LP_TRY(lp_pattern_parse(lp_json_get(j, "pattern"), file, "normalizer Replace", &x.re));
        x.str = dup_str(c->str, c->len);
        x.str_len = c->len;
        if (!x.str) {
            lp_regex_free(x.re);
            return lp_fail(LP_ERR_NOMEM, "%s: out of memory", file);
        }
    } else {
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "%s: normalizer type '%s' is not supported (supported: Sequence, NFC, NFD, "
                       "Prepend, Replace, Strip, ByteLevel)",
                       file, t);
    }
    lp_status st = norm_add(v, n, cap, x);
    if (st != LP_OK) {
        free(x.str);
        lp_regex_free(x.re);
    }
    return st;
}

lp_status lp_norms_parse(const lp_json *j, const char *file, lp_norm **out, size_t *n) {
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    lp_status st = norms_parse_one(j, file, 0, out, n, &cap);
    if (st != LP_OK) {
        lp_norms_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return st;
}

void lp_norms_free(lp_norm *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].str);
        lp_regex_free(v[i].re);
    }
    free(v);
}

static lp_status norm_one(const lp_norm *x, const char *s, size_t n, lp_tbuf *o, int *origin,
                          lp_tok_scratch *sc) {
    switch (x->kind) {
    case LP_NORM_NFC:
    case LP_NORM_NFD:
        return lp_unicode_normalize(s, n, x->kind == LP_NORM_NFC, o, sc);
    case LP_NORM_BYTELEVEL:
        return bytelevel_map(s, n, o);
    case LP_NORM_PREPEND:
        if (n) LP_TRY(lp_tbuf_put(o, x->str, x->str_len)); /* only non-empty strings */
        return lp_tbuf_put(o, s, n);
    case LP_NORM_STRIP: {
        size_t a = 0, b = n;
        if (x->left) {
            while (a < b) {
                size_t i = a;
                if (!lp_unicode_is_space(lp_utf8_next(s, &i))) break;
                a = i;
            }
            if (a > 0) *origin = 0;
        }
        if (x->right) {
            while (b > a) {
                size_t i = b - 1;
                while (i > a && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
                size_t k = i;
                if (!lp_unicode_is_space(lp_utf8_next(s, &k))) break;
                b = i;
            }
        }
        return lp_tbuf_put(o, s + a, b - a);
    }
    case LP_NORM_REPLACE: {
        LP_TRY(lp_regex_find_all(x->re, s, n, sc));
        size_t prev = 0;
        for (size_t k = 0; k < sc->nspans; k++) {
            LP_TRY(lp_tbuf_put(o, s + prev, sc->spans[k].s - prev));
            LP_TRY(lp_tbuf_put(o, x->str, x->str_len));
            prev = sc->spans[k].e;
        }
        if (sc->nspans && sc->spans[0].s == 0 && sc->spans[0].e > 0 && x->str_len == 0) *origin = 0;
        return lp_tbuf_put(o, s + prev, n - prev);
    }
    }
    return LP_OK;
}

lp_status lp_norms_apply(const lp_norm *v, size_t nv, const char *s, size_t n,
                         const char **res, size_t *res_len, int *origin, lp_tok_scratch *sc) {
    /* ping-pong between two scratch buffers; the input is never written */
    for (size_t i = 0; i < nv; i++) {
        lp_tbuf *dst = (i & 1) ? &sc->t2 : &sc->t1;
        dst->n = 0;
        LP_TRY(lp_tbuf_reserve(dst, n));
        LP_TRY(norm_one(&v[i], s, n, dst, origin, sc));
        s = dst->p;
        n = dst->n;
    }
    *res = s;
    *res_len = n;
    return LP_OK;
}

/* --------------------------------------------------------- pre-tokenizers */

static lp_status pre_add(lp_pretok **v, size_t *n, size_t *cap, lp_pretok x) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 4;
        lp_pretok *p = realloc(*v, c * sizeof(lp_pretok));
        if (!p) {
            lp_regex_free(x.re);
            return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory");
        }
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return LP_OK;
}

static lp_status parse_behavior(const lp_json *j, const char *file, lp_split_behavior def,
                                lp_split_behavior *out) {
    const char *b = lp_json_str(lp_json_get(j, "behavior"), NULL);
    *out = def;
    if (!b) return LP_OK;
    if (!strcmp(b, "Removed")) *out = LP_SPLIT_REMOVED;
    else if (!strcmp(b, "Isolated")) *out = LP_SPLIT_ISOLATED;
    else if (!strcmp(b, "MergedWithPrevious")) *out = LP_SPLIT_MERGED_WITH_PREVIOUS;
    else if (!strcmp(b, "MergedWithNext")) *out = LP_SPLIT_MERGED_WITH_NEXT;
    else if (!strcmp(b, "Contiguous")) *out = LP_SPLIT_CONTIGUOUS;
    else
        return lp_fail(LP_ERR_FORMAT,
                       "%s: split behavior '%s' is not one of Removed, Isolated, "
                       "MergedWithPrevious, MergedWithNext, Contiguous",
                       file, b);
    return LP_OK;
}

/* A Split on a fixed regex (the pre-tokenizers defined by a char predicate). */
static lp_status fixed_split(const char *pat, int literal, int invert, lp_split_behavior b,
                             const char *file, const char *what, lp_pretok *x) {
    x->kind = LP_PRE_SPLIT;
    x->invert = invert;
    x->behavior = b;
    return lp_regex_compile(pat, strlen(pat), literal, file, what, &x->re);
}

static lp_status pretoks_parse_one(const lp_json *j, const char *file, int depth, lp_pretok **v,
                                   size_t *n, size_t *cap) {
    if (!j || j->type == LP_JSON_NULL) return LP_OK;
    const char *t = jtype(j);
    if (j->type != LP_JSON_OBJECT || !t)
        return lp_fail(LP_ERR_FORMAT, "%s: a pre_tokenizer is not an object with a \"type\"", file);
    if (depth > 16) return lp_fail(LP_ERR_FORMAT, "%s: pre_tokenizer Sequences nest too deep", file);
    lp_pretok x;
    memset(&x, 0, sizeof(x));
    if (!strcmp(t, "Sequence")) {
        const lp_json *a = lp_json_get(j, "pretokenizers");
        if (!a || a->type != LP_JSON_ARRAY)
            return lp_fail(LP_ERR_FORMAT, "%s: pre_tokenizer Sequence has no \"pretokenizers\" array",
                           file);
        for (int64_t i = 0; i < a->n; i++)
            LP_TRY(pretoks_parse_one(&a->items[i], file, depth + 1, v, n, cap));
        return LP_OK;
    } else if (!strcmp(t, "Split")) {
        x.kind = LP_PRE_SPLIT;
        x.invert = lp_json_bool(lp_json_get(j, "invert"), 0);
        LP_TRY(parse_behavior(j, file, LP_SPLIT_REMOVED, &x.behavior));
        LP_TRY(lp_pattern_parse(lp_json_get(j, "pattern"), file, "pre_tokenizer Split", &x.re));
    } else if (!strcmp(t, "ByteLevel")) {
        x.kind = LP_PRE_BYTELEVEL;
        x.add_prefix_space = lp_json_bool(lp_json_get(j, "add_prefix_space"), 1);
        x.use_regex = lp_json_bool(lp_json_get(j, "use_regex"), 1);
        if (x.use_regex)
            LP_TRY(lp_regex_compile(GPT2_PATTERN, strlen(GPT2_PATTERN), 0, file,
                                    "pre_tokenizer ByteLevel", &x.re));
    } else if (!strcmp(t, "Metaspace")) {
        const lp_json *r = lp_json_get(j, "replacement");
        size_t i = 0;
        if (!r || r->type != LP_JSON_STRING || r->len == 0 || r->len > 4 ||
            (lp_utf8_next(r->str, &i), i != r->len))
            return lp_fail(LP_ERR_FORMAT,
                           "%s: pre_tokenizer Metaspace needs a one-character \"replacement\"", file);
        x.kind = LP_PRE_METASPACE;
        memcpy(x.repl, r->str, r->len);
        x.repl_len = r->len;
        x.split = lp_json_bool(lp_json_get(j, "split"), 1);
        const char *ps = lp_json_str(lp_json_get(j, "prepend_scheme"), "always");
        if (!strcmp(ps, "always")) x.scheme = LP_PREPEND_ALWAYS;
        else if (!strcmp(ps, "first")) x.scheme = LP_PREPEND_FIRST;
        else if (!strcmp(ps, "never")) x.scheme = LP_PREPEND_NEVER;
        else
            return lp_fail(LP_ERR_FORMAT,
                           "%s: Metaspace prepend_scheme '%s' is not one of first, always, never",
                           file, ps);
        /* older files: "add_prefix_space": false means never */
        const lp_json *aps = lp_json_get(j, "add_prefix_space");
        if (aps && aps->type == LP_JSON_BOOL && !aps->boolean) x.scheme = LP_PREPEND_NEVER;
    } else if (!strcmp(t, "Whitespace")) {
        LP_TRY(fixed_split("\\w+|[^\\w\\s]+", 0, 1, LP_SPLIT_REMOVED, file, t, &x));
    } else if (!strcmp(t, "WhitespaceSplit")) {
        LP_TRY(fixed_split("\\s", 0, 0, LP_SPLIT_REMOVED, file, t, &x));
    } else if (!strcmp(t, "Digits")) {
        int each = lp_json_bool(lp_json_get(j, "individual_digits"), 0);
        LP_TRY(fixed_split("\\p{N}", 0, 0, each ? LP_SPLIT_ISOLATED : LP_SPLIT_CONTIGUOUS, file, t,
                           &x));
    } else if (!strcmp(t, "Punctuation")) {
        lp_split_behavior b;
        LP_TRY(parse_behavior(j, file, LP_SPLIT_ISOLATED, &b));
        /* Rust: char::is_ascii_punctuation || Unicode general category P* */
        LP_TRY(fixed_split("[\\p{P}\\x21-\\x2F\\x3A-\\x40\\x5B-\\x60\\x7B-\\x7E]", 0, 0, b, file, t,
                           &x));
    } else if (!strcmp(t, "CharDelimiterSplit")) {
        const lp_json *d = lp_json_get(j, "delimiter");
        if (!d || d->type != LP_JSON_STRING || d->len == 0)
            return lp_fail(LP_ERR_FORMAT, "%s: CharDelimiterSplit has no \"delimiter\"", file);
        x.kind = LP_PRE_SPLIT;
        x.behavior = LP_SPLIT_REMOVED;
        LP_TRY(lp_regex_compile(d->str, d->len, 1, file, t, &x.re));
    } else {
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "%s: pre_tokenizer type '%s' is not supported (supported: Sequence, Split, "
                       "ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Digits, Punctuation, "
                       "CharDelimiterSplit)",
                       file, t);
    }
    return pre_add(v, n, cap, x);
}

lp_status lp_pretoks_parse(const lp_json *j, const char *file, lp_pretok **out, size_t *n) {
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    lp_status st = pretoks_parse_one(j, file, 0, out, n, &cap);
    if (st != LP_OK) {
        lp_pretoks_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return st;
}

void lp_pretoks_free(lp_pretok *v, size_t n) {
    for (size_t i = 0; i < n; i++) lp_regex_free(v[i].re);
    free(v);
}

/* Find every occurrence of a literal into sc->spans. */
static lp_status find_literal(const char *s, size_t n, const char *lit, size_t ln,
                              lp_tok_scratch *sc) {
    sc->nspans = 0;
    for (size_t pos = 0; pos + ln <= n;) {
        const char *f = memmem(s + pos, n - pos, lit, ln);
        if (!f) break;
        size_t b = (size_t)(f - s);
        LP_TRY(push_span(&sc->spans, &sc->nspans, &sc->capspans, b, b + ln));
        pos = b + ln;
    }
    return LP_OK;
}

/* Push the segments in sc->segs of s as pieces; map bytes when bytelevel. */
static lp_status push_segs(const char *s, int origin, int bytelevel, lp_stage *out,
                           lp_tok_scratch *sc) {
    for (size_t k = 0; k < sc->nsegs; k++) {
        size_t a = sc->segs[k].s, b = sc->segs[k].e;
        int o = origin && a == 0;
        if (!bytelevel) {
            LP_TRY(lp_stage_push(out, s + a, b - a, -1, o));
            continue;
        }
        sc->t3.n = 0;
        LP_TRY(bytelevel_map(s + a, b - a, &sc->t3));
        LP_TRY(lp_stage_push(out, sc->t3.p, sc->t3.n, -1, o));
    }
    return LP_OK;
}

lp_status lp_pretok_apply(const lp_pretok *p, const lp_stage *in, lp_stage *out,
                          lp_tok_scratch *sc) {
    lp_stage_reset(out);
    for (size_t i = 0; i < in->n; i++) {
        const lp_piece *pc = &in->v[i];
        if (pc->id >= 0) {
            LP_TRY(lp_stage_push(out, NULL, 0, pc->id, pc->origin));
            continue;
        }
        const char *s = in->buf.p + pc->off;
        size_t n = pc->len;
        switch (p->kind) {
        case LP_PRE_SPLIT:
            LP_TRY(lp_regex_find_all(p->re, s, n, sc));
            LP_TRY(lp_split_segments(n, p->invert, p->behavior, sc));
            LP_TRY(push_segs(s, pc->origin, 0, out, sc));
            break;
        case LP_PRE_BYTELEVEL:
            if (p->add_prefix_space && (n == 0 || s[0] != ' ')) {
                sc->t1.n = 0;
                LP_TRY(lp_tbuf_put(&sc->t1, " ", 1));
                LP_TRY(lp_tbuf_put(&sc->t1, s, n));
                s = sc->t1.p;
                n = sc->t1.n;
            }
            if (p->use_regex) {
                LP_TRY(lp_regex_find_all(p->re, s, n, sc));
                LP_TRY(lp_split_segments(n, 0, LP_SPLIT_ISOLATED, sc));
            } else {
                sc->nspans = 0;
                LP_TRY(lp_split_segments(n, 0, LP_SPLIT_ISOLATED, sc));
            }
            LP_TRY(push_segs(s, pc->origin, 1, out, sc));
            break;
        case LP_PRE_METASPACE: {
            /* replace ' ' by the replacement, maybe prepend it, maybe split
             * before each replacement (MergedWithNext) */
            lp_tbuf *t = &sc->t1;
            t->n = 0;
            LP_TRY(lp_tbuf_reserve(t, n + p->repl_len));
            for (size_t k = 0; k < n; k++) {
                if (s[k] == ' ') LP_TRY(lp_tbuf_put(t, p->repl, p->repl_len));
                else LP_TRY(lp_tbuf_put(t, s + k, 1));
            }
            int starts = t->n >= p->repl_len && !memcmp(t->p, p->repl, p->repl_len);
            int prepend = (p->scheme == LP_PREPEND_ALWAYS && !starts) ||
                          (p->scheme == LP_PREPEND_FIRST && !starts && pc->origin);
            if (prepend) {
                sc->t2.n = 0;
                LP_TRY(lp_tbuf_put(&sc->t2, p->repl, p->repl_len));
                LP_TRY(lp_tbuf_put(&sc->t2, t->p, t->n));
                t = &sc->t2;
            }
            if (p->split) {
                LP_TRY(find_literal(t->p, t->n, p->repl, p->repl_len, sc));
                LP_TRY(lp_split_segments(t->n, 0, LP_SPLIT_MERGED_WITH_NEXT, sc));
            } else {
                sc->nspans = 0;
                LP_TRY(lp_split_segments(t->n, 0, LP_SPLIT_ISOLATED, sc));
            }
            LP_TRY(push_segs(t->p, pc->origin, 0, out, sc));
            break;
        }
        }
    }
    return LP_OK;
}
