/* tests/test_registry.c — the device registry: state machine, revocation, audit log, two handles, crashes. */
#include "testutil.h"

#include "cloud/pki.h"
#include "cloud/registry.h"
#include "sim/alloc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/x509_crt.h>
#include <sqlite3.h>

/* ---------------------------------------------------------------------------------------- */
/* Fixtures: a fresh registry per test; one software PKI for the whole group (CA certificates */
/* and a real leaf for the mbedTLS paths).                                                      */

typedef struct fx {
    char dir[256];
    char path[300];
    fdl_registry *reg;
} fx;

static char g_pki_dir[256];
static mbedtls_x509_crt g_root, g_inter;

static int group_setup(void **state)
{
    (void)state;
    char p[400];
    fdl_test_mkdtemp("registry-pki", g_pki_dir, sizeof g_pki_dir);
    if (fdl_pki_setup_soft(g_pki_dir, NULL) != FDL_PKI_OK)
        return -1;
    mbedtls_x509_crt_init(&g_root);
    mbedtls_x509_crt_init(&g_inter);
    snprintf(p, sizeof p, "%s/%s", g_pki_dir, FDL_PKI_ROOT_PEM);
    if (mbedtls_x509_crt_parse_file(&g_root, p) != 0)
        return -1;
    snprintf(p, sizeof p, "%s/%s", g_pki_dir, FDL_PKI_INTERMEDIATE_PEM);
    return mbedtls_x509_crt_parse_file(&g_inter, p) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    mbedtls_x509_crt_free(&g_root);
    mbedtls_x509_crt_free(&g_inter);
    fdl_test_rmrf(g_pki_dir);
    return 0;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    fdl_test_mkdtemp("registry", f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/registry.db", f->dir);
    fdl_registry_opts o = {.actor = "test-cli"};
    if (fdl_registry_open(f->path, &o, &f->reg) != FDL_REG_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fdl_registry_free(f->reg);
    fdl_test_rmrf(f->dir);
    free(f);
    return 0;
}

/* A deterministic fingerprint for test certificate i. */
static void fp_of(int i, char out[FDL_REG_FP_HEX_LEN + 1])
{
    char seed[32];
    int n = snprintf(seed, sizeof seed, "cert-%d", i);
    assert_int_equal(fdl_registry_fingerprint((const unsigned char *)seed, (size_t)n, out), FDL_REG_OK);
}

typedef struct tcert {
    char fp[FDL_REG_FP_HEX_LEN + 1];
    char serial[33];
    char device[32];
    fdl_reg_cert_rec rec;
} tcert;

static void tcert_make(tcert *c, int i, const char *device, int64_t ca_id)
{
    fp_of(i, c->fp);
    snprintf(c->serial, sizeof c->serial, "%08x", (unsigned)i + 1);
    snprintf(c->device, sizeof c->device, "%s", device);
    c->rec = (fdl_reg_cert_rec){.fingerprint = c->fp, .serial = c->serial, .device_id = c->device,
                                .ca_id = ca_id, .not_before = 1700000000, .not_after = 1800000000};
}

static void record(fdl_registry *reg, tcert *c, int i, const char *device, int64_t ca_id)
{
    fdl_reg_cert_state s = 0;
    tcert_make(c, i, device, ca_id);
    assert_int_equal(fdl_registry_cert_record(reg, &c->rec, &s), FDL_REG_OK);
    assert_int_equal(s, FDL_REG_CERT_PENDING);
}

static fdl_reg_cert_state state_of(fdl_registry *reg, const char *fp)
{
    fdl_reg_cert_info info;
    assert_int_equal(fdl_registry_cert_status(reg, fp, &info), FDL_REG_OK);
    return info.state;
}

static int count_cb(void *ctx, const fdl_reg_event *ev)
{
    (void)ev;
    (*(size_t *)ctx)++;
    return 0;
}

static size_t n_events(fdl_registry *reg, const char *object)
{
    size_t n = 0;
    assert_int_equal(fdl_registry_events(reg, object, 0, count_cb, &n), FDL_REG_OK);
    return n;
}

static void policy(fdl_registry *reg)
{
    assert_int_equal(fdl_registry_policy_put(reg, "device-default",
                                             "allow publish telemetry/${device}; allow subscribe commands/${device}",
                                             1),
                     FDL_REG_OK);
}

/* Runs one query on a raw connection and returns the first column as text. */
static void raw_query(const char *path, const char *sql, char *out, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    int rc = sqlite3_step(s);
    out[0] = '\0';
    if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* Runs a statement on a raw connection and returns its sqlite result code. */
static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* Every step of the query plan is a SEARCH (an index), none a SCAN. */
static void assert_plan_searches(const char *path, const char *query)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    char sql[512];
    int rows = 0;
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", query);
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    while (sqlite3_step(s) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(s, 3);
        assert_non_null(detail);
        if (strncmp(detail, "SEARCH", 6) != 0)
            fail_msg("plan of [%s]: %s", query, detail);
        rows++;
    }
    assert_true(rows > 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
}

/* ---------------------------------------------------------------------------------------- */
/* Open, schema.                                                                              */

static void open_creates_schema(void **state)
{
    fx *f = *state;
    char v[64];
    raw_query(f->path, "PRAGMA user_version", v, sizeof v);
    assert_int_equal(atoi(v), FDL_REG_SCHEMA_VERSION);
    raw_query(f->path, "PRAGMA journal_mode", v, sizeof v);
    assert_string_equal(v, "wal");
    raw_query(f->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
                       "('cas', 'certificates', 'devices', 'policies', 'events')", v, sizeof v);
    assert_string_equal(v, "5");
    /* The hot lookups are index searches, never scans. */
    assert_plan_searches(f->path, "SELECT c.status, d.policy FROM certificates c LEFT JOIN devices d"
                                  " ON d.id = c.device_id WHERE c.fingerprint = 'x'");
    assert_plan_searches(f->path, "SELECT fingerprint FROM certificates WHERE device_id = 'd'");
    assert_plan_searches(f->path, "SELECT serial FROM certificates WHERE ca_id = 1 AND status = 'REVOKED'");

    /* Reopening is idempotent; a newer schema is refused and left alone. */
    fdl_registry *again = NULL;
    assert_int_equal(fdl_registry_open(f->path, NULL, &again), FDL_REG_OK);
    fdl_registry_free(again);
    assert_int_equal(raw_exec(f->path, "PRAGMA user_version = 99"), SQLITE_OK);
    assert_int_equal(fdl_registry_open(f->path, NULL, &again), FDL_REG_ERR_SCHEMA);
    assert_null(again);
    raw_query(f->path, "PRAGMA user_version", v, sizeof v);
    assert_string_equal(v, "99");
}

/* ---------------------------------------------------------------------------------------- */
/* State machine.                                                                             */

static void transitions_allowed(void **state)
{
    fx *f = *state;
    tcert a, b;
    policy(f->reg);
    record(f->reg, &a, 1, "dev-1", 0);
    assert_int_equal(fdl_registry_cert_activate(f->reg, a.fp, "device-default", "jitr ok"), FDL_REG_OK);
    fdl_reg_cert_info info;
    assert_int_equal(fdl_registry_cert_status(f->reg, a.fp, &info), FDL_REG_OK);
    assert_int_equal(info.state, FDL_REG_CERT_ACTIVE);
    assert_string_equal(info.device_id, "dev-1");
    assert_string_equal(info.policy, "device-default");
    assert_string_equal(info.serial, "00000002");
    assert_int_equal(info.not_before, 1700000000);
    assert_int_equal(fdl_registry_cert_revoke(f->reg, a.fp, "stolen"), FDL_REG_OK);
    assert_int_equal(state_of(f->reg, a.fp), FDL_REG_CERT_REVOKED);

    record(f->reg, &b, 2, "dev-2", 0);
    assert_int_equal(fdl_registry_cert_reject(f->reg, b.fp, "not sold"), FDL_REG_OK);
    assert_int_equal(state_of(f->reg, b.fp), FDL_REG_CERT_REVOKED);
    assert_int_equal(fdl_registry_check(f->reg, NULL), FDL_REG_OK);
}

enum { OP_ACTIVATE, OP_REJECT, OP_REVOKE, OP_COUNT };

static fdl_reg_status do_op(fdl_registry *reg, int op, const char *fp)
{
    switch (op) {
    case OP_ACTIVATE:
        return fdl_registry_cert_activate(reg, fp, "device-default", NULL);
    case OP_REJECT:
        return fdl_registry_cert_reject(reg, fp, NULL);
    default:
        return fdl_registry_cert_revoke(reg, fp, NULL);
    }
}

/* Every (state, operation) pair: allowed ones move, the rest are TRANSITION and change nothing. */
static void transitions_table(void **state)
{
    fx *f = *state;
    static const struct {
        fdl_reg_cert_state from;
        fdl_reg_status expect[OP_COUNT];
        fdl_reg_cert_state to[OP_COUNT];
    } table[] = {
        {FDL_REG_CERT_PENDING,
         {FDL_REG_OK, FDL_REG_OK, FDL_REG_ERR_TRANSITION},
         {FDL_REG_CERT_ACTIVE, FDL_REG_CERT_REVOKED, FDL_REG_CERT_PENDING}},
        {FDL_REG_CERT_ACTIVE,
         {FDL_REG_ERR_TRANSITION, FDL_REG_ERR_TRANSITION, FDL_REG_OK},
         {FDL_REG_CERT_ACTIVE, FDL_REG_CERT_ACTIVE, FDL_REG_CERT_REVOKED}},
        {FDL_REG_CERT_REVOKED,
         {FDL_REG_ERR_TRANSITION, FDL_REG_ERR_TRANSITION, FDL_REG_ERR_TRANSITION},
         {FDL_REG_CERT_REVOKED, FDL_REG_CERT_REVOKED, FDL_REG_CERT_REVOKED}},
    };
    int i = 100;
    policy(f->reg);
    for (size_t r = 0; r < sizeof table / sizeof table[0]; r++) {
        for (int op = 0; op < OP_COUNT; op++, i++) {
            tcert c;
            char dev[16];
            snprintf(dev, sizeof dev, "dev-%d", i);
            record(f->reg, &c, i, dev, 0);
            if (table[r].from == FDL_REG_CERT_ACTIVE || table[r].from == FDL_REG_CERT_REVOKED)
                assert_int_equal(fdl_registry_cert_activate(f->reg, c.fp, "device-default", NULL), FDL_REG_OK);
            if (table[r].from == FDL_REG_CERT_REVOKED)
                assert_int_equal(fdl_registry_cert_revoke(f->reg, c.fp, NULL), FDL_REG_OK);
            size_t before = n_events(f->reg, NULL);
            assert_int_equal(do_op(f->reg, op, c.fp), table[r].expect[op]);
            assert_int_equal(state_of(f->reg, c.fp), table[r].to[op]);
            if (table[r].expect[op] != FDL_REG_OK) {
                assert_int_equal(n_events(f->reg, NULL), before);
                assert_non_null(strstr(fdl_registry_last_error(f->reg), "refused"));
            } else {
                assert_true(n_events(f->reg, NULL) > before);
            }
        }
    }
    /* Unknown certificate: NOT_FOUND, not TRANSITION. */
    char unknown[FDL_REG_FP_HEX_LEN + 1];
    fp_of(99999, unknown);
    for (int op = 0; op < OP_COUNT; op++)
        assert_int_equal(do_op(f->reg, op, unknown), FDL_REG_ERR_NOT_FOUND);
    fdl_reg_cert_info info;
    assert_int_equal(fdl_registry_cert_status(f->reg, unknown, &info), FDL_REG_ERR_NOT_FOUND);

    /* The file enforces the same rules: REVOKED cannot be resurrected by hand. */
    char sql[256];
    tcert c;
    tcert_make(&c, 100 + 2 * OP_COUNT, "x", 0); /* a REVOKED one from the table */
    snprintf(sql, sizeof sql, "UPDATE certificates SET status = 'ACTIVE' WHERE fingerprint = '%s'", c.fp);
    assert_int_equal(raw_exec(f->path, sql), SQLITE_CONSTRAINT);
    assert_int_equal(state_of(f->reg, c.fp), FDL_REG_CERT_REVOKED);
    assert_int_equal(fdl_registry_check(f->reg, NULL), FDL_REG_OK);
}

static void activate_needs_policy(void **state)
{
    fx *f = *state;
    tcert c;
    record(f->reg, &c, 1, "dev-1", 0);
    assert_int_equal(fdl_registry_cert_activate(f->reg, c.fp, "no-such-policy", NULL), FDL_REG_ERR_NOT_FOUND);
    assert_int_equal(state_of(f->reg, c.fp), FDL_REG_CERT_PENDING);
    assert_int_equal(fdl_registry_cert_activate(f->reg, c.fp, NULL, NULL), FDL_REG_ERR_ARG);
    assert_int_equal(state_of(f->reg, c.fp), FDL_REG_CERT_PENDING);
}

/* ---------------------------------------------------------------------------------------- */
/* Recording.                                                                                 */

static void record_idempotent(void **state)
{
    fx *f = *state;
    tcert c;
    fdl_reg_cert_state s = 0;
    policy(f->reg);
    record(f->reg, &c, 1, "dev-1", 0);
    size_t ev = n_events(f->reg, NULL);
    assert_int_equal(fdl_registry_cert_record(f->reg, &c.rec, &s), FDL_REG_OK);
    assert_int_equal(s, FDL_REG_CERT_PENDING);
    assert_int_equal(n_events(f->reg, NULL), ev);

    /* Seen again after activation: stays ACTIVE, reports it. */
    assert_int_equal(fdl_registry_cert_activate(f->reg, c.fp, "device-default", NULL), FDL_REG_OK);
    ev = n_events(f->reg, NULL);
    assert_int_equal(fdl_registry_cert_record(f->reg, &c.rec, &s), FDL_REG_OK);
    assert_int_equal(s, FDL_REG_CERT_ACTIVE);
    assert_int_equal(n_events(f->reg, NULL), ev);

    /* Uppercase hex is the same certificate. */
    char upper[FDL_REG_FP_HEX_LEN + 1];
    for (int i = 0; i <= FDL_REG_FP_HEX_LEN; i++)
        upper[i] = (char)((c.fp[i] >= 'a' && c.fp[i] <= 'f') ? c.fp[i] - 32 : c.fp[i]);
    fdl_reg_cert_rec r = c.rec;
    r.fingerprint = upper;
    assert_int_equal(fdl_registry_cert_record(f->reg, &r, &s), FDL_REG_OK);
    assert_int_equal(state_of(f->reg, upper), FDL_REG_CERT_ACTIVE);

    /* Same fingerprint, different content: a conflict, nothing changes. */
    r = c.rec;
    r.device_id = "dev-other";
    assert_int_equal(fdl_registry_cert_record(f->reg, &r, &s), FDL_REG_ERR_CONFLICT);
    r = c.rec;
    r.serial = "ff";
    assert_int_equal(fdl_registry_cert_record(f->reg, &r, &s), FDL_REG_ERR_CONFLICT);
    assert_int_equal(n_events(f->reg, NULL), ev);
    fdl_reg_device d;
    assert_int_equal(fdl_registry_device_get(f->reg, "dev-other", &d), FDL_REG_ERR_NOT_FOUND);
}

static void record_batch_all_or_nothing(void **state)
{
    fx *f = *state;
    enum { N = 200 };
    static tcert certs[N];
    static fdl_reg_cert_rec recs[N];
    size_t n_new = 99, failed = 99;
    for (int i = 0; i < N; i++) {
        char dev[16];
        snprintf(dev, sizeof dev, "dev-%d", i / 2); /* two certificates per device */
        tcert_make(&certs[i], i, dev, 0);
        recs[i] = certs[i].rec;
    }
    assert_int_equal(fdl_registry_cert_record_batch(f->reg, recs, N / 2, &n_new, &failed), FDL_REG_OK);
    assert_int_equal(n_new, N / 2);
    /* A bad record at 150: the whole call is rolled back, the first half included. */
    recs[150].fingerprint = "not-hex";
    assert_int_equal(fdl_registry_cert_record_batch(f->reg, recs, N, &n_new, &failed), FDL_REG_ERR_ARG);
    assert_int_equal(failed, 150);
    assert_int_equal(n_new, 0);
    fdl_reg_cert_info info;
    assert_int_equal(fdl_registry_cert_status(f->reg, certs[120].fp, &info), FDL_REG_ERR_NOT_FOUND);
    recs[150] = certs[150].rec;
    assert_int_equal(fdl_registry_cert_record_batch(f->reg, recs, N, &n_new, &failed), FDL_REG_OK);
    assert_int_equal(n_new, N / 2); /* the first half was known already */
    assert_int_equal(state_of(f->reg, certs[199].fp), FDL_REG_CERT_PENDING);
    assert_int_equal(fdl_registry_cert_record_batch(f->reg, recs, 0, NULL, NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_cert_record_batch(f->reg, recs, FDL_REG_BATCH_MAX + 1, NULL, NULL),
                     FDL_REG_ERR_ARG);
    /* 200 certificates + 100 devices, one event each. */
    assert_int_equal(n_events(f->reg, NULL), N + N / 2);
    assert_int_equal(fdl_registry_check(f->reg, NULL), FDL_REG_OK);
}

/* ---------------------------------------------------------------------------------------- */
/* Revocation by device and by CA.                                                            */

typedef struct cert_list {
    int n;
    char fp[8][FDL_REG_FP_HEX_LEN + 1];
    fdl_reg_cert_state st[8];
} cert_list;

static int list_cb(void *ctx, const char *fp, const fdl_reg_cert_info *info)
{
    cert_list *l = ctx;
    if (l->n < 8) {
        snprintf(l->fp[l->n], sizeof l->fp[0], "%s", fp);
        l->st[l->n] = info->state;
    }
    l->n++;
    return 0;
}

static void device_revoke_all(void **state)
{
    fx *f = *state;
    tcert a, b, c, other;
    size_t n = 99;
    policy(f->reg);
    record(f->reg, &a, 1, "dev-1", 0);
    record(f->reg, &b, 2, "dev-1", 0);
    record(f->reg, &c, 3, "dev-1", 0);
    record(f->reg, &other, 4, "dev-2", 0);
    assert_int_equal(fdl_registry_cert_activate(f->reg, a.fp, "device-default", NULL), FDL_REG_OK);
    assert_int_equal(fdl_registry_cert_activate(f->reg, b.fp, "device-default", NULL), FDL_REG_OK);
    assert_int_equal(fdl_registry_cert_activate(f->reg, other.fp, "device-default", NULL), FDL_REG_OK);

    cert_list l = {0};
    assert_int_equal(fdl_registry_device_certs(f->reg, "dev-1", list_cb, &l), FDL_REG_OK);
    assert_int_equal(l.n, 3);

    assert_int_equal(fdl_registry_device_revoke(f->reg, "dev-1", "lost", &n), FDL_REG_OK);
    assert_int_equal(n, 3);
    memset(&l, 0, sizeof l);
    assert_int_equal(fdl_registry_device_certs(f->reg, "dev-1", list_cb, &l), FDL_REG_OK);
    assert_int_equal(l.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(l.st[i], FDL_REG_CERT_REVOKED);
    assert_int_equal(state_of(f->reg, other.fp), FDL_REG_CERT_ACTIVE);

    /* The pending one was rejected (old state PENDING in its event), the rest revoked. */
    assert_int_equal(n_events(f->reg, c.fp), 2);
    assert_int_equal(fdl_registry_device_revoke(f->reg, "dev-1", "again", &n), FDL_REG_OK);
    assert_int_equal(n, 0);
    assert_int_equal(fdl_registry_device_revoke(f->reg, "dev-nobody", NULL, &n), FDL_REG_ERR_NOT_FOUND);
    assert_int_equal(fdl_registry_check(f->reg, NULL), FDL_REG_OK);
}

typedef struct serials {
    int n;
    char s[8][FDL_REG_SERIAL_HEX_MAX + 1];
} serials;

static int serial_cb(void *ctx, const char *serial, int64_t at)
{
    serials *l = ctx;
    assert_true(at > 1600000000);
    if (l->n < 8)
        snprintf(l->s[l->n], sizeof l->s[0], "%s", serial);
    l->n++;
    return 0;
}

static void ca_revoke_counts(void **state)
{
    fx *f = *state;
    int64_t root = 0, inter = 0, again = 0;
    tcert c[6];
    size_t n = 99;
    policy(f->reg);
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_root, "factory", &root), FDL_REG_OK);
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_inter, "issuing", &inter), FDL_REG_OK);
    assert_true(root > 0 && inter > 0 && root != inter);
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_inter, "issuing", &again), FDL_REG_OK);
    assert_int_equal(again, inter);

    /* inter: 2 active, 1 pending, 1 already revoked; root: 2 active. */
    for (int i = 0; i < 6; i++) {
        char dev[16];
        snprintf(dev, sizeof dev, "dev-%d", i);
        record(f->reg, &c[i], i, dev, i < 4 ? inter : root);
        if (i != 2)
            assert_int_equal(fdl_registry_cert_activate(f->reg, c[i].fp, "device-default", NULL), FDL_REG_OK);
    }
    assert_int_equal(fdl_registry_cert_revoke(f->reg, c[3].fp, "key compromise"), FDL_REG_OK);
    assert_int_equal(fdl_registry_ca_cert_count(f->reg, inter, &n), FDL_REG_OK);
    assert_int_equal(n, 3);
    assert_int_equal(fdl_registry_ca_cert_count(f->reg, root, &n), FDL_REG_OK);
    assert_int_equal(n, 2);
    assert_int_equal(fdl_registry_ca_cert_count(f->reg, 9999, &n), FDL_REG_ERR_NOT_FOUND);

    serials crl = {0};
    assert_int_equal(fdl_registry_crl_serials(f->reg, inter, serial_cb, &crl), FDL_REG_OK);
    assert_int_equal(crl.n, 1);
    assert_string_equal(crl.s[0], c[3].serial);

    assert_int_equal(fdl_registry_ca_revoke(f->reg, inter, "intermediate key leaked", &n), FDL_REG_OK);
    assert_int_equal(n, 3);
    for (int i = 0; i < 4; i++)
        assert_int_equal(state_of(f->reg, c[i].fp), FDL_REG_CERT_REVOKED);
    for (int i = 4; i < 6; i++)
        assert_int_equal(state_of(f->reg, c[i].fp), FDL_REG_CERT_ACTIVE);
    memset(&crl, 0, sizeof crl);
    assert_int_equal(fdl_registry_crl_serials(f->reg, inter, serial_cb, &crl), FDL_REG_OK);
    assert_int_equal(crl.n, 4);
    assert_int_equal(fdl_registry_ca_cert_count(f->reg, inter, &n), FDL_REG_OK);
    assert_int_equal(n, 0);

    /* Terminal: no second revocation, no re-registration, no new certificates under it. */
    assert_int_equal(fdl_registry_ca_revoke(f->reg, inter, NULL, &n), FDL_REG_ERR_TRANSITION);
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_inter, "issuing", &again), FDL_REG_ERR_CA_REVOKED);
    tcert late;
    tcert_make(&late, 50, "dev-late", inter);
    assert_int_equal(fdl_registry_cert_record(f->reg, &late.rec, NULL), FDL_REG_ERR_CA_REVOKED);
    tcert_make(&late, 51, "dev-late", 4242);
    assert_int_equal(fdl_registry_cert_record(f->reg, &late.rec, NULL), FDL_REG_ERR_NOT_FOUND);
    assert_int_equal(fdl_registry_ca_revoke(f->reg, 4242, NULL, &n), FDL_REG_ERR_NOT_FOUND);

    char fp[FDL_REG_FP_HEX_LEN + 1];
    fdl_reg_ca_state cs = 0;
    int64_t id = 0;
    assert_int_equal(fdl_registry_fingerprint(g_inter.raw.p, g_inter.raw.len, fp), FDL_REG_OK);
    assert_int_equal(fdl_registry_ca_find(f->reg, fp, &id, &cs), FDL_REG_OK);
    assert_int_equal(id, inter);
    assert_int_equal(cs, FDL_REG_CA_REVOKED);
    assert_int_equal(fdl_registry_check(f->reg, NULL), FDL_REG_OK);
}

/* ---------------------------------------------------------------------------------------- */
/* Audit log.                                                                                 */

typedef struct ev_list {
    int n;
    char line[16][400];
} ev_list;

static int ev_cb(void *ctx, const fdl_reg_event *ev)
{
    ev_list *l = ctx;
    assert_true(ev->id > 0 && ev->at_ms > 1600000000000LL);
    if (l->n < 16)
        snprintf(l->line[l->n], sizeof l->line[0], "%s %s %.8s %s->%s %s", ev->actor, ev->kind, ev->object,
                 ev->old_state, ev->new_state, ev->reason);
    l->n++;
    return 0;
}

static void events_log_content(void **state)
{
    fx *f = *state;
    tcert c;
    ev_list l = {0};
    policy(f->reg);
    record(f->reg, &c, 7, "dev-7", 0);
    assert_int_equal(fdl_registry_cert_activate(f->reg, c.fp, "device-default", "rules passed"), FDL_REG_OK);
    assert_int_equal(fdl_registry_cert_revoke(f->reg, c.fp, "drill: stolen key"), FDL_REG_OK);

    assert_int_equal(fdl_registry_events(f->reg, c.fp, 0, ev_cb, &l), FDL_REG_OK);
    assert_int_equal(l.n, 3);
    char want[400];
    snprintf(want, sizeof want, "test-cli certificate %.8s ->PENDING first seen", c.fp);
    assert_string_equal(l.line[0], want);
    snprintf(want, sizeof want, "test-cli certificate %.8s PENDING->ACTIVE rules passed", c.fp);
    assert_string_equal(l.line[1], want);
    snprintf(want, sizeof want, "test-cli certificate %.8s ACTIVE->REVOKED drill: stolen key", c.fp);
    assert_string_equal(l.line[2], want);

    memset(&l, 0, sizeof l);
    assert_int_equal(fdl_registry_events(f->reg, "dev-7", 0, ev_cb, &l), FDL_REG_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.line[0],
                        "test-cli device dev-7 ->sold=0 recalled=0 firmware=- policy=- created");
    assert_string_equal(l.line[1], "test-cli device dev-7 sold=0 recalled=0 firmware=- policy=-->"
                                   "sold=0 recalled=0 firmware=- policy=device-default policy on activation");

    /* Whole log: policy, device, certificate x3, device policy; paging by id works. */
    memset(&l, 0, sizeof l);
    assert_int_equal(fdl_registry_events(f->reg, NULL, 0, ev_cb, &l), FDL_REG_OK);
    assert_int_equal(l.n, 6);
    assert_non_null(strstr(l.line[0], "test-cli policy device-d ->per_device=1 sha256="));
    memset(&l, 0, sizeof l);
    assert_int_equal(fdl_registry_events(f->reg, NULL, 4, ev_cb, &l), FDL_REG_OK);
    assert_int_equal(l.n, 2);

    /* Append-only, in the file itself. */
    assert_int_equal(raw_exec(f->path, "DELETE FROM events"), SQLITE_CONSTRAINT);
    assert_int_equal(raw_exec(f->path, "UPDATE events SET reason = 'nothing happened'"), SQLITE_CONSTRAINT);
    assert_int_equal(n_events(f->reg, NULL), 6);

    /* A hand edit that skips the log is caught by the audit. */
    char sql[256];
    size_t mism = 0;
    record(f->reg, &c, 8, "dev-8", 0);
    snprintf(sql, sizeof sql, "UPDATE certificates SET status = 'ACTIVE' WHERE fingerprint = '%s'", c.fp);
    assert_int_equal(raw_exec(f->path, sql), SQLITE_OK);
    assert_int_equal(fdl_registry_check(f->reg, &mism), FDL_REG_ERR_CORRUPT);
    assert_int_equal(mism, 1);
}

static void policy_and_device_attrs(void **state)
{
    fx *f = *state;
    char buf[256];
    int per = -1;
    fdl_reg_device d = {.sold = 1, .recalled = 0, .firmware_version = "1.4.2"}, got;
    assert_int_equal(fdl_registry_policy_put(f->reg, "p1", "allow publish telemetry/${device}", 1), FDL_REG_OK);
    assert_int_equal(fdl_registry_policy_get(f->reg, "p1", buf, sizeof buf, &per), FDL_REG_OK);
    assert_string_equal(buf, "allow publish telemetry/${device}");
    assert_int_equal(per, 1);
    assert_int_equal(fdl_registry_policy_get(f->reg, "p1", buf, 5, &per), FDL_REG_ERR_SMALL);
    assert_int_equal(fdl_registry_policy_get(f->reg, "p2", buf, sizeof buf, &per), FDL_REG_ERR_NOT_FOUND);
    size_t ev = n_events(f->reg, "p1");
    assert_int_equal(fdl_registry_policy_put(f->reg, "p1", "allow publish telemetry/${device}", 1), FDL_REG_OK);
    assert_int_equal(n_events(f->reg, "p1"), ev); /* unchanged: no event */
    assert_int_equal(fdl_registry_policy_put(f->reg, "p1", "deny all", 0), FDL_REG_OK);
    assert_int_equal(n_events(f->reg, "p1"), ev + 1);

    assert_int_equal(fdl_registry_device_put(f->reg, "dev-9", &d), FDL_REG_OK);
    assert_int_equal(fdl_registry_device_get(f->reg, "dev-9", &got), FDL_REG_OK);
    assert_int_equal(got.sold, 1);
    assert_int_equal(got.recalled, 0);
    assert_string_equal(got.firmware_version, "1.4.2");
    assert_string_equal(got.policy, "");
    assert_true(got.created_at_ms > 0);
    d.recalled = 1;
    assert_int_equal(fdl_registry_device_put(f->reg, "dev-9", &d), FDL_REG_OK);
    assert_int_equal(fdl_registry_device_get(f->reg, "dev-9", &got), FDL_REG_OK);
    assert_int_equal(got.recalled, 1);
    assert_int_equal(n_events(f->reg, "dev-9"), 3); /* created, attributes, recalled */
    snprintf(d.firmware_version, sizeof d.firmware_version, "1.0\n");
    assert_int_equal(fdl_registry_device_put(f->reg, "dev-9", &d), FDL_REG_ERR_ARG);
}

/* ---------------------------------------------------------------------------------------- */
/* mbedTLS paths: a real leaf from the fleet CA.                                              */

static void x509_record(void **state)
{
    fx *f = *state;
    fdl_pki *pki = NULL;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_pk_context key;
    mbedtls_x509_crt leaf;
    unsigned char der[FDL_PKI_CERT_MAX];
    fdl_pki_issued issued;
    char fp[FDL_REG_FP_HEX_LEN + 1], want_fp[FDL_REG_FP_HEX_LEN + 1], serial_hex[2 * FDL_PKI_SERIAL_LEN + 1];
    fdl_reg_cert_state s = 0;
    int64_t inter = 0;

    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_pk_init(&key);
    mbedtls_x509_crt_init(&leaf);
    assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, (const unsigned char *)"r", 1), 0);
    assert_int_equal(mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
    assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), mbedtls_ctr_drbg_random, &drbg),
                     0);
    assert_int_equal(fdl_pki_open_soft(g_pki_dir, &pki), FDL_PKI_OK);
    fdl_pki_leaf_req req = {.device_id = "sensor-0042", .public_key = &key};
    assert_int_equal(fdl_pki_issue(pki, &req, FDL_PKI_DER, der, sizeof der, &issued), FDL_PKI_OK);
    assert_int_equal(mbedtls_x509_crt_parse_der(&leaf, der, issued.len), 0);

    /* Without its CA registered the issuer is unknown. */
    assert_int_equal(fdl_registry_cert_record_x509(f->reg, &leaf, 0, fp, &s), FDL_REG_ERR_NOT_FOUND);
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_inter, "issuing", &inter), FDL_REG_OK);
    assert_int_equal(fdl_registry_cert_record_x509(f->reg, &leaf, 0, fp, &s), FDL_REG_OK);
    assert_int_equal(s, FDL_REG_CERT_PENDING);
    assert_int_equal(fdl_registry_fingerprint(der, issued.len, want_fp), FDL_REG_OK);
    assert_string_equal(fp, want_fp);
    for (int i = 0; i < FDL_PKI_SERIAL_LEN; i++)
        snprintf(serial_hex + 2 * i, 3, "%02x", issued.serial[i]);

    fdl_reg_cert_info info;
    assert_int_equal(fdl_registry_cert_status(f->reg, fp, &info), FDL_REG_OK);
    assert_string_equal(info.device_id, "sensor-0042");
    assert_string_equal(info.serial, serial_hex);
    assert_int_equal(info.ca_id, inter);
    assert_int_equal(info.not_after - info.not_before, FDL_PKI_LEAF_DAYS * 86400);
    assert_true(info.not_before <= time(NULL));
    /* Idempotent with the CA given explicitly. */
    assert_int_equal(fdl_registry_cert_record_x509(f->reg, &leaf, inter, NULL, &s), FDL_REG_OK);

    /* A CA certificate's CN ("fleetdrill Root CA") is not a device id; a leaf is not a CA. */
    assert_int_equal(fdl_registry_cert_record_x509(f->reg, &g_root, 0, NULL, NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_ca_register(f->reg, &leaf, "issuing", NULL), FDL_REG_ERR_ARG);

    /* Known vector: SHA-256("abc"). */
    assert_int_equal(fdl_registry_fingerprint((const unsigned char *)"abc", 3, fp), FDL_REG_OK);
    assert_string_equal(fp, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

    fdl_pki_free(pki);
    mbedtls_x509_crt_free(&leaf);
    mbedtls_pk_free(&key);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
}

/* ---------------------------------------------------------------------------------------- */
/* Two handles: the broker reads while the CLI writes (same file, as two processes would).   */

static void two_handles_see_each_other(void **state)
{
    fx *f = *state;
    fdl_registry *broker = NULL, *cli = NULL;
    fdl_registry_opts bo = {.actor = "broker"}, co = {.actor = "cli", .busy_timeout_ms = 2000};
    tcert c;
    assert_int_equal(fdl_registry_open(f->path, &bo, &broker), FDL_REG_OK);
    assert_int_equal(fdl_registry_open(f->path, &co, &cli), FDL_REG_OK);
    policy(cli);

    /* The broker records on first sight and activates (JITR); the CLI sees it. */
    tcert_make(&c, 1, "dev-1", 0);
    assert_int_equal(fdl_registry_cert_record(broker, &c.rec, NULL), FDL_REG_OK);
    assert_int_equal(state_of(cli, c.fp), FDL_REG_CERT_PENDING);
    assert_int_equal(fdl_registry_cert_activate(broker, c.fp, "device-default", NULL), FDL_REG_OK);
    assert_int_equal(state_of(broker, c.fp), FDL_REG_CERT_ACTIVE); /* lookup statement now cached */
    assert_int_equal(state_of(cli, c.fp), FDL_REG_CERT_ACTIVE);

    /* The CLI revokes; the broker's very next lookup says so. */
    assert_int_equal(fdl_registry_cert_revoke(cli, c.fp, "one-button revoke"), FDL_REG_OK);
    assert_int_equal(state_of(broker, c.fp), FDL_REG_CERT_REVOKED);

    /* A writer holding the lock makes the other wait, then fail with BUSY, not hang. */
    fdl_registry_opts quick = {.actor = "impatient", .busy_timeout_ms = 50};
    fdl_registry *third = NULL;
    assert_int_equal(fdl_registry_open(f->path, &quick, &third), FDL_REG_OK);
    sqlite3 *holder = NULL;
    assert_int_equal(sqlite3_open(f->path, &holder), SQLITE_OK);
    assert_int_equal(sqlite3_exec(holder, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    tcert d;
    tcert_make(&d, 2, "dev-2", 0);
    assert_int_equal(fdl_registry_cert_record(third, &d.rec, NULL), FDL_REG_ERR_BUSY);
    assert_int_equal(state_of(third, c.fp), FDL_REG_CERT_REVOKED); /* reads still work (WAL) */
    assert_int_equal(sqlite3_exec(holder, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(holder);
    assert_int_equal(fdl_registry_cert_record(third, &d.rec, NULL), FDL_REG_OK);

    ev_list l = {0};
    assert_int_equal(fdl_registry_events(cli, c.fp, 0, ev_cb, &l), FDL_REG_OK);
    assert_int_equal(l.n, 3);
    assert_int_equal(strncmp(l.line[0], "broker ", 7), 0);
    assert_int_equal(strncmp(l.line[2], "cli ", 4), 0);
    fdl_registry_free(third);
    fdl_registry_free(broker);
    fdl_registry_free(cli);
}

/* ---------------------------------------------------------------------------------------- */
/* Crash consistency: SIGKILL a writer at random moments, then audit the file.                */

/* The child: transitions in a loop until killed. Never returns. */
static void crash_child(const char *path, int round)
{
    fdl_registry *reg = NULL;
    fdl_registry_opts o = {.actor = "crash-child"};
    if (fdl_registry_open(path, &o, &reg) != FDL_REG_OK)
        _exit(2);
    if (fdl_registry_policy_put(reg, "device-default", "allow", 1) != FDL_REG_OK)
        _exit(3);
    for (int i = 0;; i++) {
        tcert c;
        char dev[32];
        int id = round * 1000000 + i;
        snprintf(dev, sizeof dev, "dev-%d-%d", round, i / 3);
        tcert_make(&c, id, dev, 0);
        if (fdl_registry_cert_record(reg, &c.rec, NULL) != FDL_REG_OK)
            _exit(4);
        if (i % 5 == 4) {
            if (fdl_registry_cert_reject(reg, c.fp, "crash drill") != FDL_REG_OK)
                _exit(5);
            continue;
        }
        if (fdl_registry_cert_activate(reg, c.fp, "device-default", NULL) != FDL_REG_OK)
            _exit(6);
        if (i % 3 == 2 && fdl_registry_device_revoke(reg, dev, "crash drill", NULL) != FDL_REG_OK)
            _exit(7);
    }
}

static void crash_consistency(void **state)
{
    fx *f = *state;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    char v[64];
    /* The fixture's handle must not cross fork(): close it; the child opens its own. */
    fdl_registry_free(f->reg);
    f->reg = NULL;
    srand(seed);
    for (int round = 0; round < 4; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            crash_child(f->path, round);
        /* 30..300 ms: long enough for hundreds of commits, random enough to land anywhere. */
        usleep((useconds_t)(30000 + rand() % 270000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status))
            fail_msg("crash child exited early with %d (seed %u)", WEXITSTATUS(status), seed);
    }
    raw_query(f->path, "PRAGMA integrity_check", v, sizeof v);
    assert_string_equal(v, "ok");
    /* Every certificate's status equals the new_state of its last event. */
    raw_query(f->path,
              "SELECT count(*) FROM certificates c WHERE c.status IS NOT (SELECT e.new_state FROM events e"
              " WHERE e.kind = 'certificate' AND e.object = c.fingerprint ORDER BY e.id DESC LIMIT 1)",
              v, sizeof v);
    assert_string_equal(v, "0");
    /* ... and every event's certificate exists (no event without its change). */
    raw_query(f->path,
              "SELECT count(*) FROM events e WHERE e.kind = 'certificate' AND NOT EXISTS"
              " (SELECT 1 FROM certificates c WHERE c.fingerprint = e.object)",
              v, sizeof v);
    assert_string_equal(v, "0");
    raw_query(f->path, "SELECT count(*) FROM certificates", v, sizeof v);
    print_message("crash test: %s certificates over 4 kills (seed %u)\n", v, seed);
    assert_true(atoi(v) > 4);
    assert_int_equal(fdl_registry_open(f->path, NULL, &f->reg), FDL_REG_OK);
    assert_int_equal(fdl_registry_check(f->reg, NULL), FDL_REG_OK);
}

/* ---------------------------------------------------------------------------------------- */
/* Hostile and careless inputs.                                                               */

static void bad_inputs(void **state)
{
    fx *f = *state;
    fdl_reg_cert_info info;
    char fp[FDL_REG_FP_HEX_LEN + 1], long_id[FDL_REG_ID_MAX + 2], long_reason[FDL_REG_REASON_MAX + 2];
    tcert c;
    size_t n;
    policy(f->reg);
    record(f->reg, &c, 1, "dev-1", 0);
    size_t ev = n_events(f->reg, NULL);
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    memset(long_reason, 'r', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';

    /* Fingerprints: NULL, short, long, non-hex. */
    assert_int_equal(fdl_registry_cert_status(f->reg, NULL, &info), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_cert_status(f->reg, c.fp, NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_cert_status(NULL, c.fp, &info), FDL_REG_ERR_ARG);
    memcpy(fp, c.fp, sizeof fp);
    fp[63] = '\0';
    assert_int_equal(fdl_registry_cert_status(f->reg, fp, &info), FDL_REG_ERR_ARG);
    char fp65[66];
    snprintf(fp65, sizeof fp65, "%s0", c.fp);
    assert_int_equal(fdl_registry_cert_status(f->reg, fp65, &info), FDL_REG_ERR_ARG);
    memcpy(fp, c.fp, sizeof fp);
    fp[10] = 'g';
    assert_int_equal(fdl_registry_cert_status(f->reg, fp, &info), FDL_REG_ERR_ARG);
    fp[10] = '\'';
    assert_int_equal(fdl_registry_cert_activate(f->reg, fp, "device-default", NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_cert_revoke(f->reg, "", NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_cert_reject(f->reg, NULL, NULL), FDL_REG_ERR_ARG);

    /* Ids: too long, forbidden characters, empty. */
    tcert bad;
    tcert_make(&bad, 2, "x", 0);
    bad.rec.device_id = long_id;
    assert_int_equal(fdl_registry_cert_record(f->reg, &bad.rec, NULL), FDL_REG_ERR_ARG);
    bad.rec.device_id = "dev,CN=admin";
    assert_int_equal(fdl_registry_cert_record(f->reg, &bad.rec, NULL), FDL_REG_ERR_ARG);
    bad.rec.device_id = "";
    assert_int_equal(fdl_registry_cert_record(f->reg, &bad.rec, NULL), FDL_REG_ERR_ARG);
    bad.rec.device_id = NULL;
    assert_int_equal(fdl_registry_cert_record(f->reg, &bad.rec, NULL), FDL_REG_ERR_ARG);
    tcert_make(&bad, 2, "x", 0);
    bad.rec.serial = "12zz";
    assert_int_equal(fdl_registry_cert_record(f->reg, &bad.rec, NULL), FDL_REG_ERR_ARG);
    bad.rec.serial = "12";
    bad.rec.not_after = bad.rec.not_before - 1;
    assert_int_equal(fdl_registry_cert_record(f->reg, &bad.rec, NULL), FDL_REG_ERR_ARG);
    bad.rec.not_after = bad.rec.not_before;
    bad.rec.ca_id = -1;
    assert_int_equal(fdl_registry_cert_record(f->reg, &bad.rec, NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_cert_record(f->reg, NULL, NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_device_revoke(f->reg, long_id, NULL, &n), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_device_revoke(f->reg, "dev-1", long_reason, &n), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_cert_activate(f->reg, c.fp, "device default", NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_cert_activate(f->reg, c.fp, "device-default", "two\nlines"), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_policy_put(f->reg, long_id, "x", 0), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_policy_put(f->reg, "p", "", 0), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_policy_put(f->reg, "p", NULL, 0), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_device_certs(f->reg, "dev-1", NULL, NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_ca_revoke(f->reg, 0, NULL, &n), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_inter, "", NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_ca_register(f->reg, NULL, "issuing", NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_events(f->reg, NULL, 0, NULL, NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_fingerprint(NULL, 3, fp), FDL_REG_ERR_ARG);

    /* Open: NULL path or out, a bad actor, a path that cannot be opened. */
    fdl_registry *r = NULL;
    fdl_registry_opts o = {.actor = "has space"};
    assert_int_equal(fdl_registry_open(NULL, NULL, &r), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_open(f->path, NULL, NULL), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_open(f->path, &o, &r), FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_open("/nonexistent-dir/x/registry.db", NULL, &r), FDL_REG_ERR_DB);
    assert_null(r);
    assert_int_equal(fdl_registry_open(":memory:", NULL, &r), FDL_REG_ERR_DB); /* no WAL, refused */
    assert_null(r);

    /* Nothing above wrote anything. */
    assert_int_equal(n_events(f->reg, NULL), ev);
    assert_int_equal(state_of(f->reg, c.fp), FDL_REG_CERT_PENDING);
    fdl_registry_free(NULL);

    /* Every status has a message; states have names. */
    for (int s = FDL_REG_OK; s <= FDL_REG_ERR_SMALL; s++)
        assert_string_not_equal(fdl_reg_strerror((fdl_reg_status)s), "unknown registry status");
    assert_string_equal(fdl_reg_strerror((fdl_reg_status)999), "unknown registry status");
    assert_string_equal(fdl_reg_cert_state_name(FDL_REG_CERT_ACTIVE), "ACTIVE");
    assert_string_equal(fdl_reg_cert_state_name((fdl_reg_cert_state)0), "?");
}

/* ---------------------------------------------------------------------------------------- */
/* Allocation failures: each allocation the registry makes fails in turn, without leaks.     */

static void alloc_failures(void **state)
{
    fx *f = *state;
    fdl_alloc_stats a = fdl_alloc_get_stats();
    int64_t id = 0;
    for (uint64_t nth = 1;; nth++) {
        fdl_registry *r = NULL;
        fdl_alloc_fail_nth(nth);
        fdl_reg_status st = fdl_registry_open(f->path, NULL, &r);
        fdl_alloc_fail_nth(0);
        if (st == FDL_REG_OK) {
            fdl_registry_free(r);
            break;
        }
        assert_int_equal(st, FDL_REG_ERR_NOMEM);
        assert_null(r);
        assert_true(nth < 10);
    }
    fdl_alloc_fail_nth(1); /* the PEM buffer */
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_inter, "issuing", &id), FDL_REG_ERR_NOMEM);
    fdl_alloc_fail_nth(0);
    char fp[FDL_REG_FP_HEX_LEN + 1];
    assert_int_equal(fdl_registry_fingerprint(g_inter.raw.p, g_inter.raw.len, fp), FDL_REG_OK);
    assert_int_equal(fdl_registry_ca_find(f->reg, fp, &id, NULL), FDL_REG_ERR_NOT_FOUND);
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_inter, "issuing", &id), FDL_REG_OK);
    fdl_alloc_stats b = fdl_alloc_get_stats();
    assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
}

/* ---------------------------------------------------------------------------------------- */
/* Schema v2: services, device policy, sessions, counters, migration.                          */

static void v2_policy_and_service(void **state)
{
    fx *f = *state;
    fdl_reg_device d = {.sold = 1, .service = 1}, got;
    assert_int_equal(fdl_registry_device_put(f->reg, "svc-ingest", &d), FDL_REG_OK);
    assert_int_equal(fdl_registry_device_get(f->reg, "svc-ingest", &got), FDL_REG_OK);
    assert_int_equal(got.service, 1);
    assert_string_equal(got.policy, "");
    /* A policy that does not exist is refused and nothing changes. */
    assert_int_equal(fdl_registry_device_set_policy(f->reg, "svc-ingest", "nope", NULL), FDL_REG_ERR_NOT_FOUND);
    assert_int_equal(fdl_registry_policy_put(f->reg, "deny-all", "# nothing\n", 0), FDL_REG_OK);
    assert_int_equal(fdl_registry_device_set_policy(f->reg, "svc-ingest", "deny-all", "revoked by operator"),
                     FDL_REG_OK);
    assert_int_equal(fdl_registry_device_get(f->reg, "svc-ingest", &got), FDL_REG_OK);
    assert_string_equal(got.policy, "deny-all");
    assert_int_equal(got.service, 1);
    assert_int_equal(fdl_registry_device_set_policy(f->reg, "svc-ingest", "", NULL), FDL_REG_OK);
    assert_int_equal(fdl_registry_device_get(f->reg, "svc-ingest", &got), FDL_REG_OK);
    assert_string_equal(got.policy, "");
    assert_int_equal(fdl_registry_device_set_policy(f->reg, "no-such-device", "deny-all", NULL),
                     FDL_REG_ERR_NOT_FOUND);
    assert_int_equal(fdl_registry_device_set_policy(f->reg, "svc-ingest", "bad/name", NULL), FDL_REG_ERR_ARG);
    char v[64];
    raw_query(f->path, "SELECT count(*) FROM events WHERE object = 'svc-ingest' AND reason = 'revoked by operator'",
              v, sizeof v);
    assert_string_equal(v, "1");
}

static void v2_sessions(void **state)
{
    fx *f = *state;
    char fp[FDL_REG_FP_HEX_LEN + 1], v[64];
    fp_of(1, fp);
    fdl_reg_session s[3] = {
        {.id = 10, .open = 1, .at_ms = 1000, .fingerprint = fp, .device_id = "dev-1", .client_id = "c/1+#",
         .address = "127.0.0.1"},
        {.id = 11, .open = 1, .at_ms = 1001, .fingerprint = fp, .device_id = "dev-1", .client_id = "other",
         .address = "127.0.0.2"},
        {.id = 10, .open = 0, .at_ms = 2000},
    };
    assert_int_equal(fdl_registry_sessions_apply(f->reg, s, 3), FDL_REG_OK);
    raw_query(f->path, "SELECT count(*) FROM sessions WHERE disconnected_ms IS NULL", v, sizeof v);
    assert_string_equal(v, "1");
    raw_query(f->path, "SELECT client_id FROM sessions WHERE id = 10", v, sizeof v);
    assert_string_equal(v, "c/1+#");
    /* Applying the same batch again changes nothing (ids are the broker's). */
    assert_int_equal(fdl_registry_sessions_apply(f->reg, s, 3), FDL_REG_OK);
    raw_query(f->path, "SELECT count(*) FROM sessions", v, sizeof v);
    assert_string_equal(v, "2");
    /* A bad record fails the whole batch. */
    fdl_reg_session bad[2] = {{.id = 12, .open = 1, .at_ms = 1, .fingerprint = fp, .device_id = "dev-2",
                               .client_id = "x", .address = "a"},
                              {.id = 13, .open = 1, .at_ms = 1, .fingerprint = "short", .device_id = "dev-2",
                               .client_id = "x", .address = "a"}};
    assert_int_equal(fdl_registry_sessions_apply(f->reg, bad, 2), FDL_REG_ERR_ARG);
    raw_query(f->path, "SELECT count(*) FROM sessions", v, sizeof v);
    assert_string_equal(v, "2");
    size_t n = 0;
    assert_int_equal(fdl_registry_sessions_close_all(f->reg, 3000, &n), FDL_REG_OK);
    assert_int_equal(n, 1);
    raw_query(f->path, "SELECT disconnected_ms FROM sessions WHERE id = 11", v, sizeof v);
    assert_string_equal(v, "3000");
    assert_plan_searches(f->path, "SELECT id FROM sessions WHERE fingerprint = 'x' AND disconnected_ms IS NULL");
}

static void v2_counters(void **state)
{
    fx *f = *state;
    fdl_reg_counters c;
    assert_int_equal(fdl_registry_counters_get(f->reg, "dev-1", &c), FDL_REG_OK);
    assert_int_equal(c.denied_publish + c.denied_subscribe + c.bad_payload + c.refused_connect, 0);
    const char *ids[2] = {"dev-1", "dev-2"};
    fdl_reg_counters d[2] = {{.denied_publish = 2, .denied_subscribe = 1}, {.bad_payload = 5, .refused_connect = 1}};
    assert_int_equal(fdl_registry_counters_add(f->reg, ids, d, 2), FDL_REG_OK);
    assert_int_equal(fdl_registry_counters_add(f->reg, ids, d, 2), FDL_REG_OK);
    assert_int_equal(fdl_registry_counters_get(f->reg, "dev-1", &c), FDL_REG_OK);
    assert_int_equal(c.denied_publish, 4);
    assert_int_equal(c.denied_subscribe, 2);
    assert_true(c.updated_ms > 0);
    assert_int_equal(fdl_registry_counters_get(f->reg, "dev-2", &c), FDL_REG_OK);
    assert_int_equal(c.bad_payload, 10);
    assert_int_equal(c.refused_connect, 2);
    const char *badids[1] = {""};
    assert_int_equal(fdl_registry_counters_add(f->reg, badids, d, 1), FDL_REG_ERR_ARG);
}

/* A file written by schema v1 is migrated in place and keeps its rows. */
static void v2_migrates_v1(void **state)
{
    fx *f = *state;
    char path[400], v[64];
    snprintf(path, sizeof path, "%s/v1.db", f->dir);
    /* Make a v1 file: a current one with the v2 (and later) additions taken out again. */
    fdl_registry *r = NULL;
    assert_int_equal(fdl_registry_open(path, NULL, &r), FDL_REG_OK);
    fdl_reg_device d = {.sold = 1};
    assert_int_equal(fdl_registry_device_put(r, "old-dev", &d), FDL_REG_OK);
    fdl_registry_free(r);
    r = NULL;
    assert_int_equal(raw_exec(path, "DROP TABLE ota_reports; DROP TABLE ota_documents; DROP TABLE ota_status;"
                                    " DROP TABLE ota_jobs; DROP TABLE sessions; DROP TABLE device_counters;"
                                    " ALTER TABLE devices DROP COLUMN kind;"
                                    " ALTER TABLE certificates DROP COLUMN subject; PRAGMA user_version = 1;"),
                     SQLITE_OK);
    raw_query(path, "SELECT count(*) FROM sqlite_master WHERE name = 'sessions'", v, sizeof v);
    assert_string_equal(v, "0");
    assert_int_equal(fdl_registry_open(path, NULL, &r), FDL_REG_OK);
    fdl_reg_device got;
    assert_int_equal(fdl_registry_device_get(r, "old-dev", &got), FDL_REG_OK);
    assert_int_equal(got.service, 0);
    assert_int_equal(got.sold, 1);
    fdl_registry_free(r);
    raw_query(path, "PRAGMA user_version", v, sizeof v);
    assert_int_equal(atoi(v), FDL_REG_SCHEMA_VERSION);
    raw_query(path, "SELECT count(*) FROM sessions", v, sizeof v);
    assert_string_equal(v, "0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_creates_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(v2_policy_and_service, setup, teardown),
        cmocka_unit_test_setup_teardown(v2_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(v2_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(v2_migrates_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(transitions_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(transitions_table, setup, teardown),
        cmocka_unit_test_setup_teardown(activate_needs_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(record_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(record_batch_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(device_revoke_all, setup, teardown),
        cmocka_unit_test_setup_teardown(ca_revoke_counts, setup, teardown),
        cmocka_unit_test_setup_teardown(events_log_content, setup, teardown),
        cmocka_unit_test_setup_teardown(policy_and_device_attrs, setup, teardown),
        cmocka_unit_test_setup_teardown(x509_record, setup, teardown),
        cmocka_unit_test_setup_teardown(two_handles_see_each_other, setup, teardown),
        cmocka_unit_test_setup_teardown(crash_consistency, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
