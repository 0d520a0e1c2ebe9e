/* sim/rollout.c — release an image and roll it out to a running fleet (see rollout.h). */
#include "sim/rollout.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim/alloc.h"

#define ROLLOUT_STAGE_TIMEOUT_MS 120000u

void fdl_rollout_opts_init(fdl_rollout_opts *o)
{
    memset(o, 0, sizeof *o);
    o->tier = FDL_TIER_APPLICATION;
    fdl_fw_version_parse("1.1.0", &o->version);
    o->counter = 2;
    o->max_failure = 0.1;
}

int fdl_rollout_start(fdl_drillenv *e, const fdl_rollout_opts *o, fdl_rollout_release *out, char *err,
                      size_t errcap)
{
    static atomic_uint n_made;
    fdl_fwenv *fw = fdl_drillenv_fwenv(e);
    fdl_jobs *jobs = fdl_drillenv_jobs(e);
    const fdl_drillenv_opts *eo = fdl_drillenv_opts_of(e);
    memset(out, 0, sizeof *out);
    if (!fw || !jobs) {
        snprintf(err, errcap, "rollout: this environment has no OTA services");
        return -1;
    }
    if (o->job_id)
        snprintf(out->job, sizeof out->job, "%s", o->job_id);
    else {
        /* Unique across runs that keep one registry (fleetdrill rollout --keep twice in a
         * second): wall-clock ms, the process, a counter. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(out->job, sizeof out->job, "ota-%llu-%u-%u",
                 (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)(ts.tv_nsec / 1000000),
                 (unsigned)getpid(), atomic_fetch_add(&n_made, 1) + 1);
    }
    /* One artifact per job: a later release never changes the bytes an earlier
     * job's signed document names. */
    snprintf(out->artifact, sizeof out->artifact, "%s", out->job);

    uint8_t *img = NULL;
    size_t len = 0;
    const uint8_t *use = o->image;
    if (use) {
        len = o->image_len;
    } else {
        fdl_fwenv_image spec = {.tier = o->tier, .version = o->version, .counter = o->counter,
                                .behaviour = o->behaviour, .size = o->size, .hw_rev = o->hw_rev,
                                .sign = o->sign, .role = o->sign_role, .generation = o->generation};
        if (fdl_fwenv_build(fw, &spec, &img, &len, err, errcap) != 0)
            return -1;
        use = img;
    }
    fdl_fw_hdr h;
    int rc = -1;
    const char **ids = NULL;
    if (fdl_fwimage_parse_hdr(use, len, &h) != FDL_FW_OK) {
        snprintf(err, errcap, "rollout: the image has no valid header");
        goto cleanup;
    }
    out->tier = h.tier;
    out->version = h.version;
    out->counter = h.counter;
    out->size = (uint32_t)len;
    if (fdl_fwenv_upload(fw, out->artifact, use, len, out->sha256, err, errcap) != 0)
        goto cleanup;

    size_t n = o->devices ? o->n_devices : eo->devices;
    ids = fdl_calloc(n ? n : 1, sizeof *ids);
    char (*idbuf)[FDL_DEVICE_ID_MAX] = fdl_calloc(n ? n : 1, sizeof *idbuf);
    if (!ids || !idbuf) {
        fdl_free(idbuf);
        snprintf(err, errcap, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t k = o->devices ? o->devices[i] : (uint32_t)i;
        fdl_device_id(eo->first + k, idbuf[i], sizeof idbuf[i]);
        ids[i] = idbuf[i];
    }
    fdl_job_spec js;
    memset(&js, 0, sizeof js);
    js.id = out->job;
    js.tier = h.tier;
    js.version = h.version;
    js.counter = h.counter;
    js.artifact = out->artifact;
    memcpy(js.sha256, out->sha256, 32);
    js.size = (uint32_t)len;
    js.targets = ids;
    js.n_targets = n;
    js.hw = o->hw;
    js.n_hw = o->n_hw;
    if (o->n_stages) {
        memcpy(js.stages, o->stages, o->n_stages * sizeof *o->stages);
        js.n_stages = o->n_stages;
    } else {
        js.stages[0] = 10;
        js.stages[1] = 50;
        js.stages[2] = 100;
        js.n_stages = 3;
    }
    js.max_failure = o->max_failure_set || o->max_failure > 0 ? o->max_failure : 0.1;
    js.valid_ms = o->valid_ms;
    js.stage_timeout_ms = o->stage_timeout_ms ? o->stage_timeout_ms : ROLLOUT_STAGE_TIMEOUT_MS;
    js.hold = o->hold;
    char id[64];
    rc = fdl_jobs_create(jobs, &js, id, err, errcap);
    fdl_free(idbuf);
cleanup:
    fdl_free(ids);
    fdl_free(img);
    return rc;
}

void fdl_rollout_census_get(const fdl_drillenv *e, const char *job, uint32_t version, uint32_t counter,
                            fdl_rollout_census *out)
{
    memset(out, 0, sizeof *out);
    const fdl_fleet_live *lv = fdl_drillenv_live(e);
    uint32_t n = fdl_drillenv_opts_of(e)->devices;
    out->devices = n;
    for (uint32_t i = 0; i < n; i++) {
        fdl_fleet_fw_view v;
        if (fdl_fleet_live_fw(lv, i, &v) != 0)
            continue;
        if (v.app_version == version && v.app_counter == counter)
            out->on_version++;
        else
            out->on_other++;
        out->trial += v.trial != 0;
        out->recovery += v.recovery != 0;
        out->reverted += v.reverted > 0;
        out->untouched += !job || strcmp(v.job, job) != 0;
    }
}
