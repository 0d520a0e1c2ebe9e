/* cloud/operator.c — kick a device through the broker plugin (see operator.h). */
#include "cloud/operator.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

#include "cloud/enroll.h"

typedef struct op_state {
    int connected, subscribed, answered;
    int connack;
    char expect[160];
    char answer[320];
} op_state;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void on_connect(struct mosquitto *m, void *ud, int rc)
{
    op_state *s = ud;
    s->connack = rc;
    s->connected = rc == 0 ? 1 : -1;
    if (rc == 0)
        mosquitto_subscribe(m, NULL, FDL_TOPIC_CONTROL_RESPONSE, 1);
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted)
{
    (void)m;
    (void)mid;
    op_state *s = ud;
    s->subscribed = n > 0 && granted[0] <= 2 ? 1 : -1;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg)
{
    (void)m;
    op_state *s = ud;
    size_t n = (size_t)msg->payloadlen < sizeof s->answer - 1 ? (size_t)msg->payloadlen : sizeof s->answer - 1;
    char text[sizeof s->answer];
    memcpy(text, msg->payload, n);
    text[n] = '\0';
    if (!strncmp(text, s->expect, strlen(s->expect)) || !strncmp(text, "error", 5)) {
        memcpy(s->answer, text, n + 1);
        s->answered = 1;
    }
}

/* Runs the client loop until *flag is nonzero or the deadline passes. */
static int wait_for(struct mosquitto *m, const int *flag, double deadline)
{
    while (!*flag && now_ms() < deadline) {
        int rc = mosquitto_loop(m, 20, 1);
        if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN)
            return rc;
    }
    return *flag ? 0 : MOSQ_ERR_TIMEOUT;
}

int fdl_operator_kick(const fdl_operator_cfg *cfg, const char *device_id, double *rtt_ms, char *err, size_t errcap)
{
    op_state s;
    memset(&s, 0, sizeof s);
    double deadline = now_ms() + (cfg->timeout_ms ? cfg->timeout_ms : 5000);
    char req[32], payload[200];
    snprintf(req, sizeof req, "r%ld", (long)(now_ms() * 1000) % 1000000000L);
    snprintf(s.expect, sizeof s.expect, "kicked %s %s", device_id, req);
    snprintf(payload, sizeof payload, "kick %s %s", device_id, req);
    int ret = -1;
    char cid[64];
    snprintf(cid, sizeof cid, "%s-%s", FDL_ACTOR_OPERATOR, req);
    struct mosquitto *m = fdl_enroll_actor_client("operator", cid, &s, cfg->host, cfg->port, cfg->cafile,
                                                  cfg->certfile, cfg->keyfile, err, errcap);
    if (!m)
        return -1;
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_message_callback_set(m, on_message);
    if (wait_for(m, &s.connected, deadline) != 0 || s.connected < 0) {
        snprintf(err, errcap, "operator: not connected: %s",
                 s.connected < 0 ? mosquitto_connack_string(s.connack) : "timeout");
        goto cleanup;
    }
    if (wait_for(m, &s.subscribed, deadline) != 0 || s.subscribed < 0) {
        snprintf(err, errcap, "operator: subscription to %s refused", FDL_TOPIC_CONTROL_RESPONSE);
        goto cleanup;
    }
    double t0 = now_ms();
    int rc = mosquitto_publish(m, NULL, FDL_TOPIC_CONTROL, (int)strlen(payload), payload, 1, false);
    if (rc != MOSQ_ERR_SUCCESS || wait_for(m, &s.answered, deadline) != 0) {
        snprintf(err, errcap, "operator: no answer from the broker plugin on %s", FDL_TOPIC_CONTROL_RESPONSE);
        goto cleanup;
    }
    if (rtt_ms)
        *rtt_ms = now_ms() - t0;
    if (strncmp(s.answer, s.expect, strlen(s.expect)) != 0 || !strstr(s.answer, " ok")) {
        snprintf(err, errcap, "operator: the plugin answered '%s'", s.answer);
        goto cleanup;
    }
    ret = 0;
cleanup:
    mosquitto_disconnect(m);
    mosquitto_loop(m, 10, 1);
    mosquitto_destroy(m);
    return ret;
}
