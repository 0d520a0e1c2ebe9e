/* reports/report.c — the report model, its builder, the totals and the JSON writer (see report.h). */
#include "reports/report_int.h"

#include "sim/alloc.h"
#include "sim/fsutil.h"
#include "sim/json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const k_status[] = {
    [FDL_REPORT_OK] = "ok",
    [FDL_REPORT_ERR_ARG] = "invalid argument",
    [FDL_REPORT_ERR_NOMEM] = "out of memory",
    [FDL_REPORT_ERR_LIMIT] = "report ceiling reached",
    [FDL_REPORT_ERR_IO] = "write error",
};

const char *fdl_report_strerror(fdl_report_status st)
{
    if ((size_t)st >= sizeof k_status / sizeof k_status[0])
        return "unknown report status";
    return k_status[st];
}

/* ---------------------------------------------------------------------------------------- */
/* Names.                                                                                     */

static const char *const k_outcomes[FDL_OUTCOME_COUNT] = {"blocked", "contained", "detected", "missed", "error"};
static const char *const k_layers[FDL_LAYER_COUNT] = {"hardware", "firmware", "identity",  "transport",
                                                      "cloud",    "data",     "detection", "none"};

const char *fdl_outcome_name(fdl_outcome o)
{
    return (unsigned)o < FDL_OUTCOME_COUNT ? k_outcomes[o] : "?";
}

const char *fdl_layer_name(fdl_layer l)
{
    return (unsigned)l < FDL_LAYER_COUNT ? k_layers[l] : "?";
}

static int name_index(const char *const *names, int n, const char *name)
{
    if (!name)
        return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

fdl_report_status fdl_outcome_parse(const char *name, fdl_outcome *out)
{
    int i = name_index(k_outcomes, FDL_OUTCOME_COUNT, name);
    if (i < 0 || !out)
        return FDL_REPORT_ERR_ARG;
    *out = (fdl_outcome)i;
    return FDL_REPORT_OK;
}

fdl_report_status fdl_layer_parse(const char *name, fdl_layer *out)
{
    int i = name_index(k_layers, FDL_LAYER_COUNT, name);
    if (i < 0 || !out)
        return FDL_REPORT_ERR_ARG;
    *out = (fdl_layer)i;
    return FDL_REPORT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Strings and arrays.                                                                        */

/*
 * A copy of a[0..na) followed by b (may be NULL), cut to max bytes with the cut
 * mark when longer; NULL when out of memory. *cut (optional) says whether it was cut.
 */
static char *join_capped(const char *a, size_t na, const char *b, size_t max, bool *cut)
{
    size_t nb = b ? strlen(b) : 0;
    size_t markl = sizeof FDL_REPORT_CUT_MARK - 1;
    bool over = na > max || nb > max - na;
    size_t total = over ? max : na + nb;
    char *p = fdl_malloc(total + 1);
    if (!p)
        return NULL;
    if (!over) {
        memcpy(p, a, na);
        memcpy(p + na, b ? b : "", nb);
    } else {
        size_t keep = max - markl, ka = na < keep ? na : keep;
        memcpy(p, a, ka);
        if (ka < keep)
            memcpy(p + ka, b, keep - ka);
        /* p[keep] is the first byte not kept: back off while it continues a sequence. */
        size_t k = keep;
        while (k > 0 && ((unsigned char)(k < na ? a[k] : b[k - na]) & 0xC0) == 0x80)
            k--;
        memcpy(p + k, FDL_REPORT_CUT_MARK, markl);
        total = k + markl;
    }
    p[total] = '\0';
    if (cut)
        *cut = over;
    return p;
}

/* Replaces *field with a capped copy of s (NULL clears it); on NOMEM *field is unchanged. */
static fdl_report_status set_str(char **field, const char *s, size_t max)
{
    char *p = NULL;
    if (s) {
        p = join_capped(s, 0, s, max, NULL);
        if (!p)
            return FDL_REPORT_ERR_NOMEM;
    }
    fdl_free(*field);
    *field = p;
    return FDL_REPORT_OK;
}

/* arr grown (by doubling) to hold need elements of elem bytes, at most max; NULL on failure. */
static void *grow(void *arr, size_t *cap, size_t need, size_t elem, size_t max)
{
    if (need > max)
        return NULL;
    if (need <= *cap)
        return arr;
    size_t c = *cap ? *cap * 2 : 8;
    if (c > max)
        c = max;
    void *p = fdl_realloc(arr, c * elem);
    if (p)
        *cap = c;
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* Builder.                                                                                   */

fdl_report *fdl_report_new(const char *tool_version, int64_t started_unix, const char *ablation)
{
    fdl_report *r = fdl_calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->started_unix = started_unix;
    if (set_str(&r->tool_version, tool_version, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK ||
        set_str(&r->ablation, ablation, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK) {
        fdl_report_free(r);
        return NULL;
    }
    return r;
}

static void step_free(fdl_report_step *st)
{
    if (!st)
        return;
    fdl_free(st->attack);
    fdl_free(st->label);
    fdl_free(st->evidence);
    fdl_free(st);
}

static void series_free(fdl_report_series *se)
{
    if (!se)
        return;
    fdl_free(se->name);
    fdl_free(se->unit);
    fdl_free(se->pts);
    fdl_free(se);
}

static void scenario_free(fdl_report_scenario *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_steps; i++)
        step_free(s->steps[i]);
    for (size_t i = 0; i < s->n_series; i++)
        series_free(s->series[i]);
    fdl_free(s->steps);
    fdl_free(s->series);
    char **strs[] = {&s->name, &s->path, &s->description, &s->error, &s->profile, &s->provisioning, &s->ablation};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        fdl_free(*strs[i]);
    fdl_free(s);
}

void fdl_report_free(fdl_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_scenarios; i++)
        scenario_free(r->scenarios[i]);
    fdl_free(r->scenarios);
    for (size_t i = 0; i < r->n_rows; i++) {
        fdl_free(r->rows[i]->attack);
        fdl_free(r->rows[i]);
    }
    fdl_free(r->rows);
    for (size_t i = 0; i < r->n_switches; i++)
        fdl_free(r->switches[i]);
    fdl_free(r->tool_version);
    fdl_free(r->ablation);
    fdl_free(r);
}

fdl_report_scenario *fdl_report_add_scenario(fdl_report *r, const char *name, const char *path,
                                             const char *description)
{
    if (!r || !name)
        return NULL;
    void *arr = grow(r->scenarios, &r->cap_scenarios, r->n_scenarios + 1, sizeof *r->scenarios,
                     FDL_REPORT_MAX_SCENARIOS);
    if (!arr)
        return NULL;
    r->scenarios = arr;
    fdl_report_scenario *s = fdl_calloc(1, sizeof *s);
    if (!s || set_str(&s->name, name, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK ||
        set_str(&s->path, path, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK ||
        set_str(&s->description, description, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK) {
        scenario_free(s);
        return NULL;
    }
    r->scenarios[r->n_scenarios++] = s;
    return s;
}

fdl_report_status fdl_scenario_set_fleet(fdl_report_scenario *s, uint64_t devices, const char *profile,
                                         const char *provisioning)
{
    if (!s)
        return FDL_REPORT_ERR_ARG;
    char *p = NULL, *v = NULL;
    if (set_str(&p, profile, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK ||
        set_str(&v, provisioning, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK) {
        fdl_free(p);
        return FDL_REPORT_ERR_NOMEM;
    }
    fdl_free(s->profile);
    fdl_free(s->provisioning);
    s->profile = p;
    s->provisioning = v;
    s->devices = devices;
    return FDL_REPORT_OK;
}

fdl_report_status fdl_scenario_set_ablation(fdl_report_scenario *s, const char *ablation)
{
    return s ? set_str(&s->ablation, ablation, FDL_REPORT_STRING_MAX) : FDL_REPORT_ERR_ARG;
}

fdl_report_status fdl_scenario_set_error(fdl_report_scenario *s, const char *message)
{
    if (!s || !message)
        return FDL_REPORT_ERR_ARG;
    return set_str(&s->error, message, FDL_REPORT_STRING_MAX);
}

fdl_report_step *fdl_scenario_add_step(fdl_report_scenario *s, const fdl_report_step_info *info)
{
    if (!s || !info || !info->attack || (unsigned)info->expected >= FDL_OUTCOME_COUNT ||
        (unsigned)info->actual >= FDL_OUTCOME_COUNT || (unsigned)info->expected_layer >= FDL_LAYER_COUNT ||
        (unsigned)info->actual_layer >= FDL_LAYER_COUNT)
        return NULL;
    void *arr = grow(s->steps, &s->cap_steps, s->n_steps + 1, sizeof *s->steps, FDL_REPORT_MAX_STEPS);
    if (!arr)
        return NULL;
    s->steps = arr;
    fdl_report_step *st = fdl_calloc(1, sizeof *st);
    if (!st || set_str(&st->attack, info->attack, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK ||
        set_str(&st->label, info->label ? info->label : info->attack, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK ||
        (info->evidence && fdl_step_append_evidence(st, info->evidence) != FDL_REPORT_OK)) {
        step_free(st);
        return NULL;
    }
    st->expected = info->expected;
    st->expected_layer = info->expected_layer;
    st->actual = info->actual;
    st->actual_layer = info->actual_layer;
    st->pass = info->pass;
    st->detect_ms = info->detect_ms < 0 ? -1 : info->detect_ms;
    st->respond_ms = info->respond_ms < 0 ? -1 : info->respond_ms;
    st->duration_ms = info->duration_ms < 0 ? -1 : info->duration_ms;
    s->steps[s->n_steps++] = st;
    return st;
}

fdl_report_status fdl_step_append_evidence(fdl_report_step *st, const char *line)
{
    if (!st || !line)
        return FDL_REPORT_ERR_ARG;
    if (st->evidence_cut)
        return FDL_REPORT_OK;
    char *joined;
    bool cut = false;
    if (!st->evidence) {
        joined = join_capped(line, 0, line, FDL_REPORT_EVIDENCE_MAX, &cut);
    } else {
        /* Old text + '\n' + line: the separator goes in first, as part of the old text. */
        char *with_nl = fdl_realloc(st->evidence, st->evidence_len + 2);
        if (!with_nl)
            return FDL_REPORT_ERR_NOMEM;
        st->evidence = with_nl;
        with_nl[st->evidence_len] = '\n';
        with_nl[st->evidence_len + 1] = '\0';
        joined = join_capped(with_nl, st->evidence_len + 1, line, FDL_REPORT_EVIDENCE_MAX, &cut);
        if (!joined) {
            with_nl[st->evidence_len] = '\0';
            return FDL_REPORT_ERR_NOMEM;
        }
    }
    if (!joined)
        return FDL_REPORT_ERR_NOMEM;
    fdl_free(st->evidence);
    st->evidence = joined;
    st->evidence_len = strlen(joined);
    st->evidence_cut = cut;
    return FDL_REPORT_OK;
}

fdl_report_series *fdl_scenario_add_series(fdl_report_scenario *s, const char *name, const char *unit)
{
    if (!s || !name)
        return NULL;
    void *arr = grow(s->series, &s->cap_series, s->n_series + 1, sizeof *s->series, FDL_REPORT_MAX_SERIES);
    if (!arr)
        return NULL;
    s->series = arr;
    fdl_report_series *se = fdl_calloc(1, sizeof *se);
    if (!se || set_str(&se->name, name, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK ||
        set_str(&se->unit, unit, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK) {
        series_free(se);
        return NULL;
    }
    s->series[s->n_series++] = se;
    return se;
}

fdl_report_status fdl_series_add_point(fdl_report_series *se, int64_t t_ms, double value)
{
    if (!se || !isfinite(value))
        return FDL_REPORT_ERR_ARG;
    if (se->n >= FDL_REPORT_MAX_POINTS)
        return FDL_REPORT_ERR_LIMIT;
    void *arr = grow(se->pts, &se->cap, se->n + 1, sizeof *se->pts, FDL_REPORT_MAX_POINTS);
    if (!arr)
        return FDL_REPORT_ERR_NOMEM;
    se->pts = arr;
    se->pts[se->n++] = (fdl_report_point){t_ms, value};
    return FDL_REPORT_OK;
}

/* The matrix row for attack, created when create is set; *st says why NULL. */
static fdl_report_mrow *matrix_row(fdl_report *r, const char *attack, fdl_report_status *st)
{
    for (size_t i = 0; i < r->n_rows; i++)
        if (strcmp(r->rows[i]->attack, attack) == 0)
            return r->rows[i];
    if (r->n_rows >= FDL_REPORT_MAX_ATTACKS) {
        *st = FDL_REPORT_ERR_LIMIT;
        return NULL;
    }
    *st = FDL_REPORT_ERR_NOMEM;
    void *arr = grow(r->rows, &r->cap_rows, r->n_rows + 1, sizeof *r->rows, FDL_REPORT_MAX_ATTACKS);
    if (!arr)
        return NULL;
    r->rows = arr;
    fdl_report_mrow *row = fdl_calloc(1, sizeof *row);
    if (!row || set_str(&row->attack, attack, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK) {
        fdl_free(row);
        return NULL;
    }
    row->layers_alone = row->independent_layers = -1;
    r->rows[r->n_rows++] = row;
    return row;
}

fdl_report_status fdl_report_matrix_set(fdl_report *r, const char *attack, const char *switch_name,
                                        fdl_outcome actual, fdl_layer layer)
{
    if (!r || !attack || !switch_name || (unsigned)actual >= FDL_OUTCOME_COUNT || (unsigned)layer >= FDL_LAYER_COUNT)
        return FDL_REPORT_ERR_ARG;
    size_t col = 0;
    while (col < r->n_switches && strcmp(r->switches[col], switch_name) != 0)
        col++;
    /* Both the column and the row must be possible before either is added. */
    if (col == r->n_switches && col >= FDL_REPORT_MAX_SWITCHES)
        return FDL_REPORT_ERR_LIMIT;
    char *new_switch = NULL;
    if (col == r->n_switches && set_str(&new_switch, switch_name, FDL_REPORT_STRING_MAX) != FDL_REPORT_OK)
        return FDL_REPORT_ERR_NOMEM;
    fdl_report_status st = FDL_REPORT_OK;
    fdl_report_mrow *row = matrix_row(r, attack, &st);
    if (!row) {
        fdl_free(new_switch);
        return st;
    }
    if (new_switch)
        r->switches[r->n_switches++] = new_switch;
    row->cells[col] = (fdl_report_cell){true, actual, layer};
    return FDL_REPORT_OK;
}

fdl_report_status fdl_report_matrix_set_depth(fdl_report *r, const char *attack, int layers_alone,
                                              int independent_layers)
{
    if (!r || !attack)
        return FDL_REPORT_ERR_ARG;
    fdl_report_status st = FDL_REPORT_OK;
    fdl_report_mrow *row = matrix_row(r, attack, &st);
    if (!row)
        return st;
    row->layers_alone = layers_alone < 0 ? -1 : layers_alone;
    row->independent_layers = independent_layers < 0 ? -1 : independent_layers;
    return FDL_REPORT_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Totals and shared phrasing.                                                                */

bool fdl_rpt_scenario_passed(const fdl_report_scenario *s)
{
    if (s->error)
        return false;
    for (size_t i = 0; i < s->n_steps; i++)
        if (!s->steps[i]->pass)
            return false;
    return true;
}

void fdl_report_get_counts(const fdl_report *r, fdl_report_counts *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < r->n_scenarios; i++) {
        const fdl_report_scenario *s = r->scenarios[i];
        out->scenarios++;
        if (fdl_rpt_scenario_passed(s))
            out->scenarios_passed++;
        else
            out->scenarios_failed++;
        if (s->error)
            out->errors++;
        for (size_t k = 0; k < s->n_steps; k++) {
            out->steps++;
            if (s->steps[k]->pass)
                out->steps_passed++;
            else
                out->steps_failed++;
        }
    }
    size_t all = out->steps + out->errors;
    out->pass_rate = all ? (double)out->steps_passed / (double)all : 0.0;
}

const char *fdl_rpt_describe(fdl_outcome o, fdl_layer l, char *buf, size_t cap)
{
    if (l == FDL_LAYER_NONE)
        snprintf(buf, cap, "%s", fdl_outcome_name(o));
    else
        snprintf(buf, cap, "%s by %s", fdl_outcome_name(o), fdl_layer_name(l));
    return buf;
}

const char *fdl_rpt_verdict(const fdl_report_step *st, char *buf, size_t cap)
{
    char e[48], a[48];
    snprintf(buf, cap, "expected %s, got %s", fdl_rpt_describe(st->expected, st->expected_layer, e, sizeof e),
             fdl_rpt_describe(st->actual, st->actual_layer, a, sizeof a));
    return buf;
}

const char *fdl_rpt_iso_time(int64_t unix_s, char *buf, size_t cap)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "@%lld", (long long)unix_s);
    return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* JSON (schema "fleetdrill-report/1", docs/reports.md).                                      */

/* A duration in ms, or null when not applicable. */
static void json_ms(fdl_json *j, const char *key, int64_t ms)
{
    if (ms < 0)
        fdl_json_null(j, key);
    else
        fdl_json_int(j, key, ms);
}

static void json_judgement(fdl_json *j, const char *key, fdl_outcome o, fdl_layer l)
{
    fdl_json_obj_begin(j, key);
    fdl_json_str(j, "outcome", fdl_outcome_name(o));
    fdl_json_str(j, "layer", fdl_layer_name(l));
    fdl_json_obj_end(j);
}

static void json_scenario(fdl_json *j, const fdl_report_scenario *s)
{
    fdl_json_obj_begin(j, NULL);
    fdl_json_str(j, "name", s->name);
    fdl_json_str(j, "path", s->path);
    fdl_json_str(j, "description", s->description);
    fdl_json_str(j, "ablation", s->ablation);
    fdl_json_str(j, "error", s->error);
    fdl_json_bool(j, "passed", fdl_rpt_scenario_passed(s));
    fdl_json_obj_begin(j, "fleet");
    fdl_json_uint(j, "devices", s->devices);
    fdl_json_str(j, "profile", s->profile);
    fdl_json_str(j, "provisioning", s->provisioning);
    fdl_json_obj_end(j);
    fdl_json_arr_begin(j, "steps");
    for (size_t i = 0; i < s->n_steps; i++) {
        const fdl_report_step *st = s->steps[i];
        fdl_json_obj_begin(j, NULL);
        fdl_json_str(j, "attack", st->attack);
        fdl_json_str(j, "label", st->label);
        json_judgement(j, "expected", st->expected, st->expected_layer);
        json_judgement(j, "actual", st->actual, st->actual_layer);
        fdl_json_bool(j, "pass", st->pass);
        fdl_json_str(j, "evidence", st->evidence ? st->evidence : "");
        json_ms(j, "detect_ms", st->detect_ms);
        json_ms(j, "respond_ms", st->respond_ms);
        json_ms(j, "duration_ms", st->duration_ms);
        fdl_json_obj_end(j);
    }
    fdl_json_arr_end(j);
    fdl_json_arr_begin(j, "series");
    for (size_t i = 0; i < s->n_series; i++) {
        const fdl_report_series *se = s->series[i];
        fdl_json_obj_begin(j, NULL);
        fdl_json_str(j, "name", se->name);
        fdl_json_str(j, "unit", se->unit);
        fdl_json_arr_begin(j, "points");
        for (size_t k = 0; k < se->n; k++) {
            fdl_json_arr_begin(j, NULL);
            fdl_json_int(j, NULL, se->pts[k].t_ms);
            fdl_json_num(j, NULL, se->pts[k].value);
            fdl_json_arr_end(j);
        }
        fdl_json_arr_end(j);
        fdl_json_obj_end(j);
    }
    fdl_json_arr_end(j);
    fdl_json_obj_end(j);
}

static void json_matrix(fdl_json *j, const fdl_report *r)
{
    if (r->n_rows == 0) {
        fdl_json_null(j, "matrix");
        return;
    }
    fdl_json_obj_begin(j, "matrix");
    fdl_json_arr_begin(j, "switches");
    for (size_t c = 0; c < r->n_switches; c++)
        fdl_json_str(j, NULL, r->switches[c]);
    fdl_json_arr_end(j);
    fdl_json_arr_begin(j, "attacks");
    for (size_t i = 0; i < r->n_rows; i++) {
        const fdl_report_mrow *row = r->rows[i];
        fdl_json_obj_begin(j, NULL);
        fdl_json_str(j, "attack", row->attack);
        if (row->layers_alone < 0)
            fdl_json_null(j, "layers_alone");
        else
            fdl_json_int(j, "layers_alone", row->layers_alone);
        if (row->independent_layers < 0)
            fdl_json_null(j, "independent_layers");
        else
            fdl_json_int(j, "independent_layers", row->independent_layers);
        fdl_json_arr_begin(j, "cells");
        for (size_t c = 0; c < r->n_switches; c++) {
            if (!row->cells[c].set)
                fdl_json_null(j, NULL);
            else
                json_judgement(j, NULL, row->cells[c].outcome, row->cells[c].layer);
        }
        fdl_json_arr_end(j);
        fdl_json_obj_end(j);
    }
    fdl_json_arr_end(j);
    fdl_json_obj_end(j);
}

fdl_report_status fdl_report_write_json(const fdl_report *r, FILE *out)
{
    if (!r || !out)
        return FDL_REPORT_ERR_ARG;
    fdl_json *j = fdl_json_new(FDL_REPORT_JSON_MAX);
    if (!j)
        return FDL_REPORT_ERR_NOMEM;
    fdl_json_set_pretty(j, 1);
    fdl_report_counts c;
    fdl_report_get_counts(r, &c);
    char when[32];

    fdl_json_obj_begin(j, NULL);
    fdl_json_str(j, "schema", "fleetdrill-report/1");
    fdl_json_str(j, "tool_version", r->tool_version);
    fdl_json_int(j, "started_unix", r->started_unix);
    fdl_json_str(j, "started", fdl_rpt_iso_time(r->started_unix, when, sizeof when));
    fdl_json_str(j, "ablation", r->ablation);
    fdl_json_obj_begin(j, "summary");
    fdl_json_uint(j, "scenarios", c.scenarios);
    fdl_json_uint(j, "scenarios_passed", c.scenarios_passed);
    fdl_json_uint(j, "scenarios_failed", c.scenarios_failed);
    fdl_json_uint(j, "steps", c.steps);
    fdl_json_uint(j, "steps_passed", c.steps_passed);
    fdl_json_uint(j, "steps_failed", c.steps_failed);
    fdl_json_uint(j, "errors", c.errors);
    fdl_json_num(j, "pass_rate", c.pass_rate);
    fdl_json_obj_end(j);
    fdl_json_arr_begin(j, "scenarios");
    for (size_t i = 0; i < r->n_scenarios; i++)
        json_scenario(j, r->scenarios[i]);
    fdl_json_arr_end(j);
    json_matrix(j, r);
    fdl_json_obj_end(j);

    fdl_report_status st;
    size_t len = 0;
    const char *text = fdl_json_text(j, &len);
    if (text) {
        st = fwrite(text, 1, len, out) == len && fputc('\n', out) != EOF && !ferror(out) ? FDL_REPORT_OK
                                                                                           : FDL_REPORT_ERR_IO;
    } else {
        int e = fdl_json_error(j);
        st = e == FDL_JSON_NO_MEMORY ? FDL_REPORT_ERR_NOMEM : e == FDL_JSON_TOO_LARGE ? FDL_REPORT_ERR_LIMIT
                                                                                      : FDL_REPORT_ERR_ARG;
    }
    fdl_json_free(j);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Whole files.                                                                               */

fdl_report_status fdl_report_write_file(const fdl_report *r, fdl_report_format fmt, const char *path)
{
    static fdl_report_status (*const writers[])(const fdl_report *, FILE *) = {
        [FDL_REPORT_JSON] = fdl_report_write_json,
        [FDL_REPORT_JUNIT] = fdl_report_write_junit,
        [FDL_REPORT_HTML] = fdl_report_write_html,
        [FDL_REPORT_TABLE] = fdl_report_write_table,
    };
    if (!r || !path || !*path || (unsigned)fmt >= sizeof writers / sizeof writers[0])
        return FDL_REPORT_ERR_ARG;
    /* The document goes to memory first, then to disk in one atomic replace. */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem)
        return FDL_REPORT_ERR_NOMEM;
    fdl_report_status st = writers[fmt](r, mem);
    if (fclose(mem) != 0 && st == FDL_REPORT_OK)
        st = FDL_REPORT_ERR_NOMEM;
    if (st == FDL_REPORT_OK) {
        int rc = fdl_write_file_atomic(path, buf, len, 0644);
        if (rc != 0) {
            errno = -rc;
            st = FDL_REPORT_ERR_IO;
        }
    }
    free(buf); /* open_memstream's buffer comes from libc's malloc */
    return st;
}
