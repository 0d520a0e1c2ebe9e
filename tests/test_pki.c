/* tests/test_pki.c — the fleet CA: hierarchy fields, chains, rogue CA, idempotence, token path. */
#include "testutil.h"

#include "cloud/pki.h"
#include "devices/se.h"
#include "fdl_buildcfg.h"
#include "sim/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>
#include <p11-kit/pkcs11.h>

/* ---------------------------------------------------------------------------------------- */
/* Helpers.                                                                                  */

static void path_of(char *buf, size_t cap, const char *dir, const char *file)
{
    snprintf(buf, cap, "%s/%s", dir, file);
}

static void load_crt(mbedtls_x509_crt *crt, const char *dir, const char *file)
{
    char p[4200];
    path_of(p, sizeof p, dir, file);
    mbedtls_x509_crt_init(crt);
    int rc = mbedtls_x509_crt_parse_file(crt, p);
    if (rc != 0)
        fail_msg("parse %s: -0x%04x", p, (unsigned)-rc);
}

/* Whole-file contents, NUL-terminated; caller frees with free(). */
static char *slurp(const char *dir, const char *file, size_t *len)
{
    char p[4200];
    path_of(p, sizeof p, dir, file);
    FILE *f = fopen(p, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(65536);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = n;
    return buf;
}

static unsigned file_mode(const char *dir, const char *file)
{
    char p[4200];
    struct stat sb;
    path_of(p, sizeof p, dir, file);
    assert_int_equal(stat(p, &sb), 0);
    return (unsigned)(sb.st_mode & 0777);
}

static void assert_dn(const mbedtls_x509_name *name, const char *want)
{
    char dn[256];
    assert_true(mbedtls_x509_dn_gets(dn, sizeof dn, name) > 0);
    assert_string_equal(dn, want);
}

/* mbedtls_x509_crt_info's text for one certificate, to assert on its lines. */
static void crt_info(const mbedtls_x509_crt *crt, char *buf, size_t cap)
{
    assert_true(mbedtls_x509_crt_info(buf, cap, "", crt) > 0);
}

static void assert_has_line(const char *info, const char *line)
{
    if (!strstr(info, line))
        fail_msg("expected \"%s\" in:\n%s", line, info);
}

/* Verifies leaf (+ untrusted intermediates chained after it) against trust; returns the flags. */
static uint32_t verify(mbedtls_x509_crt *chain, mbedtls_x509_crt *trust)
{
    uint32_t flags = 0;
    int rc = mbedtls_x509_crt_verify(chain, trust, NULL, NULL, &flags, NULL, NULL);
    if (rc == 0)
        assert_int_equal(flags, 0);
    else
        assert_int_not_equal(flags, 0);
    return flags;
}

/* Issues a leaf for a fresh software key; the returned chain holds leaf then intermediate. */
static void issue_leaf(fdl_pki *pki, const char *id, mbedtls_x509_crt *chain, fdl_pki_issued *got)
{
    unsigned char pem[FDL_PKI_CERT_MAX];
    mbedtls_pk_context key;
    fdl_test_gen_key(&key, MBEDTLS_ECP_DP_SECP256R1);
    fdl_pki_leaf_req req = {.device_id = id, .public_key = &key};
    assert_int_equal(fdl_pki_issue(pki, &req, FDL_PKI_PEM, pem, sizeof pem, got), FDL_PKI_OK);
    assert_int_equal(strlen((char *)pem), got->len);
    mbedtls_x509_crt_init(chain);
    assert_int_equal(mbedtls_x509_crt_parse(chain, pem, got->len + 1), 0);
    const mbedtls_x509_crt *issuer = fdl_pki_chain(pki);
    assert_int_equal(mbedtls_x509_crt_parse_der(chain, issuer->raw.p, issuer->raw.len), 0);
    mbedtls_pk_free(&key);
}

static int run(const char *cmd)
{
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* ---------------------------------------------------------------------------------------- */
/* Software CA: the fields of every certificate.                                            */

static void hierarchy_fields(void **state)
{
    (void)state;
    char dir[256], info[4096];
    mbedtls_x509_crt root, inter, server;
    fdl_test_mkdtemp("pki-fields", dir, sizeof dir);
    assert_int_equal(fdl_pki_setup_soft(dir, NULL), FDL_PKI_OK);

    load_crt(&root, dir, FDL_PKI_ROOT_PEM);
    load_crt(&inter, dir, FDL_PKI_INTERMEDIATE_PEM);
    load_crt(&server, dir, FDL_PKI_SERVER_PEM);

    /* Root: CN only, self-signed, CA pathlen 1, keyCertSign|cRLSign, 10 years, SKI = AKI. */
    assert_dn(&root.subject, "CN=fleetdrill Root CA");
    assert_dn(&root.issuer, "CN=fleetdrill Root CA");
    crt_info(&root, info, sizeof info);
    assert_has_line(info, "basic constraints : CA=true, max_pathlen=1\n");
    assert_has_line(info, "key usage         : Key Cert Sign, CRL Sign\n");
    assert_null(strstr(info, "ext key usage"));
    assert_int_equal(root.valid_to.year - root.valid_from.year, 10);
    assert_int_equal(root.version, 3);
    assert_true(root.subject_key_id.len > 0);
    assert_int_equal(root.authority_key_id.keyIdentifier.len, root.subject_key_id.len);
    assert_memory_equal(root.authority_key_id.keyIdentifier.p, root.subject_key_id.p, root.subject_key_id.len);

    /* Intermediate: CA pathlen 0, 5 years, AKI = root SKI. */
    assert_dn(&inter.subject, "CN=fleetdrill Issuing CA 1");
    assert_dn(&inter.issuer, "CN=fleetdrill Root CA");
    crt_info(&inter, info, sizeof info);
    assert_has_line(info, "basic constraints : CA=true, max_pathlen=0\n");
    assert_has_line(info, "key usage         : Key Cert Sign, CRL Sign\n");
    assert_true(inter.valid_to.year - inter.valid_from.year >= 5);
    assert_memory_equal(inter.authority_key_id.keyIdentifier.p, root.subject_key_id.p, root.subject_key_id.len);

    /* Server: CN=localhost, SAN DNS:localhost + IP:127.0.0.1, serverAuth, not a CA, 1 year. */
    assert_dn(&server.subject, "CN=localhost");
    crt_info(&server, info, sizeof info);
    assert_has_line(info, "basic constraints : CA=false\n");
    assert_has_line(info, "key usage         : Digital Signature\n");
    assert_has_line(info, "ext key usage     : TLS Web Server Authentication\n");
    assert_has_line(info, "dNSName : localhost");
    assert_has_line(info, "iPAddress : 127.0.0.1");
    assert_int_equal(server.valid_to.year - server.valid_from.year, 1);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&server, MBEDTLS_OID_SERVER_AUTH,
                                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
                     0);

    /* Serials: 16 bytes, positive, no leading zero byte. */
    assert_int_equal(server.serial.len, FDL_PKI_SERIAL_LEN);
    assert_int_equal(server.serial.p[0] & 0xc0, 0x40);

    /* The server chain verifies, and so does the host name the devices check. */
    assert_int_equal(mbedtls_x509_crt_parse_der(&server, inter.raw.p, inter.raw.len), 0);
    uint32_t flags = 0;
    assert_int_equal(mbedtls_x509_crt_verify(&server, &root, NULL, "localhost", &flags, NULL, NULL), 0);

    /* chain.pem is intermediate then root. */
    mbedtls_x509_crt chain;
    load_crt(&chain, dir, FDL_PKI_CHAIN_PEM);
    assert_non_null(chain.next);
    assert_null(chain.next->next);
    assert_memory_equal(chain.raw.p, inter.raw.p, inter.raw.len);
    assert_memory_equal(chain.next->raw.p, root.raw.p, root.raw.len);

    /* Secrets are 0600; certificates 0644. */
    assert_int_equal(file_mode(dir, FDL_PKI_SERVER_KEY_PEM), 0600);
    assert_int_equal(file_mode(dir, FDL_PKI_ROOT_KEY_PEM), 0600);
    assert_int_equal(file_mode(dir, FDL_PKI_INTERMEDIATE_KEY_PEM), 0600);
    assert_int_equal(file_mode(dir, FDL_PKI_ROOT_PEM), 0644);

    mbedtls_x509_crt_free(&chain);
    mbedtls_x509_crt_free(&root);
    mbedtls_x509_crt_free(&inter);
    mbedtls_x509_crt_free(&server);
    fdl_test_rmrf(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Leaves: fields and chain.                                                                 */

static void leaf_fields_and_chain(void **state)
{
    (void)state;
    char dir[256], info[4096];
    fdl_pki *pki = NULL;
    mbedtls_x509_crt leaf, root, chain_pem;
    fdl_pki_issued got;

    fdl_test_mkdtemp("pki-leaf", dir, sizeof dir);
    assert_int_equal(fdl_pki_setup_soft(dir, NULL), FDL_PKI_OK);
    assert_int_equal(fdl_pki_open_soft(dir, &pki), FDL_PKI_OK);
    assert_int_equal(fdl_pki_issued_count(pki), 0);

    issue_leaf(pki, "dev-000001", &leaf, &got);
    assert_int_equal(fdl_pki_issued_count(pki), 1);

    /* Subject is exactly CN=<device id>: no other field. */
    assert_dn(&leaf.subject, "CN=dev-000001");
    assert_null(leaf.subject.next);
    assert_dn(&leaf.issuer, "CN=fleetdrill Issuing CA 1");
    crt_info(&leaf, info, sizeof info);
    assert_has_line(info, "basic constraints : CA=false\n");
    assert_has_line(info, "key usage         : Digital Signature\n");
    assert_has_line(info, "ext key usage     : TLS Web Client Authentication\n");
    assert_null(strstr(info, "subject alt name"));
    assert_int_equal(leaf.valid_to.year - leaf.valid_from.year, 1);
    assert_true(leaf.subject_key_id.len > 0);
    assert_int_equal(leaf.serial.len, FDL_PKI_SERIAL_LEN);
    assert_memory_equal(leaf.serial.p, got.serial, FDL_PKI_SERIAL_LEN);
    assert_int_equal(mbedtls_x509_crt_check_extended_key_usage(&leaf, MBEDTLS_OID_CLIENT_AUTH,
                                                               MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
                     0);
    assert_int_not_equal(mbedtls_x509_crt_check_extended_key_usage(&leaf, MBEDTLS_OID_SERVER_AUTH,
                                                                   MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
                         0);

    /* Leaf + intermediate verifies against the root alone, and against chain.pem. */
    load_crt(&root, dir, FDL_PKI_ROOT_PEM);
    assert_int_equal(verify(&leaf, &root), 0);
    load_crt(&chain_pem, dir, FDL_PKI_CHAIN_PEM);
    assert_int_equal(verify(&leaf, &chain_pem), 0);

    /* Two leaves never share a serial. */
    mbedtls_x509_crt leaf2;
    fdl_pki_issued got2;
    issue_leaf(pki, "dev-000002", &leaf2, &got2);
    assert_memory_not_equal(got.serial, got2.serial, FDL_PKI_SERIAL_LEN);

    /* DER output, custom validity window, and the file variant. */
    unsigned char der[FDL_PKI_CERT_MAX];
    mbedtls_pk_context key;
    fdl_test_gen_key(&key, MBEDTLS_ECP_DP_SECP256R1);
    time_t nb = 1893456000; /* 2030-01-01 */
    fdl_pki_leaf_req req = {.device_id = "dev-000003", .public_key = &key, .validity_days = 30,
                            .not_before = nb};
    assert_int_equal(fdl_pki_issue(pki, &req, FDL_PKI_DER, der, sizeof der, &got), FDL_PKI_OK);
    mbedtls_x509_crt d;
    mbedtls_x509_crt_init(&d);
    assert_int_equal(mbedtls_x509_crt_parse_der(&d, der, got.len), 0);
    assert_int_equal(d.valid_from.year, 2030);
    assert_int_equal(d.valid_from.mon, 1);
    assert_int_equal(d.valid_to.mon, 1);
    assert_int_equal(d.valid_to.day, 31);
    /* Not yet valid today: verification must say FUTURE. */
    assert_int_equal(mbedtls_x509_crt_parse_der(&d, fdl_pki_chain(pki)->raw.p, fdl_pki_chain(pki)->raw.len), 0);
    assert_true(verify(&d, &root) & MBEDTLS_X509_BADCERT_FUTURE);
    mbedtls_x509_crt_free(&d);

    char p[4200];
    path_of(p, sizeof p, dir, "dev-000004.pem");
    req.device_id = "dev-000004";
    req.not_before = 0;
    req.validity_days = 0;
    assert_int_equal(fdl_pki_issue_file(pki, &req, p, &got), FDL_PKI_OK);
    mbedtls_x509_crt f;
    load_crt(&f, dir, "dev-000004.pem");
    assert_dn(&f.subject, "CN=dev-000004");
    assert_memory_equal(f.serial.p, got.serial, FDL_PKI_SERIAL_LEN);
    mbedtls_x509_crt_free(&f);

    mbedtls_pk_free(&key);
    mbedtls_x509_crt_free(&leaf2);
    mbedtls_x509_crt_free(&chain_pem);
    mbedtls_x509_crt_free(&root);
    mbedtls_x509_crt_free(&leaf);
    fdl_pki_free(pki);
    fdl_test_rmrf(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* A rogue CA with the very same names: nothing it signs verifies against our root.        */

static void rogue_ca_rejected(void **state)
{
    (void)state;
    char ours[256], rogue[256];
    fdl_pki *rpki = NULL;
    mbedtls_x509_crt our_root, our_chain, rogue_server, leaf;
    fdl_pki_issued got;

    fdl_test_mkdtemp("pki-ours", ours, sizeof ours);
    fdl_test_mkdtemp("pki-rogue", rogue, sizeof rogue);
    assert_int_equal(fdl_pki_setup_soft(ours, NULL), FDL_PKI_OK);
    assert_int_equal(fdl_pki_setup_soft(rogue, NULL), FDL_PKI_OK);
    load_crt(&our_root, ours, FDL_PKI_ROOT_PEM);
    load_crt(&our_chain, ours, FDL_PKI_CHAIN_PEM);

    /* The names are identical: only the signatures tell the two apart. */
    mbedtls_x509_crt rogue_root;
    load_crt(&rogue_root, rogue, FDL_PKI_ROOT_PEM);
    assert_int_equal(rogue_root.subject_raw.len, our_root.subject_raw.len);
    assert_memory_equal(rogue_root.subject_raw.p, our_root.subject_raw.p, our_root.subject_raw.len);

    /* Rogue leaf (+ rogue intermediate) against our root and our chain: not trusted. */
    assert_int_equal(fdl_pki_open_soft(rogue, &rpki), FDL_PKI_OK);
    issue_leaf(rpki, "dev-000001", &leaf, &got);
    assert_true(verify(&leaf, &our_root) & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
    assert_true(verify(&leaf, &our_chain) & MBEDTLS_X509_BADCERT_NOT_TRUSTED);

    /* The rogue broker identity (server.pem + its intermediate) fails the same way. */
    load_crt(&rogue_server, rogue, FDL_PKI_SERVER_PEM);
    mbedtls_x509_crt rogue_inter;
    load_crt(&rogue_inter, rogue, FDL_PKI_INTERMEDIATE_PEM);
    assert_int_equal(mbedtls_x509_crt_parse_der(&rogue_server, rogue_inter.raw.p, rogue_inter.raw.len), 0);
    assert_true(verify(&rogue_server, &our_root) & MBEDTLS_X509_BADCERT_NOT_TRUSTED);
    /* ...while it is perfectly valid under its own root. */
    assert_int_equal(verify(&rogue_server, &rogue_root), 0);

    mbedtls_x509_crt_free(&rogue_inter);
    mbedtls_x509_crt_free(&rogue_root);
    mbedtls_x509_crt_free(&rogue_server);
    mbedtls_x509_crt_free(&leaf);
    mbedtls_x509_crt_free(&our_chain);
    mbedtls_x509_crt_free(&our_root);
    fdl_pki_free(rpki);
    fdl_test_rmrf(ours);
    fdl_test_rmrf(rogue);
}

/* ---------------------------------------------------------------------------------------- */
/* Idempotence: a second setup changes nothing; tampering is refused, not papered over.     */

static void setup_is_idempotent(void **state)
{
    (void)state;
    static const char *const files[] = {FDL_PKI_ROOT_PEM, FDL_PKI_INTERMEDIATE_PEM, FDL_PKI_CHAIN_PEM,
                                        FDL_PKI_SERVER_PEM, FDL_PKI_SERVER_KEY_PEM, FDL_PKI_ROOT_KEY_PEM,
                                        FDL_PKI_INTERMEDIATE_KEY_PEM};
    enum { N = sizeof files / sizeof files[0] };
    char dir[256], other[256], p[4200], q[4200];
    char *before[N];

    fdl_test_mkdtemp("pki-idem", dir, sizeof dir);
    assert_int_equal(fdl_pki_setup_soft(dir, NULL), FDL_PKI_OK);
    for (int i = 0; i < N; i++)
        assert_non_null(before[i] = slurp(dir, files[i], NULL));

    assert_int_equal(fdl_pki_setup_soft(dir, NULL), FDL_PKI_OK);
    for (int i = 0; i < N; i++) {
        char *now = slurp(dir, files[i], NULL);
        assert_non_null(now);
        assert_string_equal(now, before[i]);
        free(now);
    }

    /* A lost derived file is recreated identically. */
    path_of(p, sizeof p, dir, FDL_PKI_CHAIN_PEM);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(fdl_pki_setup_soft(dir, NULL), FDL_PKI_OK);
    char *chain = slurp(dir, FDL_PKI_CHAIN_PEM, NULL);
    assert_string_equal(chain, before[2]);
    free(chain);

    /* A foreign intermediate.pem is refused and left alone for a human to look at. */
    fdl_test_mkdtemp("pki-idem-other", other, sizeof other);
    assert_int_equal(fdl_pki_setup_soft(other, NULL), FDL_PKI_OK);
    path_of(p, sizeof p, other, FDL_PKI_INTERMEDIATE_PEM);
    path_of(q, sizeof q, dir, FDL_PKI_INTERMEDIATE_PEM);
    assert_int_equal(rename(p, q), 0);
    char *foreign = slurp(dir, FDL_PKI_INTERMEDIATE_PEM, NULL);
    assert_int_equal(fdl_pki_setup_soft(dir, NULL), FDL_PKI_ERR_MISMATCH);
    assert_non_null(strstr(fdl_pki_last_error(), FDL_PKI_INTERMEDIATE_PEM));
    char *after = slurp(dir, FDL_PKI_INTERMEDIATE_PEM, NULL);
    assert_string_equal(after, foreign);
    free(after);
    free(foreign);

    /* And a PKI with a foreign intermediate cannot be opened for issuance. */
    fdl_pki *pki = NULL;
    assert_int_equal(fdl_pki_open_soft(dir, &pki), FDL_PKI_ERR_MISMATCH);
    assert_null(pki);

    for (int i = 0; i < N; i++)
        free(before[i]);
    fdl_test_rmrf(other);
    fdl_test_rmrf(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Hostile or wrong input.                                                                   */

static void refuses_bad_input(void **state)
{
    (void)state;
    char dir[256], p[4200];
    unsigned char buf[FDL_PKI_CERT_MAX];
    fdl_pki *pki = NULL;
    mbedtls_pk_context p256, p384;

    fdl_test_mkdtemp("pki-bad", dir, sizeof dir);
    assert_int_equal(fdl_pki_setup_soft(dir, NULL), FDL_PKI_OK);
    assert_int_equal(fdl_pki_open_soft(dir, &pki), FDL_PKI_OK);
    fdl_test_gen_key(&p256, MBEDTLS_ECP_DP_SECP256R1);
    fdl_test_gen_key(&p384, MBEDTLS_ECP_DP_SECP384R1);

    /* Device ids that would smuggle more RDNs into the subject, or are out of range. */
    static const char *const bad_ids[] = {"", "dev,O=evil", "dev+OU=x", "dev=1", "dev 1", "dev\\,x",
                                          "dév", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        fdl_pki_leaf_req req = {.device_id = bad_ids[i], .public_key = &p256};
        assert_int_equal(fdl_pki_issue(pki, &req, FDL_PKI_PEM, buf, sizeof buf, NULL), FDL_PKI_ERR_ARG);
    }
    fdl_pki_leaf_req nul = {.device_id = NULL, .public_key = &p256};
    assert_int_equal(fdl_pki_issue(pki, &nul, FDL_PKI_PEM, buf, sizeof buf, NULL), FDL_PKI_ERR_ARG);

    /* 64 bytes is the X.520 limit and still fine. */
    fdl_pki_leaf_req max = {.device_id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                            .public_key = &p256};
    assert_int_equal(fdl_pki_issue(pki, &max, FDL_PKI_PEM, buf, sizeof buf, NULL), FDL_PKI_OK);

    /* Only P-256 subject keys. */
    fdl_pki_leaf_req wrong = {.device_id = "dev-1", .public_key = &p384};
    assert_int_equal(fdl_pki_issue(pki, &wrong, FDL_PKI_PEM, buf, sizeof buf, NULL), FDL_PKI_ERR_ARG);

    /* Small buffers. */
    fdl_pki_leaf_req ok = {.device_id = "dev-1", .public_key = &p256};
    assert_int_equal(fdl_pki_issue(pki, &ok, FDL_PKI_PEM, buf, 100, NULL), FDL_PKI_ERR_SMALL);
    assert_int_equal(fdl_pki_issue(pki, &ok, FDL_PKI_DER, buf, 100, NULL), FDL_PKI_ERR_SMALL);
    assert_int_equal(fdl_pki_issue(pki, &ok, FDL_PKI_PEM, buf, 0, NULL), FDL_PKI_ERR_ARG);

    /* Validity ceiling. */
    ok.validity_days = 100000;
    assert_int_equal(fdl_pki_issue(pki, &ok, FDL_PKI_PEM, buf, sizeof buf, NULL), FDL_PKI_ERR_ARG);

    /* fdl_pki_new: the intermediate with the wrong key is refused at once. */
    size_t len = 0;
    char *inter = slurp(dir, FDL_PKI_INTERMEDIATE_PEM, &len);
    fdl_pki *bad = NULL;
    assert_int_equal(fdl_pki_new((unsigned char *)inter, len + 1, &p256, &bad), FDL_PKI_ERR_MISMATCH);
    assert_null(bad);
    /* A leaf is not an issuer. */
    char *srv = slurp(dir, FDL_PKI_SERVER_PEM, &len);
    mbedtls_pk_context skey;
    mbedtls_pk_init(&skey);
    path_of(p, sizeof p, dir, FDL_PKI_SERVER_KEY_PEM);
    assert_int_equal(mbedtls_pk_parse_keyfile(&skey, p, NULL, mbedtls_ctr_drbg_random, fdl_test_drbg()), 0);
    assert_int_equal(fdl_pki_new((unsigned char *)srv, len + 1, &skey, &bad), FDL_PKI_ERR_ARG);
    mbedtls_pk_free(&skey);
    free(srv);
    free(inter);

    /* Secret files readable by others are refused. */
    path_of(p, sizeof p, dir, FDL_PKI_INTERMEDIATE_KEY_PEM);
    assert_int_equal(chmod(p, 0644), 0);
    fdl_pki *other = NULL;
    assert_int_equal(fdl_pki_open_soft(dir, &other), FDL_PKI_ERR_PERM);
    assert_null(other);
    assert_int_equal(chmod(p, 0600), 0);

    /* Options. */
    fdl_pki_opts o = {.name = "evil,O=x"};
    assert_int_equal(fdl_pki_setup_soft(dir, &o), FDL_PKI_ERR_ARG);
    /* Nothing there. */
    assert_int_equal(fdl_pki_open_soft("/tmp/fdl-test-does-not-exist", &other), FDL_PKI_ERR_NOT_FOUND);
    assert_int_equal(fdl_pki_setup_soft(NULL, NULL), FDL_PKI_ERR_ARG);
    assert_string_equal(fdl_pki_strerror(FDL_PKI_ERR_MISMATCH), "existing PKI pieces do not fit together");
    assert_non_null(fdl_pki_strerror((fdl_pki_status)999));
    fdl_pki_free(NULL);

    mbedtls_pk_free(&p384);
    mbedtls_pk_free(&p256);
    fdl_pki_free(pki);
    fdl_test_rmrf(dir);
}

/* Every allocation of ours fails in turn: no leak, no crash, a clean status. */
static void allocation_failures(void **state)
{
    (void)state;
    char dir[256];
    unsigned char buf[FDL_PKI_CERT_MAX];
    mbedtls_pk_context key;

    fdl_test_mkdtemp("pki-alloc", dir, sizeof dir);
    assert_int_equal(fdl_pki_setup_soft(dir, NULL), FDL_PKI_OK);
    fdl_test_gen_key(&key, MBEDTLS_ECP_DP_SECP256R1);
    fdl_pki_leaf_req req = {.device_id = "dev-1", .public_key = &key};
    int saw_ok = 0;
    for (uint64_t nth = 1; nth < 20 && !saw_ok; nth++) {
        fdl_alloc_stats a = fdl_alloc_get_stats();
        fdl_pki *pki = NULL;
        fdl_alloc_fail_nth(nth);
        fdl_pki_status st = fdl_pki_open_soft(dir, &pki);
        fdl_alloc_fail_nth(0);
        if (st == FDL_PKI_OK) {
            saw_ok = 1;
            assert_int_equal(fdl_pki_issue(pki, &req, FDL_PKI_PEM, buf, sizeof buf, NULL), FDL_PKI_OK);
            fdl_pki_free(pki);
        } else {
            assert_int_equal(st, FDL_PKI_ERR_NOMEM);
            assert_null(pki);
        }
        fdl_alloc_stats b = fdl_alloc_get_stats();
        assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
    }
    assert_true(saw_ok);

    /* Re-checking an existing PKI reads every file back: fail each of those reads in turn. */
    saw_ok = 0;
    for (uint64_t nth = 1; nth < 30 && !saw_ok; nth++) {
        fdl_alloc_stats a = fdl_alloc_get_stats();
        fdl_alloc_fail_nth(nth);
        fdl_pki_status st = fdl_pki_setup_soft(dir, NULL);
        fdl_alloc_fail_nth(0);
        if (st == FDL_PKI_OK)
            saw_ok = 1;
        else
            assert_int_equal(st, FDL_PKI_ERR_NOMEM);
        fdl_alloc_stats b = fdl_alloc_get_stats();
        assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
    }
    assert_true(saw_ok);
    mbedtls_pk_free(&key);
    fdl_test_rmrf(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Token path: CA keys inside SoftHSM2, openssl agrees with the result.                      */

static void token_ca(void **state)
{
    (void)state;
    char base[256], conf[4200], dir[4200], cmd[16384], p[4200];
    fdl_se_module *se = NULL;
    fdl_pki *pki = NULL;

    fdl_test_mkdtemp("pki-token", base, sizeof base);
    fdl_test_softhsm_conf(base, conf, sizeof conf);
    fdl_se_status ses = fdl_se_module_open(FDL_SOFTHSM2_MODULE, conf, &se);
    if (ses != FDL_SE_OK)
        fail_msg("fdl_se_module_open: %s", fdl_se_strerror(ses));
    snprintf(dir, sizeof dir, "%s/state/pki", base);

    fdl_pki_status st = fdl_pki_setup(se, dir, NULL);
    if (st != FDL_PKI_OK)
        fail_msg("fdl_pki_setup: %s: %s", fdl_pki_strerror(st), fdl_pki_last_error());

    /* The CA keys are in the token, not on disk; the PINs are, privately. */
    path_of(p, sizeof p, dir, FDL_PKI_ROOT_KEY_PEM);
    assert_int_equal(access(p, F_OK), -1);
    path_of(p, sizeof p, dir, FDL_PKI_INTERMEDIATE_KEY_PEM);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(file_mode(dir, FDL_PKI_PIN_FILE), 0600);
    assert_int_equal(file_mode(dir, FDL_PKI_SERVER_KEY_PEM), 0600);
    char *pins = slurp(dir, FDL_PKI_PIN_FILE, NULL);
    assert_non_null(strstr(pins, "\nso_pin="));
    assert_non_null(strstr(pins, "\nuser_pin="));
    char user_pin[64] = {0};
    sscanf(strstr(pins, "\nuser_pin=") + 10, "%63[0-9a-f]", user_pin);
    assert_int_equal(strlen(user_pin), 32);
    free(pins);
    assert_int_equal(fdl_se_token_exists(se, FDL_PKI_TOKEN_LABEL), 1);

    /* The root key is sensitive: its value cannot be read out of the token. */
    fdl_se_key *rk = NULL;
    assert_int_equal(fdl_se_key_open(se, FDL_PKI_TOKEN_LABEL, user_pin, FDL_PKI_ROOT_KEY_LABEL, &rk), FDL_SE_OK);
    unsigned long vlen = 0;
    assert_int_equal(fdl_se_key_get_private_attr(rk, CKA_VALUE, NULL, &vlen), CKR_ATTRIBUTE_SENSITIVE);
    fdl_se_key_free(rk);

    /* Idempotent on the token too: same files, no new keys. */
    char *root_before = slurp(dir, FDL_PKI_ROOT_PEM, NULL);
    char *server_before = slurp(dir, FDL_PKI_SERVER_PEM, NULL);
    assert_int_equal(fdl_pki_setup(se, dir, NULL), FDL_PKI_OK);
    char *root_after = slurp(dir, FDL_PKI_ROOT_PEM, NULL);
    char *server_after = slurp(dir, FDL_PKI_SERVER_PEM, NULL);
    assert_string_equal(root_before, root_after);
    assert_string_equal(server_before, server_after);
    free(root_before);
    free(root_after);
    free(server_before);
    free(server_after);

    /* Issue through the token and check with openssl. */
    st = fdl_pki_open(se, dir, &pki);
    if (st != FDL_PKI_OK)
        fail_msg("fdl_pki_open: %s: %s", fdl_pki_strerror(st), fdl_pki_last_error());
    mbedtls_pk_context key;
    fdl_test_gen_key(&key, MBEDTLS_ECP_DP_SECP256R1);
    fdl_pki_leaf_req req = {.device_id = "dev-000042", .public_key = &key};
    path_of(p, sizeof p, dir, "dev-000042.pem");
    assert_int_equal(fdl_pki_issue_file(pki, &req, p, NULL), FDL_PKI_OK);

    snprintf(cmd, sizeof cmd,
             "cd '%s' && openssl verify -x509_strict -purpose sslserver -CAfile root.pem "
             "-untrusted intermediate.pem server.pem >/dev/null",
             dir);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && openssl verify -x509_strict -purpose sslclient -CAfile root.pem "
             "-untrusted intermediate.pem dev-000042.pem >/dev/null",
             dir);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof cmd, "cd '%s' && openssl verify -CAfile chain.pem server.pem >/dev/null", dir);
    assert_int_equal(run(cmd), 0);
    /* The leaf must not pass as a server, nor the server as a client. */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && openssl verify -purpose sslserver -CAfile root.pem -untrusted intermediate.pem "
             "dev-000042.pem >/dev/null 2>&1",
             dir);
    assert_int_not_equal(run(cmd), 0);
    /* openssl reads what we wrote the same way: subject is the device id only. */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && test \"$(openssl x509 -in dev-000042.pem -noout -subject -nameopt RFC2253)\" = "
             "'subject=CN=dev-000042'",
             dir);
    assert_int_equal(run(cmd), 0);

    /* Throughput through the token (the figure a 10,000-device provisioning pass sees). */
    enum { N = 500 };
    unsigned char pem[FDL_PKI_CERT_MAX];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "dev-%06d", i);
        req.device_id = id;
        assert_int_equal(fdl_pki_issue(pki, &req, FDL_PKI_PEM, pem, sizeof pem, NULL), FDL_PKI_OK);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("token issuance: %d leaves in %.3f s = %.0f/s\n", N, s, N / s);

    /* Software issuance, for comparison. */
    char soft[4200];
    snprintf(soft, sizeof soft, "%s/soft", base);
    assert_int_equal(fdl_pki_setup_soft(soft, NULL), FDL_PKI_OK);
    fdl_pki *sp = NULL;
    assert_int_equal(fdl_pki_open_soft(soft, &sp), FDL_PKI_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < N; i++) {
        req.device_id = "dev-x";
        assert_int_equal(fdl_pki_issue(sp, &req, FDL_PKI_PEM, pem, sizeof pem, NULL), FDL_PKI_OK);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("software issuance: %d leaves in %.3f s = %.0f/s\n", N, s, N / s);
    fdl_pki_free(sp);

    /* A token PKI is not a software PKI and vice versa. */
    fdl_pki *x = NULL;
    assert_int_equal(fdl_pki_open_soft(dir, &x), FDL_PKI_ERR_NOT_FOUND);
    assert_int_equal(fdl_pki_open(se, soft, &x), FDL_PKI_ERR_NOT_FOUND);

    /* Lost PIN file with the token still there: refused, never regenerated. */
    fdl_pki_free(pki);
    pki = NULL;
    path_of(p, sizeof p, dir, FDL_PKI_PIN_FILE);
    char moved[4300];
    snprintf(moved, sizeof moved, "%s.bak", p);
    assert_int_equal(rename(p, moved), 0);
    assert_int_equal(fdl_pki_setup(se, dir, NULL), FDL_PKI_ERR_MISMATCH);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(rename(moved, p), 0);

    mbedtls_pk_free(&key);
    fdl_se_module_free(se);
    fdl_test_rmrf(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hierarchy_fields),
        cmocka_unit_test(leaf_fields_and_chain),
        cmocka_unit_test(rogue_ca_rejected),
        cmocka_unit_test(setup_is_idempotent),
        cmocka_unit_test(refuses_bad_input),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(token_ca),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
