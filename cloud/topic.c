/* cloud/topic.c — MQTT 3.1.1 topic names, filters, matching and coverage (see topic.h). */
#include "cloud/topic.h"
#include "devices/utf8.h"

#include <stdint.h>
#include <string.h>

const char *fdl_topic_strerror(fdl_topic_status st)
{
    switch (st) {
    case FDL_TOPIC_OK: return "ok";
    case FDL_TOPIC_BAD_ARG: return "NULL pointer with a non-zero length";
    case FDL_TOPIC_EMPTY: return "empty topic";
    case FDL_TOPIC_TOO_LONG: return "topic longer than 65535 bytes";
    case FDL_TOPIC_NUL: return "topic contains U+0000";
    case FDL_TOPIC_BAD_UTF8: return "topic is not well-formed UTF-8";
    case FDL_TOPIC_WILDCARD: return "wildcard '+' or '#' in a topic name";
    case FDL_TOPIC_BAD_WILDCARD: return "wildcard not alone in its level, or '#' not last";
    }
    return "unknown topic status";
}


/* The encoding rules shared by names and filters. */
static fdl_topic_status check_text(const char *s, size_t len)
{
    if (s == NULL && len > 0)
        return FDL_TOPIC_BAD_ARG;
    if (len == 0)
        return FDL_TOPIC_EMPTY;
    if (len > FDL_TOPIC_MAX_LEN)
        return FDL_TOPIC_TOO_LONG;
    if (memchr(s, '\0', len) != NULL)
        return FDL_TOPIC_NUL;
    if (!fdl_utf8_valid_nonul((const uint8_t *)s, len))
        return FDL_TOPIC_BAD_UTF8;
    return FDL_TOPIC_OK;
}

/* '+' and '#' are ASCII and never occur inside a multi-byte sequence, so byte scans are exact. */
fdl_topic_status fdl_topic_validate_name(const char *topic, size_t len)
{
    fdl_topic_status st = check_text(topic, len);
    if (st != FDL_TOPIC_OK)
        return st;
    if (memchr(topic, '+', len) != NULL || memchr(topic, '#', len) != NULL)
        return FDL_TOPIC_WILDCARD;
    return FDL_TOPIC_OK;
}

fdl_topic_status fdl_topic_validate_filter(const char *filter, size_t len)
{
    fdl_topic_status st = check_text(filter, len);
    if (st != FDL_TOPIC_OK)
        return st;
    for (size_t i = 0; i < len; i++) {
        char c = filter[i];
        if (c != '+' && c != '#')
            continue;
        bool starts_level = (i == 0 || filter[i - 1] == '/');
        bool ends_level = (i + 1 == len || filter[i + 1] == '/');
        if (!starts_level || !ends_level)
            return FDL_TOPIC_BAD_WILDCARD;
        if (c == '#' && i + 1 != len)
            return FDL_TOPIC_BAD_WILDCARD;
    }
    return FDL_TOPIC_OK;
}

/* ------------------------------------------------------------------------- */
/* Level iteration over validated strings                                     */
/* ------------------------------------------------------------------------- */

typedef fdl_topic_level level;

bool fdl_topic_next_level(const char *s, size_t len, size_t *pos, fdl_topic_level *out)
{
    if (*pos > len)
        return false;
    const char *start = s + *pos;
    const char *slash = memchr(start, '/', len - *pos);
    size_t n = slash ? (size_t)(slash - start) : len - *pos;
    out->p = start;
    out->n = n;
    *pos += n + 1;
    return true;
}

static bool is_plus(level l) { return l.n == 1 && l.p[0] == '+'; }
static bool is_hash(level l) { return l.n == 1 && l.p[0] == '#'; }
static bool is_wild(level l) { return is_plus(l) || is_hash(l); }
static bool is_dollar(level l) { return l.n > 0 && l.p[0] == '$'; }
static bool same_level(level a, level b) { return a.n == b.n && memcmp(a.p, b.p, a.n) == 0; }

/* ------------------------------------------------------------------------- */
/* Relations                                                                  */
/* ------------------------------------------------------------------------- */

bool fdl_topic_matches(const char *filter, size_t filter_len, const char *topic, size_t topic_len)
{
    if (fdl_topic_validate_filter(filter, filter_len) != FDL_TOPIC_OK ||
        fdl_topic_validate_name(topic, topic_len) != FDL_TOPIC_OK)
        return false;
    /* 4.7.2-1: a wildcard in the first level never reaches a '$' topic. */
    if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
        return false;
    size_t fp = 0, tp = 0;
    level fl = {NULL, 0}, tl = {NULL, 0};
    for (;;) {
        bool hf = fdl_topic_next_level(filter, filter_len, &fp, &fl);
        bool ht = fdl_topic_next_level(topic, topic_len, &tp, &tl);
        if (!hf)
            return !ht;
        if (is_hash(fl))
            return true;           /* the rest, including the parent itself */
        if (!ht)
            return false;          /* the filter wants more levels than the topic has */
        if (!is_plus(fl) && !same_level(fl, tl))
            return false;
    }
}

/*
 * Walks both filters level by level. At each level, inner's level must be
 * matched by outer's for every value inner allows: '+' covers '+' and any
 * literal, a literal covers only itself. Two subtleties make this exact:
 *   - the '$' rule: an outer wildcard in the first level does not reach an inner
 *     literal first level starting with '$';
 *   - when inner has '#' at level k it matches its parent (k levels) and every
 *     extension. Outer then needs '#' too, except when the parent is not a topic
 *     at all: k == 0 (nothing), or k == 1 with an empty literal first level
 *     (the empty string). Then the extensions alone remain, and "+/#" from level
 *     k covers them as well.
 */
bool fdl_topic_filter_covers(const char *outer, size_t outer_len, const char *inner, size_t inner_len)
{
    if (fdl_topic_validate_filter(outer, outer_len) != FDL_TOPIC_OK ||
        fdl_topic_validate_filter(inner, inner_len) != FDL_TOPIC_OK)
        return false;
    size_t op = 0, ip = 0;
    level ol = {NULL, 0}, il = {NULL, 0};
    bool inner_first_empty = false;
    for (size_t k = 0;; k++) {
        bool ho = fdl_topic_next_level(outer, outer_len, &op, &ol);
        bool hi = fdl_topic_next_level(inner, inner_len, &ip, &il);
        if (!hi)
            return !ho || is_hash(ol);   /* outer's '#' also matches inner's last level as parent */
        if (!ho)
            return false;                /* inner reaches deeper than outer can */
        if (k == 0 && is_wild(ol) && is_dollar(il))
            return false;
        if (is_hash(ol))
            return true;
        if (is_hash(il)) {
            bool parent_not_a_topic = (k == 0) || (k == 1 && inner_first_empty);
            if (!parent_not_a_topic || !is_plus(ol))
                return false;
            return fdl_topic_next_level(outer, outer_len, &op, &ol) && is_hash(ol);
        }
        if (!is_plus(ol) && (is_plus(il) || !same_level(ol, il)))
            return false;
        if (k == 0)
            inner_first_empty = (il.n == 0);
    }
}

/*
 * Walks both filters looking for one topic both match: a literal must equal a
 * literal, '+' takes any value, '#' ends the walk successfully (a topic built
 * from the other filter's remaining levels, '+' and '#' instantiated as "x",
 * is never empty). The same two subtleties as covers(): the '$' rule in the
 * first level, and a '#' whose only remaining match is its parent when that
 * parent would be the empty string ("/#" against "+").
 */
bool fdl_topic_filters_overlap(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (fdl_topic_validate_filter(a, a_len) != FDL_TOPIC_OK ||
        fdl_topic_validate_filter(b, b_len) != FDL_TOPIC_OK)
        return false;
    size_t ap = 0, bp = 0;
    level al = {NULL, 0}, bl = {NULL, 0};
    bool first_forced_empty = false;
    for (size_t k = 0;; k++) {
        bool ha = fdl_topic_next_level(a, a_len, &ap, &al);
        bool hb = fdl_topic_next_level(b, b_len, &bp, &bl);
        if (!ha && !hb)
            return true;
        if (!ha || !hb) {
            /* One ended: only a '#' in the other can match the common parent. */
            level rest = ha ? al : bl;
            return is_hash(rest) && !(k == 1 && first_forced_empty);
        }
        if (k == 0) {
            if ((is_wild(al) && is_dollar(bl)) || (is_wild(bl) && is_dollar(al)))
                return false;
            first_forced_empty = (al.n == 0 && (bl.n == 0 || is_plus(bl))) || (bl.n == 0 && is_plus(al));
        }
        if (is_hash(al) || is_hash(bl))
            return true;
        if (is_plus(al) || is_plus(bl))
            continue;
        if (!same_level(al, bl))
            return false;
    }
}
