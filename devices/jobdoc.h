/*
 * devices/jobdoc.h — the signed OTA job document: format, parser, signature check.
 *
 * The job service publishes one document per rollout stage on every targeted
 * device's topic $fleet/jobs/<id>/notify; the device acts on it only after all
 * of these hold (docs/ota.md):
 *   - the envelope parses and the signature verifies with a key its keyring
 *     trusts for FDL_KEY_USAGE_JOBS (devices/keyring.h);
 *   - its own id is in "targets" and, if "hw" is present, its hardware revision
 *     is in "hw" (mix-and-match);
 *   - now < "expires" and "seq" is above the last seq it accepted (freeze and
 *     replay: the device keeps that seq in non-volatile storage);
 *   - the image it then downloads matches "sha256" and "size" exactly and its
 *     header's tier, version and counter match the document's.
 *
 * Envelope (big-endian), the MQTT payload as published:
 *   off  size
 *     0    4  magic "FDJ1"
 *     4    4  document length d (1 .. FDL_JOBDOC_MAX)
 *     8    d  the document: one JSON object, UTF-8
 *   8+d    8  key id of the signer (fdl_fw_key_id)
 *  16+d   64  ECDSA P-256 raw r || s over SHA-256 of bytes 0 .. 16+d-1
 *  nothing after.
 *
 * The document (every member required unless marked; no other member allowed;
 * no member twice):
 *   "job"      string, 1..63 of [A-Za-z0-9._-]
 *   "seq"      integer 1 .. 2^53-1, strictly increasing per job service
 *   "tier"     string, fdl_fw_tier_name of a tier (not "keyring"? allowed: a
 *              keyring update is a job like any other)
 *   "version"  string "M.m.p"
 *   "counter"  integer 0 .. 2^32-1, the image's security counter
 *   "artifact" string, 1..63 of [A-Za-z0-9._-]: the artifact store's id
 *   "sha256"   string, 64 lowercase hex: SHA-256 of the whole image (header + payload)
 *   "size"     integer, the whole image's length in bytes (<= FDL_FW_HDR_LEN + FDL_FW_PAYLOAD_MAX)
 *   "issued"   integer, Unix ms (fleet clock)
 *   "expires"  integer, Unix ms, > issued
 *   "targets"  array of 1 .. FDL_JOBDOC_TARGETS_MAX device ids (strings 1..47 bytes)
 *   "hw"       optional array of 1 .. 16 integers: hardware revisions it is for
 *
 * One spelling per value, since the bytes are what is signed: strings (member
 * names too) are written without backslash escapes; integers are plain decimal
 * (no sign, fraction or exponent); "tier" is the canonical name (not "app");
 * "version" has no leading zeros; targets are 1..47 bytes of [A-Za-z0-9._-]
 * (device ids).
 * A document that is not JSON, or not an object, is FDL_JOB_ERR_JSON; one that
 * is JSON but breaks the schema (including a nested container, a string over
 * 64 bytes or more targets than allowed) is FDL_JOB_ERR_FIELD; expires <=
 * issued is FDL_JOB_ERR_FIELD too.
 *
 * Sans-I/O; the parser borrows the buffer (targets are views into it) and does
 * not allocate (its JSON token array, about 100 KiB, is on the stack). Hostile
 * input returns a named status, never a crash. The JSON is read with the strict
 * parser of cloud/json.h (duplicate keys refused, UTF-8 checked).
 */
#ifndef FDL_JOBDOC_H
#define FDL_JOBDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/fwimage.h"
#include "devices/keyring.h"

#define FDL_JOBDOC_MAGIC "FDJ1"
#define FDL_JOBDOC_MAX (64u << 10)       /* document bytes */
#define FDL_JOBDOC_TARGETS_MAX 4096
#define FDL_JOBDOC_HW_MAX 16
#define FDL_JOBDOC_ID_MAX 64             /* job and artifact ids, with NUL */
#define FDL_JOBDOC_TARGET_MAX 47         /* bytes of one target device id */
#define FDL_JOBDOC_OVERHEAD 80           /* envelope bytes around the document: 8 + 8 + 64 */
#define FDL_JOBDOC_SKEW_MS (5u * 60u * 1000u) /* a document issued this far in the device's future still counts */

typedef enum fdl_jobdoc_status {
    FDL_JOB_OK = 0,
    FDL_JOB_ERR_ENVELOPE,    /* magic, length fields or trailing bytes wrong */
    FDL_JOB_ERR_JSON,        /* not one well-formed JSON object */
    FDL_JOB_ERR_FIELD,       /* missing, unknown, duplicated or mistyped member, value out of range */
    FDL_JOB_ERR_KEY_UNKNOWN, /* signer not trusted for jobs */
    FDL_JOB_ERR_SIGNATURE,
    FDL_JOB_ERR_NOT_FOR_ME,  /* device id not in targets */
    FDL_JOB_ERR_HW,          /* hardware revision not in hw */
    FDL_JOB_ERR_EXPIRED,     /* now >= expires (or now < issued - 5 min: from the future) */
    FDL_JOB_ERR_REPLAY,      /* seq not above the last accepted */
    FDL_JOB_ERR_ARG,
} fdl_jobdoc_status;

const char *fdl_jobdoc_strerror(fdl_jobdoc_status st);

typedef struct fdl_jobdoc {
    char job[FDL_JOBDOC_ID_MAX];
    uint64_t seq;
    uint8_t tier;
    uint32_t version;
    uint32_t counter;
    char artifact[FDL_JOBDOC_ID_MAX];
    uint8_t sha256[32];
    uint32_t size;
    uint64_t issued_ms, expires_ms;
    unsigned n_targets;
    unsigned n_hw;
    uint32_t hw[FDL_JOBDOC_HW_MAX];
    /* the envelope, as parsed (views into the caller's buffer) */
    const uint8_t *doc;          /* the JSON text */
    size_t doc_len;
    size_t targets_at, targets_len;  /* the "targets" array's bytes within doc */
    uint8_t key_id[FDL_FW_KEYID_LEN];
    uint8_t sig[FDL_FW_SIG_LEN];
} fdl_jobdoc;

/* Parses an envelope and its document (no signature or target check). buf is
 * borrowed: out's views point into it. *out is written only on FDL_JOB_OK. */
fdl_jobdoc_status fdl_jobdoc_parse(const uint8_t *buf, size_t len, fdl_jobdoc *out);
/* true if id is one of the document's targets (walks the JSON again: no copy). */
bool fdl_jobdoc_targets(const fdl_jobdoc *jd, const char *id);
/* The signature against the keyring's jobs keys. */
fdl_jobdoc_status fdl_jobdoc_verify(const fdl_jobdoc *jd, const fdl_keyring *kr);
/*
 * Everything a device checks, in the order above: signature, target, hardware
 * revision, time, replay. last_seq = the highest seq it accepted before.
 */
fdl_jobdoc_status fdl_jobdoc_check(const fdl_jobdoc *jd, const fdl_keyring *kr, const char *device_id,
                                   uint32_t hw_rev, uint64_t now_ms, uint64_t last_seq);

/* SHA-256 the signer signs: over magic, length, document and key id. */
void fdl_jobdoc_signed_hash(const uint8_t *doc, size_t doc_len, const uint8_t key_id[FDL_FW_KEYID_LEN],
                            uint8_t out[32]);
/* Builds an envelope around doc with a signature already made over
 * fdl_jobdoc_signed_hash. Returns its length, or 0 if cap is too small. */
size_t fdl_jobdoc_wrap(const uint8_t *doc, size_t doc_len, const uint8_t key_id[FDL_FW_KEYID_LEN],
                       const uint8_t sig[FDL_FW_SIG_LEN], uint8_t *out, size_t cap);

#endif
