/*
 * devices/utf8.h — UTF-8 well-formedness, shared by every parser of outside text
 * (MQTT strings, topics, JSON payloads). Header-only so the standalone fuzz targets
 * get it with the parser they include.
 *
 * The second-byte ranges follow RFC 3629's syntax table (Unicode table 3-7), which
 * excludes overlongs, surrogates (U+D800..U+DFFF) and code points above U+10FFFF
 * without decoding.
 */
#ifndef FDL_UTF8_H
#define FDL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the well-formed sequence starting at s[0], within n bytes; 0 if ill-formed. */
static inline size_t fdl_utf8_seq(const uint8_t *s, size_t n)
{
    if (n == 0)
        return 0;
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;   /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;   /* overlong below U+0800 */
        else if (c == 0xED)
            hi = 0x9F;   /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;   /* overlong below U+10000 */
        else if (c == 0xF4)
            hi = 0x8F;   /* above U+10FFFF */
    } else {
        return 0;        /* continuation byte, C0/C1, F5..FF */
    }
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < need; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return need;
}

/* Well-formed UTF-8 with no U+0000 anywhere (MQTT's rule for strings and topics). */
static inline bool fdl_utf8_valid_nonul(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (p[i] == 0x00)
            return false;
        size_t k = fdl_utf8_seq(p + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

#endif
