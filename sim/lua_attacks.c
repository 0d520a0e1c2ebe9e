/*
 * sim/lua_attacks.c — the Lua binding of the attack tooling (attacks/) and of
 * step{...}: attacks.<name>{...} makes an attack object (nothing runs yet);
 * step{attack = a, expect = "blocked", layer = "identity"} runs it (once: a
 * second step on the same object re-judges the same evidence), derives the
 * verdicts from what was observed (sim/verdict.h) and records the step in the
 * report with its evidence.
 *
 * The attacks run on the scenario's thread, synchronously and bounded, against
 * the live fleet of fleet{...}; the follow-ups an attack needs to be judged
 * (reach probes, the audit, the fleet's live view during a revocation) run here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "attacks/abuse.h"
#include "attacks/credentials.h"
#include "attacks/downgrade.h"
#include "attacks/ota.h"
#include "attacks/policy_widen.h"
#include "attacks/rogue.h"
#include "cloud/fwsign.h"
#include "cloud/registry.h"
#include "sim/alloc.h"
#include "sim/luabox.h"
#include "sim/metrics.h"
#include "sim/scenario_int.h"

#define NOTES_MAX 4096

typedef struct lattack {
    fdl_attack_kind kind;
    uint32_t gen;              /* the fleet it was made for */
    int64_t dev[2];            /* device indices (0-based) of its two roles; -1 = none */
    uint32_t window_ms;
    double within_ms, settle_s;
    char policy[64];
    char client_id[64];
    char name[64];             /* shown in the report and the matrix */
    int ran, judged;
    uint64_t started_ns;
    fdl_atk_result res;        /* the attack's own result */
    fdl_atk_result probe[2];   /* reach probes with the foothold it got */
    size_t n_probes;
    fdl_atk_result extra;      /* the rogue endpoint's account, the policy edit, ... */
    const char *extra_label;
    int has_extra;
    char notes[NOTES_MAX];     /* the engine's own observations, one per line */
    bool audit_ran, audit_flagged;
    char audit_finding[700];
    int64_t detect_ms, respond_ms;
    int rogue_connects;
    bool revoke_ok, reconnected, denied_after, revoked_led;
    double disconnect_ms;
    uint32_t others_lost;
    char check_failed[256];    /* a condition of the drill that failed beside the verdict */
    /* OTA attacks (attacks/ota.h) */
    unsigned key_role, canary;
    uint32_t hw;
    double max_failure, wait_s;
    char behaviour[16];
    fdl_atk_ota_obs ota;
    fdl_verdicts verdicts;
} lattack;

static void note(lattack *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(lattack *a, const char *fmt, ...)
{
    size_t u = strlen(a->notes);
    if (u + 2 >= sizeof a->notes)
        return;
    if (u)
        a->notes[u++] = '\n';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->notes + u, sizeof a->notes - u, fmt, ap);
    va_end(ap);
}

/* ---- making attack objects --------------------------------------------------------- */

/* What each attack takes: its roles (device fields) and options. */
typedef struct kind_spec {
    const char *lua;           /* attacks.<lua> */
    const char *role[2];       /* device fields; NULL = none */
    int required[2];
    const char *const *keys;   /* every allowed field */
} kind_spec;

static const char *const k_keys_victim[] = {"victim", "name", NULL};
static const char *const k_keys_extracted[] = {"victim", "other", "name", NULL};
static const char *const k_keys_device[] = {"device", "name", NULL};
static const char *const k_keys_as[] = {"as", "name", NULL};
static const char *const k_keys_plain[] = {"client_id", "name", NULL};
static const char *const k_keys_cross[] = {"attacker", "victim", "window", "name", NULL};
static const char *const k_keys_wild[] = {"attacker", "window", "name", NULL};
static const char *const k_keys_junk[] = {"attacker", "name", NULL};
static const char *const k_keys_widen[] = {"attacker", "policy", "window", "name", NULL};
static const char *const k_keys_revoke[] = {"device", "within", "settle", "name", NULL};
static const char *const k_keys_ota[] = {"device", "wait", "name", NULL};
static const char *const k_keys_wrong_key[] = {"device", "key_tier", "wait", "name", NULL};
static const char *const k_keys_foreign[] = {"device", "from", "hw", "wait", "name", NULL};
static const char *const k_keys_canary[] = {"canary", "behaviour", "max_failure", "wait", "name", NULL};

static const kind_spec k_specs[FDL_ATTACK__COUNT] = {
    [FDL_ATTACK_STOLEN_CERT] = {"stolen_cert", {"victim", NULL}, {1, 0}, k_keys_victim},
    [FDL_ATTACK_EXTRACTED_KEY] = {"extracted_key", {"victim", "other"}, {1, 0}, k_keys_extracted},
    [FDL_ATTACK_ROGUE_CA] = {"rogue_ca", {"device", NULL}, {1, 0}, k_keys_device},
    [FDL_ATTACK_TLS12] = {"tls_downgrade", {"as", NULL}, {0, 0}, k_keys_as},
    [FDL_ATTACK_PLAINTEXT] = {"plaintext", {NULL, NULL}, {0, 0}, k_keys_plain},
    [FDL_ATTACK_CROSS_PUBLISH] = {"cross_publish", {"attacker", "victim"}, {1, 1}, k_keys_cross},
    [FDL_ATTACK_CROSS_SUBSCRIBE] = {"cross_subscribe", {"attacker", "victim"}, {1, 1}, k_keys_cross},
    [FDL_ATTACK_WILDCARD] = {"wildcard_subscribe", {"attacker", NULL}, {1, 0}, k_keys_wild},
    [FDL_ATTACK_JUNK] = {"junk_payload", {"attacker", NULL}, {1, 0}, k_keys_junk},
    [FDL_ATTACK_POLICY_WIDEN] = {"policy_widen", {"attacker", NULL}, {1, 0}, k_keys_widen},
    [FDL_ATTACK_REVOCATION] = {"revocation", {"device", NULL}, {1, 0}, k_keys_revoke},
    [FDL_ATTACK_OTA_UNSIGNED] = {"unsigned_image", {"device", NULL}, {1, 0}, k_keys_ota},
    [FDL_ATTACK_OTA_WRONG_KEY] = {"wrong_tier_key", {"device", NULL}, {1, 0}, k_keys_wrong_key},
    [FDL_ATTACK_OTA_ROLLBACK] = {"rollback", {"device", NULL}, {1, 0}, k_keys_ota},
    [FDL_ATTACK_OTA_TAMPERED] = {"tampered_artifact", {"device", NULL}, {1, 0}, k_keys_ota},
    [FDL_ATTACK_OTA_MALICIOUS] = {"malicious_store", {"device", NULL}, {1, 0}, k_keys_ota},
    [FDL_ATTACK_JOB_REPLAY] = {"job_replay", {"device", NULL}, {1, 0}, k_keys_ota},
    [FDL_ATTACK_JOB_EXPIRED] = {"job_expired", {"device", NULL}, {1, 0}, k_keys_ota},
    [FDL_ATTACK_JOB_FOREIGN] = {"mix_and_match", {"device", "from"}, {1, 0}, k_keys_foreign},
    [FDL_ATTACK_OTA_ENDLESS] = {"endless_data", {"device", NULL}, {1, 0}, k_keys_ota},
    [FDL_ATTACK_OTA_SLOW] = {"slow_retrieval", {"device", NULL}, {1, 0}, k_keys_ota},
    [FDL_ATTACK_OTA_NO_CONFIRM] = {"never_confirms", {"device", NULL}, {1, 0}, k_keys_ota},
    [FDL_ATTACK_BAD_CANARY] = {"bad_canary", {NULL, NULL}, {0, 0}, k_keys_canary},
};

/* The attack tooling's kind of an OTA attack; -1 for the others. */
static int ota_kind(fdl_attack_kind k)
{
    switch (k) {
    case FDL_ATTACK_OTA_UNSIGNED: return FDL_ATK_OTA_UNSIGNED;
    case FDL_ATTACK_OTA_WRONG_KEY: return FDL_ATK_OTA_WRONG_KEY;
    case FDL_ATTACK_OTA_ROLLBACK: return FDL_ATK_OTA_ROLLBACK;
    case FDL_ATTACK_OTA_TAMPERED: return FDL_ATK_OTA_TAMPERED;
    case FDL_ATTACK_OTA_MALICIOUS: return FDL_ATK_OTA_MALICIOUS;
    case FDL_ATTACK_JOB_REPLAY: return FDL_ATK_OTA_REPLAY;
    case FDL_ATTACK_JOB_EXPIRED: return FDL_ATK_OTA_EXPIRED;
    case FDL_ATTACK_JOB_FOREIGN: return FDL_ATK_OTA_FOREIGN;
    case FDL_ATTACK_OTA_ENDLESS: return FDL_ATK_OTA_ENDLESS;
    case FDL_ATTACK_OTA_SLOW: return FDL_ATK_OTA_SLOW;
    case FDL_ATTACK_OTA_NO_CONFIRM: return FDL_ATK_OTA_NO_CONFIRM;
    case FDL_ATTACK_BAD_CANARY: return FDL_ATK_OTA_BAD_CANARY;
    default: return -1;
    }
}

static int make_attack(lua_State *L, fdl_attack_kind kind, int tidx)
{
    drill *d = drill_of(L);
    const kind_spec *sp = &k_specs[kind];
    char what[80];
    snprintf(what, sizeof what, "attacks.%s", sp->lua);
    if (lua_isnoneornil(L, tidx)) {
        lua_newtable(L);
        tidx = lua_gettop(L);
    }
    if (!lua_istable(L, tidx))
        fdl_luabox_error(L, "%s{...} takes a table of fields", what);
    drill_check_keys(L, tidx, what, sp->keys);
    drill_need_fleet(L, d, what);
    lattack *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    luaL_setmetatable(L, FDL_LUA_ATTACK);
    int aidx = lua_gettop(L);
    a->kind = kind;
    a->gen = d->gen;
    a->detect_ms = a->respond_ms = -1;
    a->disconnect_ms = -1;
    a->rogue_connects = -1;
    for (int r = 0; r < 2; r++) {
        a->dev[r] = -1;
        if (!sp->role[r])
            continue;
        lua_getfield(L, tidx, sp->role[r]);
        if (lua_isnil(L, -1)) {
            if (sp->required[r])
                fdl_luabox_error(L, "%s: field '%s' (a device) is required", what, sp->role[r]);
        } else {
            a->dev[r] = drill_check_device(L, d, -1);
        }
        lua_pop(L, 1);
    }
    if (kind == FDL_ATTACK_EXTRACTED_KEY && a->dev[1] < 0 && d->devices > 1)
        a->dev[1] = (a->dev[0] + 1) % d->devices;   /* the neighbour whose topics the copy probes */
    if (kind == FDL_ATTACK_TLS12 && a->dev[0] < 0)
        a->dev[0] = 0;   /* a genuine identity, so that only the protocol version differs */
    if ((kind == FDL_ATTACK_CROSS_PUBLISH || kind == FDL_ATTACK_CROSS_SUBSCRIBE) && a->dev[0] == a->dev[1])
        fdl_luabox_error(L, "%s: attacker and victim must be different devices", what);
    if (ota_kind(kind) >= 0) {
        const char *kt = drill_opt_string(L, tidx, "key_tier", "modules");
        a->key_role = fdl_fwsign_role_parse(kt);
        if (!a->key_role || a->key_role == FDL_FWSIGN_ROLE_JOBS)
            fdl_luabox_error(L, "%s: key_tier is root, kernel, application, modules or config, not \"%s\"", what, kt);
        a->hw = (uint32_t)drill_opt_number(L, tidx, "hw", 0, 0, 255);
        a->canary = (unsigned)drill_opt_number(L, tidx, "canary", 10, 1, 49);
        a->max_failure = drill_opt_number(L, tidx, "max_failure", 0.1, 0, 1);
        a->wait_s = drill_opt_number(L, tidx, "wait", 0, 0, 600);
        const char *b = drill_opt_string(L, tidx, "behaviour", "crash");
        if (strcmp(b, "crash") && strcmp(b, "no-confirm"))
            fdl_luabox_error(L, "%s: behaviour is \"crash\" or \"no-confirm\", not \"%s\"", what, b);
        snprintf(a->behaviour, sizeof a->behaviour, "%s", b);
        if (kind == FDL_ATTACK_JOB_FOREIGN && a->dev[1] < 0 && !a->hw && d->devices > 1)
            a->dev[1] = (a->dev[0] + 1) % d->devices;   /* a document for the neighbour */
        if (kind == FDL_ATTACK_JOB_FOREIGN && a->dev[1] == a->dev[0])
            fdl_luabox_error(L, "%s: 'from' must be another device", what);
        if (kind == FDL_ATTACK_JOB_FOREIGN && a->dev[1] < 0 && !a->hw)
            fdl_luabox_error(L, "%s: 'from' (another device) or 'hw' (another hardware revision) is required", what);
    }
    a->window_ms = (uint32_t)(drill_opt_number(L, tidx, "window", 1.0, 0.1, FDL_ATK_WINDOW_MAX_MS / 1000.0) * 1000.0);
    a->within_ms = drill_opt_number(L, tidx, "within", 1000, 1, 60000);
    a->settle_s = drill_opt_number(L, tidx, "settle", 10, 0.5, 120);
    snprintf(a->policy, sizeof a->policy, "%s", drill_opt_string(L, tidx, "policy", "device-default"));
    snprintf(a->client_id, sizeof a->client_id, "%s", drill_opt_string(L, tidx, "client_id", ""));
    const char *name = drill_opt_string(L, tidx, "name", NULL);
    if (name)
        snprintf(a->name, sizeof a->name, "%s", name);
    else if (kind == FDL_ATTACK_EXTRACTED_KEY)
        snprintf(a->name, sizeof a->name, "%s (%s)", fdl_attack_kind_name(kind), fdl_profile_name(d->profile));
    else
        snprintf(a->name, sizeof a->name, "%s", fdl_attack_kind_name(kind));
    lua_pushvalue(L, aidx);
    return 1;
}

/* attacks.<name>{...}: one C closure per attack, the kind in its upvalue. */
static int l_make(lua_State *L)
{
    return make_attack(L, (fdl_attack_kind)lua_tointeger(L, lua_upvalueindex(1)), 1);
}

/* "unknown attack 'x' (known: stolen-cert, ...)": the same words for both spellings. */
static int unknown_attack(lua_State *L, const char *name)
{
    char known[512];
    size_t n = 0;
    known[0] = '\0';
    for (int k = 0; k < FDL_ATTACK__COUNT && n < sizeof known; k++) {
        int w = snprintf(known + n, sizeof known - n, "%s%s", k ? ", " : "", fdl_attack_kind_name((fdl_attack_kind)k));
        if (w > 0)
            n += (size_t)w;
    }
    return fdl_luabox_error(L, "unknown attack '%s' (known: %s; docs/scenarios.md)", name ? name : "?", known);
}

/* attack("stolen-cert", {...}): the same by name. */
static int l_attack(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    fdl_attack_kind k;
    if (fdl_attack_kind_parse(name, &k) != 0)
        return unknown_attack(L, name);
    return make_attack(L, k, 2);
}

/* attacks.nonsense: an error at the line that names it. */
static int l_attacks_index(lua_State *L)
{
    return unknown_attack(L, lua_tostring(L, 2));
}

/* ---- running them -------------------------------------------------------------------- */

static int cert_fingerprint(drill *d, const char *id, char fp[FDL_REG_FP_HEX_LEN + 1])
{
    char path[FDL_PATH_MAX + 64];
    fdl_identity_path(&d->o->ctx->st, id, "cert.pem", path, sizeof path);
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    int ok = mbedtls_x509_crt_parse_file(&crt, path) == 0 &&
             fdl_registry_fingerprint(crt.raw.p, crt.raw.len, fp) == FDL_REG_OK;
    mbedtls_x509_crt_free(&crt);
    return ok ? 0 : -1;
}

static void audit_for(drill *d, lattack *a, const char *check, const char *object, unsigned wait_ms)
{
    char found[700];
    a->audit_ran = true;
    if (drill_audit_find(d, check, object, wait_ms, found, sizeof found)) {
        a->audit_flagged = true;
        a->detect_ms = (int64_t)((fdl_now_ns() - a->started_ns) / 1000000u);
        snprintf(a->audit_finding, sizeof a->audit_finding, "%s", found);
        note(a, "audit: %s (found %lld ms after the attack began)", found, (long long)a->detect_ms);
    } else {
        note(a, "audit: no %s finding%s%s within %u ms%s%s", check, object ? " for " : "", object ? object : "",
             wait_ms, found[0] ? ": " : "", found);
    }
}

static void run_extracted_key(drill *d, lattack *a, const fdl_atk_target *t, const char *victim)
{
    fdl_atk_extracted_key(t, victim, 0, &a->res);
    if (!a->res.succeeded || a->dev[1] < 0)
        return;
    /* The copy works: how far does it reach beyond its own device? */
    char other[FDL_DEVICE_ID_MAX], fp[FDL_REG_FP_HEX_LEN + 1];
    drill_device_id(d, (uint32_t)a->dev[1], other, sizeof other);
    fdl_atk_cross_publish(t, victim, other, &a->probe[0]);
    fdl_atk_cross_subscribe(t, victim, other, 1000, &a->probe[1]);
    a->n_probes = 2;
    /* Two clients on one certificate: the audit's cert-shared check (sessions reach the
     * registry when the plugin flushes, every 200 ms). */
    if (cert_fingerprint(d, victim, fp) == 0)
        audit_for(d, a, "cert-shared", fp, 3000);
    else
        note(a, "audit: cannot read %s's certificate to look for its finding", victim);
}

static void run_rogue(drill *d, lattack *a, const fdl_atk_target *t, const char *dev)
{
    char dir[FDL_PATH_MAX + 32], err[256];
    snprintf(dir, sizeof dir, "%s/rogue-pki", d->o->ctx->st.dir);
    fdl_atk_rogue *g = NULL;
    uint16_t port = 0;
    if (fdl_atk_rogue_new(dir, &g, err, sizeof err) != 0 ||
        fdl_atk_rogue_start(g, "127.0.0.1", 0, &port, err, sizeof err) != 0) {
        fdl_atk_result_begin(&a->res);
        fdl_atk_note(&a->res, "setup: rogue endpoint: %s", err);
        fdl_atk_result_end(&a->res, 0, FDL_ATK_STAGE_SETUP);
        fdl_atk_rogue_free(g);
        return;
    }
    fdl_atk_target rt = *t;
    rt.port = port;
    /* The device as configured in this run: with the ablation "pinning" off it
     * does not check whose certificate it is talking to. */
    int verify_none = (d->o->without & FDL_SWITCH_PINNING) != 0;
    fdl_atk_device_connect(&rt, dev, verify_none, &a->res);
    fdl_atk_rogue_stop(g);
    fdl_atk_rogue_stats st;
    fdl_atk_rogue_stats_get(g, &st);
    a->rogue_connects = (int)st.connects;
    fdl_atk_rogue_result(g, &a->extra);
    a->extra_label = "rogue endpoint";
    a->has_extra = 1;
    fdl_atk_rogue_free(g);
}

static void run_policy_widen(drill *d, lattack *a, const fdl_atk_target *t, const char *attacker)
{
    fdl_atk_policy_saved *saved = NULL;
    a->extra_label = "misconfiguration";
    a->has_extra = 1;
    if (fdl_atk_policy_widen(t, a->policy, NULL, &saved, &a->extra) != 0) {
        a->res = a->extra;   /* could not be mounted: the reason is in stage setup */
        a->has_extra = 0;
        return;
    }
    /* Time to detect counts from the moment the misconfiguration is in place. */
    a->started_ns = fdl_now_ns();
    fdl_atk_wildcard_subscribe(t, attacker, a->window_ms, &a->res);
    if (a->res.succeeded)
        audit_for(d, a, "policy-wildcard", a->policy, 2000);
    fdl_atk_result undo;
    if (fdl_atk_policy_restore(t, saved, &undo) == 0)
        note(a, "policy %s restored after the drill", a->policy);
    else
        note(a, "policy %s could NOT be restored: %s", a->policy, undo.evidence);
    fdl_atk_policy_saved_free(saved);
}

/* Polls the device's live view until cond holds or ms pass. */
static int wait_view(drill *d, uint32_t i, int (*cond)(const fdl_fleet_dev_view *, const void *), const void *arg,
                     unsigned ms, fdl_fleet_dev_view *v)
{
    uint64_t end = fdl_now_ns() + (uint64_t)ms * 1000000u;
    for (;;) {
        fdl_fleet_live_get(fdl_drillenv_live(d->env), i, v);
        if (cond(v, arg))
            return 1;
        if (fdl_now_ns() >= end || fdl_fleet_stop_requested())
            return 0;
        usleep(2000);
    }
}

static int is_online(const fdl_fleet_dev_view *v, const void *arg)
{
    (void)arg;
    return v->online;
}

static int went_offline_after(const fdl_fleet_dev_view *v, const void *arg)
{
    return v->last_offline_ns > *(const uint64_t *)arg;
}

static int settled(const fdl_fleet_dev_view *v, const void *arg)
{
    return v->revoked || v->n_online > *(const uint32_t *)arg;
}

static void run_revocation(drill *d, lattack *a, const fdl_atk_target *t, const char *id)
{
    uint32_t i = (uint32_t)a->dev[0];
    fdl_atk_result *r = &a->res;
    fdl_atk_result_begin(r);
    fdl_fleet_dev_view v;
    if (!wait_view(d, i, is_online, NULL, 10000, &v)) {
        fdl_atk_note(r, "setup: %s is not online: nothing to revoke under load", id);
        fdl_atk_result_end(r, 0, FDL_ATK_STAGE_SETUP);
        return;
    }
    uint32_t n = d->devices, online_before = 0;
    uint8_t *was_online = fdl_calloc(n, 1);
    uint32_t *conns = fdl_calloc(n, sizeof *conns);
    if (!was_online || !conns) {
        fdl_atk_note(r, "setup: out of memory");
        fdl_atk_result_end(r, 0, FDL_ATK_STAGE_SETUP);
        goto cleanup;
    }
    for (uint32_t j = 0; j < n; j++) {
        fdl_fleet_dev_view w;
        fdl_fleet_live_get(fdl_drillenv_live(d->env), j, &w);
        was_online[j] = (uint8_t)w.online;
        conns[j] = w.n_online;
        online_before += (uint32_t)w.online;
    }
    fdl_fleet_live_totals tot0;
    fdl_fleet_live_totals_get(fdl_drillenv_live(d->env), &tot0);
    uint64_t from = fdl_atk_log_offset(t);
    fdl_atk_note(r, "under load: %u of %u devices online, %llu telemetry messages acknowledged so far", online_before,
                 n, (unsigned long long)tot0.acked);
    uint64_t t0 = fdl_now_ns();
    fdl_revoke_result rr;
    char err[512];
    if (fdl_cloud_revoke(d->o->ctx, id, "revocation drill", t->port, &rr, err, sizeof err) != 0) {
        fdl_atk_note(r, "revoke %s failed: %s", id, err);
        fdl_atk_result_end(r, 0, FDL_ATK_STAGE_SETUP);
        goto cleanup;
    }
    a->revoke_ok = true;
    fdl_atk_note(r, "operator: revoke %s: deny-all policy attached and %zu certificate(s) revoked in %.1f ms", id,
                 rr.certs_revoked, rr.registry_ms);
    if (rr.disconnect_ms >= 0)
        fdl_atk_note(r, "operator: the broker plugin confirmed the kick %.1f ms after the request (round trip %.1f ms)",
                     rr.disconnect_ms, rr.rtt_ms);
    else
        fdl_atk_note(r, "operator: the kick failed: %s", rr.kick_error);
    /* The device's own account: when its connection dropped. */
    unsigned bound = (unsigned)(a->within_ms * 5 + 2000);
    if (wait_view(d, i, went_offline_after, &t0, bound, &v)) {
        a->disconnect_ms = (double)(v.last_offline_ns - t0) / 1e6;
        a->respond_ms = (int64_t)a->disconnect_ms;
        fdl_atk_note(r, "device %s: connection dropped %.1f ms after the revoke request", id, a->disconnect_ms);
    } else {
        fdl_atk_note(r, "device %s: still connected %u ms after the revoke request", id, bound);
    }
    /* Then it tries again and again: refused each time, until its "revoked" LED goes on. */
    uint32_t conns_at = conns[i];
    wait_view(d, i, settled, &conns_at, (unsigned)(a->settle_s * 1000.0), &v);
    a->reconnected = v.n_online > conns_at;
    a->revoked_led = v.revoked;
    fdl_atk_note(r, "device %s: %u refused attempt(s) after the revoke, %s, revoked state (LED) %s", id, v.n_refused,
                 a->reconnected ? "CONNECTED AGAIN" : "never connected again", v.revoked ? "on" : "off");
    if (a->reconnected) {
        drill_sleep(1.0);   /* its requests meet the deny-all policy (or not) */
        char needle[FDL_DEVICE_ID_MAX + 16];
        snprintf(needle, sizeof needle, "denied %s ", id);
        a->denied_after = fdl_atk_log_since(t, from, needle, 3, r) > 0;
    }
    (void)fdl_atk_log_since(t, from, id, 8, r);
    /* The rest of the fleet must not notice. */
    uint32_t lost = 0, online_after = 0;
    char example[FDL_DEVICE_ID_MAX] = "";
    for (uint32_t j = 0; j < n; j++) {
        fdl_fleet_dev_view w;
        fdl_fleet_live_get(fdl_drillenv_live(d->env), j, &w);
        online_after += (uint32_t)w.online;
        if (j == i || !was_online[j])
            continue;
        if (!w.online || w.n_online != conns[j]) {
            if (!lost++)
                drill_device_id(d, j, example, sizeof example);
        }
    }
    fdl_fleet_live_totals tot1;
    fdl_fleet_live_totals_get(fdl_drillenv_live(d->env), &tot1);
    a->others_lost = lost;
    fdl_atk_note(r, "rest of the fleet: %u of %u other devices that were online stayed connected throughout%s%s; "
                    "%llu more telemetry messages acknowledged meanwhile",
                 online_before - (was_online[i] ? 1 : 0) - lost, online_before - (was_online[i] ? 1 : 0),
                 lost ? ", e.g. lost " : "", example, (unsigned long long)(tot1.acked - tot0.acked));
    if (lost)
        snprintf(a->check_failed, sizeof a->check_failed,
                 "collateral: %u other device(s) lost their connection during the revocation, e.g. %s", lost, example);
    else if (tot1.acked <= tot0.acked && online_before > 1)
        snprintf(a->check_failed, sizeof a->check_failed,
                 "collateral: no telemetry was acknowledged from the rest of the fleet during the revocation");
    fdl_atk_result_end(r, a->reconnected && !a->denied_after, a->reconnected ? FDL_ATK_STAGE_PUBLISH
                                                                            : FDL_ATK_STAGE_CONNACK);
cleanup:
    fdl_free(was_online);
    fdl_free(conns);
}

static void run_ota(drill *d, lattack *a, const fdl_atk_target *t)
{
    const fdl_drillenv_opts *eo = fdl_drillenv_opts_of(d->env);
    fdl_atk_ota_env env = {.t = t, .jobs = fdl_drillenv_jobs(d->env), .store = fdl_drillenv_artifacts(d->env),
                           .fw = fdl_drillenv_fwenv(d->env), .live = fdl_drillenv_live(d->env),
                           .clock = fdl_drillenv_clock(d->env), .ota = eo->fleet.ota, .first = d->first,
                           .devices = d->devices};
    fdl_atk_ota_cfg c = {.kind = (fdl_atk_ota_kind)ota_kind(a->kind), .victim = a->dev[0] >= 0 ? (uint32_t)a->dev[0] : 0,
                         .from = (int32_t)a->dev[1], .hw = a->hw, .key_role = a->key_role, .behaviour = a->behaviour,
                         .canary = a->canary, .max_failure = a->max_failure, .wait_s = (unsigned)a->wait_s};
    if (a->kind == FDL_ATTACK_JOB_FOREIGN && a->hw)
        c.from = -1;
    fdl_atk_ota_run(&env, &c, &a->res, &a->ota);
}

static void judge(drill *d, lattack *a)
{
    fdl_observation o = {.kind = a->kind, .attack = &a->res, .n_probes = a->n_probes,
                         .audit_ran = a->audit_ran, .audit_flagged = a->audit_flagged,
                         .audit_finding = a->audit_finding[0] ? a->audit_finding : NULL, .detect_ms = a->detect_ms,
                         .rogue_connects = a->rogue_connects, .revoke_ok = a->revoke_ok,
                         .disconnect_ms = a->disconnect_ms, .within_ms = a->within_ms, .reconnected = a->reconnected,
                         .denied_after = a->denied_after, .revoked_led = a->revoked_led,
                         .others_lost = a->others_lost};
    if (ota_kind(a->kind) >= 0) {
        const fdl_atk_ota_obs *ob = &a->ota;
        o.ota = true;
        o.ota_delivery_denied = ob->delivery_denied;
        o.ota_final = ob->final_step[0] ? ob->final_step : NULL;
        o.ota_detail = ob->detail;
        o.ota_wrote = ob->wrote;
        o.ota_bad_ran = ob->bad_ran;
        o.ota_bad_runs = ob->bad_runs;
        o.ota_reverted = ob->reverted;
        o.ota_unverified_ran = ob->unverified;
        o.rollout = ob->rollout;
        o.rollout_halted = ob->job.state == FDL_JOB_HALTED;
        o.rollout_completed = ob->job.state == FDL_JOB_COMPLETED;
        o.rollout_stage = ob->job.stage;
        o.rollout_targets = ob->job.targets;
        o.rollout_untouched = ob->untouched;
        o.rollout_bad_running = ob->bad_running;
        o.rollout_reason = ob->job.reason;
    }
    for (size_t i = 0; i < a->n_probes; i++)
        o.probes[i] = &a->probe[i];
    fdl_verdict_judge(&o, &a->verdicts);
    a->judged = 1;
    if (d->o->on_attack)
        d->o->on_attack(d->o->ud, a->name, &a->verdicts);
}

/* Runs a (once) against the live fleet and judges it. Raises only before anything runs. */
static void run_attack(lua_State *L, drill *d, lattack *a)
{
    if (a->ran)
        return;
    drill_need_fleet(L, d, "an attack");
    if (a->gen != d->gen)
        fdl_luabox_error(L, "this attack was made for a fleet that is gone");
    drill_check_interrupt(L);
    fdl_atk_target t = fdl_drillenv_target(d->env);
    char id0[FDL_DEVICE_ID_MAX] = "", id1[FDL_DEVICE_ID_MAX] = "";
    if (a->dev[0] >= 0)
        drill_device_id(d, (uint32_t)a->dev[0], id0, sizeof id0);
    if (a->dev[1] >= 0)
        drill_device_id(d, (uint32_t)a->dev[1], id1, sizeof id1);
    if (d->o->verbose)
        fprintf(stderr, "fleetdrill: attack %s%s%s\n", a->name, id0[0] ? " on " : "", id0);
    a->ran = 1;
    a->started_ns = fdl_now_ns();
    switch (a->kind) {
    case FDL_ATTACK_STOLEN_CERT: fdl_atk_stolen_cert(&t, id0, &a->res); break;
    case FDL_ATTACK_EXTRACTED_KEY: run_extracted_key(d, a, &t, id0); break;
    case FDL_ATTACK_ROGUE_CA: run_rogue(d, a, &t, id0); break;
    case FDL_ATTACK_TLS12: fdl_atk_tls12(&t, id0[0] ? id0 : NULL, &a->res); break;
    case FDL_ATTACK_PLAINTEXT: fdl_atk_plaintext(&t, a->client_id[0] ? a->client_id : NULL, &a->res); break;
    case FDL_ATTACK_CROSS_PUBLISH: fdl_atk_cross_publish(&t, id0, id1, &a->res); break;
    case FDL_ATTACK_CROSS_SUBSCRIBE: fdl_atk_cross_subscribe(&t, id0, id1, a->window_ms, &a->res); break;
    case FDL_ATTACK_WILDCARD:
        fdl_atk_wildcard_subscribe(&t, id0, a->window_ms, &a->res);
        if (a->res.succeeded) {
            /* Only a finding on the attacker's own policy explains the leak (the ingest
             * actor's telemetry/+ is a wildcard by design and is flagged too). */
            fdl_reg_device rd;
            if (fdl_registry_device_get(d->o->ctx->reg, id0, &rd) == FDL_REG_OK)
                audit_for(d, a, "policy-wildcard", rd.policy[0] ? rd.policy : "device-default", 2000);
            else
                note(a, "audit: %s is not in the registry", id0);
        }
        break;
    case FDL_ATTACK_JUNK: fdl_atk_junk_payloads(&t, id0, &a->res); break;
    case FDL_ATTACK_POLICY_WIDEN: run_policy_widen(d, a, &t, id0); break;
    case FDL_ATTACK_REVOCATION: run_revocation(d, a, &t, id0); break;
    default:
        if (ota_kind(a->kind) >= 0) {
            if (!fdl_drillenv_jobs(d->env)) {
                fdl_atk_result_begin(&a->res);
                fdl_atk_note(&a->res, "setup: this fleet has no firmware model and no OTA services");
                fdl_atk_result_end(&a->res, 0, FDL_ATK_STAGE_SETUP);
            } else {
                run_ota(d, a, &t);
            }
        }
        break;
    }
    judge(d, a);
}

/* ---- step{...} ------------------------------------------------------------------------ */

/* Appends text's lines to the step's evidence, each with prefix. */
static void evidence_lines(fdl_report_step *st, const char *prefix, const char *text)
{
    char line[1200];
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        snprintf(line, sizeof line, "%s%.*s", prefix, (int)len, p);
        fdl_step_append_evidence(st, line);
        if (!end)
            break;
        p = end + 1;
    }
}

static void push_verdict(lua_State *L, const fdl_verdict *v)
{
    lua_createtable(L, 0, 4);
    drill_set_str(L, "outcome", fdl_outcome_name(v->outcome));
    drill_set_str(L, "layer", fdl_layer_name(v->layer));
    drill_set_str(L, "why", v->why);
}

static int l_step(lua_State *L)
{
    drill *d = drill_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const keys[] = {"attack", "expect", "layer", "label", NULL};
    drill_check_keys(L, 1, "step", keys);
    lua_getfield(L, 1, "attack");
    lattack *a = luaL_testudata(L, -1, FDL_LUA_ATTACK);
    if (!a)
        fdl_luabox_error(L, "step: 'attack' must be an attack (attacks.<name>{...})");
    const char *exp_s = drill_opt_string(L, 1, "expect", NULL);
    const char *lay_s = drill_opt_string(L, 1, "layer", NULL);
    const char *label = drill_opt_string(L, 1, "label", NULL);
    fdl_outcome expect;
    fdl_layer layer = FDL_LAYER_NONE;
    if (!exp_s || fdl_outcome_parse(exp_s, &expect) != FDL_REPORT_OK || expect == FDL_OUTCOME_ERROR)
        fdl_luabox_error(L, "step: expect must be \"blocked\", \"contained\", \"detected\" or \"missed\"%s%s%s",
                         exp_s ? ", not \"" : "", exp_s ? exp_s : "", exp_s ? "\"" : "");
    if (expect != FDL_OUTCOME_MISSED) {
        if (!lay_s || fdl_layer_parse(lay_s, &layer) != FDL_REPORT_OK || layer == FDL_LAYER_NONE)
            fdl_luabox_error(L, "step: layer must be one of hardware, firmware, identity, transport, cloud, data, "
                                "detection%s%s%s", lay_s ? " (not \"" : "", lay_s ? lay_s : "", lay_s ? "\")" : "");
    } else if (lay_s && (fdl_layer_parse(lay_s, &layer) != FDL_REPORT_OK || layer != FDL_LAYER_NONE)) {
        fdl_luabox_error(L, "step: an attack expected to be missed is caught by no layer (layer = \"none\" or nothing)");
    }
    fdl_report_scenario *rs = drill_report(L, d);
    run_attack(L, d, a);
    bool pass;
    const fdl_verdict *v = fdl_verdict_pick(&a->verdicts, expect, layer, &pass);
    if (a->check_failed[0])
        pass = false;
    double dur = a->res.elapsed_us / 1000.0;
    fdl_report_step_info info = {.attack = a->name,
                                 .label = label,
                                 .expected = expect,
                                 .expected_layer = layer,
                                 .actual = v->outcome,
                                 .actual_layer = v->layer,
                                 .pass = pass,
                                 .evidence = NULL,
                                 .detect_ms = v->outcome == FDL_OUTCOME_DETECTED ? a->detect_ms : -1,
                                 .respond_ms = a->respond_ms,
                                 .duration_ms = (int64_t)dur};
    fdl_report_step *st = fdl_scenario_add_step(rs, &info);
    if (!st)
        fdl_luabox_error(L, "step: the report cannot take another step");
    char line[600];
    if (a->check_failed[0]) {
        snprintf(line, sizeof line, "CHECK FAILED: %s", a->check_failed);
        fdl_step_append_evidence(st, line);
    }
    /* The verdict reported first, then the other layers the evidence shows at work. */
    for (size_t k = 0; k <= a->verdicts.n; k++) {
        const fdl_verdict *w = k == 0 ? v : &a->verdicts.v[k - 1];
        if (k > 0 && w == v)
            continue;
        snprintf(line, sizeof line, "%s %s%s%s: %s", k == 0 ? "verdict:" : "also:", fdl_outcome_name(w->outcome),
                 w->layer != FDL_LAYER_NONE ? " by " : "", w->layer != FDL_LAYER_NONE ? fdl_layer_name(w->layer) : "",
                 w->why);
        fdl_step_append_evidence(st, line);
    }
    evidence_lines(st, "", a->res.evidence);
    for (size_t i = 0; i < a->n_probes; i++) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "probe %zu (%s): ", i + 1, i == 0 ? "cross-publish" : "cross-subscribe");
        evidence_lines(st, prefix, a->probe[i].evidence);
    }
    if (a->has_extra && a->extra.evidence[0]) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "%s: ", a->extra_label ? a->extra_label : "also");
        evidence_lines(st, prefix, a->extra.evidence);
    }
    evidence_lines(st, "", a->notes);
    if (d->o->verbose)
        fprintf(stderr, "fleetdrill:   %s: expected %s by %s, got %s by %s: %s\n", pass ? "PASS" : "FAIL",
                fdl_outcome_name(expect), fdl_layer_name(layer), fdl_outcome_name(v->outcome),
                fdl_layer_name(v->layer), v->why);
    push_verdict(L, v);
    drill_set_bool(L, "pass", pass);
    return 1;
}

/* ---- attack object methods ------------------------------------------------------------ */

/* a:run() -> {succeeded, stage, evidence, verdicts = {{outcome, layer, why}, ...}} (runs once). */
static int a_run(lua_State *L)
{
    lattack *a = luaL_checkudata(L, 1, FDL_LUA_ATTACK);
    drill *d = drill_of(L);
    run_attack(L, d, a);
    lua_createtable(L, 0, 5);
    drill_set_bool(L, "succeeded", a->res.succeeded);
    drill_set_str(L, "stage", fdl_atk_stage_name(a->res.stage));
    drill_set_str(L, "evidence", a->res.evidence);
    drill_set_num(L, "elapsed_ms", a->res.elapsed_us / 1000.0);
    lua_createtable(L, (int)a->verdicts.n, 0);
    for (size_t i = 0; i < a->verdicts.n; i++) {
        push_verdict(L, &a->verdicts.v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "verdicts");
    return 1;
}

static int a_index(lua_State *L)
{
    lattack *a = luaL_checkudata(L, 1, FDL_LUA_ATTACK);
    const char *k = luaL_checkstring(L, 2);
    if (!strcmp(k, "name"))
        lua_pushstring(L, a->name);
    else if (!strcmp(k, "kind"))
        lua_pushstring(L, fdl_attack_kind_name(a->kind));
    else if (!strcmp(k, "ran"))
        lua_pushboolean(L, a->ran);
    else if (!strcmp(k, "run"))
        lua_pushcfunction(L, a_run);
    else
        return fdl_luabox_error(L, "an attack has no field '%s' (name, kind, ran, run())", k);
    return 1;
}

static int a_tostring(lua_State *L)
{
    lattack *a = luaL_checkudata(L, 1, FDL_LUA_ATTACK);
    lua_pushfstring(L, "attack %s", a->name);
    return 1;
}

void drill_open_attacks(lua_State *L)
{
    static const luaL_Reg meta[] = {{"__index", a_index}, {"__tostring", a_tostring}, {NULL, NULL}};
    luaL_newmetatable(L, FDL_LUA_ATTACK);
    drill_set_funcs(L, meta);
    drill_set_bool(L, "__metatable", 0);
    lua_pop(L, 1);
    /* the environment table is at -1 */
    lua_createtable(L, 0, FDL_ATTACK__COUNT);
    for (int k = 0; k < FDL_ATTACK__COUNT; k++) {
        lua_pushinteger(L, k);
        lua_pushcclosure(L, l_make, 1);
        lua_setfield(L, -2, k_specs[k].lua);
    }
    static const luaL_Reg attacks_meta[] = {{"__index", l_attacks_index}, {NULL, NULL}};
    static const luaL_Reg globals[] = {{"attack", l_attack}, {"step", l_step}, {NULL, NULL}};
    lua_createtable(L, 0, 2);
    drill_set_funcs(L, attacks_meta);
    drill_set_bool(L, "__metatable", 0);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "attacks");
    drill_set_funcs(L, globals);
}
