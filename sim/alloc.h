/*
 * sim/alloc.h — the one allocation hook every fleetdrill module allocates through.
 *
 * Tests count allocations (malloc/free balance) and make the Nth allocation fail
 * to exercise error paths. Memory from fdl_malloc/fdl_calloc/fdl_realloc/
 * fdl_strdup is released with fdl_free; fdl_free(NULL) is a no-op.
 */
#ifndef FDL_ALLOC_H
#define FDL_ALLOC_H

#include <stddef.h>
#include <stdint.h>

void *fdl_malloc(size_t n);
void *fdl_calloc(size_t count, size_t size);
void *fdl_realloc(void *p, size_t n);
char *fdl_strdup(const char *s);
void fdl_free(void *p);
/* Overwrites n bytes with zeros in a way the compiler cannot elide (secrets). */
void fdl_wipe(void *p, size_t n);

typedef struct fdl_alloc_stats {
    uint64_t allocs;   /* successful fdl_malloc/calloc/strdup, and realloc of NULL */
    uint64_t frees;    /* fdl_free of a non-NULL pointer */
    uint64_t failed;   /* allocations refused by the fault injector */
} fdl_alloc_stats;

/* Snapshot of the counters (process-wide, thread-safe). */
fdl_alloc_stats fdl_alloc_get_stats(void);
/* Makes the nth allocation from now fail (1 = the next one); 0 disables. */
void fdl_alloc_fail_nth(uint64_t nth);

#endif /* FDL_ALLOC_H */
