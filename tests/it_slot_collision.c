/*
 * tests/it_slot_collision.c — SoftHSM2 numbers slots from 31 bits of each token's random
 * serial and aborts C_Initialize on a duplicate. Two device tokens are made to collide on
 * disk; fdl_se_slot_collisions must report the pair, and opening the state must move one
 * token aside and let provisioning remake that device instead of crashing.
 */
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/context.h"

static const uint8_t serial_hdr[] = {0, 0, 0, 0, 0x80, 0, 0x53, 0x4a, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 16};

/* Reads a token.object; returns a malloc'ed buffer and the offset of its 16-byte serial. */
static uint8_t *load_token(const char *path, size_t *len, size_t *serial_off)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *b = malloc(65536);
    *len = fread(b, 1, 65536, f);
    fclose(f);
    for (size_t i = 0; i + sizeof serial_hdr + 16 <= *len; i++)
        if (memcmp(b + i, serial_hdr, sizeof serial_hdr) == 0) {
            *serial_off = i + sizeof serial_hdr;
            return b;
        }
    fail_msg("no serial in %s", path);
    return NULL;
}

/* Finds the token directory whose label starts with `label`. */
static void token_dir(const char *tokens, const char *label, char *out, size_t cap)
{
    DIR *d = opendir(tokens);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[1200];
        snprintf(p, sizeof p, "%s/%s/token.object", tokens, e->d_name);
        FILE *f = fopen(p, "rb");
        if (!f)
            continue;
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (memmem(buf, n, label, strlen(label))) {
            snprintf(out, cap, "%s/%s", tokens, e->d_name);
            closedir(d);
            return;
        }
    }
    closedir(d);
    fail_msg("no token labelled %s", label);
}

static void collision_is_detected_and_healed(void **state)
{
    (void)state;
    char dir[512], err[512], tokens[600];
    fdl_test_mkdtemp("slots", dir, sizeof dir);
    fdl_ctx ctx;
    assert_int_equal(fdl_ctx_open(&ctx, dir, 1, err, sizeof err), 0);
    for (int i = 0; i < 2; i++) {
        char id[32];
        fdl_device_id((uint32_t)i, id, sizeof id);
        assert_true(fdl_identity_provision(&ctx.st, ctx.se, ctx.pki, id, FDL_PROFILE_SE, mbedtls_ctr_drbg_random,
                                           &ctx.drbg, err, sizeof err) == 1);
    }
    fdl_ctx_close(&ctx);
    assert_int_equal(fdl_se_slot_collisions(ctx.st.hsm_conf, NULL, 0), 0);

    /* Give dev-000001 the last 8 serial digits of dev-000000: the same slot number. */
    snprintf(tokens, sizeof tokens, "%s/hsm/tokens", dir);
    char d0[1200], d1[1200], p0[1300], p1[1300];
    token_dir(tokens, "dev-000000", d0, sizeof d0);
    token_dir(tokens, "dev-000001", d1, sizeof d1);
    snprintf(p0, sizeof p0, "%s/token.object", d0);
    snprintf(p1, sizeof p1, "%s/token.object", d1);
    size_t l0, l1, s0, s1;
    uint8_t *b0 = load_token(p0, &l0, &s0), *b1 = load_token(p1, &l1, &s1);
    memcpy(b1 + s1 + 8, b0 + s0 + 8, 8);
    FILE *f = fopen(p1, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b1, 1, l1, f), l1);
    fclose(f);
    free(b0);
    free(b1);

    fdl_se_collision col[4];
    assert_int_equal(fdl_se_slot_collisions(ctx.st.hsm_conf, col, 4), 1);
    assert_true((!strcmp(col[0].label, "dev-000000") && !strcmp(col[0].other_label, "dev-000001")) ||
                (!strcmp(col[0].label, "dev-000001") && !strcmp(col[0].other_label, "dev-000000")));

    /* Opening the state repairs it (SoftHSM2 would abort the process otherwise). */
    assert_int_equal(fdl_ctx_open(&ctx, dir, 1, err, sizeof err), 0);
    assert_int_equal(fdl_se_slot_collisions(ctx.st.hsm_conf, NULL, 0), 0);
    int remade = 0;
    for (int i = 0; i < 2; i++) {
        char id[32];
        fdl_device_id((uint32_t)i, id, sizeof id);
        if (!fdl_identity_exists(&ctx.st, id)) {
            remade++;
            assert_int_equal(fdl_se_token_exists(ctx.se, id), 0);
            assert_int_equal(fdl_identity_provision(&ctx.st, ctx.se, ctx.pki, id, FDL_PROFILE_SE,
                                                    mbedtls_ctr_drbg_random, &ctx.drbg, err, sizeof err),
                             1);
        }
        fdl_identity idn;
        assert_int_equal(fdl_identity_load(&ctx.st, ctx.se, id, &idn, mbedtls_ctr_drbg_random, &ctx.drbg, err,
                                           sizeof err),
                         0);
        fdl_identity_free(&idn);
    }
    assert_int_equal(remade, 1);
    fdl_ctx_close(&ctx);
    fdl_test_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(collision_is_detected_and_healed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
