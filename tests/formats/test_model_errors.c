/*
 * test_model_errors.c - broken checkpoints are clean errors, never crashes.
 *
 * Each case copies a committed tiny checkpoint into a temporary directory,
 * breaks one thing, and checks that lp_model_load fails with the right status
 * and a message naming the file (or directory) and the problem:
 *   - config.json contradicting the weights (hidden, MLP and vocab sizes,
 *     layer count): the message names the tensor and both shapes;
 *   - a tensor or bias removed (the file rewritten with lp_st_writer);
 *   - sharded checkpoints: a shard deleted, the index mapping a tensor to a
 *     shard that lacks it, an index naming no such shard, a malformed index;
 *   - model.safetensors truncated at many points (inside the length field,
 *     the header and the data) and a header length beyond the file;
 *   - not a directory, no config.json, no weights;
 *   - an I32 / U8 tensor where a float weight is expected;
 *   - config.json's num_hidden_layers below the checkpoint's layers;
 *   - NaN / +Inf / -Inf in any float tensor the model uses (a linear, a
 *     norm, the embedding, a bias, the untied head) of an F32, F16 and a
 *     sharded BF16 checkpoint: refused at load (the model guard) with
 *     LP_ERR_NUMERIC naming the file (the shard), the tensor, the index
 *     and the value;
 *   - a compressed checkpoint (RTN W4 g32 of tiny-mistral, saved with
 *     lp_model_save) whose metadata or packed tensors are corrupted: bits 0
 *     or 9, group 48, unknown format, bits that disagree with the packed
 *     shape, qweight of the wrong shape or dtype, a missing qzeros, a zero
 *     point above 2^b - 1, a NaN scale, metadata that is not JSON, and an
 *     unknown or missing format version.
 * Run under the ASan build as well: "never crashes" includes no invalid read.
 */
#include "test.h"

#include "io/safetensors.h"
#include "llmpress/model.h"
#include "llmpress/quant.h"

#include <dirent.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_root[256]; /* temporary directory holding every case */
static int g_case = 0;

/* ---- files ---- */

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[len] = '\0';
    if (n) *n = (size_t)len;
    return buf;
}

static bool write_all(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* A fresh directory for one case: g_root/<k>-<label>. */
static void new_case_dir(const char *label, char *out, size_t n) {
    snprintf(out, n, "%s/%02d-%s", g_root, ++g_case, label);
    if (mkdir(out, 0755) != 0) {
        perror(out);
        exit(1);
    }
}

/* Copy every regular file of src into a fresh case directory. */
static void copy_model(const char *model, const char *label, char *out, size_t n) {
    new_case_dir(label, out, n);
    char src[512], a[1024], b[1024];
    snprintf(src, sizeof src, "%s", test_data("models/"));
    strncat(src, model, sizeof src - strlen(src) - 1);
    DIR *d = opendir(src);
    if (!d) {
        fprintf(stderr, "cannot open %s\n", src);
        exit(1);
    }
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", out, e->d_name);
        size_t len;
        char *data = read_all(a, &len);
        if (!data || !write_all(b, data, len)) {
            fprintf(stderr, "cannot copy %s to %s\n", a, b);
            exit(1);
        }
        free(data);
    }
    closedir(d);
}

static void path_in(char *out, size_t n, const char *dir, const char *file) {
    snprintf(out, n, "%s/%s", dir, file);
}

/* Replace the first occurrence of `from` in a text file; fails the test if absent. */
static void edit_text(const char *dir, const char *file, const char *from, const char *to) {
    char p[600];
    path_in(p, sizeof p, dir, file);
    size_t n;
    char *s = read_all(p, &n);
    char *hit = s ? strstr(s, from) : NULL;
    CHECKF(hit != NULL, "fixture %s lacks \"%s\"", p, from);
    if (!hit) {
        free(s);
        return;
    }
    size_t pre = (size_t)(hit - s), fl = strlen(from), tl = strlen(to);
    char *o = malloc(n - fl + tl + 1);
    memcpy(o, s, pre);
    memcpy(o + pre, to, tl);
    memcpy(o + pre + tl, hit + fl, n - pre - fl);
    CHECK(write_all(p, o, n - fl + tl));
    free(o);
    free(s);
}

/* ---- rewriting a safetensors file through the library's writer ---- */

typedef struct {
    const char *name;
    lp_dtype dt;
    int ndim;
    int64_t shape[LP_MAX_DIMS];
    const void *data;
    void *owned; /* a modified copy of the data, freed after saving */
    bool drop;
} tspec;

typedef struct {
    void (*tensor)(void *ud, tspec *t);                       /* may change or drop t */
    const char *(*meta)(void *ud, const char *k, const char *v); /* new value, NULL = drop */
    void *ud;
} edits;

static void *copy_of(const tspec *t, size_t nbytes) {
    void *p = malloc(nbytes);
    memcpy(p, t->data, nbytes);
    return p;
}

/* Rewrite src (a safetensors file) into dst with edits applied. Metadata
 * keys are copied for "format", "llmpress.format_version" and the
 * "llmpress.linear.<base>" entry of every <base>.qweight in src. */
static void rewrite(const char *src, const char *dst, const edits *ed) {
    lp_st_file *f = NULL;
    lp_st_writer *w = NULL;
    CHECK_OK(lp_st_open(src, &f));
    CHECK_OK(lp_st_writer_init(&w));
    if (!f || !w) exit(1);
    int64_t n = lp_st_count(f);
    tspec *ts = calloc((size_t)n, sizeof *ts);
    for (int64_t i = 0; i < n; i++) {
        const lp_tensor_view *v = lp_st_at(f, i);
        tspec *t = &ts[i];
        t->name = v->name;
        t->dt = v->dtype;
        t->ndim = v->ndim;
        memcpy(t->shape, v->shape, sizeof t->shape);
        t->data = v->data;
        if (ed && ed->tensor) ed->tensor(ed->ud, t);
        if (!t->drop) CHECK_OK(lp_st_writer_add(w, t->name, t->dt, t->ndim, t->shape, t->data));
    }
    char keys[64][256];
    int nk = 0;
    snprintf(keys[nk++], 256, "format");
    snprintf(keys[nk++], 256, "llmpress.format_version");
    for (int64_t i = 0; i < n && nk < 64; i++) {
        /* <base>.<array> of a packed linear: keep "llmpress.linear.<base>" once */
        const char *nm = lp_st_at(f, i)->name, *dot = strrchr(nm, '.');
        if (!dot) continue;
        char key[256];
        snprintf(key, sizeof key, "llmpress.linear.%.*s", (int)(dot - nm), nm);
        int seen = !lp_st_meta(f, key);
        for (int k = 0; k < nk && !seen; k++) seen = !strcmp(keys[k], key);
        if (!seen) snprintf(keys[nk++], 256, "%s", key);
    }
    for (int k = 0; k < nk; k++) {
        const char *v = lp_st_meta(f, keys[k]);
        if (v && ed && ed->meta) v = ed->meta(ed->ud, keys[k], v);
        if (v) CHECK_OK(lp_st_writer_meta(w, keys[k], v));
    }
    CHECK_OK(lp_st_writer_save(w, dst));
    for (int64_t i = 0; i < n; i++) free(ts[i].owned);
    free(ts);
    lp_st_writer_free(w);
    lp_st_close(f);
}

/* Rewrite <dir>/<file> in place (reading a copy kept in the case's parent). */
static void rewrite_in(const char *dir, const char *file, const edits *ed) {
    char p[600], tmp[700];
    path_in(p, sizeof p, dir, file);
    snprintf(tmp, sizeof tmp, "%s.orig", p);
    CHECK(rename(p, tmp) == 0);
    rewrite(tmp, p, ed);
    unlink(tmp);
}

/* ---- expectations ---- */

static bool has(const char *s) { return strstr(lp_last_error(), s) != NULL; }

/* lp_model_load(dir) fails with `want`, leaves *out NULL, and its message
 * contains every string of the NULL-terminated list. */
static void expect_load_fail(const char *what, const char *dir, lp_status want, ...) {
    static int sentinel;
    lp_model *m = (lp_model *)&sentinel; /* the loader must reset it to NULL */
    lp_status st = lp_model_load(dir, &m);
    CHECKF(st == want, "%s: status %s, expected %s (message: %s)", what, lp_status_name(st),
           lp_status_name(want), lp_last_error());
    CHECKF(m == NULL, "%s: *out not NULL after a failed load", what);
    if (st == LP_OK) lp_model_free(m);
    va_list ap;
    va_start(ap, want);
    for (const char *s; (s = va_arg(ap, const char *));)
        CHECKF(has(s), "%s: message lacks \"%s\": %s", what, s, lp_last_error());
    va_end(ap);
}

/* ---- cases: original checkpoints ---- */

static void test_config_contradicts_weights(void) {
    char d[512], f[600];
    copy_model("tiny-mistral", "hidden", d, sizeof d);
    edit_text(d, "config.json", "\"hidden_size\": 64", "\"hidden_size\": 128");
    path_in(f, sizeof f, d, "model.safetensors");
    expect_load_fail("hidden_size 128", d, LP_ERR_FORMAT, f, "model.embed_tokens.weight", "[256, 64]",
                     "[256, 128]", NULL);

    copy_model("tiny-mistral", "ffn", d, sizeof d);
    edit_text(d, "config.json", "\"intermediate_size\": 160", "\"intermediate_size\": 192");
    path_in(f, sizeof f, d, "model.safetensors");
    expect_load_fail("intermediate_size 192", d, LP_ERR_FORMAT, f, "model.layers.0.mlp.gate_proj.weight",
                     "[160, 64]", "[192, 64]", NULL);

    copy_model("tiny-mistral", "layers", d, sizeof d);
    edit_text(d, "config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    expect_load_fail("3 layers", d, LP_ERR_FORMAT, d, "model.layers.2.", "missing", NULL);

    /* 2 layers in the file, 1 in the config: layer 1 would be left out silently */
    copy_model("tiny-mistral", "fewer-layers", d, sizeof d);
    edit_text(d, "config.json", "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
    path_in(f, sizeof f, d, "model.safetensors");
    expect_load_fail("1 of 2 layers", d, LP_ERR_FORMAT, f, "model.layers.1.", "layer 1", "num_hidden_layers = 1",
                     NULL);

    /* kv heads 2 -> 4: k_proj is [32, 64] in the file, [64, 64] by the config. */
    copy_model("tiny-mistral", "kvheads", d, sizeof d);
    edit_text(d, "config.json", "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 4");
    expect_load_fail("kv heads 4", d, LP_ERR_FORMAT, "model.layers.0.self_attn.k_proj.weight", "[32, 64]",
                     "[64, 64]", NULL);

    /* Sharded and tied: the message names the shard that holds the tensor. */
    copy_model("tiny-qwen2", "vocab", d, sizeof d);
    edit_text(d, "config.json", "\"vocab_size\": 300", "\"vocab_size\": 320");
    path_in(f, sizeof f, d, "model-00001-of-00005.safetensors");
    expect_load_fail("qwen2 vocab 320", d, LP_ERR_FORMAT, f, "model.embed_tokens.weight", "[300, 64]", NULL);
}

static const char *g_drop; /* tensor name dropped by drop_one */
static void drop_one(void *ud, tspec *t) { t->drop = !strcmp(t->name, g_drop); }

static void test_tensor_removed(void) {
    static const char *const names[] = {
        "model.layers.1.self_attn.v_proj.weight",
        "model.layers.0.post_attention_layernorm.weight",
        "model.norm.weight",
        "lm_head.weight",
        "model.embed_tokens.weight",
    };
    char d[512];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        copy_model("tiny-mistral", "drop", d, sizeof d);
        g_drop = names[i];
        rewrite_in(d, "model.safetensors", &(edits){drop_one, NULL, NULL});
        expect_load_fail(names[i], d, LP_ERR_FORMAT, d, names[i], "missing", NULL);
    }
    /* tiny-llama3 has attention_bias: the o_proj bias is required. */
    copy_model("tiny-llama3", "drop-bias", d, sizeof d);
    g_drop = "model.layers.1.self_attn.o_proj.bias";
    rewrite_in(d, "model.safetensors", &(edits){drop_one, NULL, NULL});
    expect_load_fail("o_proj bias", d, LP_ERR_FORMAT, d, g_drop, "missing", NULL);
}

static void test_shards(void) {
    char d[512], f[600], idx[600];
    copy_model("tiny-qwen2", "shard-gone", d, sizeof d);
    path_in(f, sizeof f, d, "model-00003-of-00005.safetensors");
    path_in(idx, sizeof idx, d, "model.safetensors.index.json");
    CHECK(unlink(f) == 0);
    expect_load_fail("shard deleted", d, LP_ERR_IO, idx, "model-00003-of-00005.safetensors", "missing", NULL);

    /* The index maps down_proj of layer 0 to shard 4, which lacks it. */
    copy_model("tiny-qwen2", "index-wrong-shard", d, sizeof d);
    edit_text(d, "model.safetensors.index.json",
              "\"model.layers.0.mlp.down_proj.weight\": \"model-00002-of-00005.safetensors\"",
              "\"model.layers.0.mlp.down_proj.weight\": \"model-00004-of-00005.safetensors\"");
    path_in(idx, sizeof idx, d, "model.safetensors.index.json");
    expect_load_fail("index wrong shard", d, LP_ERR_FORMAT, idx, "model.layers.0.mlp.down_proj.weight",
                     "model-00004-of-00005.safetensors", "does not contain", NULL);

    /* The index names a tensor that no shard has. */
    copy_model("tiny-qwen2", "index-ghost", d, sizeof d);
    edit_text(d, "model.safetensors.index.json", "\"weight_map\": {",
              "\"weight_map\": {\"model.layers.7.ghost.weight\": \"model-00001-of-00005.safetensors\", ");
    expect_load_fail("index ghost tensor", d, LP_ERR_FORMAT, "model.layers.7.ghost.weight", "does not contain",
                     NULL);

    /* The index names a shard file that does not exist. */
    copy_model("tiny-qwen2", "index-no-file", d, sizeof d);
    edit_text(d, "model.safetensors.index.json",
              "\"model.embed_tokens.weight\": \"model-00001-of-00005.safetensors\"",
              "\"model.embed_tokens.weight\": \"model-00009-of-00009.safetensors\"");
    expect_load_fail("index missing shard file", d, LP_ERR_IO, "model-00009-of-00009.safetensors", NULL);

    /* The index leaves out a tensor the model needs. */
    copy_model("tiny-qwen2", "index-incomplete", d, sizeof d);
    edit_text(d, "model.safetensors.index.json",
              "\"model.layers.1.mlp.up_proj.weight\": \"model-00003-of-00005.safetensors\",", "");
    expect_load_fail("index incomplete", d, LP_ERR_FORMAT, d, "model.layers.1.mlp.up_proj.weight", "missing",
                     NULL);

    /* A malformed index and one without weight_map. */
    copy_model("tiny-qwen2", "index-bad-json", d, sizeof d);
    edit_text(d, "model.safetensors.index.json", "\"weight_map\": {", "\"weight_map\": {,");
    path_in(idx, sizeof idx, d, "model.safetensors.index.json");
    expect_load_fail("index bad json", d, LP_ERR_FORMAT, idx, NULL);
    copy_model("tiny-qwen2", "index-no-map", d, sizeof d);
    edit_text(d, "model.safetensors.index.json", "\"weight_map\"", "\"weights\"");
    path_in(idx, sizeof idx, d, "model.safetensors.index.json");
    expect_load_fail("index without weight_map", d, LP_ERR_FORMAT, idx, "weight_map", NULL);

    /* A shard that is itself truncated names the index and the shard. */
    copy_model("tiny-qwen2", "shard-truncated", d, sizeof d);
    path_in(f, sizeof f, d, "model-00002-of-00005.safetensors");
    CHECK(truncate(f, 20000) == 0);
    expect_load_fail("shard truncated", d, LP_ERR_FORMAT, f, "model-00002-of-00005.safetensors", NULL);
}

static void test_truncated(void) {
    char d[512], f[600];
    size_t size;
    copy_model("tiny-mistral", "truncate", d, sizeof d);
    path_in(f, sizeof f, d, "model.safetensors");
    char *orig = read_all(f, &size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | (unsigned char)orig[i];
    CHECK(hlen > 100 && 8 + hlen < size);
    /* In the length field, at its end, inside the JSON header, right after it,
     * and at several points inside the data, down to the last byte. */
    const size_t cuts[] = {0, 3, 7, 8, 9, 8 + 40, 8 + hlen / 2, 8 + hlen - 1, 8 + hlen,
                           8 + hlen + 1, 8 + hlen + 1000, size / 2, size - 4, size - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof *cuts; k++) {
        CHECK(write_all(f, orig, cuts[k]));
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu of %zu bytes", cuts[k], size);
        expect_load_fail(what, d, LP_ERR_FORMAT, f, cuts[k] >= 8 ? "truncated" : "", NULL);
    }

    /* Header length field pointing past the end of the file. */
    const uint64_t lens[] = {size - 8 + 1, (uint64_t)size * 4, UINT64_MAX, (uint64_t)1 << 63};
    for (size_t k = 0; k < sizeof lens / sizeof *lens; k++) {
        for (int i = 0; i < 8; i++) orig[i] = (char)(lens[k] >> (8 * i));
        CHECK(write_all(f, orig, size));
        char what[64];
        snprintf(what, sizeof what, "header length %llu", (unsigned long long)lens[k]);
        expect_load_fail(what, d, LP_ERR_FORMAT, f, "header length", NULL);
    }
    /* ... and shorter than the JSON: the parser meets the end mid-object. */
    for (int i = 0; i < 8; i++) orig[i] = (char)((hlen / 2) >> (8 * i));
    CHECK(write_all(f, orig, size));
    expect_load_fail("header length too short", d, LP_ERR_FORMAT, f, NULL);
    free(orig);
}

static void test_paths(void) {
    char d[512], f[600];
    /* A file, not a directory; and a path that does not exist. */
    snprintf(f, sizeof f, "%s", test_data("models/tiny-mistral/config.json"));
    expect_load_fail("file as model", f, LP_ERR_IO, f, "not a directory", NULL);
    snprintf(f, sizeof f, "%s/no-such-model", g_root);
    expect_load_fail("nonexistent", f, LP_ERR_IO, f, "no such directory", NULL);
    /* An empty directory: no config.json. */
    new_case_dir("empty", d, sizeof d);
    path_in(f, sizeof f, d, "config.json");
    expect_load_fail("empty dir", d, LP_ERR_IO, f, NULL);
    /* Weights without config.json, config.json without weights. */
    copy_model("tiny-mistral", "no-config", d, sizeof d);
    path_in(f, sizeof f, d, "config.json");
    CHECK(unlink(f) == 0);
    expect_load_fail("no config.json", d, LP_ERR_IO, f, NULL);
    copy_model("tiny-mistral", "no-weights", d, sizeof d);
    path_in(f, sizeof f, d, "model.safetensors");
    CHECK(unlink(f) == 0);
    expect_load_fail("no weights", d, LP_ERR_IO, d, "model.safetensors", NULL);
    /* A config that is a directory. */
    copy_model("tiny-mistral", "config-dir", d, sizeof d);
    path_in(f, sizeof f, d, "config.json");
    CHECK(unlink(f) == 0 && mkdir(f, 0755) == 0);
    lp_model *m = NULL;
    CHECKF(lp_model_load(d, &m) != LP_OK && has(f), "config.json directory: %s", lp_last_error());
    lp_model_free(m);
}

/* retype_one gives one tensor another dtype over the same data (its first
 * bytes when the new dtype is smaller); rank3_one splits its rows in two. */
static const char *g_retype;
static lp_dtype g_retype_to;
static void retype_one(void *ud, tspec *t) {
    if (!strcmp(t->name, g_retype)) t->dt = g_retype_to;
}
static void rank3_one(void *ud, tspec *t) {
    if (strcmp(t->name, g_retype) || t->ndim != 2) return;
    t->ndim = 3;
    t->shape[2] = t->shape[1];
    t->shape[1] = t->shape[0] / 2;
    t->shape[0] = 2;
}

static void test_wrong_dtype(void) {
    char d[512], f[600];
    copy_model("tiny-llama3", "i32", d, sizeof d);
    g_retype = "model.layers.0.self_attn.q_proj.weight";
    g_retype_to = LP_DT_I32;
    rewrite_in(d, "model.safetensors", &(edits){retype_one, NULL, NULL});
    path_in(f, sizeof f, d, "model.safetensors");
    lp_model *m = NULL;
    lp_status st = lp_model_load(d, &m);
    CHECKF(st != LP_OK && m == NULL, "I32 q_proj loaded");
    CHECKF(has(f) && has(g_retype) && has("I32") && has("F32"), "I32 q_proj: %s", lp_last_error());

    copy_model("tiny-llama3", "u8", d, sizeof d);
    g_retype = "model.norm.weight";
    g_retype_to = LP_DT_U8; /* 96 bytes of the f32 data as 96 U8 values */
    rewrite_in(d, "model.safetensors", &(edits){retype_one, NULL, NULL});
    path_in(f, sizeof f, d, "model.safetensors");
    st = lp_model_load(d, &m);
    CHECKF(st != LP_OK && m == NULL, "U8 norm loaded");
    CHECKF(has(f) && has(g_retype) && has("U8"), "U8 norm: %s", lp_last_error());

    /* A tensor with an extra dimension: same elements, wrong rank. */
    copy_model("tiny-llama3", "rank3", d, sizeof d);
    g_retype = "model.layers.1.mlp.up_proj.weight";
    rewrite_in(d, "model.safetensors", &(edits){rank3_one, NULL, NULL});
    path_in(f, sizeof f, d, "model.safetensors");
    expect_load_fail("rank 3 up_proj", d, LP_ERR_FORMAT, f, g_retype, "[2, 96, 96]", "[192, 96]", NULL);
}

/* Overwrite one element of a weight with a non-finite value. */
static const char *g_poison;
static int64_t g_poison_at;
static uint32_t g_poison_bits; /* f32 bits, or f16 bits in the low half */
static void poison_one(void *ud, tspec *t) {
    if (strcmp(t->name, g_poison)) return;
    size_t es = t->dt == LP_DT_F32 ? 4 : 2, n = es;
    for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
    t->owned = copy_of(t, n);
    if (es == 4) memcpy((char *)t->owned + 4 * g_poison_at, &g_poison_bits, 4);
    else {
        uint16_t h = (uint16_t)g_poison_bits;
        memcpy((char *)t->owned + 2 * g_poison_at, &h, 2);
    }
    t->data = t->owned;
}

/* lp_model_quantize with the settings of spec (e.g. "rtn group=32"). */
static lp_status quantize_with(lp_model *m, const char *spec, const lp_calib *cal) {
    lp_settings *s = NULL;
    lp_status st = lp_settings_parse(spec, &s);
    CHECKF(st == LP_OK, "settings \"%s\": %s", spec, lp_last_error());
    if (st != LP_OK) return st;
    lp_quant_params qp = {.method = s, .calib = cal};
    st = lp_model_quantize(m, &qp);
    lp_settings_free(s);
    return st;
}

/* One poisoned tensor of a copy of `model` (in `file`, a shard or
 * model.safetensors): the load fails with LP_ERR_NUMERIC and names the file,
 * the tensor, the index and the value. */
static void expect_poison_refused(const char *model, const char *file, const char *tensor, int64_t at,
                                  uint32_t bits, const char *index, const char *value) {
    char d[512], f[600], what[300];
    copy_model(model, "nonfinite", d, sizeof d);
    g_poison = tensor;
    g_poison_at = at;
    g_poison_bits = bits;
    rewrite_in(d, file, &(edits){poison_one, NULL, NULL});
    path_in(f, sizeof f, d, file);
    snprintf(what, sizeof what, "%s: %s in %s", model, value, tensor);
    expect_load_fail(what, d, LP_ERR_NUMERIC, f, tensor, index, value, NULL);
}

static void test_nonfinite(void) {
    /* F32 (tiny-llama3: biases, untied head). NaN at [3, 5] of layer 1's
     * down_proj (D x F = 96 x 192); a norm, the embedding, a bias, the head
     * and the final norm (its last element: the kernels' tail). */
    const char *L3 = "tiny-llama3", *MS = "model.safetensors";
    expect_poison_refused(L3, MS, "model.layers.1.mlp.down_proj.weight", 3 * 192 + 5, 0x7fc00000u, "[3, 5]", "NaN");
    expect_poison_refused(L3, MS, "model.layers.0.input_layernorm.weight", 17, 0x7f800000u, "[17]", "+Inf");
    expect_poison_refused(L3, MS, "model.embed_tokens.weight", 200 * 96 + 3, 0xff800000u, "[200, 3]", "-Inf");
    expect_poison_refused(L3, MS, "model.layers.1.self_attn.o_proj.bias", 9, 0xffc00001u, "[9]", "NaN");
    expect_poison_refused(L3, MS, "lm_head.weight", 256 * 96 - 1, 0x7f800001u, "[255, 95]", "NaN");
    expect_poison_refused(L3, MS, "model.norm.weight", 95, 0x7f800000u, "[95]", "+Inf");
    /* F16 (tiny-mistral: the embedding and linears stay 16-bit in the mapping) */
    const char *MI = "tiny-mistral";
    expect_poison_refused(MI, MS, "model.layers.0.self_attn.q_proj.weight", 7, 0x7c00u, "[0, 7]", "+Inf");
    expect_poison_refused(MI, MS, "model.embed_tokens.weight", 10 * 64, 0x7e00u, "[10, 0]", "NaN");
    expect_poison_refused(MI, MS, "model.norm.weight", 63, 0xfc00u, "[63]", "-Inf");
    expect_poison_refused(MI, MS, "lm_head.weight", 0, 0xfe01u, "[0, 0]", "NaN");
    expect_poison_refused(MI, MS, "model.layers.1.post_attention_layernorm.weight", 31, 0x7c01u, "[31]", "NaN");
    /* BF16, sharded and tied (tiny-qwen2): the message names the shard */
    const char *QW = "tiny-qwen2", *S1 = "model-00001-of-00005.safetensors", *S2 = "model-00002-of-00005.safetensors";
    expect_poison_refused(QW, S1, "model.embed_tokens.weight", 300 * 64 - 1, 0x7fc0u, "[299, 63]", "NaN");
    expect_poison_refused(QW, S1, "model.layers.0.self_attn.q_proj.bias", 5, 0x7f80u, "[5]", "+Inf");
    expect_poison_refused(QW, S2, "model.layers.0.post_attention_layernorm.weight", 0, 0xff80u, "[0]", "-Inf");
    expect_poison_refused(QW, S2, "model.layers.0.mlp.down_proj.weight", 64 * 128 - 65, 0xffc1u, "[63, 63]", "NaN");
    /* the largest finite values pass: only an all-ones exponent is refused */
    char d[512];
    copy_model(L3, "max-finite", d, sizeof d);
    g_poison = "model.norm.weight";
    g_poison_at = 0;
    g_poison_bits = 0xff7fffffu; /* -FLT_MAX */
    rewrite_in(d, MS, &(edits){poison_one, NULL, NULL});
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(d, &m));
    lp_model_free(m);
}

/* ---- cases: compressed checkpoints ---- */

static char g_qdir[512]; /* tiny-mistral, RTN W4 g32 asymmetric */
#define QBASE "model.layers.0.self_attn.q_proj"

static const char *g_meta_key, *g_meta_val; /* replaced by meta_one (NULL value = drop) */
static const char *meta_one(void *ud, const char *k, const char *v) {
    return strcmp(k, g_meta_key) ? v : g_meta_val;
}

/* A copy of the compressed checkpoint with one metadata value replaced. */
static void with_meta(const char *label, const char *key, const char *val, char *d, size_t n) {
    char src[600];
    new_case_dir(label, d, n);
    char a[600], b[600];
    path_in(a, sizeof a, g_qdir, "config.json");
    path_in(b, sizeof b, d, "config.json");
    size_t len;
    char *cfg = read_all(a, &len);
    CHECK(cfg && write_all(b, cfg, len));
    free(cfg);
    path_in(src, sizeof src, g_qdir, "model.safetensors");
    path_in(b, sizeof b, d, "model.safetensors");
    g_meta_key = key;
    g_meta_val = val;
    rewrite(src, b, &(edits){NULL, key ? meta_one : NULL, NULL});
}

static void with_tensor_edit(const char *label, void (*fn)(void *, tspec *), char *d, size_t n) {
    with_meta(label, NULL, NULL, d, n);
    rewrite_in(d, "model.safetensors", &(edits){fn, NULL, NULL});
}

static void qweight_short(void *ud, tspec *t) {
    if (!strcmp(t->name, QBASE ".qweight")) t->shape[0] -= 1; /* fewer rows, same dtype */
}
static void qweight_i32(void *ud, tspec *t) {
    if (!strcmp(t->name, QBASE ".qweight")) t->dt = LP_DT_I32;
}
static void qzeros_gone(void *ud, tspec *t) { t->drop = !strcmp(t->name, QBASE ".qzeros"); }
static void zero_too_big(void *ud, tspec *t) {
    if (strcmp(t->name, QBASE ".qzeros")) return;
    t->owned = copy_of(t, (size_t)(t->shape[0] * t->shape[1]));
    ((uint8_t *)t->owned)[5 * t->shape[1] + 1] = 16; /* row 5, group 1; 4 bits: max 15 */
    t->data = t->owned;
}
static void scale_nan(void *ud, tspec *t) {
    if (strcmp(t->name, QBASE ".scales")) return;
    t->owned = copy_of(t, (size_t)(t->shape[0] * t->shape[1]) * 2);
    const uint16_t nan16 = 0x7e00;
    memcpy((char *)t->owned + 2 * (2 * t->shape[1] + 0), &nan16, 2); /* row 2, group 0 */
    t->data = t->owned;
}

static void test_compressed(void) {
    char src[512], d[512], f[600];
    snprintf(src, sizeof src, "%s", test_data("models/tiny-mistral"));
    new_case_dir("w4g32", g_qdir, sizeof g_qdir);
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(src, &m));
    if (!m) return;
    CHECK_OK(quantize_with(m, "rtn bits=4 group=32", NULL));
    CHECK_OK(lp_model_save(m, g_qdir));
    lp_model_free(m);
    /* The intact checkpoint, and an unedited rewrite of it, load. */
    m = NULL;
    CHECK_OK(lp_model_load(g_qdir, &m));
    lp_model_free(m);
    with_meta("q-copy", NULL, NULL, d, sizeof d);
    m = NULL;
    CHECK_OK(lp_model_load(d, &m));
    lp_model_free(m);

    const char *key = "llmpress.linear." QBASE;
    with_meta("q-bits0", key, "{\"format\":\"qgroup\",\"bits\":0,\"group\":32,\"sym\":false}", d, sizeof d);
    expect_load_fail("bits 0", d, LP_ERR_FORMAT, d, QBASE, "bits=0", NULL);
    with_meta("q-bits9", key, "{\"format\":\"qgroup\",\"bits\":9,\"group\":32,\"sym\":false}", d, sizeof d);
    expect_load_fail("bits 9", d, LP_ERR_FORMAT, d, QBASE, "bits=9", NULL);
    with_meta("q-nobits", key, "{\"format\":\"qgroup\",\"group\":32,\"sym\":false}", d, sizeof d);
    expect_load_fail("no bits", d, LP_ERR_FORMAT, d, QBASE, "bits", NULL);
    with_meta("q-group48", key, "{\"format\":\"qgroup\",\"bits\":4,\"group\":48,\"sym\":false}", d, sizeof d);
    expect_load_fail("group 48", d, LP_ERR_FORMAT, d, QBASE, "group=48", NULL);
    with_meta("q-format", key, "{\"format\":\"gguf_q4_K\",\"bits\":4,\"group\":32}", d, sizeof d);
    expect_load_fail("unknown format", d, LP_ERR_UNSUPPORTED, d, QBASE, "gguf_q4_K", NULL);
    /* bits 3 in the metadata, 4-bit packed data in the file. */
    with_meta("q-bits3", key, "{\"format\":\"qgroup\",\"bits\":3,\"group\":32,\"sym\":false}", d, sizeof d);
    path_in(f, sizeof f, d, "model.safetensors");
    expect_load_fail("bits 3 vs 4-bit data", d, LP_ERR_FORMAT, f, QBASE ".qweight", "[64, 8]", "[64, 6]", NULL);
    /* group 64 in the metadata, one scale per 32 columns in the file. */
    with_meta("q-group64", key, "{\"format\":\"qgroup\",\"bits\":4,\"group\":64,\"sym\":false}", d, sizeof d);
    path_in(f, sizeof f, d, "model.safetensors");
    expect_load_fail("group 64 vs 32-column scales", d, LP_ERR_FORMAT, f, QBASE ".scales", NULL);
    with_meta("q-notjson", key, "{\"format\":\"qgroup\",\"bits\":4,", d, sizeof d);
    expect_load_fail("metadata not JSON", d, LP_ERR_FORMAT, d, key, NULL);

    with_tensor_edit("q-short", qweight_short, d, sizeof d);
    path_in(f, sizeof f, d, "model.safetensors");
    expect_load_fail("qweight rows", d, LP_ERR_FORMAT, f, QBASE ".qweight", "[63, 8]", "[64, 8]", NULL);
    with_tensor_edit("q-i32", qweight_i32, d, sizeof d);
    path_in(f, sizeof f, d, "model.safetensors");
    expect_load_fail("qweight I32", d, LP_ERR_FORMAT, f, QBASE ".qweight", "I32", "U32", NULL);
    with_tensor_edit("q-nozeros", qzeros_gone, d, sizeof d);
    expect_load_fail("qzeros missing", d, LP_ERR_FORMAT, d, QBASE ".qzeros", "missing", NULL);
    with_tensor_edit("q-zero16", zero_too_big, d, sizeof d);
    expect_load_fail("zero point 16", d, LP_ERR_FORMAT, d, QBASE, "zero point", "16", "15", NULL);
    with_tensor_edit("q-scale-nan", scale_nan, d, sizeof d);
    expect_load_fail("NaN scale", d, LP_ERR_FORMAT, d, QBASE, "NaN", NULL);

    /* The format version is checked: a newer one is refused, a missing one
     * means the file was not written by llmpress. */
    with_meta("q-version3", "llmpress.format_version", "3", d, sizeof d);
    path_in(f, sizeof f, d, "model.safetensors");
    expect_load_fail("format version 3", d, LP_ERR_UNSUPPORTED, d, "format_version", "\"3\"", NULL);
    with_meta("q-noversion", "llmpress.format_version", NULL, d, sizeof d);
    expect_load_fail("no format version", d, LP_ERR_FORMAT, d, QBASE, "format_version", NULL);
}


/* Lookup-table (SqueezeLLM) and mixed-width (SliM-LLM) checkpoints: every
 * array and metadata field checked on load, naming the linear. */
static void lut_nan(void *ud, tspec *t) {
    if (strcmp(t->name, QBASE ".lut")) return;
    t->owned = copy_of(t, (size_t)(t->shape[0] * t->shape[1]) * 2);
    const uint16_t nan16 = 0x7e00;
    memcpy((char *)t->owned + 2 * 3, &nan16, 2);
    t->data = t->owned;
}
static void col_out_of_range(void *ud, tspec *t) {
    if (strcmp(t->name, QBASE ".col_idx")) return;
    t->owned = copy_of(t, (size_t)t->shape[1] * 4);
    ((int32_t *)t->owned)[0] = 1 << 20;
    t->data = t->owned;
}
static void vals_gone(void *ud, tspec *t) { t->drop = !strcmp(t->name, QBASE ".vals"); }
static void gbits_nine(void *ud, tspec *t) {
    if (strcmp(t->name, QBASE ".gbits")) return;
    t->owned = copy_of(t, (size_t)t->shape[1]);
    ((uint8_t *)t->owned)[0] = 9;
    t->data = t->owned;
}
static void gbits_other(void *ud, tspec *t) { /* every group one bit wider: the parts no longer match */
    if (strcmp(t->name, QBASE ".gbits")) return;
    t->owned = copy_of(t, (size_t)t->shape[1]);
    for (int64_t g = 0; g < t->shape[1]; g++) ((uint8_t *)t->owned)[g]++;
    t->data = t->owned;
}

static void test_compressed_other_formats(void) {
    char src[512], d[512];
    snprintf(src, sizeof src, "%s", test_data("models/tiny-mistral"));
    static const char *const specs[2] = {"squeezellm bits=3 outliers=0.02", "slim bits=3 group=32"};
    char dirs[2][512];
    for (int i = 0; i < 2; i++) {
        lp_model *m = NULL;
        CHECK_OK(lp_model_load(src, &m));
        if (!m) return;
        int32_t stream[1024], *win = NULL;
        for (int k = 0; k < 1024; k++) stream[k] = (int32_t)((k * 7919u) % (unsigned)lp_model_config(m)->vocab);
        CHECK_OK(lp_calib_sample(stream, 1024, 4, 32, 1, &win));
        lp_calib cal = {win, 4, 32};
        CHECK_OK(quantize_with(m, specs[i], &cal));
        new_case_dir(i ? "slim" : "squeezellm", dirs[i], sizeof dirs[i]);
        CHECK_OK(lp_model_save(m, dirs[i]));
        lp_model_free(m);
        free(win);
        m = NULL;
        CHECK_OK(lp_model_load(dirs[i], &m));
        lp_model_free(m);
    }

    const char *key = "llmpress.linear." QBASE;
    snprintf(g_qdir, sizeof g_qdir, "%s", dirs[0]);
    with_meta("lut-bits5", key, "{\"format\":\"qlut\",\"bits\":5,\"nnz\":10}", d, sizeof d);
    expect_load_fail("qlut bits 5", d, LP_ERR_FORMAT, d, QBASE, "bits=5", NULL);
    with_meta("lut-nnz", key, "{\"format\":\"qlut\",\"bits\":3,\"nnz\":3}", d, sizeof d);
    expect_load_fail("qlut nnz vs col_idx", d, LP_ERR_FORMAT, QBASE ".col_idx", NULL);
    with_tensor_edit("lut-nan", lut_nan, d, sizeof d);
    expect_load_fail("qlut NaN table", d, LP_ERR_FORMAT, d, QBASE, "not finite", NULL);
    with_tensor_edit("lut-col", col_out_of_range, d, sizeof d);
    expect_load_fail("qlut column out of range", d, LP_ERR_FORMAT, d, QBASE, "column", NULL);
    with_tensor_edit("lut-novals", vals_gone, d, sizeof d);
    expect_load_fail("qlut vals missing", d, LP_ERR_FORMAT, QBASE ".vals", "missing", NULL);

    snprintf(g_qdir, sizeof g_qdir, "%s", dirs[1]);
    with_meta("mix-group48", key, "{\"format\":\"qmix\",\"group\":48,\"sym\":false}", d, sizeof d);
    expect_load_fail("qmix group 48", d, LP_ERR_FORMAT, d, QBASE, "group 48", NULL);
    with_tensor_edit("mix-gbits9", gbits_nine, d, sizeof d);
    expect_load_fail("qmix width 9", d, LP_ERR_FORMAT, d, QBASE, "9 bits", NULL);
    with_tensor_edit("mix-gbits", gbits_other, d, sizeof d);
    expect_load_fail("qmix widths without parts", d, LP_ERR_FORMAT, QBASE, "missing", NULL);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    return remove(p);
}

int main(void) {
    snprintf(g_root, sizeof g_root, "/tmp/lp_test_model_errors_XXXXXX");
    if (!mkdtemp(g_root)) {
        perror("mkdtemp");
        return 1;
    }
    test_config_contradicts_weights();
    test_tensor_removed();
    test_shards();
    test_truncated();
    test_paths();
    test_wrong_dtype();
    test_nonfinite();
    test_compressed();
    test_compressed_other_formats();
    if (!lp_test_failures) nftw(g_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else fprintf(stderr, "cases kept in %s\n", g_root);
    TEST_DONE();
}
