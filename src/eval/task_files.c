/*
 * task_files.c - the zero-shot task table and the task files' parsers.
 *
 * What: which tasks exist (name, file, format, delimiter, metrics), and the
 * parsing of their files into lp_task examples and requests (tasks.h gives
 * the formats and the conventions).
 * Why: task files come from elsewhere; a bad line must be a message naming
 * file:line and what is wrong (not JSON, a missing or mistyped key, gold out
 * of range, no choices, an empty choice, a truncated hellaswag item, a gold
 * line that is not 0..3), never a crash or a silently wrong score.
 * Design: the file is read whole and cut into lines; a .jsonl line is parsed
 * on its own by the strict JSON reader (io/json.h), its strings copied out.
 * Each request owns its context (query + delimiter) and continuation, built
 * here once, so the scorer (tasks.c) knows no format. Every string is checked
 * to be NUL-free UTF-8 here, where the line number is known, so tokenizing
 * cannot fail later. Parsing stops after `limit` examples.
 */
#include "llmpress/tasks.h"

#include "core/fileio.h"
#include "core/status_impl.h"
#include "io/json.h"

#include <stdlib.h>
#include <string.h>

typedef enum { FMT_CHOICE, FMT_HELLASWAG, FMT_WINOGRANDE, FMT_LAMBADA } task_format;

static const struct {
    const char *name, *file, *delim;
    task_format fmt;
    lp_task_type type;
} TASKS[] = {
    {"arc_easy", "arc_easy.jsonl", "\nAnswer: ", FMT_CHOICE, LP_TASK_CHOICE},
    {"arc_challenge", "arc_challenge.jsonl", "\nAnswer: ", FMT_CHOICE, LP_TASK_CHOICE},
    {"piqa", "piqa.jsonl", "\nAnswer: ", FMT_CHOICE, LP_TASK_CHOICE},
    {"boolq", "boolq.jsonl", "\nAnswer: ", FMT_CHOICE, LP_TASK_CHOICE},
    {"hellaswag", "hellaswag/hellaswag_val_full.txt", " ", FMT_HELLASWAG, LP_TASK_CHOICE},
    {"winogrande", "winogrande.jsonl", " ", FMT_WINOGRANDE, LP_TASK_PARTIAL},
    {"openbook_qa", "openbook_qa.jsonl", " ", FMT_CHOICE, LP_TASK_CHOICE},
    {"copa", "copa.jsonl", " ", FMT_CHOICE, LP_TASK_CHOICE},
    {"siqa", "siqa.jsonl", " ", FMT_CHOICE, LP_TASK_CHOICE},
    {"lambada_openai", "lambada_openai.jsonl", " ", FMT_LAMBADA, LP_TASK_LAMBADA},
};
enum { NTASKS = sizeof TASKS / sizeof TASKS[0] };

int lp_task_count(void) { return NTASKS; }
const char *lp_task_name(int i) { return i >= 0 && i < NTASKS ? TASKS[i].name : NULL; }
const char *lp_task_file(int i) { return i >= 0 && i < NTASKS ? TASKS[i].file : NULL; }
lp_task_type lp_task_type_of(int i) { return i >= 0 && i < NTASKS ? TASKS[i].type : LP_TASK_CHOICE; }

int lp_task_index(const char *name) {
    for (int i = 0; name && i < NTASKS; i++)
        if (!strcmp(TASKS[i].name, name)) return i;
    return -1;
}

/* ---- text helpers ---- */

int64_t lp_task_utf8_chars(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    int64_t n = 0;
    for (size_t i = 0; i < len; n++) {
        unsigned c = p[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) k = 1, cp = c & 0x1F; /* k continuation bytes follow */
        else if (c >= 0xE0 && c <= 0xEF) k = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) k = 3, cp = c & 0x07;
        else return -1;
        if (len - i <= k) return -1; /* bytes i .. i+k must exist */
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return -1;
            cp = cp << 6 | (p[i + j] & 0x3F);
        }
        /* overlong forms, surrogates and code points past U+10FFFF */
        if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return -1;
        i += k + 1;
    }
    return n;
}

/* ---- building a task ---- */

typedef struct {
    lp_task *t;
    int64_t cap_ex, cap_req;
    const char *path;
    const char *delim;
} builder;

static lp_status nomem(const builder *b) { return lp_fail(LP_ERR_NOMEM, "%s: out of memory while reading it", b->path); }

/* The check every string of a line passes: NUL-free valid UTF-8. */
static lp_status check_text(const builder *b, int64_t line, const char *what, const char *s, size_t len) {
    if (memchr(s, '\0', len))
        return lp_fail(LP_ERR_FORMAT, "%s:%lld: %s contains a NUL character", b->path, (long long)line, what);
    if (lp_task_utf8_chars(s, len) < 0)
        return lp_fail(LP_ERR_FORMAT, "%s:%lld: %s is not valid UTF-8", b->path, (long long)line, what);
    return LP_OK;
}

static char *concat(const char *a, size_t na, const char *b, size_t nb) {
    char *s = malloc(na + nb + 1);
    if (!s) return NULL;
    memcpy(s, a, na);
    memcpy(s + na, b, nb);
    s[na + nb] = '\0';
    return s;
}

static lp_status begin_example(builder *b, int64_t line, int64_t gold) {
    lp_task *t = b->t;
    if (t->n_examples == b->cap_ex) {
        int64_t cap = b->cap_ex ? 2 * b->cap_ex : 256;
        lp_task_example *e = realloc(t->examples, (size_t)cap * sizeof *e);
        if (!e) return nomem(b);
        t->examples = e;
        b->cap_ex = cap;
    }
    t->examples[t->n_examples++] = (lp_task_example){.line = line, .first = t->n_requests, .count = 0, .gold = gold};
    return LP_OK;
}

/* One request of the current example: context = ctx + the task's delimiter. */
static lp_status add_request(builder *b, const char *ctx, size_t nctx, const char *cont, size_t ncont, int64_t chars) {
    lp_task *t = b->t;
    if (t->n_requests == b->cap_req) {
        int64_t cap = b->cap_req ? 2 * b->cap_req : 1024;
        lp_task_request *r = realloc(t->requests, (size_t)cap * sizeof *r);
        if (!r) return nomem(b);
        t->requests = r;
        b->cap_req = cap;
    }
    lp_task_request *r = &t->requests[t->n_requests];
    r->context = concat(ctx, nctx, b->delim, strlen(b->delim));
    r->continuation = concat(cont, ncont, "", 0);
    r->chars = chars;
    if (!r->context || !r->continuation) {
        free(r->context);
        free(r->continuation);
        return nomem(b);
    }
    t->n_requests++;
    t->examples[t->n_examples - 1].count++;
    return LP_OK;
}

/* ---- .jsonl lines ---- */

/* A required string member. */
static lp_status get_string(const builder *b, int64_t line, const lp_json *obj, const char *key, const lp_json **out) {
    const lp_json *v = lp_json_get(obj, key);
    if (!v) return lp_fail(LP_ERR_FORMAT, "%s:%lld: missing key \"%s\"", b->path, (long long)line, key);
    if (v->type != LP_JSON_STRING)
        return lp_fail(LP_ERR_FORMAT, "%s:%lld: \"%s\" must be a string", b->path, (long long)line, key);
    *out = v;
    return check_text(b, line, key, v->str, v->len);
}

/* A required non-empty array of non-empty strings. */
static lp_status get_strings(const builder *b, int64_t line, const lp_json *obj, const char *key, const lp_json **out) {
    const lp_json *v = lp_json_get(obj, key);
    if (!v) return lp_fail(LP_ERR_FORMAT, "%s:%lld: missing key \"%s\"", b->path, (long long)line, key);
    if (v->type != LP_JSON_ARRAY)
        return lp_fail(LP_ERR_FORMAT, "%s:%lld: \"%s\" must be an array of strings", b->path, (long long)line, key);
    if (v->n == 0) return lp_fail(LP_ERR_FORMAT, "%s:%lld: \"%s\" is empty", b->path, (long long)line, key);
    for (int64_t i = 0; i < v->n; i++) {
        const lp_json *s = &v->items[i];
        if (s->type != LP_JSON_STRING)
            return lp_fail(LP_ERR_FORMAT, "%s:%lld: \"%s\"[%lld] must be a string", b->path, (long long)line, key,
                           (long long)i);
        /* An empty choice has no length for acc_norm (the harness divides by 0). */
        if (s->len == 0)
            return lp_fail(LP_ERR_FORMAT, "%s:%lld: \"%s\"[%lld] is an empty string", b->path, (long long)line, key,
                           (long long)i);
        char what[64];
        snprintf(what, sizeof what, "\"%s\"[%lld]", key, (long long)i);
        LP_TRY(check_text(b, line, what, s->str, s->len));
    }
    *out = v;
    return LP_OK;
}

static lp_status get_gold(const builder *b, int64_t line, const lp_json *obj, int64_t n, int64_t *gold) {
    const lp_json *v = lp_json_get(obj, "gold");
    if (!v) return lp_fail(LP_ERR_FORMAT, "%s:%lld: missing key \"gold\"", b->path, (long long)line);
    if (v->type != LP_JSON_NUMBER || !v->is_int)
        return lp_fail(LP_ERR_FORMAT, "%s:%lld: \"gold\" must be an integer", b->path, (long long)line);
    if (v->i64 < 0 || v->i64 >= n)
        return lp_fail(LP_ERR_FORMAT, "%s:%lld: \"gold\" is %lld, out of range: expected 0..%lld (%lld entries)",
                       b->path, (long long)line, (long long)v->i64, (long long)(n - 1), (long long)n);
    *gold = v->i64;
    return LP_OK;
}

static lp_status json_line(builder *b, task_format fmt, int64_t line, const char *s, size_t len) {
    char name[64];
    snprintf(name, sizeof name, "line%lld", (long long)line);
    lp_json_doc *doc = NULL;
    if (lp_json_parse(s, len, name, &doc) != LP_OK) {
        /* the reader says "line<L>:1:<col>: what, expected ..."; keep "<col>: ..." */
        const char *msg = lp_last_error(), *col = msg;
        size_t nl = strlen(name);
        if (!strncmp(msg, name, nl) && !strncmp(msg + nl, ":1:", 3)) col = msg + nl + 3;
        char why[512];
        snprintf(why, sizeof why, "%s", col);
        return lp_fail(LP_ERR_FORMAT, "%s:%lld: not valid JSON: column %s", b->path, (long long)line, why);
    }
    const lp_json *o = lp_json_root(doc);
    lp_status st = LP_OK;
    if (o->type != LP_JSON_OBJECT) {
        st = lp_fail(LP_ERR_FORMAT, "%s:%lld: expected a JSON object, found another value", b->path, (long long)line);
        goto done;
    }
    const lp_json *q, *c, *k;
    int64_t gold = 0, chars = 0;
    switch (fmt) {
    case FMT_CHOICE: /* {query, choices, gold}: one request per choice after the query */
        if ((st = get_string(b, line, o, "query", &q)) || (st = get_strings(b, line, o, "choices", &c)) ||
            (st = get_gold(b, line, o, c->n, &gold)) || (st = begin_example(b, line, gold)))
            goto done;
        for (int64_t i = 0; i < c->n && st == LP_OK; i++) {
            const lp_json *ch = &c->items[i];
            chars = lp_task_utf8_chars(ch->str, ch->len);
            st = add_request(b, q->str, q->len, ch->str, ch->len, chars);
        }
        break;
    case FMT_WINOGRANDE: /* {context_options, continuation, gold}: one continuation after each option */
        if ((st = get_strings(b, line, o, "context_options", &c)) ||
            (st = get_string(b, line, o, "continuation", &k)) || (st = get_gold(b, line, o, c->n, &gold)) ||
            (st = begin_example(b, line, gold)))
            goto done;
        if (k->len == 0) {
            st = lp_fail(LP_ERR_FORMAT, "%s:%lld: \"continuation\" is an empty string", b->path, (long long)line);
            goto done;
        }
        chars = lp_task_utf8_chars(k->str, k->len);
        for (int64_t i = 0; i < c->n && st == LP_OK; i++)
            st = add_request(b, c->items[i].str, c->items[i].len, k->str, k->len, chars);
        break;
    case FMT_LAMBADA: /* {context, continuation}: the last word after the text */
        if ((st = get_string(b, line, o, "context", &q)) || (st = get_string(b, line, o, "continuation", &k)) ||
            (st = begin_example(b, line, -1)))
            goto done;
        if (k->len == 0) {
            st = lp_fail(LP_ERR_FORMAT, "%s:%lld: \"continuation\" is an empty string", b->path, (long long)line);
            goto done;
        }
        st = add_request(b, q->str, q->len, k->str, k->len, lp_task_utf8_chars(k->str, k->len));
        break;
    case FMT_HELLASWAG:
        LP_ASSERT(0);
    }
done:
    lp_json_free(doc);
    return st;
}

/* ---- hellaswag: six lines an item ---- */

typedef struct {
    const char *s;
    size_t len;
} span;

/* One item: l[0..6) are its lines, l[i] being line `line + i` of the file. */
static lp_status hellaswag_item(builder *b, int64_t line, const span *l) {
    static const char *const what[6] = {"the context", "the gold index", "ending 0", "ending 1", "ending 2", "ending 3"};
    for (int i = 0; i < 6; i++) {
        if (l[i].len == 0)
            return lp_fail(LP_ERR_FORMAT, "%s:%lld: %s is an empty line (an item is 6 lines: context, gold index "
                           "0..3, 4 endings)", b->path, (long long)(line + i), what[i]);
        LP_TRY(check_text(b, line + i, what[i], l[i].s, l[i].len));
    }
    if (l[1].len != 1 || l[1].s[0] < '0' || l[1].s[0] > '3')
        return lp_fail(LP_ERR_FORMAT, "%s:%lld: the gold index is \"%.*s\", expected an integer 0..3 (an item is 6 "
                       "lines: context, gold index, 4 endings)", b->path, (long long)(line + 1),
                       (int)(l[1].len > 40 ? 40 : l[1].len), l[1].s);
    LP_TRY(begin_example(b, line, l[1].s[0] - '0'));
    for (int i = 2; i < 6; i++)
        LP_TRY(add_request(b, l[0].s, l[0].len, l[i].s, l[i].len, lp_task_utf8_chars(l[i].s, l[i].len)));
    return LP_OK;
}

/* ---- the file ---- */

lp_status lp_task_parse(const char *name, const char *text, size_t len, const char *path, int64_t limit,
                        lp_task **out) {
    *out = NULL;
    const int ti = lp_task_index(name);
    if (ti < 0) return lp_fail(LP_ERR_ARG, "unknown task '%s'", name ? name : "(null)");
    if (!path) path = TASKS[ti].file;
    lp_task *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory while reading it", path);
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = TASKS[ti].type;
    builder b = {.t = t, .path = t->path, .delim = TASKS[ti].delim};
    const task_format fmt = TASKS[ti].fmt;
    if (len >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3)) text += 3, len -= 3; /* a UTF-8 byte order mark */

    lp_status st = LP_OK;
    span item[6];
    int in_item = 0;          /* hellaswag: lines of the current item so far */
    int64_t item_line = 0;    /* its first line */
    int64_t line = 0;
    for (size_t pos = 0; pos < len && st == LP_OK && !(limit > 0 && t->n_examples >= limit);) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        span l = {text + pos, end - pos};
        pos = end + 1;
        line++;
        if (fmt == FMT_HELLASWAG) {
            if (l.len && l.s[l.len - 1] == '\r') l.len--;
            if (in_item == 0) item_line = line;
            item[in_item++] = l;
            if (in_item == 6) {
                st = hellaswag_item(&b, item_line, item);
                in_item = 0;
            }
        } else {
            size_t k = 0;
            while (k < l.len && (l.s[k] == ' ' || l.s[k] == '\t' || l.s[k] == '\r')) k++;
            if (k == l.len) continue; /* an empty line */
            st = json_line(&b, fmt, line, l.s, l.len);
        }
    }
    if (st == LP_OK && in_item > 0 && !(limit > 0 && t->n_examples >= limit))
        st = lp_fail(LP_ERR_FORMAT, "%s:%lld: the last item is truncated: %d of its 6 lines (context, gold index "
                     "0..3, 4 endings)", t->path, (long long)item_line, in_item);
    if (st == LP_OK && t->n_examples == 0)
        st = lp_fail(LP_ERR_FORMAT, "%s: no examples in the file", t->path);
    if (st != LP_OK) {
        lp_task_free(t);
        return st;
    }
    *out = t;
    return LP_OK;
}

lp_status lp_task_load_file(const char *name, const char *path, int64_t limit, lp_task **out) {
    *out = NULL;
    if (lp_task_index(name) < 0) return lp_fail(LP_ERR_ARG, "unknown task '%s'", name ? name : "(null)");
    char *text = NULL;
    size_t len = 0;
    if (lp_read_file(path, &text, &len) != LP_OK)
        return lp_fail_ctx(LP_ERR_IO, "task %s", name);
    lp_status st = lp_task_parse(name, text, len, path, limit, out);
    free(text);
    return st;
}

lp_status lp_task_load(const char *name, const char *dir, int64_t limit, lp_task **out) {
    *out = NULL;
    const int ti = lp_task_index(name);
    if (ti < 0) return lp_fail(LP_ERR_ARG, "unknown task '%s'", name ? name : "(null)");
    char *path = lp_path_join(dir, TASKS[ti].file);
    if (!path) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_task_load_file(name, path, limit, out);
    free(path);
    return st;
}

void lp_task_free(lp_task *t) {
    if (!t) return;
    for (int64_t i = 0; i < t->n_requests; i++) {
        free(t->requests[i].context);
        free(t->requests[i].continuation);
    }
    free(t->requests);
    free(t->examples);
    free(t->path);
    free(t);
}
