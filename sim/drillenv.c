/* sim/drillenv.c — identities, registry, broker, provisioning service and fleet as one object (see drillenv.h). */
#include "sim/drillenv.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloud/enroll.h"
#include "fdl_buildcfg.h"
#include "sim/alloc.h"
#include "sim/broker.h"
#include "sim/fdl_log.h"
#include "sim/json.h"
#include "sim/metrics.h"
#include "sim/progress.h"

/* ---- switches ------------------------------------------------------------------- */

static const struct {
    const char *name, *what;
} k_switches[FDL_SWITCH_COUNT] = {
    {"pinning", "devices do not verify the broker's certificate (no pinning of the fleet root)"},
    {"registry", "the broker admits any certificate its TLS layer accepts, whatever the registry says"},
    {"policy", "allow-all instead of the per-device policy (no least privilege)"},
    {"payload-rules", "no payload rules: junk is delivered as sent"},
    {"tls13-only", "the broker accepts TLS 1.2 as well as TLS 1.3"},
};

const char *fdl_switch_name(unsigned i)
{
    return i < FDL_SWITCH_COUNT ? k_switches[i].name : NULL;
}

const char *fdl_switch_describe(unsigned i)
{
    return i < FDL_SWITCH_COUNT ? k_switches[i].what : "";
}

int fdl_switch_parse(const char *name, unsigned *bit)
{
    for (unsigned i = 0; i < FDL_SWITCH_COUNT; i++)
        if (name && !strcmp(name, k_switches[i].name)) {
            *bit = 1u << i;
            return 0;
        }
    return -1;
}

const char *fdl_switch_list(unsigned mask, char *buf, size_t cap)
{
    size_t used = 0;
    if (cap)
        buf[0] = '\0';
    for (unsigned i = 0; i < FDL_SWITCH_COUNT; i++)
        if (mask & (1u << i)) {
            int n = snprintf(buf + used, cap > used ? cap - used : 0, "%s%s", used ? "," : "", k_switches[i].name);
            if (n > 0)
                used += (size_t)n;
        }
    return buf;
}

/* ---- identities ------------------------------------------------------------------ */

int fdl_drillenv_provision(fdl_ctx *ctx, fdl_pki *issuer, uint32_t first, uint32_t n, fdl_profile profile,
                           uint32_t *made)
{
    char id[FDL_DEVICE_ID_MAX], err[512];
    *made = 0;
    fdl_progress *bar = fdl_progress_new(stderr, "provisioning", n);
    uint64_t t0 = fdl_now_ns();
    int rc = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (fdl_fleet_stop_requested()) {
            rc = -2;
            break;
        }
        fdl_device_id(first + i, id, sizeof id);
        int r = fdl_identity_provision(&ctx->st, ctx->se, issuer, id, profile, mbedtls_ctr_drbg_random,
                                       &ctx->drbg, err, sizeof err);
        if (r < 0) {
            fdl_progress_finish(bar);
            fprintf(stderr, "fleetdrill: provisioning failed: %s\n", err);
            rc = -1;
            break;
        }
        *made += (uint32_t)r;
        fdl_progress_update(bar, i + 1, "%u new", *made);
    }
    fdl_progress_finish(bar);
    fdl_progress_free(bar);
    if (*made > 0) {
        double s = (double)(fdl_now_ns() - t0) / 1e9;
        FDL_INFO(NULL, "provisioned %u new identities in %.1f s (%.0f/s)", *made, s, s > 0 ? *made / s : 0.0);
    }
    return rc;
}

/* ---- the environment ------------------------------------------------------------- */

struct fdl_drillenv {
    fdl_drillenv_opts o;
    fdl_ctx *ctx;
    fdl_broker *broker;
    fdl_prov *prov;
    fdl_prov_stats prov_stats;
    fdl_fwenv *fw;
    fdl_jobs *jobs;
    fdl_artifacts *store;
    fdl_vclock clock;
    int have_prov_stats;
    fdl_fleet_live *live;
    atomic_int stop;
    atomic_int fleet_done;        /* set by the fleet thread as it returns */
    pthread_t th;
    int thread_started, joined, stopped;
    uint64_t t0_ns;
    fdl_fleet_result res;
    int fleet_rc;
    char fleet_err[1024];
    char root[FDL_PATH_MAX + 32];
    char claim_cert[1200], claim_key[1200];
    char host[64];
};

void fdl_drillenv_opts_init(fdl_drillenv_opts *o, fdl_ctx *ctx)
{
    memset(o, 0, sizeof *o);
    o->ctx = ctx;
    o->devices = 10;
    o->profile = FDL_PROFILE_SE;
    o->provision = FDL_PROV_DIRECT;
    fdl_fleet_cfg_defaults(&o->fleet);
    o->fleet.duration_ms = 0;
}

static int write_run_json(const fdl_drillenv *e)
{
    const fdl_ctx *ctx = e->ctx;
    fdl_json *j = fdl_json_new(1 << 16);
    char chain[FDL_PATH_MAX + 32];
    snprintf(chain, sizeof chain, "%s/%s", ctx->st.pki_dir, FDL_PKI_CHAIN_PEM);
    fdl_json_set_pretty(j, 1);
    fdl_json_obj_begin(j, NULL);
    fdl_json_obj_begin(j, "broker");
    fdl_json_str(j, "host", fdl_broker_host(e->broker));
    fdl_json_uint(j, "port", fdl_broker_port(e->broker));
    fdl_json_str(j, "server_name", "localhost");
    fdl_json_str(j, "ca_file", e->root);
    fdl_json_str(j, "chain_file", chain);
    fdl_json_int(j, "pid", (int64_t)fdl_broker_pid(e->broker));
    fdl_json_str(j, "log", fdl_broker_log_path(e->broker));
    fdl_json_obj_end(j);
    fdl_json_int(j, "pid", (int64_t)getpid());
    fdl_json_uint(j, "devices", e->o.devices);
    fdl_json_str(j, "softhsm2_conf", ctx->st.hsm_conf);
    fdl_json_str(j, "openssl_conf", ctx->openssl_cnf);
    fdl_json_obj_end(j);
    int r = fdl_json_write_file(j, ctx->st.run_json);
    fdl_json_free(j);
    return r;
}

static void *fleet_main(void *arg)
{
    fdl_drillenv *e = arg;
    e->fleet_rc = fdl_fleet_run(&e->o.fleet, &e->res, e->o.on_progress, e->o.progress_ud, e->fleet_err,
                                sizeof e->fleet_err);
    atomic_store(&e->fleet_done, 1);
    return NULL;
}

/* Claim: a previous run's claimed certificates belong to a registry that is gone;
 * the devices keep their keys and claim again. */
static void forget_claimed_certs(fdl_ctx *ctx, uint32_t first, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        char id[FDL_DEVICE_ID_MAX], path[FDL_PATH_MAX + 64];
        fdl_device_id(first + i, id, sizeof id);
        fdl_identity_path(&ctx->st, id, "cert.pem", path, sizeof path);
        unlink(path);
    }
}

static int start_cloud(fdl_drillenv *e, char *err, size_t errcap)
{
    fdl_ctx *ctx = e->ctx;
    const fdl_drillenv_opts *o = &e->o;
    int want_factory = o->provision == FDL_PROV_JITR;
    if (o->fresh_registry) {
        if (fdl_ctx_reset_cloud(ctx, want_factory, err, errcap) != 0)
            return -1;
    } else if (!ctx->reg || (want_factory && !ctx->factory)) {
        if (ctx->reg) {
            fdl_registry_free(ctx->reg);
            ctx->reg = NULL;
        }
        if (fdl_ctx_open_cloud(ctx, want_factory, err, errcap) != 0)
            return -1;
    }
    if (o->fresh_registry && o->provision == FDL_PROV_CLAIM)
        forget_claimed_certs(ctx, o->first, o->devices);
    if (!o->no_firmware) {
        /* Devices as they left the factory: a drill must not inherit the floors
         * and slots another one left behind. */
        if (o->fresh_registry && fdl_fwenv_factory_reset(&ctx->st, o->first, o->devices, err, errcap) != 0)
            return -1;
        if (fdl_fwenv_open(ctx, o->profile == FDL_PROFILE_SE, &e->fw, err, errcap) != 0)
            return -1;
    }
    /* Claim: the devices get their keys now and ask for their certificates themselves. */
    fdl_pki *issuer = o->provision == FDL_PROV_JITR ? ctx->factory : o->provision == FDL_PROV_CLAIM ? NULL : ctx->pki;
    uint32_t made = 0;
    int pr = fdl_drillenv_provision(ctx, issuer, o->first, o->devices, o->profile, &made);
    if (pr != 0) {
        snprintf(err, errcap, pr == -2 ? "interrupted during provisioning" : "provisioning failed");
        return pr;
    }
    uint32_t written = 0;
    if (fdl_cloud_prepare_fleet(ctx, o->first, o->devices, o->provision, &written, err, errcap) != 0)
        return -1;
    if (written && o->progress)
        fprintf(stderr, "fleetdrill: registry: %u %s\n", written,
                o->provision == FDL_PROV_DIRECT ? "certificates enrolled" : "manufacturing records written");
    if (o->provision == FDL_PROV_CLAIM) {
        if (fdl_enroll_claim(ctx->reg, ctx->pki, ctx->st.pki_dir, err, errcap) != 0)
            return -1;
        fdl_enroll_actor_paths(ctx->st.pki_dir, FDL_CLAIM_ID, e->claim_cert, e->claim_key, sizeof e->claim_cert);
        e->o.fleet.claim_cert_file = e->claim_cert;
        e->o.fleet.claim_key_file = e->claim_key;
    }
    return 0;
}

static int start_broker(fdl_drillenv *e, char *err, size_t errcap)
{
    fdl_ctx *ctx = e->ctx;
    fdl_broker_opts bo;
    fdl_broker_opts_init(&bo);
    fdl_cloud_broker_bufs bb;
    if (fdl_cloud_broker_opts(ctx, &bo, &bb, err, errcap) != 0)
        return -1;
    /* Ablations the plugin and the listener implement (cloud/plugin/fleetdrill_auth.c). */
    size_t n = bo.n_plugin_opts;
    if (e->o.without & FDL_SWITCH_REGISTRY)
        bb.kv[n++] = (fdl_broker_kv){.key = "registry_check", .value = "off"};
    if (e->o.without & FDL_SWITCH_POLICY)
        bb.kv[n++] = (fdl_broker_kv){.key = "policy", .value = "off"};
    if (e->o.without & FDL_SWITCH_PAYLOAD_RULES)
        bb.kv[n++] = (fdl_broker_kv){.key = "payload_rules", .value = "off"};
    bo.n_plugin_opts = n;
    if (e->o.without & FDL_SWITCH_TLS13_ONLY)
        bo.tls_min_version = "tlsv1.2";
    bo.port = e->o.port;
    fdl_broker_status bs = fdl_broker_start(&bo, &e->broker, err, errcap);
    if (bs != FDL_BROKER_OK)
        return -1;
    snprintf(e->host, sizeof e->host, "%s", fdl_broker_host(e->broker));
    if (e->o.progress) {
        char sw[128];
        fdl_switch_list(e->o.without, sw, sizeof sw);
        fprintf(stderr,
                "fleetdrill: mosquitto listening on %s:%u (%s, client certificates required, "
                "registry and per-device policy enforced by the fleetdrill plugin)%s%s\n",
                fdl_broker_host(e->broker), fdl_broker_port(e->broker),
                e->o.without & FDL_SWITCH_TLS13_ONLY ? "TLS 1.2 and 1.3" : "TLS 1.3 only", sw[0] ? "; without: " : "",
                sw);
    }
    return 0;
}

/* The artifact store and the job service, each with its own identity. */
static int start_ota(fdl_drillenv *e, char *err, size_t errcap)
{
    fdl_ctx *ctx = e->ctx;
    char cert[1200], key[1200], serr[512];
    int verbose = getenv("FLEETDRILL_LOG") != NULL;
    fdl_enroll_actor_paths(ctx->st.pki_dir, FDL_ACTOR_ARTIFACTS, cert, key, sizeof cert);
    fdl_artifacts_cfg ac = {.host = fdl_broker_host(e->broker), .port = fdl_broker_port(e->broker), .cafile = e->root,
                            .certfile = cert, .keyfile = key, .dir = fdl_fwenv_artifacts_dir(e->fw),
                            .verbose = verbose};
    if (fdl_artifacts_start(&ac, &e->store, serr, sizeof serr) != 0) {
        snprintf(err, errcap, "artifact store: %s", serr);
        return -1;
    }
    fdl_enroll_actor_paths(ctx->st.pki_dir, FDL_ACTOR_JOBS, cert, key, sizeof cert);
    fdl_jobs_cfg jc = {.host = fdl_broker_host(e->broker), .port = fdl_broker_port(e->broker), .cafile = e->root,
                       .certfile = cert, .keyfile = key, .registry_path = ctx->st.registry,
                       .signer = fdl_fwenv_job_signer(e->fw), .clock = &e->clock, .verbose = verbose};
    if (fdl_jobs_start(&jc, &e->jobs, serr, sizeof serr) != 0) {
        snprintf(err, errcap, "job service: %s", serr);
        return -1;
    }
    return 0;
}

static int start_prov(fdl_drillenv *e, char *err, size_t errcap)
{
    fdl_ctx *ctx = e->ctx;
    char pcert[1200], pkey[1200], rules[FDL_PATH_MAX];
    fdl_enroll_actor_paths(ctx->st.pki_dir, FDL_ACTOR_PROVISIONING, pcert, pkey, sizeof pcert);
    snprintf(rules, sizeof rules, "%s", e->o.rules_path ? e->o.rules_path : FDL_SOURCE_DIR "/cloud/registration.lua");
    fdl_prov_cfg pc = {.host = fdl_broker_host(e->broker), .port = fdl_broker_port(e->broker), .cafile = e->root,
                       .certfile = pcert, .keyfile = pkey, .registry_path = ctx->st.registry,
                       .rules_path = rules, .verbose = getenv("FLEETDRILL_LOG") != NULL,
                       .issuer = e->o.provision == FDL_PROV_CLAIM ? ctx->pki : NULL};
    char perr[512];
    if (fdl_prov_start(&pc, &e->prov, perr, sizeof perr) != 0) {
        snprintf(err, errcap, "provisioning service: %s", perr);
        return -1;
    }
    return 0;
}

int fdl_drillenv_start(const fdl_drillenv_opts *o, fdl_drillenv **out, char *err, size_t errcap)
{
    *out = NULL;
    if (!o->ctx || !o->ctx->pki || o->devices == 0) {
        snprintf(err, errcap, "drill environment: a context with its CA and at least one device are required");
        return -1;
    }
    fdl_drillenv *e = fdl_calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    e->o = *o;
    e->ctx = o->ctx;
    snprintf(e->root, sizeof e->root, "%s/%s", e->ctx->st.pki_dir, FDL_PKI_ROOT_PEM);
    int rc = start_cloud(e, err, errcap);
    if (rc != 0)
        goto fail;
    rc = -1;
    fdl_vclock_init(&e->clock, o->fleet.time_scale, (uint64_t)time(NULL) * 1000u);
    if (start_broker(e, err, errcap) != 0 || start_prov(e, err, errcap) != 0 ||
        (e->fw && start_ota(e, err, errcap) != 0))
        goto fail;
    if (o->write_run_json && write_run_json(e) != 0)
        fprintf(stderr, "fleetdrill: warning: cannot write %s\n", e->ctx->st.run_json);
    e->live = fdl_fleet_live_new(o->devices);
    if (!e->live) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    fdl_fleet_cfg *fc = &e->o.fleet;
    fc->n_devices = o->devices;
    fc->first_index = o->first;
    fc->state = &e->ctx->st;
    fc->se = e->ctx->se;
    fc->trust_file = e->root;
    fc->broker_host = e->host;
    fc->broker_port = fdl_broker_port(e->broker);
    fc->stop = &e->stop;
    fc->live = e->live;
    fc->verify_none = (o->without & FDL_SWITCH_PINNING) != 0;
    fc->distinct_sources = 1;
    fc->clock = &e->clock;
    fc->factory = e->fw ? fdl_fwenv_factory(e->fw) : NULL;
    e->t0_ns = fdl_now_ns();
    if (pthread_create(&e->th, NULL, fleet_main, e) != 0) {
        snprintf(err, errcap, "cannot start the fleet thread");
        goto fail;
    }
    e->thread_started = 1;
    *out = e;
    return 0;
fail:
    fdl_drillenv_free(e);
    return rc;
}

fdl_atk_target fdl_drillenv_target(const fdl_drillenv *e)
{
    return (fdl_atk_target){.host = e->host,
                            .port = e->broker ? fdl_broker_port(e->broker) : 0,
                            .server_name = "localhost",
                            .state_dir = e->ctx->st.dir,
                            .se = e->ctx->se};
}

const fdl_broker *fdl_drillenv_broker(const fdl_drillenv *e)
{
    return e->broker;
}

fdl_jobs *fdl_drillenv_jobs(const fdl_drillenv *e)
{
    return e->jobs;
}

fdl_artifacts *fdl_drillenv_artifacts(const fdl_drillenv *e)
{
    return e->store;
}

fdl_fwenv *fdl_drillenv_fwenv(const fdl_drillenv *e)
{
    return e->fw;
}

const fdl_vclock *fdl_drillenv_clock(const fdl_drillenv *e)
{
    return &e->clock;
}

const fdl_fleet_live *fdl_drillenv_live(const fdl_drillenv *e)
{
    return e->live;
}

const fdl_drillenv_opts *fdl_drillenv_opts_of(const fdl_drillenv *e)
{
    return &e->o;
}

double fdl_drillenv_elapsed_s(const fdl_drillenv *e)
{
    return (double)(fdl_now_ns() - e->t0_ns) / 1e9;
}

int fdl_drillenv_running(const fdl_drillenv *e)
{
    return e->thread_started && !atomic_load(&e->fleet_done);
}

uint32_t fdl_drillenv_wait_online(fdl_drillenv *e, uint32_t count, unsigned timeout_ms)
{
    fdl_fleet_live_totals t;
    uint64_t deadline = fdl_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        fdl_fleet_live_totals_get(e->live, &t);
        if (t.online >= count || fdl_fleet_stop_requested() || fdl_now_ns() >= deadline || !fdl_drillenv_running(e))
            return t.online;
        usleep(20000);
    }
}

static void join_fleet(fdl_drillenv *e)
{
    if (e->thread_started && !e->joined) {
        pthread_join(e->th, NULL);
        e->joined = 1;
    }
}

static void stop_rest(fdl_drillenv *e)
{
    if (e->stopped)
        return;
    e->stopped = 1;
    if (e->o.write_run_json)
        unlink(e->ctx->st.run_json);
    fdl_jobs_stop(e->jobs);
    e->jobs = NULL;
    fdl_artifacts_stop(e->store);
    e->store = NULL;
    if (e->prov) {
        fdl_prov_get_stats(e->prov, &e->prov_stats);
        e->have_prov_stats = 1;
        fdl_prov_stop(e->prov);
        e->prov = NULL;
    }
    if (e->broker)
        fdl_broker_stop(e->broker);
}

void fdl_drillenv_join(fdl_drillenv *e)
{
    join_fleet(e);
    stop_rest(e);
}

void fdl_drillenv_stop(fdl_drillenv *e)
{
    atomic_store(&e->stop, 1);
    join_fleet(e);
    stop_rest(e);
}

int fdl_drillenv_result(const fdl_drillenv *e, const fdl_fleet_result **res, const char **err)
{
    *res = &e->res;
    *err = e->fleet_err;
    return e->joined ? e->fleet_rc : -1;
}

int fdl_drillenv_prov_stats(const fdl_drillenv *e, fdl_prov_stats *out)
{
    if (!e->have_prov_stats)
        return -1;
    *out = e->prov_stats;
    return 0;
}

void fdl_drillenv_free(fdl_drillenv *e)
{
    if (!e)
        return;
    if (e->thread_started)
        fdl_drillenv_stop(e);
    else
        stop_rest(e);
    fdl_broker_free(e->broker);
    fdl_fleet_live_free(e->live);
    fdl_fwenv_free(e->fw);
    fdl_free(e);
}
