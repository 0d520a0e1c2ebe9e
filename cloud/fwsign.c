/* cloud/fwsign.c — offline firmware signing token, key registry, image/keyring/job signing (see fwsign.h). */
#include "cloud/fwsign.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/sha256.h>

#include "cloud/json.h"
#include "devices/jobdoc.h"
#include "sim/alloc.h"
#include "sim/fsutil.h"
#include "sim/json.h"

/* Token PINs: 16 random bytes as hex, like the CA token's. */
#define PIN_BYTES 16
#define PIN_HEX (2 * PIN_BYTES)
/* A PIN file is a few lines. */
#define PIN_FILE_MAX 1024
/* Tokens of keys.json we accept: 1 + 2 * 3 + per key 1 + 2 * 7. */
#define KEYS_TOKENS (8 + 15 * FDL_FWSIGN_KEYS_MAX)

struct fdl_fwsign {
    fdl_se_module *se;                   /* borrowed; NULL = read only */
    char dir[PATH_MAX];
    char keys_path[PATH_MAX];
    uint32_t keyring_counter;
    size_t n;
    fdl_fwsign_key keys[FDL_FWSIGN_KEYS_MAX];
};

struct fdl_fwsign_jobs {
    fdl_se_key *key;
    fdl_fwsign_key info;
};

/* ---------------------------------------------------------------------------------------- */
/* Names and errors.                                                                         */

static const char *const st_str[] = {
    [FDL_FWSIGN_OK] = "ok",
    [FDL_FWSIGN_ERR_ARG] = "invalid argument",
    [FDL_FWSIGN_ERR_IO] = "file or directory error",
    [FDL_FWSIGN_ERR_PARSE] = "keys.json or a PIN file is malformed",
    [FDL_FWSIGN_ERR_TOKEN] = "signing token error",
    [FDL_FWSIGN_ERR_NOT_FOUND] = "no such signing key",
    [FDL_FWSIGN_ERR_STATE] = "the key's state does not allow this",
    [FDL_FWSIGN_ERR_IMAGE] = "the image is malformed",
    [FDL_FWSIGN_ERR_MISMATCH] = "a token key differs from keys.json",
    [FDL_FWSIGN_ERR_FULL] = "too many keys in the registry",
    [FDL_FWSIGN_ERR_NOMEM] = "out of memory",
    [FDL_FWSIGN_ERR_CRYPTO] = "crypto library failure",
    [FDL_FWSIGN_ERR_SMALL] = "output buffer too small",
};

const char *fdl_fwsign_strerror(fdl_fwsign_status st)
{
    if ((unsigned)st < sizeof st_str / sizeof st_str[0] && st_str[st])
        return st_str[st];
    return "unknown signing status";
}

static _Thread_local char g_err[512];

const char *fdl_fwsign_last_error(void)
{
    return g_err;
}

__attribute__((format(printf, 2, 3))) static fdl_fwsign_status fail(fdl_fwsign_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return st;
}

static const char *const state_names[] = {[FDL_FWKEY_NEXT] = "next", [FDL_FWKEY_CURRENT] = "current",
                                          [FDL_FWKEY_RETIRED] = "retired", [FDL_FWKEY_REVOKED] = "revoked"};

const char *fdl_fwkey_state_name(unsigned st)
{
    return st >= FDL_FWKEY_NEXT && st <= FDL_FWKEY_REVOKED ? state_names[st] : "?";
}

static unsigned state_parse(const char *s)
{
    for (unsigned i = FDL_FWKEY_NEXT; i <= FDL_FWKEY_REVOKED; i++)
        if (!strcmp(s, state_names[i]))
            return i;
    return 0;
}

/* The roles that exist, in the order they are listed and set up. */
static const unsigned ROLES[] = {FDL_FWSIGN_ROLE_ROOT, FDL_TIER_KERNEL, FDL_TIER_APPLICATION, FDL_TIER_MODULES,
                                 FDL_TIER_CONFIG, FDL_FWSIGN_ROLE_JOBS};
#define N_ROLES (sizeof ROLES / sizeof ROLES[0])

static int role_valid(unsigned role)
{
    for (size_t i = 0; i < N_ROLES; i++)
        if (ROLES[i] == role)
            return 1;
    return 0;
}

const char *fdl_fwsign_role_name(unsigned role)
{
    if (role == FDL_FWSIGN_ROLE_ROOT)
        return "root";
    if (role == FDL_FWSIGN_ROLE_JOBS)
        return "jobs";
    if (role >= FDL_TIER_KERNEL && role <= FDL_TIER_CONFIG)
        return fdl_fw_tier_name(role);
    return "?";
}

unsigned fdl_fwsign_role_parse(const char *name)
{
    if (!name)
        return 0;
    if (!strcmp(name, "root"))
        return FDL_FWSIGN_ROLE_ROOT;
    if (!strcmp(name, "jobs"))
        return FDL_FWSIGN_ROLE_JOBS;
    return fdl_fwsign_role_for_tier(fdl_fw_tier_parse(name));
}

unsigned fdl_fwsign_role_for_tier(unsigned tier)
{
    if (tier == FDL_TIER_BOOTLOADER || tier == FDL_TIER_KEYRING)
        return FDL_FWSIGN_ROLE_ROOT;
    if (tier >= FDL_TIER_KERNEL && tier <= FDL_TIER_CONFIG)
        return tier;
    return 0;
}

const char *fdl_fwsign_role_token(unsigned role)
{
    return role == FDL_FWSIGN_ROLE_JOBS ? FDL_FWSIGN_JOBS_TOKEN : FDL_FWSIGN_TOKEN;
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers.                                                                            */

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static fdl_fwsign_status join(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return fail(FDL_FWSIGN_ERR_ARG, "path too long: %s/%s", dir, name);
    return FDL_FWSIGN_OK;
}

/* Reads a whole regular file of at most max bytes into a new NUL-terminated buffer (fdl_free;
 * wipe first if secret). secret: refuse a file group or others may read. ERR_NOT_FOUND if absent. */
static fdl_fwsign_status read_file(const char *path, size_t max, int secret, char **out, size_t *len)
{
    static const fdl_fwsign_status map[] = {
        [FDL_READ_OK] = FDL_FWSIGN_OK,          [FDL_READ_NOT_FOUND] = FDL_FWSIGN_ERR_NOT_FOUND,
        [FDL_READ_IO] = FDL_FWSIGN_ERR_IO,      [FDL_READ_PERM] = FDL_FWSIGN_ERR_IO,
        [FDL_READ_SIZE] = FDL_FWSIGN_ERR_PARSE, [FDL_READ_NOMEM] = FDL_FWSIGN_ERR_NOMEM,
    };
    char why[PATH_MAX + 128];
    fdl_read_status rs = fdl_read_file(path, max, secret, (unsigned char **)out, len, why, sizeof why);
    return rs == FDL_READ_OK ? FDL_FWSIGN_OK : fail(map[rs], "%s", why);
}

/* The status for a token failure: out of memory stays out of memory. */
static fdl_fwsign_status se_status(fdl_se_status s, fdl_fwsign_status other)
{
    return s == FDL_SE_ERR_NOMEM ? FDL_FWSIGN_ERR_NOMEM : other;
}

/* ---------------------------------------------------------------------------------------- */
/* Token PINs: <dir>/<token>.pin, "so_pin=<hex>\nuser_pin=<hex>\n", mode 0600.               */

typedef struct pins {
    char so[PIN_HEX + 1];
    char user[PIN_HEX + 1];
} pins;

static int pin_field(const char *text, const char *key, char out[PIN_HEX + 1])
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (line[0] == '#' || strncmp(line, key, kl) != 0 || line[kl] != '=')
            continue;
        const char *v = line + kl + 1;
        size_t n = strcspn(v, "\r\n");
        if (n < 4 || n > PIN_HEX)
            return -1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

static fdl_fwsign_status pin_path(const char *dir, const char *token, char *buf, size_t cap)
{
    char name[64];
    snprintf(name, sizeof name, "%s.pin", token);
    return join(buf, cap, dir, name);
}

static fdl_fwsign_status read_pins(const char *dir, const char *token, pins *p)
{
    char path[PATH_MAX], *text = NULL;
    size_t len = 0;
    fdl_fwsign_status st = pin_path(dir, token, path, sizeof path);
    if (st != FDL_FWSIGN_OK || (st = read_file(path, PIN_FILE_MAX, 1, &text, &len)) != FDL_FWSIGN_OK)
        return st;
    if (pin_field(text, "so_pin", p->so) != 0 || pin_field(text, "user_pin", p->user) != 0)
        st = fail(FDL_FWSIGN_ERR_PARSE, "%s: needs so_pin= and user_pin= lines", path);
    fdl_wipe(text, len + 1);
    fdl_free(text);
    return st;
}

static fdl_fwsign_status new_pins(const char *dir, const char *token, pins *p)
{
    static const char pers[] = "fleetdrill-fwsign-pin";
    static const char hex[] = "0123456789abcdef";
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    uint8_t rnd[2 * PIN_BYTES];
    char path[PATH_MAX], text[256];
    fdl_fwsign_status st = pin_path(dir, token, path, sizeof path);
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    if (st != FDL_FWSIGN_OK)
        goto cleanup;
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, (const unsigned char *)pers, sizeof pers - 1) != 0 ||
        mbedtls_ctr_drbg_random(&drbg, rnd, sizeof rnd) != 0) {
        st = fail(FDL_FWSIGN_ERR_CRYPTO, "random PINs");
        goto cleanup;
    }
    for (size_t i = 0; i < PIN_BYTES; i++) {
        p->so[2 * i] = hex[rnd[i] >> 4];
        p->so[2 * i + 1] = hex[rnd[i] & 15];
        p->user[2 * i] = hex[rnd[PIN_BYTES + i] >> 4];
        p->user[2 * i + 1] = hex[rnd[PIN_BYTES + i] & 15];
    }
    p->so[PIN_HEX] = p->user[PIN_HEX] = '\0';
    int n = snprintf(text, sizeof text,
                     "# PINs of the fleetdrill firmware signing token \"%s\" (SoftHSM2). Secret: keep mode 0600.\n"
                     "so_pin=%s\nuser_pin=%s\n",
                     token, p->so, p->user);
    int r = fdl_write_file_atomic(path, text, (size_t)n, 0600);
    st = r ? fail(FDL_FWSIGN_ERR_IO, "write %s: %s", path, strerror(-r)) : FDL_FWSIGN_OK;
cleanup:
    fdl_wipe(rnd, sizeof rnd);
    fdl_wipe(text, sizeof text);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
    return st;
}

/* The token with its PIN file, made if missing (the PIN file first: a token never exists
 * without its PINs on disk). */
static fdl_fwsign_status ensure_token(fdl_se_module *se, const char *dir, const char *token, pins *p)
{
    char path[PATH_MAX];
    fdl_fwsign_status st = pin_path(dir, token, path, sizeof path);
    if (st != FDL_FWSIGN_OK)
        return st;
    int exists = fdl_se_token_exists(se, token);
    if (access(path, F_OK) == 0)
        st = read_pins(dir, token, p);
    else if (exists)
        return fail(FDL_FWSIGN_ERR_MISMATCH, "token %s exists but %s is missing", token, path);
    else
        st = new_pins(dir, token, p);
    if (st != FDL_FWSIGN_OK || exists)
        return st;
    fdl_se_status s = fdl_se_token_create(se, token, p->so, p->user);
    if (s != FDL_SE_OK)
        return fail(se_status(s, FDL_FWSIGN_ERR_TOKEN), "token %s: create: %s (CK_RV 0x%lx)", token,
                    fdl_se_strerror(s), fdl_se_last_rv(se));
    return FDL_FWSIGN_OK;
}

/* The 65-byte point of a token key. */
static fdl_fwsign_status token_pub(fdl_se_key *k, uint8_t pub[FDL_FW_PUB_LEN])
{
    size_t olen = 0;
    mbedtls_pk_context *pk = fdl_se_key_pk(k);
    if (!pk || mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY ||
        mbedtls_ecp_write_public_key(mbedtls_pk_ec(*pk), MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, pub, FDL_FW_PUB_LEN) != 0 ||
        olen != FDL_FW_PUB_LEN)
        return fail(FDL_FWSIGN_ERR_CRYPTO, "cannot read a token key's public point");
    return FDL_FWSIGN_OK;
}

/* Opens the token key of a registry entry and checks it is the recorded key. */
static fdl_fwsign_status open_key(fdl_se_module *se, const char *dir, const fdl_fwsign_key *e, fdl_se_key **out)
{
    pins p;
    uint8_t pub[FDL_FW_PUB_LEN];
    *out = NULL;
    if (!se)
        return fail(FDL_FWSIGN_ERR_ARG, "no PKCS#11 module: opened read-only");
    fdl_fwsign_status st = read_pins(dir, e->token, &p);
    if (st != FDL_FWSIGN_OK)
        return st;
    fdl_se_status s = fdl_se_key_open(se, e->token, p.user, e->label, out);
    fdl_wipe(&p, sizeof p);
    if (s != FDL_SE_OK)
        return fail(se_status(s, s == FDL_SE_ERR_NOT_FOUND ? FDL_FWSIGN_ERR_MISMATCH : FDL_FWSIGN_ERR_TOKEN),
                    "token %s, key %s: %s (CK_RV 0x%lx)", e->token, e->label, fdl_se_strerror(s), fdl_se_last_rv(se));
    if ((st = token_pub(*out, pub)) != FDL_FWSIGN_OK)
        goto fail;
    if (memcmp(pub, e->pub, FDL_FW_PUB_LEN) != 0) {
        st = fail(FDL_FWSIGN_ERR_MISMATCH, "token %s, key %s: not the public key keys.json records", e->token,
                  e->label);
        goto fail;
    }
    return FDL_FWSIGN_OK;
fail:
    fdl_se_key_free(*out);
    *out = NULL;
    return st;
}

/* ECDSA over hash with a token key, as raw r || s. */
static fdl_fwsign_status token_sign(fdl_se_key *k, const uint8_t hash[32], uint8_t sig[FDL_FW_SIG_LEN])
{
    uint8_t der[FDL_FW_SIG_DER_MAX + 8];
    size_t n = 0;
    fdl_se_status s = fdl_se_key_sign(k, hash, 32, der, sizeof der, &n);
    if (s != FDL_SE_OK)
        return fail(se_status(s, FDL_FWSIGN_ERR_TOKEN), "C_Sign: %s", fdl_se_strerror(s));
    if (fdl_fw_sig_from_der(der, n, sig) != 0)
        return fail(FDL_FWSIGN_ERR_CRYPTO, "the token returned a malformed signature");
    return FDL_FWSIGN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* keys.json.                                                                                */

static fdl_fwsign_status parse_key(const uint8_t *buf, const fdl_jv_tok *tok, uint32_t obj, fdl_fwsign_key *e)
{
    char s[160];
    unsigned seen = 0;
    if (tok[obj].type != FDL_JV_OBJECT)
        return FDL_FWSIGN_ERR_PARSE;
    memset(e, 0, sizeof *e);
    for (uint32_t k = obj + 1; k < tok[obj].end; k = tok[k + 1].end) {
        const fdl_jv_tok *v = &tok[k + 1];
        int64_t num = 0;
        if (v->type == FDL_JV_STRING) {
            if (fdl_jv_str_copy(buf, v, s, sizeof s, NULL) != FDL_JV_OK)
                return FDL_FWSIGN_ERR_PARSE;
        } else if (v->type == FDL_JV_NUMBER) {
            if (fdl_jv_number_int(buf + v->start, v->len, &num) != FDL_JV_OK)
                return FDL_FWSIGN_ERR_PARSE;
        } else {
            return FDL_FWSIGN_ERR_PARSE;
        }
#define KEY_IS(name) fdl_jv_str_eq(buf, &tok[k], name, sizeof name - 1)
        if (KEY_IS("key_id") && v->type == FDL_JV_STRING && !fdl_fw_hex_decode(s, e->key_id, FDL_FW_KEYID_LEN, 1))
            seen |= 1;
        else if (KEY_IS("role") && v->type == FDL_JV_STRING && (e->role = fdl_fwsign_role_parse(s)) &&
                 !strcmp(fdl_fwsign_role_name(e->role), s))
            seen |= 2;
        else if (KEY_IS("generation") && v->type == FDL_JV_NUMBER && num >= 1 && num <= 1000000)
            e->generation = (unsigned)num, seen |= 4;
        else if (KEY_IS("state") && v->type == FDL_JV_STRING && (e->state = (fdl_fwkey_state)state_parse(s)))
            seen |= 8;
        else if (KEY_IS("token") && v->type == FDL_JV_STRING && strlen(s) < sizeof e->token)
            snprintf(e->token, sizeof e->token, "%s", s), seen |= 16;
        else if (KEY_IS("label") && v->type == FDL_JV_STRING && strlen(s) < sizeof e->label)
            snprintf(e->label, sizeof e->label, "%s", s), seen |= 32;
        else if (KEY_IS("pub") && v->type == FDL_JV_STRING && !fdl_fw_hex_decode(s, e->pub, FDL_FW_PUB_LEN, 1))
            seen |= 64;
        else
            return FDL_FWSIGN_ERR_PARSE;
#undef KEY_IS
    }
    uint8_t id[FDL_FW_KEYID_LEN];
    fdl_fw_key_id(e->pub, id);
    if (seen != 127 || memcmp(id, e->key_id, sizeof id) != 0 || !fdl_fw_pub_valid(e->pub) ||
        strcmp(e->token, fdl_fwsign_role_token(e->role)) != 0)
        return FDL_FWSIGN_ERR_PARSE;
    return FDL_FWSIGN_OK;
}

static fdl_fwsign_status load_keys(fdl_fwsign *fs)
{
    char *text = NULL;
    size_t len = 0, ntok = 0, at = 0;
    fdl_jv_tok *tok = NULL;
    fdl_fwsign_status st = read_file(fs->keys_path, FDL_FWSIGN_FILE_MAX, 0, &text, &len);
    if (st == FDL_FWSIGN_ERR_NOT_FOUND)
        return FDL_FWSIGN_OK; /* a new registry */
    if (st != FDL_FWSIGN_OK)
        return st;
    const uint8_t *buf = (const uint8_t *)text;
    fdl_jv_limits lim = {.max_bytes = FDL_FWSIGN_FILE_MAX, .max_depth = 3, .max_tokens = KEYS_TOKENS,
                         .max_string = 256};
    if (!(tok = fdl_malloc(KEYS_TOKENS * sizeof *tok))) {
        st = fail(FDL_FWSIGN_ERR_NOMEM, "parsing %s", fs->keys_path);
        goto cleanup;
    }
    fdl_jv_status js = fdl_jv_parse(buf, len, &lim, tok, KEYS_TOKENS, &ntok, &at);
    if (js != FDL_JV_OK || tok[0].type != FDL_JV_OBJECT) {
        st = fail(FDL_FWSIGN_ERR_PARSE, "%s: %s at byte %zu", fs->keys_path,
                  js != FDL_JV_OK ? fdl_jv_strerror(js) : "not an object", at);
        goto cleanup;
    }
    int have_keys = 0, have_format = 0;
    for (uint32_t k = 1; k < tok[0].end; k = tok[k + 1].end) {
        const fdl_jv_tok *v = &tok[k + 1];
        int64_t num;
        if (fdl_jv_str_eq(buf, &tok[k], "format", 6) && v->type == FDL_JV_NUMBER &&
            fdl_jv_number_int(buf + v->start, v->len, &num) == FDL_JV_OK && num == 1) {
            have_format = 1;
        } else if (fdl_jv_str_eq(buf, &tok[k], "keyring_counter", 15) && v->type == FDL_JV_NUMBER &&
                   fdl_jv_number_int(buf + v->start, v->len, &num) == FDL_JV_OK && num >= 0 && num <= UINT32_MAX) {
            fs->keyring_counter = (uint32_t)num;
        } else if (fdl_jv_str_eq(buf, &tok[k], "keys", 4) && v->type == FDL_JV_ARRAY &&
                   v->size <= FDL_FWSIGN_KEYS_MAX) {
            have_keys = 1;
            for (uint32_t e = k + 2; e < v->end; e = tok[e].end) {
                fdl_fwsign_key *key = &fs->keys[fs->n];
                if (parse_key(buf, tok, e, key) != FDL_FWSIGN_OK) {
                    st = fail(FDL_FWSIGN_ERR_PARSE, "%s: key %zu is malformed", fs->keys_path, fs->n + 1);
                    goto cleanup;
                }
                for (size_t j = 0; j < fs->n; j++) {
                    const fdl_fwsign_key *o = &fs->keys[j];
                    if (!memcmp(o->key_id, key->key_id, FDL_FW_KEYID_LEN) ||
                        (o->role == key->role && o->generation == key->generation) ||
                        (o->role == key->role && o->state == key->state &&
                         (key->state == FDL_FWKEY_CURRENT || key->state == FDL_FWKEY_NEXT))) {
                        st = fail(FDL_FWSIGN_ERR_PARSE, "%s: key %zu repeats a key id, generation or state",
                                  fs->keys_path, fs->n + 1);
                        goto cleanup;
                    }
                }
                fs->n++;
            }
        } else {
            st = fail(FDL_FWSIGN_ERR_PARSE, "%s: unexpected member", fs->keys_path);
            goto cleanup;
        }
    }
    st = have_keys && have_format ? FDL_FWSIGN_OK : fail(FDL_FWSIGN_ERR_PARSE, "%s: needs format 1 and keys",
                                                         fs->keys_path);
cleanup:
    fdl_free(tok);
    fdl_free(text);
    return st;
}

static fdl_fwsign_status save_keys(const fdl_fwsign *fs)
{
    char hex[2 * FDL_FW_PUB_LEN + 1];
    fdl_json *j = fdl_json_new(FDL_FWSIGN_FILE_MAX);
    fdl_json_set_pretty(j, 1);
    fdl_json_obj_begin(j, NULL);
    fdl_json_int(j, "format", 1);
    fdl_json_uint(j, "keyring_counter", fs->keyring_counter);
    fdl_json_arr_begin(j, "keys");
    for (size_t i = 0; i < fs->n; i++) {
        const fdl_fwsign_key *e = &fs->keys[i];
        fdl_json_obj_begin(j, NULL);
        to_hex(e->key_id, FDL_FW_KEYID_LEN, hex);
        fdl_json_str(j, "key_id", hex);
        fdl_json_str(j, "role", fdl_fwsign_role_name(e->role));
        fdl_json_uint(j, "generation", e->generation);
        fdl_json_str(j, "state", fdl_fwkey_state_name(e->state));
        fdl_json_str(j, "token", e->token);
        fdl_json_str(j, "label", e->label);
        to_hex(e->pub, FDL_FW_PUB_LEN, hex);
        fdl_json_str(j, "pub", hex);
        fdl_json_obj_end(j);
    }
    fdl_json_arr_end(j);
    fdl_json_obj_end(j);
    int r = fdl_json_write_file(j, fs->keys_path);
    int je = fdl_json_error(j);
    fdl_json_free(j);
    if (je != FDL_JSON_OK)
        return fail(je == FDL_JSON_NO_MEMORY ? FDL_FWSIGN_ERR_NOMEM : FDL_FWSIGN_ERR_IO, "writing %s: %s",
                    fs->keys_path, fdl_json_strerror(je));
    if (r != 0)
        return fail(FDL_FWSIGN_ERR_IO, "write %s: %s", fs->keys_path, strerror(-r));
    return FDL_FWSIGN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The registry.                                                                             */

fdl_fwsign_status fdl_fwsign_open(fdl_se_module *se, const char *dir, fdl_fwsign **out)
{
    fdl_fwsign_status st;
    g_err[0] = '\0';
    if (!dir || !out)
        return fail(FDL_FWSIGN_ERR_ARG, "dir and out are required");
    *out = NULL;
    fdl_fwsign *fs = fdl_calloc(1, sizeof *fs);
    if (!fs)
        return fail(FDL_FWSIGN_ERR_NOMEM, "fdl_fwsign");
    fs->se = se;
    if (strlen(dir) >= sizeof fs->dir ||
        (st = join(fs->keys_path, sizeof fs->keys_path, dir, FDL_FWSIGN_KEYS_FILE)) != FDL_FWSIGN_OK) {
        st = fail(FDL_FWSIGN_ERR_ARG, "path too long: %s", dir);
        goto fail;
    }
    snprintf(fs->dir, sizeof fs->dir, "%s", dir);
    /* A read-only open (no module) creates nothing: inspecting must not make state. */
    int r = se ? fdl_mkdir_p(dir, 0700) : 0;
    if (r != 0) {
        st = fail(FDL_FWSIGN_ERR_IO, "mkdir %s: %s", dir, strerror(-r));
        goto fail;
    }
    if ((st = load_keys(fs)) != FDL_FWSIGN_OK)
        goto fail;
    *out = fs;
    return FDL_FWSIGN_OK;
fail:
    fdl_free(fs);
    return st;
}

void fdl_fwsign_free(fdl_fwsign *fs)
{
    fdl_free(fs);
}

size_t fdl_fwsign_count(const fdl_fwsign *fs)
{
    return fs ? fs->n : 0;
}

const fdl_fwsign_key *fdl_fwsign_key_at(const fdl_fwsign *fs, size_t i)
{
    return fs && i < fs->n ? &fs->keys[i] : NULL;
}

const fdl_fwsign_key *fdl_fwsign_find_id(const fdl_fwsign *fs, const uint8_t key_id[FDL_FW_KEYID_LEN])
{
    for (size_t i = 0; fs && key_id && i < fs->n; i++)
        if (!memcmp(fs->keys[i].key_id, key_id, FDL_FW_KEYID_LEN))
            return &fs->keys[i];
    return NULL;
}

const fdl_fwsign_key *fdl_fwsign_find(const fdl_fwsign *fs, unsigned role, unsigned generation)
{
    for (size_t i = 0; fs && i < fs->n; i++) {
        const fdl_fwsign_key *e = &fs->keys[i];
        if (e->role == role &&
            (generation ? e->generation == generation : e->state == FDL_FWKEY_CURRENT))
            return e;
    }
    return NULL;
}

static fdl_fwsign_key *find_state(fdl_fwsign *fs, unsigned role, fdl_fwkey_state state)
{
    for (size_t i = 0; i < fs->n; i++)
        if (fs->keys[i].role == role && fs->keys[i].state == state)
            return &fs->keys[i];
    return NULL;
}

uint32_t fdl_fwsign_keyring_counter(const fdl_fwsign *fs)
{
    return fs ? fs->keyring_counter : 0;
}

fdl_fwsign_status fdl_fwsign_root_hash(const fdl_fwsign *fs, uint8_t out[32])
{
    const fdl_fwsign_key *root = fdl_fwsign_find(fs, FDL_FWSIGN_ROLE_ROOT, 0);
    if (!root || !out)
        return fail(FDL_FWSIGN_ERR_NOT_FOUND, "no current root key (run the signing setup)");
    fdl_fw_key_hash(root->pub, out);
    return FDL_FWSIGN_OK;
}

/* Generates generation `gen` of role in its token (or adopts a key with that
 * label left by an interrupted earlier attempt) and appends it in state. */
static fdl_fwsign_status add_key(fdl_fwsign *fs, unsigned role, unsigned gen, fdl_fwkey_state state,
                                 fdl_fwsign_key **made)
{
    fdl_fwsign_status st;
    fdl_se_key *k = NULL;
    pins p;
    if (fs->n >= FDL_FWSIGN_KEYS_MAX)
        return fail(FDL_FWSIGN_ERR_FULL, "%d keys in %s", FDL_FWSIGN_KEYS_MAX, fs->keys_path);
    fdl_fwsign_key *e = &fs->keys[fs->n];
    memset(e, 0, sizeof *e);
    e->role = role;
    e->generation = gen;
    e->state = state;
    snprintf(e->token, sizeof e->token, "%s", fdl_fwsign_role_token(role));
    snprintf(e->label, sizeof e->label, "%s-g%u", fdl_fwsign_role_name(role), gen);
    if ((st = ensure_token(fs->se, fs->dir, e->token, &p)) != FDL_FWSIGN_OK)
        goto cleanup;
    fdl_se_status s = fdl_se_keygen(fs->se, e->token, p.user, e->label, &k);
    if (s == FDL_SE_ERR_EXISTS)
        s = fdl_se_key_open(fs->se, e->token, p.user, e->label, &k);
    if (s != FDL_SE_OK) {
        st = fail(se_status(s, FDL_FWSIGN_ERR_TOKEN), "token %s, key %s: %s (CK_RV 0x%lx)", e->token, e->label,
                  fdl_se_strerror(s), fdl_se_last_rv(fs->se));
        goto cleanup;
    }
    if ((st = token_pub(k, e->pub)) != FDL_FWSIGN_OK)
        goto cleanup;
    fdl_fw_key_id(e->pub, e->key_id);
    fs->n++;
    if (made)
        *made = e;
cleanup:
    fdl_se_key_free(k);
    fdl_wipe(&p, sizeof p);
    return st;
}

fdl_fwsign_status fdl_fwsign_setup(fdl_fwsign *fs)
{
    fdl_fwsign_status st = FDL_FWSIGN_OK;
    size_t n0;
    pins p;
    g_err[0] = '\0';
    if (!fs || !fs->se)
        return fail(FDL_FWSIGN_ERR_ARG, "setup needs the PKCS#11 module");
    n0 = fs->n;
    /* Both tokens, even before their first key: the job service can then open its own. */
    if ((st = ensure_token(fs->se, fs->dir, FDL_FWSIGN_TOKEN, &p)) != FDL_FWSIGN_OK ||
        (st = ensure_token(fs->se, fs->dir, FDL_FWSIGN_JOBS_TOKEN, &p)) != FDL_FWSIGN_OK)
        goto cleanup;
    for (size_t i = 0; i < N_ROLES; i++) {
        int any = 0;
        for (size_t j = 0; j < fs->n; j++)
            any |= fs->keys[j].role == ROLES[i];
        if (!any && (st = add_key(fs, ROLES[i], 1, FDL_FWKEY_CURRENT, NULL)) != FDL_FWSIGN_OK) {
            fs->n = n0; /* nothing recorded; the keys made so far are adopted next time */
            goto cleanup;
        }
    }
    /* What the registry says is trusted must be in the tokens, as recorded. */
    for (size_t j = 0; j < fs->n; j++) {
        const fdl_fwsign_key *e = &fs->keys[j];
        fdl_se_key *k = NULL;
        if (e->state != FDL_FWKEY_CURRENT && e->state != FDL_FWKEY_NEXT)
            continue;
        if ((st = open_key(fs->se, fs->dir, e, &k)) != FDL_FWSIGN_OK)
            goto cleanup;
        fdl_se_key_free(k);
    }
    if (fs->n != n0) {
        fs->keyring_counter++;
        if ((st = save_keys(fs)) != FDL_FWSIGN_OK) {
            fs->keyring_counter--;
            fs->n = n0; /* the token keys stay and are adopted next time */
        }
    }
cleanup:
    fdl_wipe(&p, sizeof p);
    return st;
}

fdl_fwsign_status fdl_fwsign_rotate(fdl_fwsign *fs, unsigned role, const fdl_fwsign_key **made)
{
    fdl_fwsign_key *e = NULL;
    unsigned gen = 0;
    g_err[0] = '\0';
    if (!fs || !fs->se || !role_valid(role))
        return fail(FDL_FWSIGN_ERR_ARG, "rotate needs the PKCS#11 module and a role");
    if (find_state(fs, role, FDL_FWKEY_NEXT))
        return fail(FDL_FWSIGN_ERR_STATE, "%s already has a next key: retire the current one first",
                    fdl_fwsign_role_name(role));
    for (size_t i = 0; i < fs->n; i++)
        if (fs->keys[i].role == role && fs->keys[i].generation > gen)
            gen = fs->keys[i].generation;
    fdl_fwsign_status st = add_key(fs, role, gen + 1, FDL_FWKEY_NEXT, &e);
    if (st != FDL_FWSIGN_OK)
        return st;
    fs->keyring_counter++;
    if ((st = save_keys(fs)) != FDL_FWSIGN_OK) {
        /* Not recorded: forget it here too. The token key stays and the next
         * rotate adopts it (same label). */
        fs->keyring_counter--;
        fs->n--;
        return st;
    }
    if (made)
        *made = e;
    return FDL_FWSIGN_OK;
}

/* Saves the registry after a change of states; on failure the states in memory
 * go back to what is on disk (saved[] holds them, index by index). */
static fdl_fwsign_status commit_states(fdl_fwsign *fs, const fdl_fwkey_state *saved)
{
    fs->keyring_counter++;
    fdl_fwsign_status st = save_keys(fs);
    if (st != FDL_FWSIGN_OK) {
        fs->keyring_counter--;
        for (size_t i = 0; i < fs->n; i++)
            fs->keys[i].state = saved[i];
    }
    return st;
}

fdl_fwsign_status fdl_fwsign_retire(fdl_fwsign *fs, unsigned role)
{
    g_err[0] = '\0';
    if (!fs || !role_valid(role))
        return fail(FDL_FWSIGN_ERR_ARG, "unknown role");
    fdl_fwsign_key *next = find_state(fs, role, FDL_FWKEY_NEXT), *cur = find_state(fs, role, FDL_FWKEY_CURRENT);
    if (!next)
        return fail(FDL_FWSIGN_ERR_STATE, "%s has no next key to take over: rotate first", fdl_fwsign_role_name(role));
    fdl_fwkey_state saved[FDL_FWSIGN_KEYS_MAX];
    for (size_t i = 0; i < fs->n; i++)
        saved[i] = fs->keys[i].state;
    if (cur)
        cur->state = FDL_FWKEY_RETIRED;
    next->state = FDL_FWKEY_CURRENT;
    return commit_states(fs, saved);
}

fdl_fwsign_status fdl_fwsign_revoke(fdl_fwsign *fs, const uint8_t key_id[FDL_FW_KEYID_LEN])
{
    g_err[0] = '\0';
    if (!fs || !key_id)
        return fail(FDL_FWSIGN_ERR_ARG, "key id required");
    fdl_fwsign_key *e = (fdl_fwsign_key *)fdl_fwsign_find_id(fs, key_id);
    if (!e)
        return fail(FDL_FWSIGN_ERR_NOT_FOUND, "no key with that id in %s", fs->keys_path);
    if (e->state == FDL_FWKEY_REVOKED)
        return FDL_FWSIGN_OK;
    fdl_fwkey_state saved[FDL_FWSIGN_KEYS_MAX];
    for (size_t i = 0; i < fs->n; i++)
        saved[i] = fs->keys[i].state;
    fdl_fwsign_key *next = find_state(fs, e->role, FDL_FWKEY_NEXT);
    if (e->state == FDL_FWKEY_CURRENT && next)
        next->state = FDL_FWKEY_CURRENT;
    e->state = FDL_FWKEY_REVOKED;
    return commit_states(fs, saved);
}

/* ---------------------------------------------------------------------------------------- */
/* Signing.                                                                                  */

static fdl_fwsign_status parse_image(const uint8_t *img, size_t len, fdl_fw_hdr *h)
{
    fdl_fw_status fst = fdl_fwimage_parse(img, len, h, NULL);
    if (fst != FDL_FW_OK)
        return fail(FDL_FWSIGN_ERR_IMAGE, "image: %s", fdl_fw_strerror(fst));
    return FDL_FWSIGN_OK;
}

fdl_fwsign_status fdl_fwsign_sign_image(fdl_fwsign *fs, uint8_t *img, size_t len, unsigned role, unsigned generation,
                                        unsigned flags, const fdl_fwsign_key **used)
{
    fdl_fwsign_status st;
    fdl_fw_hdr h;
    fdl_se_key *k = NULL;
    uint8_t hash[32];
    g_err[0] = '\0';
    if (!fs || !img)
        return fail(FDL_FWSIGN_ERR_ARG, "fs and img are required");
    if ((st = parse_image(img, len, &h)) != FDL_FWSIGN_OK)
        return st;
    if (!role)
        role = fdl_fwsign_role_for_tier(h.tier);
    if (!role_valid(role))
        return fail(FDL_FWSIGN_ERR_ARG, "unknown signing role %u", role);
    const fdl_fwsign_key *e = fdl_fwsign_find(fs, role, generation);
    if (!e)
        return generation ? fail(FDL_FWSIGN_ERR_NOT_FOUND, "no %s key of generation %u", fdl_fwsign_role_name(role),
                                 generation)
                          : fail(FDL_FWSIGN_ERR_NOT_FOUND, "no current %s key", fdl_fwsign_role_name(role));
    if (!(flags & FDL_FWSIGN_ANY_STATE) && e->state != FDL_FWKEY_CURRENT && e->state != FDL_FWKEY_NEXT)
        return fail(FDL_FWSIGN_ERR_STATE, "key %s is %s", e->label, fdl_fwkey_state_name(e->state));
    if ((st = open_key(fs->se, fs->dir, e, &k)) != FDL_FWSIGN_OK)
        return st;
    memcpy(h.key_id, e->key_id, FDL_FW_KEYID_LEN);
    fdl_fwimage_signed_hash(&h, hash);
    if ((st = token_sign(k, hash, h.sig)) != FDL_FWSIGN_OK)
        goto cleanup;
    /* Belt and braces: what leaves here verifies with the key keys.json publishes. */
    if (fdl_fwimage_verify_sig(&h, e->pub) != FDL_FW_OK) {
        st = fail(FDL_FWSIGN_ERR_MISMATCH, "signature by %s does not verify with its recorded key", e->label);
        goto cleanup;
    }
    fdl_fwimage_encode_hdr(&h, img);
    if (used)
        *used = e;
cleanup:
    fdl_se_key_free(k);
    return st;
}

fdl_fwsign_status fdl_fwsign_sign_image_pk(uint8_t *img, size_t len, mbedtls_pk_context *pk,
                                           int (*f_rng)(void *, unsigned char *, size_t), void *p_rng)
{
    fdl_fwsign_status st;
    fdl_fw_hdr h;
    uint8_t hash[32], pub[FDL_FW_PUB_LEN], der[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
    size_t olen = 0, n = 0;
    g_err[0] = '\0';
    if (!img || !pk || mbedtls_pk_get_type(pk) != MBEDTLS_PK_ECKEY)
        return fail(FDL_FWSIGN_ERR_ARG, "an EC key is required");
    if ((st = parse_image(img, len, &h)) != FDL_FWSIGN_OK)
        return st;
    if (mbedtls_ecp_write_public_key(mbedtls_pk_ec(*pk), MBEDTLS_ECP_PF_UNCOMPRESSED, &olen, pub, sizeof pub) != 0 ||
        olen != FDL_FW_PUB_LEN)
        return fail(FDL_FWSIGN_ERR_ARG, "not a P-256 key");
    fdl_fw_key_id(pub, h.key_id);
    fdl_fwimage_signed_hash(&h, hash);
    if (mbedtls_pk_sign(pk, MBEDTLS_MD_SHA256, hash, 32, der, sizeof der, &n, f_rng, p_rng) != 0 ||
        fdl_fw_sig_from_der(der, n, h.sig) != 0)
        return fail(FDL_FWSIGN_ERR_CRYPTO, "signing with the software key failed");
    if (fdl_fwimage_verify_sig(&h, pub) != FDL_FW_OK)
        return fail(FDL_FWSIGN_ERR_CRYPTO, "the software signature does not verify");
    fdl_fwimage_encode_hdr(&h, img);
    return FDL_FWSIGN_OK;
}

fdl_fwsign_status fdl_fwsign_keyring_image(fdl_fwsign *fs, uint32_t version, uint32_t counter, uint8_t **out,
                                           size_t *len)
{
    fdl_fwsign_status st;
    fdl_keyring kr;
    fdl_fw_hdr h;
    uint8_t *img = NULL;
    g_err[0] = '\0';
    if (!fs || !out || !len)
        return fail(FDL_FWSIGN_ERR_ARG, "fs, out and len are required");
    *out = NULL;
    *len = 0;
    memset(&kr, 0, sizeof kr);
    for (size_t r = 1; r < N_ROLES; r++) { /* every role but root, in role order */
        for (fdl_fwkey_state s = FDL_FWKEY_NEXT; s <= FDL_FWKEY_CURRENT; s++) {
            const fdl_fwsign_key *e = find_state(fs, ROLES[r], s);
            if (!e)
                continue;
            if (kr.n == FDL_KEYRING_MAX)
                return fail(FDL_FWSIGN_ERR_FULL, "more than %d keys to list", FDL_KEYRING_MAX);
            fdl_keyring_entry *ke = &kr.e[kr.n++];
            ke->usage = (uint8_t)e->role;
            ke->state = e->state == FDL_FWKEY_CURRENT ? FDL_KEY_CURRENT : FDL_KEY_NEXT;
            memcpy(ke->key_id, e->key_id, FDL_FW_KEYID_LEN);
            memcpy(ke->pub, e->pub, FDL_FW_PUB_LEN);
        }
    }
    if (kr.n == 0)
        return fail(FDL_FWSIGN_ERR_NOT_FOUND, "no trusted keys to list (run the signing setup)");
    size_t plen = 6 + (size_t)kr.n * FDL_KEYRING_ENTRY_LEN;
    if (!(img = fdl_malloc(FDL_FW_HDR_LEN + plen)))
        return fail(FDL_FWSIGN_ERR_NOMEM, "keyring image");
    if (fdl_keyring_encode(&kr, img + FDL_FW_HDR_LEN, plen) != plen) {
        st = fail(FDL_FWSIGN_ERR_CRYPTO, "keyring encoding");
        goto cleanup;
    }
    memset(&h, 0, sizeof h);
    h.hdr_version = FDL_FW_HDR_VERSION;
    h.tier = FDL_TIER_KEYRING;
    h.version = version ? version : 1u << 24;
    h.counter = counter ? counter : fs->keyring_counter;
    h.length = (uint32_t)plen;
    if (mbedtls_sha256(img + FDL_FW_HDR_LEN, plen, h.sha256, 0) != 0) {
        st = fail(FDL_FWSIGN_ERR_CRYPTO, "SHA-256");
        goto cleanup;
    }
    fdl_fwimage_encode_hdr(&h, img);
    if ((st = fdl_fwsign_sign_image(fs, img, FDL_FW_HDR_LEN + plen, FDL_FWSIGN_ROLE_ROOT, 0, 0, NULL)) !=
        FDL_FWSIGN_OK)
        goto cleanup;
    *out = img;
    *len = FDL_FW_HDR_LEN + plen;
    img = NULL;
cleanup:
    fdl_free(img);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Test images.                                                                              */

fdl_fwsign_status fdl_fwsign_build_image(const fdl_fwsign_build *b, uint8_t **out, size_t *len)
{
    char manifest[160], ver[16];
    fdl_fw_hdr h;
    g_err[0] = '\0';
    if (!b || !out || !len)
        return fail(FDL_FWSIGN_ERR_ARG, "b, out and len are required");
    *out = NULL;
    *len = 0;
    if (b->tier < FDL_TIER_BOOTLOADER || b->tier > FDL_TIER_KEYRING)
        return fail(FDL_FWSIGN_ERR_ARG, "unknown tier %u", b->tier);
    const char *beh = b->behaviour ? b->behaviour : "ok";
    if (strcmp(beh, "ok") && strcmp(beh, "no-confirm") && strcmp(beh, "crash"))
        return fail(FDL_FWSIGN_ERR_ARG, "behaviour is one of %s", FDL_FW_BEHAVIOURS);
    int mlen = snprintf(manifest, sizeof manifest, "FDL-PAYLOAD 1\ntier=%s\nversion=%s\nbehaviour=%s\n",
                        fdl_fw_tier_name(b->tier), fdl_fw_version_str(b->version, ver, sizeof ver), beh);
    size_t size = b->size ? b->size : 4096;
    if (size < (size_t)mlen || size > FDL_FW_PAYLOAD_MAX)
        return fail(FDL_FWSIGN_ERR_ARG, "payload size must be %d .. %u bytes", mlen, FDL_FW_PAYLOAD_MAX);
    uint8_t *img = fdl_malloc(FDL_FW_HDR_LEN + size);
    if (!img)
        return fail(FDL_FWSIGN_ERR_NOMEM, "image of %zu bytes", size);
    uint8_t *p = img + FDL_FW_HDR_LEN;
    memcpy(p, manifest, (size_t)mlen);
    for (size_t k = 0; k < size - (size_t)mlen; k++)
        p[mlen + k] = (uint8_t)(k * 131u + 7u);
    memset(&h, 0, sizeof h);
    h.hdr_version = FDL_FW_HDR_VERSION;
    h.tier = (uint8_t)b->tier;
    h.version = b->version;
    h.counter = b->counter;
    h.length = (uint32_t)size;
    h.hw_rev = b->hw_rev;
    if (mbedtls_sha256(p, size, h.sha256, 0) != 0) {
        fdl_free(img);
        return fail(FDL_FWSIGN_ERR_CRYPTO, "SHA-256");
    }
    fdl_fwimage_encode_hdr(&h, img);
    *out = img;
    *len = FDL_FW_HDR_LEN + size;
    return FDL_FWSIGN_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The online job signer.                                                                    */

fdl_fwsign_status fdl_fwsign_jobs_open(fdl_se_module *se, const char *dir, fdl_fwsign_jobs **out)
{
    fdl_fwsign *fs = NULL;
    fdl_fwsign_jobs *j = NULL;
    g_err[0] = '\0';
    if (!se || !dir || !out)
        return fail(FDL_FWSIGN_ERR_ARG, "se, dir and out are required");
    *out = NULL;
    /* keys.json is public: the job service reads it to learn which key is current. */
    fdl_fwsign_status st = fdl_fwsign_open(NULL, dir, &fs);
    if (st != FDL_FWSIGN_OK)
        return st;
    const fdl_fwsign_key *e = fdl_fwsign_find(fs, FDL_FWSIGN_ROLE_JOBS, 0);
    if (!e) {
        st = fail(FDL_FWSIGN_ERR_NOT_FOUND, "no current jobs key in %s/%s", dir, FDL_FWSIGN_KEYS_FILE);
        goto cleanup;
    }
    if (!(j = fdl_calloc(1, sizeof *j))) {
        st = fail(FDL_FWSIGN_ERR_NOMEM, "job signer");
        goto cleanup;
    }
    j->info = *e;
    if ((st = open_key(se, dir, e, &j->key)) != FDL_FWSIGN_OK)
        goto cleanup;
    *out = j;
    j = NULL;
cleanup:
    fdl_fwsign_jobs_free(j);
    fdl_fwsign_free(fs);
    return st;
}

void fdl_fwsign_jobs_free(fdl_fwsign_jobs *j)
{
    if (!j)
        return;
    fdl_se_key_free(j->key);
    fdl_free(j);
}

const uint8_t *fdl_fwsign_jobs_key_id(const fdl_fwsign_jobs *j)
{
    return j ? j->info.key_id : NULL;
}

fdl_fwsign_status fdl_fwsign_jobs_sign(fdl_fwsign_jobs *j, const uint8_t *doc, size_t len, uint8_t *out, size_t cap,
                                       size_t *out_len)
{
    uint8_t hash[32], sig[FDL_FW_SIG_LEN];
    if (!j || !doc || !out || !out_len || len < 1 || len > FDL_JOBDOC_MAX)
        return fail(FDL_FWSIGN_ERR_ARG, "a document of 1..%u bytes is required", FDL_JOBDOC_MAX);
    if (cap < len + FDL_JOBDOC_OVERHEAD)
        return fail(FDL_FWSIGN_ERR_SMALL, "envelope needs %zu bytes", len + FDL_JOBDOC_OVERHEAD);
    fdl_jobdoc_signed_hash(doc, len, j->info.key_id, hash);
    fdl_fwsign_status st = token_sign(j->key, hash, sig);
    if (st != FDL_FWSIGN_OK)
        return st;
    if (fdl_fw_ecdsa_verify(j->info.pub, hash, sig) != FDL_FW_OK)
        return fail(FDL_FWSIGN_ERR_MISMATCH, "job signature does not verify with the recorded jobs key");
    *out_len = fdl_jobdoc_wrap(doc, len, j->info.key_id, sig, out, cap);
    return *out_len ? FDL_FWSIGN_OK : fail(FDL_FWSIGN_ERR_SMALL, "envelope");
}
