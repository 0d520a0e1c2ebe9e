/*
 * cloud/pki.h — the fleet's certificate authority: an offline root, one issuing
 * intermediate, the broker's server identity and per-device leaf certificates.
 *
 * Hierarchy (docs/pki.md has the full picture and the openssl commands):
 *
 *   "fleetdrill Root CA"       P-256, CA:true pathlen 1, keyCertSign|cRLSign, 10 years
 *     "fleetdrill Issuing CA 1" P-256, CA:true pathlen 0, keyCertSign|cRLSign,  5 years
 *       CN=localhost           broker, SAN DNS:localhost + IP:127.0.0.1, serverAuth, 1 year
 *       CN=<device id>         device leaf, digitalSignature, clientAuth, 1 year (configurable)
 *
 * Every certificate carries subjectKeyIdentifier and authorityKeyIdentifier and
 * is signed ECDSA-with-SHA256. Certificates are built with mbedTLS x509write;
 * nothing here runs the openssl command.
 *
 * Where the CA keys live. fdl_pki_setup() generates the root and intermediate
 * keys inside a dedicated SoftHSM2 token (FDL_PKI_TOKEN_LABEL) through
 * devices/se.h: they are created sensitive and non-extractable, and every CA
 * signature is a C_Sign in that token. The token's PINs are random and kept in
 * <dir>/ca-token.pin (mode 0600). The root key is used only while setting up;
 * issuance opens the intermediate alone. fdl_pki_setup_soft() builds the same
 * files with software CA keys stored as PEM (mode 0600): that is the rogue CA of
 * attack drills ("a broker identity from another CA") and the fixture of tests
 * that must not need a token; the fleet's own CA never uses it.
 *
 * The signing code only ever sees an issuer key as an mbedtls_pk_context *
 * (fdl_pki_new), so a token-backed key and a software key take the same path.
 *
 * Directory layout (file names below; all PEM):
 *   root.pem               root certificate                              0644
 *   intermediate.pem       issuing intermediate certificate              0644
 *   chain.pem              intermediate then root (broker cafile, clients) 0644
 *   server.pem             broker certificate                            0644
 *   server-key.pem         broker private key (software: Mosquitto reads it) 0600
 *   ca-token.pin           token PINs (token CAs only), see below         0600
 *   root-key.pem           root private key (software CAs only)          0600
 *   intermediate-key.pem   intermediate private key (software CAs only)  0600
 *
 * ca-token.pin is text: comment lines start with '#', then "so_pin=<hex>" and
 * "user_pin=<hex>", each 32 hex digits from 16 random bytes. It is written
 * before the token is created, so a crash in between never leaves a token
 * nobody can log in to. Files are written to a temporary name and renamed, so a
 * reader never sees half a file. A secret file that is readable by group or
 * others is refused (FDL_PKI_ERR_PERM), as ssh does with private keys.
 *
 * Serial numbers are 16 random bytes from a CTR-DRBG (first byte 01xxxxxx: the
 * integer is positive and always encodes in exactly 16 bytes), i.e. 126 random
 * bits. Nothing is persisted, so shards and parallel provisioning passes never
 * coordinate; the chance of any collision among 10^9 certificates is < 10^-19.
 *
 * Errors: every function returns an fdl_pki_status; fdl_pki_last_error() gives a
 * one-line detail of the last failure in the calling thread (which file, which
 * check). Neither ever contains a PIN or key material.
 *
 * Threads: one fdl_pki must not be used by two threads at once (it owns one
 * token session and one DRBG). For parallel issuance open one fdl_pki per
 * thread; each then has its own token session. fdl_pki_setup* must not run
 * concurrently on the same directory; fdl_pki_open* may.
 */
#ifndef FDL_PKI_H
#define FDL_PKI_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "devices/se.h"

/* Token and key labels of the CA token. */
#define FDL_PKI_TOKEN_LABEL "fleetdrill-ca"
/* The factory hierarchy (devices' birth certificates, JITR): <state>/pki/factory. */
#define FDL_PKI_FACTORY_TOKEN_LABEL "fleetdrill-factory-ca"
#define FDL_PKI_FACTORY_DIR "factory"
#define FDL_PKI_FACTORY_NAME "fleetdrill Factory"
#define FDL_PKI_ROOT_KEY_LABEL "root-ca"
#define FDL_PKI_ISSUING_KEY_LABEL "issuing-ca"

/* File names inside a PKI directory (see the layout above). */
#define FDL_PKI_ROOT_PEM "root.pem"
#define FDL_PKI_INTERMEDIATE_PEM "intermediate.pem"
#define FDL_PKI_CHAIN_PEM "chain.pem"
#define FDL_PKI_SERVER_PEM "server.pem"
#define FDL_PKI_SERVER_KEY_PEM "server-key.pem"
#define FDL_PKI_PIN_FILE "ca-token.pin"
#define FDL_PKI_ROOT_KEY_PEM "root-key.pem"
#define FDL_PKI_INTERMEDIATE_KEY_PEM "intermediate-key.pem"

/* Defaults, in days. The root outlives the intermediate it signs, which
 * outlives the leaves it signs, so rotation is always intermediate-first. */
#define FDL_PKI_ROOT_DAYS 3650u
#define FDL_PKI_INTERMEDIATE_DAYS 1826u
#define FDL_PKI_SERVER_DAYS 365u
#define FDL_PKI_LEAF_DAYS 365u
/* notBefore is set this many seconds in the past by default, so a device
 * whose clock runs a little behind the CA's still accepts a fresh certificate. */
#define FDL_PKI_BACKDATE_S 300

/* Bytes in a serial number. */
#define FDL_PKI_SERIAL_LEN 16
/* Longest device id (the X.520 upper bound for commonName). */
#define FDL_PKI_DEVICE_ID_MAX 64
/* A buffer this large always holds one leaf certificate in PEM (a P-256 leaf
 * is about 500 bytes DER, 750 PEM); the ceiling for any certificate we write. */
#define FDL_PKI_CERT_MAX 4096

typedef enum fdl_pki_status {
    FDL_PKI_OK = 0,
    FDL_PKI_ERR_ARG,       /* NULL argument, invalid device id, unsupported key type */
    FDL_PKI_ERR_NOMEM,
    FDL_PKI_ERR_IO,        /* a directory or file could not be created, read or written */
    FDL_PKI_ERR_NOT_FOUND, /* open: no PKI there (a file, the token or a key is missing) */
    FDL_PKI_ERR_PARSE,     /* a file exists but does not hold a valid certificate/key/PIN */
    FDL_PKI_ERR_MISMATCH,  /* existing pieces do not fit together (cert vs key, chain) */
    FDL_PKI_ERR_PERM,      /* a secret file is readable by group or others */
    FDL_PKI_ERR_TOKEN,     /* the secure element refused (detail in fdl_pki_last_error) */
    FDL_PKI_ERR_CRYPTO,    /* mbedTLS key generation, signing or encoding failed */
    FDL_PKI_ERR_SMALL,     /* the caller's output buffer is too small */
} fdl_pki_status;

/* Static string; never NULL. */
const char *fdl_pki_strerror(fdl_pki_status st);

/* Detail of the last failure in this thread ("" if none); valid until the next
 * fdl_pki call in this thread. Never contains secrets. */
const char *fdl_pki_last_error(void);

/* Options of fdl_pki_setup / fdl_pki_setup_soft; NULL means all defaults. */
typedef struct fdl_pki_opts {
    const char *name;           /* borrowed; CNs become "<name> Root CA" and
                                   "<name> Issuing CA 1"; NULL = "fleetdrill".
                                   [A-Za-z0-9 ._-], at most 32 bytes. A rogue CA
                                   keeps the default on purpose: a look-alike
                                   name must still fail on the signature. */
    unsigned root_days;         /* 0 = FDL_PKI_ROOT_DAYS */
    unsigned intermediate_days; /* 0 = FDL_PKI_INTERMEDIATE_DAYS */
    unsigned server_days;       /* 0 = FDL_PKI_SERVER_DAYS */
    const char *token_label;    /* borrowed; the CA token (fdl_pki_setup only); NULL =
                                   FDL_PKI_TOKEN_LABEL. A second hierarchy, such as the
                                   factory CA of JITR, lives in a token of its own. */
} fdl_pki_opts;

/*
 * Creates the fleet PKI in dir (created with mode 0700 if missing), or loads and
 * checks the one already there: idempotent, nothing that exists is overwritten.
 * se: borrowed, opened by the caller on the SoftHSM2 configuration that holds
 * (or will hold) the CA token. In order, each step creates what is missing:
 * PIN file, token, root key, intermediate key (both in the token), root.pem,
 * intermediate.pem, server-key.pem, server.pem, chain.pem. Every certificate
 * that already exists must match its key and verify up to root.pem, otherwise
 * FDL_PKI_ERR_MISMATCH and nothing is changed. Sessions on the root and
 * intermediate keys are closed before returning.
 */
fdl_pki_status fdl_pki_setup(fdl_se_module *se, const char *dir, const fdl_pki_opts *opts);

/*
 * The same files and checks with software CA keys (root-key.pem and
 * intermediate-key.pem, mode 0600) and no token: the rogue CA of attack drills,
 * and test fixtures. Idempotent like fdl_pki_setup.
 */
fdl_pki_status fdl_pki_setup_soft(const char *dir, const fdl_pki_opts *opts);

/* An issuer ready to sign leaves: intermediate certificate + key + DRBG. */
typedef struct fdl_pki fdl_pki;

/*
 * Opens the PKI in dir for issuance: reads the PINs, logs in to the CA token
 * and opens the intermediate key (the session stays open until fdl_pki_free),
 * parses intermediate.pem and root.pem once. se: borrowed, must outlive *out.
 * Makes one self-test signature and verifies it against intermediate.pem, so a
 * key that does not match its certificate fails here (FDL_PKI_ERR_MISMATCH),
 * not on the first device. On success *out is owned by the caller
 * (fdl_pki_free). FDL_PKI_ERR_NOT_FOUND if dir holds no token PKI.
 */
fdl_pki_status fdl_pki_open(fdl_se_module *se, const char *dir, fdl_pki **out);

/* fdl_pki_open for a hierarchy set up with opts->token_label = token_label. */
fdl_pki_status fdl_pki_open_token(fdl_se_module *se, const char *dir, const char *token_label, fdl_pki **out);

/* Opens a software PKI (fdl_pki_setup_soft) the same way, with the key from
 * intermediate-key.pem. */
fdl_pki_status fdl_pki_open_soft(const char *dir, fdl_pki **out);

/*
 * The building block both opens use: an issuer from a certificate and a key.
 * issuer_crt: copied; DER, or PEM including its terminating NUL in len (the
 * mbedtls_x509_crt_parse convention); it may be followed by its chain, e.g. the
 * contents of chain.pem. The first certificate must be a CA with keyCertSign.
 * issuer_key: borrowed, must outlive *out; any mbedtls_pk_context that can
 * sign (a software key, or fdl_se_key_pk() of a token key). Self-tests like
 * fdl_pki_open. On success *out is owned by the caller (fdl_pki_free).
 */
fdl_pki_status fdl_pki_new(const unsigned char *issuer_crt, size_t len,
                           mbedtls_pk_context *issuer_key, fdl_pki **out);

/* Closes the token session (if any), wipes and frees; fdl_pki_free(NULL) is a no-op. */
void fdl_pki_free(fdl_pki *pki);

/*
 * The issuer certificate followed by the rest of its chain (for a PKI from
 * fdl_pki_open*: intermediate then root). Borrowed: valid until fdl_pki_free.
 * Callers may pass it to mbedtls_ssl_conf_ca_chain or mbedtls_x509_crt_verify
 * (which do not modify it) despite the const.
 */
const mbedtls_x509_crt *fdl_pki_chain(const fdl_pki *pki);

/* The issuer's signing key (token-backed for fdl_pki_open), for other documents
 * the issuer signs (CRLs). Borrowed: valid until fdl_pki_free; same thread rule. */
mbedtls_pk_context *fdl_pki_key(fdl_pki *pki);

/* The fdl_pki's CTR-DRBG, as an f_rng/p_rng pair for mbedTLS signing calls. */
int fdl_pki_random(void *pki, unsigned char *out, size_t len);

/* Number of leaves this fdl_pki has issued. */
uint64_t fdl_pki_issued_count(const fdl_pki *pki);

/* What a device leaf certificate says. */
typedef struct fdl_pki_leaf_req {
    const char *device_id;          /* borrowed; the whole subject is CN=<device_id>, no
                                       other field (no personal data). 1..64 bytes of
                                       [A-Za-z0-9._-]: anything else (',' '=' '+' ...)
                                       could smuggle more RDNs in and is FDL_PKI_ERR_ARG. */
    mbedtls_pk_context *public_key; /* borrowed; EC P-256; only the public half is read */
    unsigned validity_days;         /* 0 = FDL_PKI_LEAF_DAYS */
    time_t not_before;              /* 0 = now - FDL_PKI_BACKDATE_S (lets a virtual
                                       clock or an expiry drill choose the window) */
} fdl_pki_leaf_req;

typedef enum fdl_pki_format { FDL_PKI_PEM = 0, FDL_PKI_DER = 1 } fdl_pki_format;

/* What fdl_pki_issue produced. */
typedef struct fdl_pki_issued {
    size_t len;                          /* bytes written (PEM: excluding the NUL) */
    uint8_t serial[FDL_PKI_SERIAL_LEN];  /* the certificate's serial number, big-endian */
} fdl_pki_issued;

/*
 * Issues a device leaf: CN=<device_id>, keyUsage digitalSignature (critical),
 * extendedKeyUsage clientAuth, basicConstraints CA:false (critical), subject
 * and authority key ids, a fresh random serial; signed by the intermediate (in
 * the token for fdl_pki_open). Writes it into buf[0..cap): PEM is NUL-
 * terminated; DER starts at buf[0]. FDL_PKI_ERR_SMALL if cap is too small
 * (FDL_PKI_CERT_MAX always suffices). out may be NULL.
 * Per call: one signature, no file access, nothing re-parsed.
 */
fdl_pki_status fdl_pki_issue(fdl_pki *pki, const fdl_pki_leaf_req *req, fdl_pki_format fmt,
                             unsigned char *buf, size_t cap, fdl_pki_issued *out);

/* fdl_pki_issue in PEM, written to path (mode 0644, atomically). out may be NULL. */
fdl_pki_status fdl_pki_issue_file(fdl_pki *pki, const fdl_pki_leaf_req *req, const char *path,
                                  fdl_pki_issued *out);

#endif /* FDL_PKI_H */
