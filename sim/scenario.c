/* sim/scenario.c — the scenario engine: Lua state, scenario{}, require, teardown, report (see scenario.h). */
#include "sim/scenario.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloud/audit.h"
#include "fdl_buildcfg.h"
#include "sim/alloc.h"
#include "sim/luabox.h"
#include "sim/metrics.h"
#include "sim/scenario_int.h"

#define DRILL_KEY "fdl.drill"
#define LOADED_KEY "fdl.loaded"

drill *drill_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, DRILL_KEY);
    drill *d = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return d;
}

/* The file name without directory and ".lua": the scenario's name unless it says otherwise. */
static void base_name(const char *path, char *buf, size_t cap)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 4 && !strcmp(b + n - 4, ".lua"))
        n -= 4;
    snprintf(buf, cap, "%.*s", (int)n, b);
}

static fdl_report_scenario *ensure_report(drill *d)
{
    if (!d->rs) {
        if (!d->name[0])
            base_name(d->path, d->name, sizeof d->name);
        d->rs = fdl_report_add_scenario(d->report, d->name, d->path, d->description[0] ? d->description : NULL);
        if (d->rs && d->o->without) {
            char sw[128];
            fdl_scenario_set_ablation(d->rs, fdl_switch_list(d->o->without, sw, sizeof sw));
        }
    }
    return d->rs;
}

fdl_report_scenario *drill_report(lua_State *L, drill *d)
{
    fdl_report_scenario *rs = ensure_report(d);
    if (!rs)
        fdl_luabox_error(L, "the report cannot take this scenario (out of memory or too many scenarios)");
    return rs;
}

void drill_need_fleet(lua_State *L, drill *d, const char *what)
{
    if (!d->env || !d->gen)
        fdl_luabox_error(L, "%s needs a fleet: call fleet{...} first", what);
}

void drill_check_interrupt(lua_State *L)
{
    if (fdl_fleet_stop_requested())
        fdl_luabox_error(L, "interrupted");
}

int drill_sleep(double seconds)
{
    uint64_t end = fdl_now_ns() + (uint64_t)(seconds * 1e9);
    while (fdl_now_ns() < end) {
        if (fdl_fleet_stop_requested())
            return 0;
        uint64_t left = (end - fdl_now_ns()) / 1000u;
        usleep(left > 50000 ? 50000 : (useconds_t)left);
    }
    return 1;
}

void drill_check_keys(lua_State *L, int idx, const char *what, const char *const *allowed)
{
    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            fdl_luabox_error(L, "%s: only named fields are allowed", what);
        const char *k = lua_tostring(L, -1);
        const char *const *a = allowed;
        while (*a && strcmp(*a, k))
            a++;
        if (!*a) {
            char list[512] = "";
            for (a = allowed; *a; a++) {
                size_t u = strlen(list);
                snprintf(list + u, sizeof list - u, "%s%s", u ? ", " : "", *a);
            }
            fdl_luabox_error(L, "%s: unknown field '%s' (known: %s)", what, k, list);
        }
    }
}

double drill_opt_number(lua_State *L, int idx, const char *key, double def, double min, double max)
{
    lua_getfield(L, idx, key);
    double v = def;
    if (!lua_isnil(L, -1)) {
        int ok = 0;
        v = lua_tonumberx(L, -1, &ok);
        if (!ok || !(v >= min && v <= max))
            fdl_luabox_error(L, "%s must be a number from %g to %g", key, min, max);
    }
    lua_pop(L, 1);
    return v;
}

const char *drill_opt_string(lua_State *L, int idx, const char *key, const char *def)
{
    lua_getfield(L, idx, key);
    const char *s = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            fdl_luabox_error(L, "%s must be a string", key);
        s = lua_tostring(L, -1);   /* stays valid: the table holds the string */
    }
    lua_pop(L, 1);
    return s;
}

int drill_audit_find(drill *d, const char *check, const char *object, unsigned wait_ms, char *buf, size_t cap)
{
    uint64_t end = fdl_now_ns() + (uint64_t)wait_ms * 1000000u;
    buf[0] = '\0';
    for (;;) {
        fdl_audit_report *rep = NULL;
        char err[256];
        if (fdl_audit_run(d->o->ctx->reg, NULL, &rep, err, sizeof err) == FDL_AUDIT_OK) {
            for (size_t i = 0; i < rep->n; i++) {
                const fdl_audit_finding *f = &rep->findings[i];
                if (strcmp(fdl_audit_check_id(f->check), check) || (object && strcmp(f->object, object)))
                    continue;
                snprintf(buf, cap, "%s [%s] %s %s: %s", fdl_audit_check_id(f->check),
                         fdl_audit_severity_name(f->severity), f->object_kind, f->object, f->message);
                fdl_audit_report_free(rep);
                return 1;
            }
            fdl_audit_report_free(rep);
        } else {
            snprintf(buf, cap, "audit failed: %s", err);
        }
        if (fdl_now_ns() >= end || fdl_fleet_stop_requested())
            return 0;
        usleep(200000);
    }
}

void drill_set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

void drill_set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

void drill_set_num(lua_State *L, const char *k, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

void drill_set_bool(lua_State *L, const char *k, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

void drill_set_funcs(lua_State *L, const luaL_Reg *fns)
{
    for (; fns->name; fns++) {
        lua_pushcfunction(L, fns->func);
        lua_setfield(L, -2, fns->name);
    }
}

/* ---- globals: scenario{}, print, require ---------------------------------------- */

/* scenario { name = "...", description = "..." } */
static int l_scenario(lua_State *L)
{
    drill *d = drill_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const keys[] = {"name", "description", NULL};
    drill_check_keys(L, 1, "scenario", keys);
    if (d->rs)
        fdl_luabox_error(L, "scenario{} must come first (before fleet{} and any step)");
    const char *name = drill_opt_string(L, 1, "name", NULL);
    const char *desc = drill_opt_string(L, 1, "description", NULL);
    if (name) {
        if (!name[0] || strlen(name) >= sizeof d->name)
            fdl_luabox_error(L, "scenario name must be 1 to %d bytes", (int)sizeof d->name - 1);
        snprintf(d->name, sizeof d->name, "%s", name);
    }
    if (desc)
        snprintf(d->description, sizeof d->description, "%s", desc);
    drill_report(L, d);
    return 0;
}

/* print(...): to stderr, prefixed with the scenario's name (stdout is the report's). */
static int l_print(lua_State *L)
{
    drill *d = drill_of(L);
    int n = lua_gettop(L);
    char name[128];
    if (d->name[0])
        snprintf(name, sizeof name, "%s", d->name);
    else
        base_name(d->path, name, sizeof name);
    fprintf(stderr, "[%s]", name);
    for (int i = 1; i <= n; i++)
        fprintf(stderr, " %s", luaL_tolstring(L, i, NULL));
    fputc('\n', stderr);
    return 0;
}

static const char *lib_dir(const drill *d)
{
    return d->o->lib_dir ? d->o->lib_dir : FDL_SOURCE_DIR "/scenarios/lib";
}

/* require "name": scenarios/lib/<name>.lua, loaded once, in the same sandbox. */
static int l_require(lua_State *L)
{
    drill *d = drill_of(L);
    const char *name = luaL_checkstring(L, 1);
    size_t n = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) && name[i] != '_')
            fdl_luabox_error(L, "require: '%s' is not a library name ([a-z0-9_]+ in %s)", name, lib_dir(d));
    if (!n || n > 64)
        fdl_luabox_error(L, "require: bad library name");
    lua_getfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    lua_getfield(L, -1, name);
    if (!lua_isnil(L, -1))
        return 1;
    lua_pop(L, 1);
    /* First lib/ next to the scenario file (a team's own helpers beside its own
     * drills), then the project's library. */
    char path[1200], err[1024], dir[1024];
    snprintf(dir, sizeof dir, "%s", d->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    snprintf(path, sizeof path, "%s/lib/%s.lua", dir, name);
    if (access(path, R_OK) != 0)
        snprintf(path, sizeof path, "%s/%s.lua", lib_dir(d), name);
    if (fdl_luabox_loadfile(L, path, err, sizeof err) != 0)
        fdl_luabox_error(L, "require '%s': %s", name, err);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, name);
    return 1;
}

/* ---- the sampler: timing series from the live view -------------------------------- */

/* One point of every series from the live view (sampler thread, or the engine once it stopped). */
static void sample(drill *d)
{
    if (d->n_samples >= DRILL_SAMPLES_MAX)
        return;
    fdl_fleet_live_totals t;
    fdl_fleet_live_totals_get(fdl_drillenv_live(d->env), &t);
    uint32_t i = d->n_samples;
    d->sample_t[i] = (int64_t)((fdl_now_ns() - d->t0_ns) / 1000000u);
    d->sample_online[i] = t.online;
    d->sample_acked[i] = (double)t.acked;
    d->n_samples = i + 1;
}

static void *sampler_main(void *arg)
{
    drill *d = arg;
    while (!atomic_load(&d->sampler_stop) && d->n_samples < DRILL_SAMPLES_MAX) {
        sample(d);
        for (unsigned k = 0; k < DRILL_SAMPLE_MS / 20 && !atomic_load(&d->sampler_stop); k++)
            usleep(20000);
    }
    return NULL;
}

/* Called by fleet{} once the environment runs. */
int drill_sampler_start(drill *d);
int drill_sampler_start(drill *d)
{
    d->sample_t = fdl_calloc(DRILL_SAMPLES_MAX, sizeof *d->sample_t);
    d->sample_online = fdl_calloc(DRILL_SAMPLES_MAX, sizeof *d->sample_online);
    d->sample_acked = fdl_calloc(DRILL_SAMPLES_MAX, sizeof *d->sample_acked);
    if (!d->sample_t || !d->sample_online || !d->sample_acked)
        return -1;
    atomic_store(&d->sampler_stop, 0);
    if (pthread_create(&d->sampler, NULL, sampler_main, d) != 0)
        return -1;
    d->sampler_started = 1;
    return 0;
}

void drill_teardown(drill *d)
{
    if (d->sampler_started) {
        atomic_store(&d->sampler_stop, 1);
        pthread_join(d->sampler, NULL);
        d->sampler_started = 0;
        sample(d);   /* the end of the drill, so a short one still has a line */
    }
    if (d->env) {
        fdl_drillenv_stop(d->env);
        fdl_drillenv_free(d->env);
        d->env = NULL;
    }
    d->gen = 0;
    if (d->n_samples && d->rs) {
        fdl_report_series *on = fdl_scenario_add_series(d->rs, "devices online", "devices");
        fdl_report_series *ak = fdl_scenario_add_series(d->rs, "telemetry acknowledged (cumulative)", "messages");
        for (uint32_t i = 0; i < d->n_samples; i++) {
            if (on)
                fdl_series_add_point(on, d->sample_t[i], d->sample_online[i]);
            if (ak)
                fdl_series_add_point(ak, d->sample_t[i], d->sample_acked[i]);
        }
        d->n_samples = 0;
    }
    fdl_free(d->sample_t);
    fdl_free(d->sample_online);
    fdl_free(d->sample_acked);
    d->sample_t = NULL;
    d->sample_online = d->sample_acked = NULL;
}

/* ---- running a file ------------------------------------------------------------------ */

static void open_engine(lua_State *L, drill *d)
{
    lua_pushlightuserdata(L, d);
    lua_setfield(L, LUA_REGISTRYINDEX, DRILL_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    fdl_luabox_push_env(L);
    static const luaL_Reg globals[] = {{"scenario", l_scenario}, {"print", l_print}, {"require", l_require},
                                       {NULL, NULL}};
    drill_set_funcs(L, globals);
    drill_open_fleet(L);
    drill_open_attacks(L);
    lua_pop(L, 1);
}

/* Runs lib/drill.lua (the library every scenario gets) if the library has one. */
static int load_library(lua_State *L, drill *d, char *err, size_t cap)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/drill.lua", lib_dir(d));
    if (access(path, F_OK) != 0)
        return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, LOADED_KEY);
    if (fdl_luabox_loadfile(L, path, err, cap) != 0) {
        lua_pop(L, 1);
        return -1;
    }
    if (fdl_luabox_pcall(L, 0, 1, FDL_SCENARIO_BUDGET, err, cap) != 0) {
        lua_pop(L, 1);
        return -1;
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "drill");   /* require "drill" gives the same table */
    fdl_luabox_push_env(L);
    lua_insert(L, -2);
    lua_setfield(L, -2, "drill");   /* and every scenario has it as the global `drill` */
    lua_pop(L, 2);
    return 0;
}

int fdl_scenario_run(const char *path, const fdl_scenario_opts *o, fdl_report *r)
{
    drill *d = fdl_calloc(1, sizeof *d);
    if (!d)
        return -1;
    d->o = o;
    d->path = path;
    d->report = r;
    d->t0_ns = fdl_now_ns();
    int rc = 1;
    char err[2048] = "";
    fdl_luabox_opts lo = {.with_os_time = 1, .unsafe = o->unsafe_lua};
    lua_State *L = fdl_luabox_new(&lo);
    if (!L) {
        snprintf(err, sizeof err, "%s: cannot create a Lua state (out of memory)", path);
        goto done;
    }
    open_engine(L, d);
    fdl_luabox_set_main(L, path);
    if (load_library(L, d, err, sizeof err) != 0)
        goto done;
    if (fdl_luabox_loadfile(L, path, err, sizeof err) != 0)
        goto done;
    if (o->verbose)
        fprintf(stderr, "fleetdrill: scenario %s\n", path);
    if (fdl_luabox_pcall(L, 0, 0, FDL_SCENARIO_BUDGET, err, sizeof err) != 0)
        goto done;
    rc = 0;
done:
    /* The report scenario exists even for a file that did not parse. */
    ensure_report(d);
    drill_teardown(d);
    if (rc != 0) {
        if (fdl_fleet_stop_requested())
            rc = 2;
        if (d->rs)
            fdl_scenario_set_error(d->rs, err);
        if (o->verbose)
            fprintf(stderr, "fleetdrill: scenario error: %s\n", err);
    }
    if (!d->rs)
        rc = -1;
    fdl_luabox_close(L);
    fdl_free(d);
    return rc;
}
