/*
 * sim/scenario_int.h — private to the scenario engine (scenario.c, lua_fleet.c,
 * lua_attacks.c): the state of one running scenario, shared through the Lua
 * registry, and what the bindings need from each other.
 */
#ifndef FDL_SCENARIO_INT_H
#define FDL_SCENARIO_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "sim/drillenv.h"
#include "sim/scenario.h"

/* Userdata type names (luaL_checkudata). */
#define FDL_LUA_FLEET "fdl.fleet"
#define FDL_LUA_DEVICE "fdl.device"
#define FDL_LUA_ATTACK "fdl.attack"

/* Timing series points kept per scenario: 5 per second for 1 hour. */
#define DRILL_SAMPLES_MAX 18000u
#define DRILL_SAMPLE_MS 200u

/* One running scenario. Lives on the C heap for the whole run; Lua objects refer
 * to its fleet by generation number, never by pointer. */
typedef struct drill {
    const fdl_scenario_opts *o;
    const char *path;
    fdl_report *report;
    fdl_report_scenario *rs;      /* created at the first thing that needs it */
    char name[128];
    char description[1024];
    uint64_t t0_ns;               /* the scenario's start: time 0 of its series */

    /* The fleet (one per scenario). gen is 0 before fleet{} and after teardown. */
    fdl_drillenv *env;
    uint32_t gen;
    uint32_t devices, first;
    fdl_profile profile;
    fdl_prov_mode mode;
    double time_scale;

    /* Timing series sampled from the fleet's live view on a thread of their own. */
    pthread_t sampler;
    int sampler_started;
    atomic_int sampler_stop;
    uint32_t n_samples;
    int64_t *sample_t;            /* ms since t0 */
    double *sample_online, *sample_acked;
} drill;

/* The drill of L (stored in its registry by scenario.c). */
drill *drill_of(lua_State *L);

/* The report scenario, created if not yet (name = scenario{} name or the file's); raises on failure. */
fdl_report_scenario *drill_report(lua_State *L, drill *d);

/* Raises a Lua error unless the fleet is up: "<what> needs a fleet: call fleet{} first". */
void drill_need_fleet(lua_State *L, drill *d, const char *what);

/* Raises "interrupted" if a stop was requested (Ctrl-C). */
void drill_check_interrupt(lua_State *L);

/* Sleeps up to seconds of real time in short slices; returns early (0) when a stop
 * was requested, 1 when the time passed. */
int drill_sleep(double seconds);

/* Device index (0-based) of argument idx: a device object of the current fleet or a
 * 1-based number. Raises on anything else. */
uint32_t drill_check_device(lua_State *L, drill *d, int idx);
/* The device id of fleet index i ("dev-000042"). */
void drill_device_id(const drill *d, uint32_t i, char *buf, size_t cap);
/* Pushes a device object for fleet index i. */
void drill_push_device(lua_State *L, drill *d, uint32_t i);

/* Rejects keys of table idx that are not in allowed (NULL-terminated): catches typos. */
void drill_check_keys(lua_State *L, int idx, const char *what, const char *const *allowed);
/* Optional fields of table idx. */
double drill_opt_number(lua_State *L, int idx, const char *key, double def, double min, double max);
const char *drill_opt_string(lua_State *L, int idx, const char *key, const char *def);

/* An audit finding of `check` whose object is `object` (NULL = any), polled every
 * 200 ms for up to wait_ms. Returns 1 and the message in buf when found. */
int drill_audit_find(drill *d, const char *check, const char *object, unsigned wait_ms, char *buf, size_t cap);

/* Sets field k of the table on top of the stack. */
void drill_set_str(lua_State *L, const char *k, const char *v);
void drill_set_int(lua_State *L, const char *k, lua_Integer v);
void drill_set_num(lua_State *L, const char *k, double v);
void drill_set_bool(lua_State *L, const char *k, int v);
/* Sets the C functions of fns (NULL-terminated) as fields of the table on top of the stack. */
void drill_set_funcs(lua_State *L, const luaL_Reg *fns);

/* luaopen-style registration of the bindings into the environment table at -1. */
void drill_open_fleet(lua_State *L);
void drill_open_attacks(lua_State *L);

/* Stops the fleet environment and the sampler and records the series; safe to call twice. */
void drill_teardown(drill *d);

#endif
