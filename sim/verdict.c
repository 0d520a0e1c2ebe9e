/* sim/verdict.c — attack evidence to outcomes and layers (see verdict.h, docs/scenarios.md). */
#include "sim/verdict.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const k_kind_names[FDL_ATTACK__COUNT] = {
    [FDL_ATTACK_STOLEN_CERT] = "stolen-cert",       [FDL_ATTACK_EXTRACTED_KEY] = "extracted-key",
    [FDL_ATTACK_ROGUE_CA] = "rogue-ca",             [FDL_ATTACK_TLS12] = "tls-downgrade",
    [FDL_ATTACK_PLAINTEXT] = "plaintext",           [FDL_ATTACK_CROSS_PUBLISH] = "cross-publish",
    [FDL_ATTACK_CROSS_SUBSCRIBE] = "cross-subscribe", [FDL_ATTACK_WILDCARD] = "wildcard-subscribe",
    [FDL_ATTACK_JUNK] = "junk-payload",             [FDL_ATTACK_POLICY_WIDEN] = "policy-widen",
    [FDL_ATTACK_REVOCATION] = "revocation",
    [FDL_ATTACK_OTA_UNSIGNED] = "unsigned-image",   [FDL_ATTACK_OTA_WRONG_KEY] = "wrong-tier-key",
    [FDL_ATTACK_OTA_ROLLBACK] = "rollback",         [FDL_ATTACK_OTA_TAMPERED] = "tampered-artifact",
    [FDL_ATTACK_OTA_MALICIOUS] = "malicious-store", [FDL_ATTACK_JOB_REPLAY] = "job-replay",
    [FDL_ATTACK_JOB_EXPIRED] = "job-expired",       [FDL_ATTACK_JOB_FOREIGN] = "mix-and-match",
    [FDL_ATTACK_OTA_ENDLESS] = "endless-data",      [FDL_ATTACK_OTA_SLOW] = "slow-retrieval",
    [FDL_ATTACK_OTA_NO_CONFIRM] = "never-confirms", [FDL_ATTACK_BAD_CANARY] = "bad-canary",
};

const char *fdl_attack_kind_name(fdl_attack_kind k)
{
    return (unsigned)k < FDL_ATTACK__COUNT ? k_kind_names[k] : "?";
}

int fdl_attack_kind_parse(const char *name, fdl_attack_kind *out)
{
    if (!name)
        return -1;
    char norm[64];
    size_t n = strlen(name);
    if (n >= sizeof norm)
        return -1;
    for (size_t i = 0; i <= n; i++)
        norm[i] = name[i] == '_' ? '-' : name[i];
    for (int k = 0; k < FDL_ATTACK__COUNT; k++)
        if (!strcmp(norm, k_kind_names[k])) {
            *out = (fdl_attack_kind)k;
            return 0;
        }
    return -1;
}

fdl_layer fdl_verdict_stage_layer(int stage)
{
    switch (stage) {
    case FDL_ATK_STAGE_KEY_EXTRACT: return FDL_LAYER_HARDWARE;
    case FDL_ATK_STAGE_TCP:
    case FDL_ATK_STAGE_TLS: return FDL_LAYER_TRANSPORT;
    case FDL_ATK_STAGE_CONNACK: return FDL_LAYER_IDENTITY;
    case FDL_ATK_STAGE_PUBLISH:
    case FDL_ATK_STAGE_SUBSCRIBE:
    case FDL_ATK_STAGE_DELIVERY:
    case FDL_ATK_STAGE_PAYLOAD:
    case FDL_ATK_STAGE_ROLLOUT: return FDL_LAYER_CLOUD;
    case FDL_ATK_STAGE_JOB:
    case FDL_ATK_STAGE_IMAGE:
    case FDL_ATK_STAGE_TRIAL: return FDL_LAYER_FIRMWARE;
    default: return FDL_LAYER_NONE;
    }
}

static void add(fdl_verdicts *out, fdl_outcome o, fdl_layer l, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(fdl_verdicts *out, fdl_outcome o, fdl_layer l, const char *fmt, ...)
{
    if (out->n >= FDL_VERDICTS_MAX)
        return;
    fdl_verdict *v = &out->v[out->n++];
    v->outcome = o;
    v->layer = l;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof v->why, fmt, ap);
    va_end(ap);
}

/* The first evidence line containing any of the needles (NULL-terminated), copied
 * into buf without its newline; "" if none. Returns buf. */
static const char *line_with(const fdl_atk_result *r, const char *const *needles, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (const char *line = r->evidence; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        for (const char *const *n = needles; *n; n++) {
            const char *hit = strstr(line, *n);
            if (hit && hit < line + len) {
                snprintf(buf, cap, "%.*s", (int)len, line);
                return buf;
            }
        }
        if (!end)
            break;
        line = end + 1;
    }
    return buf;
}

/* What the defender's side said about the refusal: the broker's own log line if
 * the evidence quotes one, else what the attacker saw. */
static const char *corroboration(const fdl_atk_result *r, char *buf, size_t cap)
{
    /* The plugin's and OpenSSL's own words, as the broker log has them (after a timestamp). */
    static const char *const broker[] = {"fleetdrill: denied", "fleetdrill: dropped payload", "fleetdrill: refused",
                                         "SSL routines", "Client connection from", "OpenSSL Error", NULL};
    static const char *const client[] = {"alert", "rejected", "refused", "SUBACK 0x80", "CKR_", "closed by the broker",
                                         NULL};
    if (line_with(r, broker, buf, cap)[0] || line_with(r, client, buf, cap)[0])
        return buf;
    snprintf(buf, cap, "no refusal line in the evidence; the attack did not get through");
    return buf;
}

/* A refused attack: blocked by the layer of the stage (or `layer` when given),
 * except that a subscription granted with nothing delivered is contained. */
static void refused(fdl_verdicts *out, const fdl_atk_result *r, fdl_layer layer)
{
    char why[200];
    fdl_layer l = layer != FDL_LAYER_NONE ? layer : fdl_verdict_stage_layer(r->stage);
    if (r->stage == FDL_ATK_STAGE_DELIVERY)
        add(out, FDL_OUTCOME_CONTAINED, l, "granted, but nothing beyond its own topics was delivered: %s",
            corroboration(r, why, sizeof why));
    else
        add(out, FDL_OUTCOME_BLOCKED, l, "refused at %s: %s", fdl_atk_stage_name(r->stage),
            corroboration(r, why, sizeof why));
}

/* Error: the attack could not be mounted, or its observation path failed. */
static int unusable(fdl_verdicts *out, const fdl_atk_result *r)
{
    static const char *const why[] = {"inconclusive", "setup:", NULL};
    char line[200];
    if (r->stage == FDL_ATK_STAGE_SETUP) {
        add(out, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "the attack could not be mounted: %s",
            line_with(r, why, line, sizeof line)[0] ? line : r->evidence);
        return 1;
    }
    /* A delivery the observer saw is proof enough; only a negative result needs the control. */
    if (!r->succeeded && line_with(r, (const char *const[]){"inconclusive", NULL}, line, sizeof line)[0]) {
        add(out, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "no verdict: %s", line);
        return 1;
    }
    return 0;
}

static void detection(fdl_verdicts *out, const fdl_observation *o)
{
    if (o->audit_ran && o->audit_flagged)
        add(out, FDL_OUTCOME_DETECTED, FDL_LAYER_DETECTION, "the audit flagged it%s%s",
            o->audit_finding ? ": " : "", o->audit_finding ? o->audit_finding : "");
}

static void judge_foothold(fdl_verdicts *out, const fdl_observation *o)
{
    /* The attacker holds a working identity: what can it reach with it? */
    if (o->n_probes > 0) {
        size_t stopped = 0, usable = 0;
        char stages[160] = "";
        for (size_t i = 0; i < o->n_probes; i++) {
            const fdl_atk_result *p = o->probes[i];
            if (!p || p->stage == FDL_ATK_STAGE_SETUP)
                continue;
            usable++;
            if (!p->succeeded) {
                stopped++;
                size_t u = strlen(stages);
                snprintf(stages + u, sizeof stages - u, "%s%s", u ? ", " : "", fdl_atk_stage_name(p->stage));
            }
        }
        if (usable > 0 && stopped == usable)
            add(out, FDL_OUTCOME_CONTAINED, FDL_LAYER_CLOUD,
                "it got in with the copied identity, but reached only that device's own topics "
                "(every probe beyond them refused at: %s)", stages);
    }
    detection(out, o);
}

static void judge_revocation(fdl_verdicts *out, const fdl_observation *o)
{
    if (!o->revoke_ok) {
        add(out, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "the revoke itself failed: %s",
            o->attack && o->attack->evidence[0] ? o->attack->evidence : "no detail");
        return;
    }
    if (o->reconnected) {
        if (o->denied_after)
            add(out, FDL_OUTCOME_CONTAINED, FDL_LAYER_CLOUD,
                "the revoked device connected again, but the deny-all policy refused its requests");
        return;
    }
    if (o->disconnect_ms >= 0 && o->disconnect_ms <= o->within_ms)
        add(out, FDL_OUTCOME_BLOCKED, FDL_LAYER_DETECTION,
            "revoked and disconnected %.1f ms after the request (bound %.0f ms), every later connect refused%s",
            o->disconnect_ms, o->within_ms, o->revoked_led ? ", device in its revoked state" : "");
    else if (o->disconnect_ms >= 0)
        add(out, FDL_OUTCOME_DETECTED, FDL_LAYER_DETECTION,
            "revoked, but disconnected only %.1f ms after the request (bound %.0f ms)", o->disconnect_ms,
            o->within_ms);
}

/*
 * The firmware layer's account: what the device did with the job and the image.
 * Its own reports say what it refused and why; its boot records say what ran.
 * Anything that ran without passing its checks, or an attacker's image that runs
 * now, is missed whatever the reports say.
 */
static void judge_ota(fdl_verdicts *out, const fdl_observation *o)
{
    const char *fin = o->ota_final ? o->ota_final : "";
    const char *det = o->ota_detail && o->ota_detail[0] ? o->ota_detail : "no reason given";
    if (o->ota_unverified_ran) {
        add(out, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "a boot record shows an image that ran without passing its checks");
        return;
    }
    if (o->ota_bad_runs || !strcmp(fin, "confirmed")) {
        add(out, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "the device runs the attacker's image%s%s",
            o->ota_bad_runs ? " (its last boot record)" : " (it confirmed it)", "");
        return;
    }
    if (o->ota_delivery_denied && !fin[0]) {
        add(out, FDL_OUTCOME_BLOCKED, FDL_LAYER_CLOUD,
            "the broker's policy refused the delivery: the device never saw the document");
        return;
    }
    if ((!strcmp(fin, "rejected") || !strcmp(fin, "failed")) && !o->ota_bad_ran) {
        add(out, FDL_OUTCOME_BLOCKED, FDL_LAYER_FIRMWARE, "the device %s it%s: %s", fin,
            o->ota_wrote ? " after writing it" : ", nothing of it ever ran", det);
        return;
    }
    if (o->ota_bad_ran && o->ota_reverted) {
        add(out, FDL_OUTCOME_CONTAINED, FDL_LAYER_FIRMWARE,
            "it ran in trial, never confirmed, and the bootloader reverted to the previous image: %s", det);
        return;
    }
    if (!fin[0])
        add(out, FDL_OUTCOME_ERROR, FDL_LAYER_NONE,
            "no verdict: inconclusive, the device reported nothing on the job and its boot records show no change");
    else
        add(out, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "nothing refused it: the device's last word is \"%s\" (%s)", fin,
            det);
}

/* The rollout's account: did the halt gate keep a bad image to the canary? */
static void judge_rollout(fdl_verdicts *out, const fdl_observation *o)
{
    if (o->ota_unverified_ran) {
        add(out, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "a boot record shows an image that ran without passing its checks");
        return;
    }
    if (o->rollout_halted && o->rollout_untouched > 0)
        add(out, FDL_OUTCOME_CONTAINED, FDL_LAYER_CLOUD,
            "the rollout halted at stage %u: %u of %u devices never notified: %s", o->rollout_stage,
            o->rollout_untouched, o->rollout_targets, o->rollout_reason ? o->rollout_reason : "");
    if ((o->rollout_halted || o->rollout_completed) && o->rollout_bad_running == 0)
        add(out, FDL_OUTCOME_CONTAINED, FDL_LAYER_FIRMWARE,
            "no device runs the bad image: every one that got it reverted to its previous image");
    if (out->n == 0 && !o->rollout_halted && !o->rollout_completed)
        add(out, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "no verdict: inconclusive, the rollout did not end in time");
    if (out->n == 0)
        add(out, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "the rollout went on: %u device(s) run the bad image",
            o->rollout_bad_running);
}

void fdl_verdict_judge(const fdl_observation *o, fdl_verdicts *out)
{
    memset(out, 0, sizeof *out);
    const fdl_atk_result *r = o->attack;
    char buf[200];
    if (!r) {
        add(out, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "no result");
        return;
    }
    if (o->kind != FDL_ATTACK_REVOCATION && unusable(out, r))
        return;
    switch (o->kind) {
    case FDL_ATTACK_STOLEN_CERT:
        /* Proof of possession of the key is the identity layer's, wherever it is checked. */
        if (!r->succeeded)
            refused(out, r, r->stage == FDL_ATK_STAGE_TLS || r->stage == FDL_ATK_STAGE_CONNACK ? FDL_LAYER_IDENTITY
                                                                                               : FDL_LAYER_NONE);
        break;
    case FDL_ATTACK_EXTRACTED_KEY:
        if (!r->succeeded)
            refused(out, r, FDL_LAYER_NONE);
        else
            judge_foothold(out, o);
        break;
    case FDL_ATTACK_ROGUE_CA:
        if (!r->succeeded && o->rogue_connects <= 0)
            add(out, FDL_OUTCOME_BLOCKED, FDL_LAYER_TRANSPORT,
                "the device refused the rogue endpoint's certificate, the MITM read nothing: %s",
                line_with(r, (const char *const[]){"rejected", "alert", "refused", NULL}, buf, sizeof buf)[0]
                    ? buf
                    : corroboration(r, buf, sizeof buf));
        break;
    case FDL_ATTACK_TLS12:
    case FDL_ATTACK_PLAINTEXT:
    case FDL_ATTACK_CROSS_PUBLISH:
    case FDL_ATTACK_CROSS_SUBSCRIBE:
    case FDL_ATTACK_JUNK:
        if (!r->succeeded)
            refused(out, r, FDL_LAYER_NONE);
        break;
    case FDL_ATTACK_WILDCARD:
    case FDL_ATTACK_POLICY_WIDEN:
        if (!r->succeeded)
            refused(out, r, FDL_LAYER_NONE);
        else
            detection(out, o);
        break;
    case FDL_ATTACK_REVOCATION:
        judge_revocation(out, o);
        break;
    case FDL_ATTACK_OTA_UNSIGNED:
    case FDL_ATTACK_OTA_WRONG_KEY:
    case FDL_ATTACK_OTA_ROLLBACK:
    case FDL_ATTACK_OTA_TAMPERED:
    case FDL_ATTACK_OTA_MALICIOUS:
    case FDL_ATTACK_JOB_REPLAY:
    case FDL_ATTACK_JOB_EXPIRED:
    case FDL_ATTACK_JOB_FOREIGN:
    case FDL_ATTACK_OTA_ENDLESS:
    case FDL_ATTACK_OTA_SLOW:
    case FDL_ATTACK_OTA_NO_CONFIRM:
        judge_ota(out, o);
        break;
    case FDL_ATTACK_BAD_CANARY:
        judge_rollout(out, o);
        break;
    default:
        add(out, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "unknown attack kind %d", (int)o->kind);
        return;
    }
    if (out->n == 0) {
        static const char *const got[] = {"RECEIVED", "CONNACK 0", "leaked", "accepted", "returned", NULL};
        if (o->kind == FDL_ATTACK_ROGUE_CA && o->rogue_connects > 0)
            add(out, FDL_OUTCOME_MISSED, FDL_LAYER_NONE,
                "the device completed its handshake with the rogue endpoint, which read %d MQTT CONNECT(s): "
                "credentials and data leaked to the MITM", o->rogue_connects);
        else if (o->kind == FDL_ATTACK_REVOCATION)
            add(out, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "%s",
                o->reconnected ? "the revoked device connected again and its requests were allowed"
                               : "the device was not disconnected");
        else
            add(out, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "nothing stopped or saw it: %s",
                line_with(r, got, buf, sizeof buf)[0] ? buf : "the attacker got what it wanted");
    }
}

const fdl_verdict *fdl_verdict_pick(const fdl_verdicts *v, fdl_outcome expected, fdl_layer layer, bool *pass)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->v[i].outcome == expected && v->v[i].layer == layer) {
            *pass = true;
            return &v->v[i];
        }
    *pass = false;
    return &v->v[0];
}
