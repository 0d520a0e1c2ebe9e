/*
 * tests/fuzz/fuzz_keyring.c — libFuzzer target for devices/keyring.c.
 *
 * The input is a keyring payload (what a root-signed keyring image carries; the
 * fuzzer plays a root key holder who writes nonsense, or a parser bug hunter).
 * Every broken promise aborts:
 *   - parse returns a known status and writes *out only on OK;
 *   - an accepted keyring: 1..FDL_KEYRING_MAX entries, the input is exactly
 *     6 + n * 75 bytes, every entry has a listable use, a known state, a valid
 *     curve point whose id is its hash; no use has two keys in one state; no key
 *     appears twice; it re-encodes byte for byte;
 *   - lookup: every entry is found under its own use and id and under no other
 *     use; root uses find nothing;
 *   - the payload re-parsed after the encoder is identical (idempotence).
 * A tiny grammar in front of the raw bytes keeps the fuzzer productive: if the
 * first byte is 0xA5, the rest are a list of (use, state, key number) triples
 * and the harness builds a well-formed payload from real keys, so duplicate and
 * state rules are explored with valid points and ids.
 */
#include "devices/fwimage.c"
#include "devices/keyring.c"

#include "fwfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_KEYS 4
static fwfuzz_key g_keys[N_KEYS];
static int g_ready;

static void setup(void)
{
    if (g_ready)
        return;
    for (unsigned i = 0; i < N_KEYS; i++)
        fwfuzz_key_init(&g_keys[i], (unsigned char)(0x11 * (i + 1)));
    g_ready = 1;
}

static void check(const uint8_t *buf, size_t len)
{
    fdl_keyring kr, back;
    memset(&kr, 0xee, sizeof kr);
    fdl_keyring before = kr;
    fdl_keyring_status st = fdl_keyring_parse(buf, len, &kr);
    CHECK(st >= FDL_KR_OK && st <= FDL_KR_ERR_DUPLICATE);
    CHECK(strcmp(fdl_keyring_strerror(st), "unknown keyring status") != 0);
    if (st != FDL_KR_OK) {
        CHECK(memcmp(&kr, &before, sizeof kr) == 0);
        return;
    }
    CHECK(kr.n >= 1 && kr.n <= FDL_KEYRING_MAX);
    CHECK(len == 6 + (size_t)kr.n * FDL_KEYRING_ENTRY_LEN);
    for (unsigned i = 0; i < kr.n; i++) {
        const fdl_keyring_entry *e = &kr.e[i];
        uint8_t id[FDL_FW_KEYID_LEN];
        CHECK(fdl_key_usage_listable(e->usage));
        CHECK(e->state == FDL_KEY_CURRENT || e->state == FDL_KEY_NEXT);
        CHECK(fdl_fw_pub_valid(e->pub));
        fdl_fw_key_id(e->pub, id);
        CHECK(memcmp(id, e->key_id, sizeof id) == 0);
        for (unsigned j = 0; j < i; j++) {
            CHECK(!(kr.e[j].usage == e->usage && kr.e[j].state == e->state));
            CHECK(memcmp(kr.e[j].key_id, e->key_id, FDL_FW_KEYID_LEN) != 0);
        }
        CHECK(fdl_keyring_find(&kr, e->usage, e->key_id) == e);
        for (unsigned u = 0; u < 256; u++)
            if (u != e->usage)
                CHECK(fdl_keyring_find(&kr, u, e->key_id) == NULL);
    }
    uint8_t out[6 + FDL_KEYRING_MAX * FDL_KEYRING_ENTRY_LEN];
    size_t n = fdl_keyring_encode(&kr, out, sizeof out);
    CHECK(n == len && memcmp(out, buf, len) == 0);
    CHECK(fdl_keyring_encode(&kr, out, n - 1) == 0);
    CHECK(fdl_keyring_parse(out, n, &back) == FDL_KR_OK);
    CHECK(back.n == kr.n && memcmp(back.e, kr.e, kr.n * sizeof kr.e[0]) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    check(data, size);
    if (size >= 1 && data[0] == 0xA5) {
        /* Grammar mode: triples (use, state, key number) -> a payload of real keys. */
        uint8_t buf[6 + 20 * FDL_KEYRING_ENTRY_LEN];
        size_t n = (size - 1) / 3;
        if (n > 20)
            n = 20;
        memcpy(buf, FDL_KEYRING_MAGIC, 4);
        buf[4] = FDL_KEYRING_VERSION;
        buf[5] = (uint8_t)n;
        for (size_t i = 0; i < n; i++) {
            const uint8_t *t = data + 1 + 3 * i;
            uint8_t *p = buf + 6 + i * FDL_KEYRING_ENTRY_LEN;
            const fwfuzz_key *k = &g_keys[t[2] % N_KEYS];
            p[0] = t[0] % 9;
            p[1] = t[1] % 4;
            memcpy(p + 2, k->id, FDL_FW_KEYID_LEN);
            memcpy(p + 2 + FDL_FW_KEYID_LEN, k->pub, FDL_FW_PUB_LEN);
        }
        check(buf, 6 + n * FDL_KEYRING_ENTRY_LEN);
    }
    return 0;
}
