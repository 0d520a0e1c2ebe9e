/*
 * cloud/otamsg.h — the two OTA messages the cloud reads from devices, parsed
 * sans-I/O (no broker, no allocation): a block request to the artifact store and
 * a status report to the job service (devices/ota.h has the protocol).
 *
 * Both come from devices, so both are hostile input: any bytes return a status,
 * never a crash; the fuzz target tests/fuzz/fuzz_otamsg.c holds them to it.
 */
#ifndef FDL_OTAMSG_H
#define FDL_OTAMSG_H

#include <stddef.h>
#include <stdint.h>

/* Ids with their NUL: artifacts and jobs (the job document's rule, 1..63 of
 * [A-Za-z0-9._-]), devices as a topic level (1..63 of the same). */
#define FDL_OTAMSG_ID_MAX 64
/* Bytes of a report we read at all (a report is about 200). */
#define FDL_OTAMSG_REPORT_MAX 1024
#define FDL_OTAMSG_STEP_MAX 24
#define FDL_OTAMSG_DETAIL_MAX 160

typedef enum fdl_otamsg_status {
    FDL_OTAMSG_OK = 0,
    FDL_OTAMSG_ERR_TOPIC,      /* not $fleet/ota/<id>/get (or .../jobs/<id>/status), or a bad id level */
    FDL_OTAMSG_ERR_SYNTAX,     /* the payload does not follow the message's grammar */
    FDL_OTAMSG_ERR_FIELD,      /* a value out of range or of the wrong kind */
} fdl_otamsg_status;

const char *fdl_otamsg_strerror(fdl_otamsg_status st);

/* 1 if s[0..n) is 1..max bytes of [A-Za-z0-9._-] and not "." or "..". */
int fdl_otamsg_valid_id(const char *s, size_t n, size_t max);

/* $fleet/ota/<device>/get with "<artifact> <offset> <length>": decimal, no sign,
 * no leading zero, one space each, nothing else; offset and length <= 2^32-1. */
typedef struct fdl_otamsg_get {
    char device[FDL_OTAMSG_ID_MAX];
    char artifact[FDL_OTAMSG_ID_MAX];
    uint32_t offset, length;
} fdl_otamsg_get;

fdl_otamsg_status fdl_otamsg_parse_get(const char *topic, const uint8_t *payload, size_t len, fdl_otamsg_get *out);

/* $fleet/jobs/<device>/status with {"job":..,"seq":..,"step":..,"detail":..}
 * (cloud/json.h's strict parser; other members ignored). job 1..63 of the id
 * alphabet, step a word of [a-z-] (the caller decides which it knows), seq an
 * integer 0..2^63-1 (absent = 0), detail a string (absent = ""; control
 * characters and non-ASCII replaced by '?': it goes to logs and the registry). */
typedef struct fdl_otamsg_report {
    char device[FDL_OTAMSG_ID_MAX];
    char job[FDL_OTAMSG_ID_MAX];
    uint64_t seq;
    char step[FDL_OTAMSG_STEP_MAX];
    char detail[FDL_OTAMSG_DETAIL_MAX];
} fdl_otamsg_report;

fdl_otamsg_status fdl_otamsg_parse_report(const char *topic, const uint8_t *payload, size_t len,
                                          fdl_otamsg_report *out);

#endif
