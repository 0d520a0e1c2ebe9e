/* devices/device.c — virtual device firmware: connect, telemetry, backoff (see device.h). */
#include "devices/device.h"

#include <stdio.h>
#include <string.h>

#include "devices/claim.h"
#include "devices/tcp.h"
#include "sim/alloc.h"
#include "sim/fdl_log.h"

#define DEV_TCP_RX_CAP 4096           /* bytes; mbedTLS pulls records out of it in pieces */
#define DEV_TCP_TX_CAP (64 * 1024)    /* bytes queued before send reports would-block */

static const char *state_names[] = {"idle",     "waiting",  "connecting", "mqtt",    "online",
                                    "backoff",  "stopping", "stopped",    "recovery"};
static const char *fail_names[] = {
    "none", "tcp connect failed", "tcp connect timed out", "broker certificate rejected",
    "refused by broker during TLS", "TLS failure", "MQTT CONNACK refused", "MQTT protocol error",
    "connection lost", "local error", "rebooted",
};

const char *fdl_device_state_name(fdl_device_state s)
{
    return (unsigned)s < sizeof state_names / sizeof state_names[0] ? state_names[s] : "?";
}

const char *fdl_device_fail_name(fdl_device_fail f)
{
    return (unsigned)f < FDL_FAIL__COUNT ? fail_names[f] : "?";
}

static uint32_t rnd32(fdl_device *d)
{
    uint64_t x = d->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    d->rng = x;
    return (uint32_t)(x >> 32);
}

static void on_tp(fdl_transport *t, fdl_tp_event ev, int status, void *user);
static void sim_timer_cb(uv_timer_t *tm);
static void net_timer_cb(uv_timer_t *tm);
static void ota_timer_cb(uv_timer_t *tm);
static void want_connect(fdl_device *d);

static void mq_connack(void *ud, uint8_t rc);
static void mq_message(void *ud, const fdl_mqtt_publish *p);
static void mq_puback(void *ud, uint16_t id, uint64_t lat);
static void mq_error(void *ud, fdl_mqttc_status st, int detail);

static const fdl_mqttc_callbacks mq_cbs = {
    .on_connack = mq_connack,
    .on_message = mq_message,
    .on_puback = mq_puback,
    .on_suback = NULL,
    .on_error = mq_error,
};

int fdl_device_init(fdl_device *d, uint32_t index, const char *id, const fdl_device_env *env,
                    mbedtls_x509_crt *cert, mbedtls_pk_context *key)
{
    memset(d, 0, sizeof *d);
    if (strlen(id) >= FDL_DEVICE_ID_MAX)
        return -1;
    d->index = index;
    strcpy(d->id, id);
    snprintf(d->topic_telemetry, sizeof d->topic_telemetry, "telemetry/%s", id);
    snprintf(d->topic_commands, sizeof d->topic_commands, "commands/%s", id);
    d->env = env;
    d->cert = cert;
    d->key = key;
    d->tls.trust = env->trust;
    d->tls.own_cert = cert;
    d->tls.own_key = key;
    d->tls.server_name = env->server_name;
    d->tls.f_rng = env->f_rng;
    d->tls.p_rng = env->p_rng;
    d->tls.verify_none = env->verify_none;
    d->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)index * 0xBF58476D1CE4E5B9ull + 1);
    d->battery = 100.0 - (double)(index % 40);
    fdl_backoff_init(&d->backoff, env->params.backoff_base_ms, env->params.backoff_cap_ms);
    fdl_mqttc_init(&d->mqtt, d->id, env->params.keepalive_s, &mq_cbs, d);
    snprintf(d->claim_topic, sizeof d->claim_topic, "$fleet/claim/%s/", id);
    snprintf(d->topic_notify, sizeof d->topic_notify, "$fleet/jobs/%s/notify", id);
    snprintf(d->topic_block, sizeof d->topic_block, "$fleet/ota/%s/block", id);
    return 0;
}

/* ---- firmware: boot, the OTA agent's I/O, reboot ------------------------------- */

static uint64_t sim_now(const fdl_device *d)
{
    return fdl_vclock_now_ms(d->env->clock);
}

/* Status reports made offline wait here: "reverted" is known at boot, before the
 * device is back online, and the job service's gate needs it. Bounded: a few
 * reports of at most 1 KiB each (an agent makes one or two per boot). */
#define DEV_OUTBOX_CAP 4096u

static void outbox_put(fdl_device *d, const uint8_t *payload, size_t len)
{
    if (len > 1024 || (!d->outbox && !(d->outbox = fdl_malloc(DEV_OUTBOX_CAP))) ||
        d->outbox_len + 2 + len > DEV_OUTBOX_CAP) {
        d->ota_dropped++;
        return;
    }
    d->outbox[d->outbox_len] = (uint8_t)(len >> 8);
    d->outbox[d->outbox_len + 1] = (uint8_t)len;
    memcpy(d->outbox + d->outbox_len + 2, payload, len);
    d->outbox_len += 2 + len;
}

/* Back online: the reports kept while offline, in order. */
static void outbox_flush(fdl_device *d)
{
    char topic[FDL_DEVICE_ID_MAX + 24];
    snprintf(topic, sizeof topic, "$fleet/jobs/%s/status", d->id);
    size_t at = 0;
    while (at + 2 <= d->outbox_len) {
        size_t len = (size_t)d->outbox[at] << 8 | d->outbox[at + 1];
        if (fdl_mqttc_publish(&d->mqtt, topic, d->outbox + at + 2, len, 1, NULL) != FDL_MQTTC_OK &&
            fdl_mqttc_publish(&d->mqtt, topic, d->outbox + at + 2, len, 0, NULL) != FDL_MQTTC_OK)
            d->ota_dropped++;
        at += 2 + len;
    }
    d->outbox_len = 0;
}

/* The agent publishes through the session. Offline, a status report waits in the
 * outbox and a block request is dropped (the agent asks again on its timeout). */
static void ota_publish(void *ud, const char *topic, const uint8_t *payload, size_t len)
{
    fdl_device *d = ud;
    int status = !strncmp(topic, "$fleet/jobs/", 12);
    if (d->env->hooks->ota_report && status)
        d->env->hooks->ota_report(d, payload, len, d->env->hooks_ud);
    if (d->state != FDL_DEV_ONLINE || d->claiming) {
        if (status)
            outbox_put(d, payload, len);
        else
            d->ota_dropped++;
        return;
    }
    fdl_mqttc_status st = fdl_mqttc_publish(&d->mqtt, topic, payload, len, 1, NULL);
    if (st == FDL_MQTTC_BUSY)   /* QoS 1 window full (telemetry): send it without an ack */
        st = fdl_mqttc_publish(&d->mqtt, topic, payload, len, 0, NULL);
    if (st != FDL_MQTTC_OK)
        d->ota_dropped++;
}

/* Ticks while the agent has something under way; idle, the timer stops. */
static void ota_arm(fdl_device *d)
{
    if (!d->ota || d->state == FDL_DEV_STOPPING || d->state == FDL_DEV_STOPPED)
        return;
    if (d->reboot_pending) {
        uv_timer_start(&d->ota_timer, ota_timer_cb, 0, 0);
        return;
    }
    if (fdl_ota_get_state(d->ota) == FDL_OTA_IDLE) {
        uv_timer_stop(&d->ota_timer);
        return;
    }
    uint64_t every = fdl_vclock_real_delay_ms(d->env->clock, 1000);
    uv_timer_start(&d->ota_timer, ota_timer_cb, every, every);
}

/* The agent wants a reboot; it happens on the next loop turn, never inside the
 * session's read callback that delivered the last block. */
static void ota_reboot(void *ud)
{
    fdl_device *d = ud;
    d->reboot_pending = true;
    ota_arm(d);
}

int fdl_device_set_firmware(fdl_device *d, fdl_fw *fw)
{
    fdl_ota_io io = {.publish = ota_publish, .reboot = ota_reboot, .ud = d};
    d->fw = fw;
    d->ota = fdl_ota_new(d->id, fw, &d->env->ota, &io);
    return d->ota ? 0 : -1;
}

/* Power on (or reset): the boot chain decides what runs. 1 if the device may go
 * on to connect, 0 if it halted in recovery mode. */
static int boot(fdl_device *d)
{
    fdl_boot_record rec;
    uint64_t t0 = fdl_now_ns();
    fdl_boot_outcome o = fdl_fw_boot(d->fw, sim_now(d), &rec);
    d->boot_ns += fdl_now_ns() - t0;
    d->n_boots++;
    fdl_ota_booted(d->ota, &rec, sim_now(d));
    if (d->env->hooks->booted)
        d->env->hooks->booted(d, &rec, d->env->hooks_ud);
    if (o == FDL_BOOT_RECOVERY) {
        FDL_INFO("device", "%s: boot %u halted in recovery mode: %s", d->id, d->n_boots, rec.why);
        d->state = FDL_DEV_RECOVERY;
        return 0;
    }
    return 1;
}

void fdl_device_set_claim(fdl_device *d, mbedtls_x509_crt *claim_cert, mbedtls_pk_context *claim_key)
{
    d->claim_cert = claim_cert;
    d->claim_key = claim_key;
    d->claiming = true;
    d->tls.own_cert = claim_cert;
    d->tls.own_key = claim_key;
}

static void set_state(fdl_device *d, fdl_device_state s)
{
    d->state = s;
}

static void want_connect(fdl_device *d)
{
    set_state(d, FDL_DEV_WAITING);
    d->env->hooks->want_connect(d, d->env->hooks_ud);
}

void fdl_device_start(fdl_device *d)
{
    uv_timer_init(d->env->loop, &d->sim_timer);
    uv_timer_init(d->env->loop, &d->net_timer);
    uv_timer_init(d->env->loop, &d->ota_timer);
    d->sim_timer.data = d;
    d->net_timer.data = d;
    d->ota_timer.data = d;
    d->handles_open = 3;
    if (d->fw && !boot(d))
        return;
    want_connect(d);
    ota_arm(d);
}

static void drop_connection(fdl_device *d)
{
    if (d->tp) {
        fdl_tp_close(d->tp);
        d->tp = NULL;
    }
    fdl_mqttc_reset(&d->mqtt);
    uv_timer_stop(&d->net_timer);
    uv_timer_stop(&d->sim_timer);
}

/* The agent asked for a reboot: leave the session, boot again, reconnect. */
static void reboot(fdl_device *d)
{
    fdl_device_state was = d->state;
    d->reboot_pending = false;
    if (was == FDL_DEV_STOPPING || was == FDL_DEV_STOPPED || was == FDL_DEV_RECOVERY)
        return;
    if (was == FDL_DEV_ONLINE && !d->claiming)
        (void)fdl_mqttc_disconnect(&d->mqtt);
    drop_connection(d);
    FDL_DEBUG("device", "%s: rebooting (state %s)", d->id, fdl_device_state_name(was));
    if (was == FDL_DEV_ONLINE) {
        if (!d->claiming)
            d->env->hooks->offline(d, FDL_FAIL_REBOOT, d->env->hooks_ud);
        else
            d->env->hooks->attempt_done(d, false, FDL_FAIL_REBOOT, d->env->hooks_ud);
    } else if (was == FDL_DEV_CONNECTING || was == FDL_DEV_MQTT) {
        d->env->hooks->attempt_done(d, false, FDL_FAIL_REBOOT, d->env->hooks_ud);
    }
    d->state = FDL_DEV_IDLE;
    if (!boot(d))
        return;
    if (was == FDL_DEV_WAITING)
        d->state = FDL_DEV_WAITING;   /* still in the fleet's admission queue: not queued twice */
    else
        want_connect(d);
    ota_arm(d);
}

static void ota_timer_cb(uv_timer_t *tm)
{
    fdl_device *d = tm->data;
    if (d->reboot_pending)
        reboot(d);
    if (d->state == FDL_DEV_RECOVERY || d->state == FDL_DEV_STOPPING || d->state == FDL_DEV_STOPPED)
        return;
    fdl_ota_tick(d->ota, sim_now(d));
    ota_arm(d);
}

/* Ends the current attempt or session with a failure, then backs off. */
static void fail(fdl_device *d, fdl_device_fail why, const char *detail)
{
    fdl_device_state was = d->state;
    if (was == FDL_DEV_STOPPING || was == FDL_DEV_STOPPED)
        return;
    FDL_DEBUG("device", "%s: %s%s%s (state %s)", d->id, fdl_device_fail_name(why), detail ? ": " : "",
              detail ? detail : "", fdl_device_state_name(was));
    drop_connection(d);
    d->last_fail = why;
    d->n_fail[why]++;
    snprintf(d->last_error, sizeof d->last_error, "%s%s%s", fdl_device_fail_name(why),
             detail && *detail ? ": " : "", detail ? detail : "");
    set_state(d, FDL_DEV_BACKOFF);
    /* A refusal is the cloud saying no to this identity: CONNACK "not authorized"
     * (registry, policy) or a fatal alert during the handshake (the broker's TLS
     * layer refused our certificate, e.g. it is on the CRL). Decided before the
     * hooks run, so what the fleet records with them includes the revoked state. */
    if (why == FDL_FAIL_MQTT_REFUSED || why == FDL_FAIL_TLS_ALERT) {
        uint32_t limit = d->n_online ? d->env->params.revoked_after_refusals : d->env->params.revoked_after_refusals_new;
        if (!limit)
            limit = d->n_online ? 3 : 10;
        if (++d->refused_in_row >= limit && !d->revoked) {
            d->revoked = true;
            FDL_INFO("device", "%s: refused %u times in a row: revoked state (LED on), publishing stopped",
                     d->id, d->refused_in_row);
        }
    }
    if (was == FDL_DEV_ONLINE) {
        if (!d->claiming)   /* a claim session was never online for the fleet */
            d->env->hooks->offline(d, why, d->env->hooks_ud);
    } else {
        d->env->hooks->attempt_done(d, false, why, d->env->hooks_ud);
    }
    uint64_t delay = d->revoked ? d->env->params.backoff_cap_ms : fdl_backoff_next(&d->backoff, rnd32(d));
    uv_timer_start(&d->sim_timer, sim_timer_cb, fdl_vclock_real_delay_ms(d->env->clock, delay), 0);
}

void fdl_device_admit(fdl_device *d)
{
    if (d->state != FDL_DEV_WAITING)
        return;
    const fdl_device_env *env = d->env;
    d->n_attempts++;
    d->attempt_start_ns = fdl_now_ns();
    if (!d->first_attempt_ns)
        d->first_attempt_ns = d->attempt_start_ns;
    set_state(d, FDL_DEV_CONNECTING);
    fdl_transport *tcp = fdl_tcp_new(env->loop, DEV_TCP_RX_CAP, DEV_TCP_TX_CAP, env->params.connect_real_timeout_ms);
    if (!tcp) {
        fail(d, FDL_FAIL_LOCAL, "out of memory");
        return;
    }
    if (d->source_ip)
        fdl_tcp_set_source(tcp, d->source_ip);
    fdl_transport *tls = fdl_tls_new(tcp, &d->tls);
    if (!tls) {
        fdl_tp_close(tcp);
        fail(d, FDL_FAIL_LOCAL, "TLS setup failed");
        return;
    }
    d->tp = tls;
    fdl_tp_set_cb(tls, on_tp, d);
    int r = tls->vt->connect(tls, env->broker_host, env->broker_port);
    if (r < 0) {
        fail(d, FDL_FAIL_TCP, fdl_tp_strerror(r));
        return;
    }
    /* Bounds TCP connect + TLS handshake + CONNACK together. */
    uv_timer_start(&d->net_timer, net_timer_cb, env->params.connect_real_timeout_ms, 0);
}

static fdl_device_fail classify_transport(fdl_device *d, int status)
{
    switch (status) {
    case FDL_TP_ECERT: return FDL_FAIL_SERVER_CERT;
    case FDL_TP_ETLSALERT: return FDL_FAIL_TLS_ALERT;
    case FDL_TP_ETLS: return FDL_FAIL_TLS;
    case FDL_TP_ETIMEDOUT: return d->state == FDL_DEV_CONNECTING ? FDL_FAIL_TCP_TIMEOUT : FDL_FAIL_LOST;
    default:
        if (d->state == FDL_DEV_CONNECTING)
            return FDL_FAIL_TCP;
        /* Closed right after our handshake, before CONNACK: TLS 1.3 servers reject a
         * client certificate after the client has finished, so this is a refusal. */
        if (d->state == FDL_DEV_MQTT)
            return FDL_FAIL_TLS_ALERT;
        return FDL_FAIL_LOST;
    }
}

static void on_tp(fdl_transport *t, fdl_tp_event ev, int status, void *user)
{
    fdl_device *d = user;
    FDL_DEBUG("device", "%s: transport event %d status %d in state %s", d->id, (int)ev, status,
              fdl_device_state_name(d->state));
    switch (ev) {
    case FDL_TP_CONNECTED:
        d->handshake_us = fdl_tls_handshake_us(t);
        set_state(d, FDL_DEV_MQTT);
        if (fdl_mqttc_start(&d->mqtt, t) != FDL_MQTTC_OK && d->state == FDL_DEV_MQTT)
            fail(d, FDL_FAIL_LOCAL, "could not queue CONNECT");
        break;
    case FDL_TP_READABLE:
        fdl_mqttc_on_readable(&d->mqtt);
        break;
    case FDL_TP_WRITABLE:
        fdl_mqttc_on_writable(&d->mqtt);
        break;
    case FDL_TP_CLOSED: {
        const char *detail = fdl_tls_last_error(t);
        fail(d, classify_transport(d, status), detail && *detail ? detail : fdl_tp_strerror(status));
        break;
    }
    }
}

static void publish_telemetry(fdl_device *d)
{
    const fdl_vclock *clk = d->env->clock;
    uint64_t now = fdl_vclock_now_ms(clk);
    uint64_t usage_min = fdl_vclock_sim_elapsed_ms(clk) / 60000u;
    d->battery -= 0.001 * (double)(d->env->params.telemetry_interval_ms / 1000u);
    if (d->battery < 5.0)
        d->battery = 100.0;   /* recharged */
    double torque = 8.0 + (double)(rnd32(d) % 1000) / 100.0;
    char payload[192];
    int n = snprintf(payload, sizeof payload,
                     "{\"seq\":%llu,\"ts\":%llu,\"battery\":%.2f,\"torque\":%.2f,\"usage_minutes\":%llu}",
                     (unsigned long long)d->seq, (unsigned long long)now, d->battery, torque,
                     (unsigned long long)usage_min);
    fdl_mqttc_status st = fdl_mqttc_publish(&d->mqtt, d->topic_telemetry, (const uint8_t *)payload, (size_t)n,
                                            d->env->params.telemetry_qos, NULL);
    if (st == FDL_MQTTC_OK)
        d->seq++;
}

static void sim_timer_cb(uv_timer_t *tm)
{
    fdl_device *d = tm->data;
    if (d->state == FDL_DEV_BACKOFF) {
        want_connect(d);
    } else if (d->state == FDL_DEV_ONLINE) {
        publish_telemetry(d);
        uv_timer_start(&d->sim_timer, sim_timer_cb,
                       fdl_vclock_real_delay_ms(d->env->clock, d->env->params.telemetry_interval_ms), 0);
    }
}

static void net_timer_cb(uv_timer_t *tm)
{
    fdl_device *d = tm->data;
    if (d->state == FDL_DEV_CONNECTING || d->state == FDL_DEV_MQTT) {
        fail(d, d->state == FDL_DEV_CONNECTING ? FDL_FAIL_TCP_TIMEOUT : FDL_FAIL_MQTT_PROTOCOL,
             "no answer within the connect timeout");
        return;
    }
    if (d->state == FDL_DEV_ONLINE) {
        uint64_t now = fdl_now_ns();
        if (d->claiming && now >= d->claim_deadline_ns) {
            fail(d, FDL_FAIL_MQTT_PROTOCOL, "no answer to the certificate request");
            return;
        }
        uint64_t next = fdl_mqttc_poll(&d->mqtt, now);
        if (d->state != FDL_DEV_ONLINE)
            return;
        if (d->claiming && next > (d->claim_deadline_ns - now) / 1000000u + 1)
            next = (d->claim_deadline_ns - now) / 1000000u + 1;
        uv_timer_start(&d->net_timer, net_timer_cb, next, 0);
    }
}

/* Connected with the claim credential: ask for a certificate for our own key. */
static void claim_session(fdl_device *d)
{
    char topic[sizeof d->claim_topic + 8], csr[FDL_CLAIM_CSR_MAX];
    set_state(d, FDL_DEV_ONLINE);
    d->refused_in_row = 0;
    d->connect_us = (fdl_now_ns() - d->attempt_start_ns) / 1000u;
    d->env->hooks->attempt_done(d, true, FDL_FAIL_NONE, d->env->hooks_ud);
    if (d->state != FDL_DEV_ONLINE)
        return;
    int n = fdl_claim_make_csr(d->id, d->key, d->env->f_rng, d->env->p_rng, csr, sizeof csr);
    if (n < 0) {
        fail(d, FDL_FAIL_LOCAL, "cannot make a certificate request");
        return;
    }
    snprintf(topic, sizeof topic, "%s+", d->claim_topic);
    fdl_mqttc_subscribe(&d->mqtt, topic, 1, NULL);
    snprintf(topic, sizeof topic, "%scsr", d->claim_topic);
    if (fdl_mqttc_publish(&d->mqtt, topic, (const uint8_t *)csr, (size_t)n, 1, NULL) != FDL_MQTTC_OK) {
        fail(d, FDL_FAIL_LOCAL, "cannot queue the certificate request");
        return;
    }
    d->n_claims++;
    uint64_t wait_ms = d->env->params.connect_real_timeout_ms ? d->env->params.connect_real_timeout_ms : 15000;
    d->claim_deadline_ns = fdl_now_ns() + wait_ms * 1000000u;
    FDL_DEBUG("device", "%s: claim: certificate request sent", d->id);
    uv_timer_start(&d->net_timer, net_timer_cb, fdl_mqttc_poll(&d->mqtt, fdl_now_ns()), 0);
}

/* The answer to our CSR: a certificate to check, store and switch to, or a refusal. */
static void claim_answer(fdl_device *d, const fdl_mqtt_publish *p)
{
    size_t plen = strlen(d->claim_topic);
    const char *topic = (const char *)p->topic.ptr;
    if (p->topic.len <= plen || memcmp(topic, d->claim_topic, plen) != 0)
        return;
    const char *verb = topic + plen;
    size_t vlen = p->topic.len - plen;
    char why[200];
    if (vlen == 8 && !memcmp(verb, "rejected", 8)) {
        snprintf(why, sizeof why, "claim rejected: %.*s", (int)(p->payload_len > 150 ? 150 : p->payload_len),
                 (const char *)p->payload);
        for (char *c = why; *c; c++)
            if ((unsigned char)*c < 0x20)
                *c = ' ';
        /* The cloud said no to this device: the same "LED on" as a revoked one. */
        if (!d->revoked)
            FDL_INFO("device", "%s: %s: revoked state (LED on)", d->id, why);
        d->revoked = true;
        fail(d, FDL_FAIL_MQTT_REFUSED, why);
        return;
    }
    if (vlen != 8 || memcmp(verb, "accepted", 8))
        return;
    mbedtls_x509_crt *crt = fdl_calloc(1, sizeof *crt);
    if (!crt) {
        fail(d, FDL_FAIL_LOCAL, "out of memory");
        return;
    }
    mbedtls_x509_crt_init(crt);
    if (fdl_claim_accept(p->payload, p->payload_len, d->id, d->key, d->env->trust, crt, why, sizeof why) != 0) {
        fdl_free(crt);
        fail(d, FDL_FAIL_MQTT_PROTOCOL, why);
        return;
    }
    if (!d->env->hooks->store_cert ||
        d->env->hooks->store_cert(d, (const char *)p->payload, p->payload_len, d->env->hooks_ud) != 0) {
        mbedtls_x509_crt_free(crt);
        fdl_free(crt);
        fail(d, FDL_FAIL_LOCAL, "cannot store the claimed certificate");
        return;
    }
    if (d->issued) {
        mbedtls_x509_crt_free(d->issued);
        fdl_free(d->issued);
    }
    d->issued = crt;
    d->cert = crt;
    d->tls.own_cert = crt;
    d->tls.own_key = d->key;
    d->claiming = false;
    d->claimed = true;
    FDL_DEBUG("device", "%s: claim: certificate stored, reconnecting under its own identity", d->id);
    /* Leave the claim session (it was never online for the fleet) and connect again now. */
    (void)fdl_mqttc_disconnect(&d->mqtt);
    drop_connection(d);
    want_connect(d);
}

static void mq_connack(void *ud, uint8_t rc)
{
    fdl_device *d = ud;
    (void)rc;
    if (d->claiming) {
        claim_session(d);
        return;
    }
    FDL_DEBUG("device", "%s: online", d->id);
    set_state(d, FDL_DEV_ONLINE);
    d->n_online++;
    if (d->n_online == 1) {
        d->first_online_ns = fdl_now_ns();
        d->refused_before_online = d->n_fail[FDL_FAIL_MQTT_REFUSED];
    }
    d->refused_in_row = 0;
    if (d->revoked) {
        d->revoked = false;
        FDL_INFO("device", "%s: accepted again: revoked state cleared", d->id);
    }
    d->connect_us = (fdl_now_ns() - d->attempt_start_ns) / 1000u;
    fdl_backoff_reset(&d->backoff);
    d->env->hooks->attempt_done(d, true, FDL_FAIL_NONE, d->env->hooks_ud);
    if (d->state != FDL_DEV_ONLINE)
        return;
    fdl_mqttc_subscribe(&d->mqtt, d->topic_commands, 1, NULL);
    if (d->ota) {
        fdl_mqttc_subscribe(&d->mqtt, d->topic_notify, 1, NULL);
        fdl_mqttc_subscribe(&d->mqtt, d->topic_block, 1, NULL);
        outbox_flush(d);
        /* Back online: the phone home that confirms an image in trial. */
        fdl_ota_online(d->ota, sim_now(d));
        ota_arm(d);
        if (d->state != FDL_DEV_ONLINE)
            return;
    }
    /* Spread the fleet's telemetry over the interval instead of a thundering herd. */
    uint64_t first = d->env->params.telemetry_interval_ms
                         ? (uint64_t)rnd32(d) % d->env->params.telemetry_interval_ms
                         : 0;
    uv_timer_start(&d->sim_timer, sim_timer_cb, fdl_vclock_real_delay_ms(d->env->clock, first), 0);
    uv_timer_start(&d->net_timer, net_timer_cb, fdl_mqttc_poll(&d->mqtt, fdl_now_ns()), 0);
}

static int topic_is(const fdl_mqtt_publish *p, const char *topic)
{
    size_t n = strlen(topic);
    return p->topic.len == n && !memcmp(p->topic.ptr, topic, n);
}

static void mq_message(void *ud, const fdl_mqtt_publish *p)
{
    fdl_device *d = ud;
    if (d->claiming) {
        claim_answer(d, p);
        return;
    }
    if (d->ota && topic_is(p, d->topic_notify)) {
        fdl_ota_on_job(d->ota, p->payload, p->payload_len, sim_now(d));
        ota_arm(d);
        return;
    }
    if (d->ota && topic_is(p, d->topic_block)) {
        fdl_ota_on_block(d->ota, p->payload, p->payload_len, sim_now(d));
        ota_arm(d);
        return;
    }
    d->n_commands++;
}

static void mq_puback(void *ud, uint16_t id, uint64_t lat)
{
    fdl_device *d = ud;
    (void)id;
    if (d->env->hooks->puback)
        d->env->hooks->puback(d, lat, d->env->hooks_ud);
}

static void mq_error(void *ud, fdl_mqttc_status st, int detail)
{
    fdl_device *d = ud;
    char buf[160];
    fdl_device_fail why;
    if (st == FDL_MQTTC_TRANSPORT) {
        why = classify_transport(d, detail);
        const char *tls_err = d->tp ? fdl_tls_last_error(d->tp) : "";
        snprintf(buf, sizeof buf, "%s", tls_err && *tls_err ? tls_err : fdl_tp_strerror(detail));
    } else if (st == FDL_MQTTC_REFUSED) {
        why = FDL_FAIL_MQTT_REFUSED;
        snprintf(buf, sizeof buf, "return code %d", detail);
    } else {
        why = d->state == FDL_DEV_ONLINE ? FDL_FAIL_LOST : FDL_FAIL_MQTT_PROTOCOL;
        snprintf(buf, sizeof buf, "%s", fdl_mqttc_strerror(st));
    }
    fail(d, why, buf);
}

static void timer_closed(uv_handle_t *h)
{
    fdl_device *d = h->data;
    if (--d->handles_open == 0) {
        set_state(d, FDL_DEV_STOPPED);
        if (d->stopped_cb)
            d->stopped_cb(d);
    }
}

void fdl_device_stop(fdl_device *d, void (*cb)(fdl_device *d))
{
    d->stopped_cb = cb;
    if (d->state == FDL_DEV_IDLE) {
        set_state(d, FDL_DEV_STOPPED);
        if (cb)
            cb(d);
        return;
    }
    if (d->state == FDL_DEV_STOPPING || d->state == FDL_DEV_STOPPED)
        return;
    if (d->state == FDL_DEV_ONLINE)
        (void)fdl_mqttc_disconnect(&d->mqtt);
    set_state(d, FDL_DEV_STOPPING);
    drop_connection(d);
    uv_close((uv_handle_t *)&d->sim_timer, timer_closed);
    uv_close((uv_handle_t *)&d->net_timer, timer_closed);
    uv_close((uv_handle_t *)&d->ota_timer, timer_closed);
}

void fdl_device_cleanup(fdl_device *d)
{
    fdl_ota_free(d->ota);
    d->ota = NULL;
    fdl_free(d->outbox);
    d->outbox = NULL;
    d->outbox_len = 0;
    if (d->issued) {
        mbedtls_x509_crt_free(d->issued);
        fdl_free(d->issued);
        d->issued = NULL;
    }
}
