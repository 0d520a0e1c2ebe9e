/* cloud/enroll.c — registry bootstrap, cloud actor identities, enrolment (see enroll.h). */
#include "cloud/enroll.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mosquitto.h>

#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>

#include "cloud/policy.h"
#include "sim/fsutil.h"

static int register_ca(fdl_registry *reg, const char *dir, const char *role, int64_t *id, char *err, size_t errcap)
{
    char path[1100];
    mbedtls_x509_crt ca;
    mbedtls_x509_crt_init(&ca);
    snprintf(path, sizeof path, "%s/%s", dir, FDL_PKI_INTERMEDIATE_PEM);
    int rc = -1;
    if (mbedtls_x509_crt_parse_file(&ca, path) != 0) {
        snprintf(err, errcap, "%s: not a certificate", path);
        goto cleanup;
    }
    fdl_reg_status st = fdl_registry_ca_register(reg, &ca, role, id);
    if (st != FDL_REG_OK) {
        snprintf(err, errcap, "register %s CA: %s (%s)", role, fdl_reg_strerror(st), fdl_registry_last_error(reg));
        goto cleanup;
    }
    rc = 0;
cleanup:
    mbedtls_x509_crt_free(&ca);
    return rc;
}

static int put_policy_if_missing(fdl_registry *reg, const char *name, const char *text, int per_device, char *err,
                                 size_t errcap)
{
    char probe[2];
    fdl_reg_status st = fdl_registry_policy_get(reg, name, probe, sizeof probe, NULL);
    if (st == FDL_REG_OK || st == FDL_REG_ERR_SMALL)
        return 0;
    if (st == FDL_REG_ERR_NOT_FOUND)
        st = fdl_registry_policy_put(reg, name, text, per_device);
    if (st != FDL_REG_OK) {
        snprintf(err, errcap, "policy %s: %s", name, fdl_reg_strerror(st));
        return -1;
    }
    return 0;
}

/* device-default as releases before the OTA topics shipped it: $fleet/jobs/<id>/# both
 * ways, no $fleet/ota/ topics (a device on it could not fetch a block). */
#define DEVICE_DEFAULT_BEFORE_OTA                                   \
    "# fleetdrill default device policy\n"                          \
    "allow publish   telemetry/${thing}\n"                          \
    "allow subscribe commands/${thing}\n"                           \
    "allow receive   commands/${thing}\n"                           \
    "allow publish   $fleet/provisioning/${thing}/#\n"              \
    "allow subscribe $fleet/provisioning/${thing}/#\n"              \
    "allow receive   $fleet/provisioning/${thing}/#\n"              \
    "allow publish   $fleet/jobs/${thing}/#\n"                      \
    "allow subscribe $fleet/jobs/${thing}/#\n"                      \
    "allow receive   $fleet/jobs/${thing}/#\n"

int fdl_enroll_upgrade_policies(fdl_registry *reg, unsigned *upgraded, char *err, size_t errcap)
{
    static const struct {
        const char *name, *old_text, *text;
        int per_device;
    } k[] = {
        {FDL_ENROLL_POLICY_DEVICE, DEVICE_DEFAULT_BEFORE_OTA, FDL_POLICY_DEFAULT_DEVICE, 1},
    };
    if (upgraded)
        *upgraded = 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        char cur[4096];
        int per = 0;
        fdl_reg_status st = fdl_registry_policy_get(reg, k[i].name, cur, sizeof cur, &per);
        if (st == FDL_REG_ERR_NOT_FOUND || st == FDL_REG_ERR_SMALL)
            continue;   /* absent (bootstrap puts it) or longer than anything we shipped: edited */
        if (st == FDL_REG_OK && (strcmp(cur, k[i].old_text) != 0 || per != k[i].per_device))
            continue;   /* current, or edited by an operator: not ours to change */
        if (st == FDL_REG_OK)
            st = fdl_registry_policy_put(reg, k[i].name, k[i].text, k[i].per_device);
        if (st != FDL_REG_OK) {
            snprintf(err, errcap, "policy %s: %s", k[i].name, fdl_reg_strerror(st));
            return -1;
        }
        if (upgraded)
            (*upgraded)++;
    }
    return 0;
}

int fdl_enroll_bootstrap(fdl_registry *reg, const char *pki_dir, const char *factory_dir, fdl_enroll_cas *cas,
                         char *err, size_t errcap)
{
    memset(cas, 0, sizeof *cas);
    if (register_ca(reg, pki_dir, "issuing", &cas->issuing, err, errcap) != 0)
        return -1;
    if (factory_dir && register_ca(reg, factory_dir, "factory", &cas->factory, err, errcap) != 0)
        return -1;
    static const struct {
        const char *name, *text;
        int per_device;
    } k[] = {
        {FDL_ENROLL_POLICY_DEVICE, FDL_POLICY_DEFAULT_DEVICE, 1},
        {FDL_ENROLL_POLICY_DENY, "# deny-all: attached by `fleetdrill revoke`; no statement, default deny\n", 0},
        {FDL_ACTOR_INGEST, FDL_ENROLL_POLICY_INGEST_TEXT, 0},
        {FDL_ACTOR_PROVISIONING, FDL_ENROLL_POLICY_PROVISIONING_TEXT, 0},
        {FDL_ACTOR_OPERATOR, FDL_ENROLL_POLICY_OPERATOR_TEXT, 0},
        {FDL_ACTOR_JOBS, FDL_ENROLL_POLICY_JOBS_TEXT, 0},
        {FDL_ACTOR_ARTIFACTS, FDL_ENROLL_POLICY_ARTIFACTS_TEXT, 0},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (put_policy_if_missing(reg, k[i].name, k[i].text, k[i].per_device, err, errcap) != 0)
            return -1;
    return fdl_enroll_upgrade_policies(reg, NULL, err, errcap);
}

void fdl_enroll_actor_paths(const char *pki_dir, const char *name, char *cert, char *key, size_t cap)
{
    snprintf(cert, cap, "%s/actors/%s.pem", pki_dir, name);
    snprintf(key, cap, "%s/actors/%s-key.pem", pki_dir, name);
}

int fdl_enroll_cert(fdl_registry *reg, const mbedtls_x509_crt *crt, const char *policy, fdl_reg_cert_state *state,
                    char *err, size_t errcap)
{
    char fp[FDL_REG_FP_HEX_LEN + 1];
    fdl_reg_cert_state s = 0;
    fdl_reg_status st = fdl_registry_cert_record_x509(reg, crt, 0, fp, &s);
    if (st == FDL_REG_OK && s == FDL_REG_CERT_PENDING) {
        st = fdl_registry_cert_activate(reg, fp, policy, "enrolled at issuance");
        s = FDL_REG_CERT_ACTIVE;
    }
    if (st != FDL_REG_OK) {
        snprintf(err, errcap, "enrol certificate: %s (%s)", fdl_reg_strerror(st), fdl_registry_last_error(reg));
        return -1;
    }
    if (state)
        *state = s;
    return 0;
}

int fdl_enroll_actor(fdl_registry *reg, fdl_pki *pki, const char *pki_dir, const char *name, char *err,
                     size_t errcap)
{
    char dir[1100], cert[1200], key[1200];
    unsigned char pem[2048];
    mbedtls_pk_context pk;
    mbedtls_x509_crt crt;
    mbedtls_pk_init(&pk);
    mbedtls_x509_crt_init(&crt);
    int rc = -1;
    snprintf(dir, sizeof dir, "%s/actors", pki_dir);
    fdl_enroll_actor_paths(pki_dir, name, cert, key, sizeof cert);
    if (fdl_mkdir_p(dir, 0700) != 0) {
        snprintf(err, errcap, "%s: cannot create", dir);
        goto cleanup;
    }
    if (access(cert, F_OK) != 0) {
        if (access(key, F_OK) == 0) {
            if (mbedtls_pk_parse_keyfile(&pk, key, NULL, fdl_pki_random, pki) != 0) {
                snprintf(err, errcap, "%s: not a private key", key);
                goto cleanup;
            }
        } else if (mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
                   mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk), fdl_pki_random, pki) != 0 ||
                   mbedtls_pk_write_key_pem(&pk, pem, sizeof pem) != 0 ||
                   fdl_write_file_atomic(key, pem, strlen((char *)pem), 0600) != 0) {
            snprintf(err, errcap, "%s: cannot make the key", key);
            goto cleanup;
        }
        fdl_pki_leaf_req req = {.device_id = name, .public_key = &pk};
        fdl_pki_status ps = fdl_pki_issue_file(pki, &req, cert, NULL);
        if (ps != FDL_PKI_OK) {
            snprintf(err, errcap, "%s: %s (%s)", cert, fdl_pki_strerror(ps), fdl_pki_last_error());
            goto cleanup;
        }
    }
    if (mbedtls_x509_crt_parse_file(&crt, cert) != 0) {
        snprintf(err, errcap, "%s: not a certificate", cert);
        goto cleanup;
    }
    fdl_reg_device d = {.sold = 0, .service = 1};
    fdl_reg_status st = fdl_registry_device_put(reg, name, &d);
    if (st != FDL_REG_OK) {
        snprintf(err, errcap, "actor %s: %s", name, fdl_reg_strerror(st));
        goto cleanup;
    }
    if (fdl_enroll_cert(reg, &crt, name, NULL, err, errcap) != 0)
        goto cleanup;
    rc = 0;
cleanup:
    mbedtls_platform_zeroize(pem, sizeof pem);
    mbedtls_pk_free(&pk);
    mbedtls_x509_crt_free(&crt);
    return rc;
}

int fdl_enroll_claim(fdl_registry *reg, fdl_pki *pki, const char *pki_dir, char *err, size_t errcap)
{
    if (put_policy_if_missing(reg, FDL_ENROLL_POLICY_CLAIM, FDL_ENROLL_POLICY_CLAIM_TEXT, 0, err, errcap) != 0)
        return -1;
    return fdl_enroll_actor(reg, pki, pki_dir, FDL_CLAIM_ID, err, errcap);
}

int fdl_enroll_actors(fdl_registry *reg, fdl_pki *pki, const char *pki_dir, char *err, size_t errcap)
{
    static const char *const names[] = {FDL_ACTOR_INGEST, FDL_ACTOR_PROVISIONING, FDL_ACTOR_OPERATOR,
                                        FDL_ACTOR_JOBS, FDL_ACTOR_ARTIFACTS};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (fdl_enroll_actor(reg, pki, pki_dir, names[i], err, errcap) != 0)
            return -1;
    return 0;
}

struct mosquitto *fdl_enroll_actor_client(const char *what, const char *client_id, void *ud, const char *host,
                                          uint16_t port, const char *cafile, const char *certfile,
                                          const char *keyfile, char *err, size_t errcap)
{
    mosquitto_lib_init();
    struct mosquitto *m = mosquitto_new(client_id, true, ud);
    if (!m) {
        snprintf(err, errcap, "%s: mosquitto_new failed", what);
        return NULL;
    }
    int rc = mosquitto_tls_set(m, cafile, NULL, certfile, keyfile, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_opts_set(m, 1, "tlsv1.3", NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_connect(m, host, port, 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errcap, "%s: connect to %s:%u: %s", what, host, port, mosquitto_strerror(rc));
        mosquitto_destroy(m);
        return NULL;
    }
    return m;
}
