/*
 * tests/test_scenario.c — the scenario engine without a fleet: the Lua sandbox
 * (no os.execute, io.popen, native modules, load, bytecode; a budget no pcall
 * can swallow), errors with file:line for a syntax error and an unknown attack
 * while the next scenario still runs, and the verdicts derived from evidence
 * (sim/verdict.h) for every attack. The scenario files are in
 * tests/vectors/scenarios/; the drills against a live fleet are in
 * tests/e2e_drill.sh.
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "sim/alloc.h"
#include "sim/luabox.h"
#include "sim/scenario.h"
#include "sim/verdict.h"

static char *vec(const char *name)
{
    static char buf[8][1200];
    static int k;
    char rel[256];
    snprintf(rel, sizeof rel, "tests/vectors/scenarios/%s", name);
    char *b = buf[k++ % 8];
    fdl_test_src_path(rel, b, sizeof buf[0]);
    return b;
}

static char *lib_dir(void)
{
    static char buf[1200];
    return (char *)fdl_test_src_path("scenarios/lib", buf, sizeof buf);
}

/* Runs the files into a fresh report and returns its JSON (free()). */
static char *run_json(const char *const *files, size_t n, fdl_report_counts *cnt)
{
    fdl_report *r = fdl_report_new("test", 0, NULL);
    assert_non_null(r);
    fdl_scenario_opts o = {.ctx = NULL, .lib_dir = lib_dir()};
    for (size_t i = 0; i < n; i++)
        assert_true(fdl_scenario_run(vec(files[i]), &o, r) >= 0);
    fdl_report_get_counts(r, cnt);
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    assert_int_equal(fdl_report_write_json(r, m), FDL_REPORT_OK);
    fclose(m);
    fdl_report_free(r);
    return text;
}

static void assert_has(const char *text, const char *needle)
{
    if (!strstr(text, needle)) {
        fprintf(stderr, "missing \"%s\" in:\n%s\n", needle, text);
        fail();
    }
}

/* The error one scenario file ends with (JSON-escaped, so '"' and '\' are written escaped). */
static char *error_of(const char *file)
{
    fdl_report_counts c;
    const char *files[] = {file};
    char *j = run_json(files, 1, &c);
    assert_int_equal(c.errors, 1);
    return j;
}

/* ---- the sandbox ------------------------------------------------------------------- */

static void sandbox_refuses_os_execute(void **state)
{
    (void)state;
    unlink("/tmp/fleetdrill-sandbox-escape");
    char *j = error_of("sandbox_os_execute.lua");
    assert_has(j, "sandbox_os_execute.lua:1: attempt to call a nil value (field 'execute')");
    assert_int_equal(access("/tmp/fleetdrill-sandbox-escape", F_OK), -1);
    free(j);
}

/* Each vector file fails with this message (file:line included). */
static const struct {
    const char *file, *message;
} k_error_vectors[] = {
    {"sandbox_io_popen.lua", "sandbox_io_popen.lua:1: attempt to index a nil value (global 'io')"},
    {"sandbox_native.lua", "sandbox_native.lua:1: attempt to index a nil value (global 'package')"},
    {"sandbox_require_native.lua", "sandbox_require_native.lua:1: require: 'socket.core' is not a library name"},
    {"sandbox_load.lua", "sandbox_load.lua:1: attempt to call a nil value (global 'load')"},
    {"budget.lua", "instruction budget (50000000) exhausted"},
    /* Errors raised in the library or the engine point at the scenario's own line. */
    {"lib_check.lua", "lib_check.lua:6: check failed: the condition"},
    {"needs_fleet.lua", "needs_fleet.lua:3: attacks.stolen_cert needs a fleet: call fleet{...} first"},
    {"bad_expect.lua", "bad_expect.lua:2: step: 'attack' must be an attack"},
};

static void each_vector_fails_with_its_message(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof k_error_vectors / sizeof k_error_vectors[0]; i++) {
        char *j = error_of(k_error_vectors[i].file);
        assert_has(j, k_error_vectors[i].message);
        free(j);
    }
}

static void sandbox_refuses_bytecode(void **state)
{
    (void)state;
    char dir[256], path[512], err[512];
    fdl_test_mkdtemp("bytecode", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.luac", dir);
    /* Make real bytecode with an unsandboxed state, then feed it to a sandboxed one. */
    fdl_luabox_opts unsafe = {.unsafe = 1};
    lua_State *U = fdl_luabox_new(&unsafe);
    assert_non_null(U);
    char code[700];
    snprintf(code, sizeof code,
             "local f = io.open('%s', 'wb'); f:write(string.dump(function() return 42 end)); f:close()", path);
    assert_int_equal(luaL_dostring(U, code), LUA_OK);
    lua_State *L = fdl_luabox_new(NULL);
    assert_int_equal(fdl_luabox_loadfile(L, path, err, sizeof err), -1);
    assert_has(err, "attempt to load a binary chunk");
    /* --unsafe-lua accepts it. */
    assert_int_equal(fdl_luabox_loadfile(U, path, err, sizeof err), 0);
    assert_int_equal(fdl_luabox_pcall(U, 0, 1, 0, err, sizeof err), 0);
    assert_int_equal(lua_tointeger(U, -1), 42);
    fdl_luabox_close(L);
    fdl_luabox_close(U);
    fdl_test_rmrf(dir);
}

static void memory_is_capped(void **state)
{
    (void)state;
    fdl_luabox_opts o = {.mem_max = 1u << 20};
    lua_State *L = fdl_luabox_new(&o);
    assert_non_null(L);
    char err[256];
    assert_int_equal(luaL_loadstring(L, "local t = {} for i = 1, 1e7 do t[i] = string.rep('x', 100) .. i end"),
                     LUA_OK);
    assert_int_equal(fdl_luabox_pcall(L, 0, 0, 0, err, sizeof err), -1);
    assert_has(err, "not enough memory");
    assert_true(fdl_luabox_mem_used(L) <= (1u << 20));
    fdl_luabox_close(L);
}

/* ---- errors with file:line, and the run goes on --------------------------------------- */

static void errors_name_file_and_line_and_the_next_scenario_runs(void **state)
{
    (void)state;
    const char *files[] = {"syntax_error.lua", "unknown_attack.lua", "unknown_attack_by_name.lua", "ok.lua"};
    fdl_report_counts c;
    char *j = run_json(files, 4, &c);
    assert_int_equal(c.scenarios, 4);
    assert_int_equal(c.errors, 3);
    assert_int_equal(c.scenarios_passed, 1);
    assert_has(j, "syntax_error.lua:3: unexpected symbol near '='");
    assert_has(j, "unknown_attack.lua:4: unknown attack 'teleport'");
    assert_has(j, "unknown_attack_by_name.lua:2: unknown attack 'teleport'");
    /* A file that does not parse is reported under its file name. */
    assert_has(j, "\"name\": \"syntax_error\"");
    assert_has(j, "\"name\": \"runs to the end\"");
    assert_has(j, "\"description\": \"no fleet, no step\"");
    free(j);
}

/* ---- verdicts from evidence ------------------------------------------------------------- */

static fdl_atk_result res(int succeeded, int stage, const char *evidence)
{
    fdl_atk_result r;
    memset(&r, 0, sizeof r);
    r.succeeded = succeeded;
    r.stage = succeeded ? FDL_ATK_STAGE_NONE : stage;
    snprintf(r.evidence, sizeof r.evidence, "%s", evidence);
    return r;
}

static void judge(const fdl_observation *o, fdl_verdicts *v)
{
    fdl_verdict_judge(o, v);
    assert_true(v->n >= 1);
}

static void expect_v(const fdl_verdicts *v, size_t i, fdl_outcome o, fdl_layer l, const char *why)
{
    assert_true(i < v->n);
    assert_int_equal(v->v[i].outcome, o);
    assert_int_equal(v->v[i].layer, l);
    if (why)
        assert_has(v->v[i].why, why);
}

static void verdicts_identity_hardware_transport(void **state)
{
    (void)state;
    fdl_verdicts v;
    fdl_atk_result r = res(0, FDL_ATK_STAGE_TLS,
                           "fresh key does not match the certificate's public key\n"
                           "attacker: refused: fatal alert from peer: 51 decrypt_error\n"
                           "broker: OpenSSL Error[0]: error:0A00007B:SSL routines::bad signature");
    judge(&(fdl_observation){.kind = FDL_ATTACK_STOLEN_CERT, .attack = &r}, &v);
    assert_int_equal(v.n, 1);
    expect_v(&v, 0, FDL_OUTCOME_BLOCKED, FDL_LAYER_IDENTITY, "bad signature");   /* the broker's line first */

    r = res(1, 0, "attacker: TLSv1.3 handshake completed, CONNACK 0 (accepted)");
    judge(&(fdl_observation){.kind = FDL_ATTACK_STOLEN_CERT, .attack = &r}, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "CONNACK 0");

    r = res(0, FDL_ATK_STAGE_KEY_EXTRACT, "C_GetAttributeValue -> CKR_ATTRIBUTE_SENSITIVE (0x00000011)");
    judge(&(fdl_observation){.kind = FDL_ATTACK_EXTRACTED_KEY, .attack = &r}, &v);
    expect_v(&v, 0, FDL_OUTCOME_BLOCKED, FDL_LAYER_HARDWARE, "CKR_ATTRIBUTE_SENSITIVE");

    r = res(0, FDL_ATK_STAGE_TLS, "fatal alert from peer: 70 protocol_version");
    judge(&(fdl_observation){.kind = FDL_ATTACK_TLS12, .attack = &r}, &v);
    expect_v(&v, 0, FDL_OUTCOME_BLOCKED, FDL_LAYER_TRANSPORT, "protocol_version");

    r = res(0, FDL_ATK_STAGE_TLS, "device: refused: server certificate rejected: not correctly signed");
    judge(&(fdl_observation){.kind = FDL_ATTACK_ROGUE_CA, .attack = &r, .rogue_connects = 0}, &v);
    expect_v(&v, 0, FDL_OUTCOME_BLOCKED, FDL_LAYER_TRANSPORT, "server certificate rejected");
    /* Whatever the device says, a CONNECT the rogue read is a leak. */
    judge(&(fdl_observation){.kind = FDL_ATTACK_ROGUE_CA, .attack = &r, .rogue_connects = 1}, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "leaked");
}

static void verdicts_defence_in_depth_for_a_copied_key(void **state)
{
    (void)state;
    fdl_verdicts v;
    fdl_atk_result r = res(1, 0, "CONNACK 0 (accepted) for client id dev-1-clone");
    fdl_atk_result p1 = res(0, FDL_ATK_STAGE_PUBLISH, "broker: fleetdrill: denied dev-1 publish to telemetry/dev-2");
    fdl_atk_result p2 = res(0, FDL_ATK_STAGE_SUBSCRIBE, "SUBSCRIBE commands/dev-2: SUBACK 0x80 (refused)");
    fdl_observation o = {.kind = FDL_ATTACK_EXTRACTED_KEY, .attack = &r, .probes = {&p1, &p2}, .n_probes = 2,
                         .audit_ran = true, .audit_flagged = true, .audit_finding = "cert-shared [high] ...",
                         .detect_ms = 900};
    judge(&o, &v);
    assert_int_equal(v.n, 2);
    expect_v(&v, 0, FDL_OUTCOME_CONTAINED, FDL_LAYER_CLOUD, "publish, subscribe");
    expect_v(&v, 1, FDL_OUTCOME_DETECTED, FDL_LAYER_DETECTION, "cert-shared");
    bool pass;
    assert_ptr_equal(fdl_verdict_pick(&v, FDL_OUTCOME_DETECTED, FDL_LAYER_DETECTION, &pass), &v.v[1]);
    assert_true(pass);
    /* An expectation the evidence does not support fails, and the strongest verdict is reported. */
    assert_ptr_equal(fdl_verdict_pick(&v, FDL_OUTCOME_BLOCKED, FDL_LAYER_IDENTITY, &pass), &v.v[0]);
    assert_false(pass);

    /* The copy reaches another device's topic and nobody notices: missed. */
    p1 = res(1, 0, "observer RECEIVED it");
    o.audit_flagged = false;
    judge(&o, &v);
    assert_int_equal(v.n, 1);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, NULL);
    /* ... noticed by the audit only: detected. */
    o.audit_flagged = true;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_DETECTED, FDL_LAYER_DETECTION, NULL);
}

static void verdicts_cloud_policy_and_payload(void **state)
{
    (void)state;
    fdl_verdicts v;
    fdl_atk_result r = res(0, FDL_ATK_STAGE_PUBLISH,
                           "control: observer received it\nattack: observer did not receive it\n"
                           "broker: 2026-01-01T00:00:00: fleetdrill: denied dev-1 publish to telemetry/dev-2: denied by "
                           "policy");
    judge(&(fdl_observation){.kind = FDL_ATTACK_CROSS_PUBLISH, .attack = &r}, &v);
    expect_v(&v, 0, FDL_OUTCOME_BLOCKED, FDL_LAYER_CLOUD, "fleetdrill: denied dev-1 publish");

    r = res(0, FDL_ATK_STAGE_DELIVERY, "SUBSCRIBE telemetry/dev-2: SUBACK 0x01\nattacker received 0 message(s)");
    judge(&(fdl_observation){.kind = FDL_ATTACK_CROSS_SUBSCRIBE, .attack = &r}, &v);
    expect_v(&v, 0, FDL_OUTCOME_CONTAINED, FDL_LAYER_CLOUD, NULL);

    r = res(0, FDL_ATK_STAGE_PAYLOAD, "broker: fleetdrill: dropped payload from dev-1 on telemetry/dev-1");
    judge(&(fdl_observation){.kind = FDL_ATTACK_JUNK, .attack = &r}, &v);
    expect_v(&v, 0, FDL_OUTCOME_BLOCKED, FDL_LAYER_CLOUD, "dropped payload");

    /* The misconfiguration lets the data out; only the audit stands. */
    r = res(1, 0, "attacker received telemetry/dev-2 (80 bytes)");
    judge(&(fdl_observation){.kind = FDL_ATTACK_POLICY_WIDEN, .attack = &r, .audit_ran = true,
                             .audit_flagged = true, .audit_finding = "policy-wildcard [high] policy device-default"},
          &v);
    expect_v(&v, 0, FDL_OUTCOME_DETECTED, FDL_LAYER_DETECTION, "policy-wildcard");
    judge(&(fdl_observation){.kind = FDL_ATTACK_WILDCARD, .attack = &r, .audit_ran = true}, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, NULL);
}

static void verdicts_revocation(void **state)
{
    (void)state;
    fdl_verdicts v;
    fdl_atk_result r = res(0, FDL_ATK_STAGE_CONNACK, "operator: revoke dev-7");
    fdl_observation o = {.kind = FDL_ATTACK_REVOCATION, .attack = &r, .revoke_ok = true, .disconnect_ms = 15,
                         .within_ms = 1000, .revoked_led = true};
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_BLOCKED, FDL_LAYER_DETECTION, "15.0 ms");
    o.disconnect_ms = 1500;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_DETECTED, FDL_LAYER_DETECTION, "only 1500.0 ms");
    o.reconnected = true;
    o.denied_after = true;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_CONTAINED, FDL_LAYER_CLOUD, "deny-all");
    o.denied_after = false;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "connected again");
    o.reconnected = false;
    o.disconnect_ms = -1;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "not disconnected");
    o.revoke_ok = false;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, NULL);
}

static void verdicts_no_verdict_without_a_working_observation(void **state)
{
    (void)state;
    fdl_verdicts v;
    fdl_atk_result r = res(0, FDL_ATK_STAGE_SETUP, "setup: identity dev-9: no such device");
    judge(&(fdl_observation){.kind = FDL_ATTACK_STOLEN_CERT, .attack = &r}, &v);
    expect_v(&v, 0, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "could not be mounted: setup: identity dev-9");
    /* The observer saw neither the control nor the attack: "not delivered" proves nothing. */
    r = res(0, FDL_ATK_STAGE_PUBLISH, "inconclusive: the observer saw neither message");
    judge(&(fdl_observation){.kind = FDL_ATTACK_CROSS_PUBLISH, .attack = &r}, &v);
    expect_v(&v, 0, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "inconclusive");
    /* ... but junk the observer did receive is proof enough, whatever happened to the control. */
    r = res(1, 0, "non-JSON text: observer RECEIVED it\ninconclusive: the observer did not receive the control");
    judge(&(fdl_observation){.kind = FDL_ATTACK_JUNK, .attack = &r}, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "RECEIVED");
    fdl_observation none = {.kind = FDL_ATTACK_JUNK};
    judge(&none, &v);
    expect_v(&v, 0, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, NULL);
}


static void verdicts_firmware_and_rollout(void **state)
{
    (void)state;
    fdl_verdicts v;
    fdl_atk_result r = res(0, FDL_ATK_STAGE_IMAGE, "device dev-000002: rejected: signer not trusted for this tier");
    fdl_observation o = {.kind = FDL_ATTACK_OTA_UNSIGNED, .attack = &r, .ota = true, .ota_final = "failed",
                         .ota_detail = "verified: no trusted key with this key id for this tier"};
    judge(&o, &v);
    assert_int_equal(v.n, 1);
    expect_v(&v, 0, FDL_OUTCOME_BLOCKED, FDL_LAYER_FIRMWARE, "no trusted key with this key id");
    /* The same reports, but a boot record shows the image running: missed, whatever it said. */
    o.ota_bad_ran = o.ota_bad_runs = true;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "runs the attacker's image");
    /* Any image run without its checks is a miss. */
    o.ota_bad_ran = o.ota_bad_runs = false;
    o.ota_unverified_ran = true;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "without passing its checks");
    /* Ran in trial, never confirmed, reverted: contained by the firmware. */
    r = res(0, FDL_ATK_STAGE_TRIAL, "device dev-000002: reverted");
    o = (fdl_observation){.kind = FDL_ATTACK_OTA_NO_CONFIRM, .attack = &r, .ota = true, .ota_final = "reverted",
                          .ota_wrote = true, .ota_bad_ran = true, .ota_reverted = true,
                          .ota_detail = "trial not confirmed by its deadline"};
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_CONTAINED, FDL_LAYER_FIRMWARE, "reverted");
    o.ota_final = "confirmed";
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "confirmed it");
    /* The broker refused the delivery: the cloud caught it, the device saw nothing. */
    r = res(0, FDL_ATK_STAGE_PUBLISH, "broker: fleetdrill: denied svc-artifacts publish to $fleet/jobs/dev-000002/notify");
    o = (fdl_observation){.kind = FDL_ATTACK_JOB_REPLAY, .attack = &r, .ota = true, .ota_delivery_denied = true};
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_BLOCKED, FDL_LAYER_CLOUD, "policy refused the delivery");
    /* No report and nothing changed: no verdict either way. */
    o = (fdl_observation){.kind = FDL_ATTACK_JOB_EXPIRED, .attack = &r, .ota = true};
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "inconclusive");
    /* Still downloading at the end: nothing refused it. */
    o = (fdl_observation){.kind = FDL_ATTACK_OTA_SLOW, .attack = &r, .ota = true, .ota_final = "downloading"};
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "downloading");

    /* A bad canary: the gate halts (cloud), the canaries reverted (firmware). */
    r = res(0, FDL_ATK_STAGE_ROLLOUT, "job service: halted");
    o = (fdl_observation){.kind = FDL_ATTACK_BAD_CANARY, .attack = &r, .rollout = true, .rollout_halted = true,
                          .rollout_stage = 1, .rollout_targets = 20, .rollout_untouched = 18,
                          .rollout_reason = "stage 1 of 3: 2 failed"};
    judge(&o, &v);
    assert_int_equal(v.n, 2);
    expect_v(&v, 0, FDL_OUTCOME_CONTAINED, FDL_LAYER_CLOUD, "18 of 20 devices never notified");
    expect_v(&v, 1, FDL_OUTCOME_CONTAINED, FDL_LAYER_FIRMWARE, "no device runs the bad image");
    o.rollout_halted = false;
    o.rollout_completed = true;
    o.rollout_untouched = 0;
    o.rollout_bad_running = 20;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_MISSED, FDL_LAYER_NONE, "20 device(s) run the bad image");
    o.rollout_completed = false;
    judge(&o, &v);
    expect_v(&v, 0, FDL_OUTCOME_ERROR, FDL_LAYER_NONE, "did not end");
    assert_int_equal(fdl_verdict_stage_layer(FDL_ATK_STAGE_IMAGE), FDL_LAYER_FIRMWARE);
    assert_int_equal(fdl_verdict_stage_layer(FDL_ATK_STAGE_ROLLOUT), FDL_LAYER_CLOUD);
}

static void attack_names(void **state)
{
    (void)state;
    fdl_attack_kind k;
    for (int i = 0; i < FDL_ATTACK__COUNT; i++) {
        assert_int_equal(fdl_attack_kind_parse(fdl_attack_kind_name((fdl_attack_kind)i), &k), 0);
        assert_int_equal(k, i);
    }
    assert_int_equal(fdl_attack_kind_parse("stolen_cert", &k), 0);
    assert_int_equal(k, FDL_ATTACK_STOLEN_CERT);
    assert_int_equal(fdl_attack_kind_parse("teleport", &k), -1);
    assert_int_equal(fdl_attack_kind_parse(NULL, &k), -1);
    assert_int_equal(fdl_verdict_stage_layer(FDL_ATK_STAGE_KEY_EXTRACT), FDL_LAYER_HARDWARE);
    assert_int_equal(fdl_verdict_stage_layer(FDL_ATK_STAGE_CONNACK), FDL_LAYER_IDENTITY);
    assert_int_equal(fdl_verdict_stage_layer(FDL_ATK_STAGE_SETUP), FDL_LAYER_NONE);
}

static void allocations_balance(void **state)
{
    (void)state;
    fdl_alloc_stats a = fdl_alloc_get_stats();
    const char *files[] = {"syntax_error.lua", "ok.lua", "budget.lua"};
    fdl_report_counts c;
    free(run_json(files, 3, &c));
    fdl_alloc_stats b = fdl_alloc_get_stats();
    assert_int_equal(b.allocs - a.allocs, b.frees - a.frees);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sandbox_refuses_os_execute),
        cmocka_unit_test(each_vector_fails_with_its_message),
        cmocka_unit_test(sandbox_refuses_bytecode),
        cmocka_unit_test(memory_is_capped),
        cmocka_unit_test(errors_name_file_and_line_and_the_next_scenario_runs),
        cmocka_unit_test(verdicts_identity_hardware_transport),
        cmocka_unit_test(verdicts_defence_in_depth_for_a_copied_key),
        cmocka_unit_test(verdicts_cloud_policy_and_payload),
        cmocka_unit_test(verdicts_revocation),
        cmocka_unit_test(verdicts_no_verdict_without_a_working_observation),
        cmocka_unit_test(verdicts_firmware_and_rollout),
        cmocka_unit_test(attack_names),
        cmocka_unit_test(allocations_balance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
