/*
 * fuzz_gguf.c - libFuzzer harness for the GGUF reader (io/gguf.h).
 *
 * Feeds the fuzzer's bytes to lp_gguf_open_buffer, the same validation that
 * lp_gguf_open runs on a mapped file (no temporary files), from an exactly
 * sized heap copy so ASan sees any read past its end. Oracle, beyond "no
 * crash, no sanitizer report, no leak":
 *   - a rejection is LP_ERR_FORMAT (or LP_ERR_NOMEM), leaves no handle and
 *     names the file ("fuzz.gguf");
 *   - an accepted file has version 2 or 3, a power-of-two alignment and the
 *     input's size; every key is non-empty, found again by name, and readable
 *     through the getters that fit its type (each string and array element
 *     lies inside the input and every byte of it is read), while the getters
 *     that do not fit refuse it with LP_ERR_FORMAT; an index past an array's
 *     end is refused;
 *   - every tensor has a name under 64 bytes found again by name, 1..4
 *     dimensions (unused ones 1), a known type whose block divides ne[0],
 *     nbytes = row bytes x ne[1] x ne[2] x ne[3], an offset that is a multiple
 *     of the alignment, data inside the input at the same data-section start
 *     as every other tensor, no overlap with another tensor, and every byte
 *     of it is read.
 * Build and run: see docs/fuzzing.md (scripts/fuzz.sh 30 gguf).
 */
#include "core/status_impl.h"
#include "io/gguf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile unsigned char g_sink;

static void fail(const char *why, const char *detail) {
    fprintf(stderr, "fuzz_gguf: oracle failed: %s (%s); last error: %s\n", why, detail ? detail : "",
            lp_last_error());
    abort();
}
#define REQUIRE(cond, detail) \
    do {                      \
        if (!(cond)) fail(#cond, detail); \
    } while (0)

static void touch(const void *p, uint64_t n) {
    const unsigned char *c = p;
    for (uint64_t i = 0; i < n; i++) g_sink ^= c[i];
}

static bool is_int(lp_gguf_vtype t) {
    return t == LP_GGUF_U8 || t == LP_GGUF_I8 || t == LP_GGUF_U16 || t == LP_GGUF_I16 || t == LP_GGUF_U32 ||
           t == LP_GGUF_I32 || t == LP_GGUF_U64 || t == LP_GGUF_I64;
}

static bool refused(lp_status st) { return st == LP_ERR_FORMAT && strstr(lp_last_error(), "fuzz.gguf"); }

/* A string from the reader must lie inside [lo, hi). */
static void check_str(lp_gguf_str s, const uint8_t *lo, const uint8_t *hi, const char *key) {
    const uint8_t *p = (const uint8_t *)s.s;
    REQUIRE(p >= lo && p <= hi && s.n <= (uint64_t)(hi - p), key);
    touch(p, s.n);
}

static void check_key(const lp_gguf *g, int64_t i, const uint8_t *lo, const uint8_t *hi) {
    const char *key = lp_gguf_key(g, i);
    REQUIRE(key && key[0], NULL);
    REQUIRE(lp_gguf_find_key(g, key) == i && lp_gguf_has(g, key), key);
    const lp_gguf_vtype t = lp_gguf_kv_type(g, i);
    REQUIRE((int)t >= 0 && (int)t <= LP_GGUF_F64, key);
    lp_gguf_str s;
    uint32_t u = 0;
    int64_t v = 0;
    float f = 0;
    bool b = false;
    lp_status st;
    if (t == LP_GGUF_STRING) {
        REQUIRE(lp_gguf_get_str(g, key, &s) == LP_OK, key);
        check_str(s, lo, hi, key);
    } else {
        REQUIRE(refused(lp_gguf_get_str(g, key, &s)), key);
    }
    if (is_int(t)) {
        st = lp_gguf_get_i64(g, key, &v);
        REQUIRE(st == LP_OK || (t == LP_GGUF_U64 && refused(st)), key);
        lp_status su = lp_gguf_get_u32(g, key, &u);
        if (st == LP_OK && v >= 0 && v <= (int64_t)UINT32_MAX) REQUIRE(su == LP_OK && u == (uint32_t)v, key);
        else REQUIRE(refused(su), key);
    } else {
        REQUIRE(refused(lp_gguf_get_i64(g, key, &v)) && refused(lp_gguf_get_u32(g, key, &u)), key);
    }
    if (t == LP_GGUF_F32 || t == LP_GGUF_F64) REQUIRE(lp_gguf_get_f32(g, key, &f) == LP_OK, key);
    else REQUIRE(refused(lp_gguf_get_f32(g, key, &f)), key);
    if (t == LP_GGUF_BOOL) REQUIRE(lp_gguf_get_bool(g, key, &b) == LP_OK, key);
    else REQUIRE(refused(lp_gguf_get_bool(g, key, &b)), key);

    lp_gguf_vtype et = LP_GGUF_ARRAY;
    uint64_t n = 0;
    st = lp_gguf_get_arr(g, key, &et, &n);
    if (t != LP_GGUF_ARRAY) {
        REQUIRE(refused(st), key);
        return;
    }
    REQUIRE(st == LP_OK && (int)et >= 0 && (int)et <= LP_GGUF_F64 && et != LP_GGUF_ARRAY, key);
    REQUIRE(n <= (uint64_t)(hi - lo), key); /* every element takes at least a byte */
    const bool num = is_int(et) || et == LP_GGUF_BOOL || et == LP_GGUF_F32 || et == LP_GGUF_F64;
    for (uint64_t j = 0; j <= n; j++) { /* j == n: out of range, refused by every accessor */
        double d = 0;
        lp_status ss = lp_gguf_arr_str(g, key, j, &s);
        lp_status si = lp_gguf_arr_int(g, key, j, &v);
        lp_status sn = lp_gguf_arr_num(g, key, j, &d);
        if (j == n) {
            REQUIRE(refused(ss) && refused(si) && refused(sn), key);
            break;
        }
        if (et == LP_GGUF_STRING) {
            REQUIRE(ss == LP_OK && refused(si) && refused(sn), key);
            check_str(s, lo, hi, key);
            continue;
        }
        REQUIRE(refused(ss) && num, key);
        REQUIRE(sn == LP_OK, key);
        if (et == LP_GGUF_F32 || et == LP_GGUF_F64) REQUIRE(refused(si), key);
        else if (et == LP_GGUF_BOOL) REQUIRE(si == LP_OK && (v == 0 || v == 1) && d == (double)v, key);
        else if (si == LP_OK) REQUIRE(d == (double)v, key);
        else REQUIRE(et == LP_GGUF_U64 && refused(si) && d >= 9223372036854775808.0, key);
    }
}

static void check_tensors(const lp_gguf *g, const uint8_t *lo, const uint8_t *hi) {
    const uint64_t a = lp_gguf_alignment(g);
    const int64_t n = lp_gguf_n_tensors(g);
    REQUIRE(n >= 0 && (uint64_t)n <= (uint64_t)(hi - lo) / 32, NULL);
    const uint8_t *data_start = NULL;
    for (int64_t i = 0; i < n; i++) {
        const lp_gguf_tensor *t = lp_gguf_tensor_at(g, i);
        REQUIRE(t && t->name && strlen(t->name) < 64, NULL);
        const char *name = t->name;
        REQUIRE(lp_gguf_find_tensor(g, name) == t, name);
        REQUIRE(t->n_dims >= 1 && t->n_dims <= 4, name);
        for (int d = 0; d < 4; d++) REQUIRE(t->ne[d] >= 0 && (d < t->n_dims || t->ne[d] == 1), name);
        const lp_ggml_type_info ti = lp_ggml_type_of(t->type);
        REQUIRE(ti.name && t->ne[0] % ti.block == 0, name);
        uint64_t nb;
        REQUIRE(!__builtin_mul_overflow((uint64_t)(t->ne[0] / ti.block), (uint64_t)ti.bytes, &nb), name);
        REQUIRE(lp_ggml_row_bytes(t->type, t->ne[0]) == nb, name);
        for (int d = 1; d < 4; d++) REQUIRE(!__builtin_mul_overflow(nb, (uint64_t)t->ne[d], &nb), name);
        REQUIRE(nb == t->nbytes, name);
        REQUIRE(t->offset % a == 0, name);
        const uint8_t *p = t->data;
        REQUIRE(p >= lo && p <= hi && t->nbytes <= (uint64_t)(hi - p), name);
        REQUIRE((uint64_t)(p - lo) >= t->offset, name);
        const uint8_t *ds = p - t->offset; /* the data section's start, the same for every tensor */
        REQUIRE((uint64_t)(ds - lo) % a == 0 && (!data_start || ds == data_start), name);
        data_start = ds;
        touch(p, t->nbytes);
        for (int64_t j = 0; j < i; j++) { /* pairwise overlap check; inputs are small */
            const lp_gguf_tensor *o = lp_gguf_tensor_at(g, j);
            const uint8_t *q = o->data;
            REQUIRE(!(t->nbytes && o->nbytes && p < q + o->nbytes && q < p + t->nbytes), name);
        }
    }
    REQUIRE(lp_gguf_tensor_at(g, n) == NULL && lp_gguf_tensor_at(g, -1) == NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    lp_gguf *g = NULL;
    lp_status st = lp_gguf_open_buffer(copy, size, "fuzz.gguf", &g);
    if (st != LP_OK) {
        REQUIRE(g == NULL && (st == LP_ERR_FORMAT || st == LP_ERR_NOMEM), lp_status_name(st));
        REQUIRE(strstr(lp_last_error(), "fuzz.gguf") != NULL, NULL);
        free(copy);
        return 0;
    }
    const uint8_t *lo = copy, *hi = copy + size;
    const uint32_t v = lp_gguf_version(g), a = lp_gguf_alignment(g);
    REQUIRE((v == 2 || v == 3) && a && (a & (a - 1)) == 0 && lp_gguf_file_size(g) == size, NULL);
    REQUIRE(strcmp(lp_gguf_path(g), "fuzz.gguf") == 0, NULL);
    const int64_t nk = lp_gguf_n_kv(g);
    REQUIRE(nk >= 0 && (uint64_t)nk <= size / 14, NULL);
    for (int64_t i = 0; i < nk; i++) check_key(g, i, lo, hi);
    REQUIRE(lp_gguf_key(g, nk) == NULL && lp_gguf_key(g, -1) == NULL, NULL);
    uint32_t ga = 0;
    if (lp_gguf_has(g, "general.alignment"))
        REQUIRE(lp_gguf_get_u32(g, "general.alignment", &ga) == LP_OK && ga == a, NULL);
    else
        REQUIRE(a == 32, NULL);
    check_tensors(g, lo, hi);
    lp_gguf_close(g);
    free(copy);
    return 0;
}
