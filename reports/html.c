/*
 * reports/html.c — the report as one self-contained HTML page for people (see report.h).
 *
 * The page references nothing outside itself: CSS is inline, charts are inline SVG
 * drawn here, there is no script, no font, no image and no link to load. A Content
 * Security Policy of default-src 'none' says so to the browser as well, so a report
 * opened from a CI artifact store cannot phone home even if some text slipped through
 * as markup (it cannot: every string goes through fdl_rpt_put_markup).
 *
 * Sections: the summary (pass rate, counts, date, version, ablation), the attack x
 * layer-switch matrix as a heat map with its legend, then per scenario its fleet, its
 * error if any, one table row per attack step (with the evidence in a <pre>) and one
 * line chart per timing series.
 */
#include "reports/report_int.h"

#include <math.h>
#include <string.h>

#define H(s) fdl_rpt_put_markup(out, (s), false)
#define A(s) fdl_rpt_put_markup(out, (s), true)

/* Chart geometry, in SVG user units (pixels at 100 %). */
#define CHART_W 640.0
#define CHART_H 240.0
#define PAD_L 64.0
#define PAD_R 16.0
#define PAD_T 12.0
#define PAD_B 40.0
/* A polyline of more points than this is thinned (min and max per bucket) to keep the page light. */
#define CHART_MAX_POINTS 2000u
/* Up to this many points, each also gets a marker. */
#define CHART_MARKERS 60u

static const char k_css[] =
    "body{font:14px/1.45 'DejaVu Sans',system-ui,sans-serif;margin:24px;color:#1d2330;background:#fff}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px}h3{font-size:15px;margin:16px 0 6px}"
    ".meta{color:#5a6272}.tiles{display:flex;gap:12px;flex-wrap:wrap;margin:14px 0}"
    ".tile{border:1px solid #d8dce4;border-radius:6px;padding:8px 14px;min-width:110px}"
    ".tile b{display:block;font-size:22px}.good{color:#1b7f3b}.warn{color:#a06b00}.bad{color:#b3261e}"
    "table{border-collapse:collapse;margin:6px 0 12px}th,td{border:1px solid #d8dce4;padding:4px 8px;"
    "vertical-align:top;text-align:left}th{background:#f2f4f8}"
    "pre{margin:0;max-width:560px;max-height:220px;overflow:auto;white-space:pre-wrap;word-break:break-all;"
    "font:12px/1.35 'DejaVu Sans Mono',monospace}"
    ".badge{display:inline-block;border-radius:4px;padding:1px 7px;font-weight:bold;font-size:12px}"
    ".pass{background:#d7f0dd;color:#14532d}.fail{background:#fadbd8;color:#8c1d18}"
    ".err{border:1px solid #b3261e;background:#fdf0ef;padding:6px 10px;border-radius:4px}"
    ".o-blocked{background:#1b7f3b;color:#fff}.o-contained{background:#7cb342;color:#fff}"
    ".o-detected{background:#f2c037;color:#1d2330}.o-missed{background:#c62828;color:#fff}"
    ".o-error{background:#6a4c93;color:#fff}.o-none{background:#eceff3;color:#5a6272}"
    "td.cell{text-align:center;min-width:86px}td.cell small{display:block;opacity:.85}"
    ".legend span{display:inline-block;padding:2px 8px;margin-right:6px;border-radius:3px}"
    "svg{background:#fbfcfe;border:1px solid #d8dce4}svg text{font:11px 'DejaVu Sans',sans-serif;fill:#3c4350}"
    "svg .grid{stroke:#e3e6ec}svg .axis{stroke:#3c4350}svg .line{fill:none;stroke:#2962ff;stroke-width:1.6}"
    "svg .dot{fill:#2962ff}figure{display:inline-block;margin:6px 16px 6px 0}figcaption{font-weight:bold}";

static void put_outcome_cell(FILE *out, bool set, fdl_outcome o, fdl_layer l)
{
    if (!set) {
        fputs("<td class=\"cell o-none\">not run</td>", out);
        return;
    }
    fprintf(out, "<td class=\"cell o-%s\">%s", fdl_outcome_name(o), fdl_outcome_name(o));
    if (l != FDL_LAYER_NONE)
        fprintf(out, "<small>%s</small>", fdl_layer_name(l));
    fputs("</td>", out);
}

static void put_summary(FILE *out, const fdl_report *r)
{
    fdl_report_counts c;
    fdl_report_get_counts(r, &c);
    char when[32];
    const char *cls = c.pass_rate >= 1.0 ? "good" : c.pass_rate >= 0.8 ? "warn" : "bad";
    fputs("<header><h1>fleetdrill drill report</h1><p class=\"meta\">", out);
    H(fdl_rpt_iso_time(r->started_unix, when, sizeof when));
    fputs(" &middot; fleetdrill ", out);
    H(r->tool_version ? r->tool_version : "?");
    fputs(" &middot; ablation: ", out);
    H(r->ablation ? r->ablation : "none");
    fputs("</p></header>\n<section class=\"tiles\">", out);
    fprintf(out, "<div class=\"tile\">pass rate<b class=\"%s\">%.1f %%</b></div>", cls, c.pass_rate * 100.0);
    fprintf(out, "<div class=\"tile\">steps passed<b>%zu / %zu</b></div>", c.steps_passed, c.steps);
    fprintf(out, "<div class=\"tile\">steps failed<b class=\"%s\">%zu</b></div>", c.steps_failed ? "bad" : "good",
            c.steps_failed);
    fprintf(out, "<div class=\"tile\">scenario errors<b class=\"%s\">%zu</b></div>", c.errors ? "bad" : "good",
            c.errors);
    fprintf(out, "<div class=\"tile\">scenarios passed<b>%zu / %zu</b></div>", c.scenarios_passed, c.scenarios);
    fputs("</section>\n", out);
}

static void put_matrix(FILE *out, const fdl_report *r)
{
    if (r->n_rows == 0)
        return;
    fputs("<section><h2>Attack &times; layer-switch matrix</h2>\n<p class=\"legend\">", out);
    for (int o = 0; o < FDL_OUTCOME_COUNT; o++)
        fprintf(out, "<span class=\"o-%s\">%s</span>", fdl_outcome_name((fdl_outcome)o),
                fdl_outcome_name((fdl_outcome)o));
    fputs("<span class=\"o-none\">not run</span></p>\n<table><tr><th>attack</th>", out);
    for (size_t c = 0; c < r->n_switches; c++) {
        fputs("<th>", out);
        H(r->switches[c]);
        fputs("</th>", out);
    }
    fputs("<th>layers that catch it alone</th><th>independent layers</th></tr>\n", out);
    for (size_t i = 0; i < r->n_rows; i++) {
        const fdl_report_mrow *row = r->rows[i];
        fputs("<tr><th>", out);
        H(row->attack);
        fputs("</th>", out);
        for (size_t c = 0; c < r->n_switches; c++)
            put_outcome_cell(out, row->cells[c].set, row->cells[c].outcome, row->cells[c].layer);
        const int depth[2] = {row->layers_alone, row->independent_layers};
        for (int d = 0; d < 2; d++) {
            if (depth[d] < 0)
                fputs("<td>-</td>", out);
            else
                fprintf(out, "<td class=\"%s\">%d</td>", depth[d] >= 2 ? "good" : depth[d] == 1 ? "warn" : "bad",
                        depth[d]);
        }
        fputs("</tr>\n", out);
    }
    fputs("</table></section>\n", out);
}

/* A step and about five ticks covering [lo, hi]: 1, 2 or 5 times a power of ten. */
static double nice_step(double lo, double hi)
{
    double raw = (hi - lo) / 5.0;
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag;
    return (f < 1.5 ? 1.0 : f < 3.0 ? 2.0 : f < 7.0 ? 5.0 : 10.0) * mag;
}

/* Widens [*lo, *hi] to whole steps; a flat range gets room around it. */
static double axis_range(double *lo, double *hi)
{
    if (!(*hi > *lo)) {
        double pad = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 1.0;
        /* A flat count of 0 gets 0..1, never a negative axis. */
        *lo = *lo >= 0 && *lo - pad < 0 ? 0 : *lo - pad;
        *hi += pad;
    }
    double step = nice_step(*lo, *hi);
    *lo = floor(*lo / step) * step;
    *hi = ceil(*hi / step) * step;
    return step;
}

static void put_chart(FILE *out, const fdl_report_series *se)
{
    const fdl_report_point *p = se->pts;
    fputs("<figure><figcaption>", out);
    H(se->name);
    if (se->unit) {
        fputs(" (", out);
        H(se->unit);
        fputs(")", out);
    }
    fputs("</figcaption>\n", out);
    if (se->n == 0) {
        fputs("<p class=\"meta\">no points</p></figure>\n", out);
        return;
    }
    double t0 = (double)p[0].t_ms, t1 = t0, v0 = p[0].value, v1 = v0;
    for (size_t i = 1; i < se->n; i++) {
        t0 = fmin(t0, (double)p[i].t_ms);
        t1 = fmax(t1, (double)p[i].t_ms);
        v0 = fmin(v0, p[i].value);
        v1 = fmax(v1, p[i].value);
    }
    /* Counts and latencies read best from zero. */
    if (v0 > 0)
        v0 = 0;
    bool secs = t1 - t0 >= 10000.0;
    double div = secs ? 1000.0 : 1.0;
    double x0 = t0 / div, x1 = t1 / div;
    double xstep = axis_range(&x0, &x1), ystep = axis_range(&v0, &v1);
    double pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
#define SX(x) (PAD_L + ((x) - x0) / (x1 - x0) * pw)
#define SY(y) (PAD_T + ph - ((y) - v0) / (v1 - v0) * ph)

    fprintf(out, "<svg width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"", CHART_W,
            CHART_H, CHART_W, CHART_H);
    A(se->name);
    fputs("\">\n", out);
    /* The tick loops are bounded too: a range near DBL_MAX could make the step useless. */
    int ticks = 0;
    for (double y = v0; y <= v1 + ystep / 2 && ticks < 20; y += ystep, ticks++) {
        fprintf(out, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", PAD_L, CHART_W - PAD_R,
                SY(y), SY(y));
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.6g</text>\n", PAD_L - 6, SY(y) + 4,
                fabs(y) < ystep / 1e6 ? 0.0 : y);
    }
    ticks = 0;
    for (double x = x0; x <= x1 + xstep / 2 && ticks < 20; x += xstep, ticks++) {
        fprintf(out, "<line class=\"grid\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", SX(x), SX(x), PAD_T,
                PAD_T + ph);
        fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.6g</text>\n", SX(x), PAD_T + ph + 15,
                fabs(x) < xstep / 1e6 ? 0.0 : x);
    }
    fprintf(out, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", PAD_L, CHART_W - PAD_R,
            PAD_T + ph, PAD_T + ph);
    fprintf(out, "<line class=\"axis\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>\n", PAD_L, PAD_L, PAD_T,
            PAD_T + ph);
    fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">time (%s)</text>\n", PAD_L + pw / 2,
            CHART_H - 6, secs ? "s" : "ms");
    fprintf(out, "<text transform=\"rotate(-90)\" x=\"%.1f\" y=\"14\" text-anchor=\"middle\">", -(PAD_T + ph / 2));
    H(se->unit ? se->unit : "value");
    fputs("</text>\n<polyline class=\"line\" points=\"", out);
    /* Thinned to min and max per bucket so spikes survive. */
    size_t bucket = (se->n + CHART_MAX_POINTS / 2 - 1) / (CHART_MAX_POINTS / 2);
    for (size_t b = 0; b < se->n; b += bucket) {
        size_t end = b + bucket < se->n ? b + bucket : se->n, lo = b, hi = b;
        for (size_t i = b; i < end; i++) {
            if (p[i].value < p[lo].value)
                lo = i;
            if (p[i].value > p[hi].value)
                hi = i;
        }
        size_t first = lo < hi ? lo : hi, second = lo < hi ? hi : lo;
        fprintf(out, "%.1f,%.1f ", SX((double)p[first].t_ms / div), SY(p[first].value));
        if (second != first)
            fprintf(out, "%.1f,%.1f ", SX((double)p[second].t_ms / div), SY(p[second].value));
    }
    fputs("\"/>\n", out);
    if (se->n <= CHART_MARKERS)
        for (size_t i = 0; i < se->n; i++)
            fprintf(out, "<circle class=\"dot\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\"/>", SX((double)p[i].t_ms / div),
                    SY(p[i].value));
#undef SX
#undef SY
    fputs("</svg></figure>\n", out);
}

static void put_step(FILE *out, const fdl_report_step *st)
{
    char e[48], buf[32];
    fputs("<tr><td>", out);
    H(st->attack);
    fputs("</td><td>", out);
    H(st->label);
    fputs("</td><td>", out);
    H(fdl_rpt_describe(st->expected, st->expected_layer, e, sizeof e));
    fputs("</td>", out);
    put_outcome_cell(out, true, st->actual, FDL_LAYER_NONE);
    fprintf(out, "<td>%s</td><td><span class=\"badge %s\">%s</span></td>", fdl_layer_name(st->actual_layer),
            st->pass ? "pass" : "fail", st->pass ? "PASS" : "FAIL");
    fprintf(out, "<td>%s</td>", fdl_rpt_fmt_ms(st->detect_ms, buf, sizeof buf));
    fprintf(out, "<td>%s</td>", fdl_rpt_fmt_ms(st->respond_ms, buf, sizeof buf));
    fprintf(out, "<td>%s</td><td>", fdl_rpt_fmt_ms(st->duration_ms, buf, sizeof buf));
    if (st->evidence) {
        fputs("<pre>", out);
        H(st->evidence);
        fputs("</pre>", out);
    }
    fputs("</td></tr>\n", out);
}

static void put_scenario(FILE *out, const fdl_report_scenario *s)
{
    bool passed = fdl_rpt_scenario_passed(s);
    fprintf(out, "<section><h2><span class=\"badge %s\">%s</span> ", passed ? "pass" : "fail",
            passed ? "PASS" : "FAIL");
    H(s->name);
    if (s->ablation) {
        fputs(" <small>[ablation: ", out);
        H(s->ablation);
        fputs("]</small>", out);
    }
    fputs("</h2>\n<p class=\"meta\">", out);
    H(s->path ? s->path : "");
    if (s->devices > 0 || s->profile || s->provisioning) {
        fprintf(out, " &middot; fleet: %llu devices", (unsigned long long)s->devices);
        if (s->profile) {
            fputs(", profile ", out);
            H(s->profile);
        }
        if (s->provisioning) {
            fputs(", provisioning ", out);
            H(s->provisioning);
        }
    }
    fputs("</p>\n", out);
    if (s->description) {
        fputs("<p>", out);
        H(s->description);
        fputs("</p>\n", out);
    }
    if (s->error) {
        fputs("<p class=\"err\"><b>scenario error:</b> ", out);
        H(s->error);
        fputs("</p>\n", out);
    }
    if (s->n_steps > 0) {
        fputs("<table><tr><th>attack</th><th>step</th><th>expected</th><th>actual</th><th>layer</th>"
              "<th>result</th><th>time to detect</th><th>time to respond</th><th>duration</th><th>evidence</th></tr>\n",
              out);
        for (size_t i = 0; i < s->n_steps; i++)
            put_step(out, s->steps[i]);
        fputs("</table>\n", out);
    }
    if (s->n_series > 0) {
        fputs("<h3>Timing</h3>\n", out);
        for (size_t i = 0; i < s->n_series; i++)
            put_chart(out, s->series[i]);
    }
    fputs("</section>\n", out);
}

fdl_report_status fdl_report_write_html(const fdl_report *r, FILE *out)
{
    if (!r || !out)
        return FDL_REPORT_ERR_ARG;
    char when[32];
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>fleetdrill report ",
          out);
    H(fdl_rpt_iso_time(r->started_unix, when, sizeof when));
    fprintf(out, "</title>\n<style>%s</style></head><body>\n", k_css);
    put_summary(out, r);
    put_matrix(out, r);
    for (size_t i = 0; i < r->n_scenarios; i++)
        put_scenario(out, r->scenarios[i]);
    fputs("</body></html>\n", out);
    return ferror(out) ? FDL_REPORT_ERR_IO : FDL_REPORT_OK;
}
