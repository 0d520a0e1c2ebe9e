/* tests/testutil.c — see testutil.h. */
#include "testutil.h"

#include "fdl_buildcfg.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mbedtls/entropy.h>

void fdl_test_mkdtemp(const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/fdl-test-%s-XXXXXX", name);
    assert_non_null(mkdtemp(buf));
}

void fdl_test_rmrf(const char *path)
{
    if (strncmp(path, "/tmp/", 5) != 0 || strstr(path, ".."))
        return;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
}

uint16_t fdl_test_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &l), 0);
    close(s);
    return ntohs(a.sin_port);
}

void fdl_test_softhsm_conf(const char *dir, char *conf, size_t cap)
{
    char tokens[4096];
    snprintf(tokens, sizeof tokens, "%s/tokens", dir);
    mkdir(tokens, 0700);
    snprintf(conf, cap, "%s/softhsm2.conf", dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n"
               "slots.removable = false\n", tokens);
    fclose(f);
}

const char *fdl_test_src_path(const char *rel, char *buf, size_t cap)
{
    const char *src = getenv("FDL_SOURCE_DIR");
    snprintf(buf, cap, "%s/%s", src ? src : FDL_SOURCE_DIR, rel);
    return buf;
}

char *fdl_test_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

int fdl_test_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool fdl_test_decode_pct(const char *s, uint8_t *out, size_t cap, size_t *len)
{
    for (; *s; s++) {
        if (*s != '%') {
            if (*len >= cap)
                return false;
            out[(*len)++] = (uint8_t)*s;
            continue;
        }
        if (s[1] == '%') {
            if (*len >= cap)
                return false;
            out[(*len)++] = '%';
            s++;
            continue;
        }
        if (s[1] == '(') {
            char *colon = NULL;
            unsigned long n = strtoul(s + 2, &colon, 10);
            const char *close = colon ? strchr(colon, ')') : NULL;
            if (!colon || *colon != ':' || !close)
                return false;
            char piece[256];
            size_t plen = (size_t)(close - colon - 1);
            if (plen >= sizeof piece)
                return false;
            memcpy(piece, colon + 1, plen);
            piece[plen] = '\0';
            for (unsigned long i = 0; i < n; i++)
                if (!fdl_test_decode_pct(piece, out, cap, len))
                    return false;
            s = close;
            continue;
        }
        int hi = fdl_test_hexval((unsigned char)s[1]), lo = hi >= 0 ? fdl_test_hexval((unsigned char)s[2]) : -1;
        if (hi < 0 || lo < 0 || *len >= cap)
            return false;
        out[(*len)++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    return true;
}

void fdl_test_jparse(fdl_test_jdoc *d, const char *text, size_t len)
{
    d->buf = malloc(len ? len : 1);
    d->tok = calloc(len + 1, sizeof *d->tok); /* never more tokens than bytes */
    assert_true(d->buf && d->tok);
    memcpy(d->buf, text, len);
    d->len = len;
    fdl_jv_limits lim = {.max_bytes = len + 1, .max_depth = 32, .max_tokens = (uint32_t)len + 1,
                         .max_string = (uint32_t)len + 1};
    size_t at = 0;
    fdl_jv_status st = fdl_jv_parse(d->buf, d->len, &lim, d->tok, len + 1, &d->n, &at);
    if (st != FDL_JV_OK)
        fail_msg("JSON: %s at byte %zu: %.40s", fdl_jv_strerror(st), at, text + (at < len ? at : 0));
}

void fdl_test_jload(fdl_test_jdoc *d, const char *path)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *text = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            text = realloc(text, cap);
            assert_non_null(text);
        }
        got = fread(text + len, 1, cap - len, fp);
        len += got;
    } while (got > 0);
    fclose(fp);
    assert_true(len > 0);
    fdl_test_jparse(d, text, len);
    free(text);
}

void fdl_test_jfree(fdl_test_jdoc *d)
{
    free(d->buf);
    free(d->tok);
    memset(d, 0, sizeof *d);
}

size_t fdl_test_jget(const fdl_test_jdoc *d, size_t obj, const char *key)
{
    assert_int_equal(d->tok[obj].type, FDL_JV_OBJECT);
    for (size_t k = obj + 1; k < d->tok[obj].end; k = d->tok[k + 1].end)
        if (fdl_jv_str_eq(d->buf, &d->tok[k], key, strlen(key)))
            return k + 1;
    return 0;
}

size_t fdl_test_jat(const fdl_test_jdoc *d, size_t arr, size_t i)
{
    assert_int_equal(d->tok[arr].type, FDL_JV_ARRAY);
    assert_true(i < d->tok[arr].size);
    size_t k = arr + 1;
    while (i-- > 0)
        k = d->tok[k].end;
    return k;
}

void fdl_test_jstr_is(const fdl_test_jdoc *d, size_t obj, const char *key, const char *want)
{
    size_t v = fdl_test_jget(d, obj, key);
    assert_true(v > 0);
    assert_int_equal(d->tok[v].type, FDL_JV_STRING);
    if (!fdl_jv_str_eq(d->buf, &d->tok[v], want, strlen(want)))
        fail_msg("%s is \"%.*s\", want \"%s\"", key, (int)d->tok[v].len, d->buf + d->tok[v].start, want);
}

int64_t fdl_test_jint(const fdl_test_jdoc *d, size_t obj, const char *key)
{
    size_t v = fdl_test_jget(d, obj, key);
    int64_t x = -1;
    assert_true(v > 0);
    assert_int_equal(d->tok[v].type, FDL_JV_NUMBER);
    assert_int_equal(fdl_jv_number_int(d->buf + d->tok[v].start, d->tok[v].len, &x), FDL_JV_OK);
    return x;
}

mbedtls_ctr_drbg_context *fdl_test_drbg(void)
{
    static mbedtls_entropy_context entropy;
    static mbedtls_ctr_drbg_context drbg;
    static int seeded;
    if (!seeded) {
        mbedtls_entropy_init(&entropy);
        mbedtls_ctr_drbg_init(&drbg);
        assert_int_equal(mbedtls_ctr_drbg_seed(&drbg, mbedtls_entropy_func, &entropy, (const unsigned char *)"t", 1), 0);
        seeded = 1;
    }
    return &drbg;
}

void fdl_test_gen_key(mbedtls_pk_context *pk, mbedtls_ecp_group_id curve)
{
    mbedtls_pk_init(pk);
    assert_int_equal(mbedtls_pk_setup(pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), 0);
    assert_int_equal(mbedtls_ecp_gen_key(curve, mbedtls_pk_ec(*pk), mbedtls_ctr_drbg_random, fdl_test_drbg()), 0);
}
