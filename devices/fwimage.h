/*
 * devices/fwimage.h — the signed firmware image: format, parser, signature check.
 *
 * An image is a 128-byte header followed by the payload (docs/firmware-formats.md):
 *
 *   off size field
 *     0   4  magic "FDFW"
 *     4   1  header format version (1)
 *     5   1  tier (fdl_fw_tier: 1 bootloader .. 6 keyring)
 *     6   2  flags, must be 0
 *     8   4  version, packed major<<24 | minor<<16 | patch (shown "1.2.3")
 *    12   4  security counter (anti-rollback: refused below the device's fused floor)
 *    16   4  payload length in bytes (<= FDL_FW_PAYLOAD_MAX)
 *    20   4  hardware revision it is built for (0 = any)
 *    24  32  SHA-256 of the payload
 *    56   8  key id: the first 8 bytes of SHA-256 over the signer's public key
 *            (65-byte uncompressed P-256 point)
 *    64  64  ECDSA P-256 signature, raw r || s (32 bytes each, big-endian), over
 *            SHA-256 of header bytes 0..63
 * All integers big-endian. The header alone carries everything a device must
 * check before it writes a byte: the signature covers the payload's hash, so the
 * payload can then be streamed to flash, hashed on the way, and refused at the
 * end if the hash differs (and beyond `length`, it is refused at once).
 *
 * Parsing is sans-I/O and total: any input returns a status, hostile input a
 * named "malformed" one, never a crash or an assert. Verification
 * (fdl_fwimage_verify*) uses mbedTLS but the header does not expose it: keys are
 * passed as raw uncompressed points.
 */
#ifndef FDL_FWIMAGE_H
#define FDL_FWIMAGE_H

#include <stddef.h>
#include <stdint.h>

#define FDL_FW_MAGIC "FDFW"
#define FDL_FW_HDR_VERSION 1
#define FDL_FW_HDR_LEN 128
#define FDL_FW_SIGNED_LEN 64            /* header bytes covered by the signature */
#define FDL_FW_PAYLOAD_MAX (16u << 20)  /* 16 MiB */
#define FDL_FW_KEYID_LEN 8
#define FDL_FW_PUB_LEN 65               /* 0x04 || X || Y */
#define FDL_FW_SIG_LEN 64
#define FDL_FW_SIG_DER_MAX 72          /* longest DER Ecdsa-Sig-Value of P-256 */

/* Update tiers, by blast radius. Each has its own signing key; the keyring
 * (the device's list of trusted keys per tier) is itself an image, signed by
 * the root key (the key whose hash is fused). */
typedef enum fdl_fw_tier {
    FDL_TIER_NONE = 0,
    FDL_TIER_BOOTLOADER = 1,
    FDL_TIER_KERNEL = 2,
    FDL_TIER_APPLICATION = 3,
    FDL_TIER_MODULES = 4,
    FDL_TIER_CONFIG = 5,     /* config and models */
    FDL_TIER_KEYRING = 6,
} fdl_fw_tier;
#define FDL_TIER_COUNT 7     /* array size for per-tier tables indexed by tier */

/* "bootloader", "kernel", "application", "modules", "config", "keyring"; "?" otherwise. */
const char *fdl_fw_tier_name(unsigned tier);
/* Name (also "app", "models") -> tier; FDL_TIER_NONE if unknown. */
fdl_fw_tier fdl_fw_tier_parse(const char *name);

typedef enum fdl_fw_status {
    FDL_FW_OK = 0,
    FDL_FW_ERR_SHORT,        /* fewer than FDL_FW_HDR_LEN bytes */
    FDL_FW_ERR_MAGIC,        /* not "FDFW" */
    FDL_FW_ERR_HDR_VERSION,  /* unknown header format version */
    FDL_FW_ERR_TIER,         /* tier out of range */
    FDL_FW_ERR_FLAGS,        /* reserved flags set */
    FDL_FW_ERR_LENGTH,       /* payload length over FDL_FW_PAYLOAD_MAX, or image size != header + length */
    FDL_FW_ERR_HASH,         /* payload SHA-256 differs from the header's */
    FDL_FW_ERR_KEY_UNKNOWN,  /* no trusted key with this key id for this tier */
    FDL_FW_ERR_SIGNATURE,    /* signature does not verify (or r/s out of range) */
    FDL_FW_ERR_ROLLBACK,     /* security counter below the fused floor */
    FDL_FW_ERR_HW,           /* built for another hardware revision */
    FDL_FW_ERR_WRONG_TIER,   /* a valid image, but not of the tier this slot/job wants */
    FDL_FW_ERR_ARG,
    FDL_FW_ERR_CRYPTO,       /* mbedTLS failed on a well-formed input (out of memory) */
} fdl_fw_status;

/* Static string, never NULL. */
const char *fdl_fw_strerror(fdl_fw_status st);

typedef struct fdl_fw_hdr {
    uint8_t hdr_version;
    uint8_t tier;
    uint16_t flags;
    uint32_t version;
    uint32_t counter;
    uint32_t length;
    uint32_t hw_rev;
    uint8_t sha256[32];
    uint8_t key_id[FDL_FW_KEYID_LEN];
    uint8_t sig[FDL_FW_SIG_LEN];
} fdl_fw_hdr;

/* Packs "1.2.3" into out (each part 0..255, decimal, no leading zeros); 0, or -1 if malformed. */
int fdl_fw_version_parse(const char *s, uint32_t *out);
/* "1.2.3" into buf. 12 bytes hold every version fdl_fw_version_parse makes; 16
 * hold any uint32 (the patch field is the low 16 bits and is shown whole, so a
 * header with stray bits never displays as a look-alike). Returns buf. */
const char *fdl_fw_version_str(uint32_t v, char *buf, size_t cap);

/* Parses the header in buf[0..len) (len >= FDL_FW_HDR_LEN; extra bytes ignored). */
fdl_fw_status fdl_fwimage_parse_hdr(const uint8_t *buf, size_t len, fdl_fw_hdr *out);
/* Parses a whole image: header, then len == FDL_FW_HDR_LEN + length and the payload
 * hash matches. *payload points into buf. No signature check. */
fdl_fw_status fdl_fwimage_parse(const uint8_t *buf, size_t len, fdl_fw_hdr *out, const uint8_t **payload);
/* Serialises h into out[FDL_FW_HDR_LEN] (signature included as it is in h). */
void fdl_fwimage_encode_hdr(const fdl_fw_hdr *h, uint8_t out[FDL_FW_HDR_LEN]);
/* SHA-256 of the signed part of h (what the signer signs). */
void fdl_fwimage_signed_hash(const fdl_fw_hdr *h, uint8_t out[32]);

/* SHA-256 over a public key's 65-byte point: what the eFuses hold for the root key. */
void fdl_fw_key_hash(const uint8_t pub[FDL_FW_PUB_LEN], uint8_t out[32]);
/* Key id of a public key (first 8 bytes of SHA-256 over the 65-byte point). */
void fdl_fw_key_id(const uint8_t pub[FDL_FW_PUB_LEN], uint8_t id[FDL_FW_KEYID_LEN]);
/* Hex of a key id into buf (17 bytes). Returns buf. */
const char *fdl_fw_key_id_hex(const uint8_t id[FDL_FW_KEYID_LEN], char *buf, size_t cap);

/* Exactly 2n hex digits -> n bytes into out (lower_only: refuse A-F, for files we
 * write ourselves and read strictly). 0, or -1 with out unspecified. */
int fdl_fw_hex_decode(const char *s, uint8_t *out, size_t n, int lower_only);

/* Checks h's signature against pub (raw point): FDL_FW_OK or FDL_FW_ERR_SIGNATURE
 * (also for a key id that does not match pub). */
fdl_fw_status fdl_fwimage_verify_sig(const fdl_fw_hdr *h, const uint8_t pub[FDL_FW_PUB_LEN]);

/* 1 if pub is an uncompressed point on P-256 (0x04 || X || Y, on the curve), else 0. */
int fdl_fw_pub_valid(const uint8_t pub[FDL_FW_PUB_LEN]);
/* ECDSA P-256 check of a raw r || s signature over a SHA-256 hash: the one
 * verification the image and job-document checks share. FDL_FW_OK,
 * FDL_FW_ERR_SIGNATURE (also for a key that is not a curve point, r or s out of
 * range), FDL_FW_ERR_ARG (NULL) or FDL_FW_ERR_CRYPTO (out of memory). */
fdl_fw_status fdl_fw_ecdsa_verify(const uint8_t pub[FDL_FW_PUB_LEN], const uint8_t hash[32],
                                  const uint8_t sig[FDL_FW_SIG_LEN]);

/* Raw r||s <-> DER Ecdsa-Sig-Value (what PKCS#11 C_Sign via fdl_se_key_sign and
 * mbedTLS produce). from_der is strict (one SEQUENCE of two minimal positive
 * INTEGERs of at most 32 bytes, nothing after): 0 or -1. to_der returns the
 * length written (at most FDL_FW_SIG_DER_MAX), or 0 if cap is too small. */
int fdl_fw_sig_from_der(const uint8_t *der, size_t len, uint8_t raw[FDL_FW_SIG_LEN]);
size_t fdl_fw_sig_to_der(const uint8_t raw[FDL_FW_SIG_LEN], uint8_t *der, size_t cap);

#endif
