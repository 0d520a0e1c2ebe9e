/*
 * devices/firmware.h — one virtual device's firmware storage and boot: eFuses,
 * flash slots, the verified boot chain, trial boot and revert, recovery mode.
 *
 * Storage (persisted in the device's directory, <state>/devices/<id>/fw/):
 *   efuse        one-time-programmable bits (devices/efuse.h): root-key hash,
 *                secure-boot-enabled, debug-port-disabled, an anti-rollback
 *                floor per tier. A blown bit never clears; the key hash is
 *                programmed once.
 *   flash        slots A and B for every tier, plus a boot-control record kept
 *                in two copies with a sequence number and CRC (a torn write of
 *                one copy leaves the other). Every write goes through one
 *                function that counts writes, so a test can cut the power at
 *                write k (FDL_FW_POWER_LOSS) and reboot.
 *   factory      slots may refer to a shared factory image by content
 *                (<state>/firmware/factory/<sha256>.img, read only), so 10,000
 *                devices do not each copy it; a written slot is the device's own.
 *   rootkeys     the root public key(s) (65-byte points) the boot ROM checks
 *                against the fused hashes: the image header names its signer by
 *                key id only, so the key itself is stored in flash, where it is
 *                worth nothing to an attacker (a key whose hash is not fused
 *                verifies nothing).
 *   boots.jsonl  the harness's record: one JSON line per boot (docs/firmware.md).
 *
 * Boot (fdl_fw_boot), each step refuses to run what it cannot verify:
 *   boot ROM     (this code, immutable) verifies the bootloader slot: the signer's
 *                key hash must equal a fused, unrevoked root-key hash (when
 *                secure boot is enabled), signature, payload hash, counter >= floor;
 *   bootloader   verifies the keyring (root-signed, counter >= floor), then the
 *                kernel and application slots with the keyring's keys for their
 *                tier; handles trial boot: a slot in trial that was not confirmed
 *                by its deadline (virtual time) or that failed to boot is reverted
 *                to the previous slot;
 *   application  verifies modules and config.
 * A failed check never runs the image: the bootloader falls back to the other
 * slot if it verifies, otherwise the device halts in recovery mode
 * (FDL_BOOT_RECOVERY: it does not start its application, it does not connect).
 * Every present tier must verify; bootloader, keyring and application must be
 * present. With the secure-boot fuse not blown, the boot ROM runs the bootloader
 * without checking it (recorded as not verified); the bootloader still checks
 * everything after it.
 *
 * Trial: a new image (written by fdl_fw_update_*) is "pending"; the next boot
 * verifies it and runs it in trial with a deadline of now + trial_ms. A trial
 * that is not confirmed by its deadline, that is booted FDL_FW_TRIAL_BOOTS
 * times without confirming, that fails its check or whose payload says it
 * crashes at start (behaviour=crash, a test image) is reverted: the slot is
 * marked rejected and the previous one runs. Confirming (the application phoned
 * home) makes it the slot that runs and only then raises the tier's fused floor
 * to its security counter.
 * Every boot is recorded (fdl_fw_boot_record): which image of each tier ran,
 * from which slot, and that it verified — the harness checks that no device ever
 * ran an image that failed a check.
 *
 * Not thread-safe; one fdl_fw per device, used on the device's loop thread.
 */
#ifndef FDL_FIRMWARE_H
#define FDL_FIRMWARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/fwimage.h"
#include "devices/keyring.h"

typedef struct fdl_fw fdl_fw;

/* Boots a trial image gets before it must have confirmed (a crash loop reverts). */
#define FDL_FW_TRIAL_BOOTS 3
/* Trial window when the caller passes 0: virtual ms. */
#define FDL_FW_TRIAL_MS_DEFAULT (10u * 60u * 1000u)

/* What a test image's payload says it does (its manifest, docs/firmware.md). */
typedef enum fdl_fw_behaviour {
    FDL_BEHAVE_OK = 0,         /* boots and phones home */
    FDL_BEHAVE_NO_CONFIRM,     /* boots but never confirms (the OTA agent does not confirm it) */
    FDL_BEHAVE_CRASH,          /* crashes at start: a trial of it is reverted at once */
} fdl_fw_behaviour;

typedef enum fdl_boot_outcome {
    FDL_BOOT_OK = 0,        /* the application runs */
    FDL_BOOT_TRIAL,         /* the application runs a new image in trial: it must confirm */
    FDL_BOOT_RECOVERY,      /* halted in recovery mode: nothing verified to run */
    FDL_BOOT_POWER_LOSS,    /* (tests) the power was cut during a boot-time flash write */
} fdl_boot_outcome;

const char *fdl_boot_outcome_name(fdl_boot_outcome o);

/* What one boot ran, tier by tier. */
typedef struct fdl_boot_record {
    uint64_t boot_no;           /* 1, 2, ... for this device, persisted */
    uint64_t at_ms;             /* virtual time */
    fdl_boot_outcome outcome;
    struct {
        bool present;           /* the tier has an image on this device */
        bool ran;               /* it was started (only ever after it verified, see verified) */
        bool verified;          /* its checks ran and passed (false only for a bootloader
                                   run by a boot ROM whose secure-boot fuse is not blown) */
        uint8_t slot;           /* 0 = A, 1 = B */
        bool trial;
        uint32_t version, counter;
        uint8_t sha256[32];     /* of the whole image that ran */
        fdl_fw_status refused;  /* FDL_FW_OK, or why a slot of this tier was refused */
        int8_t refused_slot;    /* which (0, 1), -1 if none */
        fdl_fw_behaviour behaviour;
    } tier[FDL_TIER_COUNT];
    bool reverted;              /* this boot reverted a trial slot */
    char why[160];              /* recovery or revert reason, "" otherwise */
} fdl_boot_record;

/* What the factory puts on a new device (fdl_fw_open creates the storage with it). */
typedef struct fdl_fw_factory {
    const char *factory_dir;    /* <state>/firmware/factory: shared images by content
                                   (created if absent); NULL = each device keeps its own copy */
    /* the image for each tier (whole image bytes, borrowed); NULL = tier absent.
     * bootloader, keyring and application are required. */
    const uint8_t *image[FDL_TIER_COUNT];
    size_t image_len[FDL_TIER_COUNT];
    const uint8_t *root_pub;    /* the root key's 65-byte point (borrowed; required): stored in flash */
    uint8_t root_key_hash[32];  /* fused: SHA-256 of the root key's point; all zero = that of
                                   root_pub (another value makes a device that trusts another root) */
    bool secure_boot;           /* blow secure-boot-enabled */
    bool debug_disabled;        /* blow debug-port-disabled */
    uint32_t hw_rev;
    /* Set by fdl_fw_factory_prepare: the images validated and hashed once, so
     * creating each of 10,000 devices does not hash them again. */
    bool prepared;
    uint8_t sha256[FDL_TIER_COUNT][32];
    uint32_t counter[FDL_TIER_COUNT];
} fdl_fw_factory;

/*
 * Validates the factory's images (each parses whole, payload hash included,
 * is of its tier, has a counter the fuses can hold; bootloader, keyring and
 * application present; a root key) and records their hashes and counters in
 * f. Optional: fdl_fw_open does the same for an unprepared factory, per device.
 * Changing an image after this requires preparing again. 0, or -1 with err.
 */
int fdl_fw_factory_prepare(fdl_fw_factory *f, char *err, size_t errcap);

/*
 * Opens the firmware storage in dir (created with factory's images and fuses if
 * dir is absent or empty; factory may be NULL only if it exists). Creation is
 * atomic (a temporary directory renamed into place); the factory fuses the root
 * hash, the flags, the hardware revision and each tier's floor at its factory
 * image's counter. An existing storage whose fuses or boot-control record cannot
 * be read is refused (-1), never re-created. 0, or -1 with err.
 */
int fdl_fw_open(const char *dir, const fdl_fw_factory *factory, fdl_fw **out, char *err, size_t errcap);
void fdl_fw_free(fdl_fw *fw);

/* Boots (power on or reset) at virtual time now_ms. rec may be NULL. */
fdl_boot_outcome fdl_fw_boot(fdl_fw *fw, uint64_t now_ms, fdl_boot_record *rec);

/* The running application confirms its trial image (it phoned home): marks the
 * slot good, then raises the tier's fused floor to the image's counter.
 * 0, -1 (nothing in trial), or FDL_FW_POWER_LOSS. A power cut between the two
 * writes leaves a confirmed image above the floor: the next boot raises it. */
int fdl_fw_confirm(fdl_fw *fw, uint64_t now_ms);
/* true while a trial image runs unconfirmed; its deadline (virtual ms; may be NULL). */
bool fdl_fw_in_trial(const fdl_fw *fw, uint64_t *deadline_ms);
/* The tier running in trial (FDL_TIER_NONE if none). */
unsigned fdl_fw_trial_tier(const fdl_fw *fw);
/* The last boot ended in recovery mode (or there was no boot yet). */
bool fdl_fw_in_recovery(const fdl_fw *fw);
/* What the running image of tier says it does (FDL_BEHAVE_OK if not running). */
fdl_fw_behaviour fdl_fw_running_behaviour(const fdl_fw *fw, unsigned tier);

/*
 * The checks of a header that need no payload, exactly as the boot chain makes
 * them, for the OTA agent before it writes a byte: tier == want_tier, the signer
 * is trusted for that tier (root key via the fuses for bootloader and keyring,
 * the running keyring for the others), the signature verifies, the hardware
 * revision fits, the counter is >= the fused floor and <= FDL_EFUSE_FLOOR_MAX
 * (FDL_FW_ERR_ROLLBACK otherwise: the floor could never protect it).
 */
fdl_fw_status fdl_fw_check_header(fdl_fw *fw, const fdl_fw_hdr *h, unsigned want_tier);

/* The verified keyring the running bootloader loaded (NULL in recovery). */
const fdl_keyring *fdl_fw_keyring(const fdl_fw *fw);
uint32_t fdl_fw_hw_rev(const fdl_fw *fw);
/* The version and counter running for a tier (0 if absent). */
uint32_t fdl_fw_running_version(const fdl_fw *fw, unsigned tier);
uint32_t fdl_fw_floor(const fdl_fw *fw, unsigned tier);
/* The running application image's payload (test images carry their behaviour
 * in it: docs/firmware.md), or NULL. */
const uint8_t *fdl_fw_app_payload(const fdl_fw *fw, size_t *len);
/* The highest job seq the device accepted (persisted with the boot-control
 * record). set: 0, -1, or FDL_FW_POWER_LOSS (one write). */
uint64_t fdl_fw_job_seq(const fdl_fw *fw);
int fdl_fw_set_job_seq(fdl_fw *fw, uint64_t seq);
/* Whether the debug port is open (fuse not blown): the key-extraction probe's way in. */
bool fdl_fw_debug_open(const fdl_fw *fw);

/*
 * Writing an update, used by the OTA agent (devices/ota.h). begin takes the slot
 * that is not running for tier (a record commit marks it empty, then an erase:
 * two writes), write appends the image's bytes — header first, then payload —
 * (one flash write each), finish marks the slot "pending" in the boot-control
 * record so the next boot tries it in trial (with trial_ms to confirm, 0 =
 * FDL_FW_TRIAL_MS_DEFAULT). Until finish the running images and their record
 * are untouched. Each returns 0, -1 on error (refused: not booted, in recovery,
 * any tier pending or in trial, size out of range, more bytes than
 * size, finish before size bytes), or FDL_FW_POWER_LOSS when the test hook cut
 * the power: the device must then be rebooted (fdl_fw_boot) and nothing more
 * written. fdl_fw_update_set_job names the job that finish records (copied,
 * up to 63 bytes), so the agent can report on it after a reboot (fdl_fw_job).
 */
#define FDL_FW_POWER_LOSS (-2)
int fdl_fw_update_begin(fdl_fw *fw, unsigned tier, uint32_t size);
int fdl_fw_update_write(fdl_fw *fw, const uint8_t *data, size_t len);
void fdl_fw_update_set_job(fdl_fw *fw, const char *job);
int fdl_fw_update_finish(fdl_fw *fw, uint64_t trial_ms);
void fdl_fw_update_abort(fdl_fw *fw);
/* The job whose image is pending or in trial ("" if none). */
const char *fdl_fw_job(const fdl_fw *fw);

/* Tests: cut the power when the write counter reaches k (0 = never; one shot);
 * the number of writes so far (flash and fuses: devices/fwflash.h); whether the
 * power is off (a write was cut and fdl_fw_boot has not run since). */
void fdl_fw_set_power_cut(fdl_fw *fw, uint64_t k);
uint64_t fdl_fw_flash_writes(const fdl_fw *fw);
bool fdl_fw_power_lost(const fdl_fw *fw);

/*
 * Process-wide caches that keep a fleet's boot cheap, both sound by
 * construction: verified signatures keyed by SHA-256 over the whole (public
 * key, signed hash, signature) tuple (only successes are stored); factory
 * images (read only, not writable by anyone) keyed by path, device, inode,
 * size, mtime and ctime, with their parsed header and payload-hash result.
 * A device-written slot is always read and hashed again. Thread-safe.
 */
typedef struct fdl_fw_cache_stats {
    uint64_t sig_hits, sig_misses, img_hits, img_misses;
} fdl_fw_cache_stats;
void fdl_fw_cache_get_stats(fdl_fw_cache_stats *out);
/* Drops both caches (images in use stay alive until their devices release them). */
void fdl_fw_cache_clear(void);

#endif
