/*
 * safetensors.c - safetensors reader (single file and sharded checkpoint) and
 * writer. Format and contract: see safetensors.h.
 *
 * What: lp_st_open maps one file and validates its header completely before
 *       handing out any pointer into it; lp_weights_open resolves a checkpoint
 *       directory (index + shards, or one model.safetensors); lp_st_writer
 *       writes a file that the Hugging Face reader accepts.
 * Why:  a checkpoint may be truncated, hand-edited or hostile. Every length
 *       and offset is checked against the real file size, so a bad file is a
 *       clear LP_ERR_FORMAT naming the file and the tensor, never a crash or a
 *       read past the mapping.
 * Design:
 *   - Reader: the 8-byte little-endian header length N is checked against
 *     the file size, the N header bytes are parsed with the strict JSON
 *     parser, then per tensor: known dtype, 0..LP_MAX_DIMS non-negative
 *     integer dims, data_offsets [begin, end] with begin <= end <= buffer
 *     size, and end - begin == prod(shape) * dtype size (computed with
 *     overflow checks). Tensors are then sorted by offset and checked for
 *     overlap. Gaps between tensors are accepted (other writers pad).
 *     Names and metadata strings point into the kept JSON document; tensor
 *     data points into the mapping (zero copies). A small open-addressing hash
 *     table (FNV-1a, power-of-two size, >= 2x the count) makes lookups O(1).
 *   - Sharded: model.safetensors.index.json's "weight_map" {tensor: shard}
 *     is read, every distinct shard is opened once, and every mapped tensor
 *     must exist in its shard. The checkpoint exposes exactly the mapped
 *     tensors, in weight_map order.
 *   - Writer: the Hugging Face (Rust) reader requires the tensors to tile the
 *     buffer with no gaps, so alignment cannot come from padding between
 *     tensors. The header is padded with spaces so the buffer starts at a
 *     multiple of 8; tensors whose byte size is a multiple of 8 are laid out
 *     first (each starts 8-aligned), then the rest by decreasing element size
 *     (each starts aligned to its element size). For real weights every
 *     tensor ends up 8-aligned. The header lists tensors in insertion order,
 *     with "__metadata__" first.
 *   Data pointers of files from other writers may be unaligned (old files
 *   did not pad the header): kernels should read weights through memcpy or
 *   convert rows, not cast to wider types blindly.
 */
#include "io/safetensors.h"

#include "core/fileio.h"
#include "core/status_impl.h"
#include "io/json.h"
#include "io/safetensors_impl.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The Rust reference rejects headers over 100 MB; so do we. */
#define LP_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

/* ---- dtypes ---- */

static const struct {
    const char *name;
    size_t size;
} k_dtypes[] = {
    [LP_DT_F32] = {"F32", 4},  [LP_DT_F16] = {"F16", 2}, [LP_DT_BF16] = {"BF16", 2},
    [LP_DT_F64] = {"F64", 8},  [LP_DT_I8] = {"I8", 1},   [LP_DT_U8] = {"U8", 1},
    [LP_DT_I16] = {"I16", 2},  [LP_DT_U16] = {"U16", 2}, [LP_DT_I32] = {"I32", 4},
    [LP_DT_U32] = {"U32", 4},  [LP_DT_I64] = {"I64", 8}, [LP_DT_U64] = {"U64", 8},
    [LP_DT_BOOL] = {"BOOL", 1},
};
#define LP_DT_COUNT ((int)(sizeof k_dtypes / sizeof k_dtypes[0]))

/* dtypes of the format that we do not handle (yet): LP_ERR_UNSUPPORTED, not
 * LP_ERR_FORMAT, because such a file is valid. */
static const char *const k_other_dtypes[] = {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3",
                                             "F6_E3M2", "F4",      "C64"};

size_t lp_dtype_size(lp_dtype dt) {
    return (int)dt >= 0 && (int)dt < LP_DT_COUNT ? k_dtypes[dt].size : 0;
}

const char *lp_dtype_name(lp_dtype dt) {
    return (int)dt >= 0 && (int)dt < LP_DT_COUNT ? k_dtypes[dt].name : "?";
}

/* ---- name -> index hash table (open addressing, linear probing) ---- */

typedef const char *(*name_at_fn)(const void *ctx, size_t i);

typedef struct {
    uint32_t *slot; /* index + 1; 0 = empty */
    size_t cap;     /* power of two, >= 2 * count */
} name_ix;

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool ix_init(name_ix *ix, size_t count) {
    size_t cap = 16;
    while (cap < 2 * count) cap *= 2;
    ix->slot = calloc(cap, sizeof *ix->slot);
    ix->cap = ix->slot ? cap : 0;
    return ix->slot != NULL;
}

static void ix_free(name_ix *ix) {
    free(ix->slot);
    ix->slot = NULL;
    ix->cap = 0;
}

/* Index of name, or -1. */
static int64_t ix_find(const name_ix *ix, const char *name, name_at_fn at, const void *ctx) {
    if (!ix->cap) return -1;
    size_t m = ix->cap - 1;
    for (size_t h = (size_t)hash_name(name) & m;; h = (h + 1) & m) {
        uint32_t s = ix->slot[h];
        if (!s) return -1;
        if (strcmp(at(ctx, s - 1), name) == 0) return (int64_t)s - 1;
    }
}

/* Inserts item i; returns the index of an existing item with the same name
 * (and inserts nothing), or -1. The table must have a free slot. */
static int64_t ix_insert(name_ix *ix, size_t i, name_at_fn at, const void *ctx) {
    const char *name = at(ctx, i);
    size_t m = ix->cap - 1;
    for (size_t h = (size_t)hash_name(name) & m;; h = (h + 1) & m) {
        uint32_t s = ix->slot[h];
        if (!s) {
            ix->slot[h] = (uint32_t)(i + 1);
            return -1;
        }
        if (strcmp(at(ctx, s - 1), name) == 0) return (int64_t)s - 1;
    }
}

/* ---- small helpers ---- */

static const char *json_type_name(const lp_json *v) {
    switch (v->type) {
    case LP_JSON_NULL: return "null";
    case LP_JSON_BOOL: return "boolean";
    case LP_JSON_NUMBER: return "number";
    case LP_JSON_STRING: return "string";
    case LP_JSON_ARRAY: return "array";
    case LP_JSON_OBJECT: return "object";
    }
    return "?";
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static bool mul_overflows(int64_t a, int64_t b, int64_t *r) { return __builtin_mul_overflow(a, b, r); }

/* ---- one file ---- */

struct lp_st_file {
    char *path;
    lp_map map;          /* owned mapping; zero when parsed from caller memory */
    lp_json_doc *header; /* owns tensor names and metadata strings */
    const lp_json *meta; /* "__metadata__" object or NULL */
    int64_t n;
    lp_tensor_view *t; /* n, in header order */
    name_ix ix;
};

static const char *st_name_at(const void *ctx, size_t i) {
    return ((const lp_st_file *)ctx)->t[i].name;
}

typedef struct {
    uint64_t begin, end;
    int64_t i;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Validates one tensor entry of the header and fills *t. */
static lp_status parse_tensor(const char *path, const char *name, const lp_json *e,
                              const unsigned char *buf, uint64_t bufsize, lp_tensor_view *t,
                              span *sp) {
    if (e->type != LP_JSON_OBJECT)
        return lp_fail(LP_ERR_FORMAT,
                       "%s: tensor '%s' is a JSON %s, expected an object with \"dtype\", "
                       "\"shape\" and \"data_offsets\"",
                       path, name, json_type_name(e));
    const lp_json *dt = lp_json_get(e, "dtype"), *shape = lp_json_get(e, "shape"),
                  *offs = lp_json_get(e, "data_offsets");
    if (!dt || dt->type != LP_JSON_STRING)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has %s \"dtype\", expected a string like \"BF16\"",
                       path, name, dt ? "a non-string" : "no");
    int k = 0;
    while (k < LP_DT_COUNT && strcmp(k_dtypes[k].name, dt->str) != 0) k++;
    if (k == LP_DT_COUNT) {
        for (size_t j = 0; j < sizeof k_other_dtypes / sizeof k_other_dtypes[0]; j++)
            if (strcmp(k_other_dtypes[j], dt->str) == 0)
                return lp_fail(LP_ERR_UNSUPPORTED,
                               "%s: tensor '%s' has dtype %s, which llmpress does not support "
                               "(expected F32, F16, BF16, F64 or an integer type)",
                               path, name, dt->str);
        return lp_fail(LP_ERR_FORMAT,
                       "%s: tensor '%s' has unknown dtype \"%.40s\", expected one of F32 F16 BF16 "
                       "F64 I8 U8 I16 U16 I32 U32 I64 U64 BOOL",
                       path, name, dt->str);
    }
    t->dtype = (lp_dtype)k;

    if (!shape || shape->type != LP_JSON_ARRAY)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has %s \"shape\", expected an array of integers",
                       path, name, shape ? "a non-array" : "no");
    if (shape->n > LP_MAX_DIMS)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has %lld dimensions, expected at most %d", path,
                       name, (long long)shape->n, LP_MAX_DIMS);
    t->ndim = (int)shape->n;
    t->numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        const lp_json *v = &shape->items[d];
        if (v->type != LP_JSON_NUMBER || !v->is_int || v->i64 < 0)
            return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' shape[%d] is %s%s, expected a non-negative integer",
                           path, name, d, v->type != LP_JSON_NUMBER ? "a JSON " : "",
                           v->type != LP_JSON_NUMBER ? json_type_name(v)
                           : v->is_int               ? "negative"
                                                     : "not an integer");
        t->shape[d] = v->i64;
        if (mul_overflows(t->numel, v->i64, &t->numel))
            return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has a shape whose element count overflows",
                           path, name);
    }
    for (int d = t->ndim; d < LP_MAX_DIMS; d++) t->shape[d] = 0;
    int64_t nbytes;
    if (mul_overflows(t->numel, (int64_t)k_dtypes[k].size, &nbytes))
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has a shape whose byte size overflows", path, name);

    if (!offs || offs->type != LP_JSON_ARRAY || offs->n != 2)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has %s \"data_offsets\", expected [begin, end]",
                       path, name, offs ? "malformed" : "no");
    for (int j = 0; j < 2; j++) {
        const lp_json *v = &offs->items[j];
        if (v->type != LP_JSON_NUMBER || !v->is_int || v->i64 < 0)
            return lp_fail(LP_ERR_FORMAT,
                           "%s: tensor '%s' data_offsets[%d] is not a non-negative integer, expected "
                           "[begin, end] byte offsets",
                           path, name, j);
    }
    uint64_t b = (uint64_t)offs->items[0].i64, e_ = (uint64_t)offs->items[1].i64;
    if (b > e_ || e_ > bufsize)
        return lp_fail(LP_ERR_FORMAT,
                       "%s: tensor '%s' data_offsets [%llu, %llu] out of range, expected 0 <= begin <= "
                       "end <= %llu (the data size) -- truncated file?",
                       path, name, (unsigned long long)b, (unsigned long long)e_,
                       (unsigned long long)bufsize);
    if (e_ - b != (uint64_t)nbytes) {
        char sh[160];
        fmt_shape(sh, sizeof sh, t->ndim, t->shape);
        return lp_fail(LP_ERR_FORMAT,
                       "%s: tensor '%s' data_offsets [%llu, %llu] span %llu bytes, expected %lld "
                       "(%s x shape %s)",
                       path, name, (unsigned long long)b, (unsigned long long)e_,
                       (unsigned long long)(e_ - b), (long long)nbytes, k_dtypes[k].name, sh);
    }
    t->name = name;
    t->nbytes = (size_t)nbytes;
    t->data = buf + b;
    sp->begin = b;
    sp->end = e_;
    return LP_OK;
}

static lp_status parse_metadata(const char *path, const lp_json *m) {
    if (m->type != LP_JSON_OBJECT)
        return lp_fail(LP_ERR_FORMAT, "%s: \"__metadata__\" is a JSON %s, expected an object of strings",
                       path, json_type_name(m));
    for (int64_t i = 0; i < m->n; i++)
        if (m->items[i].type != LP_JSON_STRING)
            return lp_fail(LP_ERR_FORMAT, "%s: \"__metadata__\" value of '%s' is a %s, expected a string",
                           path, m->keys[i], json_type_name(&m->items[i]));
    return LP_OK;
}

static lp_status parse_header(lp_st_file *f, const unsigned char *data, size_t size) {
    const char *path = f->path;
    if (size == 0)
        return lp_fail(LP_ERR_FORMAT,
                       "%s: file is empty, expected a safetensors file (8-byte header length, JSON "
                       "header, data)",
                       path);
    if (size < 8)
        return lp_fail(LP_ERR_FORMAT,
                       "%s: file is only %zu bytes, too short for the 8-byte header length of a "
                       "safetensors file",
                       path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | data[i]; /* little-endian */
    if (hlen > (uint64_t)size - 8)
        return lp_fail(LP_ERR_FORMAT,
                       "%s: header length %llu exceeds file size %zu — truncated or not a "
                       "safetensors file",
                       path, (unsigned long long)hlen, size);
    if (hlen > LP_ST_MAX_HEADER)
        return lp_fail(LP_ERR_FORMAT, "%s: header length %llu exceeds the format's limit of %llu bytes",
                       path, (unsigned long long)hlen, (unsigned long long)LP_ST_MAX_HEADER);
    if (hlen < 2)
        return lp_fail(LP_ERR_FORMAT, "%s: header length %llu is too small, expected a JSON object",
                       path, (unsigned long long)hlen);

    size_t nl = strlen(path) + 16;
    char *hname = malloc(nl);
    if (!hname) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    snprintf(hname, nl, "%s (header)", path);
    lp_status st = lp_json_parse((const char *)data + 8, (size_t)hlen, hname, &f->header);
    free(hname);
    if (st != LP_OK) return st;

    const lp_json *root = lp_json_root(f->header);
    if (root->type != LP_JSON_OBJECT)
        return lp_fail(LP_ERR_FORMAT, "%s: header is a JSON %s, expected an object of tensors", path,
                       json_type_name(root));
    const unsigned char *buf = data + 8 + hlen;
    const uint64_t bufsize = (uint64_t)size - 8 - hlen;

    int64_t ntensors = 0;
    for (int64_t i = 0; i < root->n; i++) {
        if (root->key_lens[i] == 12 && memcmp(root->keys[i], "__metadata__", 12) == 0) {
            if (f->meta)
                return lp_fail(LP_ERR_FORMAT, "%s: header has two \"__metadata__\" entries, expected one",
                               path);
            LP_TRY(parse_metadata(path, &root->items[i]));
            f->meta = &root->items[i];
        } else {
            ntensors++;
        }
    }
    f->t = calloc((size_t)ntensors + 1, sizeof *f->t);
    span *spans = calloc((size_t)ntensors + 1, sizeof *spans);
    if (!f->t || !spans || !ix_init(&f->ix, (size_t)ntensors)) {
        free(spans);
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory for %lld tensors", path, (long long)ntensors);
    }
    st = LP_OK;
    for (int64_t i = 0; i < root->n && st == LP_OK; i++) {
        const char *name = root->keys[i];
        if (root->items + i == f->meta) continue;
        if (strlen(name) != root->key_lens[i]) {
            st = lp_fail(LP_ERR_FORMAT, "%s: a tensor name contains a NUL character (\\u0000)", path);
            break;
        }
        lp_tensor_view *t = &f->t[f->n];
        st = parse_tensor(path, name, &root->items[i], buf, bufsize, t, &spans[f->n]);
        if (st != LP_OK) break;
        spans[f->n].i = f->n;
        f->n++;
        if (ix_insert(&f->ix, (size_t)(f->n - 1), st_name_at, f) >= 0)
            st = lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' appears twice in the header, expected unique names",
                         path, name);
    }
    if (st == LP_OK) {
        /* Overlap: sorted by begin, each non-empty tensor must start at or
         * after the furthest end seen so far. Empty tensors own no bytes. */
        qsort(spans, (size_t)f->n, sizeof *spans, span_cmp);
        const span *owner = NULL; /* the span reaching furthest so far */
        for (int64_t i = 0; i < f->n; i++) {
            const span *c = &spans[i];
            if (c->begin == c->end) continue;
            if (owner && c->begin < owner->end) {
                st = lp_fail(LP_ERR_FORMAT,
                             "%s: tensors '%s' [%llu, %llu] and '%s' [%llu, %llu] overlap, expected "
                             "disjoint data_offsets",
                             path, f->t[owner->i].name, (unsigned long long)owner->begin,
                             (unsigned long long)owner->end, f->t[c->i].name,
                             (unsigned long long)c->begin, (unsigned long long)c->end);
                break;
            }
            if (!owner || c->end > owner->end) owner = c;
        }
    }
    free(spans);
    return st;
}

lp_status lp_st_parse_impl(const void *data, size_t size, const char *path, lp_st_file **out) {
    *out = NULL;
    if (!path) path = "<memory>";
    lp_st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    }
    lp_status st = parse_header(f, data, size);
    if (st != LP_OK) {
        lp_st_close(f);
        return st;
    }
    *out = f;
    return LP_OK;
}

lp_status lp_st_open(const char *path, lp_st_file **out) {
    *out = NULL;
    lp_map m;
    LP_TRY(lp_mmap(path, &m));
    lp_status st = lp_st_parse_impl(m.data, m.size, path, out);
    if (st != LP_OK) {
        lp_munmap(&m);
        return st;
    }
    (*out)->map = m;
    return LP_OK;
}

void lp_st_close(lp_st_file *f) {
    if (!f) return;
    lp_munmap(&f->map);
    lp_json_free(f->header);
    ix_free(&f->ix);
    free(f->t);
    free(f->path);
    free(f);
}

int64_t lp_st_count(const lp_st_file *f) { return f ? f->n : 0; }

const lp_tensor_view *lp_st_at(const lp_st_file *f, int64_t i) {
    return f && i >= 0 && i < f->n ? &f->t[i] : NULL;
}

const lp_tensor_view *lp_st_find(const lp_st_file *f, const char *name) {
    if (!f || !name) return NULL;
    int64_t i = ix_find(&f->ix, name, st_name_at, f);
    return i >= 0 ? &f->t[i] : NULL;
}

const char *lp_st_meta(const lp_st_file *f, const char *key) {
    return f ? lp_json_str(lp_json_get(f->meta, key), NULL) : NULL;
}

const char *lp_st_path(const lp_st_file *f) { return f ? f->path : NULL; }

/* ---- a checkpoint: one file or an index with shards ---- */

struct lp_weights {
    int nfiles;
    lp_st_file **files;
    int64_t n;
    const lp_tensor_view **v; /* n, in weight_map (or file) order */
    int *file;                /* n: which of files holds v[i] */
    name_ix ix;
};

static const char *w_name_at(const void *ctx, size_t i) {
    return ((const lp_weights *)ctx)->v[i]->name;
}

/* Allocates the per-tensor arrays and the index for n tensors. */
static lp_status weights_alloc(lp_weights *w, int64_t n, const char *path) {
    w->v = calloc((size_t)n + 1, sizeof *w->v);
    w->file = calloc((size_t)n + 1, sizeof *w->file);
    if (!w->v || !w->file || !ix_init(&w->ix, (size_t)n))
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory for %lld tensors", path, (long long)n);
    return LP_OK;
}

static lp_status weights_single(lp_weights *w, const char *path) {
    w->files = calloc(1, sizeof *w->files);
    if (!w->files) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    LP_TRY(lp_st_open(path, &w->files[0]));
    w->nfiles = 1;
    const lp_st_file *f = w->files[0];
    LP_TRY(weights_alloc(w, f->n, path));
    for (int64_t i = 0; i < f->n; i++) {
        w->v[i] = &f->t[i];
        w->file[i] = 0;
        ix_insert(&w->ix, (size_t)i, w_name_at, w); /* names are unique within a file */
    }
    w->n = f->n;
    return LP_OK;
}

static lp_status weights_index(lp_weights *w, const char *dir, const char *index_path) {
    lp_json_doc *doc;
    LP_TRY(lp_json_parse_file(index_path, &doc));
    lp_status st = LP_OK;
    const lp_json *root = lp_json_root(doc);
    const lp_json *map = lp_json_get(root, "weight_map");
    const char **shard_names = NULL;
    if (!map || map->type != LP_JSON_OBJECT) {
        st = lp_fail(LP_ERR_FORMAT, "%s: no \"weight_map\" object, expected {\"weight_map\": {tensor: shard file}}",
                     index_path);
        goto done;
    }
    /* Distinct shard names, in order of first appearance; a checkpoint has a
     * few to a few hundred, so a linear scan with a last-hit shortcut is enough. */
    shard_names = calloc((size_t)map->n + 1, sizeof *shard_names);
    int *shard_of = calloc((size_t)map->n + 1, sizeof *shard_of);
    if (!shard_names || !shard_of) {
        free(shard_of);
        st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", index_path);
        goto done;
    }
    int nshards = 0, last = -1;
    for (int64_t i = 0; i < map->n && st == LP_OK; i++) {
        const lp_json *s = &map->items[i];
        if (s->type != LP_JSON_STRING || s->len == 0 || strlen(s->str) != s->len ||
            strlen(map->keys[i]) != map->key_lens[i]) {
            st = lp_fail(LP_ERR_FORMAT, "%s: weight_map entry '%s' is not a shard file name, expected a "
                         "non-empty string",
                         index_path, map->keys[i]);
            break;
        }
        if (last < 0 || strcmp(shard_names[last], s->str) != 0) {
            last = 0;
            while (last < nshards && strcmp(shard_names[last], s->str) != 0) last++;
            if (last == nshards) shard_names[nshards++] = s->str;
        }
        shard_of[i] = last;
    }
    if (st == LP_OK) {
        w->files = calloc((size_t)nshards + 1, sizeof *w->files);
        if (!w->files) st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", index_path);
    }
    for (int k = 0; k < nshards && st == LP_OK; k++) {
        char *sp = lp_path_join(dir, shard_names[k]);
        if (!sp) {
            st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", index_path);
        } else if (!lp_file_exists(sp)) {
            st = lp_fail(LP_ERR_IO, "%s: shard '%s' named in weight_map is missing (looked for %s)",
                         index_path, shard_names[k], sp);
        } else {
            st = lp_st_open(sp, &w->files[k]);
            if (st != LP_OK) st = lp_fail_ctx(st, "%s: shard '%s'", index_path, shard_names[k]);
            else w->nfiles = k + 1;
        }
        free(sp);
    }
    if (st == LP_OK) st = weights_alloc(w, map->n, index_path);
    for (int64_t i = 0; i < map->n && st == LP_OK; i++) {
        const lp_st_file *f = w->files[shard_of[i]];
        const lp_tensor_view *t = lp_st_find(f, map->keys[i]);
        if (!t) {
            st = lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' is mapped to shard '%s', but %s does not contain it",
                         index_path, map->keys[i], shard_names[shard_of[i]], lp_st_path(f));
            break;
        }
        w->v[i] = t;
        w->file[i] = shard_of[i];
        w->n = i + 1;
        if (ix_insert(&w->ix, (size_t)i, w_name_at, w) >= 0)
            st = lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' appears twice in weight_map, expected unique names",
                         index_path, map->keys[i]);
    }
    free(shard_of);
done:
    free(shard_names);
    /* Tensor names and views point into the shards' own headers, so the
     * index document is no longer needed. */
    lp_json_free(doc);
    return st;
}

lp_status lp_weights_open(const char *path, lp_weights **out) {
    *out = NULL;
    lp_weights *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    lp_status st;
    if (!lp_is_dir(path)) {
        st = lp_file_exists(path) ? weights_single(w, path)
                                  : lp_fail(LP_ERR_IO, "%s: no such file or directory, expected a "
                                            "checkpoint directory or a .safetensors file", path);
    } else {
        char *index = lp_path_join(path, "model.safetensors.index.json");
        char *single = lp_path_join(path, "model.safetensors");
        if (!index || !single)
            st = lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
        else if (lp_file_exists(index))
            st = weights_index(w, path, index);
        else if (lp_file_exists(single))
            st = weights_single(w, single);
        else
            st = lp_fail(LP_ERR_IO, "%s: neither model.safetensors.index.json nor model.safetensors is "
                         "in this directory, expected a Hugging Face checkpoint", path);
        free(index);
        free(single);
    }
    if (st != LP_OK) {
        lp_weights_close(w);
        return st;
    }
    *out = w;
    return LP_OK;
}

void lp_weights_close(lp_weights *w) {
    if (!w) return;
    for (int k = 0; k < w->nfiles; k++) lp_st_close(w->files[k]);
    free(w->files);
    free(w->v);
    free(w->file);
    ix_free(&w->ix);
    free(w);
}

const lp_tensor_view *lp_weights_find(const lp_weights *w, const char *name) {
    if (!w || !name) return NULL;
    int64_t i = ix_find(&w->ix, name, w_name_at, w);
    return i >= 0 ? w->v[i] : NULL;
}

int64_t lp_weights_count(const lp_weights *w) { return w ? w->n : 0; }

const lp_tensor_view *lp_weights_at(const lp_weights *w, int64_t i) {
    return w && i >= 0 && i < w->n ? w->v[i] : NULL;
}

const char *lp_weights_file_of(const lp_weights *w, const char *name) {
    if (!w || !name) return NULL;
    int64_t i = ix_find(&w->ix, name, w_name_at, w);
    return i >= 0 ? lp_st_path(w->files[w->file[i]]) : NULL;
}

const char *lp_weights_meta(const lp_weights *w, const char *key) {
    return w && w->nfiles ? lp_st_meta(w->files[0], key) : NULL;
}

/* ---- writing ---- */

typedef struct {
    char *name;
    lp_dtype dt;
    int ndim;
    int64_t shape[LP_MAX_DIMS];
    const void *data;
    size_t nbytes;
    size_t off; /* assigned by save */
} w_entry;

struct lp_st_writer {
    w_entry *e;
    size_t n, cap;
    name_ix ix;
    char **mk, **mv; /* metadata keys and values, nm of them */
    size_t nm, mcap;
};

static const char *wr_name_at(const void *ctx, size_t i) {
    return ((const lp_st_writer *)ctx)->e[i].name;
}

/* A growable byte buffer for the header; `oom` latches the first failure. */
typedef struct {
    char *p;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const void *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_fmt(sbuf *b, const char *fmt, long long v) {
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)k);
}

/* A JSON string literal: quotes, backslashes and control characters escaped;
 * other bytes copied (the caller has checked they are valid UTF-8). */
static void sb_json_str(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"') sb_put(b, "\\\"", 2);
        else if (*c == '\\') sb_put(b, "\\\\", 2);
        else if (*c < 0x20) sb_fmt(b, "\\u%04llx", (long long)*c);
        else sb_put(b, c, 1);
    }
    sb_put(b, "\"", 1);
}

/* Names become JSON strings, which must be valid UTF-8. Rather than keep a
 * second UTF-8 validator, quote the name and let the strict parser judge. */
static lp_status check_json_string(const char *what, const char *s) {
    sbuf b = {0};
    sb_json_str(&b, s);
    if (b.oom) {
        free(b.p);
        return lp_fail(LP_ERR_NOMEM, "safetensors writer: out of memory");
    }
    lp_json_doc *doc;
    lp_status st = lp_json_parse(b.p, b.n, what, &doc);
    free(b.p);
    lp_json_free(doc);
    if (st != LP_OK)
        return lp_fail(LP_ERR_ARG, "safetensors writer: %s '%.200s' is not valid UTF-8", what, s);
    return LP_OK;
}

lp_status lp_st_writer_init(lp_st_writer **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return lp_fail(LP_ERR_NOMEM, "safetensors writer: out of memory");
    if (!ix_init(&(*out)->ix, 8)) {
        free(*out);
        *out = NULL;
        return lp_fail(LP_ERR_NOMEM, "safetensors writer: out of memory");
    }
    return LP_OK;
}

void lp_st_writer_free(lp_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->e[i].name);
    for (size_t i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->e);
    free(w->mk);
    free(w->mv);
    ix_free(&w->ix);
    free(w);
}

lp_status lp_st_writer_add(lp_st_writer *w, const char *name, lp_dtype dt, int ndim,
                           const int64_t *shape, const void *data) {
    if (!name) return lp_fail(LP_ERR_ARG, "safetensors writer: NULL tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return lp_fail(LP_ERR_ARG, "safetensors writer: '__metadata__' is reserved, not a tensor name");
    if ((int)dt < 0 || (int)dt >= LP_DT_COUNT)
        return lp_fail(LP_ERR_ARG, "safetensors writer: tensor '%s' has invalid dtype %d", name, (int)dt);
    if (ndim < 0 || ndim > LP_MAX_DIMS || (ndim > 0 && !shape))
        return lp_fail(LP_ERR_ARG, "safetensors writer: tensor '%s' has %d dimensions, expected 0..%d",
                       name, ndim, LP_MAX_DIMS);
    int64_t numel = 1, nbytes;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0 || mul_overflows(numel, shape[d], &numel))
            return lp_fail(LP_ERR_ARG, "safetensors writer: tensor '%s' has bad shape[%d] = %lld", name,
                           d, (long long)shape[d]);
    }
    if (mul_overflows(numel, (int64_t)k_dtypes[dt].size, &nbytes))
        return lp_fail(LP_ERR_ARG, "safetensors writer: tensor '%s' is too large", name);
    if (nbytes > 0 && !data)
        return lp_fail(LP_ERR_ARG, "safetensors writer: tensor '%s' has NULL data", name);
    LP_TRY(check_json_string("tensor name", name));

    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        w_entry *ne = realloc(w->e, cap * sizeof *ne);
        if (!ne) return lp_fail(LP_ERR_NOMEM, "safetensors writer: out of memory");
        w->e = ne;
        w->cap = cap;
    }
    if (2 * (w->n + 1) > w->ix.cap) { /* keep the table at most half full */
        name_ix nix;
        if (!ix_init(&nix, 2 * (w->n + 1)))
            return lp_fail(LP_ERR_NOMEM, "safetensors writer: out of memory");
        for (size_t i = 0; i < w->n; i++) ix_insert(&nix, i, wr_name_at, w);
        ix_free(&w->ix);
        w->ix = nix;
    }
    w_entry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) return lp_fail(LP_ERR_NOMEM, "safetensors writer: out of memory");
    e->dt = dt;
    e->ndim = ndim;
    for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
    e->data = data;
    e->nbytes = (size_t)nbytes;
    if (ix_insert(&w->ix, w->n, wr_name_at, w) >= 0) {
        free(e->name);
        return lp_fail(LP_ERR_ARG, "safetensors writer: tensor '%s' added twice", name);
    }
    w->n++;
    return LP_OK;
}

lp_status lp_st_writer_meta(lp_st_writer *w, const char *key, const char *value) {
    if (!key || !value) return lp_fail(LP_ERR_ARG, "safetensors writer: NULL metadata key or value");
    LP_TRY(check_json_string("metadata key", key));
    LP_TRY(check_json_string("metadata value", value));
    char *v = strdup(value);
    if (!v) return lp_fail(LP_ERR_NOMEM, "safetensors writer: out of memory");
    for (size_t i = 0; i < w->nm; i++)
        if (strcmp(w->mk[i], key) == 0) { /* a repeated key replaces the value */
            free(w->mv[i]);
            w->mv[i] = v;
            return LP_OK;
        }
    if (w->nm == w->mcap) {
        size_t cap = w->mcap ? w->mcap * 2 : 8;
        char **nk = realloc(w->mk, cap * sizeof *nk);
        if (nk) w->mk = nk;
        char **nv = nk ? realloc(w->mv, cap * sizeof *nv) : NULL;
        if (nv) w->mv = nv;
        if (!nk || !nv) {
            free(v);
            return lp_fail(LP_ERR_NOMEM, "safetensors writer: out of memory");
        }
        w->mcap = cap;
    }
    if (!(w->mk[w->nm] = strdup(key))) {
        free(v);
        return lp_fail(LP_ERR_NOMEM, "safetensors writer: out of memory");
    }
    w->mv[w->nm++] = v;
    return LP_OK;
}

/* Buffer order: tensors whose size is a multiple of 8 first (stable), then
 * by decreasing element size (stable). See the Design note. */
static int layout_rank(const w_entry *e) {
    return e->nbytes % 8 == 0 ? 0 : 16 - (int)k_dtypes[e->dt].size;
}

static lp_status write_all(const lp_st_writer *w, const size_t *order, const sbuf *hdr,
                           lp_atomic_file *af) {
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)hdr->n >> (8 * i));
    LP_TRY(lp_atomic_write(af, len8, 8));
    LP_TRY(lp_atomic_write(af, hdr->p, hdr->n));
    for (size_t k = 0; k < w->n; k++) {
        const w_entry *e = &w->e[order[k]];
        LP_TRY(lp_atomic_write(af, e->data, e->nbytes));
    }
    return LP_OK;
}

lp_status lp_st_writer_save(lp_st_writer *w, const char *path) {
    size_t *order = malloc((w->n + 1) * sizeof *order);
    if (!order) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", path);
    /* Stable counting by rank (ranks 0 and 12..15). */
    size_t k = 0;
    for (int r = 0; r <= 16; r++)
        for (size_t i = 0; i < w->n; i++)
            if (layout_rank(&w->e[i]) == r) order[k++] = i;
    LP_ASSERT(k == w->n);
    size_t off = 0;
    for (k = 0; k < w->n; k++) {
        w->e[order[k]].off = off;
        off += w->e[order[k]].nbytes;
    }

    sbuf h = {0};
    sb_put(&h, "{", 1);
    if (w->nm) {
        sb_str(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < w->nm; i++) {
            if (i) sb_put(&h, ",", 1);
            sb_json_str(&h, w->mk[i]);
            sb_put(&h, ":", 1);
            sb_json_str(&h, w->mv[i]);
        }
        sb_put(&h, "}", 1);
    }
    for (size_t i = 0; i < w->n; i++) {
        const w_entry *e = &w->e[i];
        if (i || w->nm) sb_put(&h, ",", 1);
        sb_json_str(&h, e->name);
        sb_str(&h, ":{\"dtype\":\"");
        sb_str(&h, k_dtypes[e->dt].name);
        sb_str(&h, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) sb_fmt(&h, d ? ",%lld" : "%lld", (long long)e->shape[d]);
        sb_str(&h, "],\"data_offsets\":[");
        sb_fmt(&h, "%lld", (long long)e->off);
        sb_fmt(&h, ",%lld]}", (long long)(e->off + e->nbytes));
    }
    sb_put(&h, "}", 1);
    while (!h.oom && (8 + h.n) % 8 != 0) sb_put(&h, " ", 1); /* buffer starts 8-aligned */
    if (h.oom) {
        free(h.p);
        free(order);
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory building the header", path);
    }

    lp_atomic_file af;
    lp_status st = lp_atomic_open(path, &af);
    if (st == LP_OK) {
        st = write_all(w, order, &h, &af);
        if (st == LP_OK) st = lp_atomic_commit(&af);
        else lp_atomic_abort(&af);
    }
    free(h.p);
    free(order);
    return st;
}
