/* cloud/artifacts.c — the OTA artifact store (see artifacts.h). */
#include "cloud/artifacts.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>

#include "cloud/enroll.h"
#include "cloud/otamsg.h"
#include "devices/ota.h"
#include "sim/alloc.h"
#include "sim/fsutil.h"
#include "sim/vclock.h"

#define ART_ID_MAX (FDL_OTAMSG_ID_MAX - 1)   /* artifact ids: the job document's rule */
#define ART_DEV_MAX (FDL_OTAMSG_ID_MAX - 1)  /* device ids as a topic level */

int fdl_artifacts_path(const char *dir, const char *id, char *buf, size_t cap)
{
    /* "." and ".." are not ids: they would name directories. */
    if (!dir || !id || !fdl_otamsg_valid_id(id, strlen(id), ART_ID_MAX))
        return -1;
    int n = snprintf(buf, cap, "%s/%s.img", dir, id);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

int fdl_artifacts_put(const char *dir, const char *id, const uint8_t *data, size_t len, char *err, size_t errcap)
{
    char path[1200];
    if (fdl_artifacts_path(dir, id, path, sizeof path) != 0 || (!data && len)) {
        snprintf(err, errcap, "artifact id '%s': 1..%d bytes of [A-Za-z0-9._-]", id ? id : "(null)", ART_ID_MAX);
        return -1;
    }
    if (fdl_mkdir_p(dir, 0755) != 0 || fdl_write_file_atomic(path, data, len, 0644) != 0) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the service ------------------------------------------------------------------ */

typedef struct art_req {
    char device[ART_DEV_MAX + 1];
    char artifact[ART_ID_MAX + 1];
    uint32_t offset, asked;
    uint64_t at_ns;
} art_req;

/* An answer waiting for its due time (a tap delayed it). */
typedef struct art_due {
    art_req r;
    fdl_artifacts_answer ans;
    uint32_t file_size;
    uint64_t due_ns;
    int known;
} art_due;

struct fdl_artifacts {
    fdl_artifacts_cfg cfg;
    char dir[1024];
    struct mosquitto *mosq;
    pthread_t worker;
    int worker_started, stopping;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    art_req *queue;            /* ring of FDL_ARTIFACTS_QUEUE_MAX */
    size_t qhead, qlen;
    art_due *due;              /* delayed answers, unordered, at most FDL_ARTIFACTS_QUEUE_MAX */
    size_t n_due;
    fdl_artifacts_tap tap;
    int has_tap;
    int subscribed, connect_rc;
    fdl_artifacts_stats st;
    fdl_artifacts_req recent[FDL_ARTIFACTS_RECENT];
    size_t n_recent;           /* total ever recorded (ring index = n % RECENT) */
};

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    fdl_artifacts *a = ud;
    art_req r;
    memset(&r, 0, sizeof r);
    fdl_otamsg_get g;
    int ok = fdl_otamsg_parse_get(msg->topic, msg->payload, msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0, &g) ==
             FDL_OTAMSG_OK;
    if (ok) {
        snprintf(r.device, sizeof r.device, "%s", g.device);
        snprintf(r.artifact, sizeof r.artifact, "%s", g.artifact);
        r.offset = g.offset;
        r.asked = g.length;
    }
    r.at_ns = fdl_now_ns();
    pthread_mutex_lock(&a->mu);
    a->st.requests++;
    if (!ok) {
        a->st.bad_requests++;
    } else if (a->qlen == FDL_ARTIFACTS_QUEUE_MAX) {
        a->st.queue_dropped++;
    } else {
        a->queue[(a->qhead + a->qlen) % FDL_ARTIFACTS_QUEUE_MAX] = r;
        a->qlen++;
        fdl_artifacts_req *rec = &a->recent[a->n_recent % FDL_ARTIFACTS_RECENT];
        memset(rec, 0, sizeof *rec);
        snprintf(rec->device, sizeof rec->device, "%s", r.device);
        snprintf(rec->artifact, sizeof rec->artifact, "%s", r.artifact);
        rec->offset = r.offset;
        rec->asked = r.asked;
        rec->at_ns = r.at_ns;
        a->n_recent++;
        pthread_cond_broadcast(&a->cv);
    }
    pthread_mutex_unlock(&a->mu);
}

/* Size of the artifact's file, or -1 if there is none. */
static int64_t file_size(const fdl_artifacts *a, const char *id)
{
    char path[1200];
    struct stat sb;
    if (fdl_artifacts_path(a->dir, id, path, sizeof path) != 0 || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode) ||
        sb.st_size > (off_t)UINT32_MAX)
        return -1;
    return (int64_t)sb.st_size;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Publishes one block: header, then len bytes from the file at offset (filler past its end). */
static void send_block(fdl_artifacts *a, const char *device, const char *artifact, uint32_t offset, uint32_t total,
                       uint32_t len, uint8_t *buf)
{
    char topic[160], path[1200];
    memcpy(buf, FDL_OTA_BLOCK_MAGIC, 4);
    put_be32(buf + 4, offset);
    put_be32(buf + 8, total);
    size_t have = 0;
    if (len && fdl_artifacts_path(a->dir, artifact, path, sizeof path) == 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            while (have < len) {
                ssize_t n = pread(fd, buf + FDL_OTA_BLOCK_HDR + have, len - have, (off_t)offset + (off_t)have);
                if (n <= 0)
                    break;
                have += (size_t)n;
            }
            close(fd);
        }
    }
    /* Past the end of the file (a tap asked for more than there is): filler. */
    for (size_t i = have; i < len; i++)
        buf[FDL_OTA_BLOCK_HDR + i] = (uint8_t)(0xA5 ^ (i & 0xff));
    snprintf(topic, sizeof topic, "%s%s/%s", FDL_TOPIC_OTA_PREFIX, device, FDL_TOPIC_OTA_BLOCK);
    int rc = mosquitto_publish(a->mosq, NULL, topic, (int)(FDL_OTA_BLOCK_HDR + len), buf, 1, false);
    pthread_mutex_lock(&a->mu);
    if (rc == MOSQ_ERR_SUCCESS) {
        a->st.blocks++;
        a->st.bytes += len;
    } else {
        a->st.publish_errors++;
        snprintf(a->st.last_error, sizeof a->st.last_error, "publish to %s: %s", topic, mosquitto_strerror(rc));
    }
    pthread_mutex_unlock(&a->mu);
}

static void answer(fdl_artifacts *a, const art_due *d, uint8_t *buf)
{
    uint32_t off = d->r.offset, len = d->ans.len;
    send_block(a, d->r.device, d->r.artifact, off, d->ans.total, len, buf);
    uint32_t sent = len;
    uint64_t next = (uint64_t)off + len;
    for (uint32_t k = 0; k < d->ans.extra_blocks && k < FDL_ARTIFACTS_EXTRA_MAX && next <= UINT32_MAX - FDL_OTA_BLOCK;
         k++) {
        send_block(a, d->r.device, d->r.artifact, (uint32_t)next, d->ans.total, FDL_OTA_BLOCK, buf);
        next += FDL_OTA_BLOCK;
        sent += FDL_OTA_BLOCK;
    }
    if (a->cfg.verbose)
        fprintf(stderr, "fleetdrill: artifacts: %s %s @%u: %u bytes of %u%s\n", d->r.device, d->r.artifact, off, sent,
                d->ans.total, d->known ? "" : " (unknown artifact or past its end)");
    pthread_mutex_lock(&a->mu);
    /* Credit what was sent to the request it answers (newest first: it is recent). */
    for (size_t i = 0; i < FDL_ARTIFACTS_RECENT && i < a->n_recent; i++) {
        fdl_artifacts_req *rec = &a->recent[(a->n_recent - 1 - i) % FDL_ARTIFACTS_RECENT];
        if (rec->at_ns == d->r.at_ns && rec->offset == off && !strcmp(rec->device, d->r.device)) {
            rec->sent = sent;
            break;
        }
    }
    pthread_mutex_unlock(&a->mu);
}

/* Decides the answer of one request (tap included) and when it is due. */
static void decide(fdl_artifacts *a, const art_req *r, art_due *d)
{
    memset(d, 0, sizeof *d);
    d->r = *r;
    int64_t size = file_size(a, r->artifact);
    d->known = size >= 0 && (uint64_t)r->offset < (uint64_t)size;
    d->file_size = size >= 0 ? (uint32_t)size : 0;
    if (d->known) {
        uint64_t rest = (uint64_t)size - r->offset;
        uint32_t len = r->asked < FDL_OTA_BLOCK ? r->asked : FDL_OTA_BLOCK;
        d->ans.len = rest < len ? (uint32_t)rest : len;
        d->ans.total = (uint32_t)size;
    }
    pthread_mutex_lock(&a->mu);
    fdl_artifacts_tap tap = a->tap;
    int has_tap = a->has_tap;
    pthread_mutex_unlock(&a->mu);
    if (has_tap && tap.on_request)
        tap.on_request(tap.ud, r->device, r->artifact, r->offset, r->asked, d->file_size, &d->ans);
    if (d->ans.len > FDL_OTA_BLOCK)
        d->ans.len = FDL_OTA_BLOCK;
    if (d->ans.extra_blocks > FDL_ARTIFACTS_EXTRA_MAX)
        d->ans.extra_blocks = FDL_ARTIFACTS_EXTRA_MAX;
    if (!d->known && d->ans.total == 0 && d->ans.len == 0) {
        pthread_mutex_lock(&a->mu);
        a->st.unknown++;
        pthread_mutex_unlock(&a->mu);
    }
    d->due_ns = fdl_now_ns() + d->ans.delay_ms * 1000000u;
}

static void *worker_main(void *arg)
{
    fdl_artifacts *a = arg;
    uint8_t *buf = fdl_malloc(FDL_OTA_BLOCK_HDR + FDL_OTA_BLOCK);
    if (!buf)
        return NULL;
    for (;;) {
        art_req r;
        int have = 0;
        pthread_mutex_lock(&a->mu);
        for (;;) {
            if (a->stopping)
                break;
            if (a->qlen && a->n_due < FDL_ARTIFACTS_QUEUE_MAX)
                break;
            /* Wait for a request or for the earliest delayed answer. */
            uint64_t now = fdl_now_ns(), first = UINT64_MAX;
            for (size_t i = 0; i < a->n_due; i++)
                first = a->due[i].due_ns < first ? a->due[i].due_ns : first;
            if (first <= now)
                break;
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            uint64_t wait_ns = first == UINT64_MAX ? 200000000u : first - now;
            if (wait_ns > 200000000u)
                wait_ns = 200000000u;
            dl.tv_nsec += (long)(wait_ns % 1000000000u);
            dl.tv_sec += (time_t)(wait_ns / 1000000000u) + dl.tv_nsec / 1000000000L;
            dl.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&a->cv, &a->mu, &dl);
        }
        int stop = a->stopping;
        if (!stop && a->qlen && a->n_due < FDL_ARTIFACTS_QUEUE_MAX) {
            r = a->queue[a->qhead];
            a->qhead = (a->qhead + 1) % FDL_ARTIFACTS_QUEUE_MAX;
            a->qlen--;
            have = 1;
        }
        pthread_mutex_unlock(&a->mu);
        if (stop)
            break;
        if (have) {
            art_due d;
            decide(a, &r, &d);
            if (d.ans.delay_ms == 0) {
                answer(a, &d, buf);
            } else {
                pthread_mutex_lock(&a->mu);
                a->due[a->n_due++] = d;
                pthread_mutex_unlock(&a->mu);
            }
        }
        /* Answers whose delay has passed. */
        for (;;) {
            art_due d;
            int found = 0;
            uint64_t now = fdl_now_ns();
            pthread_mutex_lock(&a->mu);
            for (size_t i = 0; i < a->n_due; i++)
                if (a->due[i].due_ns <= now) {
                    d = a->due[i];
                    a->due[i] = a->due[--a->n_due];
                    found = 1;
                    break;
                }
            pthread_mutex_unlock(&a->mu);
            if (!found)
                break;
            answer(a, &d, buf);
        }
    }
    fdl_free(buf);
    return NULL;
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    fdl_artifacts *a = ud;
    pthread_mutex_lock(&a->mu);
    a->connect_rc = rc;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    if (rc == 0)
        mosquitto_subscribe(m, NULL, FDL_TOPIC_OTA_PREFIX "+/" FDL_TOPIC_OTA_GET, 1);
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    (void)mid;
    fdl_artifacts *a = ud;
    pthread_mutex_lock(&a->mu);
    a->subscribed = n == 1 && granted[0] <= 2 ? 1 : -1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

int fdl_artifacts_start(const fdl_artifacts_cfg *cfg, fdl_artifacts **out, char *err, size_t errcap)
{
    *out = NULL;
    fdl_artifacts *a = fdl_calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    a->cfg = *cfg;
    snprintf(a->dir, sizeof a->dir, "%s", cfg->dir ? cfg->dir : "");
    a->cfg.dir = a->dir;
    a->connect_rc = -1;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->queue = fdl_calloc(FDL_ARTIFACTS_QUEUE_MAX, sizeof *a->queue);
    a->due = fdl_calloc(FDL_ARTIFACTS_QUEUE_MAX, sizeof *a->due);
    if (!a->queue || !a->due) {
        snprintf(err, errcap, "out of memory");
        goto fail;
    }
    if (!a->dir[0] || fdl_mkdir_p(a->dir, 0755) != 0) {
        snprintf(err, errcap, "artifacts: cannot create %s", a->dir);
        goto fail;
    }
    if (pthread_create(&a->worker, NULL, worker_main, a) != 0) {
        snprintf(err, errcap, "artifacts: cannot start the worker thread");
        goto fail;
    }
    a->worker_started = 1;
    a->mosq = fdl_enroll_actor_client("artifacts", FDL_ACTOR_ARTIFACTS, a, cfg->host, cfg->port, cfg->cafile,
                                      cfg->certfile, cfg->keyfile, err, errcap);
    if (!a->mosq)
        goto fail;
    mosquitto_connect_callback_set(a->mosq, on_connect);
    mosquitto_subscribe_callback_set(a->mosq, on_subscribe);
    mosquitto_message_callback_set(a->mosq, on_message);
    int rc = mosquitto_loop_start(a->mosq);
    if (rc != MOSQ_ERR_SUCCESS) {
        snprintf(err, errcap, "artifacts: %s", mosquitto_strerror(rc));
        goto fail;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&a->mu);
    while (a->subscribed == 0 && a->connect_rc <= 0 && pthread_cond_timedwait(&a->cv, &a->mu, &dl) == 0)
        ;
    int ok = a->subscribed == 1;
    int crc = a->connect_rc;
    pthread_mutex_unlock(&a->mu);
    if (!ok) {
        snprintf(err, errcap, "artifacts: %s",
                 crc > 0 ? mosquitto_connack_string(crc) : "no subscription acknowledged within 10 s");
        goto fail;
    }
    *out = a;
    return 0;
fail:
    fdl_artifacts_stop(a);
    return -1;
}

void fdl_artifacts_set_tap(fdl_artifacts *a, const fdl_artifacts_tap *tap)
{
    pthread_mutex_lock(&a->mu);
    a->has_tap = tap != NULL;
    if (tap)
        a->tap = *tap;
    else
        memset(&a->tap, 0, sizeof a->tap);
    pthread_mutex_unlock(&a->mu);
}

void fdl_artifacts_get_stats(fdl_artifacts *a, fdl_artifacts_stats *out)
{
    pthread_mutex_lock(&a->mu);
    *out = a->st;
    pthread_mutex_unlock(&a->mu);
}

size_t fdl_artifacts_recent(fdl_artifacts *a, const char *device, uint64_t since_ns, fdl_artifacts_req *out,
                            size_t cap)
{
    size_t found = 0;
    pthread_mutex_lock(&a->mu);
    size_t n = a->n_recent < FDL_ARTIFACTS_RECENT ? a->n_recent : FDL_ARTIFACTS_RECENT;
    for (size_t i = 0; i < n; i++) {
        const fdl_artifacts_req *r = &a->recent[(a->n_recent - n + i) % FDL_ARTIFACTS_RECENT];
        if (r->at_ns < since_ns || (device && strcmp(r->device, device)))
            continue;
        if (found < cap)
            out[found] = *r;
        found++;
    }
    pthread_mutex_unlock(&a->mu);
    return found;
}

void fdl_artifacts_stop(fdl_artifacts *a)
{
    if (!a)
        return;
    if (a->mosq) {
        mosquitto_disconnect(a->mosq);
        mosquitto_loop_stop(a->mosq, true);
    }
    if (a->worker_started) {
        pthread_mutex_lock(&a->mu);
        a->stopping = 1;
        pthread_cond_broadcast(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->worker, NULL);
    }
    if (a->mosq)
        mosquitto_destroy(a->mosq);
    fdl_free(a->queue);
    fdl_free(a->due);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    fdl_free(a);
}
