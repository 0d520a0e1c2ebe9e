/*
 * tests/fuzz/fuzz_ota.c — libFuzzer target for the OTA agent (devices/ota.c) over
 * the real firmware storage (devices/firmware.c, fwflash.c, efuse.c).
 *
 * One device is made once, from a factory signed with the harness's fixed keys,
 * and reset to its factory record before every input. The agent accepts a valid
 * job for an application update, then the input is a script of what the network
 * delivers: records [op][n][n bytes]:
 *   op % 6 == 0  the n bytes that follow as a whole block message (anything at all);
 *             1  a block framed for the offset the agent expects, the n bytes that follow as data;
 *             2  the true image bytes at the expected offset (n * 64 + 1 of them, at most a block);
 *             3  a block at an offset the fuzzer chooses (the first 4 of the n bytes), true total;
 *             4  virtual time passes (n seconds; the agent's timeouts);
 *             5  a job document again: the same (a replay) or a newer one (n odd).
 * Every broken promise aborts:
 *   - the agent says "written" only if the slot holds exactly the signed image
 *     the job names, byte for byte; otherwise nothing is pending in flash;
 *   - the next boot runs a verified image: the factory application, or the new
 *     one in trial — never anything else, never recovery.
 */
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

/* sim/json.c and cloud/json.c each have a static close_container (and sim/json.c
 * a static fail): renamed here, where they meet in one translation unit. */
#define close_container simjson_close_container
#define fail simjson_fail
#include "sim/json.c"
#undef close_container
#undef fail
#include "cloud/json.c"
#include "devices/efuse.c"
#include "devices/firmware.c"
#include "devices/fwflash.c"
#include "devices/fwimage.c"
#include "devices/jobdoc.c"
#include "devices/keyring.c"
#include "devices/ota.c"
#include "sim/alloc.c"
#include "sim/fsutil.c"

#include "fwfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 1700000000000ull
#define DEV "dev-1"
#define PAYLOAD 6000

static int g_ready;
static char g_root[64], g_dev[128];
static uint8_t g_bootctl[2 * FDL_BOOTCTL_COPY_LEN];
static uint8_t *g_img;           /* the update */
static size_t g_img_len;
static uint8_t g_img_sha[32], g_factory_app_sha[32];
static uint8_t g_job[2][2048];   /* seq 1 and seq 2 */
static size_t g_job_len[2];

static uint8_t *image(fwfuzz_key *k, unsigned tier, uint32_t version, uint32_t counter, const uint8_t *payload,
                      size_t plen, size_t *len)
{
    fdl_fw_hdr h;
    uint8_t hash[32];
    memset(&h, 0, sizeof h);
    h.hdr_version = FDL_FW_HDR_VERSION;
    h.tier = (uint8_t)tier;
    h.version = version;
    h.counter = counter;
    h.length = (uint32_t)plen;
    mbedtls_sha256(payload, plen, h.sha256, 0);
    memcpy(h.key_id, k->id, FDL_FW_KEYID_LEN);
    fdl_fwimage_signed_hash(&h, hash);
    fwfuzz_sign(k, hash, h.sig);
    uint8_t *img = malloc(FDL_FW_HDR_LEN + plen);
    CHECK(img);
    fdl_fwimage_encode_hdr(&h, img);
    memcpy(img + FDL_FW_HDR_LEN, payload, plen);
    *len = FDL_FW_HDR_LEN + plen;
    return img;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    if (g_root[0])
        nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static size_t job(fwfuzz_key *k, uint64_t seq, uint8_t *out, size_t cap)
{
    char doc[1024], hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", g_img_sha[i]);
    int n = snprintf(doc, sizeof doc,
                     "{\"job\":\"j\",\"seq\":%llu,\"tier\":\"application\",\"version\":\"1.1.0\",\"counter\":2,"
                     "\"artifact\":\"a\",\"sha256\":\"%s\",\"size\":%zu,\"issued\":%llu,\"expires\":%llu,"
                     "\"targets\":[\"" DEV "\"]}",
                     (unsigned long long)seq, hex, g_img_len, (unsigned long long)T0,
                     (unsigned long long)(T0 + 3600000));
    uint8_t hash[32], sig[FDL_FW_SIG_LEN];
    fdl_jobdoc_signed_hash((const uint8_t *)doc, (size_t)n, k->id, hash);
    fwfuzz_sign(k, hash, sig);
    size_t len = fdl_jobdoc_wrap((const uint8_t *)doc, (size_t)n, k->id, sig, out, cap);
    CHECK(len > 0);
    return len;
}

static void setup(void)
{
    fwfuzz_key root, app, jobs;
    fwfuzz_key_init(&root, 0x11);
    fwfuzz_key_init(&app, 0x22);
    fwfuzz_key_init(&jobs, 0x33);
    snprintf(g_root, sizeof g_root, "/tmp/fdl-fuzz-ota-XXXXXX");
    CHECK(mkdtemp(g_root));
    atexit(cleanup);
    snprintf(g_dev, sizeof g_dev, "%s/dev/fw", g_root);
    char factory[128];
    snprintf(factory, sizeof factory, "%s/factory", g_root);

    static uint8_t payload[PAYLOAD];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7u);
    fdl_keyring kr;
    memset(&kr, 0, sizeof kr);
    kr.n = 2;
    kr.e[0].usage = FDL_TIER_APPLICATION;
    kr.e[0].state = FDL_KEY_CURRENT;
    memcpy(kr.e[0].key_id, app.id, FDL_FW_KEYID_LEN);
    memcpy(kr.e[0].pub, app.pub, FDL_FW_PUB_LEN);
    kr.e[1].usage = FDL_KEY_USAGE_JOBS;
    kr.e[1].state = FDL_KEY_CURRENT;
    memcpy(kr.e[1].key_id, jobs.id, FDL_FW_KEYID_LEN);
    memcpy(kr.e[1].pub, jobs.pub, FDL_FW_PUB_LEN);
    uint8_t krbuf[2 * FDL_KEYRING_ENTRY_LEN + 6];
    size_t krlen = fdl_keyring_encode(&kr, krbuf, sizeof krbuf);
    CHECK(krlen == sizeof krbuf);

    fdl_fw_factory f;
    memset(&f, 0, sizeof f);
    f.factory_dir = factory;
    uint8_t *bl = image(&root, FDL_TIER_BOOTLOADER, 0x01000000u, 1, payload, 100, &f.image_len[1]);
    uint8_t *kri = image(&root, FDL_TIER_KEYRING, 0x01000000u, 1, krbuf, krlen, &f.image_len[FDL_TIER_KEYRING]);
    uint8_t *ap = image(&app, FDL_TIER_APPLICATION, 0x01000000u, 1, payload, 200, &f.image_len[3]);
    f.image[1] = bl;
    f.image[FDL_TIER_KEYRING] = kri;
    f.image[3] = ap;
    f.root_pub = root.pub;
    f.secure_boot = true;
    f.debug_disabled = true;
    f.hw_rev = 1;
    mbedtls_sha256(ap, f.image_len[3], g_factory_app_sha, 0);
    g_img = image(&app, FDL_TIER_APPLICATION, 0x01010000u, 2, payload, PAYLOAD, &g_img_len);
    mbedtls_sha256(g_img, g_img_len, g_img_sha, 0);

    fdl_fw *fw = NULL;
    char err[256];
    if (fdl_fw_open(g_dev, &f, &fw, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_ota: %s\n", err);
        abort();
    }
    fdl_fw_free(fw);
    char p[256];
    snprintf(p, sizeof p, "%s/bootctl", g_dev);
    FILE *fp = fopen(p, "rb");
    CHECK(fp && fread(g_bootctl, 1, sizeof g_bootctl, fp) == sizeof g_bootctl);
    fclose(fp);
    g_job_len[0] = job(&jobs, 1, g_job[0], sizeof g_job[0]);
    g_job_len[1] = job(&jobs, 2, g_job[1], sizeof g_job[1]);
    free(bl);
    free(kri);
    free(ap);
    mbedtls_ecp_group_free(&root.grp);
    mbedtls_mpi_free(&root.d);
    mbedtls_ecp_group_free(&app.grp);
    mbedtls_mpi_free(&app.d);
    mbedtls_ecp_group_free(&jobs.grp);
    mbedtls_mpi_free(&jobs.d);
    g_ready = 1;
}

typedef struct sink {
    int reboot;
    uint32_t want_off;   /* the offset of the last block request */
} sink;

static void on_publish(void *ud, const char *topic, const uint8_t *payload, size_t len)
{
    sink *s = ud;
    char msg[128];
    if (strstr(topic, "/get") && len < sizeof msg) {
        unsigned off = 0, n = 0;
        memcpy(msg, payload, len);
        msg[len] = '\0';
        CHECK(sscanf(msg, "a %u %u", &off, &n) == 2);
        CHECK(n > 0 && n <= FDL_OTA_BLOCK && off + n <= g_img_len);
        s->want_off = off;
    }
}

static void on_reboot(void *ud)
{
    ((sink *)ud)->reboot = 1;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t blk[FDL_OTA_BLOCK_HDR + FDL_OTA_BLOCK + 256];
    char p[256];
    if (!g_ready)
        setup();
    /* Back to the factory state: the record, no written slot, no boot log. */
    snprintf(p, sizeof p, "%s/bootctl", g_dev);
    FILE *fp = fopen(p, "wb");
    CHECK(fp && fwrite(g_bootctl, 1, sizeof g_bootctl, fp) == sizeof g_bootctl);
    fclose(fp);
    snprintf(p, sizeof p, "%s/application-b.img", g_dev);
    unlink(p);
    snprintf(p, sizeof p, "%s/boots.jsonl", g_dev);
    unlink(p);

    fdl_fw *fw = NULL;
    CHECK(fdl_fw_open(g_dev, NULL, &fw, NULL, 0) == 0);
    CHECK(fdl_fw_boot(fw, T0, NULL) == FDL_BOOT_OK);
    sink s = {0, 0};
    fdl_ota_io io = {.publish = on_publish, .reboot = on_reboot, .ud = &s};
    fdl_ota_params prm = {.block_timeout_ms = 10000, .total_timeout_ms = 60000, .trial_ms = 60000};
    fdl_ota *o = fdl_ota_new(DEV, fw, &prm, &io);
    CHECK(o);
    uint64_t now = T0 + 1;
    fdl_ota_on_job(o, g_job[0], g_job_len[0], now);
    CHECK(fdl_ota_get_state(o) == FDL_OTA_DOWNLOADING);

    size_t i = 0;
    while (i + 2 <= size) {
        uint8_t op = data[i] % 6, n = data[i + 1];
        i += 2;
        /* Ops 0, 1 and 3 carry n bytes of data; for the others n is the parameter. */
        size_t avail = 0;
        const uint8_t *d = data + i;
        if (op == 0 || op == 1 || op == 3) {
            avail = size - i < n ? size - i : n;
            i += avail;
        }
        size_t bl = 0;
        switch (op) {
        case 0:
            fdl_ota_on_block(o, d, avail, now);
            break;
        case 1:
        case 2:
        case 3: {
            uint32_t off = s.want_off;
            if (op == 3 && avail >= 4) {
                off = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
                d += 4;
                avail -= 4;
            }
            memcpy(blk, FDL_OTA_BLOCK_MAGIC, 4);
            put_u32(blk + 4, off);
            put_u32(blk + 8, (uint32_t)g_img_len);
            if (op == 2) {
                bl = (size_t)n * 64 + 1;
                if (bl > FDL_OTA_BLOCK)
                    bl = FDL_OTA_BLOCK;
                if (off >= g_img_len)
                    bl = 0;
                else if (bl > g_img_len - off)
                    bl = g_img_len - off;
                memcpy(blk + FDL_OTA_BLOCK_HDR, g_img + off, bl);
            } else {
                bl = avail;
                memcpy(blk + FDL_OTA_BLOCK_HDR, d, bl);
            }
            fdl_ota_on_block(o, blk, FDL_OTA_BLOCK_HDR + bl, now);
            break;
        }
        case 4:
            now += (uint64_t)n * 1000;
            fdl_ota_tick(o, now);
            break;
        case 5:
            fdl_ota_on_job(o, g_job[n & 1], g_job_len[n & 1], now);
            break;
        }
        now += 1;
    }

    /* "written" only for exactly the job's image, and then nothing else is pending. */
    fdl_flash *fl = NULL;
    CHECK(fdl_flash_open(g_dev, &fl, NULL, 0) == 0);
    const fdl_bootctl_tier *t = &fdl_flash_bootctl(fl)->tier[FDL_TIER_APPLICATION];
    if (fdl_ota_get_state(o) == FDL_OTA_REBOOT_PENDING) {
        CHECK(s.reboot);
        CHECK(t->state == FDL_TS_PENDING);
        snprintf(p, sizeof p, "%s/application-b.img", g_dev);
        fp = fopen(p, "rb");
        CHECK(fp);
        static uint8_t back[FDL_FW_HDR_LEN + PAYLOAD + 16];
        size_t got = fread(back, 1, sizeof back, fp);
        fclose(fp);
        CHECK(got == g_img_len && memcmp(back, g_img, g_img_len) == 0);
    } else {
        CHECK(!s.reboot);
        CHECK(t->state == FDL_TS_GOOD);
    }
    fdl_flash_free(fl);

    /* The next boot runs the factory application or the new one in trial, verified. */
    fdl_boot_record r;
    fdl_boot_outcome out = fdl_fw_boot(fw, now + 1000, &r);
    if (getenv("FUZZ_OTA_VERBOSE")) {
        fdl_ota_stats st;
        fdl_ota_get_stats(o, &st);
        fprintf(stderr, "fuzz_ota: boot %s, blocks %llu, bytes %llu, written %llu, failed %llu (%s)\n",
                fdl_boot_outcome_name(out), (unsigned long long)st.blocks, (unsigned long long)st.bytes,
                (unsigned long long)st.written, (unsigned long long)st.failed, st.last_detail);
    }
    CHECK(out == FDL_BOOT_OK || out == FDL_BOOT_TRIAL);
    CHECK(r.tier[FDL_TIER_APPLICATION].ran && r.tier[FDL_TIER_APPLICATION].verified);
    if (out == FDL_BOOT_TRIAL)
        CHECK(memcmp(r.tier[FDL_TIER_APPLICATION].sha256, g_img_sha, 32) == 0);
    else
        CHECK(memcmp(r.tier[FDL_TIER_APPLICATION].sha256, g_factory_app_sha, 32) == 0);
    fdl_ota_free(o);
    fdl_fw_free(fw);
    return 0;
}
