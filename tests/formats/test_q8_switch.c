/*
 * test_q8_switch.c - the activation switch (lp_set_activations,
 * lp_set_q8_activations, LP_ACT): a qgroup linear's product through its
 * traits row runs the q8 product for one token when q8 or q8-all is on and
 * the CPU has it, the f32 product otherwise; for several tokens (prefill,
 * perplexity) the f32 product under q8 and the q8 one (lp_qgroup_gemm_q8)
 * under q8-all. The names parse both ways; another name is refused.
 */
#include "core/cpu.h"
#include "core/half.h"
#include "format/linear.h"
#include "format/qgroup.h"
#include "format/qgroup_q8.h"
#include "llmpress/model.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

int main(void) {
    const int64_t rows = 96, cols = 512, T = 3;
    unsigned long long rng = 7;
    lp_qgroup *w = calloc(1, sizeof *w);
    CHECK_OK(lp_qgroup_init(w, rows, cols, 4, 128, 0));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) lp_qgroup_set(w, r, c, (unsigned)(test_rand_u64(&rng) & 15));
    for (int64_t i = 0; i < rows * w->ngroups; i++) {
        w->scales[i] = lp_f32_to_f16(0.01f + 0.001f * (float)(i % 7));
        w->zeros[i] = (uint8_t)(i % 16);
    }
    lp_linear l = {.rows = rows, .cols = cols};
    lp_linear_set(&l, &lp_format_qgroup, w);
    float x[3 * 512], y[3 * 96], yf[3 * 96], yq[96];
    for (int64_t i = 0; i < T * cols; i++) x[i] = test_randn(&rng);

    unsetenv("LP_ACT"); /* read on first use: the default is off */
    CHECK(!lp_q8_activations());
    CHECK_OK(lp_qgroup_gemm(w, x, 1, yf));
    CHECK_OK(lp_linear_forward(&l, x, 1, y));
    CHECK(!memcmp(y, yf, sizeof(float) * rows)); /* off: the f32 product */

    lp_set_q8_activations(true);
    CHECK(lp_q8_activations());
    CHECK_OK(lp_linear_forward(&l, x, 1, y));
    if (lp_qgroup_q8_supported(w)) {
        CHECK_OK(lp_qgroup_gemv_q8(w, x, yq));
        CHECK(!memcmp(y, yq, sizeof(float) * rows)); /* on: the q8 product, exactly */
        CHECK(memcmp(y, yf, sizeof(float) * rows)); /* which is not the f32 one */
    } else {
        CHECK(!memcmp(y, yf, sizeof(float) * rows)); /* no VNNI: the f32 product still */
    }
    /* several tokens under q8: the f32 product */
    float yt[3 * 96], yg[3 * 96];
    CHECK(lp_activations() == LP_ACT_Q8);
    CHECK_OK(lp_linear_forward(&l, x, T, yt));
    lp_set_q8_activations(false);
    CHECK(lp_activations() == LP_ACT_F32);
    CHECK_OK(lp_qgroup_gemm(w, x, T, y));
    CHECK(!memcmp(y, yt, sizeof(float) * T * rows));
    /* q8-all: one token as q8, several through lp_qgroup_gemm_q8 */
    lp_set_activations(LP_ACT_Q8_ALL);
    CHECK(lp_q8_activations());
    CHECK_OK(lp_linear_forward(&l, x, T, yt));
    CHECK_OK(lp_linear_forward(&l, x, 1, y));
    if (lp_qgroup_q8_supported(w)) {
        CHECK_OK(lp_qgroup_gemm_q8(w, x, T, yg));
        CHECK(!memcmp(yt, yg, sizeof(float) * T * rows));
        CHECK_OK(lp_qgroup_gemv_q8(w, x, yq));
        CHECK(!memcmp(y, yq, sizeof(float) * rows));
    } else {
        CHECK_OK(lp_qgroup_gemm(w, x, T, yg));
        CHECK(!memcmp(yt, yg, sizeof(float) * T * rows));
    }
    lp_set_activations(LP_ACT_F32);
    /* names */
    lp_act a = LP_ACT_F32;
    for (int i = 0; i < 3; i++) CHECK(lp_act_from_name(lp_act_name((lp_act)i), &a) && a == (lp_act)i);
    CHECK(!strcmp(lp_act_name(LP_ACT_Q8_ALL), "q8-all"));
    CHECK(!lp_act_from_name("int8", &a) && !lp_act_from_name(NULL, &a) && a == LP_ACT_Q8_ALL);
    lp_linear_free(&l);
    TEST_DONE();
}
