/*
 * tests/test_ota.c — the OTA agent driven in memory: signed job documents in,
 * block requests answered by an in-memory artifact store (honest or hostile),
 * reboots done by the test. The headline: power cut at every write k of a full
 * update, for every k, and the device always boots a verified image and raises
 * its floor only after the new image confirmed.
 */
#include "fwdev.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/fwflash.h"
#include "devices/ota.h"
#include "sim/alloc.h"

#define T0 1700000000000ull
#define DEV_ID "dev-1"
#define TRIAL_MS 600000u
#define MSG_MAX 64

static fwd_keys g_keys;
static char g_tmp[512];
static char g_factory[600];
static fwd_factory g_fa;
static unsigned g_dev_no;

/* ---- the device under test and what it published ---------------------------------- */

typedef struct msg {
    char topic[96];
    char text[FDL_OTA_BLOCK];
    size_t len;
} msg;

typedef struct dev {
    char dir[700];
    fdl_fw *fw;
    fdl_ota *ota;
    uint64_t now;
    msg msgs[MSG_MAX];
    size_t n_msgs, answered;     /* messages kept; get requests answered up to here */
    size_t dropped;              /* oldest messages dropped to make room */
    bool reboot_wanted;
    unsigned reboots;
} dev;

static void on_publish(void *ud, const char *topic, const uint8_t *payload, size_t len)
{
    dev *d = ud;
    assert_true(len < sizeof d->msgs[0].text);
    if (d->n_msgs == MSG_MAX) {
        /* Keep the most recent: drop the oldest. */
        memmove(d->msgs, d->msgs + 1, sizeof d->msgs[0] * (MSG_MAX - 1));
        d->n_msgs--;
        d->dropped++;
        if (d->answered)
            d->answered--;
    }
    msg *m = &d->msgs[d->n_msgs++];
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    memcpy(m->text, payload, len);
    m->text[len] = '\0';
    m->len = len;
}

static void on_reboot(void *ud)
{
    dev *d = ud;
    d->reboot_wanted = true;
}

static void new_agent(dev *d)
{
    fdl_ota_free(d->ota);
    fdl_ota_params p = {.block_timeout_ms = 10000, .total_timeout_ms = 120000, .trial_ms = TRIAL_MS};
    fdl_ota_io io = {.publish = on_publish, .reboot = on_reboot, .ud = d};
    d->ota = fdl_ota_new(DEV_ID, d->fw, &p, &io);
    assert_non_null(d->ota);
}

static fdl_boot_outcome dev_boot(dev *d, fdl_boot_record *rec)
{
    fdl_boot_record r;
    d->reboot_wanted = false;
    d->reboots++;
    fdl_boot_outcome o = fdl_fw_boot(d->fw, d->now, &r);
    fdl_ota_booted(d->ota, &r, d->now);
    if (rec)
        *rec = r;
    return o;
}

static void dev_new(dev *d)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s/devices/d%u/fw", g_tmp, g_dev_no++);
    d->fw = fwd_open(d->dir, &g_fa.f);
    d->now = T0;
    new_agent(d);
    assert_int_equal(dev_boot(d, NULL), FDL_BOOT_OK);
}

static void dev_free(dev *d)
{
    fdl_ota_free(d->ota);
    fdl_fw_free(d->fw);
    d->ota = NULL;
    d->fw = NULL;
}

/* A position in the stream of published messages (survives dropping the oldest). */
static size_t mark(const dev *d)
{
    return d->n_msgs + d->dropped;
}

/* Index in msgs of the message at mark from (it must not have been dropped). */
static size_t at(const dev *d, size_t from)
{
    assert_true(from >= d->dropped);
    return from - d->dropped;
}

/* The steps reported on the status topic since mark `from`, comma-separated. */
static void steps(const dev *d, size_t from, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = at(d, from); i < d->n_msgs; i++) {
        if (!strstr(d->msgs[i].topic, "/status"))
            continue;
        assert_string_equal(d->msgs[i].topic, "$fleet/jobs/" DEV_ID "/status");
        fdl_test_jdoc j;
        fdl_test_jparse(&j, d->msgs[i].text, d->msgs[i].len);
        size_t st = fdl_test_jget(&j, 0, "step");
        assert_true(st > 0);
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%.*s", n ? "," : "", (int)j.tok[st].len, (const char *)j.buf + j.tok[st].start);
        fdl_test_jfree(&j);
    }
}

/* The detail of the last status report. */
static const char *last_detail(const dev *d, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = d->n_msgs; i-- > 0;) {
        if (!strstr(d->msgs[i].topic, "/status"))
            continue;
        fdl_test_jdoc j;
        fdl_test_jparse(&j, d->msgs[i].text, d->msgs[i].len);
        size_t v = fdl_test_jget(&j, 0, "detail");
        snprintf(out, cap, "%.*s", (int)j.tok[v].len, (const char *)j.buf + j.tok[v].start);
        fdl_test_jfree(&j);
        break;
    }
    return out;
}

static size_t count_gets(const dev *d, size_t from)
{
    size_t n = 0;
    for (size_t i = at(d, from); i < d->n_msgs; i++)
        n += strcmp(d->msgs[i].topic, "$fleet/ota/" DEV_ID "/get") == 0;
    return n;
}

/* ---- the artifact store ---------------------------------------------------------------- */

typedef enum store_mode {
    STORE_HONEST = 0,
    STORE_ENDLESS,       /* the last block goes on past the declared size */
    STORE_BIG_TOTAL,     /* claims a larger total than the job */
    STORE_TAMPER,        /* one payload byte flipped in transit */
    STORE_SILENT,        /* never answers */
    STORE_SMALL_BLOCKS,  /* answers 50 bytes at a time (the header arrives in pieces) */
} store_mode;

typedef struct store {
    const uint8_t *img;
    size_t len;
    store_mode mode;
} store;

/* Answers up to max get requests not answered yet, in order (the agent asks for
 * the next block as soon as one arrives). */
static void pump_n(dev *d, const store *s, int max)
{
    for (int guard = 0; guard < max; guard++) {
        size_t i = d->answered;
        while (i < d->n_msgs && strcmp(d->msgs[i].topic, "$fleet/ota/" DEV_ID "/get") != 0)
            i++;
        if (i >= d->n_msgs)
            return;
        d->answered = i + 1;
        if (s->mode == STORE_SILENT || fdl_fw_power_lost(d->fw))
            continue;
        char artifact[64];
        unsigned off = 0, n = 0;
        assert_int_equal(sscanf(d->msgs[i].text, "%63s %u %u", artifact, &off, &n), 3);
        assert_true(n <= FDL_OTA_BLOCK);
        assert_true(off < s->len);
        size_t give = n;
        if (s->mode == STORE_SMALL_BLOCKS && give > 50)
            give = 50;
        if (off + give > s->len)
            give = s->len - off;
        uint8_t blk[FDL_OTA_BLOCK_HDR + FDL_OTA_BLOCK + 64];
        memcpy(blk, FDL_OTA_BLOCK_MAGIC, 4);
        uint32_t total = (uint32_t)s->len + (s->mode == STORE_BIG_TOTAL ? 100u : 0u);
        for (int k = 0; k < 4; k++) {
            blk[4 + k] = (uint8_t)(off >> (24 - 8 * k));
            blk[8 + k] = (uint8_t)(total >> (24 - 8 * k));
        }
        memcpy(blk + FDL_OTA_BLOCK_HDR, s->img + off, give);
        if (s->mode == STORE_TAMPER && off <= s->len - 10 && s->len - 10 < off + give)
            blk[FDL_OTA_BLOCK_HDR + (s->len - 10 - off)] ^= 0x20;
        if (s->mode == STORE_ENDLESS && off + give == s->len) {
            memset(blk + FDL_OTA_BLOCK_HDR + give, 0xee, 64);
            give += 64;
        }
        d->now += 5;
        fdl_ota_on_block(d->ota, blk, FDL_OTA_BLOCK_HDR + give, d->now);
    }
    if (max >= 100000)
        fail_msg("the agent kept asking");
}

/* Answers until the agent stops asking or the power is cut. */
static void pump(dev *d, const store *s)
{
    pump_n(d, s, 100000);
}

/* ---- job documents ----------------------------------------------------------------------- */

typedef struct job {
    const char *id;
    uint64_t seq;
    unsigned tier;
    uint32_t version, counter;
    const char *artifact;
    const uint8_t *img;          /* sha256 and size from it */
    size_t len;
    uint64_t issued, expires;
    const char *target;
    const char *hw;              /* NULL: no "hw" member; else the JSON array text */
    fwt_key *signer;
} job;

static size_t make_job(const job *j, uint8_t *out, size_t cap)
{
    char doc[2048], ver[16], hex[65];
    uint8_t sha[32];
    fwd_sha(j->img, j->len, sha);
    fwd_hex(sha, hex);
    int n = snprintf(doc, sizeof doc,
                     "{\"job\":\"%s\",\"seq\":%llu,\"tier\":\"%s\",\"version\":\"%s\",\"counter\":%u,"
                     "\"artifact\":\"%s\",\"sha256\":\"%s\",\"size\":%zu,\"issued\":%llu,\"expires\":%llu,"
                     "\"targets\":[\"%s\"]%s%s}",
                     j->id, (unsigned long long)j->seq, fdl_fw_tier_name(j->tier),
                     fdl_fw_version_str(j->version, ver, sizeof ver), j->counter, j->artifact, hex, j->len,
                     (unsigned long long)j->issued, (unsigned long long)j->expires, j->target,
                     j->hw ? ",\"hw\":" : "", j->hw ? j->hw : "");
    assert_true(n > 0 && (size_t)n < sizeof doc);
    return fwt_jobdoc(j->signer ? j->signer : &g_keys.jobs, doc, out, cap);
}

/* A job for img as it should be: the image's own tier, version and counter. */
static job job_for(const uint8_t *img, size_t len, uint64_t seq, uint64_t now)
{
    fdl_fw_hdr h;
    assert_int_equal(fdl_fwimage_parse_hdr(img, len, &h), FDL_FW_OK);
    job j = {.id = "job-1", .seq = seq, .tier = h.tier, .version = h.version, .counter = h.counter,
             .artifact = "art-1", .img = img, .len = len, .issued = now - 1000, .expires = now + 3600000,
             .target = DEV_ID};
    return j;
}

static void send_job(dev *d, const job *j)
{
    uint8_t env[4096];
    size_t n = make_job(j, env, sizeof env);
    fdl_ota_on_job(d->ota, env, n, d->now);
}

/* A job, the download, the reboot, the phone home: the whole update. */
static void full_update(dev *d, const job *j, const store *s)
{
    send_job(d, j);
    pump(d, s);
    assert_true(d->reboot_wanted);
    d->now += 1000;
    assert_int_equal(dev_boot(d, NULL), FDL_BOOT_TRIAL);
    d->now += 1000;
    fdl_ota_online(d->ota, d->now);
}

/* ---- fixtures -------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    fwd_keys_new(&g_keys);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fwd_keys_free(&g_keys);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    fdl_test_mkdtemp("ota", g_tmp, sizeof g_tmp);
    snprintf(g_factory, sizeof g_factory, "%s/firmware/factory", g_tmp);
    fwd_factory_make(&g_fa, &g_keys, g_factory, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fwd_factory_free(&g_fa);
    fdl_test_rmrf(g_tmp);
    return 0;
}

/* The boot-control record as on disk. */
static void read_bootctl(const dev *d, fdl_bootctl *out)
{
    fdl_flash *fl = NULL;
    assert_int_equal(fdl_flash_open(d->dir, &fl, NULL, 0), 0);
    *out = *fdl_flash_bootctl(fl);
    fdl_flash_free(fl);
}

static bool file_exists(const char *dir, const char *name)
{
    char p[900];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* ---- the happy path ---------------------------------------------------------------------------- */

static void update_confirms_then_raises_the_floor(void **state)
{
    (void)state;
    dev d;
    dev_new(&d);
    size_t len;
    uint8_t *img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "ok", 3 * FDL_OTA_BLOCK + 77, &len);
    job j = job_for(img, len, 1, d.now);
    store s = {img, len, STORE_HONEST};
    size_t from = mark(&d);
    send_job(&d, &j);
    assert_int_equal(fdl_ota_get_state(d.ota), FDL_OTA_DOWNLOADING);
    pump(&d, &s);
    assert_int_equal(fdl_ota_get_state(d.ota), FDL_OTA_REBOOT_PENDING);
    assert_true(d.reboot_wanted);
    assert_int_equal(count_gets(&d, from), 4);
    /* Written, not yet running: the floor has not moved. */
    assert_int_equal(fdl_fw_floor(d.fw, FDL_TIER_APPLICATION), 1);
    assert_string_equal(fdl_fw_job(d.fw), "job-1");
    fdl_boot_record r;
    d.now += 1000;
    assert_int_equal(dev_boot(&d, &r), FDL_BOOT_TRIAL);
    assert_int_equal(fdl_ota_get_state(d.ota), FDL_OTA_TRIAL);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, 0x01010000u);
    assert_int_equal(fdl_fw_floor(d.fw, FDL_TIER_APPLICATION), 1);
    fdl_ota_online(d.ota, d.now + 5);
    assert_int_equal(fdl_ota_get_state(d.ota), FDL_OTA_IDLE);
    assert_int_equal(fdl_fw_floor(d.fw, FDL_TIER_APPLICATION), 2);
    char st[256];
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,downloading,verified,written,trial,confirmed");
    fdl_ota_stats stats;
    fdl_ota_get_stats(d.ota, &stats);
    assert_int_equal(stats.jobs, 1);
    assert_int_equal(stats.downloads, 1);
    assert_int_equal(stats.written, 1);
    assert_int_equal(stats.confirmed, 1);
    assert_int_equal(stats.bytes, len);
    assert_int_equal(stats.blocks, 4);
    assert_int_equal(fdl_fw_job_seq(d.fw), 1);
    assert_int_equal(dev_boot(&d, &r), FDL_BOOT_OK);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, 0x01010000u);

    /* The same job again is a replay; a header that comes in 50-byte pieces works. */
    from = mark(&d);
    send_job(&d, &j);
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,rejected");
    assert_int_equal(count_gets(&d, from), 0);
    free(img);
    img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01020000u, 2, 0, "ok", 400, &len);
    j = job_for(img, len, 2, d.now);
    store small = {img, len, STORE_SMALL_BLOCKS};
    full_update(&d, &j, &small);
    assert_int_equal(fdl_fw_running_version(d.fw, FDL_TIER_APPLICATION), 0x01020000u);
    assert_false(fdl_fw_in_trial(d.fw, NULL));
    free(img);
    dev_free(&d);
}

/* ---- nothing is written before the header verified ------------------------------------------- */

static void header_checked_before_a_byte_is_written(void **state)
{
    (void)state;
    struct {
        const char *what;
        const char *detail;
    } cases[] = {
        {"unsigned image", "key"},
        {"application signed with the kernel key", "key"},
        {"application signed with the jobs key", "key"},
        {"bootloader signed by a rogue root", "key"},
        {"rollback below the floor", "rollback"},
        {"counter above what the fuses hold", "rollback"},
        {"built for another hardware revision", "hardware"},
        {"job says application, image is a kernel", "tier"},
        {"signature altered", "signature"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dev d;
        dev_new(&d);
        size_t len = 0;
        uint8_t *img = NULL;
        uint32_t v = 0x01010000u;
        switch (i) {
        case 0: img = fwd_image(NULL, FDL_TIER_APPLICATION, v, 2, 0, "ok", 9000, &len); break;
        case 1: img = fwd_image(&g_keys.tier[2], FDL_TIER_APPLICATION, v, 2, 0, "ok", 9000, &len); break;
        case 2: img = fwd_image(&g_keys.jobs, FDL_TIER_APPLICATION, v, 2, 0, "ok", 9000, &len); break;
        case 3: img = fwd_image(&g_keys.rogue, FDL_TIER_BOOTLOADER, v, 2, 0, "ok", 9000, &len); break;
        case 4: img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, v, 0, 0, "ok", 9000, &len); break;
        case 5: img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, v, 256, 0, "ok", 9000, &len); break;
        case 6: img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, v, 2, 9, "ok", 9000, &len); break;
        case 7: img = fwd_image(&g_keys.tier[2], FDL_TIER_KERNEL, v, 2, 0, "ok", 9000, &len); break;
        case 8:
            img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, v, 2, 0, "ok", 9000, &len);
            img[100] ^= 0x01;
            break;
        }
        job j = job_for(img, len, 1, d.now);
        if (i == 7)
            j.tier = FDL_TIER_APPLICATION;
        store s = {img, len, STORE_HONEST};
        uint64_t writes = fdl_fw_flash_writes(d.fw);
        fdl_bootctl before;
        read_bootctl(&d, &before);
        size_t from = mark(&d);
        send_job(&d, &j);
        pump(&d, &s);
        char st[256], det[200];
        steps(&d, from, st, sizeof st);
        if (strcmp(st, "received,downloading,failed") != 0 || !strstr(last_detail(&d, det, sizeof det), cases[i].detail))
            fail_msg("%s: steps %s, detail %s", cases[i].what, st, det);
        /* One block asked for, one write made (the job's seq), the slot never touched. */
        assert_int_equal(count_gets(&d, from), 1);
        assert_int_equal(fdl_fw_flash_writes(d.fw), writes + 1);
        assert_false(file_exists(d.dir, "application-b.img"));
        assert_false(file_exists(d.dir, "bootloader-b.img"));
        assert_false(file_exists(d.dir, "kernel-b.img"));
        fdl_bootctl after;
        read_bootctl(&d, &after);
        assert_int_equal(after.job_seq, 1);
        after.job_seq = before.job_seq;
        uint8_t eb[FDL_BOOTCTL_COPY_LEN], ea[FDL_BOOTCTL_COPY_LEN];
        after.seq = before.seq;
        fdl_bootctl_encode(&before, eb);
        fdl_bootctl_encode(&after, ea);
        assert_memory_equal(eb, ea, sizeof eb);   /* no slot, no state changed */
        assert_false(d.reboot_wanted);
        assert_int_equal(fdl_ota_get_state(d.ota), FDL_OTA_IDLE);
        fdl_boot_record r;
        assert_int_equal(dev_boot(&d, &r), FDL_BOOT_OK);
        assert_false(r.reverted);
        assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, FWD_VERSION_1);
        free(img);
        dev_free(&d);
    }
}

/* ---- the artifact does not match what was signed ---------------------------------------------- */

static void hostile_artifacts_fail_and_nothing_runs(void **state)
{
    (void)state;
    size_t len, len2;
    uint8_t *img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "ok", 9000, &len);
    /* A validly formatted, validly signed image that is not the job's: the
     * compromised store's best shot. */
    uint8_t *other = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "crash", 9000, &len2);
    assert_int_equal(len, len2);
    struct {
        const char *what;
        store s;
        const char *detail;
    } cases[] = {
        {"endless data", {img, len, STORE_ENDLESS}, "endless data"},
        {"a larger total than the job", {img, len, STORE_BIG_TOTAL}, "size differs"},
        {"tampered in the store", {img, len, STORE_TAMPER}, "payload hash differs"},
        {"another signed image", {other, len2, STORE_HONEST}, "image hash differs from the job"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dev d;
        dev_new(&d);
        job j = job_for(img, len, 1, d.now);
        size_t from = mark(&d);
        send_job(&d, &j);
        pump(&d, &cases[i].s);
        char st[256], det[200];
        steps(&d, from, st, sizeof st);
        last_detail(&d, det, sizeof det);
        if (!strstr(st, "failed") || strstr(st, "written") || !strstr(det, cases[i].detail))
            fail_msg("%s: steps %s, detail %s", cases[i].what, st, det);
        assert_false(d.reboot_wanted);
        /* The written bytes are in a slot the record calls empty: nothing pending,
         * the next boot runs the factory image and tries nothing else. */
        fdl_bootctl bc;
        read_bootctl(&d, &bc);
        assert_int_equal(bc.tier[FDL_TIER_APPLICATION].state, FDL_TS_GOOD);
        fdl_boot_record r;
        assert_int_equal(dev_boot(&d, &r), FDL_BOOT_OK);
        assert_false(r.reverted);
        assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, FWD_VERSION_1);
        assert_int_equal(r.tier[FDL_TIER_APPLICATION].refused_slot, -1);
        assert_int_equal(fdl_fw_floor(d.fw, FDL_TIER_APPLICATION), 1);
        /* A later honest download of the same image succeeds. */
        job j2 = job_for(img, len, 2, d.now);
        store honest = {img, len, STORE_HONEST};
        full_update(&d, &j2, &honest);
        assert_int_equal(fdl_fw_floor(d.fw, FDL_TIER_APPLICATION), 2);
        dev_free(&d);
    }
    free(img);
    free(other);
}

/* ---- job documents ------------------------------------------------------------------------------ */

static void job_documents_are_checked_before_anything(void **state)
{
    (void)state;
    dev d;
    dev_new(&d);
    size_t len;
    uint8_t *img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "ok", 1000, &len);
    /* A job accepted at seq 10 first (it is then the last seq accepted). */
    job ok = job_for(img, len, 10, d.now);
    store s = {img, len, STORE_HONEST};
    full_update(&d, &ok, &s);
    assert_int_equal(fdl_fw_job_seq(d.fw), 10);
    typedef struct jcase {
        const char *what;
        job j;
        fdl_jobdoc_status want;
    } jcase;
    jcase cases[16];
    size_t n = 0;
    job base = job_for(img, len, 11, d.now);
    cases[n] = (jcase){"expired", base, FDL_JOB_ERR_EXPIRED};
    cases[n].j.issued = d.now - 7200000;
    cases[n++].j.expires = d.now - 1;
    cases[n] = (jcase){"issued in the future", base, FDL_JOB_ERR_EXPIRED};
    cases[n].j.issued = d.now + 3600000;
    cases[n++].j.expires = d.now + 7200000;
    cases[n] = (jcase){"replayed", ok, FDL_JOB_ERR_REPLAY};
    cases[n++].j.seq = 10;
    cases[n] = (jcase){"older seq", base, FDL_JOB_ERR_REPLAY};
    cases[n++].j.seq = 3;
    cases[n] = (jcase){"for another device", base, FDL_JOB_ERR_NOT_FOR_ME};
    cases[n++].j.target = "dev-2";
    cases[n] = (jcase){"for another hardware revision", base, FDL_JOB_ERR_HW};
    cases[n++].j.hw = "[2,3]";
    cases[n] = (jcase){"signed with the application key", base, FDL_JOB_ERR_KEY_UNKNOWN};
    cases[n++].j.signer = &g_keys.tier[3];
    cases[n] = (jcase){"signed with a rogue key", base, FDL_JOB_ERR_KEY_UNKNOWN};
    cases[n++].j.signer = &g_keys.rogue;
    for (size_t i = 0; i < n; i++) {
        size_t from = mark(&d);
        uint64_t writes = fdl_fw_flash_writes(d.fw);
        send_job(&d, &cases[i].j);
        char st[256], det[200];
        steps(&d, from, st, sizeof st);
        if (strcmp(st, "received,rejected") != 0 ||
            strcmp(last_detail(&d, det, sizeof det), fdl_jobdoc_strerror(cases[i].want)) != 0)
            fail_msg("%s: steps %s, detail %s", cases[i].what, st, det);
        assert_int_equal(count_gets(&d, from), 0);
        assert_int_equal(fdl_fw_flash_writes(d.fw), writes);
        assert_int_equal(fdl_ota_get_state(d.ota), FDL_OTA_IDLE);
    }
    /* A signature altered in the envelope, and bytes that are no envelope. */
    uint8_t env[4096];
    size_t el = make_job(&base, env, sizeof env);
    env[el - 1] ^= 0x01;
    size_t from = mark(&d);
    fdl_ota_on_job(d.ota, env, el, d.now);
    fdl_ota_on_job(d.ota, (const uint8_t *)"junk", 4, d.now);
    fdl_ota_on_job(d.ota, NULL, 0, d.now);
    char st[256];
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,rejected,rejected,rejected");
    assert_int_equal(count_gets(&d, from), 0);
    fdl_ota_stats stats;
    fdl_ota_get_stats(d.ota, &stats);
    assert_int_equal(stats.rejected, n + 3);
    /* Blocks nobody asked for are counted and dropped. */
    uint8_t blk[FDL_OTA_BLOCK_HDR + 10] = "FDB1";
    fdl_ota_on_block(d.ota, blk, sizeof blk, d.now);
    fdl_ota_get_stats(d.ota, &stats);
    assert_int_equal(stats.bad_blocks, 1);
    /* The base document itself is fine. */
    s.img = img;
    full_update(&d, &base, &s);
    assert_int_equal(fdl_fw_job_seq(d.fw), 11);
    free(img);
    dev_free(&d);
}

/* ---- slow retrieval, busy, never confirms ------------------------------------------------------- */

static void slow_retrieval_fails(void **state)
{
    (void)state;
    dev d;
    dev_new(&d);
    size_t len;
    uint8_t *img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "ok", 9000, &len);
    job j = job_for(img, len, 1, d.now);
    store silent = {img, len, STORE_SILENT};
    size_t from = mark(&d);
    send_job(&d, &j);
    pump(&d, &silent);
    /* No answer: asked again twice, then given up. */
    for (int i = 0; i < 4; i++) {
        d.now += 10000;
        fdl_ota_tick(d.ota, d.now);
        pump(&d, &silent);
    }
    char st[256], det[200];
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,downloading,failed");
    assert_non_null(strstr(last_detail(&d, det, sizeof det), "slow retrieval: no block"));
    assert_int_equal(count_gets(&d, from), 3);
    assert_int_equal(fdl_ota_get_state(d.ota), FDL_OTA_IDLE);

    /* A trickle: every block just in time, the whole too late. */
    j.seq = 2;
    from = mark(&d);
    send_job(&d, &j);
    store honest = {img, len, STORE_SMALL_BLOCKS};
    for (int i = 0; i < 1000 && fdl_ota_get_state(d.ota) == FDL_OTA_DOWNLOADING; i++) {
        d.now += 9000;
        fdl_ota_tick(d.ota, d.now);
        pump_n(&d, &honest, 1);
    }
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,downloading,verified,failed");
    assert_non_null(strstr(last_detail(&d, det, sizeof det), "not done in"));
    fdl_boot_record r;
    assert_int_equal(dev_boot(&d, &r), FDL_BOOT_OK);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, FWD_VERSION_1);
    free(img);
    dev_free(&d);
}

static void one_job_at_a_time(void **state)
{
    (void)state;
    dev d;
    dev_new(&d);
    size_t len;
    uint8_t *img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "ok", 5000, &len);
    job a = job_for(img, len, 1, d.now);
    a.id = "job-a";
    job b = job_for(img, len, 2, d.now);
    b.id = "job-b";
    size_t from = mark(&d);
    send_job(&d, &a);
    /* Nothing written yet: a newer document takes over. */
    send_job(&d, &b);
    char st[256];
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,downloading,received,failed,downloading");
    store s = {img, len, STORE_HONEST};
    d.answered = d.n_msgs - 1;   /* job a's request goes unanswered; answer job b's */
    pump(&d, &s);
    assert_int_equal(fdl_ota_get_state(d.ota), FDL_OTA_REBOOT_PENDING);
    assert_string_equal(fdl_fw_job(d.fw), "job-b");
    /* Written and waiting for the reboot: even a newer one is refused. */
    job c = job_for(img, len, 3, d.now);
    from = mark(&d);
    send_job(&d, &c);
    char det[200];
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,rejected");
    assert_string_equal(last_detail(&d, det, sizeof det), "busy");
    /* Rebooted into the trial, with an agent that knows nothing of it (its RAM
     * was lost and nobody told it about the boot): still busy. */
    d.now += 1000;
    assert_int_equal(dev_boot(&d, NULL), FDL_BOOT_TRIAL);
    new_agent(&d);
    job k = job_for(img, len, 4, d.now);
    k.tier = FDL_TIER_KERNEL;
    from = mark(&d);
    send_job(&d, &k);
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,rejected");
    assert_string_equal(last_detail(&d, det, sizeof det), "busy");
    /* Once online it confirms the trial it found, and is free again. */
    fdl_ota_online(d.ota, d.now);
    assert_int_equal(fdl_fw_floor(d.fw, FDL_TIER_APPLICATION), 2);
    assert_string_equal(last_detail(&d, det, sizeof det), "application floor 2");
    free(img);
    dev_free(&d);
}

static void never_confirming_image_is_reverted_by_the_watchdog(void **state)
{
    (void)state;
    dev d;
    dev_new(&d);
    size_t len;
    uint8_t *img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "no-confirm", 5000, &len);
    job j = job_for(img, len, 1, d.now);
    store s = {img, len, STORE_HONEST};
    size_t from = mark(&d);
    full_update(&d, &j, &s);
    assert_int_equal(fdl_ota_get_state(d.ota), FDL_OTA_TRIAL);
    uint64_t deadline = 0;
    assert_true(fdl_fw_in_trial(d.fw, &deadline));
    fdl_ota_tick(d.ota, deadline - 1);
    assert_false(d.reboot_wanted);
    fdl_ota_tick(d.ota, deadline);
    assert_true(d.reboot_wanted);
    d.now = deadline + 10;
    fdl_boot_record r;
    assert_int_equal(dev_boot(&d, &r), FDL_BOOT_OK);
    assert_true(r.reverted);
    char st[256];
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,downloading,verified,written,trial,reverted");
    assert_int_equal(fdl_fw_floor(d.fw, FDL_TIER_APPLICATION), 1);
    assert_int_equal(fdl_fw_running_version(d.fw, FDL_TIER_APPLICATION), FWD_VERSION_1);
    fdl_ota_stats stats;
    fdl_ota_get_stats(d.ota, &stats);
    assert_int_equal(stats.reverted, 1);
    assert_int_equal(stats.confirmed, 0);
    /* A crashing image is reverted at its first boot. */
    free(img);
    img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "crash", 5000, &len);
    j = job_for(img, len, 2, d.now);
    s.img = img;
    from = mark(&d);
    send_job(&d, &j);
    pump(&d, &s);
    assert_true(d.reboot_wanted);
    assert_int_equal(dev_boot(&d, &r), FDL_BOOT_OK);
    steps(&d, from, st, sizeof st);
    assert_string_equal(st, "received,downloading,verified,written,reverted");
    assert_int_equal(fdl_fw_floor(d.fw, FDL_TIER_APPLICATION), 1);
    free(img);
    dev_free(&d);
}

/* ---- power cut at every write ---------------------------------------------------------------- */

/* The running image of tier and whether its new image is confirmed in flash. */
static bool confirmed_new(const dev *d, unsigned tier, const uint8_t new_sha[32])
{
    fdl_flash *fl = NULL;
    assert_int_equal(fdl_flash_open(d->dir, &fl, NULL, 0), 0);
    const fdl_bootctl_tier *t = &fdl_flash_bootctl(fl)->tier[tier];
    bool yes = t->state == FDL_TS_GOOD && memcmp(t->slot[t->active].sha256, new_sha, 32) == 0;
    fdl_flash_free(fl);
    return yes;
}

/* What must hold whenever the device has just booted. */
static void check_boot(const dev *d, fdl_boot_outcome o, const fdl_boot_record *r, unsigned tier, const uint8_t old_sha[32],
                       const uint8_t new_sha[32], uint32_t old_floor, uint32_t new_counter, uint64_t k)
{
    if (o != FDL_BOOT_OK && o != FDL_BOOT_TRIAL)
        fail_msg("k=%llu: boot %s (%s)", (unsigned long long)k, fdl_boot_outcome_name(o), r->why);
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++)
        if (r->tier[t].present && !r->tier[t].ran)
            fail_msg("k=%llu: %s present but not run", (unsigned long long)k, fdl_fw_tier_name(t));
        else if (r->tier[t].ran && !r->tier[t].verified)
            fail_msg("k=%llu: %s ran unverified", (unsigned long long)k, fdl_fw_tier_name(t));
    bool is_old = memcmp(r->tier[tier].sha256, old_sha, 32) == 0;
    bool is_new = memcmp(r->tier[tier].sha256, new_sha, 32) == 0;
    if (!is_old && !is_new)
        fail_msg("k=%llu: %s runs an image that is neither the old nor the new", (unsigned long long)k,
                 fdl_fw_tier_name(tier));
    uint32_t floor = fdl_fw_floor(d->fw, tier);
    if (confirmed_new(d, tier, new_sha)) {
        if (floor != new_counter)
            fail_msg("k=%llu: confirmed, floor %u", (unsigned long long)k, floor);
    } else if (floor != old_floor) {
        fail_msg("k=%llu: floor %u rose before the confirm", (unsigned long long)k, floor);
    }
}

/* Runs the whole update with the power cut at write k (0 = never); returns the
 * number of writes it took. After every cut: a reboot with a fresh agent (RAM is
 * gone), the checks, and the flow goes on from whatever state the device is in;
 * if the update was lost, the job service sends it again with a new seq. */
static uint64_t update_with_cut(unsigned tier, uint8_t *img, size_t len, uint64_t k, uint32_t new_counter)
{
    dev d;
    dev_new(&d);
    uint8_t old_sha[32], new_sha[32];
    fdl_boot_record r;
    assert_int_equal(dev_boot(&d, &r), FDL_BOOT_OK);
    memcpy(old_sha, r.tier[tier].sha256, 32);
    fwd_sha(img, len, new_sha);
    uint32_t old_floor = fdl_fw_floor(d.fw, tier);
    uint64_t base = fdl_fw_flash_writes(d.fw);
    if (k)
        fdl_fw_set_power_cut(d.fw, base + k);
    store s = {img, len, STORE_HONEST};
    uint64_t seq = 1;
    bool cut_seen = false;
    for (int round = 0; round < 6; round++) {
        job j = job_for(img, len, seq++, d.now);
        if (!fdl_fw_in_trial(d.fw, NULL)) {
            send_job(&d, &j);
            pump(&d, &s);
        }
        if (fdl_fw_power_lost(d.fw) || d.reboot_wanted || fdl_fw_in_trial(d.fw, NULL)) {
            bool lost = fdl_fw_power_lost(d.fw);
            /* A cut loses at most the write being made: what was committed
             * before it (the accepted job seq) is still there after the reboot. */
            uint64_t seq_before = fdl_fw_job_seq(d.fw);
            if (lost) {
                cut_seen = true;
                /* Before the reboot too: the floor moved only for a confirmed image. */
                if (!confirmed_new(&d, tier, new_sha) && fdl_fw_floor(d.fw, tier) != old_floor)
                    fail_msg("k=%llu: floor rose before the confirm", (unsigned long long)k);
                new_agent(&d);
            }
            if (lost || d.reboot_wanted) {
                d.now += 1000;
                fdl_boot_outcome o = dev_boot(&d, &r);
                if (o == FDL_BOOT_POWER_LOSS) {   /* cut inside the boot: boot again */
                    cut_seen = true;
                    new_agent(&d);
                    o = dev_boot(&d, &r);
                }
                check_boot(&d, o, &r, tier, old_sha, new_sha, old_floor, new_counter, k);
                if (fdl_fw_job_seq(d.fw) < seq_before)
                    fail_msg("k=%llu: job seq went back from %llu to %llu", (unsigned long long)k,
                             (unsigned long long)seq_before, (unsigned long long)fdl_fw_job_seq(d.fw));
            }
            d.now += 1000;
            fdl_ota_online(d.ota, d.now);
            if (fdl_fw_power_lost(d.fw)) {
                /* Cut inside the confirm. */
                cut_seen = true;
                new_agent(&d);
                d.now += 1000;
                fdl_boot_outcome o = dev_boot(&d, &r);
                check_boot(&d, o, &r, tier, old_sha, new_sha, old_floor, new_counter, k);
                fdl_ota_online(d.ota, d.now);
            }
        }
        if (confirmed_new(&d, tier, new_sha) && !fdl_fw_in_trial(d.fw, NULL))
            break;
    }
    if (k && !cut_seen)
        fail_msg("k=%llu: the cut never happened", (unsigned long long)k);
    /* In the end the update is in, confirmed, and the floor is its counter. */
    d.now += 1000;
    fdl_boot_outcome o = dev_boot(&d, &r);
    check_boot(&d, o, &r, tier, old_sha, new_sha, old_floor, new_counter, k);
    assert_int_equal(o, FDL_BOOT_OK);
    if (memcmp(r.tier[tier].sha256, new_sha, 32) != 0)
        fail_msg("k=%llu: the update never went in", (unsigned long long)k);
    assert_int_equal(fdl_fw_floor(d.fw, tier), new_counter);
    uint64_t used = fdl_fw_flash_writes(d.fw) - base;
    dev_free(&d);
    return used;
}

static void power_cut_at_every_write(void **state)
{
    (void)state;
    struct {
        unsigned tier;
        uint8_t *img;
        size_t len;
    } ups[3];
    ups[0].tier = FDL_TIER_APPLICATION;
    ups[0].img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "ok",
                           3 * FDL_OTA_BLOCK + 500, &ups[0].len);
    ups[1].tier = FDL_TIER_BOOTLOADER;
    ups[1].img = fwd_image(&g_keys.root, FDL_TIER_BOOTLOADER, 0x01010000u, 2, 0, "ok", 2 * FDL_OTA_BLOCK, &ups[1].len);
    ups[2].tier = FDL_TIER_KEYRING;
    ups[2].img = fwd_keyring_image(&g_keys, &g_keys.root, 0x01010000u, 2, &ups[2].len);
    for (size_t u = 0; u < 3; u++) {
        uint64_t total = update_with_cut(ups[u].tier, ups[u].img, ups[u].len, 0, 2);
        assert_true(total >= 8);
        for (uint64_t k = 1; k <= total; k++)
            update_with_cut(ups[u].tier, ups[u].img, ups[u].len, k, 2);
        print_message("power cut at every one of the %llu writes of a %s update (%zu bytes): ok\n",
                      (unsigned long long)total, fdl_fw_tier_name(ups[u].tier), ups[u].len);
        free(ups[u].img);
    }
}

static void allocations_balance(void **state)
{
    (void)state;
    fdl_fw_cache_clear();
    fdl_alloc_stats before = fdl_alloc_get_stats();
    size_t len;
    uint8_t *img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01010000u, 2, 0, "ok", 5000, &len);
    dev d;
    dev_new(&d);
    job j = job_for(img, len, 1, d.now);
    store s = {img, len, STORE_HONEST};
    full_update(&d, &j, &s);
    /* An agent freed mid-download releases what it holds. */
    job j2 = job_for(img, len, 2, d.now);
    send_job(&d, &j2);
    dev_free(&d);
    free(img);
    fdl_fw_cache_clear();
    fdl_alloc_stats after = fdl_alloc_get_stats();
    assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
    fdl_ota_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(update_confirms_then_raises_the_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(header_checked_before_a_byte_is_written, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_artifacts_fail_and_nothing_runs, setup, teardown),
        cmocka_unit_test_setup_teardown(job_documents_are_checked_before_anything, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_retrieval_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(one_job_at_a_time, setup, teardown),
        cmocka_unit_test_setup_teardown(never_confirming_image_is_reverted_by_the_watchdog, setup, teardown),
        cmocka_unit_test_setup_teardown(power_cut_at_every_write, setup, teardown),
        cmocka_unit_test_setup_teardown(allocations_balance, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
