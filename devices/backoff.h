/*
 * devices/backoff.h — reconnect delays: exponential growth with jitter.
 *
 * "Equal jitter": the n-th delay is drawn uniformly from [d/2, d] where
 * d = min(cap, base * 2^n). Half the delay is guaranteed, so a fleet that lost
 * its broker does not come back in lock-step, and no device retries in a tight
 * loop. Delays are in the device's (simulated) milliseconds.
 */
#ifndef FDL_BACKOFF_H
#define FDL_BACKOFF_H

#include <stdint.h>

typedef struct fdl_backoff {
    uint64_t base_ms, cap_ms;
    uint32_t attempt;
} fdl_backoff;

void fdl_backoff_init(fdl_backoff *b, uint64_t base_ms, uint64_t cap_ms);
/* The next delay; rnd is a uniformly random 32-bit value. Advances the attempt counter. */
uint64_t fdl_backoff_next(fdl_backoff *b, uint32_t rnd);
/* After a success: the next failure starts from base again. */
void fdl_backoff_reset(fdl_backoff *b);

#endif
