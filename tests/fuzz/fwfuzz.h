/*
 * tests/fuzz/fwfuzz.h — shared by the firmware-format fuzz targets: a CHECK that
 * aborts, and one fixed P-256 key the harness signs with, so that inputs the
 * fuzzer cannot sign itself still reach the "signature verifies" paths.
 *
 * The key is a constant of the harness, never used anywhere else.
 */
#ifndef FDL_FWFUZZ_H
#define FDL_FWFUZZ_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>

#include "devices/fwimage.h"

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s: check failed at line %d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

typedef struct fwfuzz_key {
    mbedtls_ecp_group grp;
    mbedtls_mpi d;
    uint8_t pub[FDL_FW_PUB_LEN];
    uint8_t id[FDL_FW_KEYID_LEN];
} fwfuzz_key;

/* Blinding randomness for mbedTLS (deterministic: the fuzzer must be reproducible). */
static inline int fwfuzz_rng(void *ctx, unsigned char *out, size_t n)
{
    unsigned *c = ctx;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(++*c * 131u + 7u);
    return 0;
}

/* Key number k (1, 2, ...): private scalar 0x11 * k repeated, far below the group order. */
static inline void fwfuzz_key_init(fwfuzz_key *k, unsigned char seed)
{
    unsigned ctr = 0;
    uint8_t d[32];
    mbedtls_ecp_point q;
    size_t olen = 0;
    memset(d, seed, sizeof d);
    mbedtls_ecp_group_init(&k->grp);
    mbedtls_mpi_init(&k->d);
    mbedtls_ecp_point_init(&q);
    CHECK(mbedtls_ecp_group_load(&k->grp, MBEDTLS_ECP_DP_SECP256R1) == 0);
    CHECK(mbedtls_mpi_read_binary(&k->d, d, sizeof d) == 0);
    CHECK(mbedtls_ecp_mul(&k->grp, &q, &k->d, &k->grp.G, fwfuzz_rng, &ctr) == 0);
    CHECK(mbedtls_ecp_point_write_binary(&k->grp, &q, MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, k->pub, sizeof k->pub) == 0);
    CHECK(olen == FDL_FW_PUB_LEN);
    fdl_fw_key_id(k->pub, k->id);
    mbedtls_ecp_point_free(&q);
}

/* Deterministic ECDSA (RFC 6979) of hash into raw r || s. */
static inline void fwfuzz_sign(fwfuzz_key *k, const uint8_t hash[32], uint8_t sig[FDL_FW_SIG_LEN])
{
    unsigned ctr = 0;
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    CHECK(mbedtls_ecdsa_sign_det_ext(&k->grp, &r, &s, &k->d, hash, 32, MBEDTLS_MD_SHA256, fwfuzz_rng, &ctr) == 0);
    CHECK(mbedtls_mpi_write_binary(&r, sig, 32) == 0);
    CHECK(mbedtls_mpi_write_binary(&s, sig + 32, 32) == 0);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
}

#endif
