/*
 * tests/fwdev.h — a virtual device's factory for the firmware and OTA tests:
 * software test keys for every tier, test images with a payload manifest,
 * a root-signed keyring, and the fdl_fw_factory that puts them on a device.
 *
 * Header-only over tests/fwtest.h (the software signer). Keys are made in
 * memory; production signing goes through the offline token (cloud/fwsign.h).
 */
#ifndef FDL_FWDEV_H
#define FDL_FWDEV_H

#include "fwtest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/firmware.h"

typedef struct fwd_keys {
    fwt_key root;                    /* bootloader and keyring */
    fwt_key tier[FDL_TIER_COUNT];    /* kernel .. config at their tier index */
    fwt_key jobs;                    /* job documents */
    fwt_key rogue;                   /* a P-256 key nobody trusts */
} fwd_keys;

static inline void fwd_keys_new(fwd_keys *k)
{
    memset(k, 0, sizeof *k);
    fwt_key_new(&k->root);
    for (unsigned t = FDL_TIER_KERNEL; t <= FDL_TIER_CONFIG; t++)
        fwt_key_new(&k->tier[t]);
    fwt_key_new(&k->jobs);
    fwt_key_new(&k->rogue);
}

static inline void fwd_keys_free(fwd_keys *k)
{
    fwt_key_free(&k->root);
    for (unsigned t = FDL_TIER_KERNEL; t <= FDL_TIER_CONFIG; t++)
        fwt_key_free(&k->tier[t]);
    fwt_key_free(&k->jobs);
    fwt_key_free(&k->rogue);
}

/* The key that legitimately signs tier. */
static inline fwt_key *fwd_signer(fwd_keys *k, unsigned tier)
{
    return tier == FDL_TIER_BOOTLOADER || tier == FDL_TIER_KEYRING ? &k->root : &k->tier[tier];
}

/* A test payload: the manifest the device reads (docs/firmware.md), then
 * deterministic filler up to size bytes (at least the manifest). malloc'd. */
static inline uint8_t *fwd_payload(unsigned tier, uint32_t version, const char *behaviour, size_t size, size_t *len)
{
    char man[200], ver[16];
    int n = snprintf(man, sizeof man, "FDL-PAYLOAD 1\ntier=%s\nversion=%s\nbehaviour=%s\n", fdl_fw_tier_name(tier),
                     fdl_fw_version_str(version, ver, sizeof ver), behaviour ? behaviour : "ok");
    if (size < (size_t)n)
        size = (size_t)n;
    uint8_t *p = malloc(size);
    assert_non_null(p);
    memcpy(p, man, (size_t)n);
    for (size_t i = (size_t)n; i < size; i++)
        p[i] = (uint8_t)(i * 131u + version);
    *len = size;
    return p;
}

/* A whole test image of tier signed by k (NULL: unsigned). malloc'd. */
static inline uint8_t *fwd_image(fwt_key *k, unsigned tier, uint32_t version, uint32_t counter, uint32_t hw_rev,
                                 const char *behaviour, size_t payload_size, size_t *len)
{
    size_t plen = 0;
    uint8_t *payload = fwd_payload(tier, version, behaviour, payload_size, &plen);
    uint8_t *img = fwt_image(k, tier, version, counter, hw_rev, payload, plen, len);
    free(payload);
    return img;
}

/* The keyring image trusting the tier keys and the jobs key, signed by signer. */
static inline uint8_t *fwd_keyring_image(fwd_keys *k, fwt_key *signer, uint32_t version, uint32_t counter,
                                         size_t *len)
{
    fdl_keyring kr;
    uint8_t payload[FDL_KEYRING_MAX * FDL_KEYRING_ENTRY_LEN + 6];
    memset(&kr, 0, sizeof kr);
    for (unsigned t = FDL_TIER_KERNEL; t <= FDL_TIER_CONFIG; t++)
        fwt_keyring_add(&kr, &k->tier[t], t, FDL_KEY_CURRENT);
    fwt_keyring_add(&kr, &k->jobs, FDL_KEY_USAGE_JOBS, FDL_KEY_CURRENT);
    size_t plen = fdl_keyring_encode(&kr, payload, sizeof payload);
    assert_true(plen > 0);
    return fwt_image(signer, FDL_TIER_KEYRING, version, counter, 0, payload, plen, len);
}

/* A factory: images it owns (freed by fwd_factory_free) and the fdl_fw_factory over them. */
typedef struct fwd_factory {
    fdl_fw_factory f;
    uint8_t *img[FDL_TIER_COUNT];
} fwd_factory;

#define FWD_VERSION_1 0x01000000u   /* "1.0.0" */
#define FWD_PAYLOAD 3000            /* payload bytes of factory images */

/*
 * Bootloader, keyring, kernel and application at 1.0.0 with counter `counter`,
 * signed with their own keys; secure boot on, debug port closed, hw revision 1.
 * factory_dir NULL: every device keeps its own copy.
 */
static inline void fwd_factory_make(fwd_factory *fa, fwd_keys *k, const char *factory_dir, uint32_t counter)
{
    memset(fa, 0, sizeof *fa);
    fa->f.factory_dir = factory_dir;
    static const unsigned tiers[] = {FDL_TIER_BOOTLOADER, FDL_TIER_KERNEL, FDL_TIER_APPLICATION};
    for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++) {
        unsigned t = tiers[i];
        fa->img[t] = fwd_image(fwd_signer(k, t), t, FWD_VERSION_1, counter, 0, "ok", FWD_PAYLOAD,
                               &fa->f.image_len[t]);
    }
    fa->img[FDL_TIER_KEYRING] = fwd_keyring_image(k, &k->root, FWD_VERSION_1, counter,
                                                  &fa->f.image_len[FDL_TIER_KEYRING]);
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++)
        fa->f.image[t] = fa->img[t];
    fa->f.root_pub = k->root.pub;
    fa->f.secure_boot = true;
    fa->f.debug_disabled = true;
    fa->f.hw_rev = 1;
}

/* Replaces the factory image of tier (the factory takes ownership of img). */
static inline void fwd_factory_set(fwd_factory *fa, unsigned tier, uint8_t *img, size_t len)
{
    free(fa->img[tier]);
    fa->img[tier] = img;
    fa->f.image[tier] = img;
    fa->f.image_len[tier] = len;
}

static inline void fwd_factory_free(fwd_factory *fa)
{
    for (unsigned t = 0; t < FDL_TIER_COUNT; t++)
        free(fa->img[t]);
    memset(fa, 0, sizeof *fa);
}

/* SHA-256 of a buffer. */
static inline void fwd_sha(const uint8_t *p, size_t n, uint8_t out[32])
{
    assert_int_equal(mbedtls_sha256(p, n, out, 0), 0);
}

/* Lowercase hex of 32 bytes into out[65]. */
static inline void fwd_hex(const uint8_t h[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* Opens (creating if needed) the device in dir; fails the test with the error. */
static inline fdl_fw *fwd_open(const char *dir, const fdl_fw_factory *f)
{
    fdl_fw *fw = NULL;
    char err[512] = "";
    if (fdl_fw_open(dir, f, &fw, err, sizeof err) != 0)
        fail_msg("fdl_fw_open %s: %s", dir, err);
    return fw;
}

/* Writes a whole image into the inactive slot of its tier through the update
 * API and marks it pending (what the OTA agent does after its checks, here
 * without them: the boot chain is under test). */
static inline void fwd_install(fdl_fw *fw, unsigned tier, const uint8_t *img, size_t len, uint64_t trial_ms)
{
    assert_int_equal(fdl_fw_update_begin(fw, tier, (uint32_t)len), 0);
    for (size_t off = 0; off < len; off += 1000) {
        size_t n = len - off < 1000 ? len - off : 1000;
        assert_int_equal(fdl_fw_update_write(fw, img + off, n), 0);
    }
    assert_int_equal(fdl_fw_update_finish(fw, trial_ms), 0);
}

#endif
