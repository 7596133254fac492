/*
 * test_config.c - lp_config_load on the config.json spellings found in the
 * wild, and on configs it must refuse.
 *
 * Each case writes one config.json into a fresh temporary directory and
 * loads it. Accepted variants: rope_theta at the top level vs inside
 * rope_parameters (transformers 5); rope_scaling linear and llama3 in both
 * the old ("type") and new ("rope_type") spelling; head_dim explicit, null
 * or absent; eos_token_id as a list; dtype vs torch_dtype; a config without
 * "architectures" but with a known model_type; bias flags per architecture.
 * Refused: yarn/dynamic rope, gelu, unknown architectures (the message names
 * the architecture), missing or bad integers (the message names the key and
 * the file), heads not a multiple of kv heads, sizes whose products overflow
 * (issue 15 item 2), any key of the wrong type and impossible rms_norm_eps or
 * max_position_embeddings (item 10), malformed JSON and a missing file (the
 * message names the path). Every refusal is checked for its status
 * code and for the words a user needs to fix the file.
 */
#include "test.h"

#include "llmpress/model.h"

#include <stdarg.h>
#include <unistd.h>

static char g_dir[256];  /* the temporary directory */
static char g_file[300]; /* g_dir/config.json */

/* The required keys of a valid config. Cases add keys after them, never
 * repeat one (the JSON reader returns the first of duplicate keys), and write
 * the whole object when a required key must differ. */
#define SHAPE_KEYS                                                                        \
    "\"vocab_size\": 256, \"hidden_size\": 64, \"intermediate_size\": 160, "              \
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2"
#define COMMON_KEYS SHAPE_KEYS ", \"max_position_embeddings\": 512, \"rms_norm_eps\": 1e-5"
#define LLAMA_HEAD "{\"architectures\": [\"LlamaForCausalLM\"], "

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

/* Write config.json from printf-style text and load it from the directory. */
static lp_status load_fmt(lp_config *c, const char *fmt, ...) {
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    write_text(g_file, text);
    memset(c, 0xAB, sizeof *c); /* the loader must set every field it reports */
    return lp_config_load(g_dir, c);
}

/* A Llama config with extra keys (a leading ", " is added when non-empty). */
static lp_status load_llama(lp_config *c, const char *extra) {
    return load_fmt(c, "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
                       COMMON_KEYS "%s%s}", extra[0] ? ", " : "", extra);
}

static bool has(const char *s) { return strstr(lp_last_error(), s) != NULL; }

/* A failure with status `want` whose message contains every string in the
 * NULL-terminated list (the config path is always required). */
static void expect_fail(const char *what, lp_status got, lp_status want, ...) {
    CHECKF(got == want, "%s: status %s, expected %s (message: %s)", what, lp_status_name(got),
           lp_status_name(want), lp_last_error());
    CHECKF(has(g_file), "%s: message does not name %s: %s", what, g_file, lp_last_error());
    va_list ap;
    va_start(ap, want);
    for (const char *s; (s = va_arg(ap, const char *));)
        CHECKF(has(s), "%s: message lacks \"%s\": %s", what, s, lp_last_error());
    va_end(ap);
}

static void test_basic(void) {
    lp_config c;
    CHECK_OK(load_llama(&c, ""));
    CHECK(c.arch == LP_ARCH_LLAMA && !strcmp(c.arch_name, "LlamaForCausalLM"));
    CHECK(c.vocab == 256 && c.dim == 64 && c.ffn == 160 && c.n_layers == 2);
    CHECK(c.n_heads == 4 && c.n_kv_heads == 2 && c.head_dim == 16 && c.max_pos == 512);
    CHECK(fabsf(c.norm_eps - 1e-5f) < 1e-12f);
    /* Defaults of the optional keys. */
    CHECK(c.rope_theta == 10000.0 && c.rope_type == LP_ROPE_DEFAULT && c.rope_factor == 1.0);
    CHECK(c.bos == -1 && c.eos == -1);
    CHECK(!c.tied && !c.qkv_bias && !c.o_bias && c.sliding_window == 0);
    CHECK(!strcmp(c.dtype, "float32"));

    /* A path to the file itself works as well as its directory. */
    memset(&c, 0, sizeof c);
    CHECK_OK(lp_config_load(g_file, &c));
    CHECK(c.dim == 64);

    /* num_key_value_heads absent or null: multi-head attention (KV = H). */
    CHECK_OK(load_fmt(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 256, "
                          "\"hidden_size\": 64, \"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                          "\"num_attention_heads\": 4}"));
    CHECK(c.n_kv_heads == 4);
    CHECK_OK(load_fmt(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 256, "
                          "\"hidden_size\": 64, \"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                          "\"num_attention_heads\": 4, \"num_key_value_heads\": null}"));
    CHECK(c.n_kv_heads == 4);
}

static void test_rope(void) {
    lp_config c;
    /* rope_theta at the top level (transformers 4). */
    CHECK_OK(load_llama(&c, "\"rope_theta\": 500000.0"));
    CHECK(c.rope_theta == 500000.0 && c.rope_type == LP_ROPE_DEFAULT);

    /* rope_parameters.rope_theta (transformers 5). */
    CHECK_OK(load_llama(&c, "\"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}"));
    CHECK(c.rope_theta == 1000000.0 && c.rope_type == LP_ROPE_DEFAULT && c.rope_factor == 1.0);

    /* Both: rope_parameters is the newer, authoritative spelling. */
    CHECK_OK(load_llama(&c, "\"rope_theta\": 10000.0, "
                            "\"rope_parameters\": {\"rope_theta\": 250000.0, \"rope_type\": \"default\"}"));
    CHECK(c.rope_theta == 250000.0);

    /* Old spelling {"type": "linear"}. */
    CHECK_OK(load_llama(&c, "\"rope_theta\": 10000.0, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 4.0}"));
    CHECK(c.rope_type == LP_ROPE_LINEAR && c.rope_factor == 4.0 && c.rope_theta == 10000.0);

    /* rope_scaling null is the common "no scaling". */
    CHECK_OK(load_llama(&c, "\"rope_theta\": 10000.0, \"rope_scaling\": null"));
    CHECK(c.rope_type == LP_ROPE_DEFAULT && c.rope_factor == 1.0);

    /* Llama 3.1 style {"rope_type": "llama3", ...}. */
    CHECK_OK(load_llama(&c, "\"rope_theta\": 500000.0, \"rope_scaling\": {\"factor\": 8.0, "
                            "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, "
                            "\"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}"));
    CHECK(c.rope_type == LP_ROPE_LLAMA3 && c.rope_theta == 500000.0);
    CHECK(c.rope_factor == 8.0 && c.rope_low_freq == 1.0 && c.rope_high_freq == 4.0);
    CHECK(c.rope_orig_max == 8192);

    /* The same inside rope_parameters (transformers 5), other values. */
    CHECK_OK(load_llama(&c, "\"rope_parameters\": {\"rope_theta\": 500000.0, \"factor\": 32.0, "
                            "\"low_freq_factor\": 2.0, \"high_freq_factor\": 8.0, "
                            "\"original_max_position_embeddings\": 4096, \"rope_type\": \"llama3\"}"));
    CHECK(c.rope_type == LP_ROPE_LLAMA3 && c.rope_factor == 32.0 && c.rope_low_freq == 2.0);
    CHECK(c.rope_high_freq == 8.0 && c.rope_orig_max == 4096);

    /* Scaling types the forward pass does not implement are refused by name. */
    lp_status st = load_llama(&c, "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, "
                                  "\"original_max_position_embeddings\": 32768}");
    expect_fail("yarn", st, LP_ERR_UNSUPPORTED, "yarn", NULL);
    st = load_llama(&c, "\"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}");
    expect_fail("dynamic", st, LP_ERR_UNSUPPORTED, "dynamic", NULL);
    st = load_llama(&c, "\"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"longrope\"}");
    expect_fail("longrope", st, LP_ERR_UNSUPPORTED, "longrope", NULL);
    st = load_llama(&c, "\"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"default\", "
                        "\"partial_rotary_factor\": 0.5}");
    expect_fail("partial rotary", st, LP_ERR_UNSUPPORTED, "partial_rotary_factor", NULL);

    /* Impossible values. */
    st = load_llama(&c, "\"rope_theta\": 0");
    expect_fail("rope_theta 0", st, LP_ERR_FORMAT, "rope_theta", NULL);
    st = load_llama(&c, "\"rope_scaling\": {\"type\": \"linear\", \"factor\": -2.0}");
    expect_fail("negative factor", st, LP_ERR_FORMAT, "factor", NULL);
    st = load_llama(&c, "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, "
                        "\"low_freq_factor\": 4.0, \"high_freq_factor\": 1.0}");
    expect_fail("llama3 freq order", st, LP_ERR_FORMAT, "high_freq_factor", NULL);
    st = load_llama(&c, "\"rope_scaling\": \"linear\"");
    expect_fail("rope_scaling string", st, LP_ERR_FORMAT, "rope_scaling", NULL);
}

static void test_head_dim(void) {
    lp_config c;
    CHECK_OK(load_llama(&c, "\"head_dim\": null"));
    CHECK(c.head_dim == 64 / 4);
    /* An explicit head_dim is kept even when H * hd != D (Mistral-Nemo, Qwen3 style). */
    CHECK_OK(load_llama(&c, "\"head_dim\": 32"));
    CHECK(c.head_dim == 32);
    lp_status st = load_llama(&c, "\"head_dim\": 15");
    expect_fail("odd head_dim", st, LP_ERR_FORMAT, "head_dim", "15", NULL);
    st = load_llama(&c, "\"head_dim\": \"16\"");
    expect_fail("head_dim string", st, LP_ERR_FORMAT, "head_dim", NULL);
    /* No head_dim and D not divisible by H. */
    st = load_fmt(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 256, "
                      "\"hidden_size\": 66, \"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                      "\"num_attention_heads\": 4, \"num_key_value_heads\": 2}");
    expect_fail("D % H", st, LP_ERR_FORMAT, "hidden_size", "66", NULL);
}

static void test_tokens_dtype(void) {
    lp_config c;
    CHECK_OK(load_llama(&c, "\"bos_token_id\": 128000, \"eos_token_id\": [128001, 128008, 128009]"));
    CHECK(c.bos == 128000 && c.eos == 128001);
    CHECK_OK(load_llama(&c, "\"bos_token_id\": 1, \"eos_token_id\": 2"));
    CHECK(c.bos == 1 && c.eos == 2);
    CHECK_OK(load_llama(&c, "\"bos_token_id\": null, \"eos_token_id\": []"));
    CHECK(c.bos == -1 && c.eos == -1);

    CHECK_OK(load_llama(&c, "\"torch_dtype\": \"float16\""));
    CHECK(!strcmp(c.dtype, "float16"));
    CHECK_OK(load_llama(&c, "\"dtype\": \"bfloat16\""));
    CHECK(!strcmp(c.dtype, "bfloat16"));
    /* transformers 5 writes dtype; when both are present it is the newer one. */
    CHECK_OK(load_llama(&c, "\"torch_dtype\": \"float32\", \"dtype\": \"bfloat16\""));
    CHECK(!strcmp(c.dtype, "bfloat16"));
}

static void test_arch_and_bias(void) {
    lp_config c;
    /* Qwen2: q/k/v carry biases, o does not. */
    CHECK_OK(load_fmt(&c, "{\"architectures\": [\"Qwen2ForCausalLM\"], " COMMON_KEYS "}"));
    CHECK(c.arch == LP_ARCH_QWEN2 && c.qkv_bias && !c.o_bias);
    CHECK(!strcmp(c.arch_name, "Qwen2ForCausalLM"));
    /* No "architectures", but a known model_type: accepted. */
    CHECK_OK(load_fmt(&c, "{\"model_type\": \"qwen2\", " COMMON_KEYS "}"));
    CHECK(c.arch == LP_ARCH_QWEN2 && c.qkv_bias && !c.o_bias);
    CHECK(!strcmp(c.arch_name, "Qwen2ForCausalLM"));
    /* Qwen2's o_proj never has a bias (transformers ignores attention_bias). */
    CHECK_OK(load_fmt(&c, "{\"model_type\": \"qwen2\", \"attention_bias\": true, " COMMON_KEYS "}"));
    CHECK(c.qkv_bias && !c.o_bias);
    lp_status st = load_fmt(&c, "{\"model_type\": \"qwen2\", \"use_sliding_window\": true, " COMMON_KEYS "}");
    expect_fail("qwen2 sliding", st, LP_ERR_UNSUPPORTED, "use_sliding_window", NULL);

    /* Llama with attention_bias: biases on q, k, v and o. */
    CHECK_OK(load_llama(&c, "\"attention_bias\": true"));
    CHECK(c.arch == LP_ARCH_LLAMA && c.qkv_bias && c.o_bias);
    CHECK_OK(load_llama(&c, "\"attention_bias\": false, \"tie_word_embeddings\": true"));
    CHECK(!c.qkv_bias && !c.o_bias && c.tied);

    /* Mistral: sliding_window null = none, a number is kept. */
    CHECK_OK(load_fmt(&c, "{\"architectures\": [\"MistralForCausalLM\"], \"sliding_window\": null, "
                          COMMON_KEYS "}"));
    CHECK(c.arch == LP_ARCH_MISTRAL && c.sliding_window == 0 && !c.qkv_bias);
    CHECK_OK(load_fmt(&c, "{\"architectures\": [\"MistralForCausalLM\"], \"sliding_window\": 4096, "
                          COMMON_KEYS "}"));
    CHECK(c.sliding_window == 4096);

    /* Unsupported architectures are named in the message. */
    st = load_fmt(&c, "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", " COMMON_KEYS "}");
    expect_fail("gpt2", st, LP_ERR_UNSUPPORTED, "GPT2LMHeadModel", "LlamaForCausalLM", NULL);
    st = load_fmt(&c, "{\"model_type\": \"falcon\", " COMMON_KEYS "}");
    expect_fail("falcon model_type", st, LP_ERR_UNSUPPORTED, "falcon", NULL);
    /* "architectures" wins over a model_type that would be accepted. */
    st = load_fmt(&c, "{\"architectures\": [\"LlamaForSequenceClassification\"], \"model_type\": \"llama\", "
                      COMMON_KEYS "}");
    expect_fail("llama classifier", st, LP_ERR_UNSUPPORTED, "LlamaForSequenceClassification", NULL);
    st = load_fmt(&c, "{" COMMON_KEYS "}");
    expect_fail("no architecture", st, LP_ERR_UNSUPPORTED, "architecture", NULL);

    /* Activations and MLP biases the forward pass does not implement. */
    st = load_llama(&c, "\"hidden_act\": \"gelu\"");
    expect_fail("gelu", st, LP_ERR_UNSUPPORTED, "gelu", "hidden_act", NULL);
    CHECK_OK(load_llama(&c, "\"hidden_act\": \"silu\""));
    st = load_llama(&c, "\"mlp_bias\": true");
    expect_fail("mlp_bias", st, LP_ERR_UNSUPPORTED, "mlp_bias", NULL);
}

static void test_bad_numbers(void) {
    lp_config c;
    /* hidden_size missing. */
    lp_status st = load_fmt(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 256, "
                                "\"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                                "\"num_attention_heads\": 4}");
    expect_fail("no hidden_size", st, LP_ERR_FORMAT, "\"hidden_size\"", NULL);
    /* num_hidden_layers as a float, vocab_size negative. */
    st = load_fmt(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 256, "
                      "\"hidden_size\": 64, \"intermediate_size\": 160, \"num_hidden_layers\": 2.5, "
                      "\"num_attention_heads\": 4}");
    expect_fail("layers 2.5", st, LP_ERR_FORMAT, "num_hidden_layers", NULL);
    st = load_fmt(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": -1, "
                      "\"hidden_size\": 64, \"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                      "\"num_attention_heads\": 4}");
    expect_fail("vocab -1", st, LP_ERR_FORMAT, "vocab_size", NULL);
    st = load_fmt(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 256, "
                      "\"hidden_size\": 64, \"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                      "\"num_attention_heads\": 0}");
    expect_fail("heads 0", st, LP_ERR_FORMAT, "num_attention_heads", NULL);
    /* 6 query heads cannot share 4 kv heads evenly. */
    st = load_fmt(&c, "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 256, "
                      "\"hidden_size\": 96, \"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                      "\"num_attention_heads\": 6, \"num_key_value_heads\": 4}");
    expect_fail("heads % kv", st, LP_ERR_FORMAT, "num_key_value_heads", "6", "4", NULL);
}

/* Sizes whose products would overflow the shape arithmetic (model.c computes
 * n_heads * head_dim in int64): each field and each tensor dimension must be
 * below 2^31, the whole model and a full KV cache below 2^62 elements. The
 * message names the file and the field. */
static void test_sizes(void) {
    lp_config c;
    /* Issue 15 item 2: heads, kv heads and head_dim of 2^40 were accepted. */
    lp_status st = load_fmt(&c, LLAMA_HEAD "\"vocab_size\": 256, \"hidden_size\": 64, "
                                "\"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                                "\"num_attention_heads\": 1099511627776, "
                                "\"num_key_value_heads\": 1099511627776, \"head_dim\": 1099511627776}");
    expect_fail("heads 2^40", st, LP_ERR_FORMAT, "num_attention_heads", "1099511627776", "2147483647", NULL);
    st = load_llama(&c, "\"head_dim\": 2147483648");
    expect_fail("head_dim 2^31", st, LP_ERR_FORMAT, "head_dim", "2147483648", NULL);
    st = load_fmt(&c, LLAMA_HEAD "\"vocab_size\": 1e30, \"hidden_size\": 64, \"intermediate_size\": 160, "
                                 "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}");
    expect_fail("vocab 1e30", st, LP_ERR_FORMAT, "vocab_size", "out of range", NULL);
    /* Each field fits, their product (the q projection's rows) does not. */
    st = load_fmt(&c, LLAMA_HEAD "\"vocab_size\": 256, \"hidden_size\": 64, \"intermediate_size\": 160, "
                                 "\"num_hidden_layers\": 2, \"num_attention_heads\": 1048576, "
                                 "\"num_key_value_heads\": 1048576, \"head_dim\": 1048576}");
    expect_fail("heads x head_dim", st, LP_ERR_FORMAT, "num_attention_heads 1048576", "head_dim 1048576", NULL);
    /* Every tensor fits, the whole model (2 x V x D for untied embeddings) does not. */
    st = load_fmt(&c, LLAMA_HEAD "\"vocab_size\": 2147483647, \"hidden_size\": 2147483647, "
                                 "\"intermediate_size\": 1, \"num_hidden_layers\": 1, "
                                 "\"num_attention_heads\": 1, \"head_dim\": 2}");
    expect_fail("total params", st, LP_ERR_FORMAT, "2^62", "vocab_size 2147483647", NULL);
    /* A KV cache of max_position_embeddings tokens: layers x kv dim x positions. */
    st = load_fmt(&c, LLAMA_HEAD "\"vocab_size\": 16, \"hidden_size\": 2, \"intermediate_size\": 1, "
                                 "\"num_hidden_layers\": 2147483647, \"num_attention_heads\": 1, "
                                 "\"max_position_embeddings\": 2147483647}");
    expect_fail("kv cache", st, LP_ERR_FORMAT, "max_position_embeddings 2147483647", NULL);
    /* The largest accepted values still load (2^31 - 1 each where the products fit). */
    CHECK_OK(load_fmt(&c, LLAMA_HEAD "\"vocab_size\": 2147483647, \"hidden_size\": 64, "
                          "\"intermediate_size\": 160, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                          "\"max_position_embeddings\": 2147483647}"));
    CHECK(c.vocab == 2147483647 && c.max_pos == 2147483647);
}

/* Issue 15 item 10: a key of the wrong type took its default silently; now
 * an error naming the key and the expected type. Impossible values of
 * rms_norm_eps and max_position_embeddings are refused. */
static void test_types(void) {
    lp_config c;
    static const struct { const char *extra, *key, *want; } bad[] = {
        {"\"rms_norm_eps\": \"x\", \"max_position_embeddings\": 512", "rms_norm_eps", "a number"},
        {"\"rms_norm_eps\": 1e-5, \"max_position_embeddings\": \"512\"", "max_position_embeddings", "an integer"},
        {"\"rms_norm_eps\": 1e-5, \"max_position_embeddings\": 512.5", "max_position_embeddings", "an integer"},
        {"\"rms_norm_eps\": [1e-5], \"max_position_embeddings\": 512", "rms_norm_eps", "a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lp_status st = load_fmt(&c, LLAMA_HEAD SHAPE_KEYS ", %s}", bad[i].extra);
        expect_fail(bad[i].extra, st, LP_ERR_FORMAT, bad[i].key, bad[i].want, NULL);
    }
    /* A required size as a string. */
    lp_status st = load_fmt(&c, LLAMA_HEAD "\"vocab_size\": 256, \"hidden_size\": \"512\", "
                                "\"intermediate_size\": 160, \"num_hidden_layers\": 2, \"num_attention_heads\": 4}");
    expect_fail("hidden_size string", st, LP_ERR_FORMAT, "\"hidden_size\"", "an integer", "\"512\"", NULL);
    st = load_fmt(&c, LLAMA_HEAD "\"vocab_size\": 256, \"hidden_size\": 64, \"intermediate_size\": 160, "
                                 "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": true}");
    expect_fail("kv heads bool", st, LP_ERR_FORMAT, "num_key_value_heads", "an integer", NULL);
    static const struct { const char *extra, *key, *want; } bad_opt[] = {
        {"\"tie_word_embeddings\": \"yes\"", "tie_word_embeddings", "true or false"},
        {"\"attention_bias\": 1", "attention_bias", "true or false"},
        {"\"mlp_bias\": \"false\"", "mlp_bias", "true or false"},
        {"\"hidden_act\": 3", "hidden_act", "a string"},
        {"\"rope_theta\": \"1e4\"", "rope_theta", "a number"},
        {"\"rope_scaling\": {\"type\": \"linear\", \"factor\": \"4\"}", "factor", "a number"},
        {"\"rope_scaling\": {\"type\": 7}", "type", "a string"},
        {"\"rope_parameters\": \"default\"", "rope_parameters", "an object"},
        {"\"rope_parameters\": {\"rope_theta\": \"1e4\"}", "rope_theta", "a number"},
        {"\"bos_token_id\": \"1\"", "bos_token_id", "an integer"},
        {"\"eos_token_id\": [\"2\"]", "eos_token_id", "an integer"},
        {"\"bos_token_id\": 4294967297", "bos_token_id", "out of range"},
        {"\"eos_token_id\": -2", "eos_token_id", "out of range"},
        {"\"torch_dtype\": 16", "torch_dtype", "a string"},
    };
    for (size_t i = 0; i < sizeof bad_opt / sizeof bad_opt[0]; i++) {
        st = load_llama(&c, bad_opt[i].extra);
        expect_fail(bad_opt[i].extra, st, LP_ERR_FORMAT, bad_opt[i].key, bad_opt[i].want, NULL);
    }
    st = load_fmt(&c, "{\"architectures\": \"LlamaForCausalLM\", " COMMON_KEYS "}");
    expect_fail("architectures string", st, LP_ERR_FORMAT, "architectures", NULL);
    st = load_fmt(&c, "{\"architectures\": [\"MistralForCausalLM\"], \"sliding_window\": \"4096\", " COMMON_KEYS "}");
    expect_fail("sliding_window string", st, LP_ERR_FORMAT, "sliding_window", "an integer", NULL);
    st = load_fmt(&c, "{\"model_type\": \"qwen2\", \"use_sliding_window\": \"no\", " COMMON_KEYS "}");
    expect_fail("use_sliding_window string", st, LP_ERR_FORMAT, "use_sliding_window", "true or false", NULL);

    /* Impossible values. */
    static const char *const bad_val[] = {
        "\"rms_norm_eps\": 0, \"max_position_embeddings\": 512",
        "\"rms_norm_eps\": -1e-5, \"max_position_embeddings\": 512",
        "\"rms_norm_eps\": 1e-50, \"max_position_embeddings\": 512", /* 0 as a float32 */
        "\"rms_norm_eps\": 1e-5, \"max_position_embeddings\": 0",
        "\"rms_norm_eps\": 1e-5, \"max_position_embeddings\": -1",
    };
    for (size_t i = 0; i < sizeof bad_val / sizeof bad_val[0]; i++) {
        st = load_fmt(&c, LLAMA_HEAD SHAPE_KEYS ", %s}", bad_val[i]);
        expect_fail(bad_val[i], st, LP_ERR_FORMAT, i < 3 ? "rms_norm_eps" : "max_position_embeddings", NULL);
    }

    /* Still accepted: null for an optional key (its default), a whole-valued
     * number for an integer, an empty eos list. */
    CHECK_OK(load_fmt(&c, LLAMA_HEAD SHAPE_KEYS ", \"rms_norm_eps\": null, \"max_position_embeddings\": null, "
                          "\"rope_theta\": null, \"tie_word_embeddings\": null, \"hidden_act\": null, "
                          "\"eos_token_id\": []}"));
    CHECK(fabsf(c.norm_eps - 1e-6f) < 1e-12f && c.max_pos == 2048 && c.rope_theta == 10000.0);
    CHECK(!c.tied && c.eos == -1);
    CHECK_OK(load_fmt(&c, LLAMA_HEAD "\"vocab_size\": 256.0, \"hidden_size\": 64, \"intermediate_size\": 160, "
                          "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
                          "\"max_position_embeddings\": 4096.0}"));
    CHECK(c.vocab == 256 && c.max_pos == 4096);
}

static void test_bad_files(void) {
    lp_config c;
    /* Malformed JSON: a trailing comma, an unterminated object, not an object. */
    write_text(g_file, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64,}");
    lp_status st = lp_config_load(g_dir, &c);
    expect_fail("trailing comma", st, LP_ERR_FORMAT, NULL);
    write_text(g_file, "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 6");
    st = lp_config_load(g_dir, &c);
    expect_fail("truncated json", st, LP_ERR_FORMAT, NULL);
    write_text(g_file, "[1, 2, 3]");
    st = lp_config_load(g_dir, &c);
    expect_fail("json array", st, LP_ERR_FORMAT, NULL);
    write_text(g_file, "");
    st = lp_config_load(g_dir, &c);
    expect_fail("empty file", st, LP_ERR_FORMAT, NULL);

    /* No config.json in the directory, or a path that does not exist. */
    unlink(g_file);
    st = lp_config_load(g_dir, &c);
    expect_fail("missing config.json", st, LP_ERR_IO, NULL);
    char missing[400];
    snprintf(missing, sizeof missing, "%s/nope/config.json", g_dir);
    st = lp_config_load(missing, &c);
    CHECKF(st == LP_ERR_IO && has(missing), "missing path: %s", lp_last_error());
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/lp_test_config_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(g_file, sizeof g_file, "%s/config.json", g_dir);
    test_basic();
    test_rope();
    test_head_dim();
    test_tokens_dtype();
    test_arch_and_bias();
    test_bad_numbers();
    test_sizes();
    test_types();
    test_bad_files();
    unlink(g_file);
    rmdir(g_dir);
    TEST_DONE();
}
