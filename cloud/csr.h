/*
 * cloud/csr.h — checking a certificate signing request from the wire
 * (provisioning by claim).
 *
 * A CSR arrives from a client that holds only the shared claim credential, so
 * nothing in it is trusted until checked here:
 *   - it parses as PKCS#10 (PEM, or DER), at most FDL_CSR_MAX bytes;
 *   - its key is EC P-256 (what the issuing CA certifies);
 *   - its self-signature verifies with that key (ECDSA with SHA-256/384/512):
 *     the requester holds the private key, so the certificate cannot be bound
 *     to someone else's key;
 *   - its subject is exactly CN=<expected_cn> (the MQTT client id the request
 *     came from) and nothing else: no second RDN to smuggle an O= or an email
 *     into the certificate, no other name.
 * Extensions and attributes in the CSR are ignored: the issued certificate's
 * extensions come from the CA alone (cloud/pki.h).
 *
 * No global state, no allocation that outlives a call; safe from any thread.
 */
#ifndef FDL_CSR_H
#define FDL_CSR_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>

#define FDL_CSR_MAX 4096

typedef enum fdl_csr_status {
    FDL_CSR_OK = 0,
    FDL_CSR_ERR_SIZE,      /* empty or larger than FDL_CSR_MAX */
    FDL_CSR_ERR_PARSE,     /* not a PKCS#10 request */
    FDL_CSR_ERR_KEY,       /* not an EC P-256 key */
    FDL_CSR_ERR_SIGNATURE, /* the self-signature does not verify (or an unsupported algorithm) */
    FDL_CSR_ERR_SUBJECT,   /* subject is not exactly CN=<expected> */
    FDL_CSR_ERR_NOMEM,
} fdl_csr_status;

/* Static string; never NULL. */
const char *fdl_csr_strerror(fdl_csr_status st);

/*
 * Checks buf[0..len) (PEM with or without a trailing NUL, or DER) against the
 * rules above. On FDL_CSR_OK and pub != NULL, *pub (initialised by the caller
 * with mbedtls_pk_init, empty) receives a copy of the public key, to be
 * certified; the caller frees it. detail (may be NULL) gets one line on failure.
 */
fdl_csr_status fdl_csr_check(const uint8_t *buf, size_t len, const char *expected_cn, mbedtls_pk_context *pub,
                             char *detail, size_t detail_cap);

#endif
