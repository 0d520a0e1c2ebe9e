/*
 * sim/drillenv.h — a whole fleet environment brought up and torn down as one
 * object: identities, registry, the broker with the fleetdrill plugin, the
 * provisioning service, the OTA services (artifact store and job service, with
 * the firmware environment: signing keys and factory images, sim/fwenv.h), and
 * the fleet running on a background thread, every device booting through its
 * verified chain.
 *
 * `fleetdrill run` is one of these for a fixed duration; a scenario drill
 * (sim/scenario.h) is one of these that it attacks while it runs. Ablation
 * switches turn one defence off for the whole environment (FDL_SWITCH_*), so a
 * drill can show which other layer still catches an attack.
 *
 * Lifecycle: fdl_drillenv_start (returns once the broker and the provisioning
 * service are up and the fleet thread runs) -> watch it (fdl_drillenv_live,
 * fdl_drillenv_wait_online, attack it through fdl_drillenv_target) ->
 * fdl_drillenv_stop (ends the fleet, then the service, then the broker; the
 * figures stay readable) -> fdl_drillenv_free.
 *
 * Threads: start, stop and free on one thread, the one that lives as long as
 * the broker (sim/broker.h: the broker gets SIGTERM when its starting thread
 * dies). The live view may be read from any thread.
 */
#ifndef FDL_DRILLENV_H
#define FDL_DRILLENV_H

#include <stddef.h>
#include <stdint.h>

#include "attacks/attack.h"
#include "cloud/artifacts.h"
#include "cloud/jobs.h"
#include "cloud/provisioning.h"
#include "sim/cloudrun.h"
#include "sim/context.h"
#include "sim/fleet.h"
#include "sim/fwenv.h"

/* The defences a drill can turn off, one bit each (`--without NAME`). */
typedef enum fdl_switch {
    FDL_SWITCH_PINNING = 1u << 0,       /* "pinning": devices do not verify the broker (verify_none) */
    FDL_SWITCH_REGISTRY = 1u << 1,      /* "registry": the plugin admits any certificate TLS accepts */
    FDL_SWITCH_POLICY = 1u << 2,        /* "policy": allow-all instead of the per-device policy */
    FDL_SWITCH_PAYLOAD_RULES = 1u << 3, /* "payload-rules": no payload rules, junk is delivered */
    FDL_SWITCH_TLS13_ONLY = 1u << 4,    /* "tls13-only": the broker accepts TLS 1.2 as well */
} fdl_switch;
#define FDL_SWITCH_COUNT 5

/* The name of switch bit number i (0 .. FDL_SWITCH_COUNT-1), e.g. "pinning"; NULL out of range. */
const char *fdl_switch_name(unsigned i);
/* One sentence on what turning it off means; "" out of range. */
const char *fdl_switch_describe(unsigned i);
/* Name -> bit (FDL_SWITCH_*). 0, or -1 for an unknown name. */
int fdl_switch_parse(const char *name, unsigned *bit);
/* The names of the bits in mask, comma-separated, into buf ("" for none). Returns buf. */
const char *fdl_switch_list(unsigned mask, char *buf, size_t cap);

typedef struct fdl_drillenv_opts {
    fdl_ctx *ctx;                 /* borrowed: fdl_ctx_open(.., want_pki = 1) done; the cloud part
                                     (registry) is opened or reset here */
    uint32_t devices;             /* fleet size */
    uint32_t first;               /* first device index */
    fdl_profile profile;          /* key storage of identities made now */
    fdl_prov_mode provision;
    uint16_t port;                /* broker port; 0 = a free one */
    const char *rules_path;       /* JITR/claim registration rules; NULL = cloud/registration.lua */
    unsigned without;             /* FDL_SWITCH_* bits: defences turned off */
    int fresh_registry;           /* 1: start from an empty registry, and devices as they left the
                                     factory (their firmware storage reset): each drill starts clean */
    int no_firmware;              /* 1: devices without a firmware model and no OTA services (they
                                     only connect) */
    int write_run_json;           /* 1: <state>/run.json names the live broker (for `fleetdrill revoke`) */
    int progress;                 /* 1: progress bars and set-up lines on stderr */
    fdl_fleet_cfg fleet;          /* fdl_fleet_cfg_defaults, then timing and duration; the
                                     environment fills broker, identities, stop flag, live view */
    fdl_fleet_progress_cb on_progress; /* called on the fleet thread ~10 times a second; may be NULL */
    void *progress_ud;
} fdl_drillenv_opts;

/* Fills o with defaults: 10 devices, se, direct, fleet defaults, duration 0 (until stopped). */
void fdl_drillenv_opts_init(fdl_drillenv_opts *o, fdl_ctx *ctx);

typedef struct fdl_drillenv fdl_drillenv;

/*
 * Provisions the missing identities, prepares the registry, starts the broker and
 * the provisioning service, and starts the fleet on its thread. Returns 0 and *out
 * (free with fdl_drillenv_free), -1 with err, or -2 when interrupted
 * (fdl_fleet_request_stop) during provisioning; *out is NULL on failure and
 * nothing is left running.
 */
int fdl_drillenv_start(const fdl_drillenv_opts *o, fdl_drillenv **out, char *err, size_t errcap);

/* Where attacks find the fleet: the broker, the state directory, the PKCS#11 module.
 * The strings are borrowed from e and valid until fdl_drillenv_free. */
fdl_atk_target fdl_drillenv_target(const fdl_drillenv *e);
const fdl_broker *fdl_drillenv_broker(const fdl_drillenv *e);
/* The OTA side (NULL with no_firmware): the job service, the artifact store, the
 * firmware environment, and the fleet's clock (valid until fdl_drillenv_free; the
 * services until fdl_drillenv_stop). */
fdl_jobs *fdl_drillenv_jobs(const fdl_drillenv *e);
fdl_artifacts *fdl_drillenv_artifacts(const fdl_drillenv *e);
fdl_fwenv *fdl_drillenv_fwenv(const fdl_drillenv *e);
const fdl_vclock *fdl_drillenv_clock(const fdl_drillenv *e);
/* The live view of the fleet (sim/fleet.h); valid until fdl_drillenv_free. */
const fdl_fleet_live *fdl_drillenv_live(const fdl_drillenv *e);
/* The options the environment was started with (a copy; the fleet part completed). */
const fdl_drillenv_opts *fdl_drillenv_opts_of(const fdl_drillenv *e);
/* Seconds since the fleet thread started. */
double fdl_drillenv_elapsed_s(const fdl_drillenv *e);

/*
 * Waits until at least `count` devices are online, the fleet thread ended, a stop
 * was requested, or timeout_ms passed (polls every 20 ms). Returns the number online.
 */
uint32_t fdl_drillenv_wait_online(fdl_drillenv *e, uint32_t count, unsigned timeout_ms);

/* 1 while the fleet thread runs (a run with a duration ends by itself). */
int fdl_drillenv_running(const fdl_drillenv *e);

/* Waits for the fleet thread to end by itself (run with a duration), then stops the rest. */
void fdl_drillenv_join(fdl_drillenv *e);

/* Stops the fleet (its own stop flag), the OTA and provisioning services and the
 * broker, in that order. Idempotent. */
void fdl_drillenv_stop(fdl_drillenv *e);

/* After stop: the fleet's figures; returns the fleet run's status (0, or -1 with
 * *err pointing at the message, borrowed). */
int fdl_drillenv_result(const fdl_drillenv *e, const fdl_fleet_result **res, const char **err);
/* The provisioning service's figures at the end (after stop); 0, or -1 if it never ran. */
int fdl_drillenv_prov_stats(const fdl_drillenv *e, fdl_prov_stats *out);

/* Stops whatever still runs and frees; NULL is a no-op. */
void fdl_drillenv_free(fdl_drillenv *e);

/*
 * Makes the identities first .. first+n-1 that are missing (sim/identity.h), with
 * a progress bar on stderr; issuer NULL makes keys only (provisioning by claim).
 * *made counts the new ones. 0, -1 on failure (message on stderr), -2 interrupted.
 * Used by `fleetdrill provision` and by fdl_drillenv_start.
 */
int fdl_drillenv_provision(fdl_ctx *ctx, fdl_pki *issuer, uint32_t first, uint32_t n, fdl_profile profile,
                           uint32_t *made);

#endif
