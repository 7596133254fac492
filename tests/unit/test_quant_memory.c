/*
 * test_quant_memory.c - calibrated runs estimate their memory before any work
 * (lp_quant_memory_check) and refuse what the machine cannot hold.
 *  - The estimate covers what the run really holds: at least the pipeline's
 *    own peak (lp_quant_stats.peak_activation_bytes, X/Y/Z/T/H, plus AWQ's
 *    statistics) plus the windows, and not wildly more (under 4x + 16 MB),
 *    for GPTQ, AWQ and AWQ then GPTQ on a tiny model;
 *  - it grows with nsamples x seqlen;
 *  - 2^20 windows of 2^20 tokens (4 TB of ids alone) are refused with
 *    LP_ERR_NOMEM naming the estimate, its parts and the machine's memory,
 *    by the check and by lp_model_quantize itself, before it reads a single
 *    window (the token buffer given is one id long: reading more would be a
 *    bad read, caught under ASan);
 *  - a run without calibration needs no estimate (0).
 */
#include "test.h"

#include "llmpress/model.h"
#include "llmpress/quant.h"

#include <stdint.h>

static lp_model *load(const char *name) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s", test_data("models/"));
    strncat(dir, name, sizeof dir - strlen(dir) - 1);
    lp_model *m = NULL;
    CHECK_OK(lp_model_load(dir, &m));
    return m;
}

static bool has(const char *s) { return strstr(lp_last_error(), s) != NULL; }

/* Estimate, then run: the estimate must cover what the run reports holding. */
static void check_covers(const char *spec, const char *prescale) {
    lp_model *m = load("tiny-llama3");
    if (!m) return;
    lp_settings *s = NULL, *ps = NULL;
    CHECK_OK(lp_settings_parse(spec, &s));
    if (prescale) CHECK_OK(lp_settings_parse(prescale, &ps));
    const int64_t N = 4, L = 32, V = lp_model_config(m)->vocab;
    int32_t *tok = malloc((size_t)(N * L) * sizeof *tok);
    for (int64_t i = 0; i < N * L; i++) tok[i] = (int32_t)((i * 7919) % V);
    lp_calib cal = {tok, N, L};
    lp_quant_stats st = {0};
    lp_quant_params qp = {.method = s, .prescale = ps, .calib = &cal, .stats = &st};
    size_t est = 0;
    CHECK_OK(lp_quant_memory_check(m, &qp, &est));
    CHECK_OK(lp_model_quantize(m, &qp));
    const size_t held = st.peak_activation_bytes + (size_t)(N * L) * sizeof(int32_t);
    CHECKF(est >= held && est < 4 * held + ((size_t)16 << 20), "%s%s%s: estimate %zu, the run held %zu", spec,
           prescale ? " + " : "", prescale ? prescale : "", est, held);
    /* more tokens, more memory */
    lp_calib cal2 = {tok, 2 * N, 4 * L};
    qp.calib = &cal2;
    size_t est2 = 0;
    CHECK_OK(lp_quant_memory_check(m, &qp, &est2));
    CHECKF(est2 > est, "%s: 8x the tokens: estimate %zu, not above %zu", spec, est2, est);
    free(tok);
    lp_settings_free(s);
    lp_settings_free(ps);
    lp_model_free(m);
}

static void test_refused(void) {
    lp_model *m = load("tiny-mistral");
    if (!m) return;
    lp_settings *s = NULL;
    CHECK_OK(lp_settings_parse("gptq bits=4 group=32", &s));
    const int32_t one = 0;
    lp_calib cal = {&one, (int64_t)1 << 20, (int64_t)1 << 20};
    lp_quant_params qp = {.method = s, .calib = &cal};
    size_t est = 0;
    lp_status st = lp_quant_memory_check(m, &qp, &est);
    CHECKF(st == LP_ERR_NOMEM, "2^40 tokens: status %s: %s", lp_status_name(st), lp_last_error());
    CHECKF(est >= ((size_t)1 << 42), "2^40 tokens: estimate %zu below the ids' 4 TB", est);
    CHECKF(has("1048576 x 1048576 tokens") && has("TB") && has("available") &&
               has("windows") && has("activations") && has("--nsamples"),
           "refusal message: %s", lp_last_error());
    /* lp_model_quantize refuses before reading the windows (one id given) */
    st = lp_model_quantize(m, &qp);
    CHECKF(st == LP_ERR_NOMEM && has("available"), "lp_model_quantize: %s: %s", lp_status_name(st), lp_last_error());
    /* AWQ's estimate too */
    lp_settings *a = NULL;
    CHECK_OK(lp_settings_parse("awq", &a));
    qp.method = a;
    CHECK(lp_quant_memory_check(m, &qp, &est) == LP_ERR_NOMEM && has("AWQ"));
    /* no calibration, no estimate */
    lp_settings *r = NULL;
    CHECK_OK(lp_settings_parse("rtn", &r));
    lp_quant_params rq = {.method = r};
    est = 1;
    CHECK_OK(lp_quant_memory_check(m, &rq, &est));
    CHECK(est == 0);
    lp_settings_free(r);
    lp_settings_free(a);
    lp_settings_free(s);
    lp_model_free(m);
}

int main(void) {
    check_covers("gptq bits=4 group=32", NULL);
    check_covers("awq bits=4 group=32", NULL);
    check_covers("gptq bits=3 group=32", "awq bits=3 group=32");
    test_refused();
    TEST_DONE();
}
