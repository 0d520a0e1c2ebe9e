/*
 * sim/lua_fleet.c — the Lua binding of the fleet and its devices: fleet{...}
 * brings a drill environment up (sim/drillenv.h); the fleet object waits, reads
 * the live view, revokes and audits; device objects are (fleet generation,
 * index) pairs, never pointers, so a script cannot reach a torn-down fleet.
 */
#include <stdio.h>
#include <string.h>

#include "cloud/audit.h"
#include "sim/bootaudit.h"
#include "sim/luabox.h"
#include "sim/rollout.h"
#include "sim/metrics.h"
#include "sim/scenario_int.h"

int drill_sampler_start(drill *d);

typedef struct lfleet {
    uint32_t gen;
} lfleet;

typedef struct ldevice {
    uint32_t gen;
    uint32_t index;   /* 0-based in the fleet */
} ldevice;

void drill_device_id(const drill *d, uint32_t i, char *buf, size_t cap)
{
    fdl_device_id(d->first + i, buf, cap);
}

void drill_push_device(lua_State *L, drill *d, uint32_t i)
{
    ldevice *v = lua_newuserdatauv(L, sizeof *v, 0);
    v->gen = d->gen;
    v->index = i;
    luaL_setmetatable(L, FDL_LUA_DEVICE);
}

uint32_t drill_check_device(lua_State *L, drill *d, int idx)
{
    drill_need_fleet(L, d, "a device");
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i < 1 || (uint64_t)i > d->devices)
            fdl_luabox_error(L, "device %lld: the fleet has devices 1 to %u", (long long)i, d->devices);
        return (uint32_t)(i - 1);
    }
    ldevice *v = luaL_testudata(L, idx, FDL_LUA_DEVICE);
    if (!v)
        fdl_luabox_error(L, "expected a device (fleet:device(i)) or a device number, got %s", luaL_typename(L, idx));
    if (v->gen != d->gen)
        fdl_luabox_error(L, "this device belongs to a fleet that is gone");
    return v->index;
}

static drill *check_fleet(lua_State *L)
{
    lfleet *f = luaL_checkudata(L, 1, FDL_LUA_FLEET);
    drill *d = drill_of(L);
    if (f->gen != d->gen || !d->env)
        fdl_luabox_error(L, "this fleet is gone");
    return d;
}

/* ---- fleet{...} ------------------------------------------------------------------- */

static int l_fleet(lua_State *L)
{
    drill *d = drill_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const keys[] = {"devices",        "profile", "provisioning", "time_scale", "telemetry_interval",
                                       "online_timeout", "trial",   "block_timeout", NULL};
    drill_check_keys(L, 1, "fleet", keys);
    if (d->env)
        fdl_luabox_error(L, "a scenario has one fleet (fleet{} was already called)");
    uint32_t devices = (uint32_t)drill_opt_number(L, 1, "devices", 10, 1, FDL_SCENARIO_RANGE - 1);
    const char *prof = drill_opt_string(L, 1, "profile", "se");
    const char *mode = drill_opt_string(L, 1, "provisioning", "direct");
    double scale = drill_opt_number(L, 1, "time_scale", 1, 1, 1000);
    double tele = drill_opt_number(L, 1, "telemetry_interval", 5, 0.01, 86400);
    double timeout = drill_opt_number(L, 1, "online_timeout", FDL_SCENARIO_ONLINE_TIMEOUT_S, 1, 3600);
    double trial = drill_opt_number(L, 1, "trial", 600, 1, 86400);
    double block_timeout = drill_opt_number(L, 1, "block_timeout", 30, 0.1, 3600);
    fdl_profile p;
    fdl_prov_mode m;
    if (fdl_profile_parse(prof, &p) != 0)
        fdl_luabox_error(L, "fleet: profile is \"se\" or \"flash\", not \"%s\"", prof);
    if (fdl_prov_mode_parse(mode, &m) != 0)
        fdl_luabox_error(L, "fleet: provisioning is \"direct\", \"jitr\" or \"claim\", not \"%s\"", mode);
    if (d->o->devices)
        devices = d->o->devices < FDL_SCENARIO_RANGE ? d->o->devices : FDL_SCENARIO_RANGE - 1;
    drill_check_interrupt(L);
    fdl_report_scenario *rs = drill_report(L, d);
    fdl_scenario_set_fleet(rs, devices, fdl_profile_name(p), fdl_prov_mode_name(m));

    fdl_drillenv_opts eo;
    fdl_drillenv_opts_init(&eo, d->o->ctx);
    eo.devices = devices;
    eo.first = FDL_SCENARIO_RANGE * ((uint32_t)p + 2u * (uint32_t)m);
    eo.profile = p;
    eo.provision = m;
    eo.without = d->o->without;
    eo.fresh_registry = 1;
    eo.progress = d->o->verbose;
    eo.fleet.time_scale = scale;
    eo.fleet.params.telemetry_interval_ms = (uint64_t)(tele * 1000.0);
    eo.fleet.ota.trial_ms = (uint64_t)(trial * 1000.0);
    eo.fleet.ota.block_timeout_ms = (uint64_t)(block_timeout * 1000.0);
    /* Revocation drills measure how fast a device gives up: its "revoked" state
     * comes after 3 refusals spaced by the backoff, in simulated time. */
    char err[1024];
    fdl_drillenv *env = NULL;
    int r = fdl_drillenv_start(&eo, &env, err, sizeof err);
    if (r != 0)
        fdl_luabox_error(L, "fleet: %s", err);
    d->env = env;
    d->gen++;
    if (d->gen == 0)
        d->gen = 1;
    d->devices = devices;
    d->first = eo.first;
    d->profile = p;
    d->mode = m;
    d->time_scale = scale;
    if (drill_sampler_start(d) != 0)
        fdl_luabox_error(L, "fleet: cannot start the sampler");
    uint32_t online = fdl_drillenv_wait_online(env, devices, (unsigned)(timeout * 1000.0));
    drill_check_interrupt(L);
    if (online < devices) {
        const fdl_fleet_result *res;
        const char *ferr = "";
        fdl_drillenv_result(env, &res, &ferr);
        fdl_luabox_error(L, "fleet: only %u of %u devices online after %.0f s%s%s", online, devices, timeout,
                         ferr[0] ? ": " : "", ferr);
    }
    if (d->o->verbose)
        fprintf(stderr, "fleetdrill: %u %s devices online (%s, first %s%06u) in %.1f s\n", online,
                fdl_profile_name(p), fdl_prov_mode_name(m), "dev-", d->first, fdl_drillenv_elapsed_s(env));
    lfleet *f = lua_newuserdatauv(L, sizeof *f, 0);
    f->gen = d->gen;
    luaL_setmetatable(L, FDL_LUA_FLEET);
    return 1;
}

/* ---- fleet methods ------------------------------------------------------------------ */

static int f_device(lua_State *L)
{
    drill *d = check_fleet(L);
    drill_push_device(L, d, drill_check_device(L, d, 2));
    return 1;
}

static int f_devices(lua_State *L)
{
    drill *d = check_fleet(L);
    lua_createtable(L, (int)d->devices, 0);
    for (uint32_t i = 0; i < d->devices; i++) {
        drill_push_device(L, d, i);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int f_size(lua_State *L)
{
    drill *d = check_fleet(L);
    lua_pushinteger(L, d->devices);
    return 1;
}

static void push_totals(lua_State *L, drill *d)
{
    fdl_fleet_live_totals t;
    fdl_fleet_live_totals_get(fdl_drillenv_live(d->env), &t);
    lua_createtable(L, 0, 6);
    drill_set_int(L, "devices", t.devices);
    drill_set_int(L, "online", t.online);
    drill_set_int(L, "ever_online", t.ever_online);
    drill_set_int(L, "revoked", t.revoked);
    drill_set_int(L, "acked", (lua_Integer)t.acked);
    drill_set_num(L, "elapsed", fdl_drillenv_elapsed_s(d->env));
}

static int f_stats(lua_State *L)
{
    drill *d = check_fleet(L);
    push_totals(L, d);
    return 1;
}

static int f_online(lua_State *L)
{
    drill *d = check_fleet(L);
    fdl_fleet_live_totals t;
    fdl_fleet_live_totals_get(fdl_drillenv_live(d->env), &t);
    lua_pushinteger(L, t.online);
    return 1;
}

/* f:wait(seconds): real time. */
static int f_wait(lua_State *L)
{
    check_fleet(L);
    double s = luaL_checknumber(L, 2);
    if (!(s >= 0 && s <= FDL_SCENARIO_WAIT_MAX_S))
        fdl_luabox_error(L, "wait: 0 to %.0f seconds", FDL_SCENARIO_WAIT_MAX_S);
    if (!drill_sleep(s))
        drill_check_interrupt(L);
    return 0;
}

/* f:wait_virtual(seconds): simulated time (the fleet's clock runs time_scale times faster). */
static int f_wait_virtual(lua_State *L)
{
    drill *d = check_fleet(L);
    double s = luaL_checknumber(L, 2);
    double real = s / d->time_scale;
    if (!(s >= 0 && real <= FDL_SCENARIO_WAIT_MAX_S))
        fdl_luabox_error(L, "wait_virtual: at most %.0f real seconds", FDL_SCENARIO_WAIT_MAX_S);
    if (!drill_sleep(real))
        drill_check_interrupt(L);
    return 0;
}

/* f:wait_online(count [, timeout_s]) -> online */
static int f_wait_online(lua_State *L)
{
    drill *d = check_fleet(L);
    lua_Integer n = luaL_optinteger(L, 2, d->devices);
    double t = luaL_optnumber(L, 3, 30);
    if (n < 0 || !(t >= 0 && t <= FDL_SCENARIO_WAIT_MAX_S))
        fdl_luabox_error(L, "wait_online(count, timeout): count >= 0, timeout 0 to %.0f s", FDL_SCENARIO_WAIT_MAX_S);
    uint32_t on = fdl_drillenv_wait_online(d->env, (uint32_t)n, (unsigned)(t * 1000.0));
    drill_check_interrupt(L);
    lua_pushinteger(L, on);
    return 1;
}

/* f:revoke(device [, reason]) -> {certificates, registry_ms, disconnect_ms}: the operator's one-button revoke. */
static int f_revoke(lua_State *L)
{
    drill *d = check_fleet(L);
    uint32_t i = drill_check_device(L, d, 2);
    const char *reason = luaL_optstring(L, 3, "revoked by a scenario");
    char id[FDL_DEVICE_ID_MAX], err[512];
    drill_device_id(d, i, id, sizeof id);
    fdl_revoke_result rr;
    fdl_atk_target t = fdl_drillenv_target(d->env);
    if (fdl_cloud_revoke(d->o->ctx, id, reason, t.port, &rr, err, sizeof err) != 0)
        fdl_luabox_error(L, "revoke %s: %s", id, err);
    lua_createtable(L, 0, 4);
    drill_set_int(L, "certificates", (lua_Integer)rr.certs_revoked);
    drill_set_num(L, "registry_ms", rr.registry_ms);
    drill_set_num(L, "disconnect_ms", rr.disconnect_ms);
    if (rr.kick_error[0])   /* nil when the kick worked: `if r.error then` reads naturally */
        drill_set_str(L, "error", rr.kick_error);
    return 1;
}

/* f:audit() -> { {check=, severity=, object=, message=}, ... } */
static int f_audit(lua_State *L)
{
    drill *d = check_fleet(L);
    fdl_audit_report *rep = NULL;
    char err[256];
    if (fdl_audit_run(d->o->ctx->reg, NULL, &rep, err, sizeof err) != FDL_AUDIT_OK)
        fdl_luabox_error(L, "audit: %s", err);
    lua_createtable(L, (int)rep->n, 0);
    for (size_t i = 0; i < rep->n; i++) {
        const fdl_audit_finding *f = &rep->findings[i];
        lua_createtable(L, 0, 4);
        drill_set_str(L, "check", fdl_audit_check_id(f->check));
        drill_set_str(L, "severity", fdl_audit_severity_name(f->severity));
        drill_set_str(L, "object", f->object);
        drill_set_str(L, "message", f->message);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    fdl_audit_report_free(rep);
    return 1;
}

/* f:update{version, counter, behaviour, devices, stages, max_failure, wait} -> the rollout's outcome.
 * A genuine release: the image is signed with its tier's key and rolled out in stages;
 * returns once the job ends (or `wait` real seconds pass). */
static int f_update(lua_State *L)
{
    drill *d = check_fleet(L);
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TTABLE);
    else
        lua_newtable(L);
    static const char *const keys[] = {"version", "counter", "behaviour", "devices", "stages", "max_failure", "wait",
                                       NULL};
    drill_check_keys(L, 2, "update", keys);
    if (!fdl_drillenv_jobs(d->env))
        fdl_luabox_error(L, "update: this fleet has no OTA services");
    fdl_rollout_opts o;
    fdl_rollout_opts_init(&o);
    const char *ver = drill_opt_string(L, 2, "version", "1.1.0");
    if (fdl_fw_version_parse(ver, &o.version) != 0)
        fdl_luabox_error(L, "update: version \"%s\" is not M.m.p", ver);
    o.counter = (uint32_t)drill_opt_number(L, 2, "counter", 2, 0, 4095);
    const char *b = drill_opt_string(L, 2, "behaviour", "ok");
    if (strcmp(b, "ok") && strcmp(b, "no-confirm") && strcmp(b, "crash"))
        fdl_luabox_error(L, "update: behaviour is \"ok\", \"no-confirm\" or \"crash\"");
    o.behaviour = b;
    o.max_failure = drill_opt_number(L, 2, "max_failure", 0.1, 0, 1);
    o.max_failure_set = 1;
    double wait = drill_opt_number(L, 2, "wait", 60, 1, FDL_SCENARIO_WAIT_MAX_S);
    uint32_t idx[256];
    lua_getfield(L, 2, "devices");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_Integer n = luaL_len(L, -1);
        if (n < 1 || n > 256)
            fdl_luabox_error(L, "update: devices is a list of 1 to 256 devices");
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            idx[i - 1] = drill_check_device(L, d, -1);
            lua_pop(L, 1);
        }
        o.devices = idx;
        o.n_devices = (size_t)n;
    }
    lua_pop(L, 1);
    lua_getfield(L, 2, "stages");
    if (!lua_isnil(L, -1)) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_Integer n = luaL_len(L, -1);
        if (n < 1 || n > FDL_JOBS_STAGES_MAX)
            fdl_luabox_error(L, "update: stages is a list of 1 to %d percentages", FDL_JOBS_STAGES_MAX);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_geti(L, -1, i);
            o.stages[i - 1] = (unsigned)luaL_checkinteger(L, -1);
            lua_pop(L, 1);
        }
        o.n_stages = (size_t)n;
        uint32_t sz[FDL_JOBS_STAGES_MAX];
        if (fdl_jobs_stage_sizes(100, o.stages, o.n_stages, sz) != 0)
            fdl_luabox_error(L, "update: stages are increasing percentages ending at 100");
    } else {
        o.stages[0] = 100;
        o.n_stages = 1;
    }
    lua_pop(L, 1);
    o.stage_timeout_ms = (uint64_t)(wait * 1000.0);
    fdl_rollout_release rel;
    char err[512];
    if (fdl_rollout_start(d->env, &o, &rel, err, sizeof err) != 0)
        fdl_luabox_error(L, "update: %s", err);
    fdl_job_info ji;
    int w = 1;
    for (unsigned k = 0; w == 1 && k < (unsigned)(wait * 5) + 1; k++) {
        w = fdl_jobs_wait(fdl_drillenv_jobs(d->env), rel.job, 200, &ji);
        drill_check_interrupt(L);
    }
    drill_sleep(0.3);   /* the devices' last reports and boots */
    fdl_jobs_info(fdl_drillenv_jobs(d->env), rel.job, &ji);
    lua_createtable(L, 0, 12);
    drill_set_str(L, "job", rel.job);
    drill_set_str(L, "state", fdl_job_state_name(ji.state));
    drill_set_int(L, "stage", ji.stage);
    drill_set_int(L, "targets", ji.targets);
    drill_set_int(L, "confirmed", ji.confirmed);
    drill_set_int(L, "rejected", ji.rejected);
    drill_set_int(L, "failed", ji.failed);
    drill_set_int(L, "reverted", ji.reverted);
    drill_set_int(L, "pending", ji.pending);
    drill_set_str(L, "reason", ji.reason);
    drill_set_num(L, "elapsed", ji.elapsed_s);
    return 1;
}

/* f:boot_audit() -> {devices, boots, images_ran, violations, first_violation}: every image
 * the devices' boot records say ran, re-verified by the harness (sim/bootaudit.h). */
static int f_boot_audit(lua_State *L)
{
    drill *d = check_fleet(L);
    if (!fdl_drillenv_fwenv(d->env))
        fdl_luabox_error(L, "boot_audit: this fleet has no firmware model");
    fdl_bootaudit ba;
    char err[256];
    if (fdl_bootaudit_run(&d->o->ctx->st, fdl_drillenv_fwenv(d->env), d->first, d->devices, &ba, err, sizeof err) != 0)
        fdl_luabox_error(L, "boot_audit: %s", err);
    lua_createtable(L, 0, 6);
    drill_set_int(L, "devices", ba.devices);
    drill_set_int(L, "boots", (lua_Integer)ba.boots);
    drill_set_int(L, "images_ran", (lua_Integer)ba.images_ran);
    drill_set_int(L, "reverted", (lua_Integer)ba.reverted_boots);
    drill_set_int(L, "violations", (lua_Integer)ba.violations);
    drill_set_str(L, "first_violation", ba.first_violation);
    return 1;
}

static int f_tostring(lua_State *L)
{
    lfleet *f = luaL_checkudata(L, 1, FDL_LUA_FLEET);
    drill *d = drill_of(L);
    if (f->gen != d->gen || !d->env)
        lua_pushstring(L, "fleet (gone)");
    else
        lua_pushfstring(L, "fleet (%d %s devices, %s)", (int)d->devices, fdl_profile_name(d->profile),
                        fdl_prov_mode_name(d->mode));
    return 1;
}

/* ---- device objects ------------------------------------------------------------------ */

/* The live view of the device in argument 1. */
static fdl_fleet_dev_view device_view(lua_State *L)
{
    drill *d = drill_of(L);
    uint32_t i = drill_check_device(L, d, 1);
    fdl_fleet_dev_view v;
    memset(&v, 0, sizeof v);
    fdl_fleet_live_get(fdl_drillenv_live(d->env), i, &v);
    return v;
}

static int d_online(lua_State *L)
{
    lua_pushboolean(L, device_view(L).online);
    return 1;
}

static int d_revoked(lua_State *L)
{
    lua_pushboolean(L, device_view(L).revoked);
    return 1;
}

/* d:state() -> {online, revoked, connections, refused, acked, last_failure} */
static int d_state(lua_State *L)
{
    fdl_fleet_dev_view v = device_view(L);
    lua_createtable(L, 0, 6);
    drill_set_bool(L, "online", v.online);
    drill_set_bool(L, "revoked", v.revoked);
    drill_set_int(L, "connections", v.n_online);
    drill_set_int(L, "refused", v.n_refused);
    drill_set_int(L, "acked", (lua_Integer)v.acked);
    if (v.last_fail != FDL_FAIL_NONE)   /* nil while nothing failed */
        drill_set_str(L, "last_failure", fdl_device_fail_name((fdl_device_fail)v.last_fail));
    return 1;
}

/* d:firmware() -> {version, counter, floor, boots, trial, recovery, reverted, job, step, detail} */
static int d_firmware(lua_State *L)
{
    drill *d = drill_of(L);
    uint32_t i = drill_check_device(L, d, 1);
    fdl_fleet_fw_view v;
    memset(&v, 0, sizeof v);
    fdl_fleet_live_fw(fdl_drillenv_live(d->env), i, &v);
    char ver[16];
    lua_createtable(L, 0, 10);
    drill_set_str(L, "version", v.app_version ? fdl_fw_version_str(v.app_version, ver, sizeof ver) : "");
    drill_set_int(L, "counter", v.app_counter);
    drill_set_int(L, "floor", v.app_floor);
    drill_set_int(L, "boots", v.boots);
    drill_set_bool(L, "trial", v.trial);
    drill_set_bool(L, "recovery", v.recovery);
    drill_set_int(L, "reverted", v.reverted);
    drill_set_str(L, "job", v.job);
    drill_set_str(L, "step", v.step);
    drill_set_str(L, "detail", v.detail);
    return 1;
}

static int d_index(lua_State *L)
{
    const char *k = luaL_checkstring(L, 2);
    drill *d = drill_of(L);
    uint32_t i = drill_check_device(L, d, 1);
    if (!strcmp(k, "id")) {
        char id[FDL_DEVICE_ID_MAX];
        drill_device_id(d, i, id, sizeof id);
        lua_pushstring(L, id);
    } else if (!strcmp(k, "index")) {
        lua_pushinteger(L, (lua_Integer)i + 1);
    } else if (!strcmp(k, "profile")) {
        lua_pushstring(L, fdl_profile_name(d->profile));
    } else {
        luaL_getmetatable(L, FDL_LUA_DEVICE);
        lua_getfield(L, -1, "methods");
        lua_getfield(L, -1, k);
        if (lua_isnil(L, -1))
            fdl_luabox_error(L, "a device has no field '%s' (id, index, profile, online(), revoked(), state(), "
                                "firmware())", k);
    }
    return 1;
}

static int d_tostring(lua_State *L)
{
    ldevice *v = luaL_checkudata(L, 1, FDL_LUA_DEVICE);
    drill *d = drill_of(L);
    if (v->gen != d->gen)
        lua_pushstring(L, "device (fleet gone)");
    else {
        char id[FDL_DEVICE_ID_MAX];
        drill_device_id(d, v->index, id, sizeof id);
        lua_pushstring(L, id);
    }
    return 1;
}

static int d_eq(lua_State *L)
{
    ldevice *a = luaL_checkudata(L, 1, FDL_LUA_DEVICE), *b = luaL_checkudata(L, 2, FDL_LUA_DEVICE);
    lua_pushboolean(L, a->gen == b->gen && a->index == b->index);
    return 1;
}

void drill_open_fleet(lua_State *L)
{
    static const luaL_Reg fleet_methods[] = {
        {"device", f_device},   {"devices", f_devices},         {"size", f_size},
        {"stats", f_stats},     {"online", f_online},           {"wait", f_wait},
        {"wait_virtual", f_wait_virtual}, {"wait_online", f_wait_online}, {"revoke", f_revoke},
        {"audit", f_audit},     {"update", f_update},           {"boot_audit", f_boot_audit},
        {NULL, NULL}};
    static const luaL_Reg device_methods[] = {
        {"online", d_online}, {"revoked", d_revoked}, {"state", d_state}, {"firmware", d_firmware}, {NULL, NULL}};
    static const luaL_Reg fleet_meta[] = {{"__tostring", f_tostring}, {NULL, NULL}};
    static const luaL_Reg device_meta[] = {
        {"__index", d_index}, {"__tostring", d_tostring}, {"__eq", d_eq}, {NULL, NULL}};
    luaL_newmetatable(L, FDL_LUA_FLEET);
    luaL_newlib(L, fleet_methods);
    lua_setfield(L, -2, "__index");
    drill_set_funcs(L, fleet_meta);
    drill_set_bool(L, "__metatable", 0);   /* scripts cannot swap the methods */
    lua_pop(L, 1);
    luaL_newmetatable(L, FDL_LUA_DEVICE);
    luaL_newlib(L, device_methods);
    lua_setfield(L, -2, "methods");
    drill_set_funcs(L, device_meta);
    drill_set_bool(L, "__metatable", 0);
    lua_pop(L, 1);
    /* the environment table is at -1 */
    lua_pushcfunction(L, l_fleet);
    lua_setfield(L, -2, "fleet");
}
