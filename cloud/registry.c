/* cloud/registry.c — the device registry on sqlite3 (see registry.h and docs/registry.md). */
#include "cloud/registry.h"

#include "sim/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/sha256.h>
#include <sqlite3.h>

/* ---------------------------------------------------------------------------------------- */
/* Schema. k_migrations[i] takes a file from user_version i to i + 1; a new version appends  */
/* one entry and never edits an old one, so every file walks the same path.                   */

static const char k_schema_v1[] =
    "CREATE TABLE cas("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " subject TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL UNIQUE CHECK(length(fingerprint) = 64),"
    " pem TEXT NOT NULL,"
    " role TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK(status IN ('REGISTERED', 'REVOKED')),"
    " reason TEXT,"
    " created_ms INTEGER NOT NULL,"
    " revoked_ms INTEGER);"
    "CREATE INDEX cas_subject ON cas(subject);"
    "CREATE TABLE policies("
    " name TEXT PRIMARY KEY,"
    " text TEXT NOT NULL,"
    " per_device INTEGER NOT NULL CHECK(per_device IN (0, 1)),"
    " updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE devices("
    " id TEXT PRIMARY KEY,"
    " created_ms INTEGER NOT NULL,"
    " sold INTEGER NOT NULL DEFAULT 0 CHECK(sold IN (0, 1)),"
    " recalled INTEGER NOT NULL DEFAULT 0 CHECK(recalled IN (0, 1)),"
    " firmware_version TEXT,"
    " policy TEXT REFERENCES policies(name)) WITHOUT ROWID;"
    "CREATE TABLE certificates("
    " fingerprint TEXT PRIMARY KEY CHECK(length(fingerprint) = 64),"
    " serial TEXT NOT NULL,"
    " device_id TEXT NOT NULL REFERENCES devices(id),"
    " ca_id INTEGER REFERENCES cas(id),"
    " not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL,"
    " status TEXT NOT NULL CHECK(status IN ('PENDING', 'ACTIVE', 'REVOKED')),"
    " reason TEXT,"
    " created_ms INTEGER NOT NULL,"
    " activated_ms INTEGER,"
    " revoked_ms INTEGER) WITHOUT ROWID;"
    "CREATE INDEX certificates_device ON certificates(device_id, created_ms);"
    "CREATE INDEX certificates_ca ON certificates(ca_id, status);"
    "CREATE TABLE events("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at_ms INTEGER NOT NULL,"
    " actor TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK(kind IN ('certificate', 'ca', 'device', 'policy')),"
    " object TEXT NOT NULL,"
    " old_state TEXT,"
    " new_state TEXT NOT NULL,"
    " reason TEXT);"
    "CREATE INDEX events_object ON events(kind, object, id);"
    /* The C code enforces the state machines; these triggers repeat the rules in the
     * file itself, so neither a bug nor a hand edit with the sqlite3 shell can
     * resurrect a revoked certificate or rewrite the audit log. */
    "CREATE TRIGGER events_no_update BEFORE UPDATE ON events"
    " BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;"
    "CREATE TRIGGER events_no_delete BEFORE DELETE ON events"
    " BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;"
    "CREATE TRIGGER certificates_transition BEFORE UPDATE OF status ON certificates"
    " WHEN NOT (OLD.status = NEW.status"
    "        OR (OLD.status = 'PENDING' AND NEW.status IN ('ACTIVE', 'REVOKED'))"
    "        OR (OLD.status = 'ACTIVE' AND NEW.status = 'REVOKED'))"
    " BEGIN SELECT RAISE(ABORT, 'certificate transition refused'); END;"
    "CREATE TRIGGER cas_transition BEFORE UPDATE OF status ON cas"
    " WHEN OLD.status = 'REVOKED' AND NEW.status <> 'REVOKED'"
    " BEGIN SELECT RAISE(ABORT, 'CA revocation is terminal'); END;";

/* v2: service identities (cloud actors) beside devices, certificate subjects for the
 * PII audit, what the broker saw connect (sessions) and per-device refusal counters. */
static const char k_schema_v2[] =
    "ALTER TABLE devices ADD COLUMN kind TEXT NOT NULL DEFAULT 'device'"
    " CHECK(kind IN ('device', 'service'));"
    "ALTER TABLE certificates ADD COLUMN subject TEXT;"
    "CREATE TABLE sessions("
    " id INTEGER PRIMARY KEY,"
    " fingerprint TEXT NOT NULL,"
    " device_id TEXT NOT NULL,"
    " client_id TEXT NOT NULL,"
    " address TEXT NOT NULL,"
    " connected_ms INTEGER NOT NULL,"
    " disconnected_ms INTEGER);"
    "CREATE INDEX sessions_open ON sessions(fingerprint) WHERE disconnected_ms IS NULL;"
    "CREATE INDEX sessions_device ON sessions(device_id, connected_ms);"
    "CREATE TABLE device_counters("
    " device_id TEXT PRIMARY KEY,"
    " denied_publish INTEGER NOT NULL DEFAULT 0,"
    " denied_subscribe INTEGER NOT NULL DEFAULT 0,"
    " denied_receive INTEGER NOT NULL DEFAULT 0,"
    " bad_payload INTEGER NOT NULL DEFAULT 0,"
    " refused_connect INTEGER NOT NULL DEFAULT 0,"
    " updated_ms INTEGER NOT NULL) WITHOUT ROWID;";

/* v3: OTA (docs/ota.md). A job and its rollout state; one row per targeted device
 * with the last step it reported (a device the rollout never reached stays
 * 'pending': the halt gate's "rest of the fleet untouched" is that row); every
 * signed job document as published, so that an audit can show what was sent;
 * every report as received (ota_reports: also those about jobs this registry
 * never had, and those that came after a device's final word). */
static const char k_schema_v3[] =
    "CREATE TABLE ota_jobs("
    " id TEXT PRIMARY KEY,"
    " created_ms INTEGER NOT NULL,"
    " tier TEXT NOT NULL,"
    " version TEXT NOT NULL,"
    " counter INTEGER NOT NULL,"
    " artifact TEXT NOT NULL,"
    " sha256 TEXT NOT NULL CHECK(length(sha256) = 64),"
    " size INTEGER NOT NULL,"
    " stages TEXT NOT NULL,"
    " max_failure REAL NOT NULL,"
    " devices INTEGER NOT NULL,"
    " state TEXT NOT NULL CHECK(state IN ('HELD', 'RUNNING', 'HALTED', 'COMPLETED')),"
    " stage INTEGER NOT NULL DEFAULT 0,"
    " reason TEXT,"
    " updated_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE ota_status("
    " job TEXT NOT NULL REFERENCES ota_jobs(id),"
    " device_id TEXT NOT NULL,"
    " stage INTEGER NOT NULL,"
    " step TEXT NOT NULL,"
    " seq INTEGER NOT NULL DEFAULT 0,"
    " detail TEXT,"
    " updated_ms INTEGER NOT NULL,"
    " PRIMARY KEY(job, device_id)) WITHOUT ROWID;"
    "CREATE INDEX ota_status_device ON ota_status(device_id, updated_ms);"
    "CREATE TABLE ota_documents("
    " seq INTEGER PRIMARY KEY,"
    " job TEXT NOT NULL REFERENCES ota_jobs(id),"
    " stage INTEGER NOT NULL,"
    " targets INTEGER NOT NULL,"
    " doc BLOB NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " published_ms INTEGER);"
    "CREATE INDEX ota_documents_job ON ota_documents(job, seq);"
    "CREATE TABLE ota_reports("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at_ms INTEGER NOT NULL,"
    " device_id TEXT NOT NULL,"
    " job TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " step TEXT NOT NULL,"
    " detail TEXT);"
    "CREATE INDEX ota_reports_device ON ota_reports(device_id, id);";

static const char *const k_migrations[FDL_REG_SCHEMA_VERSION] = {k_schema_v1, k_schema_v2, k_schema_v3};

/* ---------------------------------------------------------------------------------------- */
/* Statements, prepared on first use and kept for the life of the handle.                     */

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_LOOKUP,
    ST_DEVICE_CERTS,
    ST_CERT_GET,
    ST_CERT_INSERT,
    ST_CERT_SET,
    ST_DEVICE_ENSURE,
    ST_DEVICE_GET,
    ST_DEVICE_SET,
    ST_DEVICE_REVOKE_EVENTS,
    ST_DEVICE_REVOKE,
    ST_EVENT_INSERT,
    ST_EVENTS_ALL,
    ST_EVENTS_OBJ,
    ST_POLICY_GET,
    ST_POLICY_PUT,
    ST_CA_BY_FP,
    ST_CA_BY_ID,
    ST_CA_BY_SUBJECT,
    ST_CA_INSERT,
    ST_CA_REVOKE,
    ST_CA_LIVE_COUNT,
    ST_CA_REVOKE_EVENTS,
    ST_CA_REVOKE_CERTS,
    ST_CRL,
    ST_SESSION_OPEN,
    ST_SESSION_CLOSE,
    ST_SESSION_CLOSE_ALL,
    ST_COUNTERS_ADD,
    ST_COUNTERS_GET,
    ST_CA_INFO,
    ST_OTA_JOB_INSERT,
    ST_OTA_JOB_SET,
    ST_OTA_JOB_GET,
    ST_OTA_TARGET_INSERT,
    ST_OTA_DOC_INSERT,
    ST_OTA_DOC_GET,
    ST_OTA_NOTIFIED,
    ST_OTA_STATUS_SET,
    ST_OTA_STATUS_GET,
    ST_OTA_STATUS_LIST,
    ST_OTA_STATUS_LATEST,
    ST_OTA_REPORT_INSERT,
    ST_OTA_REPORTS,
    ST_COUNT
};

#define CERT_COLS "c.status, c.device_id, COALESCE(d.policy, ''), c.serial, COALESCE(c.ca_id, 0), " \
                  "c.not_before, c.not_after"
#define EVENT_COLS "id, at_ms, actor, kind, object, COALESCE(old_state, ''), new_state, COALESCE(reason, '')"

static const char *const k_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_LOOKUP] = "SELECT " CERT_COLS " FROM certificates c LEFT JOIN devices d ON d.id = c.device_id"
                  " WHERE c.fingerprint = ?1",
    [ST_DEVICE_CERTS] = "SELECT " CERT_COLS ", c.fingerprint FROM certificates c"
                        " LEFT JOIN devices d ON d.id = c.device_id"
                        " WHERE c.device_id = ?1 ORDER BY c.created_ms, c.fingerprint",
    [ST_CERT_GET] = "SELECT serial, device_id, COALESCE(ca_id, 0), not_before, not_after, status"
                    " FROM certificates WHERE fingerprint = ?1",
    [ST_CERT_INSERT] = "INSERT INTO certificates(fingerprint, serial, device_id, ca_id, not_before, not_after,"
                       " status, created_ms, subject) VALUES(?1, ?2, ?3, NULLIF(?4, 0), ?5, ?6, 'PENDING', ?7, ?8)",
    [ST_CERT_SET] = "UPDATE certificates SET status = ?2, reason = ?3,"
                    " activated_ms = CASE WHEN ?2 = 'ACTIVE' THEN ?4 ELSE activated_ms END,"
                    " revoked_ms = CASE WHEN ?2 = 'REVOKED' THEN ?4 ELSE revoked_ms END"
                    " WHERE fingerprint = ?1",
    [ST_DEVICE_ENSURE] = "INSERT INTO devices(id, created_ms) VALUES(?1, ?2) ON CONFLICT(id) DO NOTHING",
    [ST_DEVICE_GET] = "SELECT sold, recalled, COALESCE(firmware_version, ''), COALESCE(policy, ''), created_ms,"
                      " kind = 'service' FROM devices WHERE id = ?1",
    [ST_DEVICE_SET] = "UPDATE devices SET sold = ?2, recalled = ?3, firmware_version = NULLIF(?4, ''),"
                      " policy = NULLIF(?5, ''), kind = CASE WHEN ?6 THEN 'service' ELSE 'device' END WHERE id = ?1",
    /* Bulk revocations are two set-based statements, the events first (they read the
     * old states), then the update: no row is visited while the table changes. */
    [ST_DEVICE_REVOKE_EVENTS] = "INSERT INTO events(at_ms, actor, kind, object, old_state, new_state, reason)"
                                " SELECT ?2, ?3, 'certificate', fingerprint, status, 'REVOKED', ?4"
                                " FROM certificates WHERE device_id = ?1 AND status <> 'REVOKED'"
                                " ORDER BY fingerprint",
    [ST_DEVICE_REVOKE] = "UPDATE certificates SET status = 'REVOKED', reason = ?3, revoked_ms = ?2"
                         " WHERE device_id = ?1 AND status <> 'REVOKED'",
    [ST_EVENT_INSERT] = "INSERT INTO events(at_ms, actor, kind, object, old_state, new_state, reason)"
                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_EVENTS_ALL] = "SELECT " EVENT_COLS " FROM events WHERE id > ?1 ORDER BY id",
    [ST_EVENTS_OBJ] = "SELECT " EVENT_COLS " FROM events WHERE object = ?2 AND id > ?1 ORDER BY id",
    [ST_POLICY_GET] = "SELECT text, per_device FROM policies WHERE name = ?1",
    [ST_POLICY_PUT] = "INSERT INTO policies(name, text, per_device, updated_ms) VALUES(?1, ?2, ?3, ?4)"
                      " ON CONFLICT(name) DO UPDATE SET text = excluded.text, per_device = excluded.per_device,"
                      " updated_ms = excluded.updated_ms",
    [ST_CA_BY_FP] = "SELECT id, status FROM cas WHERE fingerprint = ?1",
    [ST_CA_BY_ID] = "SELECT status FROM cas WHERE id = ?1",
    [ST_CA_BY_SUBJECT] = "SELECT id, status FROM cas WHERE subject = ?1 LIMIT 2",
    [ST_CA_INSERT] = "INSERT INTO cas(subject, fingerprint, pem, role, status, created_ms)"
                     " VALUES(?1, ?2, ?3, ?4, 'REGISTERED', ?5)",
    [ST_CA_REVOKE] = "UPDATE cas SET status = 'REVOKED', reason = ?2, revoked_ms = ?3 WHERE id = ?1",
    [ST_CA_LIVE_COUNT] = "SELECT count(*) FROM certificates WHERE ca_id = ?1 AND status IN ('PENDING', 'ACTIVE')",
    [ST_CA_REVOKE_EVENTS] = "INSERT INTO events(at_ms, actor, kind, object, old_state, new_state, reason)"
                            " SELECT ?2, ?3, 'certificate', fingerprint, status, 'REVOKED', ?4"
                            " FROM certificates WHERE ca_id = ?1 AND status IN ('PENDING', 'ACTIVE')"
                            " ORDER BY fingerprint",
    [ST_CA_REVOKE_CERTS] = "UPDATE certificates SET status = 'REVOKED', reason = ?3, revoked_ms = ?2"
                           " WHERE ca_id = ?1 AND status IN ('PENDING', 'ACTIVE')",
    [ST_CRL] = "SELECT serial, revoked_ms FROM certificates WHERE ca_id = ?1 AND status = 'REVOKED'"
               " ORDER BY revoked_ms, fingerprint",
    [ST_SESSION_OPEN] = "INSERT INTO sessions(id, fingerprint, device_id, client_id, address, connected_ms)"
                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(id) DO NOTHING",
    [ST_SESSION_CLOSE] = "UPDATE sessions SET disconnected_ms = ?2 WHERE id = ?1 AND disconnected_ms IS NULL",
    [ST_SESSION_CLOSE_ALL] = "UPDATE sessions SET disconnected_ms = ?1 WHERE disconnected_ms IS NULL",
    [ST_COUNTERS_ADD] = "INSERT INTO device_counters(device_id, denied_publish, denied_subscribe, denied_receive,"
                        " bad_payload, refused_connect, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                        " ON CONFLICT(device_id) DO UPDATE SET"
                        " denied_publish = denied_publish + excluded.denied_publish,"
                        " denied_subscribe = denied_subscribe + excluded.denied_subscribe,"
                        " denied_receive = denied_receive + excluded.denied_receive,"
                        " bad_payload = bad_payload + excluded.bad_payload,"
                        " refused_connect = refused_connect + excluded.refused_connect,"
                        " updated_ms = excluded.updated_ms",
    [ST_CA_INFO] = "SELECT role, status FROM cas WHERE id = ?1",
    [ST_OTA_JOB_INSERT] = "INSERT INTO ota_jobs(id, created_ms, tier, version, counter, artifact, sha256, size, stages,"
                          " max_failure, devices, state, stage, reason, updated_ms)"
                          " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, NULL, ?2)",
    [ST_OTA_JOB_SET] = "UPDATE ota_jobs SET state = ?2, stage = ?3, reason = ?4, updated_ms = ?5 WHERE id = ?1",
    [ST_OTA_JOB_GET] = "SELECT created_ms, tier, version, counter, artifact, sha256, size, stages, max_failure, devices,"
                       " state, stage, COALESCE(reason, ''), updated_ms FROM ota_jobs WHERE id = ?1",
    [ST_OTA_TARGET_INSERT] = "INSERT INTO ota_status(job, device_id, stage, step, updated_ms)"
                             " VALUES(?1, ?2, ?3, 'pending', ?4)",
    [ST_OTA_DOC_INSERT] = "INSERT INTO ota_documents(seq, job, stage, targets, doc, created_ms, published_ms)"
                          " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_OTA_DOC_GET] = "SELECT job, stage, doc, published_ms FROM ota_documents WHERE seq = ?1",
    /* A device that already reported a step keeps it: a document published again
     * (a later stage of the same job) does not erase what the device said. */
    [ST_OTA_NOTIFIED] = "UPDATE ota_status SET seq = ?3, step = CASE WHEN step = 'pending' THEN 'notified' ELSE step END,"
                        " updated_ms = ?4 WHERE job = ?1 AND device_id = ?2",
    [ST_OTA_STATUS_SET] = "INSERT INTO ota_status(job, device_id, stage, step, seq, detail, updated_ms)"
                          " VALUES(?1, ?2, 0, ?3, ?4, NULLIF(?5, ''), ?6)"
                          " ON CONFLICT(job, device_id) DO UPDATE SET step = excluded.step,"
                          " seq = CASE WHEN excluded.seq > 0 THEN excluded.seq ELSE seq END,"
                          " detail = excluded.detail, updated_ms = excluded.updated_ms",
    [ST_OTA_STATUS_GET] = "SELECT stage, step, seq, COALESCE(detail, ''), updated_ms FROM ota_status"
                          " WHERE job = ?1 AND device_id = ?2",
    [ST_OTA_STATUS_LIST] = "SELECT device_id, stage, step, seq, COALESCE(detail, ''), updated_ms FROM ota_status"
                           " WHERE job = ?1 ORDER BY stage, device_id",
    [ST_OTA_STATUS_LATEST] = "SELECT job, stage, step, seq, COALESCE(detail, ''), updated_ms FROM ota_status"
                             " WHERE device_id = ?1 AND step <> 'pending' ORDER BY updated_ms DESC, job DESC LIMIT 1",
    [ST_OTA_REPORT_INSERT] = "INSERT INTO ota_reports(at_ms, device_id, job, seq, step, detail)"
                             " VALUES(?1, ?2, ?3, ?4, ?5, NULLIF(?6, ''))",
    [ST_OTA_REPORTS] = "SELECT at_ms, job, seq, step, COALESCE(detail, '') FROM ota_reports"
                       " WHERE device_id = ?1 AND at_ms >= ?2 ORDER BY id",
    [ST_COUNTERS_GET] = "SELECT denied_publish, denied_subscribe, denied_receive, bad_payload, refused_connect,"
                        " updated_ms FROM device_counters WHERE device_id = ?1",
};

struct fdl_registry {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    char actor[FDL_REG_ID_MAX + 1];
    char err[256];
};

/* ---------------------------------------------------------------------------------------- */
/* Small helpers.                                                                             */

static const char *const k_status_str[] = {
    [FDL_REG_OK] = "ok",
    [FDL_REG_ERR_ARG] = "invalid argument",
    [FDL_REG_ERR_NOMEM] = "out of memory",
    [FDL_REG_ERR_DB] = "database error",
    [FDL_REG_ERR_BUSY] = "database busy (another writer held the lock)",
    [FDL_REG_ERR_NOT_FOUND] = "not found",
    [FDL_REG_ERR_TRANSITION] = "state transition refused",
    [FDL_REG_ERR_CONFLICT] = "conflicting record",
    [FDL_REG_ERR_CA_REVOKED] = "issuing CA is revoked",
    [FDL_REG_ERR_SCHEMA] = "database schema is newer than this program",
    [FDL_REG_ERR_CORRUPT] = "registry is inconsistent",
    [FDL_REG_ERR_CRYPTO] = "certificate hashing or encoding failed",
    [FDL_REG_ERR_SMALL] = "output buffer too small",
};

const char *fdl_reg_strerror(fdl_reg_status st)
{
    if ((unsigned)st >= sizeof k_status_str / sizeof k_status_str[0] || !k_status_str[st])
        return "unknown registry status";
    return k_status_str[st];
}

static const char *const k_state_str[] = {NULL, "PENDING", "ACTIVE", "REVOKED"};

const char *fdl_reg_cert_state_name(fdl_reg_cert_state s)
{
    if (s < FDL_REG_CERT_PENDING || s > FDL_REG_CERT_REVOKED)
        return "?";
    return k_state_str[s];
}

static fdl_reg_cert_state state_parse(const unsigned char *s)
{
    for (int i = FDL_REG_CERT_PENDING; s && i <= FDL_REG_CERT_REVOKED; i++)
        if (strcmp((const char *)s, k_state_str[i]) == 0)
            return (fdl_reg_cert_state)i;
    return (fdl_reg_cert_state)0;
}

const char *fdl_registry_last_error(const fdl_registry *reg)
{
    return reg ? reg->err : "";
}

__attribute__((format(printf, 2, 3))) static void set_err(fdl_registry *reg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reg->err, sizeof reg->err, fmt, ap);
    va_end(ap);
}

/* Maps a sqlite result code to a status and keeps sqlite's message for last_error. */
static fdl_reg_status db_fail(fdl_registry *reg, int rc, const char *what)
{
    set_err(reg, "%s: %s (%d)", what, sqlite3_errmsg(reg->db), rc);
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return FDL_REG_ERR_BUSY;
    case SQLITE_NOMEM:
        return FDL_REG_ERR_NOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return FDL_REG_ERR_CORRUPT;
    default:
        return FDL_REG_ERR_DB;
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

/* 1..FDL_REG_ID_MAX bytes of [A-Za-z0-9._-]. */
static int valid_id(const char *s)
{
    if (!s)
        return 0;
    size_t n = strnlen(s, FDL_REG_ID_MAX + 1);
    if (n == 0 || n > FDL_REG_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_id_char(s[i]))
            return 0;
    return 1;
}

/* NULL, or 0..max bytes of printable ASCII (no newline: one event, one line). */
static int valid_text(const char *s, size_t max)
{
    if (!s)
        return 1;
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies 1..max hex digits (exactly max if exact) into out, lowercased. */
static int norm_hex(const char *in, size_t max, int exact, char *out)
{
    static const char digits[] = "0123456789abcdef";
    if (!in)
        return 0;
    size_t n = strnlen(in, max + 1);
    if (n == 0 || n > max || (exact && n != max))
        return 0;
    for (size_t i = 0; i < n; i++) {
        int v = hexval(in[i]);
        if (v < 0)
            return 0;
        out[i] = digits[v];
    }
    out[n] = '\0';
    return 1;
}

static int norm_fp(const char *in, char out[FDL_REG_FP_HEX_LEN + 1])
{
    return norm_hex(in, FDL_REG_FP_HEX_LEN, 1, out);
}

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Copies a text column into a fixed buffer; a value longer than we ever write
 * means someone edited the file by hand. */
static int col_copy(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    if (!t || n >= cap) {
        if (cap)
            out[0] = '\0';
        return t ? 0 : 1;
    }
    memcpy(out, t, n + 1);
    return 1;
}

static fdl_reg_status stmt_get(fdl_registry *reg, int id, sqlite3_stmt **out)
{
    if (!reg->st[id]) {
        int rc = sqlite3_prepare_v3(reg->db, k_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &reg->st[id], NULL);
        if (rc != SQLITE_OK) {
            reg->st[id] = NULL;
            return db_fail(reg, rc, "prepare");
        }
    }
    *out = reg->st[id];
    return FDL_REG_OK;
}

/* Runs a statement that returns no rows and resets it. */
static fdl_reg_status step_done(fdl_registry *reg, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    fdl_reg_status st = rc == SQLITE_DONE ? FDL_REG_OK : db_fail(reg, rc, what);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

static void bind_text(sqlite3_stmt *s, int i, const char *t)
{
    if (t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static fdl_reg_status event_add(fdl_registry *reg, int64_t at, const char *kind, const char *object,
                                const char *old_state, const char *new_state, const char *reason)
{
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = stmt_get(reg, ST_EVENT_INSERT, &s);
    if (st != FDL_REG_OK)
        return st;
    sqlite3_bind_int64(s, 1, at);
    bind_text(s, 2, reg->actor);
    bind_text(s, 3, kind);
    bind_text(s, 4, object);
    bind_text(s, 5, old_state);
    bind_text(s, 6, new_state);
    bind_text(s, 7, reason && reason[0] ? reason : NULL);
    return step_done(reg, s, "append event");
}

/* ---------------------------------------------------------------------------------------- */
/* Transactions. Every write is one BEGIN IMMEDIATE ... COMMIT around a body; the body       */
/* returning anything but OK rolls everything back, its events included.                     */

typedef fdl_reg_status (*tx_body)(fdl_registry *reg, void *arg);

static fdl_reg_status run_tx(fdl_registry *reg, tx_body body, void *arg)
{
    sqlite3_stmt *s = NULL;
    int in_tx = 0;
    fdl_reg_status st = stmt_get(reg, ST_BEGIN, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    /* IMMEDIATE takes the write lock now, so the reads inside the body and the writes
     * that depend on them see one state (no upgrade deadlock between two writers). */
    st = step_done(reg, s, "BEGIN IMMEDIATE");
    if (st != FDL_REG_OK)
        goto cleanup;
    in_tx = 1;
    st = body(reg, arg);
    if (st != FDL_REG_OK)
        goto cleanup;
    st = stmt_get(reg, ST_COMMIT, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    st = step_done(reg, s, "COMMIT");
    if (st == FDL_REG_OK)
        in_tx = 0;
cleanup:
    if (in_tx) {
        char keep[sizeof reg->err];
        memcpy(keep, reg->err, sizeof keep); /* the body's reason, not the rollback's */
        if (stmt_get(reg, ST_ROLLBACK, &s) == FDL_REG_OK)
            (void)step_done(reg, s, "ROLLBACK");
        if (!sqlite3_get_autocommit(reg->db))
            sqlite3_exec(reg->db, "ROLLBACK", NULL, NULL, NULL);
        memcpy(reg->err, keep, sizeof keep);
    }
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Open and close.                                                                            */

static fdl_reg_status exec_sql(fdl_registry *reg, const char *sql, const char *what)
{
    int rc = sqlite3_exec(reg->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? FDL_REG_OK : db_fail(reg, rc, what);
}

/* Runs a one-value PRAGMA and copies its text result. */
static fdl_reg_status pragma_text(fdl_registry *reg, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = FDL_REG_ERR_DB;
    int rc = sqlite3_prepare_v2(reg->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK) {
        st = db_fail(reg, rc, sql);
        goto cleanup;
    }
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        st = db_fail(reg, rc, sql);
        goto cleanup;
    }
    /* Truncated if longer: callers compare against short words ("wal", "ok"). */
    snprintf(out, cap, "%s", sqlite3_column_text(s, 0) ? (const char *)sqlite3_column_text(s, 0) : "");
    st = FDL_REG_OK;
cleanup:
    sqlite3_finalize(s);
    return st;
}

static fdl_reg_status migrate(fdl_registry *reg, void *arg)
{
    (void)arg;
    char buf[32];
    fdl_reg_status st = pragma_text(reg, "PRAGMA user_version", buf, sizeof buf);
    if (st != FDL_REG_OK)
        return st;
    long v = strtol(buf, NULL, 10);
    if (v < 0 || v > FDL_REG_SCHEMA_VERSION) {
        set_err(reg, "schema version %ld, this program knows up to %d", v, FDL_REG_SCHEMA_VERSION);
        return FDL_REG_ERR_SCHEMA;
    }
    for (; v < FDL_REG_SCHEMA_VERSION; v++) {
        st = exec_sql(reg, k_migrations[v], "migrate schema");
        if (st != FDL_REG_OK)
            return st;
        snprintf(buf, sizeof buf, "PRAGMA user_version = %ld", v + 1);
        st = exec_sql(reg, buf, "set user_version");
        if (st != FDL_REG_OK)
            return st;
    }
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_open(const char *path, const fdl_registry_opts *opts, fdl_registry **out)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    fdl_registry *reg = NULL;
    const char *actor = opts && opts->actor ? opts->actor : "fleetdrill";
    unsigned busy = opts && opts->busy_timeout_ms ? opts->busy_timeout_ms : FDL_REG_BUSY_TIMEOUT_MS;
    char mode[16];

    if (out)
        *out = NULL;
    if (!path || !out || !valid_id(actor) || busy > 3600u * 1000u)
        goto cleanup;
    st = FDL_REG_ERR_NOMEM;
    reg = fdl_calloc(1, sizeof *reg);
    if (!reg)
        goto cleanup;
    snprintf(reg->actor, sizeof reg->actor, "%s", actor);

    /* NOMUTEX: a handle is used by one thread at a time (the contract), so sqlite's
     * per-connection mutex would only cost time on the hot path. */
    int rc = sqlite3_open_v2(path, &reg->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        st = reg->db ? db_fail(reg, rc, "open") : FDL_REG_ERR_NOMEM;
        goto cleanup;
    }
    sqlite3_busy_timeout(reg->db, (int)busy);
    /* WAL: the broker's lookups never wait for the CLI's writes and vice versa. */
    st = pragma_text(reg, "PRAGMA journal_mode = WAL", mode, sizeof mode);
    if (st != FDL_REG_OK)
        goto cleanup;
    if (strcmp(mode, "wal") != 0) {
        set_err(reg, "journal_mode is '%s', WAL refused (in-memory or read-only file?)", mode);
        st = FDL_REG_ERR_DB;
        goto cleanup;
    }
    /* FULL: every COMMIT fsyncs the WAL. NORMAL would survive a process crash too, but
     * could lose the last commits on a power cut — a revocation the CLI reported as
     * done must not come back after a reboot. */
    st = exec_sql(reg, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", "pragmas");
    if (st != FDL_REG_OK)
        goto cleanup;
    st = run_tx(reg, migrate, NULL);
    if (st != FDL_REG_OK)
        goto cleanup;
    *out = reg;
    reg = NULL;
cleanup:
    fdl_registry_free(reg);
    return st;
}

void fdl_registry_free(fdl_registry *reg)
{
    if (!reg)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(reg->st[i]);
    sqlite3_close(reg->db);
    fdl_free(reg);
}

/* ---------------------------------------------------------------------------------------- */
/* Fingerprints.                                                                              */

fdl_reg_status fdl_registry_fingerprint(const unsigned char *der, size_t len, char out[FDL_REG_FP_HEX_LEN + 1])
{
    unsigned char h[32];
    if (!der || !len || !out)
        return FDL_REG_ERR_ARG;
    if (mbedtls_sha256(der, len, h, 0) != 0)
        return FDL_REG_ERR_CRYPTO;
    to_hex(h, sizeof h, out);
    return FDL_REG_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Lookups.                                                                                   */

/* Fills info from a row of CERT_COLS starting at column 0. */
static fdl_reg_status row_info(fdl_registry *reg, sqlite3_stmt *s, fdl_reg_cert_info *info)
{
    info->state = state_parse(sqlite3_column_text(s, 0));
    if (!info->state || !col_copy(s, 1, info->device_id, sizeof info->device_id) ||
        !col_copy(s, 2, info->policy, sizeof info->policy) || !col_copy(s, 3, info->serial, sizeof info->serial)) {
        set_err(reg, "certificate row does not fit the schema");
        return FDL_REG_ERR_CORRUPT;
    }
    info->ca_id = sqlite3_column_int64(s, 4);
    info->not_before = sqlite3_column_int64(s, 5);
    info->not_after = sqlite3_column_int64(s, 6);
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_cert_status(fdl_registry *reg, const char *fingerprint, fdl_reg_cert_info *out)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    sqlite3_stmt *s = NULL;
    char fp[FDL_REG_FP_HEX_LEN + 1];

    if (!reg || !out || !norm_fp(fingerprint, fp))
        goto cleanup;
    st = stmt_get(reg, ST_LOOKUP, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    sqlite3_bind_text(s, 1, fp, FDL_REG_FP_HEX_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        st = row_info(reg, s, out);
    else if (rc == SQLITE_DONE)
        st = FDL_REG_ERR_NOT_FOUND;
    else
        st = db_fail(reg, rc, "lookup");
cleanup:
    /* Reset at once: a statement left on a row would pin an old WAL snapshot, and
     * this handle would stop seeing revocations committed by the CLI. */
    if (s)
        sqlite3_reset(s);
    return st;
}

fdl_reg_status fdl_registry_device_certs(fdl_registry *reg, const char *device_id, fdl_reg_cert_cb cb, void *ctx)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    sqlite3_stmt *s = NULL;
    fdl_reg_cert_info info;
    char fp[FDL_REG_FP_HEX_LEN + 1];
    int rc;

    if (!reg || !cb || !valid_id(device_id))
        goto cleanup;
    st = stmt_get(reg, ST_DEVICE_CERTS, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    bind_text(s, 1, device_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        st = row_info(reg, s, &info);
        if (st != FDL_REG_OK)
            goto cleanup;
        if (!col_copy(s, 7, fp, sizeof fp)) {
            st = FDL_REG_ERR_CORRUPT;
            goto cleanup;
        }
        if (cb(ctx, fp, &info) != 0)
            break;
    }
    st = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? FDL_REG_OK : db_fail(reg, rc, "device certificates");
cleanup:
    if (s)
        sqlite3_reset(s);
    return st;
}

static int note_active(void *ctx, const char *fp, const fdl_reg_cert_info *info)
{
    (void)fp;
    int *active = ctx;
    *active = info->state == FDL_REG_CERT_ACTIVE;
    return *active;
}

fdl_reg_status fdl_registry_device_has_active(fdl_registry *reg, const char *device_id, int *active)
{
    *active = 0;
    return fdl_registry_device_certs(reg, device_id, note_active, active);
}

/* ---------------------------------------------------------------------------------------- */
/* Devices (the parts used inside transactions first).                                        */

/* A device's attributes as one line, the old and new state of its events. */
static void device_summary(const fdl_reg_device *d, char *out, size_t cap)
{
    snprintf(out, cap, "sold=%d recalled=%d firmware=%s policy=%s%s", d->sold, d->recalled,
             d->firmware_version[0] ? d->firmware_version : "-", d->policy[0] ? d->policy : "-",
             d->service ? " kind=service" : "");
}

static fdl_reg_status device_read(fdl_registry *reg, const char *id, fdl_reg_device *out)
{
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = stmt_get(reg, ST_DEVICE_GET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->sold = sqlite3_column_int(s, 0) != 0;
        out->recalled = sqlite3_column_int(s, 1) != 0;
        out->created_at_ms = sqlite3_column_int64(s, 4);
        out->service = sqlite3_column_int(s, 5) != 0;
        if (!col_copy(s, 2, out->firmware_version, sizeof out->firmware_version) ||
            !col_copy(s, 3, out->policy, sizeof out->policy)) {
            set_err(reg, "device row does not fit the schema");
            st = FDL_REG_ERR_CORRUPT;
        }
    } else if (rc == SQLITE_DONE) {
        set_err(reg, "device %s: not found", id);
        st = FDL_REG_ERR_NOT_FOUND;
    } else {
        st = db_fail(reg, rc, "read device");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

/* Creates the device if it is new, with its event. */
static fdl_reg_status device_ensure(fdl_registry *reg, const char *id, int64_t at)
{
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = stmt_get(reg, ST_DEVICE_ENSURE, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, id);
    sqlite3_bind_int64(s, 2, at);
    st = step_done(reg, s, "create device");
    if (st != FDL_REG_OK || sqlite3_changes(reg->db) == 0)
        return st;
    fdl_reg_device d = {0};
    char now[160];
    device_summary(&d, now, sizeof now);
    return event_add(reg, at, "device", id, NULL, now, "created");
}

/* Writes new attributes and, if anything changed, the event old -> new. */
static fdl_reg_status device_write(fdl_registry *reg, const char *id, const fdl_reg_device *old,
                                   const fdl_reg_device *nw, int64_t at, const char *reason)
{
    char a[160], b[160];
    sqlite3_stmt *s = NULL;
    device_summary(old, a, sizeof a);
    device_summary(nw, b, sizeof b);
    if (strcmp(a, b) == 0)
        return FDL_REG_OK;
    fdl_reg_status st = stmt_get(reg, ST_DEVICE_SET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, id);
    sqlite3_bind_int(s, 2, nw->sold);
    sqlite3_bind_int(s, 3, nw->recalled);
    bind_text(s, 4, nw->firmware_version);
    bind_text(s, 5, nw->policy);
    sqlite3_bind_int(s, 6, nw->service != 0);
    st = step_done(reg, s, "update device");
    if (st != FDL_REG_OK)
        return st;
    return event_add(reg, at, "device", id, a, b, reason);
}

/* Attaches policy ("" = none: the built-in default) to device id, with its event;
 * a named policy must exist (FDL_REG_ERR_NOT_FOUND, nothing written). Inside a
 * transaction. */
static fdl_reg_status attach_policy(fdl_registry *reg, const char *id, const char *policy, int64_t at,
                                    const char *reason)
{
    fdl_reg_device old, nw;
    if (policy[0]) {
        char text[2];
        fdl_reg_status st = fdl_registry_policy_get(reg, policy, text, sizeof text, NULL);
        if (st != FDL_REG_OK && st != FDL_REG_ERR_SMALL)
            return st;
    }
    fdl_reg_status st = device_read(reg, id, &old);
    if (st != FDL_REG_OK)
        return st;
    nw = old;
    snprintf(nw.policy, sizeof nw.policy, "%s", policy);
    return device_write(reg, id, &old, &nw, at, reason);
}

/* ---------------------------------------------------------------------------------------- */
/* Certificates.                                                                              */

/* Existing content of a certificate, for idempotence checks and transitions. */
typedef struct cert_row {
    char serial[FDL_REG_SERIAL_HEX_MAX + 1];
    char device_id[FDL_REG_ID_MAX + 1];
    int64_t ca_id, not_before, not_after;
    fdl_reg_cert_state state;
} cert_row;

static fdl_reg_status cert_read(fdl_registry *reg, const char *fp, cert_row *row)
{
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = stmt_get(reg, ST_CERT_GET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, fp);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        row->ca_id = sqlite3_column_int64(s, 2);
        row->not_before = sqlite3_column_int64(s, 3);
        row->not_after = sqlite3_column_int64(s, 4);
        row->state = state_parse(sqlite3_column_text(s, 5));
        if (!row->state || !col_copy(s, 0, row->serial, sizeof row->serial) ||
            !col_copy(s, 1, row->device_id, sizeof row->device_id)) {
            set_err(reg, "certificate row does not fit the schema");
            st = FDL_REG_ERR_CORRUPT;
        }
    } else if (rc == SQLITE_DONE) {
        set_err(reg, "certificate %.16s...: not found", fp);
        st = FDL_REG_ERR_NOT_FOUND;
    } else {
        st = db_fail(reg, rc, "read certificate");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

/* CA state by id: OK if registered, CA_REVOKED, NOT_FOUND. */
static fdl_reg_status ca_usable(fdl_registry *reg, int64_t ca_id)
{
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = stmt_get(reg, ST_CA_BY_ID, &s);
    if (st != FDL_REG_OK)
        return st;
    sqlite3_bind_int64(s, 1, ca_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(s, 0);
        st = t && strcmp((const char *)t, "REGISTERED") == 0 ? FDL_REG_OK : FDL_REG_ERR_CA_REVOKED;
        if (st != FDL_REG_OK)
            set_err(reg, "CA %lld is revoked", (long long)ca_id);
    } else if (rc == SQLITE_DONE) {
        set_err(reg, "CA %lld: not registered", (long long)ca_id);
        st = FDL_REG_ERR_NOT_FOUND;
    } else {
        st = db_fail(reg, rc, "read CA");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

/* Validates and records one certificate inside a transaction. */
static fdl_reg_status record_one(fdl_registry *reg, const fdl_reg_cert_rec *rec, int64_t at, int *is_new,
                                 fdl_reg_cert_state *state)
{
    char fp[FDL_REG_FP_HEX_LEN + 1], serial[FDL_REG_SERIAL_HEX_MAX + 1];
    cert_row row;
    sqlite3_stmt *s = NULL;

    *is_new = 0;
    if (!rec || !norm_fp(rec->fingerprint, fp) || !norm_hex(rec->serial, FDL_REG_SERIAL_HEX_MAX, 0, serial) ||
        !valid_id(rec->device_id) || rec->ca_id < 0 || rec->not_before > rec->not_after) {
        set_err(reg, "certificate record: malformed field");
        return FDL_REG_ERR_ARG;
    }
    fdl_reg_status st = cert_read(reg, fp, &row);
    if (st == FDL_REG_OK) {
        if (strcmp(row.serial, serial) != 0 || strcmp(row.device_id, rec->device_id) != 0 ||
            row.ca_id != rec->ca_id || row.not_before != rec->not_before || row.not_after != rec->not_after) {
            set_err(reg, "certificate %.16s...: known with different content", fp);
            return FDL_REG_ERR_CONFLICT;
        }
        if (state)
            *state = row.state;
        return FDL_REG_OK;
    }
    if (st != FDL_REG_ERR_NOT_FOUND)
        return st;
    if (rec->ca_id) {
        st = ca_usable(reg, rec->ca_id);
        if (st != FDL_REG_OK)
            return st;
    }
    st = device_ensure(reg, rec->device_id, at);
    if (st != FDL_REG_OK)
        return st;
    st = stmt_get(reg, ST_CERT_INSERT, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, fp);
    bind_text(s, 2, serial);
    bind_text(s, 3, rec->device_id);
    sqlite3_bind_int64(s, 4, rec->ca_id);
    sqlite3_bind_int64(s, 5, rec->not_before);
    sqlite3_bind_int64(s, 6, rec->not_after);
    sqlite3_bind_int64(s, 7, at);
    bind_text(s, 8, rec->subject);
    st = step_done(reg, s, "insert certificate");
    if (st != FDL_REG_OK)
        return st;
    st = event_add(reg, at, "certificate", fp, NULL, "PENDING", "first seen");
    if (st != FDL_REG_OK)
        return st;
    *is_new = 1;
    if (state)
        *state = FDL_REG_CERT_PENDING;
    return FDL_REG_OK;
}

typedef struct record_arg {
    const fdl_reg_cert_rec *recs;
    size_t n;
    size_t n_new;
    size_t failed;
    fdl_reg_cert_state *state;
} record_arg;

static fdl_reg_status record_body(fdl_registry *reg, void *arg)
{
    record_arg *a = arg;
    int64_t at = now_ms();
    for (size_t i = 0; i < a->n; i++) {
        int is_new = 0;
        fdl_reg_status st = record_one(reg, &a->recs[i], at, &is_new, a->n == 1 ? a->state : NULL);
        if (st != FDL_REG_OK) {
            a->failed = i;
            return st;
        }
        a->n_new += (size_t)is_new;
    }
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_cert_record(fdl_registry *reg, const fdl_reg_cert_rec *rec, fdl_reg_cert_state *state)
{
    if (!reg || !rec)
        return FDL_REG_ERR_ARG;
    record_arg a = {.recs = rec, .n = 1, .state = state};
    return run_tx(reg, record_body, &a);
}

fdl_reg_status fdl_registry_cert_record_batch(fdl_registry *reg, const fdl_reg_cert_rec *recs, size_t n,
                                              size_t *n_new, size_t *failed_index)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    record_arg a = {.recs = recs, .n = n};
    if (n_new)
        *n_new = 0;
    if (!reg || !recs || n == 0 || n > FDL_REG_BATCH_MAX)
        goto cleanup;
    st = run_tx(reg, record_body, &a);
    if (st == FDL_REG_OK && n_new)
        *n_new = a.n_new;
    if (st != FDL_REG_OK && failed_index)
        *failed_index = a.failed;
cleanup:
    return st;
}

/* The issuer of crt among registered CAs, by subject (inside the transaction). */
static fdl_reg_status ca_by_issuer(fdl_registry *reg, const mbedtls_x509_crt *crt, int64_t *ca_id)
{
    char subject[FDL_REG_SUBJECT_MAX + 1];
    sqlite3_stmt *s = NULL;
    int rows = 0, rc;
    if (mbedtls_x509_dn_gets(subject, sizeof subject, &crt->issuer) < 0) {
        set_err(reg, "issuer name longer than %d bytes", FDL_REG_SUBJECT_MAX);
        return FDL_REG_ERR_ARG;
    }
    fdl_reg_status st = stmt_get(reg, ST_CA_BY_SUBJECT, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, subject);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        *ca_id = sqlite3_column_int64(s, 0);
        rows++;
    }
    if (rc != SQLITE_DONE)
        st = db_fail(reg, rc, "find issuer");
    else if (rows == 0) {
        set_err(reg, "no registered CA named '%s'", subject);
        st = FDL_REG_ERR_NOT_FOUND;
    } else if (rows > 1) {
        set_err(reg, "several CAs named '%s': pass ca_id", subject);
        st = FDL_REG_ERR_CONFLICT;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

static int64_t x509_time_unix(const mbedtls_x509_time *t)
{
    struct tm tm = {.tm_year = t->year - 1900, .tm_mon = t->mon - 1, .tm_mday = t->day,
                    .tm_hour = t->hour, .tm_min = t->min, .tm_sec = t->sec};
    return (int64_t)timegm(&tm);
}

typedef struct x509_arg {
    const mbedtls_x509_crt *crt;
    fdl_reg_cert_rec rec;
    fdl_reg_cert_state *state;
} x509_arg;

static fdl_reg_status x509_body(fdl_registry *reg, void *arg)
{
    x509_arg *a = arg;
    int is_new = 0;
    if (a->rec.ca_id == 0) {
        fdl_reg_status st = ca_by_issuer(reg, a->crt, &a->rec.ca_id);
        if (st != FDL_REG_OK)
            return st;
    }
    return record_one(reg, &a->rec, now_ms(), &is_new, a->state);
}

/* Text fields of a certificate record, owned by the caller of x509_rec. */
typedef struct x509_bufs {
    char fp[FDL_REG_FP_HEX_LEN + 1], serial[FDL_REG_SERIAL_HEX_MAX + 1], cn[FDL_REG_ID_MAX + 1];
    char subject[FDL_REG_SUBJECT_MAX];
} x509_bufs;

/* The record of a parsed certificate: exactly one CN that is a device id, the
 * serial without sign padding, fingerprint, subject, validity. */
static fdl_reg_status x509_rec(fdl_registry *reg, const mbedtls_x509_crt *crt, int64_t ca_id, x509_bufs *b,
                               fdl_reg_cert_rec *rec)
{
    const mbedtls_x509_name *name;
    int n_cn = 0;
    if (!crt || !crt->raw.p || ca_id < 0)
        return FDL_REG_ERR_ARG;
    /* Exactly one CN: a second one would make "which device is this" ambiguous. */
    for (name = &crt->subject; name; name = name->next) {
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &name->oid) != 0)
            continue;
        if (++n_cn > 1 || name->val.len > FDL_REG_ID_MAX) {
            set_err(reg, "certificate subject: more than one CN, or a CN over %d bytes", FDL_REG_ID_MAX);
            return FDL_REG_ERR_ARG;
        }
        memcpy(b->cn, name->val.p, name->val.len);
        b->cn[name->val.len] = '\0';
    }
    if (n_cn != 1 || !valid_id(b->cn)) {
        set_err(reg, "certificate subject: no CN, or a CN that is not a device id");
        return FDL_REG_ERR_ARG;
    }
    /* The serial without the sign-padding zero bytes of its DER INTEGER. */
    size_t off = 0, slen = crt->serial.len;
    while (off + 1 < slen && crt->serial.p[off] == 0)
        off++;
    if (slen == 0 || slen - off > FDL_REG_SERIAL_HEX_MAX / 2) {
        set_err(reg, "certificate serial: empty or over %d bytes", FDL_REG_SERIAL_HEX_MAX / 2);
        return FDL_REG_ERR_ARG;
    }
    to_hex(crt->serial.p + off, slen - off, b->serial);
    fdl_reg_status st = fdl_registry_fingerprint(crt->raw.p, crt->raw.len, b->fp);
    if (st != FDL_REG_OK)
        return st;
    if (mbedtls_x509_dn_gets(b->subject, sizeof b->subject, &crt->subject) < 0)
        b->subject[0] = '\0';
    *rec = (fdl_reg_cert_rec){.fingerprint = b->fp, .serial = b->serial, .device_id = b->cn, .ca_id = ca_id,
                              .subject = b->subject[0] ? b->subject : NULL,
                              .not_before = x509_time_unix(&crt->valid_from),
                              .not_after = x509_time_unix(&crt->valid_to)};
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_cert_record_x509(fdl_registry *reg, const mbedtls_x509_crt *crt, int64_t ca_id,
                                             char fp_out[FDL_REG_FP_HEX_LEN + 1], fdl_reg_cert_state *state)
{
    if (!reg)
        return FDL_REG_ERR_ARG;
    x509_bufs b;
    x509_arg a = {.crt = crt, .state = state};
    fdl_reg_status st = x509_rec(reg, crt, ca_id, &b, &a.rec);
    if (st == FDL_REG_OK)
        st = run_tx(reg, x509_body, &a);
    if (st == FDL_REG_OK && fp_out)
        memcpy(fp_out, b.fp, sizeof b.fp);
    return st;
}

/* One certificate transition: from must be in allowed (bit per state). */
typedef struct transition_arg {
    char fp[FDL_REG_FP_HEX_LEN + 1];
    unsigned allowed;
    fdl_reg_cert_state to;
    const char *reason;
    const char *policy; /* activate only */
} transition_arg;

#define STATE_BIT(s) (1u << (s))

static fdl_reg_status transition_body(fdl_registry *reg, void *arg)
{
    transition_arg *a = arg;
    cert_row row;
    sqlite3_stmt *s = NULL;
    int64_t at = now_ms();

    fdl_reg_status st = cert_read(reg, a->fp, &row);
    if (st != FDL_REG_OK)
        return st;
    if (!(a->allowed & STATE_BIT(row.state))) {
        set_err(reg, "certificate %.16s...: %s -> %s refused", a->fp, fdl_reg_cert_state_name(row.state),
                fdl_reg_cert_state_name(a->to));
        return FDL_REG_ERR_TRANSITION;
    }
    if (a->policy) {
        /* Policy first, so a typo leaves the certificate PENDING. */
        st = attach_policy(reg, row.device_id, a->policy, at, "policy on activation");
        if (st != FDL_REG_OK)
            return st;
    }
    st = stmt_get(reg, ST_CERT_SET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, a->fp);
    bind_text(s, 2, fdl_reg_cert_state_name(a->to));
    bind_text(s, 3, a->reason);
    sqlite3_bind_int64(s, 4, at);
    st = step_done(reg, s, "update certificate");
    if (st != FDL_REG_OK)
        return st;
    return event_add(reg, at, "certificate", a->fp, fdl_reg_cert_state_name(row.state),
                     fdl_reg_cert_state_name(a->to), a->reason);
}

static fdl_reg_status transition(fdl_registry *reg, const char *fingerprint, unsigned allowed,
                                 fdl_reg_cert_state to, const char *reason, const char *policy)
{
    transition_arg a = {.allowed = allowed, .to = to, .reason = reason, .policy = policy};
    if (!reg)
        return FDL_REG_ERR_ARG;
    if (!norm_fp(fingerprint, a.fp) || !valid_text(reason, FDL_REG_REASON_MAX) || (policy && !valid_id(policy))) {
        set_err(reg, "transition: malformed fingerprint, reason or policy name");
        return FDL_REG_ERR_ARG;
    }
    return run_tx(reg, transition_body, &a);
}

fdl_reg_status fdl_registry_cert_activate(fdl_registry *reg, const char *fingerprint, const char *policy,
                                          const char *reason)
{
    if (!policy || !valid_id(policy))   /* activation always names a registered policy */
        return FDL_REG_ERR_ARG;
    return transition(reg, fingerprint, STATE_BIT(FDL_REG_CERT_PENDING), FDL_REG_CERT_ACTIVE, reason, policy);
}

fdl_reg_status fdl_registry_cert_reject(fdl_registry *reg, const char *fingerprint, const char *reason)
{
    return transition(reg, fingerprint, STATE_BIT(FDL_REG_CERT_PENDING), FDL_REG_CERT_REVOKED, reason, NULL);
}

fdl_reg_status fdl_registry_cert_revoke(fdl_registry *reg, const char *fingerprint, const char *reason)
{
    return transition(reg, fingerprint, STATE_BIT(FDL_REG_CERT_ACTIVE), FDL_REG_CERT_REVOKED, reason, NULL);
}

/* Runs the events-then-update pair of a bulk revocation keyed by ?1. */
static fdl_reg_status bulk_revoke(fdl_registry *reg, int ev_id, int upd_id, const char *key_text, int64_t key_int,
                                  const char *reason, int64_t at, size_t *n)
{
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = stmt_get(reg, ev_id, &s);
    if (st != FDL_REG_OK)
        return st;
    if (key_text)
        bind_text(s, 1, key_text);
    else
        sqlite3_bind_int64(s, 1, key_int);
    sqlite3_bind_int64(s, 2, at);
    bind_text(s, 3, reg->actor);
    bind_text(s, 4, reason && reason[0] ? reason : NULL);
    st = step_done(reg, s, "append revocation events");
    if (st != FDL_REG_OK)
        return st;
    size_t n_events = (size_t)sqlite3_changes(reg->db);
    st = stmt_get(reg, upd_id, &s);
    if (st != FDL_REG_OK)
        return st;
    if (key_text)
        bind_text(s, 1, key_text);
    else
        sqlite3_bind_int64(s, 1, key_int);
    sqlite3_bind_int64(s, 2, at);
    bind_text(s, 3, reason);
    st = step_done(reg, s, "revoke certificates");
    if (st != FDL_REG_OK)
        return st;
    *n = (size_t)sqlite3_changes(reg->db);
    if (*n != n_events) { /* impossible under the write lock; refuse rather than log a lie */
        set_err(reg, "revoked %zu certificates but logged %zu events", *n, n_events);
        return FDL_REG_ERR_CORRUPT;
    }
    return FDL_REG_OK;
}

typedef struct device_revoke_arg {
    const char *device_id;
    const char *reason;
    size_t n;
} device_revoke_arg;

static fdl_reg_status device_revoke_body(fdl_registry *reg, void *arg)
{
    device_revoke_arg *a = arg;
    fdl_reg_device d;
    fdl_reg_status st = device_read(reg, a->device_id, &d);
    if (st != FDL_REG_OK)
        return st;
    return bulk_revoke(reg, ST_DEVICE_REVOKE_EVENTS, ST_DEVICE_REVOKE, a->device_id, 0, a->reason, now_ms(), &a->n);
}

fdl_reg_status fdl_registry_device_revoke(fdl_registry *reg, const char *device_id, const char *reason, size_t *n)
{
    device_revoke_arg a = {.device_id = device_id, .reason = reason};
    if (n)
        *n = 0;
    if (!reg || !valid_id(device_id) || !valid_text(reason, FDL_REG_REASON_MAX))
        return FDL_REG_ERR_ARG;
    fdl_reg_status st = run_tx(reg, device_revoke_body, &a);
    if (st == FDL_REG_OK && n)
        *n = a.n;
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* CAs.                                                                                       */

typedef struct ca_arg {
    const char *subject, *fp, *pem, *role, *reason;
    int64_t id;
    size_t n;
} ca_arg;

static fdl_reg_status ca_register_body(fdl_registry *reg, void *arg)
{
    ca_arg *a = arg;
    sqlite3_stmt *s = NULL;
    int64_t at = now_ms();
    char obj[24];
    fdl_reg_status st = stmt_get(reg, ST_CA_BY_FP, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, a->fp);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(s, 1);
        a->id = sqlite3_column_int64(s, 0);
        st = t && strcmp((const char *)t, "REGISTERED") == 0 ? FDL_REG_OK : FDL_REG_ERR_CA_REVOKED;
        if (st != FDL_REG_OK)
            set_err(reg, "CA %lld is revoked and cannot be registered again", (long long)a->id);
    } else if (rc != SQLITE_DONE) {
        st = db_fail(reg, rc, "find CA");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE)
        return st; /* known (OK or revoked) or failed */
    st = stmt_get(reg, ST_CA_INSERT, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, a->subject);
    bind_text(s, 2, a->fp);
    bind_text(s, 3, a->pem);
    bind_text(s, 4, a->role);
    sqlite3_bind_int64(s, 5, at);
    st = step_done(reg, s, "insert CA");
    if (st != FDL_REG_OK)
        return st;
    a->id = sqlite3_last_insert_rowid(reg->db);
    snprintf(obj, sizeof obj, "%lld", (long long)a->id);
    return event_add(reg, at, "ca", obj, NULL, "REGISTERED", a->role);
}

fdl_reg_status fdl_registry_ca_register(fdl_registry *reg, const mbedtls_x509_crt *ca, const char *role,
                                        int64_t *ca_id)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    char fp[FDL_REG_FP_HEX_LEN + 1], subject[FDL_REG_SUBJECT_MAX + 1];
    unsigned char *pem = NULL;
    size_t olen = 0;

    if (!reg || !ca || !ca->raw.p || !valid_id(role))
        goto cleanup;
    if (mbedtls_x509_crt_get_ca_istrue(ca) != 1) {
        set_err(reg, "certificate is not a CA (basicConstraints)");
        goto cleanup;
    }
    if (mbedtls_x509_dn_gets(subject, sizeof subject, &ca->subject) < 0) {
        set_err(reg, "CA subject longer than %d bytes", FDL_REG_SUBJECT_MAX);
        goto cleanup;
    }
    st = fdl_registry_fingerprint(ca->raw.p, ca->raw.len, fp);
    if (st != FDL_REG_OK)
        goto cleanup;
    st = FDL_REG_ERR_NOMEM;
    pem = fdl_malloc(FDL_REG_PEM_MAX);
    if (!pem)
        goto cleanup;
    if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", ca->raw.p,
                                 ca->raw.len, pem, FDL_REG_PEM_MAX, &olen) != 0) {
        set_err(reg, "CA certificate does not fit in %d bytes of PEM", FDL_REG_PEM_MAX);
        st = FDL_REG_ERR_ARG;
        goto cleanup;
    }
    ca_arg a = {.subject = subject, .fp = fp, .pem = (const char *)pem, .role = role};
    st = run_tx(reg, ca_register_body, &a);
    if (st == FDL_REG_OK && ca_id)
        *ca_id = a.id;
cleanup:
    fdl_free(pem);
    return st;
}

fdl_reg_status fdl_registry_ca_find(fdl_registry *reg, const char *fingerprint, int64_t *ca_id,
                                    fdl_reg_ca_state *state)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    sqlite3_stmt *s = NULL;
    char fp[FDL_REG_FP_HEX_LEN + 1];

    if (!reg || !ca_id || !norm_fp(fingerprint, fp))
        goto cleanup;
    st = stmt_get(reg, ST_CA_BY_FP, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    bind_text(s, 1, fp);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(s, 1);
        *ca_id = sqlite3_column_int64(s, 0);
        if (state)
            *state = t && strcmp((const char *)t, "REVOKED") == 0 ? FDL_REG_CA_REVOKED : FDL_REG_CA_REGISTERED;
        st = FDL_REG_OK;
    } else {
        st = rc == SQLITE_DONE ? FDL_REG_ERR_NOT_FOUND : db_fail(reg, rc, "find CA");
    }
cleanup:
    if (s)
        sqlite3_reset(s);
    return st;
}

fdl_reg_status fdl_registry_ca_cert_count(fdl_registry *reg, int64_t ca_id, size_t *n_live)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    sqlite3_stmt *s = NULL;

    if (!reg || !n_live || ca_id <= 0)
        goto cleanup;
    st = stmt_get(reg, ST_CA_BY_ID, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    sqlite3_bind_int64(s, 1, ca_id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
        s = NULL;
        st = rc == SQLITE_DONE ? FDL_REG_ERR_NOT_FOUND : db_fail(reg, rc, "find CA");
        goto cleanup;
    }
    st = stmt_get(reg, ST_CA_LIVE_COUNT, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    sqlite3_bind_int64(s, 1, ca_id);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *n_live = (size_t)sqlite3_column_int64(s, 0);
    else
        st = db_fail(reg, rc, "count certificates");
cleanup:
    if (s)
        sqlite3_reset(s);
    return st;
}

static fdl_reg_status ca_revoke_body(fdl_registry *reg, void *arg)
{
    ca_arg *a = arg;
    sqlite3_stmt *s = NULL;
    int64_t at = now_ms();
    char obj[24];
    fdl_reg_status st = ca_usable(reg, a->id);
    if (st == FDL_REG_ERR_CA_REVOKED) {
        set_err(reg, "CA %lld: REVOKED -> REVOKED refused", (long long)a->id);
        return FDL_REG_ERR_TRANSITION;
    }
    if (st != FDL_REG_OK)
        return st;
    st = bulk_revoke(reg, ST_CA_REVOKE_EVENTS, ST_CA_REVOKE_CERTS, NULL, a->id, a->reason, at, &a->n);
    if (st != FDL_REG_OK)
        return st;
    st = stmt_get(reg, ST_CA_REVOKE, &s);
    if (st != FDL_REG_OK)
        return st;
    sqlite3_bind_int64(s, 1, a->id);
    bind_text(s, 2, a->reason);
    sqlite3_bind_int64(s, 3, at);
    st = step_done(reg, s, "revoke CA");
    if (st != FDL_REG_OK)
        return st;
    snprintf(obj, sizeof obj, "%lld", (long long)a->id);
    return event_add(reg, at, "ca", obj, "REGISTERED", "REVOKED", a->reason);
}

fdl_reg_status fdl_registry_ca_revoke(fdl_registry *reg, int64_t ca_id, const char *reason, size_t *n_certs)
{
    ca_arg a = {.id = ca_id, .reason = reason};
    if (n_certs)
        *n_certs = 0;
    if (!reg || ca_id <= 0 || !valid_text(reason, FDL_REG_REASON_MAX))
        return FDL_REG_ERR_ARG;
    fdl_reg_status st = run_tx(reg, ca_revoke_body, &a);
    if (st == FDL_REG_OK && n_certs)
        *n_certs = a.n;
    return st;
}

fdl_reg_status fdl_registry_crl_serials(fdl_registry *reg, int64_t ca_id, fdl_reg_serial_cb cb, void *ctx)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    sqlite3_stmt *s = NULL;
    char serial[FDL_REG_SERIAL_HEX_MAX + 1];
    int rc;

    if (!reg || !cb || ca_id <= 0)
        goto cleanup;
    st = stmt_get(reg, ST_CRL, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    sqlite3_bind_int64(s, 1, ca_id);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (!col_copy(s, 0, serial, sizeof serial)) {
            st = FDL_REG_ERR_CORRUPT;
            goto cleanup;
        }
        if (cb(ctx, serial, sqlite3_column_int64(s, 1) / 1000) != 0)
            break;
    }
    st = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? FDL_REG_OK : db_fail(reg, rc, "CRL");
cleanup:
    if (s)
        sqlite3_reset(s);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Policies and devices (public).                                                             */

typedef struct policy_arg {
    const char *name, *text;
    int per_device;
} policy_arg;

/* "per_device=N sha256=<16 hex>": what an auditor needs to see that the text changed. */
static void policy_summary(const char *text, size_t len, int per_device, char *out, size_t cap)
{
    unsigned char h[32];
    char hex[65];
    if (mbedtls_sha256((const unsigned char *)text, len, h, 0) != 0)
        memset(h, 0, sizeof h);
    to_hex(h, sizeof h, hex);
    snprintf(out, cap, "per_device=%d sha256=%.16s", per_device, hex);
}

static fdl_reg_status policy_put_body(fdl_registry *reg, void *arg)
{
    policy_arg *a = arg;
    sqlite3_stmt *s = NULL;
    char old[64] = "", nw[64];
    int had = 0;
    int64_t at = now_ms();
    fdl_reg_status st = stmt_get(reg, ST_POLICY_GET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, a->name);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        had = 1;
        policy_summary((const char *)sqlite3_column_text(s, 0), (size_t)sqlite3_column_bytes(s, 0),
                       sqlite3_column_int(s, 1), old, sizeof old);
    } else if (rc != SQLITE_DONE) {
        st = db_fail(reg, rc, "read policy");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (st != FDL_REG_OK)
        return st;
    policy_summary(a->text, strlen(a->text), a->per_device, nw, sizeof nw);
    if (had && strcmp(old, nw) == 0)
        return FDL_REG_OK; /* unchanged: no write, no event */
    st = stmt_get(reg, ST_POLICY_PUT, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, a->name);
    bind_text(s, 2, a->text);
    sqlite3_bind_int(s, 3, a->per_device);
    sqlite3_bind_int64(s, 4, at);
    st = step_done(reg, s, "write policy");
    if (st != FDL_REG_OK)
        return st;
    return event_add(reg, at, "policy", a->name, had ? old : NULL, nw, had ? "updated" : "created");
}

fdl_reg_status fdl_registry_policy_put(fdl_registry *reg, const char *name, const char *text, int per_device)
{
    policy_arg a = {.name = name, .text = text, .per_device = per_device != 0};
    if (!reg || !valid_id(name) || !text)
        return FDL_REG_ERR_ARG;
    size_t n = strnlen(text, FDL_REG_POLICY_MAX + 1);
    if (n == 0 || n > FDL_REG_POLICY_MAX)
        return FDL_REG_ERR_ARG;
    return run_tx(reg, policy_put_body, &a);
}

fdl_reg_status fdl_registry_policy_get(fdl_registry *reg, const char *name, char *buf, size_t cap, int *per_device)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    sqlite3_stmt *s = NULL;

    if (!reg || !valid_id(name) || !buf || cap == 0)
        goto cleanup;
    st = stmt_get(reg, ST_POLICY_GET, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    bind_text(s, 1, name);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        if (per_device)
            *per_device = sqlite3_column_int(s, 1);
        st = col_copy(s, 0, buf, cap) ? FDL_REG_OK : FDL_REG_ERR_SMALL;
    } else if (rc == SQLITE_DONE) {
        set_err(reg, "policy %s: not found", name);
        st = FDL_REG_ERR_NOT_FOUND;
    } else {
        st = db_fail(reg, rc, "read policy");
    }
cleanup:
    if (s) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    return st;
}

typedef struct device_put_arg {
    const char *id;
    const fdl_reg_device *attrs;
} device_put_arg;

static fdl_reg_status device_put_body(fdl_registry *reg, void *arg)
{
    device_put_arg *a = arg;
    fdl_reg_device old, nw;
    int64_t at = now_ms();
    fdl_reg_status st = device_ensure(reg, a->id, at);
    if (st != FDL_REG_OK)
        return st;
    st = device_read(reg, a->id, &old);
    if (st != FDL_REG_OK)
        return st;
    nw = old;
    nw.sold = a->attrs->sold != 0;
    nw.service = a->attrs->service != 0;
    nw.recalled = a->attrs->recalled != 0;
    snprintf(nw.firmware_version, sizeof nw.firmware_version, "%s", a->attrs->firmware_version);
    return device_write(reg, a->id, &old, &nw, at, "attributes");
}

fdl_reg_status fdl_registry_device_put(fdl_registry *reg, const char *device_id, const fdl_reg_device *attrs)
{
    device_put_arg a = {.id = device_id, .attrs = attrs};
    if (!reg || !valid_id(device_id) || !attrs)
        return FDL_REG_ERR_ARG;
    if (strnlen(attrs->firmware_version, sizeof attrs->firmware_version) >= sizeof attrs->firmware_version ||
        !valid_text(attrs->firmware_version, FDL_REG_FIRMWARE_MAX))
        return FDL_REG_ERR_ARG;
    return run_tx(reg, device_put_body, &a);
}

fdl_reg_status fdl_registry_device_get(fdl_registry *reg, const char *device_id, fdl_reg_device *out)
{
    if (!reg || !valid_id(device_id) || !out)
        return FDL_REG_ERR_ARG;
    return device_read(reg, device_id, out);
}

/* ---------------------------------------------------------------------------------------- */
/* Audit.                                                                                     */

fdl_reg_status fdl_registry_events(fdl_registry *reg, const char *object, int64_t after_id, fdl_reg_event_cb cb,
                                   void *ctx)
{
    fdl_reg_status st = FDL_REG_ERR_ARG;
    sqlite3_stmt *s = NULL;
    int rc;

    if (!reg || !cb || (object && strnlen(object, FDL_REG_FP_HEX_LEN + 1) > FDL_REG_FP_HEX_LEN))
        goto cleanup;
    st = stmt_get(reg, object ? ST_EVENTS_OBJ : ST_EVENTS_ALL, &s);
    if (st != FDL_REG_OK)
        goto cleanup;
    sqlite3_bind_int64(s, 1, after_id);
    if (object)
        bind_text(s, 2, object);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        fdl_reg_event ev = {
            .id = sqlite3_column_int64(s, 0),
            .at_ms = sqlite3_column_int64(s, 1),
            .actor = (const char *)sqlite3_column_text(s, 2),
            .kind = (const char *)sqlite3_column_text(s, 3),
            .object = (const char *)sqlite3_column_text(s, 4),
            .old_state = (const char *)sqlite3_column_text(s, 5),
            .new_state = (const char *)sqlite3_column_text(s, 6),
            .reason = (const char *)sqlite3_column_text(s, 7),
        };
        if (!ev.actor || !ev.kind || !ev.object || !ev.old_state || !ev.new_state || !ev.reason) {
            st = FDL_REG_ERR_NOMEM; /* sqlite returns NULL text only when it cannot allocate */
            goto cleanup;
        }
        if (cb(ctx, &ev) != 0)
            break;
    }
    st = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? FDL_REG_OK : db_fail(reg, rc, "events");
cleanup:
    if (s) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    return st;
}

fdl_reg_status fdl_registry_check(fdl_registry *reg, size_t *n_mismatch)
{
    /* Each certificate and CA against the new_state of its latest event (index
     * events_object makes each probe one seek). */
    static const char k_mismatch[] =
        "SELECT (SELECT count(*) FROM certificates c WHERE c.status IS NOT"
        "  (SELECT e.new_state FROM events e WHERE e.kind = 'certificate' AND e.object = c.fingerprint"
        "   ORDER BY e.id DESC LIMIT 1))"
        " + (SELECT count(*) FROM cas a WHERE a.status IS NOT"
        "  (SELECT e.new_state FROM events e WHERE e.kind = 'ca' AND e.object = CAST(a.id AS TEXT)"
        "   ORDER BY e.id DESC LIMIT 1))";
    fdl_reg_status st = FDL_REG_ERR_ARG;
    sqlite3_stmt *s = NULL;
    char ok[64];
    size_t n = 0;

    if (!reg)
        goto cleanup;
    st = pragma_text(reg, "PRAGMA integrity_check", ok, sizeof ok);
    if (st != FDL_REG_OK)
        goto cleanup;
    if (strcmp(ok, "ok") != 0) {
        set_err(reg, "integrity_check: %s", ok);
        st = FDL_REG_ERR_CORRUPT;
        goto cleanup;
    }
    int rc = sqlite3_prepare_v2(reg->db, k_mismatch, -1, &s, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        st = db_fail(reg, rc, "consistency check");
        goto cleanup;
    }
    n = (size_t)sqlite3_column_int64(s, 0);
    if (n) {
        set_err(reg, "%zu objects disagree with their last event", n);
        st = FDL_REG_ERR_CORRUPT;
    }
cleanup:
    if (n_mismatch)
        *n_mismatch = n;
    sqlite3_finalize(s);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Device policy, sessions, counters (schema v2).                                              */

typedef struct set_policy_arg {
    const char *id, *policy, *reason;
} set_policy_arg;

static fdl_reg_status set_policy_body(fdl_registry *reg, void *arg)
{
    set_policy_arg *a = arg;
    return attach_policy(reg, a->id, a->policy, now_ms(), a->reason ? a->reason : "policy attached");
}

fdl_reg_status fdl_registry_device_set_policy(fdl_registry *reg, const char *device_id, const char *policy,
                                              const char *reason)
{
    if (!reg || !valid_id(device_id) || !policy || (policy[0] && !valid_id(policy)) ||
        (reason && !valid_text(reason, FDL_REG_REASON_MAX)))
        return FDL_REG_ERR_ARG;
    set_policy_arg a = {device_id, policy, reason};
    return run_tx(reg, set_policy_body, &a);
}

typedef struct sessions_arg {
    const fdl_reg_session *s;
    size_t n;
} sessions_arg;

static fdl_reg_status sessions_body(fdl_registry *reg, void *arg)
{
    sessions_arg *a = arg;
    sqlite3_stmt *s = NULL;
    for (size_t i = 0; i < a->n; i++) {
        const fdl_reg_session *e = &a->s[i];
        fdl_reg_status st = stmt_get(reg, e->open ? ST_SESSION_OPEN : ST_SESSION_CLOSE, &s);
        if (st != FDL_REG_OK)
            return st;
        sqlite3_bind_int64(s, 1, e->id);
        if (e->open) {
            bind_text(s, 2, e->fingerprint);
            bind_text(s, 3, e->device_id);
            bind_text(s, 4, e->client_id);
            bind_text(s, 5, e->address);
            sqlite3_bind_int64(s, 6, e->at_ms);
        } else {
            sqlite3_bind_int64(s, 2, e->at_ms);
        }
        st = step_done(reg, s, e->open ? "open session" : "close session");
        if (st != FDL_REG_OK)
            return st;
    }
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_sessions_apply(fdl_registry *reg, const fdl_reg_session *s, size_t n)
{
    if (!reg || (n && !s) || n > FDL_REG_BATCH_MAX)
        return FDL_REG_ERR_ARG;
    for (size_t i = 0; i < n; i++) {
        if (!s[i].open)
            continue;
        if (!s[i].fingerprint || strlen(s[i].fingerprint) != FDL_REG_FP_HEX_LEN || !valid_id(s[i].device_id) ||
            !s[i].client_id || strlen(s[i].client_id) > 65535 || !s[i].address ||
            strlen(s[i].address) > 255)
            return FDL_REG_ERR_ARG;
    }
    if (n == 0)
        return FDL_REG_OK;
    sessions_arg a = {s, n};
    return run_tx(reg, sessions_body, &a);
}

static fdl_reg_status close_all_body(fdl_registry *reg, void *arg)
{
    int64_t *at = arg;
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = stmt_get(reg, ST_SESSION_CLOSE_ALL, &s);
    if (st != FDL_REG_OK)
        return st;
    sqlite3_bind_int64(s, 1, *at);
    st = step_done(reg, s, "close sessions");
    *at = sqlite3_changes(reg->db);
    return st;
}

fdl_reg_status fdl_registry_sessions_close_all(fdl_registry *reg, int64_t at_ms, size_t *n)
{
    if (!reg)
        return FDL_REG_ERR_ARG;
    int64_t v = at_ms;
    fdl_reg_status st = run_tx(reg, close_all_body, &v);
    if (n)
        *n = st == FDL_REG_OK ? (size_t)v : 0;
    return st;
}

typedef struct counters_arg {
    const char *const *ids;
    const fdl_reg_counters *d;
    size_t n;
} counters_arg;

static fdl_reg_status counters_body(fdl_registry *reg, void *arg)
{
    counters_arg *a = arg;
    sqlite3_stmt *s = NULL;
    int64_t at = now_ms();
    for (size_t i = 0; i < a->n; i++) {
        fdl_reg_status st = stmt_get(reg, ST_COUNTERS_ADD, &s);
        if (st != FDL_REG_OK)
            return st;
        bind_text(s, 1, a->ids[i]);
        sqlite3_bind_int64(s, 2, (int64_t)a->d[i].denied_publish);
        sqlite3_bind_int64(s, 3, (int64_t)a->d[i].denied_subscribe);
        sqlite3_bind_int64(s, 4, (int64_t)a->d[i].denied_receive);
        sqlite3_bind_int64(s, 5, (int64_t)a->d[i].bad_payload);
        sqlite3_bind_int64(s, 6, (int64_t)a->d[i].refused_connect);
        sqlite3_bind_int64(s, 7, at);
        st = step_done(reg, s, "add counters");
        if (st != FDL_REG_OK)
            return st;
    }
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_counters_add(fdl_registry *reg, const char *const *ids, const fdl_reg_counters *deltas,
                                         size_t n)
{
    if (!reg || (n && (!ids || !deltas)) || n > FDL_REG_BATCH_MAX)
        return FDL_REG_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (!ids[i] || !ids[i][0] || strlen(ids[i]) > FDL_REG_ID_MAX)
            return FDL_REG_ERR_ARG;
    if (n == 0)
        return FDL_REG_OK;
    counters_arg a = {ids, deltas, n};
    return run_tx(reg, counters_body, &a);
}

fdl_reg_status fdl_registry_counters_get(fdl_registry *reg, const char *id, fdl_reg_counters *out)
{
    sqlite3_stmt *s = NULL;
    if (!reg || !id || !out || strlen(id) > FDL_REG_ID_MAX)
        return FDL_REG_ERR_ARG;
    memset(out, 0, sizeof *out);
    fdl_reg_status st = stmt_get(reg, ST_COUNTERS_GET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->denied_publish = (uint64_t)sqlite3_column_int64(s, 0);
        out->denied_subscribe = (uint64_t)sqlite3_column_int64(s, 1);
        out->denied_receive = (uint64_t)sqlite3_column_int64(s, 2);
        out->bad_payload = (uint64_t)sqlite3_column_int64(s, 3);
        out->refused_connect = (uint64_t)sqlite3_column_int64(s, 4);
        out->updated_ms = sqlite3_column_int64(s, 5);
    } else if (rc != SQLITE_DONE) {
        st = db_fail(reg, rc, "read counters");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* OTA jobs.                                                                                  */

static const char *const k_ota_states[] = {"HELD", "RUNNING", "HALTED", "COMPLETED", NULL};

/* 1..FDL_REG_OTA_WORD_MAX bytes of [a-z0-9.,_-] (steps, tiers, versions, stage lists are all of that alphabet). */
static int valid_word(const char *s, size_t max)
{
    if (!s)
        return 0;
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_id_char(s[i]) && s[i] != ',')
            return 0;
    return 1;
}

static int valid_ota_state(const char *s)
{
    for (const char *const *k = k_ota_states; s && *k; k++)
        if (!strcmp(s, *k))
            return 1;
    return 0;
}

typedef struct ota_create_arg {
    const fdl_reg_ota_job *job;
    const char *const *ids;
    const int *stage_of;
    size_t n;
} ota_create_arg;

static fdl_reg_status ota_create_body(fdl_registry *reg, void *arg)
{
    ota_create_arg *a = arg;
    const fdl_reg_ota_job *j = a->job;
    sqlite3_stmt *s = NULL;
    int64_t at = now_ms();
    fdl_reg_status st = stmt_get(reg, ST_OTA_JOB_GET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, j->id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_ROW) {
        set_err(reg, "job %s exists", j->id);
        return FDL_REG_ERR_CONFLICT;
    }
    if (rc != SQLITE_DONE)
        return db_fail(reg, rc, "look up job");
    st = stmt_get(reg, ST_OTA_JOB_INSERT, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, j->id);
    sqlite3_bind_int64(s, 2, at);
    bind_text(s, 3, j->tier);
    bind_text(s, 4, j->version);
    sqlite3_bind_int64(s, 5, j->counter);
    bind_text(s, 6, j->artifact);
    bind_text(s, 7, j->sha256);
    sqlite3_bind_int64(s, 8, j->size);
    bind_text(s, 9, j->stages);
    sqlite3_bind_double(s, 10, j->max_failure);
    sqlite3_bind_int64(s, 11, (int64_t)a->n);
    bind_text(s, 12, j->state);
    st = step_done(reg, s, "insert job");
    for (size_t i = 0; st == FDL_REG_OK && i < a->n; i++) {
        st = stmt_get(reg, ST_OTA_TARGET_INSERT, &s);
        if (st != FDL_REG_OK)
            break;
        bind_text(s, 1, j->id);
        bind_text(s, 2, a->ids[i]);
        sqlite3_bind_int(s, 3, a->stage_of[i]);
        sqlite3_bind_int64(s, 4, at);
        st = step_done(reg, s, "insert job target");
    }
    return st;
}

fdl_reg_status fdl_registry_ota_job_create(fdl_registry *reg, const fdl_reg_ota_job *job, const char *const *ids,
                                           const int *stage_of, size_t n)
{
    char sha[FDL_REG_FP_HEX_LEN + 1];
    if (!reg || !job || !ids || !stage_of || n == 0 || n > FDL_REG_BATCH_MAX || !valid_id(job->id) ||
        !valid_word(job->tier, FDL_REG_OTA_WORD_MAX) || !valid_word(job->version, FDL_REG_OTA_WORD_MAX) ||
        !valid_id(job->artifact) || !norm_fp(job->sha256, sha) || !valid_word(job->stages, FDL_REG_OTA_STAGES_MAX) ||
        !valid_ota_state(job->state) || !(job->max_failure >= 0.0 && job->max_failure <= 1.0))
        return FDL_REG_ERR_ARG;
    if (strcmp(job->state, "HELD") && strcmp(job->state, "RUNNING"))
        return FDL_REG_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (!valid_id(ids[i]) || stage_of[i] < 1)
            return FDL_REG_ERR_ARG;
    fdl_reg_ota_job j = *job;
    memcpy(j.sha256, sha, sizeof sha);
    ota_create_arg a = {&j, ids, stage_of, n};
    return run_tx(reg, ota_create_body, &a);
}

typedef struct ota_set_arg {
    const char *job, *state, *reason;
    int stage;
} ota_set_arg;

static fdl_reg_status ota_set_body(fdl_registry *reg, void *arg)
{
    ota_set_arg *a = arg;
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = stmt_get(reg, ST_OTA_JOB_SET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, a->job);
    bind_text(s, 2, a->state);
    sqlite3_bind_int(s, 3, a->stage);
    bind_text(s, 4, a->reason && a->reason[0] ? a->reason : NULL);
    sqlite3_bind_int64(s, 5, now_ms());
    st = step_done(reg, s, "update job");
    if (st == FDL_REG_OK && sqlite3_changes(reg->db) == 0) {
        set_err(reg, "no job %s", a->job);
        return FDL_REG_ERR_NOT_FOUND;
    }
    return st;
}

fdl_reg_status fdl_registry_ota_job_set(fdl_registry *reg, const char *job, const char *state, int stage,
                                        const char *reason)
{
    if (!reg || !valid_id(job) || !valid_ota_state(state) || stage < 0 || !valid_text(reason, FDL_REG_REASON_MAX))
        return FDL_REG_ERR_ARG;
    ota_set_arg a = {job, state, reason, stage};
    return run_tx(reg, ota_set_body, &a);
}

fdl_reg_status fdl_registry_ota_job_get(fdl_registry *reg, const char *job, fdl_reg_ota_job *out)
{
    sqlite3_stmt *s = NULL;
    if (!reg || !valid_id(job) || !out)
        return FDL_REG_ERR_ARG;
    memset(out, 0, sizeof *out);
    fdl_reg_status st = stmt_get(reg, ST_OTA_JOB_GET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, job);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        snprintf(out->id, sizeof out->id, "%s", job);
        out->created_ms = sqlite3_column_int64(s, 0);
        col_copy(s, 1, out->tier, sizeof out->tier);
        col_copy(s, 2, out->version, sizeof out->version);
        out->counter = (uint32_t)sqlite3_column_int64(s, 3);
        col_copy(s, 4, out->artifact, sizeof out->artifact);
        col_copy(s, 5, out->sha256, sizeof out->sha256);
        out->size = (uint32_t)sqlite3_column_int64(s, 6);
        col_copy(s, 7, out->stages, sizeof out->stages);
        out->max_failure = sqlite3_column_double(s, 8);
        out->devices = (uint32_t)sqlite3_column_int64(s, 9);
        col_copy(s, 10, out->state, sizeof out->state);
        out->stage = sqlite3_column_int(s, 11);
        col_copy(s, 12, out->reason, sizeof out->reason);
        out->updated_ms = sqlite3_column_int64(s, 13);
    } else if (rc == SQLITE_DONE) {
        set_err(reg, "no job %s", job);
        st = FDL_REG_ERR_NOT_FOUND;
    } else {
        st = db_fail(reg, rc, "read job");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

typedef struct ota_doc_arg {
    uint64_t seq;
    const char *job;
    int stage;
    const uint8_t *doc;
    size_t len;
    const char *const *targets;
    size_t n;
    int64_t published_ms;
} ota_doc_arg;

static fdl_reg_status ota_doc_body(fdl_registry *reg, void *arg)
{
    ota_doc_arg *a = arg;
    sqlite3_stmt *s = NULL;
    fdl_reg_status st = stmt_get(reg, ST_OTA_DOC_INSERT, &s);
    if (st != FDL_REG_OK)
        return st;
    sqlite3_bind_int64(s, 1, (int64_t)a->seq);
    bind_text(s, 2, a->job);
    sqlite3_bind_int(s, 3, a->stage);
    sqlite3_bind_int64(s, 4, (int64_t)a->n);
    sqlite3_bind_blob(s, 5, a->doc, (int)a->len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 6, now_ms());
    if (a->published_ms > 0)
        sqlite3_bind_int64(s, 7, a->published_ms);
    else
        sqlite3_bind_null(s, 7);
    st = step_done(reg, s, "insert job document");
    for (size_t i = 0; st == FDL_REG_OK && a->published_ms > 0 && i < a->n; i++) {
        st = stmt_get(reg, ST_OTA_NOTIFIED, &s);
        if (st != FDL_REG_OK)
            break;
        bind_text(s, 1, a->job);
        bind_text(s, 2, a->targets[i]);
        sqlite3_bind_int64(s, 3, (int64_t)a->seq);
        sqlite3_bind_int64(s, 4, a->published_ms);
        st = step_done(reg, s, "mark notified");
    }
    return st;
}

fdl_reg_status fdl_registry_ota_doc_put(fdl_registry *reg, uint64_t seq, const char *job, int stage,
                                        const uint8_t *doc, size_t len, const char *const *targets, size_t n,
                                        int64_t published_ms)
{
    if (!reg || seq == 0 || seq > (uint64_t)INT64_MAX || !valid_id(job) || stage < 0 || !doc || len == 0 ||
        len > FDL_REG_OTA_DOC_MAX || (n && !targets) || n > FDL_REG_BATCH_MAX)
        return FDL_REG_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (!valid_id(targets[i]))
            return FDL_REG_ERR_ARG;
    ota_doc_arg a = {seq, job, stage, doc, len, targets, n, published_ms};
    return run_tx(reg, ota_doc_body, &a);
}

fdl_reg_status fdl_registry_ota_doc_get(fdl_registry *reg, uint64_t seq, uint8_t *buf, size_t cap, size_t *len,
                                        char *job)
{
    sqlite3_stmt *s = NULL;
    if (!reg || !buf || !len || seq > (uint64_t)INT64_MAX)
        return FDL_REG_ERR_ARG;
    *len = 0;
    fdl_reg_status st = stmt_get(reg, ST_OTA_DOC_GET, &s);
    if (st != FDL_REG_OK)
        return st;
    sqlite3_bind_int64(s, 1, (int64_t)seq);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const void *b = sqlite3_column_blob(s, 2);
        size_t n = (size_t)sqlite3_column_bytes(s, 2);
        if (n > cap) {
            st = FDL_REG_ERR_SMALL;
        } else {
            if (n)
                memcpy(buf, b, n);
            *len = n;
            if (job)
                col_copy(s, 0, job, FDL_REG_ID_MAX + 1);
        }
    } else if (rc == SQLITE_DONE) {
        set_err(reg, "no job document %llu", (unsigned long long)seq);
        st = FDL_REG_ERR_NOT_FOUND;
    } else {
        st = db_fail(reg, rc, "read job document");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

typedef struct ota_status_arg {
    const fdl_reg_ota_status *s;
    size_t n;
} ota_status_arg;

static fdl_reg_status ota_status_body(fdl_registry *reg, void *arg)
{
    ota_status_arg *a = arg;
    sqlite3_stmt *s = NULL;
    int64_t at = now_ms();
    for (size_t i = 0; i < a->n; i++) {
        const fdl_reg_ota_status *x = &a->s[i];
        int64_t when = x->updated_ms > 0 ? x->updated_ms : at;
        fdl_reg_status st = stmt_get(reg, ST_OTA_REPORT_INSERT, &s);
        if (st != FDL_REG_OK)
            return st;
        sqlite3_bind_int64(s, 1, when);
        bind_text(s, 2, x->device_id);
        bind_text(s, 3, x->job);
        sqlite3_bind_int64(s, 4, (int64_t)x->seq);
        bind_text(s, 5, x->step);
        bind_text(s, 6, x->detail ? x->detail : "");
        st = step_done(reg, s, "append job report");
        if (st != FDL_REG_OK)
            return st;
        if (x->log_only)
            continue;
        st = stmt_get(reg, ST_OTA_STATUS_SET, &s);
        if (st != FDL_REG_OK)
            return st;
        bind_text(s, 1, x->job);
        bind_text(s, 2, x->device_id);
        bind_text(s, 3, x->step);
        sqlite3_bind_int64(s, 4, (int64_t)x->seq);
        bind_text(s, 5, x->detail ? x->detail : "");
        sqlite3_bind_int64(s, 6, when);
        st = step_done(reg, s, "set job status");
        if (st != FDL_REG_OK)
            return st;
    }
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_ota_status_apply(fdl_registry *reg, const fdl_reg_ota_status *s, size_t n)
{
    if (!reg || (n && !s) || n > FDL_REG_BATCH_MAX)
        return FDL_REG_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (!valid_id(s[i].job) || !valid_id(s[i].device_id) || !valid_word(s[i].step, FDL_REG_OTA_WORD_MAX) ||
            !valid_text(s[i].detail, FDL_REG_REASON_MAX) || s[i].seq > (uint64_t)INT64_MAX)
            return FDL_REG_ERR_ARG;
    if (n == 0)
        return FDL_REG_OK;
    ota_status_arg a = {s, n};
    return run_tx(reg, ota_status_body, &a);
}

fdl_reg_status fdl_registry_ota_reports(fdl_registry *reg, const char *device_id, int64_t since_ms,
                                        fdl_reg_ota_cb cb, void *ctx)
{
    sqlite3_stmt *s = NULL;
    if (!reg || !valid_id(device_id) || !cb)
        return FDL_REG_ERR_ARG;
    fdl_reg_status st = stmt_get(reg, ST_OTA_REPORTS, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, device_id);
    sqlite3_bind_int64(s, 2, since_ms);
    int rc;
    fdl_reg_ota_line line;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&line, 0, sizeof line);
        snprintf(line.device_id, sizeof line.device_id, "%s", device_id);
        line.updated_ms = sqlite3_column_int64(s, 0);
        col_copy(s, 1, line.job, sizeof line.job);
        line.seq = (uint64_t)sqlite3_column_int64(s, 2);
        col_copy(s, 3, line.step, sizeof line.step);
        col_copy(s, 4, line.detail, sizeof line.detail);
        if (cb(ctx, &line) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        st = db_fail(reg, rc, "list job reports");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

/* Reads columns from..from+5 (stage, step, seq, detail, updated) of a status row. */
static void ota_line_cols(sqlite3_stmt *s, int from, fdl_reg_ota_line *out)
{
    out->stage = sqlite3_column_int(s, from);
    col_copy(s, from + 1, out->step, sizeof out->step);
    out->seq = (uint64_t)sqlite3_column_int64(s, from + 2);
    col_copy(s, from + 3, out->detail, sizeof out->detail);
    out->updated_ms = sqlite3_column_int64(s, from + 4);
}

fdl_reg_status fdl_registry_ota_status_get(fdl_registry *reg, const char *job, const char *device_id,
                                           fdl_reg_ota_line *out)
{
    sqlite3_stmt *s = NULL;
    if (!reg || !valid_id(job) || !valid_id(device_id) || !out)
        return FDL_REG_ERR_ARG;
    memset(out, 0, sizeof *out);
    fdl_reg_status st = stmt_get(reg, ST_OTA_STATUS_GET, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, job);
    bind_text(s, 2, device_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        snprintf(out->job, sizeof out->job, "%s", job);
        snprintf(out->device_id, sizeof out->device_id, "%s", device_id);
        ota_line_cols(s, 0, out);
    } else if (rc == SQLITE_DONE) {
        st = FDL_REG_ERR_NOT_FOUND;
    } else {
        st = db_fail(reg, rc, "read job status");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

fdl_reg_status fdl_registry_ota_status_latest(fdl_registry *reg, const char *device_id, fdl_reg_ota_line *out)
{
    sqlite3_stmt *s = NULL;
    if (!reg || !valid_id(device_id) || !out)
        return FDL_REG_ERR_ARG;
    memset(out, 0, sizeof *out);
    fdl_reg_status st = stmt_get(reg, ST_OTA_STATUS_LATEST, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, device_id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        col_copy(s, 0, out->job, sizeof out->job);
        snprintf(out->device_id, sizeof out->device_id, "%s", device_id);
        ota_line_cols(s, 1, out);
    } else if (rc == SQLITE_DONE) {
        st = FDL_REG_ERR_NOT_FOUND;
    } else {
        st = db_fail(reg, rc, "read job status");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

fdl_reg_status fdl_registry_ota_status_list(fdl_registry *reg, const char *job, fdl_reg_ota_cb cb, void *ctx)
{
    sqlite3_stmt *s = NULL;
    if (!reg || !valid_id(job) || !cb)
        return FDL_REG_ERR_ARG;
    fdl_reg_status st = stmt_get(reg, ST_OTA_STATUS_LIST, &s);
    if (st != FDL_REG_OK)
        return st;
    bind_text(s, 1, job);
    int rc;
    fdl_reg_ota_line line;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        memset(&line, 0, sizeof line);
        snprintf(line.job, sizeof line.job, "%s", job);
        col_copy(s, 0, line.device_id, sizeof line.device_id);
        ota_line_cols(s, 1, &line);
        if (cb(ctx, &line) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc != SQLITE_DONE)
        st = db_fail(reg, rc, "list job status");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

struct sqlite3 *fdl_registry_db(fdl_registry *reg)
{
    return reg ? reg->db : NULL;
}

fdl_reg_status fdl_registry_ca_of(fdl_registry *reg, const mbedtls_x509_crt *crt, int64_t *ca_id,
                                  fdl_reg_ca_state *state, char *role, size_t role_cap)
{
    sqlite3_stmt *s = NULL;
    int64_t id = 0;
    if (!reg || !crt || !ca_id || !role || role_cap == 0)
        return FDL_REG_ERR_ARG;
    fdl_reg_status st = ca_by_issuer(reg, crt, &id);
    if (st != FDL_REG_OK)
        return st;
    st = stmt_get(reg, ST_CA_INFO, &s);
    if (st != FDL_REG_OK)
        return st;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *ca_id = id;
        if (!col_copy(s, 0, role, role_cap))
            st = FDL_REG_ERR_SMALL;
        if (state)
            *state = strcmp((const char *)sqlite3_column_text(s, 1), "REVOKED") == 0 ? FDL_REG_CA_REVOKED
                                                                                     : FDL_REG_CA_REGISTERED;
    } else {
        st = rc == SQLITE_DONE ? FDL_REG_ERR_NOT_FOUND : db_fail(reg, rc, "read CA");
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

typedef struct device_batch_arg {
    const char *const *ids;
    const fdl_reg_device *attrs;
    size_t n;
} device_batch_arg;

static fdl_reg_status device_batch_body(fdl_registry *reg, void *arg)
{
    device_batch_arg *b = arg;
    for (size_t i = 0; i < b->n; i++) {
        device_put_arg a = {.id = b->ids[i], .attrs = &b->attrs[i]};
        fdl_reg_status st = device_put_body(reg, &a);
        if (st != FDL_REG_OK)
            return st;
    }
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_device_put_batch(fdl_registry *reg, const char *const *ids, const fdl_reg_device *attrs,
                                             size_t n)
{
    if (!reg || (n && (!ids || !attrs)) || n > FDL_REG_BATCH_MAX)
        return FDL_REG_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (!valid_id(ids[i]) ||
            strnlen(attrs[i].firmware_version, sizeof attrs[i].firmware_version) >= sizeof attrs[i].firmware_version ||
            !valid_text(attrs[i].firmware_version, FDL_REG_FIRMWARE_MAX))
            return FDL_REG_ERR_ARG;
    if (n == 0)
        return FDL_REG_OK;
    device_batch_arg b = {ids, attrs, n};
    return run_tx(reg, device_batch_body, &b);
}

typedef struct decide_arg {
    fdl_reg_decision *d;
    size_t n;
    size_t n_done;
} decide_arg;

static fdl_reg_status decide_body(fdl_registry *reg, void *arg)
{
    decide_arg *a = arg;
    a->n_done = 0;
    for (size_t i = 0; i < a->n; i++) {
        fdl_reg_decision *d = &a->d[i];
        d->applied = 0;
        transition_arg t = {.allowed = STATE_BIT(FDL_REG_CERT_PENDING),
                            .to = d->policy ? FDL_REG_CERT_ACTIVE : FDL_REG_CERT_REVOKED,
                            .reason = d->reason,
                            .policy = d->policy};
        snprintf(t.fp, sizeof t.fp, "%s", d->fingerprint);
        for (char *c = t.fp; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c - 'A' + 'a');
        fdl_reg_status st = transition_body(reg, &t);
        /* Already decided (a repeated announcement) or gone: skip it, keep the batch. */
        if (st == FDL_REG_ERR_TRANSITION || st == FDL_REG_ERR_NOT_FOUND)
            continue;
        if (st != FDL_REG_OK)
            return st;
        d->applied = 1;
        a->n_done++;
    }
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_cert_decide_batch(fdl_registry *reg, fdl_reg_decision *d, size_t n, size_t *n_done)
{
    if (!reg || (n && !d) || n > FDL_REG_BATCH_MAX)
        return FDL_REG_ERR_ARG;
    for (size_t i = 0; i < n; i++)
        if (!d[i].fingerprint || strlen(d[i].fingerprint) != FDL_REG_FP_HEX_LEN ||
            (d[i].policy && !valid_id(d[i].policy)) || (d[i].reason && !valid_text(d[i].reason, FDL_REG_REASON_MAX)))
            return FDL_REG_ERR_ARG;
    decide_arg a = {d, n, 0};
    fdl_reg_status st = n ? run_tx(reg, decide_body, &a) : FDL_REG_OK;
    if (n_done)
        *n_done = st == FDL_REG_OK ? a.n_done : 0;
    return st;
}

typedef struct enroll_arg {
    const mbedtls_x509_crt *const *crts;
    const char *const *policies;
    size_t n;
    const char *reason;
    x509_bufs *bufs;
    fdl_reg_cert_rec *recs;
} enroll_arg;

static fdl_reg_status enroll_body(fdl_registry *reg, void *arg)
{
    enroll_arg *a = arg;
    int64_t at = now_ms();
    for (size_t i = 0; i < a->n; i++) {
        int is_new = 0;
        fdl_reg_cert_state state = 0;
        fdl_reg_cert_rec *rec = &a->recs[i];
        fdl_reg_status st = rec->ca_id ? FDL_REG_OK : ca_by_issuer(reg, a->crts[i], &rec->ca_id);
        if (st == FDL_REG_OK)
            st = record_one(reg, rec, at, &is_new, &state);
        if (st == FDL_REG_OK && state == FDL_REG_CERT_PENDING) {
            transition_arg t = {.allowed = STATE_BIT(FDL_REG_CERT_PENDING), .to = FDL_REG_CERT_ACTIVE,
                                .reason = a->reason, .policy = a->policies[i]};
            snprintf(t.fp, sizeof t.fp, "%s", rec->fingerprint);
            st = transition_body(reg, &t);
        } else if (st == FDL_REG_OK && state != FDL_REG_CERT_ACTIVE) {
            set_err(reg, "certificate %.16s is %s", rec->fingerprint, fdl_reg_cert_state_name(state));
            st = FDL_REG_ERR_TRANSITION;
        }
        if (st != FDL_REG_OK)
            return st;
    }
    return FDL_REG_OK;
}

fdl_reg_status fdl_registry_cert_enroll_batch(fdl_registry *reg, const mbedtls_x509_crt *const *crts,
                                              const char *const *policies, size_t n, const char *reason)
{
    if (!reg || (n && (!crts || !policies)) || n > FDL_REG_BATCH_MAX ||
        (reason && !valid_text(reason, FDL_REG_REASON_MAX)))
        return FDL_REG_ERR_ARG;
    if (n == 0)
        return FDL_REG_OK;
    for (size_t i = 0; i < n; i++)
        if (!policies[i] || !valid_id(policies[i]))
            return FDL_REG_ERR_ARG;
    enroll_arg a = {crts, policies, n, reason, fdl_calloc(n, sizeof(x509_bufs)), fdl_calloc(n, sizeof(fdl_reg_cert_rec))};
    fdl_reg_status st = a.bufs && a.recs ? FDL_REG_OK : FDL_REG_ERR_NOMEM;
    for (size_t i = 0; st == FDL_REG_OK && i < n; i++)
        st = x509_rec(reg, crts[i], 0, &a.bufs[i], &a.recs[i]);
    if (st == FDL_REG_OK)
        st = run_tx(reg, enroll_body, &a);
    fdl_free(a.bufs);
    fdl_free(a.recs);
    return st;
}
