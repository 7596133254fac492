/*
 * json.h - a strict RFC 8259 JSON reader producing a read-only DOM.
 *
 * What: parses config.json, tokenizer.json and safetensors headers.
 * Why:  these files come from anywhere; the reader must reject malformed text
 *       with a message naming the file, line and column, never crash, and be
 *       fast enough for a 11 MB tokenizer.json (150k-entry vocab objects).
 * Design: one parse allocates every node and string from a single arena owned
 *       by the lp_json_doc; nodes are plain structs the caller walks directly.
 *       Strings are decoded (escapes, \uXXXX surrogate pairs -> UTF-8) and
 *       NUL-terminated, with an explicit length because "\u0000" is legal.
 *       Object members keep file order; duplicate keys are kept (lookups
 *       return the first). Nesting deeper than 256 levels is an error.
 */
#ifndef LP_JSON_H
#define LP_JSON_H

#include "llmpress/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LP_JSON_NULL,
    LP_JSON_BOOL,
    LP_JSON_NUMBER,
    LP_JSON_STRING,
    LP_JSON_ARRAY,
    LP_JSON_OBJECT,
} lp_json_type;

typedef struct lp_json lp_json;
struct lp_json {
    lp_json_type type;
    bool boolean;      /* LP_JSON_BOOL */
    bool is_int;       /* LP_JSON_NUMBER written as an integer that fits int64 */
    int64_t i64;       /* LP_JSON_NUMBER when is_int */
    double num;        /* LP_JSON_NUMBER (always set) */
    const char *str;   /* LP_JSON_STRING: decoded UTF-8, NUL-terminated */
    size_t len;        /* LP_JSON_STRING: bytes in str (excluding the NUL) */
    int64_t n;         /* LP_JSON_ARRAY / LP_JSON_OBJECT: number of children */
    lp_json *items;    /* children, n of them */
    const char **keys; /* LP_JSON_OBJECT: member names, n of them (NUL-terminated) */
    size_t *key_lens;  /* LP_JSON_OBJECT: byte length of each key */
};

typedef struct lp_json_doc lp_json_doc;

/* Parse len bytes of text. `name` (a file path or "<header>") is used in error
 * messages only. On success *out owns every node; free with lp_json_free. */
lp_status lp_json_parse(const char *text, size_t len, const char *name, lp_json_doc **out);
void lp_json_free(lp_json_doc *doc); /* NULL is a no-op */
const lp_json *lp_json_root(const lp_json_doc *doc);

/* Read and parse a whole file. */
lp_status lp_json_parse_file(const char *path, lp_json_doc **out);

/* Member lookup by key; NULL when obj is NULL, not an object, or lacks key. */
const lp_json *lp_json_get(const lp_json *obj, const char *key);

/* Typed accessors for optional config values: return def when v is NULL or
 * JSON null; otherwise the value, or def if the type does not fit. */
double lp_json_num(const lp_json *v, double def);
int64_t lp_json_int(const lp_json *v, int64_t def);
bool lp_json_bool(const lp_json *v, bool def);
const char *lp_json_str(const lp_json *v, const char *def);

#endif
