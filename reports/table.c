/*
 * reports/table.c — the report as an aligned table for a terminal (see report.h).
 *
 * One header line, one totals line, then per scenario its name and one row per step:
 * attack, expected, actual, layer, time (to detect / to respond), PASS or FAIL.
 * Column widths fit the widest cell of the whole report, up to a ceiling per column,
 * so rows line up across scenarios; longer cells end in '~'. Widths count code
 * points, which matches the terminal for the Latin, Greek and Cyrillic names
 * scenarios use (East Asian wide characters would take two columns and misalign).
 */
#include "reports/report_int.h"

#include <string.h>

enum { COL_ATTACK, COL_EXPECTED, COL_ACTUAL, COL_LAYER, COL_TIME, COL_COUNT };

/* Widest a column may be, in code points: the whole table fits 120 columns. */
static const size_t k_max_width[COL_COUNT] = {28, 24, 10, 10, 26};
static const char *const k_heads[COL_COUNT] = {"ATTACK", "EXPECTED", "ACTUAL", "LAYER", "TIME"};

/* Cell text is short: the widest column and a 4-byte sequence per code point. */
#define CELL_BYTES (28 * 4 + 1)

static void cell_texts(const fdl_report_step *st, char cells[COL_COUNT][CELL_BYTES])
{
    char d[24], r[24];
    fdl_rpt_term_clean(st->attack, k_max_width[COL_ATTACK], cells[COL_ATTACK], CELL_BYTES, NULL);
    fdl_rpt_describe(st->expected, st->expected_layer, cells[COL_EXPECTED], CELL_BYTES);
    snprintf(cells[COL_ACTUAL], CELL_BYTES, "%s", fdl_outcome_name(st->actual));
    snprintf(cells[COL_LAYER], CELL_BYTES, "%s", fdl_layer_name(st->actual_layer));
    if (st->detect_ms < 0 && st->respond_ms < 0)
        snprintf(cells[COL_TIME], CELL_BYTES, "-");
    else
        snprintf(cells[COL_TIME], CELL_BYTES, "d %s, r %s", fdl_rpt_fmt_ms(st->detect_ms, d, sizeof d),
                 fdl_rpt_fmt_ms(st->respond_ms, r, sizeof r));
}

/* Code points in a cell (cells hold only cleaned text: well-formed UTF-8). */
static size_t cols_of(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void put_row(FILE *out, char cells[COL_COUNT][CELL_BYTES], const size_t width[COL_COUNT], const char *result)
{
    fputs("  ", out);
    for (int c = 0; c < COL_COUNT; c++) {
        /* Cut again to the final width (generated cells can exceed it too). */
        char text[CELL_BYTES];
        size_t n;
        fdl_rpt_term_clean(cells[c], width[c], text, sizeof text, &n);
        fprintf(out, "%s%*s  ", text, (int)(width[c] - n), "");
    }
    fprintf(out, "%s\n", result);
}

fdl_report_status fdl_report_write_table(const fdl_report *r, FILE *out)
{
    if (!r || !out)
        return FDL_REPORT_ERR_ARG;
    char cells[COL_COUNT][CELL_BYTES];
    size_t width[COL_COUNT];
    for (int c = 0; c < COL_COUNT; c++)
        width[c] = strlen(k_heads[c]);
    for (size_t i = 0; i < r->n_scenarios; i++)
        for (size_t k = 0; k < r->scenarios[i]->n_steps; k++) {
            cell_texts(r->scenarios[i]->steps[k], cells);
            for (int c = 0; c < COL_COUNT; c++) {
                size_t w = cols_of(cells[c]);
                if (w > k_max_width[c])
                    w = k_max_width[c];
                if (w > width[c])
                    width[c] = w;
            }
        }

    char when[32], line[FDL_REPORT_STRING_MAX];
    fdl_report_counts t;
    fdl_report_get_counts(r, &t);
    fdl_rpt_term_clean(r->tool_version ? r->tool_version : "?", 32, line, sizeof line, NULL);
    fprintf(out, "fleetdrill %s  %s", line, fdl_rpt_iso_time(r->started_unix, when, sizeof when));
    fdl_rpt_term_clean(r->ablation ? r->ablation : "none", 40, line, sizeof line, NULL);
    fprintf(out, "  ablation: %s\n", line);
    fprintf(out, "%zu/%zu steps passed, %zu failed, %zu scenario error%s: pass rate %.1f%%; %zu/%zu scenarios passed\n",
            t.steps_passed, t.steps, t.steps_failed, t.errors, t.errors == 1 ? "" : "s", t.pass_rate * 100.0,
            t.scenarios_passed, t.scenarios);

    for (size_t i = 0; i < r->n_scenarios; i++) {
        const fdl_report_scenario *s = r->scenarios[i];
        fdl_rpt_term_clean(s->name, 60, line, sizeof line, NULL);
        fprintf(out, "\n%s %s", fdl_rpt_scenario_passed(s) ? "PASS" : "FAIL", line);
        if (s->path) {
            fdl_rpt_term_clean(s->path, 60, line, sizeof line, NULL);
            fprintf(out, "  (%s)", line);
        }
        if (s->ablation) {
            fdl_rpt_term_clean(s->ablation, 30, line, sizeof line, NULL);
            fprintf(out, "  [ablation: %s]", line);
        }
        fputc('\n', out);
        if (s->error) {
            fdl_rpt_term_clean(s->error, 110, line, sizeof line, NULL);
            fprintf(out, "  ERROR %s\n", line);
        }
        if (s->n_steps == 0)
            continue;
        for (int c = 0; c < COL_COUNT; c++)
            snprintf(cells[c], CELL_BYTES, "%s", k_heads[c]);
        put_row(out, cells, width, "RESULT");
        for (size_t k = 0; k < s->n_steps; k++) {
            cell_texts(s->steps[k], cells);
            put_row(out, cells, width, s->steps[k]->pass ? "PASS" : "FAIL");
        }
    }
    return ferror(out) ? FDL_REPORT_ERR_IO : FDL_REPORT_OK;
}
