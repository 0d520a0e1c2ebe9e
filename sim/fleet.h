/*
 * sim/fleet.h — runs N virtual devices against a broker on one or more libuv loops.
 *
 * Devices are split across worker threads, each with its own loop, random
 * generator and slice of the fleet; a worker loads its devices' identities
 * (token logins happen in parallel), then admits connection attempts with a cap
 * on how many are in progress at once (a TLS handshake storm would otherwise
 * overflow the broker's accept queue and turn into timeouts). The run ends after
 * the configured real duration, when the run's own stop flag (cfg->stop) is set,
 * on fdl_fleet_request_stop (signals: every run in the process), or — for
 * benchmarks — once every device has connected.
 *
 * While it runs, another thread may watch it through a live view (cfg->live):
 * per-device online / revoked state and event times, updated by the workers.
 */
#ifndef FDL_FLEET_H
#define FDL_FLEET_H

#include <stdatomic.h>
#include <stdint.h>

#include "devices/device.h"
#include "devices/se.h"
#include "sim/identity.h"
#include "sim/metrics.h"

/*
 * A live view of a running fleet, for a thread other than the workers (a scenario
 * engine watching devices while it attacks them). Allocated by the caller for at
 * least n_devices entries, given to the run in cfg->live, read at any time with
 * fdl_fleet_live_get / fdl_fleet_live_totals (lock-free atomics), freed after the
 * run returned. Entry i is the device of fleet index first_index + i.
 */
typedef struct fdl_fleet_live fdl_fleet_live;

/* NULL when out of memory. Free with fdl_fleet_live_free (NULL is a no-op). */
fdl_fleet_live *fdl_fleet_live_new(uint32_t n_devices);
void fdl_fleet_live_free(fdl_fleet_live *l);

/* One device as the workers last saw it. Times are fdl_now_ns() values (monotonic), 0 = never. */
typedef struct fdl_fleet_dev_view {
    int online;                /* CONNACK accepted and the connection is up */
    int revoked;               /* the device's own "revoked" LED (repeated refusals) */
    uint32_t n_online;         /* connections that reached online */
    uint32_t n_refused;        /* attempts refused by the cloud (CONNACK refused or fatal TLS alert) */
    uint64_t acked;            /* telemetry acknowledged */
    uint64_t last_online_ns, last_offline_ns, last_refused_ns;
    int last_fail;             /* fdl_device_fail of the last failure (FDL_FAIL_NONE if none) */
} fdl_fleet_dev_view;

/* 0 and *out, or -1 when i is out of range. */
int fdl_fleet_live_get(const fdl_fleet_live *l, uint32_t i, fdl_fleet_dev_view *out);

/* One device's firmware as the workers last saw it (devices with a firmware model). */
typedef struct fdl_fleet_fw_view {
    uint32_t boots;
    int recovery;              /* its last boot halted in recovery mode */
    int trial;                 /* it runs a new image in trial (not confirmed yet) */
    uint32_t app_version, app_counter;   /* the application its last boot ran (0 = none) */
    uint8_t app_sha256[32];
    uint32_t app_floor;        /* the application tier's anti-rollback floor after that boot */
    uint32_t reverted;         /* boots that reverted a trial image */
    uint32_t reports;          /* OTA reports it published */
    char job[64];              /* its last report: job, seq, step, detail */
    uint64_t seq;
    char step[24];
    char detail[160];
    uint64_t last_report_ns;   /* fdl_now_ns() of that report, 0 = none */
} fdl_fleet_fw_view;

/* 0 and *out, or -1 when i is out of range. */
int fdl_fleet_live_fw(const fdl_fleet_live *l, uint32_t i, fdl_fleet_fw_view *out);

typedef struct fdl_fleet_live_totals {
    uint32_t devices, online, ever_online, revoked;
    uint32_t recovery, trial;  /* firmware: halted in recovery mode; running an image in trial */
    uint64_t acked;
    int running;               /* 1 from the moment devices may connect until the run stops them */
} fdl_fleet_live_totals;

void fdl_fleet_live_totals_get(const fdl_fleet_live *l, fdl_fleet_live_totals *out);

typedef struct fdl_fleet_cfg {
    uint32_t n_devices;
    uint32_t first_index;          /* device ids start here (for shards) */
    const fdl_state *state;        /* borrowed */
    fdl_se_module *se;             /* borrowed */
    const char *trust_file;        /* the fleet root CA (PEM) */
    const char *broker_host;
    uint16_t broker_port;
    const char *server_name;
    double time_scale;
    uint64_t duration_ms;          /* real ms from the start of connecting; 0 = until stopped */
    unsigned threads;              /* worker loops; 0 = auto */
    unsigned max_connecting;       /* attempts in progress at once, whole fleet */
    int stop_when_all_online;      /* benchmarks: end as soon as every device is online */
    int distinct_sources;          /* each device connects from its own 127.x.y.z address */
    int finalize_se_at_end;        /* the caller is done with cfg->se: tear the fleet's tokens down
                                      with one C_Finalize instead of N session closes (O(N^2) in SoftHSM2) */
    /* Provisioning by claim: devices whose identity has no certificate yet start
     * with this shared credential (PEM files) and claim their own. NULL: every
     * device must have its certificate. */
    const char *claim_cert_file, *claim_key_file;
    /* This run's stop flag (borrowed; NULL = none): set it to 1 from any thread to
     * end the run. Unlike fdl_fleet_request_stop it concerns this run only and
     * does not count as an interruption. */
    atomic_int *stop;
    fdl_fleet_live *live;          /* borrowed; NULL = no live view */
    int verify_none;               /* the ablation "pinning off": devices do not verify the broker */
    fdl_device_params params;
    /* Firmware (devices/firmware.h): what the factory puts on a device whose storage
     * (<state>/devices/<id>/fw) does not exist yet (borrowed). NULL = devices without a
     * firmware model: they do not boot, they only connect. */
    const fdl_fw_factory *factory;
    fdl_ota_params ota;            /* the devices' OTA agents: timeouts and trial window (simulated ms) */
    /* The simulated clock (borrowed; NULL = the run makes its own from time_scale):
     * shared with the cloud so that job documents are issued in the devices' time. */
    const fdl_vclock *clock;
} fdl_fleet_cfg;

/* Fills defaults: telemetry every 5 s, backoff 1 s .. 60 s, keepalive 60 s, 4 threads max, ... */
void fdl_fleet_cfg_defaults(fdl_fleet_cfg *cfg);

/* Figures of a finished run (read after fdl_fleet_run returns). */
typedef struct fdl_fleet_result {
    uint32_t devices, connected, failed, online_at_end, load_failed;
    uint64_t attempts;
    uint64_t fail_by_reason[FDL_FAIL__COUNT];   /* devices never online, by their last failure */
    char fail_example[FDL_FAIL__COUNT][160];    /* one detail message per reason */
    uint64_t published, acked, commands_received;
    uint64_t malformed_in;         /* malformed or oversized packets devices refused (and dropped the link) */
    uint64_t hs_p50_us, hs_p95_us, hs_p99_us, hs_max_us;
    uint64_t conn_p50_us, conn_p95_us, conn_p99_us;
    uint64_t ack_p50_us, ack_p99_us;
    /* Provisioning: devices whose first connects were refused (JITR pending) and
     * then accepted, or that claimed their certificate; latency from their first
     * attempt to their first CONNACK under their own identity. */
    uint32_t registered;
    uint32_t claimed;              /* of which by claim */
    uint64_t claims_sent;          /* CSRs the devices sent */
    uint64_t prov_p50_us, prov_p95_us, prov_p99_us, prov_max_us;
    double prov_span_s;            /* first attempt of the first to first online of the last */
    uint32_t revoked_at_end;       /* devices in their revoked state (LED on) when the run ended */
    /* Firmware: boots (all devices), devices halted in recovery at the end, the
     * mean time of one fdl_fw_boot (µs), and what the OTA agents did (their stats
     * summed). */
    uint64_t boots;
    uint32_t recovery_at_end;
    double boot_us_mean;
    uint64_t ota_jobs, ota_rejected, ota_failed, ota_written, ota_confirmed, ota_reverted;
    char revoked_example[64];
    double all_connected_s;        /* wall seconds until the last device first connected (0 if not all) */
    double load_s;                 /* wall seconds spent loading identities (token logins) */
    double wall_s;
    double cpu_s;                  /* this process: user + system */
    double cpu_connect_s;          /* CPU from start until all connected (or the end) */
    uint64_t rss_peak_kib, rss_before_kib, rss_connected_kib;
    unsigned threads;
    int interrupted;
} fdl_fleet_result;

/* A progress callback the run calls on the main thread about ten times a second. */
typedef void (*fdl_fleet_progress_cb)(void *ud, uint32_t online, uint32_t ever_online, uint32_t failed_now,
                                      uint64_t published, double elapsed_s);

/*
 * Runs the fleet to completion on the calling thread (which only coordinates).
 * Returns 0 when the run ended normally (whatever the devices achieved) and
 * -1 on a setup error (message in err).
 */
int fdl_fleet_run(const fdl_fleet_cfg *cfg, fdl_fleet_result *res, fdl_fleet_progress_cb progress, void *ud,
                  char *err, size_t errcap);

/* Async-signal-safe: asks a running fdl_fleet_run (and provisioning loops) to stop. */
void fdl_fleet_request_stop(void);
/* 1 once a stop was requested. */
int fdl_fleet_stop_requested(void);

#endif
