/*
 * devices/se.h — the device secure element: a PKCS#11 token in SoftHSM2.
 *
 * The module is loaded with dlopen and reached only through the standard
 * function list (C_GetFunctionList); nothing links against SoftHSM2. Private
 * keys are generated inside a token (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE true;
 * CKA_EXTRACTABLE false) and never leave it: signing happens with C_Sign.
 *
 * fdl_se_key_pk() exposes a token key to mbedTLS as an mbedtls_pk_context whose
 * signing goes to the token, so a TLS 1.3 CertificateVerify or an X.509
 * signature is made by C_Sign. This is the one place fleetdrill relies on
 * mbedTLS internals (the 3.6 LTS layout of mbedtls_pk_info_t); it is checked at
 * run time by fdl_se_module_open, which fails with FDL_SE_ERR_MBEDTLS_ABI if the
 * layout does not match.
 *
 * Thread safety: the module is initialised with CKF_OS_LOCKING_OK; distinct
 * fdl_se_key objects may be used from distinct threads. One fdl_se_key must not
 * be used by two threads at once.
 *
 * Cost model: looking up a token by label is O(1) after the first lookup
 * (the module keeps a label -> slot index); signing touches only the key's own
 * session, so its cost does not grow with the number of tokens.
 */
#ifndef FDL_SE_H
#define FDL_SE_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>

typedef enum fdl_se_status {
    FDL_SE_OK = 0,
    FDL_SE_ERR_ARG,          /* invalid argument (NULL, label too long, ...) */
    FDL_SE_ERR_LOAD,         /* dlopen/dlsym/C_GetFunctionList/C_Initialize failed */
    FDL_SE_ERR_MBEDTLS_ABI,  /* the mbedtls pk layout is not the 3.6 one we expect */
    FDL_SE_ERR_NOT_FOUND,    /* no token or key with that label */
    FDL_SE_ERR_EXISTS,       /* a token or key with that label already exists */
    FDL_SE_ERR_PIN,          /* login refused (wrong PIN, PIN locked) */
    FDL_SE_ERR_NO_SLOT,      /* no free slot to initialise a token in */
    FDL_SE_ERR_PKCS11,       /* any other CK_RV failure; see fdl_se_last_rv() */
    FDL_SE_ERR_NOMEM,
    FDL_SE_ERR_SMALL,        /* output buffer too small */
} fdl_se_status;

/* Static string; never NULL. */
const char *fdl_se_strerror(fdl_se_status st);

typedef struct fdl_se_module fdl_se_module; /* one loaded PKCS#11 module */
typedef struct fdl_se_key fdl_se_key;       /* one token key pair + its logged-in session */

/*
 * Loads the PKCS#11 module at module_path and calls C_Initialize (OS locking).
 * Call it before starting other threads (it sets SOFTHSM2_CONF with setenv).
 * softhsm_conf (copied): if non-NULL, SOFTHSM2_CONF is set to it first, which
 * SoftHSM2 reads during C_Initialize. One module per process is supported
 * (PKCS#11 itself is process-global). Freed with fdl_se_module_free
 * (C_Finalize + dlclose); fdl_se_module_free(NULL) is a no-op.
 */
fdl_se_status fdl_se_module_open(const char *module_path, const char *softhsm_conf, fdl_se_module **out);
void fdl_se_module_free(fdl_se_module *m);

/*
 * Fast teardown of a whole fleet: C_Finalize now, which closes every session
 * and logs every token out at once. Afterwards keys can only be freed (signing
 * fails), and fdl_se_key_free no longer calls into PKCS#11. Still call
 * fdl_se_key_free on every key, then fdl_se_module_free. Idempotent; NULL ok.
 */
void fdl_se_module_shutdown(fdl_se_module *m);

/* The last CK_RV a call on this module saw (for error messages). */
unsigned long fdl_se_last_rv(const fdl_se_module *m);

/*
 * Initialises a new token with label token_label (<= 32 bytes) in a free slot,
 * sets its SO PIN and user PIN. FDL_SE_ERR_EXISTS if the label is taken.
 */
fdl_se_status fdl_se_token_create(fdl_se_module *m, const char *token_label,
                                  const char *so_pin, const char *user_pin);

/* 1 if a token with that label exists, 0 if not. */
int fdl_se_token_exists(fdl_se_module *m, const char *token_label);

/*
 * Generates an EC P-256 key pair inside the token: private key with CKA_TOKEN,
 * CKA_PRIVATE, CKA_SENSITIVE = true, CKA_EXTRACTABLE = false, CKA_SIGN = true;
 * both halves labelled key_label with the same CKA_ID. Logs in with user_pin.
 * On success *out (ownership passes to the caller; free with fdl_se_key_free)
 * is ready to sign. FDL_SE_ERR_EXISTS if a key with that label is already there.
 */
fdl_se_status fdl_se_keygen(fdl_se_module *m, const char *token_label, const char *user_pin,
                            const char *key_label, fdl_se_key **out);

/* Opens an existing key pair (login + find by label); same ownership as keygen. */
fdl_se_status fdl_se_key_open(fdl_se_module *m, const char *token_label, const char *user_pin,
                              const char *key_label, fdl_se_key **out);

/*
 * Closes the key's session and frees it; the token is logged out when its last
 * open key goes (PKCS#11 login is per token, so other keys on the same token
 * stay usable). fdl_se_key_free(NULL) is a no-op.
 */
void fdl_se_key_free(fdl_se_key *k);

/*
 * ECDSA over a precomputed hash (CKM_ECDSA); writes a DER-encoded
 * Ecdsa-Sig-Value (the form X.509 and TLS carry) into sig[0..cap).
 */
fdl_se_status fdl_se_key_sign(fdl_se_key *k, const uint8_t *hash, size_t hash_len,
                              uint8_t *sig, size_t cap, size_t *sig_len);

/*
 * The key as an mbedTLS pk context: the public point is real, signing calls
 * fdl_se_key_sign. Borrowed: valid until fdl_se_key_free(k). Usable anywhere
 * mbedTLS takes a private key (mbedtls_ssl_conf_own_cert,
 * mbedtls_x509write_crt_set_issuer_key, mbedtls_x509write_csr_set_key).
 */
mbedtls_pk_context *fdl_se_key_pk(fdl_se_key *k);

/*
 * Reads one attribute of the private key object with C_GetAttributeValue and
 * returns the raw CK_RV (so tests can assert CKR_ATTRIBUTE_SENSITIVE for
 * CKA_VALUE). value may be NULL to ask for the length only.
 */
unsigned long fdl_se_key_get_private_attr(fdl_se_key *k, unsigned long attr_type,
                                          void *value, unsigned long *value_len);

/*
 * Writes the RFC 7512 PKCS#11 URI of the private key into buf, e.g.
 * "pkcs11:token=dev-000001;object=device-key;type=private" (labels
 * percent-encoded where needed). Returns FDL_SE_ERR_SMALL if cap is too small.
 */
fdl_se_status fdl_se_uri(const char *token_label, const char *key_label, char *buf, size_t cap);

/*
 * SoftHSM2 2.6 numbers a token's slot with the low 31 bits of the last 8 hex
 * digits of its random serial and aborts C_Initialize (an assert) when two
 * tokens share that number; with 10,000 tokens that happens with about 2%
 * probability. fdl_se_slot_collisions reads the token directory named in
 * softhsm_conf *before* C_Initialize (SoftHSM2's token.object files: the label
 * and serial attributes) and reports every token whose slot number is already
 * taken, so the caller can move it aside instead of crashing.
 */
typedef struct fdl_se_collision {
    char token_dir[1024];   /* the token's directory (a later one of the colliding pair) */
    char label[33];         /* its label, blanks trimmed */
    char other_label[33];   /* the token it collides with ("" for SoftHSM's free slot) */
    char other_dir[1024];   /* that token's directory ("" for the free slot) */
    unsigned long slot_id;
} fdl_se_collision;

/* Fills up to cap entries; returns how many collisions exist (may exceed cap), or -1 if the
 * configuration or token directory cannot be read. */
int fdl_se_slot_collisions(const char *softhsm_conf, fdl_se_collision *out, size_t cap);

#endif /* FDL_SE_H */
