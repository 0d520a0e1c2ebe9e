/* tests/test_claim.c — provisioning by claim, both halves over buffers:
 * cloud/csr.h (the service's checks on a CSR from the wire) and devices/claim.h
 * (the device's request and its checks on the certificate it gets back). */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pem.h>
#include <mbedtls/x509_csr.h>

#include "cloud/csr.h"
#include "cloud/pki.h"
#include "devices/claim.h"

/* A CSR with an arbitrary subject (what a hostile claim holder can send). */
static int raw_csr(mbedtls_pk_context *key, const char *subject, char *pem, size_t cap)
{
    mbedtls_x509write_csr w;
    mbedtls_x509write_csr_init(&w);
    mbedtls_x509write_csr_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_csr_set_key(&w, key);
    assert_int_equal(mbedtls_x509write_csr_set_subject_name(&w, subject), 0);
    int rc = mbedtls_x509write_csr_pem(&w, (unsigned char *)pem, cap, mbedtls_ctr_drbg_random, fdl_test_drbg());
    mbedtls_x509write_csr_free(&w);
    return rc == 0 ? (int)strlen(pem) : -1;
}

static void csr_roundtrip(void **state)
{
    (void)state;
    mbedtls_pk_context key, pub;
    char pem[FDL_CLAIM_CSR_MAX], why[200];
    fdl_test_gen_key(&key, MBEDTLS_ECP_DP_SECP256R1);
    int n = fdl_claim_make_csr("dev-000042", &key, mbedtls_ctr_drbg_random, fdl_test_drbg(), pem, sizeof pem);
    assert_true(n > 0);
    mbedtls_pk_init(&pub);
    /* With and without the trailing NUL (a payload from the wire has none). */
    assert_int_equal(fdl_csr_check((const uint8_t *)pem, (size_t)n, "dev-000042", &pub, why, sizeof why), FDL_CSR_OK);
    assert_int_equal(fdl_csr_check((const uint8_t *)pem, (size_t)n + 1, "dev-000042", NULL, why, sizeof why),
                     FDL_CSR_OK);
    /* The key handed back is the requester's. */
    unsigned char a[160], b[160];
    int la = mbedtls_pk_write_pubkey_der(&key, a, sizeof a), lb = mbedtls_pk_write_pubkey_der(&pub, b, sizeof b);
    assert_int_equal(la, lb);
    assert_memory_equal(a + sizeof a - la, b + sizeof b - lb, (size_t)la);
    /* Another client id with the same CSR: refused. */
    assert_int_equal(fdl_csr_check((const uint8_t *)pem, (size_t)n, "dev-000043", NULL, why, sizeof why),
                     FDL_CSR_ERR_SUBJECT);
    assert_non_null(strstr(why, "CN=dev-000042"));
    /* A device id that would smuggle RDNs is refused by the device itself. */
    assert_int_equal(fdl_claim_make_csr("dev-1,O=evil", &key, mbedtls_ctr_drbg_random, fdl_test_drbg(), pem, sizeof pem), -1);
    mbedtls_pk_free(&pub);
    mbedtls_pk_free(&key);
}

static void csr_hostile(void **state)
{
    (void)state;
    mbedtls_pk_context key, k384;
    char pem[2048], why[200];
    fdl_test_gen_key(&key, MBEDTLS_ECP_DP_SECP256R1);
    /* Extra RDNs next to the right CN, or the CN alone but twice. */
    int n = raw_csr(&key, "CN=dev-000001,O=Acme", pem, sizeof pem);
    assert_int_equal(fdl_csr_check((uint8_t *)pem, (size_t)n, "dev-000001", NULL, why, sizeof why), FDL_CSR_ERR_SUBJECT);
    n = raw_csr(&key, "CN=dev-000001,CN=dev-000002", pem, sizeof pem);
    assert_int_equal(fdl_csr_check((uint8_t *)pem, (size_t)n, "dev-000001", NULL, why, sizeof why), FDL_CSR_ERR_SUBJECT);
    n = raw_csr(&key, "O=dev-000001", pem, sizeof pem);
    assert_int_equal(fdl_csr_check((uint8_t *)pem, (size_t)n, "dev-000001", NULL, why, sizeof why), FDL_CSR_ERR_SUBJECT);
    /* A prefix of the id is not the id. */
    n = raw_csr(&key, "CN=dev-00000", pem, sizeof pem);
    assert_int_equal(fdl_csr_check((uint8_t *)pem, (size_t)n, "dev-000001", NULL, why, sizeof why), FDL_CSR_ERR_SUBJECT);
    /* P-384 is not what the CA certifies. */
    fdl_test_gen_key(&k384, MBEDTLS_ECP_DP_SECP384R1);
    n = raw_csr(&k384, "CN=dev-000001", pem, sizeof pem);
    assert_int_equal(fdl_csr_check((uint8_t *)pem, (size_t)n, "dev-000001", NULL, why, sizeof why), FDL_CSR_ERR_KEY);

    /* Tampered: the subject changed after signing (DER, one byte of the CN). */
    n = raw_csr(&key, "CN=dev-000001", pem, sizeof pem);
    unsigned char der[1024];
    size_t dlen = 0;
    mbedtls_pem_context pc;
    mbedtls_pem_init(&pc);
    size_t used = 0;
    assert_int_equal(mbedtls_pem_read_buffer(&pc, "-----BEGIN CERTIFICATE REQUEST-----",
                                             "-----END CERTIFICATE REQUEST-----", (unsigned char *)pem, NULL, 0, &used),
                     0);
    const unsigned char *buf = mbedtls_pem_get_buffer(&pc, &dlen);
    memcpy(der, buf, dlen);
    mbedtls_pem_free(&pc);
    assert_int_equal(fdl_csr_check(der, dlen, "dev-000001", NULL, why, sizeof why), FDL_CSR_OK);
    unsigned char *hit = memmem(der, dlen, "dev-000001", 10);
    assert_non_null(hit);
    hit[9] = '2';
    assert_int_equal(fdl_csr_check(der, dlen, "dev-000002", NULL, why, sizeof why), FDL_CSR_ERR_SIGNATURE);
    /* Garbage, empty, oversized, truncated. */
    assert_int_equal(fdl_csr_check((const uint8_t *)"hello", 5, "dev-000001", NULL, why, sizeof why), FDL_CSR_ERR_PARSE);
    assert_int_equal(fdl_csr_check((const uint8_t *)"", 0, "dev-000001", NULL, why, sizeof why), FDL_CSR_ERR_SIZE);
    static uint8_t big[FDL_CSR_MAX + 1];
    assert_int_equal(fdl_csr_check(big, sizeof big, "dev-000001", NULL, why, sizeof why), FDL_CSR_ERR_SIZE);
    assert_int_equal(fdl_csr_check(der, dlen / 2, "dev-000001", NULL, why, sizeof why), FDL_CSR_ERR_PARSE);
    mbedtls_pk_free(&k384);
    mbedtls_pk_free(&key);
}

/* The certificate the service would send: leaf PEM then chain PEM. */
static size_t answer(fdl_pki *pki, const char *id, mbedtls_pk_context *key, char *out, size_t cap)
{
    unsigned char der[FDL_PKI_CERT_MAX];
    fdl_pki_issued iss;
    fdl_pki_leaf_req req = {.device_id = id, .public_key = key};
    assert_int_equal(fdl_pki_issue(pki, &req, FDL_PKI_DER, der, sizeof der, &iss), FDL_PKI_OK);
    size_t n = 0, olen = 0;
    assert_int_equal(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", der,
                                              iss.len, (unsigned char *)out, cap, &olen), 0);
    n = olen - 1;
    for (const mbedtls_x509_crt *c = fdl_pki_chain(pki); c && c->raw.p; c = c->next) {
        assert_int_equal(mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
                                                  c->raw.p, c->raw.len, (unsigned char *)out + n, cap - n, &olen),
                         0);
        n += olen - 1;
    }
    return n;
}

static void accept_checks(void **state)
{
    (void)state;
    char ours[256], rogue[256], path[512], why[200];
    static char msg[FDL_CLAIM_CERT_MAX];
    fdl_pki *pki = NULL, *bad = NULL;
    mbedtls_x509_crt root, got;
    mbedtls_pk_context key, other;
    fdl_test_mkdtemp("claim-ours", ours, sizeof ours);
    fdl_test_mkdtemp("claim-rogue", rogue, sizeof rogue);
    assert_int_equal(fdl_pki_setup_soft(ours, NULL), FDL_PKI_OK);
    assert_int_equal(fdl_pki_setup_soft(rogue, NULL), FDL_PKI_OK);
    assert_int_equal(fdl_pki_open_soft(ours, &pki), FDL_PKI_OK);
    assert_int_equal(fdl_pki_open_soft(rogue, &bad), FDL_PKI_OK);
    mbedtls_x509_crt_init(&root);
    mbedtls_x509_crt_init(&got);
    snprintf(path, sizeof path, "%s/%s", ours, FDL_PKI_ROOT_PEM);
    assert_int_equal(mbedtls_x509_crt_parse_file(&root, path), 0);
    fdl_test_gen_key(&key, MBEDTLS_ECP_DP_SECP256R1);
    fdl_test_gen_key(&other, MBEDTLS_ECP_DP_SECP256R1);

    size_t n = answer(pki, "dev-000007", &key, msg, sizeof msg);
    assert_int_equal(fdl_claim_accept((uint8_t *)msg, n, "dev-000007", &key, &root, &got, why, sizeof why), 0);
    mbedtls_x509_crt_free(&got);
    mbedtls_x509_crt_init(&got);
    /* For another device, for another key, from another CA, or mangled: refused. */
    assert_int_equal(fdl_claim_accept((uint8_t *)msg, n, "dev-000008", &key, &root, &got, why, sizeof why), -1);
    assert_non_null(strstr(why, "not for dev-000008"));
    assert_int_equal(fdl_claim_accept((uint8_t *)msg, n, "dev-000007", &other, &root, &got, why, sizeof why), -1);
    assert_non_null(strstr(why, "this device's key"));
    n = answer(bad, "dev-000007", &key, msg, sizeof msg);
    assert_int_equal(fdl_claim_accept((uint8_t *)msg, n, "dev-000007", &key, &root, &got, why, sizeof why), -1);
    assert_non_null(strstr(why, "does not chain to the fleet root"));
    assert_int_equal(fdl_claim_accept((const uint8_t *)"x", 1, "dev-000007", &key, &root, &got, why, sizeof why), -1);
    assert_int_equal(fdl_claim_accept((const uint8_t *)"a\0b", 3, "dev-000007", &key, &root, &got, why, sizeof why), -1);
    assert_int_equal(fdl_claim_accept((uint8_t *)msg, FDL_CLAIM_CERT_MAX + 1, "dev-000007", &key, &root, &got, why,
                                      sizeof why),
                     -1);
    mbedtls_pk_free(&key);
    mbedtls_pk_free(&other);
    mbedtls_x509_crt_free(&root);
    mbedtls_x509_crt_free(&got);
    fdl_pki_free(pki);
    fdl_pki_free(bad);
    fdl_test_rmrf(ours);
    fdl_test_rmrf(rogue);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csr_roundtrip),
        cmocka_unit_test(csr_hostile),
        cmocka_unit_test(accept_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
