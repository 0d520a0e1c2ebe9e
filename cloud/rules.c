/* cloud/rules.c — sandboxed Lua registration rules (see rules.h). */
#include "cloud/rules.h"

#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "sim/alloc.h"

struct fdl_rules {
    lua_State *L;
    int env_ref;   /* the sandbox table (register lives in it) */
};

/* Base functions that cannot reach outside the sandbox. */
static const char *const k_base_ok[] = {"assert", "error",  "ipairs",   "next",     "pairs",  "pcall", "rawequal",
                                        "rawget", "rawlen", "rawset",   "select",   "tonumber", "tostring", "type",
                                        "xpcall", "print",  "getmetatable", "setmetatable", NULL};
static const char *const k_libs_ok[] = {"string", "table", "math", "utf8", NULL};

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    luaL_error(L, "instruction budget (%d) exhausted", FDL_RULES_MAX_INSTRUCTIONS);
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    lua_pushstring(L, msg ? msg : "(error object is not a string)");
    return 1;
}

int fdl_rules_open(const char *path, fdl_rules **out, char *err, size_t errcap)
{
    *out = NULL;
    fdl_rules *r = fdl_calloc(1, sizeof *r);
    if (!r || !(r->L = luaL_newstate())) {
        fdl_free(r);
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    lua_State *L = r->L;
    luaL_openlibs(L);
    lua_newtable(L);   /* the sandbox */
    for (const char *const *n = k_base_ok; *n; n++) {
        lua_getglobal(L, *n);
        lua_setfield(L, -2, *n);
    }
    for (const char *const *n = k_libs_ok; *n; n++) {
        lua_getglobal(L, *n);
        lua_setfield(L, -2, *n);
    }
    lua_pushvalue(L, -1);
    r->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);   /* pops the copy; the table stays */
    lua_pushcfunction(L, traceback);
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        snprintf(err, errcap, "%s", lua_tostring(L, -1));
        goto fail;
    }
    lua_pushvalue(L, -3);                  /* sandbox as the chunk's _ENV */
    lua_setupvalue(L, -2, 1);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, FDL_RULES_MAX_INSTRUCTIONS);
    int rc = lua_pcall(L, 0, 0, -2);
    lua_sethook(L, NULL, 0, 0);
    if (rc != LUA_OK) {
        snprintf(err, errcap, "%s", lua_tostring(L, -1));
        goto fail;
    }
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
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
    if (r->L)
        lua_close(r->L);
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
    lua_pushcfunction(L, traceback);
    lua_rawgeti(L, LUA_REGISTRYINDEX, r->env_ref);
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
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, FDL_RULES_MAX_INSTRUCTIONS);
    int rc = lua_pcall(L, 1, 2, 1);
    lua_sethook(L, NULL, 0, 0);
    if (rc != LUA_OK) {
        snprintf(err, errcap, "%s", lua_tostring(L, -1));
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
