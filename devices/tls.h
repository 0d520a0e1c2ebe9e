/*
 * devices/tls.h — the device's TLS 1.3 client layer (mbedTLS 3.6) over any transport.
 *
 * mbedTLS runs non-blocking on the bytes of the layer below (its bio callbacks
 * call next->send / next->recv), so one libuv loop drives thousands of sessions.
 * The client trusts exactly the CA chain it is given (the fleet root: no system
 * trust store), requires TLS 1.3 (nothing lower is offered), verifies the
 * server name, and authenticates with the device certificate and a key that may
 * live in a token (see devices/se.h: the CertificateVerify is then made by C_Sign).
 */
#ifndef FDL_TLS_H
#define FDL_TLS_H

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "devices/transport.h"

typedef struct fdl_tls_client_cfg {
    mbedtls_x509_crt *trust;      /* borrowed: the only trust anchors (fleet root) */
    mbedtls_x509_crt *own_cert;   /* borrowed: device certificate (+ chain), or NULL for no client auth */
    mbedtls_pk_context *own_key;  /* borrowed: its private key (token-backed or software) */
    const char *server_name;      /* borrowed: checked against the server certificate */
    int (*f_rng)(void *, unsigned char *, size_t);
    void *p_rng;
    int allow_tls12;              /* 0 for devices (TLS 1.3 only); attack tooling may set 1 */
    int verify_none;              /* 0 for devices. 1 = MBEDTLS_SSL_VERIFY_NONE: the server's
                                     certificate is not checked at all — the insecure
                                     configuration of a misconfigured device ("pinning off"),
                                     which attack drills use as an ablation. Never set it
                                     anywhere else. */
} fdl_tls_client_cfg;

/* Once per process before any TLS layer: initialises PSA crypto (TLS 1.3 needs it). 0 on success. */
int fdl_tls_global_init(void);

/*
 * Creates a TLS client layer stacked on `lower` (which it then owns: closing the
 * TLS layer closes `lower`). cfg and everything it points to must outlive the
 * layer. Starts the handshake when `lower` reports FDL_TP_CONNECTED, and reports
 * FDL_TP_CONNECTED itself when the handshake completes. NULL on allocation failure
 * (lower is then untouched).
 */
fdl_transport *fdl_tls_new(fdl_transport *lower, const fdl_tls_client_cfg *cfg);

/* Microseconds the handshake took (from lower CONNECTED to done); 0 until done. */
uint64_t fdl_tls_handshake_us(const fdl_transport *t);
/* Human-readable cause of the last failure ("" if none): mbedTLS error and verify flags,
 * or the description of a fatal alert the peer sent ("fatal alert from peer: 70 protocol_version"). */
const char *fdl_tls_last_error(const fdl_transport *t);
/* Negotiated protocol ("TLSv1.3") or NULL before the handshake completes. */
const char *fdl_tls_version(const fdl_transport *t);

#endif
