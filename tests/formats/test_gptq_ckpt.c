/*
 * test_gptq_ckpt.c - GPTQ checkpoints (AutoGPTQ layout), out and back in:
 *  - packing: lp_gptqpack_from_qgroup against an independent transcription
 *    of AutoGPTQ's QuantLinear.pack (word by word, 3-bit's three-word recipe)
 *    and its unpacking, for 2, 3, 4, 8 bits; the well-known sym constants
 *    (4-bit qzeros 0x77777777); qgroup -> GPTQ -> qgroup gives the same bytes;
 *  - models: RTN at 2/3/4/8 bits, sym and asym, groups 32 / 64 / per-channel,
 *    on the three tiny checkpoints (f32, f16, bf16 tied with biases):
 *    lp_export_gptq, the file's tensors equal the reference packer's on the
 *    model's codes, config.json / quantize_config.json say what was written,
 *    the directory loads back into qgroup parts with identical bits, products
 *    and (16-bit models) logits, and exporting it again writes the same bytes;
 *    a zero point of 0 makes a gptq_v2 checkpoint;
 *  - act-order: a hand-made linear with a non-monotonic g_idx loads into the
 *    "gptq" format, dequantizes as scale[g_idx[k]] * (q - z), multiplies
 *    accordingly and survives llmpress's own save -> load;
 *  - refusals: corrupt files (shapes, dtypes, g_idx out of range, bits, NaN
 *    scales, the v1 zero field 2^b - 1, sym with other zeros, other methods
 *    and formats) name the tensor or key; export refuses what GPTQ cannot hold.
 */
#include "test.h"

#include "llmpress/export.h"
#include "llmpress/model.h"
#include "llmpress/quant.h"
#include "core/fileio.h"
#include "core/half.h"
#include "format/gptqpack.h"
#include "format/qgroup.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/model_impl.h"

#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- an independent reference: AutoGPTQ's pack / unpack, transcribed ---- */

/* n values (n a multiple of 32 / b, of 32 at 3 bits) into words w[0], w[s],
 * ... exactly as AutoGPTQ's pack loop writes them (words zeroed first). */
static void ref_pack(const unsigned *v, int64_t n, int bits, uint32_t *w, int64_t s) {
    for (int64_t i = 0; i < n * bits / 32; i++) w[i * s] = 0;
    int64_t i = 0, row = 0;
    while (i < n) {
        if (bits != 3) {
            for (int j = 0; j < 32 / bits; j++) w[row * s] |= (uint32_t)v[i + j] << (bits * j);
            i += 32 / bits;
            row++;
        } else {
            for (int j = 0; j < 10; j++) w[row * s] |= (uint32_t)v[i + j] << (3 * j);
            i += 10;
            w[row * s] |= (uint32_t)v[i] << 30;
            row++;
            w[row * s] |= (v[i] >> 2) & 1u;
            i++;
            for (int j = 0; j < 10; j++) w[row * s] |= (uint32_t)v[i + j] << (3 * j + 1);
            i += 10;
            w[row * s] |= (uint32_t)v[i] << 31;
            row++;
            w[row * s] |= (v[i] >> 1) & 3u;
            i++;
            for (int j = 0; j < 10; j++) w[row * s] |= (uint32_t)v[i + j] << (3 * j + 2);
            i += 10;
            row++;
        }
    }
}

/* The inverse, as AutoGPTQ's torch dequantization unpacks (shifts per word,
 * 3-bit's two split values stitched from neighbouring words). */
static void ref_unpack(const uint32_t *w, int64_t s, int64_t n, int bits, unsigned *v) {
    const unsigned m = (1u << bits) - 1u;
    if (bits != 3) {
        for (int64_t i = 0; i < n; i++) v[i] = (w[(i / (32 / bits)) * s] >> (bits * (i % (32 / bits)))) & m;
        return;
    }
    for (int64_t b = 0; b < n / 32; b++) {
        const uint32_t w0 = w[(3 * b) * s], w1 = w[(3 * b + 1) * s], w2 = w[(3 * b + 2) * s];
        unsigned *o = v + 32 * b;
        for (int j = 0; j < 10; j++) o[j] = (w0 >> (3 * j)) & 7u;
        o[10] = ((w0 >> 30) & 3u) | ((w1 << 2) & 4u);
        for (int j = 0; j < 10; j++) o[11 + j] = (w1 >> (3 * j + 1)) & 7u;
        o[21] = ((w1 >> 31) & 1u) | ((w2 << 1) & 6u);
        for (int j = 0; j < 10; j++) o[22 + j] = (w2 >> (3 * j + 2)) & 7u;
    }
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}
static float frand(void) { return (float)rnd(1u << 20) / (float)(1u << 20) * 2.0f - 1.0f; }

/* A random qgroup (codes, positive f16 scales, zeros in [zmin, maxq] when asym). */
static void random_qgroup(lp_qgroup *q, int64_t rows, int64_t cols, int bits, int group, int sym, int zmin) {
    CHECK_OK(lp_qgroup_init(q, rows, cols, bits, group, sym));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) lp_qgroup_set(q, r, c, rnd(1u << bits));
    for (int64_t i = 0; i < rows * q->ngroups; i++) {
        q->scales[i] = lp_f32_to_f16(0.001f + 0.05f * (float)rnd(1000) / 1000.0f);
        if (!sym) q->zeros[i] = (uint8_t)(zmin + (int)rnd((1u << bits) - (unsigned)zmin));
    }
}

static void test_packing(void) {
    static const int bits_list[] = {2, 3, 4, 8};
    for (int bi = 0; bi < 4; bi++) {
        const int bits = bits_list[bi];
        for (int sym = 0; sym <= 1; sym++) {
            const int64_t N = 64, K = 96;
            lp_qgroup q;
            random_qgroup(&q, N, K, bits, 32, sym, 1);
            lp_gptqpack g;
            CHECK_OK(lp_gptqpack_from_qgroup(&q, 1, &g));
            if (!g.owned) continue;
            /* qweight: column n is the reference packing of q[n][0..K) */
            unsigned *v = malloc((size_t)(K > N ? K : N) * sizeof(unsigned)), *back = malloc(sizeof(unsigned) * 128);
            uint32_t *col = malloc((size_t)(K * bits / 32) * sizeof(uint32_t));
            bool same = true, unpacked = true;
            for (int64_t n = 0; n < N; n++) {
                for (int64_t k = 0; k < K; k++) v[k] = lp_qgroup_get(&q, n, k);
                ref_pack(v, K, bits, col, 1);
                for (int64_t i = 0; i < K * bits / 32; i++) same &= col[i] == g.qweight[i * N + n];
                ref_unpack(g.qweight + n, N, K, bits, back);
                for (int64_t k = 0; k < K; k++) unpacked &= back[k] == v[k];
            }
            CHECKF(same, "w%d sym=%d: qweight differs from AutoGPTQ's packing", bits, sym);
            CHECKF(unpacked, "w%d sym=%d: AutoGPTQ's unpacking does not give the codes back", bits, sym);
            /* qzeros: row g is the reference packing of zero - 1 over the outputs */
            same = true;
            for (int64_t gr = 0; gr < q.ngroups; gr++) {
                for (int64_t n = 0; n < N; n++) v[n] = (unsigned)(lp_qgroup_zero(&q, n, gr) - 1);
                ref_pack(v, N, bits, col, 1);
                for (int64_t i = 0; i < N * bits / 32; i++) same &= col[i] == g.qzeros[gr * (N * bits / 32) + i];
            }
            CHECKF(same, "w%d sym=%d: qzeros differ from AutoGPTQ's packing of zero - 1", bits, sym);
            if (sym) {
                static const uint32_t want[9] = {0, 0, 0x55555555u, 0, 0x77777777u, 0, 0, 0, 0x7f7f7f7fu};
                if (bits != 3) CHECKF(g.qzeros[0] == want[bits], "w%d sym: qzeros word 0x%08x, expected 0x%08x", bits,
                                      g.qzeros[0], want[bits]);
                else CHECKF(g.qzeros[0] == 0xdb6db6dbu && g.qzeros[1] == 0xb6db6db6u && g.qzeros[2] == 0x6db6db6du,
                            "w3 sym: qzeros words 0x%08x 0x%08x 0x%08x", g.qzeros[0], g.qzeros[1], g.qzeros[2]);
            }
            for (int64_t k = 0; k < K; k++) CHECK(g.g_idx[k] == k / 32);
            for (int64_t gr = 0; gr < q.ngroups; gr++)
                for (int64_t n = 0; n < N; n++) CHECK(g.scales[gr * N + n] == q.scales[n * q.ngroups + gr]);
            /* same dequantized bits, and back to the same qgroup bytes */
            float *a = malloc((size_t)(N * K) * sizeof(float)), *b = malloc((size_t)(N * K) * sizeof(float));
            lp_qgroup_dequant(&q, 0, N, a);
            lp_gptqpack_dequant(&g, 0, N, b);
            CHECKF(!memcmp(a, b, (size_t)(N * K) * sizeof(float)), "w%d sym=%d: dequantized weights differ", bits, sym);
            lp_qgroup r;
            CHECK_OK(lp_gptqpack_to_qgroup(&g, "mem", "x", 32, sym, &r));
            CHECK(!memcmp(r.q, q.q, (size_t)(N * q.blocks * bits) * 4) &&
                  !memcmp(r.scales, q.scales, (size_t)(N * q.ngroups) * 2) &&
                  (sym || !memcmp(r.zeros, q.zeros, (size_t)(N * q.ngroups))));
            lp_qgroup_free(&r);
            /* v2 holds a zero of 0, v1 refuses it */
            if (!sym) {
                q.zeros[5] = 0;
                lp_gptqpack g2;
                CHECK(lp_gptqpack_from_qgroup(&q, 1, &g2) == LP_ERR_ARG && strstr(lp_last_error(), "zero point 0"));
                CHECK_OK(lp_gptqpack_from_qgroup(&q, 0, &g2));
                lp_qgroup_dequant(&q, 0, N, a);
                lp_gptqpack_dequant(&g2, 0, N, b);
                CHECK(!memcmp(a, b, (size_t)(N * K) * sizeof(float)));
                lp_gptqpack_free(&g2);
            }
            free(a);
            free(b);
            free(v);
            free(back);
            free(col);
            lp_gptqpack_free(&g);
            lp_qgroup_free(&q);
        }
    }
    /* shapes that do not fill words */
    lp_qgroup q;
    random_qgroup(&q, 32, 40, 3, -1, 1, 0);
    lp_gptqpack g;
    CHECK(lp_gptqpack_from_qgroup(&q, 1, &g) == LP_ERR_ARG && strstr(lp_last_error(), "multiple of 32"));
    lp_qgroup_free(&q);
    random_qgroup(&q, 32, 64, 5, 32, 1, 0);
    CHECK(lp_gptqpack_from_qgroup(&q, 1, &g) == LP_ERR_ARG && strstr(lp_last_error(), "5-bit"));
    lp_qgroup_free(&q);
}

/* ---- models ---- */

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
    float *out = calloc((size_t)(T * c->vocab), sizeof(float));
    lp_ctx *ctx = NULL;
    CHECK_OK(lp_ctx_init(m, T, T, &ctx));
    if (ctx) CHECK_OK(lp_forward(ctx, ids, T, out, true));
    lp_ctx_free(ctx);
    return out;
}

static void rm_rf(const char *dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

static char *read_text(const char *dir, const char *name) {
    char *p = lp_path_join(dir, name), *s = NULL;
    size_t n;
    if (lp_read_file(p, &s, &n) != LP_OK) s = NULL;
    free(p);
    return s;
}

static lp_model *quantized(const char *name, int bits, int group, bool sym) {
    char src[512], spec[128];
    snprintf(src, sizeof src, "%s", test_data("models/"));
    strncat(src, name, sizeof src - strlen(src) - 1);
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(src, &m));
    if (!m) return NULL;
    snprintf(spec, sizeof spec, "rtn bits=%d group=%d%s", bits, group, sym ? " sym" : "");
    lp_settings *s = NULL;
    CHECK_OK(lp_settings_parse(spec, &s));
    lp_quant_params qp = {.method = s};
    CHECK_OK(lp_model_quantize(m, &qp));
    lp_settings_free(s);
    return m;
}

/* The exported file's tensors of every linear against the reference packer
 * on the model's own codes, zeros, scales. */
static void check_file(const lp_model *m, const char *dir, int zero_offset) {
    char *p = lp_path_join(dir, "model.safetensors"), name[256], base[200];
    lp_st_file *f = NULL;
    CHECK_OK(lp_st_open(p, &f));
    free(p);
    if (!f) return;
    CHECK(lp_st_meta(f, "format") && !strcmp(lp_st_meta(f, "format"), "pt"));
    for (int64_t l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_qgroup *q = lp_linear_data(&m->layers[l].lin[k], &lp_format_qgroup);
            lp_linear_name(l, k, base, sizeof base);
            const int64_t N = q->rows, K = q->cols, G = q->ngroups, b = q->bits;
            snprintf(name, sizeof name, "%s.qweight", base);
            const lp_tensor_view *qw = lp_st_find(f, name);
            snprintf(name, sizeof name, "%s.qzeros", base);
            const lp_tensor_view *qz = lp_st_find(f, name);
            snprintf(name, sizeof name, "%s.scales", base);
            const lp_tensor_view *sc = lp_st_find(f, name);
            snprintf(name, sizeof name, "%s.g_idx", base);
            const lp_tensor_view *gi = lp_st_find(f, name);
            CHECKF(qw && qz && sc && gi, "%s: tensors missing", base);
            if (!qw || !qz || !sc || !gi) continue;
            CHECK(qw->dtype == LP_DT_I32 && qw->ndim == 2 && qw->shape[0] == K * b / 32 && qw->shape[1] == N);
            CHECK(qz->dtype == LP_DT_I32 && qz->ndim == 2 && qz->shape[0] == G && qz->shape[1] == N * b / 32);
            CHECK(sc->dtype == LP_DT_F16 && sc->ndim == 2 && sc->shape[0] == G && sc->shape[1] == N);
            CHECK(gi->dtype == LP_DT_I32 && gi->ndim == 1 && gi->shape[0] == K);
            unsigned *v = malloc((size_t)(K > N ? K : N) * sizeof(unsigned));
            uint32_t *w = malloc((size_t)(K > N ? K : N) * sizeof(uint32_t));
            const uint32_t *fw = qw->data, *fz = qz->data;
            const uint16_t *fs = sc->data;
            const int32_t *fg = gi->data;
            bool ok = true;
            for (int64_t n = 0; n < N; n++) {
                for (int64_t c = 0; c < K; c++) v[c] = lp_qgroup_get(q, n, c);
                ref_pack(v, K, (int)b, w, 1);
                for (int64_t i = 0; i < K * b / 32; i++) ok &= fw[i * N + n] == w[i];
            }
            for (int64_t g = 0; g < G; g++) {
                for (int64_t n = 0; n < N; n++) {
                    v[n] = (unsigned)(lp_qgroup_zero(q, n, g) - zero_offset);
                    ok &= fs[g * N + n] == q->scales[n * G + g];
                }
                ref_pack(v, N, (int)b, w, 1);
                for (int64_t i = 0; i < N * b / 32; i++) ok &= fz[g * (N * b / 32) + i] == w[i];
            }
            for (int64_t c = 0; c < K; c++) ok &= fg[c] == c / q->group;
            CHECKF(ok, "%s: the file's GPTQ tensors differ from the reference packing", base);
            free(v);
            free(w);
        }
    lp_st_close(f);
}

/* One export -> import round trip. zero0: set one zero point to 0 first (a gptq_v2 checkpoint). */
static void roundtrip(const char *name, int bits, int group, bool sym, bool zero0, const char *keep_dir) {
    lp_model *m = quantized(name, bits, group, sym);
    if (!m) return;
    const lp_config *c = lp_model_config(m);
    if (zero0) {
        lp_qgroup *q = lp_linear_data(&m->layers[0].lin[LP_Q], &lp_format_qgroup);
        CHECK(q && !q->sym);
        if (q && q->zeros) q->zeros[3] = 0;
    }
    bool has_zero0 = false;
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_qgroup *q = lp_linear_data(&m->layers[l].lin[k], &lp_format_qgroup);
            for (int64_t i = 0; !q->sym && i < q->rows * q->ngroups; i++) has_zero0 |= q->zeros[i] == 0;
        }
    char dir[512];
    if (keep_dir) snprintf(dir, sizeof dir, "%s", keep_dir);
    else snprintf(dir, sizeof dir, "/tmp/lp_gptq_%d_%s_w%d_g%d_%d", (int)getpid(), name, bits, group, sym);
    CHECK_OK(lp_export_gptq(m, dir));

    /* config.json and quantize_config.json */
    lp_json_doc *doc = NULL;
    char *cfg = read_text(dir, "config.json"), *qcfg = read_text(dir, "quantize_config.json");
    CHECK(cfg && qcfg);
    if (cfg) CHECK_OK(lp_json_parse(cfg, strlen(cfg), "config.json", &doc));
    const lp_json *root = doc ? lp_json_root(doc) : NULL, *qc = lp_json_get(root, "quantization_config");
    const char *fmt = lp_json_str(lp_json_get(qc, "checkpoint_format"), "?");
    CHECK(!strcmp(lp_json_str(lp_json_get(qc, "quant_method"), ""), "gptq"));
    CHECK(lp_json_int(lp_json_get(qc, "bits"), 0) == bits);
    CHECK(lp_json_int(lp_json_get(qc, "group_size"), 0) == group);
    CHECK(lp_json_bool(lp_json_get(qc, "sym"), !sym) == sym && !lp_json_bool(lp_json_get(qc, "desc_act"), true));
    CHECKF(!strcmp(fmt, has_zero0 ? "gptq_v2" : "gptq"), "checkpoint_format %s with%s a zero of 0", fmt,
           has_zero0 ? "" : "out");
    CHECK(!strcmp(lp_json_str(lp_json_get(root, "torch_dtype"), lp_json_str(lp_json_get(root, "dtype"), "")),
                  !strcmp(c->dtype, "bfloat16") ? "bfloat16" : "float16"));
    CHECK(lp_json_int(lp_json_get(root, "hidden_size"), 0) == c->dim);
    lp_json_free(doc);
    doc = NULL;
    if (qcfg) CHECK_OK(lp_json_parse(qcfg, strlen(qcfg), "quantize_config.json", &doc));
    CHECK(doc && lp_json_int(lp_json_get(lp_json_root(doc), "bits"), 0) == bits);
    lp_json_free(doc);
    free(cfg);
    free(qcfg);
    char *gen = read_text(dir, "generation_config.json");
    CHECK(gen != NULL);
    free(gen);
    check_file(m, dir, has_zero0 ? 0 : 1);

    /* back in: the same qgroups, products and logits */
    lp_model *back = NULL;
    CHECK_OK(lp_model_load(dir, &back));
    if (!back) {
        lp_model_free(m);
        return;
    }
    bool same_bits = true, same_prod = true, same_w = true;
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < LP_NLIN; k++) {
            const lp_linear *a = &m->layers[l].lin[k], *b = &back->layers[l].lin[k];
            const lp_qgroup *qa = lp_linear_data(a, &lp_format_qgroup), *qb = lp_linear_data(b, &lp_format_qgroup);
            CHECKF(qb != NULL, "layer %lld linear %d did not load as qgroup", (long long)l, k);
            if (!qa || !qb) continue;
            same_bits &= qa->bits == qb->bits && qa->group == qb->group && qa->ngroups == qb->ngroups;
            same_bits &= !memcmp(qa->q, qb->q, (size_t)(qa->rows * qa->blocks * qa->bits) * 4);
            same_bits &= !memcmp(qa->scales, qb->scales, (size_t)(qa->rows * qa->ngroups) * 2);
            if (qa->sym == qb->sym) {
                same_bits &= qa->sym || !memcmp(qa->zeros, qb->zeros, (size_t)(qa->rows * qa->ngroups));
            } else { /* a sym linear in a model with asym ones comes back with explicit zeros 2^(b-1) */
                same_bits &= qa->sym && !qb->sym;
                for (int64_t i = 0; qb->zeros && i < qb->rows * qb->ngroups; i++)
                    same_bits &= qb->zeros[i] == 1 << (qb->bits - 1);
            }
            float *wa = lp_linear_to_f32(a), *wb = lp_linear_to_f32(b);
            same_w &= wa && wb && !memcmp(wa, wb, (size_t)(a->rows * a->cols) * sizeof(float));
            free(wa);
            free(wb);
            const int64_t T = 3;
            float *X = malloc((size_t)(T * a->cols) * sizeof(float));
            float *ya = malloc((size_t)(T * a->rows) * sizeof(float));
            float *yb = malloc((size_t)(T * a->rows) * sizeof(float));
            for (int64_t i = 0; i < T * a->cols; i++) X[i] = frand();
            CHECK_OK(lp_linear_forward(a, X, T, ya));
            CHECK_OK(lp_linear_forward(b, X, T, yb));
            /* biases went through the 16-bit dtype: exact for 16-bit models */
            if (!a->bias || strcmp(c->dtype, "float32"))
                same_prod &= !memcmp(ya, yb, (size_t)(T * a->rows) * sizeof(float));
            else same_prod &= rel_err(yb, ya, T * a->rows) < 1e-3;
            free(X);
            free(ya);
            free(yb);
        }
    CHECKF(same_bits, "%s w%d g%d sym=%d: imported qgroups differ from the exported ones", name, bits, group, sym);
    CHECKF(same_w, "%s w%d g%d sym=%d: imported weights do not dequantize to the same bits", name, bits, group, sym);
    CHECKF(same_prod, "%s w%d g%d sym=%d: products differ", name, bits, group, sym);
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 37 + 11) % c->vocab);
    float *la = logits_of(m, ids, 24), *lb = logits_of(back, ids, 24);
    const double e = rel_err(lb, la, 24 * c->vocab);
    if (strcmp(c->dtype, "float32")) /* every other tensor is stored as it was: the same model */
        CHECKF(!memcmp(la, lb, (size_t)(24 * c->vocab) * sizeof(float)), "%s w%d g%d: logits differ (%.3g)", name,
               bits, group, e);
    else /* embedding, norms, biases and head rounded to f16 */
        CHECKF(e < 2e-3, "%s w%d g%d: logits rel. error %.3g after f16 rounding", name, bits, group, e);
    /* exporting the imported model again writes the same bytes */
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s_again", dir);
    CHECK_OK(lp_export_gptq(back, dir2));
    const char *files[] = {"model.safetensors", "config.json", "quantize_config.json"};
    for (int i = 0; i < 3; i++) {
        char *p1 = lp_path_join(dir, files[i]), *p2 = lp_path_join(dir2, files[i]), *d1 = NULL, *d2 = NULL;
        size_t n1 = 0, n2 = 0;
        CHECK_OK(lp_read_file(p1, &d1, &n1));
        CHECK_OK(lp_read_file(p2, &d2, &n2));
        CHECKF(d1 && d2 && n1 == n2 && !memcmp(d1, d2, n1), "%s w%d g%d: re-exported %s differs", name, bits, group,
               files[i]);
        free(p1);
        free(p2);
        free(d1);
        free(d2);
    }
    rm_rf(dir2);
    printf("%-13s w%d g%-3d %s  %-7s  %s, logits rel. diff %.2g\n", name, bits, group, sym ? "sym " : "asym",
           has_zero0 ? "gptq_v2" : "gptq", c->dtype, e);
    free(la);
    free(lb);
    lp_model_free(back);
    lp_model_free(m);
    if (!keep_dir) rm_rf(dir);
}

/* ---- hand-made and corrupt variants of an exported directory ---- */

typedef struct {
    const char *name;
    lp_dtype dt;
    int ndim;
    int64_t shape[2];
    const void *data; /* NULL: drop the tensor */
} repl;

/* dst = src with config.json's substitutions applied (subs: pairs of
 * from, to; NULL-terminated; each `from` must occur) and model.safetensors'
 * tensors replaced, added or dropped. */
static void make_variant(const char *src, const char *dst, const char *const *subs, const repl *r, int nr) {
    rm_rf(dst);
    CHECK(mkdir(dst, 0755) == 0);
    char *cfg = read_text(src, "config.json");
    if (!cfg) return;
    for (int i = 0; subs && subs[i]; i += 2) {
        char *at = strstr(cfg, subs[i]);
        CHECKF(at != NULL, "config.json has no \"%s\"", subs[i]);
        if (!at) continue;
        const size_t nf = strlen(subs[i]), nt = strlen(subs[i + 1]), n = strlen(cfg);
        char *c2 = malloc(n - nf + nt + 1);
        memcpy(c2, cfg, (size_t)(at - cfg));
        memcpy(c2 + (at - cfg), subs[i + 1], nt);
        memcpy(c2 + (at - cfg) + nt, at + nf, n - (size_t)(at - cfg) - nf + 1);
        free(cfg);
        cfg = c2;
    }
    char *p = lp_path_join(dst, "config.json");
    FILE *f = fopen(p, "wb");
    fputs(cfg, f);
    fclose(f);
    free(p);
    free(cfg);
    p = lp_path_join(src, "model.safetensors");
    lp_st_file *in = NULL;
    CHECK_OK(lp_st_open(p, &in));
    free(p);
    lp_st_writer *w = NULL;
    CHECK_OK(lp_st_writer_init(&w));
    CHECK_OK(lp_st_writer_meta(w, "format", "pt"));
    for (int64_t i = 0; in && i < lp_st_count(in); i++) {
        const lp_tensor_view *t = lp_st_at(in, i);
        bool replaced = false;
        for (int j = 0; j < nr; j++) replaced |= !strcmp(r[j].name, t->name);
        if (!replaced) CHECK_OK(lp_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data));
    }
    for (int j = 0; j < nr; j++)
        if (r[j].data) CHECK_OK(lp_st_writer_add(w, r[j].name, r[j].dt, r[j].ndim, r[j].shape, r[j].data));
    p = lp_path_join(dst, "model.safetensors");
    CHECK_OK(lp_st_writer_save(w, p));
    free(p);
    lp_st_writer_free(w);
    lp_st_close(in);
}

/* One substitution. */
#define SUB(from, to) ((const char *const[]){from, to, NULL})

/* Loading dst fails with status st and a message holding `what`. */
static void expect_refused(const char *dst, lp_status st, const char *what, const char *label) {
    lp_model *m = NULL;
    lp_status got = lp_model_load(dst, &m);
    CHECKF(got == st && m == NULL && strstr(lp_last_error(), what), "%s: status %d (expected %d), message: %s", label,
           (int)got, (int)st, lp_last_error());
    if (got == st && strstr(lp_last_error(), what)) printf("refused (%s): %s\n", label, lp_last_error());
    lp_model_free(m);
}

/* An act-order linear (rows x cols, b bits, G groups of a random permutation
 * of the columns), packed with the reference packer; W = its dequantization
 * by the formula, computed here. */
typedef struct {
    uint32_t *qw, *qz;
    uint16_t *sc;
    int32_t *gi;
    float *W;
} actorder;

static actorder make_actorder(int64_t N, int64_t K, int bits, int64_t G, bool sym, int zero_offset) {
    actorder a;
    a.qw = calloc((size_t)(K * bits / 32 * N), 4);
    a.qz = calloc((size_t)(G * N * bits / 32), 4);
    a.sc = malloc((size_t)(G * N) * 2);
    a.gi = malloc((size_t)K * 4);
    a.W = malloc((size_t)(N * K) * sizeof(float));
    int64_t *perm = malloc((size_t)K * sizeof(int64_t));
    for (int64_t k = 0; k < K; k++) perm[k] = k;
    for (int64_t k = K - 1; k > 0; k--) {
        int64_t j = rnd((unsigned)k + 1), t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
    }
    const int64_t per = (K + G - 1) / G;
    for (int64_t i = 0; i < K; i++) a.gi[perm[i]] = (int32_t)(i / per); /* desc_act: groups in permuted order */
    unsigned *codes = malloc((size_t)(N * K) * sizeof(unsigned));
    unsigned *v = malloc((size_t)(K > N ? K : N) * sizeof(unsigned));
    int *zero = malloc((size_t)(G * N) * sizeof(int));
    for (int64_t i = 0; i < N * K; i++) codes[i] = rnd(1u << bits);
    for (int64_t i = 0; i < G * N; i++) {
        a.sc[i] = lp_f32_to_f16(0.002f + 0.02f * (float)rnd(1000) / 1000.0f);
        zero[i] = sym ? 1 << (bits - 1) : zero_offset + (int)rnd((1u << bits) - (unsigned)zero_offset);
    }
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) v[k] = codes[n * K + k];
        ref_pack(v, K, bits, a.qw + n, N);
    }
    for (int64_t g = 0; g < G; g++) {
        for (int64_t n = 0; n < N; n++) v[n] = (unsigned)(zero[g * N + n] - zero_offset);
        ref_pack(v, N, bits, a.qz + g * (N * bits / 32), 1);
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            const int64_t g = a.gi[k];
            a.W[n * K + k] = lp_f16_to_f32(a.sc[g * N + n]) * (float)((int)codes[n * K + k] - zero[g * N + n]);
        }
    free(perm);
    free(codes);
    free(v);
    free(zero);
    return a;
}

static void actorder_free(actorder *a) {
    free(a->qw);
    free(a->qz);
    free(a->sc);
    free(a->gi);
    free(a->W);
}

/* Layer 0's q_proj of the export in src replaced by an act-order linear. */
static void test_actorder(const char *src, const char *const *subs, int bits, bool sym, int zero_offset,
                          const char *tag) {
    lp_model *ref = NULL;
    CHECK_OK(lp_model_load(src, &ref));
    if (!ref) return;
    const lp_linear *orig = &ref->layers[0].lin[LP_Q];
    const int64_t N = orig->rows, K = orig->cols, G = 3;
    actorder a = make_actorder(N, K, bits, G, sym, zero_offset);
    const char *b = "model.layers.0.self_attn.q_proj";
    const repl r[4] = {
        {"model.layers.0.self_attn.q_proj.qweight", LP_DT_I32, 2, {K * bits / 32, N}, a.qw},
        {"model.layers.0.self_attn.q_proj.qzeros", LP_DT_I32, 2, {G, N * bits / 32}, a.qz},
        {"model.layers.0.self_attn.q_proj.scales", LP_DT_F16, 2, {G, N}, a.sc},
        {"model.layers.0.self_attn.q_proj.g_idx", LP_DT_I32, 1, {K, 0}, a.gi},
    };
    char dst[512], saved[512];
    snprintf(dst, sizeof dst, "/tmp/lp_gptq_%d_act_%s", (int)getpid(), tag);
    snprintf(saved, sizeof saved, "/tmp/lp_gptq_%d_act_%s_saved", (int)getpid(), tag);
    make_variant(src, dst, subs, r, 4);
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(dst, &m));
    if (m) {
        const lp_linear *l = &m->layers[0].lin[LP_Q];
        const lp_gptqpack *g = lp_linear_data(l, &lp_format_gptq);
        CHECKF(g != NULL, "%s: the act-order linear is not in the gptq format", tag);
        char d[128];
        lp_linear_describe(l, d, sizeof d);
        printf("act-order %s: %s loads as \"%s\", %zu bytes\n", tag, b, d, lp_linear_nbytes(l));
        CHECK(lp_linear_nbytes(l) == (size_t)(4 * (K * bits / 32 * N + G * N * bits / 32 + K) + 2 * G * N));
        /* the other linears are still qgroups */
        CHECK(lp_linear_data(&m->layers[0].lin[LP_K], &lp_format_qgroup) != NULL);
        float *W = lp_linear_to_f32(l);
        CHECKF(W && !memcmp(W, a.W, (size_t)(N * K) * sizeof(float)), "%s: dequantization differs from "
               "scale[g_idx[k]] * (q - z)", tag);
        for (int64_t T = 1; T <= 9; T += 8) { /* the product agrees with X W^T in double */
            float *X = malloc((size_t)(T * K) * sizeof(float)), *Y = malloc((size_t)(T * N) * sizeof(float)),
                  *R = malloc((size_t)(T * N) * sizeof(float));
            for (int64_t i = 0; i < T * K; i++) X[i] = frand();
            for (int64_t t = 0; t < T; t++)
                for (int64_t n = 0; n < N; n++) {
                    double s = l->bias ? l->bias[n] : 0.0;
                    for (int64_t k = 0; k < K; k++) s += (double)X[t * K + k] * a.W[n * K + k];
                    R[t * N + n] = (float)s;
                }
            CHECK_OK(lp_linear_forward(l, X, T, Y));
            const double e = rel_err(Y, R, T * N);
            CHECKF(e < 1e-5, "%s: act-order product vs X W^T: %.3g (T = %lld)", tag, e, (long long)T);
            free(X);
            free(Y);
            free(R);
        }
        /* llmpress's own checkpoint keeps the gptq part */
        rm_rf(saved);
        CHECK_OK(lp_model_save(m, saved));
        lp_model *s = NULL;
        CHECK_OK(lp_model_load(saved, &s));
        if (s) {
            const lp_linear *ls = &s->layers[0].lin[LP_Q];
            CHECK(lp_linear_data(ls, &lp_format_gptq) != NULL);
            float *Ws = lp_linear_to_f32(ls);
            CHECK(W && Ws && !memcmp(W, Ws, (size_t)(N * K) * sizeof(float)));
            free(Ws);
            lp_model_free(s);
        }
        free(W);
        lp_model_free(m);
    }
    rm_rf(saved);

    /* g_idx out of range, then negative */
    int32_t *gi = malloc((size_t)K * 4);
    memcpy(gi, a.gi, (size_t)K * 4);
    gi[7] = (int32_t)G;
    repl bad[4];
    memcpy(bad, r, sizeof bad);
    bad[3].data = gi;
    make_variant(src, dst, subs, bad, 4);
    expect_refused(dst, LP_ERR_FORMAT, "q_proj.g_idx\": entry 7", "g_idx out of range");
    gi[7] = -1;
    make_variant(src, dst, subs, bad, 4);
    expect_refused(dst, LP_ERR_FORMAT, "q_proj.g_idx\": entry 7", "g_idx negative");
    /* the act-order g_idx where the config says desc_act false (3 groups where group_size makes fewer) */
    if (zero_offset) {
        make_variant(src, dst, NULL, r, 4);
        expect_refused(dst, LP_ERR_FORMAT, "desc_act false", "act-order g_idx, desc_act false");
    }
    free(gi);
    rm_rf(dst);
    actorder_free(&a);
    lp_model_free(ref);
}

/* Corrupt copies of the export in src (4-bit asym v1, group 32): each refused naming what is wrong. */
static void test_corrupt(const char *src) {
    lp_model *ref = NULL;
    CHECK_OK(lp_model_load(src, &ref));
    if (!ref) return;
    const int64_t N = ref->layers[1].lin[LP_V].rows, K = ref->layers[1].lin[LP_V].cols, G = K / 32;
    lp_model_free(ref);
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", src);
    lp_st_file *f = NULL;
    CHECK_OK(lp_st_open(p, &f));
    if (!f) return;
    const lp_tensor_view *qw = lp_st_find(f, "model.layers.1.self_attn.v_proj.qweight");
    const lp_tensor_view *qz = lp_st_find(f, "model.layers.1.self_attn.v_proj.qzeros");
    const lp_tensor_view *sc = lp_st_find(f, "model.layers.1.self_attn.v_proj.scales");
    const lp_tensor_view *gi = lp_st_find(f, "model.layers.1.self_attn.v_proj.g_idx");
    CHECK(qw && qz && sc && gi);
    if (!qw || !qz || !sc || !gi) return;
    char dst[512];
    snprintf(dst, sizeof dst, "/tmp/lp_gptq_%d_corrupt", (int)getpid());
    const char *V = "model.layers.1.self_attn.v_proj";
    char nq[128], nz[128], ns[128], ng[128];
    snprintf(nq, sizeof nq, "%s.qweight", V);
    snprintf(nz, sizeof nz, "%s.qzeros", V);
    snprintf(ns, sizeof ns, "%s.scales", V);
    snprintf(ng, sizeof ng, "%s.g_idx", V);

    repl r = {nq, LP_DT_I32, 2, {K * 4 / 32 - 1, N}, qw->data}; /* one word row short */
    make_variant(src, dst, NULL, &r, 1);
    expect_refused(dst, LP_ERR_FORMAT, "v_proj.qweight\" is I32 2D", "qweight shape");
    r = (repl){nq, LP_DT_I64, 2, {K * 4 / 64, N}, qw->data}; /* the same bytes as int64 */
    make_variant(src, dst, NULL, &r, 1);
    expect_refused(dst, LP_ERR_FORMAT, "v_proj.qweight\" is I64", "qweight dtype");
    r = (repl){nz, LP_DT_I32, 2, {G - 1, N * 4 / 32}, qz->data};
    make_variant(src, dst, NULL, &r, 1);
    expect_refused(dst, LP_ERR_FORMAT, "v_proj.qzeros\"", "qzeros shape");
    r = (repl){nz, LP_DT_I32, 2, {0, 0}, NULL};
    make_variant(src, dst, NULL, &r, 1);
    expect_refused(dst, LP_ERR_FORMAT, "v_proj.qzeros\" is missing", "qzeros missing");
    r = (repl){ng, LP_DT_I64, 1, {K / 2, 0}, gi->data};
    make_variant(src, dst, NULL, &r, 1);
    expect_refused(dst, LP_ERR_FORMAT, "v_proj.g_idx\" is I64", "g_idx dtype");
    /* a permuted g_idx (same group count) under desc_act false */
    int32_t *gp = malloc(gi->nbytes);
    memcpy(gp, gi->data, gi->nbytes);
    gp[0] = 1;
    gp[40] = 0;
    r = (repl){ng, LP_DT_I32, 1, {K, 0}, gp};
    make_variant(src, dst, NULL, &r, 1);
    expect_refused(dst, LP_ERR_FORMAT, "v_proj.g_idx\": entry 0 is 1, but quantization_config has desc_act false",
                   "permuted g_idx, desc_act false");
    /* ... which desc_act true accepts, into the gptq format */
    make_variant(src, dst, SUB("\"desc_act\": false", "\"desc_act\": true"), &r, 1);
    lp_model *mp = NULL;
    CHECK_OK(lp_model_load(dst, &mp));
    CHECK(mp && lp_linear_data(&mp->layers[1].lin[LP_V], &lp_format_gptq) != NULL);
    lp_model_free(mp);
    free(gp);
    /* a NaN scale */
    uint16_t *s = malloc(sc->nbytes);
    memcpy(s, sc->data, sc->nbytes);
    s[5] = 0x7e00;
    r = (repl){ns, LP_DT_F16, 2, {G, N}, s};
    make_variant(src, dst, NULL, &r, 1);
    expect_refused(dst, LP_ERR_FORMAT, "v_proj.scales\": group 0 output 5 is NaN", "NaN scale");
    r = (repl){ns, LP_DT_F32, 2, {G, N / 2}, sc->data};
    make_variant(src, dst, NULL, &r, 1);
    expect_refused(dst, LP_ERR_FORMAT, "v_proj.scales\" is F32", "scales dtype");
    free(s);
    /* v1's field 2^b - 1 (the zero 2^b) */
    uint32_t *z = malloc(qz->nbytes);
    memcpy(z, qz->data, qz->nbytes);
    z[0] |= 0xfu << 8; /* output 2 of group 0 */
    r = (repl){nz, LP_DT_I32, 2, {G, N * 4 / 32}, z};
    make_variant(src, dst, NULL, &r, 1);
    expect_refused(dst, LP_ERR_FORMAT, "v_proj.qzeros\": group 0 output 2 stores 15", "v1 zero field 15");
    /* ... which gptq_v2 reads as the zero 15 */
    make_variant(src, dst, SUB("\"checkpoint_format\": \"gptq\"", "\"checkpoint_format\": \"gptq_v2\""), &r, 1);
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(dst, &m));
    if (m) {
        const lp_qgroup *q = lp_linear_data(&m->layers[1].lin[LP_V], &lp_format_qgroup);
        CHECK(q && !q->sym && q->zeros[2 * q->ngroups + 0] == 15);
        lp_model_free(m);
    }
    free(z);
    /* sym claimed, zeros of an asym model */
    make_variant(src, dst, SUB("\"sym\": false", "\"sym\": true"), NULL, 0);
    expect_refused(dst, LP_ERR_FORMAT, "but quantization_config says sym", "sym with other zeros");
    /* the config */
    make_variant(src, dst, SUB("\"bits\": 4", "\"bits\": 5"), NULL, 0);
    expect_refused(dst, LP_ERR_UNSUPPORTED, "quantization_config.bits is 5", "bits 5");
    make_variant(src, dst, SUB("\"bits\": 4", "\"bits\": 2"), NULL, 0);
    expect_refused(dst, LP_ERR_FORMAT, "q_proj.qweight\" is I32 2D", "bits 2 with 4-bit tensors");
    make_variant(src, dst, SUB("\"bits\": 4", "\"bits\": \"4\""), NULL, 0);
    expect_refused(dst, LP_ERR_FORMAT, "quantization_config.bits is not a number", "bits a string");
    make_variant(src, dst, SUB("\"group_size\": 32", "\"group_size\": 0"), NULL, 0);
    expect_refused(dst, LP_ERR_FORMAT, "group_size is 0", "group_size 0");
    make_variant(src, dst, SUB("\"group_size\": 32", "\"group_size\": 64"), NULL, 0);
    expect_refused(dst, LP_ERR_FORMAT, "desc_act false and group_size 64", "group_size mismatch");
    make_variant(src, dst, SUB("\"quant_method\": \"gptq\"", "\"quant_method\": \"awq\""), NULL, 0);
    expect_refused(dst, LP_ERR_UNSUPPORTED, "quant_method \"awq\"", "awq");
    make_variant(src, dst, SUB("\"checkpoint_format\": \"gptq\"", "\"checkpoint_format\": \"marlin\""), NULL, 0);
    expect_refused(dst, LP_ERR_UNSUPPORTED, "checkpoint_format is \"marlin\"", "marlin");
    make_variant(src, dst, SUB("\"quantization_config\"", "\"quantization_config_x\""), NULL, 0);
    expect_refused(dst, LP_ERR_UNSUPPORTED, "quantization_config is missing", "no quantization_config");
    lp_st_close(f);
    rm_rf(dst);
}

/* What GPTQ cannot hold is refused before anything is written. */
static void test_export_refusals(void) {
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s", test_data("models/tiny-mistral"));
    snprintf(dst, sizeof dst, "/tmp/lp_gptq_%d_refused", (int)getpid());
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(src, &m));
    if (!m) return;
    CHECK(lp_export_gptq(m, dst) == LP_ERR_ARG &&
          strstr(lp_last_error(), "\"model.layers.0.self_attn.q_proj\" is \"dense"));
    printf("refused (export): %s\n", lp_last_error());
    lp_model_free(m);
    m = quantized("tiny-mistral", 5, 32, false);
    CHECK(m && lp_export_gptq(m, dst) == LP_ERR_ARG && strstr(lp_last_error(), "qgroup w5 g32 asym"));
    lp_model_free(m);
    /* mixed bit widths: one linear requantized at 8 bits */
    m = quantized("tiny-mistral", 4, 32, true);
    if (m) {
        lp_linear *l = &m->layers[1].lin[LP_UP];
        lp_qgroup *q = calloc(1, sizeof *q);
        random_qgroup(q, l->rows, l->cols, 8, 32, 1, 0);
        lp_linear_set(l, &lp_format_qgroup, q);
        CHECK(lp_export_gptq(m, dst) == LP_ERR_ARG && strstr(lp_last_error(), "mlp.up_proj\" has 8 bits"));
        printf("refused (export): %s\n", lp_last_error());
        /* mixed groups */
        q = calloc(1, sizeof *q);
        random_qgroup(q, l->rows, l->cols, 4, 64, 1, 0);
        lp_linear_set(l, &lp_format_qgroup, q);
        CHECK(lp_export_gptq(m, dst) == LP_ERR_ARG && strstr(lp_last_error(), "one group size"));
        /* never over the source */
        q = calloc(1, sizeof *q);
        random_qgroup(q, l->rows, l->cols, 4, 32, 1, 0);
        lp_linear_set(l, &lp_format_qgroup, q);
        CHECK(lp_export_gptq(m, src) == LP_ERR_ARG && strstr(lp_last_error(), "refusing to write"));
        lp_model_free(m);
    }
    struct stat st;
    CHECK(stat(dst, &st) != 0); /* nothing was written */
}

int main(void) {
    test_packing();
    char keep4[512], keep3[512];
    snprintf(keep4, sizeof keep4, "/tmp/lp_gptq_%d_keep4", (int)getpid());
    snprintf(keep3, sizeof keep3, "/tmp/lp_gptq_%d_keep3", (int)getpid());
    /* every bit width with each group and both symmetries, across the three dtypes */
    roundtrip("tiny-mistral", 4, 32, false, false, keep4);
    roundtrip("tiny-mistral", 8, -1, true, false, NULL);
    roundtrip("tiny-mistral", 3, 64, false, false, NULL);
    roundtrip("tiny-mistral", 2, 32, true, false, NULL);
    roundtrip("tiny-qwen2", 4, 64, true, false, NULL);
    roundtrip("tiny-qwen2", 3, 32, true, false, NULL);
    roundtrip("tiny-qwen2", 2, -1, false, false, NULL);
    roundtrip("tiny-qwen2", 8, 32, false, false, NULL);
    roundtrip("tiny-llama3", 4, -1, false, false, NULL);
    roundtrip("tiny-llama3", 2, 64, false, false, NULL);
    roundtrip("tiny-llama3", 3, -1, true, false, keep3);
    roundtrip("tiny-llama3", 8, 64, true, false, NULL);
    roundtrip("tiny-mistral", 3, 32, false, true, NULL); /* a zero of 0: gptq_v2 */
    const char *const act[] = {"\"desc_act\": false", "\"desc_act\": true", NULL};
    const char *const act_v2[] = {"\"desc_act\": false", "\"desc_act\": true", "\"checkpoint_format\": \"gptq\"",
                                  "\"checkpoint_format\": \"gptq_v2\"", NULL};
    test_actorder(keep4, act, 4, false, 1, "w4-asym-v1");
    test_actorder(keep4, act_v2, 4, false, 0, "w4-asym-v2");
    test_actorder(keep3, act, 3, true, 1, "w3-sym");
    test_corrupt(keep4);
    test_export_refusals();
    rm_rf(keep4);
    rm_rf(keep3);
    TEST_DONE();
}
