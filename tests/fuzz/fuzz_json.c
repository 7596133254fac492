/*
 * fuzz_json.c - libFuzzer harness for the JSON reader (io/json.c).
 *
 * Oracle, beyond "no crash, no sanitizer report": every accepted document is
 * walked (string lengths, NUL terminators, key arrays, int/double agreement),
 * written back out as JSON and parsed again, and the two trees must be equal.
 * That catches escapes or surrogate pairs decoded wrongly, and numbers the
 * parser accepted but could not have read correctly. Rejections must set an
 * error message naming the document.
 * Build and run: see docs/fuzzing.md.
 */
#include "core/status_impl.h"
#include "io/json.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void put_str(buf *b, const char *s, size_t len) {
    put(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(b, esc, 6);
        } else {
            put(b, &c, 1);
        }
    }
    put(b, "\"", 1);
}

static void walk_and_write(const lp_json *v, buf *b, int depth) {
    if (depth > 257) abort(); /* the parser promised at most 256 levels */
    char tmp[64];
    switch (v->type) {
    case LP_JSON_NULL: put(b, "null", 4); break;
    case LP_JSON_BOOL: put(b, v->boolean ? "true" : "false", v->boolean ? 4 : 5); break;
    case LP_JSON_NUMBER:
        if (v->is_int) {
            if ((double)v->i64 != v->num) abort();
            put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%s%lld", v->i64 == 0 && signbit(v->num) ? "-" : "",
                                         (long long)v->i64)); /* "-0" keeps its sign */
        } else {
            if (v->num != v->num || v->num - v->num != 0) abort(); /* NaN or inf accepted */
            /* %e keeps it a non-integer literal, so is_int survives the trip */
            put(b, tmp, (size_t)snprintf(tmp, sizeof tmp, "%.17e", v->num));
        }
        break;
    case LP_JSON_STRING:
        if (!v->str || v->str[v->len] != '\0') abort();
        put_str(b, v->str, v->len);
        break;
    case LP_JSON_ARRAY:
        if (v->n < 0 || (v->n && !v->items)) abort();
        put(b, "[", 1);
        for (int64_t i = 0; i < v->n; i++) {
            if (i) put(b, ",", 1);
            walk_and_write(&v->items[i], b, depth + 1);
        }
        put(b, "]", 1);
        break;
    case LP_JSON_OBJECT:
        if (v->n < 0 || (v->n && (!v->items || !v->keys || !v->key_lens))) abort();
        put(b, "{", 1);
        for (int64_t i = 0; i < v->n; i++) {
            if (i) put(b, ",", 1);
            if (v->keys[i][v->key_lens[i]] != '\0') abort();
            put_str(b, v->keys[i], v->key_lens[i]);
            put(b, ":", 1);
            walk_and_write(&v->items[i], b, depth + 1);
        }
        put(b, "}", 1);
        break;
    default: abort();
    }
}

static int same(const lp_json *a, const lp_json *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case LP_JSON_NULL: return 1;
    case LP_JSON_BOOL: return a->boolean == b->boolean;
    case LP_JSON_NUMBER:
        return a->num == b->num && signbit(a->num) == signbit(b->num) && a->is_int == b->is_int &&
               (!a->is_int || a->i64 == b->i64);
    case LP_JSON_STRING: return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    case LP_JSON_ARRAY:
    case LP_JSON_OBJECT:
        if (a->n != b->n) return 0;
        for (int64_t i = 0; i < a->n; i++) {
            if (a->type == LP_JSON_OBJECT &&
                (a->key_lens[i] != b->key_lens[i] || memcmp(a->keys[i], b->keys[i], a->key_lens[i])))
                return 0;
            if (!same(&a->items[i], &b->items[i])) return 0;
        }
        return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lp_json_doc *doc = NULL;
    lp_status st = lp_json_parse((const char *)data, size, "fuzz.json", &doc);
    if (st != LP_OK) {
        if (doc || strncmp(lp_last_error(), "fuzz.json:", 10) != 0) abort();
        return 0;
    }
    const lp_json *root = lp_json_root(doc);
    buf b = {0};
    walk_and_write(root, &b, 0);
    lp_json_doc *again = NULL;
    if (lp_json_parse(b.p, b.n, "rewritten.json", &again) != LP_OK) abort();
    if (!same(root, lp_json_root(again))) abort();
    lp_json_free(again);
    free(b.p);
    lp_json_free(doc);
    return 0;
}
