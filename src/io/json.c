/*
 * json.c - strict RFC 8259 parser into a DOM held in a few exact blocks (see json.h).
 *
 * What: recursive descent over the text; every node, child array, key array
 *       and decoded string lives in memory owned by one lp_json_doc.
 * Why:  config.json, tokenizer.json and safetensors headers come from the
 *       internet. Anything RFC 8259 forbids (trailing commas, comments, single
 *       quotes, leading zeros, raw control characters, invalid UTF-8, lone
 *       surrogates, NaN/Infinity, trailing garbage) is an LP_ERR_FORMAT whose
 *       message reads "<name>:<line>:<col>: <what>, expected <what>".
 * Design:
 *   - Strings: one block of len+1 bytes is allocated up front. A decoded
 *     string plus its NUL never exceeds its quoted source text (every escape
 *     shrinks: "\n" 2->1, "\uXXXX" 6->1..3, a surrogate pair 12->4), so all
 *     strings fit in that block, back to back, without any reallocation.
 *   - Nodes: a container's children must be contiguous (items[n]), but n is
 *     unknown until its closing bracket. A first, cheap pass (count_pass)
 *     walks the brackets and commas, skipping strings with memchr, and
 *     records the child count of every container in opening order. Then
 *     every node, key pointer and key length is allocated in one exact block
 *     each, and the second pass (the real, validating parser) writes each
 *     node straight into its final place: no scratch stack, no copying, no
 *     reallocation, and only the memory the DOM needs is touched (which
 *     matters: page faults dominated a one-pass version).
 *     The first pass never judges the text. Where the text is malformed a
 *     count may be wrong; the second pass never writes past a count (an
 *     extra child goes to a spare node, so the real error is still reported
 *     where it is) and checks every count when a container closes. A
 *     container that closes without error was well-formed, and for it the
 *     two passes agree.
 *   - Numbers: the grammar is checked by hand. A plain integer literal that
 *     fits int64 is converted exactly here (is_int, i64, num = (double)i64,
 *     which is the same correctly rounded value strtod would give); anything
 *     else goes through strtod_l in the "C" locale on a NUL-terminated copy
 *     (the input is not NUL-terminated, and a caller's setlocale() must not
 *     turn "0.5" into 0). Overflow to +-inf is an error; underflow is not.
 *   - Depth: containers nest at most LP_JSON_MAX_DEPTH deep, which also
 *     bounds the recursion.
 */
#include "io/json.h"

#include "core/fileio.h"
#include "core/status_impl.h"

#include <locale.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define LP_JSON_MAX_DEPTH 256

struct lp_json_doc {
    lp_json root;
    lp_json *nodes;    /* every non-root node */
    const char **keys; /* every object's member names, object by object */
    size_t *key_lens;
    char *strings;     /* every decoded string and key, back to back */
    size_t nodes_bytes, keys_bytes, key_lens_bytes, strings_bytes; /* for block_free */
};

/* ---- big blocks ----
 * A 11 MB tokenizer.json needs ~45 MB of nodes. Faulting that in 4 KB pages
 * cost 3-5x the parse itself (measured: 27 ms of parsing, 120+ ms of page
 * faults on a VM), so blocks of 2 MB and more come from mmap with a
 * transparent-huge-page hint. Sanitizer builds keep malloc so that ASan can
 * see every block's bounds. */
#if defined(__SANITIZE_ADDRESS__)
#define LP_JSON_NO_MMAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LP_JSON_NO_MMAP 1
#endif
#endif
#define BIG_BLOCK ((size_t)2 << 20)

static void *block_alloc(size_t bytes) {
#ifndef LP_JSON_NO_MMAP
    if (bytes >= BIG_BLOCK) {
        void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
        madvise(p, bytes, MADV_HUGEPAGE); /* only a hint; failure is harmless */
#endif
        return p;
    }
#endif
    return malloc(bytes);
}

static void block_free(void *p, size_t bytes) {
    (void)bytes; /* unused when LP_JSON_NO_MMAP */
    if (!p) return;
#ifndef LP_JSON_NO_MMAP
    if (bytes >= BIG_BLOCK) {
        munmap(p, bytes);
        return;
    }
#endif
    free(p);
}

typedef struct {
    const unsigned char *s; /* input text, len bytes, not NUL-terminated */
    size_t len;
    size_t pos;
    const char *name; /* for messages */

    char *sbuf; /* string block (len + 1 bytes) */
    size_t sused;

    size_t *counts; /* children of each container, in opening order (pass 1) */
    size_t ncounts, next_count;
    lp_json *nodes; /* node block and its fill level */
    size_t nnodes, nodes_used;
    const char **keys; /* key blocks and their fill level */
    size_t *key_lens;
    size_t nkeys, keys_used;

    locale_t cloc; /* "C" locale for strtod_l, created on first use */
} jparser;

/* ---- errors ---- */

/* "<name>:<line>:<col>: <what>, expected <expected>". Columns count UTF-8
 * characters (not bytes) so they match what an editor shows. */
static lp_status jerr(const jparser *p, size_t at, lp_status st, const char *what,
                      const char *expected) {
    size_t line = 1, col = 1;
    if (at > p->len) at = p->len;
    for (size_t i = 0; i < at; i++) {
        unsigned char c = p->s[i];
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xC0) != 0x80) {
            col++;
        }
    }
    return lp_fail(st, "%s:%zu:%zu: %s, expected %s", p->name, line, col, what, expected);
}

/* Describes the byte at `at` for messages: "'x'", "byte 0xNN" or "end of input". */
static void describe(const jparser *p, size_t at, char *buf, size_t n) {
    if (at >= p->len) {
        snprintf(buf, n, "end of input");
    } else {
        unsigned char c = p->s[at];
        if (c >= 0x21 && c < 0x7f)
            snprintf(buf, n, "'%c'", c);
        else
            snprintf(buf, n, "byte 0x%02X", c);
    }
}

static lp_status unexpected(const jparser *p, size_t at, const char *expected) {
    char d[32], what[64];
    describe(p, at, d, sizeof d);
    snprintf(what, sizeof what, "unexpected %s", d);
    return jerr(p, at, LP_ERR_FORMAT, what, expected);
}

static lp_status nomem(const jparser *p, size_t bytes) {
    return lp_fail(LP_ERR_NOMEM, "%s: out of memory (%zu bytes) while parsing JSON", p->name, bytes);
}

/* ---- pass 1: child counts ---- */

/* Records the number of children of every container, in opening order, in
 * p->counts, and sums them into p->nnodes / p->nkeys. A container has
 * (commas at its level) + (1 if anything is inside) children. The pass stops
 * quietly where the text stops making sense (an unmatched closer, nesting
 * past the limit, an unterminated string) and closes the containers still
 * open there with what it has seen: that is never less than what the second
 * pass will store before it reports the error. */
static lp_status count_pass(jparser *p) {
    const unsigned char *s = p->s;
    const size_t len = p->len;
    size_t stack[LP_JSON_MAX_DEPTH + 1]; /* index into counts of each open container */
    bool nonempty[LP_JSON_MAX_DEPTH + 1];
    bool is_obj[LP_JSON_MAX_DEPTH + 1];
    int depth = 0;
    size_t cap = 0;
    for (size_t i = p->pos; i < len; i++) {
        unsigned char c = s[i];
        switch (c) {
        case ' ': case '\n': case '\r': case '\t':
            break;
        case '"': {
            /* Skip the string: the next '"' not preceded by an odd run of backslashes. */
            if (depth) nonempty[depth - 1] = true;
            size_t j = i + 1;
            for (;;) {
                const unsigned char *q = memchr(s + j, '"', len - j);
                if (!q) goto stop; /* unterminated: pass 2 says so */
                size_t k = (size_t)(q - s), bs = 0;
                while (k - bs > i + 1 && s[k - bs - 1] == '\\') bs++;
                j = k + 1;
                if (!(bs & 1)) break;
            }
            i = j - 1;
            break;
        }
        case '[': case '{':
            if (depth) nonempty[depth - 1] = true;
            if (depth > LP_JSON_MAX_DEPTH) goto stop; /* pass 2 reports the depth */
            if (p->ncounts == cap) {
                cap = cap ? cap * 2 : 1024;
                size_t *nc = realloc(p->counts, cap * sizeof *nc);
                if (!nc) return lp_fail(LP_ERR_NOMEM, "%s: out of memory while parsing JSON", p->name);
                p->counts = nc;
            }
            p->counts[p->ncounts] = 0;
            stack[depth] = p->ncounts++;
            nonempty[depth] = false;
            is_obj[depth] = c == '{';
            depth++;
            break;
        case ']': case '}': {
            if (!depth) goto stop;
            depth--;
            size_t n = p->counts[stack[depth]] + (nonempty[depth] ? 1 : 0);
            p->counts[stack[depth]] = n;
            p->nnodes += n;
            if (is_obj[depth]) p->nkeys += n;
            break;
        }
        case ',':
            if (depth) p->counts[stack[depth - 1]]++;
            break;
        default:
            if (depth) nonempty[depth - 1] = true;
            break;
        }
    }
stop:
    while (depth > 0) { /* only for malformed text */
        depth--;
        size_t n = p->counts[stack[depth]] + (nonempty[depth] ? 1 : 0);
        p->counts[stack[depth]] = n;
        p->nnodes += n;
        if (is_obj[depth]) p->nkeys += n;
    }
    return LP_OK;
}

/* Claims the next container's child array (and key arrays for an object). */
static void claim_children(jparser *p, lp_json *v, bool obj) {
    size_t n = p->next_count < p->ncounts ? p->counts[p->next_count] : 0;
    p->next_count++;
    if (n > p->nnodes - p->nodes_used || (obj && n > p->nkeys - p->keys_used))
        n = 0; /* inconsistent only for malformed text; the parse fails before using it */
    v->n = (int64_t)n;
    if (n) {
        v->items = p->nodes + p->nodes_used;
        p->nodes_used += n;
        if (obj) {
            v->keys = p->keys + p->keys_used;
            v->key_lens = p->key_lens + p->keys_used;
            p->keys_used += n;
        }
    }
}

/* ---- lexing helpers ---- */

static void skip_ws(jparser *p) {
    const unsigned char *s = p->s;
    size_t i = p->pos, n = p->len;
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
    p->pos = i;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" at s[i] (i points at the 'u'). */
static lp_status read_u4(jparser *p, size_t i, unsigned *out) {
    unsigned v = 0;
    for (int k = 1; k <= 4; k++) {
        if (i + (size_t)k >= p->len) return unexpected(p, p->len, "4 hex digits after \\u");
        int h = hexval(p->s[i + (size_t)k]);
        if (h < 0) return unexpected(p, i + (size_t)k, "4 hex digits after \\u");
        v = v * 16 + (unsigned)h;
    }
    *out = v;
    return LP_OK;
}

/* Length of the valid UTF-8 sequence starting at s[i] (whose first byte is
 * >= 0x80), or 0 if it is invalid: overlong forms, surrogates (U+D800..DFFF)
 * and code points above U+10FFFF are rejected (RFC 3629 table). */
static size_t utf8_seq(const unsigned char *s, size_t i, size_t len) {
    unsigned char c = s[i];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* > U+10FFFF */
    } else {
        return 0;
    }
    if (len - i < n) return 0;
    if (s[i + 1] < lo || s[i + 1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if ((s[i + k] & 0xC0) != 0x80) return 0;
    return n;
}

static char *put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xC0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xE0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *o++ = (char)(0xF0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *o++ = (char)(0x80 | (cp & 0x3F));
    }
    return o;
}

/* ---- strings ---- */

/* p->pos is at the opening quote. Decodes into the string block. */
static lp_status parse_string(jparser *p, const char **out, size_t *out_len) {
    const unsigned char *s = p->s;
    const size_t len = p->len;
    const size_t open = p->pos;
    size_t i = open + 1;
    char *const start = p->sbuf + p->sused;
    char *o = start;
    for (;;) {
        /* Fast path: a run of plain printable ASCII is copied as is. */
        size_t run = i;
        while (run < len && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\') run++;
        if (run > i) {
            memcpy(o, s + i, run - i);
            o += run - i;
            i = run;
        }
        if (i >= len)
            return jerr(p, open, LP_ERR_FORMAT, "unterminated string", "a closing '\"'");
        unsigned char c = s[i];
        if (c == '"') {
            i++;
            break;
        }
        if (c == '\\') {
            if (i + 1 >= len)
                return jerr(p, open, LP_ERR_FORMAT, "unterminated string", "a closing '\"'");
            unsigned char e = s[i + 1];
            switch (e) {
            case '"': *o++ = '"'; i += 2; continue;
            case '\\': *o++ = '\\'; i += 2; continue;
            case '/': *o++ = '/'; i += 2; continue;
            case 'b': *o++ = '\b'; i += 2; continue;
            case 'f': *o++ = '\f'; i += 2; continue;
            case 'n': *o++ = '\n'; i += 2; continue;
            case 'r': *o++ = '\r'; i += 2; continue;
            case 't': *o++ = '\t'; i += 2; continue;
            case 'u': break;
            default: {
                char d[32], what[64];
                describe(p, i + 1, d, sizeof d);
                snprintf(what, sizeof what, "invalid escape \\ followed by %s", d);
                return jerr(p, i, LP_ERR_FORMAT, what,
                            "one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
            }
            }
            unsigned cp;
            LP_TRY(read_u4(p, i + 1, &cp));
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                char what[64];
                snprintf(what, sizeof what, "lone low surrogate \\u%04X", cp);
                return jerr(p, i, LP_ERR_FORMAT, what, "a high surrogate \\uD800-\\uDBFF before it");
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                /* A high surrogate must be followed by "\u" + a low surrogate. */
                unsigned lo = 0;
                if (i + 7 < len && s[i + 6] == '\\' && s[i + 7] == 'u') {
                    LP_TRY(read_u4(p, i + 7, &lo));
                }
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    char what[64];
                    snprintf(what, sizeof what, "lone high surrogate \\u%04X", cp);
                    return jerr(p, i, LP_ERR_FORMAT, what,
                                "a low surrogate \\uDC00-\\uDFFF right after it");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 12;
            } else {
                i += 6;
            }
            o = put_utf8(o, cp);
            continue;
        }
        if (c < 0x20) {
            char what[64];
            snprintf(what, sizeof what, "raw control character U+%04X in string", c);
            return jerr(p, i, LP_ERR_FORMAT, what, "it escaped (\\n, \\t, \\u00XX)");
        }
        /* c >= 0x80: one UTF-8 sequence. */
        size_t n = utf8_seq(s, i, len);
        if (!n) {
            char what[64];
            snprintf(what, sizeof what, "invalid UTF-8 byte 0x%02X in string", c);
            return jerr(p, i, LP_ERR_FORMAT, what, "well-formed UTF-8 text");
        }
        memcpy(o, s + i, n);
        o += n;
        i += n;
    }
    *o++ = '\0';
    /* The block was sized from the input length; see the Design note. */
    LP_ASSERT((size_t)(o - p->sbuf) <= p->len + 1);
    *out = start;
    *out_len = (size_t)(o - start) - 1;
    p->sused = (size_t)(o - p->sbuf);
    p->pos = i;
    return LP_OK;
}

/* ---- numbers ---- */

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static lp_status parse_number(jparser *p, lp_json *v) {
    const unsigned char *s = p->s;
    const size_t len = p->len, start = p->pos;
    size_t i = start;
    int neg = 0;
    if (s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= len || !is_digit(s[i])) return unexpected(p, i, "a digit");
    /* Integer part, accumulated exactly while it fits. */
    uint64_t mag = 0;
    int too_big = 0;
    if (s[i] == '0') {
        i++;
        if (i < len && is_digit(s[i]))
            return jerr(p, i - 1, LP_ERR_FORMAT, "leading zero in a number",
                        "no leading zeros (RFC 8259)");
    } else {
        while (i < len && is_digit(s[i])) {
            unsigned d = s[i] - '0';
            if (mag > (UINT64_MAX - d) / 10) too_big = 1;
            else mag = mag * 10 + d;
            i++;
        }
    }
    int integral = 1;
    if (i < len && s[i] == '.') {
        integral = 0;
        i++;
        if (i >= len || !is_digit(s[i])) return unexpected(p, i, "a digit after '.'");
        while (i < len && is_digit(s[i])) i++;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        integral = 0;
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-')) i++;
        if (i >= len || !is_digit(s[i])) return unexpected(p, i, "a digit in the exponent");
        while (i < len && is_digit(s[i])) i++;
    }
    p->pos = i;
    v->type = LP_JSON_NUMBER;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (integral && !too_big && mag <= lim) {
        v->is_int = true;
        v->i64 = neg ? (int64_t)(0 - mag) : (int64_t)mag; /* 0 - 2^63 wraps to INT64_MIN */
        v->num = neg && mag == 0 ? -0.0 : (double)v->i64; /* "-0" is -0.0, as strtod says */
        return LP_OK;
    }
    /* strtod_l on a NUL-terminated copy, in the C locale. */
    size_t n = i - start;
    char small[64];
    char *buf = n < sizeof small ? small : malloc(n + 1);
    if (!buf) return nomem(p, n + 1);
    memcpy(buf, s + start, n);
    buf[n] = '\0';
    if (!p->cloc) {
        p->cloc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (!p->cloc) {
            if (buf != small) free(buf);
            return lp_fail(LP_ERR_NOMEM, "%s: cannot create the C locale to parse numbers", p->name);
        }
    }
    double d = strtod_l(buf, NULL, p->cloc);
    if (buf != small) free(buf);
    if (isinf(d))
        return jerr(p, start, LP_ERR_FORMAT, "number out of range", "a value that fits a double");
    v->num = d;
    return LP_OK;
}

/* ---- values ---- */

static lp_status parse_value(jparser *p, lp_json *v, int depth);

/* Error for a container whose children outnumber the first pass's count; a
 * well-formed container never gets here (see the Design note). */
static lp_status miscounted(const jparser *p, size_t open) {
    return jerr(p, open, LP_ERR_FORMAT, "malformed array or object", "balanced brackets");
}

static lp_status parse_array(jparser *p, lp_json *v, int depth) {
    const size_t open = p->pos;
    if (depth >= LP_JSON_MAX_DEPTH)
        return jerr(p, open, LP_ERR_FORMAT, "arrays/objects nested more than 256 deep",
                    "at most 256 levels of nesting");
    p->pos++; /* '[' */
    v->type = LP_JSON_ARRAY;
    claim_children(p, v, false);
    int64_t i = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == ']') {
        p->pos++;
    } else {
        for (;;) {
            /* Past the counted children only when the text is malformed:
             * parse into a spare node so the real error gets reported. */
            lp_json spare, *dst = i < v->n ? &v->items[i] : &spare;
            LP_TRY(parse_value(p, dst, depth + 1));
            if (dst == &spare) return miscounted(p, open);
            i++;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                skip_ws(p);
                if (p->pos < p->len && p->s[p->pos] == ']')
                    return jerr(p, p->pos, LP_ERR_FORMAT, "trailing comma before ']'",
                                "another value (RFC 8259 has no trailing commas)");
                continue;
            }
            if (p->pos < p->len && p->s[p->pos] == ']') {
                p->pos++;
                break;
            }
            return unexpected(p, p->pos, "',' or ']' after an array element");
        }
    }
    if (i != v->n) return miscounted(p, open);
    return LP_OK;
}

static lp_status parse_object(jparser *p, lp_json *v, int depth) {
    const size_t open = p->pos;
    if (depth >= LP_JSON_MAX_DEPTH)
        return jerr(p, open, LP_ERR_FORMAT, "arrays/objects nested more than 256 deep",
                    "at most 256 levels of nesting");
    p->pos++; /* '{' */
    v->type = LP_JSON_OBJECT;
    claim_children(p, v, true);
    int64_t i = 0;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == '}') {
        p->pos++;
    } else {
        for (;;) {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return unexpected(p, p->pos, "a member name in double quotes");
            /* As in parse_array: spare slots only for malformed text. */
            lp_json spare, *dst = i < v->n ? &v->items[i] : &spare;
            const char *spare_key, **kdst = i < v->n ? &v->keys[i] : &spare_key;
            size_t spare_len, *ldst = i < v->n ? &v->key_lens[i] : &spare_len;
            LP_TRY(parse_string(p, kdst, ldst));
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return unexpected(p, p->pos, "':' after the member name");
            p->pos++;
            LP_TRY(parse_value(p, dst, depth + 1));
            if (dst == &spare) return miscounted(p, open);
            i++;
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                skip_ws(p);
                if (p->pos < p->len && p->s[p->pos] == '}')
                    return jerr(p, p->pos, LP_ERR_FORMAT, "trailing comma before '}'",
                                "another member (RFC 8259 has no trailing commas)");
                continue;
            }
            if (p->pos < p->len && p->s[p->pos] == '}') {
                p->pos++;
                break;
            }
            return unexpected(p, p->pos, "',' or '}' after an object member");
        }
    }
    if (i != v->n) return miscounted(p, open);
    return LP_OK;
}

static lp_status parse_literal(jparser *p, const char *word, size_t n) {
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return unexpected(p, p->pos, "a value (object, array, string, number, true, false or null)");
    p->pos += n;
    return LP_OK;
}

static lp_status parse_value(jparser *p, lp_json *v, int depth) {
    memset(v, 0, sizeof *v);
    skip_ws(p);
    if (p->pos >= p->len) return unexpected(p, p->pos, "a value");
    unsigned char c = p->s[p->pos];
    switch (c) {
    case '{': return parse_object(p, v, depth);
    case '[': return parse_array(p, v, depth);
    case '"':
        v->type = LP_JSON_STRING;
        return parse_string(p, &v->str, &v->len);
    case 't':
        v->type = LP_JSON_BOOL;
        v->boolean = true;
        return parse_literal(p, "true", 4);
    case 'f':
        v->type = LP_JSON_BOOL;
        return parse_literal(p, "false", 5);
    case 'n':
        v->type = LP_JSON_NULL;
        return parse_literal(p, "null", 4);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, v);
        return unexpected(p, p->pos, "a value (object, array, string, number, true, false or null)");
    }
}

/* ---- public API ---- */

lp_status lp_json_parse(const char *text, size_t len, const char *name, lp_json_doc **out) {
    *out = NULL;
    if (!name) name = "<json>";
    if (!text && len) return lp_fail(LP_ERR_ARG, "%s: NULL text with length %zu", name, len);
    jparser p;
    memset(&p, 0, sizeof p);
    p.s = (const unsigned char *)(text ? text : "");
    p.len = len;
    p.name = name;
    /* RFC 8259 lets parsers ignore a UTF-8 byte order mark. */
    if (len >= 3 && p.s[0] == 0xEF && p.s[1] == 0xBB && p.s[2] == 0xBF) p.pos = 3;

    lp_json_doc *doc = calloc(1, sizeof *doc);
    if (!doc) return nomem(&p, sizeof *doc);
    lp_status st = count_pass(&p);
    if (st == LP_OK) {
        /* +1 so that no size is zero (malloc(0) may return NULL). */
        doc->strings_bytes = len + 1;
        doc->nodes_bytes = (p.nnodes + 1) * sizeof *p.nodes;
        doc->keys_bytes = (p.nkeys + 1) * sizeof *p.keys;
        doc->key_lens_bytes = (p.nkeys + 1) * sizeof *p.key_lens;
        p.sbuf = block_alloc(doc->strings_bytes);
        p.nodes = block_alloc(doc->nodes_bytes);
        p.keys = block_alloc(doc->keys_bytes);
        p.key_lens = block_alloc(doc->key_lens_bytes);
        if (!p.sbuf || !p.nodes || !p.keys || !p.key_lens)
            st = nomem(&p, len + 1 + (p.nnodes + 1) * sizeof *p.nodes);
    }
    if (st == LP_OK) st = parse_value(&p, &doc->root, 0);
    if (st == LP_OK) {
        skip_ws(&p);
        if (p.pos < p.len) st = unexpected(&p, p.pos, "end of input after the top-level value");
    }
    free(p.counts);
    if (p.cloc) freelocale(p.cloc);
    doc->nodes = p.nodes;
    doc->keys = p.keys;
    doc->key_lens = p.key_lens;
    doc->strings = p.sbuf;
    if (st != LP_OK) {
        lp_json_free(doc);
        return st;
    }
    *out = doc;
    return LP_OK;
}

void lp_json_free(lp_json_doc *doc) {
    if (!doc) return;
    block_free(doc->nodes, doc->nodes_bytes);
    block_free((void *)doc->keys, doc->keys_bytes);
    block_free(doc->key_lens, doc->key_lens_bytes);
    block_free(doc->strings, doc->strings_bytes);
    free(doc);
}

const lp_json *lp_json_root(const lp_json_doc *doc) { return doc ? &doc->root : NULL; }

lp_status lp_json_parse_file(const char *path, lp_json_doc **out) {
    *out = NULL;
    /* Mapping beats reading: the page cache is mapped (with fault-around)
     * instead of being copied into 11 MB of freshly faulted heap. Pipes and
     * other unmappable files are read whole instead. */
    lp_map m;
    if (lp_mmap(path, &m) == LP_OK) {
        lp_status st = lp_json_parse(m.data, m.size, path, out);
        lp_munmap(&m);
        return st;
    }
    char *text;
    size_t len;
    LP_TRY(lp_read_file(path, &text, &len));
    lp_status st = lp_json_parse(text, len, path, out);
    free(text);
    return st;
}

/* Linear in the number of members: fine for configs and headers. Callers that
 * look up many keys of a huge object (a 150k-entry vocab) should iterate once
 * and build their own hash table. */
const lp_json *lp_json_get(const lp_json *obj, const char *key) {
    if (!obj || obj->type != LP_JSON_OBJECT || !key) return NULL;
    size_t kl = strlen(key);
    for (int64_t i = 0; i < obj->n; i++)
        if (obj->key_lens[i] == kl && memcmp(obj->keys[i], key, kl) == 0) return &obj->items[i];
    return NULL;
}

double lp_json_num(const lp_json *v, double def) {
    return v && v->type == LP_JSON_NUMBER ? v->num : def;
}

int64_t lp_json_int(const lp_json *v, int64_t def) {
    if (!v || v->type != LP_JSON_NUMBER) return def;
    if (v->is_int) return v->i64;
    /* 4096.0 or 1e3 in a config still means an integer; 0.5 does not. The
     * range check is against +-2^63, both exactly representable as doubles. */
    if (v->num == floor(v->num) && v->num >= -9223372036854775808.0 && v->num < 9223372036854775808.0)
        return (int64_t)v->num;
    return def;
}

bool lp_json_bool(const lp_json *v, bool def) {
    return v && v->type == LP_JSON_BOOL ? v->boolean : def;
}

const char *lp_json_str(const lp_json *v, const char *def) {
    return v && v->type == LP_JSON_STRING ? v->str : def;
}
