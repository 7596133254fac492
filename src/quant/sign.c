/*
 * sign.c - the "sign" method: each row binarized to its sign times its mean
 * absolute value (BinaryConnect's sign(W), scaled as XNOR-Net does, Rastegari
 * et al. 2016: alpha = ||w_r||_1 / n minimizes ||w_r - alpha sign(w_r)||^2).
 * No calibration, no options. The floor every binarization method (BiLLM,
 * PB-LLM, ARB-LLM) improves on.
 *
 * Algorithm, per output row r of W (rows x cols, out x in):
 *   alpha_r = mean_c |w[r][c]|   (summed in double, then rounded to f16)
 *   b[r][c] = w[r][c] >= 0       (1: +alpha_r, 0: -alpha_r)
 * into the sign format (format/sign.h): 1 bit per weight plus one f16 per row.
 * Deliberate differences from torch.sign(W) * W.abs().mean(1):
 *   - a weight exactly 0 (or -0) takes +alpha_r: torch.sign gives 0 there,
 *     which a 1-bit code cannot hold;
 *   - alpha_r is stored in f16 (relative rounding <= 2^-11); a row whose
 *     mean |w| exceeds f16's 65504 is an error (LP_ERR_NUMERIC), one below
 *     f16's smallest subnormal gets alpha = 0.
 * Rows are independent (one OpenMP loop over them): bit-identical for any
 * thread count.
 */
#include "core/half.h"
#include "core/status_impl.h"
#include "format/sign.h"
#include "quant/method.h"

#include <math.h>
#include <stdlib.h>

/* One row into w's row r; false when alpha overflows f16. */
static bool binarize_row(const float *wr, lp_sign *w, int64_t r) {
    double s = 0.0;
    for (int64_t c = 0; c < w->cols; c++) s += fabs((double)wr[c]);
    const uint16_t h = lp_f32_to_f16((float)(s / (double)w->cols));
    if ((h & 0x7c00u) == 0x7c00u) return false;
    w->scales[r] = h;
    uint32_t *b = w->signs + r * w->words; /* zeroed by lp_sign_init: padding stays 0 */
    for (int64_t c = 0; c < w->cols; c++)
        if (wr[c] >= 0.0f) b[c >> 5] |= 1u << (c & 31);
    return true;
}

static lp_status compress(const lp_compress_args *a, lp_linear *out) {
    lp_sign *w = calloc(1, sizeof *w);
    if (!w) return lp_fail(LP_ERR_NOMEM, "out of memory");
    lp_status st = lp_sign_init(w, a->rows, a->cols);
    if (st != LP_OK) {
        free(w);
        return st;
    }
    const double t0 = lp_now_s();
    int64_t bad = -1;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < a->rows; r++)
        if (!binarize_row(a->W + r * a->cols, w, r)) {
#pragma omp critical(lp_sign_bad_row)
            if (bad < 0 || r < bad) bad = r;
        }
    a->stats->quantize += lp_now_s() - t0;
    if (bad >= 0) {
        double s = 0.0;
        for (int64_t c = 0; c < a->cols; c++) s += fabs((double)a->W[bad * a->cols + c]);
        lp_sign_free(w);
        free(w);
        return lp_fail(LP_ERR_NUMERIC, "sign: row %lld of %lld x %lld has mean |w| = %g, above f16's 65504; "
                       "expected weights of ordinary magnitude", (long long)bad, (long long)a->rows,
                       (long long)a->cols, s / (double)a->cols);
    }
    lp_linear_set(out, &lp_format_sign, w);
    return LP_OK;
}

static const lp_option OPTIONS[] = {{0}};

const lp_method lp_method_sign = {
    .name = "sign",
    .help = "1-bit sign(w) times the row's mean |w| (1 bit per weight + f16 per row; no calibration)",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = false,
    .settings_size = 0,
    .options = OPTIONS,
    .check = NULL,
    .compress = compress,
};
