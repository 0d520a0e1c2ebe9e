/*
 * bench/bench_registry.c — what the broker's CONNECT lookup and JITR provisioning cost.
 *
 *   bench_registry [--sizes N,N,...] [--lookups L] [--jitr J] [--base DIR] [--keep]
 *
 * For each size N (default 10000,100000): a fresh registry under DIR (default
 * /tmp) is filled with N PENDING certificates (one device each) through
 * fdl_registry_cert_record_batch, then L (default 20000) fingerprint lookups
 * are timed one by one — 90% known, 10% unknown, in random order, as a broker
 * would see them — and L device lookups (all certificates of a device).
 *
 * Then, on the first size, J (default 10000) devices are provisioned the way
 * JITR does it: record on first sight (one transaction) and activate with a
 * policy (one transaction), each commit fsynced (synchronous=FULL). The rate of
 * PENDING -> ACTIVE transitions is reported alone and as whole JITR pairs.
 *
 * Output is plain "name value unit" lines, one per figure.
 */
#include "cloud/registry.h"
#include "sim/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZES 8

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, fdl_reg_status st, const fdl_registry *reg)
{
    fprintf(stderr, "bench_registry: %s: %s (%s)\n", what, fdl_reg_strerror(st), fdl_registry_last_error(reg));
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t[0..n) and prints its median and 99th percentile in microseconds. */
static void print_percentiles(const char *name, size_t size, double *t, size_t n)
{
    qsort(t, n, sizeof *t, cmp_double);
    printf("%s_median_%zu %.2f us\n", name, size, t[n / 2] * 1e6);
    printf("%s_p99_%zu %.2f us\n", name, size, t[(n * 99) / 100] * 1e6);
}

static void fp_of(const char *tag, size_t i, char fp[FDL_REG_FP_HEX_LEN + 1])
{
    char seed[64];
    int n = snprintf(seed, sizeof seed, "%s-%zu", tag, i);
    if (fdl_registry_fingerprint((const unsigned char *)seed, (size_t)n, fp) != FDL_REG_OK)
        exit(1);
}

static int count_cb(void *ctx, const char *fp, const fdl_reg_cert_info *info)
{
    (void)fp;
    (void)info;
    (*(size_t *)ctx)++;
    return 0;
}

/* Fills reg with n certificates "fill-i" of devices "dev-i", FDL_REG_BATCH_MAX per transaction. */
static void fill(fdl_registry *reg, size_t n)
{
    fdl_reg_cert_rec *recs = fdl_calloc(FDL_REG_BATCH_MAX, sizeof *recs);
    char(*fps)[FDL_REG_FP_HEX_LEN + 1] = fdl_calloc(FDL_REG_BATCH_MAX, sizeof *fps);
    char(*devs)[24] = fdl_calloc(FDL_REG_BATCH_MAX, sizeof *devs);
    char(*serials)[24] = fdl_calloc(FDL_REG_BATCH_MAX, sizeof *serials);
    if (!recs || !fps || !devs || !serials)
        exit(1);
    for (size_t done = 0; done < n;) {
        size_t k = n - done < FDL_REG_BATCH_MAX ? n - done : FDL_REG_BATCH_MAX;
        for (size_t j = 0; j < k; j++) {
            fp_of("fill", done + j, fps[j]);
            snprintf(devs[j], sizeof devs[j], "dev-%07zu", done + j);
            snprintf(serials[j], sizeof serials[j], "%016zx", done + j + 1);
            recs[j] = (fdl_reg_cert_rec){.fingerprint = fps[j], .serial = serials[j], .device_id = devs[j],
                                         .not_before = 1700000000, .not_after = 1800000000};
        }
        fdl_reg_status st = fdl_registry_cert_record_batch(reg, recs, k, NULL, NULL);
        if (st != FDL_REG_OK)
            die("record batch", st, reg);
        done += k;
    }
    fdl_free(recs);
    fdl_free(fps);
    fdl_free(devs);
    fdl_free(serials);
}

static void bench_lookups(fdl_registry *reg, size_t size, size_t lookups, double *t)
{
    char fp[FDL_REG_FP_HEX_LEN + 1], dev[24];
    fdl_reg_cert_info info;
    size_t found = 0;
    for (size_t i = 0; i < lookups; i++) {
        size_t r = (size_t)rand();
        int known = r % 10 != 0;
        fp_of(known ? "fill" : "absent", (r / 10) % size, fp);
        double t0 = now_s();
        fdl_reg_status st = fdl_registry_cert_status(reg, fp, &info);
        t[i] = now_s() - t0;
        if (st == FDL_REG_OK)
            found++;
        else if (st != FDL_REG_ERR_NOT_FOUND)
            die("lookup", st, reg);
    }
    print_percentiles("lookup_fingerprint", size, t, lookups);
    printf("lookup_found_%zu %zu of %zu\n", size, found, lookups);
    for (size_t i = 0; i < lookups; i++) {
        size_t n = 0;
        snprintf(dev, sizeof dev, "dev-%07zu", (size_t)rand() % size);
        double t0 = now_s();
        fdl_reg_status st = fdl_registry_device_certs(reg, dev, count_cb, &n);
        t[i] = now_s() - t0;
        if (st != FDL_REG_OK || n != 1)
            die("device lookup", st, reg);
    }
    print_percentiles("lookup_device", size, t, lookups);
}

static void bench_jitr(fdl_registry *reg, size_t n)
{
    char fp[FDL_REG_FP_HEX_LEN + 1], dev[24], serial[24];
    double t_record = 0, t_activate = 0;
    for (size_t i = 0; i < n; i++) {
        fp_of("jitr", i, fp);
        snprintf(dev, sizeof dev, "jitr-%07zu", i);
        snprintf(serial, sizeof serial, "%016zx", i + 1);
        fdl_reg_cert_rec rec = {.fingerprint = fp, .serial = serial, .device_id = dev,
                                .not_before = 1700000000, .not_after = 1800000000};
        double t0 = now_s();
        fdl_reg_status st = fdl_registry_cert_record(reg, &rec, NULL);
        double t1 = now_s();
        if (st != FDL_REG_OK)
            die("record", st, reg);
        st = fdl_registry_cert_activate(reg, fp, "device-default", "jitr");
        double t2 = now_s();
        if (st != FDL_REG_OK)
            die("activate", st, reg);
        t_record += t1 - t0;
        t_activate += t2 - t1;
    }
    printf("jitr_devices %zu devices\n", n);
    printf("record_pending_rate %.0f per_s\n", (double)n / t_record);
    printf("activate_rate %.0f per_s\n", (double)n / t_activate);
    printf("jitr_pair_rate %.0f devices_per_s\n", (double)n / (t_record + t_activate));
    printf("jitr_total %.2f s\n", t_record + t_activate);
}

int main(int argc, char **argv)
{
    size_t sizes[MAX_SIZES] = {10000, 100000}, n_sizes = 2, lookups = 20000, jitr = 10000;
    const char *base = "/tmp";
    int keep = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
            char *p = argv[++i];
            n_sizes = 0;
            while (*p && n_sizes < MAX_SIZES) {
                sizes[n_sizes++] = strtoul(p, &p, 10);
                if (*p == ',')
                    p++;
            }
        } else if (strcmp(argv[i], "--lookups") == 0 && i + 1 < argc) {
            lookups = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--jitr") == 0 && i + 1 < argc) {
            jitr = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--base") == 0 && i + 1 < argc) {
            base = argv[++i];
        } else if (strcmp(argv[i], "--keep") == 0) {
            keep = 1;
        } else {
            fprintf(stderr, "usage: %s [--sizes N,N] [--lookups L] [--jitr J] [--base DIR] [--keep]\n", argv[0]);
            return 2;
        }
    }
    if (lookups == 0 || n_sizes == 0)
        return 2;
    double *t = fdl_calloc(lookups, sizeof *t);
    if (!t)
        return 1;
    srand(42);
    for (size_t s = 0; s < n_sizes; s++) {
        char dir[512], path[600], cmd[700];
        fdl_registry *reg = NULL;
        snprintf(dir, sizeof dir, "%s/fdl-bench-registry-XXXXXX", base);
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(path, sizeof path, "%s/registry.db", dir);
        fdl_reg_status st = fdl_registry_open(path, NULL, &reg);
        if (st != FDL_REG_OK)
            die("open", st, reg);
        st = fdl_registry_policy_put(reg, "device-default", "allow publish telemetry/${device}", 1);
        if (st != FDL_REG_OK)
            die("policy", st, reg);
        double t0 = now_s();
        fill(reg, sizes[s]);
        printf("fill_%zu %.2f s\n", sizes[s], now_s() - t0);
        bench_lookups(reg, sizes[s], lookups, t);
        if (s == 0 && jitr)
            bench_jitr(reg, jitr);
        fdl_registry_free(reg);
        if (keep) {
            fprintf(stderr, "kept %s\n", dir);
        } else {
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", dir);
        }
    }
    fdl_free(t);
    return 0;
}
