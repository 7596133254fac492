/*
 * qgroup.c - storage of grouped uniform integers: shapes, allocation, views
 * over mapped files (checked as untrusted input), single-value access and
 * block packing. The bit layout is specified in qgroup.h; the scalar code here
 * (lp_qgroup_pack_block / lp_qgroup_unpack_block / get / set) is its
 * executable definition, and the SIMD kernels are tested against it.
 *
 * Design: a block of 32 b-bit values is b uint32 words made of "planes" of
 * width 8, 4, 2, 1 (the binary digits of b, largest first). PLANES_FOR walks
 * them: w = plane width, o = the sum of the widths before it, which is both
 * the plane's first word in the block and its first bit in the value.
 * b = 3 with groups of whole chunks stores its chunks of 128 columns in a
 * layout of their own (qgroup.h): a block inside one is read by unpacking its chunk and written
 * by repacking it (get/put_block), so every writer and scalar reader goes
 * through get/put_block and never computes a block's address itself.
 */
#include "format/qgroup.h"

#include "format/qgroup_q8.h"
#include "llmpress/model.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "format/qgroup_kernels.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLANES_FOR(bits, w, o) \
    for (int w = 8, o = 0; w >= 1; o += ((bits) & w), w >>= 1) if ((bits) & w)

/* Validate a shape and derive group (per-channel resolved), blocks, ngroups
 * and the three byte sizes. `st` is the code to fail with: LP_ERR_ARG for a
 * caller's arguments, LP_ERR_FORMAT for a shape read from a file. */
typedef struct {
    int group;
    int64_t blocks, ngroups;
    size_t q_bytes, s_bytes, z_bytes;
} shape_info;

static lp_status check_shape(lp_status st, int64_t rows, int64_t cols, int bits, int group, int sym,
                             shape_info *si) {
    if (bits < 1 || bits > 8)
        return lp_fail(st, "qgroup: bits = %d, expected 1..8", bits);
    if (rows < 1 || cols < 1)
        return lp_fail(st, "qgroup: shape %lld x %lld, expected rows >= 1 and cols >= 1",
                       (long long)rows, (long long)cols);
    if (cols > INT_MAX)
        return lp_fail(st, "qgroup: cols = %lld, expected < 2^31", (long long)cols);
    if (group == -1 || group >= cols) {
        if (group != -1 && group != cols && group % LP_QGROUP_BLOCK != 0)
            return lp_fail(st, "qgroup: group = %d with cols = %lld, expected a multiple of 32, "
                           "-1 (per-channel) or cols", group, (long long)cols);
        group = (int)cols; /* one group per row */
    } else if (group < 1 || group % LP_QGROUP_BLOCK != 0) {
        return lp_fail(st, "qgroup: group = %d with cols = %lld, expected a multiple of 32, "
                       "-1 (per-channel) or cols", group, (long long)cols);
    }
    if (sym != 0 && sym != 1) return lp_fail(st, "qgroup: sym = %d, expected 0 or 1", sym);
    si->group = group;
    si->blocks = (cols + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    si->ngroups = (cols + group - 1) / group;
    size_t qb, sb;
    if (__builtin_mul_overflow((size_t)rows, (size_t)si->blocks * (size_t)bits * 4u, &qb) ||
        __builtin_mul_overflow((size_t)rows, (size_t)si->ngroups * 2u, &sb) || qb + sb < qb)
        return lp_fail(st, "qgroup: shape %lld x %lld at %d bits overflows size_t",
                       (long long)rows, (long long)cols, bits);
    si->q_bytes = qb;
    si->s_bytes = sb;
    si->z_bytes = sym ? 0 : sb / 2;
    return LP_OK;
}

static void fill_struct(lp_qgroup *w, int64_t rows, int64_t cols, int bits, int sym,
                        const shape_info *si) {
    memset(w, 0, sizeof *w);
    w->bits = bits;
    w->group = si->group;
    w->sym = sym;
    w->rows = rows;
    w->cols = cols;
    w->ngroups = si->ngroups;
    w->blocks = si->blocks;
}

lp_status lp_qgroup_sizes(int64_t rows, int64_t cols, int bits, int group, int sym,
                          size_t *q_bytes, size_t *scales_bytes, size_t *zeros_bytes) {
    shape_info si;
    LP_TRY(check_shape(LP_ERR_ARG, rows, cols, bits, group, sym, &si));
    *q_bytes = si.q_bytes;
    *scales_bytes = si.s_bytes;
    *zeros_bytes = si.z_bytes;
    return LP_OK;
}

lp_status lp_qgroup_init(lp_qgroup *w, int64_t rows, int64_t cols, int bits, int group, int sym) {
    shape_info si;
    memset(w, 0, sizeof *w);
    LP_TRY(check_shape(LP_ERR_ARG, rows, cols, bits, group, sym, &si));
    fill_struct(w, rows, cols, bits, sym, &si);
    w->owns = 1;
    w->q = calloc(1, si.q_bytes);
    w->scales = calloc(1, si.s_bytes);
    w->zeros = sym ? NULL : calloc(1, si.z_bytes);
    if (!w->q || !w->scales || (!sym && !w->zeros)) {
        lp_qgroup_free(w);
        return lp_fail(LP_ERR_NOMEM, "qgroup: cannot allocate %zu bytes for a %lld x %lld w%d weight",
                       si.q_bytes + si.s_bytes + si.z_bytes, (long long)rows, (long long)cols, bits);
    }
    return LP_OK;
}

void lp_qgroup_free(lp_qgroup *w) {
    if (!w) return;
    if (w->owns) {
        free(w->q);
        free(w->scales);
        free(w->zeros);
    }
    memset(w, 0, sizeof *w);
}

lp_status lp_qgroup_view(lp_qgroup *w, int64_t rows, int64_t cols, int bits, int group, int sym,
                         const void *q, size_t q_bytes, const void *scales, size_t scales_bytes,
                         const void *zeros, size_t zeros_bytes) {
    shape_info si;
    memset(w, 0, sizeof *w);
    LP_TRY(check_shape(LP_ERR_FORMAT, rows, cols, bits, group, sym, &si));
    if (q_bytes != si.q_bytes)
        return lp_fail(LP_ERR_FORMAT, "qgroup: q has %zu bytes, expected %zu (%lld rows x %lld words "
                       "x 4 at %d bits); hint: the file's shape or bits do not match its data",
                       q_bytes, si.q_bytes, (long long)rows, (long long)(si.blocks * bits), bits);
    if (scales_bytes != si.s_bytes)
        return lp_fail(LP_ERR_FORMAT, "qgroup: scales have %zu bytes, expected %zu (%lld rows x %lld "
                       "groups of %d columns x 2)", scales_bytes, si.s_bytes, (long long)rows,
                       (long long)si.ngroups, si.group);
    if (sym && (zeros || zeros_bytes))
        return lp_fail(LP_ERR_FORMAT, "qgroup: symmetric weight comes with %zu bytes of zero points, "
                       "expected none", zeros_bytes);
    if (!sym && (!zeros || zeros_bytes != si.z_bytes))
        return lp_fail(LP_ERR_FORMAT, "qgroup: asymmetric weight has %zu bytes of zero points, "
                       "expected %zu (%lld rows x %lld groups)", zeros ? zeros_bytes : 0,
                       si.z_bytes, (long long)rows, (long long)si.ngroups);
    if (!q || !scales || ((uintptr_t)q & 3u) || ((uintptr_t)scales & 1u))
        return lp_fail(LP_ERR_FORMAT, "qgroup: q at %p / scales at %p are missing or misaligned, "
                       "expected 4- and 2-byte alignment", q, scales);
    const uint16_t *s = scales;
    for (int64_t i = 0; i < rows * si.ngroups; i++)
        if ((s[i] & 0x7c00u) == 0x7c00u)
            return lp_fail(LP_ERR_FORMAT, "qgroup: scale of row %lld group %lld is %s (f16 0x%04x), "
                           "expected a finite number", (long long)(i / si.ngroups),
                           (long long)(i % si.ngroups), (s[i] & 0x3ffu) ? "NaN" : "infinite", s[i]);
    if (!sym) {
        const uint8_t *z = zeros;
        unsigned maxq = (1u << bits) - 1u;
        for (int64_t i = 0; i < rows * si.ngroups; i++)
            if (z[i] > maxq)
                return lp_fail(LP_ERR_FORMAT, "qgroup: zero point of row %lld group %lld is %u, "
                               "expected <= %u for %d bits", (long long)(i / si.ngroups),
                               (long long)(i % si.ngroups), z[i], maxq, bits);
    }
    fill_struct(w, rows, cols, bits, sym, &si);
    /* Views never write: the const is cast away only to share the struct. */
    w->q = (uint32_t *)q;
    w->scales = (uint16_t *)scales;
    w->zeros = (uint8_t *)zeros;
    w->owns = 0;
    return LP_OK;
}

size_t lp_qgroup_nbytes(const lp_qgroup *w) {
    size_t n = (size_t)w->rows * (size_t)lp_qgroup_row_words(w) * 4u;
    n += (size_t)w->rows * (size_t)w->ngroups * 2u;
    if (!w->sym) n += (size_t)w->rows * (size_t)w->ngroups;
    return n;
}

void lp_qgroup_pack_block(const uint8_t v[LP_QGROUP_BLOCK], int bits, uint32_t *blk) {
    memset(blk, 0, (size_t)bits * 4u);
    PLANES_FOR(bits, w, o) {
        uint32_t m = (1u << w) - 1u;
        for (int j = 0; j < LP_QGROUP_BLOCK; j++)
            blk[o + j % w] |= ((uint32_t)(v[j] >> o) & m) << (w * (j / w));
    }
}

void lp_qgroup_unpack_block(const uint32_t *blk, int bits, uint8_t v[LP_QGROUP_BLOCK]) {
    memset(v, 0, LP_QGROUP_BLOCK);
    PLANES_FOR(bits, w, o) {
        uint32_t m = (1u << w) - 1u;
        for (int j = 0; j < LP_QGROUP_BLOCK; j++)
            v[j] |= (uint8_t)(((blk[o + j % w] >> (w * (j / w))) & m) << o);
    }
}

void lp_qgroup_pack_chunk3(const uint8_t v[LP_QGROUP_CHUNK3], uint32_t c[LP_QGROUP_CHUNK3_WORDS]) {
    uint8_t bytes[LP_QGROUP_CHUNK3_WORDS * 4];
    for (int m = 0; m < 32; m++)
        bytes[m] = (uint8_t)((v[m] & 7u) | (v[m + 32] & 7u) << 3 | (v[m + 64] >> 2 & 1u) << 6 | (v[m + 96] >> 2 & 1u) << 7);
    for (int m = 0; m < 16; m++) {
        unsigned b = 0;
        for (int l = 0; l < 4; l++) b |= (v[64 + m + 16 * l] & 3u) << (2 * l);
        bytes[32 + m] = (uint8_t)b;
    }
    memcpy(c, bytes, sizeof bytes); /* little-endian words */
}

void lp_qgroup_unpack_chunk3(const uint32_t c[LP_QGROUP_CHUNK3_WORDS], uint8_t v[LP_QGROUP_CHUNK3]) {
    uint8_t a[LP_QGROUP_CHUNK3_WORDS * 4];
    memcpy(a, c, sizeof a);
    for (int k = 0; k < 64; k++) v[k] = (uint8_t)(a[k % 32] >> (3 * (k / 32)) & 7u);
    for (int k = 64; k < 128; k++) {
        const int p = k - 64;
        v[k] = (uint8_t)((a[32 + p % 16] >> (2 * (p / 16)) & 3u) | (a[p % 32] >> (6 + p / 32) & 1u) << 2);
    }
}

/* Block b's chunk at b = 3 (lp_qgroup_in_chunk3), and where the block
 * starts in it. */
static uint32_t *chunk3_of(const lp_qgroup *w, int64_t r, int64_t b, int *at) {
    *at = (int)(b % 4) * LP_QGROUP_BLOCK;
    return w->q + r * lp_qgroup_row_words(w) + b / 4 * LP_QGROUP_CHUNK3_WORDS;
}

void lp_qgroup_get_block(const lp_qgroup *w, int64_t r, int64_t b, uint8_t v[LP_QGROUP_BLOCK]) {
    LP_ASSERT(r >= 0 && r < w->rows && b >= 0 && b < w->blocks);
    if (!lp_qgroup_in_chunk3(w, b)) {
        lp_qgroup_unpack_block(w->q + r * lp_qgroup_row_words(w) + b * w->bits, w->bits, v);
        return;
    }
    int at;
    uint8_t all[LP_QGROUP_CHUNK3];
    lp_qgroup_unpack_chunk3(chunk3_of(w, r, b, &at), all);
    memcpy(v, all + at, LP_QGROUP_BLOCK);
}

void lp_qgroup_put_block(lp_qgroup *w, int64_t r, int64_t b, const uint8_t v[LP_QGROUP_BLOCK]) {
    LP_ASSERT(r >= 0 && r < w->rows && b >= 0 && b < w->blocks);
    if (!lp_qgroup_in_chunk3(w, b)) {
        lp_qgroup_pack_block(v, w->bits, w->q + r * lp_qgroup_row_words(w) + b * w->bits);
        return;
    }
    int at;
    uint8_t all[LP_QGROUP_CHUNK3];
    uint32_t *c = chunk3_of(w, r, b, &at);
    lp_qgroup_unpack_chunk3(c, all);
    memcpy(all + at, v, LP_QGROUP_BLOCK);
    lp_qgroup_pack_chunk3(all, c);
}

/* Value k (0..127) of a b = 3 chunk: its bits as (byte, shift, width)
 * pieces, the low piece first (qgroup.h's formulas). */
static int chunk3_pieces(int k, int byte[2], int shift[2], int width[2]) {
    if (k < 64) {
        byte[0] = k % 32, shift[0] = 3 * (k / 32), width[0] = 3;
        return 1;
    }
    const int p = k - 64;
    byte[0] = 32 + p % 16, shift[0] = 2 * (p / 16), width[0] = 2;
    byte[1] = p % 32, shift[1] = 6 + p / 32, width[1] = 1;
    return 2;
}

unsigned lp_qgroup_get(const lp_qgroup *w, int64_t r, int64_t c) {
    LP_ASSERT(r >= 0 && r < w->rows && c >= 0 && c < w->cols);
    if (lp_qgroup_in_chunk3(w, c / LP_QGROUP_BLOCK)) {
        const uint8_t *a = (const uint8_t *)(w->q + r * lp_qgroup_row_words(w) + c / LP_QGROUP_CHUNK3 * LP_QGROUP_CHUNK3_WORDS);
        int byte[2], shift[2], width[2], o = 0;
        unsigned v = 0;
        for (int i = 0, n = chunk3_pieces((int)(c % LP_QGROUP_CHUNK3), byte, shift, width); i < n; o += width[i++])
            v |= ((unsigned)a[byte[i]] >> shift[i] & ((1u << width[i]) - 1u)) << o;
        return v;
    }
    const uint32_t *blk = w->q + r * lp_qgroup_row_words(w) + c / LP_QGROUP_BLOCK * w->bits;
    int j = (int)(c % LP_QGROUP_BLOCK);
    unsigned v = 0;
    PLANES_FOR(w->bits, pw, o)
        v |= ((blk[o + j % pw] >> (pw * (j / pw))) & ((1u << pw) - 1u)) << o;
    return v;
}

void lp_qgroup_set(lp_qgroup *w, int64_t r, int64_t c, unsigned v) {
    LP_ASSERT(r >= 0 && r < w->rows && c >= 0 && c < w->cols);
    LP_ASSERT(v < (1u << w->bits));
    if (lp_qgroup_in_chunk3(w, c / LP_QGROUP_BLOCK)) {
        uint8_t *a = (uint8_t *)(w->q + r * lp_qgroup_row_words(w) + c / LP_QGROUP_CHUNK3 * LP_QGROUP_CHUNK3_WORDS);
        int byte[2], shift[2], width[2], o = 0;
        for (int i = 0, n = chunk3_pieces((int)(c % LP_QGROUP_CHUNK3), byte, shift, width); i < n; o += width[i++]) {
            const unsigned m = (1u << width[i]) - 1u;
            a[byte[i]] = (uint8_t)((a[byte[i]] & ~(m << shift[i])) | ((v >> o) & m) << shift[i]);
        }
        return;
    }
    uint32_t *blk = w->q + r * lp_qgroup_row_words(w) + c / LP_QGROUP_BLOCK * w->bits;
    int j = (int)(c % LP_QGROUP_BLOCK);
    PLANES_FOR(w->bits, pw, o) {
        uint32_t m = (1u << pw) - 1u;
        int sh = pw * (j / pw);
        blk[o + j % pw] = (blk[o + j % pw] & ~(m << sh)) | (((v >> o) & m) << sh);
    }
}

void lp_qgroup_dequant(const lp_qgroup *w, int64_t r0, int64_t r1, float *out) {
    const lp_qkernels *k = lp_qkernels_default();
    enum { TILE = 16 };
    int64_t ntiles = (r1 - r0 + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (ntiles > 1 && (r1 - r0) * w->cols > (1 << 16))
    for (int64_t t = 0; t < ntiles; t++) {
        int64_t a = r0 + t * TILE, b = a + TILE < r1 ? a + TILE : r1;
        k->dequant(w, a, b, out + (a - r0) * w->cols);
    }
}

/* ---- checkpoint I/O and the traits row ---- */

/* w = an owned copy of v, a validated view of a format version 1 weight
 * whose b = 3 chunks are still in the plane layout: the same bytes, each
 * whole chunk repacked. */
static lp_status qgroup3_from_v1(lp_qgroup *w, const lp_qgroup *v) {
    LP_TRY(lp_qgroup_init(w, v->rows, v->cols, 3, v->group, v->sym));
    const size_t qb = (size_t)(v->rows * lp_qgroup_row_words(v)) * 4u, sb = (size_t)(v->rows * v->ngroups) * 2u;
    memcpy(w->q, v->q, qb); /* the blocks past the chunks are as they were */
    memcpy(w->scales, v->scales, sb);
    if (!v->sym) memcpy(w->zeros, v->zeros, sb / 2);
    const int64_t nchunks = lp_qgroup_chunk3_blocks(w) / 4;
#pragma omp parallel for schedule(static) if (v->rows * nchunks > 1024)
    for (int64_t r = 0; r < v->rows; r++)
        for (int64_t c = 0; c < nchunks; c++) {
            uint8_t val[LP_QGROUP_CHUNK3];
            const uint32_t *q1 = v->q + r * lp_qgroup_row_words(v) + c * LP_QGROUP_CHUNK3_WORDS; /* 4 plane blocks */
            for (int j = 0; j < 4; j++) lp_qgroup_unpack_block(q1 + 3 * j, 3, val + 32 * j);
            lp_qgroup_pack_chunk3(val, w->q + r * lp_qgroup_row_words(w) + c * LP_QGROUP_CHUNK3_WORDS);
        }
    return LP_OK;
}

lp_status lp_qgroup_load_view(const lp_fmt_src *in, const char *base, int bits, int group, int sym, int64_t rows,
                              int64_t cols, lp_qgroup *w) {
    size_t qb, sb, zb;
    if (lp_qgroup_sizes(rows, cols, bits, group, sym, &qb, &sb, &zb) != LP_OK)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": invalid qgroup parameters bits=%d group=%d "
                       "for a %lld x %lld weight", in->name, base, bits, group, (long long)rows, (long long)cols);
    const int64_t blocks = (cols + LP_QGROUP_BLOCK - 1) / LP_QGROUP_BLOCK;
    const int64_t ngroups = (int64_t)(sb / 2) / rows;
    const lp_tensor_view *q, *s, *z = NULL;
    LP_TRY(lp_fmt_tensor(in, base, ".qweight", LP_DT_U32, rows, blocks * bits, &q));
    LP_TRY(lp_fmt_tensor(in, base, ".scales", LP_DT_F16, rows, ngroups, &s));
    if (!sym) LP_TRY(lp_fmt_tensor(in, base, ".qzeros", LP_DT_U8, rows, ngroups, &z));
    lp_status st = lp_qgroup_view(w, rows, cols, bits, group, sym, q->data, q->nbytes, s->data, s->nbytes,
                                  z ? z->data : NULL, z ? z->nbytes : 0);
    if (st == LP_OK && lp_qgroup_chunk3_blocks(w) && lp_fmt_version(in) < 2) {
        const lp_qgroup v1 = *w;
        st = qgroup3_from_v1(w, &v1);
    }
    if (st != LP_OK) return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    return LP_OK;
}

lp_status lp_qgroup_save_tensors(const lp_qgroup *w, lp_st_writer *st, const char *base) {
    LP_TRY(lp_fmt_add(st, base, ".qweight", LP_DT_U32, w->rows, lp_qgroup_row_words(w), w->q));
    LP_TRY(lp_fmt_add(st, base, ".scales", LP_DT_F16, w->rows, w->ngroups, w->scales));
    if (!w->sym) LP_TRY(lp_fmt_add(st, base, ".qzeros", LP_DT_U8, w->rows, w->ngroups, w->zeros));
    return LP_OK;
}

static size_t qgroup_nbytes(const void *d) { return lp_qgroup_nbytes(d); }

static void qgroup_describe(const void *d, char *buf, size_t n) {
    const lp_qgroup *q = d;
    if (q->group >= q->cols) snprintf(buf, n, "qgroup w%d per-channel %s", q->bits, q->sym ? "sym" : "asym");
    else snprintf(buf, n, "qgroup w%d g%d %s", q->bits, q->group, q->sym ? "sym" : "asym");
}

static lp_status qgroup_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    lp_qgroup_dequant(d, r0, r1, out);
    return LP_OK;
}

static lp_status gemm_with(const void *d, const float *X, int64_t T, float *Y, lp_isa isa) {
    const lp_qgemm_params p = {.kernels = lp_qkernels_for(isa), .blas_min_tokens = 0};
    return lp_qgroup_gemm_ex(d, X, T, Y, &p);
}
static lp_status gemm_ref(const void *d, const float *X, int64_t T, float *Y) {
    return gemm_with(d, X, T, Y, LP_ISA_REF);
}
static lp_status gemm_avx2(const void *d, const float *X, int64_t T, float *Y) {
    return gemm_with(d, X, T, Y, LP_ISA_AVX2);
}
static lp_status gemm_avx512(const void *d, const float *X, int64_t T, float *Y) {
    const lp_act act = lp_activations();
    if (act != LP_ACT_F32 && lp_qgroup_q8_supported(d)) {
        if (T == 1) return lp_qgroup_gemv_q8(d, X, Y);
        if (act == LP_ACT_Q8_ALL) return lp_qgroup_gemm_q8(d, X, T, Y);
    }
    return gemm_with(d, X, T, Y, LP_ISA_AVX512);
}

static lp_status qgroup_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_qgroup *q = d;
    LP_TRY(lp_qgroup_save_tensors(q, w, base));
    snprintf(meta, n, "{\"format\":\"qgroup\",\"bits\":%d,\"group\":%d,\"sym\":%s}", q->bits, q->group,
             q->sym ? "true" : "false");
    return LP_OK;
}

static lp_status qgroup_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                             void **data) {
    int64_t bits, group;
    bool sym;
    LP_TRY(lp_fmt_int(in, base, desc, "bits", 1, 8, &bits));
    LP_TRY(lp_fmt_int(in, base, desc, "group", 1, INT32_MAX, &group));
    LP_TRY(lp_fmt_bool(in, base, desc, "sym", &sym));
    lp_qgroup *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_qgroup_load_view(in, base, (int)bits, (int)group, sym, rows, cols, w);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    *data = w;
    return LP_OK;
}

static void qgroup_free(void *d) {
    lp_qgroup_free(d);
    free(d);
}

const lp_format lp_format_qgroup = {
    .name = "qgroup",
    .nbytes = qgroup_nbytes,
    .describe = qgroup_describe,
    .dequant = qgroup_dequant,
    .gemm = {gemm_ref, gemm_avx2, gemm_avx512},
    .save = qgroup_save,
    .load = qgroup_load,
    .free = qgroup_free,
};
