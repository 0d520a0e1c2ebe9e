/* tests/test_efuse.c — eFuses: write-once bits, floors that only rise, persistence, corruption refused. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/sha256.h>

#include "devices/efuse.h"
#include "sim/alloc.h"

static char g_dir[512];
static char g_path[600];

static int setup(void **state)
{
    (void)state;
    fdl_test_mkdtemp("efuse", g_dir, sizeof g_dir);
    snprintf(g_path, sizeof g_path, "%s/efuse", g_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_test_rmrf(g_dir);
    return 0;
}

static void hash_of(uint8_t h[32], uint8_t seed)
{
    for (int i = 0; i < 32; i++)
        h[i] = (uint8_t)(seed + 7 * i);
}

static fdl_efuse *reopen(fdl_efuse *e)
{
    fdl_efuse_free(e);
    fdl_efuse *r = NULL;
    assert_int_equal(fdl_efuse_open(g_path, &r), FDL_EFUSE_OK);
    return r;
}

static void factory_programming_persists(void **state)
{
    (void)state;
    fdl_efuse_factory f = {.secure_boot = true, .debug_disabled = false, .hw_rev = 3};
    hash_of(f.root_hash, 1);
    f.floor[1] = 2;
    f.floor[3] = 9;
    fdl_efuse *e = NULL;
    assert_int_equal(fdl_efuse_create(g_path, &f, &e), FDL_EFUSE_OK);
    /* A second create never overwrites. */
    fdl_efuse *e2 = NULL;
    assert_int_equal(fdl_efuse_create(g_path, NULL, &e2), FDL_EFUSE_ERR_EXISTS);
    assert_null(e2);
    e = reopen(e);
    uint8_t h[32];
    assert_true(fdl_efuse_root_hash(e, 0, h));
    assert_memory_equal(h, f.root_hash, 32);
    assert_false(fdl_efuse_root_programmed(e, 1));
    assert_int_equal(fdl_efuse_root_trusted(e, f.root_hash), 0);
    hash_of(h, 2);
    assert_int_equal(fdl_efuse_root_trusted(e, h), -1);
    assert_true(fdl_efuse_secure_boot(e));
    assert_false(fdl_efuse_debug_disabled(e));
    assert_int_equal(fdl_efuse_hw_rev(e), 3);
    for (unsigned t = 1; t < FDL_EFUSE_FLOOR_TIERS; t++)
        assert_int_equal(fdl_efuse_floor(e, t), t == 1 ? 2 : t == 3 ? 9 : 0);
    fdl_efuse_free(e);
    /* A factory floor the fuses cannot hold is refused, nothing created. */
    char big[700];
    snprintf(big, sizeof big, "%s/big", g_dir);
    f.floor[2] = FDL_EFUSE_FLOOR_MAX + 1;
    assert_int_equal(fdl_efuse_create(big, &f, &e), FDL_EFUSE_ERR_RANGE);
    assert_null(e);
    assert_int_not_equal(access(big, F_OK), 0);
    fdl_efuse *none = NULL;
    char other[700];
    snprintf(other, sizeof other, "%s/absent", g_dir);
    assert_int_equal(fdl_efuse_open(other, &none), FDL_EFUSE_ERR_ABSENT);
}

static void blown_bit_cannot_be_cleared(void **state)
{
    (void)state;
    fdl_efuse *e = NULL;
    assert_int_equal(fdl_efuse_create(g_path, NULL, &e), FDL_EFUSE_OK);
    assert_false(fdl_efuse_secure_boot(e));
    assert_int_equal(fdl_efuse_blow_flags(e, FDL_EFUSE_SECURE_BOOT), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_blow_flags(e, FDL_EFUSE_SECURE_BOOT), FDL_EFUSE_OK);   /* idempotent */
    /* The raw primitive is the only way to write: a 0 over a blown bit is refused. */
    uint8_t zero = 0;
    assert_int_equal(fdl_efuse_program(e, FDL_EFUSE_OFF_FLAGS, &zero, 1), FDL_EFUSE_ERR_CLEAR);
    assert_true(fdl_efuse_secure_boot(e));
    /* Blowing another bit of the same byte keeps the first. */
    uint8_t both = FDL_EFUSE_SECURE_BOOT | FDL_EFUSE_DEBUG_DISABLED;
    assert_int_equal(fdl_efuse_program(e, FDL_EFUSE_OFF_FLAGS, &both, 1), FDL_EFUSE_OK);
    uint8_t only_debug = FDL_EFUSE_DEBUG_DISABLED;
    assert_int_equal(fdl_efuse_program(e, FDL_EFUSE_OFF_FLAGS, &only_debug, 1), FDL_EFUSE_ERR_CLEAR);
    /* Reserved bits cannot be blown either (they would make a bank no device has). */
    uint8_t reserved = both | 0x80;
    assert_int_equal(fdl_efuse_program(e, FDL_EFUSE_OFF_FLAGS, &reserved, 1), FDL_EFUSE_ERR_RANGE);
    assert_int_equal(fdl_efuse_program(e, FDL_EFUSE_BANK_LEN, &both, 1), FDL_EFUSE_ERR_ARG);
    e = reopen(e);
    assert_true(fdl_efuse_secure_boot(e));
    assert_true(fdl_efuse_debug_disabled(e));
    fdl_efuse_free(e);
}

static void root_hash_programs_once(void **state)
{
    (void)state;
    uint8_t a[32], b[32], zero[32] = {0};
    hash_of(a, 10);
    hash_of(b, 20);
    fdl_efuse *e = NULL;
    assert_int_equal(fdl_efuse_create(g_path, NULL, &e), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_program_root(e, 0, zero), FDL_EFUSE_ERR_ARG);
    assert_int_equal(fdl_efuse_program_root(e, 0, a), FDL_EFUSE_OK);
    /* A second programming is refused, with another value and with the same one. */
    assert_int_equal(fdl_efuse_program_root(e, 0, b), FDL_EFUSE_ERR_PROGRAMMED);
    assert_int_equal(fdl_efuse_program_root(e, 0, a), FDL_EFUSE_ERR_PROGRAMMED);
    /* Through the raw primitive, writing b over a clears bits of a: refused. */
    assert_int_equal(fdl_efuse_program(e, FDL_EFUSE_OFF_ROOT, b, 32), FDL_EFUSE_ERR_CLEAR);
    e = reopen(e);
    uint8_t h[32];
    assert_true(fdl_efuse_root_hash(e, 0, h));
    assert_memory_equal(h, a, 32);
    /* Another slot, then revoking the first. */
    assert_int_equal(fdl_efuse_program_root(e, 1, b), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_program_root(e, FDL_EFUSE_ROOT_SLOTS, b), FDL_EFUSE_ERR_RANGE);
    assert_int_equal(fdl_efuse_root_trusted(e, a), 0);
    assert_int_equal(fdl_efuse_revoke_root(e, 0), FDL_EFUSE_OK);
    e = reopen(e);
    assert_int_equal(fdl_efuse_root_trusted(e, a), -1);
    assert_int_equal(fdl_efuse_root_trusted(e, b), 1);
    assert_true(fdl_efuse_root_revoked(e, 0));
    /* hw revision: once. */
    assert_int_equal(fdl_efuse_program_hw_rev(e, 0), FDL_EFUSE_ERR_ARG);
    assert_int_equal(fdl_efuse_program_hw_rev(e, 7), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_program_hw_rev(e, 7), FDL_EFUSE_ERR_PROGRAMMED);
    e = reopen(e);
    assert_int_equal(fdl_efuse_hw_rev(e), 7);
    fdl_efuse_free(e);
}

static void floors_only_rise(void **state)
{
    (void)state;
    fdl_efuse *e = NULL;
    assert_int_equal(fdl_efuse_create(g_path, NULL, &e), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_raise_floor(e, 3, 5), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_floor(e, 3), 5);
    assert_int_equal(fdl_efuse_raise_floor(e, 3, 3), FDL_EFUSE_ERR_LOWER);
    assert_int_equal(fdl_efuse_raise_floor(e, 3, 5), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_raise_floor(e, 3, FDL_EFUSE_FLOOR_MAX + 1), FDL_EFUSE_ERR_RANGE);
    assert_int_equal(fdl_efuse_raise_floor(e, 0, 1), FDL_EFUSE_ERR_RANGE);
    assert_int_equal(fdl_efuse_raise_floor(e, FDL_EFUSE_FLOOR_TIERS, 1), FDL_EFUSE_ERR_RANGE);
    /* Lowering through the raw primitive clears bits: refused. */
    uint8_t t[FDL_EFUSE_FLOOR_BYTES] = {0x07};
    assert_int_equal(fdl_efuse_program(e, FDL_EFUSE_OFF_FLOOR + 2 * FDL_EFUSE_FLOOR_BYTES, t, sizeof t),
                     FDL_EFUSE_ERR_CLEAR);
    /* A thermometer with a hole is not a floor: refused, not persisted. */
    uint8_t hole[FDL_EFUSE_FLOOR_BYTES] = {0x1f, 0x01};
    assert_int_equal(fdl_efuse_program(e, FDL_EFUSE_OFF_FLOOR + 2 * FDL_EFUSE_FLOOR_BYTES, hole, sizeof hole),
                     FDL_EFUSE_ERR_RANGE);
    e = reopen(e);
    assert_int_equal(fdl_efuse_floor(e, 3), 5);
    assert_int_equal(fdl_efuse_floor(e, 2), 0);
    /* Up to the maximum, tier by tier independent. */
    assert_int_equal(fdl_efuse_raise_floor(e, 2, 9), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_raise_floor(e, 6, FDL_EFUSE_FLOOR_MAX), FDL_EFUSE_OK);
    e = reopen(e);
    assert_int_equal(fdl_efuse_floor(e, 2), 9);
    assert_int_equal(fdl_efuse_floor(e, 3), 5);
    assert_int_equal(fdl_efuse_floor(e, 6), FDL_EFUSE_FLOOR_MAX);
    assert_int_equal(fdl_efuse_raise_floor(e, 6, FDL_EFUSE_FLOOR_MAX - 1), FDL_EFUSE_ERR_LOWER);
    fdl_efuse_free(e);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(FDL_EFUSE_FILE_LEN + 16);
    assert_non_null(buf);
    *len = fread(buf, 1, FDL_EFUSE_FILE_LEN + 16, f);
    fclose(f);
    return buf;
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

/* Recomputes the checksum so only the bank's own validity decides. */
static void reseal(uint8_t *buf)
{
    mbedtls_sha256(buf, 8 + FDL_EFUSE_BANK_LEN, buf + 8 + FDL_EFUSE_BANK_LEN, 0);
}

static void corrupt_file_is_refused_not_reset(void **state)
{
    (void)state;
    fdl_efuse_factory f = {.secure_boot = true, .hw_rev = 1};
    hash_of(f.root_hash, 3);
    fdl_efuse *e = NULL;
    assert_int_equal(fdl_efuse_create(g_path, &f, &e), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_raise_floor(e, 3, 4), FDL_EFUSE_OK);
    fdl_efuse_free(e);
    size_t len = 0;
    uint8_t *orig = read_file(g_path, &len);
    assert_int_equal(len, FDL_EFUSE_FILE_LEN);
    uint8_t *buf = malloc(len + 1);
    assert_non_null(buf);
    struct {
        const char *what;
        size_t off;      /* byte flipped (or SIZE_MAX: length change) */
        uint8_t x;
        bool reseal;
        long dlen;
    } cases[] = {
        {"magic", 0, 0x20, false, 0},
        {"format version", 7, 0x02, false, 0},
        {"bank bit, checksum stale", 8 + FDL_EFUSE_OFF_ROOT + 5, 0x01, false, 0},
        {"checksum", 8 + FDL_EFUSE_BANK_LEN + 3, 0x80, false, 0},
        {"floor with a hole, resealed", 8 + FDL_EFUSE_OFF_FLOOR + 2 * FDL_EFUSE_FLOOR_BYTES + 4, 0x01, true, 0},
        {"reserved flag bit, resealed", 8 + FDL_EFUSE_OFF_FLAGS, 0x40, true, 0},
        {"revoke bit of no slot, resealed", 8 + FDL_EFUSE_OFF_REVOKE, 0x80, true, 0},
        {"truncated", SIZE_MAX, 0, false, -1},
        {"one byte longer", SIZE_MAX, 0, false, 1},
        {"empty", SIZE_MAX, 0, false, -(long)FDL_EFUSE_FILE_LEN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(buf, orig, len);
        size_t n = len;
        if (cases[i].off != SIZE_MAX) {
            buf[cases[i].off] ^= cases[i].x;
            if (cases[i].reseal)
                reseal(buf);
        } else {
            n = (size_t)((long)len + cases[i].dlen);
            buf[len] = 0;
        }
        write_file(g_path, buf, n);
        fdl_efuse *c = NULL;
        fdl_efuse_status st = fdl_efuse_open(g_path, &c);
        if (st != FDL_EFUSE_ERR_CORRUPT)
            fail_msg("%s: %s", cases[i].what, fdl_efuse_strerror(st));
        assert_null(c);
        /* Refused, and the file is left as found: nothing "repairs" it to blank. */
        size_t after_len = 0;
        uint8_t *after = read_file(g_path, &after_len);
        assert_int_equal(after_len, n);
        assert_memory_equal(after, buf, n);
        free(after);
    }
    /* The untouched file still opens with everything it had. */
    write_file(g_path, orig, len);
    assert_int_equal(fdl_efuse_open(g_path, &e), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_floor(e, 3), 4);
    assert_true(fdl_efuse_secure_boot(e));
    fdl_efuse_free(e);
    free(buf);
    free(orig);
}

static void failed_persist_changes_nothing(void **state)
{
    (void)state;
    fdl_efuse *e = NULL;
    char moved[700], inner[720];
    assert_int_equal(fdl_efuse_create(g_path, NULL, &e), FDL_EFUSE_OK);
    /* A non-empty directory where the file was: the atomic replace cannot
     * rename over it (this fails for root too, unlike a read-only directory). */
    snprintf(moved, sizeof moved, "%s.away", g_path);
    snprintf(inner, sizeof inner, "%s/x", g_path);
    assert_int_equal(rename(g_path, moved), 0);
    assert_int_equal(mkdir(g_path, 0700), 0);
    write_file(inner, (const uint8_t *)"x", 1);
    assert_int_equal(fdl_efuse_raise_floor(e, 2, 3), FDL_EFUSE_ERR_IO);
    assert_int_equal(fdl_efuse_floor(e, 2), 0);
    assert_int_equal(unlink(inner), 0);
    assert_int_equal(rmdir(g_path), 0);
    assert_int_equal(rename(moved, g_path), 0);
    e = reopen(e);
    assert_int_equal(fdl_efuse_floor(e, 2), 0);
    fdl_efuse_free(e);
}

static void allocations_balance(void **state)
{
    (void)state;
    fdl_alloc_stats before = fdl_alloc_get_stats();
    fdl_efuse *e = NULL;
    assert_int_equal(fdl_efuse_create(g_path, NULL, &e), FDL_EFUSE_OK);
    fdl_efuse_free(e);
    for (uint64_t n = 1; n <= 2; n++) {
        fdl_alloc_fail_nth(n);
        assert_int_equal(fdl_efuse_open(g_path, &e), FDL_EFUSE_ERR_NOMEM);
        assert_null(e);
    }
    fdl_alloc_fail_nth(0);
    assert_int_equal(fdl_efuse_open(g_path, &e), FDL_EFUSE_OK);
    fdl_efuse_free(e);
    fdl_efuse_free(NULL);
    fdl_alloc_stats after = fdl_alloc_get_stats();
    assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(factory_programming_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(blown_bit_cannot_be_cleared, setup, teardown),
        cmocka_unit_test_setup_teardown(root_hash_programs_once, setup, teardown),
        cmocka_unit_test_setup_teardown(floors_only_rise, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_file_is_refused_not_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_persist_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(allocations_balance, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
