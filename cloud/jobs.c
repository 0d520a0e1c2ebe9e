/* cloud/jobs.c — the OTA job service: signed documents, reports, staged rollout (see jobs.h). */
#include "cloud/jobs.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "cloud/enroll.h"
#include "cloud/otamsg.h"
#include "cloud/registry.h"
#include "devices/jobdoc.h"
#include "sim/alloc.h"
#include "sim/metrics.h"

#define JOBS_BATCH 1000u          /* reports per registry transaction */
#define JOBS_TICK_MS 20u          /* gates are looked at this often when nothing arrives */
#define JOBS_ID_MAX 64            /* ids with their NUL: job, artifact, device (jobdoc: devices 1..47) */
#define JOBS_DEVICE_MAX 47u
#define JOBS_CREATE_WAIT_S 120    /* fdl_jobs_create waits this long for the worker (signing a 10,000-device
                                     first stage is 100 token signatures) */
#define JOBS_DOC_CAP (16u * 1024u) /* one document's JSON: FDL_JOBS_DOC_TARGETS ids are ~5 KiB at most */

/* Where a target is in its rollout. */
typedef enum tstep {
    T_PENDING = 0, T_NOTIFIED, T_RECEIVED, T_DOWNLOADING, T_VERIFIED, T_WRITTEN, T_TRIAL,
    T_CONFIRMED, T_REJECTED, T_FAILED, T_REVERTED, T_SILENT,
} tstep;

static const char *const k_tstep[] = {"pending", "notified", "received", "downloading", "verified", "written",
                                      "trial", "confirmed", "rejected", "failed", "reverted", "silent"};

static int tstep_final(uint8_t s)
{
    return s >= T_CONFIRMED;
}

/* A step a device may report (devices/ota.h); -1 otherwise. */
static int tstep_parse(const char *s)
{
    for (int i = T_RECEIVED; i <= T_REVERTED; i++)
        if (!strcmp(s, k_tstep[i]))
            return i;
    return -1;
}

static const char *const k_state[] = {"HELD", "RUNNING", "HALTED", "COMPLETED"};

const char *fdl_job_state_name(fdl_job_state s)
{
    return (unsigned)s < 4 ? k_state[s] : "?";
}

typedef struct target {
    char id[JOBS_ID_MAX];
    uint8_t stage;             /* 1-based */
    uint8_t step;              /* tstep */
    int32_t doc;               /* index in job->docs, -1 = none yet */
    uint64_t notified_ns, final_ns;
} target;

typedef struct jdoc {
    uint64_t seq;
    unsigned stage;
    uint8_t *env;              /* the signed envelope (owned) */
    size_t len;
} jdoc;

typedef struct job {
    char id[JOBS_ID_MAX];
    fdl_job_spec spec;         /* pointers cleared; the targets are in t */
    uint32_t hw[FDL_JOBDOC_HW_MAX];
    char artifact[JOBS_ID_MAX];
    target *t;
    uint32_t n;
    uint32_t *index;           /* open addressing: device id -> target + 1; 0 = empty */
    uint32_t index_cap;        /* power of two >= 2n */
    uint32_t stage_size[FDL_JOBS_STAGES_MAX];
    jdoc *docs;
    size_t n_docs, cap_docs;
    fdl_job_state state;
    unsigned stage;            /* published last, 1-based */
    uint64_t created_ns, ended_ns;
    uint64_t stage_pub_ns[FDL_JOBS_STAGES_MAX], stage_gate_ns[FDL_JOBS_STAGES_MAX];
    uint32_t stage_silent[FDL_JOBS_STAGES_MAX];
    fdl_hist *lat[FDL_JOBS_STAGES_MAX];
    char reason[256];
} job;

/* A create request handed to the worker (the only user of the signer and the registry). */
typedef struct create_req {
    job *jb;
    int taken, done, rc;
    char err[256];
    struct create_req *next;
} create_req;

typedef struct report {
    char device[JOBS_ID_MAX];
    char job[JOBS_ID_MAX];
    uint64_t seq;
    char step[24];
    char detail[160];
    uint64_t at_ns;
    int64_t at_ms;
} report;

struct fdl_jobs {
    fdl_jobs_cfg cfg;
    struct mosquitto *mosq;
    pthread_t worker;
    int worker_started, stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv, done_cv;
    report *queue;
    size_t qhead, qlen;
    create_req *creates;       /* FIFO of pending creates */
    job *jobs[FDL_JOBS_MAX];
    size_t n_jobs;
    uint64_t last_seq;
    fdl_registry *reg;
    int subscribed, connect_rc;
    fdl_jobs_stats st;
    fdl_job_report *recent;    /* ring of FDL_JOBS_RECENT */
    size_t n_recent;
};

/* ---- small helpers ----------------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int is_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

static int valid_id(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_id_char(s[i]))
            return 0;
    return 1;
}

/* FNV-1a of a device id. */
static uint32_t id_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int32_t target_find(const job *jb, const char *id)
{
    uint32_t mask = jb->index_cap - 1;
    for (uint32_t i = id_hash(id) & mask, k = 0; k < jb->index_cap; i = (i + 1) & mask, k++) {
        uint32_t v = jb->index[i];
        if (!v)
            return -1;
        if (!strcmp(jb->t[v - 1].id, id))
            return (int32_t)(v - 1);
    }
    return -1;
}

static job *job_find(fdl_jobs *j, const char *id)
{
    for (size_t i = 0; i < j->n_jobs; i++)
        if (!strcmp(j->jobs[i]->id, id))
            return j->jobs[i];
    return NULL;
}

static void job_free(job *jb)
{
    if (!jb)
        return;
    for (size_t i = 0; i < jb->n_docs; i++)
        fdl_free(jb->docs[i].env);
    for (size_t k = 0; k < FDL_JOBS_STAGES_MAX; k++)
        fdl_hist_free(jb->lat[k]);
    fdl_free(jb->docs);
    fdl_free(jb->t);
    fdl_free(jb->index);
    fdl_free(jb);
}

/* Next document seq (lock held): above every earlier one, and above the wall clock
 * in thousandths of a ms, so a restarted service never reuses one a device has seen. */
static uint64_t next_seq(fdl_jobs *j)
{
    uint64_t t = (uint64_t)wall_ms() * 1000u;
    j->last_seq = t > j->last_seq ? t : j->last_seq + 1;
    return j->last_seq;
}

static uint64_t fleet_now_ms(const fdl_jobs *j)
{
    return j->cfg.clock ? fdl_vclock_now_ms(j->cfg.clock) : (uint64_t)wall_ms();
}

int fdl_jobs_stage_sizes(uint32_t n, const unsigned *stages, size_t n_stages, uint32_t *out)
{
    static const unsigned all[1] = {100};
    if (n_stages == 0) {
        stages = all;
        n_stages = 1;
    }
    if (n_stages > FDL_JOBS_STAGES_MAX || stages[n_stages - 1] != 100)
        return -1;
    uint32_t done = 0;
    for (size_t k = 0; k < n_stages; k++) {
        if (stages[k] < 1 || stages[k] > 100 || (k && stages[k] <= stages[k - 1]))
            return -1;
        /* Ceiling, so a 10 % canary of 5 devices is one device, never none. */
        uint64_t upto = ((uint64_t)n * stages[k] + 99) / 100;
        if (upto > n)
            upto = n;
        out[k] = (uint32_t)upto > done ? (uint32_t)upto - done : 0;
        done += out[k];
    }
    return 0;
}

/* ---- documents ---------------------------------------------------------------------- */

static void hex32(const uint8_t *p, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[64] = '\0';
}

/* The JSON document for targets t[first .. first+count) of jb. Length, or 0 if it does not fit. */
static size_t build_doc(const job *jb, uint64_t seq, uint64_t issued, uint64_t expires, uint32_t first,
                        uint32_t count, char *out, size_t cap)
{
    char ver[16], sha[65];
    hex32(jb->spec.sha256, sha);
    size_t u = 0;
    int n = snprintf(out, cap,
                     "{\"job\":\"%s\",\"seq\":%llu,\"tier\":\"%s\",\"version\":\"%s\",\"counter\":%u,"
                     "\"artifact\":\"%s\",\"sha256\":\"%s\",\"size\":%u,\"issued\":%llu,\"expires\":%llu,"
                     "\"targets\":[",
                     jb->id, (unsigned long long)seq, fdl_fw_tier_name(jb->spec.tier),
                     fdl_fw_version_str(jb->spec.version, ver, sizeof ver), jb->spec.counter, jb->artifact, sha,
                     jb->spec.size, (unsigned long long)issued, (unsigned long long)expires);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    u = (size_t)n;
    for (uint32_t i = 0; i < count; i++) {
        n = snprintf(out + u, cap - u, "%s\"%s\"", i ? "," : "", jb->t[first + i].id);
        if (n < 0 || (size_t)n >= cap - u)
            return 0;
        u += (size_t)n;
    }
    n = snprintf(out + u, cap - u, "]");
    if (n < 0 || (size_t)n >= cap - u)
        return 0;
    u += (size_t)n;
    if (jb->spec.n_hw) {
        n = snprintf(out + u, cap - u, ",\"hw\":[");
        if (n < 0 || (size_t)n >= cap - u)
            return 0;
        u += (size_t)n;
        for (size_t i = 0; i < jb->spec.n_hw; i++) {
            n = snprintf(out + u, cap - u, "%s%u", i ? "," : "", jb->hw[i]);
            if (n < 0 || (size_t)n >= cap - u)
                return 0;
            u += (size_t)n;
        }
        n = snprintf(out + u, cap - u, "]");
        if (n < 0 || (size_t)n >= cap - u)
            return 0;
        u += (size_t)n;
    }
    n = snprintf(out + u, cap - u, "}");
    if (n < 0 || (size_t)n >= cap - u)
        return 0;
    return u + (size_t)n;
}

static void set_error(fdl_jobs *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(fdl_jobs *j, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&j->mu);
    va_start(ap, fmt);
    vsnprintf(j->st.last_error, sizeof j->st.last_error, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&j->mu);
}

/*
 * Signs, records and (unless hold) publishes the documents of stage k (1-based).
 * Worker thread. 0 or -1 (err). The targets' steps change under the lock.
 */
static int publish_stage(fdl_jobs *j, job *jb, unsigned k, int hold, char *err, size_t errcap)
{
    char *json = fdl_malloc(JOBS_DOC_CAP);
    const char **ids = fdl_calloc(FDL_JOBS_DOC_TARGETS, sizeof *ids);
    int rc = -1;
    if (!json || !ids) {
        snprintf(err, errcap, "out of memory");
        goto cleanup;
    }
    uint32_t first = 0;
    for (unsigned s = 1; s < k; s++)
        first += jb->stage_size[s - 1];
    uint32_t end = first + jb->stage_size[k - 1];
    uint64_t now_ns = fdl_now_ns();
    pthread_mutex_lock(&j->mu);
    jb->stage = k;
    jb->stage_pub_ns[k - 1] = now_ns;
    pthread_mutex_unlock(&j->mu);
    for (uint32_t at = first; at < end; at += FDL_JOBS_DOC_TARGETS) {
        uint32_t count = end - at < FDL_JOBS_DOC_TARGETS ? end - at : FDL_JOBS_DOC_TARGETS;
        pthread_mutex_lock(&j->mu);
        uint64_t seq = next_seq(j);
        pthread_mutex_unlock(&j->mu);
        uint64_t issued = fleet_now_ms(j);
        uint64_t valid = jb->spec.valid_ms ? jb->spec.valid_ms : FDL_JOBS_VALID_MS;
        size_t dlen = build_doc(jb, seq, issued, issued + valid, at, count, json, JOBS_DOC_CAP);
        if (!dlen) {
            snprintf(err, errcap, "job document of %u targets does not fit %u bytes", count, JOBS_DOC_CAP);
            goto cleanup;
        }
        size_t cap = dlen + FDL_JOBDOC_OVERHEAD;
        uint8_t *env = fdl_malloc(cap);
        size_t elen = 0;
        if (!env || !j->cfg.signer.sign || j->cfg.signer.sign(j->cfg.signer.ud, (const uint8_t *)json, dlen, env, cap,
                                                               &elen) != 0 || elen == 0) {
            fdl_free(env);
            pthread_mutex_lock(&j->mu);
            j->st.sign_errors++;
            pthread_mutex_unlock(&j->mu);
            snprintf(err, errcap, "the job-signing key refused to sign");
            goto cleanup;
        }
        /* Readers (fdl_jobs_document) look at docs under the lock: it moves under it too. */
        pthread_mutex_lock(&j->mu);
        if (jb->n_docs == jb->cap_docs) {
            size_t nc = jb->cap_docs ? jb->cap_docs * 2 : 8;
            jdoc *nd = fdl_realloc(jb->docs, nc * sizeof *nd);
            if (!nd) {
                pthread_mutex_unlock(&j->mu);
                fdl_free(env);
                snprintf(err, errcap, "out of memory");
                goto cleanup;
            }
            jb->docs = nd;
            jb->cap_docs = nc;
        }
        pthread_mutex_unlock(&j->mu);
        for (uint32_t i = 0; i < count; i++)
            ids[i] = jb->t[at + i].id;
        int64_t pub_ms = hold ? 0 : wall_ms();
        fdl_reg_status rs = fdl_registry_ota_doc_put(j->reg, seq, jb->id, (int)k, env, elen, ids, count, pub_ms);
        if (rs != FDL_REG_OK) {
            pthread_mutex_lock(&j->mu);
            j->st.registry_errors++;
            pthread_mutex_unlock(&j->mu);
            /* The record is the audit trail: no document goes out unrecorded. */
            fdl_free(env);
            snprintf(err, errcap, "registry: %s (%s)", fdl_reg_strerror(rs), fdl_registry_last_error(j->reg));
            goto cleanup;
        }
        pthread_mutex_lock(&j->mu);
        int32_t di = (int32_t)jb->n_docs;
        jb->docs[jb->n_docs++] = (jdoc){.seq = seq, .stage = k, .env = env, .len = elen};
        j->st.documents++;
        for (uint32_t i = 0; i < count; i++)
            jb->t[at + i].doc = di;
        pthread_mutex_unlock(&j->mu);
        if (hold)
            continue;
        uint64_t sent = 0, errs = 0;
        for (uint32_t i = 0; i < count; i++) {
            char topic[160];
            target *t = &jb->t[at + i];
            snprintf(topic, sizeof topic, "%s%s/%s", FDL_TOPIC_JOBS_PREFIX, t->id, FDL_TOPIC_JOBS_NOTIFY);
            pthread_mutex_lock(&j->mu);
            if (t->step == T_PENDING)
                t->step = T_NOTIFIED;
            t->notified_ns = fdl_now_ns();
            pthread_mutex_unlock(&j->mu);
            int prc = mosquitto_publish(j->mosq, NULL, topic, (int)elen, env, 1, false);
            if (prc == MOSQ_ERR_SUCCESS)
                sent++;
            else
                errs++;
        }
        pthread_mutex_lock(&j->mu);
        j->st.published += sent;
        j->st.publish_errors += errs;
        pthread_mutex_unlock(&j->mu);
    }
    if (j->cfg.verbose)
        fprintf(stderr, "fleetdrill: jobs: %s: stage %u (%u%%, %u devices) %s\n", jb->id, k,
                jb->spec.stages[k - 1], end - first, hold ? "signed and held" : "published");
    rc = 0;
cleanup:
    fdl_free(json);
    fdl_free(ids);
    return rc;
}

/* ---- the gate --------------------------------------------------------------------------- */

/* Moves the job to its end state (lock held by the caller is NOT expected: takes it). */
static void job_end(fdl_jobs *j, job *jb, fdl_job_state s, const char *reason)
{
    pthread_mutex_lock(&j->mu);
    jb->state = s;
    jb->ended_ns = fdl_now_ns();
    snprintf(jb->reason, sizeof jb->reason, "%s", reason);
    pthread_cond_broadcast(&j->done_cv);
    pthread_mutex_unlock(&j->mu);
    fdl_reg_status rs = fdl_registry_ota_job_set(j->reg, jb->id, fdl_job_state_name(s), (int)jb->stage, reason);
    if (rs != FDL_REG_OK)
        set_error(j, "registry: job %s: %s", jb->id, fdl_registry_last_error(j->reg));
    if (j->cfg.verbose)
        fprintf(stderr, "fleetdrill: jobs: %s %s: %s\n", jb->id, fdl_job_state_name(s), reason);
}

/* Looks at the current stage of a running job: passes its gate, halts, or waits. */
static void gate(fdl_jobs *j, job *jb)
{
    unsigned k = jb->stage;
    uint32_t first = 0;
    for (unsigned s = 1; s < k; s++)
        first += jb->stage_size[s - 1];
    uint32_t n = jb->stage_size[k - 1];
    uint64_t now = fdl_now_ns();
    uint64_t timeout_ms = jb->spec.stage_timeout_ms ? jb->spec.stage_timeout_ms : FDL_JOBS_STAGE_TIMEOUT_MS;
    pthread_mutex_lock(&j->mu);
    uint32_t final = 0, failed = 0, silent = 0;
    uint32_t by[T_SILENT + 1] = {0};
    for (uint32_t i = first; i < first + n; i++)
        final += tstep_final(jb->t[i].step);
    int timed_out = now - jb->stage_pub_ns[k - 1] > timeout_ms * 1000000u;
    if (final < n && !timed_out) {
        pthread_mutex_unlock(&j->mu);
        return;
    }
    for (uint32_t i = first; i < first + n; i++) {
        target *t = &jb->t[i];
        if (!tstep_final(t->step)) {
            t->step = T_SILENT;
            t->final_ns = now;
            silent++;
        }
        by[t->step]++;
        failed += t->step != T_CONFIRMED;
    }
    jb->stage_gate_ns[k - 1] = now;
    jb->stage_silent[k - 1] = silent;
    pthread_mutex_unlock(&j->mu);

    char reason[256];
    double rate = n ? (double)failed / n : 0.0;
    uint32_t later = 0;
    for (size_t s = k; s < jb->spec.n_stages; s++)
        later += jb->stage_size[s];
    if (n && rate > jb->spec.max_failure) {
        snprintf(reason, sizeof reason,
                 "stage %u of %zu (%u%%, %u devices): %u failed (%u rejected, %u failed, %u reverted, %u silent) = "
                 "%.1f%% > %.1f%% allowed: halted, %u devices never notified",
                 k, jb->spec.n_stages, jb->spec.stages[k - 1], n, failed, by[T_REJECTED], by[T_FAILED],
                 by[T_REVERTED], silent, rate * 100.0, jb->spec.max_failure * 100.0, later);
        job_end(j, jb, FDL_JOB_HALTED, reason);
        return;
    }
    if (k == jb->spec.n_stages) {
        uint32_t ok = 0;
        pthread_mutex_lock(&j->mu);
        for (uint32_t i = 0; i < jb->n; i++)
            ok += jb->t[i].step == T_CONFIRMED;
        pthread_mutex_unlock(&j->mu);
        snprintf(reason, sizeof reason, "all %zu stages passed their gates: %u of %u devices confirmed",
                 jb->spec.n_stages, ok, jb->n);
        job_end(j, jb, FDL_JOB_COMPLETED, reason);
        return;
    }
    if (j->cfg.verbose)
        fprintf(stderr, "fleetdrill: jobs: %s: stage %u passed (%u of %u failed, %.1f%% <= %.1f%%)\n", jb->id, k,
                failed, n, rate * 100.0, jb->spec.max_failure * 100.0);
    char err[256];
    if (fdl_registry_ota_job_set(j->reg, jb->id, "RUNNING", (int)k + 1, NULL) != FDL_REG_OK)
        set_error(j, "registry: job %s: %s", jb->id, fdl_registry_last_error(j->reg));
    if (publish_stage(j, jb, k + 1, 0, err, sizeof err) != 0) {
        snprintf(reason, sizeof reason, "stage %u could not be published: %s", k + 1, err);
        job_end(j, jb, FDL_JOB_HALTED, reason);
    }
}

/* ---- creating a job (worker thread) ---------------------------------------------------- */

static int create_on_worker(fdl_jobs *j, job *jb, char *err, size_t errcap)
{
    fdl_reg_ota_job rj;
    memset(&rj, 0, sizeof rj);
    snprintf(rj.id, sizeof rj.id, "%s", jb->id);
    snprintf(rj.tier, sizeof rj.tier, "%s", fdl_fw_tier_name(jb->spec.tier));
    fdl_fw_version_str(jb->spec.version, rj.version, sizeof rj.version);
    rj.counter = jb->spec.counter;
    snprintf(rj.artifact, sizeof rj.artifact, "%s", jb->artifact);
    hex32(jb->spec.sha256, rj.sha256);
    rj.size = jb->spec.size;
    size_t u = 0;
    for (size_t k = 0; k < jb->spec.n_stages; k++)
        u += (size_t)snprintf(rj.stages + u, sizeof rj.stages - u, "%s%u", k ? "," : "", jb->spec.stages[k]);
    rj.max_failure = jb->spec.max_failure;
    snprintf(rj.state, sizeof rj.state, "%s", jb->spec.hold ? "HELD" : "RUNNING");
    const char **ids = fdl_calloc(jb->n, sizeof *ids);
    int *stage_of = fdl_calloc(jb->n, sizeof *stage_of);
    int rc = -1;
    if (!ids || !stage_of) {
        snprintf(err, errcap, "out of memory");
        goto cleanup;
    }
    for (uint32_t i = 0; i < jb->n; i++) {
        ids[i] = jb->t[i].id;
        stage_of[i] = jb->t[i].stage;
    }
    fdl_reg_status rs = fdl_registry_ota_job_create(j->reg, &rj, ids, stage_of, jb->n);
    if (rs != FDL_REG_OK) {
        snprintf(err, errcap, "registry: %s (%s)", fdl_reg_strerror(rs), fdl_registry_last_error(j->reg));
        goto cleanup;
    }
    /* Visible to reports and readers from here on. */
    pthread_mutex_lock(&j->mu);
    j->jobs[j->n_jobs++] = jb;
    j->st.jobs++;
    pthread_mutex_unlock(&j->mu);
    rc = 0;
    if (publish_stage(j, jb, 1, jb->spec.hold, err, errcap) != 0) {
        char reason[300];
        snprintf(reason, sizeof reason, "stage 1 could not be published: %.200s", err);
        job_end(j, jb, FDL_JOB_HALTED, reason);
        rc = -1;
    } else if (jb->spec.hold) {
        fdl_registry_ota_job_set(j->reg, jb->id, "HELD", 1, "signed and held: nothing published");
    } else if (fdl_registry_ota_job_set(j->reg, jb->id, "RUNNING", 1, NULL) != FDL_REG_OK) {
        set_error(j, "registry: job %s: %s", jb->id, fdl_registry_last_error(j->reg));
    }
cleanup:
    fdl_free(ids);
    fdl_free(stage_of);
    return rc;
}

int fdl_jobs_create(fdl_jobs *j, const fdl_job_spec *spec, char id[64], char *err, size_t errcap)
{
    static const unsigned all[1] = {100};
    if (!spec || spec->tier < FDL_TIER_BOOTLOADER || spec->tier > FDL_TIER_KEYRING || !valid_id(spec->artifact, 63) ||
        spec->size == 0 || spec->size > FDL_FW_HDR_LEN + FDL_FW_PAYLOAD_MAX || !spec->targets ||
        spec->n_targets == 0 || spec->n_targets > FDL_JOBS_TARGETS_MAX || spec->n_hw > FDL_JOBDOC_HW_MAX ||
        (spec->n_hw && !spec->hw) || !(spec->max_failure >= 0.0 && spec->max_failure <= 1.0) ||
        (spec->id && !valid_id(spec->id, 63))) {
        snprintf(err, errcap, "job: invalid specification (tier, artifact id, size, 1..%u targets, failure rate 0..1)",
                 FDL_JOBS_TARGETS_MAX);
        return -1;
    }
    job *jb = fdl_calloc(1, sizeof *jb);
    if (!jb) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    jb->spec = *spec;
    if (spec->n_stages == 0) {
        jb->spec.stages[0] = all[0];
        jb->spec.n_stages = 1;
    }
    jb->spec.targets = NULL;
    jb->spec.hw = NULL;
    jb->spec.id = NULL;
    jb->spec.artifact = NULL;
    snprintf(jb->artifact, sizeof jb->artifact, "%s", spec->artifact);
    memcpy(jb->hw, spec->hw ? spec->hw : jb->hw, spec->n_hw * sizeof *jb->hw);
    jb->n = (uint32_t)spec->n_targets;
    if (fdl_jobs_stage_sizes(jb->n, jb->spec.stages, jb->spec.n_stages, jb->stage_size) != 0) {
        snprintf(err, errcap, "job: stages must be increasing percentages 1..100 ending at 100 (at most %d)",
                 FDL_JOBS_STAGES_MAX);
        job_free(jb);
        return -1;
    }
    jb->index_cap = 16;
    while (jb->index_cap < 2 * jb->n)
        jb->index_cap *= 2;
    jb->t = fdl_calloc(jb->n, sizeof *jb->t);
    jb->index = fdl_calloc(jb->index_cap, sizeof *jb->index);
    for (size_t k = 0; k < jb->spec.n_stages; k++)
        jb->lat[k] = fdl_hist_new();
    if (!jb->t || !jb->index || !jb->lat[jb->spec.n_stages - 1]) {
        snprintf(err, errcap, "out of memory");
        job_free(jb);
        return -1;
    }
    unsigned stage = 1;
    uint32_t left = jb->stage_size[0];
    for (uint32_t i = 0; i < jb->n; i++) {
        while (left == 0 && stage < jb->spec.n_stages)
            left = jb->stage_size[stage++];
        left--;
        const char *tid = spec->targets[i];
        if (!valid_id(tid, JOBS_DEVICE_MAX)) {
            snprintf(err, errcap, "job: target %u is not a device id (1..%u of [A-Za-z0-9._-])", i + 1,
                     JOBS_DEVICE_MAX);
            job_free(jb);
            return -1;
        }
        if (target_find(jb, tid) >= 0) {
            snprintf(err, errcap, "job: target %s is listed twice", tid);
            job_free(jb);
            return -1;
        }
        target *t = &jb->t[i];
        snprintf(t->id, sizeof t->id, "%s", tid);
        t->stage = (uint8_t)stage;
        t->doc = -1;
        uint32_t mask = jb->index_cap - 1, h = id_hash(tid) & mask;
        while (jb->index[h])
            h = (h + 1) & mask;
        jb->index[h] = i + 1;
    }
    jb->state = spec->hold ? FDL_JOB_HELD : FDL_JOB_RUNNING;
    jb->created_ns = fdl_now_ns();

    create_req cr = {.jb = jb};
    pthread_mutex_lock(&j->mu);
    if (spec->id)
        snprintf(jb->id, sizeof jb->id, "%s", spec->id);
    else
        snprintf(jb->id, sizeof jb->id, "job-%llu", (unsigned long long)next_seq(j));
    if (job_find(j, jb->id) || j->n_jobs + 1 > FDL_JOBS_MAX) {
        pthread_mutex_unlock(&j->mu);
        snprintf(err, errcap, "job %s: %s", jb->id, job_find(j, jb->id) ? "exists" : "too many jobs in this service");
        job_free(jb);
        return -1;
    }
    create_req **tail = &j->creates;
    while (*tail)
        tail = &(*tail)->next;
    *tail = &cr;
    pthread_cond_broadcast(&j->cv);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += JOBS_CREATE_WAIT_S;
    /* Once the worker has taken the request it always finishes it (cr lives on this
     * stack): only a request still queued may be abandoned. */
    for (;;) {
        if (cr.done)
            break;
        if (cr.taken) {
            pthread_cond_wait(&j->done_cv, &j->mu);
            continue;
        }
        if (j->stopping)
            break;
        if (pthread_cond_timedwait(&j->done_cv, &j->mu, &dl) != 0 && !cr.taken && !cr.done)
            break;
    }
    int done = cr.done;
    if (!done) {
        for (create_req **p = &j->creates; *p; p = &(*p)->next)
            if (*p == &cr) {
                *p = cr.next;
                break;
            }
    }
    pthread_mutex_unlock(&j->mu);
    if (!done) {
        snprintf(err, errcap, "job service did not take the job within %d s", JOBS_CREATE_WAIT_S);
        job_free(jb);
        return -1;
    }
    if (cr.rc != 0) {
        snprintf(err, errcap, "%s", cr.err);
        return -1;
    }
    if (id)
        snprintf(id, 64, "%s", jb->id);
    return 0;
}

/* ---- reports ------------------------------------------------------------------------------- */

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    fdl_jobs *j = ud;
    report r;
    memset(&r, 0, sizeof r);
    r.at_ns = fdl_now_ns();
    r.at_ms = wall_ms();
    fdl_otamsg_report rep;
    int ok = fdl_otamsg_parse_report(msg->topic, msg->payload, msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0,
                                     &rep) == FDL_OTAMSG_OK &&
             tstep_parse(rep.step) >= 0 && strlen(rep.device) <= JOBS_DEVICE_MAX;
    if (ok) {
        snprintf(r.device, sizeof r.device, "%s", rep.device);
        snprintf(r.job, sizeof r.job, "%s", rep.job);
        snprintf(r.step, sizeof r.step, "%s", rep.step);
        snprintf(r.detail, sizeof r.detail, "%s", rep.detail);
        r.seq = rep.seq;
    }
    pthread_mutex_lock(&j->mu);
    j->st.reports++;
    if (!ok) {
        j->st.bad_reports++;
    } else if (j->qlen == FDL_JOBS_QUEUE_MAX) {
        j->st.queue_dropped++;
    } else {
        j->queue[(j->qhead + j->qlen) % FDL_JOBS_QUEUE_MAX] = r;
        j->qlen++;
        fdl_job_report *rec = &j->recent[j->n_recent % FDL_JOBS_RECENT];
        snprintf(rec->device, sizeof rec->device, "%s", r.device);
        snprintf(rec->job, sizeof rec->job, "%s", r.job);
        rec->seq = r.seq;
        snprintf(rec->step, sizeof rec->step, "%s", r.step);
        snprintf(rec->detail, sizeof rec->detail, "%s", r.detail);
        rec->at_ns = r.at_ns;
        j->n_recent++;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
}

/* Applies a batch of reports to the jobs in memory (lock held) and fills the registry batch. */
static void apply_reports(fdl_jobs *j, report *batch, size_t n, fdl_reg_ota_status *out)
{
    for (size_t i = 0; i < n; i++) {
        report *r = &batch[i];
        out[i] = (fdl_reg_ota_status){.job = r->job, .device_id = r->device, .step = r->step, .detail = r->detail,
                                      .seq = r->seq, .updated_ms = r->at_ms, .log_only = 1};
        job *jb = job_find(j, r->job);
        if (!jb) {
            j->st.unknown_job_reports++;
            continue;
        }
        int32_t ti = target_find(jb, r->device);
        if (ti < 0) {
            j->st.unknown_job_reports++;
            continue;
        }
        target *t = &jb->t[ti];
        if (tstep_final(t->step) || t->step == T_PENDING) {
            /* After its final word (a replayed document answered "rejected"), or about a
             * document this service never sent it: logged, the rollout's record stays. */
            j->st.late_reports++;
            continue;
        }
        out[i].log_only = 0;
        t->step = (uint8_t)tstep_parse(r->step);
        if (tstep_final(t->step)) {
            t->final_ns = r->at_ns;
            if (t->step == T_CONFIRMED && t->notified_ns && jb->lat[t->stage - 1])
                fdl_hist_add(jb->lat[t->stage - 1], (r->at_ns - t->notified_ns) / 1000u);
        }
    }
}

static void *worker_main(void *arg)
{
    fdl_jobs *j = arg;
    report *batch = fdl_calloc(JOBS_BATCH, sizeof *batch);
    fdl_reg_ota_status *rows = fdl_calloc(JOBS_BATCH, sizeof *rows);
    if (!batch || !rows)
        goto out;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        if (!j->stopping && j->qlen == 0 && !j->creates) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_nsec += JOBS_TICK_MS * 1000000L;
            dl.tv_sec += dl.tv_nsec / 1000000000L;
            dl.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&j->cv, &j->mu, &dl);
        }
        if (j->stopping) {
            pthread_mutex_unlock(&j->mu);
            break;
        }
        create_req *cr = j->creates;
        if (cr) {
            j->creates = cr->next;
            cr->taken = 1;
        }
        size_t n = 0;
        while (j->qlen && n < JOBS_BATCH) {
            batch[n++] = j->queue[j->qhead];
            j->qhead = (j->qhead + 1) % FDL_JOBS_QUEUE_MAX;
            j->qlen--;
        }
        if (n)
            apply_reports(j, batch, n, rows);
        pthread_mutex_unlock(&j->mu);

        if (cr) {
            int rc = create_on_worker(j, cr->jb, cr->err, sizeof cr->err);
            pthread_mutex_lock(&j->mu);
            if (rc != 0 && !job_find(j, cr->jb->id))
                job_free(cr->jb);   /* never recorded: nobody else knows it */
            cr->rc = rc;
            cr->done = 1;
            pthread_cond_broadcast(&j->done_cv);
            pthread_mutex_unlock(&j->mu);
        }
        if (n) {
            fdl_reg_status rs = fdl_registry_ota_status_apply(j->reg, rows, n);
            if (rs != FDL_REG_OK) {
                pthread_mutex_lock(&j->mu);
                j->st.registry_errors++;
                snprintf(j->st.last_error, sizeof j->st.last_error, "registry: %s", fdl_registry_last_error(j->reg));
                pthread_mutex_unlock(&j->mu);
            }
        }
        /* Gates of the running jobs. */
        for (size_t i = 0;; i++) {
            pthread_mutex_lock(&j->mu);
            job *jb = i < j->n_jobs ? j->jobs[i] : NULL;
            int running = jb && jb->state == FDL_JOB_RUNNING && jb->stage > 0;
            pthread_mutex_unlock(&j->mu);
            if (!jb)
                break;
            if (running)
                gate(j, jb);
        }
    }
out:
    fdl_free(batch);
    fdl_free(rows);
    return NULL;
}

/* ---- connection ------------------------------------------------------------------------- */

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    fdl_jobs *j = ud;
    pthread_mutex_lock(&j->mu);
    j->connect_rc = rc;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (rc == 0)
        mosquitto_subscribe(m, NULL, FDL_TOPIC_JOBS_PREFIX "+/" FDL_TOPIC_JOBS_STATUS, 1);
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    (void)mid;
    fdl_jobs *j = ud;
    pthread_mutex_lock(&j->mu);
    j->subscribed = n == 1 && granted[0] <= 2 ? 1 : -1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

int fdl_jobs_start(const fdl_jobs_cfg *cfg, fdl_jobs **out, char *err, size_t errcap)
{
    *out = NULL;
    fdl_jobs *j = fdl_calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    j->cfg = *cfg;
    j->connect_rc = -1;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    pthread_cond_init(&j->done_cv, NULL);
    j->queue = fdl_calloc(FDL_JOBS_QUEUE_MAX, sizeof *j->queue);
    j->recent = fdl_calloc(FDL_JOBS_RECENT, sizeof *j->recent);
    if (!j->queue || !j->recent) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    if (!cfg->signer.sign) {
        snprintf(err, errcap, "jobs: no job-signing key");
        goto fail;
    }
    fdl_registry_opts ro = {.actor = FDL_ACTOR_JOBS};
    if (fdl_registry_open(cfg->registry_path, &ro, &j->reg) != FDL_REG_OK) {
        snprintf(err, errcap, "jobs: cannot open the registry %s", cfg->registry_path);
        goto fail;
    }
    if (pthread_create(&j->worker, NULL, worker_main, j) != 0) {
        snprintf(err, errcap, "jobs: cannot start the worker thread");
        goto fail;
    }
    j->worker_started = 1;
    j->mosq = fdl_enroll_actor_client("jobs", FDL_ACTOR_JOBS, j, cfg->host, cfg->port, cfg->cafile, cfg->certfile,
                                      cfg->keyfile, err, errcap);
    if (!j->mosq)
        goto fail;
    mosquitto_connect_callback_set(j->mosq, on_connect);
    mosquitto_subscribe_callback_set(j->mosq, on_subscribe);
    mosquitto_message_callback_set(j->mosq, on_message);
    int rc = mosquitto_loop_start(j->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errcap, "jobs: %s", mosquitto_strerror(rc));
        goto fail;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&j->mu);
    while (j->subscribed == 0 && j->connect_rc <= 0 && pthread_cond_timedwait(&j->cv, &j->mu, &dl) == 0)
        ;
    int ok = j->subscribed == 1;
    int crc = j->connect_rc;
    pthread_mutex_unlock(&j->mu);
    if (!ok) {
        snprintf(err, errcap, "jobs: %s",
                 crc > 0 ? mosquitto_connack_string(crc) : "no subscription acknowledged within 10 s");
        goto fail;
    }
    *out = j;
    return 0;
fail:
    fdl_jobs_stop(j);
    return -1;
}

/* ---- readers --------------------------------------------------------------------------------- */

static void info_locked(const job *jb, fdl_job_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->id, sizeof out->id, "%s", jb->id);
    out->state = jb->state;
    out->stage = jb->stage;
    out->n_stages = jb->spec.n_stages;
    out->targets = jb->n;
    for (uint32_t i = 0; i < jb->n; i++) {
        const target *t = &jb->t[i];
        fdl_job_stage_info *si = &out->stages[t->stage - 1];
        switch (t->step) {
        case T_PENDING: out->pending++; break;
        case T_CONFIRMED: out->confirmed++; si->confirmed++; break;
        case T_REJECTED: out->rejected++; si->failed++; break;
        case T_FAILED:
        case T_SILENT: out->failed++; si->failed++; break;
        case T_REVERTED: out->reverted++; si->failed++; break;
        default: out->in_progress++; break;
        }
    }
    for (size_t k = 0; k < jb->spec.n_stages; k++) {
        fdl_job_stage_info *si = &out->stages[k];
        si->percent = jb->spec.stages[k];
        si->devices = jb->stage_size[k];
        si->silent = jb->stage_silent[k];
        si->published_s = jb->stage_pub_ns[k] ? (double)(jb->stage_pub_ns[k] - jb->created_ns) / 1e9 : 0;
        si->gated_s = jb->stage_gate_ns[k] ? (double)(jb->stage_gate_ns[k] - jb->created_ns) / 1e9 : 0;
        si->p50_ms = fdl_hist_percentile(jb->lat[k], 50) / 1000u;
        si->p99_ms = fdl_hist_percentile(jb->lat[k], 99) / 1000u;
        si->max_ms = fdl_hist_max(jb->lat[k]) / 1000u;
    }
    snprintf(out->reason, sizeof out->reason, "%s", jb->reason);
    out->elapsed_s = (double)((jb->ended_ns ? jb->ended_ns : fdl_now_ns()) - jb->created_ns) / 1e9;
}

int fdl_jobs_info(fdl_jobs *j, const char *id, fdl_job_info *out)
{
    pthread_mutex_lock(&j->mu);
    job *jb = id ? job_find(j, id) : NULL;
    if (jb)
        info_locked(jb, out);
    pthread_mutex_unlock(&j->mu);
    return jb ? 0 : -1;
}

int fdl_jobs_wait(fdl_jobs *j, const char *id, unsigned timeout_ms, fdl_job_info *out)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000u;
    dl.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
    dl.tv_sec += dl.tv_nsec / 1000000000L;
    dl.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&j->mu);
    job *jb = id ? job_find(j, id) : NULL;
    int rc = -1;
    while (jb) {
        if (jb->state != FDL_JOB_RUNNING) {
            rc = 0;
            break;
        }
        if (pthread_cond_timedwait(&j->done_cv, &j->mu, &dl) != 0) {
            rc = jb->state != FDL_JOB_RUNNING ? 0 : 1;
            break;
        }
    }
    if (jb && out)
        info_locked(jb, out);
    pthread_mutex_unlock(&j->mu);
    return rc;
}

int fdl_jobs_document(fdl_jobs *j, const char *id, const char *device, uint8_t *buf, size_t cap, size_t *len,
                      uint64_t *seq)
{
    int rc = -1;
    pthread_mutex_lock(&j->mu);
    job *jb = id ? job_find(j, id) : NULL;
    int32_t ti = jb && device ? target_find(jb, device) : -1;
    if (ti >= 0 && jb->t[ti].doc >= 0) {
        const jdoc *d = &jb->docs[jb->t[ti].doc];
        if (d->len <= cap) {
            memcpy(buf, d->env, d->len);
            *len = d->len;
            if (seq)
                *seq = d->seq;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&j->mu);
    return rc;
}

size_t fdl_jobs_reports(fdl_jobs *j, const char *device, uint64_t since_ns, fdl_job_report *out, size_t cap)
{
    size_t found = 0;
    pthread_mutex_lock(&j->mu);
    size_t n = j->n_recent < FDL_JOBS_RECENT ? j->n_recent : FDL_JOBS_RECENT;
    for (size_t i = 0; i < n; i++) {
        const fdl_job_report *r = &j->recent[(j->n_recent - n + i) % FDL_JOBS_RECENT];
        if (r->at_ns < since_ns || (device && strcmp(r->device, device)))
            continue;
        if (found < cap)
            out[found] = *r;
        found++;
    }
    pthread_mutex_unlock(&j->mu);
    return found;
}

void fdl_jobs_get_stats(fdl_jobs *j, fdl_jobs_stats *out)
{
    pthread_mutex_lock(&j->mu);
    *out = j->st;
    pthread_mutex_unlock(&j->mu);
}

void fdl_jobs_stop(fdl_jobs *j)
{
    if (!j)
        return;
    if (j->mosq) {
        mosquitto_disconnect(j->mosq);
        mosquitto_loop_stop(j->mosq, true);
    }
    if (j->worker_started) {
        pthread_mutex_lock(&j->mu);
        j->stopping = 1;
        pthread_cond_broadcast(&j->cv);
        pthread_cond_broadcast(&j->done_cv);
        pthread_mutex_unlock(&j->mu);
        pthread_join(j->worker, NULL);
    }
    if (j->mosq)
        mosquitto_destroy(j->mosq);
    for (size_t i = 0; i < j->n_jobs; i++)
        job_free(j->jobs[i]);
    fdl_registry_free(j->reg);
    fdl_free(j->queue);
    fdl_free(j->recent);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    pthread_cond_destroy(&j->done_cv);
    fdl_free(j);
}
