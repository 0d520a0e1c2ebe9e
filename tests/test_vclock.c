/* tests/test_vclock.c — the virtual clock maps real time onto scaled simulated time. */
#include "testutil.h"

#include "sim/vclock.h"

#include <math.h>
#include <time.h>

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void now_ns_is_monotonic(void **state)
{
    (void)state;
    uint64_t a = fdl_now_ns();
    sleep_ms(5);
    uint64_t b = fdl_now_ns();
    assert_true(b >= a + 5000000u);
    assert_true(b < a + 5000000000u);
}

static void init_sets_fields(void **state)
{
    (void)state;
    fdl_vclock c;
    uint64_t before = fdl_now_ns();
    fdl_vclock_init(&c, 60.0, 1700000000000ull);
    uint64_t after = fdl_now_ns();
    assert_true(c.origin_real_ns >= before && c.origin_real_ns <= after);
    assert_int_equal(c.origin_sim_ms, 1700000000000ull);
    assert_true(c.scale == 60.0);
    /* Right after init the simulated clock stands at the epoch (give it 1 s of slack). */
    uint64_t now = fdl_vclock_now_ms(&c);
    assert_true(now >= 1700000000000ull && now < 1700000001000ull);
}

static void bad_scale_means_real_time(void **state)
{
    (void)state;
    fdl_vclock c;
    fdl_vclock_init(&c, 0.5, 0);
    assert_true(c.scale == 1.0);
    fdl_vclock_init(&c, NAN, 0);
    assert_true(c.scale == 1.0);
    fdl_vclock_init(&c, INFINITY, 0);
    assert_true(c.scale == 1.0);
    fdl_vclock_init(&c, -3.0, 0);
    assert_true(c.scale == 1.0);
}

/* A clock whose origin lies a known real time in the past gives exact figures. */
static void elapsed_is_scaled(void **state)
{
    (void)state;
    fdl_vclock c = {.origin_real_ns = fdl_now_ns() - 2000000000ull, /* 2 s ago */
                    .origin_sim_ms = 1000, .scale = 30.0};
    uint64_t el = fdl_vclock_sim_elapsed_ms(&c);
    assert_true(el >= 60000 && el < 60000 + 30 * 1000); /* 60 s, plus < 1 s real slack */
    uint64_t now = fdl_vclock_now_ms(&c);
    assert_true(now >= 61000 && now < 61000 + 30 * 1000);

    fdl_vclock r = {.origin_real_ns = fdl_now_ns() - 1500000000ull, .origin_sim_ms = 0,
                    .scale = 1.0};
    el = fdl_vclock_sim_elapsed_ms(&r);
    assert_true(el >= 1500 && el < 2500);
}

static void elapsed_follows_real_sleep(void **state)
{
    (void)state;
    fdl_vclock c;
    fdl_vclock_init(&c, 10.0, 5000);
    sleep_ms(50);
    uint64_t el = fdl_vclock_sim_elapsed_ms(&c);
    assert_true(el >= 500);
    assert_true(el < 10000);
    assert_true(fdl_vclock_now_ms(&c) >= 5500);
}

static void real_delay_rounds_up(void **state)
{
    (void)state;
    fdl_vclock c = {.origin_real_ns = 0, .origin_sim_ms = 0, .scale = 10.0};
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 0), 0);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 1), 1);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 9), 1);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 10), 1);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 11), 2);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 15), 2);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 1000), 100);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 1001), 101);

    c.scale = 3.0;
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 1000), 334);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 3000), 1000);

    /* 1.1 is inexact in binary; the quotient must still not round up to 11. */
    c.scale = 1.1;
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 11), 10);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 12), 11);

    c.scale = 1.0;
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 7), 7);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, UINT64_MAX), UINT64_MAX);

    c.scale = 1e6;
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 1), 1);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, 3600000), 4);
    assert_int_equal(fdl_vclock_real_delay_ms(&c, UINT64_MAX), 18446744073710ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(now_ns_is_monotonic),
        cmocka_unit_test(init_sets_fields),
        cmocka_unit_test(bad_scale_means_real_time),
        cmocka_unit_test(elapsed_is_scaled),
        cmocka_unit_test(elapsed_follows_real_sleep),
        cmocka_unit_test(real_delay_rounds_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
