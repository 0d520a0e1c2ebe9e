/* cloud/csr.c — checks on a certificate signing request (see csr.h). */
#include "cloud/csr.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_csr.h>

static const char *const k_csr_err[] = {
    [FDL_CSR_OK] = "ok",
    [FDL_CSR_ERR_SIZE] = "empty or too large",
    [FDL_CSR_ERR_PARSE] = "not a PKCS#10 certificate request",
    [FDL_CSR_ERR_KEY] = "key is not EC P-256",
    [FDL_CSR_ERR_SIGNATURE] = "self-signature does not verify",
    [FDL_CSR_ERR_SUBJECT] = "subject is not CN=<client id>",
    [FDL_CSR_ERR_NOMEM] = "out of memory",
};

const char *fdl_csr_strerror(fdl_csr_status st)
{
    return (unsigned)st < sizeof k_csr_err / sizeof k_csr_err[0] && k_csr_err[st] ? k_csr_err[st] : "?";
}

static fdl_csr_status say(fdl_csr_status st, char *detail, size_t cap, const char *fmt, const char *arg)
{
    if (detail && cap) {
        if (fmt)
            snprintf(detail, cap, fmt, arg);
        else
            snprintf(detail, cap, "%s", fdl_csr_strerror(st));
    }
    return st;
}

/* Exactly one attribute, CN, equal to cn (byte for byte). */
static int subject_is(const mbedtls_x509_name *n, const char *cn)
{
    size_t len = strlen(cn);
    return n && !n->next && !n->MBEDTLS_PRIVATE(next_merged) && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0 &&
           n->val.len == len && memcmp(n->val.p, cn, len) == 0;
}

fdl_csr_status fdl_csr_check(const uint8_t *buf, size_t len, const char *expected_cn, mbedtls_pk_context *pub,
                             char *detail, size_t detail_cap)
{
    if (!buf || len == 0 || len > FDL_CSR_MAX)
        return say(FDL_CSR_ERR_SIZE, detail, detail_cap, NULL, NULL);
    /* mbedtls_x509_csr_parse wants PEM NUL-terminated and counted with its NUL. */
    unsigned char copy[FDL_CSR_MAX + 1];
    memcpy(copy, buf, len);
    size_t n = len;
    if (len > 10 && !memcmp(buf, "-----BEGIN", 10) && buf[len - 1] != '\0')
        copy[n++] = '\0';

    mbedtls_x509_csr csr;
    mbedtls_x509_csr_init(&csr);
    fdl_csr_status st = FDL_CSR_OK;
    unsigned char hash[MBEDTLS_MD_MAX_SIZE];
    int rc = mbedtls_x509_csr_parse(&csr, copy, n);
    if (rc != 0) {
        char e[96];
        mbedtls_strerror(rc, e, sizeof e);
        st = say(FDL_CSR_ERR_PARSE, detail, detail_cap, "not a PKCS#10 certificate request (%s)", e);
        goto out;
    }
    if (mbedtls_pk_get_type(&csr.pk) != MBEDTLS_PK_ECKEY ||
        mbedtls_pk_ec(csr.pk)->MBEDTLS_PRIVATE(grp).id != MBEDTLS_ECP_DP_SECP256R1) {
        st = say(FDL_CSR_ERR_KEY, detail, detail_cap, NULL, NULL);
        goto out;
    }
    mbedtls_md_type_t md = csr.MBEDTLS_PRIVATE(sig_md);
    const mbedtls_md_info_t *mi = mbedtls_md_info_from_type(md);
    if (csr.MBEDTLS_PRIVATE(sig_pk) != MBEDTLS_PK_ECDSA || !mi ||
        (md != MBEDTLS_MD_SHA256 && md != MBEDTLS_MD_SHA384 && md != MBEDTLS_MD_SHA512)) {
        st = say(FDL_CSR_ERR_SIGNATURE, detail, detail_cap, "signature algorithm is not ECDSA with SHA-2", NULL);
        goto out;
    }
    if (mbedtls_md(mi, csr.cri.p, csr.cri.len, hash) != 0 ||
        mbedtls_pk_verify_ext(MBEDTLS_PK_ECDSA, NULL, &csr.pk, md, hash, mbedtls_md_get_size(mi),
                              csr.MBEDTLS_PRIVATE(sig).p, csr.MBEDTLS_PRIVATE(sig).len) != 0) {
        st = say(FDL_CSR_ERR_SIGNATURE, detail, detail_cap, NULL, NULL);
        goto out;
    }
    if (!expected_cn || !subject_is(&csr.subject, expected_cn)) {
        char got[160];
        if (mbedtls_x509_dn_gets(got, sizeof got, &csr.subject) < 0)
            snprintf(got, sizeof got, "(unprintable)");
        st = say(FDL_CSR_ERR_SUBJECT, detail, detail_cap, "subject is \"%s\", not CN=<client id>", got);
        goto out;
    }
    if (pub) {
        unsigned char der[256];
        int w = mbedtls_pk_write_pubkey_der(&csr.pk, der, sizeof der);
        if (w <= 0 || mbedtls_pk_parse_public_key(pub, der + sizeof der - w, (size_t)w) != 0) {
            st = say(FDL_CSR_ERR_NOMEM, detail, detail_cap, NULL, NULL);
            goto out;
        }
    }
    if (detail && detail_cap)
        detail[0] = '\0';
out:
    mbedtls_x509_csr_free(&csr);
    return st;
}
