/*
 * test_awq.c - AWQ (src/quant/awq.c):
 *  - AWQ's quantizer against a plain rewrite of llm-awq's pseudo_quantize_tensor
 *    (scale rounded to f16 first, our documented deviation), asymmetric and
 *    symmetric; the packed form dequantizes to the same values; the range is not
 *    widened to hold 0, unlike GPTQ's quantizer;
 *  - auto_clip never makes a group's output error worse than not clipping (errors
 *    recomputed here, in double, from the returned ranges), and does clip groups
 *    with outliers;
 *  - scale search + folding alone leaves the f32 model's logits unchanged, on the
 *    committed tiny checkpoints and on a random multi-head (not GQA) checkpoint
 *    written here, where the v -> o group is searched too; each block passes on
 *    its ORIGINAL f32 output (run_awq's propagation);
 *  - AWQ with scaling and clipping off is plain rounding with AWQ's quantizer;
 *    full AWQ at 3 bits is closer to the original logits than RTN;
 *  - parameter checks.
 */
#include "test.h"

#include "core/half.h"
#include "io/safetensors.h"
#include "llmpress/quant.h"
#include "model/model_impl.h"
#include "quant/awq.h"
#include "quant/method.h"
#include "quant/rtn.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the quantizer ---- */

/* quantizer.py pseudo_quantize_tensor for one group, written out plainly. */
static void ref_pseudo_quant(const float *x, int n, int bits, int sym, float *out) {
    float mx = x[0], mn = x[0];
    for (int i = 1; i < n; i++) {
        mx = fmaxf(mx, x[i]);
        mn = fminf(mn, x[i]);
    }
    float scale, zero;
    int min_int, max_int;
    if (!sym) {
        max_int = (1 << bits) - 1;
        min_int = 0;
        scale = fmaxf(mx - mn, 1e-5f) / (float)max_int;
    } else {
        float amax = fmaxf(fabsf(mx), fabsf(mn));
        max_int = (1 << (bits - 1)) - 1;
        min_int = -(1 << (bits - 1));
        scale = fmaxf(amax, 1e-5f) / (float)max_int;
    }
    uint16_t h = lp_f32_to_f16(scale); /* llmpress stores f16 scales */
    scale = lp_f16_to_f32(h ? h : 1);
    zero = sym ? 0.0f : fminf(fmaxf(-rintf(mn / scale), (float)min_int), (float)max_int);
    for (int i = 0; i < n; i++) {
        float q = fminf(fmaxf(rintf(x[i] / scale) + zero, (float)min_int), (float)max_int);
        out[i] = (q - zero) * scale;
    }
}

static void test_quantizer(void) {
    unsigned long long seed = 5;
    const int rows = 9, cols = 320; /* groups of 64 and 128 (the last one 64 wide) */
    float *W = malloc(sizeof(float) * rows * cols), *A = malloc(sizeof(float) * rows * cols);
    float *B = malloc(sizeof(float) * rows * cols), *R = malloc(sizeof(float) * cols);
    for (int i = 0; i < rows * cols; i++) W[i] = 0.05f * test_randn(&seed);
    for (int c = 0; c < cols; c++) W[1 * cols + c] = 1.0f + 0.5f * fabsf(W[1 * cols + c]); /* all positive */
    for (int c = 0; c < cols; c++) W[2 * cols + c] = -3.0f - fabsf(W[2 * cols + c]);      /* all negative */
    for (int c = 0; c < cols; c++) W[3 * cols + c] = 0.25f;                                /* constant */
    for (int c = 0; c < cols; c++) W[4 * cols + c] = 1e-7f * (float)(c % 3);               /* range < 1e-5 */
    for (int c = 0; c < cols; c += 7) W[5 * cols + c] *= 40.0f;                            /* outliers */
    int gsizes[3] = {64, 128, -1};
    for (int bits = 2; bits <= 8; bits++)
        for (int sym = 0; sym <= 1; sym++)
            for (int gi = 0; gi < 3; gi++) {
                const int g = gsizes[gi], gs = g < 0 ? cols : g;
                CHECK_OK(lp_awq_fake_quant(W, rows, cols, bits, g, sym, A));
                int mism = 0, mism_packed = 0;
                for (int r = 0; r < rows; r++) {
                    for (int c0 = 0; c0 < cols; c0 += gs) {
                        int n = c0 + gs < cols ? gs : cols - c0;
                        ref_pseudo_quant(W + r * cols + c0, n, bits, sym, R + c0);
                    }
                    for (int c = 0; c < cols; c++) mism += A[r * cols + c] != R[c];
                }
                lp_qgroup q = {0};
                CHECK_OK(lp_qgroup_init(&q, rows, cols, bits, g, sym));
                CHECK_OK(lp_awq_quantize(W, &q));
                lp_qgroup_dequant(&q, 0, rows, B);
                for (int i = 0; i < rows * cols; i++) mism_packed += A[i] != B[i];
                lp_qgroup_free(&q);
                CHECKF(mism == 0 && mism_packed == 0, "bits %d sym %d group %d: %d values differ from the "
                       "plain rewrite, %d from the packed form", bits, sym, g, mism, mism_packed);
            }
    /* in place */
    memcpy(B, W, sizeof(float) * rows * cols);
    CHECK_OK(lp_awq_fake_quant(B, rows, cols, 3, 64, 0, B));
    CHECK_OK(lp_awq_fake_quant(W, rows, cols, 3, 64, 0, A));
    CHECK(memcmp(A, B, sizeof(float) * rows * cols) == 0);

    /* A group in [1, 1.5]: AWQ's grid spans [min, max], GPTQ's [0, max]. */
    float s1, s2;
    int z1, z2;
    CHECK_OK(lp_awq_qparams(W + cols, 64, 3, 0, &s1, &z1));
    CHECK_OK(lp_qparams_minmax(W + cols, 64, 3, 0, &s2, &z2));
    CHECK(s1 < 0.5f * s2 && z1 == 0 && z2 == 0);
    /* zero is clamped into [0, maxq] for an all-negative group */
    CHECK_OK(lp_awq_qparams(W + 2 * cols, 64, 3, 0, &s1, &z1));
    CHECK(z1 == 7);

    /* non-finite input is an error naming the value, not a crash */
    W[0] = NAN;
    CHECK(lp_awq_fake_quant(W, rows, cols, 4, 64, 0, A) == LP_ERR_NUMERIC);
    CHECK(strstr(lp_last_error(), "row 0") != NULL);
    lp_qgroup q = {0};
    CHECK_OK(lp_qgroup_init(&q, rows, cols, 4, 64, 0));
    CHECK(lp_awq_quantize(W, &q) == LP_ERR_NUMERIC);
    lp_qgroup_free(&q);
    W[0] = 1e6f; /* a scale beyond f16 at 3 bits... */
    W[1] = -1e6f;
    CHECK(lp_awq_fake_quant(W, rows, cols, 3, 64, 0, A) == LP_ERR_NUMERIC);
    CHECK(strstr(lp_last_error(), "f16") != NULL);
    free(W);
    free(A);
    free(B);
    free(R);
}

/* ---- auto_clip ---- */

/* mean_t (x_t[g] . (Q(clamp(w[g], -m, m)) - w[g]))^2 in double, one (row, group). */
static double clip_err(const float *w, const float *X, int n, int cols, int c0, int gs, float m, int bits) {
    float *cl = malloc(sizeof(float) * gs), *q = malloc(sizeof(float) * gs);
    for (int j = 0; j < gs; j++) cl[j] = fminf(fmaxf(w[c0 + j], -m), m);
    ref_pseudo_quant(cl, gs, bits, 0, q);
    double e = 0;
    for (int t = 0; t < n; t++) {
        double y = 0;
        for (int j = 0; j < gs; j++) y += (double)X[t * cols + c0 + j] * ((double)q[j] - w[c0 + j]);
        e += y * y;
    }
    free(cl);
    free(q);
    return e / n;
}

static void test_clip(void) {
    unsigned long long seed = 11;
    const int rows = 48, cols = 256, n = 300, gs = 64, G = cols / gs;
    float *W = malloc(sizeof(float) * rows * cols), *X = malloc(sizeof(float) * n * cols);
    for (int i = 0; i < rows * cols; i++) W[i] = 0.02f * test_randn(&seed);
    for (int r = 0; r < rows; r++) W[r * cols + (r * 37) % cols] += 0.3f * test_randn(&seed); /* outliers */
    for (int i = 0; i < n * cols; i++) X[i] = test_randn(&seed) * (i % cols < 8 ? 10.0f : 1.0f);
    for (int bits = 2; bits <= 4; bits++) {
        float *mv = malloc(sizeof(float) * rows * G);
        double *err = malloc(sizeof(double) * rows * G), *err0 = malloc(sizeof(double) * rows * G);
        CHECK_OK(lp_awq_clip_search(W, rows, cols, X, n, bits, gs, 0, 20, 0.5, mv, err, err0));
        int worse = 0, clipped = 0, off_grid = 0;
        double worst = 0;
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < G; g++) {
                float org = 0;
                for (int j = 0; j < gs; j++) org = fmaxf(org, fabsf(W[r * cols + g * gs + j]));
                double e_none = clip_err(W + r * cols, X, n, cols, g * gs, gs, org, bits);
                double e_best = clip_err(W + r * cols, X, n, cols, g * gs, gs, mv[r * G + g], bits);
                if (e_best > e_none * (1 + 1e-5)) worse++;
                worst = fmax(worst, fabs(err[r * G + g] - e_best) / fmax(e_best, 1e-30));
                worst = fmax(worst, fabs(err0[r * G + g] - e_none) / fmax(e_none, 1e-30));
                clipped += mv[r * G + g] < org;
                int on = 0; /* the range is org * (1 - i/20) for some i < 10, in f32 */
                for (int i = 0; i < 10; i++) on |= mv[r * G + g] == org * (float)(1.0 - i / 20.0);
                off_grid += !on;
            }
        CHECKF(worse == 0, "bits %d: %d groups clipped to a larger error than no clipping", bits, worse);
        CHECKF(worst < 1e-3, "bits %d: reported errors differ from recomputed ones by %g", bits, worst);
        CHECKF(clipped > 0, "bits %d: no group was clipped", bits);
        CHECKF(off_grid == 0, "bits %d: %d ranges off the grid", bits, off_grid);
        free(mv);
        free(err);
        free(err0);
    }
    /* max_shrink 0: nothing is clipped */
    float *mv = malloc(sizeof(float) * rows * G);
    CHECK_OK(lp_awq_clip_search(W, rows, cols, X, n, 3, gs, 0, 20, 0.0, mv, NULL, NULL));
    int clipped = 0;
    for (int r = 0; r < rows; r++)
        for (int g = 0; g < G; g++) {
            float org = 0;
            for (int j = 0; j < gs; j++) org = fmaxf(org, fabsf(W[r * cols + g * gs + j]));
            clipped += mv[r * G + g] != org;
        }
    CHECK(clipped == 0);
    free(mv);
    free(W);
    free(X);
}

/* ---- models ---- */

/* Settings from a spec such as "awq bits=3 group=32"; a refused spec fails
 * the test (and leaves NULL, which lp_model_quantize refuses too). */
static lp_settings *settings(const char *spec) {
    lp_settings *s = NULL;
    CHECKF(lp_settings_parse(spec, &s) == LP_OK, "settings \"%s\": %s", spec, lp_last_error());
    return s;
}

static lp_model *load_dir(const char *dir) {
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(dir, &m));
    return m;
}

static lp_model *load(const char *name) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s%s", test_data("models/"), name);
    return load_dir(dir);
}

/* A random multi-head (KV = H) Llama checkpoint, so that v and o have one shape,
 * with a few loud channels in the norms so the scales have something to find. */
static void write_mha_model(const char *dir) {
    const int64_t V = 128, D = 64, F = 128, NL = 2;
    CHECK(mkdir(dir, 0755) == 0);
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_act\": \"silu\", "
               "\"hidden_size\": %lld, \"intermediate_size\": %lld, \"num_attention_heads\": 4, "
               "\"num_key_value_heads\": 4, \"num_hidden_layers\": %lld, \"vocab_size\": %lld, "
               "\"max_position_embeddings\": 256, \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
               "\"tie_word_embeddings\": false, \"torch_dtype\": \"float32\", \"bos_token_id\": 1, "
               "\"eos_token_id\": 2}\n", (long long)D, (long long)F, (long long)NL, (long long)V);
    fclose(f);
    lp_st_writer *w = NULL;
    CHECK_OK(lp_st_writer_init(&w));
    if (!w) return;
    unsigned long long seed = 2024;
    float *bufs[64];
    int nb = 0;
    char name[128];
#define ADD(nm, r, c, sd)                                                                      \
    do {                                                                                       \
        int64_t sh[2] = {(r), (c)};                                                            \
        float *p = bufs[nb++] = malloc(sizeof(float) * (size_t)((r) * (c)));                   \
        for (int64_t i = 0; i < (r) * (c); i++) p[i] = (sd) * test_randn(&seed);               \
        CHECK_OK(lp_st_writer_add(w, nm, LP_DT_F32, (c) == 1 ? 1 : 2, sh, p));                 \
    } while (0)
#define ADD_NORM(nm)                                                                           \
    do {                                                                                       \
        int64_t sh[1] = {D};                                                                   \
        float *p = bufs[nb++] = malloc(sizeof(float) * (size_t)D);                             \
        for (int64_t i = 0; i < D; i++) p[i] = 1.0f + 0.2f * test_randn(&seed) + (i % 13 == 0 ? 6.0f : 0.0f); \
        CHECK_OK(lp_st_writer_add(w, nm, LP_DT_F32, 1, sh, p));                                \
    } while (0)
    ADD("model.embed_tokens.weight", V, D, 1.0f);
    ADD_NORM("model.norm.weight");
    ADD("lm_head.weight", V, D, 0.125f);
    for (int64_t l = 0; l < NL; l++) {
        snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)l);
        ADD_NORM(name);
        snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight", (long long)l);
        ADD_NORM(name);
        const char *lin[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                              "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
        const int64_t rows[7] = {D, D, D, D, F, F, D}, cols[7] = {D, D, D, D, D, D, F};
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "model.layers.%lld.%s.weight", (long long)l, lin[k]);
            ADD(name, rows[k], cols[k], 1.0f / sqrtf((float)cols[k]));
        }
    }
#undef ADD
#undef ADD_NORM
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(lp_st_writer_save(w, path));
    lp_st_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
}

/* Remove the plain files in dir, then dir. */
static void remove_files(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[700];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static void logits(lp_model *m, const int32_t *ids, int64_t T, float *out) {
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, T, T, &ctx));
    if (ctx) CHECK_OK(lp_forward(ctx, ids, T, out, true));
    lp_ctx_free(ctx);
}

static double rel_diff(const float *a, const float *ref, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num / den);
}

enum { NCAL = 8, LCAL = 64, TEVAL = 64 };

/* Random calibration windows and evaluation tokens from one random "language". */
static void draw_tokens(int64_t vocab, int32_t *cal, int32_t *eval) {
    unsigned long long seed = 99;
    for (int i = 0; i < NCAL * LCAL; i++) cal[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)vocab);
    for (int i = 0; i < TEVAL; i++) eval[i] = (int32_t)(test_rand_u64(&seed) % (uint64_t)vocab);
}

/* Scale search + folding only, block by block as the pipeline drives it: the
 * logits stay, the scales moved something, and each block passes on its
 * original output (orig: a second, untouched copy of the model). */
static void fold_only(const char *what, lp_model *m, lp_model *orig, bool expect_o_group) {
    const lp_config *c = lp_model_config(m);
    const int64_t D = c->dim;
    int32_t cal[NCAL * LCAL], ev[TEVAL];
    draw_tokens(c->vocab, cal, ev);
    const size_t nlog = sizeof(float) * TEVAL * (size_t)c->vocab;
    float *ref = malloc(nlog), *got = malloc(nlog);
    logits(m, ev, TEVAL, ref);

    float *X = malloc(sizeof(float) * NCAL * LCAL * (size_t)D), *Y = malloc(sizeof(float) * NCAL * LCAL * (size_t)D);
    for (int i = 0; i < NCAL; i++) {
        lp_embed_tokens(m, cal + i * LCAL, LCAL, X + i * LCAL * D);
        lp_embed_tokens(orig, cal + i * LCAL, LCAL, Y + i * LCAL * D);
    }
    lp_ctx *ctx = NULL, *octx = NULL;
    CHECK_OK(lp_ctx_init(m, LCAL, LCAL, &ctx));
    CHECK_OK(lp_ctx_init(orig, LCAL, LCAL, &octx));
    /* AWQ converts a block's 16-bit weights to f32 for its search and runs the
     * block with them; the copy must make the same products (BLAS on f32),
     * not dense16's kernels on the stored form */
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            lp_dense *d = lp_linear_data(&orig->layers[l].lin[k], &lp_format_dense);
            if (d && !d->w) CHECK_OK(lp_dense_materialize(d));
        }
    lp_settings *s = settings("awq bits=3 group=32 awq-no-clip");
    const lp_awq_settings *p = s ? lp_settings_data(s) : NULL;
    CHECK(p && p->bits == 3 && p->group == 32 && !p->no_scale && p->no_clip);
    lp_quant_stats st = {0};
    int64_t mismatched = 0;
    for (int64_t b = 0; p && ctx && octx && b < c->n_layers; b++) {
        CHECK_OK(lp_awq_block(m, ctx, b, X, NCAL, LCAL, p, false, NULL, &st));
        for (int i = 0; i < NCAL; i++) CHECK_OK(lp_block_forward(octx, b, Y + i * LCAL * D, LCAL, NULL));
        for (int64_t i = 0; i < NCAL * LCAL * D; i++) mismatched += X[i] != Y[i];
    }
    CHECKF(mismatched == 0, "%s: %lld activations passed on differ from the original block outputs", what,
           (long long)mismatched);
    CHECK(st.scale_search > 0 && st.clip_search < 0.05 && st.peak_activation_bytes > 0);

    /* the folding did something: norms, and (multi-head only) o's columns */
    int64_t norms_moved = 0, o_moved = 0, still_dense = 0;
    for (int64_t b = 0; b < c->n_layers; b++) {
        const lp_layer *L = &m->layers[b], *O = &orig->layers[b];
        for (int64_t i = 0; i < D; i++) {
            norms_moved += fabsf(L->attn_norm[i] - O->attn_norm[i]) > 1e-3f * fabsf(O->attn_norm[i]);
            norms_moved += fabsf(L->ffn_norm[i] - O->ffn_norm[i]) > 1e-3f * fabsf(O->ffn_norm[i]);
        }
        /* o's columns are scaled by the v -> o group alone (no clipping here) */
        const lp_linear *o = &L->lin[LP_O], *oo = &O->lin[LP_O];
        float *ow = lp_linear_to_f32(o), *oow = lp_linear_to_f32(oo);
        CHECK(ow && oow);
        for (int64_t i = 0; ow && oow && i < o->rows * o->cols; i++) o_moved += ow[i] != oow[i];
        free(ow);
        free(oow);
        for (int k = 0; k < LP_NLIN; k++) still_dense += lp_linear_is(&L->lin[k], &lp_format_dense);
    }
    CHECKF(norms_moved > 0, "%s: no norm weight was rescaled", what);
    CHECKF(expect_o_group ? o_moved > 0 : o_moved == 0, "%s: o changed in %lld places (v -> o group %s)", what,
           (long long)o_moved, expect_o_group ? "expected" : "not expected");
    CHECK(still_dense == c->n_layers * LP_NLIN);

    logits(m, ev, TEVAL, got);
    double e = rel_diff(got, ref, TEVAL * c->vocab);
    CHECKF(e < 2e-5, "%s: folding changed the logits by %g (relative)", what, e);
    printf("%s: %lld norm weights rescaled, logits after folding differ by %.2e\n", what, (long long)norms_moved, e);
    lp_ctx_free(ctx);
    lp_ctx_free(octx);
    lp_settings_free(s);
    free(X);
    free(Y);
    free(ref);
    free(got);
}

static void test_folding(const char *name) {
    lp_model *m = load(name), *orig = load(name);
    if (m && orig) fold_only(name, m, orig, false);
    lp_model_free(m);
    lp_model_free(orig);
}

static void test_folding_mha(void) {
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/lp_test_awq_mha.%d", (int)getpid());
    write_mha_model(dir);
    lp_model *m = load_dir(dir), *orig = load_dir(dir);
    if (m && orig) fold_only("random multi-head model", m, orig, true);

    /* and a full AWQ run on it: quantized, saved and reloaded to the same logits */
    if (m && orig) {
        lp_model_free(m);
        m = load_dir(dir);
        const lp_config *c = lp_model_config(m);
        int32_t cal[NCAL * LCAL], ev[TEVAL];
        draw_tokens(c->vocab, cal, ev);
        lp_calib calib = {cal, NCAL, LCAL};
        lp_settings *s = settings("awq bits=4 group=32");
        lp_quant_params p = {.method = s, .calib = &calib};
        CHECK_OK(lp_model_quantize(m, &p));
        lp_settings_free(s);
        char out[300];
        snprintf(out, sizeof out, "%s/q", dir);
        CHECK_OK(lp_model_save(m, out));
        lp_model *back = load_dir(out);
        const size_t nlog = sizeof(float) * TEVAL * (size_t)c->vocab;
        float *a = malloc(nlog), *b = malloc(nlog);
        if (back) {
            logits(m, ev, TEVAL, a);
            logits(back, ev, TEVAL, b);
            CHECK(memcmp(a, b, nlog) == 0);
        }
        lp_model_free(back);
        free(a);
        free(b);
        remove_files(out);
    }
    lp_model_free(m);
    lp_model_free(orig);
    remove_files(dir);
}

/* ---- whole-model runs ---- */

static double quantized_err(const char *name, lp_quant_params p, const float *ref, const int32_t *ev,
                            const int32_t *cal, lp_model **keep) {
    lp_model *m = load(name);
    if (!m) return NAN;
    const lp_config *c = lp_model_config(m);
    lp_calib calib = {cal, NCAL, LCAL};
    p.calib = &calib;
    CHECK_OK(lp_model_quantize(m, &p));
    float *got = malloc(sizeof(float) * TEVAL * (size_t)c->vocab);
    logits(m, ev, TEVAL, got);
    double e = rel_diff(got, ref, TEVAL * c->vocab);
    free(got);
    if (keep) *keep = m;
    else lp_model_free(m);
    return e;
}

static double test_vs_rtn(const char *name) {
    lp_model *m = load(name);
    if (!m) return 0;
    const lp_config *c = lp_model_config(m);
    int32_t cal[NCAL * LCAL], ev[TEVAL];
    draw_tokens(c->vocab, cal, ev);
    float *ref = malloc(sizeof(float) * TEVAL * (size_t)c->vocab);
    logits(m, ev, TEVAL, ref);

    lp_settings *rtn = settings("rtn bits=3 group=32"), *awq = settings("awq bits=3 group=32"),
                *scale_only = settings("awq bits=3 group=32 awq-no-clip"),
                *clip_only = settings("awq bits=3 group=32 awq-no-scale"),
                *neither = settings("awq bits=3 group=32 awq-no-scale awq-no-clip");
    lp_quant_params p = {.method = rtn};
    double e_rtn = quantized_err(name, p, ref, ev, cal, NULL);
    p.method = awq;
    lp_quant_stats st = {0};
    p.stats = &st;
    double e_awq = quantized_err(name, p, ref, ev, cal, NULL);
    CHECK(st.total > 0 &&
          st.forward + st.stats + st.scale_search + st.clip_search + st.quantize <= st.total * 1.01 + 1e-3);
    p.stats = NULL;
    p.method = scale_only;
    double e_scale = quantized_err(name, p, ref, ev, cal, NULL);
    p.method = clip_only;
    double e_clip = quantized_err(name, p, ref, ev, cal, NULL);

    /* scaling and clipping off: every linear is AWQ's quantizer applied to the original weight */
    p.method = neither;
    lp_model *plain = NULL;
    double e_plain = quantized_err(name, p, ref, ev, cal, &plain);
    int64_t differ = 0;
    for (int64_t l = 0; plain && l < c->n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_linear *orig = &m->layers[l].lin[k];
            const lp_qgroup *q = lp_linear_data(&plain->layers[l].lin[k], &lp_format_qgroup);
            float *W = lp_linear_to_f32(orig);
            if (!q || !W) {
                CHECKF(q && W, "%s: layer %lld linear %d: not one qgroup part, or out of memory", name,
                       (long long)l, k);
                differ++;
                free(W);
                continue;
            }
            lp_qgroup mine = {0};
            CHECK_OK(lp_qgroup_init(&mine, orig->rows, orig->cols, 3, 32, 0));
            CHECK_OK(lp_awq_quantize(W, &mine));
            size_t qb, sb, zb;
            lp_qgroup_sizes(orig->rows, orig->cols, 3, 32, 0, &qb, &sb, &zb);
            differ += memcmp(mine.q, q->q, qb) != 0 || memcmp(mine.scales, q->scales, sb) != 0 ||
                      memcmp(mine.zeros, q->zeros, zb) != 0;
            lp_qgroup_free(&mine);
            free(W);
        }
    CHECKF(differ == 0, "%s: %lld linears differ from plain rounding with scaling and clipping off", name,
           (long long)differ);
    lp_model_free(plain);

    printf("%s w3 g32, relative logit error: rtn %.4f  awq-quantizer rtn %.4f  awq scale only %.4f  "
           "clip only %.4f  awq %.4f\n", name, e_rtn, e_plain, e_scale, e_clip, e_awq);
    CHECKF(e_awq < e_rtn && e_awq < e_plain, "%s: AWQ %.4f is not better than RTN %.4f / %.4f", name, e_awq,
           e_rtn, e_plain);
    /* r = 0 (plain rounding) is always a candidate, but picked on calibration data: allow noise */
    CHECKF(e_scale < e_plain * 1.001, "%s: scaling alone %.4f is worse than plain rounding %.4f", name, e_scale,
           e_plain);
    free(ref);
    lp_model_free(m);
    lp_settings_free(rtn);
    lp_settings_free(awq);
    lp_settings_free(scale_only);
    lp_settings_free(clip_only);
    lp_settings_free(neither);
    return e_plain - e_scale;
}

static void test_params(void) {
    lp_settings *s = NULL;
    CHECK_OK(lp_settings_init(lp_method_find("awq"), &s));
    if (!s) return;
    lp_quant_params p = {.method = s};
    CHECK_OK(lp_quant_params_check(&p));
    const lp_awq_settings *a = lp_settings_data(s);
    CHECK(a->bits == 4 && a->group == 128 && !a->sym && !a->no_scale && !a->no_clip && a->grid == 20 &&
          a->max_shrink == 0.5 && a->clip_tokens == 512 && a->search_samples == 0);
    /* out-of-range values are refused by the schema and not stored */
    CHECK(lp_settings_set(s, "awq-grid", "0") == LP_ERR_ARG && strstr(lp_last_error(), "--awq-grid '0'"));
    CHECK(lp_settings_set(s, "awq-max-shrink", "1.0") == LP_ERR_ARG);
    CHECK(lp_settings_set(s, "awq-clip-tokens", "0") == LP_ERR_ARG);
    CHECK(a->grid == 20 && a->max_shrink == 0.5 && a->clip_tokens == 512);
    CHECK_OK(lp_quant_params_check(&p));
    lp_settings *bad = NULL;
    CHECK(lp_settings_parse("awq awq-grid=0", &bad) == LP_ERR_ARG && bad == NULL);
    CHECK(lp_settings_parse("awq awq-max-shrink=1.0", &bad) == LP_ERR_ARG && bad == NULL);
    CHECK(lp_settings_parse("awq awq-clip-tokens=0", &bad) == LP_ERR_ARG && bad == NULL);
    /* in range for the schema, refused by the method's check */
    CHECK(lp_settings_parse("awq group=48", &bad) == LP_ERR_ARG && bad == NULL);
    /* AWQ's scales fold in before a per-linear method only */
    lp_settings *gptq = settings("gptq");
    lp_quant_params pre = {.method = gptq, .prescale = s};
    CHECK_OK(lp_quant_params_check(&pre));
    pre.method = s;
    CHECK(lp_quant_params_check(&pre) == LP_ERR_ARG);
    pre.method = gptq;
    pre.prescale = gptq;
    CHECK(lp_quant_params_check(&pre) == LP_ERR_ARG);
    lp_settings_free(gptq);
    lp_model *m = load("tiny-mistral");
    if (m) {
        CHECK(lp_model_quantize(m, &p) == LP_ERR_ARG); /* no calibration */
        CHECK(strstr(lp_last_error(), "awq needs calibration") != NULL);
    }
    lp_model_free(m);
    lp_settings_free(s);
}

int main(void) {
    test_quantizer();
    test_clip();
    test_params();
    test_folding("tiny-llama3");
    test_folding("tiny-mistral");
    test_folding("tiny-qwen2");
    test_folding_mha();
    double gain = test_vs_rtn("tiny-llama3");
    gain = fmax(gain, test_vs_rtn("tiny-mistral"));
    gain = fmax(gain, test_vs_rtn("tiny-qwen2"));
    CHECKF(gain > 0.01, "scaling alone never helped by more than %.4f", gain);
    TEST_DONE();
}
