/* sim/cloudrun.c — registry enrolment, broker configuration, revocation (see cloudrun.h). */
#include "sim/cloudrun.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloud/crl.h"
#include "cloud/enroll.h"
#include "cloud/json.h"
#include "cloud/operator.h"
#include "fdl_buildcfg.h"
#include "sim/alloc.h"
#include "sim/cli.h"
#include "sim/fsutil.h"
#include "sim/json.h"
#include "sim/metrics.h"
#include "sim/progress.h"
#include "devices/device.h"
#include "sim/vclock.h"

const char *fdl_prov_mode_name(fdl_prov_mode m)
{
    return m == FDL_PROV_JITR ? "jitr" : m == FDL_PROV_CLAIM ? "claim" : "direct";
}

int fdl_prov_mode_parse(const char *s, fdl_prov_mode *out)
{
    if (!strcmp(s, "direct"))
        *out = FDL_PROV_DIRECT;
    else if (!strcmp(s, "jitr"))
        *out = FDL_PROV_JITR;
    else if (!strcmp(s, "claim"))
        *out = FDL_PROV_CLAIM;
    else
        return -1;
    return 0;
}

#define PREP_BATCH 1000

int fdl_cloud_prepare_fleet(fdl_ctx *ctx, uint32_t first, uint32_t n, fdl_prov_mode mode, uint32_t *n_changed,
                            char *err, size_t errcap)
{
    uint32_t changed = 0;
    int rc = -1;
    char (*ids)[FDL_DEVICE_ID_MAX] = fdl_calloc(PREP_BATCH, sizeof *ids);
    const char **idp = fdl_calloc(PREP_BATCH, sizeof *idp);
    fdl_reg_device *attrs = fdl_calloc(PREP_BATCH, sizeof *attrs);
    size_t nb = 0;
    fdl_progress *bar = fdl_progress_new(stderr, "registry", n);
    if (!ids || !idp || !attrs) {
        snprintf(err, errcap, "out of memory");
        goto cleanup;
    }
    for (uint32_t i = 0; i < n; i++) {
        char id[FDL_DEVICE_ID_MAX], path[FDL_PATH_MAX + 64];
        fdl_device_id(first + i, id, sizeof id);
        if (mode == FDL_PROV_DIRECT) {
            mbedtls_x509_crt crt;
            mbedtls_x509_crt_init(&crt);
            fdl_identity_path(&ctx->st, id, "cert.pem", path, sizeof path);
            char fp[FDL_REG_FP_HEX_LEN + 1];
            fdl_reg_cert_info info;
            int ok = mbedtls_x509_crt_parse_file(&crt, path) == 0 &&
                     fdl_registry_fingerprint(crt.raw.p, crt.raw.len, fp) == FDL_REG_OK;
            if (ok && fdl_registry_cert_status(ctx->reg, fp, &info) == FDL_REG_ERR_NOT_FOUND) {
                if (fdl_enroll_cert(ctx->reg, &crt, FDL_ENROLL_POLICY_DEVICE, NULL, err, errcap) != 0) {
                    mbedtls_x509_crt_free(&crt);
                    goto cleanup;
                }
                changed++;
            }
            mbedtls_x509_crt_free(&crt);
            if (!ok) {
                snprintf(err, errcap, "%s: cannot read its certificate", id);
                goto cleanup;
            }
        } else {
            fdl_reg_device d;
            if (fdl_registry_device_get(ctx->reg, id, &d) == FDL_REG_OK && d.firmware_version[0])
                goto next;
            snprintf(ids[nb], sizeof ids[nb], "%s", id);
            idp[nb] = ids[nb];
            memset(&attrs[nb], 0, sizeof attrs[nb]);
            attrs[nb].sold = 1;
            snprintf(attrs[nb].firmware_version, sizeof attrs[nb].firmware_version, "%s", FDL_FACTORY_FIRMWARE);
            if (++nb == PREP_BATCH) {
                if (fdl_registry_device_put_batch(ctx->reg, idp, attrs, nb) != FDL_REG_OK) {
                    snprintf(err, errcap, "manufacturing records: %s", fdl_registry_last_error(ctx->reg));
                    goto cleanup;
                }
                changed += (uint32_t)nb;
                nb = 0;
            }
        }
    next:
        fdl_progress_update(bar, i + 1, "%u written", changed);
    }
    if (nb) {
        if (fdl_registry_device_put_batch(ctx->reg, idp, attrs, nb) != FDL_REG_OK) {
            snprintf(err, errcap, "manufacturing records: %s", fdl_registry_last_error(ctx->reg));
            goto cleanup;
        }
        changed += (uint32_t)nb;
    }
    rc = 0;
cleanup:
    fdl_progress_finish(bar);
    fdl_progress_free(bar);
    fdl_free(ids);
    fdl_free(idp);
    fdl_free(attrs);
    if (n_changed)
        *n_changed = changed;
    return rc;
}

int fdl_cloud_broker_opts(fdl_ctx *ctx, fdl_broker_opts *bo, fdl_cloud_broker_bufs *b, char *err, size_t errcap)
{
    if (fdl_ctx_write_broker_cafile(ctx, b->cafile, sizeof b->cafile) != 0) {
        snprintf(err, errcap, "cannot write the broker CA file in %s", ctx->st.broker_dir);
        return -1;
    }
    snprintf(b->cert, sizeof b->cert, "%s/%s", ctx->st.pki_dir, FDL_PKI_SERVER_PEM);
    snprintf(b->key, sizeof b->key, "%s/%s", ctx->st.pki_dir, FDL_PKI_SERVER_KEY_PEM);
    snprintf(b->registry, sizeof b->registry, "%s", ctx->st.registry);
    b->kv[0] = (fdl_broker_kv){.key = "registry", .value = b->registry};
    if (fdl_cloud_publish_crls(ctx, b->crl, sizeof b->crl, err, errcap) != 0)
        return -1;
    bo->crlfile = b->crl;
    bo->dir = ctx->st.broker_dir;
    bo->cafile = b->cafile;
    bo->certfile = b->cert;
    bo->keyfile = b->key;
    bo->plugin = FDL_PLUGIN_PATH;
    bo->plugin_opts = b->kv;
    bo->n_plugin_opts = 1;
    return 0;
}

int fdl_cloud_publish_crls(fdl_ctx *ctx, char *path, size_t cap, char *err, size_t errcap)
{
    char a[FDL_PATH_MAX + 32], b[FDL_PATH_MAX + 32];
    snprintf(a, sizeof a, "%s/%s", ctx->st.pki_dir, FDL_CRL_PEM);
    snprintf(b, sizeof b, "%s/%s", ctx->factory_dir, FDL_CRL_PEM);
    fdl_crl_status cs = fdl_crl_publish(ctx->reg, ctx->cas.issuing, ctx->pki, 0, a, NULL);
    if (cs == FDL_CRL_OK && ctx->factory && ctx->cas.factory)
        cs = fdl_crl_publish(ctx->reg, ctx->cas.factory, ctx->factory, 0, b, NULL);
    if (cs != FDL_CRL_OK) {
        snprintf(err, errcap, "CRL: %s (%s)", fdl_crl_strerror(cs), fdl_crl_last_error());
        return -1;
    }
    snprintf(path, cap, "%s/crl.pem", ctx->st.broker_dir);
    const char *const srcs[2] = {a, b};
    if (fdl_concat_files_atomic(path, srcs, ctx->factory && ctx->cas.factory ? 2 : 1, 0644) != 0) {
        snprintf(err, errcap, "cannot write %s from %s", path, a);
        return -1;
    }
    return 0;
}

/* ---- revoke ------------------------------------------------------------------ */

/* The live broker's port from run.json; 0 if no run is live. */
static uint16_t live_port(const fdl_state *st)
{
    FILE *f = fopen(st->run_json, "r");
    if (!f)
        return 0;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strstr(buf, "\"port\":");
    if (!p)
        return 0;
    long v = strtol(p + 7, NULL, 10);
    return v > 0 && v < 65536 ? (uint16_t)v : 0;
}

int fdl_cloud_revoke(fdl_ctx *ctx, const char *dev, const char *reason, uint16_t port, fdl_revoke_result *out,
                     char *err, size_t errcap)
{
    memset(out, 0, sizeof *out);
    out->disconnect_ms = -1;
    uint64_t t0 = fdl_now_ns();
    fdl_reg_device d;
    fdl_reg_status rs = fdl_registry_device_get(ctx->reg, dev, &d);
    if (rs != FDL_REG_OK) {
        snprintf(err, errcap, "%s", rs == FDL_REG_ERR_NOT_FOUND ? "no such device in the registry" : fdl_reg_strerror(rs));
        return -1;
    }
    /* Order matters: the policy first (the live session loses every permission at
     * its next request), then the certificates (no new connection), then the kick. */
    if ((rs = fdl_registry_device_set_policy(ctx->reg, dev, FDL_ENROLL_POLICY_DENY, reason)) != FDL_REG_OK ||
        (rs = fdl_registry_device_revoke(ctx->reg, dev, reason, &out->certs_revoked)) != FDL_REG_OK) {
        snprintf(err, errcap, "%s (%s)", fdl_reg_strerror(rs), fdl_registry_last_error(ctx->reg));
        return -1;
    }
    out->registry_ms = (double)(fdl_now_ns() - t0) / 1e6;
    out->crl_published = fdl_cloud_publish_crls(ctx, out->crl_path, sizeof out->crl_path, out->crl_error,
                                                sizeof out->crl_error) == 0;
    if (port) {
        out->live = 1;
        char ca[FDL_PATH_MAX + 32], cert[1200], key[1200];
        snprintf(ca, sizeof ca, "%s/%s", ctx->st.pki_dir, FDL_PKI_ROOT_PEM);
        fdl_enroll_actor_paths(ctx->st.pki_dir, FDL_ACTOR_OPERATOR, cert, key, sizeof cert);
        fdl_operator_cfg oc = {.host = "127.0.0.1", .port = port, .cafile = ca, .certfile = cert, .keyfile = key};
        if (fdl_operator_kick(&oc, dev, &out->rtt_ms, out->kick_error, sizeof out->kick_error) == 0)
            out->disconnect_ms = (double)(fdl_now_ns() - t0) / 1e6;
    }
    return 0;
}

int fdl_cmd_revoke(int argc, char **argv)
{
    const char *state = fdl_default_state_dir(), *reason = "revoked by operator", *json_path = NULL;
    static const struct option opts[] = {{"state", required_argument, 0, 's'},
                                         {"reason", required_argument, 0, 'r'},
                                         {"json", required_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0}};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's': state = optarg; break;
        case 'r': reason = optarg; break;
        case 'j': json_path = optarg; break;
        case 'h':
            puts("usage: fleetdrill revoke DEVICE [--state DIR] [--reason TEXT] [--json FILE]\n"
                 "Attaches the deny-all policy, revokes every certificate of DEVICE in the registry,\n"
                 "publishes the CRL and, if a run is live, drops the device's connections now.\n"
                 "Prints the time from the request to the disconnect.");
            return 0;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "fleetdrill: revoke needs exactly one DEVICE\n");
        return FDL_EXIT_USAGE;
    }
    const char *dev = argv[optind];
    char err[1024];
    fdl_ctx ctx;
    if (fdl_ctx_open(&ctx, state, 1, err, sizeof err) != 0 || fdl_ctx_open_cloud(&ctx, 0, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: %s\n", err);
        fdl_ctx_close(&ctx);
        return FDL_EXIT_ERROR;
    }
    int rc = FDL_EXIT_ERROR;
    fdl_revoke_result rr;
    uint16_t port = live_port(&ctx.st);
    if (fdl_cloud_revoke(&ctx, dev, reason, port, &rr, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill: revoke %s: %s\n", dev, err);
        goto out;
    }
    size_t n_certs = rr.certs_revoked;
    double t_registry = rr.registry_ms, t_disconnect = rr.disconnect_ms, rtt = rr.rtt_ms;
    int crl_ok = rr.crl_published;
    const char *crl_path = rr.crl_path, *crl_err = rr.crl_error, *kick_err = rr.kick_error;
    printf("revoked %s: policy %s attached, %zu certificate%s revoked (registry %.1f ms)\n", dev,
           FDL_ENROLL_POLICY_DENY, n_certs, n_certs == 1 ? "" : "s", t_registry);
    if (crl_ok)
        printf("  CRL published: %s (read by the broker when it starts)\n", crl_path);
    else
        fprintf(stderr, "fleetdrill: warning: %s\n", crl_err);
    if (!port)
        printf("  no run is live (%s): nothing to disconnect; every later connect is refused\n", ctx.st.run_json);
    else if (t_disconnect >= 0)
        printf("  disconnected %.1f ms after the request (plugin round trip %.1f ms); later connects are refused\n",
               t_disconnect, rtt);
    else
        fprintf(stderr, "fleetdrill: could not drop the live connection: %s\n", kick_err);
    if (json_path) {
        fdl_json *j = fdl_json_new(4096);
        fdl_json_set_pretty(j, 1);
        fdl_json_obj_begin(j, NULL);
        fdl_json_str(j, "command", "revoke");
        fdl_json_str(j, "device", dev);
        fdl_json_uint(j, "certificates_revoked", n_certs);
        fdl_json_num(j, "registry_ms", t_registry);
        fdl_json_bool(j, "live", port != 0);
        fdl_json_num(j, "disconnect_ms", t_disconnect);
        fdl_json_obj_end(j);
        fdl_json_write_file(j, json_path);
        fdl_json_free(j);
    }
    rc = (port && t_disconnect < 0) ? FDL_EXIT_ERROR : FDL_EXIT_OK;
out:
    fdl_ctx_close(&ctx);
    return rc;
}
