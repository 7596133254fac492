/*
 * test_linear_parts.c - a linear as a sum of parts (format/linear.h):
 *  - W = Q + R with Q grouped 3-bit integers and R the dense f32 residual:
 *    the product equals W's to f32 rounding, to_f32 adds the parts, bytes
 *    are the parts' sum, the description joins them;
 *  - save -> load through a safetensors file ({"format":"sum","parts":[...]},
 *    part k under "<base>.p<k>") gives the same bytes and the same products;
 *    a single packed part keeps the plain layout ("<base>.qweight", no .p0);
 *  - corrupt sums (no parts, too many, an unknown part format, a part's
 *    tensor missing) are errors naming the file, never a crash;
 *  - every part's product was chosen once, from the traits row.
 */
#include "format/dense.h"
#include "format/linear.h"
#include "format/qgroup.h"
#include "quant/rtn.h"

#include "core/status_impl.h"
#include "test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { ROWS = 40, COLS = 200, T = 3 };

static float max_abs_diff(const float *a, const float *b, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fabsf(a[i] - b[i]) > m ? fabsf(a[i] - b[i]) : m;
    return m;
}

/* Save l as linear "blk.x" into path with the given extra metadata. */
static lp_status save(const lp_linear *l, const char *path) {
    lp_st_writer *w = NULL;
    LP_TRY(lp_st_writer_init(&w));
    lp_status st = lp_linear_save(l, w, "blk.x");
    if (st == LP_OK) st = lp_st_writer_save(w, path);
    lp_st_writer_free(w);
    return st;
}

/* Rewrite the file at path with its tensors and one metadata value replaced. */
static lp_status with_meta(const char *src, const char *dst, const char *meta) {
    lp_weights *in = NULL;
    LP_TRY(lp_weights_open(src, &in));
    lp_st_writer *w = NULL;
    lp_status st = lp_st_writer_init(&w);
    for (int64_t i = 0; st == LP_OK && i < lp_weights_count(in); i++) {
        const lp_tensor_view *t = lp_weights_at(in, i);
        st = lp_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
    }
    if (st == LP_OK) st = lp_st_writer_meta(w, "llmpress.linear.blk.x", meta);
    if (st == LP_OK) st = lp_st_writer_save(w, dst);
    lp_st_writer_free(w);
    lp_weights_close(in);
    return st;
}

static lp_status load(const char *path, lp_linear *out, lp_weights **keep) {
    LP_TRY(lp_weights_open(path, keep));
    const lp_fmt_src in = {*keep, path};
    return lp_linear_load_packed(&in, "blk.x", ROWS, COLS, out);
}

int main(void) {
    unsigned long long seed = 7;
    float *W = malloc(sizeof(float) * ROWS * COLS), *X = malloc(sizeof(float) * T * COLS);
    float *Yw = malloc(sizeof(float) * T * ROWS), *Y = malloc(sizeof(float) * T * ROWS);
    for (int i = 0; i < ROWS * COLS; i++) W[i] = test_randn(&seed);
    for (int i = 0; i < T * COLS; i++) X[i] = test_randn(&seed);

    /* the reference: W dense */
    lp_linear ref = {.rows = ROWS, .cols = COLS};
    lp_dense *dw;
    CHECK_OK(lp_dense_view(ROWS, COLS, W, NULL, LP_DT_F32, NULL, &dw));
    CHECK_OK(lp_linear_add_part(&ref, &lp_format_dense, dw));
    CHECK_OK(lp_linear_forward(&ref, X, T, Yw));

    /* Q + R */
    lp_qgroup *q = calloc(1, sizeof *q);
    CHECK_OK(lp_qgroup_init(q, ROWS, COLS, 3, 32, false));
    CHECK_OK(lp_rtn_quantize(W, q));
    float *Rs = malloc(sizeof(float) * ROWS * COLS);
    lp_qgroup_dequant(q, 0, ROWS, Rs);
    for (int i = 0; i < ROWS * COLS; i++) Rs[i] = W[i] - Rs[i];
    lp_linear l = {.rows = ROWS, .cols = COLS};
    const size_t qbytes = lp_qgroup_nbytes(q);
    CHECK_OK(lp_linear_add_part(&l, &lp_format_qgroup, q));
    lp_dense *dr;
    CHECK_OK(lp_dense_own(ROWS, COLS, Rs, &dr));
    CHECK_OK(lp_linear_add_part(&l, &lp_format_dense, dr));
    CHECK(l.nparts == 2 && l.part[0].gemm && l.part[1].gemm);
    CHECK(lp_linear_nbytes(&l) == qbytes + (size_t)ROWS * COLS * 4);
    CHECK(!lp_linear_is(&l, &lp_format_qgroup) && !lp_linear_data(&l, &lp_format_dense));
    char desc[256];
    lp_linear_describe(&l, desc, sizeof desc);
    CHECKF(!strcmp(desc, "qgroup w3 g32 asym + dense f32"), "description '%s'", desc);
    CHECK_OK(lp_linear_forward(&l, X, T, Y));
    CHECKF(max_abs_diff(Y, Yw, T * ROWS) < 1e-3f, "Q + R vs W: %g", max_abs_diff(Y, Yw, T * ROWS));
    float *Wl = lp_linear_to_f32(&l);
    CHECK(Wl && max_abs_diff(Wl, W, ROWS * COLS) < 1e-5f);
    CHECK(lp_linear_rel_error(&l, W) < 1e-6);
    free(Wl);

    /* round trip through a file */
    char dir[] = "/tmp/lp_parts_XXXXXX", path[128], bad[128];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/sum.safetensors", dir);
    snprintf(bad, sizeof bad, "%s/bad.safetensors", dir);
    CHECK_OK(save(&l, path));
    lp_weights *kw = NULL;
    lp_linear back = {0};
    CHECK_OK(load(path, &back, &kw));
    CHECK(back.nparts == 2 && back.part[0].fmt == &lp_format_qgroup && back.part[1].fmt == &lp_format_dense);
    CHECK(lp_linear_nbytes(&back) == lp_linear_nbytes(&l));
    if (back.nparts == 2) {
        const lp_qgroup *a = l.part[0].data, *b = back.part[0].data;
        CHECK(!memcmp(a->q, b->q, (size_t)(ROWS * a->blocks * 3) * 4) && !memcmp(a->scales, b->scales, (size_t)ROWS * a->ngroups * 2));
        float *Y2 = malloc(sizeof(float) * T * ROWS);
        CHECK_OK(lp_linear_forward(&back, X, T, Y2));
        CHECK(!memcmp(Y, Y2, sizeof(float) * T * ROWS)); /* same bytes, same kernels: same bits */
        free(Y2);
    }
    lp_weights *pw = NULL;
    CHECK_OK(lp_weights_open(path, &pw));
    CHECK(lp_weights_find(pw, "blk.x.p0.qweight") && lp_weights_find(pw, "blk.x.p1.weight"));
    const char *meta = lp_weights_meta(pw, "llmpress.linear.blk.x");
    CHECKF(meta && strstr(meta, "\"format\":\"sum\"") && strstr(meta, "\"format\":\"dense\""), "meta %s", meta);
    lp_weights_close(pw);
    lp_linear_free(&back);
    lp_weights_close(kw);

    /* one packed part: the plain layout */
    lp_linear one = {.rows = ROWS, .cols = COLS};
    lp_qgroup *q1 = calloc(1, sizeof *q1);
    CHECK_OK(lp_qgroup_init(q1, ROWS, COLS, 4, 64, true));
    CHECK_OK(lp_rtn_quantize(W, q1));
    lp_linear_set(&one, &lp_format_qgroup, q1);
    CHECK_OK(save(&one, bad));
    CHECK_OK(lp_weights_open(bad, &pw));
    CHECK(lp_weights_find(pw, "blk.x.qweight") && !lp_weights_find(pw, "blk.x.p0.qweight"));
    lp_weights_close(pw);
    lp_linear_free(&one);

    /* corrupt sums */
    const struct {
        const char *meta, *want;
        lp_status st;
    } cases[] = {
        {"{\"format\":\"sum\"}", "parts", LP_ERR_FORMAT},
        {"{\"format\":\"sum\",\"parts\":[]}", "parts", LP_ERR_FORMAT},
        {"{\"format\":\"sum\",\"parts\":[{\"format\":\"dense\"},{\"format\":\"dense\"},{\"format\":\"dense\"},"
         "{\"format\":\"dense\"},{\"format\":\"dense\"}]}", "parts", LP_ERR_FORMAT},
        {"{\"format\":\"sum\",\"parts\":[{\"format\":\"wavelet\"}]}", "wavelet", LP_ERR_UNSUPPORTED},
        {"{\"format\":\"sum\",\"parts\":[{\"format\":\"sum\",\"parts\":[]}]}", "sum", LP_ERR_UNSUPPORTED},
        {"{\"format\":\"sum\",\"parts\":[{\"format\":\"qgroup\",\"bits\":3,\"group\":32,\"sym\":false},"
         "{\"format\":\"qgroup\",\"bits\":3,\"group\":32,\"sym\":false}]}", "blk.x.p1.qweight", LP_ERR_FORMAT},
        {"{\"format\":\"sum\",\"parts\":[{\"format\":\"qgroup\",\"bits\":4294967300,\"group\":32,\"sym\":false}]}",
         "bits", LP_ERR_FORMAT},
        {"{\"format\":\"sum\",\"parts\":[{\"format\":\"qgroup\",\"bits\":3,\"group\":32,\"sym\":\"yes\"}]}", "sym",
         LP_ERR_FORMAT},
        {"not json", "blk.x", LP_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_OK(with_meta(path, bad, cases[i].meta));
        lp_linear b = {0};
        lp_weights *bw = NULL;
        lp_status st = load(bad, &b, &bw);
        CHECKF(st == cases[i].st && strstr(lp_last_error(), cases[i].want), "case %zu: status %d, '%s'", i, (int)st,
               lp_last_error());
        CHECK(b.nparts == 0);
        lp_weights_close(bw);
    }

    unlink(path);
    unlink(bad);
    rmdir(dir);
    lp_linear_free(&l);
    lp_linear_free(&ref);
    free(W);
    free(X);
    free(Yw);
    free(Y);
    TEST_DONE();
}
