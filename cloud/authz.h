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
} fdl_authz_reason;

/* Static text; never NULL. */
const char *fdl_authz_reason_str(fdl_authz_reason r);

typedef struct fdl_authz fdl_authz;

/* Opens the registry at registry_path (which must exist). 0, or -1 with err. Free with fdl_authz_free. */
int fdl_authz_open(const char *registry_path, fdl_authz **out, char *err, size_t errcap);
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
    uint64_t requests_allowed, requests_denied;
} fdl_authz_stats;

fdl_authz_stats fdl_authz_get_stats(const fdl_authz *a);

#endif
