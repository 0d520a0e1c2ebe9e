/* devices/tls.c — mbedTLS 3.6 TLS 1.3 client over a transport chain (see tls.h). */
#include "devices/tls.h"

#include <psa/crypto.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mbedtls/error.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include "sim/alloc.h"

typedef struct tls_layer {
    fdl_transport base;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    const fdl_tls_client_cfg *cfg;
    int handshaking, done, failed;
    uint64_t hs_start_ns, hs_us;
    char err[160];
} tls_layer;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int fdl_tls_global_init(void)
{
    return psa_crypto_init() == PSA_SUCCESS ? 0 : -1;
}

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    tls_layer *t = ctx;
    ssize_t n = fdl_tp_send(t->base.next, buf, len);
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_WRITE;
    if (n < 0)
        return MBEDTLS_ERR_NET_SEND_FAILED;
    return (int)n;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    tls_layer *t = ctx;
    ssize_t n = fdl_tp_recv(t->base.next, buf, len);
    if (n == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (n == FDL_TP_ECLOSED)
        return 0;   /* mbedTLS reads 0 as EOF */
    if (n < 0)
        return MBEDTLS_ERR_NET_RECV_FAILED;
    return (int)n;
}

/* RFC 8446 names of the alerts a peer may end a handshake with. */
static const char *alert_name(int d)
{
    switch (d) {
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 109: return "missing_extension";
    case 112: return "unrecognized_name";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "alert";
    }
}

/* Maps an mbedTLS error to a transport error and records a readable cause. */
static int tls_fail(tls_layer *t, int ret)
{
    char eb[100];
    mbedtls_strerror(ret, eb, sizeof eb);
    uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
    int err = FDL_TP_ETLS;
    if (ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        char vb[100] = "";
        if (flags != (uint32_t)-1)
            mbedtls_x509_crt_verify_info(vb, sizeof vb, "", flags);
        vb[strcspn(vb, "\n")] = 0;
        snprintf(t->err, sizeof t->err, "server certificate rejected: %s", vb[0] ? vb : eb);
        err = FDL_TP_ECERT;
    } else if (ret == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
        /* mbedTLS has no getter for the alert it received; the record it just
         * parsed is still in in_msg (level, description), as its own debug log reads it. */
        const unsigned char *m = t->ssl.MBEDTLS_PRIVATE(in_msg);
        int desc = m ? m[1] : -1;
        snprintf(t->err, sizeof t->err, "fatal alert from peer: %d %s", desc, alert_name(desc));
        err = FDL_TP_ETLSALERT;
    } else if (ret == MBEDTLS_ERR_NET_RECV_FAILED || ret == MBEDTLS_ERR_NET_SEND_FAILED ||
               ret == MBEDTLS_ERR_SSL_CONN_EOF || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
        snprintf(t->err, sizeof t->err, "connection lost during TLS (%s)", eb);
        err = t->done ? FDL_TP_ECLOSED : FDL_TP_ERESET;
    } else {
        snprintf(t->err, sizeof t->err, "TLS error -0x%04x: %s", (unsigned)-ret, eb);
    }
    t->failed = 1;
    return err;
}

static void step_handshake(tls_layer *t)
{
    int ret = mbedtls_ssl_handshake(&t->ssl);
    if (ret == 0) {
        t->handshaking = 0;
        t->done = 1;
        t->hs_us = (mono_ns() - t->hs_start_ns) / 1000u;
        fdl_tp_emit(&t->base, FDL_TP_CONNECTED, 0);
        return;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
        return;
    t->handshaking = 0;
    fdl_tp_emit(&t->base, FDL_TP_CLOSED, tls_fail(t, ret));
}

static void tls_on_lower(fdl_transport *base, fdl_tp_event ev, int status)
{
    tls_layer *t = (tls_layer *)base;
    if (t->base.closing)
        return;
    switch (ev) {
    case FDL_TP_CONNECTED:
        t->handshaking = 1;
        t->hs_start_ns = mono_ns();
        step_handshake(t);
        break;
    case FDL_TP_READABLE:
    case FDL_TP_WRITABLE:
        if (t->handshaking)
            step_handshake(t);
        else if (t->done)
            fdl_tp_emit(&t->base, ev, 0);
        break;
    case FDL_TP_CLOSED:
        if (t->handshaking) {
            snprintf(t->err, sizeof t->err, "connection lost during TLS handshake: %s", fdl_tp_strerror(status));
        }
        fdl_tp_emit(&t->base, FDL_TP_CLOSED, status);
        break;
    }
}

static int tls_connect(fdl_transport *base, const char *host, uint16_t port)
{
    return base->next->vt->connect(base->next, host, port);
}

static ssize_t tls_send(fdl_transport *base, const uint8_t *buf, size_t len)
{
    tls_layer *t = (tls_layer *)base;
    if (!t->done)
        return t->failed ? FDL_TP_ETLS : 0;
    int ret = mbedtls_ssl_write(&t->ssl, buf, len);
    if (ret >= 0)
        return ret;
    if (ret == MBEDTLS_ERR_SSL_WANT_WRITE || ret == MBEDTLS_ERR_SSL_WANT_READ)
        return 0;
    return tls_fail(t, ret);
}

static ssize_t tls_recv(fdl_transport *base, uint8_t *buf, size_t cap)
{
    tls_layer *t = (tls_layer *)base;
    if (!t->done)
        return t->failed ? FDL_TP_ETLS : 0;
    for (;;) {
        int ret = mbedtls_ssl_read(&t->ssl, buf, cap);
        if (ret > 0)
            return ret;
        if (ret == 0 || ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
            return FDL_TP_ECLOSED;
        if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE)
            return 0;
        /* TLS 1.3 post-handshake messages surface as these; keep reading. */
        if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET)
            continue;
        return tls_fail(t, ret);
    }
}

static void tls_close(fdl_transport *base)
{
    tls_layer *t = (tls_layer *)base;
    if (t->done && !t->failed)
        (void)mbedtls_ssl_close_notify(&t->ssl);   /* best effort; the socket closes next */
    base->next->vt->close(base->next);
}

static void tls_destroy(fdl_transport *base)
{
    tls_layer *t = (tls_layer *)base;
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    fdl_free(t);
}

static const fdl_transport_vtbl tls_vtbl = {
    .name = "tls",
    .connect = tls_connect,
    .send = tls_send,
    .recv = tls_recv,
    .on_lower = tls_on_lower,
    .close = tls_close,
    .destroy = tls_destroy,
};

static const uint16_t tls_groups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1, MBEDTLS_SSL_IANA_TLS_GROUP_X25519, MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};

fdl_transport *fdl_tls_new(fdl_transport *lower, const fdl_tls_client_cfg *cfg)
{
    tls_layer *t = fdl_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->base.vt = &tls_vtbl;
    t->cfg = cfg;
    mbedtls_ssl_config_init(&t->conf);
    mbedtls_ssl_init(&t->ssl);
    if (mbedtls_ssl_config_defaults(&t->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0)
        goto cleanup;
    mbedtls_ssl_conf_min_tls_version(&t->conf, cfg->allow_tls12 ? MBEDTLS_SSL_VERSION_TLS1_2
                                                                 : MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_max_tls_version(&t->conf, cfg->allow_tls12 ? MBEDTLS_SSL_VERSION_TLS1_2
                                                                 : MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_authmode(&t->conf, cfg->verify_none ? MBEDTLS_SSL_VERIFY_NONE : MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&t->conf, cfg->trust, NULL);
    mbedtls_ssl_conf_rng(&t->conf, cfg->f_rng, cfg->p_rng);
    mbedtls_ssl_conf_groups(&t->conf, tls_groups);
    if (cfg->own_cert && mbedtls_ssl_conf_own_cert(&t->conf, cfg->own_cert, cfg->own_key) != 0)
        goto cleanup;
    if (mbedtls_ssl_setup(&t->ssl, &t->conf) != 0)
        goto cleanup;
    if (cfg->server_name && mbedtls_ssl_set_hostname(&t->ssl, cfg->server_name) != 0)
        goto cleanup;
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    fdl_tp_stack(&t->base, lower);
    return &t->base;
cleanup:
    mbedtls_ssl_free(&t->ssl);
    mbedtls_ssl_config_free(&t->conf);
    fdl_free(t);
    return NULL;
}

uint64_t fdl_tls_handshake_us(const fdl_transport *base)
{
    return ((const tls_layer *)base)->hs_us;
}

const char *fdl_tls_last_error(const fdl_transport *base)
{
    return ((const tls_layer *)base)->err;
}

const char *fdl_tls_version(const fdl_transport *base)
{
    const tls_layer *t = (const tls_layer *)base;
    return t->done ? mbedtls_ssl_get_version(&t->ssl) : NULL;
}
