/*
 * sparse.h - pruned weights: the formats "nm" (N:M semi-structured, nm.h)
 * and "bitmap" (unstructured, bitmap.h), the API the pruning methods call,
 * and the kept-value codec both formats share.
 *
 * What: W (rows x cols, out x in, row-major; y = x W^T) keeps some weights
 *   and prunes the others to 0. The formats differ in how they say which
 *   weights are kept (nm: n indices in every m columns; bitmap: a keep bit
 *   per weight); both store the kept values the same way, in one array, in
 *   row-major order of their positions (rows in order, columns increasing):
 *   value i is the i-th kept weight of the matrix.
 * Why: pruning is one idea with two useful layouts (2:4 / 4:8 runs on sparse
 *   hardware and needs no row offsets; unstructured keeps the best weights),
 *   and the kept values (16-bit floats, or codes on a grid as SparseGPT's
 *   joint mode makes them) should not be written twice.
 * The kept values (lp_sparse_store), for count values:
 *   bits 16   the values as 16-bit floats of dtype (BF16 or F16), the
 *             method's f32 values rounded to nearest even:
 *               <base>.values  BF16|F16 [1, count]   finite
 *   bits 2..8 unsigned codes q, packed LSB-first: value i is bits
 *             [i * bits, (i + 1) * bits) of the byte stream (bit k of the
 *             stream is bit k % 8 of byte k / 8; no row padding), and
 *                 w = scale(r, g) * (float)(q - zero(r, g))
 *             (as qgroup computes it) with g = c / group for the weight's
 *             row r and column c; group counts ORIGINAL columns:
 *               <base>.codes   U8  [1, ceil(count * bits / 8)]   bits past the last code 0
 *               <base>.scales  F16 [rows, ngroups]   finite
 *               <base>.zeros   U8  [rows, ngroups]   each <= 2^bits - 1
 *             ngroups = ceil(cols / group); group is cols (one grid per
 *             row: -1 or any group >= cols is resolved to cols) or, for nm,
 *             a multiple of m, for bitmap a multiple of 32.
 *   Exact bytes: count * 2, or ceil(count * bits / 8) + rows * ngroups * 3
 *   (lp_sparse_nbytes); the formats add their indices or bitmap.
 * Description members (after "format" and the format's own): "bits":16,
 *   "dtype":"bf16"|"f16"; or "bits":B,"group":G with G resolved.
 */
#ifndef LP_SPARSE_H
#define LP_SPARSE_H

#include "format/format.h"

#include <stddef.h>
#include <stdint.h>

/* ---- the API of the pruning methods ---- */

typedef struct {
    int bits;       /* 16: values as 16-bit floats of dtype; 2..8: codes on a per-(row, group) asymmetric grid */
    lp_dtype dtype; /* LP_DT_BF16 or LP_DT_F16 when bits == 16 */
    int group;      /* bits < 16: original columns per (scale, zero); -1 = the whole row */
} lp_sparse_values;

/* keep: rows x cols, 1 = kept. bits == 16: the values are W's (rows x cols f32) at kept positions.
 * bits < 16: codes (rows x cols uint8, read at kept positions), scales (rows x ngroups f32, each exactly
 * representable in f16) and zeros (rows x ngroups int); ngroups = ceil(cols / group). W may be NULL then.
 * *out is the format's data, to be added with lp_linear_add_part(l, &lp_format_nm, *out).
 * LP_ERR_ARG with a clear message (naming the row and group of a wrong keep count, "2:4 does not divide
 * the width 1030", a bad bits/group/dtype), LP_ERR_NOMEM. */
lp_status lp_nm_make(int64_t rows, int64_t cols, int n, int m, const uint8_t *keep, const lp_sparse_values *v,
                     const float *W, const uint8_t *codes, const float *scales, const int *zeros, void **out);
lp_status lp_bitmap_make(int64_t rows, int64_t cols, const uint8_t *keep, const lp_sparse_values *v,
                         const float *W, const uint8_t *codes, const float *scales, const int *zeros, void **out);
extern const lp_format lp_format_nm, lp_format_bitmap;

/* ---- the kept-value codec (for nm.c and bitmap.c) ---- */

/* How the SIMD kernels read the values: the fast paths cover BF16, F16, 8-
 * and 4-bit codes; other widths go through the generic path. */
typedef enum { LP_SV_BF16, LP_SV_F16, LP_SV_U8, LP_SV_U4, LP_SV_OTHER } lp_sv_kind;

typedef struct {
    int bits;         /* 16, or 2..8 */
    lp_dtype dtype;   /* bits 16: LP_DT_BF16 or LP_DT_F16; bits < 16: LP_DT_U8 */
    int group;        /* bits < 16: columns per (scale, zero), resolved (cols: one per row); bits 16: cols */
    int64_t ngroups;  /* bits < 16: ceil(cols / group); bits 16: 1 (no grid stored) */
    int64_t count;    /* kept values */
    lp_sv_kind kind;
    uint16_t *v16;    /* bits 16: (count) */
    uint8_t *codes;   /* bits < 16: (ceil(count * bits / 8)) */
    uint16_t *scales; /* bits < 16: (rows, ngroups) f16 */
    uint8_t *zeros;   /* bits < 16: (rows, ngroups) */
} lp_sparse_store;

/* Check v for a weight of cols columns and resolve its group into *out (bits
 * 16: group = cols). unit: what a group must be a multiple of (nm: m,
 * bitmap: 32). Fails with st (LP_ERR_ARG for a caller, LP_ERR_FORMAT for a
 * file), the message starting with who. */
lp_status lp_sparse_resolve(const lp_sparse_values *v, int64_t cols, int unit, const char *who, lp_status st,
                            lp_sparse_values *out);

/* Bytes of the code stream of count values. */
static inline size_t lp_sparse_code_bytes(int64_t count, int bits) { return (size_t)((count * bits + 7) / 8); }

/* Allocate zero-filled storage for count values with the resolved settings
 * rv. LP_ERR_NOMEM. */
lp_status lp_sparse_alloc(lp_sparse_store *s, const lp_sparse_values *rv, int64_t rows, int64_t cols, int64_t count,
                          const char *who);
void lp_sparse_free(lp_sparse_store *s); /* the arrays of an allocated store */

/* Exact stored bytes of the values (and grid). */
size_t lp_sparse_nbytes(const lp_sparse_store *s, int64_t rows);

/* Fill an allocated store from the caller's arrays (lp_nm_make's arguments),
 * the kept positions of keep (rows x cols) in row-major order, and check
 * them: finite W that stays finite in dtype, codes <= 2^bits - 1 at kept
 * positions, scales finite and exact in f16, zeros in [0, 2^bits - 1].
 * LP_ERR_ARG naming the row and column (or group). */
lp_status lp_sparse_fill(lp_sparse_store *s, int64_t rows, int64_t cols, const uint8_t *keep, const float *W,
                         const uint8_t *codes, const float *scales, const int *zeros, const char *who);

/* The JSON members of the values ("bits":16,"dtype":"bf16" / "bits":4,"group":128). */
void lp_sparse_meta(const lp_sparse_store *s, char *buf, size_t n);
/* "bf16", "f16", "w4 g128", "w4 per-row". */
void lp_sparse_describe(const lp_sparse_store *s, int64_t cols, char *buf, size_t n);

/* The values' tensors under base. */
lp_status lp_sparse_save(const lp_sparse_store *s, lp_st_writer *w, const char *base, int64_t rows);

/* The settings in a description (bits, then dtype or group), checked and
 * resolved as lp_sparse_resolve with LP_ERR_FORMAT. */
lp_status lp_sparse_load_settings(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t cols, int unit,
                                  const char *who, lp_sparse_values *out);

/* A view of count values' tensors, checked as untrusted input: shapes,
 * dtypes, alignment, finite values and scales, zeros <= 2^bits - 1, zero
 * bits past the last code. LP_ERR_FORMAT naming in->name, the tensor and the
 * value. */
lp_status lp_sparse_load(const lp_fmt_src *in, const char *base, const lp_sparse_values *rv, int64_t rows,
                         int64_t cols, int64_t count, lp_sparse_store *s);

/* Software prefetch distances of the SIMD kernels, in bytes ahead of the
 * values (or codes) and of the indices or mask being read (measured on Zen
 * 4: 2 to 8 KB ahead all do about as well for the values). */
#define LP_SPARSE_PF_VALUES 4096
#define LP_SPARSE_PF_INDEX 1024

/* The AVX2 kernels' expansion table: for a byte b of keep bits, lane j is
 * 0x80000000 | (the number of kept columns before j) when bit j is set, else
 * 0 (a vpermps index with the sign bit as a blend mask). */
extern const uint32_t lp_sparse_expand8[256][8];

/* Code i of a stream of bits-bit codes (the definition of the packing). */
static inline unsigned lp_sparse_code(const uint8_t *codes, int bits, int64_t i) {
    const int64_t p = i * bits;
    const int sh = (int)(p & 7);
    unsigned v = codes[p >> 3] >> sh;
    if (sh + bits > 8) v |= (unsigned)codes[(p >> 3) + 1] << (8 - sh);
    return v & ((1u << bits) - 1u);
}

/* The f32 a kept value is multiplied by in the reference products: the
 * 16-bit float itself, or (float)(q - zero) for row r's group g (the scale
 * is applied once per group). */
float lp_sparse_d(const lp_sparse_store *s, int64_t i, int64_t r, int64_t g);

/* Dequantized value i at row r, group g: the 16-bit float, or
 * scale * (float)(q - zero), the definition every dequant kernel matches. */
float lp_sparse_value(const lp_sparse_store *s, int64_t i, int64_t r, int64_t g);

/* The scale of row r's group g as f32 (1 for bits 16). */
float lp_sparse_scale(const lp_sparse_store *s, int64_t r, int64_t g);

#endif
