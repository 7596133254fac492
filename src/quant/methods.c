/*
 * methods.c - the method registry (method.h): the table of rows, settings
 * built from their schemas, and the one path from a dense linear to its
 * compressed parts.
 *
 * Design: a setting is stored in the method's own struct at the option's
 * offset, as bool, int or double by the option's type; text is parsed and
 * range-checked here once, so no method or CLI code parses numbers.
 */
#include "quant/method.h"

#include "core/status_impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const lp_method lp_method_rtn, lp_method_gptq, lp_method_awq, lp_method_squeezellm, lp_method_slim;
extern const lp_method lp_method_sign, lp_method_ternary, lp_method_pbllm, lp_method_billm, lp_method_arb;
extern const lp_method lp_method_arb_x, lp_method_arb_rc;
extern const lp_method lp_method_magnitude, lp_method_wanda, lp_method_sparsegpt;
extern const lp_method lp_method_svd, lp_method_asvd, lp_method_svdllm, lp_method_ggml;

/* One row per method, in the order --help lists them. */
static const lp_method *const METHODS[] = {
    &lp_method_rtn, &lp_method_gptq, &lp_method_awq, &lp_method_squeezellm, &lp_method_slim,
    &lp_method_sign, &lp_method_ternary, &lp_method_pbllm, &lp_method_billm, &lp_method_arb, &lp_method_arb_x,
    &lp_method_arb_rc, &lp_method_magnitude, &lp_method_wanda, &lp_method_sparsegpt, &lp_method_svd,
    &lp_method_asvd, &lp_method_svdllm, &lp_method_ggml,
};
#define N_METHODS ((int)(sizeof METHODS / sizeof *METHODS))

int lp_method_count(void) { return N_METHODS; }
const lp_method *lp_method_at(int i) { return i >= 0 && i < N_METHODS ? METHODS[i] : NULL; }
const char *lp_method_name(const lp_method *m) { return m->name; }
bool lp_method_resumable(const lp_method *m) { return !m->dual_inputs; }
const char *lp_method_help(const lp_method *m) { return m->help; }
bool lp_method_calibrated(const lp_method *m) { return m->calibrated; }

const lp_method *lp_method_find(const char *name) {
    for (int i = 0; name && i < N_METHODS; i++)
        if (!strcmp(METHODS[i]->name, name)) return METHODS[i];
    return NULL;
}

const lp_option *lp_method_option(const lp_method *m, int i) {
    for (int k = 0; m->options[k].name; k++)
        if (k == i) return &m->options[k];
    return NULL;
}

const lp_option *lp_method_find_option(const lp_method *m, const char *name) {
    for (const lp_option *o = m->options; o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

/* ---- settings ---- */

static void put(void *data, const lp_option *o, double v) {
    char *p = (char *)data + o->offset;
    switch (o->type) {
    case LP_OPT_BOOL: *(bool *)p = v != 0; break;
    case LP_OPT_INT:
    case LP_OPT_CHOICE: *(int *)p = (int)v; break;
    case LP_OPT_FLOAT: *(double *)p = v; break;
    }
}

static double get(const void *data, const lp_option *o) {
    const char *p = (const char *)data + o->offset;
    switch (o->type) {
    case LP_OPT_BOOL: return *(const bool *)p;
    case LP_OPT_INT:
    case LP_OPT_CHOICE: return *(const int *)p;
    case LP_OPT_FLOAT: return *(const double *)p;
    }
    return NAN;
}

const char *lp_option_choice(const lp_option *o, int i, char *buf, size_t n) {
    const char *p = o->arg ? o->arg : "";
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '|');
        if (p) p++;
    }
    size_t len = p ? strcspn(p, "|") : 0;
    snprintf(buf, n, "%.*s", (int)len, p ? p : "");
    return buf;
}

lp_status lp_settings_init(const lp_method *m, lp_settings **out) {
    *out = NULL;
    lp_settings *s = calloc(1, sizeof *s);
    void *data = calloc(1, m->settings_size ? m->settings_size : 1);
    if (!s || !data) {
        free(s);
        free(data);
        return lp_fail(LP_ERR_NOMEM, "out of memory");
    }
    s->m = m;
    s->data = data;
    for (const lp_option *o = m->options; o->name; o++) put(data, o, o->def);
    *out = s;
    return LP_OK;
}

void lp_settings_free(lp_settings *s) {
    if (!s) return;
    free(s->data);
    free(s);
}

const lp_method *lp_settings_method(const lp_settings *s) { return s->m; }

lp_status lp_settings_set(lp_settings *s, const char *name, const char *value) {
    const lp_option *o = lp_method_find_option(s->m, name);
    if (!o) return lp_fail(LP_ERR_ARG, "--%s is not a setting of %s", name, s->m->name);
    if (o->type == LP_OPT_BOOL) {
        if (value) return lp_fail(LP_ERR_ARG, "%s --%s takes no value (got '%s')", s->m->name, name, value);
        put(s->data, o, 1);
        return LP_OK;
    }
    if (!value || !*value) return lp_fail(LP_ERR_ARG, "%s --%s needs a value", s->m->name, name);
    if (o->type == LP_OPT_CHOICE) {
        char w[64];
        for (int i = 0; *lp_option_choice(o, i, w, sizeof w); i++)
            if (!strcmp(w, value)) {
                put(s->data, o, i);
                return LP_OK;
            }
        return lp_fail(LP_ERR_ARG, "%s --%s '%s': expected one of %s", s->m->name, name, value, o->arg);
    }
    char *end = NULL;
    errno = 0;
    double v;
    if (o->type == LP_OPT_INT) {
        long long i = strtoll(value, &end, 10);
        v = (double)i;
    } else {
        v = strtod(value, &end);
    }
    if (end == value || *end || errno || !isfinite(v) || v < o->min || v > o->max) {
        if (o->type == LP_OPT_INT)
            return lp_fail(LP_ERR_ARG, "%s --%s '%s': expected an integer in [%.0f, %.0f]", s->m->name, name, value,
                           o->min, o->max);
        return lp_fail(LP_ERR_ARG, "%s --%s '%s': expected a number in [%g, %g]", s->m->name, name, value, o->min,
                       o->max);
    }
    put(s->data, o, v);
    return LP_OK;
}

double lp_settings_get(const lp_settings *s, const char *name) {
    const lp_option *o = lp_method_find_option(s->m, name);
    return o ? get(s->data, o) : NAN;
}

lp_status lp_settings_check(const lp_settings *s) { return s->m->check ? s->m->check(s->data) : LP_OK; }

bool lp_settings_needs_calib(const lp_settings *s) {
    return s->m->calib_when ? s->m->calib_when(s->data) : s->m->calibrated;
}

void lp_settings_describe(const lp_settings *s, char *buf, size_t n) {
    size_t k = 0;
    if (n) buf[0] = 0;
    for (const lp_option *o = s->m->options; o->name && k < n; o++) {
        const double v = get(s->data, o);
        char w[64];
        if (o->type == LP_OPT_FLOAT)
            k += (size_t)snprintf(buf + k, n - k, "%s%s=%.17g", k ? " " : "", o->name, v);
        else if (o->type == LP_OPT_CHOICE)
            k += (size_t)snprintf(buf + k, n - k, "%s%s=%s", k ? " " : "", o->name,
                                  lp_option_choice(o, (int)v, w, sizeof w));
        else
            k += (size_t)snprintf(buf + k, n - k, "%s%s=%lld", k ? " " : "", o->name, (long long)v);
    }
}

lp_status lp_settings_parse(const char *spec, lp_settings **out) {
    *out = NULL;
    char *copy = strdup(spec ? spec : "");
    if (!copy) return lp_fail(LP_ERR_NOMEM, "out of memory");
    char *save = NULL, *word = strtok_r(copy, " \t\n", &save);
    const lp_method *m = lp_method_find(word);
    lp_status st = m ? lp_settings_init(m, out)
                     : lp_fail(LP_ERR_ARG, "'%s' names no method (spec \"%s\")", word ? word : "", spec ? spec : "");
    while (st == LP_OK && (word = strtok_r(NULL, " \t\n", &save))) {
        char *eq = strchr(word, '=');
        if (eq) *eq = 0;
        st = lp_settings_set(*out, word, eq ? eq + 1 : NULL);
    }
    if (st == LP_OK) st = lp_settings_check(*out);
    if (st != LP_OK) {
        lp_settings_free(*out);
        *out = NULL;
    }
    free(copy);
    return st;
}

/* ---- shared checks ---- */

lp_status lp_check_grouped(const char *method, int bits, int group, bool sym) {
    if (!(group == -1 || (group > 0 && group % 32 == 0)))
        return lp_fail(LP_ERR_ARG, "%s --group %d is not supported: use a positive multiple of 32 (32, 64, 128, ...) "
                       "or -1 for one group per output channel", method, group);
    if (sym && bits == 1)
        return lp_fail(LP_ERR_ARG, "%s --sym with --bits 1 leaves a single level; use asymmetric 1-bit or 2+ bits",
                       method);
    return LP_OK;
}

/* ---- the one path into a format ---- */

lp_status lp_compress_linear_ex(lp_compress_fn fn, const void *settings, lp_linear *l, const float *H,
                                const lp_linear_extra *x, lp_quant_stats *st, double *rel_err) {
    const lp_dense *d = lp_linear_data(l, &lp_format_dense);
    if (!d) return lp_fail(LP_ERR_ARG, "linear is already compressed; quantize the original checkpoint");
    float *W = lp_linear_to_f32(l);
    if (!W) return lp_fail(LP_ERR_NOMEM, "out of memory for a %lld x %lld weight", (long long)l->rows,
                           (long long)l->cols);
    for (int64_t i = 0; i < l->rows * l->cols; i++)
        if (!isfinite(W[i])) {
            const char *what = isnan(W[i]) ? "NaN" : "infinite";
            free(W);
            return lp_fail(LP_ERR_NUMERIC, "weight [%lld, %lld] is %s", (long long)(i / l->cols),
                           (long long)(i % l->cols), what);
        }
    lp_quant_stats local = {0};
    const lp_compress_args a = {.W = W, .rows = l->rows, .cols = l->cols, .H = H, .settings = settings,
                                .stats = st ? st : &local, .dtype = d->dtype,
                                .H0 = x ? x->H0 : NULL, .absmean = x ? x->absmean : NULL, .plan = x ? x->plan : NAN};
    lp_linear out = {.rows = l->rows, .cols = l->cols};
    lp_status s = fn(&a, &out);
    if (s == LP_OK && out.nparts == 0) s = lp_fail(LP_ERR_ARG, "the method produced no weight");
    if (s == LP_OK) {
        lp_linear_take_parts(l, &out);
        *rel_err = lp_linear_rel_error(l, W);
    }
    lp_linear_free(&out);
    free(W);
    return s;
}

lp_status lp_compress_linear(lp_compress_fn fn, const void *settings, lp_linear *l, const float *H,
                             lp_quant_stats *st, double *rel_err) {
    return lp_compress_linear_ex(fn, settings, l, H, NULL, st, rel_err);
}

lp_status lp_method_compress_linear_ex(const lp_settings *s, lp_linear *l, const float *H, const lp_linear_extra *x,
                                       lp_quant_stats *st, double *rel_err) {
    LP_ASSERT(s->m->scope == LP_SCOPE_LINEAR && s->m->compress);
    return lp_compress_linear_ex(s->m->compress, s->data, l, H, x, st, rel_err);
}

lp_status lp_method_compress_linear(const lp_settings *s, lp_linear *l, const float *H, lp_quant_stats *st,
                                    double *rel_err) {
    return lp_method_compress_linear_ex(s, l, H, NULL, st, rel_err);
}
