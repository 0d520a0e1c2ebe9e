/* cloud/rules.c — sandboxed Lua registration rules (see rules.h). */
#include "cloud/rules.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "sim/alloc.h"
#include "sim/luabox.h"

struct fdl_rules {
    lua_State *L;
};

int fdl_rules_open(const char *path, fdl_rules **out, char *err, size_t errcap)
{
    *out = NULL;
    fdl_rules *r = fdl_calloc(1, sizeof *r);
    if (!r || !(r->L = fdl_luabox_new(NULL))) {
        fdl_free(r);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    lua_State *L = r->L;
    if (fdl_luabox_loadfile(L, path, err, errcap) != 0 ||
        fdl_luabox_pcall(L, 0, 0, FDL_RULES_MAX_INSTRUCTIONS, err, errcap) != 0)
        goto fail;
    fdl_luabox_push_env(L);
    lua_getfield(L, -1, "register");
    if (!lua_isfunction(L, -1)) {
        snprintf(err, errcap, "%s: defines no function register(device)", path);
        goto fail;
    }
    lua_settop(L, 0);
    *out = r;
    return 0;
fail:
    fdl_rules_free(r);
    return -1;
}

void fdl_rules_free(fdl_rules *r)
{
    if (!r)
        return;
    fdl_luabox_close(r->L);
    fdl_free(r);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v ? v : "");
    lua_setfield(L, -2, k);
}

static void set_bool(lua_State *L, const char *k, bool v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

int fdl_rules_decide(fdl_rules *r, const fdl_rules_device *d, char *policy, size_t policy_cap, char *reason,
                     size_t reason_cap, char *err, size_t errcap)
{
    lua_State *L = r->L;
    policy[0] = reason[0] = err[0] = '\0';
    lua_settop(L, 0);
    fdl_luabox_push_env(L);
    lua_getfield(L, -1, "register");
    lua_remove(L, -2);
    lua_newtable(L);
    set_str(L, "id", d->id);
    set_str(L, "serial", d->serial);
    set_str(L, "fingerprint", d->fingerprint);
    set_str(L, "source", d->source);
    set_str(L, "firmware", d->firmware);
    set_str(L, "method", d->method ? d->method : "jitr");
    set_bool(L, "sold", d->sold);
    set_bool(L, "recalled", d->recalled);
    set_bool(L, "known", d->known);
    if (fdl_luabox_pcall(L, 1, 2, FDL_RULES_MAX_INSTRUCTIONS, err, errcap) != 0) {
        lua_settop(L, 0);
        return -1;
    }
    int verdict = -1;
    if (!lua_isboolean(L, -2)) {
        snprintf(err, errcap, "register() must return true, \"policy\" or false, \"reason\"");
    } else if (lua_toboolean(L, -2)) {
        const char *p = lua_tostring(L, -1);
        snprintf(policy, policy_cap, "%s", p ? p : "device-default");
        verdict = 1;
    } else {
        const char *why = lua_tostring(L, -1);
        snprintf(reason, reason_cap, "%s", why ? why : "rejected by the registration rules");
        verdict = 0;
    }
    lua_settop(L, 0);
    return verdict;
}
