/*
 * tests/test_jobdoc.c — the signed job document (devices/jobdoc.h): the document schema
 * from tests/vectors/fw/jobdoc.txt (one test per line), then the envelope, the
 * signature, and each device-side check (target, hardware, expiry, replay) in C.
 */
#include "fwtest.h"

#include <stdio.h>

#define MAX_VECTORS 400
#define MAX_BASE 16
#define DOC_MAX (FDL_JOBDOC_MAX + 1024)

typedef struct vector {
    char name[48];
    char status[16];
    bool whole;   /* "doc": text is a whole document */
    char *text;   /* heap */
} vector;

static vector g_vec[MAX_VECTORS];
static size_t g_n_vec;
static char *g_base_name[MAX_BASE], *g_base_raw[MAX_BASE];
static size_t g_n_base;

static fwt_key g_jobs, g_jobs_next, g_app;
static fdl_keyring g_kr;
static uint8_t g_doc[DOC_MAX], g_env[DOC_MAX + FDL_JOBDOC_OVERHEAD];

/* ---- the vector file ---------------------------------------------------------- */

static bool load_vectors(void)
{
    char path[4096];
    fdl_test_src_path("tests/vectors/fw/jobdoc.txt", path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return false;
    }
    static char line[8192];
    unsigned lineno = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *bar = strstr(line, " | ");
        if (!bar) {
            fprintf(stderr, "%s:%u: no ' | '\n", path, lineno);
            ok = false;
            break;
        }
        *bar = '\0';
        char *text = bar + 3;
        if (!strcmp(line, "BASE")) {
            char *eq = strchr(text, '=');
            if (!eq || g_n_base == MAX_BASE) {
                ok = false;
                break;
            }
            *eq = '\0';
            g_base_name[g_n_base] = fdl_test_strdup(text);
            g_base_raw[g_n_base++] = fdl_test_strdup(eq + 1);
            continue;
        }
        if (g_n_vec == MAX_VECTORS) {
            ok = false;
            break;
        }
        vector *v = &g_vec[g_n_vec++];
        snprintf(v->name, sizeof v->name, "jobdoc.txt:%u", lineno);
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = '\0';
            v->whole = !strcmp(sp + 1, "doc");
            if (!v->whole) {
                fprintf(stderr, "%s:%u: unknown option '%s'\n", path, lineno, sp + 1);
                ok = false;
            }
        }
        snprintf(v->status, sizeof v->status, "%s", line);
        v->text = fdl_test_strdup(text);
    }
    fclose(f);
    if (ok && (g_n_vec < 50 || g_n_base < 10)) {
        fprintf(stderr, "%s: only %zu vectors, %zu base members\n", path, g_n_vec, g_n_base);
        ok = false;
    }
    return ok;
}

static void append(size_t *len, const char *s)
{
    size_t n = strlen(s);
    assert_true(*len + n <= sizeof g_doc);
    memcpy(g_doc + *len, s, n);
    *len += n;
}

static void append_raw(size_t *len, const char *raw)
{
    assert_true(fdl_test_decode_pct(raw, g_doc, sizeof g_doc, len));
}

/* The base document with the edits of "name=RAW && name=RAW ..." applied. */
static size_t build_edited(const char *edits)
{
    const char *raw[MAX_BASE] = {0};
    bool removed[MAX_BASE] = {0};
    char *extra_name[8], *extra_raw[8];
    size_t n_extra = 0, len = 0;
    char *copy = fdl_test_strdup(edits), *save = NULL;
    for (char *e = copy; e; e = save) {
        save = strstr(e, " && ");
        if (save) {
            *save = '\0';
            save += 4;
        }
        char *eq = strchr(e, '=');
        assert_non_null(eq);
        *eq = '\0';
        size_t i = 0;
        while (i < g_n_base && strcmp(g_base_name[i], e))
            i++;
        if (i < g_n_base) {
            raw[i] = eq + 1;
            removed[i] = !eq[1];
        } else {
            assert_true(n_extra < 8);
            extra_name[n_extra] = e;
            extra_raw[n_extra++] = eq + 1;
        }
    }
    append(&len, "{");
    bool first = true;
    for (size_t i = 0; i < g_n_base + n_extra; i++) {
        const char *name = i < g_n_base ? g_base_name[i] : extra_name[i - g_n_base];
        const char *value = i < g_n_base ? (raw[i] ? raw[i] : g_base_raw[i]) : extra_raw[i - g_n_base];
        if (i < g_n_base && removed[i])
            continue;
        append(&len, first ? "\"" : ",\"");
        append(&len, name);
        append(&len, "\":");
        append_raw(&len, value);
        first = false;
    }
    append(&len, "}");
    free(copy);
    return len;
}

static fdl_jobdoc_status status_from(const char *s)
{
    if (!strcmp(s, "OK"))
        return FDL_JOB_OK;
    if (!strcmp(s, "JSON"))
        return FDL_JOB_ERR_JSON;
    if (!strcmp(s, "FIELD"))
        return FDL_JOB_ERR_FIELD;
    fail_msg("unknown status '%s'", s);
    return FDL_JOB_ERR_ARG;
}

/* Signs doc[0..len) with the test jobs key into g_env. */
static size_t wrap_signed(fwt_key *k, const uint8_t *doc, size_t len)
{
    uint8_t hash[32], sig[FDL_FW_SIG_LEN];
    fdl_jobdoc_signed_hash(doc, len, k->id, hash);
    fwt_sign_hash(k, hash, sig);
    size_t n = fdl_jobdoc_wrap(doc, len, k->id, sig, g_env, sizeof g_env);
    assert_int_equal(n, len + FDL_JOBDOC_OVERHEAD);
    return n;
}

static void run_vector(void **state)
{
    const vector *v = *state;
    size_t len = 0;
    if (v->whole)
        append_raw(&len, v->text);
    else
        len = build_edited(v->text);
    fdl_jobdoc jd;
    fdl_jobdoc_status want = status_from(v->status), got;
    assert_true(len > 0); /* an empty document is the envelope's business (d = 0) */
    size_t n = wrap_signed(&g_jobs, g_doc, len);
    got = fdl_jobdoc_parse(g_env, n, &jd);
    if (got != want)
        fail_msg("%s: want %s, got %s for %.*s", v->name, fdl_jobdoc_strerror(want), fdl_jobdoc_strerror(got),
                 (int)(len < 300 ? len : 300), (const char *)g_doc);
    if (got == FDL_JOB_OK) {
        /* Whatever parses is signed by a trusted key here, so it verifies. */
        assert_int_equal(fdl_jobdoc_verify(&jd, &g_kr), FDL_JOB_OK);
        assert_ptr_equal(jd.doc, g_env + 8);
        assert_int_equal(jd.doc_len, len);
        assert_true(jd.n_targets >= 1);
    }
}

/* ---- hand-written tests ----------------------------------------------------------- */

static size_t base_env(void)
{
    return wrap_signed(&g_jobs, g_doc, build_edited("seq=5"));
}

static void fields_parsed(void **state)
{
    (void)state;
    fdl_jobdoc jd;
    size_t n = base_env();
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_string_equal(jd.job, "fw-app-2");
    assert_int_equal(jd.seq, 5);
    assert_int_equal(jd.tier, FDL_TIER_APPLICATION);
    assert_int_equal(jd.version, 0x01020004);
    assert_int_equal(jd.counter, 8);
    assert_string_equal(jd.artifact, "app-1.2.4");
    static const uint8_t sha[32] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45,
                                    0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                                    0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    assert_memory_equal(jd.sha256, sha, 32);
    assert_int_equal(jd.size, 4224);
    assert_int_equal(jd.issued_ms, 1700000000000ull);
    assert_int_equal(jd.expires_ms, 1700003600000ull);
    assert_int_equal(jd.n_targets, 2);
    assert_int_equal(jd.n_hw, 2);
    assert_int_equal(jd.hw[0], 1);
    assert_int_equal(jd.hw[1], 2);
    assert_memory_equal(jd.key_id, g_jobs.id, FDL_FW_KEYID_LEN);
    assert_memory_equal(jd.doc + jd.targets_at, "[\"dev-000001\",\"dev-000002\"]", jd.targets_len);
    /* targets */
    assert_true(fdl_jobdoc_targets(&jd, "dev-000001"));
    assert_true(fdl_jobdoc_targets(&jd, "dev-000002"));
    static const char *no[] = {"dev-000003", "dev-00000", "dev-0000011", "dev", "", ",", "\"", "dev-000001\"",
                               "fw-app-2", "app-1.2.4", "application"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (fdl_jobdoc_targets(&jd, no[i]))
            fail_msg("'%s' taken for a target", no[i]);
    assert_false(fdl_jobdoc_targets(&jd, NULL));
    assert_false(fdl_jobdoc_targets(NULL, "dev-000001"));
    /* A corrupted view never reads outside the document. */
    fdl_jobdoc bad = jd;
    bad.targets_len = jd.doc_len - jd.targets_at + 1;
    assert_false(fdl_jobdoc_targets(&bad, "dev-000001"));
    bad = jd;
    bad.targets_at = jd.doc_len + 1;
    assert_false(fdl_jobdoc_targets(&bad, "dev-000001"));
}

static void envelope(void **state)
{
    (void)state;
    fdl_jobdoc jd;
    size_t n = base_env();
    /* Every truncation, and one byte more. */
    for (size_t k = 0; k < n; k++)
        assert_int_equal(fdl_jobdoc_parse(g_env, k, &jd), FDL_JOB_ERR_ENVELOPE);
    g_env[n] = 0;
    assert_int_equal(fdl_jobdoc_parse(g_env, n + 1, &jd), FDL_JOB_ERR_ENVELOPE);
    /* Magic. */
    for (int i = 0; i < 4; i++) {
        g_env[i] ^= 0x20;
        assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_ERR_ENVELOPE);
        g_env[i] ^= 0x20;
    }
    /* Length field: off by one either way, zero, above the ceiling, huge. */
    uint32_t d = (uint32_t)(n - FDL_JOBDOC_OVERHEAD);
    uint32_t bad[] = {d - 1, d + 1, 0, FDL_JOBDOC_MAX + 1, 0xffffffffu, 0x80000000u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g_env[4] = (uint8_t)(bad[i] >> 24), g_env[5] = (uint8_t)(bad[i] >> 16), g_env[6] = (uint8_t)(bad[i] >> 8),
        g_env[7] = (uint8_t)bad[i];
        assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_ERR_ENVELOPE);
    }
    g_env[4] = (uint8_t)(d >> 24), g_env[5] = (uint8_t)(d >> 16), g_env[6] = (uint8_t)(d >> 8), g_env[7] = (uint8_t)d;
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    /* An image or a keyring is not a job. */
    memcpy(g_env, "FDFW", 4);
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_ERR_ENVELOPE);
    assert_int_equal(fdl_jobdoc_parse(NULL, 0, &jd), FDL_JOB_ERR_ENVELOPE);
}

static void largest_document(void **state)
{
    (void)state;
    /* FDL_JOBDOC_TARGETS_MAX targets parse; one more is refused. */
    static char edit[DOC_MAX];
    size_t len = (size_t)snprintf(edit, sizeof edit, "targets=[");
    for (unsigned i = 0; i < FDL_JOBDOC_TARGETS_MAX; i++)
        len += (size_t)snprintf(edit + len, sizeof edit - len, "%s\"dev-%06u\"", i ? "," : "", i);
    snprintf(edit + len, sizeof edit - len, "]");
    fdl_jobdoc jd;
    size_t dl = build_edited(edit);
    assert_true(dl <= FDL_JOBDOC_MAX);
    size_t n = wrap_signed(&g_jobs, g_doc, dl);
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_int_equal(jd.n_targets, FDL_JOBDOC_TARGETS_MAX);
    assert_true(fdl_jobdoc_targets(&jd, "dev-000000"));
    assert_true(fdl_jobdoc_targets(&jd, "dev-004095"));
    assert_false(fdl_jobdoc_targets(&jd, "dev-004096"));
    snprintf(edit + len, sizeof edit - len, ",\"x\"]");
    n = wrap_signed(&g_jobs, g_doc, build_edited(edit));
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_ERR_FIELD);
    /* A document over FDL_JOBDOC_MAX cannot be wrapped, nor parsed. */
    memset(g_doc, ' ', FDL_JOBDOC_MAX + 1);
    uint8_t sig[FDL_FW_SIG_LEN] = {0};
    assert_int_equal(fdl_jobdoc_wrap(g_doc, FDL_JOBDOC_MAX + 1, g_jobs.id, sig, g_env, sizeof g_env), 0);
    assert_int_equal(fdl_jobdoc_wrap(g_doc, FDL_JOBDOC_MAX, g_jobs.id, sig, g_env, sizeof g_env),
                     FDL_JOBDOC_MAX + FDL_JOBDOC_OVERHEAD);
    assert_int_equal(fdl_jobdoc_parse(g_env, FDL_JOBDOC_MAX + FDL_JOBDOC_OVERHEAD, &jd), FDL_JOB_ERR_JSON);
}

static void wrap_and_hash(void **state)
{
    (void)state;
    const char *doc = "{\"a\":1}";
    uint8_t sig[FDL_FW_SIG_LEN], hash[32], want[32], out[128];
    memset(sig, 0xab, sizeof sig);
    size_t n = fdl_jobdoc_wrap((const uint8_t *)doc, 7, g_jobs.id, sig, out, sizeof out);
    assert_int_equal(n, 7 + FDL_JOBDOC_OVERHEAD);
    assert_memory_equal(out, "FDJ1\0\0\0\x07{\"a\":1}", 15);
    assert_memory_equal(out + 15, g_jobs.id, 8);
    assert_memory_equal(out + 23, sig, 64);
    /* The signed hash covers bytes 0 .. 16 + d - 1 of the envelope. */
    fdl_jobdoc_signed_hash((const uint8_t *)doc, 7, g_jobs.id, hash);
    assert_int_equal(mbedtls_sha256(out, 16 + 7, want, 0), 0);
    assert_memory_equal(hash, want, 32);
    /* Too small, bad arguments. */
    assert_int_equal(fdl_jobdoc_wrap((const uint8_t *)doc, 7, g_jobs.id, sig, out, n - 1), 0);
    assert_int_equal(fdl_jobdoc_wrap(NULL, 7, g_jobs.id, sig, out, sizeof out), 0);
    assert_int_equal(fdl_jobdoc_wrap((const uint8_t *)doc, 0, g_jobs.id, sig, out, sizeof out), 0);
    /* In place: the document already at out + 8. */
    memcpy(out + 8, doc, 7);
    assert_int_equal(fdl_jobdoc_wrap(out + 8, 7, g_jobs.id, sig, out, sizeof out), n);
    assert_memory_equal(out, "FDJ1\0\0\0\x07{\"a\":1}", 15);
}

static void signature(void **state)
{
    (void)state;
    fdl_jobdoc jd;
    size_t dl = build_edited("seq=5");
    size_t n = wrap_signed(&g_jobs, g_doc, dl);
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_verify(&jd, &g_kr), FDL_JOB_OK);
    /* The next jobs key is trusted too (rotation window). */
    n = wrap_signed(&g_jobs_next, g_doc, dl);
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_verify(&jd, &g_kr), FDL_JOB_OK);
    /* A key trusted for images only (application) is unknown for jobs. */
    n = wrap_signed(&g_app, g_doc, dl);
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_verify(&jd, &g_kr), FDL_JOB_ERR_KEY_UNKNOWN);
    /* Signed by the jobs key, key id then swapped for the next key's: SIGNATURE. */
    n = wrap_signed(&g_jobs, g_doc, dl);
    memcpy(g_env + 8 + dl, g_jobs_next.id, FDL_FW_KEYID_LEN);
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_verify(&jd, &g_kr), FDL_JOB_ERR_SIGNATURE);
    /* A changed target (still valid JSON) after signing: SIGNATURE. */
    n = wrap_signed(&g_jobs, g_doc, dl);
    uint8_t *t = memmem(g_env, n, "dev-000002", 10);
    assert_non_null(t);
    t[9] = '3';
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_true(fdl_jobdoc_targets(&jd, "dev-000003"));
    assert_int_equal(fdl_jobdoc_verify(&jd, &g_kr), FDL_JOB_ERR_SIGNATURE);
    /* Every signature bit matters. */
    n = wrap_signed(&g_jobs, g_doc, dl);
    for (size_t i = 0; i < FDL_FW_SIG_LEN; i++) {
        g_env[n - FDL_FW_SIG_LEN + i] ^= 0x01;
        assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
        assert_int_equal(fdl_jobdoc_verify(&jd, &g_kr), FDL_JOB_ERR_SIGNATURE);
        g_env[n - FDL_FW_SIG_LEN + i] ^= 0x01;
    }
    /* An unsigned envelope (zero key id and signature). */
    memset(g_env + 8 + dl, 0, FDL_FW_KEYID_LEN + FDL_FW_SIG_LEN);
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_verify(&jd, &g_kr), FDL_JOB_ERR_KEY_UNKNOWN);
    assert_int_equal(fdl_jobdoc_verify(NULL, &g_kr), FDL_JOB_ERR_ARG);
    assert_int_equal(fdl_jobdoc_verify(&jd, NULL), FDL_JOB_ERR_ARG);
}

#define ISSUED 1700000000000ull
#define EXPIRES 1700003600000ull

static void device_checks(void **state)
{
    (void)state;
    fdl_jobdoc jd;
    size_t n = base_env(); /* seq 5, targets dev-000001/2, hw 1 and 2 */
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    const uint64_t now = ISSUED + 1000;
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, now, 4), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000002", 2, now, 0), FDL_JOB_OK);
    /* mix-and-match */
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000003", 1, now, 4), FDL_JOB_ERR_NOT_FOR_ME);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 3, now, 4), FDL_JOB_ERR_HW);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 0, now, 4), FDL_JOB_ERR_HW);
    /* freeze: expiry is exclusive; the future is allowed up to the skew */
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, EXPIRES - 1, 4), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, EXPIRES, 4), FDL_JOB_ERR_EXPIRED);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, UINT64_MAX, 4), FDL_JOB_ERR_EXPIRED);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, ISSUED - FDL_JOBDOC_SKEW_MS, 4), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, ISSUED - FDL_JOBDOC_SKEW_MS - 1, 4),
                     FDL_JOB_ERR_EXPIRED);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, 0, 4), FDL_JOB_ERR_EXPIRED);
    /* replay */
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, now, 5), FDL_JOB_ERR_REPLAY);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, now, 6), FDL_JOB_ERR_REPLAY);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, now, UINT64_MAX), FDL_JOB_ERR_REPLAY);
    /* The order of the checks: signature, target, hardware, time, replay. */
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000009", 9, 0, 99), FDL_JOB_ERR_NOT_FOR_ME);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 9, 0, 99), FDL_JOB_ERR_HW);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, 0, 99), FDL_JOB_ERR_EXPIRED);
    fdl_keyring empty;
    memset(&empty, 0, sizeof empty);
    fwt_keyring_add(&empty, &g_app, FDL_TIER_APPLICATION, FDL_KEY_CURRENT);
    assert_int_equal(fdl_jobdoc_check(&jd, &empty, "dev-000009", 9, 0, 99), FDL_JOB_ERR_KEY_UNKNOWN);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, NULL, 1, now, 4), FDL_JOB_ERR_ARG);
    /* Without "hw", every hardware revision qualifies. */
    n = wrap_signed(&g_jobs, g_doc, build_edited("hw="));
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_int_equal(jd.n_hw, 0);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 0, now, 4), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 0xffffffff, now, 4), FDL_JOB_OK);
    /* issued within the first skew of the epoch: no underflow */
    n = wrap_signed(&g_jobs, g_doc, build_edited("issued=10 && expires=20"));
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, 0, 4), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, 20, 4), FDL_JOB_ERR_EXPIRED);
}

static void strerror_and_args(void **state)
{
    (void)state;
    for (int s = FDL_JOB_OK; s <= FDL_JOB_ERR_ARG; s++)
        assert_string_not_equal(fdl_jobdoc_strerror((fdl_jobdoc_status)s), "unknown job document status");
    assert_string_equal(fdl_jobdoc_strerror((fdl_jobdoc_status)50), "unknown job document status");
    fdl_jobdoc jd;
    size_t n = base_env();
    assert_int_equal(fdl_jobdoc_parse(g_env, n, NULL), FDL_JOB_ERR_ARG);
    assert_int_equal(fdl_jobdoc_parse(NULL, n, &jd), FDL_JOB_ERR_ARG);
    /* out untouched on failure */
    memset(&jd, 0x11, sizeof jd);
    fdl_jobdoc before = jd;
    n = wrap_signed(&g_jobs, g_doc, build_edited("seq=0"));
    assert_int_equal(fdl_jobdoc_parse(g_env, n, &jd), FDL_JOB_ERR_FIELD);
    assert_memory_equal(&jd, &before, sizeof jd);
}

/* job-1.env was made by tests/vectors/fw/make_vectors.py (Python/OpenSSL): the C
 * parser and verifier agree with an independent implementation of the format. */
static size_t read_fw_vector(const char *name, uint8_t *buf, size_t cap)
{
    char rel[256], path[4096];
    snprintf(rel, sizeof rel, "tests/vectors/fw/%s", name);
    fdl_test_src_path(rel, path, sizeof path);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    size_t n = fread(buf, 1, cap, f);
    assert_true(feof(f));
    fclose(f);
    return n;
}

static void independent_envelope(void **state)
{
    (void)state;
    static uint8_t env[4096], img[4096];
    uint8_t pub[FDL_FW_PUB_LEN + 1], sum[32];
    size_t n = read_fw_vector("job-1.env", env, sizeof env);
    size_t in = read_fw_vector("app-1.2.3.img", img, sizeof img);
    assert_int_equal(read_fw_vector("keys/jobs.pub", pub, sizeof pub), FDL_FW_PUB_LEN);
    fdl_keyring kr;
    memset(&kr, 0, sizeof kr);
    kr.n = 1;
    kr.e[0].usage = FDL_KEY_USAGE_JOBS;
    kr.e[0].state = FDL_KEY_CURRENT;
    memcpy(kr.e[0].pub, pub, FDL_FW_PUB_LEN);
    fdl_fw_key_id(pub, kr.e[0].key_id);
    fdl_jobdoc jd;
    assert_int_equal(fdl_jobdoc_parse(env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_verify(&jd, &kr), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &kr, "dev-000001", 1, 1700000000000ull + 1, 0), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &kr, "dev-000003", 1, 1700000000000ull + 1, 0), FDL_JOB_ERR_NOT_FOR_ME);
    /* The document names the image by size and hash of the whole file. */
    assert_int_equal(jd.size, in);
    assert_int_equal(mbedtls_sha256(img, in, sum, 0), 0);
    assert_memory_equal(jd.sha256, sum, 32);
    assert_int_equal(jd.tier, FDL_TIER_APPLICATION);
    assert_int_equal(jd.version, 0x01020003);
    assert_int_equal(jd.counter, 3);
    /* The jobs key is not trusted for anything else; the app key's keyring refuses it. */
    kr.e[0].usage = FDL_TIER_APPLICATION;
    assert_int_equal(fdl_jobdoc_verify(&jd, &kr), FDL_JOB_ERR_KEY_UNKNOWN);
    kr.e[0].usage = FDL_KEY_USAGE_JOBS;
    env[20] ^= 1; /* inside the job id: "fw-app" -> "fw-aqp", still a valid document */
    assert_int_equal(fdl_jobdoc_parse(env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_verify(&jd, &kr), FDL_JOB_ERR_SIGNATURE);
}

/* ---- main -------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    fwt_key_new(&g_jobs);
    fwt_key_new(&g_jobs_next);
    fwt_key_new(&g_app);
    memset(&g_kr, 0, sizeof g_kr);
    fwt_keyring_add(&g_kr, &g_app, FDL_TIER_APPLICATION, FDL_KEY_CURRENT);
    fwt_keyring_add(&g_kr, &g_jobs, FDL_KEY_USAGE_JOBS, FDL_KEY_CURRENT);
    fwt_keyring_add(&g_kr, &g_jobs_next, FDL_KEY_USAGE_JOBS, FDL_KEY_NEXT);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fwt_key_free(&g_jobs);
    fwt_key_free(&g_jobs_next);
    fwt_key_free(&g_app);
    return 0;
}

int main(void)
{
    if (!load_vectors())
        return 1;
    static struct CMUnitTest tests[MAX_VECTORS + 16];
    size_t n = 0;
    for (size_t i = 0; i < g_n_vec; i++)
        tests[n++] = (struct CMUnitTest){g_vec[i].name, run_vector, NULL, NULL, &g_vec[i]};
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(fields_parsed), cmocka_unit_test(envelope),      cmocka_unit_test(largest_document),
        cmocka_unit_test(wrap_and_hash), cmocka_unit_test(signature),     cmocka_unit_test(device_checks),
        cmocka_unit_test(strerror_and_args), cmocka_unit_test(independent_envelope),
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        tests[n++] = fixed[i];
    return _cmocka_run_group_tests("test_jobdoc", tests, n, group_setup, group_teardown);
}
