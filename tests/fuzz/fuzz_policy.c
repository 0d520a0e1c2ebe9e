/*
 * tests/fuzz/fuzz_policy.c — libFuzzer target for cloud/topic.c and cloud/policy.c.
 *
 * Input layout: policy text, then a NUL byte, then '\n'-separated items:
 *   thing X, thing Y, client id, then up to MAX_REQ requests (topics or filters).
 * Missing items default to "dev-1", "dev-2", "c". Every broken promise aborts:
 *   - parse: a known status, *out set exactly on success, an error line within
 *     the text, statements within the ceilings, each expansion a valid filter
 *     within FDL_POLICY_MAX_EXPANDED; the same parse with one allocation failing
 *     is OK or NOMEM or the same error (LeakSanitizer checks the frees);
 *   - check: the answer equals a reference decision computed from
 *     fdl_policy_expand and the topic relations; the deciding statement really
 *     applies; unsafe identities get DENY for everything;
 *   - relations, over the requests, the expanded resources and topics derived
 *     from them: overlap is symmetric; covers(a, b) implies overlap(a, b) and
 *     that a matches every derived topic b matches; a topic both match proves an
 *     overlap; for a topic name t, covers(f, t) == overlap(f, t) == matches(f, t);
 *   - audit: when allow statements i and j grant one request to two different
 *     things X and Y (any actions, same client id), i and j are flagged CROSS,
 *     or WILDCARD/SHARED when i == j; a policy with no finding never allows one
 *     request to two different things;
 *   - the default policy never allows a request to two different things, and
 *     never lets X publish telemetry/Y or subscribe commands/Y.
 * The module sources are included so the fuzzer instruments their statics.
 */
#include "cloud/topic.c"
#include "cloud/policy.c"
#include "sim/alloc.c"

#include <stdio.h>
#include <stdlib.h>

#define MAX_REQ 10
#define MAX_ITEM 256
#define MAX_FILTERS (MAX_REQ + 10)
#define MAX_TOPICS 48

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_policy: check failed at line %d: %s\n", __LINE__, #cond); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

typedef struct item {
    const char *p;
    size_t n;
} item;

typedef struct owned {
    char b[FDL_POLICY_MAX_EXPANDED + 1];
    size_t n;
} owned;

static owned g_filters[MAX_FILTERS];
static owned g_topics[MAX_TOPICS];
static size_t g_nfilters, g_ntopics;

static void add_filter(const char *p, size_t n)
{
    if (g_nfilters < MAX_FILTERS && n <= FDL_POLICY_MAX_EXPANDED &&
        fdl_topic_validate_filter(p, n) == FDL_TOPIC_OK) {
        memcpy(g_filters[g_nfilters].b, p, n);
        g_filters[g_nfilters++].n = n;
    }
}

static void add_topic(const char *p, size_t n)
{
    if (g_ntopics < MAX_TOPICS && n <= FDL_POLICY_MAX_EXPANDED && fdl_topic_validate_name(p, n) == FDL_TOPIC_OK) {
        memcpy(g_topics[g_ntopics].b, p, n);
        g_topics[g_ntopics++].n = n;
    }
}

/*
 * A topic matched by filter f (when it is a valid name): '+' becomes `plus`,
 * '#' becomes nothing (the parent), `plus`, or `plus`/x, by `hash_mode`.
 */
static void derive_topic(const owned *f, item plus, int hash_mode)
{
    char out[FDL_POLICY_MAX_EXPANDED + 1];
    size_t o = 0, pos = 0;
    level l;
#define PUT(src, len)                                    \
    do {                                                 \
        if ((len) > sizeof out - o)                      \
            return; /* longer than any topic we keep */ \
        memcpy(out + o, (src), (len));                   \
        o += (len);                                      \
    } while (0)
    while (fdl_topic_next_level(f->b, f->n, &pos, &l)) {
        bool last = pos > f->n;
        if (is_hash(l)) {
            if (hash_mode == 0) {
                if (o > 0)
                    o--;   /* drop the '/' before '#': the parent level */
            } else {
                PUT(plus.p, plus.n);
                if (hash_mode == 2)
                    PUT("/x", 2);
            }
        } else if (is_plus(l)) {
            PUT(plus.p, plus.n);
        } else {
            PUT(l.p, l.n);
        }
        if (!last)
            PUT("/", 1);
    }
#undef PUT
    add_topic(out, o);
}

/* The decision recomputed from the public pieces: deny overrides, first allow, default deny. */
static fdl_policy_effect reference(const fdl_policy *p, fdl_policy_action a, const char *r, size_t n,
                                   const fdl_policy_vars *v, size_t *index)
{
    bool sub = a == FDL_POLICY_SUBSCRIBE;
    size_t allow = SIZE_MAX;
    *index = SIZE_MAX;
    for (size_t i = 0; i < fdl_policy_count(p); i++) {
        fdl_policy_statement s;
        CHECK(fdl_policy_get(p, i, &s) == FDL_POLICY_OK);
        if (s.action != a)
            continue;
        char e[FDL_POLICY_MAX_EXPANDED + 1];
        size_t en = 0;
        CHECK(fdl_policy_expand(p, i, v, e, sizeof e, &en) == FDL_POLICY_OK);
        bool hit = !sub ? fdl_topic_matches(e, en, r, n)
                        : s.effect == FDL_POLICY_DENY ? fdl_topic_filters_overlap(e, en, r, n)
                                                      : fdl_topic_filter_covers(e, en, r, n);
        if (hit && s.effect == FDL_POLICY_DENY) {
            *index = i;
            return FDL_POLICY_DENY;
        }
        if (hit && allow == SIZE_MAX)
            allow = i;
    }
    *index = allow;
    return allow == SIZE_MAX ? FDL_POLICY_DENY : FDL_POLICY_ALLOW;
}

static bool vars_ok(const fdl_policy_vars *v)
{
    return fdl_policy_value_check(v->thing, v->thing_len, NULL) == FDL_POLICY_OK &&
           fdl_policy_value_check(v->client_id, v->client_id_len, NULL) == FDL_POLICY_OK;
}

static void check_request(fdl_policy *p, fdl_policy_action a, item r, const fdl_policy_vars *v)
{
    fdl_policy_decision d;
    fdl_policy_effect e = fdl_policy_check(p, a, r.p, r.n, v, &d);
    CHECK(e == d.effect && d.detail != NULL);
    if (!vars_ok(v)) {
        CHECK(e == FDL_POLICY_DENY && d.reason == FDL_POLICY_BY_UNSAFE_VAR && d.var != NULL);
        return;
    }
    bool sub = a == FDL_POLICY_SUBSCRIBE;
    fdl_topic_status ts = sub ? fdl_topic_validate_filter(r.p, r.n) : fdl_topic_validate_name(r.p, r.n);
    if (ts != FDL_TOPIC_OK || r.n > FDL_POLICY_MAX_REQUEST) {
        CHECK(e == FDL_POLICY_DENY && d.reason == FDL_POLICY_BY_BAD_REQUEST);
        return;
    }
    size_t idx;
    fdl_policy_effect want = reference(p, a, r.p, r.n, v, &idx);
    CHECK(e == want);
    if (idx == SIZE_MAX) {
        CHECK(d.reason == FDL_POLICY_BY_DEFAULT && d.index == SIZE_MAX);
    } else {
        fdl_policy_statement s;
        CHECK(d.reason == FDL_POLICY_BY_STATEMENT && d.index == idx);
        CHECK(fdl_policy_get(p, idx, &s) == FDL_POLICY_OK && s.line == d.line && s.effect == e && s.action == a);
    }
    char line[512];
    CHECK(fdl_policy_decision_format(p, &d, line, sizeof line) > 0);
}

/* The relations' promises over every pair of collected filters and every derived topic. */
static void check_relations(void)
{
    for (size_t i = 0; i < g_nfilters; i++) {
        const owned *a = &g_filters[i];
        CHECK(fdl_topic_filter_covers(a->b, a->n, a->b, a->n));
        CHECK(fdl_topic_filters_overlap(a->b, a->n, a->b, a->n));
        for (size_t j = 0; j < g_nfilters; j++) {
            const owned *b = &g_filters[j];
            bool cov = fdl_topic_filter_covers(a->b, a->n, b->b, b->n);
            bool ovl = fdl_topic_filters_overlap(a->b, a->n, b->b, b->n);
            CHECK(ovl == fdl_topic_filters_overlap(b->b, b->n, a->b, a->n));
            CHECK(!cov || ovl);
            for (size_t t = 0; t < g_ntopics; t++) {
                const owned *tp = &g_topics[t];
                bool ma = fdl_topic_matches(a->b, a->n, tp->b, tp->n);
                bool mb = fdl_topic_matches(b->b, b->n, tp->b, tp->n);
                CHECK(!(cov && mb) || ma);
                CHECK(!(ma && mb) || ovl);
            }
        }
        for (size_t t = 0; t < g_ntopics; t++) {
            const owned *tp = &g_topics[t];
            bool m = fdl_topic_matches(a->b, a->n, tp->b, tp->n);
            CHECK(fdl_topic_filter_covers(a->b, a->n, tp->b, tp->n) == m);
            CHECK(fdl_topic_filters_overlap(a->b, a->n, tp->b, tp->n) == m);
            CHECK(fdl_topic_filters_overlap(tp->b, tp->n, a->b, a->n) == m);
        }
    }
}

/* No request is allowed both to X and to Y (X != Y, both safe), for any pair of actions. */
static void check_disjoint(fdl_policy *p, const item *req, size_t nreq, const fdl_policy_vars *vx,
                           const fdl_policy_vars *vy)
{
    for (size_t r = 0; r < nreq; r++) {
        bool ax[3], ay[3];
        for (int a = 0; a < 3; a++) {
            ax[a] = fdl_policy_check(p, (fdl_policy_action)a, req[r].p, req[r].n, vx, NULL) == FDL_POLICY_ALLOW;
            ay[a] = fdl_policy_check(p, (fdl_policy_action)a, req[r].p, req[r].n, vy, NULL) == FDL_POLICY_ALLOW;
        }
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                CHECK(!(ax[a] && ay[b]));
    }
}

/*
 * The audit's promise, statement by statement: when allow statement i grants
 * request R to X and allow statement j grants R to Y (X != Y, any actions),
 * then i and j both carry CROSS (i != j), or i carries WILDCARD or SHARED
 * (i == j). Deny statements are ignored, as the audit ignores them.
 */
static fdl_policy_finding g_findings[FDL_POLICY_MAX_STATEMENTS];

static void grants(const fdl_policy *p, item r, const fdl_policy_vars *v, bool *hit)
{
    for (size_t i = 0; i < fdl_policy_count(p); i++) {
        fdl_policy_statement s;
        CHECK(fdl_policy_get(p, i, &s) == FDL_POLICY_OK);
        hit[i] = false;
        if (s.effect != FDL_POLICY_ALLOW)
            continue;
        char e[FDL_POLICY_MAX_EXPANDED + 1];
        size_t en = 0;
        CHECK(fdl_policy_expand(p, i, v, e, sizeof e, &en) == FDL_POLICY_OK);
        hit[i] = s.action == FDL_POLICY_SUBSCRIBE ? fdl_topic_filter_covers(e, en, r.p, r.n)
                                                  : fdl_topic_matches(e, en, r.p, r.n);
    }
}

static void check_audit_promise(const fdl_policy *p, const item *req, size_t nreq, const fdl_policy_vars *vx,
                                const fdl_policy_vars *vy)
{
    static unsigned flags[FDL_POLICY_MAX_STATEMENTS];
    static bool hx[FDL_POLICY_MAX_STATEMENTS], hy[FDL_POLICY_MAX_STATEMENTS];
    size_t n = fdl_policy_count(p);
    size_t nf = fdl_policy_is_wildcard(p, g_findings, FDL_POLICY_MAX_STATEMENTS);
    CHECK(nf <= n);
    memset(flags, 0, sizeof flags);
    for (size_t k = 0; k < nf; k++) {
        CHECK(g_findings[k].statement < n && g_findings[k].flags != 0);
        CHECK(k == 0 || g_findings[k].statement > g_findings[k - 1].statement);
        flags[g_findings[k].statement] = g_findings[k].flags;
    }
    for (size_t r = 0; r < nreq; r++) {
        if (req[r].n > FDL_POLICY_MAX_REQUEST)
            continue;
        grants(p, req[r], vx, hx);
        grants(p, req[r], vy, hy);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                if (!hx[i] || !hy[j])
                    continue;
                if (i != j)
                    CHECK((flags[i] & FDL_POLICY_FINDING_CROSS) && (flags[j] & FDL_POLICY_FINDING_CROSS));
                else
                    CHECK(flags[i] & (FDL_POLICY_FINDING_WILDCARD | FDL_POLICY_FINDING_SHARED));
            }
    }
}

static fdl_policy *g_default;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_default)
        CHECK(fdl_policy_new_default(&g_default) == FDL_POLICY_OK);

    const char *text = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t text_len = nul ? (size_t)(nul - data) : size;

    /* Items after the NUL. */
    item items[3 + MAX_REQ];
    size_t nitems = 0;
    if (nul) {
        const char *p = (const char *)nul + 1, *end = (const char *)data + size;
        while (p <= end && nitems < 3 + MAX_REQ) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            items[nitems++] = (item){p, n < MAX_ITEM ? n : MAX_ITEM};
            if (!nl)
                break;
            p = nl + 1;
        }
    }
    item x = nitems > 0 ? items[0] : (item){"dev-1", 5};
    item y = nitems > 1 ? items[1] : (item){"dev-2", 5};
    item cid = nitems > 2 ? items[2] : (item){"c", 1};
    const item *req = nitems > 3 ? items + 3 : NULL;
    size_t nreq = nitems > 3 ? nitems - 3 : 0;
    fdl_policy_vars vx = {x.p, x.n, cid.p, cid.n}, vy = {y.p, y.n, cid.p, cid.n};

    /* Parse. */
    fdl_policy *p = (fdl_policy *)&p;
    fdl_policy_error err = {12345, NULL};
    fdl_policy_status st = fdl_policy_parse(text, text_len, &p, &err);
    CHECK(st == FDL_POLICY_OK || st == FDL_POLICY_ERR_SYNTAX || st == FDL_POLICY_ERR_RESOURCE ||
          st == FDL_POLICY_ERR_LIMIT);
    CHECK((st == FDL_POLICY_OK) == (p != NULL) && err.reason != NULL);
    size_t nlines = 1;
    for (size_t i = 0; i < text_len; i++)
        nlines += text[i] == '\n';
    if (st == FDL_POLICY_OK)
        CHECK(err.line == 0 && err.reason[0] == '\0');
    else
        CHECK(err.line <= nlines && err.reason[0] != '\0' && (err.line >= 1 || st == FDL_POLICY_ERR_LIMIT));

    /* The same parse with one allocation failing. */
    {
        fdl_policy *q = NULL;
        fdl_policy_error qerr;
        fdl_alloc_fail_nth(1 + size % 7);
        fdl_policy_status qs = fdl_policy_parse(text, text_len, &q, &qerr);
        fdl_alloc_fail_nth(0);
        CHECK(qs == st || qs == FDL_POLICY_ERR_NOMEM);
        CHECK((qs == FDL_POLICY_OK) == (q != NULL));
        fdl_policy_free(q);
    }

    g_nfilters = g_ntopics = 0;
    for (size_t r = 0; r < nreq; r++) {
        add_filter(req[r].p, req[r].n);
        add_topic(req[r].p, req[r].n);
    }

    if (p) {
        CHECK(fdl_policy_count(p) <= FDL_POLICY_MAX_STATEMENTS);
        fdl_policy_vars safe = {"s", 1, "c", 1};
        for (size_t i = 0; i < fdl_policy_count(p); i++) {
            fdl_policy_statement s;
            CHECK(fdl_policy_get(p, i, &s) == FDL_POLICY_OK);
            CHECK(s.resource_len > 0 && s.resource_len <= FDL_POLICY_MAX_LINE && s.line >= 1 && s.line <= nlines);
            CHECK(strlen(s.resource) == s.resource_len);
            const fdl_policy_vars *vs[2] = {&safe, &vx};
            for (int k = 0; k < 2; k++) {
                char e[FDL_POLICY_MAX_EXPANDED + 1];
                size_t en = 0;
                fdl_policy_status es = fdl_policy_expand(p, i, vs[k], e, sizeof e, &en);
                if (k == 1 && !vars_ok(&vx)) {
                    CHECK(es == FDL_POLICY_ERR_UNSAFE_VAR);
                    continue;
                }
                CHECK(es == FDL_POLICY_OK && en <= FDL_POLICY_MAX_EXPANDED);
                CHECK(fdl_topic_validate_filter(e, en) == FDL_TOPIC_OK);
                if (i < 8)
                    add_filter(e, en);
            }
        }
        for (size_t r = 0; r < nreq; r++)
            for (int a = 0; a < 3; a++) {
                check_request(p, (fdl_policy_action)a, req[r], &vx);
                check_request(p, (fdl_policy_action)a, req[r], &vy);
            }
        fdl_policy_finding fs[4];
        size_t nf = fdl_policy_is_wildcard(p, fs, 4);
        for (size_t i = 0; i < nf && i < 4; i++)
            CHECK(fs[i].flags != 0 && fs[i].statement < fdl_policy_count(p));
        bool distinct = vars_ok(&vx) && vars_ok(&vy) && (x.n != y.n || memcmp(x.p, y.p, x.n) != 0);
        if (distinct) {
            check_audit_promise(p, req, nreq, &vx, &vy);
            if (nf == 0)
                check_disjoint(p, req, nreq, &vx, &vy);
        }
    }

    /* The default policy. */
    bool distinct = vars_ok(&vx) && vars_ok(&vy) && (x.n != y.n || memcmp(x.p, y.p, x.n) != 0);
    if (distinct) {
        check_disjoint(g_default, req, nreq, &vx, &vy);
        char t[FDL_POLICY_MAX_VAR_LEN + 32];
        int n = snprintf(t, sizeof t, "telemetry/%.*s", (int)y.n, y.p);
        CHECK(fdl_policy_check(g_default, FDL_POLICY_PUBLISH, t, (size_t)n, &vx, NULL) == FDL_POLICY_DENY);
        n = snprintf(t, sizeof t, "commands/%.*s", (int)y.n, y.p);
        CHECK(fdl_policy_check(g_default, FDL_POLICY_SUBSCRIBE, t, (size_t)n, &vx, NULL) == FDL_POLICY_DENY);
        CHECK(fdl_policy_check(g_default, FDL_POLICY_SUBSCRIBE, "#", 1, &vx, NULL) == FDL_POLICY_DENY);
    }

    /* Relations over requests, expanded resources, and topics derived from all of them. */
    size_t nf0 = g_nfilters;
    item plus_values[3] = {{"x", 1}, {"", 0}, x};
    for (size_t i = 0; i < nf0; i++)
        for (int pv = 0; pv < 3; pv++)
            for (int hm = 0; hm < 3; hm++)
                derive_topic(&g_filters[i], plus_values[pv], hm);
    check_relations();

    fdl_policy_free(p);
    return 0;
}
