/*
 * tests/fuzz/fuzz_mqtt.c — libFuzzer target for the MQTT 3.1.1 codec.
 *
 * The input is treated as a byte stream from a hostile peer. Each decoded
 * packet is checked for the codec's promises, and any broken promise aborts:
 *   - a packet is never larger than the input, nor its body than the ceiling;
 *   - every strict prefix of a decoded packet is NEED_MORE with consumed 0;
 *   - a failure consumes nothing;
 *   - re-encoding the decoded fields succeeds, reproduces the first byte and
 *     the body byte for byte, and decodes again to the same fields;
 *   - a too-small output buffer is refused with NO_SPACE and the exact size;
 *   - the encoders accept a string as topic or filter exactly when the decoder
 *     accepts it in a hand-built packet (the input's first bytes are the string).
 * The codec source is included so the fuzzer sees (and instruments) its
 * static functions; build line in tests/CMakeLists.txt.
 */
#include "devices/mqtt_codec.c"

#include <stdio.h>
#include <stdlib.h>

/* Small ceiling so that TOO_LARGE is reached often and packets stay cheap. */
#define FUZZ_MAX_REMAINING 2048u
/* Each SUBSCRIBE entry takes at least 4 bytes, UNSUBSCRIBE 3. */
#define FUZZ_MAX_SUBS (FUZZ_MAX_REMAINING / 3u + 1u)
#define FUZZ_OUT_CAP (FUZZ_MAX_REMAINING + FDL_MQTT_MAX_HEADER)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fdl_mqtt_sub g_subs[FUZZ_MAX_SUBS];
static uint8_t g_out[FUZZ_OUT_CAP];
static uint8_t g_out_entries[FUZZ_OUT_CAP];

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "fuzz_mqtt: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                             \
        }                                                                        \
    } while (0)

static bool str_eq(fdl_mqtt_str a, fdl_mqtt_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Collects SUBSCRIBE / UNSUBSCRIBE entries; checks they cover the whole list. */
static size_t collect_subs(const fdl_mqtt_packet *p)
{
    size_t n = 0, pos = 0;
    fdl_mqtt_sub s;
    while (fdl_mqtt_next_sub(p, &pos, &s)) {
        CHECK(n < FUZZ_MAX_SUBS);
        CHECK(s.filter.len > 0);
        CHECK(p->type == FDL_MQTT_SUBSCRIBE ? s.qos <= 2 : s.qos == 0);
        g_subs[n++] = s;
    }
    CHECK(n > 0);
    CHECK(pos == p->u.sub.entries_len);
    return n;
}


/* Field-by-field equality of two decoded packets (views into different buffers). */
static bool same_packet(const fdl_mqtt_packet *a, const fdl_mqtt_packet *b)
{
    if (a->type != b->type || a->flags != b->flags || a->remaining != b->remaining)
        return false;
    switch (a->type) {
    case FDL_MQTT_CONNECT: {
        const fdl_mqtt_connect *x = &a->u.connect, *y = &b->u.connect;
        return str_eq(x->client_id, y->client_id) && x->keepalive_s == y->keepalive_s &&
               x->clean_session == y->clean_session && x->has_will == y->has_will &&
               x->will_retain == y->will_retain && x->will_qos == y->will_qos &&
               str_eq(x->will_topic, y->will_topic) && str_eq(x->will_message, y->will_message) &&
               x->has_username == y->has_username && x->has_password == y->has_password &&
               str_eq(x->username, y->username) && str_eq(x->password, y->password) &&
               x->protocol_level == y->protocol_level;
    }
    case FDL_MQTT_CONNACK:
        return a->u.connack.session_present == b->u.connack.session_present &&
               a->u.connack.return_code == b->u.connack.return_code;
    case FDL_MQTT_PUBLISH: {
        const fdl_mqtt_publish *x = &a->u.publish, *y = &b->u.publish;
        return str_eq(x->topic, y->topic) && x->payload_len == y->payload_len &&
               (x->payload_len == 0 || memcmp(x->payload, y->payload, x->payload_len) == 0) &&
               x->qos == y->qos && x->retain == y->retain && x->dup == y->dup &&
               x->packet_id == y->packet_id;
    }
    case FDL_MQTT_SUBSCRIBE:
    case FDL_MQTT_UNSUBSCRIBE:
        return a->u.sub.packet_id == b->u.sub.packet_id &&
               a->u.sub.entries_len == b->u.sub.entries_len &&
               memcmp(a->u.sub.entries, b->u.sub.entries, a->u.sub.entries_len) == 0;
    case FDL_MQTT_SUBACK:
        return a->u.suback.packet_id == b->u.suback.packet_id &&
               a->u.suback.n_codes == b->u.suback.n_codes &&
               memcmp(a->u.suback.codes, b->u.suback.codes, a->u.suback.n_codes) == 0;
    case FDL_MQTT_PINGREQ:
    case FDL_MQTT_PINGRESP:
    case FDL_MQTT_DISCONNECT:
        return true;
    default:
        return a->u.packet_id == b->u.packet_id;
    }
}

static void check_packet(const uint8_t *buf, size_t used, const fdl_mqtt_packet *p)
{
    CHECK(p->remaining <= FUZZ_MAX_REMAINING);
    CHECK(used >= 2 && used <= p->remaining + FDL_MQTT_MAX_HEADER);
    size_t body_at = used - p->remaining;

    /* Every strict prefix needs more (the header check makes each one O(1)). */
    for (size_t k = 0; k < used; k++) {
        fdl_mqtt_packet q;
        size_t u = 1;
        CHECK(fdl_mqtt_decode(buf, k, FUZZ_MAX_REMAINING, &q, &u) == FDL_MQTT_NEED_MORE);
        CHECK(u == 0);
    }

    /* Re-encode: canonical output equals the input except for a non-minimal length. */
    size_t n = 0;
    CHECK(fdl_mqtt_encode_packet(g_out, sizeof g_out, p, &n) == FDL_MQTT_OK);
    CHECK(n > p->remaining && n <= used);
    size_t new_body_at = n - p->remaining;
    CHECK(g_out[0] == buf[0]);
    CHECK(memcmp(g_out + new_body_at, buf + body_at, p->remaining) == 0);
    if (new_body_at == body_at)
        CHECK(memcmp(g_out, buf, used) == 0);

    /* The per-filter encoders accept exactly what the decoder accepted, and agree byte for byte. */
    if (p->type == FDL_MQTT_SUBSCRIBE || p->type == FDL_MQTT_UNSUBSCRIBE) {
        size_t ns = collect_subs(p), m = 0;
        fdl_mqtt_status st = p->type == FDL_MQTT_SUBSCRIBE
                                 ? fdl_mqtt_encode_subscribe(g_out_entries, sizeof g_out_entries, p->u.sub.packet_id,
                                                             g_subs, ns, &m)
                                 : fdl_mqtt_encode_unsubscribe(g_out_entries, sizeof g_out_entries,
                                                               p->u.sub.packet_id, g_subs, ns, &m);
        CHECK(st == FDL_MQTT_OK && m == n && memcmp(g_out_entries, g_out, n) == 0);
    }

    /* One byte short is refused, untouched, with the needed size. */
    size_t need = 0;
    uint8_t keep = g_out[n - 1];
    CHECK(fdl_mqtt_encode_packet(g_out, n - 1, p, &need) == FDL_MQTT_NO_SPACE);
    CHECK(need == n);
    CHECK(g_out[n - 1] == keep);

    /* And the re-encoded bytes decode to the same packet. */
    fdl_mqtt_packet again;
    size_t used2 = 0;
    CHECK(fdl_mqtt_decode(g_out, n, FUZZ_MAX_REMAINING, &again, &used2) == FDL_MQTT_OK);
    CHECK(used2 == n);
    CHECK(same_packet(p, &again));
}

/* Wraps s in a packet built by hand: PUBLISH QoS 0 (topic) or SUBSCRIBE (filter). */
static size_t hand_built(bool subscribe, fdl_mqtt_str s, uint8_t *out)
{
    size_t rem = 2u + s.len + (subscribe ? 3u : 0u), n = 0;
    out[n++] = subscribe ? 0x82 : 0x30;
    n += varint_size((uint32_t)rem);
    writer w = {out + 1, 0};
    wr_varint(&w, (uint32_t)rem);
    if (subscribe) {
        out[n++] = 0;
        out[n++] = 1;
    }
    out[n++] = (uint8_t)(s.len >> 8);
    out[n++] = (uint8_t)s.len;
    memcpy(out + n, s.ptr, s.len);
    n += s.len;
    if (subscribe)
        out[n++] = 1;
    return n;
}

/* The encoders' argument checks and the decoder's must agree on strings. */
static void check_string_rules(const uint8_t *data, size_t size)
{
    fdl_mqtt_str s = {data, (uint16_t)(size < 64 ? size : 64)};
    static uint8_t hand[128];
    for (int subscribe = 0; subscribe <= 1; subscribe++) {
        size_t n = 0, hn = hand_built(subscribe, s, hand), used = 0;
        fdl_mqtt_status enc;
        if (subscribe) {
            fdl_mqtt_sub sub = {s, 1};
            enc = fdl_mqtt_encode_subscribe(g_out, sizeof g_out, 1, &sub, 1, &n);
        } else {
            fdl_mqtt_publish pb = {.topic = s};
            enc = fdl_mqtt_encode_publish(g_out, sizeof g_out, &pb, &n);
        }
        fdl_mqtt_packet p;
        fdl_mqtt_status dec = fdl_mqtt_decode(hand, hn, FUZZ_MAX_REMAINING, &p, &used);
        CHECK(enc == FDL_MQTT_OK || enc == FDL_MQTT_BAD_ARG);
        CHECK(dec == FDL_MQTT_OK || dec == FDL_MQTT_MALFORMED);
        CHECK((enc == FDL_MQTT_OK) == (dec == FDL_MQTT_OK));
        if (enc == FDL_MQTT_OK)
            CHECK(n == hn && memcmp(g_out, hand, n) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_string_rules(data, size);

    size_t off = 0;
    while (off < size) {
        fdl_mqtt_packet p;
        size_t used = 12345;
        fdl_mqtt_status st = fdl_mqtt_decode(data + off, size - off, FUZZ_MAX_REMAINING, &p, &used);
        if (st != FDL_MQTT_OK) {
            CHECK(used == 0);
            CHECK(st == FDL_MQTT_NEED_MORE || st == FDL_MQTT_MALFORMED || st == FDL_MQTT_TOO_LARGE);
            /* TOO_LARGE depends on the ceiling alone: at the protocol maximum
             * the same bytes must get a different answer. */
            if (st == FDL_MQTT_TOO_LARGE) {
                st = fdl_mqtt_decode(data + off, size - off, FDL_MQTT_MAX_REMAINING, &p, &used);
                CHECK(st != FDL_MQTT_TOO_LARGE);
            }
            break;
        }
        CHECK(used <= size - off);
        check_packet(data + off, used, &p);
        off += used;
    }
    return 0;
}
