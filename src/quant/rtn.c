/*
 * rtn.c - round-to-nearest quantization (the baseline of every PTQ paper):
 * per row and per group of `group` columns, the min-max grid of grid.h,
 *   q = clamp(round(x / scale) + zero, 0, maxq)     round = half to even,
 * optionally with each group's range shrunk by the clipping search (clip.h),
 * packed into qgroup; and the "rtn" method's registry row.
 */
#include "quant/rtn.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "quant/clip.h"
#include "quant/method.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* One row: params per group (range shrunk by clip when given), then pack
 * block by block. */
static lp_status quantize_row(const float *wr, const float *clip, lp_qgroup *out, int64_t r) {
    int maxq = (1 << out->bits) - 1;
    int64_t cols = out->cols;
    for (int64_t g = 0; g < out->ngroups; g++) {
        int64_t c0 = g * out->group, c1 = c0 + out->group < cols ? c0 + out->group : cols;
        float s;
        int z;
        if (clip)
            LP_TRY(lp_qparams_clipped(wr + c0, c1 - c0, out->bits, out->sym, clip[(r * out->ngroups + g) * 2],
                                      clip[(r * out->ngroups + g) * 2 + 1], &s, &z));
        else
            LP_TRY(lp_qparams_minmax(wr + c0, c1 - c0, out->bits, out->sym, &s, &z));
        out->scales[r * out->ngroups + g] = lp_f32_to_f16(s); /* exact: s is an f16 value */
        if (!out->sym) out->zeros[r * out->ngroups + g] = (uint8_t)z;
        /* group is a multiple of 32 (or the whole row), so blocks never span groups */
        for (int64_t c = c0; c < c1; c += LP_QGROUP_BLOCK) {
            uint8_t v[LP_QGROUP_BLOCK] = {0}; /* padding past cols stays 0 */
            int64_t n = c1 - c < LP_QGROUP_BLOCK ? c1 - c : LP_QGROUP_BLOCK;
            for (int64_t j = 0; j < n; j++) v[j] = (uint8_t)lp_rtn_quantize_value(wr[c + j], s, z, maxq);
            lp_qgroup_put_block(out, r, c / LP_QGROUP_BLOCK, v);
        }
    }
    return LP_OK;
}

lp_status lp_rtn_quantize(const float *W, lp_qgroup *out) { return lp_rtn_quantize_clipped(W, NULL, out); }

lp_status lp_rtn_quantize_clipped(const float *W, const float *clip, lp_qgroup *out) {
    LP_ASSERT(out && out->q && out->scales && (out->sym || out->zeros));
    int64_t bad_row = -1;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < out->rows; r++) {
        if (quantize_row(W + r * out->cols, clip, out, r) != LP_OK) {
#pragma omp critical(lp_rtn_bad_row)
            if (bad_row < 0 || r < bad_row) bad_row = r;
        }
    }
    if (bad_row >= 0) {
        /* Messages are per thread: redo the first failing row here to report it. */
        lp_status st = quantize_row(W + bad_row * out->cols, clip, out, bad_row);
        LP_ASSERT(st != LP_OK);
        return lp_fail_ctx(st, "rtn: row %lld of %lld x %lld", (long long)bad_row,
                           (long long)out->rows, (long long)out->cols);
    }
    return LP_OK;
}

/* ---- the registry row: RTN, optionally with searched clipping ranges ---- */

typedef struct {
    int bits, group;
    bool sym, clip;
    int clip_grid;
    double clip_max_shrink;
} rtn_settings;

static const lp_option OPTIONS[] = {
    LP_OPTION_BITS(rtn_settings, 1, 8),
    LP_OPTION_GROUP(rtn_settings),
    LP_OPTION_SYM(rtn_settings),
    {"clip", LP_OPT_BOOL, 0, 1, 0, NULL, "search each group's min/max shrink factors on the layer's output error "
     "(needs calibration)", offsetof(rtn_settings, clip)},
    LP_OPTION_CLIP_GRID(rtn_settings),
    LP_OPTION_CLIP_MAX_SHRINK(rtn_settings),
    {0},
};

static lp_status check(const void *p) {
    const rtn_settings *s = p;
    return lp_check_grouped("rtn", s->bits, s->group, s->sym);
}

static bool calib_when(const void *p) { return ((const rtn_settings *)p)->clip; }

static lp_status compress(const lp_compress_args *a, lp_linear *out) {
    const rtn_settings *s = a->settings;
    if (s->clip && !a->H) return lp_fail(LP_ERR_ARG, "rtn --clip needs calibration data");
    float *clip = NULL;
    lp_qgroup *q = calloc(1, sizeof *q);
    lp_status st = q ? lp_qgroup_init(q, a->rows, a->cols, s->bits, s->group, s->sym)
                     : lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK && s->clip) st = lp_clip_for(a->W, a->H, q, s->clip_grid, s->clip_max_shrink, a->stats, &clip);
    if (st == LP_OK) {
        double t0 = lp_now_s();
        st = lp_rtn_quantize_clipped(a->W, clip, q);
        a->stats->quantize += lp_now_s() - t0;
    }
    if (st == LP_OK) {
        lp_linear_set(out, &lp_format_qgroup, q);
    } else if (q) {
        lp_qgroup_free(q);
        free(q);
    }
    free(clip);
    return st;
}

const lp_method lp_method_rtn = {
    .name = "rtn",
    .help = "round to nearest, min-max per group (grouped integers; no calibration unless --clip)",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = false,
    .calib_when = calib_when,
    .settings_size = sizeof(rtn_settings),
    .options = OPTIONS,
    .check = check,
    .compress = compress,
};
