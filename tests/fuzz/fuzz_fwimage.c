/*
 * tests/fuzz/fuzz_fwimage.c — libFuzzer target for devices/fwimage.c and the
 * image check of devices/keyring.c.
 *
 * The input is a firmware image from a hostile artifact store. Every broken
 * promise aborts:
 *   - parse_hdr returns a known status; on OK the header re-encodes to exactly
 *     the input's first 128 bytes, tier/flags/length are within their ranges;
 *   - parse (whole image) is OK exactly when parse_hdr is OK, the size is
 *     header + length and the payload hash matches (computed here again); the
 *     payload pointer is the byte after the header;
 *   - verify_sig against a fixed key is OK only if the input carries a valid
 *     signature of that key (the fuzzer cannot make one: it never is), and is
 *     OK after the harness signs the parsed header with that key (the low two
 *     bits of the last byte being 01 choose this, so a quarter of the inputs
 *     pay for a signature); a signed header changed in one signed byte fails;
 *   - the keyring check takes the key only for its own tier: with the fixed key
 *     trusted for the application tier, a signed image verifies exactly when its
 *     tier is application;
 *   - fdl_fw_ecdsa_verify with the input's first 65 bytes as a public key (a
 *     hostile point) returns OK or SIGNATURE, never crashes;
 *   - DER: what fdl_fw_sig_from_der accepts re-encodes byte for byte (strict DER
 *     is canonical); raw -> DER -> raw is the identity for the input's bytes;
 *   - versions: a parsed version prints back as the same text.
 * The sources are included so the fuzzer instruments their statics.
 */
#include "devices/fwimage.c"
#include "devices/keyring.c"

#include "fwfuzz.h"

#include <mbedtls/sha256.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fwfuzz_key g_key;
static fdl_keyring g_kr;
static int g_ready;

static void setup(void)
{
    if (g_ready)
        return;
    fwfuzz_key_init(&g_key, 0x11);
    memset(&g_kr, 0, sizeof g_kr);
    g_kr.n = 1;
    g_kr.e[0].usage = FDL_TIER_APPLICATION;
    g_kr.e[0].state = FDL_KEY_CURRENT;
    memcpy(g_kr.e[0].key_id, g_key.id, FDL_FW_KEYID_LEN);
    memcpy(g_kr.e[0].pub, g_key.pub, FDL_FW_PUB_LEN);
    g_ready = 1;
}

static void check_header(const uint8_t *data, size_t size)
{
    fdl_fw_hdr h, h2;
    uint8_t raw[FDL_FW_HDR_LEN];
    const uint8_t *payload = NULL;
    fdl_fw_status st = fdl_fwimage_parse_hdr(data, size, &h);
    CHECK(st >= FDL_FW_OK && st <= FDL_FW_ERR_LENGTH);
    fdl_fw_status whole = fdl_fwimage_parse(data, size, &h2, &payload);
    if (st != FDL_FW_OK) {
        CHECK(whole == st);
        CHECK(size >= FDL_FW_HDR_LEN || st == FDL_FW_ERR_SHORT);
        return;
    }
    CHECK(h.hdr_version == FDL_FW_HDR_VERSION && h.tier >= 1 && h.tier <= 6 && h.flags == 0 &&
          h.length <= FDL_FW_PAYLOAD_MAX);
    fdl_fwimage_encode_hdr(&h, raw);
    CHECK(memcmp(raw, data, FDL_FW_HDR_LEN) == 0);

    /* The whole-image verdict, from first principles. */
    fdl_fw_status want = FDL_FW_OK;
    if (size - FDL_FW_HDR_LEN != h.length) {
        want = FDL_FW_ERR_LENGTH;
    } else {
        uint8_t sum[32];
        CHECK(mbedtls_sha256(data + FDL_FW_HDR_LEN, h.length, sum, 0) == 0);
        if (memcmp(sum, h.sha256, 32) != 0)
            want = FDL_FW_ERR_HASH;
    }
    CHECK(whole == want);
    if (whole == FDL_FW_OK) {
        CHECK(payload == data + FDL_FW_HDR_LEN);
        CHECK(memcmp(&h, &h2, sizeof h) == 0);
    }

    /* The input's own signature: the fuzzer cannot forge one for the fixed key. */
    st = fdl_fwimage_verify_sig(&h, g_key.pub);
    CHECK(st == FDL_FW_ERR_SIGNATURE);
    st = fdl_keyring_verify_image(&g_kr, &h);
    CHECK(st == FDL_FW_ERR_KEY_UNKNOWN || st == FDL_FW_ERR_SIGNATURE);

    if ((data[size - 1] & 3) != 1)
        return;
    /* Signed by the harness: verifies, through the keyring only for its own tier. */
    uint8_t hash[32];
    memcpy(h.key_id, g_key.id, FDL_FW_KEYID_LEN);
    fdl_fwimage_signed_hash(&h, hash);
    fwfuzz_sign(&g_key, hash, h.sig);
    CHECK(fdl_fwimage_verify_sig(&h, g_key.pub) == FDL_FW_OK);
    st = fdl_keyring_verify_image(&g_kr, &h);
    CHECK(st == (h.tier == FDL_TIER_APPLICATION ? FDL_FW_OK : FDL_FW_ERR_KEY_UNKNOWN));
    /* One signed byte changed (chosen by the input) breaks it. */
    fdl_fwimage_encode_hdr(&h, raw);
    size_t at = data[size - 1] % FDL_FW_SIGNED_LEN;
    raw[at] ^= (uint8_t)(data[size > 1 ? size - 2 : 0] | 1);
    if (fdl_fwimage_parse_hdr(raw, sizeof raw, &h2) == FDL_FW_OK)
        CHECK(fdl_fwimage_verify_sig(&h2, g_key.pub) == FDL_FW_ERR_SIGNATURE);
}

static void check_der(const uint8_t *data, size_t size)
{
    uint8_t raw[FDL_FW_SIG_LEN], der[FDL_FW_SIG_DER_MAX], raw2[FDL_FW_SIG_LEN];
    if (fdl_fw_sig_from_der(data, size, raw) == 0) {
        size_t n = fdl_fw_sig_to_der(raw, der, sizeof der);
        CHECK(n == size && memcmp(der, data, n) == 0);
    }
    if (size >= FDL_FW_SIG_LEN) {
        size_t n = fdl_fw_sig_to_der(data, der, sizeof der);
        CHECK(n >= 8 && n <= FDL_FW_SIG_DER_MAX);
        CHECK(fdl_fw_sig_from_der(der, n, raw2) == 0);
        CHECK(memcmp(raw2, data, FDL_FW_SIG_LEN) == 0);
    }
}

static void check_point(const uint8_t *data, size_t size)
{
    if (size < FDL_FW_PUB_LEN + 32 + FDL_FW_SIG_LEN)
        return;
    fdl_fw_status st = fdl_fw_ecdsa_verify(data, data + FDL_FW_PUB_LEN, data + FDL_FW_PUB_LEN + 32);
    CHECK(st == FDL_FW_OK || st == FDL_FW_ERR_SIGNATURE);
    CHECK(fdl_fw_pub_valid(data) == 0 || fdl_fw_pub_valid(data) == 1);
}

static void check_text(const uint8_t *data, size_t size)
{
    char s[40], back[16];
    uint32_t v;
    size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    memcpy(s, data, n);
    s[n] = '\0';
    if (fdl_fw_version_parse(s, &v) == 0) {
        fdl_fw_version_str(v, back, sizeof back);
        CHECK(strcmp(back, s) == 0);
    }
    fdl_fw_tier t = fdl_fw_tier_parse(s);
    CHECK(t <= FDL_TIER_KEYRING);
    if (t != FDL_TIER_NONE)
        CHECK(strcmp(fdl_fw_tier_name(t), "?") != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    check_header(data, size);
    check_der(data, size);
    check_point(data, size);
    check_text(data, size);
    return 0;
}
