/* tests/test_se.c — the secure element against a real SoftHSM2 in a temp token dir. */
#include "testutil.h"

#include <pthread.h>

#include "devices/se.h"
#include "fdl_buildcfg.h"
#include "sim/alloc.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/ecdsa.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crt.h>

#include <p11-kit/pkcs11.h>

#define SO_PIN "so-pin-1234"
#define USER_PIN "user-pin-5678"
#define SIG_CAP 80 /* >= 72, the longest DER P-256 signature */

/* PKCS#11 is process-global: each group opens the module once, on its own dir. */
struct fx {
    char dir[256];
    char conf[512];
    fdl_se_module *m;
};

static int fx_setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof f);
    fdl_test_mkdtemp("se", f.dir, sizeof f.dir);
    fdl_test_softhsm_conf(f.dir, f.conf, sizeof f.conf);
    if (fdl_se_module_open(FDL_SOFTHSM2_MODULE, f.conf, &f.m) != FDL_SE_OK)
        return -1;
    *state = &f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    fdl_se_module_free(f->m);
    fdl_test_rmrf(f->dir);
    return 0;
}

/* A group whose tests open and close the module themselves. */
static int dir_setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof f);
    fdl_test_mkdtemp("se-persist", f.dir, sizeof f.dir);
    fdl_test_softhsm_conf(f.dir, f.conf, sizeof f.conf);
    *state = &f;
    return 0;
}

static int dir_teardown(void **state)
{
    struct fx *f = *state;
    fdl_test_rmrf(f->dir);
    return 0;
}

static void sha256(const char *msg, uint8_t out[32])
{
    assert_int_equal(mbedtls_sha256((const unsigned char *)msg, strlen(msg), out, 0), 0);
}

/* Deterministic RNG for mbedTLS calls that want one (the token ignores it). */
static int test_rng(void *ctx, unsigned char *out, size_t n)
{
    unsigned *ctr = ctx;
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(++*ctr * 167u);
    return 0;
}

/* The key's public half, written from fdl_se_key_pk and parsed into a fresh context. */
static void public_copy(fdl_se_key *k, mbedtls_pk_context *pub, unsigned char *der, size_t *der_len)
{
    unsigned char buf[256];
    int n = mbedtls_pk_write_pubkey_der(fdl_se_key_pk(k), buf, sizeof buf);
    assert_true(n > 0);
    memcpy(der, buf + sizeof buf - (size_t)n, (size_t)n);
    *der_len = (size_t)n;
    mbedtls_pk_init(pub);
    assert_int_equal(mbedtls_pk_parse_public_key(pub, der, *der_len), 0);
}

static void assert_bool_attr(fdl_se_key *k, unsigned long type, CK_BBOOL want)
{
    CK_BBOOL v = 0xff;
    unsigned long len = sizeof v;
    assert_int_equal(fdl_se_key_get_private_attr(k, type, &v, &len), CKR_OK);
    assert_int_equal(len, sizeof v);
    assert_int_equal(v, want);
}

/* ---- no module needed ------------------------------------------------------ */

static void strerror_covers_every_status(void **state)
{
    (void)state;
    for (int s = FDL_SE_OK; s <= FDL_SE_ERR_SMALL; s++) {
        assert_non_null(fdl_se_strerror((fdl_se_status)s));
        assert_string_not_equal(fdl_se_strerror((fdl_se_status)s), "unknown secure element status");
    }
    assert_string_equal(fdl_se_strerror((fdl_se_status)999), "unknown secure element status");
}

static void uri_plain_and_encoded(void **state)
{
    (void)state;
    char buf[256];
    assert_int_equal(fdl_se_uri("dev-000001", "device-key", buf, sizeof buf), FDL_SE_OK);
    assert_string_equal(buf, "pkcs11:token=dev-000001;object=device-key;type=private");

    /* Path delimiters, '%', space and non-ASCII bytes are percent-encoded (upper-case hex). */
    assert_int_equal(fdl_se_uri("a b;c/d%e", "k?=&\xc3\xa9~._", buf, sizeof buf), FDL_SE_OK);
    assert_string_equal(buf, "pkcs11:token=a%20b%3Bc%2Fd%25e;object=k%3F%3D%26%C3%A9~._;type=private");
}

static void uri_small_buffer(void **state)
{
    (void)state;
    const char *want = "pkcs11:token=t;object=k;type=private";
    size_t need = strlen(want) + 1;
    char buf[64];
    memset(buf, 'X', sizeof buf);
    assert_int_equal(fdl_se_uri("t", "k", buf, need - 1), FDL_SE_ERR_SMALL);
    assert_int_equal(buf[0], 'X'); /* untouched */
    assert_int_equal(fdl_se_uri("t", "k", buf, need), FDL_SE_OK);
    assert_string_equal(buf, want);
    assert_int_equal(fdl_se_uri(NULL, "k", buf, sizeof buf), FDL_SE_ERR_ARG);
}

static void module_load_failure(void **state)
{
    (void)state;
    fdl_se_module *m = (fdl_se_module *)1;
    assert_int_equal(fdl_se_module_open("/nonexistent/libnothing.so", NULL, &m), FDL_SE_ERR_LOAD);
    assert_null(m);
    assert_int_equal(fdl_se_module_open(NULL, NULL, &m), FDL_SE_ERR_ARG);
    fdl_se_module_free(NULL);
    fdl_se_key_free(NULL);
}

/* ---- one module, one token directory --------------------------------------- */

static void token_and_keygen_policy(void **state)
{
    struct fx *f = *state;
    assert_int_equal(fdl_se_token_exists(f->m, "dev-000001"), 0);
    assert_int_equal(fdl_se_token_create(f->m, "dev-000001", SO_PIN, USER_PIN), FDL_SE_OK);
    assert_int_equal(fdl_se_token_exists(f->m, "dev-000001"), 1);

    fdl_se_key *k = NULL;
    assert_int_equal(fdl_se_keygen(f->m, "dev-000001", USER_PIN, "device-key", &k), FDL_SE_OK);
    assert_non_null(k);

    assert_bool_attr(k, CKA_TOKEN, CK_TRUE);
    assert_bool_attr(k, CKA_PRIVATE, CK_TRUE);
    assert_bool_attr(k, CKA_SENSITIVE, CK_TRUE);
    assert_bool_attr(k, CKA_EXTRACTABLE, CK_FALSE);
    assert_bool_attr(k, CKA_SIGN, CK_TRUE);
    assert_bool_attr(k, CKA_DECRYPT, CK_FALSE);
    assert_bool_attr(k, CKA_UNWRAP, CK_FALSE);
    assert_bool_attr(k, CKA_DERIVE, CK_FALSE);
    assert_bool_attr(k, CKA_ALWAYS_SENSITIVE, CK_TRUE);
    assert_bool_attr(k, CKA_NEVER_EXTRACTABLE, CK_TRUE);

    CK_KEY_TYPE kt = 0;
    unsigned long len = sizeof kt;
    assert_int_equal(fdl_se_key_get_private_attr(k, CKA_KEY_TYPE, &kt, &len), CKR_OK);
    assert_int_equal(kt, CKK_EC);

    /* The scalar never leaves the token: asking for it, with or without a buffer. */
    len = 0;
    assert_int_equal(fdl_se_key_get_private_attr(k, CKA_VALUE, NULL, &len), CKR_ATTRIBUTE_SENSITIVE);
    unsigned char value[128];
    len = sizeof value;
    assert_int_equal(fdl_se_key_get_private_attr(k, CKA_VALUE, value, &len), CKR_ATTRIBUTE_SENSITIVE);
    assert_int_equal(len, CK_UNAVAILABLE_INFORMATION);

    /* Both halves carry the same random 16-byte CKA_ID. */
    unsigned char id[64];
    len = sizeof id;
    assert_int_equal(fdl_se_key_get_private_attr(k, CKA_ID, id, &len), CKR_OK);
    assert_int_equal(len, 16);

    assert_int_equal(mbedtls_pk_get_type(fdl_se_key_pk(k)), MBEDTLS_PK_ECKEY);
    assert_int_equal(mbedtls_pk_get_bitlen(fdl_se_key_pk(k)), 256);
    fdl_se_key_free(k);
}

static void sign_through_mbedtls_pk(void **state)
{
    struct fx *f = *state;
    fdl_se_key *k = NULL;
    assert_int_equal(fdl_se_key_open(f->m, "dev-000001", USER_PIN, "device-key", &k), FDL_SE_OK);

    uint8_t hash[32];
    sha256("fleetdrill device attestation", hash);
    unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t sig_len = 0;
    unsigned ctr = 0;
    assert_int_equal(mbedtls_pk_sign(fdl_se_key_pk(k), MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sizeof sig,
                                     &sig_len, test_rng, &ctr),
                     0);
    assert_true(sig_len >= 8 && sig_len <= 72);
    assert_int_equal(sig[0], 0x30);

    /* Verified with a separately parsed public key, as a peer would. */
    mbedtls_pk_context pub;
    unsigned char der[256];
    size_t der_len;
    public_copy(k, &pub, der, &der_len);
    assert_int_equal(mbedtls_pk_verify(&pub, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sig_len), 0);
    hash[0] ^= 1;
    assert_int_not_equal(mbedtls_pk_verify(&pub, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, sig_len), 0);
    hash[0] ^= 1;

    /* fdl_se_key_sign directly; too small an output buffer is SMALL and untouched. */
    uint8_t s2[SIG_CAP], tiny[8];
    size_t l2 = 0;
    assert_int_equal(fdl_se_key_sign(k, hash, sizeof hash, s2, sizeof s2, &l2), FDL_SE_OK);
    assert_int_equal(mbedtls_pk_verify(&pub, MBEDTLS_MD_SHA256, hash, sizeof hash, s2, l2), 0);
    memset(tiny, 0xee, sizeof tiny);
    assert_int_equal(fdl_se_key_sign(k, hash, sizeof hash, tiny, sizeof tiny, &l2), FDL_SE_ERR_SMALL);
    assert_int_equal(tiny[0], 0xee);
    assert_int_equal(mbedtls_pk_sign(fdl_se_key_pk(k), MBEDTLS_MD_SHA256, hash, sizeof hash, sig, 8, &sig_len,
                                     test_rng, &ctr),
                     MBEDTLS_ERR_PK_BUFFER_TOO_SMALL);
    assert_int_equal(fdl_se_key_sign(k, hash, 0, s2, sizeof s2, &l2), FDL_SE_ERR_ARG);

    mbedtls_pk_free(&pub);
    fdl_se_key_free(k);
}

/* The X.509 path: a self-signed certificate signed by C_Sign verifies against itself. */
static void x509_self_signed_by_token(void **state)
{
    struct fx *f = *state;
    fdl_se_key *k = NULL;
    assert_int_equal(fdl_se_key_open(f->m, "dev-000001", USER_PIN, "device-key", &k), FDL_SE_OK);

    mbedtls_x509write_cert w;
    mbedtls_x509write_crt_init(&w);
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, fdl_se_key_pk(k));
    mbedtls_x509write_crt_set_issuer_key(&w, fdl_se_key_pk(k));
    assert_int_equal(mbedtls_x509write_crt_set_subject_name(&w, "CN=dev-000001,O=fleetdrill"), 0);
    assert_int_equal(mbedtls_x509write_crt_set_issuer_name(&w, "CN=dev-000001,O=fleetdrill"), 0);
    const unsigned char serial[] = {0x01, 0x02};
    assert_int_equal(mbedtls_x509write_crt_set_serial_raw(&w, (unsigned char *)serial, sizeof serial), 0);
    assert_int_equal(mbedtls_x509write_crt_set_validity(&w, "20240101000000", "20991231235959"), 0);
    assert_int_equal(mbedtls_x509write_crt_set_basic_constraints(&w, 1, 0), 0);

    unsigned char buf[2048];
    unsigned ctr = 0;
    int n = mbedtls_x509write_crt_der(&w, buf, sizeof buf, test_rng, &ctr);
    assert_true(n > 0);
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    assert_int_equal(mbedtls_x509_crt_parse_der(&crt, buf + sizeof buf - (size_t)n, (size_t)n), 0);
    uint32_t flags = 0;
    assert_int_equal(mbedtls_x509_crt_verify(&crt, &crt, NULL, NULL, &flags, NULL, NULL), 0);
    assert_int_equal(flags, 0);

    mbedtls_x509_crt_free(&crt);
    mbedtls_x509write_crt_free(&w);
    fdl_se_key_free(k);
}

static void duplicates_and_unknowns(void **state)
{
    struct fx *f = *state;
    fdl_se_key *k = (fdl_se_key *)1;
    assert_int_equal(fdl_se_token_create(f->m, "dev-000001", SO_PIN, USER_PIN), FDL_SE_ERR_EXISTS);
    assert_int_equal(fdl_se_keygen(f->m, "dev-000001", USER_PIN, "device-key", &k), FDL_SE_ERR_EXISTS);
    assert_null(k);

    assert_int_equal(fdl_se_token_exists(f->m, "dev-999999"), 0);
    assert_int_equal(fdl_se_key_open(f->m, "dev-999999", USER_PIN, "device-key", &k), FDL_SE_ERR_NOT_FOUND);
    assert_int_equal(fdl_se_keygen(f->m, "dev-999999", USER_PIN, "device-key", &k), FDL_SE_ERR_NOT_FOUND);
    assert_int_equal(fdl_se_key_open(f->m, "dev-000001", USER_PIN, "no-such-key", &k), FDL_SE_ERR_NOT_FOUND);
    assert_null(k);
}

static void wrong_pin(void **state)
{
    struct fx *f = *state;
    fdl_se_key *k = NULL, *k2 = NULL;
    assert_int_equal(fdl_se_key_open(f->m, "dev-000001", "not-the-pin", "device-key", &k), FDL_SE_ERR_PIN);
    assert_null(k);
    assert_int_equal(fdl_se_last_rv(f->m), CKR_PIN_INCORRECT);

    /* Also while the token is already logged in through another key. */
    assert_int_equal(fdl_se_key_open(f->m, "dev-000001", USER_PIN, "device-key", &k), FDL_SE_OK);
    assert_int_equal(fdl_se_key_open(f->m, "dev-000001", "not-the-pin", "device-key", &k2), FDL_SE_ERR_PIN);
    assert_null(k2);
    fdl_se_key_free(k);
}

/* Keys sharing a token share its login: freeing one must not log out the other. */
static void two_keys_one_token(void **state)
{
    struct fx *f = *state;
    assert_int_equal(fdl_se_token_create(f->m, "shared", SO_PIN, USER_PIN), FDL_SE_OK);
    fdl_se_key *a = NULL, *b = NULL, *a2 = NULL;
    assert_int_equal(fdl_se_keygen(f->m, "shared", USER_PIN, "key-a", &a), FDL_SE_OK);
    assert_int_equal(fdl_se_keygen(f->m, "shared", USER_PIN, "key-b", &b), FDL_SE_OK);
    assert_int_equal(fdl_se_key_open(f->m, "shared", USER_PIN, "key-a", &a2), FDL_SE_OK);

    uint8_t hash[32], sig[SIG_CAP];
    size_t len;
    sha256("two keys", hash);
    fdl_se_key_free(a);
    assert_int_equal(fdl_se_key_sign(b, hash, sizeof hash, sig, sizeof sig, &len), FDL_SE_OK);
    assert_int_equal(fdl_se_key_sign(a2, hash, sizeof hash, sig, sizeof sig, &len), FDL_SE_OK);
    assert_int_equal(mbedtls_pk_verify(fdl_se_key_pk(a2), MBEDTLS_MD_SHA256, hash, sizeof hash, sig, len), 0);
    fdl_se_key_free(a2);
    assert_int_equal(fdl_se_key_sign(b, hash, sizeof hash, sig, sizeof sig, &len), FDL_SE_OK);
    fdl_se_key_free(b);

    /* Distinct keys really are distinct. */
    fdl_se_key *x = NULL, *y = NULL;
    assert_int_equal(fdl_se_key_open(f->m, "shared", USER_PIN, "key-a", &x), FDL_SE_OK);
    assert_int_equal(fdl_se_key_open(f->m, "shared", USER_PIN, "key-b", &y), FDL_SE_OK);
    assert_int_equal(fdl_se_key_sign(x, hash, sizeof hash, sig, sizeof sig, &len), FDL_SE_OK);
    assert_int_not_equal(mbedtls_pk_verify(fdl_se_key_pk(y), MBEDTLS_MD_SHA256, hash, sizeof hash, sig, len), 0);
    fdl_se_key_free(x);
    fdl_se_key_free(y);
}

static void bad_arguments(void **state)
{
    struct fx *f = *state;
    fdl_se_key *k = NULL;
    const char *long33 = "123456789012345678901234567890123";
    assert_int_equal(fdl_se_token_create(f->m, long33, SO_PIN, USER_PIN), FDL_SE_ERR_ARG);
    assert_int_equal(fdl_se_token_create(f->m, "", SO_PIN, USER_PIN), FDL_SE_ERR_ARG);
    assert_int_equal(fdl_se_token_create(f->m, "trailing ", SO_PIN, USER_PIN), FDL_SE_ERR_ARG);
    assert_int_equal(fdl_se_token_create(f->m, "nopin", NULL, USER_PIN), FDL_SE_ERR_ARG);
    assert_int_equal(fdl_se_token_create(NULL, "x", SO_PIN, USER_PIN), FDL_SE_ERR_ARG);
    assert_int_equal(fdl_se_token_exists(f->m, long33), 0);
    assert_int_equal(fdl_se_keygen(f->m, "dev-000001", USER_PIN, "", &k), FDL_SE_ERR_ARG);
    assert_int_equal(fdl_se_keygen(f->m, "dev-000001", USER_PIN, "k", NULL), FDL_SE_ERR_ARG);
    assert_int_equal(fdl_se_key_open(f->m, "dev-000001", NULL, "device-key", &k), FDL_SE_ERR_ARG);
    assert_null(fdl_se_key_pk(NULL));
    /* A 32-byte label is the maximum and works. */
    assert_int_equal(fdl_se_token_create(f->m, "12345678901234567890123456789012", SO_PIN, USER_PIN), FDL_SE_OK);
    assert_int_equal(fdl_se_token_exists(f->m, "12345678901234567890123456789012"), 1);
}

static void allocations_balance(void **state)
{
    struct fx *f = *state;
    fdl_alloc_stats a = fdl_alloc_get_stats();
    assert_int_equal(fdl_se_token_create(f->m, "dev-000002", SO_PIN, USER_PIN), FDL_SE_OK);
    fdl_se_key *k = NULL;
    assert_int_equal(fdl_se_keygen(f->m, "dev-000002", USER_PIN, "device-key", &k), FDL_SE_OK);
    uint8_t hash[32], sig[SIG_CAP];
    size_t len;
    sha256("balance", hash);
    assert_int_equal(fdl_se_key_sign(k, hash, sizeof hash, sig, sizeof sig, &len), FDL_SE_OK);
    fdl_se_key_free(k);
    assert_int_equal(fdl_se_key_open(f->m, "dev-000002", USER_PIN, "device-key", &k), FDL_SE_OK);
    fdl_se_key_free(k);
    assert_int_equal(fdl_se_key_open(f->m, "dev-000002", "wrong-pin", "device-key", &k), FDL_SE_ERR_PIN);
    fdl_alloc_stats b = fdl_alloc_get_stats();
    /* The module's own tables (label map, slot scratch) may have grown; those
     * are module allocations freed with it and are checked in persistence. */
    uint64_t module_growth = (b.allocs - a.allocs) - (b.frees - a.frees);
    assert_true(module_growth <= 2);

    /* Keys alone balance exactly. */
    a = fdl_alloc_get_stats();
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fdl_se_key_open(f->m, "dev-000002", USER_PIN, "device-key", &k), FDL_SE_OK);
        fdl_se_key_free(k);
    }
    b = fdl_alloc_get_stats();
    assert_int_equal(b.allocs - a.allocs, 5);
    assert_int_equal(b.frees - a.frees, 5);
}

/* Every allocation fails in turn: each failure is NOMEM and leaks nothing. */
static void allocation_failures(void **state)
{
    struct fx *f = *state;
    int ok = 0;
    for (uint64_t nth = 1; nth < 20 && !ok; nth++) {
        fdl_alloc_stats a = fdl_alloc_get_stats();
        fdl_alloc_fail_nth(nth);
        fdl_se_key *k = NULL;
        fdl_se_status st = fdl_se_key_open(f->m, "dev-000002", USER_PIN, "device-key", &k);
        fdl_alloc_fail_nth(0);
        if (st == FDL_SE_OK) {
            ok = 1;
            fdl_se_key_free(k);
        } else {
            assert_int_equal(st, FDL_SE_ERR_NOMEM);
            assert_null(k);
        }
        fdl_alloc_stats b = fdl_alloc_get_stats();
        assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
    }
    assert_true(ok);
}

static void second_module_refused(void **state)
{
    struct fx *f = *state;
    fdl_se_module *m2 = NULL;
    assert_int_equal(fdl_se_module_open(FDL_SOFTHSM2_MODULE, f->conf, &m2), FDL_SE_ERR_LOAD);
    assert_null(m2);
    /* The first one is unaffected. */
    assert_int_equal(fdl_se_token_exists(f->m, "dev-000001"), 1);
}

/* ---- persistence: free everything, C_Finalize, start again ------------------ */

static void key_persists_across_finalize(void **state)
{
    struct fx *f = *state;
    fdl_alloc_stats a = fdl_alloc_get_stats();
    unsigned char der1[256], der2[256];
    size_t der1_len, der2_len;
    uint8_t hash[32], sig[SIG_CAP];
    size_t len;
    sha256("persist", hash);

    fdl_se_module *m = NULL;
    assert_int_equal(fdl_se_module_open(FDL_SOFTHSM2_MODULE, f->conf, &m), FDL_SE_OK);
    assert_int_equal(fdl_se_token_create(m, "dev-000042", SO_PIN, USER_PIN), FDL_SE_OK);
    assert_int_equal(fdl_se_token_create(m, "dev-000043", SO_PIN, USER_PIN), FDL_SE_OK);
    fdl_se_key *k = NULL;
    assert_int_equal(fdl_se_keygen(m, "dev-000042", USER_PIN, "device-key", &k), FDL_SE_OK);
    mbedtls_pk_context pub;
    public_copy(k, &pub, der1, &der1_len);
    mbedtls_pk_free(&pub);
    fdl_se_key_free(k);
    fdl_se_module_free(m);

    /* A new C_Initialize: slot IDs differ, labels still find the tokens. */
    m = NULL;
    assert_int_equal(fdl_se_module_open(FDL_SOFTHSM2_MODULE, f->conf, &m), FDL_SE_OK);
    assert_int_equal(fdl_se_token_exists(m, "dev-000042"), 1);
    assert_int_equal(fdl_se_token_exists(m, "dev-000043"), 1);
    assert_int_equal(fdl_se_key_open(m, "dev-000042", USER_PIN, "device-key", &k), FDL_SE_OK);
    public_copy(k, &pub, der2, &der2_len);
    assert_int_equal(der1_len, der2_len);
    assert_memory_equal(der1, der2, der1_len);
    assert_int_equal(fdl_se_key_sign(k, hash, sizeof hash, sig, sizeof sig, &len), FDL_SE_OK);
    assert_int_equal(mbedtls_pk_verify(&pub, MBEDTLS_MD_SHA256, hash, sizeof hash, sig, len), 0);
    mbedtls_pk_free(&pub);
    fdl_se_key_free(k);

    /* Creating after a restart finds the new free slot too. */
    assert_int_equal(fdl_se_token_create(m, "dev-000044", SO_PIN, USER_PIN), FDL_SE_OK);
    assert_int_equal(fdl_se_keygen(m, "dev-000044", USER_PIN, "device-key", &k), FDL_SE_OK);
    fdl_se_key_free(k);
    assert_int_equal(fdl_se_token_create(m, "dev-000045", SO_PIN, USER_PIN), FDL_SE_OK);
    assert_int_equal(fdl_se_key_open(m, "dev-000044", USER_PIN, "device-key", &k), FDL_SE_OK);
    fdl_se_key_free(k);
    fdl_se_module_free(m);

    fdl_alloc_stats b = fdl_alloc_get_stats();
    assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
}

/* Logins run outside the module lock: threads opening keys at once on distinct tokens and on
 * one shared token all end up with working keys, and a wrong PIN is still refused. */
#define CC_THREADS 4
#define CC_TOKENS 6
struct cc_arg {
    fdl_se_module *m;
    int idx, ok, refused;
};

static void *cc_worker(void *p)
{
    struct cc_arg *a = p;
    uint8_t hash[32], sig[SIG_CAP];
    size_t len;
    sha256("concurrent", hash);
    for (int round = 0; round < 3; round++) {
        fdl_se_key *keys[CC_TOKENS + 1] = {0};
        char label[32];
        for (int t = 0; t < CC_TOKENS; t++) {
            /* Token 0 is shared by every thread; the others are this thread's own. */
            snprintf(label, sizeof label, t == 0 ? "cc-shared" : "cc-%d-%d", a->idx, t);
            if (fdl_se_key_open(a->m, label, USER_PIN, "device-key", &keys[t]) == FDL_SE_OK &&
                fdl_se_key_sign(keys[t], hash, sizeof hash, sig, sizeof sig, &len) == FDL_SE_OK)
                a->ok++;
        }
        if (fdl_se_key_open(a->m, "cc-shared", "wrong-pin", "device-key", &keys[CC_TOKENS]) == FDL_SE_ERR_PIN)
            a->refused++;
        for (int t = 0; t <= CC_TOKENS; t++)
            fdl_se_key_free(keys[t]);
    }
    return NULL;
}

static void concurrent_logins(void **state)
{
    struct fx *f = *state;
    fdl_se_module *m = NULL;
    fdl_se_key *k = NULL;
    assert_int_equal(fdl_se_module_open(FDL_SOFTHSM2_MODULE, f->conf, &m), FDL_SE_OK);
    char label[32];
    assert_int_equal(fdl_se_token_create(m, "cc-shared", SO_PIN, USER_PIN), FDL_SE_OK);
    assert_int_equal(fdl_se_keygen(m, "cc-shared", USER_PIN, "device-key", &k), FDL_SE_OK);
    fdl_se_key_free(k);
    for (int i = 0; i < CC_THREADS; i++)
        for (int t = 1; t < CC_TOKENS; t++) {
            snprintf(label, sizeof label, "cc-%d-%d", i, t);
            assert_int_equal(fdl_se_token_create(m, label, SO_PIN, USER_PIN), FDL_SE_OK);
            assert_int_equal(fdl_se_keygen(m, label, USER_PIN, "device-key", &k), FDL_SE_OK);
            fdl_se_key_free(k);
        }
    pthread_t th[CC_THREADS];
    struct cc_arg args[CC_THREADS];
    for (int i = 0; i < CC_THREADS; i++) {
        args[i] = (struct cc_arg){.m = m, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, cc_worker, &args[i]), 0);
    }
    for (int i = 0; i < CC_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 3 * CC_TOKENS);
        assert_int_equal(args[i].refused, 3);
    }
    fdl_se_module_free(m);
}

/* Fast teardown: after fdl_se_module_shutdown, keys only free memory, signing fails, and the
 * tokens and keys are intact for the next C_Initialize. */
static void shutdown_then_free(void **state)
{
    struct fx *f = *state;
    fdl_alloc_stats a = fdl_alloc_get_stats();
    uint8_t hash[32], sig[SIG_CAP];
    size_t len;
    sha256("shutdown", hash);
    fdl_se_module *m = NULL;
    fdl_se_key *k1 = NULL, *k2 = NULL;
    assert_int_equal(fdl_se_module_open(FDL_SOFTHSM2_MODULE, f->conf, &m), FDL_SE_OK);
    assert_int_equal(fdl_se_token_create(m, "dev-000050", SO_PIN, USER_PIN), FDL_SE_OK);
    assert_int_equal(fdl_se_token_create(m, "dev-000051", SO_PIN, USER_PIN), FDL_SE_OK);
    assert_int_equal(fdl_se_keygen(m, "dev-000050", USER_PIN, "device-key", &k1), FDL_SE_OK);
    assert_int_equal(fdl_se_keygen(m, "dev-000051", USER_PIN, "device-key", &k2), FDL_SE_OK);
    fdl_se_module_shutdown(m);
    fdl_se_module_shutdown(m);   /* idempotent */
    assert_int_not_equal(fdl_se_key_sign(k1, hash, sizeof hash, sig, sizeof sig, &len), FDL_SE_OK);
    fdl_se_key_free(k1);
    fdl_se_key_free(k2);
    fdl_se_module_free(m);
    m = NULL;
    assert_int_equal(fdl_se_module_open(FDL_SOFTHSM2_MODULE, f->conf, &m), FDL_SE_OK);
    assert_int_equal(fdl_se_key_open(m, "dev-000051", USER_PIN, "device-key", &k2), FDL_SE_OK);
    assert_int_equal(fdl_se_key_sign(k2, hash, sizeof hash, sig, sizeof sig, &len), FDL_SE_OK);
    fdl_se_key_free(k2);
    fdl_se_module_free(m);
    fdl_se_module_shutdown(NULL);
    fdl_alloc_stats b = fdl_alloc_get_stats();
    assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
}

int main(void)
{
    const struct CMUnitTest pure[] = {
        cmocka_unit_test(strerror_covers_every_status),
        cmocka_unit_test(uri_plain_and_encoded),
        cmocka_unit_test(uri_small_buffer),
        cmocka_unit_test(module_load_failure),
    };
    const struct CMUnitTest token[] = {
        cmocka_unit_test(token_and_keygen_policy),
        cmocka_unit_test(sign_through_mbedtls_pk),
        cmocka_unit_test(x509_self_signed_by_token),
        cmocka_unit_test(duplicates_and_unknowns),
        cmocka_unit_test(wrong_pin),
        cmocka_unit_test(two_keys_one_token),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(allocations_balance),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(second_module_refused),
    };
    const struct CMUnitTest persist[] = {
        cmocka_unit_test(key_persists_across_finalize),
        cmocka_unit_test(shutdown_then_free),
        cmocka_unit_test(concurrent_logins),
    };
    int failed = 0;
    failed += cmocka_run_group_tests_name("se_pure", pure, NULL, NULL);
    failed += cmocka_run_group_tests_name("se_token", token, fx_setup, fx_teardown);
    failed += cmocka_run_group_tests_name("se_persist", persist, dir_setup, dir_teardown);
    return failed;
}
