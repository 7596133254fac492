/*
 * awq.c - AWQ: activation-aware weight quantization, one decoder block at a time
 * (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression
 * and Acceleration", arXiv:2306.00978; reference: mit-han-lab/llm-awq, awq/quantize/
 * pre_quant.py run_awq, auto_scale.py, auto_clip.py, quantizer.py).
 *
 * What: the few input channels that meet large activations carry most of a linear's
 *   output error. Scaling channel c of the weight up by s_c before rounding and the
 *   input down by 1/s_c leaves the float model unchanged but shrinks the salient
 *   channels' relative rounding error. 1/s is folded into the op that produces the
 *   input (an RMSNorm weight or the previous linear's output rows), so inference
 *   costs nothing extra. Per block, X = the block's calibration inputs:
 *   0. run the block once on X with its f32 weights, recording each linear's input
 *      (statistics below); that output is the next block's X.
 *   1. auto_scale, per group   prev op -> linears             compared output
 *        input_layernorm -> q, k, v                  attention (after o)
 *        v -> o  (only when v and o have one shape: never with GQA)   o
 *        post_attention_layernorm -> gate, up        MLP (after down)
 *        up -> down                                  down
 *      xm = mean_t |x_t| per input channel; for r = 0, 1/20, ..., 19/20:
 *        s = max(xm^r, 1e-4); s /= sqrt(max(s) min(s))
 *        loss(r) = mean((out(x; Q(W s) / s) - out(x; W))^2)
 *      keep the best s (r = 0, s = 1, is plain rounding). Every group is searched
 *      on the original weights; then all are folded: prev /= s, W[:, c] *= s_c.
 *   2. auto_clip, for v, o, gate, up, down (not q, k: behind the softmax their
 *      output error says little), on 512 evenly strided tokens of their inputs
 *      (divided by the scales): lp_awq_clip_search, then W = clamp(W, -m, m).
 *   3. round the seven linears with AWQ's quantizer (lp_awq_qparams) into qgroup.
 *
 * Why the next block sees the f32 block: run_awq computes the next inputs before
 *   it scales or clips, and rounds only at the very end, so every block is
 *   calibrated on the original model's activations, whatever the bit width.
 *   We follow it, so our numbers compare with REFERENCE.md's AWQ rows. (GPTQ
 *   propagates the compressed block instead; pipeline.c does that for it.)
 *
 * Design:
 * - The attention group's loss runs the model's own attention (RoPE, GQA, masks):
 *   lp_block_forward with hooks that run q, k, v as Q(W s)/s (stand-ins; the
 *   model is untouched) and apply o to the attention output, add up the error
 *   and stop the block. The MLP group runs forward.c's lp_mlp_act on the
 *   candidates' gate and up, then down.
 * - The single-linear groups (v -> o, up -> down) need no pass over the tokens:
 *   with G = X^T X (one syrk in step 0) and dW = Q(W s)/s - W,
 *     mean_{t,r} ((X dW^T)[t, r])^2 = tr(dW G dW^T) / (n rows),
 *   the reference's loss exactly, at (rows x cols x cols) per candidate instead of
 *   (n x rows x cols); down's inputs (n x F) are never stored. With fewer tokens
 *   than columns (small calibrations) the inputs are kept and the loss computed
 *   directly, which is then the cheaper of the two.
 * - Memory, n = N L calibration tokens: the next X, attention and MLP outputs and
 *   the MLP's input (4 n D floats), G (F^2, plus (H hd)^2 for v -> o), and the
 *   clipping samples (512 x (2D + H hd + F)).
 * - Shapes: W is row-major out x in (rows x cols); n tokens; D hidden, F MLP,
 *   A = H * hd attention width; X of a block is N x L x D.
 *
 * Deviations from llm-awq, all deliberate:
 * - scales are rounded to f16 (the stored format) before the zero point and the
 *   integers are computed, in the searches too, so each search optimizes the
 *   weights that are actually stored;
 * - channel means and losses are accumulated in double; the single-linear losses go
 *   through G (same value, different rounding); clipping error is X (q - w)
 *   rather than X q - X w (same value, no cancellation);
 * - with fewer than 512 calibration tokens clipping uses all of them (the
 *   reference's stride would be 0); a group may be shorter than `group` at the end
 *   of a row (the reference asserts divisibility); --sym uses the symmetric
 *   quantizer of quantizer.py's zero_point=False branch (which the reference never
 *   runs: it asserts);
 * - search_samples > 0 runs the attention and MLP losses of the scale search
 *   on the first that many calibration windows only (the windows are random draws,
 *   so that is a random subset); the channel statistics and the single-linear
 *   losses still use every token. 0, the default, is the reference's behaviour.
 * - v -> o is skipped when v has a bias: lp_model_save writes biases from the
 *   source checkpoint, so a folded v bias would be lost on save.
 */
#include "quant/awq.h"

#include "core/half.h"
#include "core/status_impl.h"
#include "format/dense.h"
#include "model/model_impl.h"
#include "quant/method.h"
#include "quant/grid.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- AWQ's quantizer ---- */

lp_status lp_awq_qparams(const float *x, int64_t n, int bits, int sym, float *scale, int *zero) {
    LP_ASSERT(bits >= 1 && bits <= 8 && n >= 1 && (!sym || bits >= 2));
    const int maxq = (1 << bits) - 1;
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return lp_fail(LP_ERR_NUMERIC, "awq: value %lld of the group is %g, expected a finite number; "
                           "hint: the weights are corrupt or overflowed", (long long)i, x[i]);
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    float s;
    if (sym) { /* max_int = 2^(b-1) - 1, min_int = -2^(b-1): stored as q + 2^(b-1) */
        float amax = fabsf(lo) > fabsf(hi) ? fabsf(lo) : fabsf(hi);
        s = (amax > 1e-5f ? amax : 1e-5f) / (float)((1 << (bits - 1)) - 1);
    } else {
        float range = hi - lo;
        s = (range > 1e-5f ? range : 1e-5f) / (float)maxq;
    }
    uint16_t h = lp_f32_to_f16(s);
    if ((h & 0x7fffu) == 0x7c00u || !isfinite(s))
        return lp_fail(LP_ERR_NUMERIC, "awq: group range [%g, %g] needs scale %g, which exceeds f16's 65504; "
                       "expected weights within about +-%g at %d bits", lo, hi, s, 65504.0 * maxq / 2, bits);
    if (h == 0) h = 1; /* underflow: smallest positive f16, 2^-24 */
    s = lp_f16_to_f32(h);
    int z = 1 << (bits - 1);
    if (!sym) {
        float zf = -rintf(lo / s); /* torch.round: half to even */
        z = zf < 0.0f ? 0 : zf > (float)maxq ? maxq : (int)zf;
    }
    *scale = s;
    *zero = z;
    return LP_OK;
}

/* One row: out = dequant(quant(w)) group by group (out may equal w). */
static lp_status fake_quant_row(const float *w, int64_t cols, int bits, int64_t group, int sym, float *out) {
    const int maxq = (1 << bits) - 1;
    for (int64_t c0 = 0; c0 < cols; c0 += group) {
        const int64_t c1 = c0 + group < cols ? c0 + group : cols;
        float s;
        int z;
        LP_TRY(lp_awq_qparams(w + c0, c1 - c0, bits, sym, &s, &z));
        for (int64_t c = c0; c < c1; c++) out[c] = s * (float)(lp_rtn_quantize_value(w[c], s, z, maxq) - z);
    }
    return LP_OK;
}

lp_status lp_awq_fake_quant(const float *W, int64_t rows, int64_t cols, int bits, int group, int sym,
                            float *out) {
    const int64_t gs = group <= 0 || group > cols ? cols : group;
    int64_t bad = rows;
#pragma omp parallel for schedule(static) reduction(min : bad) if (rows * cols >= 65536)
    for (int64_t r = 0; r < rows; r++)
        if (fake_quant_row(W + r * cols, cols, bits, gs, sym, out + r * cols) != LP_OK && r < bad) bad = r;
    if (bad < rows) { /* messages are per thread: redo the first failing row here */
        lp_status st = fake_quant_row(W + bad * cols, cols, bits, gs, sym, out + bad * cols);
        LP_ASSERT(st != LP_OK);
        return lp_fail_ctx(st, "awq: row %lld of %lld x %lld", (long long)bad, (long long)rows, (long long)cols);
    }
    return LP_OK;
}

/* One row into the packed format: per group its params, then 32-value blocks. */
static lp_status quantize_row(const float *w, lp_qgroup *q, int64_t r) {
    const int maxq = (1 << q->bits) - 1;
    for (int64_t g = 0; g < q->ngroups; g++) {
        const int64_t c0 = g * q->group, c1 = c0 + q->group < q->cols ? c0 + q->group : q->cols;
        float s;
        int z;
        LP_TRY(lp_awq_qparams(w + c0, c1 - c0, q->bits, q->sym, &s, &z));
        q->scales[r * q->ngroups + g] = lp_f32_to_f16(s); /* exact: s is an f16 value */
        if (!q->sym) q->zeros[r * q->ngroups + g] = (uint8_t)z;
        /* group is a multiple of 32 or the whole row: a block never spans two groups */
        for (int64_t c = c0; c < c1; c += LP_QGROUP_BLOCK) {
            uint8_t v[LP_QGROUP_BLOCK] = {0}; /* padding past cols stays 0 */
            const int64_t nb = c1 - c < LP_QGROUP_BLOCK ? c1 - c : LP_QGROUP_BLOCK;
            for (int64_t j = 0; j < nb; j++) v[j] = (uint8_t)lp_rtn_quantize_value(w[c + j], s, z, maxq);
            lp_qgroup_put_block(q, r, c / LP_QGROUP_BLOCK, v);
        }
    }
    return LP_OK;
}

lp_status lp_awq_quantize(const float *W, lp_qgroup *q) {
    LP_ASSERT(q && q->q && q->scales && (q->sym || q->zeros));
    int64_t bad = q->rows;
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (int64_t r = 0; r < q->rows; r++)
        if (quantize_row(W + r * q->cols, q, r) != LP_OK && r < bad) bad = r;
    if (bad < q->rows) {
        lp_status st = quantize_row(W + bad * q->cols, q, bad);
        LP_ASSERT(st != LP_OK);
        return lp_fail_ctx(st, "awq: row %lld of %lld x %lld", (long long)bad, (long long)q->rows,
                           (long long)q->cols);
    }
    return LP_OK;
}

/* ---- auto_clip ---- */

lp_status lp_awq_clip_search(const float *W, int64_t rows, int64_t cols, const float *X, int64_t n, int bits,
                             int group, int sym, int grid, double max_shrink, float *max_val, double *err,
                             double *err0) {
    LP_ASSERT(rows >= 1 && cols >= 1 && n >= 1 && grid >= 1);
    const int64_t gs = group <= 0 || group > cols ? cols : group, G = (cols + gs - 1) / gs;
    /* int(max_shrink * n_grid) candidates; at least i = 0 (no clipping), which
     * max_shrink = 0 gives the same result as none at all */
    int ncand = (int)(max_shrink * grid);
    ncand = ncand < 1 ? 1 : ncand;
    float *dW = malloc((size_t)(rows * gs) * sizeof(float)); /* rows x w: Q(clamp(W)) - W */
    float *Y = malloc((size_t)(n * rows) * sizeof(float));   /* n x rows: X dW^T */
    float *org = malloc((size_t)rows * sizeof(float));
    double *e = malloc((size_t)rows * sizeof(double)), *best = malloc((size_t)rows * sizeof(double));
    lp_status st = dW && Y && org && e && best ? LP_OK : lp_fail(LP_ERR_NOMEM, "awq: out of memory for clipping");
    for (int64_t g = 0; st == LP_OK && g < G; g++) {
        const int64_t c0 = g * gs, w = (c0 + gs < cols ? c0 + gs : cols) - c0;
        for (int64_t r = 0; r < rows; r++) {
            float mx = 0.0f;
            for (int64_t j = 0; j < w; j++) mx = fabsf(W[r * cols + c0 + j]) > mx ? fabsf(W[r * cols + c0 + j]) : mx;
            org[r] = mx;
            max_val[r * G + g] = mx;
            best[r] = INFINITY;
        }
        for (int i = 0; st == LP_OK && i < ncand; i++) {
            const float f = (float)(1.0 - (double)i / grid);
            int64_t bad = rows;
#pragma omp parallel for schedule(static) reduction(min : bad) if (rows * w >= 65536)
            for (int64_t r = 0; r < rows; r++) {
                const float m = org[r] * f, *wr = W + r * cols + c0;
                float *d = dW + r * w;
                for (int64_t j = 0; j < w; j++) d[j] = wr[j] < -m ? -m : wr[j] > m ? m : wr[j];
                if (fake_quant_row(d, w, bits, w, sym, d) != LP_OK && r < bad) bad = r;
                for (int64_t j = 0; j < w; j++) d[j] -= wr[j];
            }
            if (bad < rows) {
                st = lp_fail(LP_ERR_NUMERIC, "awq clip: row %lld, columns %lld..%lld cannot be quantized "
                             "(non-finite weights or a scale beyond f16)", (long long)bad, (long long)c0,
                             (long long)(c0 + w - 1));
                break;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)rows, (int)w, 1.0f, X + c0,
                        (int)cols, dW, (int)w, 0.0f, Y, (int)rows);
            memset(e, 0, (size_t)rows * sizeof(double));
            for (int64_t t = 0; t < n; t++)
                for (int64_t r = 0; r < rows; r++) e[r] += (double)Y[t * rows + r] * Y[t * rows + r];
            for (int64_t r = 0; r < rows; r++) {
                e[r] /= (double)n;
                if (i == 0 && err0) err0[r * G + g] = e[r];
                if (e[r] < best[r]) { /* strictly better only, as the reference */
                    best[r] = e[r];
                    max_val[r * G + g] = org[r] * f;
                }
            }
        }
        for (int64_t r = 0; err && r < rows; r++) err[r * G + g] = best[r];
    }
    free(dW);
    free(Y);
    free(org);
    free(e);
    free(best);
    return st;
}

/* W (rows x cols) = clamp(W, -m, m) with m per (row, group). */
static void apply_clip(float *W, int64_t rows, int64_t cols, int64_t gs, const float *max_val) {
    const int64_t G = (cols + gs - 1) / gs;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const float m = max_val[r * G + c / gs], v = W[r * cols + c];
            W[r * cols + c] = v < -m ? -m : v > m ? m : v;
        }
}

/* ---- the block ---- */

/* What the capture pass records and the searches read. */
typedef struct {
    lp_model *m;
    lp_ctx *ctx;
    int64_t b, N, L, n, D, F, A; /* n = N L tokens, A = H hd */
    int64_t Ns;                  /* sequences the attention and MLP losses run on (<= N) */
    float *X;                    /* N x L x D block inputs (the caller's) */
    bool o_group;                /* v -> o is searched */
    /* sums of |x| per input channel, over all n tokens */
    double *xs_qkv, *xs_o, *xs_mlp, *xs_down; /* D, A, D, F */
    float *G_o, *G_down;   /* X^T X of o's and down's inputs (upper triangles): A x A, F x F;
                              or, when n < A (resp. F), the inputs themselves (n x A, n x F) */
    bool direct_o, direct_down;
    float *att_out;        /* n x D: o(attention), original weights */
    float *mlp_in;         /* n x D: the MLP's input (post-attention RMSNorm) */
    float *mlp_ref;        /* n x D: the MLP's output, original weights */
    float *next;           /* n x D: the block's output = next block's X */
    int64_t stride, ns;    /* clipping samples: tokens 0, stride, 2 stride, ... (ns of them) */
    float *s_qkv, *s_o, *s_mlp, *s_down; /* ns x D, ns x A, ns x D, ns x F */
    int64_t tok0;          /* capture: first token of the current sequence */
    double t_stats;
    lp_status err;         /* a product inside a hook failed (the hook then stops the block) */
} awq_work;

/* A dense linear's f32 weight (check_weights made every linear of the block one). */
static const float *wf(const lp_linear *l) { return ((const lp_dense *)lp_linear_data(l, &lp_format_dense))->w; }

/* A dense stand-in for l with weight w (not owned) and l's bias: a search's
 * candidate, run through the block by lp_block_forward's hooks. */
static lp_status stand_in(const lp_linear *l, const float *w, lp_linear *out) {
    *out = (lp_linear){.rows = l->rows, .cols = l->cols, .bias = l->bias};
    lp_dense *d;
    LP_TRY(lp_dense_view(l->rows, l->cols, w, NULL, LP_DT_F32, NULL, &d));
    return lp_linear_add_part(out, &lp_format_dense, d);
}

static void add_abs(double *acc, const float *X, int64_t T, int64_t C) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < C; c++) acc[c] += fabsf(X[t * C + c]);
}

static void take_samples(const awq_work *w, float *dst, const float *X, int64_t T, int64_t C) {
    for (int64_t t = 0; t < T; t++) {
        const int64_t gt = w->tok0 + t;
        if (gt % w->stride == 0 && gt / w->stride < w->ns)
            memcpy(dst + (gt / w->stride) * C, X + t * C, (size_t)C * sizeof(float));
    }
}

static void add_gram(float *G, const float *X, int64_t T, int64_t C) {
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)C, (int)T, 1.0f, X, (int)C, 1.0f, G, (int)C);
}

/* Step 0's hook: record every linear's input statistics; never stops the block. */
static int capture(void *ud, int k, const float *X, int64_t T, int64_t C) {
    awq_work *w = ud;
    const lp_layer *Lb = &w->m->layers[w->b];
    const int64_t off = w->tok0 * w->D;
    double t0 = lp_now_s(), t_fwd = 0;
    if (k == LP_Q) {
        add_abs(w->xs_qkv, X, T, C);
        take_samples(w, w->s_qkv, X, T, C);
    } else if (k == LP_O) {
        double t1 = lp_now_s();
        w->err = lp_linear_forward(&Lb->lin[LP_O], X, T, w->att_out + off);
        t_fwd = lp_now_s() - t1;
        if (w->err != LP_OK) return 1;
        if (w->o_group) {
            add_abs(w->xs_o, X, T, C);
            if (w->direct_o) memcpy(w->G_o + w->tok0 * C, X, (size_t)(T * C) * sizeof(float));
            else add_gram(w->G_o, X, T, C);
        }
        take_samples(w, w->s_o, X, T, C);
    } else if (k == LP_GATE) {
        memcpy(w->mlp_in + off, X, (size_t)(T * C) * sizeof(float));
        add_abs(w->xs_mlp, X, T, C);
        take_samples(w, w->s_mlp, X, T, C);
    } else if (k == LP_DOWN) {
        double t1 = lp_now_s();
        w->err = lp_linear_forward(&Lb->lin[LP_DOWN], X, T, w->mlp_ref + off);
        t_fwd = lp_now_s() - t1;
        if (w->err != LP_OK) return 1;
        add_abs(w->xs_down, X, T, C);
        if (w->direct_down) memcpy(w->G_down + w->tok0 * C, X, (size_t)(T * C) * sizeof(float));
        else add_gram(w->G_down, X, T, C);
        take_samples(w, w->s_down, X, T, C);
    }
    w->t_stats += lp_now_s() - t0 - t_fwd;
    return 0;
}

/* sum of (a - b)^2 over n values, in double */
static double sq_diff(const float *a, const float *b, int64_t n) {
    double acc = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        acc += d * d;
    }
    return acc;
}

/* The attention probe: o applied to the attention output, compared with the
 * original, and the block stopped there. */
typedef struct {
    const lp_linear *o;
    const float *ref; /* T x D */
    float *tmp;       /* T x D */
    double loss;
    lp_status err;
} attn_probe;

static int probe_attn(void *ud, int k, const float *X, int64_t T, int64_t C) {
    attn_probe *a = ud;
    if (k != LP_O) return 0;
    a->err = lp_linear_forward(a->o, X, T, a->tmp);
    if (a->err == LP_OK) a->loss += sq_diff(a->tmp, a->ref, T * a->o->rows);
    return 1;
}

/* One scale search: the group's linears, their channel statistics, the loss. */
typedef struct group_search group_search;
struct group_search {
    const char *name;
    int nlin;
    lp_linear *lin[3];   /* the linears scaled (dense) */
    float *wq[3];        /* scratch: their Q(W s) / s */
    const double *xsum;  /* sum_t |x_t| per channel */
    int64_t C;           /* channels */
    const float *gram;   /* single-linear groups: X^T X (C x C, upper), or X (n x C) when direct */
    bool direct;
    lp_status (*loss)(awq_work *w, group_search *g, double *loss);
};

/* loss of q, k, v = wq: the attention output, o applied, vs the original. */
static lp_status loss_attn(awq_work *w, group_search *g, double *loss) {
    lp_layer *Lb = &w->m->layers[w->b];
    lp_linear cand[3] = {0};
    float *tmp = malloc((size_t)(w->L * w->D) * sizeof(float));
    lp_status st = tmp ? LP_OK : lp_fail(LP_ERR_NOMEM, "awq: out of memory");
    attn_probe pr = {&Lb->lin[LP_O], NULL, tmp, 0.0, LP_OK};
    lp_block_hooks hooks = {.capture = probe_attn, .ud = &pr};
    for (int j = 0; st == LP_OK && j < 3; j++) {
        st = stand_in(&Lb->lin[LP_Q + j], g->wq[j], &cand[j]);
        hooks.lin[LP_Q + j] = &cand[j];
    }
    /* the probe stops every block before its residual add: X stays as it is */
    for (int64_t i = 0; st == LP_OK && i < w->Ns; i++) {
        pr.ref = w->att_out + i * w->L * w->D;
        st = lp_block_forward(w->ctx, w->b, w->X + i * w->L * w->D, w->L, &hooks);
        if (st == LP_OK) st = pr.err;
    }
    free(tmp);
    for (int j = 0; j < 3; j++) lp_linear_free(&cand[j]);
    *loss = pr.loss / (double)(w->Ns * w->L * w->D);
    return st;
}

/* loss of gate, up = wq: the MLP output vs the original, in chunks of tokens. */
static lp_status loss_mlp(awq_work *w, group_search *g, double *loss) {
    lp_layer *Lb = &w->m->layers[w->b];
    lp_linear gate = {0}, up = {0};
    const int64_t CH = w->n < 2048 ? w->n : 2048;
    float *gbuf = malloc((size_t)(CH * w->F) * sizeof(float)), *ubuf = malloc((size_t)(CH * w->F) * sizeof(float));
    float *out = malloc((size_t)(CH * w->D) * sizeof(float));
    lp_status st = gbuf && ubuf && out ? LP_OK : lp_fail(LP_ERR_NOMEM, "awq: out of memory");
    if (st == LP_OK) st = stand_in(&Lb->lin[LP_GATE], g->wq[0], &gate);
    if (st == LP_OK) st = stand_in(&Lb->lin[LP_UP], g->wq[1], &up);
    double acc = 0;
    const int64_t n = w->Ns * w->L; /* the search's tokens */
    for (int64_t t0 = 0; st == LP_OK && t0 < n; t0 += CH) {
        const int64_t T = n - t0 < CH ? n - t0 : CH;
        st = lp_mlp_act(&gate, &up, w->mlp_in + t0 * w->D, T, gbuf, ubuf);
        if (st == LP_OK) st = lp_linear_forward(&Lb->lin[LP_DOWN], gbuf, T, out);
        if (st == LP_OK) acc += sq_diff(out, w->mlp_ref + t0 * w->D, T * w->D);
    }
    lp_linear_free(&gate);
    lp_linear_free(&up);
    free(gbuf);
    free(ubuf);
    free(out);
    *loss = acc / (double)(n * w->D);
    return st;
}

/* loss of one linear = wq: tr(dW G dW^T) / (n rows), dW = wq - W; with fewer
 * tokens than columns, directly as ||X dW^T||^2 / (n rows), which is cheaper. */
static lp_status loss_gram(awq_work *w, group_search *g, double *loss) {
    const lp_linear *l = g->lin[0];
    const int64_t R = l->rows, C = l->cols, n = w->n;
    float *dW = g->wq[0]; /* turned into dW in place: wq is rebuilt for every candidate */
    const int64_t np = g->direct ? n * R : R * C;
    float *P = malloc((size_t)np * sizeof(float));
    if (!P) return lp_fail(LP_ERR_NOMEM, "awq: out of memory");
    const float *W = wf(l);
    for (int64_t i = 0; i < R * C; i++) dW[i] -= W[i];
    double acc = 0;
    if (g->direct) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)R, (int)C, 1.0f, g->gram, (int)C, dW,
                    (int)C, 0.0f, P, (int)R);
        for (int64_t i = 0; i < n * R; i++) acc += (double)P[i] * P[i];
    } else {
        cblas_ssymm(CblasRowMajor, CblasRight, CblasUpper, (int)R, (int)C, 1.0f, g->gram, (int)C, dW, (int)C, 0.0f,
                    P, (int)C);
        for (int64_t i = 0; i < R * C; i++) acc += (double)P[i] * dW[i];
    }
    free(P);
    *loss = acc / (double)(w->n * R);
    return LP_OK;
}

/* s = max(xm^ratio, 1e-4) / sqrt(max s * min s), xm = xsum / n (f32, as the reference). */
static void make_scales(const double *xsum, int64_t C, int64_t n, double ratio, float *s) {
    float mx = -INFINITY, mn = INFINITY;
    for (int64_t c = 0; c < C; c++) {
        float xm = (float)(xsum[c] / (double)n);
        float v = powf(xm, (float)ratio);
        v = v < 1e-4f ? 1e-4f : v;
        s[c] = v;
        mx = v > mx ? v : mx;
        mn = v < mn ? v : mn;
    }
    const float norm = sqrtf(mx * mn);
    for (int64_t c = 0; c < C; c++) s[c] /= norm;
}

/* wq = Q(W diag(s)) diag(s)^-1, AWQ's quantizer. */
static lp_status scaled_fake_quant(const lp_linear *l, const float *s, const lp_awq_settings *p, float *wq) {
    const int64_t R = l->rows, C = l->cols;
    const float *W = wf(l);
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) wq[r * C + c] = W[r * C + c] * s[c];
    LP_TRY(lp_awq_fake_quant(wq, R, C, p->bits, p->group, p->sym, wq));
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) wq[r * C + c] /= s[c];
    return LP_OK;
}

/* The grid search of one group: best_s (C) gets the scales of the lowest loss. */
static lp_status search_scales(awq_work *w, group_search *g, const lp_awq_settings *p, float *best_s) {
    float *s = malloc((size_t)g->C * sizeof(float));
    lp_status st = s ? LP_OK : lp_fail(LP_ERR_NOMEM, "awq: out of memory");
    for (int j = 0; st == LP_OK && j < g->nlin; j++) {
        g->wq[j] = malloc((size_t)(g->lin[j]->rows * g->lin[j]->cols) * sizeof(float));
        if (!g->wq[j]) st = lp_fail(LP_ERR_NOMEM, "awq: out of memory");
    }
    double best = INFINITY;
    int best_i = -1;
    for (int i = 0; st == LP_OK && i < p->grid; i++) {
        make_scales(g->xsum, g->C, w->n, (double)i / p->grid, s);
        for (int j = 0; st == LP_OK && j < g->nlin; j++) st = scaled_fake_quant(g->lin[j], s, p, g->wq[j]);
        double loss = NAN;
        if (st == LP_OK) st = g->loss(w, g, &loss);
        if (st == LP_OK && loss < best) { /* NaN never wins */
            best = loss;
            best_i = i;
            memcpy(best_s, s, (size_t)g->C * sizeof(float));
        }
    }
    if (st == LP_OK && best_i < 0)
        st = lp_fail(LP_ERR_NUMERIC, "awq: the scale search of %s found no finite loss; hint: the block's "
                     "activations overflow", g->name);
    for (int j = 0; j < g->nlin; j++) {
        free(g->wq[j]);
        g->wq[j] = NULL;
    }
    free(s);
    return st;
}

/* A dense linear's weight (and bias), made writable: an owned copy when it is a
 * view into the mapped checkpoint. */
static lp_status writable(lp_linear *l, float **w) {
    LP_TRY(lp_dense_writable(lp_linear_data(l, &lp_format_dense), w));
    if (l->bias && !l->bias_owned) {
        float *c = malloc((size_t)l->rows * sizeof(float));
        if (!c) return lp_fail(LP_ERR_NOMEM, "awq: out of memory");
        memcpy(c, l->bias, (size_t)l->rows * sizeof(float));
        l->bias_owned = c;
        l->bias = c;
    }
    return LP_OK;
}

/* W[:, c] *= s_c (the group's linears). */
static lp_status scale_cols(lp_linear *l, const float *s) {
    float *W;
    LP_TRY(writable(l, &W));
    for (int64_t r = 0; r < l->rows; r++)
        for (int64_t c = 0; c < l->cols; c++) W[r * l->cols + c] *= s[c];
    return LP_OK;
}

/* W[r, :] /= s_r and b_r /= s_r (a previous linear). */
static lp_status unscale_rows(lp_linear *l, const float *s) {
    float *W;
    LP_TRY(writable(l, &W));
    for (int64_t r = 0; r < l->rows; r++) {
        for (int64_t c = 0; c < l->cols; c++) W[r * l->cols + c] /= s[r];
        if (l->bias_owned) l->bias_owned[r] /= s[r];
    }
    return LP_OK;
}

static lp_status unscale_norm(lp_model *m, int64_t b, int which, const float *s) {
    float *nw;
    LP_TRY(lp_model_norm_mut(m, b, which, &nw));
    for (int64_t c = 0; c < m->cfg.dim; c++) nw[c] /= s[c];
    return LP_OK;
}

/* X (rows x C) /= s per column: the inputs a scaled linear now receives. */
static void unscale_inputs(float *X, int64_t rows, int64_t C, const float *s) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < C; c++) X[r * C + c] /= s[c];
}

/* Step 3: one linear into the packed format, with AWQ's quantizer. */
static lp_status awq_round(const lp_compress_args *a, lp_linear *out) {
    const lp_awq_settings *p = a->settings;
    lp_qgroup *q = calloc(1, sizeof *q);
    lp_status st = q ? lp_qgroup_init(q, a->rows, a->cols, p->bits, p->group, p->sym)
                     : lp_fail(LP_ERR_NOMEM, "awq: out of memory");
    if (st == LP_OK) st = lp_awq_quantize(a->W, q);
    if (st == LP_OK) {
        lp_linear_set(out, &lp_format_qgroup, q);
    } else if (q) {
        lp_qgroup_free(q);
        free(q);
    }
    return st;
}

/* The block's linears as f32 (one block converted at a time), all finite. */
static lp_status check_weights(lp_model *m, int64_t b) {
    char name[256];
    for (int k = 0; k < LP_NLIN; k++) {
        lp_linear *l = &m->layers[b].lin[k];
        lp_linear_name(b, k, name, sizeof name);
        lp_dense *d = lp_linear_data(l, &lp_format_dense);
        if (!d) return lp_fail(LP_ERR_ARG, "awq: %s is already compressed; quantize the original checkpoint", name);
        LP_TRY(lp_dense_materialize(d));
        for (int64_t i = 0; i < l->rows * l->cols; i++)
            if (!isfinite(d->w[i]))
                return lp_fail(LP_ERR_NUMERIC, "awq: weight [%lld, %lld] of %s is %g", (long long)(i / l->cols),
                               (long long)(i % l->cols), name, d->w[i]);
    }
    return LP_OK;
}

static void work_free(awq_work *w) {
    free(w->xs_qkv); free(w->xs_o); free(w->xs_mlp); free(w->xs_down);
    free(w->G_o); free(w->G_down);
    free(w->att_out); free(w->mlp_in); free(w->mlp_ref); free(w->next);
    free(w->s_qkv); free(w->s_o); free(w->s_mlp); free(w->s_down);
}

lp_status lp_awq_block(lp_model *m, lp_ctx *ctx, int64_t b, float *X, int64_t N, int64_t L,
                       const lp_awq_settings *p, bool quantize, const lp_quant_params *qp, lp_quant_stats *st) {
    const lp_config *c = &m->cfg;
    lp_layer *Lb = &m->layers[b];
    LP_TRY(check_weights(m, b));
    awq_work w = {.m = m, .ctx = ctx, .b = b, .N = N, .L = L, .n = N * L, .D = c->dim, .F = c->ffn,
                  .A = c->n_heads * c->head_dim, .X = X};
    const lp_linear *V = &Lb->lin[LP_V], *O = &Lb->lin[LP_O];
    /* llm-awq: "if v_proj.weight.shape == o_proj.weight.shape"; see the header on biases */
    w.o_group = !p->no_scale && V->rows == O->rows && V->cols == O->cols && !V->bias;
    w.Ns = p->search_samples > 0 && p->search_samples < N ? p->search_samples : N;
    const int64_t n = w.n, D = w.D, F = w.F, A = w.A;
    w.stride = n / p->clip_tokens > 0 ? n / p->clip_tokens : 1; /* input_feat[:, 0::n // 512] */
    w.ns = (n + w.stride - 1) / w.stride;
    const int64_t ns = w.ns;
    w.xs_qkv = calloc((size_t)D, sizeof(double));
    w.xs_o = calloc((size_t)A, sizeof(double));
    w.xs_mlp = calloc((size_t)D, sizeof(double));
    w.xs_down = calloc((size_t)F, sizeof(double));
    w.direct_o = n < A;
    w.direct_down = n < F;
    w.G_o = w.o_group ? calloc((size_t)((w.direct_o ? n : A) * A), sizeof(float)) : NULL;
    w.G_down = calloc((size_t)((w.direct_down ? n : F) * F), sizeof(float));
    w.att_out = malloc((size_t)(n * D) * sizeof(float));
    w.mlp_in = malloc((size_t)(n * D) * sizeof(float));
    w.mlp_ref = malloc((size_t)(n * D) * sizeof(float));
    w.next = malloc((size_t)(n * D) * sizeof(float));
    w.s_qkv = malloc((size_t)(ns * D) * sizeof(float));
    w.s_o = malloc((size_t)(ns * A) * sizeof(float));
    w.s_mlp = malloc((size_t)(ns * D) * sizeof(float));
    w.s_down = malloc((size_t)(ns * F) * sizeof(float));
    float *sc[4] = {malloc((size_t)D * sizeof(float)), malloc((size_t)A * sizeof(float)),
                    malloc((size_t)D * sizeof(float)), malloc((size_t)F * sizeof(float))};
    lp_status s = LP_OK;
    if (!w.xs_qkv || !w.xs_o || !w.xs_mlp || !w.xs_down || (w.o_group && !w.G_o) || !w.G_down || !w.att_out ||
        !w.mlp_in || !w.mlp_ref || !w.next || !w.s_qkv || !w.s_o || !w.s_mlp || !w.s_down || !sc[0] || !sc[1] ||
        !sc[2] || !sc[3])
        s = lp_fail(LP_ERR_NOMEM, "awq: out of memory for block %lld's statistics (%lld calibration tokens)",
                    (long long)b, (long long)n);
    if (st && b == 0) /* on top of the pipeline's X; the same for every block */
        st->peak_activation_bytes += (size_t)(4 * n * D + (w.o_group ? (w.direct_o ? n : A) * A : 0) +
                                              (w.direct_down ? n : F) * F +
                                              ns * (2 * D + A + F)) * sizeof(float);

    /* 0. capture pass with the original weights; w.next = the block's output */
    double t0 = lp_now_s();
    for (int64_t i = 0; s == LP_OK && i < N; i++) {
        memcpy(w.next + i * L * D, X + i * L * D, (size_t)(L * D) * sizeof(float));
        w.tok0 = i * L;
        const lp_block_hooks hooks = {.capture = capture, .ud = &w};
        s = lp_block_forward(ctx, b, w.next + i * L * D, L, &hooks);
        if (s == LP_OK) s = w.err;
    }
    if (st) {
        st->forward += lp_now_s() - t0 - w.t_stats;
        st->stats += w.t_stats;
    }

    /* 1. auto_scale: search every group on the original weights, then fold */
    t0 = lp_now_s();
    group_search gs[4] = {
        {"input_layernorm -> q, k, v", 3, {&Lb->lin[LP_Q], &Lb->lin[LP_K], &Lb->lin[LP_V]}, {0}, w.xs_qkv, D,
         NULL, false, loss_attn},
        {"v -> o", 1, {&Lb->lin[LP_O]}, {0}, w.xs_o, A, w.G_o, w.direct_o, loss_gram},
        {"post_attention_layernorm -> gate, up", 2, {&Lb->lin[LP_GATE], &Lb->lin[LP_UP]}, {0}, w.xs_mlp, D,
         NULL, false, loss_mlp},
        {"up -> down", 1, {&Lb->lin[LP_DOWN]}, {0}, w.xs_down, F, w.G_down, w.direct_down, loss_gram},
    };
    bool done[4] = {!p->no_scale, w.o_group, !p->no_scale, !p->no_scale};
    for (int g = 0; s == LP_OK && g < 4; g++)
        if (done[g]) s = search_scales(&w, &gs[g], p, sc[g]);
    if (s == LP_OK && done[0]) {
        s = unscale_norm(m, b, 0, sc[0]);
        for (int k = LP_Q; s == LP_OK && k <= LP_V; k++) s = scale_cols(&Lb->lin[k], sc[0]);
        unscale_inputs(w.s_qkv, ns, D, sc[0]);
    }
    if (s == LP_OK && done[1]) {
        s = unscale_rows(&Lb->lin[LP_V], sc[1]);
        if (s == LP_OK) s = scale_cols(&Lb->lin[LP_O], sc[1]);
        unscale_inputs(w.s_o, ns, A, sc[1]);
    }
    if (s == LP_OK && done[2]) {
        s = unscale_norm(m, b, 1, sc[2]);
        for (int k = LP_GATE; s == LP_OK && k <= LP_UP; k++) s = scale_cols(&Lb->lin[k], sc[2]);
        unscale_inputs(w.s_mlp, ns, D, sc[2]);
    }
    if (s == LP_OK && done[3]) {
        s = unscale_rows(&Lb->lin[LP_UP], sc[3]);
        if (s == LP_OK) s = scale_cols(&Lb->lin[LP_DOWN], sc[3]);
        unscale_inputs(w.s_down, ns, F, sc[3]);
    }
    if (st) st->scale_search += lp_now_s() - t0;

    /* 2. auto_clip: v, o, gate, up, down on their (scaled) sampled inputs */
    t0 = lp_now_s();
    static const int CLIPPED[5] = {LP_V, LP_O, LP_GATE, LP_UP, LP_DOWN};
    for (int j = 0; s == LP_OK && !p->no_clip && j < 5; j++) {
        lp_linear *l = &Lb->lin[CLIPPED[j]];
        const float *Xs = CLIPPED[j] == LP_V ? w.s_qkv : CLIPPED[j] == LP_O ? w.s_o
                        : CLIPPED[j] == LP_DOWN ? w.s_down : w.s_mlp;
        const int64_t gsz = p->group <= 0 || p->group > l->cols ? l->cols : p->group;
        float *mv = malloc((size_t)(l->rows * ((l->cols + gsz - 1) / gsz)) * sizeof(float)), *W = NULL;
        s = mv ? writable(l, &W) : lp_fail(LP_ERR_NOMEM, "awq: out of memory");
        if (s == LP_OK)
            s = lp_awq_clip_search(W, l->rows, l->cols, Xs, ns, p->bits, p->group, p->sym, p->grid,
                                   p->max_shrink, mv, NULL, NULL);
        if (s == LP_OK) apply_clip(W, l->rows, l->cols, gsz, mv);
        free(mv);
    }
    if (st) st->clip_search += lp_now_s() - t0;

    /* 3. round the (scaled, clipped) weights */
    t0 = lp_now_s();
    char name[256];
    for (int k = 0; s == LP_OK && quantize && k < LP_NLIN; k++) {
        double err = 0;
        s = lp_compress_linear(awq_round, p, &Lb->lin[k], NULL, st, &err);
        if (s != LP_OK) {
            lp_linear_name(b, k, name, sizeof name);
            s = lp_fail_ctx(s, "%s", name);
        } else if (qp && qp->progress) {
            qp->progress(qp->progress_ud, b, c->n_layers, lp_linear_names[k], err);
        }
    }
    if (st) st->quantize += lp_now_s() - t0;

    /* the next block's inputs: this block's f32 output from step 0 */
    if (s == LP_OK) {
        for (int64_t i = 0; i < n * D; i++)
            if (!isfinite(w.next[i])) {
                s = lp_fail(LP_ERR_NUMERIC, "block %lld produced non-finite activations (token %lld) with its "
                            "original weights", (long long)b, (long long)(i / D));
                break;
            }
        if (s == LP_OK) memcpy(X, w.next, (size_t)(n * D) * sizeof(float));
    }
    for (int g = 0; g < 4; g++) free(sc[g]);
    work_free(&w);
    return s;
}

/* ---- the registry row ---- */

static const lp_option OPTIONS[] = {
    LP_OPTION_BITS(lp_awq_settings, 1, 8),
    LP_OPTION_GROUP(lp_awq_settings),
    LP_OPTION_SYM(lp_awq_settings),
    {"awq-no-scale", LP_OPT_BOOL, 0, 1, 0, NULL, "skip AWQ's per-channel scale search",
     offsetof(lp_awq_settings, no_scale)},
    {"awq-no-clip", LP_OPT_BOOL, 0, 1, 0, NULL, "skip AWQ's clipping search", offsetof(lp_awq_settings, no_clip)},
    {"awq-grid", LP_OPT_INT, 1, 1000, 20, "N", "grid of both searches: scale exponents i/N, clip ranges 1 - i/N",
     offsetof(lp_awq_settings, grid)},
    {"awq-max-shrink", LP_OPT_FLOAT, 0, 0.99, 0.5, "F", "deepest clipping tried, a fraction of max|w|",
     offsetof(lp_awq_settings, max_shrink)},
    {"awq-clip-tokens", LP_OPT_INT, 1, 1 << 30, 512, "N", "calibration tokens the clipping search uses (strided)",
     offsetof(lp_awq_settings, clip_tokens)},
    {"awq-search-samples", LP_OPT_INT, 0, 1 << 20, 0, "N", "calibration windows the scale search runs on (0: all)",
     offsetof(lp_awq_settings, search_samples)},
    {0},
};

static lp_status check(const void *v) {
    const lp_awq_settings *s = v;
    return lp_check_grouped("awq", s->bits, s->group, s->sym);
}

static lp_status block(lp_model *m, lp_ctx *ctx, int64_t b, float *X, int64_t N, int64_t L, const void *s,
                       bool quantize, const lp_quant_params *p, lp_quant_stats *st) {
    return lp_awq_block(m, ctx, b, X, N, L, s, quantize, p, st);
}

const lp_method lp_method_awq = {
    .name = "awq",
    .help = "AWQ: activation-aware channel scales and clipping (grouped integers)",
    .scope = LP_SCOPE_BLOCK,
    .calibrated = true,
    .settings_size = sizeof(lp_awq_settings),
    .options = OPTIONS,
    .check = check,
    .block = block,
};
