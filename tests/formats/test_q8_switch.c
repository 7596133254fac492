/*
 * test_q8_switch.c - the decode-activation switch (lp_set_q8_activations,
 * LP_ACT=q8): a qgroup linear's product through its traits row runs the q8
 * product for one token when it is on and the CPU has it, the f32 product
 * otherwise, and never for several tokens (prefill, perplexity).
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
    /* several tokens: always the f32 product */
    float yt[3 * 96];
    CHECK_OK(lp_linear_forward(&l, x, T, yt));
    lp_set_q8_activations(false);
    CHECK_OK(lp_qgroup_gemm(w, x, T, y));
    CHECK(!memcmp(y, yt, sizeof(float) * T * rows));
    lp_linear_free(&l);
    TEST_DONE();
}
