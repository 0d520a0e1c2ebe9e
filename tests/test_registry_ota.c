/* tests/test_registry_ota.c — the registry's OTA tables: jobs, per-device status rows, documents, the report log, migration. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cloud/registry.h"
#include "sim/alloc.h"

typedef struct fx {
    char dir[256];
    char path[300];
    fdl_registry *reg;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    fdl_test_mkdtemp("registry-ota", f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/registry.db", f->dir);
    fdl_registry_opts o = {.actor = "svc-jobs"};
    if (fdl_registry_open(f->path, &o, &f->reg) != FDL_REG_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fdl_registry_free(f->reg);
    fdl_test_rmrf(f->dir);
    free(f);
    return 0;
}

static fdl_reg_ota_job a_job(const char *id, const char *state)
{
    fdl_reg_ota_job j;
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "%s", id);
    snprintf(j.tier, sizeof j.tier, "application");
    snprintf(j.version, sizeof j.version, "1.1.0");
    j.counter = 2;
    snprintf(j.artifact, sizeof j.artifact, "app-1.1.0");
    memset(j.sha256, 'A', 64);   /* upper case in, lower case stored */
    j.size = 4224;
    snprintf(j.stages, sizeof j.stages, "10,50,100");
    j.max_failure = 0.1;
    snprintf(j.state, sizeof j.state, "%s", state);
    return j;
}

static const char *const k_ids[] = {"dev-000000", "dev-000001", "dev-000002", "dev-000003"};
static const int k_stage[] = {1, 2, 2, 3};

typedef struct collected {
    int n;
    char step[8][32];
    char dev[8][64];
    int stage[8];
    uint64_t seq[8];
} collected;

static int collect(void *ctx, const fdl_reg_ota_line *l)
{
    collected *c = ctx;
    if (c->n < 8) {
        snprintf(c->step[c->n], sizeof c->step[0], "%s", l->step);
        snprintf(c->dev[c->n], sizeof c->dev[0], "%s", l->device_id);
        c->stage[c->n] = l->stage;
        c->seq[c->n] = l->seq;
    }
    c->n++;
    return 0;
}

static void job_lifecycle(void **state)
{
    fx *f = *state;
    fdl_reg_ota_job j = a_job("job-1", "RUNNING");
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, k_ids, k_stage, 4), FDL_REG_OK);
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, k_ids, k_stage, 4), FDL_REG_ERR_CONFLICT);

    fdl_reg_ota_job got;
    assert_int_equal(fdl_registry_ota_job_get(f->reg, "job-1", &got), FDL_REG_OK);
    assert_string_equal(got.state, "RUNNING");
    assert_string_equal(got.tier, "application");
    assert_string_equal(got.stages, "10,50,100");
    assert_int_equal(got.devices, 4);
    assert_int_equal(got.stage, 0);
    assert_int_equal(got.sha256[0], 'a');
    assert_true(got.created_ms > 0);

    /* Every target starts 'pending', in its stage. */
    collected c = {0};
    assert_int_equal(fdl_registry_ota_status_list(f->reg, "job-1", collect, &c), FDL_REG_OK);
    assert_int_equal(c.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(c.step[i], "pending");
        assert_int_equal(c.stage[i], k_stage[i]);
    }

    /* Stage 1's document: its target becomes 'notified' with the seq. */
    const uint8_t doc[] = "FDJ1-signed-envelope";
    assert_int_equal(fdl_registry_ota_doc_put(f->reg, 1000, "job-1", 1, doc, sizeof doc, k_ids, 1, 1700000000000),
                     FDL_REG_OK);
    fdl_reg_ota_line line;
    assert_int_equal(fdl_registry_ota_status_get(f->reg, "job-1", "dev-000000", &line), FDL_REG_OK);
    assert_string_equal(line.step, "notified");
    assert_int_equal(line.seq, 1000);
    assert_int_equal(fdl_registry_ota_status_get(f->reg, "job-1", "dev-000001", &line), FDL_REG_OK);
    assert_string_equal(line.step, "pending");
    uint8_t buf[64];
    size_t len = 0;
    char jid[FDL_REG_ID_MAX + 1];
    assert_int_equal(fdl_registry_ota_doc_get(f->reg, 1000, buf, sizeof buf, &len, jid), FDL_REG_OK);
    assert_int_equal(len, sizeof doc);
    assert_memory_equal(buf, doc, sizeof doc);
    assert_string_equal(jid, "job-1");
    assert_int_equal(fdl_registry_ota_doc_get(f->reg, 1000, buf, 4, &len, NULL), FDL_REG_ERR_SMALL);
    assert_int_equal(fdl_registry_ota_doc_get(f->reg, 999, buf, sizeof buf, &len, NULL), FDL_REG_ERR_NOT_FOUND);
    /* A held document (published 0) marks nobody. */
    assert_int_equal(fdl_registry_ota_doc_put(f->reg, 1001, "job-1", 2, doc, sizeof doc, k_ids + 1, 2, 0), FDL_REG_OK);
    assert_int_equal(fdl_registry_ota_status_get(f->reg, "job-1", "dev-000001", &line), FDL_REG_OK);
    assert_string_equal(line.step, "pending");

    /* Reports: the device's steps replace the row; a log-only one leaves it. */
    fdl_reg_ota_status rep[3] = {
        {.job = "job-1", .device_id = "dev-000000", .step = "downloading", .seq = 1000},
        {.job = "job-1", .device_id = "dev-000000", .step = "confirmed", .seq = 1000, .detail = "1.1.0 runs"},
        {.job = "job-1", .device_id = "dev-000000", .step = "rejected", .seq = 1000,
         .detail = "job document replayed", .log_only = 1},
    };
    assert_int_equal(fdl_registry_ota_status_apply(f->reg, rep, 3), FDL_REG_OK);
    assert_int_equal(fdl_registry_ota_status_get(f->reg, "job-1", "dev-000000", &line), FDL_REG_OK);
    assert_string_equal(line.step, "confirmed");
    assert_string_equal(line.detail, "1.1.0 runs");
    assert_int_equal(fdl_registry_ota_status_latest(f->reg, "dev-000000", &line), FDL_REG_OK);
    assert_string_equal(line.job, "job-1");
    assert_int_equal(fdl_registry_ota_status_latest(f->reg, "dev-000003", &line), FDL_REG_ERR_NOT_FOUND);
    /* ... and all three are in the device's report log, in order. */
    collected r = {0};
    assert_int_equal(fdl_registry_ota_reports(f->reg, "dev-000000", 0, collect, &r), FDL_REG_OK);
    assert_int_equal(r.n, 3);
    assert_string_equal(r.step[0], "downloading");
    assert_string_equal(r.step[2], "rejected");

    /* A report about a job this registry never had goes to the log only. */
    fdl_reg_ota_status foreign = {.job = "job-x", .device_id = "dev-000002", .step = "rejected", .log_only = 1};
    assert_int_equal(fdl_registry_ota_status_apply(f->reg, &foreign, 1), FDL_REG_OK);
    /* ... and as a status row the foreign key refuses it (the whole batch rolls back). */
    foreign.log_only = 0;
    assert_int_not_equal(fdl_registry_ota_status_apply(f->reg, &foreign, 1), FDL_REG_OK);
    collected r2 = {0};
    assert_int_equal(fdl_registry_ota_reports(f->reg, "dev-000002", 0, collect, &r2), FDL_REG_OK);
    assert_int_equal(r2.n, 1);

    /* The gate halts it. */
    assert_int_equal(fdl_registry_ota_job_set(f->reg, "job-1", "HALTED", 1, "stage 1: 1 of 1 failed"), FDL_REG_OK);
    assert_int_equal(fdl_registry_ota_job_get(f->reg, "job-1", &got), FDL_REG_OK);
    assert_string_equal(got.state, "HALTED");
    assert_int_equal(got.stage, 1);
    assert_string_equal(got.reason, "stage 1: 1 of 1 failed");
    assert_int_equal(fdl_registry_ota_job_set(f->reg, "nope", "HALTED", 1, NULL), FDL_REG_ERR_NOT_FOUND);
}

static void bad_arguments_write_nothing(void **state)
{
    fx *f = *state;
    fdl_reg_ota_job j = a_job("job-2", "RUNNING");
    const char *bad_ids[] = {"dev-000000", "dev/000001"};
    const int st[] = {1, 1};
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, bad_ids, st, 2), FDL_REG_ERR_ARG);
    j = a_job("job-2", "HALTED");   /* a job starts HELD or RUNNING */
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, k_ids, k_stage, 1), FDL_REG_ERR_ARG);
    j = a_job("job-2", "RUNNING");
    j.sha256[3] = 'x';
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, k_ids, k_stage, 1), FDL_REG_ERR_ARG);
    j = a_job("job-2", "RUNNING");
    j.max_failure = 1.5;
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, k_ids, k_stage, 1), FDL_REG_ERR_ARG);
    j = a_job("job 2", "RUNNING");
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, k_ids, k_stage, 1), FDL_REG_ERR_ARG);
    fdl_reg_ota_job got;
    assert_int_equal(fdl_registry_ota_job_get(f->reg, "job-2", &got), FDL_REG_ERR_NOT_FOUND);

    j = a_job("job-2", "RUNNING");
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, k_ids, k_stage, 1), FDL_REG_OK);
    /* Steps are words, details printable one-liners. */
    fdl_reg_ota_status s = {.job = "job-2", .device_id = "dev-000000", .step = "fail ed"};
    assert_int_equal(fdl_registry_ota_status_apply(f->reg, &s, 1), FDL_REG_ERR_ARG);
    s.step = "failed";
    s.detail = "line\nforged";
    assert_int_equal(fdl_registry_ota_status_apply(f->reg, &s, 1), FDL_REG_ERR_ARG);
    collected r = {0};
    assert_int_equal(fdl_registry_ota_reports(f->reg, "dev-000000", 0, collect, &r), FDL_REG_OK);
    assert_int_equal(r.n, 0);
    assert_int_equal(fdl_registry_ota_doc_put(f->reg, 0, "job-2", 1, (const uint8_t *)"x", 1, NULL, 0, 0),
                     FDL_REG_ERR_ARG);
    assert_int_equal(fdl_registry_ota_status_apply(f->reg, NULL, 0), FDL_REG_OK);
}

static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* A v2 file (before OTA) is migrated: its data kept, the OTA tables added. */
static void v3_migrates_v2(void **state)
{
    fx *f = *state;
    fdl_reg_device d = {.sold = 1};
    assert_int_equal(fdl_registry_device_put(f->reg, "old-dev", &d), FDL_REG_OK);
    fdl_registry_free(f->reg);
    f->reg = NULL;
    assert_int_equal(raw_exec(f->path, "DROP TABLE ota_reports; DROP TABLE ota_documents; DROP TABLE ota_status;"
                                       " DROP TABLE ota_jobs; PRAGMA user_version = 2;"),
                     SQLITE_OK);
    assert_int_equal(fdl_registry_open(f->path, NULL, &f->reg), FDL_REG_OK);
    fdl_reg_device got;
    assert_int_equal(fdl_registry_device_get(f->reg, "old-dev", &got), FDL_REG_OK);
    assert_int_equal(got.sold, 1);
    fdl_reg_ota_job j = a_job("job-3", "HELD");
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, k_ids, k_stage, 4), FDL_REG_OK);
    assert_int_equal(fdl_registry_check(f->reg, NULL), FDL_REG_OK);
}

static void alloc_balance(void **state)
{
    fx *f = *state;
    fdl_alloc_stats before = fdl_alloc_get_stats();
    fdl_reg_ota_job j = a_job("job-4", "RUNNING");
    assert_int_equal(fdl_registry_ota_job_create(f->reg, &j, k_ids, k_stage, 4), FDL_REG_OK);
    collected c = {0};
    assert_int_equal(fdl_registry_ota_status_list(f->reg, "job-4", collect, &c), FDL_REG_OK);
    fdl_alloc_stats after = fdl_alloc_get_stats();
    assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(job_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_arguments_write_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(v3_migrates_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(alloc_balance, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
