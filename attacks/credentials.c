/* attacks/credentials.c — stolen certificate and extracted key (see credentials.h). */
#include "attacks/credentials.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/ecp.h>
#include <p11-kit/pkcs11.h>

#include "attacks/attack_int.h"
#include "devices/efuse.h"

/* What the broker's TLS layer (OpenSSL) and the plugin log about a refused or accepted client. */
static void note_broker(atk_env *e, fdl_atk_result *r, const char *needle)
{
    if (fdl_atk_log_wait(e->t, e->log_from, needle, 4, ATK_LOG_WAIT_MS, r) <= 0)
        fdl_atk_note(r, "broker log: no line with \"%s\" since the attack began", needle);
}

int fdl_atk_stolen_cert(const fdl_atk_target *t, const char *victim_id, fdl_atk_result *r)
{
    atk_env e;
    fdl_atk_loop *l = NULL;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_x509_crt_init(&cert);
    mbedtls_pk_init(&key);
    int stage = FDL_ATK_STAGE_SETUP;
    fdl_atk_result_begin(r);
    if (atk_env_open(&e, t, r) != 0)
        goto cleanup;
    char path[FDL_PATH_MAX + 64];
    fdl_identity_path(&e.st, victim_id, "cert.pem", path, sizeof path);
    if (mbedtls_x509_crt_parse_file(&cert, path) != 0) {
        fdl_atk_note(r, "setup: cannot read %s", path);
        goto cleanup;
    }
    fdl_atk_note(r, "copied %s's certificate (%s), without its private key", victim_id, path);
    if (mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
        mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key), mbedtls_ctr_drbg_random, &e.drbg) != 0) {
        fdl_atk_note(r, "setup: P-256 key generation failed");
        goto cleanup;
    }
    int pair = mbedtls_pk_check_pair(&cert.pk, &key, mbedtls_ctr_drbg_random, &e.drbg);
    fdl_atk_note(r, "generated a fresh P-256 key: %s the certificate's public key",
                 pair == 0 ? "MATCHES (impossible)" : "does not match");
    if (!(l = fdl_atk_loop_new()))
        goto cleanup;
    fdl_tls_client_cfg tls = atk_env_tls(&e, &cert, &key);
    fdl_atk_sess *s = atk_env_sess(&e, l, victim_id, &tls, 0);
    stage = fdl_atk_sess_connect(s, ATK_CONNECT_MS, "attacker", r);
    note_broker(&e, r, stage == FDL_ATK_STAGE_NONE ? "New client connected" : ATK_BROKER_TLS_ERROR);
cleanup:
    fdl_atk_loop_free(l);
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&cert);
    atk_env_close(&e);
    fdl_atk_result_end(r, stage == FDL_ATK_STAGE_NONE, stage);
    return r->succeeded;
}

static const char *rv_name(unsigned long rv)
{
    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_ATTRIBUTE_SENSITIVE: return "CKR_ATTRIBUTE_SENSITIVE";
    case CKR_ATTRIBUTE_TYPE_INVALID: return "CKR_ATTRIBUTE_TYPE_INVALID";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    default: return "CK_RV";
    }
}

/* `se`: ask the token for the private value; the token must refuse. Returns 1 if it gave key bytes. */
static int extract_from_token(fdl_identity *idn, fdl_atk_result *r)
{
    unsigned char value[128];
    unsigned long len = sizeof value;
    unsigned long rv = fdl_se_key_get_private_attr(idn->se_key, CKA_VALUE, value, &len);
    int got = rv == CKR_OK && len != (unsigned long)-1 && len > 0;
    fdl_atk_note(r, "C_GetAttributeValue(private key, CKA_VALUE) -> %s (0x%08lx)%s", rv_name(rv), rv,
                 got ? ": KEY BYTES RETURNED" : ": no key bytes");
    CK_BBOOL flag = 0;
    unsigned long flen = sizeof flag;
    if (fdl_se_key_get_private_attr(idn->se_key, CKA_SENSITIVE, &flag, &flen) == CKR_OK)
        fdl_atk_note(r, "private key CKA_SENSITIVE = %s", flag ? "true" : "false");
    flen = sizeof flag;
    if (fdl_se_key_get_private_attr(idn->se_key, CKA_EXTRACTABLE, &flag, &flen) == CKR_OK)
        fdl_atk_note(r, "private key CKA_EXTRACTABLE = %s", flag ? "true" : "false");
    memset(value, 0, sizeof value);
    return got;
}

int fdl_atk_extracted_key(const fdl_atk_target *t, const char *victim_id, uint32_t source_ipv4, fdl_atk_result *r)
{
    atk_env e;
    fdl_atk_loop *l = NULL;
    fdl_identity idn;
    int have_idn = 0, stage = FDL_ATK_STAGE_SETUP;
    fdl_atk_result_begin(r);
    if (atk_env_open(&e, t, r) != 0)
        goto cleanup;
    fdl_profile prof;
    if (fdl_identity_profile(&e.st, victim_id, &prof) != 0) {
        fdl_atk_note(r, "setup: %s has no identity", victim_id);
        goto cleanup;
    }
    char path[FDL_PATH_MAX + 64];
    /* The probe goes in through the debug port: the device's debug-disabled eFuse
     * decides whether there is a way in at all (a device without a firmware model
     * has no fuses, and its flash is read directly, as before). */
    fdl_identity_path(&e.st, victim_id, "fw/efuse", path, sizeof path);
    fdl_efuse *fuses = NULL;
    if (fdl_efuse_open(path, &fuses) == FDL_EFUSE_OK) {
        bool closed = fdl_efuse_debug_disabled(fuses);
        fdl_efuse_free(fuses);
        if (closed && prof != FDL_PROFILE_SE) {
            fdl_atk_note(r, "debug probe on %s: the debug port is closed (eFuse debug-disabled blown, %s): "
                            "flash cannot be read", victim_id, path);
            stage = FDL_ATK_STAGE_KEY_EXTRACT;
            goto cleanup;
        }
        if (closed)   /* the token is the layer under test: suppose the flash leaked another way */
            fdl_atk_note(r, "debug probe on %s: the debug port is closed (eFuse debug-disabled blown); supposing "
                            "its flash leaked anyway (a decapped chip), the secure element is asked", victim_id);
        else
            fdl_atk_note(r, "debug probe on %s: the debug port is open (eFuse debug-disabled not blown): flash "
                            "read through it", victim_id);
    }
    if (prof == FDL_PROFILE_SE) {
        /* The probe reads the PIN from the device's flash, as it would read a key file there. */
        fdl_atk_note(r, "%s is an `se` device: private key in its secure element (PKCS#11 token)", victim_id);
        if (atk_env_identity(&e, victim_id, &idn, r) != 0)
            goto cleanup;
        have_idn = 1;
        fdl_atk_note(r, "logged in to the token with the PIN read from the device's flash");
        stage = extract_from_token(&idn, r) ? FDL_ATK_STAGE_NONE : FDL_ATK_STAGE_KEY_EXTRACT;
        goto cleanup;
    }
    fdl_identity_path(&e.st, victim_id, "key.pem", path, sizeof path);
    if (atk_env_identity(&e, victim_id, &idn, r) != 0)
        goto cleanup;
    have_idn = 1;
    fdl_atk_note(r, "%s is a `flash` device: read its private key from %s (%zu-bit EC key, extractable by design)",
                 victim_id, path, mbedtls_pk_get_bitlen(idn.key));
    if (!source_ipv4)
        source_ipv4 = htonl(0x7f000042);   /* 127.0.0.66 */
    char src[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &source_ipv4, src, sizeof src);
    if (!(l = fdl_atk_loop_new()))
        goto cleanup;
    fdl_atk_sess *obs = atk_env_observer(&e, l, r);
    char cid[FDL_PKI_DEVICE_ID_MAX + 8];
    snprintf(cid, sizeof cid, "%s-clone", victim_id);
    fdl_tls_client_cfg tls = atk_env_tls(&e, &idn.cert, idn.key);
    fdl_atk_sess *s = atk_env_sess(&e, l, cid, &tls, source_ipv4);
    fdl_atk_note(r, "connecting as %s (client id %s) from source address %s", victim_id, cid, src);
    stage = fdl_atk_sess_connect(s, ATK_CONNECT_MS, "attacker", r);
    if (stage == FDL_ATK_STAGE_NONE) {
        char marker[16], topic[96], msg[160];
        atk_env_marker(&e, marker, sizeof marker);
        atk_telemetry(marker, msg, sizeof msg);
        snprintf(topic, sizeof topic, "telemetry/%s", victim_id);
        int acked = fdl_atk_sess_publish(s, topic, msg, strlen(msg), ATK_ACK_MS);
        fdl_atk_loop_run_for(l, ATK_SETTLE_MS);
        size_t seen = fdl_atk_sess_count(obs, topic, marker);
        fdl_atk_note(r, "published telemetry seq %s on %s as %s: PUBACK %s; the ingest actor %s it", marker, topic,
                     victim_id, acked > 0 ? "received" : "missing", seen ? "RECEIVED" : "did not receive");
        char needle[64];
        snprintf(needle, sizeof needle, "connected from %s", src);
        note_broker(&e, r, needle);
    }
cleanup:
    fdl_atk_loop_free(l);
    if (have_idn)
        fdl_identity_free(&idn);
    atk_env_close(&e);
    fdl_atk_result_end(r, stage == FDL_ATK_STAGE_NONE, stage);
    return r->succeeded;
}
