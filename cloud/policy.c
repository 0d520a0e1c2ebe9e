/* cloud/policy.c — policy templates, parsing, checks and audit (see policy.h). */
#include "cloud/policy.h"

#include "cloud/topic.h"
#include "sim/alloc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define VAR_THING "${thing}"
#define VAR_CLIENT_ID "${client_id}"
#define VAR_THING_LEN (sizeof VAR_THING - 1)
#define VAR_CLIENT_ID_LEN (sizeof VAR_CLIENT_ID - 1)

typedef struct stmt {
    fdl_policy_effect effect;
    fdl_policy_action action;
    unsigned line;
    char *res;          /* template, NUL-terminated (fdl_malloc) */
    size_t res_len;
} stmt;

struct fdl_policy {
    stmt *st;           /* fdl_malloc'd array of n statements */
    size_t n;
    atomic_uint_fast64_t checks, allowed, denied, unsafe_vars, bad_requests;
};

const char *fdl_policy_strerror(fdl_policy_status st)
{
    switch (st) {
    case FDL_POLICY_OK: return "ok";
    case FDL_POLICY_ERR_ARG: return "invalid argument";
    case FDL_POLICY_ERR_SYNTAX: return "policy syntax error";
    case FDL_POLICY_ERR_RESOURCE: return "invalid resource template";
    case FDL_POLICY_ERR_LIMIT: return "policy limit exceeded";
    case FDL_POLICY_ERR_NOMEM: return "out of memory";
    case FDL_POLICY_ERR_UNSAFE_VAR: return "unsafe variable value";
    }
    return "unknown policy status";
}

const char *fdl_policy_effect_name(fdl_policy_effect e)
{
    switch (e) {
    case FDL_POLICY_ALLOW: return "allow";
    case FDL_POLICY_DENY: return "deny";
    }
    return "?";
}

const char *fdl_policy_action_name(fdl_policy_action a)
{
    switch (a) {
    case FDL_POLICY_PUBLISH: return "publish";
    case FDL_POLICY_SUBSCRIBE: return "subscribe";
    case FDL_POLICY_RECEIVE: return "receive";
    }
    return "?";
}

/* ------------------------------------------------------------------------- */
/* Variable values                                                            */
/* ------------------------------------------------------------------------- */

fdl_policy_status fdl_policy_value_check(const char *value, size_t len, const char **why)
{
    const char *reason = NULL;
    if (value == NULL && len > 0)
        reason = "NULL value";
    else if (len == 0)
        reason = "empty";
    else if (len > FDL_POLICY_MAX_VAR_LEN)
        reason = "too long";
    else if (value[0] == '$')
        reason = "starts with '$'";
    else if (memchr(value, '\0', len))
        reason = "contains NUL";
    else if (memchr(value, '/', len))
        reason = "contains '/'";
    else if (memchr(value, '+', len))
        reason = "contains '+'";
    else if (memchr(value, '#', len))
        reason = "contains '#'";
    else {
        for (size_t i = 0; i < len && !reason; i++) {
            unsigned char c = (unsigned char)value[i];
            if (c < 0x20 || c == 0x7F)
                reason = "contains a control character";
        }
        /* A name validation covers the UTF-8 rules (no wildcards remain to trip it). */
        if (!reason && fdl_topic_validate_name(value, len) != FDL_TOPIC_OK)
            reason = "not well-formed UTF-8";
    }
    if (why)
        *why = reason ? reason : "";
    return reason ? FDL_POLICY_ERR_UNSAFE_VAR : FDL_POLICY_OK;
}

/* Checks both variables; on failure names the variable and the reason. */
static bool vars_safe(const fdl_policy_vars *v, const char **var, const char **why)
{
    if (fdl_policy_value_check(v->thing, v->thing_len, why) != FDL_POLICY_OK) {
        *var = "thing";
        return false;
    }
    if (fdl_policy_value_check(v->client_id, v->client_id_len, why) != FDL_POLICY_OK) {
        *var = "client_id";
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------- */
/* Templates                                                                  */
/* ------------------------------------------------------------------------- */

/* Level kinds of a template, for the audit. */
enum lvl_kind { LVL_LIT, LVL_PLUS, LVL_HASH, LVL_THING, LVL_CID };

typedef struct tlevel {
    const char *p;
    size_t n;
    enum lvl_kind kind;
} tlevel;

/* The topic cursor (cloud/topic.h), plus what kind of template level it yielded. */
static bool next_tlevel(const char *s, size_t len, size_t *pos, tlevel *out)
{
    fdl_topic_level l;
    if (!fdl_topic_next_level(s, len, pos, &l))
        return false;
    const char *start = l.p;
    size_t n = l.n;
    out->p = start;
    out->n = n;
    if (n == 1 && start[0] == '+')
        out->kind = LVL_PLUS;
    else if (n == 1 && start[0] == '#')
        out->kind = LVL_HASH;
    else if (n == VAR_THING_LEN && memcmp(start, VAR_THING, n) == 0)
        out->kind = LVL_THING;
    else if (n == VAR_CLIENT_ID_LEN && memcmp(start, VAR_CLIENT_ID, n) == 0)
        out->kind = LVL_CID;
    else
        out->kind = LVL_LIT;
    return true;
}

/*
 * Validates a resource template: every "${" starts a whole-level known
 * variable, at most FDL_POLICY_MAX_VARS of them, the worst-case expansion fits
 * FDL_POLICY_MAX_EXPANDED, and the template with each variable replaced by a
 * safe value is a valid topic filter. Returns OK or RESOURCE/LIMIT with *why.
 */
static fdl_policy_status check_template(const char *res, size_t len, const char **why)
{
    char probe[FDL_POLICY_MAX_EXPANDED];
    size_t pos = 0, out = 0, nvars = 0, fixed = 0;
    tlevel l = {NULL, 0, LVL_LIT};
    while (next_tlevel(res, len, &pos, &l)) {
        if (l.kind == LVL_THING || l.kind == LVL_CID) {
            if (++nvars > FDL_POLICY_MAX_VARS) {
                *why = "too many variables in one resource";
                return FDL_POLICY_ERR_LIMIT;
            }
        } else if (l.n >= 2 && memmem(l.p, l.n, "${", 2) != NULL) {
            *why = "unknown variable, or a variable not alone in its level";
            return FDL_POLICY_ERR_RESOURCE;
        } else {
            fixed += l.n;
        }
        if (pos <= len)
            fixed++;    /* the '/' after this level */
    }
    if (fixed + nvars * FDL_POLICY_MAX_VAR_LEN > FDL_POLICY_MAX_EXPANDED) {
        *why = "resource could expand beyond FDL_POLICY_MAX_EXPANDED bytes";
        return FDL_POLICY_ERR_LIMIT;
    }
    /* The probe is at most fixed + nvars bytes, well within the buffer. */
    pos = 0;
    while (next_tlevel(res, len, &pos, &l)) {
        if (l.kind == LVL_THING || l.kind == LVL_CID) {
            probe[out++] = 'x';
        } else {
            memcpy(probe + out, l.p, l.n);
            out += l.n;
        }
        if (pos <= len)
            probe[out++] = '/';
    }
    fdl_topic_status ts = fdl_topic_validate_filter(probe, out);
    if (ts != FDL_TOPIC_OK) {
        *why = fdl_topic_strerror(ts);
        return FDL_POLICY_ERR_RESOURCE;
    }
    return FDL_POLICY_OK;
}

/* Expands a parsed template; the caller has checked the vars and cap >= MAX_EXPANDED + 1. */
static size_t expand_into(const stmt *s, const fdl_policy_vars *v, char *buf)
{
    size_t pos = 0, out = 0;
    tlevel l = {NULL, 0, LVL_LIT};
    while (next_tlevel(s->res, s->res_len, &pos, &l)) {
        const char *src = l.p;
        size_t n = l.n;
        if (l.kind == LVL_THING) {
            src = v->thing;
            n = v->thing_len;
        } else if (l.kind == LVL_CID) {
            src = v->client_id;
            n = v->client_id_len;
        }
        memcpy(buf + out, src, n);
        out += n;
        if (pos <= s->res_len)
            buf[out++] = '/';
    }
    buf[out] = '\0';
    return out;
}

/* ------------------------------------------------------------------------- */
/* Parsing                                                                    */
/* ------------------------------------------------------------------------- */

void fdl_policy_free(fdl_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        fdl_free(p->st[i].res);
    fdl_free(p->st);
    fdl_free(p);
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Splits line[0..n) into at most max fields; returns the count (max + 1 when there are more). */
static size_t split_fields(const char *line, size_t n, const char **f, size_t *fl, size_t max)
{
    size_t count = 0, i = 0;
    while (i < n) {
        while (i < n && is_blank(line[i]))
            i++;
        if (i == n)
            break;
        size_t start = i;
        while (i < n && !is_blank(line[i]))
            i++;
        if (count == max)
            return max + 1;
        f[count] = line + start;
        fl[count] = i - start;
        count++;
    }
    return count;
}

static bool field_is(const char *f, size_t n, const char *word)
{
    return n == strlen(word) && memcmp(f, word, n) == 0;
}

/* Parses one non-comment line into *s (res not yet allocated). */
static fdl_policy_status parse_line(const char *line, size_t n, stmt *s, const char **res, size_t *res_len,
                                    const char **why)
{
    const char *f[3];
    size_t fl[3];
    size_t nf = split_fields(line, n, f, fl, 3);
    if (nf < 3) {
        *why = "expected: <allow|deny> <publish|subscribe|receive> <resource>";
        return FDL_POLICY_ERR_SYNTAX;
    }
    if (nf > 3) {
        *why = "unexpected text after the resource (resources cannot contain spaces)";
        return FDL_POLICY_ERR_SYNTAX;
    }
    if (field_is(f[0], fl[0], "allow"))
        s->effect = FDL_POLICY_ALLOW;
    else if (field_is(f[0], fl[0], "deny"))
        s->effect = FDL_POLICY_DENY;
    else {
        *why = "unknown effect (expected allow or deny)";
        return FDL_POLICY_ERR_SYNTAX;
    }
    if (field_is(f[1], fl[1], "publish"))
        s->action = FDL_POLICY_PUBLISH;
    else if (field_is(f[1], fl[1], "subscribe"))
        s->action = FDL_POLICY_SUBSCRIBE;
    else if (field_is(f[1], fl[1], "receive"))
        s->action = FDL_POLICY_RECEIVE;
    else {
        *why = "unknown action (expected publish, subscribe or receive)";
        return FDL_POLICY_ERR_SYNTAX;
    }
    fdl_policy_status st = check_template(f[2], fl[2], why);
    if (st != FDL_POLICY_OK)
        return st;
    *res = f[2];
    *res_len = fl[2];
    return FDL_POLICY_OK;
}

fdl_policy_status fdl_policy_parse(const char *text, size_t len, fdl_policy **out, fdl_policy_error *err)
{
    fdl_policy_status st = FDL_POLICY_ERR_ARG;
    const char *why = "NULL argument";
    unsigned lineno = 0, err_line = 0;   /* err_line: set only for errors in the text */
    fdl_policy *p = NULL;
    size_t cap = 0;

    if (out)
        *out = NULL;
    if (!out || (!text && len > 0))
        goto cleanup;
    if (len > FDL_POLICY_MAX_TEXT) {
        st = FDL_POLICY_ERR_LIMIT;
        why = "policy text longer than FDL_POLICY_MAX_TEXT bytes";
        goto cleanup;
    }
    st = FDL_POLICY_ERR_NOMEM;
    why = "out of memory";
    p = fdl_calloc(1, sizeof *p);
    if (!p)
        goto cleanup;

    size_t pos = 0;
    while (pos < len) {
        lineno++;
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n > FDL_POLICY_MAX_LINE) {
            st = FDL_POLICY_ERR_LIMIT;
            why = "line longer than FDL_POLICY_MAX_LINE bytes";
            err_line = lineno;
            goto cleanup;
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)line[i];
            if (c == '\0' || (c < 0x20 && c != '\t') || c == 0x7F) {
                st = FDL_POLICY_ERR_SYNTAX;
                why = c == '\0' ? "NUL byte" : "control character";
                err_line = lineno;
                goto cleanup;
            }
        }
        size_t i = 0;
        while (i < n && is_blank(line[i]))
            i++;
        if (i == n || line[i] == '#')
            continue;   /* blank line or comment */
        if (p->n == FDL_POLICY_MAX_STATEMENTS) {
            st = FDL_POLICY_ERR_LIMIT;
            why = "more than FDL_POLICY_MAX_STATEMENTS statements";
            err_line = lineno;
            goto cleanup;
        }
        stmt s = {0};
        const char *res = NULL;
        size_t res_len = 0;
        st = parse_line(line, n, &s, &res, &res_len, &why);
        if (st != FDL_POLICY_OK) {
            err_line = lineno;
            goto cleanup;
        }
        if (p->n == cap) {
            /* Doubling from 8 up to the ceiling; bounded by MAX_STATEMENTS. */
            size_t ncap = cap ? cap * 2 : 8;
            if (ncap > FDL_POLICY_MAX_STATEMENTS)
                ncap = FDL_POLICY_MAX_STATEMENTS;
            stmt *grown = fdl_realloc(p->st, ncap * sizeof *grown);
            if (!grown) {
                st = FDL_POLICY_ERR_NOMEM;
                why = "out of memory";
                goto cleanup;
            }
            p->st = grown;
            cap = ncap;
        }
        s.line = lineno;
        s.res_len = res_len;
        s.res = fdl_malloc(res_len + 1);
        if (!s.res) {
            st = FDL_POLICY_ERR_NOMEM;
            why = "out of memory";
            goto cleanup;
        }
        memcpy(s.res, res, res_len);
        s.res[res_len] = '\0';
        p->st[p->n++] = s;
    }
    st = FDL_POLICY_OK;
    why = "";
    *out = p;
    p = NULL;

cleanup:
    fdl_policy_free(p);
    if (err) {
        err->line = err_line;
        err->reason = why;
    }
    return st;
}

fdl_policy_status fdl_policy_new_default(fdl_policy **out)
{
    static const char text[] = FDL_POLICY_DEFAULT_DEVICE;
    return fdl_policy_parse(text, sizeof text - 1, out, NULL);
}

size_t fdl_policy_count(const fdl_policy *p)
{
    return p ? p->n : 0;
}

fdl_policy_status fdl_policy_get(const fdl_policy *p, size_t i, fdl_policy_statement *out)
{
    if (!p || !out || i >= p->n)
        return FDL_POLICY_ERR_ARG;
    const stmt *s = &p->st[i];
    *out = (fdl_policy_statement){s->effect, s->action, s->res, s->res_len, s->line};
    return FDL_POLICY_OK;
}

fdl_policy_status fdl_policy_expand(const fdl_policy *p, size_t i, const fdl_policy_vars *vars, char *buf,
                                    size_t cap, size_t *out_len)
{
    if (!p || !vars || !buf || !out_len || i >= p->n)
        return FDL_POLICY_ERR_ARG;
    const char *var, *why;
    if (!vars_safe(vars, &var, &why))
        return FDL_POLICY_ERR_UNSAFE_VAR;
    char tmp[FDL_POLICY_MAX_EXPANDED + 1];
    size_t n = expand_into(&p->st[i], vars, tmp);
    if (n + 1 > cap)
        return FDL_POLICY_ERR_LIMIT;
    memcpy(buf, tmp, n + 1);
    *out_len = n;
    return FDL_POLICY_OK;
}

/* ------------------------------------------------------------------------- */
/* Checks                                                                     */
/* ------------------------------------------------------------------------- */

static fdl_policy_effect finish(fdl_policy *p, fdl_policy_decision *d, fdl_policy_decision *why)
{
    if (p) {
        atomic_fetch_add(d->effect == FDL_POLICY_ALLOW ? &p->allowed : &p->denied, 1);
        if (d->reason == FDL_POLICY_BY_UNSAFE_VAR)
            atomic_fetch_add(&p->unsafe_vars, 1);
        else if (d->reason == FDL_POLICY_BY_BAD_REQUEST || d->reason == FDL_POLICY_BY_BAD_ARG)
            atomic_fetch_add(&p->bad_requests, 1);
    }
    if (why)
        *why = *d;
    return d->effect;
}

fdl_policy_effect fdl_policy_check(fdl_policy *p, fdl_policy_action action, const char *request, size_t len,
                                   const fdl_policy_vars *vars, fdl_policy_decision *why)
{
    fdl_policy_decision d = {FDL_POLICY_DENY, FDL_POLICY_BY_BAD_ARG, SIZE_MAX, 0, NULL, "invalid argument"};
    if (!p)
        return finish(NULL, &d, why);
    atomic_fetch_add(&p->checks, 1);
    if (!vars || (action != FDL_POLICY_PUBLISH && action != FDL_POLICY_SUBSCRIBE && action != FDL_POLICY_RECEIVE))
        return finish(p, &d, why);

    /* 1. The identity first: an unsafe one gets nothing, whatever it asks for. */
    if (!vars_safe(vars, &d.var, &d.detail)) {
        d.reason = FDL_POLICY_BY_UNSAFE_VAR;
        return finish(p, &d, why);
    }

    /* 2. The request itself. */
    d.reason = FDL_POLICY_BY_BAD_REQUEST;
    if (len > FDL_POLICY_MAX_REQUEST) {
        d.detail = "request longer than FDL_POLICY_MAX_REQUEST bytes";
        return finish(p, &d, why);
    }
    bool sub = (action == FDL_POLICY_SUBSCRIBE);
    fdl_topic_status ts = sub ? fdl_topic_validate_filter(request, len) : fdl_topic_validate_name(request, len);
    if (ts != FDL_TOPIC_OK) {
        d.detail = fdl_topic_strerror(ts);
        return finish(p, &d, why);
    }

    /* 3. Statements: any applicable deny wins; else the first applicable allow. */
    char exp[FDL_POLICY_MAX_EXPANDED + 1];
    size_t allow_at = SIZE_MAX;
    for (size_t i = 0; i < p->n; i++) {
        const stmt *s = &p->st[i];
        if (s->action != action)
            continue;
        if (s->effect == FDL_POLICY_ALLOW && allow_at != SIZE_MAX)
            continue;   /* an allow is already found; only denies can change the answer */
        size_t n = expand_into(s, vars, exp);
        bool hit;
        if (!sub)
            hit = fdl_topic_matches(exp, n, request, len);
        else if (s->effect == FDL_POLICY_DENY)
            hit = fdl_topic_filters_overlap(exp, n, request, len);
        else
            hit = fdl_topic_filter_covers(exp, n, request, len);
        if (!hit)
            continue;
        if (s->effect == FDL_POLICY_DENY) {
            d = (fdl_policy_decision){FDL_POLICY_DENY, FDL_POLICY_BY_STATEMENT, i, s->line, NULL, "denied by statement"};
            return finish(p, &d, why);
        }
        allow_at = i;
    }
    if (allow_at != SIZE_MAX)
        d = (fdl_policy_decision){FDL_POLICY_ALLOW, FDL_POLICY_BY_STATEMENT, allow_at, p->st[allow_at].line, NULL,
                                  "allowed by statement"};
    else
        d = (fdl_policy_decision){FDL_POLICY_DENY, FDL_POLICY_BY_DEFAULT, SIZE_MAX, 0, NULL, "default deny"};
    return finish(p, &d, why);
}

int fdl_policy_decision_format(const fdl_policy *p, const fdl_policy_decision *d, char *buf, size_t cap)
{
    if (!d)
        return snprintf(buf, cap, "deny: no decision");
    const char *eff = fdl_policy_effect_name(d->effect);
    switch (d->reason) {
    case FDL_POLICY_BY_STATEMENT:
        if (p && d->index < p->n) {
            const stmt *s = &p->st[d->index];
            return snprintf(buf, cap, "%s: statement %zu (line %u: %s %s %s)", eff, d->index, s->line,
                            fdl_policy_effect_name(s->effect), fdl_policy_action_name(s->action), s->res);
        }
        return snprintf(buf, cap, "%s: statement %zu (line %u)", eff, d->index, d->line);
    case FDL_POLICY_BY_DEFAULT:
        return snprintf(buf, cap, "%s: default deny", eff);
    case FDL_POLICY_BY_UNSAFE_VAR:
        return snprintf(buf, cap, "%s: unsafe %s: %s", eff, d->var ? d->var : "variable",
                        d->detail ? d->detail : "");
    case FDL_POLICY_BY_BAD_REQUEST:
        return snprintf(buf, cap, "%s: bad request: %s", eff, d->detail ? d->detail : "");
    case FDL_POLICY_BY_BAD_ARG:
        break;
    }
    return snprintf(buf, cap, "%s: invalid argument", eff);
}

fdl_policy_stats fdl_policy_get_stats(const fdl_policy *p)
{
    fdl_policy_stats s = {0};
    if (!p)
        return s;
    /* The counters are atomic; loading through a const object is fine for reads. */
    fdl_policy *q = (fdl_policy *)p;
    s.checks = atomic_load(&q->checks);
    s.allowed = atomic_load(&q->allowed);
    s.denied = atomic_load(&q->denied);
    s.unsafe_vars = atomic_load(&q->unsafe_vars);
    s.bad_requests = atomic_load(&q->bad_requests);
    return s;
}

/* ------------------------------------------------------------------------- */
/* Audit                                                                      */
/* ------------------------------------------------------------------------- */

/* A literal level that some safe variable value could equal. */
static bool literal_could_be_var(tlevel l)
{
    return fdl_policy_value_check(l.p, l.n, NULL) == FDL_POLICY_OK;
}

/*
 * Can statement a expanded with thing X and statement b expanded with thing
 * Y != X match a common topic, with client ids arbitrary? Sound
 * over-approximation: it answers false only when a level proves the answer is
 * no (two different literals, X against Y at the same level, a variable against
 * a literal no safe value can equal, the '$' rule, or one template ending
 * where the other has no '#'); a variable bound at one level is not remembered
 * at the next, and the empty-topic corner is ignored.
 */
static bool cross_overlap(const stmt *a, const stmt *b)
{
    size_t ap = 0, bp = 0;
    tlevel al = {NULL, 0, LVL_LIT}, bl = {NULL, 0, LVL_LIT};
    for (size_t k = 0;; k++) {
        bool ha = next_tlevel(a->res, a->res_len, &ap, &al);
        bool hb = next_tlevel(b->res, b->res_len, &bp, &bl);
        if (!ha && !hb)
            return true;
        if (!ha)
            return bl.kind == LVL_HASH;
        if (!hb)
            return al.kind == LVL_HASH;
        bool a_dollar = al.kind == LVL_LIT && al.n > 0 && al.p[0] == '$';
        bool b_dollar = bl.kind == LVL_LIT && bl.n > 0 && bl.p[0] == '$';
        if (k == 0 && (((al.kind == LVL_PLUS || al.kind == LVL_HASH) && b_dollar) ||
                       ((bl.kind == LVL_PLUS || bl.kind == LVL_HASH) && a_dollar)))
            return false;
        if (al.kind == LVL_HASH || bl.kind == LVL_HASH)
            return true;
        if (al.kind == LVL_THING && bl.kind == LVL_THING)
            return false;   /* the same topic level would have to equal X and Y */
        if (al.kind == LVL_LIT && bl.kind == LVL_LIT) {
            if (al.n != bl.n || memcmp(al.p, bl.p, al.n) != 0)
                return false;
            continue;
        }
        if (al.kind == LVL_LIT && (bl.kind == LVL_THING || bl.kind == LVL_CID) && !literal_could_be_var(al))
            return false;
        if (bl.kind == LVL_LIT && (al.kind == LVL_THING || al.kind == LVL_CID) && !literal_could_be_var(bl))
            return false;
    }
}

/* Per-statement rules: WILDCARD, SHARED, CLIENT_ID. */
static unsigned statement_flags(const stmt *s)
{
    size_t pos = 0;
    tlevel l = {NULL, 0, LVL_LIT};
    bool seen_thing = false, wild_before = false, has_cid = false;
    while (next_tlevel(s->res, s->res_len, &pos, &l)) {
        if (l.kind == LVL_THING)
            seen_thing = true;
        else if (l.kind == LVL_CID)
            has_cid = true;
        else if ((l.kind == LVL_PLUS || l.kind == LVL_HASH) && !seen_thing)
            wild_before = true;
    }
    unsigned f = 0;
    if (wild_before)
        f |= FDL_POLICY_FINDING_WILDCARD;
    if (!seen_thing)
        f |= FDL_POLICY_FINDING_SHARED;
    if (!seen_thing && has_cid)
        f |= FDL_POLICY_FINDING_CLIENT_ID;
    return f;
}

size_t fdl_policy_is_wildcard(const fdl_policy *p, fdl_policy_finding *out, size_t cap)
{
    size_t flagged = 0;
    if (!p)
        return 0;
    for (size_t i = 0; i < p->n; i++) {
        const stmt *s = &p->st[i];
        if (s->effect != FDL_POLICY_ALLOW)
            continue;
        unsigned f = statement_flags(s);
        size_t other = SIZE_MAX;
        for (size_t j = 0; j < p->n && other == SIZE_MAX; j++) {
            if (j != i && p->st[j].effect == FDL_POLICY_ALLOW && cross_overlap(s, &p->st[j]))
                other = j;
        }
        if (other != SIZE_MAX)
            f |= FDL_POLICY_FINDING_CROSS;
        if (!f)
            continue;
        if (out && flagged < cap)
            out[flagged] = (fdl_policy_finding){i, s->line, f, other};
        flagged++;
    }
    return flagged;
}
