/*
 * test_quant_roundtrip.c - RTN-quantize a model, save it, load it back:
 *  - every linear comes back in the same format with the same packed bits,
 *    scales and zero points (save -> load -> same bits);
 *  - the loaded model's logits equal the in-memory quantized model's exactly;
 *  - the packed kernels agree with a dense f32 forward over the dequantized
 *    weights (rel. error < 1e-5), so the packed path computes the model the
 *    format describes;
 *  - sizes: info's exact byte count equals the sum of the stored arrays.
 * Run on the committed tiny checkpoints (any dtype, biases, sharding) at
 * several bit widths and group sizes, including per-channel on odd widths,
 * and for the other stored formats: SqueezeLLM's lookup tables with sparse
 * outliers (qlut) and SliM-LLM's mixed widths (qmix), calibrated on random
 * tokens.
 */
#include "test.h"

#include "llmpress/model.h"
#include "llmpress/quant.h"
#include "format/qgroup.h"
#include "format/qlut.h"
#include "format/qmix.h"
#include "model/model_impl.h"

#include <stdarg.h>
#include <unistd.h>

static double rel_err(const float *a, const float *b, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static float *logits_of(lp_model *m, const int32_t *ids, int64_t T) {
    const lp_config *c = lp_model_config(m);
    float *out = malloc((size_t)(T * c->vocab) * sizeof(float));
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, T, T, &ctx));
    if (ctx) CHECK_OK(lp_forward(ctx, ids, T, out, true));
    lp_ctx_free(ctx);
    return out;
}

/* Stored bytes of one packed linear, counted from its arrays' shapes. */
static int64_t bytes_of(const lp_linear *a) {
    const lp_qgroup *q = lp_linear_data(a, &lp_format_qgroup);
    const lp_qmix *mix = lp_linear_data(a, &lp_format_qmix);
    const lp_qlut *t = lp_linear_data(a, &lp_format_qlut);
    if (q) {
        int64_t sb = q->rows * q->ngroups * 2;
        return q->rows * q->blocks * q->bits * 4 + sb + (q->sym ? 0 : sb / 2);
    }
    if (mix) {
        int64_t n = mix->ngroups;
        for (int k = 0; k < mix->nparts; k++) {
            const lp_qgroup *p = &mix->part[k];
            int64_t sb = p->rows * p->ngroups * 2;
            n += p->rows * p->blocks * p->bits * 4 + sb + (p->sym ? 0 : sb / 2);
        }
        return n;
    }
    if (t) return t->rows * t->blocks * t->bits * 4 + (t->rows << t->bits) * 2 + (t->rows + 1) * 4 + t->nnz * (4 + 2);
    return -1; /* not one packed part */
}

/* Settings from a spec such as "rtn bits=4 group=32"; a refused spec fails
 * the test (and leaves NULL, which lp_model_quantize refuses too). */
static lp_settings *settings(const char *fmt, ...) {
    char spec[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(spec, sizeof spec, fmt, ap);
    va_end(ap);
    lp_settings *s = NULL;
    CHECKF(lp_settings_parse(spec, &s) == LP_OK, "settings \"%s\": %s", spec, lp_last_error());
    return s;
}

/* method: "rtn", "squeezellm" (group and sym unused: it has neither) or "slim". */
static void roundtrip_m(const char *name, const char *method, int bits, int group, bool sym) {
    const bool rtn = !strcmp(method, "rtn"), slim = !strcmp(method, "slim");
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s", test_data("models/"));
    strncat(src, name, sizeof src - strlen(src) - 1);
    snprintf(dst, sizeof dst, "/tmp/lp_rt_%d_%s_w%d_g%d_%d", (int)getpid(), name, bits, group, sym);

    lp_model *m = NULL, *back = NULL;
    CHECK_OK(lp_model_load(src, &m));
    if (!m) return;
    const lp_config *c = lp_model_config(m);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (int32_t)((i * 37 + 11) % c->vocab);
    float *ref = logits_of(m, ids, 40);

    lp_settings *ms = !strcmp(method, "squeezellm") ? settings("squeezellm bits=%d outliers=0.01", bits)
                                                    : settings("%s bits=%d group=%d%s", method, bits, group,
                                                               sym ? " sym" : "");
    lp_quant_params qp = {.method = ms};
    int32_t *win = NULL;
    lp_calib cal = {0};
    if (!rtn) {
        int32_t stream[2048];
        for (int i = 0; i < 2048; i++) stream[i] = (int32_t)((i * 7919u + (unsigned)(i * i) % 13) % c->vocab);
        CHECK_OK(lp_calib_sample(stream, 2048, 8, 32, 5, &win));
        cal = (lp_calib){win, 8, 32};
        qp.calib = &cal;
    }
    CHECK_OK(lp_model_quantize(m, &qp));
    free(win);
    lp_settings_free(ms);
    float *q_mem = logits_of(m, ids, 40);
    CHECK_OK(lp_model_save(m, dst));
    CHECK_OK(lp_model_load(dst, &back));
    if (!back) return;
    float *q_disk = logits_of(back, ids, 40);
    CHECKF(memcmp(q_mem, q_disk, (size_t)(40 * c->vocab) * sizeof(float)) == 0,
           "%s w%d g%d: reloaded model's logits differ", name, bits, group);

    /* Same bits, and packed kernels vs dense forward over the dequantized weights. */
    lp_model_size s1, s2;
    lp_model_size_get(m, &s1);
    lp_model_size_get(back, &s2);
    CHECK(s1.linear_bytes == s2.linear_bytes && s1.n_compressed == 7 * c->n_layers);
    int64_t manual = 0;
    for (int64_t l = 0; l < c->n_layers; l++) {
        for (int k = 0; k < LP_NLIN; k++) {
            lp_linear *a = &m->layers[l].lin[k], *b = &back->layers[l].lin[k];
            if (rtn) {
                const lp_qgroup *qa = lp_linear_data(a, &lp_format_qgroup), *qb = lp_linear_data(b, &lp_format_qgroup);
                CHECK(qa && qb);
                if (qa && qb) {
                    CHECK(qa->bits == bits && qb->bits == bits && qa->sym == qb->sym);
                    size_t nq = (size_t)(qa->rows * qa->blocks * qa->bits) * 4;
                    size_t ns = (size_t)(qa->rows * qa->ngroups) * 2;
                    CHECK(!memcmp(qa->q, qb->q, nq) && !memcmp(qa->scales, qb->scales, ns));
                    if (!sym) CHECK(!memcmp(qa->zeros, qb->zeros, ns / 2));
                }
            } else {
                const lp_format *f = slim ? &lp_format_qmix : &lp_format_qlut;
                CHECK(lp_linear_is(a, f) && lp_linear_is(b, f));
            }
            manual += bytes_of(a);
            /* swap in a dense dequantized copy for the comparison below */
            float *w = lp_linear_to_f32(b), *wa = lp_linear_to_f32(a);
            CHECKF(w && wa && !memcmp(w, wa, (size_t)(a->rows * a->cols) * sizeof(float)),
                   "%s: layer %lld linear %d: reloaded weights differ", name, (long long)l, k);
            free(wa);
            lp_linear_free(b);
            *b = (lp_linear){.rows = a->rows, .cols = a->cols, .bias = a->bias};
            lp_dense *d = NULL;
            if (w) CHECK_OK(lp_dense_own(a->rows, a->cols, w, &d));
            if (d) CHECK_OK(lp_linear_add_part(b, &lp_format_dense, d));
        }
    }
    CHECK(manual == s1.linear_bytes);
    float *dense = logits_of(back, ids, 40);
    double e_kernel = rel_err(q_mem, dense, 40 * c->vocab);
    /* Decode (one token at a time) takes the packed gemv kernels, not tiles + BLAS. */
    float *one = malloc((size_t)c->vocab * sizeof(float)), *one_d = malloc((size_t)c->vocab * sizeof(float));
    lp_ctx *cq = NULL, *cd = NULL;
    CHECK_OK(lp_ctx_init(m, 40, 1, &cq));
    CHECK_OK(lp_ctx_init(back, 40, 1, &cd));
    for (int t = 0; t < 40 && cq && cd; t++) {
        CHECK_OK(lp_forward(cq, ids + t, 1, one, false));
        CHECK_OK(lp_forward(cd, ids + t, 1, one_d, false));
        double e = rel_err(one, one_d, c->vocab);
        if (e > e_kernel) e_kernel = e;
    }
    lp_ctx_free(cq);
    lp_ctx_free(cd);
    free(one);
    free(one_d);
    double e_quant = rel_err(q_mem, ref, 40 * c->vocab);
    CHECKF(e_kernel < 1e-5, "%s w%d g%d: packed kernels vs dequantized dense: %.3g", name, bits, group, e_kernel);
    /* Quantization changes the model, by an amount that shrinks with bits. */
    CHECKF(e_quant > 0 && e_quant < (bits >= 8 ? 0.05 : bits >= 3 ? 1.0 : 2.0),
           "%s w%d g%d: quantized vs original logits rel. error %.3g", name, bits, group, e_quant);
    printf("%-14s %-10s w%d g%-4d %s  bpw %.3f  logits vs f32 %.4f, packed vs dense %.2g\n", name,
           method, bits, group, sym ? "sym " : "asym", 8.0 * (double)s1.linear_bytes / (double)s1.linear_params, e_quant, e_kernel);

    free(ref); free(q_mem); free(q_disk); free(dense);
    lp_model_free(back);
    lp_model_free(m);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dst);
    CHECK(system(cmd) == 0);
}

static void roundtrip(const char *name, int bits, int group, bool sym) {
    roundtrip_m(name, "rtn", bits, group, sym);
}

int main(void) {
    roundtrip_m("tiny-llama3", "squeezellm", 3, -1, false);
    roundtrip_m("tiny-qwen2", "squeezellm", 4, -1, false);
    roundtrip_m("tiny-llama3", "slim", 3, 32, false);
    roundtrip_m("tiny-mistral", "slim", 2, 32, true);
    roundtrip("tiny-mistral", 4, 32, false);
    roundtrip("tiny-mistral", 8, -1, true);
    roundtrip("tiny-qwen2", 3, 64, false);
    roundtrip("tiny-qwen2", 2, 32, true);
    roundtrip("tiny-llama3", 4, -1, false);
    roundtrip("tiny-llama3", 3, 32, false);
    /* Error grows as bits shrink, on one model and group. */
    double prev = 0;
    for (int b = 8; b >= 2; b--) {
        lp_model *m = NULL;
        char src[512];
        snprintf(src, sizeof src, "%s", test_data("models/tiny-llama3"));
        CHECK_OK(lp_model_load(src, &m));
        if (!m) break;
        int32_t ids[16];
        for (int i = 0; i < 16; i++) ids[i] = (int32_t)((i * 53 + 5) % 256);
        float *ref = logits_of(m, ids, 16);
        lp_settings *s = settings("rtn bits=%d group=32", b);
        lp_quant_params qp = {.method = s};
        CHECK_OK(lp_model_quantize(m, &qp));
        lp_settings_free(s);
        float *q = logits_of(m, ids, 16);
        double e = rel_err(q, ref, 16 * 256);
        CHECKF(e > prev, "w%d error %.4g not above w%d's %.4g", b, e, b + 1, prev);
        prev = e;
        free(ref);
        free(q);
        lp_model_free(m);
    }
    /* Refusals: bad parameters and quantizing twice. Bits out of range are
     * refused by the settings (the value is not stored), groups by the method's
     * check, which lp_model_quantize runs. */
    lp_model *m = NULL;
    char src[512];
    snprintf(src, sizeof src, "%s", test_data("models/tiny-mistral"));
    CHECK_OK(lp_model_load(src, &m));
    lp_settings *s = NULL, *bad = NULL;
    CHECK_OK(lp_settings_init(lp_method_find("rtn"), &s));
    lp_quant_params qp = {.method = s};
    CHECK(lp_settings_set(s, "bits", "9") == LP_ERR_ARG && strstr(lp_last_error(), "--bits '9'"));
    CHECK(lp_settings_get(s, "bits") == 4);
    CHECK(lp_settings_parse("rtn bits=9", &bad) == LP_ERR_ARG && bad == NULL);
    CHECK_OK(lp_settings_set(s, "group", "48"));
    CHECK(lp_model_quantize(m, &qp) == LP_ERR_ARG && strstr(lp_last_error(), "--group 48"));
    CHECK_OK(lp_settings_set(s, "group", "0"));
    CHECK(lp_model_quantize(m, &qp) == LP_ERR_ARG);
    CHECK(lp_settings_parse("rtn group=48", &bad) == LP_ERR_ARG && bad == NULL);
    CHECK_OK(lp_settings_set(s, "group", "32"));
    CHECK_OK(lp_model_quantize(m, &qp));
    CHECK(lp_model_quantize(m, &qp) == LP_ERR_ARG);
    CHECK(lp_model_save(m, src) == LP_ERR_ARG); /* never over its own source */
    lp_settings_free(s);
    lp_model_free(m);
    TEST_DONE();
}
