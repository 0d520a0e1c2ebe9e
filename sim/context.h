/*
 * sim/context.h — what every command needs: the state directory, the PKCS#11
 * module (SoftHSM2 with this state's configuration), a random generator and,
 * when asked, the fleet CA (created on first use).
 */
#ifndef FDL_CONTEXT_H
#define FDL_CONTEXT_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include "cloud/enroll.h"
#include "cloud/pki.h"
#include "cloud/registry.h"
#include "devices/se.h"
#include "sim/identity.h"

typedef struct fdl_ctx {
    fdl_state st;
    fdl_se_module *se;
    fdl_pki *pki;               /* NULL unless opened with want_pki */
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    char openssl_cnf[FDL_PATH_MAX];   /* OpenSSL config that loads the pkcs11 engine for this state */
    fdl_registry *reg;          /* NULL unless fdl_ctx_open_cloud */
    fdl_enroll_cas cas;
    fdl_pki *factory;           /* the factory CA (JITR), NULL unless set up */
    char factory_dir[FDL_PATH_MAX];
} fdl_ctx;

/* Opens everything; want_pki: 1 = set up the CA if missing and open it. 0 or -1 with err. */
int fdl_ctx_open(fdl_ctx *c, const char *state_dir, int want_pki, char *err, size_t errcap);
void fdl_ctx_close(fdl_ctx *c);

/*
 * The control plane (after fdl_ctx_open with want_pki): opens <state>/registry.db,
 * registers the CAs, puts the missing policies and makes the cloud actors'
 * identities. want_factory: 1 = also set up the factory CA (its own token,
 * <state>/pki/factory) for JITR; an existing factory CA is always registered.
 * 0 or -1 with err.
 */
int fdl_ctx_open_cloud(fdl_ctx *c, int want_factory, char *err, size_t errcap);

/*
 * The control plane from scratch: closes the registry (and the factory CA), deletes
 * <state>/registry.db with its WAL files, and opens the cloud again
 * (fdl_ctx_open_cloud): the CAs and cloud actors are registered anew, no device
 * is known. Identities and CAs on disk are kept. For drills, which each start
 * from a clean registry. 0 or -1 with err.
 */
int fdl_ctx_reset_cloud(fdl_ctx *c, int want_factory, char *err, size_t errcap);

/* <state>/broker/cafile.pem: every CA the broker's TLS layer accepts client
 * certificates from (fleet chain, then the factory chain if there is one). */
int fdl_ctx_write_broker_cafile(const fdl_ctx *c, char *path, size_t cap);

/* Default state directory: $FLEETDRILL_STATE or ./.fleetdrill */
const char *fdl_default_state_dir(void);

#endif
