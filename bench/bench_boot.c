/*
 * bench/bench_boot.c — what a device's verified boot costs when a fleet starts.
 *
 *   bench_boot [N] [--own] [--base DIR] [--keep]
 *
 * Makes N devices (default 10000) from one factory (bootloader, keyring, kernel
 * and application images of 64 KiB, signed with software P-256 keys made here,
 * validated and hashed once by fdl_fw_factory_prepare), then measures, per device:
 *   create   fdl_fw_open on an absent directory (fuses, record, root key);
 *   open     fdl_fw_open of the existing storage (what a fleet restart does);
 *   boot     fdl_fw_boot, in three conditions:
 *              cold     caches cleared once, then every device boots: the first
 *                       device pays the reads and the signature checks;
 *              warm     every device boots again (the steady state of a fleet);
 *              nocache  caches cleared before every boot: each boot verifies
 *                       four signatures and hashes four images (what a boot
 *                       would cost without the caches).
 * With --own every device stores its own copy of the images (no shared factory
 * directory): every boot reads and hashes its slots again.
 * Devices live under DIR (default /tmp) in a fresh directory removed at the
 * end unless --keep.
 *
 * Output is plain "name value unit" lines, one per figure.
 */
#include "devices/firmware.h"
#include "sim/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#define PAYLOAD (64u * 1024u)
#define NOCACHE_MAX 1000   /* devices booted without caches: the slow case needs no more */

static mbedtls_entropy_context g_ent;
static mbedtls_ctr_drbg_context g_drbg;

typedef struct key {
    mbedtls_pk_context pk;
    uint8_t pub[FDL_FW_PUB_LEN];
    uint8_t id[FDL_FW_KEYID_LEN];
} key;

static void die(const char *what)
{
    fprintf(stderr, "bench_boot: %s\n", what);
    exit(1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)n);
    return v[i >= n ? n - 1 : i];
}

static void report(const char *name, double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    printf("%s_median_us %.1f\n", name, pct(v, n, 50) * 1e6);
    printf("%s_p99_us %.1f\n", name, pct(v, n, 99) * 1e6);
    printf("%s_max_us %.1f\n", name, v[n - 1] * 1e6);
    printf("%s_total_s %.3f\n", name, sum);
}

static void key_new(key *k)
{
    size_t olen = 0;
    mbedtls_pk_init(&k->pk);
    if (mbedtls_pk_setup(&k->pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
        mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(k->pk), mbedtls_ctr_drbg_random, &g_drbg) != 0 ||
        mbedtls_ecp_write_public_key(mbedtls_pk_ec(k->pk), MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, k->pub,
                                     sizeof k->pub) != 0)
        die("key generation failed");
    fdl_fw_key_id(k->pub, k->id);
}

/* A signed image of tier over payload (malloc'd). */
static uint8_t *image(key *k, unsigned tier, const uint8_t *payload, size_t plen, size_t *len)
{
    fdl_fw_hdr h;
    uint8_t hash[32], der[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t dl = 0;
    memset(&h, 0, sizeof h);
    h.hdr_version = FDL_FW_HDR_VERSION;
    h.tier = (uint8_t)tier;
    h.version = 0x01000000u;
    h.counter = 1;
    h.length = (uint32_t)plen;
    mbedtls_sha256(payload, plen, h.sha256, 0);
    memcpy(h.key_id, k->id, FDL_FW_KEYID_LEN);
    fdl_fwimage_signed_hash(&h, hash);
    if (mbedtls_pk_sign(&k->pk, MBEDTLS_MD_SHA256, hash, 32, der, sizeof der, &dl, mbedtls_ctr_drbg_random,
                        &g_drbg) != 0 ||
        fdl_fw_sig_from_der(der, dl, h.sig) != 0)
        die("signing failed");
    uint8_t *img = malloc(FDL_FW_HDR_LEN + plen);
    if (!img)
        die("out of memory");
    fdl_fwimage_encode_hdr(&h, img);
    memcpy(img + FDL_FW_HDR_LEN, payload, plen);
    *len = FDL_FW_HDR_LEN + plen;
    return img;
}

int main(int argc, char **argv)
{
    size_t n = 10000;
    int own = 0, keep = 0;
    const char *base = "/tmp";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--own") == 0)
            own = 1;
        else if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else if (strcmp(argv[i], "--base") == 0 && i + 1 < argc)
            base = argv[++i];
        else if (argv[i][0] != '-' && strtoul(argv[i], NULL, 10) > 0)
            n = (size_t)strtoul(argv[i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_boot [N] [--own] [--base DIR] [--keep]\n");
            return 2;
        }
    }
    mbedtls_entropy_init(&g_ent);
    mbedtls_ctr_drbg_init(&g_drbg);
    if (mbedtls_ctr_drbg_seed(&g_drbg, mbedtls_entropy_func, &g_ent, (const unsigned char *)"bench_boot", 10) != 0)
        die("DRBG seeding failed");

    char dir[4096], factory[4200], devdir[4400];
    snprintf(dir, sizeof dir, "%s/fdl-bench-boot-XXXXXX", base);
    if (!mkdtemp(dir))
        die("mkdtemp failed");
    snprintf(factory, sizeof factory, "%s/firmware/factory", dir);

    /* The factory: every tier signed with its own key, one keyring. */
    key root, tk[FDL_TIER_COUNT], jobs;
    key_new(&root);
    key_new(&jobs);
    fdl_keyring kr;
    memset(&kr, 0, sizeof kr);
    for (unsigned t = FDL_TIER_KERNEL; t <= FDL_TIER_CONFIG; t++) {
        key_new(&tk[t]);
        fdl_keyring_entry *e = &kr.e[kr.n++];
        e->usage = (uint8_t)t;
        e->state = FDL_KEY_CURRENT;
        memcpy(e->key_id, tk[t].id, FDL_FW_KEYID_LEN);
        memcpy(e->pub, tk[t].pub, FDL_FW_PUB_LEN);
    }
    fdl_keyring_entry *je = &kr.e[kr.n++];
    je->usage = FDL_KEY_USAGE_JOBS;
    je->state = FDL_KEY_CURRENT;
    memcpy(je->key_id, jobs.id, FDL_FW_KEYID_LEN);
    memcpy(je->pub, jobs.pub, FDL_FW_PUB_LEN);
    uint8_t krbuf[FDL_KEYRING_MAX * FDL_KEYRING_ENTRY_LEN + 6];
    size_t krlen = fdl_keyring_encode(&kr, krbuf, sizeof krbuf);
    uint8_t *payload = malloc(PAYLOAD);
    if (!payload || !krlen)
        die("setup failed");
    static const char man[] = "FDL-PAYLOAD 1\ntier=application\nversion=1.0.0\nbehaviour=ok\n";
    for (size_t i = 0; i < PAYLOAD; i++)
        payload[i] = (uint8_t)(i * 131u);
    memcpy(payload, man, sizeof man - 1);
    fdl_fw_factory f;
    memset(&f, 0, sizeof f);
    f.factory_dir = own ? NULL : factory;
    f.image[FDL_TIER_BOOTLOADER] = image(&root, FDL_TIER_BOOTLOADER, payload, PAYLOAD, &f.image_len[1]);
    f.image[FDL_TIER_KEYRING] = image(&root, FDL_TIER_KEYRING, krbuf, krlen, &f.image_len[FDL_TIER_KEYRING]);
    f.image[FDL_TIER_KERNEL] = image(&tk[2], FDL_TIER_KERNEL, payload, PAYLOAD, &f.image_len[2]);
    f.image[FDL_TIER_APPLICATION] = image(&tk[3], FDL_TIER_APPLICATION, payload, PAYLOAD, &f.image_len[3]);
    f.root_pub = root.pub;
    f.secure_boot = true;
    f.debug_disabled = true;
    f.hw_rev = 1;
    char err[512];
    if (fdl_fw_factory_prepare(&f, err, sizeof err) != 0)
        die(err);

    printf("devices %zu\n", n);
    printf("images %s, payload %u bytes each\n", own ? "own copy per device" : "shared factory", PAYLOAD);
    printf("dir %s\n", dir);
    double *t = malloc(n * sizeof *t);
    fdl_fw **fw = calloc(n, sizeof *fw);
    if (!t || !fw)
        die("out of memory");

    for (size_t i = 0; i < n; i++) {
        snprintf(devdir, sizeof devdir, "%s/devices/dev-%06zu/fw", dir, i);
        double t0 = now_s();
        if (fdl_fw_open(devdir, &f, &fw[i], err, sizeof err) != 0)
            die(err);
        t[i] = now_s() - t0;
        fdl_fw_free(fw[i]);
    }
    report("create", t, n);

    for (size_t i = 0; i < n; i++) {
        snprintf(devdir, sizeof devdir, "%s/devices/dev-%06zu/fw", dir, i);
        double t0 = now_s();
        if (fdl_fw_open(devdir, NULL, &fw[i], err, sizeof err) != 0)
            die(err);
        t[i] = now_s() - t0;
    }
    report("open", t, n);

    fdl_fw_cache_clear();
    uint64_t vnow = 1700000000000ull;
    for (size_t i = 0; i < n; i++) {
        double t0 = now_s();
        if (fdl_fw_boot(fw[i], vnow, NULL) != FDL_BOOT_OK)
            die("a device did not boot");
        t[i] = now_s() - t0;
    }
    report("boot_cold", t, n);
    for (size_t i = 0; i < n; i++) {
        double t0 = now_s();
        if (fdl_fw_boot(fw[i], vnow + 1, NULL) != FDL_BOOT_OK)
            die("a device did not boot");
        t[i] = now_s() - t0;
    }
    report("boot_warm", t, n);
    fdl_fw_cache_stats cs;
    fdl_fw_cache_get_stats(&cs);
    printf("cache_sig_hits %llu\ncache_sig_misses %llu\ncache_img_hits %llu\ncache_img_misses %llu\n",
           (unsigned long long)cs.sig_hits, (unsigned long long)cs.sig_misses, (unsigned long long)cs.img_hits,
           (unsigned long long)cs.img_misses);
    size_t m = n < NOCACHE_MAX ? n : NOCACHE_MAX;
    for (size_t i = 0; i < m; i++) {
        fdl_fw_cache_clear();
        double t0 = now_s();
        if (fdl_fw_boot(fw[i], vnow + 2, NULL) != FDL_BOOT_OK)
            die("a device did not boot");
        t[i] = now_s() - t0;
    }
    printf("nocache_devices %zu\n", m);
    report("boot_nocache", t, m);

    for (size_t i = 0; i < n; i++)
        fdl_fw_free(fw[i]);
    fdl_fw_cache_clear();
    free(t);
    free(fw);
    for (unsigned tt = 1; tt < FDL_TIER_COUNT; tt++)
        free((void *)f.image[tt]);
    free(payload);
    mbedtls_pk_free(&root.pk);
    mbedtls_pk_free(&jobs.pk);
    for (unsigned tt = FDL_TIER_KERNEL; tt <= FDL_TIER_CONFIG; tt++)
        mbedtls_pk_free(&tk[tt].pk);
    mbedtls_ctr_drbg_free(&g_drbg);
    mbedtls_entropy_free(&g_ent);
    if (!keep) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "bench_boot: could not remove %s\n", dir);
    }
    return 0;
}
