/*
 * suite_svg.h - the charts of report.html, drawn as inline SVG by our code.
 *
 * What: a scatter plot on log axes (quality vs bits per weight) with
 *       labelled points, ringed points and a step line through them (the
 *       Pareto front), and a horizontal bar chart (mean task accuracy).
 * Why:  the report must be one self-contained file viewable offline: no
 *       plotting library, no script, no fetch; SVG is text we can write.
 * Design: pure functions of their inputs writing to a FILE; every string
 *       goes through svg_escape. Labels are placed greedily: each tries
 *       eight positions around its point and takes the first that overlaps
 *       no earlier label, no point and stays inside the plot (else the one
 *       overlapping least), which keeps a dozen close points readable.
 */
#ifndef LP_SUITE_SVG_H
#define LP_SUITE_SVG_H

#include <stdbool.h>
#include <stdio.h>

/* Write s with & < > " ' escaped (for HTML text and attributes). */
void svg_escape(FILE *f, const char *s);

/* Marker shapes (the HTML swatches of suite_html.c draw the same ones). */
enum { SVG_CIRCLE, SVG_SQUARE, SVG_DIAMOND, SVG_TRIANGLE, SVG_SHAPES };

typedef struct {
    double x, y;       /* data; must be finite and > 0 (log axes) */
    const char *label; /* drawn beside the point */
    const char *color; /* "#rrggbb" */
    int shape;         /* SVG_CIRCLE ... */
    const char *title; /* hover text, may be NULL */
    bool ring;         /* ringed (on the Pareto front) */
} svg_point;

typedef struct {
    int width, height;
    const char *title, *xlabel, *ylabel;
    int xbase, ybase; /* log axes: 2 or 10 */
    const svg_point *pts;
    int n;
    bool step; /* a step line through the ringed points, in x order */
    const char *note; /* a small line under the plot (points left out), may be NULL */
    double ref_y;     /* a dashed horizontal reference line (NAN: none) */
    const char *ref_label;
} svg_scatter;

void svg_scatter_write(FILE *f, const svg_scatter *s);

typedef struct {
    const char *label;
    double value; /* NAN: no bar, "-" */
    const char *color;
} svg_bar;

/* Horizontal bars from 0; ref (NAN: none) is drawn as a dashed line named
 * ref_label; values are printed with `decimals` and `unit`. */
void svg_bars_write(FILE *f, const char *title, const svg_bar *bars, int n, double ref, const char *ref_label,
                    int decimals, const char *unit);

#endif
