/*
 * qmix.c - mixed bit widths per column group, as one ordinary qgroup per
 * width (the layout is in qmix.h).
 *
 * Design: nothing here knows a bit layout. Repacking unpacks a row of the
 * wide container once and packs each part's columns with the qgroup block
 * packer; products gather each part's input columns into a contiguous
 * buffer and call lp_qgroup_gemm, so every kernel and its tests apply
 * unchanged. Parts are visited in ascending width and their products summed
 * in that fixed order, so results do not depend on the thread count either.
 */
#include "format/qmix.h"

#include "core/status_impl.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Columns of group g. */
static int64_t group_len(int64_t cols, int group, int64_t g) {
    int64_t c0 = g * group;
    return cols - c0 < group ? cols - c0 : group;
}

lp_status lp_qmix_check(lp_status st, int64_t rows, int64_t cols, int group, const uint8_t *gbits) {
    if (rows < 1 || cols < 1)
        return lp_fail(st, "qmix: shape %lld x %lld, expected rows >= 1 and cols >= 1", (long long)rows,
                       (long long)cols);
    if (group < LP_QGROUP_BLOCK || group % LP_QGROUP_BLOCK || group >= cols)
        return lp_fail(st, "qmix: group = %d with cols = %lld, expected a multiple of 32 below cols", group,
                       (long long)cols);
    int64_t G = (cols + group - 1) / group;
    for (int64_t g = 0; g < G; g++)
        if (gbits[g] < 1 || gbits[g] > 8)
            return lp_fail(st, "qmix: group %lld has %d bits, expected 1..8", (long long)g, gbits[g]);
    return LP_OK;
}

int64_t lp_qmix_part_cols(int64_t cols, int group, const uint8_t *gbits, int bits) {
    int64_t n = 0, G = (cols + group - 1) / group;
    for (int64_t g = 0; g < G; g++)
        if (gbits[g] == bits) n += group_len(cols, group, g);
    return n;
}

/* The distinct widths of the map, ascending; returns how many. */
static int widths(int64_t G, const uint8_t *gbits, int out[LP_QMIX_MAX_PARTS]) {
    int n = 0;
    for (int b = 1; b <= 8; b++) {
        for (int64_t g = 0; g < G; g++) {
            if (gbits[g] == b) {
                out[n++] = b;
                break;
            }
        }
    }
    return n;
}

static lp_status set_header(lp_qmix *w, int64_t rows, int64_t cols, int group, int sym, const uint8_t *gbits,
                            lp_status st) {
    memset(w, 0, sizeof *w);
    LP_TRY(lp_qmix_check(st, rows, cols, group, gbits));
    if (sym != 0 && sym != 1) return lp_fail(st, "qmix: sym = %d, expected 0 or 1", sym);
    w->rows = rows;
    w->cols = cols;
    w->group = group;
    w->sym = sym;
    w->ngroups = (cols + group - 1) / group;
    w->gbits = malloc((size_t)w->ngroups);
    if (!w->gbits) return lp_fail(LP_ERR_NOMEM, "out of memory");
    memcpy(w->gbits, gbits, (size_t)w->ngroups);
    return LP_OK;
}

lp_status lp_qmix_init(lp_qmix *w, int64_t rows, int64_t cols, int group, int sym, const uint8_t *gbits) {
    LP_TRY(set_header(w, rows, cols, group, sym, gbits, LP_ERR_ARG));
    int bw[LP_QMIX_MAX_PARTS];
    w->nparts = widths(w->ngroups, gbits, bw);
    for (int k = 0; k < w->nparts; k++) {
        lp_status s = lp_qgroup_init(&w->part[k], rows, lp_qmix_part_cols(cols, group, gbits, bw[k]), bw[k],
                                     group, sym);
        if (s != LP_OK) {
            lp_qmix_free(w);
            return s;
        }
    }
    return LP_OK;
}

lp_status lp_qmix_adopt(lp_qmix *w, int64_t rows, int64_t cols, int group, int sym, const uint8_t *gbits,
                        lp_qgroup *parts, int nparts) {
    LP_TRY(set_header(w, rows, cols, group, sym, gbits, LP_ERR_FORMAT));
    int bw[LP_QMIX_MAX_PARTS];
    int n = widths(w->ngroups, gbits, bw);
    lp_status s = LP_OK;
    if (n != nparts)
        s = lp_fail(LP_ERR_FORMAT, "qmix: the width map has %d distinct widths but %d parts are stored", n, nparts);
    for (int k = 0; s == LP_OK && k < n; k++) {
        const lp_qgroup *p = &parts[k];
        int64_t pc = lp_qmix_part_cols(cols, group, gbits, bw[k]);
        int pg = group < pc ? group : (int)pc; /* a part of one group is stored per-channel */
        if (p->bits != bw[k] || p->rows != rows || p->cols != pc || p->group != pg || p->sym != sym)
            s = lp_fail(LP_ERR_FORMAT, "qmix: part %d is w%d %lld x %lld g%d %s; the width map needs w%d "
                        "%lld x %lld g%d %s", k, p->bits, (long long)p->rows, (long long)p->cols, p->group,
                        p->sym ? "sym" : "asym", bw[k], (long long)rows, (long long)pc, pg, sym ? "sym" : "asym");
    }
    if (s != LP_OK) {
        free(w->gbits);
        memset(w, 0, sizeof *w);
        return s;
    }
    w->nparts = n;
    for (int k = 0; k < n; k++) w->part[k] = parts[k];
    return LP_OK;
}

void lp_qmix_free(lp_qmix *w) {
    if (!w) return;
    for (int k = 0; k < w->nparts; k++) lp_qgroup_free(&w->part[k]);
    free(w->gbits);
    memset(w, 0, sizeof *w);
}

size_t lp_qmix_nbytes(const lp_qmix *w) {
    size_t n = (size_t)w->ngroups;
    for (int k = 0; k < w->nparts; k++) n += lp_qgroup_nbytes(&w->part[k]);
    return n;
}

double lp_qmix_mean_bits(const lp_qmix *w) {
    double s = 0.0;
    for (int64_t g = 0; g < w->ngroups; g++) s += (double)w->gbits[g] * (double)group_len(w->cols, w->group, g);
    return s / (double)w->cols;
}

lp_status lp_qmix_repack(lp_qmix *w, const lp_qgroup *src) {
    LP_ASSERT(src->rows == w->rows && src->cols == w->cols && src->group == w->group && src->sym == w->sym);
    const int64_t C = w->cols, G = w->ngroups, len = src->blocks * LP_QGROUP_BLOCK;
    const int nth = omp_get_max_threads();
    uint8_t *buf = malloc((size_t)(2 * len) * (size_t)nth); /* per thread: a row, a part's row */
    if (!buf) return lp_fail(LP_ERR_NOMEM, "qmix: out of memory for repacking");
#pragma omp parallel for schedule(static) num_threads(nth)
    for (int64_t r = 0; r < w->rows; r++) {
        uint8_t *row = buf + (size_t)(2 * len) * (size_t)omp_get_thread_num(), *pv = row + len;
        for (int64_t b = 0; b < src->blocks; b++) lp_qgroup_get_block(src, r, b, row + b * LP_QGROUP_BLOCK);
        for (int k = 0; k < w->nparts; k++) {
            lp_qgroup *p = &w->part[k];
            int64_t pc = 0, pg = 0;
            for (int64_t g = 0; g < G; g++) {
                if (w->gbits[g] != p->bits) continue;
                int64_t n = group_len(C, w->group, g);
                memcpy(pv + pc, row + g * w->group, (size_t)n);
                p->scales[r * p->ngroups + pg] = src->scales[r * G + g];
                if (!w->sym) p->zeros[r * p->ngroups + pg] = src->zeros[r * G + g];
                pc += n;
                pg++;
            }
            memset(pv + pc, 0, (size_t)(p->blocks * LP_QGROUP_BLOCK - pc));
            for (int64_t b = 0; b < p->blocks; b++) lp_qgroup_put_block(p, r, b, pv + b * LP_QGROUP_BLOCK);
        }
    }
    free(buf);
    return LP_OK;
}

/* dst (T x part cols) = the columns of X (T x cols) in part k. */
static void gather(const lp_qmix *w, int k, const float *X, int64_t T, float *dst) {
    const int64_t C = w->cols, pcols = w->part[k].cols;
    for (int64_t t = 0; t < T; t++) {
        int64_t pc = 0;
        for (int64_t g = 0; g < w->ngroups; g++) {
            if (w->gbits[g] != w->part[k].bits) continue;
            int64_t n = group_len(C, w->group, g);
            memcpy(dst + t * pcols + pc, X + t * C + g * w->group, (size_t)n * sizeof(float));
            pc += n;
        }
    }
}

lp_status lp_qmix_dequant(const lp_qmix *w, int64_t r0, int64_t r1, float *out) {
    const int64_t C = w->cols, nr = r1 - r0;
    for (int k = 0; k < w->nparts; k++) {
        const lp_qgroup *p = &w->part[k];
        float *tmp = malloc((size_t)(nr * p->cols) * sizeof(float));
        if (!tmp) return lp_fail(LP_ERR_NOMEM, "qmix: out of memory for %lld dequantized rows", (long long)nr);
        lp_qgroup_dequant(p, r0, r1, tmp);
        for (int64_t r = 0; r < nr; r++) {
            int64_t pc = 0;
            for (int64_t g = 0; g < w->ngroups; g++) {
                if (w->gbits[g] != p->bits) continue;
                int64_t n = group_len(C, w->group, g);
                memcpy(out + r * C + g * w->group, tmp + r * p->cols + pc, (size_t)n * sizeof(float));
                pc += n;
            }
        }
        free(tmp);
    }
    return LP_OK;
}

lp_status lp_qmix_gemm(const lp_qmix *w, const float *X, int64_t T, float *Y) {
    if (T <= 0) return LP_OK;
    const int64_t R = w->rows;
    if (w->nparts == 1) return lp_qgroup_gemm(&w->part[0], X, T, Y);
    size_t xb = (size_t)(T * w->cols) * sizeof(float), yb = (size_t)(T * R) * sizeof(float);
    float *Xp = malloc(xb), *Yp = malloc(yb);
    lp_status s = (Xp && Yp) ? LP_OK : lp_fail(LP_ERR_NOMEM, "qmix gemm: out of memory for %zu bytes", xb + yb);
    for (int k = 0; s == LP_OK && k < w->nparts; k++) {
        gather(w, k, X, T, Xp);
        s = lp_qgroup_gemm(&w->part[k], Xp, T, k == 0 ? Y : Yp);
        if (s == LP_OK && k > 0)
            for (int64_t i = 0; i < T * R; i++) Y[i] += Yp[i];
    }
    free(Xp);
    free(Yp);
    return s;
}

/* ---- checkpoint I/O and the traits row ---- */

static size_t qmix_nbytes(const void *d) { return lp_qmix_nbytes(d); }

static void qmix_describe(const void *d, char *buf, size_t n) {
    const lp_qmix *x = d;
    int64_t cnt[9] = {0};
    for (int64_t g = 0; g < x->ngroups; g++) cnt[x->gbits[g]]++;
    size_t k = (size_t)snprintf(buf, n, "qmix w%.2f g%d %s (groups:", lp_qmix_mean_bits(x), x->group,
                                x->sym ? "sym" : "asym");
    for (int b = 1; b <= 8 && k < n; b++)
        if (cnt[b]) k += (size_t)snprintf(buf + k, n - k, " %lld x w%d", (long long)cnt[b], b);
    if (k < n) snprintf(buf + k, n - k, ")");
}

static lp_status qmix_dequant(const void *d, int64_t r0, int64_t r1, float *out) {
    return lp_qmix_dequant(d, r0, r1, out);
}

static lp_status qmix_gemm(const void *d, const float *X, int64_t T, float *Y) { return lp_qmix_gemm(d, X, T, Y); }

static lp_status qmix_save(const void *d, lp_st_writer *w, const char *base, char *meta, size_t n) {
    const lp_qmix *x = d;
    LP_TRY(lp_fmt_add(w, base, ".gbits", LP_DT_U8, 1, x->ngroups, x->gbits));
    for (int k = 0; k < x->nparts; k++) {
        char pb[320];
        snprintf(pb, sizeof pb, "%s.w%d", base, x->part[k].bits);
        LP_TRY(lp_qgroup_save_tensors(&x->part[k], w, pb));
    }
    snprintf(meta, n, "{\"format\":\"qmix\",\"group\":%d,\"sym\":%s}", x->group, x->sym ? "true" : "false");
    return LP_OK;
}

static lp_status qmix_load(const lp_fmt_src *in, const char *base, const lp_json *desc, int64_t rows, int64_t cols,
                           void **data) {
    int64_t group;
    bool sym;
    LP_TRY(lp_fmt_int(in, base, desc, "group", 1, INT32_MAX, &group));
    LP_TRY(lp_fmt_bool(in, base, desc, "sym", &sym));
    if (group < LP_QGROUP_BLOCK || group % LP_QGROUP_BLOCK || group >= cols)
        return lp_fail(LP_ERR_FORMAT, "%s: linear \"%s\": qmix group %lld for %lld columns, expected a multiple of "
                       "32 below the column count", in->name, base, (long long)group, (long long)cols);
    const int64_t G = (cols + group - 1) / group;
    const lp_tensor_view *gb;
    LP_TRY(lp_fmt_tensor(in, base, ".gbits", LP_DT_U8, 1, G, &gb));
    const uint8_t *gbits = gb->data;
    lp_status cs = lp_qmix_check(LP_ERR_FORMAT, rows, cols, (int)group, gbits);
    if (cs != LP_OK) return lp_fail_ctx(cs, "%s: linear \"%s\"", in->name, base);
    lp_qgroup parts[LP_QMIX_MAX_PARTS] = {0};
    int np = 0;
    lp_status st = LP_OK;
    for (int b = 1; b <= 8 && st == LP_OK; b++) {
        int64_t pc = lp_qmix_part_cols(cols, (int)group, gbits, b);
        if (!pc) continue;
        char pb[320];
        snprintf(pb, sizeof pb, "%s.w%d", base, b);
        st = lp_qgroup_load_view(in, pb, b, (int)group, sym, rows, pc, &parts[np++]);
    }
    lp_qmix *w = st == LP_OK ? calloc(1, sizeof *w) : NULL;
    if (st == LP_OK && !w) st = lp_fail(LP_ERR_NOMEM, "out of memory");
    if (st == LP_OK) st = lp_qmix_adopt(w, rows, cols, (int)group, sym, gbits, parts, np);
    if (st != LP_OK) { /* the parts loaded so far: views, or owned copies of version 1 W3 parts */
        for (int k = 0; k < np; k++) lp_qgroup_free(&parts[k]);
        free(w);
        return lp_fail_ctx(st, "%s: linear \"%s\"", in->name, base);
    }
    *data = w;
    return LP_OK;
}

static void qmix_free(void *d) {
    lp_qmix_free(d);
    free(d);
}

const lp_format lp_format_qmix = {
    .name = "qmix",
    .nbytes = qmix_nbytes,
    .describe = qmix_describe,
    .dequant = qmix_dequant,
    .gemm = {qmix_gemm},
    .save = qmix_save,
    .load = qmix_load,
    .free = qmix_free,
};
