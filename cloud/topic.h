/*
 * cloud/topic.h — MQTT 3.1.1 topic names and filters (section 4.7): validation,
 * matching, and the filter-versus-filter relations the authorisation core needs.
 *
 * Everything here is pure: no allocation, no I/O, no global state, thread-safe.
 * Every string is (pointer, length): it need not be NUL-terminated and a NUL
 * inside it is seen (and refused), never silently truncated. A NULL pointer is
 * allowed only with length 0, and then the string is empty (and so invalid).
 *
 * Vocabulary. A topic is split on '/' into levels; empty levels are levels
 * ("a//b" has three, "/a" has two: "" and "a"; "a/" has two: "a" and "").
 *   - A topic NAME (what PUBLISH carries) is 1..65535 bytes of well-formed UTF-8
 *     without U+0000 and without '+' or '#' (4.7.3-1, 3.3.2-2, 1.5.3).
 *   - A topic FILTER (what SUBSCRIBE carries) has the same encoding rules; '+'
 *     must be alone in its level, '#' must be alone in the last level (4.7.1).
 *   - '+' matches exactly one level, which may be empty ("a/+" matches "a/"
 *     but not "a"). '#' matches the parent level and any number of children
 *     ("a/#" matches "a", "a/", "a/b/c"; "#" matches every topic).
 *   - A filter whose FIRST character is a wildcard never matches a topic whose
 *     first character is '$' (4.7.2-1): "#" and "+/x" do not match "$SYS/x",
 *     "$SYS/#" does.
 * The UTF-8 rules are the codec's (devices/mqtt_codec.c): no overlong forms, no
 * surrogates, nothing above U+10FFFF, no U+0000. Control characters are legal
 * MQTT (a "SHOULD NOT"), so they are accepted here; Mosquitto refuses them
 * earlier, and cloud/policy.h refuses them in identities.
 *
 * The three relations below all validate their arguments first and answer
 * false for anything invalid, so hostile input can only ever lead to "no".
 * They are exact (not approximations) over valid topic names of 1..65535
 * bytes; tests/test_topic.c checks this by brute force over small alphabets.
 */
#ifndef FDL_TOPIC_H
#define FDL_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

/* The MQTT 3.1.1 string limit (two-byte length prefix), in bytes. */
#define FDL_TOPIC_MAX_LEN 65535u

typedef enum fdl_topic_status {
    FDL_TOPIC_OK = 0,
    FDL_TOPIC_BAD_ARG,       /* NULL pointer with a non-zero length */
    FDL_TOPIC_EMPTY,         /* zero bytes (4.7.3-1) */
    FDL_TOPIC_TOO_LONG,      /* more than FDL_TOPIC_MAX_LEN bytes */
    FDL_TOPIC_NUL,           /* contains U+0000 (4.7.3-2) */
    FDL_TOPIC_BAD_UTF8,      /* not well-formed UTF-8 (1.5.3) */
    FDL_TOPIC_WILDCARD,      /* name: contains '+' or '#' */
    FDL_TOPIC_BAD_WILDCARD,  /* filter: '+' or '#' not alone in its level, or '#' not last */
} fdl_topic_status;

/* Returns a static, human-readable string; never NULL. */
const char *fdl_topic_strerror(fdl_topic_status st);

/* Checks a topic name as PUBLISH (and a message delivery) carries it. */
fdl_topic_status fdl_topic_validate_name(const char *topic, size_t len);

/* Checks a topic filter as SUBSCRIBE carries it. Every valid name is also a valid filter. */
fdl_topic_status fdl_topic_validate_filter(const char *filter, size_t len);

/*
 * true when the valid filter matches the valid topic name; false otherwise,
 * including when either is invalid.
 */
bool fdl_topic_matches(const char *filter, size_t filter_len, const char *topic, size_t topic_len);

/*
 * true when every topic name matched by filter `inner` is also matched by
 * filter `outer` (inner's topics are a subset of outer's); false otherwise or
 * when either filter is invalid. This is the SUBSCRIBE authorisation relation:
 * a grant on `outer` permits a subscription to `inner`.
 *   "a/+" covers "a/b" and "a/+", not "a/#";  "a/#" covers "a", "a/b/c", "a/+/#";
 *   "#" covers "a/#" but not "$SYS/x";  "+/#" covers "#" (no topic is empty).
 * A topic name is a filter that matches only itself, so for a valid name t,
 * covers(f, t) == matches(f, t).
 */
bool fdl_topic_filter_covers(const char *outer, size_t outer_len, const char *inner, size_t inner_len);

/*
 * true when at least one topic name is matched by both filters; false otherwise
 * or when either is invalid. Symmetric. This is the relation for DENY grants on
 * SUBSCRIBE: a subscription that could receive any denied topic is refused.
 *   "a/+" and "+/b" overlap ("a/b");  "a/#" and "b/#" do not;
 *   "#" and "$SYS/#" do not;  "/#" and "+" do not (their only common topic
 *   would be the empty string, which is not a topic).
 * For a valid name t, overlap(f, t) == matches(f, t).
 */
bool fdl_topic_filters_overlap(const char *a, size_t a_len, const char *b, size_t b_len);

/* One level of a topic or filter: a view into the caller's string (borrowed). */
typedef struct fdl_topic_level {
    const char *p;
    size_t n;
} fdl_topic_level;

/*
 * Cursor over the levels of s[0..len): *pos starts at 0; each call yields the
 * next level and returns false once every level has been yielded. A string of
 * k slashes has k + 1 levels, so "a/" yields "a" then "". No validation: use on
 * strings already checked with fdl_topic_validate_name / _filter (or templates).
 */
bool fdl_topic_next_level(const char *s, size_t len, size_t *pos, fdl_topic_level *out);

#endif /* FDL_TOPIC_H */
