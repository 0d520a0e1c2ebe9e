/*
 * reports/history.h — every drill's report kept in sqlite, so a drill can be compared
 * with the one before it ("what changed since last night?"). Format and comparison
 * rules: docs/reports.md.
 *
 * The database (WAL, schema versioned with PRAGMA user_version, migrated forward on
 * open) holds runs, their scenarios, their steps and their matrix cells. A run is saved
 * in one transaction, so a process killed at any moment leaves either the whole run or
 * none of it. Readers (compare, list) run inside one read transaction each: a snapshot,
 * even while another process saves.
 *
 * Identity across runs: a scenario is (name, ablation switch, occurrence), a step is
 * (its scenario, attack, label, occurrence); occurrence numbers repeats of the same
 * name in one run (1, 2, ...) so a scenario run twice is two scenarios.
 *
 * Memory: through sim/alloc.h (sqlite's own memory is sqlite's); the handle is freed
 * with fdl_history_free. One handle is used by one thread at a time.
 */
#ifndef FDL_HISTORY_H
#define FDL_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "reports/report.h"

#define FDL_HISTORY_SCHEMA_VERSION 1
/* How long a writer waits for another process's transaction, in ms: a save takes well under this. */
#define FDL_HISTORY_BUSY_TIMEOUT_MS 5000
/* A time-to-respond change is reported when it moves by at least this many ms AND ... */
#define FDL_HISTORY_RESPOND_ABS_MS 50
/* ... by at least this fraction of the previous value: below both it is scheduler jitter on a CI host. */
#define FDL_HISTORY_RESPOND_REL 0.25

typedef enum fdl_history_status {
    FDL_HISTORY_OK = 0,
    FDL_HISTORY_ERR_ARG,        /* NULL where a value is required */
    FDL_HISTORY_ERR_NOMEM,
    FDL_HISTORY_ERR_DB,         /* sqlite failed; fdl_history_errmsg says how */
    FDL_HISTORY_ERR_SCHEMA,     /* the file was written by a newer fleetdrill */
    FDL_HISTORY_ERR_NOT_FOUND,  /* no such run, or fewer than two runs to compare */
    FDL_HISTORY_ERR_IO,         /* writing to the output stream failed */
} fdl_history_status;

/* Static string; never NULL. */
const char *fdl_history_strerror(fdl_history_status st);

typedef struct fdl_history fdl_history;

/*
 * Opens (creating if needed) the history at path (borrowed) and migrates its schema.
 * *out gets the handle on FDL_HISTORY_OK and NULL otherwise. Returns OK, ERR_ARG,
 * ERR_NOMEM, ERR_DB (not a database, WAL refused, ...) or ERR_SCHEMA.
 */
fdl_history_status fdl_history_open(const char *path, fdl_history **out);
/* Closes the database and frees h; NULL is a no-op. */
void fdl_history_free(fdl_history *h);
/* The last error's detail (sqlite's message and what was being done); borrowed, "" when none. */
const char *fdl_history_errmsg(const fdl_history *h);

/*
 * Saves report r (borrowed) as a new run in one transaction; *run_id (optional) gets
 * its id. Evidence is kept; timing series are not (they live in the JSON report).
 * Returns OK, ERR_ARG, ERR_NOMEM or ERR_DB (nothing of the run is stored then).
 */
fdl_history_status fdl_history_save(fdl_history *h, const fdl_report *r, int64_t *run_id);

/*
 * Compares the latest run with previous_run_id, or with the run before the latest
 * when previous_run_id is 0, and writes what changed to out (borrowed): scenarios and
 * steps added or removed, new scenario errors and newly failing steps (regressions),
 * newly passing steps, a changed outcome or catching layer, and time-to-respond
 * changes beyond FDL_HISTORY_RESPOND_ABS_MS and FDL_HISTORY_RESPOND_REL. json: a JSON
 * document (docs/reports.md) instead of text lines. *regressions (optional) gets the
 * number of regressions, for a CI exit code.
 * Returns OK, ERR_ARG, ERR_NOT_FOUND (fewer than two runs, or no such run), ERR_NOMEM,
 * ERR_DB or ERR_IO.
 */
fdl_history_status fdl_history_compare(fdl_history *h, int64_t previous_run_id, FILE *out, bool json,
                                       size_t *regressions);

/* Lists every run, oldest first: id, start, version, ablation, totals. json as above. */
fdl_history_status fdl_history_list_runs(fdl_history *h, FILE *out, bool json);

#endif /* FDL_HISTORY_H */
