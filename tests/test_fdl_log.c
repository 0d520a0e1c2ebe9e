/* tests/test_fdl_log.c — log line format, levels, sanitising, the hook, one write per line. */
#include "testutil.h"

#include "sim/fdl_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char text[1 << 20];

/* Everything written to f so far, as a string in text. */
static const char *contents(FILE *f)
{
    fflush(f);
    long end = ftell(f);
    assert_true(end >= 0 && (size_t)end < sizeof text);
    rewind(f);
    size_t n = fread(text, 1, (size_t)end, f);
    text[n] = '\0';
    fseek(f, 0, SEEK_END);
    return text;
}

static int setup(void **state)
{
    FILE *f = tmpfile();
    if (!f)
        return -1;
    fdl_log_set_file(f);
    fdl_log_set_level(FDL_LOG_INFO);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fdl_log_set_file(NULL);
    fdl_log_set_before_write(NULL, NULL);
    fclose(*state);
    return 0;
}

static void line_format(void **state)
{
    FILE *f = *state;
    fdl_log(FDL_LOG_ERROR, "mqtt", "connect failed: %s (%d)", "refused", 5);
    fdl_log(FDL_LOG_WARN, "tls", "handshake slow");
    fdl_log(FDL_LOG_INFO, NULL, "no component");
    assert_string_equal(contents(f), "fleetdrill: error [mqtt] connect failed: refused (5)\n"
                                     "fleetdrill: warn [tls] handshake slow\n"
                                     "fleetdrill: info no component\n");
}

static void levels_filter(void **state)
{
    FILE *f = *state;
    assert_int_equal(fdl_log_level(), FDL_LOG_INFO);
    fdl_log(FDL_LOG_DEBUG, "x", "hidden");
    FDL_DEBUG("x", "hidden too");
    FDL_INFO("x", "shown %d", 1);
    fdl_log_set_level(FDL_LOG_ERROR);
    FDL_WARN("x", "hidden");
    FDL_ERROR("x", "shown %d", 2);
    fdl_log_set_level(FDL_LOG_DEBUG);
    FDL_DEBUG("x", "shown %d", 3);
    assert_string_equal(contents(f), "fleetdrill: info [x] shown 1\n"
                                     "fleetdrill: error [x] shown 2\n"
                                     "fleetdrill: debug [x] shown 3\n");
    fdl_log_set_level(99);
    assert_int_equal(fdl_log_level(), FDL_LOG_DEBUG);
    fdl_log_set_level(-5);
    assert_int_equal(fdl_log_level(), FDL_LOG_ERROR);
}

static int evaluated;
static int side_effect(void)
{
    return ++evaluated;
}

static void macros_skip_arguments_when_off(void **state)
{
    FILE *f = *state;
    evaluated = 0;
    fdl_log_set_level(FDL_LOG_WARN);
    FDL_DEBUG("x", "%d", side_effect());
    FDL_INFO("x", "%d", side_effect());
    assert_int_equal(evaluated, 0);
    FDL_WARN("x", "%d", side_effect());
    assert_int_equal(evaluated, 1);
    assert_string_equal(contents(f), "fleetdrill: warn [x] 1\n");
}

static void control_characters_are_neutralised(void **state)
{
    FILE *f = *state;
    fdl_log(FDL_LOG_INFO, "dev", "name=%s", "evil\nfleetdrill: error [auth] forged\x1b[2J\ttab");
    assert_string_equal(contents(f),
                        "fleetdrill: info [dev] name=evil?fleetdrill: error [auth] forged?[2J\ttab\n");
}

static void long_lines_are_truncated(void **state)
{
    FILE *f = *state;
    static char big[3 * FDL_LOG_LINE_MAX];
    memset(big, 'a', sizeof big - 1);
    fdl_log(FDL_LOG_INFO, "c", "%s", big);
    fdl_log(FDL_LOG_INFO, "c", "after");
    const char *t = contents(f);
    const char *nl = strchr(t, '\n');
    assert_non_null(nl);
    assert_int_equal(nl - t + 1, FDL_LOG_LINE_MAX);
    assert_memory_equal(nl - 3, "...", 3);
    assert_string_equal(nl + 1, "fleetdrill: info [c] after\n");
}

static void errno_is_preserved(void **state)
{
    (void)state;
    errno = ECONNREFUSED;
    fdl_log(FDL_LOG_ERROR, "x", "oops");
    assert_int_equal(errno, ECONNREFUSED);
}

static FILE *hook_file;
static int hook_calls;
static void hook(void *ud)
{
    hook_calls++;
    fputs((const char *)ud, hook_file);
}

static void hook_runs_before_each_line(void **state)
{
    FILE *f = *state;
    hook_file = f;
    hook_calls = 0;
    fdl_log_set_before_write(hook, "<clear>");
    fdl_log(FDL_LOG_INFO, "a", "one");
    fdl_log(FDL_LOG_DEBUG, "a", "filtered: no hook");
    fdl_log(FDL_LOG_INFO, "a", "two");
    fdl_log_set_before_write(NULL, NULL);
    fdl_log(FDL_LOG_INFO, "a", "three");
    assert_int_equal(hook_calls, 2);
    /* stdio text from the hook comes out before the line (the logger flushes f). */
    assert_string_equal(contents(f), "<clear>fleetdrill: info [a] one\n"
                                     "<clear>fleetdrill: info [a] two\n"
                                     "fleetdrill: info [a] three\n");
}

/* Many threads log at once through a pipe: every line arrives whole. */
enum { THREADS = 8, LINES = 500 };

static void *logger_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < LINES; i++)
        fdl_log(FDL_LOG_INFO, "t", "thread %d line %d padding %s", id, i,
                "................................................................");
    return NULL;
}

static void threads_never_interleave(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    fdl_log_set_file(f);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, logger_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    fdl_log_set_file(*state);

    const char *t = contents(f);
    int seen[THREADS] = {0};
    int lines = 0;
    for (const char *p = t; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        int id, n, used = 0;
        assert_int_equal(sscanf(p, "fleetdrill: info [t] thread %d line %d padding %n", &id, &n, &used),
                         2);
        assert_true(used > 0);
        assert_true(id >= 0 && id < THREADS);
        assert_int_equal(n, seen[id]); /* in order per thread */
        seen[id]++;
        assert_int_equal(nl - (p + used), 64);
        lines++;
        p = nl + 1;
    }
    assert_int_equal(lines, THREADS * LINES);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(levels_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(macros_skip_arguments_when_off, setup, teardown),
        cmocka_unit_test_setup_teardown(control_characters_are_neutralised, setup, teardown),
        cmocka_unit_test_setup_teardown(long_lines_are_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(errno_is_preserved, setup, teardown),
        cmocka_unit_test_setup_teardown(hook_runs_before_each_line, setup, teardown),
        cmocka_unit_test_setup_teardown(threads_never_interleave, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
