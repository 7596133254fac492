/*
 * gguf.h - reading and writing GGUF files (llama.cpp / ggml's container).
 *
 * Format (version 3, little-endian; version 2 is read too):
 *   u32 magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x { string key, u32 value type, value },
 *   n_tensors x { string name, u32 n_dims (1..4), u64 ne[n_dims], u32 ggml type, u64 offset },
 *   padding to `general.alignment` (u32 key, default 32), then the data section;
 *   each tensor's offset is relative to the data section and a multiple of the alignment.
 *   string = u64 length + bytes (no NUL); array = u32 element type + u64 count + elements
 *   (arrays of arrays are refused).
 * Reading: the file is mapped; every count, length, type, dimension and offset is checked
 *   against the file size before use (sizes from the ggml type table below); a tensor's
 *   bytes must lie inside the data section; duplicate keys or tensor names are refused.
 *   Errors are LP_ERR_FORMAT naming the file and the offending key or tensor.
 * Writing: keys and tensors are added in order (data by pointer, kept until save);
 *   lp_gguf_writer_save writes through a temporary file and renames it when complete.
 */
#ifndef LP_GGUF_H
#define LP_GGUF_H

#include "llmpress/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- ggml tensor types (ids as in ggml.h) ---- */
typedef enum {
    LP_GGML_F32 = 0,
    LP_GGML_F16 = 1,
    LP_GGML_Q4_0 = 2,
    LP_GGML_Q4_1 = 3,
    LP_GGML_Q5_0 = 6,
    LP_GGML_Q5_1 = 7,
    LP_GGML_Q8_0 = 8,
    LP_GGML_Q8_1 = 9,
    LP_GGML_Q2_K = 10,
    LP_GGML_Q3_K = 11,
    LP_GGML_Q4_K = 12,
    LP_GGML_Q5_K = 13,
    LP_GGML_Q6_K = 14,
    LP_GGML_Q8_K = 15,
    LP_GGML_IQ4_NL = 20,
    LP_GGML_I8 = 24,
    LP_GGML_I16 = 25,
    LP_GGML_I32 = 26,
    LP_GGML_I64 = 27,
    LP_GGML_F64 = 28,
    LP_GGML_BF16 = 30,
    LP_GGML_TYPE_COUNT = 40 /* ids below this may appear; unknown ones are refused */
} lp_ggml_type;

typedef struct {
    const char *name; /* "Q4_K", "F16", ...; NULL for an id this table does not know */
    int block;        /* elements per block (1 for plain types, 32, 256) */
    int bytes;        /* bytes per block */
} lp_ggml_type_info;

/* The row of id t; name == NULL when t is unknown (or the type is one we can't size). */
lp_ggml_type_info lp_ggml_type_of(int t);
/* A type by name ("q4_k" and "Q4_K" both), or -1. */
int lp_ggml_type_by_name(const char *name);
/* Bytes of n elements of type t (n a multiple of the block), or 0 when it is not. */
uint64_t lp_ggml_row_bytes(int t, int64_t n);

/* ---- values ---- */
typedef enum {
    LP_GGUF_U8 = 0,
    LP_GGUF_I8 = 1,
    LP_GGUF_U16 = 2,
    LP_GGUF_I16 = 3,
    LP_GGUF_U32 = 4,
    LP_GGUF_I32 = 5,
    LP_GGUF_F32 = 6,
    LP_GGUF_BOOL = 7,
    LP_GGUF_STRING = 8,
    LP_GGUF_ARRAY = 9,
    LP_GGUF_U64 = 10,
    LP_GGUF_I64 = 11,
    LP_GGUF_F64 = 12,
} lp_gguf_vtype;

typedef struct {
    const char *s; /* into the mapping: NOT NUL-terminated */
    uint64_t n;
} lp_gguf_str;

/* ---- reading ---- */
typedef struct lp_gguf lp_gguf;

typedef struct {
    const char *name; /* NUL-terminated copy */
    int n_dims;
    int64_t ne[4];    /* ne[0] is the fastest-varying (a row's length); unused dims are 1 */
    int type;         /* lp_ggml_type */
    uint64_t offset;  /* from the data section's start */
    const void *data; /* into the mapping */
    uint64_t nbytes;
} lp_gguf_tensor;

lp_status lp_gguf_open(const char *path, lp_gguf **out);
/* The same over a caller's buffer (kept until close); name is for messages. */
lp_status lp_gguf_open_buffer(const void *data, size_t size, const char *name, lp_gguf **out);
void lp_gguf_close(lp_gguf *g); /* NULL is a no-op */
const char *lp_gguf_path(const lp_gguf *g);
uint32_t lp_gguf_version(const lp_gguf *g);
uint32_t lp_gguf_alignment(const lp_gguf *g);
uint64_t lp_gguf_file_size(const lp_gguf *g);

int64_t lp_gguf_n_kv(const lp_gguf *g);
const char *lp_gguf_key(const lp_gguf *g, int64_t i); /* NUL-terminated copy */
int64_t lp_gguf_find_key(const lp_gguf *g, const char *key); /* -1 when absent */
lp_gguf_vtype lp_gguf_kv_type(const lp_gguf *g, int64_t i);

/* Typed getters of key `key`: LP_ERR_FORMAT naming the file and key when the
 * key is absent (unless noted) or its type does not fit. Integers: any integer
 * type whose value fits the result; floats: F32 or F64. */
lp_status lp_gguf_get_u32(const lp_gguf *g, const char *key, uint32_t *out);
lp_status lp_gguf_get_i64(const lp_gguf *g, const char *key, int64_t *out);
lp_status lp_gguf_get_f32(const lp_gguf *g, const char *key, float *out);
lp_status lp_gguf_get_bool(const lp_gguf *g, const char *key, bool *out);
lp_status lp_gguf_get_str(const lp_gguf *g, const char *key, lp_gguf_str *out);
/* Whether the key exists (the getters above then may still refuse its type). */
bool lp_gguf_has(const lp_gguf *g, const char *key);

/* An array: its element type and count; elements by index. Strings point
 * into the mapping; numeric elements are returned converted (integers to
 * int64 when they fit, F32/F64 to double; a U64 beyond INT64_MAX is an error). */
lp_status lp_gguf_get_arr(const lp_gguf *g, const char *key, lp_gguf_vtype *elem, uint64_t *count);
lp_status lp_gguf_arr_str(const lp_gguf *g, const char *key, uint64_t i, lp_gguf_str *out);
lp_status lp_gguf_arr_int(const lp_gguf *g, const char *key, uint64_t i, int64_t *out);
lp_status lp_gguf_arr_num(const lp_gguf *g, const char *key, uint64_t i, double *out);

int64_t lp_gguf_n_tensors(const lp_gguf *g);
const lp_gguf_tensor *lp_gguf_tensor_at(const lp_gguf *g, int64_t i);
const lp_gguf_tensor *lp_gguf_find_tensor(const lp_gguf *g, const char *name); /* NULL when absent */

/* ---- writing ---- */
typedef struct lp_gguf_writer lp_gguf_writer;

lp_status lp_gguf_writer_init(lp_gguf_writer **out);
void lp_gguf_writer_free(lp_gguf_writer *w); /* NULL is a no-op */
/* Keys are copied; a key added twice is LP_ERR_ARG. */
lp_status lp_gguf_set_u32(lp_gguf_writer *w, const char *key, uint32_t v);
lp_status lp_gguf_set_i32(lp_gguf_writer *w, const char *key, int32_t v);
lp_status lp_gguf_set_u64(lp_gguf_writer *w, const char *key, uint64_t v);
lp_status lp_gguf_set_f32(lp_gguf_writer *w, const char *key, float v);
lp_status lp_gguf_set_bool(lp_gguf_writer *w, const char *key, bool v);
lp_status lp_gguf_set_str(lp_gguf_writer *w, const char *key, const char *v);
/* Arrays; the values are copied. */
lp_status lp_gguf_set_arr_str(lp_gguf_writer *w, const char *key, const char *const *v, const size_t *len,
                              uint64_t n);
lp_status lp_gguf_set_arr_i32(lp_gguf_writer *w, const char *key, const int32_t *v, uint64_t n);
lp_status lp_gguf_set_arr_f32(lp_gguf_writer *w, const char *key, const float *v, uint64_t n);
/* A tensor of n_dims (1..4) with ne[0] the row length; data (lp_ggml_row_bytes
 * of the whole tensor) must stay valid until save; name is copied and must be
 * unique and shorter than 64 bytes (ggml's GGML_MAX_NAME). */
lp_status lp_gguf_add_tensor(lp_gguf_writer *w, const char *name, int n_dims, const int64_t *ne, int type,
                             const void *data);
/* Write the file (version 3, alignment 32 unless general.alignment was set). */
lp_status lp_gguf_writer_save(lp_gguf_writer *w, const char *path);

#endif
