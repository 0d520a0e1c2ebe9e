/* tests/test_metrics.c — histogram accuracy, merging, process figures, file limits. */
#include "testutil.h"

#include "sim/alloc.h"
#include "sim/metrics.h"

#include <math.h>
#include <string.h>
#include <sys/resource.h>

static void assert_within_1pct(uint64_t got, uint64_t want)
{
    double err = fabs((double)got - (double)want);
    if (err > (double)want * 0.01) {
        fail_msg("got %llu, want %llu (+-1%%)", (unsigned long long)got,
                 (unsigned long long)want);
    }
}

static void empty_histogram(void **state)
{
    (void)state;
    fdl_hist *h = fdl_hist_new();
    assert_non_null(h);
    assert_int_equal(fdl_hist_count(h), 0);
    assert_int_equal(fdl_hist_percentile(h, 50), 0);
    assert_int_equal(fdl_hist_percentile(h, 100), 0);
    assert_int_equal(fdl_hist_max(h), 0);
    assert_true(fdl_hist_mean(h) == 0.0);
    fdl_hist_free(h);
    fdl_hist_free(NULL);
    assert_int_equal(fdl_hist_count(NULL), 0);
}

static void small_values_are_exact(void **state)
{
    (void)state;
    fdl_hist *h = fdl_hist_new();
    assert_non_null(h);
    for (uint64_t v = 1; v <= 100; v++)
        fdl_hist_add(h, v);
    assert_int_equal(fdl_hist_count(h), 100);
    assert_int_equal(fdl_hist_percentile(h, 0), 1);
    assert_int_equal(fdl_hist_percentile(h, 1), 1);
    assert_int_equal(fdl_hist_percentile(h, 50), 50);
    assert_int_equal(fdl_hist_percentile(h, 90), 90);
    assert_int_equal(fdl_hist_percentile(h, 99), 99);
    assert_int_equal(fdl_hist_percentile(h, 99.5), 100);
    assert_int_equal(fdl_hist_percentile(h, 100), 100);
    assert_int_equal(fdl_hist_percentile(h, 250), 100); /* clamped */
    assert_int_equal(fdl_hist_percentile(h, -4), 1);    /* clamped */
    assert_int_equal(fdl_hist_percentile(h, NAN), 1);
    assert_int_equal(fdl_hist_max(h), 100);
    assert_true(fdl_hist_mean(h) == 50.5);
    fdl_hist_free(h);
}

/* p99.9 of 1..1000 is the 999th value: the rank must not round up to 1000. */
static void fractional_percentile_rank(void **state)
{
    (void)state;
    fdl_hist *h = fdl_hist_new();
    assert_non_null(h);
    for (uint64_t v = 1; v <= 1000; v++)
        fdl_hist_add(h, v * 1000);
    assert_within_1pct(fdl_hist_percentile(h, 99.9), 999000);
    assert_true(fdl_hist_percentile(h, 99.9) < 1000000);
    assert_int_equal(fdl_hist_percentile(h, 100), 1000000);
    assert_int_equal(fdl_hist_percentile(h, 0), 1000);
    fdl_hist_free(h);
}

static void relative_error_within_1pct(void **state)
{
    (void)state;
    fdl_hist *h = fdl_hist_new();
    assert_non_null(h);
    /* Single values across the whole range, each alone in a histogram. */
    static const uint64_t vals[] = {255, 256, 257, 300, 511, 512, 1000, 1023, 12345, 99999,
                                    1000000, 7777777, 123456789, 2147483647, 2147483648ull,
                                    3599999999ull, FDL_HIST_MAX_US};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        fdl_hist *one = fdl_hist_new();
        assert_non_null(one);
        fdl_hist_add(one, vals[i]);
        fdl_hist_add(one, 1);               /* so the clamp to [min, max] does not hide errors */
        fdl_hist_add(one, FDL_HIST_MAX_US);
        assert_within_1pct(fdl_hist_percentile(one, 50), vals[i]);
        fdl_hist_free(one);
    }
    /* A geometric sweep: every percentile within 1% of the true order statistic. */
    uint64_t sorted[2000];
    double v = 1.0;
    for (int i = 0; i < 2000; i++) {
        sorted[i] = (uint64_t)v;
        fdl_hist_add(h, sorted[i]);
        v *= 1.0109; /* from 1 us to about 2.5e9 us */
    }
    assert_int_equal(fdl_hist_count(h), 2000);
    for (int p = 1; p <= 100; p++) {
        uint64_t want = sorted[(p * 2000 + 99) / 100 - 1];
        assert_within_1pct(fdl_hist_percentile(h, p), want);
    }
    assert_int_equal(fdl_hist_max(h), sorted[1999]);
    fdl_hist_free(h);
}

static void above_range_is_clamped_but_max_exact(void **state)
{
    (void)state;
    fdl_hist *h = fdl_hist_new();
    assert_non_null(h);
    fdl_hist_add(h, 0);
    fdl_hist_add(h, 10 * FDL_HIST_MAX_US);
    assert_int_equal(fdl_hist_percentile(h, 0), 0);
    assert_int_equal(fdl_hist_percentile(h, 100), FDL_HIST_MAX_US);
    assert_int_equal(fdl_hist_max(h), 10 * FDL_HIST_MAX_US);
    assert_true(fdl_hist_mean(h) == 5.0 * (double)FDL_HIST_MAX_US);
    fdl_hist_add(h, UINT64_MAX);
    assert_int_equal(fdl_hist_max(h), UINT64_MAX);
    assert_int_equal(fdl_hist_count(h), 3);
    fdl_hist_free(h);
}

static void merge_adds_everything(void **state)
{
    (void)state;
    fdl_hist *a = fdl_hist_new(), *b = fdl_hist_new(), *all = fdl_hist_new();
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(all);
    for (uint64_t v = 1; v <= 50; v++) {
        fdl_hist_add(a, v);
        fdl_hist_add(all, v);
    }
    for (uint64_t v = 51; v <= 100; v++) {
        fdl_hist_add(b, v * 1000);
        fdl_hist_add(all, v * 1000);
    }
    fdl_hist_merge(a, b);
    fdl_hist_merge(a, NULL);
    fdl_hist_merge(NULL, b);
    assert_int_equal(fdl_hist_count(a), 100);
    assert_int_equal(fdl_hist_count(b), 50);
    assert_int_equal(fdl_hist_max(a), 100000);
    assert_int_equal(fdl_hist_percentile(a, 0), 1);
    assert_int_equal(fdl_hist_percentile(a, 50), 50);
    for (int p = 0; p <= 100; p += 5)
        assert_int_equal(fdl_hist_percentile(a, p), fdl_hist_percentile(all, p));
    assert_true(fdl_hist_mean(a) == fdl_hist_mean(all));
    /* Merging an empty histogram must not disturb min. */
    fdl_hist *empty = fdl_hist_new();
    assert_non_null(empty);
    fdl_hist_merge(a, empty);
    assert_int_equal(fdl_hist_percentile(a, 0), 1);
    fdl_hist_free(empty);
    fdl_hist_free(a);
    fdl_hist_free(b);
    fdl_hist_free(all);
}

static void new_fails_cleanly(void **state)
{
    (void)state;
    fdl_alloc_stats s0 = fdl_alloc_get_stats();
    fdl_alloc_fail_nth(1);
    assert_null(fdl_hist_new());
    fdl_hist_add(NULL, 5); /* no-op, no crash */
    fdl_alloc_stats s1 = fdl_alloc_get_stats();
    assert_int_equal(s1.failed - s0.failed, 1);
    assert_int_equal(s1.allocs - s0.allocs, 0);
}

static void process_figures(void **state)
{
    (void)state;
    uint64_t rss0 = fdl_rss_now_kib();
    assert_true(rss0 > 0);
    /* Touch 32 MiB so the peak must rise by roughly that much. */
    size_t n = 32u << 20;
    char *big = fdl_malloc(n);
    assert_non_null(big);
    memset(big, 1, n);
    uint64_t rss1 = fdl_rss_now_kib();
    uint64_t peak = fdl_rss_peak_kib();
    assert_true(rss1 >= rss0 + 30000);
    assert_true(peak >= rss1);
    fdl_free(big);

    double c0 = fdl_cpu_seconds();
    volatile uint64_t x = 0;
    while (fdl_cpu_seconds() < c0 + 0.05)
        x++;
    assert_true(fdl_cpu_seconds() >= c0 + 0.05);
    assert_true(x > 0);
}

static void nofile_limit(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 512)
        skip();
    /* Lower the soft limit (our own process only) so there is room to raise it. */
    struct rlimit low = {.rlim_cur = 256, .rlim_max = rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);

    uint64_t got = 0;
    assert_int_equal(fdl_raise_nofile_limit(512, &got), 0);
    assert_int_equal(got, 512);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(rl.rlim_cur, 512);

    /* Never lowers. */
    assert_int_equal(fdl_raise_nofile_limit(100, &got), 0);
    assert_int_equal(got, 512);
    assert_int_equal(fdl_raise_nofile_limit(100, NULL), 0);

    /* Asking for the moon gets the hard limit (or fs.nr_open when that is unlimited). */
    assert_int_equal(fdl_raise_nofile_limit(UINT64_MAX, &got), 0);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(got, rl.rlim_cur);
    if (rl.rlim_max != RLIM_INFINITY)
        assert_int_equal(got, rl.rlim_max);
    assert_true(got > 512);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_histogram),
        cmocka_unit_test(small_values_are_exact),
        cmocka_unit_test(fractional_percentile_rank),
        cmocka_unit_test(relative_error_within_1pct),
        cmocka_unit_test(above_range_is_clamped_but_max_exact),
        cmocka_unit_test(merge_adds_everything),
        cmocka_unit_test(new_fails_cleanly),
        cmocka_unit_test(process_figures),
        cmocka_unit_test(nofile_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
