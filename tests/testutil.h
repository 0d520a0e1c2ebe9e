/* tests/testutil.h — helpers shared by the cmocka tests (temp dirs, ports, SoftHSM). */
#ifndef FDL_TESTUTIL_H
#define FDL_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

#endif
