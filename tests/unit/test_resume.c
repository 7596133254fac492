/*
 * test_resume.c - resumable calibrated runs (quant/resume.c), on the tiny
 * committed Llama-3 checkpoint (2 blocks), for every calibrated method and
 * format (GPTQ/qgroup, AWQ with rescaled norms, SliM-LLM/qmix,
 * SqueezeLLM/qlut):
 *  - a run interrupted after block 1 (through lp_quant_params.interrupt),
 *    then resumed, writes a model.safetensors byte-identical to an
 *    uninterrupted run's, and reports the restored block;
 *  - an interruption in the middle of a block keeps only the finished ones;
 *  - a state made with other settings or other calibration windows is
 *    refused, naming the setting that differs;
 *  - a truncated state file, a missing block file or a block file without
 *    one of its linears is an error naming the file, never a crash or a
 *    silently different model;
 *  - lp_resume_clear removes the state and the directory.
 */
#include "test.h"

#include "io/safetensors.h"
#include "llmpress/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_tmp[256], g_state[300];
static volatile int g_stop;
static int64_t g_stop_layer;
static const char *g_stop_linear;

/* Progress hook: ask the run to stop once the chosen linear is done. */
static void stopper(void *ud, int64_t layer, int64_t n_layers, const char *linear, double err) {
    (void)ud, (void)n_layers, (void)err;
    if (layer == g_stop_layer && !strcmp(linear, g_stop_linear)) g_stop = 1;
}

static char *path(const char *a, const char *b) {
    static char buf[4][512];
    static int k;
    char *p = buf[k++ % 4];
    snprintf(p, 512, "%s/%s%s%s", g_tmp, a, b ? "/" : "", b ? b : "");
    return p;
}

static lp_model *load(void) {
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(test_data("models/tiny-llama3"), &m));
    return m;
}

static char *slurp(const char *file, size_t *n) {
    FILE *f = fopen(file, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc(*n + 1);
    if (d && fread(d, 1, *n, f) != *n) {
        free(d);
        d = NULL;
    }
    fclose(f);
    return d;
}

static bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *da = slurp(a, &na), *db = slurp(b, &nb);
    bool same = da && db && na == nb && !memcmp(da, db, na);
    free(da);
    free(db);
    return same;
}

/* Quantize a freshly loaded model with p; save it to out (when LP_OK and out). */
static lp_status run(lp_quant_params p, const char *out, lp_quant_stats *st) {
    lp_model *m = load();
    if (!m) return LP_ERR_IO;
    lp_quant_stats local;
    p.stats = st ? st : &local;
    lp_status s = lp_model_quantize(m, &p);
    if (s == LP_OK && out) CHECK_OK(lp_model_save(m, out));
    lp_model_free(m);
    return s;
}

/* An interrupted run: stop after (layer, linear) has been compressed. */
static lp_status interrupted(lp_quant_params p, int64_t layer, const char *linear) {
    g_stop = 0;
    g_stop_layer = layer;
    g_stop_linear = linear;
    p.interrupt = &g_stop;
    p.progress = stopper;
    lp_status s = run(p, NULL, NULL);
    g_stop = 0;
    return s;
}

/* Settings from a spec such as "gptq bits=4 group=32"; a refused spec fails
 * the test (and leaves NULL, which lp_model_quantize refuses too). */
static lp_settings *settings(const char *spec) {
    lp_settings *s = NULL;
    CHECKF(lp_settings_parse(spec, &s) == LP_OK, "settings \"%s\": %s", spec, lp_last_error());
    return s;
}

static void resume_method(const char *spec, const lp_calib *cal) {
    lp_settings *ms = settings(spec);
    if (!ms) return;
    lp_quant_params p = {.method = ms, .calib = cal};
    const char *name = spec;
    CHECK_OK(run(p, path("ref", NULL), NULL));

    p.resume_dir = g_state;
    lp_status s = interrupted(p, 0, "mlp.down_proj");
    CHECKF(s == LP_ERR_INTERRUPTED, "%s: interrupted run gave %s: %s", name, lp_status_name(s), lp_last_error());
    CHECK(access(path("state", "state.safetensors"), F_OK) == 0);
    CHECK(access(path("state", "block-00000.safetensors"), F_OK) == 0);
    CHECK(access(path("state", "block-00001.safetensors"), F_OK) != 0);

    lp_quant_stats st = {0};
    CHECK_OK(run(p, path("resumed", NULL), &st));
    CHECKF(st.resumed_blocks == 1, "%s: resumed %lld blocks", name, (long long)st.resumed_blocks);
    CHECKF(same_file(path("ref", "model.safetensors"), path("resumed", "model.safetensors")),
           "%s: the resumed checkpoint differs from the uninterrupted one", name);
    CHECK_OK(lp_resume_clear(p.resume_dir));
    CHECK(access(p.resume_dir, F_OK) != 0);
    lp_settings_free(ms);
}

/* Rewrite block file f without linear `base` (its tensors and its metadata):
 * a consistent file that lacks something. */
static void drop_linear(const char *f, const char *base) {
    lp_weights *w = NULL;
    lp_st_writer *o = NULL;
    CHECK_OK(lp_weights_open(f, &w));
    CHECK_OK(lp_st_writer_init(&o));
    if (!w || !o) return;
    static const char *const lin[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                      "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    char key[256];
    CHECK_OK(lp_st_writer_meta(o, "llmpress.format_version", lp_weights_meta(w, "llmpress.format_version")));
    CHECK_OK(lp_st_writer_meta(o, "llmpress.resume.key", lp_weights_meta(w, "llmpress.resume.key")));
    for (int k = 0; k < 7; k++) {
        snprintf(key, sizeof key, "llmpress.linear.model.layers.0.%s", lin[k]);
        const char *v = lp_weights_meta(w, key);
        if (v && !strstr(key, base)) CHECK_OK(lp_st_writer_meta(o, key, v));
    }
    int dropped = 0;
    for (int64_t i = 0; i < lp_weights_count(w); i++) {
        const lp_tensor_view *t = lp_weights_at(w, i);
        if (!strncmp(t->name, base, strlen(base))) {
            dropped++;
            continue;
        }
        CHECK_OK(lp_st_writer_add(o, t->name, t->dtype, t->ndim, t->shape, t->data));
    }
    CHECK(dropped > 0);
    CHECK_OK(lp_st_writer_save(o, f)); /* a new file renamed over the mapped one */
    lp_st_writer_free(o);
    lp_weights_close(w);
}

/* GPTQ: mid-block interruption, refused states, corrupt states. */
static void resume_errors(const lp_calib *cal, const lp_calib *other_cal) {
    lp_settings *ms = settings("gptq bits=4 group=32"), *bits3 = settings("gptq bits=3 group=32"),
                *act_order = settings("gptq bits=4 group=32 act-order");
    lp_quant_params p = {.method = ms, .calib = cal, .resume_dir = g_state};
    CHECK_OK(run(p, path("ref", NULL), NULL)); /* with resume_dir: saves every block */
    CHECK_OK(lp_resume_clear(p.resume_dir));

    /* stopped inside block 2: block 1 is kept, block 2 is redone */
    CHECK(interrupted(p, 1, "self_attn.k_proj") == LP_ERR_INTERRUPTED);
    CHECK(strstr(lp_last_error(), "block 2") != NULL);
    CHECK(access(path("state", "block-00001.safetensors"), F_OK) != 0);

    /* other settings, other windows: refused, naming the difference */
    lp_quant_params q = p;
    q.method = bits3;
    CHECK(run(q, NULL, NULL) == LP_ERR_ARG);
    CHECKF(strstr(lp_last_error(), "bits=3 here, bits=4 in the state") != NULL, "message: %s", lp_last_error());
    q = p;
    q.calib = other_cal;
    CHECK(run(q, NULL, NULL) == LP_ERR_ARG);
    CHECKF(strstr(lp_last_error(), "calib_tokens=") != NULL, "message: %s", lp_last_error());
    q = p;
    q.method = act_order;
    CHECK(run(q, NULL, NULL) == LP_ERR_ARG);
    CHECKF(strstr(lp_last_error(), "act-order=1 here, act-order=0 in the state") != NULL, "message: %s",
           lp_last_error());

    /* the state still resumes after the refusals */
    lp_quant_stats st = {0};
    CHECK_OK(run(p, path("resumed", NULL), &st));
    CHECK(st.resumed_blocks == 1);
    CHECK(same_file(path("ref", "model.safetensors"), path("resumed", "model.safetensors")));

    /* a truncated state file */
    CHECK_OK(lp_resume_clear(p.resume_dir));
    CHECK(interrupted(p, 0, "mlp.down_proj") == LP_ERR_INTERRUPTED);
    size_t n = 0;
    char *d = slurp(path("state", "state.safetensors"), &n);
    CHECK(d != NULL);
    FILE *f = fopen(path("state", "state.safetensors"), "wb");
    CHECK(f && fwrite(d, 1, n / 2, f) == n / 2);
    if (f) fclose(f);
    lp_status s = run(p, NULL, NULL);
    CHECKF(s == LP_ERR_FORMAT && strstr(lp_last_error(), "state.safetensors"), "%s: %s", lp_status_name(s),
           lp_last_error());
    /* restored: now a missing block file */
    f = fopen(path("state", "state.safetensors"), "wb");
    CHECK(f && fwrite(d, 1, n, f) == n);
    if (f) fclose(f);
    free(d);
    drop_linear(path("state", "block-00000.safetensors"), "model.layers.0.mlp.down_proj");
    s = run(p, NULL, NULL);
    CHECKF(s == LP_ERR_FORMAT && strstr(lp_last_error(), "block-00000.safetensors") &&
               strstr(lp_last_error(), "down_proj"),
           "%s: %s", lp_status_name(s), lp_last_error());
    CHECK(unlink(path("state", "block-00000.safetensors")) == 0);
    s = run(p, NULL, NULL);
    CHECKF(s == LP_ERR_IO && strstr(lp_last_error(), "block-00000.safetensors"), "%s: %s", lp_status_name(s),
           lp_last_error());
    CHECK_OK(lp_resume_clear(p.resume_dir));
    CHECK(access(p.resume_dir, F_OK) != 0);
    CHECK_OK(lp_resume_clear(p.resume_dir)); /* a missing directory is fine */
    lp_settings_free(ms);
    lp_settings_free(bits3);
    lp_settings_free(act_order);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "%s/lp_resume_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    snprintf(g_state, sizeof g_state, "%s/state", g_tmp);
    unsigned long long seed = 5;
    int32_t stream[4096];
    for (int i = 0; i < 4096; i++) stream[i] = (int32_t)(test_rand_u64(&seed) % 256);
    int32_t *win = NULL, *win2 = NULL;
    CHECK_OK(lp_calib_sample(stream, 4096, 16, 64, 1, &win));
    CHECK_OK(lp_calib_sample(stream, 4096, 16, 64, 2, &win2));
    lp_calib cal = {win, 16, 64}, cal2 = {win2, 16, 64};

    resume_method("gptq bits=4 group=32", &cal);
    resume_method("awq bits=3 group=32", &cal);
    resume_method("slim bits=3 group=32", &cal);
    resume_method("squeezellm bits=3", &cal);
    resume_errors(&cal, &cal2);

    free(win);
    free(win2);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    TEST_DONE();
}
