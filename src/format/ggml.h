/*
 * ggml.h - the "ggml" format: a weight kept as rows of ggml blocks (any type
 * of ggml_quants.h: Q4_K, Q8_0, IQ4_NL, F16, ...), exactly as a GGUF file
 * holds it, and multiplied from that form.
 *
 * What: W (rows x cols, out x in, row-major; y = x W^T) stored row by row,
 *   each row cols / block blocks of the type's bytes (lp_ggml_row_bytes);
 *   dequantization is ggml's, bit for bit (ggml_quants.h).
 * Why: GGUF import keeps llama.cpp's tensors as they are (the blocks may
 *   point straight into the mapped file), and GGUF export writes the blocks
 *   our quantizers chose without another rounding.
 * Storage: blocks  uint8 (rows, row_bytes), no padding;
 *   exact bytes rows * row_bytes (lp_ggml_part_nbytes).
 * Checkpoint: tensor <base>.blocks, U8 [rows, row_bytes], description
 *   {"format":"ggml","type":"Q4_K"} (ggml's type name); load checks the
 *   type, that cols is a multiple of its block, the tensor's shape, and that
 *   every f16 scale (or F16/BF16/F32 value) is finite, as llama.cpp's
 *   ggml_validate_row_data does.
 * Product, Y (T x rows) = X (T x cols) W^T: the reference dequantizes
 *   tiles of LP_ROWGEMM_BLAS_TILE rows into per-thread f32 scratch and
 *   multiplies them with sgemm (rowgemm.h); with AVX2 or AVX-512, the rows
 *   of every quantized type are multiplied from their blocks for fewer
 *   than 16 tokens (ggml_kernels.h).
 *   Results do not depend on the thread count.
 */
#ifndef LP_GGML_H
#define LP_GGML_H

#include "format/format.h"
#include "format/ggml_quants.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int type;              /* lp_ggml_type; lp_ggml_can_dequant(type) */
    int64_t rows, cols;    /* cols a multiple of the type's block */
    size_t row_bytes;      /* lp_ggml_row_bytes(type, cols) */
    const uint8_t *blocks; /* (rows, row_bytes) */
    uint8_t *owned;        /* blocks when allocated here (freed with the part), else NULL */
} lp_ggml_part;

/* A non-owning part over rows x row_bytes bytes of blocks of `type` (a GGUF
 * tensor's data, a checkpoint tensor), checked as untrusted input: the type
 * is one we dequantize, cols a multiple of its block, 1 .. 2^31 - 1 rows and
 * columns, every f16 scale finite (LP_ERR_FORMAT naming the row and block).
 * The bytes must outlive the part. LP_ERR_NOMEM. */
lp_status lp_ggml_part_view(int type, int64_t rows, int64_t cols, const void *blocks, lp_ggml_part **out);

/* An owning part with zeroed blocks for the caller to fill (GPTQ writing
 * blocks with lp_ggml_grid_pack at lp_ggml_part_row). LP_ERR_ARG for a
 * type we cannot quantize to or a bad shape, LP_ERR_NOMEM. */
lp_status lp_ggml_part_alloc(int type, int64_t rows, int64_t cols, lp_ggml_part **out);

/* Row r's blocks of an owning part (NULL for a view). */
uint8_t *lp_ggml_part_row(lp_ggml_part *p, int64_t r);

/* W (rows x cols f32) quantized row by row with lp_ggml_quantize_row
 * (imp: cols importance weights shared by every row, as llama.cpp's
 * imatrix, or NULL); rows split over OpenMP threads. LP_ERR_ARG as
 * lp_ggml_part_alloc, LP_ERR_NOMEM. */
lp_status lp_ggml_part_quantize(int type, const float *W, const float *imp, int64_t rows, int64_t cols,
                                lp_ggml_part **out);

void lp_ggml_part_free(lp_ggml_part *p); /* the struct and what it owns; NULL is a no-op */

/* Exact stored bytes: rows * row_bytes. */
size_t lp_ggml_part_nbytes(const lp_ggml_part *p);

/* Rows [r0, r1) of W in f32 ((r1 - r0) x cols), bit for bit as ggml. */
void lp_ggml_part_dequant(const lp_ggml_part *p, int64_t r0, int64_t r1, float *out);

/* Y (T x rows) = X (T x cols) W^T (the reference path above). LP_ERR_NOMEM. */
lp_status lp_ggml_part_gemm(const lp_ggml_part *p, const float *X, int64_t T, float *Y);

/* The traits row (format.c lists it). */
extern const lp_format lp_format_ggml;

#endif
