/*
 * cloud/jobs.h — the OTA job service: a cloud actor (identity svc-jobs, its own
 * certificate and least-privilege policy) that signs job documents with the
 * online job key, publishes them on the targeted devices' $fleet/jobs/<id>/notify
 * topics, reads what the devices report on .../status, and runs staged rollouts
 * with a halt gate. docs/ota.md has the protocol and the figures.
 *
 * A job names one image (tier, version, security counter, artifact id, SHA-256
 * and size of the whole image) and its targets. Its rollout goes in stages of
 * cumulative percentages of the targets (10, 50, 100: a 10 % canary, then up to
 * half, then all). Stage k's documents go out only after stage k-1 passed its
 * gate: every device of that stage reported a final step (confirmed; or
 * rejected, failed, reverted) or the stage timed out (silent devices count as
 * failed), and the failed fraction is at most max_failure. Otherwise the job is
 * HALTED and the devices of later stages are never told anything: their
 * registry rows stay 'pending'. The job service does not judge images — it is
 * the delivery path, not the firmware signing authority; the devices check
 * every image (devices/ota.h), so a compromised job service gets a denial of
 * service, not a fleet.
 *
 * Documents (devices/jobdoc.h) carry at most FDL_JOBS_DOC_TARGETS targets each
 * (a stage of 500 devices is 5 documents, each published to its 100 devices'
 * topics) and a seq that increases across documents, jobs and restarts (it is
 * derived from the wall clock, never reused), issued/expires in the fleet's
 * (virtual) time.
 *
 * Everything is recorded in the registry (cloud/registry.h, "OTA jobs"): the job
 * and its state, one status row per target, every document as published, every
 * report as received. Reports arrive on libmosquitto's thread and go to a
 * bounded queue; one worker thread owns the registry handle and the signer,
 * applies reports in batches (one transaction per batch), runs the gates and
 * publishes. Everything else is read under a lock from any thread.
 */
#ifndef FDL_JOBS_H
#define FDL_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "devices/fwimage.h"
#include "sim/vclock.h"

#define FDL_JOBS_STAGES_MAX 8
/* Targets per document: ~13 bytes each, so a document stays near 1.7 KiB and fits
 * a device's MQTT receive buffer (devices/mqtt_client.h) with room to spare. */
#define FDL_JOBS_DOC_TARGETS 100u
/* Targets per job: the registry's batch bound (one transaction creates the job). */
#define FDL_JOBS_TARGETS_MAX 10000u
/* Jobs one service keeps in memory (drills make a handful, a rollout one). */
#define FDL_JOBS_MAX 64u
/* Reports waiting for the worker; more are dropped and counted (the stage's gate then
 * counts the device as silent). The worker drains a batch of 1,000 per transaction, far
 * faster than devices report; 16,384 x 340 bytes = 5.6 MB. */
#define FDL_JOBS_QUEUE_MAX 16384u
/* Reports remembered for fdl_jobs_reports (evidence for drills). */
#define FDL_JOBS_RECENT 4096u
/* Defaults: documents valid for an hour of fleet time; a stage may take 5 real minutes. */
#define FDL_JOBS_VALID_MS (3600u * 1000u)
#define FDL_JOBS_STAGE_TIMEOUT_MS (300u * 1000u)

/* The online job-signing key (cloud/fwsign.h holds it in its own token,
 * fdl_fwsign_jobs_sign). */
typedef struct fdl_jobs_signer {
    /* Wraps the JSON document doc[0..len) into a signed envelope (devices/jobdoc.h)
     * in out[0..cap), *out_len its length. 0 or -1. Called on the service's worker
     * thread only. */
    int (*sign)(void *ud, const uint8_t *doc, size_t len, uint8_t *out, size_t cap, size_t *out_len);
    void *ud;
} fdl_jobs_signer;

typedef struct fdl_jobs_cfg {
    const char *host;
    uint16_t port;
    const char *cafile;           /* the fleet root */
    const char *certfile;         /* svc-jobs certificate and key */
    const char *keyfile;
    const char *registry_path;
    fdl_jobs_signer signer;       /* copied; ud borrowed until fdl_jobs_stop */
    const fdl_vclock *clock;      /* borrowed: the fleet's clock, for issued/expires; NULL = wall clock */
    int verbose;                  /* log gates and publications to stderr */
} fdl_jobs_cfg;

typedef enum fdl_job_state {
    FDL_JOB_HELD = 0,             /* documents signed and recorded, nothing published */
    FDL_JOB_RUNNING,
    FDL_JOB_HALTED,               /* a gate failed: later stages never published */
    FDL_JOB_COMPLETED,            /* every stage passed its gate */
} fdl_job_state;

/* "HELD", "RUNNING", "HALTED", "COMPLETED" (as the registry stores them). */
const char *fdl_job_state_name(fdl_job_state s);

/* What a rollout is to do. Pointers borrowed for fdl_jobs_create only. */
typedef struct fdl_job_spec {
    const char *id;               /* 1..63 of [A-Za-z0-9._-]; NULL = "job-<seq>" */
    unsigned tier;                /* fdl_fw_tier */
    uint32_t version, counter;
    const char *artifact;         /* the artifact store's id */
    uint8_t sha256[32];           /* of the whole image */
    uint32_t size;                /* of the whole image */
    const char *const *targets;   /* device ids, 1..FDL_JOBS_TARGETS_MAX; canary = the first ones */
    size_t n_targets;
    const uint32_t *hw;           /* hardware revisions (the document's "hw"); NULL = any */
    size_t n_hw;
    unsigned stages[FDL_JOBS_STAGES_MAX]; /* cumulative percentages, increasing, 1..100, the
                                             last 100; n_stages 0 = one stage of 100 */
    size_t n_stages;
    double max_failure;           /* 0..1: a stage whose failed fraction is above this halts */
    uint64_t valid_ms;            /* fleet ms a document is valid from its issue; 0 = FDL_JOBS_VALID_MS */
    uint64_t stage_timeout_ms;    /* real ms; 0 = FDL_JOBS_STAGE_TIMEOUT_MS */
    int hold;                     /* 1: sign and record the first stage's documents, publish nothing */
} fdl_job_spec;

/* One stage as it ran. */
typedef struct fdl_job_stage_info {
    unsigned percent;
    uint32_t devices;             /* in this stage (not counting earlier ones) */
    uint32_t confirmed, failed;   /* final reports (failed: rejected, failed, reverted, silent) */
    uint32_t silent;              /* of failed: no final report before the stage timed out */
    double published_s, gated_s;  /* real seconds from the job's creation; gated 0 = not yet */
    uint64_t p50_ms, p99_ms, max_ms; /* notify to confirmed, real ms, of this stage's devices */
} fdl_job_stage_info;

typedef struct fdl_job_info {
    char id[64];
    fdl_job_state state;
    unsigned stage;               /* 1-based stage published last; 0 = none */
    size_t n_stages;
    fdl_job_stage_info stages[FDL_JOBS_STAGES_MAX];
    uint32_t targets;
    uint32_t pending;             /* never notified (later stages of a halted job) */
    uint32_t in_progress;         /* notified, no final report yet */
    uint32_t confirmed, rejected, failed, reverted;
    char reason[256];             /* why it halted or completed */
    double elapsed_s;             /* creation to now, or to its end */
} fdl_job_info;

/* One report as a device sent it (devices/ota.h). */
typedef struct fdl_job_report {
    char device[64];
    char job[64];
    uint64_t seq;
    char step[24];
    char detail[160];
    uint64_t at_ns;               /* fdl_now_ns() when the service received it */
} fdl_job_report;

typedef struct fdl_jobs_stats {
    uint64_t jobs, documents, published;   /* jobs created, documents signed, notifications sent */
    uint64_t reports, bad_reports, unknown_job_reports, late_reports;
    uint64_t queue_dropped, registry_errors, sign_errors, publish_errors;
    char last_error[256];
} fdl_jobs_stats;

typedef struct fdl_jobs fdl_jobs;

/* Connects, subscribes to every device's status; returns once subscribed (or
 * fails within 10 s). 0, or -1 with err. */
int fdl_jobs_start(const fdl_jobs_cfg *cfg, fdl_jobs **out, char *err, size_t errcap);

/*
 * Creates a job: records it with its targets, signs the first stage's documents
 * and (unless spec->hold) publishes them; later stages follow through the gates
 * on the worker thread. id (may be NULL) receives the job id (64 bytes).
 * 0, or -1 with err (bad spec, unknown signer, registry failure).
 */
int fdl_jobs_create(fdl_jobs *j, const fdl_job_spec *spec, char id[64], char *err, size_t errcap);

/* The job's state now. 0, or -1 if there is no such job. */
int fdl_jobs_info(fdl_jobs *j, const char *id, fdl_job_info *out);

/* Waits until the job is HALTED or COMPLETED (or HELD: nothing will happen), for
 * at most timeout_ms. 0 when it ended, 1 on timeout, -1 if unknown. */
int fdl_jobs_wait(fdl_jobs *j, const char *id, unsigned timeout_ms, fdl_job_info *out);

/* The signed document (envelope as published or held) that targeted device in job
 * id, into buf[0..cap); *len its length, *seq its seq. 0, or -1 if none or no room. */
int fdl_jobs_document(fdl_jobs *j, const char *id, const char *device, uint8_t *buf, size_t cap, size_t *len,
                      uint64_t *seq);

/* Reports received from device (NULL = any) at or after since_ns, oldest first,
 * at most cap into out; returns how many matched (may exceed cap). */
size_t fdl_jobs_reports(fdl_jobs *j, const char *device, uint64_t since_ns, fdl_job_report *out, size_t cap);

void fdl_jobs_get_stats(fdl_jobs *j, fdl_jobs_stats *out);

/* Disconnects, joins the worker and frees; NULL is a no-op. */
void fdl_jobs_stop(fdl_jobs *j);

/* Stage sizes for n targets and cumulative percentages: out[k] = devices in stage
 * k (the canary gets at least one device). 0, or -1 if the stages are invalid. */
int fdl_jobs_stage_sizes(uint32_t n, const unsigned *stages, size_t n_stages, uint32_t *out);

#endif
