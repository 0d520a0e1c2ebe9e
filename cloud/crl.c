/* cloud/crl.c — X.509 v2 CRLs built with mbedtls/asn1write and signed by the issuing CA (see crl.h). */
#include "cloud/crl.h"

#include "sim/alloc.h"
#include "sim/fsutil.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/asn1write.h>
#include <mbedtls/base64.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/sha256.h>

/* Time range RFC 5280 4.1.2.5 can express: 1950-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define CRL_TIME_MIN INT64_C(-631152000)
#define CRL_TIME_MAX INT64_C(253402300799)
/* Upper bounds used by fdl_crl_der_bound, in bytes. One entry: SEQUENCE header 2,
 * INTEGER of up to 33 content bytes + 2, GeneralizedTime 17 = 54; rounded up. */
#define CRL_ENTRY_BOUND 64u
/* Everything but the entries, the issuer name and the key id: version 3,
 * algorithm 12, two times 34, extensions about 40, headers of up to 6 bytes
 * each, signature algorithm and BIT STRING around the largest ECDSA signature. */
#define CRL_FIXED_BOUND (256u + MBEDTLS_ECDSA_MAX_LEN)
/* Initial capacity of the entry list while collecting from the registry. */
#define CRL_LIST_INITIAL 16u

/* ecdsa-with-SHA256 AlgorithmIdentifier: SEQUENCE { OID 1.2.840.10045.4.3.2 }, no parameters (RFC 5758 3.2). */
static const unsigned char ALG_ECDSA_SHA256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                                 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};

static const char PEM_BEGIN_CRL[] = "-----BEGIN X509 CRL-----\n";
static const char PEM_END_CRL[] = "-----END X509 CRL-----\n";

/* ---------------------------------------------------------------------------------------- */
/* Status strings and the per-thread detail of the last failure.                             */

static const char *const status_str[] = {
    [FDL_CRL_OK] = "ok",
    [FDL_CRL_ERR_ARG] = "invalid argument",
    [FDL_CRL_ERR_NOMEM] = "out of memory",
    [FDL_CRL_ERR_LIMIT] = "too many CRL entries",
    [FDL_CRL_ERR_SMALL] = "output buffer too small",
    [FDL_CRL_ERR_CRYPTO] = "hashing, signing or encoding failed",
    [FDL_CRL_ERR_MISMATCH] = "issuer key, certificate and registry record do not fit together",
    [FDL_CRL_ERR_NOT_FOUND] = "issuer CA not registered",
    [FDL_CRL_ERR_REGISTRY] = "registry error",
    [FDL_CRL_ERR_IO] = "CRL file could not be written",
};

const char *fdl_crl_strerror(fdl_crl_status st)
{
    if ((unsigned)st < sizeof status_str / sizeof status_str[0] && status_str[st])
        return status_str[st];
    return "unknown fdl_crl status";
}

static _Thread_local char last_err[512];

const char *fdl_crl_last_error(void)
{
    return last_err;
}

/* Records the detail of a failure and returns st, so callers write `st = fail(...)`. */
__attribute__((format(printf, 2, 3)))
static fdl_crl_status fail(fdl_crl_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_err, sizeof last_err, fmt, ap);
    va_end(ap);
    return st;
}

static const char *mbed_err(int rc, char *buf, size_t cap)
{
    mbedtls_strerror(rc, buf, cap);
    return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* Entries.                                                                                  */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

fdl_crl_status fdl_crl_entry_from_hex(fdl_crl_entry *e, const char *serial_hex, int64_t revoked_at)
{
    fdl_crl_status st = FDL_CRL_ERR_ARG;
    size_t n, odd;

    last_err[0] = '\0';
    if (!e) {
        st = fail(FDL_CRL_ERR_ARG, "entry is required");
        goto cleanup;
    }
    memset(e, 0, sizeof *e);
    n = serial_hex ? strnlen(serial_hex, 2 * FDL_CRL_SERIAL_MAX + 1) : 0;
    if (n == 0 || n > 2 * FDL_CRL_SERIAL_MAX) {
        st = fail(FDL_CRL_ERR_ARG, "serial must be 1..%d hex digits", 2 * FDL_CRL_SERIAL_MAX);
        goto cleanup;
    }
    /* An odd count has an implicit leading '0': "abc" is 0x0a 0xbc. */
    odd = n & 1;
    for (size_t i = 0; i < n; i++) {
        int v = hexval((unsigned char)serial_hex[i]);
        size_t pos = i + odd;
        if (v < 0) {
            memset(e, 0, sizeof *e);
            st = fail(FDL_CRL_ERR_ARG, "serial: '%c' at %zu is not a hex digit",
                      (serial_hex[i] >= 0x20 && serial_hex[i] < 0x7f) ? serial_hex[i] : '?', i);
            goto cleanup;
        }
        e->serial[pos / 2] = (uint8_t)(e->serial[pos / 2] | (pos & 1 ? v : v << 4));
    }
    e->serial_len = (n + odd) / 2;
    e->revoked_at = revoked_at;
    st = FDL_CRL_OK;
cleanup:
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* DER pieces. Each writer follows mbedtls/asn1write.h: it writes backwards below *p, never   */
/* below start, and returns the number of bytes written or a negative mbedTLS error.          */

/* A non-negative INTEGER from a big-endian magnitude, in minimal DER. */
static int write_uint_be(unsigned char **p, const unsigned char *start, const uint8_t *mag, size_t len)
{
    int ret, n = 0;
    while (len > 1 && mag[0] == 0) {
        mag++;
        len--;
    }
    MBEDTLS_ASN1_CHK_ADD(n, mbedtls_asn1_write_raw_buffer(p, start, mag, len));
    if (mag[0] & 0x80) {
        /* The top bit would make it negative: a 0x00 keeps it positive. */
        if (*p - start < 1)
            return MBEDTLS_ERR_ASN1_BUF_TOO_SMALL;
        *--(*p) = 0x00;
        n++;
    }
    MBEDTLS_ASN1_CHK_ADD(n, mbedtls_asn1_write_len(p, start, (size_t)n));
    MBEDTLS_ASN1_CHK_ADD(n, mbedtls_asn1_write_tag(p, start, MBEDTLS_ASN1_INTEGER));
    return n;
}

static int write_u64(unsigned char **p, const unsigned char *start, uint64_t v)
{
    uint8_t be[8];
    for (int i = 7; i >= 0; i--) {
        be[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
    return write_uint_be(p, start, be, sizeof be);
}

static int time_ok(int64_t t)
{
    return t >= CRL_TIME_MIN && t <= CRL_TIME_MAX;
}

/* UTCTime for 1950..2049, GeneralizedTime from 2050 (RFC 5280 4.1.2.5). t must pass time_ok. */
static int write_time(unsigned char **p, const unsigned char *start, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char s[16];
    int year, len, tag;

    if ((int64_t)tt != t || !gmtime_r(&tt, &tm))
        return MBEDTLS_ERR_ASN1_INVALID_DATA;
    year = tm.tm_year + 1900;
    if (year < 2050) {
        tag = MBEDTLS_ASN1_UTC_TIME;
        len = snprintf(s, sizeof s, "%02d%02d%02d%02d%02d%02dZ", year % 100, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec);
    } else {
        tag = MBEDTLS_ASN1_GENERALIZED_TIME;
        len = snprintf(s, sizeof s, "%04d%02d%02d%02d%02d%02dZ", year, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                       tm.tm_min, tm.tm_sec);
    }
    if (len <= 0 || (size_t)len >= sizeof s)
        return MBEDTLS_ERR_ASN1_INVALID_DATA;
    return mbedtls_asn1_write_tagged_string(p, start, tag, s, (size_t)len);
}

/* Wraps the n bytes just written in a header with this tag. */
static int wrap(unsigned char **p, const unsigned char *start, size_t n, unsigned char tag)
{
    int ret, h = 0;
    MBEDTLS_ASN1_CHK_ADD(h, mbedtls_asn1_write_len(p, start, n));
    MBEDTLS_ASN1_CHK_ADD(h, mbedtls_asn1_write_tag(p, start, tag));
    return h;
}

/* Extension ::= SEQUENCE { extnID OID, extnValue OCTET STRING } around the
 * value_len bytes just written (critical is absent, i.e. FALSE). */
static int wrap_extension(unsigned char **p, const unsigned char *start, size_t value_len, const char *oid,
                          size_t oid_len)
{
    int ret;
    size_t n = value_len;
    MBEDTLS_ASN1_CHK_ADD(n, wrap(p, start, n, MBEDTLS_ASN1_OCTET_STRING));
    MBEDTLS_ASN1_CHK_ADD(n, mbedtls_asn1_write_oid(p, start, oid, oid_len));
    MBEDTLS_ASN1_CHK_ADD(n, wrap(p, start, n, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE));
    return (int)(n - value_len);
}

/* The whole tbsCertList. */
typedef struct tbs_args {
    const mbedtls_x509_crt *issuer;
    const fdl_crl_entry *entries;
    size_t n;
    uint64_t crl_number;
    int64_t this_update, next_update;
} tbs_args;

static int write_tbs(unsigned char **p, const unsigned char *start, const tbs_args *a)
{
    const unsigned char seq = MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE;
    int ret;
    size_t len = 0, ext = 0, v;

    /* crlExtensions [0] EXPLICIT Extensions, written last-first: cRLNumber, then AKI. */
    v = 0;
    MBEDTLS_ASN1_CHK_ADD(v, write_u64(p, start, a->crl_number));
    MBEDTLS_ASN1_CHK_ADD(v, wrap_extension(p, start, v, MBEDTLS_OID_CRL_NUMBER,
                                           MBEDTLS_OID_SIZE(MBEDTLS_OID_CRL_NUMBER)));
    ext += v;
    /* AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING } */
    v = 0;
    MBEDTLS_ASN1_CHK_ADD(v, mbedtls_asn1_write_raw_buffer(p, start, a->issuer->subject_key_id.p,
                                                          a->issuer->subject_key_id.len));
    MBEDTLS_ASN1_CHK_ADD(v, wrap(p, start, v, MBEDTLS_ASN1_CONTEXT_SPECIFIC | 0));
    MBEDTLS_ASN1_CHK_ADD(v, wrap(p, start, v, seq));
    MBEDTLS_ASN1_CHK_ADD(v, wrap_extension(p, start, v, MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER,
                                           MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER)));
    ext += v;
    MBEDTLS_ASN1_CHK_ADD(ext, wrap(p, start, ext, seq));
    MBEDTLS_ASN1_CHK_ADD(ext, wrap(p, start, ext, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 0));
    len += ext;

    /* revokedCertificates: absent when empty (RFC 5280 5.1.2.6), entries in the given order. */
    if (a->n > 0) {
        size_t all = 0;
        for (size_t i = a->n; i-- > 0;) {
            const fdl_crl_entry *e = &a->entries[i];
            size_t one = 0;
            MBEDTLS_ASN1_CHK_ADD(one, write_time(p, start, e->revoked_at));
            MBEDTLS_ASN1_CHK_ADD(one, write_uint_be(p, start, e->serial, e->serial_len));
            MBEDTLS_ASN1_CHK_ADD(one, wrap(p, start, one, seq));
            all += one;
        }
        MBEDTLS_ASN1_CHK_ADD(all, wrap(p, start, all, seq));
        len += all;
    }
    MBEDTLS_ASN1_CHK_ADD(len, write_time(p, start, a->next_update));
    MBEDTLS_ASN1_CHK_ADD(len, write_time(p, start, a->this_update));
    /* The issuer's subject exactly as its certificate encodes it: verifiers match
     * the CRL to the certificate by comparing names. */
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, a->issuer->subject_raw.p,
                                                            a->issuer->subject_raw.len));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_raw_buffer(p, start, ALG_ECDSA_SHA256, sizeof ALG_ECDSA_SHA256));
    MBEDTLS_ASN1_CHK_ADD(len, mbedtls_asn1_write_int(p, start, 1)); /* v2 */
    MBEDTLS_ASN1_CHK_ADD(len, wrap(p, start, len, seq));
    if (len > INT_MAX)
        return MBEDTLS_ERR_ASN1_INVALID_LENGTH;
    return (int)len;
}

/* Bytes of a DER header (tag + length) for content_len bytes of content. */
static size_t der_header_len(size_t content_len)
{
    size_t h = 2; /* tag, and the length itself or 0x80 | count of length bytes */
    if (content_len > 0x7f)
        for (size_t l = content_len; l > 0; l >>= 8)
            h++;
    return h;
}

/* ---------------------------------------------------------------------------------------- */
/* Building.                                                                                  */

size_t fdl_crl_der_bound(const mbedtls_x509_crt *issuer, size_t n)
{
    if (!issuer || n > FDL_CRL_ENTRIES_MAX)
        return 0;
    return CRL_FIXED_BOUND + issuer->subject_raw.len + issuer->subject_key_id.len + n * CRL_ENTRY_BOUND;
}

/* What fdl_crl_build requires of its issuer certificate and key. */
static fdl_crl_status check_issuer(const mbedtls_x509_crt *issuer, mbedtls_pk_context *key)
{
    mbedtls_pk_type_t t = mbedtls_pk_get_type(key);
    if (t != MBEDTLS_PK_ECKEY && t != MBEDTLS_PK_ECDSA && t != MBEDTLS_PK_OPAQUE)
        return fail(FDL_CRL_ERR_ARG, "issuer key: type %d cannot sign ECDSA", (int)t);
    if (!mbedtls_pk_can_do(&issuer->pk, MBEDTLS_PK_ECDSA))
        return fail(FDL_CRL_ERR_ARG, "issuer certificate: key is not EC (only ecdsa-with-SHA256 is written)");
    if (!issuer->subject_raw.p || issuer->subject_raw.len == 0)
        return fail(FDL_CRL_ERR_ARG, "issuer certificate: no subject");
    /* RFC 5280 5.2.1: a CRL MUST carry the AKI; OpenSSL picks the CRL of an issuer by it. */
    if (!issuer->subject_key_id.p || issuer->subject_key_id.len == 0)
        return fail(FDL_CRL_ERR_ARG, "issuer certificate has no subjectKeyIdentifier");
    if (mbedtls_x509_crt_check_key_usage(issuer, MBEDTLS_X509_KU_CRL_SIGN) != 0)
        return fail(FDL_CRL_ERR_ARG, "issuer certificate's keyUsage lacks cRLSign");
    return FDL_CRL_OK;
}

fdl_crl_status fdl_crl_build(const mbedtls_x509_crt *issuer, mbedtls_pk_context *issuer_key,
                             const fdl_crl_entry *entries, size_t n, uint64_t crl_number, time_t this_update,
                             time_t next_update, int (*f_rng)(void *, unsigned char *, size_t), void *p_rng,
                             unsigned char *buf, size_t cap, size_t *der_len)
{
    fdl_crl_status st = FDL_CRL_ERR_ARG;
    unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    unsigned char hash[32];
    unsigned char *p, *tbs;
    size_t sig_len = 0, tbs_len, content, total;
    char eb[100];
    int rc;
    tbs_args a = {.issuer = issuer, .entries = entries, .n = n, .crl_number = crl_number,
                  .this_update = (int64_t)this_update, .next_update = (int64_t)next_update};

    last_err[0] = '\0';
    if (der_len)
        *der_len = 0;
    if (!issuer || !issuer_key || (!entries && n > 0) || !f_rng || !buf || !der_len) {
        st = fail(FDL_CRL_ERR_ARG, "issuer, key, entries, f_rng, buf and der_len are required");
        goto cleanup;
    }
    if (n > FDL_CRL_ENTRIES_MAX) {
        st = fail(FDL_CRL_ERR_LIMIT, "%zu entries, at most %u", n, FDL_CRL_ENTRIES_MAX);
        goto cleanup;
    }
    if ((st = check_issuer(issuer, issuer_key)) != FDL_CRL_OK)
        goto cleanup;
    if (!time_ok(a.this_update) || !time_ok(a.next_update) || a.next_update <= a.this_update) {
        st = fail(FDL_CRL_ERR_ARG, "thisUpdate %lld, nextUpdate %lld: need 1950 <= this < next <= 9999",
                  (long long)a.this_update, (long long)a.next_update);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        if (entries[i].serial_len == 0 || entries[i].serial_len > FDL_CRL_SERIAL_MAX) {
            st = fail(FDL_CRL_ERR_ARG, "entry %zu: serial of %zu bytes (1..%d)", i, entries[i].serial_len,
                      FDL_CRL_SERIAL_MAX);
            goto cleanup;
        }
        if (!time_ok(entries[i].revoked_at)) {
            st = fail(FDL_CRL_ERR_ARG, "entry %zu: revocation time %lld outside 1950..9999", i,
                      (long long)entries[i].revoked_at);
            goto cleanup;
        }
    }

    /* The TBS part goes at the end of buf first; only once it fits is it signed. */
    p = buf + cap;
    rc = write_tbs(&p, buf, &a);
    if (rc == MBEDTLS_ERR_ASN1_BUF_TOO_SMALL) {
        st = fail(FDL_CRL_ERR_SMALL, "%zu bytes cannot hold the CRL (%zu always do)", cap,
                  fdl_crl_der_bound(issuer, n));
        goto cleanup;
    }
    if (rc < 0) {
        st = fail(FDL_CRL_ERR_CRYPTO, "encoding the CRL: %s", mbed_err(rc, eb, sizeof eb));
        goto cleanup;
    }
    tbs = p;
    tbs_len = (size_t)rc;

    st = FDL_CRL_ERR_CRYPTO;
    if ((rc = mbedtls_sha256(tbs, tbs_len, hash, 0)) != 0) {
        st = fail(FDL_CRL_ERR_CRYPTO, "SHA-256: %s", mbed_err(rc, eb, sizeof eb));
        goto cleanup;
    }
    if ((rc = mbedtls_pk_sign(issuer_key, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sizeof sig, &sig_len, f_rng,
                              p_rng)) != 0) {
        st = fail(FDL_CRL_ERR_CRYPTO, "signing the CRL: %s", mbed_err(rc, eb, sizeof eb));
        goto cleanup;
    }
    /* A CRL that does not verify makes OpenSSL refuse every client of the issuer:
     * check it here, against the certificate, rather than at the broker. The
     * cast: mbedtls_pk_verify takes a non-const context but does not modify it. */
    if (mbedtls_pk_verify((mbedtls_pk_context *)&issuer->pk, MBEDTLS_MD_SHA256, hash, sizeof hash, sig,
                          sig_len) != 0) {
        st = fail(FDL_CRL_ERR_MISMATCH, "the CRL signature does not verify under the issuer certificate");
        goto cleanup;
    }

    /* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue BIT STRING } */
    content = tbs_len + sizeof ALG_ECDSA_SHA256 + der_header_len(sig_len + 1) + sig_len + 1;
    total = der_header_len(content) + content;
    if (total > cap) {
        st = fail(FDL_CRL_ERR_SMALL, "the CRL needs %zu bytes, buffer has %zu", total, cap);
        goto cleanup;
    }
    memmove(buf + der_header_len(content), tbs, tbs_len);
    p = buf + total;
    if ((rc = mbedtls_asn1_write_bitstring(&p, buf, sig, sig_len * 8)) < 0 ||
        (rc = mbedtls_asn1_write_raw_buffer(&p, buf, ALG_ECDSA_SHA256, sizeof ALG_ECDSA_SHA256)) < 0 ||
        p != buf + der_header_len(content) + tbs_len) {
        st = fail(FDL_CRL_ERR_CRYPTO, "encoding the signature (%d)", rc);
        goto cleanup;
    }
    p = buf + der_header_len(content);
    if ((rc = wrap(&p, buf, content, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE)) < 0 || p != buf) {
        st = fail(FDL_CRL_ERR_CRYPTO, "encoding the CRL header (%d)", rc);
        goto cleanup;
    }
    *der_len = total;
    st = FDL_CRL_OK;
cleanup:
    if (st != FDL_CRL_OK && buf && cap > 0)
        memset(buf, 0, cap);
    if (st == FDL_CRL_ERR_SMALL && der_len)
        *der_len = fdl_crl_der_bound(issuer, n);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Publishing from the registry.                                                              */

typedef struct collect {
    fdl_crl_entry *list; /* owned; fdl_free */
    size_t n, cap;
    fdl_crl_status st;   /* why collecting stopped, if it did */
} collect;

static int collect_cb(void *ctx, const char *serial, int64_t revoked_at)
{
    collect *c = ctx;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? 2 * c->cap : CRL_LIST_INITIAL;
        fdl_crl_entry *nl;
        if (c->n >= FDL_CRL_ENTRIES_MAX) {
            c->st = fail(FDL_CRL_ERR_LIMIT, "the CA has more than %u revoked certificates", FDL_CRL_ENTRIES_MAX);
            return 1;
        }
        if (ncap > FDL_CRL_ENTRIES_MAX)
            ncap = FDL_CRL_ENTRIES_MAX;
        nl = fdl_realloc(c->list, ncap * sizeof *nl);
        if (!nl) {
            c->st = fail(FDL_CRL_ERR_NOMEM, "CRL entry list of %zu", ncap);
            return 1;
        }
        c->list = nl;
        c->cap = ncap;
    }
    if (fdl_crl_entry_from_hex(&c->list[c->n], serial, revoked_at) != FDL_CRL_OK) {
        c->st = fail(FDL_CRL_ERR_REGISTRY, "the registry holds a malformed serial");
        return 1;
    }
    c->n++;
    return 0;
}

static fdl_crl_status reg_fail(fdl_registry *reg, fdl_reg_status rs, const char *what)
{
    fdl_crl_status st = rs == FDL_REG_ERR_NOMEM       ? FDL_CRL_ERR_NOMEM
                        : rs == FDL_REG_ERR_NOT_FOUND ? FDL_CRL_ERR_NOT_FOUND
                                                      : FDL_CRL_ERR_REGISTRY;
    return fail(st, "registry, %s: %s (%s)", what, fdl_reg_strerror(rs), fdl_registry_last_error(reg));
}

/* Which registered CA the issuer certificate is; ca_id 0 = whichever it is. */
static fdl_crl_status resolve_ca(fdl_registry *reg, const mbedtls_x509_crt *issuer, int64_t *ca_id)
{
    char fp[FDL_REG_FP_HEX_LEN + 1];
    int64_t found = 0;
    fdl_reg_status rs = fdl_registry_fingerprint(issuer->raw.p, issuer->raw.len, fp);
    if (rs == FDL_REG_OK)
        rs = fdl_registry_ca_find(reg, fp, &found, NULL);
    if (rs == FDL_REG_ERR_NOT_FOUND)
        return fail(FDL_CRL_ERR_NOT_FOUND, "the issuer certificate (%.16s...) is not a registered CA", fp);
    if (rs != FDL_REG_OK)
        return reg_fail(reg, rs, "finding the issuer CA");
    if (*ca_id != 0 && *ca_id != found)
        return fail(FDL_CRL_ERR_MISMATCH, "ca_id %lld is not the issuer certificate's record (%lld)",
                    (long long)*ca_id, (long long)found);
    *ca_id = found;
    return FDL_CRL_OK;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

fdl_crl_status fdl_crl_publish(fdl_registry *reg, int64_t ca_id, fdl_pki *pki, unsigned next_update_s,
                               const char *pem_path, size_t *n_revoked)
{
    fdl_crl_status st = FDL_CRL_ERR_ARG;
    collect c = {.list = NULL, .n = 0, .cap = 0, .st = FDL_CRL_OK};
    unsigned char *der = NULL, *pem = NULL;
    size_t der_cap = 0, der_len = 0, pem_len = 0;
    const mbedtls_x509_crt *issuer;
    fdl_reg_status rs;
    int64_t ms;
    time_t now;
    int rc;

    last_err[0] = '\0';
    if (n_revoked)
        *n_revoked = 0;
    if (!reg || !pki || !pem_path || ca_id < 0) {
        st = fail(FDL_CRL_ERR_ARG, "registry, pki and pem_path are required");
        goto cleanup;
    }
    issuer = fdl_pki_chain(pki);
    if ((st = resolve_ca(reg, issuer, &ca_id)) != FDL_CRL_OK)
        goto cleanup;
    rs = fdl_registry_crl_serials(reg, ca_id, collect_cb, &c);
    if (c.st != FDL_CRL_OK) {
        st = c.st;
        goto cleanup;
    }
    if (rs != FDL_REG_OK) {
        st = reg_fail(reg, rs, "listing revoked serials");
        goto cleanup;
    }

    der_cap = fdl_crl_der_bound(issuer, c.n);
    der = fdl_malloc(der_cap);
    if (!der) {
        st = fail(FDL_CRL_ERR_NOMEM, "CRL of %zu bytes", der_cap);
        goto cleanup;
    }
    ms = now_ms();
    now = (time_t)(ms / 1000);
    if ((st = fdl_crl_build(issuer, fdl_pki_key(pki), c.list, c.n, (uint64_t)ms, now,
                            now + (time_t)(next_update_s ? next_update_s : FDL_CRL_NEXT_UPDATE_S), fdl_pki_random,
                            pki, der, der_cap, &der_len)) != FDL_CRL_OK)
        goto cleanup;

    /* First call: how long the PEM is (mbedTLS reports it with BUFFER_TOO_SMALL). */
    rc = mbedtls_pem_write_buffer(PEM_BEGIN_CRL, PEM_END_CRL, der, der_len, NULL, 0, &pem_len);
    if (rc != MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL || pem_len == 0) {
        st = fail(FDL_CRL_ERR_CRYPTO, "PEM encoding failed (%d)", rc);
        goto cleanup;
    }
    pem = fdl_malloc(pem_len);
    if (!pem) {
        st = fail(FDL_CRL_ERR_NOMEM, "PEM of %zu bytes", pem_len);
        goto cleanup;
    }
    if ((rc = mbedtls_pem_write_buffer(PEM_BEGIN_CRL, PEM_END_CRL, der, der_len, pem, pem_len, &pem_len)) != 0) {
        st = fail(FDL_CRL_ERR_CRYPTO, "PEM encoding failed (%d)", rc);
        goto cleanup;
    }
    /* pem_len counts the terminating NUL, which does not go into the file. */
    rc = fdl_write_file_atomic(pem_path, pem, pem_len - 1, 0644);
    if (rc != 0) {
        st = fail(rc == -ENAMETOOLONG ? FDL_CRL_ERR_ARG : FDL_CRL_ERR_IO, "write %s: %s", pem_path,
                  strerror(-rc));
        goto cleanup;
    }
    if (n_revoked)
        *n_revoked = c.n;
    st = FDL_CRL_OK;
cleanup:
    fdl_free(pem);
    fdl_free(der);
    fdl_free(c.list);
    return st;
}
