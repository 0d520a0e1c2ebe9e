/* attacks/policy_widen.c — runtime policy widening and restore (see policy_widen.h). */
#include "attacks/policy_widen.h"

#include <stdio.h>
#include <string.h>

#include "cloud/enroll.h"
#include "cloud/registry.h"
#include "sim/alloc.h"

struct fdl_atk_policy_saved {
    char name[FDL_REG_ID_MAX + 1];
    int per_device;
    char *text;
};

static fdl_registry *open_reg(const fdl_atk_target *t, fdl_atk_result *r)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/registry.db", t->state_dir ? t->state_dir : ".");
    fdl_registry_opts o = {.actor = "attack"};
    fdl_registry *reg = NULL;
    if (fdl_registry_open(path, &o, &reg) != FDL_REG_OK) {
        if (r)
            fdl_atk_note(r, "setup: cannot open the registry %s", path);
        return NULL;
    }
    return reg;
}

void fdl_atk_policy_saved_free(fdl_atk_policy_saved *s)
{
    if (!s)
        return;
    fdl_free(s->text);
    fdl_free(s);
}

int fdl_atk_policy_widen(const fdl_atk_target *t, const char *policy, const char *extra_lines,
                         fdl_atk_policy_saved **saved, fdl_atk_result *r)
{
    *saved = NULL;
    if (r)
        fdl_atk_result_begin(r);
    policy = policy ? policy : FDL_ENROLL_POLICY_DEVICE;
    extra_lines = extra_lines ? extra_lines : FDL_ATK_WIDEN_TELEMETRY;
    int rc = -1;
    char *widened = NULL;
    fdl_atk_policy_saved *s = fdl_calloc(1, sizeof *s);
    fdl_registry *reg = open_reg(t, r);
    if (!s || !reg || strlen(policy) > FDL_REG_ID_MAX)
        goto cleanup;
    snprintf(s->name, sizeof s->name, "%s", policy);
    s->text = fdl_malloc(FDL_REG_POLICY_MAX + 1);
    if (!s->text)
        goto cleanup;
    fdl_reg_status st = fdl_registry_policy_get(reg, policy, s->text, FDL_REG_POLICY_MAX + 1, &s->per_device);
    if (st != FDL_REG_OK) {
        if (r)
            fdl_atk_note(r, "policy %s: %s", policy, fdl_reg_strerror(st));
        goto cleanup;
    }
    size_t old = strlen(s->text), add = strlen(extra_lines);
    widened = fdl_malloc(old + add + 2);
    if (!widened)
        goto cleanup;
    memcpy(widened, s->text, old);
    size_t n = old;
    if (n && widened[n - 1] != '\n')
        widened[n++] = '\n';
    memcpy(widened + n, extra_lines, add + 1);
    st = fdl_registry_policy_put(reg, policy, widened, s->per_device);
    if (st != FDL_REG_OK) {
        if (r)
            fdl_atk_note(r, "policy %s: put refused: %s (%s)", policy, fdl_reg_strerror(st),
                         fdl_registry_last_error(reg));
        goto cleanup;
    }
    if (r) {
        fdl_atk_note(r, "policy %s widened in the registry; lines added:", policy);
        char line[256];
        for (const char *p = extra_lines; *p;) {
            size_t k = strcspn(p, "\n");
            snprintf(line, sizeof line, "%.*s", (int)(k < 255 ? k : 255), p);
            if (line[0] && line[0] != '#')
                fdl_atk_note(r, "  %s", line);
            p += k + (p[k] == '\n');
        }
    }
    *saved = s;
    s = NULL;
    rc = 0;
cleanup:
    fdl_free(widened);
    fdl_atk_policy_saved_free(s);
    fdl_registry_free(reg);
    if (r)
        fdl_atk_result_end(r, rc == 0, FDL_ATK_STAGE_SETUP);
    return rc;
}

int fdl_atk_policy_restore(const fdl_atk_target *t, const fdl_atk_policy_saved *saved, fdl_atk_result *r)
{
    if (r)
        fdl_atk_result_begin(r);
    fdl_registry *reg = saved ? open_reg(t, r) : NULL;
    if (!reg) {
        if (r)
            fdl_atk_result_end(r, 0, FDL_ATK_STAGE_SETUP);
        return -1;
    }
    fdl_reg_status st = fdl_registry_policy_put(reg, saved->name, saved->text, saved->per_device);
    if (r)
        fdl_atk_note(r, "policy %s restored: %s", saved->name, st == FDL_REG_OK ? "ok" : fdl_reg_strerror(st));
    fdl_registry_free(reg);
    if (r)
        fdl_atk_result_end(r, st == FDL_REG_OK, FDL_ATK_STAGE_SETUP);
    return st == FDL_REG_OK ? 0 : -1;
}
