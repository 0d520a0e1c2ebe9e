/*
 * devices/ota.h — the device's OTA agent, sans-I/O: job document in, block
 * requests and status reports out, the update written through devices/firmware.h.
 *
 * Protocol (docs/ota.md), topics relative to the device id:
 *   $fleet/jobs/<id>/notify   cloud -> device  signed job document (devices/jobdoc.h)
 *   $fleet/jobs/<id>/status   device -> cloud  {"job":..,"seq":..,"step":..,"detail":..}
 *   $fleet/ota/<id>/get       device -> store  "<artifact> <offset> <length>"
 *   $fleet/ota/<id>/block     store -> device  "FDB1" | offset u32 | total u32 | data
 *
 * What the agent does with a job, reporting each step on .../status:
 *   1. a document that does not parse -> "rejected" (job "", seq 0);
 *      "received": the document parsed; fdl_jobdoc_check (signature with a jobs
 *      key of the running keyring, target, hardware revision, expiry, replay)
 *      -> "rejected" with the reason (fdl_jobdoc_strerror), nothing downloaded,
 *      nothing written. Accepted, its seq is written first (one flash write:
 *      fdl_fw_set_job_seq), so the document can never be replayed whatever
 *      happens next;
 *   2. "downloading" (detail: the artifact id): asks for blocks of
 *      FDL_OTA_BLOCK bytes in order, one in flight; a block that does not come
 *      within block_timeout_ms is asked for again, twice, then the job fails;
 *      the whole download must end within total_timeout_ms of virtual time
 *      (slow retrieval -> "failed");
 *   3. "verified" when the header's FDL_FW_HDR_LEN bytes have arrived (they may
 *      come in pieces): header parses, its tier, version, counter and length
 *      match the job, and fdl_fw_check_header passes (its key is trusted for
 *      that tier, the signature verifies, counter >= the fused floor and <=
 *      FDL_EFUSE_FLOOR_MAX, hardware revision). Only then is the inactive slot
 *      taken and written — before that not one byte of the image touches flash;
 *   4. every byte of the image (header included) is hashed and written; a block
 *      that goes past the job's size (endless data), that announces another
 *      total, or that skips ahead fails the job; an empty or already-received
 *      block (a late answer to a re-request) is counted in bad_blocks and
 *      dropped. At the end the payload hash must equal the signed header's and
 *      the whole image's SHA-256 the job's -> "written", the slot is marked for
 *      a trial boot, and the agent asks the device to reboot (io->reboot);
 *   5. after the reboot (fdl_ota_booted) the device runs the new image in trial
 *      -> "trial" (detail: the tier); once it is back online (the phone home)
 *      the application calls fdl_ota_online, the agent confirms (fdl_fw_confirm:
 *      slot good, then floor raised) and reports "confirmed" (detail: the new
 *      floor) — unless the trial image's payload says behaviour=no-confirm, the
 *      drill's image that never phones home. An image that never confirms is
 *      reset by the watchdog (fdl_ota_tick calls io->reboot at the deadline) and
 *      reverted by the bootloader; one that crashes at start is reverted at its
 *      first boot: either way the agent reports "reverted" (detail: the boot
 *      record's reason).
 * Any failure reports "failed" with the reason, aborts the update and leaves
 * the running image as it was (the partly written slot is recorded empty).
 *
 * One job at a time: a new document while one is in progress is checked like
 * any other, then refused ("rejected", detail "busy") unless it has a higher
 * seq and the current one has not written a byte yet (the current one then
 * "failed": superseded).
 *
 * Power loss (tests cut it through fdl_fw_set_power_cut): once a write was cut,
 * every call is a no-op until the device boots. A real device loses its RAM:
 * the test or the fleet may give the rebooted device a new agent; it learns
 * from the firmware (fdl_fw_trial_tier, fdl_fw_job) that a trial runs, and
 * confirms it when online. An update lost to the cut is simply not there: the
 * job service sends a new document.
 */
#ifndef FDL_OTA_H
#define FDL_OTA_H

#include <stddef.h>
#include <stdint.h>

#include "devices/firmware.h"
#include "devices/jobdoc.h"

#define FDL_OTA_BLOCK 4096
#define FDL_OTA_BLOCK_MAGIC "FDB1"
#define FDL_OTA_BLOCK_HDR 12

typedef enum fdl_ota_state {
    FDL_OTA_IDLE = 0,
    FDL_OTA_DOWNLOADING,
    FDL_OTA_REBOOT_PENDING,   /* written; waiting for the device to reboot */
    FDL_OTA_TRIAL,            /* running the new image, not yet confirmed */
} fdl_ota_state;

typedef struct fdl_ota_io {
    /* publish payload on topic (the whole topic: "$fleet/jobs/<id>/status" or
     * "$fleet/ota/<id>/get"; both borrowed for the call). */
    void (*publish)(void *ud, const char *topic, const uint8_t *payload, size_t len);
    /* the agent wants a reboot (after "written", or the watchdog at a trial's
     * deadline); the device calls fdl_fw_boot then fdl_ota_booted. Never called
     * from inside fdl_ota_booted. */
    void (*reboot)(void *ud);
    void *ud;
} fdl_ota_io;

typedef struct fdl_ota_params {
    uint64_t block_timeout_ms;   /* virtual ms per block; 0 = 30 s */
    uint64_t total_timeout_ms;   /* virtual ms per download; 0 = 30 min */
    uint64_t trial_ms;           /* virtual ms the new image has to confirm; 0 = 10 min */
} fdl_ota_params;

typedef struct fdl_ota_stats {
    uint64_t jobs, rejected, downloads, failed, written, confirmed, reverted;
    uint64_t bytes, blocks, bad_blocks;
    fdl_jobdoc_status last_reject;
    fdl_fw_status last_fw_error;
    char last_detail[160];
} fdl_ota_stats;

typedef struct fdl_ota fdl_ota;

/* id copied; fw and io borrowed for the agent's life. NULL on out of memory. */
fdl_ota *fdl_ota_new(const char *id, fdl_fw *fw, const fdl_ota_params *p, const fdl_ota_io *io);
void fdl_ota_free(fdl_ota *o);

/* Messages from the device's MQTT session (payload borrowed for the call). */
void fdl_ota_on_job(fdl_ota *o, const uint8_t *payload, size_t len, uint64_t now_ms);
void fdl_ota_on_block(fdl_ota *o, const uint8_t *payload, size_t len, uint64_t now_ms);
/* Timeouts and the watchdog (call at least once a virtual second while not idle). */
void fdl_ota_tick(fdl_ota *o, uint64_t now_ms);
/* The device booted (rec: what ran); the agent learns whether its trial image
 * runs or was reverted. A download in progress is abandoned ("failed"). */
void fdl_ota_booted(fdl_ota *o, const fdl_boot_record *rec, uint64_t now_ms);
/* The application is online again (CONNACK accepted): a trial image confirms
 * now (unless it is a behaviour=no-confirm test image). */
void fdl_ota_online(fdl_ota *o, uint64_t now_ms);

fdl_ota_state fdl_ota_get_state(const fdl_ota *o);
void fdl_ota_get_stats(const fdl_ota *o, fdl_ota_stats *out);

#endif
