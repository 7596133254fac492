/*
 * test_json.c - the strict JSON reader: valid documents, escapes, surrogates,
 * numbers, every class of malformed input (LP_ERR_FORMAT with a
 * "<name>:<line>:<col>: ..., expected ..." message), nesting limits, and the
 * real 11 MB Qwen2.5 tokenizer.json.
 */
#include "core/status_impl.h"
#include "io/json.h"
#include "test.h"

#include <stdint.h>
#include <unistd.h>

static lp_json_doc *parse_ok(const char *text) {
    lp_json_doc *doc = NULL;
    lp_status st = lp_json_parse(text, strlen(text), "ok.json", &doc);
    CHECKF(st == LP_OK, "parsing %s: %s", text, lp_last_error());
    return st == LP_OK ? doc : NULL;
}

/* Malformed input of n bytes: must be LP_ERR_FORMAT, leave *out NULL, and
 * produce "bad.json:<line>:<col>: ... expected ..." naming the document. */
static void check_bad_n(const char *text, size_t n, const char *must_contain) {
    lp_json_doc *doc = (lp_json_doc *)1;
    lp_clear_error();
    lp_status st = lp_json_parse(text, n, "bad.json", &doc);
    CHECKF(st == LP_ERR_FORMAT, "input '%.*s' gave status %d", (int)n, text, (int)st);
    CHECKF(doc == NULL, "input '%.*s' left a doc", (int)n, text);
    const char *msg = lp_last_error();
    CHECKF(strncmp(msg, "bad.json:", 9) == 0 && strstr(msg, "expected"),
           "input '%.*s' gave message '%s'", (int)n, text, msg);
    if (must_contain)
        CHECKF(strstr(msg, must_contain) != NULL, "input '%.*s': message '%s' lacks '%s'", (int)n,
               text, msg, must_contain);
    if (st == LP_OK) lp_json_free(doc);
}
static void check_bad(const char *text, const char *must_contain) {
    check_bad_n(text, strlen(text), must_contain);
}

static void test_literals_and_structure(void) {
    lp_json_doc *d = parse_ok(" {\"a\": [true, false, null, 1, \"x\", {}, []], \"b\": {\"c\": -2}}\r\n\t");
    if (!d) return;
    const lp_json *r = lp_json_root(d);
    CHECK(r->type == LP_JSON_OBJECT && r->n == 2);
    CHECK(strcmp(r->keys[0], "a") == 0 && r->key_lens[0] == 1);
    const lp_json *a = lp_json_get(r, "a");
    CHECK(a && a->type == LP_JSON_ARRAY && a->n == 7);
    if (a && a->n == 7) {
        CHECK(a->items[0].type == LP_JSON_BOOL && a->items[0].boolean);
        CHECK(a->items[1].type == LP_JSON_BOOL && !a->items[1].boolean);
        CHECK(a->items[2].type == LP_JSON_NULL);
        CHECK(a->items[3].type == LP_JSON_NUMBER && a->items[3].is_int && a->items[3].i64 == 1);
        CHECK(a->items[4].type == LP_JSON_STRING && strcmp(a->items[4].str, "x") == 0);
        CHECK(a->items[5].type == LP_JSON_OBJECT && a->items[5].n == 0);
        CHECK(a->items[6].type == LP_JSON_ARRAY && a->items[6].n == 0);
    }
    CHECK(lp_json_int(lp_json_get(lp_json_get(r, "b"), "c"), 0) == -2);
    CHECK(lp_json_get(r, "zz") == NULL);
    CHECK(lp_json_get(a, "a") == NULL);  /* not an object */
    CHECK(lp_json_get(NULL, "a") == NULL);
    lp_json_free(d);

    /* Scalars at top level are documents too (RFC 8259). */
    const char *scalars[] = {"1", "\"s\"", "true", "null", " false "};
    for (size_t i = 0; i < sizeof scalars / sizeof *scalars; i++) lp_json_free(parse_ok(scalars[i]));

    /* Duplicate keys are kept; lookup returns the first. */
    d = parse_ok("{\"k\": 1, \"k\": 2}");
    if (d) {
        CHECK(lp_json_root(d)->n == 2);
        CHECK(lp_json_int(lp_json_get(lp_json_root(d), "k"), 0) == 1);
        lp_json_free(d);
    }
    /* A UTF-8 byte order mark is ignored. */
    lp_json_free(parse_ok("\xEF\xBB\xBF[1]"));
    lp_json_free(NULL); /* no-op */
}

static void test_strings(void) {
    lp_json_doc *d = parse_ok("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u0041\\u00e9\\u20AC\", "
                              "\"\\uD83D\\ude00\", \"a\\u0000b\", \"\", \"h\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"]");
    if (!d) return;
    const lp_json *r = lp_json_root(d);
    CHECK(r->n == 6);
    if (r->n == 6) {
        CHECK(r->items[0].len == 8 && memcmp(r->items[0].str, "\"\\/\b\f\n\r\t", 8) == 0);
        CHECK(strcmp(r->items[1].str, "A\xC3\xA9\xE2\x82\xAC") == 0);
        CHECK(strcmp(r->items[2].str, "\xF0\x9F\x98\x80") == 0 && r->items[2].len == 4); /* U+1F600 */
        CHECK(r->items[3].len == 3 && memcmp(r->items[3].str, "a\0b", 4) == 0);       /* NUL kept */
        CHECK(r->items[4].len == 0 && r->items[4].str[0] == '\0');
        CHECK(strcmp(r->items[5].str, "h\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80") == 0);
    }
    lp_json_free(d);

    /* Highest code point, both ways. */
    d = parse_ok("[\"\\uDBFF\\uDFFF\", \"\xF4\x8F\xBF\xBF\"]");
    if (d) {
        const lp_json *r2 = lp_json_root(d);
        CHECK(strcmp(r2->items[0].str, "\xF4\x8F\xBF\xBF") == 0);
        CHECK(strcmp(r2->items[1].str, "\xF4\x8F\xBF\xBF") == 0);
        lp_json_free(d);
    }
    /* Keys are decoded like strings. */
    d = parse_ok("{\"\\u006b\\n\": 1}");
    if (d) {
        CHECK(lp_json_get(lp_json_root(d), "k\n") != NULL);
        lp_json_free(d);
    }
}

static void test_numbers(void) {
    lp_json_doc *d = parse_ok("[0, -0, 123, -123, 9223372036854775807, -9223372036854775808,"
                              " 9223372036854775808, 1.5, -1.5e-3, 1E10, 1e+2, 0.1, 1e-400,"
                              " 123456789012345678901234567890, 4096.0, 2.5e0]");
    if (!d) return;
    const lp_json *r = lp_json_root(d), *it = r->items;
    CHECK(r->n == 16);
    if (r->n != 16) {
        lp_json_free(d);
        return;
    }
    CHECK(it[0].is_int && it[0].i64 == 0 && it[0].num == 0.0);
    CHECK(it[1].is_int && it[1].i64 == 0 && it[1].num == 0.0 && signbit(it[1].num)); /* -0 */
    CHECK(it[2].is_int && it[2].i64 == 123 && it[2].num == 123.0);
    CHECK(it[3].is_int && it[3].i64 == -123);
    CHECK(it[4].is_int && it[4].i64 == INT64_MAX);
    CHECK(it[5].is_int && it[5].i64 == INT64_MIN && it[5].num == -9223372036854775808.0);
    CHECK(!it[6].is_int && it[6].num == 9223372036854775808.0); /* 2^63 does not fit */
    CHECK(!it[7].is_int && it[7].num == 1.5);
    CHECK(!it[8].is_int && it[8].num == -1.5e-3);
    CHECK(!it[9].is_int && it[9].num == 1e10);
    CHECK(!it[10].is_int && it[10].num == 100.0); /* an exponent makes it not an integer literal */
    CHECK(it[11].num == 0.1);
    CHECK(it[12].num == 0.0); /* underflow is fine */
    CHECK(!it[13].is_int && fabs(it[13].num - 1.2345678901234568e29) < 1e14);
    CHECK(lp_json_int(&it[14], -1) == 4096);    /* integral double */
    CHECK(lp_json_int(&it[15], -1) == -1);      /* 2.5 is not an integer */
    CHECK(lp_json_int(&it[10], -1) == 100);
    CHECK(lp_json_num(&it[7], 0) == 1.5);
    CHECK(lp_json_num(NULL, 7.0) == 7.0);
    CHECK(lp_json_bool(&it[0], true) == true); /* wrong type -> default */
    CHECK(strcmp(lp_json_str(&it[0], "def"), "def") == 0);
    lp_json_free(d);

    /* A long literal goes through the heap copy. */
    char buf[400];
    snprintf(buf, sizeof buf, "0.%0300d1", 0);
    d = parse_ok(buf);
    if (d) {
        CHECK(lp_json_root(d)->num > 0 && lp_json_root(d)->num < 1e-299);
        lp_json_free(d);
    }
}

static void test_malformed(void) {
    /* Structure. */
    check_bad("", "end of input");
    check_bad("   \n ", "end of input");
    check_bad("{", NULL);
    check_bad("[", NULL);
    check_bad("[1,]", "trailing comma");
    check_bad("{\"a\":1,}", "trailing comma");
    check_bad("{a:1}", "member name");
    check_bad("{'a':1}", "member name");
    check_bad("[1 2]", "','");
    check_bad("{\"a\" 1}", "':'");
    check_bad("{\"a\":1 \"b\":2}", "','");
    check_bad("{\"a\"}", "':'");
    check_bad("{\"a\":}", "value");
    check_bad("[1]x", "end of input");
    check_bad("{\"a\":1}}", "end of input");
    check_bad("/*c*/1", NULL);
    check_bad("[1]//", NULL);
    check_bad("]", NULL);
    check_bad("\xEF\xBB\xBF", NULL); /* only a BOM */
    check_bad_n("[1,\0]", 5, "byte 0x00");
    /* Literals. */
    check_bad("tru", NULL);
    check_bad("nul", NULL);
    check_bad("falsey", "end of input");
    check_bad("True", NULL);
    check_bad("NaN", NULL);
    check_bad("Infinity", NULL);
    check_bad("-Infinity", "digit");
    /* Numbers. */
    check_bad("01", "leading zero");
    check_bad("-01", "leading zero");
    check_bad("-", "digit");
    check_bad("1.", "digit after '.'");
    check_bad(".5", NULL);
    check_bad("1e", "exponent");
    check_bad("1e+", "exponent");
    check_bad("+1", NULL);
    check_bad("0x10", NULL);
    check_bad("1e400", "out of range");
    check_bad("-1e400", "out of range");
    /* Strings. */
    check_bad("\"abc", "unterminated string");
    check_bad("\"abc\\", "unterminated string");
    check_bad("\"a\\x\"", "invalid escape");
    check_bad("\"a\\'\"", "invalid escape");
    check_bad("\"\\u12\"", "hex");
    check_bad("\"\\u12", "hex");
    check_bad("\"\\uZZZZ\"", "hex");
    check_bad("\"\\uD800\"", "lone high surrogate");
    check_bad("\"\\uDBFFx\"", "lone high surrogate");
    check_bad("\"\\uD800\\u0041\"", "lone high surrogate");
    check_bad("\"\\uD800\\uD800\"", "lone high surrogate");
    check_bad("\"\\uDC00\"", "lone low surrogate");
    check_bad("\"\\uDFFF\\uD800\"", "lone low surrogate");
    check_bad("\"a\nb\"", "control character");
    check_bad("\"\t\"", "control character");
    check_bad("\"\x01\"", "control character");
    check_bad_n("\"a\0\"", 4, "control character");
    /* Invalid UTF-8 inside strings. */
    check_bad("\"\xFF\"", "UTF-8");
    check_bad("\"\x80\"", "UTF-8");          /* stray continuation byte */
    check_bad("\"\xC0\xAF\"", "UTF-8");      /* overlong '/' */
    check_bad("\"\xC1\xBF\"", "UTF-8");      /* overlong */
    check_bad("\"\xE0\x80\xAF\"", "UTF-8");  /* overlong 3-byte */
    check_bad("\"\xF0\x80\x80\xAF\"", "UTF-8"); /* overlong 4-byte */
    check_bad("\"\xED\xA0\x80\"", "UTF-8");  /* encoded surrogate U+D800 */
    check_bad("\"\xF4\x90\x80\x80\"", "UTF-8"); /* U+110000 */
    check_bad("\"\xF5\x80\x80\x80\"", "UTF-8");
    check_bad("\"\xE2\x82\"", "UTF-8");      /* truncated sequence */
    check_bad("\"\xC3\"", "UTF-8");
    check_bad("\"\xC3", NULL);              /* truncated at end of input */
    check_bad("{\"\xFF\":1}", "UTF-8");      /* in a key */
    /* Non-ASCII outside strings. */
    check_bad("[\xC3\xA9]", "byte 0xC3");

    /* Line and column: 't' of "tru" is on line 2, column 8. */
    check_bad("{\n  \"a\": tru\n}", "bad.json:2:8:");
    /* Columns count characters, not bytes: "é" is one column. */
    check_bad("[\"\xC3\xA9\", x]", "bad.json:1:7:");
    check_bad("[1,\n\n  }", "bad.json:3:3:");

    /* Every proper prefix of a valid document is an error, never a crash. */
    const char *full = "{\"a\":[1,-2.5e3,\"x\\u00e9\\uD83D\\uDE00\",true,false,null,{}],\"b\":{\"c\":\"d\"}}";
    size_t n = strlen(full);
    for (size_t k = 0; k < n; k++) {
        lp_json_doc *d = NULL;
        lp_status st = lp_json_parse(full, k, "prefix.json", &d);
        CHECKF(st == LP_ERR_FORMAT && !d, "prefix of %zu bytes gave %d", k, (int)st);
        if (d) lp_json_free(d);
    }
    lp_json_free(parse_ok(full));
}

static void test_depth(void) {
    enum { N = 100000 };
    char *buf = malloc(2 * N + 1);
    if (!buf) return;
    /* 256 levels are fine, 257 are not. */
    for (int depth = 255; depth <= 257; depth++) {
        for (int i = 0; i < depth; i++) buf[i] = '[';
        for (int i = 0; i < depth; i++) buf[depth + i] = ']';
        lp_json_doc *d = NULL;
        lp_status st = lp_json_parse(buf, 2 * (size_t)depth, "deep.json", &d);
        if (depth <= 256) {
            CHECKF(st == LP_OK, "depth %d: %s", depth, lp_last_error());
        } else {
            CHECK(st == LP_ERR_FORMAT);
            CHECKF(strstr(lp_last_error(), "deep.json:1:257:") && strstr(lp_last_error(), "256"),
                   "%s", lp_last_error());
        }
        lp_json_free(d);
    }
    /* Objects count too, and a huge nesting attempt fails cleanly. */
    size_t k = 0;
    for (int i = 0; i < 300; i++) {
        memcpy(buf + k, "{\"a\":", 5);
        k += 5;
    }
    lp_json_doc *d = NULL;
    CHECK(lp_json_parse(buf, k, "deep.json", &d) == LP_ERR_FORMAT);
    memset(buf, '[', N);
    CHECK(lp_json_parse(buf, N, "deep.json", &d) == LP_ERR_FORMAT);
    free(buf);
}

static void test_big_arrays(void) {
    /* Growth of the scratch stack and arena: 200k numbers, nested arrays. */
    enum { N = 200000 };
    char *buf = malloc((size_t)N * 12 + 16);
    if (!buf) return;
    size_t k = 0;
    buf[k++] = '[';
    for (int i = 0; i < N; i++) k += (size_t)sprintf(buf + k, i ? ",[%d]" : "[%d]", i);
    buf[k++] = ']';
    lp_json_doc *d = NULL;
    CHECK_OK(lp_json_parse(buf, k, "big.json", &d));
    if (d) {
        const lp_json *r = lp_json_root(d);
        CHECK(r->n == N);
        int ok = 1;
        for (int i = 0; i < N && r->n == N; i++)
            ok &= r->items[i].type == LP_JSON_ARRAY && r->items[i].n == 1 && r->items[i].items[0].i64 == i;
        CHECK(ok);
        lp_json_free(d);
    }
    free(buf);
}

static void test_file(void) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/lp_test_json_%d.json", (int)getpid());
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"x\": 1,\n \"y\": [}\n", f);
    fclose(f);
    lp_json_doc *d = NULL;
    CHECK(lp_json_parse_file(path, &d) == LP_ERR_FORMAT);
    char want[96];
    snprintf(want, sizeof want, "%s:2:8:", path);
    CHECKF(strstr(lp_last_error(), want) != NULL, "%s", lp_last_error());
    unlink(path);
    CHECK(lp_json_parse_file(path, &d) == LP_ERR_IO);
    CHECKF(strstr(lp_last_error(), path) != NULL, "%s", lp_last_error());
    CHECK(d == NULL);
}

static void test_qwen_tokenizer(void) {
    const char *path = test_asset("tokenizers/qwen2.5/tokenizer.json");
    lp_json_doc *d = NULL;
    CHECK_OK(lp_json_parse_file(path, &d));
    if (!d) return;
    const lp_json *r = lp_json_root(d);
    const lp_json *model = lp_json_get(r, "model");
    const lp_json *vocab = lp_json_get(model, "vocab");
    const lp_json *merges = lp_json_get(model, "merges");
    CHECK(strcmp(lp_json_str(lp_json_get(model, "type"), ""), "BPE") == 0);
    CHECK(vocab && vocab->type == LP_JSON_OBJECT && vocab->n == 151643);
    CHECK(merges && merges->type == LP_JSON_ARRAY && merges->n == 151387);
    CHECK(lp_json_int(lp_json_get(vocab, "!"), -1) == 0);
    CHECK(lp_json_int(lp_json_get(vocab, "\xC4\xA0the"), -1) == 279); /* "Ġthe" */
    if (vocab && vocab->n == 151643) {
        CHECK(vocab->items[vocab->n - 1].i64 == 151642);
        CHECK(strcmp(vocab->keys[vocab->n - 1], "\xC3\xA2\xC2\xBD\xC4\xB9") == 0); /* "â½Ĺ" */
    }
    if (merges && merges->n > 0) {
        const lp_json *m0 = &merges->items[0];
        CHECK(m0->type == LP_JSON_ARRAY && m0->n == 2 && strcmp(m0->items[0].str, "\xC4\xA0") == 0);
    }
    const lp_json *added = lp_json_get(r, "added_tokens");
    CHECK(added && added->n == 22);
    if (added && added->n == 22) {
        CHECK(lp_json_int(lp_json_get(&added->items[0], "id"), 0) == 151643);
        CHECK(strcmp(lp_json_str(lp_json_get(&added->items[21], "content"), ""), "<|file_sep|>") == 0);
    }
    lp_json_free(d);
}

int main(void) {
    test_literals_and_structure();
    test_strings();
    test_numbers();
    test_malformed();
    test_depth();
    test_big_arrays();
    test_file();
    test_qwen_tokenizer();
    TEST_DONE();
}
