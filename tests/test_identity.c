/*
 * tests/test_identity.c — device identities on disk: provisioning is idempotent, resumes a
 * half-made identity with the key already in its token, and writes secrets with tight modes.
 */
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/pk.h>

#include "sim/context.h"

static char g_dir[512];
static fdl_ctx g_ctx;

static int setup(void **state)
{
    (void)state;
    char err[512];
    fdl_test_mkdtemp("identity", g_dir, sizeof g_dir);
    if (fdl_ctx_open(&g_ctx, g_dir, 1, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_ctx_close(&g_ctx);
    fdl_test_rmrf(g_dir);
    return 0;
}

static int provision(const char *id, fdl_profile p, char *err, size_t cap)
{
    return fdl_identity_provision(&g_ctx.st, g_ctx.se, g_ctx.pki, id, p, mbedtls_ctr_drbg_random, &g_ctx.drbg, err,
                                  cap);
}

static unsigned mode_of(const char *id, const char *file)
{
    char p[1200];
    struct stat sb;
    fdl_identity_path(&g_ctx.st, id, file, p, sizeof p);
    assert_int_equal(stat(p, &sb), 0);
    return sb.st_mode & 0777;
}

/* DER of the certificate's public key and of the identity's key must be the same. */
static void assert_cert_matches_key(fdl_identity *idn)
{
    unsigned char a[200], b[200];
    int la = mbedtls_pk_write_pubkey_der(&idn->cert.pk, a, sizeof a);
    int lb = mbedtls_pk_write_pubkey_der(idn->key, b, sizeof b);
    assert_true(la > 0 && la == lb);
    assert_memory_equal(a + sizeof a - la, b + sizeof b - lb, (size_t)la);
}

static void se_identity_is_idempotent_and_tight(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(provision("dev-000001", FDL_PROFILE_SE, err, sizeof err), 1);
    assert_int_equal(provision("dev-000001", FDL_PROFILE_SE, err, sizeof err), 0);
    assert_true(fdl_identity_exists(&g_ctx.st, "dev-000001"));
    assert_int_equal(mode_of("dev-000001", "pin"), 0600);
    fdl_profile p;
    assert_int_equal(fdl_identity_profile(&g_ctx.st, "dev-000001", &p), 0);
    assert_int_equal(p, FDL_PROFILE_SE);
    char keyfile[1200];
    fdl_identity_path(&g_ctx.st, "dev-000001", "key.pem", keyfile, sizeof keyfile);
    assert_int_not_equal(access(keyfile, F_OK), 0);   /* the key is in the token, not on disk */

    fdl_identity idn;
    assert_int_equal(fdl_identity_load(&g_ctx.st, g_ctx.se, "dev-000001", &idn, mbedtls_ctr_drbg_random, &g_ctx.drbg,
                                       err, sizeof err),
                     0);
    char dn[128];
    assert_true(mbedtls_x509_dn_gets(dn, sizeof dn, &idn.cert.subject) > 0);
    assert_string_equal(dn, "CN=dev-000001");
    assert_non_null(idn.se_key);
    assert_cert_matches_key(&idn);
    fdl_identity_free(&idn);
}

static void killed_provisioning_resumes_with_the_same_key(void **state)
{
    (void)state;
    char err[512], cert[1200];
    assert_int_equal(provision("dev-000002", FDL_PROFILE_SE, err, sizeof err), 1);
    fdl_identity before;
    assert_int_equal(fdl_identity_load(&g_ctx.st, g_ctx.se, "dev-000002", &before, mbedtls_ctr_drbg_random,
                                       &g_ctx.drbg, err, sizeof err),
                     0);
    unsigned char pub1[200];
    int l1 = mbedtls_pk_write_pubkey_der(before.key, pub1, sizeof pub1);
    fdl_identity_free(&before);

    /* As if the run was killed after keygen, before the certificate was written. */
    fdl_identity_path(&g_ctx.st, "dev-000002", "cert.pem", cert, sizeof cert);
    assert_int_equal(unlink(cert), 0);
    assert_false(fdl_identity_exists(&g_ctx.st, "dev-000002"));
    assert_int_equal(fdl_identity_load(&g_ctx.st, g_ctx.se, "dev-000002", &before, mbedtls_ctr_drbg_random,
                                       &g_ctx.drbg, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "dev-000002"));

    assert_int_equal(provision("dev-000002", FDL_PROFILE_SE, err, sizeof err), 1);
    fdl_identity after;
    assert_int_equal(fdl_identity_load(&g_ctx.st, g_ctx.se, "dev-000002", &after, mbedtls_ctr_drbg_random,
                                       &g_ctx.drbg, err, sizeof err),
                     0);
    unsigned char pub2[200];
    int l2 = mbedtls_pk_write_pubkey_der(after.key, pub2, sizeof pub2);
    assert_int_equal(l1, l2);
    assert_memory_equal(pub1 + sizeof pub1 - l1, pub2 + sizeof pub2 - l2, (size_t)l1);   /* same token key */
    assert_cert_matches_key(&after);
    fdl_identity_free(&after);
}

static void flash_identity_keeps_an_extractable_key_file(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(provision("dev-000003", FDL_PROFILE_FLASH, err, sizeof err), 1);
    assert_int_equal(mode_of("dev-000003", "key.pem"), 0600);
    assert_int_equal(fdl_se_token_exists(g_ctx.se, "dev-000003"), 0);
    fdl_identity idn;
    assert_int_equal(fdl_identity_load(&g_ctx.st, g_ctx.se, "dev-000003", &idn, mbedtls_ctr_drbg_random, &g_ctx.drbg,
                                       err, sizeof err),
                     0);
    assert_null(idn.se_key);
    assert_int_equal(idn.profile, FDL_PROFILE_FLASH);
    assert_cert_matches_key(&idn);
    fdl_identity_free(&idn);
}

static void unknown_identity_is_a_clear_error(void **state)
{
    (void)state;
    char err[512];
    fdl_identity idn;
    assert_int_equal(fdl_identity_load(&g_ctx.st, g_ctx.se, "dev-999999", &idn, mbedtls_ctr_drbg_random, &g_ctx.drbg,
                                       err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "dev-999999"));
    fdl_profile p;
    assert_int_equal(fdl_profile_parse("flash", &p), 0);
    assert_int_equal(fdl_profile_parse("tpm", &p), -1);
    char id[32];
    fdl_device_id(42, id, sizeof id);
    assert_string_equal(id, "dev-000042");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(se_identity_is_idempotent_and_tight),
        cmocka_unit_test(killed_provisioning_resumes_with_the_same_key),
        cmocka_unit_test(flash_identity_keeps_an_extractable_key_file),
        cmocka_unit_test(unknown_identity_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
