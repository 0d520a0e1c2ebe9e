/*
 * tests/fuzz/fuzz_schema.c — libFuzzer target for the JSON parser and payload schemas.
 *
 * The input is one MQTT payload from a hostile device. It goes through the
 * built-in telemetry schema and through a second schema that exercises every
 * type and coercion, and any broken promise aborts:
 *   - the verdict equals the return value; a rejection writes nothing and
 *     names a field exactly when it is about one; offsets stay in the payload;
 *   - an accepted payload's output fits fdl_schema_output_max and the schema's
 *     maxbytes, is NUL-terminated, is strict JSON (an object with no more
 *     members than the schema has fields), and applied again is accepted and
 *     byte-identical with nothing dropped or coerced;
 *   - the schema verdict agrees with a direct parse (MALFORMED / TOO_DEEP /
 *     TOO_LARGE / NOT_OBJECT);
 *   - every token of a successful parse stays inside the buffer, parents and
 *     ends form a tree, strings decode to exactly `size` bytes of valid UTF-8
 *     and compare equal to their own decoding, number tokens convert;
 *   - a too-small output buffer gives NO_SPACE, never a write past it.
 * The sources are included so the fuzzer sees (and instruments) their static
 * functions; build line in tests/CMakeLists.txt.
 */
#include "cloud/json.c"
#include "cloud/topic.c"
#include "cloud/schema.c"
#include "sim/alloc.c"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_schema: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static const char rich_text[] =
    "topic any/#\n"
    "maxbytes 2048\n"
    "field i integer optional coerce min -1000000 max 1000000\n"
    "field n number optional coerce min -1e6 max 1e6\n"
    "field s string optional coerce maxlen 32\n"
    "field b boolean optional coerce\n"
    "field j integer optional\n"
    "field x number optional\n"
    "field t string optional\n";

static fdl_schema_set *g_default, *g_rich;
static fdl_jv_tok g_tok[FDL_JV_DEFAULT_MAX_TOKENS];
static char g_out[70000], g_out2[70000], g_str[FDL_JV_DEFAULT_MAX_STRING + 1];

static void setup(void)
{
    if (g_default)
        return;
    char err[128];
    if (fdl_schema_set_default(&g_default) != FDL_SCHEMA_OK ||
        fdl_schema_set_parse(rich_text, sizeof rich_text - 1, &g_rich, err, sizeof err) != FDL_SCHEMA_OK) {
        fprintf(stderr, "fuzz_schema: schema setup failed: %s\n", err);
        abort();
    }
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = fdl_utf8_seq(s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

/* Token-tree promises of one successful parse. */
static void check_tokens(const uint8_t *buf, size_t len, size_t n)
{
    CHECK(n >= 1 && n <= FDL_JV_DEFAULT_MAX_TOKENS);
    CHECK(g_tok[0].parent == FDL_JV_NONE && g_tok[0].end == n);
    for (size_t i = 0; i < n; i++) {
        const fdl_jv_tok *t = &g_tok[i];
        CHECK((size_t)t->start + t->len <= len);
        CHECK(t->end > i && t->end <= n);
        if (i > 0) {
            CHECK(t->parent < i);
            CHECK(g_tok[t->parent].type == FDL_JV_OBJECT || g_tok[t->parent].type == FDL_JV_ARRAY);
            CHECK(t->end <= g_tok[t->parent].end);
        }
        switch (t->type) {
        case FDL_JV_OBJECT:
        case FDL_JV_ARRAY: {
            CHECK(buf[t->start] == (t->type == FDL_JV_OBJECT ? '{' : '['));
            CHECK(buf[t->start + t->len - 1] == (t->type == FDL_JV_OBJECT ? '}' : ']'));
            uint32_t kids = 0;
            for (uint32_t k = (uint32_t)i + 1; k < t->end; k = g_tok[k].end) {
                CHECK(g_tok[k].parent == i);
                if (t->type == FDL_JV_OBJECT && kids % 2 == 0)
                    CHECK(g_tok[k].type == FDL_JV_STRING && (g_tok[k].flags & FDL_JV_F_KEY));
                kids++;
            }
            CHECK(kids == (t->type == FDL_JV_OBJECT ? 2 * t->size : t->size));
            break;
        }
        case FDL_JV_STRING: {
            CHECK(t->start >= 1 && buf[t->start - 1] == '"' && buf[t->start + t->len] == '"');
            CHECK(t->len <= FDL_JV_DEFAULT_MAX_STRING && t->size <= 4u * t->len);
            size_t dl = 0;
            CHECK(fdl_jv_str_copy(buf, t, g_str, sizeof g_str, &dl) == FDL_JV_OK);
            CHECK(dl == t->size && g_str[dl] == '\0');
            CHECK(valid_utf8((const uint8_t *)g_str, dl));
            CHECK(fdl_jv_str_eq(buf, t, g_str, dl));
            CHECK(fdl_jv_str_copy(buf, t, g_str, dl, NULL) == FDL_JV_TOO_LARGE);
            break;
        }
        case FDL_JV_NUMBER: {
            const uint8_t *s = buf + t->start;
            CHECK(t->len <= FDL_JV_MAX_NUMBER_LEN && fdl_jv_is_number(s, t->len));
            double d;
            fdl_jv_status st = fdl_jv_number_double(s, t->len, &d);
            CHECK(st == FDL_JV_OK || st == FDL_JV_OUT_OF_RANGE);
            int64_t x;
            st = fdl_jv_number_int(s, t->len, &x);
            CHECK(st == FDL_JV_OK || st == FDL_JV_NOT_INTEGER || st == FDL_JV_OUT_OF_RANGE);
            if (st == FDL_JV_OK && x > -(1LL << 53) && x < (1LL << 53))
                CHECK(fdl_jv_number_double(s, t->len, &d) == FDL_JV_OK && d == (double)x);
            break;
        }
        case FDL_JV_TRUE:
        case FDL_JV_FALSE:
        case FDL_JV_NULL:
            CHECK(t->len == (t->type == FDL_JV_FALSE ? 5u : 4u));
            break;
        default:
            CHECK(0);
        }
    }
}

static void check_schema(const fdl_schema *s, const uint8_t *data, size_t size)
{
    size_t cap = fdl_schema_output_max(s), out_len = 12345;
    CHECK(cap <= sizeof g_out);
    fdl_schema_verdict v;
    fdl_schema_status st = fdl_schema_apply(s, data, size, g_out, cap, &out_len, &v);
    CHECK(v.status == st);
    CHECK(st == FDL_SCHEMA_OK || fdl_schema_is_rejection(st));
    bool about_field = st == FDL_SCHEMA_MISSING || st == FDL_SCHEMA_WRONG_TYPE ||
                       st == FDL_SCHEMA_OUT_OF_BOUNDS;
    CHECK(about_field == (v.field[0] != '\0'));
    CHECK(v.offset <= size);

    /* Agreement with a direct parse under the schema's limits. */
    const fdl_jv_limits lim = {fdl_schema_max_bytes(s), FDL_SCHEMA_MAX_DEPTH, FDL_SCHEMA_MAX_TOKENS,
                               FDL_SCHEMA_MAX_STRING};
    size_t n = 0;
    fdl_jv_status js = fdl_jv_parse(data, size, &lim, g_tok, FDL_SCHEMA_MAX_TOKENS, &n, NULL);
    if (js == FDL_JV_MALFORMED)
        CHECK(st == FDL_SCHEMA_MALFORMED);
    else if (js == FDL_JV_TOO_DEEP)
        CHECK(st == FDL_SCHEMA_TOO_DEEP);
    else if (js == FDL_JV_TOO_LARGE)
        CHECK(st == FDL_SCHEMA_TOO_LARGE);
    else
        CHECK(js == FDL_JV_OK && (st == FDL_SCHEMA_NOT_OBJECT) == (g_tok[0].type != FDL_JV_OBJECT));

    if (st != FDL_SCHEMA_OK) {
        CHECK(out_len == 0);
        return;
    }
    CHECK(out_len < cap && out_len <= fdl_schema_max_bytes(s) && g_out[out_len] == '\0');
    CHECK(v.dropped <= n);

    /* The output is strict JSON: an object with at most the schema's fields. */
    CHECK(fdl_jv_parse((const uint8_t *)g_out, out_len, NULL, g_tok, FDL_JV_DEFAULT_MAX_TOKENS, &n,
                       NULL) == FDL_JV_OK);
    CHECK(g_tok[0].type == FDL_JV_OBJECT && g_tok[0].size <= FDL_SCHEMA_MAX_FIELDS);
    CHECK(g_tok[0].len == out_len);
    check_tokens((const uint8_t *)g_out, out_len, n);

    /* A fixed point: accepted again, byte for byte, nothing dropped or coerced. */
    size_t n2 = 0;
    fdl_schema_verdict v2;
    CHECK(fdl_schema_apply(s, (const uint8_t *)g_out, out_len, g_out2, cap, &n2, &v2) == FDL_SCHEMA_OK);
    CHECK(n2 == out_len && memcmp(g_out, g_out2, out_len) == 0);
    CHECK(v2.dropped == 0 && v2.coerced == 0);

    /* One byte short of the NUL: NO_SPACE, and nothing written past the buffer. */
    g_out2[out_len] = 'Z';
    CHECK(fdl_schema_apply(s, data, size, g_out2, out_len, &n2, &v2) == FDL_SCHEMA_NO_SPACE);
    CHECK(n2 == 0 && g_out2[out_len] == 'Z');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();

    /* The parser alone, default limits. */
    size_t n = 0;
    if (fdl_jv_parse(data, size, NULL, g_tok, FDL_JV_DEFAULT_MAX_TOKENS, &n, NULL) == FDL_JV_OK)
        check_tokens(data, size, n);
    else
        CHECK(n == 0);

    check_schema(fdl_schema_set_get(g_default, 0), data, size);
    check_schema(fdl_schema_set_get(g_rich, 0), data, size);

    /* The number converters on raw bytes (coercion input is arbitrary text). */
    if (size <= 80) {
        int64_t x;
        double d;
        bool num = fdl_jv_is_number(data, size);
        fdl_jv_status a = fdl_jv_number_int(data, size, &x);
        fdl_jv_status b = fdl_jv_number_double(data, size, &d);
        CHECK((a == FDL_JV_MALFORMED) == !num && (b == FDL_JV_MALFORMED) == !num);
    }
    return 0;
}
