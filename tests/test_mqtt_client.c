/*
 * tests/test_mqtt_client.c — the MQTT client session against a scripted broker
 * over the in-memory transport pair (no sockets, no loop, deterministic).
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/memtp.h"
#include "devices/mqtt_client.h"
#include "sim/alloc.h"

typedef struct rec {
    int connacks, errors, messages, pubacks;
    fdl_mqttc_status last_err;
    int last_detail;
    uint16_t last_ack_id;
    char last_topic[64];
    char last_payload[64];
} rec;

static void on_connack(void *ud, uint8_t rc) { ((rec *)ud)->connacks++; (void)rc; }
static void on_message(void *ud, const fdl_mqtt_publish *p)
{
    rec *r = ud;
    r->messages++;
    snprintf(r->last_topic, sizeof r->last_topic, "%.*s", p->topic.len, (const char *)p->topic.ptr);
    snprintf(r->last_payload, sizeof r->last_payload, "%.*s", (int)p->payload_len, (const char *)p->payload);
}
static void on_puback(void *ud, uint16_t id, uint64_t lat) { rec *r = ud; r->pubacks++; r->last_ack_id = id; (void)lat; }
static void on_error(void *ud, fdl_mqttc_status st, int d) { rec *r = ud; r->errors++; r->last_err = st; r->last_detail = d; }

static const fdl_mqttc_callbacks cbs = {on_connack, on_message, on_puback, NULL, on_error, NULL};

typedef struct fixture {
    fdl_transport *dev, *brk;
    fdl_mqttc c;
    rec r;
    uint8_t in[8192];   /* what the broker side has received, not yet decoded */
    size_t in_len;
    fdl_alloc_stats before;
} fixture;

static void dev_events(fdl_transport *t, fdl_tp_event ev, int st, void *ud)
{
    fixture *f = ud;
    (void)t;
    (void)st;
    if (ev == FDL_TP_READABLE)
        fdl_mqttc_on_readable(&f->c);
    else if (ev == FDL_TP_WRITABLE)
        fdl_mqttc_on_writable(&f->c);
    else if (ev == FDL_TP_CLOSED)
        fdl_mqttc_on_readable(&f->c);   /* the session notices on its next read */
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->before = fdl_alloc_get_stats();
    assert_int_equal(fdl_memtp_pair(4096, &f->dev, &f->brk), 0);
    fdl_tp_set_cb(f->dev, dev_events, f);
    fdl_mqttc_init(&f->c, "dev-000001", 30, &cbs, &f->r);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    fdl_memtp_free(f->dev);
    fdl_alloc_stats after = fdl_alloc_get_stats();
    /* The session itself never allocates; the pair's 4 allocations are returned. */
    assert_int_equal(after.allocs - f->before.allocs, after.frees - f->before.frees);
    free(f);
    return 0;
}

/* Broker side: next decoded packet sent by the device (fails the test if none). */
static fdl_mqtt_packet broker_next(fixture *f)
{
    ssize_t n;
    while ((n = fdl_tp_recv(f->brk, f->in + f->in_len, sizeof f->in - f->in_len)) > 0)
        f->in_len += (size_t)n;
    fdl_mqtt_packet p;
    size_t used = 0;
    assert_int_equal(fdl_mqtt_decode(f->in, f->in_len, 4096, &p, &used), FDL_MQTT_OK);
    /* Copy out what tests read, then consume. Views into f->in stay valid until the next call. */
    static uint8_t keep[8192];
    memcpy(keep, f->in, used);
    memmove(f->in, f->in + used, f->in_len - used);
    f->in_len -= used;
    fdl_mqtt_packet q;
    size_t u2;
    assert_int_equal(fdl_mqtt_decode(keep, used, 4096, &q, &u2), FDL_MQTT_OK);
    return q;
}

static int broker_has_nothing(fixture *f)
{
    ssize_t n;
    while ((n = fdl_tp_recv(f->brk, f->in + f->in_len, sizeof f->in - f->in_len)) > 0)
        f->in_len += (size_t)n;
    return f->in_len == 0;
}

static void broker_send(fixture *f, const uint8_t *b, size_t n)
{
    assert_int_equal(fdl_tp_send(f->brk, b, n), (ssize_t)n);
}

static void go_online(fixture *f)
{
    assert_int_equal(fdl_mqttc_start(&f->c, f->dev), FDL_MQTTC_OK);
    fdl_mqtt_packet p = broker_next(f);
    assert_int_equal(p.type, FDL_MQTT_CONNECT);
    uint8_t b[8];
    size_t n;
    assert_int_equal(fdl_mqtt_encode_connack(b, sizeof b, false, 0, &n), FDL_MQTT_OK);
    broker_send(f, b, n);
    assert_int_equal(f->r.connacks, 1);
    assert_true(f->c.online);
}

static void connect_sends_connect_and_accepts_connack(void **state)
{
    fixture *f = *state;
    assert_int_equal(fdl_mqttc_start(&f->c, f->dev), FDL_MQTTC_OK);
    fdl_mqtt_packet p = broker_next(f);
    assert_int_equal(p.type, FDL_MQTT_CONNECT);
    assert_int_equal(p.u.connect.keepalive_s, 30);
    assert_true(p.u.connect.clean_session);
    assert_int_equal(p.u.connect.client_id.len, 10);
    assert_memory_equal(p.u.connect.client_id.ptr, "dev-000001", 10);
    assert_false(f->c.online);
    /* CONNACK delivered one byte at a time. */
    const uint8_t connack[] = {0x20, 0x02, 0x00, 0x00};
    for (size_t i = 0; i < sizeof connack; i++)
        broker_send(f, &connack[i], 1);
    assert_int_equal(f->r.connacks, 1);
    assert_int_equal(f->r.errors, 0);
    assert_true(f->c.online);
}

static void connack_refusal_is_reported(void **state)
{
    fixture *f = *state;
    assert_int_equal(fdl_mqttc_start(&f->c, f->dev), FDL_MQTTC_OK);
    (void)broker_next(f);
    const uint8_t refused[] = {0x20, 0x02, 0x00, 0x05};
    broker_send(f, refused, sizeof refused);
    assert_int_equal(f->r.connacks, 0);
    assert_int_equal(f->r.errors, 1);
    assert_int_equal(f->r.last_err, FDL_MQTTC_REFUSED);
    assert_int_equal(f->r.last_detail, 5);
    assert_false(f->c.online);
    assert_int_equal(fdl_mqttc_publish(&f->c, "telemetry/x", (const uint8_t *)"1", 1, 0, NULL),
                     FDL_MQTTC_NOT_ONLINE);
}

static void qos1_publish_is_acknowledged(void **state)
{
    fixture *f = *state;
    go_online(f);
    uint16_t id = 0;
    assert_int_equal(fdl_mqttc_publish(&f->c, "telemetry/dev-000001", (const uint8_t *)"{\"seq\":1}", 9, 1, &id),
                     FDL_MQTTC_OK);
    fdl_mqtt_packet p = broker_next(f);
    assert_int_equal(p.type, FDL_MQTT_PUBLISH);
    assert_int_equal(p.u.publish.qos, 1);
    assert_int_equal(p.u.publish.packet_id, id);
    assert_int_equal(p.u.publish.payload_len, 9);
    assert_memory_equal(p.u.publish.topic.ptr, "telemetry/dev-000001", 20);
    assert_int_equal(f->c.n_inflight, 1);
    uint8_t b[8];
    size_t n;
    assert_int_equal(fdl_mqtt_encode_ack(b, sizeof b, FDL_MQTT_PUBACK, id, &n), FDL_MQTT_OK);
    broker_send(f, b, n);
    assert_int_equal(f->r.pubacks, 1);
    assert_int_equal(f->r.last_ack_id, id);
    assert_int_equal(f->c.n_inflight, 0);
    assert_int_equal(f->c.n_acked, 1);
}

static void inflight_window_is_bounded(void **state)
{
    fixture *f = *state;
    go_online(f);
    for (int i = 0; i < FDL_MQTTC_INFLIGHT; i++)
        assert_int_equal(fdl_mqttc_publish(&f->c, "telemetry/a", (const uint8_t *)"x", 1, 1, NULL), FDL_MQTTC_OK);
    assert_int_equal(fdl_mqttc_publish(&f->c, "telemetry/a", (const uint8_t *)"x", 1, 1, NULL), FDL_MQTTC_BUSY);
    /* QoS 0 is not limited by the window. */
    assert_int_equal(fdl_mqttc_publish(&f->c, "telemetry/a", (const uint8_t *)"x", 1, 0, NULL), FDL_MQTTC_OK);
    assert_int_equal(fdl_mqttc_publish(&f->c, "telemetry/+", (const uint8_t *)"x", 1, 0, NULL), FDL_MQTTC_BAD_ARG);
}

static void incoming_qos1_message_is_delivered_and_acked(void **state)
{
    fixture *f = *state;
    go_online(f);
    uint16_t sid;
    assert_int_equal(fdl_mqttc_subscribe(&f->c, "commands/dev-000001", 1, &sid), FDL_MQTTC_OK);
    fdl_mqtt_packet s = broker_next(f);
    assert_int_equal(s.type, FDL_MQTT_SUBSCRIBE);
    assert_int_equal(s.u.sub.packet_id, sid);
    fdl_mqtt_publish pub = {.topic = fdl_mqtt_cstr("commands/dev-000001"),
                            .payload = (const uint8_t *)"reboot",
                            .payload_len = 6,
                            .qos = 1,
                            .packet_id = 77};
    uint8_t b[128];
    size_t n;
    assert_int_equal(fdl_mqtt_encode_publish(b, sizeof b, &pub, &n), FDL_MQTT_OK);
    broker_send(f, b, n);
    assert_int_equal(f->r.messages, 1);
    assert_string_equal(f->r.last_topic, "commands/dev-000001");
    assert_string_equal(f->r.last_payload, "reboot");
    fdl_mqtt_packet ack = broker_next(f);
    assert_int_equal(ack.type, FDL_MQTT_PUBACK);
    assert_int_equal(ack.u.packet_id, 77);
}

static void malformed_packet_from_broker_is_refused_and_counted(void **state)
{
    fixture *f = *state;
    go_online(f);
    const uint8_t bad[] = {0x20, 0x03, 0x00, 0x00, 0x00};   /* CONNACK with the wrong length */
    broker_send(f, bad, sizeof bad);
    assert_int_equal(f->r.errors, 1);
    assert_int_equal(f->r.last_err, FDL_MQTTC_MALFORMED);
    assert_int_equal(f->c.n_malformed, 1);
    /* Nothing more is processed after the failure. */
    const uint8_t pingresp[] = {0xD0, 0x00};
    broker_send(f, pingresp, sizeof pingresp);
    assert_int_equal(f->r.errors, 1);
}

static void oversized_packet_is_refused_before_buffering(void **state)
{
    fixture *f = *state;
    go_online(f);
    /* SUBACK announcing 100000 bytes: far above the receive ceiling, and not a
     * PUBLISH that could be skipped. */
    const uint8_t big[] = {0x90, 0xA0, 0x8D, 0x06};
    broker_send(f, big, sizeof big);
    assert_int_equal(f->r.last_err, FDL_MQTTC_MALFORMED);
    assert_int_equal(f->r.last_detail, FDL_MQTT_TOO_LARGE);
}

static void oversized_publish_is_skipped_and_the_session_survives(void **state)
{
    fixture *f = *state;
    go_online(f);
    size_t plen = 3 * FDL_MQTTC_RX_CAP, cap = plen + 64, n = 0;
    uint8_t *payload = malloc(plen), *wire = malloc(cap);
    assert_non_null(payload);
    assert_non_null(wire);
    memset(payload, 'J', plen);
    fdl_mqtt_publish big = {.topic = fdl_mqtt_cstr("commands/dev-1"), .payload = payload, .payload_len = plen,
                            .qos = 1, .packet_id = 7};
    assert_int_equal(fdl_mqtt_encode_publish(wire, cap, &big, &n), FDL_MQTT_OK);
    /* In pieces, as TCP delivers it; the first piece holds the packet id. */
    for (size_t off = 0; off < n; off += 1000)
        broker_send(f, wire + off, n - off < 1000 ? n - off : 1000);
    assert_int_equal(f->r.errors, 0);
    assert_int_equal(f->r.messages, 0);
    assert_int_equal(f->c.n_oversized, 1);
    fdl_mqtt_packet p = broker_next(f);
    assert_int_equal(p.type, FDL_MQTT_PUBACK);
    assert_int_equal(p.u.packet_id, 7);
    /* The next, normal message is delivered. */
    uint8_t small[64];
    fdl_mqtt_publish ok = {.topic = fdl_mqtt_cstr("commands/dev-1"), .payload = (const uint8_t *)"hi",
                           .payload_len = 2};
    assert_int_equal(fdl_mqtt_encode_publish(small, sizeof small, &ok, &n), FDL_MQTT_OK);
    broker_send(f, small, n);
    assert_int_equal(f->r.messages, 1);
    assert_string_equal(f->r.last_payload, "hi");
    free(payload);
    free(wire);
}

static void client_packet_from_broker_is_a_protocol_error(void **state)
{
    fixture *f = *state;
    go_online(f);
    uint8_t b[64];
    size_t n;
    fdl_mqtt_sub s = {fdl_mqtt_cstr("#"), 0};
    assert_int_equal(fdl_mqtt_encode_subscribe(b, sizeof b, 3, &s, 1, &n), FDL_MQTT_OK);
    broker_send(f, b, n);
    assert_int_equal(f->r.last_err, FDL_MQTTC_PROTOCOL);
}

static void partial_and_blocked_writes_deliver_whole_packets(void **state)
{
    fixture *f = *state;
    fdl_memtp_set_max_send(f->dev, 3);
    go_online(f);
    fdl_memtp_set_blocked(f->dev, 1);
    assert_int_equal(fdl_mqttc_publish(&f->c, "telemetry/dev-000001", (const uint8_t *)"abc", 3, 1, NULL),
                     FDL_MQTTC_OK);
    assert_true(broker_has_nothing(f));
    assert_true(f->c.tx_len > 0);
    fdl_memtp_set_blocked(f->dev, 0);   /* WRITABLE -> the session flushes */
    fdl_mqtt_packet p = broker_next(f);
    assert_int_equal(p.type, FDL_MQTT_PUBLISH);
    assert_int_equal(p.u.publish.payload_len, 3);
    assert_int_equal(f->c.tx_len, 0);
}

static void keepalive_pings_and_times_out(void **state)
{
    fixture *f = *state;
    go_online(f);
    uint64_t t = f->c.last_tx_ns;
    const uint64_t s = 1000000000ull;
    /* Quiet for less than the keepalive: nothing sent, wait reported. */
    uint64_t wait = fdl_mqttc_poll(&f->c, t + 10 * s);
    assert_true(wait > 19000 && wait <= 20001);
    assert_true(broker_has_nothing(f));
    /* Keepalive elapsed: PINGREQ. */
    fdl_mqttc_poll(&f->c, t + 30 * s);
    assert_int_equal(broker_next(f).type, FDL_MQTT_PINGREQ);
    /* Answered: no error even much later than one keepalive after the ping. */
    const uint8_t pingresp[] = {0xD0, 0x00};
    broker_send(f, pingresp, sizeof pingresp);
    assert_int_equal(f->c.ping_sent_ns, 0);
    /* Next ping is not answered: after another keepalive the session fails. */
    uint64_t t2 = f->c.last_tx_ns;
    fdl_mqttc_poll(&f->c, t2 + 30 * s);
    assert_int_equal(broker_next(f).type, FDL_MQTT_PINGREQ);
    fdl_mqttc_poll(&f->c, t2 + 61 * s);
    assert_int_equal(f->r.errors, 1);
    assert_int_equal(f->r.last_err, FDL_MQTTC_TIMEOUT);
}

static void peer_hangup_is_a_transport_error(void **state)
{
    fixture *f = *state;
    go_online(f);
    fdl_memtp_hangup(f->brk);
    assert_int_equal(f->r.errors, 1);
    assert_int_equal(f->r.last_err, FDL_MQTTC_TRANSPORT);
    assert_int_equal(f->r.last_detail, FDL_TP_ECLOSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(connect_sends_connect_and_accepts_connack, setup, teardown),
        cmocka_unit_test_setup_teardown(connack_refusal_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(qos1_publish_is_acknowledged, setup, teardown),
        cmocka_unit_test_setup_teardown(inflight_window_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(incoming_qos1_message_is_delivered_and_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_packet_from_broker_is_refused_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_packet_is_refused_before_buffering, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_publish_is_skipped_and_the_session_survives, setup, teardown),
        cmocka_unit_test_setup_teardown(client_packet_from_broker_is_a_protocol_error, setup, teardown),
        cmocka_unit_test_setup_teardown(partial_and_blocked_writes_deliver_whole_packets, setup, teardown),
        cmocka_unit_test_setup_teardown(keepalive_pings_and_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_hangup_is_a_transport_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
