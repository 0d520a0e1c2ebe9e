/* devices/fwimage.c — the signed firmware image: header codec, payload check, ECDSA P-256 verification (see fwimage.h). */
#include "devices/fwimage.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/sha256.h>

/* ---------------------------------------------------------------------------------------- */
/* Names.                                                                                    */

static const char *const fw_tier_names[FDL_TIER_COUNT] = {
    [FDL_TIER_BOOTLOADER] = "bootloader", [FDL_TIER_KERNEL] = "kernel", [FDL_TIER_APPLICATION] = "application",
    [FDL_TIER_MODULES] = "modules",       [FDL_TIER_CONFIG] = "config", [FDL_TIER_KEYRING] = "keyring",
};

const char *fdl_fw_tier_name(unsigned tier)
{
    if (tier < FDL_TIER_COUNT && fw_tier_names[tier])
        return fw_tier_names[tier];
    return "?";
}

fdl_fw_tier fdl_fw_tier_parse(const char *name)
{
    if (!name)
        return FDL_TIER_NONE;
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++)
        if (!strcmp(name, fw_tier_names[t]))
            return (fdl_fw_tier)t;
    if (!strcmp(name, "app"))
        return FDL_TIER_APPLICATION;
    if (!strcmp(name, "models"))
        return FDL_TIER_CONFIG;
    return FDL_TIER_NONE;
}

static const char *const fw_status_str[] = {
    [FDL_FW_OK] = "ok",
    [FDL_FW_ERR_SHORT] = "image shorter than its header",
    [FDL_FW_ERR_MAGIC] = "not a firmware image (bad magic)",
    [FDL_FW_ERR_HDR_VERSION] = "unknown image header version",
    [FDL_FW_ERR_TIER] = "tier out of range",
    [FDL_FW_ERR_FLAGS] = "reserved header flags set",
    [FDL_FW_ERR_LENGTH] = "payload length over the ceiling or not the image's size",
    [FDL_FW_ERR_HASH] = "payload SHA-256 differs from the header",
    [FDL_FW_ERR_KEY_UNKNOWN] = "signing key not trusted for this tier",
    [FDL_FW_ERR_SIGNATURE] = "signature does not verify",
    [FDL_FW_ERR_ROLLBACK] = "security counter below the anti-rollback floor",
    [FDL_FW_ERR_HW] = "built for another hardware revision",
    [FDL_FW_ERR_WRONG_TIER] = "image of another tier than expected",
    [FDL_FW_ERR_ARG] = "invalid argument",
    [FDL_FW_ERR_CRYPTO] = "crypto library failure",
};

const char *fdl_fw_strerror(fdl_fw_status st)
{
    if ((unsigned)st < sizeof fw_status_str / sizeof fw_status_str[0] && fw_status_str[st])
        return fw_status_str[st];
    return "unknown firmware image status";
}

/* ---------------------------------------------------------------------------------------- */
/* Versions: "M.m.p", each part 0..255 in decimal without leading zeros.                      */

int fdl_fw_version_parse(const char *s, uint32_t *out)
{
    uint32_t part[3];
    if (!s || !out)
        return -1;
    for (int i = 0; i < 3; i++) {
        unsigned v = 0, digits = 0;
        while (*s >= '0' && *s <= '9') {
            if (digits == 3 || (digits == 1 && v == 0))
                return -1; /* too long, or a leading zero */
            v = v * 10 + (unsigned)(*s - '0');
            digits++;
            s++;
        }
        if (!digits || v > 255)
            return -1;
        part[i] = v;
        if (i < 2 && *s++ != '.')
            return -1;
    }
    if (*s)
        return -1;
    *out = part[0] << 24 | part[1] << 16 | part[2];
    return 0;
}

const char *fdl_fw_version_str(uint32_t v, char *buf, size_t cap)
{
    /* The patch field is 16 bits wide in the packed form; print all of it so that
     * a header with odd bits set is shown as it is, not as a look-alike. */
    if (buf && cap)
        snprintf(buf, cap, "%u.%u.%u", (unsigned)(v >> 24), (unsigned)(v >> 16 & 0xff), (unsigned)(v & 0xffff));
    return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* Header codec.                                                                             */

static uint32_t fw_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void fw_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

fdl_fw_status fdl_fwimage_parse_hdr(const uint8_t *buf, size_t len, fdl_fw_hdr *out)
{
    fdl_fw_hdr h;
    if (!out || (!buf && len))
        return FDL_FW_ERR_ARG;
    if (len < FDL_FW_HDR_LEN)
        return FDL_FW_ERR_SHORT;
    if (memcmp(buf, FDL_FW_MAGIC, 4) != 0)
        return FDL_FW_ERR_MAGIC;
    h.hdr_version = buf[4];
    if (h.hdr_version != FDL_FW_HDR_VERSION)
        return FDL_FW_ERR_HDR_VERSION;
    h.tier = buf[5];
    if (h.tier < FDL_TIER_BOOTLOADER || h.tier > FDL_TIER_KEYRING)
        return FDL_FW_ERR_TIER;
    h.flags = (uint16_t)(buf[6] << 8 | buf[7]);
    if (h.flags != 0)
        return FDL_FW_ERR_FLAGS;
    h.version = fw_get32(buf + 8);
    h.counter = fw_get32(buf + 12);
    h.length = fw_get32(buf + 16);
    if (h.length > FDL_FW_PAYLOAD_MAX)
        return FDL_FW_ERR_LENGTH;
    h.hw_rev = fw_get32(buf + 20);
    memcpy(h.sha256, buf + 24, 32);
    memcpy(h.key_id, buf + 56, FDL_FW_KEYID_LEN);
    memcpy(h.sig, buf + 64, FDL_FW_SIG_LEN);
    *out = h;
    return FDL_FW_OK;
}

fdl_fw_status fdl_fwimage_parse(const uint8_t *buf, size_t len, fdl_fw_hdr *out, const uint8_t **payload)
{
    fdl_fw_hdr h;
    uint8_t sum[32];
    if (!out)
        return FDL_FW_ERR_ARG;
    fdl_fw_status st = fdl_fwimage_parse_hdr(buf, len, &h);
    if (st != FDL_FW_OK)
        return st;
    /* Both directions: a short image is incomplete, a long one smuggles bytes the
     * signature does not cover (endless data). */
    if (len - FDL_FW_HDR_LEN != h.length)
        return FDL_FW_ERR_LENGTH;
    if (mbedtls_sha256(buf + FDL_FW_HDR_LEN, h.length, sum, 0) != 0)
        return FDL_FW_ERR_CRYPTO;
    if (memcmp(sum, h.sha256, 32) != 0)
        return FDL_FW_ERR_HASH;
    *out = h;
    if (payload)
        *payload = buf + FDL_FW_HDR_LEN;
    return FDL_FW_OK;
}

void fdl_fwimage_encode_hdr(const fdl_fw_hdr *h, uint8_t out[FDL_FW_HDR_LEN])
{
    memcpy(out, FDL_FW_MAGIC, 4);
    out[4] = h->hdr_version;
    out[5] = h->tier;
    out[6] = (uint8_t)(h->flags >> 8);
    out[7] = (uint8_t)h->flags;
    fw_put32(out + 8, h->version);
    fw_put32(out + 12, h->counter);
    fw_put32(out + 16, h->length);
    fw_put32(out + 20, h->hw_rev);
    memcpy(out + 24, h->sha256, 32);
    memcpy(out + 56, h->key_id, FDL_FW_KEYID_LEN);
    memcpy(out + 64, h->sig, FDL_FW_SIG_LEN);
}

void fdl_fwimage_signed_hash(const fdl_fw_hdr *h, uint8_t out[32])
{
    uint8_t raw[FDL_FW_HDR_LEN];
    fdl_fwimage_encode_hdr(h, raw);
    /* SHA-256 cannot fail on a memory buffer with the built-in implementation. */
    (void)mbedtls_sha256(raw, FDL_FW_SIGNED_LEN, out, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Keys.                                                                                     */

void fdl_fw_key_hash(const uint8_t pub[FDL_FW_PUB_LEN], uint8_t out[32])
{
    (void)mbedtls_sha256(pub, FDL_FW_PUB_LEN, out, 0);
}

void fdl_fw_key_id(const uint8_t pub[FDL_FW_PUB_LEN], uint8_t id[FDL_FW_KEYID_LEN])
{
    uint8_t sum[32];
    fdl_fw_key_hash(pub, sum);
    memcpy(id, sum, FDL_FW_KEYID_LEN);
}

int fdl_fw_hex_decode(const char *s, uint8_t *out, size_t n, int lower_only)
{
    if (!s || strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < 2 * n; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : !lower_only && c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2)
            out[i / 2] = (uint8_t)(out[i / 2] << 4 | v);
        else
            out[i / 2] = (uint8_t)v;
    }
    return 0;
}

const char *fdl_fw_key_id_hex(const uint8_t id[FDL_FW_KEYID_LEN], char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    if (!buf || !cap)
        return buf;
    size_t n = 0;
    for (size_t i = 0; i < FDL_FW_KEYID_LEN && n + 2 < cap; i++) {
        buf[n++] = hex[id[i] >> 4];
        buf[n++] = hex[id[i] & 15];
    }
    buf[n] = '\0';
    return buf;
}

int fdl_fw_pub_valid(const uint8_t pub[FDL_FW_PUB_LEN])
{
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    int ok = 0;
    if (!pub || pub[0] != 0x04)
        return 0;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    ok = mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) == 0 &&
         mbedtls_ecp_point_read_binary(&grp, &q, pub, FDL_FW_PUB_LEN) == 0 && mbedtls_ecp_check_pubkey(&grp, &q) == 0;
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return ok;
}

fdl_fw_status fdl_fw_ecdsa_verify(const uint8_t pub[FDL_FW_PUB_LEN], const uint8_t hash[32],
                                  const uint8_t sig[FDL_FW_SIG_LEN])
{
    fdl_fw_status st = FDL_FW_ERR_CRYPTO;
    mbedtls_ecp_group grp;
    mbedtls_ecp_point q;
    mbedtls_mpi r, s;
    int rc;

    if (!pub || !hash || !sig)
        return FDL_FW_ERR_ARG;
    mbedtls_ecp_group_init(&grp);
    mbedtls_ecp_point_init(&q);
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    if (mbedtls_ecp_group_load(&grp, MBEDTLS_ECP_DP_SECP256R1) != 0)
        goto cleanup;
    /* A key that is not a point on the curve verifies nothing. */
    if (pub[0] != 0x04 || mbedtls_ecp_point_read_binary(&grp, &q, pub, FDL_FW_PUB_LEN) != 0 ||
        mbedtls_ecp_check_pubkey(&grp, &q) != 0) {
        st = FDL_FW_ERR_SIGNATURE;
        goto cleanup;
    }
    if (mbedtls_mpi_read_binary(&r, sig, 32) != 0 || mbedtls_mpi_read_binary(&s, sig + 32, 32) != 0)
        goto cleanup;
    /* mbedtls_ecdsa_verify refuses r or s outside [1, n-1] itself. */
    rc = mbedtls_ecdsa_verify(&grp, hash, 32, &q, &r, &s);
    if (rc == 0)
        st = FDL_FW_OK;
    else if (rc == MBEDTLS_ERR_ECP_VERIFY_FAILED || rc == MBEDTLS_ERR_ECP_BAD_INPUT_DATA ||
             rc == MBEDTLS_ERR_ECP_INVALID_KEY)
        st = FDL_FW_ERR_SIGNATURE;
cleanup:
    mbedtls_mpi_free(&s);
    mbedtls_mpi_free(&r);
    mbedtls_ecp_point_free(&q);
    mbedtls_ecp_group_free(&grp);
    return st;
}

fdl_fw_status fdl_fwimage_verify_sig(const fdl_fw_hdr *h, const uint8_t pub[FDL_FW_PUB_LEN])
{
    uint8_t id[FDL_FW_KEYID_LEN], hash[32];
    if (!h || !pub)
        return FDL_FW_ERR_ARG;
    /* The key id is signed too, but checking it first makes "signed by another key"
     * cheap and keeps the id honest for whoever looks keys up by it. */
    fdl_fw_key_id(pub, id);
    if (memcmp(id, h->key_id, FDL_FW_KEYID_LEN) != 0)
        return FDL_FW_ERR_SIGNATURE;
    fdl_fwimage_signed_hash(h, hash);
    return fdl_fw_ecdsa_verify(pub, hash, h->sig);
}

/* ---------------------------------------------------------------------------------------- */
/* DER Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } <-> raw r || s.                 */

/* Reads one DER INTEGER at *p (within end) holding a positive value of at most 32
 * bytes, in minimal encoding, into out[32] left-padded. 0 or -1. */
static int fw_der_uint(const uint8_t **p, const uint8_t *end, uint8_t out[32])
{
    const uint8_t *q = *p;
    if (end - q < 2 || q[0] != 0x02)
        return -1;
    size_t n = q[1];
    q += 2;
    if (n == 0 || n > 33 || (size_t)(end - q) < n)
        return -1;
    if (q[0] & 0x80)
        return -1; /* negative */
    if (n > 1 && q[0] == 0 && !(q[1] & 0x80))
        return -1; /* not minimal */
    if (q[0] == 0 && n > 1) {
        q++;
        n--;
    }
    if (n > 32)
        return -1;
    memset(out, 0, 32);
    memcpy(out + 32 - n, q, n);
    *p = q + n;
    return 0;
}

int fdl_fw_sig_from_der(const uint8_t *der, size_t len, uint8_t raw[FDL_FW_SIG_LEN])
{
    uint8_t r[32], s[32];
    if (!der || !raw || len < 2 || der[0] != 0x30)
        return -1;
    /* A P-256 signature is at most 2 + 2 * 35 = 72 bytes: the short length form only. */
    if (der[1] & 0x80 || (size_t)der[1] != len - 2)
        return -1;
    const uint8_t *p = der + 2, *end = der + len;
    if (fw_der_uint(&p, end, r) != 0 || fw_der_uint(&p, end, s) != 0 || p != end)
        return -1;
    memcpy(raw, r, 32);
    memcpy(raw + 32, s, 32);
    return 0;
}

/* Appends one INTEGER for a 32-byte big-endian value; returns bytes written. */
static size_t fw_der_put_uint(const uint8_t v[32], uint8_t *out)
{
    size_t skip = 0;
    while (skip < 31 && v[skip] == 0)
        skip++;
    size_t n = 32 - skip, pad = (v[skip] & 0x80) ? 1 : 0;
    out[0] = 0x02;
    out[1] = (uint8_t)(n + pad);
    if (pad)
        out[2] = 0;
    memcpy(out + 2 + pad, v + skip, n);
    return 2 + pad + n;
}

size_t fdl_fw_sig_to_der(const uint8_t raw[FDL_FW_SIG_LEN], uint8_t *der, size_t cap)
{
    uint8_t tmp[FDL_FW_SIG_DER_MAX];
    if (!raw || !der)
        return 0;
    size_t n = fw_der_put_uint(raw, tmp + 2);
    n += fw_der_put_uint(raw + 32, tmp + 2 + n);
    tmp[0] = 0x30;
    tmp[1] = (uint8_t)n;
    if (n + 2 > cap)
        return 0;
    memcpy(der, tmp, n + 2);
    return n + 2;
}
