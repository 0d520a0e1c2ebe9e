/*
 * tests/test_policy.c — policy parsing, checks, audit, limits and allocation failures.
 *
 * One runner per function over tests/vectors/policy/{parse,check,audit}.txt
 * (formats at the top of each file), then hand-written tests: the default
 * policy never reaches another device, ceilings, counters, log lines, and every
 * allocation of a parse failing in turn without a leak.
 */
#include "testutil.h"

#include "cloud/policy.h"
#include "cloud/topic.h"
#include "sim/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* Vector files                                                               */
/* ------------------------------------------------------------------------- */

#define MAX_FIELDS 4
#define FIELD_CAP 4096

typedef struct field {
    char *b;
    size_t n;
} field;

static char g_field_buf[MAX_FIELDS][FIELD_CAP];


/* Decodes \n \r \t \\ \xHH into out (NUL-terminated too); false on a bad escape. */
static bool unescape(const char *s, size_t n, char *out, size_t *out_n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        if (i + 1 >= n)
            return false;
        char e = s[i + 1];
        if (e == 'n' || e == 'r' || e == 't' || e == '\\') {
            out[o++] = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : '\\';
            i++;
        } else if (e == 'x' && i + 3 < n && fdl_test_hexval(s[i + 2]) >= 0 && fdl_test_hexval(s[i + 3]) >= 0) {
            out[o++] = (char)(fdl_test_hexval(s[i + 2]) * 16 + fdl_test_hexval(s[i + 3]));
            i += 3;
        } else {
            return false;
        }
    }
    out[o] = '\0';
    *out_n = o;
    return true;
}

typedef void (*vector_fn)(const field *f, size_t nf, const char *where, int *failures);

static void run_file(const char *name, vector_fn fn, size_t min_vectors)
{
    char rel[128], path[512];
    snprintf(rel, sizeof rel, "tests/vectors/policy/%s", name);
    fdl_test_src_path(rel, path, sizeof path);
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open %s", path);
    static char line[FIELD_CAP];
    int failures = 0;
    size_t lineno = 0, count = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (len == 0 || strcmp(line, "#") == 0 || strncmp(line, "# ", 2) == 0)
            continue;
        field f[MAX_FIELDS];
        size_t nf = 0;
        char *p = line;
        for (;;) {
            char *tab = strchr(p, '\t');
            size_t n = tab ? (size_t)(tab - p) : strlen(p);
            if (nf == MAX_FIELDS || !unescape(p, n, g_field_buf[nf], &f[nf].n))
                fail_msg("%s:%zu: bad field", name, lineno);
            f[nf].b = g_field_buf[nf];
            nf++;
            if (!tab)
                break;
            p = tab + 1;
        }
        char where[64];
        snprintf(where, sizeof where, "%s:%zu", name, lineno);
        fn(f, nf, where, &failures);
        count++;
    }
    fclose(fp);
    if (count < min_vectors)
        fail_msg("%s: only %zu vectors (want >= %zu)", name, count, min_vectors);
    if (failures)
        fail_msg("%s: %d of %zu vectors failed", name, failures, count);
}

static bool field_is(const field *f, const char *s)
{
    return f->n == strlen(s) && memcmp(f->b, s, f->n) == 0;
}

/* ------------------------------------------------------------------------- */
/* Runners                                                                    */
/* ------------------------------------------------------------------------- */

static const char *const k_status[] = {"OK", "ARG", "SYNTAX", "RESOURCE", "LIMIT", "NOMEM", "UNSAFE_VAR"};

static void vec_parse(const field *f, size_t nf, const char *where, int *failures)
{
    if (nf != 4)
        fail_msg("%s: want 4 fields", where);
    int want = -1;
    for (size_t i = 0; i < sizeof k_status / sizeof *k_status; i++)
        if (field_is(&f[0], k_status[i]))
            want = (int)i;
    if (want < 0)
        fail_msg("%s: unknown status", where);
    unsigned want_line = (unsigned)strtoul(f[1].b, NULL, 10);
    size_t want_count = (size_t)strtoul(f[2].b, NULL, 10);
    fdl_policy *p = (fdl_policy *)&p;   /* must be overwritten */
    fdl_policy_error err = {99, NULL};
    fdl_policy_status st = fdl_policy_parse(f[3].b, f[3].n, &p, &err);
    bool ok = (int)st == want && err.line == want_line && err.reason != NULL && fdl_policy_count(p) == want_count &&
              ((st == FDL_POLICY_OK) == (p != NULL));
    if (!ok) {
        fprintf(stderr, "%s: got %s line %u count %zu (%s), want %s line %u count %zu\n", where, k_status[st],
                err.line, fdl_policy_count(p), err.reason ? err.reason : "(null)", k_status[want], want_line,
                want_count);
        (*failures)++;
    }
    fdl_policy_free(p);
}

/* State of the check runner: the current policy and variables. */
static fdl_policy *g_pol;
static char g_thing[FIELD_CAP], g_cid[FIELD_CAP];
static fdl_policy_vars g_vars;

static void vec_check(const field *f, size_t nf, const char *where, int *failures)
{
    if (field_is(&f[0], "policy")) {
        fdl_policy_free(g_pol);
        g_pol = NULL;
        fdl_policy_error err;
        fdl_policy_status st = nf == 2 && field_is(&f[1], "default")
                                   ? fdl_policy_new_default(&g_pol)
                                   : fdl_policy_parse(f[1].b, f[1].n, &g_pol, &err);
        if (st != FDL_POLICY_OK)
            fail_msg("%s: policy does not parse: %s", where, fdl_policy_strerror(st));
        return;
    }
    if (field_is(&f[0], "vars")) {
        if (nf != 3)
            fail_msg("%s: vars needs 2 values", where);
        memcpy(g_thing, f[1].b, f[1].n);
        memcpy(g_cid, f[2].b, f[2].n);
        g_vars = (fdl_policy_vars){g_thing, f[1].n, g_cid, f[2].n};
        return;
    }
    if (nf != 4 || !g_pol)
        fail_msg("%s: want action, request, effect, by (after a policy line)", where);
    fdl_policy_action action = FDL_POLICY_PUBLISH;
    if (field_is(&f[0], "publish"))
        action = FDL_POLICY_PUBLISH;
    else if (field_is(&f[0], "subscribe"))
        action = FDL_POLICY_SUBSCRIBE;
    else if (field_is(&f[0], "receive"))
        action = FDL_POLICY_RECEIVE;
    else
        fail_msg("%s: unknown action", where);
    fdl_policy_effect want = field_is(&f[2], "allow") ? FDL_POLICY_ALLOW : FDL_POLICY_DENY;
    fdl_policy_reason want_reason = FDL_POLICY_BY_STATEMENT;
    size_t want_index = SIZE_MAX;
    if (field_is(&f[3], "default"))
        want_reason = FDL_POLICY_BY_DEFAULT;
    else if (field_is(&f[3], "unsafe"))
        want_reason = FDL_POLICY_BY_UNSAFE_VAR;
    else if (field_is(&f[3], "bad"))
        want_reason = FDL_POLICY_BY_BAD_REQUEST;
    else
        want_index = (size_t)strtoul(f[3].b, NULL, 10);

    fdl_policy_decision d;
    memset(&d, 0xA5, sizeof d);
    fdl_policy_effect got = fdl_policy_check(g_pol, action, f[1].b, f[1].n, &g_vars, &d);
    bool ok = got == want && d.effect == got && d.reason == want_reason && d.index == want_index &&
              d.detail != NULL && (d.reason == FDL_POLICY_BY_UNSAFE_VAR) == (d.var != NULL);
    if (ok && d.reason == FDL_POLICY_BY_STATEMENT) {
        fdl_policy_statement s;
        ok = fdl_policy_get(g_pol, d.index, &s) == FDL_POLICY_OK && s.line == d.line && s.action == action &&
             s.effect == got;
    }
    if (!ok) {
        char msg[256];
        fdl_policy_decision_format(g_pol, &d, msg, sizeof msg);
        fprintf(stderr, "%s: %s %.*s -> %s (reason %d index %zu), want %.*s %.*s\n", where, f[0].b, (int)f[1].n,
                f[1].b, msg, (int)d.reason, d.index, (int)f[2].n, f[2].b, (int)f[3].n, f[3].b);
        (*failures)++;
    }
}

/* "0:WS 2:X" or "none" from findings. */
static void format_findings(const fdl_policy_finding *fs, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    if (n == 0) {
        snprintf(buf, cap, "none");
        return;
    }
    for (size_t i = 0; i < n && o < cap; i++) {
        o += (size_t)snprintf(buf + o, cap - o, "%s%zu:%s%s%s%s", i ? " " : "", fs[i].statement,
                              fs[i].flags & FDL_POLICY_FINDING_WILDCARD ? "W" : "",
                              fs[i].flags & FDL_POLICY_FINDING_SHARED ? "S" : "",
                              fs[i].flags & FDL_POLICY_FINDING_CLIENT_ID ? "C" : "",
                              fs[i].flags & FDL_POLICY_FINDING_CROSS ? "X" : "");
    }
}

static void vec_audit(const field *f, size_t nf, const char *where, int *failures)
{
    if (nf != 2)
        fail_msg("%s: want 2 fields", where);
    fdl_policy *p = NULL;
    fdl_policy_error err;
    if (fdl_policy_parse(f[0].b, f[0].n, &p, &err) != FDL_POLICY_OK)
        fail_msg("%s: policy does not parse (line %u: %s)", where, err.line, err.reason);
    fdl_policy_finding fs[16];
    size_t n = fdl_policy_is_wildcard(p, fs, 16);
    char got[256];
    format_findings(fs, n, got, sizeof got);
    bool ok = strlen(got) == f[1].n && memcmp(got, f[1].b, f[1].n) == 0;
    for (size_t i = 0; ok && i < n; i++) {
        fdl_policy_statement s;
        ok = fdl_policy_get(p, fs[i].statement, &s) == FDL_POLICY_OK && s.line == fs[i].line &&
             s.effect == FDL_POLICY_ALLOW && ((fs[i].flags & FDL_POLICY_FINDING_CROSS) != 0) == (fs[i].other != SIZE_MAX);
    }
    /* A short output array still reports the full count. */
    if (ok && n > 0)
        ok = fdl_policy_is_wildcard(p, NULL, 0) == n && fdl_policy_is_wildcard(p, fs, 1) == n;
    if (!ok) {
        fprintf(stderr, "%s: findings %s, want %.*s\n", where, got, (int)f[1].n, f[1].b);
        (*failures)++;
    }
    fdl_policy_free(p);
}

static void parse_vectors(void **state)
{
    (void)state;
    run_file("parse.txt", vec_parse, 40);
}

static void check_vectors(void **state)
{
    (void)state;
    run_file("check.txt", vec_check, 140);
    fdl_policy_free(g_pol);
    g_pol = NULL;
}

static void audit_vectors(void **state)
{
    (void)state;
    run_file("audit.txt", vec_audit, 25);
}

/* ------------------------------------------------------------------------- */
/* The default policy                                                         */
/* ------------------------------------------------------------------------- */

static fdl_policy_vars vars_of(const char *thing, const char *cid)
{
    return (fdl_policy_vars){thing, strlen(thing), cid, strlen(cid)};
}

static fdl_policy_effect check_str(fdl_policy *p, fdl_policy_action a, const char *req, const fdl_policy_vars *v)
{
    return fdl_policy_check(p, a, req, strlen(req), v, NULL);
}

/*
 * For many pairs of ids X != Y (prefixes of each other among them), every
 * topic and filter that the default policy grants Y is denied to X, in every
 * action, even when X connects with Y's client id.
 */
static void default_policy_never_reaches_another_device(void **state)
{
    (void)state;
    static const char *const ids[] = {"dev-1", "dev-10", "dev-", "dev-000042", "d", "DEV-1", "caf\xc3\xa9",
                                      "dev-1.", "dev$1", "x y"};
    static const char *const shapes[] = {"telemetry/%s", "commands/%s", "$fleet/provisioning/%s",
                                         "$fleet/provisioning/%s/request", "$fleet/jobs/%s/notify",
                                         "$fleet/jobs/%s/#", "$fleet/provisioning/%s/+", "$fleet/jobs/%s",
                                         "$fleet/jobs/%s/status", "$fleet/ota/%s/get", "$fleet/ota/%s/block",
                                         "$fleet/ota/%s/#"};
    const size_t n_ids = sizeof ids / sizeof *ids;
    fdl_policy *p = NULL;
    assert_int_equal(fdl_policy_new_default(&p), FDL_POLICY_OK);
    assert_int_equal(fdl_policy_count(p), 12);
    assert_int_equal(fdl_policy_is_wildcard(p, NULL, 0), 0);
    size_t allowed_own = 0;
    for (size_t x = 0; x < n_ids; x++) {
        for (size_t y = 0; y < n_ids; y++) {
            fdl_policy_vars vx = vars_of(ids[x], ids[y]);
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
                char topic[128];
                snprintf(topic, sizeof topic, shapes[s], ids[y]);
                for (int a = FDL_POLICY_PUBLISH; a <= FDL_POLICY_RECEIVE; a++) {
                    fdl_policy_effect e = check_str(p, (fdl_policy_action)a, topic, &vx);
                    if (x != y && e == FDL_POLICY_ALLOW)
                        fail_msg("%s was allowed to %s %s", ids[x], fdl_policy_action_name((fdl_policy_action)a),
                                 topic);
                    allowed_own += (x == y && e == FDL_POLICY_ALLOW);
                }
            }
        }
    }
    assert_true(allowed_own > n_ids * 8);
    fdl_policy_free(p);
}

static void nul_in_identity_by_length(void **state)
{
    (void)state;
    fdl_policy *p = NULL;
    assert_int_equal(fdl_policy_new_default(&p), FDL_POLICY_OK);
    /* "dev-1\0/#" looks like "dev-1" to anything that stops at the NUL. */
    fdl_policy_vars v = {"dev-1\0/#", 8, "c", 1};
    fdl_policy_decision d;
    assert_int_equal(fdl_policy_check(p, FDL_POLICY_PUBLISH, "telemetry/dev-1", 15, &v, &d), FDL_POLICY_DENY);
    assert_int_equal(d.reason, FDL_POLICY_BY_UNSAFE_VAR);
    assert_string_equal(d.var, "thing");
    assert_string_equal(d.detail, "contains NUL");
    v = (fdl_policy_vars){"dev-1", 5, "c\0", 2};
    assert_int_equal(fdl_policy_check(p, FDL_POLICY_PUBLISH, "telemetry/dev-1", 15, &v, &d), FDL_POLICY_DENY);
    assert_string_equal(d.var, "client_id");
    /* NULL pointers. */
    v = (fdl_policy_vars){NULL, 0, "c", 1};
    assert_int_equal(fdl_policy_check(p, FDL_POLICY_PUBLISH, "telemetry/dev-1", 15, &v, &d), FDL_POLICY_DENY);
    assert_int_equal(d.reason, FDL_POLICY_BY_UNSAFE_VAR);
    v = (fdl_policy_vars){NULL, 4, "c", 1};
    assert_int_equal(fdl_policy_check(p, FDL_POLICY_PUBLISH, "telemetry/dev-1", 15, &v, &d), FDL_POLICY_DENY);
    assert_int_equal(d.reason, FDL_POLICY_BY_UNSAFE_VAR);
    fdl_policy_free(p);
}

static void value_check_rules(void **state)
{
    (void)state;
    const char *why = NULL;
    char longv[FDL_POLICY_MAX_VAR_LEN + 1];
    memset(longv, 'a', sizeof longv);
    assert_int_equal(fdl_policy_value_check("dev-1", 5, &why), FDL_POLICY_OK);
    assert_string_equal(why, "");
    assert_int_equal(fdl_policy_value_check(longv, FDL_POLICY_MAX_VAR_LEN, NULL), FDL_POLICY_OK);
    assert_int_equal(fdl_policy_value_check(longv, FDL_POLICY_MAX_VAR_LEN + 1, &why), FDL_POLICY_ERR_UNSAFE_VAR);
    assert_string_equal(why, "too long");
    static const struct {
        const char *v;
        size_t n;
        const char *why;
    } bad[] = {
        {"", 0, "empty"},          {"$SYS", 4, "starts with '$'"}, {"a/b", 3, "contains '/'"},
        {"+", 1, "contains '+'"},  {"#", 1, "contains '#'"},       {"a\0", 2, "contains NUL"},
        {"a\tb", 3, "contains a control character"},               {"\xff", 1, "not well-formed UTF-8"},
        {"\xed\xa0\x80", 3, "not well-formed UTF-8"},              {"/", 1, "contains '/'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(fdl_policy_value_check(bad[i].v, bad[i].n, &why), FDL_POLICY_ERR_UNSAFE_VAR);
        assert_string_equal(why, bad[i].why);
    }
    assert_int_equal(fdl_policy_value_check(NULL, 1, &why), FDL_POLICY_ERR_UNSAFE_VAR);
}

/* ------------------------------------------------------------------------- */
/* Limits, arguments, accessors                                               */
/* ------------------------------------------------------------------------- */

static fdl_policy_status parse_str(const char *text, fdl_policy_error *err)
{
    fdl_policy *p = NULL;
    fdl_policy_status st = fdl_policy_parse(text, strlen(text), &p, err);
    fdl_policy_free(p);
    return st;
}

static void limits(void **state)
{
    (void)state;
    static char text[FDL_POLICY_MAX_TEXT + 2];
    fdl_policy_error err;

    /* Exactly MAX_STATEMENTS statements parse; one more is refused on its line. */
    size_t o = 0;
    o += (size_t)sprintf(text + o, "# header\n");
    for (unsigned i = 0; i < FDL_POLICY_MAX_STATEMENTS; i++)
        o += (size_t)sprintf(text + o, "allow publish t/%u\n", i);
    assert_int_equal(parse_str(text, &err), FDL_POLICY_OK);
    sprintf(text + o, "deny publish x\n");
    assert_int_equal(parse_str(text, &err), FDL_POLICY_ERR_LIMIT);
    assert_int_equal(err.line, FDL_POLICY_MAX_STATEMENTS + 2);

    /* A line of exactly MAX_LINE bytes parses (even with "\r\n"); one more byte does not. */
    memset(text, 0, sizeof text);
    memcpy(text, "allow publish ", 14);
    memset(text + 14, 'a', FDL_POLICY_MAX_LINE - 14);
    assert_int_equal(parse_str(text, &err), FDL_POLICY_OK);
    memcpy(text + FDL_POLICY_MAX_LINE, "\r\n", 3);
    assert_int_equal(parse_str(text, &err), FDL_POLICY_OK);
    memset(text + 14, 'a', FDL_POLICY_MAX_LINE - 13);
    text[FDL_POLICY_MAX_LINE + 1] = '\0';
    assert_int_equal(parse_str(text, &err), FDL_POLICY_ERR_LIMIT);
    assert_int_equal(err.line, 1);

    /* Text above MAX_TEXT is refused before any line is read (line 0). */
    memset(text, '\n', FDL_POLICY_MAX_TEXT + 1);
    text[FDL_POLICY_MAX_TEXT + 1] = '\0';
    assert_int_equal(parse_str(text, &err), FDL_POLICY_ERR_LIMIT);
    assert_int_equal(err.line, 0);
    text[FDL_POLICY_MAX_TEXT] = '\0';
    assert_int_equal(parse_str(text, &err), FDL_POLICY_OK);

    /* Four variables are fine; a template that could expand past MAX_EXPANDED is not. */
    memset(text, 0, sizeof text);
    o = (size_t)sprintf(text, "allow publish ");
    memset(text + o, 'a', 400);
    o += 400;
    o += (size_t)sprintf(text + o, "/${thing}/${thing}/${thing}/${thing}");
    assert_int_equal(parse_str(text, &err), FDL_POLICY_ERR_LIMIT);
    assert_string_equal(err.reason, "resource could expand beyond FDL_POLICY_MAX_EXPANDED bytes");
    assert_int_equal(parse_str("allow publish a/${thing}/${thing}/${thing}/${thing}", &err), FDL_POLICY_OK);

    /* A request above MAX_REQUEST is denied as a bad request, even under "allow publish #". */
    fdl_policy *p = NULL;
    assert_int_equal(fdl_policy_parse("allow publish #", 15, &p, NULL), FDL_POLICY_OK);
    fdl_policy_vars v = vars_of("dev-1", "dev-1");
    memset(text, 'a', FDL_POLICY_MAX_REQUEST + 1);
    fdl_policy_decision d;
    assert_int_equal(fdl_policy_check(p, FDL_POLICY_PUBLISH, text, FDL_POLICY_MAX_REQUEST, &v, &d), FDL_POLICY_ALLOW);
    assert_int_equal(fdl_policy_check(p, FDL_POLICY_PUBLISH, text, FDL_POLICY_MAX_REQUEST + 1, &v, &d),
                     FDL_POLICY_DENY);
    assert_int_equal(d.reason, FDL_POLICY_BY_BAD_REQUEST);
    fdl_policy_free(p);

    /* The longest values in the widest template expand within the documented buffer. */
    assert_int_equal(fdl_policy_parse("allow publish a/${thing}/${client_id}/${thing}/${client_id}", 59, &p, NULL),
                     FDL_POLICY_OK);
    char big[FDL_POLICY_MAX_VAR_LEN];
    memset(big, 'b', sizeof big);
    v = (fdl_policy_vars){big, sizeof big, big, sizeof big};
    char out[FDL_POLICY_MAX_EXPANDED + 1];
    size_t n = 0;
    assert_int_equal(fdl_policy_expand(p, 0, &v, out, sizeof out, &n), FDL_POLICY_OK);
    assert_int_equal(n, 2 + 4 * FDL_POLICY_MAX_VAR_LEN + 3);   /* "a/" + 4 values + 3 slashes */
    assert_int_equal(strlen(out), n);
    assert_int_equal(fdl_policy_expand(p, 0, &v, out, n, &n), FDL_POLICY_ERR_LIMIT);
    fdl_policy_free(p);
}

static void arguments_and_accessors(void **state)
{
    (void)state;
    fdl_policy *p = NULL;
    fdl_policy_error err;
    assert_int_equal(fdl_policy_parse("x", 1, NULL, &err), FDL_POLICY_ERR_ARG);
    assert_int_equal(fdl_policy_parse(NULL, 3, &p, &err), FDL_POLICY_ERR_ARG);
    assert_null(p);
    assert_int_equal(fdl_policy_parse(NULL, 0, &p, &err), FDL_POLICY_OK);
    assert_int_equal(fdl_policy_count(p), 0);
    fdl_policy_free(p);
    fdl_policy_free(NULL);
    assert_int_equal(fdl_policy_count(NULL), 0);

    /* Parsing honours len: the text after it is never read. */
    assert_int_equal(fdl_policy_parse("allow publish a/${thing}GARBAGE", 24, &p, &err), FDL_POLICY_OK);
    fdl_policy_statement s;
    assert_int_equal(fdl_policy_get(p, 0, &s), FDL_POLICY_OK);
    assert_int_equal(s.effect, FDL_POLICY_ALLOW);
    assert_int_equal(s.action, FDL_POLICY_PUBLISH);
    assert_string_equal(s.resource, "a/${thing}");
    assert_int_equal(s.resource_len, 10);
    assert_int_equal(s.line, 1);
    assert_int_equal(fdl_policy_get(p, 1, &s), FDL_POLICY_ERR_ARG);
    assert_int_equal(fdl_policy_get(p, 0, NULL), FDL_POLICY_ERR_ARG);
    assert_int_equal(fdl_policy_get(NULL, 0, &s), FDL_POLICY_ERR_ARG);

    fdl_policy_vars v = vars_of("dev-1", "c");
    char out[64];
    size_t n = 0;
    assert_int_equal(fdl_policy_expand(p, 0, &v, out, sizeof out, &n), FDL_POLICY_OK);
    assert_string_equal(out, "a/dev-1");
    assert_int_equal(n, 7);
    assert_int_equal(fdl_policy_expand(p, 0, &v, out, 8, &n), FDL_POLICY_OK);
    assert_int_equal(fdl_policy_expand(p, 0, &v, out, 7, &n), FDL_POLICY_ERR_LIMIT);
    assert_int_equal(fdl_policy_expand(p, 1, &v, out, sizeof out, &n), FDL_POLICY_ERR_ARG);
    fdl_policy_vars bad = vars_of("a/b", "c");
    assert_int_equal(fdl_policy_expand(p, 0, &bad, out, sizeof out, &n), FDL_POLICY_ERR_UNSAFE_VAR);

    /* Bad arguments to check deny and are counted. */
    fdl_policy_decision d;
    assert_int_equal(fdl_policy_check(NULL, FDL_POLICY_PUBLISH, "a/dev-1", 7, &v, &d), FDL_POLICY_DENY);
    assert_int_equal(d.reason, FDL_POLICY_BY_BAD_ARG);
    assert_int_equal(fdl_policy_check(p, FDL_POLICY_PUBLISH, "a/dev-1", 7, NULL, &d), FDL_POLICY_DENY);
    assert_int_equal(d.reason, FDL_POLICY_BY_BAD_ARG);
    assert_int_equal(fdl_policy_check(p, (fdl_policy_action)7, "a/dev-1", 7, &v, &d), FDL_POLICY_DENY);
    assert_int_equal(d.reason, FDL_POLICY_BY_BAD_ARG);
    assert_int_equal(fdl_policy_check(p, FDL_POLICY_PUBLISH, NULL, 7, &v, &d), FDL_POLICY_DENY);
    assert_int_equal(d.reason, FDL_POLICY_BY_BAD_REQUEST);
    assert_int_equal(fdl_policy_check(p, FDL_POLICY_PUBLISH, "a/dev-1", 7, &v, NULL), FDL_POLICY_ALLOW);
    fdl_policy_free(p);

    for (int st = FDL_POLICY_OK; st <= FDL_POLICY_ERR_UNSAFE_VAR; st++)
        assert_string_not_equal(fdl_policy_strerror((fdl_policy_status)st), "unknown policy status");
    assert_string_equal(fdl_policy_strerror((fdl_policy_status)42), "unknown policy status");
    assert_string_equal(fdl_policy_action_name(FDL_POLICY_RECEIVE), "receive");
    assert_string_equal(fdl_policy_action_name((fdl_policy_action)9), "?");
    assert_string_equal(fdl_policy_effect_name(FDL_POLICY_DENY), "deny");
    assert_string_equal(fdl_policy_effect_name((fdl_policy_effect)9), "?");
}

static void stats_and_log_lines(void **state)
{
    (void)state;
    fdl_policy *p = NULL;
    assert_int_equal(fdl_policy_new_default(&p), FDL_POLICY_OK);
    fdl_policy_vars good = vars_of("dev-1", "dev-1"), evil = vars_of("dev-1/#", "dev-1");
    fdl_policy_decision d;
    char line[256];

    assert_int_equal(check_str(p, FDL_POLICY_PUBLISH, "telemetry/dev-1", &good), FDL_POLICY_ALLOW);
    fdl_policy_check(p, FDL_POLICY_PUBLISH, "telemetry/dev-1", 15, &good, &d);
    fdl_policy_decision_format(p, &d, line, sizeof line);
    assert_string_equal(line, "allow: statement 0 (line 2: allow publish telemetry/${thing})");

    fdl_policy_check(p, FDL_POLICY_SUBSCRIBE, "#", 1, &good, &d);
    fdl_policy_decision_format(p, &d, line, sizeof line);
    assert_string_equal(line, "deny: default deny");

    fdl_policy_check(p, FDL_POLICY_SUBSCRIBE, "commands/dev-1", 14, &evil, &d);
    fdl_policy_decision_format(p, &d, line, sizeof line);
    assert_string_equal(line, "deny: unsafe thing: contains '/'");

    fdl_policy_check(p, FDL_POLICY_PUBLISH, "telemetry/+", 11, &good, &d);
    fdl_policy_decision_format(p, &d, line, sizeof line);
    assert_string_equal(line, "deny: bad request: wildcard '+' or '#' in a topic name");

    fdl_policy_decision_format(NULL, &(fdl_policy_decision){FDL_POLICY_DENY, FDL_POLICY_BY_STATEMENT, 3, 7, NULL, ""},
                               line, sizeof line);
    assert_string_equal(line, "deny: statement 3 (line 7)");
    /* Truncation is snprintf's. */
    assert_int_equal(fdl_policy_decision_format(p, &d, line, 5), 54);
    assert_string_equal(line, "deny");

    fdl_policy_stats s = fdl_policy_get_stats(p);
    assert_int_equal(s.checks, 5);
    assert_int_equal(s.allowed, 2);
    assert_int_equal(s.denied, 3);
    assert_int_equal(s.unsafe_vars, 1);
    assert_int_equal(s.bad_requests, 1);
    s = fdl_policy_get_stats(NULL);
    assert_int_equal(s.checks, 0);
    fdl_policy_free(p);
}

/* Every allocation of a parse fails in turn: each failure is NOMEM, nothing leaks. */
static void allocation_failures_do_not_leak(void **state)
{
    (void)state;
    /* Enough statements to grow the array several times. */
    static char text[8192];
    size_t o = (size_t)sprintf(text, "%s", FDL_POLICY_DEFAULT_DEVICE);
    for (int i = 0; i < 40; i++)
        o += (size_t)sprintf(text + o, "deny publish x/%d/${thing}\n", i);
    size_t failures = 0;
    for (uint64_t nth = 1; nth < 1000; nth++) {
        fdl_alloc_stats before = fdl_alloc_get_stats();
        fdl_policy *p = (fdl_policy *)&p;
        fdl_policy_error err;
        fdl_alloc_fail_nth(nth);
        fdl_policy_status st = fdl_policy_parse(text, o, &p, &err);
        fdl_alloc_fail_nth(0);
        if (st == FDL_POLICY_OK) {
            assert_int_equal(fdl_policy_count(p), 52);
            fdl_policy_free(p);
            fdl_alloc_stats after = fdl_alloc_get_stats();
            assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
            break;
        }
        failures++;
        assert_int_equal(st, FDL_POLICY_ERR_NOMEM);
        assert_null(p);
        assert_int_equal(err.line, 0);
        fdl_alloc_stats after = fdl_alloc_get_stats();
        assert_int_equal(after.failed - before.failed, 1);
        assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
    }
    /* 1 policy + 4 array growths (8, 16, 32, 64) + 52 resources. */
    assert_int_equal(failures, 57);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_vectors),
        cmocka_unit_test(check_vectors),
        cmocka_unit_test(audit_vectors),
        cmocka_unit_test(default_policy_never_reaches_another_device),
        cmocka_unit_test(nul_in_identity_by_length),
        cmocka_unit_test(value_check_rules),
        cmocka_unit_test(limits),
        cmocka_unit_test(arguments_and_accessors),
        cmocka_unit_test(stats_and_log_lines),
        cmocka_unit_test(allocation_failures_do_not_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
