/*
 * devices/mqtt_codec.h — sans-I/O MQTT 3.1.1 packet codec.
 *
 * The codec never touches a socket, never allocates and never includes uv.h or
 * mbedTLS. Encoders write one whole packet into a caller buffer of bounded size;
 * the decoder reads one packet from a caller buffer and says "need more bytes"
 * when the buffer holds only part of one. Decoded packets are views: every
 * pointer in a decoded struct points into the caller's input buffer and is valid
 * only while that buffer is unchanged (borrowed).
 *
 * Hostile input is expected: the decoder returns FDL_MQTT_MALFORMED (or
 * FDL_MQTT_TOO_LARGE) for anything that violates MQTT 3.1.1, and never asserts,
 * reads out of bounds or allocates.
 */
#ifndef FDL_MQTT_CODEC_H
#define FDL_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum fdl_mqtt_status {
    FDL_MQTT_OK = 0,
    FDL_MQTT_NEED_MORE,   /* decode: the buffer holds only a prefix of a packet */
    FDL_MQTT_MALFORMED,   /* decode: protocol violation; the connection must close */
    FDL_MQTT_TOO_LARGE,   /* decode: remaining length above the caller's ceiling */
    FDL_MQTT_NO_SPACE,    /* encode: the output buffer is too small; nothing useful written */
    FDL_MQTT_BAD_ARG,     /* encode: the caller's fields are invalid (e.g. QoS 3, id 0);
                             decode: a NULL pkt or consumed, or NULL buf with len > 0 */
} fdl_mqtt_status;

/* Returns a static, human-readable string; never NULL. */
const char *fdl_mqtt_strerror(fdl_mqtt_status st);

enum fdl_mqtt_type {
    FDL_MQTT_CONNECT = 1, FDL_MQTT_CONNACK = 2, FDL_MQTT_PUBLISH = 3, FDL_MQTT_PUBACK = 4,
    FDL_MQTT_PUBREC = 5, FDL_MQTT_PUBREL = 6, FDL_MQTT_PUBCOMP = 7, FDL_MQTT_SUBSCRIBE = 8,
    FDL_MQTT_SUBACK = 9, FDL_MQTT_UNSUBSCRIBE = 10, FDL_MQTT_UNSUBACK = 11,
    FDL_MQTT_PINGREQ = 12, FDL_MQTT_PINGRESP = 13, FDL_MQTT_DISCONNECT = 14,
};

/* Largest remaining length MQTT can express (4 length bytes). */
#define FDL_MQTT_MAX_REMAINING 268435455u

/* A length-delimited byte string (UTF-8 string or binary), borrowed. */
typedef struct fdl_mqtt_str {
    const uint8_t *ptr;
    uint16_t len;
} fdl_mqtt_str;

typedef struct fdl_mqtt_connect {
    fdl_mqtt_str client_id;
    uint16_t keepalive_s;
    bool clean_session;
    bool has_will, will_retain;
    uint8_t will_qos;
    fdl_mqtt_str will_topic, will_message;
    bool has_username, has_password;
    fdl_mqtt_str username, password;
    uint8_t protocol_level;   /* decode only: 4 for 3.1.1 (anything else is MALFORMED) */
} fdl_mqtt_connect;

typedef struct fdl_mqtt_publish {
    fdl_mqtt_str topic;          /* never contains '+' or '#' after a successful decode */
    const uint8_t *payload;      /* may be NULL when payload_len == 0 */
    size_t payload_len;
    uint8_t qos;                 /* 0, 1 or 2 */
    bool retain, dup;
    uint16_t packet_id;          /* 0 for QoS 0, non-zero otherwise */
} fdl_mqtt_publish;

/* One SUBSCRIBE entry (filter + requested QoS) or UNSUBSCRIBE entry (qos unused). */
typedef struct fdl_mqtt_sub {
    fdl_mqtt_str filter;
    uint8_t qos;
} fdl_mqtt_sub;

typedef struct fdl_mqtt_packet {
    uint8_t type;                /* enum fdl_mqtt_type */
    uint8_t flags;               /* low nibble of the fixed header */
    uint32_t remaining;          /* remaining length */
    union {
        fdl_mqtt_connect connect;
        struct { bool session_present; uint8_t return_code; } connack;
        fdl_mqtt_publish publish;
        uint16_t packet_id;      /* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK */
        struct {                 /* SUBSCRIBE / UNSUBSCRIBE: iterate with fdl_mqtt_next_sub */
            uint16_t packet_id;
            const uint8_t *entries;
            size_t entries_len;
        } sub;
        struct {                 /* SUBACK: one return code (0,1,2 or 0x80) per filter */
            uint16_t packet_id;
            const uint8_t *codes;
            size_t n_codes;
        } suback;
    } u;
} fdl_mqtt_packet;

/*
 * Decodes the first packet in buf[0..len).
 * max_remaining: the caller's ceiling on the remaining length (a packet larger
 *   than this is refused with FDL_MQTT_TOO_LARGE as soon as its length is known,
 *   before the caller buffers it).
 * On FDL_MQTT_OK, *consumed is the packet's total size and *pkt views into buf.
 * On FDL_MQTT_NEED_MORE, *consumed is 0 and the caller appends bytes and retries.
 * On FDL_MQTT_MALFORMED / FDL_MQTT_TOO_LARGE the stream cannot be resynchronised.
 * Every packet type of 3.1.1 is decoded (client and server directions), and the
 * fixed-header flags are checked per type (e.g. SUBSCRIBE must carry 0x2).
 * SUBSCRIBE/UNSUBSCRIBE entries are validated during decode (at least one entry,
 * QoS <= 2, no reserved bits), so fdl_mqtt_next_sub cannot fail afterwards on
 * the same packet.
 * Beyond framing, the decoder enforces: well-formed UTF-8 without U+0000 in
 * every UTF-8 field; topic names (PUBLISH, will topic) non-empty and free of
 * '+'/'#'; topic filters non-empty with '+' and '#' each alone in their level
 * and '#' last; non-zero packet ids; CONNACK return code <= 5 with session
 * present 0 on refusal; SUBACK with at least one code; no trailing bytes.
 * A remaining length that cannot fit the type (e.g. PINGREQ with 3 bytes) is
 * MALFORMED as soon as the length is known, like TOO_LARGE.
 */
fdl_mqtt_status fdl_mqtt_decode(const uint8_t *buf, size_t len, uint32_t max_remaining,
                                fdl_mqtt_packet *pkt, size_t *consumed);

/*
 * Iterates the entries of a decoded SUBSCRIBE (filter + qos) or UNSUBSCRIBE
 * (filter only, out->qos = 0); pkt->type decides which. *pos starts at 0.
 * Returns true and fills *out (filter borrowed from the decoded buffer) while
 * entries remain; false at the end or for any other packet type.
 */
bool fdl_mqtt_next_sub(const fdl_mqtt_packet *pkt, size_t *pos, fdl_mqtt_sub *out);

/*
 * Encoders: write one packet into out[0..cap), set *out_len, return FDL_MQTT_OK;
 * FDL_MQTT_NO_SPACE if cap is too small; FDL_MQTT_BAD_ARG for invalid fields
 * (QoS > 2, packet id 0 where one is required, string longer than 65535, topic
 * with wildcards in PUBLISH, empty SUBSCRIBE). Encoders cover both directions so
 * tests, fuzzers and the attack tooling can speak either side.
 * Encoders apply the decoder's rules (UTF-8, topic names and filters, CONNECT
 * flag consistency, QoS 0 PUBLISH with dup or a packet id, CONNACK rc > 5 or
 * session present with rc != 0, SUBACK codes), so whatever they write decodes;
 * malformed packets for attacks are made by mutating encoded bytes.
 * Fields that a flag turns off (will_* without has_will, username without
 * has_username, ...) are ignored, except will_qos/will_retain, which must be 0.
 * CONNECT always writes protocol name "MQTT" and level 4 (protocol_level is
 * ignored). On FDL_MQTT_NO_SPACE nothing is written to out and *out_len is the
 * size the packet needs; on FDL_MQTT_BAD_ARG *out_len is 0. out may be NULL
 * when cap is 0 (a size query).
 */
fdl_mqtt_status fdl_mqtt_encode_connect(uint8_t *out, size_t cap, const fdl_mqtt_connect *c, size_t *out_len);
fdl_mqtt_status fdl_mqtt_encode_connack(uint8_t *out, size_t cap, bool session_present, uint8_t rc, size_t *out_len);
fdl_mqtt_status fdl_mqtt_encode_publish(uint8_t *out, size_t cap, const fdl_mqtt_publish *p, size_t *out_len);
/* PUBACK, PUBREC, PUBREL (flags 0x2), PUBCOMP, UNSUBACK: type + packet id. */
fdl_mqtt_status fdl_mqtt_encode_ack(uint8_t *out, size_t cap, uint8_t type, uint16_t packet_id, size_t *out_len);
fdl_mqtt_status fdl_mqtt_encode_subscribe(uint8_t *out, size_t cap, uint16_t packet_id,
                                          const fdl_mqtt_sub *subs, size_t n, size_t *out_len);
fdl_mqtt_status fdl_mqtt_encode_unsubscribe(uint8_t *out, size_t cap, uint16_t packet_id,
                                            const fdl_mqtt_sub *subs, size_t n, size_t *out_len);
fdl_mqtt_status fdl_mqtt_encode_suback(uint8_t *out, size_t cap, uint16_t packet_id,
                                       const uint8_t *codes, size_t n, size_t *out_len);
/* PINGREQ, PINGRESP, DISCONNECT: two bytes. */
fdl_mqtt_status fdl_mqtt_encode_simple(uint8_t *out, size_t cap, uint8_t type, size_t *out_len);

/*
 * Encodes any packet described by *p, typically one fdl_mqtt_decode produced
 * (possibly modified): decode -> encode reproduces the bytes. This is what
 * relays and attack filters use to rewrite traffic. SUBSCRIBE/UNSUBSCRIBE
 * entries are taken in wire form (p->u.sub.entries) and validated as decode
 * validates them. Same return rules as the other encoders.
 */
fdl_mqtt_status fdl_mqtt_encode_packet(uint8_t *out, size_t cap, const fdl_mqtt_packet *p, size_t *out_len);

/* Helper: make a borrowed fdl_mqtt_str from a NUL-terminated C string (len capped at 65535). */
fdl_mqtt_str fdl_mqtt_cstr(const char *s);

#endif /* FDL_MQTT_CODEC_H */
