/* devices/backoff.c — exponential backoff with equal jitter (see backoff.h). */
#include "devices/backoff.h"

void fdl_backoff_init(fdl_backoff *b, uint64_t base_ms, uint64_t cap_ms)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
    b->attempt = 0;
}

uint64_t fdl_backoff_next(fdl_backoff *b, uint32_t rnd)
{
    uint64_t d = b->base_ms;
    for (uint32_t i = 0; i < b->attempt && d < b->cap_ms; i++)
        d *= 2;
    if (d > b->cap_ms)
        d = b->cap_ms;
    if (b->attempt < 64)
        b->attempt++;
    uint64_t half = d / 2;
    return half + (uint64_t)rnd % (d - half + 1);
}

void fdl_backoff_reset(fdl_backoff *b)
{
    b->attempt = 0;
}
