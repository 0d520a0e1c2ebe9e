/*
 * tests/test_jv.c — unit tests for the strict JSON parser (cloud/json.h).
 *
 * Data-driven: one cmocka test per line of
 *   tests/vectors/json/parse.txt    fdl_jv_parse
 *   tests/vectors/json/strings.txt  fdl_jv_str_copy / fdl_jv_str_eq
 *   tests/vectors/json/numbers.txt  fdl_jv_number_int / fdl_jv_number_double
 * (formats at the top of each file), then hand-written tests for the token
 * tree, argument checks and ceilings that are easier to say in C.
 */
#include "testutil.h"

#include "cloud/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* Vector files                                                               */
/* ------------------------------------------------------------------------- */

#define MAX_VECTORS 600
#define MAX_DATA 70000   /* decoded payload bytes; above the default 64 KiB ceiling */

typedef struct vector {
    char name[80];
    char status[24];
    char opts[160];    /* key=value words between the status and " | " */
    char *text;        /* after " | " (and before " => "), undecoded; heap */
    char *expect;      /* after " => ", or NULL; heap */
} vector;

static vector g_vec[MAX_VECTORS];
static struct CMUnitTest g_tests[MAX_VECTORS];
static size_t g_n_vec;

/*
 * Line format: STATUS [key=value ...] | TEXT [ => EXPECT]
 * '#' lines and blank lines are skipped; only the final newline is stripped,
 * so TEXT keeps its spaces (use %20 for a trailing one).
 */
static bool load_vectors(const char *rel, const char *prefix)
{
    char path[4096];
    fdl_test_src_path(rel, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return false;
    }
    static char line[8192];
    unsigned lineno = 0;
    size_t before = g_n_vec;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *bar = strstr(line, " | ");
        if (!bar || g_n_vec == MAX_VECTORS) {
            fprintf(stderr, "%s:%u: no ' | ' or too many vectors\n", path, lineno);
            ok = false;
            break;
        }
        *bar = '\0';
        vector *v = &g_vec[g_n_vec++];
        memset(v, 0, sizeof *v);
        snprintf(v->name, sizeof v->name, "%s:%u", prefix, lineno);
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = '\0';
            snprintf(v->opts, sizeof v->opts, "%s", sp + 1);
        }
        snprintf(v->status, sizeof v->status, "%s", line);
        char *text = bar + 3;
        char *arrow = strstr(text, " => ");
        if (arrow) {
            *arrow = '\0';
            v->expect = fdl_test_strdup(arrow + 4);
        }
        v->text = fdl_test_strdup(text);
    }
    fclose(f);
    if (ok && g_n_vec - before < 10) {
        fprintf(stderr, "%s: only %zu vectors\n", path, g_n_vec - before);
        ok = false;
    }
    return ok;
}

/* Value of key=... in opts, or NULL. */
static const char *opt(const vector *v, const char *key, char *buf, size_t cap)
{
    size_t kn = strlen(key);
    for (const char *p = v->opts; p && *p;) {
        while (*p == ' ')
            p++;
        if (strncmp(p, key, kn) == 0 && p[kn] == '=') {
            const char *e = strchr(p, ' ');
            size_t n = e ? (size_t)(e - p - kn - 1) : strlen(p + kn + 1);
            if (n >= cap)
                n = cap - 1;
            memcpy(buf, p + kn + 1, n);
            buf[n] = '\0';
            return buf;
        }
        p = strchr(p, ' ');
    }
    return NULL;
}

static fdl_jv_status status_from(const char *s)
{
    static const struct { const char *name; fdl_jv_status st; } tab[] = {
        {"OK", FDL_JV_OK}, {"MALFORMED", FDL_JV_MALFORMED}, {"TOO_DEEP", FDL_JV_TOO_DEEP},
        {"TOO_LARGE", FDL_JV_TOO_LARGE}, {"NOT_INTEGER", FDL_JV_NOT_INTEGER},
        {"OUT_OF_RANGE", FDL_JV_OUT_OF_RANGE}, {"BAD_ARG", FDL_JV_BAD_ARG},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strcmp(s, tab[i].name) == 0)
            return tab[i].st;
    fail_msg("unknown status '%s'", s);
    return FDL_JV_BAD_ARG;
}

static uint8_t g_data[MAX_DATA];
static fdl_jv_tok g_tok[4096];

/* Token invariants every successful parse must keep. */
static void check_tree(const uint8_t *buf, size_t len, const fdl_jv_tok *tok, size_t n)
{
    assert_true(n >= 1);
    assert_int_equal(tok[0].parent, FDL_JV_NONE);
    assert_int_equal(tok[0].end, n);
    for (size_t i = 0; i < n; i++) {
        const fdl_jv_tok *t = &tok[i];
        assert_true((size_t)t->start + t->len <= len);
        assert_true(t->end > i && t->end <= n);
        if (i > 0) {
            assert_true(t->parent < i);
            assert_true(t->end <= tok[t->parent].end);
        }
        if (t->type == FDL_JV_OBJECT || t->type == FDL_JV_ARRAY) {
            assert_int_equal(buf[t->start], t->type == FDL_JV_OBJECT ? '{' : '[');
            assert_int_equal(buf[t->start + t->len - 1], t->type == FDL_JV_OBJECT ? '}' : ']');
            /* size counts the direct children (members: key + value). */
            uint32_t kids = 0;
            for (uint32_t k = (uint32_t)i + 1; k < t->end; k = tok[k].end) {
                assert_int_equal(tok[k].parent, i);
                kids++;
            }
            assert_int_equal(kids, t->type == FDL_JV_OBJECT ? 2 * t->size : t->size);
        } else if (t->type == FDL_JV_STRING) {
            assert_int_equal(buf[t->start - 1], '"');
            assert_int_equal(buf[t->start + t->len], '"');
            assert_int_equal(t->end, i + 1);
            char tmp[8192];
            size_t dl = 0;
            if (t->size < sizeof tmp) {
                assert_int_equal(fdl_jv_str_copy(buf, t, tmp, sizeof tmp, &dl), FDL_JV_OK);
                assert_int_equal(dl, t->size);
                assert_true(fdl_jv_str_eq(buf, t, tmp, dl));
            }
            bool is_key = tok[t->parent < n ? t->parent : 0].type == FDL_JV_OBJECT && i > 0 &&
                          (t->flags & FDL_JV_F_KEY);
            if (t->flags & FDL_JV_F_KEY)
                assert_true(is_key);
        } else {
            assert_int_equal(t->end, i + 1);
        }
    }
}

static void run_parse(void **state)
{
    const vector *v = *state;
    size_t len = 0;
    if (!fdl_test_decode_pct(v->text, g_data, sizeof g_data, &len))
        fail_msg("%s: bad vector text", v->name);
    char b[64];
    fdl_jv_limits lim = {FDL_JV_DEFAULT_MAX_BYTES, FDL_JV_DEFAULT_MAX_DEPTH,
                         FDL_JV_DEFAULT_MAX_TOKENS, FDL_JV_DEFAULT_MAX_STRING};
    if (opt(v, "bytes", b, sizeof b))
        lim.max_bytes = strtoul(b, NULL, 10);
    if (opt(v, "depth", b, sizeof b))
        lim.max_depth = (uint32_t)strtoul(b, NULL, 10);
    if (opt(v, "tokens", b, sizeof b))
        lim.max_tokens = (uint32_t)strtoul(b, NULL, 10);
    if (opt(v, "string", b, sizeof b))
        lim.max_string = (uint32_t)strtoul(b, NULL, 10);
    size_t cap = sizeof g_tok / sizeof g_tok[0];
    if (opt(v, "cap", b, sizeof b))
        cap = strtoul(b, NULL, 10);

    size_t ntok = 999, at = 999;
    fdl_jv_status want = status_from(v->status);
    fdl_jv_status got = fdl_jv_parse(g_data, len, &lim, g_tok, cap, &ntok, &at);
    if (got != want)
        fail_msg("%s: got %s (at %zu), want %s", v->name, fdl_jv_strerror(got), at,
                 fdl_jv_strerror(want));
    if (opt(v, "at", b, sizeof b))
        assert_int_equal(at, strtoul(b, NULL, 10));
    if (got != FDL_JV_OK) {
        assert_int_equal(ntok, 0);
        return;
    }
    assert_int_equal(at, 0);
    if (opt(v, "ntok", b, sizeof b))
        assert_int_equal(ntok, strtoul(b, NULL, 10));
    if (opt(v, "type", b, sizeof b))
        assert_int_equal(g_tok[0].type, strtoul(b, NULL, 10));
    check_tree(g_data, len, g_tok, ntok);
    /* With default limits (and a big enough array) a valid small document still parses. */
    if (len <= FDL_JV_DEFAULT_MAX_BYTES && ntok <= FDL_JV_DEFAULT_MAX_TOKENS) {
        size_t n2 = 0;
        fdl_jv_status again = fdl_jv_parse(g_data, len, NULL, g_tok, cap, &n2, NULL);
        if (lim.max_depth <= FDL_JV_DEFAULT_MAX_DEPTH && lim.max_string <= FDL_JV_DEFAULT_MAX_STRING)
            assert_int_equal(again, FDL_JV_OK);
    }
}

/* strings.txt: the TEXT is a JSON document holding one string; EXPECT its decoded bytes. */
static void run_string(void **state)
{
    const vector *v = *state;
    size_t len = 0, elen = 0;
    static uint8_t want[MAX_DATA];
    if (!fdl_test_decode_pct(v->text, g_data, sizeof g_data, &len) ||
        (v->expect && !fdl_test_decode_pct(v->expect, want, sizeof want, &elen)))
        fail_msg("%s: bad vector text", v->name);
    size_t ntok = 0;
    fdl_jv_status want_st = status_from(v->status);
    fdl_jv_status got = fdl_jv_parse(g_data, len, NULL, g_tok, 16, &ntok, NULL);
    if (got != want_st)
        fail_msg("%s: got %s, want %s", v->name, fdl_jv_strerror(got), fdl_jv_strerror(want_st));
    if (got != FDL_JV_OK)
        return;
    assert_non_null(v->expect);
    assert_int_equal(ntok, 1);
    assert_int_equal(g_tok[0].type, FDL_JV_STRING);
    assert_int_equal(g_tok[0].size, elen);
    static char out[MAX_DATA];
    size_t olen = 0;
    assert_int_equal(fdl_jv_str_copy(g_data, &g_tok[0], out, elen + 1, &olen), FDL_JV_OK);
    assert_int_equal(olen, elen);
    assert_int_equal(out[olen], '\0');
    if (elen)
        assert_memory_equal(out, want, elen);
    assert_true(fdl_jv_str_eq(g_data, &g_tok[0], (const char *)want, elen));
    /* One byte short is refused without a write. */
    out[0] = 'Z';
    assert_int_equal(fdl_jv_str_copy(g_data, &g_tok[0], out, elen, &olen), FDL_JV_TOO_LARGE);
    assert_int_equal(out[0], 'Z');
    if (elen) {
        assert_false(fdl_jv_str_eq(g_data, &g_tok[0], (const char *)want, elen - 1));
        want[elen - 1] ^= 1;
        assert_false(fdl_jv_str_eq(g_data, &g_tok[0], (const char *)want, elen));
    }
}

/*
 * numbers.txt: opts "int" or "dbl"; TEXT the number text (not a document);
 * EXPECT the value (int: decimal; dbl: compared after strtod in C).
 */
static void run_number(void **state)
{
    const vector *v = *state;
    size_t len = 0;
    if (!fdl_test_decode_pct(v->text, g_data, sizeof g_data, &len))
        fail_msg("%s: bad vector text", v->name);
    fdl_jv_status want = status_from(v->status);
    bool is_int = strcmp(v->opts, "int") == 0;
    assert_true(is_int || strcmp(v->opts, "dbl") == 0);
    if (is_int) {
        int64_t x = 77;
        fdl_jv_status got = fdl_jv_number_int(g_data, len, &x);
        if (got != want)
            fail_msg("%s: got %s, want %s", v->name, fdl_jv_strerror(got), fdl_jv_strerror(want));
        if (got == FDL_JV_OK) {
            assert_non_null(v->expect);
            assert_int_equal(x, strtoll(v->expect, NULL, 10));
        } else {
            assert_int_equal(x, 0);
        }
    } else {
        double x = 77;
        fdl_jv_status got = fdl_jv_number_double(g_data, len, &x);
        if (got != want)
            fail_msg("%s: got %s, want %s", v->name, fdl_jv_strerror(got), fdl_jv_strerror(want));
        if (got == FDL_JV_OK) {
            assert_non_null(v->expect);
            double e = strtod(v->expect, NULL);
            if (x != e || signbit(x) != signbit(e))
                fail_msg("%s: got %.17g, want %.17g", v->name, x, e);
        } else {
            assert_true(x == 0.0);
        }
    }
    /* The number grammar agrees with the converters. */
    assert_int_equal(fdl_jv_is_number(g_data, len), want != FDL_JV_MALFORMED);
}

/* ------------------------------------------------------------------------- */
/* Hand-written tests                                                         */
/* ------------------------------------------------------------------------- */

static fdl_jv_status parse_cstr(const char *s, size_t *ntok)
{
    return fdl_jv_parse((const uint8_t *)s, strlen(s), NULL, g_tok, 4096, ntok, NULL);
}

static void token_tree_walk(void **state)
{
    (void)state;
    const char *doc = " {\"seq\":12,\"n\":{\"a\":[1,2,{}]},\"s\":\"x\\ny\",\"t\":true,\"z\":null} ";
    size_t n = 0;
    assert_int_equal(parse_cstr(doc, &n), FDL_JV_OK);
    assert_int_equal(n, 16);
    assert_int_equal(g_tok[0].type, FDL_JV_OBJECT);
    assert_int_equal(g_tok[0].start, 1);
    assert_int_equal(g_tok[0].len, strlen(doc) - 2);
    assert_int_equal(g_tok[0].size, 5);
    /* Walk the members without recursion, as the header shows. */
    const char *keys[] = {"seq", "n", "s", "t", "z"};
    const uint8_t types[] = {FDL_JV_NUMBER, FDL_JV_OBJECT, FDL_JV_STRING, FDL_JV_TRUE, FDL_JV_NULL};
    size_t m = 0;
    for (uint32_t k = 1; k < g_tok[0].end; k = g_tok[k + 1].end, m++) {
        assert_true(m < 5);
        assert_true(fdl_jv_str_eq((const uint8_t *)doc, &g_tok[k], keys[m], strlen(keys[m])));
        assert_true(g_tok[k].flags & FDL_JV_F_KEY);
        assert_int_equal(g_tok[k + 1].type, types[m]);
        assert_int_equal(g_tok[k + 1].parent, 0);
    }
    assert_int_equal(m, 5);
    /* The nested array: [1,2,{}] has 3 elements; its parent is the inner object. */
    uint32_t arr = 6;
    assert_int_equal(g_tok[arr].type, FDL_JV_ARRAY);
    assert_int_equal(g_tok[arr].size, 3);
    assert_int_equal(g_tok[arr].parent, 4);
    assert_int_equal(g_tok[arr].end, 10);
    /* "x\ny": raw 4 bytes, decoded 3, flagged escaped. */
    assert_int_equal(g_tok[11].type, FDL_JV_STRING);
    assert_int_equal(g_tok[11].len, 4);
    assert_int_equal(g_tok[11].size, 3);
    assert_true(g_tok[11].flags & FDL_JV_F_ESCAPED);
    assert_false(g_tok[11].flags & FDL_JV_F_KEY);
    /* Number flags. */
    assert_int_equal(parse_cstr("[1,1.5,1e3,-2.5E-3]", &n), FDL_JV_OK);
    assert_int_equal(g_tok[1].flags, 0);
    assert_int_equal(g_tok[2].flags, FDL_JV_F_FRAC);
    assert_int_equal(g_tok[3].flags, FDL_JV_F_EXP);
    assert_int_equal(g_tok[4].flags, FDL_JV_F_FRAC | FDL_JV_F_EXP);
}

static void bad_args(void **state)
{
    (void)state;
    size_t n = 5, at = 5;
    const uint8_t *doc = (const uint8_t *)"{}";
    assert_int_equal(fdl_jv_parse(doc, 2, NULL, NULL, 4, &n, &at), FDL_JV_BAD_ARG);
    assert_int_equal(n, 0);
    assert_int_equal(fdl_jv_parse(doc, 2, NULL, g_tok, 4, NULL, &at), FDL_JV_BAD_ARG);
    assert_int_equal(fdl_jv_parse(NULL, 2, NULL, g_tok, 4, &n, &at), FDL_JV_BAD_ARG);
    /* NULL with length 0 is just an empty (malformed) document. */
    assert_int_equal(fdl_jv_parse(NULL, 0, NULL, g_tok, 4, &n, &at), FDL_JV_MALFORMED);
    /* A zero-capacity token array can hold nothing. */
    assert_int_equal(fdl_jv_parse(doc, 2, NULL, g_tok, 0, &n, &at), FDL_JV_TOO_LARGE);
    assert_int_equal(fdl_jv_parse(doc, 2, NULL, g_tok, 1, &n, NULL), FDL_JV_OK);

    char out[8];
    size_t ol = 3;
    assert_int_equal(fdl_jv_parse((const uint8_t *)"[1]", 3, NULL, g_tok, 4, &n, NULL), FDL_JV_OK);
    assert_int_equal(fdl_jv_str_copy((const uint8_t *)"[1]", &g_tok[1], out, sizeof out, &ol),
                     FDL_JV_BAD_ARG);   /* not a string */
    assert_int_equal(ol, 0);
    assert_int_equal(fdl_jv_str_copy(NULL, &g_tok[1], out, sizeof out, NULL), FDL_JV_BAD_ARG);
    assert_false(fdl_jv_str_eq((const uint8_t *)"[1]", &g_tok[1], "1", 1));
    assert_false(fdl_jv_str_eq(NULL, NULL, "", 0));
    int64_t x;
    double d;
    assert_int_equal(fdl_jv_number_int(NULL, 1, &x), FDL_JV_BAD_ARG);
    assert_int_equal(fdl_jv_number_int((const uint8_t *)"1", 1, NULL), FDL_JV_BAD_ARG);
    assert_int_equal(fdl_jv_number_double(NULL, 1, &d), FDL_JV_BAD_ARG);
    assert_int_equal(fdl_jv_number_double((const uint8_t *)"1", 1, NULL), FDL_JV_BAD_ARG);
    assert_false(fdl_jv_is_number(NULL, 0));
    assert_false(fdl_jv_is_number((const uint8_t *)"", 0));
}

static void strerror_table(void **state)
{
    (void)state;
    for (int s = FDL_JV_OK; s <= FDL_JV_BAD_ARG; s++) {
        assert_non_null(fdl_jv_strerror(s));
        assert_string_not_equal(fdl_jv_strerror(s), "unknown JSON status");
    }
    assert_string_equal(fdl_jv_strerror(-1), "unknown JSON status");
    assert_string_equal(fdl_jv_strerror(99), "unknown JSON status");
}

/* Depth exactly at the ceiling parses, one more is TOO_DEEP, for arrays and objects. */
static void depth_boundary(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    for (uint32_t depth = 0; depth <= 40; depth++) {
        for (int kind = 0; kind < 2; kind++) {
            size_t len = 0;
            for (uint32_t i = 0; i < depth; i++) {
                if (kind == 0) {
                    buf[len++] = '[';
                } else {
                    memcpy(buf + len, "{\"k\":", 5);
                    len += 5;
                }
            }
            buf[len++] = '0';
            for (uint32_t i = 0; i < depth; i++)
                buf[len++] = kind == 0 ? ']' : '}';
            fdl_jv_limits lim = {65536, 20, 4096, 4096};
            size_t n = 0, at = 0;
            fdl_jv_status st = fdl_jv_parse(buf, len, &lim, g_tok, 4096, &n, &at);
            assert_int_equal(st, depth <= 20 ? FDL_JV_OK : FDL_JV_TOO_DEEP);
            if (st == FDL_JV_TOO_DEEP)   /* reported at the 21st opening bracket */
                assert_int_equal(at, kind == 0 ? 20 : 100);
            else
                assert_int_equal(n, kind == 0 ? depth + 1 : 2 * depth + 1);
        }
    }
}

/* Every strict prefix of a valid document is MALFORMED (no "need more" for a whole message). */
static void prefixes_malformed(void **state)
{
    (void)state;
    const char *doc = "{\"seq\":12,\"ts\":1763712000123,\"battery\":87.4,\"s\":\"\\u00e9\\ud83d\\ude00\","
                      "\"a\":[true,false,null,-0.5e-3]}";
    size_t n = strlen(doc), ntok = 0;
    assert_int_equal(parse_cstr(doc, &ntok), FDL_JV_OK);
    for (size_t k = 0; k < n; k++) {
        fdl_jv_status st = fdl_jv_parse((const uint8_t *)doc, k, NULL, g_tok, 4096, &ntok, NULL);
        /* "12" cut to "1" is still a number, but never a whole document here. */
        if (st != FDL_JV_MALFORMED)
            fail_msg("prefix %zu: %s", k, fdl_jv_strerror(st));
    }
}

/* A payload above max_bytes is TOO_LARGE before a byte is read (even if garbage). */
static void size_checked_first(void **state)
{
    (void)state;
    fdl_jv_limits lim = {8, 4, 16, 16};
    size_t n = 0, at = 7;
    assert_int_equal(fdl_jv_parse((const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9, &lim,
                                  g_tok, 16, &n, &at), FDL_JV_TOO_LARGE);
    assert_int_equal(at, 0);
    assert_int_equal(fdl_jv_parse((const uint8_t *)"[1,2,3,4]", 9, &lim, g_tok, 16, &n, &at),
                     FDL_JV_TOO_LARGE);
    assert_int_equal(fdl_jv_parse((const uint8_t *)"[1,2,34]", 8, &lim, g_tok, 16, &n, &at),
                     FDL_JV_OK);
}

/* The token array capacity is a ceiling even when max_tokens is larger. */
static void capacity_is_ceiling(void **state)
{
    (void)state;
    fdl_jv_limits lim = {1000, 4, 1000, 100};
    size_t n = 0, at = 0;
    const uint8_t *doc = (const uint8_t *)"[1,2,3]";
    assert_int_equal(fdl_jv_parse(doc, 7, &lim, g_tok, 3, &n, &at), FDL_JV_TOO_LARGE);
    assert_int_equal(at, 5);
    assert_int_equal(fdl_jv_parse(doc, 7, &lim, g_tok, 4, &n, &at), FDL_JV_OK);
    assert_int_equal(n, 4);
}

/* Every single byte as a one-byte document: only digits parse. */
static void every_single_byte(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        uint8_t b = (uint8_t)c;
        size_t n = 0;
        fdl_jv_status st = fdl_jv_parse(&b, 1, NULL, g_tok, 4, &n, NULL);
        assert_int_equal(st, (c >= '0' && c <= '9') ? FDL_JV_OK : FDL_JV_MALFORMED);
    }
}

/* Every UTF-8 lead/continuation pair and triple boundary, checked against a reference. */
static bool ref_utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], cp, need;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; }
        else return false;
        for (uint32_t k = 1; k <= need; k++) {
            if (i + k >= n || (s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += need + 1;
    }
    return true;
}

static void utf8_exhaustive_pairs(void **state)
{
    (void)state;
    uint8_t doc[8];
    size_t n = 0;
    /* Every non-ASCII lead byte with every second byte, alone and with a continuation after. */
    for (int a = 0x80; a < 0x100; a++)
        for (int b = 0; b < 0x100; b++)
            for (size_t sl = 2; sl <= 3; sl++) {
                uint8_t s[3] = {(uint8_t)a, (uint8_t)b, 0x80};
                doc[0] = '"';
                memcpy(doc + 1, s, sl);
                doc[1 + sl] = '"';
                /* Valid UTF-8 here never holds '"', '\' or a control byte. */
                fdl_jv_status st = fdl_jv_parse(doc, sl + 2, NULL, g_tok, 4, &n, NULL);
                if (st != (ref_utf8_ok(s, sl) ? FDL_JV_OK : FDL_JV_MALFORMED))
                    fail_msg("%02x %02x (%zu bytes): %s", a, b, sl, fdl_jv_strerror(st));
            }
}

/* Four-byte sequences: every lead F0..F7 with every second byte, then valid tails. */
static void utf8_four_byte(void **state)
{
    (void)state;
    uint8_t doc[8];
    size_t n = 0;
    for (int a = 0xF0; a <= 0xF7; a++)
        for (int b = 0x80; b <= 0xBF; b++) {
            uint8_t s[4] = {(uint8_t)a, (uint8_t)b, 0x80, 0xBF};
            doc[0] = '"';
            memcpy(doc + 1, s, 4);
            doc[5] = '"';
            fdl_jv_status st = fdl_jv_parse(doc, 6, NULL, g_tok, 4, &n, NULL);
            assert_int_equal(st, ref_utf8_ok(s, 4) ? FDL_JV_OK : FDL_JV_MALFORMED);
        }
}

int main(void)
{
    if (!load_vectors("tests/vectors/json/parse.txt", "parse"))
        return 1;
    size_t n_parse = g_n_vec;
    if (!load_vectors("tests/vectors/json/strings.txt", "strings"))
        return 1;
    size_t n_str = g_n_vec;
    if (!load_vectors("tests/vectors/json/numbers.txt", "numbers"))
        return 1;
    for (size_t i = 0; i < g_n_vec; i++) {
        CMUnitTestFunction fn = i < n_parse ? run_parse : i < n_str ? run_string : run_number;
        g_tests[i] = (struct CMUnitTest){g_vec[i].name, fn, NULL, NULL, &g_vec[i]};
    }
    int failed = _cmocka_run_group_tests("jv_vectors", g_tests, g_n_vec, NULL, NULL);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_tree_walk),
        cmocka_unit_test(bad_args),
        cmocka_unit_test(strerror_table),
        cmocka_unit_test(depth_boundary),
        cmocka_unit_test(prefixes_malformed),
        cmocka_unit_test(size_checked_first),
        cmocka_unit_test(capacity_is_ceiling),
        cmocka_unit_test(every_single_byte),
        cmocka_unit_test(utf8_exhaustive_pairs),
        cmocka_unit_test(utf8_four_byte),
    };
    failed += cmocka_run_group_tests_name("jv", tests, NULL, NULL);
    for (size_t i = 0; i < g_n_vec; i++) {
        free(g_vec[i].text);
        free(g_vec[i].expect);
    }
    return failed;
}
