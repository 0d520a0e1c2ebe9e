/*
 * tests/test_keyring.c — the device keyring (devices/keyring.h): codec, every malformed
 * status, lookup, and tier separation (a key of one tier never verifies another's image).
 */
#include "fwtest.h"

/* The uses a keyring lists, in order. */
static const unsigned USES[] = {FDL_TIER_KERNEL, FDL_TIER_APPLICATION, FDL_TIER_MODULES, FDL_TIER_CONFIG,
                                FDL_KEY_USAGE_JOBS};
#define N_USES (sizeof USES / sizeof USES[0])

static fwt_key g_cur[N_USES], g_next[N_USES], g_root;

static int group_setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_USES; i++) {
        fwt_key_new(&g_cur[i]);
        fwt_key_new(&g_next[i]);
    }
    fwt_key_new(&g_root);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_USES; i++) {
        fwt_key_free(&g_cur[i]);
        fwt_key_free(&g_next[i]);
    }
    fwt_key_free(&g_root);
    return 0;
}

/* Current keys for every use, plus a next key for the kernel. */
static void base_ring(fdl_keyring *kr)
{
    memset(kr, 0, sizeof *kr);
    for (size_t i = 0; i < N_USES; i++)
        fwt_keyring_add(kr, &g_cur[i], USES[i], FDL_KEY_CURRENT);
    fwt_keyring_add(kr, &g_next[0], FDL_TIER_KERNEL, FDL_KEY_NEXT);
}

static size_t base_bytes(uint8_t *buf, size_t cap)
{
    fdl_keyring kr;
    base_ring(&kr);
    size_t n = fdl_keyring_encode(&kr, buf, cap);
    assert_int_equal(n, 6 + 6 * FDL_KEYRING_ENTRY_LEN);
    return n;
}

#define ENTRY(buf, i) ((buf) + 6 + (size_t)(i) * FDL_KEYRING_ENTRY_LEN)

static void strerror_and_names(void **state)
{
    (void)state;
    for (int s = FDL_KR_OK; s <= FDL_KR_ERR_ARG; s++)
        assert_string_not_equal(fdl_keyring_strerror((fdl_keyring_status)s), "unknown keyring status");
    assert_string_equal(fdl_keyring_strerror((fdl_keyring_status)77), "unknown keyring status");
    assert_string_equal(fdl_key_usage_name(FDL_TIER_KERNEL), "kernel");
    assert_string_equal(fdl_key_usage_name(FDL_TIER_CONFIG), "config");
    assert_string_equal(fdl_key_usage_name(FDL_KEY_USAGE_JOBS), "jobs");
    assert_string_equal(fdl_key_usage_name(0), "?");
    assert_string_equal(fdl_key_usage_name(8), "?");
    for (unsigned u = 0; u < 256; u++) {
        int want = (u >= 2 && u <= 5) || u == 7;
        assert_int_equal(fdl_key_usage_listable(u), want);
    }
}

static void round_trip(void **state)
{
    (void)state;
    fdl_keyring kr, back;
    uint8_t buf[6 + FDL_KEYRING_MAX * FDL_KEYRING_ENTRY_LEN], buf2[sizeof buf];
    base_ring(&kr);
    size_t n = fdl_keyring_encode(&kr, buf, sizeof buf);
    assert_int_equal(n, 6 + kr.n * FDL_KEYRING_ENTRY_LEN);
    assert_memory_equal(buf, "FDKR\x01\x06", 6);
    assert_int_equal(fdl_keyring_parse(buf, n, &back), FDL_KR_OK);
    assert_int_equal(back.n, kr.n);
    assert_memory_equal(back.e, kr.e, kr.n * sizeof kr.e[0]);
    assert_int_equal(fdl_keyring_encode(&back, buf2, sizeof buf2), n);
    assert_memory_equal(buf, buf2, n);
    /* A full dual-trust ring: every use current + next (10 entries). */
    for (size_t i = 1; i < N_USES; i++)
        fwt_keyring_add(&kr, &g_next[i], USES[i], FDL_KEY_NEXT);
    n = fdl_keyring_encode(&kr, buf, sizeof buf);
    assert_int_equal(fdl_keyring_parse(buf, n, &back), FDL_KR_OK);
    assert_int_equal(back.n, 2 * N_USES);
    /* Encoding needs room, and a count in range. */
    assert_int_equal(fdl_keyring_encode(&kr, buf, n - 1), 0);
    assert_int_equal(fdl_keyring_encode(&kr, NULL, n), 0);
    assert_int_equal(fdl_keyring_encode(NULL, buf, n), 0);
    kr.n = 0;
    assert_int_equal(fdl_keyring_encode(&kr, buf, sizeof buf), 0);
    kr.n = FDL_KEYRING_MAX + 1;
    assert_int_equal(fdl_keyring_encode(&kr, buf, sizeof buf), 0);
    /* The smallest ring: one key. */
    memset(&kr, 0, sizeof kr);
    fwt_keyring_add(&kr, &g_cur[1], FDL_TIER_APPLICATION, FDL_KEY_CURRENT);
    n = fdl_keyring_encode(&kr, buf, sizeof buf);
    assert_int_equal(n, 6 + FDL_KEYRING_ENTRY_LEN);
    assert_int_equal(fdl_keyring_parse(buf, n, &back), FDL_KR_OK);
}

static void status_short(void **state)
{
    (void)state;
    uint8_t buf[1024];
    fdl_keyring kr;
    size_t n = base_bytes(buf, sizeof buf);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(fdl_keyring_parse(buf, k, &kr), FDL_KR_ERR_SHORT);
    assert_int_equal(fdl_keyring_parse(NULL, 0, &kr), FDL_KR_ERR_SHORT);
}

static void status_magic_version(void **state)
{
    (void)state;
    uint8_t buf[1024];
    fdl_keyring kr;
    size_t n = base_bytes(buf, sizeof buf);
    for (int i = 0; i < 4; i++) {
        buf[i] ^= 0x20;
        assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_MAGIC);
        buf[i] ^= 0x20;
    }
    memcpy(buf, "FDFW", 4); /* an image is not a keyring */
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_MAGIC);
    memcpy(buf, "FDKR", 4);
    for (unsigned v = 0; v < 256; v++) {
        buf[4] = (uint8_t)v;
        assert_int_equal(fdl_keyring_parse(buf, n, &kr), v == 1 ? FDL_KR_OK : FDL_KR_ERR_VERSION);
    }
}

static void status_count(void **state)
{
    (void)state;
    uint8_t buf[6 + 20 * FDL_KEYRING_ENTRY_LEN];
    fdl_keyring kr;
    size_t n = base_bytes(buf, sizeof buf);
    /* Declared count 0 or above the ceiling. */
    buf[5] = 0;
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_COUNT);
    buf[5] = FDL_KEYRING_MAX + 1;
    assert_int_equal(fdl_keyring_parse(buf, sizeof buf, &kr), FDL_KR_ERR_COUNT);
    buf[5] = 255;
    assert_int_equal(fdl_keyring_parse(buf, sizeof buf, &kr), FDL_KR_ERR_COUNT);
    /* Bytes after the last entry: one, or a whole unlisted entry. */
    buf[5] = 6;
    assert_int_equal(fdl_keyring_parse(buf, n + 1, &kr), FDL_KR_ERR_COUNT);
    buf[5] = 5;
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_COUNT);
    /* A count that claims more than is there is a truncation. */
    buf[5] = 7;
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_SHORT);
}

static void status_usage(void **state)
{
    (void)state;
    uint8_t buf[1024];
    fdl_keyring kr;
    size_t n = base_bytes(buf, sizeof buf);
    for (unsigned u = 0; u < 256; u++) {
        if (fdl_key_usage_listable(u))
            continue;
        ENTRY(buf, 2)[0] = (uint8_t)u;
        assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_USAGE);
    }
    /* Root uses in particular: a keyring never vouches for bootloader or keyring signers. */
    ENTRY(buf, 2)[0] = FDL_TIER_BOOTLOADER;
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_USAGE);
    ENTRY(buf, 2)[0] = FDL_TIER_KEYRING;
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_USAGE);
}

static void status_state(void **state)
{
    (void)state;
    uint8_t buf[1024];
    fdl_keyring kr;
    size_t n = base_bytes(buf, sizeof buf);
    for (unsigned s = 0; s < 256; s++) {
        if (s == FDL_KEY_CURRENT || s == FDL_KEY_NEXT)
            continue;
        ENTRY(buf, 1)[1] = (uint8_t)s;
        assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_STATE);
    }
    /* Two current keys for one use (entry 5 is the kernel's next key). */
    n = base_bytes(buf, sizeof buf);
    ENTRY(buf, 5)[1] = FDL_KEY_CURRENT;
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_STATE);
    /* A third key for one use always repeats a state. */
    fdl_keyring r3;
    base_ring(&r3);
    fwt_keyring_add(&r3, &g_next[1], FDL_TIER_KERNEL, FDL_KEY_NEXT);
    n = fdl_keyring_encode(&r3, buf, sizeof buf);
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_STATE);
}

static void status_keyid(void **state)
{
    (void)state;
    uint8_t buf[1024];
    fdl_keyring kr;
    size_t n = base_bytes(buf, sizeof buf);
    for (int i = 0; i < FDL_FW_KEYID_LEN; i++) {
        ENTRY(buf, 3)[2 + i] ^= 1;
        assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_KEYID);
        ENTRY(buf, 3)[2 + i] ^= 1;
    }
    /* An id copied from another entry: claims a key it is not. */
    memcpy(ENTRY(buf, 3) + 2, ENTRY(buf, 0) + 2, FDL_FW_KEYID_LEN);
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_KEYID);
}

static void status_point(void **state)
{
    (void)state;
    uint8_t buf[1024];
    fdl_keyring kr;
    size_t n = base_bytes(buf, sizeof buf);
    uint8_t *pub = ENTRY(buf, 4) + 2 + FDL_FW_KEYID_LEN;
    static const uint8_t marks[] = {0x00, 0x02, 0x03, 0x05, 0x06, 0x07, 0xff};
    for (size_t i = 0; i < sizeof marks; i++) {
        pub[0] = marks[i];
        assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_POINT);
    }
    pub[0] = 0x04;
    pub[64] ^= 1; /* off the curve (the id check comes after) */
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_POINT);
    /* Off the curve with a matching id: still POINT. */
    uint8_t id[FDL_FW_KEYID_LEN];
    fdl_fw_key_id(pub, id);
    memcpy(ENTRY(buf, 4) + 2, id, sizeof id);
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_POINT);
}

static void status_duplicate(void **state)
{
    (void)state;
    uint8_t buf[1024];
    fdl_keyring kr, dup;
    /* One key listed for the kernel and for the application. */
    base_ring(&dup);
    fwt_keyring_add(&dup, &g_cur[0], FDL_TIER_APPLICATION, FDL_KEY_NEXT);
    size_t n = fdl_keyring_encode(&dup, buf, sizeof buf);
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_DUPLICATE);
    /* One key as both current and next of one use. */
    memset(&dup, 0, sizeof dup);
    fwt_keyring_add(&dup, &g_cur[1], FDL_TIER_APPLICATION, FDL_KEY_CURRENT);
    fwt_keyring_add(&dup, &g_cur[1], FDL_TIER_APPLICATION, FDL_KEY_NEXT);
    n = fdl_keyring_encode(&dup, buf, sizeof buf);
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_DUPLICATE);
}

static void status_arg(void **state)
{
    (void)state;
    uint8_t buf[1024];
    fdl_keyring kr;
    size_t n = base_bytes(buf, sizeof buf);
    assert_int_equal(fdl_keyring_parse(buf, n, NULL), FDL_KR_ERR_ARG);
    assert_int_equal(fdl_keyring_parse(NULL, n, &kr), FDL_KR_ERR_ARG);
    /* out untouched on failure */
    memset(&kr, 0x33, sizeof kr);
    fdl_keyring before = kr;
    buf[0] = 'X';
    assert_int_equal(fdl_keyring_parse(buf, n, &kr), FDL_KR_ERR_MAGIC);
    assert_memory_equal(&kr, &before, sizeof kr);
}

static void find(void **state)
{
    (void)state;
    fdl_keyring kr;
    base_ring(&kr);
    const fdl_keyring_entry *e = fdl_keyring_find(&kr, FDL_TIER_APPLICATION, g_cur[1].id);
    assert_non_null(e);
    assert_memory_equal(e->pub, g_cur[1].pub, FDL_FW_PUB_LEN);
    assert_int_equal(e->state, FDL_KEY_CURRENT);
    e = fdl_keyring_find(&kr, FDL_TIER_KERNEL, g_next[0].id);
    assert_non_null(e);
    assert_int_equal(e->state, FDL_KEY_NEXT);
    /* Right key, wrong use. */
    assert_null(fdl_keyring_find(&kr, FDL_TIER_KERNEL, g_cur[1].id));
    assert_null(fdl_keyring_find(&kr, FDL_KEY_USAGE_JOBS, g_cur[0].id));
    /* Unknown key; root uses; bad arguments. */
    assert_null(fdl_keyring_find(&kr, FDL_TIER_APPLICATION, g_root.id));
    assert_null(fdl_keyring_find(&kr, FDL_TIER_BOOTLOADER, g_cur[0].id));
    assert_null(fdl_keyring_find(&kr, FDL_TIER_KEYRING, g_cur[0].id));
    assert_null(fdl_keyring_find(NULL, FDL_TIER_KERNEL, g_cur[0].id));
    assert_null(fdl_keyring_find(&kr, FDL_TIER_KERNEL, NULL));
}

/* The rule of the firmware layer: a key of one tier cannot sign another. */
static void tier_separation(void **state)
{
    (void)state;
    static const uint8_t payload[] = "payload";
    fdl_keyring kr;
    fdl_fw_hdr h;
    base_ring(&kr);
    for (size_t img_tier = 0; img_tier < 4; img_tier++) {
        for (size_t key_use = 0; key_use < N_USES; key_use++) {
            fwt_hdr(&h, &g_cur[key_use], USES[img_tier], 0x01000000, 1, 0, payload, sizeof payload);
            fdl_fw_status want = key_use == img_tier ? FDL_FW_OK : FDL_FW_ERR_KEY_UNKNOWN;
            if (fdl_keyring_verify_image(&kr, &h) != want)
                fail_msg("%s image signed with the %s key: got %s", fdl_fw_tier_name(USES[img_tier]),
                         fdl_key_usage_name(USES[key_use]), fdl_fw_strerror(fdl_keyring_verify_image(&kr, &h)));
            /* ... and its own key verifies it directly, so the refusal is the keyring's. */
            assert_int_equal(fdl_fwimage_verify_sig(&h, g_cur[key_use].pub), FDL_FW_OK);
        }
    }
    /* Relabelling: a kernel image signed by the kernel key, tier byte changed to
     * application, is refused (key unknown for application); were the keyring
     * wrong enough to trust that key for application too, the signature over the
     * tier byte would still fail. */
    fwt_hdr(&h, &g_cur[0], FDL_TIER_KERNEL, 1, 1, 0, payload, sizeof payload);
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_OK);
    h.tier = FDL_TIER_APPLICATION;
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    assert_int_equal(fdl_fwimage_verify_sig(&h, g_cur[0].pub), FDL_FW_ERR_SIGNATURE);
    /* The jobs key signs no image; bootloader and keyring images are not the keyring's. */
    fwt_hdr(&h, &g_cur[4], FDL_TIER_APPLICATION, 1, 1, 0, payload, sizeof payload);
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    fwt_hdr(&h, &g_root, FDL_TIER_BOOTLOADER, 1, 1, 0, payload, sizeof payload);
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    fwt_hdr(&h, &g_cur[0], FDL_TIER_KEYRING, 1, 1, 0, payload, sizeof payload);
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    /* Dual trust: the kernel's next key verifies kernel images too. */
    fwt_hdr(&h, &g_next[0], FDL_TIER_KERNEL, 1, 1, 0, payload, sizeof payload);
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_OK);
    /* A trusted key id with a broken signature. */
    h.sig[10] ^= 1;
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_SIGNATURE);
    /* An unknown key. */
    fwt_hdr(&h, &g_next[1], FDL_TIER_APPLICATION, 1, 1, 0, payload, sizeof payload);
    assert_int_equal(fdl_keyring_verify_image(&kr, &h), FDL_FW_ERR_KEY_UNKNOWN);
    assert_int_equal(fdl_keyring_verify_image(NULL, &h), FDL_FW_ERR_ARG);
    assert_int_equal(fdl_keyring_verify_image(&kr, NULL), FDL_FW_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strerror_and_names), cmocka_unit_test(round_trip),      cmocka_unit_test(status_short),
        cmocka_unit_test(status_magic_version), cmocka_unit_test(status_count),  cmocka_unit_test(status_usage),
        cmocka_unit_test(status_state),       cmocka_unit_test(status_keyid),    cmocka_unit_test(status_point),
        cmocka_unit_test(status_duplicate),   cmocka_unit_test(status_arg),      cmocka_unit_test(find),
        cmocka_unit_test(tier_separation),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
