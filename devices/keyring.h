/*
 * devices/keyring.h — which key may sign what, as the device knows it.
 *
 * The trust of a device starts at its eFuses: they hold the SHA-256 of the root
 * firmware key (devices/efuse.h). The root key signs the bootloader and the
 * keyring. The keyring is the payload of a FDL_TIER_KEYRING image
 * (devices/fwimage.h) and lists, for every other use, the keys the device
 * trusts: at most two per use (current and next: the dual-trust window of a
 * rotation). A key listed for one use verifies nothing else, so a key of one
 * tier cannot sign another. Keyring images carry a security counter like any
 * image: an old keyring that still trusts a revoked key is refused as a rollback.
 *
 * Payload format (big-endian):
 *   off size
 *     0   4  magic "FDKR"
 *     4   1  format version (1)
 *     5   1  entry count n (1 .. FDL_KEYRING_MAX)
 *     6   n * 75 entries: usage (1), state (1), key id (8), public key (65)
 *   nothing after the last entry.
 * Every entry's key id must equal fdl_fw_key_id(public key) and its key must be
 * a point on P-256; a use appears at most twice (one current, one next); one key
 * appears at most once (a key listed for two uses could sign both); usage
 * FDL_TIER_BOOTLOADER and FDL_TIER_KEYRING are not listed (they are the fused
 * root key).
 *
 * Sans-I/O, no mbedTLS in the interface; malformed input returns a status.
 */
#ifndef FDL_KEYRING_H
#define FDL_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "devices/fwimage.h"

#define FDL_KEYRING_MAGIC "FDKR"
#define FDL_KEYRING_VERSION 1
#define FDL_KEYRING_MAX 16
#define FDL_KEYRING_ENTRY_LEN 75

/* Uses: the image tiers 2..5 (fdl_fw_tier) plus the job-document key. */
#define FDL_KEY_USAGE_JOBS 7
#define FDL_KEY_USAGE_COUNT 8   /* array size for tables indexed by usage */

typedef enum fdl_key_state {
    FDL_KEY_CURRENT = 1,
    FDL_KEY_NEXT = 2,
} fdl_key_state;

typedef enum fdl_keyring_status {
    FDL_KR_OK = 0,
    FDL_KR_ERR_SHORT,      /* truncated: under 6 bytes, or under 6 + n * 75 */
    FDL_KR_ERR_MAGIC,
    FDL_KR_ERR_VERSION,
    FDL_KR_ERR_COUNT,      /* 0 entries, over FDL_KEYRING_MAX, or bytes after entry n */
    FDL_KR_ERR_USAGE,      /* unknown use, or a root use (bootloader, keyring) */
    FDL_KR_ERR_STATE,      /* unknown state, or two keys of one use in one state */
    FDL_KR_ERR_KEYID,      /* key id is not the hash of the key */
    FDL_KR_ERR_POINT,      /* not an uncompressed point (0x04 || X || Y) on P-256 */
    FDL_KR_ERR_DUPLICATE,  /* one key listed twice (for two uses, or twice for one) */
    FDL_KR_ERR_ARG,        /* NULL out, or NULL buf with len > 0 */
} fdl_keyring_status;

const char *fdl_keyring_strerror(fdl_keyring_status st);
/* "kernel", ..., "jobs" (the tier names for 1..6); "?" otherwise. */
const char *fdl_key_usage_name(unsigned usage);
/* 1 for the uses a keyring lists (FDL_TIER_KERNEL .. FDL_TIER_CONFIG, FDL_KEY_USAGE_JOBS), else 0. */
int fdl_key_usage_listable(unsigned usage);

typedef struct fdl_keyring_entry {
    uint8_t usage;
    uint8_t state;
    uint8_t key_id[FDL_FW_KEYID_LEN];
    uint8_t pub[FDL_FW_PUB_LEN];
} fdl_keyring_entry;

typedef struct fdl_keyring {
    unsigned n;
    fdl_keyring_entry e[FDL_KEYRING_MAX];
} fdl_keyring;

/* Parses a keyring payload (not the image around it: the caller verified that).
 * The checks run in this order, entry by entry: usage, state, point, key id, then
 * the pairs (state, duplicate). *out is written only on FDL_KR_OK. */
fdl_keyring_status fdl_keyring_parse(const uint8_t *buf, size_t len, fdl_keyring *out);
/* Serialises kr into out[0..cap); the length, or 0 if cap is too small. */
size_t fdl_keyring_encode(const fdl_keyring *kr, uint8_t *out, size_t cap);

/* The key with this id trusted for this use, or NULL: the one lookup every check goes through.
 * Borrowed from kr. A root use (bootloader, keyring) finds nothing. */
const fdl_keyring_entry *fdl_keyring_find(const fdl_keyring *kr, unsigned usage,
                                          const uint8_t key_id[FDL_FW_KEYID_LEN]);

/* An image of tiers kernel .. config against the keyring: the key the header
 * names must be listed for the header's own tier (FDL_FW_ERR_KEY_UNKNOWN
 * otherwise: a key of another tier is unknown here), then the signature
 * (fdl_fwimage_verify_sig). Bootloader and keyring images are the boot ROM's:
 * KEY_UNKNOWN here. The caller checks hash, floor and hardware revision. */
fdl_fw_status fdl_keyring_verify_image(const fdl_keyring *kr, const fdl_fw_hdr *h);

#endif
