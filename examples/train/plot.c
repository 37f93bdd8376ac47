/* plot.c - SVG line charts written directly (no gnuplot): epochs on x, one polyline
 * with markers per series, axes with "nice" ticks, a legend. */
#include <math.h>
#include <stdio.h>

#include "train.h"

#define W 640
#define H 400
#define ML 70 /* margins: left, right, top, bottom */
#define MR 20
#define MT 40
#define MB 50

/* A tick step of 1, 2 or 5 times a power of ten giving about n ticks over span. */
static double nice_step(double span, int n)
{
    double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

int tr_plot_svg(const char *path, const char *title, const char *ylabel,
                const struct tr_series *s, int ns)
{
    double ymin = HUGE_VAL, ymax = -HUGE_VAL;
    int nx = 1;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            ymin = fmin(ymin, s[k].y[i]);
            ymax = fmax(ymax, s[k].y[i]);
            nx = s[k].n > nx ? s[k].n : nx;
        }
    if (ymin > ymax)
        ymin = 0, ymax = 1;
    if (ymin > 0 && ymin < 0.5 * ymax)
        ymin = 0;
    if (ymax - ymin < 1e-12)
        ymax = ymin + (ymin != 0 ? fabs(ymin) * 0.1 : 1);
    double ystep = nice_step(ymax - ymin, 6);
    ymin = floor(ymin / ystep) * ystep;
    ymax = ceil(ymax / ystep) * ystep;
    double xstep = nx <= 10 ? 1 : nice_step(nx - 1, 8);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    double pw = W - ML - MR, ph = H - MT - MB;
#define X(e) (ML + (nx > 1 ? ((e) - 1) / (double)(nx - 1) : 0.5) * pw)
#define Y(v) (MT + ph - ((v) - ymin) / (ymax - ymin) * ph)
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
               "<text x=\"%d\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">%s</text>\n",
            W, H, W / 2, title);
    for (double v = ymin; v <= ymax + ystep / 2; v += ystep) {
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ML,
                Y(v), W - MR, Y(v));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 6,
                Y(v) + 4, fabs(v) < ystep / 1e6 ? 0 : v);
    }
    for (double e = 1; e <= nx + 1e-9; e += xstep)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", X(e),
                H - MB + 18, e);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ML, H - MB,
            W - MR, H - MB);
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ML, MT, ML,
            H - MB);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">epoch</text>\n", ML + (int)pw / 2,
            H - 12);
    fprintf(f, "<text x=\"16\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 16 %d)\">"
               "%s</text>\n", MT + (int)ph / 2, MT + (int)ph / 2, ylabel);
    for (int k = 0; k < ns; k++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                s[k].color);
        for (int i = 0; i < s[k].n; i++)
            fprintf(f, "%.1f,%.1f ", X(i + 1.0), Y(s[k].y[i]));
        fprintf(f, "\"/>\n");
        if (s[k].n <= 60)
            for (int i = 0; i < s[k].n; i++)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", X(i + 1.0),
                        Y(s[k].y[i]), s[k].color);
        int ly = MT + 8 + 18 * k;
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
                   "stroke-width=\"2\"/>\n<text x=\"%d\" y=\"%d\">%s</text>\n",
                W - MR - 110, ly, W - MR - 85, ly, s[k].color, W - MR - 78, ly + 4, s[k].name);
    }
#undef X
#undef Y
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}
