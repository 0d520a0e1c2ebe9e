/*
 * tests/test_firmware.c — the verified boot chain of one device: fuses, root
 * key, tier keys, rollback, tampering, fallback, recovery, trial and revert,
 * confirm and the floor, the boot record, shared factory images and the caches.
 */
#include "fwdev.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/efuse.h"
#include "devices/fwflash.h"
#include "sim/alloc.h"

static fwd_keys g_keys;
static char g_tmp[512];
static char g_dir[600];       /* the device's firmware directory */
static char g_factory[600];   /* shared factory images */

#define T0 1700000000000ull   /* virtual ms */

static int group_setup(void **state)
{
    (void)state;
    fwd_keys_new(&g_keys);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fwd_keys_free(&g_keys);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    fdl_test_mkdtemp("firmware", g_tmp, sizeof g_tmp);
    snprintf(g_dir, sizeof g_dir, "%s/devices/dev-1/fw", g_tmp);
    snprintf(g_factory, sizeof g_factory, "%s/firmware/factory", g_tmp);
    fdl_fw_cache_clear();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fdl_test_rmrf(g_tmp);
    return 0;
}

static void path_in(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    if (off < 0) {
        assert_int_equal(fseek(f, off, SEEK_END), 0);
    } else {
        assert_int_equal(fseek(f, off, SEEK_SET), 0);
    }
    int c = fgetc(f);
    assert_true(c != EOF);
    assert_int_equal(fseek(f, -1, SEEK_CUR), 0);
    fputc(c ^ 0x01, f);
    fclose(f);
}

/* Every tier that ran in rec ran verified, and the application did not run in recovery. */
static void assert_record_sound(const fdl_boot_record *r)
{
    for (unsigned t = 1; t < FDL_TIER_COUNT; t++)
        if (r->tier[t].ran && t != FDL_TIER_BOOTLOADER)
            assert_true(r->tier[t].verified);
    if (r->outcome == FDL_BOOT_RECOVERY || r->outcome == FDL_BOOT_POWER_LOSS)
        assert_false(r->tier[FDL_TIER_APPLICATION].ran);
}

/* ---- the factory device --------------------------------------------------------- */

static void factory_device_boots_verified(void **state)
{
    (void)state;
    fwd_factory fa;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_true(fdl_fw_in_recovery(fw));   /* nothing ran yet */
    fdl_boot_record r;
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    assert_record_sound(&r);
    assert_int_equal(r.boot_no, 1);
    assert_string_equal(r.why, "");
    static const unsigned present[] = {FDL_TIER_BOOTLOADER, FDL_TIER_KEYRING, FDL_TIER_KERNEL, FDL_TIER_APPLICATION};
    for (size_t i = 0; i < 4; i++) {
        unsigned t = present[i];
        uint8_t sha[32];
        fwd_sha(fa.img[t], fa.f.image_len[t], sha);
        assert_true(r.tier[t].present);
        assert_true(r.tier[t].ran);
        assert_true(r.tier[t].verified);
        assert_int_equal(r.tier[t].slot, 0);
        assert_false(r.tier[t].trial);
        assert_int_equal(r.tier[t].version, FWD_VERSION_1);
        assert_memory_equal(r.tier[t].sha256, sha, 32);
        assert_int_equal(r.tier[t].refused_slot, -1);
        /* The factory fused every floor at its image's counter. */
        assert_int_equal(fdl_fw_floor(fw, t), 1);
    }
    assert_false(r.tier[FDL_TIER_MODULES].present);
    assert_non_null(fdl_fw_keyring(fw));
    assert_int_equal(fdl_fw_hw_rev(fw), 1);
    assert_false(fdl_fw_debug_open(fw));
    assert_int_equal(fdl_fw_running_version(fw, FDL_TIER_APPLICATION), FWD_VERSION_1);
    size_t plen = 0;
    const uint8_t *p = fdl_fw_app_payload(fw, &plen);
    assert_non_null(p);
    assert_int_equal(plen, FWD_PAYLOAD);
    assert_memory_equal(p, "FDL-PAYLOAD 1\ntier=application\n", 31);
    assert_false(fdl_fw_in_trial(fw, NULL));
    fdl_fw_free(fw);

    /* Reopened without the factory: the storage and the boot count persist. */
    fw = fwd_open(g_dir, NULL);
    assert_int_equal(fdl_fw_boot(fw, T0 + 1, &r), FDL_BOOT_OK);
    assert_int_equal(r.boot_no, 2);
    fdl_fw_free(fw);
    /* A directory that is not a device's is not turned into one without a factory. */
    char other[700];
    path_in(other, sizeof other, g_tmp, "nothing");
    fdl_fw *none = NULL;
    char err[256];
    assert_int_equal(fdl_fw_open(other, NULL, &none, err, sizeof err), -1);
    assert_null(none);
    fwd_factory_free(&fa);
}

static void factory_images_are_shared_by_content(void **state)
{
    (void)state;
    fwd_factory fa;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *dev[3];
    for (int i = 0; i < 3; i++) {
        char d[700];
        snprintf(d, sizeof d, "%s/devices/dev-%d/fw", g_tmp, i);
        dev[i] = fwd_open(d, &fa.f);
        /* Only the record, the fuses, the root key and the factory path: no image copies. */
        assert_int_equal(count_files(d), 4);
    }
    assert_int_equal(count_files(g_factory), 4);
    char hex[65], p[800];
    uint8_t sha[32];
    fwd_sha(fa.img[FDL_TIER_APPLICATION], fa.f.image_len[FDL_TIER_APPLICATION], sha);
    fwd_hex(sha, hex);
    snprintf(p, sizeof p, "%s/%s.img", g_factory, hex);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0444);

    fdl_fw_cache_stats st;
    fdl_fw_cache_clear();
    for (int i = 0; i < 3; i++)
        assert_int_equal(fdl_fw_boot(dev[i], T0, NULL), FDL_BOOT_OK);
    fdl_fw_cache_get_stats(&st);
    /* One read and one signature check per image for the whole fleet. */
    assert_int_equal(st.img_misses, 4);
    assert_int_equal(st.img_hits, 8);
    assert_int_equal(st.sig_misses, 4);
    assert_int_equal(st.sig_hits, 8);
    for (int i = 0; i < 3; i++)
        fdl_fw_free(dev[i]);

    /* Without a factory directory, each device keeps its own copies. */
    fa.f.factory_dir = NULL;
    char own[700];
    snprintf(own, sizeof own, "%s/devices/own/fw", g_tmp);
    fdl_fw *fw = fwd_open(own, &fa.f);
    assert_int_equal(count_files(own), 3 + 4);
    assert_int_equal(fdl_fw_boot(fw, T0, NULL), FDL_BOOT_OK);
    fdl_fw_free(fw);
    fwd_factory_free(&fa);
}

static void factory_is_validated_once_or_per_device(void **state)
{
    (void)state;
    fwd_factory fa;
    char err[256];
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    assert_int_equal(fdl_fw_factory_prepare(&fa.f, err, sizeof err), 0);
    assert_true(fa.f.prepared);
    uint8_t sha[32];
    fwd_sha(fa.img[FDL_TIER_KERNEL], fa.f.image_len[FDL_TIER_KERNEL], sha);
    assert_memory_equal(fa.f.sha256[FDL_TIER_KERNEL], sha, 32);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    fdl_boot_record r;
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    assert_memory_equal(r.tier[FDL_TIER_KERNEL].sha256, sha, 32);
    fdl_fw_free(fw);
    /* What a factory may not ship, refused by prepare and by an unprepared open alike. */
    for (int i = 0; i < 5; i++) {
        fwd_factory bad;
        fwd_factory_make(&bad, &g_keys, g_factory, 1);
        size_t len = 0;
        uint8_t *img;
        const char *want = NULL;
        switch (i) {
        case 0:
            fwd_factory_set(&bad, FDL_TIER_APPLICATION, NULL, 0);
            want = "no application image";
            break;
        case 1:
            img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, FWD_VERSION_1, 1, 0, "ok", 10, &len);
            fwd_factory_set(&bad, FDL_TIER_KERNEL, img, len);
            want = "wrong tier";
            break;
        case 2:
            img = fwd_image(&g_keys.tier[2], FDL_TIER_KERNEL, FWD_VERSION_1, 256, 0, "ok", 10, &len);
            fwd_factory_set(&bad, FDL_TIER_KERNEL, img, len);
            want = "counter over the fuse maximum";
            break;
        case 3:
            bad.img[FDL_TIER_KERNEL][bad.f.image_len[FDL_TIER_KERNEL] - 1] ^= 1;
            want = "payload SHA-256 differs";
            break;
        case 4:
            bad.f.root_pub = NULL;
            want = "no root public key";
            break;
        }
        char dir2[700];
        snprintf(dir2, sizeof dir2, "%s/devices/bad-%d/fw", g_tmp, i);
        fdl_fw *none = NULL;
        assert_int_equal(fdl_fw_open(dir2, &bad.f, &none, err, sizeof err), -1);
        assert_null(none);
        if (!strstr(err, want))
            fail_msg("case %d: %s", i, err);
        assert_int_not_equal(access(dir2, F_OK), 0);   /* nothing left behind */
        assert_int_equal(fdl_fw_factory_prepare(&bad.f, err, sizeof err), -1);
        assert_false(bad.f.prepared);
        assert_non_null(strstr(err, want));
        fwd_factory_free(&bad);
    }
    fwd_factory_free(&fa);
}

/* ---- the root of trust ------------------------------------------------------------ */

static void secure_boot_refuses_another_root(void **state)
{
    (void)state;
    fwd_factory fa;
    fdl_boot_record r;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    size_t len;
    uint8_t *bl = fwd_image(&g_keys.rogue, FDL_TIER_BOOTLOADER, FWD_VERSION_1, 1, 0, "ok", 100, &len);
    fwd_factory_set(&fa, FDL_TIER_BOOTLOADER, bl, len);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_RECOVERY);
    assert_record_sound(&r);
    assert_false(r.tier[FDL_TIER_BOOTLOADER].ran);
    assert_int_equal(r.tier[FDL_TIER_BOOTLOADER].refused, FDL_FW_ERR_KEY_UNKNOWN);
    assert_null(fdl_fw_keyring(fw));
    assert_null(fdl_fw_app_payload(fw, NULL));
    assert_non_null(strstr(r.why, "bootloader"));
    fdl_fw_free(fw);

    /* The attacker also puts the rogue key into the flash key area: its hash is
     * not fused, so it verifies nothing. */
    char rk[700];
    path_in(rk, sizeof rk, g_dir, "rootkeys");
    FILE *f = fopen(rk, "ab");
    assert_non_null(f);
    assert_int_equal(fwrite(g_keys.rogue.pub, 1, FDL_FW_PUB_LEN, f), FDL_FW_PUB_LEN);
    fclose(f);
    fw = fwd_open(g_dir, NULL);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_RECOVERY);
    assert_int_equal(r.tier[FDL_TIER_BOOTLOADER].refused, FDL_FW_ERR_KEY_UNKNOWN);
    /* Nor can it add a fuse slot for it: the factory programmed slot 0 and the
     * API refuses a second programming of a slot. */
    fdl_fw_free(fw);
    fdl_efuse *e = NULL;
    char ep[700];
    path_in(ep, sizeof ep, g_dir, "efuse");
    assert_int_equal(fdl_efuse_open(ep, &e), FDL_EFUSE_OK);
    uint8_t rogue_hash[32];
    fwd_sha(g_keys.rogue.pub, FDL_FW_PUB_LEN, rogue_hash);
    assert_int_equal(fdl_efuse_program_root(e, 0, rogue_hash), FDL_EFUSE_ERR_PROGRAMMED);
    fdl_efuse_free(e);
    fdl_test_rmrf(g_dir);

    /* A device fused for another root refuses even the real root's bootloader. */
    fwd_factory_free(&fa);
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    memcpy(fa.f.root_key_hash, rogue_hash, 32);
    fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_RECOVERY);
    assert_int_equal(r.tier[FDL_TIER_BOOTLOADER].refused, FDL_FW_ERR_KEY_UNKNOWN);
    fdl_fw_free(fw);
    fdl_test_rmrf(g_dir);

    /* With the secure-boot fuse not blown the ROM runs the rogue bootloader
     * unchecked, and the record says so. */
    memset(fa.f.root_key_hash, 0, 32);
    fa.f.secure_boot = false;
    fa.f.debug_disabled = false;
    bl = fwd_image(&g_keys.rogue, FDL_TIER_BOOTLOADER, FWD_VERSION_1, 1, 0, "ok", 100, &len);
    fwd_factory_set(&fa, FDL_TIER_BOOTLOADER, bl, len);
    fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    assert_true(r.tier[FDL_TIER_BOOTLOADER].ran);
    assert_false(r.tier[FDL_TIER_BOOTLOADER].verified);
    assert_true(r.tier[FDL_TIER_KEYRING].verified);
    assert_true(fdl_fw_debug_open(fw));
    fdl_fw_free(fw);
    fwd_factory_free(&fa);
}

static void revoked_root_slot_verifies_nothing(void **state)
{
    (void)state;
    fwd_factory fa;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    fdl_fw_free(fw);
    char ep[700];
    path_in(ep, sizeof ep, g_dir, "efuse");
    fdl_efuse *e = NULL;
    assert_int_equal(fdl_efuse_open(ep, &e), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_revoke_root(e, 0), FDL_EFUSE_OK);
    fdl_efuse_free(e);
    fw = fwd_open(g_dir, NULL);
    fdl_boot_record r;
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_RECOVERY);
    assert_int_equal(r.tier[FDL_TIER_BOOTLOADER].refused, FDL_FW_ERR_KEY_UNKNOWN);
    fdl_fw_free(fw);
    fwd_factory_free(&fa);
}

static void unreadable_storage_is_refused_not_reset(void **state)
{
    (void)state;
    fwd_factory fa;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    fdl_fw_free(fw);
    char p[700], err[256] = "";
    path_in(p, sizeof p, g_dir, "efuse");
    flip_byte(p, 20);
    fdl_fw *none = NULL;
    /* Even with a factory at hand, nothing is re-created over a device. */
    assert_int_equal(fdl_fw_open(g_dir, &fa.f, &none, err, sizeof err), -1);
    assert_null(none);
    assert_non_null(strstr(err, "corrupt"));
    flip_byte(p, 20);
    /* Both copies of the boot-control record rotten. */
    path_in(p, sizeof p, g_dir, "bootctl");
    flip_byte(p, 10);
    flip_byte(p, FDL_BOOTCTL_COPY_LEN + 10);
    assert_int_equal(fdl_fw_open(g_dir, &fa.f, &none, err, sizeof err), -1);
    assert_non_null(strstr(err, "boot-control"));
    flip_byte(p, 10);
    fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, NULL), FDL_BOOT_OK);
    fdl_fw_free(fw);
    fwd_factory_free(&fa);
}

/* ---- tier keys, rollback, tampering: each refused, the other slot runs ------------ */

typedef struct bad_case {
    const char *what;
    unsigned tier;
    fdl_fw_status want;
} bad_case;

static void refused_images_never_run(void **state)
{
    (void)state;
    fwd_factory fa;
    fwd_factory_make(&fa, &g_keys, g_factory, 2);
    const bad_case cases[] = {
        {"application signed with the kernel key", FDL_TIER_APPLICATION, FDL_FW_ERR_KEY_UNKNOWN},
        {"kernel signed with the application key", FDL_TIER_KERNEL, FDL_FW_ERR_KEY_UNKNOWN},
        {"bootloader signed with the application key", FDL_TIER_BOOTLOADER, FDL_FW_ERR_KEY_UNKNOWN},
        {"keyring signed with the jobs key", FDL_TIER_KEYRING, FDL_FW_ERR_KEY_UNKNOWN},
        {"unsigned application", FDL_TIER_APPLICATION, FDL_FW_ERR_KEY_UNKNOWN},
        {"application, counter below the floor", FDL_TIER_APPLICATION, FDL_FW_ERR_ROLLBACK},
        {"application, counter above the fuse maximum", FDL_TIER_APPLICATION, FDL_FW_ERR_ROLLBACK},
        {"application, payload tampered", FDL_TIER_APPLICATION, FDL_FW_ERR_HASH},
        {"application, signature tampered", FDL_TIER_APPLICATION, FDL_FW_ERR_SIGNATURE},
        {"application for another hardware revision", FDL_TIER_APPLICATION, FDL_FW_ERR_HW},
        {"kernel image in the application slot", FDL_TIER_APPLICATION, FDL_FW_ERR_WRONG_TIER},
        {"keyring that trusts the rogue key, signed by it", FDL_TIER_KEYRING, FDL_FW_ERR_KEY_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        size_t len = 0;
        uint8_t *img = NULL;
        uint32_t v2 = 0x02000000u;
        switch (i) {
        case 0: img = fwd_image(&g_keys.tier[FDL_TIER_KERNEL], FDL_TIER_APPLICATION, v2, 2, 0, "ok", 500, &len); break;
        case 1: img = fwd_image(&g_keys.tier[FDL_TIER_APPLICATION], FDL_TIER_KERNEL, v2, 2, 0, "ok", 500, &len); break;
        case 2: img = fwd_image(&g_keys.tier[FDL_TIER_APPLICATION], FDL_TIER_BOOTLOADER, v2, 2, 0, "ok", 500, &len); break;
        case 3: img = fwd_keyring_image(&g_keys, &g_keys.jobs, v2, 2, &len); break;
        case 4: img = fwd_image(NULL, FDL_TIER_APPLICATION, v2, 2, 0, "ok", 500, &len); break;
        case 5: img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, v2, 1, 0, "ok", 500, &len); break;
        case 6: img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, v2, FDL_EFUSE_FLOOR_MAX + 1, 0, "ok", 500, &len); break;
        case 7:
            img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, v2, 2, 0, "ok", 500, &len);
            img[len - 1] ^= 0x40;
            break;
        case 8:
            img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, v2, 2, 0, "ok", 500, &len);
            img[FDL_FW_SIGNED_LEN + 10] ^= 0x01;
            break;
        case 9: img = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, v2, 2, 7, "ok", 500, &len); break;
        case 10: img = fwd_image(&g_keys.tier[2], FDL_TIER_KERNEL, v2, 2, 0, "ok", 500, &len); break;
        case 11: img = fwd_keyring_image(&g_keys, &g_keys.rogue, v2, 2, &len); break;
        }
        fdl_fw *fw = fwd_open(g_dir, &fa.f);
        fdl_boot_record r;
        assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
        /* The check an OTA agent makes before writing refuses it too (except for
         * what only the payload shows). */
        fdl_fw_hdr h;
        assert_int_equal(fdl_fwimage_parse_hdr(img, len, &h), FDL_FW_OK);
        fdl_fw_status hst = fdl_fw_check_header(fw, &h, c->tier);
        if (c->want != FDL_FW_ERR_HASH && hst != c->want)
            fail_msg("%s: header check says %s", c->what, fdl_fw_strerror(hst));
        /* Written into the other slot anyway (as a compromised updater would), it
         * is refused at boot, the trial reverted, and the factory image runs. */
        fwd_install(fw, c->tier, img, len, 60000);
        fdl_boot_outcome out = fdl_fw_boot(fw, T0 + 10, &r);
        assert_record_sound(&r);
        if (out != FDL_BOOT_OK || r.tier[c->tier].refused != c->want)
            fail_msg("%s: boot %s, refused %s (%s)", c->what, fdl_boot_outcome_name(out),
                     fdl_fw_strerror(r.tier[c->tier].refused), r.why);
        assert_true(r.reverted);
        assert_int_equal(r.tier[c->tier].refused_slot, 1);
        assert_true(r.tier[c->tier].ran);
        assert_int_equal(r.tier[c->tier].slot, 0);
        assert_int_equal(r.tier[c->tier].version, FWD_VERSION_1);
        assert_int_equal(fdl_fw_floor(fw, c->tier), 2);
        /* Rejected for good: later boots do not try it again. */
        assert_int_equal(fdl_fw_boot(fw, T0 + 20, &r), FDL_BOOT_OK);
        assert_false(r.reverted);
        assert_int_equal(r.tier[c->tier].refused_slot, -1);
        fdl_fw_free(fw);
        free(img);
        fdl_test_rmrf(g_dir);
    }
    fwd_factory_free(&fa);
}

static void failed_active_slot_falls_back_or_recovers(void **state)
{
    (void)state;
    fwd_factory fa;
    fdl_boot_record r;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    /* A confirmed update with the same counter: the factory slot stays a valid fallback. */
    size_t len;
    uint8_t *v2 = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x02000000u, 1, 0, "ok", 5000, &len);
    fwd_install(fw, FDL_TIER_APPLICATION, v2, len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 1, &r), FDL_BOOT_TRIAL);
    assert_int_equal(fdl_fw_confirm(fw, T0 + 2), 0);
    assert_int_equal(fdl_fw_boot(fw, T0 + 3, &r), FDL_BOOT_OK);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].slot, 1);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, 0x02000000u);
    /* The written slot rots: the factory slot runs, and the record says why. */
    char p[700];
    path_in(p, sizeof p, g_dir, "application-b.img");
    flip_byte(p, -5);
    assert_int_equal(fdl_fw_boot(fw, T0 + 4, &r), FDL_BOOT_OK);
    assert_record_sound(&r);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].slot, 0);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].refused, FDL_FW_ERR_HASH);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].refused_slot, 1);
    assert_non_null(strstr(r.why, "fell back"));
    /* An update from the fallback writes over the rotten slot, never the running one. */
    uint8_t *v3 = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x03000000u, 3, 0, "ok", 5000, &len);
    fwd_install(fw, FDL_TIER_APPLICATION, v3, len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 5, &r), FDL_BOOT_TRIAL);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].slot, 1);
    assert_int_equal(fdl_fw_confirm(fw, T0 + 6), 0);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_APPLICATION), 3);
    /* Now the factory slot is below the floor: if the active slot rots, nothing
     * verifies and the device halts in recovery instead of running either. */
    flip_byte(p, -5);
    assert_int_equal(fdl_fw_boot(fw, T0 + 7, &r), FDL_BOOT_RECOVERY);
    assert_record_sound(&r);
    assert_false(r.tier[FDL_TIER_APPLICATION].ran);
    assert_non_null(strstr(r.why, "no slot verifies"));
    assert_non_null(strstr(r.why, "rollback"));
    assert_null(fdl_fw_app_payload(fw, NULL));
    assert_null(fdl_fw_keyring(fw));
    assert_int_equal(fdl_fw_update_begin(fw, FDL_TIER_APPLICATION, 1000), -1);   /* no updates in recovery */
    fdl_fw_free(fw);
    free(v2);
    free(v3);
    fwd_factory_free(&fa);
}

/* ---- trial, confirm, revert ----------------------------------------------------------- */

static void trial_reverts_at_deadline_and_floor_waits_for_confirm(void **state)
{
    (void)state;
    fwd_factory fa;
    fdl_boot_record r;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    size_t len;
    uint8_t *v2 = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x02000000u, 5, 0, "ok", 2000, &len);
    fwd_install(fw, FDL_TIER_APPLICATION, v2, len, 60000);
    /* Pending until the next boot; a second update of the tier is refused meanwhile. */
    assert_int_equal(fdl_fw_update_begin(fw, FDL_TIER_APPLICATION, (uint32_t)len), -1);
    assert_int_equal(fdl_fw_running_version(fw, FDL_TIER_APPLICATION), FWD_VERSION_1);
    assert_int_equal(fdl_fw_boot(fw, T0 + 1000, &r), FDL_BOOT_TRIAL);
    assert_true(r.tier[FDL_TIER_APPLICATION].trial);
    uint64_t deadline = 0;
    assert_true(fdl_fw_in_trial(fw, &deadline));
    assert_int_equal(deadline, T0 + 1000 + 60000);
    assert_int_equal(fdl_fw_trial_tier(fw), FDL_TIER_APPLICATION);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_APPLICATION), 1);   /* not before the confirm */
    /* One update at a time: no other tier is written while one is in trial. */
    assert_int_equal(fdl_fw_update_begin(fw, FDL_TIER_KERNEL, 1000), -1);
    /* A reset within the window boots it again in trial. */
    assert_int_equal(fdl_fw_boot(fw, T0 + 30000, &r), FDL_BOOT_TRIAL);
    /* At the deadline, unconfirmed: reverted, the factory image runs, floor unchanged. */
    assert_int_equal(fdl_fw_boot(fw, deadline, &r), FDL_BOOT_OK);
    assert_true(r.reverted);
    assert_non_null(strstr(r.why, "deadline"));
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].slot, 0);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_APPLICATION), 1);
    assert_int_equal(fdl_fw_confirm(fw, deadline + 1), -1);   /* nothing to confirm */

    /* Booted FDL_FW_TRIAL_BOOTS times without confirming (a crash loop) also reverts. */
    fwd_install(fw, FDL_TIER_APPLICATION, v2, len, 600000);
    for (int i = 0; i < FDL_FW_TRIAL_BOOTS; i++)
        assert_int_equal(fdl_fw_boot(fw, T0 + 100000 + (uint64_t)i, &r), FDL_BOOT_TRIAL);
    assert_int_equal(fdl_fw_boot(fw, T0 + 100010, &r), FDL_BOOT_OK);
    assert_true(r.reverted);
    assert_non_null(strstr(r.why, "boots"));

    /* Confirmed: the floor rises to its counter, then and only then. */
    fwd_install(fw, FDL_TIER_APPLICATION, v2, len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 200000, &r), FDL_BOOT_TRIAL);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_APPLICATION), 1);
    assert_int_equal(fdl_fw_confirm(fw, T0 + 200001), 0);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_APPLICATION), 5);
    assert_false(fdl_fw_in_trial(fw, NULL));
    /* After the deadline it is simply the image that runs. */
    assert_int_equal(fdl_fw_boot(fw, T0 + 10000000, &r), FDL_BOOT_OK);
    assert_false(r.reverted);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, 0x02000000u);
    fdl_fw_free(fw);
    /* The floor is in the fuses, not in RAM. */
    char ep[700];
    path_in(ep, sizeof ep, g_dir, "efuse");
    fdl_efuse *e = NULL;
    assert_int_equal(fdl_efuse_open(ep, &e), FDL_EFUSE_OK);
    assert_int_equal(fdl_efuse_floor(e, FDL_TIER_APPLICATION), 5);
    fdl_efuse_free(e);
    free(v2);
    fwd_factory_free(&fa);
}

static void crashing_trial_reverts_at_once_and_no_confirm_is_visible(void **state)
{
    (void)state;
    fwd_factory fa;
    fdl_boot_record r;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    size_t len;
    uint8_t *crash = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x02000000u, 2, 0, "crash", 800, &len);
    fwd_install(fw, FDL_TIER_APPLICATION, crash, len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 1, &r), FDL_BOOT_OK);
    assert_true(r.reverted);
    assert_non_null(strstr(r.why, "crashed"));
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, FWD_VERSION_1);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_APPLICATION), 1);
    free(crash);
    uint8_t *quiet = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x02000000u, 2, 0, "no-confirm", 800, &len);
    fwd_install(fw, FDL_TIER_APPLICATION, quiet, len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 2, &r), FDL_BOOT_TRIAL);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].behaviour, FDL_BEHAVE_NO_CONFIRM);
    assert_int_equal(fdl_fw_running_behaviour(fw, FDL_TIER_APPLICATION), FDL_BEHAVE_NO_CONFIRM);
    assert_int_equal(fdl_fw_running_behaviour(fw, FDL_TIER_KERNEL), FDL_BEHAVE_OK);
    free(quiet);
    fdl_fw_free(fw);
    fwd_factory_free(&fa);
}

static void new_tier_and_keyring_update(void **state)
{
    (void)state;
    fwd_factory fa;
    fdl_boot_record r;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    /* Modules were not installed at the factory: an update installs them in trial;
     * a revert leaves the tier absent again. */
    size_t len;
    uint8_t *mod = fwd_image(&g_keys.tier[4], FDL_TIER_MODULES, FWD_VERSION_1, 1, 0, "no-confirm", 300, &len);
    fwd_install(fw, FDL_TIER_MODULES, mod, len, 1000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 1, &r), FDL_BOOT_TRIAL);
    assert_true(r.tier[FDL_TIER_MODULES].trial);
    assert_int_equal(fdl_fw_boot(fw, T0 + 5000, &r), FDL_BOOT_OK);
    assert_true(r.reverted);
    assert_false(r.tier[FDL_TIER_MODULES].present);
    free(mod);
    mod = fwd_image(&g_keys.tier[4], FDL_TIER_MODULES, FWD_VERSION_1, 1, 0, "ok", 300, &len);
    fwd_install(fw, FDL_TIER_MODULES, mod, len, 1000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 6000, &r), FDL_BOOT_TRIAL);
    assert_int_equal(fdl_fw_confirm(fw, T0 + 6001), 0);
    assert_int_equal(fdl_fw_boot(fw, T0 + 7000, &r), FDL_BOOT_OK);
    assert_true(r.tier[FDL_TIER_MODULES].ran);
    free(mod);

    fdl_fw_free(fw);
    fwd_factory_free(&fa);
}

/* A keyring image over kr, signed by the root key. */
static uint8_t *keyring_img(const fdl_keyring *kr, uint32_t counter, size_t *len)
{
    uint8_t payload[FDL_KEYRING_MAX * FDL_KEYRING_ENTRY_LEN + 6];
    size_t plen = fdl_keyring_encode(kr, payload, sizeof payload);
    assert_true(plen > 0);
    return fwt_image(&g_keys.root, FDL_TIER_KEYRING, 0x01000000u + (counter << 16), counter, 0, payload, plen, len);
}

static void keyring_rotation_with_dual_trust(void **state)
{
    (void)state;
    fwd_factory fa;
    fdl_boot_record r;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    fwt_key *old_app = &g_keys.tier[FDL_TIER_APPLICATION];
    fwt_key new_app;
    fwt_key_new(&new_app);
    fdl_keyring kr;
    size_t len;

    /* A keyring that drops the key the running application is signed with: in
     * trial, the chain after it cannot verify; the trial keyring is reverted in
     * the same boot rather than the device halting. */
    memset(&kr, 0, sizeof kr);
    fwt_keyring_add(&kr, &g_keys.tier[FDL_TIER_KERNEL], FDL_TIER_KERNEL, FDL_KEY_CURRENT);
    fwt_keyring_add(&kr, &new_app, FDL_TIER_APPLICATION, FDL_KEY_CURRENT);
    fwt_keyring_add(&kr, &g_keys.jobs, FDL_KEY_USAGE_JOBS, FDL_KEY_CURRENT);
    size_t only_new_len = 0;
    uint8_t *only_new = keyring_img(&kr, 3, &only_new_len);
    fwd_install(fw, FDL_TIER_KEYRING, only_new, only_new_len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 1, &r), FDL_BOOT_OK);
    assert_record_sound(&r);
    assert_true(r.reverted);
    assert_non_null(strstr(r.why, "keyring trial reverted"));
    assert_int_equal(r.tier[FDL_TIER_KEYRING].slot, 0);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_KEYRING), 1);

    /* The dual-trust window: current (old) and next (new) application keys. */
    memset(&kr, 0, sizeof kr);
    fwt_keyring_add(&kr, &g_keys.tier[FDL_TIER_KERNEL], FDL_TIER_KERNEL, FDL_KEY_CURRENT);
    fwt_keyring_add(&kr, old_app, FDL_TIER_APPLICATION, FDL_KEY_CURRENT);
    fwt_keyring_add(&kr, &new_app, FDL_TIER_APPLICATION, FDL_KEY_NEXT);
    fwt_keyring_add(&kr, &g_keys.jobs, FDL_KEY_USAGE_JOBS, FDL_KEY_CURRENT);
    uint8_t *dual = keyring_img(&kr, 2, &len);
    size_t dual_len = len;
    fwd_install(fw, FDL_TIER_KEYRING, dual, len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 2, &r), FDL_BOOT_TRIAL);
    assert_true(r.tier[FDL_TIER_KEYRING].trial);
    assert_int_equal(fdl_fw_confirm(fw, T0 + 3), 0);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_KEYRING), 2);
    /* The application moves to the new key. */
    uint8_t *app2 = fwd_image(&new_app, FDL_TIER_APPLICATION, 0x02000000u, 2, 0, "ok", 700, &len);
    fwd_install(fw, FDL_TIER_APPLICATION, app2, len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 4, &r), FDL_BOOT_TRIAL);
    assert_int_equal(fdl_fw_confirm(fw, T0 + 5), 0);
    free(app2);
    /* The old key is retired: a keyring trusting the new key only. (The one
     * reverted above was rejected in its slot, not forever: written again it is
     * a new image.) */
    fwd_install(fw, FDL_TIER_KEYRING, only_new, only_new_len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 6, &r), FDL_BOOT_TRIAL);
    assert_int_equal(fdl_fw_confirm(fw, T0 + 7), 0);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_KEYRING), 3);
    /* An application signed with the retired key verifies no more... */
    uint8_t *old_signed = fwd_image(old_app, FDL_TIER_APPLICATION, 0x03000000u, 3, 0, "ok", 700, &len);
    fdl_fw_hdr h;
    assert_int_equal(fdl_fwimage_parse_hdr(old_signed, len, &h), FDL_FW_OK);
    assert_int_equal(fdl_fw_check_header(fw, &h, FDL_TIER_APPLICATION), FDL_FW_ERR_KEY_UNKNOWN);
    free(old_signed);
    /* ... and the dual-trust keyring that still trusts it is a rollback now. */
    assert_int_equal(fdl_fwimage_parse_hdr(dual, dual_len, &h), FDL_FW_OK);
    assert_int_equal(fdl_fw_check_header(fw, &h, FDL_TIER_KEYRING), FDL_FW_ERR_ROLLBACK);
    fwd_install(fw, FDL_TIER_KEYRING, dual, dual_len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 8, &r), FDL_BOOT_OK);
    assert_true(r.reverted);
    assert_int_equal(r.tier[FDL_TIER_KEYRING].refused, FDL_FW_ERR_ROLLBACK);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, 0x02000000u);
    fdl_fw_free(fw);
    fwt_key_free(&new_app);
    free(only_new);
    free(dual);
    fwd_factory_free(&fa);
}

/* ---- power cut inside boot and confirm -------------------------------------------------- */

static void confirm_cut_between_record_and_fuse_catches_up(void **state)
{
    (void)state;
    fwd_factory fa;
    fdl_boot_record r;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    size_t len;
    uint8_t *v2 = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x02000000u, 4, 0, "ok", 2000, &len);
    fwd_install(fw, FDL_TIER_APPLICATION, v2, len, 60000);
    /* The power fails at the trial boot's record write: nothing runs. */
    fdl_fw_set_power_cut(fw, fdl_fw_flash_writes(fw) + 1);
    assert_int_equal(fdl_fw_boot(fw, T0 + 1, &r), FDL_BOOT_POWER_LOSS);
    assert_false(r.tier[FDL_TIER_APPLICATION].ran);
    assert_null(fdl_fw_app_payload(fw, NULL));
    assert_int_equal(fdl_fw_boot(fw, T0 + 2, &r), FDL_BOOT_TRIAL);
    /* Cut the fuse write of the confirm (the second write). */
    fdl_fw_set_power_cut(fw, fdl_fw_flash_writes(fw) + 2);
    assert_int_equal(fdl_fw_confirm(fw, T0 + 3), FDL_FW_POWER_LOSS);
    assert_true(fdl_fw_power_lost(fw));
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_APPLICATION), 1);
    /* The image was confirmed: the next boot raises the floor. */
    assert_int_equal(fdl_fw_boot(fw, T0 + 4, &r), FDL_BOOT_OK);
    assert_false(fdl_fw_power_lost(fw));
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].version, 0x02000000u);
    assert_int_equal(fdl_fw_floor(fw, FDL_TIER_APPLICATION), 4);
    fdl_fw_free(fw);
    free(v2);
    fwd_factory_free(&fa);
}

/* ---- the record, and the caches' soundness --------------------------------------------- */

static void boots_are_recorded_one_line_each(void **state)
{
    (void)state;
    fwd_factory fa;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, NULL), FDL_BOOT_OK);
    size_t len;
    uint8_t *bad = fwd_image(&g_keys.tier[2], FDL_TIER_APPLICATION, 0x02000000u, 2, 0, "ok", 100, &len);
    fwd_install(fw, FDL_TIER_APPLICATION, bad, len, 1000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 5, NULL), FDL_BOOT_OK);
    free(bad);
    fdl_fw_free(fw);
    char p[700];
    path_in(p, sizeof p, g_dir, "boots.jsonl");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        fdl_test_jdoc d;
        fdl_test_jparse(&d, line, strlen(line));
        assert_int_equal(fdl_test_jint(&d, 0, "boot"), n);
        fdl_test_jstr_is(&d, 0, "outcome", "ok");
        size_t tiers = fdl_test_jget(&d, 0, "tiers");
        assert_true(tiers > 0);
        size_t app = fdl_test_jget(&d, tiers, "application");
        assert_true(app > 0);
        fdl_test_jstr_is(&d, app, "slot", "a");
        fdl_test_jstr_is(&d, app, "version", "1.0.0");
        assert_int_equal(fdl_test_jint(&d, app, "counter"), 1);
        assert_true(fdl_test_jget(&d, app, "sha256") > 0);
        assert_true(fdl_test_jget(&d, app, "verified") > 0);
        size_t refused = fdl_test_jget(&d, app, "refused");
        if (n == 2) {
            assert_true(refused > 0);
            fdl_test_jstr_is(&d, refused, "slot", "b");
            fdl_test_jstr_is(&d, refused, "why", fdl_fw_strerror(FDL_FW_ERR_KEY_UNKNOWN));
            assert_true(fdl_test_jget(&d, 0, "reverted") > 0);
        } else {
            assert_int_equal(refused, 0);
        }
        fdl_test_jfree(&d);
    }
    fclose(f);
    assert_int_equal(n, 2);
    fwd_factory_free(&fa);
}

static void caches_never_vouch_for_changed_bytes(void **state)
{
    (void)state;
    fwd_factory fa;
    fdl_boot_record r;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    /* A signature over the same header by the same key, altered: a different
     * tuple, a cache miss, and the real check refuses it. */
    size_t len;
    uint8_t *v2 = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x02000000u, 1, 0, "ok", 100, &len);
    fdl_fw_hdr h;
    assert_int_equal(fdl_fwimage_parse_hdr(v2, len, &h), FDL_FW_OK);
    assert_int_equal(fdl_fw_check_header(fw, &h, FDL_TIER_APPLICATION), FDL_FW_OK);   /* now cached */
    h.sig[63] ^= 1;
    assert_int_equal(fdl_fw_check_header(fw, &h, FDL_TIER_APPLICATION), FDL_FW_ERR_SIGNATURE);
    h.sig[63] ^= 1;
    h.counter = 2;   /* the signed part changed */
    assert_int_equal(fdl_fw_check_header(fw, &h, FDL_TIER_APPLICATION), FDL_FW_ERR_SIGNATURE);
    free(v2);

    /* A writable factory file is read again at every boot, never cached. */
    char hex[65], p[800];
    uint8_t sha[32];
    fwd_sha(fa.img[FDL_TIER_APPLICATION], fa.f.image_len[FDL_TIER_APPLICATION], sha);
    fwd_hex(sha, hex);
    snprintf(p, sizeof p, "%s/%s.img", g_factory, hex);
    assert_int_equal(chmod(p, 0644), 0);
    fdl_fw_cache_stats st0, st1;
    fdl_fw_cache_get_stats(&st0);
    assert_int_equal(fdl_fw_boot(fw, T0 + 2, &r), FDL_BOOT_OK);
    assert_int_equal(fdl_fw_boot(fw, T0 + 3, &r), FDL_BOOT_OK);
    fdl_fw_cache_get_stats(&st1);
    assert_int_equal(st1.img_misses - st0.img_misses, 2);
    assert_int_equal(chmod(p, 0444), 0);

    /* The shared factory file is changed in place (root can write a 0444 file):
     * its identity changes, the cache reads it again and the boot refuses it. */
    fwd_sha(fa.img[FDL_TIER_KERNEL], fa.f.image_len[FDL_TIER_KERNEL], sha);
    fwd_hex(sha, hex);
    snprintf(p, sizeof p, "%s/%s.img", g_factory, hex);
    assert_int_equal(chmod(p, 0644), 0);
    flip_byte(p, -1);
    assert_int_equal(chmod(p, 0444), 0);
    assert_int_equal(fdl_fw_boot(fw, T0 + 4, &r), FDL_BOOT_RECOVERY);
    assert_int_equal(r.tier[FDL_TIER_KERNEL].refused, FDL_FW_ERR_HASH);

    /* Another validly signed application put in its place (same name, same
     * size, other content): not the image the record names, refused. */
    fdl_fw_free(fw);
    fdl_test_rmrf(g_factory);
    fdl_test_rmrf(g_dir);
    fw = fwd_open(g_dir, &fa.f);   /* fresh factory files */
    assert_int_equal(fdl_fw_boot(fw, T0 + 5, &r), FDL_BOOT_OK);
    fwd_sha(fa.img[FDL_TIER_APPLICATION], fa.f.image_len[FDL_TIER_APPLICATION], sha);
    fwd_hex(sha, hex);
    snprintf(p, sizeof p, "%s/%s.img", g_factory, hex);
    size_t len2;
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    uint8_t *other = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x01000001u, 1, 0, "ok", FWD_PAYLOAD, &len2);
    assert_int_equal(len2, fa.f.image_len[FDL_TIER_APPLICATION]);
    assert_int_equal(fwrite(other, 1, len2, f), len2);
    fclose(f);
    free(other);
    fdl_boot_outcome o5 = fdl_fw_boot(fw, T0 + 6, &r);
    if (o5 != FDL_BOOT_RECOVERY || r.tier[FDL_TIER_APPLICATION].refused != FDL_FW_ERR_HASH)
        fail_msg("boot %s: %s", fdl_boot_outcome_name(o5), r.why);
    assert_int_equal(r.tier[FDL_TIER_APPLICATION].refused, FDL_FW_ERR_HASH);
    assert_non_null(strstr(r.why, "not the one recorded"));
    fdl_fw_free(fw);
    fwd_factory_free(&fa);
}

static void allocations_balance(void **state)
{
    (void)state;
    fwd_factory fa;
    fwd_factory_make(&fa, &g_keys, g_factory, 1);
    fdl_fw_cache_clear();
    fdl_alloc_stats before = fdl_alloc_get_stats();
    fdl_fw *fw = fwd_open(g_dir, &fa.f);
    fdl_boot_record r;
    assert_int_equal(fdl_fw_boot(fw, T0, &r), FDL_BOOT_OK);
    size_t len;
    uint8_t *v2 = fwd_image(&g_keys.tier[3], FDL_TIER_APPLICATION, 0x02000000u, 2, 0, "ok", 9000, &len);
    fwd_install(fw, FDL_TIER_APPLICATION, v2, len, 60000);
    assert_int_equal(fdl_fw_boot(fw, T0 + 1, &r), FDL_BOOT_TRIAL);
    assert_int_equal(fdl_fw_confirm(fw, T0 + 2), 0);
    assert_int_equal(fdl_fw_boot(fw, T0 + 3, &r), FDL_BOOT_OK);
    fdl_fw_free(fw);
    fdl_fw_free(NULL);
    fdl_fw_cache_clear();
    fdl_alloc_stats after = fdl_alloc_get_stats();
    assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);

    /* Every allocation failing in turn: open and boot fail cleanly, never leak. */
    for (uint64_t nth = 1; nth < 200; nth++) {
        fdl_fw_cache_clear();
        before = fdl_alloc_get_stats();
        fdl_fw *f2 = NULL;
        fdl_alloc_fail_nth(nth);
        if (fdl_fw_open(g_dir, NULL, &f2, NULL, 0) == 0) {
            fdl_boot_outcome o = fdl_fw_boot(f2, T0 + 10, &r);
            assert_true(o == FDL_BOOT_OK || o == FDL_BOOT_RECOVERY);
            assert_record_sound(&r);
            fdl_fw_free(f2);
        }
        fdl_alloc_fail_nth(0);
        fdl_fw_cache_clear();
        after = fdl_alloc_get_stats();
        assert_int_equal(after.allocs - before.allocs, after.frees - before.frees);
    }
    free(v2);
    fwd_factory_free(&fa);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(factory_device_boots_verified, setup, teardown),
        cmocka_unit_test_setup_teardown(factory_images_are_shared_by_content, setup, teardown),
        cmocka_unit_test_setup_teardown(factory_is_validated_once_or_per_device, setup, teardown),
        cmocka_unit_test_setup_teardown(secure_boot_refuses_another_root, setup, teardown),
        cmocka_unit_test_setup_teardown(revoked_root_slot_verifies_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(unreadable_storage_is_refused_not_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_images_never_run, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_active_slot_falls_back_or_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(trial_reverts_at_deadline_and_floor_waits_for_confirm, setup, teardown),
        cmocka_unit_test_setup_teardown(crashing_trial_reverts_at_once_and_no_confirm_is_visible, setup, teardown),
        cmocka_unit_test_setup_teardown(new_tier_and_keyring_update, setup, teardown),
        cmocka_unit_test_setup_teardown(keyring_rotation_with_dual_trust, setup, teardown),
        cmocka_unit_test_setup_teardown(confirm_cut_between_record_and_fuse_catches_up, setup, teardown),
        cmocka_unit_test_setup_teardown(boots_are_recorded_one_line_each, setup, teardown),
        cmocka_unit_test_setup_teardown(caches_never_vouch_for_changed_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(allocations_balance, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
