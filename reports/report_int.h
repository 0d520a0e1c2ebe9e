/*
 * reports/report_int.h — private to reports/: the report's layout, which the writers
 * and the history read directly, and the text helpers they share (one escaping
 * routine per target, reports/text.c), so no writer carries its own copy.
 */
#ifndef FDL_REPORT_INT_H
#define FDL_REPORT_INT_H

#include "reports/report.h"

struct fdl_report_step {
    char *attack;              /* never NULL */
    char *label;               /* never NULL (the attack's name when none was given) */
    char *evidence;            /* NULL = none */
    size_t evidence_len;
    bool evidence_cut;         /* FDL_REPORT_EVIDENCE_MAX reached: further lines dropped */
    fdl_outcome expected, actual;
    fdl_layer expected_layer, actual_layer;
    bool pass;
    int64_t detect_ms, respond_ms, duration_ms;   /* negative = not applicable / unknown */
};

typedef struct fdl_report_point {
    int64_t t_ms;
    double value;
} fdl_report_point;

struct fdl_report_series {
    char *name;                /* never NULL */
    char *unit;                /* NULL = none */
    fdl_report_point *pts;
    size_t n, cap;
};

struct fdl_report_scenario {
    char *name;                /* never NULL */
    char *path, *description, *error, *profile, *provisioning, *ablation;   /* NULL = absent */
    uint64_t devices;
    fdl_report_step **steps;
    size_t n_steps, cap_steps;
    fdl_report_series **series;
    size_t n_series, cap_series;
};

typedef struct fdl_report_cell {
    bool set;                  /* false = not run under this switch */
    fdl_outcome outcome;
    fdl_layer layer;
} fdl_report_cell;

typedef struct fdl_report_mrow {
    char *attack;
    int layers_alone, independent_layers;   /* negative = unknown */
    fdl_report_cell cells[FDL_REPORT_MAX_SWITCHES];   /* indexed like fdl_report.switches */
} fdl_report_mrow;

struct fdl_report {
    char *tool_version, *ablation;          /* NULL = absent / none */
    int64_t started_unix;
    fdl_report_scenario **scenarios;
    size_t n_scenarios, cap_scenarios;
    char *switches[FDL_REPORT_MAX_SWITCHES];
    size_t n_switches;
    fdl_report_mrow **rows;
    size_t n_rows, cap_rows;
};

/* A scenario passed: no error and every step passed. */
bool fdl_rpt_scenario_passed(const fdl_report_scenario *s);

/* "blocked by transport", or "missed" when the layer is FDL_LAYER_NONE; into buf. */
const char *fdl_rpt_describe(fdl_outcome o, fdl_layer l, char *buf, size_t cap);
/* "expected blocked by transport, got missed": the one-line verdict of a step. */
const char *fdl_rpt_verdict(const fdl_report_step *st, char *buf, size_t cap);
/* ISO 8601 UTC, "2024-05-01T12:00:00Z", into buf (at least 32 bytes). */
const char *fdl_rpt_iso_time(int64_t unix_s, char *buf, size_t cap);

/*
 * Markup (XML 1.0 and HTML5 alike): writes s to out with & < > " ' as references,
 * CR and CRLF as LF, and every character XML 1.0 forbids or HTML calls a control or a
 * noncharacter (C0 but TAB and LF, DEL, C1, U+FDD0..U+FDEF, U+xxFFFE/F) and every
 * invalid UTF-8 byte as U+FFFD. attr: inside an attribute value, TAB and LF become
 * &#9; and &#10; so parsers do not normalise them to spaces. NULL writes nothing.
 */
void fdl_rpt_put_markup(FILE *out, const char *s, bool attr);

/*
 * Terminal: copies s into out[0..cap) with control characters, bidirectional
 * overrides and invalid UTF-8 as '?', cut to max_cols code points (the last one then
 * '~'). *cols (optional) gets the code points written. Always NUL-terminates (cap > 0).
 */
void fdl_rpt_term_clean(const char *s, size_t max_cols, char *out, size_t cap, size_t *cols);

/* Milliseconds for people: "-" when negative, "850 ms", "12.3 s", "4 min 05 s". */
const char *fdl_rpt_fmt_ms(int64_t ms, char *buf, size_t cap);

#endif /* FDL_REPORT_INT_H */
