/*
 * test_safetensors.c - the safetensors reader and writer (io/safetensors.h).
 *
 * Round trip (several dtypes, odd sizes, awkward names, metadata) with the
 * layout checked against what the Hugging Face reader demands; hand-made
 * corrupt files, each of which must fail with a message naming the file;
 * sharded checkpoints (good, missing shard, tensor absent from its shard);
 * and the real sharded llama-25m and single-file stories260k checkpoints.
 */
#include "core/half.h"
#include "core/status_impl.h"
#include "io/safetensors.h"
#include "test.h"

#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64]; /* scratch directory for this run */

static char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k = 0;
    char *p = buf[k++ & 7];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* A safetensors file from a header text and nbuf zero-ish data bytes, with
 * the given header length field (normally strlen(header)). */
static void write_st_len(const char *path, uint64_t hlen_field, const char *header, size_t nbuf) {
    size_t hl = strlen(header);
    unsigned char *b = calloc(1, 8 + hl + nbuf + 1);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen_field >> (8 * i));
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < nbuf; i++) b[8 + hl + i] = (unsigned char)i;
    write_bytes(path, b, 8 + hl + nbuf);
    free(b);
}
static void write_st(const char *path, const char *header, size_t nbuf) {
    write_st_len(path, strlen(header), header, nbuf);
}

/* Opening must fail with `want` (or any error when want is LP_OK), a
 * message naming the file, and containing `phrase` when given. */
static void expect_fail(const char *path, lp_status want, const char *phrase) {
    lp_st_file *f = (lp_st_file *)1;
    lp_clear_error();
    lp_status st = lp_st_open(path, &f);
    CHECKF(st != LP_OK && (want == LP_OK || st == want), "%s: status %s", path, lp_status_name(st));
    CHECKF(f == NULL, "%s: handle left behind", path);
    CHECKF(strstr(lp_last_error(), path) != NULL, "message '%s' does not name %s", lp_last_error(), path);
    if (phrase)
        CHECKF(strstr(lp_last_error(), phrase) != NULL, "%s: message '%s' lacks '%s'", path,
               lp_last_error(), phrase);
    if (st == LP_OK) lp_st_close(f);
}

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ---- round trip ---- */

typedef struct {
    const char *name;
    lp_dtype dt;
    int ndim;
    int64_t shape[LP_MAX_DIMS];
} spec;

static void test_roundtrip(void) {
    const spec specs[] = {
        {"model.layers.0.self_attn.q_proj.weight", LP_DT_F32, 2, {2, 3}},
        {"bf16", LP_DT_BF16, 1, {4}},
        {"f16.odd", LP_DT_F16, 1, {3}},           /* 6 bytes: not a multiple of 8 */
        {"i8", LP_DT_I8, 2, {1, 5}},              /* 5 bytes */
        {"u8", LP_DT_U8, 1, {1}},
        {"i64", LP_DT_I64, 1, {2}},
        {"bool", LP_DT_BOOL, 1, {3}},
        {"f64.scalar", LP_DT_F64, 0, {0}},        /* 0-d: one element */
        {"empty", LP_DT_F32, 2, {0, 4}},          /* no bytes at all */
        {"i32.odd", LP_DT_I32, 1, {3}},           /* 12 bytes */
        {"u16", LP_DT_U16, 3, {1, 1, 3}},
        {"weird \"name\"\\ \xC3\xA9\n\t/", LP_DT_F32, 1, {1}},
        {"eight.dims", LP_DT_U8, 8, {1, 2, 1, 2, 1, 2, 1, 1}},
    };
    enum { NS = sizeof specs / sizeof specs[0] };
    unsigned char *data[NS];
    size_t nbytes[NS];
    unsigned long long seed = 7;
    lp_st_writer *w;
    CHECK_OK(lp_st_writer_init(&w));
    if (!w) return;
    for (int i = 0; i < NS; i++) {
        int64_t numel = 1;
        for (int d = 0; d < specs[i].ndim; d++) numel *= specs[i].shape[d];
        nbytes[i] = (size_t)numel * lp_dtype_size(specs[i].dt);
        data[i] = malloc(nbytes[i] + 1);
        for (size_t b = 0; b < nbytes[i]; b++) data[i][b] = (unsigned char)test_rand_u64(&seed);
        CHECK_OK(lp_st_writer_add(w, specs[i].name, specs[i].dt, specs[i].ndim, specs[i].shape, data[i]));
    }
    CHECK_OK(lp_st_writer_meta(w, "format", "pt"));
    CHECK_OK(lp_st_writer_meta(w, "k\"ey", "va\\lue \xE2\x82\xAC"));
    CHECK_OK(lp_st_writer_meta(w, "format", "llmpress")); /* replaces */

    /* Writer argument errors. */
    int64_t sh2[2] = {2, 2}, neg[1] = {-1}, nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    float four[4] = {0};
    CHECK(lp_st_writer_add(w, "bf16", LP_DT_F32, 2, sh2, four) == LP_ERR_ARG); /* duplicate */
    CHECK(lp_st_writer_add(w, "bad\xFFutf8", LP_DT_F32, 2, sh2, four) == LP_ERR_ARG);
    CHECK(lp_st_writer_add(w, "__metadata__", LP_DT_F32, 2, sh2, four) == LP_ERR_ARG);
    CHECK(lp_st_writer_add(w, "neg", LP_DT_F32, 1, neg, four) == LP_ERR_ARG);
    CHECK(lp_st_writer_add(w, "nine", LP_DT_F32, 9, nine, four) == LP_ERR_ARG);
    CHECK(lp_st_writer_add(w, "nodata", LP_DT_F32, 2, sh2, NULL) == LP_ERR_ARG);
    CHECK(lp_st_writer_add(w, "baddt", (lp_dtype)99, 2, sh2, four) == LP_ERR_ARG);
    CHECK(lp_st_writer_meta(w, "k", "\xC0\xAF") == LP_ERR_ARG);

    const char *path = tmp_path("rt.safetensors");
    CHECK_OK(lp_st_writer_save(w, path));
    /* Saving into a missing directory fails cleanly and names the path. */
    const char *nodir = tmp_path("no/such/dir/x.safetensors");
    CHECK(lp_st_writer_save(w, nodir) == LP_ERR_IO);
    CHECK(strstr(lp_last_error(), nodir) != NULL);
    lp_st_writer_free(w);
    lp_st_writer_free(NULL);
    CHECKF(count_dir_entries(g_dir) == 1, "temporary files left in %s", g_dir);

    lp_st_file *f = NULL;
    CHECK_OK(lp_st_open(path, &f));
    if (!f) return;
    CHECK(lp_st_count(f) == NS);
    CHECK(strcmp(lp_st_path(f), path) == 0);
    CHECK(lp_st_meta(f, "format") && strcmp(lp_st_meta(f, "format"), "llmpress") == 0);
    CHECK(lp_st_meta(f, "k\"ey") && strcmp(lp_st_meta(f, "k\"ey"), "va\\lue \xE2\x82\xAC") == 0);
    CHECK(lp_st_meta(f, "nope") == NULL);
    CHECK(lp_st_at(f, -1) == NULL && lp_st_at(f, NS) == NULL);
    CHECK(lp_st_find(f, "missing") == NULL);
    for (int i = 0; i < NS; i++) {
        const lp_tensor_view *t = lp_st_find(f, specs[i].name);
        CHECKF(t != NULL, "tensor '%s' missing", specs[i].name);
        if (!t) continue;
        CHECK(t == lp_st_at(f, i)); /* header order = insertion order */
        CHECK(strcmp(t->name, specs[i].name) == 0);
        CHECK(t->dtype == specs[i].dt && t->ndim == specs[i].ndim);
        for (int d = 0; d < t->ndim; d++) CHECK(t->shape[d] == specs[i].shape[d]);
        CHECK(t->nbytes == nbytes[i]);
        CHECKF(nbytes[i] == 0 || memcmp(t->data, data[i], nbytes[i]) == 0, "data of '%s' differs", t->name);
        /* Alignment: 8 when the size allows, else the element size. */
        size_t align = nbytes[i] % 8 == 0 ? 8 : lp_dtype_size(t->dtype);
        CHECKF((uintptr_t)t->data % align == 0, "'%s' at %p not %zu-aligned", t->name, t->data, align);
    }
    /* The Hugging Face reader requires the tensors to tile the data buffer
     * exactly: sorted by offset, each starts where the previous ended and the
     * last ends at the end of the file. */
    const unsigned char *lo = NULL, *hi = NULL;
    size_t total = 0;
    for (int i = 0; i < NS; i++) {
        const lp_tensor_view *t = lp_st_at(f, i);
        if (!lo || (const unsigned char *)t->data < lo) lo = t->data;
        if (!hi || (const unsigned char *)t->data + t->nbytes > hi) hi = (const unsigned char *)t->data + t->nbytes;
        total += t->nbytes;
    }
    CHECK((size_t)(hi - lo) == total); /* no gaps, no overlap (checked by the reader) */
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    FILE *fp = fopen(path, "rb");
    unsigned char len8[8] = {0};
    CHECK(fp && fread(len8, 1, 8, fp) == 8);
    if (fp) fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    CHECK(hlen % 8 == 0);                                  /* buffer starts 8-aligned */
    CHECK(8 + hlen + total == (uint64_t)sb.st_size);      /* buffer ends at end of file */
    lp_st_close(f);
    lp_st_close(NULL);

    /* An empty writer makes a valid file with no tensors. */
    CHECK_OK(lp_st_writer_init(&w));
    const char *empty = tmp_path("empty_ok.safetensors");
    CHECK_OK(lp_st_writer_save(w, empty));
    lp_st_writer_free(w);
    CHECK_OK(lp_st_open(empty, &f));
    CHECK(f && lp_st_count(f) == 0 && lp_st_meta(f, "format") == NULL);
    lp_st_close(f);

    for (int i = 0; i < NS; i++) free(data[i]);
    unlink(path);
    unlink(empty);
}

/* ---- hand-made files ---- */

static void test_valid_variants(void) {
    lp_st_file *f = NULL;
    /* Padding spaces, gaps between tensors, unknown extra fields, 0-size tensor
     * sharing an offset with another: all accepted. */
    const char *p = tmp_path("variants.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16],\"x\":1},"
             "\"z\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[8,8]},"
             "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}      ",
             20);
    CHECK_OK(lp_st_open(p, &f));
    if (f) {
        CHECK(lp_st_count(f) == 3);
        const lp_tensor_view *a = lp_st_find(f, "a"), *b = lp_st_find(f, "b");
        CHECK(a && a->nbytes == 8 && ((const unsigned char *)a->data)[0] == 8);
        CHECK(b && b->nbytes == 4 && ((const unsigned char *)b->data)[3] == 3);
        lp_st_close(f);
    }
    unlink(p);
}

static void test_corrupt(void) {
    const char *p;
    /* Sizes and the header length. */
    p = tmp_path("empty.safetensors");
    write_bytes(p, "", 0);
    expect_fail(p, LP_ERR_FORMAT, "empty");
    p = tmp_path("short.safetensors");
    write_bytes(p, "\x05\0\0\0\0", 5);
    expect_fail(p, LP_ERR_FORMAT, "too short");
    p = tmp_path("hlen_big.safetensors");
    write_st_len(p, 123456789, "{}", 0);
    expect_fail(p, LP_ERR_FORMAT, "header length 123456789 exceeds file size 10");
    p = tmp_path("hlen_max.safetensors");
    write_st_len(p, UINT64_MAX, "{}", 100);
    expect_fail(p, LP_ERR_FORMAT, "exceeds file size");
    p = tmp_path("hlen_zero.safetensors");
    write_st_len(p, 0, "{}", 8);
    expect_fail(p, LP_ERR_FORMAT, "header length 0");
    p = tmp_path("hlen_cut.safetensors"); /* header length cuts the JSON short */
    write_st_len(p, 5, "{\"a\":{\"dtype\":\"F32\"}}", 0);
    expect_fail(p, LP_ERR_FORMAT, "(header):1:");
    /* Header text. */
    p = tmp_path("notjson.safetensors");
    write_st(p, "{not json}", 0);
    expect_fail(p, LP_ERR_FORMAT, "(header):1:2:");
    p = tmp_path("array.safetensors");
    write_st(p, "[1, 2]", 0);
    expect_fail(p, LP_ERR_FORMAT, "expected an object");
    p = tmp_path("binary.safetensors");
    write_bytes(p, "\x10\0\0\0\0\0\0\0\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 24);
    expect_fail(p, LP_ERR_FORMAT, NULL);
    p = tmp_path("entry_not_obj.safetensors");
    write_st(p, "{\"a\": [1, 2]}", 0);
    expect_fail(p, LP_ERR_FORMAT, "'a' is a JSON array");
    /* dtype. */
    p = tmp_path("dtype_unknown.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    expect_fail(p, LP_ERR_FORMAT, "unknown dtype \"Q7\"");
    p = tmp_path("dtype_f8.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    expect_fail(p, LP_ERR_UNSUPPORTED, "F8_E4M3");
    p = tmp_path("dtype_missing.safetensors");
    write_st(p, "{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1);
    expect_fail(p, LP_ERR_FORMAT, "dtype");
    p = tmp_path("dtype_number.safetensors");
    write_st(p, "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
    expect_fail(p, LP_ERR_FORMAT, "dtype");
    /* shape. */
    p = tmp_path("shape_neg.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1,2],\"data_offsets\":[0,8]}}", 8);
    expect_fail(p, LP_ERR_FORMAT, "shape[0] is negative");
    p = tmp_path("shape_frac.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8);
    expect_fail(p, LP_ERR_FORMAT, "not an integer");
    p = tmp_path("shape_str.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8);
    expect_fail(p, LP_ERR_FORMAT, "shape[0] is a JSON string");
    p = tmp_path("shape_missing.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8);
    expect_fail(p, LP_ERR_FORMAT, "shape");
    p = tmp_path("shape_9d.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1);
    expect_fail(p, LP_ERR_FORMAT, "9 dimensions");
    p = tmp_path("shape_overflow.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4],\"data_offsets\":[0,0]}}", 0);
    expect_fail(p, LP_ERR_FORMAT, "overflows");
    p = tmp_path("shape_overflow_bytes.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F64\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0);
    expect_fail(p, LP_ERR_FORMAT, "overflows");
    /* offsets. */
    p = tmp_path("size_mismatch.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16);
    expect_fail(p, LP_ERR_FORMAT, "span 12 bytes, expected 16");
    p = tmp_path("beyond.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8);
    expect_fail(p, LP_ERR_FORMAT, "out of range");
    p = tmp_path("reversed.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8);
    expect_fail(p, LP_ERR_FORMAT, "out of range");
    p = tmp_path("huge_offset.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551615,0]}}", 8);
    expect_fail(p, LP_ERR_FORMAT, "data_offsets[0]");
    p = tmp_path("offsets_3.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 8);
    expect_fail(p, LP_ERR_FORMAT, "data_offsets");
    p = tmp_path("offsets_neg.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]}}", 8);
    expect_fail(p, LP_ERR_FORMAT, "data_offsets[0]");
    p = tmp_path("overlap.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             12);
    expect_fail(p, LP_ERR_FORMAT, "overlap");
    p = tmp_path("overlap_inside.safetensors"); /* b lies inside a; c after both */
    write_st(p,
             "{\"c\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[16,20]},"
             "\"a\":{\"dtype\":\"U8\",\"shape\":[16],\"data_offsets\":[0,16]},"
             "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}",
             20);
    expect_fail(p, LP_ERR_FORMAT, "'a' [0, 16] and 'b' [4, 6] overlap");
    p = tmp_path("same.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
             "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}",
             4);
    expect_fail(p, LP_ERR_FORMAT, "overlap");
    /* names and metadata. */
    p = tmp_path("dup.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
             "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}",
             8);
    expect_fail(p, LP_ERR_FORMAT, "twice");
    p = tmp_path("nul_name.safetensors");
    write_st(p, "{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4);
    expect_fail(p, LP_ERR_FORMAT, "NUL");
    p = tmp_path("meta_num.safetensors");
    write_st(p, "{\"__metadata__\":{\"format\":\"pt\",\"step\":1000}}", 0);
    expect_fail(p, LP_ERR_FORMAT, "'step' is a number, expected a string");
    p = tmp_path("meta_arr.safetensors");
    write_st(p, "{\"__metadata__\":[\"pt\"]}", 0);
    expect_fail(p, LP_ERR_FORMAT, "__metadata__");
    p = tmp_path("meta_twice.safetensors");
    write_st(p, "{\"__metadata__\":{},\"__metadata__\":{}}", 0);
    expect_fail(p, LP_ERR_FORMAT, "two");
    /* Not files. */
    expect_fail(g_dir, LP_ERR_IO, "directory");
    p = tmp_path("does_not_exist.safetensors");
    expect_fail(p, LP_ERR_IO, "No such file");

    /* Every truncation of a valid file fails cleanly (or, for cuts inside the
     * data buffer, is caught by the offset checks). */
    lp_st_writer *w;
    CHECK_OK(lp_st_writer_init(&w));
    float v[6] = {1, 2, 3, 4, 5, 6};
    int64_t s23[2] = {2, 3};
    CHECK_OK(lp_st_writer_add(w, "x", LP_DT_F32, 2, s23, v));
    CHECK_OK(lp_st_writer_add(w, "y", LP_DT_F32, 1, s23, v));
    const char *full = tmp_path("full.safetensors");
    CHECK_OK(lp_st_writer_save(w, full));
    lp_st_writer_free(w);
    FILE *fp = fopen(full, "rb");
    unsigned char buf[512];
    size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp) fclose(fp);
    CHECK(n > 40 && n < sizeof buf);
    const char *cut = tmp_path("cut.safetensors");
    for (size_t k = 0; k < n; k++) {
        write_bytes(cut, buf, k);
        lp_st_file *f = (lp_st_file *)1;
        lp_status st = lp_st_open(cut, &f);
        CHECKF(st == LP_ERR_FORMAT && f == NULL && strstr(lp_last_error(), cut),
               "truncated to %zu bytes: status %s, '%s'", k, lp_status_name(st), lp_last_error());
        if (st == LP_OK) lp_st_close(f);
    }
    unlink(cut);
    unlink(full);
}

/* ---- checkpoints ---- */

static void write_small(const char *path, const char *const *names, int n, float base) {
    lp_st_writer *w;
    CHECK_OK(lp_st_writer_init(&w));
    float v[4] = {base, base + 1, base + 2, base + 3};
    int64_t s[1] = {4};
    for (int i = 0; i < n; i++) CHECK_OK(lp_st_writer_add(w, names[i], LP_DT_F32, 1, s, v));
    CHECK_OK(lp_st_writer_meta(w, "format", "pt"));
    CHECK_OK(lp_st_writer_save(w, path));
    lp_st_writer_free(w);
}

static void test_sharded(void) {
    const char *s1[] = {"a.weight", "b.weight"}, *s2[] = {"c.weight", "unmapped"};
    write_small(tmp_path("model-00001-of-00002.safetensors"), s1, 2, 10);
    write_small(tmp_path("model-00002-of-00002.safetensors"), s2, 2, 20);
    const char *index = tmp_path("model.safetensors.index.json");
    char text[1024];
    snprintf(text, sizeof text,
             "{\"metadata\": {\"total_size\": 48}, \"weight_map\": {"
             "\"b.weight\": \"model-00001-of-00002.safetensors\","
             "\"c.weight\": \"model-00002-of-00002.safetensors\","
             "\"a.weight\": \"model-00001-of-00002.safetensors\"}}");
    write_bytes(index, text, strlen(text));

    lp_weights *w = NULL;
    CHECK_OK(lp_weights_open(g_dir, &w));
    if (w) {
        CHECK(lp_weights_count(w) == 3);
        const lp_tensor_view *c = lp_weights_find(w, "c.weight");
        CHECK(c && c->dtype == LP_DT_F32 && ((const float *)c->data)[1] == 21.0f);
        CHECK(lp_weights_find(w, "unmapped") == NULL); /* not in weight_map */
        CHECK(lp_weights_at(w, 0) == lp_weights_find(w, "b.weight"));
        CHECK(lp_weights_at(w, 3) == NULL);
        const char *fo = lp_weights_file_of(w, "a.weight");
        CHECK(fo && strstr(fo, "model-00001-of-00002.safetensors"));
        CHECK(lp_weights_file_of(w, "zzz") == NULL);
        CHECK(lp_weights_meta(w, "format") && strcmp(lp_weights_meta(w, "format"), "pt") == 0);
        lp_weights_close(w);
    }
    lp_weights_close(NULL);

    /* A path to one shard also works. */
    CHECK_OK(lp_weights_open(tmp_path("model-00002-of-00002.safetensors"), &w));
    CHECK(w && lp_weights_count(w) == 2 && lp_weights_find(w, "unmapped"));
    lp_weights_close(w);

    /* Index naming a shard that does not exist. */
    snprintf(text, sizeof text,
             "{\"weight_map\": {\"a.weight\": \"model-00001-of-00002.safetensors\","
             "\"z.weight\": \"model-00003-of-00003.safetensors\"}}");
    write_bytes(index, text, strlen(text));
    w = (lp_weights *)1;
    CHECK(lp_weights_open(g_dir, &w) != LP_OK && w == NULL);
    CHECKF(strstr(lp_last_error(), "model-00003-of-00003.safetensors") && strstr(lp_last_error(), index),
           "%s", lp_last_error());

    /* Index naming a tensor its shard does not contain. */
    snprintf(text, sizeof text,
             "{\"weight_map\": {\"a.weight\": \"model-00001-of-00002.safetensors\","
             "\"c.weight\": \"model-00001-of-00002.safetensors\"}}");
    write_bytes(index, text, strlen(text));
    CHECK(lp_weights_open(g_dir, &w) == LP_ERR_FORMAT);
    CHECKF(strstr(lp_last_error(), "'c.weight'") && strstr(lp_last_error(), "model-00001-of-00002") &&
               strstr(lp_last_error(), index),
           "%s", lp_last_error());

    /* Malformed indexes. */
    const char *bad_idx[] = {"{\"weight_map\": [1]}", "{\"metadata\": {}}", "{\"weight_map\": {\"a\": 3}}",
                             "{\"weight_map\": {\"a\": \"\"}}", "{\"weight_map\": {"};
    for (size_t i = 0; i < sizeof bad_idx / sizeof *bad_idx; i++) {
        write_bytes(index, bad_idx[i], strlen(bad_idx[i]));
        CHECKF(lp_weights_open(g_dir, &w) == LP_ERR_FORMAT && strstr(lp_last_error(), index),
               "index '%s': %s", bad_idx[i], lp_last_error());
    }
    /* Duplicate tensor in weight_map. */
    snprintf(text, sizeof text,
             "{\"weight_map\": {\"a.weight\": \"model-00001-of-00002.safetensors\","
             "\"a.weight\": \"model-00001-of-00002.safetensors\"}}");
    write_bytes(index, text, strlen(text));
    CHECK(lp_weights_open(g_dir, &w) == LP_ERR_FORMAT && strstr(lp_last_error(), "twice"));

    /* A corrupt shard: the message names the shard file and the index. */
    snprintf(text, sizeof text, "{\"weight_map\": {\"a.weight\": \"model-00001-of-00002.safetensors\"}}");
    write_bytes(index, text, strlen(text));
    const char *shard1 = tmp_path("model-00001-of-00002.safetensors");
    write_st_len(shard1, 1000, "{}", 0);
    CHECK(lp_weights_open(g_dir, &w) == LP_ERR_FORMAT);
    CHECKF(strstr(lp_last_error(), shard1) && strstr(lp_last_error(), index), "%s", lp_last_error());

    /* No index: model.safetensors; neither: a clear error. */
    unlink(index);
    unlink(shard1);
    unlink(tmp_path("model-00002-of-00002.safetensors"));
    CHECK(lp_weights_open(g_dir, &w) == LP_ERR_IO && strstr(lp_last_error(), g_dir));
    write_small(tmp_path("model.safetensors"), s1, 2, 0);
    CHECK_OK(lp_weights_open(g_dir, &w));
    CHECK(w && lp_weights_count(w) == 2 && lp_weights_find(w, "b.weight"));
    lp_weights_close(w);
    unlink(tmp_path("model.safetensors"));
    CHECK(lp_weights_open(tmp_path("nothing-here"), &w) == LP_ERR_IO);
}

static void test_real_checkpoints(void) {
    /* test_asset skips (exit 77) when the assets are absent. */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_asset("models/llama-25m/model.safetensors.index.json"));
    *strrchr(dir, '/') = '\0';
    lp_weights *w = NULL;
    CHECK_OK(lp_weights_open(dir, &w));
    if (w) {
        CHECK(lp_weights_count(w) == 74);
        const lp_tensor_view *e = lp_weights_find(w, "model.embed_tokens.weight");
        CHECK(e && e->dtype == LP_DT_BF16 && e->ndim == 2 && e->shape[0] == 32000 && e->shape[1] == 384);
        if (e) {
            CHECK(e->numel == 32000 * 384 && e->nbytes == 32000u * 384u * 2u);
            uint16_t h[2];
            memcpy(h, e->data, sizeof h);
            CHECK(h[0] == 0xbd70 && h[1] == 0xbb17); /* first two values, read with Python */
            CHECK(lp_bf16_to_f32(h[0]) == -0.05859375f);
        }
        const char *fo = lp_weights_file_of(w, "model.embed_tokens.weight");
        CHECK(fo && strstr(fo, "model-00001-of-00003.safetensors"));
        CHECK(lp_weights_meta(w, "format") && strcmp(lp_weights_meta(w, "format"), "pt") == 0);
        int64_t params = 0;
        for (int64_t i = 0; i < lp_weights_count(w); i++) params += lp_weights_at(w, i)->numel;
        CHECK(params == 24877440); /* "total_parameters" in the index */
        lp_weights_close(w);
    }
    snprintf(dir, sizeof dir, "%s", test_asset("models/stories260k/model.safetensors"));
    *strrchr(dir, '/') = '\0';
    CHECK_OK(lp_weights_open(dir, &w));
    if (w) {
        CHECK(lp_weights_count(w) == 47);
        const lp_tensor_view *e = lp_weights_find(w, "model.embed_tokens.weight");
        CHECK(e && e->dtype == LP_DT_F32 && e->shape[0] == 512 && e->shape[1] == 64);
        lp_weights_close(w);
    }
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/lp_test_st_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_valid_variants();
    test_corrupt();
    test_sharded();
    /* Clean the scratch directory before the asset test, which may exit 77. */
    DIR *d = opendir(g_dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tmp_path(e->d_name));
    if (d) closedir(d);
    rmdir(g_dir);
    test_real_checkpoints();
    TEST_DONE();
}
