/*
 * test_pipeline.c - the block-wise calibration pipeline with GPTQ, end to end
 * on the committed tiny checkpoints:
 *  - GPTQ's quantized model is closer to the original than RTN's at the same
 *    bits and groups (logits on unseen tokens), with and without act-order;
 *  - the same seed gives bit-identical packed weights; the sampler draws
 *    windows from inside the stream and refuses a too-short one;
 *  - every scale is finite and the stats add up;
 *  - calibration that never touches some inputs (dead Hessian columns) still
 *    gives a finite model;
 *  - the pipeline, which keeps each block's intermediate states, produces the
 *    same packed weights as re-running every block from its input for every
 *    stage (GPTQ's llama.py hooks), written out here with lp_block_forward;
 *  - the clipping search and AWQ pre-scaling compose with GPTQ and RTN;
 *  - 16-bit checkpoints stay in their stored form until used: loading
 *    converts no linear, nor the embedding or head, a forward converts each
 *    once (same logits as when all are converted first), and the pipeline
 *    converts only the linear it is compressing, so no f32 copy of an
 *    uncompressed block, the embedding or the head is ever made.
 */
#include "test.h"

#include "core/half.h"
#include "llmpress/quant.h"
#include "model/model_impl.h"
#include "quant/gptq.h"

#include <stdarg.h>

static double logit_err(lp_model *q, const float *ref, const int32_t *ids, int64_t T) {
    const lp_config *c = lp_model_config(q);
    float *out = malloc((size_t)(T * c->vocab) * sizeof(float));
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(q, T, T, &ctx));
    CHECK_OK(lp_forward(ctx, ids, T, out, true));
    double num = 0, den = 0;
    for (int64_t i = 0; i < T * c->vocab; i++) {
        num += ((double)out[i] - ref[i]) * ((double)out[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    lp_ctx_free(ctx);
    free(out);
    return sqrt(num / den);
}

static lp_model *load(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_data("models/"));
    strncat(dir, name, sizeof dir - strlen(dir) - 1);
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(dir, &m));
    return m;
}

/* Settings from a spec such as "gptq bits=4 group=32"; a refused spec fails
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

static void compare(const char *name, int bits, int group, bool act_order) {
    lp_model *m = load(name);
    if (!m) return;
    const lp_config *c = lp_model_config(m);
    /* calibration and evaluation tokens from the same random "language" */
    unsigned long long seed = 99;
    int32_t stream[4096], eval_ids[64];
    for (int i = 0; i < 4096; i++) stream[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)c->vocab);
    for (int i = 0; i < 64; i++) eval_ids[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)c->vocab);
    float *ref = malloc((size_t)(64 * c->vocab) * sizeof(float));
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, 64, 64, &ctx));
    CHECK_OK(lp_forward(ctx, eval_ids, 64, ref, true));
    lp_ctx_free(ctx);

    int32_t *win = NULL;
    CHECK_OK(lp_calib_sample(stream, 4096, 32, 64, 7, &win));
    lp_calib cal = {win, 32, 64};
    lp_quant_stats st;
    lp_settings *gs = settings("gptq bits=%d group=%d%s", bits, group, act_order ? " act-order" : "");
    lp_quant_params p = {.method = gs, .calib = &cal, .stats = &st};
    CHECK_OK(lp_model_quantize(m, &p));
    double e_gptq = logit_err(m, ref, eval_ids, 64);
    CHECK(st.total > 0 && st.forward + st.stats + st.factorize + st.quantize <= st.total * 1.01 + 1e-3);
    CHECK(st.peak_activation_bytes >= (size_t)(32 * 64 * c->dim) * sizeof(float));
    /* every stored scale is finite */
    int bad = 0;
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_qgroup *q = lp_linear_data(&m->layers[l].lin[k], &lp_format_qgroup);
            bad += !q; /* every linear is one qgroup part */
            for (int64_t i = 0; q && i < q->rows * q->ngroups; i++) bad += !isfinite(lp_f16_to_f32(q->scales[i]));
        }
    CHECK(bad == 0);

    /* Same seed, same bits. */
    lp_model *m2 = load(name);
    p.stats = NULL;
    CHECK_OK(lp_model_quantize(m2, &p));
    int same = 1;
    for (int64_t l = 0; l < c->n_layers && m2; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_qgroup *a = lp_linear_data(&m->layers[l].lin[k], &lp_format_qgroup),
                            *b = lp_linear_data(&m2->layers[l].lin[k], &lp_format_qgroup);
            same &= a && b && !memcmp(a->q, b->q, (size_t)(a->rows * a->blocks * a->bits) * 4) &&
                    !memcmp(a->scales, b->scales, (size_t)(a->rows * a->ngroups) * 2);
        }
    CHECK(same);
    lp_model_free(m2);

    lp_model *r = load(name);
    lp_settings *rs = settings("rtn bits=%d group=%d", bits, group);
    lp_quant_params rp = {.method = rs};
    CHECK_OK(lp_model_quantize(r, &rp));
    double e_rtn = logit_err(r, ref, eval_ids, 64);
    CHECKF(e_gptq < e_rtn, "%s w%d g%d%s: GPTQ logits error %.4f not below RTN's %.4f", name, bits, group,
           act_order ? " act-order" : "", e_gptq, e_rtn);
    printf("%-12s w%d g%-3d %-9s logits rel. error: GPTQ %.4f, RTN %.4f\n", name, bits, group,
           act_order ? "act-order" : "", e_gptq, e_rtn);
    lp_model_free(r);
    lp_model_free(m);
    lp_settings_free(gs);
    lp_settings_free(rs);
    free(win);
    free(ref);
}

/* ---- the re-run pipeline, as GPTQ's llama.py drives it ---- */
typedef struct {
    int want;
    float *H;
    int64_t cols, n;
} acc;

static int grab(void *ud, int k, const float *X, int64_t T, int64_t cols) {
    acc *a = ud;
    if (k != a->want) return 0;
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = 0; j < cols; j++) {
            float s = 0; /* float sums in ssyrk's order are not promised: compare loosely below */
            for (int64_t t = 0; t < T; t++) s += X[t * cols + i] * X[t * cols + j];
            a->H[i * cols + j] += s;
        }
    a->n += T;
    return 1;
}

static void rerun_gptq(lp_model *m, const lp_calib *cal, const lp_settings *gptq) {
    const int bits = (int)lp_settings_get(gptq, "bits"), group = (int)lp_settings_get(gptq, "group");
    const int sym = lp_settings_get(gptq, "sym") != 0, act_order = lp_settings_get(gptq, "act-order") != 0;
    static const int capture[4] = {LP_Q, LP_O, LP_GATE, LP_DOWN};
    static const int lins[4][3] = {{LP_K, LP_V, LP_Q}, {LP_O, -1, -1}, {LP_UP, LP_GATE, -1}, {LP_DOWN, -1, -1}};
    const lp_config *c = lp_model_config(m);
    const int64_t N = cal->nsamples, L = cal->seqlen, D = c->dim;
    float *X = malloc((size_t)(N * L * D) * sizeof(float));
    for (int64_t i = 0; i < N; i++) lp_embed_tokens(m, cal->tokens + i * L, L, X + i * L * D);
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, L, L, &ctx));
    for (int64_t b = 0; b < c->n_layers; b++) {
        for (int s = 0; s < 4; s++) {
            const int64_t cols = m->layers[b].lin[lins[s][0]].cols;
            acc a = {capture[s], calloc((size_t)(cols * cols), sizeof(float)), cols, 0};
            const lp_block_hooks hooks = {.capture = grab, .ud = &a};
            for (int64_t i = 0; i < N; i++) CHECK_OK(lp_block_forward(ctx, b, X + i * L * D, L, &hooks));
            for (int64_t i = 0; i < cols * cols; i++) a.H[i] *= 2.0f / (float)a.n;
            for (int k = 0; k < 3 && lins[s][k] >= 0; k++) {
                lp_linear *l = &m->layers[b].lin[lins[s][k]];
                lp_qgroup *q = calloc(1, sizeof *q);
                float *Hc = malloc((size_t)(cols * cols) * sizeof(float));
                memcpy(Hc, a.H, (size_t)(cols * cols) * sizeof(float));
                CHECK_OK(lp_qgroup_init(q, l->rows, l->cols, bits, group, sym));
                lp_gptq_params gp = lp_gptq_default_params();
                gp.act_order = act_order;
                float *W = lp_linear_to_f32(l);
                CHECK_OK(lp_gptq_quantize(W, Hc, &gp, q, NULL));
                lp_linear_set(l, &lp_format_qgroup, q);
                free(W);
                free(Hc);
            }
            free(a.H);
        }
        for (int64_t i = 0; i < N; i++) CHECK_OK(lp_block_forward(ctx, b, X + i * L * D, L, NULL));
    }
    lp_ctx_free(ctx);
    free(X);
}

/* The staged pipeline equals the re-run one: the Hessians agree to rounding
 * (the test sums in a different order), so allow a very few codes to differ. */
static void staged_vs_rerun(const char *name, int bits, int group) {
    lp_model *a = load(name), *b = load(name);
    const lp_config *c = lp_model_config(a);
    unsigned long long seed = 5;
    int32_t stream[2048];
    for (int i = 0; i < 2048; i++) stream[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)c->vocab);
    int32_t *win = NULL;
    CHECK_OK(lp_calib_sample(stream, 2048, 8, 48, 3, &win));
    lp_calib cal = {win, 8, 48};
    lp_settings *gs = settings("gptq bits=%d group=%d", bits, group);
    lp_quant_params p = {.method = gs, .calib = &cal};
    CHECK_OK(lp_model_quantize(a, &p));
    if (gs) rerun_gptq(b, &cal, gs);
    int64_t diff = 0, total = 0;
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_qgroup *qa = lp_linear_data(&a->layers[l].lin[k], &lp_format_qgroup),
                            *qb = lp_linear_data(&b->layers[l].lin[k], &lp_format_qgroup);
            CHECK(qa && qb);
            for (int64_t r = 0; qa && qb && r < qa->rows; r++)
                for (int64_t j = 0; j < qa->cols; j++) {
                    diff += lp_qgroup_get(qa, r, j) != lp_qgroup_get(qb, r, j);
                    total++;
                }
        }
    CHECKF(diff <= total / 1000, "%s: %lld of %lld codes differ between the staged and re-run pipelines", name,
           (long long)diff, (long long)total);
    printf("%-12s staged vs re-run pipeline: %lld of %lld codes differ\n", name, (long long)diff, (long long)total);
    free(win);
    lp_settings_free(gs);
    lp_model_free(a);
    lp_model_free(b);
}

/* Clipping and AWQ pre-scaling compose: the model stays finite and closer to
 * the original than plain RTN. */
static void compose(const char *name) {
    lp_model *m = load(name);
    const lp_config *c = lp_model_config(m);
    unsigned long long seed = 11;
    int32_t stream[4096], ids[64];
    for (int i = 0; i < 4096; i++) stream[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)c->vocab);
    for (int i = 0; i < 64; i++) ids[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)c->vocab);
    float *ref = malloc((size_t)(64 * c->vocab) * sizeof(float));
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, 64, 64, &ctx));
    CHECK_OK(lp_forward(ctx, ids, 64, ref, true));
    lp_ctx_free(ctx);
    lp_model_free(m);
    int32_t *win = NULL;
    CHECK_OK(lp_calib_sample(stream, 4096, 16, 64, 2, &win));
    lp_calib cal = {win, 16, 64};
    double err[4];
    for (int v = 0; v < 4; v++) {
        m = load(name);
        static const char *const spec[4] = {"rtn bits=3 group=32", "rtn bits=3 group=32 clip",
                                            "gptq bits=3 group=32 clip", "gptq bits=3 group=32"};
        lp_settings *ms = settings("%s", spec[v]), *pre = v == 3 ? settings("awq bits=3 group=32") : NULL;
        lp_quant_params p = {.method = ms, .prescale = pre};
        if (v >= 1) p.calib = &cal;
        CHECK_OK(lp_model_quantize(m, &p));
        err[v] = logit_err(m, ref, ids, 64);
        lp_model_free(m);
        lp_settings_free(ms);
        lp_settings_free(pre);
    }
    printf("%-12s w3 g32 logits rel. error: RTN %.4f, RTN+clip %.4f, GPTQ+clip %.4f, AWQ+GPTQ %.4f\n", name, err[0],
           err[1], err[2], err[3]);
    CHECK(err[1] < err[0] && err[2] < err[0] && err[3] < err[0]);
    free(win);
    free(ref);
}

/* Progress hook: the most dense linears ever held in f32 at once. */
static int g_max_converted;
static void count_converted(void *ud, int64_t layer, int64_t n_layers, const char *lin, double err) {
    (void)layer, (void)n_layers, (void)lin, (void)err;
    const lp_model *m = ud;
    int n = 0;
    for (int64_t l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_dense *d = lp_linear_data(&m->layers[l].lin[k], &lp_format_dense);
            n += d && d->w;
        }
    g_max_converted = n > g_max_converted ? n : g_max_converted;
}

/* Dense bf16/f16 linears are converted on first use, one at a time. */
static void lazy_weights(const char *name) {
    lp_model *m = load(name), *e = load(name);
    if (!m || !e) return;
    const lp_config cfg = *lp_model_config(m), *c = &cfg; /* outlives m */
    int lazy = 0;
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_dense *d = lp_linear_data(&m->layers[l].lin[k], &lp_format_dense);
            lazy += d && !d->w && d->raw;
        }
    CHECKF(lazy == 7 * c->n_layers, "%s: %d of %lld linears held in their stored form after loading", name, lazy,
           (long long)(7 * c->n_layers));
    const lp_dense *head = lp_linear_data(&m->head, &lp_format_dense);
    CHECKF(!m->embed && m->embed_raw && head && !head->w, "%s: the embedding or head was converted at load", name);
    int converted = 0;
    for (int64_t l = 0; l < c->n_layers; l++) /* e: everything converted up front */
        for (int k = 0; k < LP_NLIN; k++) {
            lp_dense *d = lp_linear_data(&e->layers[l].lin[k], &lp_format_dense);
            CHECK(d != NULL);
            if (d) CHECK_OK(lp_dense_materialize(d));
            converted += d && d->w;
        }
    CHECK(converted == 7 * c->n_layers);
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 31 + 5) % c->vocab);
    float *a = malloc((size_t)(24 * c->vocab) * sizeof(float)), *b = malloc((size_t)(24 * c->vocab) * sizeof(float));
    lp_ctx *ca = NULL, *cb = NULL;
    CHECK_OK(lp_ctx_init(m, 24, 24, &ca));
    CHECK_OK(lp_ctx_init(e, 24, 24, &cb));
    if (ca && cb) {
        CHECK_OK(lp_forward(ca, ids, 24, a, true));
        CHECK_OK(lp_forward(cb, ids, 24, b, true));
        /* the stored form runs through dense16's kernels, the converted one
         * through BLAS: the same products to rounding */
        double num = 0, den = 0;
        for (int64_t i = 0; i < 24 * c->vocab; i++) {
            num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            den += (double)b[i] * b[i];
        }
        CHECKF(sqrt(num / den) < 1e-5, "%s: lazy vs converted logits differ by %.3g (relative)", name, sqrt(num / den));
        /* and running the model converted nothing: no f32 copy of a 16-bit weight */
        int still = 0;
        for (int64_t l = 0; l < c->n_layers; l++)
            for (int k = 0; k < LP_NLIN; k++) {
                const lp_dense *d = lp_linear_data(&m->layers[l].lin[k], &lp_format_dense);
                still += d && !d->w;
            }
        CHECKF(still == 7 * c->n_layers && !head->w, "%s: %d of %lld linears still in their stored form after a forward",
               name, still, (long long)(7 * c->n_layers));
    }
    lp_ctx_free(ca);
    lp_ctx_free(cb);
    free(a);
    free(b);
    lp_model_free(e);
    lp_model_free(m);

    /* During the pipeline, no uncompressed linear is ever held in f32
     * (GPTQ converts a temporary copy of the one it compresses). */
    m = load(name);
    g_max_converted = 0;
    int32_t stream[2048], *win = NULL;
    for (int i = 0; i < 2048; i++) stream[i] = (int32_t)((i * 7919u) % (unsigned)c->vocab);
    CHECK_OK(lp_calib_sample(stream, 2048, 4, 32, 3, &win));
    lp_calib cal = {win, 4, 32};
    lp_settings *gs = settings("gptq group=32");
    lp_quant_params p = {.method = gs, .calib = &cal, .progress = count_converted, .progress_ud = m};
    CHECK_OK(lp_model_quantize(m, &p));
    CHECKF(g_max_converted == 0, "%s: %d uncompressed linears were held in f32 during the pipeline", name,
           g_max_converted);
    head = lp_linear_data(&m->head, &lp_format_dense);
    CHECKF(!m->embed && head && !head->w, "%s: the pipeline converted the embedding or the head to f32", name);
    lp_settings_free(gs);
    free(win);
    lp_model_free(m);
}

int main(void) {
    staged_vs_rerun("tiny-llama3", 4, 32);
    staged_vs_rerun("tiny-qwen2", 3, -1);
    compose("tiny-llama3");
    lazy_weights("tiny-qwen2");   /* bf16 */
    lazy_weights("tiny-mistral"); /* f16 */

    compare("tiny-llama3", 4, 32, false);
    compare("tiny-llama3", 3, 32, true);
    compare("tiny-qwen2", 3, -1, false);
    compare("tiny-mistral", 2, 32, false);

    /* Windows come from inside the stream; a too-short stream is refused. */
    int32_t stream[100];
    for (int i = 0; i < 100; i++) stream[i] = i;
    int32_t *w = NULL;
    CHECK_OK(lp_calib_sample(stream, 100, 50, 10, 1, &w));
    for (int i = 0; w && i < 50; i++) {
        CHECK(w[i * 10] >= 0 && w[i * 10] + 9 < 100);
        for (int j = 1; j < 10; j++) CHECK(w[i * 10 + j] == w[i * 10] + j);
    }
    free(w);
    CHECK(lp_calib_sample(stream, 100, 4, 100, 1, &w) == LP_ERR_ARG && strstr(lp_last_error(), "too short"));

    /* Dead inputs: calibration on a single repeated token gives singular
     * Hessians; every calibrated path must still give a finite model
     * (lp_model_quantize scans it before returning). */
    lp_model *m = NULL;
    int32_t one[64];
    for (int i = 0; i < 64; i++) one[i] = 5;
    lp_calib cal = {one, 2, 32};
    static const char *const dead[4] = {"gptq group=32", "rtn group=32 clip", "awq group=32",
                                        "gptq group=32 clip act-order"};
    for (int v = 0; v < 4; v++) {
        m = load("tiny-mistral");
        lp_settings *s = settings("%s", dead[v]);
        lp_quant_params p = {.method = s, .calib = &cal};
        lp_status st = lp_model_quantize(m, &p);
        CHECKF(st == LP_OK, "dead inputs, variant %d: %s", v, lp_last_error());
        lp_model_free(m);
        lp_settings_free(s);
    }

    /* GPTQ without calibration data is an argument error. */
    m = load("tiny-mistral");
    lp_settings *gs = settings("gptq");
    lp_quant_params p = {.method = gs};
    CHECK(lp_model_quantize(m, &p) == LP_ERR_ARG && strstr(lp_last_error(), "needs calibration"));
    lp_settings_free(gs);
    lp_model_free(m);
    TEST_DONE();
}
