/*
 * tests/test_tls.c — the device TLS layer against an in-process mbedTLS server over the
 * in-memory transport pair: no broker, no sockets, deterministic.
 *
 *  - a TLS 1.3 mutual handshake completes and application data flows both ways;
 *  - a server that speaks at most TLS 1.2 is refused (the device offers nothing below 1.3);
 *  - a server certificate from another CA, with identical names, is refused (pinning);
 *  - a server certificate for another host name is refused;
 *  - a server that requires a client certificate refuses a device without one.
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/net_sockets.h>
#include <mbedtls/ssl.h>

#include "cloud/pki.h"
#include "devices/memtp.h"
#include "devices/tls.h"

static char g_dir[512], g_fleet[600], g_rogue[600];
static mbedtls_entropy_context g_ent;
static mbedtls_ctr_drbg_context g_drbg;
static mbedtls_x509_crt g_root, g_dev_cert;
static mbedtls_pk_context g_dev_key;

static int setup(void **state)
{
    (void)state;
    fdl_test_mkdtemp("tls", g_dir, sizeof g_dir);
    snprintf(g_fleet, sizeof g_fleet, "%s/fleet", g_dir);
    snprintf(g_rogue, sizeof g_rogue, "%s/rogue", g_dir);
    assert_int_equal(fdl_tls_global_init(), 0);
    mbedtls_entropy_init(&g_ent);
    mbedtls_ctr_drbg_init(&g_drbg);
    assert_int_equal(mbedtls_ctr_drbg_seed(&g_drbg, mbedtls_entropy_func, &g_ent, NULL, 0), 0);
    assert_int_equal(fdl_pki_setup_soft(g_fleet, NULL), FDL_PKI_OK);
    assert_int_equal(fdl_pki_setup_soft(g_rogue, NULL), FDL_PKI_OK);   /* same names, other keys */

    char p[700];
    mbedtls_x509_crt_init(&g_root);
    snprintf(p, sizeof p, "%s/%s", g_fleet, FDL_PKI_ROOT_PEM);
    assert_int_equal(mbedtls_x509_crt_parse_file(&g_root, p), 0);

    /* A device identity with a software key, issued by the fleet's issuing CA. */
    mbedtls_pk_init(&g_dev_key);
    assert_int_equal(mbedtls_pk_setup(&g_dev_key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
    assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(g_dev_key), mbedtls_ctr_drbg_random,
                                         &g_drbg),
                     0);
    fdl_pki *pki = NULL;
    assert_int_equal(fdl_pki_open_soft(g_fleet, &pki), FDL_PKI_OK);
    fdl_pki_leaf_req req = {.device_id = "dev-000007", .public_key = &g_dev_key};
    unsigned char pem[4096];
    fdl_pki_issued out;
    assert_int_equal(fdl_pki_issue(pki, &req, FDL_PKI_PEM, pem, sizeof pem, &out), FDL_PKI_OK);
    fdl_pki_free(pki);
    mbedtls_x509_crt_init(&g_dev_cert);
    assert_int_equal(mbedtls_x509_crt_parse(&g_dev_cert, pem, out.len + 1), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mbedtls_x509_crt_free(&g_root);
    mbedtls_x509_crt_free(&g_dev_cert);
    mbedtls_pk_free(&g_dev_key);
    mbedtls_ctr_drbg_free(&g_drbg);
    mbedtls_entropy_free(&g_ent);
    fdl_test_rmrf(g_dir);
    return 0;
}

/* ---- an mbedTLS server on the far end of the pair --------------------------------------- */

typedef struct server {
    fdl_transport *end;
    mbedtls_ssl_config conf;
    mbedtls_ssl_context ssl;
    mbedtls_x509_crt chain, ca;
    mbedtls_pk_context key;
    int hs_ret, hs_done;
} server;

static int srv_send(void *ctx, const unsigned char *b, size_t n)
{
    ssize_t r = fdl_tp_send(((server *)ctx)->end, b, n);
    return r > 0 ? (int)r : r == 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : MBEDTLS_ERR_NET_SEND_FAILED;
}

static int srv_recv(void *ctx, unsigned char *b, size_t n)
{
    ssize_t r = fdl_tp_recv(((server *)ctx)->end, b, n);
    return r > 0 ? (int)r : r == 0 ? MBEDTLS_ERR_SSL_WANT_READ : 0;
}

/* pki_dir: whose server certificate to present; max_tls12: the server stops at TLS 1.2;
 * need_client_cert: require one. */
static void server_init(server *s, fdl_transport *end, const char *pki_dir, int max_tls12, int need_client_cert)
{
    char p[700];
    memset(s, 0, sizeof *s);
    s->end = end;
    s->hs_ret = MBEDTLS_ERR_SSL_WANT_READ;
    mbedtls_ssl_config_init(&s->conf);
    mbedtls_ssl_init(&s->ssl);
    mbedtls_x509_crt_init(&s->chain);
    mbedtls_x509_crt_init(&s->ca);
    mbedtls_pk_init(&s->key);
    snprintf(p, sizeof p, "%s/%s", pki_dir, FDL_PKI_SERVER_PEM);
    assert_int_equal(mbedtls_x509_crt_parse_file(&s->chain, p), 0);
    snprintf(p, sizeof p, "%s/%s", pki_dir, FDL_PKI_INTERMEDIATE_PEM);
    assert_int_equal(mbedtls_x509_crt_parse_file(&s->chain, p), 0);
    snprintf(p, sizeof p, "%s/%s", g_fleet, FDL_PKI_CHAIN_PEM);
    assert_int_equal(mbedtls_x509_crt_parse_file(&s->ca, p), 0);
    snprintf(p, sizeof p, "%s/%s", pki_dir, FDL_PKI_SERVER_KEY_PEM);
    assert_int_equal(mbedtls_pk_parse_keyfile(&s->key, p, NULL, mbedtls_ctr_drbg_random, &g_drbg), 0);
    assert_int_equal(mbedtls_ssl_config_defaults(&s->conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                                 MBEDTLS_SSL_PRESET_DEFAULT),
                     0);
    mbedtls_ssl_conf_rng(&s->conf, mbedtls_ctr_drbg_random, &g_drbg);
    mbedtls_ssl_conf_min_tls_version(&s->conf, MBEDTLS_SSL_VERSION_TLS1_2);
    mbedtls_ssl_conf_max_tls_version(&s->conf, max_tls12 ? MBEDTLS_SSL_VERSION_TLS1_2 : MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_authmode(&s->conf, need_client_cert ? MBEDTLS_SSL_VERIFY_REQUIRED : MBEDTLS_SSL_VERIFY_NONE);
    mbedtls_ssl_conf_ca_chain(&s->conf, &s->ca, NULL);
    assert_int_equal(mbedtls_ssl_conf_own_cert(&s->conf, &s->chain, &s->key), 0);
    assert_int_equal(mbedtls_ssl_setup(&s->ssl, &s->conf), 0);
    mbedtls_ssl_set_bio(&s->ssl, s, srv_send, srv_recv, NULL);
}

static void server_step(server *s)
{
    if (s->hs_done || (s->hs_ret != MBEDTLS_ERR_SSL_WANT_READ && s->hs_ret != MBEDTLS_ERR_SSL_WANT_WRITE))
        return;
    s->hs_ret = mbedtls_ssl_handshake(&s->ssl);
    if (s->hs_ret == 0)
        s->hs_done = 1;
}

static void server_free(server *s)
{
    mbedtls_ssl_free(&s->ssl);
    mbedtls_ssl_config_free(&s->conf);
    mbedtls_x509_crt_free(&s->chain);
    mbedtls_x509_crt_free(&s->ca);
    mbedtls_pk_free(&s->key);
}

/* ---- the device side ---------------------------------------------------------------- */

typedef struct client {
    fdl_transport *tls;
    int connected, closed, closed_status;
} client;

static void client_events(fdl_transport *t, fdl_tp_event ev, int st, void *ud)
{
    client *c = ud;
    (void)t;
    if (ev == FDL_TP_CONNECTED)
        c->connected = 1;
    else if (ev == FDL_TP_CLOSED) {
        c->closed = 1;
        c->closed_status = st;
    }
}

typedef struct rig {
    fdl_transport *dev_end, *srv_end;
    fdl_tls_client_cfg cfg;
    client cl;
    server srv;
} rig;

/* Wires a device TLS layer to a server and pumps both until nothing moves. */
static void rig_run(rig *r, const char *pki_dir, int max_tls12, int need_client_cert, const char *server_name,
                    int with_client_cert)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(fdl_memtp_pair(64 * 1024, &r->dev_end, &r->srv_end), 0);
    fdl_memtp_set_deferred(r->dev_end, 1);
    fdl_memtp_set_deferred(r->srv_end, 1);
    r->cfg.trust = &g_root;
    r->cfg.own_cert = with_client_cert ? &g_dev_cert : NULL;
    r->cfg.own_key = with_client_cert ? &g_dev_key : NULL;
    r->cfg.server_name = server_name;
    r->cfg.f_rng = mbedtls_ctr_drbg_random;
    r->cfg.p_rng = &g_drbg;
    server_init(&r->srv, r->srv_end, pki_dir, max_tls12, need_client_cert);
    r->cl.tls = fdl_tls_new(r->dev_end, &r->cfg);
    assert_non_null(r->cl.tls);
    fdl_tp_set_cb(r->cl.tls, client_events, &r->cl);
    assert_int_equal(r->cl.tls->vt->connect(r->cl.tls, "127.0.0.1", 8883), 0);
    for (int i = 0; i < 50; i++) {
        server_step(&r->srv);
        int moved = fdl_memtp_deliver(r->dev_end);
        moved |= fdl_memtp_deliver(r->srv_end);
        if (!moved && (r->srv.hs_done || r->cl.closed))
            break;
    }
}

static void rig_free(rig *r)
{
    server_free(&r->srv);
    /* The memory pair has no loop handle to close: release the chain by hand. */
    r->cl.tls->vt->destroy(r->cl.tls);
    fdl_memtp_free(r->dev_end);
}

static void handshake_and_data(void **state)
{
    (void)state;
    rig r;
    rig_run(&r, g_fleet, 0, 1, "localhost", 1);
    assert_true(r.cl.connected);
    assert_false(r.cl.closed);
    assert_int_equal(r.srv.hs_ret, 0);
    assert_string_equal(fdl_tls_version(r.cl.tls), "TLSv1.3");
    assert_true(fdl_tls_handshake_us(r.cl.tls) > 0);
    /* The server saw the device's certificate: CN = device id. */
    const mbedtls_x509_crt *peer = mbedtls_ssl_get_peer_cert(&r.srv.ssl);
    assert_non_null(peer);
    char dn[128];
    assert_true(mbedtls_x509_dn_gets(dn, sizeof dn, &peer->subject) > 0);
    assert_string_equal(dn, "CN=dev-000007");

    assert_int_equal(fdl_tp_send(r.cl.tls, (const uint8_t *)"ping", 4), 4);
    fdl_memtp_deliver(r.srv_end);
    unsigned char buf[16];
    int n;
    do {
        n = mbedtls_ssl_read(&r.srv.ssl, buf, sizeof buf);
    } while (n == MBEDTLS_ERR_SSL_WANT_READ && fdl_memtp_deliver(r.srv_end));
    assert_int_equal(n, 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(mbedtls_ssl_write(&r.srv.ssl, (const unsigned char *)"pong", 4), 4);
    fdl_memtp_deliver(r.dev_end);
    uint8_t got[16];
    ssize_t m = 0;
    for (int i = 0; i < 5 && m == 0; i++)
        m = fdl_tp_recv(r.cl.tls, got, sizeof got);
    assert_int_equal(m, 4);
    assert_memory_equal(got, "pong", 4);
    rig_free(&r);
}

static void tls12_server_refused(void **state)
{
    (void)state;
    rig r;
    rig_run(&r, g_fleet, 1, 1, "localhost", 1);
    assert_false(r.cl.connected);
    assert_true(r.cl.closed);
    assert_true(r.cl.closed_status == FDL_TP_ETLS || r.cl.closed_status == FDL_TP_ETLSALERT);
    assert_true(r.srv.hs_ret != 0);
    rig_free(&r);
}

static void rogue_ca_server_refused(void **state)
{
    (void)state;
    rig r;
    rig_run(&r, g_rogue, 0, 1, "localhost", 1);
    assert_false(r.cl.connected);
    assert_true(r.cl.closed);
    assert_int_equal(r.cl.closed_status, FDL_TP_ECERT);
    assert_non_null(strstr(fdl_tls_last_error(r.cl.tls), "server certificate rejected"));
    rig_free(&r);
}

static void wrong_host_name_refused(void **state)
{
    (void)state;
    rig r;
    rig_run(&r, g_fleet, 0, 1, "broker.evil.example", 1);
    assert_false(r.cl.connected);
    assert_int_equal(r.cl.closed_status, FDL_TP_ECERT);
    rig_free(&r);
}

static void device_without_certificate_refused(void **state)
{
    (void)state;
    rig r;
    rig_run(&r, g_fleet, 0, 1, "localhost", 0);
    /* TLS 1.3: the client may finish first; the server must refuse either way. */
    assert_int_not_equal(r.srv.hs_ret, 0);
    assert_false(r.srv.hs_done);
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(handshake_and_data),
        cmocka_unit_test(tls12_server_refused),
        cmocka_unit_test(rogue_ca_server_refused),
        cmocka_unit_test(wrong_host_name_refused),
        cmocka_unit_test(device_without_certificate_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
