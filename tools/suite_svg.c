/*
 * suite_svg.c - inline SVG charts for report.html (suite_svg.h).
 *
 * What: a log-log scatter plot with a step line and labels, and a bar chart.
 * Why:  quality vs bits per weight spans 1..32 bits and perplexities from
 *       the model's own to thousands (2-bit round-to-nearest): both axes are
 *       logarithmic, bits in base 2 so that 2, 3, 4, 8, 16, 32 spread evenly.
 * Design: an axis maps data to pixels through log(v); its ticks come from
 *       the coarsest of a few "nice" sets that gives 3..10 ticks in range
 *       (decades; 1-2-5; 1..9; then evenly spaced values for a narrow range).
 *       Coordinates are printed with one decimal: the file stays small.
 */
#include "suite_svg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FONT 11.0         /* tick labels */
#define LABEL_FONT 10.5   /* point labels */
#define CHAR_W 0.57       /* average glyph width of a sans-serif font, in ems */
#define MAX_TICKS 24

void svg_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* ---- axes ---- */

typedef struct {
    double lo, hi;   /* data range */
    double p0, p1;   /* pixels of lo and hi */
    int base;        /* 2 or 10: log axis */
} axis;

static double ax_px(const axis *a, double v) {
    const double t = (log(v) - log(a->lo)) / (log(a->hi) - log(a->lo));
    return a->p0 + t * (a->p1 - a->p0);
}

/* The data range of values v (finite, > 0), widened by `pad` of its log
 * width on each side (and to a factor of 1.5 when all are equal). */
static void ax_range(axis *a, const double *v, int n, double pad) {
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < n; i++) lo = fmin(lo, v[i]), hi = fmax(hi, v[i]);
    if (!(lo > 0) || !isfinite(hi)) lo = 1, hi = 10;
    if (hi / lo < 1.5) {
        const double m = sqrt(lo * hi);
        lo = m / 1.22;
        hi = m * 1.22;
    }
    const double w = log(hi) - log(lo);
    a->lo = exp(log(lo) - pad * w);
    a->hi = exp(log(hi) + pad * w);
}

/* Ticks in [lo, hi]: the finest nice set with at most 8 of them (base 2:
 * powers of two; then also 1.5 x; then 1.25, 1.5, 1.75 x; base 10: decades;
 * 1-3; 1-2-5; 1..9 and 1.5), else evenly spaced values when the range is narrow. */
static int ax_ticks(const axis *a, double *t) {
    static const double m2[3][4] = {{1}, {1, 1.5}, {1, 1.25, 1.5, 1.75}};
    static const double m10[4][10] = {{1}, {1, 3}, {1, 2, 5}, {1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9}};
    static const int c2[4] = {1, 2, 4, 0}, c10[4] = {1, 2, 3, 10};
    int k = 0;
    for (int level = 0; level < (a->base == 2 ? 3 : 4); level++) {
        double u[MAX_TICKS];
        int m = 0;
        const int e0 = (int)floor(log(a->lo) / log(a->base)) - 1, e1 = (int)ceil(log(a->hi) / log(a->base));
        for (int e = e0; e <= e1 && m < MAX_TICKS; e++)
            for (int i = 0; i < (a->base == 2 ? c2[level] : c10[level]) && m < MAX_TICKS; i++) {
                const double v = (a->base == 2 ? m2[level][i] : m10[level][i]) * pow(a->base, e);
                if (v >= a->lo && v <= a->hi) u[m++] = v;
            }
        if (m > 8) {
            if (k < 3) { /* the coarser set had too few: every other one or so of this one */
                const int step = (m + 7) / 8;
                k = 0;
                for (int i = 0; i < m; i += step) t[k++] = u[i];
            }
            break;
        }
        memcpy(t, u, (size_t)m * sizeof *t);
        k = m;
    }
    if (k >= 3) return k;
    /* a narrow range: evenly spaced nice values */
    const double span = a->hi - a->lo, raw = span / 4, mag = pow(10, floor(log10(raw)));
    const double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
    k = 0;
    for (double v = ceil(a->lo / step) * step; v <= a->hi && k < MAX_TICKS; v += step) t[k++] = v;
    return k;
}

/* A tick's text: 3 significant digits, k/M for large values. */
static void tick_text(double v, char *buf, size_t n) {
    if (v >= 1e6) snprintf(buf, n, "%gM", v / 1e6);
    else if (v >= 1e4) snprintf(buf, n, "%gk", v / 1e3);
    else if (v >= 100) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%.3g", v);
}

/* ---- labels ---- */

typedef struct {
    double x0, y0, x1, y1;
} box;

static double overlap(box a, box b) {
    const double w = fmin(a.x1, b.x1) - fmax(a.x0, b.x0), h = fmin(a.y1, b.y1) - fmax(a.y0, b.y0);
    return w > 0 && h > 0 ? w * h : 0;
}

/* ---- scatter ---- */

/* Where a point's label goes: its text position and anchor, its box, and
 * whether it sits away from the point (then a leader line joins them). */
typedef struct {
    double tx, ty, lx, ly;
    const char *anchor;
    box b;
    bool ok, far;
} label_pos;

/* The first position around (x, y), by rings of growing radius and, in
 * each, from the sides to above and below, whose box overlaps no earlier
 * box and stays inside the plot; else the one that overlaps least. */
static label_pos place_label(double x, double y, const char *text, const box *placed, int np, box plot) {
    static const double radius[4] = {9, 20, 34, 52};
    static const double angle[12] = {0, 180, -30, 30, -150, 150, -60, 60, -120, 120, -90, 90}; /* degrees */
    const double w = CHAR_W * LABEL_FONT * (double)strlen(text), h = LABEL_FONT;
    label_pos best = {0};
    double best_cost = INFINITY;
    for (int ring = 0; ring < 4; ring++) {
        for (int k = 0; k < 12; k++) {
            const double t = angle[k] * M_PI / 180, c = cos(t), sn = sin(t);
            const double lx = x + radius[ring] * c, ly = y + radius[ring] * sn;
            const char *anchor = c > 0.3 ? "start" : c < -0.3 ? "end" : "middle";
            const double x0 = c > 0.3 ? lx : c < -0.3 ? lx - w : lx - w / 2;
            /* the box's middle at ly, pushed off the point when above or below it */
            const double yc = ly + (sn < -0.6 ? -h / 2 : sn > 0.6 ? h / 2 : 0);
            const box b = {x0, yc - h / 2, x0 + w, yc + h / 2};
            double cost = 0;
            for (int j = 0; j < np; j++) cost += overlap(b, placed[j]);
            if (b.x0 < plot.x0 || b.x1 > plot.x1 || b.y0 < plot.y0 || b.y1 > plot.y1) cost += 2 * w * h;
            cost += 0.5 * radius[ring] + 0.01 * k; /* nearer first */
            if (cost < best_cost) {
                best_cost = cost;
                best = (label_pos){lx, yc + 0.35 * h, lx, ly, anchor, b, true, ring > 0};
            }
        }
        if (best_cost < 0.5 * radius[ring] + 1) break; /* a free place in this ring */
    }
    return best;
}

/* One point's marker, about 11 px across, with its hover title. */
static void marker(FILE *f, double x, double y, int shape, const char *color, const char *title) {
    static const char *const tag[SVG_SHAPES] = {"circle", "rect", "polygon", "polygon"};
    const int k = shape >= 0 && shape < SVG_SHAPES ? shape : SVG_CIRCLE;
    if (k == SVG_CIRCLE) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5.5\"", x, y);
    else if (k == SVG_SQUARE)
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" rx=\"1\"", x - 5, y - 5);
    else if (k == SVG_DIAMOND)
        fprintf(f, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f\"", x, y - 6.5, x + 6.5, y, x, y + 6.5,
                x - 6.5, y);
    else fprintf(f, "<polygon points=\"%.1f,%.1f %.1f,%.1f %.1f,%.1f\"", x, y - 6.5, x + 6, y + 4.5, x - 6, y + 4.5);
    fprintf(f, " fill=\"%s\" stroke=\"#ffffff\" stroke-width=\"1.5\">", color);
    if (title) {
        fputs("<title>", f);
        svg_escape(f, title);
        fputs("</title>", f);
    }
    fprintf(f, "</%s>\n", tag[k]);
}

void svg_scatter_write(FILE *f, const svg_scatter *s) {
    const double W = s->width, H = s->height;
    const double L = 62, R = 18, T = s->title ? 34 : 14, B = s->note ? 58 : 44;
    axis ax = {.p0 = L, .p1 = W - R, .base = s->xbase}, ay = {.p0 = H - B, .p1 = T, .base = s->ybase};
    double *xs = malloc((size_t)(s->n + 1) * sizeof *xs), *ys = malloc((size_t)(s->n + 2) * sizeof *ys);
    box *placed = malloc((size_t)(2 * s->n + 2) * sizeof *placed);
    label_pos *pos = malloc((size_t)(s->n + 1) * sizeof *pos);
    if (!xs || !ys || !placed || !pos) {
        free(xs), free(ys), free(placed), free(pos);
        fputs("<p>(out of memory drawing the chart)</p>", f);
        return;
    }
    for (int i = 0; i < s->n; i++) xs[i] = s->pts[i].x, ys[i] = s->pts[i].y;
    int ny = s->n;
    if (isfinite(s->ref_y) && s->ref_y > 0) ys[ny++] = s->ref_y; /* the reference line stays in view */
    ax_range(&ax, xs, s->n, 0.08);
    ax_range(&ay, ys, ny, 0.10);
    fprintf(f, "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" "
            "role=\"img\" aria-label=\"", W, H, W, H);
    svg_escape(f, s->title ? s->title : "chart");
    fputs("\" class=\"chart\">\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fbfcfd\" stroke=\"#d0d7de\"/>\n", L,
            T, W - R - L, H - B - T);
    if (s->title) {
        fprintf(f, "<text x=\"%.1f\" y=\"20\" font-size=\"13\" font-weight=\"600\" fill=\"#1f2328\">", L);
        svg_escape(f, s->title);
        fputs("</text>\n", f);
    }
    /* grid lines and ticks */
    double t[MAX_TICKS];
    char buf[32];
    int nt = ax_ticks(&ax, t);
    for (int i = 0; i < nt; i++) {
        const double x = ax_px(&ax, t[i]);
        tick_text(t[i], buf, sizeof buf);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eaeef2\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" fill=\"#57606a\" text-anchor=\"middle\">%s</text>\n",
                x, T, x, H - B, x, H - B + 16, FONT, buf);
    }
    nt = ax_ticks(&ay, t);
    for (int i = 0; i < nt; i++) {
        const double y = ax_px(&ay, t[i]);
        tick_text(t[i], buf, sizeof buf);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eaeef2\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" fill=\"#57606a\" text-anchor=\"end\">%s</text>\n",
                L, y, W - R, y, L - 7, y + 4, FONT, buf);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#1f2328\" text-anchor=\"middle\">", (L + W - R) / 2,
            H - B + 34);
    svg_escape(f, s->xlabel);
    fprintf(f, "</text>\n<text transform=\"translate(16 %.1f) rotate(-90)\" font-size=\"12\" fill=\"#1f2328\" "
            "text-anchor=\"middle\">", (T + H - B) / 2);
    svg_escape(f, s->ylabel);
    fputs("</text>\n", f);
    if (s->note) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10.5\" fill=\"#57606a\">", L, H - 8);
        svg_escape(f, s->note);
        fputs("</text>\n", f);
    }

    /* the front: a step line through the ringed points, left to right */
    int *order = malloc((size_t)(s->n + 1) * sizeof *order), nf = 0;
    for (int i = 0; order && i < s->n; i++)
        if (s->pts[i].ring) order[nf++] = i;
    for (int i = 1; i < nf; i++)
        for (int j = i; j > 0 && s->pts[order[j - 1]].x > s->pts[order[j]].x; j--) {
            const int k = order[j];
            order[j] = order[j - 1];
            order[j - 1] = k;
        }
    if (s->step && nf > 1) {
        fputs("<path fill=\"none\" stroke=\"#24292f\" stroke-opacity=\"0.55\" stroke-width=\"1.5\" "
              "stroke-dasharray=\"5 4\" d=\"", f);
        for (int i = 0; i < nf; i++) {
            const double x = ax_px(&ax, s->pts[order[i]].x), y = ax_px(&ay, s->pts[order[i]].y);
            if (i == 0) fprintf(f, "M%.1f %.1f", x, y);
            else fprintf(f, "H%.1fV%.1f", x, y);
        }
        fputs("\"/>\n", f);
    }
    free(order);

    /* the reference: a dashed horizontal line, named at its left end (the
     * uncompressed model itself sits at the right) */
    if (isfinite(s->ref_y) && s->ref_y >= ay.lo && s->ref_y <= ay.hi) {
        const double y = ax_px(&ay, s->ref_y);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#24292f\" stroke-opacity=\"0.45\" "
                "stroke-dasharray=\"2 3\"/>\n", L, y, W - R, y);
        if (s->ref_label) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#57606a\">", L + 4, y - 4);
            svg_escape(f, s->ref_label);
            fputs("</text>\n", f);
        }
    }

    /* label positions first (they only depend on where the points are), so
     * that leader lines go under the markers and the labels over them */
    int np = 0;
    for (int i = 0; i < s->n; i++) {
        const double x = ax_px(&ax, s->pts[i].x), y = ax_px(&ay, s->pts[i].y);
        const double r = s->pts[i].ring ? 9 : 6.5;
        placed[np++] = (box){x - r, y - r, x + r, y + r};
    }
    if (s->ref_label && isfinite(s->ref_y) && s->ref_y >= ay.lo && s->ref_y <= ay.hi) {
        const double y = ax_px(&ay, s->ref_y), w = CHAR_W * 10 * (double)strlen(s->ref_label);
        placed[np++] = (box){L + 4, y - 14, L + 4 + w, y - 2};
    }
    for (int i = 0; i < s->n; i++) {
        pos[i].ok = false;
        if (!s->pts[i].label || !*s->pts[i].label) continue;
        pos[i] = place_label(ax_px(&ax, s->pts[i].x), ax_px(&ay, s->pts[i].y), s->pts[i].label, placed, np,
                             (box){L, T, W - R, H - B});
        placed[np++] = pos[i].b;
    }
    for (int i = 0; i < s->n; i++) /* leader lines of the labels set apart */
        if (pos[i].ok && pos[i].far) {
            const double x = ax_px(&ax, s->pts[i].x), y = ax_px(&ay, s->pts[i].y);
            const double dx = pos[i].lx - x, dy = pos[i].ly - y, d = sqrt(dx * dx + dy * dy);
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#8c959f\" "
                    "stroke-width=\"0.8\"/>\n", x + 7 * dx / d, y + 7 * dy / d, pos[i].lx - 3 * dx / d,
                    pos[i].ly - 3 * dy / d);
        }
    /* points: the rings first, then the markers over them */
    for (int i = 0; i < s->n; i++)
        if (s->pts[i].ring)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"8.5\" fill=\"none\" stroke=\"#24292f\" "
                    "stroke-width=\"1.4\"/>\n", ax_px(&ax, s->pts[i].x), ax_px(&ay, s->pts[i].y));
    for (int i = 0; i < s->n; i++)
        marker(f, ax_px(&ax, s->pts[i].x), ax_px(&ay, s->pts[i].y), s->pts[i].shape, s->pts[i].color,
               s->pts[i].title);
    for (int i = 0; i < s->n; i++) {
        if (!pos[i].ok) continue;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.1f\" fill=\"#1f2328\" text-anchor=\"%s\" "
                "stroke=\"#ffffff\" stroke-width=\"3\" stroke-linejoin=\"round\" paint-order=\"stroke\">",
                pos[i].tx, pos[i].ty, LABEL_FONT, pos[i].anchor);
        svg_escape(f, s->pts[i].label);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
    free(xs);
    free(ys);
    free(placed);
    free(pos);
}

/* ---- bars ---- */

void svg_bars_write(FILE *f, const char *title, const svg_bar *bars, int n, double ref, const char *ref_label,
                    int decimals, const char *unit) {
    double longest = 0, vmax = isfinite(ref) ? ref : 0;
    for (int i = 0; i < n; i++) {
        longest = fmax(longest, (double)strlen(bars[i].label));
        if (isfinite(bars[i].value)) vmax = fmax(vmax, bars[i].value);
    }
    if (!(vmax > 0)) vmax = 1;
    /* the axis: about 5 steps of a round size (1, 2, 2.5 or 5 x 10^k) past the largest bar */
    const double raw = vmax * 1.04 / 5, mag = pow(10, floor(log10(raw)));
    const double step = raw / mag <= 1 ? mag : raw / mag <= 2 ? 2 * mag : raw / mag <= 2.5 ? 2.5 * mag
                        : raw / mag <= 5 ? 5 * mag : 10 * mag;
    const int nsteps = (int)ceil(vmax * 1.04 / step);
    const double top = step * nsteps;
    const double row = 22, L = fmin(260, 16 + CHAR_W * FONT * longest), R = 70, T = title ? 34 : 10, B = 30;
    const double W = 640, H = T + row * n + B;
    fprintf(f, "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" "
            "role=\"img\" aria-label=\"", W, H, W, H);
    svg_escape(f, title ? title : "bars");
    fputs("\" class=\"chart\">\n", f);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
    if (title) {
        fprintf(f, "<text x=\"%.1f\" y=\"20\" font-size=\"13\" font-weight=\"600\" fill=\"#1f2328\">", 8.0);
        svg_escape(f, title);
        fputs("</text>\n", f);
    }
    const double x0 = L, x1 = W - R;
    for (int k = 0; k <= nsteps; k++) {
        const double v = step * k, x = x0 + (x1 - x0) * k / nsteps;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eaeef2\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" fill=\"#57606a\" text-anchor=\"middle\">%.*f</text>\n",
                x, T - 4, x, T + row * n, x, T + row * n + 16, FONT, step >= 1 ? 0 : step >= 0.1 ? 1 : 2, v);
    }
    for (int i = 0; i < n; i++) {
        const double y = T + row * i;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" fill=\"#1f2328\" text-anchor=\"end\">", x0 - 8,
                y + row / 2 + 4, FONT);
        svg_escape(f, bars[i].label);
        fputs("</text>\n", f);
        if (!isfinite(bars[i].value)) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" fill=\"#57606a\">-</text>\n", x0 + 4,
                    y + row / 2 + 4, FONT);
            continue;
        }
        const double w = (x1 - x0) * fmax(0, bars[i].value) / top;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"2\" fill=\"%s\" "
                "fill-opacity=\"0.85\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" fill=\"#1f2328\">"
                "%.*f%s</text>\n",
                x0, y + 4, w, row - 8, bars[i].color, x0 + w + 5, y + row / 2 + 4, FONT, decimals, bars[i].value,
                unit ? unit : "");
    }
    if (isfinite(ref)) {
        const double x = x0 + (x1 - x0) * ref / top;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#24292f\" stroke-dasharray=\"4 3\" "
                "stroke-opacity=\"0.7\"/>\n", x, T - 6, x, T + row * n);
        if (ref_label) {
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#57606a\" text-anchor=\"middle\">", x,
                    T - 8);
            svg_escape(f, ref_label);
            fputs("</text>\n", f);
        }
    }
    fputs("</svg>\n", f);
}
