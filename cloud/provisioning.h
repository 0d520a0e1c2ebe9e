/*
 * cloud/provisioning.h — the provisioning service: a cloud actor (identity
 * svc-provisioning, its own certificate and least-privilege policy) that
 * connects to the broker with libmosquitto and completes just-in-time
 * registration.
 *
 * JITR: the broker plugin records a new factory certificate PENDING and
 * announces it on $fleet/registry/pending. The service reads the device's
 * manufacturing record from the registry, asks the registration rules
 * (cloud/rules.h, Lua), and activates the certificate with the policy the rules
 * name, or rejects it (REVOKED, with the rules' reason). The device, refused
 * meanwhile, retries with backoff and is let in once ACTIVE. A rules error
 * leaves the certificate PENDING (never a silent accept) and is counted.
 *
 * Announcements arrive on libmosquitto's thread (mosquitto_loop_start) and go
 * to a bounded queue; one worker thread owns the registry handle and the Lua
 * state, runs the rules on up to 1000 queued announcements and commits their
 * decisions in one registry transaction (a JITR burst costs one commit per
 * batch, not one per device). Stats are read under a
 * lock from any thread.
 *
 * Provisioning by claim (when cfg->issuer is set): a device connected with the
 * shared claim certificate publishes a CSR on $fleet/claim/<client id>/csr. The
 * worker checks it (cloud/csr.h: PKCS#10, P-256, self-signature, subject exactly
 * CN=<client id>), refuses an identity that is a cloud service or already has
 * an ACTIVE certificate (the claim credential is shared: without that check any
 * holder could take over a provisioned device's name), asks the same Lua rules
 * (device.method == "claim"), issues the certificate from the issuing CA (one
 * token signature), records it ACTIVE with the rules' policy (one transaction
 * per batch), and only then publishes leaf + chain on .../accepted, so the
 * device's reconnect finds it ACTIVE. A refusal goes to .../rejected with its
 * reason. A registry failure answers nothing: the device times out and asks
 * again.
 */
#ifndef FDL_PROVISIONING_H
#define FDL_PROVISIONING_H

#include <stddef.h>
#include <stdint.h>

#include "cloud/pki.h"

typedef struct fdl_prov_cfg {
    const char *host;
    uint16_t port;
    const char *cafile;        /* the fleet root: the only anchor for the broker's certificate */
    const char *certfile;      /* svc-provisioning certificate and key */
    const char *keyfile;
    const char *registry_path;
    const char *rules_path;    /* Lua registration rules */
    fdl_pki *issuer;           /* issuing CA for claims (borrowed; used only by the worker
                                  thread until fdl_prov_stop); NULL = claims not served */
    int verbose;               /* log every decision to stderr */
} fdl_prov_cfg;

typedef struct fdl_prov_stats {
    uint64_t requests;         /* announcements received */
    uint64_t activated, rejected;
    uint64_t rule_errors;      /* rules failed: left PENDING */
    uint64_t registry_errors;
    uint64_t duplicates;       /* repeated announcements of a decided certificate */
    uint64_t queue_dropped;    /* announcements beyond the queue (re-announced on retry) */
    uint64_t decide_p50_us, decide_p99_us; /* announcement (broker clock) to decision committed */
    uint64_t claim_requests;   /* CSRs received */
    uint64_t claim_issued, claim_rejected;
    uint64_t claim_bad_csr;    /* of the rejected: the CSR itself failed a check */
    uint64_t claim_issue_p50_us, claim_issue_p99_us; /* CSR received to certificate published */
    char last_error[256];
} fdl_prov_stats;

typedef struct fdl_prov fdl_prov;

/* Loads the rules, connects, subscribes; returns once the subscription is
 * acknowledged (or fails within 10 s). 0, or -1 with err. */
int fdl_prov_start(const fdl_prov_cfg *cfg, fdl_prov **out, char *err, size_t errcap);

void fdl_prov_get_stats(fdl_prov *p, fdl_prov_stats *out);

/* Disconnects, joins the thread and frees; NULL is a no-op. */
void fdl_prov_stop(fdl_prov *p);

#endif
