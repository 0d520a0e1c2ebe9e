/* devices/mqtt_client.c — MQTT 3.1.1 session over a transport (see mqtt_client.h). */
#include "devices/mqtt_client.h"

#include <string.h>
#include <time.h>

#define CONNACK_TIMEOUT_NS (10ull * 1000000000ull)

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *fdl_mqttc_strerror(fdl_mqttc_status st)
{
    switch (st) {
    case FDL_MQTTC_OK: return "ok";
    case FDL_MQTTC_BUSY: return "too many messages in flight";
    case FDL_MQTTC_NO_SPACE: return "transmit buffer full";
    case FDL_MQTTC_NOT_ONLINE: return "not connected";
    case FDL_MQTTC_MALFORMED: return "malformed packet from broker";
    case FDL_MQTTC_PROTOCOL: return "unexpected packet from broker";
    case FDL_MQTTC_REFUSED: return "connection refused by broker (CONNACK)";
    case FDL_MQTTC_TIMEOUT: return "broker did not answer in time";
    case FDL_MQTTC_TRANSPORT: return "transport failed";
    case FDL_MQTTC_BAD_ARG: return "invalid argument";
    }
    return "unknown";
}

void fdl_mqttc_init(fdl_mqttc *c, const char *client_id, uint16_t keepalive_s,
                    const fdl_mqttc_callbacks *cb, void *ud)
{
    memset(c, 0, offsetof(fdl_mqttc, rx));
    c->client_id = client_id;
    c->keepalive_s = keepalive_s;
    c->cb = cb;
    c->ud = ud;
    c->next_id = 1;
}

void fdl_mqttc_reset(fdl_mqttc *c)
{
    c->tp = NULL;
    c->connecting = c->online = c->failed = false;
    c->rx_len = c->tx_len = c->tx_retry_len = 0;
    c->discard = 0;
    c->n_inflight = 0;
    c->ping_sent_ns = c->connect_sent_ns = 0;
}

static void fail(fdl_mqttc *c, fdl_mqttc_status st, int detail)
{
    if (c->failed)
        return;
    c->failed = true;
    c->online = c->connecting = false;
    if (c->cb->on_error)
        c->cb->on_error(c->ud, st, detail);
}

static void flush(fdl_mqttc *c)
{
    while (c->tp && !c->failed && c->tx_len > 0) {
        /* After a would-block, TLS must be retried with the same length it was given. */
        size_t len = c->tx_retry_len ? c->tx_retry_len : c->tx_len;
        ssize_t n = fdl_tp_send(c->tp, c->tx, len);
        if (n == 0) {
            c->tx_retry_len = len;
            return;
        }
        if (n < 0) {
            fail(c, FDL_MQTTC_TRANSPORT, (int)n);
            return;
        }
        c->tx_retry_len = 0;
        memmove(c->tx, c->tx + n, c->tx_len - (size_t)n);
        c->tx_len -= (size_t)n;
        c->last_tx_ns = mono_ns();
    }
}

/* Reserves room at the end of tx for an encoder; commit with the encoded length. */
static uint8_t *tx_room(fdl_mqttc *c, size_t *cap)
{
    *cap = FDL_MQTTC_TX_CAP - c->tx_len;
    return c->tx + c->tx_len;
}

/* Commits an encoded packet. The length is passed by pointer and read here, after the
 * encoder call in the argument list has run (argument evaluation order is unspecified). */
static fdl_mqttc_status queued(fdl_mqttc *c, fdl_mqtt_status st, const size_t *len)
{
    size_t n = *len;
    if (st == FDL_MQTT_NO_SPACE)
        return FDL_MQTTC_NO_SPACE;
    if (st != FDL_MQTT_OK)
        return FDL_MQTTC_BAD_ARG;
    c->tx_len += n;
    flush(c);
    return FDL_MQTTC_OK;
}

fdl_mqttc_status fdl_mqttc_start(fdl_mqttc *c, fdl_transport *tp)
{
    fdl_mqttc_reset(c);
    c->tp = tp;
    fdl_mqtt_connect conn;
    memset(&conn, 0, sizeof conn);
    conn.client_id = fdl_mqtt_cstr(c->client_id);
    conn.keepalive_s = c->keepalive_s;
    conn.clean_session = true;
    size_t cap, n = 0;
    uint8_t *out = tx_room(c, &cap);
    c->connecting = true;
    c->connect_sent_ns = mono_ns();
    return queued(c, fdl_mqtt_encode_connect(out, cap, &conn, &n), &n);
}

static void send_ack(fdl_mqttc *c, uint8_t type, uint16_t id)
{
    size_t cap, n = 0;
    uint8_t *out = tx_room(c, &cap);
    if (queued(c, fdl_mqtt_encode_ack(out, cap, type, id, &n), &n) != FDL_MQTTC_OK)
        fail(c, FDL_MQTTC_NO_SPACE, 0);
}

static void handle(fdl_mqttc *c, const fdl_mqtt_packet *p)
{
    switch (p->type) {
    case FDL_MQTT_CONNACK:
        if (!c->connecting) {
            fail(c, FDL_MQTTC_PROTOCOL, p->type);
            return;
        }
        c->connecting = false;
        if (p->u.connack.return_code != 0) {
            fail(c, FDL_MQTTC_REFUSED, p->u.connack.return_code);
            return;
        }
        c->online = true;
        if (c->cb->on_connack)
            c->cb->on_connack(c->ud, 0);
        return;
    case FDL_MQTT_PUBLISH:
        if (!c->online) {
            fail(c, FDL_MQTTC_PROTOCOL, p->type);
            return;
        }
        c->n_received++;
        if (p->u.publish.qos == 1)
            send_ack(c, FDL_MQTT_PUBACK, p->u.publish.packet_id);
        else if (p->u.publish.qos == 2)
            send_ack(c, FDL_MQTT_PUBREC, p->u.publish.packet_id);
        if (c->cb->on_message)
            c->cb->on_message(c->ud, &p->u.publish);
        return;
    case FDL_MQTT_PUBACK:
        for (unsigned i = 0; i < c->n_inflight; i++) {
            if (c->inflight[i].id == p->u.packet_id) {
                uint64_t lat = (mono_ns() - c->inflight[i].sent_ns) / 1000u;
                c->inflight[i] = c->inflight[--c->n_inflight];
                c->n_acked++;
                if (c->cb->on_puback)
                    c->cb->on_puback(c->ud, p->u.packet_id, lat);
                return;
            }
        }
        return;   /* a PUBACK for an id we no longer track (e.g. resent): harmless */
    case FDL_MQTT_PUBREL:
        send_ack(c, FDL_MQTT_PUBCOMP, p->u.packet_id);
        return;
    case FDL_MQTT_SUBACK:
        if (c->cb->on_suback)
            c->cb->on_suback(c->ud, p->u.suback.packet_id, p->u.suback.codes, p->u.suback.n_codes);
        return;
    case FDL_MQTT_UNSUBACK:
    case FDL_MQTT_PUBCOMP:
        return;
    case FDL_MQTT_PINGRESP:
        c->ping_sent_ns = 0;
        return;
    default:
        /* CONNECT, SUBSCRIBE, PINGREQ, ... are client-to-server packets. */
        fail(c, FDL_MQTTC_PROTOCOL, p->type);
        return;
    }
}

/*
 * The decoder refused buf (FDL_MQTT_TOO_LARGE). A PUBLISH that is merely larger
 * than our buffer is well framed: skip its bytes and count it instead of tearing
 * the session down (a peer's 64 KiB junk must not cost us our connection). Its
 * QoS 1 packet id is acknowledged when already buffered, so the broker's in-flight
 * window does not fill up. Returns true when the packet is being skipped.
 */
static bool skip_oversized(fdl_mqttc *c, const uint8_t *buf, size_t len)
{
    if (!c->online || len < 2 || (buf[0] >> 4) != FDL_MQTT_PUBLISH)
        return false;
    size_t rem = 0, hdr = 0;
    for (size_t i = 0; i < 4 && 1 + i < len; i++) {
        rem |= (size_t)(buf[1 + i] & 0x7fu) << (7 * i);
        if (!(buf[1 + i] & 0x80u)) {
            hdr = 2 + i;
            break;
        }
    }
    if (hdr == 0)
        return false;
    unsigned qos = (buf[0] >> 1) & 3u;
    fdl_mqtt_publish p;
    memset(&p, 0, sizeof p);
    p.qos = (uint8_t)qos;
    size_t tlen = len >= hdr + 2 ? ((size_t)buf[hdr] << 8) | buf[hdr + 1] : 0;
    size_t at = hdr + 2 + tlen + (qos ? 2 : 0); /* where the payload starts */
    size_t full = hdr + rem >= at ? hdr + rem - at : 0;
    if (len >= hdr + 2 + tlen && tlen <= UINT16_MAX) {
        p.topic.ptr = buf + hdr + 2;
        p.topic.len = (uint16_t)tlen;
    }
    if (qos && len >= at) {
        p.packet_id = (uint16_t)((buf[at - 2] << 8) | buf[at - 1]);
        if (qos == 1 && p.packet_id)
            send_ack(c, FDL_MQTT_PUBACK, p.packet_id);
    }
    if (len > at) {
        p.payload = buf + at;
        p.payload_len = len - at;
    }
    c->discard = hdr + rem;
    c->n_oversized++;
    if (c->cb->on_oversized)
        c->cb->on_oversized(c->ud, &p, full);
    return true;
}

void fdl_mqttc_on_readable(fdl_mqttc *c)
{
    while (c->tp && !c->failed) {
        ssize_t n = fdl_tp_recv(c->tp, c->rx + c->rx_len, FDL_MQTTC_RX_CAP - c->rx_len);
        if (n == 0)
            return;
        if (n < 0) {
            fail(c, FDL_MQTTC_TRANSPORT, (int)n);
            return;
        }
        c->rx_len += (size_t)n;
        size_t off = 0;
        /* A callback may fail or reset the session (tp becomes NULL): re-check after each packet. */
        while (c->tp && !c->failed) {
            if (c->discard) {
                size_t d = c->rx_len - off < c->discard ? c->rx_len - off : c->discard;
                off += d;
                c->discard -= d;
                if (c->discard)
                    break;
                continue;
            }
            fdl_mqtt_packet p;
            size_t used = 0;
            fdl_mqtt_status st = fdl_mqtt_decode(c->rx + off, c->rx_len - off, FDL_MQTTC_RX_CAP - 5, &p, &used);
            if (st == FDL_MQTT_NEED_MORE)
                break;
            if (st == FDL_MQTT_TOO_LARGE && skip_oversized(c, c->rx + off, c->rx_len - off))
                continue;
            if (st != FDL_MQTT_OK) {
                c->n_malformed++;
                fail(c, FDL_MQTTC_MALFORMED, (int)st);
                return;
            }
            handle(c, &p);
            off += used;
        }
        if (!c->tp || c->failed)
            return;
        memmove(c->rx, c->rx + off, c->rx_len - off);
        c->rx_len -= off;
    }
}

void fdl_mqttc_on_writable(fdl_mqttc *c)
{
    flush(c);
}

fdl_mqttc_status fdl_mqttc_publish(fdl_mqttc *c, const char *topic, const uint8_t *payload, size_t len,
                                   uint8_t qos, uint16_t *id)
{
    if (!c->online)
        return FDL_MQTTC_NOT_ONLINE;
    if (qos > 1)
        return FDL_MQTTC_BAD_ARG;
    if (qos == 1 && c->n_inflight == FDL_MQTTC_INFLIGHT)
        return FDL_MQTTC_BUSY;
    fdl_mqtt_publish p;
    memset(&p, 0, sizeof p);
    p.topic = fdl_mqtt_cstr(topic);
    p.payload = payload;
    p.payload_len = len;
    p.qos = qos;
    if (qos) {
        p.packet_id = c->next_id++;
        if (c->next_id == 0)
            c->next_id = 1;
    }
    size_t cap, n = 0;
    uint8_t *out = tx_room(c, &cap);
    fdl_mqtt_status st = fdl_mqtt_encode_publish(out, cap, &p, &n);
    if (st != FDL_MQTT_OK)
        return st == FDL_MQTT_NO_SPACE ? FDL_MQTTC_NO_SPACE : FDL_MQTTC_BAD_ARG;
    if (qos) {
        c->inflight[c->n_inflight].id = p.packet_id;
        c->inflight[c->n_inflight].sent_ns = mono_ns();
        c->n_inflight++;
        if (id)
            *id = p.packet_id;
    }
    c->n_published++;
    return queued(c, FDL_MQTT_OK, &n);
}

fdl_mqttc_status fdl_mqttc_subscribe(fdl_mqttc *c, const char *filter, uint8_t qos, uint16_t *id)
{
    if (!c->online)
        return FDL_MQTTC_NOT_ONLINE;
    fdl_mqtt_sub s = {fdl_mqtt_cstr(filter), qos};
    uint16_t pid = c->next_id++;
    if (c->next_id == 0)
        c->next_id = 1;
    if (id)
        *id = pid;
    size_t cap, n = 0;
    uint8_t *out = tx_room(c, &cap);
    return queued(c, fdl_mqtt_encode_subscribe(out, cap, pid, &s, 1, &n), &n);
}

fdl_mqttc_status fdl_mqttc_disconnect(fdl_mqttc *c)
{
    if (!c->tp || c->failed)
        return FDL_MQTTC_NOT_ONLINE;
    size_t cap, n = 0;
    uint8_t *out = tx_room(c, &cap);
    fdl_mqttc_status st = queued(c, fdl_mqtt_encode_simple(out, cap, FDL_MQTT_DISCONNECT, &n), &n);
    c->online = false;
    return st;
}

uint64_t fdl_mqttc_poll(fdl_mqttc *c, uint64_t now_ns)
{
    if (!c->tp || c->failed)
        return 1000;
    if (c->connecting) {
        if (now_ns - c->connect_sent_ns > CONNACK_TIMEOUT_NS) {
            fail(c, FDL_MQTTC_TIMEOUT, 0);
            return 1000;
        }
        return 1000;
    }
    if (!c->online || c->keepalive_s == 0)
        return 1000;
    uint64_t ka_ns = (uint64_t)c->keepalive_s * 1000000000ull;
    if (c->ping_sent_ns && now_ns - c->ping_sent_ns > ka_ns) {
        fail(c, FDL_MQTTC_TIMEOUT, 0);
        return 1000;
    }
    if (!c->ping_sent_ns && now_ns - c->last_tx_ns >= ka_ns) {
        size_t cap, n = 0;
        uint8_t *out = tx_room(c, &cap);
        if (queued(c, fdl_mqtt_encode_simple(out, cap, FDL_MQTT_PINGREQ, &n), &n) == FDL_MQTTC_OK)
            c->ping_sent_ns = now_ns;
    }
    uint64_t since = now_ns - c->last_tx_ns;
    uint64_t wait_ns = since >= ka_ns ? ka_ns : ka_ns - since;
    return wait_ns / 1000000u + 1;
}
