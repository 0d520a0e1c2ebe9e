/* tests/test_alloc.c — the allocation hook counts and fails on demand. */
#include "testutil.h"

#include "sim/alloc.h"

static void counts_balance(void **state)
{
    (void)state;
    fdl_alloc_stats a = fdl_alloc_get_stats();
    char *p = fdl_strdup("secret");
    void *q = fdl_calloc(4, 8);
    assert_non_null(p);
    assert_non_null(q);
    fdl_wipe(p, 6);
    assert_int_equal(p[0], 0);
    fdl_free(p);
    fdl_free(q);
    fdl_free(NULL);
    fdl_alloc_stats b = fdl_alloc_get_stats();
    assert_int_equal(b.allocs - a.allocs, 2);
    assert_int_equal(b.frees - a.frees, 2);
}

static void nth_fails(void **state)
{
    (void)state;
    fdl_alloc_fail_nth(2);
    void *a = fdl_malloc(8);
    void *b = fdl_malloc(8);
    void *c = fdl_malloc(8);
    assert_non_null(a);
    assert_null(b);
    assert_non_null(c);
    fdl_free(a);
    fdl_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counts_balance),
        cmocka_unit_test(nth_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
