/*
 * bench/bench_se.c — how the secure element scales with the number of device tokens.
 *
 *   bench_se N [--partition] [--signs S] [--backend file|db] [--base DIR] [--keep]
 *   bench_se N [--partition] [--signs S] --reuse DIR   (a directory kept by --keep)
 *
 * Creates N devices in a fresh SoftHSM2 token directory under DIR (default
 * /tmp; /dev/shm measures a tmpfs token store), then
 * restarts PKCS#11 and measures what a fleet start-up does: C_Initialize with
 * N tokens present, the first label lookup (the one slot scan), opening all N
 * keys, signing round-robin across all of them, closing them, C_Finalize.
 *
 * Layouts: by default one token per device ("dev-NNNNNN", key "device-key");
 * with --partition, one token "fleet" holding N keys "dev-NNNNNN". Each
 * device has its own user PIN (wiped after use).
 *
 * Output is plain "name value unit" lines, one per figure, so runs for
 * different N can be pasted side by side.
 */
#include "devices/se.h"
#include "fdl_buildcfg.h"
#include "sim/alloc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#define SO_PIN "bench-so-pin"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, fdl_se_status st, const fdl_se_module *m)
{
    fprintf(stderr, "bench_se: %s: %s (CK_RV 0x%lx)\n", what, fdl_se_strerror(st), m ? fdl_se_last_rv(m) : 0ul);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Percentile of a sorted array (nearest rank). */
static double pct(const double *v, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)n);
    if (i >= n)
        i = n - 1;
    return v[i];
}

static void names(int partition, size_t i, char *token, size_t tcap, char *key, size_t kcap)
{
    if (partition) {
        snprintf(token, tcap, "fleet");
        snprintf(key, kcap, "dev-%06zu", i);
    } else {
        snprintf(token, tcap, "dev-%06zu", i);
        snprintf(key, kcap, "device-key");
    }
}

/* The device's user PIN; the caller wipes it. */
static void device_pin(int partition, size_t i, char *pin, size_t cap)
{
    if (partition)
        snprintf(pin, cap, "fleet-pin");
    else
        snprintf(pin, cap, "pin-%06zu", i);
}

static long dir_kib(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "du -sk '%s' 2>/dev/null", dir);
    FILE *p = popen(cmd, "r");
    long kib = -1;
    if (p) {
        if (fscanf(p, "%ld", &kib) != 1)
            kib = -1;
        pclose(p);
    }
    return kib;
}

static long proc_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t fl = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':')
            v = strtol(line + fl + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* Our open file descriptors (SoftHSM's file backend should hold none per token). */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3; /* ".", ".." and the directory stream itself */
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* figures appear as they are measured */
    size_t n = 0, signs = 20000;
    int partition = 0, keep = 0;
    const char *backend = "file", *base = "/tmp", *reuse = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--partition") == 0)
            partition = 1;
        else if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else if (strcmp(argv[i], "--signs") == 0 && i + 1 < argc)
            signs = (size_t)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--reuse") == 0 && i + 1 < argc)
            reuse = argv[++i];
        else if (strcmp(argv[i], "--base") == 0 && i + 1 < argc)
            base = argv[++i];
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            backend = argv[++i];
        else
            n = (size_t)strtoul(argv[i], NULL, 10);
    }
    if (n == 0 || n > 1000000 || signs == 0) {
        fprintf(stderr, "usage: bench_se N [--partition] [--signs S] [--backend file|db] [--base DIR] [--keep]\n"
                        "       bench_se N [--partition] [--signs S] --reuse DIR\n");
        return 2;
    }

    char dir[256], tokens[300], conf[300], cmd[700];
    if (reuse) {
        snprintf(dir, sizeof dir, "%s", reuse);
        keep = 1;
    } else {
        snprintf(dir, sizeof dir, "%s/fdl-bench-se-XXXXXX", base);
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
    }
    snprintf(tokens, sizeof tokens, "%s/tokens", dir);
    snprintf(conf, sizeof conf, "%s/softhsm2.conf", dir);
    if (!reuse) {
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tokens);
        if (system(cmd) != 0)
            return 1;
        FILE *cf = fopen(conf, "w");
        if (!cf)
            return 1;
        fprintf(cf, "directories.tokendir = %s\nobjectstore.backend = %s\nlog.level = ERROR\n"
                    "slots.removable = false\n", tokens, backend);
        fclose(cf);
    }

    printf("layout %s\n", partition ? "partition" : "token-per-device");
    printf("devices %zu\n", n);
    printf("backend %s\n", backend);
    printf("tokendir %s%s\n", tokens, reuse ? " (reused)" : "");

    fdl_se_module *m = NULL;
    fdl_se_status st;
    double t0, tb;
    char token[40], key[40], pin[32];
    size_t tenth = n >= 10 ? n / 10 : 1;
    double t_first = 0, t_last = 0, t_tok = 0, t_gen = 0;
    if (!reuse) {
        t0 = now_s();
        st = fdl_se_module_open(FDL_SOFTHSM2_MODULE, conf, &m);
        double t_open_empty = now_s() - t0;
        if (st != FDL_SE_OK) {
            /* No module object exists on failure, so there is no CK_RV to show. */
            printf("module_open_empty FAILED %s\n", fdl_se_strerror(st));
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (!keep && system(cmd) != 0)
                fprintf(stderr, "bench_se: could not remove %s\n", dir);
            return 1;
        }
        printf("module_open_empty_ms %.2f\n", t_open_empty * 1e3);
        /* ---- create -------------------------------------------------------- */
        t0 = now_s();
        tb = t0;
        if (partition && (st = fdl_se_token_create(m, "fleet", SO_PIN, "fleet-pin")) != FDL_SE_OK)
            die("token_create", st, m);
        for (size_t i = 0; i < n; i++) {
            if (i == tenth)
                t_first = now_s() - tb;
            if (i == n - tenth)
                tb = now_s();
            names(partition, i, token, sizeof token, key, sizeof key);
            device_pin(partition, i, pin, sizeof pin);
            double a = now_s();
            if (!partition && (st = fdl_se_token_create(m, token, SO_PIN, pin)) != FDL_SE_OK)
                die("token_create", st, m);
            double b = now_s();
            fdl_se_key *k = NULL;
            if ((st = fdl_se_keygen(m, token, pin, key, &k)) != FDL_SE_OK)
                die("keygen", st, m);
            fdl_se_key_free(k);
            t_tok += b - a;
            t_gen += now_s() - b;
            fdl_wipe(pin, sizeof pin);
        }
        double t_create = now_s() - t0;
        t_last = now_s() - tb;
        printf("create_total_s %.2f\n", t_create);
        printf("create_per_device_ms %.3f\n", t_create * 1e3 / (double)n);
        printf("create_rate_per_s %.1f\n", (double)n / t_create);
        printf("create_token_init_ms_per_device %.3f\n", t_tok * 1e3 / (double)n);
        printf("create_keygen_ms_per_device %.3f\n", t_gen * 1e3 / (double)n);
        printf("create_first10pct_ms_per_device %.3f\n", t_first * 1e3 / (double)tenth);
        printf("create_last10pct_ms_per_device %.3f\n", t_last * 1e3 / (double)tenth);
        fdl_se_module_free(m);
        m = NULL;

        long kib = dir_kib(tokens);
        printf("tokendir_kib %ld\n", kib);
        printf("tokendir_kib_per_device %.1f\n", (double)kib / (double)n);
    }

    /* ---- restart -------------------------------------------------------- */
    t0 = now_s();
    if ((st = fdl_se_module_open(FDL_SOFTHSM2_MODULE, conf, &m)) != FDL_SE_OK)
        die("module_open", st, m);
    double t_init = now_s() - t0;
    printf("module_open_with_n_tokens_ms %.2f\n", t_init * 1e3);

    names(partition, 0, token, sizeof token, key, sizeof key);
    t0 = now_s();
    if (!fdl_se_token_exists(m, token))
        die("token_exists after restart", FDL_SE_ERR_NOT_FOUND, m);
    printf("first_lookup_scan_ms %.2f\n", (now_s() - t0) * 1e3);
    t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        names(partition, i, token, sizeof token, key, sizeof key);
        if (!fdl_se_token_exists(m, token))
            die("token_exists", FDL_SE_ERR_NOT_FOUND, m);
    }
    printf("lookup_after_scan_us %.3f\n", (now_s() - t0) * 1e6 / (double)n);

    /* ---- open all -------------------------------------------------------- */
    fdl_se_key **keys = fdl_calloc(n, sizeof *keys);
    if (!keys)
        die("calloc", FDL_SE_ERR_NOMEM, m);
    t0 = tb = now_s();
    for (size_t i = 0; i < n; i++) {
        if (i == tenth)
            t_first = now_s() - tb;
        if (i == n - tenth)
            tb = now_s();
        names(partition, i, token, sizeof token, key, sizeof key);
        device_pin(partition, i, pin, sizeof pin);
        if ((st = fdl_se_key_open(m, token, pin, key, &keys[i])) != FDL_SE_OK)
            die("key_open", st, m);
        fdl_wipe(pin, sizeof pin);
    }
    double t_openall = now_s() - t0;
    t_last = now_s() - tb;
    printf("open_all_s %.3f\n", t_openall);
    printf("open_per_key_ms %.3f\n", t_openall * 1e3 / (double)n);
    printf("open_first10pct_ms_per_key %.3f\n", t_first * 1e3 / (double)tenth);
    printf("open_last10pct_ms_per_key %.3f\n", t_last * 1e3 / (double)tenth);
    printf("rss_kib_all_open %ld\n", proc_status_kib("VmRSS"));
    printf("fds_all_open %d\n", open_fds());

    /* ---- sign -------------------------------------------------------- */
    uint8_t hash[32], sig[80];
    size_t sig_len;
    double *lat = fdl_malloc(signs * sizeof *lat);
    if (!lat)
        die("malloc", FDL_SE_ERR_NOMEM, m);
    mbedtls_sha256((const unsigned char *)"bench", 5, hash, 0);
    for (size_t i = 0; i < 200; i++) /* warm-up */
        if ((st = fdl_se_key_sign(keys[i % n], hash, sizeof hash, sig, sizeof sig, &sig_len)) != FDL_SE_OK)
            die("sign", st, m);
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: round-robin over all N keys; pass 1: key 0 only (baseline). */
        t0 = now_s();
        for (size_t i = 0; i < signs; i++) {
            fdl_se_key *k = keys[pass == 0 ? i % n : 0];
            hash[0] = (uint8_t)i;
            double a = now_s();
            if ((st = fdl_se_key_sign(k, hash, sizeof hash, sig, sizeof sig, &sig_len)) != FDL_SE_OK)
                die("sign", st, m);
            lat[i] = now_s() - a;
        }
        double total = now_s() - t0;
        qsort(lat, signs, sizeof *lat, cmp_double);
        const char *tag = pass == 0 ? "sign_roundrobin" : "sign_one_key";
        printf("%s_count %zu\n", tag, signs);
        printf("%s_median_us %.1f\n", tag, pct(lat, signs, 50) * 1e6);
        printf("%s_p99_us %.1f\n", tag, pct(lat, signs, 99) * 1e6);
        printf("%s_per_s %.0f\n", tag, (double)signs / total);
    }
    fdl_free(lat);

    /* ---- close -------------------------------------------------------- */
    t0 = now_s();
    for (size_t i = 0; i < n; i++)
        fdl_se_key_free(keys[i]);
    printf("free_all_keys_s %.3f\n", now_s() - t0);
    fdl_free(keys);
    t0 = now_s();
    fdl_se_module_free(m);
    printf("module_free_ms %.2f\n", (now_s() - t0) * 1e3);

    if (!keep) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_se: could not remove %s\n", dir);
    } else {
        printf("kept %s (SOFTHSM2_CONF=%s)\n", dir, conf);
    }
    return 0;
}
