/*
 * devices/device.h — one virtual device's firmware: connectivity and telemetry.
 *
 * The device runs on a libuv loop it shares with many others. It connects
 * TCP -> TLS 1.3 (mutual, key in its secure element) -> MQTT, subscribes to
 * commands/<id>, publishes telemetry to telemetry/<id> on a timer in simulated
 * time, and on any failure closes the connection and retries after a jittered
 * exponential backoff (also in simulated time). Network I/O and MQTT keepalive
 * run in real time.
 *
 * With a firmware model (fdl_device_set_firmware, devices/firmware.h) the device
 * boots through its verified chain when it starts: a boot that ends in recovery
 * mode halts it (it never connects). Online, it takes OTA jobs: its agent
 * (devices/ota.h) gets the job documents and blocks from its session, publishes
 * its reports and block requests through it, and when it asks for a reboot the
 * device drops its connection, boots again (outside any callback of the
 * session) and reconnects; once back online a trial image confirms itself (the
 * phone home). The agent's timeouts run in simulated time.
 *
 * The fleet owns the device memory (fdl_device is a plain struct so a fleet can
 * allocate thousands in one array). Lifecycle: fdl_device_init -> fdl_device_start
 * -> ... -> fdl_device_stop(cb): the callback runs once every handle is closed,
 * after which the memory may be released with fdl_device_cleanup.
 */
#ifndef FDL_DEVICE_H
#define FDL_DEVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "devices/backoff.h"
#include "devices/firmware.h"
#include "devices/mqtt_client.h"
#include "devices/ota.h"
#include "devices/tls.h"
#include "sim/vclock.h"

#define FDL_DEVICE_ID_MAX 48

typedef enum fdl_device_state {
    FDL_DEV_IDLE = 0,      /* not started */
    FDL_DEV_WAITING,       /* wants to connect; waiting for the fleet to admit it */
    FDL_DEV_CONNECTING,    /* TCP + TLS handshake */
    FDL_DEV_MQTT,          /* CONNECT sent, waiting for CONNACK */
    FDL_DEV_ONLINE,
    FDL_DEV_BACKOFF,
    FDL_DEV_STOPPING,
    FDL_DEV_STOPPED,
    FDL_DEV_RECOVERY,      /* its boot ended in recovery mode: halted, never connects */
} fdl_device_state;

const char *fdl_device_state_name(fdl_device_state s);

/* Why a connection attempt failed; counted per reason in the run summary. */
typedef enum fdl_device_fail {
    FDL_FAIL_NONE = 0,
    FDL_FAIL_TCP,           /* refused, reset, unreachable */
    FDL_FAIL_TCP_TIMEOUT,
    FDL_FAIL_SERVER_CERT,   /* the broker's certificate did not verify (pinning) */
    FDL_FAIL_TLS_ALERT,     /* the broker refused us during/after the handshake */
    FDL_FAIL_TLS,           /* any other TLS failure */
    FDL_FAIL_MQTT_REFUSED,  /* CONNACK return code != 0 */
    FDL_FAIL_MQTT_PROTOCOL, /* malformed or unexpected packet, or no answer in time */
    FDL_FAIL_LOST,          /* connection lost after it was up */
    FDL_FAIL_LOCAL,         /* out of memory or another local error */
    FDL_FAIL_REBOOT,        /* the device rebooted (an OTA update or its watchdog) */
    FDL_FAIL__COUNT
} fdl_device_fail;

const char *fdl_device_fail_name(fdl_device_fail f);

/* Device timing parameters; simulated ms unless named _real_. */
typedef struct fdl_device_params {
    uint64_t telemetry_interval_ms;
    uint64_t backoff_base_ms, backoff_cap_ms;
    uint64_t connect_real_timeout_ms;   /* TCP connect + TLS handshake bound, real ms */
    uint16_t keepalive_s;               /* MQTT keepalive, real seconds */
    uint8_t telemetry_qos;
    /* Consecutive CONNACK refusals (not authorized) after which the firmware
     * concludes it is revoked: it lights its "revoked" LED, stops trying at the
     * normal pace and retries only every backoff_cap_ms. A device that has never
     * been online is still registering (JITR), so it is given more patience. */
    uint32_t revoked_after_refusals;          /* 0 = 3 */
    uint32_t revoked_after_refusals_new;      /* never online yet; 0 = 10 */
} fdl_device_params;

typedef struct fdl_device fdl_device;

/* What the fleet learns from its devices (all called on the device's loop thread). */
typedef struct fdl_device_hooks {
    /* The device wants to start a connection attempt; the fleet calls fdl_device_admit when it may. */
    void (*want_connect)(fdl_device *d, void *ud);
    /* A connection attempt ended (online = true: CONNACK accepted; otherwise failed with reason). */
    void (*attempt_done)(fdl_device *d, bool online, fdl_device_fail why, void *ud);
    /* An online device lost its connection (it will back off and ask to connect again). */
    void (*offline)(fdl_device *d, fdl_device_fail why, void *ud);
    void (*puback)(fdl_device *d, uint64_t latency_us, void *ud);
    /* Provisioning by claim: persist the certificate the device accepted (PEM,
     * leaf then chain) before it switches to it. 0 = stored; anything else makes
     * the device drop it and claim again later. Required for claiming devices. */
    int (*store_cert)(fdl_device *d, const char *pem, size_t len, void *ud);
    /* Firmware (optional): the device booted; rec says what ran (outcome
     * FDL_BOOT_RECOVERY: it halts and never connects). */
    void (*booted)(fdl_device *d, const fdl_boot_record *rec, void *ud);
    /* Firmware (optional): its OTA agent published a report on .../status (the
     * JSON, borrowed for the call). */
    void (*ota_report)(fdl_device *d, const uint8_t *json, size_t len, void *ud);
} fdl_device_hooks;

/* Shared by the devices of one loop; borrowed by each device. */
typedef struct fdl_device_env {
    uv_loop_t *loop;
    const fdl_vclock *clock;
    mbedtls_x509_crt *trust;      /* the fleet root: the only trust anchor */
    const char *broker_host;
    uint16_t broker_port;
    const char *server_name;
    int (*f_rng)(void *, unsigned char *, size_t);
    void *p_rng;
    fdl_device_params params;
    const fdl_device_hooks *hooks;
    void *hooks_ud;
    int verify_none;              /* 0 for devices. 1 = the ablation "pinning off": the broker's
                                     certificate is not checked (fdl_tls_client_cfg.verify_none) */
    fdl_ota_params ota;           /* the OTA agents' timeouts and trial window (simulated ms) */
} fdl_device_env;

struct fdl_device {
    uint32_t index;
    char id[FDL_DEVICE_ID_MAX];
    char topic_telemetry[FDL_DEVICE_ID_MAX + 16];
    char topic_commands[FDL_DEVICE_ID_MAX + 16];
    const fdl_device_env *env;
    mbedtls_x509_crt *cert;       /* borrowed: own certificate (NULL while it has none: claim) */
    mbedtls_pk_context *key;      /* borrowed: own key (token-backed for profile se) */
    fdl_tls_client_cfg tls;
    fdl_transport *tp;            /* the current connection chain, or NULL */
    fdl_mqttc mqtt;
    uv_timer_t sim_timer;         /* telemetry and backoff (scaled) */
    uv_timer_t net_timer;         /* keepalive and connect timeout (real) */
    int handles_open;
    fdl_device_state state;
    fdl_backoff backoff;
    uint64_t attempt_start_ns;
    uint64_t first_attempt_ns;    /* start of the first attempt ever (provisioning latency) */
    uint64_t first_online_ns;     /* when the first CONNACK accepted us */
    uint32_t refused_before_online; /* refusals before the first success (JITR: pending) */
    uint32_t source_ip;           /* network order; 0 = let the kernel choose */
    uint32_t refused_in_row;      /* consecutive CONNACK refusals */
    bool revoked;                 /* the "revoked" LED: repeated refusals, publishing stopped */
    /* Provisioning by claim (devices/claim.h): the device connects with the shared
     * claim credential, sends a CSR for its own key, stores the certificate it gets
     * and reconnects under its own identity. While claiming, a CONNACK is reported
     * to attempt_done as online but the device is not online in the fleet's sense
     * (no telemetry, no commands, first_online_ns untouched). */
    mbedtls_x509_crt *claim_cert; /* borrowed: the claim credential, NULL if not claiming */
    mbedtls_pk_context *claim_key;
    mbedtls_x509_crt *issued;     /* owned: the certificate the claim returned */
    bool claiming;                /* the next or current connection uses the claim credential */
    bool claimed;                 /* its identity came from a claim in this run */
    uint64_t claim_deadline_ns;   /* real time by which the answer to the CSR must come */
    uint32_t n_claims;            /* CSRs sent */
    char claim_topic[FDL_DEVICE_ID_MAX + 24]; /* "$fleet/claim/<id>/" */
    /* Firmware (NULL without a firmware model). */
    fdl_fw *fw;                   /* borrowed: its storage (eFuses, flash), opened by the fleet */
    fdl_ota *ota;                 /* owned: its OTA agent */
    uv_timer_t ota_timer;         /* the agent's ticks (a simulated second) and deferred reboots */
    bool reboot_pending;          /* the agent asked for a reboot: done on the next timer turn */
    uint32_t n_boots;
    uint64_t boot_ns;             /* time spent in fdl_fw_boot, all boots */
    uint64_t ota_dropped;         /* agent publishes dropped (offline, or the session's buffer full) */
    uint8_t *outbox;              /* owned: status reports made while offline (a revert is reported
                                     at boot), sent once the device is back online */
    size_t outbox_len;
    char topic_notify[FDL_DEVICE_ID_MAX + 24];
    char topic_block[FDL_DEVICE_ID_MAX + 24];
    uint64_t seq;
    uint64_t rng;                 /* xorshift state for jitter and telemetry values */
    double battery;
    /* per-device figures */
    uint32_t n_attempts, n_online, n_fail[FDL_FAIL__COUNT];
    uint64_t handshake_us, connect_us;  /* of the last successful attempt */
    uint64_t n_commands;
    fdl_device_fail last_fail;
    char last_error[160];
    void (*stopped_cb)(fdl_device *d);
};

/* Prepares the device; no I/O. id copied; env, cert, key borrowed. 0 or -1 (id too long). */
int fdl_device_init(fdl_device *d, uint32_t index, const char *id, const fdl_device_env *env,
                    mbedtls_x509_crt *cert, mbedtls_pk_context *key);
/* Provisioning by claim: before fdl_device_start, for a device initialised with
 * cert NULL (key = its own key, in its token for `se`). Both borrowed. */
void fdl_device_set_claim(fdl_device *d, mbedtls_x509_crt *claim_cert, mbedtls_pk_context *claim_key);
/* Gives the device its firmware storage (borrowed; before fdl_device_start) and
 * makes its OTA agent. 0, or -1 (out of memory). */
int fdl_device_set_firmware(fdl_device *d, fdl_fw *fw);
/* Starts the firmware: it boots (with a firmware model: halts in recovery, or
 * goes on), then asks to connect (hooks->want_connect). */
void fdl_device_start(fdl_device *d);
/* The fleet admits a waiting device: it opens its connection now. */
void fdl_device_admit(fdl_device *d);
/* Sends DISCONNECT if online, closes everything; cb runs once all handles are closed. */
void fdl_device_stop(fdl_device *d, void (*cb)(fdl_device *d));
/* Releases what the device allocated (the claimed certificate, its OTA agent); after the stop callback only. */
void fdl_device_cleanup(fdl_device *d);

#endif
