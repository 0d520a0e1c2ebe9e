/* tests/test_fwflash.c — the boot-control record (two copies, seq, CRC), slots, the power-cut counter. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/fwflash.h"
#include "sim/alloc.h"

static char g_dir[512];
static char g_bc[600];

static int setup(void **state)
{
    (void)state;
    fdl_test_mkdtemp("fwflash", g_dir, sizeof g_dir);
    snprintf(g_bc, sizeof g_bc, "%s/bootctl", g_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_test_rmrf(g_dir);
    return 0;
}

/* A record with an application in slot A (factory) and nothing else. */
static fdl_bootctl base_record(void)
{
    fdl_bootctl bc;
    memset(&bc, 0, sizeof bc);
    fdl_bootctl_tier *t = &bc.tier[3];
    t->state = FDL_TS_GOOD;
    t->active = 0;
    t->slot[0].src = FDL_SLOT_FACTORY;
    t->slot[0].size = 4096;
    memset(t->slot[0].sha256, 0xab, 32);
    return bc;
}

static fdl_flash *open_flash(void)
{
    fdl_flash *fl = NULL;
    char err[256] = "";
    if (fdl_flash_open(g_dir, &fl, err, sizeof err) != 0)
        fail_msg("open: %s", err);
    return fl;
}

static void read_bootctl(uint8_t buf[2 * FDL_BOOTCTL_COPY_LEN])
{
    FILE *f = fopen(g_bc, "rb");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, 2 * FDL_BOOTCTL_COPY_LEN, f), 2 * FDL_BOOTCTL_COPY_LEN);
    fclose(f);
}

static void write_bootctl(const uint8_t buf[2 * FDL_BOOTCTL_COPY_LEN])
{
    FILE *f = fopen(g_bc, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, 2 * FDL_BOOTCTL_COPY_LEN, f), 2 * FDL_BOOTCTL_COPY_LEN);
    fclose(f);
}

static void crc32_matches_the_standard(void **state)
{
    (void)state;
    assert_int_equal(fdl_crc32("123456789", 9), 0xCBF43926u);
    assert_int_equal(fdl_crc32("", 0), 0);
}

static void codec_round_trips_and_validates(void **state)
{
    (void)state;
    fdl_bootctl bc = base_record(), back;
    bc.seq = 42;
    bc.job_seq = 7;
    snprintf(bc.job, sizeof bc.job, "job-1");
    bc.tier[3].state = FDL_TS_TRIAL;
    bc.tier[3].slot[1].src = FDL_SLOT_OWN;
    bc.tier[3].slot[1].size = 777;
    bc.tier[3].trial_ms = 600000;
    bc.tier[3].deadline_ms = 1234567;
    bc.tier[3].trial_boots = 2;
    uint8_t buf[FDL_BOOTCTL_COPY_LEN];
    fdl_bootctl_encode(&bc, buf);
    assert_int_equal(fdl_bootctl_decode(buf, &back), 0);
    uint8_t again[FDL_BOOTCTL_COPY_LEN];
    fdl_bootctl_encode(&back, again);
    assert_memory_equal(buf, again, sizeof buf);
    assert_int_equal(back.seq, 42);
    assert_string_equal(back.job, "job-1");
    assert_int_equal(back.tier[3].deadline_ms, 1234567);
    assert_int_equal(back.tier[3].slot[1].size, 777);

    /* Every single bit flip of a copy is caught (CRC-32 detects all of them). */
    for (size_t i = 0; i < sizeof buf * 8; i += 7) {
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
        assert_int_not_equal(fdl_bootctl_decode(buf, &back), 0);
        buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* Fields out of range with a valid CRC are refused too. */
    static const char *const bad[] = {"state", "active", "src", "good without image", "trial without image"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        fdl_bootctl_encode(&bc, buf);
        uint8_t *t3 = buf + 88 + 2 * 100;
        switch (k) {
        case 0: t3[0] = 4; break;
        case 1: t3[1] = 2; break;
        case 2: t3[20] = 3; break;
        case 3: t3[0] = FDL_TS_GOOD; t3[20] = FDL_SLOT_EMPTY; break;
        case 4: t3[20 + 40] = FDL_SLOT_EMPTY; break;
        }
        uint32_t c = fdl_crc32(buf, FDL_BOOTCTL_COPY_LEN - 4);
        for (int i = 0; i < 4; i++)
            buf[FDL_BOOTCTL_COPY_LEN - 4 + i] = (uint8_t)(c >> (24 - 8 * i));
        if (fdl_bootctl_decode(buf, &back) == 0)
            fail_msg("accepted a record with a bad %s", bad[k]);
    }
    /* A job id without its NUL. */
    fdl_bootctl_encode(&bc, buf);
    memset(buf + 24, 'x', FDL_BOOTCTL_JOB_MAX);
    uint32_t c = fdl_crc32(buf, FDL_BOOTCTL_COPY_LEN - 4);
    for (int i = 0; i < 4; i++)
        buf[FDL_BOOTCTL_COPY_LEN - 4 + i] = (uint8_t)(c >> (24 - 8 * i));
    assert_int_not_equal(fdl_bootctl_decode(buf, &back), 0);
}

static void commits_alternate_copies(void **state)
{
    (void)state;
    fdl_bootctl bc = base_record();
    char err[256];
    assert_int_equal(fdl_flash_create(g_dir, &bc, err, sizeof err), 0);
    fdl_flash *fl = open_flash();
    assert_int_equal(fdl_flash_bootctl(fl)->seq, 1);
    unsigned first = fdl_flash_current_copy(fl);
    for (uint64_t i = 1; i <= 5; i++) {
        fdl_bootctl next = *fdl_flash_bootctl(fl);
        next.job_seq = i * 10;
        assert_int_equal(fdl_flash_commit(fl, &next), 0);
        assert_int_equal(fdl_flash_bootctl(fl)->seq, 1 + i);
        assert_int_equal(fdl_flash_current_copy(fl), (first + i) % 2);
        assert_int_equal(fdl_flash_writes(fl), i);
    }
    fdl_flash_free(fl);
    fl = open_flash();
    assert_int_equal(fdl_flash_bootctl(fl)->seq, 6);
    assert_int_equal(fdl_flash_bootctl(fl)->job_seq, 50);
    /* Both copies hold valid records: the newer one and the one before it. */
    uint8_t raw[2 * FDL_BOOTCTL_COPY_LEN];
    read_bootctl(raw);
    fdl_bootctl c0, c1;
    assert_int_equal(fdl_bootctl_decode(raw, &c0), 0);
    assert_int_equal(fdl_bootctl_decode(raw + FDL_BOOTCTL_COPY_LEN, &c1), 0);
    assert_int_equal(c0.seq + c1.seq, 11);
    fdl_flash_free(fl);
}

static void torn_commit_keeps_the_previous_record(void **state)
{
    (void)state;
    fdl_bootctl bc = base_record();
    assert_int_equal(fdl_flash_create(g_dir, &bc, NULL, 0), 0);
    fdl_flash *fl = open_flash();
    fdl_bootctl next = *fdl_flash_bootctl(fl);
    next.job_seq = 1;
    assert_int_equal(fdl_flash_commit(fl, &next), 0);
    next.job_seq = 2;
    fdl_flash_set_power_cut(fl, fdl_flash_writes(fl) + 1);
    assert_int_equal(fdl_flash_commit(fl, &next), FDL_FLASH_POWER_LOSS);
    assert_true(fdl_flash_power_lost(fl));
    assert_int_equal(fdl_flash_bootctl(fl)->job_seq, 1);
    /* Dead until the reboot: nothing is written, nothing counted. */
    uint64_t w = fdl_flash_writes(fl);
    assert_int_equal(fdl_flash_commit(fl, &next), FDL_FLASH_POWER_LOSS);
    assert_int_equal(fdl_flash_slot_erase(fl, 3, 1), FDL_FLASH_POWER_LOSS);
    assert_int_equal(fdl_flash_nv_write(fl), FDL_FLASH_POWER_LOSS);
    assert_int_equal(fdl_flash_writes(fl), w);
    /* The torn copy is invalid on disk, the other one is the record. */
    uint8_t raw[2 * FDL_BOOTCTL_COPY_LEN];
    read_bootctl(raw);
    fdl_bootctl c;
    unsigned cur = fdl_flash_current_copy(fl);
    assert_int_not_equal(fdl_bootctl_decode(raw + (1 - cur) * FDL_BOOTCTL_COPY_LEN, &c), 0);
    fdl_flash_power_on(fl);
    assert_int_equal(fdl_flash_reload(fl), 0);
    assert_int_equal(fdl_flash_bootctl(fl)->job_seq, 1);
    assert_int_equal(fdl_flash_current_copy(fl), cur);
    /* After the reboot a commit goes over the torn copy and wins. */
    assert_int_equal(fdl_flash_commit(fl, &next), 0);
    fdl_flash_free(fl);
    fl = open_flash();
    assert_int_equal(fdl_flash_bootctl(fl)->job_seq, 2);
    assert_int_equal(fdl_flash_current_copy(fl), 1 - cur);
    fdl_flash_free(fl);
}

static void one_bad_copy_is_survived_two_are_not(void **state)
{
    (void)state;
    fdl_bootctl bc = base_record();
    assert_int_equal(fdl_flash_create(g_dir, &bc, NULL, 0), 0);
    fdl_flash *fl = open_flash();
    fdl_bootctl next = *fdl_flash_bootctl(fl);
    next.job_seq = 9;
    assert_int_equal(fdl_flash_commit(fl, &next), 0);
    unsigned cur = fdl_flash_current_copy(fl);
    fdl_flash_free(fl);
    uint8_t raw[2 * FDL_BOOTCTL_COPY_LEN];
    read_bootctl(raw);
    /* The newer copy rots: the older record is what the device finds. */
    raw[cur * FDL_BOOTCTL_COPY_LEN + 100] ^= 0x10;
    write_bootctl(raw);
    fl = open_flash();
    assert_int_equal(fdl_flash_bootctl(fl)->job_seq, 0);
    assert_int_equal(fdl_flash_current_copy(fl), 1 - cur);
    fdl_flash_free(fl);
    raw[(1 - cur) * FDL_BOOTCTL_COPY_LEN + 7] ^= 0x01;
    write_bootctl(raw);
    char err[256] = "";
    fdl_flash *none = NULL;
    assert_int_equal(fdl_flash_open(g_dir, &none, err, sizeof err), -1);
    assert_null(none);
    assert_non_null(strstr(err, "no valid boot-control record"));
    /* A short file is no record either. */
    assert_int_equal(truncate(g_bc, FDL_BOOTCTL_COPY_LEN - 1), 0);
    assert_int_equal(fdl_flash_open(g_dir, &none, err, sizeof err), -1);
}

static size_t file_size(const char *p)
{
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    return (size_t)sb.st_size;
}

static void slot_writes_are_counted_and_torn(void **state)
{
    (void)state;
    fdl_bootctl bc = base_record();
    assert_int_equal(fdl_flash_create(g_dir, &bc, NULL, 0), 0);
    fdl_flash *fl = open_flash();
    char path[4096];
    assert_int_equal(fdl_flash_slot_path(fl, 3, 1, path, sizeof path), 0);
    assert_non_null(strstr(path, "application-b.img"));
    assert_int_equal(fdl_flash_slot_path(fl, 0, 1, path, sizeof path), -1);
    assert_int_equal(fdl_flash_slot_path(fl, 3, 2, path, sizeof path), -1);
    assert_int_equal(fdl_flash_slot_path(fl, 3, 1, path, sizeof path), 0);
    uint8_t block[1000];
    memset(block, 0x5a, sizeof block);
    assert_int_equal(fdl_flash_slot_erase(fl, 3, 1), 0);
    assert_int_equal(file_size(path), 0);
    assert_int_equal(fdl_flash_slot_write(fl, 3, 1, 0, block, sizeof block), 0);
    assert_int_equal(fdl_flash_slot_write(fl, 3, 1, 1000, block, sizeof block), 0);
    assert_int_equal(file_size(path), 2000);
    assert_int_equal(fdl_flash_nv_write(fl), 0);
    assert_int_equal(fdl_flash_writes(fl), 4);
    /* Cut the next slot write: half of it lands. */
    fdl_flash_set_power_cut(fl, 5);
    assert_int_equal(fdl_flash_slot_write(fl, 3, 1, 2000, block, sizeof block), FDL_FLASH_POWER_LOSS);
    assert_int_equal(file_size(path), 2500);
    fdl_flash_power_on(fl);
    /* The cut is one shot. */
    assert_int_equal(fdl_flash_slot_write(fl, 3, 1, 2500, block, 500), 0);
    /* Cut an erase: half of the old content is gone, not all of it. */
    fdl_flash_set_power_cut(fl, 7);
    assert_int_equal(fdl_flash_slot_erase(fl, 3, 1), FDL_FLASH_POWER_LOSS);
    assert_int_equal(file_size(path), 1500);
    fdl_flash_power_on(fl);
    /* Cut a fuse write. */
    fdl_flash_set_power_cut(fl, 8);
    assert_int_equal(fdl_flash_nv_write(fl), FDL_FLASH_POWER_LOSS);
    assert_int_equal(fdl_flash_writes(fl), 8);
    fdl_flash_free(fl);
}

static void allocations_balance(void **state)
{
    (void)state;
    fdl_bootctl bc = base_record();
    assert_int_equal(fdl_flash_create(g_dir, &bc, NULL, 0), 0);
    fdl_alloc_stats before = fdl_alloc_get_stats();
    for (uint64_t n = 1; n <= 2; n++) {
        fdl_flash *fl = NULL;
        fdl_alloc_fail_nth(n);
        assert_int_equal(fdl_flash_open(g_dir, &fl, NULL, 0), -1);
        assert_null(fl);
    }
    fdl_alloc_fail_nth(0);
    fdl_flash *fl = open_flash();
    fdl_flash_free(fl);
    fdl_flash_free(NULL);
    fdl_alloc_stats after = fdl_alloc_get_stats();
    assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32_matches_the_standard),
        cmocka_unit_test(codec_round_trips_and_validates),
        cmocka_unit_test_setup_teardown(commits_alternate_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(torn_commit_keeps_the_previous_record, setup, teardown),
        cmocka_unit_test_setup_teardown(one_bad_copy_is_survived_two_are_not, setup, teardown),
        cmocka_unit_test_setup_teardown(slot_writes_are_counted_and_torn, setup, teardown),
        cmocka_unit_test_setup_teardown(allocations_balance, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
