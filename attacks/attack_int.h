/*
 * attacks/attack_int.h — private to attacks/: what one attack call sets up and
 * tears down (the state paths, a random generator, the fleet root the attacker
 * verifies the broker with, the observer's identity).
 */
#ifndef FDL_ATTACK_INT_H
#define FDL_ATTACK_INT_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "attacks/attack.h"
#include "attacks/session.h"
#include "sim/identity.h"

/* Bounds of every network wait an attack makes, in ms, and why. */
#define ATK_CONNECT_MS 5000u   /* TCP + TLS + CONNACK on loopback take milliseconds; 5 s covers a loaded CI box */
#define ATK_ACK_MS 3000u       /* one SUBACK / PUBACK */
#define ATK_SETTLE_MS 600u     /* after an action: the broker delivers or logs well within this */
#define ATK_LOG_WAIT_MS 1500u  /* Mosquitto's log line may trail its action */

/* Mosquitto logs a failed TLS accept in one of two forms, depending on whether the
 * client's first bytes were already there when it accepted ("Client connection from
 * <addr> failed: <error>") or came later ("OpenSSL Error[0]: <error>"); both quote
 * OpenSSL's error string, which names its library. */
#define ATK_BROKER_TLS_ERROR "SSL routines"

typedef struct atk_env {
    fdl_state st;
    const fdl_atk_target *t;
    const char *server_name;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt root;       /* <state>/pki/root.pem: the fleet root (public) */
    mbedtls_x509_crt obs_cert;   /* the observer: svc-ingest */
    mbedtls_pk_context obs_key;
    uint64_t log_from;           /* broker log offset when the attack began */
} atk_env;

/* Opens the env for t; on failure notes why in r and returns -1 (close it anyway). */
int atk_env_open(atk_env *e, const fdl_atk_target *t, fdl_atk_result *r);
void atk_env_close(atk_env *e);

/* A TLS configuration that trusts the fleet root and authenticates with cert/key (may be NULL). */
fdl_tls_client_cfg atk_env_tls(atk_env *e, mbedtls_x509_crt *cert, mbedtls_pk_context *key);

/* A session to the target's broker. */
fdl_atk_sess *atk_env_sess(atk_env *e, fdl_atk_loop *l, const char *client_id, const fdl_tls_client_cfg *tls,
                           uint32_t source_ipv4);

/*
 * The observer: the ingest actor (svc-ingest, allowed to read telemetry/+),
 * connected and subscribed to telemetry/+ on l. NULL (with a note) if it cannot be.
 */
fdl_atk_sess *atk_env_observer(atk_env *e, fdl_atk_loop *l, fdl_atk_result *r);

/* Loads device id's identity (certificate + key: token-backed for `se`). -1 with a note. */
int atk_env_identity(atk_env *e, const char *id, fdl_identity *idn, fdl_atk_result *r);

/* A marker unique to this attack call ("atk-<hex>") for recognising our own messages. */
void atk_env_marker(atk_env *e, char *buf, size_t cap);

/* Valid telemetry (passes the payload rules) that carries marker in a field value. */
void atk_telemetry(const char *marker, char *buf, size_t cap);

#endif
