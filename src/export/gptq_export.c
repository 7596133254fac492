/*
 * gptq_export.c - lp_export_gptq: a quantized model as a GPTQ checkpoint
 * directory (llmpress/export.h), the layout AutoGPTQ and GPTQModel write and
 * transformers (optimum / gptqmodel) and vLLM load.
 *
 * What: DIR/config.json         the source's config, "torch_dtype" set to the
 *                               16-bit dtype written, plus
 *         "quantization_config": {"quant_method": "gptq", "bits": b,
 *           "group_size": g (-1: per-channel), "desc_act": false, "sym": s,
 *           "checkpoint_format": "gptq" | "gptq_v2"}
 *       DIR/quantize_config.json  the same object (AutoGPTQ reads this file)
 *       DIR/model.safetensors     per decoder linear <base>.qweight I32,
 *                               .qzeros I32, .scales F16, .g_idx I32
 *                               (format/gptqpack.h) and .bias; embedding,
 *                               norms and an untied head in 16 bits
 *       the tokenizer files, generation_config.json and the record of how
 *       the model was made, copied.
 * Why: so the models llmpress makes run where people run models, and so the
 *   same bytes can be compared across runtimes (the directory loads back
 *   into llmpress through model/gptq_import.c).
 * Design: every decoder linear must be one qgroup part of 2, 3, 4 or 8 bits
 *   whose shape fills whole int32 words, with one bit width and one group
 *   size for the whole model (quantization_config is global). The export is
 *   lossless: codes, f16 scales and zero points are repacked, never
 *   requantized, so every runtime's dequantization equals llmpress's bit for
 *   bit. A zero point of 0 (an asymmetric group whose minimum is near 0)
 *   cannot be stored as GPTQ v1's zero - 1 without readers disagreeing
 *   (gptqpack.h); such a model is written as "gptq_v2" (zeros as they are,
 *   read by GPTQModel, transformers through it, and vLLM's gptq_v2 path),
 *   every other as "gptq". sym is true when every linear is symmetric (its
 *   zeros are then all 2^(b-1), as sym kernels assume). The 16-bit dtype is
 *   the stored embedding's when 16-bit, else config.json's when 16-bit,
 *   else F16; a value that does not fit it is an error naming the tensor.
 *   The directory is written whole or not at all (core/fileio.h lp_outdir_*),
 *   with the same checks and lock as lp_model_save.
 */
#include "llmpress/export.h"

#include "core/fileio.h"
#include "core/half.h"
#include "core/status_impl.h"
#include "format/dense.h"
#include "format/gptqpack.h"
#include "format/qgroup.h"
#include "io/json.h"
#include "model/model_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    int bits;
    int64_t group;   /* -1: per-channel */
    bool sym;
    int zero_offset; /* 1: "gptq" (v1), 0: "gptq_v2" */
    lp_dtype d16;    /* BF16 or F16: embedding, norms, biases, head */
} gptq_plan;

/* ---- the plan: one bit width, one group size, the zero format ---- */

static lp_status plan_export(const lp_model *m, gptq_plan *p) {
    const lp_config *c = &m->cfg;
    char base[200], desc[160];
    memset(p, 0, sizeof *p);
    p->group = -1;
    p->sym = true;
    p->zero_offset = 1;
    /* pass 1: every linear a qgroup of GPTQ bits and word-filling shape; the smallest true group */
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_linear *lin = &m->layers[l].lin[k];
            const lp_qgroup *q = lp_linear_data(lin, &lp_format_qgroup);
            lp_linear_name(l, k, base, sizeof base);
            if (!q || (q->bits != 2 && q->bits != 3 && q->bits != 4 && q->bits != 8)) {
                lp_linear_describe(lin, desc, sizeof desc);
                return lp_fail(LP_ERR_ARG, "GPTQ export: linear \"%s\" is \"%s\"; a GPTQ checkpoint holds only "
                               "grouped integers (one qgroup part) of 2, 3, 4 or 8 bits; hint: quantize with "
                               "--method rtn|gptq|awq --bits 2|3|4|8", base, desc);
            }
            const char *why = lp_gptqpack_axis_problem(q->cols, q->bits);
            if (!why) why = lp_gptqpack_axis_problem(q->rows, q->bits);
            if (why)
                return lp_fail(LP_ERR_ARG, "GPTQ export: linear \"%s\" (%lld x %lld, %d bits): the shape %s", base,
                               (long long)q->rows, (long long)q->cols, q->bits, why);
            if (!p->bits) p->bits = q->bits;
            if (q->bits != p->bits)
                return lp_fail(LP_ERR_ARG, "GPTQ export: linear \"%s\" has %d bits, the first linear %d; a GPTQ "
                               "checkpoint has one bit width (quantization_config.bits)", base, q->bits, p->bits);
            if (q->group < q->cols && (p->group < 0 || q->group < p->group)) p->group = q->group;
            if (!q->sym) {
                p->sym = false;
                for (int64_t i = 0; i < q->rows * q->ngroups && p->zero_offset; i++)
                    if (q->zeros[i] == 0) p->zero_offset = 0;
            }
        }
    /* pass 2: the same groups everywhere (g_idx = k / group_size) */
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_qgroup *q = lp_linear_data(&m->layers[l].lin[k], &lp_format_qgroup);
            const int64_t want = p->group < 0 || p->group > q->cols ? q->cols : p->group;
            const int64_t have = q->group < q->cols ? q->group : q->cols;
            if (want != have) {
                lp_linear_name(l, k, base, sizeof base);
                return lp_fail(LP_ERR_ARG, "GPTQ export: linear \"%s\" has groups of %lld columns, another linear "
                               "%lld; a GPTQ checkpoint has one group size (quantization_config.group_size)",
                               base, (long long)have, (long long)want);
            }
        }
    if (!strcmp(c->dtype, "bfloat16")) p->d16 = LP_DT_BF16;
    else p->d16 = LP_DT_F16;
    if (m->embed_raw && (m->embed_dtype == LP_DT_BF16 || m->embed_dtype == LP_DT_F16)) p->d16 = m->embed_dtype;
    return LP_OK;
}

/* ---- tensors ---- */

/* Buffers the writer points into, freed after the save. */
typedef struct {
    void **p;
    int64_t n, cap;
    uint64_t bytes; /* tensor bytes added: the output's size */
} keep_list;

static lp_status keep(keep_list *k, void *p) {
    if (!p) return lp_fail(LP_ERR_NOMEM, "GPTQ export: out of memory");
    if (k->n == k->cap) {
        int64_t cap = k->cap ? 2 * k->cap : 64;
        void **q = realloc(k->p, (size_t)cap * sizeof *q);
        if (!q) {
            free(p);
            return lp_fail(LP_ERR_NOMEM, "GPTQ export: out of memory");
        }
        k->p = q;
        k->cap = cap;
    }
    k->p[k->n++] = p;
    return LP_OK;
}

static lp_status add(lp_st_writer *w, keep_list *k, const char *name, lp_dtype dt, int ndim, const int64_t *shape,
                     const void *data) {
    uint64_t n = lp_dtype_size(dt);
    for (int i = 0; i < ndim; i++) n *= (uint64_t)shape[i];
    k->bytes += n;
    return lp_st_writer_add(w, name, dt, ndim, shape, data);
}

/* n f32 values as a 16-bit tensor `name` (kept in k); a value that becomes
 * infinite in dt is an error naming the tensor. */
static lp_status add16(lp_st_writer *w, keep_list *k, const char *name, lp_dtype dt, int ndim, const int64_t *shape,
                       const float *src) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    uint16_t *h = malloc((size_t)(n ? n : 1) * 2);
    LP_TRY(keep(k, h));
    for (int64_t i = 0; i < n; i++) {
        h[i] = dt == LP_DT_BF16 ? lp_f32_to_bf16(src[i]) : lp_f32_to_f16(src[i]);
        if ((h[i] & 0x7c00u) == 0x7c00u && dt == LP_DT_F16)
            return lp_fail(LP_ERR_NUMERIC, "GPTQ export: tensor \"%s\": value %g (element %lld) does not fit F16 "
                           "(|x| <= 65504); hint: export a bfloat16 model", name, (double)src[i], (long long)i);
        if ((h[i] & 0x7f80u) == 0x7f80u && dt == LP_DT_BF16)
            return lp_fail(LP_ERR_NUMERIC, "GPTQ export: tensor \"%s\": value %g (element %lld) does not fit BF16",
                           name, (double)src[i], (long long)i);
    }
    return add(w, k, name, dt, ndim, shape, h);
}

/* A V x D matrix kept as 16-bit `raw` of dtype rdt, or f32 `f`: used as is
 * when already in dt, else converted. */
static lp_status add_matrix16(lp_st_writer *w, keep_list *k, const char *name, lp_dtype dt, int64_t rows, int64_t cols,
                              const float *f, const void *raw, lp_dtype rdt) {
    const int64_t shp[2] = {rows, cols};
    if (raw && rdt == dt) return add(w, k, name, dt, 2, shp, raw);
    if (f) return add16(w, k, name, dt, 2, shp, f);
    float *tmp = malloc((size_t)(rows * cols) * sizeof(float));
    LP_TRY(keep(k, tmp));
    const uint16_t *r = raw;
    for (int64_t i = 0; i < rows * cols; i++) tmp[i] = rdt == LP_DT_BF16 ? lp_bf16_to_f32(r[i]) : lp_f16_to_f32(r[i]);
    return add16(w, k, name, dt, 2, shp, tmp);
}

/* The untied head: a stored 16-bit dense weight of dtype dt as is, else its
 * parts dequantized (tiles of 64 rows, summed) and converted. */
static lp_status add_head(lp_st_writer *w, keep_list *k, const lp_linear *h, lp_dtype dt) {
    const lp_dense *d = lp_linear_data(h, &lp_format_dense);
    if (d && d->raw && d->dtype == dt)
        return add_matrix16(w, k, "lm_head.weight", dt, h->rows, h->cols, NULL, d->raw, dt);
    float *all = malloc((size_t)(h->rows * h->cols) * sizeof(float));
    LP_TRY(keep(k, all));
    float *tmp = malloc((size_t)(64 * h->cols) * sizeof(float));
    if (!tmp) return lp_fail(LP_ERR_NOMEM, "GPTQ export: out of memory");
    lp_status st = LP_OK;
    for (int64_t r0 = 0; st == LP_OK && r0 < h->rows; r0 += 64) {
        const int64_t r1 = r0 + 64 < h->rows ? r0 + 64 : h->rows, n = (r1 - r0) * h->cols;
        float *o = all + r0 * h->cols;
        for (int p = 0; st == LP_OK && p < h->nparts; p++) {
            st = h->part[p].fmt->dequant(h->part[p].data, r0, r1, p ? tmp : o);
            for (int64_t i = 0; p && st == LP_OK && i < n; i++) o[i] += tmp[i];
        }
    }
    free(tmp);
    if (st != LP_OK) return lp_fail_ctx(st, "GPTQ export: lm_head");
    return add_matrix16(w, k, "lm_head.weight", dt, h->rows, h->cols, all, NULL, dt);
}

static lp_status build_writer(const lp_model *m, const gptq_plan *p, lp_st_writer *w, keep_list *k) {
    const lp_config *c = &m->cfg;
    char name[256], base[200];
    LP_TRY(lp_st_writer_meta(w, "format", "pt"));
    LP_TRY(add_matrix16(w, k, "model.embed_tokens.weight", p->d16, c->vocab, c->dim, m->embed, m->embed_raw,
                        m->embed_dtype));
    LP_TRY(add16(w, k, "model.norm.weight", p->d16, 1, &c->dim, m->norm));
    for (int64_t l = 0; l < c->n_layers; l++) {
        const lp_layer *L = &m->layers[l];
        for (int which = 0; which < 2; which++) {
            lp_norm_name(l, which, name, sizeof name);
            LP_TRY(add16(w, k, name, p->d16, 1, &c->dim, which ? L->ffn_norm : L->attn_norm));
        }
        for (int j = 0; j < LP_NLIN; j++) {
            const lp_linear *lin = &L->lin[j];
            lp_linear_name(l, j, base, sizeof base);
            lp_gptqpack g;
            lp_status st = lp_gptqpack_from_qgroup(lp_linear_data(lin, &lp_format_qgroup), p->zero_offset, &g);
            if (st != LP_OK) return lp_fail_ctx(st, "GPTQ export: linear \"%s\"", base);
            LP_TRY(keep(k, g.owned));
            const int64_t N = g.rows, K = g.cols, G = g.ngroups;
            const int64_t s_qw[2] = {K * g.bits / 32, N}, s_qz[2] = {G, N * g.bits / 32}, s_sc[2] = {G, N};
            snprintf(name, sizeof name, "%s.qweight", base);
            LP_TRY(add(w, k, name, LP_DT_I32, 2, s_qw, g.qweight));
            snprintf(name, sizeof name, "%s.qzeros", base);
            LP_TRY(add(w, k, name, LP_DT_I32, 2, s_qz, g.qzeros));
            snprintf(name, sizeof name, "%s.scales", base);
            LP_TRY(add(w, k, name, LP_DT_F16, 2, s_sc, g.scales));
            snprintf(name, sizeof name, "%s.g_idx", base);
            LP_TRY(add(w, k, name, LP_DT_I32, 1, &K, g.g_idx));
            if (lin->bias) {
                snprintf(name, sizeof name, "%s.bias", base);
                LP_TRY(add16(w, k, name, p->d16, 1, &N, lin->bias));
            }
        }
    }
    if (!c->tied) LP_TRY(add_head(w, k, &m->head, p->d16));
    return LP_OK;
}

/* ---- config.json: the source's, re-serialized with our changes ---- */

typedef struct {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = true;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) LP_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void sb_str(sbuf *b, const char *s, size_t n) {
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            sb_put(b, e, 2);
        } else if (ch < 0x20) {
            sb_printf(b, "\\u%04x", ch);
        } else {
            sb_put(b, (const char *)&ch, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* A number as Python's json writes it: integers as integers, an integral
 * float with ".0", any other the shortest %g that reads back the same. */
static void sb_num(sbuf *b, const lp_json *v) {
    if (v->is_int) {
        sb_printf(b, "%lld", (long long)v->i64);
        return;
    }
    char t[48];
    if (v->num == floor(v->num) && fabs(v->num) < 1e16) { /* 500000.0, as Python writes it, not 5e+05 */
        snprintf(t, sizeof t, "%.1f", v->num);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, v->num);
            if (strtod(t, NULL) == v->num) break;
        }
    }
    sb_put(b, t, strlen(t));
}

static void indent(sbuf *b, int depth) {
    sb_put(b, "\n", 1);
    for (int i = 0; i < depth; i++) sb_put(b, "  ", 2);
}

static void sb_json(sbuf *b, const lp_json *v, int depth) {
    switch (v->type) {
    case LP_JSON_NULL: sb_put(b, "null", 4); break;
    case LP_JSON_BOOL: v->boolean ? sb_put(b, "true", 4) : sb_put(b, "false", 5); break;
    case LP_JSON_NUMBER: sb_num(b, v); break;
    case LP_JSON_STRING: sb_str(b, v->str, v->len); break;
    case LP_JSON_ARRAY:
    case LP_JSON_OBJECT: {
        const bool obj = v->type == LP_JSON_OBJECT;
        sb_put(b, obj ? "{" : "[", 1);
        for (int64_t i = 0; i < v->n; i++) {
            if (i) sb_put(b, ",", 1);
            indent(b, depth + 1);
            if (obj) {
                sb_str(b, v->keys[i], v->key_lens[i]);
                sb_put(b, ": ", 2);
            }
            sb_json(b, &v->items[i], depth + 1);
        }
        if (v->n) indent(b, depth);
        sb_put(b, obj ? "}" : "]", 1);
        break;
    }
    }
}

/* The quantization_config object, at nesting depth `depth`. */
static void sb_qconfig(sbuf *b, const gptq_plan *p, int depth) {
    sb_put(b, "{", 1);
    indent(b, depth + 1);
    sb_printf(b, "\"bits\": %d,", p->bits);
    indent(b, depth + 1);
    sb_printf(b, "\"checkpoint_format\": \"%s\",", p->zero_offset ? "gptq" : "gptq_v2");
    indent(b, depth + 1);
    sb_printf(b, "\"desc_act\": false,");
    indent(b, depth + 1);
    sb_printf(b, "\"group_size\": %lld,", (long long)p->group);
    indent(b, depth + 1);
    sb_printf(b, "\"quant_method\": \"gptq\",");
    indent(b, depth + 1);
    sb_printf(b, "\"sym\": %s", p->sym ? "true" : "false");
    indent(b, depth);
    sb_put(b, "}", 1);
}

/* config.json: every member of the source's in order, the dtype keys set to
 * the 16-bit dtype written, any earlier quantization_config replaced. */
static lp_status make_config(const lp_model *m, const gptq_plan *p, sbuf *out) {
    char *path = lp_path_join(m->dir, "config.json");
    if (!path) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_json_doc *doc = NULL;
    lp_status st = lp_file_exists(path) ? lp_json_parse_file(path, &doc)
                                        : lp_fail(LP_ERR_IO, "GPTQ export: %s is missing; the GPTQ config.json is "
                                                  "the source model's plus quantization_config", path);
    free(path);
    LP_TRY(st);
    const lp_json *root = lp_json_root(doc);
    const char *dt = p->d16 == LP_DT_BF16 ? "bfloat16" : "float16";
    bool has_dtype = false;
    sb_put(out, "{", 1);
    for (int64_t i = 0; root->type == LP_JSON_OBJECT && i < root->n; i++) {
        const char *key = root->keys[i];
        if (!strcmp(key, "quantization_config")) continue;
        indent(out, 1);
        sb_str(out, key, root->key_lens[i]);
        sb_put(out, ": ", 2);
        if (!strcmp(key, "torch_dtype") || !strcmp(key, "dtype")) {
            sb_printf(out, "\"%s\"", dt);
            has_dtype = true;
        } else {
            sb_json(out, &root->items[i], 1);
        }
        sb_put(out, ",", 1);
    }
    if (!has_dtype) {
        indent(out, 1);
        sb_printf(out, "\"torch_dtype\": \"%s\",", dt);
    }
    indent(out, 1);
    sb_put(out, "\"quantization_config\": ", 23);
    sb_qconfig(out, p, 1);
    sb_put(out, "\n}\n", 3);
    lp_json_free(doc);
    return out->oom ? lp_fail(LP_ERR_NOMEM, "out of memory") : LP_OK;
}

/* ---- files ---- */

static const char *const k_copied[] = {
    "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "tokenizer.model", "tok512.bin", LP_PROVENANCE_FILE,
};
#define N_COPIED (sizeof k_copied / sizeof *k_copied)

static lp_status write_whole(lp_outdir *o, const char *name, const void *data, size_t n) {
    char *to = NULL;
    LP_TRY(lp_outdir_file(o, name, &to));
    lp_atomic_file af;
    lp_status st = lp_atomic_open(to, &af);
    free(to);
    LP_TRY(st);
    st = lp_atomic_write(&af, data, n);
    if (st == LP_OK) return lp_atomic_commit(&af);
    lp_atomic_abort(&af);
    return st;
}

/* The source's side file i, when it is there (only a regular file: reading
 * a FIFO would block); its size into *bytes when not NULL. */
static lp_status side_file(const lp_model *m, size_t i, char **path, uint64_t *bytes) {
    *path = lp_path_join(m->dir, k_copied[i]);
    if (!*path) return lp_fail(LP_ERR_NOMEM, "out of memory");
    struct stat s;
    if (stat(*path, &s) != 0) {
        free(*path);
        *path = NULL;
        return LP_OK;
    }
    if (!S_ISREG(s.st_mode)) {
        lp_status st = lp_fail(LP_ERR_IO, "%s: not a regular file, cannot be copied into the output", *path);
        free(*path);
        *path = NULL;
        return st;
    }
    if (bytes) *bytes += (uint64_t)s.st_size;
    return LP_OK;
}

static lp_status write_files(const lp_model *m, const gptq_plan *p, lp_st_writer *w, const sbuf *config,
                             lp_outdir *o) {
    LP_TRY(write_whole(o, "config.json", config->s, config->n));
    sbuf q = {0};
    sb_qconfig(&q, p, 0);
    sb_put(&q, "\n", 1);
    lp_status st = q.oom ? lp_fail(LP_ERR_NOMEM, "out of memory") : write_whole(o, "quantize_config.json", q.s, q.n);
    free(q.s);
    LP_TRY(st);
    for (size_t i = 0; i < N_COPIED; i++) {
        char *from, *data = NULL;
        size_t n = 0;
        LP_TRY(side_file(m, i, &from, NULL));
        if (!from) continue;
        st = lp_read_file(from, &data, &n);
        if (st == LP_OK) st = write_whole(o, k_copied[i], data, n);
        free(from);
        free(data);
        LP_TRY(st);
    }
    char *path = NULL;
    LP_TRY(lp_outdir_file(o, "model.safetensors", &path));
    st = lp_st_writer_save(w, path);
    free(path);
    return st;
}

lp_status lp_export_gptq(const lp_model *m, const char *dir) {
    gptq_plan p;
    LP_TRY(plan_export(m, &p));
    LP_TRY(lp_model_save_check(m, dir)); /* not the source, writable, free space; takes DIR's lock */
    lp_st_writer *w = NULL;
    keep_list k = {0};
    sbuf config = {0};
    lp_outdir *o = NULL;
    lp_status st = lp_st_writer_init(&w);
    if (st == LP_OK) st = build_writer(m, &p, w, &k);
    if (st == LP_OK) st = make_config(m, &p, &config);
    uint64_t bytes = k.bytes + config.n + (1u << 20); /* tensors, side files, headers */
    for (size_t i = 0; st == LP_OK && i < N_COPIED; i++) {
        char *path;
        st = side_file(m, i, &path, &bytes);
        free(path);
    }
    if (st == LP_OK) st = lp_outdir_begin(dir, bytes, &o); /* the checks again, then the temporary directory */
    if (st == LP_OK) {
        st = write_files(m, &p, w, &config, o);
        if (st == LP_OK) st = lp_outdir_commit(o);
        else lp_outdir_abort(o);
    } else {
        lp_outdir_release(dir);
    }
    lp_st_writer_free(w);
    for (int64_t i = 0; i < k.n; i++) free(k.p[i]);
    free(k.p);
    free(config.s);
    return st;
}
