/* cloud/audit.c — read-only configuration audit of the fleet registry (see audit.h and docs/audit.md). */
#include "cloud/audit.h"

#include "cloud/authz.h"

#include "cloud/policy.h"
#include "sim/alloc.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mbedtls/x509_crt.h>
#include <sqlite3.h>

#define DAY_S 86400

/* ---------------------------------------------------------------------------------------- */
/* Names.                                                                                     */

static const char *const k_status_str[] = {
    [FDL_AUDIT_OK] = "ok",
    [FDL_AUDIT_ERR_ARG] = "invalid argument",
    [FDL_AUDIT_ERR_NOMEM] = "out of memory",
    [FDL_AUDIT_ERR_DB] = "registry query failed",
};

const char *fdl_audit_strerror(fdl_audit_status st)
{
    if ((unsigned)st >= sizeof k_status_str / sizeof k_status_str[0])
        return "unknown audit status";
    return k_status_str[st];
}

static const char *const k_sev_str[FDL_AUDIT_SEVERITY_COUNT] = {"info", "low", "medium", "high", "critical"};

const char *fdl_audit_severity_name(fdl_audit_severity s)
{
    return (unsigned)s < FDL_AUDIT_SEVERITY_COUNT ? k_sev_str[s] : "?";
}

static const char *const k_check_str[FDL_AUDIT_CHECK_COUNT] = {
    [FDL_AUDIT_CA_EXPIRING] = "ca-expiring",
    [FDL_AUDIT_CA_INVALID] = "ca-invalid",
    [FDL_AUDIT_CERT_EXPIRING] = "cert-expiring",
    [FDL_AUDIT_CERT_REVOKED_CONNECTED] = "cert-revoked-connected",
    [FDL_AUDIT_CERT_SHARED] = "cert-shared",
    [FDL_AUDIT_POLICY_INVALID] = "policy-invalid",
    [FDL_AUDIT_POLICY_SHARED] = "policy-shared",
    [FDL_AUDIT_POLICY_WILDCARD] = "policy-wildcard",
    [FDL_AUDIT_SUBJECT_PII] = "subject-pii",
};

const char *fdl_audit_check_id(fdl_audit_check c)
{
    return (unsigned)c < FDL_AUDIT_CHECK_COUNT ? k_check_str[c] : "?";
}

/* ---------------------------------------------------------------------------------------- */
/* Collecting findings. One bucket per severity, so that when the limit is reached a new     */
/* finding can evict one of lower severity in O(1): a flood of expiring certificates must    */
/* never push a revoked certificate that is still connected out of the report.               */

typedef struct bucket {
    fdl_audit_finding *v;
    size_t n, cap;
} bucket;

typedef struct audit {
    fdl_registry *reg;
    sqlite3 *db;
    fdl_audit_report *r;
    int64_t now;
    int64_t cert_warn_s, ca_warn_s, ca_high_s, shared_window_s;
    size_t max;
    size_t kept;
    bucket b[FDL_AUDIT_SEVERITY_COUNT];
} audit;

static void finding_release(fdl_audit_finding *f)
{
    /* object and message share one allocation that starts at object. */
    fdl_free((char *)f->object);
    f->object = f->message = NULL;
}

/* A bounded line: appends are cut at FDL_AUDIT_MESSAGE_MAX and marked with "...". */
typedef struct line {
    char s[FDL_AUDIT_MESSAGE_MAX];
    size_t n;
    bool cut;
} line;

__attribute__((format(printf, 2, 3))) static void line_add(line *l, const char *fmt, ...)
{
    if (l->cut)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(l->s + l->n, sizeof l->s - l->n, fmt, ap);
    va_end(ap);
    if (k < 0)
        return;
    if ((size_t)k >= sizeof l->s - l->n) {
        l->n = sizeof l->s - 1;
        l->cut = true;
        memcpy(l->s + l->n - 3, "...", 3);
    } else {
        l->n += (size_t)k;
    }
}

/*
 * Copies src into dst (NUL-terminated, at most cap bytes) with C0 controls, DEL
 * and the UTF-8 encodings of C1 controls (U+0080..U+009F, e.g. CSI) replaced by
 * '?': text that a client chose must not be able to drive the terminal that
 * prints the report.
 */
static size_t sanitize(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p && o + 1 < cap; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            dst[o++] = '?';
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            dst[o++] = '?';
            p++;
        } else {
            dst[o++] = (char)*p;
        }
    }
    if (cap)
        dst[o] = '\0';
    return o;
}

/* Frees the least severe kept finding below sev; false if there is none. */
static bool evict_below(audit *a, fdl_audit_severity sev)
{
    for (int s = 0; s < (int)sev; s++) {
        bucket *b = &a->b[s];
        if (b->n) {
            finding_release(&b->v[--b->n]);
            a->kept--;
            return true;
        }
    }
    return false;
}

static fdl_audit_status add(audit *a, fdl_audit_check check, fdl_audit_severity sev, const char *kind,
                            const char *object, const line *msg)
{
    a->r->counts[sev]++;
    a->r->by_check[check][sev]++;
    if (a->kept >= a->max) {
        /* Either this one or a less severe kept one goes. */
        a->r->dropped++;
        if (!evict_below(a, sev))
            return FDL_AUDIT_OK;
    }
    bucket *b = &a->b[sev];
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 16;
        fdl_audit_finding *v = fdl_realloc(b->v, ncap * sizeof *v);
        if (!v)
            return FDL_AUDIT_ERR_NOMEM;
        b->v = v;
        b->cap = ncap;
    }
    char obj[FDL_AUDIT_OBJECT_MAX], text[FDL_AUDIT_MESSAGE_MAX];
    size_t on = sanitize(obj, sizeof obj, object);
    size_t mn = sanitize(text, sizeof text, msg->s);
    char *blk = fdl_malloc(on + 1 + mn + 1);
    if (!blk)
        return FDL_AUDIT_ERR_NOMEM;
    memcpy(blk, obj, on + 1);
    memcpy(blk + on + 1, text, mn + 1);
    b->v[b->n++] = (fdl_audit_finding){
        .check = check, .severity = sev, .object_kind = kind, .object = blk, .message = blk + on + 1};
    a->kept++;
    return FDL_AUDIT_OK;
}

static int finding_cmp(const void *x, const void *y)
{
    const fdl_audit_finding *a = x, *b = y;
    if (a->severity != b->severity)
        return a->severity > b->severity ? -1 : 1;
    int c = strcmp(fdl_audit_check_id(a->check), fdl_audit_check_id(b->check));
    if (c)
        return c;
    if ((c = strcmp(a->object, b->object)))
        return c;
    return strcmp(a->message, b->message);
}

/* Moves the buckets into one sorted array in the report. */
static fdl_audit_status finish(audit *a)
{
    fdl_audit_report *r = a->r;
    if (a->kept) {
        r->findings = fdl_malloc(a->kept * sizeof *r->findings);
        if (!r->findings)
            return FDL_AUDIT_ERR_NOMEM;
    }
    for (int s = FDL_AUDIT_SEVERITY_COUNT - 1; s >= 0; s--) {
        bucket *b = &a->b[s];
        if (b->n)
            memcpy(r->findings + r->n, b->v, b->n * sizeof *b->v);
        r->n += b->n;
        fdl_free(b->v);
        *b = (bucket){0};
    }
    a->kept = 0;
    if (r->n)
        qsort(r->findings, r->n, sizeof *r->findings, finding_cmp);
    return FDL_AUDIT_OK;
}

static void buckets_free(audit *a)
{
    for (int s = 0; s < FDL_AUDIT_SEVERITY_COUNT; s++) {
        for (size_t i = 0; i < a->b[s].n; i++)
            finding_release(&a->b[s].v[i]);
        fdl_free(a->b[s].v);
        a->b[s] = (bucket){0};
    }
}

void fdl_audit_report_free(fdl_audit_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        finding_release(&r->findings[i]);
    fdl_free(r->findings);
    fdl_free(r);
}

int fdl_audit_worst(const fdl_audit_report *r)
{
    for (int s = FDL_AUDIT_SEVERITY_COUNT - 1; r && s >= 0; s--)
        if (r->counts[s])
            return s;
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers.                                                                             */

static const char *col(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? (const char *)t : "";
}

static fdl_audit_status prepare(audit *a, const char *sql, sqlite3_stmt **out)
{
    return sqlite3_prepare_v2(a->db, sql, -1, out, NULL) == SQLITE_OK ? FDL_AUDIT_OK : FDL_AUDIT_ERR_DB;
}

/* Result of sqlite3_step as a loop condition: 1 = a row, 0 = done, -1 = error. */
static int step(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* "2026-03-01T12:00:00Z" */
static void fmt_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 32, "@%lld", (long long)t);
}

/* "in 12 days", "3 days ago", "in under a day", "under a day ago". */
static void fmt_delta(int64_t d, char out[48])
{
    int64_t days = (d < 0 ? -d : d) / DAY_S;
    if (days == 0)
        snprintf(out, 48, d >= 0 ? "in under a day" : "under a day ago");
    else if (d >= 0)
        snprintf(out, 48, "in %lld day%s", (long long)days, days == 1 ? "" : "s");
    else
        snprintf(out, 48, "%lld day%s ago", (long long)days, days == 1 ? "" : "s");
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil):
 * no timegm, no TZ environment. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t x509_time_unix(const mbedtls_x509_time *t)
{
    return days_from_civil(t->year, t->mon, t->day) * DAY_S + t->hour * 3600 + t->min * 60 + t->sec;
}

static const char *plural(int64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* 64-bit FNV-1a: distinct client ids and addresses are counted by hash, so a
 * 64 KiB client id costs no memory (a collision could only under-count). */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* ---------------------------------------------------------------------------------------- */
/* Personal data in subjects.                                                                 */

typedef enum pii_kind { PII_EMAIL, PII_NAME, PII_PHONE, PII_POSTAL, PII_KINDS } pii_kind;

static const char *const k_pii_str[PII_KINDS] = {"e-mail address", "personal name", "phone number",
                                                  "postal address"};

/* Attribute types that hold personal data whatever their value (short names of
 * RFC 4519 / mbedTLS / OpenSSL, and the dotted OIDs a printer uses for names it
 * does not know). Compared case-insensitively. */
static const struct {
    const char *name;
    pii_kind kind;
} k_pii_attrs[] = {
    {"emailAddress", PII_EMAIL},     {"email", PII_EMAIL},
    {"E", PII_EMAIL},                {"mail", PII_EMAIL},
    {"rfc822Mailbox", PII_EMAIL},    {"1.2.840.113549.1.9.1", PII_EMAIL},
    {"GN", PII_NAME},                {"G", PII_NAME},
    {"givenName", PII_NAME},         {"2.5.4.42", PII_NAME},
    {"SN", PII_NAME},                {"surname", PII_NAME},
    {"2.5.4.4", PII_NAME},           {"pseudonym", PII_NAME},
    {"2.5.4.65", PII_NAME},          {"initials", PII_NAME},
    {"2.5.4.43", PII_NAME},          {"generationQualifier", PII_NAME},
    {"2.5.4.44", PII_NAME},          {"telephoneNumber", PII_PHONE},
    {"2.5.4.20", PII_PHONE},         {"mobile", PII_PHONE},
    {"homePhone", PII_PHONE},        {"street", PII_POSTAL},
    {"streetAddress", PII_POSTAL},   {"2.5.4.9", PII_POSTAL},
    {"postalAddress", PII_POSTAL},   {"2.5.4.16", PII_POSTAL},
    {"postalCode", PII_POSTAL},      {"2.5.4.17", PII_POSTAL},
    {"postOfficeBox", PII_POSTAL},   {"2.5.4.18", PII_POSTAL},
    {"homePostalAddress", PII_POSTAL},
};

static bool is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_key_char(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '-' || c == '_' || c == '?';
}

/* An '@' with something before it and a '.' followed by something after it. */
static bool value_has_email(const char *v, size_t n)
{
    for (size_t i = 1; i + 1 < n; i++) {
        if (v[i] != '@')
            continue;
        for (size_t j = i + 2; j + 1 < n; j++)
            if (v[j] == '.' && v[j + 1] != '.' && v[j + 1] != ' ')
                return true;
    }
    return false;
}

/*
 * A phone-number-like run: starts with '+' or a digit that does not continue a
 * word or an identifier ("dev-1000000", "serial0012345678" are not numbers on
 * their own), continues with digits and the usual separators (space - . ( ) /),
 * holds at least 7 digits and is not followed by a letter or digit.
 */
static bool value_has_phone(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c != '+' && !is_digit(c))
            continue;
        if (i > 0) {
            unsigned char p = (unsigned char)v[i - 1];
            if (is_alnum(p) || p == '-' || p == '_' || p == '.' || p == '+' || p >= 0x80)
                continue;
        }
        size_t digits = 0, j = i + (c == '+');
        size_t last_digit = i;
        for (; j < n; j++) {
            unsigned char d = (unsigned char)v[j];
            if (is_digit(d)) {
                digits++;
                last_digit = j;
            } else if (!(d == ' ' || d == '-' || d == '.' || d == '(' || d == ')' || d == '/')) {
                break;
            }
        }
        /* What follows the last digit must not make it part of a word. */
        bool word = last_digit + 1 < n && (is_alnum((unsigned char)v[last_digit + 1]) ||
                                           (unsigned char)v[last_digit + 1] >= 0x80);
        if (digits >= 7 && !word)
            return true;
        i = j > i ? j - 1 : i;
    }
    return false;
}

/* Appends "<kind> in <attr>" to buf once per (kind, attr). */
typedef struct pii_out {
    char *buf;
    size_t cap, len;
    size_t n;
} pii_out;

static void pii_note(pii_out *o, pii_kind kind, const char *key, size_t klen)
{
    char item[96];
    int k = snprintf(item, sizeof item, "%s in %.*s", k_pii_str[kind], (int)(klen > 40 ? 40 : klen), key);
    if (k < 0)
        return;
    if (o->buf && o->cap) {
        /* Skip exact repeats ("CN=a@b.c, CN=d@e.f"). */
        const char *hit = o->len ? strstr(o->buf, item) : NULL;
        if (hit && (hit[k] == '\0' || hit[k] == ','))
            return;
        int w = snprintf(o->buf + o->len, o->cap - o->len, "%s%s", o->len ? ", " : "", item);
        if (w > 0)
            o->len = o->len + (size_t)w < o->cap ? o->len + (size_t)w : o->cap - 1;
    }
    o->n++;
}

size_t fdl_audit_subject_pii(const char *subject, char *buf, size_t cap)
{
    pii_out o = {.buf = buf, .cap = cap};
    if (buf && cap)
        buf[0] = '\0';
    if (!subject)
        return 0;
    const char *p = subject;
    size_t n = strlen(subject);
    size_t i = 0;
    while (i < n) {
        /* Separators between attributes: ',' ';' '+' '/' and blanks. */
        while (i < n && (p[i] == ',' || p[i] == ';' || p[i] == '+' || p[i] == '/' || p[i] == ' '))
            i++;
        size_t k0 = i;
        while (i < n && is_key_char((unsigned char)p[i]))
            i++;
        size_t klen = i - k0;
        while (i < n && p[i] == ' ')
            i++;
        if (i >= n || p[i] != '=' || klen == 0) {
            /* Not "key=value": judge the rest of this piece as a value. */
            size_t v0 = k0;
            while (i < n && p[i] != ',' && p[i] != ';')
                i += (p[i] == '\\' && i + 1 < n) ? 2 : 1;
            if (i == v0)
                i++;
            if (value_has_email(p + v0, i - v0))
                pii_note(&o, PII_EMAIL, "subject", 7);
            else if (value_has_phone(p + v0, i - v0))
                pii_note(&o, PII_PHONE, "subject", 7);
            continue;
        }
        i++; /* '=' */
        size_t v0 = i;
        /* The value ends at a separator (',' ';' '+' of RFC 4514, '/' of the OpenSSL
         * one-line form) that is followed by the next "key=": a separator the printer
         * did not escape inside a value ("O=Acme, Inc.", "OU=+44 20 ...") stays in it. */
        while (i < n) {
            if (p[i] == '\\' && i + 1 < n) {
                i += 2;
                continue;
            }
            if (p[i] == ',' || p[i] == ';' || p[i] == '+' || p[i] == '/') {
                size_t j = i + 1;
                while (j < n && p[j] == ' ')
                    j++;
                size_t kj = j;
                while (j < n && is_key_char((unsigned char)p[j]))
                    j++;
                while (j < n && p[j] == ' ')
                    j++;
                if (j > kj && j < n && p[j] == '=')
                    break;
            }
            i++;
        }
        const char *key = p + k0, *val = p + v0;
        size_t vlen = i - v0;
        while (vlen && val[0] == ' ')
            val++, vlen--;
        bool noted = false;
        for (size_t a = 0; a < sizeof k_pii_attrs / sizeof k_pii_attrs[0]; a++) {
            if (strlen(k_pii_attrs[a].name) == klen && !strncasecmp(k_pii_attrs[a].name, key, klen)) {
                if (vlen) {
                    pii_note(&o, k_pii_attrs[a].kind, key, klen);
                    noted = true;
                }
                break;
            }
        }
        /* A serial number is the device's, and numeric by nature: not a phone. */
        if (noted || (klen == 12 && !strncasecmp(key, "serialNumber", 12)) || (klen == 7 && !memcmp(key, "2.5.4.5", 7)))
            continue;
        if (value_has_email(val, vlen))
            pii_note(&o, PII_EMAIL, key, klen);
        else if (value_has_phone(val, vlen))
            pii_note(&o, PII_PHONE, key, klen);
    }
    return o.n;
}

/* ---------------------------------------------------------------------------------------- */
/* Policies: policy-wildcard, policy-shared, policy-invalid.                                 */

/* How a policy is attached: counts by kind and the smallest id of each as an example. */
typedef struct attach {
    int64_t devices, services;
    const char *ex_device, *ex_service;
} attach;

static void attach_text(line *l, const attach *at)
{
    if (at->devices)
        line_add(l, "attached to %lld %s (e.g. %s)", (long long)at->devices,
                 plural(at->devices, "device", "devices"), at->ex_device);
    if (at->devices && at->services)
        line_add(l, " and ");
    if (at->services)
        line_add(l, "%s%lld service %s (e.g. %s)", at->devices ? "" : "attached only to ", (long long)at->services,
                 plural(at->services, "identity", "identities"), at->ex_service);
}

static void flags_text(line *l, const fdl_policy *p, const fdl_policy_finding *f)
{
    const char *sep = "";
    if (f->flags & FDL_POLICY_FINDING_WILDCARD) {
        line_add(l, "%swildcard before ${thing}", sep);
        sep = ", ";
    }
    if (f->flags & FDL_POLICY_FINDING_CLIENT_ID) {
        line_add(l, "%skeyed by the client-chosen ${client_id}", sep);
        sep = ", ";
    } else if (f->flags & FDL_POLICY_FINDING_SHARED) {
        line_add(l, "%sno ${thing} level", sep);
        sep = ", ";
    }
    if (f->flags & FDL_POLICY_FINDING_CROSS) {
        fdl_policy_statement o;
        if (fdl_policy_get(p, f->other, &o) == FDL_POLICY_OK)
            line_add(l, "%sreaches another device through line %u", sep, o.line);
        else
            line_add(l, "%scross-device overlap", sep);
    }
}

static fdl_audit_status check_policy(audit *a, const char *name, const char *text, size_t len, int per_device,
                                     const attach *at)
{
    fdl_policy *p = NULL;
    fdl_policy_error perr = {0, ""};
    fdl_audit_status st = FDL_AUDIT_OK;
    line l = {0};
    fdl_policy_status ps = fdl_policy_parse(text, len, &p, &perr);
    if (ps == FDL_POLICY_ERR_NOMEM)
        return FDL_AUDIT_ERR_NOMEM;
    if (ps != FDL_POLICY_OK) {
        /* The broker fails closed on such a policy (fdl_authz: POLICY_ERROR), so this is an
         * outage for whoever carries it, not an exposure. */
        line_add(&l, "does not parse (line %u: %s): the broker denies every request of the identities carrying it; ",
                 perr.line, perr.reason);
        if (at->devices || at->services)
            attach_text(&l, at);
        else
            line_add(&l, "attached to no identity");
        return add(a, FDL_AUDIT_POLICY_INVALID, at->devices || at->services ? FDL_AUDIT_LOW : FDL_AUDIT_INFO,
                   "policy", name, &l);
    }

    fdl_policy_finding fs[FDL_POLICY_MAX_STATEMENTS]; /* 8 KiB: a policy has at most this many */
    size_t nf = fdl_policy_is_wildcard(p, fs, FDL_POLICY_MAX_STATEMENTS);
    if (nf > FDL_POLICY_MAX_STATEMENTS)
        nf = FDL_POLICY_MAX_STATEMENTS;
    bool strong = false, writes = false, shared_publish = false, shared_any = false, any_allow = false;
    bool any_allow_publish = false;
    for (size_t i = 0; i < nf; i++) {
        fdl_policy_statement s, o;
        if (fdl_policy_get(p, fs[i].statement, &s) != FDL_POLICY_OK)
            continue;
        bool pub = s.action == FDL_POLICY_PUBLISH;
        writes |= pub;
        /* A wildcard or a client-chosen key reaches other devices' own topics; a
         * cross-device overlap that involves a publish lets one device write where
         * another reads. A literal topic shared by everyone (SHARED alone, or two
         * read grants overlapping) is a fleet-wide channel: less, but still a finding. */
        if (fs[i].flags & (FDL_POLICY_FINDING_WILDCARD | FDL_POLICY_FINDING_CLIENT_ID))
            strong = true;
        if ((fs[i].flags & FDL_POLICY_FINDING_CROSS) &&
            (pub || (fdl_policy_get(p, fs[i].other, &o) == FDL_POLICY_OK && o.action == FDL_POLICY_PUBLISH)))
            strong = true;
        if (fs[i].flags & FDL_POLICY_FINDING_SHARED) {
            shared_any = true;
            shared_publish |= pub;
        }
    }
    for (size_t i = 0; i < fdl_policy_count(p); i++) {
        fdl_policy_statement s;
        if (fdl_policy_get(p, i, &s) == FDL_POLICY_OK && s.effect == FDL_POLICY_ALLOW) {
            any_allow = true;
            any_allow_publish |= s.action == FDL_POLICY_PUBLISH;
        }
    }

    if (nf) {
        fdl_audit_severity sev;
        if (at->devices || !at->services)
            sev = strong ? FDL_AUDIT_HIGH : FDL_AUDIT_MEDIUM;
        else
            sev = writes ? FDL_AUDIT_LOW : FDL_AUDIT_INFO;
        /* Evidence: the statements that are wrong in themselves (wildcard, client id)
         * first, then those that are only flagged for overlapping them, at most three. */
        size_t shown = 0;
        for (int rank = 0; rank < 3 && shown < 3; rank++) {
            for (size_t i = 0; i < nf && shown < 3; i++) {
                unsigned fl = fs[i].flags;
                int r = fl & (FDL_POLICY_FINDING_WILDCARD | FDL_POLICY_FINDING_CLIENT_ID) ? 0
                        : fl & FDL_POLICY_FINDING_CROSS                                  ? 1
                                                                                         : 2;
                fdl_policy_statement s;
                if (r != rank || fdl_policy_get(p, fs[i].statement, &s) != FDL_POLICY_OK)
                    continue;
                line_add(&l, "%s\"%s %s %s\" (line %u: ", shown ? "; " : "", fdl_policy_effect_name(s.effect),
                         fdl_policy_action_name(s.action), s.resource, s.line);
                flags_text(&l, p, &fs[i]);
                line_add(&l, ")");
                shown++;
            }
        }
        if (nf > shown)
            line_add(&l, "; %zu more", nf - shown);
        line_add(&l, "; ");
        if (at->devices) {
            attach_text(&l, at);
            line_add(&l, strong ? ": a device can reach other devices' topics"
                                : ": every identity carrying it shares these topics");
        } else if (at->services) {
            attach_text(&l, at);
            line_add(&l, writes ? ": cloud actors such as an operator console legitimately send to every device; "
                                  "check the grant is no wider than the service needs"
                                : ": cloud actors such as ingest legitimately receive every device's telemetry; "
                                  "check the grant is no wider than the service needs");
        } else {
            line_add(&l, "attached to no identity: a loaded gun, any device it is attached to gets this grant");
        }
        st = add(a, FDL_AUDIT_POLICY_WILDCARD, sev, "policy", name, &l);
        if (st != FDL_AUDIT_OK)
            goto cleanup;
    }

    if (!per_device && at->devices > 1 && any_allow) {
        /* One grant for the whole population: a device that is taken over speaks with
         * everyone's rights. Publishing to a shared topic is the worst of it (spoofed
         * data fleet-wide); a policy that is in fact all ${thing} templates is only
         * mislabelled. */
        fdl_audit_severity sev = shared_publish ? FDL_AUDIT_HIGH : shared_any ? FDL_AUDIT_MEDIUM : FDL_AUDIT_LOW;
        l = (line){0};
        line_add(&l, "not a per-device template (per_device = 0) and ");
        attach_text(&l, at);
        if (shared_publish)
            line_add(&l, ": all of them may publish to the same topics, so one compromised device speaks for all");
        else if (shared_any)
            line_add(&l, ": all of them get the same grants (%s)",
                     any_allow_publish ? "publish grants are per device" : "no publish grant");
        else
            line_add(&l, ": every grant is keyed by ${thing}, so mark it per_device = 1");
        st = add(a, FDL_AUDIT_POLICY_SHARED, sev, "policy", name, &l);
    }
cleanup:
    fdl_policy_free(p);
    return st;
}

static fdl_audit_status check_policies(audit *a)
{
    /* One pass over devices (grouped) joined to policies: no per-policy scan. */
    static const char sql[] =
        "WITH a AS (SELECT policy, sum(kind = 'device') AS nd, sum(kind = 'service') AS ns,"
        " min(CASE WHEN kind = 'device' THEN id END) AS ed, min(CASE WHEN kind = 'service' THEN id END) AS es"
        " FROM devices WHERE policy IS NOT NULL GROUP BY policy)"
        " SELECT p.name, p.text, p.per_device, COALESCE(a.nd, 0), COALESCE(a.ns, 0), COALESCE(a.ed, ''),"
        " COALESCE(a.es, '') FROM policies p LEFT JOIN a ON a.policy = p.name ORDER BY p.name";
    sqlite3_stmt *s = NULL;
    fdl_audit_status st = prepare(a, sql, &s);
    int rc;
    while (st == FDL_AUDIT_OK && (rc = step(s)) == 1) {
        attach at = {sqlite3_column_int64(s, 3), sqlite3_column_int64(s, 4), col(s, 5), col(s, 6)};
        const char *text = col(s, 1);
        st = check_policy(a, col(s, 0), text, (size_t)sqlite3_column_bytes(s, 1), sqlite3_column_int(s, 2), &at);
    }
    if (st == FDL_AUDIT_OK && rc < 0)
        st = FDL_AUDIT_ERR_DB;
    sqlite3_finalize(s);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Certificates: cert-expiring, cert-revoked-connected, subject-pii.                          */

static fdl_audit_status check_cert_expiry(audit *a)
{
    static const char sql[] = "SELECT fingerprint, device_id, serial, not_after FROM certificates"
                              " WHERE status = 'ACTIVE' AND not_after <= ?1 ORDER BY fingerprint";
    sqlite3_stmt *s = NULL;
    fdl_audit_status st = prepare(a, sql, &s);
    int rc = 0;
    if (st != FDL_AUDIT_OK)
        return st;
    sqlite3_bind_int64(s, 1, a->now + a->cert_warn_s);
    while (st == FDL_AUDIT_OK && (rc = step(s)) == 1) {
        int64_t na = sqlite3_column_int64(s, 3);
        char when[32], delta[48];
        fmt_time(na, when);
        fmt_delta(na - a->now, delta);
        line l = {0};
        bool expired = na <= a->now;
        if (expired)
            line_add(&l, "certificate of %s (serial %s) expired %s (%s) and is still ACTIVE: revoke it or renew it",
                     col(s, 1), col(s, 2), when, delta);
        else
            line_add(&l, "certificate of %s (serial %s) expires %s (%s): renew it before the device is locked out",
                     col(s, 1), col(s, 2), when, delta);
        st = add(a, FDL_AUDIT_CERT_EXPIRING, expired ? FDL_AUDIT_HIGH : FDL_AUDIT_MEDIUM, "certificate", col(s, 0),
                 &l);
    }
    if (st == FDL_AUDIT_OK && rc < 0)
        st = FDL_AUDIT_ERR_DB;
    sqlite3_finalize(s);
    return st;
}

static fdl_audit_status check_revoked_connected(audit *a)
{
    /* The partial index sessions_open makes this a walk over open sessions only. */
    static const char sql[] =
        "SELECT s.fingerprint, c.device_id, COALESCE(c.revoked_ms, 0), count(*), min(s.connected_ms),"
        " min(s.client_id), min(s.address) FROM sessions s JOIN certificates c ON c.fingerprint = s.fingerprint"
        " WHERE s.disconnected_ms IS NULL AND c.status = 'REVOKED' GROUP BY s.fingerprint ORDER BY s.fingerprint";
    sqlite3_stmt *s = NULL;
    fdl_audit_status st = prepare(a, sql, &s);
    int rc = 0;
    while (st == FDL_AUDIT_OK && (rc = step(s)) == 1) {
        char revoked[32], since[32], cid[64], addr[64];
        int64_t n = sqlite3_column_int64(s, 3);
        if (sqlite3_column_int64(s, 2) > 0)
            fmt_time(sqlite3_column_int64(s, 2) / 1000, revoked);
        else
            snprintf(revoked, sizeof revoked, "at an unknown time");
        fmt_time(sqlite3_column_int64(s, 4) / 1000, since);
        sanitize(cid, sizeof cid, col(s, 5));
        sanitize(addr, sizeof addr, col(s, 6));
        line l = {0};
        line_add(&l, "REVOKED certificate of %s (revoked %s) still has %lld open %s, e.g. client \"%s\" from %s "
                     "since %s: the broker did not drop it, disconnect it now",
                 col(s, 1), revoked, (long long)n, plural(n, "session", "sessions"), cid, addr, since);
        st = add(a, FDL_AUDIT_CERT_REVOKED_CONNECTED, FDL_AUDIT_CRITICAL, "certificate", col(s, 0), &l);
    }
    if (st == FDL_AUDIT_OK && rc < 0)
        st = FDL_AUDIT_ERR_DB;
    sqlite3_finalize(s);
    return st;
}

/* cert-shared: what one fingerprint's sessions in the window looked like. */
#define SET_MAX 16
typedef struct share {
    char fp[FDL_REG_FP_HEX_LEN + 1];
    char device[FDL_REG_ID_MAX + 1];
    uint64_t n, open;
    uint64_t cid[SET_MAX], addr[SET_MAX];
    size_t ncid, naddr;
    char cid_ex[2][48], addr_ex[2][48];
    bool concurrent;
    int64_t max_end;
    uint64_t max_cid, max_addr;
} share;

/* Adds h to a small set; returns its new size (saturates at SET_MAX). */
static size_t set_add(uint64_t *set, size_t *n, uint64_t h)
{
    for (size_t i = 0; i < *n; i++)
        if (set[i] == h)
            return *n;
    if (*n < SET_MAX)
        set[(*n)++] = h;
    return *n;
}

static fdl_audit_status share_flush(audit *a, const share *g)
{
    if (!g->n)
        return FDL_AUDIT_OK;
    bool many_clients = g->ncid > 1;
    if (!g->concurrent && !many_clients && g->naddr < 2)
        return FDL_AUDIT_OK;
    line l = {0};
    char hours[16];
    snprintf(hours, sizeof hours, "%lld h", (long long)(a->shared_window_s / 3600));
    const char *more_c = g->ncid >= SET_MAX ? "+" : "", *more_a = g->naddr >= SET_MAX ? "+" : "";
    fdl_audit_severity sev;
    if (!strcmp(g->device, FDL_AUTHZ_CLAIM_IDENTITY)) {
        /* The claim credential is shared by design; its policy (its own claim exchange)
         * and the plugin's client id check are what bound it. Shown for the record. */
        sev = FDL_AUDIT_INFO;
        line_add(&l, "the shared claim certificate (by design: provisioning by claim), ");
    } else if (g->concurrent || many_clients) {
        /* Fleet firmware connects with its device id as the client id, one connection at a
         * time: two client ids, or two connections at once, means a copy of the key. */
        sev = FDL_AUDIT_HIGH;
        line_add(&l, "one certificate connected from several clients: device %s, ", g->device);
        if (g->concurrent)
            line_add(&l, "overlapping sessions, ");
    } else {
        /* Same client id, one connection at a time, from changing addresses: a clone taking
         * turns, or a device that roams (cellular, DHCP, NAT). Worth a look, not an alarm. */
        sev = FDL_AUDIT_MEDIUM;
        line_add(&l, "one certificate connected from several addresses in turn: device %s, ", g->device);
    }
    /* Two examples of each; ", ..." says there are more than the two shown. */
    line_add(&l, "%zu%s client %s (\"%s\"%s%s%s%s), %zu%s %s (%s%s%s%s); %llu %s in the last %s, %llu open",
             g->ncid, more_c, plural((int64_t)g->ncid, "id", "ids"), g->cid_ex[0], g->ncid > 1 ? ", \"" : "",
             g->ncid > 1 ? g->cid_ex[1] : "", g->ncid > 1 ? "\"" : "", g->ncid > 2 ? ", ..." : "", g->naddr,
             more_a, plural((int64_t)g->naddr, "address", "addresses"), g->addr_ex[0], g->naddr > 1 ? ", " : "",
             g->naddr > 1 ? g->addr_ex[1] : "", g->naddr > 2 ? ", ..." : "", (unsigned long long)g->n,
             plural((int64_t)g->n, "session", "sessions"), hours, (unsigned long long)g->open);
    return add(a, FDL_AUDIT_CERT_SHARED, sev, "certificate", g->fp, &l);
}

static fdl_audit_status check_cert_shared(audit *a)
{
    /* Sessions alive at some time in the window: open ones, or closed after its start.
     * In start order per certificate, for the sweep below. */
    static const char sql[] =
        "SELECT fingerprint, device_id, client_id, address, connected_ms, disconnected_ms FROM sessions"
        " WHERE disconnected_ms IS NULL OR disconnected_ms >= ?1 ORDER BY fingerprint, connected_ms, id";
    sqlite3_stmt *s = NULL;
    fdl_audit_status st = prepare(a, sql, &s);
    int rc = 0;
    if (st != FDL_AUDIT_OK)
        return st;
    sqlite3_bind_int64(s, 1, (a->now - a->shared_window_s) * 1000);
    share *g = fdl_calloc(1, sizeof *g);
    if (!g) {
        sqlite3_finalize(s);
        return FDL_AUDIT_ERR_NOMEM;
    }
    while (st == FDL_AUDIT_OK && (rc = step(s)) == 1) {
        const char *fp = col(s, 0);
        if (!g->n || strcmp(fp, g->fp) != 0) {
            st = share_flush(a, g);
            memset(g, 0, sizeof *g);
            snprintf(g->fp, sizeof g->fp, "%s", fp);
            snprintf(g->device, sizeof g->device, "%s", col(s, 1));
        }
        const char *cid = col(s, 2), *addr = col(s, 3);
        uint64_t hc = fnv1a(cid), ha = fnv1a(addr);
        size_t before_c = g->ncid, before_a = g->naddr;
        if (set_add(g->cid, &g->ncid, hc) > before_c && before_c < 2)
            sanitize(g->cid_ex[before_c], sizeof g->cid_ex[0], cid);
        if (set_add(g->addr, &g->naddr, ha) > before_a && before_a < 2)
            sanitize(g->addr_ex[before_a], sizeof g->addr_ex[0], addr);
        int64_t start = sqlite3_column_int64(s, 4);
        bool open = sqlite3_column_type(s, 5) == SQLITE_NULL;
        int64_t end = open ? INT64_MAX : sqlite3_column_int64(s, 5);
        /*
         * Sweep in start order against the session that ends last so far: if any two
         * sessions that overlap differ, this finds a pair (if the one ending last is
         * identical to the newcomer, it differs from the other overlapping one, and that
         * pair started earlier and was found then).
         */
        if (g->n && start < g->max_end && (hc != g->max_cid || ha != g->max_addr))
            g->concurrent = true;
        if (!g->n || end > g->max_end) {
            g->max_end = end;
            g->max_cid = hc;
            g->max_addr = ha;
        }
        g->n++;
        g->open += open;
    }
    if (st == FDL_AUDIT_OK && rc < 0)
        st = FDL_AUDIT_ERR_DB;
    if (st == FDL_AUDIT_OK)
        st = share_flush(a, g);
    fdl_free(g);
    sqlite3_finalize(s);
    return st;
}

static fdl_audit_status check_cert_subjects(audit *a)
{
    static const char sql[] = "SELECT fingerprint, device_id, status, subject FROM certificates"
                              " WHERE subject IS NOT NULL AND subject <> '' ORDER BY fingerprint";
    sqlite3_stmt *s = NULL;
    fdl_audit_status st = prepare(a, sql, &s);
    int rc = 0;
    while (st == FDL_AUDIT_OK && (rc = step(s)) == 1) {
        char what[256];
        if (!fdl_audit_subject_pii(col(s, 3), what, sizeof what))
            continue;
        line l = {0};
        line_add(&l, "subject of the %s certificate of %s holds personal data: %s (values not shown); identify "
                     "devices, not people",
                 col(s, 2), col(s, 1), what);
        st = add(a, FDL_AUDIT_SUBJECT_PII, FDL_AUDIT_MEDIUM, "certificate", col(s, 0), &l);
    }
    if (st == FDL_AUDIT_OK && rc < 0)
        st = FDL_AUDIT_ERR_DB;
    sqlite3_finalize(s);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* CAs: ca-expiring, ca-invalid, subject-pii.                                                 */

static fdl_audit_status check_ca_expiry(audit *a, int64_t id, const char *subject, const char *role,
                                        const char *pem, size_t pem_len, bool pii)
{
    char obj[24], shown[FDL_REG_SUBJECT_MAX + 1];
    snprintf(obj, sizeof obj, "%lld", (long long)id);
    snprintf(shown, sizeof shown, "%s", pii ? "(subject withheld: personal data)" : subject);
    mbedtls_x509_crt crt;
    mbedtls_x509_crt_init(&crt);
    line l = {0};
    fdl_audit_status st = FDL_AUDIT_OK;
    /* PEM input must include its terminating NUL in the length. */
    if (mbedtls_x509_crt_parse(&crt, (const unsigned char *)pem, pem_len + 1) != 0) {
        line_add(&l, "%s CA %s: the stored certificate does not parse, its expiry cannot be checked", role, shown);
        st = add(a, FDL_AUDIT_CA_INVALID, FDL_AUDIT_LOW, "ca", obj, &l);
        goto cleanup;
    }
    int64_t to = x509_time_unix(&crt.valid_to), left = to - a->now;
    if (left > a->ca_warn_s)
        goto cleanup;
    size_t live = 0;
    if (fdl_registry_ca_cert_count(a->reg, id, &live) != FDL_REG_OK) {
        st = FDL_AUDIT_ERR_DB;
        goto cleanup;
    }
    char when[32], delta[48];
    fmt_time(to, when);
    fmt_delta(left, delta);
    line_add(&l, "%s CA %s %s %s (%s): %zu live %s chain to it; register its successor and re-issue", role, shown,
             left <= 0 ? "expired" : "expires", when, delta, live, plural((int64_t)live, "certificate", "certificates"));
    st = add(a, FDL_AUDIT_CA_EXPIRING, left <= a->ca_high_s ? FDL_AUDIT_HIGH : FDL_AUDIT_MEDIUM, "ca", obj, &l);
cleanup:
    mbedtls_x509_crt_free(&crt);
    return st;
}

static fdl_audit_status check_cas(audit *a)
{
    static const char sql[] = "SELECT id, subject, role, status, pem FROM cas ORDER BY id";
    sqlite3_stmt *s = NULL;
    fdl_audit_status st = prepare(a, sql, &s);
    int rc = 0;
    while (st == FDL_AUDIT_OK && (rc = step(s)) == 1) {
        int64_t id = sqlite3_column_int64(s, 0);
        char what[256];
        bool pii = fdl_audit_subject_pii(col(s, 1), what, sizeof what) > 0;
        if (pii) {
            char obj[24];
            snprintf(obj, sizeof obj, "%lld", (long long)id);
            line l = {0};
            line_add(&l, "subject of the %s %s CA holds personal data: %s (values not shown); every certificate "
                         "it issues repeats it as issuer",
                     col(s, 3), col(s, 2), what);
            st = add(a, FDL_AUDIT_SUBJECT_PII, FDL_AUDIT_MEDIUM, "ca", obj, &l);
        }
        if (st == FDL_AUDIT_OK && !strcmp(col(s, 3), "REGISTERED")) {
            const char *pem = col(s, 4);
            st = check_ca_expiry(a, id, col(s, 1), col(s, 2), pem, (size_t)sqlite3_column_bytes(s, 4), pii);
        }
    }
    if (st == FDL_AUDIT_OK && rc < 0)
        st = FDL_AUDIT_ERR_DB;
    sqlite3_finalize(s);
    return st;
}

/* ---------------------------------------------------------------------------------------- */

fdl_audit_status fdl_audit_run(fdl_registry *reg, const fdl_audit_opts *opts, fdl_audit_report **out, char *err,
                               size_t errcap)
{
    fdl_audit_status st = FDL_AUDIT_ERR_ARG;
    audit a = {0};
    bool in_tx = false;
    if (out)
        *out = NULL;
    if (!reg || !out || !fdl_registry_db(reg))
        goto cleanup;
    fdl_audit_opts o = opts ? *opts : (fdl_audit_opts){0};
    a.reg = reg;
    a.db = fdl_registry_db(reg);
    a.now = o.now ? o.now : (int64_t)time(NULL);
    a.cert_warn_s = (int64_t)(o.cert_warn_days ? o.cert_warn_days : FDL_AUDIT_CERT_WARN_DAYS) * DAY_S;
    a.ca_warn_s = (int64_t)(o.ca_warn_days ? o.ca_warn_days : FDL_AUDIT_CA_WARN_DAYS) * DAY_S;
    a.ca_high_s = (int64_t)(o.ca_high_days ? o.ca_high_days : FDL_AUDIT_CA_HIGH_DAYS) * DAY_S;
    a.shared_window_s = o.shared_window_s ? o.shared_window_s : FDL_AUDIT_SHARED_WINDOW_S;
    a.max = o.max_findings ? o.max_findings : FDL_AUDIT_MAX_FINDINGS;
    st = FDL_AUDIT_ERR_NOMEM;
    a.r = fdl_calloc(1, sizeof *a.r);
    if (!a.r)
        goto cleanup;
    a.r->now = a.now;

    /* One read transaction: every check sees the same snapshot (WAL), so a revocation
     * committed mid-audit cannot make two checks disagree. A deferred BEGIN followed
     * only by SELECTs never takes the write lock. */
    if (sqlite3_get_autocommit(a.db)) {
        st = FDL_AUDIT_ERR_DB;
        if (sqlite3_exec(a.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
            goto cleanup;
        in_tx = true;
    }
    fdl_audit_status (*const checks[])(audit *) = {check_revoked_connected, check_cert_shared, check_policies,
                                                  check_cert_expiry, check_cas, check_cert_subjects};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if ((st = checks[i](&a)) != FDL_AUDIT_OK)
            goto cleanup;
    if ((st = finish(&a)) != FDL_AUDIT_OK)
        goto cleanup;
    *out = a.r;
    a.r = NULL;
cleanup:
    /* sqlite's message first: ending the transaction replaces it. */
    if (err && errcap)
        snprintf(err, errcap, "%s", st == FDL_AUDIT_OK ? "" : st == FDL_AUDIT_ERR_DB ? sqlite3_errmsg(a.db)
                                                                                    : fdl_audit_strerror(st));
    if (in_tx)
        sqlite3_exec(a.db, "COMMIT", NULL, NULL, NULL);
    buckets_free(&a);
    fdl_audit_report_free(a.r);
    return st;
}
