/* attacks/session.c — the device stack as a synchronous attack client (see session.h). */
#include "attacks/session.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "devices/mqtt_client.h"
#include "devices/tcp.h"
#include "sim/alloc.h"

/* TCP buffers: the receive side as a device's; the send side takes a whole oversized publish. */
#define SESS_TCP_RX_CAP (64u * 1024u)
#define SESS_TCP_TX_CAP (FDL_ATK_PUBLISH_MAX + 4096u)
/* The loop wakes at least this often to re-check the caller's condition. */
#define LOOP_TICK_MS 10u

struct fdl_atk_sess {
    fdl_atk_loop *loop;
    fdl_atk_sess_cfg cfg;
    char client_id[128];
    fdl_transport *tp;        /* top of the chain (TLS), NULL once closed */
    fdl_mqttc *mq;
    int tls_up, online, closed, connack_rc;
    char why[200];
    /* the last SUBACK */
    int suback_code;
    uint16_t suback_id;
    /* the QoS 1 publish being waited for */
    uint16_t pub_id;
    int pub_acked;
    /* a large publish written here (not through the MQTT client) */
    uint8_t *raw;
    size_t raw_len, raw_off, raw_retry;
    /* what arrived */
    size_t n_msgs;
    fdl_atk_msg msgs[FDL_ATK_SESS_MSGS];
};

struct fdl_atk_loop {
    uv_loop_t uv;
    uv_timer_t tick;
    fdl_atk_sess *sess[FDL_ATK_LOOP_SESSIONS];
    size_t n_sess;
};

static void tick_cb(uv_timer_t *t)
{
    (void)t;   /* only wakes uv_run so the caller's condition is re-checked */
}

fdl_atk_loop *fdl_atk_loop_new(void)
{
    fdl_atk_loop *l = fdl_calloc(1, sizeof *l);
    if (!l)
        return NULL;
    if (uv_loop_init(&l->uv) != 0) {
        fdl_free(l);
        return NULL;
    }
    uv_timer_init(&l->uv, &l->tick);
    return l;
}

/* Runs the loop until cond(ud) holds or ms pass; cond may be NULL (run the whole time). */
static void run_until(fdl_atk_loop *l, int (*cond)(void *), void *ud, unsigned ms)
{
    uint64_t deadline = fdl_atk_now_us() + (uint64_t)ms * 1000u;
    uv_timer_start(&l->tick, tick_cb, LOOP_TICK_MS, LOOP_TICK_MS);
    while (!(cond && cond(ud)) && fdl_atk_now_us() < deadline)
        uv_run(&l->uv, UV_RUN_ONCE);
    uv_timer_stop(&l->tick);
}

void fdl_atk_loop_run_for(fdl_atk_loop *l, unsigned ms)
{
    run_until(l, NULL, NULL, ms);
}

void fdl_atk_loop_free(fdl_atk_loop *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n_sess; i++)
        fdl_atk_sess_close(l->sess[i]);
    uv_close((uv_handle_t *)&l->tick, NULL);
    /* Only closing handles remain: each needs one more turn of the loop. Bounded. */
    for (int i = 0; i < 100 && uv_run(&l->uv, UV_RUN_NOWAIT) != 0; i++)
        ;
    uv_loop_close(&l->uv);
    for (size_t i = 0; i < l->n_sess; i++) {
        fdl_free(l->sess[i]->raw);
        fdl_free(l->sess[i]->mq);
        fdl_free(l->sess[i]);
    }
    fdl_free(l);
}

/* ---- events -------------------------------------------------------------------- */

static void set_why(fdl_atk_sess *s, const char *why)
{
    if (!s->why[0] && why && why[0])
        snprintf(s->why, sizeof s->why, "%s", why);
}

/* The connection is over: remember why, close the chain (the owner may do so inside a callback). */
static void drop(fdl_atk_sess *s, const char *why)
{
    if (s->tp) {
        const char *tls = fdl_tls_last_error(s->tp);
        set_why(s, tls && tls[0] ? tls : why);
        fdl_tp_close(s->tp);
        s->tp = NULL;
    }
    set_why(s, why);
    s->closed = 1;
    s->online = 0;
}

static void pump_raw(fdl_atk_sess *s)
{
    while (s->tp && s->raw && s->raw_off < s->raw_len) {
        /* TLS must be retried with the same length after a would-block. */
        size_t len = s->raw_retry ? s->raw_retry : s->raw_len - s->raw_off;
        ssize_t n = fdl_tp_send(s->tp, s->raw + s->raw_off, len);
        if (n == 0) {
            s->raw_retry = len;
            return;
        }
        if (n < 0) {
            drop(s, fdl_tp_strerror((int)n));
            return;
        }
        s->raw_retry = 0;
        s->raw_off += (size_t)n;
    }
}

static void on_connack(void *ud, uint8_t rc)
{
    fdl_atk_sess *s = ud;
    s->connack_rc = rc;
    s->online = rc == 0;
}

static void on_message(void *ud, const fdl_mqtt_publish *p)
{
    fdl_atk_sess *s = ud;
    if (s->n_msgs < FDL_ATK_SESS_MSGS) {
        fdl_atk_msg *m = &s->msgs[s->n_msgs];
        size_t tl = p->topic.len < sizeof m->topic - 1 ? p->topic.len : sizeof m->topic - 1;
        memcpy(m->topic, p->topic.ptr, tl);
        m->topic[tl] = '\0';
        m->payload_len = p->payload_len;
        memcpy(m->payload, p->payload, p->payload_len < FDL_ATK_MSG_KEEP ? p->payload_len : FDL_ATK_MSG_KEEP);
    }
    s->n_msgs++;
}

/* Larger than the device stack takes in: skipped by the MQTT client, but it was
 * delivered, which is what an observer reports. payload_len = its full length. */
static void on_oversized(void *ud, const fdl_mqtt_publish *p, size_t full)
{
    fdl_atk_sess *s = ud;
    if (s->n_msgs < FDL_ATK_SESS_MSGS) {
        fdl_atk_msg *m = &s->msgs[s->n_msgs];
        size_t tl = p->topic.len < sizeof m->topic - 1 ? p->topic.len : sizeof m->topic - 1;
        memcpy(m->topic, p->topic.ptr ? (const char *)p->topic.ptr : "", tl);
        m->topic[tl] = '\0';
        m->payload_len = full;
        memcpy(m->payload, p->payload ? p->payload : (const uint8_t *)"",
               p->payload_len < FDL_ATK_MSG_KEEP ? p->payload_len : FDL_ATK_MSG_KEEP);
    }
    s->n_msgs++;
}

static void on_puback(void *ud, uint16_t id, uint64_t lat)
{
    fdl_atk_sess *s = ud;
    (void)lat;
    if (id == s->pub_id)
        s->pub_acked = 1;
}

static void on_suback(void *ud, uint16_t id, const uint8_t *codes, size_t n)
{
    fdl_atk_sess *s = ud;
    if (id == s->suback_id && n > 0)
        s->suback_code = codes[0];
}

static void on_mq_error(void *ud, fdl_mqttc_status st, int detail)
{
    fdl_atk_sess *s = ud;
    char why[120];
    if (st == FDL_MQTTC_REFUSED) {
        s->connack_rc = detail;
        snprintf(why, sizeof why, "CONNACK return code %d", detail);
    } else if (st == FDL_MQTTC_TRANSPORT) {
        snprintf(why, sizeof why, "%s", fdl_tp_strerror(detail));
    } else {
        snprintf(why, sizeof why, "MQTT client: %s (%d)", fdl_mqttc_strerror(st), detail);
    }
    drop(s, why);
}

static const fdl_mqttc_callbacks mq_cbs = {
    .on_connack = on_connack,
    .on_message = on_message,
    .on_puback = on_puback,
    .on_suback = on_suback,
    .on_error = on_mq_error,
    .on_oversized = on_oversized,
};

static void on_tp(fdl_transport *t, fdl_tp_event ev, int status, void *user)
{
    fdl_atk_sess *s = user;
    switch (ev) {
    case FDL_TP_CONNECTED:
        s->tls_up = 1;
        if (fdl_mqttc_start(s->mq, t) != FDL_MQTTC_OK && !s->closed)
            drop(s, "could not queue CONNECT");
        break;
    case FDL_TP_READABLE:
        fdl_mqttc_on_readable(s->mq);
        break;
    case FDL_TP_WRITABLE:
        fdl_mqttc_on_writable(s->mq);
        pump_raw(s);
        break;
    case FDL_TP_CLOSED:
        drop(s, fdl_tp_strerror(status));
        break;
    }
}

/* ---- API ------------------------------------------------------------------------- */

fdl_atk_sess *fdl_atk_sess_new(fdl_atk_loop *l, const fdl_atk_sess_cfg *cfg)
{
    if (!l || !cfg || l->n_sess >= FDL_ATK_LOOP_SESSIONS)
        return NULL;
    fdl_atk_sess *s = fdl_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->mq = fdl_calloc(1, sizeof *s->mq);
    if (!s->mq) {
        fdl_free(s);
        return NULL;
    }
    s->loop = l;
    s->cfg = *cfg;
    s->cfg.host = NULL;   /* borrowed for the call only */
    snprintf(s->client_id, sizeof s->client_id, "%s", cfg->client_id ? cfg->client_id : "attacker");
    s->connack_rc = -1;
    s->suback_code = -1;
    fdl_mqttc_init(s->mq, s->client_id, 60, &mq_cbs, s);
    fdl_transport *tcp = fdl_tcp_new(&l->uv, SESS_TCP_RX_CAP, SESS_TCP_TX_CAP, 3000);
    fdl_transport *tls = tcp ? fdl_tls_new(tcp, &s->cfg.tls) : NULL;
    if (!tls) {
        if (tcp)
            fdl_tp_close(tcp);
        fdl_free(s->mq);
        fdl_free(s);
        return NULL;
    }
    if (cfg->source_ipv4)
        fdl_tcp_set_source(tcp, cfg->source_ipv4);
    fdl_tp_set_cb(tls, on_tp, s);
    s->tp = tls;
    /* The chain connects now; fdl_atk_sess_connect runs the loop that carries it. */
    int rc = tls->vt->connect(tls, cfg->host, cfg->port);
    if (rc < 0)
        drop(s, fdl_tp_strerror(rc));
    l->sess[l->n_sess++] = s;
    return s;
}

static int connect_done(void *ud)
{
    const fdl_atk_sess *s = ud;
    return s->online || s->closed || s->connack_rc >= 0;
}

int fdl_atk_sess_connect(fdl_atk_sess *s, unsigned timeout_ms, const char *who, fdl_atk_result *r)
{
    who = who ? who : "client";
    if (!s) {
        if (r)
            fdl_atk_note(r, "%s: could not create the session (out of memory or loop full)", who);
        return FDL_ATK_STAGE_SETUP;
    }
    run_until(s->loop, connect_done, s, timeout_ms);
    const char *ver = s->tp ? fdl_tls_version(s->tp) : NULL;
    if (s->online) {
        if (r)
            fdl_atk_note(r, "%s: %s handshake completed, CONNACK 0 (accepted) for client id %s", who,
                         ver ? ver : "TLS", s->client_id);
        return FDL_ATK_STAGE_NONE;
    }
    int stage;
    if (s->connack_rc > 0) {
        stage = FDL_ATK_STAGE_CONNACK;
        if (r)
            fdl_atk_note(r, "%s: TLS handshake completed, CONNACK return code %d (refused)", who, s->connack_rc);
    } else if (!s->closed) {
        stage = s->tls_up ? FDL_ATK_STAGE_CONNACK : FDL_ATK_STAGE_TLS;
        if (r)
            fdl_atk_note(r, "%s: no %s within %u ms", who, s->tls_up ? "CONNACK" : "TLS handshake", timeout_ms);
        drop(s, "timed out");
    } else if (!s->tls_up && !strstr(s->why, "TLS") && !strstr(s->why, "alert") && !strstr(s->why, "certificate")) {
        stage = FDL_ATK_STAGE_TCP;
        if (r)
            fdl_atk_note(r, "%s: TCP connection failed: %s", who, s->why);
    } else {
        /* A TLS 1.3 server refuses a client certificate after the client's Finished:
         * the client saw its handshake complete, then an alert (or a close) instead of CONNACK. */
        stage = FDL_ATK_STAGE_TLS;
        if (r)
            fdl_atk_note(r, "%s: %s; refused: %s", who,
                         s->tls_up ? "client finished its TLS handshake, no CONNACK followed"
                                   : "TLS handshake failed",
                         s->why[0] ? s->why : "connection closed");
    }
    return stage;
}

static int suback_done(void *ud)
{
    const fdl_atk_sess *s = ud;
    return s->closed || s->suback_code >= 0;
}

int fdl_atk_sess_subscribe(fdl_atk_sess *s, const char *filter, unsigned timeout_ms)
{
    if (!s || !s->online)
        return -1;
    s->suback_code = -1;
    if (fdl_mqttc_subscribe(s->mq, filter, 1, &s->suback_id) != FDL_MQTTC_OK)
        return -1;
    run_until(s->loop, suback_done, s, timeout_ms);
    return s->suback_code;
}

static int puback_done(void *ud)
{
    const fdl_atk_sess *s = ud;
    return s->closed || s->pub_acked;
}

static int raw_done(void *ud)
{
    const fdl_atk_sess *s = ud;
    return s->closed || s->raw_off >= s->raw_len;
}

static int txq_empty(void *ud)
{
    const fdl_atk_sess *s = ud;
    return s->closed || s->mq->tx_len == 0;
}

int fdl_atk_sess_publish(fdl_atk_sess *s, const char *topic, const void *payload, size_t len, unsigned timeout_ms)
{
    if (!s || !s->online)
        return 0;
    /* Small enough for the MQTT client: QoS 1 through it (topic + header < 256 bytes). */
    if (len + strlen(topic) + 16 <= FDL_MQTTC_TX_CAP) {
        s->pub_acked = 0;
        s->pub_id = 0;
        fdl_mqttc_status st = fdl_mqttc_publish(s->mq, topic, payload, len, 1, &s->pub_id);
        if (st != FDL_MQTTC_OK)
            return -1;
        run_until(s->loop, puback_done, s, timeout_ms);
        return s->pub_acked;
    }
    if (len > FDL_ATK_PUBLISH_MAX)
        return -1;
    /* Larger: encode here and write the bytes after whatever the client has queued. */
    run_until(s->loop, txq_empty, s, timeout_ms);
    if (s->closed)
        return 0;
    fdl_free(s->raw);
    s->raw = fdl_malloc(len + 64 + strlen(topic));
    if (!s->raw)
        return -1;
    fdl_mqtt_publish p = {.topic = fdl_mqtt_cstr(topic), .payload = payload, .payload_len = len};
    size_t n = 0;
    if (fdl_mqtt_encode_publish(s->raw, len + 64 + strlen(topic), &p, &n) != FDL_MQTT_OK)
        return -1;
    s->raw_len = n;
    s->raw_off = s->raw_retry = 0;
    pump_raw(s);
    run_until(s->loop, raw_done, s, timeout_ms);
    return !s->closed && s->raw_off >= s->raw_len;
}

int fdl_atk_sess_online(const fdl_atk_sess *s)
{
    return s && s->online && !s->closed;
}

int fdl_atk_sess_closed(const fdl_atk_sess *s, const char **why)
{
    if (why)
        *why = s ? s->why : "";
    return s ? s->closed : 1;
}

size_t fdl_atk_sess_received(const fdl_atk_sess *s)
{
    return s ? s->n_msgs : 0;
}

const fdl_atk_msg *fdl_atk_sess_msg(const fdl_atk_sess *s, size_t i)
{
    if (!s || i >= s->n_msgs || i >= FDL_ATK_SESS_MSGS)
        return NULL;
    return &s->msgs[i];
}

size_t fdl_atk_sess_count(const fdl_atk_sess *s, const char *topic, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; s && i < s->n_msgs && i < FDL_ATK_SESS_MSGS; i++) {
        const fdl_atk_msg *m = &s->msgs[i];
        if (topic && strcmp(m->topic, topic) != 0)
            continue;
        size_t kept = m->payload_len < FDL_ATK_MSG_KEEP ? m->payload_len : FDL_ATK_MSG_KEEP;
        if (needle && !memmem(m->payload, kept, needle, strlen(needle)))
            continue;
        n++;
    }
    return n;
}

void fdl_atk_sess_close(fdl_atk_sess *s)
{
    if (!s || !s->tp)
        return;
    if (s->online)
        (void)fdl_mqttc_disconnect(s->mq);
    fdl_tp_close(s->tp);
    s->tp = NULL;
    s->closed = 1;
    s->online = 0;
    set_why(s, "closed by the attacker");
}

void fdl_atk_sess_note_msgs(const fdl_atk_sess *s, const char *who, size_t max, fdl_atk_result *r)
{
    for (size_t i = 0; i < max && i < s->n_msgs && i < FDL_ATK_SESS_MSGS; i++) {
        const fdl_atk_msg *m = &s->msgs[i];
        char shown[81];
        size_t kept = m->payload_len < 80 ? m->payload_len : 80, j;
        for (j = 0; j < kept; j++)
            shown[j] = m->payload[j] >= 0x20 && m->payload[j] < 0x7f ? (char)m->payload[j] : '.';
        shown[j] = '\0';
        fdl_atk_note(r, "%s received %s (%zu bytes): %s%s", who, m->topic, m->payload_len, shown,
                     m->payload_len > kept ? "..." : "");
    }
    if (s->n_msgs > max)
        fdl_atk_note(r, "%s received %zu more", who, s->n_msgs - max);
}
