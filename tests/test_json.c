/* tests/test_json.c — JSON writer: escaping, nesting, limits, sticky errors, atomic files. */
#include "testutil.h"

#include "sim/alloc.h"
#include "sim/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Asserts that j holds exactly want. */
static void assert_text(const fdl_json *j, const char *want)
{
    size_t len = 0;
    const char *got = fdl_json_text(j, &len);
    if (!got)
        fail_msg("no text, error %d (%s)", fdl_json_error(j), fdl_json_strerror(fdl_json_error(j)));
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
}

/* The JSON text of one string value. */
static void check_string(const char *in, const char *want)
{
    fdl_json *j = fdl_json_new(4096);
    assert_non_null(j);
    fdl_json_str(j, NULL, in);
    assert_text(j, want);
    fdl_json_free(j);
}

static void escaping(void **state)
{
    (void)state;
    check_string("plain", "\"plain\"");
    check_string("", "\"\"");
    check_string("a\"b\\c/d", "\"a\\\"b\\\\c/d\"");
    check_string("\n\r\t\b\f", "\"\\u000a\\u000d\\u0009\\u0008\\u000c\"");
    check_string("\x01\x1f\x7f", "\"\\u0001\\u001f\x7f\"");
    check_string("\x1b[31mred", "\"\\u001b[31mred\"");
    /* Valid UTF-8 passes through: e-acute, euro sign, U+10FFFF, an emoji. */
    check_string("\xC3\xA9\xE2\x82\xAC\xF4\x8F\xBF\xBF\xF0\x9F\x98\x80",
                 "\"\xC3\xA9\xE2\x82\xAC\xF4\x8F\xBF\xBF\xF0\x9F\x98\x80\"");
}

#define FFFD "\xEF\xBF\xBD"

static void invalid_utf8_replaced(void **state)
{
    (void)state;
    check_string("a\xFF" "b", "\"a" FFFD "b\"");            /* never valid byte */
    check_string("\x80", "\"" FFFD "\"");                    /* lone continuation */
    check_string("\xC0\xAF", "\"" FFFD FFFD "\"");           /* overlong '/' */
    check_string("\xE0\x80\xAF", "\"" FFFD FFFD FFFD "\"");  /* overlong, 3 bytes */
    check_string("\xED\xA0\x80", "\"" FFFD FFFD FFFD "\"");  /* UTF-16 surrogate */
    check_string("\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""); /* above U+10FFFF */
    check_string("\xE2\x82", "\"" FFFD "\"");                /* truncated at the end */
    check_string("\xE2\x82x", "\"" FFFD "x\"");              /* truncated in the middle */
    check_string("\xF0\x9F\x98", "\"" FFFD "\"");            /* truncated 4-byte form */
    check_string("\xC3\"", "\"" FFFD "\\\"\"");              /* truncated before a quote */
    check_string("\xC3\n", "\"" FFFD "\\u000a\"");
}

static void nesting_and_commas(void **state)
{
    (void)state;
    fdl_json *j = fdl_json_new(4096);
    assert_non_null(j);
    fdl_json_obj_begin(j, NULL);
    fdl_json_str(j, "name", "fleet");
    fdl_json_int(j, "neg", -42);
    fdl_json_int(j, "min", INT64_MIN);
    fdl_json_uint(j, "max", UINT64_MAX);
    fdl_json_bool(j, "t", 7);
    fdl_json_bool(j, "f", 0);
    fdl_json_null(j, "n");
    fdl_json_str(j, "s", NULL);
    fdl_json_arr_begin(j, "list");
    fdl_json_int(j, NULL, 1);
    fdl_json_obj_begin(j, NULL);
    fdl_json_obj_end(j);
    fdl_json_arr_begin(j, NULL);
    fdl_json_arr_end(j);
    fdl_json_obj_begin(j, NULL);
    fdl_json_str(j, "k\"ey", "v");
    fdl_json_obj_end(j);
    fdl_json_arr_end(j);
    fdl_json_obj_begin(j, "empty");
    fdl_json_obj_end(j);
    fdl_json_obj_end(j);
    assert_int_equal(fdl_json_error(j), FDL_JSON_OK);
    assert_text(j, "{\"name\":\"fleet\",\"neg\":-42,\"min\":-9223372036854775808,"
                   "\"max\":18446744073709551615,\"t\":true,\"f\":false,\"n\":null,\"s\":null,"
                   "\"list\":[1,{},[],{\"k\\\"ey\":\"v\"}],\"empty\":{}}");
    fdl_json_free(j);

    /* A top-level scalar and a top-level array are documents too. */
    j = fdl_json_new(64);
    assert_non_null(j);
    fdl_json_int(j, NULL, 5);
    assert_text(j, "5");
    fdl_json_free(j);
    j = fdl_json_new(64);
    assert_non_null(j);
    fdl_json_arr_begin(j, NULL);
    fdl_json_str(j, NULL, "a");
    fdl_json_str(j, NULL, "b");
    fdl_json_arr_end(j);
    assert_text(j, "[\"a\",\"b\"]");
    fdl_json_free(j);
}

static void pretty_printing(void **state)
{
    (void)state;
    fdl_json *j = fdl_json_new(4096);
    assert_non_null(j);
    fdl_json_set_pretty(j, 1);
    fdl_json_obj_begin(j, NULL);
    fdl_json_int(j, "a", 1);
    fdl_json_arr_begin(j, "b");
    fdl_json_bool(j, NULL, 1);
    fdl_json_obj_begin(j, NULL);
    fdl_json_null(j, "c");
    fdl_json_obj_end(j);
    fdl_json_arr_end(j);
    fdl_json_arr_begin(j, "e");
    fdl_json_arr_end(j);
    fdl_json_obj_end(j);
    assert_text(j, "{\n"
                   "  \"a\": 1,\n"
                   "  \"b\": [\n"
                   "    true,\n"
                   "    {\n"
                   "      \"c\": null\n"
                   "    }\n"
                   "  ],\n"
                   "  \"e\": []\n"
                   "}");
    fdl_json_free(j);
}

static void numbers(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0"},
        {-0.0, "-0"},
        {1.5, "1.5"},
        {0.1, "0.1"},
        {1.0 / 3.0, "0.3333333333333333"},
        {123456789012.0, "123456789012"},
        {9007199254740993.0, "9007199254740992"},  /* 2^53 + 1 rounds to 2^53 */
        {1e21, "1e+21"},
        {5e-324, "4.94065645841247e-324"},    /* denormal: 15 digits read back */
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {NAN, "null"},
        {INFINITY, "null"},
        {-INFINITY, "null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fdl_json *j = fdl_json_new(64);
        assert_non_null(j);
        fdl_json_num(j, NULL, cases[i].v);
        assert_text(j, cases[i].want);
        /* Finite numbers read back exactly. */
        if (isfinite(cases[i].v))
            assert_true(strtod(fdl_json_text(j, NULL), NULL) == cases[i].v);
        fdl_json_free(j);
    }
}

static void max_size_is_enforced(void **state)
{
    (void)state;
    /* Exactly at the limit is fine ... */
    fdl_json *j = fdl_json_new(7);
    assert_non_null(j);
    fdl_json_str(j, NULL, "abcde");
    assert_text(j, "\"abcde\"");
    fdl_json_free(j);

    /* ... one byte more is not, and the error sticks. */
    j = fdl_json_new(7);
    assert_non_null(j);
    fdl_json_str(j, NULL, "abcdef");
    assert_int_equal(fdl_json_error(j), FDL_JSON_TOO_LARGE);
    assert_null(fdl_json_text(j, NULL));
    fdl_json_free(j);

    /* Growth past the initial allocation stops at the ceiling. */
    j = fdl_json_new(1000);
    assert_non_null(j);
    fdl_json_arr_begin(j, NULL);
    for (int i = 0; i < 1000; i++)
        fdl_json_uint(j, NULL, 1000000);
    assert_int_equal(fdl_json_error(j), FDL_JSON_TOO_LARGE);
    fdl_json_arr_end(j);
    assert_int_equal(fdl_json_error(j), FDL_JSON_TOO_LARGE);
    assert_null(fdl_json_text(j, NULL));
    fdl_json_free(j);

    j = fdl_json_new(0);
    assert_non_null(j);
    fdl_json_null(j, NULL);
    assert_int_equal(fdl_json_error(j), FDL_JSON_TOO_LARGE);
    fdl_json_free(j);
}

static void misuse_is_sticky(void **state)
{
    (void)state;
    fdl_json *j = fdl_json_new(256);
    assert_non_null(j);
    fdl_json_obj_end(j);
    assert_int_equal(fdl_json_error(j), FDL_JSON_UNBALANCED);
    fdl_json_obj_begin(j, NULL); /* ignored after the error */
    fdl_json_obj_end(j);
    assert_int_equal(fdl_json_error(j), FDL_JSON_UNBALANCED);
    assert_null(fdl_json_text(j, NULL));
    fdl_json_free(j);

    j = fdl_json_new(256);
    assert_non_null(j);
    fdl_json_arr_begin(j, NULL);
    fdl_json_obj_end(j); /* wrong kind */
    assert_int_equal(fdl_json_error(j), FDL_JSON_UNBALANCED);
    fdl_json_free(j);

    j = fdl_json_new(256);
    assert_non_null(j);
    fdl_json_arr_begin(j, NULL);
    fdl_json_int(j, "key", 1); /* key inside an array */
    assert_int_equal(fdl_json_error(j), FDL_JSON_BAD_KEY);
    fdl_json_free(j);

    j = fdl_json_new(256);
    assert_non_null(j);
    fdl_json_obj_begin(j, "top"); /* key at top level */
    assert_int_equal(fdl_json_error(j), FDL_JSON_BAD_KEY);
    fdl_json_free(j);

    j = fdl_json_new(256);
    assert_non_null(j);
    fdl_json_obj_begin(j, NULL);
    fdl_json_int(j, NULL, 1); /* no key inside an object */
    assert_int_equal(fdl_json_error(j), FDL_JSON_BAD_KEY);
    fdl_json_free(j);

    j = fdl_json_new(256);
    assert_non_null(j);
    fdl_json_int(j, NULL, 1);
    fdl_json_int(j, NULL, 2);
    assert_int_equal(fdl_json_error(j), FDL_JSON_AFTER_END);
    assert_null(fdl_json_text(j, NULL));
    fdl_json_free(j);

    /* Unbalanced at the end: no error yet, but no text either. */
    j = fdl_json_new(256);
    assert_non_null(j);
    assert_null(fdl_json_text(j, NULL)); /* nothing written */
    fdl_json_obj_begin(j, NULL);
    assert_int_equal(fdl_json_error(j), FDL_JSON_OK);
    assert_null(fdl_json_text(j, NULL));
    fdl_json_free(j);

    j = fdl_json_new(4096);
    assert_non_null(j);
    for (int i = 0; i < FDL_JSON_MAX_DEPTH; i++)
        fdl_json_arr_begin(j, NULL);
    assert_int_equal(fdl_json_error(j), FDL_JSON_OK);
    fdl_json_arr_begin(j, NULL);
    assert_int_equal(fdl_json_error(j), FDL_JSON_TOO_DEEP);
    fdl_json_free(j);

    assert_string_equal(fdl_json_strerror(FDL_JSON_OK), "ok");
    assert_string_equal(fdl_json_strerror(99), "unknown JSON writer status");
}

static void allocation_failures(void **state)
{
    (void)state;
    fdl_alloc_fail_nth(1);
    fdl_json *j = fdl_json_new(100);
    assert_null(j);
    /* Every call accepts the NULL a failed _new returns. */
    fdl_json_obj_begin(j, NULL);
    fdl_json_int(j, "a", 1);
    fdl_json_obj_end(j);
    assert_int_equal(fdl_json_error(j), FDL_JSON_NO_MEMORY);
    assert_null(fdl_json_text(j, NULL));
    fdl_json_free(j);

    /* The buffer allocation fails: sticky NO_MEMORY, and nothing leaks. */
    fdl_alloc_stats s0 = fdl_alloc_get_stats();
    j = fdl_json_new(100);
    assert_non_null(j);
    fdl_alloc_fail_nth(1);
    fdl_json_int(j, NULL, 1);
    assert_int_equal(fdl_json_error(j), FDL_JSON_NO_MEMORY);
    fdl_json_free(j);
    fdl_alloc_stats s1 = fdl_alloc_get_stats();
    assert_int_equal(s1.allocs - s0.allocs, s1.frees - s0.frees);
}

/* Builds a document with every kind of value, awkward strings and deep nesting. */
static void build_complex(fdl_json *j)
{
    fdl_json_obj_begin(j, NULL);
    fdl_json_str(j, "weird \"key\"\n", "ctl \x01\x02 tab\t quote\" bs\\ bad\xFF\xC0 ok\xC3\xA9");
    fdl_json_num(j, "pi", 3.141592653589793);
    fdl_json_num(j, "nan", NAN);
    fdl_json_num(j, "big", 1e300);
    fdl_json_int(j, "neg", INT64_MIN);
    fdl_json_uint(j, "u", UINT64_MAX);
    fdl_json_arr_begin(j, "devices");
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof id, "dev-%04d", i);
        fdl_json_obj_begin(j, NULL);
        fdl_json_str(j, "id", id);
        fdl_json_bool(j, "online", i % 3 != 0);
        fdl_json_num(j, "rtt_ms", i * 0.37);
        fdl_json_arr_begin(j, "tags");
        if (i % 2)
            fdl_json_str(j, NULL, "odd");
        fdl_json_null(j, NULL);
        fdl_json_arr_end(j);
        fdl_json_obj_end(j);
    }
    fdl_json_arr_end(j);
    fdl_json_obj_begin(j, "deep");
    for (int i = 0; i < 20; i++)
        fdl_json_arr_begin(j, i == 0 ? "x" : NULL);
    fdl_json_obj_begin(j, NULL);
    fdl_json_obj_end(j);
    for (int i = 0; i < 20; i++)
        fdl_json_arr_end(j);
    fdl_json_obj_end(j);
    fdl_json_obj_end(j);
}

static int have_python3(void)
{
    return system("python3 -c 'pass' >/dev/null 2>&1") == 0;
}

/* Feeds text to a Python check through popen; returns the exit status. */
static int python_check(const char *script, const char *text, size_t len)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "python3 -c '%s'", script);
    FILE *py = popen(cmd, "w");
    assert_non_null(py);
    assert_int_equal(fwrite(text, 1, len, py), len);
    int st = pclose(py);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void python_parses_complex_document(void **state)
{
    (void)state;
    if (!have_python3())
        skip();
    for (int pretty = 0; pretty <= 1; pretty++) {
        fdl_json *j = fdl_json_new(1 << 20);
        assert_non_null(j);
        fdl_json_set_pretty(j, pretty);
        build_complex(j);
        size_t len;
        const char *text = fdl_json_text(j, &len);
        assert_non_null(text);
        assert_int_equal(python_check("import json,sys; json.load(sys.stdin)", text, len), 0);
        /* The values survive the trip, not just the syntax. */
        assert_int_equal(python_check(
            "import json,sys\n"
            "d = json.load(sys.stdin)\n"
            "assert d[\"weird \\\"key\\\"\\n\"] == "
            "\"ctl \\x01\\x02 tab\\t quote\\\" bs\\\\ bad\\ufffd\\ufffd ok\\u00e9\", d\n"
            "assert d[\"pi\"] == 3.141592653589793\n"
            "assert d[\"nan\"] is None and d[\"big\"] == 1e300\n"
            "assert d[\"neg\"] == -2**63 and d[\"u\"] == 2**64 - 1\n"
            "assert len(d[\"devices\"]) == 50 and d[\"devices\"][7][\"id\"] == \"dev-0007\"\n"
            "assert d[\"devices\"][7][\"tags\"] == [\"odd\", None]\n"
            "assert d[\"devices\"][9][\"online\"] is False\n"
            "x = d[\"deep\"][\"x\"]\n"
            "for _ in range(19): x = x[0]\n"
            "assert x == [{}]\n",
            text, len), 0);
        /* And a broken document is rejected, so the check above can fail. */
        assert_int_not_equal(python_check("import json,sys\n"
                                          "try: json.load(sys.stdin)\n"
                                          "except ValueError: sys.exit(3)\n",
                                          text, len - 1), 0);
        fdl_json_free(j);
    }
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void write_file_atomically(void **state)
{
    (void)state;
    char dir[256], path[512];
    fdl_test_mkdtemp("json", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/report.json", dir);

    fdl_json *j = fdl_json_new(1 << 16);
    assert_non_null(j);
    build_complex(j);
    assert_int_equal(fdl_json_write_file(j, path), 0);
    size_t len, tlen;
    const char *text = fdl_json_text(j, &tlen);
    char *got = slurp(path, &len);
    assert_non_null(got);
    assert_int_equal(len, tlen + 1);
    assert_memory_equal(got, text, tlen);
    assert_int_equal(got[tlen], '\n');
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    fdl_json_free(j);

    /* Overwrite with a smaller document: replaced whole, no temporary left behind. */
    j = fdl_json_new(64);
    assert_non_null(j);
    fdl_json_arr_begin(j, NULL);
    fdl_json_arr_end(j);
    assert_int_equal(fdl_json_write_file(j, path), 0);
    got = slurp(path, &len);
    assert_non_null(got);
    assert_string_equal(got, "[]\n");
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);

    /* Errors: a missing directory, and an unfinished document. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.json", dir);
    assert_int_equal(fdl_json_write_file(j, bad), -ENOENT);
    fdl_json_free(j);
    j = fdl_json_new(64);
    assert_non_null(j);
    fdl_json_obj_begin(j, NULL);
    assert_int_equal(fdl_json_write_file(j, path), -EINVAL);
    fdl_json_free(j);
    got = slurp(path, &len);
    assert_string_equal(got, "[]\n"); /* the old file is untouched */
    assert_int_equal(system(cmd), 0);

    fdl_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(escaping),
        cmocka_unit_test(invalid_utf8_replaced),
        cmocka_unit_test(nesting_and_commas),
        cmocka_unit_test(pretty_printing),
        cmocka_unit_test(numbers),
        cmocka_unit_test(max_size_is_enforced),
        cmocka_unit_test(misuse_is_sticky),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(python_parses_complex_document),
        cmocka_unit_test(write_file_atomically),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
