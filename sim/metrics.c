/* sim/metrics.c — log-linear histogram and process figures (see metrics.h). */
#include "sim/metrics.h"

#include "sim/alloc.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/*
 * Bucket layout. Values 0..LINEAR-1 have one bucket each. A value v >= LINEAR
 * with top bit e (2^e <= v < 2^(e+1)) lands in octave e, which is split into
 * SUB equal buckets of width 2^(e - SUB_BITS); the index is found from e and the
 * SUB_BITS bits below the top bit, so adding is O(1). FDL_HIST_MAX_US < 2^32, so
 * octaves LINEAR_BITS..31 cover the whole range.
 */
#define SUB_BITS    7
#define SUB         (1u << SUB_BITS)            /* 128 sub-buckets per octave */
#define LINEAR_BITS (SUB_BITS + 1)
#define LINEAR      (1u << LINEAR_BITS)         /* 256 exact buckets */
#define TOP_BIT     31
#define N_BUCKETS   (LINEAR + (TOP_BIT - LINEAR_BITS + 1) * SUB)

struct fdl_hist {
    uint64_t count;
    uint64_t min, max;   /* exact, unclamped */
    double sum;          /* exact enough for a mean; a uint64_t could overflow */
    uint64_t buckets[N_BUCKETS];
};

static unsigned bucket_of(uint64_t v)
{
    if (v > FDL_HIST_MAX_US)
        v = FDL_HIST_MAX_US;
    if (v < LINEAR)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (e - SUB_BITS)) - SUB;
    return LINEAR + (e - LINEAR_BITS) * SUB + sub;
}

/* The value reported for a bucket: its middle, which halves the worst-case error. */
static uint64_t bucket_value(unsigned i)
{
    if (i < LINEAR)
        return i;
    unsigned e = (i - LINEAR) / SUB + LINEAR_BITS;
    uint64_t sub = (i - LINEAR) % SUB + SUB;
    uint64_t width = 1ull << (e - SUB_BITS);
    return sub * width + width / 2;
}

fdl_hist *fdl_hist_new(void)
{
    fdl_hist *h = fdl_calloc(1, sizeof *h);
    if (h)
        h->min = UINT64_MAX;
    return h;
}

void fdl_hist_free(fdl_hist *h)
{
    fdl_free(h);
}

void fdl_hist_add(fdl_hist *h, uint64_t value_us)
{
    if (!h)
        return;
    h->buckets[bucket_of(value_us)]++;
    h->count++;
    h->sum += (double)value_us;
    if (value_us < h->min)
        h->min = value_us;
    if (value_us > h->max)
        h->max = value_us;
}

uint64_t fdl_hist_count(const fdl_hist *h)
{
    return h ? h->count : 0;
}

uint64_t fdl_hist_max(const fdl_hist *h)
{
    return h && h->count ? h->max : 0;
}

double fdl_hist_mean(const fdl_hist *h)
{
    return h && h->count ? h->sum / (double)h->count : 0.0;
}

uint64_t fdl_hist_percentile(const fdl_hist *h, double p)
{
    if (!h || h->count == 0)
        return 0;
    if (!(p > 0.0))
        p = 0.0;
    if (p > 100.0)
        p = 100.0;
    /*
     * The rank (1-based) of the value we want: ceil(p% of count), at least 1.
     * p like 99.9 is inexact in binary, so forgive a tiny relative error before
     * rounding up, or p99.9 of 1000 values would pick the 1000th, not the 999th.
     */
    double x = p * (double)h->count / 100.0;
    double r = ceil(x - x * 1e-14);
    uint64_t rank = r < 1.0 ? 1 : (r >= (double)h->count ? h->count : (uint64_t)r);

    /* The extremes are known exactly; no need to approximate them by a bucket. */
    uint64_t lo = h->min > FDL_HIST_MAX_US ? FDL_HIST_MAX_US : h->min;
    uint64_t hi = h->max > FDL_HIST_MAX_US ? FDL_HIST_MAX_US : h->max;
    if (rank == 1)
        return lo;
    if (rank == h->count)
        return hi;

    uint64_t v = 0, seen = 0;
    for (unsigned i = 0; i < N_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            v = bucket_value(i);
            break;
        }
    }
    /* A bucket's middle may lie outside what was recorded; stay inside. */
    if (v < lo)
        v = lo;
    if (v > hi)
        v = hi;
    return v;
}

void fdl_hist_merge(fdl_hist *into, const fdl_hist *from)
{
    if (!into || !from || from->count == 0)
        return;
    for (unsigned i = 0; i < N_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

/* Reads "<field>:   <n> kB" from /proc/self/status; 0 when absent. */
static uint64_t proc_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return 0;
    size_t flen = strlen(field);
    char line[256];
    uint64_t kib = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            unsigned long long v;
            if (sscanf(line + flen + 1, "%llu", &v) == 1)
                kib = v;
            break;
        }
    }
    fclose(f);
    return kib;
}

uint64_t fdl_rss_peak_kib(void)
{
    return proc_status_kib("VmHWM");
}

uint64_t fdl_rss_now_kib(void)
{
    return proc_status_kib("VmRSS");
}

double fdl_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0.0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* fs.nr_open: the most a soft limit may be set to when the hard limit is unlimited. */
static uint64_t nr_open(void)
{
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    unsigned long long v = 0;
    if (f) {
        if (fscanf(f, "%llu", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v ? v : 1048576; /* the kernel's default */
}

int fdl_raise_nofile_limit(uint64_t want, uint64_t *got)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    uint64_t target = want;
    if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max)
        target = rl.rlim_max;
    if (rl.rlim_max == RLIM_INFINITY) {
        uint64_t cap = nr_open();
        if (target > cap)
            target = cap;
    }
    if (rl.rlim_cur != RLIM_INFINITY && target > rl.rlim_cur) {
        struct rlimit nl = {.rlim_cur = (rlim_t)target, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) != 0)
            return -errno;
        rl.rlim_cur = nl.rlim_cur;
    }
    if (got)
        *got = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    return 0;
}
