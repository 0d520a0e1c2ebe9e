/*
 * reports/report.h — the in-memory report of a drill and its writers: JSON (machine),
 * JUnit XML (CI), one self-contained HTML page (people) and a terminal table.
 * The sqlite history of reports is reports/history.h; the formats are in docs/reports.md.
 *
 * Model. A report holds scenarios (one Lua drill each, possibly run under an ablation
 * switch); a scenario holds attack steps and timing series; the report also holds an
 * optional attack x layer-switch matrix. Every attack step ends in one outcome and
 * names the layer that caught it (DESIGN.md, "What a scenario is").
 *
 * Building. The scenario engine fills a report through the fdl_report_* builder calls
 * below. Every string argument is borrowed and copied (the engine may free its Lua
 * strings right after the call); NULL strings are stored as "absent". Strings longer
 * than FDL_REPORT_STRING_MAX (evidence: FDL_REPORT_EVIDENCE_MAX) are cut at a UTF-8
 * boundary and end with FDL_REPORT_CUT_MARK. Counts have ceilings (FDL_REPORT_MAX_*),
 * beyond which a builder call returns FDL_REPORT_ERR_LIMIT and changes nothing.
 * Handles returned by the builder (scenario, step, series) are borrowed: they belong to
 * the report and stay valid until fdl_report_free.
 *
 * Text from anywhere (scenario names, evidence quoting what a peer sent) may be hostile;
 * each writer escapes for its own format, replaces invalid UTF-8 and control characters,
 * and never lets a string end a construct early.
 *
 * Memory: through sim/alloc.h; fdl_report_free releases everything the report holds.
 * Not thread-safe: one thread builds, then any number of writers may read it in turn.
 */
#ifndef FDL_REPORT_H
#define FDL_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Ceilings, each with its reason. */
#define FDL_REPORT_STRING_MAX 4096u          /* bytes: names, labels, paths, errors — a line, not a file */
#define FDL_REPORT_EVIDENCE_MAX 65536u       /* bytes per step: a few hundred log lines */
#define FDL_REPORT_MAX_SCENARIOS 4096u       /* a nightly drill runs tens; sharded runs merge hundreds */
#define FDL_REPORT_MAX_STEPS 4096u           /* steps per scenario */
#define FDL_REPORT_MAX_SERIES 64u            /* charts per scenario: more is unreadable anyway */
#define FDL_REPORT_MAX_POINTS 100000u        /* points per series: a day at one per second */
#define FDL_REPORT_MAX_ATTACKS 1024u         /* matrix rows */
#define FDL_REPORT_MAX_SWITCHES 32u          /* matrix columns: baseline + one per layer switch */
#define FDL_REPORT_JSON_MAX (256u << 20)     /* bytes of JSON: the worst case of the above, bounded */
/* Appended to a string that was cut. */
#define FDL_REPORT_CUT_MARK "[...cut]"

typedef enum fdl_report_status {
    FDL_REPORT_OK = 0,
    FDL_REPORT_ERR_ARG,     /* NULL where a value is required, unknown enum value, bad name */
    FDL_REPORT_ERR_NOMEM,   /* nothing changed, nothing leaked */
    FDL_REPORT_ERR_LIMIT,   /* a FDL_REPORT_MAX_* ceiling; nothing changed */
    FDL_REPORT_ERR_IO,      /* writing the output failed (errno is left as the stream set it) */
} fdl_report_status;

/* Static string; never NULL. */
const char *fdl_report_strerror(fdl_report_status st);

/* How an attack step ended. */
typedef enum fdl_outcome {
    FDL_OUTCOME_BLOCKED = 0,   /* a layer refused it */
    FDL_OUTCOME_CONTAINED,     /* it happened, its reach limited to what the policy allows */
    FDL_OUTCOME_DETECTED,      /* it happened and a detector raised an alert */
    FDL_OUTCOME_MISSED,        /* nothing stopped or saw it */
    FDL_OUTCOME_ERROR,         /* the step itself failed to run */
    FDL_OUTCOME_COUNT
} fdl_outcome;

/* Which layer caught it. */
typedef enum fdl_layer {
    FDL_LAYER_HARDWARE = 0,
    FDL_LAYER_FIRMWARE,
    FDL_LAYER_IDENTITY,
    FDL_LAYER_TRANSPORT,
    FDL_LAYER_CLOUD,
    FDL_LAYER_DATA,
    FDL_LAYER_DETECTION,
    FDL_LAYER_NONE,            /* nothing caught it (missed), or not applicable */
    FDL_LAYER_COUNT
} fdl_layer;

/* "blocked", "contained", "detected", "missed", "error"; "?" out of range. */
const char *fdl_outcome_name(fdl_outcome o);
/* Exact, lower-case name to enum: FDL_REPORT_OK, or FDL_REPORT_ERR_ARG (*out unchanged). */
fdl_report_status fdl_outcome_parse(const char *name, fdl_outcome *out);
/* "hardware", "firmware", "identity", "transport", "cloud", "data", "detection", "none"; "?". */
const char *fdl_layer_name(fdl_layer l);
fdl_report_status fdl_layer_parse(const char *name, fdl_layer *out);

typedef struct fdl_report fdl_report;
typedef struct fdl_report_scenario fdl_report_scenario;
typedef struct fdl_report_step fdl_report_step;
typedef struct fdl_report_series fdl_report_series;

/*
 * A new, empty report, or NULL when out of memory.
 *   tool_version  copied (FDL_VERSION from the build); NULL = absent
 *   started_unix  when the drill started, seconds since the epoch (UTC)
 *   ablation      copied; the layer switch the whole run was made under; NULL = none
 * Free with fdl_report_free.
 */
fdl_report *fdl_report_new(const char *tool_version, int64_t started_unix, const char *ablation);
/* Frees r and everything it holds; NULL is a no-op. Every handle into r dies with it. */
void fdl_report_free(fdl_report *r);

/*
 * Appends a scenario; NULL when out of memory, past FDL_REPORT_MAX_SCENARIOS or name
 * is NULL. name (required), path and description are copied. The handle is borrowed.
 */
fdl_report_scenario *fdl_report_add_scenario(fdl_report *r, const char *name, const char *path,
                                             const char *description);
/*
 * The fleet the scenario ran against: devices, profile name and provisioning mode
 * ("enroll", "jitr", ...); strings copied, NULL = absent. Replaces earlier values.
 */
fdl_report_status fdl_scenario_set_fleet(fdl_report_scenario *s, uint64_t devices, const char *profile,
                                         const char *provisioning);
/* The ablation switch this scenario ran under (copied); NULL = none. */
fdl_report_status fdl_scenario_set_ablation(fdl_report_scenario *s, const char *ablation);
/*
 * Marks the scenario as failed to run, with a message such as
 * "scenarios/x.lua:12: unknown attack 'foo'" (copied). A scenario with an error has
 * failed whatever its steps say. A second call replaces the message.
 */
fdl_report_status fdl_scenario_set_error(fdl_report_scenario *s, const char *message);

/* One attack step as the engine judged it. Every pointer is borrowed by the call. */
typedef struct fdl_report_step_info {
    const char *attack;         /* required: the attack's name, e.g. "stolen-cert" */
    const char *label;          /* the step's label in the scenario; NULL = the attack's name */
    fdl_outcome expected;       /* what the scenario declared ... */
    fdl_layer expected_layer;   /* ... and which layer should catch it */
    fdl_outcome actual;         /* what happened */
    fdl_layer actual_layer;     /* which layer caught it (FDL_LAYER_NONE when missed) */
    bool pass;                  /* the engine's verdict */
    const char *evidence;       /* multi-line text: log lines, TLS alerts, metrics; NULL = none */
    int64_t detect_ms;          /* time to detect; negative = not applicable */
    int64_t respond_ms;         /* time to respond; negative = not applicable */
    int64_t duration_ms;        /* how long the step ran; negative = unknown */
} fdl_report_step_info;

/* Appends a step; NULL when out of memory, past FDL_REPORT_MAX_STEPS, or info is invalid
 * (NULL attack, enum out of range). The handle is borrowed. */
fdl_report_step *fdl_scenario_add_step(fdl_report_scenario *s, const fdl_report_step_info *info);
/*
 * Appends one line of evidence (copied; a '\n' is put between lines). Past
 * FDL_REPORT_EVIDENCE_MAX the text is cut and ends with FDL_REPORT_CUT_MARK; later
 * lines are dropped (still FDL_REPORT_OK: evidence is best effort, the step is not).
 */
fdl_report_status fdl_step_append_evidence(fdl_report_step *st, const char *line);

/*
 * Appends a timing series for the charts, e.g. name "connected devices", unit
 * "devices", or "revoke: time to disconnect", unit "ms". Both copied; unit may be NULL.
 * NULL when out of memory, past FDL_REPORT_MAX_SERIES or name is NULL.
 */
fdl_report_series *fdl_scenario_add_series(fdl_report_scenario *s, const char *name, const char *unit);
/* Appends a point: t_ms since the scenario started, any finite value (else ERR_ARG). */
fdl_report_status fdl_series_add_point(fdl_report_series *se, int64_t t_ms, double value);

/*
 * The attack x layer-switch matrix. Rows (attacks) and columns (switches: "baseline",
 * "pinning", "registry", ...) appear in the order they are first named; both names are
 * copied. Setting a cell twice keeps the last value. Cells never set are "not run".
 */
fdl_report_status fdl_report_matrix_set(fdl_report *r, const char *attack, const char *switch_name,
                                        fdl_outcome actual, fdl_layer layer);
/*
 * Per attack: how many layers catch it on their own, and how many independent layers
 * stand between it and success (the engine computes both); negative = unknown.
 * Creates the row if needed.
 */
fdl_report_status fdl_report_matrix_set_depth(fdl_report *r, const char *attack, int layers_alone,
                                              int independent_layers);

/* Totals, computed from the steps and errors. */
typedef struct fdl_report_counts {
    size_t scenarios;          /* all scenarios */
    size_t scenarios_passed;   /* no error and every step passed */
    size_t scenarios_failed;
    size_t steps;              /* all attack steps */
    size_t steps_passed;
    size_t steps_failed;
    size_t errors;             /* scenarios with an error */
    double pass_rate;          /* steps_passed / (steps + errors); 0 when both are 0 */
} fdl_report_counts;

/* Fills *out (required) from r (required). */
void fdl_report_get_counts(const fdl_report *r, fdl_report_counts *out);

/*
 * Writers. Each writes the whole document to out (borrowed, left open) and returns
 * FDL_REPORT_OK, FDL_REPORT_ERR_ARG (NULL r or out), FDL_REPORT_ERR_NOMEM or
 * FDL_REPORT_ERR_IO (ferror on out). On failure part of the document may have been
 * written: use fdl_report_write_file for a file that is whole or absent.
 */
/* JSON, schema "fleetdrill-report/1" (docs/reports.md), pretty-printed, UTF-8. */
fdl_report_status fdl_report_write_json(const fdl_report *r, FILE *out);
/* JUnit XML: one <testsuite> per scenario, one <testcase> per step (reports/junit.c). */
fdl_report_status fdl_report_write_junit(const fdl_report *r, FILE *out);
/* One self-contained HTML page: no network reference of any kind (reports/html.c). */
fdl_report_status fdl_report_write_html(const fdl_report *r, FILE *out);
/* An aligned table for a terminal; control characters are shown as '?' (reports/table.c). */
fdl_report_status fdl_report_write_table(const fdl_report *r, FILE *out);

typedef enum fdl_report_format {
    FDL_REPORT_JSON = 0,
    FDL_REPORT_JUNIT,
    FDL_REPORT_HTML,
    FDL_REPORT_TABLE,
} fdl_report_format;

/*
 * Writes r in format fmt to path atomically (sim/fsutil.h: a reader sees the old file
 * or the whole new one), mode 0644. Returns the writer's status, FDL_REPORT_ERR_ARG for
 * a NULL path or unknown format, or FDL_REPORT_ERR_IO (errno set) when the file could
 * not be written.
 */
fdl_report_status fdl_report_write_file(const fdl_report *r, fdl_report_format fmt, const char *path);

#endif /* FDL_REPORT_H */
