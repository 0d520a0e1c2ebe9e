/*
 * tests/fuzz/fuzz_jobdoc.c — libFuzzer target for devices/jobdoc.c (over cloud/json.c).
 *
 * The input is a job document from a hostile network (a forged or replayed
 * notify message). Two views of each input:
 *   1. the input as the whole MQTT payload (envelope and all);
 *   2. the input as the JSON document only, wrapped by the harness into an
 *      envelope and signed with a jobs key the harness's keyring trusts, so
 *      documents the fuzzer writes reach the signature-OK paths.
 * Every broken promise aborts:
 *   - parse returns a known status and writes *out only on OK; an accepted
 *     envelope is exactly 80 + d bytes, the views (doc, targets range) lie
 *     inside the input, the fields are within the schema's ranges
 *     (seq >= 1, expires > issued, size within an image's bounds, 1..4096
 *     targets, at most 16 hardware revisions, ids of [A-Za-z0-9._-]);
 *   - every target the harness finds again with the strict JSON parser is
 *     reported by fdl_jobdoc_targets, and an id that is not among them is not;
 *   - view 1 never verifies (the fuzzer cannot sign); view 2 always does, and
 *     fdl_jobdoc_check returns exactly the verdict computed here from the
 *     fields (target, hardware, time, replay, in that order);
 *   - parsing the same document wrapped twice gives the same fields.
 */
#include "cloud/json.c"
#include "devices/fwimage.c"
#include "devices/keyring.c"
#include "devices/jobdoc.c"

#include "fwfuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fwfuzz_key g_jobs;
static fdl_keyring g_kr;
static int g_ready;
static uint8_t g_env[FDL_JOBDOC_MAX + FDL_JOBDOC_OVERHEAD];
static fdl_jv_tok g_tok[JOB_TOKENS];

static void setup(void)
{
    if (g_ready)
        return;
    fwfuzz_key_init(&g_jobs, 0x22);
    memset(&g_kr, 0, sizeof g_kr);
    g_kr.n = 1;
    g_kr.e[0].usage = FDL_KEY_USAGE_JOBS;
    g_kr.e[0].state = FDL_KEY_CURRENT;
    memcpy(g_kr.e[0].key_id, g_jobs.id, FDL_FW_KEYID_LEN);
    memcpy(g_kr.e[0].pub, g_jobs.pub, FDL_FW_PUB_LEN);
    g_ready = 1;
}

static int is_id(const uint8_t *s, size_t n, size_t max)
{
    if (n < 1 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!job_id_char(s[i]))
            return 0;
    return 1;
}

/* Checks the fields of an accepted document and its targets; returns the first target. */
static void check_fields(const uint8_t *buf, size_t len, const fdl_jobdoc *jd, char *first, size_t cap)
{
    CHECK(len == FDL_JOBDOC_OVERHEAD + jd->doc_len);
    CHECK(jd->doc == buf + 8 && jd->doc_len >= 1 && jd->doc_len <= FDL_JOBDOC_MAX);
    CHECK(jd->targets_at < jd->doc_len && jd->targets_len <= jd->doc_len - jd->targets_at);
    CHECK(jd->doc[jd->targets_at] == '[' && jd->doc[jd->targets_at + jd->targets_len - 1] == ']');
    CHECK(memcmp(jd->key_id, buf + 8 + jd->doc_len, FDL_FW_KEYID_LEN) == 0);
    CHECK(is_id((const uint8_t *)jd->job, strlen(jd->job), FDL_JOBDOC_ID_MAX - 1));
    CHECK(is_id((const uint8_t *)jd->artifact, strlen(jd->artifact), FDL_JOBDOC_ID_MAX - 1));
    CHECK(jd->seq >= 1 && jd->seq <= JOB_INT_MAX);
    CHECK(jd->tier >= FDL_TIER_BOOTLOADER && jd->tier <= FDL_TIER_KEYRING);
    CHECK((jd->version & 0xff00) == 0);
    CHECK(jd->size >= FDL_FW_HDR_LEN && jd->size <= FDL_FW_HDR_LEN + FDL_FW_PAYLOAD_MAX);
    CHECK(jd->expires_ms > jd->issued_ms && jd->expires_ms <= JOB_INT_MAX);
    CHECK(jd->n_targets >= 1 && jd->n_targets <= FDL_JOBDOC_TARGETS_MAX);
    CHECK(jd->n_hw <= FDL_JOBDOC_HW_MAX);

    /* The targets again, with the strict parser on the array's own bytes. */
    fdl_jv_limits lim = {.max_bytes = jd->targets_len, .max_depth = 1, .max_tokens = JOB_TOKENS, .max_string = 64};
    size_t n = 0;
    const uint8_t *arr = jd->doc + jd->targets_at;
    CHECK(fdl_jv_parse(arr, jd->targets_len, &lim, g_tok, JOB_TOKENS, &n, NULL) == FDL_JV_OK);
    CHECK(g_tok[0].type == FDL_JV_ARRAY && g_tok[0].size == jd->n_targets && n == 1 + jd->n_targets);
    first[0] = '\0';
    for (size_t i = 1; i < n; i++) {
        char id[FDL_JOBDOC_TARGET_MAX + 1];
        CHECK(g_tok[i].type == FDL_JV_STRING && g_tok[i].len <= FDL_JOBDOC_TARGET_MAX);
        memcpy(id, arr + g_tok[i].start, g_tok[i].len);
        id[g_tok[i].len] = '\0';
        CHECK(is_id((const uint8_t *)id, g_tok[i].len, FDL_JOBDOC_TARGET_MAX));
        CHECK(fdl_jobdoc_targets(jd, id));
        if (i == 1)
            snprintf(first, cap, "%s", id);
        /* One more or one less byte is another id, found only if it is listed too. */
        if (g_tok[i].len > 1) {
            id[g_tok[i].len - 1] = '\0';
            if (fdl_jobdoc_targets(jd, id)) {
                bool listed = false;
                for (size_t j = 1; j < n && !listed; j++)
                    listed = g_tok[j].len == g_tok[i].len - 1 && !memcmp(arr + g_tok[j].start, id, g_tok[j].len);
                CHECK(listed);
            }
        }
    }
    CHECK(!fdl_jobdoc_targets(jd, "no/such:device"));
}

static void view_payload(const uint8_t *data, size_t size)
{
    fdl_jobdoc jd;
    memset(&jd, 0x77, sizeof jd);
    fdl_jobdoc before = jd;
    fdl_jobdoc_status st = fdl_jobdoc_parse(data, size, &jd);
    CHECK(st >= FDL_JOB_OK && st <= FDL_JOB_ERR_FIELD);
    if (st != FDL_JOB_OK) {
        CHECK(memcmp(&jd, &before, sizeof jd) == 0);
        return;
    }
    char first[64];
    check_fields(data, size, &jd, first, sizeof first);
    st = fdl_jobdoc_verify(&jd, &g_kr);
    CHECK(st == FDL_JOB_ERR_KEY_UNKNOWN || st == FDL_JOB_ERR_SIGNATURE);
    CHECK(fdl_jobdoc_check(&jd, &g_kr, first, 0, 0, 0) == st);
}

static void view_document(const uint8_t *data, size_t size)
{
    uint8_t hash[32], sig[FDL_FW_SIG_LEN];
    fdl_jobdoc jd;
    if (size < 1 || size > FDL_JOBDOC_MAX)
        return;
    /* Wrapped unsigned first: the harness pays for a signature only when the
     * document parses. */
    fdl_jobdoc_signed_hash(data, size, g_jobs.id, hash);
    memset(sig, 0, sizeof sig);
    size_t n = fdl_jobdoc_wrap(data, size, g_jobs.id, sig, g_env, sizeof g_env);
    CHECK(n == FDL_JOBDOC_OVERHEAD + size);
    fdl_jobdoc_status st = fdl_jobdoc_parse(g_env, n, &jd);
    CHECK(st == FDL_JOB_OK || st == FDL_JOB_ERR_JSON || st == FDL_JOB_ERR_FIELD);
    if (st != FDL_JOB_OK)
        return;
    CHECK(fdl_jobdoc_verify(&jd, &g_kr) == FDL_JOB_ERR_SIGNATURE);
    fwfuzz_sign(&g_jobs, hash, sig);
    memcpy(g_env + 8 + size + FDL_FW_KEYID_LEN, sig, FDL_FW_SIG_LEN);
    fdl_jobdoc jd2;
    CHECK(fdl_jobdoc_parse(g_env, n, &jd2) == FDL_JOB_OK);
    jd.doc = jd2.doc; /* same buffer; only the signature bytes changed */
    memcpy(jd.sig, jd2.sig, sizeof jd.sig);
    CHECK(memcmp(&jd, &jd2, sizeof jd) == 0);
    CHECK(fdl_jobdoc_verify(&jd2, &g_kr) == FDL_JOB_OK);

    char first[64];
    check_fields(g_env, n, &jd2, first, sizeof first);
    /* The device-side verdict, from the fields, in the documented order. */
    uint32_t hw = jd2.n_hw ? jd2.hw[jd2.n_hw - 1] : 12345;
    uint64_t now = jd2.issued_ms + (jd2.expires_ms - jd2.issued_ms) / 2;
    CHECK(fdl_jobdoc_check(&jd2, &g_kr, first, hw, now, jd2.seq - 1) == FDL_JOB_OK);
    CHECK(fdl_jobdoc_check(&jd2, &g_kr, "no/such:device", hw, now, 0) == FDL_JOB_ERR_NOT_FOR_ME);
    if (jd2.n_hw) {
        /* The smallest revision not listed (at most n_hw tries). */
        uint32_t other = 0;
        for (bool listed = true; listed; other += listed) {
            listed = false;
            for (unsigned i = 0; i < jd2.n_hw; i++)
                listed |= jd2.hw[i] == other;
        }
        CHECK(fdl_jobdoc_check(&jd2, &g_kr, first, other, now, 0) == FDL_JOB_ERR_HW);
    }
    CHECK(fdl_jobdoc_check(&jd2, &g_kr, first, hw, jd2.expires_ms, 0) == FDL_JOB_ERR_EXPIRED);
    CHECK(fdl_jobdoc_check(&jd2, &g_kr, first, hw, now, jd2.seq) == FDL_JOB_ERR_REPLAY);
    if (jd2.issued_ms > FDL_JOBDOC_SKEW_MS)
        CHECK(fdl_jobdoc_check(&jd2, &g_kr, first, hw, jd2.issued_ms - FDL_JOBDOC_SKEW_MS - 1, 0) ==
              FDL_JOB_ERR_EXPIRED);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    view_payload(data, size);
    view_document(data, size);
    return 0;
}
