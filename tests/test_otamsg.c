/* tests/test_otamsg.c — block requests and status reports from devices: tests/vectors/ota/{get,report}.txt. */
#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/otamsg.h"

static fdl_otamsg_status status_of(const char *s)
{
    if (!strcmp(s, "ok"))
        return FDL_OTAMSG_OK;
    if (!strcmp(s, "topic"))
        return FDL_OTAMSG_ERR_TOPIC;
    if (!strcmp(s, "syntax"))
        return FDL_OTAMSG_ERR_SYNTAX;
    if (!strcmp(s, "field"))
        return FDL_OTAMSG_ERR_FIELD;
    fail_msg("unknown status '%s' in a vector", s);
    return FDL_OTAMSG_ERR_SYNTAX;
}

/* Calls run(topic, payload, len, status, expected) for every vector line of file. */
static int for_each_vector(const char *file,
                           int (*run)(int line, const char *topic, const uint8_t *p, size_t len,
                                      fdl_otamsg_status want, const char *expect))
{
    char path[1024], line[8192];
    fdl_test_src_path(file, path, sizeof path);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0, bad = 0, ln = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        line[strcspn(line, "\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *fields[4];
        char *p = line;
        for (int k = 0; k < 4; k++) {
            fields[k] = p;
            char *tab = k < 3 ? strchr(p, '\t') : NULL;
            if (k < 3 && !tab)
                fail_msg("%s:%d: four TAB-separated fields expected", file, ln);
            if (tab) {
                *tab = '\0';
                p = tab + 1;
            }
        }
        static uint8_t payload[8192];
        size_t len = 0;
        if (!fdl_test_decode_pct(fields[1], payload, sizeof payload, &len))
            fail_msg("%s:%d: bad escape in the payload", file, ln);
        uint8_t exp[8192];
        size_t elen = 0;
        if (!fdl_test_decode_pct(fields[3], exp, sizeof exp - 1, &elen))
            fail_msg("%s:%d: bad escape in the expectation", file, ln);
        exp[elen] = '\0';
        bad += run(ln, fields[0], len ? payload : NULL, len, status_of(fields[2]), (const char *)exp);
        n++;
    }
    fclose(f);
    assert_true(n >= 20);
    return bad;
}

static int run_get(int line, const char *topic, const uint8_t *p, size_t len, fdl_otamsg_status want,
                   const char *expect)
{
    fdl_otamsg_get g;
    fdl_otamsg_status st = fdl_otamsg_parse_get(topic, p, len, &g);
    char got[512] = "-";
    if (st == FDL_OTAMSG_OK)
        snprintf(got, sizeof got, "%s %s %u %u", g.device, g.artifact, g.offset, g.length);
    if (st != want || (st == FDL_OTAMSG_OK && strcmp(got, expect))) {
        fprintf(stderr, "get.txt:%d: %s -> %s \"%s\", want %s \"%s\"\n", line, topic, fdl_otamsg_strerror(st), got,
                fdl_otamsg_strerror(want), expect);
        return 1;
    }
    return 0;
}

static int run_report(int line, const char *topic, const uint8_t *p, size_t len, fdl_otamsg_status want,
                      const char *expect)
{
    fdl_otamsg_report r;
    fdl_otamsg_status st = fdl_otamsg_parse_report(topic, p, len, &r);
    char got[1024] = "-";
    if (st == FDL_OTAMSG_OK)
        snprintf(got, sizeof got, "%s|%s|%" PRIu64 "|%s|%s", r.device, r.job, r.seq, r.step, r.detail);
    if (st != want || (st == FDL_OTAMSG_OK && strcmp(got, expect))) {
        fprintf(stderr, "report.txt:%d: %s -> %s \"%s\", want %s \"%s\"\n", line, topic, fdl_otamsg_strerror(st),
                got, fdl_otamsg_strerror(want), expect);
        return 1;
    }
    return 0;
}

static void get_vectors(void **state)
{
    (void)state;
    assert_int_equal(for_each_vector("tests/vectors/ota/get.txt", run_get), 0);
}

static void report_vectors(void **state)
{
    (void)state;
    assert_int_equal(for_each_vector("tests/vectors/ota/report.txt", run_report), 0);
}

static void null_and_ids(void **state)
{
    (void)state;
    fdl_otamsg_get g;
    fdl_otamsg_report r;
    assert_int_equal(fdl_otamsg_parse_get(NULL, (const uint8_t *)"a 0 1", 5, &g), FDL_OTAMSG_ERR_TOPIC);
    assert_int_equal(fdl_otamsg_parse_get("$fleet/ota/d/get", NULL, 0, &g), FDL_OTAMSG_ERR_SYNTAX);
    assert_int_equal(fdl_otamsg_parse_report(NULL, NULL, 0, &r), FDL_OTAMSG_ERR_TOPIC);
    assert_true(fdl_otamsg_valid_id("a.b", 3, 63));
    assert_false(fdl_otamsg_valid_id(".", 1, 63));
    assert_false(fdl_otamsg_valid_id("..", 2, 63));
    assert_true(fdl_otamsg_valid_id("...", 3, 63));
    assert_false(fdl_otamsg_valid_id("a", 0, 63));
    assert_false(fdl_otamsg_valid_id("abc", 3, 2));
    assert_string_equal(fdl_otamsg_strerror((fdl_otamsg_status)99), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_vectors),
        cmocka_unit_test(report_vectors),
        cmocka_unit_test(null_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
