/*
 * test_gguf.c - the GGUF reader and writer (io/gguf.h).
 *
 * What it checks:
 *   - the ggml type table against gguf-py's GGML_QUANT_SIZES (c392e50),
 *     lookup by name, row sizes;
 *   - the writer's exact bytes for a 1-key 1-tensor file, computed by hand
 *     below (not with the writer's or the reader's code);
 *   - a round trip through the writer of every setter (u32, i32, u64, f32,
 *     bool, string, string/i32/f32 arrays, empty ones) and tensors of seven
 *     types and 1 to 4 dimensions (one empty), read back through
 *     lp_gguf_open: keys in order, values, shapes, offsets, data bytes; and
 *     what each getter refuses (wrong type, out of range, missing key);
 *   - every value type and every array element type (including u8, i8, u16,
 *     i16, i64, f64, bool and u64 arrays, which the writer does not offer) in
 *     a hand-built version 2 file;
 *   - general.alignment (64) in writer and reader; the writer's argument
 *     errors; saves that fail leave nothing behind;
 *   - corrupt input, each refused with LP_ERR_FORMAT and a message naming
 *     the file: every prefix of a valid file, bad magic and versions, counts
 *     and lengths up to 2^64-1, bad value / array / ggml types, bad shapes,
 *     misaligned, overlapping and out-of-range data, duplicates, a bad
 *     general.alignment, an over-long tensor name;
 *   - the fuzz seeds in tests/fuzz/seeds/gguf/ are all accepted.
 *
 * LP_TEST_VERBOSE=1 prints the messages of the corrupt files (every 97th
 * prefix and each hand-made case), to read them.
 *
 * Seeds: `test_gguf --write-seeds DIR` writes the fuzz seeds of
 * tests/fuzz/fuzz_gguf.c (the files these tests build, each < 4 KB):
 *   build-gguf/test_gguf --write-seeds tests/fuzz/seeds/gguf
 */
#include "core/status_impl.h"
#include "io/gguf.h"
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

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(len > 0 ? (size_t)len : 1);
    *n = p && len > 0 ? fread(p, 1, (size_t)len, f) : 0;
    fclose(f);
    return p;
}

static void write_all(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fclose(f);
}

/* ---- a GGUF builder, independent of the library, for hand-made files ---- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) exit(1);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void put_le(buf *b, uint64_t v, int n) {
    unsigned char t[8];
    for (int i = 0; i < n; i++) t[i] = (unsigned char)(v >> (8 * i));
    put(b, t, (size_t)n);
}
static void put_u32(buf *b, uint32_t v) { put_le(b, v, 4); }
static void put_u64(buf *b, uint64_t v) { put_le(b, v, 8); }
static void put_strn(buf *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}
static void put_str(buf *b, const char *s) { put_strn(b, s, strlen(s)); }
static void put_f32(buf *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}
static void put_f64(buf *b, double f) {
    uint64_t u;
    memcpy(&u, &f, 8);
    put_u64(b, u);
}
static void put_hdr(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}
static void put_kv_u32(buf *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, LP_GGUF_U32);
    put_u32(b, v);
}
/* A tensor description with n_dims values of ne. */
static void put_ti(buf *b, const char *name, uint32_t n_dims, const int64_t *ne, uint32_t type, uint64_t off) {
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) put_u64(b, (uint64_t)ne[d]);
    put_u32(b, type);
    put_u64(b, off);
}
static void put_pad(buf *b, size_t a) {
    while (b->n % a) put(b, "", 1);
}
static void put_data(buf *b, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)(seed + 7 * i);
        put(b, &c, 1);
    }
}

/* Open b's bytes from an exactly sized heap copy (so ASan sees a read past
 * the end); *copy must be freed after lp_gguf_close. */
static lp_status open_copy(const unsigned char *p, size_t n, const char *name, lp_gguf **g, unsigned char **copy) {
    *copy = malloc(n ? n : 1);
    if (n) memcpy(*copy, p, n);
    return lp_gguf_open_buffer(*copy, n, name, g);
}

/* The file in b must be refused with LP_ERR_FORMAT, a message naming
 * "bad.gguf" and containing phrase (when given). */
static void expect_bad_at(const buf *b, const char *phrase, int line) {
    lp_gguf *g = (lp_gguf *)1;
    unsigned char *copy;
    lp_clear_error();
    lp_status st = open_copy(b->p, b->n, "bad.gguf", &g, &copy);
    if (getenv("LP_TEST_VERBOSE")) fprintf(stderr, "%d: %s\n", line, lp_last_error());
    CHECKF(st == LP_ERR_FORMAT, "line %d: status %s (%s)", line, lp_status_name(st), lp_last_error());
    CHECKF(g == NULL, "line %d: handle left behind", line);
    CHECKF(strstr(lp_last_error(), "bad.gguf") != NULL, "line %d: message '%s' does not name the file", line,
           lp_last_error());
    if (phrase)
        CHECKF(strstr(lp_last_error(), phrase) != NULL, "line %d: message '%s' lacks '%s'", line, lp_last_error(),
               phrase);
    if (st == LP_OK) lp_gguf_close(g);
    free(copy);
}
#define expect_bad(b, phrase) expect_bad_at(b, phrase, __LINE__)

/* The file in b must be accepted. */
static void expect_good_at(const buf *b, int line) {
    lp_gguf *g = NULL;
    unsigned char *copy;
    lp_status st = open_copy(b->p, b->n, "good.gguf", &g, &copy);
    CHECKF(st == LP_OK, "line %d: refused: %s", line, lp_last_error());
    lp_gguf_close(g);
    free(copy);
}
#define expect_good(b) expect_good_at(b, __LINE__)

/* ---- the type table ---- */

static void test_types(void) {
    /* gguf-py constants.py GGML_QUANT_SIZES with QK_K = 256, evaluated by hand */
    static const struct {
        int id;
        const char *name;
        int block, bytes;
    } want[] = {
        {0, "F32", 1, 4},         {1, "F16", 1, 2},          {2, "Q4_0", 32, 18},       {3, "Q4_1", 32, 20},
        {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},       {8, "Q8_0", 32, 34},       {9, "Q8_1", 32, 40},
        {10, "Q2_K", 256, 84},    {11, "Q3_K", 256, 110},    {12, "Q4_K", 256, 144},    {13, "Q5_K", 256, 176},
        {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},    {16, "IQ2_XXS", 256, 66},  {17, "IQ2_XS", 256, 74},
        {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},    {20, "IQ4_NL", 32, 18},    {21, "IQ3_S", 256, 110},
        {22, "IQ2_S", 256, 82},   {23, "IQ4_XS", 256, 136},  {24, "I8", 1, 1},          {25, "I16", 1, 2},
        {26, "I32", 1, 4},        {27, "I64", 1, 8},         {28, "F64", 1, 8},         {29, "IQ1_M", 256, 56},
        {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},    {35, "TQ2_0", 256, 66},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        lp_ggml_type_info t = lp_ggml_type_of(want[i].id);
        CHECKF(t.name && strcmp(t.name, want[i].name) == 0 && t.block == want[i].block &&
                   t.bytes == want[i].bytes,
               "type %d: got %s %d %d, want %s %d %d", want[i].id, t.name ? t.name : "NULL", t.block, t.bytes,
               want[i].name, want[i].block, want[i].bytes);
        CHECK(lp_ggml_type_by_name(want[i].name) == want[i].id);
    }
    const int unknown[] = {-1, 4, 5, 31, 32, 33, 36, 37, 38, 39, 40, 1000, INT32_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        CHECKF(lp_ggml_type_of(unknown[i]).name == NULL, "type %d should be unknown", unknown[i]);
    CHECK(lp_ggml_type_by_name("q4_k") == LP_GGML_Q4_K);
    CHECK(lp_ggml_type_by_name("bf16") == LP_GGML_BF16);
    CHECK(lp_ggml_type_by_name("iq4_nl") == LP_GGML_IQ4_NL);
    CHECK(lp_ggml_type_by_name("Q4_K_M") == -1);
    CHECK(lp_ggml_type_by_name("Q4") == -1);
    CHECK(lp_ggml_type_by_name("") == -1);
    CHECK(lp_ggml_type_by_name(NULL) == -1);
    CHECK(lp_ggml_row_bytes(LP_GGML_Q4_K, 512) == 288);
    CHECK(lp_ggml_row_bytes(LP_GGML_Q4_K, 100) == 0);
    CHECK(lp_ggml_row_bytes(LP_GGML_F32, 3) == 12);
    CHECK(lp_ggml_row_bytes(LP_GGML_Q8_0, 64) == 68);
    CHECK(lp_ggml_row_bytes(LP_GGML_F32, -4) == 0);
    CHECK(lp_ggml_row_bytes(4, 32) == 0);
    CHECK(lp_ggml_row_bytes(LP_GGML_F64, INT64_MAX) == 0); /* overflows */
}

/* ---- the writer's bytes, by hand ---- */

/* key "a" = u32 7; tensor "t" F32 ne {2} = {1.0f, 2.0f}; alignment 32. */
static const unsigned char k_tiny[128] = {
    'G', 'G', 'U', 'F', 3, 0, 0, 0, /* magic, version 3 */
    1, 0, 0, 0, 0, 0, 0, 0,         /* n_tensors */
    1, 0, 0, 0, 0, 0, 0, 0,         /* n_kv */
    1, 0, 0, 0, 0, 0, 0, 0, 'a',    /* key "a" (offset 24) */
    4, 0, 0, 0, 7, 0, 0, 0,         /* type u32, value 7 */
    1, 0, 0, 0, 0, 0, 0, 0, 't',    /* tensor "t" (offset 41) */
    1, 0, 0, 0,                     /* n_dims 1 */
    2, 0, 0, 0, 0, 0, 0, 0,         /* ne[0] = 2 */
    0, 0, 0, 0,                     /* F32 */
    0, 0, 0, 0, 0, 0, 0, 0,         /* offset 0; the header ends at 74 */
    [96] = 0, 0, 0x80, 0x3f,        /* zeros to 96, then 1.0f */
    0, 0, 0, 0x40,                  /* 2.0f; zeros to 128 */
};

static lp_status write_tiny(const char *path) {
    static const float data[2] = {1.0f, 2.0f};
    lp_gguf_writer *w;
    LP_TRY(lp_gguf_writer_init(&w));
    const int64_t ne[1] = {2};
    lp_status st = lp_gguf_set_u32(w, "a", 7);
    if (st == LP_OK) st = lp_gguf_add_tensor(w, "t", 1, ne, LP_GGML_F32, data);
    if (st == LP_OK) st = lp_gguf_writer_save(w, path);
    lp_gguf_writer_free(w);
    return st;
}

static void test_layout(void) {
    const char *path = tmp_path("tiny.gguf");
    CHECK_OK(write_tiny(path));
    size_t n = 0;
    unsigned char *p = read_all(path, &n);
    CHECKF(p && n == sizeof k_tiny, "tiny file is %zu bytes, expected %zu", n, sizeof k_tiny);
    for (size_t i = 0; p && i < n && i < sizeof k_tiny; i++)
        CHECKF(p[i] == k_tiny[i], "tiny file byte %zu is 0x%02x, expected 0x%02x", i, p[i], k_tiny[i]);
    free(p);
    lp_gguf *g = NULL;
    CHECK_OK(lp_gguf_open(path, &g));
    uint32_t a = 0;
    CHECK_OK(lp_gguf_get_u32(g, "a", &a));
    CHECK(a == 7);
    const lp_gguf_tensor *t = lp_gguf_tensor_at(g, 0);
    CHECK(t && t->nbytes == 8 && t->offset == 0 && memcmp(t->data, k_tiny + 96, 8) == 0);
    lp_gguf_close(g);
}

/* ---- writer round trip ---- */

typedef struct {
    const char *name;
    int n_dims;
    int64_t ne[4];
    int type;
    uint64_t nbytes;
} tspec;

/* The last tensor's size is a multiple of 32, so the file ends with its
 * data (no padding) and every proper prefix is a truncated file. */
static const tspec k_tensors[] = {
    {"token_embd.weight", 2, {3, 2, 1, 1}, LP_GGML_F32, 24},
    {"blk.0.attn_q.weight", 2, {256, 2, 1, 1}, LP_GGML_Q4_K, 288},
    {"blk.0.ffn_up.weight", 4, {64, 1, 1, 3, }, LP_GGML_Q8_0, 204},
    {"output_norm.weight", 1, {5, 1, 1, 1}, LP_GGML_F16, 10},
    {"empty", 2, {0, 4, 1, 1}, LP_GGML_I32, 0},
    {"blk.0.ffn_down.weight", 1, {256, 1, 1, 1}, LP_GGML_Q6_K, 210},
    {"bf", 3, {2, 2, 2, 1}, LP_GGML_BF16, 16},
    {"output.weight", 2, {32, 16, 1, 1}, LP_GGML_Q4_0, 288},
};
#define N_TENSORS ((int)(sizeof k_tensors / sizeof k_tensors[0]))

static const char *const k_strs[] = {"a", "", "b\0c", "\xC3\xBC"};
static const size_t k_str_lens[] = {1, 0, 3, 2};
static const int32_t k_i32s[] = {-1, 0, INT32_MAX, INT32_MIN};
static const float k_f32s[] = {1.5f, -0.0f, 1e30f};

static unsigned char *tensor_data(int i) {
    unsigned char *p = malloc(k_tensors[i].nbytes + 1);
    unsigned long long s = 1234 + (unsigned long long)i;
    for (uint64_t b = 0; b < k_tensors[i].nbytes; b++) p[b] = (unsigned char)test_rand_u64(&s);
    return p;
}

/* Writes the round-trip file; alignment 0 leaves general.alignment unset. */
static lp_status write_roundtrip(const char *path, uint32_t alignment) {
    lp_gguf_writer *w;
    LP_TRY(lp_gguf_writer_init(&w));
    unsigned char *data[N_TENSORS];
    for (int i = 0; i < N_TENSORS; i++) data[i] = tensor_data(i);
    const char *const nul_terminated[] = {"x", "yy"};
    lp_status st = LP_OK;
#define W(call) \
    if (st == LP_OK) st = (call)
    W(lp_gguf_set_str(w, "general.architecture", "llama"));
    if (alignment) W(lp_gguf_set_u32(w, "general.alignment", alignment));
    W(lp_gguf_set_str(w, "general.name", "tiny \xC3\xBCnicode"));
    W(lp_gguf_set_u32(w, "u32", 4000000000u));
    W(lp_gguf_set_i32(w, "i32", -123456));
    W(lp_gguf_set_u64(w, "u64", 0xFEDCBA9876543210ull));
    W(lp_gguf_set_f32(w, "f32", 0.15625f));
    W(lp_gguf_set_bool(w, "bool.t", true));
    W(lp_gguf_set_bool(w, "bool.f", false));
    W(lp_gguf_set_str(w, "str.empty", ""));
    W(lp_gguf_set_arr_str(w, "arr.str", k_strs, k_str_lens, 4));
    W(lp_gguf_set_arr_str(w, "arr.str.nul", nul_terminated, NULL, 2));
    W(lp_gguf_set_arr_i32(w, "arr.i32", k_i32s, 4));
    W(lp_gguf_set_arr_f32(w, "arr.f32", k_f32s, 3));
    W(lp_gguf_set_arr_i32(w, "arr.empty", NULL, 0));
    for (int i = 0; i < N_TENSORS; i++)
        W(lp_gguf_add_tensor(w, k_tensors[i].name, k_tensors[i].n_dims, k_tensors[i].ne, k_tensors[i].type, data[i]));
    /* the values were copied: the caller's arrays may change before save */
    W(lp_gguf_writer_save(w, path));
#undef W
    lp_gguf_writer_free(w);
    for (int i = 0; i < N_TENSORS; i++) free(data[i]);
    return st;
}

static const char *const k_keys[] = {"general.architecture", "general.name", "u32",     "i32",
                                     "u64",                  "f32",          "bool.t",  "bool.f",
                                     "str.empty",            "arr.str",      "arr.str.nul", "arr.i32",
                                     "arr.f32",              "arr.empty"};
static const lp_gguf_vtype k_key_types[] = {LP_GGUF_STRING, LP_GGUF_STRING, LP_GGUF_U32,   LP_GGUF_I32,
                                            LP_GGUF_U64,    LP_GGUF_F32,    LP_GGUF_BOOL,  LP_GGUF_BOOL,
                                            LP_GGUF_STRING, LP_GGUF_ARRAY,  LP_GGUF_ARRAY, LP_GGUF_ARRAY,
                                            LP_GGUF_ARRAY,  LP_GGUF_ARRAY};
#define N_KEYS ((int)(sizeof k_keys / sizeof k_keys[0]))

static bool str_is(lp_gguf_str s, const char *want, size_t n) { return s.n == n && memcmp(s.s, want, n) == 0; }

/* A getter call that must fail with LP_ERR_FORMAT naming the file and key. */
#define CHECK_REFUSED(call, path, key)                                                                \
    do {                                                                                             \
        lp_status st_ = (call);                                                                      \
        CHECKF(st_ == LP_ERR_FORMAT && strstr(lp_last_error(), path) && strstr(lp_last_error(), key), \
               "%s: status %s, message '%s'", #call, lp_status_name(st_), lp_last_error());          \
    } while (0)

static void check_roundtrip(const char *path, uint32_t alignment) {
    lp_gguf *g = NULL;
    CHECK_OK(lp_gguf_open(path, &g));
    if (!g) return;
    const uint32_t a = alignment ? alignment : 32;
    const int nk = N_KEYS + (alignment ? 1 : 0);
    CHECK(lp_gguf_version(g) == 3);
    CHECK(lp_gguf_alignment(g) == a);
    CHECK(strcmp(lp_gguf_path(g), path) == 0);
    CHECK(lp_gguf_file_size(g) % a == 0);
    CHECK(lp_gguf_n_kv(g) == nk);
    for (int i = 0, k = 0; i < nk; i++) {
        const char *key = lp_gguf_key(g, i);
        if (alignment && i == 1) {
            CHECK(key && strcmp(key, "general.alignment") == 0);
            continue;
        }
        CHECKF(key && strcmp(key, k_keys[k]) == 0, "key %d is '%s', expected '%s'", i, key ? key : "NULL",
               k_keys[k]);
        CHECK(lp_gguf_kv_type(g, i) == k_key_types[k]);
        CHECK(lp_gguf_find_key(g, k_keys[k]) == i);
        k++;
    }
    CHECK(lp_gguf_key(g, nk) == NULL && lp_gguf_key(g, -1) == NULL);
    CHECK(lp_gguf_kv_type(g, nk) == (lp_gguf_vtype)-1);
    CHECK(lp_gguf_find_key(g, "nope") == -1 && !lp_gguf_has(g, "nope") && lp_gguf_has(g, "u32"));

    lp_gguf_str s = {0};
    uint32_t u = 0;
    int64_t i64 = 0;
    float f = 0;
    bool b = false;
    double d = 0;
    CHECK_OK(lp_gguf_get_str(g, "general.architecture", &s));
    CHECK(str_is(s, "llama", 5));
    CHECK_OK(lp_gguf_get_str(g, "general.name", &s));
    CHECK(str_is(s, "tiny \xC3\xBCnicode", 13));
    CHECK_OK(lp_gguf_get_str(g, "str.empty", &s));
    CHECK(s.n == 0);
    CHECK_OK(lp_gguf_get_u32(g, "u32", &u));
    CHECK(u == 4000000000u);
    CHECK_OK(lp_gguf_get_i64(g, "u32", &i64));
    CHECK(i64 == 4000000000);
    CHECK_OK(lp_gguf_get_i64(g, "i32", &i64));
    CHECK(i64 == -123456);
    CHECK_REFUSED(lp_gguf_get_u32(g, "i32", &u), path, "'i32'");
    CHECK_REFUSED(lp_gguf_get_i64(g, "u64", &i64), path, "'u64'");
    CHECK_REFUSED(lp_gguf_get_u32(g, "u64", &u), path, "'u64'");
    CHECK_OK(lp_gguf_get_f32(g, "f32", &f));
    CHECK(f == 0.15625f);
    CHECK_REFUSED(lp_gguf_get_f32(g, "u32", &f), path, "'u32'");
    CHECK_OK(lp_gguf_get_bool(g, "bool.t", &b));
    CHECK(b);
    CHECK_OK(lp_gguf_get_bool(g, "bool.f", &b));
    CHECK(!b);
    CHECK_REFUSED(lp_gguf_get_u32(g, "bool.t", &u), path, "'bool.t'");
    CHECK_REFUSED(lp_gguf_get_bool(g, "u32", &b), path, "'u32'");
    CHECK_REFUSED(lp_gguf_get_str(g, "u32", &s), path, "expected a string");
    CHECK_REFUSED(lp_gguf_get_bool(g, "missing.key", &b), path, "'missing.key'");
    CHECK_REFUSED(lp_gguf_get_arr(g, "u32", NULL, NULL), path, "'u32'");
    CHECK_REFUSED(lp_gguf_get_u32(g, "arr.i32", &u), path, "array of i32");

    lp_gguf_vtype et = LP_GGUF_U8;
    uint64_t n = 0;
    CHECK_OK(lp_gguf_get_arr(g, "arr.str", &et, &n));
    CHECK(et == LP_GGUF_STRING && n == 4);
    for (uint64_t k = 0; k < 4 && n == 4; k++) {
        CHECK_OK(lp_gguf_arr_str(g, "arr.str", k, &s));
        CHECK(str_is(s, k_strs[k], k_str_lens[k]));
    }
    CHECK_REFUSED(lp_gguf_arr_str(g, "arr.str", 4, &s), path, "out of range");
    CHECK_REFUSED(lp_gguf_arr_int(g, "arr.str", 0, &i64), path, "'arr.str'");
    CHECK_OK(lp_gguf_arr_str(g, "arr.str.nul", 1, &s));
    CHECK(str_is(s, "yy", 2));
    CHECK_OK(lp_gguf_get_arr(g, "arr.i32", &et, &n));
    CHECK(et == LP_GGUF_I32 && n == 4);
    for (uint64_t k = 0; k < 4; k++) {
        CHECK_OK(lp_gguf_arr_int(g, "arr.i32", k, &i64));
        CHECK(i64 == k_i32s[k]);
        CHECK_OK(lp_gguf_arr_num(g, "arr.i32", k, &d));
        CHECK(d == k_i32s[k]);
    }
    CHECK_OK(lp_gguf_get_arr(g, "arr.f32", &et, &n));
    CHECK(et == LP_GGUF_F32 && n == 3);
    for (uint64_t k = 0; k < 3; k++) {
        CHECK_OK(lp_gguf_arr_num(g, "arr.f32", k, &d));
        CHECK(d == k_f32s[k] && !signbit(d) == !signbit(k_f32s[k]));
    }
    CHECK_REFUSED(lp_gguf_arr_int(g, "arr.f32", 0, &i64), path, "'arr.f32'");
    CHECK_REFUSED(lp_gguf_arr_num(g, "arr.str", 0, &d), path, "'arr.str'");
    CHECK_OK(lp_gguf_get_arr(g, "arr.empty", &et, &n));
    CHECK(et == LP_GGUF_I32 && n == 0);
    CHECK_REFUSED(lp_gguf_arr_int(g, "arr.empty", 0, &i64), path, "out of range");

    CHECK(lp_gguf_n_tensors(g) == N_TENSORS);
    uint64_t end = 0;
    for (int i = 0; i < N_TENSORS; i++) {
        const lp_gguf_tensor *t = lp_gguf_tensor_at(g, i);
        const tspec *w = &k_tensors[i];
        if (!t) {
            CHECK(t != NULL);
            continue;
        }
        CHECKF(strcmp(t->name, w->name) == 0, "tensor %d is '%s', expected '%s'", i, t->name, w->name);
        CHECK(t->n_dims == w->n_dims && t->type == w->type && t->nbytes == w->nbytes);
        for (int dd = 0; dd < 4; dd++) CHECK(t->ne[dd] == w->ne[dd]);
        CHECK(t->offset % a == 0 && t->offset >= end);
        end = t->offset + t->nbytes;
        unsigned char *want = tensor_data(i);
        CHECKF(t->nbytes == 0 || memcmp(t->data, want, t->nbytes) == 0, "tensor '%s' data differs", w->name);
        free(want);
        CHECK(lp_gguf_find_tensor(g, w->name) == t);
    }
    CHECK(lp_gguf_tensor_at(g, N_TENSORS) == NULL && lp_gguf_tensor_at(g, -1) == NULL);
    CHECK(lp_gguf_find_tensor(g, "nope") == NULL);
    const lp_gguf_tensor *last = lp_gguf_tensor_at(g, N_TENSORS - 1);
    CHECK(last && (const unsigned char *)last->data + last->nbytes ==
                      (const unsigned char *)lp_gguf_tensor_at(g, 0)->data - lp_gguf_tensor_at(g, 0)->offset +
                          end);
    lp_gguf_close(g);
}

static void test_roundtrip(void) {
    const char *path = tmp_path("rt.gguf");
    CHECK_OK(write_roundtrip(path, 0));
    check_roundtrip(path, 0);
    const char *p64 = tmp_path("rt64.gguf");
    CHECK_OK(write_roundtrip(p64, 64));
    check_roundtrip(p64, 64);
    /* saving again over an existing file replaces it */
    CHECK_OK(write_roundtrip(p64, 0));
    check_roundtrip(p64, 0);
}

/* ---- every value type, hand-built (version 2) ---- */

static void build_every_type(buf *b) {
    put_hdr(b, 2, 1, 25);
#define KEY(name, type) \
    put_str(b, name);   \
    put_u32(b, type)
    KEY("u8", LP_GGUF_U8);
    put_le(b, 255, 1);
    KEY("i8", LP_GGUF_I8);
    put_le(b, 0x80, 1);
    KEY("u16", LP_GGUF_U16);
    put_le(b, 65535, 2);
    KEY("i16", LP_GGUF_I16);
    put_le(b, 0x8000, 2);
    KEY("u32", LP_GGUF_U32);
    put_u32(b, 0xFFFFFFFFu);
    KEY("i32", LP_GGUF_I32);
    put_u32(b, 0x80000000u);
    KEY("f32", LP_GGUF_F32);
    put_f32(b, -2.75f);
    KEY("bool", LP_GGUF_BOOL);
    put_le(b, 1, 1);
    KEY("string", LP_GGUF_STRING);
    put_str(b, "hello");
    KEY("u64", LP_GGUF_U64);
    put_u64(b, UINT64_MAX);
    KEY("u64.small", LP_GGUF_U64);
    put_u64(b, 5);
    KEY("i64", LP_GGUF_I64);
    put_u64(b, 0x8000000000000000ull);
    KEY("f64", LP_GGUF_F64);
    put_f64(b, 0.1);
    /* arrays of every element type */
#define ARR(name, elem, n) \
    KEY(name, LP_GGUF_ARRAY); \
    put_u32(b, elem);         \
    put_u64(b, n)
    ARR("a.u8", LP_GGUF_U8, 2);
    put_le(b, 0, 1), put_le(b, 255, 1);
    ARR("a.i8", LP_GGUF_I8, 2);
    put_le(b, 0x80, 1), put_le(b, 127, 1);
    ARR("a.u16", LP_GGUF_U16, 1);
    put_le(b, 40000, 2);
    ARR("a.i16", LP_GGUF_I16, 2);
    put_le(b, 0xFFFF, 2), put_le(b, 300, 2);
    ARR("a.u32", LP_GGUF_U32, 2);
    put_u32(b, 0), put_u32(b, 0xFFFFFFFFu);
    ARR("a.i32", LP_GGUF_I32, 1);
    put_u32(b, 0xFFFFFFFEu);
    ARR("a.f32", LP_GGUF_F32, 2);
    put_f32(b, 0.5f), put_f32(b, -1e-3f);
    ARR("a.bool", LP_GGUF_BOOL, 3);
    put_le(b, 1, 1), put_le(b, 0, 1), put_le(b, 2, 1);
    ARR("a.string", LP_GGUF_STRING, 3);
    put_str(b, "x"), put_str(b, ""), put_strn(b, "n\0ul", 4);
    ARR("a.u64", LP_GGUF_U64, 2);
    put_u64(b, 1), put_u64(b, UINT64_MAX);
    ARR("a.i64", LP_GGUF_I64, 1);
    put_u64(b, 0x8000000000000000ull);
    ARR("a.f64", LP_GGUF_F64, 2);
    put_f64(b, 0.1), put_f64(b, -2.5);
#undef ARR
#undef KEY
    const int64_t ne[2] = {4, 2};
    put_ti(b, "w", 2, ne, LP_GGML_F32, 0);
    put_pad(b, 32);
    put_data(b, 32, 3);
}

static void test_every_type(void) {
    buf b = {0};
    build_every_type(&b);
    lp_gguf *g = NULL;
    unsigned char *copy;
    const char *nm = "every.gguf";
    CHECK_OK(open_copy(b.p, b.n, nm, &g, &copy));
    if (g) {
        CHECK(lp_gguf_version(g) == 2 && lp_gguf_n_kv(g) == 25 && lp_gguf_n_tensors(g) == 1);
        uint32_t u = 0;
        int64_t v = 0;
        float f = 0;
        bool bo = false;
        double d = 0;
        lp_gguf_str s;
        CHECK_OK(lp_gguf_get_u32(g, "u8", &u));
        CHECK(u == 255);
        CHECK_OK(lp_gguf_get_i64(g, "i8", &v));
        CHECK(v == -128);
        CHECK_REFUSED(lp_gguf_get_u32(g, "i8", &u), nm, "'i8'");
        CHECK_OK(lp_gguf_get_u32(g, "u16", &u));
        CHECK(u == 65535);
        CHECK_OK(lp_gguf_get_i64(g, "i16", &v));
        CHECK(v == -32768);
        CHECK_OK(lp_gguf_get_u32(g, "u32", &u));
        CHECK(u == 0xFFFFFFFFu);
        CHECK_OK(lp_gguf_get_i64(g, "i32", &v));
        CHECK(v == INT32_MIN);
        CHECK_OK(lp_gguf_get_f32(g, "f32", &f));
        CHECK(f == -2.75f);
        CHECK_OK(lp_gguf_get_bool(g, "bool", &bo));
        CHECK(bo);
        CHECK_OK(lp_gguf_get_str(g, "string", &s));
        CHECK(str_is(s, "hello", 5));
        CHECK_REFUSED(lp_gguf_get_i64(g, "u64", &v), nm, "'u64'");
        CHECK_OK(lp_gguf_get_u32(g, "u64.small", &u));
        CHECK(u == 5);
        CHECK_OK(lp_gguf_get_i64(g, "i64", &v));
        CHECK(v == INT64_MIN);
        CHECK_OK(lp_gguf_get_f32(g, "f64", &f));
        CHECK(f == 0.1f);
        CHECK_REFUSED(lp_gguf_get_f32(g, "i64", &f), nm, "'i64'");

        static const struct {
            const char *key;
            lp_gguf_vtype elem;
            int n;
            double v[3];
        } arrs[] = {
            {"a.u8", LP_GGUF_U8, 2, {0, 255}},
            {"a.i8", LP_GGUF_I8, 2, {-128, 127}},
            {"a.u16", LP_GGUF_U16, 1, {40000}},
            {"a.i16", LP_GGUF_I16, 2, {-1, 300}},
            {"a.u32", LP_GGUF_U32, 2, {0, 4294967295.0}},
            {"a.i32", LP_GGUF_I32, 1, {-2}},
            {"a.f32", LP_GGUF_F32, 2, {0.5, (double)-1e-3f}},
            {"a.bool", LP_GGUF_BOOL, 3, {1, 0, 1}},
            {"a.u64", LP_GGUF_U64, 2, {1, 18446744073709551615.0}},
            {"a.i64", LP_GGUF_I64, 1, {-9223372036854775808.0}},
            {"a.f64", LP_GGUF_F64, 2, {0.1, -2.5}},
        };
        for (size_t k = 0; k < sizeof arrs / sizeof arrs[0]; k++) {
            lp_gguf_vtype et = LP_GGUF_ARRAY;
            uint64_t n = 0;
            CHECK_OK(lp_gguf_get_arr(g, arrs[k].key, &et, &n));
            CHECKF(et == arrs[k].elem && n == (uint64_t)arrs[k].n, "%s: elem %d n %llu", arrs[k].key, (int)et,
                   (unsigned long long)n);
            for (int j = 0; j < arrs[k].n && n == (uint64_t)arrs[k].n; j++) {
                CHECK_OK(lp_gguf_arr_num(g, arrs[k].key, (uint64_t)j, &d));
                CHECKF(d == arrs[k].v[j], "%s[%d] = %g, expected %g", arrs[k].key, j, d, arrs[k].v[j]);
                const bool is_float = et == LP_GGUF_F32 || et == LP_GGUF_F64;
                const bool too_big = et == LP_GGUF_U64 && j == 1;
                lp_status st = lp_gguf_arr_int(g, arrs[k].key, (uint64_t)j, &v);
                if (is_float || too_big) {
                    CHECKF(st == LP_ERR_FORMAT && strstr(lp_last_error(), nm), "%s[%d] as int: %s", arrs[k].key,
                           j, lp_last_error());
                } else {
                    CHECKF(st == LP_OK && (double)v == arrs[k].v[j], "%s[%d] as int: %s", arrs[k].key, j,
                           lp_last_error());
                }
            }
        }
        uint64_t n = 0;
        CHECK_OK(lp_gguf_get_arr(g, "a.string", NULL, &n));
        CHECK(n == 3);
        CHECK_OK(lp_gguf_arr_str(g, "a.string", 0, &s));
        CHECK(str_is(s, "x", 1));
        CHECK_OK(lp_gguf_arr_str(g, "a.string", 1, &s));
        CHECK(s.n == 0);
        CHECK_OK(lp_gguf_arr_str(g, "a.string", 2, &s));
        CHECK(str_is(s, "n\0ul", 4));
        const lp_gguf_tensor *t = lp_gguf_find_tensor(g, "w");
        CHECK(t && t->nbytes == 32 && t->ne[0] == 4 && t->ne[1] == 2 && t->ne[2] == 1 &&
              (const unsigned char *)t->data == copy + b.n - 32);
    }
    lp_gguf_close(g);
    free(copy);
    free(b.p);
}

/* ---- writer arguments, alignment, failed saves ---- */

static void test_writer_args(void) {
    lp_gguf_writer *w;
    CHECK_OK(lp_gguf_writer_init(&w));
    if (!w) return;
    float data[64] = {0};
    const int64_t ne1[1] = {4}, ne_q[1] = {33}, ne_neg[2] = {4, -1}, ne5[5] = {1, 1, 1, 1, 1};
    CHECK_OK(lp_gguf_set_u32(w, "k", 1));
    CHECK(lp_gguf_set_u32(w, "k", 2) == LP_ERR_ARG);
    CHECK(lp_gguf_set_str(w, "k", "again") == LP_ERR_ARG && strstr(lp_last_error(), "'k'"));
    CHECK(lp_gguf_set_u32(w, "", 1) == LP_ERR_ARG);
    CHECK(lp_gguf_set_u32(w, NULL, 1) == LP_ERR_ARG);
    CHECK(lp_gguf_set_str(w, "s", NULL) == LP_ERR_ARG);
    CHECK(lp_gguf_set_arr_f32(w, "af", NULL, 3) == LP_ERR_ARG);
    CHECK(lp_gguf_set_u32(w, "general.alignment", 48) == LP_ERR_ARG);
    CHECK(lp_gguf_set_u32(w, "general.alignment", 0) == LP_ERR_ARG);
    CHECK(lp_gguf_set_i32(w, "general.alignment", 64) == LP_ERR_ARG);
    CHECK(lp_gguf_set_u64(w, "general.alignment", 64) == LP_ERR_ARG);
    CHECK_OK(lp_gguf_set_u32(w, "general.alignment", 16));
    CHECK(lp_gguf_set_u32(w, "general.alignment", 16) == LP_ERR_ARG);
    CHECK_OK(lp_gguf_add_tensor(w, "t", 1, ne1, LP_GGML_F32, data));
    CHECK(lp_gguf_add_tensor(w, "t", 1, ne1, LP_GGML_F32, data) == LP_ERR_ARG && strstr(lp_last_error(), "'t'"));
    char name63[64], name64[65];
    memset(name63, 'n', 63), name63[63] = '\0';
    memset(name64, 'n', 64), name64[64] = '\0';
    CHECK_OK(lp_gguf_add_tensor(w, name63, 1, ne1, LP_GGML_F32, data));
    CHECK(lp_gguf_add_tensor(w, name64, 1, ne1, LP_GGML_F32, data) == LP_ERR_ARG);
    CHECK(lp_gguf_add_tensor(w, "d0", 0, ne1, LP_GGML_F32, data) == LP_ERR_ARG);
    CHECK(lp_gguf_add_tensor(w, "d5", 5, ne5, LP_GGML_F32, data) == LP_ERR_ARG);
    CHECK(lp_gguf_add_tensor(w, "q", 1, ne_q, LP_GGML_Q4_0, data) == LP_ERR_ARG &&
          strstr(lp_last_error(), "block of 32"));
    CHECK(lp_gguf_add_tensor(w, "ty", 1, ne1, 4, data) == LP_ERR_ARG);
    CHECK(lp_gguf_add_tensor(w, "neg", 2, ne_neg, LP_GGML_F32, data) == LP_ERR_ARG);
    CHECK(lp_gguf_add_tensor(w, "nodata", 1, ne1, LP_GGML_F32, NULL) == LP_ERR_ARG);
    CHECK(lp_gguf_add_tensor(w, "noshape", 1, NULL, LP_GGML_F32, data) == LP_ERR_ARG);

    /* A save that fails leaves nothing: onto a directory, into a missing one. */
    const char *dir = tmp_path("adir");
    mkdir(dir, 0755);
    int before = count_dir_entries(g_dir);
    CHECK(lp_gguf_writer_save(w, dir) == LP_ERR_IO);
    CHECK(count_dir_entries(g_dir) == before);
    CHECK(count_dir_entries(dir) == 0);
    const char *nodir = tmp_path("no/such/dir/x.gguf");
    CHECK(lp_gguf_writer_save(w, nodir) == LP_ERR_IO && strstr(lp_last_error(), nodir));
    CHECK(count_dir_entries(g_dir) == before);
    rmdir(dir);

    /* alignment 16 took effect */
    const char *path = tmp_path("a16.gguf");
    CHECK_OK(lp_gguf_writer_save(w, path));
    lp_gguf *g = NULL;
    CHECK_OK(lp_gguf_open(path, &g));
    CHECK(lp_gguf_alignment(g) == 16 && lp_gguf_n_tensors(g) == 2);
    const lp_gguf_tensor *t = lp_gguf_tensor_at(g, 1);
    CHECK(t && t->offset == 16); /* 16 bytes of "t", already aligned */
    lp_gguf_close(g);
    lp_gguf_writer_free(w);
    lp_gguf_writer_free(NULL);
    lp_gguf_close(NULL);
}

/* ---- corrupt files ---- */

/* A valid one-tensor file: key "general.architecture", tensor name with
 * shape (ne0 F32), data of the given size at offset off. */
static void one_tensor(buf *b, const char *name, int64_t ne0, uint64_t off, size_t data) {
    put_hdr(b, 3, 1, 1);
    put_str(b, "general.architecture");
    put_u32(b, LP_GGUF_STRING);
    put_str(b, "llama");
    put_ti(b, name, 1, &ne0, LP_GGML_F32, off);
    put_pad(b, 32);
    put_data(b, data, 1);
}

static void test_corrupt(void) {
    /* every proper prefix of a valid file, and the file itself */
    const char *rt = tmp_path("rt.gguf");
    size_t n = 0;
    unsigned char *whole = read_all(rt, &n);
    CHECK(whole && n > 1000);
    int refused = 0;
    for (size_t len = 0; whole && len < n; len++) {
        lp_gguf *g = (lp_gguf *)1;
        unsigned char *copy;
        lp_status st = open_copy(whole, len, "prefix.gguf", &g, &copy);
        if (getenv("LP_TEST_VERBOSE") && len % 97 == 0) fprintf(stderr, "prefix %zu: %s\n", len, lp_last_error());
        if (st == LP_ERR_FORMAT && !g && strstr(lp_last_error(), "prefix.gguf")) refused++;
        else CHECKF(0, "prefix of %zu bytes: status %s, %s", len, lp_status_name(st), lp_last_error());
        if (st == LP_OK) lp_gguf_close(g);
        free(copy);
    }
    CHECK(whole == NULL || refused == (int)n);
    buf b = {0};
    if (whole) {
        put(&b, whole, n);
        expect_good(&b);
        put(&b, "trailing", 8); /* bytes after the last tensor are ignored */
        expect_good(&b);
        b.n = 0;
    }
    free(whole);

    /* through a real path: the message names it */
    const char *bad = tmp_path("bad magic.gguf");
    write_all(bad, "GGML\3\0\0\0", 8);
    lp_gguf *g = (lp_gguf *)1;
    CHECK(lp_gguf_open(bad, &g) == LP_ERR_FORMAT && g == NULL && strstr(lp_last_error(), bad) &&
          strstr(lp_last_error(), "'GGML'"));
    CHECK(lp_gguf_open(tmp_path("absent.gguf"), &g) == LP_ERR_IO && g == NULL);
    CHECK(lp_gguf_open(g_dir, &g) == LP_ERR_IO && g == NULL);

    /* magic and version */
    one_tensor(&b, "w", 8, 0, 32);
    expect_good(&b);
    b.p[3] = 'X';
    expect_bad(&b, "magic 'GGUX'");
    b.p[3] = 'F';
    b.p[4] = 1;
    expect_bad(&b, "version 1");
    b.p[4] = 4;
    expect_bad(&b, "version 4");
    b.p[4] = 0, b.p[7] = 3;
    expect_bad(&b, "big-endian");
    b.n = 0;

    /* counts that cannot fit the file: refused before any allocation */
    put_hdr(&b, 3, 0, (uint64_t)1 << 60);
    expect_bad(&b, "key-value pairs");
    b.n = 0;
    put_hdr(&b, 3, (uint64_t)1 << 60, 0);
    expect_bad(&b, "tensors");
    b.n = 0;
    put_hdr(&b, 3, UINT64_MAX, UINT64_MAX);
    put_data(&b, 4096, 0);
    expect_bad(&b, NULL);
    b.n = 0;
    put_hdr(&b, 3, 2, 0); /* room for 2 tensors is 64 bytes */
    put_data(&b, 40, 0);
    expect_bad(&b, "at most 1");
    b.n = 0;

    /* lengths */
    put_hdr(&b, 3, 0, 1);
    put_u64(&b, (uint64_t)1 << 63); /* key length */
    put_data(&b, 16, 0);
    expect_bad(&b, "past the end of the file");
    b.n = 0;
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "s");
    put_u32(&b, LP_GGUF_STRING);
    put_u64(&b, UINT64_MAX);
    put_data(&b, 16, 0);
    expect_bad(&b, "key 's'");
    b.n = 0;
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, LP_GGUF_ARRAY);
    put_u32(&b, LP_GGUF_U64);
    put_u64(&b, (uint64_t)1 << 62); /* x 8 bytes overflows 64 bits */
    put_data(&b, 16, 0);
    expect_bad(&b, "array of 4611686018427387904 u64");
    b.n = 0;
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "arr");
    put_u32(&b, LP_GGUF_ARRAY);
    put_u32(&b, LP_GGUF_STRING);
    put_u64(&b, 3);
    put_str(&b, "ok");
    put_u64(&b, 1000); /* the second string runs past the end */
    put_data(&b, 16, 0);
    expect_bad(&b, "string 1 of the array");
    b.n = 0;

    /* value types */
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, 13);
    put_data(&b, 16, 0);
    expect_bad(&b, "unknown value type 13");
    b.n = 0;
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, UINT32_MAX);
    put_data(&b, 16, 0);
    expect_bad(&b, "unknown value type");
    b.n = 0;
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, LP_GGUF_ARRAY);
    put_u32(&b, LP_GGUF_ARRAY);
    put_u64(&b, 1);
    put_data(&b, 16, 0);
    expect_bad(&b, "array of arrays");
    b.n = 0;
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "k");
    put_u32(&b, LP_GGUF_ARRAY);
    put_u32(&b, 200);
    put_u64(&b, 1);
    put_data(&b, 16, 0);
    expect_bad(&b, "array of unknown value type 200");
    b.n = 0;

    /* keys */
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "");
    put_u32(&b, LP_GGUF_U8);
    put_data(&b, 16, 0);
    expect_bad(&b, "empty name");
    b.n = 0;
    put_hdr(&b, 3, 0, 1);
    put_strn(&b, "a\0b", 3);
    put_u32(&b, LP_GGUF_U8);
    put_data(&b, 16, 0);
    expect_bad(&b, "NUL");
    b.n = 0;
    put_hdr(&b, 3, 0, 3);
    put_kv_u32(&b, "dup", 1);
    put_kv_u32(&b, "other", 1);
    put_kv_u32(&b, "dup", 2);
    expect_bad(&b, "key 'dup' appears twice (keys 0 and 2)");
    b.n = 0;
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "ctl\x1b[31m");
    put_u32(&b, 77);
    expect_bad(&b, "key 'ctl\\x1b[31m'"); /* control bytes escaped in messages */
    b.n = 0;

    /* general.alignment */
    put_hdr(&b, 3, 0, 1);
    put_str(&b, "general.alignment");
    put_u32(&b, LP_GGUF_I32);
    put_u32(&b, 32);
    expect_bad(&b, "general.alignment' is an i32");
    b.n = 0;
    const uint32_t bad_align[] = {0, 48, 0x80000001u};
    for (int k = 0; k < 3; k++) {
        put_hdr(&b, 3, 0, 1);
        put_kv_u32(&b, "general.alignment", bad_align[k]);
        expect_bad(&b, "power of two");
        b.n = 0;
    }
    { /* alignment 8: the data section starts at the header's end rounded to 8 */
        const int64_t ne0 = 2;
        put_hdr(&b, 3, 1, 1);
        put_kv_u32(&b, "general.alignment", 8);
        put_ti(&b, "w", 1, &ne0, LP_GGML_F32, 8);
        put_pad(&b, 8);
        put_data(&b, 16, 5);
        lp_gguf *g8 = NULL;
        unsigned char *copy;
        CHECK_OK(open_copy(b.p, b.n, "a8.gguf", &g8, &copy));
        const lp_gguf_tensor *t = lp_gguf_tensor_at(g8, 0);
        CHECK(lp_gguf_alignment(g8) == 8 && t && (const unsigned char *)t->data == copy + b.n - 8);
        lp_gguf_close(g8);
        free(copy);
        b.n = 0;
    }

    /* tensor descriptions */
    const int64_t ne_ok[2] = {8, 1};
    const uint32_t bad_types[] = {4, 5, 31, 39, 40, UINT32_MAX};
    for (int k = 0; k < 6; k++) {
        put_hdr(&b, 3, 1, 0);
        put_ti(&b, "w", 2, ne_ok, bad_types[k], 0);
        put_pad(&b, 32);
        put_data(&b, 64, 0);
        expect_bad(&b, "tensor 'w' has unknown ggml type");
        b.n = 0;
    }
    const uint32_t bad_dims[] = {0, 5, UINT32_MAX};
    for (int k = 0; k < 3; k++) {
        const int64_t ne[5] = {8, 1, 1, 1, 1};
        put_hdr(&b, 3, 1, 0);
        put_ti(&b, "w", bad_dims[k] == 5 ? 5 : 0, ne, LP_GGML_F32, 0);
        for (int j = 0; j < 4; j++) b.p[24 + 9 + j] = (unsigned char)(bad_dims[k] >> (8 * j)); /* n_dims */
        put_pad(&b, 32);
        put_data(&b, 64, 0);
        expect_bad(&b, "dimensions, expected 1 to 4");
        b.n = 0;
    }
    {
        const int64_t ne_neg[2] = {8, -1}, ne_big[2] = {(int64_t)1 << 32, (int64_t)1 << 32},
                      ne_f64[1] = {(int64_t)1 << 62};
        put_hdr(&b, 3, 1, 0);
        put_ti(&b, "w", 2, ne_neg, LP_GGML_F32, 0);
        put_data(&b, 64, 0);
        expect_bad(&b, "ne[1] = -1, expected >= 0");
        b.n = 0;
        put_hdr(&b, 3, 1, 0);
        put_ti(&b, "w", 2, ne_big, LP_GGML_F32, 0);
        put_data(&b, 64, 0);
        expect_bad(&b, "element count overflows");
        b.n = 0;
        put_hdr(&b, 3, 1, 0); /* 2^62 elements fit int64, 2^65 bytes do not fit 64 bits */
        put_ti(&b, "w", 1, ne_f64, LP_GGML_F64, 0);
        put_data(&b, 64, 0);
        expect_bad(&b, "byte size that overflows");
        b.n = 0;
    }
    {
        const int64_t ne33[1] = {33};
        put_hdr(&b, 3, 1, 0);
        put_ti(&b, "w", 1, ne33, LP_GGML_Q4_0, 0);
        put_pad(&b, 32);
        put_data(&b, 64, 0);
        expect_bad(&b, "type Q4_0 has rows of 33 elements, not a multiple of its block of 32");
        b.n = 0;
    }
    {
        char long_name[65];
        memset(long_name, 'x', 64), long_name[64] = '\0';
        one_tensor(&b, long_name, 8, 0, 32);
        expect_bad(&b, "GGML_MAX_NAME");
        b.n = 0;
        long_name[63] = '\0';
        one_tensor(&b, long_name, 8, 0, 32);
        expect_good(&b);
        b.n = 0;
        const int64_t ne8 = 8;
        put_hdr(&b, 3, 1, 0);
        put_strn(&b, "w\0x", 3);
        put_u32(&b, 1), put_u64(&b, (uint64_t)ne8), put_u32(&b, LP_GGML_F32), put_u64(&b, 0);
        put_pad(&b, 32);
        put_data(&b, 32, 0);
        expect_bad(&b, "tensor 0's name 'w\\x00x' contains a NUL byte");
        b.n = 0;
    }

    /* tensor data */
    one_tensor(&b, "w", 8, 1, 64);
    expect_bad(&b, "data offset 1, not a multiple of the alignment 32");
    b.n = 0;
    one_tensor(&b, "blk.0.attn_q.weight", 16, 32, 32); /* 64 bytes at 32 of a 64-byte section */
    {
        char want[200];
        const size_t start = b.n - 32;
        snprintf(want, sizeof want,
                 "bad.gguf: tensor 'blk.0.attn_q.weight': data [%zu, %zu) lies past the end of the file (%zu bytes)",
                 start + 32, start + 96, b.n);
        expect_bad(&b, want);
    }
    b.n = 0;
    one_tensor(&b, "w", 8, (uint64_t)1 << 63, 32);
    expect_bad(&b, "lies past the end of the file");
    b.n = 0;
    one_tensor(&b, "w", 8, UINT64_MAX - 31, 32);
    expect_bad(&b, "data at offset 18446744073709551584 + 32 bytes of the data section");
    b.n = 0;
    put_hdr(&b, 3, 1, 0); /* no room left even for the data section's start */
    put_ti(&b, "w", 1, ne_ok, LP_GGML_F32, 0);
    expect_bad(&b, "data section starts at byte 64");
    b.n = 0;
    {
        const int64_t ne8 = 8, ne16 = 16, ne0 = 0;
        put_hdr(&b, 3, 2, 0); /* both at offset 0 */
        put_ti(&b, "x", 1, &ne8, LP_GGML_F32, 0);
        put_ti(&b, "y", 1, &ne8, LP_GGML_F32, 0);
        put_pad(&b, 32);
        put_data(&b, 64, 0);
        expect_bad(&b, "overlap");
        b.n = 0;
        put_hdr(&b, 3, 3, 0); /* x [0, 64) and y [32, 64), listed in reverse */
        put_ti(&b, "y", 1, &ne8, LP_GGML_F32, 32);
        put_ti(&b, "e", 1, &ne0, LP_GGML_F32, 32); /* empty: owns no bytes, may sit anywhere */
        put_ti(&b, "x", 1, &ne16, LP_GGML_F32, 0);
        put_pad(&b, 32);
        put_data(&b, 64, 0);
        expect_bad(&b, "tensors 'x' [128, 192) and 'y' [160, 192) overlap"); /* file offsets */
        b.n = 0;
        put_hdr(&b, 3, 3, 0); /* the same without the overlap, out of order with a gap: accepted */
        put_ti(&b, "y", 1, &ne8, LP_GGML_F32, 64);
        put_ti(&b, "e", 1, &ne0, LP_GGML_F32, 32);
        put_ti(&b, "x", 1, &ne8, LP_GGML_F32, 0);
        put_pad(&b, 32);
        put_data(&b, 96, 0);
        expect_good(&b);
        b.n = 0;
        put_hdr(&b, 3, 2, 0);
        put_ti(&b, "x", 1, &ne8, LP_GGML_F32, 0);
        put_ti(&b, "x", 1, &ne8, LP_GGML_F32, 32);
        put_pad(&b, 32);
        put_data(&b, 64, 0);
        expect_bad(&b, "tensor 'x' appears twice (tensors 0 and 1)");
        b.n = 0;
    }
    free(b.p);
}

/* ---- fuzz seeds ---- */

/* Tensors out of order with a gap, alignment 64, version 2. */
static void build_unordered(buf *b) {
    const int64_t ne_a[2] = {32, 2}, ne_b[1] = {4};
    put_hdr(b, 2, 2, 2);
    put_kv_u32(b, "general.alignment", 64);
    put_str(b, "tokenizer.ggml.tokens");
    put_u32(b, LP_GGUF_ARRAY);
    put_u32(b, LP_GGUF_STRING);
    put_u64(b, 3);
    put_str(b, "<s>"), put_str(b, "a"), put_str(b, "\xE2\x96\x81the");
    put_ti(b, "b", 1, ne_b, LP_GGML_I32, 0);
    put_ti(b, "a", 2, ne_a, LP_GGML_Q8_0, 128);
    put_pad(b, 64);
    put_data(b, 16, 9);
    put_pad(b, 64);
    put_data(b, 64, 0);
    put_data(b, 68, 4);
}

/* Metadata only: no tensors, no data section. */
static void build_metadata_only(buf *b) {
    put_hdr(b, 3, 0, 3);
    put_str(b, "general.architecture");
    put_u32(b, LP_GGUF_STRING);
    put_str(b, "llama");
    put_kv_u32(b, "llama.context_length", 2048);
    put_str(b, "tokenizer.ggml.scores");
    put_u32(b, LP_GGUF_ARRAY);
    put_u32(b, LP_GGUF_F32);
    put_u64(b, 3);
    put_f32(b, 0.0f), put_f32(b, -1.0f), put_f32(b, -2.5f);
}

static int write_seeds(const char *dir) {
    char path[4096];
    buf b = {0};
    snprintf(path, sizeof path, "%s/writer.gguf", dir);
    if (write_roundtrip(path, 0) != LP_OK) goto fail;
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    if (write_tiny(path) != LP_OK) goto fail;
    build_every_type(&b);
    snprintf(path, sizeof path, "%s/every_type_v2.gguf", dir);
    write_all(path, b.p, b.n);
    b.n = 0;
    build_unordered(&b);
    snprintf(path, sizeof path, "%s/unordered_align64.gguf", dir);
    write_all(path, b.p, b.n);
    b.n = 0;
    build_metadata_only(&b);
    snprintf(path, sizeof path, "%s/metadata_only.gguf", dir);
    write_all(path, b.p, b.n);
    free(b.p);
    printf("wrote the gguf seeds to %s\n", dir);
    return 0;
fail:
    fprintf(stderr, "test_gguf --write-seeds: %s\n", lp_last_error());
    return 1;
}

/* The hand-built seeds are valid, and the committed seeds all parse. */
static void test_seeds(void) {
    buf b = {0};
    build_unordered(&b);
    lp_gguf *g = NULL;
    unsigned char *copy;
    CHECK_OK(open_copy(b.p, b.n, "unordered.gguf", &g, &copy));
    CHECK(g && lp_gguf_alignment(g) == 64 && lp_gguf_n_tensors(g) == 2 && lp_gguf_find_tensor(g, "a") &&
          lp_gguf_find_tensor(g, "a")->offset == 128 && lp_gguf_find_tensor(g, "a")->nbytes == 68);
    lp_gguf_close(g);
    free(copy);
    b.n = 0;
    build_metadata_only(&b);
    CHECK_OK(open_copy(b.p, b.n, "meta.gguf", &g, &copy));
    CHECK(g && lp_gguf_n_tensors(g) == 0 && lp_gguf_n_kv(g) == 3);
    lp_gguf_close(g);
    free(copy);
    free(b.p);

    const char *src = getenv("LP_SOURCE");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/seeds/gguf", src ? src : ".");
    DIR *d = opendir(dir);
    if (!d) {
        CHECKF(src == NULL, "no seed directory %s", dir);
        return;
    }
    int seen = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        g = NULL;
        CHECK_OK(lp_gguf_open(path, &g));
        CHECKF(lp_gguf_file_size(g) < 4096, "seed %s is %llu bytes", path,
               (unsigned long long)lp_gguf_file_size(g));
        lp_gguf_close(g);
        seen++;
    }
    closedir(d);
    CHECK(seen >= 5);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) return write_seeds(argv[2]);
    snprintf(g_dir, sizeof g_dir, "/tmp/lp_test_gguf_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_types();
    test_layout();
    test_roundtrip();
    test_every_type();
    test_writer_args();
    test_corrupt();
    test_seeds();
    DIR *d = opendir(g_dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tmp_path(e->d_name));
    if (d) closedir(d);
    rmdir(g_dir);
    TEST_DONE();
}
