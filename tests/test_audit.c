/* tests/test_audit.c — the registry audit: each check fires with its severity and stays quiet on the clean case; the CLI. */
#include "testutil.h"

#include "cloud/audit.h"
#include "cloud/json.h"
#include "cloud/pki.h"
#include "cloud/policy.h"
#include "cloud/registry.h"
#include "sim/alloc.h"
#include "sim/cli.h"
#include "fdl_buildcfg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mbedtls/x509_crt.h>

#define DAY 86400
/* A fixed "now" for every test that does not need the real clock: 2026-01-01T00:00:00Z. */
#define NOW INT64_C(1767225600)

/* ---------------------------------------------------------------------------------------- */
/* Fixtures: a fresh registry per test; one software PKI for the group (real CA certificates */
/* for ca-expiring).                                                                          */

typedef struct fx {
    char dir[256];
    char path[300];
    fdl_registry *reg;
    fdl_audit_report *rep;
} fx;

static char g_pki_dir[256];
static mbedtls_x509_crt g_root, g_inter;

static int group_setup(void **state)
{
    (void)state;
    char p[400];
    fdl_test_mkdtemp("audit-pki", g_pki_dir, sizeof g_pki_dir);
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
    fdl_test_mkdtemp("audit", f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/registry.db", f->dir);
    fdl_registry_opts o = {.actor = "test"};
    if (fdl_registry_open(f->path, &o, &f->reg) != FDL_REG_OK)
        return -1;
    /* Every test starts from the fleet's normal policy. */
    if (fdl_registry_policy_put(f->reg, "device-default", FDL_POLICY_DEFAULT_DEVICE, 1) != FDL_REG_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fdl_audit_report_free(f->rep);
    fdl_registry_free(f->reg);
    fdl_test_rmrf(f->dir);
    free(f);
    return 0;
}

static void dump(const fdl_audit_report *r);

/* Runs the audit at `now` (replacing the previous report) with max findings `max` (0 = default). */
static const fdl_audit_report *audit_max(fx *f, int64_t now, size_t max)
{
    fdl_audit_report_free(f->rep);
    f->rep = NULL;
    fdl_audit_opts o = {.now = now, .max_findings = max};
    char err[256];
    fdl_audit_status st = fdl_audit_run(f->reg, &o, &f->rep, err, sizeof err);
    if (st != FDL_AUDIT_OK)
        fail_msg("audit: %s (%s)", fdl_audit_strerror(st), err);
    assert_non_null(f->rep);
    assert_int_equal(f->rep->now, now);
    if (getenv("FDL_TEST_VERBOSE"))
        dump(f->rep);
    return f->rep;
}

static const fdl_audit_report *audit_at(fx *f, int64_t now)
{
    return audit_max(f, now, 0);
}

/* The finding of check on object, or NULL; fails if there are several. */
static const fdl_audit_finding *find(const fdl_audit_report *r, fdl_audit_check c, const char *object)
{
    const fdl_audit_finding *hit = NULL;
    for (size_t i = 0; i < r->n; i++) {
        if (r->findings[i].check == c && !strcmp(r->findings[i].object, object)) {
            if (hit)
                fail_msg("two %s findings on %s", fdl_audit_check_id(c), object);
            hit = &r->findings[i];
        }
    }
    return hit;
}

static size_t n_check(const fdl_audit_report *r, fdl_audit_check c)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->findings[i].check == c;
    return n;
}

static uint64_t total(const fdl_audit_report *r)
{
    uint64_t n = 0;
    for (int s = 0; s < FDL_AUDIT_SEVERITY_COUNT; s++)
        n += r->counts[s];
    return n;
}

static void dump(const fdl_audit_report *r)
{
    for (size_t i = 0; i < r->n; i++)
        print_message("  %s %s %s:%s %s\n", fdl_audit_severity_name(r->findings[i].severity),
                      fdl_audit_check_id(r->findings[i].check), r->findings[i].object_kind, r->findings[i].object,
                      r->findings[i].message);
}

static void expect(const fdl_audit_report *r, fdl_audit_check c, const char *object, fdl_audit_severity sev,
                   const char *needle)
{
    const fdl_audit_finding *f = find(r, c, object);
    if (!f) {
        dump(r);
        fail_msg("no %s finding on %s", fdl_audit_check_id(c), object);
    }
    if (f->severity != sev)
        fail_msg("%s on %s: severity %s, want %s (%s)", fdl_audit_check_id(c), object,
                 fdl_audit_severity_name(f->severity), fdl_audit_severity_name(sev), f->message);
    if (needle && !strstr(f->message, needle))
        fail_msg("%s on %s: message lacks \"%s\": %s", fdl_audit_check_id(c), object, needle, f->message);
}

static void expect_clean(const fdl_audit_report *r)
{
    if (total(r)) {
        dump(r);
        fail_msg("expected no finding, got %llu", (unsigned long long)total(r));
    }
}

static void device(fx *f, const char *id, int service, const char *policy)
{
    fdl_reg_device d = {.sold = 1, .service = service};
    assert_int_equal(fdl_registry_device_put(f->reg, id, &d), FDL_REG_OK);
    assert_int_equal(fdl_registry_device_set_policy(f->reg, id, policy, NULL), FDL_REG_OK);
}

typedef struct tcert {
    char fp[FDL_REG_FP_HEX_LEN + 1];
    char serial[17];
} tcert;

/* Records certificate i for device (subject may be NULL) and activates it with device-default. */
static void cert(fx *f, tcert *c, int i, const char *dev, const char *subject, int64_t not_after, int activate)
{
    char seed[32];
    int n = snprintf(seed, sizeof seed, "audit-cert-%d", i);
    assert_int_equal(fdl_registry_fingerprint((const unsigned char *)seed, (size_t)n, c->fp), FDL_REG_OK);
    snprintf(c->serial, sizeof c->serial, "%08x", (unsigned)i + 1);
    fdl_reg_cert_rec rec = {.fingerprint = c->fp, .serial = c->serial, .device_id = dev, .ca_id = 0,
                            .not_before = not_after - 365 * DAY, .not_after = not_after, .subject = subject};
    assert_int_equal(fdl_registry_cert_record(f->reg, &rec, NULL), FDL_REG_OK);
    if (activate)
        assert_int_equal(fdl_registry_cert_activate(f->reg, c->fp, "device-default", NULL), FDL_REG_OK);
}

static void session(fx *f, int64_t id, const char *fp, const char *dev, const char *client, const char *addr,
                    int64_t connected_s, int64_t disconnected_s)
{
    fdl_reg_session s[2] = {{.id = id, .open = 1, .at_ms = connected_s * 1000, .fingerprint = fp, .device_id = dev,
                             .client_id = client, .address = addr},
                            {.id = id, .open = 0, .at_ms = disconnected_s * 1000}};
    assert_int_equal(fdl_registry_sessions_apply(f->reg, s, disconnected_s ? 2 : 1), FDL_REG_OK);
}

/* ---------------------------------------------------------------------------------------- */
/* policy-wildcard                                                                            */

static void policy_wildcard_device(void **state)
{
    fx *f = *state;
    device(f, "dev-000001", 0, "device-default");
    device(f, "dev-000002", 0, "device-default");
    device(f, "dev-000003", 0, "device-default");
    /* The default device policy, per-device, on three devices: nothing to say. */
    expect_clean(audit_at(f, NOW));

    /* The same policy edited to let a device publish on every device's telemetry. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "device-default",
                                             FDL_POLICY_DEFAULT_DEVICE "allow publish telemetry/#\n", 1),
                     FDL_REG_OK);
    const fdl_audit_report *r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_POLICY_WILDCARD, "device-default", FDL_AUDIT_HIGH, "\"allow publish telemetry/#\"");
    const fdl_audit_finding *w = find(r, FDL_AUDIT_POLICY_WILDCARD, "device-default");
    assert_string_equal(w->object_kind, "policy");
    assert_non_null(strstr(w->message, "3 devices (e.g. dev-000001)"));
    assert_non_null(strstr(w->message, "line 14"));
    assert_int_equal(fdl_audit_worst(r), FDL_AUDIT_HIGH);
    /* per_device = 1: policy-shared does not apply. */
    assert_int_equal(n_check(r, FDL_AUDIT_POLICY_SHARED), 0);

    /* ... and to subscribe to it. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "device-default",
                                             FDL_POLICY_DEFAULT_DEVICE "allow subscribe telemetry/#\n", 1),
                     FDL_REG_OK);
    expect(audit_at(f, NOW), FDL_AUDIT_POLICY_WILDCARD, "device-default", FDL_AUDIT_HIGH,
           "\"allow subscribe telemetry/#\"");

    /* A deny does not make a wildcard grant clean, and only allow statements count. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "device-default",
                                             FDL_POLICY_DEFAULT_DEVICE "deny subscribe telemetry/#\n", 1),
                     FDL_REG_OK);
    expect_clean(audit_at(f, NOW));

    /* Keyed by the client-chosen ${client_id}: also HIGH. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "device-default", "allow publish telemetry/${client_id}\n", 1),
                     FDL_REG_OK);
    expect(audit_at(f, NOW), FDL_AUDIT_POLICY_WILDCARD, "device-default", FDL_AUDIT_HIGH, "client-chosen");

    /* A wildcard policy attached to nobody is a loaded gun: HIGH. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "device-default", FDL_POLICY_DEFAULT_DEVICE, 1), FDL_REG_OK);
    assert_int_equal(fdl_registry_policy_put(f->reg, "spare", "allow subscribe commands/+\n", 1), FDL_REG_OK);
    r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_POLICY_WILDCARD, "spare", FDL_AUDIT_HIGH, "no identity");
    assert_null(find(r, FDL_AUDIT_POLICY_WILDCARD, "device-default"));
    assert_int_equal(total(r), 1);
}

static void policy_wildcard_service(void **state)
{
    fx *f = *state;
    /* Ingest reads every device's telemetry: legitimate for a cloud actor, INFO. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "ingest", "allow subscribe telemetry/+\nallow receive telemetry/+\n", 0),
                     FDL_REG_OK);
    device(f, "svc-ingest", 1, "ingest");
    const fdl_audit_report *r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_POLICY_WILDCARD, "ingest", FDL_AUDIT_INFO, "legitimately");
    assert_non_null(strstr(find(r, FDL_AUDIT_POLICY_WILDCARD, "ingest")->message, "svc-ingest"));
    assert_int_equal(fdl_audit_worst(r), FDL_AUDIT_INFO);

    /* An operator that writes commands to every device: LOW. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "operator", "allow publish commands/+\n", 0), FDL_REG_OK);
    device(f, "svc-operator", 1, "operator");
    r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_POLICY_WILDCARD, "operator", FDL_AUDIT_LOW, "send to every device");
    expect(r, FDL_AUDIT_POLICY_WILDCARD, "ingest", FDL_AUDIT_INFO, NULL);

    /* The ingest policy attached to one real device too: HIGH. */
    device(f, "dev-000007", 0, "ingest");
    r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_POLICY_WILDCARD, "ingest", FDL_AUDIT_HIGH, "1 device (e.g. dev-000007) and 1 service");
    /* One device only: not shared. */
    assert_int_equal(n_check(r, FDL_AUDIT_POLICY_SHARED), 0);
}

/* ---------------------------------------------------------------------------------------- */
/* policy-shared, policy-invalid                                                               */

static void policy_shared(void **state)
{
    fx *f = *state;
    /* Not a template, publish to a common topic, one device: not shared (yet). */
    assert_int_equal(fdl_registry_policy_put(f->reg, "fleet", "allow publish status/all\n", 0), FDL_REG_OK);
    device(f, "dev-000001", 0, "fleet");
    const fdl_audit_report *r = audit_at(f, NOW);
    assert_int_equal(n_check(r, FDL_AUDIT_POLICY_SHARED), 0);
    /* (Its literal topic is a fleet-wide channel: policy-wildcard at MEDIUM.) */
    expect(r, FDL_AUDIT_POLICY_WILDCARD, "fleet", FDL_AUDIT_MEDIUM, "no ${thing} level");

    /* Two devices: every one may publish as all of them: HIGH. */
    device(f, "dev-000002", 0, "fleet");
    r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_POLICY_SHARED, "fleet", FDL_AUDIT_HIGH, "2 devices");

    /* Read-only shared grants: MEDIUM. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "fleet", "allow subscribe broadcast/firmware\n"
                                                              "allow publish telemetry/${thing}\n", 0),
                     FDL_REG_OK);
    expect(audit_at(f, NOW), FDL_AUDIT_POLICY_SHARED, "fleet", FDL_AUDIT_MEDIUM, "publish grants are per device");

    /* The per-device template stored with per_device = 0: mislabelled, LOW. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "fleet", FDL_POLICY_DEFAULT_DEVICE, 0), FDL_REG_OK);
    r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_POLICY_SHARED, "fleet", FDL_AUDIT_LOW, "per_device = 1");
    assert_int_equal(total(r), 1);

    /* A deny-all policy shared by revoked devices grants nothing: no finding. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "fleet", "# revoked\n", 0), FDL_REG_OK);
    expect_clean(audit_at(f, NOW));

    /* Per-device template on both: clean. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "fleet", FDL_POLICY_DEFAULT_DEVICE, 1), FDL_REG_OK);
    expect_clean(audit_at(f, NOW));

    /* A policy that does not parse: the broker fails closed, LOW. */
    assert_int_equal(fdl_registry_policy_put(f->reg, "fleet", "allow publish\n", 1), FDL_REG_OK);
    r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_POLICY_INVALID, "fleet", FDL_AUDIT_LOW, "line 1");
    assert_int_equal(total(r), 1);
}

/* ---------------------------------------------------------------------------------------- */
/* cert-expiring                                                                              */

static void cert_expiring(void **state)
{
    fx *f = *state;
    tcert soon, gone, fine, pending, revoked;
    cert(f, &fine, 1, "dev-000001", NULL, NOW + 100 * DAY, 1);
    expect_clean(audit_at(f, NOW));

    cert(f, &soon, 2, "dev-000002", NULL, NOW + 10 * DAY, 1);
    cert(f, &gone, 3, "dev-000003", NULL, NOW - DAY, 1);
    cert(f, &pending, 4, "dev-000004", NULL, NOW + DAY, 0);
    cert(f, &revoked, 5, "dev-000005", NULL, NOW - DAY, 1);
    assert_int_equal(fdl_registry_cert_revoke(f->reg, revoked.fp, NULL), FDL_REG_OK);
    const fdl_audit_report *r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_CERT_EXPIRING, soon.fp, FDL_AUDIT_MEDIUM, "in 10 days");
    expect(r, FDL_AUDIT_CERT_EXPIRING, gone.fp, FDL_AUDIT_HIGH, "still ACTIVE");
    assert_string_equal(find(r, FDL_AUDIT_CERT_EXPIRING, soon.fp)->object_kind, "certificate");
    assert_non_null(strstr(find(r, FDL_AUDIT_CERT_EXPIRING, soon.fp)->message, "dev-000002"));
    /* Only ACTIVE certificates are judged; 100 days out is fine. */
    assert_null(find(r, FDL_AUDIT_CERT_EXPIRING, pending.fp));
    assert_null(find(r, FDL_AUDIT_CERT_EXPIRING, revoked.fp));
    assert_null(find(r, FDL_AUDIT_CERT_EXPIRING, fine.fp));
    assert_int_equal(total(r), 2);
    /* Sorted worst first. */
    assert_int_equal(r->findings[0].severity, FDL_AUDIT_HIGH);

    /* Moving time: 75 days later the good one is due and the others have expired. */
    r = audit_at(f, NOW + 75 * DAY);
    expect(r, FDL_AUDIT_CERT_EXPIRING, fine.fp, FDL_AUDIT_MEDIUM, "in 25 days");
    expect(r, FDL_AUDIT_CERT_EXPIRING, soon.fp, FDL_AUDIT_HIGH, "65 days ago");
    /* And a year earlier nothing is close. */
    expect_clean(audit_at(f, NOW - 365 * DAY + 2 * DAY));
}

/* ---------------------------------------------------------------------------------------- */
/* cert-revoked-connected                                                                     */

static void cert_revoked_connected(void **state)
{
    fx *f = *state;
    tcert c, other;
    cert(f, &c, 1, "dev-000001", NULL, NOW + 300 * DAY, 1);
    cert(f, &other, 2, "dev-000002", NULL, NOW + 300 * DAY, 1);
    session(f, 1, c.fp, "dev-000001", "dev-000001", "10.0.0.1", NOW - 3600, 0);
    /* A revoked certificate whose sessions are all closed is what should happen. */
    session(f, 2, other.fp, "dev-000002", "dev-000002", "10.0.0.2", NOW - 7200, NOW - 3600);
    assert_int_equal(fdl_registry_cert_revoke(f->reg, other.fp, "test"), FDL_REG_OK);
    expect_clean(audit_at(f, NOW));

    assert_int_equal(fdl_registry_cert_revoke(f->reg, c.fp, "stolen"), FDL_REG_OK);
    const fdl_audit_report *r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_CERT_REVOKED_CONNECTED, c.fp, FDL_AUDIT_CRITICAL, "1 open session");
    assert_non_null(strstr(r->findings[0].message, "10.0.0.1"));
    assert_int_equal(total(r), 1);
    assert_int_equal(fdl_audit_worst(r), FDL_AUDIT_CRITICAL);

    /* Once the broker drops it, the finding goes away. */
    fdl_reg_session close = {.id = 1, .open = 0, .at_ms = (NOW - 60) * 1000};
    assert_int_equal(fdl_registry_sessions_apply(f->reg, &close, 1), FDL_REG_OK);
    expect_clean(audit_at(f, NOW));
}

/* ---------------------------------------------------------------------------------------- */
/* cert-shared                                                                                */

static void cert_shared(void **state)
{
    fx *f = *state;
    tcert c, roam;
    cert(f, &c, 1, "dev-000001", NULL, NOW + 300 * DAY, 1);
    cert(f, &roam, 2, "dev-000002", NULL, NOW + 300 * DAY, 1);
    /* Reconnects of one device from one address, one at a time: clean. */
    session(f, 1, c.fp, "dev-000001", "dev-000001", "10.0.0.1", NOW - 5000, NOW - 4000);
    session(f, 2, c.fp, "dev-000001", "dev-000001", "10.0.0.1", NOW - 4000, NOW - 3000);
    session(f, 3, c.fp, "dev-000001", "dev-000001", "10.0.0.1", NOW - 3000, 0);
    /* A different address two days ago is outside the window. */
    session(f, 4, c.fp, "dev-000001", "dev-000001", "192.0.2.9", NOW - 2 * DAY, NOW - 2 * DAY + 60);
    expect_clean(audit_at(f, NOW));

    /* A second client on the same certificate, connected now: a cloned key. HIGH. */
    session(f, 5, c.fp, "dev-000001", "dev-000001-clone", "10.9.9.9", NOW - 100, 0);
    const fdl_audit_report *r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_CERT_SHARED, c.fp, FDL_AUDIT_HIGH, "one certificate connected from several clients");
    const fdl_audit_finding *s = find(r, FDL_AUDIT_CERT_SHARED, c.fp);
    assert_non_null(strstr(s->message, "overlapping"));
    assert_non_null(strstr(s->message, "dev-000001-clone"));
    assert_non_null(strstr(s->message, "2 client ids"));
    assert_non_null(strstr(s->message, "2 open"));

    /* The same client id connected at once from two addresses: HIGH too. */
    session(f, 10, roam.fp, "dev-000002", "dev-000002", "10.0.0.2", NOW - 600, 0);
    session(f, 11, roam.fp, "dev-000002", "dev-000002", "10.0.0.3", NOW - 500, 0);
    expect(audit_at(f, NOW), FDL_AUDIT_CERT_SHARED, roam.fp, FDL_AUDIT_HIGH, "2 addresses");
    fdl_reg_session close[2] = {{.id = 10, .open = 0, .at_ms = (NOW - 450) * 1000},
                                {.id = 11, .open = 0, .at_ms = (NOW - 400) * 1000}};
    assert_int_equal(fdl_registry_sessions_apply(f->reg, close, 2), FDL_REG_OK);
    /* Closed, but they overlapped within the window: still HIGH. */
    expect(audit_at(f, NOW), FDL_AUDIT_CERT_SHARED, roam.fp, FDL_AUDIT_HIGH, "overlapping");
    /* Two days on, they are out of the window. */
    assert_null(find(audit_at(f, NOW + 2 * DAY), FDL_AUDIT_CERT_SHARED, roam.fp));
}

static void cert_shared_in_turn(void **state)
{
    fx *f = *state;
    tcert c;
    cert(f, &c, 1, "dev-000001", NULL, NOW + 300 * DAY, 1);
    /* Same client id, one connection at a time, from changing addresses: a roaming
     * device or a clone taking turns. MEDIUM. */
    session(f, 1, c.fp, "dev-000001", "dev-000001", "10.0.0.1", NOW - 7200, NOW - 3600);
    session(f, 2, c.fp, "dev-000001", "dev-000001", "10.0.0.2", NOW - 3600, 0);
    const fdl_audit_report *r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_CERT_SHARED, c.fp, FDL_AUDIT_MEDIUM, "in turn");
    assert_null(strstr(find(r, FDL_AUDIT_CERT_SHARED, c.fp)->message, "overlapping"));
    /* A hostile client id cannot put escape sequences into the report. */
    session(f, 3, c.fp, "dev-000001", "x\x1b[31mred\x1b[0m", "10.0.0.3", NOW - 60, 0);
    r = audit_at(f, NOW);
    const fdl_audit_finding *s = find(r, FDL_AUDIT_CERT_SHARED, c.fp);
    assert_non_null(s);
    assert_int_equal(s->severity, FDL_AUDIT_HIGH);
    assert_null(strchr(s->message, '\x1b'));
    assert_non_null(strstr(s->message, "x?[31mred?[0m"));
}

/* ---------------------------------------------------------------------------------------- */
/* ca-expiring                                                                                */

static int64_t crt_not_after(const mbedtls_x509_crt *c)
{
    struct tm tm = {.tm_year = c->valid_to.year - 1900, .tm_mon = c->valid_to.mon - 1, .tm_mday = c->valid_to.day,
                    .tm_hour = c->valid_to.hour, .tm_min = c->valid_to.min, .tm_sec = c->valid_to.sec};
    return (int64_t)timegm(&tm);
}

static void ca_expiring(void **state)
{
    fx *f = *state;
    int64_t root = 0, inter = 0;
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_root, "factory", &root), FDL_REG_OK);
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_inter, "issuing", &inter), FDL_REG_OK);
    char inter_id[24], root_id[24];
    snprintf(inter_id, sizeof inter_id, "%lld", (long long)inter);
    snprintf(root_id, sizeof root_id, "%lld", (long long)root);
    /* Freshly made (5 and 10 years): clean, at the real time. */
    expect_clean(audit_at(f, (int64_t)time(NULL)));

    int64_t end = crt_not_after(&g_inter);
    const fdl_audit_report *r = audit_at(f, end - 60 * DAY);
    expect(r, FDL_AUDIT_CA_EXPIRING, inter_id, FDL_AUDIT_MEDIUM, "in 60 days");
    assert_string_equal(find(r, FDL_AUDIT_CA_EXPIRING, inter_id)->object_kind, "ca");
    assert_non_null(strstr(find(r, FDL_AUDIT_CA_EXPIRING, inter_id)->message, "Issuing CA 1"));
    assert_null(find(r, FDL_AUDIT_CA_EXPIRING, root_id));
    expect(audit_at(f, end - 10 * DAY), FDL_AUDIT_CA_EXPIRING, inter_id, FDL_AUDIT_HIGH, "in 10 days");
    expect(audit_at(f, end + DAY), FDL_AUDIT_CA_EXPIRING, inter_id, FDL_AUDIT_HIGH, "expired");
    expect_clean(audit_at(f, end - 91 * DAY));

    /* The root's end, and a revoked CA is not judged at all. */
    expect(audit_at(f, crt_not_after(&g_root) - 5 * DAY), FDL_AUDIT_CA_EXPIRING, root_id, FDL_AUDIT_HIGH, NULL);
    assert_int_equal(fdl_registry_ca_revoke(f->reg, inter, "rollover", NULL), FDL_REG_OK);
    expect_clean(audit_at(f, end - 10 * DAY));
}

/* ---------------------------------------------------------------------------------------- */
/* subject-pii                                                                                */

static void subject_pii_scanner(void **state)
{
    (void)state;
    static const char *const clean[] = {
        "CN=dev-000042", "CN=dev-1999998", "CN=fleetdrill Issuing CA 1", "CN=fleetdrill Root CA", "CN=localhost",
        "CN=dev-1, O=Acme GmbH, C=DE", "/CN=dev-000001/O=Acme", "CN=svc-ingest, OU=cloud", "serialNumber=12345678",
        "CN=sensor.0012345678", "CN=unit_4155550199", "", "CN=dev-1, OU=R\\, D", "CN=a@b"};
    static const struct {
        const char *subject, *want;
    } dirty[] = {
        {"CN=dev-1,emailAddress=alice@example.com", "e-mail address in emailAddress"},
        {"CN=dev-1, emailAddress=alice@example.com", "e-mail address in emailAddress"},
        {"/CN=dev-1/emailAddress=alice@example.com", "e-mail address in emailAddress"},
        {"CN=alice@example.com", "e-mail address in CN"},
        {"CN=dev-1, GN=Alice, SN=Smith", "personal name in GN, personal name in SN"},
        {"CN=dev-1, givenName=Alice", "personal name in givenName"},
        {"CN=dev-1, pseudonym=ally", "personal name in pseudonym"},
        {"CN=Alice +1 415 555 0199", "phone number in CN"},
        {"CN=dev-1, OU=+44 20 7946 0958", "phone number in OU"},
        {"CN=4155550199", "phone number in CN"},
        {"CN=dev-1, street=1 Main Street", "postal address in street"},
        {"CN=dev-1, postalCode=10115", "postal address in postalCode"},
        {"CN=dev-1, 2.5.4.9=Hauptstr. 1", "postal address in 2.5.4.9"},
        {"CN=dev-1, telephoneNumber=555", "phone number in telephoneNumber"},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof clean / sizeof clean[0]; i++)
        if (fdl_audit_subject_pii(clean[i], buf, sizeof buf) != 0)
            fail_msg("clean subject \"%s\" flagged: %s", clean[i], buf);
    for (size_t i = 0; i < sizeof dirty / sizeof dirty[0]; i++) {
        if (fdl_audit_subject_pii(dirty[i].subject, buf, sizeof buf) == 0)
            fail_msg("subject \"%s\" not flagged", dirty[i].subject);
        if (strcmp(buf, dirty[i].want) != 0)
            fail_msg("subject \"%s\": \"%s\", want \"%s\"", dirty[i].subject, buf, dirty[i].want);
    }
    assert_int_equal(fdl_audit_subject_pii(NULL, buf, sizeof buf), 0);
    assert_int_equal(fdl_audit_subject_pii("CN=x@y.z", NULL, 0), 1);
}

static void subject_pii(void **state)
{
    fx *f = *state;
    tcert fleet, person;
    cert(f, &fleet, 1, "dev-000042", "CN=dev-000042", NOW + 300 * DAY, 1);
    int64_t inter = 0;
    assert_int_equal(fdl_registry_ca_register(f->reg, &g_inter, "issuing", &inter), FDL_REG_OK);
    expect_clean(audit_at(f, NOW));

    cert(f, &person, 2, "dev-1", "CN=dev-1,emailAddress=alice@example.com", NOW + 300 * DAY, 0);
    const fdl_audit_report *r = audit_at(f, NOW);
    expect(r, FDL_AUDIT_SUBJECT_PII, person.fp, FDL_AUDIT_MEDIUM, "e-mail address in emailAddress");
    const fdl_audit_finding *p = find(r, FDL_AUDIT_SUBJECT_PII, person.fp);
    assert_string_equal(p->object_kind, "certificate");
    /* The report itself must not spread the personal data. */
    assert_null(strstr(p->message, "alice"));
    assert_non_null(strstr(p->message, "PENDING"));
    assert_null(find(r, FDL_AUDIT_SUBJECT_PII, fleet.fp));
    assert_int_equal(total(r), 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Limits, memory                                                                             */

static void findings_bounded(void **state)
{
    fx *f = *state;
    tcert c[12];
    for (int i = 0; i < 10; i++) {
        char dev[32];
        snprintf(dev, sizeof dev, "dev-%06d", i);
        cert(f, &c[i], i, dev, NULL, NOW + DAY, 1);
    }
    cert(f, &c[10], 10, "dev-000010", NULL, NOW + 300 * DAY, 1);
    session(f, 1, c[10].fp, "dev-000010", "dev-000010", "10.0.0.1", NOW - 60, 0);
    assert_int_equal(fdl_registry_cert_revoke(f->reg, c[10].fp, NULL), FDL_REG_OK);
    /* Ten MEDIUM, then the CRITICAL must survive a limit of five. */
    const fdl_audit_report *r = audit_max(f, NOW, 5);
    assert_int_equal(r->n, 5);
    assert_int_equal(r->dropped, 6);
    assert_int_equal(r->counts[FDL_AUDIT_MEDIUM], 10);
    assert_int_equal(r->counts[FDL_AUDIT_CRITICAL], 1);
    assert_int_equal(r->by_check[FDL_AUDIT_CERT_EXPIRING][FDL_AUDIT_MEDIUM], 10);
    assert_int_equal(r->findings[0].check, FDL_AUDIT_CERT_REVOKED_CONNECTED);
    for (size_t i = 2; i < r->n; i++)
        assert_true(strcmp(r->findings[i - 1].object, r->findings[i].object) < 0);
    r = audit_at(f, NOW);
    assert_int_equal(r->n, 11);
    assert_int_equal(r->dropped, 0);

    /* A HIGH found after the limit is reached evicts a MEDIUM: policies are audited
     * before certificate expiry, so the three policy MEDIUMs fill the room first. */
    for (int i = 1; i <= 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "p%d", i);
        assert_int_equal(fdl_registry_policy_put(f->reg, name, "allow publish status/all\n", 1), FDL_REG_OK);
    }
    tcert late;
    cert(f, &late, 11, "dev-000011", NULL, NOW - DAY, 1);
    r = audit_max(f, NOW, 3);
    assert_int_equal(r->n, 3);
    assert_int_equal(r->counts[FDL_AUDIT_MEDIUM], 13);
    assert_int_equal(r->counts[FDL_AUDIT_HIGH], 1);
    assert_int_equal(r->dropped, 12);
    assert_int_equal(r->findings[0].severity, FDL_AUDIT_CRITICAL);
    assert_int_equal(r->findings[1].severity, FDL_AUDIT_HIGH);
    assert_string_equal(r->findings[1].object, late.fp);
    assert_int_equal(r->findings[2].severity, FDL_AUDIT_MEDIUM);
    assert_int_equal(r->findings[2].check, FDL_AUDIT_POLICY_WILDCARD);
}

static void alloc_balance_and_failures(void **state)
{
    fx *f = *state;
    tcert c;
    cert(f, &c, 1, "dev-000001", "CN=dev-000001, emailAddress=a@b.example", NOW + DAY, 1);
    assert_int_equal(fdl_registry_policy_put(f->reg, "wide", "allow publish telemetry/#\n", 0), FDL_REG_OK);
    device(f, "dev-000002", 0, "wide");
    device(f, "dev-000003", 0, "wide");
    session(f, 1, c.fp, "dev-000001", "a", "10.0.0.1", NOW - 60, 0);
    session(f, 2, c.fp, "dev-000001", "b", "10.0.0.2", NOW - 30, 0);

    fdl_alloc_stats a = fdl_alloc_get_stats();
    fdl_audit_report *rep = NULL;
    fdl_audit_opts o = {.now = NOW};
    assert_int_equal(fdl_audit_run(f->reg, &o, &rep, NULL, 0), FDL_AUDIT_OK);
    size_t n = rep->n;
    assert_true(n >= 4);
    fdl_audit_report_free(rep);
    fdl_alloc_stats b = fdl_alloc_get_stats();
    assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);

    /* Each allocation in turn fails: a clean NOMEM, nothing leaked, the next run whole. */
    int failures = 0;
    for (uint64_t nth = 1; nth < 200; nth++) {
        a = fdl_alloc_get_stats();
        fdl_alloc_fail_nth(nth);
        char err[128];
        fdl_audit_status st = fdl_audit_run(f->reg, &o, &rep, err, sizeof err);
        fdl_alloc_fail_nth(0);
        if (st == FDL_AUDIT_OK) {
            assert_int_equal(rep->n, n);
            fdl_audit_report_free(rep);
            b = fdl_alloc_get_stats();
            assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
            break;
        }
        failures++;
        assert_int_equal(st, FDL_AUDIT_ERR_NOMEM);
        assert_null(rep);
        assert_string_equal(err, "out of memory");
        b = fdl_alloc_get_stats();
        assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
    }
    assert_true(failures > 3);
    assert_int_equal(fdl_audit_run(NULL, &o, &rep, NULL, 0), FDL_AUDIT_ERR_ARG);
    assert_null(rep);
    fdl_audit_report_free(NULL);
    assert_int_equal(fdl_audit_worst(NULL), -1);
}

/* ---------------------------------------------------------------------------------------- */
/* The CLI                                                                                    */

static int cli(int n, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[n] = NULL;
    fflush(stdout);
    int rc = fdl_cmd_audit(n, argv);
    fflush(stdout);
    return rc;
}

static void cli_end_to_end(void **state)
{
    fx *f = *state;
    char json[400], missing[400], now[32];
    snprintf(json, sizeof json, "%s/audit.json", f->dir);
    snprintf(missing, sizeof missing, "%s/no-such-state", f->dir);
    snprintf(now, sizeof now, "%lld", (long long)NOW);

    /* Usage and errors. */
    assert_int_equal(cli(2, "audit", "--help"), FDL_EXIT_OK);
    assert_int_equal(cli(2, "audit", "--bogus"), FDL_EXIT_USAGE);
    assert_int_equal(cli(4, "audit", "--state", f->dir, "extra"), FDL_EXIT_USAGE);
    assert_int_equal(cli(5, "audit", "--state", f->dir, "--now", "soon"), FDL_EXIT_USAGE);
    /* No registry: an error, and the state directory is not created. */
    assert_int_equal(cli(3, "audit", "--state", missing), FDL_EXIT_ERROR);
    struct stat sb;
    assert_int_equal(stat(missing, &sb), -1);

    /* A clean fleet: exit 0, and the JSON parses with no finding. */
    tcert c;
    cert(f, &c, 1, "dev-000001", "CN=dev-000001", NOW + 300 * DAY, 1);
    session(f, 1, c.fp, "dev-000001", "dev-000001", "10.0.0.1", NOW - 60, 0);
    assert_int_equal(cli(7, "audit", "--state", f->dir, "--now", now, "--json", json), FDL_EXIT_OK);
    fdl_test_jdoc doc = {0}, *d = &doc;
    fdl_test_jload(d, json);
    fdl_test_jstr_is(d, 0, "command", "audit");
    fdl_test_jstr_is(d, 0, "fleetdrill", FDL_VERSION);
    assert_int_equal(fdl_test_jint(d, 0, "now"), NOW);
    size_t fs = fdl_test_jget(d, 0, "findings");
    assert_true(fs > 0);
    assert_int_equal(d->tok[fs].type, FDL_JV_ARRAY);
    assert_int_equal(d->tok[fs].size, 0);
    size_t counts = fdl_test_jget(d, 0, "counts");
    assert_true(counts > 0);
    assert_int_equal(fdl_test_jint(d, counts, "critical"), 0);
    assert_int_equal(fdl_test_jint(d, counts, "high"), 0);

    /* The certificate is revoked while its session stays open: exit 4, CRITICAL first. */
    assert_int_equal(fdl_registry_cert_revoke(f->reg, c.fp, "stolen"), FDL_REG_OK);
    assert_int_equal(cli(6, "audit", "--state", f->dir, "--now", now, "--json=" "-"), FDL_EXIT_FINDINGS);
    assert_int_equal(cli(5, "audit", "--state", f->dir, "--now", now), FDL_EXIT_FINDINGS);
    char opt[420];
    snprintf(opt, sizeof opt, "--json=%s", json);
    assert_int_equal(cli(6, "audit", "--state", f->dir, opt, "--now", now), FDL_EXIT_FINDINGS);
    fdl_test_jfree(d);
    fdl_test_jload(d, json);
    fs = fdl_test_jget(d, 0, "findings");
    assert_int_equal(d->tok[fs].size, 1);
    size_t f0 = fs + 1;
    assert_int_equal(d->tok[f0].type, FDL_JV_OBJECT);
    fdl_test_jstr_is(d, f0, "check", "cert-revoked-connected");
    fdl_test_jstr_is(d, f0, "severity", "critical");
    fdl_test_jstr_is(d, f0, "object_kind", "certificate");
    fdl_test_jstr_is(d, f0, "object", c.fp);
    counts = fdl_test_jget(d, 0, "counts");
    assert_int_equal(fdl_test_jint(d, counts, "critical"), 1);

    /* A MEDIUM alone does not fail the build: exit 0. */
    fdl_reg_session close = {.id = 1, .open = 0, .at_ms = (NOW - 30) * 1000};
    assert_int_equal(fdl_registry_sessions_apply(f->reg, &close, 1), FDL_REG_OK);
    tcert soon;
    cert(f, &soon, 2, "dev-000002", NULL, NOW + 5 * DAY, 1);
    assert_int_equal(cli(7, "audit", "--state", f->dir, "--now", now, "--json", json), FDL_EXIT_OK);
    fdl_test_jfree(d);
    fdl_test_jload(d, json);
    counts = fdl_test_jget(d, 0, "counts");
    assert_int_equal(fdl_test_jint(d, counts, "medium"), 1);
    fdl_test_jstr_is(d, fdl_test_jget(d, 0, "findings") + 1, "check", "cert-expiring");
    fdl_test_jfree(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(policy_wildcard_device, setup, teardown),
        cmocka_unit_test_setup_teardown(policy_wildcard_service, setup, teardown),
        cmocka_unit_test_setup_teardown(policy_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(cert_expiring, setup, teardown),
        cmocka_unit_test_setup_teardown(cert_revoked_connected, setup, teardown),
        cmocka_unit_test_setup_teardown(cert_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(cert_shared_in_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(ca_expiring, setup, teardown),
        cmocka_unit_test(subject_pii_scanner),
        cmocka_unit_test_setup_teardown(subject_pii, setup, teardown),
        cmocka_unit_test_setup_teardown(findings_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(alloc_balance_and_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(cli_end_to_end, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
