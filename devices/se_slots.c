/*
 * devices/se_slots.c — detects SoftHSM2 slot-number collisions before C_Initialize
 * (see fdl_se_slot_collisions in se.h).
 *
 * This reads SoftHSM2's on-disk token format, which is the only way to learn a
 * token's serial without C_Initialize (which is what aborts). It looks for two
 * attribute records in token.object: CKA_OS_TOKENLABEL (0x80005349, 32 bytes)
 * and CKA_OS_TOKENSERIAL (0x8000534a, 16 bytes), each stored as a big-endian
 * 64-bit type, a 64-bit kind (3 = byte string), a 64-bit length and the bytes.
 * A token whose file cannot be parsed is skipped (SoftHSM2 will judge it).
 */
#include "devices/se.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/alloc.h"

#define OS_TOKENLABEL 0x80005349u
#define OS_TOKENSERIAL 0x8000534au
#define TOKEN_OBJECT_MAX (64 * 1024)   /* token.object holds a few small attributes */

typedef struct tok {
    char dir[1024];
    char label[33];
    unsigned long slot;
} tok;

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Finds a byte-string attribute record of exactly len bytes; returns its bytes or NULL. */
static const uint8_t *find_attr(const uint8_t *buf, size_t n, uint32_t type, size_t len)
{
    for (size_t i = 0; i + 24 + len <= n; i++) {
        if (be64(buf + i) == type && be64(buf + i + 8) == 3 && be64(buf + i + 16) == len)
            return buf + i + 24;
    }
    return NULL;
}

static int read_tokendir(const char *conf, char *out, size_t cap)
{
    FILE *f = fopen(conf, "re");
    if (!f)
        return -1;
    char line[1200];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, "directories.tokendir", 20) != 0)
            continue;
        p = strchr(p, '=');
        if (!p)
            continue;
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        p[strcspn(p, "\r\n")] = 0;
        size_t l = strlen(p);
        while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
            p[--l] = 0;
        snprintf(out, cap, "%s", p);
        found = 0;
    }
    fclose(f);
    return found;
}

/* Reads one token directory; 0 and *t filled, or -1 to skip it. */
static int read_token(const char *dir, tok *t)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/token.object", dir);
    FILE *f = fopen(path, "rbe");
    if (!f)
        return -1;
    uint8_t *buf = fdl_malloc(TOKEN_OBJECT_MAX);
    size_t n = buf ? fread(buf, 1, TOKEN_OBJECT_MAX, f) : 0;
    fclose(f);
    int rc = -1;
    const uint8_t *serial = buf ? find_attr(buf, n, OS_TOKENSERIAL, 16) : NULL;
    const uint8_t *label = buf ? find_attr(buf, n, OS_TOKENLABEL, 32) : NULL;
    if (serial) {
        char s[17], last8[9];
        memcpy(s, serial, 16);
        s[16] = 0;
        memcpy(last8, s + 8, 9);
        t->slot = strtoul(last8, NULL, 16) & 0x7FFFFFFFul;
        snprintf(t->dir, sizeof t->dir, "%s", dir);
        t->label[0] = 0;
        if (label) {
            memcpy(t->label, label, 32);
            t->label[32] = 0;
            for (int i = 31; i >= 0 && t->label[i] == ' '; i--)
                t->label[i] = 0;
        }
        rc = 0;
    }
    fdl_free(buf);
    return rc;
}

static int cmp_slot(const void *a, const void *b)
{
    const tok *x = a, *y = b;
    if (x->slot != y->slot)
        return x->slot < y->slot ? -1 : 1;
    return strcmp(x->dir, y->dir);
}

int fdl_se_slot_collisions(const char *softhsm_conf, fdl_se_collision *out, size_t cap)
{
    char tokendir[1024];
    if (!softhsm_conf || read_tokendir(softhsm_conf, tokendir, sizeof tokendir) != 0)
        return -1;
    DIR *d = opendir(tokendir);
    if (!d)
        return -1;
    size_t n = 0, cap_t = 256;
    tok *toks = fdl_malloc(cap_t * sizeof *toks);
    struct dirent *e;
    while (toks && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap_t) {
            tok *g = fdl_realloc(toks, 2 * cap_t * sizeof *toks);
            if (!g)
                break;
            toks = g;
            cap_t *= 2;
        }
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/%s", tokendir, e->d_name);
        if (read_token(dir, &toks[n]) == 0)
            n++;
    }
    closedir(d);
    if (!toks)
        return -1;
    qsort(toks, n, sizeof *toks, cmp_slot);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        const char *other = NULL, *other_dir = "";
        if (i > 0 && toks[i].slot == toks[i - 1].slot) {
            other = toks[i - 1].label;
            other_dir = toks[i - 1].dir;
        } else if (toks[i].slot == (unsigned long)n) {
            other = "";   /* SoftHSM2 gives its free slot the number of tokens */
        }
        if (!other)
            continue;
        if ((size_t)count < cap) {
            fdl_se_collision *c = &out[count];
            snprintf(c->token_dir, sizeof c->token_dir, "%s", toks[i].dir);
            snprintf(c->label, sizeof c->label, "%s", toks[i].label);
            snprintf(c->other_label, sizeof c->other_label, "%s", other);
            snprintf(c->other_dir, sizeof c->other_dir, "%s", other_dir);
            c->slot_id = toks[i].slot;
        }
        count++;
    }
    fdl_free(toks);
    return count;
}
