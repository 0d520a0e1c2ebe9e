/*
 * tests/it_attacks.c — the attack tooling (attacks/) against a real, defended
 * Mosquitto with the fleetdrill plugin on loopback, keys in real SoftHSM2 tokens.
 *
 * Fleet: dev-000001 and dev-000002 are `flash` devices (key in a file),
 * dev-000003 an `se` device (key in its token); all enrolled ACTIVE with the
 * default device policy; the cloud actors (svc-ingest: the observer) enrolled.
 * A helper thread plays dev-000002's firmware, publishing valid telemetry every
 * 100 ms, so there is always somebody else's data an attacker could receive.
 *
 * Each attack that a layer must stop is shown stopped, with its evidence (stolen
 * certificate, TLS 1.2, plaintext, cross-device publish and subscribe, wildcard,
 * junk payloads, `se` key extraction, rogue CA against a pinning device); each
 * one that should get through gets through (flash key reuse, pinning off,
 * widened policy), which is what keeps the "refused" checks from passing by accident.
 */
#include "testutil.h"

#include <signal.h>

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attacks/abuse.h"
#include "attacks/credentials.h"
#include "attacks/downgrade.h"
#include "attacks/policy_widen.h"
#include "attacks/rogue.h"
#include "attacks/session.h"
#include "devices/efuse.h"
#include "sim/broker.h"
#include "sim/cloudrun.h"
#include "sim/context.h"
#include "sim/fsutil.h"

#define A "dev-000001"
#define B "dev-000002"
#define SE "dev-000003"

static char g_dir[512];
static fdl_ctx g_ctx;
static fdl_broker *g_broker;
static fdl_atk_target g_t;

static int setup(void **state)
{
    (void)state;
    char err[512];
    fdl_test_mkdtemp("attacks", g_dir, sizeof g_dir);
    if (fdl_ctx_open(&g_ctx, g_dir, 1, err, sizeof err) != 0) {
        fprintf(stderr, "ctx: %s\n", err);
        return -1;
    }
    for (uint32_t i = 1; i <= 3; i++) {
        char id[32];
        fdl_device_id(i, id, sizeof id);
        if (fdl_identity_provision(&g_ctx.st, g_ctx.se, g_ctx.pki, id, i == 3 ? FDL_PROFILE_SE : FDL_PROFILE_FLASH,
                                   mbedtls_ctr_drbg_random, &g_ctx.drbg, err, sizeof err) < 0) {
            fprintf(stderr, "provision: %s\n", err);
            return -1;
        }
    }
    fdl_broker_opts bo;
    fdl_cloud_broker_bufs bufs;
    fdl_broker_opts_init(&bo);
    if (fdl_ctx_open_cloud(&g_ctx, 0, err, sizeof err) != 0 ||
        fdl_cloud_prepare_fleet(&g_ctx, 1, 3, FDL_PROV_DIRECT, NULL, err, sizeof err) != 0 ||
        fdl_cloud_broker_opts(&g_ctx, &bo, &bufs, err, sizeof err) != 0) {
        fprintf(stderr, "cloud: %s\n", err);
        return -1;
    }
    if (fdl_broker_start(&bo, &g_broker, err, sizeof err) != FDL_BROKER_OK) {
        fprintf(stderr, "broker: %s\n", err);
        return -1;
    }
    g_t = (fdl_atk_target){.host = fdl_broker_host(g_broker), .port = fdl_broker_port(g_broker),
                           .server_name = "localhost", .state_dir = g_ctx.st.dir, .se = g_ctx.se};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_broker_free(g_broker);
    fdl_ctx_close(&g_ctx);
    if (!getenv("FDL_TEST_KEEP"))
        fdl_test_rmrf(g_dir);
    return 0;
}

static void show(const char *name, const fdl_atk_result *r)
{
    printf("--- %s: succeeded=%d stage=%s (%.1f ms)\n%s\n", name, r->succeeded, fdl_atk_stage_name(r->stage),
           (double)r->elapsed_us / 1000.0, r->evidence);
}

static void assert_has(const fdl_atk_result *r, const char *needle)
{
    if (!strstr(r->evidence, needle)) {
        fprintf(stderr, "evidence lacks \"%s\":\n%s\n", needle, r->evidence);
        fail();
    }
}

/* ---- dev-000002's firmware, on a thread of its own ------------------------------ */

typedef struct traffic {
    pthread_t th;
    atomic_int stop;
    atomic_int sent;
    int ok;
} traffic;

static void *traffic_main(void *arg)
{
    traffic *tr = arg;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt root;
    fdl_identity idn;
    char err[256], path[1200];
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_x509_crt_init(&root);
    fdl_atk_loop *l = NULL;
    int have = 0;
    snprintf(path, sizeof path, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_ROOT_PEM);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0) != 0 ||
        mbedtls_x509_crt_parse_file(&root, path) != 0 ||
        fdl_identity_load(&g_ctx.st, NULL, B, &idn, mbedtls_ctr_drbg_random, &drbg, err, sizeof err) != 0)
        goto cleanup;
    have = 1;
    l = fdl_atk_loop_new();
    fdl_atk_sess_cfg sc = {.host = g_t.host, .port = g_t.port, .client_id = B};
    sc.tls = (fdl_tls_client_cfg){.trust = &root, .own_cert = &idn.cert, .own_key = idn.key,
                                  .server_name = "localhost", .f_rng = mbedtls_ctr_drbg_random, .p_rng = &drbg};
    fdl_atk_sess *s = fdl_atk_sess_new(l, &sc);
    if (fdl_atk_sess_connect(s, 5000, B, NULL) != FDL_ATK_STAGE_NONE)
        goto cleanup;
    tr->ok = 1;
    /* Bounded: at most 10 minutes of 100 ms steps, normally stopped after a few seconds. */
    for (int i = 0; i < 6000 && !atomic_load(&tr->stop); i++) {
        char msg[160];
        snprintf(msg, sizeof msg, "{\"seq\":%d,\"ts\":1,\"battery\":50,\"torque\":2,\"usage_minutes\":3}", i);
        if (fdl_atk_sess_publish(s, "telemetry/" B, msg, strlen(msg), 2000) > 0)
            atomic_fetch_add(&tr->sent, 1);
        fdl_atk_loop_run_for(l, 100);
    }
cleanup:
    fdl_atk_loop_free(l);
    if (have)
        fdl_identity_free(&idn);
    mbedtls_x509_crt_free(&root);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
    return NULL;
}

static void traffic_start(traffic *tr)
{
    memset(tr, 0, sizeof *tr);
    assert_int_equal(pthread_create(&tr->th, NULL, traffic_main, tr), 0);
    for (int i = 0; i < 100 && atomic_load(&tr->sent) == 0; i++)
        usleep(50000);
    assert_true(atomic_load(&tr->sent) > 0);
}

static void traffic_stop(traffic *tr)
{
    atomic_store(&tr->stop, 1);
    pthread_join(tr->th, NULL);
}

/* ---- layer 3: identity ------------------------------------------------------------ */

static void stolen_certificate_without_key_is_refused(void **state)
{
    (void)state;
    fdl_atk_result r;
    assert_int_equal(fdl_atk_stolen_cert(&g_t, B, &r), 0);
    show("stolen cert", &r);
    assert_int_equal(r.stage, FDL_ATK_STAGE_TLS);
    assert_has(&r, "does not match the certificate's public key");
    assert_has(&r, "refused:");
    assert_has(&r, "SSL routines::bad signature");   /* the broker's own account of the refusal */
}

static void flash_key_reused_from_another_address_connects(void **state)
{
    (void)state;
    fdl_atk_result r;
    assert_int_equal(fdl_atk_extracted_key(&g_t, B, htonl(0x7f00004d) /* 127.0.0.77 */, &r), 1);
    show("flash key reuse", &r);
    assert_int_equal(r.stage, FDL_ATK_STAGE_NONE);
    assert_has(&r, "read its private key from");
    assert_has(&r, "CONNACK 0 (accepted)");
    assert_has(&r, "the ingest actor RECEIVED it");
    assert_has(&r, "connected from 127.0.0.77");
}

/* ---- layer 1: hardware ------------------------------------------------------------- */

static void flash_key_behind_a_closed_debug_port_is_not_read(void **state)
{
    (void)state;
    char dir[FDL_PATH_MAX + 64], path[FDL_PATH_MAX + 96];
    fdl_identity_path(&g_ctx.st, B, "fw", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/efuse", dir);
    assert_int_equal(fdl_mkdir_p(dir, 0700), 0);
    fdl_efuse_factory f = {.debug_disabled = true};
    fdl_efuse *fuses = NULL;
    assert_int_equal(fdl_efuse_create(path, &f, &fuses), FDL_EFUSE_OK);
    fdl_efuse_free(fuses);
    fdl_atk_result r;
    assert_int_equal(fdl_atk_extracted_key(&g_t, B, 0, &r), 0);
    show("flash key behind a closed debug port", &r);
    assert_int_equal(r.stage, FDL_ATK_STAGE_KEY_EXTRACT);
    assert_has(&r, "the debug port is closed");
    assert_null(strstr(r.evidence, "read its private key from"));
    fdl_test_rmrf(dir);   /* the other tests read B's flash through an open (absent) port */
}


static void se_key_extraction_is_refused_by_the_token(void **state)
{
    (void)state;
    fdl_atk_result r;
    assert_int_equal(fdl_atk_extracted_key(&g_t, SE, 0, &r), 0);
    show("se key extraction", &r);
    assert_int_equal(r.stage, FDL_ATK_STAGE_KEY_EXTRACT);
    assert_has(&r, "CKR_ATTRIBUTE_SENSITIVE (0x00000011)");
    assert_has(&r, "CKA_SENSITIVE = true");
    assert_has(&r, "CKA_EXTRACTABLE = false");
}

/* ---- layer 4: transport ------------------------------------------------------------ */

static void tls12_downgrade_is_refused(void **state)
{
    (void)state;
    fdl_atk_result r;
    assert_int_equal(fdl_atk_tls12(&g_t, A, &r), 0);
    show("tls 1.2", &r);
    assert_int_equal(r.stage, FDL_ATK_STAGE_TLS);
    assert_has(&r, "TLS 1.2 only");
    assert_has(&r, "fatal alert from peer: 70 protocol_version");
    assert_has(&r, "unsupported protocol");   /* the broker's (OpenSSL's) side of it */
}

static void plaintext_connect_is_refused(void **state)
{
    (void)state;
    fdl_atk_result r;
    assert_int_equal(fdl_atk_plaintext(&g_t, "plain-1", &r), 0);
    show("plaintext", &r);
    assert_int_equal(r.stage, FDL_ATK_STAGE_TLS);
    assert_has(&r, "sent a plaintext MQTT CONNECT");
    assert_null(strstr(r.evidence, "= an MQTT CONNACK"));
    assert_has(&r, "wrong version number");   /* OpenSSL read our CONNECT as a TLS record */
}

static void rogue_ca_refused_when_pinning_and_leaks_when_not(void **state)
{
    (void)state;
    char dir[700], err[256];
    snprintf(dir, sizeof dir, "%s/rogue-pki", g_dir);
    fdl_atk_rogue *g = NULL;
    assert_int_equal(fdl_atk_rogue_new(dir, &g, err, sizeof err), 0);
    uint16_t port = 0;
    assert_int_equal(fdl_atk_rogue_start(g, "127.0.0.1", 0, &port, err, sizeof err), 0);
    fdl_atk_target rt = g_t;
    rt.port = port;

    fdl_atk_result r;
    assert_int_equal(fdl_atk_device_connect(&rt, SE, 0, &r), 0);
    show("device vs rogue, pinning on", &r);
    assert_int_equal(r.stage, FDL_ATK_STAGE_TLS);
    assert_has(&r, "server certificate rejected");
    fdl_atk_rogue_stats st;
    fdl_atk_rogue_stats_get(g, &st);
    assert_int_equal(st.connects, 0);
    assert_int_equal(st.handshakes, 0);
    assert_true(st.accepted >= 1);

    assert_int_equal(fdl_atk_device_connect(&rt, SE, 1, &r), 1);
    show("device vs rogue, pinning off", &r);
    fdl_atk_rogue_stop(g);
    assert_int_equal(fdl_atk_rogue_result(g, &r), 1);
    show("rogue endpoint", &r);
    fdl_atk_rogue_stats_get(g, &st);
    assert_int_equal(st.connects, 1);
    assert_string_equal(st.last_client_id, SE);
    assert_string_equal(st.last_peer_subject, "CN=" SE);
    assert_true(st.publishes >= 1);
    assert_has(&r, "credentials leaked to the MITM: client id \"" SE "\"");
    fdl_atk_rogue_free(g);
}

/* ---- layer 5: cloud policy ------------------------------------------------------------ */

static void cross_device_publish_is_not_delivered(void **state)
{
    (void)state;
    fdl_atk_result r;
    assert_int_equal(fdl_atk_cross_publish(&g_t, A, B, &r), 0);
    show("cross publish", &r);
    assert_int_equal(r.stage, FDL_ATK_STAGE_PUBLISH);
    assert_has(&r, "observer received it");   /* the control went through: the observer works */
    assert_has(&r, "observer did not receive it");
    assert_has(&r, "denied " A " publish to telemetry/" B);
}

static void cross_device_subscribe_is_refused(void **state)
{
    (void)state;
    traffic tr;
    traffic_start(&tr);
    fdl_atk_result r;
    /* The `se` device as the attacker: its key never leaves the token, it signs for the attacker. */
    int ok = fdl_atk_cross_subscribe(&g_t, SE, B, 1000, &r);
    traffic_stop(&tr);
    show("cross subscribe", &r);
    assert_int_equal(ok, 0);
    assert_int_equal(r.stage, FDL_ATK_STAGE_SUBSCRIBE);
    assert_has(&r, "used inside its token as a signing oracle");
    assert_has(&r, "SUBSCRIBE commands/" B ": SUBACK 0x80 (refused)");
    assert_has(&r, "SUBSCRIBE telemetry/" B ": SUBACK 0x80 (refused)");
    assert_has(&r, "attacker received 0 message(s)");
    assert_has(&r, "denied " SE " subscribe to commands/" B);
}

static void wildcard_subscribe_gets_nothing(void **state)
{
    (void)state;
    traffic tr;
    traffic_start(&tr);
    fdl_atk_result r;
    int ok = fdl_atk_wildcard_subscribe(&g_t, A, 1000, &r);
    traffic_stop(&tr);
    show("wildcard", &r);
    assert_int_equal(ok, 0);
    assert_int_equal(r.stage, FDL_ATK_STAGE_SUBSCRIBE);
    assert_has(&r, "SUBSCRIBE #: SUBACK 0x80 (refused)");
    assert_has(&r, "SUBSCRIBE telemetry/+: SUBACK 0x80 (refused)");
    assert_has(&r, "denied " A " subscribe to #");
}

static void junk_payloads_are_dropped(void **state)
{
    (void)state;
    fdl_atk_result r;
    assert_int_equal(fdl_atk_junk_payloads(&g_t, A, &r), 0);
    show("junk", &r);
    assert_int_equal(r.stage, FDL_ATK_STAGE_PAYLOAD);
    assert_has(&r, "valid telemetry (control)");
    assert_has(&r, "observer received it");   /* the control */
    assert_null(strstr(r.evidence, "RECEIVED"));
    assert_has(&r, "dropped payload from " A);
    assert_has(&r, "closed by the broker");
}

static void widened_policy_lets_the_wildcard_through(void **state)
{
    (void)state;
    fdl_atk_result w, r;
    fdl_atk_policy_saved *saved = NULL;
    assert_int_equal(fdl_atk_policy_widen(&g_t, NULL, NULL, &saved, &w), 0);
    show("widen", &w);
    assert_int_equal(w.succeeded, 1);
    assert_has(&w, "allow subscribe telemetry/#");
    traffic tr;
    traffic_start(&tr);
    int ok = fdl_atk_wildcard_subscribe(&g_t, A, 1000, &r);
    show("wildcard, policy widened", &r);
    assert_int_equal(fdl_atk_policy_restore(&g_t, saved, &w), 0);
    fdl_atk_policy_saved_free(saved);
    fdl_atk_result again;
    int ok2 = fdl_atk_wildcard_subscribe(&g_t, A, 1000, &again);
    traffic_stop(&tr);
    show("wildcard, policy restored", &again);
    assert_int_equal(ok, 1);
    assert_has(&r, "attacker received telemetry/" B);
    assert_int_equal(ok2, 0);
}

int main(void)
{
    /* Like fleetdrill (sim/cli.c): a peer that resets a connection mid-write (the broker
     * refusing an attacker) must be an EPIPE, not a signal that kills the process. libuv
     * writes without MSG_NOSIGNAL and leaves SIGPIPE to the application. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stolen_certificate_without_key_is_refused),
        cmocka_unit_test(flash_key_reused_from_another_address_connects),
        cmocka_unit_test(flash_key_behind_a_closed_debug_port_is_not_read),
        cmocka_unit_test(se_key_extraction_is_refused_by_the_token),
        cmocka_unit_test(tls12_downgrade_is_refused),
        cmocka_unit_test(plaintext_connect_is_refused),
        cmocka_unit_test(rogue_ca_refused_when_pinning_and_leaks_when_not),
        cmocka_unit_test(cross_device_publish_is_not_delivered),
        cmocka_unit_test(cross_device_subscribe_is_refused),
        cmocka_unit_test(wildcard_subscribe_gets_nothing),
        cmocka_unit_test(junk_payloads_are_dropped),
        cmocka_unit_test(widened_policy_lets_the_wildcard_through),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
