/*
 * cloud/artifacts.h — the OTA artifact store: a cloud actor (identity
 * svc-artifacts, its own certificate and least-privilege policy) that serves
 * firmware images in blocks over MQTT. It holds no key of any kind: whoever owns
 * it can serve wrong bytes, which every device refuses (docs/ota.md), but can
 * sign nothing.
 *
 * Images are files <dir>/<artifact id>.img (dir = <state>/firmware/artifacts),
 * read at every request: what is on disk is what is served, so a file changed
 * behind the store's back (the tampering drills) is served changed at once.
 *
 * Protocol (devices/ota.h): a device asks on $fleet/ota/<id>/get with the text
 * "<artifact> <offset> <length>" (decimal, one space each, nothing else); the
 * store answers on $fleet/ota/<id>/block with "FDB1" | offset u32 | total u32 |
 * data (big-endian; total = the image's size), data = min(length,
 * FDL_OTA_BLOCK, rest of the image) bytes. An unknown artifact or an offset
 * past the end is answered with total 0 and no data, so the device fails at once
 * instead of waiting for its timeout. A malformed request is counted and dropped.
 * The device id is the topic level: the broker's policy lets a device publish
 * only its own get topic, so an answer goes to whoever asked.
 *
 * Requests arrive on libmosquitto's thread and go to a bounded queue; one worker
 * thread reads the files and publishes the answers, in order of their due time
 * (a tap may delay one: slow retrieval). Stats are read under a lock from any
 * thread.
 */
#ifndef FDL_ARTIFACTS_H
#define FDL_ARTIFACTS_H

#include <stddef.h>
#include <stdint.h>

/* Requests waiting for an answer; more are dropped and counted (the device's own
 * block timeout asks again). 16,384: a 10,000-device rollout has at most one
 * request per device in flight. */
#define FDL_ARTIFACTS_QUEUE_MAX 16384u
/* Unsolicited blocks a tap may add after one answer (endless data): enough to
 * run far past any declared size, bounded so a drill cannot flood the broker. */
#define FDL_ARTIFACTS_EXTRA_MAX 64u
/* Requests remembered for evidence (fdl_artifacts_recent). */
#define FDL_ARTIFACTS_RECENT 256u

/* The file of an artifact: <dir>/<id>.img into buf. 0, or -1 if id is not
 * 1..63 bytes of [A-Za-z0-9._-] or the path does not fit. */
int fdl_artifacts_path(const char *dir, const char *id, char *buf, size_t cap);
/* Stores an image under id (atomically: a device never reads half a file);
 * creates dir. data borrowed. 0 or -1 with err. Needs no running store. */
int fdl_artifacts_put(const char *dir, const char *id, const uint8_t *data, size_t len, char *err, size_t errcap);

/* What one answer will be; a tap may change it. */
typedef struct fdl_artifacts_answer {
    uint64_t delay_ms;       /* real ms to wait before sending it (default 0) */
    uint32_t total;          /* the size announced in the block header (default: the file's) */
    uint32_t len;            /* bytes of data sent (default: min(asked, FDL_OTA_BLOCK, rest));
                                bytes past the end of the file are filler */
    uint32_t extra_blocks;   /* unsolicited FDL_OTA_BLOCK-byte blocks that follow at the next
                                offsets (0 .. FDL_ARTIFACTS_EXTRA_MAX) */
} fdl_artifacts_answer;

/*
 * A filter on what the store serves. The store itself never misbehaves; the
 * attack tooling (attacks/ota.h) installs a tap to play a compromised store:
 * slow retrieval (delay), endless data (more bytes than declared). Called on
 * the worker thread for every answer, with the request (strings borrowed for
 * the call) and the answer the store would give.
 */
typedef struct fdl_artifacts_tap {
    void (*on_request)(void *ud, const char *device, const char *artifact, uint32_t offset, uint32_t asked,
                       uint32_t file_size, fdl_artifacts_answer *ans);
    void *ud;
} fdl_artifacts_tap;

typedef struct fdl_artifacts_cfg {
    const char *host;
    uint16_t port;
    const char *cafile;      /* the fleet root: the only anchor for the broker's certificate */
    const char *certfile;    /* svc-artifacts certificate and key */
    const char *keyfile;
    const char *dir;         /* where the images are (copied) */
    int verbose;             /* log every request to stderr */
} fdl_artifacts_cfg;

typedef struct fdl_artifacts_stats {
    uint64_t requests;       /* get messages received */
    uint64_t bad_requests;   /* malformed (dropped) */
    uint64_t unknown;        /* answered with total 0: no such artifact, or past its end */
    uint64_t blocks, bytes;  /* answers sent (extra blocks included) and their data bytes */
    uint64_t queue_dropped;
    uint64_t publish_errors;
    char last_error[200];
} fdl_artifacts_stats;

/* One remembered request. */
typedef struct fdl_artifacts_req {
    char device[64];
    char artifact[64];
    uint32_t offset, asked;
    uint32_t sent;           /* data bytes answered (extra blocks included) */
    uint64_t at_ns;          /* fdl_now_ns() when it arrived */
} fdl_artifacts_req;

typedef struct fdl_artifacts fdl_artifacts;

/* Connects, subscribes; returns once the subscription is acknowledged (or fails
 * within 10 s). 0, or -1 with err. */
int fdl_artifacts_start(const fdl_artifacts_cfg *cfg, fdl_artifacts **out, char *err, size_t errcap);

/* Installs a tap (copied; NULL removes it). Takes effect from the next answer. */
void fdl_artifacts_set_tap(fdl_artifacts *a, const fdl_artifacts_tap *tap);

void fdl_artifacts_get_stats(fdl_artifacts *a, fdl_artifacts_stats *out);

/* Requests from device (NULL = any) that arrived at or after since_ns, newest
 * last, at most cap of them into out; returns how many matched (may exceed cap). */
size_t fdl_artifacts_recent(fdl_artifacts *a, const char *device, uint64_t since_ns, fdl_artifacts_req *out,
                            size_t cap);

/* Disconnects, joins the worker and frees; NULL is a no-op. */
void fdl_artifacts_stop(fdl_artifacts *a);

#endif
