/*
 * tests/test_crl.c — CRLs of the issuing CA: DER structure, signature, what mbedTLS
 * and OpenSSL conclude from them, serial and time encodings, buffer and argument
 * limits, publishing from the registry, and every allocation failing in turn.
 *
 * Every positive check has a negative twin that must fail (a tampered byte, a
 * wrong AKI or issuer name re-signed with the right key, an expired CRL), so a
 * verifier that accepted anything would not let these tests pass.
 */
#include "testutil.h"

#include "cloud/crl.h"
#include "cloud/pki.h"
#include "cloud/registry.h"
#include "devices/se.h"
#include "fdl_buildcfg.h"
#include "sim/alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/asn1.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/sha256.h>
#include <mbedtls/x509_crl.h>
#include <mbedtls/x509_crt.h>

/* ecdsa-with-SHA256, no parameters. */
static const unsigned char ALG[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};

/* ---------------------------------------------------------------------------------------- */
/* Fixture: one software PKI for the whole group.                                             */

static char g_dir[256];
static char g_chain[512];
static fdl_pki *g_pki;
static const mbedtls_x509_crt *g_issuer;
static mbedtls_entropy_context t_entropy;
static mbedtls_ctr_drbg_context t_drbg;

static int group_setup(void **state)
{
    (void)state;
    mbedtls_entropy_init(&t_entropy);
    mbedtls_ctr_drbg_init(&t_drbg);
    if (mbedtls_ctr_drbg_seed(&t_drbg, mbedtls_entropy_func, &t_entropy, (const unsigned char *)"crl", 3) != 0)
        return -1;
    fdl_test_mkdtemp("crl", g_dir, sizeof g_dir);
    if (fdl_pki_setup_soft(g_dir, NULL) != FDL_PKI_OK || fdl_pki_open_soft(g_dir, &g_pki) != FDL_PKI_OK)
        return -1;
    snprintf(g_chain, sizeof g_chain, "%s/%s", g_dir, FDL_PKI_CHAIN_PEM);
    g_issuer = fdl_pki_chain(g_pki);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fdl_pki_free(g_pki);
    fdl_test_rmrf(g_dir);
    mbedtls_ctr_drbg_free(&t_drbg);
    mbedtls_entropy_free(&t_entropy);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers.                                                                                   */

/* Runs a shell command with stderr folded into stdout; returns its exit status. */
__attribute__((format(printf, 3, 4)))
static int run(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    strncat(cmd, " 2>&1", sizeof cmd - strlen(cmd) - 1);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int rc = pclose(f);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void assert_contains(const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("expected \"%s\" in:\n%s", want, text);
}

static void assert_lacks(const char *text, const char *unwanted)
{
    if (strstr(text, unwanted))
        fail_msg("did not expect \"%s\" in:\n%s", unwanted, text);
}

static void gen_key(mbedtls_pk_context *pk)
{
    mbedtls_pk_init(pk);
    assert_int_equal(mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
    assert_int_equal(mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*pk), mbedtls_ctr_drbg_random,
                                         &t_drbg),
                     0);
}

/* Builds with the fixture's issuer; *der is malloc'ed (free()). */
static size_t build_with(const fdl_crl_entry *e, size_t n, uint64_t number, time_t tu, time_t nu,
                         unsigned char **der)
{
    size_t cap = fdl_crl_der_bound(g_issuer, n), len = 0;
    assert_true(cap > 0);
    *der = malloc(cap);
    assert_non_null(*der);
    fdl_crl_status st = fdl_crl_build(g_issuer, fdl_pki_key(g_pki), e, n, number, tu, nu, fdl_pki_random, g_pki,
                                      *der, cap, &len);
    if (st != FDL_CRL_OK)
        fail_msg("fdl_crl_build: %s (%s)", fdl_crl_strerror(st), fdl_crl_last_error());
    assert_true(len > 0 && len <= cap);
    return len;
}

static size_t build_now(const fdl_crl_entry *e, size_t n, uint64_t number, unsigned char **der)
{
    time_t now = time(NULL);
    return build_with(e, n, number, now, now + 86400, der);
}

static void write_pem(const char *path, const unsigned char *der, size_t len)
{
    unsigned char *pem = malloc(2 * len + 200);
    size_t olen = 0;
    assert_non_null(pem);
    assert_int_equal(mbedtls_pem_write_buffer("-----BEGIN X509 CRL-----\n", "-----END X509 CRL-----\n", der, len,
                                              pem, 2 * len + 200, &olen),
                     0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(pem, 1, olen - 1, f), olen - 1);
    fclose(f);
    free(pem);
}

static void parse_crl(mbedtls_x509_crl *crl, const unsigned char *der, size_t len)
{
    mbedtls_x509_crl_init(crl);
    int rc = mbedtls_x509_crl_parse_der(crl, der, len);
    if (rc != 0)
        fail_msg("mbedtls_x509_crl_parse_der: -0x%04x", (unsigned)-rc);
}

/* One DER element: tag, header start, content. */
typedef struct el {
    unsigned char tag;
    const unsigned char *hdr, *p;
    size_t len, full;
} el;

static el next_el(const unsigned char **p, const unsigned char *end)
{
    el e;
    size_t len = 0;
    assert_true(*p < end);
    e.hdr = *p;
    e.tag = **p;
    (*p)++;
    assert_int_equal(mbedtls_asn1_get_len((unsigned char **)p, end, &len), 0);
    e.p = *p;
    e.len = len;
    e.full = (size_t)(e.p - e.hdr) + len;
    *p += len;
    return e;
}

/* The parts of a CertificateList, found by walking the DER independently of mbedTLS's parser. */
typedef struct parts {
    el tbs, sig_alg, sig;
    el version, alg, issuer, this_upd, next_upd, revoked, exts;
    int has_revoked, has_exts;
} parts;

static void split(const unsigned char *der, size_t len, parts *o)
{
    const unsigned char *p = der, *end = der + len;
    memset(o, 0, sizeof *o);
    el outer = next_el(&p, end);
    assert_int_equal(outer.tag, 0x30);
    assert_int_equal(outer.full, len); /* nothing after the CRL */
    p = outer.p;
    end = outer.p + outer.len;
    o->tbs = next_el(&p, end);
    o->sig_alg = next_el(&p, end);
    o->sig = next_el(&p, end);
    assert_ptr_equal(p, end);
    assert_int_equal(o->tbs.tag, 0x30);
    assert_int_equal(o->sig.tag, MBEDTLS_ASN1_BIT_STRING);

    p = o->tbs.p;
    end = o->tbs.p + o->tbs.len;
    o->version = next_el(&p, end);
    o->alg = next_el(&p, end);
    o->issuer = next_el(&p, end);
    o->this_upd = next_el(&p, end);
    o->next_upd = next_el(&p, end);
    while (p < end) {
        el e = next_el(&p, end);
        if (e.tag == 0x30 && !o->has_revoked && !o->has_exts) {
            o->revoked = e;
            o->has_revoked = 1;
        } else if (e.tag == 0xa0 && !o->has_exts) {
            o->exts = e;
            o->has_exts = 1;
        } else {
            fail_msg("unexpected element 0x%02x in tbsCertList", e.tag);
        }
    }
}

/* Finds an extension by OID in the [0] crlExtensions; returns 1 and its value if present. */
static int find_ext(const parts *o, const char *oid, size_t oid_len, el *value, int *critical)
{
    if (!o->has_exts)
        return 0;
    const unsigned char *p = o->exts.p, *end = o->exts.p + o->exts.len;
    el seq = next_el(&p, end);
    assert_int_equal(seq.tag, 0x30);
    assert_ptr_equal(p, end);
    p = seq.p;
    end = seq.p + seq.len;
    while (p < end) {
        el ext = next_el(&p, end);
        const unsigned char *q = ext.p, *qe = ext.p + ext.len;
        el id = next_el(&q, qe);
        el v = next_el(&q, qe);
        int crit = 0;
        assert_int_equal(ext.tag, 0x30);
        assert_int_equal(id.tag, MBEDTLS_ASN1_OID);
        if (v.tag == MBEDTLS_ASN1_BOOLEAN) {
            crit = v.len == 1 && v.p[0] != 0;
            v = next_el(&q, qe);
        }
        assert_int_equal(v.tag, MBEDTLS_ASN1_OCTET_STRING);
        assert_ptr_equal(q, qe);
        if (id.len == oid_len && memcmp(id.p, oid, oid_len) == 0) {
            *value = v;
            if (critical)
                *critical = crit;
            return 1;
        }
    }
    return 0;
}

/* The cRLNumber of a CRL as an unsigned integer. */
static uint64_t crl_number_of(const unsigned char *der, size_t len)
{
    parts o;
    el v;
    int crit = 1;
    split(der, len, &o);
    assert_true(find_ext(&o, MBEDTLS_OID_CRL_NUMBER, MBEDTLS_OID_SIZE(MBEDTLS_OID_CRL_NUMBER), &v, &crit));
    assert_int_equal(crit, 0);
    const unsigned char *p = v.p;
    el i = next_el(&p, v.p + v.len);
    assert_int_equal(i.tag, MBEDTLS_ASN1_INTEGER);
    assert_true(i.len >= 1 && i.len <= 9);
    assert_true(i.len == 1 || i.p[0] != 0 || (i.p[1] & 0x80)); /* minimal */
    assert_int_equal(i.p[0] & 0x80, 0);                       /* positive */
    uint64_t n = 0;
    for (size_t k = 0; k < i.len; k++)
        n = (n << 8) | i.p[k];
    return n;
}

/* mbedtls_pk_verify of the CRL's signature over its TBS under pk. */
static int verify_sig(const parts *o, mbedtls_pk_context *pk)
{
    unsigned char h[32];
    assert_int_equal(mbedtls_sha256(o->tbs.hdr, o->tbs.full, h, 0), 0);
    assert_true(o->sig.len > 1);
    assert_int_equal(o->sig.p[0], 0); /* no unused bits */
    return mbedtls_pk_verify(pk, MBEDTLS_MD_SHA256, h, sizeof h, o->sig.p + 1, o->sig.len - 1);
}

/*
 * Re-signs a (possibly edited) CRL with the fixture's real issuer key, so a
 * verifier that rejects the result does so for the edit, not the signature.
 * Returns the new length; out must have room for len + 16.
 */
static size_t resign(const unsigned char *der, size_t len, unsigned char *out, size_t cap)
{
    parts o;
    unsigned char h[32], sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t sig_len = 0;
    int ret;
    size_t n = 0;
    split(der, len, &o);
    assert_int_equal(mbedtls_sha256(o.tbs.hdr, o.tbs.full, h, 0), 0);
    assert_int_equal(mbedtls_pk_sign(fdl_pki_key(g_pki), MBEDTLS_MD_SHA256, h, sizeof h, sig, sizeof sig, &sig_len,
                                     fdl_pki_random, g_pki),
                     0);
    unsigned char *p = out + cap;
    assert_true((ret = mbedtls_asn1_write_bitstring(&p, out, sig, sig_len * 8)) > 0);
    n += (size_t)ret;
    assert_true((ret = mbedtls_asn1_write_raw_buffer(&p, out, ALG, sizeof ALG)) > 0);
    n += (size_t)ret;
    assert_true((ret = mbedtls_asn1_write_raw_buffer(&p, out, o.tbs.hdr, o.tbs.full)) > 0);
    n += (size_t)ret;
    assert_true((ret = mbedtls_asn1_write_len(&p, out, n)) > 0);
    n += (size_t)ret;
    assert_true((ret = mbedtls_asn1_write_tag(&p, out, 0x30)) > 0);
    n += (size_t)ret;
    memmove(out, p, n);
    return n;
}

/* Issues a device leaf to <g_dir>/<id>.pem and parses it into crt (caller frees). */
static void issue_leaf(const char *id, char *path, size_t cap, mbedtls_x509_crt *crt, fdl_pki_issued *got)
{
    mbedtls_pk_context key;
    gen_key(&key);
    snprintf(path, cap, "%s/%s.pem", g_dir, id);
    fdl_pki_leaf_req req = {.device_id = id, .public_key = &key};
    assert_int_equal(fdl_pki_issue_file(g_pki, &req, path, got), FDL_PKI_OK);
    mbedtls_x509_crt_init(crt);
    assert_int_equal(mbedtls_x509_crt_parse_file(crt, path), 0);
    mbedtls_pk_free(&key);
}

/* mbedtls_x509_crt_verify of leaf under the fixture chain with the CRL; returns the flags. */
static uint32_t verify_with_crl(mbedtls_x509_crt *leaf, mbedtls_x509_crl *crl)
{
    uint32_t flags = 0;
    (void)mbedtls_x509_crt_verify(leaf, (mbedtls_x509_crt *)g_issuer, crl, NULL, &flags, NULL, NULL);
    return flags;
}

static fdl_crl_entry entry_hex(const char *hex, int64_t at)
{
    fdl_crl_entry e;
    assert_int_equal(fdl_crl_entry_from_hex(&e, hex, at), FDL_CRL_OK);
    return e;
}

static void entry_of_issued(fdl_crl_entry *e, const fdl_pki_issued *got, int64_t at)
{
    memset(e, 0, sizeof *e);
    memcpy(e->serial, got->serial, FDL_PKI_SERIAL_LEN);
    e->serial_len = FDL_PKI_SERIAL_LEN;
    e->revoked_at = at;
}

/* A fresh registry in dir with the fixture's issuer registered and a device policy. */
static fdl_registry *open_registry(const char *dir, int64_t *ca_id)
{
    char path[512];
    fdl_registry *reg = NULL;
    fdl_registry_opts o = {.actor = "test-crl"};
    snprintf(path, sizeof path, "%s/registry.db", dir);
    assert_int_equal(fdl_registry_open(path, &o, &reg), FDL_REG_OK);
    if (ca_id)
        assert_int_equal(fdl_registry_ca_register(reg, g_issuer, "issuing", ca_id), FDL_REG_OK);
    assert_int_equal(fdl_registry_policy_put(reg, "device-default",
                                             "allow publish telemetry/${device}; allow subscribe commands/${device}",
                                             1),
                     FDL_REG_OK);
    return reg;
}

/* Records crt as ACTIVE in the registry; fp receives its fingerprint. */
static void record_active(fdl_registry *reg, const mbedtls_x509_crt *crt, char fp[FDL_REG_FP_HEX_LEN + 1])
{
    fdl_reg_cert_state s = 0;
    assert_int_equal(fdl_registry_cert_record_x509(reg, crt, 0, fp, &s), FDL_REG_OK);
    assert_int_equal(s, FDL_REG_CERT_PENDING);
    assert_int_equal(fdl_registry_cert_activate(reg, fp, "device-default", NULL), FDL_REG_OK);
}

static unsigned file_mode(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return (unsigned)(sb.st_mode & 0777);
}

/* The DER inside a PEM CRL file (malloc'ed; free()). */
static unsigned char *read_crl_der(const char *path, size_t *len)
{
    mbedtls_x509_crl crl;
    mbedtls_x509_crl_init(&crl);
    int rc = mbedtls_x509_crl_parse_file(&crl, path);
    if (rc != 0)
        fail_msg("parse %s: -0x%04x", path, (unsigned)-rc);
    unsigned char *der = malloc(crl.raw.len);
    assert_non_null(der);
    memcpy(der, crl.raw.p, crl.raw.len);
    *len = crl.raw.len;
    mbedtls_x509_crl_free(&crl);
    return der;
}

/* ---------------------------------------------------------------------------------------- */
/* Structure and signature.                                                                   */

static void empty_crl_parses_and_verifies(void **state)
{
    (void)state;
    unsigned char *der = NULL;
    time_t now = time(NULL);
    size_t len = build_with(NULL, 0, 42, now - 10, now + 3600, &der);
    parts o;
    el aki;
    int crit = 1;

    /* Our own walk of the DER: v2, ecdsa-with-SHA256 twice, the issuer's subject
     * byte for byte, no revokedCertificates, AKI = the issuer's SKI, cRLNumber. */
    split(der, len, &o);
    assert_int_equal(o.version.tag, MBEDTLS_ASN1_INTEGER);
    assert_int_equal(o.version.len, 1);
    assert_int_equal(o.version.p[0], 1);
    assert_int_equal(o.alg.full, sizeof ALG);
    assert_memory_equal(o.alg.hdr, ALG, sizeof ALG);
    assert_int_equal(o.sig_alg.full, sizeof ALG);
    assert_memory_equal(o.sig_alg.hdr, ALG, sizeof ALG);
    assert_int_equal(o.issuer.full, g_issuer->subject_raw.len);
    assert_memory_equal(o.issuer.hdr, g_issuer->subject_raw.p, g_issuer->subject_raw.len);
    assert_int_equal(o.this_upd.tag, MBEDTLS_ASN1_UTC_TIME);
    assert_int_equal(o.next_upd.tag, MBEDTLS_ASN1_UTC_TIME);
    assert_false(o.has_revoked);
    assert_true(o.has_exts);
    assert_true(find_ext(&o, MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER,
                         MBEDTLS_OID_SIZE(MBEDTLS_OID_AUTHORITY_KEY_IDENTIFIER), &aki, &crit));
    assert_int_equal(crit, 0);
    {
        const unsigned char *p = aki.p;
        el seq = next_el(&p, aki.p + aki.len);
        assert_int_equal(seq.tag, 0x30);
        p = seq.p;
        el kid = next_el(&p, seq.p + seq.len);
        assert_int_equal(kid.tag, 0x80); /* [0] IMPLICIT keyIdentifier */
        assert_ptr_equal(p, seq.p + seq.len);
        assert_int_equal(kid.len, g_issuer->subject_key_id.len);
        assert_memory_equal(kid.p, g_issuer->subject_key_id.p, kid.len);
    }
    assert_int_equal(crl_number_of(der, len), 42);
    assert_int_equal(verify_sig(&o, (mbedtls_pk_context *)&g_issuer->pk), 0);
    /* ... and not under the root's key. */
    assert_int_not_equal(verify_sig(&o, (mbedtls_pk_context *)&g_issuer->next->pk), 0);

    /* mbedTLS's parser agrees. */
    mbedtls_x509_crl crl;
    parse_crl(&crl, der, len);
    assert_int_equal(crl.version, 2);
    assert_int_equal(crl.issuer_raw.len, g_issuer->subject_raw.len);
    assert_memory_equal(crl.issuer_raw.p, g_issuer->subject_raw.p, crl.issuer_raw.len);
    assert_int_equal(crl.entry.serial.len, 0); /* no entries */
    assert_true(mbedtls_x509_time_is_past(&crl.this_update));
    assert_true(mbedtls_x509_time_is_future(&crl.next_update));

    /* A leaf verifies with the empty CRL, and mbedTLS did check it: a CRL from
     * the issuer is required to be signed by it (see tampered_crl_is_refused). */
    char path[512];
    mbedtls_x509_crt leaf;
    fdl_pki_issued got;
    issue_leaf("empty-crl-dev", path, sizeof path, &leaf, &got);
    assert_int_equal(mbedtls_x509_crt_is_revoked(&leaf, &crl), 0);
    assert_int_equal(verify_with_crl(&leaf, &crl), 0);

    mbedtls_x509_crt_free(&leaf);
    mbedtls_x509_crl_free(&crl);
    free(der);
}

static void revoked_entries_are_listed(void **state)
{
    (void)state;
    char path[3][512];
    mbedtls_x509_crt leaf[3];
    fdl_pki_issued got[3];
    fdl_crl_entry e[2];
    unsigned char *der = NULL;
    time_t now = time(NULL);
    const char *ids[3] = {"rev-a", "rev-b", "kept-c"};

    for (int i = 0; i < 3; i++)
        issue_leaf(ids[i], path[i], sizeof path[i], &leaf[i], &got[i]);
    entry_of_issued(&e[0], &got[0], now - 7200);
    entry_of_issued(&e[1], &got[1], now - 60);
    size_t len = build_now(e, 2, 7, &der);

    parts o;
    split(der, len, &o);
    assert_true(o.has_revoked);
    assert_int_equal(verify_sig(&o, (mbedtls_pk_context *)&g_issuer->pk), 0);

    mbedtls_x509_crl crl;
    parse_crl(&crl, der, len);
    /* Entries in the given order, serials byte for byte as in the certificates. */
    const mbedtls_x509_crl_entry *ce = &crl.entry;
    for (int i = 0; i < 2; i++, ce = ce->next) {
        assert_non_null(ce);
        assert_int_equal(ce->serial.len, leaf[i].serial.len);
        assert_memory_equal(ce->serial.p, leaf[i].serial.p, ce->serial.len);
    }
    assert_null(ce);
    {
        struct tm tm;
        time_t t = now - 7200;
        gmtime_r(&t, &tm);
        assert_int_equal(crl.entry.revocation_date.year, tm.tm_year + 1900);
        assert_int_equal(crl.entry.revocation_date.hour, tm.tm_hour);
        assert_int_equal(crl.entry.revocation_date.min, tm.tm_min);
        assert_int_equal(crl.entry.revocation_date.sec, tm.tm_sec);
    }

    assert_int_equal(mbedtls_x509_crt_is_revoked(&leaf[0], &crl), 1);
    assert_int_equal(mbedtls_x509_crt_is_revoked(&leaf[1], &crl), 1);
    assert_int_equal(mbedtls_x509_crt_is_revoked(&leaf[2], &crl), 0);
    /* Full verification: revoked, and the CRL itself trusted (no BADCRL flag). */
    for (int i = 0; i < 2; i++) {
        uint32_t f = verify_with_crl(&leaf[i], &crl);
        assert_true(f & MBEDTLS_X509_BADCERT_REVOKED);
        assert_false(f & (MBEDTLS_X509_BADCRL_NOT_TRUSTED | MBEDTLS_X509_BADCRL_EXPIRED |
                          MBEDTLS_X509_BADCRL_FUTURE));
    }
    assert_int_equal(verify_with_crl(&leaf[2], &crl), 0);

    /* OpenSSL agrees. */
    char crl_path[512], out[4096];
    snprintf(crl_path, sizeof crl_path, "%s/revoked-entries.pem", g_dir);
    write_pem(crl_path, der, len);
    assert_int_equal(run(out, sizeof out, "openssl crl -in '%s' -CAfile '%s' -noout", crl_path, g_chain), 0);
    assert_contains(out, "verify OK");
    for (int i = 0; i < 3; i++) {
        int rc = run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s'", crl_path,
                     g_chain, path[i]);
        if (i < 2) {
            assert_int_not_equal(rc, 0);
            assert_contains(out, "certificate revoked");
        } else {
            assert_int_equal(rc, 0);
            assert_contains(out, ": OK");
        }
    }
    for (int i = 0; i < 3; i++)
        mbedtls_x509_crt_free(&leaf[i]);
    mbedtls_x509_crl_free(&crl);
    free(der);
}

/* One flipped byte anywhere in the TBS part: mbedTLS and OpenSSL both refuse the CRL. */
static void tampered_crl_is_refused(void **state)
{
    (void)state;
    char path[512], crl_path[512], out[4096];
    mbedtls_x509_crt leaf;
    fdl_pki_issued got;
    fdl_crl_entry e;
    unsigned char *der = NULL;

    issue_leaf("tamper-dev", path, sizeof path, &leaf, &got);
    entry_of_issued(&e, &got, time(NULL) - 60);
    size_t len = build_now(&e, 1, 9, &der);
    parts o;
    split(der, len, &o);
    /* The last byte of the cRLNumber: still parses, no longer what was signed. */
    ((unsigned char *)o.tbs.hdr)[o.tbs.full - 1] ^= 0x01;
    assert_int_not_equal(verify_sig(&o, (mbedtls_pk_context *)&g_issuer->pk), 0);

    mbedtls_x509_crl crl;
    parse_crl(&crl, der, len);
    assert_true(verify_with_crl(&leaf, &crl) & MBEDTLS_X509_BADCRL_NOT_TRUSTED);
    mbedtls_x509_crl_free(&crl);

    snprintf(crl_path, sizeof crl_path, "%s/tampered.pem", g_dir);
    write_pem(crl_path, der, len);
    /* openssl crl exits 0 either way: its verdict is the line it prints. */
    (void)run(out, sizeof out, "openssl crl -in '%s' -CAfile '%s' -noout", crl_path, g_chain);
    assert_contains(out, "verify failure");
    assert_lacks(out, "verify OK");
    assert_int_not_equal(run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s'",
                             crl_path, g_chain, path),
                         0);
    assert_contains(out, "CRL signature failure");

    mbedtls_x509_crt_free(&leaf);
    free(der);
}

/*
 * OpenSSL picks the CRL of a certificate's issuer by name and by AKI: a CRL with
 * the right signature but a wrong issuer name or AKI is not that issuer's CRL,
 * so with -crl_check every client fails ("unable to get certificate CRL"). An
 * expired CRL fails too. The unedited CRL, re-signed the same way, passes: the
 * failures are due to the edits.
 */
static void openssl_rejects_wrong_issuer_aki_or_expiry(void **state)
{
    (void)state;
    char path[512], crl_path[512], out[4096];
    mbedtls_x509_crt leaf;
    fdl_pki_issued got;
    unsigned char *der = NULL;

    issue_leaf("edit-dev", path, sizeof path, &leaf, &got);
    snprintf(crl_path, sizeof crl_path, "%s/edited.pem", g_dir);
    size_t len = build_now(NULL, 0, 11, &der);
    unsigned char *edit = malloc(len + 64), *re = malloc(len + 64);
    assert_non_null(edit);
    assert_non_null(re);

    struct {
        const char *what;
        const char *expect;
    } cases[] = {{"control", ": OK"}, {"aki", "unable to get certificate CRL"},
                 {"issuer", "unable to get certificate CRL"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(edit, der, len);
        if (strcmp(cases[c].what, "aki") == 0) {
            /* The key id sits inside the TBS only once: flip its last byte. */
            const unsigned char *kid = memmem(edit, len, g_issuer->subject_key_id.p, g_issuer->subject_key_id.len);
            assert_non_null(kid);
            ((unsigned char *)kid)[g_issuer->subject_key_id.len - 1] ^= 0x5a;
        } else if (strcmp(cases[c].what, "issuer") == 0) {
            /* "... Issuing CA 1" becomes "... Issuing CA 2". */
            unsigned char *name = memmem(edit, len, "Issuing CA 1", 12);
            assert_non_null(name);
            name[11] = '2';
        }
        size_t rlen = resign(edit, len, re, len + 64);
        write_pem(crl_path, re, rlen);
        int rc = run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s'", crl_path,
                     g_chain, path);
        assert_contains(out, cases[c].expect);
        if (strcmp(cases[c].what, "control") == 0)
            assert_int_equal(rc, 0);
        else
            assert_int_not_equal(rc, 0);
    }
    /* openssl crl finds the issuer by name only: the renamed CRL has none. */
    (void)run(out, sizeof out, "openssl crl -in '%s' -CAfile '%s' -noout", crl_path, g_chain);
    assert_lacks(out, "verify OK");
    free(der);

    /* Expired (nextUpdate passed): OpenSSL refuses every client, mbedTLS flags it.
     * This is why a broker must not outlive its CRL's nextUpdate (docs/crl.md). */
    time_t now = time(NULL);
    len = build_with(NULL, 0, 12, now - 7200, now - 3600, &der);
    write_pem(crl_path, der, len);
    assert_int_not_equal(run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s'",
                             crl_path, g_chain, path),
                         0);
    assert_contains(out, "CRL has expired");
    mbedtls_x509_crl crl;
    parse_crl(&crl, der, len);
    assert_true(verify_with_crl(&leaf, &crl) & MBEDTLS_X509_BADCRL_EXPIRED);
    mbedtls_x509_crl_free(&crl);

    free(der);
    free(edit);
    free(re);
    mbedtls_x509_crt_free(&leaf);
}

/* ---------------------------------------------------------------------------------------- */
/* Serials and times.                                                                         */

/* The DER INTEGER of the first CRL entry. */
static el first_serial(const unsigned char *der, size_t len)
{
    parts o;
    split(der, len, &o);
    assert_true(o.has_revoked);
    const unsigned char *p = o.revoked.p;
    el ent = next_el(&p, o.revoked.p + o.revoked.len);
    p = ent.p;
    el sn = next_el(&p, ent.p + ent.len);
    assert_int_equal(sn.tag, MBEDTLS_ASN1_INTEGER);
    return sn;
}

static void serial_encoding(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        const char *der_hex; /* expected INTEGER content */
    } v[] = {
        {"8001", "008001"},   /* top bit: a 0x00 keeps it positive */
        {"00001234", "1234"}, /* leading zero bytes dropped */
        {"0000", "00"},       /* zero is one byte */
        {"abc", "0abc"},      /* odd digit count */
        {"7F", "7f"},         /* either case */
        {"ffffffffffffffffffffffffffffffffffffffff", "00ffffffffffffffffffffffffffffffffffffffff"}, /* 20 bytes */
        {"7fffffffffffffffffffffffffffffffffffffff", "7fffffffffffffffffffffffffffffffffffffff"},
        {"8000000000000000000000000000000000000000000000000000000000000001",
         "008000000000000000000000000000000000000000000000000000000000000001"}, /* 32 bytes */
        {"0000000000000000000000000000000000000000000000000000000000000001", "01"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        fdl_crl_entry e = entry_hex(v[i].hex, time(NULL) - 10);
        unsigned char *der = NULL, want[40];
        size_t wn = strlen(v[i].der_hex) / 2;
        for (size_t k = 0; k < wn; k++)
            want[k] = (unsigned char)(fdl_test_hexval(v[i].der_hex[2 * k]) << 4 |
                                      fdl_test_hexval(v[i].der_hex[2 * k + 1]));
        size_t len = build_now(&e, 1, 1, &der);
        el sn = first_serial(der, len);
        if (sn.len != wn || memcmp(sn.p, want, wn) != 0)
            fail_msg("serial %s: wrong DER INTEGER", v[i].hex);
        /* mbedTLS parses the same bytes back. */
        mbedtls_x509_crl crl;
        parse_crl(&crl, der, len);
        assert_int_equal(crl.entry.serial.len, wn);
        assert_memory_equal(crl.entry.serial.p, want, wn);
        mbedtls_x509_crl_free(&crl);
        free(der);
    }

    /* Refused: nothing, non-hex, separators, a prefix, more than 32 bytes. */
    static const char *bad[] = {"", "xyz", "12 34", "12:34", "0x12", "-1", "12\n",
                                "000000000000000000000000000000000000000000000000000000000000000001"};
    fdl_crl_entry e;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0xee, sizeof e);
        assert_int_equal(fdl_crl_entry_from_hex(&e, bad[i], 1), FDL_CRL_ERR_ARG);
        assert_int_equal(e.serial_len, 0);
    }
    assert_int_equal(fdl_crl_entry_from_hex(&e, NULL, 1), FDL_CRL_ERR_ARG);
    assert_int_equal(fdl_crl_entry_from_hex(NULL, "01", 1), FDL_CRL_ERR_ARG);
    /* 64 digits is the most. */
    assert_int_equal(fdl_crl_entry_from_hex(&e, "8000000000000000000000000000000000000000000000000000000000000001", 1),
                     FDL_CRL_OK);
    assert_int_equal(e.serial_len, 32);

    /* Entries with no serial or a too-long one are refused by the builder. */
    unsigned char buf[2048];
    size_t len = 99;
    time_t now = time(NULL);
    e = entry_hex("01", now);
    e.serial_len = 0;
    assert_int_equal(fdl_crl_build(g_issuer, fdl_pki_key(g_pki), &e, 1, 1, now, now + 60, fdl_pki_random, g_pki,
                                   buf, sizeof buf, &len),
                     FDL_CRL_ERR_ARG);
    assert_int_equal(len, 0);
    e.serial_len = FDL_CRL_SERIAL_MAX + 1;
    assert_int_equal(fdl_crl_build(g_issuer, fdl_pki_key(g_pki), &e, 1, 1, now, now + 60, fdl_pki_random, g_pki,
                                   buf, sizeof buf, &len),
                     FDL_CRL_ERR_ARG);
}

/*
 * Certificates OpenSSL makes with chosen serials (the intermediate's software key
 * signs them): each one is revoked by the CRL entry built from the registry's hex
 * spelling of its serial, in OpenSSL and in mbedTLS; a control is not.
 */
static void serials_match_real_certificates(void **state)
{
    (void)state;
    static const struct {
        const char *cert;  /* -set_serial */
        const char *entry; /* what the CRL entry is built from */
    } v[] = {
        {"0x8001", "8001"},
        {"0x1234", "00001234"},
        {"0xffffffffffffffffffffffffffffffffffffffff", "ffffffffffffffffffffffffffffffffffffffff"},
        {"0x8000000000000000000000000000000000000000000000000000000000000001",
         "8000000000000000000000000000000000000000000000000000000000000001"},
        {"0x0a0b", NULL}, /* control: not revoked */
    };
    enum { N = sizeof v / sizeof v[0] };
    char out[4096], key[512], csr[512], crl_path[512], cert[N][512];
    fdl_crl_entry e[N];
    size_t n = 0;

    snprintf(key, sizeof key, "%s/sn-key.pem", g_dir);
    snprintf(csr, sizeof csr, "%s/sn.csr", g_dir);
    assert_int_equal(run(out, sizeof out,
                         "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=sn-dev "
                         "-keyout '%s' -out '%s'",
                         key, csr),
                     0);
    for (size_t i = 0; i < N; i++) {
        snprintf(cert[i], sizeof cert[i], "%s/sn-%zu.pem", g_dir, i);
        int rc = run(out, sizeof out,
                     "openssl x509 -req -in '%s' -CA '%s/%s' -CAkey '%s/%s' -set_serial %s -days 2 -out '%s'", csr,
                     g_dir, FDL_PKI_INTERMEDIATE_PEM, g_dir, FDL_PKI_INTERMEDIATE_KEY_PEM, v[i].cert, cert[i]);
        if (rc != 0)
            fail_msg("openssl x509 -req: %s", out);
        if (v[i].entry)
            e[n++] = entry_hex(v[i].entry, time(NULL) - 60);
    }
    unsigned char *der = NULL;
    size_t len = build_now(e, n, 3, &der);
    snprintf(crl_path, sizeof crl_path, "%s/serials.pem", g_dir);
    write_pem(crl_path, der, len);
    mbedtls_x509_crl crl;
    parse_crl(&crl, der, len);

    for (size_t i = 0; i < N; i++) {
        int rc = run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s'", crl_path, g_chain,
                     cert[i]);
        mbedtls_x509_crt crt;
        mbedtls_x509_crt_init(&crt);
        assert_int_equal(mbedtls_x509_crt_parse_file(&crt, cert[i]), 0);
        if (v[i].entry) {
            if (rc == 0 || !strstr(out, "certificate revoked"))
                fail_msg("serial %s not revoked by OpenSSL:\n%s", v[i].cert, out);
            assert_int_equal(mbedtls_x509_crt_is_revoked(&crt, &crl), 1);
        } else {
            if (rc != 0)
                fail_msg("control %s refused:\n%s", v[i].cert, out);
            assert_int_equal(mbedtls_x509_crt_is_revoked(&crt, &crl), 0);
        }
        mbedtls_x509_crt_free(&crt);
    }
    mbedtls_x509_crl_free(&crl);
    free(der);
}

static void time_encoding(void **state)
{
    (void)state;
    /* 1950-01-01T00:00:00Z, 2049-12-31T23:59:59Z, 2050-01-01T00:00:00Z, 9999-12-31T23:59:59Z. */
    const time_t t1950 = -631152000, t2049 = 2524607999, t2050 = 2524608000, t9999 = 253402300799;
    unsigned char *der = NULL;
    fdl_crl_entry e = entry_hex("01", t9999);
    size_t len = build_with(&e, 1, 1, t2049, t2050, &der);
    parts o;
    split(der, len, &o);
    assert_int_equal(o.this_upd.tag, MBEDTLS_ASN1_UTC_TIME);
    assert_int_equal(o.this_upd.len, 13);
    assert_memory_equal(o.this_upd.p, "491231235959Z", 13);
    assert_int_equal(o.next_upd.tag, MBEDTLS_ASN1_GENERALIZED_TIME);
    assert_int_equal(o.next_upd.len, 15);
    assert_memory_equal(o.next_upd.p, "20500101000000Z", 15);
    mbedtls_x509_crl crl;
    parse_crl(&crl, der, len);
    assert_int_equal(crl.this_update.year, 2049);
    assert_int_equal(crl.next_update.year, 2050);
    assert_int_equal(crl.entry.revocation_date.year, 9999);
    assert_int_equal(crl.entry.revocation_date.mon, 12);
    mbedtls_x509_crl_free(&crl);
    free(der);

    e.revoked_at = t1950;
    len = build_with(&e, 1, 1, t1950, t9999, &der);
    split(der, len, &o);
    assert_memory_equal(o.this_upd.p, "500101000000Z", 13);
    assert_memory_equal(o.next_upd.p, "99991231235959Z", 15);
    parse_crl(&crl, der, len);
    assert_int_equal(crl.this_update.year, 1950);
    assert_int_equal(crl.entry.revocation_date.year, 1950);
    mbedtls_x509_crl_free(&crl);
    free(der);

    /* Outside 1950..9999, or nextUpdate not after thisUpdate: refused. */
    unsigned char buf[2048];
    size_t got = 0;
    struct {
        time_t tu, nu;
        int64_t rev;
    } bad[] = {{t1950 - 1, t2049, t2049}, {t2049, t9999 + 1, t2049}, {t2049, t2049, t2049},
               {t2050, t2049, t2049},     {t2049, t2050, t1950 - 1}, {t2049, t2050, (int64_t)t9999 + 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e.revoked_at = bad[i].rev;
        assert_int_equal(fdl_crl_build(g_issuer, fdl_pki_key(g_pki), &e, 1, 1, bad[i].tu, bad[i].nu, fdl_pki_random,
                                       g_pki, buf, sizeof buf, &got),
                         FDL_CRL_ERR_ARG);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Limits and arguments.                                                                      */

static int all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static void small_buffer_never_truncates(void **state)
{
    (void)state;
    time_t now = time(NULL);
    fdl_crl_entry e[2] = {entry_hex("8001", now - 5), entry_hex("02", now - 5)};
    unsigned char *der = NULL;
    size_t need = build_with(e, 2, 5, now, now + 60, &der);
    size_t bound = fdl_crl_der_bound(g_issuer, 2);
    parts o;
    split(der, need, &o);
    size_t tbs = o.tbs.full;
    unsigned char *buf = malloc(bound + 1);
    int n_small = 0, n_ok = 0;
    assert_non_null(buf);
    assert_true(bound >= need);

    /*
     * Every size up to a little past this CRL. An ECDSA signature's DER length
     * varies from one signature to the next (r and s are 32 or 33 bytes, rarely
     * fewer), so near the end either answer is right; what must never happen is
     * a CRL that does not fit, or a SMALL that leaves bytes behind. Below the
     * TBS size the answer is always SMALL, and nothing is signed.
     */
    for (size_t cap = 0; cap <= need + 8 && cap <= bound; cap++) {
        size_t got = 12345;
        memset(buf, 0xa5, bound + 1);
        fdl_crl_status st = fdl_crl_build(g_issuer, fdl_pki_key(g_pki), e, 2, 5, now, now + 60, fdl_pki_random,
                                          g_pki, buf, cap, &got);
        if (st == FDL_CRL_ERR_SMALL) {
            n_small++;
            assert_int_equal(got, bound);
            assert_true(all_zero(buf, cap));
        } else if (st == FDL_CRL_OK) {
            n_ok++;
            assert_true(cap + 8 >= need); /* only near the size of the CRL */
            assert_true(got <= cap);
            parts q;
            split(buf, got, &q); /* complete: the outer length covers exactly got bytes */
            assert_int_equal(verify_sig(&q, (mbedtls_pk_context *)&g_issuer->pk), 0);
        } else {
            fail_msg("cap %zu of %zu: %s", cap, need, fdl_crl_strerror(st));
        }
        if (cap < tbs)
            assert_int_equal(st, FDL_CRL_ERR_SMALL);
        assert_int_equal(buf[cap], 0xa5); /* nothing written past cap */
    }
    assert_true(n_small >= (int)tbs);
    assert_true(n_ok >= 1);
    /* The bound always suffices. */
    size_t got = 0;
    assert_int_equal(fdl_crl_build(g_issuer, fdl_pki_key(g_pki), e, 2, 5, now, now + 60, fdl_pki_random, g_pki, buf,
                                   bound, &got),
                     FDL_CRL_OK);
    mbedtls_x509_crl crl;
    parse_crl(&crl, buf, got);
    mbedtls_x509_crl_free(&crl);
    free(buf);
    free(der);

    /* The bound holds for the largest entries: 32-byte serials with the top bit
     * set and GeneralizedTime dates, 5000 of them. */
    enum { M = 5000 };
    fdl_crl_entry *big = calloc(M, sizeof *big);
    assert_non_null(big);
    for (size_t i = 0; i < M; i++) {
        memset(big[i].serial, 0xff, FDL_CRL_SERIAL_MAX);
        big[i].serial[FDL_CRL_SERIAL_MAX - 1] = (uint8_t)i;
        big[i].serial[FDL_CRL_SERIAL_MAX - 2] = (uint8_t)(i >> 8);
        big[i].serial_len = FDL_CRL_SERIAL_MAX;
        big[i].revoked_at = 253402300799; /* 9999 */
    }
    size_t blen = build_with(big, M, UINT64_MAX, 2524608000, 253402300799, &der);
    assert_true(blen <= fdl_crl_der_bound(g_issuer, M));
    assert_true(blen > (size_t)M * 50);
    assert_int_equal(crl_number_of(der, blen), UINT64_MAX);
    parse_crl(&crl, der, blen);
    size_t count = 0;
    for (const mbedtls_x509_crl_entry *ce = &crl.entry; ce && ce->serial.len; ce = ce->next)
        count++;
    assert_int_equal(count, M);
    mbedtls_x509_crl_free(&crl);
    free(der);
    free(big);

    /* Over the entry ceiling: LIMIT, before anything is read from entries. */
    unsigned char small[64];
    got = 1;
    assert_int_equal(fdl_crl_build(g_issuer, fdl_pki_key(g_pki), e, (size_t)FDL_CRL_ENTRIES_MAX + 1, 1, now,
                                   now + 60, fdl_pki_random, g_pki, small, sizeof small, &got),
                     FDL_CRL_ERR_LIMIT);
    assert_int_equal(got, 0);
    assert_int_equal(fdl_crl_der_bound(g_issuer, (size_t)FDL_CRL_ENTRIES_MAX + 1), 0);
    assert_int_equal(fdl_crl_der_bound(NULL, 1), 0);
}

/* A CA certificate made here, signed by itself: optionally without SKI or without cRLSign. */
static void make_ca(mbedtls_pk_context *key, int with_ski, unsigned ku, mbedtls_x509_crt *out)
{
    mbedtls_x509write_cert w;
    unsigned char der[2048];
    static const unsigned char sn[] = {0x01, 0x02};
    mbedtls_x509write_crt_init(&w);
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, key);
    mbedtls_x509write_crt_set_issuer_key(&w, key);
    assert_int_equal(mbedtls_x509write_crt_set_serial_raw(&w, (unsigned char *)sn, sizeof sn), 0);
    assert_int_equal(mbedtls_x509write_crt_set_validity(&w, "20200101000000", "20400101000000"), 0);
    assert_int_equal(mbedtls_x509write_crt_set_subject_name(&w, "CN=test CA"), 0);
    assert_int_equal(mbedtls_x509write_crt_set_issuer_name(&w, "CN=test CA"), 0);
    assert_int_equal(mbedtls_x509write_crt_set_basic_constraints(&w, 1, 0), 0);
    assert_int_equal(mbedtls_x509write_crt_set_key_usage(&w, ku), 0);
    if (with_ski)
        assert_int_equal(mbedtls_x509write_crt_set_subject_key_identifier(&w), 0);
    int len = mbedtls_x509write_crt_der(&w, der, sizeof der, mbedtls_ctr_drbg_random, &t_drbg);
    assert_true(len > 0);
    mbedtls_x509_crt_init(out);
    assert_int_equal(mbedtls_x509_crt_parse_der(out, der + sizeof der - len, (size_t)len), 0);
    mbedtls_x509write_crt_free(&w);
}

static void arguments_are_checked(void **state)
{
    (void)state;
    unsigned char buf[2048];
    size_t len = 7;
    time_t now = time(NULL);
    mbedtls_pk_context *key = fdl_pki_key(g_pki);
    fdl_crl_entry e = entry_hex("01", now);

#define BUILD(iss, k, ents, n, rng, b, cap, lp)                                                                      \
    fdl_crl_build((iss), (k), (ents), (n), 1, now, now + 60, (rng), g_pki, (b), (cap), (lp))
    assert_int_equal(BUILD(NULL, key, &e, 1, fdl_pki_random, buf, sizeof buf, &len), FDL_CRL_ERR_ARG);
    assert_int_equal(len, 0);
    assert_int_equal(BUILD(g_issuer, NULL, &e, 1, fdl_pki_random, buf, sizeof buf, &len), FDL_CRL_ERR_ARG);
    assert_int_equal(BUILD(g_issuer, key, NULL, 1, fdl_pki_random, buf, sizeof buf, &len), FDL_CRL_ERR_ARG);
    assert_int_equal(BUILD(g_issuer, key, &e, 1, NULL, buf, sizeof buf, &len), FDL_CRL_ERR_ARG);
    assert_int_equal(BUILD(g_issuer, key, &e, 1, fdl_pki_random, NULL, sizeof buf, &len), FDL_CRL_ERR_ARG);
    assert_int_equal(BUILD(g_issuer, key, &e, 1, fdl_pki_random, buf, sizeof buf, NULL), FDL_CRL_ERR_ARG);
    /* n == 0 needs no entries. */
    assert_int_equal(BUILD(g_issuer, key, NULL, 0, fdl_pki_random, buf, sizeof buf, &len), FDL_CRL_OK);

    /* The root as issuer with the intermediate's key: the self-check refuses it. */
    assert_int_equal(BUILD(g_issuer->next, key, &e, 1, fdl_pki_random, buf, sizeof buf, &len), FDL_CRL_ERR_MISMATCH);
    assert_int_equal(len, 0);
    assert_true(all_zero(buf, sizeof buf));

    /* A device leaf cannot sign CRLs (keyUsage digitalSignature only). */
    char path[512];
    mbedtls_x509_crt leaf;
    fdl_pki_issued got;
    issue_leaf("not-a-ca", path, sizeof path, &leaf, &got);
    assert_int_equal(BUILD(&leaf, key, &e, 1, fdl_pki_random, buf, sizeof buf, &len), FDL_CRL_ERR_ARG);
    mbedtls_x509_crt_free(&leaf);

    /* A CA without subjectKeyIdentifier (no AKI possible) or without cRLSign is
     * refused; the same CA with both works. */
    mbedtls_pk_context ca_key;
    mbedtls_x509_crt ca;
    gen_key(&ca_key);
    make_ca(&ca_key, 0, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN, &ca);
    assert_int_equal(fdl_crl_build(&ca, &ca_key, &e, 1, 1, now, now + 60, mbedtls_ctr_drbg_random, &t_drbg, buf,
                                   sizeof buf, &len),
                     FDL_CRL_ERR_ARG);
    mbedtls_x509_crt_free(&ca);
    make_ca(&ca_key, 1, MBEDTLS_X509_KU_KEY_CERT_SIGN, &ca);
    assert_int_equal(fdl_crl_build(&ca, &ca_key, &e, 1, 1, now, now + 60, mbedtls_ctr_drbg_random, &t_drbg, buf,
                                   sizeof buf, &len),
                     FDL_CRL_ERR_ARG);
    mbedtls_x509_crt_free(&ca);
    make_ca(&ca_key, 1, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN, &ca);
    assert_int_equal(fdl_crl_build(&ca, &ca_key, &e, 1, 1, now, now + 60, mbedtls_ctr_drbg_random, &t_drbg, buf,
                                   sizeof buf, &len),
                     FDL_CRL_OK);
    mbedtls_x509_crl crl;
    parse_crl(&crl, buf, len);
    mbedtls_x509_crl_free(&crl);
    /* An empty key context (no type) is refused before anything is signed. */
    mbedtls_pk_context none;
    mbedtls_pk_init(&none);
    assert_int_equal(fdl_crl_build(&ca, &none, &e, 1, 1, now, now + 60, mbedtls_ctr_drbg_random, &t_drbg, buf,
                                   sizeof buf, &len),
                     FDL_CRL_ERR_ARG);
    mbedtls_x509_crt_free(&ca);
    mbedtls_pk_free(&ca_key);
#undef BUILD

    assert_string_equal(fdl_crl_strerror(FDL_CRL_OK), "ok");
    assert_string_equal(fdl_crl_strerror(FDL_CRL_ERR_SMALL), "output buffer too small");
    assert_non_null(fdl_crl_strerror((fdl_crl_status)999));
    for (int s = FDL_CRL_OK; s <= FDL_CRL_ERR_IO; s++)
        assert_string_not_equal(fdl_crl_strerror((fdl_crl_status)s), "unknown fdl_crl status");
}

/* ---------------------------------------------------------------------------------------- */
/* Publishing from the registry.                                                              */

static void publish_from_registry(void **state)
{
    (void)state;
    char dir[256], crl_path[512], out[8192], pa[512], pb[512], fpa[FDL_REG_FP_HEX_LEN + 1],
        fpb[FDL_REG_FP_HEX_LEN + 1];
    mbedtls_x509_crt a, b;
    fdl_pki_issued ga, gb;
    int64_t ca_id = 0;
    size_t n = 99;

    fdl_test_mkdtemp("crl-publish", dir, sizeof dir);
    snprintf(crl_path, sizeof crl_path, "%s/%s", dir, FDL_CRL_PEM);
    fdl_registry *reg = open_registry(dir, &ca_id);
    issue_leaf("pub-a", pa, sizeof pa, &a, &ga);
    issue_leaf("pub-b", pb, sizeof pb, &b, &gb);
    record_active(reg, &a, fpa);
    record_active(reg, &b, fpb);

    /* Nothing revoked yet: the empty CRL the broker needs before it starts. */
    assert_int_equal(fdl_crl_publish(reg, 0, g_pki, 0, crl_path, &n), FDL_CRL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(file_mode(crl_path), 0644);
    assert_int_equal(run(out, sizeof out, "head -1 '%s'", crl_path), 0);
    assert_string_equal(out, "-----BEGIN X509 CRL-----\n");
    assert_int_equal(run(out, sizeof out, "openssl crl -in '%s' -CAfile '%s' -noout", crl_path, g_chain), 0);
    assert_contains(out, "verify OK");
    assert_int_equal(run(out, sizeof out, "openssl crl -in '%s' -noout -text", crl_path), 0);
    assert_contains(out, "Version 2 (0x1)");
    assert_contains(out, "ecdsa-with-SHA256");
    assert_contains(out, "X509v3 Authority Key Identifier");
    assert_contains(out, "X509v3 CRL Number");
    assert_contains(out, "No Revoked Certificates.");
    assert_contains(out, "Issuer: CN = fleetdrill Issuing CA 1");
    assert_int_equal(run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s' '%s'", crl_path,
                         g_chain, pa, pb),
                     0);
    /* The default window: nextUpdate - thisUpdate = FDL_CRL_NEXT_UPDATE_S. */
    {
        mbedtls_x509_crl crl;
        mbedtls_x509_crl_init(&crl);
        assert_int_equal(mbedtls_x509_crl_parse_file(&crl, crl_path), 0);
        struct tm tu = {.tm_year = crl.this_update.year - 1900, .tm_mon = crl.this_update.mon - 1,
                        .tm_mday = crl.this_update.day, .tm_hour = crl.this_update.hour,
                        .tm_min = crl.this_update.min, .tm_sec = crl.this_update.sec};
        struct tm nu = {.tm_year = crl.next_update.year - 1900, .tm_mon = crl.next_update.mon - 1,
                        .tm_mday = crl.next_update.day, .tm_hour = crl.next_update.hour,
                        .tm_min = crl.next_update.min, .tm_sec = crl.next_update.sec};
        assert_int_equal((long long)(timegm(&nu) - timegm(&tu)), (long long)FDL_CRL_NEXT_UPDATE_S);
        assert_true(llabs((long long)(timegm(&tu) - time(NULL))) <= 5);
        mbedtls_x509_crl_free(&crl);
    }
    size_t len0 = 0;
    unsigned char *der0 = read_crl_der(crl_path, &len0);
    uint64_t num0 = crl_number_of(der0, len0);

    /* Revoke a: the next CRL lists it and only it, with a larger cRLNumber. */
    assert_int_equal(fdl_registry_cert_revoke(reg, fpa, "key compromise drill"), FDL_REG_OK);
    usleep(2000);
    int64_t before = (int64_t)time(NULL) * 1000 - 1000;
    assert_int_equal(fdl_crl_publish(reg, ca_id, g_pki, 3600, crl_path, &n), FDL_CRL_OK);
    assert_int_equal(n, 1);
    size_t len1 = 0;
    unsigned char *der1 = read_crl_der(crl_path, &len1);
    uint64_t num1 = crl_number_of(der1, len1);
    assert_true(num1 > num0);
    assert_true((int64_t)num1 >= before && (int64_t)num1 <= (int64_t)time(NULL) * 1000 + 1000);
    mbedtls_x509_crl crl;
    parse_crl(&crl, der1, len1);
    assert_int_equal(mbedtls_x509_crt_is_revoked(&a, &crl), 1);
    assert_int_equal(mbedtls_x509_crt_is_revoked(&b, &crl), 0);
    assert_true(verify_with_crl(&a, &crl) & MBEDTLS_X509_BADCERT_REVOKED);
    assert_int_equal(verify_with_crl(&b, &crl), 0);
    mbedtls_x509_crl_free(&crl);

    assert_int_equal(run(out, sizeof out, "openssl crl -in '%s' -CAfile '%s' -noout", crl_path, g_chain), 0);
    assert_contains(out, "verify OK");
    assert_int_not_equal(run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s'", crl_path,
                             g_chain, pa),
                         0);
    assert_contains(out, "certificate revoked");
    assert_int_equal(run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s'", crl_path,
                         g_chain, pb),
                     0);
    assert_contains(out, ": OK");

    /* Revoking the whole device set: both listed. */
    assert_int_equal(fdl_registry_cert_revoke(reg, fpb, NULL), FDL_REG_OK);
    assert_int_equal(fdl_crl_publish(reg, 0, g_pki, 0, crl_path, &n), FDL_CRL_OK);
    assert_int_equal(n, 2);
    assert_int_not_equal(run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s'", crl_path,
                             g_chain, pb),
                         0);
    assert_contains(out, "certificate revoked");

    /* Another CA's id: MISMATCH, and the file is left as it was. */
    int64_t root_id = 0;
    assert_int_equal(fdl_registry_ca_register(reg, g_issuer->next, "root", &root_id), FDL_REG_OK);
    assert_int_not_equal(root_id, ca_id);
    size_t len2 = 0;
    unsigned char *der2 = read_crl_der(crl_path, &len2);
    assert_int_equal(fdl_crl_publish(reg, root_id, g_pki, 0, crl_path, &n), FDL_CRL_ERR_MISMATCH);
    assert_int_equal(n, 0);
    size_t len3 = 0;
    unsigned char *der3 = read_crl_der(crl_path, &len3);
    assert_int_equal(len3, len2);
    assert_memory_equal(der3, der2, len2);
    assert_int_equal(fdl_crl_publish(NULL, 0, g_pki, 0, crl_path, &n), FDL_CRL_ERR_ARG);
    assert_int_equal(fdl_crl_publish(reg, 0, NULL, 0, crl_path, &n), FDL_CRL_ERR_ARG);
    assert_int_equal(fdl_crl_publish(reg, 0, g_pki, 0, NULL, &n), FDL_CRL_ERR_ARG);
    /* An unwritable path: IO. */
    assert_int_equal(fdl_crl_publish(reg, 0, g_pki, 0, "/tmp/fdl-test-no-such-dir/x/crl.pem", NULL),
                     FDL_CRL_ERR_IO);
    fdl_registry_free(reg);

    /* A registry that does not know the issuer: NOT_FOUND, nothing written. */
    char dir2[256], other[512];
    fdl_test_mkdtemp("crl-unknown", dir2, sizeof dir2);
    snprintf(other, sizeof other, "%s/%s", dir2, FDL_CRL_PEM);
    reg = open_registry(dir2, NULL);
    assert_int_equal(fdl_crl_publish(reg, 0, g_pki, 0, other, &n), FDL_CRL_ERR_NOT_FOUND);
    assert_int_not_equal(access(other, F_OK), 0);
    fdl_registry_free(reg);
    fdl_test_rmrf(dir2);

    free(der0);
    free(der1);
    free(der2);
    free(der3);
    mbedtls_x509_crt_free(&a);
    mbedtls_x509_crt_free(&b);
    fdl_test_rmrf(dir);
}

/*
 * The issuing key inside a SoftHSM2 token: fdl_crl_publish signs through C_Sign
 * (the pk context is only handed to mbedtls_pk_sign), and OpenSSL accepts the
 * result and revokes with it.
 */
static void token_backed_issuer(void **state)
{
    (void)state;
    char base[256], conf[512], dir[512], crl_path[600], chain[600], leaf_path[600], out[4096];
    char fp[FDL_REG_FP_HEX_LEN + 1];
    fdl_se_module *se = NULL;
    fdl_pki *pki = NULL;
    int64_t ca_id = 0;
    size_t n = 0;

    fdl_test_mkdtemp("crl-token", base, sizeof base);
    fdl_test_softhsm_conf(base, conf, sizeof conf);
    fdl_se_status ses = fdl_se_module_open(FDL_SOFTHSM2_MODULE, conf, &se);
    if (ses != FDL_SE_OK)
        fail_msg("fdl_se_module_open: %s", fdl_se_strerror(ses));
    snprintf(dir, sizeof dir, "%s/pki", base);
    fdl_pki_status ps = fdl_pki_setup(se, dir, NULL);
    if (ps == FDL_PKI_OK)
        ps = fdl_pki_open(se, dir, &pki);
    if (ps != FDL_PKI_OK)
        fail_msg("token PKI: %s: %s", fdl_pki_strerror(ps), fdl_pki_last_error());
    snprintf(chain, sizeof chain, "%s/%s", dir, FDL_PKI_CHAIN_PEM);
    snprintf(crl_path, sizeof crl_path, "%s/%s", dir, FDL_CRL_PEM);
    snprintf(leaf_path, sizeof leaf_path, "%s/tok-dev.pem", dir);

    fdl_registry *reg = NULL;
    {
        char rp[600];
        fdl_registry_opts o = {.actor = "test-crl"};
        snprintf(rp, sizeof rp, "%s/registry.db", base);
        assert_int_equal(fdl_registry_open(rp, &o, &reg), FDL_REG_OK);
        assert_int_equal(fdl_registry_ca_register(reg, fdl_pki_chain(pki), "issuing", &ca_id), FDL_REG_OK);
    }
    mbedtls_pk_context key;
    mbedtls_x509_crt leaf;
    gen_key(&key);
    fdl_pki_leaf_req req = {.device_id = "tok-dev", .public_key = &key};
    assert_int_equal(fdl_pki_issue_file(pki, &req, leaf_path, NULL), FDL_PKI_OK);
    mbedtls_x509_crt_init(&leaf);
    assert_int_equal(mbedtls_x509_crt_parse_file(&leaf, leaf_path), 0);
    assert_int_equal(fdl_registry_cert_record_x509(reg, &leaf, ca_id, fp, NULL), FDL_REG_OK);
    assert_int_equal(fdl_registry_cert_reject(reg, fp, "token test"), FDL_REG_OK);

    fdl_crl_status st = fdl_crl_publish(reg, ca_id, pki, 0, crl_path, &n);
    if (st != FDL_CRL_OK)
        fail_msg("fdl_crl_publish: %s (%s)", fdl_crl_strerror(st), fdl_crl_last_error());
    assert_int_equal(n, 1);
    (void)run(out, sizeof out, "openssl crl -in '%s' -CAfile '%s' -noout", crl_path, chain);
    assert_contains(out, "verify OK");
    assert_int_not_equal(run(out, sizeof out, "openssl verify -crl_check -CRLfile '%s' -CAfile '%s' '%s'", crl_path,
                             chain, leaf_path),
                         0);
    assert_contains(out, "certificate revoked");

    mbedtls_x509_crt_free(&leaf);
    mbedtls_pk_free(&key);
    fdl_registry_free(reg);
    fdl_pki_free(pki);
    fdl_se_module_free(se);
    fdl_test_rmrf(base);
}

/* Every allocation of ours in fdl_crl_publish fails in turn: NOMEM, no leak, old file intact. */
static void allocation_failures(void **state)
{
    (void)state;
    char dir[256], crl_path[512];
    int64_t ca_id = 0;
    size_t n = 0;

    fdl_test_mkdtemp("crl-alloc", dir, sizeof dir);
    snprintf(crl_path, sizeof crl_path, "%s/%s", dir, FDL_CRL_PEM);
    fdl_registry *reg = open_registry(dir, &ca_id);
    /* 20 revoked certificates: more than the first entry list holds, so the list grows. */
    for (int i = 0; i < 20; i++) {
        char seed[32], fp[FDL_REG_FP_HEX_LEN + 1], serial[40], dev[32];
        int sl = snprintf(seed, sizeof seed, "crl-cert-%d", i);
        assert_int_equal(fdl_registry_fingerprint((const unsigned char *)seed, (size_t)sl, fp), FDL_REG_OK);
        snprintf(serial, sizeof serial, "%02x%030x", 0x40 + i, i);
        snprintf(dev, sizeof dev, "alloc-dev-%d", i);
        fdl_reg_cert_rec rec = {.fingerprint = fp, .serial = serial, .device_id = dev, .ca_id = ca_id,
                                .not_before = 1700000000, .not_after = 1800000000};
        assert_int_equal(fdl_registry_cert_record(reg, &rec, NULL), FDL_REG_OK);
        assert_int_equal(fdl_registry_cert_reject(reg, fp, "alloc test"), FDL_REG_OK);
    }
    assert_int_equal(fdl_crl_publish(reg, 0, g_pki, 0, crl_path, &n), FDL_CRL_OK);
    assert_int_equal(n, 20);
    size_t len0 = 0;
    unsigned char *der0 = read_crl_der(crl_path, &len0);

    int saw_ok = 0, failures = 0;
    for (uint64_t nth = 1; nth < 64 && !saw_ok; nth++) {
        fdl_alloc_stats a = fdl_alloc_get_stats();
        fdl_alloc_fail_nth(nth);
        fdl_crl_status st = fdl_crl_publish(reg, 0, g_pki, 0, crl_path, &n);
        fdl_alloc_fail_nth(0);
        fdl_alloc_stats b = fdl_alloc_get_stats();
        assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
        if (st == FDL_CRL_OK) {
            saw_ok = 1;
            assert_int_equal(n, 20);
            assert_int_equal(b.failed, a.failed); /* the injected failure was never reached */
        } else {
            if (st != FDL_CRL_ERR_NOMEM)
                fail_msg("allocation %llu failing: %s (%s)", (unsigned long long)nth, fdl_crl_strerror(st),
                         fdl_crl_last_error());
            assert_int_equal(n, 0);
            failures++;
            /* The published CRL is untouched. */
            size_t l = 0;
            unsigned char *d = read_crl_der(crl_path, &l);
            assert_int_equal(l, len0);
            assert_memory_equal(d, der0, l);
            free(d);
        }
    }
    assert_true(saw_ok);
    assert_true(failures >= 4); /* list, list growth, DER, PEM */
    free(der0);
    fdl_registry_free(reg);
    fdl_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_crl_parses_and_verifies),
        cmocka_unit_test(revoked_entries_are_listed),
        cmocka_unit_test(tampered_crl_is_refused),
        cmocka_unit_test(openssl_rejects_wrong_issuer_aki_or_expiry),
        cmocka_unit_test(serial_encoding),
        cmocka_unit_test(serials_match_real_certificates),
        cmocka_unit_test(time_encoding),
        cmocka_unit_test(small_buffer_never_truncates),
        cmocka_unit_test(arguments_are_checked),
        cmocka_unit_test(publish_from_registry),
        cmocka_unit_test(token_backed_issuer),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
