/*
 * cloud/json.h — strict, sans-I/O, non-allocating JSON parser for untrusted payloads.
 *
 * The cloud side judges every device payload with this parser before anything
 * else reads it, so it is strict where RFC 8259 leaves room and bounded
 * everywhere. It never allocates, never recurses, never reads outside
 * buf[0..len) and never asserts on input: hostile bytes give a status.
 *
 * Shape (jsmn-like): the caller provides an array of tokens; a successful parse
 * fills it in document order (pre-order). Every token records its parent and
 * the index one past its subtree (`end`), so a caller walks an object's members
 * without recursion:
 *
 *     for (k = obj + 1; k < tok[obj].end; k = tok[k + 1].end)
 *         key = &tok[k], value = &tok[k + 1];
 *
 * Tokens are views: offsets into the caller's buffer, valid while it is
 * unchanged (borrowed). Strings are not decoded in place; use fdl_jv_str_copy
 * or fdl_jv_str_eq, and fdl_jv_number_int / fdl_jv_number_double for numbers.
 *
 * The payload is complete (an MQTT message), so there is no "need more bytes":
 * a truncated document is FDL_JV_MALFORMED.
 *
 * What is refused (FDL_JV_MALFORMED, with the byte offset of the problem):
 *   - anything but exactly one value surrounded by optional whitespace
 *     (space, tab, LF, CR): empty input, trailing data, a byte-order mark;
 *   - numbers outside the RFC 8259 grammar: leading zeros ("01"), "+1", ".5",
 *     "1.", "1e", hex, NaN, Infinity;
 *   - in strings: raw control bytes (U+0000..U+001F, so a raw NUL too),
 *     escapes other than \" \\ \/ \b \f \n \r \t \uXXXX, lone or reversed
 *     UTF-16 surrogate escapes, and invalid UTF-8 (overlong forms, encoded
 *     surrogates, code points above U+10FFFF, stray or missing continuation
 *     bytes) — checked per Unicode table 3-7;
 *   - trailing commas, missing commas or colons, non-string keys, bare words;
 *   - duplicate keys in any object, compared after decoding escapes ("a" and
 *     "\u0061" are the same key). RFC 8259 only says names SHOULD be unique,
 *     and parsers disagree on which duplicate wins (first, last, error); a
 *     payload that means one thing to the validator and another to a
 *     subscriber is a classic smuggling trick, so it is refused outright.
 *     The check is quadratic in the keys of one object, bounded by max_tokens
 *     and max_bytes (see the limits below).
 * A "\u0000" escape is valid JSON and is accepted here; consumers that hand
 * strings to C code must refuse it (cloud/schema.c does).
 *
 * Ceilings (fdl_jv_limits; checked before the work they bound):
 *   max_bytes   payload size; a longer payload is TOO_LARGE before any byte is read
 *   max_depth   nesting of objects and arrays ("[]" is depth 1); deeper is TOO_DEEP
 *   max_tokens  tokens (every value and every key is one); more is TOO_LARGE.
 *               The caller's array capacity is a ceiling too: the smaller wins.
 *   max_string  raw (escaped) bytes between a string's quotes, keys included; TOO_LARGE
 * and, fixed, FDL_JV_MAX_NUMBER_LEN bytes for a number token (TOO_LARGE): no
 * int64 or double needs more, and it bounds the copy strtod needs.
 *
 * The prefix is fdl_jv_ ("JSON value") because sim/json.h, the report writer,
 * already owns fdl_json_ and the FDL_JSON_* status names.
 */
#ifndef FDL_JV_H
#define FDL_JV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum fdl_jv_status {
    FDL_JV_OK = 0,
    FDL_JV_MALFORMED,     /* not RFC 8259 JSON (or a duplicate key); hostile input, count it */
    FDL_JV_TOO_DEEP,      /* nesting beyond max_depth */
    FDL_JV_TOO_LARGE,     /* payload, token count, a string or a number above its ceiling;
                             fdl_jv_str_copy: the output buffer is too small */
    FDL_JV_NOT_INTEGER,   /* fdl_jv_number_int: a valid number with a fractional part */
    FDL_JV_OUT_OF_RANGE,  /* number conversion: outside int64, or beyond double's range */
    FDL_JV_BAD_ARG,       /* a NULL pointer where one is required, or a token of the wrong type */
} fdl_jv_status;

/* Returns a static, human-readable string; never NULL. */
const char *fdl_jv_strerror(int status);

typedef enum fdl_jv_type {
    FDL_JV_OBJECT = 1,
    FDL_JV_ARRAY,
    FDL_JV_STRING,   /* a key or a string value */
    FDL_JV_NUMBER,
    FDL_JV_TRUE,
    FDL_JV_FALSE,
    FDL_JV_NULL,
} fdl_jv_type;

/* Token flags. */
#define FDL_JV_F_ESCAPED 0x01u   /* string: contains at least one backslash escape */
#define FDL_JV_F_FRAC    0x02u   /* number: has a fractional part */
#define FDL_JV_F_EXP     0x04u   /* number: has an exponent */
#define FDL_JV_F_KEY     0x08u   /* string: an object member's name */

/* "No parent": the parent of the top-level value. */
#define FDL_JV_NONE UINT32_MAX

/* Longest number token, in bytes (a longer one is TOO_LARGE). */
#define FDL_JV_MAX_NUMBER_LEN 63u

typedef struct fdl_jv_tok {
    uint8_t type;      /* fdl_jv_type */
    uint8_t flags;     /* FDL_JV_F_* */
    uint32_t start;    /* offset of '{' / '[', of the first byte inside a string's
                          quotes, or of a number's or literal's first byte */
    uint32_t len;      /* containers: bytes up to and including the closing bracket;
                          strings: raw bytes between the quotes (escapes undecoded);
                          numbers and literals: the token's text */
    uint32_t size;     /* object: members; array: elements; string: decoded UTF-8
                          length in bytes; 0 otherwise */
    uint32_t parent;   /* index of the enclosing object or array (a member value's
                          parent is the object, not its key); FDL_JV_NONE at top */
    uint32_t end;      /* index one past this value's last token (a key's own index + 1) */
} fdl_jv_tok;

typedef struct fdl_jv_limits {
    size_t max_bytes;     /* payload size, at most UINT32_MAX - 1 */
    uint32_t max_depth;   /* 0 allows only a scalar document */
    uint32_t max_tokens;
    uint32_t max_string;  /* raw bytes per string */
} fdl_jv_limits;

/* Defaults used when limits is NULL: generous for device telemetry, still cheap. */
#define FDL_JV_DEFAULT_MAX_BYTES  65536u   /* bytes: larger than any sane telemetry message */
#define FDL_JV_DEFAULT_MAX_DEPTH  16u      /* levels: device payloads are flat or nearly */
#define FDL_JV_DEFAULT_MAX_TOKENS 1024u    /* tokens: also bounds the duplicate-key check */
#define FDL_JV_DEFAULT_MAX_STRING 4096u    /* raw bytes per string */

/*
 * Parses buf[0..len) as one JSON document into tok[0..cap).
 *   buf     borrowed; may be NULL only when len is 0 (then MALFORMED)
 *   limits  borrowed; NULL means the FDL_JV_DEFAULT_* values
 *   tok     caller's array, cap entries; filled on success, garbage otherwise
 *   n_tok   out: tokens used on success, 0 on failure (required)
 *   err_at  out, optional: byte offset where the failure was detected (0 on success)
 * Returns FDL_JV_OK, FDL_JV_MALFORMED, FDL_JV_TOO_DEEP, FDL_JV_TOO_LARGE, or
 * FDL_JV_BAD_ARG (NULL tok or n_tok, or NULL buf with len > 0). The first
 * problem in document order decides the status, except that a payload above
 * max_bytes is TOO_LARGE before it is scanned.
 */
fdl_jv_status fdl_jv_parse(const uint8_t *buf, size_t len, const fdl_jv_limits *limits,
                           fdl_jv_tok *tok, size_t cap, size_t *n_tok, size_t *err_at);

/*
 * Decodes a string token (escapes resolved, UTF-8 out) into out[0..cap) and
 * NUL-terminates it; *out_len (optional) gets the decoded length without the
 * NUL. The decoded text may itself contain NUL bytes ("\u0000"). Returns OK,
 * TOO_LARGE when cap < t->size + 1 (nothing written), or BAD_ARG.
 * buf and t must come from one successful fdl_jv_parse.
 */
fdl_jv_status fdl_jv_str_copy(const uint8_t *buf, const fdl_jv_tok *t, char *out, size_t cap,
                              size_t *out_len);

/* True when string token t decodes to exactly s[0..n). */
bool fdl_jv_str_eq(const uint8_t *buf, const fdl_jv_tok *t, const char *s, size_t n);

/*
 * Converts number text s[0..n) to an int64 exactly (no floating point), so
 * "12", "12.0", "1.2e1" and "-0" are integers and "12.5" is not. The text is
 * checked against the RFC 8259 number grammar first (a token's text, or the
 * content of a string being coerced). Returns OK, MALFORMED (not a number),
 * TOO_LARGE (longer than FDL_JV_MAX_NUMBER_LEN), NOT_INTEGER, OUT_OF_RANGE
 * (outside [INT64_MIN, INT64_MAX]) or BAD_ARG.
 */
fdl_jv_status fdl_jv_number_int(const uint8_t *s, size_t n, int64_t *out);

/*
 * Converts number text s[0..n) to the nearest double (strtod, independent of
 * the C locale's decimal point). Returns OK, MALFORMED, TOO_LARGE (longer than
 * FDL_JV_MAX_NUMBER_LEN), OUT_OF_RANGE (overflows to infinity; underflow gives
 * 0 or a subnormal and is OK) or BAD_ARG.
 */
fdl_jv_status fdl_jv_number_double(const uint8_t *s, size_t n, double *out);

/* True when s[0..n) is exactly one RFC 8259 number, nothing around it. */
bool fdl_jv_is_number(const uint8_t *s, size_t n);

#endif /* FDL_JV_H */
