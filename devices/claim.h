/*
 * devices/claim.h — the device half of provisioning by claim: the request it
 * sends and the checks on the certificate it gets back.
 *
 * A device that leaves the factory with no identity of its own connects with
 * the shared claim credential, then:
 *   1. fdl_claim_make_csr: a PKCS#10 request for CN=<its id>, signed by its own
 *      key (for the `se` profile that key was generated in its token and the
 *      signature is a C_Sign: the private key never leaves);
 *   2. publishes it on $fleet/claim/<id>/csr;
 *   3. fdl_claim_accept: the certificate that comes back on .../accepted is
 *      taken only if it chains to the device's trust anchor (the fleet root,
 *      never the claim credential's say-so), names the device and certifies the
 *      device's own public key. Anything else is refused, so a rogue publisher
 *      on the claim topic cannot plant an identity.
 * Pure functions over buffers: no I/O, no global state.
 */
#ifndef FDL_CLAIM_H
#define FDL_CLAIM_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#define FDL_CLAIM_CSR_MAX 1024     /* PEM of a P-256 request with a short CN */
#define FDL_CLAIM_CERT_MAX 8192    /* PEM leaf + its chain as the service sends it */

/* Writes the PEM request (NUL-terminated) into pem[0..cap). Its length (without
 * the NUL), or -1. */
int fdl_claim_make_csr(const char *id, mbedtls_pk_context *key, int (*f_rng)(void *, unsigned char *, size_t),
                       void *p_rng, char *pem, size_t cap);

/*
 * Parses buf[0..len) (PEM, one or more certificates: the leaf first, then its
 * chain) into out (initialised by the caller, empty) and checks it against the
 * rules above; trust is the only anchor. 0, or -1 with one line in why (out is
 * then freed and re-initialised).
 */
int fdl_claim_accept(const uint8_t *buf, size_t len, const char *id, mbedtls_pk_context *own_key,
                     mbedtls_x509_crt *trust, mbedtls_x509_crt *out, char *why, size_t whycap);

#endif
