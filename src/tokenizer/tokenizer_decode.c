/*
 * tokenizer_decode.c - tokenizer.json decoders: ids' strings back to text.
 *
 * What: parses "decoder" and runs the chain over the list of token strings:
 * Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace, BPEDecoder, and
 * Sequence of them.
 * Why:  decode(encode(text)) == text is a test we rely on, and generation
 * prints decoded text; both must match what HF prints.
 * Design: HF's Decoder::decode_chain maps Vec<String> -> Vec<String>; here a
 * token list is an lp_stage (one buffer, one piece per string) and every
 * decoder writes a new stage, swapped in afterwards. The final text is the
 * concatenation of the last list, as HF's decode joins with "".
 */
#include "tokenizer/tokenizer_impl.h"

#include <stdlib.h>
#include <string.h>

static lp_status dec_add(lp_decoder **v, size_t *n, size_t *cap, lp_decoder x) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 4;
        lp_decoder *p = realloc(*v, c * sizeof(lp_decoder));
        if (!p) {
            free(x.str);
            lp_regex_free(x.re);
            return lp_fail(LP_ERR_NOMEM, "tokenizer: out of memory");
        }
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return LP_OK;
}

/* A JSON string holding exactly one character -> its code point. */
static int one_char(const lp_json *j, uint32_t *cp) {
    if (!j || j->type != LP_JSON_STRING || j->len == 0 || j->len > 4) return 0;
    size_t i = 0;
    *cp = lp_utf8_next(j->str, &i);
    return i == j->len;
}

static lp_status decs_parse_one(const lp_json *j, const char *file, int depth, lp_decoder **v,
                                size_t *n, size_t *cap) {
    if (!j || j->type == LP_JSON_NULL) return LP_OK;
    const char *t = lp_json_str(lp_json_get(j, "type"), NULL);
    if (j->type != LP_JSON_OBJECT || !t)
        return lp_fail(LP_ERR_FORMAT, "%s: a decoder is not an object with a \"type\"", file);
    if (depth > 16) return lp_fail(LP_ERR_FORMAT, "%s: decoder Sequences nest too deep", file);
    lp_decoder x;
    memset(&x, 0, sizeof(x));
    if (!strcmp(t, "Sequence")) {
        const lp_json *a = lp_json_get(j, "decoders");
        if (!a || a->type != LP_JSON_ARRAY)
            return lp_fail(LP_ERR_FORMAT, "%s: decoder Sequence has no \"decoders\" array", file);
        for (int64_t i = 0; i < a->n; i++) LP_TRY(decs_parse_one(&a->items[i], file, depth + 1, v, n, cap));
        return LP_OK;
    } else if (!strcmp(t, "Replace")) {
        const lp_json *c = lp_json_get(j, "content");
        if (!c || c->type != LP_JSON_STRING)
            return lp_fail(LP_ERR_FORMAT, "%s: decoder Replace has no \"content\" string", file);
        x.kind = LP_DEC_REPLACE;
        x.str = malloc(c->len + 1);
        if (!x.str) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", file);
        memcpy(x.str, c->str, c->len + 1);
        x.str_len = c->len;
        lp_status st = lp_pattern_parse(lp_json_get(j, "pattern"), file, "decoder Replace", &x.re);
        if (st != LP_OK) {
            free(x.str);
            return st;
        }
    } else if (!strcmp(t, "ByteFallback")) {
        x.kind = LP_DEC_BYTEFALLBACK;
    } else if (!strcmp(t, "Fuse")) {
        x.kind = LP_DEC_FUSE;
    } else if (!strcmp(t, "ByteLevel")) {
        x.kind = LP_DEC_BYTELEVEL;
    } else if (!strcmp(t, "Strip")) {
        x.kind = LP_DEC_STRIP;
        if (!one_char(lp_json_get(j, "content"), &x.cp))
            return lp_fail(LP_ERR_FORMAT, "%s: decoder Strip needs a one-character \"content\"", file);
        /* absent means 0; present, an integer in [0, 10^6] (-1: not an integer, so refused) */
        const lp_json *ja = lp_json_get(j, "start"), *jb = lp_json_get(j, "stop");
        int64_t a = ja ? lp_json_int(ja, -1) : 0, b = jb ? lp_json_int(jb, -1) : 0;
        if (a < 0 || b < 0 || a > 1000000 || b > 1000000) {
            char as[64], bs[64];
            lp_tok_json_show(ja, as, sizeof as);
            lp_tok_json_show(jb, bs, sizeof bs);
            return lp_fail(LP_ERR_FORMAT, "%s: decoder Strip start/stop %s/%s, expected integers in [0, 1000000]",
                           file, ja ? as : "0", jb ? bs : "0");
        }
        x.start = (int)a;
        x.stop = (int)b;
    } else if (!strcmp(t, "Metaspace")) {
        x.kind = LP_DEC_METASPACE;
        if (!one_char(lp_json_get(j, "replacement"), &x.cp))
            return lp_fail(LP_ERR_FORMAT, "%s: decoder Metaspace needs a one-character \"replacement\"",
                           file);
        const char *ps = lp_json_str(lp_json_get(j, "prepend_scheme"), "always");
        x.scheme = !strcmp(ps, "never") ? LP_PREPEND_NEVER
                   : !strcmp(ps, "first") ? LP_PREPEND_FIRST
                                          : LP_PREPEND_ALWAYS;
        const lp_json *aps = lp_json_get(j, "add_prefix_space");
        if (aps && aps->type == LP_JSON_BOOL && !aps->boolean) x.scheme = LP_PREPEND_NEVER;
    } else if (!strcmp(t, "BPEDecoder")) {
        const char *s = lp_json_str(lp_json_get(j, "suffix"), "</w>");
        x.kind = LP_DEC_BPE;
        x.str_len = strlen(s);
        x.str = malloc(x.str_len + 1);
        if (!x.str) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", file);
        memcpy(x.str, s, x.str_len + 1);
    } else {
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "%s: decoder type '%s' is not supported (supported: Sequence, Replace, "
                       "ByteFallback, Fuse, Strip, ByteLevel, Metaspace, BPEDecoder)",
                       file, t);
    }
    return dec_add(v, n, cap, x);
}

lp_status lp_decoders_parse(const lp_json *j, const char *file, lp_decoder **out, size_t *n) {
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    lp_status st = decs_parse_one(j, file, 0, out, n, &cap);
    if (st != LP_OK) {
        lp_decoders_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return st;
}

void lp_decoders_free(lp_decoder *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].str);
        lp_regex_free(v[i].re);
    }
    free(v);
}

/* "<0xNN>" -> the byte, as HF's u8::from_str_radix(&token[3..5], 16) reads
 * it (which also accepts a leading '+'); -1 if not a byte token. */
static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0, k = 3;
    if (s[3] == '+') k = 4;
    for (; k < 5; k++) {
        char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static lp_status flush_bytes(lp_tbuf *bytes, lp_stage *out) {
    if (!bytes->n) return LP_OK;
    if (lp_utf8_valid(bytes->p, bytes->n, NULL)) {
        LP_TRY(lp_stage_push(out, bytes->p, bytes->n, -1, 0));
    } else {
        for (size_t k = 0; k < bytes->n; k++) LP_TRY(lp_stage_push(out, "\xEF\xBF\xBD", 3, -1, 0));
    }
    bytes->n = 0;
    return LP_OK;
}

static lp_status dec_one(const lp_decoder *d, const lp_stage *in, lp_stage *out,
                         lp_tok_scratch *sc) {
    lp_stage_reset(out);
    switch (d->kind) {
    case LP_DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->v[i].off;
            size_t n = in->v[i].len, prev = 0;
            LP_TRY(lp_regex_find_all(d->re, s, n, sc));
            lp_tbuf *t = &sc->t1;
            t->n = 0;
            LP_TRY(lp_tbuf_reserve(t, n));
            for (size_t k = 0; k < sc->nspans; k++) {
                LP_TRY(lp_tbuf_put(t, s + prev, sc->spans[k].s - prev));
                LP_TRY(lp_tbuf_put(t, d->str, d->str_len));
                prev = sc->spans[k].e;
            }
            LP_TRY(lp_tbuf_put(t, s + prev, n - prev));
            LP_TRY(lp_stage_push(out, t->p, t->n, -1, 0));
        }
        return LP_OK;
    case LP_DEC_BYTEFALLBACK: {
        lp_tbuf *bytes = &sc->t1;
        bytes->n = 0;
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->v[i].off;
            int b = byte_token(s, in->v[i].len);
            if (b >= 0) {
                char c = (char)b;
                LP_TRY(lp_tbuf_put(bytes, &c, 1));
                continue;
            }
            LP_TRY(flush_bytes(bytes, out));
            LP_TRY(lp_stage_push(out, s, in->v[i].len, -1, 0));
        }
        return flush_bytes(bytes, out);
    }
    case LP_DEC_FUSE:
        /* one token: the whole buffer (pieces are laid out back to back) */
        LP_TRY(lp_stage_push(out, in->buf.p ? in->buf.p : "", in->buf.n, -1, 0));
        return LP_OK;
    case LP_DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->v[i].off;
            size_t n = in->v[i].len, a = 0, b = n;
            for (int k = 0; k < d->start && a < n; k++) {
                size_t j = a;
                if (lp_utf8_next(s, &j) != d->cp) break;
                a = j;
            }
            for (int k = 0; k < d->stop && b > a; k++) {
                size_t j = b - 1;
                while (j > a && ((unsigned char)s[j] & 0xC0) == 0x80) j--;
                size_t q = j;
                if (lp_utf8_next(s, &q) != d->cp) break;
                b = j;
            }
            LP_TRY(lp_stage_push(out, s + a, b - a, -1, 0));
        }
        return LP_OK;
    case LP_DEC_BYTELEVEL: {
        /* every token's characters back to bytes; a token with a character
         * outside the byte alphabet (e.g. an added token) stays as it is */
        lp_tbuf *bytes = &sc->t1;
        bytes->n = 0;
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->v[i].off;
            size_t n = in->v[i].len, start = bytes->n, j = 0;
            LP_TRY(lp_tbuf_reserve(bytes, n));
            int ok = 1;
            while (j < n) {
                int b = lp_bytelevel_byte(lp_utf8_next(s, &j));
                if (b < 0) {
                    ok = 0;
                    break;
                }
                bytes->p[bytes->n++] = (char)b;
            }
            if (!ok) {
                bytes->n = start;
                LP_TRY(lp_tbuf_put(bytes, s, n));
            }
        }
        sc->t2.n = 0;
        LP_TRY(lp_tbuf_reserve(&sc->t2, bytes->n));
        LP_TRY(lp_utf8_lossy(bytes->p ? bytes->p : "", bytes->n, &sc->t2));
        return lp_stage_push(out, sc->t2.p ? sc->t2.p : "", sc->t2.n, -1, 0);
    }
    case LP_DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->v[i].off;
            size_t n = in->v[i].len, j = 0;
            lp_tbuf *t = &sc->t1;
            t->n = 0;
            LP_TRY(lp_tbuf_reserve(t, n));
            while (j < n) {
                size_t k = j;
                uint32_t c = lp_utf8_next(s, &k);
                if (c == d->cp) {
                    /* HF drops every replacement char of the first token */
                    if (!(i == 0 && d->scheme != LP_PREPEND_NEVER)) LP_TRY(lp_tbuf_put(t, " ", 1));
                } else {
                    LP_TRY(lp_tbuf_put(t, s + j, k - j));
                }
                j = k;
            }
            LP_TRY(lp_stage_push(out, t->p, t->n, -1, 0));
        }
        return LP_OK;
    case LP_DEC_BPE:
        for (size_t i = 0; i < in->n; i++) {
            const char *s = in->buf.p + in->v[i].off;
            size_t n = in->v[i].len, prev = 0;
            const char *rep = i + 1 == in->n ? "" : " ";
            lp_tbuf *t = &sc->t1;
            t->n = 0;
            LP_TRY(lp_tbuf_reserve(t, n));
            for (size_t pos = 0; d->str_len && pos + d->str_len <= n;) {
                const char *f = memmem(s + pos, n - pos, d->str, d->str_len);
                if (!f) break;
                size_t b = (size_t)(f - s);
                LP_TRY(lp_tbuf_put(t, s + prev, b - prev));
                LP_TRY(lp_tbuf_put(t, rep, strlen(rep)));
                prev = pos = b + d->str_len;
            }
            LP_TRY(lp_tbuf_put(t, s + prev, n - prev));
            LP_TRY(lp_stage_push(out, t->p, t->n, -1, 0));
        }
        return LP_OK;
    }
    return LP_OK;
}

lp_status lp_decoders_apply(const lp_decoder *v, size_t nv, lp_stage *toks, lp_stage *tmp,
                            lp_tok_scratch *sc) {
    for (size_t i = 0; i < nv; i++) {
        LP_TRY(dec_one(&v[i], toks, tmp, sc));
        lp_stage t = *toks;
        *toks = *tmp;
        *tmp = t;
    }
    return LP_OK;
}
