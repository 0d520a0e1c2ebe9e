/* tests/test_backoff.c — backoff grows, is capped, is jittered, resets. */
#include "testutil.h"

#include "devices/backoff.h"

static void grows_and_caps(void **state)
{
    (void)state;
    fdl_backoff b;
    fdl_backoff_init(&b, 1000, 30000);
    /* rnd = max → the upper bound d; rnd = 0 → the lower bound d/2. */
    assert_int_equal(fdl_backoff_next(&b, UINT32_MAX) <= 1000, 1);
    uint64_t expect[] = {2000, 4000, 8000, 16000, 30000, 30000, 30000};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        fdl_backoff t = b;
        uint64_t lo = fdl_backoff_next(&t, 0);
        assert_int_equal(lo, expect[i] / 2);
        uint64_t hi = fdl_backoff_next(&b, (uint32_t)(expect[i] / 2));
        assert_int_equal(hi, expect[i]);
    }
}

static void jitter_spreads(void **state)
{
    (void)state;
    fdl_backoff b;
    int distinct = 0;
    uint64_t prev = 0;
    for (uint32_t r = 0; r < 100; r++) {
        fdl_backoff_init(&b, 1000, 60000);
        b.attempt = 3;
        uint64_t d = fdl_backoff_next(&b, r * 2654435761u);
        assert_true(d >= 4000 && d <= 8000);
        distinct += d != prev;
        prev = d;
    }
    assert_true(distinct > 90);
}

static void reset_starts_over(void **state)
{
    (void)state;
    fdl_backoff b;
    fdl_backoff_init(&b, 500, 10000);
    for (int i = 0; i < 10; i++)
        (void)fdl_backoff_next(&b, 7);
    fdl_backoff_reset(&b);
    assert_true(fdl_backoff_next(&b, UINT32_MAX) <= 500);
    fdl_backoff_init(&b, 0, 0);   /* degenerate inputs never yield a zero-length spin */
    assert_true(fdl_backoff_next(&b, 5) <= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(grows_and_caps),
        cmocka_unit_test(jitter_spreads),
        cmocka_unit_test(reset_starts_over),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
