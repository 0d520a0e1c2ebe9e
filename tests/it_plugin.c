/*
 * tests/it_plugin.c — the fleetdrill Mosquitto plugin in a real broker on loopback.
 *
 * The registry holds dev-000001 and dev-000002 ACTIVE (default device policy),
 * dev-000003 PENDING, dev-000004 REVOKED; dev-000005 was never recorded. All five
 * hold valid certificates from the fleet CA, so TLS alone would let them all in.
 * dev-000009 holds a certificate from a second CA that the broker's TLS layer
 * trusts (it is in the cafile) but that was never registered.
 * Checked with mosquitto_pub / mosquitto_sub and the broker log:
 *  - only ACTIVE certificates connect; each refusal is logged with a distinct reason;
 *  - a device reaches its own topics and nothing else ('#' and another device's
 *    topics are denied and logged);
 *  - the user name a client claims is ignored: the registry's device id is used.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloud/policy.h"
#include "cloud/registry.h"
#include "fdl_buildcfg.h"
#include "sim/broker.h"
#include "sim/context.h"

static char g_dir[512], g_reg[600];
static fdl_ctx g_ctx;
static fdl_broker *g_broker;

static void record(fdl_registry *reg, int64_t ca, const char *id, const char *final_state)
{
    char path[1200], fp[65];
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    fdl_identity_path(&g_ctx.st, id, "cert.pem", path, sizeof path);
    assert_int_equal(mbedtls_x509_crt_parse_file(&crt, path), 0);
    fdl_reg_cert_state st;
    assert_int_equal(fdl_registry_cert_record_x509(reg, &crt, ca, fp, &st), FDL_REG_OK);
    if (strcmp(final_state, "pending") != 0)
        assert_int_equal(fdl_registry_cert_activate(reg, fp, "device-default", "test"), FDL_REG_OK);
    if (strcmp(final_state, "revoked") == 0)
        assert_int_equal(fdl_registry_cert_revoke(reg, fp, "test"), FDL_REG_OK);
    mbedtls_x509_crt_free(&crt);
}

static int setup(void **state)
{
    (void)state;
    char err[512];
    fdl_test_mkdtemp("plugin", g_dir, sizeof g_dir);
    if (fdl_ctx_open(&g_ctx, g_dir, 1, err, sizeof err) != 0)
        return -1;
    for (uint32_t i = 1; i <= 5; i++) {
        char id[32];
        fdl_device_id(i, id, sizeof id);
        if (fdl_identity_provision(&g_ctx.st, g_ctx.se, g_ctx.pki, id, FDL_PROFILE_FLASH, mbedtls_ctr_drbg_random,
                                   &g_ctx.drbg, err, sizeof err) < 0)
            return -1;
    }
    snprintf(g_reg, sizeof g_reg, "%s/registry.db", g_dir);
    fdl_registry *reg = NULL;
    assert_int_equal(fdl_registry_open(g_reg, NULL, &reg), FDL_REG_OK);
    mbedtls_x509_crt ica;
    mbedtls_x509_crt_init(&ica);
    char path[700];
    snprintf(path, sizeof path, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_INTERMEDIATE_PEM);
    assert_int_equal(mbedtls_x509_crt_parse_file(&ica, path), 0);
    int64_t ca = 0;
    assert_int_equal(fdl_registry_ca_register(reg, &ica, "issuing", &ca), FDL_REG_OK);
    mbedtls_x509_crt_free(&ica);
    assert_int_equal(fdl_registry_policy_put(reg, "device-default", FDL_POLICY_DEFAULT_DEVICE, 1), FDL_REG_OK);
    record(reg, ca, "dev-000001", "active");
    record(reg, ca, "dev-000002", "active");
    record(reg, ca, "dev-000003", "pending");
    record(reg, ca, "dev-000004", "revoked");
    fdl_registry_free(reg);

    /* A second CA, trusted by TLS, unknown to the registry, and a leaf from it. */
    char other[700], cmd[4096], chain[700], leaf_dir[1200];
    snprintf(other, sizeof other, "%s/other-ca", g_dir);
    fdl_pki_opts po = {.name = "Other"};
    assert_int_equal(fdl_pki_setup_soft(other, &po), FDL_PKI_OK);
    fdl_identity_path(&g_ctx.st, "dev-000009", "", leaf_dir, sizeof leaf_dir);
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && openssl ecparam -name prime256v1 -genkey -noout -out %s/key.pem 2>/dev/null && "
             "chmod 600 %s/key.pem",
             leaf_dir, leaf_dir, leaf_dir);
    assert_int_equal(system(cmd), 0);
    {
        fdl_pki *op = NULL;
        mbedtls_pk_context pk;
        mbedtls_pk_init(&pk);
        char kp[1300], cp[1300];
        snprintf(kp, sizeof kp, "%s/key.pem", leaf_dir);
        snprintf(cp, sizeof cp, "%s/cert.pem", leaf_dir);
        assert_int_equal(fdl_pki_open_soft(other, &op), FDL_PKI_OK);
        assert_int_equal(mbedtls_pk_parse_keyfile(&pk, kp, NULL, fdl_pki_random, op), 0);
        fdl_pki_leaf_req req = {.device_id = "dev-000009", .public_key = &pk};
        assert_int_equal(fdl_pki_issue_file(op, &req, cp, NULL), FDL_PKI_OK);
        mbedtls_pk_free(&pk);
        fdl_pki_free(op);
    }
    snprintf(chain, sizeof chain, "%s/cafile.pem", g_dir);
    snprintf(cmd, sizeof cmd, "cat %s/%s %s/%s > %s", g_ctx.st.pki_dir, FDL_PKI_CHAIN_PEM, other, FDL_PKI_CHAIN_PEM,
             chain);
    assert_int_equal(system(cmd), 0);

    char bdir[700], cert[700], key[700], reg_opt[700];
    snprintf(bdir, sizeof bdir, "%s/broker", g_dir);
    snprintf(cert, sizeof cert, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_SERVER_PEM);
    snprintf(key, sizeof key, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_SERVER_KEY_PEM);
    snprintf(reg_opt, sizeof reg_opt, "%s", g_reg);
    fdl_broker_kv kv = {.key = "registry", .value = reg_opt};
    fdl_broker_opts o;
    fdl_broker_opts_init(&o);
    o.dir = bdir;
    o.cafile = chain;
    o.certfile = cert;
    o.keyfile = key;
    o.plugin = FDL_PLUGIN_PATH;
    o.plugin_opts = &kv;
    o.n_plugin_opts = 1;
    if (fdl_broker_start(&o, &g_broker, err, sizeof err) != FDL_BROKER_OK) {
        fprintf(stderr, "broker: %s\n", err);
        return -1;
    }
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

/* Runs a mosquitto client as device id; returns its exit status. extra: further arguments. */
static int client(const char *tool, const char *id, const char *extra, char *out, size_t cap)
{
    char cmd[4096], cert[1200], key[1200], ca[700], outfile[700];
    fdl_identity_path(&g_ctx.st, id, "cert.pem", cert, sizeof cert);
    fdl_identity_path(&g_ctx.st, id, "key.pem", key, sizeof key);
    snprintf(ca, sizeof ca, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_ROOT_PEM);
    snprintf(outfile, sizeof outfile, "%s/client.out", g_dir);
    snprintf(cmd, sizeof cmd, "{ timeout 15 %s -h localhost -p %u --cafile %s --cert %s --key %s %s; } >%s 2>&1", tool,
             (unsigned)fdl_broker_port(g_broker), ca, cert, key, extra, outfile);
    int rc = system(cmd);
    FILE *f = fopen(outfile, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    if (f)
        fclose(f);
    out[n] = 0;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* Waits (briefly) for a line containing needle in the broker log. */
static int log_has(const char *needle)
{
    for (int i = 0; i < 40; i++) {
        FILE *f = fopen(fdl_broker_log_path(g_broker), "r");
        char line[1024];
        int found = 0;
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, needle))
                found = 1;
        if (f)
            fclose(f);
        if (found)
            return 1;
        usleep(50000);
    }
    return 0;
}

static void only_active_certificates_connect(void **state)
{
    (void)state;
    char out[2048];
    assert_int_equal(client("mosquitto_pub", "dev-000001", "-i a1 -t telemetry/dev-000001 -m '{}'", out, sizeof out), 0);
    assert_int_not_equal(client("mosquitto_pub", "dev-000003", "-i p3 -t telemetry/dev-000003 -m x", out, sizeof out), 0);
    assert_true(log_has("client id p3): certificate pending registration"));
    assert_int_not_equal(client("mosquitto_pub", "dev-000004", "-i r4 -t telemetry/dev-000004 -m x", out, sizeof out), 0);
    assert_true(log_has("client id r4): certificate revoked"));
    assert_int_not_equal(client("mosquitto_pub", "dev-000005", "-i u5 -t telemetry/dev-000005 -m x", out, sizeof out), 0);
    assert_true(log_has("client id u5): certificate not in the registry"));
    assert_int_not_equal(client("mosquitto_pub", "dev-000009", "-i o9 -t telemetry/dev-000009 -m x", out, sizeof out), 0);
    assert_true(log_has("client id o9): issuer CA not registered"));
}

static void devices_reach_only_their_own_topics(void **state)
{
    (void)state;
    char out[2048];
    /* Own provisioning topics: subscribe and publish both allowed; the message comes back. */
    char sub[4096];
    snprintf(sub, sizeof sub,
             "-i s1 -t '$fleet/provisioning/dev-000001/#' -C 1 -W 8 -v & sleep 1; "
             "timeout 10 mosquitto_pub -h localhost -p %u --cafile %s/%s --cert %s/dev-000001/cert.pem "
             "--key %s/dev-000001/key.pem -i p1 -t '$fleet/provisioning/dev-000001/request' -m ok; wait",
             (unsigned)fdl_broker_port(g_broker), g_ctx.st.pki_dir, FDL_PKI_ROOT_PEM, g_ctx.st.devices_dir,
             g_ctx.st.devices_dir);
    assert_int_equal(client("mosquitto_sub", "dev-000001", sub, out, sizeof out), 0);
    assert_non_null(strstr(out, "$fleet/provisioning/dev-000001/request ok"));

    /* OTA topics go one way each: a device cannot publish its own job document
     * nor feed itself blocks (docs/ota.md). */
    (void)client("mosquitto_pub", "dev-000001", "-i j1 -t '$fleet/jobs/dev-000001/notify' -m x", out, sizeof out);
    assert_true(log_has("denied dev-000001 publish to $fleet/jobs/dev-000001/notify: denied by policy"));
    (void)client("mosquitto_pub", "dev-000001", "-i j2 -t '$fleet/ota/dev-000001/block' -m x", out, sizeof out);
    assert_true(log_has("denied dev-000001 publish to $fleet/ota/dev-000001/block: denied by policy"));

    /* Another device's telemetry: the broker drops it and says why. */
    (void)client("mosquitto_pub", "dev-000001", "-i x1 -t telemetry/dev-000002 -m spoof", out, sizeof out);
    assert_true(log_has("denied dev-000001 publish to telemetry/dev-000002: denied by policy"));
    /* A wildcard subscription is refused (SUBACK failure) and nothing arrives. */
    (void)client("mosquitto_sub", "dev-000001", "-i w1 -t '#' -C 1 -W 3", out, sizeof out);
    assert_true(log_has("denied dev-000001 subscribe to #"));
    assert_null(strstr(out, "spoof"));
    /* Another device's commands cannot be subscribed either. */
    (void)client("mosquitto_sub", "dev-000001", "-i c1 -t commands/dev-000002 -C 1 -W 3", out, sizeof out);
    assert_true(log_has("denied dev-000001 subscribe to commands/dev-000002"));
}

static void claimed_user_name_is_ignored(void **state)
{
    (void)state;
    char out[2048];
    /* dev-000001 claims to be dev-000002: the certificate decides, so this is still denied. */
    (void)client("mosquitto_pub", "dev-000001", "-i y1 -u dev-000002 -t telemetry/dev-000002 -m claim", out,
                 sizeof out);
    assert_true(log_has("New client connected from 127.0.0.1"));
    assert_true(log_has("as y1 (p2, c1, k60, u'dev-000001')"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(only_active_certificates_connect),
        cmocka_unit_test(devices_reach_only_their_own_topics),
        cmocka_unit_test(claimed_user_name_is_ignored),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
