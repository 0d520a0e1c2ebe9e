/*
 * tests/it_ota.c — OTA end to end in one process: a drill environment (real
 * Mosquitto with the plugin, the job service and the artifact store with their
 * own identities, signing keys in SoftHSM2 tokens, devices booting through their
 * verified chain), then:
 *  - a staged rollout completes: every device runs the new image, confirmed, its
 *    floor raised; the registry has each device's final step;
 *  - a rollout of a crashing image halts at its canary: the canary devices revert,
 *    the rest are never notified ('pending'), nobody runs the bad image;
 *  - every device's boot records pass the harness's own audit — and the audit
 *    does fail on forged records (an unknown image, an unsigned one, one that did
 *    not verify, a rollback), so a clean audit means something;
 *  - a corrupted shared factory image leaves every new device in recovery mode:
 *    it never connects.
 */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "cloud/registry.h"
#include "sim/alloc.h"
#include "sim/bootaudit.h"
#include "sim/context.h"
#include "sim/drillenv.h"
#include "sim/rollout.h"

#define N 6

static char g_dir[512];
static fdl_ctx g_ctx;

static int setup(void **state)
{
    (void)state;
    char err[512];
    fdl_test_mkdtemp("ota", g_dir, sizeof g_dir);
    if (fdl_ctx_open(&g_ctx, g_dir, 1, err, sizeof err) != 0) {
        fprintf(stderr, "ctx: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_ctx_close(&g_ctx);
    if (!getenv("FDL_TEST_KEEP"))
        fdl_test_rmrf(g_dir);
    return 0;
}

static fdl_drillenv *start_env(int fresh)
{
    char err[1024];
    fdl_drillenv_opts eo;
    fdl_drillenv_opts_init(&eo, &g_ctx);
    eo.devices = N;
    eo.profile = FDL_PROFILE_FLASH;
    eo.fresh_registry = fresh;
    eo.fleet.time_scale = 20;
    eo.fleet.ota.trial_ms = 60000;
    fdl_drillenv *env = NULL;
    if (fdl_drillenv_start(&eo, &env, err, sizeof err) != 0)
        fail_msg("drill environment: %s", err);
    return env;
}

static void wait_online(fdl_drillenv *env)
{
    assert_int_equal(fdl_drillenv_wait_online(env, N, 60000), N);
}

static fdl_job_info run_rollout(fdl_drillenv *env, const char *behaviour, fdl_rollout_release *rel)
{
    fdl_rollout_opts o;
    fdl_rollout_opts_init(&o);
    o.behaviour = behaviour;
    o.stages[0] = 34;   /* of 6: 3 canary devices */
    o.stages[1] = 100;
    o.n_stages = 2;
    o.stage_timeout_ms = 30000;
    char err[512];
    if (fdl_rollout_start(env, &o, rel, err, sizeof err) != 0)
        fail_msg("rollout: %s", err);
    fdl_job_info ji;
    assert_int_equal(fdl_jobs_wait(fdl_drillenv_jobs(env), rel->job, 60000, &ji), 0);
    usleep(500000);   /* the last reports and boots reach the live view */
    fdl_jobs_info(fdl_drillenv_jobs(env), rel->job, &ji);
    return ji;
}

typedef struct rows {
    int confirmed, reverted, pending, other;
} rows;

static int count_rows(void *ctx, const fdl_reg_ota_line *l)
{
    rows *r = ctx;
    if (!strcmp(l->step, "confirmed"))
        r->confirmed++;
    else if (!strcmp(l->step, "reverted"))
        r->reverted++;
    else if (!strcmp(l->step, "pending"))
        r->pending++;
    else
        r->other++;
    return 0;
}

static rows registry_rows(const char *job)
{
    fdl_registry *reg = NULL;
    rows r = {0};
    assert_int_equal(fdl_registry_open(g_ctx.st.registry, NULL, &reg), FDL_REG_OK);
    assert_int_equal(fdl_registry_ota_status_list(reg, job, count_rows, &r), FDL_REG_OK);
    fdl_registry_free(reg);
    return r;
}

static void audit_clean(fdl_drillenv *env)
{
    fdl_bootaudit ba;
    char err[256];
    assert_int_equal(fdl_bootaudit_run(&g_ctx.st, fdl_drillenv_fwenv(env), 0, N, &ba, err, sizeof err), 0);
    if (ba.violations)
        fail_msg("boot records: %s", ba.first_violation);
    assert_int_equal(ba.with_records, N);
    assert_true(ba.images_ran >= 4u * N);   /* bootloader, keyring, kernel, application */
}

static void rollouts_complete_and_halt(void **state)
{
    (void)state;
    fdl_drillenv *env = start_env(1);
    wait_online(env);
    fdl_rollout_release rel;

    /* A genuine image: every stage passes, every device runs it, confirmed, floor 2. */
    fdl_job_info ji = run_rollout(env, "ok", &rel);
    assert_int_equal(ji.state, FDL_JOB_COMPLETED);
    assert_int_equal(ji.confirmed, N);
    assert_int_equal(ji.stages[0].devices, 3);
    fdl_rollout_census c;
    fdl_rollout_census_get(env, rel.job, rel.version, rel.counter, &c);
    assert_int_equal(c.on_version, N);
    assert_int_equal(c.trial, 0);
    for (uint32_t i = 0; i < N; i++) {
        fdl_fleet_fw_view v;
        assert_int_equal(fdl_fleet_live_fw(fdl_drillenv_live(env), i, &v), 0);
        assert_int_equal(v.app_floor, 2);
        assert_string_equal(v.step, "confirmed");
    }
    assert_int_equal(registry_rows(rel.job).confirmed, N);
    assert_int_equal(fdl_drillenv_wait_online(env, N, 30000), N);

    /* A crashing image (counter 3): the canary reverts, the gate halts, the rest never hear of it. */
    fdl_rollout_opts o;
    fdl_rollout_opts_init(&o);
    ji = (fdl_job_info){0};
    fdl_rollout_release bad;
    o.behaviour = "crash";
    o.counter = 3;
    fdl_fw_version_parse("1.2.0", &o.version);
    o.stages[0] = 34;
    o.stages[1] = 100;
    o.n_stages = 2;
    o.stage_timeout_ms = 30000;
    char err[512];
    if (fdl_rollout_start(env, &o, &bad, err, sizeof err) != 0)
        fail_msg("rollout: %s", err);
    assert_int_equal(fdl_jobs_wait(fdl_drillenv_jobs(env), bad.job, 60000, &ji), 0);
    usleep(500000);
    fdl_jobs_info(fdl_drillenv_jobs(env), bad.job, &ji);
    assert_int_equal(ji.state, FDL_JOB_HALTED);
    assert_int_equal(ji.stage, 1);
    assert_int_equal(ji.reverted, 3);
    assert_int_equal(ji.pending, N - 3);
    fdl_rollout_census_get(env, bad.job, bad.version, bad.counter, &c);
    assert_int_equal(c.on_version, 0);
    assert_int_equal(c.untouched, N - 3);
    rows r = registry_rows(bad.job);
    assert_int_equal(r.reverted, 3);
    assert_int_equal(r.pending, N - 3);
    /* Everybody still runs 1.1.0 and the floor stayed at 2. */
    for (uint32_t i = 0; i < N; i++) {
        fdl_fleet_fw_view v;
        assert_int_equal(fdl_fleet_live_fw(fdl_drillenv_live(env), i, &v), 0);
        assert_int_equal(v.app_counter, 2);
        assert_int_equal(v.app_floor, 2);
    }
    assert_int_equal(fdl_drillenv_wait_online(env, N, 30000), N);
    audit_clean(env);
    fdl_drillenv_stop(env);
    const fdl_fleet_result *res;
    const char *ferr;
    assert_int_equal(fdl_drillenv_result(env, &res, &ferr), 0);
    assert_int_equal(res->ota_confirmed, N);
    assert_int_equal(res->ota_reverted, 3);
    assert_int_equal(res->recovery_at_end, 0);
    assert_true(res->boots >= 2u * N + 3u);
    fdl_drillenv_free(env);
}

/* Appends one forged boot record line to a device's boots.jsonl. */
static void forge(const char *id, const char *line)
{
    char path[1200];
    fdl_identity_path(&g_ctx.st, id, "fw/boots.jsonl", path, sizeof path);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fprintf(f, "%s\n", line);
    fclose(f);
}

static void hex(const uint8_t *p, char out[65])
{
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static uint64_t audit_violations(fdl_drillenv *env, char *first, size_t cap)
{
    fdl_bootaudit ba;
    char err[256];
    assert_int_equal(fdl_bootaudit_run(&g_ctx.st, fdl_drillenv_fwenv(env), 0, N, &ba, err, sizeof err), 0);
    snprintf(first, cap, "%s", ba.first_violation);
    return ba.violations;
}

static void boot_audit_catches_forged_records(void **state)
{
    (void)state;
    fdl_drillenv *env = start_env(1);
    wait_online(env);
    fdl_drillenv_stop(env);
    char first[400], line[1024], sha[65];
    assert_int_equal(audit_violations(env, first, sizeof first), 0);

    /* An image nobody knows. */
    forge("dev-000001", "{\"boot\":90,\"outcome\":\"ok\",\"reverted\":false,\"why\":\"\",\"tiers\":{\"application\":"
                        "{\"ran\":true,\"slot\":\"b\",\"version\":\"6.6.6\",\"counter\":9,\"sha256\":\""
                        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"verified\":true,"
                        "\"trial\":false}}}");
    assert_int_equal(audit_violations(env, first, sizeof first), 1);
    assert_non_null(strstr(first, "dev-000001 boot 90, application: an image the harness cannot find"));

    /* An unsigned image sitting in the artifact store. */
    fdl_fwenv_image spec = {.tier = FDL_TIER_APPLICATION, .counter = 5, .sign = FDL_FWENV_UNSIGNED};
    fdl_fw_version_parse("5.0.0", &spec.version);
    uint8_t *img = NULL, digest[32];
    size_t len = 0;
    char err[512];
    assert_int_equal(fdl_fwenv_build(fdl_drillenv_fwenv(env), &spec, &img, &len, err, sizeof err), 0);
    assert_int_equal(fdl_fwenv_upload(fdl_drillenv_fwenv(env), "forged-unsigned", img, len, digest, err, sizeof err),
                     0);
    hex(digest, sha);
    snprintf(line, sizeof line,
             "{\"boot\":91,\"outcome\":\"ok\",\"reverted\":false,\"why\":\"\",\"tiers\":{\"application\":{\"ran\":true,"
             "\"slot\":\"b\",\"version\":\"5.0.0\",\"counter\":5,\"sha256\":\"%s\",\"verified\":true,\"trial\":false}}}",
             sha);
    forge("dev-000002", line);
    assert_int_equal(audit_violations(env, first, sizeof first), 2);

    /* The factory application, marked as not verified; then, after a counter-2 image ran
     * out of trial, the factory image (counter 1) again: a rollback. */
    size_t flen = 0;
    const uint8_t *fimg = fdl_fwenv_factory_image(fdl_drillenv_fwenv(env), FDL_TIER_APPLICATION, &flen);
    mbedtls_sha256(fimg, flen, digest, 0);
    hex(digest, sha);
    snprintf(line, sizeof line,
             "{\"boot\":92,\"outcome\":\"ok\",\"reverted\":false,\"why\":\"\",\"tiers\":{\"application\":{\"ran\":true,"
             "\"slot\":\"a\",\"version\":\"1.0.0\",\"counter\":1,\"sha256\":\"%s\",\"verified\":false,\"trial\":false}}}",
             sha);
    forge("dev-000003", line);
    assert_int_equal(audit_violations(env, first, sizeof first), 3);

    fdl_fwenv_image good = {.tier = FDL_TIER_APPLICATION, .counter = 2, .sign = FDL_FWENV_SIGN_TIER};
    fdl_fw_version_parse("1.1.0", &good.version);
    uint8_t *gimg = NULL;
    size_t glen = 0;
    assert_int_equal(fdl_fwenv_build(fdl_drillenv_fwenv(env), &good, &gimg, &glen, err, sizeof err), 0);
    assert_int_equal(fdl_fwenv_upload(fdl_drillenv_fwenv(env), "forged-good", gimg, glen, digest, err, sizeof err), 0);
    char gsha[65];
    hex(digest, gsha);
    snprintf(line, sizeof line,
             "{\"boot\":93,\"outcome\":\"ok\",\"reverted\":false,\"why\":\"\",\"tiers\":{\"application\":{\"ran\":true,"
             "\"slot\":\"b\",\"version\":\"1.1.0\",\"counter\":2,\"sha256\":\"%s\",\"verified\":true,\"trial\":false}}}",
             gsha);
    forge("dev-000004", line);
    assert_int_equal(audit_violations(env, first, sizeof first), 3);   /* a genuine image: fine */
    snprintf(line, sizeof line,
             "{\"boot\":94,\"outcome\":\"ok\",\"reverted\":false,\"why\":\"\",\"tiers\":{\"application\":{\"ran\":true,"
             "\"slot\":\"a\",\"version\":\"1.0.0\",\"counter\":1,\"sha256\":\"%s\",\"verified\":true,\"trial\":false}}}",
             sha);
    forge("dev-000004", line);
    assert_int_equal(audit_violations(env, first, sizeof first), 4);

    /* One device's history: the genuine image ran at boot 93, not in the last boot. */
    fdl_boot_history h;
    assert_int_equal(fdl_boot_history_get(&g_ctx.st, "dev-000004", digest, 92, &h), 0);
    assert_true(h.ran);
    assert_false(h.runs);
    assert_int_equal(h.last_boot, 94);
    assert_string_equal(h.last_app_version, "1.0.0");
    fdl_free(img);
    fdl_free(gimg);
    fdl_drillenv_free(env);
}

static void corrupted_factory_image_means_recovery(void **state)
{
    (void)state;
    /* A run made the shared factory images; corrupt the kernel's, then start a fleet
     * from the factory again: every device halts in recovery and never connects. */
    fdl_drillenv *env = start_env(1);
    wait_online(env);
    size_t klen = 0;
    const uint8_t *k = fdl_fwenv_factory_image(fdl_drillenv_fwenv(env), FDL_TIER_KERNEL, &klen);
    uint8_t digest[32];
    char sha[65], path[1200];
    mbedtls_sha256(k, klen, digest, 0);
    hex(digest, sha);
    snprintf(path, sizeof path, "%s/firmware/factory/%s.img", g_ctx.st.dir, sha);
    uint8_t *copy = malloc(klen);
    memcpy(copy, k, klen);
    fdl_drillenv_free(env);

    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, FDL_FW_HDR_LEN + 10, SEEK_SET), 0);
    fputc(copy[FDL_FW_HDR_LEN + 10] ^ 0xff, f);
    fclose(f);
    env = start_env(1);
    uint32_t on = fdl_drillenv_wait_online(env, 1, 3000);
    assert_int_equal(on, 0);
    fdl_fleet_live_totals t;
    fdl_fleet_live_totals_get(fdl_drillenv_live(env), &t);
    assert_int_equal(t.recovery, N);
    fdl_fleet_fw_view v;
    assert_int_equal(fdl_fleet_live_fw(fdl_drillenv_live(env), 0, &v), 0);
    assert_true(v.recovery);
    assert_int_equal(v.app_version, 0);
    fdl_drillenv_stop(env);
    const fdl_fleet_result *res;
    const char *ferr;
    assert_int_equal(fdl_drillenv_result(env, &res, &ferr), 0);
    assert_int_equal(res->recovery_at_end, N);
    assert_int_equal(res->connected, 0);
    fdl_drillenv_free(env);
    /* Put it back for whoever runs next in this state. */
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(copy, 1, klen, f), klen);
    fclose(f);
    free(copy);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rollouts_complete_and_halt),
        cmocka_unit_test(boot_audit_catches_forged_records),
        cmocka_unit_test(corrupted_factory_image_means_recovery),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
