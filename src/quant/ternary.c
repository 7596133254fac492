/*
 * ternary.c - the "ternary" method: Ternary Weight Networks' threshold rule
 * (Li et al. 2016, arXiv:1605.04711), applied per group of columns of each
 * row. No calibration.
 *
 * Algorithm, per output row r of W (rows x cols, out x in) and group x of
 * `group` consecutive columns (-1: the whole row), sums in double:
 *   delta = 0.7 * mean_i |x_i|                TWN's approximation of the
 *                                             optimal threshold
 *   I     = { i : |x_i| > delta }
 *   a     = mean_{i in I} |x_i|  (0 when I is empty), rounded to f16
 *   x_hat = sign(x_i) * a for i in I, else 0
 * into the ternary format (format/ternary.h): 2 bits per weight plus one f16
 * per group. A group whose a rounds to 0 in f16 is stored all zero; one whose
 * a exceeds f16's 65504 is an error (LP_ERR_NUMERIC). Rows are independent
 * (one OpenMP loop over them): bit-identical for any thread count.
 */
#include "core/half.h"
#include "core/status_impl.h"
#include "format/ternary.h"
#include "quant/method.h"

#include <math.h>
#include <stdlib.h>

/* One row into w's row r; the first group whose scale overflows f16, or -1. */
static int64_t ternarize_row(const float *wr, lp_ternary *w, int64_t r) {
    uint32_t *m = w->nonzero + r * w->words, *n = w->negative + r * w->words; /* zeroed by lp_ternary_init */
    for (int64_t g = 0; g < w->ngroups; g++) {
        const int64_t c0 = g * w->group, c1 = c0 + w->group < w->cols ? c0 + w->group : w->cols;
        double sum = 0.0;
        for (int64_t c = c0; c < c1; c++) sum += fabs((double)wr[c]);
        const double delta = 0.7 * sum / (double)(c1 - c0);
        double kept = 0.0;
        int64_t nkept = 0;
        for (int64_t c = c0; c < c1; c++)
            if (fabs((double)wr[c]) > delta) {
                kept += fabs((double)wr[c]);
                nkept++;
            }
        const uint16_t h = lp_f32_to_f16(nkept ? (float)(kept / (double)nkept) : 0.0f);
        if ((h & 0x7c00u) == 0x7c00u) return g;
        w->scales[r * w->ngroups + g] = h;
        if (h == 0) continue; /* nothing above the threshold, or a scale below f16's range */
        for (int64_t c = c0; c < c1; c++)
            if (fabs((double)wr[c]) > delta) {
                m[c >> 5] |= 1u << (c & 31);
                if (wr[c] < 0.0f) n[c >> 5] |= 1u << (c & 31);
            }
    }
    return -1;
}

typedef struct {
    int group;
} ternary_settings;

static const lp_option OPTIONS[] = {
    LP_OPTION_GROUP(ternary_settings),
    {0},
};

static lp_status check(const void *p) {
    const ternary_settings *s = p;
    return lp_check_grouped("ternary", 2, s->group, false); /* the grouping rule only: bits and sym are moot */
}

static lp_status compress(const lp_compress_args *a, lp_linear *out) {
    const ternary_settings *s = a->settings;
    lp_ternary *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_ternary_init(w, a->rows, a->cols, s->group);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    const double t0 = lp_now_s();
    int64_t bad_row = -1, bad_group = -1;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < a->rows; r++) {
        const int64_t g = ternarize_row(a->W + r * a->cols, w, r);
        if (g >= 0) {
#pragma omp critical(lp_ternary_bad_row)
            if (bad_row < 0 || r < bad_row) bad_row = r, bad_group = g;
        }
    }
    a->stats->quantize += lp_now_s() - t0;
    if (bad_row >= 0) {
        const int group = w->group;
        lp_ternary_free(w);
        free(w);
        return lp_fail(LP_ERR_NUMERIC, "ternary: row %lld group %lld (%d columns) of %lld x %lld needs scale above "
                       "f16's 65504; expected weights of ordinary magnitude", (long long)bad_row,
                       (long long)bad_group, group, (long long)a->rows, (long long)a->cols);
    }
    lp_linear_set(out, &lp_format_ternary, w);
    return LP_OK;
}

const lp_method lp_method_ternary = {
    .name = "ternary",
    .help = "ternary {-a, 0, +a}, TWN threshold 0.7 mean |w| per group (2 bits + f16 per group; no calibration)",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = false,
    .settings_size = sizeof(ternary_settings),
    .options = OPTIONS,
    .check = check,
    .compress = compress,
};
