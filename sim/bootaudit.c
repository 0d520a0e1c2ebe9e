/* sim/bootaudit.c — the devices' boot records checked against images the harness verifies itself (see bootaudit.h). */
#include "sim/bootaudit.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/sha256.h>

#include "cloud/json.h"
#include "devices/keyring.h"
#include "sim/alloc.h"

#define LINE_TOKENS 512u     /* one boot record: 6 tiers x ~20 tokens, with room */

typedef struct known {
    uint8_t sha[32];
    uint8_t tier;
    uint32_t counter;
    int parsed;
    fdl_fw_hdr h;
    int ok;
    char why[96];
} known;

typedef struct known_set {
    known *k;
    size_t n, cap;
    /* The keys some genuine keyring lists, with the use each is listed for: the
     * union over every root-signed keyring the harness knows (the factory's and any
     * released since, e.g. after a key rotation). */
    fdl_keyring_entry *keys;
    size_t n_keys, cap_keys;
} known_set;

static int read_all(const char *path, size_t max, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    for (;;) {
        if (n == cap) {
            if (cap >= max)
                goto cleanup;
            size_t nc = cap ? cap * 2 : 8192;
            if (nc > max)
                nc = max;
            uint8_t *nb = fdl_realloc(buf, nc + 1);
            if (!nb)
                goto cleanup;
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    if (ferror(f))
        goto cleanup;
    if (!buf && !(buf = fdl_malloc(1)))
        goto cleanup;
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
cleanup:
    fdl_free(buf);
    fclose(f);
    return rc;
}

static int add_key(known_set *ks, const fdl_keyring_entry *e)
{
    for (size_t i = 0; i < ks->n_keys; i++)
        if (ks->keys[i].usage == e->usage && !memcmp(ks->keys[i].key_id, e->key_id, FDL_FW_KEYID_LEN))
            return 0;
    if (ks->n_keys == ks->cap_keys) {
        size_t nc = ks->cap_keys ? ks->cap_keys * 2 : 16;
        fdl_keyring_entry *nk = fdl_realloc(ks->keys, nc * sizeof *nk);
        if (!nk)
            return -1;
        ks->keys = nk;
        ks->cap_keys = nc;
    }
    ks->keys[ks->n_keys++] = *e;
    return 0;
}

/* First pass over one image file: its hash and header; a root-signed keyring adds its keys. */
static int take_image(const uint8_t *img, size_t len, const uint8_t root_pub[FDL_FW_PUB_LEN], known_set *ks,
                      known *k)
{
    const uint8_t *payload = NULL;
    mbedtls_sha256(img, len, k->sha, 0);
    fdl_fw_status st = fdl_fwimage_parse(img, len, &k->h, &payload);
    if (st != FDL_FW_OK) {
        snprintf(k->why, sizeof k->why, "does not parse: %s", fdl_fw_strerror(st));
        return 0;
    }
    k->parsed = 1;
    k->tier = k->h.tier;
    k->counter = k->h.counter;
    if (k->h.tier == FDL_TIER_BOOTLOADER || k->h.tier == FDL_TIER_KEYRING) {
        uint8_t id[FDL_FW_KEYID_LEN];
        fdl_fw_key_id(root_pub, id);
        st = memcmp(id, k->h.key_id, sizeof id) ? FDL_FW_ERR_KEY_UNKNOWN : fdl_fwimage_verify_sig(&k->h, root_pub);
        if (st != FDL_FW_OK) {
            snprintf(k->why, sizeof k->why, "%s", fdl_fw_strerror(st));
            return 0;
        }
        k->ok = 1;
        fdl_keyring kr;
        if (k->h.tier == FDL_TIER_KEYRING && fdl_keyring_parse(payload, k->h.length, &kr) == FDL_KR_OK)
            for (unsigned i = 0; i < kr.n; i++)
                if (add_key(ks, &kr.e[i]) != 0)
                    return -1;
    }
    return 0;
}

/* Second pass: tiers 2..5 against the keys some genuine keyring lists for their own tier. */
static void judge_image(const known_set *ks, known *k)
{
    if (!k->parsed || k->tier == FDL_TIER_BOOTLOADER || k->tier == FDL_TIER_KEYRING)
        return;
    fdl_fw_status st = FDL_FW_ERR_KEY_UNKNOWN;
    for (size_t i = 0; i < ks->n_keys; i++)
        if (ks->keys[i].usage == k->tier && !memcmp(ks->keys[i].key_id, k->h.key_id, FDL_FW_KEYID_LEN)) {
            st = fdl_fwimage_verify_sig(&k->h, ks->keys[i].pub);
            break;
        }
    if (st == FDL_FW_OK && k->h.hw_rev != 0 && k->h.hw_rev != FDL_FWENV_HW_REV)
        st = FDL_FW_ERR_HW;
    if (st != FDL_FW_OK) {
        snprintf(k->why, sizeof k->why, "%s", fdl_fw_strerror(st));
        return;
    }
    k->ok = 1;
}

/* Every *.img of dir into the set (first pass). */
static int scan_dir(const char *dir, const uint8_t root_pub[FDL_FW_PUB_LEN], known_set *ks)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;   /* an empty store has no directory yet */
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 4, ".img") != 0)
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        uint8_t *img = NULL;
        size_t len = 0;
        if (read_all(path, FDL_FW_HDR_LEN + FDL_FW_PAYLOAD_MAX + 1, &img, &len) != 0)
            continue;
        if (ks->n == ks->cap) {
            size_t nc = ks->cap ? ks->cap * 2 : 64;
            known *nk = fdl_realloc(ks->k, nc * sizeof *nk);
            if (!nk) {
                fdl_free(img);
                rc = -1;
                break;
            }
            ks->k = nk;
            ks->cap = nc;
        }
        known *k = &ks->k[ks->n++];
        memset(k, 0, sizeof *k);
        rc = take_image(img, len, root_pub, ks, k);
        fdl_free(img);
        if (rc != 0)
            break;
    }
    closedir(d);
    return rc;
}

static const known *find_known(const known_set *ks, const uint8_t sha[32])
{
    for (size_t i = 0; i < ks->n; i++)
        if (!memcmp(ks->k[i].sha, sha, 32))
            return &ks->k[i];
    return NULL;
}

/* ---- boot records ---------------------------------------------------------------------- */

/* Index of member key of object obj, or 0. */
static size_t member(const uint8_t *b, const fdl_jv_tok *t, size_t n, size_t obj, const char *key)
{
    for (size_t i = obj + 1; i + 1 < n && i < t[obj].end; i = t[i + 1].end) {
        if (t[i].parent == obj && (t[i].flags & FDL_JV_F_KEY) && fdl_jv_str_eq(b, &t[i], key, strlen(key)))
            return i + 1;
    }
    return 0;
}

static bool mbool(const uint8_t *b, const fdl_jv_tok *t, size_t n, size_t obj, const char *key)
{
    size_t v = member(b, t, n, obj, key);
    return v && t[v].type == FDL_JV_TRUE;
}

static uint64_t muint(const uint8_t *b, const fdl_jv_tok *t, size_t n, size_t obj, const char *key)
{
    size_t v = member(b, t, n, obj, key);
    int64_t x = 0;
    if (!v || t[v].type != FDL_JV_NUMBER || fdl_jv_number_int(b + t[v].start, t[v].len, &x) != FDL_JV_OK || x < 0)
        return 0;
    return (uint64_t)x;
}

static void mstr(const uint8_t *b, const fdl_jv_tok *t, size_t n, size_t obj, const char *key, char *out,
                 size_t cap)
{
    size_t v = member(b, t, n, obj, key);
    out[0] = '\0';
    if (v && t[v].type == FDL_JV_STRING && fdl_jv_str_copy(b, &t[v], out, cap, NULL) != FDL_JV_OK)
        out[0] = '\0';
}

/* One tier of one boot record, as the callbacks see it. */
typedef struct ran_tier {
    const char *name;
    uint8_t sha[32];
    bool have_sha, verified, trial;
    uint32_t counter;
    char version[16];
} ran_tier;

typedef struct boot_line {
    uint64_t boot;
    char outcome[16];
    bool reverted;
    char why[160];
} boot_line;

/* Calls fn for every tier that ran in every boot of the file; returns the number of boots or -1. */
typedef void (*ran_fn)(void *ctx, const boot_line *b, const ran_tier *r);
typedef void (*boot_fn)(void *ctx, const boot_line *b);

static long walk_records(const char *path, ran_fn on_ran, boot_fn on_boot, void *ctx)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (read_all(path, FDL_BOOTAUDIT_FILE_MAX, &buf, &len) != 0)
        return -1;
    fdl_jv_tok *t = fdl_calloc(LINE_TOKENS, sizeof *t);
    long boots = 0;
    if (!t) {
        fdl_free(buf);
        return -1;
    }
    for (size_t at = 0; at < len;) {
        uint8_t *nl = memchr(buf + at, '\n', len - at);
        size_t ll = nl ? (size_t)(nl - (buf + at)) : len - at;
        size_t n = 0;
        const uint8_t *b = buf + at;
        at += ll + 1;
        if (ll == 0 || fdl_jv_parse(b, ll, NULL, t, LINE_TOKENS, &n, NULL) != FDL_JV_OK || t[0].type != FDL_JV_OBJECT)
            continue;   /* a line cut by a crash of the writer: not a boot */
        boot_line bl;
        memset(&bl, 0, sizeof bl);
        bl.boot = muint(b, t, n, 0, "boot");
        bl.reverted = mbool(b, t, n, 0, "reverted");
        mstr(b, t, n, 0, "outcome", bl.outcome, sizeof bl.outcome);
        mstr(b, t, n, 0, "why", bl.why, sizeof bl.why);
        boots++;
        if (on_boot)
            on_boot(ctx, &bl);
        size_t tiers = member(b, t, n, 0, "tiers");
        if (!tiers || t[tiers].type != FDL_JV_OBJECT)
            continue;
        for (size_t i = tiers + 1; i + 1 < n && i < t[tiers].end; i = t[i + 1].end) {
            if (t[i].parent != tiers || !(t[i].flags & FDL_JV_F_KEY) || t[i + 1].type != FDL_JV_OBJECT)
                continue;
            size_t obj = i + 1;
            if (!mbool(b, t, n, obj, "ran"))
                continue;
            char name[24], sha[80];
            ran_tier r;
            memset(&r, 0, sizeof r);
            if (fdl_jv_str_copy(b, &t[i], name, sizeof name, NULL) != FDL_JV_OK)
                continue;
            r.name = name;
            mstr(b, t, n, obj, "sha256", sha, sizeof sha);
            r.have_sha = fdl_fw_hex_decode(sha, r.sha, 32, 0) == 0;
            r.verified = mbool(b, t, n, obj, "verified");
            r.trial = mbool(b, t, n, obj, "trial");
            r.counter = (uint32_t)muint(b, t, n, obj, "counter");
            mstr(b, t, n, obj, "version", r.version, sizeof r.version);
            on_ran(ctx, &bl, &r);
        }
    }
    fdl_free(t);
    fdl_free(buf);
    return boots;
}

typedef struct audit_ctx {
    const char *id;
    const known_set *ks;
    fdl_bootaudit *out;
    uint32_t floor[FDL_TIER_COUNT];   /* highest counter run out of trial, per tier */
} audit_ctx;

static void violation(audit_ctx *a, const boot_line *b, const ran_tier *r, const char *what)
{
    a->out->violations++;
    if (!a->out->first_violation[0])
        snprintf(a->out->first_violation, sizeof a->out->first_violation, "%s boot %llu, %s: %s", a->id,
                 (unsigned long long)b->boot, r->name, what);
}

static void audit_boot(void *ctx, const boot_line *b)
{
    audit_ctx *a = ctx;
    a->out->boots++;
    a->out->recovery_boots += !strcmp(b->outcome, "recovery");
    a->out->trial_boots += !strcmp(b->outcome, "trial");
    a->out->reverted_boots += b->reverted;
}

static void audit_ran(void *ctx, const boot_line *b, const ran_tier *r)
{
    audit_ctx *a = ctx;
    char what[160];
    a->out->images_ran++;
    fdl_fw_tier tier = fdl_fw_tier_parse(r->name);
    if (!r->verified)
        violation(a, b, r, "ran without its checks passing (verified = false)");
    if (!r->have_sha) {
        violation(a, b, r, "the record names no image");
        return;
    }
    const known *k = find_known(a->ks, r->sha);
    if (!k) {
        violation(a, b, r, "an image the harness cannot find in the factory images or the artifact store ran");
        return;
    }
    if (!k->ok) {
        snprintf(what, sizeof what, "an image that fails its checks ran: %s", k->why);
        violation(a, b, r, what);
        return;
    }
    if (k->tier != tier) {
        violation(a, b, r, "an image of another tier ran in this one");
        return;
    }
    if (tier < FDL_TIER_COUNT && k->counter < a->floor[tier]) {
        snprintf(what, sizeof what, "rollback: counter %u ran after counter %u had run out of trial", k->counter,
                 a->floor[tier]);
        violation(a, b, r, what);
    }
    if (!r->trial && tier < FDL_TIER_COUNT && k->counter > a->floor[tier])
        a->floor[tier] = k->counter;
}

int fdl_bootaudit_run(const fdl_state *st, const fdl_fwenv *fw, uint32_t first, uint32_t n, fdl_bootaudit *out,
                      char *err, size_t errcap)
{
    memset(out, 0, sizeof *out);
    const fdl_fw_factory *f = fdl_fwenv_factory(fw);
    known_set ks = {0};
    if (scan_dir(f->factory_dir, f->root_pub, &ks) != 0 || scan_dir(fdl_fwenv_artifacts_dir(fw), f->root_pub, &ks) != 0) {
        snprintf(err, errcap, "boot audit: out of memory reading the known images");
        fdl_free(ks.k);
        fdl_free(ks.keys);
        return -1;
    }
    for (size_t i = 0; i < ks.n; i++)
        judge_image(&ks, &ks.k[i]);
    out->known_images = ks.n;
    for (uint32_t i = 0; i < n; i++) {
        char id[64], path[FDL_PATH_MAX + 64];
        fdl_device_id(first + i, id, sizeof id);
        fdl_identity_path(st, id, "fw/boots.jsonl", path, sizeof path);
        out->devices++;
        audit_ctx a = {.id = id, .ks = &ks, .out = out};
        long b = walk_records(path, audit_ran, audit_boot, &a);
        out->with_records += b > 0;
    }
    fdl_free(ks.k);
    fdl_free(ks.keys);
    return 0;
}

/* ---- one device, one image ------------------------------------------------------------------ */

typedef struct hist_ctx {
    const uint8_t *sha;
    uint64_t after;
    fdl_boot_history *out;
    uint64_t cur;
    bool cur_has;
} hist_ctx;

static void hist_boot(void *ctx, const boot_line *b)
{
    hist_ctx *h = ctx;
    fdl_boot_history *o = h->out;
    o->boots++;
    o->last_boot = b->boot;
    h->cur = b->boot;
    h->cur_has = false;
    o->runs = false;
    snprintf(o->last_outcome, sizeof o->last_outcome, "%s", b->outcome);
    o->last_app_version[0] = '\0';
    if (b->boot > h->after) {
        o->reverted |= b->reverted;
        if (b->why[0])
            snprintf(o->last_why, sizeof o->last_why, "%s", b->why);
    }
}

static void hist_ran(void *ctx, const boot_line *b, const ran_tier *r)
{
    hist_ctx *h = ctx;
    fdl_boot_history *o = h->out;
    if (!strcmp(r->name, "application"))
        snprintf(o->last_app_version, sizeof o->last_app_version, "%s", r->version);
    if (b->boot <= h->after)
        return;
    o->unverified |= !r->verified;
    if (h->sha && r->have_sha && !memcmp(r->sha, h->sha, 32)) {
        o->ran = true;
        o->runs = true;   /* this boot ran it; hist_boot clears it at the next one */
    }
}

int fdl_boot_history_get(const fdl_state *st, const char *id, const uint8_t *sha, uint64_t after,
                         fdl_boot_history *out)
{
    char path[FDL_PATH_MAX + 64];
    memset(out, 0, sizeof *out);
    fdl_identity_path(st, id, "fw/boots.jsonl", path, sizeof path);
    hist_ctx h = {.sha = sha, .after = after, .out = out};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    fclose(f);
    return walk_records(path, hist_ran, hist_boot, &h) < 0 ? -1 : 0;
}
