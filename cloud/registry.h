/*
 * cloud/registry.h — the device registry: CAs, certificates, devices, policies and
 * an append-only audit log, in one sqlite3 database (WAL mode).
 *
 * The broker plugin consults it on every CONNECT (fdl_registry_cert_status), the
 * JITR registration handler records and activates certificates, and the
 * `fleetdrill revoke` CLI revokes from another process while the broker runs.
 * docs/registry.md has the schema, the state machine and the measured figures.
 *
 * Certificate state machine (anything else is FDL_REG_ERR_TRANSITION):
 *
 *     (first sight) --record--> PENDING --activate--> ACTIVE
 *                                  |                     |
 *                                reject                revoke
 *                                  v                     v
 *                                  +-----> REVOKED <-----+      (terminal)
 *
 * CAs: REGISTERED --revoke--> REVOKED (terminal). Revoking a CA moves every
 * certificate it issued to REVOKED in the same transaction.
 *
 * Every state change is one sqlite transaction (BEGIN IMMEDIATE ... COMMIT) that
 * also appends its row to `events`, so a crash at any instant leaves each change
 * either fully applied with its event or not applied at all. Commits use
 * synchronous=FULL: a revocation that returned FDL_REG_OK survives a power
 * loss, not only a process crash (the reason is in docs/registry.md).
 *
 * Threads and processes: a handle (fdl_registry) belongs to one thread at a
 * time; open one handle per thread. Any number of handles in any number of
 * processes may use the same file: readers never block the writer nor each
 * other (WAL), writers queue for up to busy_timeout_ms and then get
 * FDL_REG_ERR_BUSY. A handle sees every change committed by another handle as
 * soon as the commit returned (no caching of results).
 *
 * Identifiers passed in: fingerprints are 64 hex digits (SHA-256 of the DER),
 * either case, stored lowercase; device ids, policy names, CA roles and actors
 * are 1..FDL_REG_ID_MAX bytes of [A-Za-z0-9._-] (the device id rule of
 * cloud/pki.h); reasons are 0..FDL_REG_REASON_MAX bytes of printable ASCII
 * (NULL = none). Anything else is FDL_REG_ERR_ARG and nothing is written.
 *
 * Allocation: the handle and temporary buffers come from sim/alloc.h; sqlite's
 * own memory is sqlite's (it is not routed through the hook).
 */
#ifndef FDL_REGISTRY_H
#define FDL_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/x509_crt.h>

/* Schema version written to PRAGMA user_version; open migrates older files. */
#define FDL_REG_SCHEMA_VERSION 3
/* Hex digits of a SHA-256 fingerprint (a buffer needs one more for the NUL). */
#define FDL_REG_FP_HEX_LEN 64
/* Longest device id, policy name, CA role or actor: the X.520 bound for a CN. */
#define FDL_REG_ID_MAX 64
/* Longest serial number in hex: 32 bytes (RFC 5280 allows 20; we tolerate more). */
#define FDL_REG_SERIAL_HEX_MAX 64
/* Longest reason text, in bytes: one line for an auditor, not a document. */
#define FDL_REG_REASON_MAX 256
/* Longest CA subject as text (mbedtls_x509_dn_gets output), in bytes. */
#define FDL_REG_SUBJECT_MAX 1024
/* Longest CA certificate in PEM, in bytes (an RSA-4096 CA is about 2 KiB). */
#define FDL_REG_PEM_MAX 16384
/* Longest policy document, in bytes. */
#define FDL_REG_POLICY_MAX 65536
/* Longest firmware version string, in bytes. */
#define FDL_REG_FIRMWARE_MAX 64
/* Most records in one fdl_registry_cert_record_batch call: bounds the
 * transaction (and the WAL growth) of a factory-manifest import. */
#define FDL_REG_BATCH_MAX 10000
/* Default wait for another writer's lock, in ms: long enough for a burst of
 * JITR commits (each well under 10 ms), short enough that a stuck writer shows. */
#define FDL_REG_BUSY_TIMEOUT_MS 5000

typedef enum fdl_reg_status {
    FDL_REG_OK = 0,
    FDL_REG_ERR_ARG,        /* NULL, malformed fingerprint/id/reason, over a ceiling */
    FDL_REG_ERR_NOMEM,
    FDL_REG_ERR_DB,         /* sqlite failed (detail in fdl_registry_last_error) */
    FDL_REG_ERR_BUSY,       /* another writer held the lock past busy_timeout_ms */
    FDL_REG_ERR_NOT_FOUND,  /* no such certificate, device, CA or policy */
    FDL_REG_ERR_TRANSITION, /* the state machine refuses this change (nothing written) */
    FDL_REG_ERR_CONFLICT,   /* a record exists with different content, or a CA
                               match is ambiguous */
    FDL_REG_ERR_CA_REVOKED, /* the issuing CA is revoked: nothing is recorded */
    FDL_REG_ERR_SCHEMA,     /* the file was written by a newer schema version */
    FDL_REG_ERR_CORRUPT,    /* integrity_check failed, or states do not match events */
    FDL_REG_ERR_CRYPTO,     /* hashing or encoding a certificate failed */
    FDL_REG_ERR_SMALL,      /* the caller's output buffer is too small */
} fdl_reg_status;

/* Static string; never NULL. */
const char *fdl_reg_strerror(fdl_reg_status st);

typedef enum fdl_reg_cert_state {
    FDL_REG_CERT_PENDING = 1, /* seen, not yet approved: must not connect */
    FDL_REG_CERT_ACTIVE = 2,  /* the only state that authorizes a connection */
    FDL_REG_CERT_REVOKED = 3, /* terminal */
} fdl_reg_cert_state;

/* "PENDING", "ACTIVE", "REVOKED" (as stored), or "?" ; never NULL. */
const char *fdl_reg_cert_state_name(fdl_reg_cert_state s);

typedef struct fdl_registry fdl_registry;

/* Options of fdl_registry_open; NULL means all defaults. */
typedef struct fdl_registry_opts {
    const char *actor;        /* copied; recorded in every event this handle writes,
                                 e.g. "broker" or "cli"; NULL = "fleetdrill" */
    unsigned busy_timeout_ms; /* 0 = FDL_REG_BUSY_TIMEOUT_MS */
} fdl_registry_opts;

/*
 * Opens (creating if missing) the registry at path, switches it to WAL, sets
 * synchronous=FULL, foreign_keys=ON and the busy timeout, then creates or
 * migrates the schema inside one BEGIN IMMEDIATE transaction (so two processes
 * opening a new file at once do not race). FDL_REG_ERR_SCHEMA if the file has a
 * newer user_version than FDL_REG_SCHEMA_VERSION (nothing is changed). On
 * success *out is owned by the caller (fdl_registry_free); on failure *out is NULL.
 */
fdl_reg_status fdl_registry_open(const char *path, const fdl_registry_opts *opts, fdl_registry **out);

/* Finalizes cached statements and closes; fdl_registry_free(NULL) is a no-op. */
void fdl_registry_free(fdl_registry *reg);

/* One line about the last failure on this handle ("" if none); valid until the
 * next call on the handle. */
const char *fdl_registry_last_error(const fdl_registry *reg);

/* Lowercase hex SHA-256 of der[0..len) into out (NUL-terminated). */
fdl_reg_status fdl_registry_fingerprint(const unsigned char *der, size_t len, char out[FDL_REG_FP_HEX_LEN + 1]);

/* ------------------------------------------------------------------------------ */
/* Hot path: one indexed lookup per CONNECT, on a statement prepared once per handle. */

/* What the broker needs to decide a CONNECT. */
typedef struct fdl_reg_cert_info {
    fdl_reg_cert_state state;
    char device_id[FDL_REG_ID_MAX + 1];
    char policy[FDL_REG_ID_MAX + 1]; /* the device's policy; "" if it has none */
    char serial[FDL_REG_SERIAL_HEX_MAX + 1];
    int64_t ca_id;                   /* 0 if the issuer was not recorded */
    int64_t not_before, not_after;   /* Unix seconds */
} fdl_reg_cert_info;

/*
 * Looks up a certificate by fingerprint: one primary-key probe plus one on
 * devices on a cached statement, no transaction, nothing allocated by this
 * module. FDL_REG_ERR_NOT_FOUND if unknown.
 * Only FDL_REG_CERT_ACTIVE may connect; the policy is returned whatever the state.
 */
fdl_reg_status fdl_registry_cert_status(fdl_registry *reg, const char *fingerprint, fdl_reg_cert_info *out);

/* Called once per certificate; fingerprint and info are borrowed for the call.
 * Return 0 to continue, anything else to stop (the function then returns OK).
 * The callback must not use the same handle. */
typedef int (*fdl_reg_cert_cb)(void *ctx, const char *fingerprint, const fdl_reg_cert_info *info);

/* All certificates of a device (index on device_id), oldest first. A device
 * with no certificates calls cb zero times and returns OK. */
fdl_reg_status fdl_registry_device_certs(fdl_registry *reg, const char *device_id, fdl_reg_cert_cb cb, void *ctx);

/* *active = 1 if the device has an ACTIVE certificate (an unknown device has none).
 * Stops at the first one. */
fdl_reg_status fdl_registry_device_has_active(fdl_registry *reg, const char *device_id, int *active);

/* ------------------------------------------------------------------------------ */
/* Certificates. */

/* A certificate seen for the first time. All strings borrowed. */
typedef struct fdl_reg_cert_rec {
    const char *fingerprint; /* 64 hex */
    const char *serial;      /* 1..FDL_REG_SERIAL_HEX_MAX hex digits */
    const char *device_id;   /* the CN */
    int64_t ca_id;           /* issuer from fdl_registry_ca_register; 0 = unknown */
    int64_t not_before, not_after; /* Unix seconds, not_before <= not_after */
    const char *subject;     /* the whole subject as text, for the PII audit; NULL = unknown */
} fdl_reg_cert_rec;

/*
 * Records a certificate as PENDING (creating its device if new), idempotently:
 * a certificate already known with the same serial, device and CA is left as it
 * is (whatever its state) and FDL_REG_OK is returned with its current state in
 * *state (may be NULL). The same fingerprint with different content is
 * FDL_REG_ERR_CONFLICT. FDL_REG_ERR_NOT_FOUND if ca_id is not registered,
 * FDL_REG_ERR_CA_REVOKED if it is revoked (nothing is recorded).
 */
fdl_reg_status fdl_registry_cert_record(fdl_registry *reg, const fdl_reg_cert_rec *rec, fdl_reg_cert_state *state);

/*
 * fdl_registry_cert_record for a parsed certificate (borrowed): fingerprint of
 * crt->raw, serial (leading zero bytes dropped), CN as the device id, validity.
 * ca_id 0 = the registered CA whose subject equals the certificate's issuer
 * (FDL_REG_ERR_NOT_FOUND if none, FDL_REG_ERR_CONFLICT if several: pass ca_id).
 * fp_out (may be NULL) receives the fingerprint.
 */
fdl_reg_status fdl_registry_cert_record_x509(fdl_registry *reg, const mbedtls_x509_crt *crt, int64_t ca_id,
                                             char fp_out[FDL_REG_FP_HEX_LEN + 1], fdl_reg_cert_state *state);

/*
 * Records n (1..FDL_REG_BATCH_MAX) certificates in ONE transaction, each with
 * the rules of fdl_registry_cert_record: all are recorded or none (the first
 * failure rolls everything back and is returned; *failed_index, may be NULL,
 * says which). For factory-manifest imports; *n_new (may be NULL) counts the
 * certificates that were not known before.
 */
fdl_reg_status fdl_registry_cert_record_batch(fdl_registry *reg, const fdl_reg_cert_rec *recs, size_t n,
                                              size_t *n_new, size_t *failed_index);

/* PENDING -> ACTIVE, and sets the device's policy to policy (must exist). */
fdl_reg_status fdl_registry_cert_activate(fdl_registry *reg, const char *fingerprint, const char *policy,
                                          const char *reason);
/* One registration decision: policy != NULL activates with that policy,
 * policy == NULL rejects with reason. Strings borrowed. */
typedef struct fdl_reg_decision {
    const char *fingerprint;
    const char *policy;
    const char *reason;
    int applied;             /* output: 1 if this decision changed the certificate */
} fdl_reg_decision;

/*
 * Applies n (0..FDL_REG_BATCH_MAX) decisions in ONE transaction (one commit for
 * a burst of JITR registrations). Certificates no longer PENDING (decided by
 * an earlier, repeated announcement) or unknown are skipped, not errors;
 * *n_done (may be NULL) counts the applied ones. Any other failure rolls the
 * whole batch back.
 */
fdl_reg_status fdl_registry_cert_decide_batch(fdl_registry *reg, fdl_reg_decision *d, size_t n, size_t *n_done);

/*
 * Certificates issued by the fleet's own CA and trusted at issuance (provisioning
 * by claim): records n (0..FDL_REG_BATCH_MAX) parsed certificates (borrowed; CA
 * found by issuer) and makes each ACTIVE with policies[i], in ONE transaction:
 * all or none. A certificate already ACTIVE is left as it is; one already
 * REVOKED fails the batch (FDL_REG_ERR_TRANSITION).
 */
fdl_reg_status fdl_registry_cert_enroll_batch(fdl_registry *reg, const mbedtls_x509_crt *const *crts,
                                              const char *const *policies, size_t n, const char *reason);

/* PENDING -> REVOKED (the registration handler said no). */
fdl_reg_status fdl_registry_cert_reject(fdl_registry *reg, const char *fingerprint, const char *reason);
/* ACTIVE -> REVOKED. */
fdl_reg_status fdl_registry_cert_revoke(fdl_registry *reg, const char *fingerprint, const char *reason);

/*
 * Revokes every certificate of a device that is not yet REVOKED (ACTIVE ones
 * are revoked, PENDING ones rejected), in one transaction. *n (may be NULL) is
 * how many changed; 0 is not an error. FDL_REG_ERR_NOT_FOUND if no such device.
 */
fdl_reg_status fdl_registry_device_revoke(fdl_registry *reg, const char *device_id, const char *reason, size_t *n);

/* ------------------------------------------------------------------------------ */
/* CAs. */

typedef enum fdl_reg_ca_state {
    FDL_REG_CA_REGISTERED = 1,
    FDL_REG_CA_REVOKED = 2, /* terminal */
} fdl_reg_ca_state;

/*
 * Registers a CA certificate (borrowed; must have basicConstraints CA:true) with
 * a role such as "issuing" or "factory". Idempotent on the fingerprint: a CA
 * already registered returns its id. A revoked CA is never re-registered
 * (FDL_REG_ERR_CA_REVOKED). *ca_id (may be NULL) receives the id (>= 1).
 */
fdl_reg_status fdl_registry_ca_register(fdl_registry *reg, const mbedtls_x509_crt *ca, const char *role,
                                        int64_t *ca_id);

/* The registered CA that issued crt (matched on the issuer name): its id, state
 * (may be NULL) and role (e.g. "issuing", "factory") copied into role[0..role_cap).
 * FDL_REG_ERR_NOT_FOUND if no registered CA has that name. */
fdl_reg_status fdl_registry_ca_of(fdl_registry *reg, const mbedtls_x509_crt *crt, int64_t *ca_id,
                                  fdl_reg_ca_state *state, char *role, size_t role_cap);

/* Finds a CA by fingerprint; state may be NULL. */
fdl_reg_status fdl_registry_ca_find(fdl_registry *reg, const char *fingerprint, int64_t *ca_id,
                                    fdl_reg_ca_state *state);

/* How many certificates of this CA are not REVOKED: the blast radius a CA
 * revocation would have. */
fdl_reg_status fdl_registry_ca_cert_count(fdl_registry *reg, int64_t ca_id, size_t *n_live);

/*
 * REGISTERED -> REVOKED, and every PENDING/ACTIVE certificate of the CA ->
 * REVOKED, each with its event, in one transaction. *n_certs (may be NULL) is
 * how many certificates changed. A revoked CA is FDL_REG_ERR_TRANSITION.
 */
fdl_reg_status fdl_registry_ca_revoke(fdl_registry *reg, int64_t ca_id, const char *reason, size_t *n_certs);

/* Called once per revoked certificate for a CRL: serial (hex, borrowed for the
 * call) and revocation time in Unix seconds. Return 0 to continue. */
typedef int (*fdl_reg_serial_cb)(void *ctx, const char *serial, int64_t revoked_at);

/* Revoked certificates issued by ca_id, in revocation order (index on ca_id,
 * status). The callback must not use the same handle. */
fdl_reg_status fdl_registry_crl_serials(fdl_registry *reg, int64_t ca_id, fdl_reg_serial_cb cb, void *ctx);

/* ------------------------------------------------------------------------------ */
/* Policies and devices. */

/* Creates or replaces a policy (text borrowed, 1..FDL_REG_POLICY_MAX bytes).
 * per_device: 1 if the text is a template with policy variables. */
fdl_reg_status fdl_registry_policy_put(fdl_registry *reg, const char *name, const char *text, int per_device);

/* Copies the policy text (NUL-terminated) into buf[0..cap); *per_device may be
 * NULL. FDL_REG_ERR_SMALL if it does not fit. */
fdl_reg_status fdl_registry_policy_get(fdl_registry *reg, const char *name, char *buf, size_t cap,
                                       int *per_device);

/* What the registration handler's business rules read. */
typedef struct fdl_reg_device {
    int sold;                                   /* 0/1 */
    int recalled;                               /* 0/1 */
    char firmware_version[FDL_REG_FIRMWARE_MAX + 1]; /* "" = unknown; printable ASCII */
    int service;                                /* 0/1: a cloud actor (ingest, provisioning,
                                                   operator), not a device */
    char policy[FDL_REG_ID_MAX + 1];            /* output only ("" = none) */
    int64_t created_at_ms;                      /* output only */
} fdl_reg_device;

/* Creates the device if missing and sets sold, recalled, service and firmware_version
 * (attrs borrowed; policy and created_at_ms are ignored). */
fdl_reg_status fdl_registry_device_put(fdl_registry *reg, const char *device_id, const fdl_reg_device *attrs);

/* fdl_registry_device_put for n (0..FDL_REG_BATCH_MAX) devices in one
 * transaction, all or none: a factory manifest import. */
fdl_reg_status fdl_registry_device_put_batch(fdl_registry *reg, const char *const *ids, const fdl_reg_device *attrs,
                                             size_t n);

/* Reads a device. FDL_REG_ERR_NOT_FOUND if unknown. */
fdl_reg_status fdl_registry_device_get(fdl_registry *reg, const char *device_id, fdl_reg_device *out);

/* ------------------------------------------------------------------------------ */
/* Audit. */

/* One row of the append-only log; every string is borrowed for the callback
 * call only; old_state and reason may be "" (none). */
typedef struct fdl_reg_event {
    int64_t id;       /* increasing, never reused */
    int64_t at_ms;    /* Unix time in ms */
    const char *actor;
    const char *kind; /* "certificate", "ca", "device", "policy" */
    const char *object; /* fingerprint, CA id, device id, policy name */
    const char *old_state;
    const char *new_state;
    const char *reason;
} fdl_reg_event;

typedef int (*fdl_reg_event_cb)(void *ctx, const fdl_reg_event *ev);

/* Events with id > after_id, oldest first; object NULL = all objects. The
 * callback must not use the same handle. */
fdl_reg_status fdl_registry_events(fdl_registry *reg, const char *object, int64_t after_id, fdl_reg_event_cb cb,
                                   void *ctx);

/*
 * Audits the file: PRAGMA integrity_check must say "ok" and every certificate
 * and CA must be in the new_state of its last event. *n_mismatch (may be NULL)
 * counts objects that disagree. FDL_REG_ERR_CORRUPT if either check fails.
 * Reads the whole database: an operator's check, not for the hot path.
 */
fdl_reg_status fdl_registry_check(fdl_registry *reg, size_t *n_mismatch);

/*
 * Attaches policy (must exist; "" = none, i.e. the built-in default device
 * policy) to an existing device, with its event. What `fleetdrill revoke` uses to
 * flip a device to deny-all before it drops the connection.
 */
fdl_reg_status fdl_registry_device_set_policy(fdl_registry *reg, const char *device_id, const char *policy,
                                              const char *reason);

/* ------------------------------------------------------------------------------ */
/* Sessions: what the broker saw connect. The plugin buffers changes in memory
 * and applies them in batches (one transaction per batch), so a connect storm
 * costs one commit per batch, not one per client. */

typedef struct fdl_reg_session {
    int64_t id;              /* chosen by the broker plugin, unique across broker runs */
    int open;                /* 1 = connected (all fields), 0 = disconnected (id, at_ms) */
    int64_t at_ms;
    const char *fingerprint; /* borrowed; 64 hex */
    const char *device_id;   /* borrowed; the registered identity */
    const char *client_id;   /* borrowed; what the client chose (any UTF-8, <= 65535 bytes) */
    const char *address;     /* borrowed; the peer address */
} fdl_reg_session;

/* Applies n (0..FDL_REG_BATCH_MAX) session changes in one transaction: all or none. */
fdl_reg_status fdl_registry_sessions_apply(fdl_registry *reg, const fdl_reg_session *s, size_t n);

/* Marks every open session closed at at_ms (a broker starting: nothing is
 * connected to it yet). *n (may be NULL) is how many were open. */
fdl_reg_status fdl_registry_sessions_close_all(fdl_registry *reg, int64_t at_ms, size_t *n);

/* ------------------------------------------------------------------------------ */
/* Per-identity refusal counters (detection reads them). */

typedef struct fdl_reg_counters {
    uint64_t denied_publish, denied_subscribe, denied_receive;
    uint64_t bad_payload;     /* messages dropped by the payload rules */
    uint64_t refused_connect; /* connections refused (not ACTIVE, rate limited, ...) */
    int64_t updated_ms;       /* output only */
} fdl_reg_counters;

/* Adds deltas[i] to the counters of ids[i] (created at zero if missing), in one
 * transaction. ids need not be registered devices (a refused certificate's CN). */
fdl_reg_status fdl_registry_counters_add(fdl_registry *reg, const char *const *ids, const fdl_reg_counters *deltas,
                                         size_t n);

/* Reads an identity's counters; an identity never counted reads as all zero. */
fdl_reg_status fdl_registry_counters_get(fdl_registry *reg, const char *id, fdl_reg_counters *out);

/* ------------------------------------------------------------------------------ */
/* OTA jobs (docs/ota.md): what the job service decided and what every targeted
 * device reported. Written by the job service (cloud/jobs.h), read by the
 * operator (`fleetdrill ota status`) and by the drills as evidence. */

/* Longest OTA step or job state name, and the tier/version/stage text. */
#define FDL_REG_OTA_WORD_MAX 24
#define FDL_REG_OTA_STAGES_MAX 64
/* Longest signed job document kept, in bytes (devices/jobdoc.h's ceiling plus its envelope). */
#define FDL_REG_OTA_DOC_MAX (64 * 1024 + 128)

/* A job as the service created it; state and stage change as its rollout runs. */
typedef struct fdl_reg_ota_job {
    char id[FDL_REG_ID_MAX + 1];
    char tier[FDL_REG_OTA_WORD_MAX + 1];       /* "application", ... */
    char version[FDL_REG_OTA_WORD_MAX + 1];    /* "1.2.3" */
    uint32_t counter;                          /* security counter of the image */
    char artifact[FDL_REG_ID_MAX + 1];
    char sha256[FDL_REG_FP_HEX_LEN + 1];       /* of the whole image, lowercase hex */
    uint32_t size;                             /* of the whole image, bytes */
    char stages[FDL_REG_OTA_STAGES_MAX + 1];   /* cumulative percentages, e.g. "10,50,100" */
    double max_failure;                        /* halt gate: failed fraction of a stage above this halts */
    uint32_t devices;                          /* targets */
    char state[FDL_REG_OTA_WORD_MAX + 1];      /* HELD, RUNNING, HALTED, COMPLETED */
    int stage;                                 /* 1-based stage reached; 0 = none published yet */
    char reason[FDL_REG_REASON_MAX + 1];       /* why it halted or completed ("" = none) */
    int64_t created_ms, updated_ms;            /* output only */
} fdl_reg_ota_job;

/*
 * Creates the job (state from job->state: "HELD" or "RUNNING") and one status row
 * 'pending' per target (ids[i] in rollout stage stage_of[i], 1-based), in ONE
 * transaction. n: 1..FDL_REG_BATCH_MAX. FDL_REG_ERR_CONFLICT if the job exists.
 */
fdl_reg_status fdl_registry_ota_job_create(fdl_registry *reg, const fdl_reg_ota_job *job, const char *const *ids,
                                           const int *stage_of, size_t n);
/* Sets state, stage and reason (reason may be NULL). FDL_REG_ERR_NOT_FOUND if unknown. */
fdl_reg_status fdl_registry_ota_job_set(fdl_registry *reg, const char *job, const char *state, int stage,
                                        const char *reason);
fdl_reg_status fdl_registry_ota_job_get(fdl_registry *reg, const char *job, fdl_reg_ota_job *out);

/*
 * Records a signed job document (doc[0..len), borrowed) under its seq, and, if
 * published_ms > 0, marks the status row of each of its n targets 'notified'
 * with that seq (rows that already carry a device's step keep it). One transaction.
 */
fdl_reg_status fdl_registry_ota_doc_put(fdl_registry *reg, uint64_t seq, const char *job, int stage,
                                        const uint8_t *doc, size_t len, const char *const *targets, size_t n,
                                        int64_t published_ms);
/* The document of seq into buf[0..cap) (*len its length); job (may be NULL) receives
 * its job id (FDL_REG_ID_MAX + 1 bytes). FDL_REG_ERR_SMALL if it does not fit. */
fdl_reg_status fdl_registry_ota_doc_get(fdl_registry *reg, uint64_t seq, uint8_t *buf, size_t cap, size_t *len,
                                        char *job);

/* One device's line in a job. */
typedef struct fdl_reg_ota_status {
    const char *job;          /* borrowed (set: input; list callbacks: valid for the call) */
    const char *device_id;
    const char *step;         /* pending, notified, or what the device reported: received,
                                 rejected, downloading, verified, written, failed, confirmed,
                                 reverted (devices/ota.h) */
    const char *detail;       /* the device's reason; "" = none */
    uint64_t seq;             /* the document it concerns; 0 = keep */
    int64_t updated_ms;       /* when it was reported (0 = now) */
    int log_only;             /* 1: only appended to the report log, the status row is left
                                 alone (a job the registry does not have, or a device that
                                 already gave its final word) */
} fdl_reg_ota_status;

/* Applies n (0..FDL_REG_BATCH_MAX) reports in one transaction: each is appended
 * to the report log and, unless log_only, upserted as the device's status row
 * (a device the job did not target gets a row with stage 0, so an auditor sees
 * it; the job must exist). Steps are 1..FDL_REG_OTA_WORD_MAX bytes of
 * [A-Za-z0-9._,-], details 0..FDL_REG_REASON_MAX bytes of printable ASCII. */
fdl_reg_status fdl_registry_ota_status_apply(fdl_registry *reg, const fdl_reg_ota_status *s, size_t n);

/* The status of one device in one job; strings copied into the caller's buffers. */
typedef struct fdl_reg_ota_line {
    char job[FDL_REG_ID_MAX + 1];
    char device_id[FDL_REG_ID_MAX + 1];
    int stage;
    char step[FDL_REG_OTA_WORD_MAX + 1];
    uint64_t seq;
    char detail[FDL_REG_REASON_MAX + 1];
    int64_t updated_ms;
} fdl_reg_ota_line;

fdl_reg_status fdl_registry_ota_status_get(fdl_registry *reg, const char *job, const char *device_id,
                                           fdl_reg_ota_line *out);
/* The device's most recent line of any job, pending ones excluded; NOT_FOUND if none. */
fdl_reg_status fdl_registry_ota_status_latest(fdl_registry *reg, const char *device_id, fdl_reg_ota_line *out);

/* Every line of a job, by stage then device id; line borrowed for the call; return
 * non-zero to stop. The callback must not use the same handle. */
typedef int (*fdl_reg_ota_cb)(void *ctx, const fdl_reg_ota_line *line);
fdl_reg_status fdl_registry_ota_status_list(fdl_registry *reg, const char *job, fdl_reg_ota_cb cb, void *ctx);
/* The report log of a device from since_ms (Unix ms) on, oldest first (stage is 0;
 * updated_ms is when it was reported). */
fdl_reg_status fdl_registry_ota_reports(fdl_registry *reg, const char *device_id, int64_t since_ms,
                                        fdl_reg_ota_cb cb, void *ctx);

/* The underlying sqlite3 handle, for read-only reporting queries (cloud/audit.c)
 * on the documented schema. Same thread rule as the handle; never write with it. */
struct sqlite3 *fdl_registry_db(fdl_registry *reg);

#endif /* FDL_REGISTRY_H */
