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
 *   1. "received": the document parsed; fdl_jobdoc_check (signature with a jobs
 *      key of the running keyring, target, hardware revision, expiry, replay)
 *      -> "rejected" with the reason, nothing downloaded;
 *   2. "downloading": asks for blocks of FDL_OTA_BLOCK bytes in order, one in
 *      flight, each within block_timeout_ms and the whole within
 *      total_timeout_ms of virtual time (slow retrieval -> "failed");
 *   3. "verified" when the header block has arrived: header parses, its tier,
 *      version, counter and length match the job, its key is trusted for that
 *      tier, the signature verifies, counter >= the fused floor, hardware
 *      revision matches. Only then is the inactive slot erased and written —
 *      before that not one byte touches flash;
 *   4. every further block is hashed and written; a block beyond the declared
 *      size (endless data) or out of order aborts; at the end the payload hash
 *      must equal the header's and the whole image's SHA-256 the job's;
 *      -> "written", the slot is marked for a trial boot, and the agent asks the
 *      device to reboot (io->reboot);
 *   5. after the reboot the device runs the new image in trial: once it is back
 *      online (the phone home) the application calls fdl_ota_online, the agent
 *      confirms (fdl_fw_confirm: slot good, floor raised) and reports
 *      "confirmed". An image that never confirms is reverted by the bootloader
 *      at its deadline; the agent then reports "reverted".
 * Any failure reports "failed" with the fdl_fw_status / reason, aborts the
 * update and leaves the running image as it was.
 *
 * One job at a time: a new document while one is in progress is refused
 * ("busy") unless it has a higher seq and the current one has not written yet.
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
    /* publish on $fleet/<sub>/<id>/<leaf>: sub "jobs" leaf "status", sub "ota" leaf "get". */
    void (*publish)(void *ud, const char *topic, const uint8_t *payload, size_t len);
    /* the agent wants a reboot (after "written"); the device calls fdl_fw_boot then fdl_ota_booted */
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
/* Timeouts (call at least once a virtual second while not idle). */
void fdl_ota_tick(fdl_ota *o, uint64_t now_ms);
/* The device booted (rec: what ran); the agent learns whether its trial image runs or was reverted. */
void fdl_ota_booted(fdl_ota *o, const fdl_boot_record *rec, uint64_t now_ms);
/* The application is online again (CONNACK accepted): a trial image confirms now. */
void fdl_ota_online(fdl_ota *o, uint64_t now_ms);

fdl_ota_state fdl_ota_get_state(const fdl_ota *o);
void fdl_ota_get_stats(const fdl_ota *o, fdl_ota_stats *out);

#endif
