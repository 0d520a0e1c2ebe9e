/*
 * devices/mqtt_client.h — an MQTT 3.1.1 client session over a transport.
 *
 * The session owns no socket and no timer: it writes encoded packets to the
 * transport it is attached to, is told when the transport is readable or
 * writable, and is polled for keepalive (real, monotonic time: the broker
 * enforces keepalive in real time even when device timers run faster).
 * Buffers are fixed and embedded, so a session costs no allocation; a packet
 * larger than the receive buffer is refused as FDL_MQTTC_MALFORMED.
 *
 * Errors are reported once through on_error; the owner then closes the
 * transport and may reset the session with fdl_mqttc_reset to reconnect.
 */
#ifndef FDL_MQTT_CLIENT_H
#define FDL_MQTT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/mqtt_codec.h"
#include "devices/transport.h"

#define FDL_MQTTC_RX_CAP 8192      /* bytes; the largest packet a device takes in (commands, OTA blocks).
                                      A larger PUBLISH is skipped and counted (n_oversized), not fatal. */
#define FDL_MQTTC_TX_CAP 2048      /* bytes of encoded packets waiting for the transport */
#define FDL_MQTTC_INFLIGHT 8       /* QoS 1 publishes awaiting PUBACK */

typedef enum fdl_mqttc_status {
    FDL_MQTTC_OK = 0,
    FDL_MQTTC_BUSY,        /* too many QoS 1 publishes in flight; try after a PUBACK */
    FDL_MQTTC_NO_SPACE,    /* the transmit buffer is full */
    FDL_MQTTC_NOT_ONLINE,  /* no accepted CONNACK yet */
    FDL_MQTTC_MALFORMED,   /* the broker sent a malformed or oversized packet */
    FDL_MQTTC_PROTOCOL,    /* a well-formed packet that makes no sense here */
    FDL_MQTTC_REFUSED,     /* CONNACK with a non-zero return code */
    FDL_MQTTC_TIMEOUT,     /* no PINGRESP / CONNACK in time */
    FDL_MQTTC_TRANSPORT,   /* the transport failed or closed */
    FDL_MQTTC_BAD_ARG,
} fdl_mqttc_status;

const char *fdl_mqttc_strerror(fdl_mqttc_status st);

typedef struct fdl_mqttc_callbacks {
    void (*on_connack)(void *ud, uint8_t return_code);        /* 0 = accepted */
    void (*on_message)(void *ud, const fdl_mqtt_publish *p);   /* p views the rx buffer: copy what you keep */
    void (*on_puback)(void *ud, uint16_t packet_id, uint64_t latency_us);
    void (*on_suback)(void *ud, uint16_t packet_id, const uint8_t *codes, size_t n);
    void (*on_error)(void *ud, fdl_mqttc_status st, int detail);  /* detail: transport error or CONNACK rc */
    /* A PUBLISH larger than FDL_MQTTC_RX_CAP arrived and is skipped (QoS 1: acknowledged
     * when its packet id was readable). p: its topic (len 0 if not yet buffered) and the
     * buffered prefix of its payload (payload_len = that prefix); full = its payload
     * length on the wire. May be NULL. */
    void (*on_oversized)(void *ud, const fdl_mqtt_publish *p, size_t full);
} fdl_mqttc_callbacks;

typedef struct fdl_mqttc {
    fdl_transport *tp;                 /* borrowed while attached */
    const fdl_mqttc_callbacks *cb;     /* borrowed */
    void *ud;
    const char *client_id;             /* borrowed */
    uint16_t keepalive_s;
    bool connecting, online, failed;
    uint16_t next_id;
    size_t rx_len, tx_len, tx_retry_len;
    uint64_t last_tx_ns, ping_sent_ns, connect_sent_ns;
    struct { uint16_t id; uint64_t sent_ns; } inflight[FDL_MQTTC_INFLIGHT];
    unsigned n_inflight;
    uint64_t n_malformed, n_published, n_acked, n_received, n_oversized;
    size_t discard;                    /* bytes of a skipped oversized PUBLISH still to drop */
    uint8_t rx[FDL_MQTTC_RX_CAP];
    uint8_t tx[FDL_MQTTC_TX_CAP];
} fdl_mqttc;

/* Prepares a session; nothing is sent until fdl_mqttc_start. All pointers borrowed. */
void fdl_mqttc_init(fdl_mqttc *c, const char *client_id, uint16_t keepalive_s,
                    const fdl_mqttc_callbacks *cb, void *ud);
/* Forgets connection state (after a close) but keeps configuration and counters. */
void fdl_mqttc_reset(fdl_mqttc *c);
/* Attaches to a connected transport and sends CONNECT (clean session). */
fdl_mqttc_status fdl_mqttc_start(fdl_mqttc *c, fdl_transport *tp);
/* Transport events: drain input / flush output. */
void fdl_mqttc_on_readable(fdl_mqttc *c);
void fdl_mqttc_on_writable(fdl_mqttc *c);
/* Queues a PUBLISH. QoS 1 gets a packet id (returned in *id if non-NULL) and counts as in flight. */
fdl_mqttc_status fdl_mqttc_publish(fdl_mqttc *c, const char *topic, const uint8_t *payload, size_t len,
                                   uint8_t qos, uint16_t *id);
fdl_mqttc_status fdl_mqttc_subscribe(fdl_mqttc *c, const char *filter, uint8_t qos, uint16_t *id);
/* Queues DISCONNECT and flushes; the owner closes the transport afterwards. */
fdl_mqttc_status fdl_mqttc_disconnect(fdl_mqttc *c);
/*
 * Keepalive: sends PINGREQ when the link has been quiet for keepalive_s, fails
 * with FDL_MQTTC_TIMEOUT when a PINGRESP or CONNACK is overdue. Returns the
 * number of milliseconds until it wants to be polled again.
 */
uint64_t fdl_mqttc_poll(fdl_mqttc *c, uint64_t now_ns);

#endif
