/*
 * sim/fwenv.h — the fleet's firmware environment: what the release path and the
 * cloud need to run signed updates on a simulated fleet.
 *
 *   <state>/firmware/keys.json, tokens fdl-signing and fdl-jobs
 *                      the signing keys (cloud/fwsign.h), made on first use;
 *   <state>/firmware/images/factory-<tier>.img
 *                      the factory images every new device is made with
 *                      (bootloader, keyring, kernel, application 1.0.0, security
 *                      counter 1), signed once and kept, so devices made in later
 *                      runs get the same bytes;
 *   <state>/firmware/factory/<sha256>.img
 *                      the same images by content, shared read-only by every
 *                      device's flash (devices/firmware.h);
 *   <state>/firmware/artifacts/<id>.img
 *                      what the artifact store serves (cloud/artifacts.h).
 *
 * The offline signing token is opened here only to make factory images and the
 * images a drill or a rollout releases (the release path); the job service gets
 * the online job key alone (fdl_fwenv_job_signer). Devices trust what the factory
 * keyring lists; a device's eFuses hold the hash of the root key.
 *
 * Threads: fdl_fwenv_build / _release / _factory_reset may be called from any
 * thread (one lock around the offline token); the job signer from the job
 * service's worker only.
 */
#ifndef FDL_FWENV_H
#define FDL_FWENV_H

#include <stddef.h>
#include <stdint.h>

#include "cloud/jobs.h"
#include "devices/firmware.h"
#include "sim/context.h"

/* The factory's application image: version 1.0.0, security counter 1. */
#define FDL_FWENV_FACTORY_VERSION "1.0.0"
#define FDL_FWENV_FACTORY_COUNTER 1u
/* The hardware revision of the simulated devices. */
#define FDL_FWENV_HW_REV 1u
/* Payload bytes of the images a drill or rollout releases unless it says otherwise:
 * four blocks and a bit (docs/ota.md). */
#define FDL_FWENV_IMAGE_SIZE 16384u

typedef struct fdl_fwenv fdl_fwenv;

/*
 * Opens the signing keys (making tokens and keys on first use), the factory
 * images (made and signed on first use) and the directories. debug_disabled:
 * whether the factory blows the debug-port fuse (`se` devices do; `flash` ones
 * keep the port open). 0, or -1 with err.
 */
int fdl_fwenv_open(fdl_ctx *ctx, int debug_disabled, fdl_fwenv **out, char *err, size_t errcap);
void fdl_fwenv_free(fdl_fwenv *e);

/* What the factory puts on a new device (borrowed, valid until fdl_fwenv_free). */
const fdl_fw_factory *fdl_fwenv_factory(const fdl_fwenv *e);
/* The factory image of a tier (NULL if the factory has none); *len its size. */
const uint8_t *fdl_fwenv_factory_image(const fdl_fwenv *e, unsigned tier, size_t *len);
/* The online job key for the job service (its ud is e). */
fdl_jobs_signer fdl_fwenv_job_signer(fdl_fwenv *e);
/* <state>/firmware and <state>/firmware/artifacts (borrowed). */
const char *fdl_fwenv_dir(const fdl_fwenv *e);
const char *fdl_fwenv_artifacts_dir(const fdl_fwenv *e);

/* How a built image is signed. */
typedef enum fdl_fwenv_sign {
    FDL_FWENV_SIGN_TIER = 0,      /* the current key of its tier's role: a genuine release */
    FDL_FWENV_SIGN_ROLE,          /* the current key of another role (a stolen key of another tier) */
    FDL_FWENV_UNSIGNED,           /* no signature, key id zero */
    FDL_FWENV_SIGN_ROGUE,         /* a fresh software key nobody trusts (the attacker's own) */
} fdl_fwenv_sign;

typedef struct fdl_fwenv_image {
    unsigned tier;                /* fdl_fw_tier */
    uint32_t version;             /* packed (fdl_fw_version_parse) */
    uint32_t counter;
    const char *behaviour;        /* "ok" (NULL), "no-confirm", "crash" */
    uint32_t size;                /* payload bytes; 0 = FDL_FWENV_IMAGE_SIZE */
    uint32_t hw_rev;              /* 0 = FDL_FWENV_HW_REV */
    fdl_fwenv_sign sign;
    unsigned role;                /* FDL_FWENV_SIGN_ROLE: the role whose key signs */
    unsigned generation;          /* SIGN_TIER / SIGN_ROLE: the key's generation (0 = the current
                                     one; a next key signs during a rotation's dual-trust window) */
} fdl_fwenv_image;

/* Builds and signs an image; *img allocated (fdl_free), *len its size. 0 or -1 with err. */
int fdl_fwenv_build(fdl_fwenv *e, const fdl_fwenv_image *spec, uint8_t **img, size_t *len, char *err, size_t errcap);

/* Stores img[0..len) as artifact id in the store; sha256 (may be NULL) receives
 * the SHA-256 of the whole image. 0 or -1 with err. */
int fdl_fwenv_upload(fdl_fwenv *e, const char *id, const uint8_t *img, size_t len, uint8_t sha256[32], char *err,
                     size_t errcap);

/*
 * Factory reset of devices first .. first+n-1: removes their firmware storage
 * (<state>/devices/<id>/fw), so the next run makes it anew from the factory
 * images (fuses at the factory floors, A slots only). For drills, which each
 * start from a fleet as it left the factory. 0 or -1 with err.
 */
int fdl_fwenv_factory_reset(const fdl_state *st, uint32_t first, uint32_t n, char *err, size_t errcap);

#endif
