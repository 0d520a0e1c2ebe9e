/*
 * devices/efuse.h — one device's eFuses: one-time-programmable bits, persisted.
 *
 * An eFuse bit starts at 0 and can be blown to 1, never back. Everything here
 * follows from that one rule, enforced by the one primitive that writes the
 * bank (fdl_efuse_program): a write that would clear a blown bit is refused,
 * and nothing else can change a bit. On top of it:
 *
 *   root-key hash   FDL_EFUSE_ROOT_SLOTS slots of 256 bits: SHA-256 of a root
 *                   firmware key's 65-byte point. A slot is programmed once; a
 *                   second programming is refused even with the same value.
 *   root revoke     one bit per slot: a revoked slot no longer verifies anything.
 *   secure boot     blown: the boot ROM verifies the bootloader (devices/firmware.h).
 *   debug disabled  blown: the debug port is closed (the key-extraction probe
 *                   cannot read flash).
 *   hw revision     32 bits, programmed once at the factory (0 = not programmed).
 *   floors          per tier (bootloader .. keyring), the anti-rollback floor as
 *                   a thermometer code of FDL_EFUSE_FLOOR_MAX bits: floor n is
 *                   bits 0 .. n-1 blown. Raising the floor blows bits; lowering
 *                   it would clear them, so a floor only rises. An image whose
 *                   security counter is above FDL_EFUSE_FLOOR_MAX could never
 *                   raise the floor to its own counter, so the device refuses it.
 *
 * File (<dir>/efuse): magic "FDEF", u32 format version, the bank
 * (FDL_EFUSE_BANK_LEN bytes), SHA-256 of everything before it. Programming
 * replaces the file atomically (sim/fsutil.h), so a crash leaves the old bank
 * or the new one. A file that is missing, short, long, with a wrong checksum
 * or a bank no programming sequence can produce (a floor thermometer with a
 * hole, reserved bits set) is refused as FDL_EFUSE_ERR_CORRUPT: a device whose
 * fuses cannot be read does not boot, it is never "reset" to blank fuses
 * (that would erase the root-key hash and the floors).
 *
 * What the model cannot stop: someone who rewrites the file with a correct
 * checksum has replaced the chip. That is outside the device's threat model.
 *
 * Not thread-safe; one fdl_efuse per device.
 */
#ifndef FDL_EFUSE_H
#define FDL_EFUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FDL_EFUSE_MAGIC "FDEF"
#define FDL_EFUSE_VERSION 1
#define FDL_EFUSE_ROOT_SLOTS 3
/* Highest anti-rollback floor a tier can reach: bits per tier. Security counters
 * count security fixes, not releases, so 255 lasts a device's life. */
#define FDL_EFUSE_FLOOR_MAX 255
#define FDL_EFUSE_FLOOR_TIERS 7   /* indexed by fdl_fw_tier; 1 .. 6 used */

/* Byte offsets of the fields in the bank. */
#define FDL_EFUSE_OFF_ROOT 0                                    /* 3 x 32 bytes */
#define FDL_EFUSE_OFF_REVOKE (FDL_EFUSE_OFF_ROOT + 32 * FDL_EFUSE_ROOT_SLOTS) /* 1 byte */
#define FDL_EFUSE_OFF_FLAGS (FDL_EFUSE_OFF_REVOKE + 1)           /* 1 byte */
#define FDL_EFUSE_OFF_HWREV (FDL_EFUSE_OFF_FLAGS + 1)            /* 4 bytes, big-endian */
#define FDL_EFUSE_OFF_FLOOR (FDL_EFUSE_OFF_HWREV + 4)            /* 32 bytes per tier 1..6 */
#define FDL_EFUSE_FLOOR_BYTES 32
#define FDL_EFUSE_BANK_LEN (FDL_EFUSE_OFF_FLOOR + FDL_EFUSE_FLOOR_BYTES * (FDL_EFUSE_FLOOR_TIERS - 1))
#define FDL_EFUSE_FILE_LEN (8 + FDL_EFUSE_BANK_LEN + 32)

/* Bits of the flags byte. */
#define FDL_EFUSE_SECURE_BOOT 0x01u
#define FDL_EFUSE_DEBUG_DISABLED 0x02u

typedef enum fdl_efuse_status {
    FDL_EFUSE_OK = 0,
    FDL_EFUSE_ERR_ARG,
    FDL_EFUSE_ERR_ABSENT,      /* no fuse file */
    FDL_EFUSE_ERR_EXISTS,      /* create: the file exists already */
    FDL_EFUSE_ERR_CORRUPT,     /* unreadable bank: refused, never reset */
    FDL_EFUSE_ERR_IO,
    FDL_EFUSE_ERR_NOMEM,
    FDL_EFUSE_ERR_CLEAR,       /* the write would clear a blown bit */
    FDL_EFUSE_ERR_PROGRAMMED,  /* write-once field already programmed */
    FDL_EFUSE_ERR_LOWER,       /* a floor below the fused one */
    FDL_EFUSE_ERR_RANGE,       /* a floor above FDL_EFUSE_FLOOR_MAX, a tier or slot out of range */
} fdl_efuse_status;

/* Static string, never NULL. */
const char *fdl_efuse_strerror(fdl_efuse_status st);

typedef struct fdl_efuse fdl_efuse;

/* What the factory programs into blank fuses, all at once. */
typedef struct fdl_efuse_factory {
    uint8_t root_hash[32];      /* slot 0; all zero = left blank */
    bool secure_boot;
    bool debug_disabled;
    uint32_t hw_rev;            /* 0 = left blank */
    uint32_t floor[FDL_EFUSE_FLOOR_TIERS];  /* per tier (index 1 .. 6), <= FDL_EFUSE_FLOOR_MAX */
} fdl_efuse_factory;

/* Creates path with a bank programmed as f (NULL = blank) and opens it.
 * FDL_EFUSE_ERR_EXISTS if path exists, ERR_RANGE for a floor over the maximum.
 * *out freed with fdl_efuse_free. */
fdl_efuse_status fdl_efuse_create(const char *path, const fdl_efuse_factory *f, fdl_efuse **out);
/* Opens an existing fuse file (path copied). */
fdl_efuse_status fdl_efuse_open(const char *path, fdl_efuse **out);
void fdl_efuse_free(fdl_efuse *e);

/*
 * The one write primitive: blows bits of bank bytes [off, off + len) so they
 * read as val. FDL_EFUSE_ERR_CLEAR (nothing written) if val has a 0 where a bit
 * is blown. Writing the bits that are already there is OK and writes nothing.
 * Persists before it returns; on an I/O error the bank is unchanged.
 */
fdl_efuse_status fdl_efuse_program(fdl_efuse *e, size_t off, const uint8_t *val, size_t len);

/* Programs root-key hash slot (0 .. FDL_EFUSE_ROOT_SLOTS-1). Refused with
 * FDL_EFUSE_ERR_PROGRAMMED if any bit of the slot is blown; an all-zero hash is ARG. */
fdl_efuse_status fdl_efuse_program_root(fdl_efuse *e, unsigned slot, const uint8_t hash[32]);
/* Blows the slot's revoke bit (idempotent). */
fdl_efuse_status fdl_efuse_revoke_root(fdl_efuse *e, unsigned slot);
/* Blows FDL_EFUSE_SECURE_BOOT and/or FDL_EFUSE_DEBUG_DISABLED (idempotent). */
fdl_efuse_status fdl_efuse_blow_flags(fdl_efuse *e, unsigned flags);
/* Programs the hardware revision once (ERR_PROGRAMMED after; 0 is ARG). */
fdl_efuse_status fdl_efuse_program_hw_rev(fdl_efuse *e, uint32_t rev);
/* Raises tier's floor to floor: equal is OK (no write), below is ERR_LOWER,
 * above FDL_EFUSE_FLOOR_MAX is ERR_RANGE. */
fdl_efuse_status fdl_efuse_raise_floor(fdl_efuse *e, unsigned tier, uint32_t floor);

/* Reads. */
bool fdl_efuse_root_programmed(const fdl_efuse *e, unsigned slot);
bool fdl_efuse_root_revoked(const fdl_efuse *e, unsigned slot);
/* Copies slot's hash; false if the slot is blank. */
bool fdl_efuse_root_hash(const fdl_efuse *e, unsigned slot, uint8_t out[32]);
/* The programmed, unrevoked slot holding hash (compared in constant time), or -1. */
int fdl_efuse_root_trusted(const fdl_efuse *e, const uint8_t hash[32]);
bool fdl_efuse_secure_boot(const fdl_efuse *e);
bool fdl_efuse_debug_disabled(const fdl_efuse *e);
uint32_t fdl_efuse_hw_rev(const fdl_efuse *e);
/* Tier's floor (0 for a tier out of range). */
uint32_t fdl_efuse_floor(const fdl_efuse *e, unsigned tier);
/* The raw bank (FDL_EFUSE_BANK_LEN bytes), for inspection. */
const uint8_t *fdl_efuse_bank(const fdl_efuse *e);

#endif
