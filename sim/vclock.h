/*
 * sim/vclock.h — the virtual clock that lets a drill run device time faster than real time.
 *
 * A drill with scale 60 runs an hour of device behaviour (telemetry periods, key
 * rotation, certificate expiry) in a minute of real time. The clock maps real
 * monotonic time since fdl_vclock_init onto simulated Unix time:
 *
 *     sim_now_ms = sim_epoch_ms + (real_ns_since_init * scale) / 1e6
 *
 * Device code asks the clock what time it is (fdl_vclock_now_ms) and converts
 * its simulated delays into real libuv timer delays (fdl_vclock_real_delay_ms).
 *
 * The struct is plain data with no resources: copy it freely, no _free. All
 * functions are thread-safe for concurrent readers (they only read the struct
 * and CLOCK_MONOTONIC) and never allocate.
 */
#ifndef FDL_VCLOCK_H
#define FDL_VCLOCK_H

#include <stdint.h>

typedef struct fdl_vclock {
    uint64_t origin_real_ns; /* fdl_now_ns() at init */
    uint64_t origin_sim_ms;  /* simulated Unix time (ms) at init */
    double scale;            /* simulated ms per real ms, >= 1.0 */
} fdl_vclock;

/* CLOCK_MONOTONIC in nanoseconds (arbitrary origin; for measuring intervals). */
uint64_t fdl_now_ns(void);

/*
 * Starts the clock now. scale: simulated speed, 1.0 = real time, 60.0 = a
 * simulated minute per real second; values below 1.0, NaN and infinities are
 * treated as 1.0 (a drill never runs slower than real time). sim_epoch_ms:
 * the simulated Unix time (ms) at this instant, e.g. the real wall clock now.
 */
void fdl_vclock_init(fdl_vclock *c, double scale, uint64_t sim_epoch_ms);

/* Simulated Unix time in ms: origin_sim_ms + fdl_vclock_sim_elapsed_ms(c). */
uint64_t fdl_vclock_now_ms(const fdl_vclock *c);

/* Simulated ms since init: floor(real elapsed ms * scale). */
uint64_t fdl_vclock_sim_elapsed_ms(const fdl_vclock *c);

/*
 * Real ms a simulated delay takes: ceil(sim_delay_ms / scale), and at least 1
 * when sim_delay_ms > 0 (a non-zero delay never becomes "run now"); 0 for 0.
 * The ceiling forgives a relative rounding error of 1e-14 so that e.g. 11 ms at
 * scale 1.1 gives 10, not 11. Saturates at UINT64_MAX.
 */
uint64_t fdl_vclock_real_delay_ms(const fdl_vclock *c, uint64_t sim_delay_ms);

#endif /* FDL_VCLOCK_H */
