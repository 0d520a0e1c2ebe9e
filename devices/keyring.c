/* devices/keyring.c — the device's trusted keys per use: payload codec, lookup, image check (see keyring.h). */
#include "devices/keyring.h"

#include <string.h>

static const char *const kr_status_str[] = {
    [FDL_KR_OK] = "ok",
    [FDL_KR_ERR_SHORT] = "keyring truncated",
    [FDL_KR_ERR_MAGIC] = "not a keyring (bad magic)",
    [FDL_KR_ERR_VERSION] = "unknown keyring format version",
    [FDL_KR_ERR_COUNT] = "keyring entry count out of range or trailing bytes",
    [FDL_KR_ERR_USAGE] = "unknown key use, or a root use listed",
    [FDL_KR_ERR_STATE] = "unknown key state, or two keys of one use in one state",
    [FDL_KR_ERR_KEYID] = "key id is not the hash of the key",
    [FDL_KR_ERR_POINT] = "public key is not an uncompressed P-256 point",
    [FDL_KR_ERR_DUPLICATE] = "the same key listed twice",
    [FDL_KR_ERR_ARG] = "invalid argument",
};

const char *fdl_keyring_strerror(fdl_keyring_status st)
{
    if ((unsigned)st < sizeof kr_status_str / sizeof kr_status_str[0] && kr_status_str[st])
        return kr_status_str[st];
    return "unknown keyring status";
}

const char *fdl_key_usage_name(unsigned usage)
{
    if (usage == FDL_KEY_USAGE_JOBS)
        return "jobs";
    return fdl_fw_tier_name(usage);
}

/* The uses a keyring may list: the tiers below the bootloader, and job documents.
 * Bootloader and keyring images are signed by the fused root key, never by a
 * keyring entry, or a keyring could vouch for the key that signs keyrings. */
int fdl_key_usage_listable(unsigned usage)
{
    return (usage >= FDL_TIER_KERNEL && usage <= FDL_TIER_CONFIG) || usage == FDL_KEY_USAGE_JOBS;
}

static fdl_keyring_status kr_parse_entry(const uint8_t *p, fdl_keyring_entry *e)
{
    uint8_t id[FDL_FW_KEYID_LEN];
    e->usage = p[0];
    e->state = p[1];
    memcpy(e->key_id, p + 2, FDL_FW_KEYID_LEN);
    memcpy(e->pub, p + 2 + FDL_FW_KEYID_LEN, FDL_FW_PUB_LEN);
    if (!fdl_key_usage_listable(e->usage))
        return FDL_KR_ERR_USAGE;
    if (e->state != FDL_KEY_CURRENT && e->state != FDL_KEY_NEXT)
        return FDL_KR_ERR_STATE;
    if (!fdl_fw_pub_valid(e->pub))
        return FDL_KR_ERR_POINT;
    fdl_fw_key_id(e->pub, id);
    if (memcmp(id, e->key_id, FDL_FW_KEYID_LEN) != 0)
        return FDL_KR_ERR_KEYID;
    return FDL_KR_OK;
}

fdl_keyring_status fdl_keyring_parse(const uint8_t *buf, size_t len, fdl_keyring *out)
{
    fdl_keyring kr;
    fdl_keyring_status st;
    if (!out || (!buf && len))
        return FDL_KR_ERR_ARG;
    if (len < 6)
        return FDL_KR_ERR_SHORT;
    if (memcmp(buf, FDL_KEYRING_MAGIC, 4) != 0)
        return FDL_KR_ERR_MAGIC;
    if (buf[4] != FDL_KEYRING_VERSION)
        return FDL_KR_ERR_VERSION;
    kr.n = buf[5];
    if (kr.n == 0 || kr.n > FDL_KEYRING_MAX)
        return FDL_KR_ERR_COUNT;
    if (len < 6 + (size_t)kr.n * FDL_KEYRING_ENTRY_LEN)
        return FDL_KR_ERR_SHORT;
    if (len > 6 + (size_t)kr.n * FDL_KEYRING_ENTRY_LEN)
        return FDL_KR_ERR_COUNT;
    for (unsigned i = 0; i < kr.n; i++) {
        if ((st = kr_parse_entry(buf + 6 + (size_t)i * FDL_KEYRING_ENTRY_LEN, &kr.e[i])) != FDL_KR_OK)
            return st;
        for (unsigned j = 0; j < i; j++) {
            if (kr.e[j].usage == kr.e[i].usage && kr.e[j].state == kr.e[i].state)
                return FDL_KR_ERR_STATE;
            /* One key for two uses would let it sign both: a key of one tier
             * must not verify another's images. */
            if (!memcmp(kr.e[j].key_id, kr.e[i].key_id, FDL_FW_KEYID_LEN))
                return FDL_KR_ERR_DUPLICATE;
        }
    }
    *out = kr;
    return FDL_KR_OK;
}

size_t fdl_keyring_encode(const fdl_keyring *kr, uint8_t *out, size_t cap)
{
    if (!kr || !out || kr->n == 0 || kr->n > FDL_KEYRING_MAX)
        return 0;
    size_t need = 6 + (size_t)kr->n * FDL_KEYRING_ENTRY_LEN;
    if (cap < need)
        return 0;
    memcpy(out, FDL_KEYRING_MAGIC, 4);
    out[4] = FDL_KEYRING_VERSION;
    out[5] = (uint8_t)kr->n;
    for (unsigned i = 0; i < kr->n; i++) {
        uint8_t *p = out + 6 + (size_t)i * FDL_KEYRING_ENTRY_LEN;
        p[0] = kr->e[i].usage;
        p[1] = kr->e[i].state;
        memcpy(p + 2, kr->e[i].key_id, FDL_FW_KEYID_LEN);
        memcpy(p + 2 + FDL_FW_KEYID_LEN, kr->e[i].pub, FDL_FW_PUB_LEN);
    }
    return need;
}

const fdl_keyring_entry *fdl_keyring_find(const fdl_keyring *kr, unsigned usage,
                                          const uint8_t key_id[FDL_FW_KEYID_LEN])
{
    if (!kr || !key_id || !fdl_key_usage_listable(usage))
        return NULL;
    for (unsigned i = 0; i < kr->n && i < FDL_KEYRING_MAX; i++)
        if (kr->e[i].usage == usage && !memcmp(kr->e[i].key_id, key_id, FDL_FW_KEYID_LEN))
            return &kr->e[i];
    return NULL;
}

fdl_fw_status fdl_keyring_verify_image(const fdl_keyring *kr, const fdl_fw_hdr *h)
{
    if (!kr || !h)
        return FDL_FW_ERR_ARG;
    /* The header's tier chooses the key: the signature covers the tier byte, so an
     * image cannot be relabelled into the tier whose key signed it. */
    const fdl_keyring_entry *e = fdl_keyring_find(kr, h->tier, h->key_id);
    if (!e)
        return FDL_FW_ERR_KEY_UNKNOWN;
    return fdl_fwimage_verify_sig(h, e->pub);
}
