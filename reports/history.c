/* reports/history.c — drill history in sqlite and run-to-run comparison (see history.h). */
#include "reports/history.h"

#include "reports/report_int.h"
#include "sim/alloc.h"
#include "sim/json.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

struct fdl_history {
    sqlite3 *db;
    char err[512];
};

static const char *const k_status[] = {
    [FDL_HISTORY_OK] = "ok",
    [FDL_HISTORY_ERR_ARG] = "invalid argument",
    [FDL_HISTORY_ERR_NOMEM] = "out of memory",
    [FDL_HISTORY_ERR_DB] = "history database error",
    [FDL_HISTORY_ERR_SCHEMA] = "history written by a newer fleetdrill",
    [FDL_HISTORY_ERR_NOT_FOUND] = "no such run (or fewer than two runs)",
    [FDL_HISTORY_ERR_IO] = "write error",
};

const char *fdl_history_strerror(fdl_history_status st)
{
    if ((size_t)st >= sizeof k_status / sizeof k_status[0])
        return "unknown history status";
    return k_status[st];
}

const char *fdl_history_errmsg(const fdl_history *h)
{
    return h ? h->err : "";
}

/* ---------------------------------------------------------------------------------------- */
/* Schema. k_migrations[i] takes a file from user_version i to i + 1; a new version appends  */
/* an entry and never edits an old one.                                                        */

static const char k_schema_v1[] =
    "CREATE TABLE runs("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " started_unix INTEGER NOT NULL,"
    " saved_unix INTEGER NOT NULL,"
    " tool_version TEXT,"
    " ablation TEXT,"
    " scenarios INTEGER NOT NULL,"
    " steps INTEGER NOT NULL,"
    " steps_passed INTEGER NOT NULL,"
    " errors INTEGER NOT NULL,"
    " pass_rate REAL NOT NULL);"
    /* ablation is '' for none so that (name, ablation, occurrence) is a plain key. */
    "CREATE TABLE scenarios("
    " id INTEGER PRIMARY KEY,"
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL,"
    " name TEXT NOT NULL,"
    " ablation TEXT NOT NULL DEFAULT '',"
    " occurrence INTEGER NOT NULL,"
    " path TEXT, description TEXT, error TEXT,"
    " devices INTEGER NOT NULL, profile TEXT, provisioning TEXT,"
    " passed INTEGER NOT NULL CHECK(passed IN (0, 1)),"
    " UNIQUE(run_id, name, ablation, occurrence));"
    "CREATE TABLE steps("
    " id INTEGER PRIMARY KEY,"
    " scenario_id INTEGER NOT NULL REFERENCES scenarios(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL,"
    " attack TEXT NOT NULL,"
    " label TEXT NOT NULL,"
    " occurrence INTEGER NOT NULL,"
    " expected TEXT NOT NULL, expected_layer TEXT NOT NULL,"
    " actual TEXT NOT NULL, actual_layer TEXT NOT NULL,"
    " pass INTEGER NOT NULL CHECK(pass IN (0, 1)),"
    " detect_ms INTEGER, respond_ms INTEGER, duration_ms INTEGER," /* NULL = not applicable */
    " evidence TEXT,"
    " UNIQUE(scenario_id, attack, label, occurrence));"
    "CREATE TABLE matrix_attacks("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " seq INTEGER NOT NULL,"
    " attack TEXT NOT NULL,"
    " layers_alone INTEGER, independent_layers INTEGER," /* NULL = unknown */
    " PRIMARY KEY(run_id, attack)) WITHOUT ROWID;"
    "CREATE TABLE matrix_cells("
    " run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
    " attack TEXT NOT NULL,"
    " switch TEXT NOT NULL,"
    " switch_seq INTEGER NOT NULL,"
    " outcome TEXT NOT NULL, layer TEXT NOT NULL,"
    " PRIMARY KEY(run_id, attack, switch)) WITHOUT ROWID;";

static const char *const k_migrations[FDL_HISTORY_SCHEMA_VERSION] = {k_schema_v1};

/* ---------------------------------------------------------------------------------------- */
/* sqlite helpers.                                                                            */

static fdl_history_status fail(fdl_history *h, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->err, sizeof h->err, fmt, ap);
    va_end(ap);
    if (rc != SQLITE_OK && n >= 0 && (size_t)n < sizeof h->err)
        snprintf(h->err + n, sizeof h->err - (size_t)n, ": %s", sqlite3_errmsg(h->db));
    return rc == SQLITE_NOMEM ? FDL_HISTORY_ERR_NOMEM : FDL_HISTORY_ERR_DB;
}

static fdl_history_status exec(fdl_history *h, const char *sql)
{
    int rc = sqlite3_exec(h->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? FDL_HISTORY_OK : fail(h, rc, "%.60s", sql);
}

static fdl_history_status prepare(fdl_history *h, const char *sql, sqlite3_stmt **s)
{
    int rc = sqlite3_prepare_v2(h->db, sql, -1, s, NULL);
    return rc == SQLITE_OK ? FDL_HISTORY_OK : fail(h, rc, "prepare %.60s", sql);
}

/* Runs a statement that returns one integer (or NULL: *v = -1). */
static fdl_history_status query_int(fdl_history *h, const char *sql, int64_t arg, int64_t *v)
{
    sqlite3_stmt *s = NULL;
    fdl_history_status st = prepare(h, sql, &s);
    if (st != FDL_HISTORY_OK)
        return st;
    sqlite3_bind_int64(s, 1, arg);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_type(s, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 0);
        st = FDL_HISTORY_OK;
    } else {
        st = rc == SQLITE_DONE ? FDL_HISTORY_ERR_NOT_FOUND : fail(h, rc, "%.60s", sql);
    }
    sqlite3_finalize(s);
    return st;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static void bind_ms(sqlite3_stmt *s, int i, int64_t ms)
{
    if (ms < 0)
        sqlite3_bind_null(s, i);
    else
        sqlite3_bind_int64(s, i, ms);
}

/* Text of a column, "" for NULL (never NULL itself). */
static const char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

/* Text of a column, NULL for NULL or '' (the stored "none"). */
static const char *col_opt(sqlite3_stmt *s, int i)
{
    const char *t = col_text(s, i);
    return *t ? t : NULL;
}

static int64_t col_ms(sqlite3_stmt *s, int i)
{
    return sqlite3_column_type(s, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, i);
}

/* ---------------------------------------------------------------------------------------- */
/* Open.                                                                                      */

static fdl_history_status migrate(fdl_history *h)
{
    int64_t v = 0;
    fdl_history_status st = query_int(h, "PRAGMA user_version", 0, &v);
    if (st != FDL_HISTORY_OK)
        return st;
    if (v < 0 || v > FDL_HISTORY_SCHEMA_VERSION) {
        snprintf(h->err, sizeof h->err, "schema version %lld, this program knows up to %d", (long long)v,
                 FDL_HISTORY_SCHEMA_VERSION);
        return FDL_HISTORY_ERR_SCHEMA;
    }
    for (; v < FDL_HISTORY_SCHEMA_VERSION; v++) {
        char sql[48];
        if ((st = exec(h, k_migrations[v])) != FDL_HISTORY_OK)
            return st;
        snprintf(sql, sizeof sql, "PRAGMA user_version = %lld", (long long)v + 1);
        if ((st = exec(h, sql)) != FDL_HISTORY_OK)
            return st;
    }
    return FDL_HISTORY_OK;
}

fdl_history_status fdl_history_open(const char *path, fdl_history **out)
{
    fdl_history_status st = FDL_HISTORY_ERR_ARG;
    fdl_history *h = NULL;
    if (out)
        *out = NULL;
    if (!path || !out)
        goto cleanup;
    st = FDL_HISTORY_ERR_NOMEM;
    h = fdl_calloc(1, sizeof *h);
    if (!h)
        goto cleanup;
    int rc = sqlite3_open_v2(path, &h->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        st = h->db ? fail(h, rc, "open %s", path) : FDL_HISTORY_ERR_NOMEM;
        goto cleanup;
    }
    sqlite3_busy_timeout(h->db, FDL_HISTORY_BUSY_TIMEOUT_MS);
    /* WAL: a CI job reading the history never blocks a drill saving to it. */
    sqlite3_stmt *s = NULL;
    if ((st = prepare(h, "PRAGMA journal_mode = WAL", &s)) != FDL_HISTORY_OK)
        goto cleanup;
    rc = sqlite3_step(s);
    bool wal = rc == SQLITE_ROW && strcmp(col_text(s, 0), "wal") == 0;
    sqlite3_finalize(s);
    if (!wal) {
        st = fail(h, rc == SQLITE_ROW ? SQLITE_OK : rc, "journal_mode WAL refused for %s", path);
        goto cleanup;
    }
    /* FULL: a saved run survives a power cut, not only a killed process; one fsync per run. */
    if ((st = exec(h, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON")) != FDL_HISTORY_OK)
        goto cleanup;
    if ((st = exec(h, "BEGIN IMMEDIATE")) != FDL_HISTORY_OK)
        goto cleanup;
    st = migrate(h);
    if (st == FDL_HISTORY_OK)
        st = exec(h, "COMMIT");
    if (st != FDL_HISTORY_OK) {
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
        goto cleanup;
    }
    *out = h;
    h = NULL;
cleanup:
    fdl_history_free(h);
    return st;
}

void fdl_history_free(fdl_history *h)
{
    if (!h)
        return;
    sqlite3_close(h->db);
    fdl_free(h);
}

/* ---------------------------------------------------------------------------------------- */
/* Save.                                                                                      */

enum { INS_RUN, INS_SCENARIO, INS_STEP, INS_MATRIX_ATTACK, INS_MATRIX_CELL, INS_COUNT };

static const char *const k_insert[INS_COUNT] = {
    [INS_RUN] = "INSERT INTO runs(started_unix, saved_unix, tool_version, ablation, scenarios, steps, steps_passed,"
                " errors, pass_rate) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [INS_SCENARIO] = "INSERT INTO scenarios(run_id, seq, name, ablation, occurrence, path, description, error, devices,"
                     " profile, provisioning, passed) VALUES(?1, ?2, ?3, ?4,"
                     " (SELECT count(*) + 1 FROM scenarios WHERE run_id = ?1 AND name = ?3 AND ablation = ?4),"
                     " ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [INS_STEP] = "INSERT INTO steps(scenario_id, seq, attack, label, occurrence, expected, expected_layer, actual,"
                 " actual_layer, pass, detect_ms, respond_ms, duration_ms, evidence) VALUES(?1, ?2, ?3, ?4,"
                 " (SELECT count(*) + 1 FROM steps WHERE scenario_id = ?1 AND attack = ?3 AND label = ?4),"
                 " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    [INS_MATRIX_ATTACK] = "INSERT INTO matrix_attacks(run_id, seq, attack, layers_alone, independent_layers)"
                          " VALUES(?1, ?2, ?3, ?4, ?5)",
    [INS_MATRIX_CELL] = "INSERT INTO matrix_cells(run_id, attack, switch, switch_seq, outcome, layer)"
                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
};

/* Steps a bound insert, then resets it for the next row. */
static fdl_history_status run_insert(fdl_history *h, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? FDL_HISTORY_OK : fail(h, rc, "insert %s", what);
}

static fdl_history_status save_scenario(fdl_history *h, sqlite3_stmt **ins, int64_t run, size_t seq,
                                        const fdl_report_scenario *sc)
{
    sqlite3_stmt *s = ins[INS_SCENARIO];
    sqlite3_bind_int64(s, 1, run);
    sqlite3_bind_int64(s, 2, (int64_t)seq);
    bind_text(s, 3, sc->name);
    bind_text(s, 4, sc->ablation ? sc->ablation : "");
    bind_text(s, 5, sc->path);
    bind_text(s, 6, sc->description);
    bind_text(s, 7, sc->error);
    sqlite3_bind_int64(s, 8, (int64_t)sc->devices);
    bind_text(s, 9, sc->profile);
    bind_text(s, 10, sc->provisioning);
    sqlite3_bind_int(s, 11, fdl_rpt_scenario_passed(sc));
    fdl_history_status st = run_insert(h, s, "scenario");
    if (st != FDL_HISTORY_OK)
        return st;
    int64_t scenario_id = sqlite3_last_insert_rowid(h->db);
    s = ins[INS_STEP];
    for (size_t i = 0; i < sc->n_steps && st == FDL_HISTORY_OK; i++) {
        const fdl_report_step *stp = sc->steps[i];
        sqlite3_bind_int64(s, 1, scenario_id);
        sqlite3_bind_int64(s, 2, (int64_t)i);
        bind_text(s, 3, stp->attack);
        bind_text(s, 4, stp->label);
        bind_text(s, 5, fdl_outcome_name(stp->expected));
        bind_text(s, 6, fdl_layer_name(stp->expected_layer));
        bind_text(s, 7, fdl_outcome_name(stp->actual));
        bind_text(s, 8, fdl_layer_name(stp->actual_layer));
        sqlite3_bind_int(s, 9, stp->pass);
        bind_ms(s, 10, stp->detect_ms);
        bind_ms(s, 11, stp->respond_ms);
        bind_ms(s, 12, stp->duration_ms);
        bind_text(s, 13, stp->evidence);
        st = run_insert(h, s, "step");
    }
    return st;
}

static fdl_history_status save_matrix(fdl_history *h, sqlite3_stmt **ins, int64_t run, const fdl_report *r)
{
    fdl_history_status st = FDL_HISTORY_OK;
    for (size_t i = 0; i < r->n_rows && st == FDL_HISTORY_OK; i++) {
        const fdl_report_mrow *row = r->rows[i];
        sqlite3_stmt *s = ins[INS_MATRIX_ATTACK];
        sqlite3_bind_int64(s, 1, run);
        sqlite3_bind_int64(s, 2, (int64_t)i);
        bind_text(s, 3, row->attack);
        bind_ms(s, 4, row->layers_alone);
        bind_ms(s, 5, row->independent_layers);
        st = run_insert(h, s, "matrix attack");
        s = ins[INS_MATRIX_CELL];
        for (size_t c = 0; c < r->n_switches && st == FDL_HISTORY_OK; c++) {
            if (!row->cells[c].set)
                continue;
            sqlite3_bind_int64(s, 1, run);
            bind_text(s, 2, row->attack);
            bind_text(s, 3, r->switches[c]);
            sqlite3_bind_int64(s, 4, (int64_t)c);
            bind_text(s, 5, fdl_outcome_name(row->cells[c].outcome));
            bind_text(s, 6, fdl_layer_name(row->cells[c].layer));
            st = run_insert(h, s, "matrix cell");
        }
    }
    return st;
}

fdl_history_status fdl_history_save(fdl_history *h, const fdl_report *r, int64_t *run_id)
{
    if (!h || !r)
        return FDL_HISTORY_ERR_ARG;
    sqlite3_stmt *ins[INS_COUNT] = {0};
    bool in_tx = false;
    fdl_history_status st = FDL_HISTORY_OK;
    h->err[0] = '\0';
    for (int i = 0; i < INS_COUNT && st == FDL_HISTORY_OK; i++)
        st = prepare(h, k_insert[i], &ins[i]);
    if (st != FDL_HISTORY_OK)
        goto cleanup;
    /* IMMEDIATE: take the write lock now, so a concurrent saver waits here (busy
     * timeout) instead of failing half-way with SQLITE_BUSY on its first insert. */
    if ((st = exec(h, "BEGIN IMMEDIATE")) != FDL_HISTORY_OK)
        goto cleanup;
    in_tx = true;

    fdl_report_counts c;
    fdl_report_get_counts(r, &c);
    sqlite3_stmt *s = ins[INS_RUN];
    sqlite3_bind_int64(s, 1, r->started_unix);
    sqlite3_bind_int64(s, 2, (int64_t)time(NULL));
    bind_text(s, 3, r->tool_version);
    bind_text(s, 4, r->ablation);
    sqlite3_bind_int64(s, 5, (int64_t)c.scenarios);
    sqlite3_bind_int64(s, 6, (int64_t)c.steps);
    sqlite3_bind_int64(s, 7, (int64_t)c.steps_passed);
    sqlite3_bind_int64(s, 8, (int64_t)c.errors);
    sqlite3_bind_double(s, 9, c.pass_rate);
    if ((st = run_insert(h, s, "run")) != FDL_HISTORY_OK)
        goto cleanup;
    int64_t run = sqlite3_last_insert_rowid(h->db);
    for (size_t i = 0; i < r->n_scenarios && st == FDL_HISTORY_OK; i++)
        st = save_scenario(h, ins, run, i, r->scenarios[i]);
    if (st == FDL_HISTORY_OK)
        st = save_matrix(h, ins, run, r);
    if (st == FDL_HISTORY_OK)
        st = exec(h, "COMMIT");
    if (st == FDL_HISTORY_OK) {
        in_tx = false;
        if (run_id)
            *run_id = run;
    }
cleanup:
    if (in_tx)
        sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < INS_COUNT; i++)
        sqlite3_finalize(ins[i]);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Compare: one emitter writes each change as a text line or a JSON object.                   */

/* One side of a change: the scenario's error, or a step's judgement. */
typedef struct side {
    bool present;
    const char *error;                            /* scenario changes */
    const char *expected, *expected_layer;        /* step changes */
    const char *actual, *layer;
    bool pass;
    int64_t respond_ms;                           /* -1 = not applicable */
} side;

typedef struct emitter {
    FILE *out;
    fdl_json *j;        /* NULL: text */
    size_t regressions, fixed, changed, total;
} emitter;

/* "blocked by transport" from stored names (raw names if the row is not ours). */
static const char *describe(const char *outcome, const char *layer, char *buf, size_t cap)
{
    fdl_outcome o;
    fdl_layer l;
    if (fdl_outcome_parse(outcome, &o) == FDL_REPORT_OK && fdl_layer_parse(layer, &l) == FDL_REPORT_OK)
        return fdl_rpt_describe(o, l, buf, cap);
    snprintf(buf, cap, "%s by %s", outcome, layer);
    return buf;
}

static void json_side(fdl_json *j, const char *key, const side *sd, bool scenario)
{
    if (!sd->present) {
        fdl_json_null(j, key);
        return;
    }
    fdl_json_obj_begin(j, key);
    if (scenario) {
        fdl_json_str(j, "error", sd->error);
    } else {
        fdl_json_str(j, "expected", sd->expected);
        fdl_json_str(j, "expected_layer", sd->expected_layer);
        fdl_json_str(j, "outcome", sd->actual);
        fdl_json_str(j, "layer", sd->layer);
        fdl_json_bool(j, "pass", sd->pass);
        if (sd->respond_ms < 0)
            fdl_json_null(j, "respond_ms");
        else
            fdl_json_int(j, "respond_ms", sd->respond_ms);
    }
    fdl_json_obj_end(j);
}

/*
 * One change. kind: scenario-added, scenario-removed, scenario-error, scenario-fixed,
 * step-added, step-removed, regression, fixed, changed, respond-time. attack and label
 * are NULL for scenario changes.
 */
static void emit(emitter *em, const char *kind, const char *scenario, const char *ablation, const char *attack,
                 const char *label, const side *prev, const side *cur)
{
    bool is_scenario = attack == NULL;
    em->total++;
    /* Newly failing: a step that passed, a scenario that ran, or something new that fails. */
    if (strcmp(kind, "regression") == 0 || strcmp(kind, "scenario-error") == 0 ||
        (strcmp(kind, "scenario-added") == 0 && cur->error) || (strcmp(kind, "step-added") == 0 && !cur->pass))
        em->regressions++;
    else if (strcmp(kind, "fixed") == 0 || strcmp(kind, "scenario-fixed") == 0)
        em->fixed++;
    else
        em->changed++;
    if (em->j) {
        fdl_json_obj_begin(em->j, NULL);
        fdl_json_str(em->j, "kind", kind);
        fdl_json_str(em->j, "scenario", scenario);
        fdl_json_str(em->j, "ablation", ablation);
        fdl_json_str(em->j, "attack", attack);
        fdl_json_str(em->j, "label", label);
        json_side(em->j, "previous", prev, is_scenario);
        json_side(em->j, "current", cur, is_scenario);
        fdl_json_obj_end(em->j);
        return;
    }
    /* Text: every stored string is cleaned for the terminal first. */
    char name[256], abl[128], stepn[256], tmp[256], d1[64], d2[64];
    fdl_rpt_term_clean(scenario, 60, name, sizeof name, NULL);
    abl[0] = '\0';
    if (ablation) {
        fdl_rpt_term_clean(ablation, 24, tmp, sizeof tmp, NULL);
        snprintf(abl, sizeof abl, " [ablation: %s]", tmp);
    }
    char upper[24];
    size_t i = 0;
    for (; kind[i] && i + 1 < sizeof upper; i++)
        upper[i] = (char)(kind[i] >= 'a' && kind[i] <= 'z' ? kind[i] - 32 : kind[i]);
    upper[i] = '\0';
    fprintf(em->out, "%-16s %s%s", upper, name, abl);
    if (is_scenario) {
        const side *sd = cur->present ? cur : prev;
        if (sd->error) {
            fdl_rpt_term_clean(sd->error, 100, tmp, sizeof tmp, NULL);
            fprintf(em->out, ": error: %s", tmp);
        } else if (strcmp(kind, "scenario-fixed") == 0) {
            fputs(": runs without error again", em->out);
        }
        fputc('\n', em->out);
        return;
    }
    fdl_rpt_term_clean(label, 40, stepn, sizeof stepn, NULL);
    fprintf(em->out, " / %s", stepn);
    if (strcmp(label, attack) != 0) {
        fdl_rpt_term_clean(attack, 40, tmp, sizeof tmp, NULL);
        fprintf(em->out, " (%s)", tmp);
    }
    if (strcmp(kind, "respond-time") == 0) {
        fprintf(em->out, ": time to respond %s -> %s\n", fdl_rpt_fmt_ms(prev->respond_ms, d1, sizeof d1),
                fdl_rpt_fmt_ms(cur->respond_ms, d2, sizeof d2));
    } else if (!prev->present || !cur->present) {
        const side *sd = cur->present ? cur : prev;
        fprintf(em->out, ": %s (%s)\n", describe(sd->actual, sd->layer, d1, sizeof d1), sd->pass ? "pass" : "fail");
    } else {
        fprintf(em->out, ": was %s (%s), now %s (%s); expected %s\n", describe(prev->actual, prev->layer, d1, sizeof d1),
                prev->pass ? "pass" : "fail", describe(cur->actual, cur->layer, d2, sizeof d2),
                cur->pass ? "pass" : "fail", describe(cur->expected, cur->expected_layer, tmp, sizeof tmp));
    }
}

static const char k_compare_scenarios[] =
    "SELECT name, ablation, ce, pe, ic, ip FROM ("
    " SELECT c.name, c.ablation, c.error AS ce, p.error AS pe, 1 AS ic, p.id IS NOT NULL AS ip, c.seq AS ord"
    " FROM scenarios c LEFT JOIN scenarios p ON p.run_id = ?2 AND p.name = c.name AND p.ablation = c.ablation"
    "  AND p.occurrence = c.occurrence"
    " WHERE c.run_id = ?1"
    " UNION ALL"
    " SELECT p.name, p.ablation, NULL, p.error, 0, 1, 1000000000 + p.seq"
    " FROM scenarios p LEFT JOIN scenarios c ON c.run_id = ?1 AND c.name = p.name AND c.ablation = p.ablation"
    "  AND c.occurrence = p.occurrence"
    " WHERE p.run_id = ?2 AND c.id IS NULL"
    ") ORDER BY ord";

/* Steps of both runs, paired; only scenarios present in both runs (the others are
 * reported once, as a scenario). Columns: 0 name, 1 ablation, 2 attack, 3 label,
 * 4..10 current (present, expected, expected_layer, actual, actual_layer, pass,
 * respond_ms), 11..17 previous likewise. */
#define STEP_COLS "st.attack, st.label, st.occurrence AS oc, st.expected, st.expected_layer, st.actual," \
                  " st.actual_layer, st.pass, st.respond_ms"
static const char k_compare_steps[] =
    "WITH pairs AS ("
    " SELECT c.id AS cid, p.id AS pid, c.name, c.ablation, c.seq FROM scenarios c JOIN scenarios p"
    " ON p.run_id = ?2 AND p.name = c.name AND p.ablation = c.ablation AND p.occurrence = c.occurrence"
    " WHERE c.run_id = ?1),"
    " c AS (SELECT pairs.cid AS k, pairs.name, pairs.ablation, pairs.seq AS sseq, st.seq, " STEP_COLS
    "  FROM pairs JOIN steps st ON st.scenario_id = pairs.cid),"
    " p AS (SELECT pairs.cid AS k, pairs.name, pairs.ablation, pairs.seq AS sseq, st.seq, " STEP_COLS
    "  FROM pairs JOIN steps st ON st.scenario_id = pairs.pid)"
    "SELECT * FROM ("
    " SELECT c.name, c.ablation, c.attack, c.label,"
    "  1, c.expected, c.expected_layer, c.actual, c.actual_layer, c.pass, c.respond_ms,"
    "  p.k IS NOT NULL, p.expected, p.expected_layer, p.actual, p.actual_layer, p.pass, p.respond_ms,"
    "  c.sseq AS o1, c.seq AS o2"
    " FROM c LEFT JOIN p ON p.k = c.k AND p.attack = c.attack AND p.label = c.label AND p.oc = c.oc"
    " UNION ALL"
    " SELECT p.name, p.ablation, p.attack, p.label,"
    "  0, NULL, NULL, NULL, NULL, 0, NULL,"
    "  1, p.expected, p.expected_layer, p.actual, p.actual_layer, p.pass, p.respond_ms,"
    "  p.sseq, 1000000000 + p.seq"
    " FROM p LEFT JOIN c ON c.k = p.k AND c.attack = p.attack AND c.label = p.label AND c.oc = p.oc"
    " WHERE c.k IS NULL"
    ") ORDER BY o1, o2";

static side read_side(sqlite3_stmt *s, int col)
{
    side sd = {0};
    sd.present = sqlite3_column_int(s, col) != 0;
    sd.expected = col_text(s, col + 1);
    sd.expected_layer = col_text(s, col + 2);
    sd.actual = col_text(s, col + 3);
    sd.layer = col_text(s, col + 4);
    sd.pass = sqlite3_column_int(s, col + 5) != 0;
    sd.respond_ms = col_ms(s, col + 6);
    return sd;
}

static bool respond_changed(int64_t a, int64_t b)
{
    if ((a < 0) != (b < 0))
        return true;
    if (a < 0)
        return false;
    int64_t d = a > b ? a - b : b - a;
    return d >= FDL_HISTORY_RESPOND_ABS_MS && (double)d >= FDL_HISTORY_RESPOND_REL * (double)a;
}

static fdl_history_status compare_steps(fdl_history *h, emitter *em, int64_t cur, int64_t prev)
{
    sqlite3_stmt *s = NULL;
    fdl_history_status st = prepare(h, k_compare_steps, &s);
    if (st != FDL_HISTORY_OK)
        return st;
    sqlite3_bind_int64(s, 1, cur);
    sqlite3_bind_int64(s, 2, prev);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = col_text(s, 0), *abl = col_opt(s, 1), *attack = col_text(s, 2), *label = col_text(s, 3);
        side c = read_side(s, 4), p = read_side(s, 11);
        if (!p.present) {
            emit(em, "step-added", name, abl, attack, label, &p, &c);
            continue;
        }
        if (!c.present) {
            emit(em, "step-removed", name, abl, attack, label, &p, &c);
            continue;
        }
        if (p.pass && !c.pass)
            emit(em, "regression", name, abl, attack, label, &p, &c);
        else if (!p.pass && c.pass)
            emit(em, "fixed", name, abl, attack, label, &p, &c);
        else if (strcmp(p.actual, c.actual) != 0 || strcmp(p.layer, c.layer) != 0)
            emit(em, "changed", name, abl, attack, label, &p, &c);
        if (respond_changed(p.respond_ms, c.respond_ms))
            emit(em, "respond-time", name, abl, attack, label, &p, &c);
    }
    if (rc != SQLITE_DONE)
        st = fail(h, rc, "compare steps");
    sqlite3_finalize(s);
    return st;
}

static fdl_history_status compare_scenarios(fdl_history *h, emitter *em, int64_t cur, int64_t prev)
{
    sqlite3_stmt *s = NULL;
    fdl_history_status st = prepare(h, k_compare_scenarios, &s);
    if (st != FDL_HISTORY_OK)
        return st;
    sqlite3_bind_int64(s, 1, cur);
    sqlite3_bind_int64(s, 2, prev);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = col_text(s, 0), *abl = col_opt(s, 1);
        side c = {.present = sqlite3_column_int(s, 4) != 0, .error = col_opt(s, 2)};
        side p = {.present = sqlite3_column_int(s, 5) != 0, .error = col_opt(s, 3)};
        if (!p.present)
            emit(em, "scenario-added", name, abl, NULL, NULL, &p, &c);
        else if (!c.present)
            emit(em, "scenario-removed", name, abl, NULL, NULL, &p, &c);
        else if (c.error && !p.error)
            emit(em, "scenario-error", name, abl, NULL, NULL, &p, &c);
        else if (!c.error && p.error)
            emit(em, "scenario-fixed", name, abl, NULL, NULL, &p, &c);
    }
    if (rc != SQLITE_DONE)
        st = fail(h, rc, "compare scenarios");
    sqlite3_finalize(s);
    return st;
}

/* A run's header: JSON object under key, or one text line. */
static fdl_history_status run_header(fdl_history *h, emitter *em, int64_t id, const char *key)
{
    sqlite3_stmt *s = NULL;
    fdl_history_status st = prepare(h, "SELECT started_unix, tool_version, ablation, pass_rate FROM runs WHERE id = ?1",
                                    &s);
    if (st != FDL_HISTORY_OK)
        return st;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        st = rc == SQLITE_DONE ? FDL_HISTORY_ERR_NOT_FOUND : fail(h, rc, "read run");
        goto cleanup;
    }
    char when[32], ver[64];
    int64_t started = sqlite3_column_int64(s, 0);
    double rate = sqlite3_column_double(s, 3);
    if (em->j) {
        fdl_json_obj_begin(em->j, key);
        fdl_json_int(em->j, "id", id);
        fdl_json_int(em->j, "started_unix", started);
        fdl_json_str(em->j, "tool_version", col_opt(s, 1));
        fdl_json_str(em->j, "ablation", col_opt(s, 2));
        fdl_json_num(em->j, "pass_rate", rate);
        fdl_json_obj_end(em->j);
    } else {
        fdl_rpt_term_clean(col_text(s, 1), 20, ver, sizeof ver, NULL);
        fprintf(em->out, "%-8s run %lld  %s  fleetdrill %s  pass rate %.1f %%\n", key, (long long)id,
                fdl_rpt_iso_time(started, when, sizeof when), ver, rate * 100.0);
    }
cleanup:
    sqlite3_finalize(s);
    return st;
}

/* Writes the JSON document in j (or its error) to out. */
static fdl_history_status flush_json(fdl_json *j, FILE *out)
{
    size_t len = 0;
    const char *text = fdl_json_text(j, &len);
    if (!text)
        return fdl_json_error(j) == FDL_JSON_NO_MEMORY ? FDL_HISTORY_ERR_NOMEM : FDL_HISTORY_ERR_IO;
    return fwrite(text, 1, len, out) == len && fputc('\n', out) != EOF ? FDL_HISTORY_OK : FDL_HISTORY_ERR_IO;
}

fdl_history_status fdl_history_compare(fdl_history *h, int64_t previous_run_id, FILE *out, bool json,
                                       size_t *regressions)
{
    if (!h || !out || previous_run_id < 0)
        return FDL_HISTORY_ERR_ARG;
    emitter em = {.out = out};
    int64_t cur = -1, prev = previous_run_id;
    h->err[0] = '\0';
    /* One read transaction: both runs come from the same snapshot. */
    fdl_history_status st = exec(h, "BEGIN");
    if (st != FDL_HISTORY_OK)
        return st;
    if ((st = query_int(h, "SELECT max(id) FROM runs", 0, &cur)) != FDL_HISTORY_OK)
        goto cleanup;
    if (prev == 0 && cur >= 0 &&
        (st = query_int(h, "SELECT max(id) FROM runs WHERE id < ?1", cur, &prev)) != FDL_HISTORY_OK)
        goto cleanup;
    if (cur < 0 || prev < 0) {
        snprintf(h->err, sizeof h->err, "fewer than two runs in the history");
        st = FDL_HISTORY_ERR_NOT_FOUND;
        goto cleanup;
    }
    if (json) {
        em.j = fdl_json_new(FDL_REPORT_JSON_MAX);
        if (!em.j) {
            st = FDL_HISTORY_ERR_NOMEM;
            goto cleanup;
        }
        fdl_json_set_pretty(em.j, 1);
        fdl_json_obj_begin(em.j, NULL);
        fdl_json_str(em.j, "schema", "fleetdrill-compare/1");
    }
    if ((st = run_header(h, &em, cur, "current")) != FDL_HISTORY_OK ||
        (st = run_header(h, &em, prev, "previous")) != FDL_HISTORY_OK) {
        if (st == FDL_HISTORY_ERR_NOT_FOUND)
            snprintf(h->err, sizeof h->err, "no run %lld in the history", (long long)prev);
        goto cleanup;
    }
    if (em.j)
        fdl_json_arr_begin(em.j, "changes");
    if ((st = compare_scenarios(h, &em, cur, prev)) != FDL_HISTORY_OK ||
        (st = compare_steps(h, &em, cur, prev)) != FDL_HISTORY_OK)
        goto cleanup;
    if (em.j) {
        fdl_json_arr_end(em.j);
        fdl_json_uint(em.j, "regressions", em.regressions);
        fdl_json_uint(em.j, "fixed", em.fixed);
        fdl_json_uint(em.j, "other_changes", em.changed);
        fdl_json_obj_end(em.j);
        st = flush_json(em.j, out);
    } else {
        fprintf(out, "%zu regression%s, %zu fixed, %zu other change%s\n", em.regressions,
                em.regressions == 1 ? "" : "s", em.fixed, em.changed, em.changed == 1 ? "" : "s");
        st = ferror(out) ? FDL_HISTORY_ERR_IO : FDL_HISTORY_OK;
    }
    if (st == FDL_HISTORY_OK && regressions)
        *regressions = em.regressions;
cleanup:
    sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL); /* read-only: ending the snapshot cannot fail usefully */
    fdl_json_free(em.j);
    return st;
}

fdl_history_status fdl_history_list_runs(fdl_history *h, FILE *out, bool json)
{
    if (!h || !out)
        return FDL_HISTORY_ERR_ARG;
    sqlite3_stmt *s = NULL;
    fdl_json *j = NULL;
    h->err[0] = '\0';
    fdl_history_status st = prepare(h,
                                    "SELECT id, started_unix, tool_version, ablation, scenarios, steps, steps_passed,"
                                    " errors, pass_rate FROM runs ORDER BY id",
                                    &s);
    if (st != FDL_HISTORY_OK)
        return st;
    if (json) {
        j = fdl_json_new(FDL_REPORT_JSON_MAX);
        if (!j) {
            st = FDL_HISTORY_ERR_NOMEM;
            goto cleanup;
        }
        fdl_json_set_pretty(j, 1);
        fdl_json_obj_begin(j, NULL);
        fdl_json_str(j, "schema", "fleetdrill-runs/1");
        fdl_json_arr_begin(j, "runs");
    } else {
        fprintf(out, "%6s  %-20s  %-10s  %-14s  %9s  %9s  %6s  %9s\n", "RUN", "STARTED", "VERSION", "ABLATION",
                "SCENARIOS", "PASSED", "ERRORS", "PASS RATE");
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(s, 0), started = sqlite3_column_int64(s, 1);
        int64_t steps = sqlite3_column_int64(s, 5), passed = sqlite3_column_int64(s, 6);
        double rate = sqlite3_column_double(s, 8);
        if (j) {
            fdl_json_obj_begin(j, NULL);
            fdl_json_int(j, "id", id);
            fdl_json_int(j, "started_unix", started);
            fdl_json_str(j, "tool_version", col_opt(s, 2));
            fdl_json_str(j, "ablation", col_opt(s, 3));
            fdl_json_int(j, "scenarios", sqlite3_column_int64(s, 4));
            fdl_json_int(j, "steps", steps);
            fdl_json_int(j, "steps_passed", passed);
            fdl_json_int(j, "errors", sqlite3_column_int64(s, 7));
            fdl_json_num(j, "pass_rate", rate);
            fdl_json_obj_end(j);
        } else {
            char when[32], ver[64], abl[64], ratio[48];
            fdl_rpt_term_clean(col_text(s, 2), 10, ver, sizeof ver, NULL);
            fdl_rpt_term_clean(col_opt(s, 3) ? col_text(s, 3) : "none", 14, abl, sizeof abl, NULL);
            snprintf(ratio, sizeof ratio, "%lld/%lld", (long long)passed, (long long)steps);
            fprintf(out, "%6lld  %-20s  %-10s  %-14s  %9lld  %9s  %6lld  %8.1f%%\n", (long long)id,
                    fdl_rpt_iso_time(started, when, sizeof when), ver, abl, (long long)sqlite3_column_int64(s, 4),
                    ratio, (long long)sqlite3_column_int64(s, 7), rate * 100.0);
        }
    }
    if (rc != SQLITE_DONE) {
        st = fail(h, rc, "list runs");
        goto cleanup;
    }
    if (j) {
        fdl_json_arr_end(j);
        fdl_json_obj_end(j);
        st = flush_json(j, out);
    } else {
        st = ferror(out) ? FDL_HISTORY_ERR_IO : FDL_HISTORY_OK;
    }
cleanup:
    sqlite3_finalize(s);
    fdl_json_free(j);
    return st;
}
