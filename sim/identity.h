/*
 * sim/identity.h — where device identities live on disk, and how they are made and loaded.
 *
 * State directory layout (all under --state DIR):
 *   hsm/softhsm2.conf          SoftHSM2 configuration (token directory below it)
 *   hsm/tokens/                one token per `se` device, plus the CA token
 *   pki/                       the fleet CA (see cloud/pki.h)
 *   devices/<id>/profile       "se" or "flash"
 *   devices/<id>/pin           the token user PIN (mode 0600; `se` only)
 *   devices/<id>/key.pem       the private key (`flash` only: extractable on purpose)
 *   devices/<id>/cert.pem      the leaf certificate; written last, so its presence
 *                              means the identity is complete
 *   broker/                    generated mosquitto.conf and the broker log
 *   registry.db                the fleet registry (cloud/registry.h; sqlite WAL)
 *   run.json                   broker endpoint while a run is live
 *
 * Identities persist across runs: provisioning skips complete identities and
 * resumes half-made ones (a run killed during provisioning loses nothing).
 */
#ifndef FDL_IDENTITY_H
#define FDL_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>

#include "cloud/pki.h"
#include "devices/se.h"

#define FDL_PATH_MAX 1024
#define FDL_DEVICE_KEY_LABEL "device-key"

typedef enum fdl_profile { FDL_PROFILE_SE = 0, FDL_PROFILE_FLASH = 1 } fdl_profile;

const char *fdl_profile_name(fdl_profile p);
/* "se" / "flash" -> 0 and *out; -1 for anything else. */
int fdl_profile_parse(const char *s, fdl_profile *out);

typedef struct fdl_state {
    char dir[FDL_PATH_MAX];
    char hsm_conf[FDL_PATH_MAX];
    char pki_dir[FDL_PATH_MAX];
    char devices_dir[FDL_PATH_MAX];
    char broker_dir[FDL_PATH_MAX];
    char run_json[FDL_PATH_MAX];
    char registry[FDL_PATH_MAX];
} fdl_state;

/* Fills the paths (absolute) and creates the directories and hsm/softhsm2.conf if missing. 0 or -errno. */
int fdl_state_init(fdl_state *st, const char *dir);

/* Device id of fleet index i: "dev-000042". */
void fdl_device_id(uint32_t index, char *buf, size_t cap);

/* Path of a file in a device's directory. */
void fdl_identity_path(const fdl_state *st, const char *id, const char *file, char *buf, size_t cap);

typedef struct fdl_identity {
    char id[64];
    fdl_profile profile;
    mbedtls_x509_crt cert;
    fdl_se_key *se_key;          /* `se` profile: the key in the device's token */
    mbedtls_pk_context soft_key; /* `flash` profile: the key read from key.pem */
    mbedtls_pk_context *key;     /* whichever of the two this identity uses (borrowed from this struct) */
    int has_cert;                /* 0: key only (waiting for provisioning by claim) */
} fdl_identity;

/* 1 if devices/<id>/cert.pem exists (identity complete), else 0. */
int fdl_identity_exists(const fdl_state *st, const char *id);

/*
 * Makes the identity if it is not complete: PIN file, token, key pair generated
 * inside the token (`se`) or a key file (`flash`), then the leaf certificate
 * from the issuing CA. pki NULL: the key only, no certificate (provisioning by
 * claim: the device asks for its certificate itself); an existing key is kept
 * either way, so a key-only identity can later be certified. Returns 1 if it
 * made something, 0 if it was already complete (with pki NULL: already had its
 * key), -1 on failure with a message in err.
 */
int fdl_identity_provision(const fdl_state *st, fdl_se_module *se, fdl_pki *pki, const char *id,
                           fdl_profile profile, int (*f_rng)(void *, unsigned char *, size_t), void *p_rng,
                           char *err, size_t errcap);

/*
 * Loads a complete identity: parses the certificate and opens the key (token
 * login for `se`). 0 or -1 with a message in err. Free with fdl_identity_free.
 */
int fdl_identity_load(const fdl_state *st, fdl_se_module *se, const char *id, fdl_identity *out,
                      int (*f_rng)(void *, unsigned char *, size_t), void *p_rng, char *err, size_t errcap);
void fdl_identity_free(fdl_identity *idn);

/* fdl_identity_load with flags: FDL_IDENTITY_CERT_OPTIONAL accepts a key-only
 * identity (has_cert = 0, cert left empty). */
#define FDL_IDENTITY_CERT_OPTIONAL 1u
int fdl_identity_open(const fdl_state *st, fdl_se_module *se, const char *id, unsigned flags, fdl_identity *out,
                      int (*f_rng)(void *, unsigned char *, size_t), void *p_rng, char *err, size_t errcap);

/* Reads devices/<id>/profile; -1 if missing or invalid. */
int fdl_identity_profile(const fdl_state *st, const char *id, fdl_profile *out);

#endif
