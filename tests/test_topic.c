/*
 * tests/test_topic.c — MQTT topic names, filters, matching, coverage, overlap.
 *
 * One runner per function over its vector file in tests/vectors/topic/ (format
 * at the top of each file), then properties: the three relations agree on topic
 * names, and covers/overlap are exact, checked by brute force over every filter
 * of up to 3 levels and every topic of up to 4 levels on small alphabets.
 */
#include "testutil.h"

#include "cloud/topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* Vector files                                                               */
/* ------------------------------------------------------------------------- */

#define MAX_FIELDS 4
#define FIELD_CAP 70000   /* room for the @65536 length vectors */

typedef struct field {
    char *b;
    size_t n;
} field;

static char g_field_buf[MAX_FIELDS][FIELD_CAP];


/* Decodes \xHH and \\ escapes, and @N (N bytes of 'a'), into out; false on a bad escape. */
static bool unescape(const char *s, size_t n, char *out, size_t *out_n)
{
    size_t o = 0;
    if (n > 1 && s[0] == '@') {
        size_t count = (size_t)strtoul(s + 1, NULL, 10);
        if (count > FIELD_CAP)
            return false;
        memset(out, 'a', count);
        *out_n = count;
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        if (i + 1 < n && s[i + 1] == '\\') {
            out[o++] = '\\';
            i++;
        } else if (i + 3 < n && s[i + 1] == 'x' && fdl_test_hexval(s[i + 2]) >= 0 && fdl_test_hexval(s[i + 3]) >= 0) {
            out[o++] = (char)(fdl_test_hexval(s[i + 2]) * 16 + fdl_test_hexval(s[i + 3]));
            i += 3;
        } else {
            return false;
        }
    }
    *out_n = o;
    return true;
}

typedef void (*vector_fn)(const field *f, size_t nf, const char *where, int *failures);

/* Runs fn on every vector line of tests/vectors/topic/<name>; fails on any failure or too few lines. */
static void run_file(const char *name, size_t want_fields, vector_fn fn, size_t min_vectors)
{
    char rel[128], path[512];
    snprintf(rel, sizeof rel, "tests/vectors/topic/%s", name);
    fdl_test_src_path(rel, path, sizeof path);
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open %s", path);
    static char line[4096];
    int failures = 0;
    size_t lineno = 0, count = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (len == 0 || strcmp(line, "#") == 0 || strncmp(line, "# ", 2) == 0)
            continue;
        field f[MAX_FIELDS];
        size_t nf = 0;
        char *p = line;
        for (;;) {
            char *tab = strchr(p, '\t');
            size_t n = tab ? (size_t)(tab - p) : strlen(p);
            if (nf == MAX_FIELDS || !unescape(p, n, g_field_buf[nf], &f[nf].n))
                fail_msg("%s:%zu: bad field", name, lineno);
            f[nf].b = g_field_buf[nf];
            nf++;
            if (!tab)
                break;
            p = tab + 1;
        }
        if (nf != want_fields)
            fail_msg("%s:%zu: %zu fields, want %zu", name, lineno, nf, want_fields);
        char where[64];
        snprintf(where, sizeof where, "%s:%zu", name, lineno);
        fn(f, nf, where, &failures);
        count++;
    }
    fclose(fp);
    if (count < min_vectors)
        fail_msg("%s: only %zu vectors (want >= %zu)", name, count, min_vectors);
    if (failures)
        fail_msg("%s: %d of %zu vectors failed", name, failures, count);
}

static bool want_bool(const field *f, const char *where)
{
    if (f->n == 1 && (f->b[0] == '0' || f->b[0] == '1'))
        return f->b[0] == '1';
    fail_msg("%s: expected 0 or 1", where);
    return false;
}

/* ------------------------------------------------------------------------- */
/* Runners                                                                    */
/* ------------------------------------------------------------------------- */

static const char *const k_status_names[] = {"OK", "BAD_ARG", "EMPTY", "TOO_LONG", "NUL",
                                             "BAD_UTF8", "WILDCARD", "BAD_WILDCARD"};

static void vec_validate(const field *f, size_t nf, const char *where, int *failures)
{
    (void)nf;
    int want = -1;
    for (size_t i = 0; i < sizeof k_status_names / sizeof *k_status_names; i++)
        if (f[2].n == strlen(k_status_names[i]) && memcmp(f[2].b, k_status_names[i], f[2].n) == 0)
            want = (int)i;
    if (want < 0)
        fail_msg("%s: unknown status", where);
    bool is_name = f[0].n == 4 && memcmp(f[0].b, "name", 4) == 0;
    fdl_topic_status got = is_name ? fdl_topic_validate_name(f[1].b, f[1].n) : fdl_topic_validate_filter(f[1].b, f[1].n);
    if ((int)got != want) {
        fprintf(stderr, "%s: got %s, want %s\n", where, k_status_names[got], k_status_names[want]);
        (*failures)++;
    }
    /* Every valid name is a valid filter. */
    if (is_name && got == FDL_TOPIC_OK && fdl_topic_validate_filter(f[1].b, f[1].n) != FDL_TOPIC_OK) {
        fprintf(stderr, "%s: a valid name is not a valid filter\n", where);
        (*failures)++;
    }
}

static void vec_matches(const field *f, size_t nf, const char *where, int *failures)
{
    (void)nf;
    bool want = want_bool(&f[2], where);
    bool got = fdl_topic_matches(f[0].b, f[0].n, f[1].b, f[1].n);
    if (got != want) {
        fprintf(stderr, "%s: matches(%.*s, %.*s) = %d, want %d\n", where, (int)f[0].n, f[0].b, (int)f[1].n,
                f[1].b, got, want);
        (*failures)++;
    }
    /* For a valid name, covers and overlap agree with matches. */
    if (fdl_topic_validate_name(f[1].b, f[1].n) == FDL_TOPIC_OK &&
        (fdl_topic_filter_covers(f[0].b, f[0].n, f[1].b, f[1].n) != got ||
         fdl_topic_filters_overlap(f[0].b, f[0].n, f[1].b, f[1].n) != got)) {
        fprintf(stderr, "%s: covers/overlap disagree with matches on a topic name\n", where);
        (*failures)++;
    }
}

static void vec_covers(const field *f, size_t nf, const char *where, int *failures)
{
    (void)nf;
    bool want = want_bool(&f[2], where);
    bool got = fdl_topic_filter_covers(f[0].b, f[0].n, f[1].b, f[1].n);
    if (got != want) {
        fprintf(stderr, "%s: covers(%.*s, %.*s) = %d, want %d\n", where, (int)f[0].n, f[0].b, (int)f[1].n,
                f[1].b, got, want);
        (*failures)++;
    }
}

static void vec_overlap(const field *f, size_t nf, const char *where, int *failures)
{
    (void)nf;
    bool want = want_bool(&f[2], where);
    bool ab = fdl_topic_filters_overlap(f[0].b, f[0].n, f[1].b, f[1].n);
    bool ba = fdl_topic_filters_overlap(f[1].b, f[1].n, f[0].b, f[0].n);
    if (ab != want || ba != want) {
        fprintf(stderr, "%s: overlap = %d/%d (both orders), want %d\n", where, ab, ba, want);
        (*failures)++;
    }
}

static void validate_vectors(void **state)
{
    (void)state;
    run_file("validate.txt", 3, vec_validate, 40);
}

static void matches_vectors(void **state)
{
    (void)state;
    run_file("matches.txt", 3, vec_matches, 80);
}

static void covers_vectors(void **state)
{
    (void)state;
    run_file("covers.txt", 3, vec_covers, 80);
}

static void overlap_vectors(void **state)
{
    (void)state;
    run_file("overlap.txt", 3, vec_overlap, 30);
}

/* ------------------------------------------------------------------------- */
/* Hand-written checks                                                        */
/* ------------------------------------------------------------------------- */

static void null_and_explicit_lengths(void **state)
{
    (void)state;
    assert_int_equal(fdl_topic_validate_name(NULL, 0), FDL_TOPIC_EMPTY);
    assert_int_equal(fdl_topic_validate_name(NULL, 3), FDL_TOPIC_BAD_ARG);
    assert_int_equal(fdl_topic_validate_filter(NULL, 1), FDL_TOPIC_BAD_ARG);
    assert_false(fdl_topic_matches(NULL, 1, "a", 1));
    assert_false(fdl_topic_matches("#", 1, NULL, 1));
    assert_false(fdl_topic_filter_covers(NULL, 0, "a", 1));
    assert_false(fdl_topic_filters_overlap("a", 1, NULL, 5));
    /* Lengths are honoured: bytes after len are not read, and a NUL inside is seen. */
    assert_true(fdl_topic_matches("a/bXXX", 3, "a/bYYY", 3));
    assert_false(fdl_topic_matches("a/b", 3, "a/b\0c", 5));
    assert_false(fdl_topic_matches("#", 1, "dev-1\0/x", 8));
    for (int s = FDL_TOPIC_OK; s <= FDL_TOPIC_BAD_WILDCARD; s++)
        assert_non_null(fdl_topic_strerror((fdl_topic_status)s));
    assert_string_equal(fdl_topic_strerror((fdl_topic_status)99), "unknown topic status");
}

/* ------------------------------------------------------------------------- */
/* Exactness by brute force                                                   */
/* ------------------------------------------------------------------------- */

#define FL_ALPHA 5   /* filter levels: a, "", $a, +, # */
#define TL_ALPHA 4   /* topic levels:  a, "", $a, c   */
#define MAX_FILTERS 200
#define MAX_TOPICS 400

static const char *const k_flevels[FL_ALPHA] = {"a", "", "$a", "+", "#"};
static const char *const k_tlevels[TL_ALPHA] = {"a", "", "$a", "c"};

typedef struct enumerated {
    char s[32];
    size_t n;
    int lv[4];    /* alphabet indices */
    int nlv;
} enumerated;

static enumerated g_filters[MAX_FILTERS], g_topics[MAX_TOPICS];
static size_t g_nf, g_nt;
static unsigned char g_match[MAX_FILTERS][MAX_TOPICS];

static void join(enumerated *e, const char *const *alpha)
{
    e->n = 0;
    for (int i = 0; i < e->nlv; i++) {
        if (i)
            e->s[e->n++] = '/';
        size_t l = strlen(alpha[e->lv[i]]);
        memcpy(e->s + e->n, alpha[e->lv[i]], l);
        e->n += l;
    }
    e->s[e->n] = '\0';
}

/* Reference matcher on level indices, written from the spec independently of topic.c. */
static bool ref_match(const enumerated *f, const enumerated *t)
{
    if (t->lv[0] == 2 && (f->lv[0] == 3 || f->lv[0] == 4))
        return false;   /* '$' rule: topic level "$a", filter starting with + or # */
    int i = 0;
    for (; i < f->nlv; i++) {
        if (f->lv[i] == 4)
            return true;
        if (i >= t->nlv)
            return false;
        if (f->lv[i] == 3)
            continue;
        if (strcmp(k_flevels[f->lv[i]], k_tlevels[t->lv[i]]) != 0)
            return false;
    }
    return i == t->nlv;
}

static void enumerate(void)
{
    g_nf = g_nt = 0;
    for (int nlv = 1; nlv <= 3; nlv++) {
        int total = 1;
        for (int i = 0; i < nlv; i++)
            total *= FL_ALPHA;
        for (int code = 0; code < total; code++) {
            enumerated e = {.nlv = nlv};
            int c = code;
            bool ok = true;
            for (int i = 0; i < nlv; i++) {
                e.lv[i] = c % FL_ALPHA;
                c /= FL_ALPHA;
                if (e.lv[i] == 4 && i != nlv - 1)
                    ok = false;   /* '#' only last */
            }
            join(&e, k_flevels);
            if (!ok || e.n == 0)
                continue;
            assert_true(g_nf < MAX_FILTERS);
            g_filters[g_nf++] = e;
        }
    }
    for (int nlv = 1; nlv <= 4; nlv++) {
        int total = 1;
        for (int i = 0; i < nlv; i++)
            total *= TL_ALPHA;
        for (int code = 0; code < total; code++) {
            enumerated e = {.nlv = nlv};
            int c = code;
            for (int i = 0; i < nlv; i++) {
                e.lv[i] = c % TL_ALPHA;
                c /= TL_ALPHA;
            }
            join(&e, k_tlevels);
            if (e.n == 0)
                continue;   /* the empty string is not a topic */
            assert_true(g_nt < MAX_TOPICS);
            g_topics[g_nt++] = e;
        }
    }
    for (size_t i = 0; i < g_nf; i++) {
        assert_int_equal(fdl_topic_validate_filter(g_filters[i].s, g_filters[i].n), FDL_TOPIC_OK);
        for (size_t j = 0; j < g_nt; j++)
            g_match[i][j] = ref_match(&g_filters[i], &g_topics[j]);
    }
}

static void matches_agrees_with_reference(void **state)
{
    (void)state;
    enumerate();
    size_t bad = 0;
    for (size_t i = 0; i < g_nf; i++)
        for (size_t j = 0; j < g_nt; j++)
            if (fdl_topic_matches(g_filters[i].s, g_filters[i].n, g_topics[j].s, g_topics[j].n) != g_match[i][j]) {
                if (bad++ < 10)
                    fprintf(stderr, "matches(%s, %s) != reference %d\n", g_filters[i].s, g_topics[j].s,
                            g_match[i][j]);
            }
    assert_int_equal(bad, 0);
    assert_int_equal(g_nf, 104);   /* 4 + 4*5 + 4*4*5: "#" only last, "" alone is no filter */
    assert_int_equal(g_nt, 339);   /* 4 + 16 + 64 + 256, minus the empty string */
}

/*
 * Topics of up to 4 levels decide every pair of filters of up to 3 levels: a
 * topic that separates them never needs more than one level beyond the longer
 * filter, and the fresh literal "c" stands for every value no filter names.
 */
static void covers_and_overlap_are_exact(void **state)
{
    (void)state;
    enumerate();
    size_t bad = 0, n_cover = 0, n_overlap = 0;
    for (size_t o = 0; o < g_nf; o++) {
        for (size_t i = 0; i < g_nf; i++) {
            bool subset = true, common = false;
            for (size_t t = 0; t < g_nt; t++) {
                if (g_match[i][t] && !g_match[o][t])
                    subset = false;
                if (g_match[i][t] && g_match[o][t])
                    common = true;
            }
            const enumerated *a = &g_filters[o], *b = &g_filters[i];
            bool cov = fdl_topic_filter_covers(a->s, a->n, b->s, b->n);
            bool ovl = fdl_topic_filters_overlap(a->s, a->n, b->s, b->n);
            n_cover += cov;
            n_overlap += ovl;
            if (cov != subset || ovl != common) {
                if (bad++ < 10)
                    fprintf(stderr, "outer %s inner %s: covers %d (exact %d), overlap %d (exact %d)\n", a->s, b->s,
                            cov, subset, ovl, common);
            }
        }
    }
    assert_int_equal(bad, 0);
    /* The relations are not trivially all-false or all-true. */
    assert_true(n_cover > g_nf && n_cover < g_nf * g_nf / 2);
    assert_true(n_overlap > n_cover && n_overlap < g_nf * g_nf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(validate_vectors),
        cmocka_unit_test(matches_vectors),
        cmocka_unit_test(covers_vectors),
        cmocka_unit_test(overlap_vectors),
        cmocka_unit_test(null_and_explicit_lengths),
        cmocka_unit_test(matches_agrees_with_reference),
        cmocka_unit_test(covers_and_overlap_are_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
