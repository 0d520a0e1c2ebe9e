/* sim/progress.c — rate-limited terminal progress bar (see progress.h). */
#include "sim/progress.h"

#include "sim/alloc.h"
#include "sim/fdl_log.h"
#include "sim/vclock.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define REDRAW_NS   100000000ull  /* at most ten draws a second */
#define BAR_WIDTH   24
#define STATUS_MAX  128
#define VISIBLE_MAX   512           /* visible text of one line, bytes */
#define DEFAULT_COLS 80

struct fdl_progress {
    FILE *out;          /* borrowed */
    char *label;        /* owned */
    uint64_t total;
    uint64_t done;
    uint64_t start_ns;
    uint64_t last_draw_ns;
    unsigned cols;
    int enabled;
    int finished;
    int ever_drawn;
    /* Set when the line is on screen; the log hook (any thread) clears it. */
    atomic_int visible;
    char status[STATUS_MAX];
};

/* Replaces control characters by spaces, so the bar stays one line. */
static void sanitize(char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            *s = ' ';
    }
}

static int env_disables(void)
{
    const char *term = getenv("TERM");
    if (term && strcmp(term, "dumb") == 0)
        return 1;
    const char *ci = getenv("CI");
    return ci && (strcasecmp(ci, "true") == 0 || strcmp(ci, "1") == 0);
}

static unsigned term_cols(FILE *out)
{
    struct winsize ws;
    int fd = fileno(out);
    if (fd >= 0 && ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return DEFAULT_COLS;
}

/* The fdl_log hook: erase the bar so the log line starts at column 0. */
static void log_hook(void *ud)
{
    fdl_progress *p = ud;
    if (atomic_exchange(&p->visible, 0)) {
        fputs("\r\x1b[K", p->out);
        fflush(p->out);
    }
}

static fdl_progress *create(FILE *out, const char *label, uint64_t total, int enabled)
{
    fdl_progress *p = fdl_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->label = fdl_strdup(label ? label : "");
    if (!p->label) {
        fdl_free(p);
        return NULL;
    }
    sanitize(p->label);
    p->out = out;
    p->total = total;
    p->enabled = enabled && out != NULL;
    p->start_ns = fdl_now_ns();
    atomic_init(&p->visible, 0);
    if (p->enabled) {
        p->cols = term_cols(out);
        fdl_log_set_before_write(log_hook, p);
    }
    return p;
}

fdl_progress *fdl_progress_new(FILE *out, const char *label, uint64_t total)
{
    int fd = out ? fileno(out) : -1;
    int enabled = fd >= 0 && isatty(fd) && !env_disables();
    return create(out, label, total, enabled);
}

fdl_progress *fdl_progress_new_forced(FILE *out, const char *label, uint64_t total)
{
    return create(out, label, total, 1);
}

int fdl_progress_enabled(const fdl_progress *p)
{
    return p && p->enabled;
}

/* "M:SS", "H:MM:SS", or ">99h". */
static void fmt_duration(char *buf, size_t cap, double secs)
{
    if (secs < 0)
        secs = 0;
    if (secs >= 100.0 * 3600) {
        snprintf(buf, cap, ">99h");
        return;
    }
    unsigned s = (unsigned)(secs + 0.5);
    if (s >= 3600)
        snprintf(buf, cap, "%u:%02u:%02u", s / 3600, s / 60 % 60, s % 60);
    else
        snprintf(buf, cap, "%u:%02u", s / 60, s % 60);
}

/* Appends printf output to buf at *len (capacity cap), never past the end. */
__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len += (size_t)n < cap - *len ? (size_t)n : cap - *len - 1;
}

static void draw(fdl_progress *p, uint64_t now, int final)
{
    char line[VISIBLE_MAX + 8];
    size_t len = 0, cap = VISIBLE_MAX;
    double elapsed = (double)(now - p->start_ns) / 1e9;
    double rate = elapsed > 0.001 ? (double)p->done / elapsed : 0.0;
    char rate_s[32], time_s[16];

    if (rate >= 100.0)
        snprintf(rate_s, sizeof rate_s, "%.0f/s", rate);
    else
        snprintf(rate_s, sizeof rate_s, "%.1f/s", rate);

    append(line, cap, &len, "%s%s", p->label, p->label[0] ? " " : "");
    if (p->total > 0) {
        double frac = (double)p->done / (double)p->total;
        if (frac > 1.0)
            frac = 1.0;
        unsigned fill = (unsigned)(frac * BAR_WIDTH);
        char bar[BAR_WIDTH + 1];
        memset(bar, '#', fill);
        memset(bar + fill, '-', BAR_WIDTH - fill);
        bar[BAR_WIDTH] = '\0';
        append(line, cap, &len, "[%s] %llu/%llu %5.1f%% %s", bar,
               (unsigned long long)p->done, (unsigned long long)p->total, frac * 100.0, rate_s);
        if (final) {
            fmt_duration(time_s, sizeof time_s, elapsed);
            append(line, cap, &len, " in %s", time_s);
        } else if (p->done >= p->total) {
            append(line, cap, &len, " ETA 0:00");
        } else if (rate > 0.0) {
            fmt_duration(time_s, sizeof time_s, (double)(p->total - p->done) / rate);
            append(line, cap, &len, " ETA %s", time_s);
        } else {
            append(line, cap, &len, " ETA --:--");
        }
    } else {
        append(line, cap, &len, "%llu %s", (unsigned long long)p->done, rate_s);
        if (final) {
            fmt_duration(time_s, sizeof time_s, elapsed);
            append(line, cap, &len, " in %s", time_s);
        }
    }
    if (p->status[0])
        append(line, cap, &len, " %s", p->status);

    /* Never wrap: a wrapped line cannot be redrawn with \r. Do not split a UTF-8 character. */
    size_t width = p->cols > 1 ? p->cols - 1 : 1;
    if (len > width) {
        len = width;
        while (len > 0 && ((unsigned char)line[len] & 0xC0) == 0x80)
            len--;
    }

    char out[VISIBLE_MAX + 16];
    out[0] = '\r';
    memcpy(out + 1, line, len);
    memcpy(out + 1 + len, "\x1b[K", 3);
    size_t n = len + 4;
    if (final)
        out[n++] = '\n';
    /* One fwrite, so a log hook on another thread cannot land inside the line. */
    fwrite(out, 1, n, p->out);
    fflush(p->out);
    atomic_store(&p->visible, final ? 0 : 1);
    p->last_draw_ns = now;
    p->ever_drawn = 1;
}

void fdl_progress_update(fdl_progress *p, uint64_t done, const char *fmt, ...)
{
    if (!p || !p->enabled || p->finished)
        return;
    p->done = done;
    uint64_t now = fdl_now_ns();
    int erased = p->ever_drawn && !atomic_load(&p->visible);
    if (p->ever_drawn && !erased && now - p->last_draw_ns < REDRAW_NS)
        return;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->status, sizeof p->status, fmt, ap);
        va_end(ap);
        sanitize(p->status);
    } else {
        p->status[0] = '\0';
    }
    draw(p, now, 0);
}

void fdl_progress_finish(fdl_progress *p)
{
    if (!p || !p->enabled || p->finished)
        return;
    draw(p, fdl_now_ns(), 1);
    p->finished = 1;
}

void fdl_progress_free(fdl_progress *p)
{
    if (!p)
        return;
    if (p->enabled) {
        /* After this returns the hook is not running, so p may go. */
        fdl_log_set_before_write(NULL, NULL);
        if (!p->finished && atomic_load(&p->visible)) {
            fputc('\n', p->out);
            fflush(p->out);
        }
    }
    fdl_free(p->label);
    fdl_free(p);
}
