/*
 * tests/fwtest.h — a software signer for firmware-format tests: P-256 test keys,
 * signed images, keyrings and job documents built with mbedTLS.
 *
 * Header-only (static inline) so any test may include it without a library of
 * its own. These are test keys made in memory with fdl_test_gen_key; production
 * signing goes through the offline token (cloud/fwsign.h). The builders produce
 * exactly the bytes the format headers describe, through the same encoders
 * (fdl_fwimage_encode_hdr, fdl_keyring_encode, fdl_jobdoc_wrap), so a test that
 * mutates their output tests the parsers, not these helpers.
 */
#ifndef FDL_FWTEST_H
#define FDL_FWTEST_H

#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include "devices/fwimage.h"
#include "devices/jobdoc.h"
#include "devices/keyring.h"

typedef struct fwt_key {
    mbedtls_pk_context pk;
    uint8_t pub[FDL_FW_PUB_LEN];
    uint8_t id[FDL_FW_KEYID_LEN];
} fwt_key;

static inline void fwt_key_new(fwt_key *k)
{
    size_t olen = 0;
    fdl_test_gen_key(&k->pk, MBEDTLS_ECP_DP_SECP256R1);
    assert_int_equal(mbedtls_ecp_write_public_key(mbedtls_pk_ec(k->pk), MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, k->pub,
                                                  sizeof k->pub),
                     0);
    assert_int_equal(olen, FDL_FW_PUB_LEN);
    fdl_fw_key_id(k->pub, k->id);
}

static inline void fwt_key_free(fwt_key *k)
{
    mbedtls_pk_free(&k->pk);
}

/* Raw r || s over a 32-byte hash, through DER and fdl_fw_sig_from_der (as the token path does). */
static inline void fwt_sign_hash(fwt_key *k, const uint8_t hash[32], uint8_t sig[FDL_FW_SIG_LEN])
{
    uint8_t der[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t n = 0;
    assert_int_equal(mbedtls_pk_sign(&k->pk, MBEDTLS_MD_SHA256, hash, 32, der, sizeof der, &n,
                                     mbedtls_ctr_drbg_random, fdl_test_drbg()),
                     0);
    assert_int_equal(fdl_fw_sig_from_der(der, n, sig), 0);
}

/* A header for payload, signed by k (k NULL: key id and signature left zero). */
static inline void fwt_hdr(fdl_fw_hdr *h, fwt_key *k, unsigned tier, uint32_t version, uint32_t counter,
                           uint32_t hw_rev, const uint8_t *payload, size_t len)
{
    uint8_t hash[32];
    memset(h, 0, sizeof *h);
    h->hdr_version = FDL_FW_HDR_VERSION;
    h->tier = (uint8_t)tier;
    h->version = version;
    h->counter = counter;
    h->length = (uint32_t)len;
    h->hw_rev = hw_rev;
    assert_int_equal(mbedtls_sha256(payload, len, h->sha256, 0), 0);
    if (k) {
        memcpy(h->key_id, k->id, FDL_FW_KEYID_LEN);
        fdl_fwimage_signed_hash(h, hash);
        fwt_sign_hash(k, hash, h->sig);
    }
}

/* A whole image (malloc'd, test-owned: free()); *len gets its size. */
static inline uint8_t *fwt_image(fwt_key *k, unsigned tier, uint32_t version, uint32_t counter, uint32_t hw_rev,
                                 const uint8_t *payload, size_t plen, size_t *len)
{
    fdl_fw_hdr h;
    uint8_t *img = malloc(FDL_FW_HDR_LEN + plen + 1);
    assert_non_null(img);
    fwt_hdr(&h, k, tier, version, counter, hw_rev, payload, plen);
    fdl_fwimage_encode_hdr(&h, img);
    if (plen)
        memcpy(img + FDL_FW_HDR_LEN, payload, plen);
    *len = FDL_FW_HDR_LEN + plen;
    return img;
}

/* Appends k to kr for usage in state. */
static inline void fwt_keyring_add(fdl_keyring *kr, const fwt_key *k, unsigned usage, unsigned state)
{
    assert_true(kr->n < FDL_KEYRING_MAX);
    fdl_keyring_entry *e = &kr->e[kr->n++];
    e->usage = (uint8_t)usage;
    e->state = (uint8_t)state;
    memcpy(e->key_id, k->id, FDL_FW_KEYID_LEN);
    memcpy(e->pub, k->pub, FDL_FW_PUB_LEN);
}

/* A job envelope around doc signed by k into out[cap]; returns its length. */
static inline size_t fwt_jobdoc(fwt_key *k, const char *doc, uint8_t *out, size_t cap)
{
    uint8_t hash[32], sig[FDL_FW_SIG_LEN];
    size_t dl = strlen(doc);
    fdl_jobdoc_signed_hash((const uint8_t *)doc, dl, k->id, hash);
    fwt_sign_hash(k, hash, sig);
    size_t n = fdl_jobdoc_wrap((const uint8_t *)doc, dl, k->id, sig, out, cap);
    assert_int_equal(n, FDL_JOBDOC_OVERHEAD + dl);
    return n;
}

#endif
