/*
 * cloud/audit.h — a configuration audit of the fleet registry, in the spirit of
 * AWS IoT Device Defender's audit: read-only checks over policies, certificates,
 * CAs and broker sessions that each produce findings with a severity.
 *
 * Checks (docs/audit.md has every rule and the reason for its severity):
 *   policy-wildcard         a policy grant that reaches beyond one device's own
 *                           topics (fdl_policy_is_wildcard)
 *   policy-shared           a non-template policy attached to several devices
 *   policy-invalid          a stored policy that does not parse (fail closed)
 *   cert-expiring           ACTIVE certificate expired or about to
 *   cert-revoked-connected  an open session on a REVOKED certificate
 *   cert-shared             one certificate used by several clients
 *   ca-expiring             REGISTERED CA expired or about to
 *   ca-invalid              REGISTERED CA whose stored PEM does not parse
 *   subject-pii             personal data in a certificate or CA subject
 *
 * The audit only reads: every query runs inside one read transaction on the
 * registry's sqlite handle (fdl_registry_db), so the report is one consistent
 * snapshot even while the broker writes (WAL). It never writes.
 *
 * Text that comes from the database (client ids, addresses, subjects, policy
 * resources) is copied into messages with control characters replaced by '?',
 * so printing a report cannot drive a terminal. Subjects with personal data are
 * never quoted: a finding says which attribute holds what kind of data.
 *
 * Memory: everything comes from sim/alloc.h; the report owns all its strings
 * and is released with fdl_audit_report_free. sqlite's own memory is sqlite's.
 * At most opts->max_findings findings are kept; when that many are held, a new
 * finding replaces a kept one of lower severity if there is one, otherwise it
 * is dropped. Counts always include every finding, kept or dropped.
 */
#ifndef FDL_AUDIT_H
#define FDL_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "cloud/registry.h"

/* Findings kept in memory by default: about 60 MB in the worst case (a
 * message of FDL_AUDIT_MESSAGE_MAX bytes each); a fleet with more findings
 * than that needs the counts, not the list. */
#define FDL_AUDIT_MAX_FINDINGS 100000u
/* Longest message, in bytes with the NUL; longer evidence is cut with "...". */
#define FDL_AUDIT_MESSAGE_MAX 512u
/* Longest object name, in bytes with the NUL (a fingerprint is 64). */
#define FDL_AUDIT_OBJECT_MAX 80u
/* Defaults of fdl_audit_opts, in days or seconds. */
#define FDL_AUDIT_CERT_WARN_DAYS 30u   /* certificate renewal has to start before this */
#define FDL_AUDIT_CA_WARN_DAYS 90u     /* a CA rollover takes a quarter to roll out */
#define FDL_AUDIT_CA_HIGH_DAYS 30u     /* ... and under a month is an emergency */
#define FDL_AUDIT_SHARED_WINDOW_S 86400u /* sessions looked at by cert-shared */

typedef enum fdl_audit_status {
    FDL_AUDIT_OK = 0,
    FDL_AUDIT_ERR_ARG,   /* NULL reg or out */
    FDL_AUDIT_ERR_NOMEM, /* nothing is leaked; *out is NULL */
    FDL_AUDIT_ERR_DB,    /* a query failed (sqlite's message in err) */
} fdl_audit_status;

/* Static string; never NULL. */
const char *fdl_audit_strerror(fdl_audit_status st);

/* Ordered: a larger value is worse. */
typedef enum fdl_audit_severity {
    FDL_AUDIT_INFO = 0,
    FDL_AUDIT_LOW,
    FDL_AUDIT_MEDIUM,
    FDL_AUDIT_HIGH,
    FDL_AUDIT_CRITICAL,
    FDL_AUDIT_SEVERITY_COUNT
} fdl_audit_severity;

/* "info", "low", "medium", "high", "critical"; "?" out of range. */
const char *fdl_audit_severity_name(fdl_audit_severity s);

/* In the alphabetical order of their ids (the report sorts by id). */
typedef enum fdl_audit_check {
    FDL_AUDIT_CA_EXPIRING = 0,
    FDL_AUDIT_CA_INVALID,
    FDL_AUDIT_CERT_EXPIRING,
    FDL_AUDIT_CERT_REVOKED_CONNECTED,
    FDL_AUDIT_CERT_SHARED,
    FDL_AUDIT_POLICY_INVALID,
    FDL_AUDIT_POLICY_SHARED,
    FDL_AUDIT_POLICY_WILDCARD,
    FDL_AUDIT_SUBJECT_PII,
    FDL_AUDIT_CHECK_COUNT
} fdl_audit_check;

/* The stable id, e.g. "policy-wildcard"; "?" out of range. */
const char *fdl_audit_check_id(fdl_audit_check c);

typedef struct fdl_audit_opts {
    int64_t now;              /* Unix seconds; 0 = time(NULL) */
    unsigned cert_warn_days;  /* 0 = FDL_AUDIT_CERT_WARN_DAYS */
    unsigned ca_warn_days;    /* 0 = FDL_AUDIT_CA_WARN_DAYS */
    unsigned ca_high_days;    /* 0 = FDL_AUDIT_CA_HIGH_DAYS */
    unsigned shared_window_s; /* 0 = FDL_AUDIT_SHARED_WINDOW_S */
    size_t max_findings;      /* 0 = FDL_AUDIT_MAX_FINDINGS */
} fdl_audit_opts;

typedef struct fdl_audit_finding {
    fdl_audit_check check;
    fdl_audit_severity severity;
    const char *object_kind; /* static: "policy", "certificate", "ca" */
    const char *object;      /* owned by the report: policy name, certificate
                                fingerprint, CA id (decimal) */
    const char *message;     /* owned by the report: one line of evidence */
} fdl_audit_finding;

/* Read-only for callers; every pointer is owned by the report. */
typedef struct fdl_audit_report {
    int64_t now;                     /* the time the audit judged against */
    size_t n;                        /* findings kept */
    fdl_audit_finding *findings;     /* [n]: worst severity first, then check id,
                                        then object, then message */
    uint64_t counts[FDL_AUDIT_SEVERITY_COUNT];    /* every finding, kept or dropped */
    uint64_t by_check[FDL_AUDIT_CHECK_COUNT][FDL_AUDIT_SEVERITY_COUNT];
    uint64_t dropped;                /* findings over max_findings, not kept */
} fdl_audit_report;

/*
 * Runs every check on reg (borrowed) with opts (borrowed; NULL = all
 * defaults). On FDL_AUDIT_OK *out is a new report the caller frees with
 * fdl_audit_report_free; otherwise *out is NULL and err (may be NULL, errcap
 * bytes) says why in one line. The checks run in one read transaction that is
 * ended before returning; if the handle is already inside a transaction they
 * run in that one instead.
 */
fdl_audit_status fdl_audit_run(fdl_registry *reg, const fdl_audit_opts *opts, fdl_audit_report **out, char *err,
                               size_t errcap);

/* Releases a report and its strings; NULL is a no-op. */
void fdl_audit_report_free(fdl_audit_report *r);

/* The worst severity among all findings (dropped included), or -1 if none. */
int fdl_audit_worst(const fdl_audit_report *r);

/*
 * Scans one subject (borrowed, NUL-terminated; RFC 4514 "CN=a, O=b", mbedTLS or
 * OpenSSL "/CN=a/O=b" text) for personal data. Returns how many attributes
 * hold some, and writes a description of them such as
 * "e-mail address in emailAddress, phone number in CN" into buf[0..cap) (may be
 * NULL when cap is 0). Values are never copied into buf. Exposed for tests.
 */
size_t fdl_audit_subject_pii(const char *subject, char *buf, size_t cap);

#endif /* FDL_AUDIT_H */
