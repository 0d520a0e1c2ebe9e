/*
 * tests/test_authz.c — the broker's decisions without a broker: registry states decide
 * connections, the device's policy decides topics, and every failure fails closed.
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>

#include "cloud/authz.h"
#include "cloud/pki.h"
#include "cloud/policy.h"
#include "cloud/registry.h"

static char g_dir[512], g_reg[600];
static unsigned char g_der[4][2048];
static size_t g_der_len[4];
static char g_fp[4][65];

/* Issues leaf i for device id with a fresh software key and records it. */
static void issue(fdl_pki *pki, fdl_registry *reg, int64_t ca, mbedtls_ctr_drbg_context *drbg, int i, const char *id)
{
    mbedtls_pk_context k;
    mbedtls_pk_init(&k);
    assert_int_equal(mbedtls_pk_setup(&k, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
    assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(k), mbedtls_ctr_drbg_random, drbg), 0);
    fdl_pki_leaf_req req = {.device_id = id, .public_key = &k};
    fdl_pki_issued out;
    assert_int_equal(fdl_pki_issue(pki, &req, FDL_PKI_DER, g_der[i], sizeof g_der[i], &out), FDL_PKI_OK);
    g_der_len[i] = out.len;
    mbedtls_pk_free(&k);
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    assert_int_equal(mbedtls_x509_crt_parse_der(&crt, g_der[i], g_der_len[i]), 0);
    fdl_reg_cert_state st;
    assert_int_equal(fdl_registry_cert_record_x509(reg, &crt, ca, g_fp[i], &st), FDL_REG_OK);
    mbedtls_x509_crt_free(&crt);
}

static int setup(void **state)
{
    (void)state;
    fdl_test_mkdtemp("authz", g_dir, sizeof g_dir);
    char pki_dir[600];
    snprintf(pki_dir, sizeof pki_dir, "%s/pki", g_dir);
    snprintf(g_reg, sizeof g_reg, "%s/registry.db", g_dir);
    assert_int_equal(fdl_pki_setup_soft(pki_dir, NULL), FDL_PKI_OK);
    fdl_pki *pki = NULL;
    assert_int_equal(fdl_pki_open_soft(pki_dir, &pki), FDL_PKI_OK);
    fdl_registry *reg = NULL;
    assert_int_equal(fdl_registry_open(g_reg, NULL, &reg), FDL_REG_OK);
    mbedtls_x509_crt ica;
    mbedtls_x509_crt_init(&ica);
    char ipath[700];
    snprintf(ipath, sizeof ipath, "%s/%s", pki_dir, FDL_PKI_INTERMEDIATE_PEM);
    assert_int_equal(mbedtls_x509_crt_parse_file(&ica, ipath), 0);
    int64_t ca = 0;
    assert_int_equal(fdl_registry_ca_register(reg, &ica, "issuing", &ca), FDL_REG_OK);
    mbedtls_x509_crt_free(&ica);
    assert_int_equal(fdl_registry_policy_put(reg, "device-default", FDL_POLICY_DEFAULT_DEVICE, 1), FDL_REG_OK);
    /* Parses in the registry's eyes (it is just text) but not as a policy. */
    assert_int_equal(fdl_registry_policy_put(reg, "broken", "allow fly everywhere\n", 0), FDL_REG_OK);
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, NULL, 0), 0);
    issue(pki, reg, ca, &drbg, 0, "dev-000001");   /* active, default policy */
    issue(pki, reg, ca, &drbg, 1, "dev-000002");   /* pending */
    issue(pki, reg, ca, &drbg, 2, "dev-000003");   /* active, broken policy */
    issue(pki, reg, ca, &drbg, 3, "dev-000004");   /* active, then revoked */
    assert_int_equal(fdl_registry_cert_activate(reg, g_fp[0], "device-default", "t"), FDL_REG_OK);
    assert_int_equal(fdl_registry_cert_activate(reg, g_fp[2], "broken", "t"), FDL_REG_OK);
    assert_int_equal(fdl_registry_cert_activate(reg, g_fp[3], "device-default", "t"), FDL_REG_OK);
    assert_int_equal(fdl_registry_cert_revoke(reg, g_fp[3], "t"), FDL_REG_OK);
    fdl_registry_free(reg);
    fdl_pki_free(pki);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_test_rmrf(g_dir);
    return 0;
}

static void connect_decisions(void **state)
{
    (void)state;
    char err[256], id[80];
    fdl_authz *a = NULL;
    assert_int_equal(fdl_authz_open(g_reg, &a, err, sizeof err), 0);
    assert_int_equal(fdl_authz_connect(a, g_der[0], g_der_len[0], id, sizeof id), FDL_AUTHZ_ALLOW);
    assert_string_equal(id, "dev-000001");
    assert_int_equal(fdl_authz_connect(a, g_der[1], g_der_len[1], id, sizeof id), FDL_AUTHZ_PENDING);
    assert_int_equal(fdl_authz_connect(a, g_der[3], g_der_len[3], id, sizeof id), FDL_AUTHZ_REVOKED);
    unsigned char other[2048];
    memcpy(other, g_der[0], g_der_len[0]);
    other[g_der_len[0] - 1] ^= 1;   /* a different certificate: unknown fingerprint */
    assert_int_equal(fdl_authz_connect(a, other, g_der_len[0], id, sizeof id), FDL_AUTHZ_UNKNOWN_CERT);
    assert_int_equal(fdl_authz_connect(a, NULL, 0, id, sizeof id), FDL_AUTHZ_NO_CERT);
    fdl_authz_stats s = fdl_authz_get_stats(a);
    assert_int_equal(s.connects_allowed, 1);
    assert_int_equal(s.connects_denied, 4);
    fdl_authz_free(a);
}

static void topic_decisions_fail_closed(void **state)
{
    (void)state;
    char err[256], detail[160];
    fdl_authz *a = NULL;
    assert_int_equal(fdl_authz_open(g_reg, &a, err, sizeof err), 0);
    const char *own = "telemetry/dev-000001", *other = "telemetry/dev-000002";
    assert_int_equal(fdl_authz_check(a, "dev-000001", "c", FDL_POLICY_PUBLISH, own, strlen(own), detail, sizeof detail),
                     FDL_AUTHZ_ALLOW);
    assert_int_equal(
        fdl_authz_check(a, "dev-000001", "c", FDL_POLICY_PUBLISH, other, strlen(other), detail, sizeof detail),
        FDL_AUTHZ_POLICY_DENY);
    assert_non_null(strstr(detail, "default deny"));
    assert_int_equal(fdl_authz_check(a, "dev-000001", "c", FDL_POLICY_SUBSCRIBE, "#", 1, detail, sizeof detail),
                     FDL_AUTHZ_POLICY_DENY);
    /* A policy that does not parse denies everything, even the device's own topic. */
    const char *own3 = "telemetry/dev-000003";
    assert_int_equal(
        fdl_authz_check(a, "dev-000003", "c", FDL_POLICY_PUBLISH, own3, strlen(own3), detail, sizeof detail),
        FDL_AUTHZ_POLICY_ERROR);
    /* Unknown or empty identities are denied. */
    assert_int_equal(fdl_authz_check(a, "dev-999999", "c", FDL_POLICY_PUBLISH, own, strlen(own), NULL, 0),
                     FDL_AUTHZ_REGISTRY_ERROR);
    assert_int_equal(fdl_authz_check(a, NULL, "c", FDL_POLICY_PUBLISH, own, strlen(own), NULL, 0), FDL_AUTHZ_UNSAFE_ID);
    assert_int_equal(fdl_authz_check(a, "", "c", FDL_POLICY_PUBLISH, own, strlen(own), NULL, 0), FDL_AUTHZ_UNSAFE_ID);
    fdl_authz_free(a);
    assert_string_equal(fdl_authz_reason_str(FDL_AUTHZ_REVOKED), "certificate revoked");
    assert_int_equal(fdl_authz_open("/nonexistent/dir/registry.db", &a, err, sizeof err), -1);
    assert_null(a);
}

/* The drill ablations: the registry check and the policy turned off, loudly and only on request. */
static void ablations_open_what_they_say_and_nothing_else(void **state)
{
    (void)state;
    char err[256], id[80];
    fdl_authz *a = NULL;
    fdl_authz_cfg cfg = {.registry_check_off = 1};
    assert_int_equal(fdl_authz_open_cfg(g_reg, &cfg, &a, err, sizeof err), 0);
    fdl_authz_conn c;
    /* Revoked and pending certificates connect as their CN, and the decision says why. */
    assert_int_equal(fdl_authz_connect_ex(a, g_der[3], g_der_len[3], "127.0.0.1", NULL, 0, &c), FDL_AUTHZ_ALLOW);
    assert_string_equal(c.identity, "dev-000004");
    assert_int_equal(c.ablated, 1);
    assert_int_equal(c.ablated_reason, FDL_AUTHZ_REVOKED);
    assert_int_equal(fdl_authz_connect_ex(a, g_der[1], g_der_len[1], "127.0.0.1", NULL, 0, &c), FDL_AUTHZ_ALLOW);
    assert_int_equal(c.ablated_reason, FDL_AUTHZ_PENDING);
    /* An active one is not "ablated": the registry said yes anyway. */
    assert_int_equal(fdl_authz_connect_ex(a, g_der[0], g_der_len[0], "127.0.0.1", NULL, 0, &c), FDL_AUTHZ_ALLOW);
    assert_int_equal(c.ablated, 0);
    /* No certificate, or bytes that are no certificate, still get nowhere. */
    assert_int_equal(fdl_authz_connect(a, NULL, 0, id, sizeof id), FDL_AUTHZ_NO_CERT);
    unsigned char junk[64] = {0x30, 0x03, 0x01, 0x01, 0xff};
    assert_int_not_equal(fdl_authz_connect(a, junk, sizeof junk, id, sizeof id), FDL_AUTHZ_ALLOW);
    /* The policy still applies: the revoked device's deny-all would stop it here. */
    const char *other = "telemetry/dev-000002";
    assert_int_equal(fdl_authz_check(a, "dev-000001", "c", FDL_POLICY_PUBLISH, other, strlen(other), NULL, 0),
                     FDL_AUTHZ_POLICY_DENY);
    fdl_authz_free(a);

    fdl_authz_cfg pol = {.policy_off = 1};
    char detail[160];
    assert_int_equal(fdl_authz_open_cfg(g_reg, &pol, &a, err, sizeof err), 0);
    assert_int_equal(fdl_authz_check(a, "dev-000001", "c", FDL_POLICY_PUBLISH, other, strlen(other), detail,
                                     sizeof detail),
                     FDL_AUTHZ_ALLOW);
    assert_non_null(strstr(detail, "ablation"));
    assert_int_equal(fdl_authz_check(a, "dev-000001", "c", FDL_POLICY_SUBSCRIBE, "#", 1, NULL, 0), FDL_AUTHZ_ALLOW);
    /* ... but the connection check is untouched. */
    assert_int_equal(fdl_authz_connect(a, g_der[3], g_der_len[3], id, sizeof id), FDL_AUTHZ_REVOKED);
    fdl_authz_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(connect_decisions),
        cmocka_unit_test(topic_decisions_fail_closed),
        cmocka_unit_test(ablations_open_what_they_say_and_nothing_else),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
