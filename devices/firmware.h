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
        bool ran;               /* it was started (only ever after it verified) */
        uint8_t slot;           /* 0 = A, 1 = B */
        bool trial;
        uint32_t version, counter;
        uint8_t sha256[32];     /* of the whole image that ran */
        fdl_fw_status refused;  /* FDL_FW_OK, or why the other slot / this one was refused */
    } tier[FDL_TIER_COUNT];
    bool reverted;              /* this boot reverted a trial slot */
    char why[160];              /* recovery or revert reason, "" otherwise */
} fdl_boot_record;

/* What the factory puts on a new device (fdl_fw_open creates the storage with it). */
typedef struct fdl_fw_factory {
    const char *factory_dir;    /* <state>/firmware/factory: shared images by content */
    /* the image for each tier (whole image bytes, borrowed); NULL = tier absent.
     * bootloader, keyring and application are required. */
    const uint8_t *image[FDL_TIER_COUNT];
    size_t image_len[FDL_TIER_COUNT];
    uint8_t root_key_hash[32];  /* SHA-256 of the root key's 65-byte point */
    bool secure_boot;           /* blow secure-boot-enabled */
    bool debug_disabled;        /* blow debug-port-disabled */
    uint32_t hw_rev;
} fdl_fw_factory;

/*
 * Opens the firmware storage in dir (created with factory's images and fuses if
 * absent; factory may be NULL only if it exists). 0, or -1 with err.
 */
int fdl_fw_open(const char *dir, const fdl_fw_factory *factory, fdl_fw **out, char *err, size_t errcap);
void fdl_fw_free(fdl_fw *fw);

/* Boots (power on or reset) at virtual time now_ms. rec may be NULL. */
fdl_boot_outcome fdl_fw_boot(fdl_fw *fw, uint64_t now_ms, fdl_boot_record *rec);

/* The running application confirms its trial image (it phoned home): marks the
 * slot good, then raises the tier's fused floor to the image's counter. 0, -1. */
int fdl_fw_confirm(fdl_fw *fw, uint64_t now_ms);
/* true while a trial image runs unconfirmed; its deadline (virtual ms). */
bool fdl_fw_in_trial(const fdl_fw *fw, uint64_t *deadline_ms);

/* The verified keyring the running bootloader loaded (NULL in recovery). */
const fdl_keyring *fdl_fw_keyring(const fdl_fw *fw);
uint32_t fdl_fw_hw_rev(const fdl_fw *fw);
/* The version and counter running for a tier (0 if absent). */
uint32_t fdl_fw_running_version(const fdl_fw *fw, unsigned tier);
uint32_t fdl_fw_floor(const fdl_fw *fw, unsigned tier);
/* The running application image's payload (test images carry their behaviour
 * in it: docs/firmware.md), or NULL. */
const uint8_t *fdl_fw_app_payload(const fdl_fw *fw, size_t *len);
/* The highest job seq the device accepted (persisted with the boot-control record). */
uint64_t fdl_fw_job_seq(const fdl_fw *fw);
int fdl_fw_set_job_seq(fdl_fw *fw, uint64_t seq);
/* Whether the debug port is open (fuse not blown): the key-extraction probe's way in. */
bool fdl_fw_debug_open(const fdl_fw *fw);

/*
 * Writing an update, used by the OTA agent (devices/ota.h). begin erases the
 * inactive slot of tier (one write), write appends payload blocks (one flash
 * write each), finish marks the slot "trial pending" in the boot-control record
 * so the next boot tries it (with trial_ms to confirm). Each returns 0, -1 on
 * error, or FDL_FW_POWER_LOSS when the test hook cut the power: the device must
 * then be rebooted (fdl_fw_boot) and nothing more written.
 */
#define FDL_FW_POWER_LOSS (-2)
int fdl_fw_update_begin(fdl_fw *fw, unsigned tier, uint32_t size);
int fdl_fw_update_write(fdl_fw *fw, const uint8_t *data, size_t len);
int fdl_fw_update_finish(fdl_fw *fw, uint64_t trial_ms);
void fdl_fw_update_abort(fdl_fw *fw);

/* Tests: cut the power when the flash write counter reaches k (0 = never);
 * the number of flash writes so far. */
void fdl_fw_set_power_cut(fdl_fw *fw, uint64_t k);
uint64_t fdl_fw_flash_writes(const fdl_fw *fw);

#endif
