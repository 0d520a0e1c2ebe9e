/*
 * sim/bootaudit.h — the harness's own check that no device ever ran an image
 * that failed a check, from the devices' boot records.
 *
 * Every boot appends one JSON line to <state>/devices/<id>/fw/boots.jsonl
 * (devices/firmware.h): which image of each tier ran, from which slot, whether
 * it verified. The audit reads them back and, for every image that ran, checks
 * independently of the device code:
 *   - the record says it verified;
 *   - the image is one the harness can find (the factory images by content,
 *     every file of the artifact store) and it verifies here too: header, payload
 *     hash, signature by the root key (bootloader, keyring) or by a key that a
 *     root-signed keyring the harness knows (the factory's, any released since)
 *     lists for the image's own tier (every other tier), hardware revision;
 *   - its security counter is not below that of an image the same device ran
 *     earlier out of trial in the same tier (a confirmed image raised the floor:
 *     going below it is a rollback).
 * Each failure is a violation naming the device, the boot and the tier.
 */
#ifndef FDL_BOOTAUDIT_H
#define FDL_BOOTAUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sim/fwenv.h"
#include "sim/identity.h"

/* Largest boots.jsonl read, in bytes (a device booting a million times is not a drill). */
#define FDL_BOOTAUDIT_FILE_MAX (16u << 20)

typedef struct fdl_bootaudit {
    uint32_t devices;             /* devices looked at */
    uint32_t with_records;        /* of which have boot records */
    uint64_t boots, images_ran;
    uint64_t recovery_boots, reverted_boots, trial_boots;
    uint64_t known_images;        /* images the harness verified itself (factory + artifacts) */
    uint64_t violations;
    char first_violation[320];
} fdl_bootaudit;

/*
 * Audits devices first .. first+n-1 (their fleet indices). fw gives the
 * factory's keys and the image directories. 0 (out filled, violations may be
 * non-zero), or -1 with err (the known images could not be read).
 */
int fdl_bootaudit_run(const fdl_state *st, const fdl_fwenv *fw, uint32_t first, uint32_t n, fdl_bootaudit *out,
                      char *err, size_t errcap);

/* One device's boots after boot number `after`, about one image. */
typedef struct fdl_boot_history {
    uint64_t boots;               /* boots recorded in all */
    uint64_t last_boot;           /* the last boot's number (0 = none) */
    bool ran;                     /* sha ran (in any tier) in a boot after `after` */
    bool runs;                    /* ... and in the last boot */
    bool reverted;                /* a boot after `after` reverted a trial */
    bool unverified;              /* a boot after `after` ran an image that did not verify */
    char last_outcome[16];
    char last_app_version[16];
    char last_why[160];           /* the last non-empty revert/recovery reason after `after` */
} fdl_boot_history;

/* Reads device id's records. sha may be NULL (then ran/runs stay false). 0, or -1
 * if its records cannot be read (none is not an error: boots 0). */
int fdl_boot_history_get(const fdl_state *st, const char *id, const uint8_t *sha, uint64_t after,
                         fdl_boot_history *out);

#endif
