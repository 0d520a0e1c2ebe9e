/* tests/testutil.h — helpers shared by the cmocka tests (temp dirs, ports, SoftHSM). */
#ifndef FDL_TESTUTIL_H
#define FDL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>

#include "cloud/json.h"

/* Creates a fresh directory /tmp/fdl-test-<name>-XXXXXX; writes its path into buf. */
void fdl_test_mkdtemp(const char *name, char *buf, size_t cap);
/* rm -rf path (refuses anything outside /tmp). */
void fdl_test_rmrf(const char *path);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
uint16_t fdl_test_free_port(void);
/*
 * Writes <dir>/softhsm2.conf with tokendir <dir>/tokens (created) and writes the
 * config path into conf (cap bytes).
 */
void fdl_test_softhsm_conf(const char *dir, char *conf, size_t cap);
/* Path of a file in the source tree (FDL_SOURCE_DIR from the build). */
const char *fdl_test_src_path(const char *rel, char *buf, size_t cap);

/* The process's test CTR-DRBG, seeded from the system entropy on first use; fails
 * the test if seeding fails. Single-threaded tests only. */
mbedtls_ctr_drbg_context *fdl_test_drbg(void);
/* A fresh software EC key on curve in *pk (initialised here; the caller frees it). */
void fdl_test_gen_key(mbedtls_pk_context *pk, mbedtls_ecp_group_id curve);

/* strdup that fails the test on allocation failure (test-owned memory: free()). */
char *fdl_test_strdup(const char *s);
/* Value of one hex digit, or -1. */
int fdl_test_hexval(int c);
/*
 * Decodes the %-escapes of the JSON and schema vector files, appending to out[*len..cap):
 *   %HH one byte in hex, %% a literal '%', %(N:text) text (no ')') repeated N times,
 *   itself decoded. Everything else is copied. false on a bad escape or overflow.
 */
bool fdl_test_decode_pct(const char *s, uint8_t *out, size_t cap, size_t *len);

/*
 * A parsed JSON document for checking writer output: the text is copied (test-owned,
 * released by fdl_test_jfree) and parsed with cloud/json.h under generous limits;
 * a parse failure fails the test with the byte offset.
 */
typedef struct fdl_test_jdoc {
    uint8_t *buf;
    size_t len;
    fdl_jv_tok *tok;
    size_t n;
} fdl_test_jdoc;

void fdl_test_jparse(fdl_test_jdoc *d, const char *text, size_t len);
/* fdl_test_jparse of a whole file. */
void fdl_test_jload(fdl_test_jdoc *d, const char *path);
void fdl_test_jfree(fdl_test_jdoc *d);
/* Index of member key's value in object obj, or 0 if absent. */
size_t fdl_test_jget(const fdl_test_jdoc *d, size_t obj, const char *key);
/* Index of element i of array arr (fails the test when out of range). */
size_t fdl_test_jat(const fdl_test_jdoc *d, size_t arr, size_t i);
/* Asserts that member key of obj is the string want. */
void fdl_test_jstr_is(const fdl_test_jdoc *d, size_t obj, const char *key, const char *want);
/* Member key of obj as an integer (fails the test unless it is one). */
int64_t fdl_test_jint(const fdl_test_jdoc *d, size_t obj, const char *key);

#endif
