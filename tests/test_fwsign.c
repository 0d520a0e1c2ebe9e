/*
 * tests/test_fwsign.c — firmware signing (cloud/fwsign.h) against a real SoftHSM2:
 * keys generated inside the offline and jobs tokens and never extractable, image
 * and keyring signing, tier separation end to end, rotation with a dual-trust
 * window, revocation, the online job signer, keys.json integrity, test images.
 * Each test gets its own token directory and module.
 */
#include "fwtest.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "cloud/fwsign.h"
#include "fdl_buildcfg.h"
#include "sim/alloc.h"

struct fx {
    char dir[256];
    char conf[512];
    char fwdir[512];
    fdl_se_module *m;
    fdl_fwsign *fs;
};

static int fx_setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof f);
    fdl_test_mkdtemp("fwsign", f.dir, sizeof f.dir);
    fdl_test_softhsm_conf(f.dir, f.conf, sizeof f.conf);
    snprintf(f.fwdir, sizeof f.fwdir, "%s/firmware", f.dir);
    if (fdl_se_module_open(FDL_SOFTHSM2_MODULE, f.conf, &f.m) != FDL_SE_OK)
        return -1;
    if (fdl_fwsign_open(f.m, f.fwdir, &f.fs) != FDL_FWSIGN_OK || fdl_fwsign_setup(f.fs) != FDL_FWSIGN_OK) {
        fprintf(stderr, "fwsign setup: %s\n", fdl_fwsign_last_error());
        return -1;
    }
    *state = &f;
    return 0;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;
    fdl_fwsign_free(f->fs);
    fdl_se_module_free(f->m);
    fdl_test_rmrf(f->dir);
    return 0;
}

#define ROLES_N 6
static const unsigned ROLES[ROLES_N] = {FDL_FWSIGN_ROLE_ROOT, FDL_TIER_KERNEL,  FDL_TIER_APPLICATION,
                                        FDL_TIER_MODULES,     FDL_TIER_CONFIG,  FDL_FWSIGN_ROLE_JOBS};

/* An unsigned test image (fdl_free). */
static uint8_t *build(unsigned tier, const char *ver, uint32_t counter, size_t *len)
{
    fdl_fwsign_build b = {.tier = tier, .counter = counter, .size = 1000};
    uint8_t *img = NULL;
    assert_int_equal(fdl_fw_version_parse(ver, &b.version), 0);
    assert_int_equal(fdl_fwsign_build_image(&b, &img, len), FDL_FWSIGN_OK);
    return img;
}

/* The keyring image the registry makes now, checked like the boot ROM would
 * (signer = the root key whose hash is fused), parsed into *kr. */
static void current_keyring(struct fx *f, fdl_keyring *kr, uint32_t *counter)
{
    uint8_t *img = NULL, fused[32], id[FDL_FW_KEYID_LEN];
    size_t len = 0;
    fdl_fw_hdr h;
    const uint8_t *payload;
    assert_int_equal(fdl_fwsign_keyring_image(f->fs, 0, 0, &img, &len), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwimage_parse(img, len, &h, &payload), FDL_FW_OK);
    assert_int_equal(h.tier, FDL_TIER_KEYRING);
    assert_int_equal(fdl_fwsign_root_hash(f->fs, fused), FDL_FWSIGN_OK);
    const fdl_fwsign_key *root = fdl_fwsign_find(f->fs, FDL_FWSIGN_ROLE_ROOT, 0);
    assert_non_null(root);
    uint8_t h2[32];
    fdl_fw_key_hash(root->pub, h2);
    assert_memory_equal(h2, fused, 32);
    fdl_fw_key_id(root->pub, id);
    assert_memory_equal(h.key_id, id, sizeof id);
    assert_int_equal(fdl_fwimage_verify_sig(&h, root->pub), FDL_FW_OK);
    assert_int_equal(fdl_keyring_parse(payload, h.length, kr), FDL_KR_OK);
    if (counter)
        *counter = h.counter;
    fdl_free(img);
}

static void read_user_pin(struct fx *f, const char *token, char *pin, size_t cap)
{
    char path[700], line[256];
    snprintf(path, sizeof path, "%s/%s.pin", f->fwdir, token);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    pin[0] = '\0';
    while (fgets(line, sizeof line, fp))
        if (!strncmp(line, "user_pin=", 9))
            snprintf(pin, cap, "%.*s", (int)strcspn(line + 9, "\n"), line + 9);
    fclose(fp);
    assert_true(strlen(pin) >= 4);
}

static void assert_bool_attr(fdl_se_key *k, unsigned long type, CK_BBOOL want)
{
    CK_BBOOL v = 0xff;
    unsigned long len = sizeof v;
    assert_int_equal(fdl_se_key_get_private_attr(k, type, &v, &len), CKR_OK);
    assert_int_equal(v, want);
}

/* ---- tests -------------------------------------------------------------------------- */

static void setup_makes_one_key_per_role(void **state)
{
    struct fx *f = *state;
    assert_int_equal(fdl_fwsign_count(f->fs), ROLES_N);
    for (size_t i = 0; i < ROLES_N; i++) {
        const fdl_fwsign_key *e = fdl_fwsign_find(f->fs, ROLES[i], 0);
        assert_non_null(e);
        assert_int_equal(e->generation, 1);
        assert_int_equal(e->state, FDL_FWKEY_CURRENT);
        assert_string_equal(e->token, ROLES[i] == FDL_FWSIGN_ROLE_JOBS ? "fdl-jobs" : "fdl-signing");
        assert_true(fdl_fw_pub_valid(e->pub));
        assert_ptr_equal(fdl_fwsign_find_id(f->fs, e->key_id), e);
        for (size_t j = 0; j < i; j++) /* distinct keys */
            assert_memory_not_equal(e->pub, fdl_fwsign_find(f->fs, ROLES[j], 0)->pub, FDL_FW_PUB_LEN);
    }
    uint32_t counter = fdl_fwsign_keyring_counter(f->fs);
    assert_true(counter >= 1);
    /* Idempotent, and persistent: a second setup and a fresh open see the same keys. */
    assert_int_equal(fdl_fwsign_setup(f->fs), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_count(f->fs), ROLES_N);
    assert_int_equal(fdl_fwsign_keyring_counter(f->fs), counter);
    fdl_fwsign *again = NULL;
    assert_int_equal(fdl_fwsign_open(NULL, f->fwdir, &again), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_count(again), ROLES_N);
    for (size_t i = 0; i < ROLES_N; i++)
        assert_memory_equal(fdl_fwsign_key_at(again, i), fdl_fwsign_key_at(f->fs, i), sizeof(fdl_fwsign_key));
    assert_int_equal(fdl_fwsign_keyring_counter(again), counter);
    /* Read only: no token operations. */
    assert_int_equal(fdl_fwsign_setup(again), FDL_FWSIGN_ERR_ARG);
    assert_int_equal(fdl_fwsign_rotate(again, FDL_TIER_KERNEL, NULL), FDL_FWSIGN_ERR_ARG);
    fdl_fwsign_free(again);
}

/* The signing keys are generated inside the tokens and can never be read out. */
static void keys_never_leave_the_token(void **state)
{
    struct fx *f = *state;
    char sign_pin[64], jobs_pin[64];
    read_user_pin(f, "fdl-signing", sign_pin, sizeof sign_pin);
    read_user_pin(f, "fdl-jobs", jobs_pin, sizeof jobs_pin);
    for (size_t i = 0; i < ROLES_N; i++) {
        const fdl_fwsign_key *e = fdl_fwsign_find(f->fs, ROLES[i], 0);
        const char *pin = ROLES[i] == FDL_FWSIGN_ROLE_JOBS ? jobs_pin : sign_pin;
        fdl_se_key *k = NULL;
        assert_int_equal(fdl_se_key_open(f->m, e->token, pin, e->label, &k), FDL_SE_OK);
        assert_bool_attr(k, CKA_TOKEN, CK_TRUE);
        assert_bool_attr(k, CKA_PRIVATE, CK_TRUE);
        assert_bool_attr(k, CKA_SENSITIVE, CK_TRUE);
        assert_bool_attr(k, CKA_EXTRACTABLE, CK_FALSE);
        assert_bool_attr(k, CKA_ALWAYS_SENSITIVE, CK_TRUE);   /* sensitive since generation */
        assert_bool_attr(k, CKA_NEVER_EXTRACTABLE, CK_TRUE);  /* never imported, never exportable */
        unsigned long len = 0;
        assert_int_equal(fdl_se_key_get_private_attr(k, CKA_VALUE, NULL, &len), CKR_ATTRIBUTE_SENSITIVE);
        unsigned char value[128];
        len = sizeof value;
        assert_int_equal(fdl_se_key_get_private_attr(k, CKA_VALUE, value, &len), CKR_ATTRIBUTE_SENSITIVE);
        fdl_se_key_free(k);
    }
    /* The job service's token holds the jobs key only, and the offline token no jobs key. */
    fdl_se_key *k = NULL;
    assert_int_equal(fdl_se_key_open(f->m, "fdl-jobs", jobs_pin, "application-g1", &k), FDL_SE_ERR_NOT_FOUND);
    assert_int_equal(fdl_se_key_open(f->m, "fdl-jobs", jobs_pin, "root-g1", &k), FDL_SE_ERR_NOT_FOUND);
    assert_int_equal(fdl_se_key_open(f->m, "fdl-signing", sign_pin, "jobs-g1", &k), FDL_SE_ERR_NOT_FOUND);
    /* ... and the two tokens have different PINs. */
    assert_string_not_equal(sign_pin, jobs_pin);
    assert_int_not_equal(fdl_se_key_open(f->m, "fdl-signing", jobs_pin, "root-g1", &k), FDL_SE_OK);
    /* Neither is the CA token. */
    assert_false(fdl_se_token_exists(f->m, "fleetdrill-ca"));
}

/* Images signed in the token verify through the registry's keyring; a key of one tier cannot sign another. */
static void sign_and_verify_through_keyring(void **state)
{
    struct fx *f = *state;
    fdl_keyring kr;
    fdl_fw_hdr h;
    const fdl_fwsign_key *used = NULL;
    current_keyring(f, &kr, NULL);
    assert_int_equal(kr.n, 5); /* kernel, application, modules, config, jobs */
    for (unsigned tier = FDL_TIER_KERNEL; tier <= FDL_TIER_CONFIG; tier++) {
        for (unsigned role = FDL_TIER_KERNEL; role <= FDL_TIER_CONFIG; role++) {
            size_t len;
            uint8_t *img = build(tier, "1.0.0", 1, &len);
            assert_int_equal(fdl_fwsign_sign_image(f->fs, img, len, role, 0, 0, &used), FDL_FWSIGN_OK);
            assert_int_equal(used->role, role);
            assert_int_equal(fdl_fwimage_parse(img, len, &h, NULL), FDL_FW_OK);
            assert_int_equal(fdl_fwimage_verify_sig(&h, used->pub), FDL_FW_OK);
            assert_int_equal(fdl_keyring_verify_image(&kr, &h), role == tier ? FDL_FW_OK : FDL_FW_ERR_KEY_UNKNOWN);
            fdl_free(img);
        }
    }
    /* role 0 = the tier's own; bootloader and keyring images take the root key. */
    size_t len;
    uint8_t *img = build(FDL_TIER_BOOTLOADER, "1.0.0", 1, &len);
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img, len, 0, 0, 0, &used), FDL_FWSIGN_OK);
    assert_int_equal(used->role, FDL_FWSIGN_ROLE_ROOT);
    assert_int_equal(fdl_fwimage_parse(img, len, &h, NULL), FDL_FW_OK);
    assert_int_equal(fdl_fwimage_verify_sig(&h, fdl_fwsign_find(f->fs, FDL_FWSIGN_ROLE_ROOT, 0)->pub), FDL_FW_OK);
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    /* The jobs key signs an image only on purpose, and no device takes it. */
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img, len, FDL_FWSIGN_ROLE_JOBS, 0, 0, NULL), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwimage_parse(img, len, &h, NULL), FDL_FW_OK);
    h.tier = FDL_TIER_APPLICATION;
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    /* A malformed image is refused before the token is asked. */
    img[len - 1] ^= 1;
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img, len, 0, 0, 0, NULL), FDL_FWSIGN_ERR_IMAGE);
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img, len - 1, 0, 0, 0, NULL), FDL_FWSIGN_ERR_IMAGE);
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img, 10, 0, 0, 0, NULL), FDL_FWSIGN_ERR_IMAGE);
    img[len - 1] ^= 1;
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img, len, 9, 0, 0, NULL), FDL_FWSIGN_ERR_ARG);
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img, len, FDL_TIER_KERNEL, 7, 0, NULL), FDL_FWSIGN_ERR_NOT_FOUND);
    fdl_free(img);
}

static void rotation_dual_trust(void **state)
{
    struct fx *f = *state;
    fdl_keyring old_kr, win_kr, new_kr;
    fdl_fw_hdr h;
    uint32_t c0, c1, c2;
    const fdl_fwsign_key *made = NULL;
    current_keyring(f, &old_kr, &c0);
    uint8_t g1_id[FDL_FW_KEYID_LEN];
    memcpy(g1_id, fdl_fwsign_find(f->fs, FDL_TIER_APPLICATION, 0)->key_id, sizeof g1_id);

    /* 1. A next key: the window opens; the keyring lists both. */
    assert_int_equal(fdl_fwsign_rotate(f->fs, FDL_TIER_APPLICATION, &made), FDL_FWSIGN_OK);
    assert_int_equal(made->generation, 2);
    assert_int_equal(made->state, FDL_FWKEY_NEXT);
    assert_int_equal(fdl_fwsign_rotate(f->fs, FDL_TIER_APPLICATION, NULL), FDL_FWSIGN_ERR_STATE);
    current_keyring(f, &win_kr, &c1);
    assert_true(c1 > c0);
    assert_int_equal(win_kr.n, old_kr.n + 1);
    const fdl_keyring_entry *ke = fdl_keyring_find(&win_kr, FDL_TIER_APPLICATION, made->key_id);
    assert_non_null(ke);
    assert_int_equal(ke->state, FDL_KEY_NEXT);
    assert_non_null(fdl_keyring_find(&win_kr, FDL_TIER_APPLICATION, g1_id));

    /* 2. Images switch to the next key: devices with the window keyring take them, old ones do not. */
    size_t len;
    uint8_t *img = build(FDL_TIER_APPLICATION, "2.0.0", 2, &len);
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img, len, 0, 2, 0, NULL), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwimage_parse(img, len, &h, NULL), FDL_FW_OK);
    assert_int_equal(fdl_keyring_verify_image(&win_kr, &h), FDL_FW_OK);
    assert_int_equal(fdl_keyring_verify_image(&old_kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    /* The current key still signs by default during the window. */
    uint8_t *img1 = build(FDL_TIER_APPLICATION, "1.9.0", 2, &len);
    const fdl_fwsign_key *used = NULL;
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img1, len, 0, 0, 0, &used), FDL_FWSIGN_OK);
    assert_int_equal(used->generation, 1);

    /* 3. Retire: generation 2 is current, 1 retired and gone from new keyrings. */
    assert_int_equal(fdl_fwsign_retire(f->fs, FDL_TIER_APPLICATION), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_find(f->fs, FDL_TIER_APPLICATION, 0)->generation, 2);
    assert_int_equal(fdl_fwsign_find(f->fs, FDL_TIER_APPLICATION, 1)->state, FDL_FWKEY_RETIRED);
    assert_int_equal(fdl_fwsign_retire(f->fs, FDL_TIER_APPLICATION), FDL_FWSIGN_ERR_STATE);
    current_keyring(f, &new_kr, &c2);
    assert_true(c2 > c1);
    assert_int_equal(new_kr.n, old_kr.n);
    assert_null(fdl_keyring_find(&new_kr, FDL_TIER_APPLICATION, g1_id));
    assert_int_equal(fdl_keyring_verify_image(&new_kr, &h), FDL_FW_OK);
    /* The retired key signs nothing by default; on purpose (a drill) it does, and devices refuse it. */
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img1, len, 0, 1, 0, NULL), FDL_FWSIGN_ERR_STATE);
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img1, len, 0, 1, FDL_FWSIGN_ANY_STATE, NULL), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwimage_parse(img1, len, &h, NULL), FDL_FW_OK);
    assert_int_equal(fdl_keyring_verify_image(&new_kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    /* Persisted. */
    fdl_fwsign *again = NULL;
    assert_int_equal(fdl_fwsign_open(NULL, f->fwdir, &again), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_find(again, FDL_TIER_APPLICATION, 0)->generation, 2);
    assert_int_equal(fdl_fwsign_keyring_counter(again), c2);
    fdl_fwsign_free(again);
    fdl_free(img);
    fdl_free(img1);
}

static void revocation(void **state)
{
    struct fx *f = *state;
    const fdl_fwsign_key *made = NULL;
    uint8_t id[FDL_FW_KEYID_LEN];
    fdl_keyring kr;
    uint32_t c0, c1;
    current_keyring(f, &kr, &c0);
    /* A leaked current key with a next one waiting: the next takes over at once. */
    assert_int_equal(fdl_fwsign_rotate(f->fs, FDL_TIER_KERNEL, &made), FDL_FWSIGN_OK);
    unsigned next_gen = made->generation;
    memcpy(id, fdl_fwsign_find(f->fs, FDL_TIER_KERNEL, 0)->key_id, sizeof id);
    assert_int_equal(fdl_fwsign_revoke(f->fs, id), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_find_id(f->fs, id)->state, FDL_FWKEY_REVOKED);
    assert_int_equal(fdl_fwsign_find(f->fs, FDL_TIER_KERNEL, 0)->generation, next_gen);
    current_keyring(f, &kr, &c1);
    assert_true(c1 > c0);
    assert_null(fdl_keyring_find(&kr, FDL_TIER_KERNEL, id));
    size_t len;
    uint8_t *img = build(FDL_TIER_KERNEL, "3.0.0", 3, &len);
    assert_int_equal(fdl_fwsign_sign_image(f->fs, img, len, 0, 1, 0, NULL), FDL_FWSIGN_ERR_STATE);
    /* Revoking twice is a no-op; an unknown id is not found. */
    assert_int_equal(fdl_fwsign_revoke(f->fs, id), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_keyring_counter(f->fs), c1);
    uint8_t unknown[FDL_FW_KEYID_LEN] = {1, 2, 3};
    assert_int_equal(fdl_fwsign_revoke(f->fs, unknown), FDL_FWSIGN_ERR_NOT_FOUND);
    /* Without a next key, the role is left without a signer until a new key takes over. */
    memcpy(id, fdl_fwsign_find(f->fs, FDL_FWSIGN_ROLE_JOBS, 0)->key_id, sizeof id);
    assert_int_equal(fdl_fwsign_revoke(f->fs, id), FDL_FWSIGN_OK);
    assert_null(fdl_fwsign_find(f->fs, FDL_FWSIGN_ROLE_JOBS, 0));
    fdl_fwsign_jobs *j = NULL;
    assert_int_equal(fdl_fwsign_jobs_open(f->m, f->fwdir, &j), FDL_FWSIGN_ERR_NOT_FOUND);
    assert_int_equal(fdl_fwsign_rotate(f->fs, FDL_FWSIGN_ROLE_JOBS, NULL), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_retire(f->fs, FDL_FWSIGN_ROLE_JOBS), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_find(f->fs, FDL_FWSIGN_ROLE_JOBS, 0)->generation, 2);
    assert_int_equal(fdl_fwsign_jobs_open(f->m, f->fwdir, &j), FDL_FWSIGN_OK);
    fdl_fwsign_jobs_free(j);
    fdl_free(img);
}

static void job_signer(void **state)
{
    struct fx *f = *state;
    fdl_keyring kr;
    fdl_fwsign_jobs *j = NULL;
    current_keyring(f, &kr, NULL);
    assert_int_equal(fdl_fwsign_jobs_open(f->m, f->fwdir, &j), FDL_FWSIGN_OK);
    assert_memory_equal(fdl_fwsign_jobs_key_id(j), fdl_fwsign_find(f->fs, FDL_FWSIGN_ROLE_JOBS, 0)->key_id,
                        FDL_FW_KEYID_LEN);
    const char *doc = "{\"job\":\"j1\",\"seq\":3,\"tier\":\"application\",\"version\":\"1.0.0\",\"counter\":1,"
                      "\"artifact\":\"a1\",\"sha256\":\"" "0000000000000000000000000000000000000000000000000000000000000000"
                      "\",\"size\":1128,\"issued\":1000,\"expires\":2000,\"targets\":[\"dev-000001\"]}";
    uint8_t env[1024];
    size_t n = 0;
    assert_int_equal(fdl_fwsign_jobs_sign(j, (const uint8_t *)doc, strlen(doc), env, sizeof env, &n), FDL_FWSIGN_OK);
    assert_int_equal(n, strlen(doc) + FDL_JOBDOC_OVERHEAD);
    fdl_jobdoc jd;
    assert_int_equal(fdl_jobdoc_parse(env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_check(&jd, &kr, "dev-000001", 0, 1500, 2), FDL_JOB_OK);
    /* Too small, bad arguments. */
    assert_int_equal(fdl_fwsign_jobs_sign(j, (const uint8_t *)doc, strlen(doc), env, n - 1, &n), FDL_FWSIGN_ERR_SMALL);
    assert_int_equal(fdl_fwsign_jobs_sign(j, (const uint8_t *)doc, 0, env, sizeof env, &n), FDL_FWSIGN_ERR_ARG);
    fdl_fwsign_jobs_free(j);
    fdl_fwsign_jobs_free(NULL);
    /* The offline token's keys cannot sign jobs a device accepts: an application-key envelope. */
    uint8_t hash[32];
    fdl_jobdoc_signed_hash((const uint8_t *)doc, strlen(doc), fdl_fwsign_find(f->fs, FDL_TIER_APPLICATION, 0)->key_id,
                           hash);
    memcpy(env + 8 + strlen(doc), fdl_fwsign_find(f->fs, FDL_TIER_APPLICATION, 0)->key_id, FDL_FW_KEYID_LEN);
    assert_int_equal(fdl_jobdoc_parse(env, n, &jd), FDL_JOB_OK);
    assert_int_equal(fdl_jobdoc_verify(&jd, &kr), FDL_JOB_ERR_KEY_UNKNOWN);
}

static void rogue_software_key(void **state)
{
    struct fx *f = *state;
    fdl_keyring kr;
    fwt_key rogue;
    fdl_fw_hdr h;
    fwt_key_new(&rogue);
    current_keyring(f, &kr, NULL);
    size_t len;
    uint8_t *img = build(FDL_TIER_APPLICATION, "6.6.6", 66, &len);
    assert_int_equal(fdl_fwsign_sign_image_pk(img, len, &rogue.pk, mbedtls_ctr_drbg_random, fdl_test_drbg()),
                     FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwimage_parse(img, len, &h, NULL), FDL_FW_OK);
    assert_memory_equal(h.key_id, rogue.id, FDL_FW_KEYID_LEN);
    assert_int_equal(fdl_fwimage_verify_sig(&h, rogue.pub), FDL_FW_OK);
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    assert_null(fdl_fwsign_find_id(f->fs, rogue.id));
    /* A rogue key claiming a trusted key id: the signature fails. */
    memcpy(h.key_id, fdl_fwsign_find(f->fs, FDL_TIER_APPLICATION, 0)->key_id, FDL_FW_KEYID_LEN);
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_SIGNATURE);
    fwt_key_free(&rogue);
    fdl_free(img);
}

/* keys.json is checked on load and against the tokens. */
static void registry_integrity(void **state)
{
    struct fx *f = *state;
    char path[700];
    snprintf(path, sizeof path, "%s/keys.json", f->fwdir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[n] = '\0';
    fdl_fwsign *o = NULL;

    /* Malformed JSON, a wrong format, a changed key id. */
    static const struct {
        const char *from, *to;
    } edits[] = {
        {"\"format\": 1", "\"format\": 2"},
        {"\"keys\"", "\"kees\""},
        {"\"state\": \"current\"", "\"state\": \"valid\""},
        {"\"role\": \"kernel\"", "\"role\": \"bootloader\""},
        {"\"generation\": 1", "\"generation\": 0"},
        {"\"token\": \"fdl-signing\"", "\"token\": \"fdl-jobs\""},
        {"{", "["},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        static char edited[65536];
        char *at = strstr(text, edits[i].from);
        assert_non_null(at);
        snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - text), text, edits[i].to, at + strlen(edits[i].from));
        fp = fopen(path, "w");
        fputs(edited, fp);
        fclose(fp);
        if (fdl_fwsign_open(NULL, f->fwdir, &o) != FDL_FWSIGN_ERR_PARSE)
            fail_msg("edit %zu (%s -> %s) accepted", i, edits[i].from, edits[i].to);
    }
    /* A key id that is not the hash of its key. */
    {
        static char edited[65536];
        char *at = strstr(text, "\"key_id\": \"");
        assert_non_null(at);
        snprintf(edited, sizeof edited, "%s", text);
        char *c = edited + (at - text) + 11;
        *c = *c == '0' ? '1' : '0';
        fp = fopen(path, "w");
        fputs(edited, fp);
        fclose(fp);
        assert_int_equal(fdl_fwsign_open(NULL, f->fwdir, &o), FDL_FWSIGN_ERR_PARSE);
    }
    /* Two registry entries swapped in pub and id: parses, but the tokens disagree. */
    {
        fdl_fwsign_key a = *fdl_fwsign_find(f->fs, FDL_TIER_KERNEL, 0);
        fdl_fwsign_key b = *fdl_fwsign_find(f->fs, FDL_TIER_APPLICATION, 0);
        char ahex[131], bhex[131], aid[17], bid[17];
        for (int i = 0; i < FDL_FW_PUB_LEN; i++) {
            snprintf(ahex + 2 * i, 3, "%02x", a.pub[i]);
            snprintf(bhex + 2 * i, 3, "%02x", b.pub[i]);
        }
        fdl_fw_key_id_hex(a.key_id, aid, sizeof aid);
        fdl_fw_key_id_hex(b.key_id, bid, sizeof bid);
        static char edited[65536];
        snprintf(edited, sizeof edited, "%s", text);
        char *pa = strstr(edited, ahex), *pb = strstr(edited, bhex), *ia = strstr(edited, aid),
             *ib = strstr(edited, bid);
        assert_true(pa && pb && ia && ib);
        memcpy(pa, bhex, 130);
        memcpy(pb, ahex, 130);
        memcpy(ia, bid, 16);
        memcpy(ib, aid, 16);
        fp = fopen(path, "w");
        fputs(edited, fp);
        fclose(fp);
        assert_int_equal(fdl_fwsign_open(f->m, f->fwdir, &o), FDL_FWSIGN_OK);
        assert_int_equal(fdl_fwsign_setup(o), FDL_FWSIGN_ERR_MISMATCH);
        size_t len;
        uint8_t *img = build(FDL_TIER_KERNEL, "1.0.0", 1, &len);
        assert_int_equal(fdl_fwsign_sign_image(o, img, len, 0, 0, 0, NULL), FDL_FWSIGN_ERR_MISMATCH);
        fdl_free(img);
        fdl_fwsign_free(o);
    }
    /* Restored, all is well again. */
    fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(fdl_fwsign_open(f->m, f->fwdir, &o), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_setup(o), FDL_FWSIGN_OK);
    fdl_fwsign_free(o);
}

/* A rotation interrupted after the key was made in the token but before keys.json
 * recorded it is completed by the next rotate, with the same key. */
static void interrupted_rotation_is_adopted(void **state)
{
    struct fx *f = *state;
    char pin[64];
    read_user_pin(f, "fdl-signing", pin, sizeof pin);
    fdl_se_key *k = NULL;
    assert_int_equal(fdl_se_keygen(f->m, "fdl-signing", pin, "modules-g2", &k), FDL_SE_OK);
    uint8_t pub[FDL_FW_PUB_LEN];
    size_t olen = 0;
    assert_int_equal(mbedtls_ecp_write_public_key(mbedtls_pk_ec(*fdl_se_key_pk(k)), MBEDTLS_ECP_PF_UNCOMPRESSED, &olen,
                                                  pub, sizeof pub),
                     0);
    fdl_se_key_free(k);
    const fdl_fwsign_key *made = NULL;
    assert_int_equal(fdl_fwsign_rotate(f->fs, FDL_TIER_MODULES, &made), FDL_FWSIGN_OK);
    assert_int_equal(made->generation, 2);
    assert_memory_equal(made->pub, pub, FDL_FW_PUB_LEN);
}

/* Every allocation fails in turn: each failure is NOMEM, nothing leaks, and the
 * registry on disk is never damaged (the last call succeeds with the same keys). */
static void allocation_failures(void **state)
{
    struct fx *f = *state;
    fdl_alloc_stats before = fdl_alloc_get_stats();
    fdl_fwsign_status st = FDL_FWSIGN_ERR_NOMEM;
    uint64_t nth;
    for (nth = 1; nth < 500 && st != FDL_FWSIGN_OK; nth++) {
        fdl_fwsign *o = NULL;
        uint8_t *img = NULL, *kr = NULL;
        size_t len = 0, klen = 0;
        fdl_fwsign_build b = {.tier = FDL_TIER_APPLICATION, .version = 1, .size = 200};
        fdl_alloc_fail_nth(nth);
        st = fdl_fwsign_open(f->m, f->fwdir, &o);
        if (st == FDL_FWSIGN_OK)
            st = fdl_fwsign_build_image(&b, &img, &len);
        if (st == FDL_FWSIGN_OK)
            st = fdl_fwsign_sign_image(o, img, len, 0, 0, 0, NULL);
        if (st == FDL_FWSIGN_OK)
            st = fdl_fwsign_keyring_image(o, 0, 0, &kr, &klen);
        if (st == FDL_FWSIGN_OK) {
            /* ERR_STATE: an earlier round's rotate was saved but its retire failed. */
            st = fdl_fwsign_rotate(o, FDL_TIER_CONFIG, NULL);
            if (st == FDL_FWSIGN_OK || st == FDL_FWSIGN_ERR_STATE)
                st = fdl_fwsign_retire(o, FDL_TIER_CONFIG);
        }
        fdl_alloc_fail_nth(0);
        if (st != FDL_FWSIGN_OK && st != FDL_FWSIGN_ERR_NOMEM)
            fail_msg("allocation %llu: %s (%s)", (unsigned long long)nth, fdl_fwsign_strerror(st),
                     fdl_fwsign_last_error());
        fdl_free(kr);
        fdl_free(img);
        fdl_fwsign_free(o);
    }
    assert_int_equal(st, FDL_FWSIGN_OK);
    assert_true(nth > 5); /* the loop did inject failures */
    fdl_alloc_stats after = fdl_alloc_get_stats();
    assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
    /* keys.json still loads, and every recorded key is still in its token. */
    fdl_fwsign *o = NULL;
    assert_int_equal(fdl_fwsign_open(f->m, f->fwdir, &o), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_setup(o), FDL_FWSIGN_OK);
    assert_non_null(fdl_fwsign_find(o, FDL_TIER_CONFIG, 0));
    /* A change that cannot be saved is not made in memory either. */
    const fdl_fwsign_key *made = NULL;
    assert_int_equal(fdl_fwsign_rotate(o, FDL_TIER_MODULES, &made), FDL_FWSIGN_OK);
    unsigned gen_next = made->generation;
    uint32_t counter = fdl_fwsign_keyring_counter(o);
    fdl_alloc_fail_nth(1);
    assert_int_equal(fdl_fwsign_retire(o, FDL_TIER_MODULES), FDL_FWSIGN_ERR_NOMEM);
    fdl_alloc_fail_nth(0);
    assert_int_equal(fdl_fwsign_find(o, FDL_TIER_MODULES, gen_next)->state, FDL_FWKEY_NEXT);
    assert_int_equal(fdl_fwsign_find(o, FDL_TIER_MODULES, 0)->generation, gen_next - 1);
    assert_int_equal(fdl_fwsign_keyring_counter(o), counter);
    uint8_t id[FDL_FW_KEYID_LEN];
    memcpy(id, fdl_fwsign_find(o, FDL_TIER_MODULES, 0)->key_id, sizeof id);
    fdl_alloc_fail_nth(1);
    assert_int_equal(fdl_fwsign_revoke(o, id), FDL_FWSIGN_ERR_NOMEM);
    fdl_alloc_fail_nth(0);
    assert_int_equal(fdl_fwsign_find_id(o, id)->state, FDL_FWKEY_CURRENT);
    size_t n = fdl_fwsign_count(o);
    fdl_alloc_fail_nth(1);
    assert_int_equal(fdl_fwsign_rotate(o, FDL_TIER_KERNEL, NULL), FDL_FWSIGN_ERR_NOMEM);
    fdl_alloc_fail_nth(0);
    assert_int_equal(fdl_fwsign_count(o), n);
    assert_int_equal(fdl_fwsign_retire(o, FDL_TIER_MODULES), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_rotate(o, FDL_TIER_KERNEL, NULL), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_count(o), n + 1);
    fdl_fwsign_free(o);
}

static void test_images(void **state)
{
    (void)state;
    fdl_fwsign_build b = {.tier = FDL_TIER_APPLICATION, .version = 0x01020003, .counter = 5, .hw_rev = 7,
                          .behaviour = "no-confirm", .size = 300};
    uint8_t *a = NULL, *c = NULL;
    size_t alen = 0, clen = 0;
    assert_int_equal(fdl_fwsign_build_image(&b, &a, &alen), FDL_FWSIGN_OK);
    assert_int_equal(fdl_fwsign_build_image(&b, &c, &clen), FDL_FWSIGN_OK);
    assert_int_equal(alen, FDL_FW_HDR_LEN + 300);
    assert_memory_equal(a, c, alen); /* deterministic */
    fdl_fw_hdr h;
    const uint8_t *payload;
    assert_int_equal(fdl_fwimage_parse(a, alen, &h, &payload), FDL_FW_OK);
    assert_int_equal(h.tier, FDL_TIER_APPLICATION);
    assert_int_equal(h.version, 0x01020003);
    assert_int_equal(h.counter, 5);
    assert_int_equal(h.hw_rev, 7);
    static const char manifest[] = "FDL-PAYLOAD 1\ntier=application\nversion=1.2.3\nbehaviour=no-confirm\n";
    assert_memory_equal(payload, manifest, sizeof manifest - 1);
    assert_int_equal(payload[sizeof manifest - 1], 7); /* filler byte 0 */
    assert_int_equal(payload[sizeof manifest], 138);   /* filler byte 1 = 131 + 7 */
    uint8_t zero[FDL_FW_SIG_LEN] = {0};
    assert_memory_equal(h.sig, zero, sizeof zero); /* unsigned */
    fdl_free(a);
    fdl_free(c);
    /* Defaults: 4096 bytes, behaviour ok. */
    fdl_fwsign_build d = {.tier = FDL_TIER_KERNEL};
    assert_int_equal(fdl_fwsign_build_image(&d, &a, &alen), FDL_FWSIGN_OK);
    assert_int_equal(alen, FDL_FW_HDR_LEN + 4096);
    assert_non_null(memmem(a, alen, "behaviour=ok\n", 13));
    fdl_free(a);
    /* Refusals. */
    fdl_fwsign_build bad = b;
    bad.behaviour = "explode";
    assert_int_equal(fdl_fwsign_build_image(&bad, &a, &alen), FDL_FWSIGN_ERR_ARG);
    bad = b;
    bad.tier = 7;
    assert_int_equal(fdl_fwsign_build_image(&bad, &a, &alen), FDL_FWSIGN_ERR_ARG);
    bad = b;
    bad.size = 10;
    assert_int_equal(fdl_fwsign_build_image(&bad, &a, &alen), FDL_FWSIGN_ERR_ARG);
    bad.size = FDL_FW_PAYLOAD_MAX + 1;
    assert_int_equal(fdl_fwsign_build_image(&bad, &a, &alen), FDL_FWSIGN_ERR_ARG);
    assert_null(a);
}

static void names(void **state)
{
    (void)state;
    assert_int_equal(fdl_fwsign_role_parse("root"), 1);
    assert_int_equal(fdl_fwsign_role_parse("bootloader"), 1);
    assert_int_equal(fdl_fwsign_role_parse("keyring"), 1);
    assert_int_equal(fdl_fwsign_role_parse("app"), 3);
    assert_int_equal(fdl_fwsign_role_parse("models"), 5);
    assert_int_equal(fdl_fwsign_role_parse("jobs"), 7);
    assert_int_equal(fdl_fwsign_role_parse("nope"), 0);
    assert_int_equal(fdl_fwsign_role_parse(NULL), 0);
    for (size_t i = 0; i < ROLES_N; i++)
        assert_int_equal(fdl_fwsign_role_parse(fdl_fwsign_role_name(ROLES[i])), ROLES[i]);
    assert_string_equal(fdl_fwsign_role_name(6), "?");
    assert_string_equal(fdl_fwkey_state_name(FDL_FWKEY_REVOKED), "revoked");
    assert_string_equal(fdl_fwkey_state_name(0), "?");
    for (int s = FDL_FWSIGN_OK; s <= FDL_FWSIGN_ERR_SMALL; s++)
        assert_string_not_equal(fdl_fwsign_strerror((fdl_fwsign_status)s), "unknown signing status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(test_images),
        cmocka_unit_test_setup_teardown(setup_makes_one_key_per_role, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(keys_never_leave_the_token, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(sign_and_verify_through_keyring, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(rotation_dual_trust, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(revocation, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(job_signer, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(rogue_software_key, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(registry_integrity, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(interrupted_rotation_is_adopted, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(allocation_failures, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
