/* cloud/provisioning.c — the JITR registration service (see provisioning.h). */
#include "cloud/provisioning.h"

#include <pthread.h>
#include <stdio.h>
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

struct fdl_prov {
    fdl_prov_cfg cfg;
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
    char fp[80] = "", dev[80] = "", serial[80] = "", source[80] = "", at[32] = "";
    char policy[80], reason[256], err[512];
    if (fdl_jv_parse(payload, len, NULL, tok, 32, &n, NULL) != FDL_JV_OK || tok[0].type != FDL_JV_OBJECT ||
        member(payload, tok, n, "fingerprint", fp, sizeof fp) || member(payload, tok, n, "device", dev, sizeof dev)) {
        pthread_mutex_lock(&p->mu);
        p->st.requests++;
        p->st.registry_errors++;
        snprintf(p->st.last_error, sizeof p->st.last_error, "malformed announcement");
        pthread_mutex_unlock(&p->mu);
        return;
    }
    member(payload, tok, n, "serial", serial, sizeof serial);
    member(payload, tok, n, "source", source, sizeof source);
    member(payload, tok, n, "at_ms", at, sizeof at);

    fdl_reg_device d;
    memset(&d, 0, sizeof d);
    fdl_reg_status rs = fdl_registry_device_get(p->reg, dev, &d);
    fdl_rules_device rd = {.id = dev, .serial = serial, .fingerprint = fp, .source = source,
                           .firmware = d.firmware_version, .sold = d.sold, .recalled = d.recalled,
                           /* A manufacturing record always names the firmware shipped. */
                           .known = rs == FDL_REG_OK && (d.firmware_version[0] || d.sold)};
    int verdict = fdl_rules_decide(p->rules, &rd, policy, sizeof policy, reason, sizeof reason, err, sizeof err);
    if (verdict == 1)
        rs = fdl_registry_cert_activate(p->reg, fp, policy, "JITR: accepted by the registration rules");
    else if (verdict == 0)
        rs = fdl_registry_cert_reject(p->reg, fp, reason);
    if (p->cfg.verbose)
        fprintf(stderr, "fleetdrill: provisioning: %s (serial %s, from %s): %s %s%s\n", dev, serial, source,
                verdict == 1 ? "activated with" : verdict == 0 ? "rejected:" : "rules failed:",
                verdict == 1 ? policy : verdict == 0 ? reason : err,
                verdict >= 0 && rs != FDL_REG_OK ? " (registry write failed)" : "");
    int64_t at_ms = atoll(at);
    pthread_mutex_lock(&p->mu);
    p->st.requests++;
    if (verdict < 0) {
        p->st.rule_errors++;
        snprintf(p->st.last_error, sizeof p->st.last_error, "%s", err);
    } else if (rs != FDL_REG_OK && rs != FDL_REG_ERR_TRANSITION) {
        p->st.registry_errors++;
        snprintf(p->st.last_error, sizeof p->st.last_error, "%s: %s", dev, fdl_registry_last_error(p->reg));
    } else if (rs == FDL_REG_OK) {
        if (verdict == 1)
            p->st.activated++;
        else
            p->st.rejected++;
        if (at_ms > 0 && wall_ms() >= at_ms)
            fdl_hist_add(p->decide, (uint64_t)(wall_ms() - at_ms) * 1000u);
    }
    pthread_mutex_unlock(&p->mu);
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
    fdl_registry_opts ro = {.actor = FDL_ACTOR_PROVISIONING};
    if (!p->decide || fdl_registry_open(cfg->registry_path, &ro, &p->reg) != FDL_REG_OK) {
        snprintf(err, errcap, "provisioning: cannot open the registry %s", cfg->registry_path);
        goto fail;
    }
    if (fdl_rules_open(cfg->rules_path, &p->rules, err, errcap) != 0)
        goto fail;
    mosquitto_lib_init();
    p->mosq = mosquitto_new(FDL_ACTOR_PROVISIONING, true, p);
    if (!p->mosq) {
        snprintf(err, errcap, "provisioning: mosquitto_new failed");
        goto fail;
    }
    mosquitto_connect_callback_set(p->mosq, on_connect);
    mosquitto_subscribe_callback_set(p->mosq, on_subscribe);
    mosquitto_message_callback_set(p->mosq, on_message);
    int rc = mosquitto_tls_set(p->mosq, cfg->cafile, NULL, cfg->certfile, cfg->keyfile, NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_tls_opts_set(p->mosq, 1, "tlsv1.3", NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_connect(p->mosq, cfg->host, cfg->port, 30);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_loop_start(p->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errcap, "provisioning: connect to %s:%u: %s", cfg->host, cfg->port, mosquitto_strerror(rc));
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
    fdl_rules_free(p->rules);
    fdl_registry_free(p->reg);
    fdl_hist_free(p->decide);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    fdl_free(p);
}
