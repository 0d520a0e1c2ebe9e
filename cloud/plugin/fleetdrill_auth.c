/*
 * cloud/plugin/fleetdrill_auth.c — the Mosquitto 2.0 plugin (API v5): a thin shell.
 *
 * Everything it decides is decided by plain C tested without a broker:
 * cloud/authz.c (connect, JITR, rate limit, topic policy) and cloud/schema.c
 * (payload rules). This file translates Mosquitto events into those calls,
 * logs every refusal with its reason, and keeps the registry informed:
 *
 *   BASIC_AUTH  certificate -> registry: ACTIVE connects as its device id; a
 *               factory certificate seen for the first time is recorded PENDING
 *               and announced on $fleet/registry/pending (the provisioning
 *               service decides); everything else is refused with its reason.
 *   ACL_CHECK   the identity's policy; denials counted per identity.
 *   MESSAGE     payload rules for topics that have a schema: a bad payload is
 *               dropped (PUBACK still sent: the sender learns nothing), counted
 *               and logged; a good one is replaced by its canonical form.
 *   CONTROL     $CONTROL/fleetdrill/v1, "kick <device> <request-id>" from a
 *               service identity whose policy allows it: every connection of the
 *               device is closed now; the answer goes to the sender on
 *               $CONTROL/fleetdrill/v1/response.
 *   DISCONNECT  closes the session record.
 *   TICK        writes buffered sessions and counters to the registry, one
 *               transaction per kind, at most every FLUSH_MS.
 *
 * Options (mosquitto.conf):
 *   plugin_opt_registry <path>        the fleet registry (sqlite), required
 *   plugin_opt_schema <path>          payload rules (cloud/schema.h text); default:
 *                                     the built-in telemetry schema
 *   plugin_opt_jitr_rate <per second> registration attempts per source address
 *   plugin_opt_jitr_burst <n>         and their burst
 *
 * Ablations (scenario drills switch one defence off to see which other layer
 * still catches an attack; each is logged loudly at start and per decision):
 *   plugin_opt_registry_check off     any certificate TLS accepted connects as its CN
 *   plugin_opt_policy off             allow-all instead of the per-device policy
 *   plugin_opt_payload_rules off      no payload rules: every payload is delivered as sent
 *
 * The listener must not set use_identity_as_username: Mosquitto skips plugin
 * authentication when it does. Here the plugin authenticates the certificate
 * against the registry and then sets the user name to the registered device id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "cloud/authz.h"
#include "cloud/registry.h"
#include "cloud/schema.h"

/* Only the three plugin entry points are exported (the library is built with hidden visibility). */
#define FDL_PLUGIN_API __attribute__((visibility("default")))

#define FLUSH_MS 200                 /* registry writes at most this often */
#define MAX_SESSIONS_BUF 4096        /* buffered session changes before a forced flush */
#define MAX_CLIENTS (1u << 16)       /* live connections tracked (open addressing) */
#define MAX_COUNTED 4096             /* identities with unflushed counters */
#define CONTROL_TOPIC "$CONTROL/fleetdrill/v1"
#define PENDING_TOPIC "$fleet/registry/pending"

typedef struct live_client {
    const struct mosquitto *client;  /* NULL = free slot; a tombstone is (void *)1 */
    int64_t session_id;
} live_client;

typedef struct pending_session {
    fdl_reg_session s;
    char fp[65], device[80], client_id[256], address[64];
} pending_session;

typedef struct counted {
    char id[FDL_REG_ID_MAX + 1];
    fdl_reg_counters d;
} counted;

static mosquitto_plugin_id_t *g_id;
static fdl_authz *g_authz;
static fdl_registry *g_reg;          /* sessions and counters (its own handle) */
static fdl_schema_set *g_schemas;
static live_client *g_live;
static pending_session *g_sess;
static size_t g_n_sess;
static counted *g_cnt;
static size_t g_n_cnt;
static int64_t g_session_base, g_session_seq, g_last_flush_ms;
static uint64_t g_dropped_records;   /* bookkeeping we had to give up on (buffers full) */
static int g_payload_rules_off;      /* ablation: plugin_opt_payload_rules off */

#define TOMBSTONE ((const struct mosquitto *)1)

FDL_PLUGIN_API int mosquitto_plugin_version(int count, const int *versions)
{
    for (int i = 0; i < count; i++)
        if (versions[i] == 5)
            return 5;
    return -1;
}

static const char *safe(const char *s)
{
    return s ? s : "(none)";
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- bookkeeping: sessions and counters, flushed in batches ------------------ */

static void flush(void)
{
    if (g_n_sess) {
        fdl_reg_session *batch = malloc(g_n_sess * sizeof *batch);
        if (batch) {
            for (size_t i = 0; i < g_n_sess; i++)
                batch[i] = g_sess[i].s;
            fdl_reg_status st = fdl_registry_sessions_apply(g_reg, batch, g_n_sess);
            if (st != FDL_REG_OK)
                mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetdrill: could not record %zu session changes: %s",
                                     g_n_sess, fdl_registry_last_error(g_reg));
            free(batch);
        }
        g_n_sess = 0;
    }
    if (g_n_cnt) {
        const char **ids = malloc(g_n_cnt * sizeof *ids);
        fdl_reg_counters *d = malloc(g_n_cnt * sizeof *d);
        if (ids && d) {
            for (size_t i = 0; i < g_n_cnt; i++) {
                ids[i] = g_cnt[i].id;
                d[i] = g_cnt[i].d;
            }
            if (fdl_registry_counters_add(g_reg, ids, d, g_n_cnt) != FDL_REG_OK)
                mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetdrill: could not record counters: %s",
                                     fdl_registry_last_error(g_reg));
        }
        free(ids);
        free(d);
        g_n_cnt = 0;
    }
    g_last_flush_ms = wall_ms();
}

/* The unflushed counters of id (created at zero); NULL when the buffer is full. */
static fdl_reg_counters *count_for(const char *id)
{
    if (!id || !id[0])
        id = "unknown";
    for (size_t i = 0; i < g_n_cnt; i++)
        if (!strcmp(g_cnt[i].id, id))
            return &g_cnt[i].d;
    if (g_n_cnt == MAX_COUNTED)
        flush();
    counted *c = &g_cnt[g_n_cnt++];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    return &c->d;
}

static size_t live_hash(const struct mosquitto *client)
{
    uintptr_t p = (uintptr_t)client;
    p ^= p >> 17;
    p *= 0x9e3779b97f4a7c15ull;
    return (size_t)(p >> 20) & (MAX_CLIENTS - 1);
}

static live_client *live_find(const struct mosquitto *client)
{
    size_t h = live_hash(client);
    for (size_t i = 0; i < MAX_CLIENTS; i++) {
        live_client *l = &g_live[(h + i) & (MAX_CLIENTS - 1)];
        if (l->client == client)
            return l;
        if (!l->client)
            return NULL;
    }
    return NULL;
}

static pending_session *session_slot(void)
{
    if (g_n_sess == MAX_SESSIONS_BUF)
        flush();
    return &g_sess[g_n_sess++];
}

static void session_close(const struct mosquitto *client)
{
    live_client *l = live_find(client);
    if (!l)
        return;
    pending_session *p = session_slot();
    memset(p, 0, sizeof *p);
    p->s.id = l->session_id;
    p->s.open = 0;
    p->s.at_ms = wall_ms();
    l->client = TOMBSTONE;
}

static void session_open(struct mosquitto *client, const fdl_authz_conn *c)
{
    session_close(client);   /* a recycled client struct whose disconnect we missed */
    size_t h = live_hash(client);
    live_client *slot = NULL;
    for (size_t i = 0; i < MAX_CLIENTS; i++) {
        live_client *l = &g_live[(h + i) & (MAX_CLIENTS - 1)];
        if (!l->client || l->client == TOMBSTONE) {
            slot = l;
            break;
        }
    }
    if (!slot) {
        g_dropped_records++;
        return;
    }
    slot->client = client;
    slot->session_id = g_session_base + ++g_session_seq;
    pending_session *p = session_slot();
    memset(p, 0, sizeof *p);
    snprintf(p->fp, sizeof p->fp, "%s", c->fingerprint);
    snprintf(p->device, sizeof p->device, "%s", c->identity);
    snprintf(p->client_id, sizeof p->client_id, "%s", safe(mosquitto_client_id(client)));
    snprintf(p->address, sizeof p->address, "%s", safe(mosquitto_client_address(client)));
    p->s = (fdl_reg_session){.id = slot->session_id, .open = 1, .at_ms = wall_ms(), .fingerprint = p->fp,
                             .device_id = p->device, .client_id = p->client_id, .address = p->address};
}

/* ---- events ------------------------------------------------------------------ */

static void announce_pending(const fdl_authz_conn *c, const char *source)
{
    char payload[512];
    int n = snprintf(payload, sizeof payload,
                     "{\"fingerprint\":\"%s\",\"device\":\"%s\",\"serial\":\"%s\",\"source\":\"%s\",\"at_ms\":%lld}",
                     c->fingerprint, c->identity, c->serial, source, (long long)wall_ms());
    if (n > 0 && (size_t)n < sizeof payload)
        mosquitto_broker_publish_copy(NULL, PENDING_TOPIC, n, payload, 1, false, NULL);
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_basic_auth *ed = event_data;
    (void)event;
    (void)userdata;
    X509 *cert = mosquitto_client_certificate(ed->client);
    unsigned char *der = NULL;
    int len = cert ? i2d_X509(cert, &der) : 0;
    const char *addr = safe(mosquitto_client_address(ed->client));
    fdl_authz_conn c;
    fdl_authz_reason r = fdl_authz_connect_ex(g_authz, der, len > 0 ? (size_t)len : 0, addr,
                                              mosquitto_client_id(ed->client), wall_ms(), &c);
    OPENSSL_free(der);
    X509_free(cert);
    if (r == FDL_AUTHZ_JITR_RECORDED || r == FDL_AUTHZ_PENDING || r == FDL_AUTHZ_RATE_LIMITED) {
        /* The registration window logs verbosely: who, which certificate, from where. */
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetdrill: registration: %s serial %s (%s CA) from %s: %s",
                             c.identity[0] ? c.identity : "?", c.serial[0] ? c.serial : "?",
                             c.issuer_role[0] ? c.issuer_role : "known", addr, fdl_authz_reason_str(r));
        /* Announced at first sight and again on every retry while PENDING: the
         * service's decision is idempotent, and a lost announcement (a full
         * queue, a service restart) cannot strand a device. */
        if (r == FDL_AUTHZ_JITR_RECORDED || r == FDL_AUTHZ_PENDING)
            announce_pending(&c, addr);
    }
    if (r != FDL_AUTHZ_ALLOW) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetdrill: refused connection from %s (client id %s): %s [cert %.16s]",
                             addr, safe(mosquitto_client_id(ed->client)), fdl_authz_reason_str(r),
                             c.fingerprint[0] ? c.fingerprint : "-");
        fdl_reg_counters *k = count_for(c.identity);
        if (k)
            k->refused_connect++;
        return MOSQ_ERR_AUTH;
    }
    if (c.ablated)
        mosquitto_log_printf(MOSQ_LOG_NOTICE,
                             "fleetdrill: ABLATION registry check off: admitted %s from %s as %s (registry: %s)",
                             safe(mosquitto_client_id(ed->client)), addr, c.identity,
                             fdl_authz_reason_str(c.ablated_reason));
    if (mosquitto_set_username(ed->client, c.identity) != MOSQ_ERR_SUCCESS)
        return MOSQ_ERR_AUTH;
    session_open(ed->client, &c);
    return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_disconnect *ed = event_data;
    (void)event;
    (void)userdata;
    session_close(ed->client);
    return MOSQ_ERR_SUCCESS;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_acl_check *ed = event_data;
    (void)event;
    (void)userdata;
    fdl_policy_action action;
    const char *verb;
    switch (ed->access) {
    case MOSQ_ACL_WRITE: action = FDL_POLICY_PUBLISH; verb = "publish to"; break;
    case MOSQ_ACL_SUBSCRIBE: action = FDL_POLICY_SUBSCRIBE; verb = "subscribe to"; break;
    case MOSQ_ACL_READ: action = FDL_POLICY_RECEIVE; verb = "receive from"; break;
    case MOSQ_ACL_UNSUBSCRIBE: return MOSQ_ERR_SUCCESS;   /* giving up access needs no permission */
    default: return MOSQ_ERR_ACL_DENIED;
    }
    const char *user = mosquitto_client_username(ed->client);
    char detail[160];
    fdl_authz_reason r = fdl_authz_check(g_authz, user, mosquitto_client_id(ed->client), action, ed->topic,
                                         ed->topic ? strlen(ed->topic) : 0, detail, sizeof detail);
    if (r == FDL_AUTHZ_ALLOW)
        return MOSQ_ERR_SUCCESS;
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetdrill: denied %s %s %s: %s (%s)", safe(user), verb, safe(ed->topic),
                         fdl_authz_reason_str(r), detail[0] ? detail : "-");
    fdl_reg_counters *k = count_for(user);
    if (k) {
        if (action == FDL_POLICY_PUBLISH)
            k->denied_publish++;
        else if (action == FDL_POLICY_SUBSCRIBE)
            k->denied_subscribe++;
        else
            k->denied_receive++;
    }
    return MOSQ_ERR_ACL_DENIED;
}

static int on_message(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_message *ed = event_data;
    (void)event;
    (void)userdata;
    if (g_payload_rules_off || !g_schemas || !ed->topic)
        return MOSQ_ERR_SUCCESS;
    const fdl_schema *sc = fdl_schema_set_match(g_schemas, ed->topic, strlen(ed->topic));
    if (!sc)
        return MOSQ_ERR_SUCCESS;   /* no rule for this topic: the policy alone decides */
    size_t cap = fdl_schema_output_max(sc), out_len = 0;
    char *out = mosquitto_calloc(1, cap);
    if (!out)
        return MOSQ_ERR_NOMEM;
    fdl_schema_verdict v;
    fdl_schema_status st = fdl_schema_apply(sc, ed->payload, ed->payloadlen, out, cap, &out_len, &v);
    if (st != FDL_SCHEMA_OK) {
        const char *user = mosquitto_client_username(ed->client);
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetdrill: dropped payload from %s on %s: %s (field %s, offset %zu, %u bytes)",
                             safe(user), ed->topic, fdl_schema_strerror(st), v.field[0] ? v.field : "-", v.offset,
                             ed->payloadlen);
        fdl_reg_counters *k = count_for(user);
        if (k)
            k->bad_payload++;
        mosquitto_free(out);
        /* ACL_DENIED: Mosquitto drops the message and still acknowledges it (drop, not reject). */
        return MOSQ_ERR_ACL_DENIED;
    }
    /* Mosquitto frees the original payload itself when the plugin replaced it. */
    ed->payload = out;
    ed->payloadlen = (uint32_t)out_len;
    return MOSQ_ERR_SUCCESS;
}

static void control_reply(struct mosquitto *client, const char *text)
{
    const char *cid = mosquitto_client_id(client);
    if (cid)
        mosquitto_broker_publish_copy(cid, CONTROL_TOPIC "/response", (int)strlen(text), text, 1, false, NULL);
}

static int on_control(int event, void *event_data, void *userdata)
{
    struct mosquitto_evt_control *ed = event_data;
    (void)event;
    (void)userdata;
    const char *user = mosquitto_client_username(ed->client);
    char detail[160], text[256], op[16], dev[80], req[64], reply[320];
    /* Whatever the broker's own ACL path did, the operator's policy must allow this. */
    if (fdl_authz_check(g_authz, user, mosquitto_client_id(ed->client), FDL_POLICY_PUBLISH, CONTROL_TOPIC,
                        strlen(CONTROL_TOPIC), detail, sizeof detail) != FDL_AUTHZ_ALLOW) {
        mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetdrill: control command from %s refused (%s)", safe(user), detail);
        return MOSQ_ERR_ACL_DENIED;
    }
    size_t n = ed->payloadlen < sizeof text - 1 ? ed->payloadlen : sizeof text - 1;
    memcpy(text, ed->payload, n);
    text[n] = '\0';
    if (sscanf(text, "%15s %79s %63s", op, dev, req) != 3 || strcmp(op, "kick") != 0) {
        snprintf(reply, sizeof reply, "error - - unknown command");
        control_reply(ed->client, reply);
        return MOSQ_ERR_SUCCESS;
    }
    int rc = mosquitto_kick_client_by_username(dev, false);
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleetdrill: %s kicked every connection of %s (request %s)", safe(user), dev,
                         req);
    snprintf(reply, sizeof reply, "kicked %s %s %s", dev, req, rc == MOSQ_ERR_SUCCESS ? "ok" : "error");
    control_reply(ed->client, reply);
    return MOSQ_ERR_SUCCESS;
}

static int on_tick(int event, void *event_data, void *userdata)
{
    (void)event;
    (void)event_data;
    (void)userdata;
    if ((g_n_sess || g_n_cnt) && wall_ms() - g_last_flush_ms >= FLUSH_MS)
        flush();
    return MOSQ_ERR_SUCCESS;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(FDL_SCHEMA_MAX_TEXT + 1);
    size_t n = buf ? fread(buf, 1, FDL_SCHEMA_MAX_TEXT + 1, f) : 0;
    fclose(f);
    if (!buf || n > FDL_SCHEMA_MAX_TEXT) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void release(void)
{
    if (g_reg)
        flush();
    fdl_schema_set_free(g_schemas);
    fdl_authz_free(g_authz);
    fdl_registry_free(g_reg);
    free(g_live);
    free(g_sess);
    free(g_cnt);
    g_schemas = NULL;
    g_authz = NULL;
    g_reg = NULL;
    g_live = NULL;
    g_sess = NULL;
    g_cnt = NULL;
}

static const struct {
    int event;
    MOSQ_FUNC_generic_callback cb;
} k_callbacks[] = {
    {MOSQ_EVT_BASIC_AUTH, on_basic_auth}, {MOSQ_EVT_ACL_CHECK, on_acl_check}, {MOSQ_EVT_MESSAGE, on_message},
    {MOSQ_EVT_DISCONNECT, on_disconnect}, {MOSQ_EVT_TICK, on_tick},
};

FDL_PLUGIN_API int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *opts, int n)
{
    const char *registry = NULL, *schema = NULL;
    fdl_authz_cfg cfg = {0};
    for (int i = 0; i < n; i++) {
        if (!strcmp(opts[i].key, "registry"))
            registry = opts[i].value;
        else if (!strcmp(opts[i].key, "schema"))
            schema = opts[i].value;
        else if (!strcmp(opts[i].key, "jitr_rate"))
            cfg.jitr_rate_per_source = atof(opts[i].value);
        else if (!strcmp(opts[i].key, "jitr_burst"))
            cfg.jitr_burst = atof(opts[i].value);
        else if (!strcmp(opts[i].key, "registry_check"))
            cfg.registry_check_off = !strcmp(opts[i].value, "off");
        else if (!strcmp(opts[i].key, "policy"))
            cfg.policy_off = !strcmp(opts[i].value, "off");
        else if (!strcmp(opts[i].key, "payload_rules"))
            g_payload_rules_off = !strcmp(opts[i].value, "off");
    }
    if (cfg.registry_check_off)
        mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetdrill: ABLATION: registry check off (any certificate the TLS "
                                               "layer accepts connects as its CN)");
    if (cfg.policy_off)
        mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetdrill: ABLATION: per-device policy off (allow-all)");
    if (g_payload_rules_off)
        mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetdrill: ABLATION: payload rules off (junk is delivered)");
    if (!registry) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "fleetdrill: plugin_opt_registry is required");
        return MOSQ_ERR_INVAL;
    }
    char err[512];
    if (fdl_authz_open_cfg(registry, &cfg, &g_authz, err, sizeof err) != 0) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "fleetdrill: %s", err);
        return MOSQ_ERR_UNKNOWN;
    }
    fdl_registry_opts ro = {.actor = "broker"};
    if (fdl_registry_open(registry, &ro, &g_reg) != FDL_REG_OK) {
        mosquitto_log_printf(MOSQ_LOG_ERR, "fleetdrill: registry %s cannot be opened", registry);
        release();
        return MOSQ_ERR_UNKNOWN;
    }
    if (schema) {
        size_t len = 0;
        char *text = read_text(schema, &len);
        fdl_schema_status st = text ? fdl_schema_set_parse(text, len, &g_schemas, err, sizeof err) : FDL_SCHEMA_BAD_ARG;
        free(text);
        if (st != FDL_SCHEMA_OK) {
            mosquitto_log_printf(MOSQ_LOG_ERR, "fleetdrill: payload rules %s: %s", schema,
                                 text ? err : "cannot read (or over the size ceiling)");
            release();
            return MOSQ_ERR_INVAL;
        }
    } else if (fdl_schema_set_default(&g_schemas) != FDL_SCHEMA_OK) {
        release();
        return MOSQ_ERR_NOMEM;
    }
    g_live = calloc(MAX_CLIENTS, sizeof *g_live);
    g_sess = calloc(MAX_SESSIONS_BUF, sizeof *g_sess);
    g_cnt = calloc(MAX_COUNTED, sizeof *g_cnt);
    if (!g_live || !g_sess || !g_cnt) {
        release();
        return MOSQ_ERR_NOMEM;
    }
    /* Session ids: this broker's start time in ms, shifted, plus a counter, so ids
     * never repeat across broker runs; whatever was open before is over now. */
    g_session_base = wall_ms() * 1000000;
    g_session_seq = 0;
    size_t closed = 0;
    fdl_registry_sessions_close_all(g_reg, wall_ms(), &closed);
    g_last_flush_ms = wall_ms();

    g_id = identifier;
    *userdata = NULL;
    for (size_t i = 0; i < sizeof k_callbacks / sizeof k_callbacks[0]; i++) {
        if (mosquitto_callback_register(g_id, k_callbacks[i].event, k_callbacks[i].cb, NULL, NULL) !=
            MOSQ_ERR_SUCCESS) {
            release();
            return MOSQ_ERR_UNKNOWN;
        }
    }
    if (mosquitto_callback_register(g_id, MOSQ_EVT_CONTROL, on_control, CONTROL_TOPIC, NULL) != MOSQ_ERR_SUCCESS) {
        release();
        return MOSQ_ERR_UNKNOWN;
    }
    mosquitto_log_printf(MOSQ_LOG_INFO,
                         "fleetdrill: authentication, authorization and payload rules from registry %s (%zu stale "
                         "sessions closed)",
                         registry, closed);
    return MOSQ_ERR_SUCCESS;
}

FDL_PLUGIN_API int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *opts, int n)
{
    (void)userdata;
    (void)opts;
    (void)n;
    for (size_t i = 0; i < sizeof k_callbacks / sizeof k_callbacks[0]; i++)
        mosquitto_callback_unregister(g_id, k_callbacks[i].event, k_callbacks[i].cb, NULL);
    mosquitto_callback_unregister(g_id, MOSQ_EVT_CONTROL, on_control, CONTROL_TOPIC);
    if (g_dropped_records)
        mosquitto_log_printf(MOSQ_LOG_WARNING, "fleetdrill: %llu session records were not kept (table full)",
                             (unsigned long long)g_dropped_records);
    release();
    return MOSQ_ERR_SUCCESS;
}
