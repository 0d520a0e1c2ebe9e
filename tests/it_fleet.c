/*
 * tests/it_fleet.c — devices against a real Mosquitto on loopback, keys in real SoftHSM2 tokens.
 *
 *  - genuine broker: every device connects over mutual TLS 1.3 and its QoS 1 telemetry is acknowledged;
 *  - rogue broker (server certificate from another CA, same names): every device refuses it during
 *    the handshake, the failure is classified "broker certificate rejected", and no device ever
 *    gets online (the pinning to the fleet root holds);
 *  - flash-profile devices (key in a file) connect the same way;
 *  - the broker restarts mid-run: every device notices, backs off and reconnects.
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "cloud/pki.h"
#include "sim/broker.h"
#include "sim/context.h"
#include "sim/fleet.h"

static char g_dir[512];
static fdl_ctx g_ctx;

static int setup(void **state)
{
    (void)state;
    char err[512];
    fdl_test_mkdtemp("fleet", g_dir, sizeof g_dir);
    if (fdl_ctx_open(&g_ctx, g_dir, 1, err, sizeof err) != 0) {
        fprintf(stderr, "ctx: %s\n", err);
        return -1;
    }
    for (uint32_t i = 0; i < 6; i++) {
        char id[32];
        fdl_device_id(i, id, sizeof id);
        if (fdl_identity_provision(&g_ctx.st, g_ctx.se, g_ctx.pki, id, i < 4 ? FDL_PROFILE_SE : FDL_PROFILE_FLASH,
                                   mbedtls_ctr_drbg_random, &g_ctx.drbg, err, sizeof err) < 0) {
            fprintf(stderr, "provision: %s\n", err);
            return -1;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_ctx_close(&g_ctx);
    fdl_test_rmrf(g_dir);
    return 0;
}

/* Starts a broker that trusts our fleet chain for clients and presents cert/key from pki_dir. */
static fdl_broker *start_broker(const char *pki_dir, const char *name)
{
    char bdir[600], chain[600], cert[600], key[600], err[512];
    snprintf(bdir, sizeof bdir, "%s/%s", g_dir, name);
    snprintf(chain, sizeof chain, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_CHAIN_PEM);
    snprintf(cert, sizeof cert, "%s/%s", pki_dir, FDL_PKI_SERVER_PEM);
    snprintf(key, sizeof key, "%s/%s", pki_dir, FDL_PKI_SERVER_KEY_PEM);
    fdl_broker_opts o;
    fdl_broker_opts_init(&o);
    o.dir = bdir;
    o.cafile = chain;
    o.certfile = cert;
    o.keyfile = key;
    fdl_broker *b = NULL;
    if (fdl_broker_start(&o, &b, err, sizeof err) != FDL_BROKER_OK) {
        fprintf(stderr, "broker: %s\n", err);
        return NULL;
    }
    return b;
}

static void run_fleet_cb(fdl_broker *b, uint32_t first, uint32_t n, double seconds, int until_online,
                         fdl_fleet_result *res, fdl_fleet_progress_cb cb, void *ud)
{
    char root[600], err[512];
    snprintf(root, sizeof root, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_ROOT_PEM);
    fdl_fleet_cfg cfg;
    fdl_fleet_cfg_defaults(&cfg);
    cfg.n_devices = n;
    cfg.first_index = first;
    cfg.state = &g_ctx.st;
    cfg.se = g_ctx.se;
    cfg.trust_file = root;
    cfg.broker_host = fdl_broker_host(b);
    cfg.broker_port = fdl_broker_port(b);
    cfg.duration_ms = (uint64_t)(seconds * 1000);
    cfg.stop_when_all_online = until_online;
    cfg.time_scale = 20;                         /* telemetry every 5 simulated s = 250 real ms */
    cfg.params.backoff_base_ms = cb ? 1000 : 20000;  /* restart test: retry fast; others: once at most */
    cfg.params.backoff_cap_ms = cb ? 4000 : 60000;
    assert_int_equal(fdl_fleet_run(&cfg, res, cb, ud, err, sizeof err), 0);
}

static void run_fleet(fdl_broker *b, uint32_t first, uint32_t n, double seconds, int until_online,
                      fdl_fleet_result *res)
{
    run_fleet_cb(b, first, n, seconds, until_online, res, NULL, NULL);
}

static void genuine_broker_accepts_fleet(void **state)
{
    (void)state;
    fdl_broker *b = start_broker(g_ctx.st.pki_dir, "broker-genuine");
    assert_non_null(b);
    fdl_fleet_result res;
    run_fleet(b, 0, 6, 3.0, 0, &res);
    fdl_broker_stop(b);
    fdl_broker_free(b);
    assert_int_equal(res.load_failed, 0);
    assert_int_equal(res.connected, 6);
    assert_int_equal(res.failed, 0);
    assert_true(res.published > 0);
    assert_true(res.acked > 0);
    assert_true(res.hs_p50_us > 0);
}

static void rogue_broker_refused(void **state)
{
    (void)state;
    char rogue[600];
    snprintf(rogue, sizeof rogue, "%s/rogue-pki", g_dir);
    /* Same names ("fleetdrill Root CA", CN localhost, IP 127.0.0.1): only the signature differs. */
    assert_int_equal(fdl_pki_setup_soft(rogue, NULL), FDL_PKI_OK);
    fdl_broker *b = start_broker(rogue, "broker-rogue");
    assert_non_null(b);
    fdl_fleet_result res;
    run_fleet(b, 0, 6, 2.0, 0, &res);
    fdl_broker_stop(b);
    fdl_broker_free(b);
    assert_int_equal(res.connected, 0);
    assert_int_equal(res.failed, 6);
    assert_int_equal(res.fail_by_reason[FDL_FAIL_SERVER_CERT], 6);
    assert_non_null(strstr(res.fail_example[FDL_FAIL_SERVER_CERT], "certificate"));
    assert_int_equal(res.published, 0);
}

typedef struct restart_ctx {
    fdl_broker *b;
    uint16_t port;
    int restarted;
    uint32_t n;
} restart_ctx;

/* Runs on the fleet's coordinating thread: once everyone is online, bounce the broker. */
static void restart_when_online(void *ud, uint32_t online, uint32_t ever, uint32_t failed, uint64_t acked,
                                double el)
{
    restart_ctx *r = ud;
    (void)ever;
    (void)failed;
    (void)acked;
    (void)el;
    if (r->restarted || online < r->n)
        return;
    r->restarted = 1;
    fdl_broker_stop(r->b);
    fdl_broker_free(r->b);
    char bdir[600], chain[600], cert[600], key[600], err[512];
    snprintf(bdir, sizeof bdir, "%s/broker-restart", g_dir);
    snprintf(chain, sizeof chain, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_CHAIN_PEM);
    snprintf(cert, sizeof cert, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_SERVER_PEM);
    snprintf(key, sizeof key, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_SERVER_KEY_PEM);
    fdl_broker_opts o;
    fdl_broker_opts_init(&o);
    o.dir = bdir;
    o.cafile = chain;
    o.certfile = cert;
    o.keyfile = key;
    o.port = r->port;
    r->b = NULL;
    if (fdl_broker_start(&o, &r->b, err, sizeof err) != FDL_BROKER_OK)
        fprintf(stderr, "restart: %s\n", err);
}

static void devices_reconnect_after_broker_restart(void **state)
{
    (void)state;
    fdl_broker *b = start_broker(g_ctx.st.pki_dir, "broker-first");
    assert_non_null(b);
    restart_ctx r = {.b = b, .port = fdl_broker_port(b), .n = 4};
    fdl_fleet_result res;
    run_fleet_cb(b, 0, 4, 6.0, 0, &res, restart_when_online, &r);
    assert_int_equal(r.restarted, 1);
    assert_non_null(r.b);
    fdl_broker_stop(r.b);
    fdl_broker_free(r.b);
    assert_int_equal(res.connected, 4);
    /* Each device connected once, lost the broker, and connected again. */
    assert_true(res.attempts >= 8);
    assert_int_equal(res.online_at_end, 4);
    assert_int_equal(res.failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(genuine_broker_accepts_fleet),
        cmocka_unit_test(rogue_broker_refused),
        cmocka_unit_test(devices_reconnect_after_broker_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
