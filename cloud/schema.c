/* cloud/schema.c — per-topic payload schemas: parse the text form, apply to payloads (see schema.h). */
#include "cloud/schema.h"

#include "cloud/topic.h"
#include "sim/alloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct schema_field {
    char name[FDL_SCHEMA_MAX_NAME + 1];
    size_t name_len;
    fdl_schema_type type;
    bool required;
    bool coerce;
    bool has_min, has_max;
    int64_t imin, imax;   /* integer bounds */
    double dmin, dmax;    /* number bounds */
    uint32_t maxlen;      /* string: decoded bytes */
} schema_field;

struct fdl_schema {
    char topic[FDL_SCHEMA_MAX_TOPIC + 1];
    size_t max_bytes;
    size_t n_fields;
    schema_field fields[FDL_SCHEMA_MAX_FIELDS];
};

struct fdl_schema_set {
    size_t n;
    fdl_schema *schemas[FDL_SCHEMA_MAX_SCHEMAS];
};

const char fdl_schema_default_text[] =
    "# Built-in telemetry schema: what devices/device.c publishes on telemetry/<id>.\n"
    "topic telemetry/+\n"
    "maxbytes 1024\n"
    "field seq integer required min 0\n"
    "field ts integer required min 0\n"
    "field battery number required min 0 max 100\n"
    "field torque number required min -500 max 500\n"
    "field usage_minutes integer required min 0\n";

static const char *const status_text[FDL_SCHEMA__COUNT] = {
    [FDL_SCHEMA_OK] = "ok",
    [FDL_SCHEMA_MALFORMED] = "malformed JSON",
    [FDL_SCHEMA_TOO_LARGE] = "payload too large",
    [FDL_SCHEMA_TOO_DEEP] = "payload nested too deeply",
    [FDL_SCHEMA_NOT_OBJECT] = "payload is not a JSON object",
    [FDL_SCHEMA_MISSING] = "required field missing",
    [FDL_SCHEMA_WRONG_TYPE] = "field has the wrong type",
    [FDL_SCHEMA_OUT_OF_BOUNDS] = "field out of bounds",
    [FDL_SCHEMA_NO_SPACE] = "output buffer too small",
    [FDL_SCHEMA_BAD_ARG] = "bad argument",
    [FDL_SCHEMA_SYNTAX] = "schema syntax error",
    [FDL_SCHEMA_NO_MEMORY] = "out of memory",
};

const char *fdl_schema_strerror(int status)
{
    if (status < 0 || status >= FDL_SCHEMA__COUNT || !status_text[status])
        return "unknown schema status";
    return status_text[status];
}

bool fdl_schema_is_rejection(fdl_schema_status st)
{
    return st >= FDL_SCHEMA_MALFORMED && st <= FDL_SCHEMA_OUT_OF_BOUNDS;
}

void fdl_schema_stats_add(fdl_schema_stats *st, const fdl_schema_verdict *v)
{
    if (!st || !v || (int)v->status < 0 || v->status >= FDL_SCHEMA__COUNT)
        return;
    st->by_status[v->status]++;
    if (v->status == FDL_SCHEMA_OK) {
        st->fields_dropped += v->dropped;
        st->fields_coerced += v->coerced;
    }
}

/* ------------------------------------------------------------------------- */
/* Topic filters                                                              */
/* ------------------------------------------------------------------------- */


/* ------------------------------------------------------------------------- */
/* Schema text                                                                */
/* ------------------------------------------------------------------------- */

#define MAX_WORDS 16

static void set_err(char *err, size_t cap, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(char *err, size_t cap, unsigned line, const char *fmt, ...)
{
    if (!err || cap == 0)
        return;
    int n = line ? snprintf(err, cap, "line %u: ", line) : 0;
    if (n < 0 || (size_t)n >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
}

static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > FDL_SCHEMA_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

/* Decimal digits only, value <= max. */
static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

/* Parses one `field` line (words[0] == "field") into f; false with err set on error. */
static bool parse_field(char **w, size_t nw, unsigned line, const fdl_schema *s, schema_field *f,
                        char *err, size_t err_cap)
{
    memset(f, 0, sizeof *f);
    if (nw < 4) {
        set_err(err, err_cap, line, "field wants: field NAME TYPE required|optional [options]");
        return false;
    }
    if (!name_valid(w[1])) {
        set_err(err, err_cap, line, "bad field name (1..%u of A-Z a-z 0-9 _ . -)", FDL_SCHEMA_MAX_NAME);
        return false;
    }
    for (size_t i = 0; i < s->n_fields; i++)
        if (strcmp(s->fields[i].name, w[1]) == 0) {
            set_err(err, err_cap, line, "duplicate field '%s'", w[1]);
            return false;
        }
    snprintf(f->name, sizeof f->name, "%s", w[1]);
    f->name_len = strlen(f->name);
    if (strcmp(w[2], "integer") == 0)
        f->type = FDL_SCHEMA_INTEGER;
    else if (strcmp(w[2], "number") == 0)
        f->type = FDL_SCHEMA_NUMBER;
    else if (strcmp(w[2], "string") == 0)
        f->type = FDL_SCHEMA_STRING;
    else if (strcmp(w[2], "boolean") == 0)
        f->type = FDL_SCHEMA_BOOLEAN;
    else {
        set_err(err, err_cap, line, "unknown type '%.40s' (integer, number, string, boolean)", w[2]);
        return false;
    }
    if (strcmp(w[3], "required") == 0)
        f->required = true;
    else if (strcmp(w[3], "optional") != 0) {
        set_err(err, err_cap, line, "say 'required' or 'optional' after the type, not '%.40s'", w[3]);
        return false;
    }
    f->maxlen = FDL_SCHEMA_MAX_STRING;
    bool has_maxlen = false;
    for (size_t i = 4; i < nw; i++) {
        const char *opt = w[i];
        if (strcmp(opt, "coerce") == 0) {
            if (f->coerce) {
                set_err(err, err_cap, line, "'coerce' given twice");
                return false;
            }
            f->coerce = true;
            continue;
        }
        bool is_min = strcmp(opt, "min") == 0, is_max = strcmp(opt, "max") == 0;
        bool is_maxlen = strcmp(opt, "maxlen") == 0;
        if (!is_min && !is_max && !is_maxlen) {
            set_err(err, err_cap, line, "unknown option '%.40s'", opt);
            return false;
        }
        if (i + 1 >= nw) {
            set_err(err, err_cap, line, "'%s' wants a value", opt);
            return false;
        }
        const char *val = w[++i];
        if (is_maxlen) {
            uint64_t v;
            if (f->type != FDL_SCHEMA_STRING) {
                set_err(err, err_cap, line, "maxlen applies to string fields only");
                return false;
            }
            if (has_maxlen || !parse_uint(val, FDL_SCHEMA_MAX_STRING, &v)) {
                set_err(err, err_cap, line, "maxlen wants one value 0..%u", FDL_SCHEMA_MAX_STRING);
                return false;
            }
            has_maxlen = true;
            f->maxlen = (uint32_t)v;
            continue;
        }
        if (f->type != FDL_SCHEMA_INTEGER && f->type != FDL_SCHEMA_NUMBER) {
            set_err(err, err_cap, line, "%s applies to integer and number fields only", opt);
            return false;
        }
        if ((is_min && f->has_min) || (is_max && f->has_max)) {
            set_err(err, err_cap, line, "'%s' given twice", opt);
            return false;
        }
        const uint8_t *v = (const uint8_t *)val;
        if (f->type == FDL_SCHEMA_INTEGER) {
            int64_t x;
            if (fdl_jv_number_int(v, strlen(val), &x) != FDL_JV_OK) {
                set_err(err, err_cap, line, "%s wants an integer in int64, not '%.40s'", opt, val);
                return false;
            }
            if (is_min)
                f->imin = x;
            else
                f->imax = x;
        } else {
            double x;
            if (fdl_jv_number_double(v, strlen(val), &x) != FDL_JV_OK) {
                set_err(err, err_cap, line, "%s wants a finite JSON number, not '%.40s'", opt, val);
                return false;
            }
            if (is_min)
                f->dmin = x;
            else
                f->dmax = x;
        }
        if (is_min)
            f->has_min = true;
        else
            f->has_max = true;
    }
    if (f->has_min && f->has_max &&
        (f->type == FDL_SCHEMA_INTEGER ? f->imin > f->imax : f->dmin > f->dmax)) {
        set_err(err, err_cap, line, "min is above max");
        return false;
    }
    return true;
}

void fdl_schema_set_free(fdl_schema_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++)
        fdl_free(set->schemas[i]);
    fdl_free(set);
}

fdl_schema_status fdl_schema_set_parse(const char *text, size_t len, fdl_schema_set **out,
                                       char *err, size_t err_cap)
{
    fdl_schema_status st = FDL_SCHEMA_SYNTAX;
    fdl_schema_set *set = NULL;
    fdl_schema *cur = NULL;
    bool cur_has_maxbytes = false;
    unsigned lineno = 0;
    if (err && err_cap)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!out || (!text && len > 0)) {
        set_err(err, err_cap, 0, "bad argument");
        return FDL_SCHEMA_BAD_ARG;
    }
    if (len > FDL_SCHEMA_MAX_TEXT) {
        set_err(err, err_cap, 0, "schema text above %u bytes", FDL_SCHEMA_MAX_TEXT);
        goto cleanup;
    }
    set = fdl_calloc(1, sizeof *set);
    if (!set) {
        st = FDL_SCHEMA_NO_MEMORY;
        set_err(err, err_cap, 0, "out of memory");
        goto cleanup;
    }

    size_t pos = 0;
    while (pos < len) {
        lineno++;
        size_t eol = pos;
        while (eol < len && text[eol] != '\n')
            eol++;
        size_t n = eol - pos;
        if (n > 0 && text[pos + n - 1] == '\r')
            n--;
        if (n > FDL_SCHEMA_MAX_LINE) {
            set_err(err, err_cap, lineno, "line longer than %u bytes", FDL_SCHEMA_MAX_LINE);
            goto cleanup;
        }
        char line[FDL_SCHEMA_MAX_LINE + 1];
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos = eol < len ? eol + 1 : eol;
        if (memchr(line, '\0', n)) {
            set_err(err, err_cap, lineno, "NUL byte in schema text");
            goto cleanup;
        }

        char *w[MAX_WORDS];
        size_t nw = 0;
        char *save = NULL;
        for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
            if (nw == MAX_WORDS) {
                set_err(err, err_cap, lineno, "more than %d words", MAX_WORDS);
                goto cleanup;
            }
            w[nw++] = tok;
        }
        if (nw == 0 || w[0][0] == '#')
            continue;

        if (strcmp(w[0], "topic") == 0) {
            if (nw != 2 || strlen(w[1]) > FDL_SCHEMA_MAX_TOPIC || fdl_topic_validate_filter(w[1], strlen(w[1])) != FDL_TOPIC_OK) {
                set_err(err, err_cap, lineno, "topic wants one MQTT filter of at most %u bytes",
                        FDL_SCHEMA_MAX_TOPIC);
                goto cleanup;
            }
            if (cur && cur->n_fields == 0) {
                set_err(err, err_cap, lineno, "schema for '%.60s' has no fields", cur->topic);
                goto cleanup;
            }
            if (set->n == FDL_SCHEMA_MAX_SCHEMAS) {
                set_err(err, err_cap, lineno, "more than %u schemas", FDL_SCHEMA_MAX_SCHEMAS);
                goto cleanup;
            }
            cur = fdl_calloc(1, sizeof *cur);
            if (!cur) {
                st = FDL_SCHEMA_NO_MEMORY;
                set_err(err, err_cap, lineno, "out of memory");
                goto cleanup;
            }
            set->schemas[set->n++] = cur;
            snprintf(cur->topic, sizeof cur->topic, "%s", w[1]);
            cur->max_bytes = FDL_SCHEMA_DEFAULT_BYTES;
            cur_has_maxbytes = false;
            continue;
        }
        if (!cur) {
            set_err(err, err_cap, lineno, "'%.40s' before the first 'topic' line", w[0]);
            goto cleanup;
        }
        if (strcmp(w[0], "maxbytes") == 0) {
            uint64_t v;
            if (nw != 2 || cur_has_maxbytes || !parse_uint(w[1], FDL_SCHEMA_MAX_BYTES, &v) || v == 0) {
                set_err(err, err_cap, lineno, "maxbytes wants one value 1..%u, once per schema",
                        FDL_SCHEMA_MAX_BYTES);
                goto cleanup;
            }
            cur->max_bytes = (size_t)v;
            cur_has_maxbytes = true;
            continue;
        }
        if (strcmp(w[0], "field") == 0) {
            if (cur->n_fields == FDL_SCHEMA_MAX_FIELDS) {
                set_err(err, err_cap, lineno, "more than %u fields", FDL_SCHEMA_MAX_FIELDS);
                goto cleanup;
            }
            if (!parse_field(w, nw, lineno, cur, &cur->fields[cur->n_fields], err, err_cap))
                goto cleanup;
            cur->n_fields++;
            continue;
        }
        set_err(err, err_cap, lineno, "unknown directive '%.40s' (topic, maxbytes, field)", w[0]);
        goto cleanup;
    }
    if (!cur) {
        set_err(err, err_cap, 0, "no 'topic' line");
        goto cleanup;
    }
    if (cur->n_fields == 0) {
        set_err(err, err_cap, lineno, "schema for '%.60s' has no fields", cur->topic);
        goto cleanup;
    }
    *out = set;
    set = NULL;
    st = FDL_SCHEMA_OK;

cleanup:
    fdl_schema_set_free(set);
    return st;
}

fdl_schema_status fdl_schema_set_default(fdl_schema_set **out)
{
    return fdl_schema_set_parse(fdl_schema_default_text, sizeof fdl_schema_default_text - 1, out,
                                NULL, 0);
}

const fdl_schema *fdl_schema_set_match(const fdl_schema_set *set, const char *topic,
                                       size_t topic_len)
{
    if (!set || (!topic && topic_len > 0))
        return NULL;
    for (size_t i = 0; i < set->n; i++)
        if (fdl_topic_matches(set->schemas[i]->topic, strlen(set->schemas[i]->topic), topic ? topic : "", topic_len))
            return set->schemas[i];
    return NULL;
}

size_t fdl_schema_set_count(const fdl_schema_set *set)
{
    return set ? set->n : 0;
}

const fdl_schema *fdl_schema_set_get(const fdl_schema_set *set, size_t i)
{
    return set && i < set->n ? set->schemas[i] : NULL;
}

const char *fdl_schema_topic(const fdl_schema *s)
{
    return s ? s->topic : "";
}

size_t fdl_schema_max_bytes(const fdl_schema *s)
{
    return s ? s->max_bytes : 0;
}

/* Widest text of one value, per type (int64 minimum; a %.17g double with exponent). */
#define INT_TEXT_MAX 20u
#define NUM_TEXT_MAX 24u

size_t fdl_schema_output_max(const fdl_schema *s)
{
    if (!s)
        return 0;
    size_t n = 2;   /* braces */
    for (size_t i = 0; i < s->n_fields; i++) {
        const schema_field *f = &s->fields[i];
        n += (i ? 1 : 0) + f->name_len + 3;   /* comma between members, "name": */
        switch (f->type) {
        case FDL_SCHEMA_INTEGER: n += INT_TEXT_MAX; break;
        case FDL_SCHEMA_NUMBER: n += NUM_TEXT_MAX; break;
        case FDL_SCHEMA_BOOLEAN: n += 5; break;
        case FDL_SCHEMA_STRING: n += 2 + 6 * (size_t)f->maxlen; break;   /* \u00XX worst case */
        }
    }
    /* Output above max_bytes is refused (TOO_LARGE), so it never needs more; + the NUL. */
    return (n < s->max_bytes ? n : s->max_bytes) + 1;
}

/* ------------------------------------------------------------------------- */
/* Applying a schema                                                          */
/* ------------------------------------------------------------------------- */

/*
 * Bounded output. On overflow it stops writing and remembers (NO_SPACE at the
 * end), but keeps counting the length the whole text needs, so a text above
 * the payload ceiling is told apart from a small buffer.
 */
typedef struct outbuf {
    char *p;
    size_t cap, len;
    size_t need;   /* bytes the whole text takes, written or not */
    bool full;
} outbuf;

static void put(outbuf *o, const char *s, size_t n)
{
    o->need += n;
    if (o->full || o->cap - o->len < n + 1) {   /* keep room for the NUL */
        o->full = true;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/*
 * Writes s[0..n) (valid UTF-8) as a JSON string, escaped as RFC 8785 (JCS)
 * does: \" \\ \b \f \n \r \t, other controls as \u00xx, all else raw. Every
 * escape here is no longer than the shortest way to write the character in
 * the payload, so a string never outgrows the raw-string ceiling it passed.
 */
static void put_str(outbuf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(o, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(o, s + run, i - run);
        const char *shortform = NULL;
        switch (c) {
        case '"': shortform = "\\\""; break;
        case '\\': shortform = "\\\\"; break;
        case '\b': shortform = "\\b"; break;
        case '\f': shortform = "\\f"; break;
        case '\n': shortform = "\\n"; break;
        case '\r': shortform = "\\r"; break;
        case '\t': shortform = "\\t"; break;
        default: break;
        }
        if (shortform) {
            put(o, shortform, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(o, e, 6);
        }
        run = i + 1;
    }
    put(o, s + run, n - run);
    put(o, "\"", 1);
}

/* Shortest text that reads back as exactly v, with '.' whatever the locale. */
static size_t format_double(double v, char *s, size_t cap)
{
    if (v == 0.0)
        v = 0.0;   /* -0 -> 0 */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, cap, "%.*g", prec, v);
        /* strtod shares snprintf's locale, so compare before fixing the point. */
        if (prec == 17 || strtod(s, NULL) == v)
            break;
    }
    /* Replace the locale's decimal point (any run of other characters) by '.'. */
    size_t o = 0;
    for (size_t i = 0; s[i];) {
        char c = s[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E') {
            s[o++] = c;
            i++;
            continue;
        }
        s[o++] = '.';
        while (s[i] && !((s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '+' ||
                         s[i] == 'e' || s[i] == 'E'))
            i++;
    }
    s[o] = '\0';
    return o;
}

typedef struct apply_ctx {
    const uint8_t *buf;
    outbuf *out;
    uint32_t coerced;
} apply_ctx;

/* Number text of a value token: its own text, or (coerce) a string's decoded content. */
static bool number_text(const apply_ctx *c, const fdl_jv_tok *v, bool coerce, char *tmp,
                        size_t cap, const uint8_t **s, size_t *n)
{
    if (v->type == FDL_JV_NUMBER) {
        *s = c->buf + v->start;
        *n = v->len;
        return true;
    }
    if (v->type != FDL_JV_STRING || !coerce || v->size > FDL_JV_MAX_NUMBER_LEN)
        return false;
    if (fdl_jv_str_copy(c->buf, v, tmp, cap, n) != FDL_JV_OK)
        return false;
    *s = (const uint8_t *)tmp;
    return true;
}

/* Checks one field's value and writes it; returns OK or the field's verdict. */
static fdl_schema_status apply_field(apply_ctx *c, const schema_field *f, const fdl_jv_tok *v)
{
    char tmp[FDL_SCHEMA_MAX_STRING + 1];
    const uint8_t *s;
    size_t n;
    switch (f->type) {
    case FDL_SCHEMA_INTEGER: {
        if (!number_text(c, v, f->coerce, tmp, sizeof tmp, &s, &n))
            return FDL_SCHEMA_WRONG_TYPE;
        int64_t x;
        fdl_jv_status js = fdl_jv_number_int(s, n, &x);
        if (js == FDL_JV_MALFORMED || js == FDL_JV_NOT_INTEGER)
            return FDL_SCHEMA_WRONG_TYPE;
        if (js != FDL_JV_OK)
            return FDL_SCHEMA_OUT_OF_BOUNDS;
        if ((f->has_min && x < f->imin) || (f->has_max && x > f->imax))
            return FDL_SCHEMA_OUT_OF_BOUNDS;
        int k = snprintf(tmp, sizeof tmp, "%lld", (long long)x);
        put(c->out, tmp, (size_t)k);
        break;
    }
    case FDL_SCHEMA_NUMBER: {
        if (!number_text(c, v, f->coerce, tmp, sizeof tmp, &s, &n))
            return FDL_SCHEMA_WRONG_TYPE;
        double x;
        fdl_jv_status js = fdl_jv_number_double(s, n, &x);
        if (js == FDL_JV_MALFORMED)
            return FDL_SCHEMA_WRONG_TYPE;
        if (js != FDL_JV_OK)
            return FDL_SCHEMA_OUT_OF_BOUNDS;
        if ((f->has_min && x < f->dmin) || (f->has_max && x > f->dmax))
            return FDL_SCHEMA_OUT_OF_BOUNDS;
        char num[40];
        size_t k = format_double(x, num, sizeof num);
        put(c->out, num, k);
        break;
    }
    case FDL_SCHEMA_STRING: {
        if (v->type == FDL_JV_STRING) {
            if (v->size > f->maxlen)
                return FDL_SCHEMA_OUT_OF_BOUNDS;
            if (fdl_jv_str_copy(c->buf, v, tmp, sizeof tmp, &n) != FDL_JV_OK)
                return FDL_SCHEMA_OUT_OF_BOUNDS;   /* cannot happen: maxlen <= MAX_STRING */
            if (memchr(tmp, '\0', n))
                return FDL_SCHEMA_WRONG_TYPE;
            put_str(c->out, tmp, n);
            return FDL_SCHEMA_OK;
        }
        if (!f->coerce || (v->type != FDL_JV_NUMBER && v->type != FDL_JV_TRUE &&
                           v->type != FDL_JV_FALSE))
            return FDL_SCHEMA_WRONG_TYPE;
        if (v->len > f->maxlen)
            return FDL_SCHEMA_OUT_OF_BOUNDS;
        put_str(c->out, (const char *)c->buf + v->start, v->len);
        c->coerced++;
        return FDL_SCHEMA_OK;
    }
    case FDL_SCHEMA_BOOLEAN: {
        bool b;
        if (v->type == FDL_JV_TRUE || v->type == FDL_JV_FALSE)
            b = v->type == FDL_JV_TRUE;
        else if (f->coerce && fdl_jv_str_eq(c->buf, v, "true", 4))
            b = true;
        else if (f->coerce && fdl_jv_str_eq(c->buf, v, "false", 5))
            b = false;
        else
            return FDL_SCHEMA_WRONG_TYPE;
        put(c->out, b ? "true" : "false", b ? 4 : 5);
        if (v->type == FDL_JV_STRING)
            c->coerced++;
        return FDL_SCHEMA_OK;
    }
    }
    if (v->type == FDL_JV_STRING)
        c->coerced++;
    return FDL_SCHEMA_OK;
}

static fdl_schema_status verdict_out(fdl_schema_verdict *v, fdl_schema_status st,
                                     const schema_field *f, size_t offset)
{
    v->status = st;
    if (f)
        snprintf(v->field, sizeof v->field, "%s", f->name);
    v->offset = offset;
    return st;
}

fdl_schema_status fdl_schema_apply(const fdl_schema *s, const uint8_t *payload, size_t len,
                                   char *out, size_t out_cap, size_t *out_len,
                                   fdl_schema_verdict *verdict)
{
    if (out_len)
        *out_len = 0;
    if (verdict)
        memset(verdict, 0, sizeof *verdict);
    if (!s || !out_len || !verdict || (!payload && len > 0) || (!out && out_cap > 0)) {
        if (verdict)
            verdict->status = FDL_SCHEMA_BAD_ARG;
        return FDL_SCHEMA_BAD_ARG;
    }

    fdl_jv_tok tok[FDL_SCHEMA_MAX_TOKENS];
    const fdl_jv_limits lim = {s->max_bytes, FDL_SCHEMA_MAX_DEPTH, FDL_SCHEMA_MAX_TOKENS,
                               FDL_SCHEMA_MAX_STRING};
    size_t ntok = 0, err_at = 0;
    fdl_jv_status js = fdl_jv_parse(payload, len, &lim, tok, FDL_SCHEMA_MAX_TOKENS, &ntok, &err_at);
    switch (js) {
    case FDL_JV_OK: break;
    case FDL_JV_TOO_DEEP: return verdict_out(verdict, FDL_SCHEMA_TOO_DEEP, NULL, err_at);
    case FDL_JV_TOO_LARGE: return verdict_out(verdict, FDL_SCHEMA_TOO_LARGE, NULL, err_at);
    default: return verdict_out(verdict, FDL_SCHEMA_MALFORMED, NULL, err_at);
    }
    if (tok[0].type != FDL_JV_OBJECT)
        return verdict_out(verdict, FDL_SCHEMA_NOT_OBJECT, NULL,
                           tok[0].type == FDL_JV_STRING ? tok[0].start - 1u : tok[0].start);

    /* Which member holds each field (keys are unique: the parser refuses duplicates). */
    uint32_t at[FDL_SCHEMA_MAX_FIELDS] = {0};
    uint32_t dropped = 0;
    for (uint32_t k = 1; k < tok[0].end; k = tok[k + 1].end) {
        size_t i;
        for (i = 0; i < s->n_fields; i++)
            if (fdl_jv_str_eq(payload, &tok[k], s->fields[i].name, s->fields[i].name_len))
                break;
        if (i == s->n_fields)
            dropped++;
        else
            at[i] = k + 1;   /* the value's token; 0 means absent */
    }

    outbuf o = {out, out_cap, 0, 0, false};
    apply_ctx c = {payload, &o, 0};
    put(&o, "{", 1);
    bool first = true;
    for (size_t i = 0; i < s->n_fields; i++) {
        const schema_field *f = &s->fields[i];
        if (!at[i]) {
            if (f->required)
                return verdict_out(verdict, FDL_SCHEMA_MISSING, f, 0);
            continue;
        }
        const fdl_jv_tok *v = &tok[at[i]];
        if (!first)
            put(&o, ",", 1);
        first = false;
        put(&o, "\"", 1);
        put(&o, f->name, f->name_len);
        put(&o, "\":", 2);
        fdl_schema_status st = apply_field(&c, f, v);
        if (st != FDL_SCHEMA_OK) {
            /* A string's start is inside its quotes: point at the opening quote. */
            size_t off = v->type == FDL_JV_STRING ? v->start - 1u : v->start;
            return verdict_out(verdict, st, f, off);
        }
    }
    put(&o, "}", 1);
    /*
     * The canonical text can be longer than the payload (-9e18 becomes
     * -9000000000000000000). Holding it to the same ceiling keeps the promise
     * that an accepted output is accepted again, and bounds what subscribers get.
     */
    if (o.need > s->max_bytes)
        return verdict_out(verdict, FDL_SCHEMA_TOO_LARGE, NULL, 0);
    if (o.full)
        return verdict_out(verdict, FDL_SCHEMA_NO_SPACE, NULL, 0);
    out[o.len] = '\0';
    *out_len = o.len;
    verdict->dropped = dropped;
    verdict->coerced = c.coerced;
    return verdict_out(verdict, FDL_SCHEMA_OK, NULL, 0);
}
