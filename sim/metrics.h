/*
 * sim/metrics.h — latency histograms and process figures (memory, CPU, file limits).
 *
 * fdl_hist is a log-linear histogram in the style of HdrHistogram: values below
 * 256 us are counted exactly; above that each power of two is split into 128
 * equal sub-buckets, so a bucket is at most 1/128 of the values it holds wide
 * and a reported percentile is within 0.4% of a recorded value (always <= 1%).
 * The range is 0 .. FDL_HIST_MAX_US (one hour); larger values are counted as one
 * hour for percentiles (fdl_hist_max and fdl_hist_mean still see the exact
 * value). Memory is fixed (about 26 KiB, one allocation) and fdl_hist_add is O(1)
 * with no allocation, so a hot path can record every message.
 *
 * A histogram is not thread-safe: one writer at a time, or merge per-thread
 * histograms with fdl_hist_merge. Readers accept NULL and then return 0.
 */
#ifndef FDL_METRICS_H
#define FDL_METRICS_H

#include <stdint.h>

/* Largest value a histogram resolves: one hour in microseconds. */
#define FDL_HIST_MAX_US 3600000000ull

typedef struct fdl_hist fdl_hist;

/* A new, empty histogram, or NULL when out of memory. Free with fdl_hist_free. */
fdl_hist *fdl_hist_new(void);
/* Frees h; NULL is a no-op. */
void fdl_hist_free(fdl_hist *h);

/* Records one value (microseconds). O(1), never allocates; NULL h is a no-op. */
void fdl_hist_add(fdl_hist *h, uint64_t value_us);
/* Number of values recorded. */
uint64_t fdl_hist_count(const fdl_hist *h);
/*
 * The value at percentile p (0..100; clamped, NaN counts as 0): the smallest
 * recorded value v such that at least p% of the values are <= v, as resolved by
 * the buckets (relative error <= 1%), and never outside [min, max] recorded, so
 * p=0 is the exact minimum and p=100 the exact maximum (clamped to one hour).
 * 0 when empty.
 */
uint64_t fdl_hist_percentile(const fdl_hist *h, double p);
/* Exact largest value recorded (not clamped); 0 when empty. */
uint64_t fdl_hist_max(const fdl_hist *h);
/* Exact arithmetic mean of the values recorded (not clamped); 0.0 when empty. */
double fdl_hist_mean(const fdl_hist *h);
/* Adds every value recorded in from to into; from is unchanged. NULLs are no-ops. */
void fdl_hist_merge(fdl_hist *into, const fdl_hist *from);

/* Peak resident set size of this process (VmHWM in /proc/self/status), KiB; 0 if unknown. */
uint64_t fdl_rss_peak_kib(void);
/* Current resident set size (VmRSS), KiB; 0 if unknown. */
uint64_t fdl_rss_now_kib(void);
/* CPU time used by this process so far, user + system, seconds (getrusage). */
double fdl_cpu_seconds(void);

/*
 * Raises the soft RLIMIT_NOFILE toward min(want, hard limit); a simulator holds
 * one or more sockets per device, and the default soft limit (often 1024) is far
 * below a fleet. Never lowers the soft limit. When the hard limit is unlimited,
 * the kernel's fs.nr_open caps the result. Returns 0 and stores the soft limit
 * now in effect in *got (got may be NULL), or -errno from getrlimit/setrlimit
 * (then *got is left unchanged).
 */
int fdl_raise_nofile_limit(uint64_t want, uint64_t *got);

#endif /* FDL_METRICS_H */
