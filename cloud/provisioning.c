/* cloud/provisioning.c — the JITR registration service (see provisioning.h). */
#include "cloud/provisioning.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include <mbedtls/pem.h>
#include <mbedtls/x509_crt.h>

#include "cloud/csr.h"
#include "cloud/enroll.h"
#include "cloud/json.h"
#include "cloud/registry.h"
#include "cloud/rules.h"
#include "sim/alloc.h"
#include "sim/metrics.h"
#include "sim/vclock.h"

#define PROV_QUEUE_MAX 65536   /* announcements waiting for a decision; more are dropped (and re-announced
                                  by the plugin when the device retries) */
#define PROV_BATCH 1000        /* decisions per registry transaction */

typedef struct prov_item {
    char fp[80], dev[80], serial[80], source[80];
    int64_t at_ms;
    uint8_t *csr;              /* claim: the request (owned), NULL for a JITR announcement */
    size_t csr_len;
    uint64_t recv_ns;
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
    fdl_hist *decide, *issue;
    int64_t issuing_ca;        /* registry id of the issuer's CA (worker thread) */
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

/* 1 if queued; 0 if the queue is full (counted; the device asks again). */
static int enqueue_locked(fdl_prov *p, const prov_item *it)
{
    if (p->qlen == PROV_QUEUE_MAX) {
        p->queue_dropped++;
        return 0;
    }
    p->queue[(p->qhead + p->qlen) % PROV_QUEUE_MAX] = *it;
    p->qlen++;
    pthread_cond_broadcast(&p->cv);
    return 1;
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
    } else {
        enqueue_locked(p, &it);
    }
    pthread_mutex_unlock(&p->mu);
}

/* $fleet/claim/<client id>/csr: the client id is the topic level (the broker's ACL
 * already tied it to the publisher's MQTT client id). */
static void handle_csr(fdl_prov *p, const char *topic, const uint8_t *payload, size_t len)
{
    prov_item it;
    memset(&it, 0, sizeof it);
    const char *id = topic + strlen(FDL_TOPIC_CLAIM_PREFIX);
    const char *slash = strchr(id, '/');
    size_t idlen = slash ? (size_t)(slash - id) : 0;
    int ok = p->cfg.issuer && idlen > 0 && idlen < sizeof it.dev && !strcmp(slash + 1, FDL_TOPIC_CLAIM_CSR) &&
             len > 0 && len <= FDL_CSR_MAX;
    if (ok) {
        memcpy(it.dev, id, idlen);
        it.recv_ns = fdl_now_ns();
        it.at_ms = wall_ms();
        it.csr = fdl_malloc(len);
        it.csr_len = len;
        ok = it.csr != NULL;
        if (ok)
            memcpy(it.csr, payload, len);
    }
    pthread_mutex_lock(&p->mu);
    p->st.claim_requests++;
    if (!ok) {
        p->st.claim_rejected++;
        p->st.claim_bad_csr++;
    } else if (!enqueue_locked(p, &it)) {
        fdl_free(it.csr);
    }
    pthread_mutex_unlock(&p->mu);
}


/* ---- provisioning by claim ------------------------------------------------------- */

#define CLAIM_PEM_MAX 8192

typedef struct claim_out {
    int verdict;                  /* 1 issued, 0 refused, -1 no answer (ask again) */
    char reason[256];
    char policy[80];
    mbedtls_x509_crt crt;
    unsigned char der[FDL_PKI_CERT_MAX];
    size_t der_len;
} claim_out;

/* Appends the PEM of one DER certificate at out[*n], within cap; *n grows by its
 * length (without the NUL mbedTLS writes after it). 0 or -1 (no room). */
static int append_cert_pem(const unsigned char *der, size_t len, char *out, size_t cap, size_t *n)
{
    size_t olen = 0;
    if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", der, len,
                                 (unsigned char *)out + *n, cap - *n, &olen) != 0)
        return -1;
    *n += olen - 1;
    return 0;
}

/* PEM of every certificate in the issuer's chain, appended to the leaf when
 * answering (computed once). */
static size_t chain_pem(fdl_prov *p, char *out, size_t cap)
{
    size_t n = 0;
    for (const mbedtls_x509_crt *c = fdl_pki_chain(p->cfg.issuer); c && c->raw.p; c = c->next)
        if (append_cert_pem(c->raw.p, c->raw.len, out, cap, &n) != 0)
            return 0;
    return n;
}

static void claim_reply(fdl_prov *p, const char *dev, const char *verb, const void *payload, size_t len)
{
    char topic[160];
    snprintf(topic, sizeof topic, "%s%s/%s", FDL_TOPIC_CLAIM_PREFIX, dev, verb);
    int rc = mosquitto_publish(p->mosq, NULL, topic, (int)len, payload, 1, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        pthread_mutex_lock(&p->mu);
        snprintf(p->st.last_error, sizeof p->st.last_error, "claim answer to %s: %s", dev, mosquitto_strerror(rc));
        pthread_mutex_unlock(&p->mu);
    }
}

/* Decides one claim (no registry write): fills o. */
static void claim_decide(fdl_prov *p, prov_item *it, const prov_item *batch, size_t idx, claim_out *o, char *err,
                         size_t errcap)
{
    char detail[200];
    mbedtls_pk_context pub;
    mbedtls_pk_init(&pub);
    o->verdict = 0;
    fdl_csr_status cs = fdl_csr_check(it->csr, it->csr_len, it->dev, &pub, detail, sizeof detail);
    if (cs != FDL_CSR_OK) {
        snprintf(o->reason, sizeof o->reason, "certificate request refused: %s", detail);
        goto out;
    }
    fdl_reg_device d;
    memset(&d, 0, sizeof d);
    fdl_reg_status rs = fdl_registry_device_get(p->reg, it->dev, &d);
    if (rs == FDL_REG_OK && d.service) {
        snprintf(o->reason, sizeof o->reason, "%s is a reserved identity (a cloud service)", it->dev);
        goto out;
    }
    int active = 0;
    if (rs == FDL_REG_OK && fdl_registry_device_has_active(p->reg, it->dev, &active) != FDL_REG_OK) {
        o->verdict = -1;
        snprintf(err, errcap, "registry: %s", fdl_registry_last_error(p->reg));
        goto out;
    }
    for (size_t j = 0; j < idx && !active; j++)
        if (batch[j].csr && !strcmp(batch[j].dev, it->dev))
            active = 1;   /* two requests for one name in one batch: the first one wins */
    if (active) {
        snprintf(o->reason, sizeof o->reason,
                 "%s already has an active certificate (revoke it before the device claims again)", it->dev);
        goto out;
    }
    fdl_rules_device rd = {.id = it->dev, .serial = "", .fingerprint = "", .source = it->source,
                           .firmware = d.firmware_version, .sold = d.sold, .recalled = d.recalled,
                           .known = rs == FDL_REG_OK && (d.firmware_version[0] || d.sold), .method = "claim"};
    int v = fdl_rules_decide(p->rules, &rd, o->policy, sizeof o->policy, o->reason, sizeof o->reason, err, errcap);
    if (v < 0) {
        o->verdict = -1;
        goto out;
    }
    if (v == 0)
        goto out;
    fdl_pki_leaf_req req = {.device_id = it->dev, .public_key = &pub};
    fdl_pki_issued iss;
    fdl_pki_status ps = fdl_pki_issue(p->cfg.issuer, &req, FDL_PKI_DER, o->der, sizeof o->der, &iss);
    if (ps != FDL_PKI_OK || mbedtls_x509_crt_parse_der(&o->crt, o->der, iss.len) != 0) {
        o->verdict = -1;
        snprintf(err, errcap, "issue %s: %s (%s)", it->dev, fdl_pki_strerror(ps), fdl_pki_last_error());
        goto out;
    }
    o->der_len = iss.len;
    o->verdict = 1;
out:
    mbedtls_pk_free(&pub);
}

/* Decides, records (one transaction) and answers the claims of a batch. */
static void claim_batch(fdl_prov *p, prov_item *batch, size_t n, claim_out *co, const mbedtls_x509_crt **crts,
                        const char **pols, const char *chain, size_t chain_len)
{
    char err[512] = "";
    size_t n_err = 0, n_issue = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&co[i], 0, offsetof(claim_out, crt));
        mbedtls_x509_crt_init(&co[i].crt);
        if (!batch[i].csr) {
            co[i].verdict = -2;   /* a JITR announcement: not ours */
            continue;
        }
        claim_decide(p, &batch[i], batch, i, &co[i], err, sizeof err);
        if (co[i].verdict == 1) {
            crts[n_issue] = &co[i].crt;
            pols[n_issue++] = co[i].policy;
        }
        n_err += co[i].verdict == -1;
        if (p->cfg.verbose)
            fprintf(stderr, "fleetdrill: provisioning: claim %s: %s %s\n", batch[i].dev,
                    co[i].verdict == 1 ? "issue with" : co[i].verdict == 0 ? "refuse:" : "no answer:",
                    co[i].verdict == 1 ? co[i].policy : co[i].verdict == 0 ? co[i].reason : err);
    }
    fdl_reg_status rs = fdl_registry_cert_enroll_batch(p->reg, crts, pols, n_issue, "claim: issued to the device's CSR");
    size_t issued = 0, refused = 0, bad = 0;
    fdl_hist *lat = p->issue;
    for (size_t i = 0; i < n; i++) {
        claim_out *o = &co[i];
        if (o->verdict == 1 && rs == FDL_REG_OK) {
            char *pem = fdl_malloc(CLAIM_PEM_MAX + chain_len);
            size_t plen = 0;
            if (pem && append_cert_pem(o->der, o->der_len, pem, CLAIM_PEM_MAX, &plen) == 0) {
                memcpy(pem + plen, chain, chain_len);
                claim_reply(p, batch[i].dev, FDL_TOPIC_CLAIM_ACCEPTED, pem, plen + chain_len);
                issued++;
                pthread_mutex_lock(&p->mu);
                fdl_hist_add(lat, (fdl_now_ns() - batch[i].recv_ns) / 1000u);
                pthread_mutex_unlock(&p->mu);
            }
            fdl_free(pem);
        } else if (o->verdict == 0) {
            claim_reply(p, batch[i].dev, FDL_TOPIC_CLAIM_REJECTED, o->reason, strlen(o->reason));
            refused++;
            bad += !strncmp(o->reason, "certificate request refused", 27);
        }
        mbedtls_x509_crt_free(&o->crt);
        fdl_free(batch[i].csr);
        batch[i].csr = NULL;
    }
    pthread_mutex_lock(&p->mu);
    p->st.claim_issued += issued;
    p->st.claim_rejected += refused;
    p->st.claim_bad_csr += bad;
    p->st.rule_errors += n_err;
    if (n_err)
        snprintf(p->st.last_error, sizeof p->st.last_error, "%s", err);
    if (rs != FDL_REG_OK) {
        p->st.registry_errors += n_issue;
        snprintf(p->st.last_error, sizeof p->st.last_error, "claim registry: %s", fdl_registry_last_error(p->reg));
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
    claim_out *co = p->cfg.issuer ? fdl_calloc(PROV_BATCH, sizeof *co) : NULL;
    const mbedtls_x509_crt **crts = p->cfg.issuer ? fdl_calloc(PROV_BATCH, sizeof *crts) : NULL;
    const char **pols = p->cfg.issuer ? fdl_calloc(PROV_BATCH, sizeof *pols) : NULL;
    char *chain = p->cfg.issuer ? fdl_malloc(CLAIM_PEM_MAX) : NULL;
    size_t chain_len = chain ? chain_pem(p, chain, CLAIM_PEM_MAX) : 0;
    if (!batch || !dec || !pol || !why || (p->cfg.issuer && (!co || !crts || !pols || !chain_len)))
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

        size_t n_claims = 0;
        for (size_t i = 0; i < n; i++)
            n_claims += batch[i].csr != NULL;
        if (n_claims)
            claim_batch(p, batch, n, co, crts, pols, chain, chain_len);
        if (n_claims == n)
            continue;

        size_t nd = 0, n_err = 0;
        char err[512] = "";
        for (size_t i = 0; i < n; i++) {
            if (co && co[i].verdict != -2)
                continue;   /* a claim, answered above */
            fdl_reg_device d;
            memset(&d, 0, sizeof d);
            fdl_reg_status rs = fdl_registry_device_get(p->reg, batch[i].dev, &d);
            fdl_rules_device rd = {.id = batch[i].dev, .serial = batch[i].serial, .fingerprint = batch[i].fp,
                                   .source = batch[i].source, .firmware = d.firmware_version, .sold = d.sold,
                                   .recalled = d.recalled,
                                   /* A manufacturing record always names the firmware shipped. */
                                   .known = rs == FDL_REG_OK && (d.firmware_version[0] || d.sold)};
            int v = d.service ? 0 : fdl_rules_decide(p->rules, &rd, pol[nd], sizeof pol[nd], why[nd], sizeof why[nd], err, sizeof err);
            if (d.service)
                snprintf(why[nd], sizeof why[nd], "%s is a reserved identity (a cloud service)", batch[i].dev);
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
                if (batch[i].at_ms > 0 && now >= batch[i].at_ms && (!co || co[i].verdict == -2))
                    fdl_hist_add(p->decide, (uint64_t)(now - batch[i].at_ms) * 1000u);
        }
        pthread_mutex_unlock(&p->mu);
    }
out:
    fdl_free(co);
    fdl_free(crts);
    fdl_free(pols);
    fdl_free(chain);
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
    if (!msg->topic)
        return;
    if (!strcmp(msg->topic, FDL_TOPIC_PENDING) && msg->payloadlen > 0)
        handle_pending(p, msg->payload, (size_t)msg->payloadlen);
    else if (!strncmp(msg->topic, FDL_TOPIC_CLAIM_PREFIX, strlen(FDL_TOPIC_CLAIM_PREFIX)))
        handle_csr(p, msg->topic, msg->payload, msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0);
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    fdl_prov *p = ud;
    pthread_mutex_lock(&p->mu);
    p->connect_rc = rc;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (rc == 0) {
        char *subs[2] = {FDL_TOPIC_PENDING, FDL_TOPIC_CLAIM_PREFIX "+/" FDL_TOPIC_CLAIM_CSR};
        mosquitto_subscribe_multiple(m, NULL, p->cfg.issuer ? 2 : 1, subs, 1, 0, NULL);
    }
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    (void)mid;
    fdl_prov *p = ud;
    pthread_mutex_lock(&p->mu);
    int ok = n > 0;
    for (int i = 0; i < n; i++)
        ok &= granted[i] <= 2;
    p->subscribed = ok ? 1 : -1;
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
    p->issue = fdl_hist_new();
    p->queue = fdl_calloc(PROV_QUEUE_MAX, sizeof *p->queue);
    if (!p->queue) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    fdl_registry_opts ro = {.actor = FDL_ACTOR_PROVISIONING};
    if (!p->decide || !p->issue || fdl_registry_open(cfg->registry_path, &ro, &p->reg) != FDL_REG_OK) {
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
    out->claim_issue_p50_us = fdl_hist_percentile(p->issue, 50);
    out->claim_issue_p99_us = fdl_hist_percentile(p->issue, 99);
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
    if (p->queue)
        for (size_t i = 0; i < p->qlen; i++)
            fdl_free(p->queue[(p->qhead + i) % PROV_QUEUE_MAX].csr);
    fdl_free(p->queue);
    fdl_rules_free(p->rules);
    fdl_registry_free(p->reg);
    fdl_hist_free(p->decide);
    fdl_hist_free(p->issue);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    fdl_free(p);
}
