/*
 * fuzz_recipe.c - libFuzzer harness for the two parsers of method settings:
 * lp_settings_parse (a spec, "gptq bits=3 group=128 act-order") and the
 * CLI's recipe file reader (apply_recipe + make_settings in
 * tools/cmd_quantize.c, "method gptq\nbits 3\n# comment\n").
 *
 * The CLI's parser is static, so this file includes tools/cmd_quantize.c and
 * tools/llmpress.c (for the cli_* helpers, with its main renamed) unchanged;
 * the other commands are stubs. Their messages to stderr are captured in
 * memory (stderr is redefined before the include), so the oracle can read
 * them and the fuzzer's log stays quiet.
 *
 * Every input goes through both parsers. Oracle, beyond "no crash, no
 * ASan/UBSan report, no leak":
 *   - spec: a rejection is LP_ERR_ARG with a message and no settings; an
 *     accepted spec's description (lp_settings_describe) turned back into a
 *     spec parses to the same description and passes its checks again;
 *   - recipe: exit 0 prints nothing; any other exit (2, or 1 when out of
 *     memory) prints a message, naming the recipe when the reader refused
 *     it (make_settings' own messages name the setting); every message is
 *     printable text (printable ASCII, newlines, UTF-8 without C1 controls:
 *     a recipe's bytes must never reach the terminal raw); an accepted
 *     recipe's settings (make_settings) each hold the value its last line
 *     gave, and when they pass lp_quant_params_check (as the CLI then
 *     asks) their description round-trips like a spec's;
 *   - both: a spec of printable ASCII without '#' that lp_settings_parse
 *     accepts, written as a recipe ("method M", one "name value" per line),
 *     gives the same settings through the recipe reader.
 * Seeds: tests/fuzz/seeds/recipe/ (the recipes/ files and specs), dictionary
 * tests/fuzz/seeds/recipe.dict. Build and run: docs/fuzzing.md.
 */
#include <stdio.h>

static FILE *g_err; /* what the included CLI code writes to stderr, this input only */
#undef stderr
#define stderr g_err

#define main lp_cli_main
#include "../../tools/llmpress.c"
#undef main
#include "../../tools/cmd_quantize.c"
#undef stderr

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int cmd_run(int argc, char **argv) { return (void)argc, (void)argv, 2; }
int cmd_eval(int argc, char **argv) { return (void)argc, (void)argv, 2; }
int cmd_info(int argc, char **argv) { return (void)argc, (void)argv, 2; }
int cmd_tokenize(int argc, char **argv) { return (void)argc, (void)argv, 2; }
int cmd_bench(int argc, char **argv) { return (void)argc, (void)argv, 2; }
int cmd_suite(int argc, char **argv) { return (void)argc, (void)argv, 2; }
int cmd_export(int argc, char **argv) { return (void)argc, (void)argv, 2; }
int cmd_logprobs(int argc, char **argv) { return (void)argc, (void)argv, 2; }

#define RECIPE "fuzz.recipe"

#define FUZZ_CHECK(x)                                                                              \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "fuzz_recipe: check failed at line %d: %s (last error: %s)\n", __LINE__, #x, \
                    lp_last_error());                                                              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Printable text: ASCII 0x20..0x7e, '\n', or well-formed UTF-8 (no overlong
 * forms, surrogates, or C1 controls U+0080..U+009F). */
static int printable(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '\n' || (c >= 0x20 && c < 0x7f)) {
            i++;
            continue;
        }
        size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + len > n) return 0;
        uint32_t cp = c & (0x7fu >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        static const uint32_t lo[5] = {0, 0, 0xa0, 0x800, 0x10000}; /* 2 bytes: C1 and overlong out */
        if (cp < lo[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
        i += len;
    }
    return 1;
}

/* "M name=value ..." for s, from its description: what lp_settings_parse
 * must take back (a bool is written "name" when set, left out when not). */
static void settings_spec(const lp_settings *s, char *out, size_t n) {
    const lp_method *m = lp_settings_method(s);
    char d[2048], *save = NULL;
    lp_settings_describe(s, d, sizeof d);
    size_t k = (size_t)snprintf(out, n, "%s", lp_method_name(m));
    for (char *w = strtok_r(d, " ", &save); w && k < n; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        FUZZ_CHECK(eq);
        *eq = 0;
        const lp_option *o = lp_method_find_option(m, w);
        FUZZ_CHECK(o);
        if (o->type != LP_OPT_BOOL) k += (size_t)snprintf(out + k, n - k, " %s=%s", w, eq + 1);
        else if (strcmp(eq + 1, "0")) k += (size_t)snprintf(out + k, n - k, " %s", w);
    }
    FUZZ_CHECK(k < n);
}

/* s's description survives describe -> spec -> parse -> describe. */
static void check_roundtrip(const lp_settings *s) {
    char d1[2048], d2[2048], spec[2048];
    lp_settings_describe(s, d1, sizeof d1);
    settings_spec(s, spec, sizeof spec);
    lp_settings *again = NULL;
    lp_status st = lp_settings_parse(spec, &again);
    if (st != LP_OK) fprintf(stderr, "fuzz_recipe: '%s' from an accepted setting does not parse\n", spec);
    FUZZ_CHECK(st == LP_OK && again && lp_settings_method(again) == lp_settings_method(s));
    lp_settings_describe(again, d2, sizeof d2);
    if (strcmp(d1, d2)) fprintf(stderr, "fuzz_recipe: '%s' became '%s'\n", d1, d2);
    FUZZ_CHECK(!strcmp(d1, d2));
    lp_settings_free(again);
}

/* The recipe reader on text (len bytes, text[len] = 0, modified in place):
 * 0 with *ms (and *ps) set, or its exit code. err/errlen: what it printed. */
static int run_recipe(char *text, size_t len, lp_settings **ms, lp_settings **ps, char **err, size_t *errlen) {
    *ms = *ps = NULL;
    g_err = open_memstream(err, errlen);
    FUZZ_CHECK(g_err);
    qopts o = qopts_default();
    o.recipe = RECIPE;
    char **words = NULL;
    int rc = apply_recipe(&o, text, len, &words);
    const int read_ok = rc == 0;
    if (rc == 0) {
        for (int i = 0; i < o.nsets; i++) { /* every setting is some method's option, with a number if it takes one */
            const lp_option *opt = any_option(o.sets[i].name);
            FUZZ_CHECK(opt && (opt->type == LP_OPT_BOOL) == (o.sets[i].value == NULL));
        }
        char *argv[] = {"quantize", NULL};
        cli_args a = {1, 0, argv, "quantize"};
        rc = make_settings(&o, &a, ms, ps);
        if (rc == 0) {
            FUZZ_CHECK(*ms && (*ps != NULL) == o.awq_prescale);
            /* each option holds what its last line said */
            for (int i = o.nsets - 1; i >= 0; i--) {
                const char *name = o.sets[i].name, *v = o.sets[i].value;
                int later = 0;
                for (int j = i + 1; j < o.nsets; j++) later |= !strcmp(o.sets[j].name, name);
                if (later) continue;
                for (int k = 0; k < 2; k++) {
                    const lp_settings *s = k ? *ps : *ms;
                    const lp_option *opt = s ? lp_method_find_option(lp_settings_method(s), name) : NULL;
                    if (!opt || (opt->type != LP_OPT_BOOL && opt->type != LP_OPT_INT && opt->type != LP_OPT_FLOAT))
                        continue;
                    const double want = opt->type == LP_OPT_BOOL  ? 1.0
                                        : opt->type == LP_OPT_INT ? (double)strtoll(v, NULL, 10)
                                                                  : strtod(v, NULL);
                    FUZZ_CHECK(lp_settings_get(s, name) == want);
                }
            }
        } else {
            lp_settings_free(*ms);
            lp_settings_free(*ps);
            *ms = *ps = NULL;
        }
    }
    free_recipe(words);
    FUZZ_CHECK(fclose(g_err) == 0);
    g_err = NULL;
    if (rc == 0) {
        FUZZ_CHECK(*errlen == 0);
    } else {
        /* 1: out of memory, which names no file; the reader's errors name the
         * recipe, make_settings' (the CLI's, once merged with the command
         * line: an unknown method, a value out of range) name the setting */
        FUZZ_CHECK(rc == 1 || rc == 2);
        FUZZ_CHECK(*errlen > 0 && (*err)[*errlen - 1] == '\n');
        const char *want = read_ok ? "llmpress quantize: " : "llmpress quantize: recipe " RECIPE;
        FUZZ_CHECK(rc == 1 || !strncmp(*err, want, strlen(want)));
    }
    if (!printable((const unsigned char *)*err, *errlen)) {
        fprintf(stderr, "fuzz_recipe: unprintable message: %s\n", *err);
        abort();
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    FUZZ_CHECK(text);
    if (size) memcpy(text, data, size);
    text[size] = 0;

    /* 1. the text as a spec (up to its first NUL) */
    lp_settings *s = NULL;
    lp_status st = lp_settings_parse(text, &s);
    if (st != LP_OK) {
        FUZZ_CHECK(st == LP_ERR_ARG && !s && lp_last_error()[0]);
    } else {
        FUZZ_CHECK(s && lp_settings_check(s) == LP_OK);
        check_roundtrip(s);
        const lp_quant_params qp = {.method = s};
        if (lp_quant_params_check(&qp) == LP_OK) (void)lp_quant_needs_calib(&qp);
    }

    /* 2. the same bytes as a recipe file */
    lp_settings *ms, *ps;
    char *err = NULL;
    size_t errlen = 0;
    char *copy = malloc(size + 1);
    FUZZ_CHECK(copy);
    memcpy(copy, text, size + 1);
    if (run_recipe(copy, size, &ms, &ps, &err, &errlen) == 0) {
        /* the CLI checks the rules that span options (sym with 1 bit, ...) here */
        const lp_quant_params qp = {.method = ms, .prescale = ps};
        if (lp_quant_params_check(&qp) == LP_OK) {
            (void)lp_quant_needs_calib(&qp);
            check_roundtrip(ms);
            if (ps) check_roundtrip(ps);
        }
    }
    lp_settings_free(ms);
    lp_settings_free(ps);
    free(err);
    free(copy);

    /* 3. an accepted spec of plain text, written as a recipe, means the same
     * (words of any length: recipe-long-word, fixed, docs/fuzzing.md) */
    int plain = s != NULL;
    for (size_t i = 0; plain && text[i]; i++) {
        const unsigned char c = (unsigned char)text[i];
        plain = c != '#' && ((c >= 0x20 && c < 0x7f) || c == ' ' || c == '\t' || c == '\n');
    }
    if (plain) {
        const size_t cap = strlen(text) * 2 + 64;
        char *recipe = malloc(cap), *save = NULL;
        FUZZ_CHECK(recipe);
        size_t k = 0;
        for (char *w = strtok_r(text, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
            char *eq = k ? strchr(w, '=') : NULL;
            if (eq) *eq = ' ';
            k += (size_t)snprintf(recipe + k, cap - k, "%s%s\n", k ? "" : "method ", w);
        }
        FUZZ_CHECK(k < cap);
        char *rerr = NULL;
        size_t rerrlen = 0;
        int rc = run_recipe(recipe, k, &ms, &ps, &rerr, &rerrlen);
        if (rc != 0) fprintf(stderr, "fuzz_recipe: the spec parses, its recipe does not:\n%s", rerr);
        FUZZ_CHECK(rc == 0 && !ps && lp_settings_method(ms) == lp_settings_method(s));
        char d1[2048], d2[2048];
        lp_settings_describe(s, d1, sizeof d1);
        lp_settings_describe(ms, d2, sizeof d2);
        if (strcmp(d1, d2)) fprintf(stderr, "fuzz_recipe: spec gives '%s', recipe '%s'\n", d1, d2);
        FUZZ_CHECK(!strcmp(d1, d2));
        lp_settings_free(ms);
        free(rerr);
        free(recipe);
    }
    lp_settings_free(s);
    free(text);
    return 0;
}
