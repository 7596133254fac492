/*
 * pbllm.c - the "pbllm" method: partially binarized weights (PB-LLM, Shang
 * et al. 2023, arXiv:2310.00034): a fraction of salient weights held at 8
 * bits (or 16: --salient-bits), the rest binarized, with GPTQ's error
 * feedback over both.
 *
 * What, per linear W (R x C) with H = 2 X^T X / n:
 *   1. with --salient-bits 8 (the default), the 8-bit grid, per row, from
 *      the original W (every weight of the row, 0 inside the range):
 *      S_r = (max - min) / 255, Z_r = round(-min / S_r) (asymmetric min-max,
 *      as GPTQ's quantizer); with 16, no grid: a held weight is its f16
 *      value;
 *   2. after the error-feedback loop's dead-input and Cholesky steps
 *      (obs.h), the salient set, once for the whole matrix: the weights
 *      whose saliency w^2 / d^2 (d = U[j][j], U the upper Cholesky factor of
 *      (H + damp)^-1; --salient-by magnitude: |w|) lies above the
 *      (1 - F)-quantile of all R x C saliencies (ties binarized);
 *   3. the binarized weights' mean and scale per row, from W with its salient
 *      weights zeroed, over all C columns ("xnor", mean-centred):
 *      m_r = mean w,  s_r = mean |w - m_r|;  value m_r + s_r sign(w - m_r);
 *   4. columns in order with GPTQ's lazy-block error feedback (--gptq-block),
 *      each weight quantized with its row's binary pair, or, held, on its
 *      row's 8-bit grid (8) or rounded to f16 (16: q = f16(w), the updated w).
 *   Stored in the binary format (format/binary.h: one block per row, one
 *   sign plane, the held mask and the held weights as 8-bit codes, hbits 8,
 *   or f16 values, hbits 16); parameters m_r, s_r in f16, S_r, Z_r in f32;
 *   the loop sees the stored values (verify checks every one).
 * The authors' code (hahnyuan/PB-LLM @fe85da9, gptq_pb/, read not copied)
 *   does the same with low_frac = 1 - F; differences: sums in double, a
 *   zero deviation binarizes to m_r + s_r (theirs: m_r), the threshold is
 *   found by selection rather than a full sort (the same element); their
 *   16-bit salient weights stay in the model's fp16 weights, as here.
 * Calibration: every linear of a block on the block's input (block_input).
 */
#include "core/half.h"
#include "core/status_impl.h"
#include "format/binary.h"
#include "quant/method.h"
#include "quant/obs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { BY_HESSIAN = 0, BY_MAGNITUDE = 1 };

typedef struct {
    double salient;
    int salient_bits;
    int salient_by;
    double damp;
    int gptq_block;
} pb_settings;

typedef struct {
    const pb_settings *s;
    const float *W0; /* the original W (the 8-bit grid's range) */
    int64_t R, C;
    uint8_t *held;   /* R x C: 1 = salient, held at salient_bits */
    uint8_t *codes;  /* R x C: the 8-bit code of a held weight (salient_bits 8) */
    uint16_t *h16;   /* R x C: the f16 value of a held weight (salient_bits 16) */
    uint8_t *sign;   /* R x C: 1 where a binarized weight took m + s */
    float *S, *Z;    /* R: the 8-bit grid */
    float *m, *sc;   /* R: the binary pair m +- s (f16-rounded) */
    lp_status st;
} pb_job;

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The k-th smallest of v (n values, reordered): quickselect. */
static float kth(float *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (hi - lo > 16) {
        const float a = v[lo], b = v[(lo + hi) / 2], c = v[hi];
        const float p = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < p) i++;
            while (v[j] > p) j--;
            if (i <= j) {
                const float t = v[i];
                v[i++] = v[j];
                v[j--] = t;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return v[k];
    }
    qsort(v + lo, (size_t)(hi - lo + 1), sizeof *v, cmp_float);
    return v[k];
}

/* The per-row 8-bit grid of the original weights. */
static void grid_8bit(pb_job *J) {
    for (int64_t r = 0; r < J->R; r++) {
        float lo = 0.0f, hi = 0.0f;
        for (int64_t c = 0; c < J->C; c++) {
            const float w = J->W0[r * J->C + c];
            lo = w < lo ? w : lo;
            hi = w > hi ? w : hi;
        }
        if (lo == 0.0f && hi == 0.0f) {
            lo = -1.0f;
            hi = 1.0f;
        }
        J->S[r] = (hi - lo) / 255.0f;
        J->Z[r] = rintf(-lo / J->S[r]);
    }
}

/* Steps 2 and 3 at the first block: Wp is W with dead inputs zeroed. */
static lp_status choose(void *ud, int64_t i1, int64_t i2, const float *Wp, const float *hinv) {
    (void)i2;
    pb_job *J = ud;
    if (i1 != 0) return LP_OK;
    const int64_t R = J->R, C = J->C, N = R * C;
    float *sal = malloc((size_t)N * sizeof *sal), *v = malloc((size_t)N * sizeof *v);
    if (!sal || !v) {
        free(sal);
        free(v);
        return lp_fail(LP_ERR_NOMEM, "pbllm: out of memory for the saliency of a %lld x %lld linear", (long long)R,
                       (long long)C);
    }
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) {
            const float w = Wp[r * C + c], d = hinv[c * C + c];
            sal[r * C + c] = J->s->salient_by == BY_MAGNITUDE ? fabsf(w) : w * w / (d * d);
        }
    memcpy(v, sal, (size_t)N * sizeof *v);
    const int64_t k = (int64_t)((double)N * (1.0 - J->s->salient));
    const float thresh = kth(v, N, k < N ? k : N - 1);
    for (int64_t i = 0; i < N; i++) J->held[i] = !(sal[i] <= thresh);
    free(sal);
    free(v);
    for (int64_t r = 0; r < R; r++) {
        double s = 0.0;
        for (int64_t c = 0; c < C; c++) s += J->held[r * C + c] ? 0.0 : (double)Wp[r * C + c];
        const float m = (float)(s / (double)C);
        double a = 0.0;
        for (int64_t c = 0; c < C; c++) a += fabs((double)((J->held[r * C + c] ? 0.0f : Wp[r * C + c]) - m));
        const uint16_t hm = lp_f32_to_f16(m), hs = lp_f32_to_f16((float)(a / (double)C));
        if ((hm & 0x7c00u) == 0x7c00u || (hs & 0x7c00u) == 0x7c00u)
            return lp_fail(LP_ERR_NUMERIC, "pbllm: row %lld: the binary mean or scale overflows f16; expected weights "
                           "of ordinary magnitude", (long long)r);
        J->m[r] = lp_f16_to_f32(hm);
        J->sc[r] = lp_f16_to_f32(hs);
    }
    return LP_OK;
}

static int column(void *ud, int64_t r, int64_t c, float w, const float *outer, float *q) {
    (void)outer;
    pb_job *J = ud;
    if (J->held[r * J->C + c] && J->s->salient_bits == 16) {
        const uint16_t h = lp_f32_to_f16(w);
        J->h16[r * J->C + c] = h;
        *q = lp_f16_to_f32(h); /* infinite when |w| overflows f16: the row fails below */
    } else if (J->held[r * J->C + c]) {
        float code = rintf(w / J->S[r]) + J->Z[r];
        code = code < 0.0f ? 0.0f : code > 255.0f ? 255.0f : code;
        if (!(code == code)) return 1;
        J->codes[r * J->C + c] = (uint8_t)code;
        *q = J->S[r] * (code - J->Z[r]);
    } else {
        /* the format's value: s0 a0 + mu */
        J->sign[r * J->C + c] = w - J->m[r] >= 0.0f;
        *q = (J->sign[r * J->C + c] ? 1.0f : -1.0f) * J->sc[r] + J->m[r];
    }
    return !isfinite(*q);
}

/* The binary format from the loop's choices; the held codes (f16 values) in
 * row-major order. */
static lp_status pack(const pb_job *J, lp_binary *b) {
    const int64_t R = J->R, C = J->C;
    const bool f16 = J->s->salient_bits == 16;
    int64_t nheld = 0;
    for (int64_t i = 0; i < R * C; i++) nheld += J->held[i];
    lp_binary_shape sh = {.block = C, .ngs = 0, .ngn = 1, .rc = false, .held = true, .hbits = f16 ? 16 : 8};
    LP_TRY(lp_binary_init(b, R, C, &sh, NULL, nheld));
    int64_t k = 0;
    for (int64_t r = 0; r < R; r++) {
        uint16_t *P = lp_binary_rp(b, r, 0);
        P[0] = lp_f32_to_f16(J->m[r]);
        P[1] = lp_f32_to_f16(J->sc[r]);
        if (!f16) {
            b->hq[2 * r] = J->S[r];
            b->hq[2 * r + 1] = J->Z[r];
        }
        for (int64_t c = 0; c < C; c++) {
            const int64_t i = r * C + c;
            if (J->held[i]) {
                lp_binary_set(b->hmask + r * b->words, c, 1);
                if (f16) b->codes16[k++] = J->h16[i];
                else b->codes[k++] = J->codes[i];
            } else {
                lp_binary_set(b->s0 + r * b->words, c, J->sign[i]);
            }
        }
    }
    return lp_binary_finish(b);
}

/* The values the loop kept, recovered from the format: every held code (f16
 * value) and sign must give back exactly what the loop used. */
static lp_status verify(const lp_binary *b, const float *Wq, const pb_job *J) {
    for (int64_t r = 0; r < J->R; r++) {
        int64_t h = b->hoff[r];
        for (int64_t c = 0; c < J->C; c++) {
            const int held = lp_binary_bit(b->hmask + r * b->words, c);
            const float v = lp_binary_value_at(b, r, c, 0, h);
            h += held;
            if (v != Wq[r * J->C + c])
                return lp_fail(LP_ERR_NUMERIC, "pbllm: the stored weight [%lld][%lld] = %g differs from the value "
                               "the error feedback used, %g", (long long)r, (long long)c, v, Wq[r * J->C + c]);
        }
    }
    return LP_OK;
}

/* The loop's kept values, as column() computed them. */
static void kept_values(const pb_job *J, float *Wq) {
    for (int64_t r = 0; r < J->R; r++)
        for (int64_t c = 0; c < J->C; c++) {
            const int64_t i = r * J->C + c;
            if (J->held[i] && J->s->salient_bits == 16) Wq[i] = lp_f16_to_f32(J->h16[i]);
            else if (J->held[i]) Wq[i] = J->S[r] * ((float)J->codes[i] - J->Z[r]);
            else Wq[i] = (J->sign[i] ? 1.0f : -1.0f) * J->sc[r] + J->m[r];
        }
}

static lp_status check_shape(const void *s, int64_t rows, int64_t cols) {
    (void)s;
    (void)rows;
    if (cols % 32)
        return lp_fail(LP_ERR_ARG, "pbllm: a linear with %lld input columns cannot be stored: the binary format "
                       "packs whole 32-bit words per row (widths a multiple of 32)", (long long)cols);
    return LP_OK;
}

static lp_status compress(const lp_compress_args *a, lp_linear *out) {
    const pb_settings *s = a->settings;
    const int64_t R = a->rows, C = a->cols;
    if (!a->H) return lp_fail(LP_ERR_ARG, "pbllm needs calibration data (--calib)");
    LP_TRY(check_shape(s, R, C));
    pb_job J = {.s = s, .W0 = a->W, .R = R, .C = C};
    J.held = calloc((size_t)(R * C), 1);
    if (s->salient_bits == 16) J.h16 = calloc((size_t)(R * C), sizeof(uint16_t));
    else J.codes = calloc((size_t)(R * C), 1);
    J.sign = calloc((size_t)(R * C), 1);
    J.S = malloc((size_t)R * sizeof(float));
    J.Z = malloc((size_t)R * sizeof(float));
    J.m = malloc((size_t)R * sizeof(float));
    J.sc = malloc((size_t)R * sizeof(float));
    float *Hc = malloc((size_t)(C * C) * sizeof(float)), *Wq = malloc((size_t)(R * C) * sizeof(float));
    lp_binary *b = calloc(1, sizeof *b);
    lp_status st = LP_OK;
    if (!J.held || !(J.codes || J.h16) || !J.sign || !J.S || !J.Z || !J.m || !J.sc || !Hc || !Wq || !b) {
        st = lp_fail(LP_ERR_NOMEM, "pbllm: out of memory for a %lld x %lld linear", (long long)R, (long long)C);
        goto done;
    }
    if (s->salient_bits == 8) grid_8bit(&J);
    memcpy(Hc, a->H, (size_t)(C * C) * sizeof(float));
    lp_obs_params op = lp_obs_default_params("pbllm");
    op.damp = s->damp;
    op.block = s->gptq_block;
    const lp_obs_step step = {.ud = &J, .block_all = choose, .column = column};
    lp_obs_stats os = {0};
    st = lp_obs_run(a->W, R, C, Hc, &op, &step, &os);
    a->stats->factorize += os.t_factor;
    a->stats->quantize += os.t_loop;
    if (st == LP_OK) st = pack(&J, b);
    if (st == LP_OK) {
        kept_values(&J, Wq);
        st = verify(b, Wq, &J);
    }
    if (st == LP_OK) {
        lp_linear_set(out, &lp_format_binary, b);
        b = NULL;
    }
done:
    free(J.held);
    free(J.codes);
    free(J.h16);
    free(J.sign);
    free(J.S);
    free(J.Z);
    free(J.m);
    free(J.sc);
    free(Hc);
    free(Wq);
    lp_binary_free(b);
    free(b);
    return st;
}

static lp_status check(const void *p) {
    const pb_settings *s = p;
    if (s->salient_bits != 8 && s->salient_bits != 16)
        return lp_fail(LP_ERR_ARG, "pbllm --salient-bits %d: expected 8 (codes on a per-row min-max grid) or 16 "
                       "(f16 values)",
                       s->salient_bits);
    return LP_OK;
}

static const lp_option OPTIONS[] = {
    {"salient", LP_OPT_FLOAT, 1e-9, 0.5, 0.1, "F", "fraction of weights held (at --salient-bits), in (0, 0.5]",
     offsetof(pb_settings, salient)},
    {"salient-bits", LP_OPT_INT, 8, 16, 8, "B",
     "bits of the held weights: 8 (codes on a per-row min-max grid) or 16 (f16 values)",
     offsetof(pb_settings, salient_bits)},
    {"salient-by", LP_OPT_CHOICE, 0, 1, BY_HESSIAN, "hessian|magnitude", "how salient weights are chosen: w^2/d^2 "
     "(Hessian) or |w|", offsetof(pb_settings, salient_by)},
    LP_OPTION_DAMP(pb_settings),
    LP_OPTION_GPTQ_BLOCK(pb_settings),
    {0},
};

const lp_method lp_method_pbllm = {
    .name = "pbllm",
    .help = "PB-LLM: salient weights held at 8 (or 16) bits, the rest binarized, GPTQ error feedback",
    .scope = LP_SCOPE_LINEAR,
    .calibrated = true,
    .block_input = true,
    .settings_size = sizeof(pb_settings),
    .options = OPTIONS,
    .check = check,
    .check_shape = check_shape,
    .compress = compress,
};
