/* sim/identity.c — device identities on disk: provision and load (see identity.h). */
#include "sim/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ecp.h>

#include "sim/alloc.h"
#include "sim/fsutil.h"

const char *fdl_profile_name(fdl_profile p)
{
    return p == FDL_PROFILE_FLASH ? "flash" : "se";
}

int fdl_profile_parse(const char *s, fdl_profile *out)
{
    if (strcmp(s, "se") == 0)
        *out = FDL_PROFILE_SE;
    else if (strcmp(s, "flash") == 0)
        *out = FDL_PROFILE_FLASH;
    else
        return -1;
    return 0;
}

static int read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    return (int)n;
}

int fdl_state_init(fdl_state *st, const char *dir)
{
    memset(st, 0, sizeof *st);
    int r = fdl_mkdir_p(dir, 0700);
    if (r)
        return r;
    char abs[PATH_MAX];
    if (!realpath(dir, abs))
        return -errno;
    if (strlen(abs) > FDL_PATH_MAX - 64)
        return -ENAMETOOLONG;
    snprintf(st->dir, sizeof st->dir, "%s", abs);
    snprintf(st->hsm_conf, sizeof st->hsm_conf, "%s/hsm/softhsm2.conf", abs);
    snprintf(st->pki_dir, sizeof st->pki_dir, "%s/pki", abs);
    snprintf(st->devices_dir, sizeof st->devices_dir, "%s/devices", abs);
    snprintf(st->broker_dir, sizeof st->broker_dir, "%s/broker", abs);
    snprintf(st->run_json, sizeof st->run_json, "%s/run.json", abs);
    snprintf(st->registry, sizeof st->registry, "%s/registry.db", abs);
    char tokens[FDL_PATH_MAX];
    snprintf(tokens, sizeof tokens, "%s/hsm/tokens", abs);
    if ((r = fdl_mkdir_p(tokens, 0700)) || (r = fdl_mkdir_p(st->pki_dir, 0700)) || (r = fdl_mkdir_p(st->devices_dir, 0700)) ||
        (r = fdl_mkdir_p(st->broker_dir, 0700)))
        return r;
    if (access(st->hsm_conf, F_OK) != 0) {
        char conf[FDL_PATH_MAX + 128];
        int n = snprintf(conf, sizeof conf,
                         "# SoftHSM2 configuration for this fleetdrill state directory.\n"
                         "directories.tokendir = %s\n"
                         "objectstore.backend = file\n"
                         "log.level = ERROR\n"
                         "slots.removable = false\n",
                         tokens);
        if ((r = fdl_write_file_atomic(st->hsm_conf, conf, (size_t)n, 0600)))
            return r;
    }
    return 0;
}

void fdl_device_id(uint32_t index, char *buf, size_t cap)
{
    snprintf(buf, cap, "dev-%06u", index);
}

void fdl_identity_path(const fdl_state *st, const char *id, const char *file, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/%s/%s", st->devices_dir, id, file);
}

int fdl_identity_exists(const fdl_state *st, const char *id)
{
    char p[FDL_PATH_MAX];
    fdl_identity_path(st, id, "cert.pem", p, sizeof p);
    return access(p, F_OK) == 0;
}

int fdl_identity_profile(const fdl_state *st, const char *id, fdl_profile *out)
{
    char p[FDL_PATH_MAX], buf[16];
    fdl_identity_path(st, id, "profile", p, sizeof p);
    if (read_small(p, buf, sizeof buf) < 0)
        return -1;
    return fdl_profile_parse(buf, out);
}

static void random_hex(int (*f_rng)(void *, unsigned char *, size_t), void *p_rng, char *out, size_t nbytes)
{
    unsigned char raw[32];
    static const char hex[] = "0123456789abcdef";
    f_rng(p_rng, raw, nbytes);
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = 0;
    fdl_wipe(raw, sizeof raw);
}

int fdl_identity_provision(const fdl_state *st, fdl_se_module *se, fdl_pki *pki, const char *id,
                           fdl_profile profile, int (*f_rng)(void *, unsigned char *, size_t), void *p_rng,
                           char *err, size_t errcap)
{
    int ret = -1;
    char dir[FDL_PATH_MAX], path[FDL_PATH_MAX];
    char pin[40] = "", so_pin[40] = "";
    fdl_se_key *key = NULL;
    mbedtls_pk_context soft;
    mbedtls_pk_init(&soft);
    mbedtls_pk_context *pub = NULL;

    int made_key = 0;
    if (fdl_identity_exists(st, id))
        return 0;
    snprintf(dir, sizeof dir, "%s/%s", st->devices_dir, id);
    if (fdl_mkdir_p(dir, 0700) != 0) {
        snprintf(err, errcap, "%s: cannot create %s: %s", id, dir, strerror(errno));
        goto cleanup;
    }
    fdl_identity_path(st, id, "profile", path, sizeof path);
    const char *pname = fdl_profile_name(profile);
    if (fdl_write_file_atomic(path, pname, strlen(pname), 0644) != 0) {
        snprintf(err, errcap, "%s: cannot write %s", id, path);
        goto cleanup;
    }

    if (profile == FDL_PROFILE_SE) {
        /* The PIN file is written before the token exists, so a run killed in
         * between can always log in to what it created. */
        fdl_identity_path(st, id, "pin", path, sizeof path);
        if (read_small(path, pin, sizeof pin) <= 0) {
            random_hex(f_rng, p_rng, pin, 8);
            if (fdl_write_file_atomic(path, pin, strlen(pin), 0600) != 0) {
                snprintf(err, errcap, "%s: cannot write %s", id, path);
                goto cleanup;
            }
        }
        if (!fdl_se_token_exists(se, id)) {
            /* The SO PIN is not kept: nobody re-initialises a device's secure element. */
            random_hex(f_rng, p_rng, so_pin, 8);
            fdl_se_status s = fdl_se_token_create(se, id, so_pin, pin);
            if (s != FDL_SE_OK) {
                snprintf(err, errcap, "%s: token: %s", id, fdl_se_strerror(s));
                goto cleanup;
            }
        }
        fdl_se_status s = fdl_se_key_open(se, id, pin, FDL_DEVICE_KEY_LABEL, &key);
        if (s == FDL_SE_ERR_NOT_FOUND) {
            s = fdl_se_keygen(se, id, pin, FDL_DEVICE_KEY_LABEL, &key);
            made_key = 1;
        }
        if (s != FDL_SE_OK) {
            snprintf(err, errcap, "%s: key: %s", id, fdl_se_strerror(s));
            goto cleanup;
        }
        pub = fdl_se_key_pk(key);
    } else {
        unsigned char pem[1024];
        fdl_identity_path(st, id, "key.pem", path, sizeof path);
        if (access(path, F_OK) == 0) {
            /* Made by an earlier run (claim mode, or killed before the certificate). */
            if (mbedtls_pk_parse_keyfile(&soft, path, NULL, f_rng, p_rng) != 0) {
                snprintf(err, errcap, "%s: cannot read key %s", id, path);
                goto cleanup;
            }
            pub = &soft;
            goto certify;
        }
        if (mbedtls_pk_setup(&soft, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)) != 0 ||
            mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(soft), f_rng, p_rng) != 0 ||
            mbedtls_pk_write_key_pem(&soft, pem, sizeof pem) != 0) {
            snprintf(err, errcap, "%s: software key generation failed", id);
            goto cleanup;
        }
        int w = fdl_write_file_atomic(path, pem, strlen((char *)pem), 0600);
        fdl_wipe(pem, sizeof pem);
        if (w != 0) {
            snprintf(err, errcap, "%s: cannot write %s", id, path);
            goto cleanup;
        }
        made_key = 1;
        pub = &soft;
    }

certify:
    if (!pki) {
        /* Key only: the certificate comes later (provisioning by claim). */
        ret = made_key;
        goto cleanup;
    }
    fdl_pki_leaf_req req = {.device_id = id, .public_key = pub};
    fdl_identity_path(st, id, "cert.pem", path, sizeof path);
    fdl_pki_status ps = fdl_pki_issue_file(pki, &req, path, NULL);
    if (ps != FDL_PKI_OK) {
        snprintf(err, errcap, "%s: certificate: %s (%s)", id, fdl_pki_strerror(ps), fdl_pki_last_error());
        goto cleanup;
    }
    ret = 1;
cleanup:
    fdl_wipe(pin, sizeof pin);
    fdl_wipe(so_pin, sizeof so_pin);
    fdl_se_key_free(key);
    mbedtls_pk_free(&soft);
    return ret;
}

int fdl_identity_load(const fdl_state *st, fdl_se_module *se, const char *id, fdl_identity *out,
                      int (*f_rng)(void *, unsigned char *, size_t), void *p_rng, char *err, size_t errcap)
{
    return fdl_identity_open(st, se, id, 0, out, f_rng, p_rng, err, errcap);
}

int fdl_identity_open(const fdl_state *st, fdl_se_module *se, const char *id, unsigned flags, fdl_identity *out,
                      int (*f_rng)(void *, unsigned char *, size_t), void *p_rng, char *err, size_t errcap)
{
    char path[FDL_PATH_MAX], pin[40] = "";
    memset(out, 0, sizeof *out);
    mbedtls_x509_crt_init(&out->cert);
    mbedtls_pk_init(&out->soft_key);
    snprintf(out->id, sizeof out->id, "%s", id);
    if (fdl_identity_profile(st, id, &out->profile) != 0) {
        snprintf(err, errcap, "%s: no identity (run provisioning first)", id);
        goto fail;
    }
    fdl_identity_path(st, id, "cert.pem", path, sizeof path);
    if ((flags & FDL_IDENTITY_CERT_OPTIONAL) && access(path, F_OK) != 0) {
        out->has_cert = 0;
    } else if (mbedtls_x509_crt_parse_file(&out->cert, path) != 0) {
        snprintf(err, errcap, "%s: cannot parse %s", id, path);
        goto fail;
    } else {
        out->has_cert = 1;
    }
    if (out->profile == FDL_PROFILE_SE) {
        fdl_identity_path(st, id, "pin", path, sizeof path);
        if (read_small(path, pin, sizeof pin) <= 0) {
            snprintf(err, errcap, "%s: cannot read %s", id, path);
            goto fail;
        }
        fdl_se_status s = fdl_se_key_open(se, id, pin, FDL_DEVICE_KEY_LABEL, &out->se_key);
        fdl_wipe(pin, sizeof pin);
        if (s != FDL_SE_OK) {
            snprintf(err, errcap, "%s: secure element: %s", id, fdl_se_strerror(s));
            goto fail;
        }
        out->key = fdl_se_key_pk(out->se_key);
    } else {
        fdl_identity_path(st, id, "key.pem", path, sizeof path);
        if (mbedtls_pk_parse_keyfile(&out->soft_key, path, NULL, f_rng, p_rng) != 0) {
            snprintf(err, errcap, "%s: cannot read key %s", id, path);
            goto fail;
        }
        out->key = &out->soft_key;
    }
    return 0;
fail:
    fdl_identity_free(out);
    return -1;
}

void fdl_identity_free(fdl_identity *idn)
{
    if (!idn)
        return;
    mbedtls_x509_crt_free(&idn->cert);
    mbedtls_pk_free(&idn->soft_key);
    fdl_se_key_free(idn->se_key);
    idn->se_key = NULL;
    idn->key = NULL;
}
