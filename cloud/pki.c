/* cloud/pki.c — the fleet CA: hierarchy setup and leaf issuance with mbedTLS x509write (see pki.h). */
#include "cloud/pki.h"

#include "sim/alloc.h"
#include "sim/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <psa/crypto.h>

/* Ceiling on any file we read back (a certificate chain or a key is a few KiB). */
#define PKI_FILE_MAX (64u * 1024u)
/* Ceiling on validity so not_after stays far from time_t and X.509 limits. */
#define PKI_DAYS_MAX 36500u
/* Longest CA name prefix (fdl_pki_opts.name). */
#define PKI_NAME_MAX 32
/* DER SubjectPublicKeyInfo of a P-256 key is 91 bytes; room to spare. */
#define PKI_SPKI_MAX 256
/* Token PINs: 16 random bytes as hex. */
#define PKI_PIN_BYTES 16
#define PKI_PIN_HEX (2 * PKI_PIN_BYTES)
/* Device id the self-test leaf carries (never written anywhere). */
#define PKI_SELFTEST_ID "fdl-pki-selftest"

static const char PEM_BEGIN_CRT[] = "-----BEGIN CERTIFICATE-----\n";
static const char PEM_END_CRT[] = "-----END CERTIFICATE-----\n";

struct fdl_pki {
    mbedtls_x509_crt chain;         /* issuer certificate first, then the rest of its chain */
    char issuer_name[256];          /* the issuer's subject as a string, for set_issuer_name */
    mbedtls_pk_context *key;        /* the issuer key: &own_key, fdl_se_key_pk(se_key) or borrowed */
    fdl_se_key *se_key;             /* owned token key, or NULL */
    mbedtls_pk_context own_key;     /* owned software key (fdl_pki_open_soft), else empty */
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    uint64_t issued;
};

/* ---------------------------------------------------------------------------------------- */
/* Status strings and the per-thread detail of the last failure.                             */

static const char *const status_str[] = {
    [FDL_PKI_OK] = "ok",
    [FDL_PKI_ERR_ARG] = "invalid argument",
    [FDL_PKI_ERR_NOMEM] = "out of memory",
    [FDL_PKI_ERR_IO] = "file or directory error",
    [FDL_PKI_ERR_NOT_FOUND] = "no PKI there (file, token or key missing)",
    [FDL_PKI_ERR_PARSE] = "file does not hold a valid certificate, key or PIN",
    [FDL_PKI_ERR_MISMATCH] = "existing PKI pieces do not fit together",
    [FDL_PKI_ERR_PERM] = "secret file readable by group or others",
    [FDL_PKI_ERR_TOKEN] = "secure element error",
    [FDL_PKI_ERR_CRYPTO] = "mbedTLS key generation, signing or encoding failed",
    [FDL_PKI_ERR_SMALL] = "output buffer too small",
};

const char *fdl_pki_strerror(fdl_pki_status st)
{
    if ((unsigned)st < sizeof status_str / sizeof status_str[0] && status_str[st])
        return status_str[st];
    return "unknown fdl_pki status";
}

static _Thread_local char last_err[512];

const char *fdl_pki_last_error(void)
{
    return last_err;
}

/* Records the detail of a failure and returns st, so callers write `st = fail(...)`. */
__attribute__((format(printf, 2, 3)))
static fdl_pki_status fail(fdl_pki_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_err, sizeof last_err, fmt, ap);
    va_end(ap);
    return st;
}

/* Formats an mbedTLS error code for fail(). */
static const char *mbed_err(int rc, char *buf, size_t cap)
{
    mbedtls_strerror(rc, buf, cap);
    return buf;
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers: paths, files, randomness, key comparison.                                  */

static fdl_pki_status join(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return fail(FDL_PKI_ERR_ARG, "path too long: %s/%s", dir, name);
    return FDL_PKI_OK;
}

/* mkdir -p with mode 0700 for every directory it creates. */
static fdl_pki_status ensure_dir(const char *dir)
{
    int r = fdl_mkdir_p(dir, 0700);
    if (r != 0)
        return fail(r == -EINVAL || r == -ENAMETOOLONG ? FDL_PKI_ERR_ARG : FDL_PKI_ERR_IO, "mkdir %s: %s", dir,
                    strerror(-r));
    return FDL_PKI_OK;
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/*
 * Reads a whole file (at most PKI_FILE_MAX bytes) into a new NUL-terminated
 * buffer: *out is owned by the caller (fdl_free; wipe first if secret). secret:
 * refuse a file that group or others may read. FDL_PKI_ERR_NOT_FOUND if absent.
 */
static fdl_pki_status read_file(const char *path, int secret, unsigned char **out, size_t *len)
{
    static const fdl_pki_status map[] = {
        [FDL_READ_OK] = FDL_PKI_OK,           [FDL_READ_NOT_FOUND] = FDL_PKI_ERR_NOT_FOUND,
        [FDL_READ_IO] = FDL_PKI_ERR_IO,       [FDL_READ_PERM] = FDL_PKI_ERR_PERM,
        [FDL_READ_SIZE] = FDL_PKI_ERR_PARSE,  [FDL_READ_NOMEM] = FDL_PKI_ERR_NOMEM,
    };
    char why[PATH_MAX + 128];
    fdl_read_status rs = fdl_read_file(path, PKI_FILE_MAX, secret, out, len, why, sizeof why);
    return rs == FDL_READ_OK ? FDL_PKI_OK : fail(map[rs], "%s", why);
}

static void free_secret(unsigned char *buf, size_t len)
{
    if (buf) {
        fdl_wipe(buf, len);
        fdl_free(buf);
    }
}

/* Atomic replacement of path (see sim/fsutil.h). */
static fdl_pki_status write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int r = fdl_write_file_atomic(path, data, len, mode);
    if (r != 0)
        return fail(r == -ENAMETOOLONG ? FDL_PKI_ERR_ARG : FDL_PKI_ERR_IO, "write %s: %s", path, strerror(-r));
    return FDL_PKI_OK;
}

/* An entropy source + CTR-DRBG pair. */
typedef struct pki_rng {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
} pki_rng;

static fdl_pki_status rng_seed(mbedtls_entropy_context *e, mbedtls_ctr_drbg_context *d)
{
    static const char pers[] = "fleetdrill-pki";
    char eb[100];
    int rc;

    /* TLS 1.3 and some PK paths in mbedTLS 3.6 go through PSA; init is idempotent. */
    if (psa_crypto_init() != PSA_SUCCESS)
        return fail(FDL_PKI_ERR_CRYPTO, "psa_crypto_init failed");
    rc = mbedtls_ctr_drbg_seed(d, mbedtls_entropy_func, e, (const unsigned char *)pers, sizeof pers - 1);
    if (rc != 0)
        return fail(FDL_PKI_ERR_CRYPTO, "seeding the DRBG: %s", mbed_err(rc, eb, sizeof eb));
    return FDL_PKI_OK;
}

static void rng_init(pki_rng *r)
{
    mbedtls_entropy_init(&r->entropy);
    mbedtls_ctr_drbg_init(&r->drbg);
}

static void rng_free(pki_rng *r)
{
    mbedtls_ctr_drbg_free(&r->drbg);
    mbedtls_entropy_free(&r->entropy);
}

static int is_p256(const mbedtls_pk_context *pk)
{
    if (mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY)
        return 0;
    return mbedtls_ecp_keypair_get_group_id(mbedtls_pk_ec(*pk)) == MBEDTLS_ECP_DP_SECP256R1;
}

/* 1 if both contexts hold the same public key (compared as DER SubjectPublicKeyInfo). */
static int same_public_key(const mbedtls_pk_context *a, const mbedtls_pk_context *b)
{
    unsigned char da[PKI_SPKI_MAX], db[PKI_SPKI_MAX];
    int la = mbedtls_pk_write_pubkey_der(a, da, sizeof da);
    int lb = mbedtls_pk_write_pubkey_der(b, db, sizeof db);
    if (la <= 0 || lb <= 0 || la != lb)
        return 0;
    /* DER is written at the end of the buffer. */
    return memcmp(da + sizeof da - (size_t)la, db + sizeof db - (size_t)lb, (size_t)la) == 0;
}

static int valid_device_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > FDL_PKI_DEVICE_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int valid_ca_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > PKI_NAME_MAX || name[0] == ' ')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-' || c == ' '))
            return 0;
    }
    return 1;
}

static fdl_pki_status der_to_pem(const unsigned char *der, size_t len, unsigned char *buf, size_t cap,
                                 size_t *pem_len)
{
    size_t olen = 0;
    int rc = mbedtls_pem_write_buffer(PEM_BEGIN_CRT, PEM_END_CRT, der, len, buf, cap, &olen);
    if (rc == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL)
        return fail(FDL_PKI_ERR_SMALL, "PEM needs %zu bytes, buffer has %zu", olen, cap);
    if (rc != 0)
        return fail(FDL_PKI_ERR_CRYPTO, "PEM encoding failed (%d)", rc);
    *pem_len = olen - 1; /* olen counts the NUL */
    return FDL_PKI_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Building one certificate.                                                                 */

/* What goes into a certificate besides its keys. */
typedef struct cert_spec {
    char subject[128];        /* mbedTLS name string, e.g. "CN=fleetdrill Root CA" */
    int is_ca;
    int pathlen;              /* -1: no pathLenConstraint */
    unsigned key_usage;       /* MBEDTLS_X509_KU_* */
    const char *eku_oid;      /* MBEDTLS_OID_SERVER_AUTH / CLIENT_AUTH, or NULL */
    size_t eku_len;
    int server_sans;          /* 1: SAN DNS:localhost, IP:127.0.0.1 */
    time_t not_before;
    unsigned days;
} cert_spec;

static fdl_pki_status fmt_time(time_t t, char out[16])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1950)
        return fail(FDL_PKI_ERR_ARG, "validity outside 1950..9999");
    snprintf(out, 16, "%04d%02d%02d%02d%02d%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
    return FDL_PKI_OK;
}

/*
 * Builds and signs one certificate. subject_key: only its public half is read.
 * issuer_key signs (a token key signs through C_Sign); issuer_name is the
 * issuer's subject string (the subject itself for a self-signed root). The DER
 * lands at der[0..*der_len); serial (may be NULL) receives the serial number.
 */
static fdl_pki_status make_cert(const cert_spec *s, mbedtls_pk_context *subject_key,
                                mbedtls_pk_context *issuer_key, const char *issuer_name,
                                mbedtls_ctr_drbg_context *drbg, unsigned char *der, size_t cap,
                                size_t *der_len, uint8_t serial[FDL_PKI_SERIAL_LEN])
{
    fdl_pki_status st = FDL_PKI_ERR_CRYPTO;
    mbedtls_x509write_cert w;
    unsigned char sn[FDL_PKI_SERIAL_LEN];
    char nb[16], na[16], eb[100];
    const char *step = "serial";
    int rc;

    mbedtls_x509write_crt_init(&w);
    if ((st = fmt_time(s->not_before, nb)) != FDL_PKI_OK ||
        (st = fmt_time(s->not_before + (time_t)s->days * 86400, na)) != FDL_PKI_OK)
        goto cleanup;
    st = FDL_PKI_ERR_CRYPTO;
    rc = mbedtls_ctr_drbg_random(drbg, sn, sizeof sn);
    if (rc != 0)
        goto mbed_fail;
    /* Positive (top bit clear) and exactly 16 bytes long (second bit set). */
    sn[0] = (unsigned char)((sn[0] & 0x3f) | 0x40);

    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, subject_key);
    mbedtls_x509write_crt_set_issuer_key(&w, issuer_key);
    step = "serial";
    if ((rc = mbedtls_x509write_crt_set_serial_raw(&w, sn, sizeof sn)) != 0)
        goto mbed_fail;
    step = "validity";
    if ((rc = mbedtls_x509write_crt_set_validity(&w, nb, na)) != 0)
        goto mbed_fail;
    step = "subject name";
    if ((rc = mbedtls_x509write_crt_set_subject_name(&w, s->subject)) != 0)
        goto mbed_fail;
    step = "issuer name";
    if ((rc = mbedtls_x509write_crt_set_issuer_name(&w, issuer_name)) != 0)
        goto mbed_fail;
    step = "basicConstraints";
    if ((rc = mbedtls_x509write_crt_set_basic_constraints(&w, s->is_ca, s->pathlen)) != 0)
        goto mbed_fail;
    step = "subjectKeyIdentifier";
    if ((rc = mbedtls_x509write_crt_set_subject_key_identifier(&w)) != 0)
        goto mbed_fail;
    step = "authorityKeyIdentifier";
    if ((rc = mbedtls_x509write_crt_set_authority_key_identifier(&w)) != 0)
        goto mbed_fail;
    step = "keyUsage";
    if ((rc = mbedtls_x509write_crt_set_key_usage(&w, s->key_usage)) != 0)
        goto mbed_fail;
    if (s->eku_oid) {
        mbedtls_asn1_sequence eku = {0};
        eku.buf.tag = MBEDTLS_ASN1_OID;
        eku.buf.len = s->eku_len;
        eku.buf.p = (unsigned char *)s->eku_oid;
        step = "extendedKeyUsage";
        if ((rc = mbedtls_x509write_crt_set_ext_key_usage(&w, &eku)) != 0)
            goto mbed_fail;
    }
    if (s->server_sans) {
        static const unsigned char loopback[4] = {127, 0, 0, 1};
        static const char localhost[] = "localhost";
        mbedtls_x509_san_list ip = {0}, dns = {0};
        ip.node.type = MBEDTLS_X509_SAN_IP_ADDRESS;
        ip.node.san.unstructured_name.p = (unsigned char *)loopback;
        ip.node.san.unstructured_name.len = sizeof loopback;
        dns.node.type = MBEDTLS_X509_SAN_DNS_NAME;
        dns.node.san.unstructured_name.p = (unsigned char *)localhost;
        dns.node.san.unstructured_name.len = sizeof localhost - 1;
        dns.next = &ip;
        step = "subjectAltName";
        if ((rc = mbedtls_x509write_crt_set_subject_alternative_name(&w, &dns)) != 0)
            goto mbed_fail;
    }
    step = "signing";
    rc = mbedtls_x509write_crt_der(&w, der, cap, mbedtls_ctr_drbg_random, drbg);
    if (rc == MBEDTLS_ERR_ASN1_BUF_TOO_SMALL) {
        st = fail(FDL_PKI_ERR_SMALL, "certificate does not fit %zu bytes", cap);
        goto cleanup;
    }
    if (rc < 0)
        goto mbed_fail;
    /* x509write writes at the end of the buffer; callers want it at the start. */
    memmove(der, der + cap - (size_t)rc, (size_t)rc);
    *der_len = (size_t)rc;
    if (serial)
        memcpy(serial, sn, sizeof sn);
    st = FDL_PKI_OK;
    goto cleanup;
mbed_fail:
    st = fail(FDL_PKI_ERR_CRYPTO, "%s: %s: %s", s->subject, step, mbed_err(rc, eb, sizeof eb));
cleanup:
    mbedtls_x509write_crt_free(&w);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Software keys (server key, software CAs).                                                 */

static fdl_pki_status soft_keygen(mbedtls_pk_context *pk, mbedtls_ctr_drbg_context *drbg)
{
    char eb[100];
    int rc = mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (rc == 0)
        rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk), mbedtls_ctr_drbg_random, drbg);
    if (rc != 0)
        return fail(FDL_PKI_ERR_CRYPTO, "P-256 key generation: %s", mbed_err(rc, eb, sizeof eb));
    return FDL_PKI_OK;
}

/* Loads a software key file (mode must be 0600 or stricter). pk must be freshly initialised. */
static fdl_pki_status load_key_file(const char *path, mbedtls_pk_context *pk, mbedtls_ctr_drbg_context *drbg)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    char eb[100];
    int rc;
    fdl_pki_status st = read_file(path, 1, &buf, &len);
    if (st != FDL_PKI_OK)
        goto cleanup;
    rc = mbedtls_pk_parse_key(pk, buf, len + 1, NULL, 0, mbedtls_ctr_drbg_random, drbg);
    if (rc != 0) {
        st = fail(FDL_PKI_ERR_PARSE, "%s: %s", path, mbed_err(rc, eb, sizeof eb));
        goto cleanup;
    }
    if (!is_p256(pk)) {
        st = fail(FDL_PKI_ERR_PARSE, "%s: not an EC P-256 key", path);
        goto cleanup;
    }
    st = FDL_PKI_OK;
cleanup:
    free_secret(buf, len + 1);
    return st;
}

/* Loads dir/file, or generates a P-256 key and writes it there (mode 0600). */
static fdl_pki_status ensure_soft_key(const char *dir, const char *file, mbedtls_pk_context *pk,
                                      mbedtls_ctr_drbg_context *drbg)
{
    unsigned char pem[1024];
    char path[PATH_MAX];
    fdl_pki_status st = join(path, sizeof path, dir, file);
    if (st != FDL_PKI_OK)
        return st;
    if (file_exists(path))
        return load_key_file(path, pk, drbg);
    if ((st = soft_keygen(pk, drbg)) != FDL_PKI_OK)
        return st;
    if (mbedtls_pk_write_key_pem(pk, pem, sizeof pem) != 0) {
        st = fail(FDL_PKI_ERR_CRYPTO, "encoding %s", path);
    } else {
        st = write_file(path, pem, strlen((char *)pem), 0600);
    }
    fdl_wipe(pem, sizeof pem);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* The hierarchy: root, intermediate, server, chain.                                         */

static int verify_chain(mbedtls_x509_crt *crt, mbedtls_x509_crt *trust, const char *what)
{
    uint32_t flags = 0;
    char info[256];
    if (mbedtls_x509_crt_verify(crt, trust, NULL, NULL, &flags, NULL, NULL) == 0)
        return 0;
    mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
    info[strcspn(info, "\n")] = '\0';
    fail(FDL_PKI_ERR_MISMATCH, "%s does not verify: %s", what, info);
    return -1;
}

/*
 * One certificate of the hierarchy: dir/file is loaded if it exists, else made
 * and written. Either way it must carry subject_key's public key and verify up
 * to root (root == NULL: this is the root, checked against itself). On success
 * out holds the certificate followed by `untrusted` (the intermediate under the
 * server certificate), ready for mbedtls_x509_crt_verify.
 */
static fdl_pki_status ensure_cert(const char *dir, const char *file, const cert_spec *spec,
                                  mbedtls_pk_context *subject_key, mbedtls_pk_context *issuer_key,
                                  const char *issuer_name, mbedtls_x509_crt *root,
                                  const mbedtls_x509_crt *untrusted, mbedtls_ctr_drbg_context *drbg,
                                  mbedtls_x509_crt *out)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    char path[PATH_MAX], eb[100];
    int rc;
    fdl_pki_status st = join(path, sizeof path, dir, file);
    if (st != FDL_PKI_OK)
        goto cleanup;
    st = read_file(path, 0, &buf, &len);
    if (st == FDL_PKI_OK) {
        rc = mbedtls_x509_crt_parse(out, buf, len + 1);
        if (rc != 0) {
            st = fail(FDL_PKI_ERR_PARSE, "%s: %s", path, mbed_err(rc, eb, sizeof eb));
            goto cleanup;
        }
    } else if (st == FDL_PKI_ERR_NOT_FOUND) {
        unsigned char der[FDL_PKI_CERT_MAX], pem[FDL_PKI_CERT_MAX * 2];
        size_t der_len = 0, pem_len = 0;
        if ((st = make_cert(spec, subject_key, issuer_key, issuer_name, drbg, der, sizeof der, &der_len,
                            NULL)) != FDL_PKI_OK ||
            (st = der_to_pem(der, der_len, pem, sizeof pem, &pem_len)) != FDL_PKI_OK ||
            (st = write_file(path, pem, pem_len, 0644)) != FDL_PKI_OK)
            goto cleanup;
        rc = mbedtls_x509_crt_parse_der(out, der, der_len);
        if (rc != 0) {
            st = fail(FDL_PKI_ERR_CRYPTO, "%s: we cannot parse what we wrote: %s", path,
                      mbed_err(rc, eb, sizeof eb));
            goto cleanup;
        }
    } else {
        goto cleanup;
    }
    if (out->next) {
        st = fail(FDL_PKI_ERR_PARSE, "%s: holds more than one certificate", path);
        goto cleanup;
    }
    if (untrusted && (rc = mbedtls_x509_crt_parse_der(out, untrusted->raw.p, untrusted->raw.len)) != 0) {
        st = fail(FDL_PKI_ERR_CRYPTO, "copying the chain: %s", mbed_err(rc, eb, sizeof eb));
        goto cleanup;
    }
    if (!same_public_key(&out->pk, subject_key)) {
        st = fail(FDL_PKI_ERR_MISMATCH, "%s: public key does not match its private key", path);
        goto cleanup;
    }
    if (verify_chain(out, root ? root : out, path) != 0) {
        st = FDL_PKI_ERR_MISMATCH;
        goto cleanup;
    }
    st = FDL_PKI_OK;
cleanup:
    fdl_free(buf);
    return st;
}

/* chain.pem must hold exactly intermediate then root; written if missing. */
static fdl_pki_status ensure_chain_file(const char *dir, const mbedtls_x509_crt *inter,
                                        const mbedtls_x509_crt *root)
{
    unsigned char *buf = NULL, pem[FDL_PKI_CERT_MAX * 4];
    size_t len = 0, a = 0, b = 0;
    char path[PATH_MAX];
    mbedtls_x509_crt have;
    fdl_pki_status st;

    mbedtls_x509_crt_init(&have);
    if ((st = join(path, sizeof path, dir, FDL_PKI_CHAIN_PEM)) != FDL_PKI_OK)
        goto cleanup;
    st = read_file(path, 0, &buf, &len);
    if (st == FDL_PKI_OK) {
        if (mbedtls_x509_crt_parse(&have, buf, len + 1) != 0 || !have.next || have.next->next ||
            have.raw.len != inter->raw.len || memcmp(have.raw.p, inter->raw.p, inter->raw.len) != 0 ||
            have.next->raw.len != root->raw.len ||
            memcmp(have.next->raw.p, root->raw.p, root->raw.len) != 0) {
            st = fail(FDL_PKI_ERR_MISMATCH, "%s: is not %s followed by %s", path, FDL_PKI_INTERMEDIATE_PEM,
                      FDL_PKI_ROOT_PEM);
        }
        goto cleanup;
    }
    if (st != FDL_PKI_ERR_NOT_FOUND)
        goto cleanup;
    if ((st = der_to_pem(inter->raw.p, inter->raw.len, pem, sizeof pem, &a)) != FDL_PKI_OK ||
        (st = der_to_pem(root->raw.p, root->raw.len, pem + a, sizeof pem - a, &b)) != FDL_PKI_OK)
        goto cleanup;
    st = write_file(path, pem, a + b, 0644);
cleanup:
    mbedtls_x509_crt_free(&have);
    fdl_free(buf);
    return st;
}

static fdl_pki_status check_opts(const fdl_pki_opts *o, const char **name)
{
    *name = o && o->name ? o->name : "fleetdrill";
    if (!valid_ca_name(*name))
        return fail(FDL_PKI_ERR_ARG, "CA name must be 1..%d bytes of [A-Za-z0-9 ._-]", PKI_NAME_MAX);
    if (o && (o->root_days > PKI_DAYS_MAX || o->intermediate_days > PKI_DAYS_MAX ||
              o->server_days > PKI_DAYS_MAX))
        return fail(FDL_PKI_ERR_ARG, "validity above %u days", PKI_DAYS_MAX);
    return FDL_PKI_OK;
}

static unsigned days_or(unsigned v, unsigned dflt)
{
    return v ? v : dflt;
}

/*
 * Creates or checks root.pem, intermediate.pem, server-key.pem, server.pem and
 * chain.pem with the two CA keys (token-backed or software: both are just pk
 * contexts here).
 */
static fdl_pki_status build_hierarchy(const char *dir, mbedtls_pk_context *root_key,
                                      mbedtls_pk_context *inter_key, const fdl_pki_opts *o,
                                      mbedtls_ctr_drbg_context *drbg)
{
    mbedtls_x509_crt root, inter, server;
    mbedtls_pk_context server_key;
    cert_spec rs = {0}, is = {0}, ss = {0};
    char root_name[256], inter_name[256];
    const char *name = NULL;
    time_t now = time(NULL) - FDL_PKI_BACKDATE_S;
    fdl_pki_status st;

    mbedtls_x509_crt_init(&root);
    mbedtls_x509_crt_init(&inter);
    mbedtls_x509_crt_init(&server);
    mbedtls_pk_init(&server_key);
    if ((st = check_opts(o, &name)) != FDL_PKI_OK)
        goto cleanup;

    snprintf(rs.subject, sizeof rs.subject, "CN=%s Root CA", name);
    rs.is_ca = 1;
    rs.pathlen = 1;
    rs.key_usage = MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN;
    rs.not_before = now;
    rs.days = days_or(o ? o->root_days : 0, FDL_PKI_ROOT_DAYS);
    if ((st = ensure_cert(dir, FDL_PKI_ROOT_PEM, &rs, root_key, root_key, rs.subject, NULL, NULL, drbg,
                          &root)) != FDL_PKI_OK)
        goto cleanup;

    snprintf(is.subject, sizeof is.subject, "CN=%s Issuing CA 1", name);
    is.is_ca = 1;
    is.pathlen = 0;
    is.key_usage = MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN;
    is.not_before = now;
    is.days = days_or(o ? o->intermediate_days : 0, FDL_PKI_INTERMEDIATE_DAYS);
    /* An existing root.pem is authoritative for the issuer name, not the options. */
    if (mbedtls_x509_dn_gets(root_name, sizeof root_name, &root.subject) < 0) {
        st = fail(FDL_PKI_ERR_PARSE, "root subject unreadable");
        goto cleanup;
    }
    if ((st = ensure_cert(dir, FDL_PKI_INTERMEDIATE_PEM, &is, inter_key, root_key, root_name, &root, NULL,
                          drbg, &inter)) != FDL_PKI_OK)
        goto cleanup;

    if ((st = ensure_soft_key(dir, FDL_PKI_SERVER_KEY_PEM, &server_key, drbg)) != FDL_PKI_OK)
        goto cleanup;
    snprintf(ss.subject, sizeof ss.subject, "CN=localhost");
    ss.is_ca = 0;
    ss.pathlen = -1;
    ss.key_usage = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
    ss.eku_oid = MBEDTLS_OID_SERVER_AUTH;
    ss.eku_len = MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH);
    ss.server_sans = 1;
    ss.not_before = now;
    ss.days = days_or(o ? o->server_days : 0, FDL_PKI_SERVER_DAYS);
    if (mbedtls_x509_dn_gets(inter_name, sizeof inter_name, &inter.subject) < 0) {
        st = fail(FDL_PKI_ERR_PARSE, "intermediate subject unreadable");
        goto cleanup;
    }
    if ((st = ensure_cert(dir, FDL_PKI_SERVER_PEM, &ss, &server_key, inter_key, inter_name, &root, &inter,
                          drbg, &server)) != FDL_PKI_OK)
        goto cleanup;

    st = ensure_chain_file(dir, &inter, &root);
cleanup:
    mbedtls_pk_free(&server_key);
    mbedtls_x509_crt_free(&server);
    mbedtls_x509_crt_free(&inter);
    mbedtls_x509_crt_free(&root);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* The CA token and its PIN file.                                                            */

typedef struct pki_pins {
    char so[PKI_PIN_HEX + 1];
    char user[PKI_PIN_HEX + 1];
} pki_pins;

static fdl_pki_status token_fail(fdl_se_module *se, const char *token, fdl_se_status s, const char *what)
{
    fdl_pki_status st = s == FDL_SE_ERR_NOT_FOUND ? FDL_PKI_ERR_NOT_FOUND : FDL_PKI_ERR_TOKEN;
    return fail(st, "token %s: %s: %s (CK_RV 0x%lx)", token, what, fdl_se_strerror(s),
                fdl_se_last_rv(se));
}

/* Copies the value of "key=" from the PIN file text into out; 0 on success. */
static int pin_field(const char *text, const char *key, char out[PKI_PIN_HEX + 1])
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (line[0] == '#' || strncmp(line, key, kl) != 0 || line[kl] != '=')
            continue;
        const char *v = line + kl + 1;
        size_t n = strcspn(v, "\r\n");
        if (n < 4 || n > PKI_PIN_HEX)
            return -1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

static fdl_pki_status read_pins(const char *dir, pki_pins *p)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    char path[PATH_MAX];
    fdl_pki_status st = join(path, sizeof path, dir, FDL_PKI_PIN_FILE);
    if (st != FDL_PKI_OK)
        return st;
    if ((st = read_file(path, 1, &buf, &len)) != FDL_PKI_OK)
        goto cleanup;
    if (pin_field((char *)buf, "so_pin", p->so) != 0 || pin_field((char *)buf, "user_pin", p->user) != 0)
        st = fail(FDL_PKI_ERR_PARSE, "%s: needs so_pin= and user_pin= lines (4..%d characters)", path,
                  PKI_PIN_HEX);
cleanup:
    free_secret(buf, len + 1);
    return st;
}

static fdl_pki_status new_pins(const char *dir, const char *token, pki_pins *p, mbedtls_ctr_drbg_context *drbg)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[2 * PKI_PIN_BYTES];
    char path[PATH_MAX], text[256];
    fdl_pki_status st = join(path, sizeof path, dir, FDL_PKI_PIN_FILE);
    int n;
    if (st != FDL_PKI_OK)
        return st;
    if (mbedtls_ctr_drbg_random(drbg, rnd, sizeof rnd) != 0) {
        st = fail(FDL_PKI_ERR_CRYPTO, "random PINs");
        goto cleanup;
    }
    for (size_t i = 0; i < PKI_PIN_BYTES; i++) {
        p->so[2 * i] = hex[rnd[i] >> 4];
        p->so[2 * i + 1] = hex[rnd[i] & 15];
        p->user[2 * i] = hex[rnd[PKI_PIN_BYTES + i] >> 4];
        p->user[2 * i + 1] = hex[rnd[PKI_PIN_BYTES + i] & 15];
    }
    p->so[PKI_PIN_HEX] = p->user[PKI_PIN_HEX] = '\0';
    n = snprintf(text, sizeof text,
                 "# PINs of the fleetdrill CA token \"%s\" (SoftHSM2). Secret: keep mode 0600.\n"
                 "so_pin=%s\nuser_pin=%s\n",
                 token, p->so, p->user);
    st = write_file(path, text, (size_t)n, 0600);
cleanup:
    fdl_wipe(rnd, sizeof rnd);
    fdl_wipe(text, sizeof text);
    return st;
}

/* Opens key_label in the CA token, generating it first if it is not there. */
static fdl_pki_status ensure_token_key(fdl_se_module *se, const char *token, const char *user_pin,
                                       const char *label, fdl_se_key **out)
{
    fdl_se_status s = fdl_se_key_open(se, token, user_pin, label, out);
    if (s == FDL_SE_ERR_NOT_FOUND)
        s = fdl_se_keygen(se, token, user_pin, label, out);
    if (s != FDL_SE_OK)
        return token_fail(se, token, s, label);
    return FDL_PKI_OK;
}

fdl_pki_status fdl_pki_setup(fdl_se_module *se, const char *dir, const fdl_pki_opts *opts)
{
    fdl_pki_status st = FDL_PKI_ERR_ARG;
    fdl_se_key *root = NULL, *inter = NULL;
    pki_pins pins = {{0}, {0}};
    char path[PATH_MAX];
    const char *name;
    pki_rng r;
    int token;
    const char *label = opts && opts->token_label ? opts->token_label : FDL_PKI_TOKEN_LABEL;

    rng_init(&r);
    last_err[0] = '\0';
    if (!se || !dir) {
        st = fail(FDL_PKI_ERR_ARG, "se and dir are required");
        goto cleanup;
    }
    if ((st = check_opts(opts, &name)) != FDL_PKI_OK || (st = ensure_dir(dir)) != FDL_PKI_OK ||
        (st = rng_seed(&r.entropy, &r.drbg)) != FDL_PKI_OK ||
        (st = join(path, sizeof path, dir, FDL_PKI_PIN_FILE)) != FDL_PKI_OK)
        goto cleanup;

    /* The PIN file comes first: a token must never exist without its PINs on disk. */
    token = fdl_se_token_exists(se, label);
    if (file_exists(path)) {
        st = read_pins(dir, &pins);
    } else if (token) {
        st = fail(FDL_PKI_ERR_MISMATCH, "token %s exists but %s is missing", label, path);
    } else {
        st = new_pins(dir, label, &pins, &r.drbg);
    }
    if (st != FDL_PKI_OK)
        goto cleanup;
    if (!token) {
        fdl_se_status s = fdl_se_token_create(se, label, pins.so, pins.user);
        if (s != FDL_SE_OK) {
            st = token_fail(se, label, s, "create");
            goto cleanup;
        }
    }
    if ((st = ensure_token_key(se, label, pins.user, FDL_PKI_ROOT_KEY_LABEL, &root)) != FDL_PKI_OK ||
        (st = ensure_token_key(se, label, pins.user, FDL_PKI_ISSUING_KEY_LABEL, &inter)) != FDL_PKI_OK)
        goto cleanup;
    st = build_hierarchy(dir, fdl_se_key_pk(root), fdl_se_key_pk(inter), opts, &r.drbg);
cleanup:
    /* The root key goes back offline: its session ends here. */
    fdl_se_key_free(inter);
    fdl_se_key_free(root);
    fdl_wipe(&pins, sizeof pins);
    rng_free(&r);
    return st;
}

fdl_pki_status fdl_pki_setup_soft(const char *dir, const fdl_pki_opts *opts)
{
    fdl_pki_status st = FDL_PKI_ERR_ARG;
    mbedtls_pk_context root, inter;
    const char *name;
    pki_rng r;

    rng_init(&r);
    mbedtls_pk_init(&root);
    mbedtls_pk_init(&inter);
    last_err[0] = '\0';
    if (!dir) {
        st = fail(FDL_PKI_ERR_ARG, "dir is required");
        goto cleanup;
    }
    if ((st = check_opts(opts, &name)) != FDL_PKI_OK || (st = ensure_dir(dir)) != FDL_PKI_OK ||
        (st = rng_seed(&r.entropy, &r.drbg)) != FDL_PKI_OK ||
        (st = ensure_soft_key(dir, FDL_PKI_ROOT_KEY_PEM, &root, &r.drbg)) != FDL_PKI_OK ||
        (st = ensure_soft_key(dir, FDL_PKI_INTERMEDIATE_KEY_PEM, &inter, &r.drbg)) != FDL_PKI_OK)
        goto cleanup;
    st = build_hierarchy(dir, &root, &inter, opts, &r.drbg);
cleanup:
    mbedtls_pk_free(&inter);
    mbedtls_pk_free(&root);
    rng_free(&r);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* The issuer object.                                                                        */

static fdl_pki_status pki_alloc(fdl_pki **out)
{
    fdl_pki *p = fdl_calloc(1, sizeof *p);
    fdl_pki_status st;
    *out = NULL;
    if (!p)
        return fail(FDL_PKI_ERR_NOMEM, "fdl_pki");
    mbedtls_x509_crt_init(&p->chain);
    mbedtls_pk_init(&p->own_key);
    mbedtls_entropy_init(&p->entropy);
    mbedtls_ctr_drbg_init(&p->drbg);
    if ((st = rng_seed(&p->entropy, &p->drbg)) != FDL_PKI_OK) {
        fdl_pki_free(p);
        return st;
    }
    *out = p;
    return FDL_PKI_OK;
}

void fdl_pki_free(fdl_pki *pki)
{
    if (!pki)
        return;
    fdl_se_key_free(pki->se_key);
    mbedtls_pk_free(&pki->own_key); /* mbedTLS zeroises the key material */
    mbedtls_x509_crt_free(&pki->chain);
    mbedtls_ctr_drbg_free(&pki->drbg);
    mbedtls_entropy_free(&pki->entropy);
    fdl_wipe(pki, sizeof *pki);
    fdl_free(pki);
}

static fdl_pki_status issue_der(fdl_pki *pki, const char *device_id, mbedtls_pk_context *subject,
                                unsigned days, time_t not_before, unsigned char *der, size_t cap,
                                size_t *der_len, uint8_t serial[FDL_PKI_SERIAL_LEN])
{
    cert_spec s = {0};
    snprintf(s.subject, sizeof s.subject, "CN=%s", device_id);
    s.is_ca = 0;
    s.pathlen = -1;
    s.key_usage = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
    s.eku_oid = MBEDTLS_OID_CLIENT_AUTH;
    s.eku_len = MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH);
    s.not_before = not_before ? not_before : time(NULL) - FDL_PKI_BACKDATE_S;
    s.days = days ? days : FDL_PKI_LEAF_DAYS;
    return make_cert(&s, subject, pki->key, pki->issuer_name, &pki->drbg, der, cap, der_len, serial);
}

/*
 * Parses the issuer chain, checks the key fits the certificate, and signs one
 * throw-away leaf that must verify under the issuer: this proves, before the
 * first device, that the signing path (token or software) and the names work.
 */
static fdl_pki_status pki_load_issuer(fdl_pki *pki, const unsigned char *crt, size_t len)
{
    unsigned char der[FDL_PKI_CERT_MAX];
    size_t der_len = 0;
    mbedtls_x509_crt test;
    char eb[100];
    fdl_pki_status st;
    int rc;

    mbedtls_x509_crt_init(&test);
    rc = mbedtls_x509_crt_parse(&pki->chain, crt, len);
    if (rc != 0) {
        st = fail(FDL_PKI_ERR_PARSE, "issuer certificate: %s", rc > 0 ? "some certificates did not parse"
                                                                        : mbed_err(rc, eb, sizeof eb));
        goto cleanup;
    }
    if (mbedtls_x509_crt_check_key_usage(&pki->chain, MBEDTLS_X509_KU_KEY_CERT_SIGN) != 0) {
        st = fail(FDL_PKI_ERR_ARG, "issuer certificate lacks keyCertSign");
        goto cleanup;
    }
    if (mbedtls_x509_dn_gets(pki->issuer_name, sizeof pki->issuer_name, &pki->chain.subject) < 0) {
        st = fail(FDL_PKI_ERR_PARSE, "issuer subject unreadable");
        goto cleanup;
    }
    if (!same_public_key(&pki->chain.pk, pki->key)) {
        st = fail(FDL_PKI_ERR_MISMATCH, "issuer key does not match the issuer certificate");
        goto cleanup;
    }
    if ((st = issue_der(pki, PKI_SELFTEST_ID, &pki->chain.pk, 1, 0, der, sizeof der, &der_len, NULL)) !=
        FDL_PKI_OK)
        goto cleanup;
    if ((rc = mbedtls_x509_crt_parse_der(&test, der, der_len)) != 0) {
        st = fail(FDL_PKI_ERR_CRYPTO, "self-test leaf: %s", mbed_err(rc, eb, sizeof eb));
        goto cleanup;
    }
    if (verify_chain(&test, &pki->chain, "self-test leaf") != 0) {
        st = FDL_PKI_ERR_MISMATCH;
        goto cleanup;
    }
    st = FDL_PKI_OK;
cleanup:
    mbedtls_x509_crt_free(&test);
    return st;
}

fdl_pki_status fdl_pki_new(const unsigned char *issuer_crt, size_t len, mbedtls_pk_context *issuer_key,
                           fdl_pki **out)
{
    fdl_pki_status st = FDL_PKI_ERR_ARG;
    fdl_pki *p = NULL;

    last_err[0] = '\0';
    if (!out || !issuer_crt || !len || !issuer_key || !mbedtls_pk_can_do(issuer_key, MBEDTLS_PK_ECDSA)) {
        st = fail(FDL_PKI_ERR_ARG, "issuer certificate and an ECDSA issuer key are required");
        goto cleanup;
    }
    *out = NULL;
    if ((st = pki_alloc(&p)) != FDL_PKI_OK)
        goto cleanup;
    p->key = issuer_key;
    if ((st = pki_load_issuer(p, issuer_crt, len)) != FDL_PKI_OK)
        goto cleanup;
    *out = p;
    p = NULL;
cleanup:
    fdl_pki_free(p);
    return st;
}

/* Reads intermediate.pem + root.pem into one NUL-terminated PEM buffer (caller frees). */
static fdl_pki_status read_issuer_chain(const char *dir, unsigned char **out, size_t *len)
{
    unsigned char *a = NULL, *b = NULL, *both = NULL;
    size_t al = 0, bl = 0;
    char pa[PATH_MAX], pb[PATH_MAX];
    fdl_pki_status st;

    if ((st = join(pa, sizeof pa, dir, FDL_PKI_INTERMEDIATE_PEM)) != FDL_PKI_OK ||
        (st = join(pb, sizeof pb, dir, FDL_PKI_ROOT_PEM)) != FDL_PKI_OK ||
        (st = read_file(pa, 0, &a, &al)) != FDL_PKI_OK || (st = read_file(pb, 0, &b, &bl)) != FDL_PKI_OK)
        goto cleanup;
    both = fdl_malloc(al + bl + 1);
    if (!both) {
        st = fail(FDL_PKI_ERR_NOMEM, "issuer chain");
        goto cleanup;
    }
    memcpy(both, a, al);
    memcpy(both + al, b, bl + 1);
    *out = both;
    *len = al + bl + 1;
    st = FDL_PKI_OK;
cleanup:
    fdl_free(a);
    fdl_free(b);
    return st;
}

fdl_pki_status fdl_pki_open(fdl_se_module *se, const char *dir, fdl_pki **out)
{
    return fdl_pki_open_token(se, dir, FDL_PKI_TOKEN_LABEL, out);
}

fdl_pki_status fdl_pki_open_token(fdl_se_module *se, const char *dir, const char *token_label, fdl_pki **out)
{
    fdl_pki_status st = FDL_PKI_ERR_ARG;
    unsigned char *chain = NULL;
    size_t chain_len = 0;
    pki_pins pins = {{0}, {0}};
    fdl_pki *p = NULL;
    fdl_se_status s;

    last_err[0] = '\0';
    if (!se || !dir || !out || !token_label) {
        st = fail(FDL_PKI_ERR_ARG, "se, dir, token_label and out are required");
        goto cleanup;
    }
    *out = NULL;
    if ((st = read_pins(dir, &pins)) != FDL_PKI_OK || (st = read_issuer_chain(dir, &chain, &chain_len)) != FDL_PKI_OK ||
        (st = pki_alloc(&p)) != FDL_PKI_OK)
        goto cleanup;
    s = fdl_se_key_open(se, token_label, pins.user, FDL_PKI_ISSUING_KEY_LABEL, &p->se_key);
    if (s != FDL_SE_OK) {
        st = token_fail(se, token_label, s, FDL_PKI_ISSUING_KEY_LABEL);
        goto cleanup;
    }
    p->key = fdl_se_key_pk(p->se_key);
    if ((st = pki_load_issuer(p, chain, chain_len)) != FDL_PKI_OK)
        goto cleanup;
    *out = p;
    p = NULL;
cleanup:
    fdl_pki_free(p);
    fdl_free(chain);
    fdl_wipe(&pins, sizeof pins);
    return st;
}

fdl_pki_status fdl_pki_open_soft(const char *dir, fdl_pki **out)
{
    fdl_pki_status st = FDL_PKI_ERR_ARG;
    unsigned char *chain = NULL;
    size_t chain_len = 0;
    char path[PATH_MAX];
    fdl_pki *p = NULL;

    last_err[0] = '\0';
    if (!dir || !out) {
        st = fail(FDL_PKI_ERR_ARG, "dir and out are required");
        goto cleanup;
    }
    *out = NULL;
    if ((st = join(path, sizeof path, dir, FDL_PKI_INTERMEDIATE_KEY_PEM)) != FDL_PKI_OK ||
        (st = read_issuer_chain(dir, &chain, &chain_len)) != FDL_PKI_OK || (st = pki_alloc(&p)) != FDL_PKI_OK ||
        (st = load_key_file(path, &p->own_key, &p->drbg)) != FDL_PKI_OK)
        goto cleanup;
    p->key = &p->own_key;
    if ((st = pki_load_issuer(p, chain, chain_len)) != FDL_PKI_OK)
        goto cleanup;
    *out = p;
    p = NULL;
cleanup:
    fdl_pki_free(p);
    fdl_free(chain);
    return st;
}

const mbedtls_x509_crt *fdl_pki_chain(const fdl_pki *pki)
{
    return pki ? &pki->chain : NULL;
}

mbedtls_pk_context *fdl_pki_key(fdl_pki *pki)
{
    return pki ? pki->key : NULL;
}

int fdl_pki_random(void *pki, unsigned char *out, size_t len)
{
    return mbedtls_ctr_drbg_random(&((fdl_pki *)pki)->drbg, out, len);
}

uint64_t fdl_pki_issued_count(const fdl_pki *pki)
{
    return pki ? pki->issued : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Issuance.                                                                                 */

fdl_pki_status fdl_pki_issue(fdl_pki *pki, const fdl_pki_leaf_req *req, fdl_pki_format fmt,
                             unsigned char *buf, size_t cap, fdl_pki_issued *out)
{
    unsigned char der[FDL_PKI_CERT_MAX];
    uint8_t serial[FDL_PKI_SERIAL_LEN];
    size_t der_len = 0, len = 0;
    fdl_pki_status st = FDL_PKI_ERR_ARG;

    last_err[0] = '\0';
    if (!pki || !req || !buf || cap == 0 || (fmt != FDL_PKI_PEM && fmt != FDL_PKI_DER)) {
        st = fail(FDL_PKI_ERR_ARG, "pki, req and a buffer are required");
        goto cleanup;
    }
    if (!valid_device_id(req->device_id)) {
        st = fail(FDL_PKI_ERR_ARG, "device id must be 1..%d bytes of [A-Za-z0-9._-]", FDL_PKI_DEVICE_ID_MAX);
        goto cleanup;
    }
    if (!req->public_key || !is_p256(req->public_key)) {
        st = fail(FDL_PKI_ERR_ARG, "%s: subject key must be EC P-256", req->device_id);
        goto cleanup;
    }
    if (req->validity_days > PKI_DAYS_MAX) {
        st = fail(FDL_PKI_ERR_ARG, "validity above %u days", PKI_DAYS_MAX);
        goto cleanup;
    }
    if ((st = issue_der(pki, req->device_id, req->public_key, req->validity_days, req->not_before, der,
                        sizeof der, &der_len, serial)) != FDL_PKI_OK)
        goto cleanup;
    if (fmt == FDL_PKI_DER) {
        if (der_len > cap) {
            st = fail(FDL_PKI_ERR_SMALL, "DER needs %zu bytes, buffer has %zu", der_len, cap);
            goto cleanup;
        }
        memcpy(buf, der, der_len);
        len = der_len;
    } else if ((st = der_to_pem(der, der_len, buf, cap, &len)) != FDL_PKI_OK) {
        goto cleanup;
    }
    pki->issued++;
    if (out) {
        out->len = len;
        memcpy(out->serial, serial, sizeof serial);
    }
    st = FDL_PKI_OK;
cleanup:
    return st;
}

fdl_pki_status fdl_pki_issue_file(fdl_pki *pki, const fdl_pki_leaf_req *req, const char *path,
                                  fdl_pki_issued *out)
{
    unsigned char pem[FDL_PKI_CERT_MAX];
    fdl_pki_issued got;
    fdl_pki_status st = FDL_PKI_ERR_ARG;

    if (!path) {
        st = fail(FDL_PKI_ERR_ARG, "path is required");
        goto cleanup;
    }
    if ((st = fdl_pki_issue(pki, req, FDL_PKI_PEM, pem, sizeof pem, &got)) != FDL_PKI_OK ||
        (st = write_file(path, pem, got.len, 0644)) != FDL_PKI_OK)
        goto cleanup;
    if (out)
        *out = got;
cleanup:
    return st;
}
