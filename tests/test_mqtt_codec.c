/*
 * tests/test_mqtt_codec.c — unit tests for the sans-I/O MQTT 3.1.1 codec.
 *
 * Two groups: the decoder vectors in tests/vectors/mqtt/decode.txt, one cmocka
 * test per line (format described at the top of that file), and hand-written
 * tests for round trips, prefixes, flags and the encoders' refusals.
 */
#include "testutil.h"

#include "devices/mqtt_codec.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* Helpers shared by both groups                                              */
/* ------------------------------------------------------------------------- */

#define BIG 70000   /* larger than any packet the tests build */

static uint8_t g_out[BIG];
static uint8_t g_out2[BIG];

static void assert_str_eq(fdl_mqtt_str got, const uint8_t *want, size_t want_len)
{
    assert_int_equal(got.len, want_len);
    if (want_len)
        assert_memory_equal(got.ptr, want, want_len);
}

static void assert_str_cstr(fdl_mqtt_str got, const char *want)
{
    assert_str_eq(got, (const uint8_t *)want, strlen(want));
}

/* Decodes buf[0..len) expecting OK and a packet of exactly len bytes. */
static void decode_whole(const uint8_t *buf, size_t len, fdl_mqtt_packet *pkt)
{
    size_t used = 12345;
    assert_int_equal(fdl_mqtt_decode(buf, len, FDL_MQTT_MAX_REMAINING, pkt, &used), FDL_MQTT_OK);
    assert_int_equal(used, len);
}

static fdl_mqtt_status decode_st(const uint8_t *buf, size_t len, uint32_t max)
{
    fdl_mqtt_packet pkt;
    size_t used = 12345;
    fdl_mqtt_status st = fdl_mqtt_decode(buf, len, max, &pkt, &used);
    if (st != FDL_MQTT_OK)
        assert_int_equal(used, 0);
    return st;
}

/* Every strict prefix of a valid packet must ask for more bytes and consume nothing. */
static void assert_prefixes_need_more(const uint8_t *buf, size_t len)
{
    for (size_t k = 0; k < len; k++) {
        fdl_mqtt_packet pkt;
        size_t used = 12345;
        fdl_mqtt_status st = fdl_mqtt_decode(buf, k, FDL_MQTT_MAX_REMAINING, &pkt, &used);
        if (st != FDL_MQTT_NEED_MORE)
            fail_msg("prefix of %zu/%zu bytes: %s", k, len, fdl_mqtt_strerror(st));
        assert_int_equal(used, 0);
    }
}


/*
 * Checks an encoded packet: it decodes whole, every prefix needs more, every
 * too-small buffer is refused without a write, and re-encoding the decoded
 * packet gives the same bytes.
 */
static void check_encoded(const uint8_t *buf, size_t len, fdl_mqtt_packet *pkt)
{
    decode_whole(buf, len, pkt);
    assert_prefixes_need_more(buf, len);
    size_t n = 0;
    assert_int_equal(fdl_mqtt_encode_packet(g_out2, sizeof g_out2, pkt, &n), FDL_MQTT_OK);
    assert_int_equal(n, len);
    assert_memory_equal(g_out2, buf, len);
}

/* ------------------------------------------------------------------------- */
/* Group 1: decoder vectors from a file                                       */
/* ------------------------------------------------------------------------- */

#define MAX_VECTORS 400
#define MAX_KV 24

typedef struct vector {
    char name[64];
    fdl_mqtt_status status;
    uint8_t data[512];
    size_t len;
    uint32_t max;
    size_t n_kv;
    char key[MAX_KV][24];
    char val[MAX_KV][160];
} vector;

static vector g_vec[MAX_VECTORS];
static struct CMUnitTest g_vec_tests[MAX_VECTORS];
static size_t g_n_vec;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Appends hex text to out; returns false on odd length or non-hex characters. */
static bool parse_hex(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    size_t n = strlen(s);
    if (n % 2)
        return false;
    for (size_t i = 0; i < n; i += 2) {
        int hi = hexval((unsigned char)s[i]), lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0 || *len >= cap)
            return false;
        out[(*len)++] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool parse_status(const char *s, fdl_mqtt_status *st)
{
    static const struct { const char *name; fdl_mqtt_status st; } tab[] = {
        {"OK", FDL_MQTT_OK}, {"NEED_MORE", FDL_MQTT_NEED_MORE},
        {"MALFORMED", FDL_MQTT_MALFORMED}, {"TOO_LARGE", FDL_MQTT_TOO_LARGE},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].name) == 0) {
            *st = tab[i].st;
            return true;
        }
    return false;
}

/* Reads the vector file; returns false (after printing why) on any syntax error. */
static bool load_vectors(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return false;
    }
    char line[4096];
    unsigned lineno = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        char *save = NULL;
        char *tok = strtok_r(line, " \t\r\n", &save);
        if (!tok || tok[0] == '#')
            continue;
        if (g_n_vec == MAX_VECTORS) {
            fprintf(stderr, "%s: more than %d vectors\n", path, MAX_VECTORS);
            ok = false;
            break;
        }
        vector *v = &g_vec[g_n_vec];
        memset(v, 0, sizeof *v);
        v->max = FDL_MQTT_MAX_REMAINING;
        snprintf(v->name, sizeof v->name, "%s", tok);
        tok = strtok_r(NULL, " \t\r\n", &save);
        if (!tok || !parse_status(tok, &v->status)) {
            fprintf(stderr, "%s:%u: bad status\n", path, lineno);
            ok = false;
            break;
        }
        while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
            char *eq = strchr(tok, '=');
            if (!eq) {
                if (v->n_kv > 0 || !parse_hex(tok, v->data, sizeof v->data, &v->len)) {
                    fprintf(stderr, "%s:%u: bad hex '%s'\n", path, lineno, tok);
                    ok = false;
                }
                continue;
            }
            *eq = '\0';
            if (strcmp(tok, "max") == 0) {
                v->max = (uint32_t)strtoul(eq + 1, NULL, 0);
                continue;
            }
            if (v->n_kv == MAX_KV || strlen(tok) >= sizeof v->key[0] ||
                strlen(eq + 1) >= sizeof v->val[0]) {
                fprintf(stderr, "%s:%u: too many or too long fields\n", path, lineno);
                ok = false;
                break;
            }
            snprintf(v->key[v->n_kv], sizeof v->key[0], "%s", tok);
            snprintf(v->val[v->n_kv], sizeof v->val[0], "%s", eq + 1);
            v->n_kv++;
        }
        g_n_vec++;
    }
    fclose(f);
    return ok;
}

/* A string value: literal text, or raw bytes after "hex:". */
static void want_str(fdl_mqtt_str got, const char *val, const char *key)
{
    uint8_t b[160];
    size_t n = 0;
    if (strncmp(val, "hex:", 4) == 0) {
        if (!parse_hex(val + 4, b, sizeof b, &n))
            fail_msg("bad hex in %s", key);
        assert_str_eq(got, b, n);
    } else {
        assert_str_cstr(got, val);
    }
}

static void want_bytes(const uint8_t *got, size_t got_len, const char *val, const char *key)
{
    uint8_t b[160];
    size_t n = 0;
    if (!parse_hex(val, b, sizeof b, &n))
        fail_msg("bad hex in %s", key);
    assert_int_equal(got_len, n);
    if (n)
        assert_memory_equal(got, b, n);
}

/* Checks one key=value expectation against the decoded packet. */
static void check_field(const fdl_mqtt_packet *p, size_t used, const char *k, const char *v,
                        size_t *sub_idx, size_t *sub_pos)
{
    unsigned long n = strtoul(v, NULL, 0);
    const fdl_mqtt_connect *c = &p->u.connect;
    const fdl_mqtt_publish *pb = &p->u.publish;

#define NUM(key, expr) if (strcmp(k, key) == 0) { assert_int_equal((expr), n); return; }
#define STR(key, expr) if (strcmp(k, key) == 0) { want_str((expr), v, k); return; }
    NUM("consumed", used);
    NUM("type", p->type);
    NUM("flags", p->flags);
    NUM("remaining", p->remaining);
    if (p->type == FDL_MQTT_CONNECT) {
        NUM("level", c->protocol_level);
        NUM("keepalive", c->keepalive_s);
        NUM("clean", c->clean_session);
        NUM("will", c->has_will);
        NUM("will_qos", c->will_qos);
        NUM("will_retain", c->will_retain);
        NUM("has_user", c->has_username);
        NUM("has_pass", c->has_password);
        STR("client_id", c->client_id);
        STR("will_topic", c->will_topic);
        STR("user", c->username);
        if (strcmp(k, "will_msg") == 0) {
            want_bytes(c->will_message.ptr, c->will_message.len, v, k);
            return;
        }
        if (strcmp(k, "pass") == 0) {
            want_bytes(c->password.ptr, c->password.len, v, k);
            return;
        }
    }
    if (p->type == FDL_MQTT_CONNACK) {
        NUM("sp", p->u.connack.session_present);
        NUM("rc", p->u.connack.return_code);
    }
    if (p->type == FDL_MQTT_PUBLISH) {
        NUM("qos", pb->qos);
        NUM("dup", pb->dup);
        NUM("retain", pb->retain);
        NUM("id", pb->packet_id);
        STR("topic", pb->topic);
        if (strcmp(k, "payload") == 0) {
            want_bytes(pb->payload, pb->payload_len, v, k);
            return;
        }
    }
    if (p->type == FDL_MQTT_PUBACK || p->type == FDL_MQTT_PUBREC || p->type == FDL_MQTT_PUBREL ||
        p->type == FDL_MQTT_PUBCOMP || p->type == FDL_MQTT_UNSUBACK) {
        NUM("id", p->u.packet_id);
    }
    if (p->type == FDL_MQTT_SUBSCRIBE || p->type == FDL_MQTT_UNSUBSCRIBE) {
        NUM("id", p->u.sub.packet_id);
        if (strcmp(k, "nsubs") == 0) {
            size_t pos = 0, count = 0;
            fdl_mqtt_sub s;
            while (fdl_mqtt_next_sub(p, &pos, &s))
                count++;
            assert_int_equal(count, n);
            assert_int_equal(pos, p->u.sub.entries_len);
            return;
        }
        bool is_sub = strcmp(k, "sub") == 0;
        if (is_sub || strcmp(k, "unsub") == 0) {
            assert_int_equal(is_sub, p->type == FDL_MQTT_SUBSCRIBE);
            fdl_mqtt_sub s;
            if (!fdl_mqtt_next_sub(p, sub_pos, &s))
                fail_msg("entry %zu missing", *sub_idx);
            const char *filter = v;
            if (is_sub) {
                assert_int_equal(s.qos, strtoul(v, NULL, 10));
                filter = strchr(v, ':');
                assert_non_null(filter);
                filter++;
            } else {
                assert_int_equal(s.qos, 0);
            }
            assert_str_cstr(s.filter, filter);
            (*sub_idx)++;
            return;
        }
    }
    if (p->type == FDL_MQTT_SUBACK) {
        NUM("id", p->u.suback.packet_id);
        if (strcmp(k, "codes") == 0) {
            want_bytes(p->u.suback.codes, p->u.suback.n_codes, v, k);
            return;
        }
    }
#undef NUM
#undef STR
    fail_msg("key '%s' unknown or not valid for packet type %u", k, p->type);
}

static void run_vector(void **state)
{
    const vector *v = *state;
    fdl_mqtt_packet pkt;
    size_t used = 12345;
    fdl_mqtt_status st = fdl_mqtt_decode(v->data, v->len, v->max, &pkt, &used);
    if (st != v->status)
        fail_msg("%s: got %s, want %s", v->name, fdl_mqtt_strerror(st),
                 fdl_mqtt_strerror(v->status));
    if (st != FDL_MQTT_OK) {
        assert_int_equal(used, 0);
        assert_int_equal(v->n_kv, 0);   /* expectations on a failure would be silently unused */
        return;
    }
    assert_true(used >= 2 && used <= v->len);

    size_t sub_idx = 0, sub_pos = 0;
    for (size_t i = 0; i < v->n_kv; i++)
        check_field(&pkt, used, v->key[i], v->val[i], &sub_idx, &sub_pos);
    if (sub_idx > 0) {
        fdl_mqtt_sub extra;
        assert_false(fdl_mqtt_next_sub(&pkt, &sub_pos, &extra));   /* no unlisted entries */
    }

    /* Every strict prefix asks for more, with the vector's ceiling. */
    for (size_t k = 0; k < used; k++) {
        fdl_mqtt_packet q;
        size_t u = 12345;
        assert_int_equal(fdl_mqtt_decode(v->data, k, v->max, &q, &u), FDL_MQTT_NEED_MORE);
        assert_int_equal(u, 0);
    }

    /* Re-encoding reproduces the first byte and the body. */
    size_t n = 0;
    assert_int_equal(fdl_mqtt_encode_packet(g_out, sizeof g_out, &pkt, &n), FDL_MQTT_OK);
    size_t body_at = used - pkt.remaining, new_body_at = n - pkt.remaining;
    assert_true(n > pkt.remaining && new_body_at <= body_at);
    assert_int_equal(g_out[0], v->data[0]);
    assert_memory_equal(g_out + new_body_at, v->data + body_at, pkt.remaining);
    if (body_at == new_body_at)   /* minimal length encoding: identical packet */
        assert_memory_equal(g_out, v->data, used);
}

/* ------------------------------------------------------------------------- */
/* Group 2: round trips                                                       */
/* ------------------------------------------------------------------------- */

static void roundtrip_connect(void **state)
{
    (void)state;
    static const uint8_t pw[] = {0x00, 0xFF, 'p', 'w'};
    static const uint8_t will_msg[] = {0x00, 'b', 'y', 'e'};
    fdl_mqtt_connect c = {0};
    c.client_id = fdl_mqtt_cstr("sensor-\xC3\xA9-42");
    c.keepalive_s = 65535;
    c.clean_session = true;
    c.has_will = true;
    c.will_qos = 2;
    c.will_retain = true;
    c.will_topic = fdl_mqtt_cstr("dev/42/status");
    c.will_message = (fdl_mqtt_str){will_msg, sizeof will_msg};
    c.has_username = true;
    c.username = fdl_mqtt_cstr("alice");
    c.has_password = true;
    c.password = (fdl_mqtt_str){pw, sizeof pw};
    uint8_t buf[256];
    size_t n = 0;
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &c, &n), FDL_MQTT_OK);
    /* Spot-check the wire layout: header, protocol name, level, flags, keepalive. */
    static const uint8_t head[] = {0x10, 0x3A, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xF6, 0xFF, 0xFF};
    assert_int_equal(n, 2 + 0x3A);
    assert_memory_equal(buf, head, sizeof head);

    fdl_mqtt_packet p;
    check_encoded(buf, n, &p);
    const fdl_mqtt_connect *d = &p.u.connect;
    assert_int_equal(p.type, FDL_MQTT_CONNECT);
    assert_int_equal(d->protocol_level, 4);
    assert_str_cstr(d->client_id, "sensor-\xC3\xA9-42");
    assert_int_equal(d->keepalive_s, 65535);
    assert_true(d->clean_session);
    assert_true(d->has_will);
    assert_int_equal(d->will_qos, 2);
    assert_true(d->will_retain);
    assert_str_cstr(d->will_topic, "dev/42/status");
    assert_str_eq(d->will_message, will_msg, sizeof will_msg);
    assert_true(d->has_username);
    assert_str_cstr(d->username, "alice");
    assert_true(d->has_password);
    assert_str_eq(d->password, pw, sizeof pw);
    /* Views point into the input buffer. */
    assert_true(d->client_id.ptr > buf && d->client_id.ptr < buf + n);

    /* Minimal CONNECT: no will, no credentials, empty client id. */
    fdl_mqtt_connect m = {0};
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &m, &n), FDL_MQTT_OK);
    assert_int_equal(n, 14);
    check_encoded(buf, n, &p);
    assert_int_equal(p.u.connect.client_id.len, 0);
    assert_false(p.u.connect.clean_session);
    assert_false(p.u.connect.has_will);
    assert_false(p.u.connect.has_username);
    assert_false(p.u.connect.has_password);

    /* Fields switched off by their flag are ignored by the encoder. */
    m.client_id = fdl_mqtt_cstr("x");
    m.username = fdl_mqtt_cstr("ignored");
    m.will_topic = fdl_mqtt_cstr("ignored/+");
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &m, &n), FDL_MQTT_OK);
    assert_int_equal(n, 15);
}

static void roundtrip_connack(void **state)
{
    (void)state;
    uint8_t buf[8];
    size_t n = 0;
    fdl_mqtt_packet p;
    for (uint8_t rc = 0; rc <= 5; rc++) {
        for (int sp = 0; sp <= (rc == 0 ? 1 : 0); sp++) {
            assert_int_equal(fdl_mqtt_encode_connack(buf, sizeof buf, sp, rc, &n), FDL_MQTT_OK);
            assert_int_equal(n, 4);
            check_encoded(buf, n, &p);
            assert_int_equal(p.type, FDL_MQTT_CONNACK);
            assert_int_equal(p.u.connack.session_present, sp);
            assert_int_equal(p.u.connack.return_code, rc);
        }
    }
}

static void roundtrip_publish(void **state)
{
    (void)state;
    /* Payload sizes chosen to cross each remaining-length byte boundary. */
    /* Remaining = 23 + 2 (QoS > 0) + size: 127/128 and 16383/16384 are each hit. */
    static const size_t sizes[] = {0, 1, 102, 103, 104, 105, 16358, 16359, 16360, 16361, 65000};
    static uint8_t payload[65000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7 + 3);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (uint8_t qos = 0; qos <= 2; qos++) {
            fdl_mqtt_publish pb = {0};
            pb.topic = fdl_mqtt_cstr("fleet/dev-1/telemetry");
            pb.payload = sizes[s] ? payload : NULL;
            pb.payload_len = sizes[s];
            pb.qos = qos;
            pb.retain = (s & 1) != 0;
            pb.dup = qos > 0 && (s & 2) != 0;
            pb.packet_id = qos ? (uint16_t)(1000 + s) : 0;
            size_t n = 0;
            assert_int_equal(fdl_mqtt_encode_publish(g_out, sizeof g_out, &pb, &n), FDL_MQTT_OK);
            fdl_mqtt_packet p;
            size_t used = 0;
            assert_int_equal(fdl_mqtt_decode(g_out, n, FDL_MQTT_MAX_REMAINING, &p, &used),
                             FDL_MQTT_OK);
            assert_int_equal(used, n);
            uint32_t rem = (uint32_t)(2 + 21 + (qos ? 2 : 0) + sizes[s]);
            assert_int_equal(p.remaining, rem);
            assert_int_equal(n, 1 + (rem < 128 ? 1 : rem < 16384 ? 2 : 3) + rem);
            assert_int_equal(p.type, FDL_MQTT_PUBLISH);
            assert_int_equal(p.u.publish.qos, qos);
            assert_int_equal(p.u.publish.retain, pb.retain);
            assert_int_equal(p.u.publish.dup, pb.dup);
            assert_int_equal(p.u.publish.packet_id, pb.packet_id);
            assert_str_cstr(p.u.publish.topic, "fleet/dev-1/telemetry");
            assert_int_equal(p.u.publish.payload_len, sizes[s]);
            if (sizes[s])
                assert_memory_equal(p.u.publish.payload, payload, sizes[s]);
            else
                assert_null(p.u.publish.payload);
            if (n < 300)
                check_encoded(g_out, n, &p);
        }
    }
}

static void roundtrip_acks(void **state)
{
    (void)state;
    static const uint8_t types[] = {FDL_MQTT_PUBACK, FDL_MQTT_PUBREC, FDL_MQTT_PUBREL,
                                    FDL_MQTT_PUBCOMP, FDL_MQTT_UNSUBACK};
    static const uint16_t ids[] = {1, 0x1234, 0xFFFF};
    for (size_t t = 0; t < sizeof types; t++) {
        for (size_t i = 0; i < 3; i++) {
            uint8_t buf[4];
            size_t n = 0;
            assert_int_equal(fdl_mqtt_encode_ack(buf, sizeof buf, types[t], ids[i], &n), FDL_MQTT_OK);
            assert_int_equal(n, 4);
            assert_int_equal(buf[0], types[t] << 4 | (types[t] == FDL_MQTT_PUBREL ? 2 : 0));
            fdl_mqtt_packet p;
            check_encoded(buf, n, &p);
            assert_int_equal(p.type, types[t]);
            assert_int_equal(p.u.packet_id, ids[i]);
        }
    }
}

static void roundtrip_subscribe(void **state)
{
    (void)state;
    fdl_mqtt_sub subs[] = {
        {fdl_mqtt_cstr("#"), 0}, {fdl_mqtt_cstr("dev/+/cmd"), 1}, {fdl_mqtt_cstr("+"), 2},
        {fdl_mqtt_cstr("$SYS/#"), 1}, {fdl_mqtt_cstr("a//b"), 0}, {fdl_mqtt_cstr("\xE2\x82\xAC/+"), 2},
    };
    size_t ns = sizeof subs / sizeof subs[0];
    uint8_t buf[256];
    size_t n = 0;
    assert_int_equal(fdl_mqtt_encode_subscribe(buf, sizeof buf, 77, subs, ns, &n), FDL_MQTT_OK);
    assert_int_equal(buf[0], 0x82);
    fdl_mqtt_packet p;
    check_encoded(buf, n, &p);
    assert_int_equal(p.type, FDL_MQTT_SUBSCRIBE);
    assert_int_equal(p.flags, 2);
    assert_int_equal(p.u.sub.packet_id, 77);
    size_t pos = 0, i = 0;
    fdl_mqtt_sub s;
    while (fdl_mqtt_next_sub(&p, &pos, &s)) {
        assert_true(i < ns);
        assert_str_eq(s.filter, subs[i].filter.ptr, subs[i].filter.len);
        assert_int_equal(s.qos, subs[i].qos);
        i++;
    }
    assert_int_equal(i, ns);
    assert_false(fdl_mqtt_next_sub(&p, &pos, &s));   /* stays at the end */

    /* The unsubscribe form of the same filters; qos is not on the wire. */
    assert_int_equal(fdl_mqtt_encode_unsubscribe(buf, sizeof buf, 78, subs, ns, &n), FDL_MQTT_OK);
    assert_int_equal(buf[0], 0xA2);
    check_encoded(buf, n, &p);
    assert_int_equal(p.type, FDL_MQTT_UNSUBSCRIBE);
    assert_int_equal(p.u.sub.packet_id, 78);
    pos = 0;
    i = 0;
    while (fdl_mqtt_next_sub(&p, &pos, &s)) {
        assert_str_eq(s.filter, subs[i].filter.ptr, subs[i].filter.len);
        assert_int_equal(s.qos, 0);
        i++;
    }
    assert_int_equal(i, ns);
}

static void roundtrip_suback_and_simple(void **state)
{
    (void)state;
    static const uint8_t codes[] = {0, 1, 2, 0x80, 1};
    uint8_t buf[32];
    size_t n = 0;
    fdl_mqtt_packet p;
    assert_int_equal(fdl_mqtt_encode_suback(buf, sizeof buf, 9, codes, sizeof codes, &n), FDL_MQTT_OK);
    assert_int_equal(n, 2 + 2 + sizeof codes);
    check_encoded(buf, n, &p);
    assert_int_equal(p.type, FDL_MQTT_SUBACK);
    assert_int_equal(p.u.suback.packet_id, 9);
    assert_int_equal(p.u.suback.n_codes, sizeof codes);
    assert_memory_equal(p.u.suback.codes, codes, sizeof codes);

    static const uint8_t simple[] = {FDL_MQTT_PINGREQ, FDL_MQTT_PINGRESP, FDL_MQTT_DISCONNECT};
    for (size_t i = 0; i < sizeof simple; i++) {
        assert_int_equal(fdl_mqtt_encode_simple(buf, sizeof buf, simple[i], &n), FDL_MQTT_OK);
        assert_int_equal(n, 2);
        assert_int_equal(buf[0], simple[i] << 4);
        assert_int_equal(buf[1], 0);
        check_encoded(buf, n, &p);
        assert_int_equal(p.type, simple[i]);
        assert_int_equal(p.remaining, 0);
    }
}

/* A stream of packets fed one byte at a time decodes to the same sequence. */
static void stream_byte_by_byte(void **state)
{
    (void)state;
    uint8_t stream[512];
    size_t len = 0, n = 0;
    fdl_mqtt_connect c = {.client_id = fdl_mqtt_cstr("d"), .clean_session = true, .keepalive_s = 30};
    assert_int_equal(fdl_mqtt_encode_connect(stream + len, sizeof stream - len, &c, &n), FDL_MQTT_OK);
    len += n;
    fdl_mqtt_sub sub = {fdl_mqtt_cstr("cmd/#"), 1};
    assert_int_equal(fdl_mqtt_encode_subscribe(stream + len, sizeof stream - len, 1, &sub, 1, &n), FDL_MQTT_OK);
    len += n;
    fdl_mqtt_publish pb = {.topic = fdl_mqtt_cstr("t"), .qos = 1, .packet_id = 2,
                           .payload = (const uint8_t *)"hello", .payload_len = 5};
    assert_int_equal(fdl_mqtt_encode_publish(stream + len, sizeof stream - len, &pb, &n), FDL_MQTT_OK);
    len += n;
    assert_int_equal(fdl_mqtt_encode_simple(stream + len, sizeof stream - len, FDL_MQTT_PINGREQ, &n), FDL_MQTT_OK);
    len += n;
    assert_int_equal(fdl_mqtt_encode_simple(stream + len, sizeof stream - len, FDL_MQTT_DISCONNECT, &n), FDL_MQTT_OK);
    len += n;

    static const uint8_t want[] = {FDL_MQTT_CONNECT, FDL_MQTT_SUBSCRIBE, FDL_MQTT_PUBLISH,
                                   FDL_MQTT_PINGREQ, FDL_MQTT_DISCONNECT};
    size_t start = 0, avail = 0, got = 0;
    while (avail < len) {
        avail++;   /* one more byte "arrives" */
        fdl_mqtt_packet p;
        size_t used = 99;
        fdl_mqtt_status st = fdl_mqtt_decode(stream + start, avail - start, 64, &p, &used);
        if (st == FDL_MQTT_NEED_MORE) {
            assert_int_equal(used, 0);
            continue;
        }
        assert_int_equal(st, FDL_MQTT_OK);
        assert_int_equal(start + used, avail);   /* decoded exactly when the last byte came */
        assert_true(got < sizeof want);
        assert_int_equal(p.type, want[got]);
        got++;
        start += used;
    }
    assert_int_equal(got, sizeof want);
}

/* ------------------------------------------------------------------------- */
/* Group 2: malformed input                                                   */
/* ------------------------------------------------------------------------- */

/* A valid body for each type, used to test its first byte in isolation. */
static size_t valid_body(uint8_t type, uint8_t *b)
{
    static const uint8_t connect[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 'd'};
    switch (type) {
    case FDL_MQTT_CONNECT: memcpy(b, connect, sizeof connect); return sizeof connect;
    case FDL_MQTT_CONNACK: b[0] = 0; b[1] = 0; return 2;
    /* Topic "t" then 00 01: the packet id at QoS > 0, a payload at QoS 0. */
    case FDL_MQTT_PUBLISH: b[0] = 0; b[1] = 1; b[2] = 't'; b[3] = 0; b[4] = 1; return 5;
    case FDL_MQTT_SUBSCRIBE: memcpy(b, "\x00\x01\x00\x01t\x01", 6); return 6;
    case FDL_MQTT_UNSUBSCRIBE: memcpy(b, "\x00\x01\x00\x01t", 5); return 5;
    case FDL_MQTT_SUBACK: b[0] = 0; b[1] = 1; b[2] = 0x80; return 3;
    case FDL_MQTT_PINGREQ: case FDL_MQTT_PINGRESP: case FDL_MQTT_DISCONNECT: return 0;
    default: b[0] = 0; b[1] = 1; return 2;   /* acks */
    }
}

/* Every (type, flags) pair: only the 3.1.1 table's combinations decode. */
static void flags_every_type(void **state)
{
    (void)state;
    unsigned ok_count = 0;
    for (unsigned type = 0; type < 16; type++) {
        for (unsigned flags = 0; flags < 16; flags++) {
            uint8_t pkt[32];
            size_t body = valid_body((uint8_t)type, pkt + 2);
            pkt[0] = (uint8_t)(type << 4 | flags);
            pkt[1] = (uint8_t)body;
            bool want_ok;
            if (type == 0 || type == 15)
                want_ok = false;
            else if (type == FDL_MQTT_PUBLISH)
                want_ok = (flags & 6) != 6 && !((flags & 6) == 0 && (flags & 8));
            else if (type == FDL_MQTT_PUBREL || type == FDL_MQTT_SUBSCRIBE ||
                     type == FDL_MQTT_UNSUBSCRIBE)
                want_ok = flags == 2;
            else
                want_ok = flags == 0;
            fdl_mqtt_status st = decode_st(pkt, 2 + body, 1024);
            if (st != (want_ok ? FDL_MQTT_OK : FDL_MQTT_MALFORMED))
                fail_msg("type %u flags 0x%x: %s", type, flags, fdl_mqtt_strerror(st));
            /* Bad flags are refused from the first byte alone. */
            if (!want_ok)
                assert_int_equal(decode_st(pkt, 1, 1024), FDL_MQTT_MALFORMED);
            ok_count += want_ok;
        }
    }
    /* 13 types with one valid nibble, plus PUBLISH: 16 - 4 (QoS 3) - 2 (DUP at QoS 0). */
    assert_int_equal(ok_count, 13 + 10);
}

static void qos3_everywhere(void **state)
{
    (void)state;
    static const uint8_t pub[] = {0x36, 0x05, 0, 1, 't', 0, 1};
    static const uint8_t pub_dup[] = {0x3E, 0x05, 0, 1, 't', 0, 1};
    static const uint8_t sub[] = {0x82, 0x06, 0, 1, 0, 1, 't', 3};
    static const uint8_t will[] = {0x10, 0x13, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x1E, 0, 60,
                                   0, 1, 'd', 0, 1, 'w', 0, 1, 'x'};
    assert_int_equal(decode_st(pub, sizeof pub, 1024), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(pub_dup, sizeof pub_dup, 1024), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(sub, sizeof sub, 1024), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(will, sizeof will, 1024), FDL_MQTT_MALFORMED);

    uint8_t buf[64];
    size_t n = 99;
    fdl_mqtt_publish pb = {.topic = fdl_mqtt_cstr("t"), .qos = 3, .packet_id = 1};
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(n, 0);
    fdl_mqtt_sub s = {fdl_mqtt_cstr("t"), 3};
    assert_int_equal(fdl_mqtt_encode_subscribe(buf, sizeof buf, 1, &s, 1, &n), FDL_MQTT_BAD_ARG);
    fdl_mqtt_connect c = {.has_will = true, .will_qos = 3, .will_topic = fdl_mqtt_cstr("w")};
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &c, &n), FDL_MQTT_BAD_ARG);
}

static void remaining_length_limits(void **state)
{
    (void)state;
    /* A fifth length byte is malformed as soon as the fourth shows a continuation. */
    static const uint8_t five[] = {0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    assert_int_equal(decode_st(five, sizeof five, FDL_MQTT_MAX_REMAINING), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(five, 5, FDL_MQTT_MAX_REMAINING), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(five, 4, FDL_MQTT_MAX_REMAINING), FDL_MQTT_NEED_MORE);

    /* 1 MB announced, ceiling 4 KB: refused with only the header in hand. */
    static const uint8_t big[] = {0x30, 0x80, 0x80, 0x40};
    assert_int_equal(decode_st(big, sizeof big, 4096), FDL_MQTT_TOO_LARGE);
    assert_int_equal(decode_st(big, 3, 4096), FDL_MQTT_NEED_MORE);
    assert_int_equal(decode_st(big, sizeof big, FDL_MQTT_MAX_REMAINING), FDL_MQTT_NEED_MORE);

    /* Exactly at the ceiling decodes; one above does not. */
    fdl_mqtt_publish pb = {.topic = fdl_mqtt_cstr("t"), .payload = (const uint8_t *)"abcdef",
                           .payload_len = 6};
    uint8_t buf[32];
    size_t n = 0;
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_OK);
    assert_int_equal(decode_st(buf, n, 9), FDL_MQTT_OK);
    assert_int_equal(decode_st(buf, n, 8), FDL_MQTT_TOO_LARGE);
    assert_int_equal(decode_st(buf, 2, 8), FDL_MQTT_TOO_LARGE);

    /* The largest expressible length with the largest ceiling waits for the body. */
    static const uint8_t max[] = {0x30, 0xFF, 0xFF, 0xFF, 0x7F, 0, 1, 't'};
    assert_int_equal(decode_st(max, sizeof max, FDL_MQTT_MAX_REMAINING), FDL_MQTT_NEED_MORE);
    assert_int_equal(decode_st(max, sizeof max, FDL_MQTT_MAX_REMAINING - 1), FDL_MQTT_TOO_LARGE);

    /* A length impossible for the type is refused before the body arrives. */
    static const uint8_t ping_big[] = {0xC0, 0x7F};
    assert_int_equal(decode_st(ping_big, sizeof ping_big, 1024), FDL_MQTT_MALFORMED);
    static const uint8_t puback_big[] = {0x40, 0x03};
    assert_int_equal(decode_st(puback_big, sizeof puback_big, 1024), FDL_MQTT_MALFORMED);
}

static void truncated_packets(void **state)
{
    (void)state;
    /* A length field that promises more than the buffer holds is "need more",
     * and the same bytes with a shorter length that cuts a field are malformed. */
    static const uint8_t pub[] = {0x30, 0x07, 0, 3, 'a', '/', 'b', 'h', 'i'};
    for (size_t k = 0; k < sizeof pub; k++)
        assert_int_equal(decode_st(pub, k, 1024), FDL_MQTT_NEED_MORE);
    uint8_t cut[sizeof pub];
    memcpy(cut, pub, sizeof pub);
    cut[1] = 4;   /* topic length 3 but only 2 topic bytes inside the packet */
    assert_int_equal(decode_st(cut, 6, 1024), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(cut, 5, 1024), FDL_MQTT_NEED_MORE);

    static const uint8_t conn[] = {0x10, 0x0E, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x80, 0, 60, 0, 1, 'd',
                                   0, 2, 'u'};
    for (size_t k = 0; k < 16; k++)
        assert_int_equal(decode_st(conn, k, 1024), FDL_MQTT_NEED_MORE);
    /* Username flag set, but the username is cut by the remaining length. */
    assert_int_equal(decode_st(conn, 16, 1024), FDL_MQTT_MALFORMED);
}

static void bad_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x00", "a\x00", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xE0\x9F\xBF",
        "\xED\xA0\x80", "\xED\xBF\xBF", "\xF0\x80\x80\x80", "\xF0\x8F\xBF\xBF",
        "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF", "\x80", "\xBF", "\xC3",
        "\xE2\x82", "\xF0\x9F\x98", "\xC3\x28", "\xE2\x28\xA1", "\xF0\x9F\x28\x80",
    };
    static const size_t bad_len[] = {1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 1, 1, 1, 1, 2, 3, 2, 3, 4};
    static const char *const good[] = {
        "\x01", "\x7F", "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80",
        "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", "\xF3\xBF\xBF\xBF",
    };
    uint8_t pkt[16], buf[16];
    size_t n = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t l = bad_len[i];
        pkt[0] = 0x30;
        pkt[1] = (uint8_t)(2 + l);
        pkt[2] = 0;
        pkt[3] = (uint8_t)l;
        memcpy(pkt + 4, bad[i], l);
        if (decode_st(pkt, 4 + l, 1024) != FDL_MQTT_MALFORMED)
            fail_msg("bad UTF-8 #%zu accepted in a topic", i);
        /* Same string as a client id, a username and a subscription filter. */
        fdl_mqtt_str s = {(const uint8_t *)bad[i], (uint16_t)l};
        fdl_mqtt_publish pb = {.topic = s};
        assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
        fdl_mqtt_connect c = {.client_id = s};
        assert_int_equal(fdl_mqtt_encode_connect(g_out, sizeof g_out, &c, &n), FDL_MQTT_BAD_ARG);
        c.client_id = fdl_mqtt_cstr("ok");
        c.has_username = true;
        c.username = s;
        assert_int_equal(fdl_mqtt_encode_connect(g_out, sizeof g_out, &c, &n), FDL_MQTT_BAD_ARG);
        fdl_mqtt_sub sub = {s, 0};
        assert_int_equal(fdl_mqtt_encode_subscribe(g_out, sizeof g_out, 1, &sub, 1, &n), FDL_MQTT_BAD_ARG);
        assert_int_equal(fdl_mqtt_encode_unsubscribe(g_out, sizeof g_out, 1, &sub, 1, &n), FDL_MQTT_BAD_ARG);
    }
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        fdl_mqtt_publish pb = {.topic = fdl_mqtt_cstr(good[i])};
        assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_OK);
        fdl_mqtt_packet p;
        decode_whole(buf, n, &p);
        assert_str_cstr(p.u.publish.topic, good[i]);
    }
}

static void wildcards(void **state)
{
    (void)state;
    static const char *const bad_names[] = {"+", "#", "a/+", "a/#", "a+b", "a/b#"};
    static const char *const bad_filters[] = {"a#", "#/a", "a/#/b", "a+", "+a", "a/+b", "##", "++"};
    static const char *const good_filters[] = {"#", "+", "a/#", "+/+", "/+/", "a/+/b/#", "/", "$SYS/#"};
    uint8_t buf[64];
    size_t n = 0;
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        fdl_mqtt_publish pb = {.topic = fdl_mqtt_cstr(bad_names[i])};
        assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
        size_t l = strlen(bad_names[i]);
        uint8_t pkt[16] = {0x30, (uint8_t)(2 + l), 0, (uint8_t)l};
        memcpy(pkt + 4, bad_names[i], l);
        assert_int_equal(decode_st(pkt, 4 + l, 1024), FDL_MQTT_MALFORMED);
        /* Also refused as a will topic. */
        fdl_mqtt_connect c = {.has_will = true, .will_topic = fdl_mqtt_cstr(bad_names[i])};
        assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &c, &n), FDL_MQTT_BAD_ARG);
    }
    for (size_t i = 0; i < sizeof bad_filters / sizeof bad_filters[0]; i++) {
        fdl_mqtt_sub s = {fdl_mqtt_cstr(bad_filters[i]), 0};
        assert_int_equal(fdl_mqtt_encode_subscribe(buf, sizeof buf, 1, &s, 1, &n), FDL_MQTT_BAD_ARG);
        size_t l = strlen(bad_filters[i]);
        uint8_t pkt[16] = {0x82, (uint8_t)(5 + l), 0, 1, 0, (uint8_t)l};
        memcpy(pkt + 6, bad_filters[i], l);
        pkt[6 + l] = 0;
        assert_int_equal(decode_st(pkt, 7 + l, 1024), FDL_MQTT_MALFORMED);
    }
    for (size_t i = 0; i < sizeof good_filters / sizeof good_filters[0]; i++) {
        fdl_mqtt_sub s = {fdl_mqtt_cstr(good_filters[i]), 1};
        assert_int_equal(fdl_mqtt_encode_subscribe(buf, sizeof buf, 1, &s, 1, &n), FDL_MQTT_OK);
        fdl_mqtt_packet p;
        decode_whole(buf, n, &p);
    }
}

static void zero_packet_ids(void **state)
{
    (void)state;
    static const uint8_t acks[] = {0x40, 0x50, 0x62, 0x70, 0xB0};
    for (size_t i = 0; i < sizeof acks; i++) {
        uint8_t pkt[] = {acks[i], 2, 0, 0};
        assert_int_equal(decode_st(pkt, sizeof pkt, 1024), FDL_MQTT_MALFORMED);
        pkt[3] = 1;
        assert_int_equal(decode_st(pkt, sizeof pkt, 1024), FDL_MQTT_OK);
    }
    static const uint8_t pub1[] = {0x32, 5, 0, 1, 't', 0, 0};
    static const uint8_t pub2[] = {0x34, 5, 0, 1, 't', 0, 0};
    static const uint8_t sub[] = {0x82, 6, 0, 0, 0, 1, 't', 0};
    static const uint8_t unsub[] = {0xA2, 5, 0, 0, 0, 1, 't'};
    static const uint8_t suback[] = {0x90, 3, 0, 0, 0};
    assert_int_equal(decode_st(pub1, sizeof pub1, 1024), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(pub2, sizeof pub2, 1024), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(sub, sizeof sub, 1024), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(unsub, sizeof unsub, 1024), FDL_MQTT_MALFORMED);
    assert_int_equal(decode_st(suback, sizeof suback, 1024), FDL_MQTT_MALFORMED);

    uint8_t buf[64];
    size_t n = 0;
    static const uint8_t types[] = {FDL_MQTT_PUBACK, FDL_MQTT_PUBREC, FDL_MQTT_PUBREL,
                                    FDL_MQTT_PUBCOMP, FDL_MQTT_UNSUBACK};
    for (size_t i = 0; i < sizeof types; i++)
        assert_int_equal(fdl_mqtt_encode_ack(buf, sizeof buf, types[i], 0, &n), FDL_MQTT_BAD_ARG);
    fdl_mqtt_publish pb = {.topic = fdl_mqtt_cstr("t"), .qos = 1, .packet_id = 0};
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
    pb.qos = 2;
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
    fdl_mqtt_sub s = {fdl_mqtt_cstr("t"), 0};
    assert_int_equal(fdl_mqtt_encode_subscribe(buf, sizeof buf, 0, &s, 1, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_unsubscribe(buf, sizeof buf, 0, &s, 1, &n), FDL_MQTT_BAD_ARG);
    uint8_t code = 0;
    assert_int_equal(fdl_mqtt_encode_suback(buf, sizeof buf, 0, &code, 1, &n), FDL_MQTT_BAD_ARG);
}

/* ------------------------------------------------------------------------- */
/* Group 2: encoder refusals                                                  */
/* ------------------------------------------------------------------------- */

/* Encodes one packet of each type (index i) into out; returns its status. */
static fdl_mqtt_status encode_nth(size_t i, uint8_t *out, size_t cap, size_t *n)
{
    static const uint8_t codes[] = {0, 0x80};
    static const uint8_t payload[300] = {1, 2, 3};
    fdl_mqtt_sub subs[] = {{fdl_mqtt_cstr("a/+"), 1}, {fdl_mqtt_cstr("b/#"), 2}};
    fdl_mqtt_connect c = {.client_id = fdl_mqtt_cstr("id"), .has_will = true,
                          .will_topic = fdl_mqtt_cstr("w"), .will_message = fdl_mqtt_cstr("m"),
                          .has_username = true, .username = fdl_mqtt_cstr("u"),
                          .has_password = true, .password = fdl_mqtt_cstr("p")};
    fdl_mqtt_publish pb = {.topic = fdl_mqtt_cstr("t/1"), .qos = 1, .packet_id = 5,
                           .payload = payload, .payload_len = sizeof payload};
    switch (i) {
    case 0: return fdl_mqtt_encode_connect(out, cap, &c, n);
    case 1: return fdl_mqtt_encode_connack(out, cap, true, 0, n);
    case 2: return fdl_mqtt_encode_publish(out, cap, &pb, n);
    case 3: return fdl_mqtt_encode_ack(out, cap, FDL_MQTT_PUBREL, 3, n);
    case 4: return fdl_mqtt_encode_subscribe(out, cap, 4, subs, 2, n);
    case 5: return fdl_mqtt_encode_unsubscribe(out, cap, 4, subs, 2, n);
    case 6: return fdl_mqtt_encode_suback(out, cap, 4, codes, 2, n);
    default: return fdl_mqtt_encode_simple(out, cap, FDL_MQTT_PINGREQ, n);
    }
}

static void encoders_no_space(void **state)
{
    (void)state;
    for (size_t i = 0; i < 8; i++) {
        uint8_t full[512];
        size_t len = 0;
        assert_int_equal(encode_nth(i, full, sizeof full, &len), FDL_MQTT_OK);
        fdl_mqtt_packet p;
        decode_whole(full, len, &p);
        for (size_t cap = 0; cap < len; cap++) {
            uint8_t out[512];
            memset(out, 0xA5, sizeof out);
            size_t n = 0;
            assert_int_equal(encode_nth(i, out, cap, &n), FDL_MQTT_NO_SPACE);
            assert_int_equal(n, len);   /* reports the size needed */
            for (size_t k = 0; k < sizeof out; k++)
                assert_int_equal(out[k], 0xA5);   /* and writes nothing */
        }
        /* A NULL buffer with cap 0 is a size query. */
        size_t n = 0;
        assert_int_equal(encode_nth(i, NULL, 0, &n), FDL_MQTT_NO_SPACE);
        assert_int_equal(n, len);
        /* The exact size is enough. */
        uint8_t exact[512];
        assert_int_equal(encode_nth(i, exact, len, &n), FDL_MQTT_OK);
        assert_int_equal(n, len);
        assert_memory_equal(exact, full, len);
    }
}

static void encoders_bad_arg(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = 99;
    fdl_mqtt_sub s = {fdl_mqtt_cstr("t"), 0};
    uint8_t code = 1;

    /* NULL pointers. */
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, NULL, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, NULL, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_simple(buf, sizeof buf, FDL_MQTT_PINGREQ, NULL), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_simple(NULL, 10, FDL_MQTT_PINGREQ, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_subscribe(buf, sizeof buf, 1, NULL, 1, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_suback(buf, sizeof buf, 1, NULL, 1, &n), FDL_MQTT_BAD_ARG);

    /* Wrong packet type for the encoder. */
    assert_int_equal(fdl_mqtt_encode_ack(buf, sizeof buf, FDL_MQTT_CONNECT, 1, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_ack(buf, sizeof buf, FDL_MQTT_SUBACK, 1, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_ack(buf, sizeof buf, 0, 1, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_simple(buf, sizeof buf, FDL_MQTT_PUBACK, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_simple(buf, sizeof buf, 15, &n), FDL_MQTT_BAD_ARG);

    /* Empty lists and invalid codes. */
    assert_int_equal(fdl_mqtt_encode_subscribe(buf, sizeof buf, 1, &s, 0, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_unsubscribe(buf, sizeof buf, 1, &s, 0, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_suback(buf, sizeof buf, 1, &code, 0, &n), FDL_MQTT_BAD_ARG);
    static const uint8_t bad_codes[] = {3, 0x7F, 0x81, 0xFF};
    for (size_t i = 0; i < sizeof bad_codes; i++)
        assert_int_equal(fdl_mqtt_encode_suback(buf, sizeof buf, 1, &bad_codes[i], 1, &n),
                         FDL_MQTT_BAD_ARG);
    fdl_mqtt_sub empty = {fdl_mqtt_cstr(""), 0};
    assert_int_equal(fdl_mqtt_encode_subscribe(buf, sizeof buf, 1, &empty, 1, &n), FDL_MQTT_BAD_ARG);

    /* CONNACK. */
    assert_int_equal(fdl_mqtt_encode_connack(buf, sizeof buf, false, 6, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_connack(buf, sizeof buf, true, 5, &n), FDL_MQTT_BAD_ARG);

    /* PUBLISH. */
    fdl_mqtt_publish pb = {.topic = fdl_mqtt_cstr("")};
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
    pb.topic = fdl_mqtt_cstr("t");
    pb.dup = true;   /* DUP at QoS 0 */
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
    pb.dup = false;
    pb.packet_id = 7;   /* a packet id at QoS 0 would be lost on the wire */
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
    pb.packet_id = 0;
    pb.payload_len = 3;   /* NULL payload with a length */
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
    pb.payload = buf;
    pb.payload_len = FDL_MQTT_MAX_REMAINING;   /* topic + payload exceed 4 length bytes */
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);
    pb.topic = (fdl_mqtt_str){NULL, 3};
    pb.payload_len = 0;
    assert_int_equal(fdl_mqtt_encode_publish(buf, sizeof buf, &pb, &n), FDL_MQTT_BAD_ARG);

    /* CONNECT flag consistency. */
    fdl_mqtt_connect c = {.client_id = fdl_mqtt_cstr("c")};
    c.has_password = true;
    c.password = fdl_mqtt_cstr("p");
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &c, &n), FDL_MQTT_BAD_ARG);
    c.has_password = false;
    c.will_qos = 1;   /* without a will */
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &c, &n), FDL_MQTT_BAD_ARG);
    c.will_qos = 0;
    c.will_retain = true;
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &c, &n), FDL_MQTT_BAD_ARG);
    c.will_retain = false;
    c.has_will = true;   /* with an empty will topic */
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &c, &n), FDL_MQTT_BAD_ARG);
    c.will_topic = fdl_mqtt_cstr("w");
    c.will_message = (fdl_mqtt_str){NULL, 2};
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &c, &n), FDL_MQTT_BAD_ARG);
    c.will_message = (fdl_mqtt_str){NULL, 0};
    assert_int_equal(fdl_mqtt_encode_connect(buf, sizeof buf, &c, &n), FDL_MQTT_OK);
    assert_int_equal(n, 2 + 10 + 3 + 3 + 2);
}

static void api_edges(void **state)
{
    (void)state;
    /* strerror: distinct, non-NULL, and total. */
    for (int a = FDL_MQTT_OK; a <= FDL_MQTT_BAD_ARG; a++) {
        assert_non_null(fdl_mqtt_strerror((fdl_mqtt_status)a));
        for (int b = a + 1; b <= FDL_MQTT_BAD_ARG; b++)
            assert_string_not_equal(fdl_mqtt_strerror((fdl_mqtt_status)a),
                                    fdl_mqtt_strerror((fdl_mqtt_status)b));
    }
    assert_non_null(fdl_mqtt_strerror((fdl_mqtt_status)99));

    /* fdl_mqtt_cstr. */
    fdl_mqtt_str s = fdl_mqtt_cstr(NULL);
    assert_null(s.ptr);
    assert_int_equal(s.len, 0);
    static char longstr[70001];
    memset(longstr, 'a', sizeof longstr - 1);
    assert_int_equal(fdl_mqtt_cstr(longstr).len, 65535);

    /* Decoder argument checks. */
    fdl_mqtt_packet p;
    size_t used = 7;
    static const uint8_t ping[] = {0xC0, 0};
    assert_int_equal(fdl_mqtt_decode(ping, 2, 10, NULL, &used), FDL_MQTT_BAD_ARG);
    assert_int_equal(used, 0);
    assert_int_equal(fdl_mqtt_decode(ping, 2, 10, &p, NULL), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_decode(NULL, 2, 10, &p, &used), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_decode(NULL, 0, 10, &p, &used), FDL_MQTT_NEED_MORE);

    /* next_sub refuses packets that are not (UN)SUBSCRIBE. */
    decode_whole(ping, 2, &p);
    size_t pos = 0;
    fdl_mqtt_sub sub;
    assert_false(fdl_mqtt_next_sub(&p, &pos, &sub));
    assert_false(fdl_mqtt_next_sub(NULL, &pos, &sub));
}

/* encode_packet re-validates hand-made SUBSCRIBE/UNSUBSCRIBE entries and unknown types. */
static void encode_packet_refuses_bad_entries(void **state)
{
    (void)state;
    uint8_t out[64];
    size_t n = 0;
    fdl_mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = FDL_MQTT_SUBSCRIBE;
    p.u.sub.packet_id = 1;
    static const uint8_t qos3[] = {0x00, 0x01, '#', 0x03};
    p.u.sub.entries = qos3;
    p.u.sub.entries_len = sizeof qos3;
    assert_int_equal(fdl_mqtt_encode_packet(out, sizeof out, &p, &n), FDL_MQTT_BAD_ARG);
    static const uint8_t bad_filter[] = {0x00, 0x03, 'a', '#', 'b', 0x00};
    p.u.sub.entries = bad_filter;
    p.u.sub.entries_len = sizeof bad_filter;
    assert_int_equal(fdl_mqtt_encode_packet(out, sizeof out, &p, &n), FDL_MQTT_BAD_ARG);
    static const uint8_t truncated[] = {0x00, 0x05, 'a'};
    p.u.sub.entries = truncated;
    p.u.sub.entries_len = sizeof truncated;
    assert_int_equal(fdl_mqtt_encode_packet(out, sizeof out, &p, &n), FDL_MQTT_BAD_ARG);
    p.u.sub.entries_len = 0;
    assert_int_equal(fdl_mqtt_encode_packet(out, sizeof out, &p, &n), FDL_MQTT_BAD_ARG);
    static const uint8_t good[] = {0x00, 0x03, 'a', '/', '#', 0x01};
    p.u.sub.entries = good;
    p.u.sub.entries_len = sizeof good;
    assert_int_equal(fdl_mqtt_encode_packet(out, sizeof out, &p, &n), FDL_MQTT_OK);
    static const uint8_t want[] = {0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 'a', '/', '#', 0x01};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(out, want, sizeof want);
    p.type = FDL_MQTT_UNSUBSCRIBE;   /* a QoS byte is not part of an UNSUBSCRIBE entry */
    assert_int_equal(fdl_mqtt_encode_packet(out, sizeof out, &p, &n), FDL_MQTT_BAD_ARG);
    p.type = 0;
    assert_int_equal(fdl_mqtt_encode_packet(out, sizeof out, &p, &n), FDL_MQTT_BAD_ARG);
    p.type = 15;
    assert_int_equal(fdl_mqtt_encode_packet(out, sizeof out, &p, &n), FDL_MQTT_BAD_ARG);
    assert_int_equal(fdl_mqtt_encode_packet(out, sizeof out, NULL, &n), FDL_MQTT_BAD_ARG);
}

int main(void)
{
    char path[4096];
    fdl_test_src_path("tests/vectors/mqtt/decode.txt", path, sizeof path);
    if (!load_vectors(path))
        return 1;
    /* A vector file that silently lost its content must not pass. */
    if (g_n_vec < 100) {
        fprintf(stderr, "%s: only %zu vectors\n", path, g_n_vec);
        return 1;
    }
    for (size_t i = 0; i < g_n_vec; i++)
        g_vec_tests[i] = (struct CMUnitTest){g_vec[i].name, run_vector, NULL, NULL, &g_vec[i]};
    int failed = _cmocka_run_group_tests("mqtt_decode_vectors", g_vec_tests, g_n_vec, NULL, NULL);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip_connect),
        cmocka_unit_test(roundtrip_connack),
        cmocka_unit_test(roundtrip_publish),
        cmocka_unit_test(roundtrip_acks),
        cmocka_unit_test(roundtrip_subscribe),
        cmocka_unit_test(roundtrip_suback_and_simple),
        cmocka_unit_test(stream_byte_by_byte),
        cmocka_unit_test(flags_every_type),
        cmocka_unit_test(qos3_everywhere),
        cmocka_unit_test(remaining_length_limits),
        cmocka_unit_test(truncated_packets),
        cmocka_unit_test(bad_utf8),
        cmocka_unit_test(wildcards),
        cmocka_unit_test(zero_packet_ids),
        cmocka_unit_test(encoders_no_space),
        cmocka_unit_test(encoders_bad_arg),
        cmocka_unit_test(api_edges),
        cmocka_unit_test(encode_packet_refuses_bad_entries),
    };
    failed += cmocka_run_group_tests_name("mqtt_codec", tests, NULL, NULL);
    return failed;
}
