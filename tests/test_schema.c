/*
 * tests/test_schema.c — unit tests for per-topic payload schemas (cloud/schema.h).
 *
 * Data-driven: one cmocka test per line of
 *   tests/vectors/schema/apply.txt  fdl_schema_apply (with the schema text inline)
 *   tests/vectors/schema/text.txt   fdl_schema_set_parse
 *   tests/vectors/schema/match.txt  fdl_schema_set_match
 * (formats at the top of each file), then hand-written tests: the device's
 * real payload, output ceilings, allocation balance and failure injection,
 * locale independence, argument checks and the statistics helper.
 */
#include "testutil.h"

#include "cloud/schema.h"
#include "sim/alloc.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* Vector files                                                               */
/* ------------------------------------------------------------------------- */

#define MAX_VECTORS 400
#define MAX_DATA 70000

typedef struct vector {
    char name[80];
    char status[24];
    char opts[160];
    char *text;          /* after " | " (and before " => "); heap */
    char *expect;        /* after " => ", or NULL; heap */
    const char *schema;  /* apply.txt: the schema text in force; shared, heap */
} vector;

static vector g_vec[MAX_VECTORS];
static struct CMUnitTest g_tests[MAX_VECTORS];
static size_t g_n_vec;
static char *g_schemas[64];
static size_t g_n_schemas;

/* Loads one vector file; "@@ " lines build the schema text for apply.txt. */
static bool load_vectors(const char *rel, const char *prefix)
{
    char path[4096];
    fdl_test_src_path(rel, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return false;
    }
    static char line[8192];
    static char pending[8192];
    size_t pending_len = 0;
    const char *schema = NULL;
    unsigned lineno = 0;
    size_t before = g_n_vec;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        if (strncmp(line, "@@ ", 3) == 0) {
            if (pending_len + n - 3 + 2 > sizeof pending) {
                ok = false;
                break;
            }
            memcpy(pending + pending_len, line + 3, n - 3);
            pending_len += n - 3;
            pending[pending_len++] = '\n';
            pending[pending_len] = '\0';
            continue;
        }
        if (pending_len) {
            if (g_n_schemas == sizeof g_schemas / sizeof g_schemas[0]) {
                ok = false;
                break;
            }
            schema = g_schemas[g_n_schemas++] =
                fdl_test_strdup(strcmp(pending, "default\n") == 0 ? fdl_schema_default_text : pending);
            pending_len = 0;
        }
        char *bar = strstr(line, " | ");
        if (!bar || g_n_vec == MAX_VECTORS) {
            fprintf(stderr, "%s:%u: no ' | ' or too many vectors\n", path, lineno);
            ok = false;
            break;
        }
        *bar = '\0';
        vector *v = &g_vec[g_n_vec++];
        memset(v, 0, sizeof *v);
        snprintf(v->name, sizeof v->name, "%s:%u", prefix, lineno);
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = '\0';
            snprintf(v->opts, sizeof v->opts, "%s", sp + 1);
        }
        snprintf(v->status, sizeof v->status, "%s", line);
        char *text = bar + 3;
        char *arrow = strstr(text, " => ");
        if (arrow) {
            *arrow = '\0';
            v->expect = fdl_test_strdup(arrow + 4);
        }
        v->text = fdl_test_strdup(text);
        v->schema = schema;
    }
    fclose(f);
    if (ok && g_n_vec - before < 10) {
        fprintf(stderr, "%s: only %zu vectors\n", path, g_n_vec - before);
        ok = false;
    }
    if (!ok)
        fprintf(stderr, "%s: load failed near line %u\n", path, lineno);
    return ok;
}

static const char *opt(const vector *v, const char *key, char *buf, size_t cap)
{
    size_t kn = strlen(key);
    for (const char *p = v->opts; p && *p;) {
        while (*p == ' ')
            p++;
        if (strncmp(p, key, kn) == 0 && p[kn] == '=') {
            const char *e = strchr(p, ' ');
            size_t n = e ? (size_t)(e - p - kn - 1) : strlen(p + kn + 1);
            if (n >= cap)
                n = cap - 1;
            memcpy(buf, p + kn + 1, n);
            buf[n] = '\0';
            return buf;
        }
        p = strchr(p, ' ');
    }
    return NULL;
}

static fdl_schema_status status_from(const char *s)
{
    for (int st = 0; st < FDL_SCHEMA__COUNT; st++) {
        static const char *const names[FDL_SCHEMA__COUNT] = {
            "OK", "MALFORMED", "TOO_LARGE", "TOO_DEEP", "NOT_OBJECT", "MISSING", "WRONG_TYPE",
            "OUT_OF_BOUNDS", "NO_SPACE", "BAD_ARG", "SYNTAX", "NO_MEMORY",
        };
        if (strcmp(s, names[st]) == 0)
            return (fdl_schema_status)st;
    }
    fail_msg("unknown status '%s'", s);
    return FDL_SCHEMA_BAD_ARG;
}

static uint8_t g_data[MAX_DATA];
static char g_out[MAX_DATA];
static char g_out2[MAX_DATA];

static fdl_schema_set *parse_ok(const char *text)
{
    fdl_schema_set *set = NULL;
    char err[256];
    fdl_schema_status st = fdl_schema_set_parse(text, strlen(text), &set, err, sizeof err);
    if (st != FDL_SCHEMA_OK)
        fail_msg("schema text refused: %s (%s)", err, fdl_schema_strerror(st));
    return set;
}

/* An accepted output is a fixed point: applied again it is accepted, identical, clean. */
static void check_fixed_point(const fdl_schema *s, const char *out, size_t out_len)
{
    fdl_schema_verdict v2;
    size_t n2 = 0;
    fdl_schema_status st = fdl_schema_apply(s, (const uint8_t *)out, out_len, g_out2, sizeof g_out2,
                                            &n2, &v2);
    if (st != FDL_SCHEMA_OK)
        fail_msg("output '%s' refused: %s field '%s'", out, fdl_schema_strerror(st), v2.field);
    assert_int_equal(n2, out_len);
    assert_memory_equal(g_out2, out, out_len);
    assert_int_equal(v2.dropped, 0);
    assert_int_equal(v2.coerced, 0);
}

static void run_apply(void **state)
{
    const vector *v = *state;
    assert_non_null(v->schema);
    fdl_schema_set *set = parse_ok(v->schema);
    const fdl_schema *s = fdl_schema_set_get(set, 0);
    size_t len = 0;
    if (!fdl_test_decode_pct(v->text, g_data, sizeof g_data, &len))
        fail_msg("%s: bad vector text", v->name);

    fdl_schema_status want = status_from(v->status);
    size_t cap = fdl_schema_output_max(s), out_len = 999;
    assert_true(cap <= sizeof g_out);
    fdl_schema_verdict vd;
    memset(&vd, 0x5a, sizeof vd);
    fdl_schema_status got = fdl_schema_apply(s, g_data, len, g_out, cap, &out_len, &vd);
    if (got != want)
        fail_msg("%s: got %s (field '%s' at %zu), want %s", v->name, fdl_schema_strerror(got),
                 vd.field, vd.offset, fdl_schema_strerror(want));
    assert_int_equal(vd.status, got);
    char b[64];
    const char *field = opt(v, "field", b, sizeof b);
    assert_string_equal(vd.field, field ? field : "");
    if (opt(v, "at", b, sizeof b) && vd.offset != strtoul(b, NULL, 10))
        fail_msg("%s: offset %zu, want %s", v->name, vd.offset, b);
    if (got != FDL_SCHEMA_OK) {
        assert_int_equal(out_len, 0);
        assert_true(fdl_schema_is_rejection(got));
        assert_null(v->expect);
        fdl_schema_set_free(set);
        return;
    }
    assert_int_equal(vd.dropped, opt(v, "dropped", b, sizeof b) ? strtoul(b, NULL, 10) : 0);
    assert_int_equal(vd.coerced, opt(v, "coerced", b, sizeof b) ? strtoul(b, NULL, 10) : 0);
    assert_non_null(v->expect);
    static uint8_t want_out[MAX_DATA];
    size_t want_len = 0;
    if (!fdl_test_decode_pct(v->expect, want_out, sizeof want_out, &want_len))
        fail_msg("%s: bad expected text", v->name);
    if (out_len != want_len || memcmp(g_out, want_out, want_len) != 0)
        fail_msg("%s: output\n  got  %.*s\n  want %.*s", v->name, (int)out_len, g_out,
                 (int)want_len, (const char *)want_out);
    assert_int_equal(g_out[out_len], '\0');
    assert_true(out_len < cap);
    check_fixed_point(s, g_out, out_len);

    /* Exactly out_len + 1 bytes are needed. */
    size_t n3 = 7;
    assert_int_equal(fdl_schema_apply(s, g_data, len, g_out2, out_len, &n3, &vd), FDL_SCHEMA_NO_SPACE);
    assert_int_equal(n3, 0);
    assert_int_equal(vd.status, FDL_SCHEMA_NO_SPACE);
    assert_int_equal(fdl_schema_apply(s, g_data, len, g_out2, out_len + 1, &n3, &vd), FDL_SCHEMA_OK);
    assert_int_equal(n3, out_len);
    assert_int_equal(fdl_schema_apply(s, g_data, len, NULL, 0, &n3, &vd), FDL_SCHEMA_NO_SPACE);
    fdl_schema_set_free(set);
}

static void run_text(void **state)
{
    const vector *v = *state;
    static uint8_t text[MAX_DATA];
    size_t len = 0;
    if (!fdl_test_decode_pct(v->text, text, sizeof text, &len))
        fail_msg("%s: bad vector text", v->name);
    fdl_schema_status want = status_from(v->status);
    fdl_schema_set *set = (fdl_schema_set *)&set;   /* must be overwritten */
    char err[256];
    memset(err, 'x', sizeof err);
    fdl_schema_status got = fdl_schema_set_parse((const char *)text, len, &set, err, sizeof err);
    if (got != want)
        fail_msg("%s: got %s (%s), want %s", v->name, fdl_schema_strerror(got), err,
                 fdl_schema_strerror(want));
    char b[64];
    if (got == FDL_SCHEMA_OK) {
        assert_non_null(set);
        assert_string_equal(err, "");
        if (opt(v, "count", b, sizeof b))
            assert_int_equal(fdl_schema_set_count(set), strtoul(b, NULL, 10));
        fdl_schema_set_free(set);
        return;
    }
    assert_null(set);
    assert_true(strlen(err) > 0);
    if (opt(v, "line", b, sizeof b)) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "line %s: ", b);
        if (strncmp(err, prefix, strlen(prefix)) != 0)
            fail_msg("%s: message '%s' does not start with '%s'", v->name, err, prefix);
    }
    if (v->expect && *v->expect && !strstr(err, v->expect))
        fail_msg("%s: message '%s' lacks '%s'", v->name, err, v->expect);
}

static void run_match(void **state)
{
    const vector *v = *state;
    bool want = strcmp(v->status, "MATCH") == 0;
    assert_true(want || strcmp(v->status, "NOMATCH") == 0);
    assert_non_null(v->expect);
    char text[512];
    snprintf(text, sizeof text, "topic %s\nfield x boolean optional\n", v->text);
    fdl_schema_set *set = parse_ok(text);
    const fdl_schema *got = fdl_schema_set_match(set, v->expect, strlen(v->expect));
    if ((got != NULL) != want)
        fail_msg("%s: filter '%s' topic '%s': got %s", v->name, v->text, v->expect,
                 got ? "match" : "no match");
    if (got)
        assert_string_equal(fdl_schema_topic(got), v->text);
    fdl_schema_set_free(set);
}

/* ------------------------------------------------------------------------- */
/* Hand-written tests                                                         */
/* ------------------------------------------------------------------------- */

/* The exact payload devices/device.c formats, through the default schema. */
static void device_payload_roundtrip(void **state)
{
    (void)state;
    fdl_schema_set *set = NULL;
    assert_int_equal(fdl_schema_set_default(&set), FDL_SCHEMA_OK);
    assert_int_equal(fdl_schema_set_count(set), 1);
    const fdl_schema *s = fdl_schema_set_match(set, "telemetry/dev-000042", 20);
    assert_non_null(s);
    assert_ptr_equal(s, fdl_schema_set_get(set, 0));
    assert_null(fdl_schema_set_get(set, 1));
    assert_string_equal(fdl_schema_topic(s), "telemetry/+");
    assert_int_equal(fdl_schema_max_bytes(s), 1024);
    assert_null(fdl_schema_set_match(set, "commands/dev-000042", 19));
    assert_null(fdl_schema_set_match(set, "telemetry/a/b", 13));

    for (unsigned i = 0; i < 2000; i++) {
        char payload[192];
        double battery = 100.0 - (double)(i % 96) - 0.001 * i;
        double torque = 8.0 + (double)((i * 7919u) % 1000) / 100.0;
        int n = snprintf(payload, sizeof payload,
                         "{\"seq\":%u,\"ts\":%llu,\"battery\":%.2f,\"torque\":%.2f,\"usage_minutes\":%u}",
                         i, 1763712000123ull + i * 5000ull, battery, torque, i / 12);
        size_t out_len = 0;
        fdl_schema_verdict v;
        assert_int_equal(fdl_schema_apply(s, (const uint8_t *)payload, (size_t)n, g_out,
                                          fdl_schema_output_max(s), &out_len, &v), FDL_SCHEMA_OK);
        assert_int_equal(v.dropped, 0);
        check_fixed_point(s, g_out, out_len);
    }
    fdl_schema_set_free(set);
}

/* The worst case of every field type fits fdl_schema_output_max exactly-ish. */
static void output_max_is_enough(void **state)
{
    (void)state;
    fdl_schema_set *set = parse_ok("topic t\n"
                                   "field i integer required\n"
                                   "field n number required\n"
                                   "field s string required maxlen 16\n"
                                   "field b boolean required\n");
    const fdl_schema *s = fdl_schema_set_get(set, 0);
    const char *p = "{\"i\":-9223372036854775808,\"n\":-1.0000000000000002e-300,"
                    "\"s\":\"\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001"
                    "\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\",\"b\":false}";
    size_t out_len = 0;
    fdl_schema_verdict v;
    size_t cap = fdl_schema_output_max(s);
    assert_int_equal(fdl_schema_apply(s, (const uint8_t *)p, strlen(p), g_out, cap, &out_len, &v),
                     FDL_SCHEMA_OK);
    assert_int_equal(out_len + 1, cap);   /* the bound is tight for this schema */
    check_fixed_point(s, g_out, out_len);
    fdl_schema_set_free(set);
}

/* A verdict about the payload wins over a too-small output buffer. */
static void verdict_before_no_space(void **state)
{
    (void)state;
    fdl_schema_set *set = NULL;
    assert_int_equal(fdl_schema_set_default(&set), FDL_SCHEMA_OK);
    const fdl_schema *s = fdl_schema_set_get(set, 0);
    const char *p = "{\"seq\":1,\"ts\":2,\"battery\":300,\"torque\":4,\"usage_minutes\":5}";
    size_t n = 0;
    fdl_schema_verdict v;
    char small[4];
    assert_int_equal(fdl_schema_apply(s, (const uint8_t *)p, strlen(p), small, sizeof small, &n, &v),
                     FDL_SCHEMA_OUT_OF_BOUNDS);
    assert_string_equal(v.field, "battery");
    assert_false(fdl_schema_is_rejection(FDL_SCHEMA_NO_SPACE));
    assert_false(fdl_schema_is_rejection(FDL_SCHEMA_OK));
    fdl_schema_set_free(set);
}

/* Parse and free balance; the Nth allocation failing gives NO_MEMORY and no leak. */
static void allocation_balance_and_failures(void **state)
{
    (void)state;
    const char *text = "topic a/+\nfield x integer required\n"
                       "topic b/#\nfield y string optional\n"
                       "topic c\nfield z boolean optional\n";
    fdl_alloc_stats before = fdl_alloc_get_stats();
    fdl_schema_set *set = parse_ok(text);
    fdl_schema_set_free(set);
    fdl_alloc_stats after = fdl_alloc_get_stats();
    assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
    assert_true(after.allocs - before.allocs >= 4);   /* the set and three schemas */

    unsigned failures_seen = 0;
    for (uint64_t nth = 1; nth <= 8; nth++) {
        before = fdl_alloc_get_stats();
        fdl_alloc_fail_nth(nth);
        set = (fdl_schema_set *)&set;
        char err[128];
        fdl_schema_status st = fdl_schema_set_parse(text, strlen(text), &set, err, sizeof err);
        fdl_alloc_fail_nth(0);
        if (st == FDL_SCHEMA_NO_MEMORY) {
            failures_seen++;
            assert_null(set);
            assert_non_null(strstr(err, "out of memory"));
        } else {
            assert_int_equal(st, FDL_SCHEMA_OK);
            fdl_schema_set_free(set);
        }
        after = fdl_alloc_get_stats();
        assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
    }
    assert_int_equal(failures_seen, 4);

    /* apply never allocates. */
    assert_int_equal(fdl_schema_set_default(&set), FDL_SCHEMA_OK);
    before = fdl_alloc_get_stats();
    const char *p = "{\"seq\":1,\"ts\":2,\"battery\":3,\"torque\":4,\"usage_minutes\":5,\"x\":[{}]}";
    size_t n = 0;
    fdl_schema_verdict v;
    assert_int_equal(fdl_schema_apply(fdl_schema_set_get(set, 0), (const uint8_t *)p, strlen(p), g_out,
                                      sizeof g_out, &n, &v), FDL_SCHEMA_OK);
    after = fdl_alloc_get_stats();
    assert_int_equal(after.allocs, before.allocs);
    fdl_schema_set_free(set);
}

/* Field and schema counts at their ceilings (names must differ, so built in C). */
static void field_and_schema_ceilings(void **state)
{
    (void)state;
    static char text[16384];
    size_t n = (size_t)snprintf(text, sizeof text, "topic t\n");
    for (unsigned i = 0; i < FDL_SCHEMA_MAX_FIELDS; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "field f%u integer optional\n", i);
    fdl_schema_set *set = parse_ok(text);
    const fdl_schema *s = fdl_schema_set_get(set, 0);
    /* Every field present, in reverse order: output in schema order. */
    char p[2048], want[2048];
    size_t pn = 0, wn = 0;
    pn += (size_t)snprintf(p + pn, sizeof p - pn, "{");
    wn += (size_t)snprintf(want + wn, sizeof want - wn, "{");
    for (unsigned i = 0; i < FDL_SCHEMA_MAX_FIELDS; i++) {
        pn += (size_t)snprintf(p + pn, sizeof p - pn, "%s\"f%u\":%u", i ? "," : "",
                               FDL_SCHEMA_MAX_FIELDS - 1 - i, FDL_SCHEMA_MAX_FIELDS - 1 - i);
        wn += (size_t)snprintf(want + wn, sizeof want - wn, "%s\"f%u\":%u", i ? "," : "", i, i);
    }
    snprintf(p + pn, sizeof p - pn, "}");
    snprintf(want + wn, sizeof want - wn, "}");
    size_t out_len = 0;
    fdl_schema_verdict v;
    assert_int_equal(fdl_schema_apply(s, (const uint8_t *)p, strlen(p), g_out, sizeof g_out, &out_len, &v),
                     FDL_SCHEMA_OK);
    assert_string_equal(g_out, want);
    fdl_schema_set_free(set);

    n += (size_t)snprintf(text + n, sizeof text - n, "field extra integer optional\n");
    char err[128];
    assert_int_equal(fdl_schema_set_parse(text, n, &set, err, sizeof err), FDL_SCHEMA_SYNTAX);
    assert_string_equal(err, "line 34: more than 32 fields");

    /* Schemas are tried in text order: the first match wins. */
    set = parse_ok("topic telemetry/special\nfield a integer required\n"
                   "topic telemetry/+\nfield b integer required\n"
                   "topic #\nfield c integer required\n");
    assert_string_equal(fdl_schema_topic(fdl_schema_set_match(set, "telemetry/special", 17)),
                        "telemetry/special");
    assert_string_equal(fdl_schema_topic(fdl_schema_set_match(set, "telemetry/x", 11)), "telemetry/+");
    assert_string_equal(fdl_schema_topic(fdl_schema_set_match(set, "other", 5)), "#");
    /* The topic length is honoured (no NUL needed). */
    assert_string_equal(fdl_schema_topic(fdl_schema_set_match(set, "telemetry/specialXYZ", 17)),
                        "telemetry/special");
    fdl_schema_set_free(set);
}

/* A comma-decimal C locale changes neither parsing nor output. */
static void locale_independent(void **state)
{
    (void)state;
    const char *locales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    const char *got = NULL;
    for (size_t i = 0; i < 4 && !got; i++)
        got = setlocale(LC_NUMERIC, locales[i]);
    if (!got) {
        /* No comma locale installed here; the dot path is covered elsewhere. */
        skip();
    }
    /* The locale really reads ',' as the decimal point, or this test proves nothing. */
    assert_true(strtod("0,5", NULL) == 0.5);
    fdl_schema_set *set = parse_ok("topic t\nfield n number required min -1.5 max 1e3\n"
                                   "field m number optional coerce\n");
    const fdl_schema *s = fdl_schema_set_get(set, 0);
    static const char *const cases[][2] = {
        {"{\"n\":87.25}", "{\"n\":87.25}"},
        {"{\"n\":-1.5,\"m\":\"1e-7\"}", "{\"n\":-1.5,\"m\":1e-07}"},
        {"{\"n\":0.30000000000000004,\"m\":12.31}", "{\"n\":0.30000000000000004,\"m\":12.31}"},
    };
    fdl_schema_status st[3];
    static char outs[3][128];
    for (size_t i = 0; i < 3; i++) {
        size_t n = 0;
        fdl_schema_verdict v;
        st[i] = fdl_schema_apply(s, (const uint8_t *)cases[i][0], strlen(cases[i][0]), outs[i],
                                 sizeof outs[i], &n, &v);
    }
    /* "87,25" must not pass either: it is not JSON in any locale. */
    size_t n = 0;
    fdl_schema_verdict v;
    fdl_schema_status comma = fdl_schema_apply(s, (const uint8_t *)"{\"n\":87,25}", 11, g_out,
                                               sizeof g_out, &n, &v);
    setlocale(LC_NUMERIC, "C");
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(st[i], FDL_SCHEMA_OK);
        assert_string_equal(outs[i], cases[i][1]);
    }
    assert_int_equal(comma, FDL_SCHEMA_MALFORMED);
    fdl_schema_set_free(set);
}

static void bad_args(void **state)
{
    (void)state;
    fdl_schema_set *set = NULL;
    char err[64];
    assert_int_equal(fdl_schema_set_parse("x", 1, NULL, err, sizeof err), FDL_SCHEMA_BAD_ARG);
    assert_int_equal(fdl_schema_set_parse(NULL, 1, &set, err, sizeof err), FDL_SCHEMA_BAD_ARG);
    assert_null(set);
    assert_int_equal(fdl_schema_set_parse(NULL, 0, &set, NULL, 0), FDL_SCHEMA_SYNTAX);
    /* A tiny error buffer is still NUL-terminated. */
    assert_int_equal(fdl_schema_set_parse("field", 5, &set, err, 4), FDL_SCHEMA_SYNTAX);
    assert_int_equal(strlen(err), 3);
    static char big[FDL_SCHEMA_MAX_TEXT + 2];
    memset(big, '#', sizeof big);
    assert_int_equal(fdl_schema_set_parse(big, sizeof big, &set, err, sizeof err), FDL_SCHEMA_SYNTAX);

    assert_int_equal(fdl_schema_set_default(&set), FDL_SCHEMA_OK);
    const fdl_schema *s = fdl_schema_set_get(set, 0);
    size_t n = 5;
    fdl_schema_verdict v;
    assert_int_equal(fdl_schema_apply(NULL, (const uint8_t *)"{}", 2, g_out, 10, &n, &v), FDL_SCHEMA_BAD_ARG);
    assert_int_equal(n, 0);
    assert_int_equal(v.status, FDL_SCHEMA_BAD_ARG);
    assert_int_equal(fdl_schema_apply(s, NULL, 2, g_out, 10, &n, &v), FDL_SCHEMA_BAD_ARG);
    assert_int_equal(fdl_schema_apply(s, (const uint8_t *)"{}", 2, NULL, 10, &n, &v), FDL_SCHEMA_BAD_ARG);
    assert_int_equal(fdl_schema_apply(s, (const uint8_t *)"{}", 2, g_out, 10, NULL, &v), FDL_SCHEMA_BAD_ARG);
    assert_int_equal(fdl_schema_apply(s, (const uint8_t *)"{}", 2, g_out, 10, &n, NULL), FDL_SCHEMA_BAD_ARG);
    assert_int_equal(fdl_schema_apply(s, NULL, 0, g_out, 10, &n, &v), FDL_SCHEMA_MALFORMED);

    assert_null(fdl_schema_set_match(NULL, "t", 1));
    assert_null(fdl_schema_set_match(set, NULL, 1));
    assert_int_equal(fdl_schema_set_count(NULL), 0);
    assert_null(fdl_schema_set_get(NULL, 0));
    assert_string_equal(fdl_schema_topic(NULL), "");
    assert_int_equal(fdl_schema_max_bytes(NULL), 0);
    assert_int_equal(fdl_schema_output_max(NULL), 0);
    fdl_schema_set_free(set);
    fdl_schema_set_free(NULL);
}

static void strerror_and_stats(void **state)
{
    (void)state;
    for (int st = 0; st < FDL_SCHEMA__COUNT; st++)
        assert_string_not_equal(fdl_schema_strerror(st), "unknown schema status");
    assert_string_equal(fdl_schema_strerror(-1), "unknown schema status");
    assert_string_equal(fdl_schema_strerror(FDL_SCHEMA__COUNT), "unknown schema status");
    for (int st = 0; st < FDL_SCHEMA__COUNT; st++)
        assert_int_equal(fdl_schema_is_rejection((fdl_schema_status)st),
                         st >= FDL_SCHEMA_MALFORMED && st <= FDL_SCHEMA_OUT_OF_BOUNDS);
    assert_int_equal(FDL_SCHEMA_ON_BAD_DEFAULT, FDL_SCHEMA_ON_BAD_DROP);

    fdl_schema_stats stats;
    memset(&stats, 0, sizeof stats);
    fdl_schema_verdict v = {.status = FDL_SCHEMA_OK, .dropped = 2, .coerced = 1};
    fdl_schema_stats_add(&stats, &v);
    fdl_schema_stats_add(&stats, &v);
    v = (fdl_schema_verdict){.status = FDL_SCHEMA_WRONG_TYPE, .dropped = 9};
    fdl_schema_stats_add(&stats, &v);
    v.status = (fdl_schema_status)99;
    fdl_schema_stats_add(&stats, &v);
    fdl_schema_stats_add(NULL, &v);
    fdl_schema_stats_add(&stats, NULL);
    assert_int_equal(stats.by_status[FDL_SCHEMA_OK], 2);
    assert_int_equal(stats.by_status[FDL_SCHEMA_WRONG_TYPE], 1);
    assert_int_equal(stats.fields_dropped, 4);
    assert_int_equal(stats.fields_coerced, 2);
}

int main(void)
{
    if (!load_vectors("tests/vectors/schema/apply.txt", "apply"))
        return 1;
    size_t n_apply = g_n_vec;
    if (!load_vectors("tests/vectors/schema/text.txt", "text"))
        return 1;
    size_t n_text = g_n_vec;
    if (!load_vectors("tests/vectors/schema/match.txt", "match"))
        return 1;
    for (size_t i = 0; i < g_n_vec; i++) {
        CMUnitTestFunction fn = i < n_apply ? run_apply : i < n_text ? run_text : run_match;
        g_tests[i] = (struct CMUnitTest){g_vec[i].name, fn, NULL, NULL, &g_vec[i]};
    }
    int failed = _cmocka_run_group_tests("schema_vectors", g_tests, g_n_vec, NULL, NULL);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(device_payload_roundtrip),
        cmocka_unit_test(output_max_is_enough),
        cmocka_unit_test(verdict_before_no_space),
        cmocka_unit_test(allocation_balance_and_failures),
        cmocka_unit_test(field_and_schema_ceilings),
        cmocka_unit_test(locale_independent),
        cmocka_unit_test(bad_args),
        cmocka_unit_test(strerror_and_stats),
    };
    failed += cmocka_run_group_tests_name("schema", tests, NULL, NULL);
    for (size_t i = 0; i < g_n_vec; i++) {
        free(g_vec[i].text);
        free(g_vec[i].expect);
    }
    for (size_t i = 0; i < g_n_schemas; i++)
        free(g_schemas[i]);
    return failed;
}
