/*
 * gguf.c - GGUF reader and writer (llama.cpp / ggml's container). Format and
 * contract: see gguf.h.
 *
 * What: lp_gguf_open maps a .gguf file (lp_gguf_open_buffer takes the
 *       caller's bytes) and validates its whole header before handing out
 *       any pointer into it; typed getters read the key-value metadata;
 *       tensors are views into the mapping. lp_gguf_writer writes a version 3
 *       file that llama.cpp's gguf reader accepts.
 * Why:  a .gguf file may be truncated, hand-edited or hostile. Every count,
 *       length, type, dimension and offset is checked against the real file
 *       size before it is used, so a bad file is a clear LP_ERR_FORMAT naming
 *       the file and the key or tensor, never a crash, a read past the
 *       buffer or an allocation the file's size does not justify.
 * Design:
 *   - The ggml type table (one row per type id: name, elements per block,
 *     bytes per block) is the one place that sizes tensor data; the reader,
 *     the writer and lp_ggml_row_bytes all go through it. The sizes follow
 *     gguf-py's GGML_QUANT_SIZES (llama.cpp c392e50); every id ggml can
 *     size is in it, removed ids (4, 5, 31-33, 36-38) are not.
 *   - Reader, one forward pass with a cursor whose every read first checks
 *     that the bytes are there (`need`):
 *       1. magic, version (2 or 3; 1 and byte-swapped versions get a hint),
 *          n_tensors and n_kv. Each count is bounded by what the rest of the
 *          file could hold (a key-value pair takes at least 14 bytes, a
 *          tensor description 32), so the arrays allocated from the counts
 *          are a small multiple of the file size: a count of 2^60 in a
 *          100-byte file is refused before anything is allocated.
 *       2. n_kv pairs: non-empty key without NUL bytes, unique (hash set);
 *          value type 0..12; strings fit; arrays have a scalar or string
 *          element type (no arrays of arrays) and a count whose bytes fit.
 *          Values are not copied: each pair keeps a pointer to its bytes in
 *          the buffer; a string array also keeps the offset of each element
 *          (8 bytes per element, each of which takes >= 8 bytes of file).
 *       3. general.alignment, when present, must be a u32 and a power of two
 *          (default 32).
 *       4. n_tensors descriptions: name (< 64 bytes as ggml's GGML_MAX_NAME,
 *          no NUL, unique), n_dims 1..4, every ne >= 0 with an element count
 *          that fits int64, a known type, a row length ne[0] that is a
 *          multiple of the type's block, the byte size (overflow-checked).
 *       5. The data section starts at the header's end rounded up to the
 *          alignment. Each tensor's offset is a multiple of the alignment
 *          and [offset, offset + nbytes) lies inside the data section;
 *          tensors with bytes may not overlap (sorted by offset, each must
 *          start at or after the previous one's end). ggml's own reader is
 *          stricter (tensors in file order, back to back with padding); we
 *          accept any order and gaps, which are harmless, and accept a file
 *          whose last tensor is not followed by its padding.
 *     All integers are little-endian and assembled byte by byte, so nothing
 *     depends on the host's byte order or on the buffer's alignment.
 *   - Lookups by key or tensor name go through a small open-addressing hash
 *     set (FNV-1a, power-of-two size, at most half full).
 *   - Writer: each value is serialized to its bytes when it is set (so the
 *     caller's arrays may go away), tensors are kept by pointer. Save lays
 *     out: header, keys in insertion order, tensor descriptions with offsets
 *     rounded up to the alignment, zero padding to the alignment, then each
 *     tensor's bytes followed by zero padding to the alignment (as llama.cpp
 *     and gguf-py write), through lp_atomic_* (temporary file + rename).
 */
#include "io/gguf.h"

#include "core/fileio.h"
#include "core/status_impl.h"

#include <stdlib.h>
#include <string.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64   /* ggml's GGML_MAX_NAME: tensor names are shorter */
#define GGUF_HEADER_BYTES 24 /* magic, version, n_tensors, n_kv */
#define GGUF_MIN_KV 14     /* u64 key length, >= 1 key byte, u32 type, >= 1 value byte */
#define GGUF_MIN_TENSOR 32 /* u64 name length, u32 n_dims, >= 1 u64 ne, u32 type, u64 offset */
#define GGUF_N_VTYPES 13

/* ---- the ggml type table ---- */

/* Elements per block and bytes per block. The K types' blocks are 256
 * values; their bytes are the stored fields, e.g. Q4_K = d, dmin (f16 each)
 * + 12 bytes of 6-bit sub-block scales and mins + 128 bytes of 4-bit codes. */
static const lp_ggml_type_info k_types[] = {
    [LP_GGML_F32] = {"F32", 1, 4},
    [LP_GGML_F16] = {"F16", 1, 2},
    [LP_GGML_Q4_0] = {"Q4_0", 32, 2 + 16},          /* d + 32 nibbles */
    [LP_GGML_Q4_1] = {"Q4_1", 32, 2 + 2 + 16},      /* d, m + 32 nibbles */
    [LP_GGML_Q5_0] = {"Q5_0", 32, 2 + 4 + 16},      /* d + high bits + nibbles */
    [LP_GGML_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16},  /* d, m + high bits + nibbles */
    [LP_GGML_Q8_0] = {"Q8_0", 32, 2 + 32},          /* d + 32 int8 */
    [LP_GGML_Q8_1] = {"Q8_1", 32, 4 + 4 + 32},      /* d, s (f32) + 32 int8 */
    [LP_GGML_Q2_K] = {"Q2_K", 256, 2 + 2 + 16 + 64}, /* d, dmin + scales + 2-bit codes */
    [LP_GGML_Q3_K] = {"Q3_K", 256, 2 + 64 + 32 + 12}, /* d + low bits + high mask + scales */
    [LP_GGML_Q4_K] = {"Q4_K", 256, 2 + 2 + 128 + 12},
    [LP_GGML_Q5_K] = {"Q5_K", 256, 2 + 2 + 128 + 32 + 12},
    [LP_GGML_Q6_K] = {"Q6_K", 256, 2 + 128 + 64 + 16}, /* d + low 4 bits + high 2 bits + int8 scales */
    [LP_GGML_Q8_K] = {"Q8_K", 256, 4 + 256 + 32},      /* d (f32) + int8 codes + 16 int16 sums */
    [16] = {"IQ2_XXS", 256, 2 + 64},
    [17] = {"IQ2_XS", 256, 2 + 64 + 8},
    [18] = {"IQ3_XXS", 256, 2 + 64 + 32},
    [19] = {"IQ1_S", 256, 2 + 32 + 16},
    [LP_GGML_IQ4_NL] = {"IQ4_NL", 32, 2 + 16},
    [21] = {"IQ3_S", 256, 2 + 64 + 32 + 8 + 4},
    [22] = {"IQ2_S", 256, 2 + 64 + 16},
    [23] = {"IQ4_XS", 256, 2 + 2 + 128 + 4},
    [LP_GGML_I8] = {"I8", 1, 1},
    [LP_GGML_I16] = {"I16", 1, 2},
    [LP_GGML_I32] = {"I32", 1, 4},
    [LP_GGML_I64] = {"I64", 1, 8},
    [LP_GGML_F64] = {"F64", 1, 8},
    [29] = {"IQ1_M", 256, 32 + 16 + 8},
    [LP_GGML_BF16] = {"BF16", 1, 2},
    [34] = {"TQ1_0", 256, 2 + 52},
    [35] = {"TQ2_0", 256, 2 + 64},
};
#define N_TYPE_ROWS ((int)(sizeof k_types / sizeof k_types[0]))

lp_ggml_type_info lp_ggml_type_of(int t) {
    if (t < 0 || t >= N_TYPE_ROWS || !k_types[t].name) return (lp_ggml_type_info){NULL, 0, 0};
    return k_types[t];
}

int lp_ggml_type_by_name(const char *name) {
    if (!name) return -1;
    for (int t = 0; t < N_TYPE_ROWS; t++) {
        const char *a = k_types[t].name, *b = name;
        if (!a) continue;
        /* ASCII case folding by hand: tolower depends on the locale */
        while (*a && *b && (*a == *b || (*b >= 'a' && *b <= 'z' && *a == *b - 'a' + 'A'))) a++, b++;
        if (!*a && !*b) return t;
    }
    return -1;
}

uint64_t lp_ggml_row_bytes(int t, int64_t n) {
    lp_ggml_type_info ti = lp_ggml_type_of(t);
    if (!ti.name || n < 0 || n % ti.block != 0) return 0;
    uint64_t r;
    if (__builtin_mul_overflow((uint64_t)(n / ti.block), (uint64_t)ti.bytes, &r)) return 0;
    return r;
}

/* ---- value types ---- */

static const struct {
    const char *name;
    int size; /* bytes of one value; 0 for string and array */
} k_vtypes[GGUF_N_VTYPES] = {
    [LP_GGUF_U8] = {"u8", 1},     [LP_GGUF_I8] = {"i8", 1},        [LP_GGUF_U16] = {"u16", 2},
    [LP_GGUF_I16] = {"i16", 2},   [LP_GGUF_U32] = {"u32", 4},      [LP_GGUF_I32] = {"i32", 4},
    [LP_GGUF_F32] = {"f32", 4},   [LP_GGUF_BOOL] = {"bool", 1},    [LP_GGUF_STRING] = {"string", 0},
    [LP_GGUF_ARRAY] = {"array", 0}, [LP_GGUF_U64] = {"u64", 8},    [LP_GGUF_I64] = {"i64", 8},
    [LP_GGUF_F64] = {"f64", 8},
};

static bool vtype_is_int(lp_gguf_vtype t) {
    return t <= LP_GGUF_I32 || t == LP_GGUF_U64 || t == LP_GGUF_I64;
}

static uint64_t rd_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static int64_t sign_extend(uint64_t v, int bits) {
    if (bits == 64) {
        int64_t r;
        memcpy(&r, &v, sizeof r); /* two's complement, without an implementation-defined cast */
        return r;
    }
    const uint64_t m = (uint64_t)1 << (bits - 1); /* bits <= 32: every value fits int64 */
    return v & m ? (int64_t)v - (int64_t)(m << 1) : (int64_t)v;
}

/* An integer value of type t (an integer type or bool) at p. Returns 0 when
 * *out holds it, 1 when t is not an integer type, 2 for a u64 beyond INT64_MAX
 * (*u gets it). */
static int read_int(lp_gguf_vtype t, const uint8_t *p, int64_t *out, uint64_t *u) {
    if (t == LP_GGUF_BOOL) {
        *out = p[0] != 0;
        return 0;
    }
    if (!vtype_is_int(t)) return 1;
    const int size = k_vtypes[t].size;
    const uint64_t v = rd_le(p, size);
    const bool is_signed = t == LP_GGUF_I8 || t == LP_GGUF_I16 || t == LP_GGUF_I32 || t == LP_GGUF_I64;
    if (is_signed) {
        *out = sign_extend(v, 8 * size);
        return 0;
    }
    if (v > (uint64_t)INT64_MAX) {
        *u = v;
        return 2;
    }
    *out = (int64_t)v;
    return 0;
}

static double read_float(lp_gguf_vtype t, const uint8_t *p) {
    if (t == LP_GGUF_F32) {
        uint32_t b = (uint32_t)rd_le(p, 4);
        float f;
        memcpy(&f, &b, sizeof f);
        return f;
    }
    uint64_t b = rd_le(p, 8);
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/* A name from the file, for a message: at most 80 bytes, control bytes as
 * \xNN, so a hostile name cannot put escape sequences on a terminal. */
static const char *show(char buf[static 96], const char *s, uint64_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    uint64_t i = 0;
    for (; i < n && k < 80; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            buf[k++] = '\\';
            buf[k++] = 'x';
            buf[k++] = hex[c >> 4];
            buf[k++] = hex[c & 15];
        } else {
            buf[k++] = (char)c;
        }
    }
    if (i < n) { /* cut: k <= 83 here, so "..." and the NUL fit */
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

/* "a" or "an" before a type name ("an i32", "an f32", "an array", "a u8"). */
static const char *article(const char *word) { return strchr("aeiof", word[0]) ? "an" : "a"; }

/* ---- name -> index hash set ---- */

typedef struct {
    const char *name; /* NULL: empty slot */
    int64_t i;
} name_slot;

typedef struct {
    name_slot *slot;
    size_t cap; /* power of two, >= 2 x the entries (0: none yet) */
    size_t n;
} name_set;

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a 64 */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void set_free(name_set *s) {
    free(s->slot);
    memset(s, 0, sizeof *s);
}

/* Index of name, or -1. */
static int64_t set_find(const name_set *s, const char *name) {
    if (!s->cap) return -1;
    const size_t m = s->cap - 1;
    for (size_t h = (size_t)hash_name(name) & m;; h = (h + 1) & m) {
        if (!s->slot[h].name) return -1;
        if (strcmp(s->slot[h].name, name) == 0) return s->slot[h].i;
    }
}

/* Room for n entries in all (the table stays at most half full). */
static bool set_reserve(name_set *s, size_t n) {
    if (2 * n <= s->cap) return true;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    name_slot *slot = calloc(cap, sizeof *slot);
    if (!slot) return false;
    for (size_t j = 0; j < s->cap; j++) {
        if (!s->slot[j].name) continue;
        size_t h = (size_t)hash_name(s->slot[j].name) & (cap - 1);
        while (slot[h].name) h = (h + 1) & (cap - 1);
        slot[h] = s->slot[j];
    }
    free(s->slot);
    s->slot = slot;
    s->cap = cap;
    return true;
}

/* Adds name -> i (after set_reserve made room); returns the index already
 * under that name (and adds nothing), or -1. */
static int64_t set_add(name_set *s, const char *name, int64_t i) {
    LP_ASSERT(2 * (s->n + 1) <= s->cap);
    const size_t m = s->cap - 1;
    size_t h = (size_t)hash_name(name) & m;
    for (; s->slot[h].name; h = (h + 1) & m)
        if (strcmp(s->slot[h].name, name) == 0) return s->slot[h].i;
    s->slot[h] = (name_slot){name, i};
    s->n++;
    return -1;
}

/* ---- reading ---- */

typedef struct {
    char *key;          /* NUL-terminated copy */
    lp_gguf_vtype type;
    lp_gguf_vtype elem; /* arrays: the element type */
    uint64_t n;         /* strings: byte length; arrays: element count; else 1 */
    const uint8_t *v;   /* strings: the bytes; arrays: the first element; else the value */
    uint64_t *soff;     /* string arrays: offset from v of each element's u64 length */
} gguf_kv;

typedef struct {
    lp_gguf_tensor t; /* first, so a pointer to the entry is a pointer to t */
    char name[GGUF_MAX_NAME];
} gguf_ti;

struct lp_gguf {
    char *path;
    lp_map map; /* owned mapping; zero for lp_gguf_open_buffer */
    const uint8_t *buf;
    uint64_t size;
    uint32_t version, alignment;
    int64_t n_kv, n_tensors;
    gguf_kv *kv;
    gguf_ti *ti;
    name_set kix, tix;
};

/* The cursor over the header: every read goes through need(). */
typedef struct {
    const uint8_t *b;
    uint64_t size, pos;
    const char *path;
} cursor;

/* Fails unless n more bytes follow the cursor; `what` says what they are. */
static lp_status need(const cursor *c, uint64_t n, const char *what) {
    if (c->size - c->pos >= n) return LP_OK;
    return lp_fail(LP_ERR_FORMAT,
                   "%s: %s needs %llu bytes at offset %llu, past the end of the file (%llu bytes) -- "
                   "truncated file?",
                   c->path, what, (unsigned long long)n, (unsigned long long)c->pos,
                   (unsigned long long)c->size);
}

static lp_status get_u32(cursor *c, uint32_t *v, const char *what) {
    LP_TRY(need(c, 4, what));
    *v = (uint32_t)rd_le(c->b + c->pos, 4);
    c->pos += 4;
    return LP_OK;
}

static lp_status get_u64(cursor *c, uint64_t *v, const char *what) {
    LP_TRY(need(c, 8, what));
    *v = rd_le(c->b + c->pos, 8);
    c->pos += 8;
    return LP_OK;
}

/* A string: u64 length, then the bytes, which must fit the file. */
static lp_status get_str(cursor *c, const uint8_t **s, uint64_t *n, const char *what) {
    LP_TRY(get_u64(c, n, what));
    if (*n > c->size - c->pos)
        return lp_fail(LP_ERR_FORMAT,
                       "%s: %s says %llu bytes at offset %llu, past the end of the file (%llu bytes) -- "
                       "truncated file?",
                       c->path, what, (unsigned long long)*n, (unsigned long long)c->pos,
                       (unsigned long long)c->size);
    *s = c->b + c->pos;
    c->pos += *n;
    return LP_OK;
}

/* Key-value pair i. */
static lp_status parse_kv(lp_gguf *g, cursor *c, int64_t i) {
    char what[160], nb[96];
    snprintf(what, sizeof what, "key %lld: the name", (long long)i);
    const uint8_t *ks;
    uint64_t kn;
    LP_TRY(get_str(c, &ks, &kn, what));
    if (kn == 0) return lp_fail(LP_ERR_FORMAT, "%s: key %lld has an empty name", g->path, (long long)i);
    if (memchr(ks, 0, kn))
        return lp_fail(LP_ERR_FORMAT, "%s: key %lld '%s' contains a NUL byte", g->path, (long long)i,
                       show(nb, (const char *)ks, kn));
    gguf_kv *e = &g->kv[i];
    if (!(e->key = malloc(kn + 1))) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", g->path);
    memcpy(e->key, ks, kn);
    e->key[kn] = '\0';
    const char *key = show(nb, e->key, kn);
    int64_t prev = set_add(&g->kix, e->key, i);
    if (prev >= 0)
        return lp_fail(LP_ERR_FORMAT, "%s: key '%s' appears twice (keys %lld and %lld), expected unique keys",
                       g->path, key, (long long)prev, (long long)i);

    snprintf(what, sizeof what, "key '%s': the value type", key);
    uint32_t type;
    LP_TRY(get_u32(c, &type, what));
    if (type >= GGUF_N_VTYPES)
        return lp_fail(LP_ERR_FORMAT, "%s: key '%s' has unknown value type %u, expected 0..12 (u8 .. f64)",
                       g->path, key, type);
    e->type = (lp_gguf_vtype)type;
    e->n = 1;
    if (type == LP_GGUF_STRING) {
        snprintf(what, sizeof what, "key '%s': the string", key);
        return get_str(c, &e->v, &e->n, what);
    }
    if (type != LP_GGUF_ARRAY) {
        snprintf(what, sizeof what, "key '%s': the %s value", key, k_vtypes[type].name);
        LP_TRY(need(c, (uint64_t)k_vtypes[type].size, what));
        e->v = c->b + c->pos;
        c->pos += (uint64_t)k_vtypes[type].size;
        return LP_OK;
    }

    snprintf(what, sizeof what, "key '%s': the array's element type and count", key);
    uint32_t elem;
    LP_TRY(get_u32(c, &elem, what));
    LP_TRY(get_u64(c, &e->n, what));
    if (elem >= GGUF_N_VTYPES)
        return lp_fail(LP_ERR_FORMAT,
                       "%s: key '%s' is an array of unknown value type %u, expected 0..12 (u8 .. f64)",
                       g->path, key, elem);
    if (elem == LP_GGUF_ARRAY)
        return lp_fail(LP_ERR_FORMAT, "%s: key '%s' is an array of arrays, which GGUF readers do not accept",
                       g->path, key);
    e->elem = (lp_gguf_vtype)elem;
    e->v = c->b + c->pos;
    const uint64_t left = c->size - c->pos;
    const uint64_t esize = elem == LP_GGUF_STRING ? 8 : (uint64_t)k_vtypes[elem].size; /* at least */
    if (e->n > left / esize)
        return lp_fail(LP_ERR_FORMAT,
                       "%s: key '%s' is an array of %llu %s, which needs at least %llu bytes each, but only "
                       "%llu bytes remain in the file (%llu bytes) -- truncated or corrupt",
                       g->path, key, (unsigned long long)e->n, k_vtypes[elem].name,
                       (unsigned long long)esize, (unsigned long long)left, (unsigned long long)c->size);
    if (elem != LP_GGUF_STRING) {
        c->pos += e->n * esize;
        return LP_OK;
    }
    /* e->n <= left / 8, so this table is at most the size of the array's bytes. */
    if (!(e->soff = malloc((size_t)(e->n ? e->n : 1) * sizeof *e->soff)))
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory for key '%s' (%llu strings)", g->path, key,
                       (unsigned long long)e->n);
    for (uint64_t j = 0; j < e->n; j++) {
        e->soff[j] = c->pos - (uint64_t)(e->v - c->b);
        const uint64_t room = c->size - c->pos;
        uint64_t n = room >= 8 ? rd_le(c->b + c->pos, 8) : 0;
        if (room < 8 || n > room - 8) { /* get_str says what is wrong (a vocabulary has 10^5 strings:
                                         * the message is only formatted when needed) */
            const uint8_t *s;
            snprintf(what, sizeof what, "key '%s': string %llu of the array", key, (unsigned long long)j);
            return get_str(c, &s, &n, what);
        }
        c->pos += 8 + n;
    }
    return LP_OK;
}

/* general.alignment: absent (32), or a u32 power of two. */
static lp_status parse_alignment(lp_gguf *g) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    int64_t i = set_find(&g->kix, "general.alignment");
    if (i < 0) return LP_OK;
    const gguf_kv *e = &g->kv[i];
    if (e->type != LP_GGUF_U32)
        return lp_fail(LP_ERR_FORMAT, "%s: key 'general.alignment' is %s %s, expected a u32 power of two",
                       g->path, article(k_vtypes[e->type].name), k_vtypes[e->type].name);
    uint32_t a = (uint32_t)rd_le(e->v, 4);
    if (a == 0 || (a & (a - 1)) != 0)
        return lp_fail(LP_ERR_FORMAT, "%s: general.alignment is %u, expected a power of two (default 32)",
                       g->path, a);
    g->alignment = a;
    return LP_OK;
}

/* Tensor description i (name, shape, type, offset); the data is checked later. */
static lp_status parse_tensor(lp_gguf *g, cursor *c, int64_t i) {
    char what[160], nb[96];
    snprintf(what, sizeof what, "tensor %lld: the name", (long long)i);
    const uint8_t *ns;
    uint64_t nn;
    LP_TRY(get_str(c, &ns, &nn, what));
    if (nn >= GGUF_MAX_NAME)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor %lld's name '%s' is %llu bytes, expected fewer than %d "
                       "(ggml's GGML_MAX_NAME)",
                       g->path, (long long)i, show(nb, (const char *)ns, nn), (unsigned long long)nn,
                       GGUF_MAX_NAME);
    if (memchr(ns, 0, nn))
        return lp_fail(LP_ERR_FORMAT, "%s: tensor %lld's name '%s' contains a NUL byte", g->path, (long long)i,
                       show(nb, (const char *)ns, nn));
    gguf_ti *e = &g->ti[i];
    lp_gguf_tensor *t = &e->t;
    memcpy(e->name, ns, nn);
    e->name[nn] = '\0';
    t->name = e->name;
    const char *name = show(nb, e->name, nn);
    int64_t prev = set_add(&g->tix, e->name, i);
    if (prev >= 0)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' appears twice (tensors %lld and %lld), expected unique "
                       "names",
                       g->path, name, (long long)prev, (long long)i);

    snprintf(what, sizeof what, "tensor '%s': the number of dimensions", name);
    uint32_t n_dims;
    LP_TRY(get_u32(c, &n_dims, what));
    if (n_dims < 1 || n_dims > 4)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has %u dimensions, expected 1 to 4", g->path, name, n_dims);
    t->n_dims = (int)n_dims;
    int64_t nel = 1;
    for (int d = 0; d < 4; d++) {
        t->ne[d] = 1;
        if (d >= t->n_dims) continue;
        snprintf(what, sizeof what, "tensor '%s': ne[%d]", name, d);
        uint64_t v;
        LP_TRY(get_u64(c, &v, what));
        if (v > (uint64_t)INT64_MAX)
            return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has ne[%d] = %lld, expected >= 0", g->path, name, d,
                           (long long)sign_extend(v, 64));
        t->ne[d] = (int64_t)v;
        if (__builtin_mul_overflow(nel, t->ne[d], &nel))
            return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has a shape whose element count overflows int64",
                           g->path, name);
    }

    snprintf(what, sizeof what, "tensor '%s': the type", name);
    uint32_t type;
    LP_TRY(get_u32(c, &type, what));
    lp_ggml_type_info ti = lp_ggml_type_of(type > INT32_MAX ? -1 : (int)type);
    if (!ti.name)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has unknown ggml type %u, expected a type id such as 0 "
                       "(F32), 1 (F16), 8 (Q8_0) or 12 (Q4_K)",
                       g->path, name, type);
    t->type = (int)type;
    if (t->ne[0] % ti.block != 0)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' of type %s has rows of %lld elements, not a multiple of "
                       "its block of %d",
                       g->path, name, ti.name, (long long)t->ne[0], ti.block);
    uint64_t nbytes; /* (ne[0] / block) x bytes x ne[1] x ne[2] x ne[3] */
    bool over = __builtin_mul_overflow((uint64_t)(t->ne[0] / ti.block), (uint64_t)ti.bytes, &nbytes);
    for (int d = 1; d < 4; d++) over |= __builtin_mul_overflow(nbytes, (uint64_t)t->ne[d], &nbytes);
    if (over)
        return lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has a byte size that overflows 64 bits", g->path, name);
    t->nbytes = nbytes;

    snprintf(what, sizeof what, "tensor '%s': the data offset", name);
    return get_u64(c, &t->offset, what);
}

typedef struct {
    uint64_t begin, end;
    int64_t i;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Tensor data: aligned offsets inside the data section, no overlaps. */
static lp_status place_tensors(lp_gguf *g, uint64_t header_end) {
    if (g->n_tensors == 0) return LP_OK;
    const uint64_t a = g->alignment;
    const uint64_t data_start = header_end + (a - header_end % a) % a; /* header_end <= size: no overflow */
    if (data_start > g->size)
        return lp_fail(LP_ERR_FORMAT,
                       "%s: the data section starts at byte %llu (the header padded to %u), past the end of "
                       "the file (%llu bytes) -- truncated file?",
                       g->path, (unsigned long long)data_start, g->alignment, (unsigned long long)g->size);
    const uint64_t room = g->size - data_start;
    span *sp = malloc((size_t)g->n_tensors * sizeof *sp);
    if (!sp) return lp_fail(LP_ERR_NOMEM, "%s: out of memory", g->path);
    int64_t ns = 0;
    lp_status st = LP_OK;
    char nb[96];
    for (int64_t i = 0; i < g->n_tensors && st == LP_OK; i++) {
        lp_gguf_tensor *t = &g->ti[i].t;
        const char *name = show(nb, t->name, strlen(t->name));
        if (t->offset % a != 0) {
            st = lp_fail(LP_ERR_FORMAT, "%s: tensor '%s' has data offset %llu, not a multiple of the alignment %u",
                         g->path, name, (unsigned long long)t->offset, g->alignment);
        } else if (t->offset > room || t->nbytes > room - t->offset) {
            uint64_t b, e; /* in file offsets, unless those overflow 64 bits */
            if (__builtin_add_overflow(data_start, t->offset, &b) || __builtin_add_overflow(b, t->nbytes, &e))
                st = lp_fail(LP_ERR_FORMAT, "%s: tensor '%s': data at offset %llu + %llu bytes of the data section "
                             "(which starts at byte %llu) lies past the end of the file (%llu bytes)",
                             g->path, name, (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                             (unsigned long long)data_start, (unsigned long long)g->size);
            else
                st = lp_fail(LP_ERR_FORMAT, "%s: tensor '%s': data [%llu, %llu) lies past the end of the file (%llu "
                             "bytes)",
                             g->path, name, (unsigned long long)b, (unsigned long long)e,
                             (unsigned long long)g->size);
        } else {
            t->data = g->buf + data_start + t->offset;
            if (t->nbytes) sp[ns++] = (span){t->offset, t->offset + t->nbytes, i};
        }
    }
    if (st == LP_OK) {
        qsort(sp, (size_t)ns, sizeof *sp, span_cmp);
        for (int64_t k = 1; k < ns && st == LP_OK; k++) {
            /* sorted by begin: an overlap always involves a neighbour, because
             * every earlier span ended before its successor began */
            if (sp[k].begin < sp[k - 1].end) {
                char nb2[96];
                const lp_gguf_tensor *x = &g->ti[sp[k - 1].i].t, *y = &g->ti[sp[k].i].t;
                const uint64_t d = data_start; /* file offsets: everything here lies inside the file */
                st = lp_fail(LP_ERR_FORMAT, "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap, expected "
                             "disjoint data",
                             g->path, show(nb, x->name, strlen(x->name)), (unsigned long long)(d + sp[k - 1].begin),
                             (unsigned long long)(d + sp[k - 1].end), show(nb2, y->name, strlen(y->name)),
                             (unsigned long long)(d + sp[k].begin), (unsigned long long)(d + sp[k].end));
            }
        }
    }
    free(sp);
    return st;
}

static lp_status parse(lp_gguf *g) {
    cursor c = {g->buf, g->size, 0, g->path};
    if (g->size < 4)
        return lp_fail(LP_ERR_FORMAT, "%s: %llu bytes is too short for a GGUF file, which starts with 'GGUF' and a "
                       "24-byte header",
                       g->path, (unsigned long long)g->size);
    if (memcmp(g->buf, "GGUF", 4) != 0) {
        char nb[96];
        return lp_fail(LP_ERR_FORMAT, "%s: invalid magic '%s', expected 'GGUF' -- not a GGUF file", g->path,
                       show(nb, (const char *)g->buf, 4));
    }
    c.pos = 4;
    LP_TRY(get_u32(&c, &g->version, "the version"));
    if (g->version != 2 && g->version != 3) {
        const uint32_t v = g->version;
        if ((v & 0xffff) == 0 && ((v >> 24) == 2 || (v >> 24) == 3))
            return lp_fail(LP_ERR_FORMAT, "%s: GGUF version %u read little-endian: this is a big-endian GGUF file, "
                           "which llmpress does not read (expected version 2 or 3)",
                           g->path, v);
        return lp_fail(LP_ERR_FORMAT, "%s: GGUF version %u, expected 2 or 3%s", g->path, v,
                       v == 1 ? " (version 1 is obsolete: convert the model again with a current llama.cpp)" : "");
    }
    uint64_t n_tensors, n_kv;
    LP_TRY(get_u64(&c, &n_tensors, "the tensor count"));
    LP_TRY(get_u64(&c, &n_kv, "the key-value count"));
    /* Bound both counts by what the file could hold before allocating. */
    const uint64_t left = g->size - c.pos;
    if (n_kv > left / GGUF_MIN_KV)
        return lp_fail(LP_ERR_FORMAT, "%s: the header says %llu key-value pairs, but the %llu bytes after it hold "
                       "at most %llu -- truncated or corrupt file",
                       g->path, (unsigned long long)n_kv, (unsigned long long)left,
                       (unsigned long long)(left / GGUF_MIN_KV));
    if (n_tensors > left / GGUF_MIN_TENSOR)
        return lp_fail(LP_ERR_FORMAT, "%s: the header says %llu tensors, but the %llu bytes after it hold at most "
                       "%llu -- truncated or corrupt file",
                       g->path, (unsigned long long)n_tensors, (unsigned long long)left,
                       (unsigned long long)(left / GGUF_MIN_TENSOR));
    g->kv = calloc((size_t)n_kv + 1, sizeof *g->kv);
    g->ti = calloc((size_t)n_tensors + 1, sizeof *g->ti);
    if (!g->kv || !g->ti || !set_reserve(&g->kix, (size_t)n_kv) || !set_reserve(&g->tix, (size_t)n_tensors))
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory for %llu keys and %llu tensors", g->path,
                       (unsigned long long)n_kv, (unsigned long long)n_tensors);
    for (uint64_t i = 0; i < n_kv; i++) {
        g->n_kv = (int64_t)i + 1; /* so close() frees what this pair allocated */
        LP_TRY(parse_kv(g, &c, (int64_t)i));
    }
    LP_TRY(parse_alignment(g));
    if (n_tensors > (g->size - c.pos) / GGUF_MIN_TENSOR)
        return lp_fail(LP_ERR_FORMAT, "%s: the header says %llu tensors, but the %llu bytes after the key-value "
                       "pairs hold at most %llu -- truncated or corrupt file",
                       g->path, (unsigned long long)n_tensors, (unsigned long long)(g->size - c.pos),
                       (unsigned long long)((g->size - c.pos) / GGUF_MIN_TENSOR));
    for (uint64_t i = 0; i < n_tensors; i++) LP_TRY(parse_tensor(g, &c, (int64_t)i));
    g->n_tensors = (int64_t)n_tensors;
    return place_tensors(g, c.pos);
}

lp_status lp_gguf_open_buffer(const void *data, size_t size, const char *name, lp_gguf **out) {
    if (!out) return lp_fail(LP_ERR_ARG, "lp_gguf_open_buffer: NULL out");
    *out = NULL;
    if (!name) name = "<memory>";
    if (!data && size) return lp_fail(LP_ERR_ARG, "%s: NULL buffer of %zu bytes", name, size);
    lp_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name))) {
        free(g);
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory", name);
    }
    g->buf = data;
    g->size = size;
    lp_status st = parse(g);
    if (st != LP_OK) {
        lp_gguf_close(g);
        return st;
    }
    *out = g;
    return LP_OK;
}

lp_status lp_gguf_open(const char *path, lp_gguf **out) {
    if (!out) return lp_fail(LP_ERR_ARG, "lp_gguf_open: NULL out");
    *out = NULL;
    if (!path) return lp_fail(LP_ERR_ARG, "lp_gguf_open: NULL path");
    lp_map m;
    LP_TRY(lp_mmap(path, &m));
    lp_status st = lp_gguf_open_buffer(m.data, m.size, path, out);
    if (st != LP_OK) {
        lp_munmap(&m);
        return st;
    }
    (*out)->map = m;
    return LP_OK;
}

void lp_gguf_close(lp_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].soff);
    }
    free(g->kv);
    free(g->ti);
    set_free(&g->kix);
    set_free(&g->tix);
    lp_munmap(&g->map);
    free(g->path);
    free(g);
}

const char *lp_gguf_path(const lp_gguf *g) { return g ? g->path : NULL; }
uint32_t lp_gguf_version(const lp_gguf *g) { return g ? g->version : 0; }
uint32_t lp_gguf_alignment(const lp_gguf *g) { return g ? g->alignment : 0; }
uint64_t lp_gguf_file_size(const lp_gguf *g) { return g ? g->size : 0; }
int64_t lp_gguf_n_kv(const lp_gguf *g) { return g ? g->n_kv : 0; }

const char *lp_gguf_key(const lp_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_kv ? g->kv[i].key : NULL;
}

int64_t lp_gguf_find_key(const lp_gguf *g, const char *key) {
    return g && key ? set_find(&g->kix, key) : -1;
}

/* An out-of-range i gives (lp_gguf_vtype)-1, which is no type. */
lp_gguf_vtype lp_gguf_kv_type(const lp_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_kv ? g->kv[i].type : (lp_gguf_vtype)-1;
}

bool lp_gguf_has(const lp_gguf *g, const char *key) { return lp_gguf_find_key(g, key) >= 0; }

/* "u32", "array of string", ... for messages. */
static const char *kv_type_name(const gguf_kv *e, char buf[static 32]) {
    if (e->type != LP_GGUF_ARRAY) return k_vtypes[e->type].name;
    snprintf(buf, 32, "array of %s", k_vtypes[e->elem].name);
    return buf;
}

/* The pair under key, or NULL with *st set (absent: LP_ERR_FORMAT). */
static const gguf_kv *kv_lookup(const lp_gguf *g, const char *key, lp_status *st) {
    if (!g || !key) {
        *st = lp_fail(LP_ERR_ARG, "gguf: NULL %s", g ? "key" : "file");
        return NULL;
    }
    int64_t i = set_find(&g->kix, key);
    if (i < 0) {
        *st = lp_fail(LP_ERR_FORMAT, "%s: no key '%s' in the file", g->path, key);
        return NULL;
    }
    return &g->kv[i];
}

static lp_status wrong_type(const lp_gguf *g, const gguf_kv *e, const char *expected) {
    char tb[32], kb[96];
    const char *tn = kv_type_name(e, tb);
    return lp_fail(LP_ERR_FORMAT, "%s: key '%s' is %s %s, expected %s", g->path, show(kb, e->key, strlen(e->key)),
                   article(tn), tn, expected);
}

/* An integer scalar (not bool) as int64; a u64 beyond INT64_MAX in *big. */
static lp_status kv_int(const lp_gguf *g, const char *key, const gguf_kv **ep, int64_t *v, uint64_t *big,
                        bool *is_big) {
    lp_status st = LP_OK;
    const gguf_kv *e = kv_lookup(g, key, &st);
    if (!e) return st;
    *ep = e;
    if (e->type == LP_GGUF_BOOL || e->type == LP_GGUF_ARRAY) return wrong_type(g, e, "an integer");
    int r = read_int(e->type, e->v, v, big);
    if (r == 1) return wrong_type(g, e, "an integer");
    *is_big = r == 2;
    return LP_OK;
}

lp_status lp_gguf_get_u32(const lp_gguf *g, const char *key, uint32_t *out) {
    const gguf_kv *e = NULL;
    int64_t v = 0;
    uint64_t big = 0;
    bool is_big = false;
    LP_TRY(kv_int(g, key, &e, &v, &big, &is_big));
    if (is_big || v < 0 || v > (int64_t)UINT32_MAX) {
        char kb[96];
        if (is_big)
            return lp_fail(LP_ERR_FORMAT, "%s: key '%s' is %llu, which does not fit in a u32", g->path,
                           show(kb, e->key, strlen(e->key)), (unsigned long long)big);
        return lp_fail(LP_ERR_FORMAT, "%s: key '%s' is %lld, which does not fit in a u32", g->path,
                       show(kb, e->key, strlen(e->key)), (long long)v);
    }
    *out = (uint32_t)v;
    return LP_OK;
}

lp_status lp_gguf_get_i64(const lp_gguf *g, const char *key, int64_t *out) {
    const gguf_kv *e = NULL;
    int64_t v = 0;
    uint64_t big = 0;
    bool is_big = false;
    LP_TRY(kv_int(g, key, &e, &v, &big, &is_big));
    if (is_big) {
        char kb[96];
        return lp_fail(LP_ERR_FORMAT, "%s: key '%s' is %llu, which does not fit in an i64", g->path,
                       show(kb, e->key, strlen(e->key)), (unsigned long long)big);
    }
    *out = v;
    return LP_OK;
}

lp_status lp_gguf_get_f32(const lp_gguf *g, const char *key, float *out) {
    lp_status st = LP_OK;
    const gguf_kv *e = kv_lookup(g, key, &st);
    if (!e) return st;
    if (e->type != LP_GGUF_F32 && e->type != LP_GGUF_F64) return wrong_type(g, e, "an f32 or f64");
    *out = (float)read_float(e->type, e->v);
    return LP_OK;
}

lp_status lp_gguf_get_bool(const lp_gguf *g, const char *key, bool *out) {
    lp_status st = LP_OK;
    const gguf_kv *e = kv_lookup(g, key, &st);
    if (!e) return st;
    if (e->type != LP_GGUF_BOOL) return wrong_type(g, e, "a bool");
    *out = e->v[0] != 0; /* as ggml: any non-zero byte is true */
    return LP_OK;
}

lp_status lp_gguf_get_str(const lp_gguf *g, const char *key, lp_gguf_str *out) {
    lp_status st = LP_OK;
    const gguf_kv *e = kv_lookup(g, key, &st);
    if (!e) return st;
    if (e->type != LP_GGUF_STRING) return wrong_type(g, e, "a string");
    out->s = (const char *)e->v;
    out->n = e->n;
    return LP_OK;
}

lp_status lp_gguf_get_arr(const lp_gguf *g, const char *key, lp_gguf_vtype *elem, uint64_t *count) {
    lp_status st = LP_OK;
    const gguf_kv *e = kv_lookup(g, key, &st);
    if (!e) return st;
    if (e->type != LP_GGUF_ARRAY) return wrong_type(g, e, "an array");
    if (elem) *elem = e->elem;
    if (count) *count = e->n;
    return LP_OK;
}

/* Element i of the array under key, whose element type must pass ok(). */
static const gguf_kv *arr_elem(const lp_gguf *g, const char *key, uint64_t i, bool (*ok)(lp_gguf_vtype),
                               const char *expected, lp_status *st) {
    const gguf_kv *e = kv_lookup(g, key, st);
    if (!e) return NULL;
    char kb[96];
    if (e->type != LP_GGUF_ARRAY || !ok(e->elem)) {
        *st = wrong_type(g, e, expected);
        return NULL;
    }
    if (i >= e->n) {
        *st = lp_fail(LP_ERR_FORMAT, "%s: key '%s': index %llu is out of range (the array has %llu elements)",
                      g->path, show(kb, e->key, strlen(e->key)), (unsigned long long)i,
                      (unsigned long long)e->n);
        return NULL;
    }
    return e;
}

static bool elem_is_str(lp_gguf_vtype t) { return t == LP_GGUF_STRING; }
static bool elem_is_int(lp_gguf_vtype t) { return vtype_is_int(t) || t == LP_GGUF_BOOL; }
static bool elem_is_num(lp_gguf_vtype t) { return elem_is_int(t) || t == LP_GGUF_F32 || t == LP_GGUF_F64; }

lp_status lp_gguf_arr_str(const lp_gguf *g, const char *key, uint64_t i, lp_gguf_str *out) {
    lp_status st = LP_OK;
    const gguf_kv *e = arr_elem(g, key, i, elem_is_str, "an array of strings", &st);
    if (!e) return st;
    const uint8_t *p = e->v + e->soff[i];
    out->n = rd_le(p, 8);
    out->s = (const char *)p + 8;
    return LP_OK;
}

/* Integer and bool elements (bool as 0/1). */
lp_status lp_gguf_arr_int(const lp_gguf *g, const char *key, uint64_t i, int64_t *out) {
    lp_status st = LP_OK;
    const gguf_kv *e = arr_elem(g, key, i, elem_is_int, "an array of integers", &st);
    if (!e) return st;
    uint64_t big = 0;
    if (read_int(e->elem, e->v + i * (uint64_t)k_vtypes[e->elem].size, out, &big) == 2) {
        char kb[96];
        return lp_fail(LP_ERR_FORMAT, "%s: key '%s': element %llu is %llu, which does not fit in an i64", g->path,
                       show(kb, e->key, strlen(e->key)), (unsigned long long)i, (unsigned long long)big);
    }
    return LP_OK;
}

/* Any numeric (or bool) element as a double; a u64 converts directly. */
lp_status lp_gguf_arr_num(const lp_gguf *g, const char *key, uint64_t i, double *out) {
    lp_status st = LP_OK;
    const gguf_kv *e = arr_elem(g, key, i, elem_is_num, "an array of numbers", &st);
    if (!e) return st;
    const uint8_t *p = e->v + i * (uint64_t)k_vtypes[e->elem].size;
    if (e->elem == LP_GGUF_F32 || e->elem == LP_GGUF_F64) {
        *out = read_float(e->elem, p);
        return LP_OK;
    }
    int64_t v = 0;
    uint64_t big = 0;
    *out = read_int(e->elem, p, &v, &big) == 2 ? (double)big : (double)v;
    return LP_OK;
}

int64_t lp_gguf_n_tensors(const lp_gguf *g) { return g ? g->n_tensors : 0; }

const lp_gguf_tensor *lp_gguf_tensor_at(const lp_gguf *g, int64_t i) {
    return g && i >= 0 && i < g->n_tensors ? &g->ti[i].t : NULL;
}

const lp_gguf_tensor *lp_gguf_find_tensor(const lp_gguf *g, const char *name) {
    if (!g || !name) return NULL;
    int64_t i = set_find(&g->tix, name);
    return i >= 0 ? &g->ti[i].t : NULL;
}

/* ---- writing ---- */

typedef struct {
    char *key;
    lp_gguf_vtype type;
    uint8_t *val; /* the value's bytes as they follow the type in the file */
    size_t nval;
} w_kv;

typedef struct {
    char *name;
    int n_dims;
    int64_t ne[4];
    int type;
    const void *data;
    uint64_t nbytes;
} w_tensor;

struct lp_gguf_writer {
    w_kv *kv;
    size_t n_kv, cap_kv;
    w_tensor *t;
    size_t n_t, cap_t;
    name_set kix, tix;
    uint32_t alignment;
};

/* A growable byte buffer; `oom` latches the first failed allocation. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} bbuf;

static void bb_put(bbuf *b, const void *s, size_t n) {
    if (b->oom || n == 0) return;
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void bb_le(bbuf *b, uint64_t v, int n) {
    uint8_t tmp[8];
    for (int i = 0; i < n; i++) tmp[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, tmp, (size_t)n);
}

static void bb_str(bbuf *b, const char *s, size_t n) {
    bb_le(b, n, 8);
    bb_put(b, s, n);
}

lp_status lp_gguf_writer_init(lp_gguf_writer **out) {
    if (!out) return lp_fail(LP_ERR_ARG, "gguf writer: NULL out");
    *out = calloc(1, sizeof **out);
    if (!*out) return lp_fail(LP_ERR_NOMEM, "gguf writer: out of memory");
    (*out)->alignment = GGUF_DEFAULT_ALIGNMENT;
    return LP_OK;
}

void lp_gguf_writer_free(lp_gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->kv);
    free(w->t);
    set_free(&w->kix);
    set_free(&w->tix);
    free(w);
}

/* Adds key with the value bytes in b (taken over, also on failure). */
static lp_status add_kv(lp_gguf_writer *w, const char *key, lp_gguf_vtype type, bbuf *b) {
    lp_status st = LP_OK;
    char kb[96];
    if (!w || !key || !*key)
        st = lp_fail(LP_ERR_ARG, "gguf writer: %s", !w ? "NULL writer" : "a key must be a non-empty string");
    else if (b->oom)
        st = lp_fail(LP_ERR_NOMEM, "gguf writer: out of memory for key '%s'", show(kb, key, strlen(key)));
    else if (set_find(&w->kix, key) >= 0)
        st = lp_fail(LP_ERR_ARG, "gguf writer: key '%s' added twice", show(kb, key, strlen(key)));
    else if (strcmp(key, "general.alignment") == 0 && type != LP_GGUF_U32)
        st = lp_fail(LP_ERR_ARG, "gguf writer: general.alignment must be set with lp_gguf_set_u32");
    if (st == LP_OK && w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 16;
        w_kv *nk = realloc(w->kv, cap * sizeof *nk);
        if (!nk) st = lp_fail(LP_ERR_NOMEM, "gguf writer: out of memory");
        else w->kv = nk, w->cap_kv = cap;
    }
    char *k = st == LP_OK ? strdup(key) : NULL;
    if (st == LP_OK && (!k || !set_reserve(&w->kix, w->n_kv + 1)))
        st = lp_fail(LP_ERR_NOMEM, "gguf writer: out of memory");
    if (st != LP_OK) {
        free(k);
        free(b->p);
        return st;
    }
    set_add(&w->kix, k, (int64_t)w->n_kv);
    w->kv[w->n_kv++] = (w_kv){k, type, b->p, b->n};
    return LP_OK;
}

static lp_status set_scalar(lp_gguf_writer *w, const char *key, lp_gguf_vtype type, uint64_t bits) {
    bbuf b = {0};
    bb_le(&b, bits, k_vtypes[type].size);
    return add_kv(w, key, type, &b);
}

lp_status lp_gguf_set_u32(lp_gguf_writer *w, const char *key, uint32_t v) {
    if (w && key && strcmp(key, "general.alignment") == 0 && set_find(&w->kix, key) < 0) {
        if (v == 0 || (v & (v - 1)) != 0)
            return lp_fail(LP_ERR_ARG, "gguf writer: general.alignment %u is not a power of two", v);
        LP_TRY(set_scalar(w, key, LP_GGUF_U32, v));
        w->alignment = v;
        return LP_OK;
    }
    return set_scalar(w, key, LP_GGUF_U32, v);
}

lp_status lp_gguf_set_i32(lp_gguf_writer *w, const char *key, int32_t v) {
    return set_scalar(w, key, LP_GGUF_I32, (uint32_t)v);
}

lp_status lp_gguf_set_u64(lp_gguf_writer *w, const char *key, uint64_t v) {
    return set_scalar(w, key, LP_GGUF_U64, v);
}

lp_status lp_gguf_set_f32(lp_gguf_writer *w, const char *key, float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return set_scalar(w, key, LP_GGUF_F32, bits);
}

lp_status lp_gguf_set_bool(lp_gguf_writer *w, const char *key, bool v) {
    return set_scalar(w, key, LP_GGUF_BOOL, v ? 1 : 0);
}

lp_status lp_gguf_set_str(lp_gguf_writer *w, const char *key, const char *v) {
    if (!v) return lp_fail(LP_ERR_ARG, "gguf writer: NULL string for key '%s'", key ? key : "(null)");
    bbuf b = {0};
    bb_str(&b, v, strlen(v));
    return add_kv(w, key, LP_GGUF_STRING, &b);
}

/* Strings v[0..n); len[i] their byte lengths (len NULL: NUL-terminated). */
lp_status lp_gguf_set_arr_str(lp_gguf_writer *w, const char *key, const char *const *v, const size_t *len,
                              uint64_t n) {
    if (n && !v) return lp_fail(LP_ERR_ARG, "gguf writer: NULL strings for key '%s'", key ? key : "(null)");
    bbuf b = {0};
    bb_le(&b, LP_GGUF_STRING, 4);
    bb_le(&b, n, 8);
    for (uint64_t i = 0; i < n; i++) {
        if (!v[i] && (!len || len[i])) {
            free(b.p);
            return lp_fail(LP_ERR_ARG, "gguf writer: NULL string %llu for key '%s'", (unsigned long long)i,
                           key ? key : "(null)");
        }
        const size_t l = len ? len[i] : strlen(v[i]);
        bb_str(&b, l ? v[i] : "", l);
    }
    return add_kv(w, key, LP_GGUF_ARRAY, &b);
}

/* A numeric array of n elements of `size` bytes, little-endian. */
static lp_status set_arr_num(lp_gguf_writer *w, const char *key, lp_gguf_vtype elem, const void *v, uint64_t n) {
    if (n && !v) return lp_fail(LP_ERR_ARG, "gguf writer: NULL array for key '%s'", key ? key : "(null)");
    if (n > SIZE_MAX / 8) return lp_fail(LP_ERR_ARG, "gguf writer: array of %llu elements is too large",
                                         (unsigned long long)n);
    bbuf b = {0};
    bb_le(&b, elem, 4);
    bb_le(&b, n, 8);
    const uint32_t *u = v; /* i32 and f32 alike: 4-byte words */
    for (uint64_t i = 0; i < n && !b.oom; i++) {
        uint32_t x;
        memcpy(&x, u + i, sizeof x);
        bb_le(&b, x, 4);
    }
    return add_kv(w, key, LP_GGUF_ARRAY, &b);
}

lp_status lp_gguf_set_arr_i32(lp_gguf_writer *w, const char *key, const int32_t *v, uint64_t n) {
    return set_arr_num(w, key, LP_GGUF_I32, v, n);
}

lp_status lp_gguf_set_arr_f32(lp_gguf_writer *w, const char *key, const float *v, uint64_t n) {
    return set_arr_num(w, key, LP_GGUF_F32, v, n);
}

lp_status lp_gguf_add_tensor(lp_gguf_writer *w, const char *name, int n_dims, const int64_t *ne, int type,
                             const void *data) {
    if (!w || !name) return lp_fail(LP_ERR_ARG, "gguf writer: NULL %s", w ? "tensor name" : "writer");
    char nb[96];
    const char *sn = show(nb, name, strlen(name));
    if (strlen(name) >= GGUF_MAX_NAME)
        return lp_fail(LP_ERR_ARG, "gguf writer: tensor name '%s' is %zu bytes, expected fewer than %d", sn,
                       strlen(name), GGUF_MAX_NAME);
    if (n_dims < 1 || n_dims > 4 || !ne)
        return lp_fail(LP_ERR_ARG, "gguf writer: tensor '%s' has %d dimensions, expected 1 to 4", sn, n_dims);
    lp_ggml_type_info ti = lp_ggml_type_of(type);
    if (!ti.name) return lp_fail(LP_ERR_ARG, "gguf writer: tensor '%s' has unknown ggml type %d", sn, type);
    int64_t nel = 1;
    for (int d = 0; d < n_dims; d++)
        if (ne[d] < 0 || __builtin_mul_overflow(nel, ne[d], &nel))
            return lp_fail(LP_ERR_ARG, "gguf writer: tensor '%s' has bad ne[%d] = %lld", sn, d, (long long)ne[d]);
    if (ne[0] % ti.block != 0)
        return lp_fail(LP_ERR_ARG, "gguf writer: tensor '%s' of type %s has rows of %lld elements, not a multiple "
                       "of its block of %d",
                       sn, ti.name, (long long)ne[0], ti.block);
    uint64_t nbytes;
    bool over = __builtin_mul_overflow((uint64_t)(ne[0] / ti.block), (uint64_t)ti.bytes, &nbytes);
    for (int d = 1; d < n_dims; d++) over |= __builtin_mul_overflow(nbytes, (uint64_t)ne[d], &nbytes);
    if (over || nbytes > SIZE_MAX) return lp_fail(LP_ERR_ARG, "gguf writer: tensor '%s' is too large", sn);
    if (nbytes && !data) return lp_fail(LP_ERR_ARG, "gguf writer: tensor '%s' has NULL data", sn);
    if (set_find(&w->tix, name) >= 0) return lp_fail(LP_ERR_ARG, "gguf writer: tensor '%s' added twice", sn);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        w_tensor *nt = realloc(w->t, cap * sizeof *nt);
        if (!nt) return lp_fail(LP_ERR_NOMEM, "gguf writer: out of memory");
        w->t = nt;
        w->cap_t = cap;
    }
    char *copy = strdup(name);
    if (!copy || !set_reserve(&w->tix, w->n_t + 1)) {
        free(copy);
        return lp_fail(LP_ERR_NOMEM, "gguf writer: out of memory");
    }
    w_tensor *t = &w->t[w->n_t];
    *t = (w_tensor){copy, n_dims, {1, 1, 1, 1}, type, data, nbytes};
    for (int d = 0; d < n_dims; d++) t->ne[d] = ne[d];
    set_add(&w->tix, copy, (int64_t)w->n_t);
    w->n_t++;
    return LP_OK;
}

/* Zero bytes up to the next multiple of the alignment after `at` bytes. */
static lp_status write_pad(lp_atomic_file *af, uint64_t at, uint32_t alignment) {
    static const uint8_t zeros[4096];
    uint64_t pad = (alignment - at % alignment) % alignment;
    while (pad) {
        size_t k = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        LP_TRY(lp_atomic_write(af, zeros, k));
        pad -= k;
    }
    return LP_OK;
}

static lp_status write_file(const lp_gguf_writer *w, const bbuf *hdr, lp_atomic_file *af) {
    LP_TRY(lp_atomic_write(af, hdr->p, hdr->n));
    LP_TRY(write_pad(af, hdr->n, w->alignment));
    for (size_t i = 0; i < w->n_t; i++) {
        LP_TRY(lp_atomic_write(af, w->t[i].data, (size_t)w->t[i].nbytes));
        LP_TRY(write_pad(af, w->t[i].nbytes, w->alignment));
    }
    return LP_OK;
}

lp_status lp_gguf_writer_save(lp_gguf_writer *w, const char *path) {
    if (!w || !path) return lp_fail(LP_ERR_ARG, "gguf writer: NULL %s", w ? "path" : "writer");
    const uint64_t a = w->alignment;
    bbuf h = {0};
    bb_put(&h, "GGUF", 4);
    bb_le(&h, 3, 4);
    bb_le(&h, w->n_t, 8);
    bb_le(&h, w->n_kv, 8);
    for (size_t i = 0; i < w->n_kv; i++) {
        bb_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        bb_le(&h, w->kv[i].type, 4);
        bb_put(&h, w->kv[i].val, w->kv[i].nval);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const w_tensor *t = &w->t[i];
        bb_str(&h, t->name, strlen(t->name));
        bb_le(&h, (uint64_t)t->n_dims, 4);
        for (int d = 0; d < t->n_dims; d++) bb_le(&h, (uint64_t)t->ne[d], 8);
        bb_le(&h, (uint64_t)t->type, 4);
        bb_le(&h, off, 8);
        const uint64_t padded = t->nbytes + (a - t->nbytes % a) % a;
        if (padded < t->nbytes || __builtin_add_overflow(off, padded, &off)) {
            free(h.p);
            return lp_fail(LP_ERR_ARG, "%s: the tensors' data is too large for 64-bit offsets", path);
        }
    }
    if (h.oom) {
        free(h.p);
        return lp_fail(LP_ERR_NOMEM, "%s: out of memory building the GGUF header", path);
    }
    lp_atomic_file af;
    lp_status st = lp_atomic_open(path, &af);
    if (st == LP_OK) {
        st = write_file(w, &h, &af);
        if (st == LP_OK) st = lp_atomic_commit(&af); /* removes the temporary itself on failure */
        else lp_atomic_abort(&af);
    }
    free(h.p);
    return st;
}
