/*
 * config.c - reading a Hugging Face config.json into an lp_config.
 *
 * Why a file of its own: real checkpoints spell the same fact many ways,
 * depending on the transformers version that wrote them:
 *   rope_theta (top level)  vs  rope_parameters.rope_theta (transformers 5)
 *   rope_scaling {type|rope_type: llama3|linear, ...}  vs  rope_parameters
 *   torch_dtype  vs  dtype;  head_dim explicit, null, or derived as D / H
 *   eos_token_id as a number or a list
 * Design: read every key leniently where the variants are known, and refuse
 * (LP_ERR_UNSUPPORTED, naming the key and value) anything that would change
 * the computation in a way the forward pass does not implement, rather than
 * silently running a different model.
 */
#include "llmpress/model.h"

#include "core/fileio.h"
#include "core/status_impl.h"
#include "io/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Required positive integer key. */
static lp_status need_int(const lp_json *root, const char *key, const char *path, int64_t *out) {
    const lp_json *v = lp_json_get(root, key);
    if (!v || v->type != LP_JSON_NUMBER || !v->is_int)
        return lp_fail(LP_ERR_FORMAT, "%s: \"%s\" is missing or not an integer", path, key);
    if (v->i64 <= 0 || v->i64 > ((int64_t)1 << 40))
        return lp_fail(LP_ERR_FORMAT, "%s: \"%s\" = %lld is out of range", path, key, (long long)v->i64);
    *out = v->i64;
    return LP_OK;
}

/* Optional integer, possibly null; the first element if it is a list. */
static int64_t opt_token(const lp_json *v) {
    if (v && v->type == LP_JSON_ARRAY && v->n > 0) v = &v->items[0];
    if (v && v->type == LP_JSON_NUMBER && v->is_int) return v->i64;
    return -1;
}

/* Rope settings: from rope_parameters (transformers 5) or rope_theta +
 * rope_scaling (older files). */
static lp_status read_rope(const lp_json *root, const char *path, lp_config *c) {
    const lp_json *rp = lp_json_get(root, "rope_parameters");
    const lp_json *rs = lp_json_get(root, "rope_scaling");
    c->rope_theta = lp_json_num(lp_json_get(root, "rope_theta"), 10000.0);
    const lp_json *scal = NULL;
    if (rp && rp->type == LP_JSON_OBJECT) {
        c->rope_theta = lp_json_num(lp_json_get(rp, "rope_theta"), c->rope_theta);
        scal = rp;
    } else if (rs && rs->type == LP_JSON_OBJECT) {
        scal = rs;
    } else if (rs && rs->type != LP_JSON_NULL) {
        return lp_fail(LP_ERR_FORMAT, "%s: \"rope_scaling\" must be an object or null", path);
    }
    c->rope_type = LP_ROPE_DEFAULT;
    c->rope_factor = 1.0;
    if (scal) {
        const char *t = lp_json_str(lp_json_get(scal, "rope_type"), NULL);
        if (!t) t = lp_json_str(lp_json_get(scal, "type"), "default");
        if (!strcmp(t, "default")) {
            c->rope_type = LP_ROPE_DEFAULT;
        } else if (!strcmp(t, "linear")) {
            c->rope_type = LP_ROPE_LINEAR;
            c->rope_factor = lp_json_num(lp_json_get(scal, "factor"), 1.0);
        } else if (!strcmp(t, "llama3")) {
            c->rope_type = LP_ROPE_LLAMA3;
            c->rope_factor = lp_json_num(lp_json_get(scal, "factor"), 8.0);
            c->rope_low_freq = lp_json_num(lp_json_get(scal, "low_freq_factor"), 1.0);
            c->rope_high_freq = lp_json_num(lp_json_get(scal, "high_freq_factor"), 4.0);
            c->rope_orig_max = lp_json_int(lp_json_get(scal, "original_max_position_embeddings"), 8192);
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
        double prf = lp_json_num(lp_json_get(scal, "partial_rotary_factor"), 1.0);
        if (prf != 1.0)
            return lp_fail(LP_ERR_UNSUPPORTED, "%s: partial_rotary_factor %g is not supported", path, prf);
    }
    if (!(c->rope_theta > 0))
        return lp_fail(LP_ERR_FORMAT, "%s: rope_theta must be > 0", path);
    return LP_OK;
}

static lp_status parse_config(const lp_json *root, const char *path, lp_config *c) {
    memset(c, 0, sizeof *c);
    if (!root || root->type != LP_JSON_OBJECT)
        return lp_fail(LP_ERR_FORMAT, "%s: expected a JSON object", path);

    /* Architecture: "architectures": ["LlamaForCausalLM"], else model_type. */
    const lp_json *archs = lp_json_get(root, "architectures");
    const char *an = NULL;
    if (archs && archs->type == LP_JSON_ARRAY && archs->n > 0) an = lp_json_str(&archs->items[0], NULL);
    const char *mt = lp_json_str(lp_json_get(root, "model_type"), NULL);
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

    LP_TRY(need_int(root, "vocab_size", path, &c->vocab));
    LP_TRY(need_int(root, "hidden_size", path, &c->dim));
    LP_TRY(need_int(root, "intermediate_size", path, &c->ffn));
    LP_TRY(need_int(root, "num_hidden_layers", path, &c->n_layers));
    LP_TRY(need_int(root, "num_attention_heads", path, &c->n_heads));
    c->n_kv_heads = c->n_heads;
    if (lp_json_get(root, "num_key_value_heads") &&
        lp_json_get(root, "num_key_value_heads")->type != LP_JSON_NULL)
        LP_TRY(need_int(root, "num_key_value_heads", path, &c->n_kv_heads));
    if (c->n_heads % c->n_kv_heads)
        return lp_fail(LP_ERR_FORMAT, "%s: num_attention_heads %lld is not a multiple of "
                       "num_key_value_heads %lld", path, (long long)c->n_heads, (long long)c->n_kv_heads);
    const lp_json *hd = lp_json_get(root, "head_dim");
    if (hd && hd->type != LP_JSON_NULL) {
        LP_TRY(need_int(root, "head_dim", path, &c->head_dim));
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
    c->max_pos = lp_json_int(lp_json_get(root, "max_position_embeddings"), 2048);
    c->norm_eps = (float)lp_json_num(lp_json_get(root, "rms_norm_eps"), 1e-6);

    const char *act = lp_json_str(lp_json_get(root, "hidden_act"), "silu");
    if (strcmp(act, "silu") && strcmp(act, "swish"))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: hidden_act \"%s\" is not supported (only silu)", path, act);
    if (lp_json_bool(lp_json_get(root, "mlp_bias"), false))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: mlp_bias = true is not supported", path);

    bool attn_bias = lp_json_bool(lp_json_get(root, "attention_bias"), false);
    c->qkv_bias = attn_bias || c->arch == LP_ARCH_QWEN2;
    c->o_bias = attn_bias && c->arch != LP_ARCH_QWEN2;
    c->tied = lp_json_bool(lp_json_get(root, "tie_word_embeddings"), false);

    if (c->arch == LP_ARCH_MISTRAL)
        c->sliding_window = lp_json_int(lp_json_get(root, "sliding_window"), 0);
    if (c->arch == LP_ARCH_QWEN2 && lp_json_bool(lp_json_get(root, "use_sliding_window"), false))
        return lp_fail(LP_ERR_UNSUPPORTED, "%s: Qwen2 use_sliding_window = true is not supported", path);
    if (c->sliding_window < 0) c->sliding_window = 0;

    LP_TRY(read_rope(root, path, c));

    c->bos = (int32_t)opt_token(lp_json_get(root, "bos_token_id"));
    c->eos = (int32_t)opt_token(lp_json_get(root, "eos_token_id"));
    const char *dt = lp_json_str(lp_json_get(root, "dtype"), NULL);
    if (!dt) dt = lp_json_str(lp_json_get(root, "torch_dtype"), "float32");
    snprintf(c->dtype, sizeof c->dtype, "%s", dt);
    return LP_OK;
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
