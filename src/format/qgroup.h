/*
 * qgroup.h - "grouped uniform integers": b-bit weights, packed, with one f16
 * scale (and, when asymmetric, one uint8 zero point) per group of columns.
 *
 * What: the storage format of RTN, GPTQ and AWQ. A weight W is rows x cols
 * (out x in, row-major, y = W x). Each stored integer q in [0, 2^b - 1]
 * dequantizes to
 *
 *     w = scale * (q - zero)           (scale: f16, zero: uint8 or implicit)
 *
 * and the weights stay packed in memory while a layer runs (qgemv/qgemm
 * kernels read the packed form; only small row tiles are ever dequantized).
 *
 * Why this layout: the bits inside a block are arranged so that an AVX2 or
 * AVX-512 kernel unpacks a block with one broadcast load plus one variable
 * shift and one AND per vector of values (no byte shuffles, no straddling
 * fields), for every b from 1 to 8.
 *
 * Storage (all little-endian; B = blocks = ceil(cols / 32), G = ngroups):
 *
 *   q       uint32 (rows, B, bits)   a row is B blocks; a block holds the 32
 *                                     values of columns 32k .. 32k+31 in
 *                                     exactly `bits` words (at b = 3, four
 *                                     blocks form a chunk: below).
 *   scales  f16    (rows, G)         scale of group g = columns
 *                                     [g*group, min((g+1)*group, cols)).
 *   zeros   uint8  (rows, G)         asymmetric only (NULL when sym); each
 *                                     zero <= 2^b - 1. Symmetric groups use
 *                                     the implicit zero 2^(b-1) (GPTQ's
 *                                     (maxq + 1) / 2).
 *
 * Bit layout of one block (value j = column 32k + j, j = 0..31):
 *   b is split into its binary digits, largest first, into "planes" of width
 *   w in {8, 4, 2, 1}: b=8 -> 8; b=7 -> 4+2+1; b=6 -> 4+2; b=5 -> 4+1;
 *   b=4 -> 4; b=3 -> 2+1; b=2 -> 2; b=1 -> 1. The planes follow each other:
 *   a plane of width w occupies the next w words of the block and holds bits
 *   [o, o+w) of every value, o being the sum of the widths before it.
 *   Inside a plane of width w, value j's w bits sit in word (j mod w) of the
 *   plane at bit position w * (j div w):
 *
 *       plane_word[j % w] >> (w * (j / w)) & (2^w - 1)  ==  (q_j >> o) & (2^w - 1)
 *
 *   Examples: b=4: word i (i = 0..3) holds q_i, q_{i+4}, ..., q_{i+28} in its
 *   nibbles from least significant up. b=8: word i (0..7) holds bytes q_i,
 *   q_{i+8}, q_{i+16}, q_{i+24}. b=2: word i (0..1) holds q_i, q_{i+2}, ...
 *   b=1: bit j of the single word is q_j. b=3: word 0..1 are the b=2 layout
 *   of the low two bits, word 2 has bit 2 of q_j at bit j.
 *   Why: broadcasting the plane's w words across a vector (lane L gets word
 *   L mod w) puts value j = 16h + L (AVX-512, h = 0,1) or 8h + L (AVX2,
 *   h = 0..3) in lane L at shift 16h + w*(L div w) (resp. 8h + w*(L div w)),
 *   so one vpsrlvd with a constant shift vector and one AND yield 16 (8)
 *   consecutive values.
 *   Values past cols in the last block (padding) are stored as 0; kernels
 *   never let them contribute.
 *
 * b = 3 with groups of whole chunks (group a multiple of 128, or one group
 * per row; checkpoint format version 2): each whole chunk of 4 blocks (128
 * columns, 12 words) is stored in the chunk layout below; a row's last 1-3
 * blocks, when blocks is not a multiple of 4, stay in the plane layout
 * above, so block b still starts at word 3b whenever it is not inside a
 * chunk, and every size is unchanged. (Groups of 32 or 64 columns keep the
 * plane layout: the q8 product does not cover them, and the f32 kernels
 * read them block by block, where the plane layout measured faster.) With v_k the value of column
 * 128c + k, chunk c's bytes are A = bytes 0..31 and B = bytes 32..47:
 *
 *     A[m] = v_m | v_(m+32) << 3 | (v_(m+64) >> 2) << 6 | (v_(m+96) >> 2) << 7
 *     B[m] = sum over l = 0..3 of (v_(64+m+16l) & 3) << 2l
 *
 *   so columns 0..63 lie whole in A's low six bits and columns 64..127 are
 *   a 2-bit field of B plus a top bit in A's top two bits.
 *   Why: A broadcast to a 64-byte vector (byte p holds A[p mod 32]) and B
 *   broadcast four times (byte p holds B[p mod 16]) give all 128 values as
 *   bytes in column order with three GF2P8AFFINEQB (a per-qword bit matrix:
 *   "bits 0-2", "bits 3-5", "field p / 16 of B", "bit 6 + p / 32 to bit 2")
 *   and one OR: 4 vector ops per chunk where the plane layout (format
 *   version 1, still read: qgroup.c converts it on load) took 8, which made
 *   W3 the one width whose decode product was bound by its unpacking
 *   rather than by memory (docs/benchmarks.md). A block of 32 columns is
 *   still a unit of access: lp_qgroup_get_block / lp_qgroup_put_block read
 *   and write any block of any b (lp_qgroup_in_chunk3 says which layout
 *   holds it).
 *
 * Groups: `group` is a multiple of 32, or equal to cols (per-channel; users
 * write -1 and init stores cols, so any cols such as 172 works). The last
 * group may be shorter (cols not a multiple of group).
 *
 * Sizes: counts are int64_t, bytes size_t; cols and group fit in int (< 2^31).
 */
#ifndef LP_QGROUP_H
#define LP_QGROUP_H

#include "format/format.h"

#include <stddef.h>
#include <stdint.h>

#define LP_QGROUP_BLOCK 32 /* values per packed block */
#define LP_QGROUP_CHUNK3 128 /* columns per chunk at b = 3 */
#define LP_QGROUP_CHUNK3_WORDS 12 /* its words */

typedef struct {
    int bits;         /* 1..8 */
    int group;        /* columns per group: multiple of 32, or == cols (per-channel) */
    int sym;          /* 1: implicit zero 2^(bits-1), zeros == NULL */
    int64_t rows, cols;
    int64_t ngroups;  /* ceil(cols / group) */
    int64_t blocks;   /* ceil(cols / 32) per row */
    uint32_t *q;      /* (rows, blocks * bits) */
    uint16_t *scales; /* (rows, ngroups) f16 bits */
    uint8_t *zeros;   /* (rows, ngroups), or NULL when sym */
    int owns;         /* 1: q/scales/zeros are malloc'd and freed by lp_qgroup_free */
} lp_qgroup;

/* Byte sizes of the three arrays for a shape (zeros_bytes is 0 when sym).
 * group may be -1 (per-channel). Returns LP_ERR_ARG for an invalid shape. */
lp_status lp_qgroup_sizes(int64_t rows, int64_t cols, int bits, int group, int sym,
                          size_t *q_bytes, size_t *scales_bytes, size_t *zeros_bytes);

/* Allocate a zero-filled weight (all q = 0, scales = 0, zeros = 0).
 * group = -1 means per-channel. LP_ERR_ARG on a bad shape, LP_ERR_NOMEM. */
lp_status lp_qgroup_init(lp_qgroup *w, int64_t rows, int64_t cols, int bits, int group, int sym);

/* Free what w owns and zero it; NULL and views are fine. */
void lp_qgroup_free(lp_qgroup *w);

/* A non-owning view over external buffers (e.g. a mapped file). Everything
 * is checked as file input, failing with LP_ERR_FORMAT and a message naming
 * the bad value: the shape, each buffer's exact byte size, alignment (q to 4
 * bytes, scales to 2), zeros present iff asymmetric, every zero <= 2^b - 1
 * and every scale finite. Writing through a view of read-only memory (lp_qgroup_set)
 * is the caller's bug. */
lp_status lp_qgroup_view(lp_qgroup *w, int64_t rows, int64_t cols, int bits, int group, int sym,
                         const void *q, size_t q_bytes, const void *scales, size_t scales_bytes,
                         const void *zeros, size_t zeros_bytes);

/* Exact stored bytes: q + scales + zeros. */
size_t lp_qgroup_nbytes(const lp_qgroup *w);

/* The zero point of (row r, group g): stored, or 2^(bits-1) when sym. */
static inline int lp_qgroup_zero(const lp_qgroup *w, int64_t r, int64_t g) {
    return w->sym ? 1 << (w->bits - 1) : w->zeros[r * w->ngroups + g];
}

/* One stored integer (0 <= r < rows, 0 <= c < cols; asserted). set asserts
 * 0 <= v < 2^bits. */
unsigned lp_qgroup_get(const lp_qgroup *w, int64_t r, int64_t c);
void lp_qgroup_set(lp_qgroup *w, int64_t r, int64_t c, unsigned v);

/* uint32 words per row. */
static inline int64_t lp_qgroup_row_words(const lp_qgroup *w) { return w->blocks * w->bits; }

/* Blocks of each row stored in b = 3 chunks: blocks & ~3 when w is b = 3
 * with groups of whole chunks (a multiple of 128 columns, or one group per
 * row), else 0 (every block in the plane layout). */
static inline int64_t lp_qgroup_chunk3_blocks(const lp_qgroup *w) {
    const int whole = w->ngroups == 1 || w->group % 128 == 0;
    return w->bits == 3 && whole ? w->blocks & ~(int64_t)3 : 0;
}

/* 1 when block b lies in a b = 3 chunk, 0 when it is in the plane layout. */
static inline int lp_qgroup_in_chunk3(const lp_qgroup *w, int64_t b) { return b < lp_qgroup_chunk3_blocks(w); }

/* The 32 values of block b (columns 32b .. 32b+31, 0 past cols) of row r,
 * read or written in place, for any b (asserted in range). put writes only
 * that block's bits (at b = 3 the rest of its chunk is kept). */
void lp_qgroup_get_block(const lp_qgroup *w, int64_t r, int64_t b, uint8_t v[LP_QGROUP_BLOCK]);
void lp_qgroup_put_block(lp_qgroup *w, int64_t r, int64_t b, const uint8_t v[LP_QGROUP_BLOCK]);

/* Pack / unpack one block of 32 values in the plane layout above: the
 * block itself for b != 3 (and for qlut.h's codes at every b). */
void lp_qgroup_pack_block(const uint8_t v[LP_QGROUP_BLOCK], int bits, uint32_t *blk);
void lp_qgroup_unpack_block(const uint32_t *blk, int bits, uint8_t v[LP_QGROUP_BLOCK]);

/* Pack / unpack one b = 3 chunk (128 values, 12 words: the formulas above). */
void lp_qgroup_pack_chunk3(const uint8_t v[LP_QGROUP_CHUNK3], uint32_t c[LP_QGROUP_CHUNK3_WORDS]);
void lp_qgroup_unpack_chunk3(const uint32_t c[LP_QGROUP_CHUNK3_WORDS], uint8_t v[LP_QGROUP_CHUNK3]);

/* Rows [r0, r1) dequantized to f32: out is (r1 - r0) x cols. w = s * (q - z)
 * computed as s * (float)(q - z), identical in every kernel. OpenMP over rows. */
void lp_qgroup_dequant(const lp_qgroup *w, int64_t r0, int64_t r1, float *out);

/* ---- matrix products from the packed form (qgroup_gemm.c) ----
 * Any thread count gives bit-identical results: rows are cut into fixed
 * tiles and each output element is computed by one thread in a fixed order. */

struct lp_qkernels;

/* Y (T x rows) = X (T x cols) W^T. T < blas_min_tokens (see below): a
 * multi-token kernel that reads each packed block once for up to
 * LP_QGEMM_MAX_T tokens, each token's result bit-identical to a call with
 * T = 1; otherwise row tiles are dequantized into scratch and multiplied
 * with lp_sgemm_nt (results then differ from the packed path by rounding). */
lp_status lp_qgroup_gemm(const lp_qgroup *w, const float *X, int64_t T, float *Y);

#define LP_QGEMM_MAX_T 4 /* tokens per pass of the packed multi-token kernel */


typedef struct {
    const struct lp_qkernels *kernels; /* NULL: lp_qkernels_default() */
    int64_t blas_min_tokens;           /* T at which the sgemm path takes over;
                                          0: the kernel's own (lp_qkernels) */
} lp_qgemm_params;

lp_qgemm_params lp_qgemm_default_params(void);

/* lp_qgroup_gemm with explicit settings (tests and benches compare kernels
 * and paths with it); p = NULL means the defaults. */
lp_status lp_qgroup_gemm_ex(const lp_qgroup *w, const float *X, int64_t T, float *Y,
                            const lp_qgemm_params *p);

/* ---- checkpoint I/O (format.h) ----
 * A view of the tensors <base>.qweight (U32 [rows, blocks * bits]), .scales
 * (F16 [rows, ngroups]) and, asymmetric, .qzeros (U8 [rows, ngroups]),
 * validated as lp_qgroup_view does; qmix's parts use it too. A b = 3 weight
 * of a format version 1 file (blocks in the plane layout, [rows, blocks*3])
 * is converted into an owned copy instead. */
lp_status lp_qgroup_load_view(const lp_fmt_src *in, const char *base, int bits, int group, int sym, int64_t rows,
                              int64_t cols, lp_qgroup *w);
/* The tensors of w under base (as above). */
lp_status lp_qgroup_save_tensors(const lp_qgroup *w, lp_st_writer *st, const char *base);

/* The traits row: {"format":"qgroup","bits":B,"group":G,"sym":S}. */
extern const lp_format lp_format_qgroup;

#endif
