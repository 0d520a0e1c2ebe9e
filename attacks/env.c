/* attacks/env.c — per-call set-up shared by the attacks (see attack_int.h). */
#include "attacks/attack_int.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cloud/enroll.h"
#include "cloud/pki.h"

int atk_env_open(atk_env *e, const fdl_atk_target *t, fdl_atk_result *r)
{
    memset(e, 0, sizeof *e);
    e->t = t;
    e->server_name = t->server_name ? t->server_name : "localhost";
    mbedtls_entropy_init(&e->ent);
    mbedtls_ctr_drbg_init(&e->drbg);
    mbedtls_x509_crt_init(&e->root);
    mbedtls_x509_crt_init(&e->obs_cert);
    mbedtls_pk_init(&e->obs_key);
    e->log_from = fdl_atk_log_offset(t);
    if (!t->state_dir || !t->host) {
        fdl_atk_note(r, "setup: target without a state directory or host");
        return -1;
    }
    /* fdl_state_init would create a missing directory: a typo must not become an empty fleet. */
    if (access(t->state_dir, F_OK) != 0) {
        fdl_atk_note(r, "setup: state directory %s does not exist", t->state_dir);
        return -1;
    }
    if (fdl_tls_global_init() != 0) {
        fdl_atk_note(r, "setup: PSA crypto init failed");
        return -1;
    }
    static const char pers[] = "fleetdrill-attack";
    if (mbedtls_ctr_drbg_seed(&e->drbg, mbedtls_entropy_func, &e->ent, (const unsigned char *)pers,
                              sizeof pers - 1) != 0) {
        fdl_atk_note(r, "setup: DRBG seed failed");
        return -1;
    }
    if (fdl_state_init(&e->st, t->state_dir) != 0) {
        fdl_atk_note(r, "setup: state directory %s unusable", t->state_dir);
        return -1;
    }
    char path[FDL_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", e->st.pki_dir, FDL_PKI_ROOT_PEM);
    if (mbedtls_x509_crt_parse_file(&e->root, path) != 0) {
        fdl_atk_note(r, "setup: cannot read the fleet root %s", path);
        return -1;
    }
    return 0;
}

void atk_env_close(atk_env *e)
{
    mbedtls_pk_free(&e->obs_key);
    mbedtls_x509_crt_free(&e->obs_cert);
    mbedtls_x509_crt_free(&e->root);
    mbedtls_ctr_drbg_free(&e->drbg);
    mbedtls_entropy_free(&e->ent);
}

fdl_tls_client_cfg atk_env_tls(atk_env *e, mbedtls_x509_crt *cert, mbedtls_pk_context *key)
{
    fdl_tls_client_cfg c;
    memset(&c, 0, sizeof c);
    c.trust = &e->root;
    c.own_cert = cert;
    c.own_key = key;
    c.server_name = e->server_name;
    c.f_rng = mbedtls_ctr_drbg_random;
    c.p_rng = &e->drbg;
    return c;
}

fdl_atk_sess *atk_env_sess(atk_env *e, fdl_atk_loop *l, const char *client_id, const fdl_tls_client_cfg *tls,
                           uint32_t source_ipv4)
{
    fdl_atk_sess_cfg sc = {
        .host = e->t->host, .port = e->t->port, .source_ipv4 = source_ipv4, .client_id = client_id, .tls = *tls};
    return fdl_atk_sess_new(l, &sc);
}

fdl_atk_sess *atk_env_observer(atk_env *e, fdl_atk_loop *l, fdl_atk_result *r)
{
    char cert[FDL_PATH_MAX + 64], key[FDL_PATH_MAX + 64];
    fdl_enroll_actor_paths(e->st.pki_dir, FDL_ACTOR_INGEST, cert, key, sizeof cert);
    if (mbedtls_x509_crt_parse_file(&e->obs_cert, cert) != 0 ||
        mbedtls_pk_parse_keyfile(&e->obs_key, key, NULL, mbedtls_ctr_drbg_random, &e->drbg) != 0) {
        fdl_atk_note(r, "observer: cannot load %s identity from %s", FDL_ACTOR_INGEST, cert);
        return NULL;
    }
    fdl_tls_client_cfg tls = atk_env_tls(e, &e->obs_cert, &e->obs_key);
    char cid[64];
    snprintf(cid, sizeof cid, "atk-observer-%08x", (unsigned)(fdl_atk_now_us() & 0xffffffffu));
    fdl_atk_sess *o = atk_env_sess(e, l, cid, &tls, 0);
    if (fdl_atk_sess_connect(o, ATK_CONNECT_MS, "observer (" FDL_ACTOR_INGEST ")", NULL) != FDL_ATK_STAGE_NONE) {
        const char *why = "";
        fdl_atk_sess_closed(o, &why);
        fdl_atk_note(r, "observer (%s) could not connect: %s", FDL_ACTOR_INGEST, why);
        return NULL;
    }
    int code = fdl_atk_sess_subscribe(o, "telemetry/+", ATK_ACK_MS);
    if (code != 1 && code != 0) {
        fdl_atk_note(r, "observer (%s) subscribe telemetry/+ refused: SUBACK %d", FDL_ACTOR_INGEST, code);
        return NULL;
    }
    return o;
}

int atk_env_identity(atk_env *e, const char *id, fdl_identity *idn, fdl_atk_result *r)
{
    char err[256] = "";
    fdl_profile prof;
    if (fdl_identity_profile(&e->st, id, &prof) == 0 && prof == FDL_PROFILE_SE && !e->t->se) {
        fdl_atk_note(r, "setup: %s is an `se` device and the target has no PKCS#11 module", id);
        return -1;
    }
    if (fdl_identity_load(&e->st, e->t->se, id, idn, mbedtls_ctr_drbg_random, &e->drbg, err, sizeof err) != 0) {
        fdl_atk_note(r, "setup: identity %s: %s", id, err);
        return -1;
    }
    return 0;
}

void atk_env_marker(atk_env *e, char *buf, size_t cap)
{
    uint32_t v = 0;
    mbedtls_ctr_drbg_random(&e->drbg, (unsigned char *)&v, sizeof v);
    /* Digits only: the payload rules keep numbers, so the marker survives canonicalisation. */
    snprintf(buf, cap, "7%08u", (unsigned)(v % 100000000u));
}

void atk_telemetry(const char *marker, char *buf, size_t cap)
{
    snprintf(buf, cap, "{\"seq\":%s,\"ts\":1,\"battery\":50,\"torque\":1,\"usage_minutes\":1}", marker);
}
