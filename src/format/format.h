/*
 * format.h - the format traits table: one row per way of storing a weight.
 *
 * What: a linear's weight W (rows x cols, out x in, row-major; y = x W^T)
 *   is held by one or more parts (linear.h), each in a format. A format is
 *   one row of lp_format: its name (as written in checkpoints), the exact
 *   bytes it stores, a description, rows dequantized to f32, the product
 *   Y = X W^T per instruction set, checkpoint save/load with validation,
 *   and free. The rows are listed once, in formats.c (lp_formats).
 * Why: ggml's type_traits. Adding a format is one file (its row and its
 *   kernels beside it: `_ref`, `_avx2`, `_avx512`) plus one line in
 *   formats.c; nothing else dispatches on formats.
 * Design: the product is chosen once per part, when the part is made
 *   (lp_format_gemm with lp_cpu_isa()), never by name on each call.
 *   Checkpoint layout: a packed part of linear `<base>` writes its tensors
 *   as `<base>.<suffix>` and describes itself with a JSON object
 *   {"format": name, ...settings} that the loader hands back to its load.
 */
#ifndef LP_FORMAT_H
#define LP_FORMAT_H

#include "core/cpu.h"
#include "io/json.h"
#include "io/safetensors.h"

#include <stddef.h>
#include <stdint.h>

/* Y (T x rows) = X (T x cols) W^T for the weight in `data`. */
typedef lp_status (*lp_gemm_fn)(const void *data, const float *X, int64_t T, float *Y);

/* Where a part's tensors are read from: a checkpoint or a resume state file
 * (name is what errors call it). */
typedef struct {
    const lp_weights *w;
    const char *name;
} lp_fmt_src;

typedef struct lp_format {
    const char *name; /* "dense", "qgroup", ...: the checkpoint's "format" value */
    /* exact stored bytes: every array the format keeps (weights, scales, zeros, maps, indices) */
    size_t (*nbytes)(const void *data);
    void (*describe)(const void *data, char *buf, size_t n);
    /* out ((r1 - r0) x cols) = rows [r0, r1) of W; LP_ERR_NOMEM */
    lp_status (*dequant)(const void *data, int64_t r0, int64_t r1, float *out);
    /* the product per instruction set; [LP_ISA_REF] is required (the
     * specification), NULL entries fall back to the next lower level */
    lp_gemm_fn gemm[LP_ISA_N];
    /* tensors <base>.* into w; meta (n bytes) receives the JSON description,
     * or "" when the part is stored as a plain Hugging Face tensor (dense) */
    lp_status (*save)(const void *data, lp_st_writer *w, const char *base, char *meta, size_t n);
    /* a part from tensors <base>.* described by desc, checked as untrusted
     * input (LP_ERR_FORMAT naming the tensor and the bad value); *data is
     * then owned by the caller (free it with free below) and may point into
     * in's mapping, which must outlive it */
    lp_status (*load)(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                      void **data);
    void (*free)(void *data); /* NULL is a no-op */
    /* the weight bits the method's paper would count (BiLLM / PB-LLM leave
     * scales, bitmaps and indices out); NULL: 8 x nbytes, every stored bit */
    double (*paper_bits)(const void *data);
    /* weight values actually stored (kept weights of a sparse part, the
     * entries of both low-rank factors); NULL: rows x cols, every weight */
    int64_t (*nparams)(const void *data);
} lp_format;

/* The table (formats.c), NULL-terminated. */
extern const lp_format *const lp_formats[];

/* A format by name, NULL when unknown. */
const lp_format *lp_format_find(const char *name);

/* f's product for the kernel level in use (lp_cpu_isa) or below. */
lp_gemm_fn lp_format_gemm(const lp_format *f, lp_isa isa);

/* ---- helpers for the formats' save and load ---- */

/* The checkpoint and resume-state format version written
 * (__metadata__["llmpress.format_version"]). 2: qgroup's b = 3 weights in
 * chunks of 128 columns (qgroup.h); 1: every b in the plane layout, still
 * read. */
#define LP_FORMAT_VERSION 2
#define LP_FORMAT_VERSION_STR "2"

/* The version of the file `in` reads from: its llmpress.format_version (1
 * or 2; the checkpoint loader refuses others first), or LP_FORMAT_VERSION
 * when it has none (tensors of this build, e.g. an import). */
int lp_fmt_version(const lp_fmt_src *in);

/* Tensor "<base><suffix>" with exactly dtype dt and shape [d0, d1], aligned
 * to its element size; LP_ERR_FORMAT naming it otherwise. */
lp_status lp_fmt_tensor(const lp_fmt_src *in, const char *base, const char *suffix, lp_dtype dt, int64_t d0,
                        int64_t d1, const lp_tensor_view **out);

/* Add tensor "<base><suffix>" [d0, d1] of dtype dt (data must outlive the save). */
lp_status lp_fmt_add(lp_st_writer *w, const char *base, const char *suffix, lp_dtype dt, int64_t d0, int64_t d1,
                     const void *data);

/* An integer member of a description that must lie in [lo, hi]
 * (LP_ERR_FORMAT naming the key otherwise; a missing key is an error). */
lp_status lp_fmt_int(const lp_fmt_src *in, const char *base, const lp_json *desc, const char *key, int64_t lo,
                     int64_t hi, int64_t *out);
/* A boolean member (true/false only). */
lp_status lp_fmt_bool(const lp_fmt_src *in, const char *base, const lp_json *desc, const char *key, bool *out);

#endif
