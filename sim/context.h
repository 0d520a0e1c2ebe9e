/*
 * sim/context.h — what every command needs: the state directory, the PKCS#11
 * module (SoftHSM2 with this state's configuration), a random generator and,
 * when asked, the fleet CA (created on first use).
 */
#ifndef FDL_CONTEXT_H
#define FDL_CONTEXT_H

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>

#include "cloud/pki.h"
#include "devices/se.h"
#include "sim/identity.h"

typedef struct fdl_ctx {
    fdl_state st;
    fdl_se_module *se;
    fdl_pki *pki;               /* NULL unless opened with want_pki */
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    char openssl_cnf[FDL_PATH_MAX];   /* OpenSSL config that loads the pkcs11 engine for this state */
} fdl_ctx;

/* Opens everything; want_pki: 1 = set up the CA if missing and open it. 0 or -1 with err. */
int fdl_ctx_open(fdl_ctx *c, const char *state_dir, int want_pki, char *err, size_t errcap);
void fdl_ctx_close(fdl_ctx *c);

/* Default state directory: $FLEETDRILL_STATE or ./.fleetdrill */
const char *fdl_default_state_dir(void);

#endif
