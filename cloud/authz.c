/* cloud/authz.c — registry-backed connect decisions, policy-backed topic decisions (see authz.h). */
#include "cloud/authz.h"

#include <stdio.h>
#include <string.h>

#include "cloud/registry.h"
#include "sim/alloc.h"

#define AUTHZ_POLICY_CACHE 16   /* named policies kept parsed; a fleet uses a handful */
#define AUTHZ_POLICY_TEXT_MAX (64 * 1024)

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
};

const char *fdl_authz_reason_str(fdl_authz_reason r)
{
    if ((unsigned)r < sizeof reason_str / sizeof reason_str[0] && reason_str[r])
        return reason_str[r];
    return "unknown authz reason";
}

int fdl_authz_open(const char *registry_path, fdl_authz **out, char *err, size_t errcap)
{
    *out = NULL;
    fdl_authz *a = fdl_calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
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
    fdl_free(a);
}

fdl_authz_reason fdl_authz_connect(fdl_authz *a, const uint8_t *der, size_t len, char *identity, size_t cap)
{
    fdl_authz_reason r = FDL_AUTHZ_NO_CERT;
    char fp[65];
    fdl_reg_cert_info info;
    if (!der || len == 0)
        goto done;
    r = FDL_AUTHZ_REGISTRY_ERROR;
    if (fdl_registry_fingerprint(der, len, fp) != FDL_REG_OK)
        goto done;
    fdl_reg_status st = fdl_registry_cert_status(a->reg, fp, &info);
    if (st == FDL_REG_ERR_NOT_FOUND) {
        r = FDL_AUTHZ_UNKNOWN_CERT;
        goto done;
    }
    if (st != FDL_REG_OK)
        goto done;
    if (info.state != FDL_REG_CERT_ACTIVE) {
        r = info.state == FDL_REG_CERT_PENDING ? FDL_AUTHZ_PENDING : FDL_AUTHZ_REVOKED;
        goto done;
    }
    const char *why = NULL;
    if (fdl_policy_value_check(info.device_id, strlen(info.device_id), &why) != FDL_POLICY_OK ||
        strlen(info.device_id) >= cap) {
        r = FDL_AUTHZ_UNSAFE_ID;
        goto done;
    }
    strcpy(identity, info.device_id);
    r = FDL_AUTHZ_ALLOW;
done:
    if (r == FDL_AUTHZ_ALLOW)
        a->stats.connects_allowed++;
    else
        a->stats.connects_denied++;
    return r;
}

/* The parsed policy for a registry policy name; NULL if it cannot be had. */
static fdl_policy *policy_by_name(fdl_authz *a, const char *name)
{
    if (!name[0])
        return a->default_policy;
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
