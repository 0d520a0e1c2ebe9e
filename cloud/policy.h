/*
 * cloud/policy.h — per-device authorisation policies: templates with variables,
 * deny overrides allow, default deny. The pure-C core the Mosquitto plugin calls
 * for every PUBLISH, SUBSCRIBE and delivery; no broker headers, no I/O.
 *
 * A policy is an ordered list of statements  <effect> <action> <resource>:
 *   effect    allow | deny
 *   action    publish    the client sends PUBLISH on a topic name
 *             subscribe  the client sends SUBSCRIBE with a topic filter
 *             receive    a message on a topic name may be delivered to the client
 *   resource  a topic filter TEMPLATE (cloud/topic.h rules) in which a level may
 *             be exactly one of the variables
 *               ${thing}      the connection's identity: certificate CN, which
 *                             Mosquitto makes the MQTT user name
 *               ${client_id}  the MQTT client identifier (chosen by the client!)
 *             A variable must fill a whole level ("telemetry/${thing}", not
 *             "telemetry/dev-${thing}"): then the identity level of a topic is
 *             unambiguous and no id can be the prefix of another's topic.
 *
 * Text form (fdl_policy_parse), one statement per line:
 *     # fleet device policy
 *     allow publish   telemetry/${thing}
 *     allow subscribe commands/${thing}
 *     deny  publish   $fleet/#
 * Fields are separated by spaces or tabs; a line whose first non-blank
 * character is '#' is a comment; blank lines are skipped; "\r\n" is accepted.
 * Keywords are lower case. A resource cannot contain spaces, and there are no
 * trailing comments ('#' is a wildcard). "${" is reserved for variables; any
 * other '$' is literal ("$fleet/..."). Control characters (other than tab and
 * the final '\r') and NUL bytes are errors. An empty policy is valid and denies
 * everything (what "revoke" installs).
 *
 * Decision (fdl_policy_check), for a request (action, topic or filter) and the
 * connection's variables:
 *   1. Unsafe variables: if thing or client_id is not a safe value (below), the
 *      answer is DENY for every request and the event is counted. Both values
 *      are checked whatever the policy references, so editing a policy never
 *      changes which identities are acceptable.
 *   2. Bad request: a publish/receive topic that is not a valid topic name, a
 *      subscribe filter that is not a valid filter, or a request longer than
 *      FDL_POLICY_MAX_REQUEST: DENY, counted.
 *   3. Each statement of the same action is expanded (variables replaced by the
 *      values, literally) and compared with the request:
 *        publish, receive   fdl_topic_matches(resource, topic)
 *        subscribe allow    fdl_topic_filter_covers(resource, filter): the
 *                           grant must include every topic the filter can match
 *        subscribe deny     fdl_topic_filters_overlap(resource, filter): a
 *                           filter that could receive any denied topic is refused
 *      Any deny that applies wins (deny overrides allow). Otherwise the first
 *      allow that applies grants. Otherwise DENY (default deny).
 *   A subscription is allowed only when ONE allow statement covers it; a
 *   filter covered only by the union of several grants is denied (safe side).
 *
 * Safe variable value (fdl_policy_value_check): 1..FDL_POLICY_MAX_VAR_LEN bytes
 * of well-formed UTF-8 with no '/', '+', '#', no NUL, no control character
 * (U+0001..U+001F, U+007F) and not starting with '$'. Anything else is refused,
 * never escaped: an identity "+", "#", "a/b", "dev-1/#" or "$SYS" would otherwise
 * widen the grant to other devices' topics or the broker's own, and a newline
 * would forge log lines.
 *
 * Memory: fdl_policy_parse allocates (sim/alloc.h) and fdl_policy_free releases;
 * checks never allocate (expansion uses a stack buffer of FDL_POLICY_MAX_EXPANDED
 * bytes, which the parser guarantees is enough). Threads: a parsed policy is
 * immutable except for its statistics counters, which are atomic, so one
 * policy may be checked from several threads at once.
 */
#ifndef FDL_POLICY_H
#define FDL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- Limits: each in bytes or items, with its reason ---------------------- */

/* Whole policy text, bytes: a device policy is a dozen lines; this bounds parse time. */
#define FDL_POLICY_MAX_TEXT 65536u
/* One line, bytes, without its newline: room for any sane resource plus keywords. */
#define FDL_POLICY_MAX_LINE 512u
/* Statements per policy: every check scans them all (deny overrides allow). */
#define FDL_POLICY_MAX_STATEMENTS 256u
/* Variable levels per resource. */
#define FDL_POLICY_MAX_VARS 4u
/* One variable value, bytes: an X.509 CN is at most 64 characters (RFC 5280
 * ub-common-name), which is at most 256 bytes of UTF-8; device ids are ASCII. */
#define FDL_POLICY_MAX_VAR_LEN 128u
/* An expanded resource, bytes: four maximal variables plus 256 bytes of
 * literal text. The parser refuses a template whose expansion with
 * FDL_POLICY_MAX_VAR_LEN-byte values could exceed this. */
#define FDL_POLICY_MAX_EXPANDED 768u
/* A request topic or filter, bytes. Longer requests are denied: it bounds the
 * work per check to statements x 1 KiB (AWS IoT caps topics at 256 bytes). */
#define FDL_POLICY_MAX_REQUEST 1024u

/* --- Types ---------------------------------------------------------------- */

typedef enum fdl_policy_status {
    FDL_POLICY_OK = 0,
    FDL_POLICY_ERR_ARG,         /* NULL where a value is required, or an index out of range */
    FDL_POLICY_ERR_SYNTAX,      /* parse: bad keyword, missing or extra field, NUL or control byte */
    FDL_POLICY_ERR_RESOURCE,    /* parse: resource is not a valid filter, or a bad variable */
    FDL_POLICY_ERR_LIMIT,       /* parse: a ceiling above was exceeded; expand: cap too small */
    FDL_POLICY_ERR_NOMEM,       /* allocation failed; nothing is leaked */
    FDL_POLICY_ERR_UNSAFE_VAR,  /* a variable value is not safe (see above) */
} fdl_policy_status;

/* Returns a static, human-readable string; never NULL. */
const char *fdl_policy_strerror(fdl_policy_status st);

/* DENY is 0 so that a zeroed result denies. Used for statements and for answers. */
typedef enum fdl_policy_effect {
    FDL_POLICY_DENY = 0,
    FDL_POLICY_ALLOW = 1,
} fdl_policy_effect;

typedef enum fdl_policy_action {
    FDL_POLICY_PUBLISH = 0,
    FDL_POLICY_SUBSCRIBE = 1,
    FDL_POLICY_RECEIVE = 2,
} fdl_policy_action;

/* "allow"/"deny", "publish"/"subscribe"/"receive"; "?" for out-of-range values. */
const char *fdl_policy_effect_name(fdl_policy_effect e);
const char *fdl_policy_action_name(fdl_policy_action a);

/* Opaque parsed policy. */
typedef struct fdl_policy fdl_policy;

/* Where parsing failed. */
typedef struct fdl_policy_error {
    unsigned line;       /* 1-based line of the error; 0 when not tied to a line */
    const char *reason;  /* static text (never quotes the input); "" on success */
} fdl_policy_error;

/* The connection's variable values: borrowed, explicit lengths (a NUL inside is seen). */
typedef struct fdl_policy_vars {
    const char *thing;      /* certificate CN = MQTT user name */
    size_t thing_len;
    const char *client_id;  /* MQTT client identifier (as the broker knows it) */
    size_t client_id_len;
} fdl_policy_vars;

typedef enum fdl_policy_reason {
    FDL_POLICY_BY_STATEMENT = 0,  /* statement `index` decided */
    FDL_POLICY_BY_DEFAULT,        /* no statement applied: default deny */
    FDL_POLICY_BY_UNSAFE_VAR,     /* `var` has an unsafe value: everything is denied */
    FDL_POLICY_BY_BAD_REQUEST,    /* the topic or filter is invalid for the action, or too long */
    FDL_POLICY_BY_BAD_ARG,        /* NULL policy or vars, unknown action */
} fdl_policy_reason;

/* Why fdl_policy_check answered as it did; every pointer is static or borrowed from the policy. */
typedef struct fdl_policy_decision {
    fdl_policy_effect effect;
    fdl_policy_reason reason;
    size_t index;        /* deciding statement (0-based) when reason == BY_STATEMENT, else SIZE_MAX */
    unsigned line;       /* that statement's source line, else 0 */
    const char *var;     /* BY_UNSAFE_VAR: "thing" or "client_id", else NULL */
    const char *detail;  /* static text: e.g. "contains '/'", "default deny"; never NULL */
} fdl_policy_decision;

typedef struct fdl_policy_stats {
    uint64_t checks;        /* calls to fdl_policy_check with a policy */
    uint64_t allowed;
    uint64_t denied;        /* all denials, including the two below */
    uint64_t unsafe_vars;   /* denied because a variable value was unsafe */
    uint64_t bad_requests;  /* denied because the request was invalid or unknown */
} fdl_policy_stats;

/* A statement as parsed; `resource` is borrowed from the policy (NUL-terminated). */
typedef struct fdl_policy_statement {
    fdl_policy_effect effect;
    fdl_policy_action action;
    const char *resource;   /* the template, variables unexpanded */
    size_t resource_len;
    unsigned line;          /* source line (1-based) */
} fdl_policy_statement;

/* --- The built-in device policy -------------------------------------------- */

/*
 * Least privilege for a fleet device: its own telemetry out, its own commands
 * in, its own provisioning topics both ways (request/response under one
 * subtree), and for OTA exactly one direction per topic: job documents in
 * (notify), its status reports out, block requests out (get), blocks in
 * (docs/ota.md). Nothing else, default deny.
 */
#define FDL_POLICY_DEFAULT_DEVICE                                                   \
    "# fleetdrill default device policy\n"                                          \
    "allow publish   telemetry/${thing}\n"                                          \
    "allow subscribe commands/${thing}\n"                                           \
    "allow receive   commands/${thing}\n"                                           \
    "allow publish   $fleet/provisioning/${thing}/#\n"                              \
    "allow subscribe $fleet/provisioning/${thing}/#\n"                              \
    "allow receive   $fleet/provisioning/${thing}/#\n"                              \
    "allow subscribe $fleet/jobs/${thing}/notify\n"                                 \
    "allow receive   $fleet/jobs/${thing}/notify\n"                                 \
    "allow publish   $fleet/jobs/${thing}/status\n"                                 \
    "allow publish   $fleet/ota/${thing}/get\n"                                     \
    "allow subscribe $fleet/ota/${thing}/block\n"                                   \
    "allow receive   $fleet/ota/${thing}/block\n"

/* --- Functions ------------------------------------------------------------- */

/*
 * Parses policy text (borrowed; len bytes, need not be NUL-terminated). On
 * FDL_POLICY_OK, *out is a new policy that the caller frees with
 * fdl_policy_free; on failure *out is NULL, nothing is leaked and err (if not
 * NULL) says which line and why. Statuses: ARG, SYNTAX, RESOURCE, LIMIT, NOMEM.
 */
fdl_policy_status fdl_policy_parse(const char *text, size_t len, fdl_policy **out, fdl_policy_error *err);

/* fdl_policy_parse of FDL_POLICY_DEFAULT_DEVICE. */
fdl_policy_status fdl_policy_new_default(fdl_policy **out);

/* Releases a policy; NULL is a no-op. */
void fdl_policy_free(fdl_policy *p);

/* Number of statements (0 for NULL). */
size_t fdl_policy_count(const fdl_policy *p);

/* Statement i (0-based) into *out; ERR_ARG when p or out is NULL or i is out of range. */
fdl_policy_status fdl_policy_get(const fdl_policy *p, size_t i, fdl_policy_statement *out);

/*
 * Checks one value against the safe-variable rule. Returns OK, or
 * ERR_UNSAFE_VAR with *why (if not NULL) set to a static reason such as
 * "empty", "contains '/'", "starts with '$'".
 */
fdl_policy_status fdl_policy_value_check(const char *value, size_t len, const char **why);

/*
 * Expands statement i's resource with vars into buf (cap bytes; the result is
 * NUL-terminated and its length without the NUL is stored in *out_len).
 * Statuses: ARG, UNSAFE_VAR (either variable unsafe), LIMIT (cap too small;
 * FDL_POLICY_MAX_EXPANDED + 1 is always enough).
 */
fdl_policy_status fdl_policy_expand(const fdl_policy *p, size_t i, const fdl_policy_vars *vars, char *buf,
                                    size_t cap, size_t *out_len);

/*
 * The authorisation decision for one request (see the top of this file).
 * `request` is a topic name for PUBLISH and RECEIVE, a filter for SUBSCRIBE
 * (borrowed, len bytes). Returns FDL_POLICY_ALLOW or FDL_POLICY_DENY and, when
 * `why` is not NULL, fills it. Never allocates; updates p's counters. A NULL p
 * or vars or an unknown action is DENY (BY_BAD_ARG).
 */
fdl_policy_effect fdl_policy_check(fdl_policy *p, fdl_policy_action action, const char *request, size_t len,
                                   const fdl_policy_vars *vars, fdl_policy_decision *why);

/*
 * One log-ready line for a decision, e.g.
 *   "allow: statement 0 (line 2: allow publish telemetry/${thing})"
 *   "deny: default deny"   "deny: unsafe thing: contains '/'"
 * Writes at most cap bytes including the NUL; returns what snprintf returns.
 * p may be NULL (then statements are shown by index only).
 */
int fdl_policy_decision_format(const fdl_policy *p, const fdl_policy_decision *d, char *buf, size_t cap);

/* Snapshot of p's counters (zeros for NULL). */
fdl_policy_stats fdl_policy_get_stats(const fdl_policy *p);

/* --- Audit ---------------------------------------------------------------- */

/* Finding flags (a statement may have several). Only ALLOW statements are audited. */
#define FDL_POLICY_FINDING_WILDCARD 0x1u  /* '+' or '#' in a level before the first ${thing} level */
#define FDL_POLICY_FINDING_SHARED 0x2u    /* no ${thing} level: every device gets the same grant */
#define FDL_POLICY_FINDING_CLIENT_ID 0x4u /* keyed by ${client_id} alone, which the client chooses */
#define FDL_POLICY_FINDING_CROSS 0x8u     /* for two different things, this and statement `other`
                                             can reach a common topic (cross-device path) */

typedef struct fdl_policy_finding {
    size_t statement;  /* index of the flagged statement */
    unsigned line;     /* its source line */
    unsigned flags;    /* FDL_POLICY_FINDING_* */
    size_t other;      /* CROSS: the first other statement involved, else SIZE_MAX */
} fdl_policy_finding;

/*
 * Audits the policy for grants that can reach more than one device's topics.
 * Writes findings for flagged allow statements, in statement order, into
 * out[0..cap) and returns how many statements are flagged (which may exceed
 * cap; out may be NULL when cap is 0). 0 means no finding.
 *
 * WILDCARD and SHARED are the per-statement rules. CROSS compares each pair of
 * allow statements (any actions: one device's publish against another's
 * receive is exactly the cross-device path), with ${thing} = X in one and
 * ${thing} = Y in the other for any X != Y and ${client_id} taking any safe
 * value. It over-approximates (may flag a pair that cannot collide, never
 * misses one), so: when this returns 0, no request is allowed for two
 * different things, whatever their client ids. Deny statements are ignored
 * (they only narrow), so a flagged grant may in fact be fenced by a deny.
 */
size_t fdl_policy_is_wildcard(const fdl_policy *p, fdl_policy_finding *out, size_t cap);

#endif /* FDL_POLICY_H */
