/*
 * sim/fdl_log.h — process-wide, thread-safe logging for fleetdrill.
 *
 * Every line has the shape
 *     fleetdrill: <level> [<component>] <message>\n
 * (the " [<component>]" part is left out when component is NULL) and reaches the
 * output with a single write(2) under a mutex, so lines from different threads
 * never interleave. Lines longer than FDL_LOG_LINE_MAX are truncated and end in
 * "...". Control characters in the message (other than tab) are replaced by '?':
 * messages often carry text a device or a broker sent us, and a hostile peer must
 * not be able to forge extra log lines or send escape sequences to the terminal.
 *
 * fdl_log() keeps errno unchanged, so a caller can log and then report errno.
 * Nothing here allocates.
 */
#ifndef FDL_LOG_H
#define FDL_LOG_H

#include <stdio.h>

enum { FDL_LOG_ERROR, FDL_LOG_WARN, FDL_LOG_INFO, FDL_LOG_DEBUG };

/* Longest line written, in bytes, including the prefix and the newline. */
#define FDL_LOG_LINE_MAX 2048

/*
 * Sets the most verbose level that is written (default FDL_LOG_INFO). Values
 * outside FDL_LOG_ERROR..FDL_LOG_DEBUG are clamped into that range.
 */
void fdl_log_set_level(int level);
/* The current level. */
int fdl_log_level(void);

/*
 * Writes one line if level <= fdl_log_level(). component: borrowed, may be NULL.
 * A level outside the enum is clamped like fdl_log_set_level does.
 */
void fdl_log(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Sends lines to f instead of stderr; NULL restores stderr. f is borrowed: the
 * caller keeps it open until it sets another file. When f has a file descriptor
 * a line is one write(2) on it (after flushing f's own buffer, so that text
 * written to f through stdio keeps its order); a FILE without a descriptor (e.g.
 * fmemopen) gets one fwrite + fflush instead.
 */
void fdl_log_set_file(FILE *f);

/*
 * Registers cb(ud) to run before each line is written, under the log mutex (so
 * it runs on whatever thread logs, never concurrently with itself). The progress
 * bar uses it to clear its line. The callback must not call fdl_log (that would
 * deadlock) and should be quick. Only one hook exists: a new call replaces the
 * previous one; cb NULL removes it. When this returns, a hook being replaced is
 * no longer running, so its ud may be freed right after.
 */
void fdl_log_set_before_write(void (*cb)(void *), void *ud);

/*
 * Level-checked macros: when the level is off, the arguments are neither
 * formatted nor evaluated (so they must not have side effects that matter).
 */
#define FDL_LOG_AT_(lvl, comp, ...)                                                \
    do {                                                                           \
        if (fdl_log_level() >= (lvl))                                              \
            fdl_log((lvl), (comp), __VA_ARGS__);                                   \
    } while (0)
#define FDL_ERROR(comp, ...) FDL_LOG_AT_(FDL_LOG_ERROR, comp, __VA_ARGS__)
#define FDL_WARN(comp, ...)  FDL_LOG_AT_(FDL_LOG_WARN, comp, __VA_ARGS__)
#define FDL_INFO(comp, ...)  FDL_LOG_AT_(FDL_LOG_INFO, comp, __VA_ARGS__)
#define FDL_DEBUG(comp, ...) FDL_LOG_AT_(FDL_LOG_DEBUG, comp, __VA_ARGS__)

#endif /* FDL_LOG_H */
