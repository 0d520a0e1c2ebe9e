/*
 * sim/cmd_ota.c — `fleetdrill rollout` (a staged OTA rollout on a simulated fleet,
 * with its figures) and `fleetdrill ota status` (what the registry recorded).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fdl_buildcfg.h"
#include "sim/bootaudit.h"
#include "sim/cli.h"
#include "sim/context.h"
#include "sim/drillenv.h"
#include "sim/json.h"
#include "sim/metrics.h"
#include "sim/rollout.h"

#define FAIL_USAGE(...)                                                                                           \
    do {                                                                                                          \
        fprintf(stderr, "fleetdrill: " __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                                      \
        return FDL_EXIT_USAGE;                                                                                    \
    } while (0)

static int parse_num(const char *s, double *out, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

/* "10,50,100" into stages; 0 or -1. */
static int parse_stages(const char *s, unsigned *out, size_t *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(p, &end, 10);
        if (errno || end == p || v < 1 || v > 100 || *n == FDL_JOBS_STAGES_MAX)
            return -1;
        out[(*n)++] = (unsigned)v;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        p = end;
    }
    uint32_t sizes[FDL_JOBS_STAGES_MAX];
    return *n ? fdl_jobs_stage_sizes(100, out, *n, sizes) : -1;
}

static int rollout_usage(void)
{
    puts("usage: fleetdrill rollout [options]\n"
         "Brings up a fleet (every device booted through its verified chain), releases a signed\n"
         "application image and rolls it out in stages with a halt gate, then prints per-stage\n"
         "figures, where the fleet ended and the audit of every device's boot records.\n"
         "  --devices N            fleet size (default 100)\n"
         "  --canary P             the first stage, percent of the fleet (default 10): stages P,50,100\n"
         "  --stages A,B,..,100    cumulative stages in percent (instead of --canary)\n"
         "  --max-failure P        percent of a stage that may fail before the rollout halts (default 10)\n"
         "  --tier T               application (default), kernel, or keyring: the keyring of the signing\n"
         "                         registry as it is now (after fleetdrill fw keys rotate|retire|revoke);\n"
         "                         devices that do not confirm it are reported as stranded\n"
         "  --generation G         sign with generation G of the tier's key (a next key, during a rotation's\n"
         "                         dual-trust window; default the current one)\n"
         "  --keep                 keep the registry and the devices' firmware from the last run (a rollout\n"
         "                         after another, e.g. the steps of a key rotation) instead of starting from\n"
         "                         a clean registry and devices as they left the factory\n"
         "  --behaviour B          what the new image does: ok, no-confirm (never phones home: reverted\n"
         "                         at its trial deadline) or crash (reverted at its first boot)\n"
         "  --version V            the new image's version (default 1.1.0)\n"
         "  --counter N            its security counter (default 2)\n"
         "  --size BYTES           its payload size (default 16384)\n"
         "  --time-scale X         device time runs X times faster (default 20)\n"
         "  --trial S              simulated seconds a new image has to confirm (default 600)\n"
         "  --stage-timeout S      real seconds a stage may take before its silent devices count as\n"
         "                         failed (default 120)\n"
         "  --profile se|flash     key storage of new identities (default se)\n"
         "  --online-timeout S     real seconds to wait for the fleet (default 300)\n"
         "  --expect completed|halted   exit 4 unless the rollout ends so, the rest of the fleet is as\n"
         "                         expected and the boot records are clean\n"
         "  --state DIR, --json FILE");
    return 0;
}

typedef struct ro_opts {
    const char *state, *json_path, *expect;
    int keep;
    uint32_t devices;
    fdl_profile profile;
    double time_scale, trial_s, stage_timeout_s, online_timeout_s;
    fdl_rollout_opts r;
    char version[16];
} ro_opts;

static void stage_line(const fdl_job_info *ji, size_t k)
{
    const fdl_job_stage_info *s = &ji->stages[k];
    printf("  stage %zu (%3u %%)     %u devices", k + 1, s->percent, s->devices);
    if (!s->published_s && k + 1 > ji->stage) {
        printf(": never notified\n");
        return;
    }
    printf(": %u confirmed, %u failed", s->confirmed, s->failed);
    if (s->silent)
        printf(" (%u silent)", s->silent);
    if (s->gated_s)
        printf(", gate at %.1f s", s->gated_s);
    if (s->confirmed)
        printf(" (notify to confirmed p50 %.2f s, p99 %.2f s)", s->p50_ms / 1e3, s->p99_ms / 1e3);
    printf("\n");
}

static void write_json(const ro_opts *o, const fdl_rollout_release *rel, const fdl_job_info *ji,
                       const fdl_rollout_census *c, const fdl_bootaudit *ba, const fdl_fleet_result *fr,
                       double online_s)
{
    char ver[16];
    fdl_json *j = fdl_json_new(1 << 18);
    fdl_json_set_pretty(j, 1);
    fdl_json_obj_begin(j, NULL);
    fdl_json_str(j, "fleetdrill", FDL_VERSION);
    fdl_json_str(j, "command", "rollout");
    fdl_json_uint(j, "devices", o->devices);
    fdl_json_num(j, "fleet_online_s", online_s);
    fdl_json_num(j, "boot_us_mean", fr ? fr->boot_us_mean : 0);
    fdl_json_obj_begin(j, "image");
    fdl_json_str(j, "job", rel->job);
    fdl_json_str(j, "tier", fdl_fw_tier_name(rel->tier));
    fdl_json_str(j, "version", fdl_fw_version_str(rel->version, ver, sizeof ver));
    fdl_json_uint(j, "counter", rel->counter);
    fdl_json_str(j, "behaviour", o->r.behaviour ? o->r.behaviour : "ok");
    fdl_json_uint(j, "size", rel->size);
    fdl_json_obj_end(j);
    fdl_json_obj_begin(j, "job");
    fdl_json_str(j, "state", fdl_job_state_name(ji->state));
    fdl_json_uint(j, "stage", ji->stage);
    fdl_json_str(j, "reason", ji->reason);
    fdl_json_num(j, "elapsed_s", ji->elapsed_s);
    fdl_json_num(j, "max_failure", o->r.max_failure);
    fdl_json_arr_begin(j, "stages");
    for (size_t k = 0; k < ji->n_stages; k++) {
        const fdl_job_stage_info *s = &ji->stages[k];
        fdl_json_obj_begin(j, NULL);
        fdl_json_uint(j, "percent", s->percent);
        fdl_json_uint(j, "devices", s->devices);
        fdl_json_bool(j, "notified", s->published_s > 0 || k + 1 <= ji->stage);
        fdl_json_uint(j, "confirmed", s->confirmed);
        fdl_json_uint(j, "failed", s->failed);
        fdl_json_uint(j, "silent", s->silent);
        fdl_json_num(j, "published_s", s->published_s);
        fdl_json_num(j, "gated_s", s->gated_s);
        fdl_json_uint(j, "confirm_p50_ms", s->p50_ms);
        fdl_json_uint(j, "confirm_p99_ms", s->p99_ms);
        fdl_json_obj_end(j);
    }
    fdl_json_arr_end(j);
    fdl_json_uint(j, "pending", ji->pending);
    fdl_json_uint(j, "confirmed", ji->confirmed);
    fdl_json_uint(j, "rejected", ji->rejected);
    fdl_json_uint(j, "failed", ji->failed);
    fdl_json_uint(j, "reverted", ji->reverted);
    fdl_json_obj_end(j);
    fdl_json_obj_begin(j, "fleet");
    fdl_json_uint(j, "on_new_version", c->on_version);
    fdl_json_uint(j, "on_other_version", c->on_other);
    fdl_json_uint(j, "in_trial", c->trial);
    fdl_json_uint(j, "in_recovery", c->recovery);
    fdl_json_uint(j, "ever_reverted", c->reverted);
    fdl_json_uint(j, "untouched", c->untouched);
    fdl_json_obj_end(j);
    fdl_json_obj_begin(j, "boot_records");
    fdl_json_uint(j, "devices", ba->devices);
    fdl_json_uint(j, "boots", ba->boots);
    fdl_json_uint(j, "images_ran", ba->images_ran);
    fdl_json_uint(j, "reverted_boots", ba->reverted_boots);
    fdl_json_uint(j, "violations", ba->violations);
    fdl_json_str(j, "first_violation", ba->first_violation);
    fdl_json_obj_end(j);
    fdl_json_obj_end(j);
    if (fdl_json_write_file(j, o->json_path) != 0)
        fprintf(stderr, "fleetdrill: cannot write %s\n", o->json_path);
    fdl_json_free(j);
}

static int do_rollout(ro_opts *o)
{
    char err[1024], ver[16];
    int rc = FDL_EXIT_ERROR;
    fdl_ctx ctx;
    fdl_drillenv *env = NULL;
    fdl_raise_nofile_limit((uint64_t)o->devices * 2 + 1024, NULL);
    fdl_cli_install_signals();
    if (fdl_ctx_open(&ctx, o->state, 1, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        return FDL_EXIT_ERROR;
    }
    fdl_drillenv_opts eo;
    fdl_drillenv_opts_init(&eo, &ctx);
    eo.devices = o->devices;
    eo.profile = o->profile;
    eo.fresh_registry = !o->keep;   /* a clean registry, devices as they left the factory: repeatable figures */
    eo.progress = 1;
    eo.fleet.time_scale = o->time_scale;
    eo.fleet.ota.trial_ms = (uint64_t)(o->trial_s * 1000.0);
    eo.fleet.finalize_se_at_end = 1;
    if (o->r.tier == FDL_TIER_KEYRING)
        printf("fleetdrill rollout: %u devices; the keyring of the signing registry as it is now; stages", o->devices);
    else
        printf("fleetdrill rollout: %u devices; %s %s (counter %u, behaviour %s); stages", o->devices,
               fdl_fw_tier_name(o->r.tier), fdl_fw_version_str(o->r.version, ver, sizeof ver), o->r.counter,
               o->r.behaviour ? o->r.behaviour : "ok");
    for (size_t k = 0; k < o->r.n_stages; k++)
        printf("%s%u", k ? "/" : " ", o->r.stages[k]);
    printf(" %%; halt when more than %.0f %% of a stage fails\n", o->r.max_failure * 100.0);
    fflush(stdout);
    int sr = fdl_drillenv_start(&eo, &env, err, sizeof err);
    if (sr != 0) {
        if (sr == -2)
            rc = FDL_EXIT_INTERRUPTED;
        else
            fprintf(stderr, "fleetdrill: %s\n", err);
        goto out;
    }
    uint64_t t0 = fdl_now_ns();
    uint32_t on = fdl_drillenv_wait_online(env, o->devices, (unsigned)(o->online_timeout_s * 1000.0));
    double online_s = (double)(fdl_now_ns() - t0) / 1e9;
    if (fdl_fleet_stop_requested()) {
        rc = FDL_EXIT_INTERRUPTED;
        goto out;
    }
    if (on < o->devices) {
        fprintf(stderr, "fleetdrill: only %u of %u devices online after %.0f s\n", on, o->devices, online_s);
        rc = FDL_EXIT_INCOMPLETE;
        goto out;
    }
    printf("  fleet up            %u devices online in %.1f s\n", on, online_s);
    fflush(stdout);
    fdl_rollout_release rel;
    if (fdl_rollout_start(env, &o->r, &rel, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        goto out;
    }
    /* Bounded: every stage may take its timeout, plus a margin for the gates. */
    unsigned limit_ms = (unsigned)((o->stage_timeout_s * (double)o->r.n_stages + 30.0) * 1000.0);
    fdl_job_info ji;
    int w = 1;
    for (unsigned waited = 0; w == 1 && waited < limit_ms && !fdl_fleet_stop_requested(); waited += 500)
        w = fdl_jobs_wait(fdl_drillenv_jobs(env), rel.job, 500, &ji);
    if (fdl_fleet_stop_requested()) {
        rc = FDL_EXIT_INTERRUPTED;
        goto out;
    }
    /* Let the last reports and boots land in the live view. */
    usleep(300000);
    fdl_rollout_census c;
    fdl_rollout_census_get(env, rel.job, rel.version, rel.counter, &c);
    fdl_drillenv_stop(env);
    const fdl_fleet_result *fr = NULL;
    const char *ferr = NULL;
    fdl_drillenv_result(env, &fr, &ferr);
    for (size_t k = 0; k < ji.n_stages; k++)
        stage_line(&ji, k);
    printf("  result              %s after %.1f s: %s\n", fdl_job_state_name(ji.state), ji.elapsed_s, ji.reason);
    int app = rel.tier == FDL_TIER_APPLICATION;
    if (app)
        printf("  fleet now           %u on %s, %u on another version, %u in trial, %u in recovery; "
               "%u never reported on the job\n",
               c.on_version, fdl_fw_version_str(rel.version, ver, sizeof ver), c.on_other, c.trial, c.recovery,
               c.untouched);
    else
        printf("  fleet now           %u confirmed %s %s (counter %u), %u in recovery; %u never reported on the job\n",
               ji.confirmed, fdl_fw_tier_name(rel.tier), fdl_fw_version_str(rel.version, ver, sizeof ver),
               rel.counter, c.recovery, c.untouched);
    if (rel.tier == FDL_TIER_KEYRING && ji.confirmed < o->devices)
        printf("  stranded            %u devices did not confirm keyring counter %u: they keep trusting every key it "
               "drops (retired or revoked) until they do\n", o->devices - ji.confirmed, rel.counter);
    if (fr)
        printf("  boot                %.2f ms per boot (mean of %llu boots: fuses, flash, every signature)\n",
               fr->boot_us_mean / 1000.0, (unsigned long long)fr->boots);
    fdl_bootaudit ba;
    if (fdl_bootaudit_run(&ctx.st, fdl_drillenv_fwenv(env), 0, o->devices, &ba, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        goto out;
    }
    printf("  boot records        %u devices, %llu boots, %llu images ran, %llu trial reverts: ", ba.devices,
           (unsigned long long)ba.boots, (unsigned long long)ba.images_ran, (unsigned long long)ba.reverted_boots);
    if (ba.violations)
        printf("%llu VIOLATIONS, e.g. %s\n", (unsigned long long)ba.violations, ba.first_violation);
    else
        printf("every image that ran had verified and verifies here too (0 violations)\n");
    if (o->json_path)
        write_json(o, &rel, &ji, &c, &ba, fr, online_s);
    rc = FDL_EXIT_OK;
    if (w != 0 || ba.violations)
        rc = FDL_EXIT_FINDINGS;
    if (o->expect) {
        int want_halt = !strcmp(o->expect, "halted");
        uint32_t canary = ji.stages[0].devices;
        uint32_t on_new = app ? c.on_version : ji.confirmed;
        int ok = want_halt ? ji.state == FDL_JOB_HALTED && ji.stage == 1 && ji.pending == o->devices - canary &&
                                 c.untouched >= o->devices - canary && (app ? c.on_version == 0 : 1)
                           : ji.state == FDL_JOB_COMPLETED && on_new == o->devices;
        if (!ok) {
            fprintf(stderr, "fleetdrill: the rollout did not end as expected (%s)\n", o->expect);
            rc = FDL_EXIT_FINDINGS;
        }
    }
out:
    fdl_drillenv_free(env);
    fdl_ctx_close(&ctx);
    return rc;
}

int fdl_cmd_rollout(int argc, char **argv)
{
    ro_opts o;
    memset(&o, 0, sizeof o);
    fdl_rollout_opts_init(&o.r);
    o.state = fdl_default_state_dir();
    o.devices = 100;
    o.time_scale = 20;
    o.trial_s = 600;
    o.stage_timeout_s = 120;
    o.online_timeout_s = 300;
    unsigned canary = 10;
    int have_stages = 0;
    static const struct option opts[] = {{"devices", required_argument, 0, 'n'},
                                         {"canary", required_argument, 0, 'c'},
                                         {"stages", required_argument, 0, 'S'},
                                         {"max-failure", required_argument, 0, 'f'},
                                         {"behaviour", required_argument, 0, 'b'},
                                         {"tier", required_argument, 0, 't'},
                                         {"generation", required_argument, 0, 'g'},
                                         {"keep", no_argument, 0, 'K'},
                                         {"behavior", required_argument, 0, 'b'},
                                         {"version", required_argument, 0, 'v'},
                                         {"counter", required_argument, 0, 'k'},
                                         {"size", required_argument, 0, 'z'},
                                         {"time-scale", required_argument, 0, 'x'},
                                         {"trial", required_argument, 0, 'T'},
                                         {"stage-timeout", required_argument, 0, 'o'},
                                         {"online-timeout", required_argument, 0, 'O'},
                                         {"profile", required_argument, 0, 'p'},
                                         {"expect", required_argument, 0, 'e'},
                                         {"state", required_argument, 0, 's'},
                                         {"json", required_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    int c;
    double v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (parse_num(optarg, &v, 1, 10000))
                FAIL_USAGE("--devices wants 1 .. 10000");
            o.devices = (uint32_t)v;
            break;
        case 'c':
            if (parse_num(optarg, &v, 1, 49))
                FAIL_USAGE("--canary wants a percentage from 1 to 49");
            canary = (unsigned)v;
            break;
        case 'S':
            if (parse_stages(optarg, o.r.stages, &o.r.n_stages))
                FAIL_USAGE("--stages wants increasing percentages ending at 100, e.g. 10,50,100 (at most %d)",
                           FDL_JOBS_STAGES_MAX);
            have_stages = 1;
            break;
        case 'f':
            if (parse_num(optarg, &v, 0, 100))
                FAIL_USAGE("--max-failure wants a percentage from 0 to 100");
            o.r.max_failure = v / 100.0;
            o.r.max_failure_set = 1;
            break;
        case 'b':
            if (strcmp(optarg, "ok") && strcmp(optarg, "no-confirm") && strcmp(optarg, "crash"))
                FAIL_USAGE("--behaviour is ok, no-confirm or crash");
            o.r.behaviour = optarg;
            break;
        case 'g':
            if (parse_num(optarg, &v, 1, 1000))
                FAIL_USAGE("--generation wants 1 .. 1000");
            o.r.generation = (unsigned)v;
            break;
        case 'K': o.keep = 1; break;
        case 't':
            o.r.tier = fdl_fw_tier_parse(optarg);
            if (o.r.tier != FDL_TIER_APPLICATION && o.r.tier != FDL_TIER_KERNEL && o.r.tier != FDL_TIER_KEYRING)
                FAIL_USAGE("--tier is application, kernel or keyring");
            if (o.r.tier == FDL_TIER_KEYRING)
                o.r.counter = 0;   /* the signing registry's keyring counter */
            break;
        case 'v':
            if (fdl_fw_version_parse(optarg, &o.r.version))
                FAIL_USAGE("--version wants M.m.p");
            break;
        case 'k':
            if (parse_num(optarg, &v, 0, 4095))
                FAIL_USAGE("--counter wants 0 .. 4095");
            o.r.counter = (uint32_t)v;
            break;
        case 'z':
            if (parse_num(optarg, &v, 256, 4 << 20))
                FAIL_USAGE("--size wants 256 .. 4194304 bytes");
            o.r.size = (uint32_t)v;
            break;
        case 'x':
            if (parse_num(optarg, &o.time_scale, 1, 1000))
                FAIL_USAGE("--time-scale wants 1 .. 1000");
            break;
        case 'T':
            if (parse_num(optarg, &o.trial_s, 1, 86400))
                FAIL_USAGE("--trial wants 1 .. 86400 simulated seconds");
            break;
        case 'o':
            if (parse_num(optarg, &o.stage_timeout_s, 1, 3600))
                FAIL_USAGE("--stage-timeout wants 1 .. 3600 seconds");
            break;
        case 'O':
            if (parse_num(optarg, &o.online_timeout_s, 1, 3600))
                FAIL_USAGE("--online-timeout wants 1 .. 3600 seconds");
            break;
        case 'p':
            if (fdl_profile_parse(optarg, &o.profile))
                FAIL_USAGE("--profile is se or flash");
            break;
        case 'e':
            if (strcmp(optarg, "completed") && strcmp(optarg, "halted"))
                FAIL_USAGE("--expect is completed or halted");
            o.expect = optarg;
            break;
        case 's': o.state = optarg; break;
        case 'j': o.json_path = optarg; break;
        case 'h': return rollout_usage();
        default: return FDL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        FAIL_USAGE("unexpected argument '%s'", argv[optind]);
    if (!have_stages) {
        o.r.stages[0] = canary;
        o.r.stages[1] = 50;
        o.r.stages[2] = 100;
        o.r.n_stages = 3;
    }
    o.r.stage_timeout_ms = (uint64_t)(o.stage_timeout_s * 1000.0);
    return do_rollout(&o);
}

/* ---- ota status ------------------------------------------------------------------------- */

typedef struct status_ctx {
    int all, shown, json;
    uint32_t by[16];
    char names[16][24];
    int n_names;
    fdl_json *j;
} status_ctx;

static int status_line(void *ctx, const fdl_reg_ota_line *l)
{
    status_ctx *s = ctx;
    int k = 0;
    while (k < s->n_names && strcmp(s->names[k], l->step))
        k++;
    if (k == s->n_names && k < 16)
        snprintf(s->names[s->n_names++], sizeof s->names[0], "%s", l->step);
    if (k < 16)
        s->by[k]++;
    if (s->json) {
        fdl_json_obj_begin(s->j, NULL);
        fdl_json_str(s->j, "device", l->device_id);
        fdl_json_int(s->j, "stage", l->stage);
        fdl_json_str(s->j, "step", l->step);
        fdl_json_str(s->j, "detail", l->detail);
        fdl_json_uint(s->j, "seq", l->seq);
        fdl_json_int(s->j, "updated_ms", l->updated_ms);
        fdl_json_obj_end(s->j);
    } else if (s->all || s->shown < 20) {
        printf("  %-12s stage %d  %-11s %s\n", l->device_id, l->stage, l->step, l->detail);
        s->shown++;
    }
    return 0;
}

int fdl_cmd_ota(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "status") != 0)
        FAIL_USAGE("usage: fleetdrill ota status [JOB] [--all] [--json] [--state DIR]");
    const char *state = fdl_default_state_dir(), *job = NULL;
    int all = 0, json = 0;
    static const struct option opts[] = {{"state", required_argument, 0, 's'},
                                         {"all", no_argument, 0, 'a'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'a': all = 1; break;
        case 'J': json = 1; break;
        case 'h':
            puts("usage: fleetdrill ota status [JOB] [--all] [--json] [--state DIR]\n"
                 "Without JOB: every OTA job in the registry. With JOB: its state, its stages' outcome and\n"
                 "each targeted device's last step (the first 20; --all for every one).");
            return 0;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (optind < argc)
        job = argv[optind++];
    if (optind < argc)
        FAIL_USAGE("unexpected argument '%s'", argv[optind]);
    char path[FDL_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/registry.db", state);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "fleetdrill: no registry at %s\n", path);
        return FDL_EXIT_ERROR;
    }
    fdl_registry *reg = NULL;
    fdl_registry_opts ro = {.actor = "cli"};
    if (fdl_registry_open(path, &ro, &reg) != FDL_REG_OK) {
        fprintf(stderr, "fleetdrill: cannot open %s\n", path);
        return FDL_EXIT_ERROR;
    }
    int rc = FDL_EXIT_OK;
    if (!job) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(fdl_registry_db(reg),
                               "SELECT id, state, stage, stages, devices, tier, version, COALESCE(reason, '')"
                               " FROM ota_jobs ORDER BY created_ms, id",
                               -1, &st, NULL) != SQLITE_OK) {
            fprintf(stderr, "fleetdrill: %s\n", sqlite3_errmsg(fdl_registry_db(reg)));
            fdl_registry_free(reg);
            return FDL_EXIT_ERROR;
        }
        int n = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            printf("%-28s %-9s stage %d of %-10s %5d devices  %s %s  %s\n", sqlite3_column_text(st, 0),
                   sqlite3_column_text(st, 1), sqlite3_column_int(st, 2), sqlite3_column_text(st, 3),
                   sqlite3_column_int(st, 4), sqlite3_column_text(st, 5), sqlite3_column_text(st, 6),
                   sqlite3_column_text(st, 7));
            n++;
        }
        sqlite3_finalize(st);
        if (!n)
            printf("no OTA job in %s\n", path);
        fdl_registry_free(reg);
        return rc;
    }
    fdl_reg_ota_job rj;
    if (fdl_registry_ota_job_get(reg, job, &rj) != FDL_REG_OK) {
        fprintf(stderr, "fleetdrill: no job %s in %s\n", job, path);
        fdl_registry_free(reg);
        return FDL_EXIT_ERROR;
    }
    status_ctx s = {.all = all, .json = json};
    if (json) {
        s.j = fdl_json_new(1 << 22);
        fdl_json_set_pretty(s.j, 1);
        fdl_json_obj_begin(s.j, NULL);
        fdl_json_str(s.j, "job", rj.id);
        fdl_json_str(s.j, "state", rj.state);
        fdl_json_int(s.j, "stage", rj.stage);
        fdl_json_str(s.j, "stages", rj.stages);
        fdl_json_num(s.j, "max_failure", rj.max_failure);
        fdl_json_str(s.j, "tier", rj.tier);
        fdl_json_str(s.j, "version", rj.version);
        fdl_json_uint(s.j, "counter", rj.counter);
        fdl_json_str(s.j, "artifact", rj.artifact);
        fdl_json_str(s.j, "sha256", rj.sha256);
        fdl_json_uint(s.j, "size", rj.size);
        fdl_json_str(s.j, "reason", rj.reason);
        fdl_json_arr_begin(s.j, "devices");
    } else {
        printf("job %s: %s at stage %d of %s, %u devices, %s %s (counter %u), artifact %s (%u bytes, sha256 %.16s...)\n",
               rj.id, rj.state, rj.stage, rj.stages, rj.devices, rj.tier, rj.version, rj.counter, rj.artifact,
               rj.size, rj.sha256);
        if (rj.reason[0])
            printf("  %s\n", rj.reason);
    }
    fdl_registry_ota_status_list(reg, job, status_line, &s);
    if (json) {
        fdl_json_arr_end(s.j);
        fdl_json_obj_begin(s.j, "by_step");
        for (int k = 0; k < s.n_names; k++)
            fdl_json_uint(s.j, s.names[k], s.by[k]);
        fdl_json_obj_end(s.j);
        fdl_json_obj_end(s.j);
        size_t len = 0;
        const char *text = fdl_json_text(s.j, &len);
        if (text)
            fwrite(text, 1, len, stdout);
        fputc('\n', stdout);
        fdl_json_free(s.j);
    } else {
        if (!all && s.shown == 20)
            printf("  ... (--all for every device)\n");
        printf("  by step:");
        for (int k = 0; k < s.n_names; k++)
            printf(" %s %u%s", s.names[k], s.by[k], k + 1 < s.n_names ? "," : "");
        printf("\n");
    }
    fdl_registry_free(reg);
    return rc;
}
