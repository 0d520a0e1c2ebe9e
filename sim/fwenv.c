/* sim/fwenv.c — signing keys, factory images and artifacts of a simulated fleet (see fwenv.h). */
#include "sim/fwenv.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/sha256.h>

#include "cloud/artifacts.h"
#include "cloud/fwsign.h"
#include "sim/alloc.h"
#include "sim/fsutil.h"

/* The factory's tiers, in the order they are made. */
static const unsigned k_factory_tiers[] = {FDL_TIER_BOOTLOADER, FDL_TIER_KEYRING, FDL_TIER_KERNEL,
                                           FDL_TIER_APPLICATION};
/* Payload bytes of the factory bootloader and kernel: enough to hash, small enough
 * that booting 10,000 devices stays cheap. */
#define FACTORY_PAYLOAD 4096u

struct fdl_fwenv {
    fdl_ctx *ctx;
    pthread_mutex_t mu;            /* the offline token and the rng */
    fdl_fwsign *fs;
    fdl_fwsign_jobs *jobs;
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    int drbg_ok;
    char dir[FDL_PATH_MAX];
    char factory_dir[FDL_PATH_MAX + 16];
    char images_dir[FDL_PATH_MAX + 16];
    char artifacts_dir[FDL_PATH_MAX + 16];
    uint8_t root_pub[FDL_FW_PUB_LEN];
    uint8_t *image[FDL_TIER_COUNT];
    size_t image_len[FDL_TIER_COUNT];
    fdl_fw_factory factory;
};

/* Builds and signs one image with the offline token (lock held). */
static int build_locked(fdl_fwenv *e, const fdl_fwenv_image *spec, uint8_t **img, size_t *len, char *err,
                        size_t errcap)
{
    fdl_fwsign_build b = {.tier = spec->tier, .version = spec->version, .counter = spec->counter,
                          .hw_rev = spec->hw_rev ? spec->hw_rev : FDL_FWENV_HW_REV, .behaviour = spec->behaviour,
                          .size = spec->size ? spec->size : FDL_FWENV_IMAGE_SIZE};
    uint8_t *out = NULL;
    size_t n = 0;
    fdl_fwsign_status st;
    if (spec->tier == FDL_TIER_KEYRING) {
        st = fdl_fwsign_keyring_image(e->fs, spec->version, spec->counter, &out, &n);
    } else {
        st = fdl_fwsign_build_image(&b, &out, &n);
        if (st == FDL_FWSIGN_OK && spec->sign == FDL_FWENV_SIGN_TIER)
            st = fdl_fwsign_sign_image(e->fs, out, n, 0, spec->generation, 0, NULL);
        else if (st == FDL_FWSIGN_OK && spec->sign == FDL_FWENV_SIGN_ROLE)
            st = fdl_fwsign_sign_image(e->fs, out, n, spec->role, spec->generation, FDL_FWSIGN_ANY_STATE, NULL);
        else if (st == FDL_FWSIGN_OK && spec->sign == FDL_FWENV_SIGN_ROGUE) {
            mbedtls_pk_context pk;
            mbedtls_pk_init(&pk);
            if (!e->drbg_ok || mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
                mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk), mbedtls_ctr_drbg_random,
                                    &e->drbg) != 0)
                st = FDL_FWSIGN_ERR_CRYPTO;
            else
                st = fdl_fwsign_sign_image_pk(out, n, &pk, mbedtls_ctr_drbg_random, &e->drbg);
            mbedtls_pk_free(&pk);
        }
    }
    if (st != FDL_FWSIGN_OK) {
        snprintf(err, errcap, "image of tier %s: %s (%s)", fdl_fw_tier_name(spec->tier), fdl_fwsign_strerror(st),
                 fdl_fwsign_last_error());
        fdl_free(out);
        return -1;
    }
    *img = out;
    *len = n;
    return 0;
}

/* The factory images: loaded from images/, made and kept on first use. */
static int factory_images(fdl_fwenv *e, char *err, size_t errcap)
{
    uint32_t v1 = 0;
    fdl_fw_version_parse(FDL_FWENV_FACTORY_VERSION, &v1);
    for (size_t i = 0; i < sizeof k_factory_tiers / sizeof *k_factory_tiers; i++) {
        unsigned t = k_factory_tiers[i];
        char path[FDL_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/factory-%s.img", e->images_dir, fdl_fw_tier_name(t));
        char why[FDL_PATH_MAX + 128];
        if (fdl_read_file(path, FDL_FW_HDR_LEN + FDL_FW_PAYLOAD_MAX, 0, &e->image[t], &e->image_len[t], why,
                          sizeof why) == FDL_READ_OK) {
            if (e->image_len[t] > 0)
                continue;
            fdl_free(e->image[t]);   /* an empty file (a crash before it was written): make it again */
            e->image[t] = NULL;
        }
        fdl_fwenv_image spec = {.tier = t, .version = v1, .counter = FDL_FWENV_FACTORY_COUNTER,
                                .size = t == FDL_TIER_APPLICATION ? FDL_FWENV_IMAGE_SIZE : FACTORY_PAYLOAD};
        if (t == FDL_TIER_KEYRING)
            spec.counter = 0;   /* the registry's keyring counter */
        if (build_locked(e, &spec, &e->image[t], &e->image_len[t], err, errcap) != 0)
            return -1;
        if (fdl_write_file_atomic(path, e->image[t], e->image_len[t], 0644) != 0) {
            snprintf(err, errcap, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int fdl_fwenv_open(fdl_ctx *ctx, int debug_disabled, fdl_fwenv **out, char *err, size_t errcap)
{
    *out = NULL;
    fdl_fwenv *e = fdl_calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    e->ctx = ctx;
    pthread_mutex_init(&e->mu, NULL);
    mbedtls_entropy_init(&e->ent);
    mbedtls_ctr_drbg_init(&e->drbg);
    e->drbg_ok = mbedtls_ctr_drbg_seed(&e->drbg, mbedtls_entropy_func, &e->ent,
                                       (const unsigned char *)"fleetdrill-fwenv", 16) == 0;
    snprintf(e->dir, sizeof e->dir, "%s/firmware", ctx->st.dir);
    snprintf(e->factory_dir, sizeof e->factory_dir, "%s/factory", e->dir);
    snprintf(e->images_dir, sizeof e->images_dir, "%s/images", e->dir);
    snprintf(e->artifacts_dir, sizeof e->artifacts_dir, "%s/artifacts", e->dir);
    if (fdl_mkdir_p(e->images_dir, 0755) != 0 || fdl_mkdir_p(e->artifacts_dir, 0755) != 0 ||
        fdl_mkdir_p(e->factory_dir, 0755) != 0) {
        snprintf(err, errcap, "%s: cannot create its directories", e->dir);
        goto fail;
    }
    fdl_fwsign_status st = fdl_fwsign_open(ctx->se, e->dir, &e->fs);
    if (st == FDL_FWSIGN_OK)
        st = fdl_fwsign_setup(e->fs);
    if (st != FDL_FWSIGN_OK) {
        snprintf(err, errcap, "signing keys in %s: %s (%s)", e->dir, fdl_fwsign_strerror(st), fdl_fwsign_last_error());
        goto fail;
    }
    st = fdl_fwsign_jobs_open(ctx->se, e->dir, &e->jobs);
    if (st != FDL_FWSIGN_OK) {
        snprintf(err, errcap, "job-signing key: %s (%s)", fdl_fwsign_strerror(st), fdl_fwsign_last_error());
        goto fail;
    }
    const fdl_fwsign_key *root = fdl_fwsign_find(e->fs, FDL_FWSIGN_ROLE_ROOT, 0);
    if (!root) {
        snprintf(err, errcap, "signing keys in %s: no current root key", e->dir);
        goto fail;
    }
    memcpy(e->root_pub, root->pub, FDL_FW_PUB_LEN);
    if (factory_images(e, err, errcap) != 0)
        goto fail;
    fdl_fw_factory *f = &e->factory;
    f->factory_dir = e->factory_dir;
    for (unsigned t = 0; t < FDL_TIER_COUNT; t++) {
        f->image[t] = e->image[t];
        f->image_len[t] = e->image_len[t];
    }
    f->root_pub = e->root_pub;
    memset(f->root_key_hash, 0, sizeof f->root_key_hash);   /* that of root_pub */
    f->secure_boot = true;
    f->debug_disabled = debug_disabled != 0;
    f->hw_rev = FDL_FWENV_HW_REV;
    /* Validated and hashed once here, not once per device made. */
    if (fdl_fw_factory_prepare(f, err, errcap) != 0)
        goto fail;
    *out = e;
    return 0;
fail:
    fdl_fwenv_free(e);
    return -1;
}

void fdl_fwenv_free(fdl_fwenv *e)
{
    if (!e)
        return;
    fdl_fwsign_jobs_free(e->jobs);
    fdl_fwsign_free(e->fs);
    for (unsigned t = 0; t < FDL_TIER_COUNT; t++)
        fdl_free(e->image[t]);
    mbedtls_ctr_drbg_free(&e->drbg);
    mbedtls_entropy_free(&e->ent);
    pthread_mutex_destroy(&e->mu);
    fdl_free(e);
}

const fdl_fw_factory *fdl_fwenv_factory(const fdl_fwenv *e)
{
    return &e->factory;
}

const uint8_t *fdl_fwenv_factory_image(const fdl_fwenv *e, unsigned tier, size_t *len)
{
    if (tier >= FDL_TIER_COUNT || !e->image[tier])
        return NULL;
    *len = e->image_len[tier];
    return e->image[tier];
}

const char *fdl_fwenv_dir(const fdl_fwenv *e)
{
    return e->dir;
}

const char *fdl_fwenv_artifacts_dir(const fdl_fwenv *e)
{
    return e->artifacts_dir;
}

static int job_sign(void *ud, const uint8_t *doc, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    fdl_fwenv *e = ud;
    return fdl_fwsign_jobs_sign(e->jobs, doc, len, out, cap, out_len) == FDL_FWSIGN_OK ? 0 : -1;
}

fdl_jobs_signer fdl_fwenv_job_signer(fdl_fwenv *e)
{
    return (fdl_jobs_signer){.sign = job_sign, .ud = e};
}

int fdl_fwenv_build(fdl_fwenv *e, const fdl_fwenv_image *spec, uint8_t **img, size_t *len, char *err, size_t errcap)
{
    pthread_mutex_lock(&e->mu);
    int rc = build_locked(e, spec, img, len, err, errcap);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

int fdl_fwenv_upload(fdl_fwenv *e, const char *id, const uint8_t *img, size_t len, uint8_t sha256[32], char *err,
                     size_t errcap)
{
    if (fdl_artifacts_put(e->artifacts_dir, id, img, len, err, errcap) != 0)
        return -1;
    if (sha256)
        mbedtls_sha256(img, len, sha256, 0);
    return 0;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int fdl_fwenv_factory_reset(const fdl_state *st, uint32_t first, uint32_t n, char *err, size_t errcap)
{
    for (uint32_t i = 0; i < n; i++) {
        char id[64], dir[FDL_PATH_MAX + 64];
        struct stat sb;
        fdl_device_id(first + i, id, sizeof id);
        fdl_identity_path(st, id, "fw", dir, sizeof dir);
        if (lstat(dir, &sb) != 0)
            continue;
        if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0) {
            snprintf(err, errcap, "%s: cannot remove: %s", dir, strerror(errno));
            return -1;
        }
    }
    return 0;
}
