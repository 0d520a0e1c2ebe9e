/*
 * cloud/authz.h — the broker's security decisions, as plain C a Mosquitto plugin calls.
 *
 * Connect: the client's certificate (already verified against the fleet CA by
 * TLS) must be recorded in the registry as ACTIVE; its device id becomes the
 * connection's identity (the MQTT user name), whatever the client claimed.
 * Publish / subscribe / receive: the device's policy (named in the registry;
 * none = the built-in default device policy), expanded for this identity,
 * decides; default deny. Decisions are looked up per request, so a revocation
 * or a policy change in the registry applies to the next request.
 *
 * Every decision comes with a reason the caller logs. Thread safety: one
 * fdl_authz per thread (Mosquitto 2.0 runs plugins on one thread).
 */
#ifndef FDL_AUTHZ_H
#define FDL_AUTHZ_H

#include <stddef.h>
#include <stdint.h>

#include "cloud/policy.h"

typedef enum fdl_authz_reason {
    FDL_AUTHZ_ALLOW = 0,
    FDL_AUTHZ_NO_CERT,         /* no client certificate */
    FDL_AUTHZ_UNKNOWN_CERT,    /* certificate not in the registry */
    FDL_AUTHZ_PENDING,         /* recorded, not (yet) activated */
    FDL_AUTHZ_REVOKED,         /* certificate revoked */
    FDL_AUTHZ_UNSAFE_ID,       /* the device id cannot be used in a policy (/, +, #, $...) */
    FDL_AUTHZ_REGISTRY_ERROR,  /* the registry could not answer: fail closed */
    FDL_AUTHZ_POLICY_ERROR,    /* the device's policy is missing or does not parse: fail closed */
    FDL_AUTHZ_POLICY_DENY,     /* the policy denies this request */
    FDL_AUTHZ_UNREGISTERED_CA, /* the issuer (trusted by TLS) is not a registered CA */
    FDL_AUTHZ_CA_REVOKED,      /* the issuing CA is revoked */
    FDL_AUTHZ_JITR_RECORDED,   /* first sight of a factory certificate: recorded PENDING,
                                  registration requested (the caller notifies the service) */
    FDL_AUTHZ_RATE_LIMITED,    /* registration window: this source is over its rate */
    FDL_AUTHZ_BAD_CERT,        /* the certificate cannot be parsed or has no usable CN */
    FDL_AUTHZ_CLAIM_ID_TAKEN,  /* claim credential with a client id that names a provisioned
                                  device or a service (a session takeover attempt) */
} fdl_authz_reason;

/* Static text; never NULL. */
const char *fdl_authz_reason_str(fdl_authz_reason r);

typedef struct fdl_authz fdl_authz;

/*
 * The registration window (JITR): certificates that are not ACTIVE yet — a factory
 * certificate seen for the first time, or one still PENDING — are admitted to the
 * registry path at most rate_per_source per second per source address (token
 * bucket of burst), and at most rate_global per second in all. Devices retry with
 * backoff, so an honest device needs one or two tries; a flood from one address
 * is refused (FDL_AUTHZ_RATE_LIMITED) before it reaches the registry.
 */
typedef struct fdl_authz_cfg {
    double jitr_rate_per_source; /* per second; 0 = 2 */
    double jitr_burst;           /* 0 = 5 */
    double jitr_rate_global;     /* per second; 0 = 2000 */
    /* Ablations (scenario drills turn one defence off to see what else catches an
     * attack; never set them otherwise):
     * registry_check_off: any certificate the TLS layer accepted connects, as the
     *   device named by its CN, whatever the registry says (unknown, pending,
     *   revoked); the decision says so in fdl_authz_conn.ablated.
     * policy_off: every publish, subscribe and receive is allowed (allow-all
     *   instead of the per-device policy). */
    int registry_check_off;
    int policy_off;
} fdl_authz_cfg;

/* Opens the registry at registry_path (which must exist). cfg NULL = defaults.
 * 0, or -1 with err. Free with fdl_authz_free. */
int fdl_authz_open(const char *registry_path, fdl_authz **out, char *err, size_t errcap);
int fdl_authz_open_cfg(const char *registry_path, const fdl_authz_cfg *cfg, fdl_authz **out, char *err,
                       size_t errcap);

/* What a CONNECT decision found out, for logging and notification. */
typedef struct fdl_authz_conn {
    char identity[80];     /* the registered device id (ALLOW), else the certificate's CN or "" */
    char fingerprint[65];  /* "" if no certificate */
    char serial[65];
    char issuer_role[32];  /* "issuing", "factory", ... or "" */
    int service;           /* ALLOW: 1 if the identity is a cloud actor */
    int ablated;           /* ALLOW only because the registry check is off (registry_check_off):
                              what the registry would have said is in ablated_reason */
    fdl_authz_reason ablated_reason;
} fdl_authz_conn;

/* The identity of the shared claim certificate (cloud/enroll.h FDL_CLAIM_ID). */
#define FDL_AUTHZ_CLAIM_IDENTITY "claim"

/*
 * fdl_authz_connect with the source address (for the registration window rate
 * limit; NULL = "unknown"), the MQTT client id (NULL = unknown) and the current
 * time in ms (monotonic or wall, only differences are used). An unknown
 * certificate whose issuer is a registered CA of role "factory" is recorded
 * PENDING and FDL_AUTHZ_JITR_RECORDED is returned.
 *
 * The claim credential (a service identity FDL_AUTHZ_CLAIM_IDENTITY) is shared by
 * every unprovisioned device and its client id is chosen by the client: MQTT lets
 * a new connection with a client id take over the session of the one holding it,
 * so it is allowed only with a safe client id that is not a service and has no
 * ACTIVE certificate: FDL_AUTHZ_CLAIM_ID_TAKEN, or FDL_AUTHZ_UNSAFE_ID (also for
 * a NULL client id), otherwise.
 */
fdl_authz_reason fdl_authz_connect_ex(fdl_authz *a, const uint8_t *der, size_t len, const char *source,
                                      const char *client_id, int64_t now_ms, fdl_authz_conn *out);
void fdl_authz_free(fdl_authz *a);

/*
 * Decides a CONNECT from the certificate's DER bytes (borrowed). On
 * FDL_AUTHZ_ALLOW the device id is written to identity (cap >= 65).
 */
fdl_authz_reason fdl_authz_connect(fdl_authz *a, const uint8_t *der, size_t len, char *identity, size_t cap);

/*
 * Decides a publish, subscribe (topic is a filter) or receive for identity.
 * detail (may be NULL) receives the policy's reason, e.g. "statement 2 (line 3)"
 * or "default deny".
 */
fdl_authz_reason fdl_authz_check(fdl_authz *a, const char *identity, const char *client_id,
                                 fdl_policy_action action, const char *topic, size_t topic_len, char *detail,
                                 size_t detail_cap);

typedef struct fdl_authz_stats {
    uint64_t connects_allowed, connects_denied;
    uint64_t jitr_recorded, jitr_rate_limited;
    uint64_t requests_allowed, requests_denied;
} fdl_authz_stats;

fdl_authz_stats fdl_authz_get_stats(const fdl_authz *a);

#endif
