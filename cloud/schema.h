/*
 * cloud/schema.h — per-topic payload rules: expected fields with types, junk dropped.
 *
 * Layer 5 of the threat model. The broker plugin applies a schema to every
 * PUBLISH before any subscriber sees it: the payload is parsed by the strict
 * parser in cloud/json.h, each expected top-level field is checked (type,
 * bounds, coercion), and an accepted message is replaced by a canonical,
 * re-serialised JSON object that holds the expected fields only. Junk never
 * reaches a subscriber, even inside an accepted message. Sans-I/O: no
 * sockets, no files, no logging; fdl_schema_apply never allocates.
 *
 * ---------------------------------------------------------------------------
 * Schema text (fdl_schema_set_parse)
 * ---------------------------------------------------------------------------
 * One directive per line; words separated by spaces or tabs; '#' starts a
 * comment line; blank lines are ignored. A set holds one or more schemas,
 * each opened by a topic line:
 *
 *     topic telemetry/+                        # MQTT filter: '+' one level, '#' the rest
 *     maxbytes 1024                            # optional payload ceiling (bytes)
 *     field seq integer required min 0
 *     field battery number required min 0 max 100
 *     field note string optional maxlen 64 coerce
 *     field charging boolean optional
 *
 *   topic FILTER        starts a schema. A valid MQTT filter of at most
 *                       FDL_SCHEMA_MAX_TOPIC bytes; '+' and '#' only as whole
 *                       levels, '#' last. Schemas are tried in text order and
 *                       the first whose filter matches the topic wins.
 *   maxbytes N          payload ceiling for this schema, 1..FDL_SCHEMA_MAX_BYTES
 *                       (default FDL_SCHEMA_DEFAULT_BYTES). At most once per schema.
 *   field NAME TYPE (required|optional) [min V] [max V] [maxlen N] [coerce]
 *       NAME            1..FDL_SCHEMA_MAX_NAME bytes of [A-Za-z0-9_.-] (so an
 *                       output key never needs escaping); unique in the schema.
 *       TYPE            integer | number | string | boolean
 *       required/optional  exactly one of them, stated explicitly.
 *       min V, max V    integer and number fields only; inclusive; V is a JSON
 *                       number (an integer field's bounds must be integers);
 *                       min <= max.
 *       maxlen N        string fields only; decoded UTF-8 bytes, 0..FDL_SCHEMA_MAX_STRING
 *                       (default FDL_SCHEMA_MAX_STRING).
 *       coerce          allow the coercions listed below for this field.
 *   A schema has 1..FDL_SCHEMA_MAX_FIELDS fields; a set 1..FDL_SCHEMA_MAX_SCHEMAS
 *   schemas; the text at most FDL_SCHEMA_MAX_TEXT bytes, lines at most
 *   FDL_SCHEMA_MAX_LINE bytes. Anything else is an error that names the line
 *   ("line 3: unknown type 'float'") and no set is returned.
 *
 * ---------------------------------------------------------------------------
 * What a field accepts (everything not listed is FDL_SCHEMA_WRONG_TYPE)
 * ---------------------------------------------------------------------------
 *   integer  a JSON number whose value is an integer in int64, judged exactly
 *            on the decimal text: 12, -3, and also 12.0, 1.2e1, 120e-1, -0
 *            (JSON has one number type; an integral value is an integer
 *            however it is written). 12.5 is WRONG_TYPE; an integer beyond
 *            int64 is OUT_OF_BOUNDS. Output: plain decimal ("12", "0").
 *   number   any JSON number that is finite as a double (1e400 is
 *            OUT_OF_BOUNDS). Output: the shortest of %.15g/%.16g/%.17g that
 *            reads back as the same double, with '.' as decimal point; -0 is
 *            written as 0. Integers are numbers ("torque": 12 is fine).
 *   string   a JSON string of at most maxlen decoded bytes that does not
 *            contain U+0000 (a NUL would truncate the value in C consumers
 *            downstream: WRONG_TYPE). Output: UTF-8, escaped as RFC 8785
 *            (JCS): \" \\ \b \f \n \r \t, the other U+0001..U+001F as \u00xx
 *            (lowercase hex), everything else raw ('/' and U+007F too). No
 *            escape is longer than the payload's own spelling, so the output
 *            string never outgrows the raw-string ceiling the payload passed.
 *   boolean  true or false.
 *   null is never accepted, not even for an optional field (say nothing
 *   rather than null); objects and arrays are never accepted as field values.
 *
 * Coercions, only on fields marked `coerce`, and only these:
 *   integer <- a string whose whole content is a JSON number with an integral
 *              value ("12", "12.0"); no whitespace, no '+', no hex.
 *   number  <- a string whose whole content is a JSON number ("87.4").
 *   boolean <- the strings "true" and "false" exactly.
 *   string  <- a number (its text, verbatim: 42 -> "42", 1.0E2 -> "1.0E2") or
 *              true / false ("true" / "false").
 * The coerced value is then checked like a native one (bounds, maxlen) and
 * written in the field's own type, so output is always canonical.
 *
 * Unknown top-level fields (and anything nested inside them) are dropped: the
 * output holds only the schema's fields, in schema order, absent optional
 * fields omitted. Dropping is not a failure; fdl_schema_verdict.dropped counts
 * them so the caller can count and log them. The payload itself must still be
 * valid JSON within the ceilings, and its top-level value an object: junk that
 * breaks the JSON is a reject, not a drop, since we cannot know what the
 * sender meant. Duplicate keys are refused by the parser (MALFORMED).
 *
 * Output: compact JSON, no whitespace, `{"seq":12,"ts":...}`. It is held to
 * the same maxbytes ceiling as the payload: numbers can grow when written
 * canonically (-9e18 becomes -9000000000000000000), and an output that would
 * pass the ceiling makes the verdict TOO_LARGE. So applying the schema to its
 * own output always accepts it and gives the same bytes again.
 *
 * ---------------------------------------------------------------------------
 * Three ways to treat a bad payload (see docs/payload-rules.md)
 * ---------------------------------------------------------------------------
 *   drop        discard the message; subscribers never see it; the sender is
 *               not told. Cheap, leaks nothing to an attacker probing the
 *               rules, but a buggy device loses data silently unless the
 *               drop is counted and logged.
 *   reject      tell the sender. MQTT 3.1.1 has no per-message negative ack
 *               (a PUBACK only says "received"), so the only "error" the
 *               broker can send is closing the connection — which turns one
 *               bad field into a reconnect storm and tells a prober exactly
 *               which input tripped the rule. MQTT 5 has PUBACK reason codes
 *               (0x99 payload format invalid) but fleetdrill speaks 3.1.1.
 *   quarantine  republish the raw payload to a separate topic (e.g.
 *               quarantine/<original topic>) that only an inspection actor
 *               may read. Keeps evidence for forensics and for fixing
 *               firmware, at the price of storing attacker-controlled bytes
 *               and giving that topic its own ACL and retention ceiling.
 * fleetdrill default: drop + count + log (FDL_SCHEMA_ON_BAD_DEFAULT), the
 * verdict (status, field, offset) in the log line, never the payload itself;
 * quarantine is optional. fdl_schema_stats counts verdicts for the metrics.
 */
#ifndef FDL_SCHEMA_H
#define FDL_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloud/json.h"

/* Ceilings, each with its unit and its reason. */
#define FDL_SCHEMA_MAX_NAME 32u            /* bytes per field name: short keys, fixed buffers */
#define FDL_SCHEMA_MAX_TOPIC 256u          /* bytes per topic filter */
#define FDL_SCHEMA_MAX_FIELDS 32u          /* fields per schema: a telemetry record, not a document */
#define FDL_SCHEMA_MAX_SCHEMAS 64u         /* schemas per set */
#define FDL_SCHEMA_MAX_STRING 1024u        /* bytes per string (raw in the payload, decoded in a field) */
#define FDL_SCHEMA_DEFAULT_BYTES 4096u     /* bytes per payload unless `maxbytes` says otherwise */
#define FDL_SCHEMA_MAX_BYTES 65536u        /* upper bound for `maxbytes` */
#define FDL_SCHEMA_MAX_DEPTH 8u            /* nesting in a payload; only top-level fields are used */
#define FDL_SCHEMA_MAX_TOKENS 256u         /* JSON tokens per payload; sized on the stack of apply
                                              (256 * 24 bytes) and bounds the duplicate-key check */
#define FDL_SCHEMA_MAX_TEXT (256u * 1024u) /* bytes of schema text */
#define FDL_SCHEMA_MAX_LINE 512u           /* bytes per schema text line */

typedef enum fdl_schema_status {
    FDL_SCHEMA_OK = 0,          /* accepted; canonical output written */
    /* Verdicts on a payload: hostile or broken input, count it. */
    FDL_SCHEMA_MALFORMED,       /* not strict JSON (or a duplicate key) */
    FDL_SCHEMA_TOO_LARGE,       /* payload, token count, a string, or the canonical
                                   output above its ceiling */
    FDL_SCHEMA_TOO_DEEP,        /* nesting beyond FDL_SCHEMA_MAX_DEPTH */
    FDL_SCHEMA_NOT_OBJECT,      /* valid JSON, but the top-level value is not an object */
    FDL_SCHEMA_MISSING,         /* a required field is absent */
    FDL_SCHEMA_WRONG_TYPE,      /* a field has a type the schema (and its coercions) refuse */
    FDL_SCHEMA_OUT_OF_BOUNDS,   /* a field is below min, above max, longer than maxlen,
                                   or beyond int64 / double range */
    /* Caller errors: not the sender's fault, do not count as hostile. */
    FDL_SCHEMA_NO_SPACE,        /* out_cap too small (size it with fdl_schema_output_max) */
    FDL_SCHEMA_BAD_ARG,         /* NULL where a pointer is required */
    /* fdl_schema_set_parse only. */
    FDL_SCHEMA_SYNTAX,          /* the schema text is invalid; the message names the line */
    FDL_SCHEMA_NO_MEMORY,       /* allocation failed */
    FDL_SCHEMA__COUNT
} fdl_schema_status;

/* Returns a static, human-readable string; never NULL. */
const char *fdl_schema_strerror(int status);

/* True for the verdicts that judge the payload (MALFORMED .. OUT_OF_BOUNDS). */
bool fdl_schema_is_rejection(fdl_schema_status st);

/* What the plugin does with a rejected payload (the policy lives in the caller). */
typedef enum fdl_schema_on_bad {
    FDL_SCHEMA_ON_BAD_DROP = 0,     /* drop + count + log: the default */
    FDL_SCHEMA_ON_BAD_QUARANTINE,   /* drop + count + log + republish raw to a quarantine topic */
    FDL_SCHEMA_ON_BAD_DISCONNECT,   /* the only "reject" MQTT 3.1.1 offers; not recommended */
} fdl_schema_on_bad;
#define FDL_SCHEMA_ON_BAD_DEFAULT FDL_SCHEMA_ON_BAD_DROP

typedef enum fdl_schema_type {
    FDL_SCHEMA_INTEGER = 1,
    FDL_SCHEMA_NUMBER,
    FDL_SCHEMA_STRING,
    FDL_SCHEMA_BOOLEAN,
} fdl_schema_type;

/* The result of one fdl_schema_apply. */
typedef struct fdl_schema_verdict {
    fdl_schema_status status;             /* same as the return value */
    char field[FDL_SCHEMA_MAX_NAME + 1];  /* the first failing field; "" when the failure
                                             is not about one field (MALFORMED, ...) */
    size_t offset;                        /* byte offset in the payload: the JSON error,
                                             or the failing field's value; 0 otherwise */
    uint32_t dropped;                     /* unknown top-level members dropped (on OK) */
    uint32_t coerced;                     /* fields accepted through a coercion (on OK) */
} fdl_schema_verdict;

/* Verdict counters for metrics; plain integers, the caller serialises access. */
typedef struct fdl_schema_stats {
    uint64_t by_status[FDL_SCHEMA__COUNT];   /* one per fdl_schema_status */
    uint64_t fields_dropped;                 /* sum of verdict.dropped over accepted messages */
    uint64_t fields_coerced;
} fdl_schema_stats;

/* Adds one verdict to st (both borrowed; NULL is a no-op). */
void fdl_schema_stats_add(fdl_schema_stats *st, const fdl_schema_verdict *v);

typedef struct fdl_schema fdl_schema;           /* opaque: one topic's rules */
typedef struct fdl_schema_set fdl_schema_set;   /* opaque: the schemas of one text */

/*
 * Parses schema text[0..len) (need not be NUL-terminated). On success *out
 * gets a new set (ownership passes to the caller; free with
 * fdl_schema_set_free) and FDL_SCHEMA_OK is returned. On failure *out is NULL
 * and err (optional, err_cap bytes, always NUL-terminated when err_cap > 0)
 * says why, naming the line: FDL_SCHEMA_SYNTAX, FDL_SCHEMA_NO_MEMORY, or
 * FDL_SCHEMA_BAD_ARG (NULL text with len > 0, or NULL out). Allocates through
 * sim/alloc.h.
 */
fdl_schema_status fdl_schema_set_parse(const char *text, size_t len, fdl_schema_set **out,
                                       char *err, size_t err_cap);

/* Frees a set and its schemas; NULL is a no-op. Schemas it returned become invalid. */
void fdl_schema_set_free(fdl_schema_set *set);

/* The built-in telemetry schema text, matching the device payload
 * {"seq":12,"ts":1763712000123,"battery":87.4,"torque":12.31,"usage_minutes":1234}. */
extern const char fdl_schema_default_text[];

/* fdl_schema_set_parse of fdl_schema_default_text (same ownership rules). */
fdl_schema_status fdl_schema_set_default(fdl_schema_set **out);

/*
 * The first schema whose filter matches topic[0..topic_len), or NULL
 * (borrowed from the set). Wildcards follow MQTT: '+' is one whole level, '#'
 * the remaining levels (also none: "a/#" matches "a"), and a filter that
 * starts with a wildcard does not match a topic that starts with '$'.
 * No schema means no way to tell junk from data: the caller should treat the
 * message as rejected (default deny), not pass it through.
 */
const fdl_schema *fdl_schema_set_match(const fdl_schema_set *set, const char *topic,
                                       size_t topic_len);

/* Number of schemas in a set, and the i-th one (borrowed; NULL when out of range). */
size_t fdl_schema_set_count(const fdl_schema_set *set);
const fdl_schema *fdl_schema_set_get(const fdl_schema_set *set, size_t i);

/* The schema's topic filter (borrowed, NUL-terminated). */
const char *fdl_schema_topic(const fdl_schema *s);
/* The schema's payload ceiling in bytes. */
size_t fdl_schema_max_bytes(const fdl_schema *s);
/*
 * Largest canonical output the schema can produce, in bytes, plus one for a
 * terminating NUL: an out_cap of this size never gives FDL_SCHEMA_NO_SPACE.
 * At most maxbytes + 1, since longer output is refused as TOO_LARGE.
 */
size_t fdl_schema_output_max(const fdl_schema *s);

/*
 * Validates payload[0..len) against s and writes the canonical JSON (only the
 * schema's fields) into out[0..out_cap), NUL-terminated, length without the
 * NUL in *out_len.
 *   s, payload  borrowed (payload may be NULL when len is 0)
 *   out         caller's buffer; on any status but OK its content is unspecified
 *   out_len     out: 0 unless OK (required)
 *   verdict     out: filled on every return, status included (required)
 * Returns FDL_SCHEMA_OK, one of the payload verdicts (MALFORMED .. OUT_OF_BOUNDS;
 * the first failing field in schema order, after the whole payload has parsed),
 * FDL_SCHEMA_NO_SPACE or FDL_SCHEMA_BAD_ARG. Never allocates; uses about
 * FDL_SCHEMA_MAX_TOKENS * sizeof(fdl_jv_tok) bytes of stack. Thread-safe for
 * concurrent calls on one schema.
 */
fdl_schema_status fdl_schema_apply(const fdl_schema *s, const uint8_t *payload, size_t len,
                                   char *out, size_t out_cap, size_t *out_len,
                                   fdl_schema_verdict *verdict);

#endif /* FDL_SCHEMA_H */
