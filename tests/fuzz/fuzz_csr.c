/*
 * tests/fuzz/fuzz_csr.c — libFuzzer target for what provisioning by claim reads
 * from the wire: a certificate signing request (cloud/csr.c, on the service)
 * and the certificate message a device gets back (devices/claim.c).
 *
 * Properties, any broken one aborts:
 *   - fdl_csr_check never crashes, always NUL-terminates its detail, and accepts
 *     only with a P-256 public key handed back;
 *   - the same input is judged the same way twice (no hidden state);
 *   - fdl_claim_accept refuses everything against an empty trust store (nothing
 *     can chain to no root) and leaves its output empty.
 * The sources are included so the fuzzer instruments their static functions.
 */
#include "cloud/csr.c"
#include "devices/claim.c"

#include <stdlib.h>

#include <mbedtls/ecp.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char detail[200];
    mbedtls_pk_context pub;
    mbedtls_pk_init(&pub);
    memset(detail, 'x', sizeof detail);
    fdl_csr_status a = fdl_csr_check(data, size, "dev-000001", &pub, detail, sizeof detail);
    if (!memchr(detail, '\0', sizeof detail))
        abort();
    if (a == FDL_CSR_OK && (mbedtls_pk_get_type(&pub) != MBEDTLS_PK_ECKEY ||
                            mbedtls_pk_ec(pub)->MBEDTLS_PRIVATE(grp).id != MBEDTLS_ECP_DP_SECP256R1))
        abort();
    if (fdl_csr_check(data, size, "dev-000001", NULL, NULL, 0) != a)
        abort();

    mbedtls_x509_crt trust, out;
    mbedtls_x509_crt_init(&trust);
    mbedtls_x509_crt_init(&out);
    char why[200];
    if (fdl_claim_accept(data, size, "dev-000001", &pub, &trust, &out, why, sizeof why) == 0 || out.raw.p)
        abort();
    mbedtls_x509_crt_free(&out);
    mbedtls_x509_crt_free(&trust);
    mbedtls_pk_free(&pub);
    return 0;
}
