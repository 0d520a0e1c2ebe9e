/* devices/ota.c — the device's OTA agent, sans-I/O (see ota.h, docs/firmware.md). */
#include "devices/ota.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/sha256.h>

#include "sim/alloc.h"
#include "sim/json.h"

#define BLOCK_RETRIES 2          /* re-requests of one block before the download fails */
#define STATUS_MAX 1024          /* bytes of one status report */

struct fdl_ota {
    char id[FDL_JOBDOC_ID_MAX];
    char topic_status[FDL_JOBDOC_ID_MAX + 24];
    char topic_get[FDL_JOBDOC_ID_MAX + 24];
    fdl_fw *fw;
    fdl_ota_params p;
    fdl_ota_io io;
    fdl_ota_state state;
    fdl_ota_stats stats;
    /* the job being worked on */
    char job[FDL_JOBDOC_ID_MAX];
    char artifact[FDL_JOBDOC_ID_MAX];
    uint64_t seq;
    uint8_t tier;
    uint32_t version, counter, size;
    uint8_t sha256[32];
    /* the download */
    uint64_t started_ms, requested_ms;
    uint32_t offset;             /* next byte expected */
    unsigned retries;
    uint8_t hdr_buf[FDL_FW_HDR_LEN];
    fdl_fw_hdr hdr;
    bool writing;                /* the header verified and the slot is being written */
    mbedtls_sha256_context whole, payload;
    bool hashing;
    bool reboot_asked;           /* TRIAL: the watchdog asked for the reboot already */
};

static uint32_t blk_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void status_report(fdl_ota *o, const char *job, uint64_t seq, const char *step, const char *detail)
{
    fdl_json *j = fdl_json_new(STATUS_MAX);
    fdl_json_obj_begin(j, NULL);
    fdl_json_str(j, "job", job);
    fdl_json_uint(j, "seq", seq);
    fdl_json_str(j, "step", step);
    fdl_json_str(j, "detail", detail ? detail : "");
    fdl_json_obj_end(j);
    size_t len = 0;
    const char *text = fdl_json_text(j, &len);
    if (text && o->io.publish)
        o->io.publish(o->io.ud, o->topic_status, (const uint8_t *)text, len);
    fdl_json_free(j);
}

static void detail_set(fdl_ota *o, const char *fmt, const char *a, const char *b)
{
    snprintf(o->stats.last_detail, sizeof o->stats.last_detail, fmt, a, b);
}

fdl_ota *fdl_ota_new(const char *id, fdl_fw *fw, const fdl_ota_params *p, const fdl_ota_io *io)
{
    if (!id || !fw || !io || strlen(id) >= FDL_JOBDOC_ID_MAX)
        return NULL;
    fdl_ota *o = fdl_calloc(1, sizeof *o);
    if (!o)
        return NULL;
    snprintf(o->id, sizeof o->id, "%s", id);
    snprintf(o->topic_status, sizeof o->topic_status, "$fleet/jobs/%s/status", id);
    snprintf(o->topic_get, sizeof o->topic_get, "$fleet/ota/%s/get", id);
    o->fw = fw;
    o->io = *io;
    if (p)
        o->p = *p;
    if (!o->p.block_timeout_ms)
        o->p.block_timeout_ms = 30000;
    if (!o->p.total_timeout_ms)
        o->p.total_timeout_ms = 30u * 60u * 1000u;
    if (!o->p.trial_ms)
        o->p.trial_ms = FDL_FW_TRIAL_MS_DEFAULT;
    return o;
}

static void hashes_free(fdl_ota *o)
{
    if (!o->hashing)
        return;
    mbedtls_sha256_free(&o->whole);
    mbedtls_sha256_free(&o->payload);
    o->hashing = false;
}

void fdl_ota_free(fdl_ota *o)
{
    if (!o)
        return;
    hashes_free(o);
    if (o->writing)
        fdl_fw_update_abort(o->fw);
    fdl_free(o);
}

fdl_ota_state fdl_ota_get_state(const fdl_ota *o)
{
    return o ? o->state : FDL_OTA_IDLE;
}

void fdl_ota_get_stats(const fdl_ota *o, fdl_ota_stats *out)
{
    if (o)
        *out = o->stats;
    else
        memset(out, 0, sizeof *out);
}

/* The power is off (a write was cut): the agent does nothing until the reboot. */
static bool dead(const fdl_ota *o)
{
    return fdl_fw_power_lost(o->fw);
}

/* Ends the current download: the running image stays as it was. */
static void job_fail(fdl_ota *o, fdl_fw_status fst, const char *detail)
{
    if (o->writing)
        fdl_fw_update_abort(o->fw);
    o->writing = false;
    hashes_free(o);
    o->stats.failed++;
    if (fst != FDL_FW_OK)
        o->stats.last_fw_error = fst;
    snprintf(o->stats.last_detail, sizeof o->stats.last_detail, "%s", detail);
    o->state = FDL_OTA_IDLE;
    status_report(o, o->job, o->seq, "failed", detail);
}

/* After a write the power cut: nothing more happens; the device reboots. */
static void power_lost(fdl_ota *o)
{
    o->writing = false;
    hashes_free(o);
    o->state = FDL_OTA_IDLE;
}

static void request(fdl_ota *o, uint64_t now)
{
    char msg[FDL_JOBDOC_ID_MAX + 32];
    uint32_t left = o->size - o->offset;
    uint32_t n = left < FDL_OTA_BLOCK ? left : FDL_OTA_BLOCK;
    int len = snprintf(msg, sizeof msg, "%s %u %u", o->artifact, o->offset, n);
    o->requested_ms = now;
    if (o->io.publish)
        o->io.publish(o->io.ud, o->topic_get, (const uint8_t *)msg, (size_t)len);
}

static void reject(fdl_ota *o, const char *job, uint64_t seq, fdl_jobdoc_status st, const char *detail)
{
    o->stats.rejected++;
    o->stats.last_reject = st;
    snprintf(o->stats.last_detail, sizeof o->stats.last_detail, "%s", detail);
    status_report(o, job, seq, "rejected", detail);
}

void fdl_ota_on_job(fdl_ota *o, const uint8_t *payload, size_t len, uint64_t now_ms)
{
    fdl_jobdoc jd;
    if (!o || dead(o))
        return;
    o->stats.jobs++;
    fdl_jobdoc_status st = payload ? fdl_jobdoc_parse(payload, len, &jd) : FDL_JOB_ERR_ARG;
    if (st != FDL_JOB_OK) {
        reject(o, "", 0, st, fdl_jobdoc_strerror(st));
        return;
    }
    status_report(o, jd.job, jd.seq, "received", "");
    const fdl_keyring *kr = fdl_fw_keyring(o->fw);
    if (!kr) {
        reject(o, jd.job, jd.seq, FDL_JOB_ERR_KEY_UNKNOWN, "no verified keyring (recovery)");
        return;
    }
    /* Signature with a jobs key of the running keyring, target, hardware
     * revision, expiry, replay: before anything else is looked at. */
    st = fdl_jobdoc_check(&jd, kr, o->id, fdl_fw_hw_rev(o->fw), now_ms, fdl_fw_job_seq(o->fw));
    if (st != FDL_JOB_OK) {
        reject(o, jd.job, jd.seq, st, fdl_jobdoc_strerror(st));
        return;
    }
    if (jd.tier == FDL_TIER_NONE || jd.tier >= FDL_TIER_COUNT || jd.size < FDL_FW_HDR_LEN) {
        reject(o, jd.job, jd.seq, FDL_JOB_ERR_FIELD, "no such tier or size");
        return;
    }
    /* One job at a time; a newer document replaces one that has not written yet.
     * The firmware's own record counts too: a trial may run that this agent
     * did not start (it was created after a power loss). */
    if (o->state == FDL_OTA_IDLE && fdl_fw_trial_tier(o->fw) != FDL_TIER_NONE) {
        reject(o, jd.job, jd.seq, FDL_JOB_OK, "busy");
        return;
    }
    if (o->state != FDL_OTA_IDLE) {
        if (o->state == FDL_OTA_DOWNLOADING && !o->writing && jd.seq > o->seq) {
            char why[96];
            snprintf(why, sizeof why, "superseded by seq %llu", (unsigned long long)jd.seq);
            job_fail(o, FDL_FW_OK, why);
        } else {
            reject(o, jd.job, jd.seq, FDL_JOB_OK, "busy");
            return;
        }
    }
    /* Accepted: the seq is kept before anything else, so this document can
     * never be replayed, whatever happens next. */
    int rc = fdl_fw_set_job_seq(o->fw, jd.seq);
    if (rc == FDL_FW_POWER_LOSS) {
        power_lost(o);
        return;
    }
    if (rc != 0) {
        reject(o, jd.job, jd.seq, FDL_JOB_OK, "cannot record the job seq");
        return;
    }
    snprintf(o->job, sizeof o->job, "%s", jd.job);
    snprintf(o->artifact, sizeof o->artifact, "%s", jd.artifact);
    o->seq = jd.seq;
    o->tier = jd.tier;
    o->version = jd.version;
    o->counter = jd.counter;
    o->size = jd.size;
    memcpy(o->sha256, jd.sha256, 32);
    o->started_ms = now_ms;
    o->offset = 0;
    o->retries = 0;
    o->writing = false;
    o->state = FDL_OTA_DOWNLOADING;
    mbedtls_sha256_init(&o->whole);
    mbedtls_sha256_init(&o->payload);
    mbedtls_sha256_starts(&o->whole, 0);
    mbedtls_sha256_starts(&o->payload, 0);
    o->hashing = true;
    o->stats.downloads++;
    status_report(o, o->job, o->seq, "downloading", o->artifact);
    request(o, now_ms);
}

/* The header has arrived whole: every check that needs no payload, then the
 * slot is erased. Before this returns 0 no byte of the image is in flash. */
static int header_arrived(fdl_ota *o)
{
    char why[160];
    fdl_fw_status st = fdl_fwimage_parse_hdr(o->hdr_buf, sizeof o->hdr_buf, &o->hdr);
    if (st != FDL_FW_OK) {
        snprintf(why, sizeof why, "header: %s", fdl_fw_strerror(st));
        job_fail(o, st, why);
        return -1;
    }
    if (o->hdr.tier != o->tier) {
        job_fail(o, FDL_FW_ERR_WRONG_TIER, "header: tier differs from the job's");
        return -1;
    }
    if (o->hdr.version != o->version || o->hdr.counter != o->counter) {
        job_fail(o, FDL_FW_ERR_ARG, "header: version or counter differs from the job's");
        return -1;
    }
    if ((uint64_t)FDL_FW_HDR_LEN + o->hdr.length != o->size) {
        job_fail(o, FDL_FW_ERR_LENGTH, "header: length differs from the job's size");
        return -1;
    }
    st = fdl_fw_check_header(o->fw, &o->hdr, o->tier);
    if (st != FDL_FW_OK) {
        snprintf(why, sizeof why, "header: %s", fdl_fw_strerror(st));
        job_fail(o, st, why);
        return -1;
    }
    status_report(o, o->job, o->seq, "verified", "");
    int rc = fdl_fw_update_begin(o->fw, o->tier, o->size);
    if (rc == FDL_FW_POWER_LOSS) {
        power_lost(o);
        return -1;
    }
    if (rc != 0) {
        job_fail(o, FDL_FW_OK, "cannot take the inactive slot (a trial pending?)");
        return -1;
    }
    o->writing = true;
    fdl_fw_update_set_job(o->fw, o->job);
    rc = fdl_fw_update_write(o->fw, o->hdr_buf, sizeof o->hdr_buf);
    if (rc != 0) {
        o->writing = false;   /* the update was aborted by the failed write */
        if (rc == FDL_FW_POWER_LOSS)
            power_lost(o);
        else
            job_fail(o, FDL_FW_OK, "flash write failed");
        return -1;
    }
    return 0;
}

void fdl_ota_on_block(fdl_ota *o, const uint8_t *payload, size_t len, uint64_t now_ms)
{
    if (!o || dead(o))
        return;
    if (o->state != FDL_OTA_DOWNLOADING || !payload || len < FDL_OTA_BLOCK_HDR ||
        memcmp(payload, FDL_OTA_BLOCK_MAGIC, 4) != 0) {
        o->stats.bad_blocks++;
        return;
    }
    uint32_t off = blk_get32(payload + 4), total = blk_get32(payload + 8);
    const uint8_t *data = payload + FDL_OTA_BLOCK_HDR;
    size_t n = len - FDL_OTA_BLOCK_HDR;
    if (n == 0 || off < o->offset) {
        /* An empty block or a late duplicate of a re-requested one. */
        o->stats.bad_blocks++;
        return;
    }
    if (total != o->size) {
        job_fail(o, FDL_FW_ERR_LENGTH, "artifact size differs from the job's");
        return;
    }
    if (off > o->offset) {
        job_fail(o, FDL_FW_ERR_ARG, "block out of order");
        return;
    }
    if (n > FDL_OTA_BLOCK || n > (size_t)(o->size - o->offset)) {
        /* Endless data: the artifact goes on past the size the signed job declared. */
        job_fail(o, FDL_FW_ERR_LENGTH, "endless data: more bytes than the job's size");
        return;
    }
    o->stats.blocks++;
    o->stats.bytes += n;
    mbedtls_sha256_update(&o->whole, data, n);
    if (!o->writing) {
        size_t take = FDL_FW_HDR_LEN - o->offset;
        if (take > n)
            take = n;
        memcpy(o->hdr_buf + o->offset, data, take);
        o->offset += (uint32_t)take;
        data += take;
        n -= take;
        if (o->offset < FDL_FW_HDR_LEN) {
            o->retries = 0;
            request(o, now_ms);
            return;
        }
        if (header_arrived(o) != 0)
            return;
    }
    if (n) {
        int rc = fdl_fw_update_write(o->fw, data, n);
        if (rc != 0) {
            o->writing = false;
            if (rc == FDL_FW_POWER_LOSS)
                power_lost(o);
            else
                job_fail(o, FDL_FW_OK, "flash write failed");
            return;
        }
        mbedtls_sha256_update(&o->payload, data, n);
        o->offset += (uint32_t)n;
    }
    if (o->offset < o->size) {
        o->retries = 0;
        request(o, now_ms);
        return;
    }
    /* The whole image is in the slot: its payload must be what the signed
     * header says, and the image what the signed job says. */
    uint8_t ph[32], wh[32];
    mbedtls_sha256_finish(&o->payload, ph);
    mbedtls_sha256_finish(&o->whole, wh);
    hashes_free(o);
    if (memcmp(ph, o->hdr.sha256, 32) != 0) {
        job_fail(o, FDL_FW_ERR_HASH, "payload hash differs from the signed header's");
        return;
    }
    if (memcmp(wh, o->sha256, 32) != 0) {
        job_fail(o, FDL_FW_ERR_HASH, "image hash differs from the job's");
        return;
    }
    int rc = fdl_fw_update_finish(o->fw, o->p.trial_ms);
    o->writing = false;
    if (rc == FDL_FW_POWER_LOSS) {
        power_lost(o);
        return;
    }
    if (rc != 0) {
        job_fail(o, FDL_FW_OK, "cannot mark the slot for a trial boot");
        return;
    }
    o->stats.written++;
    o->state = FDL_OTA_REBOOT_PENDING;
    status_report(o, o->job, o->seq, "written", "");
    if (o->io.reboot)
        o->io.reboot(o->io.ud);
}

void fdl_ota_tick(fdl_ota *o, uint64_t now_ms)
{
    if (!o || dead(o))
        return;
    if (o->state == FDL_OTA_DOWNLOADING) {
        char why[96];
        if (now_ms - o->started_ms >= o->p.total_timeout_ms) {
            snprintf(why, sizeof why, "slow retrieval: download not done in %llu ms",
                     (unsigned long long)o->p.total_timeout_ms);
            job_fail(o, FDL_FW_OK, why);
        } else if (now_ms - o->requested_ms >= o->p.block_timeout_ms) {
            if (o->retries < BLOCK_RETRIES) {
                o->retries++;
                request(o, now_ms);
            } else {
                snprintf(why, sizeof why, "slow retrieval: no block in %llu ms",
                         (unsigned long long)o->p.block_timeout_ms);
                job_fail(o, FDL_FW_OK, why);
            }
        }
        return;
    }
    /* The watchdog: a trial image still unconfirmed at its deadline is reset,
     * and the bootloader reverts it. */
    uint64_t deadline = 0;
    if (o->state == FDL_OTA_TRIAL && !o->reboot_asked && fdl_fw_in_trial(o->fw, &deadline) && now_ms >= deadline) {
        o->reboot_asked = true;
        if (o->io.reboot)
            o->io.reboot(o->io.ud);
    }
}

void fdl_ota_booted(fdl_ota *o, const fdl_boot_record *rec, uint64_t now_ms)
{
    (void)now_ms;
    if (!o)
        return;
    /* Whatever was downloading is gone with the RAM. */
    if (o->state == FDL_OTA_DOWNLOADING) {
        o->writing = false;
        job_fail(o, FDL_FW_OK, "rebooted during the download");
    }
    hashes_free(o);
    o->writing = false;
    o->reboot_asked = false;
    if (!rec || rec->outcome == FDL_BOOT_POWER_LOSS)
        return;
    fdl_ota_state was = o->state;
    unsigned t = fdl_fw_trial_tier(o->fw);
    if (t != FDL_TIER_NONE) {
        /* Running a new image in trial (also after a power loss: the record in
         * flash says which job it is). */
        if (!o->job[0] || was == FDL_OTA_IDLE)
            snprintf(o->job, sizeof o->job, "%s", fdl_fw_job(o->fw));
        o->state = FDL_OTA_TRIAL;
        if (was != FDL_OTA_TRIAL)
            status_report(o, o->job, o->seq, "trial", fdl_fw_tier_name(t));
        return;
    }
    o->state = FDL_OTA_IDLE;
    if (rec->reverted) {
        o->stats.reverted++;
        snprintf(o->stats.last_detail, sizeof o->stats.last_detail, "%s", rec->why);
        status_report(o, o->job, o->seq, "reverted", rec->why);
    } else if (was == FDL_OTA_REBOOT_PENDING || was == FDL_OTA_TRIAL) {
        o->stats.failed++;
        status_report(o, o->job, o->seq, "failed", "the new image is not running");
    }
}

void fdl_ota_online(fdl_ota *o, uint64_t now_ms)
{
    if (!o || dead(o))
        return;
    unsigned t = fdl_fw_trial_tier(o->fw);
    if (t == FDL_TIER_NONE)
        return;
    if (fdl_fw_running_behaviour(o->fw, t) == FDL_BEHAVE_NO_CONFIRM) {
        /* A test image that never phones home: the watchdog will revert it. */
        detail_set(o, "%s image in trial does not confirm%s", fdl_fw_tier_name(t), "");
        return;
    }
    if (!o->job[0])
        snprintf(o->job, sizeof o->job, "%s", fdl_fw_job(o->fw));   /* confirming clears it */
    int rc = fdl_fw_confirm(o->fw, now_ms);
    if (rc == FDL_FW_POWER_LOSS) {
        power_lost(o);
        return;
    }
    if (rc != 0) {
        job_fail(o, FDL_FW_OK, "confirm failed");
        return;
    }
    o->stats.confirmed++;
    o->state = FDL_OTA_IDLE;
    char detail[64];
    snprintf(detail, sizeof detail, "%s floor %u", fdl_fw_tier_name(t), fdl_fw_floor(o->fw, t));
    status_report(o, o->job, o->seq, "confirmed", detail);
}
