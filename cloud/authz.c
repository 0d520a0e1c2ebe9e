/* cloud/authz.c — registry-backed connect decisions, policy-backed topic decisions (see authz.h). */
#include "cloud/authz.h"

#include <stdio.h>
#include <string.h>

#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>
#include <sqlite3.h>

#include "cloud/registry.h"
#include "sim/alloc.h"

#define AUTHZ_POLICY_CACHE 16   /* named policies kept parsed; a fleet uses a handful */
#define AUTHZ_POLICY_TEXT_MAX (64 * 1024)
/* Sources tracked by the registration-window rate limiter; the oldest entry of a
 * probe window is recycled, so memory is fixed whatever an attacker sends. */
#define AUTHZ_RL_SLOTS 4096
#define AUTHZ_RL_PROBE 8
#define AUTHZ_RL_ADDR_MAX 64

typedef struct rl_bucket {
    char addr[AUTHZ_RL_ADDR_MAX];
    double tokens;
    int64_t last_ms;
} rl_bucket;

typedef struct cached_policy {
    char name[FDL_REG_ID_MAX + 1];
    fdl_policy *policy;
} cached_policy;

struct fdl_authz {
    fdl_registry *reg;
    fdl_policy *default_policy;
    cached_policy cache[AUTHZ_POLICY_CACHE];
    size_t n_cache, next_evict;
    fdl_authz_stats stats;
    fdl_authz_cfg cfg;
    rl_bucket *rl;           /* AUTHZ_RL_SLOTS */
    double global_tokens;
    int64_t global_last_ms;
    int64_t data_version;    /* of the registry when the policy cache was filled */
};

static const char *const reason_str[] = {
    [FDL_AUTHZ_ALLOW] = "allowed",
    [FDL_AUTHZ_NO_CERT] = "no client certificate",
    [FDL_AUTHZ_UNKNOWN_CERT] = "certificate not in the registry",
    [FDL_AUTHZ_PENDING] = "certificate pending registration",
    [FDL_AUTHZ_REVOKED] = "certificate revoked",
    [FDL_AUTHZ_UNSAFE_ID] = "device id unusable in a policy",
    [FDL_AUTHZ_REGISTRY_ERROR] = "registry unavailable (fail closed)",
    [FDL_AUTHZ_POLICY_ERROR] = "device policy missing or invalid (fail closed)",
    [FDL_AUTHZ_POLICY_DENY] = "denied by policy",
    [FDL_AUTHZ_UNREGISTERED_CA] = "issuer CA not registered",
    [FDL_AUTHZ_CA_REVOKED] = "issuing CA revoked",
    [FDL_AUTHZ_JITR_RECORDED] = "certificate pending registration (first connect: recorded, registration requested)",
    [FDL_AUTHZ_RATE_LIMITED] = "registration rate limit for this source",
    [FDL_AUTHZ_BAD_CERT] = "certificate unusable (no parse, or no device id)",
    [FDL_AUTHZ_CLAIM_ID_TAKEN] = "claim certificate used with the client id of a provisioned device or a service",
};

const char *fdl_authz_reason_str(fdl_authz_reason r)
{
    if ((unsigned)r < sizeof reason_str / sizeof reason_str[0] && reason_str[r])
        return reason_str[r];
    return "unknown authz reason";
}

int fdl_authz_open(const char *registry_path, fdl_authz **out, char *err, size_t errcap)
{
    return fdl_authz_open_cfg(registry_path, NULL, out, err, errcap);
}

int fdl_authz_open_cfg(const char *registry_path, const fdl_authz_cfg *cfg, fdl_authz **out, char *err,
                       size_t errcap)
{
    *out = NULL;
    fdl_authz *a = fdl_calloc(1, sizeof *a);
    if (!a || !(a->rl = fdl_calloc(AUTHZ_RL_SLOTS, sizeof *a->rl))) {
        fdl_free(a);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    if (cfg)
        a->cfg = *cfg;
    if (a->cfg.jitr_rate_per_source <= 0)
        a->cfg.jitr_rate_per_source = 2;
    if (a->cfg.jitr_burst <= 0)
        a->cfg.jitr_burst = 5;
    if (a->cfg.jitr_rate_global <= 0)
        a->cfg.jitr_rate_global = 2000;
    a->global_tokens = a->cfg.jitr_rate_global;
    a->global_last_ms = -1;
    a->data_version = -1;
    fdl_registry_opts ro = {.actor = "broker"};
    fdl_reg_status rs = fdl_registry_open(registry_path, &ro, &a->reg);
    if (rs != FDL_REG_OK) {
        snprintf(err, errcap, "registry %s: %s", registry_path, fdl_reg_strerror(rs));
        fdl_authz_free(a);
        return -1;
    }
    if (fdl_policy_new_default(&a->default_policy) != FDL_POLICY_OK) {
        snprintf(err, errcap, "cannot build the default device policy");
        fdl_authz_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

void fdl_authz_free(fdl_authz *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_cache; i++)
        fdl_policy_free(a->cache[i].policy);
    fdl_policy_free(a->default_policy);
    fdl_registry_free(a->reg);
    fdl_free(a->rl);
    fdl_free(a);
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* Takes one registration token for source at now; 1 if granted. */
static int rl_take(fdl_authz *a, const char *source, int64_t now)
{
    /* The global bucket first: a fleet-wide ceiling on registry writes. */
    if (a->global_last_ms < 0)
        a->global_last_ms = now;
    a->global_tokens += (double)(now - a->global_last_ms) / 1000.0 * a->cfg.jitr_rate_global;
    if (a->global_tokens > a->cfg.jitr_rate_global)
        a->global_tokens = a->cfg.jitr_rate_global;
    a->global_last_ms = now;
    char key[AUTHZ_RL_ADDR_MAX];
    snprintf(key, sizeof key, "%s", source && source[0] ? source : "unknown");
    uint32_t h = fnv1a(key);
    rl_bucket *b = NULL, *oldest = NULL;
    for (int i = 0; i < AUTHZ_RL_PROBE; i++) {
        rl_bucket *c = &a->rl[(h + (uint32_t)i) % AUTHZ_RL_SLOTS];
        if (c->addr[0] && !strcmp(c->addr, key)) {
            b = c;
            break;
        }
        if (!oldest || !c->addr[0] || (oldest->addr[0] && c->last_ms < oldest->last_ms))
            oldest = c;
    }
    if (!b) {
        b = oldest;
        snprintf(b->addr, sizeof b->addr, "%s", key);
        b->tokens = a->cfg.jitr_burst;
        b->last_ms = now;
    }
    b->tokens += (double)(now - b->last_ms) / 1000.0 * a->cfg.jitr_rate_per_source;
    if (b->tokens > a->cfg.jitr_burst)
        b->tokens = a->cfg.jitr_burst;
    b->last_ms = now;
    if (b->tokens < 1.0 || a->global_tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    a->global_tokens -= 1.0;
    return 1;
}

/* An unknown certificate: which CA issued it, and JITR for factory CAs. */
static fdl_authz_reason unknown_cert(fdl_authz *a, const uint8_t *der, size_t len, const char *source, int64_t now,
                                     fdl_authz_conn *c)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    fdl_authz_reason r = FDL_AUTHZ_BAD_CERT;
    int64_t ca_id = 0;
    fdl_reg_ca_state cas;
    if (mbedtls_x509_crt_parse_der(&crt, der, len) != 0)
        goto done;
    fdl_reg_status st = fdl_registry_ca_of(a->reg, &crt, &ca_id, &cas, c->issuer_role, sizeof c->issuer_role);
    if (st == FDL_REG_ERR_NOT_FOUND) {
        r = FDL_AUTHZ_UNREGISTERED_CA;
        goto done;
    }
    if (st != FDL_REG_OK) {
        r = FDL_AUTHZ_REGISTRY_ERROR;
        goto done;
    }
    if (cas == FDL_REG_CA_REVOKED) {
        r = FDL_AUTHZ_CA_REVOKED;
        goto done;
    }
    if (strcmp(c->issuer_role, "factory") != 0) {
        r = FDL_AUTHZ_UNKNOWN_CERT;   /* operational CAs issue only through the registry */
        goto done;
    }
    if (!rl_take(a, source, now)) {
        a->stats.jitr_rate_limited++;
        r = FDL_AUTHZ_RATE_LIMITED;
        goto done;
    }
    fdl_reg_cert_state cs;
    st = fdl_registry_cert_record_x509(a->reg, &crt, ca_id, NULL, &cs);
    fdl_reg_cert_info info;
    if (st == FDL_REG_OK && fdl_registry_cert_status(a->reg, c->fingerprint, &info) == FDL_REG_OK) {
        snprintf(c->identity, sizeof c->identity, "%s", info.device_id);
        snprintf(c->serial, sizeof c->serial, "%s", info.serial);
    }
    if (st == FDL_REG_ERR_ARG) {
        r = FDL_AUTHZ_BAD_CERT;
    } else if (st == FDL_REG_ERR_CA_REVOKED) {
        r = FDL_AUTHZ_CA_REVOKED;
    } else if (st != FDL_REG_OK) {
        r = FDL_AUTHZ_REGISTRY_ERROR;
    } else if (cs == FDL_REG_CERT_PENDING) {
        a->stats.jitr_recorded++;
        r = FDL_AUTHZ_JITR_RECORDED;
    } else {
        r = cs == FDL_REG_CERT_REVOKED ? FDL_AUTHZ_REVOKED : FDL_AUTHZ_REGISTRY_ERROR;
    }
done:
    mbedtls_x509_crt_free(&crt);
    return r;
}

/*
 * The ablation "registry check off": the certificate (verified by TLS) is taken at
 * its word, its CN as the identity. Returns ALLOW, or the registry's reason when
 * the CN cannot be an identity.
 */
static fdl_authz_reason ablate_registry(fdl_authz *a, const uint8_t *der, size_t len, fdl_authz_reason was,
                                        fdl_authz_conn *c)
{
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    fdl_authz_reason r = was;
    char cn[80] = "";
    size_t cn_len = 0;
    const char *why = NULL;
    if (mbedtls_x509_crt_parse_der(&crt, der, len) == 0) {
        for (const mbedtls_x509_name *n = &crt.subject; n; n = n->next)
            if (n->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &n->oid) == 0 && n->val.len < sizeof cn) {
                memcpy(cn, n->val.p, n->val.len);
                cn[n->val.len] = '\0';
                cn_len = n->val.len;
            }
    }
    /* A CN with a NUL inside is not a name. */
    if (cn[0] && strlen(cn) == cn_len &&
        fdl_policy_value_check(cn, strlen(cn), &why) == FDL_POLICY_OK) {
        snprintf(c->identity, sizeof c->identity, "%s", cn);
        fdl_reg_device dev;
        c->service = fdl_registry_device_get(a->reg, cn, &dev) == FDL_REG_OK ? dev.service : 0;
        c->ablated = 1;
        c->ablated_reason = was;
        r = FDL_AUTHZ_ALLOW;
    }
    mbedtls_x509_crt_free(&crt);
    return r;
}

/* The claim credential with client_id: refused if the id is unsafe, a service, or
 * a device that already has an ACTIVE certificate (see FDL_AUTHZ_CLAIM_IDENTITY). */
static fdl_authz_reason claim_client(fdl_authz *a, const char *client_id)
{
    const char *why = NULL;
    fdl_reg_device dev;
    int active = 0;
    if (!client_id || fdl_policy_value_check(client_id, strlen(client_id), &why) != FDL_POLICY_OK)
        return FDL_AUTHZ_UNSAFE_ID;
    fdl_reg_status st = fdl_registry_device_get(a->reg, client_id, &dev);
    if (st == FDL_REG_ERR_NOT_FOUND)
        return FDL_AUTHZ_ALLOW;
    if (st != FDL_REG_OK || fdl_registry_device_has_active(a->reg, client_id, &active) != FDL_REG_OK)
        return FDL_AUTHZ_REGISTRY_ERROR;
    return dev.service || active ? FDL_AUTHZ_CLAIM_ID_TAKEN : FDL_AUTHZ_ALLOW;
}

fdl_authz_reason fdl_authz_connect_ex(fdl_authz *a, const uint8_t *der, size_t len, const char *source,
                                      const char *client_id, int64_t now_ms, fdl_authz_conn *c)
{
    fdl_authz_reason r = FDL_AUTHZ_NO_CERT;
    fdl_reg_cert_info info;
    memset(c, 0, sizeof *c);
    if (!der || len == 0)
        goto done;
    r = FDL_AUTHZ_REGISTRY_ERROR;
    if (fdl_registry_fingerprint(der, len, c->fingerprint) != FDL_REG_OK)
        goto done;
    fdl_reg_status st = fdl_registry_cert_status(a->reg, c->fingerprint, &info);
    if (st == FDL_REG_ERR_NOT_FOUND) {
        r = unknown_cert(a, der, len, source, now_ms, c);
        goto done;
    }
    if (st != FDL_REG_OK)
        goto done;
    snprintf(c->identity, sizeof c->identity, "%s", info.device_id);
    snprintf(c->serial, sizeof c->serial, "%s", info.serial);
    if (info.state == FDL_REG_CERT_REVOKED) {
        r = FDL_AUTHZ_REVOKED;
        goto done;
    }
    if (info.state == FDL_REG_CERT_PENDING) {
        /* Still in the registration window: retries count against the source's rate. */
        r = rl_take(a, source, now_ms) ? FDL_AUTHZ_PENDING : FDL_AUTHZ_RATE_LIMITED;
        if (r == FDL_AUTHZ_RATE_LIMITED)
            a->stats.jitr_rate_limited++;
        goto done;
    }
    const char *why = NULL;
    if (fdl_policy_value_check(info.device_id, strlen(info.device_id), &why) != FDL_POLICY_OK) {
        r = FDL_AUTHZ_UNSAFE_ID;
        goto done;
    }
    fdl_reg_device dev;
    if (fdl_registry_device_get(a->reg, info.device_id, &dev) == FDL_REG_OK)
        c->service = dev.service;
    r = FDL_AUTHZ_ALLOW;
done:
    if (r != FDL_AUTHZ_ALLOW && r != FDL_AUTHZ_NO_CERT && a->cfg.registry_check_off)
        r = ablate_registry(a, der, len, r, c);
    if (r == FDL_AUTHZ_ALLOW && c->service && !strcmp(c->identity, FDL_AUTHZ_CLAIM_IDENTITY))
        r = claim_client(a, client_id);
    if (r == FDL_AUTHZ_ALLOW)
        a->stats.connects_allowed++;
    else
        a->stats.connects_denied++;
    return r;
}

fdl_authz_reason fdl_authz_connect(fdl_authz *a, const uint8_t *der, size_t len, char *identity, size_t cap)
{
    fdl_authz_conn c;
    fdl_authz_reason r = fdl_authz_connect_ex(a, der, len, NULL, NULL, 0, &c);
    if (r == FDL_AUTHZ_ALLOW) {
        if (strlen(c.identity) >= cap)
            return FDL_AUTHZ_UNSAFE_ID;
        strcpy(identity, c.identity);
    }
    return r;
}

/* Drops every cached policy if the registry file changed since the last look
 * (PRAGMA data_version moves when another connection commits): an edited
 * policy applies to the next request, and the check costs no disk access. */
static void cache_validate(fdl_authz *a)
{
    sqlite3 *db = fdl_registry_db(a->reg);
    sqlite3_stmt *s = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA data_version", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    if (v >= 0 && v == a->data_version)
        return;
    for (size_t i = 0; i < a->n_cache; i++) {
        fdl_policy_free(a->cache[i].policy);
        a->cache[i].policy = NULL;
    }
    a->n_cache = 0;
    a->next_evict = 0;
    a->data_version = v;
}

/* The parsed policy for a registry policy name; NULL if it cannot be had. */
static fdl_policy *policy_by_name(fdl_authz *a, const char *name)
{
    if (!name[0])
        return a->default_policy;
    cache_validate(a);
    for (size_t i = 0; i < a->n_cache; i++)
        if (!strcmp(a->cache[i].name, name))
            return a->cache[i].policy;
    char *text = fdl_malloc(AUTHZ_POLICY_TEXT_MAX);
    if (!text)
        return NULL;
    int per_device = 0;
    fdl_policy *p = NULL;
    if (fdl_registry_policy_get(a->reg, name, text, AUTHZ_POLICY_TEXT_MAX, &per_device) == FDL_REG_OK) {
        fdl_policy_error perr;
        if (fdl_policy_parse(text, strlen(text), &p, &perr) != FDL_POLICY_OK)
            p = NULL;
    }
    fdl_free(text);
    if (!p)
        return NULL;
    /* Round-robin eviction: a fleet has few policies; correctness never depends on the cache. */
    size_t slot = a->n_cache < AUTHZ_POLICY_CACHE ? a->n_cache++ : a->next_evict++ % AUTHZ_POLICY_CACHE;
    if (a->cache[slot].policy)
        fdl_policy_free(a->cache[slot].policy);
    snprintf(a->cache[slot].name, sizeof a->cache[slot].name, "%s", name);
    a->cache[slot].policy = p;
    return p;
}

fdl_authz_reason fdl_authz_check(fdl_authz *a, const char *identity, const char *client_id,
                                 fdl_policy_action action, const char *topic, size_t topic_len, char *detail,
                                 size_t detail_cap)
{
    fdl_authz_reason r = FDL_AUTHZ_REGISTRY_ERROR;
    if (detail && detail_cap)
        detail[0] = 0;
    fdl_reg_device dev;
    if (!identity || !identity[0]) {
        r = FDL_AUTHZ_UNSAFE_ID;
        goto done;
    }
    if (a->cfg.policy_off) {
        if (detail && detail_cap)
            snprintf(detail, detail_cap, "policy check off (ablation): allow-all");
        r = FDL_AUTHZ_ALLOW;
        goto done;
    }
    if (fdl_registry_device_get(a->reg, identity, &dev) != FDL_REG_OK)
        goto done;
    fdl_policy *p = policy_by_name(a, dev.policy);
    if (!p) {
        r = FDL_AUTHZ_POLICY_ERROR;
        goto done;
    }
    fdl_policy_vars vars = {.thing = identity,
                            .thing_len = strlen(identity),
                            .client_id = client_id ? client_id : "",
                            .client_id_len = client_id ? strlen(client_id) : 0};
    fdl_policy_decision why;
    fdl_policy_effect e = fdl_policy_check(p, action, topic, topic_len, &vars, &why);
    if (detail && detail_cap)
        fdl_policy_decision_format(p, &why, detail, detail_cap);
    r = e == FDL_POLICY_ALLOW ? FDL_AUTHZ_ALLOW : FDL_AUTHZ_POLICY_DENY;
done:
    if (r == FDL_AUTHZ_ALLOW)
        a->stats.requests_allowed++;
    else
        a->stats.requests_denied++;
    return r;
}

fdl_authz_stats fdl_authz_get_stats(const fdl_authz *a)
{
    return a->stats;
}
