/* cloud/json.c — strict, bounded, non-allocating JSON parser (see cloud/json.h). */
#include "cloud/json.h"
#include "devices/utf8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fdl_jv_strerror(int status)
{
    switch (status) {
    case FDL_JV_OK: return "ok";
    case FDL_JV_MALFORMED: return "malformed JSON";
    case FDL_JV_TOO_DEEP: return "JSON nested too deeply";
    case FDL_JV_TOO_LARGE: return "JSON too large";
    case FDL_JV_NOT_INTEGER: return "number is not an integer";
    case FDL_JV_OUT_OF_RANGE: return "number out of range";
    case FDL_JV_BAD_ARG: return "bad argument";
    default: return "unknown JSON status";
    }
}

/* ------------------------------------------------------------------------- */
/* Lexical pieces                                                             */
/* ------------------------------------------------------------------------- */

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    return v;
}


static size_t utf8_put(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Scans a string whose opening quote is at buf[*pos - 1]. On success *pos is
 * one past the closing quote, *raw_len the bytes between the quotes, *dlen the
 * decoded UTF-8 length and *escaped whether a backslash occurred. On failure
 * *pos is the offending offset.
 */
static fdl_jv_status scan_string(const uint8_t *buf, size_t len, size_t *pos, uint32_t max_string,
                                 size_t *raw_len, size_t *dlen, bool *escaped)
{
    size_t i = *pos, start = *pos, d = 0;
    *escaped = false;
    for (;;) {
        if (i - start > max_string) {
            *pos = i;
            return FDL_JV_TOO_LARGE;
        }
        if (i >= len) {
            *pos = i;
            return FDL_JV_MALFORMED;   /* unterminated */
        }
        uint8_t c = buf[i];
        if (c == '"')
            break;
        if (c < 0x20) {
            *pos = i;
            return FDL_JV_MALFORMED;   /* raw control byte, NUL included */
        }
        if (c == '\\') {
            *escaped = true;
            if (i + 1 >= len) {
                *pos = i;
                return FDL_JV_MALFORMED;
            }
            uint8_t e = buf[i + 1];
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                e == 't') {
                i += 2;
                d += 1;
                continue;
            }
            if (e != 'u' || i + 6 > len) {
                *pos = i;
                return FDL_JV_MALFORMED;
            }
            int u = hex4(buf + i + 2);
            if (u < 0 || (u >= 0xDC00 && u <= 0xDFFF)) {
                *pos = i;
                return FDL_JV_MALFORMED;   /* bad hex, or a low surrogate first */
            }
            if (u >= 0xD800 && u <= 0xDBFF) {
                /* A high surrogate must be followed at once by an escaped low one. */
                if (i + 12 > len || buf[i + 6] != '\\' || buf[i + 7] != 'u') {
                    *pos = i;
                    return FDL_JV_MALFORMED;
                }
                int lo = hex4(buf + i + 8);
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    *pos = i;
                    return FDL_JV_MALFORMED;
                }
                i += 12;
                d += 4;
                continue;
            }
            i += 6;
            d += u < 0x80 ? 1 : u < 0x800 ? 2 : 3;
            continue;
        }
        size_t n = fdl_utf8_seq(buf + i, len - i);
        if (n == 0) {
            *pos = i;
            return FDL_JV_MALFORMED;
        }
        i += n;
        d += n;
    }
    if (i - start > max_string) {
        *pos = i;
        return FDL_JV_TOO_LARGE;
    }
    *raw_len = i - start;
    *dlen = d;
    *pos = i + 1;
    return FDL_JV_OK;
}

/*
 * Number grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * Returns the length of the longest prefix of s[0..n) that is a number, or 0
 * when none is; *flags gets FDL_JV_F_FRAC / FDL_JV_F_EXP.
 */
static size_t scan_number(const uint8_t *s, size_t n, uint8_t *flags)
{
    size_t i = 0;
    *flags = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || !is_digit(s[i]))
        return 0;
    if (s[i] == '0') {
        i++;
    } else {
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
        *flags |= FDL_JV_F_FRAC;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
        *flags |= FDL_JV_F_EXP;
    }
    return i;
}

bool fdl_jv_is_number(const uint8_t *s, size_t n)
{
    uint8_t flags;
    return s && n > 0 && scan_number(s, n, &flags) == n;
}

/* ------------------------------------------------------------------------- */
/* Decoding strings                                                           */
/* ------------------------------------------------------------------------- */

/*
 * Decodes the next code point (or raw byte) of a validated string's raw text
 * r[*i..n) into out; returns the bytes written (1..4) and advances *i.
 */
static size_t str_next(const uint8_t *r, size_t n, size_t *i, uint8_t out[4])
{
    uint8_t c = r[*i];
    if (c != '\\') {
        out[0] = c;
        (*i)++;
        return 1;
    }
    uint8_t e = r[*i + 1];
    switch (e) {
    case 'b': out[0] = '\b'; break;
    case 'f': out[0] = '\f'; break;
    case 'n': out[0] = '\n'; break;
    case 'r': out[0] = '\r'; break;
    case 't': out[0] = '\t'; break;
    case 'u': {
        uint32_t cp = (uint32_t)hex4(r + *i + 2);
        *i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && *i + 6 <= n) {
            uint32_t lo = (uint32_t)hex4(r + *i + 2);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            *i += 6;
        }
        return utf8_put(cp, out);
    }
    default: out[0] = e; break;   /* " \ / */
    }
    *i += 2;
    return 1;
}

fdl_jv_status fdl_jv_str_copy(const uint8_t *buf, const fdl_jv_tok *t, char *out, size_t cap,
                              size_t *out_len)
{
    if (out_len)
        *out_len = 0;
    if (!buf || !t || !out || t->type != FDL_JV_STRING)
        return FDL_JV_BAD_ARG;
    if (cap < (size_t)t->size + 1)
        return FDL_JV_TOO_LARGE;
    const uint8_t *r = buf + t->start;
    size_t i = 0, o = 0;
    while (i < t->len) {
        uint8_t tmp[4];
        size_t k = str_next(r, t->len, &i, tmp);
        memcpy(out + o, tmp, k);
        o += k;
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return FDL_JV_OK;
}

bool fdl_jv_str_eq(const uint8_t *buf, const fdl_jv_tok *t, const char *s, size_t n)
{
    if (!buf || !t || t->type != FDL_JV_STRING || (n && !s) || t->size != n)
        return false;
    const uint8_t *r = buf + t->start;
    if (!(t->flags & FDL_JV_F_ESCAPED))
        return n == 0 || memcmp(r, s, n) == 0;
    size_t i = 0, o = 0;
    while (i < t->len) {
        uint8_t tmp[4];
        size_t k = str_next(r, t->len, &i, tmp);
        if (o + k > n || memcmp(s + o, tmp, k) != 0)
            return false;
        o += k;
    }
    return o == n;
}

/* A cursor over a string's decoded bytes. */
typedef struct str_cursor {
    const uint8_t *raw;
    size_t len, i;
    uint8_t pend[4];
    size_t npend, ipend;
} str_cursor;

/* Next decoded byte into *b; false at the end. */
static bool cursor_next(str_cursor *c, uint8_t *b)
{
    if (c->ipend == c->npend) {
        if (c->i >= c->len)
            return false;
        c->npend = str_next(c->raw, c->len, &c->i, c->pend);
        c->ipend = 0;
    }
    *b = c->pend[c->ipend++];
    return true;
}

/*
 * Two string tokens of one document decode to the same bytes. Compared as
 * byte streams: "\u00e9" yields two bytes at once where the raw form yields
 * them one by one.
 */
static bool str_tok_eq(const uint8_t *buf, const fdl_jv_tok *a, const fdl_jv_tok *b)
{
    if (a->size != b->size)
        return false;
    if (!((a->flags | b->flags) & FDL_JV_F_ESCAPED))
        return memcmp(buf + a->start, buf + b->start, a->len) == 0;
    str_cursor x = {buf + a->start, a->len, 0, {0}, 0, 0};
    str_cursor y = {buf + b->start, b->len, 0, {0}, 0, 0};
    for (;;) {
        uint8_t bx = 0, by = 0;
        bool mx = cursor_next(&x, &bx), my = cursor_next(&y, &by);
        if (mx != my)
            return false;
        if (!mx)
            return true;
        if (bx != by)
            return false;
    }
}

/* ------------------------------------------------------------------------- */
/* The parser                                                                 */
/* ------------------------------------------------------------------------- */

/* What the parser expects next. */
enum {
    ST_VALUE,       /* a value (array element, member value, or the document) */
    ST_OBJ_FIRST,   /* just after '{': a key or '}' */
    ST_OBJ_KEY,     /* after ',' in an object: a key */
    ST_ARR_FIRST,   /* just after '[': a value or ']' */
    ST_AFTER,       /* a value ended: ',' or the closing bracket, or end of document */
};

/*
 * Index of the first key of the object at tok[obj] that repeats an earlier
 * key, or 0 when the keys are unique (all of the object's tokens are present).
 */
static uint32_t duplicate_key(const uint8_t *buf, const fdl_jv_tok *tok, uint32_t obj)
{
    for (uint32_t m = obj + 1; m < tok[obj].end; m = tok[m + 1].end)
        for (uint32_t k = obj + 1; k < m; k = tok[k + 1].end)
            if (str_tok_eq(buf, &tok[k], &tok[m]))
                return m;
    return 0;
}

/*
 * Closes the container tok[*cur] whose closing bracket is at buf[*pos]: sets
 * its length and end, checks an object for duplicate keys, and moves to the
 * parent. Returns false (with *pos at the repeated key) on a duplicate.
 */
static bool close_container(const uint8_t *buf, fdl_jv_tok *tok, size_t ntok, uint32_t *cur,
                            uint32_t *depth, size_t *pos)
{
    fdl_jv_tok *c = &tok[*cur];
    c->len = (uint32_t)(*pos + 1 - c->start);
    c->end = (uint32_t)ntok;
    uint32_t dup = c->type == FDL_JV_OBJECT ? duplicate_key(buf, tok, *cur) : 0;
    if (dup) {
        *pos = tok[dup].start - 1u;   /* its opening quote */
        return false;
    }
    (*pos)++;
    (*depth)--;
    *cur = c->parent;
    return true;
}

fdl_jv_status fdl_jv_parse(const uint8_t *buf, size_t len, const fdl_jv_limits *limits,
                           fdl_jv_tok *tok, size_t cap, size_t *n_tok, size_t *err_at)
{
    static const fdl_jv_limits defaults = {
        FDL_JV_DEFAULT_MAX_BYTES, FDL_JV_DEFAULT_MAX_DEPTH, FDL_JV_DEFAULT_MAX_TOKENS,
        FDL_JV_DEFAULT_MAX_STRING,
    };
    fdl_jv_status st = FDL_JV_MALFORMED;
    size_t pos = 0, ntok = 0;
    if (err_at)
        *err_at = 0;
    if (n_tok)
        *n_tok = 0;
    if (!tok || !n_tok || (!buf && len > 0))
        return FDL_JV_BAD_ARG;
    const fdl_jv_limits *lim = limits ? limits : &defaults;
    size_t max_tok = lim->max_tokens < cap ? lim->max_tokens : cap;
    if (max_tok > UINT32_MAX - 1)
        max_tok = UINT32_MAX - 1;
    if (len > lim->max_bytes || len > UINT32_MAX - 1) {
        st = FDL_JV_TOO_LARGE;
        goto fail;
    }

    uint32_t cur = FDL_JV_NONE;   /* innermost open container */
    uint32_t depth = 0;
    int state = ST_VALUE;
    for (;;) {
        while (pos < len && is_ws(buf[pos]))
            pos++;
        if (state == ST_AFTER) {
            if (cur == FDL_JV_NONE) {
                if (pos != len)
                    goto fail;   /* trailing data */
                break;
            }
            fdl_jv_tok *c = &tok[cur];
            if (pos >= len)
                goto fail;
            uint8_t ch = buf[pos];
            if (ch == ',') {
                pos++;
                state = c->type == FDL_JV_OBJECT ? ST_OBJ_KEY : ST_VALUE;
                if (c->type == FDL_JV_ARRAY)
                    c->size++;
                continue;
            }
            if (ch != (c->type == FDL_JV_OBJECT ? '}' : ']'))
                goto fail;
            if (!close_container(buf, tok, ntok, &cur, &depth, &pos))
                goto fail;
            state = ST_AFTER;
            continue;
        }
        if (pos >= len)
            goto fail;   /* truncated, or an empty document */
        uint8_t ch = buf[pos];
        if ((state == ST_OBJ_FIRST && ch == '}') || (state == ST_ARR_FIRST && ch == ']')) {
            if (!close_container(buf, tok, ntok, &cur, &depth, &pos))
                goto fail;
            state = ST_AFTER;
            continue;
        }
        if (state == ST_ARR_FIRST)
            tok[cur].size++;
        if (ntok >= max_tok) {
            st = FDL_JV_TOO_LARGE;
            goto fail;
        }
        fdl_jv_tok *t = &tok[ntok];
        memset(t, 0, sizeof *t);
        t->parent = cur;
        t->start = (uint32_t)pos;

        if (state == ST_OBJ_FIRST || state == ST_OBJ_KEY) {
            if (ch != '"')
                goto fail;   /* a non-string key, or a trailing comma */
            size_t raw, dlen;
            bool esc;
            pos++;
            t->start = (uint32_t)pos;
            st = scan_string(buf, len, &pos, lim->max_string, &raw, &dlen, &esc);
            if (st != FDL_JV_OK)
                goto fail;
            st = FDL_JV_MALFORMED;
            t->type = FDL_JV_STRING;
            t->flags = (uint8_t)(FDL_JV_F_KEY | (esc ? FDL_JV_F_ESCAPED : 0));
            t->len = (uint32_t)raw;
            t->size = (uint32_t)dlen;
            t->end = (uint32_t)(ntok + 1);
            ntok++;
            tok[cur].size++;
            while (pos < len && is_ws(buf[pos]))
                pos++;
            if (pos >= len || buf[pos] != ':')
                goto fail;
            pos++;
            state = ST_VALUE;
            continue;
        }

        /* A value. */
        if (ch == '{' || ch == '[') {
            if (depth >= lim->max_depth) {
                st = FDL_JV_TOO_DEEP;
                goto fail;
            }
            depth++;
            t->type = ch == '{' ? FDL_JV_OBJECT : FDL_JV_ARRAY;
            cur = (uint32_t)ntok++;
            pos++;
            state = ch == '{' ? ST_OBJ_FIRST : ST_ARR_FIRST;
            continue;
        }
        if (ch == '"') {
            size_t raw, dlen;
            bool esc;
            pos++;
            t->start = (uint32_t)pos;
            st = scan_string(buf, len, &pos, lim->max_string, &raw, &dlen, &esc);
            if (st != FDL_JV_OK)
                goto fail;
            st = FDL_JV_MALFORMED;
            t->type = FDL_JV_STRING;
            t->flags = esc ? FDL_JV_F_ESCAPED : 0;
            t->len = (uint32_t)raw;
            t->size = (uint32_t)dlen;
        } else if (ch == '-' || is_digit(ch)) {
            uint8_t flags;
            size_t n = scan_number(buf + pos, len - pos, &flags);
            if (n == 0)
                goto fail;
            if (n > FDL_JV_MAX_NUMBER_LEN) {
                st = FDL_JV_TOO_LARGE;
                goto fail;
            }
            t->type = FDL_JV_NUMBER;
            t->flags = flags;
            t->len = (uint32_t)n;
            pos += n;
        } else {
            static const struct { const char *word; size_t n; uint8_t type; } lits[] = {
                {"true", 4, FDL_JV_TRUE}, {"false", 5, FDL_JV_FALSE}, {"null", 4, FDL_JV_NULL},
            };
            size_t k;
            for (k = 0; k < 3; k++)
                if (len - pos >= lits[k].n && memcmp(buf + pos, lits[k].word, lits[k].n) == 0)
                    break;
            if (k == 3)
                goto fail;
            t->type = lits[k].type;
            t->len = (uint32_t)lits[k].n;
            pos += lits[k].n;
        }
        t->end = (uint32_t)(ntok + 1);
        ntok++;
        state = ST_AFTER;
    }
    *n_tok = ntok;
    return FDL_JV_OK;

fail:
    if (err_at)
        *err_at = pos;
    return st;
}

/* ------------------------------------------------------------------------- */
/* Numbers                                                                    */
/* ------------------------------------------------------------------------- */

fdl_jv_status fdl_jv_number_int(const uint8_t *s, size_t n, int64_t *out)
{
    if (!s || !out)
        return FDL_JV_BAD_ARG;
    *out = 0;
    if (!fdl_jv_is_number(s, n))
        return FDL_JV_MALFORMED;
    if (n > FDL_JV_MAX_NUMBER_LEN)
        return FDL_JV_TOO_LARGE;

    /*
     * Exact arithmetic on the decimal text: value = digits * 10^e, where
     * digits are the integer and fraction digits and e = exponent - number of
     * fraction digits. Dropping trailing zeros from digits (raising e) leaves
     * an integer exactly when e >= 0. No double is involved, so
     * 9007199254740993 stays exact.
     */
    size_t i = 0;
    bool neg = s[0] == '-';
    if (neg)
        i++;
    char dig[FDL_JV_MAX_NUMBER_LEN];
    size_t nd = 0, frac = 0;
    for (; i < n && is_digit(s[i]); i++)
        dig[nd++] = (char)s[i];
    if (i < n && s[i] == '.')
        for (i++; i < n && is_digit(s[i]); i++, frac++)
            dig[nd++] = (char)s[i];
    int64_t e = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (s[i] == '+' || s[i] == '-')
            eneg = s[i++] == '-';
        for (; i < n; i++)
            if (e < 100000)   /* saturate: far beyond any int64 exponent */
                e = e * 10 + (s[i] - '0');
        if (eneg)
            e = -e;
    }
    e -= (int64_t)frac;
    size_t first = 0;
    while (first < nd && dig[first] == '0')
        first++;
    if (first == nd)
        return FDL_JV_OK;   /* zero, whatever the sign and exponent */
    while (dig[nd - 1] == '0') {
        nd--;
        e++;
    }
    if (e < 0)
        return FDL_JV_NOT_INTEGER;
    if ((int64_t)(nd - first) + e > 19)
        return FDL_JV_OUT_OF_RANGE;
    uint64_t mag = 0;
    const uint64_t lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    for (size_t k = first; k < nd; k++) {
        uint64_t d = (uint64_t)(dig[k] - '0');
        if (mag > (lim - d) / 10)
            return FDL_JV_OUT_OF_RANGE;
        mag = mag * 10 + d;
    }
    for (int64_t k = 0; k < e; k++) {
        if (mag > lim / 10)
            return FDL_JV_OUT_OF_RANGE;
        mag *= 10;
    }
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return FDL_JV_OK;
}

fdl_jv_status fdl_jv_number_double(const uint8_t *s, size_t n, double *out)
{
    if (!s || !out)
        return FDL_JV_BAD_ARG;
    *out = 0.0;
    if (!fdl_jv_is_number(s, n))
        return FDL_JV_MALFORMED;
    if (n > FDL_JV_MAX_NUMBER_LEN)
        return FDL_JV_TOO_LARGE;
    /*
     * strtod reads the C locale's decimal point; JSON always has '.'. Copy the
     * text with the locale's point in its place. The point is learnt from
     * snprintf (which shares strtod's locale) rather than localeconv, which is
     * not thread-safe.
     */
    char probe[16];
    int pn = snprintf(probe, sizeof probe, "%.1f", 0.5);   /* "0.5", "0,5", ... */
    const char *dp = ".";
    size_t dpn = 1;
    if (pn >= 3 && (size_t)pn < sizeof probe && (size_t)pn - 2 <= 8) {
        dp = probe + 1;
        dpn = (size_t)pn - 2;
    }
    char tmp[FDL_JV_MAX_NUMBER_LEN + 8 + 1];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            memcpy(tmp + o, dp, dpn);
            o += dpn;
        } else {
            tmp[o++] = (char)s[i];
        }
    }
    tmp[o] = '\0';
    char *endp = NULL;
    double d = strtod(tmp, &endp);
    if (endp != tmp + o)
        return FDL_JV_MALFORMED;   /* cannot happen with a validated text */
    if (!isfinite(d))
        return FDL_JV_OUT_OF_RANGE;
    *out = d;
    return FDL_JV_OK;
}
