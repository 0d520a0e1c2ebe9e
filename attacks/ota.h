/*
 * attacks/ota.h — attacks on the update path: images a device must refuse, an
 * artifact store that misbehaves, job documents replayed, expired or meant for
 * someone else, an image that never confirms, a rollout whose canary fails
 * (docs/attacks.md, docs/ota.md).
 *
 * The attacker's positions, each a real one, none of them holding a firmware key:
 *  - it gets an image into a job: an insider or a compromised build system has
 *    the job service (which signs job documents for whatever release it is
 *    handed: it is the delivery path, not the firmware signing authority) roll
 *    out an unsigned image, one signed with a key of another tier (a stolen,
 *    less guarded key), an old genuine one below the floor (rollback), or one
 *    that never phones home;
 *  - it owns the artifact store (its files and its process): it changes an
 *    artifact after the job was signed, replaces it with a well-formed image of
 *    its own, serves more bytes than declared, or serves them too slowly — files
 *    written behind the store's back and taps on cloud/artifacts.h;
 *  - it holds the job service's broker credential (the actor's certificate and
 *    key file) but not its job key (a token): it delivers documents it captured
 *    — one the device already acted on, one that expired, one for another device
 *    or another hardware revision — on the victim's notify topic. It can sign
 *    nothing.
 * Every attack runs against the live fleet and then waits, bounded, for the
 * device's own account: its reports on .../status (as the job service recorded
 * them) and its boot records (which images ran). The result's evidence quotes
 * them; the observation (fdl_atk_ota_obs) carries the facts the verdict needs.
 *
 * Threads: the calling thread (a scenario's); the services and the fleet run on
 * their own threads and are only used through their thread-safe calls.
 */
#ifndef FDL_ATK_OTA_H
#define FDL_ATK_OTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attacks/attack.h"
#include "cloud/artifacts.h"
#include "cloud/jobs.h"
#include "devices/ota.h"
#include "sim/fleet.h"
#include "sim/fwenv.h"
#include "sim/vclock.h"

typedef enum fdl_atk_ota_kind {
    FDL_ATK_OTA_UNSIGNED = 0,    /* an image with no signature */
    FDL_ATK_OTA_WRONG_KEY,       /* signed with the current key of another role (key_role) */
    FDL_ATK_OTA_ROLLBACK,        /* the factory image again, once the device's floor is above it */
    FDL_ATK_OTA_TAMPERED,        /* a genuine job; one byte of the stored artifact changed afterwards */
    FDL_ATK_OTA_MALICIOUS,       /* a genuine job; the store serves the attacker's own image, same size */
    FDL_ATK_OTA_ENDLESS,         /* a genuine job; the store runs past the declared size */
    FDL_ATK_OTA_SLOW,            /* a genuine job; the store answers slower than the device waits */
    FDL_ATK_OTA_NO_CONFIRM,      /* a signed image that never phones home */
    FDL_ATK_OTA_REPLAY,          /* a document the device acted on, delivered again */
    FDL_ATK_OTA_EXPIRED,         /* a genuine document delivered after it expired */
    FDL_ATK_OTA_FOREIGN,         /* a genuine document for another device (from) or hardware revision (hw) */
    FDL_ATK_OTA_BAD_CANARY,      /* a rollout of a crashing or never-confirming image to the fleet */
    FDL_ATK_OTA__COUNT
} fdl_atk_ota_kind;

/* The live fleet and its cloud. Everything borrowed for the call. */
typedef struct fdl_atk_ota_env {
    const fdl_atk_target *t;      /* broker and state (the stolen credential connects here) */
    fdl_jobs *jobs;
    fdl_artifacts *store;
    fdl_fwenv *fw;
    const fdl_fleet_live *live;
    const fdl_vclock *clock;      /* the fleet's */
    fdl_ota_params ota;           /* the devices' OTA timing (simulated ms; 0 = devices/ota.h defaults) */
    uint32_t first;               /* fleet index of live entry 0 */
    uint32_t devices;             /* fleet size */
} fdl_atk_ota_env;

typedef struct fdl_atk_ota_cfg {
    fdl_atk_ota_kind kind;
    uint32_t victim;              /* live index (0-based) of the device attacked */
    int32_t from;                 /* FOREIGN: the device the document was for (live index), -1 = none */
    uint32_t hw;                  /* FOREIGN: a hardware revision the document is for, 0 = none */
    unsigned key_role;            /* WRONG_KEY: whose key signs (default modules) */
    const char *behaviour;        /* BAD_CANARY: "crash" (default) or "no-confirm" */
    unsigned canary;              /* BAD_CANARY: the first stage's percentage (default 10) */
    double max_failure;           /* BAD_CANARY: halt gate (default 0.1) */
    unsigned wait_s;              /* real seconds to wait for the outcome; 0 = worked out from the timing */
} fdl_atk_ota_cfg;

/* What the device (or the rollout) did: the facts the verdict is made of. */
typedef struct fdl_atk_ota_obs {
    bool delivery_denied;         /* the broker refused the attacker's delivery */
    char final_step[24];          /* the device's last report on the job ("" = none) */
    char detail[160];
    bool wrote;                   /* it reported the image written */
    bool bad_ran, bad_runs;       /* boot records: the attacker's image ran / runs now */
    bool reverted;                /* a boot since reverted a trial */
    bool unverified;              /* a boot since ran an image that did not verify */
    /* BAD_CANARY */
    bool rollout;
    fdl_job_info job;
    uint32_t untouched;           /* devices never notified */
    uint32_t bad_running;         /* devices whose last boot runs the bad image */
} fdl_atk_ota_obs;

/* "unsigned-image", ... (the verdict's names, sim/verdict.h). */
const char *fdl_atk_ota_kind_name(fdl_atk_ota_kind k);

/*
 * Runs one attack. Returns r->succeeded (the attacker's image runs, or the
 * rollout went on), 0 otherwise; stage SETUP in r when it could not be mounted
 * (a precondition missing: rollback needs a floor above the factory image).
 */
int fdl_atk_ota_run(const fdl_atk_ota_env *env, const fdl_atk_ota_cfg *cfg, fdl_atk_result *r, fdl_atk_ota_obs *obs);

#endif
