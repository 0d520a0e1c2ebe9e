/*
 * tests/test_report.c — the report model and its writers: JSON read back, JUnit XML
 * checked by xmllint, the HTML page self-contained, the terminal table aligned, hostile
 * strings escaped everywhere, allocation failures clean, and the history's save and
 * compare (regressions, layer changes, a killed saver).
 *
 * With FDL_REPORT_SAMPLE_OUT=FILE in the environment the program writes the sample
 * report's HTML page to FILE and exits (tests/e2e_report_html.sh renders it).
 */
#include "testutil.h"

#include "reports/history.h"
#include "reports/report.h"
#include "sim/alloc.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Quotes, markup, a CDATA end, C0 controls (an ANSI escape among them), DEL, a C1 control
 * (U+0085), a noncharacter (U+FFFE), a CRLF, and non-ASCII: e-acute, euro, an emoji. */
#define HOSTILE "q\"uo'te <script>alert(1)</script> & ]]> \x01\x1b[31m\x7f \xC2\x85\xEF\xBF\xBE \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\r\nend"
/* HOSTILE as markup must carry it (text content): controls replaced by U+FFFD, CRLF as LF. */
#define FFFD "\xEF\xBF\xBD"
#define HOSTILE_MARKUP "q\"uo'te <script>alert(1)</script> & ]]> " FFFD FFFD "[31m" FFFD " " FFFD FFFD \
                       " \xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\nend"

#define T0 1714564800 /* 2024-05-01T12:00:00Z */

static fdl_report_step *step(fdl_report_scenario *s, const char *attack, const char *label, fdl_outcome exp,
                             fdl_layer exp_l, fdl_outcome act, fdl_layer act_l, const char *evidence,
                             int64_t detect, int64_t respond)
{
    fdl_report_step_info in = {
        .attack = attack, .label = label, .expected = exp, .expected_layer = exp_l, .actual = act,
        .actual_layer = act_l, .pass = exp == act && exp_l == act_l, .evidence = evidence,
        .detect_ms = detect, .respond_ms = respond, .duration_ms = 1500,
    };
    return fdl_scenario_add_step(s, &in);
}

/*
 * The sample report: a passing drill with charts, a failing step, a hostile scenario,
 * a scenario error and the matrix. Returns NULL when any builder call fails (the
 * allocation-failure test relies on that), freeing what it built.
 */
static fdl_report *sample(void)
{
    fdl_report *r = fdl_report_new("0.1.0", T0, NULL);
    fdl_report_scenario *s = fdl_report_add_scenario(r, "stolen-cert", "scenarios/stolen_cert.lua",
                                                     "A device key leaks; the thief connects from elsewhere.");
    if (!s || fdl_scenario_set_fleet(s, 200, "sensor", "jitr") != FDL_REPORT_OK)
        goto fail;
    fdl_report_step *st = step(s, "stolen-cert", "thief connects", FDL_OUTCOME_DETECTED, FDL_LAYER_DETECTION,
                               FDL_OUTCOME_DETECTED, FDL_LAYER_DETECTION,
                               "alert cert-shared dev-000042 from 10.0.0.9 and 10.0.0.42", 840, 1200);
    if (!st || fdl_step_append_evidence(st, "metric sessions{dev-000042}=2") != FDL_REPORT_OK)
        goto fail;
    if (!step(s, "revoke", "revoke the device", FDL_OUTCOME_BLOCKED, FDL_LAYER_IDENTITY, FDL_OUTCOME_BLOCKED,
              FDL_LAYER_IDENTITY, "TLS alert certificate_revoked", -1, 640) ||
        !step(s, "wildcard-subscribe", NULL, FDL_OUTCOME_CONTAINED, FDL_LAYER_CLOUD, FDL_OUTCOME_MISSED,
              FDL_LAYER_NONE, "subscribed to telemetry/# and received 1840 messages of other devices", -1, -1))
        goto fail;
    fdl_report_series *se = fdl_scenario_add_series(s, "connected devices", "devices");
    fdl_report_series *rv = fdl_scenario_add_series(s, "revoke: time to disconnect", "ms");
    if (!se || !rv)
        goto fail;
    for (int i = 0; i <= 60; i++)
        if (fdl_series_add_point(se, i * 1000, i < 20 ? i * 10.0 : i < 45 ? 200.0 : 199.0) != FDL_REPORT_OK)
            goto fail;
    for (int i = 0; i < 10; i++)
        if (fdl_series_add_point(rv, 30000 + i * 100, 400.0 + (i * 37) % 300) != FDL_REPORT_OK)
            goto fail;

    s = fdl_report_add_scenario(r, HOSTILE, "scenarios/" HOSTILE ".lua", HOSTILE);
    if (!s || fdl_scenario_set_fleet(s, 3, HOSTILE, NULL) != FDL_REPORT_OK ||
        fdl_scenario_set_ablation(s, "pinning") != FDL_REPORT_OK ||
        !step(s, HOSTILE, HOSTILE, FDL_OUTCOME_BLOCKED, FDL_LAYER_TRANSPORT, FDL_OUTCOME_MISSED, FDL_LAYER_NONE,
              HOSTILE "\nsecond \xff line", 5, 7))
        goto fail;

    s = fdl_report_add_scenario(r, "broken", "scenarios/x.lua", NULL);
    if (!s || fdl_scenario_set_error(s, "scenarios/x.lua:12: unknown attack 'foo'") != FDL_REPORT_OK)
        goto fail;

    static const char *const attacks[] = {"stolen-cert", "rogue-ca-mitm", "tls-downgrade", "junk-telemetry"};
    static const char *const sw[] = {"baseline", "pinning", "registry", "policy", "payload-rules", "tls13-only"};
    for (int a = 0; a < 4; a++) {
        for (int c = 0; c < 6; c++) {
            fdl_outcome o = (fdl_outcome)((a + c) % 4);
            fdl_layer l = o == FDL_OUTCOME_MISSED ? FDL_LAYER_NONE : (fdl_layer)((a + 2 * c) % 7);
            if (a == 3 && c == 5)
                continue; /* one cell not run */
            if (fdl_report_matrix_set(r, attacks[a], sw[c], o, l) != FDL_REPORT_OK)
                goto fail;
        }
        if (fdl_report_matrix_set_depth(r, attacks[a], a, a + 1) != FDL_REPORT_OK)
            goto fail;
    }
    return r;
fail:
    fdl_report_free(r);
    return NULL;
}

/* The output of a writer, NUL-terminated (test-owned: free()). */
static char *render(fdl_report_status (*writer)(const fdl_report *, FILE *), const fdl_report *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    assert_non_null(mem);
    assert_int_equal(writer(r, mem), FDL_REPORT_OK);
    assert_int_equal(fclose(mem), 0);
    return buf;
}

/* Runs a shell command and returns its standard output without the final newline
 * (test-owned), failing unless it exits 0. */
static char *run_cmd(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *out = calloc(1, 1 << 16);
    assert_non_null(out);
    size_t n = fread(out, 1, (1 << 16) - 1, p);
    if (n > 0 && out[n - 1] == '\n')
        n--;
    out[n] = '\0';
    int rc = pclose(p);
    if (rc != 0)
        fail_msg("'%s' exited %d: %s", cmd, rc, out);
    return out;
}

static void require_tool(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    if (system(cmd) != 0)
        fail_msg("%s is not installed (scripts/setup-deps installs it)", tool);
}

/* ---------------------------------------------------------------------------------------- */

static void names(void **state)
{
    (void)state;
    for (int o = 0; o < FDL_OUTCOME_COUNT; o++) {
        fdl_outcome back = FDL_OUTCOME_COUNT;
        assert_int_equal(fdl_outcome_parse(fdl_outcome_name((fdl_outcome)o), &back), FDL_REPORT_OK);
        assert_int_equal(back, o);
    }
    for (int l = 0; l < FDL_LAYER_COUNT; l++) {
        fdl_layer back = FDL_LAYER_COUNT;
        assert_int_equal(fdl_layer_parse(fdl_layer_name((fdl_layer)l), &back), FDL_REPORT_OK);
        assert_int_equal(back, l);
    }
    fdl_outcome o = FDL_OUTCOME_MISSED;
    assert_int_equal(fdl_outcome_parse("Blocked", &o), FDL_REPORT_ERR_ARG);
    assert_int_equal(fdl_outcome_parse(NULL, &o), FDL_REPORT_ERR_ARG);
    assert_int_equal(o, FDL_OUTCOME_MISSED);
    fdl_layer l = FDL_LAYER_NONE;
    assert_int_equal(fdl_layer_parse("transport ", &l), FDL_REPORT_ERR_ARG);
    assert_string_equal(fdl_outcome_name(FDL_OUTCOME_COUNT), "?");
    assert_string_equal(fdl_layer_name(FDL_LAYER_TRANSPORT), "transport");
    assert_string_equal(fdl_report_strerror(FDL_REPORT_ERR_LIMIT), "report ceiling reached");
}

static void builder_limits(void **state)
{
    (void)state;
    fdl_report *r = fdl_report_new(NULL, 0, NULL);
    assert_non_null(r);
    assert_null(fdl_report_add_scenario(r, NULL, NULL, NULL));
    fdl_report_scenario *s = fdl_report_add_scenario(r, "s", NULL, NULL);
    assert_non_null(s);
    fdl_report_step_info bad = {.attack = "a", .expected = FDL_OUTCOME_COUNT};
    assert_null(fdl_scenario_add_step(s, &bad));
    bad.expected = FDL_OUTCOME_BLOCKED;
    bad.actual_layer = FDL_LAYER_COUNT;
    assert_null(fdl_scenario_add_step(s, &bad));
    assert_int_equal(fdl_report_matrix_set(r, "a", "baseline", FDL_OUTCOME_COUNT, FDL_LAYER_NONE), FDL_REPORT_ERR_ARG);

    /* A long name is cut on a character boundary and marked; so is evidence. */
    char *long_name = malloc(FDL_REPORT_STRING_MAX * 2 + 1);
    assert_non_null(long_name);
    for (size_t i = 0; i < FDL_REPORT_STRING_MAX; i++)
        memcpy(long_name + 2 * i, "\xC3\xA9", 2);
    long_name[FDL_REPORT_STRING_MAX * 2] = '\0';
    fdl_report_scenario *ls = fdl_report_add_scenario(r, long_name, NULL, NULL);
    assert_non_null(ls);
    fdl_report_step_info ok = {.attack = long_name, .actual_layer = FDL_LAYER_NONE, .detect_ms = -5};
    fdl_report_step *st = fdl_scenario_add_step(ls, &ok);
    assert_non_null(st);
    for (int i = 0; i < 40; i++)
        assert_int_equal(fdl_step_append_evidence(st, long_name), FDL_REPORT_OK);
    free(long_name);

    char *json = render(fdl_report_write_json, r);
    fdl_test_jdoc d = {0};
    fdl_test_jparse(&d, json, strlen(json));
    size_t sc = fdl_test_jat(&d, fdl_test_jget(&d, 0, "scenarios"), 1);
    size_t name = fdl_test_jget(&d, sc, "name");
    assert_true(d.tok[name].size <= FDL_REPORT_STRING_MAX);
    assert_true(d.tok[name].size > FDL_REPORT_STRING_MAX - 16);
    char *text = malloc(FDL_REPORT_EVIDENCE_MAX + 1);
    assert_int_equal(fdl_jv_str_copy(d.buf, &d.tok[name], text, FDL_REPORT_EVIDENCE_MAX + 1, NULL), FDL_JV_OK);
    assert_non_null(strstr(text, FDL_REPORT_CUT_MARK));
    size_t step0 = fdl_test_jat(&d, fdl_test_jget(&d, sc, "steps"), 0);
    size_t ev = fdl_test_jget(&d, step0, "evidence");
    assert_true(d.tok[ev].size <= FDL_REPORT_EVIDENCE_MAX);
    assert_true(d.tok[ev].size > FDL_REPORT_EVIDENCE_MAX - 16);
    assert_int_equal(fdl_jv_str_copy(d.buf, &d.tok[ev], text, FDL_REPORT_EVIDENCE_MAX + 1, NULL), FDL_JV_OK);
    size_t tl = strlen(text), ml = strlen(FDL_REPORT_CUT_MARK);
    assert_string_equal(text + tl - ml, FDL_REPORT_CUT_MARK);
    assert_int_equal(d.tok[fdl_test_jget(&d, step0, "detect_ms")].type, FDL_JV_NULL);
    free(text);
    fdl_test_jfree(&d);
    free(json);

    /* The switch ceiling: one more column is refused and changes nothing. */
    for (unsigned c = 0; c < FDL_REPORT_MAX_SWITCHES; c++) {
        char sw[16];
        snprintf(sw, sizeof sw, "sw%u", c);
        assert_int_equal(fdl_report_matrix_set(r, "a", sw, FDL_OUTCOME_BLOCKED, FDL_LAYER_CLOUD), FDL_REPORT_OK);
    }
    assert_int_equal(fdl_report_matrix_set(r, "b", "one-too-many", FDL_OUTCOME_BLOCKED, FDL_LAYER_CLOUD),
                     FDL_REPORT_ERR_LIMIT);
    fdl_report_free(r);
    fdl_report_free(NULL);
}

static void json_parses_back(void **state)
{
    (void)state;
    fdl_report *r = sample();
    assert_non_null(r);
    char *json = render(fdl_report_write_json, r);
    fdl_test_jdoc d = {0};
    fdl_test_jparse(&d, json, strlen(json));
    fdl_test_jstr_is(&d, 0, "schema", "fleetdrill-report/1");
    fdl_test_jstr_is(&d, 0, "tool_version", "0.1.0");
    fdl_test_jstr_is(&d, 0, "started", "2024-05-01T12:00:00Z");
    assert_int_equal(fdl_test_jint(&d, 0, "started_unix"), T0);
    assert_int_equal(d.tok[fdl_test_jget(&d, 0, "ablation")].type, FDL_JV_NULL);
    size_t sum = fdl_test_jget(&d, 0, "summary");
    assert_int_equal(fdl_test_jint(&d, sum, "scenarios"), 3);
    assert_int_equal(fdl_test_jint(&d, sum, "scenarios_passed"), 0);
    assert_int_equal(fdl_test_jint(&d, sum, "steps"), 4);
    assert_int_equal(fdl_test_jint(&d, sum, "steps_passed"), 2);
    assert_int_equal(fdl_test_jint(&d, sum, "steps_failed"), 2);
    assert_int_equal(fdl_test_jint(&d, sum, "errors"), 1);

    size_t scs = fdl_test_jget(&d, 0, "scenarios");
    size_t s0 = fdl_test_jat(&d, scs, 0);
    fdl_test_jstr_is(&d, s0, "name", "stolen-cert");
    fdl_test_jstr_is(&d, fdl_test_jget(&d, s0, "fleet"), "provisioning", "jitr");
    assert_int_equal(fdl_test_jint(&d, fdl_test_jget(&d, s0, "fleet"), "devices"), 200);
    size_t st0 = fdl_test_jat(&d, fdl_test_jget(&d, s0, "steps"), 0);
    fdl_test_jstr_is(&d, st0, "attack", "stolen-cert");
    fdl_test_jstr_is(&d, st0, "evidence",
                     "alert cert-shared dev-000042 from 10.0.0.9 and 10.0.0.42\nmetric sessions{dev-000042}=2");
    fdl_test_jstr_is(&d, fdl_test_jget(&d, st0, "expected"), "layer", "detection");
    assert_int_equal(fdl_test_jint(&d, st0, "respond_ms"), 1200);
    size_t st2 = fdl_test_jat(&d, fdl_test_jget(&d, s0, "steps"), 2);
    fdl_test_jstr_is(&d, st2, "label", "wildcard-subscribe"); /* no label: the attack's name */
    assert_int_equal(d.tok[fdl_test_jget(&d, st2, "pass")].type, FDL_JV_FALSE);
    size_t se = fdl_test_jat(&d, fdl_test_jget(&d, s0, "series"), 0);
    fdl_test_jstr_is(&d, se, "unit", "devices");
    assert_int_equal(d.tok[fdl_test_jget(&d, se, "points")].size, 61);

    /* The hostile scenario comes back byte for byte (it is valid UTF-8); the invalid
     * byte in its evidence comes back as U+FFFD. */
    size_t s1 = fdl_test_jat(&d, scs, 1);
    fdl_test_jstr_is(&d, s1, "name", HOSTILE);
    fdl_test_jstr_is(&d, s1, "ablation", "pinning");
    size_t hs = fdl_test_jat(&d, fdl_test_jget(&d, s1, "steps"), 0);
    fdl_test_jstr_is(&d, hs, "attack", HOSTILE);
    fdl_test_jstr_is(&d, hs, "evidence", HOSTILE "\nsecond " FFFD " line");
    fdl_test_jstr_is(&d, fdl_test_jat(&d, scs, 2), "error", "scenarios/x.lua:12: unknown attack 'foo'");

    size_t m = fdl_test_jget(&d, 0, "matrix");
    assert_int_equal(d.tok[fdl_test_jget(&d, m, "switches")].size, 6);
    size_t row3 = fdl_test_jat(&d, fdl_test_jget(&d, m, "attacks"), 3);
    fdl_test_jstr_is(&d, row3, "attack", "junk-telemetry");
    assert_int_equal(fdl_test_jint(&d, row3, "independent_layers"), 4);
    assert_int_equal(d.tok[fdl_test_jat(&d, fdl_test_jget(&d, row3, "cells"), 5)].type, FDL_JV_NULL);
    fdl_test_jstr_is(&d, fdl_test_jat(&d, fdl_test_jget(&d, row3, "cells"), 0), "outcome", "missed");
    fdl_test_jfree(&d);
    free(json);
    fdl_report_free(r);
}

static void junit_valid_xml(void **state)
{
    (void)state;
    require_tool("xmllint");
    char dir[256], path[320], cmd[800];
    fdl_test_mkdtemp("report-junit", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/junit.xml", dir);
    fdl_report *r = sample();
    assert_non_null(r);
    assert_int_equal(fdl_report_write_file(r, FDL_REPORT_JUNIT, path), FDL_REPORT_OK);

    /* Well-formed for a strict parser, and the values come back as written. */
    snprintf(cmd, sizeof cmd, "xmllint --noout '%s' 2>&1", path);
    free(run_cmd(cmd));
    snprintf(cmd, sizeof cmd, "xmllint --xpath 'string(/testsuites/testsuite[2]/testcase[1]/failure)' '%s'", path);
    char *got = run_cmd(cmd);
    assert_string_equal(got, HOSTILE_MARKUP "\nsecond " FFFD " line");
    free(got);
    snprintf(cmd, sizeof cmd, "xmllint --xpath 'string(/testsuites/testsuite[2]/@name)' '%s'", path);
    got = run_cmd(cmd);
    /* In an attribute the line end survives too (as &#10;). */
    assert_string_equal(got, HOSTILE_MARKUP " [ablation: pinning]");
    free(got);
    snprintf(cmd, sizeof cmd, "xmllint --xpath 'string(/testsuites/testsuite[1]/testcase[3]/failure/@message)' '%s'",
             path);
    got = run_cmd(cmd);
    assert_string_equal(got, "expected contained by cloud, got missed");
    free(got);
    snprintf(cmd, sizeof cmd,
             "xmllint --xpath 'concat(/testsuites/@tests, \" \", /testsuites/@failures, \" \", /testsuites/@errors,"
             " \" \", string(/testsuites/testsuite[3]/testcase/error/@message))' '%s'",
             path);
    got = run_cmd(cmd);
    assert_string_equal(got, "5 2 1 scenarios/x.lua:12: unknown attack 'foo'");
    free(got);
    /* Python's parser agrees (a second, independent implementation). */
    require_tool("python3");
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sys, xml.etree.ElementTree as E; "
             "t = E.parse(sys.argv[1]); print(len(t.getroot().findall(\"testsuite/testcase\")))' '%s'",
             path);
    got = run_cmd(cmd);
    assert_string_equal(got, "5");
    free(got);
    fdl_report_free(r);
    fdl_test_rmrf(dir);
}

static void html_self_contained(void **state)
{
    (void)state;
    fdl_report *r = sample();
    assert_non_null(r);
    char *html = render(fdl_report_write_html, r);
    /* Nothing that could load from outside: no URL scheme, no src, no link, no script, no CSS import. */
    static const char *const banned[] = {"http://", "https://", "src=", "href", "<link", "<script", "url(",
                                         "@import", "<img", "<iframe", "<object", "//"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strstr(html, banned[i]))
            fail_msg("HTML contains \"%s\"", banned[i]);
    assert_non_null(strstr(html, "Content-Security-Policy\" content=\"default-src 'none'"));
    /* The hostile text is there, escaped; no control character survives. */
    assert_non_null(strstr(html, "q&quot;uo&#39;te &lt;script&gt;alert(1)&lt;/script&gt; &amp; ]]&gt; " FFFD FFFD
                                 "[31m" FFFD));
    for (const char *p = html; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t')
            fail_msg("control byte 0x%02x at offset %zu", (unsigned char)*p, (size_t)(p - html));
    assert_null(strstr(html, "\xC2\x85"));
    /* The parts: summary, the step table, charts, the matrix and its legend. */
    assert_non_null(strstr(html, "40.0 %"));
    assert_non_null(strstr(html, "<pre>TLS alert certificate_revoked</pre>"));
    assert_non_null(strstr(html, "<svg"));
    assert_non_null(strstr(html, "<polyline class=\"line\""));
    assert_non_null(strstr(html, "time (s)"));
    assert_non_null(strstr(html, "class=\"cell o-missed\""));
    assert_non_null(strstr(html, "<th>tls13-only</th>"));
    assert_non_null(strstr(html, "not run"));
    assert_non_null(strstr(html, "scenarios/x.lua:12: unknown attack &#39;foo&#39;"));
    free(html);
    fdl_report_free(r);
}

static void table_aligned(void **state)
{
    (void)state;
    fdl_report *r = sample();
    assert_non_null(r);
    char *t = render(fdl_report_write_table, r);
    assert_non_null(strstr(t, "2/4 steps passed, 2 failed, 1 scenario error: pass rate 40.0%; 0/3 scenarios passed"));
    for (const char *p = t; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\n')
            fail_msg("control byte 0x%02x in the table", (unsigned char)*p);
    assert_null(strstr(t, "\xC2\x85"));
    /* Every step row and header ends in its result at the same column (code points). */
    long result_col = -1;
    int rows = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        char *end = NULL;
        if ((end = strstr(line, "  PASS")) || (end = strstr(line, "  FAIL")) || (end = strstr(line, "  RESULT"))) {
            if (strncmp(line, "  ", 2) != 0)
                continue; /* a scenario heading */
            long col = 0;
            for (char *p = line; p < end; p++)
                col += ((unsigned char)*p & 0xC0) != 0x80;
            if (result_col < 0)
                result_col = col;
            assert_int_equal(col, result_col);
            rows++;
        }
    }
    assert_int_equal(rows, 6); /* two headers, four steps */
    free(t);
    fdl_report_free(r);
}

static void write_file_atomic(void **state)
{
    (void)state;
    char dir[256], path[320];
    fdl_test_mkdtemp("report-file", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/report.json", dir);
    fdl_report *r = sample();
    assert_non_null(r);
    assert_int_equal(fdl_report_write_file(r, FDL_REPORT_JSON, path), FDL_REPORT_OK);
    fdl_test_jdoc d = {0};
    fdl_test_jload(&d, path);
    fdl_test_jstr_is(&d, 0, "schema", "fleetdrill-report/1");
    fdl_test_jfree(&d);
    assert_int_equal(fdl_report_write_file(r, (fdl_report_format)9, path), FDL_REPORT_ERR_ARG);
    assert_int_equal(fdl_report_write_file(r, FDL_REPORT_HTML, "/nonexistent-dir/x.html"), FDL_REPORT_ERR_IO);
    assert_int_equal(fdl_report_write_json(NULL, stdout), FDL_REPORT_ERR_ARG);
    fdl_report_free(r);
    fdl_test_rmrf(dir);
}

static void alloc_failures(void **state)
{
    (void)state;
    /* Each allocation in turn fails while building and writing: no crash, no leak. */
    int failures = 0;
    for (uint64_t nth = 1; nth < 100000; nth++) {
        fdl_alloc_stats a = fdl_alloc_get_stats();
        fdl_alloc_fail_nth(nth);
        fdl_report *r = sample();
        fdl_report_status st = FDL_REPORT_ERR_NOMEM;
        FILE *devnull = fopen("/dev/null", "w");
        assert_non_null(devnull);
        if (r)
            st = fdl_report_write_json(r, devnull);
        fdl_alloc_fail_nth(0);
        fclose(devnull);
        fdl_report_free(r);
        fdl_alloc_stats b = fdl_alloc_get_stats();
        assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
        if (r && st == FDL_REPORT_OK)
            break;
        assert_int_equal(st, FDL_REPORT_ERR_NOMEM);
        failures++;
    }
    assert_true(failures > 50);
}

/* ---------------------------------------------------------------------------------------- */
/* History                                                                                    */

/* A run of two scenarios, the second step's judgement and timing given. */
static fdl_report *history_run(fdl_outcome leak_actual, fdl_layer leak_layer, fdl_layer mitm_layer,
                               int64_t mitm_respond, bool extra)
{
    fdl_report *r = fdl_report_new("0.1.0", T0, NULL);
    fdl_report_scenario *s = fdl_report_add_scenario(r, "drill", "scenarios/drill.lua", NULL);
    assert_non_null(s);
    assert_non_null(step(s, "key-leak", "leak", FDL_OUTCOME_BLOCKED, FDL_LAYER_IDENTITY, leak_actual, leak_layer,
                         "evidence", 10, 20));
    fdl_report_step_info in = {.attack = "rogue-ca-mitm", .expected = FDL_OUTCOME_BLOCKED,
                               .expected_layer = FDL_LAYER_TRANSPORT, .actual = FDL_OUTCOME_BLOCKED,
                               .actual_layer = mitm_layer, .pass = true, .detect_ms = -1,
                               .respond_ms = mitm_respond, .duration_ms = 10};
    assert_non_null(fdl_scenario_add_step(s, &in));
    assert_non_null(fdl_scenario_add_step(s, &in)); /* the same step twice: occurrence 2 */
    if (extra) {
        fdl_report_scenario *x = fdl_report_add_scenario(r, "new-drill", NULL, NULL);
        assert_non_null(x);
        assert_int_equal(fdl_scenario_set_error(x, "scenarios/new.lua:3: boom"), FDL_REPORT_OK);
    } else {
        assert_non_null(fdl_report_add_scenario(r, "retired-drill", NULL, NULL));
    }
    assert_int_equal(fdl_report_matrix_set(r, "key-leak", "baseline", leak_actual, leak_layer), FDL_REPORT_OK);
    return r;
}

static void history_compare(void **state)
{
    (void)state;
    char dir[256], path[320];
    fdl_test_mkdtemp("report-history", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/history.db", dir);
    fdl_history *h = NULL;
    assert_int_equal(fdl_history_open(path, &h), FDL_HISTORY_OK);

    /* Fewer than two runs: nothing to compare. */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    assert_int_equal(fdl_history_compare(h, 0, mem, false, NULL), FDL_HISTORY_ERR_NOT_FOUND);

    int64_t id1 = 0, id2 = 0;
    fdl_report *r1 = history_run(FDL_OUTCOME_BLOCKED, FDL_LAYER_IDENTITY, FDL_LAYER_TRANSPORT, 100, false);
    fdl_report *r2 = history_run(FDL_OUTCOME_MISSED, FDL_LAYER_NONE, FDL_LAYER_IDENTITY, 900, true);
    assert_int_equal(fdl_history_save(h, r1, &id1), FDL_HISTORY_OK);
    assert_int_equal(fdl_history_save(h, r2, &id2), FDL_HISTORY_OK);
    assert_true(id2 > id1);
    fdl_history_free(h);
    h = NULL;

    /* Reopened (the schema is there already), compared as text. */
    assert_int_equal(fdl_history_open(path, &h), FDL_HISTORY_OK);
    size_t regressions = 99;
    assert_int_equal(fdl_history_compare(h, 0, mem, false, &regressions), FDL_HISTORY_OK);
    fclose(mem);
    assert_int_equal(regressions, 2); /* key-leak now missed, new-drill errors */
    assert_non_null(strstr(buf, "REGRESSION       drill / leak (key-leak): was blocked by identity (pass), now "
                                "missed (fail); expected blocked by identity"));
    assert_non_null(strstr(buf, "CHANGED          drill / rogue-ca-mitm: was blocked by transport (pass), now "
                                "blocked by identity (pass)"));
    assert_non_null(strstr(buf, "RESPOND-TIME     drill / rogue-ca-mitm: time to respond 100 ms -> 900 ms"));
    assert_non_null(strstr(buf, "SCENARIO-ADDED   new-drill: error: scenarios/new.lua:3: boom"));
    assert_non_null(strstr(buf, "SCENARIO-REMOVED retired-drill"));
    assert_non_null(strstr(buf, "2 regressions, 0 fixed,"));
    free(buf);

    /* The same as JSON, against an explicit run id. */
    mem = open_memstream(&buf, &len);
    assert_int_equal(fdl_history_compare(h, id1, mem, true, NULL), FDL_HISTORY_OK);
    fclose(mem);
    fdl_test_jdoc d = {0};
    fdl_test_jparse(&d, buf, len);
    fdl_test_jstr_is(&d, 0, "schema", "fleetdrill-compare/1");
    assert_int_equal(fdl_test_jint(&d, fdl_test_jget(&d, 0, "current"), "id"), id2);
    assert_int_equal(fdl_test_jint(&d, fdl_test_jget(&d, 0, "previous"), "id"), id1);
    assert_int_equal(fdl_test_jint(&d, 0, "regressions"), 2);
    size_t ch = fdl_test_jget(&d, 0, "changes");
    /* scenario-added, scenario-removed, regression, changed + respond-time twice (both occurrences). */
    assert_int_equal(d.tok[ch].size, 7);
    size_t reg = fdl_test_jat(&d, ch, 2);
    fdl_test_jstr_is(&d, reg, "kind", "regression");
    fdl_test_jstr_is(&d, reg, "attack", "key-leak");
    fdl_test_jstr_is(&d, fdl_test_jget(&d, reg, "previous"), "layer", "identity");
    fdl_test_jstr_is(&d, fdl_test_jget(&d, reg, "current"), "outcome", "missed");
    size_t chg = fdl_test_jat(&d, ch, 3);
    fdl_test_jstr_is(&d, chg, "kind", "changed");
    fdl_test_jstr_is(&d, fdl_test_jget(&d, chg, "previous"), "layer", "transport");
    fdl_test_jstr_is(&d, fdl_test_jget(&d, chg, "current"), "layer", "identity");
    assert_int_equal(fdl_test_jint(&d, fdl_test_jget(&d, chg, "current"), "respond_ms"), 900);
    fdl_test_jfree(&d);
    free(buf);

    /* A run compared with itself: nothing changed. A missing run: NOT_FOUND. */
    mem = open_memstream(&buf, &len);
    assert_int_equal(fdl_history_compare(h, id2, mem, false, &regressions), FDL_HISTORY_OK);
    assert_int_equal(regressions, 0);
    assert_int_equal(fdl_history_compare(h, 12345, mem, false, NULL), FDL_HISTORY_ERR_NOT_FOUND);
    fclose(mem);
    free(buf);

    /* Listing. */
    mem = open_memstream(&buf, &len);
    assert_int_equal(fdl_history_list_runs(h, mem, true), FDL_HISTORY_OK);
    fclose(mem);
    fdl_test_jparse(&d, buf, len);
    size_t runs = fdl_test_jget(&d, 0, "runs");
    assert_int_equal(d.tok[runs].size, 2);
    assert_int_equal(fdl_test_jint(&d, fdl_test_jat(&d, runs, 1), "steps_passed"), 2);
    fdl_test_jfree(&d);
    free(buf);
    mem = open_memstream(&buf, &len);
    assert_int_equal(fdl_history_list_runs(h, mem, false), FDL_HISTORY_OK);
    fclose(mem);
    assert_non_null(strstr(buf, "2024-05-01T12:00:00Z"));
    free(buf);

    /* The sample (hostile strings, an error, the matrix) saves too. */
    fdl_report *s = sample();
    assert_int_equal(fdl_history_save(h, s, NULL), FDL_HISTORY_OK);
    fdl_report_free(s);
    fdl_report_free(r1);
    fdl_report_free(r2);
    fdl_history_free(h);

    /* A newer schema is refused, not misread. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(fdl_history_open(path, &h), FDL_HISTORY_ERR_SCHEMA);
    assert_null(h);
    fdl_test_rmrf(dir);
}

/* A saver killed with SIGKILL at a random moment leaves whole runs only. */
static void history_killed_saver(void **state)
{
    (void)state;
    char dir[256], path[320];
    fdl_test_mkdtemp("report-kill", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/history.db", dir);
    fdl_history *h = NULL;
    assert_int_equal(fdl_history_open(path, &h), FDL_HISTORY_OK);
    fdl_history_free(h);

    for (int round = 0; round < 3; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            fdl_history *ch = NULL;
            if (fdl_history_open(path, &ch) != FDL_HISTORY_OK)
                _exit(2);
            fdl_report *r = fdl_report_new("0.1.0", T0, NULL);
            for (int i = 0; i < 40; i++) {
                char name[32];
                snprintf(name, sizeof name, "scenario-%d", i);
                fdl_report_scenario *s = fdl_report_add_scenario(r, name, NULL, NULL);
                for (int k = 0; k < 50; k++)
                    step(s, "attack", NULL, FDL_OUTCOME_BLOCKED, FDL_LAYER_CLOUD, FDL_OUTCOME_BLOCKED,
                         FDL_LAYER_CLOUD, "some evidence line that takes a little room", k, k);
            }
            for (;;)
                if (fdl_history_save(ch, r, NULL) != FDL_HISTORY_OK)
                    _exit(3);
        }
        struct timespec ts = {0, (long)(300 + 100 * round) * 1000000L};
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int wst = 0;
        assert_int_equal(waitpid(pid, &wst, 0), pid);
        assert_true(WIFSIGNALED(wst));
    }

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "ok");
    sqlite3_finalize(s);
    /* Every run has all its scenarios and steps; no orphan. */
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), sum(r.scenarios = (SELECT count(*) FROM scenarios c WHERE"
                                        " c.run_id = r.id) AND r.steps = (SELECT count(*) FROM steps st JOIN scenarios c"
                                        " ON c.id = st.scenario_id WHERE c.run_id = r.id)) FROM runs r",
                                        -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int runs = sqlite3_column_int(s, 0), whole = sqlite3_column_int(s, 1);
    sqlite3_finalize(s);
    assert_true(runs > 0);
    assert_int_equal(whole, runs);
    sqlite3_close(db);
    fdl_test_rmrf(dir);
}

int main(void)
{
    const char *sample_out = getenv("FDL_REPORT_SAMPLE_OUT");
    if (sample_out && *sample_out) {
        fdl_report *r = sample();
        fdl_report_status st = r ? fdl_report_write_file(r, FDL_REPORT_HTML, sample_out) : FDL_REPORT_ERR_NOMEM;
        fdl_report_free(r);
        if (st != FDL_REPORT_OK)
            fprintf(stderr, "sample report: %s\n", fdl_report_strerror(st));
        return st == FDL_REPORT_OK ? 0 : 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(builder_limits),
        cmocka_unit_test(json_parses_back),
        cmocka_unit_test(junit_valid_xml),
        cmocka_unit_test(html_self_contained),
        cmocka_unit_test(table_aligned),
        cmocka_unit_test(write_file_atomic),
        cmocka_unit_test(alloc_failures),
        cmocka_unit_test(history_compare),
        cmocka_unit_test(history_killed_saver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
