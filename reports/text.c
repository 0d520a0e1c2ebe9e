/* reports/text.c — the escaping and formatting every report writer shares (see report_int.h). */
#include "reports/report_int.h"

#include "devices/utf8.h"

#include <string.h>

/* The code point of the well-formed sequence s[0..len). */
static uint32_t decode(const unsigned char *s, size_t len)
{
    switch (len) {
    case 1:
        return s[0];
    case 2:
        return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    case 3:
        return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    default:
        return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
               (s[3] & 0x3F);
    }
}

/* Controls (C0 but TAB and LF, DEL, C1) and Unicode noncharacters: XML 1.0 forbids some,
 * HTML5 calls all of them parse errors, and none belongs in a report. */
static bool markup_forbidden(uint32_t cp)
{
    if (cp < 0x20)
        return cp != '\t' && cp != '\n';
    if (cp >= 0x7F && cp <= 0x9F)
        return true;
    if (cp >= 0xFDD0 && cp <= 0xFDEF)
        return true;
    return (cp & 0xFFFE) == 0xFFFE;
}

void fdl_rpt_put_markup(FILE *out, const char *str, bool attr)
{
    if (!str)
        return;
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), i = 0;
    while (i < n) {
        /* The longest run that needs nothing goes out in one call. */
        size_t run = i;
        for (;;) {
            if (run >= n)
                break;
            unsigned char c = s[run];
            if (c == '&' || c == '<' || c == '>' || c == '"' || c == '\'' || c == '\r' || (attr && c < 0x20))
                break;
            size_t k = fdl_utf8_seq(s + run, n - run);
            if (k == 0 || markup_forbidden(decode(s + run, k)))
                break;
            run += k;
        }
        if (run > i) {
            fwrite(s + i, 1, run - i, out);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        size_t k = fdl_utf8_seq(s + i, n - i);
        const char *rep = "\xEF\xBF\xBD"; /* U+FFFD */
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        case '\t': rep = "&#9;"; break;  /* attributes only: text keeps TAB as is */
        case '\n': rep = "&#10;"; break; /* likewise */
        case '\r':
            /* CR and CRLF are line ends: one LF, as an XML parser would normalise them. */
            rep = attr ? "&#10;" : "\n";
            if (i + 1 < n && s[i + 1] == '\n')
                i++;
            break;
        default:
            break;
        }
        fputs(rep, out);
        i += k ? k : 1; /* an invalid byte is replaced alone, the next one looked at afresh */
    }
}

/* Characters that would drive a terminal or reorder what it shows. */
static bool term_forbidden(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x200E || cp == 0x200F || cp == 0x061C;
}

void fdl_rpt_term_clean(const char *str, size_t max_cols, char *out, size_t cap, size_t *cols)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    size_t n = strlen((const char *)s), i = 0, o = 0, col = 0;
    while (i < n && col < max_cols) {
        size_t k = fdl_utf8_seq(s + i, n - i);
        bool bad = k == 0 || term_forbidden(decode(s + i, k));
        size_t outlen = bad ? 1 : k;
        if (o + outlen + 1 > cap)
            break;
        /* The last column of a string that goes on shows '~' instead. */
        if (col + 1 == max_cols && i + (k ? k : 1) < n) {
            out[o++] = '~';
            col++;
            break;
        }
        if (bad)
            out[o++] = '?';
        else
            memcpy(out + o, s + i, k), o += k;
        i += k ? k : 1;
        col++;
    }
    if (cap > 0)
        out[o < cap ? o : cap - 1] = '\0';
    if (cols)
        *cols = col;
}

const char *fdl_rpt_fmt_ms(int64_t ms, char *buf, size_t cap)
{
    if (ms < 0)
        snprintf(buf, cap, "-");
    else if (ms < 10000)
        snprintf(buf, cap, "%lld ms", (long long)ms);
    else if (ms < 600000)
        snprintf(buf, cap, "%.1f s", (double)ms / 1000.0);
    else
        snprintf(buf, cap, "%lld min %02lld s", (long long)(ms / 60000), (long long)(ms % 60000 / 1000));
    return buf;
}
