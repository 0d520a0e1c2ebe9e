/* devices/fwflash.c — slots, the two-copy boot-control record, the write counter (see fwflash.h). */
#include "devices/fwflash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sim/alloc.h"

struct fdl_flash {
    char *dir;
    fdl_bootctl cur;
    unsigned cur_copy;      /* the copy holding cur */
    uint64_t writes;
    uint64_t cut_at;        /* 0 = never */
    bool lost;
};

/* ---- CRC-32 ------------------------------------------------------------------ */

uint32_t fdl_crc32(const void *data, size_t len)
{
    static uint32_t table[256];
    static int ready;
    if (!ready) {
        /* Idempotent: concurrent first calls compute the same table. */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    const uint8_t *p = data;
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ---- record codec ----------------------------------------------------------- */

#define OFF_TIERS 88
#define TIER_LEN 100
#define SLOT_LEN 40
#define OFF_CRC (FDL_BOOTCTL_COPY_LEN - 4)

static void bc_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void bc_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint32_t bc_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t bc_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void fdl_bootctl_encode(const fdl_bootctl *bc, uint8_t out[FDL_BOOTCTL_COPY_LEN])
{
    memset(out, 0, FDL_BOOTCTL_COPY_LEN);
    memcpy(out, FDL_BOOTCTL_MAGIC, 4);
    bc_put32(out + 4, FDL_BOOTCTL_VERSION);
    bc_put64(out + 8, bc->seq);
    bc_put64(out + 16, bc->job_seq);
    memcpy(out + 24, bc->job, FDL_BOOTCTL_JOB_MAX);
    out[24 + FDL_BOOTCTL_JOB_MAX - 1] = '\0';
    for (unsigned t = 1; t < FDL_FLASH_TIERS; t++) {
        const fdl_bootctl_tier *ti = &bc->tier[t];
        uint8_t *p = out + OFF_TIERS + (t - 1) * TIER_LEN;
        p[0] = ti->state;
        p[1] = ti->active;
        p[2] = ti->trial_boots;
        bc_put64(p + 4, ti->trial_ms);
        bc_put64(p + 12, ti->deadline_ms);
        for (unsigned s = 0; s < 2; s++) {
            uint8_t *q = p + 20 + s * SLOT_LEN;
            q[0] = ti->slot[s].src;
            q[1] = ti->slot[s].rejected;
            bc_put32(q + 4, ti->slot[s].size);
            memcpy(q + 8, ti->slot[s].sha256, 32);
        }
    }
    bc_put32(out + OFF_CRC, fdl_crc32(out, OFF_CRC));
}

int fdl_bootctl_decode(const uint8_t in[FDL_BOOTCTL_COPY_LEN], fdl_bootctl *out)
{
    fdl_bootctl bc;
    memset(&bc, 0, sizeof bc);
    if (memcmp(in, FDL_BOOTCTL_MAGIC, 4) != 0 || bc_get32(in + 4) != FDL_BOOTCTL_VERSION ||
        bc_get32(in + OFF_CRC) != fdl_crc32(in, OFF_CRC))
        return -1;
    bc.seq = bc_get64(in + 8);
    bc.job_seq = bc_get64(in + 16);
    if (!memchr(in + 24, '\0', FDL_BOOTCTL_JOB_MAX))
        return -1;
    memcpy(bc.job, in + 24, FDL_BOOTCTL_JOB_MAX);
    for (unsigned t = 1; t < FDL_FLASH_TIERS; t++) {
        fdl_bootctl_tier *ti = &bc.tier[t];
        const uint8_t *p = in + OFF_TIERS + (t - 1) * TIER_LEN;
        ti->state = p[0];
        ti->active = p[1];
        ti->trial_boots = p[2];
        ti->trial_ms = bc_get64(p + 4);
        ti->deadline_ms = bc_get64(p + 12);
        if (ti->state > FDL_TS_TRIAL || ti->active > 1)
            return -1;
        for (unsigned s = 0; s < 2; s++) {
            const uint8_t *q = p + 20 + s * SLOT_LEN;
            ti->slot[s].src = q[0];
            ti->slot[s].rejected = q[1];
            ti->slot[s].size = bc_get32(q + 4);
            memcpy(ti->slot[s].sha256, q + 8, 32);
            if (ti->slot[s].src > FDL_SLOT_OWN || ti->slot[s].rejected > 1)
                return -1;
        }
        /* The state must name slots that hold something. */
        const fdl_bootctl_slot *act = &ti->slot[ti->active], *other = &ti->slot[1 - ti->active];
        switch (ti->state) {
        case FDL_TS_ABSENT:
            if (act->src != FDL_SLOT_EMPTY)
                return -1;
            break;
        case FDL_TS_GOOD:
            if (act->src == FDL_SLOT_EMPTY)
                return -1;
            break;
        default:
            if (other->src == FDL_SLOT_EMPTY)
                return -1;
            break;
        }
    }
    *out = bc;
    return 0;
}

/* ---- file helpers ------------------------------------------------------------ */

static void flash_err(char *err, size_t cap, const char *fmt, const char *a, const char *b)
{
    if (err && cap)
        snprintf(err, cap, fmt, a, b);
}

static int bootctl_path(const char *dir, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/bootctl", dir);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* pwrite all of data at off into path (created if absent). 0 or -errno. */
static int pwrite_file(const char *path, uint64_t off, const void *data, size_t len, bool truncate_to_end)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    const uint8_t *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(fd, p + done, len - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = w < 0 ? -errno : -EIO;
            break;
        }
        done += (size_t)w;
    }
    if (rc == 0 && truncate_to_end && ftruncate(fd, (off_t)(off + len)) != 0)
        rc = -errno;
    close(fd);
    return rc;
}

/* Reads copy `which` of the record. 0 (decoded) or -1. */
static int read_copy(int fd, unsigned which, fdl_bootctl *out)
{
    uint8_t buf[FDL_BOOTCTL_COPY_LEN];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t r = pread(fd, buf + got, sizeof buf - got, (off_t)(which * FDL_BOOTCTL_COPY_LEN + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return fdl_bootctl_decode(buf, out);
}

/* ---- lifecycle ----------------------------------------------------------------- */

int fdl_flash_create(const char *dir, const fdl_bootctl *bc, char *err, size_t errcap)
{
    char path[4096];
    uint8_t both[2 * FDL_BOOTCTL_COPY_LEN];
    if (!dir || !bc || bootctl_path(dir, path, sizeof path) != 0) {
        flash_err(err, errcap, "flash: bad directory%s%s", "", "");
        return -1;
    }
    fdl_bootctl first = *bc;
    first.seq = 1;
    fdl_bootctl_encode(&first, both);
    memcpy(both + FDL_BOOTCTL_COPY_LEN, both, FDL_BOOTCTL_COPY_LEN);
    int rc = pwrite_file(path, 0, both, sizeof both, true);
    if (rc != 0) {
        flash_err(err, errcap, "flash: cannot write %s: %s", path, strerror(-rc));
        return -1;
    }
    return 0;
}

/* Loads the newest valid copy into fl. 0 or -1. */
static int load(fdl_flash *fl)
{
    char path[4096];
    fdl_bootctl c[2];
    int ok[2] = {0, 0};
    if (bootctl_path(fl->dir, path, sizeof path) != 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    for (unsigned i = 0; i < 2; i++)
        ok[i] = read_copy(fd, i, &c[i]) == 0;
    close(fd);
    if (!ok[0] && !ok[1])
        return -1;
    unsigned pick = ok[0] && (!ok[1] || c[0].seq >= c[1].seq) ? 0 : 1;
    fl->cur = c[pick];
    fl->cur_copy = pick;
    return 0;
}

int fdl_flash_open(const char *dir, fdl_flash **out, char *err, size_t errcap)
{
    if (!dir || !out)
        return -1;
    *out = NULL;
    fdl_flash *fl = fdl_calloc(1, sizeof *fl);
    if (!fl || !(fl->dir = fdl_strdup(dir))) {
        fdl_free(fl);
        flash_err(err, errcap, "flash: out of memory%s%s", "", "");
        return -1;
    }
    if (load(fl) != 0) {
        flash_err(err, errcap, "flash: no valid boot-control record in %s%s", dir, "");
        fdl_flash_free(fl);
        return -1;
    }
    *out = fl;
    return 0;
}

void fdl_flash_free(fdl_flash *fl)
{
    if (!fl)
        return;
    fdl_free(fl->dir);
    fdl_free(fl);
}

int fdl_flash_reload(fdl_flash *fl)
{
    return fl ? load(fl) : -1;
}

const fdl_bootctl *fdl_flash_bootctl(const fdl_flash *fl)
{
    return &fl->cur;
}

unsigned fdl_flash_current_copy(const fdl_flash *fl)
{
    return fl->cur_copy;
}

/* ---- counted writes ------------------------------------------------------------ */

/* Counts one write: 0 = do it whole, 1 = do half of it then report the power
 * loss, FDL_FLASH_POWER_LOSS = the power is already off, do nothing. */
static int count_write(fdl_flash *fl)
{
    if (fl->lost)
        return FDL_FLASH_POWER_LOSS;
    fl->writes++;
    if (fl->cut_at && fl->writes == fl->cut_at) {
        fl->cut_at = 0;
        fl->lost = true;
        return 1;
    }
    return 0;
}

int fdl_flash_nv_write(fdl_flash *fl)
{
    int c = count_write(fl);
    return c == 0 ? 0 : FDL_FLASH_POWER_LOSS;
}

int fdl_flash_commit(fdl_flash *fl, const fdl_bootctl *next)
{
    char path[4096];
    uint8_t buf[FDL_BOOTCTL_COPY_LEN];
    if (!fl || !next || bootctl_path(fl->dir, path, sizeof path) != 0)
        return -1;
    int c = count_write(fl);
    if (c == FDL_FLASH_POWER_LOSS)
        return c;
    fdl_bootctl rec = *next;
    rec.seq = fl->cur.seq + 1;
    fdl_bootctl_encode(&rec, buf);
    unsigned target = 1 - fl->cur_copy;
    /* Torn: the first half of the new copy lands over the old one; its CRC fails. */
    size_t len = c == 1 ? sizeof buf / 2 : sizeof buf;
    int rc = pwrite_file(path, (uint64_t)target * FDL_BOOTCTL_COPY_LEN, buf, len, false);
    if (c == 1)
        return FDL_FLASH_POWER_LOSS;
    if (rc != 0)
        return -1;
    fl->cur = rec;
    fl->cur_copy = target;
    return 0;
}

int fdl_flash_slot_path(const fdl_flash *fl, unsigned tier, unsigned slot, char *buf, size_t cap)
{
    static const char *const names[FDL_FLASH_TIERS] = {
        NULL, "bootloader", "kernel", "application", "modules", "config", "keyring",
    };
    if (!fl || tier == 0 || tier >= FDL_FLASH_TIERS || slot > 1)
        return -1;
    int n = snprintf(buf, cap, "%s/%s-%c.img", fl->dir, names[tier], slot ? 'b' : 'a');
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

int fdl_flash_slot_erase(fdl_flash *fl, unsigned tier, unsigned slot)
{
    char path[4096];
    struct stat sb;
    if (fdl_flash_slot_path(fl, tier, slot, path, sizeof path) != 0)
        return -1;
    int c = count_write(fl);
    if (c == FDL_FLASH_POWER_LOSS)
        return c;
    if (c == 1) {
        /* Torn erase: half of the old content is gone (whether the truncate
         * worked does not matter: the power is off either way). */
        int ignored = stat(path, &sb) == 0 ? truncate(path, sb.st_size / 2) : 0;
        (void)ignored;
        return FDL_FLASH_POWER_LOSS;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int fdl_flash_slot_write(fdl_flash *fl, unsigned tier, unsigned slot, uint64_t off, const void *data,
                         size_t len)
{
    char path[4096];
    if (!data || fdl_flash_slot_path(fl, tier, slot, path, sizeof path) != 0)
        return -1;
    int c = count_write(fl);
    if (c == FDL_FLASH_POWER_LOSS)
        return c;
    int rc = pwrite_file(path, off, data, c == 1 ? len / 2 : len, false);
    if (c == 1)
        return FDL_FLASH_POWER_LOSS;
    return rc == 0 ? 0 : -1;
}

void fdl_flash_set_power_cut(fdl_flash *fl, uint64_t k)
{
    if (fl)
        fl->cut_at = k;
}

uint64_t fdl_flash_writes(const fdl_flash *fl)
{
    return fl ? fl->writes : 0;
}

bool fdl_flash_power_lost(const fdl_flash *fl)
{
    return fl && fl->lost;
}

void fdl_flash_power_on(fdl_flash *fl)
{
    if (fl)
        fl->lost = false;
}
