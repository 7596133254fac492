/*
 * suite_html.c - report.html of `llmpress suite` (suite_report.h).
 *
 * What: one self-contained page: a header (grid, date, machine, llmpress
 *       commit, what was measured), then per model the charts (perplexity of
 *       the first text vs bits per weight with the Pareto front; KL vs bits
 *       when eval reported KL), the quality table, per-task accuracy (a heat
 *       table and a bar chart of the mean), KL statistics, speed and memory;
 *       then the failed cells with their errors and the grid itself.
 * Why:  a benchmark is read as a picture first: where each method lands on
 *       the size/quality plane and which cells nothing beats.
 * Design: inline CSS and inline SVG only (suite_svg.c): no script, no font,
 *       no image or style sheet fetched, so the file opens offline and can
 *       be mailed. Every string from the grid, the cells or the children's
 *       JSON is escaped. Colours belong to method families in order of first
 *       appearance, the same in every chart and table.
 */
#include "suite_report.h"
#include "suite_svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAMILIES 32
#define MAX_TASKS 64

static const char *const PALETTE[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2",
                                      "#edc948", "#9c755f", "#ff9da7", "#3b5b92", "#8cd17d", "#d37295"};
#define N_PALETTE ((int)(sizeof PALETTE / sizeof *PALETTE))
#define UNCOMPRESSED_COLOR "#24292f"

typedef struct {
    char names[MAX_FAMILIES][48];
    int n;
} families;

static int family_index(families *fam, const suite_result *r) {
    char name[48];
    suite_family(r, name, sizeof name);
    for (int i = 0; i < fam->n; i++)
        if (!strcmp(fam->names[i], name)) return i;
    if (fam->n == MAX_FAMILIES) return MAX_FAMILIES - 1;
    snprintf(fam->names[fam->n], sizeof fam->names[0], "%s", name);
    return fam->n++;
}

/* A family's place among the compressed ones (the uncompressed family has
 * its own colour): colour k % N_PALETTE, then a new marker shape for every
 * round of the palette, so up to 4 x 12 families stay apart. */
static int family_rank(const families *fam, int i) {
    int k = 0;
    for (int j = 0; j < i; j++) k += strcmp(fam->names[j], "uncompressed") != 0;
    return k;
}

static const char *family_color(const families *fam, int i) {
    if (!strcmp(fam->names[i], "uncompressed")) return UNCOMPRESSED_COLOR;
    return PALETTE[family_rank(fam, i) % N_PALETTE];
}

static int family_shape(const families *fam, int i) {
    if (!strcmp(fam->names[i], "uncompressed")) return SVG_CIRCLE;
    return family_rank(fam, i) / N_PALETTE % SVG_SHAPES;
}

static const char *color_of(families *fam, const suite_result *r) { return family_color(fam, family_index(fam, r)); }
static int shape_of(families *fam, const suite_result *r) { return family_shape(fam, family_index(fam, r)); }

/* A legend or table swatch: the family's colour and shape. */
static void swatch(FILE *f, families *fam, int i) {
    fprintf(f, "<span class=\"sw s%d\" style=\"background:%s\"></span>", family_shape(fam, i), family_color(fam, i));
}

#define E(s) svg_escape(f, (s))

static const char *const CSS =
    ":root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--ok:#1a7f37;--bad:#d1242f;--warn:#9a6700}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;color:var(--fg);background:#fff;font:14px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,"
    "'Helvetica Neue',Arial,sans-serif}\n"
    "main{max-width:1260px;margin:0 auto;padding:28px 36px 64px}\n"
    "header.top{border-bottom:1px solid var(--line);padding-bottom:18px;margin-bottom:8px}\n"
    ".kicker{text-transform:uppercase;letter-spacing:.08em;font-size:12px;color:var(--muted);font-weight:600}\n"
    "h1{font-size:28px;margin:2px 0 6px;font-weight:650}\n"
    "h2{font-size:21px;margin:40px 0 4px;padding-bottom:6px;border-bottom:1px solid var(--line)}\n"
    "h3{font-size:15px;margin:26px 0 8px}\n"
    ".lede{margin:0 0 12px;color:var(--muted)}\n"
    ".pill{display:inline-block;border-radius:999px;padding:1px 10px;font-size:12px;font-weight:600;"
    "margin-right:6px;background:var(--soft);border:1px solid var(--line)}\n"
    ".pill.ok{color:var(--ok);border-color:#aceebb;background:#dafbe1}\n"
    ".pill.bad{color:var(--bad);border-color:#ffcecb;background:#ffebe9}\n"
    "dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:3px 18px;margin:14px 0 0}\n"
    "dl.meta dt{color:var(--muted)}dl.meta dd{margin:0}\n"
    "code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}\n"
    ".path{color:var(--muted);margin:0 0 10px}\n"
    ".charts{display:flex;flex-wrap:wrap;gap:16px;margin:12px 0 4px}\n"
    ".charts figure{margin:0;border:1px solid var(--line);border-radius:8px;padding:6px;background:#fff}\n"
    "svg.chart{display:block;max-width:100%;height:auto;font-family:inherit}\n"
    ".legend{display:flex;flex-wrap:wrap;gap:4px 16px;margin:8px 0;color:var(--fg);font-size:13px}\n"
    ".sw{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:0}\n"
    ".sw.s1{border-radius:1px}.sw.s2{border-radius:1px;transform:rotate(45deg) scale(.82)}\n"
    ".sw.s3{border-radius:0;clip-path:polygon(50% 0,100% 100%,0 100%)}\n"
    ".note{color:var(--muted);font-size:12.5px;margin:6px 0}\n"
    ".scroll{overflow-x:auto}\n"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:4px 0 6px}\n"
    "th,td{padding:5px 11px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}\n"
    "th{background:var(--soft);font-weight:600;font-size:12.5px;border-top:1px solid var(--line)}\n"
    "th:first-child,td:first-child,th.l,td.l{text-align:left}\n"
    "tbody tr:hover td{background-color:#f3f6fa}\n"
    "td small{color:var(--muted);margin-left:5px}\n"
    "td small.up{color:var(--bad)}td small.down{color:var(--ok)}\n"
    ".star{color:#bf8700;margin-left:4px}\n"
    ".st-ok{color:var(--ok)}.st-failed{color:var(--bad);font-weight:600}.st-pending{color:var(--warn)}\n"
    "tr.failed td{color:var(--muted)}tr.failed td.st-failed{color:var(--bad)}\n"
    "details{border:1px solid var(--line);border-radius:8px;margin:8px 0;padding:8px 12px}\n"
    "summary{cursor:pointer;font-weight:600}\n"
    "pre{background:var(--soft);border-radius:6px;padding:10px 12px;overflow:auto;font-size:12.5px;"
    "line-height:1.45;margin:8px 0}\n"
    "footer{margin-top:48px;color:var(--muted);font-size:12.5px;border-top:1px solid var(--line);padding-top:12px}\n";

static void fmt_cell(FILE *f, double v, int decimals) {
    char b[48];
    suite_fmt(v, decimals, b, sizeof b);
    fprintf(f, "<td>%s</td>", b);
}

/* The first columns of a cell's row: swatch, id (starred on the front), method. */
static void row_head(FILE *f, families *fam, const suite_result *r, bool front) {
    fprintf(f, "<tr class=\"%s\"><td>", r->status == SUITE_FAILED ? "failed" : "");
    swatch(f, fam, family_index(fam, r));
    fputs("<span class=\"mono\">", f);
    E(r->cell->id);
    fputs("</span>", f);
    if (front) fputs("<span class=\"star\" title=\"on the Pareto front\">\xe2\x98\x85</span>", f);
    fputs("</td><td class=\"l\">", f);
    char fam_name[48];
    suite_family(r, fam_name, sizeof fam_name);
    E(fam_name);
    fputs("</td>", f);
}

static void status_cell(FILE *f, const suite_result *r) {
    const char *w = r->status == SUITE_OK ? "ok" : r->status == SUITE_FAILED ? "failed" : "pending";
    fprintf(f, "<td class=\"l st-%s\"", w);
    if (r->status == SUITE_FAILED && r->error) {
        const char *nl = strchr(r->error, '\n');
        char first[400];
        snprintf(first, sizeof first, "%.*s", nl ? (int)(nl - r->error) : (int)strlen(r->error), r->error);
        fputs(" title=\"", f);
        E(first);
        fputc('"', f);
    }
    fprintf(f, ">%s</td>", w);
}

/* ---- charts ---- */

/* The points of one chart: finished cells of model m with a finite, positive
 * bits per weight and y (chart 0: perplexity of the first text, at most
 * ymax; chart 1: KL mean). Returns how many; *left_out counts the cells
 * without a value. titles[i] holds each point's hover text. */
static int chart_points(families *fam, const suite_model *m, const suite_result *rs, int n, const bool *front,
                        int chart, double ymax, svg_point *pts, char (*titles)[200], int *left_out) {
    int np = 0;
    *left_out = 0;
    for (int i = 0; i < n; i++) {
        const suite_result *r = &rs[i];
        if (r->model != m || r->status != SUITE_OK) continue;
        if (chart == 1 && !r->cell->method) continue; /* the reference has no KL to itself */
        const double b = suite_bits(r);
        const double y = chart == 0 ? suite_ppl(r, 0) : suite_num(suite_kl(r, 0), "mean");
        if (!(b > 0) || !(y > 0) || !isfinite(b) || !isfinite(y)) {
            (*left_out)++;
            continue;
        }
        if (y > ymax) continue;
        char fam_name[48];
        suite_family(r, fam_name, sizeof fam_name);
        snprintf(titles[np], sizeof titles[0], "%s (%s): %.3f bits per weight, %s %.4g", r->cell->id, fam_name, b,
                 chart == 0 ? "perplexity" : "KL mean", y);
        pts[np] = (svg_point){b, y, r->cell->id, color_of(fam, r), shape_of(fam, r), titles[np],
                              chart == 0 && front[i]};
        np++;
    }
    return np;
}

/* Up to three charts per model: perplexity vs bits (every cell, wide), the
 * same zoomed on the cells within +50% of the uncompressed model when some
 * lie beyond it, and the KL mean vs bits when eval reported KL. */
static void charts(FILE *f, const suite_ctx *x, families *fam, const suite_model *m, const suite_result *rs, int n,
                   const bool *front) {
    const suite_grid *g = x->g;
    if (!g->nppl) return;
    svg_point *pts = calloc((size_t)n + 1, sizeof *pts);
    char (*titles)[200] = calloc((size_t)n + 1, sizeof *titles);
    if (!pts || !titles) {
        free(pts);
        free(titles);
        return;
    }
    const suite_result *ref = suite_reference(rs, n, m);
    const double refp = ref ? suite_ppl(ref, 0) : NAN, zoom = 1.5 * refp;
    const char *text = suite_basename(g->ppl[0]);
    char title[200], ylabel[160], note[96], reflabel[64];
    snprintf(reflabel, sizeof reflabel, "uncompressed %.4g", refp);
    int left_out, np;
    fputs("<div class=\"charts\">", f);
    /* every cell */
    np = chart_points(fam, m, rs, n, front, 0, INFINITY, pts, titles, &left_out);
    int beyond = 0; /* cells above the zoom */
    for (int i = 0; i < np; i++) beyond += isfinite(zoom) && pts[i].y > zoom;
    if (np) {
        snprintf(title, sizeof title, "Perplexity vs size (%s)", text);
        snprintf(ylabel, sizeof ylabel, "perplexity, %s (log)", text);
        snprintf(note, sizeof note, "%d cell%s not drawn (no finite value)", left_out, left_out == 1 ? "" : "s");
        svg_scatter s = {.width = 1150, .height = 500, .title = title,
                         .xlabel = "bits per weight of the decoder linears (log\xe2\x82\x82)", .ylabel = ylabel,
                         .xbase = 2, .ybase = 10, .pts = pts, .n = np, .step = true, .note = left_out ? note : NULL,
                         .ref_y = refp, .ref_label = ref ? reflabel : NULL};
        fputs("<figure>", f);
        svg_scatter_write(f, &s);
        fputs("</figure>", f);
    }
    /* zoomed: the cells within +50% */
    np = beyond ? chart_points(fam, m, rs, n, front, 0, zoom, pts, titles, &left_out) : 0;
    if (np >= 2) {
        snprintf(title, sizeof title, "Zoom: cells within +50%% of the uncompressed perplexity");
        snprintf(note, sizeof note, "%d cell%s above the range", beyond, beyond == 1 ? "" : "s");
        svg_scatter s = {.width = 565, .height = 420, .title = title,
                         .xlabel = "bits per weight of the decoder linears (log\xe2\x82\x82)", .ylabel = ylabel,
                         .xbase = 2, .ybase = 10, .pts = pts, .n = np, .step = true, .note = note,
                         .ref_y = refp, .ref_label = reflabel};
        fputs("<figure>", f);
        svg_scatter_write(f, &s);
        fputs("</figure>", f);
    }
    /* KL */
    np = chart_points(fam, m, rs, n, front, 1, INFINITY, pts, titles, &left_out);
    if (np) {
        snprintf(title, sizeof title, "KL divergence from %s vs size (%s)", m->name, text);
        snprintf(note, sizeof note, "%d cell%s not drawn (no KL)", left_out, left_out == 1 ? "" : "s");
        svg_scatter s = {.width = 565, .height = 420, .title = title,
                         .xlabel = "bits per weight of the decoder linears (log\xe2\x82\x82)",
                         .ylabel = "mean KL per token, nats (log)", .xbase = 2, .ybase = 10, .pts = pts, .n = np,
                         .note = left_out ? note : NULL, .ref_y = NAN};
        fputs("<figure>", f);
        svg_scatter_write(f, &s);
        fputs("</figure>", f);
    }
    fputs("</div>\n", f);
    free(pts);
    free(titles);
}

/* ---- tables ---- */

static void quality_table(FILE *f, const suite_ctx *x, families *fam, const suite_model *m, const suite_result *rs,
                          int n, const bool *front) {
    const suite_grid *g = x->g;
    const suite_result *ref = suite_reference(rs, n, m);
    bool any_kl = false;
    for (int i = 0; i < n; i++) any_kl |= rs[i].model == m && suite_kl(&rs[i], 0) != NULL;
    fputs("<h3>Quality and size</h3><div class=\"scroll\"><table><thead><tr><th>cell</th><th class=\"l\">method"
          "</th><th>bits / weight</th><th>size MB</th>", f);
    for (int k = 0; k < g->nppl; k++) {
        fputs("<th>ppl <span class=\"mono\">", f);
        E(suite_basename(g->ppl[k]));
        fputs("</span></th>", f);
    }
    if (any_kl) fputs("<th>KL mean</th><th>KL p99</th><th>same top-1</th>", f);
    fputs("<th>compress s</th><th class=\"l\">status</th></tr></thead><tbody>\n", f);
    char b[64];
    for (int i = 0; i < n; i++) {
        const suite_result *r = &rs[i];
        if (r->model != m) continue;
        row_head(f, fam, r, front[i]);
        fmt_cell(f, suite_bits(r), 3);
        suite_fmt_mb(suite_total_bytes(r), b, sizeof b);
        fprintf(f, "<td>%s</td>", b);
        for (int k = 0; k < g->nppl; k++) {
            const double p = suite_ppl(r, k), p0 = ref ? suite_ppl(ref, k) : NAN;
            suite_fmt_ppl(p, b, sizeof b);
            fprintf(f, "<td>%s", b);
            if (isfinite(p) && isfinite(p0) && r != ref) {
                const double d = 100 * (p / p0 - 1);
                fprintf(f, "<small class=\"%s\">%+.*f%%</small>", d > 0.05 ? "up" : d < -0.05 ? "down" : "",
                        fabs(d) < 10 ? 1 : 0, d);
            }
            fputs("</td>", f);
        }
        if (any_kl) {
            const lp_json *kl = suite_kl(r, 0);
            fmt_cell(f, suite_num(kl, "mean"), 4);
            fmt_cell(f, suite_num(kl, "p99"), 3);
            const double t1 = suite_num(kl, "same_top1");
            suite_fmt(100 * t1, 1, b, sizeof b);
            fprintf(f, "<td>%s%s</td>", b, isfinite(t1) ? "%" : "");
        }
        fmt_cell(f, suite_compress_seconds(r), 1);
        status_cell(f, r);
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table></div>\n<p class=\"note\">\xe2\x98\x85 on the Pareto front: no other cell has both fewer "
          "bits per weight and a lower perplexity", f);
    if (g->nppl) {
        fputs(" on <span class=\"mono\">", f);
        E(suite_basename(g->ppl[0]));
        fputs("</span>", f);
    }
    fputs(". Small figures: change from the uncompressed model. Bits per weight count every stored byte of the "
          "decoder linears (scales, zeros, indices); size is the whole checkpoint.</p>\n", f);
}

static void tasks_section(FILE *f, families *fam, const suite_model *m, const suite_result *rs, int n,
                          const bool *front) {
    const char *tasks[MAX_TASKS];
    int nt = 0;
    for (int i = 0; i < n; i++) {
        if (rs[i].model != m) continue;
        const char *t[MAX_TASKS];
        const int k = suite_task_names(&rs[i], 1, t, MAX_TASKS);
        for (int j = 0; j < k; j++) {
            bool seen = false;
            for (int q = 0; q < nt && !seen; q++) seen = !strcmp(tasks[q], t[j]);
            if (!seen && nt < MAX_TASKS) tasks[nt++] = t[j];
        }
    }
    if (!nt) return;
    /* each column's range, for the heat colours */
    double lo[MAX_TASKS + 1], hi[MAX_TASKS + 1];
    for (int k = 0; k <= nt; k++) lo[k] = INFINITY, hi[k] = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (rs[i].model != m) continue;
        for (int k = 0; k <= nt; k++) {
            const double v = k < nt ? suite_task(&rs[i], tasks[k], "acc") : suite_task_mean(&rs[i], tasks, nt);
            if (isfinite(v)) lo[k] = fmin(lo[k], v), hi[k] = fmax(hi[k], v);
        }
    }
    fputs("<h3>Tasks: accuracy (%)</h3><div class=\"scroll\"><table><thead><tr><th>cell</th><th class=\"l\">method"
          "</th>", f);
    for (int k = 0; k < nt; k++) {
        fputs("<th class=\"mono\">", f);
        E(tasks[k]);
        fputs("</th>", f);
    }
    fputs("<th>mean</th></tr></thead><tbody>\n", f);
    for (int i = 0; i < n; i++) {
        const suite_result *r = &rs[i];
        if (r->model != m) continue;
        row_head(f, fam, r, front[i]);
        for (int k = 0; k <= nt; k++) {
            const double v = k < nt ? suite_task(r, tasks[k], "acc") : suite_task_mean(r, tasks, nt);
            if (!isfinite(v)) {
                fputs("<td>-</td>", f);
                continue;
            }
            /* a column where every cell is equal gets no colour */
            const double t = hi[k] > lo[k] ? (v - lo[k]) / (hi[k] - lo[k]) : -1;
            fprintf(f, "<td style=\"background:rgba(31,136,61,%.2f)%s\"", t < 0 ? 0 : 0.06 + 0.42 * t,
                    k == nt ? ";font-weight:600" : "");
            if (k < nt) {
                const double se = suite_task(r, tasks[k], "acc_stderr"), an = suite_task(r, tasks[k], "acc_norm"),
                             cnt = suite_task(r, tasks[k], "n");
                fputs(" title=\"", f);
                fprintf(f, "acc %.2f%%", 100 * v);
                if (isfinite(se)) fprintf(f, " \xc2\xb1 %.2f", 100 * se);
                if (isfinite(an)) fprintf(f, ", acc_norm %.2f%%", 100 * an);
                if (isfinite(cnt)) fprintf(f, ", n = %.0f", cnt);
                fputc('"', f);
            }
            fprintf(f, ">%.1f</td>", 100 * v);
        }
        fputs("</tr>\n", f);
    }
    fputs("</tbody></table></div>\n", f);
    /* the mean as bars */
    svg_bar *bars = calloc((size_t)n + 1, sizeof *bars);
    if (!bars) return;
    int nb = 0;
    const suite_result *ref = suite_reference(rs, n, m);
    for (int i = 0; i < n; i++) {
        if (rs[i].model != m) continue;
        bars[nb++] = (svg_bar){rs[i].cell->id, 100 * suite_task_mean(&rs[i], tasks, nt), color_of(fam, &rs[i])};
    }
    const double refv = ref ? 100 * suite_task_mean(ref, tasks, nt) : NAN;
    fputs("<div class=\"charts\"><figure>", f);
    svg_bars_write(f, "Mean accuracy over the tasks (%)", bars, nb, refv, "uncompressed", 1, "");
    fputs("</figure></div>\n<p class=\"note\">Colour: accuracy within each column, from its lowest (light) to its "
          "highest (dark). Hover a value for its standard error.</p>\n", f);
    free(bars);
}

static void kl_section(FILE *f, const suite_ctx *x, families *fam, const suite_model *m, const suite_result *rs,
                       int n, const bool *front) {
    const suite_grid *g = x->g;
    for (int k = 0; k < g->nppl; k++) {
        bool any = false;
        for (int i = 0; i < n; i++) any |= rs[i].model == m && suite_kl(&rs[i], k) != NULL;
        if (!any) continue;
        double ref_ppl = NAN; /* the reference's perplexity on the same windows, as eval reports it */
        for (int i = 0; i < n && !isfinite(ref_ppl); i++)
            if (rs[i].model == m) ref_ppl = suite_num(suite_kl(&rs[i], k), "ppl_ref");
        fputs("<h3>KL divergence from the uncompressed model, <span class=\"mono\">", f);
        E(suite_basename(g->ppl[k]));
        fputs("</span>", f);
        if (isfinite(ref_ppl)) fprintf(f, " (its perplexity on these windows: %.4g)", ref_ppl);
        fputs("</h3><div class=\"scroll\"><table><thead><tr><th>cell</th><th class=\"l\">method</th>"
              "<th>mean</th><th>median</th><th>p99</th><th>p99.9</th><th>same top-1</th><th>tokens</th>"
              "</tr></thead><tbody>\n", f);
        for (int i = 0; i < n; i++) {
            const suite_result *r = &rs[i];
            if (r->model != m || !r->cell->method) continue;
            const lp_json *kl = suite_kl(r, k);
            row_head(f, fam, r, front[i]);
            fmt_cell(f, suite_num(kl, "mean"), 4);
            fmt_cell(f, suite_num(kl, "median"), 4);
            fmt_cell(f, suite_num(kl, "p99"), 3);
            fmt_cell(f, suite_num(kl, "p999"), 3);
            const double t1 = suite_num(kl, "same_top1");
            char b[48];
            suite_fmt(100 * t1, 2, b, sizeof b);
            fprintf(f, "<td>%s%s</td>", b, isfinite(t1) ? "%" : "");
            fmt_cell(f, suite_num(kl, "tokens"), 0);
            fputs("</tr>\n", f);
        }
        fputs("</tbody></table></div>\n<p class=\"note\">KL(P<sub>uncompressed</sub> \xe2\x80\x96 "
              "P<sub>cell</sub>) per scored token, in nats; same top-1: the fraction of tokens whose most likely "
              "next token is unchanged.</p>\n", f);
    }
}

static void speed_section(FILE *f, families *fam, const suite_model *m, const suite_result *rs, int n,
                          const bool *front) {
    fputs("<h3>Speed and memory</h3><div class=\"scroll\"><table><thead><tr><th>cell</th><th class=\"l\">method</th>"
          "<th>prefill tok/s</th><th>decode tok/s</th><th>threads</th><th>eval peak MB</th>"
          "<th>quantize peak MB</th><th>quantize time</th><th>eval time</th><th>size MB</th></tr></thead>"
          "<tbody>\n", f);
    char b[48];
    for (int i = 0; i < n; i++) {
        const suite_result *r = &rs[i];
        if (r->model != m) continue;
        const lp_json *e = r->eval ? lp_json_root(r->eval) : NULL;
        row_head(f, fam, r, front[i]);
        suite_fmt_rate(suite_num(e, "speed.prefill_tok_s"), b, sizeof b);
        fprintf(f, "<td>%s</td>", b);
        suite_fmt_rate(suite_num(e, "speed.decode_tok_s"), b, sizeof b);
        fprintf(f, "<td>%s</td>", b);
        fmt_cell(f, suite_num(e, "speed.threads"), 0);
        suite_fmt_mb(suite_eval_peak_rss(r), b, sizeof b);
        fprintf(f, "<td>%s</td>", b);
        suite_fmt_mb(suite_quantize_peak_rss(r), b, sizeof b);
        fprintf(f, "<td>%s</td>", b);
        for (int k = 0; k < 2; k++) {
            const double s = suite_num(k == 0 ? (r->qrun ? lp_json_root(r->qrun) : NULL)
                                              : (r->erun ? lp_json_root(r->erun) : NULL),
                                       "seconds");
            if (isfinite(s)) suite_fmt_duration(s, b, sizeof b);
            else snprintf(b, sizeof b, "-");
            fprintf(f, "<td>%s</td>", b);
        }
        suite_fmt_mb(suite_total_bytes(r), b, sizeof b);
        fprintf(f, "<td>%s</td></tr>\n", b);
    }
    fputs("</tbody></table></div>\n<p class=\"note\">Peak: the child process's peak resident memory, MB (eval's own "
          "figure when it reports one). Times are the child processes' wall times, measured by the suite.</p>\n", f);
}

/* ---- the page ---- */

static void header(FILE *f, const suite_ctx *x, const suite_meta *meta, const suite_result *rs, int n,
                   families *fam) {
    const suite_grid *g = x->g;
    int ok = 0, failed = 0;
    for (int i = 0; i < n; i++) ok += rs[i].status == SUITE_OK, failed += rs[i].status == SUITE_FAILED;
    fputs("<header class=\"top\"><div class=\"kicker\">llmpress suite</div><h1>", f);
    char name[256];
    snprintf(name, sizeof name, "%s", suite_basename(meta->grid_path));
    char *dot = strrchr(name, '.');
    if (dot && dot != name) *dot = '\0'; /* "llama-25m.txt" -> "llama-25m" */
    E(name);
    fprintf(f, "</h1><p class=\"lede\">%d cell%s: %d model%s \xc3\x97 %d grid cell%s; quality against bits per "
            "weight</p>", n, n == 1 ? "" : "s", g->nmodels, g->nmodels == 1 ? "" : "s", g->ncells,
            g->ncells == 1 ? "" : "s");
    fprintf(f, "<span class=\"pill ok\">%d ok</span>", ok);
    if (failed) fprintf(f, "<span class=\"pill bad\">%d failed</span>", failed);
    if (n - ok - failed) fprintf(f, "<span class=\"pill\">%d pending</span>", n - ok - failed);
    fputs("<dl class=\"meta\"><dt>grid</dt><dd class=\"mono\">", f);
    E(meta->grid_path);
    fputs("</dd><dt>models</dt><dd>", f);
    for (int i = 0; i < g->nmodels; i++) {
        fputs(i ? ", " : "", f);
        fputs("<span class=\"mono\">", f);
        E(g->models[i].name);
        fputs("</span>", f);
    }
    fputs("</dd><dt>evaluation</dt><dd>", f);
    if (g->nppl) {
        fputs("perplexity on ", f);
        for (int k = 0; k < g->nppl; k++) {
            fputs(k ? ", " : "", f);
            fputs("<span class=\"mono\">", f);
            E(suite_basename(g->ppl[k]));
            fputs("</span>", f);
        }
        if (g->ctx) fprintf(f, ", windows of %lld tokens", (long long)g->ctx);
        if (g->windows) fprintf(f, " (first %lld)", (long long)g->windows);
        if (g->protocol) {
            fputs(", ", f);
            E(g->protocol);
            fputs(" protocol", f);
        }
    }
    if (g->kl) fputs("; KL divergence from the uncompressed model", f);
    if (g->tasks) {
        fputs("; tasks <span class=\"mono\">", f);
        E(g->tasks);
        fputs("</span>", f);
        if (g->limit) fprintf(f, " (at most %lld examples each)", (long long)g->limit);
    }
    fputs("</dd>", f);
    const suite_cell *cal = NULL;
    bool varies = false;
    for (int i = 0; i < g->ncells; i++) {
        const suite_cell *c = &g->cells[i];
        if (!c->calibrated) continue;
        if (!cal) cal = c;
        else varies |= strcmp(cal->calib, c->calib) || cal->nsamples != c->nsamples || cal->seqlen != c->seqlen ||
                       cal->seed != c->seed;
    }
    if (cal) {
        fputs("<dt>calibration</dt><dd><span class=\"mono\">", f);
        E(suite_basename(cal->calib));
        fputs("</span>", f);
        if (cal->nsamples || cal->seqlen || cal->has_seed) {
            if (cal->nsamples) fprintf(f, ", %lld windows", (long long)cal->nsamples);
            if (cal->seqlen) fprintf(f, ", %lld tokens each", (long long)cal->seqlen);
            if (cal->has_seed) fprintf(f, ", seed %lld", (long long)cal->seed);
        } else {
            fputs(" (quantize's default windows)", f);
        }
        if (varies) fputs(" (some cells differ: see results.json)", f);
        fputs("</dd>", f);
    }
    fputs("<dt>date</dt><dd>", f);
    E(meta->date);
    fputs("</dd><dt>machine</dt><dd>", f);
    E(meta->machine);
    fputs("</dd><dt>llmpress</dt><dd class=\"mono\">", f);
    E(*meta->commit ? meta->commit : "commit unknown");
    fputs("</dd></dl></header>\n", f);
    /* the legend: every family, in order */
    for (int i = 0; i < n; i++) family_index(fam, &rs[i]);
    fputs("<div class=\"legend\">", f);
    for (int i = 0; i < fam->n; i++) {
        fputs("<span>", f);
        swatch(f, fam, i);
        E(fam->names[i]);
        fputs("</span>", f);
    }
    fputs("<span class=\"note\" style=\"margin:0\">ringed in the charts, \xe2\x98\x85 in the tables: on the "
          "Pareto front (the dashed line)</span></div>\n", f);
}

void suite_html_write(FILE *f, const suite_ctx *x, const suite_meta *meta, const suite_result *rs, int n) {
    families fam = {.n = 0};
    bool *front = calloc((size_t)n + 1, sizeof *front);
    if (!front) {
        fputs("<!doctype html><p>out of memory writing the report</p>\n", f);
        return;
    }
    fputs("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>llmpress suite: ", f);
    E(suite_basename(meta->grid_path));
    fprintf(f, "</title>\n<style>\n%s</style></head>\n<body><main>\n", CSS);
    header(f, x, meta, rs, n, &fam);
    for (int mi = 0; mi < x->g->nmodels; mi++) {
        const suite_model *m = &x->g->models[mi];
        suite_pareto(rs, n, m, front);
        fputs("<section id=\"model-", f);
        E(m->name);
        fputs("\"><h2>", f);
        E(m->name);
        fputs("</h2><p class=\"path mono\">", f);
        E(m->path);
        fputs("</p>\n", f);
        charts(f, x, &fam, m, rs, n, front);
        quality_table(f, x, &fam, m, rs, n, front);
        tasks_section(f, &fam, m, rs, n, front);
        kl_section(f, x, &fam, m, rs, n, front);
        speed_section(f, &fam, m, rs, n, front);
        fputs("</section>\n", f);
    }
    int failed = 0;
    for (int i = 0; i < n; i++) failed += rs[i].status == SUITE_FAILED;
    if (failed) {
        fputs("<section id=\"failed\"><h2>Failed cells</h2><p class=\"note\">Each is retried by the next run of the suite.</p>\n", f);
        for (int i = 0; i < n; i++) {
            const suite_result *r = &rs[i];
            if (r->status != SUITE_FAILED) continue;
            const char *err = r->error ? r->error : "(no error recorded)";
            const char *nl = strchr(err, '\n');
            char first[400];
            snprintf(first, sizeof first, "%.*s", nl ? (int)(nl - err) : (int)strlen(err), err);
            fputs("<details><summary><span class=\"mono\">", f);
            E(r->model->name);
            fputs(" / ", f);
            E(r->cell->id);
            fputs("</span>: ", f);
            E(first);
            fputs("</summary><pre>", f);
            E(err);
            fputs("</pre></details>\n", f);
        }
        fputs("</section>\n", f);
    }
    fputs("<section id=\"grid\"><h2>The grid</h2><pre>", f);
    E(meta->grid_text ? meta->grid_text : "");
    fputs("</pre></section>\n<footer>Written by <span class=\"mono\">llmpress suite</span>; every number comes from "
          "the cells' <span class=\"mono\">quantize.json</span>, <span class=\"mono\">info.json</span> and "
          "<span class=\"mono\">eval.json</span>, collected in <span class=\"mono\">results.json</span>. Rerunning "
          "the same command keeps the finished cells.</footer>\n</main></body></html>\n", f);
    free(front);
}
