/*
 * cloud/crl.h — certificate revocation lists (X.509 v2 CRLs, RFC 5280 section 5)
 * for the fleet's issuing CA.
 *
 * mbedTLS parses CRLs but has no writer, so the DER is built here with
 * mbedtls/asn1write.h:
 *
 *   CertificateList  SEQUENCE {
 *     tbsCertList    SEQUENCE {
 *       version              INTEGER 1 (v2)
 *       signature            ecdsa-with-SHA256 (no parameters)
 *       issuer               the issuer certificate's subject, its DER copied as is
 *       thisUpdate           Time
 *       nextUpdate           Time
 *       revokedCertificates  SEQUENCE OF { serial INTEGER, revocationDate Time }
 *                            (absent, not empty, when nothing is revoked)
 *       crlExtensions [0]    authorityKeyIdentifier = the issuer's subjectKeyIdentifier,
 *                            cRLNumber; both non-critical
 *     }
 *     signatureAlgorithm     ecdsa-with-SHA256
 *     signatureValue         BIT STRING (ECDSA signature over SHA-256 of tbsCertList)
 *   }
 *
 * Time is UTCTime (YYMMDDHHMMSSZ) for 1950..2049 and GeneralizedTime
 * (YYYYMMDDHHMMSSZ) from 2050 to 9999, as RFC 5280 4.1.2.5 requires; anything
 * outside 1950..9999 is FDL_CRL_ERR_ARG. Serials are given as big-endian
 * magnitudes and written as minimal positive DER INTEGERs: leading zero bytes
 * are dropped, and a 0x00 is prepended when the top bit is set, so an entry
 * matches the certificate's own (minimal) serial encoding byte for byte.
 *
 * The issuer key is only ever passed to mbedtls_pk_sign and mbedtls_pk_get_type,
 * so a token-backed key (devices/se.h, cloud/pki.h fdl_pki_key) works as a
 * software one does. Every CRL is verified against the issuer certificate's
 * public key before it is returned: a key that does not belong to the
 * certificate is FDL_CRL_ERR_MISMATCH, never a CRL that would fail at the
 * broker (where OpenSSL would then refuse every client of that issuer).
 *
 * docs/crl.md has where the CRL lives, who publishes it, how Mosquitto uses it
 * and the openssl commands to inspect it.
 *
 * Errors: every function returns an fdl_crl_status; fdl_crl_last_error() gives
 * one line of detail about the last failure in the calling thread.
 *
 * Threads: the functions keep no state besides the per-thread error detail;
 * the fdl_pki and fdl_registry passed in follow their own thread rules.
 */
#ifndef FDL_CRL_H
#define FDL_CRL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "cloud/pki.h"
#include "cloud/registry.h"

/* Longest serial number of an entry, in bytes: 32, the registry's ceiling
 * (FDL_REG_SERIAL_HEX_MAX hex digits; RFC 5280 allows 20, we tolerate more). */
#define FDL_CRL_SERIAL_MAX 32
/* Most entries in one CRL. A P-256 CRL entry is about 40 bytes of DER, so the
 * ceiling bounds one CRL to about 64 MB of DER (fdl_crl_der_bound) and 90 MB of
 * PEM while publishing: far above any fleet we simulate, low enough that a
 * runaway registry cannot make the publisher allocate without limit. */
#define FDL_CRL_ENTRIES_MAX 1000000u
/* Default nextUpdate - thisUpdate of fdl_crl_publish, in seconds: 30 days.
 * OpenSSL (and so Mosquitto) refuses every client of the issuer once the CRL
 * it loaded has passed nextUpdate, and Mosquitto reads the file only at start
 * (and on SIGHUP): the window must outlast a broker run, see docs/crl.md. */
#define FDL_CRL_NEXT_UPDATE_S (30u * 86400u)
/* File name of the published CRL inside a PKI directory (<state>/pki/crl.pem). */
#define FDL_CRL_PEM "crl.pem"

typedef enum fdl_crl_status {
    FDL_CRL_OK = 0,
    FDL_CRL_ERR_ARG,       /* NULL argument, malformed serial, time outside 1950..9999,
                              nextUpdate not after thisUpdate, unsupported issuer
                              (no cRLSign, no subjectKeyIdentifier, not ECDSA) or key type */
    FDL_CRL_ERR_NOMEM,
    FDL_CRL_ERR_LIMIT,     /* more than FDL_CRL_ENTRIES_MAX entries */
    FDL_CRL_ERR_SMALL,     /* the caller's output buffer is too small (nothing written) */
    FDL_CRL_ERR_CRYPTO,    /* hashing, signing or encoding failed */
    FDL_CRL_ERR_MISMATCH,  /* the signature does not verify under the issuer certificate
                              (key and certificate do not belong together), or ca_id is
                              not the registry's record of the issuer certificate */
    FDL_CRL_ERR_NOT_FOUND, /* publish: the issuer certificate is not a registered CA */
    FDL_CRL_ERR_REGISTRY,  /* the registry failed (detail in fdl_crl_last_error) */
    FDL_CRL_ERR_IO,        /* the PEM file could not be written */
} fdl_crl_status;

/* Static string; never NULL. */
const char *fdl_crl_strerror(fdl_crl_status st);

/* Detail of the last failure in this thread ("" if none); valid until the next
 * fdl_crl call in this thread. Never contains key material. */
const char *fdl_crl_last_error(void);

/* One revoked certificate. */
typedef struct fdl_crl_entry {
    uint8_t serial[FDL_CRL_SERIAL_MAX]; /* big-endian magnitude in serial[0..serial_len) */
    size_t serial_len;                  /* 1..FDL_CRL_SERIAL_MAX; leading zero bytes are
                                           allowed and dropped in the DER */
    int64_t revoked_at;                 /* revocationDate, Unix seconds, 1950..9999 */
} fdl_crl_entry;

/*
 * Fills *e from a serial in hex as the registry stores it (fdl_registry_crl_serials):
 * 1..2*FDL_CRL_SERIAL_MAX hex digits, either case, nothing else (no "0x", no
 * spaces or colons); an odd count is read as if it had one more leading '0'.
 * revoked_at is copied as is (checked by fdl_crl_build). serial_hex: borrowed.
 * FDL_CRL_ERR_ARG for anything else, and *e is then zeroed.
 */
fdl_crl_status fdl_crl_entry_from_hex(fdl_crl_entry *e, const char *serial_hex, int64_t revoked_at);

/*
 * An output size that always holds fdl_crl_build's DER for this issuer and n
 * entries (about 64 bytes per entry plus the issuer name and key id). 0 if
 * issuer is NULL or n > FDL_CRL_ENTRIES_MAX.
 */
size_t fdl_crl_der_bound(const mbedtls_x509_crt *issuer, size_t n);

/*
 * Builds and signs a CRL into buf[0..cap); on success the DER is buf[0..*der_len).
 *
 * issuer: borrowed, the CA certificate the CRL speaks for (the first certificate
 *   of the list only); it must carry a subjectKeyIdentifier, allow cRLSign if it
 *   has keyUsage, and hold an EC key. Its public key is read to check the
 *   signature (mbedtls_pk_verify does not modify it despite the cast inside).
 * issuer_key: borrowed; the issuer's private key, software or token-backed
 *   (MBEDTLS_PK_ECKEY, MBEDTLS_PK_ECDSA or MBEDTLS_PK_OPAQUE).
 * entries: borrowed, n of them (entries may be NULL when n == 0); written in
 *   the given order. n over FDL_CRL_ENTRIES_MAX is FDL_CRL_ERR_LIMIT.
 * crl_number: the cRLNumber extension; callers keep it increasing per issuer.
 * this_update < next_update, both within 1950..9999.
 * f_rng/p_rng: randomness for the ECDSA signature (required).
 *
 * Allocates nothing (mbedTLS may, inside signing, through its own allocator).
 * One signature per call, made only once the TBS part fits in buf.
 * FDL_CRL_ERR_SMALL: *der_len receives fdl_crl_der_bound(issuer, n), which
 * always suffices. On any failure buf[0..cap) is zeroed, so a caller that
 * ignores the status still never writes out a truncated CRL, and *der_len is
 * 0 unless the status is FDL_CRL_ERR_SMALL.
 */
fdl_crl_status fdl_crl_build(const mbedtls_x509_crt *issuer, mbedtls_pk_context *issuer_key,
                             const fdl_crl_entry *entries, size_t n, uint64_t crl_number, time_t this_update,
                             time_t next_update, int (*f_rng)(void *, unsigned char *, size_t), void *p_rng,
                             unsigned char *buf, size_t cap, size_t *der_len);

/*
 * Publishes the CRL of pki's issuer: collects the certificates of ca_id that the
 * registry has REVOKED (fdl_registry_crl_serials, with their revocation times),
 * signs them with fdl_pki_key(pki) and fdl_pki_random, and replaces pem_path
 * atomically (temporary file + rename, mode 0644) with the PEM
 * ("-----BEGIN X509 CRL-----"). An empty CRL is a valid result and is what a
 * broker with `crlfile` needs before it starts.
 *
 * reg, pki: borrowed, used by the calling thread only for the call.
 * ca_id: the registry id of pki's issuer certificate (fdl_pki_chain(pki), first
 *   certificate), or 0 to look it up by that certificate's fingerprint. A
 *   non-zero ca_id that is not that record is FDL_CRL_ERR_MISMATCH (it would
 *   list another CA's serials under this issuer's name); an issuer that is not
 *   registered is FDL_CRL_ERR_NOT_FOUND.
 * next_update_s: nextUpdate - thisUpdate in seconds; 0 = FDL_CRL_NEXT_UPDATE_S.
 *   thisUpdate is now.
 * pem_path: borrowed; conventionally <state>/pki/FDL_CRL_PEM.
 * n_revoked: may be NULL; receives the number of entries written.
 *
 * cRLNumber is the current Unix time in milliseconds: increasing across
 * processes and runs without any counter on disk, as long as the clock does
 * not step back and two publications are at least 1 ms apart.
 * Allocates the entry list (grown by doubling, at most FDL_CRL_ENTRIES_MAX
 * entries, else FDL_CRL_ERR_LIMIT), the DER and the PEM through sim/alloc.h and
 * frees them before returning. Nothing is written unless every step succeeded.
 */
fdl_crl_status fdl_crl_publish(fdl_registry *reg, int64_t ca_id, fdl_pki *pki, unsigned next_update_s,
                               const char *pem_path, size_t *n_revoked);

#endif /* FDL_CRL_H */
