/*
 * devices/fwflash.h — one device's flash: image slots per tier, the boot-control
 * record, and the write counter that lets a test cut the power at any write.
 *
 * Layout in the device's firmware directory:
 *   bootctl            the boot-control record, two copies of FDL_BOOTCTL_COPY_LEN
 *                      bytes (copy 0 at offset 0, copy 1 right after), each with a
 *                      sequence number and a CRC-32. A commit writes the new record
 *                      over the copy that does not hold the current one, so a write
 *                      torn by a power cut spoils at most that copy: the reader takes
 *                      the valid copy with the highest sequence number.
 *   <tier>-a.img, -b.img  the device's own slot contents (written by updates).
 * A slot may instead refer to a shared factory image by content (src
 * FDL_SLOT_FACTORY, found by its SHA-256 in the factory directory; that file is
 * read only and is never written through this module).
 *
 * Every write that changes flash (a commit, a slot erase, a slot write) and every
 * other non-volatile write the firmware makes (fuses: fdl_flash_nv_write) goes
 * through one counter. fdl_flash_set_power_cut(k) makes write number k "lose
 * power": that write is torn (half of it reaches the file), it returns
 * FDL_FLASH_POWER_LOSS, and every later write returns FDL_FLASH_POWER_LOSS and
 * writes nothing until fdl_flash_power_on (the reboot). What the device then
 * finds is exactly what is on disk: fdl_flash_reload re-reads it.
 *
 * Durability: writes are pwrite(2) without fsync. The simulator models the power
 * of the virtual device, not of the host; a host crash may lose device flash
 * writes, which the two-copy record and verified boot tolerate like any other
 * torn write. Files are opened per operation: 10,000 devices hold no descriptors.
 *
 * Not thread-safe; one fdl_flash per device.
 */
#ifndef FDL_FWFLASH_H
#define FDL_FWFLASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FDL_FLASH_POWER_LOSS (-2)
#define FDL_FLASH_TIERS 7               /* indexed by fdl_fw_tier; 1 .. 6 used */
#define FDL_BOOTCTL_MAGIC "FDBC"
#define FDL_BOOTCTL_VERSION 1
#define FDL_BOOTCTL_COPY_LEN 1024
#define FDL_BOOTCTL_JOB_MAX 64          /* job id with its NUL */

typedef enum fdl_slot_src {
    FDL_SLOT_EMPTY = 0,     /* nothing bootable */
    FDL_SLOT_FACTORY = 1,   /* the shared factory image with this SHA-256 */
    FDL_SLOT_OWN = 2,       /* the device's own slot file */
} fdl_slot_src;

typedef enum fdl_tier_state {
    FDL_TS_ABSENT = 0,      /* the device has no image of this tier */
    FDL_TS_GOOD = 1,        /* runs the confirmed slot `active` */
    FDL_TS_PENDING = 2,     /* the other slot holds a new image; the next boot tries it */
    FDL_TS_TRIAL = 3,       /* the other slot runs in trial until deadline_ms */
} fdl_tier_state;

typedef struct fdl_bootctl_slot {
    uint8_t src;            /* fdl_slot_src */
    uint8_t rejected;       /* its trial was reverted: not booted again until rewritten */
    uint32_t size;          /* whole image bytes */
    uint8_t sha256[32];     /* of the whole image (a factory image's name) */
} fdl_bootctl_slot;

typedef struct fdl_bootctl_tier {
    uint8_t state;          /* fdl_tier_state */
    uint8_t active;         /* the confirmed slot, 0 = A, 1 = B; the trial slot is the other */
    uint8_t trial_boots;    /* boots of the trial slot so far */
    uint64_t trial_ms;      /* virtual ms a trial has to confirm, from its first boot */
    uint64_t deadline_ms;   /* FDL_TS_TRIAL: virtual time by which it must confirm */
    fdl_bootctl_slot slot[2];
} fdl_bootctl_tier;

typedef struct fdl_bootctl {
    uint64_t seq;           /* written by fdl_flash_commit */
    uint64_t job_seq;       /* the highest job-document seq accepted (replay protection) */
    char job[FDL_BOOTCTL_JOB_MAX];  /* the job whose image is pending or in trial, "" if none */
    fdl_bootctl_tier tier[FDL_FLASH_TIERS];
} fdl_bootctl;

/* Serialises a record (seq included) into one copy; decodes and validates one
 * (magic, version, CRC, every field in range). 0 or -1. */
void fdl_bootctl_encode(const fdl_bootctl *bc, uint8_t out[FDL_BOOTCTL_COPY_LEN]);
int fdl_bootctl_decode(const uint8_t in[FDL_BOOTCTL_COPY_LEN], fdl_bootctl *out);

/* IEEE 802.3 CRC-32 (the polynomial of zlib and Ethernet). */
uint32_t fdl_crc32(const void *data, size_t len);

typedef struct fdl_flash fdl_flash;

/* Writes the boot-control record (both copies, seq 1) into dir, which must
 * exist. Not counted: the factory does it. 0 or -1 with err. */
int fdl_flash_create(const char *dir, const fdl_bootctl *bc, char *err, size_t errcap);
/* Opens dir's flash (dir copied) and reads the record: -1 with err if no copy
 * is valid. *out freed with fdl_flash_free. */
int fdl_flash_open(const char *dir, fdl_flash **out, char *err, size_t errcap);
void fdl_flash_free(fdl_flash *fl);
/* Re-reads the record from disk (what a rebooting device finds). 0 or -1. */
int fdl_flash_reload(fdl_flash *fl);
/* The current record (valid until the next commit or reload). */
const fdl_bootctl *fdl_flash_bootctl(const fdl_flash *fl);
/* Which copy holds the current record (0 or 1), for tests. */
unsigned fdl_flash_current_copy(const fdl_flash *fl);

/* Replaces the record with next (its seq is set to the current one + 1) by
 * writing the other copy. 0, -1, or FDL_FLASH_POWER_LOSS (the record stays the
 * previous one, on disk and here). Counted. */
int fdl_flash_commit(fdl_flash *fl, const fdl_bootctl *next);
/* Erases the own file of tier's slot (length 0). Counted. 0, -1, POWER_LOSS. */
int fdl_flash_slot_erase(fdl_flash *fl, unsigned tier, unsigned slot);
/* Writes data at off of the own file. Counted. 0, -1, POWER_LOSS. */
int fdl_flash_slot_write(fdl_flash *fl, unsigned tier, unsigned slot, uint64_t off, const void *data,
                         size_t len);
/* Path of the own file of tier's slot. 0, or -1 if it does not fit or out of range. */
int fdl_flash_slot_path(const fdl_flash *fl, unsigned tier, unsigned slot, char *buf, size_t cap);
/* A non-volatile write outside flash (fuse programming) passes the counter
 * first: 0 to go ahead, FDL_FLASH_POWER_LOSS if the power is cut now (write
 * nothing). */
int fdl_flash_nv_write(fdl_flash *fl);

/* Tests: cut the power at counted write k (0 = never; one shot). */
void fdl_flash_set_power_cut(fdl_flash *fl, uint64_t k);
/* Counted writes so far (including the one that was cut). */
uint64_t fdl_flash_writes(const fdl_flash *fl);
bool fdl_flash_power_lost(const fdl_flash *fl);
/* The power is back (the device reboots): writes work again. */
void fdl_flash_power_on(fdl_flash *fl);

#endif
