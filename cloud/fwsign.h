/*
 * cloud/fwsign.h — firmware signing: the offline signing token with one key per
 * tier and generation, the key registry (keys.json), image and keyring signing,
 * and the online job-document signer.
 *
 * Roles. Every key has one role, and a role signs exactly what its number says
 * (the numbering is the keyring's usage numbering, devices/keyring.h):
 *   1 root         bootloader images and keyring images (its hash is fused)
 *   2 kernel, 3 application, 4 modules, 5 config   images of that tier
 *   7 jobs         job documents (devices/jobdoc.h)
 * The device learns which key may sign which tier from the keyring image, which
 * the root key signs and which lists the keys of roles 2..5 and 7.
 *
 * Tokens (SoftHSM2 through devices/se.h; keys generated inside, CKA_SENSITIVE,
 * never extractable, every signature a C_Sign):
 *   FDL_FWSIGN_TOKEN       "fdl-signing"  roles 1..5: the OFFLINE signing token,
 *                          separate from the CA token; only the release path
 *                          (`fleetdrill fw sign`, factory images) opens it
 *   FDL_FWSIGN_JOBS_TOKEN  "fdl-jobs"     role 7: the ONLINE key the job service
 *                          holds (fdl_fwsign_jobs_*); it opens nothing else
 * The artifact store holds no key at all: owning it lets an attacker serve
 * bytes, never signed ones. Token PINs are random, in <dir>/<token>.pin (mode
 * 0600, the format of cloud/pki.h's ca-token.pin), written before the token is
 * created.
 *
 * Generations and rotation (the dual-trust window). A role's keys are numbered
 * 1, 2, ... and each is in one state:
 *   next     generated, published in the keyring, not yet the default signer
 *   current  the default signer of its role (at most one per role)
 *   retired  replaced by its successor; left out of new keyrings
 *   revoked  compromised; left out of new keyrings, signs nothing by default
 * fdl_fwsign_rotate adds a next key (devices trust current + next once they
 * receive the new keyring); images may then be signed with the next key; then
 * fdl_fwsign_retire makes next current and retires the old one. Every change of
 * the trusted set raises the keyring counter, so a keyring image made before a
 * revocation is refused by devices as a rollback once they hold a newer one.
 * The root role's key is fused into devices: rotating it in the registry does
 * not make devices trust the new key (docs/signing.md).
 *
 * keys.json (<dir>/keys.json, written atomically, public data only):
 *   {"format":1,"keyring_counter":N,"keys":[{"key_id":"<16 hex>","role":"kernel",
 *    "generation":1,"state":"current","token":"fdl-signing","label":"kernel-g1",
 *    "pub":"<130 hex>"}, ...]}
 * A key is generated in the token before it is recorded, and a generation whose
 * label already exists in the token is adopted on the next attempt, so a crash
 * in between loses nothing. A change that cannot be saved is undone in memory
 * too (the object always matches the file).
 *
 * Errors: an fdl_fwsign_status, with a one-line detail in fdl_fwsign_last_error
 * (per thread; never a PIN). One fdl_fwsign per thread.
 */
#ifndef FDL_FWSIGN_H
#define FDL_FWSIGN_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/pk.h>

#include "devices/fwimage.h"
#include "devices/keyring.h"
#include "devices/se.h"

#define FDL_FWSIGN_TOKEN "fdl-signing"
#define FDL_FWSIGN_JOBS_TOKEN "fdl-jobs"
#define FDL_FWSIGN_KEYS_FILE "keys.json"
#define FDL_FWSIGN_ROLE_ROOT 1
#define FDL_FWSIGN_ROLE_JOBS FDL_KEY_USAGE_JOBS
#define FDL_FWSIGN_KEYS_MAX 256          /* keys in the registry: 6 roles x 42 rotations */
#define FDL_FWSIGN_FILE_MAX (256u << 10) /* bytes of keys.json */

typedef enum fdl_fwsign_status {
    FDL_FWSIGN_OK = 0,
    FDL_FWSIGN_ERR_ARG,        /* NULL, unknown role, bad generation */
    FDL_FWSIGN_ERR_IO,         /* a file or directory could not be read or written */
    FDL_FWSIGN_ERR_PARSE,      /* keys.json or a PIN file is malformed */
    FDL_FWSIGN_ERR_TOKEN,      /* the token refused (detail: fdl_fwsign_last_error) */
    FDL_FWSIGN_ERR_NOT_FOUND,  /* no such key (role without a current key, unknown id) */
    FDL_FWSIGN_ERR_STATE,      /* the key's state forbids it (signing with a revoked key, retire without next) */
    FDL_FWSIGN_ERR_IMAGE,      /* the image to sign is malformed (fdl_fw_status in the detail) */
    FDL_FWSIGN_ERR_MISMATCH,   /* a token key is not the key keys.json records */
    FDL_FWSIGN_ERR_FULL,       /* FDL_FWSIGN_KEYS_MAX keys */
    FDL_FWSIGN_ERR_NOMEM,
    FDL_FWSIGN_ERR_CRYPTO,     /* mbedTLS failed */
    FDL_FWSIGN_ERR_SMALL,      /* output buffer too small */
} fdl_fwsign_status;

const char *fdl_fwsign_strerror(fdl_fwsign_status st);
/* Detail of the last failure in this thread ("" if none). */
const char *fdl_fwsign_last_error(void);

typedef enum fdl_fwkey_state {
    FDL_FWKEY_NEXT = 1,
    FDL_FWKEY_CURRENT = 2,
    FDL_FWKEY_RETIRED = 3,
    FDL_FWKEY_REVOKED = 4,
} fdl_fwkey_state;

/* "next", "current", "retired", "revoked"; "?" otherwise. */
const char *fdl_fwkey_state_name(unsigned st);
/* "root", "kernel", "application", "modules", "config", "jobs"; "?" otherwise. */
const char *fdl_fwsign_role_name(unsigned role);
/* A role name, or a tier name ("bootloader" and "keyring" -> root, "app",
 * "models"), or "jobs" -> the role; 0 if unknown. */
unsigned fdl_fwsign_role_parse(const char *name);
/* The role whose key signs images of tier (1 and 6 -> root); 0 for no tier. */
unsigned fdl_fwsign_role_for_tier(unsigned tier);
/* The token a role's keys live in. */
const char *fdl_fwsign_role_token(unsigned role);

typedef struct fdl_fwsign_key {
    unsigned role;
    unsigned generation;             /* 1, 2, ... per role */
    fdl_fwkey_state state;
    uint8_t key_id[FDL_FW_KEYID_LEN];
    uint8_t pub[FDL_FW_PUB_LEN];
    char token[33];
    char label[33];                  /* "<role>-g<generation>" */
} fdl_fwsign_key;

typedef struct fdl_fwsign fdl_fwsign;

/*
 * Opens the registry in dir (<state>/firmware; created, mode 0700, if missing
 * and se is given) and loads keys.json if it exists. se: borrowed, may be NULL
 * for read-only use (listing, inspecting: nothing is created); every call that
 * needs a token then fails with ERR_ARG.
 * *out is the caller's (fdl_fwsign_free).
 */
fdl_fwsign_status fdl_fwsign_open(fdl_se_module *se, const char *dir, fdl_fwsign **out);
void fdl_fwsign_free(fdl_fwsign *fs);

/*
 * Creates what is missing, idempotently: both tokens with their PIN files, and a
 * generation-1 current key in its token for every role that has no key yet;
 * saves keys.json. Checks that every current or next key recorded is in its
 * token with the recorded public key (ERR_MISMATCH otherwise).
 */
fdl_fwsign_status fdl_fwsign_setup(fdl_fwsign *fs);

/* The registry (borrowed views, valid until the next call that changes it). */
size_t fdl_fwsign_count(const fdl_fwsign *fs);
const fdl_fwsign_key *fdl_fwsign_key_at(const fdl_fwsign *fs, size_t i);
const fdl_fwsign_key *fdl_fwsign_find_id(const fdl_fwsign *fs, const uint8_t key_id[FDL_FW_KEYID_LEN]);
/* generation 0: the role's current key. NULL if none. */
const fdl_fwsign_key *fdl_fwsign_find(const fdl_fwsign *fs, unsigned role, unsigned generation);
uint32_t fdl_fwsign_keyring_counter(const fdl_fwsign *fs);
/* SHA-256 of the current root key's point: what devices fuse. ERR_NOT_FOUND without one. */
fdl_fwsign_status fdl_fwsign_root_hash(const fdl_fwsign *fs, uint8_t out[32]);

/* fdl_fwsign_sign_image flags. */
#define FDL_FWSIGN_ANY_STATE 0x1u  /* also retired and revoked keys (drills: a leaked key) */

/*
 * Signs an image in place: img[0..len) must parse as a whole image (header and
 * payload hash: ERR_IMAGE otherwise); its key id and signature are replaced.
 * role 0 = the role of the image's tier; any other role signs it anyway (drills
 * make "signed with another tier's key" images this way: the device refuses
 * them). generation 0 = the role's current key. Without FDL_FWSIGN_ANY_STATE
 * only current and next keys sign. The signature is made by C_Sign in the
 * token and checked against keys.json's public key before returning. used
 * (optional) gets the key that signed.
 */
fdl_fwsign_status fdl_fwsign_sign_image(fdl_fwsign *fs, uint8_t *img, size_t len, unsigned role, unsigned generation,
                                        unsigned flags, const fdl_fwsign_key **used);

/* The same with any software key (a rogue signer for attack drills). pk: borrowed,
 * EC P-256 with its private half; f_rng/p_rng for mbedtls_pk_sign. */
fdl_fwsign_status fdl_fwsign_sign_image_pk(uint8_t *img, size_t len, mbedtls_pk_context *pk,
                                           int (*f_rng)(void *, unsigned char *, size_t), void *p_rng);

/*
 * The keyring image for the registry as it is: a FDL_TIER_KEYRING image whose
 * payload lists every next and current key of roles 2..5 and jobs, signed by
 * the current root key. version 0 = 1.0.0; counter 0 = the registry's keyring
 * counter. *out is allocated (fdl_free), *len its size.
 */
fdl_fwsign_status fdl_fwsign_keyring_image(fdl_fwsign *fs, uint32_t version, uint32_t counter, uint8_t **out,
                                           size_t *len);

/* Adds generation max+1 of role as "next" (ERR_STATE if a next key exists). made optional. */
fdl_fwsign_status fdl_fwsign_rotate(fdl_fwsign *fs, unsigned role, const fdl_fwsign_key **made);
/* next -> current, current (if any) -> retired. ERR_STATE without a next key. */
fdl_fwsign_status fdl_fwsign_retire(fdl_fwsign *fs, unsigned role);
/* Marks a key revoked; if it was current and its role has a next key, that one
 * becomes current. The token key is kept (evidence), it just signs nothing. */
fdl_fwsign_status fdl_fwsign_revoke(fdl_fwsign *fs, const uint8_t key_id[FDL_FW_KEYID_LEN]);

/* ---- test images --------------------------------------------------------------------- */

/* The behaviour a test application image asks of the device (docs/firmware-formats.md). */
#define FDL_FW_BEHAVIOURS "ok|no-confirm|crash"

typedef struct fdl_fwsign_build {
    unsigned tier;           /* fdl_fw_tier */
    uint32_t version;
    uint32_t counter;
    uint32_t hw_rev;
    const char *behaviour;   /* "ok" (NULL), "no-confirm" or "crash" */
    uint32_t size;           /* payload bytes, manifest included; 0 = 4096; at least the manifest */
} fdl_fwsign_build;

/*
 * An unsigned image whose payload is the text manifest
 *   "FDL-PAYLOAD 1\ntier=<name>\nversion=<M.m.p>\nbehaviour=<b>\n"
 * followed by filler byte k = (k * 131 + 7) mod 256, so two builds with the
 * same options are identical. *out is allocated (fdl_free), *len its size.
 */
fdl_fwsign_status fdl_fwsign_build_image(const fdl_fwsign_build *b, uint8_t **out, size_t *len);

/* ---- the online job signer --------------------------------------------------------------- */

typedef struct fdl_fwsign_jobs fdl_fwsign_jobs;

/*
 * Opens the current jobs key (keys.json in dir, the jobs token and its PIN) for
 * the job service: nothing of the offline token is read. se borrowed, must
 * outlive *out (fdl_fwsign_jobs_free).
 */
fdl_fwsign_status fdl_fwsign_jobs_open(fdl_se_module *se, const char *dir, fdl_fwsign_jobs **out);
void fdl_fwsign_jobs_free(fdl_fwsign_jobs *j);
/* The signer's key id. */
const uint8_t *fdl_fwsign_jobs_key_id(const fdl_fwsign_jobs *j);
/* Wraps doc[0..len) into a signed envelope (devices/jobdoc.h) in out[0..cap);
 * *out_len = len + FDL_JOBDOC_OVERHEAD. */
fdl_fwsign_status fdl_fwsign_jobs_sign(fdl_fwsign_jobs *j, const uint8_t *doc, size_t len, uint8_t *out, size_t cap,
                                       size_t *out_len);

#endif
