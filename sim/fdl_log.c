/* sim/fdl_log.c — thread-safe line logger (see fdl_log.h). */
#include "sim/fdl_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static atomic_int log_level = FDL_LOG_INFO;

/* Everything below is guarded by log_mu. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;                  /* NULL means stderr */
static void (*before_cb)(void *);
static void *before_ud;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

static int clamp_level(int level)
{
    if (level < FDL_LOG_ERROR)
        return FDL_LOG_ERROR;
    if (level > FDL_LOG_DEBUG)
        return FDL_LOG_DEBUG;
    return level;
}

void fdl_log_set_level(int level)
{
    atomic_store(&log_level, clamp_level(level));
}

int fdl_log_level(void)
{
    return atomic_load(&log_level);
}

void fdl_log_set_file(FILE *f)
{
    pthread_mutex_lock(&log_mu);
    log_file = f;
    pthread_mutex_unlock(&log_mu);
}

void fdl_log_set_before_write(void (*cb)(void *), void *ud)
{
    pthread_mutex_lock(&log_mu);
    before_cb = cb;
    before_ud = ud;
    pthread_mutex_unlock(&log_mu);
}

/* Writes all of buf to f; called with log_mu held. */
static void emit(FILE *f, const char *buf, size_t len)
{
    int fd = fileno(f);
    if (fd < 0) {
        fwrite(buf, 1, len, f);
        fflush(f);
        return;
    }
    /* Text written to f through stdio must come out before our line. */
    fflush(f);
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report a logging failure */
        }
        buf += n;
        len -= (size_t)n;
    }
}

void fdl_log(int level, const char *component, const char *fmt, ...)
{
    level = clamp_level(level);
    if (level > fdl_log_level())
        return;
    int saved_errno = errno;

    char line[FDL_LOG_LINE_MAX];
    int head;
    if (component)
        head = snprintf(line, sizeof line, "fleetdrill: %s [%s] ", level_names[level], component);
    else
        head = snprintf(line, sizeof line, "fleetdrill: %s ", level_names[level]);
    if (head < 0)
        head = 0;
    /* Keep room for the "...\n" that ends a truncated line. */
    size_t room = sizeof line - 4;
    size_t len = (size_t)head < room ? (size_t)head : room;

    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    va_end(ap);
    size_t msg_start = len;
    int truncated = (size_t)head > room;
    if (n > 0) {
        if ((size_t)n > room - len) {
            truncated = 1;
            len = room;
        } else {
            len += (size_t)n;
        }
    }
    for (size_t i = msg_start; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            line[i] = '?';
    }
    if (truncated) {
        memcpy(line + len, "...", 3);
        len += 3;
    }
    line[len++] = '\n';

    pthread_mutex_lock(&log_mu);
    if (before_cb)
        before_cb(before_ud);
    emit(log_file ? log_file : stderr, line, len);
    pthread_mutex_unlock(&log_mu);

    errno = saved_errno;
}
