/* sim/vclock.c — real-to-simulated time mapping (see vclock.h). */
#include "sim/vclock.h"

#include <math.h>
#include <time.h>

/* 2^64 as a double: the first value a uint64_t cannot hold. */
#define TWO_POW_64 18446744073709551616.0

uint64_t fdl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double sane_scale(double scale)
{
    /* !(scale >= 1.0) also catches NaN. */
    if (!(scale >= 1.0) || isinf(scale))
        return 1.0;
    return scale;
}

/* Converts a non-negative double to uint64_t, saturating instead of overflowing (UB). */
static uint64_t sat_u64(double v)
{
    if (!(v > 0.0))
        return 0;
    if (v >= TWO_POW_64)
        return UINT64_MAX;
    return (uint64_t)v;
}

void fdl_vclock_init(fdl_vclock *c, double scale, uint64_t sim_epoch_ms)
{
    c->origin_real_ns = fdl_now_ns();
    c->origin_sim_ms = sim_epoch_ms;
    c->scale = sane_scale(scale);
}

uint64_t fdl_vclock_sim_elapsed_ms(const fdl_vclock *c)
{
    uint64_t now = fdl_now_ns();
    uint64_t real_ns = now > c->origin_real_ns ? now - c->origin_real_ns : 0;
    double scale = sane_scale(c->scale);
    if (scale == 1.0)
        return real_ns / 1000000u; /* exact, no floating point on the common path */
    return sat_u64(floor((double)real_ns / 1e6 * scale));
}

uint64_t fdl_vclock_now_ms(const fdl_vclock *c)
{
    uint64_t el = fdl_vclock_sim_elapsed_ms(c);
    return el > UINT64_MAX - c->origin_sim_ms ? UINT64_MAX : c->origin_sim_ms + el;
}

uint64_t fdl_vclock_real_delay_ms(const fdl_vclock *c, uint64_t sim_delay_ms)
{
    if (sim_delay_ms == 0)
        return 0;
    double scale = sane_scale(c->scale);
    if (scale == 1.0)
        return sim_delay_ms;
    double q = (double)sim_delay_ms / scale;
    /*
     * scale is usually a decimal like 1.1 that a double holds only approximately,
     * so an exact quotient may come out a hair above an integer; forgive that
     * before rounding up, or every such timer would fire a millisecond late.
     */
    double fl = floor(q);
    uint64_t r = sat_u64(q - fl <= q * 1e-14 ? fl : ceil(q));
    return r ? r : 1;
}
