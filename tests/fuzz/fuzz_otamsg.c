/*
 * tests/fuzz/fuzz_otamsg.c — libFuzzer target for the OTA messages the cloud reads
 * from devices (cloud/otamsg.h): block requests and status reports.
 *
 * The first byte picks the message and the topic shape (a genuine one, or the
 * rest of the input up to a NUL taken as the topic), the rest is the payload.
 * Any broken promise aborts:
 *   - every status is one of the named ones;
 *   - on OK every id is NUL-terminated, 1..63 bytes of the id alphabet and not
 *     "." or ".."; a request's offset and length print back to the exact bytes
 *     that were parsed; a report's step is [a-z-], its detail printable ASCII;
 *   - parsing never reads past the payload (ASan) nor depends on a NUL in it.
 * The sources are included so the fuzzer sees their static functions.
 */
#include "cloud/json.c"
#include "cloud/otamsg.c"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_otamsg: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

static void check_id(const char *s)
{
    size_t n = strnlen(s, FDL_OTAMSG_ID_MAX);
    CHECK(n < FDL_OTAMSG_ID_MAX);
    CHECK(fdl_otamsg_valid_id(s, n, FDL_OTAMSG_ID_MAX - 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char topic[256];
    const uint8_t *p = data + 1;
    size_t len = size - 1;
    int report = data[0] & 1;
    if (data[0] & 2) {
        /* The topic is ours to pick too: the rest up to a NUL. */
        const uint8_t *nul = memchr(p, 0, len);
        size_t tl = nul ? (size_t)(nul - p) : len;
        if (tl >= sizeof topic)
            tl = sizeof topic - 1;
        memcpy(topic, p, tl);
        topic[tl] = '\0';
        p += nul ? tl + 1 : len;
        len -= nul ? tl + 1 : len;
    } else {
        snprintf(topic, sizeof topic, report ? "$fleet/jobs/dev-000001/status" : "$fleet/ota/dev-000001/get");
    }
    /* A private copy of exactly len bytes: reading past it is caught. */
    uint8_t *buf = len ? malloc(len) : NULL;
    if (len)
        memcpy(buf, p, len);
    if (report) {
        fdl_otamsg_report r;
        fdl_otamsg_status st = fdl_otamsg_parse_report(topic, buf, len, &r);
        CHECK(st <= FDL_OTAMSG_ERR_FIELD);
        if (st == FDL_OTAMSG_OK) {
            check_id(r.device);
            check_id(r.job);
            size_t sl = strnlen(r.step, sizeof r.step);
            CHECK(sl > 0 && sl < sizeof r.step);
            for (size_t i = 0; i < sl; i++)
                CHECK((r.step[i] >= 'a' && r.step[i] <= 'z') || r.step[i] == '-');
            size_t dl = strnlen(r.detail, sizeof r.detail);
            CHECK(dl < sizeof r.detail);
            for (size_t i = 0; i < dl; i++)
                CHECK(r.detail[i] >= 0x20 && r.detail[i] <= 0x7e);
            CHECK(r.seq <= (uint64_t)INT64_MAX);
        }
    } else {
        fdl_otamsg_get g;
        fdl_otamsg_status st = fdl_otamsg_parse_get(topic, buf, len, &g);
        CHECK(st <= FDL_OTAMSG_ERR_FIELD);
        if (st == FDL_OTAMSG_OK) {
            check_id(g.device);
            check_id(g.artifact);
            char back[256];
            int n = snprintf(back, sizeof back, "%s %u %u", g.artifact, g.offset, g.length);
            CHECK(n > 0 && (size_t)n == len && !memcmp(back, buf, len));
        }
    }
    free(buf);
    return 0;
}
