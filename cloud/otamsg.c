/* cloud/otamsg.c — block requests and status reports from devices, parsed sans-I/O (see otamsg.h). */
#include "cloud/otamsg.h"

#include <stdio.h>
#include <string.h>

#include "cloud/enroll.h"
#include "cloud/json.h"

static const char *const k_status[] = {
    [FDL_OTAMSG_OK] = "ok",
    [FDL_OTAMSG_ERR_TOPIC] = "not an OTA topic of one device",
    [FDL_OTAMSG_ERR_SYNTAX] = "malformed message",
    [FDL_OTAMSG_ERR_FIELD] = "a field is out of range",
};

const char *fdl_otamsg_strerror(fdl_otamsg_status st)
{
    return (unsigned)st < sizeof k_status / sizeof *k_status ? k_status[st] : "?";
}

static int is_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

int fdl_otamsg_valid_id(const char *s, size_t n, size_t max)
{
    if (!s || n == 0 || n > max || (n <= 2 && s[0] == '.' && (n == 1 || s[1] == '.')))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!is_id_char(s[i]))
            return 0;
    return 1;
}

/* <prefix><id>/<leaf> exactly; the id into out. */
static int topic_device(const char *topic, const char *prefix, const char *leaf, char out[FDL_OTAMSG_ID_MAX])
{
    size_t pl = strlen(prefix);
    if (!topic || strncmp(topic, prefix, pl) != 0)
        return -1;
    const char *id = topic + pl;
    const char *slash = strchr(id, '/');
    if (!slash || strcmp(slash + 1, leaf) != 0)
        return -1;
    size_t n = (size_t)(slash - id);
    if (!fdl_otamsg_valid_id(id, n, FDL_OTAMSG_ID_MAX - 1))
        return -1;
    memcpy(out, id, n);
    out[n] = '\0';
    return 0;
}

/* A decimal uint32 without sign or leading zero at p[*i..); advances *i. */
static int dec32(const uint8_t *p, size_t len, size_t *i, uint32_t *out)
{
    size_t d0 = *i;
    uint64_t v = 0;
    while (*i < len && p[*i] >= '0' && p[*i] <= '9' && *i - d0 < 11) {
        v = v * 10 + (uint64_t)(p[*i] - '0');
        (*i)++;
    }
    if (*i == d0 || (*i - d0 > 1 && p[d0] == '0'))
        return FDL_OTAMSG_ERR_SYNTAX;
    if (v > UINT32_MAX)
        return FDL_OTAMSG_ERR_FIELD;
    *out = (uint32_t)v;
    return FDL_OTAMSG_OK;
}

fdl_otamsg_status fdl_otamsg_parse_get(const char *topic, const uint8_t *payload, size_t len, fdl_otamsg_get *out)
{
    memset(out, 0, sizeof *out);
    if (topic_device(topic, FDL_TOPIC_OTA_PREFIX, FDL_TOPIC_OTA_GET, out->device) != 0)
        return FDL_OTAMSG_ERR_TOPIC;
    if (!payload || len == 0 || len > 2 * FDL_OTAMSG_ID_MAX)
        return FDL_OTAMSG_ERR_SYNTAX;
    size_t i = 0;
    while (i < len && payload[i] != ' ')
        i++;
    if (i == len || !fdl_otamsg_valid_id((const char *)payload, i, FDL_OTAMSG_ID_MAX - 1))
        return FDL_OTAMSG_ERR_SYNTAX;
    memcpy(out->artifact, payload, i);
    out->artifact[i] = '\0';
    uint32_t *v[2] = {&out->offset, &out->length};
    for (int k = 0; k < 2; k++) {
        if (i >= len || payload[i] != ' ')
            return FDL_OTAMSG_ERR_SYNTAX;
        i++;
        int st = dec32(payload, len, &i, v[k]);
        if (st != FDL_OTAMSG_OK)
            return (fdl_otamsg_status)st;
    }
    return i == len ? FDL_OTAMSG_OK : FDL_OTAMSG_ERR_SYNTAX;
}

/* Index of member key's value in the top-level object, or 0. */
static size_t member(const uint8_t *b, const fdl_jv_tok *t, size_t n, const char *key)
{
    for (size_t i = 1; i + 1 < n; i++)
        if (t[i].parent == 0 && (t[i].flags & FDL_JV_F_KEY) && fdl_jv_str_eq(b, &t[i], key, strlen(key)))
            return i + 1;
    return 0;
}

fdl_otamsg_status fdl_otamsg_parse_report(const char *topic, const uint8_t *payload, size_t len,
                                          fdl_otamsg_report *out)
{
    memset(out, 0, sizeof *out);
    if (topic_device(topic, FDL_TOPIC_JOBS_PREFIX, FDL_TOPIC_JOBS_STATUS, out->device) != 0)
        return FDL_OTAMSG_ERR_TOPIC;
    if (!payload || len == 0 || len > FDL_OTAMSG_REPORT_MAX)
        return FDL_OTAMSG_ERR_SYNTAX;
    fdl_jv_tok tok[32];
    size_t n = 0;
    fdl_jv_limits lim = {.max_bytes = FDL_OTAMSG_REPORT_MAX, .max_depth = 2, .max_tokens = 32,
                         .max_string = FDL_OTAMSG_REPORT_MAX};
    if (fdl_jv_parse(payload, len, &lim, tok, 32, &n, NULL) != FDL_JV_OK || tok[0].type != FDL_JV_OBJECT)
        return FDL_OTAMSG_ERR_SYNTAX;
    char buf[FDL_OTAMSG_REPORT_MAX + 1];
    size_t v = member(payload, tok, n, "job");
    size_t bl = 0;
    if (!v || tok[v].type != FDL_JV_STRING || fdl_jv_str_copy(payload, &tok[v], buf, sizeof buf, &bl) != FDL_JV_OK ||
        !fdl_otamsg_valid_id(buf, bl, FDL_OTAMSG_ID_MAX - 1))
        return FDL_OTAMSG_ERR_FIELD;
    memcpy(out->job, buf, bl + 1);
    v = member(payload, tok, n, "step");
    if (!v || tok[v].type != FDL_JV_STRING || fdl_jv_str_copy(payload, &tok[v], buf, sizeof buf, &bl) != FDL_JV_OK ||
        bl == 0 || bl >= FDL_OTAMSG_STEP_MAX)
        return FDL_OTAMSG_ERR_FIELD;
    for (size_t i = 0; i < bl; i++)
        if (!((buf[i] >= 'a' && buf[i] <= 'z') || buf[i] == '-'))
            return FDL_OTAMSG_ERR_FIELD;
    memcpy(out->step, buf, bl + 1);
    v = member(payload, tok, n, "seq");
    if (v) {
        int64_t s = 0;
        if (tok[v].type != FDL_JV_NUMBER || fdl_jv_number_int(payload + tok[v].start, tok[v].len, &s) != FDL_JV_OK ||
            s < 0)
            return FDL_OTAMSG_ERR_FIELD;
        out->seq = (uint64_t)s;
    }
    v = member(payload, tok, n, "detail");
    if (v) {
        if (tok[v].type != FDL_JV_STRING || fdl_jv_str_copy(payload, &tok[v], buf, sizeof buf, &bl) != FDL_JV_OK)
            return FDL_OTAMSG_ERR_FIELD;
        if (bl >= sizeof out->detail)
            bl = sizeof out->detail - 1;
        for (size_t i = 0; i < bl; i++)
            out->detail[i] = (unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e ? '?' : buf[i];
        out->detail[bl] = '\0';
    }
    return FDL_OTAMSG_OK;
}
