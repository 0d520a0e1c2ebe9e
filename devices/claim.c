/* devices/claim.c — claim request and certificate checks (see claim.h). */
#include "devices/claim.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_csr.h>

int fdl_claim_make_csr(const char *id, mbedtls_pk_context *key, int (*f_rng)(void *, unsigned char *, size_t),
                       void *p_rng, char *pem, size_t cap)
{
    char subject[96];
    if (snprintf(subject, sizeof subject, "CN=%s", id) >= (int)sizeof subject || strpbrk(id, ",=+\\\"<>;"))
        return -1;
    mbedtls_x509write_csr w;
    mbedtls_x509write_csr_init(&w);
    mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(&w, key);
    int rc = mbedtls_x509write_csr_set_subject_name(&w, subject);
    if (rc == 0)
        rc = mbedtls_x509write_csr_pem(&w, (unsigned char *)pem, cap, f_rng, p_rng);
    mbedtls_x509write_csr_free(&w);
    return rc == 0 ? (int)strlen(pem) : -1;
}

static int same_public_key(mbedtls_pk_context *a, mbedtls_pk_context *b)
{
    unsigned char da[160], db[160];
    int la = mbedtls_pk_write_pubkey_der(a, da, sizeof da);
    int lb = mbedtls_pk_write_pubkey_der(b, db, sizeof db);
    return la > 0 && la == lb && memcmp(da + sizeof da - la, db + sizeof db - lb, (size_t)la) == 0;
}

static int cn_is(const mbedtls_x509_name *n, const char *id)
{
    size_t len = strlen(id);
    for (; n; n = n->next)
        if (MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0)
            return n->val.len == len && memcmp(n->val.p, id, len) == 0;
    return 0;
}

int fdl_claim_accept(const uint8_t *buf, size_t len, const char *id, mbedtls_pk_context *own_key,
                     mbedtls_x509_crt *trust, mbedtls_x509_crt *out, char *why, size_t whycap)
{
    char pemcopy[FDL_CLAIM_CERT_MAX + 1];
    uint32_t flags = 0;
    int rc;
    if (len == 0 || len > FDL_CLAIM_CERT_MAX) {
        snprintf(why, whycap, "certificate message of %zu bytes (at most %d)", len, FDL_CLAIM_CERT_MAX);
        return -1;
    }
    memcpy(pemcopy, buf, len);
    size_t n = len;
    if (pemcopy[n - 1] != '\0')
        pemcopy[n++] = '\0';
    if (memchr(pemcopy, '\0', n - 1)) {
        snprintf(why, whycap, "certificate message contains a NUL byte");
        return -1;
    }
    rc = mbedtls_x509_crt_parse(out, (const unsigned char *)pemcopy, n);
    if (rc != 0) {
        char e[96];
        mbedtls_strerror(rc, e, sizeof e);
        snprintf(why, whycap, "not a certificate (%s)", e);
        goto fail;
    }
    rc = mbedtls_x509_crt_verify(out, trust, NULL, NULL, &flags, NULL, NULL);
    if (rc != 0) {
        char info[160];
        mbedtls_x509_crt_verify_info(info, sizeof info, "", flags);
        char *nl = strchr(info, '\n');
        if (nl)
            *nl = '\0';
        snprintf(why, whycap, "certificate does not chain to the fleet root (%s)", info);
        goto fail;
    }
    if (!cn_is(&out->subject, id)) {
        snprintf(why, whycap, "certificate is not for %s", id);
        goto fail;
    }
    if (!same_public_key(&out->pk, own_key)) {
        snprintf(why, whycap, "certificate does not certify this device's key");
        goto fail;
    }
    return 0;
fail:
    mbedtls_x509_crt_free(out);
    mbedtls_x509_crt_init(out);
    return -1;
}
