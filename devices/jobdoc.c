/*
 * devices/jobdoc.c — the signed OTA job document: envelope, strict document schema, signature and
 * device-side checks (see jobdoc.h).
 *
 * The document is JSON read with cloud/json.h. That parser lives under cloud/
 * because the broker plugin was its first user, but it is sans-I/O,
 * allocation-free and depends on nothing but devices/utf8.h, so it is as fit for
 * device firmware as for the cloud; and one strict parser (duplicate keys
 * refused after decoding, UTF-8 checked, every ceiling enforced) on both ends
 * leaves no room for a document that means one thing to the job service and
 * another to the device. A second hand-written JSON reader here would be exactly
 * that room.
 */
#include "devices/jobdoc.h"

#include <string.h>

#include <mbedtls/sha256.h>

#include "cloud/json.h"

/* Members of the document, one bit each in a "seen" mask. */
enum {
    F_JOB, F_SEQ, F_TIER, F_VERSION, F_COUNTER, F_ARTIFACT, F_SHA256, F_SIZE, F_ISSUED, F_EXPIRES, F_TARGETS, F_HW,
    F_COUNT
};
static const char *const job_field_names[F_COUNT] = {
    "job", "seq", "tier", "version", "counter", "artifact", "sha256", "size", "issued", "expires", "targets", "hw",
};
#define F_REQUIRED ((1u << F_COUNT) - 1 - (1u << F_HW))

/* Tokens a valid document can need: the object, a key and a value per member, and
 * the elements of the two arrays. Anything bigger is refused by the parser's
 * token ceiling before it is walked. The array lives on the stack (~100 KiB):
 * the parser promises not to allocate, and every thread that runs devices has
 * the default 8 MiB stack. */
#define JOB_TOKENS (1 + 2 * F_COUNT + FDL_JOBDOC_TARGETS_MAX + FDL_JOBDOC_HW_MAX)
/* Longest string value: the 64 hex digits of "sha256". */
#define JOB_STRING_MAX 64
/* JSON integers a double represents exactly: the ceiling of seq and times. */
#define JOB_INT_MAX ((UINT64_C(1) << 53) - 1)

static const char *const job_status_str[] = {
    [FDL_JOB_OK] = "ok",
    [FDL_JOB_ERR_ENVELOPE] = "job envelope malformed (magic, length or trailing bytes)",
    [FDL_JOB_ERR_JSON] = "job document is not one well-formed JSON object",
    [FDL_JOB_ERR_FIELD] = "job document member missing, unknown, duplicated, mistyped or out of range",
    [FDL_JOB_ERR_KEY_UNKNOWN] = "job signer not trusted for jobs",
    [FDL_JOB_ERR_SIGNATURE] = "job signature does not verify",
    [FDL_JOB_ERR_NOT_FOR_ME] = "job not targeted at this device",
    [FDL_JOB_ERR_HW] = "job not for this hardware revision",
    [FDL_JOB_ERR_EXPIRED] = "job expired or issued in the future",
    [FDL_JOB_ERR_REPLAY] = "job sequence number not above the last accepted",
    [FDL_JOB_ERR_ARG] = "invalid argument",
};

const char *fdl_jobdoc_strerror(fdl_jobdoc_status st)
{
    if ((unsigned)st < sizeof job_status_str / sizeof job_status_str[0] && job_status_str[st])
        return job_status_str[st];
    return "unknown job document status";
}

static uint32_t job_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void job_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---------------------------------------------------------------------------------------- */
/* Member values. Each returns 0 or -1 (FDL_JOB_ERR_FIELD for the caller).                  */

static int job_id_char(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

/* A string of 1..max bytes of [A-Za-z0-9._-], written as is (no escapes: an id
 * spelled two ways is a look-alike waiting to happen). out may be NULL. */
static int job_get_id(const uint8_t *doc, const fdl_jv_tok *t, size_t max, char *out)
{
    if (t->type != FDL_JV_STRING || (t->flags & FDL_JV_F_ESCAPED) || t->len < 1 || t->len > max)
        return -1;
    for (uint32_t i = 0; i < t->len; i++)
        if (!job_id_char(doc[t->start + i]))
            return -1;
    if (out) {
        memcpy(out, doc + t->start, t->len);
        out[t->len] = '\0';
    }
    return 0;
}

/* A plain non-negative integer (no sign, fraction or exponent: one spelling per value). */
static int job_get_uint(const uint8_t *doc, const fdl_jv_tok *t, uint64_t min, uint64_t max, uint64_t *out)
{
    int64_t v;
    if (t->type != FDL_JV_NUMBER || (t->flags & (FDL_JV_F_FRAC | FDL_JV_F_EXP)) || doc[t->start] == '-')
        return -1;
    if (fdl_jv_number_int(doc + t->start, t->len, &v) != FDL_JV_OK || v < 0 || (uint64_t)v < min ||
        (uint64_t)v > max)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

/* A short unescaped string copied into out[cap]. */
static int job_get_word(const uint8_t *doc, const fdl_jv_tok *t, char *out, size_t cap)
{
    if (t->type != FDL_JV_STRING || (t->flags & FDL_JV_F_ESCAPED) || t->len < 1 || t->len >= cap)
        return -1;
    memcpy(out, doc + t->start, t->len);
    out[t->len] = '\0';
    return 0;
}

static int job_get_tier(const uint8_t *doc, const fdl_jv_tok *t, uint8_t *out)
{
    char w[16];
    if (job_get_word(doc, t, w, sizeof w) != 0)
        return -1;
    /* Only the canonical names: the signed document has one spelling per tier. */
    fdl_fw_tier tier = fdl_fw_tier_parse(w);
    if (tier == FDL_TIER_NONE || strcmp(fdl_fw_tier_name(tier), w) != 0)
        return -1;
    *out = (uint8_t)tier;
    return 0;
}

static int job_hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase too: one spelling */
}

static int job_get_sha256(const uint8_t *doc, const fdl_jv_tok *t, uint8_t out[32])
{
    if (t->type != FDL_JV_STRING || (t->flags & FDL_JV_F_ESCAPED) || t->len != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        int hi = job_hexval(doc[t->start + 2 * i]), lo = job_hexval(doc[t->start + 2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int job_get_targets(const uint8_t *doc, const fdl_jv_tok *tok, uint32_t arr, fdl_jobdoc *jd)
{
    const fdl_jv_tok *a = &tok[arr];
    if (a->type != FDL_JV_ARRAY || a->size < 1 || a->size > FDL_JOBDOC_TARGETS_MAX)
        return -1;
    for (uint32_t e = arr + 1; e < a->end; e = tok[e].end)
        if (job_get_id(doc, &tok[e], FDL_JOBDOC_TARGET_MAX, NULL) != 0)
            return -1;
    jd->n_targets = a->size;
    jd->targets_at = a->start;
    jd->targets_len = a->len;
    return 0;
}

static int job_get_hw(const uint8_t *doc, const fdl_jv_tok *tok, uint32_t arr, fdl_jobdoc *jd)
{
    const fdl_jv_tok *a = &tok[arr];
    unsigned n = 0;
    if (a->type != FDL_JV_ARRAY || a->size < 1 || a->size > FDL_JOBDOC_HW_MAX)
        return -1;
    for (uint32_t e = arr + 1; e < a->end; e = tok[e].end) {
        uint64_t v;
        if (n >= FDL_JOBDOC_HW_MAX || job_get_uint(doc, &tok[e], 0, UINT32_MAX, &v) != 0)
            return -1;
        jd->hw[n++] = (uint32_t)v;
    }
    jd->n_hw = n;
    return 0;
}

/* One member: 0, or -1 for FDL_JOB_ERR_FIELD. */
static int job_get_member(int f, const uint8_t *doc, const fdl_jv_tok *tok, uint32_t v, fdl_jobdoc *jd)
{
    const fdl_jv_tok *t = &tok[v];
    uint64_t u;
    switch (f) {
    case F_JOB: return job_get_id(doc, t, FDL_JOBDOC_ID_MAX - 1, jd->job);
    case F_ARTIFACT: return job_get_id(doc, t, FDL_JOBDOC_ID_MAX - 1, jd->artifact);
    case F_SEQ: return job_get_uint(doc, t, 1, JOB_INT_MAX, &jd->seq);
    case F_TIER: return job_get_tier(doc, t, &jd->tier);
    case F_VERSION: {
        char w[16];
        return job_get_word(doc, t, w, sizeof w) != 0 ? -1 : fdl_fw_version_parse(w, &jd->version);
    }
    case F_COUNTER:
        if (job_get_uint(doc, t, 0, UINT32_MAX, &u) != 0)
            return -1;
        jd->counter = (uint32_t)u;
        return 0;
    case F_SHA256: return job_get_sha256(doc, t, jd->sha256);
    case F_SIZE:
        if (job_get_uint(doc, t, FDL_FW_HDR_LEN, (uint64_t)FDL_FW_HDR_LEN + FDL_FW_PAYLOAD_MAX, &u) != 0)
            return -1;
        jd->size = (uint32_t)u;
        return 0;
    case F_ISSUED: return job_get_uint(doc, t, 0, JOB_INT_MAX, &jd->issued_ms);
    case F_EXPIRES: return job_get_uint(doc, t, 0, JOB_INT_MAX, &jd->expires_ms);
    case F_TARGETS: return job_get_targets(doc, tok, v, jd);
    case F_HW: return job_get_hw(doc, tok, v, jd);
    default: return -1;
    }
}

static fdl_jobdoc_status job_parse_doc(const uint8_t *doc, size_t len, fdl_jobdoc *jd)
{
    fdl_jv_tok tok[JOB_TOKENS];
    size_t n = 0;
    unsigned seen = 0;
    const fdl_jv_limits lim = {
        .max_bytes = FDL_JOBDOC_MAX, .max_depth = 2, .max_tokens = JOB_TOKENS, .max_string = JOB_STRING_MAX};

    switch (fdl_jv_parse(doc, len, &lim, tok, JOB_TOKENS, &n, NULL)) {
    case FDL_JV_OK: break;
    /* Well-formed so far but beyond what the schema allows anywhere (a nested
     * container, a long string, too many targets): a member is out of range. */
    case FDL_JV_TOO_DEEP:
    case FDL_JV_TOO_LARGE: return FDL_JOB_ERR_FIELD;
    default: return FDL_JOB_ERR_JSON;
    }
    if (tok[0].type != FDL_JV_OBJECT)
        return FDL_JOB_ERR_JSON;
    for (uint32_t k = 1; k < tok[0].end; k = tok[k + 1].end) {
        int f = -1;
        /* Member names follow the values' rule: one spelling, no escapes. */
        for (int i = 0; i < F_COUNT && f < 0 && !(tok[k].flags & FDL_JV_F_ESCAPED); i++)
            if (fdl_jv_str_eq(doc, &tok[k], job_field_names[i], strlen(job_field_names[i])))
                f = i;
        /* Unknown member, or twice (the parser already refuses duplicate keys). */
        if (f < 0 || (seen & 1u << f))
            return FDL_JOB_ERR_FIELD;
        seen |= 1u << f;
        if (job_get_member(f, doc, tok, k + 1, jd) != 0)
            return FDL_JOB_ERR_FIELD;
    }
    if ((seen & F_REQUIRED) != F_REQUIRED || jd->expires_ms <= jd->issued_ms)
        return FDL_JOB_ERR_FIELD;
    return FDL_JOB_OK;
}

fdl_jobdoc_status fdl_jobdoc_parse(const uint8_t *buf, size_t len, fdl_jobdoc *out)
{
    fdl_jobdoc jd;
    fdl_jobdoc_status st;
    if (!out || (!buf && len))
        return FDL_JOB_ERR_ARG;
    if (len < 8 || memcmp(buf, FDL_JOBDOC_MAGIC, 4) != 0)
        return FDL_JOB_ERR_ENVELOPE;
    uint32_t d = job_get32(buf + 4);
    if (d < 1 || d > FDL_JOBDOC_MAX || len != FDL_JOBDOC_OVERHEAD + (size_t)d)
        return FDL_JOB_ERR_ENVELOPE;
    memset(&jd, 0, sizeof jd);
    jd.doc = buf + 8;
    jd.doc_len = d;
    memcpy(jd.key_id, buf + 8 + d, FDL_FW_KEYID_LEN);
    memcpy(jd.sig, buf + 8 + d + FDL_FW_KEYID_LEN, FDL_FW_SIG_LEN);
    if ((st = job_parse_doc(jd.doc, d, &jd)) != FDL_JOB_OK)
        return st;
    *out = jd;
    return FDL_JOB_OK;
}

bool fdl_jobdoc_targets(const fdl_jobdoc *jd, const char *id)
{
    if (!jd || !jd->doc || !id)
        return false;
    size_t idlen = strlen(id);
    if (idlen < 1 || idlen > FDL_JOBDOC_TARGET_MAX || jd->targets_at > jd->doc_len ||
        jd->targets_len > jd->doc_len - jd->targets_at)
        return false;
    /* The parser let only unescaped [A-Za-z0-9._-] strings into the array, so
     * every '"' in its text opens or closes one target: no decoding needed. */
    const uint8_t *p = jd->doc + jd->targets_at, *end = p + jd->targets_len;
    while (p < end) {
        if (*p++ != '"')
            continue;
        const uint8_t *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return false;
        if ((size_t)(q - p) == idlen && !memcmp(p, id, idlen))
            return true;
        p = q + 1;
    }
    return false;
}

void fdl_jobdoc_signed_hash(const uint8_t *doc, size_t doc_len, const uint8_t key_id[FDL_FW_KEYID_LEN],
                            uint8_t out[32])
{
    mbedtls_sha256_context c;
    uint8_t head[8];
    memcpy(head, FDL_JOBDOC_MAGIC, 4);
    job_put32(head + 4, (uint32_t)doc_len);
    mbedtls_sha256_init(&c);
    /* The built-in SHA-256 cannot fail on memory buffers; the results are ignored. */
    (void)mbedtls_sha256_starts(&c, 0);
    (void)mbedtls_sha256_update(&c, head, sizeof head);
    (void)mbedtls_sha256_update(&c, doc, doc_len);
    (void)mbedtls_sha256_update(&c, key_id, FDL_FW_KEYID_LEN);
    (void)mbedtls_sha256_finish(&c, out);
    mbedtls_sha256_free(&c);
}

size_t fdl_jobdoc_wrap(const uint8_t *doc, size_t doc_len, const uint8_t key_id[FDL_FW_KEYID_LEN],
                       const uint8_t sig[FDL_FW_SIG_LEN], uint8_t *out, size_t cap)
{
    if (!doc || !key_id || !sig || !out || doc_len < 1 || doc_len > FDL_JOBDOC_MAX)
        return 0;
    size_t need = FDL_JOBDOC_OVERHEAD + doc_len;
    if (cap < need)
        return 0;
    memcpy(out, FDL_JOBDOC_MAGIC, 4);
    job_put32(out + 4, (uint32_t)doc_len);
    memmove(out + 8, doc, doc_len); /* doc may already sit at out + 8 */
    memcpy(out + 8 + doc_len, key_id, FDL_FW_KEYID_LEN);
    memcpy(out + 8 + doc_len + FDL_FW_KEYID_LEN, sig, FDL_FW_SIG_LEN);
    return need;
}

fdl_jobdoc_status fdl_jobdoc_verify(const fdl_jobdoc *jd, const fdl_keyring *kr)
{
    uint8_t hash[32];
    if (!jd || !kr || !jd->doc)
        return FDL_JOB_ERR_ARG;
    const fdl_keyring_entry *e = fdl_keyring_find(kr, FDL_KEY_USAGE_JOBS, jd->key_id);
    if (!e)
        return FDL_JOB_ERR_KEY_UNKNOWN;
    fdl_jobdoc_signed_hash(jd->doc, jd->doc_len, jd->key_id, hash);
    /* Fail closed: an mbedTLS failure (out of memory) is not a valid signature either. */
    return fdl_fw_ecdsa_verify(e->pub, hash, jd->sig) == FDL_FW_OK ? FDL_JOB_OK : FDL_JOB_ERR_SIGNATURE;
}

fdl_jobdoc_status fdl_jobdoc_check(const fdl_jobdoc *jd, const fdl_keyring *kr, const char *device_id,
                                   uint32_t hw_rev, uint64_t now_ms, uint64_t last_seq)
{
    fdl_jobdoc_status st;
    if (!jd || !kr || !device_id)
        return FDL_JOB_ERR_ARG;
    if ((st = fdl_jobdoc_verify(jd, kr)) != FDL_JOB_OK)
        return st;
    if (!fdl_jobdoc_targets(jd, device_id))
        return FDL_JOB_ERR_NOT_FOR_ME;
    if (jd->n_hw) {
        bool ok = false;
        for (unsigned i = 0; i < jd->n_hw && i < FDL_JOBDOC_HW_MAX; i++)
            ok |= jd->hw[i] == hw_rev;
        if (!ok)
            return FDL_JOB_ERR_HW;
    }
    if (now_ms >= jd->expires_ms || (jd->issued_ms > FDL_JOBDOC_SKEW_MS && now_ms < jd->issued_ms - FDL_JOBDOC_SKEW_MS))
        return FDL_JOB_ERR_EXPIRED;
    if (jd->seq <= last_seq)
        return FDL_JOB_ERR_REPLAY;
    return FDL_JOB_OK;
}
