/*
 * attacks/session.h — the attacker's MQTT-over-TLS client, driven synchronously.
 *
 * This is the device stack itself (devices/tcp.c, devices/tls.c, devices/mqtt_client.c)
 * with a different configuration, not a re-implementation: a stolen certificate,
 * an extracted key or a TLS 1.2-only client differ from a device only in what
 * fdl_tls_client_cfg says. Several sessions share one short-lived libuv loop
 * (fdl_atk_loop) so an attacker and an observer run side by side on one thread;
 * every call runs the loop until its condition holds or its timeout expires.
 *
 * Lifetime: sessions belong to their loop. fdl_atk_sess_close ends a connection;
 * fdl_atk_loop_free closes what is still open, drains the loop and frees every
 * session. A pointer returned by fdl_atk_sess_msg stays valid until the loop is freed.
 */
#ifndef FDL_ATK_SESSION_H
#define FDL_ATK_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "attacks/attack.h"
#include "devices/tls.h"

/* Messages a session keeps (later ones are counted, not kept). */
#define FDL_ATK_SESS_MSGS 64
/* Bytes of a received payload that are kept (the full length is recorded). */
#define FDL_ATK_MSG_KEEP 200
/* Largest PUBLISH an attacker sends (oversized-payload attacks): 1 MiB, above the
 * broker's 256 KiB max_packet_size on purpose. */
#define FDL_ATK_PUBLISH_MAX (1u << 20)
/* Sessions one loop holds. */
#define FDL_ATK_LOOP_SESSIONS 8

typedef struct fdl_atk_loop fdl_atk_loop;
typedef struct fdl_atk_sess fdl_atk_sess;

/* A new loop; NULL on allocation failure. Free with fdl_atk_loop_free. */
fdl_atk_loop *fdl_atk_loop_new(void);
/* Closes every open session, drains the loop, frees the sessions and the loop. NULL ok. */
void fdl_atk_loop_free(fdl_atk_loop *l);
/* Runs the loop for ms milliseconds (lets traffic flow: deliveries, log writes). */
void fdl_atk_loop_run_for(fdl_atk_loop *l, unsigned ms);

typedef struct fdl_atk_sess_cfg {
    const char *host;         /* borrowed for the call: IPv4 literal */
    uint16_t port;
    uint32_t source_ipv4;     /* network order; 0 = the kernel picks (127.0.0.1) */
    const char *client_id;    /* copied */
    fdl_tls_client_cfg tls;   /* copied; what it points to must outlive the loop */
} fdl_atk_sess_cfg;

/* One received PUBLISH. */
typedef struct fdl_atk_msg {
    char topic[160];
    uint8_t payload[FDL_ATK_MSG_KEEP];
    size_t payload_len;       /* the full length on the wire (may exceed what is kept) */
} fdl_atk_msg;

/* A session on l (nothing is sent yet); NULL when the loop is full or out of memory. */
fdl_atk_sess *fdl_atk_sess_new(fdl_atk_loop *l, const fdl_atk_sess_cfg *cfg);

/*
 * TCP connect, TLS handshake, MQTT CONNECT (clean session), then waits for the
 * CONNACK, a failure, or timeout_ms. Returns FDL_ATK_STAGE_NONE when the broker
 * accepted, otherwise the stage that stopped it. If r is not NULL, the facts
 * (TLS version, alert or mbedTLS error, CONNACK code) are noted in it, each
 * prefixed with `who`.
 */
int fdl_atk_sess_connect(fdl_atk_sess *s, unsigned timeout_ms, const char *who, fdl_atk_result *r);

/* SUBSCRIBE one filter at QoS 1 and wait for its SUBACK. Returns the return code
 * (0..2 granted, 0x80 refused), or -1 if no SUBACK came (closed, timed out). */
int fdl_atk_sess_subscribe(fdl_atk_sess *s, const char *filter, unsigned timeout_ms);

/*
 * PUBLISH. Payloads that fit the client's transmit buffer go at QoS 1 through
 * the MQTT client and the call waits for the PUBACK (which proves nothing about
 * delivery: Mosquitto acknowledges denied publishes in 3.1.1); larger ones
 * (up to FDL_ATK_PUBLISH_MAX) are encoded here and written at QoS 0. Returns 1
 * if PUBACK came (QoS 1) or every byte was written (QoS 0), 0 if not (the
 * connection closed: see fdl_atk_sess_closed), -1 on a local error.
 */
int fdl_atk_sess_publish(fdl_atk_sess *s, const char *topic, const void *payload, size_t len, unsigned timeout_ms);

/* 1 while CONNACK 0 was received and the connection has not closed. */
int fdl_atk_sess_online(const fdl_atk_sess *s);
/* 1 once the connection closed; *why (may be NULL) gets the cause (TLS error text,
 * transport error, MQTT client error; "" if none). */
int fdl_atk_sess_closed(const fdl_atk_sess *s, const char **why);
/* Messages received so far (all, including those not kept). */
size_t fdl_atk_sess_received(const fdl_atk_sess *s);
/* Kept message i (< min(received, FDL_ATK_SESS_MSGS)), or NULL. */
const fdl_atk_msg *fdl_atk_sess_msg(const fdl_atk_sess *s, size_t i);
/* How many kept messages have a payload containing needle (on topic, if topic is not NULL). */
size_t fdl_atk_sess_count(const fdl_atk_sess *s, const char *topic, const char *needle);
/* Sends DISCONNECT if online and closes the connection. Idempotent. */
void fdl_atk_sess_close(fdl_atk_sess *s);

/* Notes up to max messages of s in r as "<who> received <topic> (<len> bytes): <prefix>". */
void fdl_atk_sess_note_msgs(const fdl_atk_sess *s, const char *who, size_t max, fdl_atk_result *r);

#endif /* FDL_ATK_SESSION_H */
