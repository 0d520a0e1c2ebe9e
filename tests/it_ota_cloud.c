/*
 * tests/it_ota_cloud.c — the OTA cloud actors against a real, defended Mosquitto
 * with the fleetdrill plugin on loopback: the artifact store (svc-artifacts) and
 * the job service (svc-jobs), each with its own certificate and policy.
 *
 * Devices are played by libmosquitto clients with real `flash` device identities
 * (dev-000001 .. dev-000006), held to the default device policy by the broker:
 *  - the store serves exactly the bytes on disk, in blocks, to whoever asks on
 *    its own topic; unknown artifacts and offsets past the end get total 0; a
 *    malformed request is dropped; a device cannot ask on another's topic nor
 *    publish blocks; a tap delays answers (slow retrieval) or runs past the end
 *    (endless data);
 *  - the job service signs documents a device can verify with the job key,
 *    publishes them stage by stage, records every report, and its gate halts a
 *    rollout whose canary fails (later stages never notified, 'pending' in the
 *    registry) and completes one whose devices confirm.
 */
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mosquitto.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/entropy.h>
#include <mbedtls/sha256.h>

#include "cloud/artifacts.h"
#include "cloud/enroll.h"
#include "cloud/jobs.h"
#include "devices/jobdoc.h"
#include "devices/ota.h"
#include "sim/broker.h"
#include "sim/cloudrun.h"
#include "sim/context.h"
#include "sim/vclock.h"

#define N_DEV 6

static char g_dir[512], g_art_dir[700], g_root[700];
static fdl_ctx g_ctx;
static fdl_broker *g_broker;

/* ---- a device played by libmosquitto ---------------------------------------------- */

#define MSG_MAX 256

typedef struct dmsg {
    char topic[128];
    uint8_t *payload;
    size_t len;
} dmsg;

typedef struct tdev {
    char id[32];
    struct mosquitto *m;
    pthread_mutex_t mu;
    dmsg msgs[MSG_MAX];
    int n;
    int connected, subscribed;
} tdev;

static void d_on_connect(struct mosquitto *m, void *ud, int rc)
{
    (void)m;
    tdev *d = ud;
    pthread_mutex_lock(&d->mu);
    d->connected = rc == 0 ? 1 : -1;
    pthread_mutex_unlock(&d->mu);
}

static void d_on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    (void)mid;
    tdev *d = ud;
    pthread_mutex_lock(&d->mu);
    d->subscribed = n == 1 && granted[0] <= 2 ? 1 : -1;
    pthread_mutex_unlock(&d->mu);
}

static void d_on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    tdev *d = ud;
    pthread_mutex_lock(&d->mu);
    if (d->n < MSG_MAX) {
        dmsg *x = &d->msgs[d->n++];
        snprintf(x->topic, sizeof x->topic, "%s", msg->topic);
        x->len = (size_t)msg->payloadlen;
        x->payload = malloc(x->len + 1);
        memcpy(x->payload, msg->payload, x->len);
    }
    pthread_mutex_unlock(&d->mu);
}

static int wait_flag(tdev *d, int *flag, unsigned ms)
{
    for (unsigned i = 0; i < ms / 10; i++) {
        pthread_mutex_lock(&d->mu);
        int v = *flag;
        pthread_mutex_unlock(&d->mu);
        if (v)
            return v;
        usleep(10000);
    }
    return 0;
}

/* Connects device index i (its own identity) and subscribes filter (may be NULL). */
static void tdev_open(tdev *d, uint32_t i, const char *client_id, const char *filter)
{
    char cert[1200], key[1200];
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->mu, NULL);
    fdl_device_id(i, d->id, sizeof d->id);
    fdl_identity_path(&g_ctx.st, d->id, "cert.pem", cert, sizeof cert);
    fdl_identity_path(&g_ctx.st, d->id, "key.pem", key, sizeof key);
    d->m = mosquitto_new(client_id ? client_id : d->id, true, d);
    assert_non_null(d->m);
    assert_int_equal(mosquitto_tls_set(d->m, g_root, NULL, cert, key, NULL), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_tls_opts_set(d->m, 1, "tlsv1.3", NULL), MOSQ_ERR_SUCCESS);
    mosquitto_connect_callback_set(d->m, d_on_connect);
    mosquitto_subscribe_callback_set(d->m, d_on_subscribe);
    mosquitto_message_callback_set(d->m, d_on_message);
    assert_int_equal(mosquitto_connect(d->m, fdl_broker_host(g_broker), fdl_broker_port(g_broker), 30),
                     MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop_start(d->m), MOSQ_ERR_SUCCESS);
    assert_int_equal(wait_flag(d, &d->connected, 5000), 1);
    if (filter) {
        assert_int_equal(mosquitto_subscribe(d->m, NULL, filter, 1), MOSQ_ERR_SUCCESS);
        assert_true(wait_flag(d, &d->subscribed, 5000) != 0);
    }
}

static void tdev_clear(tdev *d)
{
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < d->n; i++)
        free(d->msgs[i].payload);
    d->n = 0;
    pthread_mutex_unlock(&d->mu);
}

static void tdev_close(tdev *d)
{
    mosquitto_disconnect(d->m);
    mosquitto_loop_stop(d->m, true);
    mosquitto_destroy(d->m);
    tdev_clear(d);
    pthread_mutex_destroy(&d->mu);
}

/* Waits until the device holds at least n messages (or ms pass); returns how many. */
static int tdev_wait(tdev *d, int n, unsigned ms)
{
    for (unsigned i = 0; i <= ms / 10; i++) {
        pthread_mutex_lock(&d->mu);
        int have = d->n;
        pthread_mutex_unlock(&d->mu);
        if (have >= n)
            return have;
        usleep(10000);
    }
    pthread_mutex_lock(&d->mu);
    int have = d->n;
    pthread_mutex_unlock(&d->mu);
    return have;
}

static void tdev_pub(tdev *d, const char *topic, const void *p, size_t len)
{
    assert_int_equal(mosquitto_publish(d->m, NULL, topic, (int)len, p, 1, false), MOSQ_ERR_SUCCESS);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Waits (briefly) for a broker log line containing needle. */
static int log_has(const char *needle)
{
    for (int i = 0; i < 60; i++) {
        FILE *f = fopen(fdl_broker_log_path(g_broker), "r");
        char line[1024];
        int found = 0;
        while (f && fgets(line, sizeof line, f))
            found |= strstr(line, needle) != NULL;
        if (f)
            fclose(f);
        if (found)
            return 1;
        usleep(50000);
    }
    return 0;
}

/* ---- fixture ------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    char err[512];
    fdl_test_mkdtemp("ota-cloud", g_dir, sizeof g_dir);
    if (fdl_ctx_open(&g_ctx, g_dir, 1, err, sizeof err) != 0) {
        fprintf(stderr, "ctx: %s\n", err);
        return -1;
    }
    for (uint32_t i = 1; i <= N_DEV; i++) {
        char id[32];
        fdl_device_id(i, id, sizeof id);
        if (fdl_identity_provision(&g_ctx.st, g_ctx.se, g_ctx.pki, id, FDL_PROFILE_FLASH, mbedtls_ctr_drbg_random,
                                   &g_ctx.drbg, err, sizeof err) < 0) {
            fprintf(stderr, "provision: %s\n", err);
            return -1;
        }
    }
    fdl_broker_opts bo;
    fdl_cloud_broker_bufs bufs;
    fdl_broker_opts_init(&bo);
    if (fdl_ctx_open_cloud(&g_ctx, 0, err, sizeof err) != 0 ||
        fdl_cloud_prepare_fleet(&g_ctx, 1, N_DEV, FDL_PROV_DIRECT, NULL, err, sizeof err) != 0 ||
        fdl_cloud_broker_opts(&g_ctx, &bo, &bufs, err, sizeof err) != 0) {
        fprintf(stderr, "cloud: %s\n", err);
        return -1;
    }
    if (fdl_broker_start(&bo, &g_broker, err, sizeof err) != FDL_BROKER_OK) {
        fprintf(stderr, "broker: %s\n", err);
        return -1;
    }
    snprintf(g_root, sizeof g_root, "%s/%s", g_ctx.st.pki_dir, FDL_PKI_ROOT_PEM);
    snprintf(g_art_dir, sizeof g_art_dir, "%s/firmware/artifacts", g_ctx.st.dir);
    mosquitto_lib_init();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_broker_free(g_broker);
    fdl_ctx_close(&g_ctx);
    if (!getenv("FDL_TEST_KEEP"))
        fdl_test_rmrf(g_dir);
    return 0;
}

static fdl_artifacts *start_store(void)
{
    char cert[1200], key[1200], err[512];
    fdl_enroll_actor_paths(g_ctx.st.pki_dir, FDL_ACTOR_ARTIFACTS, cert, key, sizeof cert);
    fdl_artifacts_cfg c = {.host = fdl_broker_host(g_broker), .port = fdl_broker_port(g_broker), .cafile = g_root,
                           .certfile = cert, .keyfile = key, .dir = g_art_dir};
    fdl_artifacts *a = NULL;
    if (fdl_artifacts_start(&c, &a, err, sizeof err) != 0)
        fail_msg("artifacts: %s", err);
    return a;
}

/* ---- the artifact store ------------------------------------------------------------------ */

#define IMG_LEN 10000u

static void store_serves_the_file_in_blocks(void **state)
{
    (void)state;
    char err[256];
    uint8_t img[IMG_LEN];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(fdl_artifacts_put(g_art_dir, "app-1", img, sizeof img, err, sizeof err), 0);
    assert_int_equal(fdl_artifacts_put(g_art_dir, "../x", img, 1, err, sizeof err), -1);
    fdl_artifacts *a = start_store();
    tdev d;
    tdev_open(&d, 1, NULL, "$fleet/ota/dev-000001/block");

    /* The whole image, block by block, as a device asks for it. */
    uint8_t got[IMG_LEN];
    uint32_t off = 0;
    for (int k = 0; off < IMG_LEN && k < 10; k++) {
        char req[64];
        int n = snprintf(req, sizeof req, "app-1 %u %u", off, FDL_OTA_BLOCK);
        tdev_clear(&d);
        tdev_pub(&d, "$fleet/ota/dev-000001/get", req, (size_t)n);
        assert_int_equal(tdev_wait(&d, 1, 5000), 1);
        dmsg *m = &d.msgs[0];
        assert_string_equal(m->topic, "$fleet/ota/dev-000001/block");
        assert_true(m->len >= FDL_OTA_BLOCK_HDR);
        assert_memory_equal(m->payload, FDL_OTA_BLOCK_MAGIC, 4);
        assert_int_equal(be32(m->payload + 4), off);
        assert_int_equal(be32(m->payload + 8), IMG_LEN);
        size_t dl = m->len - FDL_OTA_BLOCK_HDR;
        assert_int_equal(dl, IMG_LEN - off < FDL_OTA_BLOCK ? IMG_LEN - off : FDL_OTA_BLOCK);
        memcpy(got + off, m->payload + FDL_OTA_BLOCK_HDR, dl);
        off += (uint32_t)dl;
    }
    assert_int_equal(off, IMG_LEN);
    assert_memory_equal(got, img, IMG_LEN);

    /* A changed file is served changed at once: the store holds nothing of its own. */
    img[5] ^= 0xff;
    assert_int_equal(fdl_artifacts_put(g_art_dir, "app-1", img, sizeof img, err, sizeof err), 0);
    tdev_clear(&d);
    tdev_pub(&d, "$fleet/ota/dev-000001/get", "app-1 0 16", 10);
    assert_int_equal(tdev_wait(&d, 1, 5000), 1);
    assert_int_equal(d.msgs[0].len, FDL_OTA_BLOCK_HDR + 16);
    assert_int_equal(d.msgs[0].payload[FDL_OTA_BLOCK_HDR + 5], img[5]);

    /* Unknown artifact, offset past the end: total 0, no data. */
    tdev_clear(&d);
    tdev_pub(&d, "$fleet/ota/dev-000001/get", "nope 0 4096", 11);
    tdev_pub(&d, "$fleet/ota/dev-000001/get", "app-1 10000 4096", 16);
    assert_int_equal(tdev_wait(&d, 2, 5000), 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(d.msgs[i].len, FDL_OTA_BLOCK_HDR);
        assert_int_equal(be32(d.msgs[i].payload + 8), 0);
    }

    /* Malformed requests are counted and dropped. */
    fdl_artifacts_stats st0, st1;
    fdl_artifacts_get_stats(a, &st0);
    tdev_clear(&d);
    static const char *const bad[] = {"app-1 0", "app-1  0 1", "app-1 01 5", "app-1 0 1 ", "../app-1 0 1",
                                      "app-1 99999999999 1", "app-1 x 1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        tdev_pub(&d, "$fleet/ota/dev-000001/get", bad[i], strlen(bad[i]));
    tdev_pub(&d, "$fleet/ota/dev-000001/get", "app-1 0 1", 9);   /* a good one after them */
    assert_int_equal(tdev_wait(&d, 1, 5000), 1);
    usleep(200000);
    assert_int_equal(d.n, 1);
    fdl_artifacts_get_stats(a, &st1);
    assert_int_equal(st1.bad_requests - st0.bad_requests, sizeof bad / sizeof *bad);

    /* Evidence: the requests the store saw from this device. */
    fdl_artifacts_req rec[4];
    assert_true(fdl_artifacts_recent(a, "dev-000001", 0, rec, 4) >= 4);
    assert_int_equal(fdl_artifacts_recent(a, "dev-000002", 0, rec, 4), 0);
    tdev_close(&d);
    fdl_artifacts_stop(a);
}

static void devices_reach_only_their_own_ota_topics(void **state)
{
    (void)state;
    fdl_artifacts *a = start_store();
    tdev d2, d3;
    tdev_open(&d2, 2, NULL, "$fleet/ota/dev-000002/block");
    tdev_open(&d3, 3, NULL, NULL);
    /* dev-000003 asks on dev-000002's topic: the broker drops it, the store never sees it. */
    fdl_artifacts_stats st0, st1;
    fdl_artifacts_get_stats(a, &st0);
    tdev_pub(&d3, "$fleet/ota/dev-000002/get", "app-1 0 16", 10);
    assert_true(log_has("denied dev-000003 publish to $fleet/ota/dev-000002/get"));
    /* ... nor can it feed dev-000002 a block of its own. */
    tdev_pub(&d3, "$fleet/ota/dev-000002/block", "FDB1xxxxxxxxjunk", 16);
    assert_true(log_has("denied dev-000003 publish to $fleet/ota/dev-000002/block"));
    usleep(300000);
    fdl_artifacts_get_stats(a, &st1);
    assert_int_equal(st1.requests, st0.requests);
    assert_int_equal(tdev_wait(&d2, 1, 300), 0);
    /* A device cannot subscribe to another's blocks. */
    assert_int_equal(mosquitto_subscribe(d3.m, NULL, "$fleet/ota/dev-000002/block", 1), MOSQ_ERR_SUCCESS);
    assert_int_equal(wait_flag(&d3, &d3.subscribed, 5000), -1);
    tdev_close(&d2);
    tdev_close(&d3);
    fdl_artifacts_stop(a);
}

/* A compromised store: slow answers, then data past the declared size. */
static void slow_tap(void *ud, const char *device, const char *artifact, uint32_t offset, uint32_t asked,
                     uint32_t size, fdl_artifacts_answer *ans)
{
    (void)ud;
    (void)device;
    (void)artifact;
    (void)offset;
    (void)asked;
    (void)size;
    ans->delay_ms = 700;
}

static void endless_tap(void *ud, const char *device, const char *artifact, uint32_t offset, uint32_t asked,
                        uint32_t size, fdl_artifacts_answer *ans)
{
    (void)ud;
    (void)device;
    (void)artifact;
    (void)asked;
    if ((uint64_t)offset + FDL_OTA_BLOCK >= size) {
        ans->len = FDL_OTA_BLOCK;
        ans->extra_blocks = 3;
    }
}

static void taps_play_a_compromised_store(void **state)
{
    (void)state;
    fdl_artifacts *a = start_store();
    tdev d;
    tdev_open(&d, 4, NULL, "$fleet/ota/dev-000004/block");
    fdl_artifacts_tap slow = {.on_request = slow_tap};
    fdl_artifacts_set_tap(a, &slow);
    uint64_t t0 = fdl_now_ns();
    tdev_pub(&d, "$fleet/ota/dev-000004/get", "app-1 0 16", 10);
    assert_int_equal(tdev_wait(&d, 1, 5000), 1);
    assert_true(fdl_now_ns() - t0 >= 650000000u);

    fdl_artifacts_tap endless = {.on_request = endless_tap};
    fdl_artifacts_set_tap(a, &endless);
    tdev_clear(&d);
    tdev_pub(&d, "$fleet/ota/dev-000004/get", "app-1 8192 4096", 15);
    assert_int_equal(tdev_wait(&d, 4, 5000), 4);
    /* A full block from 8192 (the image ends at 10000), then three more nobody asked for. */
    assert_int_equal(d.msgs[0].len, FDL_OTA_BLOCK_HDR + FDL_OTA_BLOCK);
    assert_int_equal(be32(d.msgs[3].payload + 4), 8192 + 3 * FDL_OTA_BLOCK);
    assert_int_equal(be32(d.msgs[3].payload + 8), IMG_LEN);
    fdl_artifacts_set_tap(a, NULL);
    tdev_close(&d);
    fdl_artifacts_stop(a);
}


/* ---- the job service ------------------------------------------------------------------------ */

/* The online job key, in software for the test (cloud/fwsign.h keeps it in a token). */
typedef struct soft_signer {
    mbedtls_pk_context pk;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_entropy_context ent;
    pthread_mutex_t mu;
    uint8_t pub[FDL_FW_PUB_LEN];
    atomic_int signatures;
} soft_signer;

static soft_signer g_signer;
static fdl_keyring g_kr;
static fdl_vclock g_clock;

static int soft_sign(void *ud, const uint8_t *doc, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    soft_signer *ss = ud;
    uint8_t hash[32], sig[FDL_FW_SIG_LEN], kid[FDL_FW_KEYID_LEN];
    mbedtls_mpi r, s;
    mbedtls_mpi_init(&r);
    mbedtls_mpi_init(&s);
    fdl_fw_key_id(ss->pub, kid);
    fdl_jobdoc_signed_hash(doc, len, kid, hash);
    pthread_mutex_lock(&ss->mu);
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(ss->pk);
    int rc = mbedtls_ecdsa_sign(&ec->MBEDTLS_PRIVATE(grp), &r, &s, &ec->MBEDTLS_PRIVATE(d), hash, 32,
                                mbedtls_ctr_drbg_random, &ss->drbg);
    pthread_mutex_unlock(&ss->mu);
    if (rc == 0)
        rc = mbedtls_mpi_write_binary(&r, sig, 32) || mbedtls_mpi_write_binary(&s, sig + 32, 32);
    mbedtls_mpi_free(&r);
    mbedtls_mpi_free(&s);
    atomic_fetch_add(&ss->signatures, 1);
    *out_len = rc == 0 ? fdl_jobdoc_wrap(doc, len, kid, sig, out, cap) : 0;
    return *out_len ? 0 : -1;
}

static void signer_init(void)
{
    soft_signer *ss = &g_signer;
    if (ss->pub[0] == 0x04)
        return;
    pthread_mutex_init(&ss->mu, NULL);
    mbedtls_entropy_init(&ss->ent);
    mbedtls_ctr_drbg_init(&ss->drbg);
    assert_int_equal(mbedtls_ctr_drbg_seed(&ss->drbg, mbedtls_entropy_func, &ss->ent, NULL, 0), 0);
    fdl_test_gen_key(&ss->pk, MBEDTLS_ECP_DP_SECP256R1);
    mbedtls_ecp_keypair *ec = mbedtls_pk_ec(ss->pk);
    size_t olen = 0;
    assert_int_equal(mbedtls_ecp_point_write_binary(&ec->MBEDTLS_PRIVATE(grp), &ec->MBEDTLS_PRIVATE(Q),
                                                    MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, ss->pub, sizeof ss->pub),
                     0);
    assert_int_equal(olen, FDL_FW_PUB_LEN);
    memset(&g_kr, 0, sizeof g_kr);
    g_kr.n = 1;
    g_kr.e[0].usage = FDL_KEY_USAGE_JOBS;
    g_kr.e[0].state = FDL_KEY_CURRENT;
    memcpy(g_kr.e[0].pub, ss->pub, FDL_FW_PUB_LEN);
    fdl_fw_key_id(ss->pub, g_kr.e[0].key_id);
    fdl_vclock_init(&g_clock, 10.0, 1700000000000ull);
}

static fdl_jobs *start_jobs(void)
{
    char cert[1200], key[1200], err[512];
    signer_init();
    fdl_enroll_actor_paths(g_ctx.st.pki_dir, FDL_ACTOR_JOBS, cert, key, sizeof cert);
    fdl_jobs_cfg c = {.host = fdl_broker_host(g_broker), .port = fdl_broker_port(g_broker), .cafile = g_root,
                      .certfile = cert, .keyfile = key, .registry_path = g_ctx.st.registry,
                      .signer = {.sign = soft_sign, .ud = &g_signer}, .clock = &g_clock};
    fdl_jobs *j = NULL;
    if (fdl_jobs_start(&c, &j, err, sizeof err) != 0)
        fail_msg("jobs: %s", err);
    return j;
}

static const char *const k_targets[N_DEV] = {"dev-000001", "dev-000002", "dev-000003",
                                             "dev-000004", "dev-000005", "dev-000006"};

static fdl_job_spec a_spec(const char *id)
{
    fdl_job_spec s;
    memset(&s, 0, sizeof s);
    s.id = id;
    s.tier = FDL_TIER_APPLICATION;
    assert_int_equal(fdl_fw_version_parse("1.1.0", &s.version), 0);
    s.counter = 2;
    s.artifact = "app-1.1.0";
    memset(s.sha256, 0x5a, sizeof s.sha256);
    s.size = 4224;
    s.targets = k_targets;
    s.n_targets = N_DEV;
    s.stages[0] = 10;
    s.stages[1] = 50;
    s.stages[2] = 100;
    s.n_stages = 3;
    s.max_failure = 0.1;
    s.stage_timeout_ms = 10000;
    return s;
}

/* What the fleet does with documents: each device that gets one checks it like
 * firmware would (signature with the job key, target, time) and reports
 * `outcome` for the devices in `bad` (a bitmask of device indices 0..5), `confirmed`
 * for the others; ms bounds the whole exchange. Returns the documents received. */
static int play_devices(tdev *d, const char *job, unsigned bad, const char *outcome, fdl_jobs *j, unsigned ms)
{
    int handled[N_DEV] = {0}, docs = 0;
    for (unsigned t = 0; t < ms / 20; t++) {
        fdl_job_info info;
        if (fdl_jobs_info(j, job, &info) == 0 && info.state != FDL_JOB_RUNNING)
            break;
        for (int i = 0; i < N_DEV; i++) {
            pthread_mutex_lock(&d[i].mu);
            int n = d[i].n;
            pthread_mutex_unlock(&d[i].mu);
            for (; handled[i] < n; handled[i]++) {
                dmsg *m = &d[i].msgs[handled[i]];
                fdl_jobdoc jd;
                assert_int_equal(fdl_jobdoc_parse(m->payload, m->len, &jd), FDL_JOB_OK);
                assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, d[i].id, 1, fdl_vclock_now_ms(&g_clock), 0),
                                 FDL_JOB_OK);
                assert_string_equal(jd.job, job);
                assert_string_equal(jd.artifact, "app-1.1.0");
                assert_int_equal(jd.counter, 2);
                assert_int_equal(jd.size, 4224);
                docs++;
                char topic[96], st[256];
                snprintf(topic, sizeof topic, "$fleet/jobs/%s/status", d[i].id);
                int len = snprintf(st, sizeof st, "{\"job\":\"%s\",\"seq\":%llu,\"step\":\"received\",\"detail\":\"\"}",
                                   job, (unsigned long long)jd.seq);
                tdev_pub(&d[i], topic, st, (size_t)len);
                len = snprintf(st, sizeof st, "{\"job\":\"%s\",\"seq\":%llu,\"step\":\"%s\",\"detail\":\"%s\"}", job,
                               (unsigned long long)jd.seq, (bad >> i) & 1 ? outcome : "confirmed",
                               (bad >> i) & 1 ? "behaviour=crash: trial boot failed, previous slot" : "");
                tdev_pub(&d[i], topic, st, (size_t)len);
            }
        }
        usleep(20000);
    }
    return docs;
}

static void open_fleet(tdev *d)
{
    for (int i = 0; i < N_DEV; i++) {
        char filter[64];
        snprintf(filter, sizeof filter, "$fleet/jobs/%s/notify", k_targets[i]);
        tdev_open(&d[i], (uint32_t)i + 1, NULL, filter);
    }
}

typedef struct row_count {
    int pending, notified, confirmed, reverted, other;
} row_count;

static int count_row(void *ctx, const fdl_reg_ota_line *l)
{
    row_count *c = ctx;
    if (!strcmp(l->step, "pending"))
        c->pending++;
    else if (!strcmp(l->step, "notified"))
        c->notified++;
    else if (!strcmp(l->step, "confirmed"))
        c->confirmed++;
    else if (!strcmp(l->step, "reverted"))
        c->reverted++;
    else
        c->other++;
    return 0;
}

static void rollout_completes_stage_by_stage(void **state)
{
    (void)state;
    fdl_jobs *j = start_jobs();
    tdev d[N_DEV];
    open_fleet(d);
    fdl_job_spec s = a_spec("rollout-ok");
    char id[64], err[256];
    assert_int_equal(fdl_jobs_create(j, &s, id, err, sizeof err), 0);
    assert_string_equal(id, "rollout-ok");
    /* The canary (10 % of 6: one device) is told first, nobody else. */
    assert_int_equal(tdev_wait(&d[0], 1, 5000), 1);
    usleep(200000);
    for (int i = 1; i < N_DEV; i++)
        assert_int_equal(d[i].n, 0);
    assert_int_equal(play_devices(d, id, 0, "confirmed", j, 20000), N_DEV);
    fdl_job_info info;
    assert_int_equal(fdl_jobs_wait(j, id, 10000, &info), 0);
    assert_int_equal(info.state, FDL_JOB_COMPLETED);
    assert_int_equal(info.confirmed, N_DEV);
    assert_int_equal(info.stages[0].devices, 1);
    assert_int_equal(info.stages[1].devices, 2);
    assert_int_equal(info.stages[2].devices, 3);
    assert_true(info.stages[1].published_s >= info.stages[0].gated_s);
    assert_non_null(strstr(info.reason, "6 of 6 devices confirmed"));

    /* The registry has the whole story. */
    fdl_registry *reg = NULL;
    assert_int_equal(fdl_registry_open(g_ctx.st.registry, NULL, &reg), FDL_REG_OK);
    fdl_reg_ota_job rj;
    assert_int_equal(fdl_registry_ota_job_get(reg, id, &rj), FDL_REG_OK);
    assert_string_equal(rj.state, "COMPLETED");
    assert_int_equal(rj.stage, 3);
    row_count c = {0};
    assert_int_equal(fdl_registry_ota_status_list(reg, id, count_row, &c), FDL_REG_OK);
    assert_int_equal(c.confirmed, N_DEV);

    /* A device that repeats itself after its final word (a replayed document it
     * refused) is logged, the rollout's record stays. */
    static const char late[] = "{\"job\":\"rollout-ok\",\"seq\":1,\"step\":\"rejected\","
                               "\"detail\":\"job document replayed\"}";
    tdev_pub(&d[2], "$fleet/jobs/dev-000003/status", late, strlen(late));
    fdl_job_report rep[4];
    for (int i = 0; i < 100 && fdl_jobs_reports(j, "dev-000003", 0, rep, 4) < 3; i++)
        usleep(20000);
    assert_int_equal(fdl_jobs_reports(j, "dev-000003", 0, rep, 4), 3);
    assert_string_equal(rep[2].step, "rejected");
    usleep(200000);
    fdl_reg_ota_line line;
    assert_int_equal(fdl_registry_ota_status_get(reg, id, "dev-000003", &line), FDL_REG_OK);
    assert_string_equal(line.step, "confirmed");
    fdl_jobs_stats st;
    fdl_jobs_get_stats(j, &st);
    assert_int_equal(st.late_reports, 1);
    assert_int_equal(st.documents, 3);
    assert_int_equal(st.published, N_DEV);
    fdl_registry_free(reg);
    for (int i = 0; i < N_DEV; i++)
        tdev_close(&d[i]);
    fdl_jobs_stop(j);
}

static void failing_canary_halts_the_rollout(void **state)
{
    (void)state;
    fdl_jobs *j = start_jobs();
    tdev d[N_DEV];
    open_fleet(d);
    fdl_job_spec s = a_spec("rollout-bad");
    char id[64], err[256];
    assert_int_equal(fdl_jobs_create(j, &s, id, err, sizeof err), 0);
    /* The canary reverts (its trial boot failed). */
    assert_int_equal(play_devices(d, id, 0x3f, "reverted", j, 20000), 1);
    fdl_job_info info;
    assert_int_equal(fdl_jobs_wait(j, id, 10000, &info), 0);
    assert_int_equal(info.state, FDL_JOB_HALTED);
    assert_int_equal(info.stage, 1);
    assert_int_equal(info.reverted, 1);
    assert_int_equal(info.pending, N_DEV - 1);
    assert_non_null(strstr(info.reason, "halted, 5 devices never notified"));
    /* The rest of the fleet was never told anything. */
    usleep(300000);
    for (int i = 1; i < N_DEV; i++)
        assert_int_equal(d[i].n, 0);
    fdl_registry *reg = NULL;
    assert_int_equal(fdl_registry_open(g_ctx.st.registry, NULL, &reg), FDL_REG_OK);
    fdl_reg_ota_job rj;
    assert_int_equal(fdl_registry_ota_job_get(reg, id, &rj), FDL_REG_OK);
    assert_string_equal(rj.state, "HALTED");
    assert_string_equal(rj.reason, info.reason);
    row_count c = {0};
    assert_int_equal(fdl_registry_ota_status_list(reg, id, count_row, &c), FDL_REG_OK);
    assert_int_equal(c.reverted, 1);
    assert_int_equal(c.pending, N_DEV - 1);
    fdl_registry_free(reg);
    for (int i = 0; i < N_DEV; i++)
        tdev_close(&d[i]);
    fdl_jobs_stop(j);
}

static void silent_stage_times_out_and_held_jobs_publish_nothing(void **state)
{
    (void)state;
    fdl_jobs *j = start_jobs();
    tdev d[N_DEV];
    open_fleet(d);
    /* Nobody answers: the canary stage times out, silence counts as failure. */
    fdl_job_spec s = a_spec("rollout-silent");
    s.stage_timeout_ms = 800;
    char id[64], err[256];
    assert_int_equal(fdl_jobs_create(j, &s, id, err, sizeof err), 0);
    fdl_job_info info;
    assert_int_equal(fdl_jobs_wait(j, id, 10000, &info), 0);
    assert_int_equal(info.state, FDL_JOB_HALTED);
    assert_int_equal(info.stages[0].silent, 1);
    assert_non_null(strstr(info.reason, "1 silent"));

    /* A held job: signed and recorded, nothing published; its document can be read back. */
    tdev_clear(&d[0]);
    s = a_spec("held");
    s.hold = 1;
    s.valid_ms = 600000;
    assert_int_equal(fdl_jobs_create(j, &s, id, err, sizeof err), 0);
    assert_int_equal(fdl_jobs_info(j, id, &info), 0);
    assert_int_equal(info.state, FDL_JOB_HELD);
    assert_int_equal(fdl_jobs_wait(j, id, 100, &info), 0);
    usleep(300000);
    assert_int_equal(d[0].n, 0);
    uint8_t buf[4096];
    size_t len = 0;
    uint64_t seq = 0;
    assert_int_equal(fdl_jobs_document(j, id, "dev-000001", buf, sizeof buf, &len, &seq), 0);
    assert_int_equal(fdl_jobs_document(j, id, "dev-000002", buf, sizeof buf, &len, &seq), -1); /* stage 2: never signed */
    fdl_jobdoc jd;
    assert_int_equal(fdl_jobs_document(j, id, "dev-000001", buf, sizeof buf, &len, &seq), 0);
    assert_int_equal(fdl_jobdoc_parse(buf, len, &jd), FDL_JOB_OK);
    assert_int_equal(jd.seq, seq);
    assert_int_equal(jd.expires_ms - jd.issued_ms, 600000);
    /* Issued in the fleet's time: valid now, expired 10 fleet minutes on. */
    uint64_t now = fdl_vclock_now_ms(&g_clock);
    assert_true(jd.issued_ms <= now && now - jd.issued_ms < 60000);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, now, 0), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000001", 1, jd.expires_ms, 0), FDL_JOB_ERR_EXPIRED);
    assert_int_equal(fdl_jobdoc_check(&jd, &g_kr, "dev-000002", 1, fdl_vclock_now_ms(&g_clock) - 1000, 0),
                     FDL_JOB_ERR_NOT_FOR_ME);

    /* Bad specifications are refused before anything is recorded. */
    s = a_spec("bad-stages");
    s.stages[1] = 5;
    assert_int_equal(fdl_jobs_create(j, &s, id, err, sizeof err), -1);
    s = a_spec("bad-target");
    const char *dup[2] = {"dev-000001", "dev-000001"};
    s.targets = dup;
    s.n_targets = 2;
    assert_int_equal(fdl_jobs_create(j, &s, id, err, sizeof err), -1);
    assert_non_null(strstr(err, "listed twice"));
    s = a_spec("held");   /* exists */
    assert_int_equal(fdl_jobs_create(j, &s, id, err, sizeof err), -1);
    for (int i = 0; i < N_DEV; i++)
        tdev_close(&d[i]);
    fdl_jobs_stop(j);
}

static void stage_sizes(void **state)
{
    (void)state;
    uint32_t out[FDL_JOBS_STAGES_MAX];
    const unsigned s3[] = {10, 50, 100};
    assert_int_equal(fdl_jobs_stage_sizes(1000, s3, 3, out), 0);
    assert_int_equal(out[0], 100);
    assert_int_equal(out[1], 400);
    assert_int_equal(out[2], 500);
    assert_int_equal(fdl_jobs_stage_sizes(5, s3, 3, out), 0);
    assert_int_equal(out[0], 1);   /* a canary is never empty */
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 2);
    const unsigned bad1[] = {10, 50}, bad2[] = {50, 10, 100}, bad3[] = {0, 100};
    assert_int_equal(fdl_jobs_stage_sizes(10, bad1, 2, out), -1);
    assert_int_equal(fdl_jobs_stage_sizes(10, bad2, 3, out), -1);
    assert_int_equal(fdl_jobs_stage_sizes(10, bad3, 2, out), -1);
    assert_int_equal(fdl_jobs_stage_sizes(10, NULL, 0, out), 0);
    assert_int_equal(out[0], 10);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_serves_the_file_in_blocks),
        cmocka_unit_test(devices_reach_only_their_own_ota_topics),
        cmocka_unit_test(taps_play_a_compromised_store),
        cmocka_unit_test(stage_sizes),
        cmocka_unit_test(rollout_completes_stage_by_stage),
        cmocka_unit_test(failing_canary_halts_the_rollout),
        cmocka_unit_test(silent_stage_times_out_and_held_jobs_publish_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
