/*
 * cloud/enroll.h — bootstrapping the control plane's registry: the CAs it
 * trusts, the policies it knows, the cloud actors' identities, and enrolment
 * of certificates issued outside JITR.
 *
 * Policies put by fdl_enroll_bootstrap (only when missing: an operator's edit is
 * never overwritten, so `fleetdrill audit` sees what the operator did):
 *   device-default     FDL_POLICY_DEFAULT_DEVICE (per-device template)
 *   deny-all           no statement: what `fleetdrill revoke` attaches
 *   svc-ingest, svc-provisioning, svc-operator, svc-jobs, svc-artifacts
 *                      one per cloud actor, each limited to that actor's
 *                      topics (FDL_ENROLL_POLICY_*)
 * (The claim policy is put by fdl_enroll_claim, only when claims are used: a
 * ${client_id} policy attached to nobody is what `fleetdrill audit` flags high.)
 *
 * Cloud actors are registry devices of kind "service" with a certificate from the
 * issuing CA (CN = the actor name) and a software key in
 * <pki>/actors/<name>-key.pem (mode 0600): services run in the cloud, not in a
 * device's secure element. Every function here is idempotent.
 */
#ifndef FDL_ENROLL_H
#define FDL_ENROLL_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/x509_crt.h>

#include "cloud/pki.h"
#include "cloud/registry.h"

#define FDL_ENROLL_POLICY_DEVICE "device-default"
#define FDL_ENROLL_POLICY_DENY "deny-all"
#define FDL_ENROLL_POLICY_CLAIM "claim"

/* Actor names (also their CN, registry id and policy name). */
#define FDL_ACTOR_INGEST "svc-ingest"
#define FDL_ACTOR_PROVISIONING "svc-provisioning"
#define FDL_ACTOR_OPERATOR "svc-operator"
/* OTA (docs/ota.md): the job service signs and publishes job documents and reads
 * the devices' status reports; the artifact store serves images in blocks and
 * holds no key at all. */
#define FDL_ACTOR_JOBS "svc-jobs"
#define FDL_ACTOR_ARTIFACTS "svc-artifacts"
/* The identity of the shared claim certificate. */
#define FDL_CLAIM_ID "claim"

/* Topics of the control plane. */
#define FDL_TOPIC_PENDING "$fleet/registry/pending"
#define FDL_TOPIC_CONTROL "$CONTROL/fleetdrill/v1"
#define FDL_TOPIC_CONTROL_RESPONSE "$CONTROL/fleetdrill/v1/response"
/* Provisioning by claim: $fleet/claim/<client id>/csr (device -> service) and
 * .../accepted, .../rejected (service -> device). Not under
 * $fleet/provisioning/${thing}/, which device-default grants to each identity:
 * a device named "claim" would otherwise reach every claim exchange. */
#define FDL_TOPIC_CLAIM_PREFIX "$fleet/claim/"
#define FDL_TOPIC_CLAIM_CSR "csr"
#define FDL_TOPIC_CLAIM_ACCEPTED "accepted"
#define FDL_TOPIC_CLAIM_REJECTED "rejected"
/* OTA, per device (devices/ota.h): $fleet/jobs/<id>/notify (job service -> device),
 * $fleet/jobs/<id>/status (device -> job service), $fleet/ota/<id>/get (device ->
 * artifact store), $fleet/ota/<id>/block (artifact store -> device). */
#define FDL_TOPIC_JOBS_PREFIX "$fleet/jobs/"
#define FDL_TOPIC_OTA_PREFIX "$fleet/ota/"
#define FDL_TOPIC_JOBS_NOTIFY "notify"
#define FDL_TOPIC_JOBS_STATUS "status"
#define FDL_TOPIC_OTA_GET "get"
#define FDL_TOPIC_OTA_BLOCK "block"

/* The policy of the shared claim certificate: its own claim exchange only. It
 * is keyed by the client-chosen ${client_id} (the claim certificate is the same
 * for every device, so there is no ${thing} to key on): any holder of the claim
 * credential may ask for any client id. The provisioning service is what stands
 * between that and a takeover: the CSR's subject must be the client id, the
 * registration rules must accept the device, and a device that already has an
 * ACTIVE certificate is refused (docs/provisioning.md). */
#define FDL_ENROLL_POLICY_CLAIM_TEXT                                   \
    "# shared claim certificate: its own claim exchange only\n"        \
    "allow publish   $fleet/claim/${client_id}/csr\n"                  \
    "allow subscribe $fleet/claim/${client_id}/+\n"                    \
    "allow receive   $fleet/claim/${client_id}/accepted\n"             \
    "allow receive   $fleet/claim/${client_id}/rejected\n"

#define FDL_ENROLL_POLICY_INGEST_TEXT                      \
    "# ingest: reads device telemetry, writes nothing\n"   \
    "allow subscribe telemetry/+\n"                        \
    "allow receive   telemetry/+\n"

#define FDL_ENROLL_POLICY_PROVISIONING_TEXT                            \
    "# provisioning: registration requests in, certificates out\n"     \
    "allow subscribe $fleet/registry/pending\n"                        \
    "allow receive   $fleet/registry/pending\n"                        \
    "allow subscribe $fleet/claim/+/csr\n"                             \
    "allow receive   $fleet/claim/+/csr\n"                             \
    "allow publish   $fleet/claim/+/accepted\n"                        \
    "allow publish   $fleet/claim/+/rejected\n"

#define FDL_ENROLL_POLICY_OPERATOR_TEXT                        \
    "# operator: broker control (kick) and device commands\n"  \
    "allow publish   $CONTROL/fleetdrill/v1\n"                 \
    "allow subscribe $CONTROL/fleetdrill/v1/response\n"        \
    "allow receive   $CONTROL/fleetdrill/v1/response\n"        \
    "allow publish   commands/+\n"

/* The job service: job documents out to every device, status reports in. It holds
 * the online job-signing key (its own token), never a firmware key. */
#define FDL_ENROLL_POLICY_JOBS_TEXT                                     \
    "# jobs: signed job documents out, device status reports in\n"      \
    "allow publish   $fleet/jobs/+/notify\n"                            \
    "allow subscribe $fleet/jobs/+/status\n"                            \
    "allow receive   $fleet/jobs/+/status\n"

/* The artifact store: block requests in, blocks out. No key: an attacker who owns
 * it can serve bad bytes (the devices refuse them), not sign anything. */
#define FDL_ENROLL_POLICY_ARTIFACTS_TEXT                                \
    "# artifacts: block requests in, image blocks out; holds no key\n"  \
    "allow subscribe $fleet/ota/+/get\n"                                \
    "allow receive   $fleet/ota/+/get\n"                                \
    "allow publish   $fleet/ota/+/block\n"

typedef struct fdl_enroll_cas {
    int64_t issuing;   /* the fleet's issuing intermediate */
    int64_t factory;   /* the factory intermediate (JITR); 0 if none */
} fdl_enroll_cas;

/*
 * Registers <pki_dir>/intermediate.pem (role "issuing") and, if factory_dir is
 * not NULL, <factory_dir>/intermediate.pem (role "factory"); puts the missing
 * policies. 0, or -1 with err.
 */
int fdl_enroll_bootstrap(fdl_registry *reg, const char *pki_dir, const char *factory_dir, fdl_enroll_cas *cas,
                         char *err, size_t errcap);

/*
 * Brings the built-in policies of a registry made by an older fleetdrill up to
 * date: a policy whose text is exactly what an earlier release put there (never
 * edited by an operator) is replaced by this release's text; an edited policy is
 * left alone (`fleetdrill audit` judges it). Called by fdl_enroll_bootstrap.
 * *upgraded (may be NULL) counts the policies replaced. 0 or -1 with err.
 */
int fdl_enroll_upgrade_policies(fdl_registry *reg, unsigned *upgraded, char *err, size_t errcap);

/* Paths of an actor's certificate and key under <pki_dir>/actors. */
void fdl_enroll_actor_paths(const char *pki_dir, const char *name, char *cert, char *key, size_t cap);

/*
 * Makes the actor's identity if missing (key file, certificate from pki) and
 * records it ACTIVE in the registry as a service with policy = name. 0 or -1.
 */
int fdl_enroll_actor(fdl_registry *reg, fdl_pki *pki, const char *pki_dir, const char *name, char *err,
                     size_t errcap);

struct mosquitto;

/*
 * A libmosquitto client for a cloud actor: TLS 1.3, the broker verified against
 * cafile, the actor's certificate and key; the CONNECT is sent (the CONNACK comes
 * through the caller's loop, so set callbacks before looping). ud becomes the
 * callbacks' user data. The client or NULL with err ("<what>: ..."); free with
 * mosquitto_destroy.
 */
struct mosquitto *fdl_enroll_actor_client(const char *what, const char *client_id, void *ud, const char *host,
                                          uint16_t port, const char *cafile, const char *certfile,
                                          const char *keyfile, char *err, size_t errcap);

/* The shared claim certificate: puts the "claim" policy if missing, then makes
 * the identity like an actor's (FDL_CLAIM_ID, <pki>/actors/claim.pem). */
int fdl_enroll_claim(fdl_registry *reg, fdl_pki *pki, const char *pki_dir, char *err, size_t errcap);

/* Every cloud actor at once (ingest, provisioning, operator, jobs, artifacts). */
int fdl_enroll_actors(fdl_registry *reg, fdl_pki *pki, const char *pki_dir, char *err, size_t errcap);

/*
 * Records crt and, if it is PENDING, activates it with policy. *state (may be
 * NULL) receives the final state (a REVOKED certificate stays revoked).
 * 0 or -1 with err.
 */
int fdl_enroll_cert(fdl_registry *reg, const mbedtls_x509_crt *crt, const char *policy, fdl_reg_cert_state *state,
                    char *err, size_t errcap);

#endif
