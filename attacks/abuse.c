/* attacks/abuse.c — a compromised device misusing its identity (see abuse.h). */
#include "attacks/abuse.h"

#include <stdio.h>
#include <string.h>

#include "attacks/attack_int.h"
#include "sim/alloc.h"

/* Beyond the broker's max_packet_size (sim/broker.h: 256 KiB). */
#define JUNK_HUGE 300000u
/* Over the payload rule's maxbytes (1 KiB), under the broker's packet cap. */
#define JUNK_BIG 4096u

typedef struct abuse {
    atk_env e;
    int env_ok;
    fdl_atk_loop *l;
    fdl_identity idn;
    int have_idn;
    fdl_atk_sess *atk, *obs;
    const char *id;
    char own_topic[96];
} abuse;

/* Opens everything; returns FDL_ATK_STAGE_NONE when the attacker is online (and the observer, if asked). */
static int abuse_open(abuse *a, const fdl_atk_target *t, const char *attacker_id, int want_observer,
                      fdl_atk_result *r)
{
    memset(a, 0, sizeof *a);
    a->id = attacker_id;
    snprintf(a->own_topic, sizeof a->own_topic, "telemetry/%s", attacker_id);
    a->env_ok = atk_env_open(&a->e, t, r) == 0;
    if (!a->env_ok || atk_env_identity(&a->e, attacker_id, &a->idn, r) != 0)
        return FDL_ATK_STAGE_SETUP;
    a->have_idn = 1;
    if (!(a->l = fdl_atk_loop_new()))
        return FDL_ATK_STAGE_SETUP;
    if (want_observer && !(a->obs = atk_env_observer(&a->e, a->l, r)))
        return FDL_ATK_STAGE_SETUP;   /* without an observer delivery cannot be judged */
    char cid[FDL_PKI_DEVICE_ID_MAX + 8];
    snprintf(cid, sizeof cid, "%s-atk", attacker_id);
    fdl_tls_client_cfg tls = atk_env_tls(&a->e, &a->idn.cert, a->idn.key);
    a->atk = atk_env_sess(&a->e, a->l, cid, &tls, 0);
    fdl_atk_note(r, "attacker: %s's own identity (%s: key %s), client id %s", attacker_id,
                 fdl_profile_name(a->idn.profile),
                 a->idn.profile == FDL_PROFILE_SE ? "used inside its token as a signing oracle" : "from key.pem", cid);
    int st = fdl_atk_sess_connect(a->atk, ATK_CONNECT_MS, "attacker", r);
    return st == FDL_ATK_STAGE_NONE ? FDL_ATK_STAGE_NONE : FDL_ATK_STAGE_SETUP;
}

static void abuse_close(abuse *a)
{
    fdl_atk_loop_free(a->l);
    if (a->have_idn)
        fdl_identity_free(&a->idn);
    atk_env_close(&a->e);
}

/* The plugin's lines about this attacker since the attack began. */
static void note_denials(abuse *a, const char *what, fdl_atk_result *r)
{
    char needle[160];
    snprintf(needle, sizeof needle, "fleetdrill: %s %s", what, a->id);
    if (fdl_atk_log_wait(a->e.t, a->e.log_from, needle, 6, ATK_LOG_WAIT_MS, r) <= 0)
        fdl_atk_note(r, "broker log: no \"%s\" line since the attack began", needle);
}

int fdl_atk_cross_publish(const fdl_atk_target *t, const char *attacker_id, const char *victim_id, fdl_atk_result *r)
{
    abuse a;
    fdl_atk_result_begin(r);
    int stage = abuse_open(&a, t, attacker_id, 1, r);
    if (stage != FDL_ATK_STAGE_NONE)
        goto cleanup;
    char m_own[16], m_x[16], msg[160], topic[96];
    atk_env_marker(&a.e, m_own, sizeof m_own);
    atk_env_marker(&a.e, m_x, sizeof m_x);
    atk_telemetry(m_own, msg, sizeof msg);
    int ack_own = fdl_atk_sess_publish(a.atk, a.own_topic, msg, strlen(msg), ATK_ACK_MS);
    snprintf(topic, sizeof topic, "telemetry/%s", victim_id);
    atk_telemetry(m_x, msg, sizeof msg);
    int ack_x = fdl_atk_sess_publish(a.atk, topic, msg, strlen(msg), ATK_ACK_MS);
    fdl_atk_loop_run_for(a.l, ATK_SETTLE_MS);
    size_t seen_own = fdl_atk_sess_count(a.obs, a.own_topic, m_own);
    size_t seen_x = fdl_atk_sess_count(a.obs, topic, m_x);
    fdl_atk_note(r, "control: published seq %s on %s (PUBACK %s): observer %s it", m_own, a.own_topic,
                 ack_own > 0 ? "received" : "missing", seen_own ? "received" : "did NOT receive");
    fdl_atk_note(r, "attack: published seq %s on %s (PUBACK %s; proves nothing in MQTT 3.1.1): observer %s it",
                 m_x, topic, ack_x > 0 ? "received" : "missing", seen_x ? "RECEIVED" : "did not receive");
    if (!seen_own && !seen_x)
        fdl_atk_note(r, "inconclusive: the observer saw neither message");
    note_denials(&a, "denied", r);
    stage = seen_x ? FDL_ATK_STAGE_NONE : FDL_ATK_STAGE_PUBLISH;
cleanup:
    abuse_close(&a);
    fdl_atk_result_end(r, stage == FDL_ATK_STAGE_NONE, stage);
    return r->succeeded;
}

/* Subscribes each filter, notes the SUBACKs; returns how many were granted. */
static int subscribe_all(abuse *a, const char *const *filters, size_t n, fdl_atk_result *r)
{
    int granted = 0;
    for (size_t i = 0; i < n; i++) {
        int code = fdl_atk_sess_subscribe(a->atk, filters[i], ATK_ACK_MS);
        if (code < 0)
            fdl_atk_note(r, "SUBSCRIBE %s: no SUBACK (connection %s)", filters[i],
                         fdl_atk_sess_closed(a->atk, NULL) ? "closed" : "open");
        else
            fdl_atk_note(r, "SUBSCRIBE %s: SUBACK 0x%02x (%s)", filters[i], (unsigned)code,
                         code == 0x80 ? "refused" : "granted");
        granted += code >= 0 && code <= 2;
    }
    return granted;
}

/* Messages the attacker received on topics that are not its own. */
static size_t foreign_msgs(const abuse *a)
{
    size_t n = 0;
    for (size_t i = 0;; i++) {
        const fdl_atk_msg *m = fdl_atk_sess_msg(a->atk, i);
        if (!m)
            break;
        char cmd[96];
        snprintf(cmd, sizeof cmd, "commands/%s", a->id);
        if (strcmp(m->topic, a->own_topic) != 0 && strcmp(m->topic, cmd) != 0)
            n++;
    }
    return n;
}

static unsigned clamp_window(unsigned ms)
{
    return ms > FDL_ATK_WINDOW_MAX_MS ? FDL_ATK_WINDOW_MAX_MS : ms;
}

int fdl_atk_cross_subscribe(const fdl_atk_target *t, const char *attacker_id, const char *victim_id,
                            unsigned window_ms, fdl_atk_result *r)
{
    abuse a;
    fdl_atk_result_begin(r);
    int stage = abuse_open(&a, t, attacker_id, 0, r);
    if (stage != FDL_ATK_STAGE_NONE)
        goto cleanup;
    char cmd[96], tel[96];
    snprintf(cmd, sizeof cmd, "commands/%s", victim_id);
    snprintf(tel, sizeof tel, "telemetry/%s", victim_id);
    const char *const filters[] = {cmd, tel};
    int granted = subscribe_all(&a, filters, 2, r);
    window_ms = clamp_window(window_ms);
    fdl_atk_loop_run_for(a.l, window_ms);
    size_t got = foreign_msgs(&a);
    fdl_atk_note(r, "attacker received %zu message(s) of %s in a %u ms window", got, victim_id, window_ms);
    fdl_atk_sess_note_msgs(a.atk, "attacker", 4, r);
    note_denials(&a, "denied", r);
    stage = got ? FDL_ATK_STAGE_NONE : granted ? FDL_ATK_STAGE_DELIVERY : FDL_ATK_STAGE_SUBSCRIBE;
cleanup:
    abuse_close(&a);
    fdl_atk_result_end(r, stage == FDL_ATK_STAGE_NONE, stage);
    return r->succeeded;
}

int fdl_atk_wildcard_subscribe(const fdl_atk_target *t, const char *attacker_id, unsigned window_ms,
                               fdl_atk_result *r)
{
    abuse a;
    fdl_atk_result_begin(r);
    int stage = abuse_open(&a, t, attacker_id, 0, r);
    if (stage != FDL_ATK_STAGE_NONE)
        goto cleanup;
    const char *const filters[] = {"#", "telemetry/+", "telemetry/#"};
    int granted = subscribe_all(&a, filters, 3, r);
    window_ms = clamp_window(window_ms);
    fdl_atk_loop_run_for(a.l, window_ms);
    size_t got = foreign_msgs(&a);
    fdl_atk_note(r, "attacker received %zu message(s) on other devices' topics in a %u ms window", got, window_ms);
    fdl_atk_sess_note_msgs(a.atk, "attacker", 4, r);
    note_denials(&a, "denied", r);
    stage = got ? FDL_ATK_STAGE_NONE : granted ? FDL_ATK_STAGE_DELIVERY : FDL_ATK_STAGE_SUBSCRIBE;
cleanup:
    abuse_close(&a);
    fdl_atk_result_end(r, stage == FDL_ATK_STAGE_NONE, stage);
    return r->succeeded;
}

int fdl_atk_junk_payloads(const fdl_atk_target *t, const char *attacker_id, fdl_atk_result *r)
{
    abuse a;
    char *big = NULL;
    fdl_atk_result_begin(r);
    int stage = abuse_open(&a, t, attacker_id, 1, r);
    if (stage != FDL_ATK_STAGE_NONE)
        goto cleanup;
    char base[16];
    atk_env_marker(&a.e, base, sizeof base);
    big = fdl_malloc(JUNK_HUGE + 1);
    if (!big) {
        stage = FDL_ATK_STAGE_SETUP;
        goto cleanup;
    }
    /* Each payload starts with (or holds) its own marker, so a delivery is recognised
     * whatever else the observer receives (a running device X publishes on the same topic). */
    struct {
        const char *what;
        char marker[24];
        size_t len;
        int junk;
    } step[4] = {
        {"non-JSON text", "", 0, 1},
        {"JSON with wrong field types", "", 0, 1},
        {"4 KiB JSON (over the 1 KiB rule)", "", 0, 1},
        {"valid telemetry (control)", "", 0, 0},
    };
    int junk_delivered = 0, control_delivered = 0;
    for (size_t i = 0; i < 4; i++) {
        snprintf(step[i].marker, sizeof step[i].marker, "%s%zu", base, i);
        const char *mk = step[i].marker;
        if (i == 0)
            step[i].len = (size_t)snprintf(big, JUNK_HUGE, "%s this is not JSON \x01\x02 {{{", mk);
        else if (i == 1)
            step[i].len = (size_t)snprintf(big, JUNK_HUGE,
                                           "{\"seq\":\"%s\",\"ts\":\"yesterday\",\"battery\":\"full\","
                                           "\"torque\":true,\"usage_minutes\":[1,2]}", mk);
        else if (i == 2) {
            int n = snprintf(big, JUNK_HUGE, "{\"seq\":%s,\"ts\":1,\"battery\":50,\"torque\":1,\"usage_minutes\":1,"
                                             "\"pad\":\"", mk);
            memset(big + n, 'A', JUNK_BIG - (size_t)n - 2);
            memcpy(big + JUNK_BIG - 2, "\"}", 2);
            step[i].len = JUNK_BIG;
        } else {
            atk_telemetry(mk, big, JUNK_HUGE);
            step[i].len = strlen(big);
        }
        int w = fdl_atk_sess_publish(a.atk, a.own_topic, big, step[i].len, ATK_ACK_MS);
        fdl_atk_loop_run_for(a.l, ATK_SETTLE_MS / 2);
        size_t seen = fdl_atk_sess_count(a.obs, a.own_topic, mk);
        fdl_atk_note(r, "%s (%zu bytes) on %s: %s; observer %s it", step[i].what, step[i].len, a.own_topic,
                     w > 0 ? "sent" : "NOT sent", seen ? (step[i].junk ? "RECEIVED" : "received") : "did not receive");
        if (seen && step[i].junk)
            junk_delivered++;
        if (seen && !step[i].junk)
            control_delivered = 1;
    }
    if (!control_delivered)
        fdl_atk_note(r, "inconclusive: the observer did not receive the valid control message either");
    note_denials(&a, "dropped payload from", r);
    /* Last, since the broker ends the connection for it: a packet over max_packet_size. */
    uint64_t huge_from = fdl_atk_log_offset(t);
    int n = snprintf(big, JUNK_HUGE, "{\"seq\":%s9,\"pad\":\"", base);
    memset(big + n, 'B', JUNK_HUGE - (size_t)n - 2);
    memcpy(big + JUNK_HUGE - 2, "\"}", 2);
    int w = fdl_atk_sess_publish(a.atk, a.own_topic, big, JUNK_HUGE, ATK_ACK_MS);
    fdl_atk_loop_run_for(a.l, ATK_SETTLE_MS);
    const char *why = "";
    int closed = fdl_atk_sess_closed(a.atk, &why);
    char needle[16];
    snprintf(needle, sizeof needle, "%s9", base);
    size_t seen = fdl_atk_sess_count(a.obs, a.own_topic, needle);
    fdl_atk_note(r, "%u-byte payload (over the broker's max_packet_size): %s; connection %s%s%s; observer %s it",
                 JUNK_HUGE, w > 0 ? "sent" : "not all sent", closed ? "closed by the broker (" : "still open",
                 closed ? why : "", closed ? ")" : "", seen ? "RECEIVED" : "did not receive");
    junk_delivered += seen > 0;
    (void)fdl_atk_log_since(t, huge_from, a.id, 2, r);
    stage = junk_delivered ? FDL_ATK_STAGE_NONE : FDL_ATK_STAGE_PAYLOAD;
cleanup:
    fdl_free(big);
    abuse_close(&a);
    fdl_atk_result_end(r, stage == FDL_ATK_STAGE_NONE, stage);
    return r->succeeded;
}
