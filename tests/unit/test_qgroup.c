/*
 * test_qgroup.c - the grouped-integer storage format and RTN.
 *
 * Checks: the documented bit layouts on hand-worked examples (b = 3's
 * chunks too); set/get round trips for every b = 1..8 on ragged widths; a
 * format version 1 file (b = 3 in the plane layout) read as equal values; exact byte sizes; argument and
 * file-view validation (each rejected with a message); RTN against a plain
 * re-implementation of GPTQ's Quantizer (written below from its definition,
 * using _Float16 for the f16 rounding so it shares no code with the library)
 * on random data, exact ties, all-zero and constant groups; and RTN error
 * bounds.
 */
#include "core/half.h"
#include "format/qgroup.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "quant/rtn.h"
#include "test.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* ---------------- the layout, from qgroup.h, on worked examples ---------------- */

static void test_layout_examples(void) {
    uint8_t v[32], back[32];
    uint32_t blk[8];
    for (int j = 0; j < 32; j++) v[j] = (uint8_t)j;
    /* b=4: word i holds q_i, q_{i+4}, ..., q_{i+28} in its nibbles from the bottom */
    for (int j = 0; j < 32; j++) v[j] = (uint8_t)((j * 7 + 3) & 15);
    lp_qgroup_pack_block(v, 4, blk);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 8; k++) CHECK(((blk[i] >> (4 * k)) & 15u) == v[i + 4 * k]);
    /* b=8: word i holds bytes q_i, q_{i+8}, q_{i+16}, q_{i+24} */
    for (int j = 0; j < 32; j++) v[j] = (uint8_t)(j * 37 + 11);
    lp_qgroup_pack_block(v, 8, blk);
    for (int i = 0; i < 8; i++)
        for (int k = 0; k < 4; k++) CHECK(((blk[i] >> (8 * k)) & 255u) == v[i + 8 * k]);
    /* b=1: bit j of word 0 */
    for (int j = 0; j < 32; j++) v[j] = (uint8_t)((j * 5 + 1) % 3 == 0);
    lp_qgroup_pack_block(v, 1, blk);
    for (int j = 0; j < 32; j++) CHECK(((blk[0] >> j) & 1u) == v[j]);
    /* b=3: words 0-1 = the b=2 layout of the low 2 bits, word 2 bit j = bit 2 of q_j */
    for (int j = 0; j < 32; j++) v[j] = (uint8_t)((j * 3 + 5) & 7);
    lp_qgroup_pack_block(v, 3, blk);
    for (int j = 0; j < 32; j++) {
        CHECK(((blk[j % 2] >> (2 * (j / 2))) & 3u) == (v[j] & 3u));
        CHECK(((blk[2] >> j) & 1u) == (v[j] >> 2));
    }
    /* b=7: 4 + 2 + 1 planes at words 0-3, 4-5, 6 */
    for (int j = 0; j < 32; j++) v[j] = (uint8_t)((j * 29 + 17) & 127);
    lp_qgroup_pack_block(v, 7, blk);
    for (int j = 0; j < 32; j++) {
        CHECK(((blk[j % 4] >> (4 * (j / 4))) & 15u) == (v[j] & 15u));
        CHECK(((blk[4 + j % 2] >> (2 * (j / 2))) & 3u) == ((v[j] >> 4) & 3u));
        CHECK(((blk[6] >> j) & 1u) == (v[j] >> 6));
    }
    /* b=3 chunks (128 columns, qgroup.h): A[m] = v_m | v_(m+32) << 3 | top(v_(m+64)) << 6 |
     * top(v_(m+96)) << 7, B[m] = lo2(v_(64+m+16l)) << 2l */
    {
        uint8_t c[128], cb[128], bytes[48];
        uint32_t words[12];
        for (int k = 0; k < 128; k++) c[k] = (uint8_t)((k * 37 + 11) % 8);
        lp_qgroup_pack_chunk3(c, words);
        memcpy(bytes, words, sizeof bytes);
        for (int m = 0; m < 32; m++) {
            CHECK((bytes[m] & 7u) == c[m]);
            CHECK(((bytes[m] >> 3) & 7u) == c[m + 32]);
            CHECK(((bytes[m] >> 6) & 1u) == (c[m + 64] >> 2u));
            CHECK(((bytes[m] >> 7) & 1u) == (c[m + 96] >> 2u));
        }
        for (int m = 0; m < 16; m++)
            for (int l = 0; l < 4; l++) CHECK(((bytes[32 + m] >> (2 * l)) & 3u) == (c[64 + m + 16 * l] & 3u));
        lp_qgroup_unpack_chunk3(words, cb);
        CHECK(!memcmp(c, cb, sizeof c));
        /* a weight of 172 columns, per-channel: blocks 0-3 are chunk 0 (words 0-11), block 4 and 5
         * the plane layout at words 12 and 15; get/set and get/put_block agree with both. With
         * groups of 32 every block is in the plane layout. */
        lp_qgroup w32;
        CHECK_OK(lp_qgroup_init(&w32, 1, 172, 3, 32, 0));
        CHECK(lp_qgroup_chunk3_blocks(&w32) == 0);
        for (int k = 0; k < 172; k++) lp_qgroup_set(&w32, 0, k, (unsigned)((k * 5 + 3) % 8));
        lp_qgroup_unpack_block(w32.q, 3, v);
        for (int j = 0; j < 32; j++) CHECK(v[j] == (j * 5 + 3) % 8);
        lp_qgroup_free(&w32);
        lp_qgroup w;
        CHECK_OK(lp_qgroup_init(&w, 2, 172, 3, -1, 0));
        CHECK(lp_qgroup_chunk3_blocks(&w) == 4);
        for (int k = 0; k < 172; k++) lp_qgroup_set(&w, 1, k, (unsigned)((k * 5 + 3) % 8));
        uint8_t all[128];
        lp_qgroup_unpack_chunk3(w.q + lp_qgroup_row_words(&w), all);
        for (int k = 0; k < 128; k++) CHECK(all[k] == (k * 5 + 3) % 8);
        for (int b = 4; b < 6; b++) {
            lp_qgroup_unpack_block(w.q + lp_qgroup_row_words(&w) + 3 * b, 3, v);
            for (int j = 0; j < 32 && 32 * b + j < 172; j++) CHECK(v[j] == ((32 * b + j) * 5 + 3) % 8);
        }
        CHECK(lp_qgroup_in_chunk3(&w, 3) && !lp_qgroup_in_chunk3(&w, 4));
        for (int k = 0; k < 128; k++) cb[k] = (uint8_t)(7 - all[k]);
        for (int b = 0; b < 4; b++) lp_qgroup_put_block(&w, 0, b, cb + 32 * b);
        for (int k = 0; k < 128; k++) CHECK(lp_qgroup_get(&w, 0, k) == cb[k]);
        lp_qgroup_free(&w);
    }
    /* every b: pack/unpack round trip of random blocks */
    unsigned long long rng = 42;
    for (int b = 1; b <= 8; b++)
        for (int rep = 0; rep < 50; rep++) {
            for (int j = 0; j < 32; j++) v[j] = (uint8_t)(test_rand_u64(&rng) & ((1u << b) - 1));
            lp_qgroup_pack_block(v, b, blk);
            lp_qgroup_unpack_block(blk, b, back);
            CHECK(!memcmp(v, back, 32));
        }
}

/* ---------------- format version 1 files (b = 3 in the plane layout) ---------------- */

/* A file holding one 5 x 300 b = 3 g128 weight (2 chunks + 2 plane blocks
 * per row) as format version ver writes it, loaded through the traits row:
 * version 1 is converted (equal values, an owned copy), version 2 viewed. */
static void test_version1_file(void) {
    enum { R = 5, C = 300 };
    lp_qgroup w;
    CHECK_OK(lp_qgroup_init(&w, R, C, 3, 128, 0));
    unsigned long long rng = 7;
    for (int64_t i = 0; i < R * C; i++) lp_qgroup_set(&w, i / C, i % C, (unsigned)(test_rand_u64(&rng) & 7));
    for (int64_t i = 0; i < R * w.ngroups; i++) {
        w.scales[i] = lp_f32_to_f16(0.01f * (float)(i + 1));
        w.zeros[i] = (uint8_t)(i % 8);
    }
    uint32_t *v1 = calloc((size_t)(R * w.blocks * 3), sizeof(uint32_t)); /* every block in the plane layout */
    for (int64_t r = 0; r < R; r++)
        for (int64_t b = 0; b < w.blocks; b++) {
            uint8_t v[32];
            lp_qgroup_get_block(&w, r, b, v);
            lp_qgroup_pack_block(v, 3, v1 + (r * w.blocks + b) * 3);
        }
    CHECK(memcmp(v1, w.q, (size_t)(R * lp_qgroup_row_words(&w)) * 4) != 0); /* the layouts differ in the chunks */
    char dir[] = "/tmp/lp_test_qgroup_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    for (int ver = 1; ver <= 2; ver++) {
        char path[256];
        snprintf(path, sizeof path, "%s/v%d.safetensors", dir, ver);
        lp_st_writer *st;
        CHECK_OK(lp_st_writer_init(&st));
        CHECK_OK(lp_st_writer_meta(st, "llmpress.format_version", ver == 1 ? "1" : LP_FORMAT_VERSION_STR));
        if (ver == 2) CHECK_OK(lp_qgroup_save_tensors(&w, st, "l"));
        else {
            lp_qgroup old = w;
            old.q = v1;
            CHECK_OK(lp_qgroup_save_tensors(&old, st, "l"));
        }
        CHECK_OK(lp_st_writer_save(st, path));
        lp_st_writer_free(st);
        lp_weights *f;
        CHECK_OK(lp_weights_open(path, &f));
        lp_json_doc *desc;
        const char *js = "{\"format\":\"qgroup\",\"bits\":3,\"group\":128,\"sym\":false}";
        CHECK_OK(lp_json_parse(js, strlen(js), "desc", &desc));
        const lp_fmt_src in = {f, path};
        void *data = NULL;
        CHECK_OK(lp_format_qgroup.load(&in, "l", lp_json_root(desc), R, C, &data));
        const lp_qgroup *got = data;
        int bad = 0;
        for (int64_t i = 0; i < R * C; i++) bad += lp_qgroup_get(got, i / C, i % C) != lp_qgroup_get(&w, i / C, i % C);
        CHECKF(bad == 0, "format version %d: %d values differ", ver, bad);
        CHECK(!memcmp(got->q, w.q, (size_t)(R * lp_qgroup_row_words(&w)) * 4));
        CHECK(!memcmp(got->scales, w.scales, (size_t)(R * w.ngroups) * 2) && !memcmp(got->zeros, w.zeros, (size_t)(R * w.ngroups)));
        CHECK(got->owns == (ver == 1)); /* version 2 is used in place */
        lp_format_qgroup.free(data);
        lp_json_free(desc);
        lp_weights_close(f);
        remove(path);
    }
    rmdir(dir);
    free(v1);
    lp_qgroup_free(&w);
}

/* ---------------- storage: set/get, sizes, validation ---------------- */

static void test_set_get(void) {
    const int64_t cols_list[] = {1, 31, 32, 33, 172, 4097};
    unsigned long long rng = 7;
    for (int b = 1; b <= 8; b++)
        for (size_t ci = 0; ci < sizeof cols_list / sizeof *cols_list; ci++) {
            int64_t rows = 3, cols = cols_list[ci];
            lp_qgroup w;
            CHECK_OK(lp_qgroup_init(&w, rows, cols, b, cols >= 64 ? 64 : -1, b & 1));
            uint8_t *ref = malloc((size_t)(rows * cols));
            /* write in a scrambled order so neighbours are set after each other */
            for (int pass = 0; pass < 2; pass++)
                for (int64_t k = 0; k < rows * cols; k++) {
                    int64_t i = (k * 7919) % (rows * cols);
                    if (((rows * cols) % 7919) == 0) i = k;
                    ref[i] = (uint8_t)(test_rand_u64(&rng) & ((1u << b) - 1));
                    lp_qgroup_set(&w, i / cols, i % cols, ref[i]);
                }
            int bad = 0;
            for (int64_t i = 0; i < rows * cols; i++) bad += lp_qgroup_get(&w, i / cols, i % cols) != ref[i];
            CHECKF(bad == 0, "b=%d cols=%lld: %d values differ", b, (long long)cols, bad);
            /* get agrees with unpacking whole blocks, and padding stays 0 */
            for (int64_t r = 0; r < rows; r++)
                for (int64_t k = 0; k < w.blocks; k++) {
                    uint8_t v[32];
                    lp_qgroup_get_block(&w, r, k, v);
                    for (int j = 0; j < 32; j++) {
                        int64_t c = k * 32 + j;
                        CHECK(v[j] == (c < cols ? ref[r * cols + c] : 0));
                    }
                }
            free(ref);
            lp_qgroup_free(&w);
        }
}

static void test_sizes_and_args(void) {
    lp_qgroup w;
    /* Llama-7B MLP: 4096 x 11008 at 4 bits, g128, asym */
    CHECK_OK(lp_qgroup_init(&w, 4096, 11008, 4, 128, 0));
    CHECK(w.blocks == 344 && w.ngroups == 86 && w.group == 128);
    CHECK(lp_qgroup_nbytes(&w) == (size_t)4096 * 344 * 4 * 4 + (size_t)4096 * 86 * 2 + (size_t)4096 * 86);
    lp_qgroup_free(&w);
    CHECK(w.q == NULL);
    lp_qgroup_free(NULL);
    /* per-channel on a width that is not a multiple of 32; sym has no zeros */
    CHECK_OK(lp_qgroup_init(&w, 5, 172, 3, -1, 1));
    CHECK(w.group == 172 && w.ngroups == 1 && w.blocks == 6 && w.zeros == NULL);
    CHECK(lp_qgroup_nbytes(&w) == (size_t)5 * 6 * 3 * 4 + 5 * 2);
    lp_qgroup_free(&w);
    /* ragged last group */
    CHECK_OK(lp_qgroup_init(&w, 2, 4097, 2, 128, 0));
    CHECK(w.ngroups == 33 && w.blocks == 129);
    CHECK(lp_qgroup_nbytes(&w) == (size_t)2 * 129 * 2 * 4 + 2 * 33 * 3);
    size_t qb, sb, zb;
    CHECK_OK(lp_qgroup_sizes(2, 4097, 2, 128, 0, &qb, &sb, &zb));
    CHECK(qb + sb + zb == lp_qgroup_nbytes(&w));
    lp_qgroup_free(&w);
    /* bad arguments */
    CHECK(lp_qgroup_init(&w, 4, 64, 0, 32, 0) == LP_ERR_ARG);
    CHECK(strstr(lp_last_error(), "bits") != NULL);
    CHECK(lp_qgroup_init(&w, 4, 64, 9, 32, 0) == LP_ERR_ARG);
    CHECK(lp_qgroup_init(&w, 4, 128, 4, 48, 0) == LP_ERR_ARG);
    CHECK(strstr(lp_last_error(), "48") != NULL);
    CHECK(lp_qgroup_init(&w, 4, 128, 4, 0, 0) == LP_ERR_ARG);
    CHECK(lp_qgroup_init(&w, 4, 0, 4, 32, 0) == LP_ERR_ARG);
    CHECK(lp_qgroup_init(&w, 0, 64, 4, 32, 0) == LP_ERR_ARG);
    CHECK(lp_qgroup_init(&w, 4, 64, 4, 32, 2) == LP_ERR_ARG);
    CHECK(lp_qgroup_init(&w, 4, 100, 4, 172, 0) == LP_ERR_ARG); /* > cols, not a multiple of 32 */
    CHECK_OK(lp_qgroup_init(&w, 4, 100, 4, 128, 0));           /* > cols: per-channel */
    CHECK(w.group == 100 && w.ngroups == 1);
    lp_qgroup_free(&w);
}

static void test_view(void) {
    lp_qgroup a, v;
    CHECK_OK(lp_qgroup_init(&a, 3, 100, 4, 64, 0));
    for (int64_t i = 0; i < 300; i++) lp_qgroup_set(&a, i / 100, i % 100, (unsigned)(i % 16));
    for (int64_t i = 0; i < 6; i++) {
        a.scales[i] = lp_f32_to_f16(0.01f * (float)(i + 1));
        a.zeros[i] = (uint8_t)(i + 3);
    }
    size_t qb = 3 * 4 * 4 * 4, sb = 3 * 2 * 2, zb = 3 * 2;
    CHECK_OK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, a.q, qb, a.scales, sb, a.zeros, zb));
    CHECK(v.owns == 0 && v.q == a.q && lp_qgroup_nbytes(&v) == qb + sb + zb);
    int bad = 0;
    for (int64_t i = 0; i < 300; i++) bad += lp_qgroup_get(&v, i / 100, i % 100) != (unsigned)(i % 16);
    CHECK(bad == 0);
    lp_qgroup_free(&v); /* a view frees nothing: a's buffers stay usable */
    CHECK(v.q == NULL && lp_qgroup_get(&a, 2, 99) == 299 % 16);

    /* every inconsistency is LP_ERR_FORMAT with a message naming it */
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, a.q, qb - 4, a.scales, sb, a.zeros, zb) == LP_ERR_FORMAT);
    CHECK(strstr(lp_last_error(), "q has") != NULL);
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, a.q, qb, a.scales, sb + 2, a.zeros, zb) == LP_ERR_FORMAT);
    CHECK(strstr(lp_last_error(), "scales") != NULL);
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, a.q, qb, a.scales, sb, NULL, 0) == LP_ERR_FORMAT);
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 64, 1, a.q, qb, a.scales, sb, a.zeros, zb) == LP_ERR_FORMAT);
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, a.q, qb, a.scales, sb, a.zeros, zb - 1) == LP_ERR_FORMAT);
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 48, 0, a.q, qb, a.scales, sb, a.zeros, zb) == LP_ERR_FORMAT);
    CHECK(lp_qgroup_view(&v, 3, 100, 11, 64, 0, a.q, qb, a.scales, sb, a.zeros, zb) == LP_ERR_FORMAT);
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, (const char *)a.q + 1, qb, a.scales, sb, a.zeros, zb) ==
          LP_ERR_FORMAT);
    CHECK(strstr(lp_last_error(), "align") != NULL);
    a.zeros[4] = 16; /* > maxq = 15 */
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, a.q, qb, a.scales, sb, a.zeros, zb) == LP_ERR_FORMAT);
    CHECK(strstr(lp_last_error(), "zero point of row 2 group 0 is 16") != NULL);
    a.zeros[4] = 15;
    CHECK_OK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, a.q, qb, a.scales, sb, a.zeros, zb));
    a.scales[3] = 0x7e00; /* NaN */
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, a.q, qb, a.scales, sb, a.zeros, zb) == LP_ERR_FORMAT);
    CHECK(strstr(lp_last_error(), "NaN") != NULL);
    a.scales[3] = 0xfc00; /* -inf */
    CHECK(lp_qgroup_view(&v, 3, 100, 4, 64, 0, a.q, qb, a.scales, sb, a.zeros, zb) == LP_ERR_FORMAT);
    lp_qgroup_free(&a);
}

/* ---------------- RTN against a plain re-implementation of GPTQ's Quantizer ---------------- */

static float round_half_even(float v) { /* torch.round, written out */
    float r = floorf(v), d = v - r;
    if (d > 0.5f || (d == 0.5f && fmodf(r, 2.0f) != 0.0f)) r += 1.0f;
    return r;
}

static float to_f16(float s) { return (float)(_Float16)s; } /* hardware/compiler f16 rounding */

/* GPTQ find_params (mse=False) on one group, with the f16-rounded scale. */
static void model_params(const float *x, int n, int bits, int sym, float *scale, float *zero) {
    float maxq = (float)((1 << bits) - 1);
    float xmin = 0, xmax = 0;
    for (int i = 0; i < n; i++) {
        xmin = fminf(xmin, x[i]);
        xmax = fmaxf(xmax, x[i]);
    }
    if (sym) {
        xmax = fmaxf(fabsf(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0) {
        xmin = -1;
        xmax = 1;
    }
    float s = to_f16((xmax - xmin) / maxq);
    if (s == 0) s = 5.9604645e-08f; /* 2^-24 */
    *scale = s;
    *zero = sym ? (maxq + 1) / 2 : round_half_even(-xmin / s);
}

static int model_q(float x, float s, float z, int bits) {
    float q = round_half_even(x / s) + z;
    float maxq = (float)((1 << bits) - 1);
    return (int)(q < 0 ? 0 : q > maxq ? maxq : q);
}

/* GPTQ's symmetric quirk: a group with no negative value keeps xmin = 0, so
 * its scale is xmax / maxq around the zero 2^(b-1) and the top half clamps.
 * The model reproduces it; the error bound does not apply there. */
static int kind_positive(const float *x, int n) {
    for (int i = 0; i < n; i++)
        if (x[i] < 0) return 0;
    return 1;
}

typedef enum { DATA_NORMAL, DATA_TIES, DATA_ZERO, DATA_CONST_POS, DATA_CONST_NEG, DATA_POSITIVE } data_kind;

/* Fill one group of n values. TIES: multiples of 1/8 on a grid whose scale is
 * exactly 1/4, so x/scale hits every k + 1/2 (round half to even matters). */
static void fill_group(float *x, int n, data_kind kind, int bits, int sym, unsigned long long *rng) {
    int maxq = (1 << bits) - 1;
    for (int i = 0; i < n; i++) {
        switch (kind) {
        case DATA_NORMAL: x[i] = 0.02f * test_randn(rng); break;
        case DATA_ZERO: x[i] = 0.0f; break;
        case DATA_CONST_POS: x[i] = 0.0371f; break;
        case DATA_CONST_NEG: x[i] = -1.25f; break;
        case DATA_POSITIVE: x[i] = 0.5f + 0.1f * fabsf(test_randn(rng)); break;
        case DATA_TIES: {
            /* asym: [-1/2, maxq/4 - 1/2] -> scale (maxq/4)/maxq = 1/4, zero 2.
             * sym: [-maxq/8, maxq/8] -> scale 2*(maxq/8)/maxq = 1/4. */
            int lo = sym ? -maxq : -4, hi = sym ? maxq : 2 * maxq - 4; /* in units of 1/8 */
            int k = i == 0 ? lo : i == 1 ? hi : lo + (int)(test_rand_u64(rng) % (unsigned)(hi - lo + 1));
            x[i] = (float)k / 8.0f;
            break;
        }
        }
    }
}

static void test_rtn_vs_model(void) {
    const int64_t shapes[][2] = {{6, 128}, {5, 172}, {3, 4097}, {4, 100}, {2, 31}, {3, 256}};
    const int groups[] = {32, 64, 128, -1};
    unsigned long long rng = 1234;
    int cases = 0;
    for (int bits = 1; bits <= 8; bits++)
        for (int sym = 0; sym <= 1; sym++)
            for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
                for (size_t gi = 0; gi < sizeof groups / sizeof *groups; gi++) {
                    int64_t rows = shapes[si][0], cols = shapes[si][1];
                    int group = groups[gi];
                    if (group > cols) continue; /* == per-channel, covered by -1 */
                    lp_qgroup w;
                    CHECK_OK(lp_qgroup_init(&w, rows, cols, bits, group, sym));
                    int64_t G = w.ngroups, gsz = w.group;
                    float *W = malloc((size_t)(rows * cols) * sizeof(float));
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t g = 0; g < G; g++) {
                            int64_t c0 = g * gsz, n = c0 + gsz < cols ? gsz : cols - c0;
                            data_kind kind = (data_kind)((r * 3 + g) % 6);
                            if (r == 0) kind = DATA_NORMAL;
                            fill_group(W + r * cols + c0, (int)n, kind, bits, sym, &rng);
                        }
                    CHECK_OK(lp_rtn_quantize(W, &w));
                    float *D = malloc((size_t)(rows * cols) * sizeof(float));
                    lp_qgroup_dequant(&w, 0, rows, D);
                    int bad_q = 0, bad_p = 0, bad_bound = 0, bad_deq = 0;
                    float maxq = (float)((1 << bits) - 1);
                    for (int64_t r = 0; r < rows; r++)
                        for (int64_t g = 0; g < G; g++) {
                            int64_t c0 = g * gsz, n = c0 + gsz < cols ? gsz : cols - c0;
                            float s, z;
                            model_params(W + r * cols + c0, (int)n, bits, sym, &s, &z);
                            float ls = lp_f16_to_f32(w.scales[r * G + g]);
                            bad_p += ls != s || (float)lp_qgroup_zero(&w, r, g) != z;
                            for (int64_t c = c0; c < c0 + n; c++) {
                                float x = W[r * cols + c];
                                int q = model_q(x, s, z, bits);
                                bad_q += (int)lp_qgroup_get(&w, r, c) != q;
                                float deq = s * (float)(q - (int)z);
                                bad_deq += D[r * cols + c] != deq;
                                float err = fabsf(x - deq), tol = 1e-6f * fabsf(x) + 1e-30f;
                                /* unclamped: within half a step; clamped (q at 0 or maxq):
                                 * the f16-rounded scale can miss the extreme by at most
                                 * maxq * |s - s_f32| <= maxq * s * 2^-11 */
                                int clamped = q == 0 || q == (int)maxq;
                                float bound = clamped ? s * (0.5f + maxq / 1024.0f) : 0.5f * s;
                                int quirk = sym && kind_positive(W + r * cols + c0, (int)n);
                                if (!quirk && err > bound + tol) bad_bound++;
                            }
                        }
                    CHECKF(bad_p == 0, "bits=%d sym=%d %lldx%lld g%d: %d groups with other scale/zero",
                           bits, sym, (long long)rows, (long long)cols, group, bad_p);
                    CHECKF(bad_q == 0, "bits=%d sym=%d %lldx%lld g%d: %d q differ from the model", bits,
                           sym, (long long)rows, (long long)cols, group, bad_q);
                    CHECKF(bad_deq == 0, "bits=%d sym=%d: %d dequantized values differ", bits, sym, bad_deq);
                    CHECKF(bad_bound == 0, "bits=%d sym=%d %lldx%lld g%d: %d values exceed the error bound",
                           bits, sym, (long long)rows, (long long)cols, group, bad_bound);
                    free(W);
                    free(D);
                    lp_qgroup_free(&w);
                    cases++;
                }
    printf("rtn vs model: %d configurations\n", cases);
}

static void test_rtn_edge_cases(void) {
    float s;
    int z;
    /* all zero: xmin = -1, xmax = 1 -> scale 2/15 rounded to f16, zero round(1/s) = 8 */
    float zeros[40] = {0};
    CHECK_OK(lp_qparams_minmax(zeros, 40, 4, 0, &s, &z));
    CHECK(s == to_f16(2.0f / 15.0f) && z == 8);
    CHECK(lp_rtn_quantize_value(0.0f, s, z, 15) == 8);
    /* the f16 scale is exactly representable */
    CHECK(lp_f16_to_f32(lp_f32_to_f16(s)) == s);
    /* tiny values: the scale underflows f16 and becomes 2^-24 */
    float tiny[4] = {1e-9f, -2e-9f, 3e-9f, 0};
    CHECK_OK(lp_qparams_minmax(tiny, 4, 4, 0, &s, &z));
    CHECK(s == 5.9604645e-08f && z >= 0 && z <= 15);
    /* ties round half to even: 2.5 -> 2, 3.5 -> 4 (scale 1, zero 8) */
    CHECK(lp_rtn_quantize_value(2.5f, 1.0f, 8, 15) == 10);
    CHECK(lp_rtn_quantize_value(3.5f, 1.0f, 8, 15) == 12);
    CHECK(lp_rtn_quantize_value(-0.5f, 1.0f, 8, 15) == 8);
    CHECK(lp_rtn_quantize_value(1e30f, 1.0f, 8, 15) == 15);
    CHECK(lp_rtn_quantize_value(-1e30f, 1.0f, 8, 15) == 0);
    /* bad input */
    float bad[3] = {0.1f, NAN, 0.2f};
    CHECK(lp_qparams_minmax(bad, 3, 4, 0, &s, &z) == LP_ERR_NUMERIC);
    float huge[2] = {-1e9f, 1e9f};
    CHECK(lp_qparams_minmax(huge, 2, 4, 0, &s, &z) == LP_ERR_NUMERIC);
    CHECK(strstr(lp_last_error(), "f16") != NULL);
    lp_qgroup w;
    CHECK_OK(lp_qgroup_init(&w, 3, 64, 4, 32, 0));
    float W[192];
    for (int i = 0; i < 192; i++) W[i] = 0.01f * (float)(i % 7);
    W[2 * 64 + 40] = INFINITY;
    CHECK(lp_rtn_quantize(W, &w) == LP_ERR_NUMERIC);
    CHECKF(strstr(lp_last_error(), "row 2") != NULL, "message: %s", lp_last_error());
    lp_qgroup_free(&w);
}

/* RMS error of 4-bit g128 RTN on Gaussian weights is about step/sqrt(12). */
static void test_rtn_error_level(void) {
    int64_t rows = 64, cols = 1024;
    float *W = malloc((size_t)(rows * cols) * sizeof(float)), *D = malloc((size_t)(rows * cols) * sizeof(float));
    unsigned long long rng = 99;
    for (int64_t i = 0; i < rows * cols; i++) W[i] = test_randn(&rng);
    for (int bits = 2; bits <= 8; bits++) {
        lp_qgroup w;
        CHECK_OK(lp_qgroup_init(&w, rows, cols, bits, 128, 0));
        CHECK_OK(lp_rtn_quantize(W, &w));
        lp_qgroup_dequant(&w, 0, rows, D);
        double se = 0, step2 = 0;
        for (int64_t i = 0; i < rows * cols; i++) se += (double)(W[i] - D[i]) * (W[i] - D[i]);
        for (int64_t i = 0; i < rows * w.ngroups; i++) step2 += (double)lp_f16_to_f32(w.scales[i]) * lp_f16_to_f32(w.scales[i]);
        double rms = sqrt(se / (double)(rows * cols)), rstep = sqrt(step2 / (double)(rows * w.ngroups));
        /* uniform rounding error: rms = step / sqrt(12) = 0.289 step */
        CHECKF(rms > 0.2 * rstep && rms < 0.32 * rstep, "bits=%d rms %g vs step %g", bits, rms, rstep);
        lp_qgroup_free(&w);
    }
    free(W);
    free(D);
}

int main(void) {
    test_layout_examples();
    test_set_get();
    test_version1_file();
    test_sizes_and_args();
    test_view();
    test_rtn_vs_model();
    test_rtn_edge_cases();
    test_rtn_error_level();
    TEST_DONE();
}
