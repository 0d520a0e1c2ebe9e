/* cloud/provisioning.c — the JITR registration service (see provisioning.h). */
#include "cloud/provisioning.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "cloud/enroll.h"
#include "cloud/json.h"
#include "cloud/registry.h"
#include "cloud/rules.h"
#include "sim/alloc.h"
#include "sim/metrics.h"

#define PROV_QUEUE_MAX 65536   /* announcements waiting for a decision; more are dropped (and re-announced
                                  by the plugin when the device retries) */
#define PROV_BATCH 1000        /* decisions per registry transaction */

typedef struct prov_item {
    char fp[80], dev[80], serial[80], source[80];
    int64_t at_ms;
} prov_item;

struct fdl_prov {
    fdl_prov_cfg cfg;
    prov_item *queue;          /* ring, PROV_QUEUE_MAX */
    size_t qhead, qlen;
    pthread_t worker;
    int worker_started, stopping;
    uint64_t queue_dropped;
    struct mosquitto *mosq;
    fdl_registry *reg;
    fdl_rules *rules;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int subscribed, connect_rc;
    fdl_prov_stats st;
    fdl_hist *decide;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies the string member key of the top-level object into out; 0 if found. */
static int member(const uint8_t *buf, const fdl_jv_tok *t, size_t n, const char *key, char *out, size_t cap)
{
    for (size_t i = 1; i + 1 < n; i++) {
        if (t[i].parent != 0 || !(t[i].flags & FDL_JV_F_KEY) || !fdl_jv_str_eq(buf, &t[i], key, strlen(key)))
            continue;
        const fdl_jv_tok *v = &t[i + 1];
        if (v->type == FDL_JV_STRING)
            return fdl_jv_str_copy(buf, v, out, cap, NULL) == FDL_JV_OK ? 0 : -1;
        if (v->type == FDL_JV_NUMBER && v->len < cap) {
            memcpy(out, buf + v->start, v->len);
            out[v->len] = '\0';
            return 0;
        }
        return -1;
    }
    return -1;
}

static void handle_pending(fdl_prov *p, const uint8_t *payload, size_t len)
{
    fdl_jv_tok tok[32];
    size_t n = 0;
    prov_item it;
    char at[32] = "";
    memset(&it, 0, sizeof it);
    int ok = fdl_jv_parse(payload, len, NULL, tok, 32, &n, NULL) == FDL_JV_OK && tok[0].type == FDL_JV_OBJECT &&
             !member(payload, tok, n, "fingerprint", it.fp, sizeof it.fp) &&
             !member(payload, tok, n, "device", it.dev, sizeof it.dev);
    if (ok) {
        member(payload, tok, n, "serial", it.serial, sizeof it.serial);
        member(payload, tok, n, "source", it.source, sizeof it.source);
        member(payload, tok, n, "at_ms", at, sizeof at);
        it.at_ms = atoll(at);
    }
    pthread_mutex_lock(&p->mu);
    p->st.requests++;
    if (!ok) {
        p->st.registry_errors++;
        snprintf(p->st.last_error, sizeof p->st.last_error, "malformed announcement");
    } else if (p->qlen == PROV_QUEUE_MAX) {
        p->queue_dropped++;
    } else {
        p->queue[(p->qhead + p->qlen) % PROV_QUEUE_MAX] = it;
        p->qlen++;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
}

/* The worker: takes up to PROV_BATCH announcements, asks the rules about each,
 * and commits all decisions in one registry transaction. */
static void *worker_main(void *arg)
{
    fdl_prov *p = arg;
    prov_item *batch = fdl_calloc(PROV_BATCH, sizeof *batch);
    fdl_reg_decision *dec = fdl_calloc(PROV_BATCH, sizeof *dec);
    char (*pol)[80] = fdl_calloc(PROV_BATCH, sizeof *pol);
    char (*why)[256] = fdl_calloc(PROV_BATCH, sizeof *why);
    if (!batch || !dec || !pol || !why)
        goto out;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->stopping && p->qlen == 0)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping && p->qlen == 0) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        size_t n = 0;
        while (p->qlen && n < PROV_BATCH) {
            batch[n++] = p->queue[p->qhead];
            p->qhead = (p->qhead + 1) % PROV_QUEUE_MAX;
            p->qlen--;
        }
        pthread_mutex_unlock(&p->mu);

        size_t nd = 0, n_err = 0;
        char err[512] = "";
        for (size_t i = 0; i < n; i++) {
            fdl_reg_device d;
            memset(&d, 0, sizeof d);
            fdl_reg_status rs = fdl_registry_device_get(p->reg, batch[i].dev, &d);
            fdl_rules_device rd = {.id = batch[i].dev, .serial = batch[i].serial, .fingerprint = batch[i].fp,
                                   .source = batch[i].source, .firmware = d.firmware_version, .sold = d.sold,
                                   .recalled = d.recalled,
                                   /* A manufacturing record always names the firmware shipped. */
                                   .known = rs == FDL_REG_OK && (d.firmware_version[0] || d.sold)};
            int v = fdl_rules_decide(p->rules, &rd, pol[nd], sizeof pol[nd], why[nd], sizeof why[nd], err, sizeof err);
            if (p->cfg.verbose)
                fprintf(stderr, "fleetdrill: provisioning: %s (serial %s, from %s): %s %s\n", batch[i].dev,
                        batch[i].serial, batch[i].source,
                        v == 1 ? "activate with" : v == 0 ? "reject:" : "rules failed:",
                        v == 1 ? pol[nd] : v == 0 ? why[nd] : err);
            if (v < 0) {
                n_err++;
                continue;
            }
            dec[nd] = (fdl_reg_decision){.fingerprint = batch[i].fp, .policy = v == 1 ? pol[nd] : NULL,
                                         .reason = v == 1 ? "JITR: accepted by the registration rules" : why[nd]};
            nd++;
        }
        size_t done = 0;
        fdl_reg_status rs = fdl_registry_cert_decide_batch(p->reg, dec, nd, &done);
        int64_t now = wall_ms();
        pthread_mutex_lock(&p->mu);
        p->st.rule_errors += n_err;
        if (n_err)
            snprintf(p->st.last_error, sizeof p->st.last_error, "%s", err);
        if (rs != FDL_REG_OK) {
            p->st.registry_errors += nd;
            snprintf(p->st.last_error, sizeof p->st.last_error, "registry: %s", fdl_registry_last_error(p->reg));
        } else {
            /* Repeated announcements of an already decided certificate are skipped. */
            p->st.duplicates += nd - done;
            for (size_t i = 0; i < nd; i++)
                if (dec[i].applied)
                    dec[i].policy ? p->st.activated++ : p->st.rejected++;
            for (size_t i = 0; i < n; i++)
                if (batch[i].at_ms > 0 && now >= batch[i].at_ms)
                    fdl_hist_add(p->decide, (uint64_t)(now - batch[i].at_ms) * 1000u);
        }
        pthread_mutex_unlock(&p->mu);
    }
out:
    fdl_free(batch);
    fdl_free(dec);
    fdl_free(pol);
    fdl_free(why);
    return NULL;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    fdl_prov *p = ud;
    if (msg->topic && !strcmp(msg->topic, FDL_TOPIC_PENDING) && msg->payloadlen > 0)
        handle_pending(p, msg->payload, (size_t)msg->payloadlen);
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    fdl_prov *p = ud;
    pthread_mutex_lock(&p->mu);
    p->connect_rc = rc;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (rc == 0)
        mosquitto_subscribe(m, NULL, FDL_TOPIC_PENDING, 1);
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    (void)mid;
    fdl_prov *p = ud;
    pthread_mutex_lock(&p->mu);
    p->subscribed = n > 0 && granted[0] <= 2 ? 1 : -1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int fdl_prov_start(const fdl_prov_cfg *cfg, fdl_prov **out, char *err, size_t errcap)
{
    *out = NULL;
    fdl_prov *p = fdl_calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    p->cfg = *cfg;
    p->connect_rc = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->decide = fdl_hist_new();
    p->queue = fdl_calloc(PROV_QUEUE_MAX, sizeof *p->queue);
    if (!p->queue) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    fdl_registry_opts ro = {.actor = FDL_ACTOR_PROVISIONING};
    if (!p->decide || fdl_registry_open(cfg->registry_path, &ro, &p->reg) != FDL_REG_OK) {
        snprintf(err, errcap, "provisioning: cannot open the registry %s", cfg->registry_path);
        goto fail;
    }
    if (fdl_rules_open(cfg->rules_path, &p->rules, err, errcap) != 0)
        goto fail;
    if (pthread_create(&p->worker, NULL, worker_main, p) != 0) {
        snprintf(err, errcap, "provisioning: cannot start the worker thread");
        goto fail;
    }
    p->worker_started = 1;
    p->mosq = fdl_enroll_actor_client("provisioning", FDL_ACTOR_PROVISIONING, p, cfg->host, cfg->port, cfg->cafile,
                                      cfg->certfile, cfg->keyfile, err, errcap);
    if (!p->mosq)
        goto fail;
    mosquitto_connect_callback_set(p->mosq, on_connect);
    mosquitto_subscribe_callback_set(p->mosq, on_subscribe);
    mosquitto_message_callback_set(p->mosq, on_message);
    int rc = mosquitto_loop_start(p->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errcap, "provisioning: %s", mosquitto_strerror(rc));
        goto fail;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&p->mu);
    while (p->subscribed == 0 && (p->connect_rc <= 0) &&
           pthread_cond_timedwait(&p->cv, &p->mu, &dl) == 0)
        ;
    int ok = p->subscribed == 1;
    int crc = p->connect_rc;
    pthread_mutex_unlock(&p->mu);
    if (!ok) {
        snprintf(err, errcap, "provisioning: %s", crc > 0 ? mosquitto_connack_string(crc)
                                                          : "no subscription acknowledged within 10 s");
        goto fail;
    }
    *out = p;
    return 0;
fail:
    fdl_prov_stop(p);
    return -1;
}

void fdl_prov_get_stats(fdl_prov *p, fdl_prov_stats *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->st;
    out->queue_dropped = p->queue_dropped;
    out->decide_p50_us = fdl_hist_percentile(p->decide, 50);
    out->decide_p99_us = fdl_hist_percentile(p->decide, 99);
    pthread_mutex_unlock(&p->mu);
}

void fdl_prov_stop(fdl_prov *p)
{
    if (!p)
        return;
    if (p->mosq) {
        mosquitto_disconnect(p->mosq);
        mosquitto_loop_stop(p->mosq, true);
        mosquitto_destroy(p->mosq);
    }
    if (p->worker_started) {
        pthread_mutex_lock(&p->mu);
        p->stopping = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->worker, NULL);
    }
    fdl_free(p->queue);
    fdl_rules_free(p->rules);
    fdl_registry_free(p->reg);
    fdl_hist_free(p->decide);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    fdl_free(p);
}
