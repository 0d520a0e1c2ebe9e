/* attacks/ota.c — attacks on the update path (see ota.h, docs/attacks.md). */
#include "attacks/ota.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "attacks/attack_int.h"
#include "attacks/session.h"
#include "cloud/enroll.h"
#include "cloud/fwsign.h"
#include "devices/jobdoc.h"
#include "sim/alloc.h"
#include "sim/bootaudit.h"

#define OTA_DOC_MAX (FDL_JOBDOC_MAX + FDL_JOBDOC_OVERHEAD)
#define REPORTS_MAX 64
/* Real seconds to wait for a device's word when the timing gives no better bound. */
#define OTA_WAIT_S 20u
/* After the final report: the device's reboot and boot record land. */
#define OTA_SETTLE_MS 600u

static const char *const k_names[FDL_ATK_OTA__COUNT] = {
    [FDL_ATK_OTA_UNSIGNED] = "unsigned-image",   [FDL_ATK_OTA_WRONG_KEY] = "wrong-tier-key",
    [FDL_ATK_OTA_ROLLBACK] = "rollback",         [FDL_ATK_OTA_TAMPERED] = "tampered-artifact",
    [FDL_ATK_OTA_MALICIOUS] = "malicious-store", [FDL_ATK_OTA_ENDLESS] = "endless-data",
    [FDL_ATK_OTA_SLOW] = "slow-retrieval",       [FDL_ATK_OTA_NO_CONFIRM] = "never-confirms",
    [FDL_ATK_OTA_REPLAY] = "job-replay",         [FDL_ATK_OTA_EXPIRED] = "job-expired",
    [FDL_ATK_OTA_FOREIGN] = "mix-and-match",     [FDL_ATK_OTA_BAD_CANARY] = "bad-canary",
};

const char *fdl_atk_ota_kind_name(fdl_atk_ota_kind k)
{
    return (unsigned)k < FDL_ATK_OTA__COUNT ? k_names[k] : "?";
}

/* ---- small helpers ------------------------------------------------------------------------ */

typedef struct ota_run {
    const fdl_atk_ota_env *env;
    const fdl_atk_ota_cfg *cfg;
    fdl_atk_result *r;
    fdl_atk_ota_obs *obs;
    fdl_state st;
    char victim[64];
    uint64_t t0_ns;
    uint64_t boot_before;          /* the victim's last boot number when the attack began */
    uint8_t bad_sha[32];           /* the image the attacker wants to run */
    int have_bad;
    char job[64];
} ota_run;

static void dev_id(const fdl_atk_ota_env *env, uint32_t i, char *buf, size_t cap)
{
    fdl_device_id(env->first + i, buf, cap);
}

static void hex8(const uint8_t *p, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[16] = '\0';
}

/* Real ms of a simulated delay. */
static uint64_t real_ms(const fdl_atk_ota_env *env, uint64_t sim_ms)
{
    return env->clock ? fdl_vclock_real_delay_ms(env->clock, sim_ms) : sim_ms;
}

static uint64_t block_timeout_real(const fdl_atk_ota_env *env)
{
    return real_ms(env, env->ota.block_timeout_ms ? env->ota.block_timeout_ms : 30000u);
}

static uint64_t trial_real(const fdl_atk_ota_env *env)
{
    return real_ms(env, env->ota.trial_ms ? env->ota.trial_ms : FDL_FW_TRIAL_MS_DEFAULT);
}

/* A unique job id for this attack. */
static void job_name(ota_run *o)
{
    static atomic_uint n;
    snprintf(o->job, sizeof o->job, "atk-%s-%llu-%u", k_names[o->cfg->kind],
             (unsigned long long)(fdl_atk_now_us() / 1000000u) % 100000u, atomic_fetch_add(&n, 1) + 1);
}

/* The version and counter of the images a drill throws: above the victim's floor,
 * so that no check but the one the attack is about refuses them. */
static void next_release(const ota_run *o, uint32_t *version, uint32_t *counter)
{
    fdl_fleet_fw_view v;
    memset(&v, 0, sizeof v);
    fdl_fleet_live_fw(o->env->live, o->cfg->victim, &v);
    *counter = (v.app_floor > v.app_counter ? v.app_floor : v.app_counter) + 1;
    *version = (2u << 24) | (*counter & 0xffffu);
}

static int build(ota_run *o, fdl_fwenv_sign how, unsigned role, const char *behaviour, uint32_t version,
                 uint32_t counter, uint8_t **img, size_t *len)
{
    char err[512];
    fdl_fwenv_image spec = {.tier = FDL_TIER_APPLICATION, .version = version, .counter = counter,
                            .behaviour = behaviour, .sign = how, .role = role};
    if (fdl_fwenv_build(o->env->fw, &spec, img, len, err, sizeof err) != 0) {
        fdl_atk_note(o->r, "setup: %s", err);
        return -1;
    }
    return 0;
}

/* Records what the image is, for the evidence and the boot-record check. */
static void describe(ota_run *o, const char *who, const uint8_t *img, size_t len, int bad)
{
    fdl_fw_hdr h;
    char ver[16], sha[17], kid[17];
    uint8_t digest[32];
    mbedtls_sha256(img, len, digest, 0);
    hex8(digest, sha);
    if (fdl_fwimage_parse_hdr(img, len, &h) != FDL_FW_OK) {
        fdl_atk_note(o->r, "%s: %zu bytes that are not an image (sha256 %s...)", who, len, sha);
    } else {
        const char *signer = "no key (unsigned)";
        static const uint8_t zero[FDL_FW_KEYID_LEN];
        if (memcmp(h.key_id, zero, sizeof zero))
            signer = fdl_fw_key_id_hex(h.key_id, kid, sizeof kid);
        fdl_atk_note(o->r, "%s: %s image %s, security counter %u, %zu bytes, signer key id %s, sha256 %s...", who,
                     fdl_fw_tier_name(h.tier), fdl_fw_version_str(h.version, ver, sizeof ver), h.counter, len,
                     signer, sha);
    }
    if (bad) {
        memcpy(o->bad_sha, digest, 32);
        o->have_bad = 1;
    }
}

/* Stores the artifact and has the job service sign a job for targets. */
static int make_job(ota_run *o, const char *const *targets, size_t n, const uint8_t *img, size_t len,
                    const char *artifact, int upload, int hold, uint64_t valid_ms, const uint32_t *hw, size_t n_hw)
{
    char err[512];
    fdl_fw_hdr h;
    if (fdl_fwimage_parse_hdr(img, len, &h) != FDL_FW_OK) {
        fdl_atk_note(o->r, "setup: the job's image has no header");
        return -1;
    }
    fdl_job_spec js;
    memset(&js, 0, sizeof js);
    js.id = o->job;
    js.tier = h.tier;
    js.version = h.version;
    js.counter = h.counter;
    js.artifact = artifact;
    mbedtls_sha256(img, len, js.sha256, 0);
    js.size = (uint32_t)len;
    js.targets = targets;
    js.n_targets = n;
    js.hw = hw;
    js.n_hw = n_hw;
    js.max_failure = 1.0;
    js.valid_ms = valid_ms;
    js.stage_timeout_ms = 120000;
    js.hold = hold;
    if (upload && fdl_fwenv_upload(o->env->fw, artifact, img, len, NULL, err, sizeof err) != 0) {
        fdl_atk_note(o->r, "setup: %s", err);
        return -1;
    }
    if (fdl_jobs_create(o->env->jobs, &js, NULL, err, sizeof err) != 0) {
        fdl_atk_note(o->r, "setup: job service: %s", err);
        return -1;
    }
    return 0;
}

static int is_final(const char *s)
{
    return !strcmp(s, "confirmed") || !strcmp(s, "rejected") || !strcmp(s, "failed") || !strcmp(s, "reverted");
}

/* The reports of the victim since the attack began, as the job service received
 * them (about job, or any job if NULL); its last final word, or else its last
 * word, into the observation. Returns how many. */
static size_t read_reports(ota_run *o, const char *job, int note)
{
    fdl_job_report rep[REPORTS_MAX];
    size_t n = fdl_jobs_reports(o->env->jobs, o->victim, o->t0_ns, rep, REPORTS_MAX);
    if (n > REPORTS_MAX)
        n = REPORTS_MAX;
    const fdl_job_report *last = NULL, *fin = NULL;
    for (size_t i = 0; i < n; i++) {
        if (note)
            fdl_atk_note(o->r, "job service: %s reported %s on %s (seq %llu)%s%s", o->victim, rep[i].step,
                         rep[i].job[0] ? rep[i].job : "(no job)", (unsigned long long)rep[i].seq,
                         rep[i].detail[0] ? ": " : "", rep[i].detail);
        if (job && strcmp(rep[i].job, job))
            continue;
        o->obs->wrote |= !strcmp(rep[i].step, "written");
        last = &rep[i];
        if (is_final(rep[i].step))
            fin = &rep[i];
    }
    if (fin || last) {
        snprintf(o->obs->final_step, sizeof o->obs->final_step, "%s", (fin ? fin : last)->step);
        snprintf(o->obs->detail, sizeof o->obs->detail, "%s", (fin ? fin : last)->detail);
    }
    return n;
}

/* Polls until the victim gave a final word on job (or on anything, job NULL) or ms pass. */
static int wait_final(ota_run *o, const char *job, uint64_t ms)
{
    uint64_t end = fdl_atk_now_us() + ms * 1000u;
    for (;;) {
        fdl_job_report rep[REPORTS_MAX];
        size_t n = fdl_jobs_reports(o->env->jobs, o->victim, o->t0_ns, rep, REPORTS_MAX);
        for (size_t i = 0; i < n && i < REPORTS_MAX; i++)
            if ((!job || !strcmp(rep[i].job, job)) && is_final(rep[i].step))
                return 1;
        if (fdl_atk_now_us() >= end)
            return 0;
        usleep(20000);
    }
}

/* What the victim's boot records say since the attack began. */
static void boot_evidence(ota_run *o)
{
    fdl_boot_history h;
    if (fdl_boot_history_get(&o->st, o->victim, o->have_bad ? o->bad_sha : NULL, o->boot_before, &h) != 0) {
        fdl_atk_note(o->r, "%s boot records: cannot be read", o->victim);
        return;
    }
    o->obs->bad_ran = h.ran;
    o->obs->bad_runs = h.runs;
    o->obs->reverted = h.reverted;
    o->obs->unverified = h.unverified;
    uint64_t since = h.last_boot > o->boot_before ? h.last_boot - o->boot_before : 0;
    fdl_atk_note(o->r, "%s boot records: %llu boot(s) since the attack began%s; %s%s; the last boot (%s) runs "
                       "application %s",
                 o->victim, (unsigned long long)since, h.unverified ? ", ONE RAN AN UNVERIFIED IMAGE" : "",
                 !o->have_bad ? "no attacker image to look for"
                 : h.runs     ? "the attacker's image RUNS"
                 : h.ran      ? "the attacker's image ran in trial"
                              : "the attacker's image never ran",
                 h.reverted ? ", then the bootloader reverted it" : "", h.last_outcome[0] ? h.last_outcome : "none",
                 h.last_app_version[0] ? h.last_app_version : "?");
    if (h.reverted && h.last_why[0])
        fdl_atk_note(o->r, "%s bootloader: %s", o->victim, h.last_why);
}

static void store_evidence(ota_run *o, const char *artifact)
{
    fdl_artifacts_req rq[FDL_ARTIFACTS_RECENT];
    size_t n = fdl_artifacts_recent(o->env->store, o->victim, o->t0_ns, rq, FDL_ARTIFACTS_RECENT);
    uint64_t bytes = 0, reqs = 0;
    for (size_t i = 0; i < n && i < FDL_ARTIFACTS_RECENT; i++)
        if (!artifact || !strcmp(rq[i].artifact, artifact)) {
            reqs++;
            bytes += rq[i].sent;
        }
    fdl_atk_note(o->r, "artifact store: %llu block request(s) from %s%s%s, %llu bytes served", (unsigned long long)reqs,
                 o->victim, artifact ? " for " : "", artifact ? artifact : "", (unsigned long long)bytes);
}

/* Ends the attack: stage from the device's last word, succeeded if the bad image runs. */
static int finish(ota_run *o)
{
    fdl_atk_ota_obs *ob = o->obs;
    int stage = FDL_ATK_STAGE_NONE;
    if (ob->delivery_denied && !ob->final_step[0])
        stage = FDL_ATK_STAGE_PUBLISH;
    else if (!strcmp(ob->final_step, "rejected"))
        stage = FDL_ATK_STAGE_JOB;
    else if (!strcmp(ob->final_step, "failed"))
        stage = FDL_ATK_STAGE_IMAGE;
    else if (!strcmp(ob->final_step, "reverted"))
        stage = FDL_ATK_STAGE_TRIAL;
    int ok = ob->bad_runs || !strcmp(ob->final_step, "confirmed");
    if (!ok && stage == FDL_ATK_STAGE_NONE)
        stage = FDL_ATK_STAGE_IMAGE;   /* no final word: the judge says inconclusive */
    fdl_atk_result_end(o->r, ok, stage);
    return ok;
}

/* ---- the stolen delivery credential ---------------------------------------------------- */

/* Publishes doc on the victim's notify topic as svc-jobs (its certificate and key
 * file, client id svc-jobs-atk); notes the broker's word. 0, or -1 (not delivered). */
static int deliver(ota_run *o, const uint8_t *doc, size_t len)
{
    atk_env e;
    fdl_atk_loop *l = NULL;
    mbedtls_x509_crt cert;
    mbedtls_pk_context key;
    mbedtls_x509_crt_init(&cert);
    mbedtls_pk_init(&key);
    int rc = -1;
    char cpath[FDL_PATH_MAX + 64], kpath[FDL_PATH_MAX + 64], topic[128], needle[160];
    if (atk_env_open(&e, o->env->t, o->r) != 0)
        goto cleanup;
    fdl_enroll_actor_paths(e.st.pki_dir, FDL_ACTOR_JOBS, cpath, kpath, sizeof cpath);
    if (mbedtls_x509_crt_parse_file(&cert, cpath) != 0 ||
        mbedtls_pk_parse_keyfile(&key, kpath, NULL, mbedtls_ctr_drbg_random, &e.drbg) != 0) {
        fdl_atk_note(o->r, "setup: cannot read the job service's credential %s", cpath);
        goto cleanup;
    }
    fdl_atk_note(o->r, "attacker: holds the job service's broker credential (%s), not its job key (token %s)",
                 cpath, FDL_FWSIGN_JOBS_TOKEN);
    l = fdl_atk_loop_new();
    fdl_tls_client_cfg tls = atk_env_tls(&e, &cert, &key);
    fdl_atk_sess *s = l ? atk_env_sess(&e, l, FDL_ACTOR_JOBS "-atk", &tls, 0) : NULL;
    if (!s || fdl_atk_sess_connect(s, ATK_CONNECT_MS, "attacker (" FDL_ACTOR_JOBS ")", o->r) != FDL_ATK_STAGE_NONE) {
        fdl_atk_note(o->r, "setup: the stolen credential did not connect");
        goto cleanup;
    }
    snprintf(topic, sizeof topic, "%s%s/%s", FDL_TOPIC_JOBS_PREFIX, o->victim, FDL_TOPIC_JOBS_NOTIFY);
    int p = fdl_atk_sess_publish(s, topic, doc, len, ATK_ACK_MS);
    fdl_atk_note(o->r, "attacker: published the document (%zu bytes) on %s: %s", len, topic,
                 p > 0 ? "sent" : "not sent");
    fdl_atk_loop_run_for(l, 200);
    snprintf(needle, sizeof needle, "denied %s publish to %s", FDL_ACTOR_JOBS, topic);
    if (fdl_atk_log_since(o->env->t, e.log_from, needle, 2, o->r) > 0)
        o->obs->delivery_denied = true;
    rc = p > 0 ? 0 : -1;
cleanup:
    fdl_atk_loop_free(l);
    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&cert);
    atk_env_close(&e);
    return rc;
}

/* ---- compromised store taps (static: the store's worker may still hold the pointer) ------- */

static struct {
    char artifact[64];
    uint64_t delay_ms;
} g_tap;

static void tap_slow(void *ud, const char *device, const char *artifact, uint32_t offset, uint32_t asked,
                     uint32_t size, fdl_artifacts_answer *ans)
{
    (void)ud;
    (void)device;
    (void)offset;
    (void)asked;
    (void)size;
    if (!strcmp(artifact, g_tap.artifact))
        ans->delay_ms = g_tap.delay_ms;
}

static void tap_endless(void *ud, const char *device, const char *artifact, uint32_t offset, uint32_t asked,
                        uint32_t size, fdl_artifacts_answer *ans)
{
    (void)ud;
    (void)device;
    (void)asked;
    /* The last block: a full one anyway, and more after it — past the declared size. */
    if (!strcmp(artifact, g_tap.artifact) && (uint64_t)offset + FDL_OTA_BLOCK >= size) {
        ans->len = FDL_OTA_BLOCK;
        ans->extra_blocks = 16;
    }
}

/* ---- the attacks -------------------------------------------------------------------------- */

/* The attacker's image through a job: unsigned, signed with another tier's key, an
 * old genuine one (rollback), one that never confirms. */
static void image_attack(ota_run *o)
{
    const fdl_atk_ota_cfg *c = o->cfg;
    uint8_t *img = NULL;
    size_t len = 0;
    uint32_t version, counter;
    next_release(o, &version, &counter);
    const char *targets[1] = {o->victim};
    uint64_t wait_ms = (uint64_t)(c->wait_s ? c->wait_s : OTA_WAIT_S) * 1000u;
    switch (c->kind) {
    case FDL_ATK_OTA_UNSIGNED:
        if (build(o, FDL_FWENV_UNSIGNED, 0, NULL, version, counter, &img, &len) != 0)
            goto setup;
        describe(o, "attacker: built", img, len, 1);
        break;
    case FDL_ATK_OTA_WRONG_KEY: {
        unsigned role = c->key_role ? c->key_role : FDL_TIER_MODULES;
        if (build(o, FDL_FWENV_SIGN_ROLE, role, NULL, version, counter, &img, &len) != 0)
            goto setup;
        describe(o, "attacker: built", img, len, 1);
        fdl_atk_note(o->r, "attacker: signed it with the current %s key (a key of another tier, stolen)",
                     fdl_fwsign_role_name(role));
        break;
    }
    case FDL_ATK_OTA_ROLLBACK: {
        fdl_fleet_fw_view v;
        memset(&v, 0, sizeof v);
        fdl_fleet_live_fw(o->env->live, c->victim, &v);
        size_t flen = 0;
        const uint8_t *f = fdl_fwenv_factory_image(o->env->fw, FDL_TIER_APPLICATION, &flen);
        fdl_fw_hdr h;
        if (!f || fdl_fwimage_parse_hdr(f, flen, &h) != FDL_FW_OK) {
            fdl_atk_note(o->r, "setup: no factory application image to replay");
            goto setup;
        }
        if (v.app_floor <= h.counter) {
            fdl_atk_note(o->r, "setup: %s's application floor is %u, not above the old image's counter %u: "
                               "update it first (f:update)", o->victim, v.app_floor, h.counter);
            goto setup;
        }
        img = fdl_malloc(flen);
        if (!img)
            goto setup;
        memcpy(img, f, flen);
        len = flen;
        describe(o, "attacker: replays the old, genuinely signed", img, len, 1);
        fdl_atk_note(o->r, "%s: application floor %u (fused when a newer image confirmed)", o->victim, v.app_floor);
        break;
    }
    default: /* FDL_ATK_OTA_NO_CONFIRM */
        if (build(o, FDL_FWENV_SIGN_TIER, 0, "no-confirm", version, counter, &img, &len) != 0)
            goto setup;
        describe(o, "release: a genuinely signed", img, len, 1);
        fdl_atk_note(o->r, "release: its payload says behaviour=no-confirm: it will never phone home");
        wait_ms = trial_real(o->env) + 2 * block_timeout_real(o->env) + 15000u;
        break;
    }
    job_name(o);
    if (make_job(o, targets, 1, img, len, o->job, 1, 0, 0, NULL, 0) != 0)
        goto setup;
    fdl_atk_note(o->r, "%s: job %s signed by the job service for %s (artifact %s)",
                 c->kind == FDL_ATK_OTA_NO_CONFIRM ? "operator" : "attacker", o->job, o->victim, o->job);
    wait_final(o, o->job, wait_ms);
    usleep(OTA_SETTLE_MS * 1000u);
    read_reports(o, o->job, 1);
    store_evidence(o, o->job);
    boot_evidence(o);
    fdl_free(img);
    finish(o);
    return;
setup:
    fdl_free(img);
    fdl_atk_result_end(o->r, 0, FDL_ATK_STAGE_SETUP);
}

/* A genuine job whose artifact the attacker owns: compromise first, then the job. */
static void store_attack(ota_run *o)
{
    const fdl_atk_ota_cfg *c = o->cfg;
    uint8_t *img = NULL, *evil = NULL;
    size_t len = 0, evil_len = 0;
    uint32_t version, counter;
    char err[512], path[1200];
    next_release(o, &version, &counter);
    const char *targets[1] = {o->victim};
    uint64_t wait_ms = (uint64_t)(c->wait_s ? c->wait_s : OTA_WAIT_S) * 1000u;
    job_name(o);
    if (build(o, FDL_FWENV_SIGN_TIER, 0, NULL, version, counter, &img, &len) != 0)
        goto setup;
    describe(o, "release: a genuine", img, len, 0);
    if (fdl_fwenv_upload(o->env->fw, o->job, img, len, NULL, err, sizeof err) != 0 ||
        fdl_artifacts_path(fdl_fwenv_artifacts_dir(o->env->fw), o->job, path, sizeof path) != 0) {
        fdl_atk_note(o->r, "setup: %s", err);
        goto setup;
    }
    switch (c->kind) {
    case FDL_ATK_OTA_TAMPERED: {
        /* One byte of the payload, in the store's own file, behind its back. */
        int fd = open(path, O_RDWR | O_CLOEXEC);
        uint8_t b = 0;
        off_t at = FDL_FW_HDR_LEN + 100;
        if (fd < 0 || pread(fd, &b, 1, at) != 1) {
            if (fd >= 0)
                close(fd);
            fdl_atk_note(o->r, "setup: cannot open the artifact %s", path);
            goto setup;
        }
        b ^= 0x5a;
        ssize_t w = pwrite(fd, &b, 1, at);
        close(fd);
        if (w != 1) {
            fdl_atk_note(o->r, "setup: cannot write the artifact %s", path);
            goto setup;
        }
        uint8_t *now = fdl_malloc(len);
        if (now) {
            memcpy(now, img, len);
            now[at] ^= 0x5a;
            mbedtls_sha256(now, len, o->bad_sha, 0);
            o->have_bad = 1;
            fdl_free(now);
        }
        fdl_atk_note(o->r, "attacker: changed byte %lld of the stored artifact %s (payload byte 100)", (long long)at,
                     path);
        break;
    }
    case FDL_ATK_OTA_MALICIOUS: {
        /* Its own image, well formed, same tier, version, counter and size as the
         * release — signed with a key of its own. */
        fdl_fw_hdr h;
        fdl_fwimage_parse_hdr(img, len, &h);
        if (build(o, FDL_FWENV_SIGN_ROGUE, 0, NULL, h.version, h.counter, &evil, &evil_len) != 0)
            goto setup;
        if (evil_len != len) {
            fdl_atk_note(o->r, "setup: the malicious image is %zu bytes, the release %zu", evil_len, len);
            goto setup;
        }
        if (fdl_fwenv_upload(o->env->fw, o->job, evil, evil_len, NULL, err, sizeof err) != 0) {
            fdl_atk_note(o->r, "setup: %s", err);
            goto setup;
        }
        describe(o, "attacker: the store now serves its own", evil, evil_len, 1);
        break;
    }
    case FDL_ATK_OTA_ENDLESS: {
        snprintf(g_tap.artifact, sizeof g_tap.artifact, "%s", o->job);
        fdl_artifacts_tap t = {.on_request = tap_endless};
        fdl_artifacts_set_tap(o->env->store, &t);
        fdl_atk_note(o->r, "attacker: the store answers the last block with a full %u-byte block and %u more "
                           "after it, past the %zu bytes the job declares", FDL_OTA_BLOCK, 16u, len);
        break;
    }
    case FDL_ATK_OTA_SLOW: {
        /* Longer than the device waits for a block, even with its retries. */
        uint64_t bt = block_timeout_real(o->env);
        snprintf(g_tap.artifact, sizeof g_tap.artifact, "%s", o->job);
        g_tap.delay_ms = 4 * bt + 1000u;
        fdl_artifacts_tap t = {.on_request = tap_slow};
        fdl_artifacts_set_tap(o->env->store, &t);
        fdl_atk_note(o->r, "attacker: the store delays every answer by %llu ms (the device waits %llu ms per block, "
                           "%.0f s of its time)", (unsigned long long)g_tap.delay_ms, (unsigned long long)bt,
                     (double)(o->env->ota.block_timeout_ms ? o->env->ota.block_timeout_ms : 30000u) / 1000.0);
        wait_ms = 6 * bt + 5000u;
        break;
    }
    default:
        break;
    }
    if (make_job(o, targets, 1, img, len, o->job, 0, 0, 0, NULL, 0) != 0)
        goto setup;
    fdl_atk_note(o->r, "operator: job %s signed by the job service for %s: the genuine image's sha256 and size "
                       "(artifact %s)", o->job, o->victim, o->job);
    wait_final(o, o->job, wait_ms);
    fdl_artifacts_set_tap(o->env->store, NULL);
    usleep(OTA_SETTLE_MS * 1000u);
    read_reports(o, o->job, 1);
    store_evidence(o, o->job);
    boot_evidence(o);
    fdl_free(img);
    fdl_free(evil);
    finish(o);
    return;
setup:
    fdl_artifacts_set_tap(o->env->store, NULL);
    fdl_free(img);
    fdl_free(evil);
    fdl_atk_result_end(o->r, 0, FDL_ATK_STAGE_SETUP);
}

/* The victim's last job as its live view says, with the document the job service
 * sent it. 0, or -1 if it has none. */
static int last_document(ota_run *o, uint32_t dev, uint8_t *buf, size_t cap, size_t *len, char *job)
{
    fdl_fleet_fw_view v;
    char id[64];
    dev_id(o->env, dev, id, sizeof id);
    if (fdl_fleet_live_fw(o->env->live, dev, &v) != 0 || !v.job[0])
        return -1;
    snprintf(job, 64, "%s", v.job);
    return fdl_jobs_document(o->env->jobs, v.job, id, buf, cap, len, NULL);
}

/* A genuine update of the victim, as the operator did it before the attack. */
static int genuine_update(ota_run *o)
{
    uint8_t *img = NULL;
    size_t len = 0;
    uint32_t version, counter;
    next_release(o, &version, &counter);
    const char *targets[1] = {o->victim};
    if (build(o, FDL_FWENV_SIGN_TIER, 0, NULL, version, counter, &img, &len) != 0)
        return -1;
    job_name(o);
    int rc = make_job(o, targets, 1, img, len, o->job, 1, 0, 0, NULL, 0);
    fdl_free(img);
    if (rc != 0)
        return -1;
    fdl_job_info ji;
    if (fdl_jobs_wait(o->env->jobs, o->job, OTA_WAIT_S * 1000u, &ji) != 0 || ji.state != FDL_JOB_COMPLETED) {
        fdl_atk_note(o->r, "setup: the operator's genuine update %s of %s did not complete", o->job, o->victim);
        return -1;
    }
    fdl_atk_note(o->r, "operator: genuine update %s of %s confirmed (the document the attacker captures)", o->job,
                 o->victim);
    usleep(OTA_SETTLE_MS * 1000u);
    return 0;
}

static void document_attack(ota_run *o)
{
    const fdl_atk_ota_cfg *c = o->cfg;
    uint8_t *doc = fdl_malloc(OTA_DOC_MAX);
    size_t len = 0;
    char job[64] = "";
    if (!doc) {
        fdl_atk_note(o->r, "setup: out of memory");
        goto setup;
    }
    if (c->kind == FDL_ATK_OTA_REPLAY) {
        /* The document of an update the device took: the operator's genuine one, now. */
        if (genuine_update(o) != 0 || last_document(o, c->victim, doc, OTA_DOC_MAX, &len, job) != 0)
            goto setup;
        fdl_atk_note(o->r, "attacker: captured the document of job %s that %s already acted on", job, o->victim);
    } else {
        /* A genuine document the attacker captured: signed and recorded by the job
         * service, never delivered to the victim by it. */
        uint8_t *img = NULL;
        size_t ilen = 0;
        uint32_t version, counter, hw[1] = {c->hw};
        next_release(o, &version, &counter);
        if (build(o, FDL_FWENV_SIGN_TIER, 0, NULL, version, counter, &img, &ilen) != 0)
            goto setup;
        char for_id[64];
        const char *targets[1] = {o->victim};
        uint64_t valid = 0;
        if (c->kind == FDL_ATK_OTA_EXPIRED) {
            valid = 1000;   /* one second of fleet time */
        } else if (c->from >= 0) {
            dev_id(o->env, (uint32_t)c->from, for_id, sizeof for_id);
            targets[0] = for_id;
        }
        job_name(o);
        int rc = make_job(o, targets, 1, img, ilen, o->job, 1, 1, valid, c->kind == FDL_ATK_OTA_FOREIGN && c->hw ? hw : NULL,
                          c->kind == FDL_ATK_OTA_FOREIGN && c->hw ? 1 : 0);
        fdl_free(img);
        if (rc != 0 || fdl_jobs_document(o->env->jobs, o->job, targets[0], doc, OTA_DOC_MAX, &len, NULL) != 0)
            goto setup;
        snprintf(job, sizeof job, "%s", o->job);
        if (c->kind == FDL_ATK_OTA_EXPIRED) {
            fdl_jobdoc jd;
            if (fdl_jobdoc_parse(doc, len, &jd) != FDL_JOB_OK)
                goto setup;
            /* Wait until it is past: the fleet's clock runs time_scale times faster. */
            for (int i = 0; i < 1000 && fdl_vclock_now_ms(o->env->clock) <= jd.expires_ms + 1000; i++)
                usleep(10000);
            fdl_atk_note(o->r, "attacker: holds document seq %llu of job %s for %s, valid until %llu; fleet time now "
                               "%llu (%.1f s past)", (unsigned long long)jd.seq, job, o->victim,
                         (unsigned long long)jd.expires_ms, (unsigned long long)fdl_vclock_now_ms(o->env->clock),
                         (double)(fdl_vclock_now_ms(o->env->clock) - jd.expires_ms) / 1000.0);
        } else if (c->from >= 0) {
            fdl_atk_note(o->r, "attacker: holds a genuine document of job %s meant for %s, not %s", job, targets[0],
                         o->victim);
        } else {
            fdl_atk_note(o->r, "attacker: holds a genuine document of job %s for %s but hardware revision %u "
                               "(the device is revision %u)", job, o->victim, c->hw, FDL_FWENV_HW_REV);
        }
    }
    o->t0_ns = fdl_now_ns();   /* reports from here on are about the delivery */
    if (deliver(o, doc, len) != 0)
        goto setup;
    wait_final(o, NULL, (uint64_t)(c->wait_s ? c->wait_s : 10u) * 1000u);
    usleep(200000);
    read_reports(o, NULL, 1);
    store_evidence(o, NULL);
    boot_evidence(o);
    fdl_free(doc);
    finish(o);
    return;
setup:
    fdl_free(doc);
    fdl_atk_result_end(o->r, 0, FDL_ATK_STAGE_SETUP);
}

static void canary_attack(ota_run *o)
{
    const fdl_atk_ota_cfg *c = o->cfg;
    const fdl_atk_ota_env *env = o->env;
    uint8_t *img = NULL;
    size_t len = 0;
    const char **ids = NULL;
    char (*idbuf)[64] = NULL;
    const char *behaviour = c->behaviour ? c->behaviour : "crash";
    uint32_t version, counter;
    next_release(o, &version, &counter);
    if (build(o, FDL_FWENV_SIGN_TIER, 0, behaviour, version, counter, &img, &len) != 0)
        goto setup;
    describe(o, "release: a genuinely signed", img, len, 1);
    fdl_atk_note(o->r, "release: its payload says behaviour=%s", behaviour);
    ids = fdl_calloc(env->devices, sizeof *ids);
    idbuf = fdl_calloc(env->devices, sizeof *idbuf);
    if (!ids || !idbuf)
        goto setup;
    for (uint32_t i = 0; i < env->devices; i++) {
        dev_id(env, i, idbuf[i], sizeof idbuf[i]);
        ids[i] = idbuf[i];
    }
    job_name(o);
    char err[512];
    if (fdl_fwenv_upload(env->fw, o->job, img, len, NULL, err, sizeof err) != 0) {
        fdl_atk_note(o->r, "setup: %s", err);
        goto setup;
    }
    fdl_job_spec js;
    memset(&js, 0, sizeof js);
    fdl_fw_hdr h;
    fdl_fwimage_parse_hdr(img, len, &h);
    js.id = o->job;
    js.tier = h.tier;
    js.version = h.version;
    js.counter = h.counter;
    js.artifact = o->job;
    memcpy(js.sha256, o->bad_sha, 32);
    js.size = (uint32_t)len;
    js.targets = ids;
    js.n_targets = env->devices;
    js.stages[0] = c->canary ? c->canary : 10;
    js.stages[1] = js.stages[0] < 50 ? 50 : 100;
    js.stages[2] = 100;
    js.n_stages = js.stages[1] == 100 ? 2 : 3;
    js.max_failure = c->max_failure > 0 ? c->max_failure : 0.1;
    uint64_t stage_ms = trial_real(env) + 4 * block_timeout_real(env) + 20000u;
    js.stage_timeout_ms = stage_ms;
    if (fdl_jobs_create(env->jobs, &js, NULL, err, sizeof err) != 0) {
        fdl_atk_note(o->r, "setup: job service: %s", err);
        goto setup;
    }
    fdl_atk_note(o->r, "operator: rollout %s to %u devices, stages %u/%u%s%s %%, halt above %.0f %% failed", o->job,
                 env->devices, js.stages[0], js.stages[1], js.n_stages == 3 ? "/" : "", js.n_stages == 3 ? "100" : "",
                 js.max_failure * 100.0);
    fdl_job_info *ji = &o->obs->job;
    unsigned limit = (unsigned)((stage_ms * js.n_stages + 10000u) / 1000u) + (c->wait_s ? c->wait_s : 0);
    int w = 1;
    for (unsigned s = 0; w == 1 && s < limit * 2; s++)
        w = fdl_jobs_wait(env->jobs, o->job, 500, ji);
    usleep(OTA_SETTLE_MS * 1000u);
    fdl_jobs_info(env->jobs, o->job, ji);
    o->obs->rollout = true;
    o->obs->untouched = ji->pending;
    for (size_t k = 0; k < ji->n_stages; k++) {
        const fdl_job_stage_info *s = &ji->stages[k];
        fdl_atk_note(o->r, "job service: stage %zu (%u %%, %u devices): %s%u confirmed, %u failed", k + 1, s->percent,
                     s->devices, k + 1 > ji->stage ? "never notified; " : "", s->confirmed, s->failed);
    }
    fdl_atk_note(o->r, "job service: %s %s: %s", o->job, fdl_job_state_name(ji->state), ji->reason);
    uint32_t bad = 0, reverted = 0;
    for (uint32_t i = 0; i < env->devices; i++) {
        fdl_fleet_fw_view v;
        if (fdl_fleet_live_fw(env->live, i, &v) != 0)
            continue;
        bad += !memcmp(v.app_sha256, o->bad_sha, 32);
        reverted += v.reverted > 0 && !strcmp(v.job, o->job);
    }
    o->obs->bad_running = bad;
    fdl_atk_note(o->r, "fleet: %u device(s) run the bad image, %u reverted it, %u never notified (registry rows "
                       "'pending')", bad, reverted, ji->pending);
    fdl_free(img);
    fdl_free(ids);
    fdl_free(idbuf);
    fdl_atk_result_end(o->r, ji->state == FDL_JOB_COMPLETED || bad > 0,
                       ji->state == FDL_JOB_HALTED ? FDL_ATK_STAGE_ROLLOUT : FDL_ATK_STAGE_TRIAL);
    return;
setup:
    fdl_free(img);
    fdl_free(ids);
    fdl_free(idbuf);
    fdl_atk_result_end(o->r, 0, FDL_ATK_STAGE_SETUP);
}

int fdl_atk_ota_run(const fdl_atk_ota_env *env, const fdl_atk_ota_cfg *cfg, fdl_atk_result *r, fdl_atk_ota_obs *obs)
{
    ota_run o;
    memset(&o, 0, sizeof o);
    memset(obs, 0, sizeof *obs);
    fdl_atk_result_begin(r);
    o.env = env;
    o.cfg = cfg;
    o.r = r;
    o.obs = obs;
    if (!env || !env->jobs || !env->store || !env->fw || !env->live || !env->t || !env->t->state_dir ||
        (unsigned)cfg->kind >= FDL_ATK_OTA__COUNT || cfg->victim >= env->devices ||
        (cfg->from >= 0 && (uint32_t)cfg->from >= env->devices)) {
        fdl_atk_note(r, "setup: no OTA services in this environment, or no such device");
        fdl_atk_result_end(r, 0, FDL_ATK_STAGE_SETUP);
        return 0;
    }
    if (fdl_state_init(&o.st, env->t->state_dir) != 0) {
        fdl_atk_note(r, "setup: state directory %s unusable", env->t->state_dir);
        fdl_atk_result_end(r, 0, FDL_ATK_STAGE_SETUP);
        return 0;
    }
    dev_id(env, cfg->victim, o.victim, sizeof o.victim);
    fdl_boot_history h;
    if (fdl_boot_history_get(&o.st, o.victim, NULL, 0, &h) == 0)
        o.boot_before = h.last_boot;
    o.t0_ns = fdl_now_ns();
    switch (cfg->kind) {
    case FDL_ATK_OTA_TAMPERED:
    case FDL_ATK_OTA_MALICIOUS:
    case FDL_ATK_OTA_ENDLESS:
    case FDL_ATK_OTA_SLOW: store_attack(&o); break;
    case FDL_ATK_OTA_REPLAY:
    case FDL_ATK_OTA_EXPIRED:
    case FDL_ATK_OTA_FOREIGN: document_attack(&o); break;
    case FDL_ATK_OTA_BAD_CANARY: canary_attack(&o); break;
    default: image_attack(&o); break;
    }
    return r->succeeded;
}
