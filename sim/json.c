/* sim/json.c — bounded streaming JSON writer (see json.h). */
#include "sim/json.h"

#include "sim/alloc.h"
#include "sim/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* First allocation; doubling from here reaches typical report sizes in a few steps. */
#define INITIAL_CAP 256

enum { KIND_OBJ = 1, KIND_ARR = 2 };

struct fdl_json {
    char *buf;        /* NUL-terminated text, NULL until the first byte */
    size_t len;       /* bytes of text, without the NUL */
    size_t cap;       /* bytes allocated for buf */
    size_t max;       /* ceiling for len */
    int err;          /* sticky fdl_json_status */
    int pretty;
    int done;         /* the top-level value is complete */
    unsigned depth;   /* open containers */
    unsigned char kind[FDL_JSON_MAX_DEPTH];   /* KIND_OBJ / KIND_ARR per level */
    unsigned char used[FDL_JSON_MAX_DEPTH];   /* level has at least one member */
};

static const char *const status_text[] = {
    [FDL_JSON_OK] = "ok",
    [FDL_JSON_TOO_LARGE] = "document exceeds its maximum size",
    [FDL_JSON_NO_MEMORY] = "out of memory",
    [FDL_JSON_UNBALANCED] = "end without a matching begin",
    [FDL_JSON_BAD_KEY] = "key missing inside an object, or given outside one",
    [FDL_JSON_TOO_DEEP] = "nesting too deep",
    [FDL_JSON_AFTER_END] = "more than one top-level value",
};

const char *fdl_json_strerror(int status)
{
    if (status < 0 || (size_t)status >= sizeof status_text / sizeof status_text[0])
        return "unknown JSON writer status";
    return status_text[status];
}

fdl_json *fdl_json_new(size_t max_bytes)
{
    fdl_json *j = fdl_calloc(1, sizeof *j);
    /* Keeps max + 1 (room for the NUL) and the doubling in reserve() from overflowing. */
    if (j)
        j->max = max_bytes < SIZE_MAX / 2 ? max_bytes : SIZE_MAX / 2;
    return j;
}

void fdl_json_free(fdl_json *j)
{
    if (!j)
        return;
    fdl_free(j->buf);
    fdl_free(j);
}

void fdl_json_set_pretty(fdl_json *j, int on)
{
    if (j)
        j->pretty = on != 0;
}

int fdl_json_error(const fdl_json *j)
{
    return j ? j->err : FDL_JSON_NO_MEMORY;
}

static void fail(fdl_json *j, int err)
{
    if (!j->err)
        j->err = err;
}

/* Makes room for n more bytes plus the NUL; 0 on success, else the error is set. */
static int reserve(fdl_json *j, size_t n)
{
    if (j->err)
        return -1;
    if (n > j->max || j->len > j->max - n) {
        fail(j, FDL_JSON_TOO_LARGE);
        return -1;
    }
    size_t need = j->len + n + 1; /* cannot overflow: len + n <= max < SIZE_MAX */
    if (need <= j->cap)
        return 0;
    size_t ceiling = j->max + 1;
    size_t cap = j->cap ? j->cap : INITIAL_CAP;
    while (cap < need)
        cap = cap > ceiling / 2 ? ceiling : cap * 2;
    if (cap > ceiling)
        cap = ceiling;
    char *nb = fdl_realloc(j->buf, cap);
    if (!nb) {
        fail(j, FDL_JSON_NO_MEMORY);
        return -1;
    }
    j->buf = nb;
    j->cap = cap;
    return 0;
}

static void put(fdl_json *j, const char *s, size_t n)
{
    if (reserve(j, n) != 0)
        return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void puts_(fdl_json *j, const char *s)
{
    put(j, s, strlen(s));
}

static void indent(fdl_json *j, unsigned levels)
{
    static const char spaces[] = "                                ";
    size_t n = (size_t)levels * 2;
    put(j, "\n", 1);
    while (n > 0) {
        size_t k = n < sizeof spaces - 1 ? n : sizeof spaces - 1;
        put(j, spaces, k);
        n -= k;
    }
}

/*
 * Length of the valid UTF-8 sequence at s (n bytes available), or 0 when s starts
 * an invalid one; then *skip is the length of the maximal invalid subpart to
 * replace by one U+FFFD (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal
 * Subparts").
 */
static size_t utf8_valid(const unsigned char *s, size_t n, size_t *skip)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;      /* no overlong forms */
        else if (c == 0xED)
            hi = 0x9F;      /* no UTF-16 surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;      /* no overlong forms */
        else if (c == 0xF4)
            hi = 0x8F;      /* nothing above U+10FFFF */
    } else {
        *skip = 1;          /* 80..BF alone, C0, C1, F5..FF */
        return 0;
    }
    size_t i = 1;
    for (; i < need && i < n; i++) {
        unsigned char lo_i = i == 1 ? lo : 0x80, hi_i = i == 1 ? hi : 0xBF;
        if (s[i] < lo_i || s[i] > hi_i)
            break;
    }
    if (i == need)
        return need;
    *skip = i;
    return 0;
}

static void put_string(fdl_json *j, const char *str)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    put(j, "\"", 1);
    size_t i = 0;
    while (i < n && !j->err) {
        /* Copy the longest run that needs no escaping in one go. */
        size_t run = i;
        for (;;) {
            if (run >= n)
                break;
            unsigned char c = s[run];
            if (c < 0x20 || c == '"' || c == '\\')
                break;
            size_t skip, ok = utf8_valid(s + run, n - run, &skip);
            if (!ok)
                break;
            run += ok;
        }
        if (run > i) {
            put(j, str + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(j, esc, 2);
            i++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(j, esc, 6);
            i++;
        } else {
            size_t skip = 1;
            utf8_valid(s + i, n - i, &skip);
            put(j, "\xEF\xBF\xBD", 3); /* U+FFFD */
            i += skip;
        }
    }
    put(j, "\"", 1);
}

/*
 * Everything a value needs before its own text: the comma, the indentation and
 * the key. Returns 0 when the value may be written, -1 (error set) otherwise.
 */
static int begin_value(fdl_json *j, const char *key)
{
    if (!j || j->err)
        return -1;
    if (j->depth == 0) {
        if (j->done) {
            fail(j, FDL_JSON_AFTER_END);
            return -1;
        }
        if (key) {
            fail(j, FDL_JSON_BAD_KEY);
            return -1;
        }
        return 0;
    }
    unsigned top = j->depth - 1;
    int in_obj = j->kind[top] == KIND_OBJ;
    if (in_obj != (key != NULL)) {
        fail(j, FDL_JSON_BAD_KEY);
        return -1;
    }
    if (j->used[top])
        put(j, ",", 1);
    j->used[top] = 1;
    if (j->pretty)
        indent(j, j->depth);
    if (key) {
        put_string(j, key);
        put(j, j->pretty ? ": " : ":", j->pretty ? 2 : 1);
    }
    return j->err ? -1 : 0;
}

/* After a scalar or a closed container: at depth 0 the document is complete. */
static void end_value(fdl_json *j)
{
    if (j->depth == 0 && !j->err)
        j->done = 1;
}

static void open_container(fdl_json *j, const char *key, int kind)
{
    if (begin_value(j, key) != 0)
        return;
    if (j->depth >= FDL_JSON_MAX_DEPTH) {
        fail(j, FDL_JSON_TOO_DEEP);
        return;
    }
    put(j, kind == KIND_OBJ ? "{" : "[", 1);
    j->kind[j->depth] = (unsigned char)kind;
    j->used[j->depth] = 0;
    j->depth++;
}

static void close_container(fdl_json *j, int kind)
{
    if (!j || j->err)
        return;
    if (j->depth == 0 || j->kind[j->depth - 1] != kind) {
        fail(j, FDL_JSON_UNBALANCED);
        return;
    }
    j->depth--;
    if (j->pretty && j->used[j->depth])
        indent(j, j->depth);
    put(j, kind == KIND_OBJ ? "}" : "]", 1);
    end_value(j);
}

void fdl_json_obj_begin(fdl_json *j, const char *key)
{
    open_container(j, key, KIND_OBJ);
}

void fdl_json_obj_end(fdl_json *j)
{
    close_container(j, KIND_OBJ);
}

void fdl_json_arr_begin(fdl_json *j, const char *key)
{
    open_container(j, key, KIND_ARR);
}

void fdl_json_arr_end(fdl_json *j)
{
    close_container(j, KIND_ARR);
}

/* Writes one complete scalar whose text is s. */
static void scalar(fdl_json *j, const char *key, const char *s)
{
    if (begin_value(j, key) != 0)
        return;
    puts_(j, s);
    end_value(j);
}

void fdl_json_str(fdl_json *j, const char *key, const char *val)
{
    if (!val) {
        scalar(j, key, "null");
        return;
    }
    if (begin_value(j, key) != 0)
        return;
    put_string(j, val);
    end_value(j);
}

void fdl_json_int(fdl_json *j, const char *key, int64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRId64, v);
    scalar(j, key, s);
}

void fdl_json_uint(fdl_json *j, const char *key, uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    scalar(j, key, s);
}

/* printf and strtod use the locale's decimal point; JSON needs '.'. */
static void fix_decimal_point(char *s)
{
    for (; *s; s++)
        if (*s == ',')
            *s = '.';
}

void fdl_json_num(fdl_json *j, const char *key, double v)
{
    if (!isfinite(v)) {
        scalar(j, key, "null");
        return;
    }
    char s[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        /* strtod shares printf's locale, so compare before fixing the point. */
        if (prec == 17 || strtod(s, NULL) == v)
            break;
    }
    fix_decimal_point(s);
    scalar(j, key, s);
}

void fdl_json_bool(fdl_json *j, const char *key, int v)
{
    scalar(j, key, v ? "true" : "false");
}

void fdl_json_null(fdl_json *j, const char *key)
{
    scalar(j, key, "null");
}

const char *fdl_json_text(const fdl_json *j, size_t *len)
{
    if (!j || j->err || j->depth != 0 || !j->done || !j->buf)
        return NULL;
    if (len)
        *len = j->len;
    return j->buf;
}


int fdl_json_write_file(const fdl_json *j, const char *path)
{
    size_t len;
    const char *text = fdl_json_text(j, &len);
    if (!text || !path || !*path)
        return -EINVAL;
    struct iovec iov[2] = {{(void *)text, len}, {(void *)"\n", 1}};
    return fdl_write_file_atomicv(path, iov, 2, 0644);
}
