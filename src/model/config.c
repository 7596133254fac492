/*
 * config.c - reading a Hugging Face config.json into an lp_config.
 *
 * Why a file of its own: real checkpoints spell the same fact many ways,
 * depending on the transformers version that wrote them:
 *   rope_theta (top level)  vs  rope_parameters.rope_theta (transformers 5)
 *   rope_scaling {type|rope_type: llama3|linear, ...}  vs  rope_parameters
 *   torch_dtype  vs  dtype;  head_dim explicit, null, or derived as D / H
 *   eos_token_id as a number or a list
 * Design: accept every known spelling of a key, and refuse (LP_ERR_UNSUPPORTED,
 * naming the key and value) anything that would change the computation in a
 * way the forward pass does not implement, rather than silently running a
 * different model. A key of the wrong type or out of range is LP_ERR_FORMAT
 * naming the key, the value and what was expected (never a silent default),
 * and the sizes are bounded so that no shape computed from them overflows.
 */
#include "llmpress/model.h"

#include "core/fileio.h"
#include "core/status_impl.h"
#include "io/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- typed reading ----
 * Every key is read through one of these: a key that is absent or JSON null
 * takes its default, a key of the wrong type ("hidden_size": "512",
 * "rms_norm_eps": "x") is an error naming the key, what was found and what
 * was expected, never a silent default. An integer may be written as a
 * whole-valued number (4096.0), as transformers sometimes does. */

/* "the string \"512\"", "2.5", "true", "an array", ... for messages. */
static const char *describe(const lp_json *v, char *buf, size_t n) {
    switch (v->type) {
    case LP_JSON_NULL: return "null";
    case LP_JSON_BOOL: return v->boolean ? "true" : "false";
    case LP_JSON_NUMBER:
        if (v->is_int) snprintf(buf, n, "%lld", (long long)v->i64);
        else snprintf(buf, n, "%.15g", v->num);
        return buf;
    case LP_JSON_ARRAY: return "an array";
    case LP_JSON_OBJECT: return "an object";
    case LP_JSON_STRING: break;
    }
    /* Strings are shown cut to 32 bytes, control bytes as '?'. */
    size_t k = (size_t)snprintf(buf, n, "the string \"");
    for (size_t i = 0; i < v->len && i < 32 && k + 8 < n; i++)
        buf[k++] = (unsigned char)v->str[i] < 0x20 || v->str[i] == 0x7f ? '?' : v->str[i];
    snprintf(buf + k, n - k, "%s\"", v->len > 32 ? "..." : "");
    return buf;
}

static lp_status type_error(const lp_json *v, const char *key, const char *path, const char *want) {
    char buf[96];
    return lp_fail(LP_ERR_FORMAT, "%s: \"%s\" must be %s, got %s", path, key, want, describe(v, buf, sizeof buf));
}

/* The value of an optional key: NULL when absent or null. */
static const lp_json *opt(const lp_json *obj, const char *key) {
    const lp_json *v = lp_json_get(obj, key);
    return v && v->type != LP_JSON_NULL ? v : NULL;
}

/* v (not NULL) as an integer in [lo, hi]. */
static lp_status as_int(const lp_json *v, const char *key, const char *path, int64_t lo, int64_t hi,
                        int64_t *out) {
    if (v->type != LP_JSON_NUMBER || (!v->is_int && v->num != floor(v->num)))
        return type_error(v, key, path, "an integer");
    /* Whole-valued but not an int64 (1e30): out of range either way. */
    bool big = !v->is_int && !(v->num >= -9223372036854775808.0 && v->num < 9223372036854775808.0);
    int64_t x = v->is_int ? v->i64 : big ? 0 : (int64_t)v->num;
    if (big || x < lo || x > hi) {
        char buf[96];
        return lp_fail(LP_ERR_FORMAT, "%s: \"%s\" = %s is out of range (expected an integer in [%lld, %lld])",
                       path, key, describe(v, buf, sizeof buf), (long long)lo, (long long)hi);
    }
    *out = x;
    return LP_OK;
}

/* Required integer key in [1, hi]. */
static lp_status need_int(const lp_json *root, const char *key, const char *path, int64_t hi, int64_t *out) {
    const lp_json *v = opt(root, key);
    if (!v) return lp_fail(LP_ERR_FORMAT, "%s: \"%s\" is missing (expected a positive integer)", path, key);
    return as_int(v, key, path, 1, hi, out);
}

static lp_status opt_int(const lp_json *obj, const char *key, const char *path, int64_t lo, int64_t hi,
                         int64_t def, int64_t *out) {
    const lp_json *v = opt(obj, key);
    if (!v) return *out = def, LP_OK;
    return as_int(v, key, path, lo, hi, out);
}

static lp_status opt_num(const lp_json *obj, const char *key, const char *path, double def, double *out) {
    const lp_json *v = opt(obj, key);
    if (!v) return *out = def, LP_OK;
    if (v->type != LP_JSON_NUMBER) return type_error(v, key, path, "a number");
    *out = v->num;
    return LP_OK;
}

static lp_status opt_bool(const lp_json *obj, const char *key, const char *path, bool def, bool *out) {
    const lp_json *v = opt(obj, key);
    if (!v) return *out = def, LP_OK;
    if (v->type != LP_JSON_BOOL) return type_error(v, key, path, "true or false");
    *out = v->boolean;
    return LP_OK;
}

static lp_status opt_str(const lp_json *obj, const char *key, const char *path, const char *def,
                         const char **out) {
    const lp_json *v = opt(obj, key);
    if (!v) return *out = def, LP_OK;
    if (v->type != LP_JSON_STRING) return type_error(v, key, path, "a string");
    *out = v->str;
    return LP_OK;
}

/* A token id: an integer, or a list whose first element is one (eos lists);
 * -1 when absent, null or an empty list. */
static lp_status opt_token(const lp_json *root, const char *key, const char *path, int32_t *out) {
    const lp_json *v = opt(root, key);
    *out = -1;
    if (v && v->type == LP_JSON_ARRAY) v = v->n > 0 ? &v->items[0] : NULL;
    if (!v) return LP_OK;
    int64_t id;
    LP_TRY(as_int(v, key, path, 0, INT32_MAX, &id));
    *out = (int32_t)id;
    return LP_OK;
}

/* Rope settings: from rope_parameters (transformers 5) or rope_theta +
 * rope_scaling (older files). */
static lp_status read_rope(const lp_json *root, const char *path, lp_config *c) {
    const lp_json *rp = opt(root, "rope_parameters");
    const lp_json *rs = opt(root, "rope_scaling");
    LP_TRY(opt_num(root, "rope_theta", path, 10000.0, &c->rope_theta));
    const lp_json *scal = NULL;
    if (rp && rp->type != LP_JSON_OBJECT) return type_error(rp, "rope_parameters", path, "an object or null");
    if (rs && rs->type != LP_JSON_OBJECT) return type_error(rs, "rope_scaling", path, "an object or null");
    if (rp) {
        LP_TRY(opt_num(rp, "rope_theta", path, c->rope_theta, &c->rope_theta));
        scal = rp;
    } else {
        scal = rs;
    }
    c->rope_type = LP_ROPE_DEFAULT;
    c->rope_factor = 1.0;
    if (scal) {
        const char *t;
        LP_TRY(opt_str(scal, "rope_type", path, NULL, &t));
        if (!t) LP_TRY(opt_str(scal, "type", path, "default", &t));
        if (!strcmp(t, "default")) {
            c->rope_type = LP_ROPE_DEFAULT;
        } else if (!strcmp(t, "linear")) {
            c->rope_type = LP_ROPE_LINEAR;
            LP_TRY(opt_num(scal, "factor", path, 1.0, &c->rope_factor));
        } else if (!strcmp(t, "llama3")) {
            c->rope_type = LP_ROPE_LLAMA3;
            LP_TRY(opt_num(scal, "factor", path, 8.0, &c->rope_factor));
            LP_TRY(opt_num(scal, "low_freq_factor", path, 1.0, &c->rope_low_freq));
            LP_TRY(opt_num(scal, "high_freq_factor", path, 4.0, &c->rope_high_freq));
            LP_TRY(opt_int(scal, "original_max_position_embeddings", path, INT64_MIN, INT64_MAX, 8192,
                           &c->rope_orig_max));
            if (!(c->rope_high_freq > c->rope_low_freq) || c->rope_orig_max <= 0)
                return lp_fail(LP_ERR_FORMAT,
                               "%s: llama3 rope scaling needs high_freq_factor > low_freq_factor "
                               "and original_max_position_embeddings > 0", path);
        } else {
            return lp_fail(LP_ERR_UNSUPPORTED,
                           "%s: rope scaling type \"%s\" is not supported (supported: default, "
                           "linear, llama3)", path, t);
        }
        if (!(c->rope_factor > 0))
            return lp_fail(LP_ERR_FORMAT, "%s: rope scaling factor must be > 0", path);
        double prf;
        LP_TRY(opt_num(scal, "partial_rotary_factor", path, 1.0, &prf));
        if (prf != 1.0)
            return lp_fail(LP_ERR_UNSUPPORTED, "%s: partial_rotary_factor %g is not supported", path, prf);
    }
    if (!(c->rope_theta > 0))
        return lp_fail(LP_ERR_FORMAT, "%s: rope_theta must be > 0", path);
    return LP_OK;
}

/* ---- sizes ----
 * Every shape is computed from these fields in int64 (model.c, forward.c),
 * so they are bounded here once: each field, and each tensor dimension made
 * of them (n_heads * head_dim), is below 2^31 (token ids are int32 too), so
 * the element count of any 2-D tensor is below 2^62; the whole model and a
 * KV cache of max_position_embeddings tokens, which multiply more factors,
 * are checked with overflow-safe arithmetic against the same 2^62. */
#define DIM_MAX ((int64_t)INT32_MAX)
#define ELEMS_MAX ((int64_t)1 << 62)

/* a * b and a + b, saturating at ELEMS_MAX + 1 (never overflowing). */
static int64_t sat_mul(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) || r > ELEMS_MAX ? ELEMS_MAX + 1 : r;
}
static int64_t sat_add(int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) || r > ELEMS_MAX ? ELEMS_MAX + 1 : r;
}

static lp_status check_sizes(const char *path, const lp_config *c) {
    const int64_t D = c->dim, F = c->ffn, hd = c->head_dim;
    const int64_t qd = sat_mul(c->n_heads, hd), kvd = sat_mul(c->n_kv_heads, hd);
    if (qd > DIM_MAX)
        return lp_fail(LP_ERR_FORMAT, "%s: num_attention_heads %lld x head_dim %lld is too large: the "
                       "q projection would have more than %lld rows", path, (long long)c->n_heads,
                       (long long)hd, (long long)DIM_MAX);
    if (kvd > DIM_MAX) /* n_kv_heads <= n_heads, kept for clarity */
        return lp_fail(LP_ERR_FORMAT, "%s: num_key_value_heads %lld x head_dim %lld is too large: the "
                       "k/v projections would have more than %lld rows", path, (long long)c->n_kv_heads,
                       (long long)hd, (long long)DIM_MAX);
    /* Per layer: q and o (qd x D), k and v (kvd x D), gate, up and down (F x D), two norms. */
    int64_t layer = sat_mul(2, sat_mul(qd, D));
    layer = sat_add(layer, sat_mul(2, sat_mul(kvd, D)));
    layer = sat_add(layer, sat_mul(3, sat_mul(F, D)));
    layer = sat_add(layer, 2 * D);
    int64_t total = sat_mul(c->n_layers, layer);
    total = sat_add(total, sat_mul(c->tied ? 1 : 2, sat_mul(c->vocab, D)));
    if (total > ELEMS_MAX)
        return lp_fail(LP_ERR_FORMAT, "%s: the sizes (vocab_size %lld, hidden_size %lld, intermediate_size "
                       "%lld, num_hidden_layers %lld, num_attention_heads %lld, head_dim %lld) imply more "
                       "than 2^62 parameters; expected a model that fits in memory", path,
                       (long long)c->vocab, (long long)D, (long long)F, (long long)c->n_layers,
                       (long long)c->n_heads, (long long)hd);
    if (sat_mul(sat_mul(c->n_layers, kvd), c->max_pos) > ELEMS_MAX)
        return lp_fail(LP_ERR_FORMAT, "%s: max_position_embeddings %lld is too large for this model: a KV "
                       "cache of that many tokens (num_hidden_layers %lld x num_key_value_heads %lld x "
                       "head_dim %lld per token) exceeds 2^62 elements", path, (long long)c->max_pos,
                       (long long)c->n_layers, (long long)c->n_kv_heads, (long long)hd);
    return LP_OK;
}

static lp_status parse_config(const lp_json *root, const char *path, lp_config *c) {
    memset(c, 0, sizeof *c);
    if (!root || root->type != LP_JSON_OBJECT)
        return lp_fail(LP_ERR_FORMAT, "%s: expected a JSON object", path);

    /* Architecture: "architectures": ["LlamaForCausalLM"], else model_type. */
    const lp_json *archs = opt(root, "architectures");
    const char *an = NULL, *mt;
    if (archs && (archs->type != LP_JSON_ARRAY || (archs->n > 0 && archs->items[0].type != LP_JSON_STRING)))
        return type_error(archs, "architectures", path, "a list of class names such as [\"LlamaForCausalLM\"]");
    if (archs && archs->n > 0) an = archs->items[0].str;
    LP_TRY(opt_str(root, "model_type", path, NULL, &mt));
    static const struct { const char *cls, *type; lp_arch arch; } known[] = {
        {"LlamaForCausalLM", "llama", LP_ARCH_LLAMA},
        {"MistralForCausalLM", "mistral", LP_ARCH_MISTRAL},
        {"Qwen2ForCausalLM", "qwen2", LP_ARCH_QWEN2},
    };
    int found = -1;
    for (int i = 0; i < 3; i++) {
        if (an ? !strcmp(an, known[i].cls) : (mt && !strcmp(mt, known[i].type))) found = i;
    }
    if (found < 0)
        return lp_fail(LP_ERR_UNSUPPORTED,
                       "%s: architecture \"%s\" is not supported (supported: LlamaForCausalLM, "
                       "MistralForCausalLM, Qwen2ForCausalLM)", path, an ? an : (mt ? mt : "(none)"));
    c->arch = known[found].arch;
    snprintf(c->arch_name, sizeof c->arch_name, "%s", known[found].cls);

    /* Sizes: each below 2^31 (see check_sizes for the products). */
    LP_TRY(need_int(root, "vocab_size", path, DIM_MAX, &c->vocab));
    LP_TRY(need_int(root, "hidden_size", path, DIM_MAX, &c->dim));
    LP_TRY(need_int(root, "intermediate_size", path, DIM_MAX, &c->ffn));
    LP_TRY(need_int(root, "num_hidden_layers", path, DIM_MAX, &c->n_layers));
    LP_TRY(need_int(root, "num_attention_heads", path, DIM_MAX, &c->n_heads));
    LP_TRY(opt_int(root, "num_key_value_heads", path, 1, DIM_MAX, c->n_heads, &c->n_kv_heads));
    if (c->n_heads % c->n_kv_heads)
        return lp_fail(LP_ERR_FORMAT, "%s: num_attention_heads %lld is not a multiple of "
                       "num_key_value_heads %lld", path, (long long)c->n_heads, (long long)c->n_kv_heads);
    if (opt(root, "head_dim")) {
        LP_TRY(need_int(root, "head_dim", path, DIM_MAX, &c->head_dim));
    } else {
        if (c->dim % c->n_heads)
            return lp_fail(LP_ERR_FORMAT, "%s: hidden_size %lld is not a multiple of "
                           "num_attention_heads %lld and no head_dim is given", path,
                           (long long)c->dim, (long long)c->n_heads);
        c->head_dim = c->dim / c->n_heads;
    }
    if (c->head_dim % 2)
        return lp_fail(LP_ERR_FORMAT, "%s: head_dim %lld must be even for rotary embeddings",
                       path, (long long)c->head_dim);
    LP_TRY(opt_int(root, "max_position_embeddings", path, 1, DIM_MAX, 2048, &c->max_pos));
    /* eps is used as a float: 1e-50 would round to 0 and divide by zero on a zero row. */
    double eps;
    LP_TRY(opt_num(root, "rms_norm_eps", path, 1e-6, &eps));
    c->norm_eps = (float)eps;
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return lp_fail(LP_ERR_FORMAT, "%s: \"rms_norm_eps\" = %g must be a positive float32 "
                       "(typically 1e-5 or 1e-6)", path, eps);

    const char *act;
    LP_TRY(opt_str(root, "hidden_act", path, "silu", &act));
    if (strcmp(act, "silu") && strcmp(act, "swish"))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (only silu)", path, act);
    bool mlp_bias, attn_bias, sliding;
    LP_TRY(opt_bool(root, "mlp_bias", path, false, &mlp_bias));
    if (mlp_bias) return lp_fail(LP_ERR_UNSUPPORTED, "%s: mlp_bias = true is not supported", path);

    LP_TRY(opt_bool(root, "attention_bias", path, false, &attn_bias));
    c->qkv_bias = attn_bias || c->arch == LP_ARCH_QWEN2;
    c->o_bias = attn_bias && c->arch != LP_ARCH_QWEN2;
    LP_TRY(opt_bool(root, "tie_word_embeddings", path, false, &c->tied));

    if (c->arch == LP_ARCH_MISTRAL)
        LP_TRY(opt_int(root, "sliding_window", path, INT64_MIN, INT64_MAX, 0, &c->sliding_window));
    if (c->arch == LP_ARCH_QWEN2) {
        LP_TRY(opt_bool(root, "use_sliding_window", path, false, &sliding));
        if (sliding)
            return lp_fail(LP_ERR_UNSUPPORTED, "%s: Qwen2 use_sliding_window = true is not supported", path);
    }
    if (c->sliding_window < 0) c->sliding_window = 0;

    LP_TRY(read_rope(root, path, c));

    LP_TRY(opt_token(root, "bos_token_id", path, &c->bos));
    LP_TRY(opt_token(root, "eos_token_id", path, &c->eos));
    const char *dt;
    LP_TRY(opt_str(root, "dtype", path, NULL, &dt));
    if (!dt) LP_TRY(opt_str(root, "torch_dtype", path, "float32", &dt));
    snprintf(c->dtype, sizeof c->dtype, "%s", dt);
    return check_sizes(path, c);
}

lp_status lp_config_load(const char *path, lp_config *cfg) {
    char *file = lp_is_dir(path) ? lp_path_join(path, "config.json") : strdup(path);
    if (!file) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_json_doc *doc = NULL;
    lp_status st = lp_json_parse_file(file, &doc);
    if (st == LP_OK) st = parse_config(lp_json_root(doc), file, cfg);
    lp_json_free(doc);
    free(file);
    return st;
}
