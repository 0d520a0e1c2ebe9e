/* sim/alloc.c — counting, fault-injecting allocation hook (see alloc.h). */
#include "sim/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_uint_fast64_t n_allocs, n_frees, n_failed, fail_at;

static int should_fail(void)
{
    uint_fast64_t at = atomic_load(&fail_at);
    if (at == 0)
        return 0;
    if (at == 1) {
        atomic_store(&fail_at, 0);
        atomic_fetch_add(&n_failed, 1);
        return 1;
    }
    atomic_fetch_sub(&fail_at, 1);
    return 0;
}

void *fdl_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        atomic_fetch_add(&n_allocs, 1);
    return p;
}

void *fdl_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p)
        atomic_fetch_add(&n_allocs, 1);
    return p;
}

void *fdl_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    void *q = realloc(p, n ? n : 1);
    if (q && !p)
        atomic_fetch_add(&n_allocs, 1);
    return q;
}

char *fdl_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = fdl_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void fdl_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_add(&n_frees, 1);
    free(p);
}

void fdl_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

fdl_alloc_stats fdl_alloc_get_stats(void)
{
    fdl_alloc_stats s = {atomic_load(&n_allocs), atomic_load(&n_frees), atomic_load(&n_failed)};
    return s;
}

void fdl_alloc_fail_nth(uint64_t nth)
{
    atomic_store(&fail_at, nth);
}
