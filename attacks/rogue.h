/*
 * attacks/rogue.h — a rogue-CA endpoint (man in the middle, layer 4) and the
 * device-side client that is pointed at it.
 *
 * The rogue is a real TLS 1.3 server (mbedTLS) on a loopback port, on its own
 * thread with blocking sockets and poll timeouts. Its certificate comes from a
 * DIFFERENT CA made in software (fdl_pki_setup_soft) with exactly the fleet's
 * names ("fleetdrill Root CA", "fleetdrill Issuing CA 1", CN=localhost, SAN
 * localhost + 127.0.0.1), so only the signature chain differs. It asks for a
 * client certificate (optional: it records who presented one), reads the first
 * MQTT packet, and if that is a CONNECT records the client id and answers
 * CONNACK 0 like a broker, then records PUBLISHes for a short while. A client
 * that reached CONNECT has leaked its credentials and data to the MITM.
 *
 * Clients are served one at a time, each bounded (3 s handshake, 2 s for the
 * CONNECT, 1 s more for data), so a silent client delays the next by at most 6 s.
 *
 * Lifetime: fdl_atk_rogue_new -> _start -> (devices connect) -> _stop -> _result
 * -> _free. _free stops a running rogue; _free(NULL) is a no-op.
 */
#ifndef FDL_ATK_ROGUE_H
#define FDL_ATK_ROGUE_H

#include <stdint.h>

#include "attacks/attack.h"

typedef struct fdl_atk_rogue fdl_atk_rogue;

/* What the rogue saw (a snapshot). */
typedef struct fdl_atk_rogue_stats {
    unsigned accepted;          /* TCP connections */
    unsigned handshakes;        /* TLS handshakes completed */
    unsigned handshake_failed;  /* refused or broken handshakes */
    unsigned client_certs;      /* handshakes in which the client presented a certificate */
    unsigned connects;          /* MQTT CONNECT packets read (credentials leaked) */
    unsigned publishes;         /* PUBLISH packets read after CONNACK (data leaked) */
    char last_client_id[128];   /* of the last CONNECT ("" if none) */
    char last_peer_subject[128]; /* subject of the last client certificate ("" if none) */
    char last_error[160];       /* the last handshake failure ("" if none) */
} fdl_atk_rogue_stats;

/*
 * Makes (or reuses: idempotent) the rogue CA and its server identity in
 * pki_dir (a directory of its own, NOT the fleet's pki/) and loads them.
 * 0 and *out (free with fdl_atk_rogue_free), or -1 with err.
 */
int fdl_atk_rogue_new(const char *pki_dir, fdl_atk_rogue **out, char *err, size_t errcap);

/*
 * Listens on host:port (IPv4 literal, loopback; port 0 = a free one) and starts
 * the serving thread. *bound gets the port. 0, or -1 with err.
 */
int fdl_atk_rogue_start(fdl_atk_rogue *g, const char *host, uint16_t port, uint16_t *bound, char *err,
                        size_t errcap);

/* Stops the thread (within ~100 ms plus the client being served) and closes the port. Idempotent. */
void fdl_atk_rogue_stop(fdl_atk_rogue *g);

/* A snapshot of what it saw so far (safe while running). */
void fdl_atk_rogue_stats_get(fdl_atk_rogue *g, fdl_atk_rogue_stats *out);

/*
 * The attack's outcome as a result: succeeded = at least one MQTT CONNECT was
 * read (the MITM got a client's credentials); stage tls-handshake otherwise.
 * Evidence: the counters and one line per client served (peer certificate,
 * handshake error, client id, topics). Returns r->succeeded.
 */
int fdl_atk_rogue_result(fdl_atk_rogue *g, fdl_atk_result *r);

void fdl_atk_rogue_free(fdl_atk_rogue *g);

/*
 * The device side: device_id's own identity (certificate + key; token-backed
 * for `se`) and the device TLS client (devices/tls.c) with the fleet root as
 * its only trust anchor, connecting to t->host:t->port — point t at the rogue.
 * verify_none: 1 = the ablation "pinning off" (fdl_tls_client_cfg.verify_none).
 * succeeded: the device got CONNACK 0 (from whoever answered). Evidence: the
 * TLS outcome ("server certificate rejected: ..." when pinning holds).
 * Expected with pinning: blocked by layer 4 at tls-handshake.
 */
int fdl_atk_device_connect(const fdl_atk_target *t, const char *device_id, int verify_none, fdl_atk_result *r);

#endif
