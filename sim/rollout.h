/*
 * sim/rollout.h — an OTA rollout on a running drill environment (sim/drillenv.h):
 * build and sign the image through the release path (sim/fwenv.h), put it in the
 * artifact store, ask the job service for a staged rollout to (part of) the
 * fleet, and count what the devices themselves say they run afterwards (their
 * live view). `fleetdrill rollout`, the drills' f:update{} and the attack tooling
 * (attacks/ota.h) all go through here.
 */
#ifndef FDL_ROLLOUT_H
#define FDL_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#include "cloud/jobs.h"
#include "sim/drillenv.h"
#include "sim/fwenv.h"

typedef struct fdl_rollout_opts {
    unsigned tier;               /* fdl_fw_tier; default application */
    uint32_t version;            /* packed; default 1.1.0 */
    uint32_t counter;            /* security counter; default 2 */
    const char *behaviour;       /* the test image's behaviour: "ok" (NULL), "no-confirm", "crash" */
    uint32_t size;               /* payload bytes; 0 = FDL_FWENV_IMAGE_SIZE */
    uint32_t hw_rev;             /* the image's hardware revision; 0 = the fleet's */
    fdl_fwenv_sign sign;         /* how the image is signed (FDL_FWENV_SIGN_TIER: a genuine release) */
    unsigned sign_role;          /* for FDL_FWENV_SIGN_ROLE */
    unsigned generation;         /* the signing key's generation; 0 = current (signing.md: rotation) */
    const uint8_t *image;        /* an image made elsewhere (borrowed; then tier .. sign are read from
                                    its header / ignored); NULL = build one */
    size_t image_len;
    unsigned stages[FDL_JOBS_STAGES_MAX]; /* cumulative percentages; n_stages 0 = 10, 50, 100 */
    size_t n_stages;
    double max_failure;          /* halt gate; default 0.1 (set max_failure_set to use 0) */
    int max_failure_set;
    uint64_t stage_timeout_ms;   /* real ms; 0 = 120 s */
    uint64_t valid_ms;           /* fleet ms a document is valid; 0 = FDL_JOBS_VALID_MS */
    const uint32_t *devices;     /* fleet indices (0-based), in rollout order (the first are the
                                    canary); NULL = the whole fleet in index order */
    size_t n_devices;
    const uint32_t *hw;          /* the job document's hardware revisions; NULL = any */
    size_t n_hw;
    int hold;                    /* sign and record the first stage, publish nothing */
    const char *job_id;          /* NULL = made up */
} fdl_rollout_opts;

/* Defaults: application 1.1.0, counter 2, behaviour ok, stages 10/50/100, 10 %. */
void fdl_rollout_opts_init(fdl_rollout_opts *o);

/* What was released. */
typedef struct fdl_rollout_release {
    char job[64];
    char artifact[64];
    uint8_t sha256[32];          /* of the whole image */
    uint32_t size;
    unsigned tier;
    uint32_t version, counter;
} fdl_rollout_release;

/*
 * Builds (or takes) the image, uploads it as an artifact named after the job and
 * creates the job. 0, or -1 with err. e must have its OTA services (not
 * no_firmware).
 */
int fdl_rollout_start(fdl_drillenv *e, const fdl_rollout_opts *o, fdl_rollout_release *out, char *err,
                      size_t errcap);

/* The fleet as its devices report it (their live view). */
typedef struct fdl_rollout_census {
    uint32_t devices;
    uint32_t on_version;         /* run the given application version (and counter) */
    uint32_t on_other;           /* run another one */
    uint32_t trial, recovery;
    uint32_t reverted;           /* devices that ever reverted a trial */
    uint32_t untouched;          /* never reported anything on the job */
} fdl_rollout_census;

void fdl_rollout_census_get(const fdl_drillenv *e, const char *job, uint32_t version, uint32_t counter,
                            fdl_rollout_census *out);

#endif
