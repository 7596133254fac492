/*
 * safetensors.h - reading and writing the safetensors format, single files
 * and sharded checkpoints (model.safetensors.index.json).
 *
 * Format: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"k": "v", ...}}
 * then the byte buffer; offsets are relative to the buffer start.
 * Reading: the file is mmapped; every length and offset is checked against the
 * file size, offsets must be in range, sizes must equal prod(shape)*dtype size,
 * and tensors must not overlap. Errors name the file and the tensor.
 * Writing: tensors are added by pointer, written with 8-byte-aligned offsets
 * through lp_atomic_file (temporary name + rename).
 */
#ifndef LP_SAFETENSORS_H
#define LP_SAFETENSORS_H

#include "llmpress/status.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    LP_DT_F32,
    LP_DT_F16,
    LP_DT_BF16,
    LP_DT_F64,
    LP_DT_I8,
    LP_DT_U8,
    LP_DT_I16,
    LP_DT_U16,
    LP_DT_I32,
    LP_DT_U32,
    LP_DT_I64,
    LP_DT_U64,
    LP_DT_BOOL,
} lp_dtype;

size_t lp_dtype_size(lp_dtype dt);
const char *lp_dtype_name(lp_dtype dt); /* "F32", "BF16", ... as in the format */

#define LP_MAX_DIMS 8

typedef struct {
    const char *name;
    lp_dtype dtype;
    int ndim;
    int64_t shape[LP_MAX_DIMS];
    int64_t numel;
    const void *data; /* points into the mapping */
    size_t nbytes;
} lp_tensor_view;

/* ---- one file ---- */
typedef struct lp_st_file lp_st_file;
lp_status lp_st_open(const char *path, lp_st_file **out);
void lp_st_close(lp_st_file *f); /* NULL is a no-op */
int64_t lp_st_count(const lp_st_file *f);
const lp_tensor_view *lp_st_at(const lp_st_file *f, int64_t i);
const lp_tensor_view *lp_st_find(const lp_st_file *f, const char *name); /* NULL if absent */
const char *lp_st_meta(const lp_st_file *f, const char *key);            /* NULL if absent */
const char *lp_st_path(const lp_st_file *f);

/* ---- a checkpoint directory: model.safetensors or an index with shards ---- */
typedef struct lp_weights lp_weights;
/* Opens <dir>/model.safetensors.index.json if present (every shard it names
 * must exist and every tensor it maps must be found in its shard), else
 * <dir>/model.safetensors. A path to a single .safetensors file also works. */
lp_status lp_weights_open(const char *dir, lp_weights **out);
void lp_weights_close(lp_weights *w);
const lp_tensor_view *lp_weights_find(const lp_weights *w, const char *name);
int64_t lp_weights_count(const lp_weights *w);
const lp_tensor_view *lp_weights_at(const lp_weights *w, int64_t i);
/* The file a tensor came from (for error messages). */
const char *lp_weights_file_of(const lp_weights *w, const char *name);
const char *lp_weights_meta(const lp_weights *w, const char *key); /* first shard's metadata */

/* ---- writing ---- */
typedef struct lp_st_writer lp_st_writer;
lp_status lp_st_writer_init(lp_st_writer **out);
void lp_st_writer_free(lp_st_writer *w);
/* data must stay valid until lp_st_writer_save returns; name is copied. */
lp_status lp_st_writer_add(lp_st_writer *w, const char *name, lp_dtype dt, int ndim,
                           const int64_t *shape, const void *data);
lp_status lp_st_writer_meta(lp_st_writer *w, const char *key, const char *value);
lp_status lp_st_writer_save(lp_st_writer *w, const char *path);

#endif
