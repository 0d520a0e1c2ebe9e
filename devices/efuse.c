/* devices/efuse.c — one-time-programmable fuse bank, persisted (see efuse.h). */
#include "devices/efuse.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "sim/alloc.h"
#include "sim/fsutil.h"

struct fdl_efuse {
    char *path;
    uint8_t bank[FDL_EFUSE_BANK_LEN];
};

const char *fdl_efuse_strerror(fdl_efuse_status st)
{
    switch (st) {
    case FDL_EFUSE_OK: return "ok";
    case FDL_EFUSE_ERR_ARG: return "invalid argument";
    case FDL_EFUSE_ERR_ABSENT: return "no fuse file";
    case FDL_EFUSE_ERR_EXISTS: return "fuse file exists already";
    case FDL_EFUSE_ERR_CORRUPT: return "fuse bank unreadable (corrupt)";
    case FDL_EFUSE_ERR_IO: return "fuse file I/O error";
    case FDL_EFUSE_ERR_NOMEM: return "out of memory";
    case FDL_EFUSE_ERR_CLEAR: return "a blown fuse bit cannot be cleared";
    case FDL_EFUSE_ERR_PROGRAMMED: return "write-once fuse already programmed";
    case FDL_EFUSE_ERR_LOWER: return "an anti-rollback floor only rises";
    case FDL_EFUSE_ERR_RANGE: return "fuse value or index out of range";
    }
    return "unknown fuse status";
}

/* ---- the file -------------------------------------------------------------- */

static void ef_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t ef_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void encode(const uint8_t bank[FDL_EFUSE_BANK_LEN], uint8_t out[FDL_EFUSE_FILE_LEN])
{
    memcpy(out, FDL_EFUSE_MAGIC, 4);
    ef_put32(out + 4, FDL_EFUSE_VERSION);
    memcpy(out + 8, bank, FDL_EFUSE_BANK_LEN);
    mbedtls_sha256(out, 8 + FDL_EFUSE_BANK_LEN, out + 8 + FDL_EFUSE_BANK_LEN, 0);
}

/* Floor of one tier from its thermometer bytes, or -1 if the code has a hole
 * (no sequence of raises produces one). */
static int thermometer_value(const uint8_t *t)
{
    int n = 0;
    size_t i = 0;
    for (; i < FDL_EFUSE_FLOOR_BYTES && t[i] == 0xff; i++)
        n += 8;
    if (i < FDL_EFUSE_FLOOR_BYTES) {
        uint8_t b = t[i];
        /* A partial byte must be 0b0..01..1 (low bits first). */
        if ((b & (uint8_t)(b + 1)) != 0)
            return -1;
        while (b) {
            n++;
            b >>= 1;
        }
        for (i++; i < FDL_EFUSE_FLOOR_BYTES; i++)
            if (t[i])
                return -1;
    }
    return n > FDL_EFUSE_FLOOR_MAX ? -1 : n;
}

/* Whether bank is one that programming can produce. */
static bool bank_valid(const uint8_t *bank)
{
    if (bank[FDL_EFUSE_OFF_REVOKE] & (uint8_t)~((1u << FDL_EFUSE_ROOT_SLOTS) - 1u))
        return false;
    if (bank[FDL_EFUSE_OFF_FLAGS] & (uint8_t)~(FDL_EFUSE_SECURE_BOOT | FDL_EFUSE_DEBUG_DISABLED))
        return false;
    for (unsigned t = 1; t < FDL_EFUSE_FLOOR_TIERS; t++)
        if (thermometer_value(bank + FDL_EFUSE_OFF_FLOOR + (t - 1) * FDL_EFUSE_FLOOR_BYTES) < 0)
            return false;
    return true;
}

static fdl_efuse_status decode(const uint8_t *buf, size_t len, uint8_t bank[FDL_EFUSE_BANK_LEN])
{
    uint8_t sum[32];
    if (len != FDL_EFUSE_FILE_LEN || memcmp(buf, FDL_EFUSE_MAGIC, 4) != 0 || ef_get32(buf + 4) != FDL_EFUSE_VERSION)
        return FDL_EFUSE_ERR_CORRUPT;
    mbedtls_sha256(buf, 8 + FDL_EFUSE_BANK_LEN, sum, 0);
    if (memcmp(sum, buf + 8 + FDL_EFUSE_BANK_LEN, 32) != 0)
        return FDL_EFUSE_ERR_CORRUPT;
    if (!bank_valid(buf + 8))
        return FDL_EFUSE_ERR_CORRUPT;
    memcpy(bank, buf + 8, FDL_EFUSE_BANK_LEN);
    return FDL_EFUSE_OK;
}

static fdl_efuse_status save(const char *path, const uint8_t bank[FDL_EFUSE_BANK_LEN])
{
    uint8_t file[FDL_EFUSE_FILE_LEN];
    encode(bank, file);
    return fdl_write_file_atomic(path, file, sizeof file, 0600) == 0 ? FDL_EFUSE_OK : FDL_EFUSE_ERR_IO;
}

static fdl_efuse *alloc_efuse(const char *path)
{
    fdl_efuse *e = fdl_calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->path = fdl_strdup(path);
    if (!e->path) {
        fdl_free(e);
        return NULL;
    }
    return e;
}

fdl_efuse_status fdl_efuse_create(const char *path, const fdl_efuse_factory *f, fdl_efuse **out)
{
    struct stat sb;
    if (!path || !out)
        return FDL_EFUSE_ERR_ARG;
    *out = NULL;
    if (lstat(path, &sb) == 0)
        return FDL_EFUSE_ERR_EXISTS;
    fdl_efuse *e = alloc_efuse(path);
    if (!e)
        return FDL_EFUSE_ERR_NOMEM;
    if (f) {
        memcpy(e->bank + FDL_EFUSE_OFF_ROOT, f->root_hash, 32);
        e->bank[FDL_EFUSE_OFF_FLAGS] = (uint8_t)((f->secure_boot ? FDL_EFUSE_SECURE_BOOT : 0) |
                                                  (f->debug_disabled ? FDL_EFUSE_DEBUG_DISABLED : 0));
        ef_put32(e->bank + FDL_EFUSE_OFF_HWREV, f->hw_rev);
        for (unsigned t = 1; t < FDL_EFUSE_FLOOR_TIERS; t++) {
            if (f->floor[t] > FDL_EFUSE_FLOOR_MAX) {
                fdl_efuse_free(e);
                return FDL_EFUSE_ERR_RANGE;
            }
            uint8_t *th = e->bank + FDL_EFUSE_OFF_FLOOR + (t - 1) * FDL_EFUSE_FLOOR_BYTES;
            for (uint32_t i = 0; i < f->floor[t]; i++)
                th[i / 8] |= (uint8_t)(1u << (i % 8));
        }
    }
    /* A new file, created exclusively and made durable before it is used: a
     * replace-by-rename is only needed once a bank exists to be replaced. */
    uint8_t file[FDL_EFUSE_FILE_LEN];
    encode(e->bank, file);
    fdl_efuse_status st = FDL_EFUSE_ERR_IO;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        st = errno == EEXIST ? FDL_EFUSE_ERR_EXISTS : FDL_EFUSE_ERR_IO;
    } else {
        ssize_t w = write(fd, file, sizeof file);
        if (w == (ssize_t)sizeof file && fsync(fd) == 0)
            st = FDL_EFUSE_OK;
        if (close(fd) != 0)
            st = FDL_EFUSE_ERR_IO;
        if (st != FDL_EFUSE_OK)
            unlink(path);
    }
    if (st != FDL_EFUSE_OK) {
        fdl_efuse_free(e);
        return st;
    }
    *out = e;
    return FDL_EFUSE_OK;
}

fdl_efuse_status fdl_efuse_open(const char *path, fdl_efuse **out)
{
    uint8_t buf[FDL_EFUSE_FILE_LEN + 1];
    fdl_efuse_status st = FDL_EFUSE_ERR_IO;
    size_t got = 0;
    if (!path || !out)
        return FDL_EFUSE_ERR_ARG;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? FDL_EFUSE_ERR_ABSENT : FDL_EFUSE_ERR_IO;
    /* One byte more than a bank file holds: a longer file is corrupt, not truncated. */
    while (got < sizeof buf) {
        ssize_t r = read(fd, buf + got, sizeof buf - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto cleanup;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    fdl_efuse *e = alloc_efuse(path);
    if (!e) {
        st = FDL_EFUSE_ERR_NOMEM;
        goto cleanup;
    }
    st = decode(buf, got, e->bank);
    if (st != FDL_EFUSE_OK) {
        fdl_efuse_free(e);
        goto cleanup;
    }
    *out = e;
cleanup:
    close(fd);
    return st;
}

void fdl_efuse_free(fdl_efuse *e)
{
    if (!e)
        return;
    fdl_free(e->path);
    fdl_free(e);
}

/* ---- programming ------------------------------------------------------------ */

fdl_efuse_status fdl_efuse_program(fdl_efuse *e, size_t off, const uint8_t *val, size_t len)
{
    uint8_t next[FDL_EFUSE_BANK_LEN];
    bool change = false;
    if (!e || !val || off > FDL_EFUSE_BANK_LEN || len > FDL_EFUSE_BANK_LEN - off)
        return FDL_EFUSE_ERR_ARG;
    memcpy(next, e->bank, sizeof next);
    for (size_t i = 0; i < len; i++) {
        uint8_t have = e->bank[off + i];
        if ((have & (uint8_t)~val[i]) != 0)
            return FDL_EFUSE_ERR_CLEAR;
        change |= val[i] != have;
        next[off + i] = val[i];
    }
    if (!change)
        return FDL_EFUSE_OK;
    /* The bank must stay one that programming can produce (floors without holes,
     * no reserved bits): the typed functions below never violate it, a raw
     * write that would is refused rather than persisted as corrupt. */
    if (!bank_valid(next))
        return FDL_EFUSE_ERR_RANGE;
    fdl_efuse_status st = save(e->path, next);
    if (st == FDL_EFUSE_OK)
        memcpy(e->bank, next, sizeof next);
    return st;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

fdl_efuse_status fdl_efuse_program_root(fdl_efuse *e, unsigned slot, const uint8_t hash[32])
{
    if (!e || !hash || all_zero(hash, 32))
        return FDL_EFUSE_ERR_ARG;
    if (slot >= FDL_EFUSE_ROOT_SLOTS)
        return FDL_EFUSE_ERR_RANGE;
    if (fdl_efuse_root_programmed(e, slot))
        return FDL_EFUSE_ERR_PROGRAMMED;
    return fdl_efuse_program(e, FDL_EFUSE_OFF_ROOT + 32 * slot, hash, 32);
}

fdl_efuse_status fdl_efuse_revoke_root(fdl_efuse *e, unsigned slot)
{
    if (!e)
        return FDL_EFUSE_ERR_ARG;
    if (slot >= FDL_EFUSE_ROOT_SLOTS)
        return FDL_EFUSE_ERR_RANGE;
    uint8_t v = e->bank[FDL_EFUSE_OFF_REVOKE] | (uint8_t)(1u << slot);
    return fdl_efuse_program(e, FDL_EFUSE_OFF_REVOKE, &v, 1);
}

fdl_efuse_status fdl_efuse_blow_flags(fdl_efuse *e, unsigned flags)
{
    if (!e || (flags & ~(FDL_EFUSE_SECURE_BOOT | FDL_EFUSE_DEBUG_DISABLED)))
        return FDL_EFUSE_ERR_ARG;
    uint8_t v = e->bank[FDL_EFUSE_OFF_FLAGS] | (uint8_t)flags;
    return fdl_efuse_program(e, FDL_EFUSE_OFF_FLAGS, &v, 1);
}

fdl_efuse_status fdl_efuse_program_hw_rev(fdl_efuse *e, uint32_t rev)
{
    uint8_t v[4];
    if (!e || rev == 0)
        return FDL_EFUSE_ERR_ARG;
    if (fdl_efuse_hw_rev(e) != 0)
        return FDL_EFUSE_ERR_PROGRAMMED;
    ef_put32(v, rev);
    return fdl_efuse_program(e, FDL_EFUSE_OFF_HWREV, v, 4);
}

fdl_efuse_status fdl_efuse_raise_floor(fdl_efuse *e, unsigned tier, uint32_t floor)
{
    uint8_t t[FDL_EFUSE_FLOOR_BYTES] = {0};
    if (!e)
        return FDL_EFUSE_ERR_ARG;
    if (tier == 0 || tier >= FDL_EFUSE_FLOOR_TIERS || floor > FDL_EFUSE_FLOOR_MAX)
        return FDL_EFUSE_ERR_RANGE;
    uint32_t have = fdl_efuse_floor(e, tier);
    if (floor < have)
        return FDL_EFUSE_ERR_LOWER;
    if (floor == have)
        return FDL_EFUSE_OK;
    for (uint32_t i = 0; i < floor; i++)
        t[i / 8] |= (uint8_t)(1u << (i % 8));
    return fdl_efuse_program(e, FDL_EFUSE_OFF_FLOOR + (tier - 1) * FDL_EFUSE_FLOOR_BYTES, t, sizeof t);
}

/* ---- reads -------------------------------------------------------------------- */

bool fdl_efuse_root_programmed(const fdl_efuse *e, unsigned slot)
{
    return e && slot < FDL_EFUSE_ROOT_SLOTS && !all_zero(e->bank + FDL_EFUSE_OFF_ROOT + 32 * slot, 32);
}

bool fdl_efuse_root_revoked(const fdl_efuse *e, unsigned slot)
{
    return e && slot < FDL_EFUSE_ROOT_SLOTS && (e->bank[FDL_EFUSE_OFF_REVOKE] >> slot & 1u);
}

bool fdl_efuse_root_hash(const fdl_efuse *e, unsigned slot, uint8_t out[32])
{
    if (!fdl_efuse_root_programmed(e, slot))
        return false;
    memcpy(out, e->bank + FDL_EFUSE_OFF_ROOT + 32 * slot, 32);
    return true;
}

int fdl_efuse_root_trusted(const fdl_efuse *e, const uint8_t hash[32])
{
    int found = -1;
    if (!e || !hash)
        return -1;
    for (unsigned s = 0; s < FDL_EFUSE_ROOT_SLOTS; s++) {
        const uint8_t *h = e->bank + FDL_EFUSE_OFF_ROOT + 32 * s;
        uint8_t diff = 0;
        for (size_t i = 0; i < 32; i++)
            diff |= h[i] ^ hash[i];
        if (diff == 0 && found < 0 && fdl_efuse_root_programmed(e, s) && !fdl_efuse_root_revoked(e, s))
            found = (int)s;
    }
    return found;
}

bool fdl_efuse_secure_boot(const fdl_efuse *e)
{
    return e && (e->bank[FDL_EFUSE_OFF_FLAGS] & FDL_EFUSE_SECURE_BOOT);
}

bool fdl_efuse_debug_disabled(const fdl_efuse *e)
{
    return e && (e->bank[FDL_EFUSE_OFF_FLAGS] & FDL_EFUSE_DEBUG_DISABLED);
}

uint32_t fdl_efuse_hw_rev(const fdl_efuse *e)
{
    return e ? ef_get32(e->bank + FDL_EFUSE_OFF_HWREV) : 0;
}

uint32_t fdl_efuse_floor(const fdl_efuse *e, unsigned tier)
{
    if (!e || tier == 0 || tier >= FDL_EFUSE_FLOOR_TIERS)
        return 0;
    int v = thermometer_value(e->bank + FDL_EFUSE_OFF_FLOOR + (tier - 1) * FDL_EFUSE_FLOOR_BYTES);
    return v < 0 ? 0 : (uint32_t)v;
}

const uint8_t *fdl_efuse_bank(const fdl_efuse *e)
{
    return e ? e->bank : NULL;
}
