/* sim/cmd_fw.c — `fleetdrill fw`: build test images, sign them in the offline token, inspect images,
 * keyrings and job documents, manage the signing keys (cloud/fwsign.h). */
#include "sim/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include "cloud/fwsign.h"
#include "devices/fwimage.h"
#include "devices/jobdoc.h"
#include "devices/keyring.h"
#include "sim/alloc.h"
#include "sim/context.h"
#include "sim/fsutil.h"
#include "sim/json.h"

/* Largest input file: the largest image, with room to notice bytes beyond it. */
#define FW_FILE_MAX ((size_t)FDL_FW_HDR_LEN + FDL_FW_PAYLOAD_MAX + 4096)
/* Manifest lines shown by inspect. */
#define MANIFEST_LINES_MAX 8

static const char k_usage[] =
    "usage: fleetdrill fw <command> [options]   (see docs/signing.md, docs/firmware-formats.md)\n\n"
    "  build --tier T --version M.m.p -o FILE [--counter N] [--size BYTES] [--hw REV]\n"
    "        [--behaviour ok|no-confirm|crash]\n"
    "                       an unsigned test image (deterministic payload with a text manifest)\n"
    "  sign FILE -o OUT [--key-tier T] [--generation G] [--any-state] [--key-pem PEM]\n"
    "                       sign in the offline token with the key of the image's tier (or of tier\n"
    "                       T, on purpose: devices refuse it), generation G (default: current);\n"
    "                       --any-state allows retired and revoked keys; --key-pem signs with a\n"
    "                       software key instead (a rogue signer for drills)\n"
    "  inspect FILE [--json] the parsed header (or keyring, or job document), the signer from\n"
    "                       keys.json and whether a device would take it\n"
    "  keys list [--json]   the signing keys (made on first use: tokens fdl-signing and fdl-jobs)\n"
    "  keys rotate --tier T a next key for T (the dual-trust window opens)\n"
    "  keys retire --tier T the next key becomes current, the current one is retired\n"
    "  keys revoke KEYID    a leaked key: never listed or used again\n"
    "  keyring -o FILE [--counter N] [--version M.m.p]\n"
    "                       the keyring image (root-signed) for the current key set\n\n"
    "  T is a tier (bootloader, kernel, application, modules, config, keyring) or a key role\n"
    "  (root = bootloader and keyring, jobs = job documents).\n"
    "common options: --state DIR (default $FLEETDRILL_STATE or ./.fleetdrill), -h/--help\n"
    "exit status: 0 ok; inspect: 4 when a device would refuse what it examined; 1 error; 2 usage.\n";

#define USAGE_ERR(...)                                                                                            \
    do {                                                                                                          \
        fprintf(stderr, "fleetdrill fw: " __VA_ARGS__);                                                           \
        fputc('\n', stderr);                                                                                      \
        return FDL_EXIT_USAGE;                                                                                    \
    } while (0)

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end || end == s || *s == '-' || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Reads a whole file of at most FW_FILE_MAX bytes (fdl_free). 0, or -1 with a message. */
static int read_input(const char *path, uint8_t **out, size_t *len)
{
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *out = NULL;
    *len = 0;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fprintf(stderr, "fleetdrill fw: %s: %s\n", path, fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if ((uint64_t)sb.st_size > FW_FILE_MAX) {
        fprintf(stderr, "fleetdrill fw: %s: %lld bytes, larger than any image (%zu)\n", path,
                (long long)sb.st_size, FW_FILE_MAX);
        close(fd);
        return -1;
    }
    uint8_t *buf = fdl_malloc((size_t)sb.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != (size_t)sb.st_size) {
        fprintf(stderr, "fleetdrill fw: cannot read %s\n", path);
        fdl_free(buf);
        return -1;
    }
    *out = buf;
    *len = got;
    return 0;
}

static int write_output(const char *path, const uint8_t *data, size_t len)
{
    int r = fdl_write_file_atomic(path, data, len, 0644);
    if (r != 0)
        fprintf(stderr, "fleetdrill fw: write %s: %s\n", path, strerror(-r));
    return r;
}

static void fw_dir(const char *state, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/firmware", state);
}

/* The context and the signing registry, set up on first use. 0 or -1 (message printed). */
static int open_signing(const char *state, fdl_ctx *ctx, fdl_fwsign **fs)
{
    char err[512], dir[FDL_PATH_MAX + 16];
    *fs = NULL;
    if (fdl_ctx_open(ctx, state, 0, err, sizeof err) != 0) {
        fprintf(stderr, "fleetdrill fw: %s\n", err);
        return -1;
    }
    fw_dir(ctx->st.dir, dir, sizeof dir);
    fdl_fwsign_status st = fdl_fwsign_open(ctx->se, dir, fs);
    if (st == FDL_FWSIGN_OK)
        st = fdl_fwsign_setup(*fs);
    if (st != FDL_FWSIGN_OK) {
        fprintf(stderr, "fleetdrill fw: signing keys in %s: %s (%s)\n", dir, fdl_fwsign_strerror(st),
                fdl_fwsign_last_error());
        fdl_fwsign_free(*fs);
        *fs = NULL;
        fdl_ctx_close(ctx);
        return -1;
    }
    return 0;
}

static void close_signing(fdl_ctx *ctx, fdl_fwsign *fs)
{
    fdl_fwsign_free(fs);
    fdl_ctx_close(ctx);
}

static unsigned parse_role_opt(const char *s)
{
    return fdl_fwsign_role_parse(s);
}

/* ---- build ------------------------------------------------------------------------- */

static int cmd_build(int argc, char **argv)
{
    static const struct option opts[] = {{"tier", required_argument, 0, 't'},     {"version", required_argument, 0, 'v'},
                                         {"counter", required_argument, 0, 'c'},  {"size", required_argument, 0, 's'},
                                         {"hw", required_argument, 0, 'w'},       {"behaviour", required_argument, 0, 'b'},
                                         {"behavior", required_argument, 0, 'b'}, {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},           {0}};
    fdl_fwsign_build b = {0};
    const char *out = NULL;
    int have_version = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!(b.tier = fdl_fw_tier_parse(optarg)))
                USAGE_ERR("--tier is bootloader, kernel, application, modules, config or keyring");
            break;
        case 'v':
            if (fdl_fw_version_parse(optarg, &b.version))
                USAGE_ERR("--version wants M.m.p, each 0..255");
            have_version = 1;
            break;
        case 'c':
            if (parse_u32(optarg, &b.counter))
                USAGE_ERR("--counter wants 0..4294967295");
            break;
        case 's':
            if (parse_u32(optarg, &b.size) || b.size == 0 || b.size > FDL_FW_PAYLOAD_MAX)
                USAGE_ERR("--size wants 1..%u bytes", FDL_FW_PAYLOAD_MAX);
            break;
        case 'w':
            if (parse_u32(optarg, &b.hw_rev))
                USAGE_ERR("--hw wants a hardware revision number (0 = any)");
            break;
        case 'b': b.behaviour = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(k_usage, stdout); return FDL_EXIT_OK;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (!b.tier || !have_version || !out || optind != argc)
        USAGE_ERR("usage: fleetdrill fw build --tier T --version M.m.p -o FILE [--counter N] [--size BYTES] "
                  "[--hw REV] [--behaviour ok|no-confirm|crash]");
    uint8_t *img = NULL;
    size_t len = 0;
    fdl_fwsign_status st = fdl_fwsign_build_image(&b, &img, &len);
    if (st == FDL_FWSIGN_ERR_ARG)
        USAGE_ERR("%s", fdl_fwsign_last_error());
    if (st != FDL_FWSIGN_OK) {
        fprintf(stderr, "fleetdrill fw: %s\n", fdl_fwsign_last_error());
        return FDL_EXIT_ERROR;
    }
    int r = write_output(out, img, len);
    if (r == 0) {
        char ver[16];
        printf("built %s %s, counter %u, hw %u, behaviour %s: %zu bytes, unsigned -> %s\n", fdl_fw_tier_name(b.tier),
               fdl_fw_version_str(b.version, ver, sizeof ver), b.counter, b.hw_rev, b.behaviour ? b.behaviour : "ok",
               len, out);
    }
    fdl_free(img);
    return r == 0 ? FDL_EXIT_OK : FDL_EXIT_ERROR;
}

/* ---- sign -------------------------------------------------------------------------- */

static int sign_with_pem(const char *pem, uint8_t *img, size_t len)
{
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
    mbedtls_pk_context pk;
    int rc = -1;
    mbedtls_entropy_init(&ent);
    mbedtls_ctr_drbg_init(&drbg);
    mbedtls_pk_init(&pk);
    if (mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &ent, (const unsigned char *)"fdl-fw-sign", 11) != 0) {
        fprintf(stderr, "fleetdrill fw: cannot seed the random generator\n");
        goto cleanup;
    }
    if (mbedtls_pk_parse_keyfile(&pk, pem, NULL, mbedtls_ctr_drbg_random, &drbg) != 0) {
        fprintf(stderr, "fleetdrill fw: %s: not an unencrypted PEM/DER private key\n", pem);
        goto cleanup;
    }
    fdl_fwsign_status st = fdl_fwsign_sign_image_pk(img, len, &pk, mbedtls_ctr_drbg_random, &drbg);
    if (st != FDL_FWSIGN_OK) {
        fprintf(stderr, "fleetdrill fw: %s\n", fdl_fwsign_last_error());
        goto cleanup;
    }
    rc = 0;
cleanup:
    mbedtls_pk_free(&pk);
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&ent);
    return rc;
}

static int cmd_sign(int argc, char **argv)
{
    static const struct option opts[] = {{"key-tier", required_argument, 0, 'k'}, {"generation", required_argument, 0, 'g'},
                                         {"any-state", no_argument, 0, 'a'},       {"key-pem", required_argument, 0, 'p'},
                                         {"output", required_argument, 0, 'o'},    {"state", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},            {0}};
    const char *state = fdl_default_state_dir(), *out = NULL, *pem = NULL;
    unsigned role = 0, flags = 0;
    uint32_t gen = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (!(role = parse_role_opt(optarg)))
                USAGE_ERR("--key-tier is a tier or root/jobs");
            break;
        case 'g':
            if (parse_u32(optarg, &gen) || gen == 0)
                USAGE_ERR("--generation wants 1, 2, ...");
            break;
        case 'a': flags |= FDL_FWSIGN_ANY_STATE; break;
        case 'p': pem = optarg; break;
        case 'o': out = optarg; break;
        case 's': state = optarg; break;
        case 'h': fputs(k_usage, stdout); return FDL_EXIT_OK;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !out)
        USAGE_ERR("usage: fleetdrill fw sign FILE -o OUT [--key-tier T] [--generation G] [--any-state] "
                  "[--key-pem PEM] [--state DIR]");
    if (pem && (role || gen || flags))
        USAGE_ERR("--key-pem signs with that key only: no --key-tier, --generation or --any-state");
    const char *in = argv[optind];
    uint8_t *img = NULL;
    size_t len = 0;
    fdl_fw_hdr h;
    char ver[16], kid[17];
    if (read_input(in, &img, &len) != 0)
        return FDL_EXIT_ERROR;
    fdl_fw_status fst = fdl_fwimage_parse(img, len, &h, NULL);
    if (fst != FDL_FW_OK) {
        fprintf(stderr, "fleetdrill fw: %s: not a well-formed image: %s\n", in, fdl_fw_strerror(fst));
        fdl_free(img);
        return FDL_EXIT_ERROR;
    }
    int rc = FDL_EXIT_ERROR;
    if (pem) {
        if (sign_with_pem(pem, img, len) == 0 && write_output(out, img, len) == 0) {
            fdl_fwimage_parse_hdr(img, len, &h);
            printf("signed %s (%s %s) with the software key %s (key id %s, trusted by no device) -> %s\n", in,
                   fdl_fw_tier_name(h.tier), fdl_fw_version_str(h.version, ver, sizeof ver), pem,
                   fdl_fw_key_id_hex(h.key_id, kid, sizeof kid), out);
            rc = FDL_EXIT_OK;
        }
        fdl_free(img);
        return rc;
    }
    fdl_cli_install_signals();
    fdl_ctx ctx;
    fdl_fwsign *fs = NULL;
    if (open_signing(state, &ctx, &fs) != 0) {
        fdl_free(img);
        return FDL_EXIT_ERROR;
    }
    const fdl_fwsign_key *used = NULL;
    fdl_fwsign_status st = fdl_fwsign_sign_image(fs, img, len, role, gen, flags, &used);
    if (st != FDL_FWSIGN_OK) {
        fprintf(stderr, "fleetdrill fw: signing %s: %s (%s)\n", in, fdl_fwsign_strerror(st), fdl_fwsign_last_error());
    } else if (write_output(out, img, len) == 0) {
        printf("signed %s (%s %s, counter %u) with %s (%s key, generation %u, %s; key id %s) -> %s\n", in,
               fdl_fw_tier_name(h.tier), fdl_fw_version_str(h.version, ver, sizeof ver), h.counter, used->label,
               fdl_fwsign_role_name(used->role), used->generation, fdl_fwkey_state_name(used->state),
               fdl_fw_key_id_hex(used->key_id, kid, sizeof kid), out);
        if (used->role != fdl_fwsign_role_for_tier(h.tier))
            printf("note: a %s key does not sign %s images: devices refuse this one (a drill image)\n",
                   fdl_fwsign_role_name(used->role), fdl_fw_tier_name(h.tier));
        else if (used->state == FDL_FWKEY_RETIRED || used->state == FDL_FWKEY_REVOKED)
            printf("note: the key is %s: devices with a current keyring refuse this image\n",
                   fdl_fwkey_state_name(used->state));
        rc = FDL_EXIT_OK;
    }
    close_signing(&ctx, fs);
    fdl_free(img);
    return rc;
}

/* ---- inspect -------------------------------------------------------------------------- */

/* Output to text (j NULL) or JSON: one function per kind of line. */
typedef struct inspect_out {
    fdl_json *j;
} inspect_out;

__attribute__((format(printf, 4, 5))) static void o_str(inspect_out *o, const char *key, const char *label, const char *fmt,
                                                          ...)
{
    char v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    if (o->j)
        fdl_json_str(o->j, key, v);
    else
        printf("%-16s %s\n", label, v);
}

static void o_uint(inspect_out *o, const char *key, const char *label, uint64_t v)
{
    if (o->j)
        fdl_json_uint(o->j, key, v);
    else
        printf("%-16s %llu\n", label, (unsigned long long)v);
}

static void o_bool(inspect_out *o, const char *key, int v)
{
    if (o->j)
        fdl_json_bool(o->j, key, v);
}

/* What keys.json says about a key id: its label, role, generation and state. */
static void o_signer(inspect_out *o, const char *key, const fdl_fwsign *reg, const uint8_t id[FDL_FW_KEYID_LEN])
{
    char kid[17];
    const fdl_fwsign_key *e = reg ? fdl_fwsign_find_id(reg, id) : NULL;
    fdl_fw_key_id_hex(id, kid, sizeof kid);
    if (o->j) {
        fdl_json_obj_begin(o->j, key);
        fdl_json_str(o->j, "key_id", kid);
        if (e) {
            fdl_json_str(o->j, "label", e->label);
            fdl_json_str(o->j, "role", fdl_fwsign_role_name(e->role));
            fdl_json_uint(o->j, "generation", e->generation);
            fdl_json_str(o->j, "state", fdl_fwkey_state_name(e->state));
        }
        fdl_json_obj_end(o->j);
    } else if (e) {
        printf("%-16s %s: %s (%s key, generation %u, %s)\n", "key id", kid, e->label, fdl_fwsign_role_name(e->role),
               e->generation, fdl_fwkey_state_name(e->state));
    } else {
        static const uint8_t zero[FDL_FW_KEYID_LEN];
        printf("%-16s %s: %s\n", "key id", kid,
               !memcmp(id, zero, sizeof zero) ? "none (unsigned)" : reg ? "not in keys.json" : "(no keys.json to look up)");
    }
}

/* The text manifest of a test payload ("FDL-PAYLOAD 1\nk=v\n..."), printable lines only. */
static void o_manifest(inspect_out *o, const uint8_t *p, size_t len)
{
    static const char magic[] = "FDL-PAYLOAD 1\n";
    if (len < sizeof magic - 1 || memcmp(p, magic, sizeof magic - 1) != 0)
        return;
    if (o->j)
        fdl_json_obj_begin(o->j, "manifest");
    size_t at = sizeof magic - 1;
    for (int lines = 0; lines < MANIFEST_LINES_MAX && at < len; lines++) {
        const uint8_t *nl = memchr(p + at, '\n', len - at);
        const uint8_t *eq = nl ? memchr(p + at, '=', (size_t)(nl - (p + at))) : NULL;
        if (!nl || !eq || nl - (p + at) > 80)
            break;
        char k[40], v[80];
        size_t kl = (size_t)(eq - (p + at)), vl = (size_t)(nl - eq - 1);
        int ok = kl > 0 && kl < sizeof k && vl < sizeof v;
        for (const uint8_t *c = p + at; ok && c < nl; c++)
            ok = *c >= 0x20 && *c < 0x7f;
        if (!ok)
            break;
        memcpy(k, p + at, kl);
        k[kl] = '\0';
        memcpy(v, eq + 1, vl);
        v[vl] = '\0';
        if (o->j)
            fdl_json_str(o->j, k, v);
        else
            printf("%-16s %s=%s\n", lines ? "" : "manifest", k, v);
        at = (size_t)(nl - p) + 1;
    }
    if (o->j)
        fdl_json_obj_end(o->j);
}

static void o_keyring(inspect_out *o, const fdl_keyring *kr, const fdl_fwsign *reg)
{
    char kid[17];
    if (o->j)
        fdl_json_arr_begin(o->j, "keyring");
    for (unsigned i = 0; i < kr->n; i++) {
        const fdl_keyring_entry *e = &kr->e[i];
        const fdl_fwsign_key *r = reg ? fdl_fwsign_find_id(reg, e->key_id) : NULL;
        fdl_fw_key_id_hex(e->key_id, kid, sizeof kid);
        const char *st = e->state == FDL_KEY_CURRENT ? "current" : "next";
        if (o->j) {
            fdl_json_obj_begin(o->j, NULL);
            fdl_json_str(o->j, "usage", fdl_key_usage_name(e->usage));
            fdl_json_str(o->j, "state", st);
            fdl_json_str(o->j, "key_id", kid);
            if (r)
                fdl_json_str(o->j, "label", r->label);
            fdl_json_obj_end(o->j);
        } else {
            printf("%-16s %-12s %-8s %s %s\n", i ? "" : "trusts", fdl_key_usage_name(e->usage), st, kid,
                   r ? r->label : "");
        }
    }
    if (o->j)
        fdl_json_arr_end(o->j);
}

/* Would a device take this image, as far as the file alone says? (Its fuses,
 * floor and running keyring are the device's.) A signer recorded in keys.json,
 * of the image's own role, current or next, whose signature verifies. */
static int image_verdict(const fdl_fw_hdr *h, const fdl_fwsign *reg, char *why, size_t cap)
{
    static const uint8_t zero[FDL_FW_SIG_LEN];
    const fdl_fwsign_key *e = reg ? fdl_fwsign_find_id(reg, h->key_id) : NULL;
    if (!memcmp(h->key_id, zero, FDL_FW_KEYID_LEN) && !memcmp(h->sig, zero, FDL_FW_SIG_LEN)) {
        snprintf(why, cap, "unsigned image");
        return 0;
    }
    if (!e) {
        snprintf(why, cap, "signer not in keys.json");
        return 0;
    }
    if (fdl_fwimage_verify_sig(h, e->pub) != FDL_FW_OK) {
        snprintf(why, cap, "signature does not verify with %s", e->label);
        return 0;
    }
    if (e->role != fdl_fwsign_role_for_tier(h->tier)) {
        snprintf(why, cap, "signed by a %s key: a key of one tier cannot sign another (%s)",
                 fdl_fwsign_role_name(e->role), fdl_fw_tier_name(h->tier));
        return 0;
    }
    if (e->state != FDL_FWKEY_CURRENT && e->state != FDL_FWKEY_NEXT) {
        snprintf(why, cap, "signed by %s, which is %s", e->label, fdl_fwkey_state_name(e->state));
        return 0;
    }
    snprintf(why, cap, "signed by %s (%s), signature verifies", e->label, fdl_fwkey_state_name(e->state));
    return 1;
}

static int inspect_image(inspect_out *o, const uint8_t *buf, size_t len, const fdl_fwsign *reg, char *why, size_t cap)
{
    fdl_fw_hdr h;
    char hex[2 * FDL_FW_SIG_LEN + 1], ver[16];
    fdl_fw_status st = fdl_fwimage_parse_hdr(buf, len, &h);
    o_str(o, "kind", "kind", "firmware image");
    if (st != FDL_FW_OK) {
        o_str(o, "error", "malformed", "%s", fdl_fw_strerror(st));
        snprintf(why, cap, "malformed header: %s", fdl_fw_strerror(st));
        return 0;
    }
    o_str(o, "tier", "tier", "%s", fdl_fw_tier_name(h.tier));
    o_str(o, "version", "version", "%s", fdl_fw_version_str(h.version, ver, sizeof ver));
    o_uint(o, "counter", "counter", h.counter);
    o_uint(o, "length", "payload length", h.length);
    o_uint(o, "hw_rev", "hw revision", h.hw_rev);
    to_hex(h.sha256, 32, hex);
    o_str(o, "payload_sha256", "payload sha256", "%s", hex);
    fdl_fw_status whole = fdl_fwimage_parse(buf, len, &h, NULL);
    if (whole == FDL_FW_ERR_LENGTH) {
        o_str(o, "payload", "payload", "%zu bytes after the header, header says %u: refused", len - FDL_FW_HDR_LEN,
              h.length);
    } else if (whole == FDL_FW_ERR_HASH) {
        uint8_t sum[32];
        mbedtls_sha256(buf + FDL_FW_HDR_LEN, h.length, sum, 0);
        to_hex(sum, 32, hex);
        o_str(o, "payload", "payload", "hash MISMATCH (actual %s)", hex);
    } else {
        o_str(o, "payload", "payload", "hash ok");
    }
    o_signer(o, "signer", reg, h.key_id);
    to_hex(h.sig, FDL_FW_SIG_LEN, hex);
    o_str(o, "signature", "signature", "%s", hex);
    if (whole == FDL_FW_OK) {
        o_manifest(o, buf + FDL_FW_HDR_LEN, h.length);
        if (h.tier == FDL_TIER_KEYRING) {
            fdl_keyring kr;
            fdl_keyring_status ks = fdl_keyring_parse(buf + FDL_FW_HDR_LEN, h.length, &kr);
            if (ks == FDL_KR_OK)
                o_keyring(o, &kr, reg);
            else
                o_str(o, "keyring_error", "keyring", "malformed: %s", fdl_keyring_strerror(ks));
        }
    }
    if (whole != FDL_FW_OK) {
        snprintf(why, cap, "%s", fdl_fw_strerror(whole));
        return 0;
    }
    return image_verdict(&h, reg, why, cap);
}

static int inspect_keyring(inspect_out *o, const uint8_t *buf, size_t len, const fdl_fwsign *reg, char *why, size_t cap)
{
    fdl_keyring kr;
    o_str(o, "kind", "kind", "keyring payload (no image header, so no signature)");
    fdl_keyring_status ks = fdl_keyring_parse(buf, len, &kr);
    if (ks != FDL_KR_OK) {
        o_str(o, "error", "malformed", "%s", fdl_keyring_strerror(ks));
        snprintf(why, cap, "malformed keyring: %s", fdl_keyring_strerror(ks));
        return 0;
    }
    o_keyring(o, &kr, reg);
    snprintf(why, cap, "a bare keyring: devices take keyrings only inside a root-signed image");
    return 0;
}

static int inspect_job(inspect_out *o, const uint8_t *buf, size_t len, const fdl_fwsign *reg, char *why, size_t cap)
{
    fdl_jobdoc jd;
    char ver[16], hex[65];
    o_str(o, "kind", "kind", "job document");
    fdl_jobdoc_status st = fdl_jobdoc_parse(buf, len, &jd);
    if (st != FDL_JOB_OK) {
        o_str(o, "error", "malformed", "%s", fdl_jobdoc_strerror(st));
        snprintf(why, cap, "%s", fdl_jobdoc_strerror(st));
        return 0;
    }
    o_str(o, "job", "job", "%s", jd.job);
    o_uint(o, "seq", "seq", jd.seq);
    o_str(o, "tier", "tier", "%s", fdl_fw_tier_name(jd.tier));
    o_str(o, "version", "version", "%s", fdl_fw_version_str(jd.version, ver, sizeof ver));
    o_uint(o, "counter", "counter", jd.counter);
    o_str(o, "artifact", "artifact", "%s", jd.artifact);
    to_hex(jd.sha256, 32, hex);
    o_str(o, "sha256", "image sha256", "%s", hex);
    o_uint(o, "size", "image size", jd.size);
    o_uint(o, "issued", "issued (ms)", jd.issued_ms);
    o_uint(o, "expires", "expires (ms)", jd.expires_ms);
    o_uint(o, "targets", "targets", jd.n_targets);
    if (o->j) {
        fdl_json_arr_begin(o->j, "hw");
        for (unsigned i = 0; i < jd.n_hw; i++)
            fdl_json_uint(o->j, NULL, jd.hw[i]);
        fdl_json_arr_end(o->j);
    } else if (jd.n_hw) {
        printf("%-16s", "hw revisions");
        for (unsigned i = 0; i < jd.n_hw; i++)
            printf(" %u", jd.hw[i]);
        putchar('\n');
    }
    o_signer(o, "signer", reg, jd.key_id);
    /* The registry's jobs keys (next and current) as a device's keyring would list them. */
    fdl_keyring kr;
    memset(&kr, 0, sizeof kr);
    for (size_t i = 0; reg && i < fdl_fwsign_count(reg) && kr.n < FDL_KEYRING_MAX; i++) {
        const fdl_fwsign_key *e = fdl_fwsign_key_at(reg, i);
        if (e->role != FDL_FWSIGN_ROLE_JOBS || (e->state != FDL_FWKEY_CURRENT && e->state != FDL_FWKEY_NEXT))
            continue;
        kr.e[kr.n].usage = FDL_KEY_USAGE_JOBS;
        kr.e[kr.n].state = e->state == FDL_FWKEY_CURRENT ? FDL_KEY_CURRENT : FDL_KEY_NEXT;
        memcpy(kr.e[kr.n].key_id, e->key_id, FDL_FW_KEYID_LEN);
        memcpy(kr.e[kr.n].pub, e->pub, FDL_FW_PUB_LEN);
        kr.n++;
    }
    st = fdl_jobdoc_verify(&jd, &kr);
    snprintf(why, cap, "%s", st == FDL_JOB_OK ? "signed by a current or next jobs key, signature verifies"
                                              : fdl_jobdoc_strerror(st));
    return st == FDL_JOB_OK;
}

static int cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {{"json", no_argument, 0, 'j'}, {"state", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'}, {0}};
    const char *state = fdl_default_state_dir();
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 's': state = optarg; break;
        case 'h': fputs(k_usage, stdout); return FDL_EXIT_OK;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        USAGE_ERR("usage: fleetdrill fw inspect FILE [--json] [--state DIR]");
    const char *in = argv[optind];
    uint8_t *buf = NULL;
    size_t len = 0;
    if (read_input(in, &buf, &len) != 0)
        return FDL_EXIT_ERROR;

    /* The registry only if it exists, read only: inspecting creates nothing. */
    char dir[FDL_PATH_MAX], keys[FDL_PATH_MAX + 32];
    fdl_fwsign *reg = NULL;
    fw_dir(state, dir, sizeof dir);
    snprintf(keys, sizeof keys, "%s/%s", dir, FDL_FWSIGN_KEYS_FILE);
    if (access(keys, F_OK) == 0 && fdl_fwsign_open(NULL, dir, &reg) != FDL_FWSIGN_OK) {
        fprintf(stderr, "fleetdrill fw: %s: %s\n", keys, fdl_fwsign_last_error());
        fdl_free(buf);
        return FDL_EXIT_ERROR;
    }

    inspect_out o = {.j = json ? fdl_json_new(1 << 20) : NULL};
    char why[256];
    int ok;
    if (o.j) {
        fdl_json_set_pretty(o.j, 1);
        fdl_json_obj_begin(o.j, NULL);
        fdl_json_str(o.j, "file", in);
        fdl_json_uint(o.j, "size", len);
    } else {
        printf("%-16s %s (%zu bytes)\n", "file", in, len);
    }
    if (len >= 4 && !memcmp(buf, FDL_JOBDOC_MAGIC, 4))
        ok = inspect_job(&o, buf, len, reg, why, sizeof why);
    else if (len >= 4 && !memcmp(buf, FDL_KEYRING_MAGIC, 4))
        ok = inspect_keyring(&o, buf, len, reg, why, sizeof why);
    else
        ok = inspect_image(&o, buf, len, reg, why, sizeof why);
    if (o.j) {
        o_bool(&o, "accepted", ok);
        fdl_json_str(o.j, "verdict", why);
        fdl_json_obj_end(o.j);
        const char *t = fdl_json_text(o.j, NULL);
        if (t)
            puts(t);
        fdl_json_free(o.j);
    } else {
        printf("%-16s %s: %s\n", "verdict", ok ? "OK" : "REFUSED", why);
    }
    fdl_fwsign_free(reg);
    fdl_free(buf);
    return ok ? FDL_EXIT_OK : FDL_EXIT_FINDINGS;
}

/* ---- keys ---------------------------------------------------------------------------- */

static void print_keys(const fdl_fwsign *fs, int json)
{
    char kid[17], hash[65];
    uint8_t root[32];
    int have_root = fdl_fwsign_root_hash(fs, root) == FDL_FWSIGN_OK;
    if (have_root)
        to_hex(root, 32, hash);
    if (json) {
        fdl_json *j = fdl_json_new(1 << 20);
        fdl_json_set_pretty(j, 1);
        fdl_json_obj_begin(j, NULL);
        fdl_json_uint(j, "keyring_counter", fdl_fwsign_keyring_counter(fs));
        if (have_root)
            fdl_json_str(j, "root_key_hash", hash);
        fdl_json_arr_begin(j, "keys");
        for (size_t i = 0; i < fdl_fwsign_count(fs); i++) {
            const fdl_fwsign_key *e = fdl_fwsign_key_at(fs, i);
            fdl_json_obj_begin(j, NULL);
            fdl_json_str(j, "key_id", fdl_fw_key_id_hex(e->key_id, kid, sizeof kid));
            fdl_json_str(j, "role", fdl_fwsign_role_name(e->role));
            fdl_json_uint(j, "generation", e->generation);
            fdl_json_str(j, "state", fdl_fwkey_state_name(e->state));
            fdl_json_str(j, "token", e->token);
            fdl_json_str(j, "label", e->label);
            fdl_json_obj_end(j);
        }
        fdl_json_arr_end(j);
        fdl_json_obj_end(j);
        const char *t = fdl_json_text(j, NULL);
        if (t)
            puts(t);
        fdl_json_free(j);
        return;
    }
    printf("%-16s  %-11s  %3s  %-8s  %-11s  %s\n", "KEY ID", "ROLE", "GEN", "STATE", "TOKEN", "LABEL");
    for (size_t i = 0; i < fdl_fwsign_count(fs); i++) {
        const fdl_fwsign_key *e = fdl_fwsign_key_at(fs, i);
        printf("%-16s  %-11s  %3u  %-8s  %-11s  %s\n", fdl_fw_key_id_hex(e->key_id, kid, sizeof kid),
               fdl_fwsign_role_name(e->role), e->generation, fdl_fwkey_state_name(e->state), e->token, e->label);
    }
    printf("\nkeyring counter %u", fdl_fwsign_keyring_counter(fs));
    if (have_root)
        printf("; root key hash (fused into devices) %s", hash);
    putchar('\n');
}

static int cmd_keys(int argc, char **argv)
{
    static const struct option opts[] = {{"tier", required_argument, 0, 't'}, {"json", no_argument, 0, 'j'},
                                         {"state", required_argument, 0, 's'}, {"help", no_argument, 0, 'h'},
                                         {0}};
    const char *state = fdl_default_state_dir();
    unsigned role = 0;
    int json = 0, c;
    if (argc < 2)
        USAGE_ERR("usage: fleetdrill fw keys list|rotate --tier T|retire --tier T|revoke KEYID [--state DIR]");
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help")) {
        fputs(k_usage, stdout);
        return FDL_EXIT_OK;
    }
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!(role = parse_role_opt(optarg)))
                USAGE_ERR("--tier is a tier or root/jobs");
            break;
        case 'j': json = 1; break;
        case 's': state = optarg; break;
        case 'h': fputs(k_usage, stdout); return FDL_EXIT_OK;
        default: return FDL_EXIT_USAGE;
        }
    }
    uint8_t id[FDL_FW_KEYID_LEN];
    int is_list = !strcmp(sub, "list"), is_rotate = !strcmp(sub, "rotate"), is_retire = !strcmp(sub, "retire"),
        is_revoke = !strcmp(sub, "revoke");
    if (!is_list && !is_rotate && !is_retire && !is_revoke)
        USAGE_ERR("unknown keys command '%s' (list, rotate, retire, revoke)", sub);
    if ((is_rotate || is_retire) && (!role || optind != argc))
        USAGE_ERR("usage: fleetdrill fw keys %s --tier T", sub);
    if (is_list && optind != argc)
        USAGE_ERR("usage: fleetdrill fw keys list [--json]");
    if (is_revoke && (optind != argc - 1 || fdl_fw_hex_decode(argv[optind], id, FDL_FW_KEYID_LEN, 0) != 0))
        USAGE_ERR("usage: fleetdrill fw keys revoke KEYID (16 hex digits, see fw keys list)");
    fdl_cli_install_signals();
    fdl_ctx ctx;
    fdl_fwsign *fs = NULL;
    if (open_signing(state, &ctx, &fs) != 0)
        return FDL_EXIT_ERROR;
    fdl_fwsign_status st = FDL_FWSIGN_OK;
    char kid[17];
    if (is_rotate) {
        const fdl_fwsign_key *made = NULL;
        if ((st = fdl_fwsign_rotate(fs, role, &made)) == FDL_FWSIGN_OK)
            printf("new %s key %s (generation %u, next; key id %s), keyring counter %u\n"
                   "next: publish the keyring (fleetdrill fw keyring -o FILE) so devices trust both keys, sign\n"
                   "with --generation %u, then: fleetdrill fw keys retire --tier %s\n",
                   fdl_fwsign_role_name(role), made->label, made->generation,
                   fdl_fw_key_id_hex(made->key_id, kid, sizeof kid), fdl_fwsign_keyring_counter(fs), made->generation,
                   fdl_fwsign_role_name(role));
    } else if (is_retire) {
        if ((st = fdl_fwsign_retire(fs, role)) == FDL_FWSIGN_OK)
            printf("%s is now the current %s key; the previous one is retired; keyring counter %u\n",
                   fdl_fwsign_find(fs, role, 0)->label, fdl_fwsign_role_name(role), fdl_fwsign_keyring_counter(fs));
    } else if (is_revoke) {
        if ((st = fdl_fwsign_revoke(fs, id)) == FDL_FWSIGN_OK) {
            const fdl_fwsign_key *e = fdl_fwsign_find_id(fs, id);
            const fdl_fwsign_key *cur = fdl_fwsign_find(fs, e->role, 0);
            printf("revoked %s; keyring counter %u; publish the keyring so devices drop it\n", e->label,
                   fdl_fwsign_keyring_counter(fs));
            if (!cur)
                printf("warning: no current %s key left: fleetdrill fw keys rotate --tier %s, then retire\n",
                       fdl_fwsign_role_name(e->role), fdl_fwsign_role_name(e->role));
        }
    } else {
        print_keys(fs, json);
    }
    if (st != FDL_FWSIGN_OK)
        fprintf(stderr, "fleetdrill fw: %s (%s)\n", fdl_fwsign_strerror(st), fdl_fwsign_last_error());
    close_signing(&ctx, fs);
    return st == FDL_FWSIGN_OK ? FDL_EXIT_OK : FDL_EXIT_ERROR;
}

/* ---- keyring ------------------------------------------------------------------------- */

static int cmd_keyring(int argc, char **argv)
{
    static const struct option opts[] = {{"counter", required_argument, 0, 'c'}, {"version", required_argument, 0, 'v'},
                                         {"output", required_argument, 0, 'o'},  {"state", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},          {0}};
    const char *state = fdl_default_state_dir(), *out = NULL;
    uint32_t counter = 0, version = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (parse_u32(optarg, &counter) || counter == 0)
                USAGE_ERR("--counter wants 1..4294967295");
            break;
        case 'v':
            if (fdl_fw_version_parse(optarg, &version))
                USAGE_ERR("--version wants M.m.p");
            break;
        case 'o': out = optarg; break;
        case 's': state = optarg; break;
        case 'h': fputs(k_usage, stdout); return FDL_EXIT_OK;
        default: return FDL_EXIT_USAGE;
        }
    }
    if (!out || optind != argc)
        USAGE_ERR("usage: fleetdrill fw keyring -o FILE [--counter N] [--version M.m.p] [--state DIR]");
    fdl_cli_install_signals();
    fdl_ctx ctx;
    fdl_fwsign *fs = NULL;
    if (open_signing(state, &ctx, &fs) != 0)
        return FDL_EXIT_ERROR;
    uint8_t *img = NULL;
    size_t len = 0;
    int rc = FDL_EXIT_ERROR;
    fdl_fwsign_status st = fdl_fwsign_keyring_image(fs, version, counter, &img, &len);
    if (st != FDL_FWSIGN_OK) {
        fprintf(stderr, "fleetdrill fw: keyring: %s (%s)\n", fdl_fwsign_strerror(st), fdl_fwsign_last_error());
    } else if (write_output(out, img, len) == 0) {
        fdl_fw_hdr h;
        fdl_fwimage_parse_hdr(img, len, &h);
        printf("keyring image, counter %u, %u keys, signed by %s -> %s\n", h.counter,
               (unsigned)((h.length - 6) / FDL_KEYRING_ENTRY_LEN), fdl_fwsign_find(fs, FDL_FWSIGN_ROLE_ROOT, 0)->label,
               out);
        rc = FDL_EXIT_OK;
    }
    fdl_free(img);
    close_signing(&ctx, fs);
    return rc;
}

int fdl_cmd_fw(int argc, char **argv)
{
    if (argc < 2) {
        fputs(k_usage, stderr);
        return FDL_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
        fputs(k_usage, stdout);
        return FDL_EXIT_OK;
    }
    if (!strcmp(sub, "build"))
        return cmd_build(argc - 1, argv + 1);
    if (!strcmp(sub, "sign"))
        return cmd_sign(argc - 1, argv + 1);
    if (!strcmp(sub, "inspect"))
        return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(sub, "keys"))
        return cmd_keys(argc - 1, argv + 1);
    if (!strcmp(sub, "keyring"))
        return cmd_keyring(argc - 1, argv + 1);
    fprintf(stderr, "fleetdrill fw: unknown command '%s'\n\n", sub);
    fputs(k_usage, stderr);
    return FDL_EXIT_USAGE;
}
