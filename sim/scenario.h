/*
 * sim/scenario.h — the scenario engine: runs one Lua drill file against a live
 * fleet environment (sim/drillenv.h) and appends what happened to a report
 * (reports/report.h).
 *
 * A scenario declares its fleet (fleet{...}), runs attacks (attacks.*{...},
 * attacks/ underneath) and operator actions against it, and for each attack
 * step says which outcome and layer it expects (step{...}). The engine judges
 * the actual outcome and layer from the evidence (sim/verdict.h), never from
 * the expectation. The Lua API is in docs/scenarios.md; the bindings live in
 * sim/lua_fleet.c (fleet, device) and sim/lua_attacks.c (attacks, step).
 *
 * Isolation: each scenario runs in its own sandboxed Lua state (sim/luabox.h,
 * unless unsafe_lua) and starts from an empty registry with its own broker, so
 * nothing one drill does (a revoked device, a widened policy) leaks into the
 * next. Device identities are kept in the state directory and reused across
 * scenarios and runs: a fleet of profile P and provisioning mode M uses the
 * device indices FDL_SCENARIO_RANGE * (P + 2 * M) onwards.
 *
 * A scenario that fails to load or raises an error is recorded in the report
 * with "file:line: message"; the caller goes on with the next one.
 */
#ifndef FDL_SCENARIO_H
#define FDL_SCENARIO_H

#include <stdint.h>

#include "reports/report.h"
#include "sim/context.h"
#include "sim/verdict.h"

/* Device indices reserved per (profile, provisioning mode): fleets are at most this large. */
#define FDL_SCENARIO_RANGE 100000u
/* VM instructions a scenario may execute (its C calls — attacks, waits — are not counted). */
#define FDL_SCENARIO_BUDGET 50000000
/* Seconds a fleet gets to come online before the scenario fails (fleet{online_timeout = S} overrides). */
#define FDL_SCENARIO_ONLINE_TIMEOUT_S 90.0
/* The longest single wait a scenario may ask for, in seconds. */
#define FDL_SCENARIO_WAIT_MAX_S 600.0

/* Called once per attack when it has been judged (for the attack x layer matrix). */
typedef void (*fdl_scenario_attack_cb)(void *ud, const char *attack, const fdl_verdicts *v);

typedef struct fdl_scenario_opts {
    fdl_ctx *ctx;             /* borrowed: opened with want_pki; shared by the scenarios of a run */
    unsigned without;         /* FDL_SWITCH_* bits (sim/drillenv.h): defences turned off */
    int unsafe_lua;           /* 1: no sandbox (--unsafe-lua) */
    uint32_t devices;         /* 0: each fleet as declared; N: every fleet has N devices (make demo) */
    const char *lib_dir;      /* the Lua library (drill.lua, ...); NULL = <source>/scenarios/lib */
    int verbose;              /* progress lines on stderr */
    fdl_scenario_attack_cb on_attack;
    void *ud;
} fdl_scenario_opts;

/*
 * Runs the scenario in `path` and appends it (and its steps) to r. Returns 0 when
 * it ran to its end, 1 when it failed with an error (recorded in r as the
 * scenario's error), 2 when it was interrupted (fdl_fleet_request_stop; also
 * recorded), -1 when r could not take it (out of memory, report limits).
 */
int fdl_scenario_run(const char *path, const fdl_scenario_opts *o, fdl_report *r);

#endif
