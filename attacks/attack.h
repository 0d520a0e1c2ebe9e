/*
 * attacks/attack.h — what every attack shares: where the fleet is (the target),
 * what the attacker observed (the result), and the broker-log evidence helper.
 *
 * Every attack in attacks/ is a real client or server on loopback with a
 * synchronous C API: it runs its own short-lived libuv loop (or blocking sockets
 * with poll timeouts), every wait is bounded in count and time, and it returns an
 * fdl_atk_result that the scenario engine reports verbatim. docs/attacks.md lists
 * the attacks, their evidence and the layer expected to stop each one.
 *
 * Signals: the process must ignore SIGPIPE (fleetdrill does, sim/cli.c): a broker
 * that resets an attacker mid-write makes libuv's write() raise it otherwise.
 *
 * Threads: an attack runs on the calling thread. Attacks that use an `se`
 * device's token must not run concurrently with anything else using that
 * device's key (devices/se.h: one fdl_se_key, one thread).
 */
#ifndef FDL_ATTACK_H
#define FDL_ATTACK_H

#include <stddef.h>
#include <stdint.h>

#include "devices/se.h"

/* Where the fleet's broker is, and the state directory the fleet was built in. */
typedef struct fdl_atk_target {
    const char *host;         /* borrowed; the broker's IPv4 address (loopback), e.g. "127.0.0.1" */
    uint16_t port;            /* the broker's MQTT-over-TLS port */
    const char *server_name;  /* borrowed; the name in the broker certificate ("localhost", as
                                 sim/fleet.c sets for devices); NULL = "localhost" */
    const char *state_dir;    /* borrowed; --state DIR: devices/<id>/..., pki/, broker/, registry.db */
    fdl_se_module *se;        /* borrowed; the process's PKCS#11 module (sim/context.h opens it);
                                 needed for `se` devices only, NULL otherwise */
} fdl_atk_target;

/* Where an attack was stopped (or FDL_ATK_STAGE_NONE: it was not). */
typedef enum fdl_atk_stage {
    FDL_ATK_STAGE_NONE = 0,      /* nothing stopped it */
    FDL_ATK_STAGE_SETUP,         /* the attack could not even be mounted (missing file, ...) */
    FDL_ATK_STAGE_KEY_EXTRACT,   /* the hardware refused to give up the key */
    FDL_ATK_STAGE_TCP,
    FDL_ATK_STAGE_TLS,           /* "tls-handshake": refused during or right after the handshake */
    FDL_ATK_STAGE_CONNACK,       /* "mqtt-connack": no CONNACK, or a refusing one */
    FDL_ATK_STAGE_PUBLISH,       /* the broker took the PUBLISH but did not deliver it */
    FDL_ATK_STAGE_SUBSCRIBE,     /* SUBACK 0x80 */
    FDL_ATK_STAGE_DELIVERY,      /* subscribed, but nothing that was not ours arrived */
    FDL_ATK_STAGE_PAYLOAD,       /* the payload rules dropped the message */
    /* OTA (attacks/ota.h): where the device, or the rollout, stopped it. */
    FDL_ATK_STAGE_JOB,           /* "job-document": the device refused the job document */
    FDL_ATK_STAGE_IMAGE,         /* "image": the device refused the image (header, blocks, hash) */
    FDL_ATK_STAGE_TRIAL,         /* "trial": it ran in trial, never confirmed, and was reverted */
    FDL_ATK_STAGE_ROLLOUT,       /* "rollout-gate": the job service halted the rollout */
    FDL_ATK_STAGE__COUNT
} fdl_atk_stage;

/* "none", "setup", "key-extraction", "tcp", "tls-handshake", "mqtt-connack", "publish",
 * "subscribe", "delivery", "payload", "job-document", "image", "trial", "rollout-gate";
 * never NULL. */
const char *fdl_atk_stage_name(int stage);

#define FDL_ATK_EVIDENCE_MAX 3072

/* What the attacker observed. Filled by every attack (also on failure to mount it). */
typedef struct fdl_atk_result {
    int succeeded;    /* 1: the attacker got what it wanted (judged from what was observed:
                         a connection, a delivery seen by an observer, data received) */
    int stage;        /* fdl_atk_stage: where it was stopped; NONE when succeeded */
    char evidence[FDL_ATK_EVIDENCE_MAX]; /* one fact per line, "\n"-separated; truncated
                                            (ending in "...") rather than overflowed */
    uint64_t elapsed_us;
} fdl_atk_result;

/* Clears r and starts its clock. */
void fdl_atk_result_begin(fdl_atk_result *r);
/* Stops the clock; sets stage NONE when succeeded. */
void fdl_atk_result_end(fdl_atk_result *r, int succeeded, int stage);
/* Appends one line (printf format, no trailing newline needed) to r->evidence. */
void fdl_atk_note(fdl_atk_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the broker log as evidence ------------------------------------------------ */

/* <state>/broker/mosquitto.log into buf; 0, or -1 if it does not fit. */
int fdl_atk_broker_log_path(const fdl_atk_target *t, char *buf, size_t cap);

/* Current size of the broker log in bytes (the offset to read from later); 0 if missing. */
uint64_t fdl_atk_log_offset(const fdl_atk_target *t);

/*
 * Lines appended to the broker log at or after byte offset `from` that contain
 * `needle` (any line if needle is NULL or ""), appended to r's evidence as
 * "broker: <line>", at most max_lines of them. Reads at most 1 MiB from the
 * offset. Returns how many matching lines there were (may exceed max_lines), or
 * -1 if the log cannot be read.
 */
int fdl_atk_log_since(const fdl_atk_target *t, uint64_t from, const char *needle, int max_lines,
                      fdl_atk_result *r);

/*
 * Same, but waits up to wait_ms (polling every 20 ms) for at least one matching
 * line: Mosquitto writes its log a moment after acting. After the first match it
 * waits up to 300 ms more (or until max_lines match) for the lines logged with it:
 * one refusal can be several lines. Returns the count.
 */
int fdl_atk_log_wait(const fdl_atk_target *t, uint64_t from, const char *needle, int max_lines, unsigned wait_ms,
                     fdl_atk_result *r);

/* Monotonic clock in microseconds. */
uint64_t fdl_atk_now_us(void);

#endif /* FDL_ATTACK_H */
