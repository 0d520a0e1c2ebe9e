/*
 * sim/cloudrun.h — what `fleetdrill run` and `fleetdrill revoke` do with the
 * control plane: enrol the fleet in the registry (or prepare it for JITR),
 * configure the broker with the plugin, and revoke a device.
 */
#ifndef FDL_CLOUDRUN_H
#define FDL_CLOUDRUN_H

#include <stddef.h>
#include <stdint.h>

#include "sim/broker.h"
#include "sim/context.h"

typedef enum fdl_prov_mode {
    FDL_PROV_DIRECT = 0, /* certificates from the issuing CA, enrolled ACTIVE at issuance */
    FDL_PROV_JITR,       /* factory certificates, registered on first connect */
    FDL_PROV_CLAIM,      /* no certificate: the shared claim credential, then a CSR for the device's own key */
} fdl_prov_mode;

const char *fdl_prov_mode_name(fdl_prov_mode m);
int fdl_prov_mode_parse(const char *s, fdl_prov_mode *out);

/* The firmware version factory records carry (allowed by cloud/registration.lua). */
#define FDL_FACTORY_FIRMWARE "1.2.0"

/*
 * After identities exist (fdl_ctx_open_cloud done): DIRECT enrols every
 * certificate the registry does not know yet (ACTIVE, device-default policy);
 * JITR and CLAIM write the manufacturing record (sold, firmware) of devices that
 * have none, in batches, and leave their certificates unknown. *n_changed (may be
 * NULL) counts what was written. 0 or -1 with err.
 */
int fdl_cloud_prepare_fleet(fdl_ctx *ctx, uint32_t first, uint32_t n, fdl_prov_mode mode, uint32_t *n_changed,
                            char *err, size_t errcap);

/* Broker options for the fleet: TLS files, the plugin and its registry, the CRL
 * (published now). Strings live in *bufs (caller storage). 0 or -1 with err. */
typedef struct fdl_cloud_broker_bufs {
    char cafile[1200], cert[1200], key[1200], registry[1200], crl[1200];
    fdl_broker_kv kv[4];          /* [0] the registry; the rest free for the caller (ablations) */
} fdl_cloud_broker_bufs;
int fdl_cloud_broker_opts(fdl_ctx *ctx, fdl_broker_opts *bo, fdl_cloud_broker_bufs *bufs, char *err, size_t errcap);

/*
 * Publishes the CRL of the issuing CA (<pki>/crl.pem) and, if there is one, of
 * the factory CA (<pki>/factory/crl.pem), then writes both into
 * <state>/broker/crl.pem, the broker's crlfile (OpenSSL checks the CRL of the
 * leaf's issuer, so each CA that issues client certificates needs one).
 * path receives the broker file. 0 or -1 with err.
 */
int fdl_cloud_publish_crls(fdl_ctx *ctx, char *path, size_t cap, char *err, size_t errcap);

/* What fdl_cloud_revoke did, with its timings (ms from the request). */
typedef struct fdl_revoke_result {
    size_t certs_revoked;
    double registry_ms;           /* policy deny-all attached and certificates revoked */
    int crl_published;            /* 1: the CRLs were written (crl_path) */
    char crl_path[FDL_PATH_MAX + 32];
    char crl_error[512];
    int live;                     /* a broker port was given: the live connections were to be dropped */
    double disconnect_ms;         /* the plugin confirmed every connection dropped; -1 if not */
    double rtt_ms;                /* the operator's round trip to the plugin */
    char kick_error[512];
} fdl_revoke_result;

/*
 * One-button revoke, in this order: the deny-all policy (a live session loses
 * every permission at its next request), every certificate of the device revoked
 * in the registry (no new connection), the CRLs published, and — if port is not 0
 * — the operator actor asks the broker plugin on 127.0.0.1:port to drop every
 * connection of the device. Returns 0 when the registry part succeeded (out says
 * how the rest went), -1 with err otherwise (no such device, registry error).
 */
int fdl_cloud_revoke(fdl_ctx *ctx, const char *device, const char *reason, uint16_t port, fdl_revoke_result *out,
                     char *err, size_t errcap);

/* `fleetdrill revoke DEVICE [--state DIR] [--json]` */
int fdl_cmd_revoke(int argc, char **argv);

#endif
