/*
 * devices/firmware.c — one device's firmware storage and verified boot: boot ROM
 * -> bootloader -> kernel/application -> modules/config, trial and revert,
 * recovery, the boot record (see firmware.h, docs/firmware.md).
 */
#include "devices/firmware.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "devices/efuse.h"
#include "devices/fwflash.h"
#include "sim/alloc.h"
#include "sim/fsutil.h"
#include "sim/json.h"

#define IMAGE_MAX ((size_t)FDL_FW_HDR_LEN + FDL_FW_PAYLOAD_MAX)
#define ROOTKEYS_FILE "rootkeys"
#define FACTORY_FILE "factory"   /* the shared factory directory's path, as given at creation */
#define BOOTS_FILE "boots.jsonl"
#define MANIFEST_SCAN 512   /* bytes of a payload searched for its manifest */

/* ==== process-wide caches ========================================================= */

/*
 * A verified signature is remembered by SHA-256 over (public key, signed hash,
 * signature): a hit means this exact key verified this exact signature over this
 * exact header before, which is what a new verification would find again. Only
 * successes are stored; a direct-mapped table, a collision just evicts.
 *
 * A factory image is remembered with the identity of the file it was read from;
 * only files nobody may write (mode without any w bit) are cached, and any change
 * of size, mtime or ctime (which chmod and every write update) or a new inode
 * makes a new entry. A device's own slot is never cached.
 */
#define SIG_SLOTS 4096u
#define IMG_ENTRIES_MAX 64

typedef struct fw_blob {
    int refs;                   /* under g_lock for cached blobs */
    uint8_t *data;
    size_t len;
    fdl_fw_status parse_st;     /* fdl_fwimage_parse: header, length, payload hash */
    fdl_fw_hdr hdr;
    uint8_t sha_whole[32];
    /* identity (cached factory images) */
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    struct fw_blob *next;
} fw_blob;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t g_sig[SIG_SLOTS][32];
static uint8_t g_sig_used[SIG_SLOTS];
static fw_blob *g_imgs;
static unsigned g_n_imgs;
static fdl_fw_cache_stats g_stats;

static void blob_free(fw_blob *b)
{
    if (!b)
        return;
    fdl_free(b->data);
    fdl_free(b->path);
    fdl_free(b);
}

static void blob_release(fw_blob *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&g_lock);
    int left = --b->refs;
    pthread_mutex_unlock(&g_lock);
    if (left == 0)
        blob_free(b);
}

void fdl_fw_cache_get_stats(fdl_fw_cache_stats *out)
{
    pthread_mutex_lock(&g_lock);
    *out = g_stats;
    pthread_mutex_unlock(&g_lock);
}

void fdl_fw_cache_clear(void)
{
    pthread_mutex_lock(&g_lock);
    memset(g_sig_used, 0, sizeof g_sig_used);
    fw_blob *list = g_imgs;
    g_imgs = NULL;
    g_n_imgs = 0;
    memset(&g_stats, 0, sizeof g_stats);
    pthread_mutex_unlock(&g_lock);
    while (list) {
        fw_blob *next = list->next;
        blob_release(list);   /* the cache's reference */
        list = next;
    }
}

static void sig_digest(const uint8_t pub[FDL_FW_PUB_LEN], const fdl_fw_hdr *h, uint8_t out[32])
{
    uint8_t signed_hash[32];
    mbedtls_sha256_context c;
    fdl_fwimage_signed_hash(h, signed_hash);
    mbedtls_sha256_init(&c);
    mbedtls_sha256_starts(&c, 0);
    mbedtls_sha256_update(&c, pub, FDL_FW_PUB_LEN);
    mbedtls_sha256_update(&c, signed_hash, sizeof signed_hash);
    mbedtls_sha256_update(&c, h->sig, FDL_FW_SIG_LEN);
    mbedtls_sha256_finish(&c, out);
    mbedtls_sha256_free(&c);
}

/* fdl_fwimage_verify_sig behind the verified-signature cache. */
static fdl_fw_status verify_sig_cached(const fdl_fw_hdr *h, const uint8_t pub[FDL_FW_PUB_LEN])
{
    uint8_t d[32];
    sig_digest(pub, h, d);
    unsigned i = ((unsigned)d[0] << 8 | d[1]) % SIG_SLOTS;
    pthread_mutex_lock(&g_lock);
    bool hit = g_sig_used[i] && memcmp(g_sig[i], d, 32) == 0;
    if (hit)
        g_stats.sig_hits++;
    else
        g_stats.sig_misses++;
    pthread_mutex_unlock(&g_lock);
    if (hit)
        return FDL_FW_OK;
    fdl_fw_status st = fdl_fwimage_verify_sig(h, pub);
    if (st == FDL_FW_OK) {
        pthread_mutex_lock(&g_lock);
        memcpy(g_sig[i], d, 32);
        g_sig_used[i] = 1;
        pthread_mutex_unlock(&g_lock);
    }
    return st;
}

/* Parses and hashes an image once (its blob keeps the results). */
static void blob_analyse(fw_blob *b)
{
    const uint8_t *payload = NULL;
    memset(&b->hdr, 0, sizeof b->hdr);
    b->parse_st = fdl_fwimage_parse(b->data, b->len, &b->hdr, &payload);
    if (b->parse_st != FDL_FW_OK && b->len >= FDL_FW_HDR_LEN)
        (void)fdl_fwimage_parse_hdr(b->data, b->len, &b->hdr);
    mbedtls_sha256(b->data, b->len, b->sha_whole, 0);
}

/* Reads a whole regular file of at most IMAGE_MAX bytes into a new blob (refs 1)
 * and its identity. NULL if it cannot be read (absent, not regular, too big). */
static fw_blob *blob_read(const char *path, struct stat *sb_out)
{
    fw_blob *b = NULL;
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > IMAGE_MAX)
        goto cleanup;
    b = fdl_calloc(1, sizeof *b);
    if (!b)
        goto cleanup;
    b->refs = 1;
    b->len = (size_t)sb.st_size;
    b->data = fdl_malloc(b->len ? b->len : 1);
    if (!b->data)
        goto fail;
    size_t got = 0;
    while (got < b->len) {
        ssize_t r = read(fd, b->data + got, b->len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto fail;   /* shrank under us */
        got += (size_t)r;
    }
    if (sb_out)
        *sb_out = sb;
    goto cleanup;
fail:
    blob_free(b);
    b = NULL;
cleanup:
    close(fd);
    return b;
}

static bool same_identity(const fw_blob *b, const struct stat *sb)
{
    return b->dev == sb->st_dev && b->ino == sb->st_ino && b->size == sb->st_size &&
           b->mtime.tv_sec == sb->st_mtim.tv_sec && b->mtime.tv_nsec == sb->st_mtim.tv_nsec &&
           b->ctime.tv_sec == sb->st_ctim.tv_sec && b->ctime.tv_nsec == sb->st_ctim.tv_nsec;
}

/* A factory image: from the cache if the file is the one cached, else read,
 * analysed and (if nobody may write it) cached. A reference the caller releases. */
static fw_blob *factory_get(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return NULL;
    pthread_mutex_lock(&g_lock);
    for (fw_blob *b = g_imgs; b; b = b->next) {
        if (strcmp(b->path, path) == 0 && same_identity(b, &sb)) {
            b->refs++;
            g_stats.img_hits++;
            pthread_mutex_unlock(&g_lock);
            return b;
        }
    }
    g_stats.img_misses++;
    pthread_mutex_unlock(&g_lock);

    fw_blob *b = blob_read(path, &sb);
    if (!b)
        return NULL;
    blob_analyse(b);
    if (sb.st_mode & 0222)
        return b;   /* writable: not a factory image we may trust to stay the same */
    b->path = fdl_strdup(path);
    if (!b->path)
        return b;
    b->dev = sb.st_dev;
    b->ino = sb.st_ino;
    b->size = sb.st_size;
    b->mtime = sb.st_mtim;
    b->ctime = sb.st_ctim;
    fw_blob *drop = NULL;
    pthread_mutex_lock(&g_lock);
    /* Replace a stale entry for the same path; evict the oldest beyond the cap. */
    for (fw_blob **pp = &g_imgs; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->path, path) == 0) {
            drop = *pp;
            *pp = drop->next;
            g_n_imgs--;
            break;
        }
    }
    if (!drop && g_n_imgs >= IMG_ENTRIES_MAX) {
        fw_blob **pp = &g_imgs;
        while ((*pp)->next)
            pp = &(*pp)->next;
        drop = *pp;
        *pp = NULL;
        g_n_imgs--;
    }
    b->refs++;   /* the cache's reference */
    b->next = g_imgs;
    g_imgs = b;
    g_n_imgs++;
    pthread_mutex_unlock(&g_lock);
    blob_release(drop);
    return b;
}

/* ==== the device ==================================================================== */

typedef struct tier_run {
    bool ran, verified, trial;
    uint8_t slot;
    fdl_fw_hdr hdr;
    uint8_t sha256[32];
    fdl_fw_behaviour behaviour;
} tier_run;

struct fdl_fw {
    char *dir;
    char *factory_dir;
    fdl_efuse *efuse;
    fdl_flash *flash;
    uint8_t root_pub[FDL_EFUSE_ROOT_SLOTS][FDL_FW_PUB_LEN];
    uint8_t root_id[FDL_EFUSE_ROOT_SLOTS][FDL_FW_KEYID_LEN];
    uint8_t root_hash[FDL_EFUSE_ROOT_SLOTS][32];
    unsigned n_root;
    uint64_t boot_no;
    bool booted, recovery;
    bool have_keyring;
    fdl_keyring keyring;
    tier_run run[FDL_TIER_COUNT];
    fw_blob *app;               /* the running application image */
    struct {
        bool active;
        unsigned tier, slot;
        uint32_t size, written;
        mbedtls_sha256_context sha;
    } upd;
    char upd_job[FDL_BOOTCTL_JOB_MAX];
};

const char *fdl_boot_outcome_name(fdl_boot_outcome o)
{
    switch (o) {
    case FDL_BOOT_OK: return "ok";
    case FDL_BOOT_TRIAL: return "trial";
    case FDL_BOOT_RECOVERY: return "recovery";
    case FDL_BOOT_POWER_LOSS: return "power-loss";
    }
    return "?";
}

static const char *behaviour_name(fdl_fw_behaviour b)
{
    switch (b) {
    case FDL_BEHAVE_OK: return "ok";
    case FDL_BEHAVE_NO_CONFIRM: return "no-confirm";
    case FDL_BEHAVE_CRASH: return "crash";
    }
    return "?";
}

static void fw_err(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fw_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static void hex32(const uint8_t h[32], char out[65])
{
    static const char d[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = d[h[i] >> 4];
        out[2 * i + 1] = d[h[i] & 15];
    }
    out[64] = '\0';
}

static int factory_path(const char *factory_dir, const uint8_t sha[32], char *buf, size_t cap)
{
    char hex[65];
    hex32(sha, hex);
    int n = snprintf(buf, cap, "%s/%s.img", factory_dir, hex);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* The test image manifest: "FDL-PAYLOAD 1\n" then key=value lines; only
 * behaviour= matters to the device. Anything else behaves "ok". */
static fdl_fw_behaviour manifest_behaviour(const uint8_t *p, size_t len)
{
    static const char magic[] = "FDL-PAYLOAD 1\n";
    if (len > MANIFEST_SCAN)
        len = MANIFEST_SCAN;
    if (len < sizeof magic - 1 || memcmp(p, magic, sizeof magic - 1) != 0)
        return FDL_BEHAVE_OK;
    size_t i = sizeof magic - 1;
    while (i < len) {
        const uint8_t *nl = memchr(p + i, '\n', len - i);
        if (!nl)
            break;
        size_t n = (size_t)(nl - (p + i));
        static const char key[] = "behaviour=";
        if (n > sizeof key - 1 && memcmp(p + i, key, sizeof key - 1) == 0) {
            const char *v = (const char *)p + i + sizeof key - 1;
            size_t vn = n - (sizeof key - 1);
            if (vn == 10 && memcmp(v, "no-confirm", 10) == 0)
                return FDL_BEHAVE_NO_CONFIRM;
            if (vn == 5 && memcmp(v, "crash", 5) == 0)
                return FDL_BEHAVE_CRASH;
            return FDL_BEHAVE_OK;
        }
        i += n + 1;
    }
    return FDL_BEHAVE_OK;
}

/* ==== checks ======================================================================== */

static bool is_root_tier(unsigned t)
{
    return t == FDL_TIER_BOOTLOADER || t == FDL_TIER_KEYRING;
}

static bool tier_required(unsigned t)
{
    return t == FDL_TIER_BOOTLOADER || t == FDL_TIER_KEYRING || t == FDL_TIER_APPLICATION;
}

fdl_fw_status fdl_fw_check_header(fdl_fw *fw, const fdl_fw_hdr *h, unsigned want_tier)
{
    const uint8_t *pub = NULL;
    if (!fw || !h || want_tier == FDL_TIER_NONE || want_tier >= FDL_TIER_COUNT)
        return FDL_FW_ERR_ARG;
    if (h->tier != want_tier)
        return FDL_FW_ERR_WRONG_TIER;
    if (is_root_tier(want_tier)) {
        /* The root key: stored in flash, trusted only if its hash is fused and
         * the fuse slot is not revoked. */
        for (unsigned i = 0; i < fw->n_root && !pub; i++)
            if (memcmp(fw->root_id[i], h->key_id, FDL_FW_KEYID_LEN) == 0 &&
                fdl_efuse_root_trusted(fw->efuse, fw->root_hash[i]) >= 0)
                pub = fw->root_pub[i];
    } else if (fw->have_keyring) {
        /* A key of another tier is not found under this one: the keyring is the
         * one lookup, by use. */
        const fdl_keyring_entry *e = fdl_keyring_find(&fw->keyring, want_tier, h->key_id);
        pub = e ? e->pub : NULL;
    }
    if (!pub)
        return FDL_FW_ERR_KEY_UNKNOWN;
    fdl_fw_status st = verify_sig_cached(h, pub);
    if (st != FDL_FW_OK)
        return st;
    uint32_t hw = fdl_efuse_hw_rev(fw->efuse);
    if (h->hw_rev != 0 && h->hw_rev != hw)
        return FDL_FW_ERR_HW;
    if (h->counter < fdl_efuse_floor(fw->efuse, want_tier) || h->counter > FDL_EFUSE_FLOOR_MAX)
        return FDL_FW_ERR_ROLLBACK;
    return FDL_FW_OK;
}

/* An image loaded and checked for a tier. */
typedef struct loaded {
    fw_blob *blob;
    bool verified;
    fdl_keyring keyring;        /* tier keyring */
    fdl_fw_behaviour behaviour;
    char detail[80];            /* more on a refusal than the status says */
} loaded;

static void loaded_release(loaded *l)
{
    blob_release(l->blob);
    l->blob = NULL;
}

/* Loads slot `slot` of tier t and makes every check of the boot chain on it. */
static fdl_fw_status load_and_check(fdl_fw *fw, unsigned t, const fdl_bootctl_tier *ti, unsigned slot, loaded *l)
{
    char path[PATH_MAX];
    const fdl_bootctl_slot *s = &ti->slot[slot];
    fdl_fw_status st;
    memset(l, 0, sizeof *l);
    switch (s->src) {
    case FDL_SLOT_FACTORY:
        if (!fw->factory_dir || factory_path(fw->factory_dir, s->sha256, path, sizeof path) != 0 ||
            !(l->blob = factory_get(path))) {
            snprintf(l->detail, sizeof l->detail, "factory image missing");
            return FDL_FW_ERR_SHORT;
        }
        /* The file must be the image the record names. */
        if (memcmp(l->blob->sha_whole, s->sha256, 32) != 0 || l->blob->len != s->size) {
            snprintf(l->detail, sizeof l->detail, "factory image is not the one recorded");
            st = FDL_FW_ERR_HASH;
            goto fail;
        }
        break;
    case FDL_SLOT_OWN: {
        if (fdl_flash_slot_path(fw->flash, t, slot, path, sizeof path) != 0 || !(l->blob = blob_read(path, NULL))) {
            snprintf(l->detail, sizeof l->detail, "slot unreadable");
            return FDL_FW_ERR_SHORT;
        }
        blob_analyse(l->blob);
        if (l->blob->len != s->size) {
            snprintf(l->detail, sizeof l->detail, "slot holds %zu bytes, record says %u", l->blob->len, s->size);
            st = FDL_FW_ERR_LENGTH;
            goto fail;
        }
        break;
    }
    default:
        snprintf(l->detail, sizeof l->detail, "empty slot");
        return FDL_FW_ERR_SHORT;
    }
    fw_blob *b = l->blob;
    if (t == FDL_TIER_BOOTLOADER && !fdl_efuse_secure_boot(fw->efuse)) {
        /* No secure boot: the ROM jumps to whatever parses as an image. */
        if (b->len < FDL_FW_HDR_LEN || fdl_fwimage_parse_hdr(b->data, b->len, &(fdl_fw_hdr){0}) != FDL_FW_OK) {
            st = FDL_FW_ERR_SHORT;
            snprintf(l->detail, sizeof l->detail, "not an image");
            goto fail;
        }
        l->verified = false;
    } else {
        if ((st = b->parse_st) != FDL_FW_OK)
            goto fail;
        if ((st = fdl_fw_check_header(fw, &b->hdr, t)) != FDL_FW_OK)
            goto fail;
        l->verified = true;
    }
    const uint8_t *payload = b->data + FDL_FW_HDR_LEN;
    size_t plen = b->len - FDL_FW_HDR_LEN;
    if (t == FDL_TIER_KEYRING) {
        fdl_keyring_status kst = fdl_keyring_parse(payload, plen, &l->keyring);
        if (kst != FDL_KR_OK) {
            snprintf(l->detail, sizeof l->detail, "keyring payload: %s", fdl_keyring_strerror(kst));
            st = FDL_FW_ERR_LENGTH;
            goto fail;
        }
    }
    l->behaviour = manifest_behaviour(payload, plen);
    return FDL_FW_OK;
fail:
    loaded_release(l);
    return st;
}

/* ==== storage ======================================================================= */

static int read_rootkeys(fdl_fw *fw, const char *dir, char *err, size_t errcap)
{
    char path[PATH_MAX];
    uint8_t buf[FDL_EFUSE_ROOT_SLOTS * FDL_FW_PUB_LEN + 1];
    snprintf(path, sizeof path, "%s/" ROOTKEYS_FILE, dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fw_err(err, errcap, "firmware: %s: %s", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n <= 0 || n % FDL_FW_PUB_LEN != 0 || n > FDL_EFUSE_ROOT_SLOTS * FDL_FW_PUB_LEN) {
        fw_err(err, errcap, "firmware: %s: not 1..%d public keys", path, FDL_EFUSE_ROOT_SLOTS);
        return -1;
    }
    fw->n_root = (unsigned)(n / FDL_FW_PUB_LEN);
    for (unsigned i = 0; i < fw->n_root; i++) {
        memcpy(fw->root_pub[i], buf + i * FDL_FW_PUB_LEN, FDL_FW_PUB_LEN);
        fdl_fw_key_id(fw->root_pub[i], fw->root_id[i]);
        mbedtls_sha256(fw->root_pub[i], FDL_FW_PUB_LEN, fw->root_hash[i], 0);
    }
    return 0;
}

/* The boot number of the last complete line of boots.jsonl (0 if none). */
static uint64_t last_boot_no(const char *dir)
{
    char path[PATH_MAX], buf[4096 + 1];
    struct stat sb;
    uint64_t no = 0;
    snprintf(path, sizeof path, "%s/" BOOTS_FILE, dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (fstat(fd, &sb) == 0 && sb.st_size > 0) {
        off_t from = sb.st_size > 4096 ? sb.st_size - 4096 : 0;
        ssize_t n = pread(fd, buf, 4096, from);
        if (n > 0) {
            buf[n] = '\0';
            /* Lines start with {"boot":N; the last one that does (and is complete) wins. */
            for (char *p = buf; (p = strstr(p, "{\"boot\":")); p++) {
                char *end = NULL;
                unsigned long long v = strtoull(p + 8, &end, 10);
                if (end != p + 8 && strchr(end, '\n'))
                    no = v;
            }
        }
    }
    close(fd);
    return no;
}

/* Reopened without a factory: the shared directory recorded at creation. 0, or
 * -1 when out of memory (no record is not an error: slots then refer to none). */
static int read_factory_dir(fdl_fw *fw, const char *dir)
{
    char path[PATH_MAX], buf[PATH_MAX];
    snprintf(path, sizeof path, "%s/" FACTORY_FILE, dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    fw->factory_dir = fdl_strdup(buf);
    return fw->factory_dir ? 0 : -1;
}

static int open_existing(fdl_fw *fw, const char *dir, char *err, size_t errcap)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/efuse", dir);
    fdl_efuse_status est = fdl_efuse_open(path, &fw->efuse);
    if (est != FDL_EFUSE_OK) {
        fw_err(err, errcap, "firmware: eFuses of %s: %s", dir, fdl_efuse_strerror(est));
        return -1;
    }
    if (fdl_flash_open(dir, &fw->flash, err, errcap) != 0)
        return -1;
    if (read_rootkeys(fw, dir, err, errcap) != 0)
        return -1;
    fw->boot_no = last_boot_no(dir);
    return 0;
}

static bool dir_empty_or_absent(const char *dir, bool *exists)
{
    struct stat sb;
    *exists = stat(dir, &sb) == 0;
    if (!*exists)
        return true;
    if (!S_ISDIR(sb.st_mode))
        return false;
    /* rmdir of a non-empty directory fails without touching it: the cheapest
     * emptiness test, and an empty one is re-created by the rename below. */
    return rmdir(dir) == 0;
}

/* Writes a factory image into the shared directory by content (read only). */
static int ensure_factory_image(const char *factory_dir, const uint8_t sha[32], const uint8_t *img, size_t len,
                                char *err, size_t errcap)
{
    char path[PATH_MAX];
    struct stat sb;
    if (factory_path(factory_dir, sha, path, sizeof path) != 0)
        return -1;
    if (stat(path, &sb) == 0) {
        if ((size_t)sb.st_size != len) {
            fw_err(err, errcap, "firmware: %s exists with another size", path);
            return -1;
        }
        return 0;   /* same name = same content; the boot hashes it anyway */
    }
    int rc = fdl_mkdir_p(factory_dir, 0755);
    if (rc == 0)
        rc = fdl_write_file_atomic(path, img, len, 0444);
    if (rc != 0) {
        fw_err(err, errcap, "firmware: cannot write %s: %s", path, strerror(-rc));
        return -1;
    }
    return 0;
}

/* A new file in the temporary directory of create_storage: no fsync per file,
 * the directory's rename is what makes the whole storage appear. 0 or -1. */
static int write_new_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    ssize_t w = write(fd, data, len);
    int rc = close(fd);
    return w == (ssize_t)len && rc == 0 ? 0 : -1;
}

int fdl_fw_factory_prepare(fdl_fw_factory *f, char *err, size_t errcap)
{
    if (!f)
        return -1;
    f->prepared = false;
    if (!f->root_pub || f->root_pub[0] != 0x04) {
        fw_err(err, errcap, "firmware: factory: no root public key");
        return -1;
    }
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++) {
        fdl_fw_hdr h;
        const uint8_t *payload;
        if (!f->image[t]) {
            if (tier_required(t)) {
                fw_err(err, errcap, "firmware: factory: no %s image", fdl_fw_tier_name(t));
                return -1;
            }
            continue;
        }
        fdl_fw_status st = fdl_fwimage_parse(f->image[t], f->image_len[t], &h, &payload);
        if (st != FDL_FW_OK || h.tier != t || h.counter > FDL_EFUSE_FLOOR_MAX) {
            fw_err(err, errcap, "firmware: factory %s image: %s", fdl_fw_tier_name(t),
                    st != FDL_FW_OK ? fdl_fw_strerror(st) : h.tier != t ? "wrong tier" : "counter over the fuse maximum");
            return -1;
        }
        mbedtls_sha256(f->image[t], f->image_len[t], f->sha256[t], 0);
        f->counter[t] = h.counter;
    }
    f->prepared = true;
    return 0;
}

static int create_storage(const char *dir, const fdl_fw_factory *given, char *err, size_t errcap)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    fdl_bootctl bc;
    fdl_efuse_factory ef;
    fdl_efuse *e = NULL;
    fdl_flash *fl = NULL;
    int rc = -1;
    memset(&bc, 0, sizeof bc);
    memset(&ef, 0, sizeof ef);
    /* An unprepared factory is prepared here, for this device only. */
    fdl_fw_factory local;
    const fdl_fw_factory *f = given;
    if (!given->prepared) {
        local = *given;
        if (fdl_fw_factory_prepare(&local, err, errcap) != 0)
            return -1;
        f = &local;
    }
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++) {
        if (!f->image[t])
            continue;
        ef.floor[t] = f->counter[t];
        fdl_bootctl_tier *ti = &bc.tier[t];
        ti->state = FDL_TS_GOOD;
        ti->active = 0;
        ti->slot[0].src = f->factory_dir ? FDL_SLOT_FACTORY : FDL_SLOT_OWN;
        ti->slot[0].size = (uint32_t)f->image_len[t];
        memcpy(ti->slot[0].sha256, f->sha256[t], 32);
        if (f->factory_dir &&
            ensure_factory_image(f->factory_dir, f->sha256[t], f->image[t], f->image_len[t], err, errcap))
            return -1;
    }
    static const uint8_t zero[32];
    if (memcmp(f->root_key_hash, zero, 32) != 0)
        memcpy(ef.root_hash, f->root_key_hash, 32);
    else
        mbedtls_sha256(f->root_pub, FDL_FW_PUB_LEN, ef.root_hash, 0);
    ef.secure_boot = f->secure_boot;
    ef.debug_disabled = f->debug_disabled;
    ef.hw_rev = f->hw_rev;

    /* Everything goes into a temporary directory renamed into place at the end:
     * a device directory either does not exist or is complete. */
    snprintf(tmp, sizeof tmp, "%s.new.XXXXXX", dir);
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        fdl_mkdir_p(parent, 0755);
    }
    if (!mkdtemp(tmp)) {
        fw_err(err, errcap, "firmware: mkdtemp %s: %s", tmp, strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/" ROOTKEYS_FILE, tmp);
    if (write_new_file(path, f->root_pub, FDL_FW_PUB_LEN) != 0) {
        fw_err(err, errcap, "firmware: cannot write %s", path);
        goto cleanup;
    }
    if (f->factory_dir) {
        snprintf(path, sizeof path, "%s/" FACTORY_FILE, tmp);
        if (write_new_file(path, f->factory_dir, strlen(f->factory_dir)) != 0) {
            fw_err(err, errcap, "firmware: cannot write %s", path);
            goto cleanup;
        }
    }
    snprintf(path, sizeof path, "%s/efuse", tmp);
    fdl_efuse_status est = fdl_efuse_create(path, &ef, &e);
    if (est != FDL_EFUSE_OK) {
        fw_err(err, errcap, "firmware: eFuses: %s", fdl_efuse_strerror(est));
        goto cleanup;
    }
    if (fdl_flash_create(tmp, &bc, err, errcap) != 0 || fdl_flash_open(tmp, &fl, err, errcap) != 0)
        goto cleanup;
    if (!f->factory_dir)
        for (unsigned t = 1; t < FDL_TIER_COUNT; t++)
            if (f->image[t] && fdl_flash_slot_write(fl, t, 0, 0, f->image[t], f->image_len[t]) != 0) {
                fw_err(err, errcap, "firmware: cannot write the %s slot", fdl_fw_tier_name(t));
                goto cleanup;
            }
    if (rename(tmp, dir) != 0) {
        /* Another process created it first: theirs is as good as ours. */
        if (errno == ENOTEMPTY || errno == EEXIST)
            rc = 0;
        else
            fw_err(err, errcap, "firmware: rename %s: %s", dir, strerror(errno));
        goto cleanup;
    }
    tmp[0] = '\0';
    rc = 0;
cleanup:
    fdl_efuse_free(e);
    fdl_flash_free(fl);
    if (tmp[0]) {
        /* Our own temporary directory: only files we wrote are in it. */
        DIR *d = opendir(tmp);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", tmp, de->d_name);
            unlink(path);
        }
        if (d)
            closedir(d);
        rmdir(tmp);
    }
    return rc;
}

int fdl_fw_open(const char *dir, const fdl_fw_factory *factory, fdl_fw **out, char *err, size_t errcap)
{
    bool exists = false;
    if (!dir || !out) {
        fw_err(err, errcap, "firmware: bad arguments");
        return -1;
    }
    *out = NULL;
    if (dir_empty_or_absent(dir, &exists)) {
        if (!factory) {
            fw_err(err, errcap, "firmware: %s has no firmware storage and no factory was given", dir);
            return -1;
        }
        if (create_storage(dir, factory, err, errcap) != 0)
            return -1;
    }
    fdl_fw *fw = fdl_calloc(1, sizeof *fw);
    if (!fw) {
        fw_err(err, errcap, "firmware: out of memory");
        return -1;
    }
    fw->recovery = true;
    fw->dir = fdl_strdup(dir);
    const char *fdir = factory ? factory->factory_dir : NULL;
    if (!fw->dir || (fdir && !(fw->factory_dir = fdl_strdup(fdir)))) {
        fw_err(err, errcap, "firmware: out of memory");
        fdl_fw_free(fw);
        return -1;
    }
    if (!fdir && read_factory_dir(fw, dir) != 0) {
        fw_err(err, errcap, "firmware: out of memory");
        fdl_fw_free(fw);
        return -1;
    }
    if (open_existing(fw, dir, err, errcap) != 0) {
        fdl_fw_free(fw);
        return -1;
    }
    *out = fw;
    return 0;
}

static void drop_running(fdl_fw *fw)
{
    blob_release(fw->app);
    fw->app = NULL;
    memset(fw->run, 0, sizeof fw->run);
    fw->have_keyring = false;
    fw->booted = false;
    fw->recovery = true;
    if (fw->upd.active) {
        mbedtls_sha256_free(&fw->upd.sha);
        fw->upd.active = false;
    }
    fw->upd_job[0] = '\0';
}

void fdl_fw_free(fdl_fw *fw)
{
    if (!fw)
        return;
    drop_running(fw);
    fdl_efuse_free(fw->efuse);
    fdl_flash_free(fw->flash);
    fdl_free(fw->dir);
    fdl_free(fw->factory_dir);
    fdl_wipe(fw, sizeof *fw);
    fdl_free(fw);
}

/* ==== boot ========================================================================== */

static void why_add(fdl_boot_record *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_add(fdl_boot_record *r, const char *fmt, ...)
{
    size_t n = strlen(r->why);
    if (n + 3 >= sizeof r->why)
        return;
    if (n) {
        r->why[n++] = ';';
        r->why[n++] = ' ';
        r->why[n] = '\0';
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why + n, sizeof r->why - n, fmt, ap);
    va_end(ap);
}

static void note_refused(fdl_boot_record *r, unsigned t, unsigned slot, fdl_fw_status st)
{
    if (r->tier[t].refused_slot < 0) {
        r->tier[t].refused = st;
        r->tier[t].refused_slot = (int8_t)slot;
    }
}

static const char *reason(fdl_fw_status st, const loaded *l)
{
    return l->detail[0] ? l->detail : fdl_fw_strerror(st);
}

/* Starts an image that passed its checks. Takes over l's blob. */
static void run_image(fdl_fw *fw, fdl_boot_record *r, unsigned t, unsigned slot, bool trial, loaded *l)
{
    tier_run *tr = &fw->run[t];
    fw_blob *b = l->blob;
    tr->ran = true;
    tr->verified = l->verified;
    tr->trial = trial;
    tr->slot = (uint8_t)slot;
    tr->hdr = b->hdr;
    memcpy(tr->sha256, b->sha_whole, 32);
    tr->behaviour = l->behaviour;
    r->tier[t].ran = true;
    r->tier[t].verified = l->verified;
    r->tier[t].slot = (uint8_t)slot;
    r->tier[t].trial = trial;
    r->tier[t].version = b->hdr.version;
    r->tier[t].counter = b->hdr.counter;
    memcpy(r->tier[t].sha256, b->sha_whole, 32);
    r->tier[t].behaviour = l->behaviour;
    if (t == FDL_TIER_KEYRING) {
        fw->keyring = l->keyring;
        fw->have_keyring = true;
    }
    if (t == FDL_TIER_APPLICATION) {
        blob_release(fw->app);
        fw->app = b;
    } else {
        blob_release(b);
    }
    l->blob = NULL;
}

enum { TIER_RAN = 0, TIER_RECOVERY = 1 };

/* Records the revert of tier's trial: its slot rejected, the confirmed slot (or
 * none: the tier is absent again) runs. 0, -1, or FDL_FW_POWER_LOSS. */
static int revert_trial(fdl_fw *fw, unsigned t)
{
    fdl_bootctl next = *fdl_flash_bootctl(fw->flash);
    fdl_bootctl_tier *nt = &next.tier[t];
    if (nt->state != FDL_TS_PENDING && nt->state != FDL_TS_TRIAL)
        return -1;
    nt->slot[1u - nt->active].rejected = 1;
    nt->state = nt->slot[nt->active].src == FDL_SLOT_EMPTY ? FDL_TS_ABSENT : FDL_TS_GOOD;
    nt->trial_boots = 0;
    nt->deadline_ms = 0;
    next.job[0] = '\0';
    int rc = fdl_flash_commit(fw->flash, &next);
    return rc == 0 ? 0 : rc == FDL_FLASH_POWER_LOSS ? FDL_FW_POWER_LOSS : -1;
}

/* One tier's step of the chain on the record bc (updated when it commits). */
static int boot_tier(fdl_fw *fw, fdl_bootctl *bc, unsigned t, uint64_t now, fdl_boot_record *r)
{
    fdl_bootctl_tier *ti = &bc->tier[t];
    const char *tn = fdl_fw_tier_name(t);
    loaded l;
    fdl_fw_status st;
    r->tier[t].refused_slot = -1;
    if (ti->state == FDL_TS_ABSENT) {
        if (tier_required(t)) {
            why_add(r, "no %s image", tn);
            return TIER_RECOVERY;
        }
        return TIER_RAN;
    }
    r->tier[t].present = true;
    if (ti->state == FDL_TS_PENDING || ti->state == FDL_TS_TRIAL) {
        unsigned ts = 1u - ti->active;
        char revert[120] = "";
        if (ti->state == FDL_TS_TRIAL && now >= ti->deadline_ms)
            snprintf(revert, sizeof revert, "not confirmed by its deadline");
        else if (ti->state == FDL_TS_TRIAL && ti->trial_boots >= FDL_FW_TRIAL_BOOTS)
            snprintf(revert, sizeof revert, "not confirmed in %d boots", FDL_FW_TRIAL_BOOTS);
        else if ((st = load_and_check(fw, t, ti, ts, &l)) != FDL_FW_OK) {
            note_refused(r, t, ts, st);
            snprintf(revert, sizeof revert, "refused: %s", reason(st, &l));
        } else if (l.behaviour == FDL_BEHAVE_CRASH) {
            /* The watchdog resets a crashing trial image; the bootloader reverts it. */
            loaded_release(&l);
            snprintf(revert, sizeof revert, "crashed at start");
        }
        fdl_bootctl next = *bc;
        fdl_bootctl_tier *nt = &next.tier[t];
        if (!revert[0]) {
            if (ti->state == FDL_TS_PENDING) {
                nt->state = FDL_TS_TRIAL;
                nt->deadline_ms = now + (ti->trial_ms ? ti->trial_ms : FDL_FW_TRIAL_MS_DEFAULT);
                nt->trial_boots = 1;
            } else {
                nt->trial_boots++;
            }
            int rc = fdl_flash_commit(fw->flash, &next);
            if (rc != 0) {
                loaded_release(&l);
                if (rc == FDL_FLASH_POWER_LOSS)
                    return FDL_FW_POWER_LOSS;
                why_add(r, "%s: cannot record the trial boot", tn);
                return TIER_RECOVERY;
            }
            *bc = next;
            run_image(fw, r, t, ts, true, &l);
            return TIER_RAN;
        }
        /* Revert: the trial slot is rejected, the confirmed one runs. */
        int rc = revert_trial(fw, t);
        if (rc == FDL_FW_POWER_LOSS)
            return FDL_FW_POWER_LOSS;
        if (rc != 0) {
            why_add(r, "%s: cannot record the revert", tn);
            return TIER_RECOVERY;
        }
        *bc = *fdl_flash_bootctl(fw->flash);
        r->reverted = true;
        why_add(r, "%s trial reverted: %s", tn, revert);
        if (ti->state == FDL_TS_ABSENT) {
            r->tier[t].present = false;
            if (tier_required(t)) {
                why_add(r, "no %s image", tn);
                return TIER_RECOVERY;
            }
            return TIER_RAN;
        }
    }
    /* A confirmed tier: the active slot, else the other one if it holds a
     * confirmed image that still passes every check. */
    unsigned a = ti->active, o = 1u - a;
    char why_a[90], why_o[90] = "empty";
    if ((st = load_and_check(fw, t, ti, a, &l)) == FDL_FW_OK) {
        run_image(fw, r, t, a, false, &l);
        return TIER_RAN;
    }
    note_refused(r, t, a, st);
    snprintf(why_a, sizeof why_a, "%s", reason(st, &l));
    if (ti->slot[o].src != FDL_SLOT_EMPTY && !ti->slot[o].rejected) {
        if ((st = load_and_check(fw, t, ti, o, &l)) == FDL_FW_OK) {
            why_add(r, "%s slot %c refused (%s), fell back to slot %c", tn, 'a' + (int)a, why_a, 'a' + (int)o);
            run_image(fw, r, t, o, false, &l);
            return TIER_RAN;
        }
        note_refused(r, t, o, st);
        snprintf(why_o, sizeof why_o, "%s", reason(st, &l));
    } else if (ti->slot[o].rejected) {
        snprintf(why_o, sizeof why_o, "rejected trial");
    }
    why_add(r, "%s: no slot verifies (%c: %s; %c: %s)", tn, 'a' + (int)a, why_a, 'a' + (int)o, why_o);
    return TIER_RECOVERY;
}

static fdl_boot_outcome do_boot(fdl_fw *fw, uint64_t now, fdl_boot_record *r)
{
    static const unsigned order[] = {
        FDL_TIER_BOOTLOADER,                       /* boot ROM */
        FDL_TIER_KEYRING, FDL_TIER_KERNEL, FDL_TIER_APPLICATION, /* bootloader */
        FDL_TIER_MODULES, FDL_TIER_CONFIG,         /* application */
    };
    if (fdl_flash_reload(fw->flash) != 0) {
        why_add(r, "no valid boot-control record");
        return FDL_BOOT_RECOVERY;
    }
    fdl_bootctl bc = *fdl_flash_bootctl(fw->flash);
    bool trial = false;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        unsigned t = order[i];
        int rc = boot_tier(fw, &bc, t, now, r);
        if (rc == FDL_FW_POWER_LOSS)
            return FDL_BOOT_POWER_LOSS;
        if (rc == TIER_RECOVERY)
            return FDL_BOOT_RECOVERY;
        trial |= fw->run[t].trial;
    }
    /* A confirmed image above its floor: the power failed between the confirm's
     * two writes. It was confirmed, so the floor catches up now. */
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++) {
        const tier_run *tr = &fw->run[t];
        if (!tr->ran || tr->trial || !tr->verified || bc.tier[t].state != FDL_TS_GOOD ||
            tr->slot != bc.tier[t].active || tr->hdr.counter <= fdl_efuse_floor(fw->efuse, t))
            continue;
        if (fdl_flash_nv_write(fw->flash) != 0)
            return FDL_BOOT_POWER_LOSS;
        if (fdl_efuse_raise_floor(fw->efuse, t, tr->hdr.counter) != FDL_EFUSE_OK)
            why_add(r, "%s: could not raise the floor", fdl_fw_tier_name(t));
    }
    return trial ? FDL_BOOT_TRIAL : FDL_BOOT_OK;
}

/* Appends the record to boots.jsonl (the harness's evidence; not device flash). */
static void append_record(fdl_fw *fw, const fdl_boot_record *r)
{
    char path[PATH_MAX], hex[65], ver[16];
    fdl_json *j = fdl_json_new(16384);
    fdl_json_obj_begin(j, NULL);
    fdl_json_uint(j, "boot", r->boot_no);
    fdl_json_uint(j, "at_ms", r->at_ms);
    fdl_json_str(j, "outcome", fdl_boot_outcome_name(r->outcome));
    fdl_json_bool(j, "reverted", r->reverted);
    fdl_json_str(j, "why", r->why);
    fdl_json_obj_begin(j, "tiers");
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++) {
        if (!r->tier[t].present && r->tier[t].refused_slot < 0)
            continue;
        fdl_json_obj_begin(j, fdl_fw_tier_name(t));
        fdl_json_bool(j, "ran", r->tier[t].ran);
        if (r->tier[t].ran) {
            char slot[2] = {(char)('a' + r->tier[t].slot), '\0'};
            fdl_json_str(j, "slot", slot);
            fdl_json_str(j, "version", fdl_fw_version_str(r->tier[t].version, ver, sizeof ver));
            fdl_json_uint(j, "counter", r->tier[t].counter);
            hex32(r->tier[t].sha256, hex);
            fdl_json_str(j, "sha256", hex);
            fdl_json_bool(j, "verified", r->tier[t].verified);
            fdl_json_bool(j, "trial", r->tier[t].trial);
            fdl_json_str(j, "behaviour", behaviour_name(r->tier[t].behaviour));
        }
        if (r->tier[t].refused_slot >= 0) {
            char slot[2] = {(char)('a' + r->tier[t].refused_slot), '\0'};
            fdl_json_obj_begin(j, "refused");
            fdl_json_str(j, "slot", slot);
            fdl_json_str(j, "why", fdl_fw_strerror(r->tier[t].refused));
            fdl_json_obj_end(j);
        }
        fdl_json_obj_end(j);
    }
    fdl_json_obj_end(j);
    fdl_json_obj_end(j);
    size_t len = 0;
    const char *text = fdl_json_text(j, &len);
    snprintf(path, sizeof path, "%s/" BOOTS_FILE, fw->dir);
    int fd = text ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644) : -1;
    if (fd >= 0) {
        /* One write per line: O_APPEND keeps lines whole between writers. */
        char *line = fdl_malloc(len + 1);
        if (line) {
            memcpy(line, text, len);
            line[len] = '\n';
            ssize_t w = write(fd, line, len + 1);
            (void)w;
            fdl_free(line);
        }
        close(fd);
    }
    fdl_json_free(j);
}

fdl_boot_outcome fdl_fw_boot(fdl_fw *fw, uint64_t now_ms, fdl_boot_record *rec)
{
    fdl_boot_record r;
    memset(&r, 0, sizeof r);
    for (unsigned t = 0; t < FDL_TIER_COUNT; t++)
        r.tier[t].refused_slot = -1;
    if (!fw) {
        if (rec)
            *rec = r;
        return FDL_BOOT_RECOVERY;
    }
    /* Power on: RAM is gone, flash is what is on disk. */
    drop_running(fw);
    fdl_flash_power_on(fw->flash);
    r.boot_no = ++fw->boot_no;
    r.at_ms = now_ms;
    /* A trial image after which the chain cannot verify (a keyring that drops a
     * key still in use, a kernel the application does not fit) failed to boot
     * as surely as one that crashed: it is reverted and the chain runs again
     * with the confirmed image. Each pass reverts one trial, so this ends. */
    for (unsigned pass = 0; pass < FDL_TIER_COUNT; pass++) {
        r.outcome = do_boot(fw, now_ms, &r);
        unsigned tt = FDL_TIER_NONE;
        for (unsigned t = 1; t < FDL_TIER_COUNT; t++)
            if (fw->run[t].ran && fw->run[t].trial)
                tt = t;
        if (r.outcome != FDL_BOOT_RECOVERY || tt == FDL_TIER_NONE)
            break;
        int rc = revert_trial(fw, tt);
        if (rc != 0) {
            if (rc == FDL_FW_POWER_LOSS)
                r.outcome = FDL_BOOT_POWER_LOSS;
            break;
        }
        r.reverted = true;
        why_add(&r, "%s trial reverted: the chain after it does not verify", fdl_fw_tier_name(tt));
        drop_running(fw);
        for (unsigned t = 0; t < FDL_TIER_COUNT; t++) {
            memset(&r.tier[t], 0, sizeof r.tier[t]);
            r.tier[t].refused_slot = -1;
        }
    }
    if (r.outcome == FDL_BOOT_POWER_LOSS || r.outcome == FDL_BOOT_RECOVERY) {
        /* Nothing runs: the application never starts. The record keeps what the
         * chain verified before it stopped. */
        blob_release(fw->app);
        fw->app = NULL;
        fw->have_keyring = false;
        for (unsigned t = 0; t < FDL_TIER_COUNT; t++)
            if (t != FDL_TIER_BOOTLOADER)
                fw->run[t].ran = false;
        if (r.outcome == FDL_BOOT_POWER_LOSS)
            memset(fw->run, 0, sizeof fw->run);
    }
    fw->booted = r.outcome != FDL_BOOT_POWER_LOSS;
    fw->recovery = r.outcome == FDL_BOOT_RECOVERY || r.outcome == FDL_BOOT_POWER_LOSS;
    append_record(fw, &r);
    if (rec)
        *rec = r;
    return r.outcome;
}

/* ==== running state ================================================================= */

unsigned fdl_fw_trial_tier(const fdl_fw *fw)
{
    if (!fw || fw->recovery)
        return FDL_TIER_NONE;
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++)
        if (fw->run[t].ran && fw->run[t].trial)
            return t;
    return FDL_TIER_NONE;
}

bool fdl_fw_in_trial(const fdl_fw *fw, uint64_t *deadline_ms)
{
    unsigned t = fdl_fw_trial_tier(fw);
    if (t == FDL_TIER_NONE)
        return false;
    if (deadline_ms)
        *deadline_ms = fdl_flash_bootctl(fw->flash)->tier[t].deadline_ms;
    return true;
}

bool fdl_fw_in_recovery(const fdl_fw *fw)
{
    return !fw || fw->recovery;
}

fdl_fw_behaviour fdl_fw_running_behaviour(const fdl_fw *fw, unsigned tier)
{
    if (!fw || fw->recovery || tier >= FDL_TIER_COUNT || !fw->run[tier].ran)
        return FDL_BEHAVE_OK;
    return fw->run[tier].behaviour;
}

int fdl_fw_confirm(fdl_fw *fw, uint64_t now_ms)
{
    (void)now_ms;
    unsigned t = fdl_fw_trial_tier(fw);
    if (t == FDL_TIER_NONE)
        return -1;
    const fdl_bootctl *cur = fdl_flash_bootctl(fw->flash);
    if (cur->tier[t].state != FDL_TS_TRIAL || fw->run[t].slot == cur->tier[t].active)
        return -1;
    fdl_bootctl next = *cur;
    fdl_bootctl_tier *nt = &next.tier[t];
    /* The confirmed slot runs from now on; the previous one stays as the
     * fallback, which the raised floor will refuse if it is older. */
    nt->state = FDL_TS_GOOD;
    nt->active = fw->run[t].slot;
    nt->trial_boots = 0;
    nt->deadline_ms = 0;
    next.job[0] = '\0';
    int rc = fdl_flash_commit(fw->flash, &next);
    if (rc != 0)
        return rc == FDL_FLASH_POWER_LOSS ? FDL_FW_POWER_LOSS : -1;
    fw->run[t].trial = false;
    if (fdl_flash_nv_write(fw->flash) != 0)
        return FDL_FW_POWER_LOSS;
    return fdl_efuse_raise_floor(fw->efuse, t, fw->run[t].hdr.counter) == FDL_EFUSE_OK ? 0 : -1;
}

const fdl_keyring *fdl_fw_keyring(const fdl_fw *fw)
{
    return fw && !fw->recovery && fw->have_keyring ? &fw->keyring : NULL;
}

uint32_t fdl_fw_hw_rev(const fdl_fw *fw)
{
    return fw ? fdl_efuse_hw_rev(fw->efuse) : 0;
}

uint32_t fdl_fw_running_version(const fdl_fw *fw, unsigned tier)
{
    return fw && tier < FDL_TIER_COUNT && fw->run[tier].ran ? fw->run[tier].hdr.version : 0;
}

uint32_t fdl_fw_floor(const fdl_fw *fw, unsigned tier)
{
    return fw ? fdl_efuse_floor(fw->efuse, tier) : 0;
}

const uint8_t *fdl_fw_app_payload(const fdl_fw *fw, size_t *len)
{
    if (!fw || fw->recovery || !fw->app || fw->app->len < FDL_FW_HDR_LEN) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = fw->app->len - FDL_FW_HDR_LEN;
    return fw->app->data + FDL_FW_HDR_LEN;
}

uint64_t fdl_fw_job_seq(const fdl_fw *fw)
{
    return fw ? fdl_flash_bootctl(fw->flash)->job_seq : 0;
}

int fdl_fw_set_job_seq(fdl_fw *fw, uint64_t seq)
{
    if (!fw)
        return -1;
    fdl_bootctl next = *fdl_flash_bootctl(fw->flash);
    next.job_seq = seq;
    int rc = fdl_flash_commit(fw->flash, &next);
    return rc == 0 ? 0 : rc == FDL_FLASH_POWER_LOSS ? FDL_FW_POWER_LOSS : -1;
}

const char *fdl_fw_job(const fdl_fw *fw)
{
    return fw ? fdl_flash_bootctl(fw->flash)->job : "";
}

bool fdl_fw_debug_open(const fdl_fw *fw)
{
    return fw && !fdl_efuse_debug_disabled(fw->efuse);
}

/* ==== updates ======================================================================= */

int fdl_fw_update_begin(fdl_fw *fw, unsigned tier, uint32_t size)
{
    if (!fw || !fw->booted || fw->recovery || fw->upd.active || tier == FDL_TIER_NONE || tier >= FDL_TIER_COUNT ||
        size < FDL_FW_HDR_LEN || size > IMAGE_MAX)
        return -1;
    const fdl_bootctl *cur = fdl_flash_bootctl(fw->flash);
    const fdl_bootctl_tier *ti = &cur->tier[tier];
    /* One update at a time, of any tier: a new image waits until the last one
     * confirmed or was reverted. */
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++)
        if (cur->tier[t].state == FDL_TS_PENDING || cur->tier[t].state == FDL_TS_TRIAL)
            return -1;
    /* Never the slot that runs: if the tier fell back to its other slot, that
     * one becomes the active slot and the refused one is overwritten. */
    unsigned keep = fw->run[tier].ran ? fw->run[tier].slot : ti->active;
    unsigned target = 1u - keep;
    fdl_bootctl next = *cur;
    next.tier[tier].active = (uint8_t)keep;
    memset(&next.tier[tier].slot[target], 0, sizeof next.tier[tier].slot[target]);
    int rc = fdl_flash_commit(fw->flash, &next);
    if (rc == 0)
        rc = fdl_flash_slot_erase(fw->flash, tier, target);
    if (rc != 0)
        return rc == FDL_FLASH_POWER_LOSS ? FDL_FW_POWER_LOSS : -1;
    fw->upd.active = true;
    fw->upd.tier = tier;
    fw->upd.slot = target;
    fw->upd.size = size;
    fw->upd.written = 0;
    mbedtls_sha256_init(&fw->upd.sha);
    mbedtls_sha256_starts(&fw->upd.sha, 0);
    return 0;
}

void fdl_fw_update_abort(fdl_fw *fw)
{
    if (!fw)
        return;
    if (fw->upd.active)
        mbedtls_sha256_free(&fw->upd.sha);
    fw->upd.active = false;
    fw->upd_job[0] = '\0';
}

int fdl_fw_update_write(fdl_fw *fw, const uint8_t *data, size_t len)
{
    if (!fw || !fw->upd.active || (!data && len))
        return -1;
    if (len > (size_t)(fw->upd.size - fw->upd.written)) {
        fdl_fw_update_abort(fw);
        return -1;
    }
    if (len == 0)
        return 0;
    int rc = fdl_flash_slot_write(fw->flash, fw->upd.tier, fw->upd.slot, fw->upd.written, data, len);
    if (rc != 0) {
        fdl_fw_update_abort(fw);
        return rc == FDL_FLASH_POWER_LOSS ? FDL_FW_POWER_LOSS : -1;
    }
    mbedtls_sha256_update(&fw->upd.sha, data, len);
    fw->upd.written += (uint32_t)len;
    return 0;
}

void fdl_fw_update_set_job(fdl_fw *fw, const char *job)
{
    if (fw)
        snprintf(fw->upd_job, sizeof fw->upd_job, "%s", job ? job : "");
}

int fdl_fw_update_finish(fdl_fw *fw, uint64_t trial_ms)
{
    uint8_t sha[32];
    if (!fw || !fw->upd.active || fw->upd.written != fw->upd.size)
        return -1;
    mbedtls_sha256_finish(&fw->upd.sha, sha);
    fdl_bootctl next = *fdl_flash_bootctl(fw->flash);
    fdl_bootctl_tier *nt = &next.tier[fw->upd.tier];
    fdl_bootctl_slot *s = &nt->slot[fw->upd.slot];
    s->src = FDL_SLOT_OWN;
    s->rejected = 0;
    s->size = fw->upd.size;
    memcpy(s->sha256, sha, 32);
    nt->state = FDL_TS_PENDING;
    nt->trial_ms = trial_ms ? trial_ms : FDL_FW_TRIAL_MS_DEFAULT;
    nt->trial_boots = 0;
    nt->deadline_ms = 0;
    snprintf(next.job, sizeof next.job, "%s", fw->upd_job);
    fdl_fw_update_abort(fw);
    int rc = fdl_flash_commit(fw->flash, &next);
    return rc == 0 ? 0 : rc == FDL_FLASH_POWER_LOSS ? FDL_FW_POWER_LOSS : -1;
}

void fdl_fw_set_power_cut(fdl_fw *fw, uint64_t k)
{
    if (fw)
        fdl_flash_set_power_cut(fw->flash, k);
}

uint64_t fdl_fw_flash_writes(const fdl_fw *fw)
{
    return fw ? fdl_flash_writes(fw->flash) : 0;
}

bool fdl_fw_power_lost(const fdl_fw *fw)
{
    return fw && fdl_flash_power_lost(fw->flash);
}
