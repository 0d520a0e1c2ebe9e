/* tests/test_progress.c — the progress bar: silent off a TTY, line contents, rate limit, log hook. */
#include "testutil.h"

#include "sim/alloc.h"
#include "sim/fdl_log.h"
#include "sim/progress.h"
#include "sim/vclock.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char text[1 << 16];

static const char *contents(FILE *f, size_t *len)
{
    fflush(f);
    long end = ftell(f);
    assert_true(end >= 0 && (size_t)end < sizeof text);
    rewind(f);
    size_t n = fread(text, 1, (size_t)end, f);
    text[n] = '\0';
    fseek(f, 0, SEEK_END);
    if (len)
        *len = n;
    return text;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("\"%s\" not found in \"%s\"", needle, hay);
}

static void disabled_when_not_a_tty(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    fdl_progress *p = fdl_progress_new(f, "connect", 100);
    assert_non_null(p);
    assert_int_equal(fdl_progress_enabled(p), 0);
    fdl_progress_update(p, 10, "status %d", 1);
    fdl_progress_update(p, 100, NULL);
    fdl_progress_finish(p);
    fdl_progress_free(p);
    size_t len;
    contents(f, &len);
    assert_int_equal(len, 0);
    fclose(f);

    /* A pipe is not a terminal either. */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    FILE *w = fdopen(fds[1], "w");
    assert_non_null(w);
    p = fdl_progress_new(w, "x", 5);
    assert_int_equal(fdl_progress_enabled(p), 0);
    fdl_progress_update(p, 1, "s");
    fdl_progress_finish(p);
    fdl_progress_free(p);
    fclose(w);
    char c;
    assert_int_equal(read(fds[0], &c, 1), 0); /* EOF, nothing was written */
    close(fds[0]);

    /* NULLs everywhere are no-ops. */
    assert_int_equal(fdl_progress_enabled(NULL), 0);
    fdl_progress_update(NULL, 1, NULL);
    fdl_progress_finish(NULL);
    fdl_progress_free(NULL);
}

/* Opens a pseudo-terminal; returns the slave as a FILE and the master fd in *master. */
static FILE *open_pty(int *master)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    if (m < 0)
        return NULL;
    if (grantpt(m) != 0 || unlockpt(m) != 0) {
        close(m);
        return NULL;
    }
    const char *name = ptsname(m);
    int s = name ? open(name, O_RDWR | O_NOCTTY) : -1;
    if (s < 0) {
        close(m);
        return NULL;
    }
    *master = m;
    return fdopen(s, "w");
}

static int enabled_on_pty(const char *term, const char *ci)
{
    int m;
    FILE *tty = open_pty(&m);
    if (!tty)
        return -1;
    if (term)
        setenv("TERM", term, 1);
    else
        unsetenv("TERM");
    if (ci)
        setenv("CI", ci, 1);
    else
        unsetenv("CI");
    fdl_progress *p = fdl_progress_new(tty, "x", 1);
    assert_non_null(p);
    int on = fdl_progress_enabled(p);
    fdl_progress_free(p);
    fclose(tty);
    close(m);
    return on;
}

static void tty_detection(void **state)
{
    (void)state;
    int on = enabled_on_pty("xterm-256color", NULL);
    if (on < 0)
        skip(); /* no pseudo-terminals in this sandbox */
    assert_int_equal(on, 1);
    assert_int_equal(enabled_on_pty(NULL, NULL), 1);
    assert_int_equal(enabled_on_pty("dumb", NULL), 0);
    assert_int_equal(enabled_on_pty("xterm", "true"), 0);
    assert_int_equal(enabled_on_pty("xterm", "1"), 0);
    assert_int_equal(enabled_on_pty("xterm", "false"), 1);
    setenv("NO_COLOR", "1", 1);
    assert_int_equal(enabled_on_pty("xterm", NULL), 1); /* NO_COLOR does not matter */
    unsetenv("NO_COLOR");
}

static void line_contents_and_rate_limit(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    fdl_progress *p = fdl_progress_new_forced(f, "connect", 200);
    assert_non_null(p);
    assert_int_equal(fdl_progress_enabled(p), 1);

    uint64_t t0 = fdl_now_ns();
    fdl_progress_update(p, 100, "tls %d ok", 812);
    size_t len1;
    const char *t = contents(f, &len1);
    assert_int_equal(t[0], '\r');
    assert_memory_equal(t + len1 - 3, "\x1b[K", 3);
    assert_null(strchr(t, '\n'));
    assert_contains(t, "\rconnect [############------------] 100/200  50.0% ");
    assert_contains(t, "/s ETA ");
    assert_contains(t, " tls 812 ok\x1b[K");

    /* Within 100 ms: recorded, not drawn (unless this machine stalled us for 90 ms). */
    fdl_progress_update(p, 150, "later");
    size_t len2;
    contents(f, &len2);
    if (fdl_now_ns() - t0 < 90000000u)
        assert_int_equal(len2, len1);
    len1 = len2;

    sleep_ms(120);
    fdl_progress_update(p, 200, NULL);
    t = contents(f, &len2);
    assert_true(len2 > len1);
    const char *second = t + len1;
    assert_contains(second, "\rconnect [########################] 200/200 100.0% ");
    assert_contains(second, " ETA 0:00\x1b[K");
    assert_null(strstr(second, "later"));

    fdl_progress_finish(p);
    size_t len3;
    t = contents(f, &len3);
    assert_true(len3 > len2);
    assert_contains(t + len2, "200/200 100.0% ");
    assert_contains(t + len2, " in 0:00\x1b[K\n");
    assert_int_equal(t[len3 - 1], '\n');

    /* Finished: later calls are no-ops, and free adds nothing. */
    fdl_progress_update(p, 300, "x");
    fdl_progress_finish(p);
    fdl_progress_free(p);
    size_t len4;
    contents(f, &len4);
    assert_int_equal(len4, len3);
    fclose(f);
}

static void unknown_total_and_truncation(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    fdl_progress *p = fdl_progress_new_forced(f, "msgs", 0);
    assert_non_null(p);
    char longer[300];
    memset(longer, 'z', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    fdl_progress_update(p, 42, "a\nb %s", longer);
    size_t len;
    const char *t = contents(f, &len);
    assert_contains(t, "\rmsgs 42 ");
    assert_contains(t, "/s a b zzz");
    assert_null(strstr(t, "ETA"));
    assert_null(strchr(t, '#'));   /* no bar */
    assert_null(strchr(t, '%'));   /* no percentage */
    /* \r + at most 79 visible bytes (80 columns when unknown) + ESC[K. */
    assert_int_equal(len, 1 + 79 + 3);
    /* Free without finish keeps the last state on screen with a newline. */
    fdl_progress_free(p);
    t = contents(f, &len);
    assert_int_equal(t[len - 1], '\n');
    fclose(f);
}

static void log_lines_erase_the_bar(void **state)
{
    (void)state;
    FILE *bar = tmpfile(), *log = tmpfile();
    assert_non_null(bar);
    assert_non_null(log);
    fdl_log_set_file(log);
    fdl_progress *p = fdl_progress_new_forced(bar, "run", 10);
    assert_non_null(p);

    fdl_log(FDL_LOG_WARN, "t", "before any draw"); /* nothing on screen: nothing to erase */
    size_t n0;
    contents(bar, &n0);
    assert_int_equal(n0, 0);

    fdl_progress_update(p, 1, "one");
    size_t n1;
    contents(bar, &n1);
    fdl_log(FDL_LOG_WARN, "t", "hello");
    size_t n2;
    const char *t = contents(bar, &n2);
    assert_int_equal(n2, n1 + 4);
    assert_memory_equal(t + n1, "\r\x1b[K", 4);
    fdl_log(FDL_LOG_WARN, "t", "again"); /* already erased: no second clear */
    contents(bar, &n2);
    assert_int_equal(n2, n1 + 4);

    /* The next update redraws at once, despite the 100 ms limit. */
    fdl_progress_update(p, 2, "two");
    size_t n3;
    t = contents(bar, &n3);
    assert_true(n3 > n2);
    assert_contains(t + n2, " 2/10 ");
    assert_contains(t + n2, " two\x1b[K");

    /* After free the hook is gone. */
    fdl_progress_finish(p);
    fdl_progress_free(p);
    size_t n4, n5;
    contents(bar, &n4);
    fdl_log(FDL_LOG_WARN, "t", "after free");
    contents(bar, &n5);
    assert_int_equal(n5, n4);
    fdl_log_set_file(NULL);
    fclose(bar);
    fclose(log);
}

static void allocations_balance(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    fdl_alloc_stats s0 = fdl_alloc_get_stats();
    fdl_progress_free(fdl_progress_new_forced(f, "a", 1));
    fdl_progress_free(fdl_progress_new(f, NULL, 1));
    fdl_alloc_fail_nth(2); /* the label copy fails */
    assert_null(fdl_progress_new(f, "label", 1));
    fdl_alloc_stats s1 = fdl_alloc_get_stats();
    assert_int_equal(s1.allocs - s0.allocs, s1.frees - s0.frees);
    assert_int_equal(s1.failed - s0.failed, 1);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(disabled_when_not_a_tty),
        cmocka_unit_test(tty_detection),
        cmocka_unit_test(line_contents_and_rate_limit),
        cmocka_unit_test(unknown_total_and_truncation),
        cmocka_unit_test(log_lines_erase_the_bar),
        cmocka_unit_test(allocations_balance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
