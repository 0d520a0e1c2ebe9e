/* sim/fleet.c — worker loops, admission control and run figures (see fleet.h). */
#include "sim/fleet.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include "cloud/otamsg.h"
#include "sim/alloc.h"
#include "sim/fsutil.h"
#include "sim/vclock.h"

static volatile sig_atomic_t g_stop_requested;

void fdl_fleet_request_stop(void)
{
    g_stop_requested = 1;
}

int fdl_fleet_stop_requested(void)
{
    return g_stop_requested != 0;
}

/* ---- live view ----------------------------------------------------------- */

typedef struct live_dev {
    atomic_int online, revoked;
    atomic_uint n_online, n_refused;
    atomic_ullong acked, last_online_ns, last_offline_ns, last_refused_ns;
    atomic_int last_fail;
    atomic_int recovery, trial;
} live_dev;

struct fdl_fleet_live {
    uint32_t n;
    atomic_int running;
    live_dev *d;
    /* Firmware views: written at each boot and OTA report (rare), under one lock. */
    pthread_mutex_t fw_mu;
    fdl_fleet_fw_view *fw;
};

fdl_fleet_live *fdl_fleet_live_new(uint32_t n_devices)
{
    fdl_fleet_live *l = fdl_calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->d = fdl_calloc(n_devices ? n_devices : 1, sizeof *l->d);
    l->fw = fdl_calloc(n_devices ? n_devices : 1, sizeof *l->fw);
    if (!l->d || !l->fw) {
        fdl_free(l->d);
        fdl_free(l->fw);
        fdl_free(l);
        return NULL;
    }
    pthread_mutex_init(&l->fw_mu, NULL);
    l->n = n_devices;
    return l;
}

void fdl_fleet_live_free(fdl_fleet_live *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->fw_mu);
    fdl_free(l->d);
    fdl_free(l->fw);
    fdl_free(l);
}

int fdl_fleet_live_fw(const fdl_fleet_live *l, uint32_t i, fdl_fleet_fw_view *out)
{
    if (!l || i >= l->n)
        return -1;
    pthread_mutex_lock((pthread_mutex_t *)&l->fw_mu);
    *out = l->fw[i];
    pthread_mutex_unlock((pthread_mutex_t *)&l->fw_mu);
    return 0;
}

int fdl_fleet_live_get(const fdl_fleet_live *l, uint32_t i, fdl_fleet_dev_view *out)
{
    if (!l || i >= l->n)
        return -1;
    live_dev *d = &l->d[i];
    out->online = atomic_load(&d->online);
    out->revoked = atomic_load(&d->revoked);
    out->n_online = atomic_load(&d->n_online);
    out->n_refused = atomic_load(&d->n_refused);
    out->acked = atomic_load(&d->acked);
    out->last_online_ns = atomic_load(&d->last_online_ns);
    out->last_offline_ns = atomic_load(&d->last_offline_ns);
    out->last_refused_ns = atomic_load(&d->last_refused_ns);
    out->last_fail = atomic_load(&d->last_fail);
    return 0;
}

void fdl_fleet_live_totals_get(const fdl_fleet_live *l, fdl_fleet_live_totals *out)
{
    memset(out, 0, sizeof *out);
    if (!l)
        return;
    out->devices = l->n;
    out->running = atomic_load(&l->running);
    for (uint32_t i = 0; i < l->n; i++) {
        live_dev *d = &l->d[i];
        out->online += atomic_load(&d->online) != 0;
        out->ever_online += atomic_load(&d->n_online) != 0;
        out->revoked += atomic_load(&d->revoked) != 0;
        out->recovery += atomic_load(&d->recovery) != 0;
        out->trial += atomic_load(&d->trial) != 0;
        out->acked += atomic_load(&d->acked);
    }
}

/* The live entry of device d, or NULL without a live view. */
static live_dev *live_of(const fdl_fleet_cfg *cfg, const fdl_device *d)
{
    return cfg->live && d->index < cfg->live->n ? &cfg->live->d[d->index] : NULL;
}

static void live_failed(live_dev *l, const fdl_device *d, fdl_device_fail why)
{
    if (!l)
        return;
    uint64_t now = fdl_now_ns();
    atomic_store(&l->last_fail, (int)why);
    if (why == FDL_FAIL_MQTT_REFUSED || why == FDL_FAIL_TLS_ALERT) {
        atomic_fetch_add(&l->n_refused, 1);
        atomic_store(&l->last_refused_ns, now);
    }
    atomic_store(&l->revoked, d->revoked ? 1 : 0);
}

struct fleet;

typedef struct worker {
    struct fleet *fl;
    unsigned idx;
    pthread_t th;
    uv_loop_t loop;
    uv_async_t wake;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    fdl_device_env env;
    uint32_t first, count;      /* slice of the fleet arrays */
    uint32_t *queue;            /* FIFO of device indices waiting for admission */
    uint32_t qhead, qlen;
    unsigned connecting, max_connecting;
    int pumping, stopping;
    uint32_t started, stopped;
    fdl_hist *hs, *conn, *ack;
    atomic_uint online, ever_online, load_failed, loaded;
    atomic_ullong failed_attempts, acked;
    atomic_ullong last_first_online_ns;
    /* The claim credential, parsed per worker: mbedTLS caches precomputed curve
     * points inside the key on first use, so a key is not shared across threads. */
    mbedtls_x509_crt claim_cert;
    mbedtls_pk_context claim_key;
    int has_claim;
    char load_error[200];
} worker;

typedef struct fleet {
    const fdl_fleet_cfg *cfg;
    fdl_vclock clock;
    mbedtls_x509_crt trust;
    fdl_device *devs;
    fdl_identity *ids;
    fdl_fw **fws;               /* firmware storage per device (NULL without a firmware model) */
    uint8_t *usable;            /* identity loaded */
    worker *w;
    unsigned nw;
    atomic_uint workers_loaded; /* workers that finished loading identities */
    atomic_int go;              /* 1: connect; -1: abort before connecting */
    atomic_int stop;
    uint64_t start_ns;
} fleet;

void fdl_fleet_cfg_defaults(fdl_fleet_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->n_devices = 200;
    cfg->broker_host = "127.0.0.1";
    cfg->server_name = "localhost";
    cfg->time_scale = 1.0;
    cfg->duration_ms = 20000;
    cfg->max_connecting = 128;
    cfg->params.telemetry_interval_ms = 5000;
    cfg->params.backoff_base_ms = 1000;
    cfg->params.backoff_cap_ms = 60000;
    cfg->params.connect_real_timeout_ms = 15000;
    cfg->params.keepalive_s = 60;
    cfg->params.telemetry_qos = 1;
}

/* ---- admission ----------------------------------------------------------- */

static void pump(worker *w)
{
    if (w->pumping)
        return;   /* an admit that failed synchronously re-enters here; the outer loop continues */
    w->pumping = 1;
    while (!w->stopping && w->qlen > 0 && w->connecting < w->max_connecting) {
        uint32_t i = w->queue[w->qhead];
        w->qhead = (w->qhead + 1) % w->count;
        w->qlen--;
        fdl_device *d = &w->fl->devs[i];
        if (d->state != FDL_DEV_WAITING)
            continue;
        w->connecting++;
        fdl_device_admit(d);
    }
    w->pumping = 0;
}

static void hook_want_connect(fdl_device *d, void *ud)
{
    worker *w = ud;
    if (w->stopping)
        return;
    /* Each device is queued at most once at a time (it waits in WAITING until admitted). */
    w->queue[(w->qhead + w->qlen) % w->count] = d->index;
    w->qlen++;
    pump(w);
}

static void hook_attempt_done(fdl_device *d, bool online, fdl_device_fail why, void *ud)
{
    worker *w = ud;
    live_dev *l = live_of(w->fl->cfg, d);
    w->connecting--;
    if (online && d->claiming) {
        /* Connected with the claim credential: not online yet, but no longer connecting. */
    } else if (online) {
        if (l) {
            atomic_store(&l->last_online_ns, fdl_now_ns());
            atomic_fetch_add(&l->n_online, 1);
            atomic_store(&l->revoked, 0);
            atomic_store(&l->online, 1);
        }
        atomic_fetch_add(&w->online, 1);
        fdl_hist_add(w->hs, d->handshake_us);
        fdl_hist_add(w->conn, d->connect_us);
        if (d->n_online == 1) {
            atomic_fetch_add(&w->ever_online, 1);
            atomic_store(&w->last_first_online_ns, fdl_now_ns());
        }
    } else {
        live_failed(l, d, why);
        atomic_fetch_add(&w->failed_attempts, 1);
    }
    pump(w);
}

static void hook_offline(fdl_device *d, fdl_device_fail why, void *ud)
{
    worker *w = ud;
    live_dev *l = live_of(w->fl->cfg, d);
    if (l) {
        atomic_store(&l->online, 0);
        atomic_store(&l->last_offline_ns, fdl_now_ns());
        live_failed(l, d, why);
    }
    atomic_fetch_sub(&w->online, 1);
}

static void hook_puback(fdl_device *d, uint64_t lat, void *ud)
{
    worker *w = ud;
    live_dev *l = live_of(w->fl->cfg, d);
    if (l)
        atomic_fetch_add(&l->acked, 1);
    fdl_hist_add(w->ack, lat);
    atomic_fetch_add(&w->acked, 1);
}

static void hook_booted(fdl_device *d, const fdl_boot_record *rec, void *ud)
{
    worker *w = ud;
    fdl_fleet_live *lv = w->fl->cfg->live;
    live_dev *l = live_of(w->fl->cfg, d);
    if (!l)
        return;
    int trial = rec->outcome == FDL_BOOT_TRIAL;
    atomic_store(&l->recovery, rec->outcome == FDL_BOOT_RECOVERY);
    atomic_store(&l->trial, trial);
    pthread_mutex_lock(&lv->fw_mu);
    fdl_fleet_fw_view *v = &lv->fw[d->index];
    v->boots++;
    v->recovery = rec->outcome == FDL_BOOT_RECOVERY;
    v->trial = trial;
    v->reverted += rec->reverted;
    const unsigned app = FDL_TIER_APPLICATION;
    v->app_version = rec->tier[app].ran ? rec->tier[app].version : 0;
    v->app_counter = rec->tier[app].ran ? rec->tier[app].counter : 0;
    if (rec->tier[app].ran)
        memcpy(v->app_sha256, rec->tier[app].sha256, 32);
    else
        memset(v->app_sha256, 0, 32);
    v->app_floor = d->fw ? fdl_fw_floor(d->fw, app) : 0;
    pthread_mutex_unlock(&lv->fw_mu);
}

static void hook_ota_report(fdl_device *d, const uint8_t *json, size_t len, void *ud)
{
    worker *w = ud;
    fdl_fleet_live *lv = w->fl->cfg->live;
    if (!live_of(w->fl->cfg, d))
        return;
    /* The device's own report, read by the parser the job service reads it with. */
    char topic[FDL_DEVICE_ID_MAX + 24];
    snprintf(topic, sizeof topic, "$fleet/jobs/%s/status", d->id);
    fdl_otamsg_report rep;
    if (fdl_otamsg_parse_report(topic, json, len, &rep) != FDL_OTAMSG_OK)
        return;
    live_dev *l = live_of(w->fl->cfg, d);
    int confirmed = !strcmp(rep.step, "confirmed");
    if (confirmed)
        atomic_store(&l->trial, 0);
    pthread_mutex_lock(&lv->fw_mu);
    fdl_fleet_fw_view *v = &lv->fw[d->index];
    if (confirmed) {
        v->trial = 0;
        v->app_floor = d->fw ? fdl_fw_floor(d->fw, FDL_TIER_APPLICATION) : v->app_floor;
    }
    v->reports++;
    snprintf(v->job, sizeof v->job, "%s", rep.job);
    v->seq = rep.seq;
    snprintf(v->step, sizeof v->step, "%s", rep.step);
    snprintf(v->detail, sizeof v->detail, "%s", rep.detail);
    v->last_report_ns = fdl_now_ns();
    pthread_mutex_unlock(&lv->fw_mu);
}

static int hook_store_cert(fdl_device *d, const char *pem, size_t len, void *ud)
{
    worker *w = ud;
    char path[FDL_PATH_MAX + 64];
    fdl_identity_path(w->fl->cfg->state, d->id, "cert.pem", path, sizeof path);
    return fdl_write_file_atomic(path, pem, len, 0644);
}

static const fdl_device_hooks worker_hooks = {
    .want_connect = hook_want_connect,
    .attempt_done = hook_attempt_done,
    .offline = hook_offline,
    .puback = hook_puback,
    .store_cert = hook_store_cert,
    .booted = hook_booted,
    .ota_report = hook_ota_report,
};

/* ---- stopping ------------------------------------------------------------ */

static void wake_closed(uv_handle_t *h)
{
    (void)h;
}

static void device_stopped(fdl_device *d)
{
    worker *w = d->env->hooks_ud;
    if (++w->stopped == w->started)
        uv_close((uv_handle_t *)&w->wake, wake_closed);
}

static void wake_cb(uv_async_t *a)
{
    worker *w = a->data;
    if (!atomic_load(&w->fl->stop) || w->stopping)
        return;
    w->stopping = 1;
    if (w->started == 0) {
        uv_close((uv_handle_t *)&w->wake, wake_closed);
        return;
    }
    for (uint32_t i = w->first; i < w->first + w->count; i++)
        if (w->fl->usable[i])
            fdl_device_stop(&w->fl->devs[i], device_stopped);
}

/* ---- worker thread ------------------------------------------------------- */

static void *worker_main(void *arg)
{
    worker *w = arg;
    fleet *fl = w->fl;
    const fdl_fleet_cfg *cfg = fl->cfg;

    /* Identities: token logins and certificate parsing, in parallel across workers. */
    for (uint32_t i = w->first; i < w->first + w->count; i++) {
        char id[FDL_DEVICE_ID_MAX], err[200] = "device id too long";
        fdl_device_id(cfg->first_index + i, id, sizeof id);
        fdl_identity *idn = &fl->ids[i];
        if (fdl_identity_open(cfg->state, cfg->se, id, w->has_claim ? FDL_IDENTITY_CERT_OPTIONAL : 0, idn,
                              mbedtls_ctr_drbg_random, &w->drbg, err, sizeof err) != 0 ||
            fdl_device_init(&fl->devs[i], i, id, &w->env, idn->has_cert ? &idn->cert : NULL, idn->key) != 0) {
            if (atomic_fetch_add(&w->load_failed, 1) == 0)
                snprintf(w->load_error, sizeof w->load_error, "%s", err);
            continue;
        }
        if (cfg->factory) {
            char dir[FDL_PATH_MAX + 64];
            fdl_identity_path(cfg->state, id, "fw", dir, sizeof dir);
            if (fdl_fw_open(dir, cfg->factory, &fl->fws[i], err, sizeof err) != 0 ||
                fdl_device_set_firmware(&fl->devs[i], fl->fws[i]) != 0) {
                if (atomic_fetch_add(&w->load_failed, 1) == 0)
                    snprintf(w->load_error, sizeof w->load_error, "%s: firmware: %s", id, err);
                continue;
            }
        }
        if (!idn->has_cert)
            fdl_device_set_claim(&fl->devs[i], &w->claim_cert, &w->claim_key);
        if (cfg->distinct_sources) {
            /* 127.(10 + k / 62500).(k / 250 % 250).(k % 250 + 1): every device its own loopback address. */
            uint32_t k = cfg->first_index + i;
            uint32_t ip = (127u << 24) | ((10u + k / 62500u) % 256u) << 16 | ((k / 250u) % 250u) << 8 | (k % 250u + 1u);
            fl->devs[i].source_ip = htonl(ip);
        }
        fl->usable[i] = 1;
        atomic_fetch_add(&w->loaded, 1);
    }
    atomic_fetch_add(&fl->workers_loaded, 1);
    while (atomic_load(&fl->go) == 0)
        usleep(1000);
    if (atomic_load(&fl->go) > 0) {
        /* libuv timers count from the loop's cached time, which dates from before the
         * identity loading above (16 s for 10,000 tokens): refresh it before arming any. */
        uv_update_time(&w->loop);
        for (uint32_t i = w->first; i < w->first + w->count; i++) {
            if (!fl->usable[i])
                continue;
            w->started++;
            fdl_device_start(&fl->devs[i]);
        }
    }
    /* A stop requested before we got here is picked up on the first loop iteration. */
    uv_async_send(&w->wake);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int worker_init(fleet *fl, worker *w, unsigned idx, uint32_t first, uint32_t count)
{
    const fdl_fleet_cfg *cfg = fl->cfg;
    memset(w, 0, sizeof *w);
    w->fl = fl;
    w->idx = idx;
    w->first = first;
    w->count = count;
    w->max_connecting = cfg->max_connecting / fl->nw ? cfg->max_connecting / fl->nw : 1;
    mbedtls_entropy_init(&w->entropy);
    mbedtls_ctr_drbg_init(&w->drbg);
    char pers[32];
    snprintf(pers, sizeof pers, "fleetdrill-worker-%u", idx);
    if (mbedtls_ctr_drbg_seed(&w->drbg, mbedtls_entropy_func, &w->entropy, (const unsigned char *)pers,
                              strlen(pers)) != 0)
        return -1;
    if (uv_loop_init(&w->loop) != 0)
        return -1;
    uv_async_init(&w->loop, &w->wake, wake_cb);
    w->wake.data = w;
    mbedtls_x509_crt_init(&w->claim_cert);
    mbedtls_pk_init(&w->claim_key);
    if (cfg->claim_cert_file) {
        if (mbedtls_x509_crt_parse_file(&w->claim_cert, cfg->claim_cert_file) != 0 ||
            mbedtls_pk_parse_keyfile(&w->claim_key, cfg->claim_key_file, NULL, mbedtls_ctr_drbg_random,
                                     &w->drbg) != 0)
            return -1;
        w->has_claim = 1;
    }
    w->queue = fdl_calloc(count ? count : 1, sizeof *w->queue);
    w->hs = fdl_hist_new();
    w->conn = fdl_hist_new();
    w->ack = fdl_hist_new();
    if (!w->queue || !w->hs || !w->conn || !w->ack)
        return -1;
    w->env.loop = &w->loop;
    w->env.clock = &fl->clock;
    w->env.trust = &fl->trust;
    w->env.broker_host = cfg->broker_host;
    w->env.broker_port = cfg->broker_port;
    w->env.server_name = cfg->server_name;
    w->env.f_rng = mbedtls_ctr_drbg_random;
    w->env.p_rng = &w->drbg;
    w->env.params = cfg->params;
    w->env.hooks = &worker_hooks;
    w->env.hooks_ud = w;
    w->env.verify_none = cfg->verify_none;
    w->env.ota = cfg->ota;
    return 0;
}

static void worker_free(worker *w)
{
    if (w->queue) {
        uv_loop_close(&w->loop);
    }
    fdl_free(w->queue);
    fdl_hist_free(w->hs);
    fdl_hist_free(w->conn);
    fdl_hist_free(w->ack);
    mbedtls_x509_crt_free(&w->claim_cert);
    mbedtls_pk_free(&w->claim_key);
    mbedtls_ctr_drbg_free(&w->drbg);
    mbedtls_entropy_free(&w->entropy);
}

static double secs_since(uint64_t t0)
{
    return (double)(fdl_now_ns() - t0) / 1e9;
}

int fdl_fleet_run(const fdl_fleet_cfg *cfg, fdl_fleet_result *res, fdl_fleet_progress_cb progress, void *ud,
                  char *err, size_t errcap)
{
    int ret = -1;
    fleet fl;
    memset(&fl, 0, sizeof fl);
    memset(res, 0, sizeof *res);
    fl.cfg = cfg;
    mbedtls_x509_crt_init(&fl.trust);
    uint32_t n = cfg->n_devices;
    unsigned started_threads = 0;
    uint64_t t0 = fdl_now_ns();

    if (mbedtls_x509_crt_parse_file(&fl.trust, cfg->trust_file) != 0) {
        snprintf(err, errcap, "cannot parse trust anchor %s", cfg->trust_file);
        goto cleanup;
    }
    if (cfg->clock)
        fl.clock = *cfg->clock;   /* plain data: a copy reads the same time */
    else
        fdl_vclock_init(&fl.clock, cfg->time_scale, (uint64_t)time(NULL) * 1000u);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    fl.nw = cfg->threads ? cfg->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
    if (fl.nw > 16)
        fl.nw = 16;
    if (fl.nw > n)
        fl.nw = n ? n : 1;
    res->threads = fl.nw;
    fl.devs = fdl_calloc(n ? n : 1, sizeof *fl.devs);
    fl.ids = fdl_calloc(n ? n : 1, sizeof *fl.ids);
    fl.fws = fdl_calloc(n ? n : 1, sizeof *fl.fws);
    fl.usable = fdl_calloc(n ? n : 1, 1);
    fl.w = fdl_calloc(fl.nw, sizeof *fl.w);
    if (!fl.devs || !fl.ids || !fl.fws || !fl.usable || !fl.w) {
        snprintf(err, errcap, "out of memory for %u devices", n);
        goto cleanup;
    }
    res->rss_before_kib = fdl_rss_now_kib();
    uint32_t per = n / fl.nw, extra = n % fl.nw, first = 0;
    for (unsigned i = 0; i < fl.nw; i++) {
        uint32_t count = per + (i < extra);
        if (worker_init(&fl, &fl.w[i], i, first, count) != 0) {
            snprintf(err, errcap, "cannot set up worker %u", i);
            fl.nw = i + 1;
            goto cleanup;
        }
        first += count;
    }
    for (unsigned i = 0; i < fl.nw; i++) {
        if (pthread_create(&fl.w[i].th, NULL, worker_main, &fl.w[i]) != 0)
            break;
        started_threads++;
    }
    if (started_threads != fl.nw) {
        /* The workers that did start are told to abort in cleanup (go = -1). */
        snprintf(err, errcap, "cannot start worker threads");
        atomic_store(&fl.go, -1);
        atomic_store(&fl.stop, 1);
        goto cleanup;
    }

    /* Wait until every worker has loaded its identities (token logins). */
    while (atomic_load(&fl.workers_loaded) < started_threads)
        usleep(2000);
    res->load_s = secs_since(t0);
    uint32_t usable = 0;
    for (unsigned i = 0; i < fl.nw; i++) {
        usable += atomic_load(&fl.w[i].loaded);
        res->load_failed += atomic_load(&fl.w[i].load_failed);
    }
    if (res->load_failed) {
        for (unsigned i = 0; i < fl.nw; i++)
            if (fl.w[i].load_error[0]) {
                snprintf(err, errcap, "%u device identities could not be loaded, e.g. %s", res->load_failed,
                         fl.w[i].load_error);
                break;
            }
    }
    fl.start_ns = fdl_now_ns();
    double cpu0 = fdl_cpu_seconds();
    atomic_store(&fl.go, 1);
    if (cfg->live)
        atomic_store(&cfg->live->running, 1);

    int all_seen = 0;
    while (!g_stop_requested && !(cfg->stop && atomic_load(cfg->stop))) {
        usleep(100000);
        uint32_t online = 0, ever = 0;
        uint64_t failed = 0, acked = 0;
        for (unsigned i = 0; i < fl.nw; i++) {
            online += atomic_load(&fl.w[i].online);
            ever += atomic_load(&fl.w[i].ever_online);
            failed += atomic_load(&fl.w[i].failed_attempts);
            acked += atomic_load(&fl.w[i].acked);
        }
        double el = secs_since(fl.start_ns);
        if (progress)
            progress(ud, online, ever, (uint32_t)failed, acked, el);
        if (!all_seen && usable > 0 && ever == usable) {
            all_seen = 1;
            uint64_t last = 0;
            for (unsigned i = 0; i < fl.nw; i++) {
                uint64_t l = atomic_load(&fl.w[i].last_first_online_ns);
                last = l > last ? l : last;
            }
            res->all_connected_s = (double)(last - fl.start_ns) / 1e9;
            res->cpu_connect_s = fdl_cpu_seconds() - cpu0;
            res->rss_connected_kib = fdl_rss_now_kib();
            if (cfg->stop_when_all_online)
                break;
        }
        if (cfg->duration_ms && el * 1000.0 >= (double)cfg->duration_ms)
            break;
        if (usable == 0)
            break;
    }
    res->interrupted = g_stop_requested != 0;
    if (!all_seen) {
        res->cpu_connect_s = fdl_cpu_seconds() - cpu0;
        res->rss_connected_kib = fdl_rss_now_kib();
    }
    ret = 0;

cleanup:
    if (cfg->live)
        atomic_store(&cfg->live->running, 0);
    atomic_store(&fl.stop, 1);
    if (atomic_load(&fl.go) == 0)
        atomic_store(&fl.go, -1);
    for (unsigned i = 0; i < started_threads; i++)
        uv_async_send(&fl.w[i].wake);
    for (unsigned i = 0; i < started_threads; i++)
        pthread_join(fl.w[i].th, NULL);
    res->wall_s = secs_since(t0);
    res->cpu_s = fdl_cpu_seconds();
    res->rss_peak_kib = fdl_rss_peak_kib();

    if (ret == 0) {
        fdl_hist *hs = fdl_hist_new(), *cn = fdl_hist_new(), *ak = fdl_hist_new();
        for (unsigned i = 0; i < fl.nw; i++) {
            fdl_hist_merge(hs, fl.w[i].hs);
            fdl_hist_merge(cn, fl.w[i].conn);
            fdl_hist_merge(ak, fl.w[i].ack);
        }
        res->devices = n;
        fdl_hist *pv = fdl_hist_new();
        uint64_t boot_ns = 0;
        uint64_t prov_first = UINT64_MAX, prov_last = 0;
        for (uint32_t i = 0; i < n; i++) {
            fdl_device *d = &fl.devs[i];
            if (!fl.usable[i]) {
                res->failed++;
                res->fail_by_reason[FDL_FAIL_LOCAL]++;
                continue;
            }
            res->attempts += d->n_attempts;
            res->published += d->mqtt.n_published;
            res->acked += d->mqtt.n_acked;
            res->commands_received += d->n_commands;
            res->claims_sent += d->n_claims;
            res->malformed_in += d->mqtt.n_malformed;
            res->boots += d->n_boots;
            boot_ns += d->boot_ns;
            res->recovery_at_end += d->fw && d->n_boots && fdl_fw_in_recovery(d->fw);
            if (d->ota) {
                fdl_ota_stats os;
                fdl_ota_get_stats(d->ota, &os);
                res->ota_jobs += os.jobs;
                res->ota_rejected += os.rejected;
                res->ota_failed += os.failed;
                res->ota_written += os.written;
                res->ota_confirmed += os.confirmed;
                res->ota_reverted += os.reverted;
            }
            if (d->revoked) {
                if (!res->revoked_at_end++)
                    snprintf(res->revoked_example, sizeof res->revoked_example, "%s", d->id);
            }
            if (d->n_online > 0) {
                res->connected++;
                if (d->refused_before_online > 0 || d->claimed) {
                    res->registered++;
                    res->claimed += d->claimed;
                    fdl_hist_add(pv, (d->first_online_ns - d->first_attempt_ns) / 1000u);
                    prov_first = d->first_attempt_ns < prov_first ? d->first_attempt_ns : prov_first;
                    prov_last = d->first_online_ns > prov_last ? d->first_online_ns : prov_last;
                }
            } else {
                res->failed++;
                res->fail_by_reason[d->last_fail]++;
                if (!res->fail_example[d->last_fail][0])
                    snprintf(res->fail_example[d->last_fail], sizeof res->fail_example[0], "%s: %s", d->id,
                             d->last_error[0] ? d->last_error : "never admitted before the run ended");
            }
        }
        for (unsigned i = 0; i < fl.nw; i++)
            res->online_at_end += atomic_load(&fl.w[i].online);
        if (res->boots)
            res->boot_us_mean = (double)boot_ns / 1000.0 / (double)res->boots;
        res->hs_p50_us = fdl_hist_percentile(hs, 50);
        res->hs_p95_us = fdl_hist_percentile(hs, 95);
        res->hs_p99_us = fdl_hist_percentile(hs, 99);
        res->hs_max_us = fdl_hist_max(hs);
        res->conn_p50_us = fdl_hist_percentile(cn, 50);
        res->conn_p95_us = fdl_hist_percentile(cn, 95);
        res->conn_p99_us = fdl_hist_percentile(cn, 99);
        res->ack_p50_us = fdl_hist_percentile(ak, 50);
        res->ack_p99_us = fdl_hist_percentile(ak, 99);
        res->prov_p50_us = fdl_hist_percentile(pv, 50);
        res->prov_p95_us = fdl_hist_percentile(pv, 95);
        res->prov_p99_us = fdl_hist_percentile(pv, 99);
        res->prov_max_us = fdl_hist_max(pv);
        res->prov_span_s = res->registered ? (double)(prov_last - prov_first) / 1e9 : 0;
        fdl_hist_free(pv);
        fdl_hist_free(hs);
        fdl_hist_free(cn);
        fdl_hist_free(ak);
    }
    if (fl.w)
        for (unsigned i = 0; i < fl.nw; i++)
            worker_free(&fl.w[i]);
    if (fl.devs)
        for (uint32_t i = 0; i < n; i++)
            fdl_device_cleanup(&fl.devs[i]);
    if (fl.fws)
        for (uint32_t i = 0; i < n; i++)
            fdl_fw_free(fl.fws[i]);
    if (fl.ids) {
        if (cfg->finalize_se_at_end)
            fdl_se_module_shutdown(cfg->se);
        for (uint32_t i = 0; i < n; i++)
            fdl_identity_free(&fl.ids[i]);
    }
    fdl_free(fl.w);
    fdl_free(fl.devs);
    fdl_free(fl.ids);
    fdl_free(fl.fws);
    fdl_free(fl.usable);
    mbedtls_x509_crt_free(&fl.trust);
    return ret;
}
